//! Moving entries between stores: export an entry with its version and remaining
//! TTLs, apply it elsewhere only if it is newer than what is there.
//!
//! Replication and rebalancing are built on this: whichever order copies arrive
//! in, every store ends up with the newest version of each key, and a tombstone
//! keeps an older copy from bringing a deleted key back.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::{MAX_TTL_MS, deadline_after};
use crate::entry::{Data, Entry, NO_DEADLINE};
use crate::error::{Result, StoreError};
use crate::hash::HashData;
use crate::list::ListData;
use crate::set::SetData;
use crate::shard::{Accept, Applied, Captured, Incoming, Prior, Shard, Shared, Write};
use crate::store::Store;
use crate::version::Version;
use crate::zset::ZSetData;

/// A key's state as it travels between nodes. TTLs are remaining milliseconds
/// at export time, so clocks need not agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedEntry {
    /// The key.
    pub key: Bytes,
    /// The version of the entry or tombstone.
    pub version: Version,
    /// Remaining TTL of the key in ms, `None` for no TTL.
    pub ttl_ms: Option<u64>,
    /// What the key holds.
    pub data: ExportedData,
}

impl ExportedEntry {
    /// What this entry was exported as, to drop the copy it came from once its
    /// receivers confirmed ([`Store::drop_exported`]).
    pub fn exported(&self) -> Exported {
        Exported {
            version: self.version,
            tombstone: self.data == ExportedData::Tombstone,
        }
    }
}

/// The identity of an exported copy: its version and whether it was a
/// tombstone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exported {
    /// The version of the entry or tombstone.
    pub version: Version,
    /// The copy was a tombstone, not a live entry.
    pub tombstone: bool,
}

/// The payload of an [`ExportedEntry`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExportedData {
    /// The key was deleted or expired as of the entry's version.
    Tombstone,
    /// A plain value.
    Value(Bytes),
    /// Hash fields: name, value, remaining TTL in ms.
    Hash(Vec<(Bytes, Bytes, Option<u64>)>),
    /// List elements, head first.
    List(Vec<Bytes>),
    /// Set members with their remaining TTL in ms.
    Set(Vec<(Bytes, Option<u64>)>),
    /// Sorted-set members with their scores, ascending.
    ZSet(Vec<(Bytes, f64)>),
}

fn remaining(deadline: u64, now: u64) -> Option<u64> {
    (deadline != NO_DEADLINE).then(|| deadline.saturating_sub(now))
}

/// Keys a snapshot copies under one shard lock, at most.
pub(crate) const CAPTURE_SLICE: usize = 64;

/// Where [`Store::capture_shard`] copies a shard to.
pub(crate) trait ShardCopy {
    /// Why a copy stopped.
    type Error;

    /// Takes `key`'s state as of the instant `at_ms` (Unix ms: TTLs remain
    /// from it). Runs under the shard's read lock: it must not block.
    fn copy(&mut self, at_ms: u64, key: &Bytes, prior: Prior<&Entry>) -> Result<(), Self::Error>;

    /// Runs after each slice of keys, with no lock held.
    fn between(&mut self) -> Result<(), Self::Error>;
}

/// Ends a shard's capture when dropped.
struct CaptureGuard<'a>(&'a parking_lot::RwLock<Shard>);

impl CaptureGuard<'_> {
    /// Ends the capture, returning what changed since its instant.
    fn end(self) -> Option<Captured> {
        self.0.write().end_capture()
    }
}

impl Drop for CaptureGuard<'_> {
    fn drop(&mut self) {
        self.0.write().end_capture();
    }
}

pub(crate) fn tombstone(key: &Bytes, version: Version) -> ExportedEntry {
    ExportedEntry {
        key: key.clone(),
        version,
        ttl_ms: None,
        data: ExportedData::Tombstone,
    }
}

pub(crate) fn export_entry(key: &Bytes, entry: &Entry, now: u64) -> ExportedEntry {
    let data = match &entry.data {
        Data::Value(value) => ExportedData::Value(value.clone()),
        Data::Hash(hash) => ExportedData::Hash(
            hash.fields()
                .map(|(name, field)| {
                    (
                        name.clone(),
                        field.value.clone(),
                        remaining(field.deadline, now),
                    )
                })
                .collect(),
        ),
        Data::List(list) => ExportedData::List(list.items().iter().cloned().collect()),
        Data::Set(set) => ExportedData::Set(
            set.members()
                .map(|(member, deadline)| (member.clone(), remaining(deadline, now)))
                .collect(),
        ),
        Data::ZSet(zset) => ExportedData::ZSet(
            zset.iter()
                .map(|(member, score)| (member.clone(), score))
                .collect(),
        ),
    };
    ExportedEntry {
        key: key.clone(),
        version: entry.version,
        ttl_ms: remaining(entry.deadline, now),
        data,
    }
}

