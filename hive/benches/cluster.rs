//! P4 and P5 (spec: performance.md): a get forwarded to the key's primary in a
//! 3-node loopback cluster — one at a time (P4) and with 64 or 256 in flight
//! (P5) — against a bare gRPC echo through the same transport, with request and
//! reply payloads of the same sizes, measured in the same run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hive::{Config, GossipPreset, Mode, Node, ValueStore};
use hive_transport::{
    ErrorKind, ExecuteRequest, ExecuteResponse, GrpcClient, GrpcServer, Operation, PeerClient,
    PeerHandler, PeerStatus, RemoteError, ReplicateRequest, ReplicateResponse, TransferAck,
    TransferBatch, TransportOptions,
};

const VALUE_LEN: usize = 100;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Answers every operation with a reply as large as a forwarded get's.
#[derive(Debug)]
struct Echo;

impl PeerHandler for Echo {
    async fn execute(&self, request: ExecuteRequest) -> Result<ExecuteResponse, RemoteError> {
        let reply = Bytes::from(vec![7u8; VALUE_LEN + 12]);
        Ok(ExecuteResponse {
            results: request.ops.iter().map(|_| Ok(reply.clone())).collect(),
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
            applied: 0,
            error: None,
            rejected: Vec::new(),
        })
    }
    async fn status(&self) -> Result<PeerStatus, RemoteError> {
        Err(RemoteError::new(ErrorKind::Unavailable, "echo only"))
    }
}

async fn cluster() -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for _ in 0..3 {
        let seeds = nodes
            .iter()
            .filter_map(Node::gossip_addr)
            .map(|addr| addr.to_string())
            .collect();
        let config = Config {
            mode: Mode::Cluster,
            bind_addr: "127.0.0.1".into(),
            bind_port: 0,
            seeds,
            gossip_preset: GossipPreset::Local,
            gossip_interval: Duration::from_millis(50),
            rebalance_debounce: Duration::from_millis(50),
            ..Config::default()
        };
        nodes.push(Node::start(config).await.expect("node starts"));
    }
    for node in &nodes {
        node.wait_ready(3, Duration::from_secs(30))
            .await
            .expect("cluster settles");
    }
    nodes
}

/// Runs `iters` operations spread over `concurrency` tasks; returns the time
/// `iters` of them took.
async fn in_flight<F, Fut>(iters: u64, concurrency: u64, op: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let per_task = (iters / concurrency).max(1);
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    op().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a benchmark task");
    }
    start
        .elapsed()
        .mul_f64(iters as f64 / (per_task * concurrency) as f64)
}

fn p4_p5(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let nodes = runtime.block_on(cluster());
    // A key whose primary is another node: the ring decides, as on every node.
    let mut ring = hive_ring::Ring::<String>::new();
    for node in &nodes {
        ring.add(node.id().to_owned(), hive_ring::vnodes_for_mem_limit(0));
    }
    let key = (0..)
        .map(|i| format!("key-{i}"))
        .find(|key| {
            ring.owner(format!("bench:v:{key}").as_bytes())
                .map(String::as_str)
                != Some(nodes[0].id())
        })
        .expect("some key lives elsewhere");
    let store = ValueStore::<Vec<u8>>::new(&nodes[0].cache(), "bench");
    runtime
        .block_on(store.set(&key, &vec![7u8; VALUE_LEN]))
        .unwrap();

    let options = TransportOptions::default();
    let server = runtime
        .block_on(GrpcServer::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Echo,
            options.clone(),
        ))
        .unwrap();
    let echo_addr = server.local_addr();
    let client = GrpcClient::new(options);
    let request = ExecuteRequest {
        from_node: "bench".into(),
        view: 0,
        timeout_ms: 0,
        ops: vec![Operation {
            key: Bytes::from(format!("bench:v:{key}")),
            op: Bytes::from(vec![1u8; 8]),
        }],
    };

    let mut p4 = c.benchmark_group("P4");
    p4.bench_function("grpc_echo", |b| {
        b.to_async(&runtime)
            .iter(|| client.execute(echo_addr, request.clone(), TIMEOUT))
    });
    p4.bench_function("forwarded_get", |b| {
        b.to_async(&runtime).iter(|| store.get(&key))
    });
    p4.finish();

    let mut p5 = c.benchmark_group("P5");
    for concurrency in [64u64, 256] {
        p5.bench_function(BenchmarkId::new("grpc_echo", concurrency), |b| {
            b.iter_custom(|iters| {
                let (client, request) = (client.clone(), request.clone());
                runtime.block_on(in_flight(iters, concurrency, move || {
                    let (client, request) = (client.clone(), request.clone());
                    async move {
                        client
                            .execute(echo_addr, request, TIMEOUT)
                            .await
                            .expect("echo");
                    }
                }))
            })
        });
        p5.bench_function(BenchmarkId::new("forwarded_get", concurrency), |b| {
            b.iter_custom(|iters| {
                let (store, key) = (store.clone(), key.clone());
                runtime.block_on(in_flight(iters, concurrency, move || {
                    let (store, key) = (store.clone(), key.clone());
                    async move {
                        store.get(&key).await.expect("forwarded get");
                    }
                }))
            })
        });
    }
    p5.finish();

    runtime.block_on(async {
        let _ = server.shutdown().await;
        for node in nodes {
            node.shutdown().await.unwrap();
        }
    });
}

criterion_group!(benches, p4_p5);
criterion_main!(benches);
