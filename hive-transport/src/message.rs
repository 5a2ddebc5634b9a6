//! The messages of the peer protocol as plain Rust values: what the transport's
//! API takes and returns. They mirror `hive.peer.v1` field for field; opaque
//! payloads and keys are [`Bytes`], so nothing is copied on the way to the wire.

use std::fmt;

use bytes::Bytes;
use thiserror::Error;

/// A batch of client operations forwarded to the node the caller believes to be
/// the primary of their keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecuteRequest {
    /// Id of the sending node, for logs and diagnostics.
    pub from_node: String,
    /// Membership view (epoch) the caller routed the operations with.
    pub view: u64,
    /// The operations, run in this order.
    pub ops: Vec<Operation>,
    /// How long the caller will still wait for the answer, in ms (0: not
    /// said): a primary bounds its own work by it.
    pub timeout_ms: u32,
}

/// One client operation on one key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Operation {
    /// The key the operation works on (the one the caller routed by).
    pub key: Bytes,
    /// The operation, opaque to the transport (encoded by the cluster layer).
    pub op: Bytes,
}

/// The outcome of one operation: its opaque reply, or why it failed.
pub type OperationResult = Result<Bytes, RemoteError>;

/// The outcomes of an [`ExecuteRequest`]'s operations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecuteResponse {
    /// One result per operation, in the request's order. The transport checks
    /// the count: a response with a different number is a protocol error.
    pub results: Vec<OperationResult>,
}

/// One key's state at a version: what replication and rebalancing move.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// The key.
    pub key: Bytes,
    /// Version, part 1: the hybrid logical clock of the write that produced this
    /// state. Versions compare as `(hlc, node)`.
    pub hlc: u64,
    /// Version, part 2: the node that made the write; breaks `hlc` ties.
    pub node: u64,
    /// Remaining time to live in milliseconds when sent; `None` never expires.
    pub ttl_ms: Option<u64>,
    /// The value, opaque to the transport. Empty for a tombstone.
    pub payload: Bytes,
    /// True when the key was deleted (or expired) at this version.
    pub tombstone: bool,
    /// In a replica write, the version the primary's state was built on (see
    /// [`ApplyOutcome::Diverged`]); `None` in transfers.
    pub base: Option<Stamp>,
}

/// A version on the wire: compared as `(hlc, node)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// The hybrid logical clock.
    pub hlc: u64,
    /// The node that stamped it.
    pub node: u64,
}

/// Applied writes sent by a key's primary to its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicateRequest {
    /// Id of the primary that applied the writes.
    pub from_node: String,
    /// Membership view (epoch) the primary computed the owners with.
    pub view: u64,
    /// The resulting entries, in the order the primary applied them.
    pub entries: Vec<Entry>,
}

/// How a receiver handled one entry.
pub type EntryResult = Result<ApplyOutcome, RemoteError>;

/// How a replica handled each entry of a [`ReplicateRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicateResponse {
    /// One result per entry, in the request's order (count checked like
    /// [`ExecuteResponse::results`]).
    pub results: Vec<EntryResult>,
}

/// What became of an entry the receiver handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplyOutcome {
    /// The entry was newer than the local state and is now stored.
    Stored,
    /// The entry was a newer tombstone: the key is now deleted.
    Deleted,
    /// The entry was newer but had already expired on arrival.
    Expired,
    /// The local state was at least as new; nothing changed.
    Stale,
    /// The entry was built on ([`Entry::base`]) an older state than the local
    /// one, which another node stamped: taking it would lose that write.
    /// Nothing changed; the sender must take the local state and run its
    /// writes again on top of it.
    Diverged,
}

impl ApplyOutcome {
    /// Every outcome, in protocol order.
    pub const ALL: [ApplyOutcome; 5] = [
        ApplyOutcome::Stored,
        ApplyOutcome::Deleted,
        ApplyOutcome::Expired,
        ApplyOutcome::Stale,
        ApplyOutcome::Diverged,
    ];
}

