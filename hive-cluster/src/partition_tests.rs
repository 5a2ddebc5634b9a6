//! Scenario: a partition splits the cluster, both sides keep serving, the
//! partition heals, and every node converges to one value per key, the one
//! with the greatest version (spec: cluster.md G7).
//!
//! The links are really cut (the in-memory transport drops every call across
//! them); membership is simulated by giving each side a view of itself, as
//! failure detection would, and the full view again after the heal, as the
//! rejoin would. Healing itself is the ordinary rebalance: each node sends the
//! keys it owned to the owners that were on the other side, and the receivers
//! keep the newer version.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use hive_store::{
    Clock, End, ExportedEntry, MockClock, Op, Reply, Store, StoreConfig, SystemClock,
};
use hive_transport::{
    MemoryClient, MemoryNetwork, MemoryServer, PeerClient, TransportError, TransportOptions,
};

use crate::error::ClusterError;
use crate::rebalance;
use crate::shared::{Handler, Shared};
use crate::view::{Peer, View};

const REPLICATION: usize = 2;

struct TestNode {
    shared: Arc<Shared<MemoryClient>>,
    _server: MemoryServer,
}

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 7000))
}

fn peer(n: u8) -> Peer {
    Peer {
        id: format!("node-{n}"),
        rpc_addr: addr(n),
        vnodes: 100,
        incarnation: 1,
    }
}

fn view_of(members: &[u8]) -> View {
    members
        .iter()
        .fold(View::new(REPLICATION), |view, &n| view.with(peer(n)))
}

fn start(network: &MemoryNetwork, n: u8) -> TestNode {
    start_with_clock(network, n, Arc::new(SystemClock))
}

fn start_with_clock(network: &MemoryNetwork, n: u8, clock: Arc<dyn Clock>) -> TestNode {
    start_with_store(network, n, StoreConfig::default(), clock)
}

fn start_with_store(
    network: &MemoryNetwork,
    n: u8,
    config: StoreConfig,
    clock: Arc<dyn Clock>,
) -> TestNode {
    let store = Arc::new(Store::with_clock(
        StoreConfig {
            tombstones: true,
            node_tag: u64::from(n),
            ..config
        },
        clock,
    ));
    let client = network.client(addr(n), TransportOptions::default());
    let shared = Arc::new(Shared::new(
        format!("node-{n}"),
        store,
        client,
        View::new(REPLICATION),
        Duration::from_secs(2),
        TransportOptions::default().max_message_size,
    ));
    let server = network
        .serve(
            addr(n),
            Handler(shared.clone()),
            TransportOptions::default(),
        )
        .expect("serves");
    TestNode {
        shared,
        _server: server,
    }
}

fn set(value: &str) -> Op {
    Op::Set {
        value: Bytes::copy_from_slice(value.as_bytes()),
        ttl_ms: None,
    }
}

/// Sets every key of `keys` to `value` through `node`.
async fn set_all(node: &TestNode, keys: &[Vec<u8>], value: &str) {
    for key in keys {
        node.shared.execute(key, set(value)).await.expect("written");
    }
}

/// Returns every owner's copy of `key` under `view`.
fn copies(nodes: &[TestNode], view: &View, key: &[u8]) -> Vec<Option<ExportedEntry>> {
    view.owners(key)
        .iter()
        .map(|id| {
            let node = nodes
                .iter()
                .find(|node| node.shared.id == **id)
                .expect("an owner");
            node.shared.store.export(key).expect("exports")
        })
        .collect()
}

