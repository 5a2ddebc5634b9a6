//! The driver's housekeeping on real nodes (gRPC and gossip on 127.0.0.1):
//! a copy left on a node that does not own its key reaches the owner and is
//! dropped without any membership change (spec: cluster.md "Rebalancing",
//! G5 — a leftover must not outlive the tombstones that would hide it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hive_cluster::{Cluster, ClusterConfig, MemberState, Peer, Preset, View};
use hive_store::{Op, Reply, Store, StoreConfig};

const VNODES: u32 = 100;

fn config(id: &str, seeds: Vec<SocketAddr>) -> ClusterConfig {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    ClusterConfig {
        node_id: id.to_owned(),
        gossip_bind: loopback,
        rpc_bind: loopback,
        advertise: None,
        seeds,
        replication_factor: 1,
        vnodes: VNODES,
        preset: Preset::Local,
        gossip_interval: None,
        gossip_fanout: None,
        join_timeout: Duration::from_secs(5),
        reconnect_timeout: Duration::from_secs(3600),
        rebalance_debounce: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        tombstone_retention: Duration::from_millis(200),
    }
}

fn store() -> Arc<Store> {
    Arc::new(Store::new(StoreConfig {
        tombstones: true,
        ..StoreConfig::default()
    }))
}

/// Polls `done` every 10 ms until it holds or `timeout` passes.
async fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leftover_copy_moves_to_its_owner_without_a_membership_change() {
    let (store_a, store_b) = (store(), store());
    let a = Cluster::start(config("node-a", Vec::new()), store_a.clone())
        .await
        .expect("node-a starts");
    let b = Cluster::start(config("node-b", vec![a.gossip_addr()]), store_b.clone())
        .await
        .expect("node-b joins");
    for node in [&a, &b] {
        node.wait_ready(2, Duration::from_secs(10))
            .await
            .expect("settles");
    }
    let view = [&a, &b].iter().fold(View::new(1), |view, node| {
        view.with(Peer {
            id: node.id().to_owned(),
            rpc_addr: node.rpc_addr(),
            vnodes: VNODES,
            incarnation: 0, // placement ignores it
        })
    });
    let key = (0..)
        .map(|i| format!("key-{i}").into_bytes())
        .find(|key| view.primary(key).map(String::as_str) == Some("node-a"))
        .expect("node-a owns some key");
    // A copy node-b should not hold, as a lagging primary's replica would be.
    store_b
        .execute(
            &key,
            Op::Set {
                value: Bytes::from("left behind"),
                ttl_ms: None,
            },
        )
        .expect("written");

    let moved = eventually(Duration::from_secs(10), || {
        store_a.knows(&key).unwrap_or(false) && !store_b.knows(&key).unwrap_or(true)
    })
    .await;
    assert!(moved, "the leftover stayed on node-b");
    let read = b
        .execute(&key, Op::Get)
        .await
        .expect("reads through node-b");
    assert_eq!(read, Reply::Bytes(Bytes::from("left behind")));
    b.shutdown().await.expect("node-b leaves");
    a.shutdown().await.expect("node-a leaves");
}

// The member list keeps a failed member (as `Dead`) while it may come back, and
// forgets it after `reconnect_timeout`: churn does not grow it without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_member_is_listed_until_the_reconnect_timeout_then_forgotten() {
    let mut a_config = config("node-a", Vec::new());
    a_config.reconnect_timeout = Duration::from_secs(1);
    let a = Cluster::start(a_config, store())
        .await
        .expect("node-a starts");
    let b = Cluster::start(config("node-b", vec![a.gossip_addr()]), store())
        .await
        .expect("node-b joins");
    a.wait_ready(2, Duration::from_secs(10))
        .await
        .expect("settles");
    drop(b);
    let state_of_b = || {
        a.members()
            .into_iter()
            .find(|member| member.id == "node-b")
            .map(|member| member.state)
    };
    let dead = eventually(Duration::from_secs(10), || {
        state_of_b() == Some(MemberState::Dead)
    })
    .await;
    assert!(dead, "node-b never listed as dead: {:?}", state_of_b());
    let forgotten = eventually(Duration::from_secs(10), || state_of_b().is_none()).await;
    assert!(forgotten, "node-b still listed: {:?}", state_of_b());
    a.shutdown().await.expect("node-a leaves");
}
