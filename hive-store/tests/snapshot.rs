//! Snapshots: what is saved comes back exactly (versions, TTLs that ran on),
//! and a damaged stream is an error that leaves the store empty — never a
//! panic, never a partial load.

use std::sync::Arc;

use bytes::Bytes;
use hive_store::{
    End, ExportedEntry, Limits, MockClock, SnapshotError, SnapshotInfo, Store, StoreConfig,
    StoreError,
};
use proptest::prelude::*;

fn store(clock: &MockClock) -> Store {
    store_with(
        clock,
        StoreConfig {
            shards: 8,
            ..StoreConfig::default()
        },
    )
}

fn store_with(clock: &MockClock, config: StoreConfig) -> Store {
    let config = StoreConfig {
        tombstones: true,
        node_tag: 3,
        ..config
    };
    Store::with_clock(config, Arc::new(clock.clone()))
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// A store holding every kind, key TTLs, field and member TTLs, and tombstones.
fn filled(clock: &MockClock, keys: usize) -> Store {
    let store = store(clock);
    for i in 0..keys {
        let k = |kind: &str| format!("{kind}-{i}");
        store.set(k("v").as_bytes(), b("value"), None).unwrap();
        store
            .set(
                k("vt").as_bytes(),
                b("short-lived"),
                Some(60_000 + i as u64),
            )
            .unwrap();
        store.hset(k("h").as_bytes(), b("a"), b("1"), None).unwrap();
        store
            .hset(k("h").as_bytes(), b("b"), b("2"), Some(30_000))
            .unwrap();
        store
            .push(k("l").as_bytes(), End::Back, vec![b("x"), b("y"), b("z")])
            .unwrap();
        store
            .sadd(k("s").as_bytes(), vec![b("m1"), b("m2")])
            .unwrap();
        store
            .sexpire_member(k("s").as_bytes(), b"m2", 45_000)
            .unwrap();
        store.zadd(k("z").as_bytes(), 1.5, b("one")).unwrap();
        store.zadd(k("z").as_bytes(), -2.0, b("two")).unwrap();
        store.expire(k("z").as_bytes(), 90_000).unwrap();
        store.set(k("gone").as_bytes(), b("deleted"), None).unwrap();
        store.del(k("gone").as_bytes()).unwrap();
    }
    store
}

fn save(store: &Store) -> (Vec<u8>, SnapshotInfo) {
    store.save_snapshot(Vec::new(), "node-a").expect("saves")
}

/// Every key's and tombstone's state, sorted by key, with hash fields and
/// set members sorted (their order means nothing).
fn contents(store: &Store) -> Vec<ExportedEntry> {
    use hive_store::ExportedData;
    let mut keys = store.keys();
    keys.extend(store.tombstone_keys());
    keys.sort();
    keys.iter()
        .map(|key| {
            let mut entry = store.export(key).unwrap().expect("known");
            match &mut entry.data {
                ExportedData::Hash(fields) => fields.sort_by(|a, b| a.0.cmp(&b.0)),
                ExportedData::Set(members) => members.sort(),
                _ => {}
            }
            entry
        })
        .collect()
}

/// Asserts both lists alike, naming the first entry that differs.
fn assert_same(got: &[ExportedEntry], want: &[ExportedEntry]) {
    let keys = |list: &[ExportedEntry]| -> std::collections::BTreeSet<Bytes> {
        list.iter().map(|entry| entry.key.clone()).collect()
    };
    let (got_keys, want_keys) = (keys(got), keys(want));
    let extra: Vec<_> = got_keys.difference(&want_keys).take(5).collect();
    let missing: Vec<_> = want_keys.difference(&got_keys).take(5).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{} keys and tombstones, {} wanted; extra {extra:?}, missing {missing:?}",
        got.len(),
        want.len()
    );
    for (got, want) in got.iter().zip(want) {
        assert_eq!(got, want);
    }
}

fn assert_empty(store: &Store) {
    assert_eq!(store.len(), 0, "no entry loaded");
    assert_eq!(store.tombstone_count(), 0, "no tombstone loaded");
    assert_eq!(store.memory_bytes(), 0, "no memory held");
}

