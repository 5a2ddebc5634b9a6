//! Store configuration: limits, memory budget, sharding and tombstones.

use crate::error::{Result, StoreError};
use crate::evict::Eviction;

/// Longest TTL accepted anywhere: 100 years, in milliseconds.
pub const MAX_TTL_MS: u64 = 100 * 365 * 24 * 60 * 60 * 1000;

/// Size limits, all enforced before any state changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest key, in bytes.
    pub max_key_len: usize,
    /// Longest value, hash field value, list element or set/sorted-set member, in bytes.
    pub max_value_len: usize,
    /// Most bytes one key may hold, counted as the memory budget counts them
    /// (without the key): a value's length, or a whole collection's elements
    /// with their per-element overhead. A key travels between nodes as one message, so this keeps
    /// every key replicable; writes that would pass it fail with
    /// `InvalidArgument` and change nothing.
    pub max_entry_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_len: 64 * 1024,
            max_value_len: 64 * 1024 * 1024,
            max_entry_len: 64 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Checks a key against [`Limits::max_key_len`].
    pub fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.len() > self.max_key_len {
            return Err(StoreError::InvalidArgument(format!(
                "key is {} bytes, the limit is {}",
                key.len(),
                self.max_key_len
            )));
        }
        Ok(())
    }

    /// Checks what a key would hold after a write against
    /// [`Limits::max_entry_len`].
    pub fn check_entry(&self, size: usize) -> Result<()> {
        if size > self.max_entry_len {
            return Err(StoreError::InvalidArgument(format!(
                "the key would hold {size} bytes, the limit is {}",
                self.max_entry_len
            )));
        }
        Ok(())
    }

    /// Checks a value, field, element or member against [`Limits::max_value_len`];
    /// `what` names it in the error.
    pub fn check_value(&self, what: &str, value: &[u8]) -> Result<()> {
        if value.len() > self.max_value_len {
            return Err(StoreError::InvalidArgument(format!(
                "{what} is {} bytes, the limit is {}",
                value.len(),
                self.max_value_len
            )));
        }
        Ok(())
    }
}

/// How a [`Store`](crate::Store) is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Number of shards, rounded up to a power of two. More shards mean less lock
    /// contention and shorter janitor passes per lock.
    pub shards: usize,
    /// Size limits.
    pub limits: Limits,
    /// Bytes the store may hold; 0 means unlimited. Writes that would pass it fail
    /// with `CapacityExceeded`; writes that shrink usage always succeed.
    pub mem_limit: u64,
    /// Tag stamped into every version this store issues; distinct per node so ties
    /// between nodes break the same way everywhere.
    pub node_tag: u64,
    /// Keep a versioned tombstone for deleted and expired keys, so an older copy
    /// arriving later (replication, rebalancing) cannot bring them back. A
    /// standalone cache has no older copies and turns this off.
    pub tombstones: bool,
    /// Which keys go when a write would pass `mem_limit`; by default none
    /// ([`EvictionPolicy::NoEviction`](crate::EvictionPolicy::NoEviction)).
    pub eviction: Eviction,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            shards: 64,
            limits: Limits::default(),
            mem_limit: 0,
            node_tag: 0,
            tombstones: false,
            eviction: Eviction::default(),
        }
    }
}

/// Converts a TTL in milliseconds into a deadline, rejecting TTLs outside
/// `1..=MAX_TTL_MS`.
pub(crate) fn deadline_after(now_ms: u64, ttl_ms: u64) -> Result<u64> {
    if ttl_ms == 0 || ttl_ms > MAX_TTL_MS {
        return Err(StoreError::InvalidArgument(format!(
            "TTL must be between 1 ms and 100 years, got {ttl_ms} ms"
        )));
    }
    Ok(now_ms.saturating_add(ttl_ms))
}
