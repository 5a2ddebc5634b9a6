//! Coalesces what this node sends one peer into batched RPCs: the operations
//! it forwards (`Execute`, spec: performance.md P5) and the entries it
//! replicates (`Replicate`). Callers queue their item; one task per peer
//! takes whatever has queued up — at most [`MAX_BATCH`] items and
//! [`MAX_BATCH_BYTES`] (a larger item goes alone) — into one request,
//! keeping up to [`MAX_IN_FLIGHT`] requests outstanding. When a peer has
//! nothing in flight, the caller sends its item itself, sparing the hand-over
//! to the queue task and back, so batching adds no latency; under load, items
//! that arrive while requests are in flight share the next request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hive_transport::{
    Entry, EntryResult, ExecuteRequest, Operation, OperationResult, PeerClient, RemoteError,
    ReplicateRequest, TransportError,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most operations in one request.
const MAX_BATCH: usize = 128;
/// Most bytes of items in one request, unless a single item is larger: large
/// values go in requests of their own, so no batch passes the message bound.
const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Most requests outstanding to one peer from the queue task.
const MAX_IN_FLIGHT: usize = 4;
/// Operations that may wait for one peer before callers wait to queue.
const QUEUE: usize = 4096;

/// Why a forwarded operation got no result; cloneable, so one failed request
/// can answer every operation it carried.
#[derive(Debug, Clone)]
pub(crate) enum BatchError {
    /// No connection: the operation surely did not run.
    Unreachable(String),
    /// The peer refused the whole request.
    Remote(RemoteError),
    /// Anything else (a timeout, a broken reply): the operation may have run.
    Failed(String),
}

impl From<TransportError> for BatchError {
    fn from(err: TransportError) -> Self {
        match err {
            err @ TransportError::Unreachable { .. } => BatchError::Unreachable(err.to_string()),
            TransportError::Remote(remote) => BatchError::Remote(remote),
            other => BatchError::Failed(other.to_string()),
        }
    }
}

/// One kind of batched RPC: what callers queue, what each gets back, and the
/// request that carries a batch.
pub(crate) trait Rpc<C: PeerClient>: Send + Sync + 'static {
    /// What one caller sends.
    type Item: Send + 'static;
    /// What one caller gets back.
    type Outcome: Send + 'static;

    /// Returns the bytes `item` adds to a request (its payload, roughly).
    fn size(item: &Self::Item) -> usize;

    /// Sends `items` to `peer` in one request; one outcome per item, in order.
    fn call(
        client: &C,
        peer: SocketAddr,
        from_node: String,
        items: Vec<Self::Item>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<Self::Outcome>, TransportError>> + Send;
}

/// Client operations forwarded to their key's primary.
#[derive(Debug)]
pub(crate) struct Forward;

impl<C: PeerClient> Rpc<C> for Forward {
    type Item = Operation;
    type Outcome = OperationResult;

    fn size(op: &Operation) -> usize {
        op.key.len() + op.op.len()
    }

    async fn call(
        client: &C,
        peer: SocketAddr,
        from_node: String,
        ops: Vec<Operation>,
        timeout: Duration,
    ) -> Result<Vec<OperationResult>, TransportError> {
        // The primary answers within the time this node waits, less a
        // margin for the trip back.
        let timeout_ms = u32::try_from((timeout - timeout / 10).as_millis()).unwrap_or(u32::MAX);
        let request = ExecuteRequest {
            from_node,
            view: 0,
            ops,
            timeout_ms,
        };
        Ok(client.execute(peer, request, timeout).await?.results)
    }
}

/// Entries a primary replicates to the key's other owners, each with the view
/// (epoch) it computed the owners in; a request carries the newest.
#[derive(Debug)]
pub(crate) struct Replicate;

impl<C: PeerClient> Rpc<C> for Replicate {
    type Item = (u64, Entry);
    type Outcome = EntryResult;

    fn size((_, entry): &(u64, Entry)) -> usize {
        entry.key.len() + entry.payload.len()
    }

    async fn call(
        client: &C,
        peer: SocketAddr,
        from_node: String,
        items: Vec<(u64, Entry)>,
        timeout: Duration,
    ) -> Result<Vec<EntryResult>, TransportError> {
        let view = items.iter().map(|(view, _)| *view).max().unwrap_or(0);
        let request = ReplicateRequest {
            from_node,
            view,
            entries: items.into_iter().map(|(_, entry)| entry).collect(),
        };
        Ok(client.replicate(peer, request, timeout).await?.results)
    }
}

/// One queued item and where its outcome goes.
struct Queued<I, O> {
    item: I,
    reply: oneshot::Sender<Result<O, BatchError>>,
}

