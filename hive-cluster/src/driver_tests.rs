//! Fault scenarios run through the real driver, deterministically: every node
//! is a [`Driver`] over the in-memory network, on one thread, under
//! `tokio::time::pause()` (time jumps ahead whenever every task waits), with
//! a seeded delivery order. Membership is scripted: [`Sim`] tells each
//! driver what memberlist would — a join, a restart before its failure was
//! noticed, a failure once detected, both sides of a partition and its heal —
//! and the in-memory network really drops the calls a crash or a partition
//! would.
//!
//! Each scenario asks what a client saw and whether the data is still there
//! (spec: cluster.md G1, G5, G7): every acknowledged write is in every
//! owner's copy, every acknowledged delete stays deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc::{UnboundedSender, unbounded};
use hive_membership::{MemberInfo, MemberState, MembershipEvent, NodeMeta, SizeLimits};
use hive_store::{Op, Reply, Store, StoreConfig};
use hive_transport::{MemoryClient, MemoryNetwork, MemoryServer, TransportOptions};
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::driver::{Announce, Driver, Timing, joining_view, leave};
use crate::shared::{Handler, Shared};

const REPLICATION: usize = 2;

/// The drivers' clocks: a short debounce, and a tombstone retention short
/// enough for a partition to outlast it many times over.
const TIMING: Timing = Timing {
    debounce: Duration::from_millis(50),
    tombstone_retention: Duration::from_millis(500),
    // No process is paused here: the heartbeat never misses.
    away_after: Duration::from_secs(3600),
    reconnect_timeout: Duration::from_secs(24 * 3600),
};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How long (virtual time) a cluster may take to settle after a fault.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);

fn id(n: u8) -> String {
    format!("node-{n}")
}

fn rpc_addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 7000))
}

/// The event inbox of every running driver, by node id: where [`Sim`] and a
/// driver announcing a new incarnation ([`SimAnnounce`]) post membership
/// events.
type Inboxes = Arc<Mutex<BTreeMap<String, UnboundedSender<MembershipEvent>>>>;

fn post(inboxes: &Inboxes, to: &str, event: MembershipEvent) {
    let inboxes = inboxes.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(inbox) = inboxes.get(to) {
        // A driver that stopped drops its inbox: nothing to tell it.
        let _ = inbox.unbounded_send(event);
    }
}

/// Announces a new incarnation as memberlist would: every other running
/// node sees the member restart.
struct SimAnnounce {
    inboxes: Inboxes,
    info: MemberInfo,
}

impl Announce for SimAnnounce {
    async fn renew_incarnation(&self, incarnation: u64) {
        let mut info = self.info.clone();
        info.meta.incarnation = incarnation;
        let others: Vec<String> = {
            let inboxes = self.inboxes.lock().unwrap_or_else(PoisonError::into_inner);
            inboxes
                .keys()
                .filter(|to| **to != info.id)
                .cloned()
                .collect()
        };
        for to in others {
            post(&self.inboxes, &to, MembershipEvent::Restarted(info.clone()));
        }
    }

    async fn leave(&self) {
        let others: Vec<String> = {
            let inboxes = self.inboxes.lock().unwrap_or_else(PoisonError::into_inner);
            inboxes
                .keys()
                .filter(|to| **to != self.info.id)
                .cloned()
                .collect()
        };
        for to in others {
            post(
                &self.inboxes,
                &to,
                MembershipEvent::Left(self.info.id.clone()),
            );
        }
    }
}

/// One running process: its shared state, its RPC server (dropped on a
/// crash) and its driver's stop switch.
struct Process {
    shared: Arc<Shared<MemoryClient>>,
    _server: MemoryServer,
    stop: CancellationToken,
}

/// A scripted cluster; see the module documentation.
struct Sim {
    network: MemoryNetwork,
    inboxes: Inboxes,
    running: BTreeMap<u8, Process>,
    /// Which members each running node sees alive, itself included.
    sees: BTreeMap<u8, BTreeSet<u8>>,
    /// Every start of a node is a new incarnation.
    incarnations: BTreeMap<u8, u64>,
}

impl Sim {
    fn new(seed: u64) -> Self {
        Self {
            network: MemoryNetwork::seeded(seed),
            inboxes: Arc::default(),
            running: BTreeMap::new(),
            sees: BTreeMap::new(),
            incarnations: BTreeMap::new(),
        }
    }

    /// Starts nodes `1..=count` one after another, and waits until they settled.
    async fn cluster(seed: u64, count: u8) -> Self {
        let mut sim = Sim::new(seed);
        for n in 1..=count {
            sim.start(n);
        }
        sim.settle().await;
        sim
    }

