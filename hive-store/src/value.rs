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

impl Store {
    /// Returns the value under `key` and deletes the key, as Redis's `GETDEL`.
    /// `NotFound` if absent, `WrongType` (and nothing deleted) for a collection.
    pub fn getdel(&self, key: &[u8]) -> Result<Bytes> {
        self.write(key, |entry, _, _| {
            match &entry.ok_or(StoreError::NotFound)?.data {
                Data::Value(value) => Ok(Write::Delete(value.clone())),
                _ => Err(StoreError::WrongType),
            }
        })
    }

    /// Returns the value under `key` and sets its TTL, as Redis's `GETEX`:
    /// [`SetTtl::Keep`] leaves it, [`SetTtl::None`] removes it. `NotFound` if
    /// absent, `WrongType` for a collection.
    pub fn getex(&self, key: &[u8], ttl: SetTtl) -> Result<Bytes> {
        self.write(key, |entry, _, now| {
            let entry = entry.ok_or(StoreError::NotFound)?;
            let Data::Value(value) = &entry.data else {
                return Err(StoreError::WrongType);
            };
            let value = value.clone();
            let deadline = match ttl {
                SetTtl::Keep => return Ok(Write::Unchanged(value)),
                SetTtl::None => NO_DEADLINE,
                SetTtl::Ms(ttl) => deadline_after(now, ttl)?,
            };
            if deadline == entry.deadline {
                return Ok(Write::Unchanged(value));
            }
            entry.deadline = deadline;
            Ok(Write::Updated(value))
        })
    }

    /// Adds `delta` to the number held as a decimal string under `key` (0 if
    /// absent), stores the result as its shortest exact decimal and returns it;
    /// the key keeps its TTL, as Redis's `INCRBYFLOAT`. `InvalidValue` if the
    /// value is not a number or the result is not finite.
    pub fn incr_by_float(&self, key: &[u8], delta: f64) -> Result<Bytes> {
        self.write(key, |entry, _, _| {
            let (current, deadline) = match entry.as_deref() {
                None => (0.0, NO_DEADLINE),
                Some(entry) => match &entry.data {
                    Data::Value(value) => (parse_float(value)?, entry.deadline),
                    _ => return Err(StoreError::WrongType),
                },
            };
            let next = Bytes::from(format_float(add_finite(current, delta)?));
            Ok(Write::Put {
                data: Data::Value(next.clone()),
                deadline,
                reply: next,
            })
        })
    }

    /// Overwrites the value under `key` from byte `offset` with `patch`,
    /// padding with zero bytes, and returns the new length, as Redis's
    /// `SETRANGE`; the key keeps its TTL. An absent key with an empty patch
    /// stays absent (length 0). `InvalidArgument` if the result would exceed
    /// the value size limit.
    pub fn setrange(&self, key: &[u8], offset: usize, patch: &[u8]) -> Result<usize> {
        let end = offset.checked_add(patch.len());
        if end.is_none_or(|end| end > self.limits().max_value_len) {
            return Err(StoreError::InvalidArgument(format!(
                "string exceeds maximum allowed size ({} bytes)",
                self.limits().max_value_len
            )));
        }
        self.write(key, |entry, _, _| {
            let (current, deadline) = match entry.as_deref() {
                None if patch.is_empty() => return Ok(Write::Unchanged(0)),
                None => (Bytes::new(), NO_DEADLINE),
                Some(entry) => match &entry.data {
                    Data::Value(value) => (value.clone(), entry.deadline),
                    _ => return Err(StoreError::WrongType),
                },
            };
            if patch.is_empty() {
                return Ok(Write::Unchanged(current.len()));
            }
            let mut joined = current.to_vec();
            let end = offset + patch.len();
            if joined.len() < end {
                joined.resize(end, 0);
            }
            joined[offset..end].copy_from_slice(patch);
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
pub(crate) fn parse_integer(value: &[u8]) -> Result<i64> {
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

/// Parses a value as a floating-point number (decimal or exponent form, `inf`
/// accepted, NaN and surrounding spaces refused).
pub(crate) fn parse_float(value: &[u8]) -> Result<f64> {
    let invalid = || StoreError::InvalidValue("value is not a valid float".into());
    let text = std::str::from_utf8(value).map_err(|_| invalid())?;
    if text.is_empty() || text.trim() != text {
        return Err(invalid());
    }
    match text.parse::<f64>() {
        Ok(number) if !number.is_nan() => Ok(number),
        _ => Err(invalid()),
    }
}

/// Adds two numbers, refusing a result that is not finite.
pub(crate) fn add_finite(current: f64, delta: f64) -> Result<f64> {
    let sum = current + delta;
    if !sum.is_finite() {
        return Err(StoreError::InvalidValue(
            "increment would produce NaN or Infinity".into(),
        ));
    }
    Ok(sum)
}

/// Formats a finite number as its shortest decimal that reads back exactly,
/// without an exponent (`3`, `10.5`, `0.0001`).
pub(crate) fn format_float(number: f64) -> String {
    // `Display` for f64 is the shortest round-trip form and never uses an
    // exponent; `-0` reads better as `0`.
    if number == 0.0 {
        return "0".into();
    }
    number.to_string()
}
