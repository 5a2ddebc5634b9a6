//! Independent acceptance tests for Hive.
//!
//! This suite was written against the documented contract only: the specs
//! `api.md` (names, `Config` fields, error variants), `cluster.md`
//! ("Writes and reads: what is guaranteed", G1-G5, and the membership rules) and
//! `semantics.md` (TTLs, missing keys). It deliberately does not look at the
//! implementation, so a failure here means either the contract or the code needs
//! to change. Every node runs on 127.0.0.1 with ephemeral ports inside this one
//! process; a crash is `drop(node)`, a graceful leave is `node.shutdown()`.
//!
//! Synchronisation is by polling with a deadline (or `wait_ready`), never by a
//! fixed sleep; the timeouts are generous because CI machines can be slow.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hive::{
    Cache, Config, Error, HashStore, ListStore, MemberState, Mode, Node, SetStore, ValueStore,
    ZSetEntry, ZSetStore,
};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Upper bound for membership to settle and rebalancing to finish.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for a single cache operation (a hang is reported as a failure).
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll period used by every "eventually" loop.
const POLL: Duration = Duration::from_millis(50);

/// A value with some structure, so that decoding is actually exercised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Rec {
    id: u64,
    body: String,
}

fn rec(id: u64) -> Rec {
    Rec {
        id,
        body: format!("body-{id}-{}", "x".repeat((id % 17) as usize)),
    }
}

/// A cluster-mode config on 127.0.0.1 with ephemeral ports and fast gossip.
fn config(seeds: &[&Node], replication_factor: usize) -> Config {
    Config {
        mode: Mode::Cluster,
        bind_addr: "127.0.0.1".into(),
        bind_port: 0,
        seeds: seeds.iter().map(|n| seed_addr(n)).collect(),
        replication_factor,
        gossip_interval: Duration::from_millis(100),
        rebalance_debounce: Duration::from_millis(200),
        ..Default::default()
    }
}

fn seed_addr(node: &Node) -> String {
    node.gossip_addr()
        .expect("a cluster-mode node has a gossip address")
        .to_string()
}

async fn start(cfg: Config) -> Node {
    match tokio::time::timeout(READY_TIMEOUT, Node::start(cfg)).await {
        Ok(Ok(node)) => node,
        Ok(Err(e)) => panic!("Node::start failed: {e}"),
        Err(_) => panic!("Node::start did not return within {READY_TIMEOUT:?}"),
    }
}

/// Starts `n` nodes (the first is the seed of the others) and waits until all of
/// them see `n` members and have finished rebalancing.
async fn start_cluster(n: usize, replication_factor: usize) -> Vec<Node> {
    let first = start(config(&[], replication_factor)).await;
    let mut nodes = vec![first];
    for _ in 1..n {
        let node = start(config(&[&nodes[0]], replication_factor)).await;
        nodes.push(node);
    }
    settle(&nodes.iter().collect::<Vec<_>>(), n).await;
    nodes
}

fn count_state(node: &Node, state: MemberState) -> usize {
    node.status()
        .members
        .iter()
        .filter(|m| m.state == state)
        .count()
}

fn describe(node: &Node) -> String {
    let s = node.status();
    let members: Vec<String> = s
        .members
        .iter()
        .map(|m| format!("{}:{:?}:{:.3}", m.id, m.state, m.ring_share))
        .collect();
    format!(
        "node {} keys={} pending={} rf={} members=[{}]",
        s.node_id,
        s.keys,
        s.rebalance_pending,
        s.replication_factor,
        members.join(", ")
    )
}

/// Waits until every node sees exactly `members` alive members and no suspect
/// one ("membership is stable"), then calls `wait_ready(members)` on each.
async fn settle(nodes: &[&Node], members: usize) {
    let deadline = Instant::now() + READY_TIMEOUT;
    for node in nodes {
        loop {
            let alive = count_state(node, MemberState::Alive);
            let suspect = count_state(node, MemberState::Suspect);
            if alive == members && suspect == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "membership did not settle to {members} alive members within {READY_TIMEOUT:?}: {}",
                describe(node)
            );
            tokio::time::sleep(POLL).await;
        }
        if let Err(e) = node.wait_ready(members, READY_TIMEOUT).await {
            panic!("wait_ready({members}) failed: {e}; {}", describe(node));
        }
    }
}

/// Awaits one cache operation, turning a hang into a clear failure.
async fn timed<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no answer within {OP_TIMEOUT:?}"),
    }
}

