//! Model-based property test: random operation sequences run against the store
//! and against a plain `BTreeMap` model that advances the same mock clock; every
//! reply, every key's type and the store's own invariants must agree after every
//! step, including field and member expiry, sweeps and a memory limit.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use hive_store::{
    Clock, End, ExpireCondition, Kind, MockClock, Op, Reply, ScoreBound, ScoreCompare,
    SetCondition, SetTtl, Store, StoreConfig, StoreError, ZAddOptions, ZLimit, ZRangeBy,
};
use proptest::prelude::*;

const KEYS: &[&str] = &["a", "b"];
const NAMES: &[&str] = &["x", "y", "z", "w"];
const SCORES: &[f64] = &[f64::NEG_INFINITY, -1.5, 0.0, 1.0, 2.5, f64::INFINITY];
/// TTLs in ms; 0 is invalid and must be refused without changing anything.
const TTLS: &[u64] = &[0, 1, 3, 10, 40];

#[derive(Debug, Clone)]
enum Step {
    Run(usize, Op),
    Advance(u64),
    Sweep,
}

fn bytes_of(options: &'static [&'static str]) -> impl Strategy<Value = Bytes> {
    prop::sample::select(options).prop_map(|name: &str| Bytes::from_static(name.as_bytes()))
}

fn value() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

fn ttl() -> impl Strategy<Value = u64> {
    prop::sample::select(TTLS)
}

/// A Unix-ms deadline around the model clock's start: some already past.
fn at_ms() -> impl Strategy<Value = u64> {
    let start = MockClock::default().now_ms();
    (start - 50..start + 5_000).boxed()
}

fn maybe_ttl() -> impl Strategy<Value = Option<u64>> {
    prop::option::weighted(0.3, ttl())
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![Just(End::Front), Just(End::Back)]
}

fn index() -> impl Strategy<Value = i64> {
    -6i64..6
}

fn score() -> impl Strategy<Value = f64> {
    prop::sample::select(SCORES)
}

/// Operations on any key.
fn key_op() -> BoxedStrategy<Op> {
    prop_oneof![3 => key_op_basic(), 2 => key_op_more()].boxed()
}

fn key_op_basic() -> BoxedStrategy<Op> {
    prop_oneof![
        Just(Op::Exists),
        Just(Op::Type),
        Just(Op::Del),
        ttl().prop_map(|ttl_ms| Op::Expire { ttl_ms }),
        Just(Op::Persist),
        Just(Op::Ttl),
        Just(Op::ExpireTime),
    ]
    .boxed()
}

fn value_op() -> BoxedStrategy<Op> {
    prop_oneof![3 => value_op_basic(), 2 => value_op_more()].boxed()
}

fn value_op_basic() -> BoxedStrategy<Op> {
    prop_oneof![
        Just(Op::Get),
        (value(), maybe_ttl()).prop_map(|(value, ttl_ms)| Op::Set { value, ttl_ms }),
        (value(), set_ttl(), set_condition(), any::<bool>()).prop_map(
            |(value, ttl, condition, get)| Op::SetWith {
                value,
                ttl,
                condition,
                get
            }
        ),
        (-3i64..4).prop_map(|delta| Op::IncrBy { delta }),
        prop_oneof![value(), Just(Bytes::from_static(b"7"))].prop_map(|value| Op::Append { value }),
    ]
    .boxed()
}

fn set_ttl() -> impl Strategy<Value = SetTtl> {
    prop_oneof![
        Just(SetTtl::None),
        Just(SetTtl::Keep),
        ttl().prop_map(SetTtl::Ms),
    ]
}

fn set_condition() -> impl Strategy<Value = SetCondition> {
    prop_oneof![
        Just(SetCondition::Always),
        Just(SetCondition::IfAbsent),
        Just(SetCondition::IfPresent),
    ]
}

fn hash_op() -> BoxedStrategy<Op> {
    prop_oneof![3 => hash_op_basic(), 2 => hash_op_more()].boxed()
}

fn hash_op_basic() -> BoxedStrategy<Op> {
    let name = || bytes_of(NAMES);
    prop_oneof![
        3 => (name(), value(), maybe_ttl()).prop_map(|(field, value, ttl_ms)| Op::HSet { field, value, ttl_ms }),
        1 => name().prop_map(|field| Op::HGet { field }),
        1 => Just(Op::HGetAll),
        1 => Just(Op::HKeys),
        1 => Just(Op::HLen),
        1 => name().prop_map(|field| Op::HDel { field }),
        2 => (name(), ttl()).prop_map(|(field, ttl_ms)| Op::HExpireField { field, ttl_ms }),
    ]
    .boxed()
}

fn list_op() -> BoxedStrategy<Op> {
    prop_oneof![3 => list_op_basic(), 2 => list_op_more()].boxed()
}

fn list_op_basic() -> BoxedStrategy<Op> {
    prop_oneof![
        3 => (end(), prop::collection::vec(value(), 1..4)).prop_map(|(end, values)| Op::Push { end, values }),
        2 => end().prop_map(|end| Op::Pop { end }),
        1 => index().prop_map(|index| Op::LIndex { index }),
        1 => (index(), value()).prop_map(|(index, value)| Op::LSet { index, value }),
        2 => (index(), index()).prop_map(|(start, stop)| Op::LRange { start, stop }),
        1 => Just(Op::LLen),
    ]
    .boxed()
}

fn set_op() -> BoxedStrategy<Op> {
    prop_oneof![3 => set_op_basic(), 2 => set_op_more()].boxed()
}

fn set_op_basic() -> BoxedStrategy<Op> {
    let name = || bytes_of(NAMES);
    prop_oneof![
        3 => prop::collection::vec(name(), 1..4).prop_map(|members| Op::SAdd { members }),
        1 => name().prop_map(|member| Op::SRem { member }),
        1 => name().prop_map(|member| Op::SIsMember { member }),
        1 => Just(Op::SMembers),
        1 => Just(Op::SCard),
        2 => (name(), ttl()).prop_map(|(member, ttl_ms)| Op::SExpireMember { member, ttl_ms }),
    ]
    .boxed()
}

