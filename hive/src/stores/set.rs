//! `SetStore`: sets of strings, each member with an optional TTL.

use std::time::Duration;

use bytes::Bytes;
use hive_store::{Op, Reply};

use super::{Namespace, expect, key_methods};
use crate::cache::Cache;
use crate::codec::{text, ttl_ms};
use crate::error::Result;

/// Sets of string members under keys of one namespace.
#[derive(Debug, Clone)]
pub struct SetStore {
    ns: Namespace,
}

fn name(member: &str) -> Bytes {
    Bytes::copy_from_slice(member.as_bytes())
}

impl SetStore {
    /// Returns the store named `name` on `cache` (internal keys `{name}:s:{key}`).
    pub fn new(cache: &Cache, name: &str) -> Self {
        Self {
            ns: Namespace::new(cache, name, 's'),
        }
    }

    /// Adds `member`, creating the set if needed; a member already present loses
    /// its TTL.
    pub async fn sadd(&self, key: &str, member: &str) -> Result<()> {
        self.ns
            .run(
                key,
                Op::SAdd {
                    members: vec![name(member)],
                },
            )
            .await
            .map(drop)
    }

    /// Removes `member` (a no-op if absent); the key goes with its last member.
    pub async fn srem(&self, key: &str, member: &str) -> Result<()> {
        self.ns
            .run(
                key,
                Op::SRem {
                    member: name(member),
                },
            )
            .await
            .map(drop)
    }

    /// Returns whether `member` is a live member (false if the set is absent).
    pub async fn sismember(&self, key: &str, member: &str) -> Result<bool> {
        expect(
            self.ns
                .run(
                    key,
                    Op::SIsMember {
                        member: name(member),
                    },
                )
                .await?,
            Reply::into_bool,
        )
    }

    /// Returns the live members, in no particular order.
    pub async fn smembers(&self, key: &str) -> Result<Vec<String>> {
        expect(self.ns.run(key, Op::SMembers).await?, Reply::into_list)?
            .into_iter()
            .map(text)
            .collect()
    }

    /// Returns the number of live members (0 if absent).
    pub async fn scard(&self, key: &str) -> Result<usize> {
        Ok(expect(self.ns.run(key, Op::SCard).await?, Reply::into_count)? as usize)
    }

    /// Gives `member` a TTL of its own. `NotFound` if the key or member is absent.
    pub async fn sexpire_member(&self, key: &str, member: &str, ttl: Duration) -> Result<()> {
        let ttl_ms = ttl_ms(ttl)?;
        self.ns
            .run(
                key,
                Op::SExpireMember {
                    member: name(member),
                    ttl_ms,
                },
            )
            .await
            .map(drop)
    }

    key_methods!();
}
