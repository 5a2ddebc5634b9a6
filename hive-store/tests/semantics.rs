//! One named test per rule of spec semantics.md, on the store with a mock clock
//! (the model test covers the same ground at random; these pin each rule).

use std::sync::Arc;

use bytes::Bytes;
use hive_store::{
    End, Kind, Limits, MAX_TTL_MS, MockClock, Op, SetCondition, SetTtl, Store, StoreConfig,
    StoreError,
};

fn store() -> (Store, MockClock) {
    let clock = MockClock::default();
    let store = Store::with_clock(StoreConfig::default(), Arc::new(clock.clone()));
    (store, clock)
}

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

// Spec: semantics.md "Time and TTLs".

#[test]
fn a_ttl_has_millisecond_precision() {
    let (store, clock) = store();
    store.set(b"k", b("v"), Some(500)).unwrap();
    clock.advance(499);
    assert_eq!(store.get(b"k"), Ok(b("v")), "live while now < deadline");
    assert_eq!(store.ttl(b"k"), Ok(Some(1)));
    clock.advance(1);
    assert_eq!(store.get(b"k"), Err(StoreError::NotFound));
}

#[test]
fn ttls_must_be_positive_and_at_most_a_hundred_years() {
    let (store, _) = store();
    store.set(b"k", b("v"), None).unwrap();
    for ttl in [0, MAX_TTL_MS + 1, u64::MAX] {
        assert!(
            matches!(store.expire(b"k", ttl), Err(StoreError::InvalidArgument(_))),
            "{ttl}"
        );
        assert!(matches!(
            store.set(b"k", b("new"), Some(ttl)),
            Err(StoreError::InvalidArgument(_))
        ));
    }
    assert_eq!(store.get(b"k"), Ok(b("v")));
    assert_eq!(store.ttl(b"k"), Ok(None), "refused TTLs change nothing");
    store.expire(b"k", MAX_TTL_MS).unwrap();
}

#[test]
fn a_write_to_an_expired_key_starts_fresh() {
    let (store, clock) = store();
    store.push(b"l", End::Back, vec![b("old")]).unwrap();
    store.expire(b"l", 10).unwrap();
    clock.advance(10);
    assert_eq!(
        store.push(b"l", End::Back, vec![b("new")]),
        Ok(1),
        "old contents never revive"
    );
    assert_eq!(store.lrange(b"l", 0, -1), Ok(vec![b("new")]));
    assert_eq!(store.ttl(b"l"), Ok(None), "the fresh key has no TTL");
    store.hset(b"h", b("f"), b("1"), None).unwrap();
    store.expire(b"h", 5).unwrap();
    clock.advance(5);
    store.hset(b"h", b("g"), b("2"), None).unwrap();
    assert_eq!(store.hkeys(b"h"), Ok(vec![b("g")]));
}

#[test]
fn set_replaces_and_clears_the_ttl() {
    let (store, _) = store();
    store.set(b"k", b("v"), Some(1_000)).unwrap();
    store.set(b"k", b("w"), None).unwrap();
    assert_eq!((store.get(b"k"), store.ttl(b"k")), (Ok(b("w")), Ok(None)));
    store.set(b"k", b("x"), Some(2_000)).unwrap();
    assert_eq!(
        store.ttl(b"k"),
        Ok(Some(2_000)),
        "set_with_ttl sets both at once"
    );
}

#[test]
fn hset_clears_the_field_ttl_and_keeps_the_key_ttl() {
    let (store, clock) = store();
    store.hset(b"h", b("f"), b("1"), Some(10)).unwrap();
    store.expire(b"h", 1_000).unwrap();
    store.hset(b"h", b("f"), b("2"), None).unwrap();
    assert_eq!(store.httl_field(b"h", b"f"), Ok(None));
    assert_eq!(store.ttl(b"h"), Ok(Some(1_000)));
    clock.advance(10);
    assert_eq!(store.hget(b"h", b"f"), Ok(b("2")));
}

#[test]
fn sadd_of_an_existing_member_clears_its_ttl() {
    let (store, clock) = store();
    store.sadd(b"s", vec![b("m")]).unwrap();
    store.sexpire_member(b"s", b"m", 10).unwrap();
    assert_eq!(store.sadd(b"s", vec![b("m")]), Ok(0));
    clock.advance(10);
    assert_eq!(store.sismember(b"s", b"m"), Ok(true));
}