fn zset_op() -> BoxedStrategy<Op> {
    prop_oneof![3 => zset_op_basic(), 2 => zset_op_more()].boxed()
}

fn zset_op_basic() -> BoxedStrategy<Op> {
    let name = || bytes_of(NAMES);
    prop_oneof![
        3 => (score(), name()).prop_map(|(score, member)| Op::ZAdd { score, member }),
        1 => name().prop_map(|member| Op::ZRem { member }),
        1 => name().prop_map(|member| Op::ZScore { member }),
        1 => (name(), any::<bool>()).prop_map(|(member, rev)| Op::ZRank { member, rev }),
        1 => (name(), any::<bool>()).prop_map(|(member, rev)| Op::ZRankWithScore { member, rev }),
        1 => (index(), index(), any::<bool>()).prop_map(|(start, stop, rev)| Op::ZRange { start, stop, rev }),
        1 => (score(), score()).prop_map(|(min, max)| Op::ZRangeByScore { min, max }),
        1 => Just(Op::ZCard),
    ]
    .boxed()
}

fn names() -> impl Strategy<Value = Vec<Bytes>> {
    prop::collection::vec(bytes_of(NAMES), 1..4)
}

fn expire_condition() -> impl Strategy<Value = ExpireCondition> {
    prop_oneof![
        Just(ExpireCondition::Always),
        Just(ExpireCondition::IfNone),
        Just(ExpireCondition::IfSome),
        Just(ExpireCondition::Later),
        Just(ExpireCondition::Earlier),
        Just(ExpireCondition::EarlierThanSome),
    ]
}

fn key_op_more() -> BoxedStrategy<Op> {
    prop_oneof![
        (ttl(), expire_condition())
            .prop_map(|(ttl_ms, condition)| Op::ExpireIf { ttl_ms, condition }),
        (at_ms(), expire_condition())
            .prop_map(|(at_ms, condition)| Op::ExpireIfAt { at_ms, condition }),
    ]
    .boxed()
}

fn value_op_more() -> BoxedStrategy<Op> {
    prop_oneof![
        Just(Op::GetDel),
        set_ttl().prop_map(|ttl| Op::GetEx { ttl }),
        (0u64..6, value()).prop_map(|(offset, value)| Op::SetRange { offset, value }),
    ]
    .boxed()
}

fn hash_op_more() -> BoxedStrategy<Op> {
    let name = || bytes_of(NAMES);
    prop_oneof![
        prop::collection::vec((name(), value()), 1..4).prop_map(|pairs| Op::HSetMany { pairs }),
        (name(), value()).prop_map(|(field, value)| Op::HSetNx { field, value }),
        (name(), -3i64..4).prop_map(|(field, delta)| Op::HIncrBy { field, delta }),
        names().prop_map(|fields| Op::HDelMany { fields }),
        (names(), ttl(), expire_condition()).prop_map(|(fields, ttl_ms, condition)| {
            Op::HExpireFields {
                fields,
                ttl_ms,
                condition,
            }
        }),
        names().prop_map(|fields| Op::HPersistFields { fields }),
        names().prop_map(|fields| Op::HTtlFields { fields }),
        (names(), at_ms(), expire_condition()).prop_map(|(fields, at_ms, condition)| {
            Op::HExpireFieldsAt {
                fields,
                at_ms,
                condition,
            }
        }),
        names().prop_map(|fields| Op::HExpireTimeFields { fields }),
    ]
    .boxed()
}

fn list_op_more() -> BoxedStrategy<Op> {
    let element = || bytes_of(NAMES);
    prop_oneof![
        (end(), prop::collection::vec(element(), 0..3))
            .prop_map(|(end, values)| Op::PushExisting { end, values }),
        (end(), 0u64..4).prop_map(|(end, count)| Op::PopMany { end, count }),
        (index(), index()).prop_map(|(start, stop)| Op::LTrim { start, stop }),
        (-3i64..3, element()).prop_map(|(count, element)| Op::LRem { count, element }),
        (any::<bool>(), element(), element()).prop_map(|(before, pivot, element)| Op::LInsert {
            before,
            pivot,
            element
        }),
        // Elements from a small alphabet, so LREM and LINSERT find them.
        (end(), prop::collection::vec(element(), 1..4))
            .prop_map(|(end, values)| Op::Push { end, values }),
    ]
    .boxed()
}

fn set_op_more() -> BoxedStrategy<Op> {
    prop_oneof![
        names().prop_map(|members| Op::SRemMany { members }),
        prop::collection::vec(bytes_of(NAMES), 0..4).prop_map(|members| Op::SReplace { members }),
    ]
    .boxed()
}

fn zadd_options() -> impl Strategy<Value = ZAddOptions> {
    (
        set_condition(),
        prop_oneof![
            Just(ScoreCompare::Any),
            Just(ScoreCompare::Greater),
            Just(ScoreCompare::Less)
        ],
        any::<bool>(),
    )
        .prop_map(|(condition, compare, changed)| ZAddOptions {
            condition,
            compare,
            changed,
        })
}

fn score_bound() -> impl Strategy<Value = ScoreBound> {
    (score(), any::<bool>()).prop_map(|(score, exclusive)| ScoreBound { score, exclusive })
}

fn zrange_by() -> impl Strategy<Value = ZRangeBy> {
    prop_oneof![
        (index(), index()).prop_map(|(start, stop)| ZRangeBy::Rank { start, stop }),
        (score_bound(), score_bound()).prop_map(|(min, max)| ZRangeBy::Score { min, max }),
    ]
}

