//! Cache values on the wire: operations, replies and entry payloads travel as
//! MessagePack inside the peer protocol's opaque byte fields, and errors as the
//! protocol's error kinds. The one place that converts between the two worlds.

use bytes::Bytes;
use hive_store::{ExportedData, ExportedEntry, Kind, Limits, Op, Reply, StoreError, Version};
use hive_transport::DEFAULT_MAX_MESSAGE_SIZE;
use hive_transport::{Entry, ErrorKind, RemoteError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ClusterError;

/// Room in a peer message for what surrounds its largest payload: keys,
/// versions, framing, and the small replies sharing a response with it.
pub(crate) const MESSAGE_MARGIN: usize = 1024 * 1024;

/// Returns the message size bound a node with these store limits needs: its
/// largest key with its largest entry (a whole collection moves as one
/// message), plus the margin. Every node of a cluster must use equal limits.
pub(crate) fn message_limit(limits: &Limits) -> usize {
    limits
        .max_entry_len
        .saturating_add(limits.max_key_len)
        .saturating_add(MESSAGE_MARGIN)
        .max(DEFAULT_MAX_MESSAGE_SIZE)
}

/// Encodes `value` into a buffer sized for about `size_hint` bytes, so the
/// usual message is written without growing (and copying) the buffer.
fn encode<T: Serialize>(value: &T, size_hint: usize) -> Bytes {
    let mut buf = Vec::with_capacity(size_hint);
    // Encoding our own plain enums into a Vec cannot fail.
    match rmp_serde::encode::write(&mut buf, value) {
        Ok(()) => Bytes::from(buf),
        Err(_) => Bytes::new(),
    }
}

/// MessagePack bytes per encoded element besides its own bytes, at most: a
/// length prefix, a score or TTL, a tuple header.
const ELEMENT_OVERHEAD: usize = 16;
/// Room for the enum tags and a small message's fields.
const MESSAGE_OVERHEAD: usize = 64;

/// About how many bytes `data` encodes to (a little more, rarely less).
fn payload_hint(data: &ExportedData) -> usize {
    let elements = |lens: &mut dyn Iterator<Item = usize>| -> usize {
        lens.map(|len| len + ELEMENT_OVERHEAD).sum()
    };
    MESSAGE_OVERHEAD
        + match data {
            ExportedData::Tombstone => 0,
            ExportedData::Value(value) => value.len(),
            ExportedData::Hash(fields) => elements(
                &mut fields
                    .iter()
                    .map(|(name, value, _)| name.len() + value.len()),
            ),
            ExportedData::List(items) => elements(&mut items.iter().map(Bytes::len)),
            ExportedData::Set(members) => elements(&mut members.iter().map(|(m, _)| m.len())),
            ExportedData::ZSet(members) => elements(&mut members.iter().map(|(m, _)| m.len())),
        }
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, RemoteError> {
    rmp_serde::from_slice(bytes)
        .map_err(|err| RemoteError::new(ErrorKind::Codec, format!("undecodable {what}: {err}")))
}

/// What one forwarded operation asks of its receiver.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerOp {
    /// Run a client operation as the key's primary.
    Client(Op),
    /// Return this node's state of the key (entry or tombstone), owner or not:
    /// a new primary pulls keys it has not received yet.
    Fetch,
    /// List the live keys of one store shard that this node is the primary
    /// of (the operation's key is unused): one step of a cluster-wide scan.
    Keys {
        /// The shard, `0..shards`.
        shard: u32,
    },
    /// Count the live keys this node is the primary of (the operation's key
    /// is unused): one member's part of a cluster-wide key count.
    CountKeys,
}

impl PeerOp {
    /// Returns true if running it changes nothing (so it may run again).
    pub(crate) fn is_read(&self) -> bool {
        match self {
            PeerOp::Client(op) => !op.is_write(),
            PeerOp::Fetch | PeerOp::Keys { .. } | PeerOp::CountKeys => true,
        }
    }
}

/// The answer to a [`PeerOp`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerReply {
    /// The client operation's reply.
    Client(Reply),
    /// The fetched state, `None` if this node knows nothing of the key.
    Entry(Option<ExportedEntry>),
    /// The keys of a shard, with their kinds, and how many shards the node
    /// has (so the caller knows where its scan of that node ends).
    Keys {
        /// The keys this node is the primary of, with their kinds.
        keys: Vec<(Bytes, Kind)>,
        /// The node's shard count.
        shards: u32,
    },
    /// How many live keys this node is the primary of.
    Count(u64),
}

pub(crate) fn encode_op(op: &PeerOp) -> Bytes {
    // Most operations carry a key and at most a small value.
    encode(op, 2 * MESSAGE_OVERHEAD)
}

pub(crate) fn decode_op(bytes: &[u8]) -> Result<PeerOp, RemoteError> {
    decode("operation", bytes)
}

pub(crate) fn encode_reply(reply: &PeerReply) -> Bytes {
    encode(reply, MESSAGE_OVERHEAD)
}

pub(crate) fn decode_reply(bytes: &[u8]) -> Result<PeerReply, ClusterError> {
    decode("reply", bytes).map_err(|err| ClusterError::Codec(err.message))
}

/// Converts an exported entry into the protocol's entry.
pub(crate) fn to_wire(entry: &ExportedEntry) -> Entry {
    let tombstone = entry.data == ExportedData::Tombstone;
    Entry {
        key: entry.key.clone(),
        hlc: entry.version.hlc,
        node: entry.version.node,
        ttl_ms: entry.ttl_ms,
        payload: if tombstone {
            Bytes::new()
        } else {
            encode(&entry.data, payload_hint(&entry.data))
        },
        tombstone,
        base: None,
    }
}