#[test]
fn expiring_missing_things_is_not_found() {
    let (store, _) = store();
    assert_eq!(store.expire(b"none", 10), Err(StoreError::NotFound));
    assert_eq!(store.persist(b"none"), Err(StoreError::NotFound));
    assert_eq!(store.ttl(b"none"), Err(StoreError::NotFound));
    assert_eq!(
        store.hexpire_field(b"none", b"f", 10),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.sexpire_member(b"none", b"m", 10),
        Err(StoreError::NotFound)
    );
    store.hset(b"h", b("f"), b("1"), None).unwrap();
    store.sadd(b"s", vec![b("m")]).unwrap();
    assert_eq!(
        store.hexpire_field(b"h", b"g", 10),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.sexpire_member(b"s", b"n", 10),
        Err(StoreError::NotFound)
    );
}

#[test]
fn ttl_is_none_without_one_and_persist_removes_it() {
    let (store, _) = store();
    store.set(b"k", b("v"), None).unwrap();
    assert_eq!(store.ttl(b"k"), Ok(None));
    assert_eq!(store.persist(b"k"), Ok(false));
    store.expire(b"k", 50).unwrap();
    assert_eq!(store.persist(b"k"), Ok(true));
    assert_eq!(store.ttl(b"k"), Ok(None));
}

#[test]
fn the_janitor_sweep_reclaims_expired_memory_in_bounded_steps() {
    let (store, clock) = store();
    for i in 0..1_000 {
        store
            .set(format!("k{i}").as_bytes(), b("value"), Some(10))
            .unwrap();
    }
    store.sadd(b"set", vec![b("stays"), b("goes")]).unwrap();
    store.sexpire_member(b"set", b"goes", 10).unwrap();
    let before = store.memory_bytes();
    clock.advance(10);
    // Nothing read the keys; a sweep step handles at most `limit` entries.
    let shard = (0..store.shard_count())
        .find(|&s| store.sweep_shard(s, 0).1)
        .expect("a due shard");
    let (handled, _) = store.sweep_shard(shard, 3);
    assert!(handled <= 3);
    store.sweep(16);
    assert_eq!(store.len(), 1);
    assert!(store.memory_bytes() < before / 20);
    assert_eq!(store.smembers(b"set"), Ok(vec![b("stays")]));
    store.check_invariants().unwrap();
}

// Spec: semantics.md "Empty collections do not exist".

#[test]
fn the_last_element_takes_its_key_with_it() {
    let (store, clock) = store();
    store.push(b"l", End::Back, vec![b("x")]).unwrap();
    store.pop(b"l", End::Front).unwrap();
    store.hset(b"h", b("f"), b("1"), None).unwrap();
    store.hdel(b"h", b"f").unwrap();
    store.sadd(b"s", vec![b("m")]).unwrap();
    store.srem(b"s", b"m").unwrap();
    store.zadd(b"z", 1.0, b("m")).unwrap();
    store.zrem(b"z", b"m").unwrap();
    store.hset(b"hx", b("f"), b("1"), Some(5)).unwrap();
    store.sadd(b"sx", vec![b("m")]).unwrap();
    store.sexpire_member(b"sx", b"m", 5).unwrap();
    clock.advance(5);
    for key in ["l", "h", "s", "z", "hx", "sx"] {
        assert_eq!(store.kind(key.as_bytes()), Ok(None), "{key}");
        assert_eq!(store.exists(key.as_bytes()), Ok(false), "{key}");
    }
    store.sweep(64);
    assert_eq!((store.len(), store.memory_bytes()), (0, 0));
}

// Spec: semantics.md "Reads of missing keys".

