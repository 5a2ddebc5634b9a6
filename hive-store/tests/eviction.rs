//! Eviction: under a memory limit and a policy that evicts, writes keep
//! succeeding while the store stays under its limit, and the keys that go
//! are the ones the policy names; under `noeviction` a full store refuses.

use std::sync::Arc;

use bytes::Bytes;
use hive_store::{Eviction, EvictionPolicy, MockClock, Store, StoreConfig, StoreError};

const LIMIT: u64 = 256 * 1024;

fn store(clock: &MockClock, policy: EvictionPolicy) -> Store {
    let config = StoreConfig {
        shards: 4,
        mem_limit: LIMIT,
        tombstones: true,
        eviction: Eviction { policy, samples: 5 },
        ..StoreConfig::default()
    };
    Store::with_clock(config, Arc::new(clock.clone()))
}

fn value() -> Bytes {
    Bytes::from(vec![b'v'; 100])
}

fn key(prefix: &str, i: usize) -> Vec<u8> {
    format!("{prefix}{i}").into_bytes()
}

/// Writes `count` new keys, one millisecond apart, with `ttl`.
fn fill(store: &Store, clock: &MockClock, prefix: &str, count: usize, ttl: Option<u64>) {
    for i in 0..count {
        clock.advance(1);
        store.set(&key(prefix, i), value(), ttl).unwrap();
    }
}

fn alive(store: &Store, prefix: &str, count: usize) -> usize {
    (0..count)
        .filter(|&i| store.get(&key(prefix, i)).is_ok())
        .count()
}

#[test]
fn without_eviction_a_full_store_refuses_writes() {
    let clock = MockClock::new(1_000_000);
    let store = store(&clock, EvictionPolicy::NoEviction);
    let refused = (0..10_000).find_map(|i| store.set(&key("k", i), value(), None).err());
    assert_eq!(refused, Some(StoreError::CapacityExceeded));
    assert_eq!(store.evicted(), 0);
}

#[test]
fn every_evicting_policy_absorbs_ten_times_its_limit_and_stays_under_it() {
    for policy in EvictionPolicy::ALL {
        if policy == EvictionPolicy::NoEviction {
            continue;
        }
        let clock = MockClock::new(1_000_000);
        let store = store(&clock, policy);
        // Volatile policies may only take keys with a TTL: give them all one.
        fill(&store, &clock, "k", 10_000, Some(3_600_000));
        assert!(store.memory_bytes() <= LIMIT, "{policy:?}");
        assert!(store.evicted() > 8_000, "{policy:?}: {}", store.evicted());
        assert_eq!(store.len() as u64 + store.evicted(), 10_000, "{policy:?}");
        assert_eq!(
            store.tombstone_count(),
            0,
            "{policy:?}: an eviction is no delete"
        );
        store.check_invariants().unwrap();
    }
}