#[tokio::test]
async fn g7_after_a_partition_heals_every_node_converges_to_the_newest_version() {
    let network = MemoryNetwork::new();
    let nodes: Vec<TestNode> = (1..=4).map(|n| start(&network, n)).collect();
    let everyone = [1, 2, 3, 4];
    let (left, right) = ([1, 2], [3, 4]);
    for node in &nodes {
        node.shared.set_view(view_of(&everyone));
    }
    let keys: Vec<Vec<u8>> = (0..200).map(|i| format!("key-{i}").into_bytes()).collect();
    set_all(&nodes[0], &keys, "before").await;

    // The split: calls across it fail, and each side sees only itself.
    for a in left {
        for b in right {
            network.cut(addr(a), addr(b));
        }
    }
    let (left_view, right_view) = (view_of(&left), view_of(&right));
    for (i, node) in nodes.iter().enumerate() {
        node.shared.set_view(if i < 2 {
            left_view.clone()
        } else {
            right_view.clone()
        });
    }
    // Both sides keep serving: every key has owners on each side now. Some
    // keys are written on one side only, some on both (the right side later).
    for (i, key) in keys.iter().enumerate() {
        if i % 3 != 2 {
            let reply = nodes[0]
                .shared
                .execute(key, set(&format!("left-{i}")))
                .await;
            assert_eq!(reply.expect("the left side serves"), Reply::Unit);
        }
    }
    for (i, key) in keys.iter().enumerate() {
        if i % 3 != 0 {
            let reply = nodes[3]
                .shared
                .execute(key, set(&format!("right-{i}")))
                .await;
            assert_eq!(reply.expect("the right side serves"), Reply::Unit);
        }
    }
    // Across the cut nothing gets through.
    let across = nodes[0]
        .shared
        .client
        .status(addr(3), Duration::from_millis(100))
        .await;
    assert!(
        matches!(across, Err(TransportError::Unreachable { .. })),
        "{across:?}"
    );

    // The heal: links back, everyone sees everyone, and data moves as after any
    // membership change.
    network.heal_all();
    let full = view_of(&everyone);
    for (i, node) in nodes.iter().enumerate() {
        let old = if i < 2 { &left_view } else { &right_view };
        node.shared.set_view(full.clone());
        rebalance::run(&node.shared, old, &full)
            .await
            .expect("the heal transfers");
    }

    for (i, key) in keys.iter().enumerate() {
        let copies = copies(&nodes, &full, key);
        let first = copies[0].clone().expect("the key survives");
        assert!(
            copies.iter().all(|copy| copy.as_ref() == Some(&first)),
            "{i}: owners disagree: {copies:?}"
        );
        // Last writer wins: the right side wrote last where both sides wrote.
        let expected = match i % 3 {
            0 => format!("left-{i}"),
            _ => format!("right-{i}"),
        };
        for node in &nodes {
            let reply = node
                .shared
                .execute(key, Op::Get)
                .await
                .expect("reads after the heal");
            assert_eq!(
                reply,
                Reply::Bytes(Bytes::from(expected.clone())),
                "key-{i} through {}",
                node.shared.id
            );
        }
    }
}

#[tokio::test]
async fn a_node_waits_for_every_member_to_settle_on_its_very_view() {
    // Spec: cluster.md G4 — a new owner falls back to the earlier owners until
    // the keys have arrived; it knows they have once every member reports it
    // finished moving data for the same view (not after a fixed time).
    let network = MemoryNetwork::new();
    let nodes: Vec<TestNode> = (1..=2).map(|n| start(&network, n)).collect();
    let both = nodes[0].shared.set_view(view_of(&[1, 2]));
    let other = &nodes[1].shared;
    let wait = || {
        nodes[0]
            .shared
            .wait_for_members(&both, true, Duration::from_millis(10))
    };
    let still_waiting = |label: &'static str| async move {
        // A bounded negative check: it must not return over many polls.
        let waited = tokio::time::timeout(Duration::from_millis(200), wait()).await;
        assert!(waited.is_err(), "returned while {label}");
    };
    // node-2 sees another view, settled: not the same placement.
    let alone = other.set_view(view_of(&[2]));
    other.settled_epoch.store(alone.epoch(), Ordering::Release);
    still_waiting("node-2 settled on another view").await;
    // node-2 sees the same view but is still moving data for it.
    other.set_view(view_of(&[1, 2]));
    still_waiting("node-2 had not settled").await;
    other
        .settled_epoch
        .store(other.view().epoch(), Ordering::Release);
    tokio::time::timeout(Duration::from_secs(5), wait())
        .await
        .expect("returns once node-2 settled on the same view");
}

#[tokio::test]
async fn catch_up_refuses_to_guess_while_an_earlier_owner_is_unreachable() {
    // Spec: cluster.md G4/G5 — a primary that does not know a key and cannot
    // ask the key's earlier owner must not run the operation on an empty key.
    let network = MemoryNetwork::new();
    let nodes: Vec<TestNode> = (1..=2).map(|n| start(&network, n)).collect();
    let both = view_of(&[1, 2]);
    let key = (0..)
        .map(|i| format!("key-{i}").into_bytes())
        .find(|key| both.primary(key).map(String::as_str) == Some("node-1"))
        .expect("node-1 is primary of some key");
    let node = &nodes[0].shared;
    node.set_view(view_of(&[2])); // remembered below as the earlier view: node-2 owned it
    node.set_view(both.clone());
    network.cut(addr(1), addr(2));
    let refused = node.execute(&key, Op::Get).await;
    assert!(
        matches!(refused, Err(ClusterError::Unavailable(_))),
        "{refused:?}"
    );
    // Once membership declares node-2 failed, there is nobody left to ask.
    node.mark_failed("node-2", true);
    let answered = node.execute(&key, Op::Get).await;
    assert!(
        matches!(
            answered,
            Err(ClusterError::Store(hive_store::StoreError::NotFound))
        ),
        "{answered:?}"
    );
}

