//! P8 (spec: performance.md): a third node joins a 2-node cluster holding
//! `HIVE_P8_KEYS` keys (default 100 000; the spec's figure is 1 M) of 100-byte
//! values, one copy each; measured from the join until every node reports the
//! rebalance settled. The baseline, in the same run, streams as many entries of
//! the same size as the join moved through the same transfer stream
//! (`hive-transport`, same batch size and window) to a peer that only
//! acknowledges: the loopback rate of the stream itself.
//!
//! The second half of P8, client latency during a rebalance, is measured once
//! per run outside criterion: readers read loaded keys one at a time through
//! the first node for a second of steady state, then while the third node
//! joins and the data moves; the two p99s and their ratio are printed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use hive::{Config, GossipPreset, Mode, Node, ValueStore};
use hive_transport::{
    Entry, ErrorKind, ExecuteRequest, ExecuteResponse, GrpcClient, GrpcServer, PeerClient,
    PeerHandler, PeerStatus, RemoteError, ReplicateRequest, ReplicateResponse, TransferAck,
    TransferBatch, TransportOptions,
};

const VALUE_LEN: usize = 100;
/// Entries per transfer batch, as the rebalance sends them.
const BATCH: usize = 256;

fn keys() -> u64 {
    std::env::var("HIVE_P8_KEYS")
        .ok()
        .and_then(|keys| keys.parse().ok())
        .unwrap_or(100_000)
}

fn config(seeds: &[&Node]) -> Config {
    Config {
        mode: Mode::Cluster,
        bind_addr: "127.0.0.1".into(),
        bind_port: 0,
        seeds: seeds
            .iter()
            .filter_map(|node| node.gossip_addr())
            .map(|a| a.to_string())
            .collect(),
        gossip_preset: GossipPreset::Local,
        gossip_interval: Duration::from_millis(50),
        rebalance_debounce: Duration::from_millis(20),
        request_timeout: Duration::from_secs(30),
        ..Config::default()
    }
}

/// Client tasks reading during the latency measurement.
const READERS: u64 = 8;

fn key(index: u64) -> String {
    format!("key-{index:08}")
}

/// Starts a 2-node cluster holding `keys` keys.
async fn loaded_pair(keys: u64) -> (Node, Node) {
    let first = Node::start(config(&[])).await.unwrap();
    let second = Node::start(config(&[&first])).await.unwrap();
    for node in [&first, &second] {
        node.wait_ready(2, Duration::from_secs(30)).await.unwrap();
    }
    let value = vec![7u8; VALUE_LEN];
    let loaders: Vec<_> = (0..256u64)
        .map(|task| {
            let store = ValueStore::<Vec<u8>>::new(&first.cache(), "p8");
            let value = value.clone();
            tokio::spawn(async move {
                for index in (task..keys).step_by(256) {
                    store.set(&key(index), &value).await.unwrap();
                }
            })
        })
        .collect();
    for loader in loaders {
        loader.await.unwrap();
    }
    (first, second)
}

/// Loads a 2-node cluster, joins a third node, and returns how long the
/// rebalance took and how many keys moved to the newcomer.
async fn join_once(keys: u64) -> (Duration, u64) {
    let (first, second) = loaded_pair(keys).await;
    let started = Instant::now();
    let third = Node::start(config(&[&first, &second])).await.unwrap();
    for node in [&first, &second, &third] {
        node.wait_ready(3, Duration::from_secs(300)).await.unwrap();
    }
    let took = started.elapsed();
    let moved = third.status().keys;
    for node in [third, second, first] {
        node.shutdown().await.unwrap();
    }
    (took, moved)
}

/// Read latencies, and reads that found nothing (G4 says none should).
#[derive(Default)]
struct Reads {
    latencies: Vec<Duration>,
    misses: u64,
}

impl Reads {
    fn p99(&mut self) -> Duration {
        self.latencies.sort_unstable();
        let at = (self.latencies.len() * 99 / 100).min(self.latencies.len().saturating_sub(1));
        self.latencies.get(at).copied().unwrap_or_default()
    }
}

/// Runs [`READERS`] tasks reading random loaded keys through `node`, one read
/// at a time each, while `during` runs; returns its output and the reads.
async fn reading_while<T>(node: &Node, keys: u64, during: impl Future<Output = T>) -> (T, Reads) {
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let store = ValueStore::<Vec<u8>>::new(&node.cache(), "p8");
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut reads = Reads::default();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let found = store.get(&key(fastrand::u64(..keys))).await.is_ok();
                    reads.latencies.push(started.elapsed());
                    reads.misses += u64::from(!found);
                }
                reads
            })
        })
        .collect();
    let output = during.await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Reads::default();
    for reader in readers {
        let reads = reader.await.unwrap();
        all.latencies.extend(reads.latencies);
        all.misses += reads.misses;
    }
    (output, all)
}

