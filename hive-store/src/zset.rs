//! Sorted sets: unique byte strings ordered by score, then by bytes.

mod skiplist;

use std::mem::size_of;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::entry::{Data, NO_DEADLINE};
use crate::error::{Result, StoreError};
use crate::index::resolve_range;
use crate::shard::{FastMap, Write, fast_map};
use crate::store::Store;
use crate::value::SetCondition;

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
    /// Returns the rank of `member` with its score.
    pub fn zrank(&self, key: &[u8], member: &[u8], rev: bool) -> Result<(usize, f64)> {
        self.read(key, |entry, _| {
            let zset = as_zset(&entry.ok_or(StoreError::NotFound)?.data)?;
            let score = *zset.scores.get(member).ok_or(StoreError::NotFound)?;
            let rank = zset.order.rank(score, member).ok_or(StoreError::NotFound)?;
            Ok((if rev { zset.len() - 1 - rank } else { rank }, score))
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

    /// Adds or moves each `(score, member)` in one write, as Redis's `ZADD`
    /// with `NX`/`XX` (`options.condition`), `GT`/`LT` (`options.compare`)
    /// and `CH` (`options.changed`): returns how many members were added, or
    /// added and moved if `changed`. A member named twice is added, then moved.
    pub fn zadd_many(
        &self,
        key: &[u8],
        pairs: Vec<(f64, Bytes)>,
        options: ZAddOptions,
    ) -> Result<usize> {
        options.check()?;
        for (score, member) in &pairs {
            check_score(*score)?;
            self.limits().check_value("member", member)?;
        }
        self.write(key, |entry, reservation, _| {
            let mut fresh = ZSetData::new();
            let (zset, created) = match entry {
                Some(entry) => (as_zset_mut(&mut entry.data)?, false),
                None => (&mut fresh, true),
            };
            // Reserve for every distinct member that will be added before
            // changing anything, so a full budget leaves the set untouched.
            if !created && options.condition != SetCondition::IfPresent {
                let mut new: Vec<&Bytes> = pairs
                    .iter()
                    .map(|(_, member)| member)
                    .filter(|member| !zset.scores.contains_key(*member))
                    .collect();
                new.sort_unstable();
                new.dedup();
                reservation.resize(0, new.iter().map(|member| member_size(member)).sum())?;
            }
            let mut counted = 0;
            let mut touched = false;
            for (score, member) in pairs {
                let outcome = zset.update(member, score, false, options)?;
                touched |= matches!(outcome, Update::Added(_) | Update::Moved(_));
                counted += usize::from(match outcome {
                    Update::Added(_) => true,
                    Update::Moved(_) => options.changed,
                    Update::Kept(_) | Update::Skipped => false,
                });
            }
            Ok(if created {
                if fresh.is_empty() {
                    Write::Unchanged(0)
                } else {
                    Write::Put {
                        data: Data::ZSet(Box::new(fresh)),
                        deadline: NO_DEADLINE,
                        reply: counted,
                    }
                }
            } else if touched {
                Write::Updated(counted)
            } else {
                Write::Unchanged(counted)
            })
        })
    }

    /// Adds `delta` to the score of `member` (0 if absent), as Redis's
    /// `ZINCRBY` and `ZADD ... INCR`; returns the new score, or `None` if the
    /// options kept it from changing. `InvalidValue` if the result is NaN.
    pub fn zincr_by(
        &self,
        key: &[u8],
        member: Bytes,
        delta: f64,
        options: ZAddOptions,
    ) -> Result<Option<f64>> {
        options.check()?;
        check_score(delta)?;
        self.limits().check_value("member", &member)?;
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                if options.condition == SetCondition::IfPresent {
                    return Ok(Write::Unchanged(None));
                }
                let mut zset = ZSetData::new();
                zset.update(member, delta, true, options)?;
                return Ok(Write::Put {
                    data: Data::ZSet(Box::new(zset)),
                    deadline: NO_DEADLINE,
                    reply: Some(delta),
                });
            };
            let zset = as_zset_mut(&mut entry.data)?;
            if !zset.scores.contains_key(&member) && options.condition != SetCondition::IfPresent {
                reservation.resize(0, member_size(&member))?;
            }
            Ok(match zset.update(member, delta, true, options)? {
                Update::Added(score) | Update::Moved(score) => Write::Updated(Some(score)),
                Update::Kept(score) => Write::Unchanged(Some(score)),
                // Only a member already present can be skipped: nothing was reserved.
                Update::Skipped => Write::Unchanged(None),
            })
        })
    }

    /// Removes `members` from the sorted set `key` in one write (the key goes
    /// with its last member); returns how many were there.
    pub fn zrem_many(&self, key: &[u8], members: &[Bytes]) -> Result<usize> {
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(0));
            };
            let zset = as_zset_mut(&mut entry.data)?;
            let removed: Vec<&Bytes> = members
                .iter()
                .filter(|member| zset.remove(member))
                .collect();
            if removed.is_empty() {
                return Ok(Write::Unchanged(0));
            }
            reservation.resize(removed.iter().map(|member| member_size(member)).sum(), 0)?;
            Ok(Write::Updated(removed.len()))
        })
    }

    /// Returns the score of each of `members` (`None` where absent), as
    /// Redis's `ZMSCORE`.
    pub fn zmscore(&self, key: &[u8], members: &[Bytes]) -> Result<Vec<Option<f64>>> {
        self.read(key, |entry, _| {
            let Some(entry) = entry else {
                return Ok(vec![None; members.len()]);
            };
            let zset = as_zset(&entry.data)?;
            Ok(members
                .iter()
                .map(|member| zset.scores.get(member).copied())
                .collect())
        })
    }

    /// Returns the members (with scores) that `by` selects, ascending or, if
    /// `rev`, descending, skipping `limit.offset` and keeping at most
    /// `limit.count` — Redis's `ZRANGE` in all its forms.
    pub fn zrange_by(
        &self,
        key: &[u8],
        by: &ZRangeBy,
        rev: bool,
        limit: Option<ZLimit>,
    ) -> Result<Vec<(Bytes, f64)>> {
        by.check()?;
        self.read(key, |entry, _| {
            let Some(entry) = entry else {
                return Ok(Vec::new());
            };
            let zset = as_zset(&entry.data)?;
            let (offset, count) =
                limit.map_or((0, usize::MAX), |limit| (limit.offset, limit.count));
            Ok(match zset.select(by, rev) {
                Some(Selection::Forward(items)) => to_owned(items.skip(offset).take(count)),
                Some(Selection::Backward(items)) => to_owned(items.skip(offset).take(count)),
                None => Vec::new(),
            })
        })
    }

    /// Returns how many members `by` selects, as Redis's `ZCOUNT`/`ZLEXCOUNT`.
    pub fn zcount(&self, key: &[u8], by: &ZRangeBy) -> Result<usize> {
        by.check()?;
        self.read(key, |entry, _| {
            let Some(entry) = entry else {
                return Ok(0);
            };
            Ok(match as_zset(&entry.data)?.select(by, false) {
                Some(Selection::Forward(items)) => items.len(),
                Some(Selection::Backward(items)) => items.len(),
                None => 0,
            })
        })
    }

    /// Removes the members `by` selects (the key goes with its last member),
    /// as Redis's `ZREMRANGEBYRANK`/`BYSCORE`/`BYLEX`; returns how many went.
    pub fn zrem_range(&self, key: &[u8], by: &ZRangeBy) -> Result<usize> {
        by.check()?;
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(0));
            };
            let zset = as_zset_mut(&mut entry.data)?;
            let doomed: Vec<Bytes> = match zset.select(by, false) {
                Some(Selection::Forward(items)) => {
                    items.map(|(member, _)| member.clone()).collect()
                }
                Some(Selection::Backward(items)) => {
                    items.map(|(member, _)| member.clone()).collect()
                }
                None => Vec::new(),
            };
            if doomed.is_empty() {
                return Ok(Write::Unchanged(0));
            }
            reservation.resize(doomed.iter().map(|member| member_size(member)).sum(), 0)?;
            for member in &doomed {
                zset.remove(member);
            }
            Ok(Write::Updated(doomed.len()))
        })
    }

    /// Removes and returns up to `count` members with the lowest scores (the
    /// highest if `highest`), in pop order, as Redis's `ZPOPMIN`/`ZPOPMAX`.
    pub fn zpop(&self, key: &[u8], count: usize, highest: bool) -> Result<Vec<(Bytes, f64)>> {
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(Vec::new()));
            };
            let zset = as_zset_mut(&mut entry.data)?;
            let count = count.min(zset.len());
            if count == 0 {
                return Ok(Write::Unchanged(Vec::new()));
            }
            let popped: Vec<(Bytes, f64)> = if highest {
                to_owned(zset.order.iter().rev().take(count))
            } else {
                to_owned(zset.order.iter().take(count))
            };
            reservation.resize(
                popped.iter().map(|(member, _)| member_size(member)).sum(),
                0,
            )?;
            for (member, _) in &popped {
                zset.remove(member);
            }
            Ok(Write::Updated(popped))
        })
    }
}

