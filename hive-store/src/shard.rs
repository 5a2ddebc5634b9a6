//! One shard: a hash table of slots, its expiry index, its tombstones, its
//! hybrid logical clock and its byte count, all behind one lock held by the store.
//!
//! Every change to a key goes through [`Shard::write`], [`Shard::maintain`] or
//! [`Shard::apply`], which keep these invariants:
//! - a live entry is never expired at the time of the change, and never an empty
//!   collection;
//! - the expiry index holds exactly `(entry.wake_at(), key)` for every entry that
//!   has a wake-up time, so the janitor finds due entries without scanning;
//! - `entry.mem` equals [`entry_size`] and `Shard::mem` the sum over entries and
//!   tombstones (checked by [`Shard::check_invariants`] in tests);
//! - every version issued or received is observed by the shard's clock, so a new
//!   version of a key is always greater than any it replaces.

use std::collections::BTreeSet;
use std::hash::BuildHasher;

use bytes::Bytes;
use foldhash::fast::FixedState;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry as TableEntry;

use crate::budget::{Budget, Reservation};
use crate::config::Limits;
use crate::entry::{Data, Entry, NEVER, Slot, TOMBSTONE_OVERHEAD, entry_size};
use crate::error::{Result, StoreError};
use crate::evict::{self, Access, Candidate, EvictionPolicy, Evictor};
use crate::version::{Hlc, Version};

/// Hash map with the store's fast, fixed-seed hasher.
pub(crate) type FastMap<K, V> = hashbrown::HashMap<K, V, FixedState>;

/// Seed of every hasher in the store; fixed so shard placement is the same on
/// every run.
const HASH_SEED: u64 = 0x6869_7665_5f73_7464;

/// Returns the store's hasher.
pub(crate) fn hasher() -> FixedState {
    FixedState::with_seed(HASH_SEED)
}

/// Returns an empty [`FastMap`].
pub(crate) fn fast_map<K, V>() -> FastMap<K, V> {
    FastMap::with_hasher(hasher())
}

/// What the store shares with every shard.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) hasher: FixedState,
    pub(crate) budget: Budget,
    pub(crate) node_tag: u64,
    pub(crate) keep_tombstones: bool,
    pub(crate) limits: Limits,
    /// The burial epoch new tombstones carry ([`Store::next_tombstone_epoch`](crate::Store::next_tombstone_epoch)).
    pub(crate) tombstone_epoch: std::sync::atomic::AtomicU64,
    /// Eviction settings and candidates.
    pub(crate) evictor: Evictor,
}

/// What a write operation did, reported back to the shard, which then settles
/// versions, memory, the expiry index and tombstones in one place.
#[derive(Debug)]
pub(crate) enum Write<R> {
    /// Nothing changed.
    Unchanged(R),
    /// The existing entry was changed in place; memory was reserved through the
    /// [`Reservation`]. A collection left empty is removed.
    Updated(R),
    /// The key now holds `data` with `deadline`, replacing whatever it held.
    Put { data: Data, deadline: u64, reply: R },
    /// The key is deleted.
    Delete(R),
}

/// An entry arriving from another store, already converted to local time.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// The key was deleted.
    Tombstone,
    /// The key expired before it arrived.
    Expired,
    /// The key holds `data` until `deadline`.
    Live { data: Data, deadline: u64 },
}

/// The outcome of applying an exported entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The incoming entry was newer and is now stored.
    Stored,
    /// The incoming entry was a tombstone, newer than what was here: the key is deleted.
    Deleted,
    /// The incoming entry had expired by the time it arrived; the key is deleted
    /// if it was older.
    Expired,
    /// What is here is as new or newer; nothing changed.
    Stale,
    /// What is here is newer than the state the incoming one was built on and
    /// was stamped by another writer: the sender's state lacks a write this
    /// store holds, and taking it would lose that write. Nothing changed
    /// ([`Store::apply_built_on`](crate::Store::apply_built_on)).
    Diverged,
}

/// Which incoming states [`Shard::apply`] takes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Accept {
    /// A newer version (transfers, catch-up: last writer wins).
    Newer,
    /// A newer version built on what is here: what is here is at or below the
    /// given base — the version the sender's state was built on — or was
    /// stamped by the same writer (an earlier state of the same chain of
    /// writes).
    BuiltOn(Version),
    /// Any other version, older ones too: the local state is replaced.
    Any,
}

