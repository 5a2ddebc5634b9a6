//! Eviction settings and the background evictor: when the node's memory
//! passes `start_percent` of `mem_limit`, keys go by the policy until it is
//! back at `stop_percent`, so writes rarely find the store full. A write that
//! still does (a burst faster than the evictor) evicts a few keys itself
//! before it runs; see `hive_store::Store::evict_to`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use hive_store::{EvictionPolicy, Store};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// How a node evicts when its memory runs short ([`Config::eviction`]).
///
/// [`Config::eviction`]: crate::Config::eviction
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eviction {
    /// Which keys may go, and which first. With
    /// [`EvictionPolicy::NoEviction`] (the default) a write that does not fit
    /// `mem_limit` fails with [`Error::CapacityExceeded`].
    pub policy: EvictionPolicy,
    /// Keys sampled per eviction round, 1 to 64 (Redis's
    /// `maxmemory-samples`): more is closer to the exact policy, and slower.
    pub samples: usize,
    /// Background eviction starts when memory passes this percentage of
    /// `mem_limit`.
    pub start_percent: u8,
    /// ... and stops when memory is back at this percentage.
    pub stop_percent: u8,
}

impl Default for Eviction {
    fn default() -> Self {
        Self {
            policy: EvictionPolicy::NoEviction,
            samples: 5,
            start_percent: 90,
            stop_percent: 80,
        }
    }
}

impl Eviction {
    /// Checks the settings; the error names the offending field.
    pub fn validate(&self) -> Result<()> {
        if !(1..=hive_store::MAX_SAMPLES).contains(&self.samples) {
            return Err(Error::InvalidArgument(format!(
                "eviction.samples must be between 1 and {}, got {}",
                hive_store::MAX_SAMPLES,
                self.samples
            )));
        }
        if self.start_percent > 100 || self.stop_percent >= self.start_percent {
            return Err(Error::InvalidArgument(format!(
                "eviction: need stop_percent < start_percent <= 100, got {} and {}",
                self.stop_percent, self.start_percent
            )));
        }
        Ok(())
    }

    pub(crate) fn store_settings(&self) -> hive_store::Eviction {
        hive_store::Eviction {
            policy: self.policy,
            samples: self.samples,
        }
    }
}

/// The thresholds the background evictor reads; the policy and the samples
/// live in the store.
#[derive(Debug)]
pub(crate) struct Thresholds {
    start_percent: AtomicU8,
    stop_percent: AtomicU8,
}

impl Thresholds {
    pub(crate) fn new(eviction: &Eviction) -> Arc<Self> {
        Arc::new(Thresholds {
            start_percent: AtomicU8::new(eviction.start_percent),
            stop_percent: AtomicU8::new(eviction.stop_percent),
        })
    }

    pub(crate) fn set(&self, eviction: &Eviction) {
        self.start_percent
            .store(eviction.start_percent, Ordering::Relaxed);
        self.stop_percent
            .store(eviction.stop_percent, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> (u8, u8) {
        (
            self.start_percent.load(Ordering::Relaxed),
            self.stop_percent.load(Ordering::Relaxed),
        )
    }
}

/// How often the evictor looks at the memory in use (Redis's default `hz`).
const PERIOD: Duration = Duration::from_millis(100);

/// Keys evicted between two looks at the clock and the stop token.
const KEYS_PER_STEP: usize = 256;

/// Evicts in the background until `stop` is cancelled: every [`PERIOD`],
/// if memory is past the start threshold of `mem_limit`, down to the stop
/// threshold. Each period also ticks the store's clock for access records
/// ([`Store::tick`]).
pub(crate) async fn run(
    store: Arc<Store>,
    mem_limit: u64,
    thresholds: Arc<Thresholds>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(PERIOD);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        // Reads stamp their accesses with the time the store last read.
        store.tick();
        if mem_limit == 0 || store.eviction().policy == EvictionPolicy::NoEviction {
            continue;
        }
        let (start, stop_at) = thresholds.get();
        if store.memory_bytes() < percent_of(mem_limit, start) {
            continue;
        }
        let target = percent_of(mem_limit, stop_at);
        // Off the runtime's workers: each step takes shard locks.
        loop {
            let step = {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.evict_to(target, KEYS_PER_STEP)).await
            };
            if stop.is_cancelled() || !matches!(step, Ok(KEYS_PER_STEP)) {
                break;
            }
        }
    }
}

fn percent_of(limit: u64, percent: u8) -> u64 {
    limit / 100 * u64::from(percent) + limit % 100 * u64::from(percent) / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let refused = |eviction: Eviction| match eviction.validate() {
            Err(Error::InvalidArgument(message)) => message,
            other => panic!("{eviction:?}: {other:?}"),
        };
        let base = Eviction::default();
        assert!(refused(Eviction { samples: 0, ..base }).contains("samples"));
        assert!(
            refused(Eviction {
                samples: 65,
                ..base
            })
            .contains("samples")
        );
        assert!(
            refused(Eviction {
                start_percent: 101,
                ..base
            })
            .contains("start_percent")
        );
        assert!(
            refused(Eviction {
                stop_percent: 90,
                ..base
            })
            .contains("stop_percent")
        );
        base.validate().unwrap();
    }

    #[test]
    fn a_percentage_of_a_limit_does_not_overflow() {
        assert_eq!(percent_of(1000, 90), 900);
        assert_eq!(percent_of(u64::MAX, 100), u64::MAX);
        assert_eq!(percent_of(u64::MAX, 50), u64::MAX / 2);
    }
}
