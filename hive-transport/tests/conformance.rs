//! The transport conformance suite: the behaviour every `PeerClient` and server
//! pair must show, written once against a small [`Harness`] and run against the
//! gRPC transport (real sockets on 127.0.0.1) and the in-memory one, plus the
//! in-memory network's partition controls.
//!
//! Spec: cluster.md "Peer protocol" (deadlines, size bounds, one lazy channel
//! per peer, remote errors keep their kind) and "Rebalancing" (bounded batches
//! with back-pressure).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use bytes::Bytes;
use hive_transport::{
    ApplyOutcome, Entry, ErrorKind, ExecuteRequest, ExecuteResponse, GrpcClient, GrpcServer,
    MemoryClient, MemoryNetwork, MemoryServer, Operation, PROTOCOL_VERSION, PeerAddr, PeerClient,
    PeerHandler, PeerStatus, RemoteError, ReplicateRequest, ReplicateResponse, Stamp, TransferAck,
    TransferBatch, TransportError, TransportOptions,
};
use tokio::sync::Semaphore;

/// A deadline long enough never to pass in a healthy test.
const DEADLINE: Duration = Duration::from_secs(10);

/// A size bound small enough to cross cheaply in tests.
const SMALL_LIMIT: usize = 64 * 1024;

/// A payload larger than [`SMALL_LIMIT`].
const BIG: usize = 100 * 1024;

/// Returns 127.0.0.1 with `port`.
fn local(port: u16) -> PeerAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

// ---------------------------------------------------------------------------
// The handler every test serves.
// ---------------------------------------------------------------------------

/// A handler whose behaviour the requests choose. Execute ops are a tiny
/// language: `echo` replies `from_node/view/key`; `err:N` fails that op with
/// `ErrorKind::ALL[N]`; `fail:N` fails the whole request with it; `sleep:MS`
/// sleeps (the behaviour under test in deadline tests) then replies `slept`;
/// `big:N` replies N bytes.
#[derive(Debug, Default)]
struct TestHandler {
    /// When set, each transfer batch takes a permit before it is applied.
    gate: Option<Arc<Semaphore>>,
    /// Batches the test's sender has finished sending (the test counts them).
    sent: Arc<AtomicUsize>,
    /// Largest `sent - sequence` seen when a batch was applied: how far ahead
    /// of the receiver the sender ever got.
    max_ahead: AtomicUsize,
    /// Transfer batches applied.
    batches: AtomicUsize,
    /// Execute requests that reached the handler.
    executes: AtomicUsize,
    /// `sleep` ops that ran to the end (were not dropped by a deadline).
    slept: AtomicUsize,
}

impl TestHandler {
    fn with_gate(gate: Arc<Semaphore>) -> Self {
        TestHandler {
            gate: Some(gate),
            ..TestHandler::default()
        }
    }
}

/// Returns the kind `ErrorKind::ALL[index]` named in an op like `err:3`.
fn kind_at(index: &str) -> Result<ErrorKind, RemoteError> {
    index
        .parse::<usize>()
        .ok()
        .and_then(|i| ErrorKind::ALL.get(i).copied())
        .ok_or_else(|| RemoteError::new(ErrorKind::InvalidArgument, "bad kind index"))
}

impl PeerHandler for TestHandler {
    async fn execute(&self, request: ExecuteRequest) -> Result<ExecuteResponse, RemoteError> {
        self.executes.fetch_add(1, Ordering::SeqCst);
        let mut results = Vec::with_capacity(request.ops.len());
        for op in &request.ops {
            let text = std::str::from_utf8(&op.op)
                .map_err(|_| RemoteError::new(ErrorKind::Codec, "op is not UTF-8"))?;
            let (verb, arg) = text.split_once(':').unwrap_or((text, ""));
            let result = match verb {
                "echo" => {
                    let key = String::from_utf8_lossy(&op.key);
                    Ok(Bytes::from(format!(
                        "{}/{}/{key}",
                        request.from_node, request.view
                    )))
                }
                "err" => Err(RemoteError::new(kind_at(arg)?, format!("op failed: {arg}"))),
                "fail" => return Err(RemoteError::new(kind_at(arg)?, "request refused")),
                "sleep" => {
                    let ms = arg.parse().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    self.slept.fetch_add(1, Ordering::SeqCst);
                    Ok(Bytes::from_static(b"slept"))
                }
                "big" => Ok(Bytes::from(vec![b'x'; arg.parse().unwrap_or(0)])),
                _ => Err(RemoteError::new(ErrorKind::InvalidArgument, text)),
            };
            results.push(result);
        }
        Ok(ExecuteResponse { results })
    }

    async fn replicate(&self, request: ReplicateRequest) -> Result<ReplicateResponse, RemoteError> {
        let results = request
            .entries
            .iter()
            .map(|entry| {
                if entry.payload == "bad" {
                    Err(RemoteError::new(ErrorKind::Codec, "undecodable payload"))
                } else if entry.base.is_none_or(|base| base.hlc + 1 != entry.hlc) {
                    Err(RemoteError::new(
                        ErrorKind::Codec,
                        "the base did not arrive",
                    ))
                } else if entry.payload == "diverged" {
                    Ok(ApplyOutcome::Diverged)
                } else if entry.tombstone {
                    Ok(ApplyOutcome::Deleted)
                } else if entry.ttl_ms == Some(0) {
                    Ok(ApplyOutcome::Expired)
                } else if entry.hlc % 2 == 0 {
                    Ok(ApplyOutcome::Stored)
                } else {
                    Ok(ApplyOutcome::Stale)
                }
            })
            .collect();
        Ok(ReplicateResponse { results })
    }