/// A shard of the store. See the module documentation for its invariants.
#[derive(Debug)]
pub(crate) struct Shard {
    table: HashTable<Slot>,
    expiry: BTreeSet<(u64, Bytes)>,
    tombstones: FastMap<Bytes, Tombstone>,
    hlc: Hlc,
    mem: usize,
    /// The copy of the shard a snapshot is taking, if one is.
    capture: Option<Capture>,
    /// Changes made to keys since the shard was created (writes, arrivals,
    /// hand-offs, expiries), wrapping: what a snapshot would now miss.
    changes: u64,
    /// Times the table's slots may have moved (it grew, or was rehashed in
    /// place), wrapping: a capture reading slots by their bucket index
    /// lists them again when this changes.
    layout: u64,
}

/// A shard's contents as a capture lists them: the slots by bucket index
/// (no key is touched to list them), valid while the layout is unchanged,
/// and the tombstoned keys.
#[derive(Debug)]
pub(crate) struct Listing {
    pub(crate) layout: u64,
    pub(crate) buckets: Vec<usize>,
    pub(crate) tombstones: Vec<Bytes>,
}

/// A copy of a shard as of one instant, taken a slice of keys at a time
/// while the shard keeps changing (a snapshot): the copy reads unchanged
/// keys from the table, and every change made meanwhile first keeps the
/// key's state as of the instant here (copy-on-write, per key). Expiry is
/// no change: what expires after the instant would have expired by any load.
///
/// "Unchanged since the instant" is read off versions: every version the
/// shard holds was stamped or observed by its clock, so one at or below the
/// clock's value at the instant was there then.
#[derive(Debug)]
pub(crate) struct Capture {
    /// The shard clock's value at the instant.
    cut: u64,
    /// The instant (Unix ms).
    at_ms: u64,
    /// The keys changed since the instant, as they were at it.
    before: Vec<(Bytes, Prior)>,
}

/// A key's state at a capture's instant: `Prior<Entry>` kept, `Prior<&Entry>`
/// read from the table.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Prior<E = Entry> {
    /// A live entry.
    Live(E),
    /// A tombstone of this version.
    Tombstone(Version),
}

impl Prior {
    /// The state, borrowed.
    pub(crate) fn as_ref(&self) -> Prior<&Entry> {
        match self {
            Prior::Live(entry) => Prior::Live(entry),
            Prior::Tombstone(version) => Prior::Tombstone(*version),
        }
    }
}

/// What a finished capture hands back: the states at its instant of the
/// keys that changed since.
pub(crate) type Captured = Vec<(Bytes, Prior)>;

impl Capture {
    /// Keeps `entry` as `key`'s state at the instant if it is unchanged
    /// since (and was live then); returns whether it did.
    fn keep_entry(&mut self, key: &Bytes, entry: &Entry) -> bool {
        let keep = entry.version.hlc <= self.cut && !entry.is_expired(self.at_ms);
        if keep {
            self.before.push((key.clone(), Prior::Live(entry.clone())));
        }
        keep
    }

    /// Keeps a tombstone of `version` as `key`'s state at the instant if it
    /// is unchanged since.
    fn keep_tombstone(&mut self, key: &[u8], version: Version) {
        if version.hlc <= self.cut {
            self.before
                .push((Bytes::copy_from_slice(key), Prior::Tombstone(version)));
        }
    }

    /// Forgets the state kept last: the change it was kept for did not happen.
    fn unkeep(&mut self, kept: bool) {
        if kept {
            self.before.pop();
        }
    }
}

impl Shard {
    pub(crate) fn new() -> Self {
        Self {
            table: HashTable::new(),
            expiry: BTreeSet::new(),
            tombstones: fast_map(),
            hlc: Hlc::default(),
            mem: 0,
            capture: None,
            changes: 0,
            layout: 0,
        }
    }