#[tokio::test]
async fn a_write_superseded_by_a_replicas_newer_version_runs_again_on_top_of_it() {
    // Spec: cluster.md G1 with G7 — an acknowledged write must survive
    // convergence. A replica whose clock runs ahead took a write on its side of
    // a partition; after the heal, a push through the primary must not be
    // acknowledged on a state that loses to the replica's newer version.
    let network = MemoryNetwork::new();
    let ahead = SystemClock.now_ms() + 10 * 60 * 1000;
    let nodes = [
        start(&network, 1),
        start_with_clock(&network, 2, Arc::new(MockClock::new(ahead))),
    ];
    let both = view_of(&[1, 2]);
    let key = (0..)
        .map(|i| format!("list-{i}").into_bytes())
        .find(|key| both.primary(key).map(String::as_str) == Some("node-1"))
        .expect("node-1 is primary of some key");
    for node in &nodes {
        node.shared.set_view(both.clone());
    }
    network.cut(addr(1), addr(2));
    nodes[1].shared.set_view(view_of(&[2]));
    let pushed = nodes[1].shared.execute(&key, push("right")).await;
    assert_eq!(pushed.expect("the right side serves"), Reply::Count(1));

    network.heal_all();
    nodes[1].shared.set_view(both.clone());
    let pushed = nodes[0].shared.execute(&key, push("left")).await;
    assert_eq!(
        pushed.expect("the primary serves"),
        Reply::Count(2),
        "the push runs on the replica's newer list"
    );
    let copies = copies(&nodes, &both, &key);
    assert!(copies[0].is_some() && copies[0] == copies[1], "{copies:?}");
    let everything = Op::LRange { start: 0, stop: -1 };
    for node in &nodes {
        let list = node.shared.execute(&key, everything.clone()).await;
        assert_eq!(
            list.expect("reads"),
            Reply::List(vec![Bytes::from("right"), Bytes::from("left")]),
            "through {}",
            node.shared.id
        );
    }
}

#[tokio::test]
async fn concurrent_writes_superseded_by_a_replicas_newer_version_each_run_again_once() {
    // Spec: cluster.md G1 with G7 — every acknowledged write is in every copy,
    // once. When several writes in flight meet a replica's newer version, the
    // first to fetch it adopts it, which discards the local effects of all of
    // them: each must run again on top, not only the one that adopted it.
    for seed in 0..8 {
        let network = MemoryNetwork::seeded(seed);
        let ahead = SystemClock.now_ms() + 10 * 60 * 1000;
        let nodes = [
            start(&network, 1),
            start_with_clock(&network, 2, Arc::new(MockClock::new(ahead))),
        ];
        let both = view_of(&[1, 2]);
        let key = (0..)
            .map(|i| format!("list-{i}").into_bytes())
            .find(|key| both.primary(key).map(String::as_str) == Some("node-1"))
            .expect("node-1 is primary of some key");
        for node in &nodes {
            node.shared.set_view(both.clone());
        }
        network.cut(addr(1), addr(2));
        nodes[1].shared.set_view(view_of(&[2]));
        let push = |value: String| Op::Push {
            end: End::Back,
            values: vec![Bytes::from(value)],
        };
        nodes[1]
            .shared
            .execute(&key, push("right".into()))
            .await
            .expect("the right side serves");
        network.heal_all();
        nodes[1].shared.set_view(both.clone());

        let pushes = (0..32).map(|i| nodes[0].shared.execute(&key, push(format!("left-{i}"))));
        let outcomes = futures::future::join_all(pushes).await;
        let acknowledged: Vec<String> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, outcome)| outcome.is_ok())
            .map(|(i, _)| format!("left-{i}"))
            .collect();
        assert_eq!(acknowledged.len(), 32, "seed {seed}: {outcomes:?}");
        for node in &nodes {
            let Some(entry) = node.shared.store.export(&key).expect("exports") else {
                panic!("seed {seed}: {} lost the list", node.shared.id);
            };
            let local = Store::new(StoreConfig::default());
            local.apply(entry).expect("applies");
            let Reply::List(items) = local
                .execute(&key, Op::LRange { start: 0, stop: -1 })
                .expect("reads")
            else {
                panic!("not a list");
            };
            let mut items: Vec<String> = items
                .iter()
                .map(|item| String::from_utf8_lossy(item).into_owned())
                .collect();
            items.sort();
            let mut expected = acknowledged.clone();
            expected.push("right".into());
            expected.sort();
            assert_eq!(
                items, expected,
                "seed {seed}: the copy on {}",
                node.shared.id
            );
        }
    }
}