/// Applies a checked arriving entry to the shard holding its key.
fn apply_locked(
    shard: &mut Shard,
    shared: &Shared,
    hash: u64,
    now: u64,
    incoming: ExportedEntry,
    accept: Accept,
) -> Result<Applied> {
    let ExportedEntry {
        key,
        version,
        ttl_ms,
        data,
    } = incoming;
    // An entry that expired in transit arrives as the deletion it has become.
    let incoming = match data {
        ExportedData::Tombstone => Incoming::Tombstone,
        data => match arrival_deadline(ttl_ms, now)? {
            None => Incoming::Expired,
            Some(deadline) => match import(data, now)? {
                Some(data) => Incoming::Live { data, deadline },
                None => Incoming::Expired,
            },
        },
    };
    shard.apply(shared, (hash, &key), (version, incoming), accept, now)
}

/// Converts a remaining TTL into a deadline; `Ok(None)` if it has run out.
fn arrival_deadline(ttl_ms: Option<u64>, now: u64) -> Result<Option<u64>> {
    match ttl_ms {
        None => Ok(Some(NO_DEADLINE)),
        Some(0) => Ok(None),
        Some(ttl) if ttl > MAX_TTL_MS => deadline_after(now, ttl).map(Some),
        Some(ttl) => Ok(Some(now + ttl)),
    }
}

impl Store {
    /// Returns the state of `key`: its live entry, its tombstone, or `None` if the
    /// store knows nothing of it.
    pub fn export(&self, key: &[u8]) -> Result<Option<ExportedEntry>> {
        self.limits().check_key(key)?;
        let shared = self.shared();
        Ok(self.with_shard(key, |shard, hash, now| {
            shard.maintain(shared, hash, key, now);
            if let Some(entry) = shard.find(hash, key) {
                return Some(export_entry(&Bytes::copy_from_slice(key), entry, now));
            }
            shard
                .tombstone(key)
                .map(|version| tombstone(&Bytes::copy_from_slice(key), version))
        }))
    }

    /// Copies shard `shard` as of one instant into `to`: each of its live
    /// entries and tombstones at that instant, a [`CAPTURE_SLICE`] of keys
    /// per read lock, with [`ShardCopy::between`] after each. The shard keeps
    /// serving: each lock is held for at most a slice (and a read lock once,
    /// to list the table's occupied buckets, which touches no key), and each
    /// change made meanwhile first keeps the key's state as of the instant
    /// (`Capture`), which comes last. A key changed after its slice went out
    /// comes twice, with the same version; so do the keys copied before the
    /// table grew, if it did. Nothing past the last shard.
    pub(crate) fn capture_shard<C: ShardCopy>(
        &self,
        shard: usize,
        to: &mut C,
    ) -> std::result::Result<(), C::Error> {
        let Some(lock) = self.shard_lock(shard) else {
            return Ok(());
        };
        let at_ms = self.clock().now_ms();
        lock.write().begin_capture(at_ms);
        // Ends the capture however this returns, so writers stop keeping.
        let capture = CaptureGuard(lock);
        let listing = lock.read().capture_listing();
        let mut keys = None;
        for slice in listing.buckets.chunks(CAPTURE_SLICE) {
            {
                let shard = lock.read();
                if shard.layout() != listing.layout {
                    // The table grew or was rehashed: its slots moved. The
                    // rest is read by key (the tombstones listed first too);
                    // keys already copied come again, with the same versions.
                    keys = Some(shard.capture_keys());
                    break;
                }
                for &index in slice {
                    if let Some((key, prior)) = shard.captured_bucket(index) {
                        to.copy(at_ms, key, prior)?;
                    }
                }
            }
            to.between()?;
        }
        let mut keys: Vec<Bytes> = keys.unwrap_or_default();
        keys.extend(listing.tombstones);
        let hasher = &self.shared().hasher;
        for slice in keys.chunks(CAPTURE_SLICE) {
            {
                let shard = lock.read();
                for key in slice {
                    let hash = hasher.hash_one(&key[..]);
                    if let Some(prior) = shard.captured(hash, key) {
                        to.copy(at_ms, key, prior)?;
                    }
                }
            }
            to.between()?;
        }
        let Some(before) = capture.end() else {
            return Ok(());
        };
        for slice in before.chunks(CAPTURE_SLICE) {
            for (key, prior) in slice {
                to.copy(at_ms, key, prior.as_ref())?;
            }
            to.between()?;
        }
        Ok(())
    }

