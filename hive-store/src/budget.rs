//! The memory budget: a global byte count checked before a write grows the store.

use std::sync::atomic::{AtomicU64, Ordering};

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
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    budget: &'a Budget,
    grown: usize,
    shrunk: usize,
}

impl<'a> Reservation<'a> {
    pub(crate) fn new(budget: &'a Budget) -> Self {
        Self {
            budget,
            grown: 0,
            shrunk: 0,
        }
    }

    /// Accounts for a part of the entry changing size from `old` to `new` bytes;
    /// fails with `CapacityExceeded` (taking nothing) if growth does not fit.
    pub(crate) fn resize(&mut self, old: usize, new: usize) -> Result<()> {
        if new > old {
            self.budget.try_grow(new - old)?;
            self.grown += new - old;
        } else {
            self.shrunk += old - new;
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
        let mut res = Reservation::new(&budget);
        res.resize(0, 80).unwrap();
        res.cancel();
        budget.try_grow(100).unwrap();
    }
}
