//! Plain values: byte strings under a key, with Redis's string operations:
//! conditional sets, integer increments and appends.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::deadline_after;
use crate::entry::{Data, NO_DEADLINE};
use crate::error::{Result, StoreError};
use crate::shard::Write;
use crate::store::Store;

impl Store {
    /// Returns the value under `key`. `NotFound` if absent, `WrongType` if the key
    /// holds a collection.
    pub fn get(&self, key: &[u8]) -> Result<Bytes> {
        self.read(key, |entry, _| {
            match &entry.ok_or(StoreError::NotFound)?.data {
                Data::Value(value) => Ok(value.clone()),
                _ => Err(StoreError::WrongType),
            }
        })
    }

    /// Stores `value` under `key`, replacing whatever the key held (as Redis's
    /// `SET` does, whatever the old type), with a TTL of `ttl_ms` or none.
    pub fn set(&self, key: &[u8], value: Bytes, ttl_ms: Option<u64>) -> Result<()> {
        self.limits().check_value("value", &value)?;
        self.write(key, |_, _, now| {
            let deadline = match ttl_ms {
                Some(ttl) => deadline_after(now, ttl)?,
                None => NO_DEADLINE,
            };
            Ok(Write::Put {
                data: Data::Value(value),
                deadline,
                reply: (),
            })
        })
    }

    /// Stores `value` under `key` if `condition` allows, as Redis's `SET` with
    /// `NX`/`XX`, `KEEPTTL` and `GET`: `ttl` is the new TTL ([`SetTtl::Keep`]
    /// keeps the current one). Returns whether it stored, and the previous
    /// value if the key held one. With `get`, a key holding a collection is
    /// `WrongType` and nothing is stored; without it, any type is replaced.
    pub fn set_with(
        &self,
        key: &[u8],
        value: Bytes,
        ttl: SetTtl,
        condition: SetCondition,
        get: bool,
    ) -> Result<(bool, Option<Bytes>)> {
        self.limits().check_value("value", &value)?;
        self.write(key, |entry, _, now| {
            let previous = match entry.as_deref() {
                None => None,
                Some(entry) => match &entry.data {
                    Data::Value(old) => Some(Some(old.clone())),
                    _ if get => return Err(StoreError::WrongType),
                    // Another type: it exists, but has no string to return.
                    _ => Some(None),
                },
            };
            let allowed = match condition {
                SetCondition::Always => true,
                SetCondition::IfAbsent => previous.is_none(),
                SetCondition::IfPresent => previous.is_some(),
            };
            let old = previous.flatten();
            if !allowed {
                return Ok(Write::Unchanged((false, old)));
            }
            let deadline = match ttl {
                SetTtl::None => NO_DEADLINE,
                SetTtl::Ms(ttl) => deadline_after(now, ttl)?,
                SetTtl::Keep => entry.map_or(NO_DEADLINE, |entry| entry.deadline),
            };
            Ok(Write::Put {
                data: Data::Value(value),
                deadline,
                reply: (true, old),
            })
        })
    }

    /// Adds `delta` to the integer held as a decimal string under `key` (0 if
    /// absent) and returns the result; the key keeps its TTL, as Redis's
    /// `INCRBY`. `InvalidValue` if the value is not a 64-bit integer or the
    /// result would overflow; nothing changes then.
    pub fn incr_by(&self, key: &[u8], delta: i64) -> Result<i64> {
        self.write(key, |entry, _, _| {
            let (current, deadline) = match entry.as_deref() {
                None => (0, NO_DEADLINE),
                Some(entry) => match &entry.data {
                    Data::Value(value) => (parse_integer(value)?, entry.deadline),
                    _ => return Err(StoreError::WrongType),
                },
            };
            let next = current.checked_add(delta).ok_or_else(|| {
                StoreError::InvalidValue("increment or decrement would overflow".into())
            })?;
            Ok(Write::Put {
                data: Data::Value(Bytes::from(next.to_string())),
                deadline,
                reply: next,
            })
        })
    }

    /// Appends `suffix` to the value under `key` (creating it if absent) and
    /// returns the new length; the key keeps its TTL, as Redis's `APPEND`.
    pub fn append(&self, key: &[u8], suffix: &[u8]) -> Result<usize> {
        self.write(key, |entry, _, _| {
            let (mut joined, deadline) = match entry.as_deref() {
                None => (Vec::new(), NO_DEADLINE),
                Some(entry) => match &entry.data {
                    Data::Value(value) => (value.to_vec(), entry.deadline),
                    _ => return Err(StoreError::WrongType),
                },
            };
            joined.extend_from_slice(suffix);
            self.limits().check_value("value", &joined)?;
            let len = joined.len();
            Ok(Write::Put {
                data: Data::Value(Bytes::from(joined)),
                deadline,
                reply: len,
            })
        })
    }
}

/// The TTL a [`Store::set_with`] leaves on the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetTtl {
    /// No TTL.
    None,
    /// This many milliseconds from now.
    Ms(u64),
    /// Whatever TTL the key had (none if it was absent).
    Keep,
}

/// When a [`Store::set_with`] stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCondition {
    /// Always (plain `SET`).
    Always,
    /// Only if the key does not exist (`NX`).
    IfAbsent,
    /// Only if the key exists (`XX`).
    IfPresent,
}

/// Parses a value as Redis parses integers: optional `-`, digits, no spaces,
/// no leading `+` or zeros, within `i64`.
fn parse_integer(value: &[u8]) -> Result<i64> {
    let invalid = || StoreError::InvalidValue("value is not an integer or out of range".into());
    let text = std::str::from_utf8(value).map_err(|_| invalid())?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|byte| byte.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if !canonical {
        return Err(invalid());
    }
    text.parse().map_err(|_| invalid())
}