#[tokio::test]
async fn a_write_that_may_have_run_is_indeterminate_and_one_that_surely_did_not_is_unavailable() {
    // Spec: cluster.md G1, api.md `Unavailable` / `Indeterminate`. Before the
    // split, both were `Unavailable` (hived's TRYAGAIN, which clients retry
    // on their own), and a retried INCR that had run counted twice.
    let network = MemoryNetwork::new();
    let nodes: Vec<TestNode> = (1..=2).map(|n| start(&network, n)).collect();
    let both = view_of(&[1, 2]);
    for node in &nodes {
        node.shared.set_view(both.clone());
    }
    let key = (0..)
        .map(|i| format!("counter-{i}").into_bytes())
        .find(|key| both.primary(key).map(String::as_str) == Some("node-1"))
        .expect("node-1 is primary of some key");
    let incr = Op::IncrBy { delta: 1 };
    assert_eq!(
        nodes[0]
            .shared
            .execute(&key, incr.clone())
            .await
            .expect("counts"),
        Reply::Integer(1)
    );
    network.cut(addr(1), addr(2));
    let value = |node: &TestNode| node.shared.store.execute(&key, Op::Get).ok();

    // Through the primary: applied there, its replica out of reach.
    let unconfirmed = nodes[0].shared.execute(&key, incr.clone()).await;
    assert!(
        matches!(unconfirmed, Err(ClusterError::Indeterminate(_))),
        "seed {}: {unconfirmed:?}",
        network.seed()
    );
    assert_eq!(
        value(&nodes[0]),
        Some(Reply::Bytes(Bytes::from("2"))),
        "it ran"
    );

    // Through the other node: never reaches the primary.
    let unsent = nodes[1].shared.execute(&key, incr).await;
    assert!(
        matches!(unsent, Err(ClusterError::Unavailable(_))),
        "seed {}: {unsent:?}",
        network.seed()
    );
    assert_eq!(
        value(&nodes[0]),
        Some(Reply::Bytes(Bytes::from("2"))),
        "it did not run"
    );
}

#[tokio::test]
async fn a_write_during_a_join_reaches_the_owners_of_the_earlier_view_too() {
    // Spec: cluster.md G1 — replica sets change with views, which nodes learn
    // at different moments. While node-1 still remembers the view before
    // node-3 joined, a write it acknowledges must also be on the key's owner
    // in that view: nodes that have not seen the join fall back on it if
    // node-1 crashes. Before, only node-3 (the owner in the new view) got it.
    let network = MemoryNetwork::new();
    let nodes: Vec<TestNode> = (1..=3).map(|n| start(&network, n)).collect();
    let (before, after) = (view_of(&[1, 2]), view_of(&[1, 2, 3]));
    let owners = |view: &View, key: &[u8]| -> Vec<String> {
        view.owners(key).into_iter().cloned().collect()
    };
    let key = (0..)
        .map(|i| format!("key-{i}").into_bytes())
        .find(|key| {
            owners(&before, key) == ["node-1", "node-2"]
                && owners(&after, key) == ["node-1", "node-3"]
        })
        .expect("a key node-3 takes over from node-2");
    nodes[0].shared.set_view(before.clone());
    nodes[0].shared.set_view(after.clone());
    for node in &nodes[1..] {
        node.shared.set_view(after.clone());
    }
    nodes[0]
        .shared
        .execute(&key, set("during the join"))
        .await
        .expect("written");
    for node in &nodes[1..] {
        let copy = node.shared.store.execute(&key, Op::Get);
        assert_eq!(
            copy,
            Ok(Reply::Bytes(Bytes::from("during the join"))),
            "on {}",
            node.shared.id
        );
    }
    // Once every member settled, the earlier view is forgotten: only the
    // owners get writes again.
    nodes[0].shared.forget_earlier();
    nodes[0]
        .shared
        .execute(&key, set("settled"))
        .await
        .expect("written");
    assert_eq!(
        nodes[1].shared.store.execute(&key, Op::Get),
        Ok(Reply::Bytes(Bytes::from("during the join")))
    );
}

