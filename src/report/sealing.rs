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
    let ttl_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX / 4);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now_ms = clock.now_ms();
        match store.take_lease("rollup-seal", &holder, now_ms, ttl_ms).await {
            Ok(true) => match store.seal_rollup(now_ms.div_euclid(DAY_MS)).await {
                Ok(done) if done.values > 0 => {
                    tracing::info!(values = done.values, rows = done.rows, "rollup blocks sealed");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "sealing rollup blocks failed"),
            },
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "could not take the sealing lease"),
        }
    }
}
