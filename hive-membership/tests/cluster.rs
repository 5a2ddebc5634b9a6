//! Real multi-node scenarios on 127.0.0.1 (port 0, `Preset::Local`), in one process.
//!
//! Every wait polls a condition against a deadline; the deadlines are generous
//! (memberlist's push/pull, which repairs a lost gossip packet, runs every 15 s).

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use hive_membership::{
    Events, MemberState, Membership, MembershipConfig, MembershipError, MembershipEvent, NodeMeta,
    Preset,
};

/// Deadline for anything gossip has to spread.
const DEADLINE: Duration = Duration::from_secs(20);
/// Pause between two checks of a polled condition.
const POLL: Duration = Duration::from_millis(20);

fn meta(replication_factor: u32, protocol_version: u32) -> NodeMeta {
    NodeMeta {
        rpc_addr: "127.0.0.1:7001".parse().unwrap(),
        vnodes: 100,
        replication_factor,
        protocol_version,
        incarnation: 1,
        size_limits: hive_membership::SizeLimits::default(),
    }
}

fn config(id: &str, seeds: &[&Membership], meta: NodeMeta) -> MembershipConfig {
    let mut config = MembershipConfig::new(id, "127.0.0.1:0".parse().unwrap(), meta);
    config.seeds = seeds.iter().map(|m| m.local_gossip_addr()).collect();
    config.preset = Preset::Local;
    config
}

/// Shows this crate's logs (warnings and up by default, `RUST_LOG` to change)
/// in failing tests. memberlist's own logs are off by default: a normal shutdown
/// logs ERROR lines (gotcha 5 of the dependency notes).
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,memberlist_core=off,memberlist_net=off")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

async fn start(id: &str, seeds: &[&Membership]) -> (Membership, Events) {
    init_logs();
    Membership::start(config(id, seeds, meta(2, 1)))
        .await
        .unwrap_or_else(|e| panic!("starting {id}: {e}"))
}

