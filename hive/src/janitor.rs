//! The janitor: reclaims expired keys, fields and members in the background, a
//! few at a time per shard lock, so memory comes back within `cleanup_interval`
//! even for data nobody reads again.

use std::sync::Arc;
use std::time::Duration;

use hive_store::Store;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Entries handled per shard lock before the lock is released.
const ENTRIES_PER_LOCK: usize = 256;

/// Sweeps `store` every half `cleanup_interval` until `stop` is cancelled, so an
/// entry is reclaimed at most `cleanup_interval` after its deadline.
pub(crate) async fn run(store: Arc<Store>, cleanup_interval: Duration, stop: CancellationToken) {
    let period = (cleanup_interval / 2).max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for shard in 0..store.shard_count() {
            loop {
                let (_, more) = store.sweep_shard(shard, ENTRIES_PER_LOCK);
                if !more {
                    break;
                }
                // Let client operations in between batches of a large backlog.
                tokio::task::yield_now().await;
                if stop.is_cancelled() {
                    return;
                }
            }
        }
    }
}
