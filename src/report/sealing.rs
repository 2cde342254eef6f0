//! Sealing the rollup's ended blocks on a schedule (see `ReportStore::seal_rollup`): what keeps
//! campaign reports reading a few values per block instead of a row per campaign.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::Store;

const DAY_MS: i64 = 86_400_000;

/// Seal the blocks that ended before today every `every`, one receiver at a time (a lease in
/// the database), until the task is dropped. The first pass runs at once: after an upgrade or a
/// backfill it folds the whole history, a value per transaction, beside ingest.
pub async fn run_schedule(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    holder: String,
    every: Duration,
) {
    let sealer = Arc::clone(&store);
    crate::leased::run_schedule(store, clock, "rollup-seal", holder, every, move |now_ms| {
        let sealer = Arc::clone(&sealer);
        async move {
            match sealer.seal_rollup(now_ms.div_euclid(DAY_MS)).await {
                Ok(done) if done.blocks > 0 => {
                    tracing::info!(
                        blocks = done.blocks,
                        rows = done.rows,
                        longest_ms = done.longest.as_millis(),
                        "rollup blocks sealed"
                    );
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "sealing rollup blocks failed"),
            }
        }
    })
    .await;
}