    /// Returns true if the store holds a live entry or a tombstone for `key`:
    /// it knows the key's latest state, whether or not the key exists.
    pub fn knows(&self, key: &[u8]) -> Result<bool> {
        self.limits().check_key(key)?;
        let shared = self.shared();
        Ok(self.with_shard(key, |shard, hash, now| {
            shard.maintain(shared, hash, key, now);
            shard.find(hash, key).is_some() || shard.tombstone(key).is_some()
        }))
    }

    /// Stores `incoming` if its version is newer than the entry or tombstone held
    /// for its key; otherwise changes nothing. Expired elements and keys are
    /// dropped on arrival. Invalid entries (over the size limits, NaN scores,
    /// empty collections) are refused with `InvalidArgument`, and growth past the
    /// memory limit with `CapacityExceeded`, changing nothing.
    pub fn apply(&self, incoming: ExportedEntry) -> Result<Applied> {
        self.apply_as(incoming, Accept::Newer)
    }

    /// [`Store::apply`] for a state its sender built on `base`: the version
    /// the sender held before the writes that made it (a primary's replica
    /// write). Answers [`Applied::Diverged`], changing nothing, if the store
    /// holds a version newer than `base` that the sender did not stamp: the
    /// sender's state lacks that write, and last-writer-wins would lose it.
    pub fn apply_built_on(&self, incoming: ExportedEntry, base: Version) -> Result<Applied> {
        self.apply_as(incoming, Accept::BuiltOn(base))
    }

    /// Replaces what the store holds for the key with `incoming`, even if it
    /// is older ([`Applied::Stale`] only if it is the same version): a primary
    /// taking the state a replica's [`Applied::Diverged`] revealed, before it
    /// runs its writes again on top of it.
    pub fn replace(&self, incoming: ExportedEntry) -> Result<Applied> {
        self.apply_as(incoming, Accept::Any)
    }

    /// Returns the version of `key`'s entry or tombstone — the state a write
    /// on it builds on; `None` if the store knows nothing of it.
    pub fn state_version(&self, key: &[u8]) -> Result<Option<Version>> {
        self.limits().check_key(key)?;
        let shared = self.shared();
        Ok(self.with_shard(key, |shard, hash, now| {
            shard.maintain(shared, hash, key, now);
            shard.version(hash, key)
        }))
    }

    fn apply_as(&self, incoming: ExportedEntry, accept: Accept) -> Result<Applied> {
        self.check_incoming(&incoming)?;
        let shared = self.shared();
        let key = incoming.key.clone();
        self.make_room();
        self.with_shard(&key, |shard, hash, now| {
            apply_locked(shard, shared, hash, now, incoming, accept)
        })
    }

    /// [`Store::apply`] for each of `incoming`, in order, with one result per
    /// entry: an invalid entry is refused alone. Consecutive entries of one shard
    /// are applied under one lock; entries exported in one store's order (as a
    /// rebalance sends them) arrive in long runs.
    pub fn apply_many(&self, incoming: Vec<ExportedEntry>) -> Vec<Result<Applied>> {
        let shared = self.shared();
        let checked = incoming.into_iter().map(|entry| {
            let checked = self.check_incoming(&entry);
            (entry, checked)
        });
        self.for_each_locked(
            checked,
            |(entry, _)| &entry.key,
            |shard, hash, now, (entry, checked)| {
                checked?;
                apply_locked(shard, shared, hash, now, entry, Accept::Newer)
            },
        )
    }