    /// Starts capturing the shard as of `now` for a snapshot: from here on
    /// every change to a key unchanged since keeps its prior state. The copy
    /// then lists the keys ([`Shard::capture_keys`], under a read lock: a
    /// key created since is skipped by its version, one deleted since is in
    /// the kept states), reads them a slice at a time ([`Shard::captured`])
    /// and takes what changed ([`Shard::end_capture`]). A capture already
    /// running is replaced.
    pub(crate) fn begin_capture(&mut self, now: u64) {
        self.capture = Some(Capture {
            cut: self.hlc.last(),
            at_ms: now,
            before: Vec::new(),
        });
    }

    /// Lists the shard for a capture to read: the table's occupied buckets
    /// (read with [`Shard::captured_bucket`] while [`Shard::layout`] stays
    /// the listing's) and the tombstoned keys.
    pub(crate) fn capture_listing(&self) -> Listing {
        Listing {
            layout: self.layout,
            buckets: self.table.iter_buckets().collect(),
            tombstones: self.tombstones.keys().cloned().collect(),
        }
    }

    /// See [`Shard::layout`](Shard#structfield.layout).
    pub(crate) fn layout(&self) -> u64 {
        self.layout
    }

    /// Returns the key in bucket `index` and its state at the capture's
    /// instant, if it was live then and is unchanged since.
    pub(crate) fn captured_bucket(&self, index: usize) -> Option<(&Bytes, Prior<&Entry>)> {
        let capture = self.capture.as_ref()?;
        let slot = self.table.get_bucket(index)?;
        let entry = &slot.entry;
        (entry.version.hlc <= capture.cut && !entry.is_expired(capture.at_ms))
            .then_some((&slot.key, Prior::Live(entry)))
    }

    /// Returns the keys and tombstoned keys, for a capture to read.
    pub(crate) fn capture_keys(&self) -> Vec<Bytes> {
        let mut keys = Vec::with_capacity(self.table.len() + self.tombstones.len());
        keys.extend(self.table.iter().map(|slot| slot.key.clone()));
        keys.extend(self.tombstones.keys().cloned());
        keys
    }

    /// Returns `key`'s state at the capture's instant if it is unchanged
    /// since (otherwise [`Shard::end_capture`] has it, if it existed then).
    pub(crate) fn captured(&self, hash: u64, key: &[u8]) -> Option<Prior<&Entry>> {
        let capture = self.capture.as_ref()?;
        if let Some(entry) = self.find(hash, key) {
            return (entry.version.hlc <= capture.cut && !entry.is_expired(capture.at_ms))
                .then_some(Prior::Live(entry));
        }
        self.tombstone(key)
            .filter(|version| version.hlc <= capture.cut)
            .map(Prior::Tombstone)
    }

    /// Returns how many changes were made to keys since the shard was
    /// created (wrapping).
    pub(crate) fn changes(&self) -> u64 {
        self.changes
    }

    /// Ends the capture and returns the states at its instant of the keys
    /// changed since; `None` if there was none (the shard was cleared).
    pub(crate) fn end_capture(&mut self) -> Option<Captured> {
        self.capture.take().map(|capture| capture.before)
    }

    /// Samples up to `count` keys from a random spot of the table and
    /// returns those `policy` lets go, scored; `shard` is this shard's index.
    /// Under `volatile-ttl` the samples are the keys whose deadlines come
    /// first in the expiry index; under another `volatile-*` policy that
    /// finds no key with a TTL in the table's sample, they come from the
    /// expiry index too, so the last few keys with a TTL are still found.
    pub(crate) fn sample(
        &self,
        shared: &Shared,
        (policy, count): (EvictionPolicy, usize),
        now: u64,
        shard: usize,
    ) -> Vec<Candidate> {
        let mut sampled = Vec::with_capacity(count);
        let candidate = |slot: &Slot| {
            evict::score(policy, &slot.entry, now).map(|score| Candidate {
                score,
                shard,
                key: slot.key.clone(),
                version: slot.entry.version,
            })
        };
        if policy == EvictionPolicy::VolatileTtl {
            // The soonest deadlines: exactly the keys the policy wants.
            if let Some((first, _)) = self.expiry.first() {
                self.expiring_from(shared, *first, count, &mut |slot| {
                    sampled.extend(candidate(slot));
                });
            }
            return sampled;
        }
        let buckets = self.table.num_buckets();
        if !self.table.is_empty() && buckets > 0 {
            // Walks on from a random bucket, so a sparse table costs a
            // longer walk, not a failed one; bounded by the table's size.
            let start = fastrand::usize(..buckets);
            let mut seen = 0;
            for offset in 0..buckets {
                if let Some(slot) = self.table.get_bucket((start + offset) & (buckets - 1)) {
                    sampled.extend(candidate(slot));
                    seen += 1;
                    if seen == count {
                        break;
                    }
                }
            }
        }
        if sampled.is_empty()
            && policy.volatile_only()
            && let (Some(first), Some(last)) = (self.expiry.first(), self.expiry.last())
        {
            let start = fastrand::u64(first.0..=last.0);
            self.expiring_from(shared, start, count, &mut |slot| {
                sampled.extend(candidate(slot));
            });
        }
        sampled
    }

