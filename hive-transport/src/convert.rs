//! The one mapping between the transport's messages and the generated
//! `proto::pb` types. Going out is infallible; coming in, anything malformed —
//! an enum value this node does not know, an empty `oneof` — becomes
//! [`TransportError::Protocol`], never a panic.

use proto::pb;

use crate::error::{Result, TransportError};
use crate::message::{
    ApplyOutcome, Entry, EntryResult, ErrorKind, ExecuteRequest, ExecuteResponse, Operation,
    OperationResult, PeerStatus, RemoteError, ReplicateRequest, ReplicateResponse, Stamp,
    TransferAck, TransferBatch,
};

/// Returns the wire value of `kind`.
pub(crate) fn error_kind_to_pb(kind: ErrorKind) -> pb::ErrorKind {
    match kind {
        ErrorKind::NotFound => pb::ErrorKind::NotFound,
        ErrorKind::WrongType => pb::ErrorKind::WrongType,
        ErrorKind::CapacityExceeded => pb::ErrorKind::CapacityExceeded,
        ErrorKind::InvalidArgument => pb::ErrorKind::InvalidArgument,
        ErrorKind::Codec => pb::ErrorKind::Codec,
        ErrorKind::Unavailable => pb::ErrorKind::Unavailable,
        ErrorKind::ShuttingDown => pb::ErrorKind::ShuttingDown,
        ErrorKind::NotOwner => pb::ErrorKind::NotOwner,
        ErrorKind::InvalidValue => pb::ErrorKind::InvalidValue,
        ErrorKind::Deferred => pb::ErrorKind::Deferred,
        ErrorKind::Indeterminate => pb::ErrorKind::Indeterminate,
    }
}

/// Returns the kind a wire value stands for; unknown and unspecified values are
/// protocol errors.
pub(crate) fn error_kind_from_pb(value: i32) -> Result<ErrorKind> {
    let kind = pb::ErrorKind::try_from(value)
        .map_err(|_| TransportError::Protocol(format!("unknown ErrorKind {value}")))?;
    Ok(match kind {
        pb::ErrorKind::Unspecified => {
            return Err(TransportError::Protocol(
                "ErrorKind is ERROR_KIND_UNSPECIFIED".to_string(),
            ));
        }
        pb::ErrorKind::NotFound => ErrorKind::NotFound,
        pb::ErrorKind::WrongType => ErrorKind::WrongType,
        pb::ErrorKind::CapacityExceeded => ErrorKind::CapacityExceeded,
        pb::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
        pb::ErrorKind::Codec => ErrorKind::Codec,
        pb::ErrorKind::Unavailable => ErrorKind::Unavailable,
        pb::ErrorKind::ShuttingDown => ErrorKind::ShuttingDown,
        pb::ErrorKind::NotOwner => ErrorKind::NotOwner,
        pb::ErrorKind::InvalidValue => ErrorKind::InvalidValue,
        pb::ErrorKind::Deferred => ErrorKind::Deferred,
        pb::ErrorKind::Indeterminate => ErrorKind::Indeterminate,
    })
}

/// Returns the wire value of `outcome`.
pub(crate) fn apply_outcome_to_pb(outcome: ApplyOutcome) -> pb::ApplyOutcome {
    match outcome {
        ApplyOutcome::Stored => pb::ApplyOutcome::Stored,
        ApplyOutcome::Deleted => pb::ApplyOutcome::Deleted,
        ApplyOutcome::Expired => pb::ApplyOutcome::Expired,
        ApplyOutcome::Stale => pb::ApplyOutcome::Stale,
        ApplyOutcome::Diverged => pb::ApplyOutcome::Diverged,
    }
}

/// Returns the outcome a wire value stands for; unknown and unspecified values
/// are protocol errors.
pub(crate) fn apply_outcome_from_pb(value: i32) -> Result<ApplyOutcome> {
    let outcome = pb::ApplyOutcome::try_from(value)
        .map_err(|_| TransportError::Protocol(format!("unknown ApplyOutcome {value}")))?;
    Ok(match outcome {
        pb::ApplyOutcome::Unspecified => {
            return Err(TransportError::Protocol(
                "ApplyOutcome is APPLY_OUTCOME_UNSPECIFIED".to_string(),
            ));
        }
        pb::ApplyOutcome::Stored => ApplyOutcome::Stored,
        pb::ApplyOutcome::Deleted => ApplyOutcome::Deleted,
        pb::ApplyOutcome::Expired => ApplyOutcome::Expired,
        pb::ApplyOutcome::Stale => ApplyOutcome::Stale,
        pb::ApplyOutcome::Diverged => ApplyOutcome::Diverged,
    })
}