/// One bounded batch of a rebalancing transfer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransferBatch {
    /// Id of the node sending the data (the old owner).
    pub from_node: String,
    /// Membership view (epoch) the transfer was planned in.
    pub view: u64,
    /// Position of the batch in its stream, chosen by the sender (0, 1, 2, ...).
    /// Acks name it.
    pub sequence: u64,
    /// The entries, with versions and remaining TTLs.
    pub entries: Vec<Entry>,
    /// True on the last batch of the transfer.
    pub last: bool,
}

/// Acknowledgement of one [`TransferBatch`], sent once the receiver applied it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransferAck {
    /// The `sequence` of the batch acknowledged. On the server side the
    /// transport sets it to the batch's sequence, whatever the handler returned.
    pub sequence: u64,
    /// How many of the batch's entries changed the receiver's state.
    pub applied: u32,
    /// Set when the receiver could not take the batch at all: the sender
    /// keeps the data and retries later.
    pub error: Option<RemoteError>,
    /// Entries refused one by one (over the receiver's size limits,
    /// undecodable, past its memory limit), by key; the batch's other
    /// entries were applied. Final for this batch: the sender keeps its copy.
    pub rejected: Vec<(Bytes, RemoteError)>,
}

/// Health and status of a node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerStatus {
    /// The node's id.
    pub node_id: String,
    /// The peer protocol version the node speaks ([`crate::PROTOCOL_VERSION`]).
    pub protocol_version: u32,
    /// Number of live keys the node holds.
    pub keys: u64,
    /// Bytes of memory the node's data uses.
    pub memory_bytes: u64,
    /// Keys still waiting to be moved by rebalancing (0 when balanced).
    pub rebalance_pending: u64,
    /// Digest of the node's current membership view; equal on nodes that
    /// agree on placement (0 from a node that does not say).
    pub view: u64,
    /// The node finished moving data for that view.
    pub settled: bool,
}

/// A failure reported by the remote node's handler, for one operation, one
/// entry, one batch or a whole request. Its [`ErrorKind`] survives the wire, so
/// the caller can map it back to the error a local call would have returned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind}: {message}")]
pub struct RemoteError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// Human-readable detail.
    pub message: String,
}

impl RemoteError {
    /// Returns an error of `kind` with `message` as its detail.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RemoteError {
            kind,
            message: message.into(),
        }
    }
}

/// Classes of remote failure; they mirror Hive's public error variants.
/// Deliberately exhaustive: adding one is a protocol change, and the compiler
/// then points at every place that maps kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The key, field or member does not exist, or has expired.
    NotFound,
    /// The key holds a different type of value than the operation works on.
    WrongType,
    /// The write would grow the node past its memory limit.
    CapacityExceeded,
    /// An argument is out of bounds; the message names it.
    InvalidArgument,
    /// An opaque payload (operation, reply or entry) could not be decoded.
    Codec,
    /// The node could not run the work now; it did not take effect, so
    /// retrying is safe and may succeed.
    Unavailable,
    /// The node is shutting down and takes no new work.
    ShuttingDown,
    /// The receiver is not the key's primary in its view: refresh the view and
    /// retry.
    NotOwner,
    /// The stored value is not what the operation needs.
    InvalidValue,
    /// A read ran but its reply did not fit in the response (the message size
    /// bound); it had no effect, so the caller sends it again.
    Deferred,
    /// The work may have taken effect (a write applied on the primary that a
    /// replica did not confirm): not to be run again blindly.
    Indeterminate,
}

impl ErrorKind {
    /// Every kind, in protocol order.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::NotFound,
        ErrorKind::WrongType,
        ErrorKind::CapacityExceeded,
        ErrorKind::InvalidArgument,
        ErrorKind::Codec,
        ErrorKind::Unavailable,
        ErrorKind::ShuttingDown,
        ErrorKind::NotOwner,
        ErrorKind::InvalidValue,
        ErrorKind::Deferred,
        ErrorKind::Indeterminate,
    ];
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::WrongType => "wrong type",
            ErrorKind::CapacityExceeded => "capacity exceeded",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Codec => "codec error",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::ShuttingDown => "shutting down",
            ErrorKind::NotOwner => "not owner",
            ErrorKind::InvalidValue => "invalid value",
            ErrorKind::Deferred => "deferred",
            ErrorKind::Indeterminate => "indeterminate",
        })
    }
}