    /// Hands `visit` the slots of up to `count` keys of the expiry index,
    /// from wake time `start` on (wrapping round).
    fn expiring_from(
        &self,
        shared: &Shared,
        start: u64,
        count: usize,
        visit: &mut impl FnMut(&Slot),
    ) {
        let from = (start, Bytes::new());
        let keys = self.expiry.range(&from..).chain(self.expiry.range(..&from));
        for (_, key) in keys.take(count) {
            let hash = shared.hasher.hash_one(&key[..]);
            if let Some(slot) = self.table.find(hash, |slot| slot.key == *key) {
                visit(slot);
            }
        }
    }

    /// Counts a possible move of the table's slots before a call that
    /// makes room for one more slot: that grows or rehashes the table when
    /// it has no room left ([`HashTable::capacity`] reached).
    fn note_growth(&mut self) {
        if self.table.len() == self.table.capacity() {
            self.layout = self.layout.wrapping_add(1);
        }
    }

    /// Drops every entry and tombstone, releasing their memory; the clock
    /// keeps its value, so later versions still order after earlier ones.
    pub(crate) fn clear(&mut self, shared: &Shared) {
        self.table = HashTable::new();
        self.layout = self.layout.wrapping_add(1);
        self.expiry = BTreeSet::new();
        self.tombstones = fast_map();
        self.capture = None;
        shared.budget.release(self.mem);
        self.mem = 0;
    }

    /// Returns the entry stored under `key`, live or not yet maintained.
    pub(crate) fn find(&self, hash: u64, key: &[u8]) -> Option<&Entry> {
        self.table
            .find(hash, |slot| slot.key[..] == *key)
            .map(|slot| &slot.entry)
    }

    /// Returns the number of keys held, including expired ones not yet reclaimed.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Returns the bytes accounted to this shard.
    pub(crate) fn mem(&self) -> usize {
        self.mem
    }