/// Polls `check` until it returns `Ok` or `timeout` passes.
async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => {
                panic!("{what}: still not true after {timeout:?}: {e}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Fails if any problem was collected, quoting the first ones.
fn assert_no_problems(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s), first ones:\n  {}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

/// A `host:port` on which nobody listens (neither UDP nor TCP).
fn dead_address() -> String {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("udp addr").port();
        if let Ok(tcp) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            drop(tcp);
            drop(udp);
            return format!("127.0.0.1:{port}");
        }
    }
}

/// Polls until `counter` reaches `target`.
async fn wait_count(what: &str, counter: &AtomicUsize, target: usize, timeout: Duration) {
    eventually(what, timeout, || async {
        let now = counter.load(Ordering::SeqCst);
        if now >= target {
            Ok(())
        } else {
            Err(format!("{now} < {target}"))
        }
    })
    .await;
}

/// Checks that `key` reads back as `want` through `cache`.
async fn check_value(cache: &Cache, ns: &str, key: &str, want: &Rec, who: &str) -> Option<String> {
    let store = ValueStore::<Rec>::new(cache, ns);
    match timed(&format!("get {key} via {who}"), store.get(key)).await {
        Ok(v) if v == *want => None,
        Ok(v) => Some(format!("{key} via {who}: got {v:?}, want {want:?}")),
        Err(e) => Some(format!("{key} via {who}: {e:?}")),
    }
}

/// Checks that `key` is absent through `cache`.
async fn check_absent(cache: &Cache, ns: &str, key: &str, who: &str) -> Option<String> {
    let store = ValueStore::<Rec>::new(cache, ns);
    match timed(&format!("get {key} via {who}"), store.get(key)).await {
        Err(Error::NotFound) => None,
        Ok(v) => Some(format!("{key} via {who}: deleted key came back as {v:?}")),
        Err(e) => Some(format!("{key} via {who}: expected NotFound, got {e:?}")),
    }
}

// ---------------------------------------------------------------------------
// G1 – no lost acknowledged writes
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct WriteLog {
    acked: Vec<u64>,
    unavailable: u64,
    indeterminate: u64,
    other_errors: Vec<String>,
}

/// Three nodes, R = 2: writes run continuously through the two surviving nodes
/// while the third (not the seed) crashes. Every write that returned `Ok` must be
/// readable through every survivor once they have settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g1_acknowledged_writes_survive_crash_of_one_node_rf2() {
    let mut nodes = start_cluster(3, 2).await;
    let caches = [nodes[0].cache(), nodes[1].cache()];
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));

    let mut writers = Vec::new();
    for w in 0..4u64 {
        let cache = caches[(w % 2) as usize].clone();
        let stop = stop.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let store = ValueStore::<Rec>::new(&cache, "g1");
            let mut log = WriteLog::default();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let id = w * 1_000_000 + n;
                n += 1;
                let key = format!("k{id}");
                match timed(&format!("set {key}"), store.set(&key, &rec(id))).await {
                    Ok(()) => {
                        log.acked.push(id);
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(Error::Unavailable(_)) => log.unavailable += 1,
                    Err(Error::Indeterminate(_)) => log.indeterminate += 1,
                    Err(e) => log.other_errors.push(format!("set {key}: {e:?}")),
                }
            }
            log
        }));
    }

    // Let some load through, then crash a non-seed node mid-stream.
    wait_count("acked writes before the crash", &acked, 150, READY_TIMEOUT).await;
    let crashed = nodes.remove(2);
    let crashed_id = crashed.id().to_string();
    drop(crashed);
    let at_crash = acked.load(Ordering::SeqCst);

    let survivors: Vec<&Node> = nodes.iter().collect();
    settle(&survivors, 2).await;
    // Keep writing for a while after the survivors settled.
    let at_ready = acked.load(Ordering::SeqCst);
    wait_count(
        "acked writes after settling",
        &acked,
        at_ready + 100,
        READY_TIMEOUT,
    )
    .await;
    stop.store(true, Ordering::SeqCst);

    let mut logs = Vec::new();
    for w in writers {
        logs.push(w.await.expect("writer task panicked"));
    }
    let total_acked: usize = logs.iter().map(|l| l.acked.len()).sum();
    let unavailable: u64 = logs.iter().map(|l| l.unavailable).sum();
    let indeterminate: u64 = logs.iter().map(|l| l.indeterminate).sum();
    println!(
        "g1: crashed {crashed_id}; {total_acked} acked ({at_crash} before the crash, {at_ready} \
         when settled), {unavailable} Unavailable, {indeterminate} Indeterminate"
    );

    let mut problems = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let cache = node.cache();
        let who = format!("survivor {i} ({})", node.id());
        for log in &logs {
            for &id in &log.acked {
                if let Some(p) = check_value(&cache, "g1", &format!("k{id}"), &rec(id), &who).await
                {
                    problems.push(p);
                }
            }
        }
    }
    assert_no_problems("G1: acknowledged writes lost after a crash", &problems);

    // api.md: `Unavailable` is "the operation surely did not run: the owners
    // of the key cannot be reached in time"; `Indeterminate` is "the operation
    // may have run (applied on the primary, a replica did not confirm, or the
    // deadline passed)"; `ShuttingDown` is "the node is stopping", and the node
    // called here is not. So a survivor whose peer crashed answers one of the
    // first two, nothing else.
    let other: Vec<String> = logs.iter().flat_map(|l| l.other_errors.clone()).collect();
    assert_no_problems(
        "G1: writes failed with an error other than Unavailable or Indeterminate",
        &other,
    );
}

