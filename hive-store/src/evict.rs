//! Eviction: when the memory budget runs short, keys go, chosen the way
//! Redis chooses them — by sampling, not from a global LRU list.
//!
//! Each entry carries one 32-bit access word ([`Access`]), updated by reads
//! under the shard's read lock with a relaxed atomic store, and only when it
//! changes: a least-recently-used stamp (64 ms units), or under an LFU policy
//! Redis's logarithmic access counter with the minute it was last decayed.
//! To evict, the store samples a few keys of a random shard, keeps the best
//! candidates of all samples so far in a small pool ([`POOL`] entries), and
//! removes the best one still unchanged since it was sampled (its version
//! decides): without a tombstone, since an evicted key was not deleted, and
//! with any snapshot under way keeping its state first, like every change.

use std::str::FromStr;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::entry::{Entry, NO_DEADLINE};
use crate::version::Version;

/// Which keys may go when the memory budget runs short, and which go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvictionPolicy {
    /// None: a write that does not fit fails with `CapacityExceeded`.
    #[default]
    NoEviction,
    /// Any key, the least recently used first.
    AllKeysLru,
    /// Any key, the least frequently used first.
    AllKeysLfu,
    /// Any key, at random.
    AllKeysRandom,
    /// Keys with a TTL, the least recently used first.
    VolatileLru,
    /// Keys with a TTL, the least frequently used first.
    VolatileLfu,
    /// Keys with a TTL, at random.
    VolatileRandom,
    /// Keys with a TTL, the one expiring soonest first.
    VolatileTtl,
}

impl EvictionPolicy {
    /// Every policy, in Redis's order.
    pub const ALL: [EvictionPolicy; 8] = [
        EvictionPolicy::NoEviction,
        EvictionPolicy::AllKeysLru,
        EvictionPolicy::AllKeysLfu,
        EvictionPolicy::AllKeysRandom,
        EvictionPolicy::VolatileLru,
        EvictionPolicy::VolatileLfu,
        EvictionPolicy::VolatileRandom,
        EvictionPolicy::VolatileTtl,
    ];

    /// The name Redis's `maxmemory-policy` uses.
    pub fn redis_name(self) -> &'static str {
        match self {
            EvictionPolicy::NoEviction => "noeviction",
            EvictionPolicy::AllKeysLru => "allkeys-lru",
            EvictionPolicy::AllKeysLfu => "allkeys-lfu",
            EvictionPolicy::AllKeysRandom => "allkeys-random",
            EvictionPolicy::VolatileLru => "volatile-lru",
            EvictionPolicy::VolatileLfu => "volatile-lfu",
            EvictionPolicy::VolatileRandom => "volatile-random",
            EvictionPolicy::VolatileTtl => "volatile-ttl",
        }
    }

    /// Whether only keys with a TTL may go.
    pub fn volatile_only(self) -> bool {
        matches!(
            self,
            EvictionPolicy::VolatileLru
                | EvictionPolicy::VolatileLfu
                | EvictionPolicy::VolatileRandom
                | EvictionPolicy::VolatileTtl
        )
    }

    /// Whether access words count frequency (LFU) rather than recency.
    pub fn counts_frequency(self) -> bool {
        matches!(
            self,
            EvictionPolicy::AllKeysLfu | EvictionPolicy::VolatileLfu
        )
    }

    fn from_index(index: u8) -> EvictionPolicy {
        EvictionPolicy::ALL
            .get(usize::from(index))
            .copied()
            .unwrap_or_default()
    }

    fn index(self) -> u8 {
        EvictionPolicy::ALL
            .iter()
            .position(|&policy| policy == self)
            .map_or(0, |index| index as u8)
    }
}

impl FromStr for EvictionPolicy {
    type Err = String;

    /// Parses a Redis `maxmemory-policy` name, in any case.
    fn from_str(name: &str) -> Result<Self, String> {
        EvictionPolicy::ALL
            .into_iter()
            .find(|policy| policy.redis_name().eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("unknown eviction policy {name:?}"))
    }
}