#[test]
fn a_snapshot_brings_back_every_entry_with_its_version_and_the_ttls_that_ran_on() {
    let clock = MockClock::default();
    let original = filled(&clock, 50);
    let (bytes, saved) = save(&original);
    assert_eq!(saved.entries, 50 * 6);
    assert_eq!(saved.tombstones, 50);
    assert_eq!(saved.bytes, bytes.len() as u64);
    assert_eq!(saved.node_id, "node-a");

    clock.advance(1_000);
    let restored = store(&clock);
    let loaded = restored.load_snapshot(&bytes[..]).expect("loads");
    assert_eq!(
        (loaded.entries, loaded.tombstones, loaded.expired),
        (50 * 6, 50, 0)
    );
    assert_eq!(loaded.bytes, bytes.len() as u64);
    assert_eq!(loaded.created_ms, saved.created_ms);
    // Both stores read the same clock, 1 s after the save: the TTLs the
    // snapshot carries ran on for that second too.
    assert_same(&contents(&restored), &contents(&original));
    restored.check_invariants().unwrap();
}

#[test]
fn entries_fields_and_members_that_expired_since_the_save_are_skipped() {
    let clock = MockClock::default();
    let original = store(&clock);
    original.set(b"brief", b("x"), Some(500)).unwrap();
    original.set(b"lasting", b("x"), Some(5_000)).unwrap();
    original.hset(b"h", b("brief"), b("1"), Some(500)).unwrap();
    original.hset(b"h", b("kept"), b("2"), None).unwrap();
    original.sadd(b"s", vec![b("brief"), b("kept")]).unwrap();
    original.sexpire_member(b"s", b"brief", 500).unwrap();
    let (bytes, _) = save(&original);

    clock.advance(1_000);
    let restored = store(&clock);
    let loaded = restored.load_snapshot(&bytes[..]).expect("loads");
    assert_eq!((loaded.entries, loaded.expired), (4, 1));
    assert_eq!(restored.get(b"brief"), Err(StoreError::NotFound));
    assert_eq!(restored.ttl(b"lasting").unwrap(), Some(4_000));
    assert_eq!(restored.hkeys(b"h").unwrap(), vec![b("kept")]);
    assert_eq!(restored.smembers(b"s").unwrap(), vec![b("kept")]);
}

#[test]
fn writes_after_a_load_order_after_the_loaded_versions() {
    let clock = MockClock::default();
    let original = filled(&clock, 3);
    let (bytes, _) = save(&original);
    // A restarted node's clock may stand behind the saved versions.
    clock.set(1_600_000_000_000);
    let restored = store(&clock);
    restored.load_snapshot(&bytes[..]).unwrap();
    let loaded = restored.version(b"v-0").unwrap().unwrap();
    restored.set(b"v-0", b("newer"), None).unwrap();
    assert!(restored.version(b"v-0").unwrap().unwrap() > loaded);
}

/// A snapshot destination that changes the store at its first write — in
/// the middle of the save, once a frame's worth of entries was copied.
struct ChangesOnFirstWrite {
    store: Arc<Store>,
    bytes: Vec<u8>,
    changed: bool,
}