#[test]
fn reads_of_missing_keys() {
    let (store, _) = store();
    let k = b"missing";
    assert_eq!(store.get(k), Err(StoreError::NotFound));
    assert_eq!(store.hget(k, b"f"), Err(StoreError::NotFound));
    assert_eq!(store.lindex(k, 0), Err(StoreError::NotFound));
    assert_eq!(store.pop(k, End::Front), Err(StoreError::NotFound));
    assert_eq!(store.pop(k, End::Back), Err(StoreError::NotFound));
    assert_eq!(store.zscore(k, b"m"), Err(StoreError::NotFound));
    assert_eq!(store.zrank(k, b"m", false), Err(StoreError::NotFound));
    assert_eq!(store.zrank(k, b"m", true), Err(StoreError::NotFound));
    assert_eq!(store.hget_all(k), Ok(vec![]));
    assert_eq!(store.hkeys(k), Ok(vec![]));
    assert_eq!(store.smembers(k), Ok(vec![]));
    assert_eq!(store.lrange(k, 0, -1), Ok(vec![]));
    assert_eq!(store.zrange(k, 0, -1, false), Ok(vec![]));
    assert_eq!(
        store.zrange_by_score(k, f64::NEG_INFINITY, f64::INFINITY),
        Ok(vec![])
    );
    assert_eq!(
        (store.llen(k), store.scard(k), store.zcard(k)),
        (Ok(0), Ok(0), Ok(0))
    );
    assert_eq!(store.sismember(k, b"m"), Ok(false));
    assert_eq!(store.del(k), Ok(false));
    assert_eq!(store.hdel(k, b"f"), Ok(false));
    assert_eq!(store.srem(k, b"m"), Ok(false));
    assert_eq!(store.zrem(k, b"m"), Ok(false));
    assert_eq!(store.lset(k, 0, b("v")), Err(StoreError::NotFound));
    assert!(store.is_empty(), "reads create nothing");
}

// Spec: semantics.md "Type mismatch".

#[test]
fn every_operation_on_another_type_is_wrong_type() {
    let (store, _) = store();
    store.set(b"value", b("v"), None).unwrap();
    store.push(b"list", End::Back, vec![b("x")]).unwrap();
    let ops_on_collections = [
        Op::HSet {
            field: b("f"),
            value: b("v"),
            ttl_ms: None,
        },
        Op::HGet { field: b("f") },
        Op::HGetAll,
        Op::HKeys,
        Op::HLen,
        Op::HDel { field: b("f") },
        Op::HExpireField {
            field: b("f"),
            ttl_ms: 5,
        },
        Op::Push {
            end: End::Front,
            values: vec![b("x")],
        },
        Op::Pop { end: End::Back },
        Op::LIndex { index: 0 },
        Op::LSet {
            index: 0,
            value: b("x"),
        },
        Op::LRange { start: 0, stop: -1 },
        Op::LLen,
        Op::SAdd {
            members: vec![b("m")],
        },
        Op::SRem { member: b("m") },
        Op::SIsMember { member: b("m") },
        Op::SMembers,
        Op::SCard,
        Op::SExpireMember {
            member: b("m"),
            ttl_ms: 5,
        },
        Op::ZAdd {
            score: 1.0,
            member: b("m"),
        },
        Op::ZRem { member: b("m") },
        Op::ZScore { member: b("m") },
        Op::ZRank {
            member: b("m"),
            rev: false,
        },
        Op::ZRange {
            start: 0,
            stop: -1,
            rev: false,
        },
        Op::ZRangeByScore { min: 0.0, max: 1.0 },
        Op::ZCard,
    ];
    for op in ops_on_collections {
        let is_list_op = matches!(
            op,
            Op::Push { .. }
                | Op::Pop { .. }
                | Op::LIndex { .. }
                | Op::LSet { .. }
                | Op::LRange { .. }
                | Op::LLen
        );
        assert_eq!(
            store.execute(b"value", op.clone()),
            Err(StoreError::WrongType),
            "{op:?}"
        );
        if !is_list_op {
            assert_eq!(
                store.execute(b"list", op.clone()),
                Err(StoreError::WrongType),
                "{op:?}"
            );
        }
    }
    assert_eq!(store.get(b"list"), Err(StoreError::WrongType));
    assert_eq!(store.get(b"value"), Ok(b("v")), "nothing changed");
    assert_eq!(store.kind(b"list"), Ok(Some(Kind::List)));
}

// Spec: semantics.md "Lists".