#[tokio::test]
async fn a_copy_the_receiver_refuses_stays_here_and_the_rebalance_completes() {
    // Spec: cluster.md "Rebalancing" — a failed transfer never drops data; but
    // one entry a receiver can never take (its limits, here a smaller value
    // limit) must neither fail the rest of its batch nor make the rebalance
    // retry forever (which kept the cluster from settling, so tombstones,
    // readiness and memory release stopped for good). Before, the whole batch
    // was refused and `rebalance::run` failed on every attempt.
    let network = MemoryNetwork::new();
    let small = StoreConfig {
        limits: hive_store::Limits {
            max_value_len: 1_000,
            ..hive_store::Limits::default()
        },
        ..StoreConfig::default()
    };
    let nodes = [
        start(&network, 1),
        start_with_store(&network, 2, small, Arc::new(SystemClock)),
    ];
    let (alone, both) = (view_of(&[1]), view_of(&[1, 2]));
    nodes[0].shared.set_view(alone.clone());
    let moving: Vec<Vec<u8>> = (0..)
        .map(|i| format!("key-{i}").into_bytes())
        .filter(|key| both.owners(key).len() == 2)
        .take(50)
        .collect();
    let big = moving[7].clone();
    for key in &moving {
        let value = if *key == big {
            "x".repeat(5_000)
        } else {
            "small".into()
        };
        nodes[0]
            .shared
            .execute(key, set(&value))
            .await
            .expect("written");
    }
    // node-2 joins: node-1 (primary of some keys, replica of the others in
    // the new view) sends it every key.
    nodes[1].shared.set_view(both.clone());
    assert_eq!(
        rebalance::run(&nodes[0].shared, &alone, &both).await,
        Ok(())
    );
    for key in &moving {
        let there = nodes[1].shared.store.execute(key, Op::Get);
        if *key == big {
            assert!(there.is_err(), "the big value is refused: {there:?}");
        } else {
            assert_eq!(there, Ok(Reply::Bytes(Bytes::from("small"))));
        }
        assert!(
            nodes[0].shared.store.export(key).unwrap().is_some(),
            "kept on node-1"
        );
    }
    assert_eq!(
        nodes[0].shared.transfer_refusals.load(Ordering::Relaxed),
        1,
        "the refusal is counted"
    );
}

#[tokio::test]
async fn a_copy_is_not_dropped_on_the_word_of_a_receiver_that_does_not_own_it() {
    // Spec: cluster.md G1 — found by `cargo xtask chaos --seed 5`: views
    // differ for a while after a change, and each node dropped its copies on
    // the confirmation of receivers that, by their own views, did not own the
    // keys either and moved them on in turn. A list could end up on one node
    // only, and its crash lost every acknowledged push. node-1 leaves for a
    // view without it; node-2 still sees node-1 and so owns only some of the
    // keys node-1 hands it.
    let network = MemoryNetwork::new();
    let nodes: Vec<TestNode> = (1..=3).map(|n| start(&network, n)).collect();
    let (everyone, without_1) = (view_of(&[1, 2, 3]), view_of(&[2, 3]));
    for node in &nodes {
        node.shared.set_view(everyone.clone());
    }
    let keys: Vec<Vec<u8>> = (0..)
        .map(|i| format!("key-{i}").into_bytes())
        .filter(|key| everyone.owners(key).iter().any(|owner| *owner == "node-1"))
        .take(40)
        .collect();
    set_all(&nodes[0], &keys, "v").await;
    nodes[0].shared.set_view(without_1.clone());
    nodes[2].shared.set_view(without_1.clone());
    assert_eq!(
        rebalance::run(&nodes[0].shared, &everyone, &without_1).await,
        Ok(())
    );
    let mut kept = 0;
    for key in &keys {
        let node_2_owns = everyone.owners(key).iter().any(|owner| *owner == "node-2");
        let on_node_1 = nodes[0].shared.store.export(key).unwrap().is_some();
        assert_eq!(
            on_node_1,
            !node_2_owns,
            "{}: node-1 keeps exactly the copies node-2 does not own by its view",
            String::from_utf8_lossy(key)
        );
        kept += usize::from(on_node_1);
        for node in &nodes[1..] {
            assert_eq!(
                node.shared.store.execute(key, Op::Get),
                Ok(Reply::Bytes(Bytes::from("v"))),
                "{} on {}",
                String::from_utf8_lossy(key),
                node.shared.id
            );
        }
    }
    assert!(
        kept > 0 && kept < keys.len(),
        "{kept} of {} kept",
        keys.len()
    );
    assert_eq!(
        nodes[0].shared.transfer_refusals.load(Ordering::Relaxed),
        0,
        "views that differ are not refusals"
    );
}

#[tokio::test]
async fn a_scan_during_a_hand_over_lists_every_key_once_from_its_acting_primary() {
    // Spec: hived.md SCAN/KEYS/DBSIZE cover the whole cluster. While a join
    // is not yet agreed, the old primary still runs (and holds) the keys
    // moving away: it lists them, and the new primary, which may not have
    // them yet, does not. Before, each member listed the keys it was the
    // primary of in its view, and keys not yet moved were listed by nobody.
    let network = MemoryNetwork::new();
    let nodes: Vec<TestNode> = (1..=2).map(|n| start(&network, n)).collect();
    let (alone, both) = (Arc::new(view_of(&[1])), view_of(&[1, 2]));
    nodes[0].shared.set_view(view_of(&[1]));
    nodes[0].shared.set_agreed(alone.clone());
    let keys: Vec<Vec<u8>> = (0..100).map(|i| format!("key-{i}").into_bytes()).collect();
    set_all(&nodes[0], &keys, "v").await;
    for node in &nodes {
        node.shared.set_view(both.clone());
        node.shared.set_agreed(alone.clone());
    }
    assert!(
        keys.iter()
            .any(|key| both.primary(key).map(String::as_str) == Some("node-2")),
        "some keys move"
    );
    let mut listed: Vec<Bytes> = Vec::new();
    let mut counted = 0;
    for node in &nodes {
        let (found, shards) = nodes[0]
            .shared
            .primary_keys(&node.shared.id, 0)
            .await
            .expect("listed");
        listed.extend(found.into_iter().map(|(key, _)| key));
        for shard in 1..shards {
            let (found, _) = nodes[0]
                .shared
                .primary_keys(&node.shared.id, shard)
                .await
                .expect("listed");
            listed.extend(found.into_iter().map(|(key, _)| key));
        }
        counted += nodes[0]
            .shared
            .primary_count(&node.shared.id)
            .await
            .expect("counted");
    }
    listed.sort();
    let mut expected: Vec<Bytes> = keys.iter().map(|key| Bytes::copy_from_slice(key)).collect();
    expected.sort();
    assert_eq!(listed, expected, "every key, once");
    assert_eq!(counted, keys.len() as u64);
}