/// Measures client read latency in steady state and while a third node joins.
async fn latency_during_join(keys: u64) {
    let (first, second) = loaded_pair(keys).await;
    let ((), mut steady) =
        reading_while(&first, keys, tokio::time::sleep(Duration::from_secs(1))).await;
    let (third, mut during) = reading_while(&first, keys, async {
        let third = Node::start(config(&[&first, &second])).await.unwrap();
        for node in [&first, &second, &third] {
            node.wait_ready(3, Duration::from_secs(300)).await.unwrap();
        }
        third
    })
    .await;
    let (steady_p99, during_p99) = (steady.p99(), during.p99());
    println!(
        "P8 client p99, {READERS} readers through one node: steady {steady_p99:?} ({} reads), \
         during the join's rebalance {during_p99:?} ({} reads, {} misses): {:.2}x (target <= 3x)",
        steady.latencies.len(),
        during.latencies.len(),
        steady.misses + during.misses,
        during_p99.as_secs_f64() / steady_p99.as_secs_f64().max(f64::MIN_POSITIVE),
    );
    for node in [third, second, first] {
        node.shutdown().await.unwrap();
    }
}

/// Acknowledges every batch without storing anything.
#[derive(Debug)]
struct Sink;

impl PeerHandler for Sink {
    async fn execute(&self, _: ExecuteRequest) -> Result<ExecuteResponse, RemoteError> {
        Ok(ExecuteResponse {
            results: Vec::new(),
        })
    }
    async fn replicate(&self, _: ReplicateRequest) -> Result<ReplicateResponse, RemoteError> {
        Ok(ReplicateResponse {
            results: Vec::new(),
        })
    }
    async fn transfer(&self, batch: TransferBatch) -> Result<TransferAck, RemoteError> {
        Ok(TransferAck {
            sequence: batch.sequence,
            applied: batch.entries.len() as u32,
            error: None,
            rejected: Vec::new(),
        })
    }
    async fn status(&self) -> Result<PeerStatus, RemoteError> {
        Err(RemoteError::new(ErrorKind::Unavailable, "sink only"))
    }
}

/// Streams `entries` entries like a rebalance's to a sink; returns the time.
async fn stream_once(client: &GrpcClient, sink: SocketAddr, entries: u64) -> Duration {
    // A 100-byte value is about 103 bytes of MessagePack in an entry payload.
    let entry = |i: u64| Entry {
        key: Bytes::from(format!("p8:v:key-{i:08}")),
        hlc: i,
        node: 1,
        ttl_ms: None,
        payload: Bytes::from(vec![7u8; VALUE_LEN + 4]),
        tombstone: false,
        base: None,
    };
    let started = Instant::now();
    let mut stream = client
        .transfer(sink, Duration::from_secs(30))
        .await
        .unwrap();
    let mut sequence = 0;
    let mut next = 0;
    while next < entries {
        let end = (next + BATCH as u64).min(entries);
        let batch = TransferBatch {
            from_node: "bench".into(),
            view: 1,
            sequence,
            entries: (next..end).map(entry).collect(),
            last: end == entries,
        };
        stream.send(batch).await.unwrap();
        sequence += 1;
        next = end;
    }
    stream.finish().await.unwrap();
    started.elapsed()
}

fn p8(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let keys = keys();
    let options = TransportOptions::default();
    let sink = runtime
        .block_on(GrpcServer::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Sink,
            options.clone(),
        ))
        .unwrap();
    let sink_addr = sink.local_addr();
    let client = GrpcClient::new(options);
    // How many keys a join moves, to stream as many in the baseline.
    let (_, moved) = runtime.block_on(join_once(keys));
    runtime.block_on(latency_during_join(keys));

    let mut group = c.benchmark_group("P8");
    group.sample_size(10);
    group.bench_function("bare_stream", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += stream_once(&client, sink_addr, moved).await;
                }
                total
            })
        })
    });
    group.bench_function("join_rebalance", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += join_once(keys).await.0;
                }
                total
            })
        })
    });
    group.finish();
    println!("P8: {keys} keys in the cluster, {moved} moved to the joining node per run");
    runtime.block_on(async {
        let _ = sink.shutdown().await;
    });
}

criterion_group!(benches, p8);
criterion_main!(benches);
