//! Versions, tombstones, export and apply: the ground replication and
//! rebalancing stand on (spec: cluster.md G5 and G7, semantics.md "Time and TTLs").

use std::sync::Arc;

use bytes::Bytes;
use hive_store::{
    Applied, End, ExportedData, ExportedEntry, MockClock, Store, StoreConfig, StoreError, Version,
};
use proptest::prelude::*;

fn store(node_tag: u64, clock: &MockClock) -> Store {
    let config = StoreConfig {
        node_tag,
        tombstones: true,
        shards: 4,
        ..StoreConfig::default()
    };
    Store::with_clock(config, Arc::new(clock.clone()))
}

fn key(name: &str) -> Bytes {
    Bytes::copy_from_slice(name.as_bytes())
}

#[test]
fn every_write_gets_a_newer_version_stamped_with_the_node() {
    let clock = MockClock::default();
    let store = store(7, &clock);
    store.set(b"k", key("1"), None).unwrap();
    let first = store.version(b"k").unwrap().unwrap();
    store.set(b"k", key("2"), None).unwrap();
    let second = store.version(b"k").unwrap().unwrap();
    assert!(second > first, "same millisecond, still ordered");
    assert_eq!(second.node, 7);
    clock.advance(10);
    store.push(b"l", End::Back, vec![key("x")]).unwrap();
    assert_eq!(
        store.version(b"l").unwrap().unwrap().physical_ms(),
        hive_store::Clock::now_ms(&clock)
    );
}

#[test]
fn reads_and_refused_writes_leave_the_version_alone() {
    let clock = MockClock::default();
    let store = store(1, &clock);
    store.hset(b"h", key("f"), key("v"), None).unwrap();
    let version = store.version(b"h").unwrap();
    store.hget(b"h", b"f").unwrap();
    assert_eq!(store.hdel(b"h", b"missing"), Ok(false));
    assert_eq!(store.get(b"h"), Err(StoreError::WrongType));
    assert_eq!(store.version(b"h").unwrap(), version);
}

#[test]
fn an_entry_round_trips_with_remaining_ttls() {
    let clock = MockClock::default();
    let source = store(1, &clock);
    source.hset(b"h", key("a"), key("1"), None).unwrap();
    source.hset(b"h", key("b"), key("2"), Some(5_000)).unwrap();
    source.expire(b"h", 10_000).unwrap();
    clock.advance(1_000);
    let exported = source.export(b"h").unwrap().unwrap();
    assert_eq!(exported.ttl_ms, Some(9_000));
    let ExportedData::Hash(mut fields) = exported.data.clone() else {
        panic!("a hash")
    };
    fields.sort();
    assert_eq!(
        fields,
        vec![
            (key("a"), key("1"), None),
            (key("b"), key("2"), Some(4_000))
        ]
    );

    // The target's clock is elsewhere: only remaining time travels.
    let far = MockClock::new(5_000_000_000_000);
    let target = store(2, &far);
    assert_eq!(target.apply(exported.clone()), Ok(Applied::Stored));
    assert_eq!(target.version(b"h").unwrap(), Some(exported.version));
    assert_eq!(target.ttl(b"h"), Ok(Some(9_000)));
    assert_eq!(target.httl_field(b"h", b"b"), Ok(Some(4_000)));
    far.advance(4_000);
    assert_eq!(target.hget(b"h", b"b"), Err(StoreError::NotFound));
    assert_eq!(target.hget(b"h", b"a"), Ok(key("1")));
    target.check_invariants().unwrap();
}

