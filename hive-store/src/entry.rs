//! What a key holds: one typed payload, an optional deadline, a version, and the
//! bytes it is accounted for.

use std::mem::size_of;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::evict::Access;
use crate::hash::HashData;
use crate::list::ListData;
use crate::set::SetData;
use crate::version::Version;
use crate::zset::ZSetData;

/// "No deadline" for keys and elements (a deadline of 0 would be 1970).
pub(crate) const NO_DEADLINE: u64 = 0;
/// A wake-up time that never comes.
pub(crate) const NEVER: u64 = u64::MAX;

/// The data type a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A byte string.
    Value,
    /// A map of fields to byte strings, each field with an optional TTL.
    Hash,
    /// An ordered sequence of byte strings.
    List,
    /// A set of byte strings, each member with an optional TTL.
    Set,
    /// A set of byte strings ordered by a floating-point score.
    ZSet,
}

impl Kind {
    /// Returns the name Redis's `TYPE` command uses for this kind.
    pub fn redis_name(self) -> &'static str {
        match self {
            Kind::Value => "string",
            Kind::Hash => "hash",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::ZSet => "zset",
        }
    }
}

/// The typed payload of a key. Collections are boxed so a plain value keeps the
/// table slot small.
#[derive(Debug, Clone)]
pub(crate) enum Data {
    Value(Bytes),
    Hash(Box<HashData>),
    List(Box<ListData>),
    Set(Box<SetData>),
    ZSet(Box<ZSetData>),
}

impl Data {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Data::Value(_) => Kind::Value,
            Data::Hash(_) => Kind::Hash,
            Data::List(_) => Kind::List,
            Data::Set(_) => Kind::Set,
            Data::ZSet(_) => Kind::ZSet,
        }
    }

    /// Returns true for a collection without elements (which must not exist).
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Data::Value(_) => false,
            Data::Hash(h) => h.is_empty(),
            Data::List(l) => l.is_empty(),
            Data::Set(s) => s.is_empty(),
            Data::ZSet(z) => z.is_empty(),
        }
    }

    /// Returns the earliest time at which an element may expire (a lower bound),
    /// or [`NEVER`].
    pub(crate) fn next_element_expiry(&self) -> u64 {
        match self {
            Data::Hash(h) => h.next_expiry(),
            Data::Set(s) => s.next_expiry(),
            Data::Value(_) | Data::List(_) | Data::ZSet(_) => NEVER,
        }
    }

    /// Drops elements whose deadline has passed; returns the bytes freed.
    pub(crate) fn purge_expired(&mut self, now: u64) -> usize {
        match self {
            Data::Hash(h) => h.purge_expired(now),
            Data::Set(s) => s.purge_expired(now),
            Data::Value(_) | Data::List(_) | Data::ZSet(_) => 0,
        }
    }

    /// Returns the bytes this payload is accounted for, computed from scratch.
    /// Incremental updates made by operations must always agree with it.
    pub(crate) fn accounted_size(&self) -> usize {
        match self {
            Data::Value(v) => v.len(),
            Data::Hash(h) => h.accounted_size(),
            Data::List(l) => l.accounted_size(),
            Data::Set(s) => s.accounted_size(),
            Data::ZSet(z) => z.accounted_size(),
        }
    }
}

/// A live key's entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) data: Data,
    /// Unix ms after which the whole key is gone, or [`NO_DEADLINE`].
    pub(crate) deadline: u64,
    pub(crate) version: Version,
    /// Bytes accounted for this entry, key and slot overhead included.
    pub(crate) mem: usize,
    /// When, and how often, it was last read or written (for eviction).
    pub(crate) access: Access,
}

impl Entry {
    /// Returns the bytes accounted for the data alone (what
    /// [`Limits::max_entry_len`](crate::Limits::max_entry_len) caps).
    pub(crate) fn data_size(&self, key: &[u8]) -> usize {
        self.mem - SLOT_OVERHEAD - key.len()
    }

    /// Returns when the janitor or the next access must look at this entry: the
    /// key's deadline or the earliest element deadline, whichever comes first.
    pub(crate) fn wake_at(&self) -> u64 {
        let own = if self.deadline == NO_DEADLINE {
            NEVER
        } else {
            self.deadline
        };
        own.min(self.data.next_element_expiry())
    }

    /// Returns true if the key itself has expired at `now`.
    pub(crate) fn is_expired(&self, now: u64) -> bool {
        self.deadline != NO_DEADLINE && self.deadline <= now
    }

    /// Returns the remaining TTL in ms at `now`, `None` without a deadline.
    pub(crate) fn remaining_ms(&self, now: u64) -> Option<u64> {
        (self.deadline != NO_DEADLINE).then(|| self.deadline.saturating_sub(now))
    }
}

/// A table slot: the key and its entry.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) key: Bytes,
    pub(crate) entry: Entry,
}

/// Bytes accounted for a slot besides its key and payload: the slot itself plus
/// the hash table's control byte.
pub(crate) const SLOT_OVERHEAD: usize = size_of::<Slot>() + 1;

/// Bytes accounted for a tombstone besides its key.
pub(crate) const TOMBSTONE_OVERHEAD: usize = size_of::<(Bytes, crate::shard::Tombstone)>() + 1;

/// Returns the bytes an entry for `key` holding `data` is accounted for.
pub(crate) fn entry_size(key: &[u8], data: &Data) -> usize {
    SLOT_OVERHEAD + key.len() + data.accounted_size()
}
