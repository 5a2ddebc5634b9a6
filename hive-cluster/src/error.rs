//! The cluster layer's error type.

use hive_membership::MembershipError;
use hive_store::StoreError;
use hive_transport::TransportError;
use thiserror::Error;

/// Why a cluster operation or start failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The key's primary refused or failed the operation the way a local store
    /// would (`NotFound`, `WrongType`, ...); nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The owners of the key could not be reached in time, or a replica did not
    /// confirm a write. A write may or may not be visible afterwards.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// This node is stopping.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// A peer sent something that does not decode.
    #[error("codec error: {0}")]
    Codec(String),
    /// Joining the cluster failed (no seed answered, an incompatible member, a
    /// bad address).
    #[error(transparent)]
    Membership(#[from] MembershipError),
    /// The peer RPC server could not start.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// `Result` with [`ClusterError`].
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;