// ---------------------------------------------------------------------------
// G2 – graceful leave loses nothing
// ---------------------------------------------------------------------------

const G2_VALUES: u64 = 150;
const G2_COLLECTIONS: u64 = 30;

async fn g2_write(cache: &Cache, i: u64) {
    let values = ValueStore::<Rec>::new(cache, "g2");
    let hashes = HashStore::<Rec>::new(cache, "g2");
    let lists = ListStore::<u64>::new(cache, "g2");
    let sets = SetStore::new(cache, "g2");
    let zsets = ZSetStore::new(cache, "g2");
    if i < G2_VALUES {
        let key = format!("v{i}");
        timed(&key, values.set(&key, &rec(i)))
            .await
            .expect("value set");
        return;
    }
    let c = i - G2_VALUES;
    let key = format!("c{c}");
    for f in 0..3u64 {
        let field = format!("f{f}");
        timed(&key, hashes.hset(&key, &field, &rec(c * 10 + f)))
            .await
            .expect("hset");
        timed(&key, lists.rpush(&key, &(c * 10 + f)))
            .await
            .expect("rpush");
        timed(&key, sets.sadd(&key, &format!("m{c}-{f}")))
            .await
            .expect("sadd");
        timed(
            &key,
            zsets.zadd(&key, (c * 10 + f) as f64 + 0.5, &format!("z{f}")),
        )
        .await
        .expect("zadd");
    }
}

async fn g2_check(cache: &Cache, who: &str) -> Vec<String> {
    let hashes = HashStore::<Rec>::new(cache, "g2");
    let lists = ListStore::<u64>::new(cache, "g2");
    let sets = SetStore::new(cache, "g2");
    let zsets = ZSetStore::new(cache, "g2");
    let mut problems = Vec::new();
    for i in 0..G2_VALUES {
        if let Some(p) = check_value(cache, "g2", &format!("v{i}"), &rec(i), who).await {
            problems.push(p);
        }
    }
    for c in 0..G2_COLLECTIONS {
        let key = format!("c{c}");
        let want_hash: HashMap<String, Rec> = (0..3u64)
            .map(|f| (format!("f{f}"), rec(c * 10 + f)))
            .collect();
        match timed(&key, hashes.hget_all(&key)).await {
            Ok(h) if h == want_hash => {}
            other => problems.push(format!("hash {key} via {who}: {other:?}")),
        }
        let want_list: Vec<u64> = (0..3u64).map(|f| c * 10 + f).collect();
        match timed(&key, lists.lrange(&key, 0, -1)).await {
            Ok(l) if l == want_list => {}
            other => problems.push(format!("list {key} via {who}: {other:?}")),
        }
        let want_set: Vec<String> = (0..3u64).map(|f| format!("m{c}-{f}")).collect();
        match timed(&key, sets.smembers(&key)).await {
            Ok(mut s) => {
                s.sort();
                if s != want_set {
                    problems.push(format!("set {key} via {who}: {s:?}"));
                }
            }
            Err(e) => problems.push(format!("set {key} via {who}: {e:?}")),
        }
        let want_zset: Vec<ZSetEntry> = (0..3u64)
            .map(|f| ZSetEntry {
                member: format!("z{f}"),
                score: (c * 10 + f) as f64 + 0.5,
            })
            .collect();
        match timed(&key, zsets.zrange(&key, 0, -1)).await {
            Ok(z) if z == want_zset => {}
            other => problems.push(format!("zset {key} via {who}: {other:?}")),
        }
    }
    problems
}