fn zset_op_more() -> BoxedStrategy<Op> {
    let name = || bytes_of(NAMES);
    prop_oneof![
        (
            prop::collection::vec((score(), name()), 1..4),
            zadd_options()
        )
            .prop_map(|(pairs, options)| Op::ZAddMany { pairs, options }),
        (name(), score(), zadd_options()).prop_map(|(member, delta, options)| Op::ZIncrBy {
            member,
            delta,
            options
        }),
        names().prop_map(|members| Op::ZRemMany { members }),
        names().prop_map(|members| Op::ZMScore { members }),
        (
            zrange_by(),
            any::<bool>(),
            prop::option::of((0usize..3, 0usize..4))
        )
            .prop_map(|(by, rev, limit)| Op::ZRangeBy {
                by,
                rev,
                limit: limit.map(|(offset, count)| ZLimit { offset, count }),
            }),
        zrange_by().prop_map(|by| Op::ZCount { by }),
        zrange_by().prop_map(|by| Op::ZRemRange { by }),
        (0u64..4, any::<bool>()).prop_map(|(count, highest)| Op::ZPop { count, highest }),
    ]
    .boxed()
}

/// Operations of one family (0..5: values, hashes, lists, sets, sorted sets)
/// mixed with key operations, or of every family (5), so that the sequences
/// that matter (add, expire, re-add, advance, read) are common.
fn op(family: usize) -> BoxedStrategy<Op> {
    match family {
        0 => prop_oneof![1 => key_op(), 3 => value_op()].boxed(),
        1 => prop_oneof![1 => key_op(), 3 => hash_op()].boxed(),
        2 => prop_oneof![1 => key_op(), 3 => list_op()].boxed(),
        3 => prop_oneof![1 => key_op(), 3 => set_op()].boxed(),
        4 => prop_oneof![1 => key_op(), 3 => zset_op()].boxed(),
        _ => prop_oneof![
            key_op(),
            value_op(),
            hash_op(),
            list_op(),
            set_op(),
            zset_op()
        ]
        .boxed(),
    }
}

fn step(family: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..KEYS.len(), op(family)).prop_map(|(key, op)| Step::Run(key, op)),
        2 => prop::sample::select(&[1u64, 2, 5, 20][..]).prop_map(Step::Advance),
        1 => Just(Step::Sweep),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    (0..6usize).prop_flat_map(|family| prop::collection::vec(step(family), 1..150))
}

// ---------------------------------------------------------------------------
// The model: the obvious implementation, with no sharding, indexes or budgets.

type Deadline = Option<u64>;

#[derive(Debug, Clone)]
enum Data {
    Plain(Bytes),
    Hash(BTreeMap<Bytes, (Bytes, Deadline)>),
    List(VecDeque<Bytes>),
    Set(BTreeMap<Bytes, Deadline>),
    ZSet(BTreeMap<Bytes, f64>),
}

#[derive(Debug, Clone)]
struct Entry {
    value: Data,
    deadline: Deadline,
}

#[derive(Debug, Default, Clone)]
struct Model {
    now: u64,
    keys: BTreeMap<Bytes, Entry>,
}

fn live(deadline: Deadline, now: u64) -> bool {
    deadline.is_none_or(|deadline| now < deadline)
}

fn is_empty(value: &Data) -> bool {
    match value {
        Data::Plain(_) => false,
        Data::Hash(map) => map.is_empty(),
        Data::List(list) => list.is_empty(),
        Data::Set(set) => set.is_empty(),
        Data::ZSet(zset) => zset.is_empty(),
    }
}

fn kind(value: &Data) -> Kind {
    match value {
        Data::Plain(_) => Kind::Value,
        Data::Hash(_) => Kind::Hash,
        Data::List(_) => Kind::List,
        Data::Set(_) => Kind::Set,
        Data::ZSet(_) => Kind::ZSet,
    }
}

fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let index = if index < 0 { index + len as i64 } else { index };
    (index >= 0 && (index as usize) < len).then_some(index as usize)
}

fn resolve_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let stop = if stop < 0 { stop + len } else { stop };
    (start <= stop && start < len).then(|| (start as usize, stop.min(len - 1) as usize))
}

/// The rank of `member` (from the highest score if `rev`) and its score.
fn model_rank(
    zset: &BTreeMap<Bytes, f64>,
    member: &Bytes,
    rev: bool,
) -> Result<(u64, f64), StoreError> {
    let sorted = sorted_zset(zset);
    let rank = sorted
        .iter()
        .position(|(m, _)| m == member)
        .ok_or(StoreError::NotFound)?;
    let rank = if rev { sorted.len() - 1 - rank } else { rank };
    Ok((rank as u64, zset[member]))
}

fn sorted_zset(zset: &BTreeMap<Bytes, f64>) -> Vec<(Bytes, f64)> {
    let mut items: Vec<_> = zset
        .iter()
        .map(|(member, score)| (member.clone(), *score))
        .collect();
    items.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(&b.0)));
    items
}

fn deadline(now: u64, ttl: u64) -> Result<u64, StoreError> {
    if ttl == 0 {
        return Err(StoreError::InvalidArgument("ttl".into()));
    }
    Ok(now + ttl)
}

/// The model's reading of Redis's integers: `-` and digits, no leading zeros.
fn canonical_integer(value: &[u8]) -> Result<i64, StoreError> {
    let invalid = || StoreError::InvalidValue("not an integer".into());
    let text = std::str::from_utf8(value).map_err(|_| invalid())?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !digits.starts_with('0'));
    if ok {
        text.parse().map_err(|_| invalid())
    } else {
        Err(invalid())
    }
}

fn maybe_deadline(now: u64, ttl: Option<u64>) -> Result<Deadline, StoreError> {
    ttl.map(|ttl| deadline(now, ttl)).transpose()
}

