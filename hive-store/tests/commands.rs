//! The store operations behind `hived`'s Redis commands that the model test
//! does not generate: floating-point increments, random pops, dump and
//! restore, lexicographic ranges and size limits.

use std::sync::Arc;

use bytes::Bytes;
use hive_store::{
    End, Kind, LexLimit, Limits, MockClock, ScoreBound, Store, StoreConfig, StoreError,
    ZAddOptions, ZLimit, ZRangeBy,
};

fn store() -> (Store, MockClock) {
    let clock = MockClock::default();
    let store = Store::with_clock(StoreConfig::default(), Arc::new(clock.clone()));
    (store, clock)
}

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

#[test]
fn float_increments_store_the_shortest_exact_decimal() {
    let (store, clock) = store();
    assert_eq!(store.incr_by_float(b"n", 10.5), Ok(b("10.5")));
    assert_eq!(store.incr_by_float(b"n", 0.25), Ok(b("10.75")));
    assert_eq!(store.incr_by_float(b"n", -10.75), Ok(b("0")));
    assert_eq!(
        store.incr_by_float(b"n", 1e20),
        Ok(b("100000000000000000000"))
    );
    store.set(b"t", b("3"), Some(1_000)).unwrap();
    assert_eq!(store.incr_by_float(b"t", 1.5), Ok(b("4.5")));
    clock.advance(999);
    assert_eq!(store.get(b"t"), Ok(b("4.5")), "the key keeps its TTL");
    clock.advance(1);
    assert_eq!(store.get(b"t"), Err(StoreError::NotFound));
}

#[test]
fn float_increments_refuse_non_numbers_and_infinite_results() {
    let (store, _) = store();
    for bad in ["abc", " 1", "1 ", "", "nan"] {
        store.set(b"k", b(bad), None).unwrap();
        assert!(
            matches!(
                store.incr_by_float(b"k", 1.0),
                Err(StoreError::InvalidValue(_))
            ),
            "{bad:?}"
        );
        assert_eq!(store.get(b"k"), Ok(b(bad)), "unchanged");
    }
    store.set(b"k", b("1.7976931348623157e308"), None).unwrap();
    assert!(matches!(
        store.incr_by_float(b"k", f64::MAX),
        Err(StoreError::InvalidValue(_))
    ));
    store.push(b"l", End::Back, vec![b("x")]).unwrap();
    assert_eq!(store.incr_by_float(b"l", 1.0), Err(StoreError::WrongType));

    assert_eq!(store.hincr_by_float(b"h", b("f"), 2.5), Ok(b("2.5")));
    assert_eq!(store.hincr_by_float(b"h", b("f"), 0.5), Ok(b("3")));
    store.hset(b"h", b("s"), b("word"), None).unwrap();
    assert!(matches!(
        store.hincr_by_float(b"h", b("s"), 1.0),
        Err(StoreError::InvalidValue(_))
    ));
}

#[test]
fn setrange_pads_with_zero_bytes_and_respects_the_size_limit() {
    let config = StoreConfig {
        limits: Limits {
            max_value_len: 16,
            ..Limits::default()
        },
        ..StoreConfig::default()
    };
    let store = Store::new(config);
    assert_eq!(store.setrange(b"k", 3, b"ab"), Ok(5));
    assert_eq!(store.get(b"k"), Ok(Bytes::from_static(b"\0\0\0ab")));
    assert_eq!(store.setrange(b"k", 0, b"xyz"), Ok(5));
    assert_eq!(store.get(b"k"), Ok(Bytes::from_static(b"xyzab")));
    assert!(matches!(
        store.setrange(b"k", 15, b"ab"),
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        store.setrange(b"k", usize::MAX, b"a"),
        Err(StoreError::InvalidArgument(_))
    ));
    assert_eq!(store.get(b"k"), Ok(Bytes::from_static(b"xyzab")));
}

