//! Hashes: fields mapped to byte strings, each field with its own optional TTL.

use std::mem::size_of;

use bytes::Bytes;

use crate::config::deadline_after;
use crate::entry::{Data, NO_DEADLINE};
use crate::error::{Result, StoreError};
use crate::expiring::{Expiring, ExpiringMap};
use crate::keys::ExpireCondition;
use crate::shard::Write;
use crate::store::Store;
use crate::value::{add_finite, format_float, parse_float};

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

    /// Sets every field of `pairs` in one write (a field named twice takes its
    /// last value), clearing those fields' TTLs; creates the hash if needed.
    /// Returns how many fields are new. All or nothing: a value over the limit
    /// or a full memory budget changes nothing.
    pub fn hset_many(&self, key: &[u8], pairs: Vec<(Bytes, Bytes)>) -> Result<usize> {
        if pairs.is_empty() {
            return Err(StoreError::InvalidArgument(
                "hset needs at least one field".into(),
            ));
        }
        for (field, value) in &pairs {
            self.limits().check_value("field", field)?;
            self.limits().check_value("value", value)?;
        }
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                let mut hash = HashData::new();
                for (field, value) in pairs {
                    hash.insert(field, value, NO_DEADLINE);
                }
                let added = hash.fields.len();
                return Ok(Write::Put {
                    data: Data::Hash(Box::new(hash)),
                    deadline: NO_DEADLINE,
                    reply: added,
                });
            };
            let hash = as_hash_mut(&mut entry.data)?;
            // Reserve the net growth first (fields named twice counted once,
            // with their last value), then change.
            let mut last: std::collections::HashMap<&[u8], &[u8]> =
                std::collections::HashMap::with_capacity(pairs.len());
            for (field, value) in &pairs {
                last.insert(field, value);
            }
            let (old, new) = last.iter().fold((0, 0), |(old, new), (field, value)| {
                let before = hash
                    .fields
                    .get(field)
                    .map_or(0, |old| field_size(field, &old.value));
                (old + before, new + field_size(field, value))
            });
            reservation.resize(old, new)?;
            drop(last);
            let mut added = 0;
            for (field, value) in pairs {
                let field_value = Field {
                    value,
                    deadline: NO_DEADLINE,
                };
                added += usize::from(hash.fields.insert(field, field_value).is_none());
            }
            Ok(Write::Updated(added))
        })
    }

    /// Sets `field` only if the hash `key` lacks it (creating the hash if
    /// needed); returns whether it did, as Redis's `HSETNX`.
    pub fn hsetnx(&self, key: &[u8], field: Bytes, value: Bytes) -> Result<bool> {
        self.limits().check_value("field", &field)?;
        self.limits().check_value("value", &value)?;
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                let mut hash = HashData::new();
                hash.insert(field, value, NO_DEADLINE);
                return Ok(Write::Put {
                    data: Data::Hash(Box::new(hash)),
                    deadline: NO_DEADLINE,
                    reply: true,
                });
            };
            let hash = as_hash_mut(&mut entry.data)?;
            if hash.fields.get(&field).is_some() {
                return Ok(Write::Unchanged(false));
            }
            reservation.resize(0, field_size(&field, &value))?;
            hash.insert(field, value, NO_DEADLINE);
            Ok(Write::Updated(true))
        })
    }

    /// Rewrites `field` of the hash `key` (0 / empty if absent) with `update`
    /// of its current value, keeping the field's TTL; creates the hash if
    /// needed. Returns what `update` returned beside the new value.
    fn hupdate<R>(
        &self,
        key: &[u8],
        field: Bytes,
        update: impl FnOnce(Option<&Bytes>) -> Result<(Bytes, R)>,
    ) -> Result<R> {
        self.limits().check_value("field", &field)?;
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                let (value, reply) = update(None)?;
                let mut hash = HashData::new();
                hash.insert(field, value, NO_DEADLINE);
                return Ok(Write::Put {
                    data: Data::Hash(Box::new(hash)),
                    deadline: NO_DEADLINE,
                    reply,
                });
            };
            let hash = as_hash_mut(&mut entry.data)?;
            let current = hash.fields.get(&field);
            let (value, reply) = update(current.map(|current| &current.value))?;
            let old = current.map_or(0, |old| field_size(&field, &old.value));
            let deadline = current.map_or(NO_DEADLINE, |current| current.deadline);
            reservation.resize(old, field_size(&field, &value))?;
            hash.fields.insert(field, Field { value, deadline });
            Ok(Write::Updated(reply))
        })
    }

    /// Adds `delta` to the integer in `field` of the hash `key` (0 if absent)
    /// and returns the result, as Redis's `HINCRBY`. `InvalidValue` if the
    /// field is not an integer or the result would overflow.
    pub fn hincr_by(&self, key: &[u8], field: Bytes, delta: i64) -> Result<i64> {
        self.hupdate(key, field, |current| {
            let current = match current {
                None => 0,
                Some(value) => crate::value::parse_integer(value)
                    .map_err(|_| StoreError::InvalidValue("hash value is not an integer".into()))?,
            };
            let next = current.checked_add(delta).ok_or_else(|| {
                StoreError::InvalidValue("increment or decrement would overflow".into())
            })?;
            Ok((Bytes::from(next.to_string()), next))
        })
    }

    /// Adds `delta` to the number in `field` of the hash `key` (0 if absent)
    /// and returns the result as stored, as Redis's `HINCRBYFLOAT`.
    /// `InvalidValue` if the field is not a number or the result not finite.
    pub fn hincr_by_float(&self, key: &[u8], field: Bytes, delta: f64) -> Result<Bytes> {
        self.hupdate(key, field, |current| {
            let current = match current {
                None => 0.0,
                Some(value) => parse_float(value)
                    .map_err(|_| StoreError::InvalidValue("hash value is not a float".into()))?,
            };
            let next = Bytes::from(format_float(add_finite(current, delta)?));
            Ok((next.clone(), next))
        })
    }

    /// Deletes `fields` from the hash `key` in one write (the key goes with its
    /// last field); returns how many existed.
    pub fn hdel_many(&self, key: &[u8], fields: &[Bytes]) -> Result<usize> {
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(0));
            };
            let hash = as_hash_mut(&mut entry.data)?;
            let mut freed = 0;
            let mut removed = 0;
            for field in fields {
                if let Some(old) = hash.fields.remove(field) {
                    freed += field_size(field, &old.value);
                    removed += 1;
                }
            }
            if removed == 0 {
                return Ok(Write::Unchanged(0));
            }
            reservation.resize(freed, 0)?;
            Ok(Write::Updated(removed))
        })
    }

    /// Sets the TTL of each of `fields` to `ttl_ms` from now where `condition`
    /// holds, as Redis 7.4's `HPEXPIRE`. One code per field: `-2` no such field
    /// (or key), `0` condition not met, `1` set, `2` deleted (a TTL of 0).
    pub fn hexpire_fields(
        &self,
        key: &[u8],
        fields: &[Bytes],
        ttl_ms: u64,
        condition: ExpireCondition,
    ) -> Result<Vec<i64>> {
        self.expire_fields(key, fields, |_| ttl_ms, condition)
    }

    /// [`Store::hexpire_fields`] with a deadline in Unix ms instead of a TTL,
    /// as `HPEXPIREAT`: measured against this store's clock, so the deadline
    /// is kept exactly; one already past deletes the fields (code 2).
    pub fn hexpire_fields_at(
        &self,
        key: &[u8],
        fields: &[Bytes],
        at_ms: u64,
        condition: ExpireCondition,
    ) -> Result<Vec<i64>> {
        self.expire_fields(key, fields, |now| at_ms.saturating_sub(now), condition)
    }

    /// Sets the fields' TTLs to `ttl_at(now)` ms (0 deletes them).
    fn expire_fields(
        &self,
        key: &[u8],
        fields: &[Bytes],
        ttl_at: impl Fn(u64) -> u64,
        condition: ExpireCondition,
    ) -> Result<Vec<i64>> {
        self.write(key, |entry, reservation, now| {
            let ttl_ms = ttl_at(now);
            let deadline = match ttl_ms {
                0 => now,
                ttl => deadline_after(now, ttl)?,
            };
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(vec![-2; fields.len()]));
            };
            let hash = as_hash_mut(&mut entry.data)?;
            let mut codes = Vec::with_capacity(fields.len());
            let mut freed = 0;
            for name in fields {
                let code = match hash.fields.get(name) {
                    None => -2,
                    Some(field) if !condition.allows(field.deadline, deadline) => 0,
                    Some(_) if ttl_ms == 0 => {
                        if let Some(old) = hash.fields.remove(name) {
                            freed += field_size(name, &old.value);
                        }
                        2
                    }
                    Some(_) => {
                        hash.fields.set_deadline(name, deadline);
                        1
                    }
                };
                codes.push(code);
            }
            if codes.iter().all(|&code| code <= 0) {
                return Ok(Write::Unchanged(codes));
            }
            reservation.resize(freed, 0)?;
            Ok(Write::Updated(codes))
        })
    }

    /// Removes the TTL of each of `fields`, as Redis 7.4's `HPERSIST`. One code
    /// per field: `-2` no such field (or key), `-1` it had no TTL, `1` removed.
    pub fn hpersist_fields(&self, key: &[u8], fields: &[Bytes]) -> Result<Vec<i64>> {
        self.write(key, |entry, _, _| {
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(vec![-2; fields.len()]));
            };
            let hash = as_hash_mut(&mut entry.data)?;
            let codes: Vec<i64> = fields
                .iter()
                .map(|name| match hash.fields.get(name) {
                    None => -2,
                    Some(field) if field.deadline == NO_DEADLINE => -1,
                    Some(_) => {
                        hash.fields.set_deadline(name, NO_DEADLINE);
                        1
                    }
                })
                .collect();
            Ok(if codes.contains(&1) {
                Write::Updated(codes)
            } else {
                Write::Unchanged(codes)
            })
        })
    }

    /// Returns the remaining TTL in ms of each of `fields`, as Redis 7.4's
    /// `HPTTL`: `-2` no such field (or key), `-1` no TTL.
    pub fn httl_fields(&self, key: &[u8], fields: &[Bytes]) -> Result<Vec<i64>> {
        self.field_deadlines(key, fields, |deadline, now| deadline.saturating_sub(now))
    }

    /// Each field's deadline in Unix ms, as `HPEXPIRETIME`: `-2` no such field
    /// (or key), `-1` no TTL.
    pub fn hexpire_time_fields(&self, key: &[u8], fields: &[Bytes]) -> Result<Vec<i64>> {
        self.field_deadlines(key, fields, |deadline, _| deadline)
    }

    /// Reports `show(deadline, now)` for each field that has a TTL.
    fn field_deadlines(
        &self,
        key: &[u8],
        fields: &[Bytes],
        show: impl Fn(u64, u64) -> u64,
    ) -> Result<Vec<i64>> {
        self.read(key, |entry, now| {
            let Some(entry) = entry else {
                return Ok(vec![-2; fields.len()]);
            };
            let hash = as_hash(&entry.data)?;
            Ok(fields
                .iter()
                .map(|name| match hash.fields.get(name) {
                    None => -2,
                    Some(field) if field.deadline == NO_DEADLINE => -1,
                    Some(field) => {
                        i64::try_from(show(field.deadline, now.get())).unwrap_or(i64::MAX)
                    }
                })
                .collect())
        })
    }
}