/// How a store evicts. Changeable while it serves ([`Store::set_eviction`]).
///
/// [`Store::set_eviction`]: crate::Store::set_eviction
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eviction {
    /// Which keys may go, and which first.
    pub policy: EvictionPolicy,
    /// Keys sampled per round (Redis's `maxmemory-samples`), 1 to 64: more
    /// is closer to the exact policy and slower.
    pub samples: usize,
}

impl Default for Eviction {
    fn default() -> Self {
        Self {
            policy: EvictionPolicy::NoEviction,
            samples: 5,
        }
    }
}

/// Most keys sampled per round.
pub const MAX_SAMPLES: usize = 64;

/// Candidates kept between rounds (Redis's eviction pool).
pub(crate) const POOL: usize = 16;

/// A store's eviction settings and state, shared by its shards.
#[derive(Debug, Default)]
pub(crate) struct Evictor {
    policy: AtomicU8,
    samples: AtomicUsize,
    pool: Mutex<Vec<Candidate>>,
    evicted: AtomicU64,
    /// The latest time the store read from its clock (Unix ms), for reads
    /// to stamp accesses with: reading the clock itself on every read costs
    /// more than the read (hundreds of nanoseconds on some virtual
    /// machines). Writes, sweeps and evictions read the clock and move it.
    recent_ms: AtomicU64,
}

/// A sampled key that may go: higher scores go first.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) score: u64,
    pub(crate) shard: usize,
    pub(crate) key: Bytes,
    pub(crate) version: Version,
}

impl Evictor {
    pub(crate) fn new(eviction: Eviction) -> Self {
        let evictor = Evictor::default();
        evictor.set(eviction);
        evictor
    }

    pub(crate) fn set(&self, eviction: Eviction) {
        self.policy
            .store(eviction.policy.index(), Ordering::Relaxed);
        self.samples
            .store(eviction.samples.clamp(1, MAX_SAMPLES), Ordering::Relaxed);
        // Scores of one policy mean nothing to another.
        self.pool.lock().clear();
    }

