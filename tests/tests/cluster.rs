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
    let write = async |acknowledged: &mut BTreeMap<String, u64>, i: u64| {
        let key = format!("k{i}");
        let ok = writers[(i % 2) as usize].set(&key, &i).await.is_ok();
        if ok {
            acknowledged.insert(key, i);
        }
        ok
    };
    for i in 0..200u64 {
        assert!(
            write(&mut acknowledged, i).await,
            "k{i}: every write before the crash succeeds"
        );
    }
    drop(nodes.pop()); // node 2 crashes: no leave, no hand-off
    // Until the crash is detected, writes that meet the dead node fail with
    // Unavailable (never a silent success on fewer copies); the others land.
    for i in 200..500u64 {
        write(&mut acknowledged, i).await;
    }
    settle(&nodes).await;
    for i in 500..600u64 {
        assert!(
            write(&mut acknowledged, i).await,
            "k{i}: writes succeed again once settled"
        );
    }
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

/// Retries `start` (a crashed node's ports are released by its tasks as they
/// stop) until it succeeds or `READY` passes.
async fn start_at_its_old_ports(config: Config) -> Node {
    let until = Instant::now() + READY;
    loop {
        match Node::start(config.clone()).await {
            Ok(node) => return node,
            Err(err) if Instant::now() < until => {
                eprintln!("restart not yet possible: {err}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("restarting: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1_a_node_restarted_at_once_with_its_id_loses_nothing_and_is_refilled() {
    // Spec: cluster.md G1 — a node that restarts with the same id before its
    // failure was detected is a new incarnation: it vouches for nothing, runs
    // its keys only once it caught up from the other owners, and is refilled.
    // Before incarnations, the restarted node served its keys from an empty
    // store and its first writes replaced the replicas' full copies.
    let mut nodes = Vec::new();
    for i in 0..3 {
        let seeds: Vec<&Node> = nodes.iter().collect();
        let config = Config {
            node_id: format!("node-{i}"),
            ..config(&seeds, 2)
        };
        nodes.push(Node::start(config).await.expect("node starts"));
    }
    settle(&nodes).await;
    let hashes = HashStore::<String>::new(&nodes[0].cache(), "h");
    for k in 0..200 {
        hashes
            .hset(&format!("h{k}"), "f1", &"a".into())
            .await
            .unwrap();
        hashes
            .hset(&format!("h{k}"), "f2", &"b".into())
            .await
            .unwrap();
    }
    let crashed = nodes.pop().expect("three nodes");
    let again = Config {
        node_id: "node-2".into(),
        bind_port: crashed.gossip_addr().expect("clustered").port(),
        rpc_port: crashed.rpc_addr().expect("clustered").port(),
        ..config(&[&nodes[0]], 2)
    };
    drop(crashed); // kill -9: no leave, no hand-off; restarted at once
    nodes.push(start_at_its_old_ports(again).await);

    // Writes through the restarted node: each is retried while it reports
    // that it surely did not run (the cluster is taking the restart in).
    let through_restarted = HashStore::<String>::new(&nodes[2].cache(), "h");
    for k in 0..200 {
        let key = format!("h{k}");
        let until = Instant::now() + READY;
        loop {
            match through_restarted.hset(&key, "f3", &"c".into()).await {
                Ok(_) => break,
                Err(Error::Unavailable(reason)) if Instant::now() < until => {
                    eprintln!("{key}: {reason}");
                }
                Err(err) => panic!("{key}: {err}"),
            }
        }
    }
    for node in &nodes {
        let reader = HashStore::<String>::new(&node.cache(), "h");
        for k in 0..200 {
            let key = format!("h{k}");
            let mut fields = reader.hkeys(&key).await.unwrap_or_default();
            fields.sort();
            assert_eq!(fields, ["f1", "f2", "f3"], "{key} through {}", node.id());
        }
    }
    // Refilled: every hash is held by two nodes again, the restarted one too.
    settle(&nodes).await;
    let deadline = Instant::now() + READY;
    loop {
        let held: Vec<u64> = nodes.iter().map(|node| node.status().keys).collect();
        if held.iter().sum::<u64>() == 400 && held[2] > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "copies held per node: {held:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for node in nodes {
        node.shutdown().await.unwrap();
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
async fn a_node_with_other_size_limits_is_refused() {
    // A key moves between nodes whole: a member that cannot take what another
    // holds would refuse its copies in every rebalance. Refused at join.
    let nodes = cluster(1, 2).await;
    let smaller = Config {
        max_value_bytes: 1 << 20,
        ..config(&[&nodes[0]], 2)
    };
    let refused = Node::start(smaller).await;
    assert!(
        matches!(refused, Err(Error::InvalidArgument(ref message)) if message.contains("size_limits")),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_once_settled_every_node_answers_alike() {
    // Spec: cluster.md G3.
    let nodes = cluster(3, 2).await;
    for i in 0..240u64 {
        let writer = ValueStore::<u64>::new(&nodes[(i % 3) as usize].cache(), "g3");
        writer.set(&format!("k{i}"), &i).await.unwrap();
        if i % 4 == 0 {
            writer.del(&format!("k{i}")).await.unwrap();
        }
    }
    settle(&nodes).await;
    for i in 0..240u64 {
        let key = format!("k{i}");
        let mut answers = Vec::new();
        for node in &nodes {
            answers.push(ValueStore::<u64>::new(&node.cache(), "g3").get(&key).await);
        }
        let expected = if i % 4 == 0 {
            Err(Error::NotFound)
        } else {
            Ok(i)
        };
        assert!(
            answers.iter().all(|answer| *answer == expected),
            "{key}: {answers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_a_join_under_load_causes_no_miss_and_no_stale_read() {
    // Spec: cluster.md G4 — one copy per key, so the newcomer really takes keys
    // over; readers must never miss a key nor read a value older than the last
    // acknowledged write.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const KEYS: usize = 200;
    let mut nodes = cluster(2, 1).await;
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let writer = ValueStore::<u64>::new(&nodes[0].cache(), "g4");
    for key in 0..KEYS {
        writer.set(&format!("k{key}"), &1).await.unwrap();
        acked[key].store(1, Ordering::SeqCst);
    }
    let running = Arc::new(AtomicBool::new(true));
    let (misses, stale, reads) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut readers = Vec::new();
    for (reader_node, node) in nodes.iter().enumerate() {
        let store = ValueStore::<u64>::new(&node.cache(), "g4");
        let (acked, running, misses, stale, reads) = (
            acked.clone(),
            running.clone(),
            misses.clone(),
            stale.clone(),
            reads.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut key = reader_node * 7;
            while running.load(Ordering::SeqCst) {
                key = (key + 13) % KEYS;
                let floor = acked[key].load(Ordering::SeqCst);
                match store.get(&format!("k{key}")).await {
                    Ok(value) if value < floor => drop(stale.fetch_add(1, Ordering::SeqCst)),
                    Ok(_) => {}
                    Err(_) => drop(misses.fetch_add(1, Ordering::SeqCst)),
                }
                reads.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let writes = {
        let (acked, running) = (acked.clone(), running.clone());
        let writer = writer.clone();
        tokio::spawn(async move {
            let mut round = 2;
            while running.load(Ordering::SeqCst) {
                for key in (0..KEYS).step_by(5) {
                    if writer.set(&format!("k{key}"), &round).await.is_ok() {
                        acked[key].fetch_max(round, Ordering::SeqCst);
                    }
                }
                round += 1;
            }
        })
    };
    // Readers and the writer run before, during and after the join.
    let reads_at_least = async |count: u64| {
        let deadline = Instant::now() + READY;
        while reads.load(Ordering::SeqCst) < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        reads.load(Ordering::SeqCst)
    };
    let before = reads_at_least(50).await;
    let seeds: Vec<&Node> = nodes.iter().collect();
    let newcomer = Node::start(config(&seeds, 1)).await.unwrap();
    nodes.push(newcomer);
    settle(&nodes).await;
    let during = reads.load(Ordering::SeqCst);
    assert!(
        reads_at_least(during + 200).await >= during + 200,
        "readers kept reading after the join"
    );
    running.store(false, Ordering::SeqCst);
    for reader in readers {
        reader.await.unwrap();
    }
    writes.await.unwrap();
    assert!(nodes[2].status().keys > 0, "the newcomer took keys over");
    assert!(before >= 50, "readers ran before the join");
    assert_eq!(
        (misses.load(Ordering::SeqCst), stale.load(Ordering::SeqCst)),
        (0, 0),
        "misses, stale reads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g5_deletes_before_and_during_a_rebalance_never_come_back() {
    // Spec: cluster.md G5.
    let mut nodes = cluster(2, 1).await;
    let writer = ValueStore::<u64>::new(&nodes[0].cache(), "g5");
    for i in 0..300u64 {
        writer.set(&format!("k{i}"), &i).await.unwrap();
    }
    for i in 0..100u64 {
        writer.del(&format!("k{i}")).await.unwrap();
    }
    let seeds: Vec<&Node> = nodes.iter().collect();
    nodes.push(Node::start(config(&seeds, 1)).await.unwrap());
    // The newcomer is in the views and keys are moving: delete more.
    for i in 100..200u64 {
        writer.del(&format!("k{i}")).await.unwrap();
    }
    settle(&nodes).await;
    // A second membership change moves keys again; nothing may resurface.
    let seeds: Vec<&Node> = nodes.iter().collect();
    nodes.push(Node::start(config(&seeds, 1)).await.unwrap());
    settle(&nodes).await;
    for node in &nodes {
        let reader = ValueStore::<u64>::new(&node.cache(), "g5");
        for i in 0..300u64 {
            let expected = if i < 200 { Err(Error::NotFound) } else { Ok(i) };
            assert_eq!(
                reader.get(&format!("k{i}")).await,
                expected,
                "k{i} through {}",
                node.id()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g6_concurrent_pushes_through_different_nodes_keep_one_order_on_every_replica() {
    // Spec: cluster.md G6 — the primary orders the pushes; a replica holds the
    // same order, which shows once the primary crashes and a replica takes over.
    let mut nodes = cluster(3, 3).await;
    let mut pushers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let list = ListStore::<u64>::new(&node.cache(), "g6");
        pushers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..60u64 {
                let value = (n as u64) * 1000 + i;
                if list.rpush("shared", &value).await.is_ok() {
                    acknowledged.push(value);
                }
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for pusher in pushers {
        acknowledged.extend(pusher.await.unwrap());
    }
    let before = ListStore::<u64>::new(&nodes[0].cache(), "g6")
        .lrange("shared", 0, -1)
        .await
        .unwrap();
    let mut pushed = before.clone();
    pushed.sort_unstable();
    acknowledged.sort_unstable();
    assert_eq!(pushed, acknowledged, "every acknowledged push, once");
    // Crash the list's primary, found the way every node finds it: the ring
    // over the members (100 virtual nodes each without a memory limit).
    let mut ring = hive_ring::Ring::<String>::new();
    for node in &nodes {
        ring.add(node.id().to_owned(), hive_ring::vnodes_for_mem_limit(0));
    }
    let primary = ring.owner(b"g6:l:shared").expect("a primary").clone();
    let index = nodes
        .iter()
        .position(|node| node.id() == primary)
        .expect("the primary is a node");
    drop(nodes.remove(index));
    settle(&nodes).await;
    for node in &nodes {
        let after = ListStore::<u64>::new(&node.cache(), "g6")
            .lrange("shared", 0, -1)
            .await
            .unwrap();
        assert_eq!(after, before, "the order survives on the replicas");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_set_through_one_node_expires_through_another() {
    let nodes = cluster(3, 2).await;
    let writer = ValueStore::<u32>::new(&nodes[0].cache(), "ttl");
    let reader = ValueStore::<u32>::new(&nodes[1].cache(), "ttl");
    let members = SetStore::new(&nodes[2].cache(), "ttl");
    writer
        .set_with_ttl("k", &7, Duration::from_millis(400))
        .await
        .unwrap();
    SetStore::new(&nodes[0].cache(), "ttl")
        .sadd("s", "stays")
        .await
        .unwrap();
    SetStore::new(&nodes[0].cache(), "ttl")
        .sadd("s", "goes")
        .await
        .unwrap();
    SetStore::new(&nodes[0].cache(), "ttl")
        .sexpire_member("s", "goes", Duration::from_millis(400))
        .await
        .unwrap();
    assert_eq!(reader.get("k").await, Ok(7));
    let mut before = members.smembers("s").await.unwrap();
    before.sort();
    assert_eq!(before, ["goes", "stays"]);
    assert!(
        reader
            .ttl("k")
            .await
            .unwrap()
            .is_some_and(|ttl| ttl <= Duration::from_millis(400))
    );
    // The member's TTL was set a little later than the key's: poll for each.
    let deadline = Instant::now() + Duration::from_secs(10);
    while reader.get("k").await != Err(Error::NotFound) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reader.get("k").await, Err(Error::NotFound));
    let stays = Ok(vec!["stays".to_owned()]);
    while members.smembers("s").await != stays && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(members.smembers("s").await, stays);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g5_tombstones_are_collected_once_nothing_can_bring_an_older_copy() {
    // Spec: cluster.md G5 — tombstones stay until every owner has them, then go.
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let seeds: Vec<&Node> = nodes.iter().collect();
        let config = Config {
            tombstone_retention: Duration::from_millis(300),
            ..config(&seeds, 2)
        };
        nodes.push(Node::start(config).await.unwrap());
    }
    settle(&nodes).await;
    let values = ValueStore::<u64>::new(&nodes[0].cache(), "gc");
    for i in 0..50u64 {
        values.set(&format!("k{i}"), &i).await.unwrap();
    }
    for i in 0..50u64 {
        values.del(&format!("k{i}")).await.unwrap();
    }
    assert!(nodes.iter().all(|node| node.status().keys == 0));
    assert!(
        nodes.iter().all(|node| node.status().memory_bytes > 0),
        "tombstones are held at first"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while nodes.iter().any(|node| node.status().memory_bytes > 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        nodes.iter().all(|node| node.status().memory_bytes == 0),
        "tombstones collected"
    );
    for i in 0..50u64 {
        assert_eq!(values.get(&format!("k{i}")).await, Err(Error::NotFound));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g5_tombstones_are_kept_while_a_member_is_away_and_collected_once_it_is_back() {
    // Spec: cluster.md G5 — a delete sticks across any pause or partition
    // shorter than reconnect_timeout, so tombstones outlive a failed member's
    // absence however long their retention; and they are reported. Before,
    // they went `tombstone_retention` after the delete, and a paused member
    // came back with the deleted keys.
    let retention = Duration::from_millis(300);
    let mut nodes = Vec::new();
    for i in 0..3 {
        let seeds: Vec<&Node> = nodes.iter().collect();
        let config = Config {
            node_id: format!("node-{i}"),
            tombstone_retention: retention,
            ..config(&seeds, 2)
        };
        nodes.push(Node::start(config).await.unwrap());
    }
    settle(&nodes).await;
    let values = ValueStore::<u64>::new(&nodes[0].cache(), "away");
    for i in 0..50u64 {
        values.set(&format!("k{i}"), &i).await.unwrap();
    }
    let away = nodes.pop().expect("three nodes");
    let again = Config {
        node_id: "node-2".into(),
        bind_port: away.gossip_addr().expect("clustered").port(),
        rpc_port: away.rpc_addr().expect("clustered").port(),
        tombstone_retention: retention,
        ..config(&[&nodes[0]], 2)
    };
    drop(away);
    settle(&nodes).await; // the survivors declared it failed
    for i in 0..50u64 {
        values.del(&format!("k{i}")).await.unwrap();
    }
    let tombstones =
        |nodes: &[Node]| -> u64 { nodes.iter().map(|node| node.status().tombstones).sum() };
    assert_eq!(tombstones(&nodes), 100, "each delete buried on both owners");
    // Ten retentions later, with housekeeping passes in between, they stay.
    let watch_until = Instant::now() + retention * 10;
    while Instant::now() < watch_until {
        assert_eq!(
            tombstones(&nodes),
            100,
            "a tombstone went while a member was away"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Back (as a new incarnation): once everything settled they go.
    nodes.push(start_at_its_old_ports(again).await);
    settle(&nodes).await;
    let deadline = Instant::now() + READY;
    while tombstones(&nodes) > 0 {
        assert!(
            Instant::now() < deadline,
            "tombstones never collected: {}",
            tombstones(&nodes)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for node in &nodes {
        let reader = ValueStore::<u64>::new(&node.cache(), "away");
        for i in 0..50u64 {
            assert_eq!(reader.get(&format!("k{i}")).await, Err(Error::NotFound));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_settings_of_api_md_form_a_cluster_and_detect_a_crash() {
    // Exactly the fields api.md's example sets; everything else default (the
    // LAN gossip preset, 1 s gossip interval).
    let start = async |seeds: Vec<String>| {
        Node::start(Config {
            mode: Mode::Cluster,
            bind_addr: "127.0.0.1".into(),
            bind_port: 0,
            seeds,
            replication_factor: 2,
            ..Default::default()
        })
        .await
        .expect("node starts")
    };
    let first = start(vec![]).await;
    let seed = first.gossip_addr().unwrap().to_string();
    let second = start(vec![seed.clone()]).await;
    let third = start(vec![seed]).await;
    for node in [&first, &second, &third] {
        node.wait_ready(3, Duration::from_secs(30)).await.unwrap();
    }
    let values = ValueStore::<u32>::new(&first.cache(), "defaults");
    for i in 0..50 {
        values.set(&format!("k{i}"), &i).await.unwrap();
    }
    drop(third);
    for node in [&first, &second] {
        node.wait_ready(2, Duration::from_secs(30)).await.unwrap();
    }
    let reader = ValueStore::<u32>::new(&second.cache(), "defaults");
    for i in 0..50 {
        assert_eq!(reader.get(&format!("k{i}")).await, Ok(i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_a_graceful_leave_with_two_copies_fails_no_write() {
    // Spec: cluster.md G2 and G4 — while a node hands its keys off and
    // leaves, writes through the others keep succeeding, and every one is
    // kept. Before, the leaving node refused replicas from the moment it
    // began, while its peers still counted it an owner: their writes failed.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let mut nodes = cluster(3, 2).await;
    let running = Arc::new(AtomicBool::new(true));
    let acks = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = nodes[..2]
        .iter()
        .enumerate()
        .map(|(w, node)| {
            let (hashes, running, acks) = (
                HashStore::<u64>::new(&node.cache(), "g4l"),
                running.clone(),
                acks.clone(),
            );
            tokio::spawn(async move {
                let (mut acknowledged, mut failed) = (Vec::new(), Vec::new());
                let mut round = 0u64;
                while running.load(Ordering::SeqCst) {
                    for key in 0..40u64 {
                        let field = format!("w{w}r{round}");
                        match hashes.hset(&format!("k{key}"), &field, &round).await {
                            Ok(_) => {
                                acks.fetch_add(1, Ordering::SeqCst);
                                acknowledged.push((key, field, round));
                            }
                            Err(err) => failed.push(format!("k{key}.{field}: {err}")),
                        }
                    }
                    round += 1;
                }
                (acknowledged, failed)
            })
        })
        .collect();
    let deadline = Instant::now() + READY;
    while acks.load(Ordering::SeqCst) < 200 {
        assert!(Instant::now() < deadline, "the writers make no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let leaving = nodes.pop().unwrap();
    leaving.shutdown().await.unwrap();
    settle(&nodes).await;
    let settled_at = acks.load(Ordering::SeqCst);
    while acks.load(Ordering::SeqCst) < settled_at + 200 {
        assert!(
            Instant::now() < deadline,
            "the writers stopped after the leave"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.store(false, Ordering::SeqCst);
    for writer in writers {
        let (acknowledged, failed) = writer.await.unwrap();
        assert!(
            failed.is_empty(),
            "{} writes failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        assert!(!acknowledged.is_empty());
        for node in &nodes {
            let reader = HashStore::<u64>::new(&node.cache(), "g4l");
            for (key, field, round) in &acknowledged {
                assert_eq!(
                    reader.hget(&format!("k{key}"), field).await,
                    Ok(*round),
                    "k{key}.{field} through {}",
                    node.id()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_a_graceful_leave_under_writes_keeps_every_acknowledged_write() {
    // Spec: cluster.md G2 — writes keep arriving (through another node) while a
    // node hands its keys off and leaves; none that was acknowledged is lost,
    // and fields written before the hand-off stay beside those written during.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let mut nodes = cluster(3, 1).await;
    let hashes = HashStore::<u64>::new(&nodes[0].cache(), "g2w");
    for key in 0..60u64 {
        hashes
            .hset(&format!("k{key}"), "before", &key)
            .await
            .unwrap();
    }
    let running = Arc::new(AtomicBool::new(true));
    let writer = {
        let (hashes, running) = (hashes.clone(), running.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut round = 0u64;
            while running.load(Ordering::SeqCst) {
                for key in 0..60u64 {
                    let field = format!("f{round}");
                    if hashes
                        .hset(&format!("k{key}"), &field, &round)
                        .await
                        .is_ok()
                    {
                        acknowledged.push((key, field, round));
                    }
                }
                round += 1;
            }
            acknowledged
        })
    };
    let leaving = nodes.pop().unwrap();
    leaving.shutdown().await.unwrap();
    settle(&nodes).await;
    running.store(false, Ordering::SeqCst);
    let acknowledged = writer.await.unwrap();
    assert!(!acknowledged.is_empty());
    let reader = HashStore::<u64>::new(&nodes[1].cache(), "g2w");
    for key in 0..60u64 {
        assert_eq!(
            reader.hget(&format!("k{key}"), "before").await,
            Ok(key),
            "k{key}: the old fields stay"
        );
    }
    for (key, field, round) in acknowledged {
        assert_eq!(
            reader.hget(&format!("k{key}"), &field).await,
            Ok(round),
            "k{key}.{field}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_written_and_read_concurrently_through_another_node_all_arrive() {
    // 64 values of 3 MiB, written and read concurrently through one node, are
    // more than any one peer message holds (65 MiB): forwarded writes,
    // replicated entries and batched read replies must each stay under it.
    let nodes = cluster(2, 2).await;
    let values = ValueStore::<String>::new(&nodes[0].cache(), "big");
    let value = |i: usize| format!("{i:>4}{}", "v".repeat(3 << 20));
    let writes: Vec<_> = (0..64)
        .map(|i| {
            let values = values.clone();
            tokio::spawn(async move { values.set(&format!("k{i}"), &value(i)).await })
        })
        .collect();
    for (i, written) in writes.into_iter().enumerate() {
        assert_eq!(written.await.unwrap(), Ok(()), "k{i}");
    }
    for node in &nodes {
        let values = ValueStore::<String>::new(&node.cache(), "big");
        let reads: Vec<_> = (0..64)
            .map(|i| {
                let values = values.clone();
                tokio::spawn(async move { values.get(&format!("k{i}")).await })
            })
            .collect();
        for (i, read) in reads.into_iter().enumerate() {
            let read = read.await.unwrap();
            assert!(read.as_ref() == Ok(&value(i)), "k{i} through {}", node.id());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_never_grows_past_max_entry_bytes() {
    // Every key stays small enough to replicate: a push past the limit is
    // refused on the primary before anything changes, on every replica alike.
    let limited = |seeds: &[&Node]| Config {
        max_entry_bytes: 64 * 1024,
        max_value_bytes: 16 * 1024,
        ..config(seeds, 2)
    };
    let first = Node::start(limited(&[])).await.unwrap();
    let second = Node::start(limited(&[&first])).await.unwrap();
    let nodes = [first, second];
    settle(&nodes).await;
    let lists = ListStore::<String>::new(&nodes[0].cache(), "capped");
    let element = "e".repeat(8 * 1024);
    let mut pushed = 0;
    let refusal = loop {
        match lists.rpush("list", &element).await {
            Ok(()) => pushed += 1,
            Err(err) => break err,
        }
        assert!(pushed < 100, "64 KiB never filled up");
    };
    assert!(matches!(refusal, Error::InvalidArgument(_)), "{refusal:?}");
    assert!(pushed >= 5, "only {pushed} elements fit");
    for node in &nodes {
        let lists = ListStore::<String>::new(&node.cache(), "capped");
        assert_eq!(
            lists.llen("list").await,
            Ok(pushed),
            "through {}",
            node.id()
        );
    }
}

/// Starts a member with a fixed id and a data directory, joining `seeds`.
async fn member_with_dir(
    seeds: &[&Node],
    id: &str,
    dir: &std::path::Path,
    retention: Duration,
) -> Node {
    Node::start(Config {
        node_id: id.into(),
        data_dir: Some(dir.to_owned()),
        tombstone_retention: retention,
        ..config(seeds, 2)
    })
    .await
    .expect("node starts")
}

/// Asserts what every node answers for keys `k0..k300`: the first hundred
/// deleted, the next rewritten to "v2", the rest still "v1".
async fn assert_newest_state(nodes: &[&Node]) {
    for node in nodes {
        let values = ValueStore::<String>::new(&node.cache(), "v");
        for i in 0..300 {
            let got = values.get(&format!("k{i}")).await;
            let want = match i {
                0..100 => Err(Error::NotFound),
                100..200 => Ok("v2".to_owned()),
                _ => Ok("v1".to_owned()),
            };
            assert_eq!(got, want, "k{i} through {}", node.id());
        }
    }
}

/// Starts node-a, node-b and node-c (node-c with a data directory in
/// `dir`), all with `retention`, and waits until they settled.
async fn three_with_a_data_dir(dir: &std::path::Path, retention: Duration) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in ["node-a", "node-b"] {
        let seeds: Vec<&Node> = nodes.iter().collect();
        nodes.push(
            Node::start(Config {
                node_id: id.into(),
                tombstone_retention: retention,
                ..config(&seeds, 2)
            })
            .await
            .unwrap(),
        );
    }
    let seeds: Vec<&Node> = nodes.iter().collect();
    let c = member_with_dir(&seeds, "node-c", dir, retention).await;
    nodes.push(c);
    settle(&nodes).await;
    nodes
}

/// Writes `k0..k300` = "v1", has node-c save a snapshot, then deletes the
/// first hundred and rewrites the next hundred to "v2".
async fn save_then_change(nodes: &[Node]) {
    let values = ValueStore::<String>::new(&nodes[0].cache(), "v");
    for i in 0..300 {
        values
            .set(&format!("k{i}"), &"v1".to_owned())
            .await
            .unwrap();
    }
    let saved = nodes[2].save_snapshot().await.unwrap();
    assert!(saved.entries > 0, "node-c holds copies");
    for i in 0..100 {
        values.del(&format!("k{i}")).await.unwrap();
    }
    for i in 100..200 {
        values
            .set(&format!("k{i}"), &"v2".to_owned())
            .await
            .unwrap();
    }
}

/// Crashes node-c (the last node), waits for the others to settle without
/// it, restarts it from `dir`, and waits for all three.
async fn crash_and_restart_c(nodes: &mut Vec<Node>, dir: &std::path::Path, retention: Duration) {
    drop(nodes.pop()); // kill -9: no save, no hand-off
    settle(nodes).await;
    let seeds: Vec<&Node> = nodes.iter().collect();
    let c = member_with_dir(&seeds, "node-c", dir, retention).await;
    nodes.push(c);
    settle(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_from_its_snapshot_answers_the_newest_state_everywhere() {
    // Spec: cluster.md G1, G5. node-c saves, the others then delete and
    // rewrite keys, node-c crashes and restarts from its older snapshot: its
    // copies are offered version by version, so tombstones and newer
    // versions win, and every node answers the newest state.
    let retention = Duration::from_secs(60);
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = three_with_a_data_dir(dir.path(), retention).await;
    save_then_change(&nodes).await;
    crash_and_restart_c(&mut nodes, dir.path(), retention).await;
    assert_newest_state(&nodes.iter().collect::<Vec<_>>()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_older_than_tombstone_retention_is_discarded_so_deleted_keys_stay_deleted() {
    // The deletes come after the save, and their tombstones are collected
    // everywhere once the retention passed with every member present: a
    // snapshot that old would bring the keys back if it were loaded.
    let retention = Duration::from_millis(800);
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = three_with_a_data_dir(dir.path(), retention).await;
    save_then_change(&nodes).await;
    let deadline = Instant::now() + READY;
    while nodes.iter().any(|node| node.status().tombstones > 0) {
        assert!(Instant::now() < deadline, "tombstones never collected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crash_and_restart_c(&mut nodes, dir.path(), retention).await;
    assert_newest_state(&nodes.iter().collect::<Vec<_>>()).await;
}
