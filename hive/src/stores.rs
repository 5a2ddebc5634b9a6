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

use bytes::Bytes;
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
    fn key(&self, key: &str) -> Result<InternalKey> {
        if key.is_empty() {
            return Err(Error::InvalidArgument("key must not be empty".into()));
        }
        Ok(InternalKey::new(&self.prefix, key.as_bytes()))
    }

    /// Runs `op` on `key`.
    pub(crate) async fn run(&self, key: &str, op: Op) -> Result<Reply> {
        let key = self.key(key)?;
        self.cache.execute(key.as_bytes(), op).await
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

/// Longest internal key built on the stack.
const INLINE_KEY: usize = 96;

/// An internal key (`prefix` + user key), built on the stack when it fits — the
/// common case — so naming a key costs no allocation; the store copies it only
/// when it creates the key.
enum InternalKey {
    Inline { len: usize, bytes: [u8; INLINE_KEY] },
    Heap(Vec<u8>),
}

impl InternalKey {
    fn new(prefix: &[u8], key: &[u8]) -> Self {
        let len = prefix.len() + key.len();
        if len > INLINE_KEY {
            return InternalKey::Heap([prefix, key].concat());
        }
        let mut bytes = [0; INLINE_KEY];
        bytes[..prefix.len()].copy_from_slice(prefix);
        bytes[prefix.len()..len].copy_from_slice(key);
        InternalKey::Inline { len, bytes }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            InternalKey::Inline { len, bytes } => &bytes[..*len],
            InternalKey::Heap(bytes) => bytes,
        }
    }
}

/// Takes the expected shape out of a reply.
pub(crate) fn expect<T>(reply: Reply, shape: impl FnOnce(Reply) -> Result<T, Reply>) -> Result<T> {
    shape(reply).map_err(|other| Error::Codec(format!("unexpected reply {other:?}")))
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