    /// Returns the number of tombstones held.
    pub(crate) fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }

    /// Returns the version of what the shard holds for `key`: its entry's, or
    /// its tombstone's.
    pub(crate) fn version(&self, hash: u64, key: &[u8]) -> Option<Version> {
        self.find(hash, key)
            .map(|entry| entry.version)
            .or_else(|| self.tombstone(key))
    }

    /// Returns the version a tombstone for `key` carries.
    pub(crate) fn tombstone(&self, key: &[u8]) -> Option<Version> {
        self.tombstones.get(key).map(|tombstone| tombstone.version)
    }

    /// Calls `f` with every key and its entry.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Bytes, &Entry)) {
        for slot in &self.table {
            f(&slot.key, &slot.entry);
        }
    }

    /// Brings `key` up to date at `now`: removes it if it has expired, drops its
    /// expired elements, and removes it if that left it empty.
    pub(crate) fn maintain(&mut self, shared: &Shared, hash: u64, key: &[u8], now: u64) {
        let Ok(mut occupied) = self.table.find_entry(hash, |slot| slot.key[..] == *key) else {
            return;
        };
        let slot = occupied.get_mut();
        let wake = slot.entry.wake_at();
        if wake > now {
            return;
        }
        self.changes = self.changes.wrapping_add(1);
        if !slot.entry.is_expired(now) {
            let freed = slot.entry.data.purge_expired(now);
            slot.entry.mem -= freed;
            self.mem -= freed;
            shared.budget.release(freed);
            if !slot.entry.data.is_empty() {
                reindex(&mut self.expiry, &slot.key, wake, slot.entry.wake_at());
                return;
            }
        }
        let (slot, _) = occupied.remove();
        self.unlink(shared, slot, wake, None);
    }

    /// Runs a write operation on `key` at `now` and settles its outcome.
    ///
    /// A key with something due is maintained first, so `op` sees it live or
    /// absent. `op` must
    /// validate everything and reserve memory before it mutates: an error from
    /// `op` leaves the entry untouched.
    pub(crate) fn write<R>(
        &mut self,
        shared: &Shared,
        hash: u64,
        key: &[u8],
        now: u64,
        op: impl FnOnce(Option<&mut Entry>, &mut Reservation<'_>) -> Result<Write<R>>,
    ) -> Result<R> {
        self.note_growth();
        let hasher = &shared.hasher;
        match self.table.entry(
            hash,
            |slot| slot.key[..] == *key,
            |slot| hasher.hash_one(&slot.key[..]),
        ) {
            TableEntry::Occupied(mut occupied) => {
                let slot = occupied.get_mut();
                let old_wake = slot.entry.wake_at();
                if old_wake <= now {
                    // Something is due: settle it, then run on what is left. The
                    // second pass finds nothing due, so this recurses once at most.
                    self.maintain(shared, hash, key, now);
                    return self.write(shared, hash, key, now, op);
                }
                slot.entry
                    .access
                    .touch(shared.evictor.policy().counts_frequency(), now);
                let size = slot.entry.data_size(key);
                // `op` changes the entry in place: keep its state first.
                let kept = self
                    .capture
                    .as_mut()
                    .is_some_and(|capture| capture.keep_entry(&slot.key, &slot.entry));
                let mut reservation = Reservation::new(&shared.budget, &shared.limits, size);
                let outcome = match op(Some(&mut slot.entry), &mut reservation) {
                    Ok(outcome) => outcome,
                    Err(err) => {
                        reservation.cancel();
                        if let Some(capture) = &mut self.capture {
                            capture.unkeep(kept);
                        }
                        return Err(err);
                    }
                };
                match outcome {
                    Write::Unchanged(reply) => {
                        if let Some(capture) = &mut self.capture {
                            capture.unkeep(kept);
                        }
                        let delta = reservation.commit();
                        debug_assert_eq!(delta, 0, "an unchanged entry reserved memory");
                        Ok(reply)
                    }
                    Write::Updated(reply) => {
                        self.changes = self.changes.wrapping_add(1);
                        let delta = reservation.commit();
                        slot.entry.mem = slot.entry.mem.wrapping_add_signed(delta);
                        self.mem = self.mem.wrapping_add_signed(delta);
                        slot.entry.version = stamp(&mut self.hlc, shared, now);
                        if slot.entry.data.is_empty() {
                            let version = slot.entry.version;
                            let (slot, _) = occupied.remove();
                            self.unlink(shared, slot, old_wake, Some(version));
                        } else {
                            reindex(&mut self.expiry, &slot.key, old_wake, slot.entry.wake_at());
                        }
                        Ok(reply)
                    }
                    Write::Put {
                        data,
                        deadline,
                        reply,
                    } => {
                        reservation.cancel();
                        shared.limits.check_entry(data.accounted_size())?;
                        let mem = entry_size(key, &data);
                        resize_budget(&shared.budget, slot.entry.mem, mem)?;
                        self.changes = self.changes.wrapping_add(1);
                        self.mem = self.mem - slot.entry.mem + mem;
                        let version = stamp(&mut self.hlc, shared, now);
                        slot.entry = Entry {
                            data,
                            deadline,
                            version,
                            mem,
                            access: slot.entry.access.clone(),
                        };
                        reindex(&mut self.expiry, &slot.key, old_wake, slot.entry.wake_at());
                        Ok(reply)
                    }
                    Write::Delete(reply) => {
                        reservation.cancel();
                        self.changes = self.changes.wrapping_add(1);
                        let version = stamp(&mut self.hlc, shared, now);
                        let (slot, _) = occupied.remove();
                        self.unlink(shared, slot, old_wake, Some(version));
                        Ok(reply)
                    }
                }
            }
            TableEntry::Vacant(vacant) => {
                let mut reservation = Reservation::new(&shared.budget, &shared.limits, 0);
                let outcome = match op(None, &mut reservation) {
                    Ok(outcome) => outcome,
                    Err(err) => {
                        reservation.cancel();
                        return Err(err);
                    }
                };
                reservation.cancel();
                match outcome {
                    Write::Unchanged(reply) | Write::Delete(reply) => Ok(reply),
                    Write::Updated(_) => {
                        debug_assert!(false, "an operation updated an absent key");
                        Err(StoreError::NotFound)
                    }
                    Write::Put {
                        data,
                        deadline,
                        reply,
                    } => {
                        shared.limits.check_entry(data.accounted_size())?;
                        let mem = entry_size(key, &data);
                        shared.budget.try_grow(mem)?;
                        if let (Some(capture), Some(buried)) =
                            (&mut self.capture, self.tombstones.get(key))
                        {
                            capture.keep_tombstone(key, buried.version);
                        }
                        self.mem += mem;
                        self.changes = self.changes.wrapping_add(1);
                        let version = stamp(&mut self.hlc, shared, now);
                        let entry = Entry {
                            data,
                            deadline,
                            version,
                            mem,
                            access: Access::new(shared.evictor.policy().counts_frequency(), now),
                        };
                        let wake = entry.wake_at();
                        let owned = Bytes::copy_from_slice(key);
                        reindex(&mut self.expiry, &owned, NEVER, wake);
                        vacant.insert(Slot { key: owned, entry });
                        self.unbury(shared, key);
                        Ok(reply)
                    }
                }
            }
        }
    }

    /// Stores an entry made elsewhere at `version` if `accept` takes it over
    /// what is here (live entry or tombstone).
    pub(crate) fn apply(
        &mut self,
        shared: &Shared,
        (hash, key): (u64, &[u8]),
        (version, incoming): (Version, Incoming),
        accept: Accept,
        now: u64,
    ) -> Result<Applied> {
        self.maintain(shared, hash, key, now);
        self.hlc.observe(version.hlc);
        let current = self.version(hash, key).unwrap_or(Version::ZERO);
        let taken = match accept {
            Accept::Newer => version > current,
            Accept::BuiltOn(base) => {
                if version > current && current > base && current.node != version.node {
                    return Ok(Applied::Diverged);
                }
                version > current
            }
            Accept::Any => version != current,
        };
        if !taken {
            return Ok(Applied::Stale);
        }
        if version < current {
            // An older state replaces a newer tombstone: `bury` keeps the
            // newer of two.
            self.unbury(shared, key);
        }
        self.changes = self.changes.wrapping_add(1);
        if let Some(capture) = &mut self.capture {
            if let Some(slot) = self.table.find(hash, |slot| slot.key[..] == *key) {
                capture.keep_entry(&slot.key, &slot.entry);
            } else if let Some(buried) = self.tombstones.get(key) {
                capture.keep_tombstone(key, buried.version);
            }
        }
        self.note_growth();
        let hasher = &shared.hasher;
        let entry = self.table.entry(
            hash,
            |slot| slot.key[..] == *key,
            |slot| hasher.hash_one(&slot.key[..]),
        );
        let (data, deadline) = match incoming {
            Incoming::Live { data, deadline } => (data, deadline),
            gone => {
                if let TableEntry::Occupied(occupied) = entry {
                    let (slot, _) = occupied.remove();
                    let wake = slot.entry.wake_at();
                    self.unlink(shared, slot, wake, Some(version));
                } else {
                    self.bury(shared, Bytes::copy_from_slice(key), version);
                }
                return Ok(match gone {
                    Incoming::Tombstone => Applied::Deleted,
                    _ => Applied::Expired,
                });
            }
        };
        let mem = entry_size(key, &data);
        let fresh = Entry {
            data,
            deadline,
            version,
            mem,
            access: Access::new(shared.evictor.policy().counts_frequency(), now),
        };
        let new_wake = fresh.wake_at();
        match entry {
            TableEntry::Occupied(mut occupied) => {
                let slot = occupied.get_mut();
                resize_budget(&shared.budget, slot.entry.mem, mem)?;
                self.mem = self.mem - slot.entry.mem + mem;
                let old_wake = slot.entry.wake_at();
                slot.entry = fresh;
                reindex(&mut self.expiry, &slot.key, old_wake, new_wake);
            }
            TableEntry::Vacant(vacant) => {
                shared.budget.try_grow(mem)?;
                self.mem += mem;
                let owned = Bytes::copy_from_slice(key);
                reindex(&mut self.expiry, &owned, NEVER, new_wake);
                vacant.insert(Slot {
                    key: owned,
                    entry: fresh,
                });
                self.unbury(shared, key);
            }
        }
        Ok(Applied::Stored)
    }

    /// Maintains up to `limit` entries whose wake-up time has come. Returns how
    /// many it looked at and whether more are due.
    pub(crate) fn sweep(&mut self, shared: &Shared, now: u64, limit: usize) -> (usize, bool) {
        for done in 0..limit {
            let Some((wake, key)) = self.expiry.first().cloned() else {
                return (done, false);
            };
            if wake > now {
                return (done, false);
            }
            let hash = shared.hasher.hash_one(&key[..]);
            self.maintain(shared, hash, &key, now);
            // `maintain` re-indexed or removed the key; never spin on an entry
            // that somehow stayed due.
            if self.expiry.first() == Some(&(wake, key.clone())) {
                debug_assert!(false, "maintain left a due entry in the expiry index");
                self.expiry.pop_first();
            }
        }
        let more = self.expiry.first().is_some_and(|(wake, _)| *wake <= now);
        (limit, more)
    }

    /// Calls `f` with every tombstoned key.
    pub(crate) fn for_each_tombstone(&self, mut f: impl FnMut(&Bytes)) {
        for key in self.tombstones.keys() {
            f(key);
        }
    }

    /// Removes the entry of `key` without leaving a tombstone if its version is
    /// exactly `version` (a copy handed to its new owners); returns whether it did.
    pub(crate) fn remove_if_version(
        &mut self,
        shared: &Shared,
        hash: u64,
        key: &[u8],
        version: Version,
    ) -> bool {
        let Ok(occupied) = self.table.find_entry(hash, |slot| slot.key[..] == *key) else {
            return false;
        };
        if occupied.get().entry.version != version {
            return false;
        }
        if let Some(capture) = &mut self.capture {
            let slot = occupied.get();
            capture.keep_entry(&slot.key, &slot.entry);
        }
        self.changes = self.changes.wrapping_add(1);
        let (slot, _) = occupied.remove();
        let wake = slot.entry.wake_at();
        reindex(&mut self.expiry, &slot.key, wake, NEVER);
        self.mem -= slot.entry.mem;
        shared.budget.release(slot.entry.mem);
        true
    }

    /// Drops tombstones buried in an epoch before `before`; returns how many.
    pub(crate) fn purge_tombstones(&mut self, shared: &Shared, before: u64) -> usize {
        let mut freed = 0;
        let mut dropped = 0;
        self.tombstones.retain(|key, tombstone| {
            let keep = tombstone.epoch >= before;
            if !keep {
                freed += TOMBSTONE_OVERHEAD + key.len();
                dropped += 1;
            }
            keep
        });
        self.mem -= freed;
        shared.budget.release(freed);
        dropped
    }

    /// Drops the tombstone of `key` if its version is exactly `version`.
    pub(crate) fn forget_tombstone(
        &mut self,
        shared: &Shared,
        key: &[u8],
        version: Version,
    ) -> bool {
        if self.tombstone(key) != Some(version) {
            return false;
        }
        if let Some(capture) = &mut self.capture {
            capture.keep_tombstone(key, version);
        }
        self.tombstones.remove(key);
        let freed = TOMBSTONE_OVERHEAD + key.len();
        self.mem -= freed;
        shared.budget.release(freed);
        true
    }

    /// Verifies the module's invariants, describing the first violation found.
    pub(crate) fn check_invariants(&self, now: u64) -> std::result::Result<(), String> {
        let mut mem = 0;
        let mut indexed = 0;
        for slot in &self.table {
            let entry = &slot.entry;
            let key = String::from_utf8_lossy(&slot.key);
            let expected = entry_size(&slot.key, &entry.data);
            if entry.mem != expected {
                return Err(format!(
                    "key {key}: accounted {} bytes, holds {expected}",
                    entry.mem
                ));
            }
            if entry.data.is_empty() {
                return Err(format!("key {key}: empty collection stored"));
            }
            mem += entry.mem;
            let wake = entry.wake_at();
            if wake != NEVER {
                indexed += 1;
                if !self.expiry.contains(&(wake, slot.key.clone())) {
                    return Err(format!(
                        "key {key}: wake-up at {wake} missing from the index"
                    ));
                }
            }
            if entry.version.hlc > self.hlc.last() {
                return Err(format!("key {key}: version ahead of the shard clock"));
            }
            if entry.is_expired(now) && wake > now {
                return Err(format!("key {key}: expired but not due for maintenance"));
            }
        }
        if indexed != self.expiry.len() {
            return Err(format!(
                "{} index entries for {indexed} keys with deadlines",
                self.expiry.len()
            ));
        }
        for key in self.tombstones.keys() {
            mem += TOMBSTONE_OVERHEAD + key.len();
        }
        if mem != self.mem {
            return Err(format!(
                "shard accounts {} bytes, entries and tombstones hold {mem}",
                self.mem
            ));
        }
        Ok(())
    }

    /// Finishes removing a slot taken out of the table: index, memory, and a
    /// tombstone carrying `version` (or the entry's own version, for expiry).
    fn unlink(&mut self, shared: &Shared, slot: Slot, wake: u64, version: Option<Version>) {
        reindex(&mut self.expiry, &slot.key, wake, NEVER);
        self.mem -= slot.entry.mem;
        shared.budget.release(slot.entry.mem);
        self.bury(shared, slot.key, version.unwrap_or(slot.entry.version));
    }

    /// Records that `key` is gone as of `version`, if the store keeps
    /// tombstones. A newer version restarts the retention.
    fn bury(&mut self, shared: &Shared, key: Bytes, version: Version) {
        if !shared.keep_tombstones {
            return;
        }
        let size = TOMBSTONE_OVERHEAD + key.len();
        let buried = Tombstone {
            version,
            epoch: shared
                .tombstone_epoch
                .load(std::sync::atomic::Ordering::Relaxed),
        };
        match self.tombstones.entry(key) {
            hashbrown::hash_map::Entry::Occupied(mut old) => {
                if version > old.get().version {
                    old.insert(buried);
                }
            }
            hashbrown::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(buried);
                self.mem += size;
                shared.budget.force_grow(size);
            }
        }
    }

    /// Drops the tombstone of a key that is live again.
    fn unbury(&mut self, shared: &Shared, key: &[u8]) {
        if self.tombstones.remove(key).is_some() {
            let size = TOMBSTONE_OVERHEAD + key.len();
            self.mem -= size;
            shared.budget.release(size);
        }
    }
}

