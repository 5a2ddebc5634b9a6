//! Operations on any key, whatever it holds: existence, type, delete, key TTLs.

use serde::{Deserialize, Serialize};

use crate::config::deadline_after;
use crate::entry::{Kind, NO_DEADLINE};
use crate::error::{Result, StoreError};
use crate::shard::Write;
use crate::store::Store;
use crate::version::Version;

impl Store {
    /// Returns true if `key` holds a live entry.
    pub fn exists(&self, key: &[u8]) -> Result<bool> {
        self.read(key, |entry, _| Ok(entry.is_some()))
    }

    /// Returns the kind of data `key` holds, `None` if it is absent.
    pub fn kind(&self, key: &[u8]) -> Result<Option<Kind>> {
        self.read(key, |entry, _| Ok(entry.map(|entry| entry.data.kind())))
    }

    /// Returns the version of the live entry under `key`.
    pub fn version(&self, key: &[u8]) -> Result<Option<Version>> {
        self.read(key, |entry, _| Ok(entry.map(|entry| entry.version)))
    }

    /// Deletes `key`; returns whether it existed.
    pub fn del(&self, key: &[u8]) -> Result<bool> {
        self.write(key, |entry, _, _| {
            Ok(if entry.is_some() {
                Write::Delete(true)
            } else {
                Write::Unchanged(false)
            })
        })
    }

    /// Sets the TTL of `key` to `ttl_ms` milliseconds from now. `NotFound` if the
    /// key is absent; `InvalidArgument` unless `1 <= ttl_ms <= 100 years`.
    pub fn expire(&self, key: &[u8], ttl_ms: u64) -> Result<()> {
        self.write(key, |entry, _, now| {
            let deadline = deadline_after(now, ttl_ms)?;
            let entry = entry.ok_or(StoreError::NotFound)?;
            entry.deadline = deadline;
            Ok(Write::Updated(()))
        })
    }

    /// Sets the deadline of `key` to the absolute Unix time `deadline_ms`; a time
    /// already past deletes the key (as Redis's `PEXPIREAT`). `NotFound` if the
    /// key is absent.
    pub fn expire_at(&self, key: &[u8], deadline_ms: u64) -> Result<()> {
        self.write(key, |entry, _, now| {
            let entry = entry.ok_or(StoreError::NotFound)?;
            if deadline_ms <= now {
                return Ok(Write::Delete(()));
            }
            deadline_after(now, deadline_ms - now)?;
            entry.deadline = deadline_ms;
            Ok(Write::Updated(()))
        })
    }

    /// Sets the TTL of `key` to `ttl_ms` from now if `condition` holds for its
    /// current TTL, as Redis's `EXPIRE` with `NX`/`XX`/`GT`/`LT` (no TTL counts
    /// as infinite). A TTL of 0 deletes the key. Returns whether the TTL was set
    /// (or the key deleted); false for an absent key.
    pub fn expire_if(&self, key: &[u8], ttl_ms: u64, condition: ExpireCondition) -> Result<bool> {
        self.expire_with(key, |_| ttl_ms, condition)
    }

    /// [`Store::expire_if`] with a deadline in Unix ms, as `PEXPIREAT`:
    /// measured against this store's clock, so the deadline is kept exactly;
    /// one already past deletes the key.
    pub fn expire_if_at(&self, key: &[u8], at_ms: u64, condition: ExpireCondition) -> Result<bool> {
        self.expire_with(key, |now| at_ms.saturating_sub(now), condition)
    }

    /// Sets the key's TTL to `ttl_at(now)` ms (0 deletes it) if `condition` holds.
    fn expire_with(
        &self,
        key: &[u8],
        ttl_at: impl Fn(u64) -> u64,
        condition: ExpireCondition,
    ) -> Result<bool> {
        self.write(key, |entry, _, now| {
            let ttl_ms = ttl_at(now);
            let deadline = match ttl_ms {
                0 => now,
                ttl => deadline_after(now, ttl)?,
            };
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(false));
            };
            if !condition.allows(entry.deadline, deadline) {
                return Ok(Write::Unchanged(false));
            }
            if ttl_ms == 0 {
                return Ok(Write::Delete(true));
            }
            entry.deadline = deadline;
            Ok(Write::Updated(true))
        })
    }

    /// Removes the TTL of `key`; returns whether it had one. `NotFound` if the key
    /// is absent.
    pub fn persist(&self, key: &[u8]) -> Result<bool> {
        self.write(key, |entry, _, _| {
            let entry = entry.ok_or(StoreError::NotFound)?;
            if entry.deadline == NO_DEADLINE {
                return Ok(Write::Unchanged(false));
            }
            entry.deadline = NO_DEADLINE;
            Ok(Write::Updated(true))
        })
    }

    /// Returns the remaining TTL of `key` in milliseconds, `None` if it has no
    /// TTL. `NotFound` if the key is absent.
    pub fn ttl(&self, key: &[u8]) -> Result<Option<u64>> {
        self.read(key, |entry, now| {
            Ok(entry.ok_or(StoreError::NotFound)?.remaining_ms(now.get()))
        })
    }

    /// Returns the key's deadline in Unix ms (`None` without a TTL), as
    /// `PEXPIRETIME`. `NotFound` if the key is absent.
    pub fn expire_time(&self, key: &[u8]) -> Result<Option<u64>> {
        self.read(key, |entry, _| {
            let deadline = entry.ok_or(StoreError::NotFound)?.deadline;
            Ok((deadline != NO_DEADLINE).then_some(deadline))
        })
    }
}

/// When a conditional expire ([`Store::expire_if`], [`Store::hexpire_fields`])
/// sets a TTL, judged against the current one; no TTL counts as infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireCondition {
    /// Always.
    Always,
    /// Only if there is no TTL yet (`NX`).
    IfNone,
    /// Only if there is a TTL already (`XX`).
    IfSome,
    /// Only if the new deadline is later than the current one (`GT`).
    Later,
    /// Only if the new deadline is earlier than the current one (`LT`).
    Earlier,
    /// Only if there is a TTL and the new deadline is earlier (`XX LT`).
    EarlierThanSome,
}

impl ExpireCondition {
    /// Returns whether a `current` deadline ([`NO_DEADLINE`] for none) may be
    /// replaced by `new`.
    pub(crate) fn allows(self, current: u64, new: u64) -> bool {
        let has_ttl = current != NO_DEADLINE;
        match self {
            ExpireCondition::Always => true,
            ExpireCondition::IfNone => !has_ttl,
            ExpireCondition::IfSome => has_ttl,
            ExpireCondition::Later => has_ttl && new > current,
            ExpireCondition::Earlier => !has_ttl || new < current,
            ExpireCondition::EarlierThanSome => has_ttl && new < current,
        }
    }
}