    /// [`Store::export`] for each of `keys`, in order; consecutive keys of one
    /// shard are exported under one lock. A key the store knows nothing of (or
    /// over the key limit) exports as `None`.
    pub fn export_many<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k Bytes>,
    ) -> Vec<Option<ExportedEntry>> {
        let shared = self.shared();
        self.for_each_locked(
            keys,
            |key| key,
            |shard, hash, now, key| {
                shard.maintain(shared, hash, key, now);
                if let Some(entry) = shard.find(hash, key) {
                    return Some(export_entry(key, entry, now));
                }
                shard.tombstone(key).map(|version| tombstone(key, version))
            },
        )
    }

    /// Drops each local copy that was handed to its key's new owners, if it is
    /// still exactly what was exported ([`Store::remove_if_version`] for an
    /// entry, [`Store::forget_tombstone`] for a tombstone): a newer write that
    /// arrived since stays. Consecutive keys of one shard are dropped under one
    /// lock. Returns how many copies were dropped.
    pub fn drop_exported<'k>(
        &self,
        copies: impl IntoIterator<Item = (&'k Bytes, Exported)>,
    ) -> usize {
        let shared = self.shared();
        self.for_each_locked(
            copies,
            |(key, _)| key,
            |shard, hash, _, (key, exported)| {
                if exported.tombstone {
                    shard.forget_tombstone(shared, key, exported.version)
                } else {
                    shard.remove_if_version(shared, hash, key, exported.version)
                }
            },
        )
        .into_iter()
        .filter(|dropped| *dropped)
        .count()
    }

    /// Refuses an arriving entry that breaks the limits or holds invalid data.
    fn check_incoming(&self, incoming: &ExportedEntry) -> Result<()> {
        self.limits().check_key(&incoming.key)?;
        self.validate(&incoming.data)
    }

    /// Returns what `key` holds with its remaining TTLs, for [`Store::restore`]
    /// under another key (`RENAME`). `NotFound` if absent.
    pub fn dump(&self, key: &[u8]) -> Result<ExportedEntry> {
        self.read(key, |entry, now| {
            let entry = entry.ok_or(StoreError::NotFound)?;
            Ok(export_entry(&Bytes::copy_from_slice(key), entry, now.get()))
        })
    }

    /// Replaces whatever `key` holds with `data` and a TTL of `ttl_ms` (none if
    /// `None`), as a new write. Data whose TTLs have all run out deletes the key.
    pub fn restore(&self, key: &[u8], data: ExportedData, ttl_ms: Option<u64>) -> Result<()> {
        self.validate(&data)?;
        self.write(key, |_, _, now| {
            let Some(deadline) = arrival_deadline(ttl_ms, now)? else {
                return Ok(Write::Delete(()));
            };
            Ok(match import(data, now)? {
                Some(data) => Write::Put {
                    data,
                    deadline,
                    reply: (),
                },
                None => Write::Delete(()),
            })
        })
    }

    fn validate(&self, data: &ExportedData) -> Result<()> {
        let limits = self.limits();
        let empty = || {
            Err(StoreError::InvalidArgument(
                "an exported collection is empty".into(),
            ))
        };
        match data {
            ExportedData::Tombstone => Ok(()),
            ExportedData::Value(value) => limits.check_value("value", value),
            ExportedData::Hash(fields) if fields.is_empty() => empty(),
            ExportedData::Hash(fields) => fields.iter().try_for_each(|(name, value, _)| {
                limits.check_value("field", name)?;
                limits.check_value("value", value)
            }),
            ExportedData::List(items) if items.is_empty() => empty(),
            ExportedData::List(items) => items
                .iter()
                .try_for_each(|item| limits.check_value("element", item)),
            ExportedData::Set(members) if members.is_empty() => empty(),
            ExportedData::Set(members) => members
                .iter()
                .try_for_each(|(member, _)| limits.check_value("member", member)),
            ExportedData::ZSet(members) if members.is_empty() => empty(),
            ExportedData::ZSet(members) => members.iter().try_for_each(|(member, score)| {
                limits.check_value("member", member)?;
                if score.is_nan() {
                    return Err(StoreError::InvalidArgument("score is not a number".into()));
                }
                Ok(())
            }),
        }
    }
}

/// Builds the payload of an arriving entry; `None` if every element had expired.
fn import(data: ExportedData, now: u64) -> Result<Option<Data>> {
    let data = match data {
        ExportedData::Tombstone => return Ok(None),
        ExportedData::Value(value) => Data::Value(value),
        ExportedData::Hash(fields) => {
            let mut hash = HashData::new();
            for (name, value, ttl) in fields {
                if let Some(deadline) = arrival_deadline(ttl, now)? {
                    hash.insert(name, value, deadline);
                }
            }
            Data::Hash(Box::new(hash))
        }
        ExportedData::List(items) => {
            Data::List(Box::new(ListData::from_items(VecDeque::from(items))))
        }
        ExportedData::Set(members) => {
            let mut set = SetData::new();
            for (member, ttl) in members {
                if let Some(deadline) = arrival_deadline(ttl, now)? {
                    set.insert(member, deadline);
                }
            }
            Data::Set(Box::new(set))
        }
        ExportedData::ZSet(members) => {
            let mut zset = ZSetData::new();
            for (member, score) in members {
                zset.insert(member, score);
            }
            Data::ZSet(Box::new(zset))
        }
    };
    Ok((!data.is_empty()).then_some(data))
}
