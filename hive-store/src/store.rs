//! The store: shards behind locks, the clock, and the read and write paths every
//! typed operation goes through.

use std::cell::Cell;
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{RwLock, RwLockWriteGuard};

use crate::budget::{Budget, Reservation};
use crate::clock::{Clock, SystemClock};
use crate::config::{Limits, StoreConfig};
use crate::entry::{Entry, Kind, NEVER};
use crate::error::{Result, StoreError};
use crate::evict::{Eviction, EvictionPolicy, Evictor};
use crate::shard::{Shard, Shared, Write, hasher};
use crate::version::Version;

/// A sharded, in-memory store of typed entries with TTLs, versions and a memory
/// budget. `Send + Sync`; share it behind an `Arc`.
///
/// Each operation locks one shard for the time it takes to do its work in
/// memory (nanoseconds to microseconds); nothing waits on I/O under a lock.
#[derive(Debug)]
pub struct Store {
    shards: Box<[ShardCell]>,
    mask: usize,
    shared: Shared,
    clock: Arc<dyn Clock>,
}

/// Items a batch operation handles under one lock acquisition, at most, so a
/// batch never holds a shard for long.
const BATCH_RUN: usize = 64;

/// Keys a write evicts to make room, at most: a write's latency stays
/// bounded; background eviction ([`Store::evict_to`]) keeps room ahead.
const MAX_EVICTIONS_PER_WRITE: usize = 64;

/// Bytes a write wants free before it runs, under a policy that evicts:
/// 64 KiB, or a sixteenth of a smaller limit.
fn headroom(limit: u64) -> u64 {
    (limit / 16).min(64 * 1024)
}

/// A shard lock on its own cache lines, so neighbouring shards do not contend.
#[derive(Debug)]
#[repr(align(128))]
struct ShardCell(RwLock<Shard>);

/// The current time, read from the clock at most once per operation and only
/// when the operation needs it.
#[derive(Debug)]
pub(crate) struct Now<'a> {
    clock: &'a dyn Clock,
    ms: Cell<Option<u64>>,
}

impl Now<'_> {
    pub(crate) fn get(&self) -> u64 {
        if let Some(ms) = self.ms.get() {
            return ms;
        }
        let ms = self.clock.now_ms();
        self.ms.set(Some(ms));
        ms
    }
}

impl Store {
    /// Returns an empty store on the system clock.
    pub fn new(config: StoreConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// Returns an empty store reading time from `clock`.
    pub fn with_clock(config: StoreConfig, clock: Arc<dyn Clock>) -> Self {
        let count = config.shards.clamp(1, 1 << 16).next_power_of_two();
        Self {
            shards: (0..count)
                .map(|_| ShardCell(RwLock::new(Shard::new())))
                .collect(),
            mask: count - 1,
            shared: Shared {
                hasher: hasher(),
                budget: Budget::new(config.mem_limit),
                node_tag: config.node_tag,
                keep_tombstones: config.tombstones,
                tombstone_epoch: std::sync::atomic::AtomicU64::new(0),
                limits: config.limits,
                evictor: Evictor::new(config.eviction),
            },
            clock,
        }
    }

    /// Returns the size limits this store enforces.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Returns the current time of the store's clock, in Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Returns the number of keys held, counting expired keys not yet reclaimed.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|cell| cell.0.read().len()).sum()
    }

