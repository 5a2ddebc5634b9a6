//! Sorted sets: unique byte strings ordered by score, then by bytes.

mod skiplist;

use std::mem::size_of;

use bytes::Bytes;

use crate::entry::{Data, NO_DEADLINE};
use crate::error::{Result, StoreError};
use crate::index::resolve_range;
use crate::shard::{FastMap, Write, fast_map};
use crate::store::Store;

pub use skiplist::LexBound;
use skiplist::SkipList;

/// The payload of a sorted-set key: a member→score map for O(1) lookups, and a
/// skip list with spans for O(log n) rank and range queries.
#[derive(Debug, Clone)]
pub(crate) struct ZSetData {
    scores: FastMap<Bytes, f64>,
    order: SkipList,
}

/// Bytes accounted per member besides its contents: its map slot plus an
/// estimate of its skip-list node (an average node has 4/3 levels).
const MEMBER_OVERHEAD: usize = size_of::<(Bytes, f64)>() + 1 + 96;

fn member_size(member: &[u8]) -> usize {
    MEMBER_OVERHEAD + member.len()
}

impl ZSetData {
    pub(crate) fn new() -> Self {
        Self {
            scores: fast_map(),
            order: SkipList::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.scores.len()
    }

    pub(crate) fn accounted_size(&self) -> usize {
        size_of::<Self>()
            + self
                .scores
                .keys()
                .map(|member| member_size(member))
                .sum::<usize>()
    }

    /// Returns members and scores in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Bytes, f64)> {
        self.order.iter()
    }

    /// Inserts or moves `member` without accounting; returns true if it is new.
    pub(crate) fn insert(&mut self, member: Bytes, score: f64) -> bool {
        match self.scores.get_mut(&member) {
            Some(old) => {
                if *old != score {
                    self.order.update_score(*old, &member, score);
                    *old = score;
                }
                false
            }
            None => {
                self.order.insert(score, member.clone());
                self.scores.insert(member, score);
                true
            }
        }
    }

    fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some(score) => self.order.remove(score, member),
            None => false,
        }
    }
}

fn as_zset(data: &Data) -> Result<&ZSetData> {
    match data {
        Data::ZSet(zset) => Ok(zset),
        _ => Err(StoreError::WrongType),
    }
}

fn as_zset_mut(data: &mut Data) -> Result<&mut ZSetData> {
    match data {
        Data::ZSet(zset) => Ok(zset),
        _ => Err(StoreError::WrongType),
    }
}

fn check_score(score: f64) -> Result<()> {
    if score.is_nan() {
        return Err(StoreError::InvalidArgument("score is not a number".into()));
    }
    Ok(())
}

fn to_owned<'a>(items: impl Iterator<Item = (&'a Bytes, f64)>) -> Vec<(Bytes, f64)> {
    items
        .map(|(member, score)| (member.clone(), score))
        .collect()
}

impl Store {
    /// Adds `member` with `score` to the sorted set `key`, or moves it to `score`
    /// if present. Returns true if the member is new. `InvalidArgument` for NaN.
    pub fn zadd(&self, key: &[u8], score: f64, member: Bytes) -> Result<bool> {
        check_score(score)?;
        self.limits().check_value("member", &member)?;
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                let mut zset = ZSetData::new();
                zset.insert(member, score);
                return Ok(Write::Put {
                    data: Data::ZSet(Box::new(zset)),
                    deadline: NO_DEADLINE,
                    reply: true,
                });
            };
            let zset = as_zset_mut(&mut entry.data)?;
            match zset.scores.get(&member) {
                Some(&old) if old == score => Ok(Write::Unchanged(false)),
                Some(_) => {
                    zset.insert(member, score);
                    Ok(Write::Updated(false))
                }
                None => {
                    reservation.resize(0, member_size(&member))?;
                    zset.insert(member, score);
                    Ok(Write::Updated(true))
                }
            }
        })
    }

    /// Removes `member` from the sorted set `key` (the key goes with its last
    /// member); returns whether it was there.
    pub fn zrem(&self, key: &[u8], member: &[u8]) -> Result<bool> {
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(false));
            };
            let zset = as_zset_mut(&mut entry.data)?;
            if !zset.scores.contains_key(member) {
                return Ok(Write::Unchanged(false));
            }
            reservation.resize(member_size(member), 0)?;
            zset.remove(member);
            Ok(Write::Updated(true))
        })
    }

    /// Returns the score of `member`. `NotFound` if the key or member is absent.
    pub fn zscore(&self, key: &[u8], member: &[u8]) -> Result<f64> {
        self.read(key, |entry, _| {
            let zset = as_zset(&entry.ok_or(StoreError::NotFound)?.data)?;
            zset.scores.get(member).copied().ok_or(StoreError::NotFound)
        })
    }

    /// Returns the 0-based rank of `member`, ascending, or descending if `rev`.
    /// `NotFound` if the key or member is absent.
    pub fn zrank(&self, key: &[u8], member: &[u8], rev: bool) -> Result<usize> {
        self.read(key, |entry, _| {
            let zset = as_zset(&entry.ok_or(StoreError::NotFound)?.data)?;
            let score = *zset.scores.get(member).ok_or(StoreError::NotFound)?;
            let rank = zset.order.rank(score, member).ok_or(StoreError::NotFound)?;
            Ok(if rev { zset.len() - 1 - rank } else { rank })
        })
    }

    /// Returns members with scores by rank from `start` to `stop` inclusive, with
    /// `LRANGE`'s index rules; ranks count from the highest score if `rev`.
    pub fn zrange(
        &self,
        key: &[u8],
        start: i64,
        stop: i64,
        rev: bool,
    ) -> Result<Vec<(Bytes, f64)>> {
        self.read(key, |entry, _| {
            let Some(entry) = entry else {
                return Ok(Vec::new());
            };
            let zset = as_zset(&entry.data)?;
            let Some((start, stop)) = resolve_range(start, stop, zset.len()) else {
                return Ok(Vec::new());
            };
            Ok(if rev {
                to_owned(zset.order.rev_range_by_rank(start, stop))
            } else {
                to_owned(zset.order.range_by_rank(start, stop))
            })
        })
    }

    /// Returns members with `min <= score <= max`, ascending (empty if `min > max`).
    pub fn zrange_by_score(&self, key: &[u8], min: f64, max: f64) -> Result<Vec<(Bytes, f64)>> {
        check_score(min)?;
        check_score(max)?;
        self.read(key, |entry, _| {
            let Some(entry) = entry else {
                return Ok(Vec::new());
            };
            let zset = as_zset(&entry.data)?;
            Ok(to_owned(zset.order.range_by_score(min, false, max, false)))
        })
    }

    /// Returns the number of members of the sorted set `key` (0 if absent).
    pub fn zcard(&self, key: &[u8]) -> Result<usize> {
        self.read(key, |entry, _| {
            entry.map_or(Ok(0), |entry| Ok(as_zset(&entry.data)?.len()))
        })
    }
}
