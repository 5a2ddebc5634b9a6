//! Coalesces the operations this node forwards to one peer into batched
//! `Execute` RPCs (spec: performance.md P5): callers queue their operation; one
//! task per peer takes whatever has queued up — at most [`MAX_BATCH`] — into
//! one request, keeping up to [`MAX_IN_FLIGHT`] requests outstanding. When a
//! peer has nothing in flight, the caller sends its operation itself, sparing
//! the hand-over to the queue task and back, so batching adds no latency;
//! under load, operations that arrive while requests are in flight share the
//! next request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hive_transport::{
    ExecuteRequest, Operation, OperationResult, PeerClient, RemoteError, TransportError,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most operations in one request.
const MAX_BATCH: usize = 128;
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

/// One queued operation and where its result goes.
struct Queued {
    operation: Operation,
    reply: oneshot::Sender<Result<OperationResult, BatchError>>,
}

/// One peer's queue, and how many requests to it are in flight.
#[derive(Debug, Clone)]
struct PeerQueue {
    sender: mpsc::Sender<Queued>,
    busy: Arc<AtomicUsize>,
}

/// Marks one direct request to a peer as in flight while it lives.
struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The per-peer queues and the tasks that drain them.
#[derive(Debug)]
pub(crate) struct Batchers<C> {
    client: C,
    from_node: String,
    timeout: Duration,
    queues: Mutex<HashMap<SocketAddr, PeerQueue>>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl<C: PeerClient> Batchers<C> {
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

    /// Sends `operation` to `peer` (directly if the peer is idle, else in the
    /// next batch) and returns its result.
    pub(crate) async fn execute(
        &self,
        peer: SocketAddr,
        operation: Operation,
    ) -> Result<OperationResult, BatchError> {
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
            let request = ExecuteRequest {
                from_node: self.from_node.clone(),
                view: 0,
                ops: vec![operation],
            };
            // Released when this call ends, even if the caller gives up on it.
            let _busy = Busy(&queue.busy);
            let response = self.client.execute(peer, request, self.timeout).await;
            let mut results = response.map_err(BatchError::from)?.results;
            return match (results.pop(), results.is_empty()) {
                (Some(result), true) => Ok(result),
                _ => Err(BatchError::Failed(
                    "not one result for one operation".into(),
                )),
            };
        }
        let (reply, result) = oneshot::channel();
        queue
            .sender
            .send(Queued { operation, reply })
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

    fn queue(&self, peer: SocketAddr) -> PeerQueue {
        let mut queues = self.queues.lock();
        if let Some(queue) = queues.get(&peer).filter(|queue| !queue.sender.is_closed()) {
            return queue.clone();
        }
        let (sender, receiver) = mpsc::channel(QUEUE);
        let queue = PeerQueue {
            sender,
            busy: Arc::new(AtomicUsize::new(0)),
        };
        self.tasks.spawn(drain(
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
async fn drain<C: PeerClient>(
    client: C,
    peer: SocketAddr,
    from_node: String,
    timeout: Duration,
    mut queue: mpsc::Receiver<Queued>,
    busy: Arc<AtomicUsize>,
    stop: CancellationToken,
) {
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            queued = queue.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                let Some(first) = queued else { break };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(queued) => batch.push(queued),
                        Err(_) => break,
                    }
                }
                busy.fetch_add(1, Ordering::AcqRel);
                let (client, from_node, busy) = (client.clone(), from_node.clone(), busy.clone());
                in_flight.push(async move {
                    send(client, peer, from_node, timeout, batch).await;
                    busy.fetch_sub(1, Ordering::AcqRel);
                });
            }
        }
    }
    // The queue closed: finish what is in flight.
    while in_flight.next().await.is_some() {}
}

/// Sends one batch and hands each operation its result.
async fn send<C: PeerClient>(
    client: C,
    peer: SocketAddr,
    from_node: String,
    timeout: Duration,
    batch: Vec<Queued>,
) {
    let (ops, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|queued| (queued.operation, queued.reply))
        .unzip();
    let count = ops.len();
    match client
        .execute(
            peer,
            ExecuteRequest {
                from_node,
                view: 0,
                ops,
            },
            timeout,
        )
        .await
    {
        Ok(response) if response.results.len() == count => {
            for (result, reply) in response.results.into_iter().zip(replies) {
                let _ = reply.send(Ok(result));
            }
        }
        Ok(response) => {
            let err = BatchError::Failed(format!(
                "{} results for {count} operations",
                response.results.len()
            ));
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
        ErrorKind, ExecuteResponse, MemoryNetwork, PeerHandler, PeerStatus, ReplicateRequest,
        ReplicateResponse, TransferAck, TransferBatch, TransportOptions,
    };

    use super::*;

    /// Echoes each operation's payload and counts requests.
    #[derive(Debug, Default)]
    struct Echo {
        requests: AtomicUsize,
    }

    impl PeerHandler for Echo {
        async fn execute(&self, request: ExecuteRequest) -> Result<ExecuteResponse, RemoteError> {
            self.requests.fetch_add(1, Ordering::SeqCst);
            // A real peer answers later: let other callers run meanwhile.
            tokio::task::yield_now().await;
            if request.ops.iter().any(|op| op.op == "refuse") {
                return Err(RemoteError::new(ErrorKind::ShuttingDown, "stopping"));
            }
            Ok(ExecuteResponse {
                results: request.ops.into_iter().map(|op| Ok(op.op)).collect(),
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
        Arc<Batchers<hive_transport::MemoryClient>>,
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