/// Three nodes, R = 1 (every key has exactly one copy): a graceful `shutdown`
/// of one node must hand its keys over, so nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g2_graceful_leave_loses_nothing_rf1() {
    let mut nodes = start_cluster(3, 1).await;
    for i in 0..G2_VALUES + G2_COLLECTIONS {
        let cache = nodes[(i % 3) as usize].cache();
        g2_write(&cache, i).await;
    }
    // Sanity: everything is readable before the leave.
    assert_no_problems(
        "G2: before the leave",
        &g2_check(&nodes[0].cache(), "node 0").await,
    );

    let leaving = nodes.remove(1);
    let held = leaving.status().keys;
    match tokio::time::timeout(Duration::from_secs(120), leaving.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("shutdown failed: {e}"),
        Err(_) => panic!("shutdown did not return within 120 s"),
    }
    println!("g2: the leaving node held {held} entries");

    let survivors: Vec<&Node> = nodes.iter().collect();
    settle(&survivors, 2).await;
    let mut problems = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        problems.extend(g2_check(&node.cache(), &format!("survivor {i}")).await);
    }
    assert_no_problems("G2: data lost by a graceful leave", &problems);
}

// ---------------------------------------------------------------------------
// G3 / G4 – a join is invisible to clients, then everything converges
// ---------------------------------------------------------------------------

const G34_KEYS: u64 = 1000;
const G34_HOT: u64 = 16;

#[derive(Debug, Default)]
struct ReadStats {
    reads: u64,
    not_found: u64,
    wrong: u64,
    stale: u64,
    errors: u64,
    samples: Vec<String>,
}

impl ReadStats {
    fn note(&mut self, msg: String) {
        if self.samples.len() < 10 {
            self.samples.push(msg);
        }
    }
    fn violations(&self) -> u64 {
        self.not_found + self.wrong + self.stale + self.errors
    }

    /// Counts one read of `key`: `fault` says what is wrong with a value read
    /// (`None` if nothing) and bumps the matching counter itself.
    fn record<T>(
        &mut self,
        key: &str,
        result: Result<T, Error>,
        fault: impl FnOnce(&mut Self, &T) -> Option<String>,
    ) {
        self.reads += 1;
        let problem = match result {
            Ok(value) => fault(self, &value),
            Err(Error::NotFound) => {
                self.not_found += 1;
                Some("NotFound".to_string())
            }
            Err(e) => {
                self.errors += 1;
                Some(format!("{e:?}"))
            }
        };
        if let Some(problem) = problem {
            self.note(format!("{key}: {problem}"));
        }
    }
}