impl std::io::Write for ChangesOnFirstWrite {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The first frame's payload comes once about 1 MiB of entries was
        // copied (the header and each frame's length and checksum go in
        // small writes of their own).
        if !self.changed && buf.len() > 100_000 {
            self.changed = true;
            for i in 0..200 {
                let key = format!("k{i}");
                if i < 100 {
                    self.store.set(key.as_bytes(), b("changed"), None).unwrap();
                } else {
                    self.store.del(key.as_bytes()).unwrap();
                }
                self.store
                    .set(format!("fresh{i}").as_bytes(), b("new"), None)
                    .unwrap();
            }
            self.store.hset(b"hash", b("late"), b("1"), None).unwrap();
            self.store.del(b"gone").unwrap();
            self.store.set(b"buried", b("back"), None).unwrap();
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_save_copies_each_shard_as_of_one_instant_while_writes_go_on() {
    // One shard, so every change lands in the middle of its copy: keys
    // whose slice already went out, and keys still to come.
    let clock = MockClock::default();
    let store = Arc::new(store_with(
        &clock,
        StoreConfig {
            shards: 1,
            ..StoreConfig::default()
        },
    ));
    // Values that do not compress, so frames are written about 1 MiB at a
    // time and the first one goes out in the middle of the copy.
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 0..3_000 {
        let value: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(1_000).collect();
        store
            .set(format!("k{i}").as_bytes(), Bytes::from(value), None)
            .unwrap();
    }
    store.hset(b"hash", b("early"), b("1"), None).unwrap();
    store.set(b"gone", b("x"), None).unwrap();
    store.set(b"buried", b("x"), None).unwrap();
    store.del(b"buried").unwrap();
    let before = contents(&store);

    let out = ChangesOnFirstWrite {
        store: store.clone(),
        bytes: Vec::new(),
        changed: false,
    };
    let (out, _) = store.save_snapshot(out, "node-a").expect("saves");
    assert!(out.changed, "the store changed during the save");
    assert_eq!(store.get(b"k0").unwrap(), "changed", "writes went through");

    let restored = store_with(
        &clock,
        StoreConfig {
            shards: 1,
            ..StoreConfig::default()
        },
    );
    restored.load_snapshot(&out.bytes[..]).expect("loads");
    assert_same(&contents(&restored), &before);
}

#[test]
fn an_entry_over_one_frame_goes_alone_and_comes_back() {
    let clock = MockClock::default();
    let original = store(&clock);
    let big = Bytes::from(vec![7u8; 3 << 20]);
    original.set(b"big", big.clone(), None).unwrap();
    for i in 0..1_000 {
        original
            .set(format!("small-{i}").as_bytes(), b("s"), None)
            .unwrap();
    }
    let (bytes, _) = save(&original);
    let restored = store(&clock);
    restored.load_snapshot(&bytes[..]).unwrap();
    assert_eq!(restored.get(b"big").unwrap(), big);
    assert_eq!(restored.len(), 1_001);
}

#[test]
fn an_empty_store_saves_and_loads() {
    let clock = MockClock::default();
    let (bytes, saved) = save(&store(&clock));
    assert_eq!((saved.entries, saved.tombstones), (0, 0));
    let restored = store(&clock);
    assert_eq!(restored.load_snapshot(&bytes[..]).unwrap().entries, 0);
}

#[test]
fn a_snapshot_loads_only_into_an_empty_store() {
    let clock = MockClock::default();
    let (bytes, _) = save(&filled(&clock, 2));
    let busy = store(&clock);
    busy.set(b"mine", b("x"), None).unwrap();
    assert!(matches!(
        busy.load_snapshot(&bytes[..]),
        Err(SnapshotError::NotEmpty)
    ));
    assert_eq!(busy.get(b"mine").unwrap(), "x", "left as it was");
}

#[test]
fn another_format_version_is_refused_by_name() {
    let clock = MockClock::default();
    let (mut bytes, _) = save(&filled(&clock, 2));
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let restored = store(&clock);
    assert!(matches!(
        restored.load_snapshot(&bytes[..]),
        Err(SnapshotError::UnsupportedVersion {
            found: 2,
            supported: 1
        })
    ));
    assert_empty(&restored);
}

#[test]
fn a_stream_that_is_not_a_snapshot_is_corrupt_at_byte_zero() {
    let clock = MockClock::default();
    let restored = store(&clock);
    let err = restored
        .load_snapshot(&b"*1\r\n$4\r\nPING\r\n"[..])
        .unwrap_err();
    assert!(
        matches!(err, SnapshotError::Corrupt { offset: 0, .. }),
        "{err}"
    );
}

/// Replaces the first frame's length with `len` (and fixes nothing else).
fn with_first_frame_len(mut bytes: Vec<u8>, len: u32) -> (Vec<u8>, u64) {
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let frame = 16 + header_len;
    bytes[frame..frame + 4].copy_from_slice(&len.to_le_bytes());
    (bytes, frame as u64)
}

#[test]
fn a_frame_length_past_the_bound_is_refused_before_anything_is_allocated() {
    let clock = MockClock::default();
    let (bytes, _) = save(&filled(&clock, 2));
    let (bytes, frame) = with_first_frame_len(bytes, u32::MAX - 1);
    let restored = store(&clock);
    let err = restored.load_snapshot(&bytes[..]).unwrap_err();
    match err {
        SnapshotError::Corrupt { offset, reason } => {
            assert_eq!(offset, frame);
            assert!(reason.contains("frame length"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert_empty(&restored);
}

#[test]
fn a_decompressed_length_past_the_bound_is_refused_before_anything_is_allocated() {
    let clock = MockClock::default();
    let (mut bytes, _) = save(&filled(&clock, 20));
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let frame = 16 + header_len;
    let payload_len = u32::from_le_bytes(bytes[frame + 8..frame + 12].try_into().unwrap());
    assert!(payload_len > 0, "this frame is stored compressed");
    bytes[frame + 8..frame + 12].copy_from_slice(&(u32::MAX - 1).to_le_bytes());
    let restored = store(&clock);
    match restored.load_snapshot(&bytes[..]).unwrap_err() {
        SnapshotError::Corrupt { offset, reason } => {
            assert_eq!(offset, frame as u64);
            assert!(reason.contains("frame length"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert_empty(&restored);
}

#[test]
fn an_entry_over_the_loading_stores_limits_is_refused_and_nothing_stays() {
    let clock = MockClock::default();
    let original = store(&clock);
    for i in 0..100 {
        original
            .set(format!("k{i}").as_bytes(), b("short"), None)
            .unwrap();
    }
    original
        .set(b"long", Bytes::from(vec![1u8; 2_000]), None)
        .unwrap();
    let (bytes, _) = save(&original);
    let strict = store_with(
        &clock,
        StoreConfig {
            limits: Limits {
                max_value_len: 1_000,
                ..Limits::default()
            },
            ..StoreConfig::default()
        },
    );
    let err = strict.load_snapshot(&bytes[..]).unwrap_err();
    assert!(
        matches!(&err, SnapshotError::Refused { key, error: StoreError::InvalidArgument(_), .. } if key == "long"),
        "{err}"
    );
    assert_empty(&strict);
}

fn real_snapshot() -> Vec<u8> {
    let clock = MockClock::default();
    save(&filled(&clock, 8)).0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_flipped_bit_is_an_error_and_loads_nothing(at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = real_snapshot();
        let at = at.index(bytes.len());
        bytes[at] ^= 1 << bit;
        let restored = store(&MockClock::default());
        prop_assert!(restored.load_snapshot(&bytes[..]).is_err());
        assert_empty(&restored);
    }

    #[test]
    fn any_truncation_is_an_error_and_loads_nothing(at in any::<prop::sample::Index>()) {
        let bytes = real_snapshot();
        let len = at.index(bytes.len());
        let restored = store(&MockClock::default());
        let err = restored.load_snapshot(&bytes[..len]).unwrap_err();
        prop_assert!(matches!(err, SnapshotError::Corrupt { .. }), "{}", err);
        assert_empty(&restored);
    }

    #[test]
    fn any_bytes_appended_are_an_error(extra in prop::collection::vec(any::<u8>(), 1..16)) {
        let mut bytes = real_snapshot();
        bytes.extend(extra);
        let restored = store(&MockClock::default());
        prop_assert!(restored.load_snapshot(&bytes[..]).is_err());
        assert_empty(&restored);
    }

    #[test]
    fn random_bytes_after_a_valid_header_are_an_error_never_a_panic(
        tail in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let real = real_snapshot();
        let header_len = u32::from_le_bytes(real[12..16].try_into().unwrap()) as usize;
        let mut bytes = real[..16 + header_len].to_vec();
        bytes.extend(tail);
        let restored = store(&MockClock::default());
        prop_assert!(restored.load_snapshot(&bytes[..]).is_err());
        assert_empty(&restored);
    }
}

#[test]
fn changes_count_writes_deletes_arrivals_and_expiries_not_reads() {
    let clock = MockClock::default();
    let store = store(&clock);
    let start = store.changes();
    store.set(b"a", b("1"), Some(100)).unwrap();
    store.set(b"b", b("1"), None).unwrap();
    store.get(b"b").unwrap();
    assert_eq!(store.changes() - start, 2, "two writes, one read");
    store.del(b"b").unwrap();
    store.del(b"missing").unwrap();
    assert_eq!(
        store.changes() - start,
        3,
        "a delete of nothing changes nothing"
    );
    clock.advance(200);
    store.sweep(64);
    assert_eq!(store.changes() - start, 4, "an expiry is a change");
    let other = self::store(&clock);
    other.set(b"c", b("1"), None).unwrap();
    store.apply(other.export(b"c").unwrap().unwrap()).unwrap();
    assert_eq!(store.changes() - start, 5, "an arriving copy is a change");
}