/// How [`Store::zadd_many`] and [`Store::zincr_by`] treat each member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZAddOptions {
    /// Add and move (`Always`), only add (`IfAbsent`, `NX`) or only move
    /// (`IfPresent`, `XX`).
    pub condition: SetCondition,
    /// Move a member only to a higher (`GT`) or lower (`LT`) score.
    pub compare: ScoreCompare,
    /// Count moved members too (`CH`).
    pub changed: bool,
}

impl Default for ZAddOptions {
    fn default() -> Self {
        Self {
            condition: SetCondition::Always,
            compare: ScoreCompare::Any,
            changed: false,
        }
    }
}

impl ZAddOptions {
    fn check(self) -> Result<()> {
        if self.condition == SetCondition::IfAbsent && self.compare != ScoreCompare::Any {
            return Err(StoreError::InvalidArgument(
                "GT, LT, and/or NX options at the same time are not compatible".into(),
            ));
        }
        Ok(())
    }
}

/// Which score moves [`ZAddOptions`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScoreCompare {
    /// Any.
    Any,
    /// Only to a higher score (`GT`).
    Greater,
    /// Only to a lower score (`LT`).
    Less,
}

/// What a [`ZAddOptions`] update did to one member.
enum Update {
    Added(f64),
    Moved(f64),
    /// The member is there with this score already.
    Kept(f64),
    /// The options refused the change.
    Skipped,
}