/// Reads every static key and the hot keys through `cache`, over and over,
/// until `stop`. A hot key must never read older than the last write that had
/// been acknowledged before the read started.
fn spawn_reader(
    cache: Cache,
    acked: Arc<Vec<AtomicU64>>,
    passes: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<ReadStats> {
    tokio::spawn(async move {
        let values = ValueStore::<Rec>::new(&cache, "g34");
        let hot = ValueStore::<u64>::new(&cache, "g34hot");
        let mut stats = ReadStats::default();
        while !stop.load(Ordering::SeqCst) {
            // Every static key once per pass, with a hot key read after each one,
            // so hot keys are checked often while data moves.
            for i in 0..G34_KEYS {
                let key = format!("k{i}");
                let read = timed(&format!("get {key}"), values.get(&key)).await;
                stats.record(&key, read, |stats, v| {
                    (*v != rec(i)).then(|| {
                        stats.wrong += 1;
                        format!("wrong value {v:?}")
                    })
                });
                let j = i % G34_HOT;
                let key = format!("h{j}");
                let floor = acked[j as usize].load(Ordering::SeqCst);
                let read = timed(&format!("get {key}"), hot.get(&key)).await;
                stats.record(&key, read, |stats, v| {
                    (*v < floor).then(|| {
                        stats.stale += 1;
                        format!("read {v}, but {floor} was acknowledged")
                    })
                });
            }
            passes.fetch_add(1, Ordering::SeqCst);
        }
        stats
    })
}

async fn join_is_invisible_and_converges(rf: usize) {
    let nodes = start_cluster(2, rf).await;
    let caches = [nodes[0].cache(), nodes[1].cache()];
    for i in 0..G34_KEYS {
        let store = ValueStore::<Rec>::new(&caches[(i % 2) as usize], "g34");
        timed("populate", store.set(&format!("k{i}"), &rec(i)))
            .await
            .expect("populate set");
    }
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..G34_HOT).map(|_| AtomicU64::new(0)).collect());
    for j in 0..G34_HOT {
        let store = ValueStore::<u64>::new(&caches[0], "g34hot");
        timed("populate hot", store.set(&format!("h{j}"), &0))
            .await
            .expect("populate hot set");
    }
    let stop = Arc::new(AtomicBool::new(false));

    // A writer keeps updating the hot keys with increasing numbers.
    let writer = {
        let caches = caches.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let j = n % G34_HOT;
                let key = format!("h{j}");
                let store = ValueStore::<u64>::new(&caches[(n % 2) as usize], "g34hot");
                match timed(&format!("set {key}"), store.set(&key, &n)).await {
                    Ok(()) => acked[j as usize].store(n, Ordering::SeqCst),
                    Err(e) => failures.push(format!("set {key}={n}: {e:?}")),
                }
            }
            (n, failures)
        })
    };

    // Readers through the two existing nodes.
    let mut readers = Vec::new();
    for (i, cache) in caches.iter().enumerate() {
        let passes = Arc::new(AtomicUsize::new(0));
        let handle = spawn_reader(cache.clone(), acked.clone(), passes.clone(), stop.clone());
        readers.push((format!("reader via node {i}"), passes, handle));
    }
    for (name, passes, _) in &readers {
        wait_count(
            &format!("{name}: a pass before the join"),
            passes,
            1,
            READY_TIMEOUT,
        )
        .await;
    }

    // The join.
    let joined = start(config(&[&nodes[0]], rf)).await;
    // Reads through the new node as soon as it serves requests.
    {
        let passes = Arc::new(AtomicUsize::new(0));
        let handle = spawn_reader(joined.cache(), acked.clone(), passes.clone(), stop.clone());
        readers.push(("reader via the joining node".to_string(), passes, handle));
    }
    let all: Vec<&Node> = nodes.iter().chain(std::iter::once(&joined)).collect();
    settle(&all, 3).await;

    // Let every reader complete two more full passes after the cluster settled.
    let marks: Vec<usize> = readers
        .iter()
        .map(|(_, p, _)| p.load(Ordering::SeqCst))
        .collect();
    for ((name, passes, _), mark) in readers.iter().zip(marks) {
        wait_count(
            &format!("{name}: passes after settling"),
            passes,
            mark + 2,
            READY_TIMEOUT,
        )
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    let (writes, write_failures) = writer.await.expect("writer task panicked");

    let mut problems = Vec::new();
    for (name, _, handle) in readers {
        let stats = handle.await.expect("reader task panicked");
        println!(
            "g3/g4 rf={rf}: {name}: {} reads, {} NotFound, {} wrong, {} stale, {} errors",
            stats.reads, stats.not_found, stats.wrong, stats.stale, stats.errors
        );
        if stats.violations() > 0 {
            problems.push(format!("{name}: {stats:?}"));
        }
    }
    println!(
        "g3/g4 rf={rf}: {writes} hot writes, {} failed",
        write_failures.len()
    );
    assert_no_problems("G4: reads during the join were not invisible", &problems);
    assert_no_problems("G4: writes failed during the join", &write_failures);

    // G3: every node answers every read identically.
    let mut problems = Vec::new();
    for (i, node) in all.iter().enumerate() {
        let cache = node.cache();
        let who = format!("node {i}");
        for k in 0..G34_KEYS {
            if let Some(p) = check_value(&cache, "g34", &format!("k{k}"), &rec(k), &who).await {
                problems.push(p);
            }
        }
    }
    for j in 0..G34_HOT {
        let key = format!("h{j}");
        let floor = acked[j as usize].load(Ordering::SeqCst);
        let mut seen = Vec::new();
        for node in &all {
            let store = ValueStore::<u64>::new(&node.cache(), "g34hot");
            seen.push(
                timed(&key, store.get(&key))
                    .await
                    .map_err(|e| e.to_string()),
            );
        }
        let consistent = seen.windows(2).all(|w| w[0] == w[1]);
        let fresh = matches!(&seen[0], Ok(v) if *v >= floor);
        if !consistent || !fresh {
            problems.push(format!(
                "{key}: nodes answered {seen:?}, last acked {floor}"
            ));
        }
    }
    assert_no_problems("G3: nodes disagree after the join settled", &problems);
}

/// Two nodes with data (R = 1, so keys really change owner), a third joins while
/// readers and a writer run. No read may miss or go back in time (G4); once
/// settled, every node answers every key identically (G3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_g4_join_is_invisible_and_converges_rf1() {
    join_is_invisible_and_converges(1).await;
}

/// Same as above with R = 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_g4_join_is_invisible_and_converges_rf2() {
    join_is_invisible_and_converges(2).await;
}

// ---------------------------------------------------------------------------
// G5 – deletes stick
// ---------------------------------------------------------------------------