macro_rules! typed {
    ($entry:expr, $variant:ident) => {
        match $entry {
            Some(Entry {
                value: Data::$variant(inner),
                ..
            }) => Some(inner),
            Some(_) => return Err(StoreError::WrongType),
            None => None,
        }
    };
}

/// Returns the collection under `key`, created empty if absent; `WrongType`
/// if the key holds another kind.
macro_rules! create {
    ($self:ident, $entry:ident, $key:ident, $variant:ident, $fresh:expr) => {{
        if typed!($entry, $variant).is_none() {
            let fresh = Entry {
                value: Data::$variant($fresh),
                deadline: None,
            };
            $self.keys.insert($key.clone(), fresh);
        }
        match $self.keys.get_mut($key) {
            Some(Entry {
                value: Data::$variant(inner),
                ..
            }) => inner,
            _ => unreachable!("just created"),
        }
    }};
}

impl Model {
    /// Drops what has expired at `now`, as the store must appear to have done.
    fn settle(&mut self) {
        let now = self.now;
        self.keys.retain(|_, entry| {
            if !live(entry.deadline, now) {
                return false;
            }
            match &mut entry.value {
                Data::Hash(map) => map.retain(|_, (_, deadline)| live(*deadline, now)),
                Data::Set(set) => set.retain(|_, deadline| live(*deadline, now)),
                _ => {}
            }
            !is_empty(&entry.value)
        });
    }

    fn run(&mut self, key: &Bytes, op: Op) -> Result<Reply, StoreError> {
        self.settle();
        let now = self.now;
        let reply = self.apply(key, op, now);
        self.keys.retain(|_, entry| !is_empty(&entry.value));
        reply
    }