/// One peer's queue, and how many requests to it are in flight.
struct PeerQueue<I, O> {
    sender: mpsc::Sender<Queued<I, O>>,
    busy: Arc<AtomicUsize>,
}

/// The queue of one peer for RPC kind `R`.
type QueueOf<C, R> = PeerQueue<<R as Rpc<C>>::Item, <R as Rpc<C>>::Outcome>;

impl<I, O> Clone for PeerQueue<I, O> {
    fn clone(&self) -> Self {
        Self {
            sender: self.sender.clone(),
            busy: self.busy.clone(),
        }
    }
}

/// Marks one direct request to a peer as in flight while it lives.
struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The per-peer queues of one kind of RPC and the tasks that drain them.
pub(crate) struct Batchers<C: PeerClient, R: Rpc<C>> {
    client: C,
    from_node: String,
    timeout: Duration,
    queues: Mutex<HashMap<SocketAddr, QueueOf<C, R>>>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl<C: PeerClient, R: Rpc<C>> std::fmt::Debug for Batchers<C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batchers")
            .field("from_node", &self.from_node)
            .field("peers", &self.queues.lock().len())
            .finish_non_exhaustive()
    }
}

impl<C: PeerClient, R: Rpc<C>> Batchers<C, R> {
    pub(crate) fn new(client: C, from_node: String, timeout: Duration) -> Self {
        Self {
            client,
            from_node,
            timeout,
            queues: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }

    /// Sends `item` to `peer` (directly if the peer is idle, else in the
    /// next batch) and returns its outcome.
    pub(crate) async fn execute(
        &self,
        peer: SocketAddr,
        item: R::Item,
    ) -> Result<R::Outcome, BatchError> {
        let closed = || BatchError::Unreachable("the node is stopping".into());
        if self.stop.is_cancelled() {
            return Err(closed());
        }
        let queue = self.queue(peer);
        // An idle peer: the first caller to claim it sends directly.
        if queue
            .busy
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // Released when this call ends, even if the caller gives up on it.
            let _busy = Busy(&queue.busy);
            let sent = R::call(
                &self.client,
                peer,
                self.from_node.clone(),
                vec![item],
                self.timeout,
            );
            let mut outcomes = sent.await.map_err(BatchError::from)?;
            return match (outcomes.pop(), outcomes.is_empty()) {
                (Some(outcome), true) => Ok(outcome),
                _ => Err(BatchError::Failed("not one result for one item".into())),
            };
        }
        let (reply, result) = oneshot::channel();
        queue
            .sender
            .send(Queued { item, reply })
            .await
            .map_err(|_| closed())?;
        result.await.map_err(|_| closed())?
    }

    /// Drops the queue of a peer that left; its task ends once what is in
    /// flight is answered.
    pub(crate) fn forget(&self, peer: SocketAddr) {
        self.queues.lock().remove(&peer);
    }

    /// Returns the number of peers with a queue.
    #[cfg(test)]
    fn queue_count(&self) -> usize {
        self.queues.lock().len()
    }

    /// Stops every queue task; queued and in-flight operations fail.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.queues.lock().clear();
    }

    fn queue(&self, peer: SocketAddr) -> QueueOf<C, R> {
        let mut queues = self.queues.lock();
        if let Some(queue) = queues.get(&peer).filter(|queue| !queue.sender.is_closed()) {
            return queue.clone();
        }
        let (sender, receiver) = mpsc::channel(QUEUE);
        let queue = PeerQueue {
            sender,
            busy: Arc::new(AtomicUsize::new(0)),
        };
        self.tasks.spawn(drain::<C, R>(
            self.client.clone(),
            peer,
            self.from_node.clone(),
            self.timeout,
            receiver,
            queue.busy.clone(),
            self.stop.clone(),
        ));
        queues.insert(peer, queue.clone());
        queue
    }
}

/// One peer's task: batches whatever is queued while keeping a bounded number
/// of requests in flight.
async fn drain<C: PeerClient, R: Rpc<C>>(
    client: C,
    peer: SocketAddr,
    from_node: String,
    timeout: Duration,
    mut queue: mpsc::Receiver<Queued<R::Item, R::Outcome>>,
    busy: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    let mut in_flight = FuturesUnordered::new();
    // An item that did not fit in the last batch; it starts the next one.
    let mut held = None;
    loop {
        let first = match held.take() {
            Some(first) if in_flight.len() < MAX_IN_FLIGHT => first,
            waiting => {
                held = waiting;
                tokio::select! {
                () = stop.cancelled() => return,
                Some(()) = in_flight.next(), if !in_flight.is_empty() => continue,
                queued = queue.recv(), if held.is_none() && in_flight.len() < MAX_IN_FLIGHT => {
                    let Some(first) = queued else { break };
                    first
                }
                }
            }
        };
        let mut bytes = R::size(&first.item);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            let Ok(queued) = queue.try_recv() else { break };
            let size = R::size(&queued.item);
            if bytes + size > MAX_BATCH_BYTES {
                held = Some(queued);
                break;
            }
            bytes += size;
            batch.push(queued);
        }
        busy.fetch_add(1, Ordering::AcqRel);
        let (client, from_node, busy) = (client.clone(), from_node.clone(), busy.clone());
        in_flight.push(async move {
            send::<C, R>(client, peer, from_node, timeout, batch).await;
            busy.fetch_sub(1, Ordering::AcqRel);
        });
    }
    // The queue closed: finish what is in flight.
    while in_flight.next().await.is_some() {}
}

