//! The facade's error type, shared by every store and the node.

use hive_cluster::ClusterError;
use hive_store::StoreError;
use thiserror::Error;

/// Why an operation failed. Unit variants carry no message; the others say what
/// was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The key, field, member or list index does not exist or has expired, or a
    /// pop found an empty list.
    #[error("not found")]
    NotFound,
    /// The write would take the owning node past its `mem_limit`; nothing changed.
    #[error("capacity exceeded: the node's memory limit is reached")]
    CapacityExceeded,
    /// The key holds another data type (reachable through the Redis protocol).
    #[error("wrong type: the key holds another kind of value")]
    WrongType,
    /// The node is stopping and takes no more operations.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// An argument is invalid: empty key, key or value over the size limits, NaN
    /// score, zero or out-of-range TTL, bad configuration. The message names it.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A stored value does not decode as the requested type, or a value does not
    /// encode.
    #[error("codec error: {0}")]
    Codec(String),
    /// The operation surely did not run: the owners of the key cannot be
    /// reached in time (cluster). Nothing changed; safe to retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The operation may have run: applied on the key's primary but a replica
    /// did not confirm it, or the answer of the node running it was lost (a
    /// timeout, a broken connection). The write may or may not be visible
    /// afterwards, and may be lost if the primary then crashes; do not retry
    /// a non-idempotent write (an increment, a push) blindly.
    #[error("indeterminate: {0}")]
    Indeterminate(String),
    /// The data directory could not be read or written, or its snapshot is
    /// corrupt, truncated or of an unknown format. The message names the
    /// file (and, for a damaged snapshot, the byte offset); a snapshot that
    /// fails to load is left as it is.
    #[error("persistence: {0}")]
    Persistence(String),
}

/// `Result` with the facade's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Error::NotFound,
            StoreError::WrongType => Error::WrongType,
            StoreError::CapacityExceeded => Error::CapacityExceeded,
            StoreError::InvalidArgument(message) | StoreError::InvalidValue(message) => {
                Error::InvalidArgument(message)
            }
            other => Error::InvalidArgument(other.to_string()),
        }
    }
}

impl From<ClusterError> for Error {
    fn from(err: ClusterError) -> Self {
        match err {
            ClusterError::Store(err) => err.into(),
            ClusterError::Unavailable(message) => Error::Unavailable(message),
            ClusterError::Indeterminate(message) => Error::Indeterminate(message),
            ClusterError::ShuttingDown => Error::ShuttingDown,
            ClusterError::Codec(message) => Error::Codec(message),
            // Starting: a seed that never answered is unavailable; a refused
            // (incompatible) member or a bad address is the caller's to fix.
            ClusterError::Membership(err) => match err {
                hive_cluster::MembershipError::NoSeedReachable { .. } => {
                    Error::Unavailable(err.to_string())
                }
                other => Error::InvalidArgument(other.to_string()),
            },
            other => Error::InvalidArgument(other.to_string()),
        }
    }
}