const G5_KEYS: u64 = 1000;

/// What the G5 test expects of every node.
struct G5Expect {
    deleted_values: Vec<u64>,
    live_values: Vec<u64>,
    emptied_hashes: Vec<u64>,
    emptied_sets: Vec<u64>,
    expired: Vec<String>,
}

async fn g5_check(cache: &Cache, who: &str, want: &G5Expect) -> Vec<String> {
    let hashes = HashStore::<Rec>::new(cache, "g5");
    let sets = SetStore::new(cache, "g5");
    let mut problems = Vec::new();
    for &i in &want.deleted_values {
        if let Some(p) = check_absent(cache, "g5", &format!("k{i}"), who).await {
            problems.push(p);
        }
    }
    for key in &want.expired {
        if let Some(p) = check_absent(cache, "g5", key, who).await {
            problems.push(format!("expired: {p}"));
        }
    }
    for &i in &want.emptied_hashes {
        let key = format!("h{i}");
        match timed(&key, hashes.hget_all(&key)).await {
            Ok(h) if h.is_empty() => {}
            other => problems.push(format!("hash {key} via {who}: came back as {other:?}")),
        }
    }
    for &i in &want.emptied_sets {
        let key = format!("s{i}");
        match timed(&key, sets.smembers(&key)).await {
            Ok(s) if s.is_empty() => {}
            other => problems.push(format!("set {key} via {who}: came back as {other:?}")),
        }
    }
    for &i in &want.live_values {
        if let Some(p) = check_value(cache, "g5", &format!("k{i}"), &rec(i), who).await {
            problems.push(p);
        }
    }
    problems
}

/// Deletes `ids` through alternating caches; returns the ids whose delete was
/// acknowledged and the failures.
fn spawn_deleter(
    caches: Vec<Cache>,
    ids: Vec<u64>,
) -> tokio::task::JoinHandle<(Vec<u64>, Vec<String>)> {
    tokio::spawn(async move {
        let mut done = Vec::new();
        let mut failures = Vec::new();
        for (n, i) in ids.into_iter().enumerate() {
            let store = ValueStore::<Rec>::new(&caches[n % caches.len()], "g5");
            let key = format!("k{i}");
            match timed(&format!("del {key}"), store.del(&key)).await {
                Ok(()) => done.push(i),
                Err(e) => failures.push(format!("del {key}: {e:?}")),
            }
        }
        (done, failures)
    })
}

