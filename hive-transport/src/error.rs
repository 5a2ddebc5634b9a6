//! The one error type of the transport. Each variant says what went wrong and
//! whether the remote node may have acted on the request, because the cluster
//! layer's guarantees (no silent success on fewer copies) depend on it.

use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;

use crate::client::PeerAddr;
use crate::message::RemoteError;

/// Why a transport call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No connection to the peer, so the request was never sent: nothing
    /// listens there, the connection was refused, the peer stopped, or (in
    /// memory) the link is cut. The remote did not apply the request.
    #[error("peer {peer} is unreachable: {reason}")]
    Unreachable {
        /// The peer called.
        peer: PeerAddr,
        /// What the network layer said.
        reason: String,
    },
    /// The connection broke (or, in memory, the link was cut) while the call
    /// was under way, so its answer is lost: the remote may have applied the
    /// request; treat the outcome as unknown.
    #[error("the call to peer {peer} was interrupted: {reason}")]
    Interrupted {
        /// The peer called.
        peer: PeerAddr,
        /// What the network layer said.
        reason: String,
    },
    /// The deadline passed before the answer arrived. The remote may have
    /// applied the request (it may even still be running it); treat the outcome
    /// as unknown.
    #[error("peer {peer} did not answer within {after:?}")]
    Timeout {
        /// The peer called.
        peer: PeerAddr,
        /// The deadline that passed.
        after: Duration,
    },
    /// A message is larger than the size bound of the side that refused it: the
    /// sender's (nothing was sent) or the receiver's (rejected from its length
    /// prefix, before allocation, and never handed to the handler). Either way
    /// the remote did not apply the request.
    #[error("message of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// The encoded size of the message.
        size: usize,
        /// The bound it exceeds.
        limit: usize,
    },
    /// The peer answered with something malformed: an unknown enum value, a
    /// missing result, results that do not match the request, acks out of
    /// order. The remote may have applied the request.
    #[error("peer protocol violation: {0}")]
    Protocol(String),
    /// The remote handler refused the whole request with a typed error (for
    /// example [`crate::ErrorKind::NotOwner`] or `ShuttingDown`). Whether
    /// anything was applied is the handler's contract for that kind: Hive's
    /// handlers apply nothing before failing a whole request, except for
    /// `ShuttingDown` after a shutdown's grace period cut a handler short and
    /// `Indeterminate`, which mean "unknown".
    #[error("peer refused the request: {0}")]
    Remote(RemoteError),
    /// The remote answered with a gRPC status the transport does not otherwise
    /// map (for example `UNIMPLEMENTED` from an incompatible peer). The remote
    /// may have applied the request only if `code` is `UNKNOWN` or `INTERNAL`.
    #[error("peer rejected the request with gRPC status {code}: {message}")]
    Rejected {
        /// The gRPC status code number (see the gRPC status code table).
        code: i32,
        /// The status message.
        message: String,
    },
    /// A transfer stream ended before every batch sent on it was acknowledged,
    /// or was used after it failed. Batches not acknowledged may or may not
    /// have been applied.
    #[error("transfer stream closed before all batches were acknowledged")]
    Closed,
    /// A server could not listen on `addr` (address in use, permission
    /// denied, or — in memory — another server already serves it). Nothing
    /// started.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed while serving (for example its listener broke).
    /// It stopped; calls in flight may or may not have completed.
    #[error("gRPC server failed: {0}")]
    Serve(String),
}

/// `Result` with [`TransportError`].
pub type Result<T, E = TransportError> = std::result::Result<T, E>;