#[test]
fn lists_index_and_range_like_redis() {
    let (store, _) = store();
    assert_eq!(
        store.push(b"l", End::Front, vec![b("a"), b("b"), b("c")]),
        Ok(3)
    );
    assert_eq!(
        store.lrange(b"l", 0, -1),
        Ok(vec![b("c"), b("b"), b("a")]),
        "LPUSH a b c"
    );
    assert_eq!(store.push(b"l", End::Back, vec![b("d")]), Ok(4));
    assert_eq!(store.lindex(b"l", -1), Ok(b("d")));
    assert_eq!(store.lindex(b"l", -4), Ok(b("c")));
    assert_eq!(store.lindex(b"l", -5), Err(StoreError::NotFound));
    assert_eq!(store.lrange(b"l", -100, 1), Ok(vec![b("c"), b("b")]));
    assert_eq!(store.lrange(b"l", 2, 100), Ok(vec![b("a"), b("d")]));
    assert_eq!(
        store.lrange(b"l", 4, 10),
        Ok(vec![]),
        "start >= len is empty, never the last element"
    );
    assert_eq!(store.lrange(b"l", 3, 2), Ok(vec![]));
    assert_eq!(store.lset(b"l", -1, b("z")), Ok(()));
    assert_eq!(store.lset(b"l", 4, b("z")), Err(StoreError::NotFound));
    assert_eq!(
        store.pop_many(b"l", End::Back, 10),
        Ok(vec![b("z"), b("a"), b("b"), b("c")])
    );
    assert_eq!(store.exists(b"l"), Ok(false));
}

// Spec: semantics.md "Sorted sets".