    fn apply(&mut self, key: &Bytes, op: Op, now: u64) -> Result<Reply, StoreError> {
        let entry = self.keys.get_mut(key);
        Ok(match op {
            Op::Exists => Reply::Bool(entry.is_some()),
            Op::Type => Reply::Kind(entry.map(|entry| kind(&entry.value))),
            Op::Del => Reply::Bool(self.keys.remove(key).is_some()),
            Op::Expire { ttl_ms } => {
                let deadline = deadline(now, ttl_ms)?;
                entry.ok_or(StoreError::NotFound)?.deadline = Some(deadline);
                Reply::Unit
            }
            Op::Persist => {
                let entry = entry.ok_or(StoreError::NotFound)?;
                Reply::Bool(entry.deadline.take().is_some())
            }
            Op::Ttl => Reply::Ttl(entry.ok_or(StoreError::NotFound)?.deadline.map(|d| d - now)),
            Op::ExpireTime => Reply::Ttl(entry.ok_or(StoreError::NotFound)?.deadline),
            Op::Get => match entry {
                Some(Entry {
                    value: Data::Plain(value),
                    ..
                }) => Reply::Bytes(value.clone()),
                Some(_) => return Err(StoreError::WrongType),
                None => return Err(StoreError::NotFound),
            },
            Op::Set { value, ttl_ms } => {
                let deadline = maybe_deadline(now, ttl_ms)?;
                self.keys.insert(
                    key.clone(),
                    Entry {
                        value: Data::Plain(value),
                        deadline,
                    },
                );
                Reply::Unit
            }
            Op::SetWith {
                value,
                ttl,
                condition,
                get,
            } => {
                let previous = match entry.as_deref() {
                    None => None,
                    Some(Entry {
                        value: Data::Plain(old),
                        ..
                    }) => Some(Some(old.clone())),
                    Some(_) if get => return Err(StoreError::WrongType),
                    Some(_) => Some(None),
                };
                let allowed = match condition {
                    SetCondition::Always => true,
                    SetCondition::IfAbsent => previous.is_none(),
                    SetCondition::IfPresent => previous.is_some(),
                };
                let old = previous.flatten();
                if allowed {
                    let deadline = match ttl {
                        SetTtl::None => None,
                        SetTtl::Ms(ttl) => Some(deadline(now, ttl)?),
                        SetTtl::Keep => entry.and_then(|entry| entry.deadline),
                    };
                    self.keys.insert(
                        key.clone(),
                        Entry {
                            value: Data::Plain(value),
                            deadline,
                        },
                    );
                }
                Reply::Written {
                    written: allowed,
                    old,
                }
            }
            Op::IncrBy { delta } => {
                let (current, deadline) = match entry.as_deref() {
                    None => (0, None),
                    Some(Entry {
                        value: Data::Plain(old),
                        deadline,
                    }) => (canonical_integer(old)?, *deadline),
                    Some(_) => return Err(StoreError::WrongType),
                };
                let next = current
                    .checked_add(delta)
                    .ok_or_else(|| StoreError::InvalidValue("overflow".into()))?;
                self.keys.insert(
                    key.clone(),
                    Entry {
                        value: Data::Plain(Bytes::from(next.to_string())),
                        deadline,
                    },
                );
                Reply::Integer(next)
            }
            Op::Append { value } => {
                let (mut joined, deadline) = match entry.as_deref() {
                    None => (Vec::new(), None),
                    Some(Entry {
                        value: Data::Plain(old),
                        deadline,
                    }) => (old.to_vec(), *deadline),
                    Some(_) => return Err(StoreError::WrongType),
                };
                joined.extend_from_slice(&value);
                let len = joined.len();
                self.keys.insert(
                    key.clone(),
                    Entry {
                        value: Data::Plain(Bytes::from(joined)),
                        deadline,
                    },
                );
                Reply::Count(len as u64)
            }
            Op::HSet {
                field,
                value,
                ttl_ms,
            } => {
                let deadline = maybe_deadline(now, ttl_ms)?;
                let map = create!(self, entry, key, Hash, BTreeMap::new());
                Reply::Bool(map.insert(field, (value, deadline)).is_none())
            }
            Op::HGet { field } => {
                let map = typed!(entry, Hash).ok_or(StoreError::NotFound)?;
                Reply::Bytes(map.get(&field).ok_or(StoreError::NotFound)?.0.clone())
            }
            Op::HGetAll => Reply::Pairs(
                typed!(entry, Hash)
                    .map(|map| {
                        map.iter()
                            .map(|(k, (v, _))| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            Op::HKeys => Reply::List(
                typed!(entry, Hash)
                    .map(|map| map.keys().cloned().collect())
                    .unwrap_or_default(),
            ),
            Op::HLen => Reply::Count(typed!(entry, Hash).map_or(0, |map| map.len() as u64)),
            Op::HDel { field } => {
                Reply::Bool(typed!(entry, Hash).is_some_and(|map| map.remove(&field).is_some()))
            }
            Op::HExpireField { field, ttl_ms } => {
                let deadline = deadline(now, ttl_ms)?;
                let map = typed!(entry, Hash).ok_or(StoreError::NotFound)?;
                map.get_mut(&field).ok_or(StoreError::NotFound)?.1 = Some(deadline);
                Reply::Unit
            }
            Op::Push { end, values } => {
                let list = create!(self, entry, key, List, VecDeque::new());
                for value in values {
                    match end {
                        End::Front => list.push_front(value),
                        End::Back => list.push_back(value),
                    }
                }
                Reply::Count(list.len() as u64)
            }
            Op::Pop { end } => {
                let list = typed!(entry, List).ok_or(StoreError::NotFound)?;
                let popped = match end {
                    End::Front => list.pop_front(),
                    End::Back => list.pop_back(),
                };
                Reply::Bytes(popped.ok_or(StoreError::NotFound)?)
            }
            Op::LIndex { index } => {
                let list = typed!(entry, List).ok_or(StoreError::NotFound)?;
                let index = resolve_index(index, list.len()).ok_or(StoreError::NotFound)?;
                Reply::Bytes(list[index].clone())
            }
            Op::LSet { index, value } => {
                let list = typed!(entry, List).ok_or(StoreError::NotFound)?;
                let index = resolve_index(index, list.len()).ok_or(StoreError::NotFound)?;
                list[index] = value;
                Reply::Unit
            }
            Op::LRange { start, stop } => Reply::List(match typed!(entry, List) {
                Some(list) => match resolve_range(start, stop, list.len()) {
                    Some((start, stop)) => list.range(start..=stop).cloned().collect(),
                    None => Vec::new(),
                },
                None => Vec::new(),
            }),
            Op::LLen => Reply::Count(typed!(entry, List).map_or(0, |list| list.len() as u64)),
            Op::SAdd { members } => {
                let set = create!(self, entry, key, Set, BTreeMap::new());
                let mut added = 0;
                for member in members {
                    added += u64::from(set.insert(member, None).is_none());
                }
                Reply::Count(added)
            }
            Op::SRem { member } => {
                Reply::Bool(typed!(entry, Set).is_some_and(|set| set.remove(&member).is_some()))
            }
            Op::SIsMember { member } => {
                Reply::Bool(typed!(entry, Set).is_some_and(|set| set.contains_key(&member)))
            }
            Op::SMembers => Reply::List(
                typed!(entry, Set)
                    .map(|set| set.keys().cloned().collect())
                    .unwrap_or_default(),
            ),
            Op::SCard => Reply::Count(typed!(entry, Set).map_or(0, |set| set.len() as u64)),
            Op::SExpireMember { member, ttl_ms } => {
                let deadline = deadline(now, ttl_ms)?;
                let set = typed!(entry, Set).ok_or(StoreError::NotFound)?;
                *set.get_mut(&member).ok_or(StoreError::NotFound)? = Some(deadline);
                Reply::Unit
            }
            Op::ZAdd { score, member } => {
                let zset = create!(self, entry, key, ZSet, BTreeMap::new());
                Reply::Bool(zset.insert(member, score).is_none())
            }
            Op::ZRem { member } => {
                Reply::Bool(typed!(entry, ZSet).is_some_and(|zset| zset.remove(&member).is_some()))
            }
            Op::ZScore { member } => {
                let zset = typed!(entry, ZSet).ok_or(StoreError::NotFound)?;
                Reply::Score(*zset.get(&member).ok_or(StoreError::NotFound)?)
            }
            Op::ZRank { member, rev } => {
                let zset = typed!(entry, ZSet).ok_or(StoreError::NotFound)?;
                Reply::Count(model_rank(zset, &member, rev)?.0)
            }
            Op::ZRankWithScore { member, rev } => {
                let zset = typed!(entry, ZSet).ok_or(StoreError::NotFound)?;
                let (rank, score) = model_rank(zset, &member, rev)?;
                Reply::Ranked { rank, score }
            }
            Op::ZRange { start, stop, rev } => {
                let mut sorted = typed!(entry, ZSet)
                    .map(|zset| sorted_zset(zset))
                    .unwrap_or_default();
                if rev {
                    sorted.reverse();
                }
                Reply::Scored(match resolve_range(start, stop, sorted.len()) {
                    Some((start, stop)) => sorted[start..=stop].to_vec(),
                    None => Vec::new(),
                })
            }
            Op::ZRangeByScore { min, max } => Reply::Scored(
                typed!(entry, ZSet)
                    .map(|zset| {
                        sorted_zset(zset)
                            .into_iter()
                            .filter(|(_, s)| min <= *s && *s <= max)
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            Op::ZCard => Reply::Count(typed!(entry, ZSet).map_or(0, |zset| zset.len() as u64)),
            other => return self.apply_more(key, other, now),
        })
    }

    /// The operations added for `hived`'s command set.
    fn apply_more(&mut self, key: &Bytes, op: Op, now: u64) -> Result<Reply, StoreError> {
        // Deadline forms restate themselves as their TTL forms.
        let op = match op {
            Op::ExpireIfAt { at_ms, condition } => Op::ExpireIf {
                ttl_ms: at_ms.saturating_sub(now),
                condition,
            },
            Op::HExpireFieldsAt {
                fields,
                at_ms,
                condition,
            } => Op::HExpireFields {
                fields,
                ttl_ms: at_ms.saturating_sub(now),
                condition,
            },
            Op::HExpireTimeFields { fields } => {
                let Reply::Integers(codes) =
                    self.apply_more(key, Op::HTtlFields { fields }, now)?
                else {
                    unreachable!("HTtlFields answers Integers")
                };
                return Ok(Reply::Integers(
                    codes
                        .into_iter()
                        .map(|code| if code >= 0 { code + now as i64 } else { code })
                        .collect(),
                ));
            }
            op => op,
        };
        let entry = self.keys.get_mut(key);
        let codes = |fields: &[Bytes], code: &mut dyn FnMut(&Bytes) -> i64| {
            Reply::Integers(fields.iter().map(code).collect())
        };
        Ok(match op {
            Op::ExpireIf { ttl_ms, condition } => {
                let new = if ttl_ms == 0 {
                    now
                } else {
                    deadline(now, ttl_ms)?
                };
                let Some(entry) = entry else {
                    return Ok(Reply::Bool(false));
                };
                if !allows(condition, entry.deadline, new) {
                    return Ok(Reply::Bool(false));
                }
                if ttl_ms == 0 {
                    self.keys.remove(key);
                } else {
                    entry.deadline = Some(new);
                }
                Reply::Bool(true)
            }
            Op::GetDel => {
                let value = typed!(entry, Plain).ok_or(StoreError::NotFound)?.clone();
                self.keys.remove(key);
                Reply::Bytes(value)
            }
            Op::GetEx { ttl } => {
                let entry = entry.ok_or(StoreError::NotFound)?;
                let Data::Plain(value) = &entry.value else {
                    return Err(StoreError::WrongType);
                };
                let value = value.clone();
                match ttl {
                    SetTtl::Keep => {}
                    SetTtl::None => entry.deadline = None,
                    SetTtl::Ms(ttl) => entry.deadline = Some(deadline(now, ttl)?),
                }
                Reply::Bytes(value)
            }
            Op::SetRange { offset, value } => {
                let current = match typed!(entry, Plain) {
                    None if value.is_empty() => return Ok(Reply::Count(0)),
                    None => Bytes::new(),
                    Some(current) => current.clone(),
                };
                if value.is_empty() {
                    return Ok(Reply::Count(current.len() as u64));
                }
                let mut joined = current.to_vec();
                let offset = offset as usize;
                if joined.len() < offset + value.len() {
                    joined.resize(offset + value.len(), 0);
                }
                joined[offset..offset + value.len()].copy_from_slice(&value);
                let len = joined.len() as u64;
                let deadline = self.keys.get(key).and_then(|entry| entry.deadline);
                self.keys.insert(
                    key.clone(),
                    Entry {
                        value: Data::Plain(Bytes::from(joined)),
                        deadline,
                    },
                );
                Reply::Count(len)
            }
            Op::HSetMany { pairs } => {
                let map = create!(self, entry, key, Hash, BTreeMap::new());
                let mut added = 0;
                for (field, value) in pairs {
                    added += u64::from(map.insert(field, (value, None)).is_none());
                }
                Reply::Count(added)
            }
            Op::HSetNx { field, value } => {
                let map = create!(self, entry, key, Hash, BTreeMap::new());
                if map.contains_key(&field) {
                    return Ok(Reply::Bool(false));
                }
                map.insert(field, (value, None));
                Reply::Bool(true)
            }
            Op::HIncrBy { field, delta } => {
                let map = create!(self, entry, key, Hash, BTreeMap::new());
                let (current, deadline) = match map.get(&field) {
                    None => (0, None),
                    Some((value, deadline)) => (canonical_integer(value)?, *deadline),
                };
                let next = current
                    .checked_add(delta)
                    .ok_or_else(|| StoreError::InvalidValue("overflow".into()))?;
                map.insert(field, (Bytes::from(next.to_string()), deadline));
                Reply::Integer(next)
            }
            Op::HDelMany { fields } => {
                let Some(map) = typed!(entry, Hash) else {
                    return Ok(Reply::Count(0));
                };
                Reply::Count(
                    fields
                        .iter()
                        .filter(|field| map.remove(*field).is_some())
                        .count() as u64,
                )
            }
            Op::HExpireFields {
                fields,
                ttl_ms,
                condition,
            } => {
                let new = if ttl_ms == 0 {
                    now
                } else {
                    deadline(now, ttl_ms)?
                };
                let Some(map) = typed!(entry, Hash) else {
                    return Ok(Reply::Integers(vec![-2; fields.len()]));
                };
                codes(&fields, &mut |field| match map.get(field) {
                    None => -2,
                    Some((_, current)) if !allows(condition, *current, new) => 0,
                    Some(_) if ttl_ms == 0 => {
                        map.remove(field);
                        2
                    }
                    Some(_) => {
                        map.get_mut(field).unwrap().1 = Some(new);
                        1
                    }
                })
            }
            Op::HPersistFields { fields } => {
                let Some(map) = typed!(entry, Hash) else {
                    return Ok(Reply::Integers(vec![-2; fields.len()]));
                };
                codes(&fields, &mut |field| match map.get_mut(field) {
                    None => -2,
                    Some((_, None)) => -1,
                    Some((_, deadline)) => {
                        *deadline = None;
                        1
                    }
                })
            }
            Op::HTtlFields { fields } => {
                let Some(map) = typed!(entry, Hash) else {
                    return Ok(Reply::Integers(vec![-2; fields.len()]));
                };
                codes(&fields, &mut |field| match map.get(field) {
                    None => -2,
                    Some((_, None)) => -1,
                    Some((_, Some(deadline))) => (deadline - now) as i64,
                })
            }
            Op::PushExisting { end, values } => {
                let Some(list) = typed!(entry, List) else {
                    return Ok(Reply::Count(0));
                };
                for value in values {
                    match end {
                        End::Front => list.push_front(value),
                        End::Back => list.push_back(value),
                    }
                }
                Reply::Count(list.len() as u64)
            }
            Op::PopMany { end, count } => {
                let list = typed!(entry, List).ok_or(StoreError::NotFound)?;
                let mut popped = Vec::new();
                for _ in 0..count {
                    let next = match end {
                        End::Front => list.pop_front(),
                        End::Back => list.pop_back(),
                    };
                    popped.extend(next);
                }
                Reply::List(popped)
            }
            Op::LTrim { start, stop } => {
                if let Some(list) = typed!(entry, List) {
                    let kept: VecDeque<Bytes> = match resolve_range(start, stop, list.len()) {
                        Some((start, stop)) => list.range(start..=stop).cloned().collect(),
                        None => VecDeque::new(),
                    };
                    *list = kept;
                }
                Reply::Unit
            }
            Op::LRem { count, element } => {
                let Some(list) = typed!(entry, List) else {
                    return Ok(Reply::Count(0));
                };
                let limit = if count == 0 {
                    usize::MAX
                } else {
                    count.unsigned_abs() as usize
                };
                let mut removed = 0;
                if count >= 0 {
                    let mut index = 0;
                    while index < list.len() {
                        if removed < limit && list[index] == element {
                            list.remove(index);
                            removed += 1;
                        } else {
                            index += 1;
                        }
                    }
                } else {
                    let mut index = list.len();
                    while index > 0 {
                        index -= 1;
                        if removed < limit && list[index] == element {
                            list.remove(index);
                            removed += 1;
                        }
                    }
                }
                Reply::Count(removed as u64)
            }
            Op::LInsert {
                before,
                pivot,
                element,
            } => {
                let Some(list) = typed!(entry, List) else {
                    return Ok(Reply::Integer(0));
                };
                let Some(at) = list.iter().position(|item| *item == pivot) else {
                    return Ok(Reply::Integer(-1));
                };
                list.insert(if before { at } else { at + 1 }, element);
                Reply::Integer(list.len() as i64)
            }
            Op::SRemMany { members } => {
                let Some(set) = typed!(entry, Set) else {
                    return Ok(Reply::Count(0));
                };
                Reply::Count(
                    members
                        .iter()
                        .filter(|member| set.remove(*member).is_some())
                        .count() as u64,
                )
            }
            Op::SReplace { members } => {
                let set: BTreeMap<Bytes, Deadline> =
                    members.into_iter().map(|member| (member, None)).collect();
                let len = set.len() as u64;
                self.keys.insert(
                    key.clone(),
                    Entry {
                        value: Data::Set(set),
                        deadline: None,
                    },
                );
                Reply::Count(len)
            }
            Op::ZAddMany { pairs, options } => {
                check_zadd(options)?;
                let zset = create!(self, entry, key, ZSet, BTreeMap::new());
                let mut counted = 0;
                for (score, member) in pairs {
                    counted += match zupdate(zset, member, score, false, options)? {
                        Some((true, _)) => 1,
                        Some((false, moved)) => u64::from(moved && options.changed),
                        None => 0,
                    };
                }
                Reply::Count(counted)
            }
            Op::ZIncrBy {
                member,
                delta,
                options,
            } => {
                check_zadd(options)?;
                let zset = create!(self, entry, key, ZSet, BTreeMap::new());
                let updated = zupdate(zset, member.clone(), delta, true, options)?;
                Reply::Scores(vec![updated.map(|_| zset[&member])])
            }
            Op::ZRemMany { members } => {
                let Some(zset) = typed!(entry, ZSet) else {
                    return Ok(Reply::Count(0));
                };
                Reply::Count(
                    members
                        .iter()
                        .filter(|member| zset.remove(*member).is_some())
                        .count() as u64,
                )
            }
            Op::ZMScore { members } => {
                let zset = typed!(entry, ZSet);
                Reply::Scores(
                    members
                        .iter()
                        .map(|member| zset.as_ref().and_then(|zset| zset.get(member).copied()))
                        .collect(),
                )
            }
            Op::ZRangeBy { by, rev, limit } => {
                let zset = typed!(entry, ZSet)
                    .map(|zset| sorted_zset(zset))
                    .unwrap_or_default();
                let mut selected = select(zset, &by, rev);
                if let Some(limit) = limit {
                    selected = selected
                        .into_iter()
                        .skip(limit.offset)
                        .take(limit.count)
                        .collect();
                }
                Reply::Scored(selected)
            }
            Op::ZCount { by } => {
                let zset = typed!(entry, ZSet)
                    .map(|zset| sorted_zset(zset))
                    .unwrap_or_default();
                Reply::Count(select(zset, &by, false).len() as u64)
            }
            Op::ZRemRange { by } => {
                let Some(zset) = typed!(entry, ZSet) else {
                    return Ok(Reply::Count(0));
                };
                let doomed = select(sorted_zset(zset), &by, false);
                for (member, _) in &doomed {
                    zset.remove(member);
                }
                Reply::Count(doomed.len() as u64)
            }
            Op::ZPop { count, highest } => {
                let Some(zset) = typed!(entry, ZSet) else {
                    return Ok(Reply::Scored(Vec::new()));
                };
                let mut sorted = sorted_zset(zset);
                if highest {
                    sorted.reverse();
                }
                sorted.truncate(count as usize);
                for (member, _) in &sorted {
                    zset.remove(member);
                }
                Reply::Scored(sorted)
            }
            other => panic!("the model does not generate {other:?}"),
        })
    }
}

fn allows(condition: ExpireCondition, current: Deadline, new: u64) -> bool {
    match condition {
        ExpireCondition::Always => true,
        ExpireCondition::IfNone => current.is_none(),
        ExpireCondition::IfSome => current.is_some(),
        ExpireCondition::Later => current.is_some_and(|current| new > current),
        ExpireCondition::Earlier => current.is_none_or(|current| new < current),
        ExpireCondition::EarlierThanSome => current.is_some_and(|current| new < current),
    }
}

fn check_zadd(options: ZAddOptions) -> Result<(), StoreError> {
    if options.condition == SetCondition::IfAbsent && options.compare != ScoreCompare::Any {
        return Err(StoreError::InvalidArgument("GT/LT with NX".into()));
    }
    Ok(())
}

/// One `ZADD` change: `Some((added, moved))` if applied, `None` if the options refused.
fn zupdate(
    zset: &mut BTreeMap<Bytes, f64>,
    member: Bytes,
    score: f64,
    incr: bool,
    options: ZAddOptions,
) -> Result<Option<(bool, bool)>, StoreError> {
    let old = zset.get(&member).copied();
    match (options.condition, old) {
        (SetCondition::IfAbsent, Some(_)) | (SetCondition::IfPresent, None) => return Ok(None),
        _ => {}
    }
    let new = if incr {
        old.unwrap_or(0.0) + score
    } else {
        score
    };
    if new.is_nan() {
        return Err(StoreError::InvalidValue("NaN".into()));
    }
    let Some(old) = old else {
        zset.insert(member, new);
        return Ok(Some((true, false)));
    };
    let allowed = match options.compare {
        ScoreCompare::Any => true,
        ScoreCompare::Greater => new > old,
        ScoreCompare::Less => new < old,
    };
    if !allowed {
        return Ok(None);
    }
    zset.insert(member, new);
    Ok(Some((false, new != old)))
}

fn select(mut sorted: Vec<(Bytes, f64)>, by: &ZRangeBy, rev: bool) -> Vec<(Bytes, f64)> {
    match by {
        ZRangeBy::Rank { start, stop } => {
            if rev {
                sorted.reverse();
            }
            match resolve_range(*start, *stop, sorted.len()) {
                Some((start, stop)) => sorted[start..=stop].to_vec(),
                None => Vec::new(),
            }
        }
        ZRangeBy::Score { min, max } => {
            let above = |score: f64| {
                if min.exclusive {
                    score > min.score
                } else {
                    score >= min.score
                }
            };
            let below = |score: f64| {
                if max.exclusive {
                    score < max.score
                } else {
                    score <= max.score
                }
            };
            sorted.retain(|(_, score)| above(*score) && below(*score));
            if rev {
                sorted.reverse();
            }
            sorted
        }
        ZRangeBy::Lex { .. } => unreachable!("lex ranges are not generated"),
    }
}

// ---------------------------------------------------------------------------

/// Puts unordered replies (hash fields, set members) in a canonical order.
fn canonical(reply: Result<Reply, StoreError>) -> Result<Reply, StoreError> {
    match reply {
        Ok(Reply::List(mut items)) => {
            items.sort();
            Ok(Reply::List(items))
        }
        Ok(Reply::Pairs(mut pairs)) => {
            pairs.sort();
            Ok(Reply::Pairs(pairs))
        }
        // Messages differ between the two; the kind must not.
        Err(StoreError::InvalidArgument(_)) => Err(StoreError::InvalidArgument(String::new())),
        Err(StoreError::InvalidValue(_)) => Err(StoreError::InvalidValue(String::new())),
        other => other,
    }
}

/// Runs `steps` against a store and the model. With `mem_limit`, a write the
/// store refuses for capacity is skipped in the model, and usage must stay
/// within the limit.
fn check(steps: Vec<Step>, mem_limit: u64) -> Result<(), TestCaseError> {
    let clock = MockClock::default();
    let config = StoreConfig {
        shards: 4,
        mem_limit,
        ..StoreConfig::default()
    };
    let store = Store::with_clock(config, Arc::new(clock.clone()));
    let mut model = Model {
        now: clock.now_ms(),
        ..Model::default()
    };
    for (number, step) in steps.into_iter().enumerate() {
        match step {
            Step::Advance(ms) => {
                clock.advance(ms);
                model.now += ms;
            }
            Step::Sweep => {
                store.sweep(2);
            }
            Step::Run(key, op) => {
                let key = Bytes::from_static(KEYS[key].as_bytes());
                let got = canonical(store.execute(&key, op.clone()));
                if mem_limit > 0 && got == Err(StoreError::CapacityExceeded) {
                    prop_assert!(
                        op.is_write(),
                        "step {number}: a read was refused for capacity"
                    );
                } else {
                    let want = canonical(model.run(&key, op.clone()));
                    prop_assert_eq!(got, want, "step {}: {:?} on {:?}", number, op, key);
                }
            }
        }
        model.settle();
        for key in KEYS {
            let want = model
                .keys
                .get(key.as_bytes())
                .map(|entry| kind(&entry.value));
            prop_assert_eq!(
                store.kind(key.as_bytes()).unwrap(),
                want,
                "step {}: type of {}",
                number,
                key
            );
        }
        if let Err(broken) = store.check_invariants() {
            return Err(TestCaseError::fail(format!("step {number}: {broken}")));
        }
        if mem_limit > 0 {
            prop_assert!(
                store.memory_bytes() <= mem_limit,
                "step {number}: over the memory limit"
            );
        }
    }
    // After a full sweep nothing expired may still hold memory.
    store.sweep(1);
    prop_assert_eq!(store.len(), model.keys.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_model(steps in steps()) {
        check(steps, 0)?;
    }

    #[test]
    fn store_matches_the_model_under_a_memory_limit(steps in steps(), limit in 400u64..3_000) {
        check(steps, limit)?;
    }
}
