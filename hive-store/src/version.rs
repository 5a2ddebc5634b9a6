//! Entry versions: a hybrid logical clock stamp plus the writer's node tag.
//!
//! Replication, rebalancing and partition healing keep, for every key, the entry
//! (or tombstone) with the greatest [`Version`]: last writer wins by hybrid
//! logical clock, ties broken by node tag, the same way on every node.

use serde::{Deserialize, Serialize};

/// Bits of a hybrid-logical-clock stamp that hold the logical counter; the
/// physical Unix milliseconds sit above them.
const LOGICAL_BITS: u32 = 16;

/// The version of an entry or tombstone. Ordered by `hlc`, then by `node`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Version {
    /// Hybrid logical clock stamp: Unix milliseconds `<< 16` plus a logical counter.
    pub hlc: u64,
    /// Tag of the node that stamped it (breaks ties between nodes deterministically).
    pub node: u64,
}

impl Version {
    /// The version below every stamped one.
    pub const ZERO: Version = Version { hlc: 0, node: 0 };

    /// Returns the lowest version stamped at Unix time `ms` (for cut-offs such
    /// as "tombstones older than a minute").
    pub fn at_ms(ms: u64) -> Version {
        Version {
            hlc: ms.saturating_mul(1 << LOGICAL_BITS),
            node: 0,
        }
    }

    /// Returns the physical part of the stamp, in Unix milliseconds.
    pub fn physical_ms(self) -> u64 {
        self.hlc >> LOGICAL_BITS
    }
}

/// A hybrid logical clock: stamps never go backwards and never repeat, and they
/// follow wall-clock time when it moves forward.
///
/// The store keeps one per shard, under the shard's lock: every version of a key
/// is stamped (or observed) by the shard that holds it, so per-key order is all
/// that is needed, and no write contends on a shared atomic.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hlc {
    last: u64,
}

impl Hlc {
    /// Returns a stamp greater than every stamp issued or observed so far and not
    /// earlier than `now_ms`.
    pub(crate) fn tick(&mut self, now_ms: u64) -> u64 {
        let physical = now_ms.saturating_mul(1 << LOGICAL_BITS);
        self.last = physical.max(self.last.saturating_add(1));
        self.last
    }

    /// Returns the greatest stamp issued or observed so far.
    pub(crate) fn last(&self) -> u64 {
        self.last
    }

    /// Takes note of a stamp made elsewhere, so later ticks order after it.
    pub(crate) fn observe(&mut self, hlc: u64) {
        self.last = self.last.max(hlc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_even_when_time_stands_still_or_goes_back() {
        let mut hlc = Hlc::default();
        let a = hlc.tick(1_000);
        let b = hlc.tick(1_000);
        let c = hlc.tick(900);
        assert!(a < b && b < c);
        assert_eq!(Version { hlc: a, node: 0 }.physical_ms(), 1_000);
        assert!(Version::at_ms(1_000) <= Version { hlc: a, node: 0 });
        assert!(Version::at_ms(1_001) > Version { hlc: c, node: 0 });
    }

    #[test]
    fn ticks_follow_the_wall_clock_and_order_after_observed_stamps() {
        let mut hlc = Hlc::default();
        let a = hlc.tick(1_000);
        hlc.observe(a + 50);
        assert!(hlc.tick(1_000) > a + 50);
        assert_eq!(
            Version {
                hlc: hlc.tick(5_000),
                node: 0
            }
            .physical_ms(),
            5_000
        );
    }

    #[test]
    fn versions_order_by_stamp_then_node() {
        let low = Version { hlc: 1, node: 9 };
        let high = Version { hlc: 2, node: 0 };
        assert!(low < high);
        assert!(Version { hlc: 2, node: 1 } > high);
    }
}
