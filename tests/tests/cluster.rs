//! Cluster mode through the public API: real nodes on 127.0.0.1 with ephemeral
//! ports, in one process; a crash is `drop(node)` (spec: api.md, cluster.md).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hive::{
    Config, Error, GossipPreset, HashStore, ListStore, Mode, Node, SetStore, ValueStore, ZSetStore,
};

const READY: Duration = Duration::from_secs(20);

fn config(seeds: &[&Node], replication_factor: usize) -> Config {
    Config {
        mode: Mode::Cluster,
        bind_addr: "127.0.0.1".into(),
        bind_port: 0,
        rpc_port: 0,
        seeds: seeds
            .iter()
            .filter_map(|node| node.gossip_addr())
            .map(|addr| addr.to_string())
            .collect(),
        replication_factor,
        gossip_preset: GossipPreset::Local,
        gossip_interval: Duration::from_millis(50),
        rebalance_debounce: Duration::from_millis(100),
        request_timeout: Duration::from_secs(3),
        join_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

/// Starts `count` nodes, each joining the ones before it, and waits until all
/// see each other and have settled.
async fn cluster(count: usize, replication_factor: usize) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for _ in 0..count {
        let seeds: Vec<&Node> = nodes.iter().collect();
        nodes.push(
            Node::start(config(&seeds, replication_factor))
                .await
                .expect("node starts"),
        );
    }
    settle(&nodes).await;
    nodes
}

async fn settle(nodes: &[Node]) {
    for node in nodes {
        node.wait_ready(nodes.len(), READY)
            .await
            .expect("cluster settles");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_written_through_one_node_reads_through_every_node() {
    let nodes = cluster(3, 2).await;
    let cache = nodes[0].cache();
    let values = ValueStore::<String>::new(&cache, "v");
    let hashes = HashStore::<u32>::new(&cache, "h");
    let lists = ListStore::<u32>::new(&cache, "l");
    let sets = SetStore::new(&cache, "s");
    let zsets = ZSetStore::new(&cache, "z");
    for i in 0..20 {
        let key = format!("key-{i}");
        values.set(&key, &format!("value-{i}")).await.unwrap();
        hashes.hset(&key, "f", &i).await.unwrap();
        lists.rpush(&key, &i).await.unwrap();
        sets.sadd(&key, "member").await.unwrap();
        zsets.zadd(&key, f64::from(i), "member").await.unwrap();
    }
    for node in &nodes {
        let cache = node.cache();
        for i in 0..20u32 {
            let key = format!("key-{i}");
            assert_eq!(
                ValueStore::<String>::new(&cache, "v")
                    .get(&key)
                    .await
                    .unwrap(),
                format!("value-{i}")
            );
            assert_eq!(
                HashStore::<u32>::new(&cache, "h")
                    .hget(&key, "f")
                    .await
                    .unwrap(),
                i
            );
            assert_eq!(
                ListStore::<u32>::new(&cache, "l")
                    .lrange(&key, 0, -1)
                    .await
                    .unwrap(),
                vec![i]
            );
            assert!(
                SetStore::new(&cache, "s")
                    .sismember(&key, "member")
                    .await
                    .unwrap()
            );
            assert_eq!(
                ZSetStore::new(&cache, "z")
                    .zscore(&key, "member")
                    .await
                    .unwrap(),
                f64::from(i)
            );
        }
        assert_eq!(
            ValueStore::<String>::new(&cache, "v").get("missing").await,
            Err(Error::NotFound)
        );
        let status = node.status();
        assert_eq!(status.members.len(), 3);
        let shares: f64 = status.members.iter().map(|member| member.ring_share).sum();
        assert!((shares - 1.0).abs() < 1e-6, "{shares}");
    }
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1_a_crash_loses_no_acknowledged_write() {
    // Spec: cluster.md G1 — RF=2, one of three nodes crashes under write load.
    let mut nodes = cluster(3, 2).await;
    let writers = [
        ValueStore::<u64>::new(&nodes[0].cache(), "g1"),
        ValueStore::<u64>::new(&nodes[1].cache(), "g1"),
    ];
    let mut acknowledged = BTreeMap::new();
    let mut crashed = false;
    let started = Instant::now();
    for i in 0..600u64 {
        if i == 200 {
            drop(nodes.pop()); // node 2 crashes: no leave, no hand-off
            crashed = true;
        }
        let key = format!("k{i}");
        if writers[(i % 2) as usize].set(&key, &i).await.is_ok() {
            acknowledged.insert(key, i);
        }
    }
    assert!(
        crashed && acknowledged.len() > 300,
        "{} acknowledged in {:?}",
        acknowledged.len(),
        started.elapsed()
    );
    settle(&nodes).await;
    for node in &nodes {
        let reader = ValueStore::<u64>::new(&node.cache(), "g1");
        for (key, value) in &acknowledged {
            assert_eq!(
                reader.get(key).await.as_ref(),
                Ok(value),
                "{key} through {}",
                node.id()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_a_graceful_leave_loses_nothing_even_with_one_copy() {
    // Spec: cluster.md G2.
    let mut nodes = cluster(3, 1).await;
    let writer = ValueStore::<u64>::new(&nodes[0].cache(), "g2");
    for i in 0..300u64 {
        writer.set(&format!("k{i}"), &i).await.unwrap();
    }
    let leaving = nodes.pop().unwrap();
    assert!(
        leaving.status().keys > 0,
        "the leaving node owned some keys"
    );
    leaving.shutdown().await.unwrap();
    settle(&nodes).await;
    for node in &nodes {
        let reader = ValueStore::<u64>::new(&node.cache(), "g2");
        for i in 0..300u64 {
            assert_eq!(
                reader.get(&format!("k{i}")).await,
                Ok(i),
                "k{i} through {}",
                node.id()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_replication_factor_is_refused() {
    let nodes = cluster(1, 2).await;
    let refused = Node::start(config(&[&nodes[0]], 3)).await;
    assert!(
        matches!(refused, Err(Error::InvalidArgument(ref message)) if message.contains("replication")),
        "{refused:?}"
    );
    assert_eq!(nodes[0].status().members.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_seed_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_seed = listener.local_addr().unwrap();
    drop(listener);
    let config = Config {
        seeds: vec![dead_seed.to_string()],
        join_timeout: Duration::from_secs(1),
        ..config(&[], 1)
    };
    let started = Instant::now();
    let refused = Node::start(config).await;
    assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