/// Returns the wire form of `error`.
pub(crate) fn remote_error_to_pb(error: RemoteError) -> pb::Error {
    pb::Error {
        kind: error_kind_to_pb(error.kind).into(),
        message: error.message,
    }
}

/// Returns the error a wire `Error` describes.
pub(crate) fn remote_error_from_pb(error: pb::Error) -> Result<RemoteError> {
    Ok(RemoteError {
        kind: error_kind_from_pb(error.kind)?,
        message: error.message,
    })
}

/// Returns the wire form of `request`.
pub(crate) fn execute_request_to_pb(request: ExecuteRequest) -> pb::ExecuteRequest {
    pb::ExecuteRequest {
        from_node: request.from_node,
        view: request.view,
        timeout_ms: request.timeout_ms,
        ops: request
            .ops
            .into_iter()
            .map(|op| pb::Operation {
                key: op.key,
                op: op.op,
            })
            .collect(),
    }
}

/// Returns the request a wire `ExecuteRequest` describes.
pub(crate) fn execute_request_from_pb(request: pb::ExecuteRequest) -> ExecuteRequest {
    ExecuteRequest {
        from_node: request.from_node,
        view: request.view,
        timeout_ms: request.timeout_ms,
        ops: request
            .ops
            .into_iter()
            .map(|op| Operation {
                key: op.key,
                op: op.op,
            })
            .collect(),
    }
}

/// Returns the wire form of `response`.
pub(crate) fn execute_response_to_pb(response: ExecuteResponse) -> pb::ExecuteResponse {
    use pb::operation_result::Outcome;
    pb::ExecuteResponse {
        results: response
            .results
            .into_iter()
            .map(|result| pb::OperationResult {
                outcome: Some(match result {
                    Ok(reply) => Outcome::Reply(reply),
                    Err(error) => Outcome::Error(remote_error_to_pb(error)),
                }),
            })
            .collect(),
    }
}

/// Returns the response a wire `ExecuteResponse` describes, checking it has one
/// result per operation of a request of `expected` operations.
pub(crate) fn execute_response_from_pb(
    response: pb::ExecuteResponse,
    expected: usize,
) -> Result<ExecuteResponse> {
    use pb::operation_result::Outcome;
    check_count("ExecuteResponse", response.results.len(), expected)?;
    let results = response
        .results
        .into_iter()
        .map(|result| -> Result<OperationResult> {
            match result.outcome {
                Some(Outcome::Reply(reply)) => Ok(Ok(reply)),
                Some(Outcome::Error(error)) => Ok(Err(remote_error_from_pb(error)?)),
                None => Err(TransportError::Protocol(
                    "OperationResult has no outcome".to_string(),
                )),
            }
        })
        .collect::<Result<_>>()?;
    Ok(ExecuteResponse { results })
}

/// Returns the wire form of `entry`.
pub(crate) fn entry_to_pb(entry: Entry) -> pb::Entry {
    pb::Entry {
        key: entry.key,
        hlc: entry.hlc,
        node: entry.node,
        ttl_ms: entry.ttl_ms,
        payload: entry.payload,
        tombstone: entry.tombstone,
        base: entry.base.map(|base| pb::Stamp {
            hlc: base.hlc,
            node: base.node,
        }),
    }
}

/// Returns the entry a wire `Entry` describes.
pub(crate) fn entry_from_pb(entry: pb::Entry) -> Entry {
    Entry {
        key: entry.key,
        hlc: entry.hlc,
        node: entry.node,
        ttl_ms: entry.ttl_ms,
        payload: entry.payload,
        tombstone: entry.tombstone,
        base: entry.base.map(|base| Stamp {
            hlc: base.hlc,
            node: base.node,
        }),
    }
}

/// Returns the wire form of `request`.
pub(crate) fn replicate_request_to_pb(request: ReplicateRequest) -> pb::ReplicateRequest {
    pb::ReplicateRequest {
        from_node: request.from_node,
        view: request.view,
        entries: request.entries.into_iter().map(entry_to_pb).collect(),
    }
}

/// Returns the request a wire `ReplicateRequest` describes.
pub(crate) fn replicate_request_from_pb(request: pb::ReplicateRequest) -> ReplicateRequest {
    ReplicateRequest {
        from_node: request.from_node,
        view: request.view,
        entries: request.entries.into_iter().map(entry_from_pb).collect(),
    }
}