    fn info(&self, n: u8) -> MemberInfo {
        MemberInfo {
            id: id(n),
            gossip_addr: SocketAddr::from(([10, 0, 0, n], 7946)),
            meta: NodeMeta {
                rpc_addr: rpc_addr(n),
                vnodes: 64,
                replication_factor: REPLICATION as u32,
                protocol_version: 1,
                incarnation: self.incarnations[&n],
                size_limits: SizeLimits::default(),
            },
            state: MemberState::Alive,
        }
    }

    fn node(&self, n: u8) -> &Shared<MemoryClient> {
        &self.running[&n].shared
    }

    /// Starts node `n`, empty, as a new incarnation, joining every running
    /// node it can reach — as `Cluster::start` does after memberlist joined
    /// a seed. A member that still sees its previous incarnation alive is
    /// told it restarted; any other, that it joined.
    fn start(&mut self, n: u8) {
        assert!(!self.running.contains_key(&n), "{} is running", id(n));
        *self.incarnations.entry(n).or_insert(0) += 1;
        let store = Arc::new(Store::new(StoreConfig {
            tombstones: true,
            node_tag: u64::from(n),
            ..StoreConfig::default()
        }));
        let options = TransportOptions::default();
        let client = self.network.client(rpc_addr(n), options.clone());
        let shared = Arc::new(Shared::new(
            id(n),
            store,
            client,
            crate::view::View::new(REPLICATION),
            REQUEST_TIMEOUT,
            options.max_message_size,
        ));
        let server = self
            .network
            .serve(rpc_addr(n), Handler(shared.clone()), options)
            .expect("serves");
        let reachable: BTreeSet<u8> = self
            .running
            .keys()
            .copied()
            .filter(|&m| self.network.is_linked(rpc_addr(n), rpc_addr(m)))
            .chain([n])
            .collect();
        let roster = Arc::new(RwLock::new(BTreeMap::new()));
        let view = joining_view(&shared, &roster, reachable.iter().map(|&m| self.info(m)));
        let announce = SimAnnounce {
            inboxes: self.inboxes.clone(),
            info: self.info(n),
        };
        let driver = Driver::new(shared.clone(), roster, announce, TIMING, view);
        let (inbox, events) = unbounded();
        self.inboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id(n), inbox);
        let stop = CancellationToken::new();
        tokio::spawn(driver.run(events, stop.clone()));
        for &m in reachable.iter().filter(|&&m| m != n) {
            let sees = self.sees.get_mut(&m).expect("a running node");
            let event = if sees.insert(n) {
                MembershipEvent::Joined(self.info(n))
            } else {
                MembershipEvent::Restarted(self.info(n))
            };
            post(&self.inboxes, &id(m), event);
        }
        self.sees.insert(n, reachable);
        self.running.insert(
            n,
            Process {
                shared,
                _server: server,
                stop,
            },
        );
    }

    /// A graceful leave, as `Cluster::shutdown` runs it: the driver stops,
    /// the node hands its keys off and tells the others it leaves (the
    /// returned task), then stops serving.
    fn leave(&mut self, n: u8) -> tokio::task::JoinHandle<()> {
        let Process {
            shared,
            _server: server,
            stop,
        } = self.running.remove(&n).expect("a running node");
        stop.cancel();
        self.inboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id(n));
        self.sees.remove(&n);
        for sees in self.sees.values_mut() {
            sees.remove(&n);
        }
        let announce = SimAnnounce {
            inboxes: self.inboxes.clone(),
            info: self.info(n),
        };
        tokio::spawn(async move {
            leave(&shared, &announce).await;
            shared.stop();
            drop(server);
        })
    }

    /// kill -9: the process is gone, its calls in flight are cut off; the
    /// others notice only at [`Sim::detect`].
    fn crash(&mut self, n: u8) {
        let process = self.running.remove(&n).expect("a running node");
        process.stop.cancel();
        process.shared.stop();
        self.inboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id(n));
        self.sees.remove(&n);
    }

    /// Failure detection: every node that still sees `n` alive is told it failed.
    fn detect(&mut self, n: u8) {
        for (&m, sees) in &mut self.sees {
            if sees.remove(&n) {
                post(&self.inboxes, &id(m), MembershipEvent::Failed(id(n)));
            }
        }
    }

    /// Cuts every link between `left` and `right`; once detected, each side
    /// sees the other failed.
    fn partition(&mut self, left: &[u8], right: &[u8]) {
        for &a in left {
            for &b in right {
                self.network.cut(rpc_addr(a), rpc_addr(b));
            }
        }
        for (side, other) in [(left, right), (right, left)] {
            for &a in side {
                for &b in other {
                    if self.sees.get_mut(&a).is_some_and(|sees| sees.remove(&b)) {
                        post(&self.inboxes, &id(a), MembershipEvent::Failed(id(b)));
                    }
                }
            }
        }
    }

    /// Restores every link; every running node sees every other join again.
    fn heal(&mut self) {
        self.network.heal_all();
        let running: Vec<u8> = self.running.keys().copied().collect();
        for &a in &running {
            for &b in &running {
                if self.sees.get_mut(&a).is_some_and(|sees| sees.insert(b)) {
                    post(&self.inboxes, &id(a), MembershipEvent::Joined(self.info(b)));
                }
            }
        }
    }

    /// Waits until every running node has the view of the members it sees,
    /// every member agreed on it and finished moving data for it, and the
    /// earlier views are forgotten (every key is at its owners).
    async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
        loop {
            let unsettled: Vec<String> = self
                .running
                .iter()
                .filter(|(n, process)| !settled(&process.shared, &self.sees[n]))
                .map(|(&n, _)| id(n))
                .collect();
            if unsettled.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not settled after {SETTLE_DEADLINE:?} (seed {}): {unsettled:?}",
                self.network.seed()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Returns the running owners of `key` in node `via`'s view.
    fn owners(&self, via: u8, key: &[u8]) -> Vec<u8> {
        let view = self.node(via).view();
        view.owners(key)
            .iter()
            .map(|owner| {
                *self
                    .running
                    .iter()
                    .find(|(_, process)| process.shared.id == **owner)
                    .expect("an owner is running")
                    .0
            })
            .collect()
    }

    /// Runs `op` on `key`'s copy held by node `n` itself, not routed.
    fn local(&self, n: u8, key: &[u8], op: Op) -> Reply {
        self.node(n).store.execute(key, op).expect("runs locally")
    }

    /// Sets keys `0..count` to `value` through node `via`.
    async fn fill(&self, via: u8, count: usize, value: &str) {
        for i in 0..count {
            self.node(via)
                .execute(&key(i), set(value))
                .await
                .unwrap_or_else(|e| panic!("set key-{i} through {}: {e}", id(via)));
        }
    }

    /// Asserts that `op` answers `expected` on every owner's own copy of
    /// `key-{i}` (owners in node 1's view).
    fn assert_owners(&self, seed: u64, i: usize, op: Op, expected: &Reply) {
        for owner in self.owners(1, &key(i)) {
            assert_eq!(
                &self.local(owner, &key(i), op.clone()),
                expected,
                "seed {seed}: {} copy of key-{i}",
                id(owner)
            );
        }
    }
}