#[test]
fn every_kind_exports_and_applies() {
    let clock = MockClock::default();
    let source = store(1, &clock);
    source.set(b"v", key("value"), None).unwrap();
    source
        .push(b"l", End::Back, vec![key("x"), key("y")])
        .unwrap();
    source.sadd(b"s", vec![key("m"), key("n")]).unwrap();
    source.sexpire_member(b"s", b"n", 50).unwrap();
    source.zadd(b"z", 2.0, key("b")).unwrap();
    source.zadd(b"z", 1.0, key("a")).unwrap();
    let target = store(2, &clock);
    for name in ["v", "l", "s", "z"] {
        let exported = source.export(name.as_bytes()).unwrap().unwrap();
        assert_eq!(
            target.apply(exported.clone()),
            Ok(Applied::Stored),
            "{name}"
        );
        assert_eq!(
            target.export(name.as_bytes()).unwrap().map(sorted),
            Some(sorted(exported)),
            "{name}"
        );
    }
    assert_eq!(target.lrange(b"l", 0, -1), Ok(vec![key("x"), key("y")]));
    assert_eq!(
        target.zrange(b"z", 0, -1, false),
        Ok(vec![(key("a"), 1.0), (key("b"), 2.0)])
    );
    clock.advance(50);
    assert_eq!(target.smembers(b"s"), Ok(vec![key("m")]));
}

fn sorted(mut entry: ExportedEntry) -> ExportedEntry {
    match &mut entry.data {
        ExportedData::Hash(fields) => fields.sort(),
        ExportedData::Set(members) => members.sort(),
        _ => {}
    }
    entry
}

#[test]
fn only_newer_versions_are_applied() {
    let clock = MockClock::default();
    let (a, b) = (store(1, &clock), store(2, &clock));
    a.set(b"k", key("old"), None).unwrap();
    let old = a.export(b"k").unwrap().unwrap();
    a.set(b"k", key("new"), None).unwrap();
    let new = a.export(b"k").unwrap().unwrap();
    assert_eq!(b.apply(new.clone()), Ok(Applied::Stored));
    assert_eq!(b.apply(old), Ok(Applied::Stale));
    assert_eq!(
        b.apply(new),
        Ok(Applied::Stale),
        "the same version twice is a no-op"
    );
    assert_eq!(b.get(b"k"), Ok(key("new")));
    // A local write after applying orders after the applied version.
    b.set(b"k", key("local"), None).unwrap();
    assert!(b.version(b"k").unwrap() > a.version(b"k").unwrap());
}

#[test]
fn a_state_not_built_on_what_is_here_is_refused_as_diverged() {
    // Spec: cluster.md G1 — a replica must not trade a write it holds for a
    // primary's newer state that lacks it.
    let clock = MockClock::default();
    let (primary, replica, other) = (store(1, &clock), store(2, &clock), store(3, &clock));
    primary.push(b"l", End::Back, vec![key("a")]).unwrap();
    let a = primary.export(b"l").unwrap().unwrap();
    replica.apply(a.clone()).unwrap();
    // Another primary, on the other side of a partition, wrote on top of it.
    other.apply(a.clone()).unwrap();
    other.push(b"l", End::Back, vec![key("b")]).unwrap();
    let ab = other.export(b"l").unwrap().unwrap();
    replica.apply(ab.clone()).unwrap();
    // The first primary, which never saw "b", pushes "c" on its copy.
    clock.advance(5);
    primary.push(b"l", End::Back, vec![key("c")]).unwrap();
    let ac = primary.export(b"l").unwrap().unwrap();
    assert!(ac.version > ab.version, "last writer wins would take it");
    assert_eq!(
        replica.apply_built_on(ac.clone(), a.version),
        Ok(Applied::Diverged)
    );
    assert_eq!(replica.export(b"l").unwrap(), Some(ab.clone()), "unchanged");

    // Built on what is here, or on an older state of it: taken.
    let fresh = store(4, &clock);
    assert_eq!(
        fresh.apply_built_on(a.clone(), Version::ZERO),
        Ok(Applied::Stored)
    );
    assert_eq!(
        fresh.apply_built_on(ac.clone(), a.version),
        Ok(Applied::Stored)
    );
    assert_eq!(
        fresh.apply_built_on(ab.clone(), a.version),
        Ok(Applied::Stale)
    );
    // An earlier state of the same writer's chain is not a divergence: the
    // primary's later state includes it.
    primary.push(b"l", End::Back, vec![key("d")]).unwrap();
    let acd = primary.export(b"l").unwrap().unwrap();
    assert_eq!(fresh.apply_built_on(acd, a.version), Ok(Applied::Stored));

    // The primary takes the replica's state back, though it is older.
    assert_eq!(primary.replace(ab.clone()), Ok(Applied::Stored));
    assert_eq!(primary.export(b"l").unwrap(), Some(ab.clone()));
    assert_eq!(primary.replace(ab), Ok(Applied::Stale), "the same version");
    // A write after it orders after everything seen, the discarded state too.
    primary.push(b"l", End::Back, vec![key("c")]).unwrap();
    assert!(primary.state_version(b"l").unwrap() > Some(ac.version));
}

