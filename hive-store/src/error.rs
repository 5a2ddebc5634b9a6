//! The one error type of the store: every failure is a variant, none is a string match.

use thiserror::Error;

/// Why a store operation failed. In every case the store is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key, field, member or list index does not exist (or has expired), or a
    /// pop found an empty list. Nothing changed.
    #[error("not found")]
    NotFound,
    /// The key holds a different data type than the operation works on. Nothing
    /// changed.
    #[error("operation against a key holding the wrong kind of value")]
    WrongType,
    /// The write would grow the store past its memory limit. Nothing changed;
    /// writes that shrink the store never fail this way.
    #[error("memory limit reached")]
    CapacityExceeded,
    /// An argument is out of bounds (size limits, TTL range, NaN score, ...). The
    /// message names the argument. Nothing changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The value stored is not what the operation needs (for example `INCR` on a
    /// value that is not an integer, or an increment that overflows). Nothing
    /// changed.
    #[error("{0}")]
    InvalidValue(String),
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