#[tokio::test]
async fn a_primary_answers_within_its_callers_deadline_so_not_run_stays_not_run() {
    // Spec: cluster.md G1 — deadlines nest. node-2 forwards a write to the
    // key's primary, node-1, which must first fetch the key from its earlier
    // owner node-3 — paused. node-1 gives up before node-2 does and says the
    // write did not run, so node-2 reports `Unavailable` (safe to retry)
    // rather than `Indeterminate`. Before, node-1 waited as long as node-2,
    // whose call timed out first: an outcome it could only call unknown.
    let network = MemoryNetwork::new();
    let nodes: Vec<TestNode> = (1..=3).map(|n| start(&network, n)).collect();
    let (before, now) = (view_of(&[2, 3]), view_of(&[1, 2, 3]));
    let key = (0..)
        .map(|i| format!("key-{i}").into_bytes())
        .find(|key| {
            before.primary(key).map(String::as_str) == Some("node-3")
                && now.primary(key).map(String::as_str) == Some("node-1")
        })
        .expect("a key moving from node-3 to node-1");
    nodes[0].shared.set_view(before.clone());
    for node in &nodes {
        node.shared.set_view(now.clone());
    }
    network.stall(addr(3));
    let forwarded = nodes[1].shared.execute(&key, set("v")).await;
    network.resume(addr(3));
    assert!(
        matches!(forwarded, Err(ClusterError::Unavailable(_))),
        "seed {}: {forwarded:?}",
        network.seed()
    );
    assert_eq!(
        nodes[0].shared.store.export(&key),
        Ok(None),
        "it did not run"
    );
}

#[tokio::test]
async fn a_member_out_of_reach_holds_up_only_the_keys_moving_from_it() {
    // Spec: cluster.md G4 — a key moves to its new primary once its old
    // primary sees the move, not once every member does. node-2 joins while
    // node-4, alive in the views, answers no RPC: keys moving from node-1 to
    // node-2 are served as soon as node-1 has the new view; keys moving from
    // node-4 wait for it. Before, agreement needed every member, and node-4
    // held up every hand-over, with no bound.
    let network = MemoryNetwork::new();
    let nodes: Vec<TestNode> = (1..=4).map(|n| start(&network, n)).collect();
    let (before, after) = (view_of(&[1, 3, 4]), view_of(&[1, 2, 3, 4]));
    let moving_from = |from: &str| {
        (0..)
            .map(|i| format!("key-{i}").into_bytes())
            .find(|key| {
                before.primary(key).map(String::as_str) == Some(from)
                    && after.primary(key).map(String::as_str) == Some("node-2")
                    && before.owners(key).contains(&&"node-4".to_string()) == (from == "node-4")
            })
            .expect("a key moving to node-2")
    };
    let (from_1, from_4) = (moving_from("node-1"), moving_from("node-4"));
    for node in &nodes {
        node.shared.set_view(before.clone());
        node.shared.set_agreed(Arc::new(before.clone()));
    }
    for node in &nodes[..3] {
        node.shared.set_view(after.clone());
    }
    network.isolate(addr(4));
    let agreeing = tokio::spawn({
        let shared = nodes[1].shared.clone();
        let after = after.clone();
        async move {
            shared
                .wait_for_members(&after, false, Duration::from_millis(10))
                .await;
        }
    });
    let served = nodes[1].shared.execute(&from_1, set("v")).await;
    assert_eq!(
        served.map_err(|err| err.to_string()),
        Ok(Reply::Unit),
        "seed {}",
        network.seed()
    );
    let held = nodes[1].shared.execute(&from_4, set("v")).await;
    assert!(
        matches!(held, Err(ClusterError::Unavailable(_))),
        "{held:?}"
    );
    assert!(!agreeing.is_finished(), "node-4 never answered");
    agreeing.abort();
}