#[test]
fn an_older_tombstone_replaces_a_newer_one_only_when_replacing() {
    let clock = MockClock::default();
    let (a, b) = (store(1, &clock), store(2, &clock));
    a.set(b"k", key("v"), None).unwrap();
    a.del(b"k").unwrap();
    let older = a.export(b"k").unwrap().unwrap();
    b.set(b"k", key("w"), None).unwrap();
    b.del(b"k").unwrap();
    let newer = b.state_version(b"k").unwrap();
    assert_eq!(b.apply(older.clone()), Ok(Applied::Stale));
    assert_eq!(b.replace(older.clone()), Ok(Applied::Deleted));
    assert_eq!(b.state_version(b"k").unwrap(), Some(older.version));
    assert!(Some(older.version) < newer);
    assert_eq!(b.tombstone_count(), 1);
}

#[test]
fn deletes_stick_against_older_copies() {
    // Spec: cluster.md G5.
    let clock = MockClock::default();
    let (a, b) = (store(1, &clock), store(2, &clock));
    a.set(b"k", key("v"), None).unwrap();
    let live = a.export(b"k").unwrap().unwrap();
    b.apply(live.clone()).unwrap();
    a.del(b"k").unwrap();
    let tombstone = a.export(b"k").unwrap().unwrap();
    assert_eq!(tombstone.data, ExportedData::Tombstone);
    assert!(tombstone.version > live.version);
    assert_eq!(
        a.apply(live.clone()),
        Ok(Applied::Stale),
        "the deleted key does not come back"
    );
    assert_eq!(b.apply(tombstone.clone()), Ok(Applied::Deleted));
    assert_eq!(b.get(b"k"), Err(StoreError::NotFound));
    assert_eq!(b.apply(live), Ok(Applied::Stale));
    assert_eq!(b.tombstone_count(), 1);

    // A tombstone reaching a store that never saw the key still guards it.
    let c = store(3, &clock);
    assert_eq!(c.apply(tombstone), Ok(Applied::Deleted));
    assert_eq!(c.tombstone_count(), 1);
}

#[test]
fn expiry_leaves_a_tombstone_with_the_entry_version() {
    let clock = MockClock::default();
    let a = store(1, &clock);
    a.set(b"k", key("old"), None).unwrap();
    let old = a.export(b"k").unwrap().unwrap();
    a.set(b"k", key("v"), Some(100)).unwrap();
    let version = a.version(b"k").unwrap().unwrap();
    clock.advance(100);
    assert_eq!(a.get(b"k"), Err(StoreError::NotFound));
    let exported = a.export(b"k").unwrap().unwrap();
    assert_eq!(
        (exported.version, exported.data),
        (version, ExportedData::Tombstone)
    );
    assert_eq!(
        a.apply(old),
        Ok(Applied::Stale),
        "an expired key does not come back"
    );
}

#[test]
fn an_entry_that_expires_in_transit_is_dropped() {
    let clock = MockClock::default();
    let (a, b) = (store(1, &clock), store(2, &clock));
    b.set(b"k", key("older"), None).unwrap();
    clock.advance(1);
    a.set(b"k", key("v"), Some(100)).unwrap();
    let mut exported = a.export(b"k").unwrap().unwrap();
    exported.ttl_ms = Some(0);
    assert_eq!(b.apply(exported), Ok(Applied::Expired));
    assert_eq!(
        b.get(b"k"),
        Err(StoreError::NotFound),
        "the newer, expired version wins"
    );
}

