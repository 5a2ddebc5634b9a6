//! The server side of the peer protocol, independent of how bytes travel:
//! takes decoded `pb` requests, calls the [`PeerHandler`], and returns `pb`
//! responses or a `tonic::Status`. The gRPC server wraps it in tonic's service
//! trait; the in-memory network calls it directly (through [`WirePeer`]), so
//! both run the same conversions, status mapping and transfer loop.

use std::future::Future;
use std::sync::Arc;

use futures::stream::{self, BoxStream, Stream};
use futures::{FutureExt as _, StreamExt as _, future::BoxFuture};
use proto::pb;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::convert;
use crate::handler::PeerHandler;
use crate::message::{RemoteError, TransferAck};
use crate::rpc_status;

/// A handler behind the protocol's `pb` interface.
pub(crate) struct PeerService<H> {
    /// What the node does with requests.
    handler: Arc<H>,
    /// Cancelled when the server stops waiting for calls in flight: handlers
    /// still running are dropped and their callers get `ShuttingDown`.
    abort: CancellationToken,
}

impl<H> Clone for PeerService<H> {
    fn clone(&self) -> Self {
        PeerService {
            handler: Arc::clone(&self.handler),
            abort: self.abort.clone(),
        }
    }
}

impl<H: PeerHandler> PeerService<H> {
    /// Returns a service calling `handler`, whose calls end when `abort` is
    /// cancelled.
    pub(crate) fn new(handler: H, abort: CancellationToken) -> Self {
        PeerService {
            handler: Arc::new(handler),
            abort,
        }
    }

    /// Returns the response to an `Execute` call.
    pub(crate) async fn execute(
        &self,
        request: pb::ExecuteRequest,
    ) -> Result<pb::ExecuteResponse, Status> {
        let request = convert::execute_request_from_pb(request);
        let response = self.run(self.handler.execute(request)).await?;
        Ok(convert::execute_response_to_pb(response))
    }

    /// Returns the response to a `Replicate` call.
    pub(crate) async fn replicate(
        &self,
        request: pb::ReplicateRequest,
    ) -> Result<pb::ReplicateResponse, Status> {
        let request = convert::replicate_request_from_pb(request);
        let response = self.run(self.handler.replicate(request)).await?;
        Ok(convert::replicate_response_to_pb(response))
    }

    /// Returns the response to a `Status` call.
    pub(crate) async fn status(&self) -> Result<pb::StatusResponse, Status> {
        let status = self.run(self.handler.status()).await?;
        Ok(convert::peer_status_to_pb(status))
    }

    /// Returns the acks of a `Transfer` call whose batches arrive on `inbound`:
    /// one per batch, in order, each sent after the handler applied its batch.
    /// The stream ends when `inbound` ends, with the error `inbound` fails
    /// with, or with `ShuttingDown` when the server aborts.
    pub(crate) fn transfer<S>(
        &self,
        inbound: S,
    ) -> BoxStream<'static, Result<pb::TransferAck, Status>>
    where
        S: Stream<Item = Result<pb::TransferBatch, Status>> + Send + 'static,
    {
        let state = Some((self.clone(), inbound.boxed()));
        stream::unfold(state, |state| async move {
            let (service, mut inbound) = state?;
            let aborted = || Some((Err(rpc_status::shutting_down()), None));
            let next = tokio::select! {
                biased;
                () = service.abort.cancelled() => return aborted(),
                next = inbound.next() => next,
            };
            let batch = match next? {
                Ok(batch) => convert::transfer_batch_from_pb(batch),
                Err(status) => return Some((Err(status), None)),
            };
            let sequence = batch.sequence;
            let outcome = tokio::select! {
                biased;
                () = service.abort.cancelled() => return aborted(),
                outcome = service.handler.transfer(batch) => outcome,
            };
            let ack = match outcome {
                Ok(ack) => TransferAck { sequence, ..ack },
                Err(error) => TransferAck {
                    sequence,
                    applied: 0,
                    error: Some(error),
                    rejected: Vec::new(),
                },
            };
            Some((
                Ok(convert::transfer_ack_to_pb(ack)),
                Some((service, inbound)),
            ))
        })
        .boxed()
    }

    /// Returns what `call` returns, its error as a status, or `ShuttingDown`
    /// if the server aborts first.
    async fn run<T>(
        &self,
        call: impl Future<Output = Result<T, RemoteError>>,
    ) -> Result<T, Status> {
        tokio::select! {
            biased;
            () = self.abort.cancelled() => Err(rpc_status::shutting_down()),
            result = call => result.map_err(|error| rpc_status::from_remote_error(&error)),
        }
    }
}

/// A [`PeerService`] with its handler type erased, so that one registry can
/// hold servers of any handler (the in-memory network's).
pub(crate) trait WirePeer: Send + Sync {
    /// Returns the response to an `Execute` call.
    fn execute(
        &self,
        request: pb::ExecuteRequest,
    ) -> BoxFuture<'static, Result<pb::ExecuteResponse, Status>>;
    /// Returns the response to a `Replicate` call.
    fn replicate(
        &self,
        request: pb::ReplicateRequest,
    ) -> BoxFuture<'static, Result<pb::ReplicateResponse, Status>>;
    /// Returns the response to a `Status` call.
    fn status(&self) -> BoxFuture<'static, Result<pb::StatusResponse, Status>>;
    /// Returns the acks of a `Transfer` call whose batches arrive on `inbound`.
    fn transfer(
        &self,
        inbound: BoxStream<'static, Result<pb::TransferBatch, Status>>,
    ) -> BoxStream<'static, Result<pb::TransferAck, Status>>;
}

impl<H: PeerHandler> WirePeer for PeerService<H> {
    fn execute(
        &self,
        request: pb::ExecuteRequest,
    ) -> BoxFuture<'static, Result<pb::ExecuteResponse, Status>> {
        let service = self.clone();
        async move { service.execute(request).await }.boxed()
    }

    fn replicate(
        &self,
        request: pb::ReplicateRequest,
    ) -> BoxFuture<'static, Result<pb::ReplicateResponse, Status>> {
        let service = self.clone();
        async move { service.replicate(request).await }.boxed()
    }

    fn status(&self) -> BoxFuture<'static, Result<pb::StatusResponse, Status>> {
        let service = self.clone();
        async move { service.status().await }.boxed()
    }

    fn transfer(
        &self,
        inbound: BoxStream<'static, Result<pb::TransferBatch, Status>>,
    ) -> BoxStream<'static, Result<pb::TransferAck, Status>> {
        PeerService::transfer(self, inbound)
    }
}
