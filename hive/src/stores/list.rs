//! `ListStore<T>`: typed lists, pushed and popped at either end.

use std::fmt;
use std::marker::PhantomData;

use hive_store::{End, Op, Reply};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Namespace, expect, key_methods};
use crate::cache::Cache;
use crate::codec::{decode, encode};
use crate::error::Result;

/// Lists of typed elements under keys of one namespace.
pub struct ListStore<T> {
    ns: Namespace,
    _values: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned + Send + Sync> ListStore<T> {
    /// Returns the store named `name` on `cache` (internal keys `{name}:l:{key}`).
    pub fn new(cache: &Cache, name: &str) -> Self {
        Self {
            ns: Namespace::new(cache, name, 'l'),
            _values: PhantomData,
        }
    }

    /// Pushes `value` at the head, creating the list if needed.
    pub async fn lpush(&self, key: &str, value: &T) -> Result<()> {
        self.push(key, End::Front, value).await
    }

    /// Pushes `value` at the tail, creating the list if needed.
    pub async fn rpush(&self, key: &str, value: &T) -> Result<()> {
        self.push(key, End::Back, value).await
    }

    /// Removes and returns the head. `NotFound` if the list is empty or absent.
    pub async fn lpop(&self, key: &str) -> Result<T> {
        self.pop(key, End::Front).await
    }

    /// Removes and returns the tail. `NotFound` if the list is empty or absent.
    pub async fn rpop(&self, key: &str) -> Result<T> {
        self.pop(key, End::Back).await
    }

    /// Returns the element at `index` (-1 is the last). `NotFound` if the list is
    /// absent or the index out of range.
    pub async fn lindex(&self, key: &str, index: i64) -> Result<T> {
        decode(&expect(
            self.ns.run(key, Op::LIndex { index }).await?,
            Reply::into_bytes,
        )?)
    }

    /// Replaces the element at `index`. `NotFound` if the list is absent or the
    /// index out of range.
    pub async fn lset(&self, key: &str, index: i64, value: &T) -> Result<()> {
        let value = encode(value)?;
        self.ns.run(key, Op::LSet { index, value }).await.map(drop)
    }

    /// Returns the elements from `start` to `stop` inclusive, with Redis's
    /// `LRANGE` rules (negative indices count from the end; out-of-range bounds
    /// are clamped; an empty range gives an empty vector).
    pub async fn lrange(&self, key: &str, start: i64, stop: i64) -> Result<Vec<T>> {
        let items = expect(
            self.ns.run(key, Op::LRange { start, stop }).await?,
            Reply::into_list,
        )?;
        items.iter().map(|item| decode(item)).collect()
    }

    /// Returns the length (0 if absent).
    pub async fn llen(&self, key: &str) -> Result<usize> {
        Ok(expect(self.ns.run(key, Op::LLen).await?, Reply::into_count)? as usize)
    }

    key_methods!();

    async fn push(&self, key: &str, end: End, value: &T) -> Result<()> {
        let values = vec![encode(value)?];
        self.ns.run(key, Op::Push { end, values }).await.map(drop)
    }

    async fn pop(&self, key: &str, end: End) -> Result<T> {
        decode(&expect(
            self.ns.run(key, Op::Pop { end }).await?,
            Reply::into_bytes,
        )?)
    }
}

impl<T> Clone for ListStore<T> {
    fn clone(&self) -> Self {
        Self {
            ns: self.ns.clone(),
            _values: PhantomData,
        }
    }
}

impl<T> fmt::Debug for ListStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListStore").field("ns", &self.ns).finish()
    }
}