#[test]
fn invalid_incoming_entries_are_refused_whole() {
    let clock = MockClock::default();
    let config = StoreConfig {
        limits: hive_store::Limits {
            max_key_len: 8,
            max_value_len: 8,
            ..hive_store::Limits::default()
        },
        ..StoreConfig::default()
    };
    let b = Store::with_clock(config, Arc::new(clock));
    let entry = |key: &str, data| ExportedEntry {
        key: Bytes::copy_from_slice(key.as_bytes()),
        version: Version {
            hlc: 1 << 20,
            node: 1,
        },
        ttl_ms: None,
        data,
    };
    let invalid = [
        entry("way-too-long-key", ExportedData::Value(key("v"))),
        entry("k", ExportedData::Value(key("way-too-long-value"))),
        entry("k", ExportedData::List(vec![])),
        entry("k", ExportedData::ZSet(vec![(key("m"), f64::NAN)])),
        entry(
            "k",
            ExportedData::Set(vec![(key("m"), None), (key("way-too-long-member"), None)]),
        ),
    ];
    for incoming in invalid {
        assert!(
            matches!(
                b.apply(incoming.clone()),
                Err(StoreError::InvalidArgument(_))
            ),
            "{incoming:?}"
        );
    }
    assert!(b.is_empty());
}

#[test]
fn a_cleared_store_holds_nothing_and_still_orders_new_writes_after_old() {
    let clock = MockClock::default();
    let a = store(1, &clock);
    a.set(b"k", key("v"), None).unwrap();
    let before = a.export(b"k").unwrap().unwrap().version;
    a.set(b"gone", key("v"), Some(60_000)).unwrap();
    a.del(b"gone").unwrap();
    a.clear();
    assert_eq!(a.len(), 0);
    assert_eq!(a.tombstone_count(), 0);
    assert_eq!(a.memory_bytes(), 0);
    assert_eq!(a.export(b"gone"), Ok(None), "no tombstone either");
    a.set(b"k", key("w"), None).unwrap();
    assert!(a.export(b"k").unwrap().unwrap().version > before);
    a.check_invariants().unwrap();
}

#[test]
fn tombstones_are_purged_by_burial_epoch_never_by_the_clock() {
    let clock = MockClock::default();
    let a = store(1, &clock);
    a.set(b"k", key("v"), None).unwrap();
    a.del(b"k").unwrap();
    let tombstone = a.export(b"k").unwrap().unwrap().version;
    assert!(!a.forget_tombstone(
        b"k",
        Version {
            hlc: tombstone.hlc + 1,
            ..tombstone
        }
    ));
    assert_eq!(a.tombstone_count(), 1);
    // A year's step of the wall clock ages no tombstone.
    clock.advance(365 * 24 * 3_600 * 1_000);
    let buried_in = a.tombstone_epoch();
    assert_eq!(a.purge_tombstones(buried_in), 0, "only older epochs go");
    let next = a.next_tombstone_epoch();
    assert_eq!(next, buried_in + 1);
    a.set(b"later", key("v"), None).unwrap();
    a.del(b"later").unwrap();
    assert_eq!(a.purge_tombstones(next), 1, "the earlier epoch's");
    assert_eq!(a.export(b"k"), Ok(None));
    assert!(
        a.export(b"later").unwrap().is_some(),
        "buried in the new epoch"
    );
    assert_eq!(a.tombstone_count(), 1);
}

