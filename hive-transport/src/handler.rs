//! The server-side seam: what a node does with the requests its peers send.
//! The cluster layer implements [`PeerHandler`]; the transport only carries
//! messages to it and its answers back.

use std::future::Future;
use std::sync::Arc;

use crate::message::{
    ExecuteRequest, ExecuteResponse, PeerStatus, RemoteError, ReplicateRequest, ReplicateResponse,
    TransferAck, TransferBatch,
};

/// Handles the peer protocol's requests on a node.
///
/// Per-item failures (one operation, one entry) belong inside the response;
/// an `Err` fails the whole request and reaches the caller as
/// [`crate::TransportError::Remote`] with the same [`crate::ErrorKind`].
///
/// Handler futures must be cancel-safe: the transport drops them when the
/// caller's deadline passes or the server shuts down.
pub trait PeerHandler: Send + Sync + 'static {
    /// Returns the results of the request's operations, one per operation, in
    /// order.
    fn execute(
        &self,
        request: ExecuteRequest,
    ) -> impl Future<Output = Result<ExecuteResponse, RemoteError>> + Send;

    /// Returns how each of the request's entries was applied, one result per
    /// entry, in order.
    fn replicate(
        &self,
        request: ReplicateRequest,
    ) -> impl Future<Output = Result<ReplicateResponse, RemoteError>> + Send;

    /// Applies one batch of a transfer and returns its acknowledgement. Called
    /// once per received batch, in stream order, never concurrently for one
    /// stream. The transport sets the ack's `sequence` to the batch's; an `Err`
    /// becomes an ack carrying the error, and the stream goes on.
    fn transfer(
        &self,
        batch: TransferBatch,
    ) -> impl Future<Output = Result<TransferAck, RemoteError>> + Send;

    /// Returns the node's health and status.
    fn status(&self) -> impl Future<Output = Result<PeerStatus, RemoteError>> + Send;
}

impl<H: PeerHandler> PeerHandler for Arc<H> {
    fn execute(
        &self,
        request: ExecuteRequest,
    ) -> impl Future<Output = Result<ExecuteResponse, RemoteError>> + Send {
        (**self).execute(request)
    }

    fn replicate(
        &self,
        request: ReplicateRequest,
    ) -> impl Future<Output = Result<ReplicateResponse, RemoteError>> + Send {
        (**self).replicate(request)
    }

    fn transfer(
        &self,
        batch: TransferBatch,
    ) -> impl Future<Output = Result<TransferAck, RemoteError>> + Send {
        (**self).transfer(batch)
    }

    fn status(&self) -> impl Future<Output = Result<PeerStatus, RemoteError>> + Send {
        (**self).status()
    }
}