    /// Returns true if the store holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the bytes accounted to keys, values, per-entry overhead and
    /// tombstones.
    pub fn memory_bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|cell| cell.0.read().mem() as u64)
            .sum()
    }

    /// Returns the number of tombstones held.
    pub fn tombstone_count(&self) -> usize {
        self.shards
            .iter()
            .map(|cell| cell.0.read().tombstone_count())
            .sum()
    }

    /// Returns how many changes were made to keys since the store was
    /// created — writes, arriving copies, hand-offs, expiries — wrapping at
    /// `u64::MAX`: the difference between two readings is what changed in
    /// between (what a snapshot taken at the first would miss).
    pub fn changes(&self) -> u64 {
        self.shards
            .iter()
            .fold(0u64, |sum, cell| sum.wrapping_add(cell.0.read().changes()))
    }

    /// Returns the number of shards (the unit the janitor sweeps).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Returns the live keys (a snapshot, in no particular order).
    pub fn keys(&self) -> Vec<Bytes> {
        let now = self.clock.now_ms();
        let mut keys = Vec::new();
        for cell in &self.shards {
            cell.0.read().for_each(|key, entry| {
                if !entry.is_expired(now) {
                    keys.push(key.clone());
                }
            });
        }
        keys
    }

    /// Returns the live keys of shard `shard` with their kinds (a snapshot;
    /// empty past the last shard): one step of a scan over the whole store.
    pub fn shard_keys(&self, shard: usize) -> Vec<(Bytes, Kind)> {
        let Some(cell) = self.shards.get(shard) else {
            return Vec::new();
        };
        let now = self.clock.now_ms();
        let mut keys = Vec::new();
        cell.0.read().for_each(|key, entry| {
            if !entry.is_expired(now) {
                keys.push((key.clone(), entry.data.kind()));
            }
        });
        keys
    }

    /// Returns the keys of shard `shard` that hold a live entry or a tombstone
    /// (a snapshot; empty past the last shard): what a rebalance may move.
    pub fn held_keys(&self, shard: usize) -> Vec<Bytes> {
        let Some(cell) = self.shards.get(shard) else {
            return Vec::new();
        };
        let now = self.clock.now_ms();
        let shard = cell.0.read();
        let mut keys = Vec::with_capacity(shard.len() + shard.tombstone_count());
        shard.for_each(|key, entry| {
            if !entry.is_expired(now) {
                keys.push(key.clone());
            }
        });
        shard.for_each_tombstone(|key| keys.push(key.clone()));
        keys
    }

    /// Returns the keys that have a tombstone (a snapshot).
    pub fn tombstone_keys(&self) -> Vec<Bytes> {
        let mut keys = Vec::new();
        for cell in &self.shards {
            cell.0
                .read()
                .for_each_tombstone(|key| keys.push(key.clone()));
        }
        keys
    }

    /// Removes the live entry of `key`, leaving no tombstone, if its version is
    /// exactly `version`: for dropping a copy that was handed to the key's new
    /// owners, but never a newer write that arrived since. Returns whether it
    /// removed the entry.
    pub fn remove_if_version(&self, key: &[u8], version: Version) -> bool {
        let (hash, cell) = self.locate(key);
        cell.0
            .write()
            .remove_if_version(&self.shared, hash, key, version)
    }

    /// Reclaims up to `limit` due entries of shard `shard` (expired keys and
    /// elements) under one short lock. Returns how many it handled and whether
    /// more are due in that shard.
    pub fn sweep_shard(&self, shard: usize, limit: usize) -> (usize, bool) {
        let Some(cell) = self.shards.get(shard) else {
            return (0, false);
        };
        let now = self.clock.now_ms();
        self.shared.evictor.saw_time(now);
        cell.0.write().sweep(&self.shared, now, limit)
    }

    /// Reclaims everything that is due in every shard, taking each lock for at
    /// most `limit_per_lock` entries at a time. Returns the entries handled.
    pub fn sweep(&self, limit_per_lock: usize) -> usize {
        let limit = limit_per_lock.max(1);
        let mut handled = 0;
        for shard in 0..self.shards.len() {
            loop {
                let (done, more) = self.sweep_shard(shard, limit);
                handled += done;
                if !more {
                    break;
                }
            }
        }
        handled
    }

    /// Drops every entry and tombstone (without tombstones for them: the
    /// store forgets it held anything), as a restarted empty store would be.
    pub fn clear(&self) {
        for cell in self.shards.iter() {
            cell.0.write().clear(&self.shared);
        }
    }

    /// Starts a new burial epoch and returns it: tombstones made from now on
    /// (deletes, expiries, incoming tombstones) carry it. Retention is counted
    /// in epochs, which the store's owner advances on its own schedule (the
    /// cluster: on a monotonic timer), so no step of the wall clock can make
    /// a tombstone look old.
    pub fn next_tombstone_epoch(&self) -> u64 {
        self.shared
            .tombstone_epoch
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// Returns the burial epoch tombstones made now carry.
    pub fn tombstone_epoch(&self) -> u64 {
        self.shared
            .tombstone_epoch
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops the tombstones buried (or last re-buried) in an epoch before
    /// `before`; returns how many were dropped. The caller decides when no
    /// older copy can come back any more (spec: cluster.md G5).
    pub fn purge_tombstones(&self, before: u64) -> usize {
        self.shards
            .iter()
            .map(|cell| cell.0.write().purge_tombstones(&self.shared, before))
            .sum()
    }

    /// Drops the tombstone of `key` if it carries exactly `version`.
    pub fn forget_tombstone(&self, key: &[u8], version: Version) -> bool {
        let (_, cell) = self.locate(key);
        cell.0.write().forget_tombstone(&self.shared, key, version)
    }

    /// Returns how the store evicts.
    pub fn eviction(&self) -> Eviction {
        self.shared.evictor.get()
    }

    /// Changes how the store evicts, while it serves. Under a new policy the
    /// access records of the keys already held mean little until they are
    /// touched again, as in Redis.
    pub fn set_eviction(&self, eviction: Eviction) {
        self.shared.evictor.set(eviction);
    }

    /// Returns how many keys were evicted since the store was created.
    pub fn evicted(&self) -> u64 {
        self.shared.evictor.evicted()
    }

    /// Evicts keys by the store's policy until its memory budget holds at
    /// most `target` bytes, or `max_keys` went, or nothing more may go;
    /// returns how many went. For its owner's background eviction; a store
    /// without a memory limit or with [`EvictionPolicy::NoEviction`] evicts
    /// nothing.
    pub fn evict_to(&self, target: u64, max_keys: usize) -> usize {
        let budget = &self.shared.budget;
        let mut evicted = 0;
        while budget.is_limited() && budget.used() > target && evicted < max_keys {
            if !self.evict_one() {
                break;
            }
            evicted += 1;
        }
        evicted
    }

    /// Makes sure a write finds room: with a memory limit and a policy that
    /// evicts, evicts keys (a bounded number) while less than
    /// [`headroom`] is free. A write that needs more than that still fails
    /// with `CapacityExceeded` if it does not fit.
    pub(crate) fn make_room(&self) {
        let budget = &self.shared.budget;
        if !budget.is_limited() {
            return;
        }
        let headroom = headroom(budget.limit());
        if budget.limit().saturating_sub(budget.used()) >= headroom
            || self.shared.evictor.policy() == EvictionPolicy::NoEviction
        {
            return;
        }
        for _ in 0..MAX_EVICTIONS_PER_WRITE {
            if budget.limit().saturating_sub(budget.used()) >= headroom || !self.evict_one() {
                break;
            }
        }
    }

    /// Evicts one key chosen by the store's policy; false if none may go.
    fn evict_one(&self) -> bool {
        let evictor = &self.shared.evictor;
        let Eviction { policy, samples } = evictor.get();
        if policy == EvictionPolicy::NoEviction {
            return false;
        }
        let now = self.clock.now_ms();
        evictor.saw_time(now);
        // Shards in turn from a random one, so a few keys that may go are
        // found wherever they are; twice round at most.
        let first = fastrand::usize(..self.shards.len());
        for round in 0..self.shards.len() * 2 {
            let shard = (first + round) & self.mask;
            let sampled =
                self.shards[shard]
                    .0
                    .read()
                    .sample(&self.shared, (policy, samples), now, shard);
            evictor.offer(sampled);
            // The best candidate still as it was sampled goes; one changed
            // since (a newer version) or gone is dropped from the pool.
            while let Some(best) = evictor.best() {
                let hash = self.shared.hasher.hash_one(&best.key[..]);
                let removed = self.shards[best.shard].0.write().remove_if_version(
                    &self.shared,
                    hash,
                    &best.key,
                    best.version,
                );
                if removed {
                    evictor.count_eviction();
                    return true;
                }
            }
        }
        false
    }

    /// Reads the clock, so that reads stamp their accesses with a recent
    /// time: they use the latest time the store read, to spare a clock read
    /// each. Writes, sweeps and evictions read it too; an owner whose store
    /// may go without them calls this periodically (a node does, every
    /// 100 ms).
    pub fn tick(&self) {
        self.shared.evictor.saw_time(self.clock.now_ms());
    }

    /// Returns the seconds since `key` was last read or written (Redis's
    /// `OBJECT IDLETIME`, to within 64 ms and the last [`Store::tick`]),
    /// `None` if it is absent; the question does not count as an access.
    /// Fails with `InvalidArgument` under an LFU policy, which does not
    /// track recency.
    pub fn idle_seconds(&self, key: &[u8]) -> Result<Option<u64>> {
        if self.counts_frequency() {
            return Err(StoreError::InvalidArgument(
                "An LFU maxmemory policy is selected, idle time not tracked. Please note that \
                 when switching between policies at runtime LRU and LFU data will take some \
                 time to adjust."
                    .into(),
            ));
        }
        self.peek(key, |entry, now| entry.access.idle_ms(now) / 1000)
    }

    /// Returns `key`'s LFU access counter (Redis's `OBJECT FREQ`: 0 to 255,
    /// logarithmic, decaying by one per idle minute), `None` if it is
    /// absent; the question does not count as an access. Fails with
    /// `InvalidArgument` unless an LFU policy is selected.
    pub fn access_frequency(&self, key: &[u8]) -> Result<Option<u64>> {
        if !self.counts_frequency() {
            return Err(StoreError::InvalidArgument(
                "An LFU maxmemory policy is not selected, access frequency not tracked. Please \
                 note that when switching between policies at runtime LRU and LFU data will \
                 take some time to adjust."
                    .into(),
            ));
        }
        self.peek(key, |entry, now| u64::from(entry.access.frequency(now)))
    }

    /// Runs `f` on the live entry of `key` and the time, under the read
    /// lock, without touching its access record.
    fn peek<R>(&self, key: &[u8], f: impl FnOnce(&Entry, u64) -> R) -> Result<Option<R>> {
        self.shared.limits.check_key(key)?;
        let now = self.clock.now_ms();
        let (hash, cell) = self.locate(key);
        let shard = cell.0.read();
        Ok(shard
            .find(hash, key)
            .filter(|entry| !entry.is_expired(now))
            .map(|entry| f(entry, now)))
    }

    /// Whether access records count frequency (an LFU policy).
    fn counts_frequency(&self) -> bool {
        self.shared.evictor.policy().counts_frequency()
    }

    /// Verifies the store's internal invariants (memory accounting, expiry index,
    /// no empty collections, versions behind the clock). Meant for tests; takes
    /// every shard lock in turn.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let now = self.clock.now_ms();
        for (index, cell) in self.shards.iter().enumerate() {
            cell.0
                .read()
                .check_invariants(now)
                .map_err(|err| format!("shard {index}: {err}"))?;
        }
        Ok(())
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    fn locate(&self, key: &[u8]) -> (u64, &ShardCell) {
        let hash = self.shared.hasher.hash_one(key);
        (hash, &self.shards[self.shard_of(hash)])
    }

    /// The shard a key hash belongs to. The table uses the low bits and the
    /// top seven; shards take the middle.
    fn shard_of(&self, hash: u64) -> usize {
        (hash >> 32) as usize & self.mask
    }

    /// Runs `read` on the live entry of `key` (`None` if absent or expired).
    ///
    /// Takes the shard's read lock; only if the entry has something due (its
    /// deadline, or an element's) does it take the write lock once to reclaim it.
    pub(crate) fn read<R>(
        &self,
        key: &[u8],
        read: impl FnOnce(Option<&Entry>, &Now<'_>) -> Result<R>,
    ) -> Result<R> {
        self.shared.limits.check_key(key)?;
        let now = Now {
            clock: &*self.clock,
            ms: Cell::new(None),
        };
        let (hash, cell) = self.locate(key);
        {
            let shard = cell.0.read();
            match shard.find(hash, key) {
                None => return read(None, &now),
                Some(entry) => {
                    let wake = entry.wake_at();
                    if wake == NEVER || wake > now.get() {
                        entry
                            .access
                            .touch(self.counts_frequency(), self.shared.evictor.now_ms());
                        return read(Some(entry), &now);
                    }
                }
            }
        }
        let mut shard = cell.0.write();
        shard.maintain(&self.shared, hash, key, now.get());
        let shard = RwLockWriteGuard::downgrade(shard);
        read(shard.find(hash, key), &now)
    }

    /// Runs the write operation `op` on `key` under the shard's write lock. `op`
    /// gets the live entry (or `None`), a memory reservation, and the time.
    pub(crate) fn write<R>(
        &self,
        key: &[u8],
        op: impl FnOnce(Option<&mut Entry>, &mut Reservation<'_>, u64) -> Result<Write<R>>,
    ) -> Result<R> {
        self.shared.limits.check_key(key)?;
        self.make_room();
        let (hash, cell) = self.locate(key);
        let mut shard = cell.0.write();
        let now = self.clock.now_ms();
        self.shared.evictor.saw_time(now);
        shard.write(&self.shared, hash, key, now, |entry, reservation| {
            op(entry, reservation, now)
        })
    }

    /// Runs `f` on each of `items`, in order, under the write lock of the shard
    /// holding its key (`key_of`), with the key's hash and the time. Consecutive
    /// items of one shard share a lock acquisition and a clock read, up to
    /// [`BATCH_RUN`] of them: what batch operations save over single ones, on
    /// top of finding that shard's table still in cache.
    pub(crate) fn for_each_locked<T, R>(
        &self,
        items: impl IntoIterator<Item = T>,
        key_of: impl Fn(&T) -> &[u8],
        mut f: impl FnMut(&mut Shard, u64, u64, T) -> R,
    ) -> Vec<R> {
        let items = items.into_iter();
        let mut results = Vec::with_capacity(items.size_hint().0);
        let mut held: Option<(usize, RwLockWriteGuard<'_, Shard>, u64)> = None;
        let mut run = 0;
        for item in items {
            let hash = self.shared.hasher.hash_one(key_of(&item));
            let index = self.shard_of(hash);
            if run == BATCH_RUN || held.as_ref().is_none_or(|(at, ..)| *at != index) {
                // Unlock before locking the next shard, and make room
                // with no lock held (arrivals pass through eviction too).
                drop(held.take());
                self.make_room();
                let shard = self.shards[index].0.write();
                let now = self.clock.now_ms();
                self.shared.evictor.saw_time(now);
                held = Some((index, shard, now));
                run = 0;
            }
            run += 1;
            let (_, shard, now) = held.as_mut().expect("locked above");
            results.push(f(shard, hash, *now, item));
        }
        results
    }

    /// Runs `f` on the shard holding `key`, under its write lock.
    /// Returns the lock of shard `index`, `None` past the last shard.
    pub(crate) fn shard_lock(&self, index: usize) -> Option<&RwLock<Shard>> {
        self.shards.get(index).map(|cell| &cell.0)
    }

    /// Returns the store's clock.
    pub(crate) fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    pub(crate) fn with_shard<R>(&self, key: &[u8], f: impl FnOnce(&mut Shard, u64, u64) -> R) -> R {
        let (hash, cell) = self.locate(key);
        let mut shard = cell.0.write();
        let now = self.clock.now_ms();
        self.shared.evictor.saw_time(now);
        f(&mut shard, hash, now)
    }
}
