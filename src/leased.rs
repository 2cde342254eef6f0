//! Work one receiver at a time does on a schedule: every receiver ticks, and a lease in the
//! database picks the one that works this turn (another takes over when that one stops).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::Store;

/// Every `every`, take the lease `name` for `holder` and, when held, run `turn` with the time.
/// Runs until the task is dropped; the first turn is at once.
pub async fn run_schedule<Turn>(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    name: &'static str,
    holder: String,
    every: Duration,
    mut turn: impl FnMut(i64) -> Turn,
) where
    Turn: Future<Output = ()>,
{
    let ttl_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX / 4);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now_ms = clock.now_ms();
        match store.take_lease(name, &holder, now_ms, ttl_ms).await {
            Ok(true) => turn(now_ms).await,
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, lease = name, "could not take the lease"),
        }
    }
}
