//! The one error type of the membership crate.

use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;

use crate::meta::MetaError;

/// Why a membership operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// A configuration field is out of bounds; the message names it. Nothing was
    /// started.
    #[error("invalid membership config: `{field}` {reason}")]
    InvalidConfig {
        /// The field, by its [`MembershipConfig`](crate::MembershipConfig) name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The node's metadata cannot be advertised (for example it is longer than
    /// memberlist accepts). Nothing was started, or the metadata was not changed.
    #[error("node metadata: {0}")]
    Meta(#[from] MetaError),
    /// The gossip sockets (TCP and UDP) could not be bound, for example because the
    /// port is in use. Nothing was started.
    #[error("cannot start gossip on {addr}: {reason}")]
    Bind {
        /// The configured bind address.
        addr: SocketAddr,
        /// memberlist's explanation.
        reason: String,
    },
    /// Seeds were given and none could be joined within `join_timeout`. The node
    /// that was started for the attempt has been shut down again.
    #[error(
        "no seed reachable within {waited:?} (seeds: {seeds:?}){}",
        last_error.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default()
    )]
    NoSeedReachable {
        /// The seeds tried (this node's own address excluded).
        seeds: Vec<SocketAddr>,
        /// How long it kept trying.
        waited: Duration,
        /// The last failure reported for a seed, if any.
        last_error: Option<String>,
    },
    /// A peer advertises a replication factor or protocol version (or metadata
    /// format) that differs from ours, so the two cannot share a cluster. At start
    /// the node has been shut down again; both sides refuse each other.
    #[error("incompatible peer {peer}: its {field} is {theirs}, ours is {ours}")]
    Incompatible {
        /// `replication_factor`, `protocol_version` or `metadata`.
        field: &'static str,
        /// Our value.
        ours: String,
        /// The peer's value.
        theirs: String,
        /// The peer, as `id@gossip_addr`.
        peer: String,
    },
    /// `leave` could not confirm that its leave announcement went out before the
    /// timeout. The node has left locally (it no longer gossips as alive); peers
    /// may report it `Failed` instead of `Left`. Call `shutdown` next as usual.
    #[error("leave not confirmed within {waited:?}; peers may report this node as failed")]
    LeaveTimeout {
        /// How long `leave` waited.
        waited: Duration,
    },
    /// The node already left or was shut down, so it cannot do this any more.
    #[error("membership is not running (it left or was shut down)")]
    NotRunning,
    /// memberlist reported an unexpected failure; the message says which operation.
    #[error("gossip {operation} failed: {reason}")]
    Gossip {
        /// The operation (`leave`, `update`, ...).
        operation: &'static str,
        /// memberlist's explanation.
        reason: String,
    },
}

/// `Result` with [`MembershipError`].
pub type Result<T, E = MembershipError> = std::result::Result<T, E>;