/// What a shard remembers of a deleted or expired key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tombstone {
    /// The version as of which the key is gone: the deleting write's, or the
    /// expired entry's own (every copy of that entry expires alike).
    version: Version,
    /// The burial epoch it was buried (or last re-buried) in: retention runs
    /// from there, so an expired key's tombstone is kept as long as a deleted
    /// key's, however old the write that set its TTL. Epochs are advanced by
    /// the store's owner, never read from a clock, so no clock step can age
    /// a tombstone.
    epoch: u64,
}

/// Issues the version for a change made at `now`.
fn stamp(hlc: &mut Hlc, shared: &Shared, now: u64) -> Version {
    Version {
        hlc: hlc.tick(now),
        node: shared.node_tag,
    }
}

/// Moves `key` in the expiry index from wake-up time `old` to `new`.
fn reindex(index: &mut BTreeSet<(u64, Bytes)>, key: &Bytes, old: u64, new: u64) {
    if old == new {
        return;
    }
    if old != NEVER {
        index.remove(&(old, key.clone()));
    }
    if new != NEVER {
        index.insert((new, key.clone()));
    }
}

/// Takes or returns the difference when an entry of `old` bytes becomes `new` bytes.
fn resize_budget(budget: &Budget, old: usize, new: usize) -> Result<()> {
    if new > old {
        budget.try_grow(new - old)
    } else {
        budget.release(old - new);
        Ok(())
    }
}