/// An expired key's tombstone carries its write's version, which may be
/// much older than the expiry; it is still kept for the whole retention
/// after the key expired, so an older copy arriving meanwhile stays out.
#[test]
fn an_expired_keys_tombstone_is_kept_from_its_expiry_on() {
    let clock = MockClock::default();
    let a = store(1, &clock);
    a.set(b"k", key("old"), None).unwrap();
    let old = a.export(b"k").unwrap().unwrap();
    a.set(b"k", key("v"), Some(60_000)).unwrap();
    let expired_in = a.next_tombstone_epoch();
    clock.advance(60_000);
    assert_eq!(a.sweep(16), 1, "the key expires");
    assert_eq!(a.purge_tombstones(expired_in), 0, "buried in this epoch");
    assert_eq!(a.apply(old.clone()), Ok(Applied::Stale));
    let after = a.next_tombstone_epoch();
    assert_eq!(a.purge_tombstones(after), 1);
    assert_eq!(
        a.apply(old),
        Ok(Applied::Stored),
        "past the retention, by design"
    );
    a.check_invariants().unwrap();
}

#[test]
fn a_handed_off_copy_is_dropped_only_if_unchanged() {
    let clock = MockClock::default();
    let a = store(1, &clock);
    a.set(b"k", key("v1"), Some(1_000)).unwrap();
    let handed_off = a.version(b"k").unwrap().unwrap();
    a.set(b"k", key("v2"), None).unwrap();
    assert!(
        !a.remove_if_version(b"k", handed_off),
        "a newer write stays"
    );
    let current = a.version(b"k").unwrap().unwrap();
    assert!(a.remove_if_version(b"k", current));
    assert_eq!(
        (a.export(b"k"), a.tombstone_count()),
        (Ok(None), 0),
        "no tombstone: the data lives on elsewhere"
    );
    assert_eq!(a.memory_bytes(), 0);
    a.check_invariants().unwrap();
}

#[test]
fn a_store_knows_live_and_deleted_keys_but_not_unseen_ones() {
    let clock = MockClock::default();
    let a = store(1, &clock);
    a.set(b"live", key("v"), None).unwrap();
    a.set(b"gone", key("v"), None).unwrap();
    a.del(b"gone").unwrap();
    assert_eq!(
        (a.knows(b"live"), a.knows(b"gone"), a.knows(b"never")),
        (Ok(true), Ok(true), Ok(false))
    );
}

#[test]
fn tombstoned_keys_can_be_listed_for_hand_off() {
    let clock = MockClock::default();
    let a = store(1, &clock);
    a.set(b"gone", key("v"), None).unwrap();
    a.set(b"live", key("v"), None).unwrap();
    a.del(b"gone").unwrap();
    assert_eq!(a.tombstone_keys(), vec![key("gone")]);
    assert_eq!(a.keys(), vec![key("live")]);
}

#[test]
fn each_shard_lists_the_keys_it_holds_live_or_deleted() {
    let clock = MockClock::default();
    let a = store(1, &clock);
    for name in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        a.set(name.as_bytes(), key("v"), None).unwrap();
    }
    a.del(b"b").unwrap();
    a.set(b"short", key("v"), Some(5)).unwrap();
    clock.advance(10);
    let mut held: Vec<Bytes> = (0..a.shard_count()).flat_map(|s| a.held_keys(s)).collect();
    held.sort();
    let expected: Vec<Bytes> = ["a", "b", "c", "d", "e", "f", "g", "h"].map(key).into();
    assert_eq!(
        held, expected,
        "the deleted key is held as a tombstone; the expired one is not"
    );
    assert_eq!(a.held_keys(a.shard_count()), Vec::<Bytes>::new());
}

/// Keys of every shard, interleaved, so batch operations cross shards often.
fn mixed_keys(count: usize) -> Vec<Bytes> {
    (0..count).map(|i| key(&format!("key-{i}"))).collect()
}