/// One end of a score range: the score, and whether it is excluded (`(`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreBound {
    /// The score (may be infinite, never NaN).
    pub score: f64,
    /// Whether the bound itself is excluded.
    pub exclusive: bool,
}

/// One end of a lexicographic range, owned (see [`LexBound`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LexLimit {
    /// Below every member (`-`).
    Min,
    /// Above every member (`+`).
    Max,
    /// This member, included (`[member`).
    Inclusive(Bytes),
    /// This member, excluded (`(member`).
    Exclusive(Bytes),
}

impl LexLimit {
    fn as_bound(&self) -> LexBound<'_> {
        match self {
            LexLimit::Min => LexBound::NegInf,
            LexLimit::Max => LexBound::PosInf,
            LexLimit::Inclusive(member) => LexBound::Inclusive(member),
            LexLimit::Exclusive(member) => LexBound::Exclusive(member),
        }
    }
}

/// Which members a sorted-set range takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ZRangeBy {
    /// Ranks `start..=stop`, with `LRANGE`'s index rules (counted from the
    /// highest score when the range is reversed).
    Rank {
        /// First rank.
        start: i64,
        /// Last rank, included.
        stop: i64,
    },
    /// Scores between `min` and `max`.
    Score {
        /// Lowest score.
        min: ScoreBound,
        /// Highest score.
        max: ScoreBound,
    },
    /// Members between `min` and `max` in byte order (meaningful when all
    /// scores are equal, as in Redis).
    Lex {
        /// Lowest member.
        min: LexLimit,
        /// Highest member.
        max: LexLimit,
    },
}

impl ZRangeBy {
    fn check(&self) -> Result<()> {
        if let ZRangeBy::Score { min, max } = self {
            check_score(min.score)?;
            check_score(max.score)?;
        }
        Ok(())
    }
}

/// `LIMIT offset count` of a sorted-set range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZLimit {
    /// Members skipped first.
    pub offset: usize,
    /// Members kept at most.
    pub count: usize,
}

/// A selected run of a sorted set, in the order asked for.
enum Selection<'a> {
    Forward(skiplist::Iter<'a>),
    Backward(std::iter::Rev<skiplist::Iter<'a>>),
}

impl ZSetData {
    /// Applies one `ZADD`-style change to `member` (`score` is an increment
    /// if `incr`). Touches nothing on error or when skipped.
    fn update(
        &mut self,
        member: Bytes,
        score: f64,
        incr: bool,
        options: ZAddOptions,
    ) -> Result<Update> {
        let old = self.scores.get(&member).copied();
        match (options.condition, old) {
            (SetCondition::IfAbsent, Some(_)) | (SetCondition::IfPresent, None) => {
                return Ok(Update::Skipped);
            }
            _ => {}
        }
        let new = if incr {
            old.unwrap_or(0.0) + score
        } else {
            score
        };
        if new.is_nan() {
            return Err(StoreError::InvalidValue(
                "resulting score is not a number (NaN)".into(),
            ));
        }
        let Some(old) = old else {
            self.insert(member, new);
            return Ok(Update::Added(new));
        };
        let allowed = match options.compare {
            ScoreCompare::Any => true,
            ScoreCompare::Greater => new > old,
            ScoreCompare::Less => new < old,
        };
        if !allowed {
            return Ok(Update::Skipped);
        }
        if new == old {
            return Ok(Update::Kept(new));
        }
        self.insert(member, new);
        Ok(Update::Moved(new))
    }

    /// The members `by` selects, or `None` for an empty rank range.
    fn select(&self, by: &ZRangeBy, rev: bool) -> Option<Selection<'_>> {
        let items = match by {
            ZRangeBy::Rank { start, stop } => {
                let (start, stop) = resolve_range(*start, *stop, self.len())?;
                if rev {
                    return Some(Selection::Backward(
                        self.order.rev_range_by_rank(start, stop),
                    ));
                }
                self.order.range_by_rank(start, stop)
            }
            ZRangeBy::Score { min, max } => {
                self.order
                    .range_by_score(min.score, min.exclusive, max.score, max.exclusive)
            }
            ZRangeBy::Lex { min, max } => self.order.range_by_lex(min.as_bound(), max.as_bound()),
        };
        Some(if rev {
            Selection::Backward(items.rev())
        } else {
            Selection::Forward(items)
        })
    }
}