#[test]
fn lru_keeps_the_keys_read_recently() {
    let clock = MockClock::new(1_000_000);
    let store = store(&clock, EvictionPolicy::AllKeysLru);
    fill(&store, &clock, "hot", 100, None);
    for round in 0..50 {
        // Read every hot key, then write new ones; time moves on.
        for i in 0..100 {
            store
                .get(&key("hot", i))
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        clock.advance(1_000);
        for i in 0..100 {
            store
                .set(&key(&format!("cold{round}-"), i), value(), None)
                .unwrap();
        }
    }
    assert!(store.evicted() > 3_000);
    assert_eq!(alive(&store, "hot", 100), 100);
}

#[test]
fn lfu_keeps_the_keys_read_often() {
    let clock = MockClock::new(1_000_000);
    let store = store(&clock, EvictionPolicy::AllKeysLfu);
    fill(&store, &clock, "hot", 100, None);
    for _ in 0..30 {
        for i in 0..100 {
            store.get(&key("hot", i)).unwrap();
        }
    }
    fill(&store, &clock, "cold", 5_000, None);
    assert!(store.evicted() > 3_000);
    assert!(
        alive(&store, "hot", 100) >= 95,
        "{}",
        alive(&store, "hot", 100)
    );
}

#[test]
fn volatile_policies_take_only_keys_with_a_ttl_and_refuse_when_none_is_left() {
    let clock = MockClock::new(1_000_000);
    let store = store(&clock, EvictionPolicy::VolatileLru);
    fill(&store, &clock, "kept", 300, None);
    fill(&store, &clock, "ttl", 2_000, Some(3_600_000));
    assert_eq!(alive(&store, "kept", 300), 300);
    assert!(store.evicted() > 0);

    let refused = (0..10_000).find_map(|i| store.set(&key("more", i), value(), None).err());
    assert_eq!(refused, Some(StoreError::CapacityExceeded));
    assert_eq!(alive(&store, "kept", 300), 300);
    assert_eq!(alive(&store, "ttl", 2_000), 0);
}

#[test]
fn volatile_ttl_takes_the_keys_that_expire_soonest() {
    let clock = MockClock::new(1_000_000);
    let store = store(&clock, EvictionPolicy::VolatileTtl);
    fill(&store, &clock, "late", 200, Some(3_600_000));
    fill(&store, &clock, "soon", 2_000, Some(60_000));
    assert!(store.evicted() > 500);
    assert!(
        alive(&store, "late", 200) >= 190,
        "{}",
        alive(&store, "late", 200)
    );
}

#[test]
fn background_eviction_brings_usage_down_to_its_target() {
    let clock = MockClock::new(1_000_000);
    let store = store(&clock, EvictionPolicy::AllKeysRandom);
    fill(&store, &clock, "k", 900, None);
    let before = store.memory_bytes();
    let target = before / 2;
    let evicted = store.evict_to(target, usize::MAX);
    assert!(evicted > 0);
    assert!(store.memory_bytes() <= target);
    assert!(
        store.memory_bytes() > target - 1_000,
        "it stops at the target"
    );
    assert_eq!(store.evict_to(target, usize::MAX), 0);
}

#[test]
fn the_policy_changes_while_the_store_serves() {
    let clock = MockClock::new(1_000_000);
    let store = store(&clock, EvictionPolicy::NoEviction);
    let refused = (0..10_000).find(|&i| store.set(&key("k", i), value(), None).is_err());
    let next = refused.expect("the store fills up");

    store.set_eviction(Eviction {
        policy: EvictionPolicy::AllKeysLru,
        samples: 10,
    });
    assert_eq!(store.eviction().policy, EvictionPolicy::AllKeysLru);
    store.set(&key("k", next), value(), None).unwrap();
    assert!(store.evicted() > 0);
}

#[test]
fn policy_names_are_redis_names() {
    for policy in EvictionPolicy::ALL {
        assert_eq!(policy.redis_name().parse::<EvictionPolicy>(), Ok(policy));
        let upper = policy.redis_name().to_ascii_uppercase();
        assert_eq!(upper.parse::<EvictionPolicy>(), Ok(policy));
    }
    assert!("allkeys-lru ".parse::<EvictionPolicy>().is_err());
    assert_eq!(EvictionPolicy::default(), EvictionPolicy::NoEviction);
}

#[test]
fn idle_time_counts_from_the_last_access_and_asking_is_no_access() {
    let clock = MockClock::new(1_000_000);
    let store = store(&clock, EvictionPolicy::AllKeysLru);
    store.set(b"k", value(), None).unwrap();
    // Recency is kept in 64 ms units.
    clock.advance(5_100);
    store.tick();
    assert_eq!(store.idle_seconds(b"k"), Ok(Some(5)));
    assert_eq!(store.idle_seconds(b"k"), Ok(Some(5)), "asking is no access");
    store.get(b"k").unwrap();
    assert_eq!(store.idle_seconds(b"k"), Ok(Some(0)));
    assert_eq!(store.idle_seconds(b"absent"), Ok(None));
    assert!(matches!(
        store.access_frequency(b"k"),
        Err(StoreError::InvalidArgument(message)) if message.contains("not selected")
    ));
}

#[test]
fn frequency_grows_with_reads_and_decays_with_idle_minutes() {
    let clock = MockClock::new(1_000_000);
    let store = store(&clock, EvictionPolicy::AllKeysLfu);
    store.set(b"k", value(), None).unwrap();
    assert_eq!(
        store.access_frequency(b"k"),
        Ok(Some(5)),
        "a new key starts at 5"
    );
    for _ in 0..1_000 {
        store.get(b"k").unwrap();
    }
    let read_often = store.access_frequency(b"k").unwrap().unwrap();
    assert!(read_often > 10, "{read_often}");
    clock.advance(3 * 60_000);
    store.tick();
    assert_eq!(store.access_frequency(b"k"), Ok(Some(read_often - 3)));
    assert!(matches!(
        store.idle_seconds(b"k"),
        Err(StoreError::InvalidArgument(message)) if message.contains("LFU")
    ));
}

#[test]
fn arriving_copies_pass_through_eviction_too() {
    let clock = MockClock::new(1_000_000);
    let store = store(&clock, EvictionPolicy::AllKeysLru);
    fill(&store, &clock, "local", 2_000, None);
    let source = Store::with_clock(StoreConfig::default(), Arc::new(clock.clone()));
    fill(&source, &clock, "copy", 2_000, None);
    let copies: Vec<_> = (0..2_000)
        .map(|i| source.export(&key("copy", i)).unwrap().expect("held"))
        .collect();

    for (i, result) in store.apply_many(copies.clone()).into_iter().enumerate() {
        result.unwrap_or_else(|e| panic!("copy {i}: {e}"));
    }
    // One at a time too (a replica write).
    for mut copy in copies.into_iter().take(50) {
        copy.version.hlc += 1 << 20;
        store.apply(copy).unwrap();
    }
    assert!(store.memory_bytes() <= LIMIT);
    assert!(store.evicted() > 2_000, "{}", store.evicted());
    store.check_invariants().unwrap();

    // Without eviction, copies that do not fit are refused, as writes are.
    let full = self::store(&clock, EvictionPolicy::NoEviction);
    let refused = (0..2_000)
        .map(|i| source.export(&key("copy", i)).unwrap().expect("held"))
        .find_map(|copy| full.apply(copy).err());
    assert_eq!(refused, Some(StoreError::CapacityExceeded));
    assert_eq!(full.evicted(), 0);
}