/// Returns the wire form of `response`.
pub(crate) fn replicate_response_to_pb(response: ReplicateResponse) -> pb::ReplicateResponse {
    use pb::entry_result::Outcome;
    pb::ReplicateResponse {
        results: response
            .results
            .into_iter()
            .map(|result| pb::EntryResult {
                outcome: Some(match result {
                    Ok(outcome) => Outcome::Applied(apply_outcome_to_pb(outcome).into()),
                    Err(error) => Outcome::Error(remote_error_to_pb(error)),
                }),
            })
            .collect(),
    }
}

/// Returns the response a wire `ReplicateResponse` describes, checking it has
/// one result per entry of a request of `expected` entries.
pub(crate) fn replicate_response_from_pb(
    response: pb::ReplicateResponse,
    expected: usize,
) -> Result<ReplicateResponse> {
    use pb::entry_result::Outcome;
    check_count("ReplicateResponse", response.results.len(), expected)?;
    let results = response
        .results
        .into_iter()
        .map(|result| -> Result<EntryResult> {
            match result.outcome {
                Some(Outcome::Applied(outcome)) => Ok(Ok(apply_outcome_from_pb(outcome)?)),
                Some(Outcome::Error(error)) => Ok(Err(remote_error_from_pb(error)?)),
                None => Err(TransportError::Protocol(
                    "EntryResult has no outcome".to_string(),
                )),
            }
        })
        .collect::<Result<_>>()?;
    Ok(ReplicateResponse { results })
}

/// Returns the wire form of `batch`.
pub(crate) fn transfer_batch_to_pb(batch: TransferBatch) -> pb::TransferBatch {
    pb::TransferBatch {
        from_node: batch.from_node,
        view: batch.view,
        sequence: batch.sequence,
        entries: batch.entries.into_iter().map(entry_to_pb).collect(),
        last: batch.last,
    }
}

/// Returns the batch a wire `TransferBatch` describes.
pub(crate) fn transfer_batch_from_pb(batch: pb::TransferBatch) -> TransferBatch {
    TransferBatch {
        from_node: batch.from_node,
        view: batch.view,
        sequence: batch.sequence,
        entries: batch.entries.into_iter().map(entry_from_pb).collect(),
        last: batch.last,
    }
}

/// Returns the wire form of `ack`.
pub(crate) fn transfer_ack_to_pb(ack: TransferAck) -> pb::TransferAck {
    pb::TransferAck {
        sequence: ack.sequence,
        applied: ack.applied,
        error: ack.error.map(remote_error_to_pb),
        rejected: ack
            .rejected
            .into_iter()
            .map(|(key, error)| pb::RejectedEntry {
                key,
                error: Some(remote_error_to_pb(error)),
            })
            .collect(),
    }
}

/// Returns the ack a wire `TransferAck` describes.
pub(crate) fn transfer_ack_from_pb(ack: pb::TransferAck) -> Result<TransferAck> {
    Ok(TransferAck {
        sequence: ack.sequence,
        applied: ack.applied,
        error: ack.error.map(remote_error_from_pb).transpose()?,
        rejected: ack
            .rejected
            .into_iter()
            .map(|rejected| {
                let error = rejected.error.ok_or_else(|| {
                    TransportError::Protocol("a rejected entry without its error".into())
                })?;
                Ok((rejected.key, remote_error_from_pb(error)?))
            })
            .collect::<Result<_>>()?,
    })
}

/// Returns the wire form of `status`.
pub(crate) fn peer_status_to_pb(status: PeerStatus) -> pb::StatusResponse {
    pb::StatusResponse {
        node_id: status.node_id,
        protocol_version: status.protocol_version,
        keys: status.keys,
        memory_bytes: status.memory_bytes,
        rebalance_pending: status.rebalance_pending,
        view: status.view,
        settled: status.settled,
    }
}

/// Returns the status a wire `StatusResponse` describes.
pub(crate) fn peer_status_from_pb(status: pb::StatusResponse) -> PeerStatus {
    PeerStatus {
        node_id: status.node_id,
        protocol_version: status.protocol_version,
        keys: status.keys,
        memory_bytes: status.memory_bytes,
        rebalance_pending: status.rebalance_pending,
        view: status.view,
        settled: status.settled,
    }
}