/// Two nodes, R = 2. Keys are deleted (and some expire) before a third node
/// joins, and more are deleted while it joins and data is being rebalanced. None
/// of them may come back on any node, right after settling or later (the janitor
/// runs often here, so tombstone collection is exercised too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g5_deletes_stick_across_join_and_rebalance() {
    let fast_janitor = |seeds: &[&Node]| Config {
        cleanup_interval: Duration::from_millis(500),
        ..config(seeds, 2)
    };
    let first = start(fast_janitor(&[])).await;
    let second = start(fast_janitor(&[&first])).await;
    settle(&[&first, &second], 2).await;
    let caches = vec![first.cache(), second.cache()];

    let hashes = HashStore::<Rec>::new(&caches[0], "g5");
    let sets = SetStore::new(&caches[1], "g5");
    for i in 0..G5_KEYS {
        let store = ValueStore::<Rec>::new(&caches[(i % 2) as usize], "g5");
        timed("populate", store.set(&format!("k{i}"), &rec(i)))
            .await
            .expect("populate set");
    }
    for i in 0..20u64 {
        let key = format!("h{i}");
        timed(&key, hashes.hset(&key, "only", &rec(i)))
            .await
            .expect("hset");
        let key = format!("s{i}");
        timed(&key, sets.sadd(&key, "only")).await.expect("sadd");
    }
    // Short TTLs: one expires before the join, one around the rebalance.
    let ttl_start = Instant::now();
    let long_ttl = Duration::from_secs(2);
    let mut expired = Vec::new();
    for i in 0..10u64 {
        let store = ValueStore::<Rec>::new(&caches[(i % 2) as usize], "g5");
        let key = format!("t{i}");
        let ttl = if i < 5 {
            Duration::from_millis(300)
        } else {
            long_ttl
        };
        timed(&key, store.set_with_ttl(&key, &rec(i), ttl))
            .await
            .expect("set_with_ttl");
        expired.push(key);
    }

    // Deletes before the join: values, and emptying hashes and sets.
    let mut deleted: Vec<u64> = Vec::new();
    let mut failures = Vec::new();
    let (done, failed) = spawn_deleter(caches.clone(), (0..300).collect())
        .await
        .expect("deleter panicked");
    deleted.extend(done);
    failures.extend(failed);
    for i in 0..10u64 {
        let key = format!("h{i}");
        timed(&key, hashes.hdel(&key, "only")).await.expect("hdel");
        let key = format!("s{i}");
        timed(&key, sets.srem(&key, "only")).await.expect("srem");
    }

    // Deletes while the third node starts, and while rebalancing runs.
    let during_start = spawn_deleter(caches.clone(), (300..450).collect());
    let third = start(fast_janitor(&[&first])).await;
    let during_rebalance = spawn_deleter(
        vec![first.cache(), second.cache(), third.cache()],
        (450..600).collect(),
    );
    let all = [&first, &second, &third];
    settle(&all, 3).await;
    for task in [during_start, during_rebalance] {
        let (done, failed) = task.await.expect("deleter panicked");
        deleted.extend(done);
        failures.extend(failed);
    }
    // G4 says writes keep succeeding while keys move; a failed delete has an
    // unknown outcome, so it is reported but not checked below.
    assert_no_problems("G4/G5: deletes failed", &failures);

    let want = G5Expect {
        deleted_values: deleted,
        live_values: (600..G5_KEYS).collect(),
        emptied_hashes: (0..10).collect(),
        emptied_sets: (0..10).collect(),
        expired,
    };
    // TTL keys are only "expired" once their TTL has passed.
    tokio::time::sleep_until((ttl_start + long_ttl).into()).await;

    let mut problems = Vec::new();
    for (i, node) in all.iter().enumerate() {
        problems.extend(g5_check(&node.cache(), &format!("node {i}"), &want).await);
    }
    assert_no_problems("G5: right after settling", &problems);

    // Keep checking for a while: gossip, repair, the janitor and any late
    // rebalance batches get many rounds to (wrongly) resurrect something.
    let until = Instant::now() + Duration::from_secs(4);
    let mut rounds = 0;
    while Instant::now() < until {
        let mut problems = Vec::new();
        for (i, node) in all.iter().enumerate() {
            problems.extend(g5_check(&node.cache(), &format!("node {i}"), &want).await);
        }
        assert_no_problems(&format!("G5: {rounds} rounds after settling"), &problems);
        rounds += 1;
        tokio::time::sleep(POLL).await;
    }
    for node in all {
        assert_eq!(node.status().rebalance_pending, 0, "{}", describe(node));
    }
}

// ---------------------------------------------------------------------------
// Membership: refused joins and unreachable seeds
// ---------------------------------------------------------------------------

/// cluster.md: "A node whose replication factor or protocol version is
/// incompatible is refused at join with a clear error from `Node::start` —
/// never a process exit."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_with_different_replication_factor_is_refused_with_an_error() {
    let first = start(config(&[], 2)).await;
    settle(&[&first], 1).await;

    let cfg = config(&[&first], 3);
    let attempt = tokio::spawn(async move { Node::start(cfg).await.map(drop) });
    let outcome = tokio::time::timeout(Duration::from_secs(60), attempt)
        .await
        .expect("Node::start with an incompatible replication factor did not return in 60 s");
    match outcome {
        Err(join) => panic!("Node::start panicked instead of returning an error: {join}"),
        Ok(Ok(())) => panic!("a node with replication_factor 3 joined a cluster using 2"),
        Ok(Err(e)) => println!("refused as expected: {e} ({e:?})"),
    }

    // The refusal was about the replication factor: a compatible node still
    // joins the same seed, and the cluster settles with exactly two members.
    let second = start(config(&[&first], 2)).await;
    settle(&[&first, &second], 2).await;
}

/// cluster.md: "`Node::start` in cluster mode with seeds fails with a clear error
/// if no seed can be reached within a bounded time".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_seed_makes_start_fail_in_bounded_time() {
    let mut cfg = config(&[], 1);
    cfg.seeds = vec![dead_address()];
    let began = Instant::now();
    let attempt = tokio::spawn(async move { Node::start(cfg).await.map(drop) });
    let outcome = tokio::time::timeout(Duration::from_secs(60), attempt)
        .await
        .expect("Node::start with an unreachable seed did not return within 60 s");
    match outcome {
        Err(join) => panic!("Node::start panicked instead of returning an error: {join}"),
        Ok(Ok(())) => panic!("Node::start succeeded although its only seed is unreachable"),
        Ok(Err(e)) => println!("failed as expected after {:?}: {e}", began.elapsed()),
    }
}

// ---------------------------------------------------------------------------
// TTL across nodes and the status snapshot
// ---------------------------------------------------------------------------

