//! Hashes: fields mapped to byte strings, each field with its own optional TTL.

use std::mem::size_of;

use bytes::Bytes;

use crate::config::deadline_after;
use crate::entry::{Data, NO_DEADLINE};
use crate::error::{Result, StoreError};
use crate::expiring::{Expiring, ExpiringMap};
use crate::shard::Write;
use crate::store::Store;

/// A hash field's value and deadline.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) value: Bytes,
    pub(crate) deadline: u64,
}

impl Expiring for Field {
    fn deadline(&self) -> u64 {
        self.deadline
    }

    fn set_deadline(&mut self, deadline: u64) {
        self.deadline = deadline;
    }
}

/// The payload of a hash key.
#[derive(Debug, Clone)]
pub(crate) struct HashData {
    fields: ExpiringMap<Field>,
}

/// Bytes accounted per field besides its name and value.
const FIELD_OVERHEAD: usize = size_of::<(Bytes, Field)>() + 1;

fn field_size(name: &[u8], value: &[u8]) -> usize {
    FIELD_OVERHEAD + name.len() + value.len()
}

impl HashData {
    pub(crate) fn new() -> Self {
        Self {
            fields: ExpiringMap::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub(crate) fn next_expiry(&self) -> u64 {
        self.fields.next_expiry()
    }

    pub(crate) fn fields(&self) -> impl Iterator<Item = (&Bytes, &Field)> {
        self.fields.iter()
    }

    pub(crate) fn accounted_size(&self) -> usize {
        size_of::<Self>()
            + self
                .fields
                .iter()
                .map(|(name, field)| field_size(name, &field.value))
                .sum::<usize>()
    }

    /// Sets a field without accounting (used to build a hash that is accounted
    /// as a whole).
    pub(crate) fn insert(&mut self, name: Bytes, value: Bytes, deadline: u64) {
        self.fields.insert(name, Field { value, deadline });
    }

    pub(crate) fn purge_expired(&mut self, now: u64) -> usize {
        self.fields
            .purge_expired(now, |name, field| field_size(name, &field.value))
    }
}

fn as_hash(data: &Data) -> Result<&HashData> {
    match data {
        Data::Hash(hash) => Ok(hash),
        _ => Err(StoreError::WrongType),
    }
}

fn as_hash_mut(data: &mut Data) -> Result<&mut HashData> {
    match data {
        Data::Hash(hash) => Ok(hash),
        _ => Err(StoreError::WrongType),
    }
}

impl Store {
    /// Sets `field` of the hash `key` to `value`, with a field TTL of `ttl_ms` or
    /// none (clearing any TTL the field had; the key's TTL stays). Creates the
    /// hash if needed. Returns true if the field is new.
    pub fn hset(
        &self,
        key: &[u8],
        field: Bytes,
        value: Bytes,
        ttl_ms: Option<u64>,
    ) -> Result<bool> {
        self.limits().check_value("field", &field)?;
        self.limits().check_value("value", &value)?;
        self.write(key, |entry, reservation, now| {
            let deadline = match ttl_ms {
                Some(ttl) => deadline_after(now, ttl)?,
                None => NO_DEADLINE,
            };
            let Some(entry) = entry else {
                let mut hash = HashData::new();
                hash.insert(field, value, deadline);
                return Ok(Write::Put {
                    data: Data::Hash(Box::new(hash)),
                    deadline: NO_DEADLINE,
                    reply: true,
                });
            };
            let hash = as_hash_mut(&mut entry.data)?;
            let old = hash
                .fields
                .get(&field)
                .map_or(0, |old| field_size(&field, &old.value));
            reservation.resize(old, field_size(&field, &value))?;
            let is_new = hash
                .fields
                .insert(field, Field { value, deadline })
                .is_none();
            Ok(Write::Updated(is_new))
        })
    }

    /// Returns `field` of the hash `key`. `NotFound` if the key or field is absent.
    pub fn hget(&self, key: &[u8], field: &[u8]) -> Result<Bytes> {
        self.read(key, |entry, _| {
            let hash = as_hash(&entry.ok_or(StoreError::NotFound)?.data)?;
            hash.fields
                .get(field)
                .map(|field| field.value.clone())
                .ok_or(StoreError::NotFound)
        })
    }

    /// Returns every live field and value of the hash `key` (empty if absent).
    pub fn hget_all(&self, key: &[u8]) -> Result<Vec<(Bytes, Bytes)>> {
        self.read(key, |entry, _| {
            let Some(entry) = entry else {
                return Ok(Vec::new());
            };
            let hash = as_hash(&entry.data)?;
            Ok(hash
                .fields
                .iter()
                .map(|(name, field)| (name.clone(), field.value.clone()))
                .collect())
        })
    }

    /// Returns the live field names of the hash `key` (empty if absent).
    pub fn hkeys(&self, key: &[u8]) -> Result<Vec<Bytes>> {
        self.read(key, |entry, _| {
            let Some(entry) = entry else {
                return Ok(Vec::new());
            };
            Ok(as_hash(&entry.data)?.fields.names().cloned().collect())
        })
    }

    /// Returns the number of live fields of the hash `key` (0 if absent).
    pub fn hlen(&self, key: &[u8]) -> Result<usize> {
        self.read(key, |entry, _| {
            entry.map_or(Ok(0), |entry| Ok(as_hash(&entry.data)?.fields.len()))
        })
    }

    /// Deletes `field` from the hash `key` (the key goes with its last field);
    /// returns whether the field existed.
    pub fn hdel(&self, key: &[u8], field: &[u8]) -> Result<bool> {
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(false));
            };
            let hash = as_hash_mut(&mut entry.data)?;
            let Some(old) = hash.fields.get(field) else {
                return Ok(Write::Unchanged(false));
            };
            reservation.resize(field_size(field, &old.value), 0)?;
            hash.fields.remove(field);
            Ok(Write::Updated(true))
        })
    }

    /// Gives `field` of the hash `key` a TTL of `ttl_ms`. `NotFound` if the key or
    /// field is absent.
    pub fn hexpire_field(&self, key: &[u8], field: &[u8], ttl_ms: u64) -> Result<()> {
        self.write(key, |entry, _, now| {
            let deadline = deadline_after(now, ttl_ms)?;
            let hash = as_hash_mut(&mut entry.ok_or(StoreError::NotFound)?.data)?;
            if !hash.fields.set_deadline(field, deadline) {
                return Err(StoreError::NotFound);
            }
            Ok(Write::Updated(()))
        })
    }

    /// Removes the TTL of `field` of the hash `key`; returns whether it had one.
    /// `NotFound` if the key or field is absent.
    pub fn hpersist_field(&self, key: &[u8], field: &[u8]) -> Result<bool> {
        self.write(key, |entry, _, _| {
            let hash = as_hash_mut(&mut entry.ok_or(StoreError::NotFound)?.data)?;
            if hash.fields.get(field).ok_or(StoreError::NotFound)?.deadline == NO_DEADLINE {
                return Ok(Write::Unchanged(false));
            }
            hash.fields.set_deadline(field, NO_DEADLINE);
            Ok(Write::Updated(true))
        })
    }

    /// Returns the remaining TTL of `field` of the hash `key` in milliseconds,
    /// `None` if it has none. `NotFound` if the key or field is absent.
    pub fn httl_field(&self, key: &[u8], field: &[u8]) -> Result<Option<u64>> {
        self.read(key, |entry, now| {
            let hash = as_hash(&entry.ok_or(StoreError::NotFound)?.data)?;
            let field = hash.fields.get(field).ok_or(StoreError::NotFound)?;
            Ok((field.deadline != NO_DEADLINE).then(|| field.deadline.saturating_sub(now.get())))
        })
    }
}