#[test]
fn spop_removes_distinct_members_chosen_by_the_seed() {
    let (store, _) = store();
    let members: Vec<Bytes> = (0..20).map(|n| b(&n.to_string())).collect();
    store.sadd(b"s", members.clone()).unwrap();
    store.sadd(b"t", members.clone()).unwrap();
    let first = store.spop(b"s", 5, 42).unwrap();
    assert_eq!(
        store.spop(b"t", 5, 42).unwrap(),
        first,
        "same seed, same choice"
    );
    let mut distinct = first.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5);
    assert_eq!(store.scard(b"s"), Ok(15));
    for member in &first {
        assert_eq!(store.sismember(b"s", member), Ok(false));
    }
    let rest = store.spop(b"s", 100, 7).unwrap();
    assert_eq!(rest.len(), 15);
    assert_eq!(
        store.kind(b"s"),
        Ok(None),
        "the set goes with its last member"
    );
    assert_eq!(store.spop(b"s", 3, 7), Ok(Vec::new()));
}

#[test]
fn dump_and_restore_copy_a_key_with_its_ttls() {
    let (store, clock) = store();
    store.hset(b"h", b("a"), b("1"), Some(100)).unwrap();
    store.hset(b"h", b("b"), b("2"), None).unwrap();
    store.expire(b"h", 1_000).unwrap();
    let dumped = store.dump(b"h").unwrap();
    store.set(b"copy", b("old"), None).unwrap();
    store.restore(b"copy", dumped.data, dumped.ttl_ms).unwrap();
    assert_eq!(store.kind(b"copy"), Ok(Some(Kind::Hash)));
    assert_eq!(store.ttl(b"copy"), Ok(Some(1_000)));
    clock.advance(100);
    assert_eq!(
        store.hkeys(b"copy"),
        Ok(vec![b("b")]),
        "field TTLs travel too"
    );
    assert_eq!(store.dump(b"missing"), Err(StoreError::NotFound));
}

#[test]
fn lexicographic_ranges_follow_redis_bounds() {
    let (store, _) = store();
    let pairs = ["a", "b", "c", "d"].map(|m| (0.0, b(m))).to_vec();
    store
        .zadd_many(b"z", pairs, ZAddOptions::default())
        .unwrap();
    let members = |by: ZRangeBy, rev: bool, limit: Option<ZLimit>| -> Vec<Bytes> {
        let range = store.zrange_by(b"z", &by, rev, limit).unwrap();
        range.into_iter().map(|(member, _)| member).collect()
    };
    let lex = |min: LexLimit, max: LexLimit| ZRangeBy::Lex { min, max };
    assert_eq!(
        members(
            lex(LexLimit::Exclusive(b("a")), LexLimit::Inclusive(b("c"))),
            false,
            None
        ),
        vec![b("b"), b("c")]
    );
    assert_eq!(
        members(
            lex(LexLimit::Min, LexLimit::Max),
            true,
            Some(ZLimit {
                offset: 1,
                count: 2
            })
        ),
        vec![b("c"), b("b")]
    );
    assert_eq!(
        store.zcount(b"z", &lex(LexLimit::Inclusive(b("b")), LexLimit::Max)),
        Ok(3)
    );
    assert_eq!(
        store.zrem_range(b"z", &lex(LexLimit::Min, LexLimit::Exclusive(b("c")))),
        Ok(2)
    );
    assert_eq!(
        members(lex(LexLimit::Min, LexLimit::Max), false, None),
        vec![b("c"), b("d")]
    );
}

#[test]
fn score_ranges_refuse_nan_bounds() {
    let (store, _) = store();
    let by = ZRangeBy::Score {
        min: ScoreBound {
            score: f64::NAN,
            exclusive: false,
        },
        max: ScoreBound {
            score: 1.0,
            exclusive: false,
        },
    };
    assert!(matches!(
        store.zcount(b"z", &by),
        Err(StoreError::InvalidArgument(_))
    ));
}