/// Three nodes in one view, and a list whose primary is node-1, holding "a".
/// node-1's clock moves on only when the test says, so that its writes after
/// a heal are stamped later than the other side's.
async fn three_with_a_list_on_node_1() -> (MemoryNetwork, Arc<MockClock>, [TestNode; 3], Vec<u8>) {
    let network = MemoryNetwork::new();
    let clock = Arc::new(MockClock::new(SystemClock.now_ms()));
    let nodes = [
        start_with_clock(&network, 1, clock.clone()),
        start(&network, 2),
        start(&network, 3),
    ];
    let everyone = view_of(&[1, 2, 3]);
    let key = (0..)
        .map(|i| format!("list-{i}").into_bytes())
        .find(|key| everyone.primary(key).map(String::as_str) == Some("node-1"))
        .expect("node-1 is primary of some key");
    for node in &nodes {
        node.shared.set_view(everyone.clone());
    }
    nodes[0]
        .shared
        .execute(&key, push("a"))
        .await
        .expect("pushed");
    (network, clock, nodes, key)
}

/// Cuts node-1 off; node-2 and node-3 declare it failed, and push "b" to
/// `key` through node-2. What node-1 sees is up to the caller.
async fn cut_off_node_1_while_the_others_push_b(
    network: &MemoryNetwork,
    nodes: &[TestNode; 3],
    key: &[u8],
) {
    network.isolate(addr(1));
    for node in &nodes[1..] {
        node.shared.mark_failed("node-1", true);
        node.shared.set_view(view_of(&[2, 3]));
    }
    nodes[1]
        .shared
        .execute(key, push("b"))
        .await
        .expect("the other side serves");
}

fn push(value: &str) -> Op {
    Op::Push {
        end: End::Back,
        values: vec![Bytes::copy_from_slice(value.as_bytes())],
    }
}

#[tokio::test]
async fn a_primary_back_from_a_partition_builds_on_what_the_other_side_wrote() {
    // Spec: cluster.md G7 — a key written on one side only keeps that write.
    // node-1, the list's primary, is cut off; the other side takes a push;
    // after the heal node-1 is the primary again and takes the next push.
    // It must catch the list up from the members it had declared failed
    // first: they may have run it meanwhile. Before, node-1 had been the
    // list's primary in every view it knew, skipped the catch-up, pushed on
    // its own stale copy, and that newer version replaced the other side's
    // acknowledged push everywhere (found by `cargo xtask chaos`).
    let (network, clock, nodes, key) = three_with_a_list_on_node_1().await;
    let everyone = view_of(&[1, 2, 3]);

    // The split: node-1 alone, declared failed by the others, and vice versa.
    nodes[0].shared.mark_failed("node-2", true);
    nodes[0].shared.mark_failed("node-3", true);
    nodes[0].shared.set_view(view_of(&[1]));
    cut_off_node_1_while_the_others_push_b(&network, &nodes, &key).await;

    // The heal, as the driver takes it: members back, then the full view.
    network.rejoin(addr(1));
    nodes[0].shared.member_back(peer(2));
    nodes[0].shared.member_back(peer(3));
    for node in &nodes[1..] {
        node.shared.member_back(peer(1));
    }
    for node in &nodes {
        node.shared.set_view(everyone.clone());
    }
    clock.advance(1_000);
    nodes[0]
        .shared
        .execute(&key, push("c"))
        .await
        .expect("pushed after the heal");
    let list = nodes[0]
        .shared
        .execute(&key, Op::LRange { start: 0, stop: -1 })
        .await
        .expect("reads");
    assert_eq!(
        list,
        Reply::List(vec![Bytes::from("a"), Bytes::from("b"), Bytes::from("c")]),
        "seed {}",
        network.seed()
    );
}

#[tokio::test]
async fn a_primary_that_never_saw_the_partition_does_not_overwrite_what_the_other_side_wrote() {
    // Spec: cluster.md G1, G7 — found by `cargo xtask chaos --seed 5` (run P
    // in docs/reliability.md). Failure detection is not symmetric: node-1 is
    // cut off for less time than it takes to declare the others failed, while
    // they declare it failed and go on writing its list. node-1 never left the
    // view it had, so nothing tells it to catch the list up. Its next push ran
    // on its stale copy with a fresh version, and the replica took that newer
    // version over its own, losing the push the other side had acknowledged.
    // The replica now takes a state only if it was built on its own: node-1
    // adopts the replica's list and runs the push again on top of it.
    let (network, clock, nodes, key) = three_with_a_list_on_node_1().await;
    let everyone = view_of(&[1, 2, 3]);

    // The cut: the others declare node-1 failed; node-1 notices nothing.
    cut_off_node_1_while_the_others_push_b(&network, &nodes, &key).await;

    // The heal: node-1 is back in the others' views; its own never changed.
    network.rejoin(addr(1));
    for node in &nodes[1..] {
        node.shared.member_back(peer(1));
        node.shared.set_view(everyone.clone());
    }
    clock.advance(1_000);
    let pushed = nodes[0].shared.execute(&key, push("c")).await;
    assert_eq!(
        pushed.expect("pushed after the heal"),
        Reply::Count(3),
        "the push runs on the replica's list"
    );
    let expected = Reply::List(vec![Bytes::from("a"), Bytes::from("b"), Bytes::from("c")]);
    let copies = copies(&nodes, &everyone, &key);
    assert!(copies[0].is_some() && copies[0] == copies[1], "{copies:?}");
    for node in &nodes {
        let list = node
            .shared
            .execute(&key, Op::LRange { start: 0, stop: -1 })
            .await;
        assert_eq!(list.expect("reads"), expected, "through {}", node.shared.id);
    }
}

