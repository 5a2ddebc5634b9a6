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
    /// The operation surely did not run: the owners of the key could not be
    /// reached in time, or its primary could not run it now. Safe to retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The operation may have run: a write applied on its primary that a
    /// replica did not confirm, or a forwarded write whose answer was lost.
    /// It may or may not be visible afterwards; not to be retried blindly.
    #[error("indeterminate: {0}")]
    Indeterminate(String),
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
