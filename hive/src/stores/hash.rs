//! `HashStore<T>`: typed fields under a key, each field with an optional TTL.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use hive_store::{Op, Reply};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Namespace, expect, key_methods};
use crate::cache::Cache;
use crate::codec::{decode, encode, text, ttl_ms};
use crate::error::Result;

/// Hashes of typed field values under keys of one namespace.
pub struct HashStore<T> {
    ns: Namespace,
    _values: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned + Send + Sync> HashStore<T> {
    /// Returns the store named `name` on `cache` (internal keys `{name}:h:{key}`).
    pub fn new(cache: &Cache, name: &str) -> Self {
        Self {
            ns: Namespace::new(cache, name, 'h'),
            _values: PhantomData,
        }
    }

    /// Sets `field` to `value`, clearing the field's TTL (the key's TTL stays).
    pub async fn hset(&self, key: &str, field: &str, value: &T) -> Result<()> {
        let value = encode(value)?;
        let op = Op::HSet {
            field: Bytes::copy_from_slice(field.as_bytes()),
            value,
            ttl_ms: None,
        };
        self.ns.run(key, op).await.map(drop)
    }

    /// Sets `field` to `value` with a TTL on that field alone.
    pub async fn hset_with_ttl(
        &self,
        key: &str,
        field: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<()> {
        let ttl_ms = Some(ttl_ms(ttl)?);
        let value = encode(value)?;
        let op = Op::HSet {
            field: Bytes::copy_from_slice(field.as_bytes()),
            value,
            ttl_ms,
        };
        self.ns.run(key, op).await.map(drop)
    }

    /// Returns `field`. `NotFound` if the key or field is absent or expired.
    pub async fn hget(&self, key: &str, field: &str) -> Result<T> {
        let op = Op::HGet {
            field: Bytes::copy_from_slice(field.as_bytes()),
        };
        decode(&expect(self.ns.run(key, op).await?, Reply::into_bytes)?)
    }

    /// Returns every live field (empty if the key is absent).
    pub async fn hget_all(&self, key: &str) -> Result<HashMap<String, T>> {
        let pairs = expect(self.ns.run(key, Op::HGetAll).await?, Reply::into_pairs)?;
        pairs
            .into_iter()
            .map(|(field, value)| Ok((text(field)?, decode(&value)?)))
            .collect()
    }

    /// Returns the live field names (empty if the key is absent).
    pub async fn hkeys(&self, key: &str) -> Result<Vec<String>> {
        expect(self.ns.run(key, Op::HKeys).await?, Reply::into_list)?
            .into_iter()
            .map(text)
            .collect()
    }

    /// Returns the number of live fields (0 if the key is absent).
    pub async fn hlen(&self, key: &str) -> Result<usize> {
        Ok(expect(self.ns.run(key, Op::HLen).await?, Reply::into_count)? as usize)
    }

    /// Deletes `field` (a no-op if absent); the key goes with its last field.
    pub async fn hdel(&self, key: &str, field: &str) -> Result<()> {
        let op = Op::HDel {
            field: Bytes::copy_from_slice(field.as_bytes()),
        };
        self.ns.run(key, op).await.map(drop)
    }

    /// Gives `field` a TTL of its own. `NotFound` if the key or field is absent.
    pub async fn hexpire_field(&self, key: &str, field: &str, ttl: Duration) -> Result<()> {
        let ttl_ms = ttl_ms(ttl)?;
        let op = Op::HExpireField {
            field: Bytes::copy_from_slice(field.as_bytes()),
            ttl_ms,
        };
        self.ns.run(key, op).await.map(drop)
    }

    key_methods!();
}

impl<T> Clone for HashStore<T> {
    fn clone(&self) -> Self {
        Self {
            ns: self.ns.clone(),
            _values: PhantomData,
        }
    }
}

impl<T> fmt::Debug for HashStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashStore").field("ns", &self.ns).finish()
    }
}
