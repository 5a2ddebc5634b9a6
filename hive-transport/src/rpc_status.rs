//! The one mapping between errors and `tonic::Status`, both directions.
//!
//! A handler's whole-request [`RemoteError`] travels as a status whose code
//! fits its kind and whose `hive-error-kind` header names the kind exactly
//! (`NOT_FOUND`, ...), so the caller gets back the same [`ErrorKind`]. Statuses
//! without that header come from the gRPC machinery (deadlines, size limits,
//! broken connections) or from a foreign server, and map to the other
//! [`TransportError`] variants.

use std::error::Error as _;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::client::PeerAddr;
use crate::convert;
use crate::error::TransportError;
use crate::message::{ErrorKind, RemoteError};

/// Metadata header carrying the protobuf name of a whole-request error's kind.
const ERROR_KIND_HEADER: &str = "hive-error-kind";

/// The message tonic gives a call that its server-side `grpc-timeout` cut.
const SERVER_TIMEOUT_MESSAGE: &str = "Timeout expired";

/// The prefix of tonic's status for a call whose channel could not get ready
/// (no connection).
const NOT_READY_PREFIX: &str = "Service was not ready";

/// Returns the status a server sends when its handler refuses a whole request.
pub(crate) fn from_remote_error(error: &RemoteError) -> Status {
    let code = match error.kind {
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::WrongType | ErrorKind::NotOwner | ErrorKind::InvalidValue => {
            Code::FailedPrecondition
        }
        ErrorKind::CapacityExceeded => Code::ResourceExhausted,
        ErrorKind::InvalidArgument | ErrorKind::Codec => Code::InvalidArgument,
        ErrorKind::Unavailable | ErrorKind::ShuttingDown | ErrorKind::Deferred => Code::Unavailable,
        ErrorKind::Indeterminate => Code::Aborted,
    };
    let mut status = Status::new(code, error.message.clone());
    let name = convert::error_kind_to_pb(error.kind).as_str_name();
    status
        .metadata_mut()
        .insert(ERROR_KIND_HEADER, MetadataValue::from_static(name));
    status
}

/// Returns the status of a call refused because its server is shutting down.
pub(crate) fn shutting_down() -> Status {
    from_remote_error(&RemoteError::new(
        ErrorKind::ShuttingDown,
        "the peer is shutting down",
    ))
}

/// Returns the status for a message of `size` bytes over the receiver's
/// `limit`, worded as tonic words it so that [`to_transport_error`] reads both
/// the same way.
pub(crate) fn too_large(size: usize, limit: usize) -> Status {
    Status::out_of_range(format!(
        "Error, decoded message length too large: found {size} bytes, the limit is: {limit} bytes"
    ))
}

/// Returns the transport error for a call to `peer` with deadline `deadline`
/// that ended with `status`.
pub(crate) fn to_transport_error(
    peer: PeerAddr,
    deadline: Duration,
    status: Status,
) -> TransportError {
    if let Some(kind) = status.metadata().get(ERROR_KIND_HEADER) {
        let kind = kind
            .to_str()
            .ok()
            .and_then(proto::pb::ErrorKind::from_str_name)
            .ok_or_else(|| {
                TransportError::Protocol(format!("unknown {ERROR_KIND_HEADER} header {kind:?}"))
            })
            .and_then(|kind| convert::error_kind_from_pb(kind.into()));
        return match kind {
            Ok(kind) => TransportError::Remote(RemoteError::new(kind, status.message())),
            Err(error) => error,
        };
    }
    let code = status.code();
    if matches!(code, Code::OutOfRange | Code::ResourceExhausted)
        && let Some((size, limit)) = parse_too_large(status.message())
    {
        return TransportError::TooLarge { size, limit };
    }
    match code {
        Code::DeadlineExceeded => TransportError::Timeout {
            peer,
            after: deadline,
        },
        Code::Cancelled if status.message() == SERVER_TIMEOUT_MESSAGE => TransportError::Timeout {
            peer,
            after: deadline,
        },
        // No connection could be made: the request was never sent.
        _ if never_sent(&status) => TransportError::Unreachable {
            peer,
            reason: describe(&status),
        },
        // A status without the kind header made on this side from a
        // connection error (it has a source), or an `UNAVAILABLE` from the
        // connection machinery: the connection broke with the call under
        // way, so the remote may have run it.
        Code::Unavailable => TransportError::Interrupted {
            peer,
            reason: describe(&status),
        },
        _ if status.source().is_some() => TransportError::Interrupted {
            peer,
            reason: describe(&status),
        },
        code => TransportError::Rejected {
            code: code.into(),
            message: status.message().to_string(),
        },
    }
}