#[test]
fn sorted_sets_order_by_score_then_member_bytes() {
    let (store, _) = store();
    for (score, member) in [
        (2.0, "b"),
        (1.0, "z"),
        (2.0, "a"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ] {
        store.zadd(b"z", score, b(member)).unwrap();
    }
    let order: Vec<_> = store
        .zrange(b"z", 0, -1, false)
        .unwrap()
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(order, vec![b("-inf"), b("z"), b("a"), b("b"), b("inf")]);
    assert_eq!(store.zrank(b"z", b"a", false), Ok((2, 2.0)));
    assert_eq!(
        store.zrank(b"z", b"a", true),
        Ok((5 - 1 - 2, 2.0)),
        "zrevrank = card - 1 - zrank"
    );
    assert_eq!(
        store.zrange(b"z", 0, 1, true),
        Ok(vec![(b("inf"), f64::INFINITY), (b("b"), 2.0)])
    );
    assert_eq!(
        store.zrange_by_score(b"z", 1.0, 2.0).unwrap().len(),
        3,
        "inclusive at both ends"
    );
    assert_eq!(store.zrange_by_score(b"z", 2.0, 1.0), Ok(vec![]));
    assert_eq!(
        store.zadd(b"z", 2.0, b("a")),
        Ok(false),
        "an update is not new"
    );
    assert!(matches!(
        store.zadd(b"z", f64::NAN, b("n")),
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        store.zrange_by_score(b"z", f64::NAN, 1.0),
        Err(StoreError::InvalidArgument(_))
    ));
    assert_eq!(store.zcard(b"z"), Ok(5));
}

// Spec: semantics.md "Limits".

fn store_with(limits: Limits) -> Store {
    let config = StoreConfig {
        limits,
        ..StoreConfig::default()
    };
    Store::with_clock(config, Arc::new(MockClock::default()))
}

#[test]
fn limits_are_enforced_before_any_change() {
    let store = store_with(Limits {
        max_key_len: 8,
        max_value_len: 4,
        ..Limits::default()
    });
    let long_key = b"123456789";
    assert!(matches!(
        store.set(long_key, b("v"), None),
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        store.get(long_key),
        Err(StoreError::InvalidArgument(_))
    ));
    store.push(b"l", End::Back, vec![b("ok")]).unwrap();
    let refused = store.push(b"l", End::Back, vec![b("fine"), b("too long")]);
    assert!(matches!(refused, Err(StoreError::InvalidArgument(_))));
    assert_eq!(
        store.llen(b"l"),
        Ok(1),
        "no element of a refused push was written"
    );
    assert!(matches!(
        store.hset(b"h", b("field!"), b("v"), None),
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        store.sadd(b"s", vec![b("member")]),
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        store.push(b"l", End::Back, vec![]),
        Err(StoreError::InvalidArgument(_))
    ));
    assert_eq!(store.len(), 1);
}

#[test]
fn no_key_grows_past_the_entry_limit_and_a_refused_write_changes_nothing() {
    let store = store_with(Limits {
        max_value_len: 1_000,
        max_entry_len: 1_000,
        ..Limits::default()
    });
    let refused = |result: Result<(), StoreError>| {
        assert!(
            matches!(&result, Err(StoreError::InvalidArgument(message)) if message.contains("1000")),
            "expected the entry limit, got {result:?}"
        );
    };
    let element = || Bytes::from(vec![b'x'; 100]);
    // Each collection fills up to the limit, then refuses the element past it.
    let mut pushed = 0;
    while store.push(b"l", End::Back, vec![element()]).is_ok() {
        pushed += 1;
    }
    assert!(pushed >= 5, "only {pushed} elements fit");
    refused(store.push(b"l", End::Front, vec![element()]).map(drop));
    assert_eq!(
        store.llen(b"l"),
        Ok(pushed),
        "the refused pushes left the list as it was"
    );
    refused(store.lset(b"l", 0, Bytes::from(vec![b'y'; 1_000])));
    assert_eq!(store.lindex(b"l", 0), Ok(element()));
    store.pop(b"l", End::Back).unwrap();
    store.push(b"l", End::Back, vec![element()]).unwrap();

    let mut fields = 0;
    while store
        .hset(b"h", b(&format!("f{fields}")), element(), None)
        .is_ok()
    {
        fields += 1;
    }
    refused(store.hset(b"h", b("another"), element(), None).map(drop));
    assert_eq!(store.hlen(b"h"), Ok(fields));

    let mut members = 0;
    while store
        .sadd(b"s", vec![Bytes::from(format!("{members:0>100}"))])
        .is_ok()
    {
        members += 1;
    }
    refused(
        store
            .sadd(b"s", vec![Bytes::from(format!("{:>100}", "new"))])
            .map(drop),
    );
    assert_eq!(store.scard(b"s"), Ok(members));

    let mut scored = 0;
    while store
        .zadd(b"z", 1.0, Bytes::from(format!("{scored:0>100}")))
        .is_ok()
    {
        scored += 1;
    }
    refused(
        store
            .zadd(b"z", 1.0, Bytes::from(format!("{:>100}", "new")))
            .map(drop),
    );
    assert_eq!(store.zcard(b"z"), Ok(scored));

    // A value at the limit fits; growing it past the limit is refused.
    store
        .set(b"v", Bytes::from(vec![b'v'; 1_000]), None)
        .unwrap();
    refused(store.append(b"v", b"!").map(drop));
    assert_eq!(store.get(b"v").map(|value| value.len()), Ok(1_000));
    store.check_invariants().unwrap();
}

// Spec: semantics.md "Memory limit".

#[test]
fn the_memory_limit_refuses_growth_and_lets_shrinking_writes_pass() {
    let clock = MockClock::default();
    let config = StoreConfig {
        mem_limit: 4_096,
        ..StoreConfig::default()
    };
    let store = Store::with_clock(config, Arc::new(clock));
    let big = Bytes::from(vec![0; 1_000]);
    let mut written = 0;
    while store
        .set(format!("k{written}").as_bytes(), big.clone(), None)
        .is_ok()
    {
        written += 1;
    }
    assert!(written >= 2);
    let full = store.memory_bytes();
    assert!(full <= 4_096);
    assert_eq!(
        store.set(b"new", big.clone(), None),
        Err(StoreError::CapacityExceeded)
    );
    assert_eq!(
        store.push(b"k0", End::Back, vec![b("x")]),
        Err(StoreError::WrongType),
        "type errors come first"
    );
    assert_eq!(
        store.exists(b"new"),
        Ok(false),
        "a refused write changes nothing"
    );
    assert_eq!(store.memory_bytes(), full);
    store
        .set(b"k0", b("small"), None)
        .expect("a shrinking write always passes");
    assert!(store.memory_bytes() < full);
    store.del(b"k1").expect("deletes always pass");
    store
        .set(b"new", big, None)
        .expect("freed memory is usable again");
    store.check_invariants().unwrap();
}

// Redis's string operations: conditional sets (`NX`, `XX`, `KEEPTTL`, `GET`),
// integer increments and appends.

#[test]
fn set_if_absent_and_if_present_store_only_when_allowed() {
    let (store, _) = store();
    let nx = |value| store.set_with(b"k", b(value), SetTtl::None, SetCondition::IfAbsent, false);
    assert_eq!(nx("one"), Ok((true, None)));
    assert_eq!(nx("two"), Ok((false, Some(b("one")))));
    assert_eq!(store.get(b"k"), Ok(b("one")));
    let xx = |key: &[u8], value| {
        store.set_with(key, b(value), SetTtl::None, SetCondition::IfPresent, false)
    };
    assert_eq!(xx(b"k", "three"), Ok((true, Some(b("one")))));
    assert_eq!(xx(b"absent", "x"), Ok((false, None)));
    assert_eq!(store.get(b"absent"), Err(StoreError::NotFound));
    assert_eq!(store.get(b"k"), Ok(b("three")));
}

#[test]
fn keep_ttl_keeps_the_deadline_and_a_new_ttl_replaces_it() {
    let (store, clock) = store();
    store.set(b"k", b("v"), Some(1_000)).unwrap();
    clock.advance(400);
    store
        .set_with(b"k", b("w"), SetTtl::Keep, SetCondition::Always, false)
        .unwrap();
    assert_eq!(store.ttl(b"k"), Ok(Some(600)));
    store
        .set_with(b"k", b("x"), SetTtl::Ms(5_000), SetCondition::Always, false)
        .unwrap();
    assert_eq!(store.ttl(b"k"), Ok(Some(5_000)));
    store
        .set_with(b"k", b("y"), SetTtl::None, SetCondition::Always, false)
        .unwrap();
    assert_eq!(store.ttl(b"k"), Ok(None));
}

#[test]
fn get_on_a_collection_is_wrong_type_and_changes_nothing() {
    let (store, _) = store();
    store.sadd(b"s", vec![b("m")]).unwrap();
    let with_get = store.set_with(b"s", b("v"), SetTtl::None, SetCondition::Always, true);
    assert_eq!(with_get, Err(StoreError::WrongType));
    assert_eq!(store.scard(b"s"), Ok(1));
    // Without GET, SET replaces any type (Redis semantics); XX sees it exists.
    let replaced = store.set_with(b"s", b("v"), SetTtl::None, SetCondition::IfPresent, false);
    assert_eq!(replaced, Ok((true, None)));
    assert_eq!(store.get(b"s"), Ok(b("v")));
}

#[test]
fn increments_parse_canonical_integers_keep_the_ttl_and_refuse_overflow() {
    let (store, clock) = store();
    assert_eq!(store.incr_by(b"n", 5), Ok(5));
    assert_eq!(store.incr_by(b"n", -7), Ok(-2));
    assert_eq!(store.get(b"n"), Ok(b("-2")));
    store.expire(b"n", 1_000).unwrap();
    clock.advance(10);
    assert_eq!(store.incr_by(b"n", 1), Ok(-1));
    assert_eq!(store.ttl(b"n"), Ok(Some(990)));
    store.set(b"max", b(&i64::MAX.to_string()), None).unwrap();
    assert!(matches!(
        store.incr_by(b"max", 1),
        Err(StoreError::InvalidValue(_))
    ));
    assert_eq!(store.get(b"max"), Ok(b(&i64::MAX.to_string())));
    for bad in [
        "",
        " 1",
        "1 ",
        "+1",
        "01",
        "-0",
        "1.5",
        "abc",
        "99999999999999999999",
    ] {
        store.set(b"bad", b(bad), None).unwrap();
        assert!(
            matches!(store.incr_by(b"bad", 1), Err(StoreError::InvalidValue(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn append_creates_extends_and_respects_the_value_limit() {
    let (store, _) = store();
    assert_eq!(store.append(b"k", b"ab"), Ok(2));
    assert_eq!(store.append(b"k", b"cd"), Ok(4));
    assert_eq!(store.get(b"k"), Ok(b("abcd")));
    let limit = store.limits().max_value_len;
    let too_much = vec![b'x'; limit];
    assert!(matches!(
        store.append(b"k", &too_much),
        Err(StoreError::InvalidArgument(_))
    ));
    assert_eq!(store.get(b"k"), Ok(b("abcd")), "nothing changed");
    store.sadd(b"s", vec![b("m")]).unwrap();
    assert_eq!(store.append(b"s", b"x"), Err(StoreError::WrongType));
    assert_eq!(store.incr_by(b"s", 1), Err(StoreError::WrongType));
}
