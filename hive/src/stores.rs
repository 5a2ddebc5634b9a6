//! The typed stores: each is a view of the cache under a namespace, one data
//! type per store, so stores never collide.
//!
//! Internal keys are `{name}:v:{key}` (values), `{name}:h:{key}` (hashes),
//! `{name}:l:{key}` (lists), `{name}:s:{key}` (sets) and `{name}:z:{key}`
//! (sorted sets).

mod hash;
mod list;
mod set;
mod value;
mod zset;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use hive_store::{Op, Reply};

use crate::cache::Cache;
use crate::codec::ttl_ms;
use crate::error::{Error, Result};

pub use hash::HashStore;
pub use list::ListStore;
pub use set::SetStore;
pub use value::ValueStore;
pub use zset::{ZSetEntry, ZSetStore};

/// A cache handle plus the prefix that namespaces one store's keys; also the
/// operations every store has on whole keys.
#[derive(Debug, Clone)]
pub(crate) struct Namespace {
    cache: Cache,
    prefix: Bytes,
}

impl Namespace {
    pub(crate) fn new(cache: &Cache, name: &str, kind: char) -> Self {
        Self {
            cache: cache.clone(),
            prefix: Bytes::from(format!("{name}:{kind}:")),
        }
    }

    /// Returns the internal key for `key`; empty keys are refused.
    fn key(&self, key: &str) -> Result<Bytes> {
        if key.is_empty() {
            return Err(Error::InvalidArgument("key must not be empty".into()));
        }
        let mut internal = BytesMut::with_capacity(self.prefix.len() + key.len());
        internal.put_slice(&self.prefix);
        internal.put_slice(key.as_bytes());
        Ok(internal.freeze())
    }

    /// Runs `op` on `key`.
    pub(crate) async fn run(&self, key: &str, op: Op) -> Result<Reply> {
        let key = self.key(key)?;
        self.cache.execute(key, op).await
    }

    pub(crate) async fn del(&self, key: &str) -> Result<()> {
        self.run(key, Op::Del).await.map(drop)
    }

    pub(crate) async fn expire(&self, key: &str, ttl: Duration) -> Result<()> {
        let ttl_ms = ttl_ms(ttl)?;
        self.run(key, Op::Expire { ttl_ms }).await.map(drop)
    }

    pub(crate) async fn persist(&self, key: &str) -> Result<()> {
        self.run(key, Op::Persist).await.map(drop)
    }

    pub(crate) async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        let ttl = expect(self.run(key, Op::Ttl).await?, Reply::into_ttl)?;
        Ok(ttl.map(Duration::from_millis))
    }
}

/// Takes the expected shape out of a reply.
pub(crate) fn expect<T>(reply: Reply, shape: impl FnOnce(Reply) -> Option<T>) -> Result<T> {
    let described = format!("{reply:?}");
    shape(reply).ok_or_else(|| Error::Codec(format!("unexpected reply {described}")))
}

/// Adds the whole-key methods every store has (`del`, `expire`, `persist`,
/// `ttl`) to a store type with a `ns: Namespace` field.
macro_rules! key_methods {
    () => {
        /// Deletes `key` (a no-op if absent).
        pub async fn del(&self, key: &str) -> $crate::Result<()> {
            self.ns.del(key).await
        }

        /// Sets the TTL of the whole key. `NotFound` if absent.
        pub async fn expire(&self, key: &str, ttl: std::time::Duration) -> $crate::Result<()> {
            self.ns.expire(key, ttl).await
        }

        /// Removes the TTL of the whole key. `NotFound` if absent.
        pub async fn persist(&self, key: &str) -> $crate::Result<()> {
            self.ns.persist(key).await
        }

        /// Returns the remaining TTL of the whole key, `None` if it has none.
        /// `NotFound` if absent.
        pub async fn ttl(&self, key: &str) -> $crate::Result<Option<std::time::Duration>> {
            self.ns.ttl(key).await
        }
    };
}
pub(crate) use key_methods;
