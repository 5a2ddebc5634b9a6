//! `ZSetStore`: sorted sets of strings ordered by score.

use bytes::Bytes;
use hive_store::{Op, Reply};

use super::{Namespace, expect, key_methods};
use crate::cache::Cache;
use crate::codec::text;
use crate::error::Result;

/// A member of a sorted set with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct ZSetEntry {
    /// The member.
    pub member: String,
    /// Its score.
    pub score: f64,
}

/// Sorted sets of string members under keys of one namespace: ascending score,
/// ties broken by byte-wise member order.
#[derive(Debug, Clone)]
pub struct ZSetStore {
    ns: Namespace,
}

fn name(member: &str) -> Bytes {
    Bytes::copy_from_slice(member.as_bytes())
}

fn entries(reply: Reply) -> Result<Vec<ZSetEntry>> {
    expect(reply, Reply::into_scored)?
        .into_iter()
        .map(|(member, score)| {
            Ok(ZSetEntry {
                member: text(member)?,
                score,
            })
        })
        .collect()
}

impl ZSetStore {
    /// Returns the store named `name` on `cache` (internal keys `{name}:z:{key}`).
    pub fn new(cache: &Cache, name: &str) -> Self {
        Self {
            ns: Namespace::new(cache, name, 'z'),
        }
    }

    /// Adds `member` with `score`, or moves it to `score`. `InvalidArgument` for
    /// a NaN score; ±infinity are allowed.
    pub async fn zadd(&self, key: &str, score: f64, member: &str) -> Result<()> {
        self.ns
            .run(
                key,
                Op::ZAdd {
                    score,
                    member: name(member),
                },
            )
            .await
            .map(drop)
    }

    /// Removes `member` (a no-op if absent); the key goes with its last member.
    pub async fn zrem(&self, key: &str, member: &str) -> Result<()> {
        self.ns
            .run(
                key,
                Op::ZRem {
                    member: name(member),
                },
            )
            .await
            .map(drop)
    }

    /// Returns the score of `member`. `NotFound` if the key or member is absent.
    pub async fn zscore(&self, key: &str, member: &str) -> Result<f64> {
        expect(
            self.ns
                .run(
                    key,
                    Op::ZScore {
                        member: name(member),
                    },
                )
                .await?,
            Reply::into_score,
        )
    }

    /// Returns the 0-based rank of `member` by ascending score. `NotFound` if the
    /// key or member is absent.
    pub async fn zrank(&self, key: &str, member: &str) -> Result<usize> {
        self.rank(key, member, false).await
    }

    /// Returns the 0-based rank of `member` by descending score
    /// (`zcard - 1 - zrank`). `NotFound` if the key or member is absent.
    pub async fn zrevrank(&self, key: &str, member: &str) -> Result<usize> {
        self.rank(key, member, true).await
    }

    /// Returns the members ranked `start` to `stop` inclusive, ascending, with
    /// Redis's index rules (negative indices count from the end).
    pub async fn zrange(&self, key: &str, start: i64, stop: i64) -> Result<Vec<ZSetEntry>> {
        entries(
            self.ns
                .run(
                    key,
                    Op::ZRange {
                        start,
                        stop,
                        rev: false,
                    },
                )
                .await?,
        )
    }

    /// Returns the members with `min <= score <= max`, ascending; empty if
    /// `min > max`. `InvalidArgument` for a NaN bound.
    pub async fn zrange_by_score(&self, key: &str, min: f64, max: f64) -> Result<Vec<ZSetEntry>> {
        entries(self.ns.run(key, Op::ZRangeByScore { min, max }).await?)
    }

    /// Returns the number of members (0 if absent).
    pub async fn zcard(&self, key: &str) -> Result<usize> {
        Ok(expect(self.ns.run(key, Op::ZCard).await?, Reply::into_count)? as usize)
    }

    key_methods!();

    async fn rank(&self, key: &str, member: &str, rev: bool) -> Result<usize> {
        let reply = self
            .ns
            .run(
                key,
                Op::ZRank {
                    member: name(member),
                    rev,
                },
            )
            .await?;
        Ok(expect(reply, Reply::into_count)? as usize)
    }
}
