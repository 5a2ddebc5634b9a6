//! The memory budget: a global byte count checked before a write grows the store.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::Limits;
use crate::error::{Result, StoreError};

/// Bytes the store may hold, shared by all shards.
///
/// With no limit nothing is counted here (each shard keeps its own total under
/// its lock), so writes do not contend on a shared atomic.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    used: AtomicU64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_limited(&self) -> bool {
        self.limit != 0
    }

    /// The limit in bytes; 0 for none.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes taken (0 without a limit: nothing is counted then).
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Takes `bytes` from the budget, or fails without taking anything.
    pub(crate) fn try_grow(&self, bytes: usize) -> Result<()> {
        if !self.is_limited() || bytes == 0 {
            return Ok(());
        }
        let bytes = bytes as u64;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .map(drop)
            .map_err(|_| StoreError::CapacityExceeded)
    }

    /// Takes `bytes` whatever the limit (for bookkeeping that must not fail,
    /// such as a tombstone left by a delete that freed more).
    pub(crate) fn force_grow(&self, bytes: usize) {
        if self.is_limited() {
            self.used.fetch_add(bytes as u64, Ordering::AcqRel);
        }
    }

    /// Returns `bytes` to the budget.
    pub(crate) fn release(&self, bytes: usize) {
        if self.is_limited() && bytes != 0 {
            self.used.fetch_sub(bytes as u64, Ordering::AcqRel);
        }
    }
}

/// The memory an in-place update takes or gives back, settled when it commits.
///
/// Operations call [`Reservation::resize`] after validating their arguments and
/// before mutating anything, so a refused reservation leaves the entry unchanged.
/// It refuses growth past the memory budget and past the key's size cap.
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    budget: &'a Budget,
    limits: &'a Limits,
    grown: usize,
    shrunk: usize,
    /// Accounted bytes of the entry's data as the operation leaves it so far.
    size: usize,
}

impl<'a> Reservation<'a> {
    /// Starts a reservation for an entry whose data accounts `size` bytes.
    pub(crate) fn new(budget: &'a Budget, limits: &'a Limits, size: usize) -> Self {
        Self {
            budget,
            limits,
            grown: 0,
            shrunk: 0,
            size,
        }
    }

    /// Accounts for a part of the entry changing size from `old` to `new` bytes;
    /// fails (taking nothing) with `CapacityExceeded` if growth does not fit the
    /// budget, or `InvalidArgument` if the key would pass
    /// [`Limits::max_entry_len`].
    pub(crate) fn resize(&mut self, old: usize, new: usize) -> Result<()> {
        if new > old {
            let size = self.size.saturating_add(new - old);
            self.limits.check_entry(size)?;
            self.budget.try_grow(new - old)?;
            self.grown += new - old;
            self.size = size;
        } else {
            self.shrunk += old - new;
            self.size = self.size.saturating_sub(old - new);
        }
        Ok(())
    }

    /// Returns the net change in bytes, releasing what shrank.
    pub(crate) fn commit(self) -> isize {
        self.budget.release(self.shrunk);
        self.grown as isize - self.shrunk as isize
    }

    /// Gives back what was taken, for an operation that failed before mutating.
    pub(crate) fn cancel(self) {
        self.budget.release(self.grown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_past_the_limit_is_refused_and_takes_nothing() {
        let budget = Budget::new(100);
        budget.try_grow(60).unwrap();
        assert_eq!(budget.try_grow(41), Err(StoreError::CapacityExceeded));
        budget.try_grow(40).unwrap();
        budget.release(50);
        budget.try_grow(50).unwrap();
    }

    #[test]
    fn an_unlimited_budget_never_refuses() {
        let budget = Budget::new(0);
        budget.try_grow(usize::MAX).unwrap();
    }

    #[test]
    fn a_cancelled_reservation_gives_back_what_it_took() {
        let budget = Budget::new(100);
        let limits = Limits::default();
        let mut res = Reservation::new(&budget, &limits, 0);
        res.resize(0, 80).unwrap();
        res.cancel();
        budget.try_grow(100).unwrap();
    }

    #[test]
    fn growth_past_the_entry_cap_is_refused_and_takes_nothing() {
        let budget = Budget::new(1000);
        let limits = Limits {
            max_entry_len: 100,
            ..Limits::default()
        };
        let mut res = Reservation::new(&budget, &limits, 60);
        res.resize(10, 50).unwrap();
        assert!(matches!(
            res.resize(0, 1),
            Err(StoreError::InvalidArgument(_))
        ));
        res.resize(20, 0).unwrap();
        res.resize(0, 20).unwrap();
        assert_eq!(res.commit(), 40);
        budget.try_grow(960).unwrap();
    }
}