fn settled(shared: &Shared<MemoryClient>, sees: &BTreeSet<u8>) -> bool {
    let view = shared.view();
    let members: BTreeSet<String> = view.members().map(|peer| peer.id.clone()).collect();
    members == sees.iter().map(|&n| id(n)).collect()
        && shared.is_agreed()
        && shared
            .settled_epoch
            .load(std::sync::atomic::Ordering::Acquire)
            == view.epoch()
        && shared
            .rebalance_pending
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        && !shared.remembers_earlier()
}

fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn hset(field: &str) -> Op {
    Op::HSet {
        field: bytes(field),
        value: bytes("v"),
        ttl_ms: None,
    }
}

fn set(value: &str) -> Op {
    Op::Set {
        value: bytes(value),
        ttl_ms: None,
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

const SEEDS: [u64; 3] = [1, 2, 3];

#[tokio::test(start_paused = true)]
async fn g1_a_node_restarted_at_once_with_its_id_loses_nothing_and_is_refilled() {
    // The reproduction: 3 nodes, RF 2, hashes with f1 f2 written
    // through node 1; node 3 is killed and restarted at once with its id
    // (before anyone noticed), then f3 is written through it.
    for seed in SEEDS {
        let mut sim = Sim::cluster(seed, 3).await;
        for i in 0..100 {
            for field in ["f1", "f2"] {
                sim.node(1)
                    .execute(&key(i), hset(field))
                    .await
                    .expect("hset");
            }
        }
        sim.crash(3);
        sim.start(3);
        for i in 0..100 {
            sim.node(3)
                .execute(&key(i), hset("f3"))
                .await
                .unwrap_or_else(|e| {
                    panic!("hset f3 through the restarted node (seed {seed}): {e}")
                });
        }
        sim.settle().await;
        for i in 0..100 {
            sim.assert_owners(seed, i, Op::HLen, &Reply::Count(3));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn g1_writes_acknowledged_while_a_node_crashes_are_on_every_owner_afterwards() {
    for seed in SEEDS {
        let mut sim = Sim::cluster(seed, 3).await;
        let mut acked = Vec::new();
        for i in 0..300 {
            // Killed a third of the way through, detected at two thirds.
            if i == 100 {
                sim.crash(3);
            }
            if i == 200 {
                sim.detect(3);
            }
            let via = if i % 2 == 0 { 1 } else { 2 };
            if sim.node(via).execute(&key(i), set("v")).await.is_ok() {
                acked.push(i);
            }
        }
        sim.settle().await;
        assert!(
            acked.len() >= 200,
            "seed {seed}: only {} acked",
            acked.len()
        );
        for i in acked {
            assert_eq!(sim.owners(1, &key(i)).len(), 2, "two owners left");
            sim.assert_owners(seed, i, Op::Exists, &Reply::Bool(true));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn g5_g7_deletes_and_writes_on_both_sides_of_a_long_partition_survive_its_heal() {
    // Four nodes, RF 2. During a partition much longer than the tombstone
    // retention each side deletes some keys and writes others; after the
    // heal every acknowledged delete holds and every acknowledged write is
    // on every owner.
    for seed in SEEDS {
        let mut sim = Sim::cluster(seed, 4).await;
        sim.fill(1, 200, "before").await;
        sim.partition(&[1, 2], &[3, 4]);
        sim.settle().await;
        // Keys 0..100 are deleted on one side or the other, 100..200
        // rewritten. Each side serves every key (G7); a side that held no
        // copy of a key deletes nothing (`Bool(false)`), and the other
        // side's copy rightly comes back.
        let (mut deleted, mut written) = (Vec::new(), Vec::new());
        for i in 0..200 {
            let via = [1, 3][i % 2];
            if i < 100 {
                let reply = sim.node(via).execute(&key(i), Op::Del).await;
                match reply.expect("each side serves every key") {
                    Reply::Bool(true) => deleted.push(i),
                    Reply::Bool(false) => {}
                    other => panic!("DEL answered {other:?}"),
                }
            } else {
                let reply = sim.node(via).execute(&key(i), set("during")).await;
                reply.expect("each side serves every key");
                written.push(i);
            }
        }
        // Many retentions pass: tombstones must outlive the partition.
        tokio::time::sleep(TIMING.tombstone_retention * 20).await;
        sim.heal();
        sim.settle().await;
        assert!(
            deleted.len() >= 25,
            "seed {seed}: {} deleted",
            deleted.len()
        );
        for &n in sim.running.keys() {
            for &i in &deleted {
                assert_eq!(
                    sim.node(n)
                        .execute(&key(i), Op::Exists)
                        .await
                        .expect("exists"),
                    Reply::Bool(false),
                    "seed {seed}: deleted key-{i} is back through {}",
                    id(n)
                );
            }
        }
        for &i in &written {
            sim.assert_owners(seed, i, Op::Get, &Reply::Bytes(bytes("during")));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn g1_a_node_restarted_after_its_failure_was_detected_is_refilled() {
    for seed in SEEDS {
        let mut sim = Sim::cluster(seed, 3).await;
        sim.fill(1, 100, "v").await;
        sim.crash(2);
        sim.detect(2);
        sim.settle().await;
        sim.start(2);
        sim.settle().await;
        for i in 0..100 {
            sim.assert_owners(seed, i, Op::Get, &Reply::Bytes(bytes("v")));
        }
        let on_node2 = (0..100)
            .filter(|&i| sim.owners(1, &key(i)).contains(&2))
            .count();
        assert!(on_node2 > 0, "seed {seed}: node-2 owns some keys again");
    }
}

#[tokio::test(start_paused = true)]
async fn g2_g4_no_write_fails_while_an_owner_leaves_gracefully() {
    // RF 2: the leaving node is an owner of most keys. Writes through the
    // staying nodes go on throughout its leave; none may fail, and each is
    // on both owners afterwards.
    for seed in SEEDS {
        let mut sim = Sim::cluster(seed, 3).await;
        sim.fill(1, 100, "before").await;
        let leaving = sim.leave(3);
        let mut i = 0;
        while !leaving.is_finished() || i < 200 {
            let via = [1, 2][i % 2];
            sim.node(via)
                .execute(&key(i % 300), set("during"))
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: write {i} during the leave: {e}"));
            i += 1;
            // A client writing once a millisecond. Paused time moves only
            // while every task waits, so a writer that never waited would
            // stop the clock the leave's timers run on.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        leaving.await.expect("the leave ends");
        sim.settle().await;
        // At least 200 writes, over keys 0..300: keys 0..200 all rewritten.
        for k in 0..i.min(300) {
            sim.assert_owners(seed, k, Op::Get, &Reply::Bytes(bytes("during")));
        }
    }
}
