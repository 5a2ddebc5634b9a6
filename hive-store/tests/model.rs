//! Model-based property test: random operation sequences run against the store
//! and against a plain `BTreeMap` model that advances the same mock clock; every
//! reply, every key's type and the store's own invariants must agree after every
//! step, including field and member expiry, sweeps and a memory limit.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use hive_store::{
    Clock, End, Kind, MockClock, Op, Reply, SetCondition, SetTtl, Store, StoreConfig, StoreError,
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
    prop_oneof![
        Just(Op::Exists),
        Just(Op::Type),
        Just(Op::Del),
        ttl().prop_map(|ttl_ms| Op::Expire { ttl_ms }),
        Just(Op::Persist),
        Just(Op::Ttl),
    ]
    .boxed()
}

fn value_op() -> BoxedStrategy<Op> {
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
    let name = || bytes_of(NAMES);
    prop_oneof![
        3 => (score(), name()).prop_map(|(score, member)| Op::ZAdd { score, member }),
        1 => name().prop_map(|member| Op::ZRem { member }),
        1 => name().prop_map(|member| Op::ZScore { member }),
        1 => (name(), any::<bool>()).prop_map(|(member, rev)| Op::ZRank { member, rev }),
        1 => (index(), index(), any::<bool>()).prop_map(|(start, stop, rev)| Op::ZRange { start, stop, rev }),
        1 => (score(), score()).prop_map(|(min, max)| Op::ZRangeByScore { min, max }),
        1 => Just(Op::ZCard),
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
                let sorted = sorted_zset(zset);
                let rank = sorted
                    .iter()
                    .position(|(m, _)| *m == member)
                    .ok_or(StoreError::NotFound)?;
                Reply::Count(if rev { sorted.len() - 1 - rank } else { rank } as u64)
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
        })
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