    async fn transfer(&self, batch: TransferBatch) -> Result<TransferAck, RemoteError> {
        if let Some(gate) = &self.gate {
            gate.acquire()
                .await
                .map_err(|_| RemoteError::new(ErrorKind::Unavailable, "gate closed"))?
                .forget();
        }
        let sent = self.sent.load(Ordering::SeqCst) as u64;
        let ahead = usize::try_from(sent.saturating_sub(batch.sequence)).unwrap_or(usize::MAX);
        self.max_ahead.fetch_max(ahead, Ordering::SeqCst);
        if batch.entries.first().is_some_and(|e| e.key == "reject") {
            return Err(RemoteError::new(ErrorKind::CapacityExceeded, "no room"));
        }
        self.batches.fetch_add(1, Ordering::SeqCst);
        // An entry keyed "refuse" is refused alone; the others are applied.
        let rejected: Vec<(Bytes, RemoteError)> = batch
            .entries
            .iter()
            .filter(|entry| entry.key == "refuse")
            .map(|entry| {
                let error = RemoteError::new(ErrorKind::InvalidArgument, "over the limit");
                (entry.key.clone(), error)
            })
            .collect();
        Ok(TransferAck {
            sequence: u64::MAX, // the transport overwrites it with the batch's
            applied: u32::try_from(batch.entries.len() - rejected.len()).unwrap_or(u32::MAX),
            error: None,
            rejected,
        })
    }

    async fn status(&self) -> Result<PeerStatus, RemoteError> {
        Ok(PeerStatus {
            node_id: "test-node".to_string(),
            protocol_version: PROTOCOL_VERSION,
            keys: 42,
            memory_bytes: 4096,
            rebalance_pending: 3,
            view: 5,
            settled: true,
        })
    }
}

/// Returns a request running `ops` on keys `k0`, `k1`, ...
fn request(ops: &[&str]) -> ExecuteRequest {
    ExecuteRequest {
        from_node: "caller".to_string(),
        view: 7,
        timeout_ms: 0,
        ops: ops
            .iter()
            .enumerate()
            .map(|(i, op)| Operation {
                key: Bytes::from(format!("k{i}")),
                op: Bytes::copy_from_slice(op.as_bytes()),
            })
            .collect(),
    }
}

/// Returns a two-entry transfer batch.
fn batch(sequence: u64, last: bool) -> TransferBatch {
    TransferBatch {
        from_node: "old-owner".to_string(),
        view: 3,
        sequence,
        entries: (0..2)
            .map(|i| Entry {
                key: Bytes::from(format!("key-{sequence}-{i}")),
                hlc: sequence,
                node: 1,
                ttl_ms: Some(60_000),
                payload: Bytes::from_static(b"value"),
                tombstone: false,
                base: None,
            })
            .collect(),
        last,
    }
}

/// Returns a batch the test handler refuses.
fn rejected_batch(sequence: u64) -> TransferBatch {
    let mut batch = batch(sequence, false);
    batch.entries[0].key = Bytes::from_static(b"reject");
    batch
}

/// Returns a batch whose encoding is larger than [`SMALL_LIMIT`].
fn big_batch(sequence: u64) -> TransferBatch {
    let mut batch = batch(sequence, false);
    batch.entries[0].payload = Bytes::from(vec![0; BIG]);
    batch
}

