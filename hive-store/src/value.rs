//! Plain values: byte strings under a key.

use bytes::Bytes;

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
}
