//! `ValueStore<T>`: one typed value per key.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use hive_store::{Op, Reply};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Namespace, expect, key_methods};
use crate::cache::Cache;
use crate::codec::{decode, encode, ttl_ms};
use crate::error::{Error, Result};

/// Typed values under keys of one namespace, encoded as MessagePack.
pub struct ValueStore<T> {
    ns: Namespace,
    _values: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned + Send + Sync> ValueStore<T> {
    /// Returns the store named `name` on `cache` (internal keys `{name}:v:{key}`).
    pub fn new(cache: &Cache, name: &str) -> Self {
        Self {
            ns: Namespace::new(cache, name, 'v'),
            _values: PhantomData,
        }
    }

    /// Stores `value` under `key`, replacing any value and clearing its TTL.
    pub async fn set(&self, key: &str, value: &T) -> Result<()> {
        let value = encode(value)?;
        self.ns
            .run(
                key,
                Op::Set {
                    value,
                    ttl_ms: None,
                },
            )
            .await
            .map(drop)
    }

    /// Stores `value` under `key` with a TTL.
    pub async fn set_with_ttl(&self, key: &str, value: &T, ttl: Duration) -> Result<()> {
        let ttl_ms = Some(ttl_ms(ttl)?);
        let value = encode(value)?;
        self.ns.run(key, Op::Set { value, ttl_ms }).await.map(drop)
    }

    /// Returns the value under `key`. `NotFound` if absent or expired, `Codec` if
    /// it does not decode as `T`.
    pub async fn get(&self, key: &str) -> Result<T> {
        decode(&expect(
            self.ns.run(key, Op::Get).await?,
            Reply::into_bytes,
        )?)
    }

    /// Returns one `Option` per key, in request order (`None` for missing and
    /// expired keys).
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<T>>> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(match self.get(key).await {
                Ok(value) => Some(value),
                Err(Error::NotFound) => None,
                Err(err) => return Err(err),
            });
        }
        Ok(values)
    }

    /// Stores every pair. Not atomic across keys, but each key is written whole
    /// or not at all; on error, the keys before the failing one are written and
    /// the error's message names the key that was not (unit variants such as
    /// `CapacityExceeded` carry no message and are returned as they are).
    pub async fn set_many(&self, items: &[(&str, T)]) -> Result<()> {
        for (key, value) in items {
            self.set(key, value).await.map_err(|err| naming(key, err))?;
        }
        Ok(())
    }

    key_methods!();
}

/// Adds the key that was not written to an error's message.
fn naming(key: &str, err: Error) -> Error {
    match err {
        Error::InvalidArgument(message) => {
            Error::InvalidArgument(format!("key {key:?}: {message}"))
        }
        Error::Codec(message) => Error::Codec(format!("key {key:?}: {message}")),
        Error::Unavailable(message) => Error::Unavailable(format!("key {key:?}: {message}")),
        other => other,
    }
}

impl<T> Clone for ValueStore<T> {
    fn clone(&self) -> Self {
        Self {
            ns: self.ns.clone(),
            _values: PhantomData,
        }
    }
}

impl<T> fmt::Debug for ValueStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueStore").field("ns", &self.ns).finish()
    }
}