#[test]
fn exporting_many_keys_at_once_matches_exporting_each() {
    let clock = MockClock::default();
    let a = store(1, &clock);
    let keys = mixed_keys(300);
    for (i, name) in keys.iter().enumerate() {
        match i % 3 {
            0 => a.set(name, key("v"), Some(60_000)).unwrap(),
            1 => a
                .push(name, End::Back, vec![key("x"), key("y")])
                .map(drop)
                .unwrap(),
            _ => {
                a.set(name, key("v"), None).unwrap();
                a.del(name).unwrap();
            }
        }
    }
    let mut asked = keys.clone();
    asked.push(key("never-written"));
    let single: Vec<_> = asked.iter().map(|k| a.export(k).unwrap()).collect();
    assert_eq!(a.export_many(&asked), single);
    assert_eq!(single.last(), Some(&None));
}

#[test]
fn applying_many_entries_refuses_a_bad_one_alone() {
    let clock = MockClock::default();
    let (a, b) = (store(1, &clock), store(2, &clock));
    let keys = mixed_keys(200);
    for name in &keys {
        a.set(name, name.clone(), None).unwrap();
    }
    let mut entries: Vec<ExportedEntry> = a.export_many(&keys).into_iter().flatten().collect();
    entries[100].data = ExportedData::List(Vec::new());
    let results = b.apply_many(entries);
    assert_eq!(results.len(), 200);
    for (i, (name, result)) in keys.iter().zip(results).enumerate() {
        if i == 100 {
            assert!(
                matches!(result, Err(StoreError::InvalidArgument(_))),
                "{result:?}"
            );
            assert_eq!(b.export(name), Ok(None));
        } else {
            assert_eq!(result, Ok(Applied::Stored));
            assert_eq!(b.get(name), Ok(name.clone()));
        }
    }
    b.check_invariants().unwrap();
}

#[test]
fn dropping_exported_copies_spares_what_changed_since() {
    let clock = MockClock::default();
    let a = store(1, &clock);
    let keys = mixed_keys(200);
    for (i, name) in keys.iter().enumerate() {
        a.set(name, key("v"), None).unwrap();
        if i % 2 == 1 {
            a.del(name).unwrap();
        }
    }
    let exported: Vec<_> = a
        .export_many(&keys)
        .into_iter()
        .map(|entry| entry.unwrap().exported())
        .collect();
    // Newer writes after the export: a live key rewritten, a deleted one revived.
    a.set(&keys[10], key("newer"), None).unwrap();
    a.set(&keys[11], key("revived"), None).unwrap();
    let dropped = a.drop_exported(keys.iter().zip(exported.iter().copied()));
    assert_eq!(dropped, 198);
    for (i, name) in keys.iter().enumerate() {
        let expected = match i {
            10 => Ok(key("newer")),
            11 => Ok(key("revived")),
            _ => Err(StoreError::NotFound),
        };
        assert_eq!(a.get(name), expected);
    }
    assert_eq!(
        a.tombstone_count(),
        0,
        "dropped tombstones leave nothing behind"
    );
    a.check_invariants().unwrap();
}

#[test]
fn a_store_without_tombstones_forgets_deleted_keys() {
    let a = Store::new(StoreConfig::default());
    a.set(b"k", key("v"), None).unwrap();
    a.del(b"k").unwrap();
    assert_eq!(a.export(b"k"), Ok(None));
    assert_eq!((a.tombstone_count(), a.memory_bytes()), (0, 0));
}

proptest! {
    /// Copies of one key's versions, applied in any order to any store, leave
    /// every store with the newest (spec: cluster.md G7).
    #[test]
    fn any_delivery_order_converges(order in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle()) {
        let clock = MockClock::default();
        let writer = store(1, &clock);
        let mut versions = Vec::new();
        for step in 0..6 {
            if step == 3 {
                writer.del(b"k").unwrap();
            } else {
                writer.set(b"k", Bytes::from(format!("v{step}")), None).unwrap();
            }
            versions.push(writer.export(b"k").unwrap().unwrap());
        }
        let reader = store(2, &clock);
        for index in order {
            reader.apply(versions[index].clone()).unwrap();
        }
        prop_assert_eq!(reader.export(b"k").unwrap(), writer.export(b"k").unwrap());
        reader.check_invariants().map_err(TestCaseError::fail)?;
    }
}