/// Waits until `condition` holds, polling, for at most 10 s.
async fn eventually(what: &str, condition: impl Fn() -> bool) -> Result<()> {
    let start = Instant::now();
    while !condition() {
        if start.elapsed() > Duration::from_secs(10) {
            bail!("timed out waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Checks that `condition` holds throughout `period`, polling.
async fn throughout(what: &str, period: Duration, condition: impl Fn() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < period {
        ensure!(condition(), "expected {what} throughout {period:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Returns the replies of an all-successful response.
fn replies(response: ExecuteResponse) -> Result<Vec<Bytes>> {
    response
        .results
        .into_iter()
        .map(|r| r.map_err(anyhow::Error::from))
        .collect()
}

// ---------------------------------------------------------------------------
// The harness: what a transport must provide to run the suite.
// ---------------------------------------------------------------------------

/// Servers and clients of one transport implementation.
trait Harness {
    /// The implementation's client.
    type Client: PeerClient;
    /// Starts serving `handler` at `addr` (port 0: any port) and returns the
    /// address served.
    async fn serve(
        &mut self,
        addr: PeerAddr,
        handler: Arc<TestHandler>,
        options: TransportOptions,
    ) -> hive_transport::Result<PeerAddr>;
    /// Returns a new client.
    fn client(&mut self, options: TransportOptions) -> Self::Client;
    /// Shuts the server at `addr` down, waiting for it.
    async fn stop(&mut self, addr: PeerAddr) -> Result<()>;
    /// Returns an address nothing serves.
    async fn vacant_addr(&mut self) -> Result<PeerAddr>;
    /// Returns how many channels `client` keeps open, if it keeps any.
    fn channel_count(client: &Self::Client) -> Option<usize>;
    /// Shuts every server down.
    async fn finish(self) -> Result<()>;
}

/// The gRPC transport on 127.0.0.1.
#[derive(Default)]
struct GrpcHarness {
    servers: HashMap<PeerAddr, GrpcServer>,
}

impl Harness for GrpcHarness {
    type Client = GrpcClient;

    async fn serve(
        &mut self,
        addr: PeerAddr,
        handler: Arc<TestHandler>,
        options: TransportOptions,
    ) -> hive_transport::Result<PeerAddr> {
        let server = GrpcServer::bind(addr, handler, options).await?;
        let addr = server.local_addr();
        self.servers.insert(addr, server);
        Ok(addr)
    }

    fn client(&mut self, options: TransportOptions) -> GrpcClient {
        GrpcClient::new(options)
    }

    async fn stop(&mut self, addr: PeerAddr) -> Result<()> {
        let server = self.servers.remove(&addr).context("no such server")?;
        Ok(server.shutdown().await?)
    }

    async fn vacant_addr(&mut self) -> Result<PeerAddr> {
        // Bind a port, then free it: nothing listens there afterwards.
        let listener = tokio::net::TcpListener::bind(local(0)).await?;
        Ok(listener.local_addr()?)
    }

    fn channel_count(client: &GrpcClient) -> Option<usize> {
        Some(client.channel_count())
    }

    async fn finish(self) -> Result<()> {
        for (_, server) in self.servers {
            server.shutdown().await?;
        }
        Ok(())
    }
}

/// The in-memory transport.
#[derive(Default)]
struct MemoryHarness {
    network: MemoryNetwork,
    servers: HashMap<PeerAddr, MemoryServer>,
}

/// The address the memory harness's clients call from.
const MEMORY_CLIENT_ADDR: u16 = 1;

impl Harness for MemoryHarness {
    type Client = MemoryClient;

    async fn serve(
        &mut self,
        addr: PeerAddr,
        handler: Arc<TestHandler>,
        options: TransportOptions,
    ) -> hive_transport::Result<PeerAddr> {
        let server = self.network.serve(addr, handler, options)?;
        let addr = server.local_addr();
        self.servers.insert(addr, server);
        Ok(addr)
    }

    fn client(&mut self, options: TransportOptions) -> MemoryClient {
        self.network.client(local(MEMORY_CLIENT_ADDR), options)
    }

    async fn stop(&mut self, addr: PeerAddr) -> Result<()> {
        let server = self.servers.remove(&addr).context("no such server")?;
        server.shutdown().await;
        Ok(())
    }

    async fn vacant_addr(&mut self) -> Result<PeerAddr> {
        Ok(local(9))
    }

    fn channel_count(_client: &MemoryClient) -> Option<usize> {
        None
    }

    async fn finish(self) -> Result<()> {
        for (_, server) in self.servers {
            server.shutdown().await;
        }
        Ok(())
    }
}

/// Runs each named suite function against both implementations.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod grpc {
            use super::*;
            $(
                #[tokio::test]
                async fn $test() -> Result<()> {
                    super::$test(GrpcHarness::default()).await
                }
            )*
        }
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $test() -> Result<()> {
                    super::$test(MemoryHarness::default()).await
                }
            )*
        }
    };
}

conformance!(
    execute_round_trip_keeps_order,
    per_operation_errors_keep_their_kind,
    whole_request_error_keeps_its_kind,
    replicate_round_trip,
    status_round_trip,
    transfer_respects_the_window,
    transfer_error_ack_does_not_end_the_stream,
    deadline_exceeded_is_a_timeout,
    remote_drops_work_past_the_deadline,
    vacant_address_is_unreachable,
    stopped_server_is_unreachable,
    oversize_request_is_refused_by_the_sender,
    oversize_request_is_refused_by_the_receiver,
    oversize_response_is_refused,
    oversize_transfer_batch_is_refused_by_the_receiver,
    forget_then_call_reconnects,
    concurrent_calls_share_one_channel,
    serving_a_taken_address_fails,
    shutdown_lets_calls_in_flight_finish,
    shutdown_cancels_calls_after_the_grace,
);

// ---------------------------------------------------------------------------
// The suite.
// ---------------------------------------------------------------------------

/// Many operations in one request come back in order, with request fields
/// intact.
async fn execute_round_trip_keeps_order<H: Harness>(mut h: H) -> Result<()> {
    let addr = h
        .serve(local(0), Arc::default(), TransportOptions::default())
        .await?;
    let client = h.client(TransportOptions::default());
    let ops: Vec<&str> = (0..200)
        .map(|i| if i % 7 == 3 { "err:0" } else { "echo" })
        .collect();
    let response = client.execute(addr, request(&ops), DEADLINE).await?;
    ensure!(response.results.len() == ops.len());
    for (i, result) in response.results.into_iter().enumerate() {
        if i % 7 == 3 {
            ensure!(
                matches!(&result, Err(e) if e.kind == ErrorKind::NotFound),
                "op {i}: {result:?}"
            );
        } else {
            ensure!(
                result.as_ref().ok() == Some(&Bytes::from(format!("caller/7/k{i}"))),
                "op {i}: {result:?}"
            );
        }
    }
    // An empty request is fine too.
    let response = client.execute(addr, request(&[]), DEADLINE).await?;
    ensure!(response.results.is_empty());
    h.finish().await
}

/// Spec: "NotFound stays NotFound across the wire" — for every kind, inside a
/// response.
async fn per_operation_errors_keep_their_kind<H: Harness>(mut h: H) -> Result<()> {
    let addr = h
        .serve(local(0), Arc::default(), TransportOptions::default())
        .await?;
    let client = h.client(TransportOptions::default());
    let ops: Vec<String> = (0..ErrorKind::ALL.len())
        .map(|i| format!("err:{i}"))
        .collect();
    let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
    let response = client.execute(addr, request(&ops), DEADLINE).await?;
    for (i, (result, kind)) in response.results.into_iter().zip(ErrorKind::ALL).enumerate() {
        ensure!(
            result == Err(RemoteError::new(kind, format!("op failed: {i}"))),
            "{kind:?} came back as {result:?}"
        );
    }
    h.finish().await
}

/// Spec: remote errors keep their kind — for every kind, failing a whole
/// request.
async fn whole_request_error_keeps_its_kind<H: Harness>(mut h: H) -> Result<()> {
    let addr = h
        .serve(local(0), Arc::default(), TransportOptions::default())
        .await?;
    let client = h.client(TransportOptions::default());
    for (i, kind) in ErrorKind::ALL.into_iter().enumerate() {
        let op = format!("fail:{i}");
        match client
            .execute(addr, request(&["echo", &op]), DEADLINE)
            .await
        {
            Err(TransportError::Remote(error)) => {
                ensure!(
                    error == RemoteError::new(kind, "request refused"),
                    "{error:?}"
                );
            }
            other => bail!("{kind:?} came back as {other:?}"),
        }
    }
    h.finish().await
}

/// Entries and their outcomes survive the trip, in order.
async fn replicate_round_trip<H: Harness>(mut h: H) -> Result<()> {
    let addr = h
        .serve(local(0), Arc::default(), TransportOptions::default())
        .await?;
    let client = h.client(TransportOptions::default());
    let entry = |hlc, ttl_ms, payload: &'static str, tombstone| Entry {
        key: Bytes::from(format!("key{hlc}")),
        hlc,
        node: 9,
        ttl_ms,
        payload: Bytes::from_static(payload.as_bytes()),
        tombstone,
        base: Some(Stamp {
            hlc: hlc - 1,
            node: 9,
        }),
    };
    let request = ReplicateRequest {
        from_node: "primary".to_string(),
        view: 11,
        entries: vec![
            entry(2, None, "v", false),
            entry(3, Some(500), "v", false),
            entry(4, Some(0), "v", false),
            entry(5, None, "", true),
            entry(6, None, "bad", false),
            entry(7, None, "diverged", false),
        ],
    };
    let response = client.replicate(addr, request, DEADLINE).await?;
    let expected = vec![
        Ok(ApplyOutcome::Stored),
        Ok(ApplyOutcome::Stale),
        Ok(ApplyOutcome::Expired),
        Ok(ApplyOutcome::Deleted),
        Err(RemoteError::new(ErrorKind::Codec, "undecodable payload")),
        Ok(ApplyOutcome::Diverged),
    ];
    ensure!(response.results == expected, "{:?}", response.results);
    h.finish().await
}

/// The status call returns what the handler reports.
async fn status_round_trip<H: Harness>(mut h: H) -> Result<()> {
    let addr = h
        .serve(local(0), Arc::default(), TransportOptions::default())
        .await?;
    let client = h.client(TransportOptions::default());
    let status = client.status(addr, DEADLINE).await?;
    ensure!(
        status
            == PeerStatus {
                node_id: "test-node".to_string(),
                protocol_version: PROTOCOL_VERSION,
                keys: 42,
                memory_bytes: 4096,
                rebalance_pending: 3,
                view: 5,
                settled: true,
            },
        "{status:?}"
    );
    h.finish().await
}

/// Spec: rebalancing streams bounded batches with back-pressure. 50 batches
/// go through a window of 4: while the receiver holds the first batch, exactly
/// a window's worth is sent; the sender is never more than a window ahead of
/// the receiver; every batch is acknowledged, in order.
async fn transfer_respects_the_window<H: Harness>(mut h: H) -> Result<()> {
    const BATCHES: u64 = 50;
    let gate = Arc::new(Semaphore::new(0));
    let handler = Arc::new(TestHandler::with_gate(Arc::clone(&gate)));
    let options = TransportOptions::default();
    let window = options.transfer_window.get();
    let addr = h
        .serve(local(0), Arc::clone(&handler), options.clone())
        .await?;
    let client = h.client(options);
    let mut stream = client.transfer(addr, DEADLINE).await?;
    ensure!(stream.window() == window);

    let sent = Arc::clone(&handler.sent);
    let sender = tokio::spawn(async move {
        for sequence in 0..BATCHES {
            stream
                .send(batch(sequence, sequence + 1 == BATCHES))
                .await?;
            sent.fetch_add(1, Ordering::SeqCst);
            assert!(stream.unacked() <= stream.window());
        }
        stream.finish().await
    });

    let sent = || handler.sent.load(Ordering::SeqCst);
    eventually("a window of batches is sent", || sent() == window).await?;
    throughout(
        "no batch beyond the window is sent",
        Duration::from_millis(200),
        || sent() == window,
    )
    .await?;
    ensure!(handler.batches.load(Ordering::SeqCst) == 0);

    gate.add_permits(usize::try_from(BATCHES)?);
    let acks = sender.await??;
    let sequences: Vec<u64> = acks.iter().map(|ack| ack.sequence).collect();
    ensure!(
        sequences == (0..BATCHES).collect::<Vec<_>>(),
        "{sequences:?}"
    );
    ensure!(
        acks.iter()
            .all(|ack| ack.applied == 2 && ack.error.is_none())
    );
    ensure!(handler.batches.load(Ordering::SeqCst) == usize::try_from(BATCHES)?);
    let ahead = handler.max_ahead.load(Ordering::SeqCst);
    ensure!(
        ahead == window,
        "sender got {ahead} batches ahead, window {window}"
    );
    h.finish().await
}

/// A batch the receiver cannot apply is acked with the error, an entry it
/// refuses alone comes back with its key and error, and the stream goes on.
async fn transfer_error_ack_does_not_end_the_stream<H: Harness>(mut h: H) -> Result<()> {
    let handler = Arc::new(TestHandler::default());
    let addr = h
        .serve(local(0), Arc::clone(&handler), TransportOptions::default())
        .await?;
    let client = h.client(TransportOptions::default());
    let mut stream = client.transfer(addr, DEADLINE).await?;
    stream.send(batch(0, false)).await?;
    stream.send(rejected_batch(1)).await?;
    let mut partly = batch(2, true);
    partly.entries[1].key = Bytes::from_static(b"refuse");
    stream.send(partly).await?;
    let mut acks = Vec::new();
    while let Some(ack) = stream.next_ack().await? {
        acks.push(ack);
    }
    let expected = vec![
        TransferAck {
            sequence: 0,
            applied: 2,
            error: None,
            rejected: Vec::new(),
        },
        TransferAck {
            sequence: 1,
            applied: 0,
            error: Some(RemoteError::new(ErrorKind::CapacityExceeded, "no room")),
            rejected: Vec::new(),
        },
        TransferAck {
            sequence: 2,
            applied: 1,
            error: None,
            rejected: vec![(
                Bytes::from_static(b"refuse"),
                RemoteError::new(ErrorKind::InvalidArgument, "over the limit"),
            )],
        },
    ];
    ensure!(acks == expected, "{acks:?}");
    ensure!(stream.finish().await?.is_empty());
    ensure!(handler.batches.load(Ordering::SeqCst) == 2);
    h.finish().await
}

/// Spec: every request has a deadline. A handler slower than the deadline
/// makes the call fail with `Timeout` soon after the deadline, and the server
/// keeps serving.
async fn deadline_exceeded_is_a_timeout<H: Harness>(mut h: H) -> Result<()> {
    let addr = h
        .serve(local(0), Arc::default(), TransportOptions::default())
        .await?;
    let client = h.client(TransportOptions::default());
    let deadline = Duration::from_millis(200);
    let start = Instant::now();
    let result = client
        .execute(addr, request(&["sleep:20000"]), deadline)
        .await;
    ensure!(
        matches!(result, Err(TransportError::Timeout { peer, after })
            if peer == addr && after == deadline),
        "{result:?}"
    );
    ensure!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    replies(client.execute(addr, request(&["echo"]), DEADLINE).await?)?;
    h.finish().await
}

/// Spec: every request has a deadline — once it passes the remote drops the
/// handler's work (gRPC: `grpc-timeout`, or the caller's stream reset) instead
/// of finishing it for nobody.
async fn remote_drops_work_past_the_deadline<H: Harness>(mut h: H) -> Result<()> {
    let handler = Arc::new(TestHandler::default());
    let addr = h
        .serve(local(0), Arc::clone(&handler), TransportOptions::default())
        .await?;
    let client = h.client(TransportOptions::default());
    let result = client
        .execute(addr, request(&["sleep:300"]), Duration::from_millis(50))
        .await;
    ensure!(
        matches!(result, Err(TransportError::Timeout { .. })),
        "{result:?}"
    );
    ensure!(handler.executes.load(Ordering::SeqCst) == 1);
    throughout(
        "the handler's work stays dropped",
        Duration::from_millis(500),
        || handler.slept.load(Ordering::SeqCst) == 0,
    )
    .await?;
    h.finish().await
}

/// Calls to an address nothing serves fail with `Unreachable`, well before
/// their deadline.
async fn vacant_address_is_unreachable<H: Harness>(mut h: H) -> Result<()> {
    let addr = h.vacant_addr().await?;
    let client = h.client(TransportOptions::default());
    let start = Instant::now();
    let result = client.execute(addr, request(&["echo"]), DEADLINE).await;
    ensure!(
        matches!(result, Err(TransportError::Unreachable { peer, .. }) if peer == addr),
        "{result:?}"
    );
    let result = client.status(addr, DEADLINE).await;
    ensure!(
        matches!(result, Err(TransportError::Unreachable { .. })),
        "{result:?}"
    );
    let result = client.transfer(addr, DEADLINE).await;
    ensure!(
        matches!(result, Err(TransportError::Unreachable { .. })),
        "{result:?}"
    );
    ensure!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    h.finish().await
}

/// A peer that shut down is `Unreachable`, even over a channel that was
/// connected to it.
async fn stopped_server_is_unreachable<H: Harness>(mut h: H) -> Result<()> {
    let addr = h
        .serve(local(0), Arc::default(), TransportOptions::default())
        .await?;
    let client = h.client(TransportOptions::default());
    replies(client.execute(addr, request(&["echo"]), DEADLINE).await?)?;
    h.stop(addr).await?;
    let start = Instant::now();
    let result = client.execute(addr, request(&["echo"]), DEADLINE).await;
    ensure!(
        matches!(result, Err(TransportError::Unreachable { peer, .. }) if peer == addr),
        "{result:?}"
    );
    ensure!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    h.finish().await
}

/// Spec: message size is bounded. A request over the sender's own bound is
/// refused before anything is sent.
async fn oversize_request_is_refused_by_the_sender<H: Harness>(mut h: H) -> Result<()> {
    let handler = Arc::new(TestHandler::default());
    let addr = h
        .serve(local(0), Arc::clone(&handler), TransportOptions::default())
        .await?;
    let client = h.client(TransportOptions {
        max_message_size: SMALL_LIMIT,
        ..TransportOptions::default()
    });
    let big = "x".repeat(BIG);
    let result = client.execute(addr, request(&[&big]), DEADLINE).await;
    ensure!(
        matches!(result, Err(TransportError::TooLarge { size, limit: SMALL_LIMIT }) if size > BIG),
        "{result:?}"
    );
    ensure!(handler.executes.load(Ordering::SeqCst) == 0);
    let mut stream = client.transfer(addr, DEADLINE).await?;
    let result = stream.send(big_batch(0)).await;
    ensure!(
        matches!(
            result,
            Err(TransportError::TooLarge {
                limit: SMALL_LIMIT,
                ..
            })
        ),
        "{result:?}"
    );
    // The stream is still usable.
    stream.send(batch(0, true)).await?;
    ensure!(stream.finish().await?.len() == 1);
    h.finish().await
}

/// Spec: larger requests are rejected before allocation. A request over the
/// receiver's bound is refused from its length prefix, never reaches the
/// handler, and the server keeps serving.
async fn oversize_request_is_refused_by_the_receiver<H: Harness>(mut h: H) -> Result<()> {
    let handler = Arc::new(TestHandler::default());
    let server_options = TransportOptions {
        max_message_size: SMALL_LIMIT,
        ..TransportOptions::default()
    };
    let addr = h
        .serve(local(0), Arc::clone(&handler), server_options)
        .await?;
    let client = h.client(TransportOptions::default());
    let big = "x".repeat(BIG);
    let result = client.execute(addr, request(&[&big]), DEADLINE).await;
    ensure!(
        matches!(result, Err(TransportError::TooLarge { size, limit: SMALL_LIMIT }) if size > BIG),
        "{result:?}"
    );
    ensure!(handler.executes.load(Ordering::SeqCst) == 0);
    replies(client.execute(addr, request(&["echo"]), DEADLINE).await?)?;
    ensure!(handler.executes.load(Ordering::SeqCst) == 1);
    h.finish().await
}

/// A response over the caller's bound fails with `TooLarge`.
async fn oversize_response_is_refused<H: Harness>(mut h: H) -> Result<()> {
    let addr = h
        .serve(local(0), Arc::default(), TransportOptions::default())
        .await?;
    let client = h.client(TransportOptions {
        max_message_size: SMALL_LIMIT,
        ..TransportOptions::default()
    });
    let op = format!("big:{BIG}");
    let result = client.execute(addr, request(&[&op]), DEADLINE).await;
    ensure!(
        matches!(result, Err(TransportError::TooLarge { size, limit: SMALL_LIMIT }) if size > BIG),
        "{result:?}"
    );
    replies(client.execute(addr, request(&["big:10"]), DEADLINE).await?)?;
    h.finish().await
}

/// A transfer batch over the receiver's bound ends the stream with
/// `TooLarge`; the batches before it were applied.
async fn oversize_transfer_batch_is_refused_by_the_receiver<H: Harness>(mut h: H) -> Result<()> {
    let handler = Arc::new(TestHandler::default());
    let server_options = TransportOptions {
        max_message_size: SMALL_LIMIT,
        ..TransportOptions::default()
    };
    let addr = h
        .serve(local(0), Arc::clone(&handler), server_options)
        .await?;
    let client = h.client(TransportOptions::default());
    let mut stream = client.transfer(addr, DEADLINE).await?;
    stream.send(batch(0, false)).await?;
    let first = stream.next_ack().await?;
    ensure!(first.is_some_and(|ack| ack.sequence == 0 && ack.error.is_none()));
    stream.send(big_batch(1)).await?;
    let result = stream.next_ack().await;
    ensure!(
        matches!(
            result,
            Err(TransportError::TooLarge {
                limit: SMALL_LIMIT,
                ..
            })
        ),
        "{result:?}"
    );
    let result = stream.send(batch(2, true)).await;
    ensure!(matches!(result, Err(TransportError::Closed)), "{result:?}");
    ensure!(handler.batches.load(Ordering::SeqCst) == 1);
    replies(client.execute(addr, request(&["echo"]), DEADLINE).await?)?;
    h.finish().await
}

/// Spec: one channel per peer, created lazily, dropped when the peer leaves.
async fn forget_then_call_reconnects<H: Harness>(mut h: H) -> Result<()> {
    let addr = h
        .serve(local(0), Arc::default(), TransportOptions::default())
        .await?;
    let other = h
        .serve(local(0), Arc::default(), TransportOptions::default())
        .await?;
    let client = h.client(TransportOptions::default());
    let count = |expected: usize| {
        let count = H::channel_count(&client);
        ensure!(
            count.is_none_or(|count| count == expected),
            "{count:?} channels"
        );
        Ok(())
    };
    count(0)?;
    replies(client.execute(addr, request(&["echo"]), DEADLINE).await?)?;
    replies(
        client
            .clone()
            .execute(other, request(&["echo"]), DEADLINE)
            .await?,
    )?;
    count(2)?;
    client.forget(addr);
    count(1)?;
    replies(client.execute(addr, request(&["echo"]), DEADLINE).await?)?;
    count(2)?;
    h.finish().await
}

/// Calls in flight at once all succeed over the peer's one channel.
async fn concurrent_calls_share_one_channel<H: Harness>(mut h: H) -> Result<()> {
    let addr = h
        .serve(local(0), Arc::default(), TransportOptions::default())
        .await?;
    let client = h.client(TransportOptions::default());
    let calls = (0..32).map(|i| {
        let client = client.clone();
        async move {
            let mut request = request(&["echo"]);
            request.view = i;
            let reply = replies(client.execute(addr, request, DEADLINE).await?)?;
            ensure!(
                reply == [Bytes::from(format!("caller/{i}/k0"))],
                "{reply:?}"
            );
            Ok(())
        }
    });
    for result in futures::future::join_all(calls).await {
        result?;
    }
    let count = H::channel_count(&client);
    ensure!(count.is_none_or(|count| count == 1), "{count:?} channels");
    h.finish().await
}

/// A second server on an address already served fails with `Bind`.
async fn serving_a_taken_address_fails<H: Harness>(mut h: H) -> Result<()> {
    let addr = h
        .serve(local(0), Arc::default(), TransportOptions::default())
        .await?;
    let result = h
        .serve(addr, Arc::default(), TransportOptions::default())
        .await;
    ensure!(
        matches!(result, Err(TransportError::Bind { addr: a, .. }) if a == addr),
        "{result:?}"
    );
    h.finish().await
}

/// Shutdown lets a call in flight finish within the grace period.
async fn shutdown_lets_calls_in_flight_finish<H: Harness>(mut h: H) -> Result<()> {
    let handler = Arc::new(TestHandler::default());
    let addr = h
        .serve(local(0), Arc::clone(&handler), TransportOptions::default())
        .await?;
    let client = h.client(TransportOptions::default());
    let call = tokio::spawn(async move {
        client
            .execute(addr, request(&["sleep:300"]), DEADLINE)
            .await
    });
    eventually("the call reaches the handler", || {
        handler.executes.load(Ordering::SeqCst) == 1
    })
    .await?;
    h.stop(addr).await?;
    let reply = replies(call.await??)?;
    ensure!(reply == [Bytes::from_static(b"slept")], "{reply:?}");
    h.finish().await
}

/// Shutdown cancels calls still running after the grace period; their
/// callers get `ShuttingDown`, and shutdown returns.
async fn shutdown_cancels_calls_after_the_grace<H: Harness>(mut h: H) -> Result<()> {
    let handler = Arc::new(TestHandler::default());
    let options = TransportOptions {
        shutdown_grace: Duration::from_millis(200),
        ..TransportOptions::default()
    };
    let addr = h.serve(local(0), Arc::clone(&handler), options).await?;
    let client = h.client(TransportOptions::default());
    let call = tokio::spawn(async move {
        client
            .execute(addr, request(&["sleep:60000"]), Duration::from_secs(30))
            .await
    });
    eventually("the call reaches the handler", || {
        handler.executes.load(Ordering::SeqCst) == 1
    })
    .await?;
    let start = Instant::now();
    h.stop(addr).await?;
    ensure!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let result = call.await?;
    ensure!(
        matches!(
            &result,
            Err(TransportError::Remote(RemoteError {
                kind: ErrorKind::ShuttingDown,
                ..
            }))
        ),
        "{result:?}"
    );
    h.finish().await
}

// ---------------------------------------------------------------------------
// Partitions: the in-memory network's link controls.
// ---------------------------------------------------------------------------

mod partitions {
    use super::*;

    /// Three servers on one network, and a client calling from each.
    struct Cluster {
        network: MemoryNetwork,
        addrs: Vec<PeerAddr>,
        handlers: Vec<Arc<TestHandler>>,
        clients: Vec<MemoryClient>,
        _servers: Vec<MemoryServer>,
    }

    impl Cluster {
        fn new(nodes: u16) -> Result<Self> {
            let network = MemoryNetwork::new();
            let addrs: Vec<PeerAddr> = (1..=nodes).map(|i| local(7000 + i)).collect();
            let handlers: Vec<Arc<TestHandler>> = addrs.iter().map(|_| Arc::default()).collect();
            let servers = addrs
                .iter()
                .zip(&handlers)
                .map(|(&addr, handler)| {
                    network.serve(addr, Arc::clone(handler), TransportOptions::default())
                })
                .collect::<hive_transport::Result<_>>()?;
            let clients = addrs
                .iter()
                .map(|&addr| network.client(addr, TransportOptions::default()))
                .collect();
            Ok(Cluster {
                network,
                addrs,
                handlers,
                clients,
                _servers: servers,
            })
        }

        /// Returns the outcome of a call from node `from` to node `to`.
        async fn call(&self, from: usize, to: usize) -> hive_transport::Result<ExecuteResponse> {
            self.clients[from]
                .execute(self.addrs[to], request(&["echo"]), DEADLINE)
                .await
        }

        /// Checks that calls from `from` to `to` get through.
        async fn reaches(&self, from: usize, to: usize) -> Result<()> {
            replies(self.call(from, to).await?)
                .map(drop)
                .with_context(|| format!("{from} -> {to}"))
        }

        /// Checks that calls from `from` to `to` fail at once with
        /// `Unreachable`.
        async fn cannot_reach(&self, from: usize, to: usize) -> Result<()> {
            let start = Instant::now();
            let result = self.call(from, to).await;
            ensure!(
                matches!(result, Err(TransportError::Unreachable { peer, .. })
                    if peer == self.addrs[to]),
                "{from} -> {to}: {result:?}"
            );
            ensure!(
                start.elapsed() < Duration::from_secs(1),
                "{:?}",
                start.elapsed()
            );
            Ok(())
        }
    }

    #[tokio::test]
    async fn cut_link_fails_calls_both_ways_and_heal_restores_it() -> Result<()> {
        let cluster = Cluster::new(3)?;
        let (a, b) = (cluster.addrs[0], cluster.addrs[1]);
        cluster.reaches(0, 1).await?;
        cluster.reaches(1, 0).await?;
        cluster.network.cut(a, b);
        ensure!(!cluster.network.is_linked(b, a));
        cluster.cannot_reach(0, 1).await?;
        cluster.cannot_reach(1, 0).await?;
        // Other links are untouched.
        cluster.reaches(0, 2).await?;
        cluster.reaches(2, 1).await?;
        cluster.network.heal(b, a);
        cluster.reaches(0, 1).await?;
        cluster.reaches(1, 0).await?;
        Ok(())
    }

    #[tokio::test]
    async fn isolate_cuts_every_link_until_heal_all() -> Result<()> {
        let cluster = Cluster::new(3)?;
        let (a, b) = (cluster.addrs[0], cluster.addrs[1]);
        cluster.network.isolate(a);
        cluster.cannot_reach(0, 1).await?;
        cluster.cannot_reach(1, 0).await?;
        cluster.cannot_reach(2, 0).await?;
        cluster.reaches(1, 2).await?;
        // A node that joins later cannot reach the isolated node either.
        let late = local(7999);
        let _late_server = cluster.network.serve(
            late,
            Arc::new(TestHandler::default()),
            TransportOptions::default(),
        )?;
        let result = cluster.clients[0]
            .execute(late, request(&["echo"]), DEADLINE)
            .await;
        ensure!(
            matches!(result, Err(TransportError::Unreachable { .. })),
            "{result:?}"
        );
        // Healing one pair does not undo an isolation...
        cluster.network.heal(a, b);
        cluster.cannot_reach(0, 1).await?;
        // ...heal_all does, along with every cut.
        cluster.network.cut(b, cluster.addrs[2]);
        cluster.network.heal_all();
        for (from, to) in [(0, 1), (1, 0), (2, 0), (1, 2), (2, 1)] {
            cluster.reaches(from, to).await?;
        }
        // rejoin undoes one isolation only.
        cluster.network.isolate(a);
        cluster.network.cut(b, cluster.addrs[2]);
        cluster.network.rejoin(a);
        cluster.reaches(0, 1).await?;
        cluster.cannot_reach(1, 2).await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_stalled_node_answers_once_resumed_or_never() -> Result<()> {
        let cluster = Arc::new(Cluster::new(2)?);
        cluster.network.stall(cluster.addrs[1]);
        let short = cluster.clients[0]
            .execute(
                cluster.addrs[1],
                request(&["echo"]),
                Duration::from_millis(50),
            )
            .await;
        ensure!(
            matches!(short, Err(TransportError::Timeout { .. })),
            "{short:?}"
        );
        ensure!(cluster.handlers[1].executes.load(Ordering::SeqCst) == 0);
        let call = tokio::spawn({
            let cluster = Arc::clone(&cluster);
            async move {
                cluster.clients[0]
                    .execute(cluster.addrs[1], request(&["echo"]), DEADLINE)
                    .await
            }
        });
        tokio::task::yield_now().await;
        ensure!(
            cluster.handlers[1].executes.load(Ordering::SeqCst) == 0,
            "held"
        );
        cluster.network.resume(cluster.addrs[1]);
        let answered = call.await?;
        ensure!(answered.is_ok(), "{answered:?}");
        Ok(())
    }

    #[tokio::test]
    async fn cut_during_a_call_loses_its_answer() -> Result<()> {
        let cluster = Arc::new(Cluster::new(2)?);
        let call = tokio::spawn({
            let cluster = Arc::clone(&cluster);
            async move {
                cluster.clients[0]
                    .execute(cluster.addrs[1], request(&["sleep:300"]), DEADLINE)
                    .await
            }
        });
        eventually("the call reaches the handler", || {
            cluster.handlers[1].executes.load(Ordering::SeqCst) == 1
        })
        .await?;
        cluster.network.cut(cluster.addrs[0], cluster.addrs[1]);
        let result = call.await?;
        // The handler ran: the caller cannot know what it did.
        ensure!(
            matches!(result, Err(TransportError::Interrupted { .. })),
            "{result:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn cut_during_a_transfer_fails_the_stream() -> Result<()> {
        let cluster = Cluster::new(2)?;
        let mut stream = cluster.clients[0]
            .transfer(cluster.addrs[1], DEADLINE)
            .await?;
        stream.send(batch(0, false)).await?;
        ensure!(
            stream
                .next_ack()
                .await?
                .is_some_and(|ack| ack.sequence == 0)
        );
        cluster.network.cut(cluster.addrs[0], cluster.addrs[1]);
        stream.send(batch(1, false)).await?;
        let result = stream.next_ack().await;
        ensure!(
            matches!(result, Err(TransportError::Interrupted { .. })),
            "{result:?}"
        );
        let result = stream.send(batch(2, true)).await;
        ensure!(matches!(result, Err(TransportError::Closed)), "{result:?}");
        ensure!(cluster.handlers[1].batches.load(Ordering::SeqCst) == 1);
        Ok(())
    }

    #[tokio::test]
    async fn stopped_server_frees_its_address() -> Result<()> {
        let network = MemoryNetwork::new();
        let addr = local(7100);
        let server = network.serve(addr, TestHandler::default(), TransportOptions::default())?;
        drop(server);
        let client = network.client(local(7101), TransportOptions::default());
        let result = client.status(addr, DEADLINE).await;
        ensure!(
            matches!(result, Err(TransportError::Unreachable { .. })),
            "{result:?}"
        );
        let _again = network.serve(addr, TestHandler::default(), TransportOptions::default())?;
        client.status(addr, DEADLINE).await?;
        Ok(())
    }
}