/// Fails unless a response carries exactly one result per request item.
fn check_count(what: &str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(TransportError::Protocol(format!(
            "{what} has {got} results for {expected} request items"
        )))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;

    /// The largest wire value of each enum; values above it are unknown.
    const MAX_ERROR_KIND: i32 = 11;
    const MAX_APPLY_OUTCOME: i32 = 5;

    #[test]
    fn every_error_kind_round_trips() {
        for kind in ErrorKind::ALL {
            let wire = error_kind_to_pb(kind);
            assert_eq!(error_kind_from_pb(wire.into()).unwrap(), kind);
        }
    }

    #[test]
    fn every_known_wire_error_kind_maps_to_a_distinct_kind() {
        let kinds: Vec<ErrorKind> = (1..=MAX_ERROR_KIND)
            .map(|value| error_kind_from_pb(value).unwrap())
            .collect();
        assert_eq!(kinds, ErrorKind::ALL, "one kind per wire value, in order");
        for (value, kind) in (1..=MAX_ERROR_KIND).zip(kinds) {
            assert_eq!(i32::from(error_kind_to_pb(kind)), value);
        }
    }

    #[test]
    fn unknown_or_unspecified_error_kind_is_a_protocol_error() {
        for value in [0, MAX_ERROR_KIND + 1, 1000, -1, i32::MAX] {
            let error = error_kind_from_pb(value).unwrap_err();
            assert!(
                matches!(error, TransportError::Protocol(_)),
                "{value}: {error:?}"
            );
        }
    }

    #[test]
    fn every_apply_outcome_round_trips() {
        for outcome in ApplyOutcome::ALL {
            let wire = apply_outcome_to_pb(outcome);
            assert_eq!(apply_outcome_from_pb(wire.into()).unwrap(), outcome);
        }
        let outcomes: Vec<ApplyOutcome> = (1..=MAX_APPLY_OUTCOME)
            .map(|value| apply_outcome_from_pb(value).unwrap())
            .collect();
        assert_eq!(outcomes, ApplyOutcome::ALL);
    }

    #[test]
    fn unknown_or_unspecified_apply_outcome_is_a_protocol_error() {
        for value in [0, MAX_APPLY_OUTCOME + 1, -7] {
            let error = apply_outcome_from_pb(value).unwrap_err();
            assert!(
                matches!(error, TransportError::Protocol(_)),
                "{value}: {error:?}"
            );
        }
    }

    #[test]
    fn unknown_kind_inside_a_response_fails_the_response() {
        use pb::operation_result::Outcome;
        let response = pb::ExecuteResponse {
            results: vec![pb::OperationResult {
                outcome: Some(Outcome::Error(pb::Error {
                    kind: 42,
                    message: "from the future".to_string(),
                })),
            }],
        };
        let error = execute_response_from_pb(response, 1).unwrap_err();
        assert!(matches!(error, TransportError::Protocol(ref m) if m.contains("42")));
    }

    #[test]
    fn empty_outcome_is_a_protocol_error() {
        let response = pb::ExecuteResponse {
            results: vec![pb::OperationResult { outcome: None }],
        };
        assert!(matches!(
            execute_response_from_pb(response, 1),
            Err(TransportError::Protocol(_))
        ));
        let response = pb::ReplicateResponse {
            results: vec![pb::EntryResult { outcome: None }],
        };
        assert!(matches!(
            replicate_response_from_pb(response, 1),
            Err(TransportError::Protocol(_))
        ));
    }

    #[test]
    fn result_count_mismatch_is_a_protocol_error() {
        let response = execute_response_to_pb(ExecuteResponse {
            results: vec![Ok(Bytes::from_static(b"one"))],
        });
        assert!(matches!(
            execute_response_from_pb(response, 2),
            Err(TransportError::Protocol(_))
        ));
        let response = replicate_response_to_pb(ReplicateResponse {
            results: vec![Ok(ApplyOutcome::Stored), Ok(ApplyOutcome::Stale)],
        });
        assert!(matches!(
            replicate_response_from_pb(response, 1),
            Err(TransportError::Protocol(_))
        ));
    }

    #[test]
    fn unknown_kind_inside_a_transfer_ack_fails_the_ack() {
        let ack = pb::TransferAck {
            sequence: 3,
            applied: 0,
            error: Some(pb::Error {
                kind: 77,
                message: String::new(),
            }),
            rejected: Vec::new(),
        };
        assert!(matches!(
            transfer_ack_from_pb(ack),
            Err(TransportError::Protocol(_))
        ));
        for error in [
            None,
            Some(pb::Error {
                kind: 77,
                message: String::new(),
            }),
        ] {
            let ack = pb::TransferAck {
                sequence: 3,
                applied: 0,
                error: None,
                rejected: vec![pb::RejectedEntry {
                    key: Bytes::from_static(b"k"),
                    error,
                }],
            };
            assert!(matches!(
                transfer_ack_from_pb(ack),
                Err(TransportError::Protocol(_))
            ));
        }
    }

    fn bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..32).prop_map(Bytes::from)
    }

    fn remote_error() -> impl Strategy<Value = RemoteError> {
        (proptest::sample::select(ErrorKind::ALL.to_vec()), ".{0,16}")
            .prop_map(|(kind, message)| RemoteError::new(kind, message))
    }

    fn entry() -> impl Strategy<Value = Entry> {
        (
            bytes(),
            any::<u64>(),
            any::<u64>(),
            any::<Option<u64>>(),
            bytes(),
            any::<bool>(),
            any::<Option<(u64, u64)>>(),
        )
            .prop_map(|(key, hlc, node, ttl_ms, payload, tombstone, base)| Entry {
                key,
                hlc,
                node,
                ttl_ms,
                payload,
                tombstone,
                base: base.map(|(hlc, node)| Stamp { hlc, node }),
            })
    }

    /// Encodes `message` to bytes and decodes it again, as the wire does.
    fn through_wire<M: prost::Message + Default>(message: &M) -> M {
        M::decode(message.encode_to_vec().as_slice()).unwrap()
    }

    proptest! {
        #[test]
        fn execute_messages_survive_encoding(
            from_node in ".{0,8}",
            view in any::<u64>(),
            ops in proptest::collection::vec((bytes(), bytes()), 0..8),
            results in proptest::collection::vec(
                prop_oneof![bytes().prop_map(Ok), remote_error().prop_map(Err)], 0..8),
        ) {
            let request = ExecuteRequest {
                from_node,
                view,
                ops: ops.into_iter().map(|(key, op)| Operation { key, op }).collect(),
                timeout_ms: view as u32,
            };
            let wire = through_wire(&execute_request_to_pb(request.clone()));
            prop_assert_eq!(execute_request_from_pb(wire), request);

            let response = ExecuteResponse { results };
            let expected = response.results.len();
            let wire = through_wire(&execute_response_to_pb(response.clone()));
            prop_assert_eq!(execute_response_from_pb(wire, expected).unwrap(), response);
        }

        #[test]
        fn replication_and_transfer_messages_survive_encoding(
            entries in proptest::collection::vec(entry(), 0..8),
            results in proptest::collection::vec(
                prop_oneof![
                    proptest::sample::select(ApplyOutcome::ALL.to_vec()).prop_map(Ok),
                    remote_error().prop_map(Err),
                ], 0..8),
            sequence in any::<u64>(),
            applied in any::<u32>(),
            error in proptest::option::of(remote_error()),
            last in any::<bool>(),
        ) {
            let request = ReplicateRequest {
                from_node: "a".to_string(),
                view: 7,
                entries: entries.clone(),
            };
            let wire = through_wire(&replicate_request_to_pb(request.clone()));
            prop_assert_eq!(replicate_request_from_pb(wire), request);

            let response = ReplicateResponse { results };
            let expected = response.results.len();
            let wire = through_wire(&replicate_response_to_pb(response.clone()));
            prop_assert_eq!(replicate_response_from_pb(wire, expected).unwrap(), response);

            let batch = TransferBatch {
                from_node: "b".to_string(),
                view: 9,
                sequence,
                entries,
                last,
            };
            let wire = through_wire(&transfer_batch_to_pb(batch.clone()));
            prop_assert_eq!(transfer_batch_from_pb(wire), batch);

            let rejected = error
                .iter()
                .map(|error| (Bytes::from_static(b"refused"), error.clone()))
                .collect();
            let ack = TransferAck { sequence, applied, error, rejected };
            let wire = through_wire(&transfer_ack_to_pb(ack.clone()));
            prop_assert_eq!(transfer_ack_from_pb(wire).unwrap(), ack);
        }
    }

    #[test]
    fn peer_status_round_trips() {
        let status = PeerStatus {
            node_id: "node-1".to_string(),
            protocol_version: proto::PROTOCOL_VERSION,
            keys: 12,
            memory_bytes: 3456,
            rebalance_pending: 7,
            view: 8,
            settled: true,
        };
        let wire = through_wire(&peer_status_to_pb(status.clone()));
        assert_eq!(peer_status_from_pb(wire), status);
    }
}
