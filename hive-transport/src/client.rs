//! The caller-side seam: how a node sends requests to its peers. Implemented
//! over gRPC ([`crate::GrpcClient`]) and in memory ([`crate::MemoryClient`]);
//! the cluster layer is written against [`PeerClient`] only.

use std::future::Future;
use std::time::Duration;

use crate::error::Result;
use crate::message::{
    ExecuteRequest, ExecuteResponse, PeerStatus, ReplicateRequest, ReplicateResponse,
};
use crate::transfer::TransferStream;

/// The address a peer serves the peer protocol on.
pub type PeerAddr = std::net::SocketAddr;

/// Sends peer-protocol requests to other nodes. Cheap to clone; clones share
/// connections.
///
/// Every call takes a deadline: when it passes the call fails with
/// [`crate::TransportError::Timeout`] (and the remote drops its work on it
/// when it learns of the deadline). Requests and responses larger than the
/// configured bound fail with [`crate::TransportError::TooLarge`].
pub trait PeerClient: Clone + Send + Sync + 'static {
    /// Returns the results of `request`'s operations as run by `peer`, one per
    /// operation, in order.
    fn execute(
        &self,
        peer: PeerAddr,
        request: ExecuteRequest,
        deadline: Duration,
    ) -> impl Future<Output = Result<ExecuteResponse>> + Send;

    /// Returns how `peer` applied each entry of `request`, one result per
    /// entry, in order.
    fn replicate(
        &self,
        peer: PeerAddr,
        request: ReplicateRequest,
        deadline: Duration,
    ) -> impl Future<Output = Result<ReplicateResponse>> + Send;

    /// Returns `peer`'s health and status.
    fn status(
        &self,
        peer: PeerAddr,
        deadline: Duration,
    ) -> impl Future<Output = Result<PeerStatus>> + Send;

    /// Opens a transfer stream to `peer` and returns its sending end.
    /// `deadline` bounds opening the stream and then each wait for an ack, not
    /// the whole transfer.
    fn transfer(
        &self,
        peer: PeerAddr,
        deadline: Duration,
    ) -> impl Future<Output = Result<TransferStream>> + Send;

    /// Drops whatever connection this client keeps to `peer` (when the peer
    /// leaves the cluster). A later call to it connects again.
    fn forget(&self, peer: PeerAddr);
}
