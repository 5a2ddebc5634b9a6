//! A node with a memory limit and a policy that evicts keeps taking writes,
//! stays under its limit, and brings its memory back below the stop
//! threshold in the background; without one, a full node refuses writes.

use std::time::{Duration, Instant};

use hive::{Config, Error, Eviction, EvictionPolicy, Node, ValueStore};

const LIMIT: u64 = 2 * 1024 * 1024;

async fn node(policy: EvictionPolicy) -> Node {
    Node::start(Config {
        mem_limit: LIMIT,
        eviction: Eviction {
            policy,
            ..Eviction::default()
        },
        ..Config::default()
    })
    .await
    .expect("starts")
}

fn kilobyte() -> Vec<u8> {
    vec![7; 1024]
}

#[tokio::test]
async fn an_evicting_node_absorbs_ten_times_its_limit_under_the_limit() {
    let node = node(EvictionPolicy::AllKeysLru).await;
    let values = ValueStore::<Vec<u8>>::new(&node.cache(), "v");
    for i in 0..20_000 {
        values.set(&format!("k{i}"), &kilobyte()).await.unwrap();
        assert!(node.status().memory_bytes <= LIMIT);
    }
    assert!(node.evicted_keys() > 15_000, "{}", node.evicted_keys());
    assert_eq!(values.get("k19999").await.unwrap(), kilobyte());
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_eviction_a_full_node_refuses_writes() {
    let node = node(EvictionPolicy::NoEviction).await;
    let values = ValueStore::<Vec<u8>>::new(&node.cache(), "v");
    let mut refused = None;
    for i in 0..20_000 {
        if let Err(error) = values.set(&format!("k{i}"), &kilobyte()).await {
            refused = Some(error);
            break;
        }
    }
    assert!(
        matches!(refused, Some(Error::CapacityExceeded)),
        "{refused:?}"
    );
    assert_eq!(node.evicted_keys(), 0);
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn background_eviction_brings_memory_below_the_stop_threshold() {
    let node = node(EvictionPolicy::NoEviction).await;
    let values = ValueStore::<Vec<u8>>::new(&node.cache(), "v");
    // Fill past the start threshold with eviction off, then turn it on.
    let mut i = 0;
    while node.status().memory_bytes < LIMIT / 100 * 95 {
        values.set(&format!("k{i}"), &kilobyte()).await.unwrap();
        i += 1;
    }
    node.set_eviction(Eviction {
        policy: EvictionPolicy::AllKeysRandom,
        ..Eviction::default()
    })
    .unwrap();
    assert_eq!(node.eviction().policy, EvictionPolicy::AllKeysRandom);

    let deadline = Instant::now() + Duration::from_secs(10);
    while node.status().memory_bytes > LIMIT / 100 * 80 {
        assert!(
            Instant::now() < deadline,
            "memory stays at {}",
            node.status().memory_bytes
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(node.evicted_keys() > 0);
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_eviction_settings_are_refused_and_change_nothing() {
    let node = node(EvictionPolicy::AllKeysLfu).await;
    let bad = Eviction {
        policy: EvictionPolicy::VolatileTtl,
        samples: 0,
        ..Eviction::default()
    };
    assert!(matches!(
        node.set_eviction(bad),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(node.eviction().policy, EvictionPolicy::AllKeysLfu);

    let config = Config {
        eviction: Eviction {
            start_percent: 80,
            stop_percent: 80,
            ..Eviction::default()
        },
        ..Config::default()
    };
    assert!(matches!(
        Node::start(config).await,
        Err(Error::InvalidArgument(_))
    ));
    node.shutdown().await.unwrap();
}