/// Returns true if `status` says the call never left this side: its channel
/// could not get ready, or connecting failed (refused, no route). A
/// connection that breaks later ("connection reset", "broken pipe") may have
/// carried the request, so it is not one of these.
fn never_sent(status: &Status) -> bool {
    if status.message().starts_with(NOT_READY_PREFIX) {
        return true;
    }
    let reason = describe(status);
    CONNECT_FAILURES
        .iter()
        .any(|failure| reason.contains(failure))
}

/// What the connection machinery says when no connection could be made
/// (hyper's connector and the operating system's wording).
const CONNECT_FAILURES: [&str; 5] = [
    "tcp connect error",
    "error trying to connect",
    "Connection refused",
    "No route to host",
    "Network is unreachable",
];

/// Returns the sizes in tonic's "message length too large: found N bytes, the
/// limit is: M bytes" message.
fn parse_too_large(message: &str) -> Option<(usize, usize)> {
    let (_, rest) = message.split_once("found ")?;
    let (size, rest) = rest.split_once(" bytes, the limit is: ")?;
    let (limit, _) = rest.split_once(" bytes")?;
    Some((size.parse().ok()?, limit.parse().ok()?))
}

/// Returns the status message followed by its chain of sources.
fn describe(status: &Status) -> String {
    let mut reason = status.message().to_string();
    let mut source = status.source();
    while let Some(error) = source {
        reason.push_str(": ");
        reason.push_str(&error.to_string());
        source = error.source();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: PeerAddr = PeerAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        7000,
    ));
    const DEADLINE: Duration = Duration::from_secs(1);

    #[test]
    fn every_kind_survives_a_status() {
        for kind in ErrorKind::ALL {
            let status = from_remote_error(&RemoteError::new(kind, "detail"));
            match to_transport_error(PEER, DEADLINE, status) {
                TransportError::Remote(error) => {
                    assert_eq!(error, RemoteError::new(kind, "detail"));
                }
                other => panic!("{kind:?} came back as {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_kind_header_is_a_protocol_error() {
        let mut status = Status::not_found("x");
        status
            .metadata_mut()
            .insert(ERROR_KIND_HEADER, MetadataValue::from_static("NOT_A_KIND"));
        assert!(matches!(
            to_transport_error(PEER, DEADLINE, status),
            TransportError::Protocol(_)
        ));
        let mut status = Status::not_found("x");
        status.metadata_mut().insert(
            ERROR_KIND_HEADER,
            MetadataValue::from_static("ERROR_KIND_UNSPECIFIED"),
        );
        assert!(matches!(
            to_transport_error(PEER, DEADLINE, status),
            TransportError::Protocol(_)
        ));
    }

    #[test]
    fn size_statuses_become_too_large() {
        for status in [
            too_large(200, 100),
            Status::out_of_range(
                "Error, encoded message length too large: found 200 bytes, the limit is: 100 bytes",
            ),
        ] {
            assert!(matches!(
                to_transport_error(PEER, DEADLINE, status),
                TransportError::TooLarge {
                    size: 200,
                    limit: 100
                }
            ));
        }
    }

    #[test]
    fn machinery_statuses_map_to_their_variants() {
        assert!(matches!(
            to_transport_error(PEER, DEADLINE, Status::deadline_exceeded("late")),
            TransportError::Timeout {
                after: DEADLINE,
                ..
            }
        ));
        assert!(matches!(
            to_transport_error(PEER, DEADLINE, Status::cancelled(SERVER_TIMEOUT_MESSAGE)),
            TransportError::Timeout { .. }
        ));
        // Never sent: no connection could be made.
        for message in [
            "tcp connect error: Connection refused (os error 111)",
            "Service was not ready: transport error",
        ] {
            assert!(
                matches!(
                    to_transport_error(PEER, DEADLINE, Status::unavailable(message)),
                    TransportError::Unreachable { peer: PEER, .. }
                ),
                "{message}"
            );
        }
        // The connection broke with the call under way: it may have run.
        for message in [
            "connection reset",
            "error reading a body from connection: stream closed because of a broken pipe",
        ] {
            assert!(
                matches!(
                    to_transport_error(PEER, DEADLINE, Status::unavailable(message)),
                    TransportError::Interrupted { peer: PEER, .. }
                ),
                "{message}"
            );
        }
        assert!(matches!(
            to_transport_error(PEER, DEADLINE, Status::unimplemented("no such method")),
            TransportError::Rejected { code: 12, .. }
        ));
    }
}