/// Polls `check` until it holds; panics naming `what` after `deadline`.
async fn eventually<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    while !check().await {
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?}: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn alive_ids(m: &Membership) -> BTreeSet<String> {
    m.members()
        .await
        .into_iter()
        .filter(|info| info.state == MemberState::Alive)
        .map(|info| info.id)
        .collect()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Waits for the first event about `id` other than `Joined`/`Updated`, and returns it.
async fn departure_of(events: &mut Events, id: &str) -> MembershipEvent {
    let wait = async {
        loop {
            match events.recv().await {
                Some(event @ (MembershipEvent::Left(_) | MembershipEvent::Failed(_))) => {
                    let (MembershipEvent::Left(who) | MembershipEvent::Failed(who)) = &event else {
                        unreachable!()
                    };
                    if who == id {
                        return event;
                    }
                }
                Some(_) => {}
                None => panic!("event stream ended while waiting for {id} to depart"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("no departure of {id} within {DEADLINE:?}"))
}

/// Waits for `Joined(id)` and returns its gossip address.
async fn joined(events: &mut Events, id: &str) -> SocketAddr {
    let wait = async {
        loop {
            match events.recv().await {
                Some(MembershipEvent::Joined(info)) if info.id == id => return info.gossip_addr,
                Some(_) => {}
                None => panic!("event stream ended while waiting for {id} to join"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("no Joined({id}) within {DEADLINE:?}"))
}

/// Three nodes a, b, c, where b and c join through a; returns once all see three.
async fn three_nodes() -> [(Membership, Events); 3] {
    let a = start("a", &[]).await;
    let b = start("b", &[&a.0]).await;
    let c = start("c", &[&a.0]).await;
    for node in [&a.0, &b.0, &c.0] {
        eventually("all three alive", DEADLINE, || async {
            alive_ids(node).await == ids(&["a", "b", "c"])
        })
        .await;
    }
    [a, b, c]
}

/// Waits until the event stream ends: the node's owner task has finished.
async fn stream_ends(events: &mut Events) {
    let drained = async { while events.recv().await.is_some() {} };
    tokio::time::timeout(DEADLINE, drained)
        .await
        .expect("event stream did not end after the node stopped");
}

// Spec: cluster.md "Membership" (join via a seed, metadata, typed events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_join_via_one_seed_and_see_each_others_metadata() {
    let started = Instant::now();
    let (a, mut a_events) = start("a", &[]).await;
    let (b, _b_events) = start("b", &[&a]).await;
    let (c, _c_events) = start("c", &[&a]).await;
    let nodes = [&a, &b, &c];
    for node in nodes {
        eventually("all three alive with their metadata", DEADLINE, || async {
            let members = node.members().await;
            members.len() == 3
                && members.iter().all(|info| {
                    let origin = nodes.iter().find(|n| n.id() == info.id).unwrap();
                    info.state == MemberState::Alive
                        && info.meta == origin.local_meta()
                        && info.gossip_addr == origin.local_gossip_addr()
                })
        })
        .await;
        assert_eq!(node.alive_count().await, 3);
    }
    eprintln!("3 nodes started and converged in {:?}", started.elapsed());

    assert_eq!(joined(&mut a_events, "b").await, b.local_gossip_addr());
    assert_eq!(joined(&mut a_events, "c").await, c.local_gossip_addr());
    assert_ne!(
        a.local_gossip_addr().port(),
        0,
        "port 0 resolves to the real port"
    );

    for node in [a, b, c] {
        node.shutdown().await;
    }
}

// Spec: cluster.md "Membership" (member states: left).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_is_reported_as_left_not_failed() {
    let [(a, mut a_events), (b, mut b_events), (c, mut c_events)] = three_nodes().await;

    let leaving = Instant::now();
    c.leave(Duration::from_secs(5)).await.expect("leave");
    eprintln!("leave() took {:?}", leaving.elapsed());
    assert_eq!(
        departure_of(&mut a_events, "c").await,
        MembershipEvent::Left("c".into())
    );
    assert_eq!(
        departure_of(&mut b_events, "c").await,
        MembershipEvent::Left("c".into())
    );
    eprintln!("peers reported Left after {:?}", leaving.elapsed());

    for node in [&a, &b] {
        eventually("two alive after the leave", DEADLINE, || async {
            alive_ids(node).await == ids(&["a", "b"])
        })
        .await;
        let c_info = node.members().await.into_iter().find(|info| info.id == "c");
        // memberlist keeps a departed member listed for a while (15 s here).
        if let Some(info) = c_info {
            assert_eq!(info.state, MemberState::Left);
        }
    }
    assert!(matches!(
        c.leave(Duration::from_secs(1)).await,
        Err(MembershipError::NotRunning)
    ));

    c.shutdown().await;
    stream_ends(&mut c_events).await;
    for node in [a, b] {
        node.shutdown().await;
    }
}

// Spec: cluster.md "Membership" (member states: dead); api.md "drop(node) without shutdown".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_node_is_reported_as_failed() {
    let [(a, mut a_events), (b, mut b_events), (c, mut c_events)] = three_nodes().await;

    let crashed = Instant::now();
    drop(c);
    assert_eq!(
        departure_of(&mut a_events, "c").await,
        MembershipEvent::Failed("c".into())
    );
    assert_eq!(
        departure_of(&mut b_events, "c").await,
        MembershipEvent::Failed("c".into())
    );
    eprintln!("crash detected by both peers after {:?}", crashed.elapsed());
    // The dropped node's owner task ran to its end (memberlist shut down).
    stream_ends(&mut c_events).await;

    for node in [&a, &b] {
        assert_eq!(alive_ids(node).await, ids(&["a", "b"]));
        let c_info = node.members().await.into_iter().find(|info| info.id == "c");
        if let Some(info) = c_info {
            assert_eq!(info.state, MemberState::Dead);
        }
    }
    for node in [a, b] {
        node.shutdown().await;
    }
}

// Spec: cluster.md "Membership" (a crashed node restarts with the same id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_node_rejoins_with_the_same_id_on_a_new_port() {
    let [(a, mut a_events), (b, mut b_events), (c, _c_events)] = three_nodes().await;
    let old_addr = c.local_gossip_addr();

    c.shutdown().await; // a crash as far as peers can tell: no leave
    assert_eq!(
        departure_of(&mut a_events, "c").await,
        MembershipEvent::Failed("c".into())
    );
    assert_eq!(
        departure_of(&mut b_events, "c").await,
        MembershipEvent::Failed("c".into())
    );

    let restarting = Instant::now();
    let (c, _c_events) = start("c", &[&a, &b]).await;
    assert_ne!(c.local_gossip_addr(), old_addr, "port 0 gives a new port");
    for node in [&a, &b, &c] {
        eventually("the restarted node alive everywhere", DEADLINE, || async {
            let members = node.members().await;
            let c_info = members.iter().find(|info| info.id == "c");
            alive_ids(node).await == ids(&["a", "b", "c"])
                && c_info.is_some_and(|info| info.gossip_addr == c.local_gossip_addr())
        })
        .await;
    }
    eprintln!(
        "restarted node seen alive by all after {:?}",
        restarting.elapsed()
    );
    assert_eq!(joined(&mut a_events, "c").await, c.local_gossip_addr());
    assert_eq!(joined(&mut b_events, "c").await, c.local_gossip_addr());

    for node in [a, b, c] {
        node.shutdown().await;
    }
}

// Spec: cluster.md G1 (a node that restarts with the same id is a new
// incarnation, before or after its failure was detected). A supervisor restarts
// a crashed node at once, on its old address: peers must learn it is not the
// member they knew, whose data is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_on_its_address_before_its_failure_was_seen_is_a_new_incarnation() {
    init_logs();
    let (a, mut a_events) = start("a", &[]).await;
    let (b, _) = start("b", &[&a]).await;
    let b_addr = b.local_gossip_addr();
    assert_eq!(joined(&mut a_events, "b").await, b_addr);
    b.shutdown().await; // a crash as far as `a` can tell: no leave

    let mut again = MembershipConfig::new(
        "b",
        b_addr,
        NodeMeta {
            incarnation: 2,
            ..meta(2, 1)
        },
    );
    again.seeds = vec![a.local_gossip_addr()];
    again.preset = Preset::Local;
    let until = Instant::now() + DEADLINE;
    let (b, _b_events) = loop {
        match Membership::start(again.clone()).await {
            Ok(started) => break started,
            Err(MembershipError::Bind { .. }) if Instant::now() < until => {
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("restarting b on {b_addr}: {e}"),
        }
    };
    // Either `a` had not noticed the crash (then the new incarnation is a
    // restart) or it had (a failure, then a join): never the old b kept alive.
    let seen = tokio::time::timeout(DEADLINE, async {
        loop {
            match a_events.recv().await {
                Some(MembershipEvent::Restarted(info)) if info.id == "b" => {
                    return ("restarted", info.meta.incarnation);
                }
                Some(MembershipEvent::Joined(info)) if info.id == "b" => {
                    return ("failed, then joined", info.meta.incarnation);
                }
                Some(MembershipEvent::Updated(info)) if info.id == "b" => {
                    panic!("the new incarnation was reported as an update: {info:?}")
                }
                Some(_) => {}
                None => panic!("event stream ended"),
            }
        }
    })
    .await
    .expect("a learns of b's new incarnation");
    eprintln!("a saw b {}", seen.0);
    assert_eq!(seen.1, 2, "the event carries the new incarnation");
    b.shutdown().await;
    a.shutdown().await;
}

/// Starts a node with id `id` alone on `addr`, retrying while the previous
/// owner of the address is still releasing it.
async fn start_alone_at(id: &str, addr: SocketAddr) -> (Membership, Events) {
    let mut config = MembershipConfig::new(id, addr, meta(2, 1));
    config.preset = Preset::Local;
    let until = Instant::now() + DEADLINE;
    loop {
        match Membership::start(config.clone()).await {
            Ok(started) => return started,
            Err(MembershipError::Bind { .. }) if Instant::now() < until => {
                tokio::time::sleep(POLL).await;
            }
            Err(e) => panic!("starting {id} on {addr}: {e}"),
        }
    }
}

/// Starts `a`, then `b` joining it, crashes `b` and waits until `a` reports it
/// failed; returns `a`, its events and the address `b` had.
async fn a_with_b_crashed() -> (Membership, Events, SocketAddr) {
    let (a, mut a_events) = start("a", &[]).await;
    let (b, _) = start("b", &[&a]).await;
    let b_addr = b.local_gossip_addr();
    assert_eq!(joined(&mut a_events, "b").await, b_addr);
    b.shutdown().await;
    assert_eq!(
        departure_of(&mut a_events, "b").await,
        MembershipEvent::Failed("b".into())
    );
    (a, a_events, b_addr)
}

// A partition that outlasts memberlist's gossip to the dead leaves two sides
// that never contact each other again; a node restarted on its old address
// without seeds is in the same position. Reconnecting heals both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_member_answering_at_its_address_again_is_reconnected() {
    let (a, mut a_events, b_addr) = a_with_b_crashed().await;

    // Back on the same address, knowing nobody: only `a` can make contact.
    let (b, mut b_events) = start_alone_at("b", b_addr).await;
    assert_eq!(joined(&mut a_events, "b").await, b_addr);
    assert_eq!(joined(&mut b_events, "a").await, a.local_gossip_addr());
    for node in [&a, &b] {
        eventually("both see both alive", DEADLINE, || async {
            alive_ids(node).await == ids(&["a", "b"])
        })
        .await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

// The address of a failed member may be taken by an unrelated node: pinging by
// id keeps the two clusters apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_on_a_failed_members_address_is_not_joined() {
    let (a, _a_events, b_addr) = a_with_b_crashed().await;

    let (stranger, _) = start_alone_at("stranger", b_addr).await;
    // Reconnect attempts run every second (`Preset::Local`): watch three.
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        assert_eq!(alive_ids(&a).await, ids(&["a"]), "a joined the stranger");
        assert_eq!(
            alive_ids(&stranger).await,
            ids(&["stranger"]),
            "the stranger joined a"
        );
        tokio::time::sleep(POLL).await;
    }
    a.shutdown().await;
    stranger.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_member_is_forgotten_after_the_reconnect_timeout() {
    init_logs();
    let mut a_config = config("a", &[], meta(2, 1));
    a_config.reconnect_timeout = Duration::from_millis(500);
    let (a, mut a_events) = Membership::start(a_config).await.expect("a starts");
    let (b, _) = start("b", &[&a]).await;
    joined(&mut a_events, "b").await;
    b.shutdown().await;
    assert_eq!(
        departure_of(&mut a_events, "b").await,
        MembershipEvent::Failed("b".into())
    );
    let listed = a.members().await;
    assert!(
        listed
            .iter()
            .any(|m| m.id == "b" && m.state == MemberState::Dead),
        "a failed member is listed until forgotten: {listed:?}"
    );
    let forgotten = tokio::time::timeout(DEADLINE, async {
        loop {
            match a_events.recv().await {
                Some(MembershipEvent::Forgotten(id)) => return id,
                Some(_) => {}
                None => panic!("event stream ended"),
            }
        }
    })
    .await
    .expect("b forgotten within the deadline");
    assert_eq!(forgotten, "b");
    let listed = a.members().await;
    assert!(
        listed.iter().all(|m| m.id != "b"),
        "a forgotten member is no longer listed: {listed:?}"
    );

    // memberlist still holds b's dead entry (it never reaps, see preset.rs):
    // b coming back with its id is a join like any other.
    let (b, _) = start("b", &[&a]).await;
    joined(&mut a_events, "b").await;
    eventually("a lists b alive again", DEADLINE, || async {
        alive_ids(&a).await == ids(&["a", "b"])
    })
    .await;
    b.shutdown().await;
    a.shutdown().await;
}

/// Starts a node with `bad` metadata against the cluster `nodes`, expects
/// `Incompatible` naming `field`, and checks the cluster never lists it.
async fn assert_refused(nodes: &mut [(Membership, Events)], bad: NodeMeta, field: &str) {
    let seeds: Vec<&Membership> = nodes.iter().map(|(m, _)| m).collect();
    init_logs();
    let result = Membership::start(config("intruder", &seeds, bad)).await;
    let Err(MembershipError::Incompatible {
        field: got,
        ours,
        theirs,
        peer,
    }) = &result
    else {
        panic!("expected Incompatible, got {result:?}");
    };
    assert_eq!(*got, field);
    assert_ne!(ours, theirs);
    assert!(
        seeds
            .iter()
            .any(|m| peer.starts_with(&format!("{}@", m.id()))),
        "{peer}"
    );
    eprintln!("refused: {}", result.unwrap_err());

    // Gossip would spread a wrongly admitted node within a few 50 ms rounds: watch
    // for a full second that nobody lists it or reports it.
    let watch_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < watch_until {
        for (node, events) in nodes.iter_mut() {
            assert!(
                node.members()
                    .await
                    .iter()
                    .all(|info| info.id != "intruder"),
                "{} lists the incompatible node",
                node.id()
            );
            while let Some(event) = events.try_recv() {
                assert!(
                    !matches!(&event, MembershipEvent::Joined(info) if info.id == "intruder"),
                    "{} reported the incompatible node joining",
                    node.id()
                );
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

// Spec: cluster.md "Membership" (incompatible replication factor refused at join).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incompatible_replication_factor_is_refused() {
    let a = start("a", &[]).await;
    let b = start("b", &[&a.0]).await;
    eventually("two alive", DEADLINE, || async {
        b.0.alive_count().await == 2
    })
    .await;
    let mut nodes = [a, b];
    assert_refused(&mut nodes, meta(3, 1), "replication_factor").await;
    for (node, _) in nodes {
        node.shutdown().await;
    }
}

// Spec: cluster.md "Membership" (incompatible protocol version refused at join).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incompatible_protocol_version_is_refused() {
    let mut nodes = [start("a", &[]).await];
    assert_refused(&mut nodes, meta(2, 2), "protocol_version").await;
    for (node, _) in nodes {
        node.shutdown().await;
    }
}

/// A local port nothing listens on (TCP), free for UDP too.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(UdpSocket::bind(("127.0.0.1", port)).expect("UDP twin free"));
    port
}

// Spec: cluster.md "Membership" (no reachable seed: clear error within a bounded time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_seed_fails_within_join_timeout_and_leaks_nothing() {
    init_logs();
    let seed: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let bind: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut config = MembershipConfig::new("lonely", bind, meta(2, 1));
    config.preset = Preset::Local;
    config.seeds = vec![seed];
    config.join_timeout = Duration::from_secs(1);

    let started = Instant::now();
    let result = Membership::start(config).await;
    let elapsed = started.elapsed();
    let Err(MembershipError::NoSeedReachable { seeds, waited, .. }) = &result else {
        panic!("expected NoSeedReachable, got {result:?}");
    };
    assert_eq!(seeds, &vec![seed]);
    assert!(*waited >= Duration::from_secs(1), "{waited:?}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    let message = result.unwrap_err().to_string();
    assert!(message.contains(&seed.to_string()), "{message}");
    eprintln!("{message}");

    // The half-started node released its sockets: both can be bound again.
    let returned = Instant::now();
    eventually("gossip port released", DEADLINE, || async {
        TcpListener::bind(bind).is_ok() && UdpSocket::bind(bind).is_ok()
    })
    .await;
    eprintln!(
        "gossip port free {:?} after start returned",
        returned.elapsed()
    );
}

// Spec: api.md "Invalid configuration ... is an error from start, with a message that names the field".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_and_busy_port_are_errors_not_panics() {
    let mut bad = MembershipConfig::new("", "127.0.0.1:0".parse().unwrap(), meta(2, 1));
    bad.preset = Preset::Local;
    assert!(matches!(
        Membership::start(bad).await,
        Err(MembershipError::InvalidConfig {
            field: "node_id",
            ..
        })
    ));

    let (a, _a_events) = start("a", &[]).await;
    let mut busy = MembershipConfig::new("b", a.local_gossip_addr(), meta(2, 1));
    busy.preset = Preset::Local;
    let result = Membership::start(busy).await;
    assert!(
        matches!(result, Err(MembershipError::Bind { .. })),
        "{result:?}"
    );
    a.shutdown().await;
}

// Spec: cluster.md "Membership" (a node started alone, then shut down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_node_lists_itself_and_stops_cleanly() {
    let (a, mut events) = start("a", &[]).await;
    let members = a.members().await;
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].id, "a");
    assert_eq!(members[0].state, MemberState::Alive);
    assert_eq!(members[0].meta, meta(2, 1));
    // Leaving with nobody to tell returns at once.
    a.leave(Duration::from_secs(1)).await.expect("leave alone");
    assert_eq!(a.members().await[0].state, MemberState::Left);
    a.shutdown().await;
    stream_ends(&mut events).await;
}

// Spec: api.md "Every future returned by `Node` ... is `Send`" (Node wraps these).
#[test]
fn handles_and_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Membership>();
    is_send_sync::<Events>();
    is_send_sync::<MembershipError>();
    is_send(&Membership::start(config("a", &[], meta(2, 1))));
    let _futures_of_a_running_node = |m: Membership| {
        is_send(&m.members());
        is_send(&m.alive_count());
        is_send(&m.leave(Duration::from_secs(1)));
        is_send(&m.shutdown());
    };
}
