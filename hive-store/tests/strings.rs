//! Redis's string operations on the store: conditional sets (`NX`, `XX`,
//! `KEEPTTL`, `GET`), integer increments and appends, with a mock clock.

use std::sync::Arc;

use bytes::Bytes;
use hive_store::{MockClock, SetCondition, SetTtl, Store, StoreConfig, StoreError};

fn store() -> (Store, MockClock) {
    let clock = MockClock::default();
    let store = Store::with_clock(StoreConfig::default(), Arc::new(clock.clone()));
    (store, clock)
}

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

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
