//! When tombstones may be dropped (spec: cluster.md G5).
//!
//! A tombstone keeps a deleted key from coming back through an older copy, so
//! it may go only once no such copy can arrive: every owner has it, no
//! transfer or catch-up still carries an older copy, and no member that could
//! hold one is away. The driver applies the rule:
//! - nothing is dropped while a member is failed and not yet forgotten (a
//!   paused or partitioned member comes back with whatever it held; one away
//!   longer than `reconnect_timeout` is forgotten and must rejoin empty), nor
//!   while a rebalance is pending or a view is not yet settled everywhere;
//! - otherwise tombstones buried at least `tombstone_retention` ago go.
//!
//! Age is measured without the wall clock, which may step: the store stamps
//! each tombstone with a burial epoch, the driver opens a new epoch on a
//! monotonic timer, and [`Burials`] remembers when each epoch opened.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// When recent burial epochs opened, on the monotonic clock.
#[derive(Debug)]
pub(crate) struct Burials {
    retention: Duration,
    /// `(opened at, epoch)`, oldest first; only the newest epoch opened at
    /// least `retention` ago and those after it are kept.
    opened: VecDeque<(Instant, u64)>,
}

impl Burials {
    pub(crate) fn new(retention: Duration) -> Self {
        Self {
            retention,
            opened: VecDeque::new(),
        }
    }

    /// Records that `epoch` opened at `now`, and forgets epochs no longer
    /// needed to answer [`Burials::purgeable_before`].
    pub(crate) fn open(&mut self, now: Instant, epoch: u64) {
        self.opened.push_back((now, epoch));
        while self
            .opened
            .get(1)
            .is_some_and(|&(at, _)| now.saturating_duration_since(at) >= self.retention)
        {
            self.opened.pop_front();
        }
    }

    /// Returns the epoch before which every tombstone was buried at least
    /// `retention` before `now`: the newest epoch that opened that long ago
    /// (its predecessors all closed by then). `None` until one has.
    pub(crate) fn purgeable_before(&self, now: Instant) -> Option<u64> {
        self.opened
            .iter()
            .rev()
            .find(|&&(at, _)| now.saturating_duration_since(at) >= self.retention)
            .map(|&(_, epoch)| epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_is_purgeable_once_its_successor_opened_a_retention_ago() {
        let retention = Duration::from_secs(10);
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut burials = Burials::new(retention);
        burials.open(at(0), 1);
        assert_eq!(burials.purgeable_before(at(9)), None);
        burials.open(at(5), 2);
        // Epoch 1 opened 10 s ago: epochs before it (0) may go, not 1 itself,
        // which ran until 5 s.
        assert_eq!(burials.purgeable_before(at(10)), Some(1));
        assert_eq!(burials.purgeable_before(at(14)), Some(1));
        assert_eq!(burials.purgeable_before(at(15)), Some(2));
    }

    #[test]
    fn only_the_epochs_still_needed_are_remembered() {
        let retention = Duration::from_secs(10);
        let start = Instant::now();
        let mut burials = Burials::new(retention);
        for i in 0..1_000u64 {
            burials.open(start + Duration::from_secs(i), i);
        }
        assert!(burials.opened.len() <= 12, "{}", burials.opened.len());
        assert_eq!(
            burials.purgeable_before(start + Duration::from_secs(999)),
            Some(989)
        );
    }
}