/// Sends one batch and hands each item its outcome.
async fn send<C: PeerClient, R: Rpc<C>>(
    client: C,
    peer: SocketAddr,
    from_node: String,
    timeout: Duration,
    batch: Vec<Queued<R::Item, R::Outcome>>,
) {
    let (items, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|queued| (queued.item, queued.reply))
        .unzip();
    let count = items.len();
    match R::call(&client, peer, from_node, items, timeout).await {
        Ok(outcomes) if outcomes.len() == count => {
            for (outcome, reply) in outcomes.into_iter().zip(replies) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Ok(outcomes) => {
            let err = BatchError::Failed(format!("{} results for {count} items", outcomes.len()));
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
        Err(err) => {
            let err = BatchError::from(err);
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use hive_transport::{
        ApplyOutcome, ErrorKind, ExecuteResponse, MemoryNetwork, PeerHandler, PeerStatus,
        ReplicateRequest, ReplicateResponse, TransferAck, TransferBatch, TransportOptions,
    };

    use super::*;

    /// Echoes each operation's payload, counts requests and notes the
    /// largest one's payload bytes.
    #[derive(Debug, Default)]
    struct Echo {
        requests: AtomicUsize,
        largest: AtomicUsize,
    }

    impl PeerHandler for Echo {
        async fn execute(&self, request: ExecuteRequest) -> Result<ExecuteResponse, RemoteError> {
            self.requests.fetch_add(1, Ordering::SeqCst);
            let bytes = request
                .ops
                .iter()
                .map(<Forward as Rpc<hive_transport::MemoryClient>>::size)
                .sum();
            self.largest.fetch_max(bytes, Ordering::SeqCst);
            // A real peer answers later: let other callers run meanwhile.
            tokio::task::yield_now().await;
            if request.ops.iter().any(|op| op.op == "refuse") {
                return Err(RemoteError::new(ErrorKind::ShuttingDown, "stopping"));
            }
            Ok(ExecuteResponse {
                results: request.ops.into_iter().map(|op| Ok(op.op)).collect(),
            })
        }
        async fn replicate(
            &self,
            request: ReplicateRequest,
        ) -> Result<ReplicateResponse, RemoteError> {
            self.requests.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            // Stored for an even hlc, stale for an odd one: each entry its own outcome.
            let results = request
                .entries
                .iter()
                .map(|entry| {
                    Ok(if entry.hlc % 2 == 0 {
                        ApplyOutcome::Stored
                    } else {
                        ApplyOutcome::Stale
                    })
                })
                .collect();
            Ok(ReplicateResponse { results })
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
            Err(RemoteError::new(ErrorKind::Unavailable, "not in this test"))
        }
    }

    fn operation(payload: &str) -> Operation {
        Operation {
            key: Bytes::from("k"),
            op: Bytes::copy_from_slice(payload.as_bytes()),
        }
    }

    fn setup() -> (
        Arc<Echo>,
        SocketAddr,
        Arc<Batchers<hive_transport::MemoryClient, Forward>>,
        hive_transport::MemoryServer,
    ) {
        setup_for()
    }

    fn setup_for<R: Rpc<hive_transport::MemoryClient>>() -> (
        Arc<Echo>,
        SocketAddr,
        Arc<Batchers<hive_transport::MemoryClient, R>>,
        hive_transport::MemoryServer,
    ) {
        let network = MemoryNetwork::new();
        let echo = Arc::new(Echo::default());
        let server = network
            .serve(
                SocketAddr::from(([10, 0, 0, 1], 0)),
                echo.clone(),
                TransportOptions::default(),
            )
            .unwrap();
        let client = network.client(
            SocketAddr::from(([10, 0, 0, 2], 0)),
            TransportOptions::default(),
        );
        let batchers = Arc::new(Batchers::new(
            client,
            "caller".into(),
            Duration::from_secs(5),
        ));
        (echo, server.local_addr(), batchers, server)
    }

    #[tokio::test]
    async fn concurrent_operations_share_requests_and_each_gets_its_own_result() {
        let (echo, peer, batchers, _server) = setup();
        let calls = (0..300).map(|i| {
            let batchers = batchers.clone();
            tokio::spawn(async move {
                (
                    i,
                    batchers.execute(peer, operation(&format!("op-{i}"))).await,
                )
            })
        });
        for call in futures::future::join_all(calls).await {
            let (i, result) = call.unwrap();
            assert_eq!(result.unwrap().unwrap(), Bytes::from(format!("op-{i}")));
        }
        let requests = echo.requests.load(Ordering::SeqCst);
        assert!(requests < 300, "300 operations in {requests} requests");
        batchers.stop();
    }

    #[tokio::test]
    async fn concurrent_replications_share_requests_and_each_gets_its_entrys_outcome() {
        let (echo, peer, batchers, _server) = setup_for::<Replicate>();
        let calls = (0..300u64).map(|hlc| {
            let batchers = batchers.clone();
            tokio::spawn(async move {
                let entry = Entry {
                    key: Bytes::from(format!("k{hlc}")),
                    hlc,
                    node: 1,
                    ttl_ms: None,
                    payload: Bytes::from("v"),
                    tombstone: false,
                    base: None,
                };
                (hlc, batchers.execute(peer, (7, entry)).await)
            })
        });
        for call in futures::future::join_all(calls).await {
            let (hlc, outcome) = call.unwrap();
            let want = if hlc % 2 == 0 {
                ApplyOutcome::Stored
            } else {
                ApplyOutcome::Stale
            };
            assert_eq!(outcome.unwrap().unwrap(), want, "entry {hlc}");
        }
        let requests = echo.requests.load(Ordering::SeqCst);
        assert!(requests < 300, "300 entries in {requests} requests");
        batchers.stop();
    }

    #[tokio::test]
    async fn large_operations_share_requests_only_up_to_the_byte_bound() {
        let (echo, peer, batchers, _server) = setup();
        let payload = |i: usize| format!("{i}-{}", "p".repeat(300_000));
        let calls = (0..40).map(|i| {
            let batchers = batchers.clone();
            tokio::spawn(async move { (i, batchers.execute(peer, operation(&payload(i))).await) })
        });
        for call in futures::future::join_all(calls).await {
            let (i, result) = call.unwrap();
            assert_eq!(result.unwrap().unwrap(), Bytes::from(payload(i)));
        }
        let (requests, largest) = (
            echo.requests.load(Ordering::SeqCst),
            echo.largest.load(Ordering::SeqCst),
        );
        assert!(requests < 40, "40 operations in {requests} requests");
        assert!(
            largest <= MAX_BATCH_BYTES,
            "a request carried {largest} bytes"
        );
        // One item over the bound still goes, alone.
        let huge = "h".repeat(2 * MAX_BATCH_BYTES);
        let calls = (0..3).map(|_| batchers.execute(peer, operation(&huge)));
        for result in futures::future::join_all(calls).await {
            assert_eq!(result.unwrap().unwrap().len(), huge.len());
        }
        let largest = echo.largest.load(Ordering::SeqCst);
        assert!(
            largest < 2 * huge.len(),
            "huge operations shared a request ({largest} bytes)"
        );
        batchers.stop();
    }

    #[tokio::test]
    async fn a_forgotten_peer_loses_its_queue_and_gets_a_new_one_when_needed() {
        let (_, peer, batchers, _server) = setup();
        batchers
            .execute(peer, operation("x"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(batchers.queue_count(), 1);
        batchers.forget(peer);
        assert_eq!(batchers.queue_count(), 0);
        assert_eq!(
            batchers
                .execute(peer, operation("y"))
                .await
                .unwrap()
                .unwrap(),
            Bytes::from("y")
        );
    }

    #[tokio::test]
    async fn a_refused_request_fails_every_operation_it_carried_with_the_kind() {
        let (_, peer, batchers, _server) = setup();
        match batchers.execute(peer, operation("refuse")).await {
            Err(BatchError::Remote(err)) => assert_eq!(err.kind, ErrorKind::ShuttingDown),
            other => panic!("expected a remote refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unreachable_peer_and_a_stopped_batcher_are_unreachable() {
        let (_, _, batchers, _server) = setup();
        let nobody = SocketAddr::from(([10, 0, 0, 9], 1));
        assert!(matches!(
            batchers.execute(nobody, operation("x")).await,
            Err(BatchError::Unreachable(_))
        ));
        batchers.stop();
        let (_, peer, _, _) = setup();
        assert!(matches!(
            batchers.execute(peer, operation("x")).await,
            Err(BatchError::Unreachable(_))
        ));
    }
}