/// Converts the protocol's entry back into an exported entry.
pub(crate) fn from_wire(entry: Entry) -> Result<ExportedEntry, RemoteError> {
    let data = if entry.tombstone {
        ExportedData::Tombstone
    } else {
        match decode("entry", &entry.payload)? {
            ExportedData::Tombstone => {
                return Err(RemoteError::new(
                    ErrorKind::Codec,
                    "a live entry's payload says tombstone",
                ));
            }
            data => data,
        }
    };
    Ok(ExportedEntry {
        key: entry.key,
        version: Version {
            hlc: entry.hlc,
            node: entry.node,
        },
        ttl_ms: entry.ttl_ms,
        data,
    })
}

/// Returns the protocol error for a local failure.
pub(crate) fn to_remote(err: &ClusterError) -> RemoteError {
    let (kind, message) = match err {
        ClusterError::Store(store) => (
            match store {
                StoreError::NotFound => ErrorKind::NotFound,
                StoreError::WrongType => ErrorKind::WrongType,
                StoreError::CapacityExceeded => ErrorKind::CapacityExceeded,
                StoreError::InvalidValue(_) => ErrorKind::InvalidValue,
                _ => ErrorKind::InvalidArgument,
            },
            match store {
                StoreError::InvalidArgument(message) | StoreError::InvalidValue(message) => {
                    message.clone()
                }
                other => other.to_string(),
            },
        ),
        ClusterError::ShuttingDown => (ErrorKind::ShuttingDown, err.to_string()),
        ClusterError::Codec(message) => (ErrorKind::Codec, message.clone()),
        ClusterError::Unavailable(message) => (ErrorKind::Unavailable, message.clone()),
        ClusterError::Indeterminate(message) => (ErrorKind::Indeterminate, message.clone()),
        other => (ErrorKind::Unavailable, other.to_string()),
    };
    RemoteError::new(kind, message)
}

/// Returns the local failure for a protocol error (`NotOwner` is handled by the
/// caller before this: it means "retry with a fresher view"). A peer that is
/// shutting down makes the operation `Unavailable` here: `ShuttingDown` tells
/// a client that the node it called is stopping, and this one is not.
pub(crate) fn from_remote(err: RemoteError) -> ClusterError {
    match err.kind {
        ErrorKind::NotFound => StoreError::NotFound.into(),
        ErrorKind::WrongType => StoreError::WrongType.into(),
        ErrorKind::CapacityExceeded => StoreError::CapacityExceeded.into(),
        ErrorKind::InvalidArgument => StoreError::InvalidArgument(err.message).into(),
        ErrorKind::InvalidValue => StoreError::InvalidValue(err.message).into(),
        ErrorKind::Codec => ClusterError::Codec(err.message),
        ErrorKind::ShuttingDown => {
            ClusterError::Unavailable(format!("a peer is shutting down: {}", err.message))
        }
        ErrorKind::Unavailable | ErrorKind::NotOwner | ErrorKind::Deferred => {
            ClusterError::Unavailable(err.message)
        }
        ErrorKind::Indeterminate => ClusterError::Indeterminate(err.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_shutting_down_makes_the_operation_unavailable_not_shutting_down() {
        let err = from_remote(RemoteError::new(ErrorKind::ShuttingDown, "stopping"));
        assert!(matches!(err, ClusterError::Unavailable(_)), "{err:?}");
    }

    #[test]
    fn entries_round_trip_through_the_wire() {
        let live = ExportedEntry {
            key: Bytes::from("k"),
            version: Version { hlc: 7, node: 9 },
            ttl_ms: Some(5),
            data: ExportedData::ZSet(vec![(Bytes::from("m"), 1.5)]),
        };
        let tombstone = ExportedEntry {
            data: ExportedData::Tombstone,
            ttl_ms: None,
            ..live.clone()
        };
        for entry in [live, tombstone] {
            assert_eq!(from_wire(to_wire(&entry)).unwrap(), entry);
        }
    }

    #[test]
    fn store_errors_keep_their_kind_across_the_wire() {
        for err in [
            StoreError::NotFound,
            StoreError::WrongType,
            StoreError::CapacityExceeded,
            StoreError::InvalidArgument("bad ttl".into()),
            StoreError::InvalidValue("not an integer".into()),
        ] {
            match from_remote(to_remote(&ClusterError::Store(err.clone()))) {
                ClusterError::Store(back) => assert_eq!(back, err),
                other => panic!("{err:?} came back as {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_is_a_codec_error_not_a_panic() {
        assert_eq!(decode_op(b"\xc1\xff").unwrap_err().kind, ErrorKind::Codec);
        let entry = Entry {
            key: Bytes::new(),
            hlc: 0,
            node: 0,
            ttl_ms: None,
            payload: Bytes::from_static(b"\xc1"),
            tombstone: false,
            base: None,
        };
        assert_eq!(from_wire(entry.clone()).unwrap_err().kind, ErrorKind::Codec);
        // Variant 0 of the payload enum is a tombstone: only the flag may say so.
        let smuggled = Entry {
            payload: Bytes::from_static(b"\x00"),
            ..entry
        };
        assert_eq!(from_wire(smuggled).unwrap_err().kind, ErrorKind::Codec);
    }
}