/// Three nodes, R = 2: the `ClusterStatus` shape after `wait_ready`, then a TTL
/// set through one node is seen and expires through the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_set_on_one_node_expires_on_another_and_status_is_sane() {
    let nodes = start_cluster(3, 2).await;

    // Status shape.
    let ids: Vec<String> = nodes.iter().map(|n| n.id().to_string()).collect();
    for node in &nodes {
        let s = node.status();
        let why = describe(node);
        assert_eq!(s.node_id, node.id(), "{why}");
        assert_eq!(s.replication_factor, 2, "{why}");
        assert_eq!(s.rebalance_pending, 0, "{why}");
        assert_eq!(s.members.len(), 3, "{why}");
        let mut seen: Vec<String> = s.members.iter().map(|m| m.id.clone()).collect();
        seen.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(seen, want, "{why}");
        for m in &s.members {
            assert_eq!(m.state, MemberState::Alive, "{why}");
            assert!(m.gossip_addr.is_some() && m.rpc_addr.is_some(), "{why}");
            assert!(m.ring_share > 0.0 && m.ring_share < 1.0, "{why}");
        }
        let me = s
            .members
            .iter()
            .find(|m| m.id == node.id())
            .expect("members includes this node");
        assert_eq!(me.gossip_addr, node.gossip_addr(), "{why}");
        assert_eq!(me.rpc_addr, node.rpc_addr(), "{why}");
        let total: f64 = s.members.iter().map(|m| m.ring_share).sum();
        assert!(
            (total - 1.0).abs() < 0.01,
            "ring shares sum to {total}: {why}"
        );
    }

    // `keys` counts replicas: N keys at R = 2 are 2N entries cluster-wide.
    let n_keys = 100u64;
    let values = ValueStore::<Rec>::new(&nodes[0].cache(), "status");
    for i in 0..n_keys {
        timed("set", values.set(&format!("k{i}"), &rec(i)))
            .await
            .expect("set");
    }
    eventually("keys sum to 2N", Duration::from_secs(10), || async {
        let total: u64 = nodes.iter().map(|n| n.status().keys).sum();
        if total == 2 * n_keys {
            Ok(())
        } else {
            Err(format!("sum of keys = {total}"))
        }
    })
    .await;
    assert!(nodes.iter().any(|n| n.status().memory_bytes > 0));

    // TTL: set through node 0, read and watch expire through nodes 1 and 2.
    let ttl = Duration::from_millis(1500);
    let writer = ValueStore::<Rec>::new(&nodes[0].cache(), "ttl");
    let keys: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let before = Instant::now();
    for (i, key) in keys.iter().enumerate() {
        timed(key, writer.set_with_ttl(key, &rec(i as u64), ttl))
            .await
            .expect("set_with_ttl");
    }
    let set_done = before.elapsed();
    for node in &nodes[1..] {
        let store = ValueStore::<Rec>::new(&node.cache(), "ttl");
        for (i, key) in keys.iter().enumerate() {
            // Still live (unless this machine was too slow to tell).
            let r = timed(key, store.get(key)).await;
            let remaining = timed(key, store.ttl(key)).await;
            if before.elapsed() < ttl {
                assert_eq!(
                    r.ok(),
                    Some(rec(i as u64)),
                    "{key} should be live via another node"
                );
                match remaining {
                    Ok(Some(d)) => assert!(d > Duration::ZERO && d <= ttl, "{key}: ttl {d:?}"),
                    other => panic!("{key}: ttl() via another node returned {other:?}"),
                }
            }
        }
    }
    for (n, node) in nodes.iter().enumerate() {
        let store = ValueStore::<Rec>::new(&node.cache(), "ttl");
        for key in &keys {
            let store = store.clone();
            eventually(
                &format!("{key} expires via node {n}"),
                Duration::from_secs(30),
                || {
                    let store = store.clone();
                    async move {
                        match timed(key, store.get(key)).await {
                            Err(Error::NotFound) => Ok(()),
                            other => Err(format!("{other:?}")),
                        }
                    }
                },
            )
            .await;
            // Never before its deadline (the deadline was fixed after `before`).
            assert!(
                before.elapsed() >= ttl,
                "{key} expired after {:?}, before its {ttl:?} TTL",
                before.elapsed()
            );
            match timed(key, store.ttl(key)).await {
                Err(Error::NotFound) => {}
                other => panic!("ttl({key}) of an expired key via node {n}: {other:?}"),
            }
        }
    }
    println!("ttl: {} keys set in {set_done:?}", keys.len());
}