    pub(crate) fn get(&self) -> Eviction {
        Eviction {
            policy: self.policy(),
            samples: self.samples.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn policy(&self) -> EvictionPolicy {
        EvictionPolicy::from_index(self.policy.load(Ordering::Relaxed))
    }

    /// Merges `sampled` into the pool, keeping the [`POOL`] best.
    pub(crate) fn offer(&self, sampled: impl IntoIterator<Item = Candidate>) {
        let mut pool = self.pool.lock();
        for candidate in sampled {
            if let Some(held) = pool
                .iter_mut()
                .find(|held| held.key == candidate.key && held.shard == candidate.shard)
            {
                *held = candidate;
                continue;
            }
            pool.push(candidate);
        }
        pool.sort_unstable_by_key(|candidate| std::cmp::Reverse(candidate.score));
        pool.truncate(POOL);
    }

    /// Notes that the store's clock read `now_ms`. Stores only when that
    /// moves the recent time on by a quarter of a recency unit or more, so
    /// the shared word is read by every read and rarely written.
    pub(crate) fn saw_time(&self, now_ms: u64) {
        if now_ms >= self.recent_ms.load(Ordering::Relaxed) + LRU_UNIT_MS / 4 {
            self.recent_ms.fetch_max(now_ms, Ordering::Relaxed);
        }
    }

    /// The latest time the store read from its clock ([`Evictor::saw_time`]).
    pub(crate) fn now_ms(&self) -> u64 {
        self.recent_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn count_eviction(&self) {
        self.evicted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Takes the best candidate out of the pool.
    pub(crate) fn best(&self) -> Option<Candidate> {
        let mut pool = self.pool.lock();
        (!pool.is_empty()).then(|| pool.remove(0))
    }
}

/// How long ago, and how often, an entry was read or written: one 32-bit
/// word, read and written with relaxed atomics so that reads need no write
/// lock. Its meaning follows the store's policy: under an LFU policy the
/// minute it was last decayed (24 bits) and a logarithmic counter (8 bits),
/// otherwise the time of the last access in 64 ms units. A policy change
/// makes old words read as noise until their keys are touched again, as in
/// Redis.
#[derive(Debug, Default)]
pub(crate) struct Access(AtomicU32);

impl Clone for Access {
    fn clone(&self) -> Self {
        Access(AtomicU32::new(self.0.load(Ordering::Relaxed)))
    }
}

/// Milliseconds per unit of a recency stamp.
const LRU_UNIT_MS: u64 = 64;
/// A new key's LFU counter, so that it is not the first to go.
const LFU_INIT: u32 = 5;
/// How slowly the LFU counter grows (Redis's `lfu-log-factor`).
const LFU_LOG_FACTOR: f64 = 10.0;
/// Minutes per decrement of an idle key's LFU counter (`lfu-decay-time`).
const LFU_DECAY_MINUTES: u32 = 1;

fn lru_stamp(now_ms: u64) -> u32 {
    (now_ms / LRU_UNIT_MS) as u32
}

fn minutes(now_ms: u64) -> u32 {
    ((now_ms / 60_000) & 0xFF_FFFF) as u32
}

impl Access {
    /// The word of an entry created at `now_ms`.
    pub(crate) fn new(lfu: bool, now_ms: u64) -> Self {
        Access(AtomicU32::new(if lfu {
            minutes(now_ms) << 8 | LFU_INIT
        } else {
            lru_stamp(now_ms)
        }))
    }

    /// Records an access at `now_ms`.
    pub(crate) fn touch(&self, lfu: bool, now_ms: u64) {
        let word = self.0.load(Ordering::Relaxed);
        let next = if lfu {
            let counter = log_increment(decayed(word, now_ms));
            minutes(now_ms) << 8 | counter
        } else {
            lru_stamp(now_ms)
        };
        if next != word {
            self.0.store(next, Ordering::Relaxed);
        }
    }

    /// Milliseconds since the last access, if the word is a recency stamp.
    pub(crate) fn idle_ms(&self, now_ms: u64) -> u64 {
        let stamp = self.0.load(Ordering::Relaxed);
        u64::from(lru_stamp(now_ms).wrapping_sub(stamp)) * LRU_UNIT_MS
    }

    /// The LFU counter as of `now_ms`, if the word is one.
    pub(crate) fn frequency(&self, now_ms: u64) -> u32 {
        decayed(self.0.load(Ordering::Relaxed), now_ms)
    }
}

/// The counter of an LFU word, less one per [`LFU_DECAY_MINUTES`] since it
/// was last decayed.
fn decayed(word: u32, now_ms: u64) -> u32 {
    let counter = word & 0xFF;
    let elapsed = minutes(now_ms).wrapping_sub(word >> 8) & 0xFF_FFFF;
    counter.saturating_sub(elapsed / LFU_DECAY_MINUTES)
}

/// Adds one to an LFU counter with a probability that falls as it grows, so
/// 8 bits count up to about a million accesses.
fn log_increment(counter: u32) -> u32 {
    if counter >= 255 {
        return 255;
    }
    let base = f64::from(counter.saturating_sub(LFU_INIT));
    if fastrand::f64() < 1.0 / (base * LFU_LOG_FACTOR + 1.0) {
        counter + 1
    } else {
        counter
    }
}

/// How much `entry` should go under `policy` at `now_ms` (higher first), or
/// `None` if it may not go.
pub(crate) fn score(policy: EvictionPolicy, entry: &Entry, now_ms: u64) -> Option<u64> {
    if policy.volatile_only() && entry.deadline == NO_DEADLINE {
        return None;
    }
    Some(match policy {
        EvictionPolicy::NoEviction => return None,
        EvictionPolicy::AllKeysLru | EvictionPolicy::VolatileLru => entry.access.idle_ms(now_ms),
        EvictionPolicy::AllKeysLfu | EvictionPolicy::VolatileLfu => {
            u64::from(255 - entry.access.frequency(now_ms).min(255))
        }
        EvictionPolicy::AllKeysRandom | EvictionPolicy::VolatileRandom => fastrand::u64(..),
        EvictionPolicy::VolatileTtl => u64::MAX - entry.deadline,
    })
}