#[tokio::test]
async fn a_request_from_a_member_declared_failed_does_not_run() {
    // Spec: cluster.md G1, G7 — found by `cargo xtask chaos` with partitions:
    // a write forwarded to node-1 just before node-1 was cut off can arrive
    // when the cut heals, while node-1 still sees itself alone. Run then, it
    // would build on node-1's stale copy with a fresh version and replace
    // what the other side acknowledged meanwhile. node-1 refuses it (nothing
    // ran: the sender retries with its current view).
    use hive_transport::{ExecuteRequest, Operation, PeerHandler};

    let network = MemoryNetwork::new();
    let nodes: Vec<TestNode> = (1..=2).map(|n| start(&network, n)).collect();
    nodes[0].shared.mark_failed("node-2", true);
    nodes[0].shared.set_view(view_of(&[1]));
    let late = ExecuteRequest {
        from_node: "node-2".into(),
        view: 0,
        timeout_ms: 0,
        ops: vec![Operation {
            key: Bytes::from_static(b"k"),
            op: crate::wire::encode_op(&crate::wire::PeerOp::Client(set("late"))),
        }],
    };
    let answer = Handler(nodes[0].shared.clone()).execute(late.clone()).await;
    assert!(
        matches!(&answer, Ok(response)
            if matches!(&response.results[0], Err(err) if err.kind == hive_transport::ErrorKind::NotOwner)),
        "{answer:?}"
    );
    assert_eq!(nodes[0].shared.store.export(b"k"), Ok(None), "nothing ran");
    // A member of the view is served.
    nodes[0].shared.member_back(peer(2));
    for node in &nodes {
        node.shared.set_view(view_of(&[1, 2]));
    }
    let key_of_1 = (0..)
        .map(|i| format!("key-{i}").into_bytes())
        .find(|key| view_of(&[1, 2]).primary(key).map(String::as_str) == Some("node-1"))
        .expect("node-1 is primary of some key");
    let mut served = late;
    served.ops[0].key = Bytes::from(key_of_1);
    let answer = Handler(nodes[0].shared.clone()).execute(served).await;
    assert!(
        matches!(&answer, Ok(response) if response.results[0].is_ok()),
        "{answer:?}"
    );
}

#[tokio::test]
async fn failed_forwards_and_unconfirmed_transfers_count_as_peer_rpc_errors() {
    let network = MemoryNetwork::new();
    let nodes: Vec<TestNode> = (1..=2).map(|n| start(&network, n)).collect();
    let both = view_of(&[1, 2]);
    for node in &nodes {
        node.shared.set_view(both.clone());
    }
    let errors = |node: &TestNode| {
        node.shared
            .peer_errors
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // A key node-2 is the primary of, so node-1 forwards it.
    let key = (0..)
        .map(|i| format!("key-{i}").into_bytes())
        .find(|key| both.primary(key).map(String::as_str) == Some("node-2"))
        .expect("node-2 owns some key");
    nodes[0]
        .shared
        .execute(&key, set("v"))
        .await
        .expect("written while the link holds");
    assert_eq!(errors(&nodes[0]), 0);

    network.cut(addr(1), addr(2));
    let forwarded = nodes[0].shared.execute(&key, Op::Get).await;
    assert!(
        matches!(forwarded, Err(ClusterError::Unavailable(_))),
        "{forwarded:?}"
    );
    let after_forward = errors(&nodes[0]);
    assert!(after_forward >= 1, "a failed forward is counted");

    // A rebalance from a view of node-1 alone to both: node-1 must send its
    // copies to node-2, across the cut.
    let alone = view_of(&[1]);
    assert!(
        rebalance::run(&nodes[0].shared, &alone, &both)
            .await
            .is_err()
    );
    assert!(
        errors(&nodes[0]) > after_forward,
        "an unconfirmed transfer is counted"
    );
}
