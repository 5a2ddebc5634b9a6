//! Pins the wire format of `hive.peer.v1`: golden encodings of every message
//! (so a renumbered or retyped field fails here, not in a mixed-version
//! cluster), the enum values, and the service name.
//!
//! Spec: cluster.md "Peer protocol" — field numbers are never reused. A change
//! that breaks one of these tests breaks compatibility with running nodes:
//! add a new field instead, or move to `hive.peer.v2`.

use prost::Message;
use prost::bytes::Bytes;
use proto::pb;

/// Returns `message` encoded.
fn encoded(message: &impl Message) -> Vec<u8> {
    message.encode_to_vec()
}

fn entry() -> pb::Entry {
    pb::Entry {
        key: Bytes::from_static(b"k"),
        hlc: 1,
        node: 2,
        ttl_ms: Some(3),
        payload: Bytes::from_static(b"p"),
        tombstone: true,
        base: None,
    }
}

/// `entry()` encoded: key=1, hlc=2, node=3, ttl_ms=4, payload=5, tombstone=6.
const ENTRY: [u8; 14] = [
    0x0a, 1, b'k', 0x10, 1, 0x18, 2, 0x20, 3, 0x2a, 1, b'p', 0x30, 1,
];

#[test]
fn a_replica_writes_base_is_field_7_with_hlc_1_and_node_2() {
    let entry = pb::Entry {
        base: Some(pb::Stamp { hlc: 4, node: 5 }),
        ..entry()
    };
    let mut expected = ENTRY.to_vec();
    expected.extend([0x3a, 4, 0x08, 4, 0x10, 5]);
    assert_eq!(encoded(&entry), expected);
}

#[test]
fn execute_messages_keep_their_field_numbers() {
    let request = pb::ExecuteRequest {
        from_node: "n".to_string(),
        view: 5,
        ops: vec![pb::Operation {
            key: Bytes::from_static(b"k"),
            op: Bytes::from_static(b"o"),
        }],
        timeout_ms: 9,
    };
    assert_eq!(
        encoded(&request),
        [
            0x0a, 1, b'n', 0x10, 5, 0x1a, 6, 0x0a, 1, b'k', 0x12, 1, b'o', 0x20, 9
        ]
    );

    use pb::operation_result::Outcome;
    let response = pb::ExecuteResponse {
        results: vec![
            pb::OperationResult {
                outcome: Some(Outcome::Reply(Bytes::from_static(b"r"))),
            },
            pb::OperationResult {
                outcome: Some(Outcome::Error(pb::Error {
                    kind: pb::ErrorKind::NotFound.into(),
                    message: "m".to_string(),
                })),
            },
        ],
    };
    assert_eq!(
        encoded(&response),
        [
            0x0a, 3, 0x0a, 1, b'r', // reply = 1
            0x0a, 7, 0x12, 5, 0x08, 1, 0x12, 1, b'm', // error = 2 { kind = 1, message = 2 }
        ]
    );
}

#[test]
fn replicate_messages_keep_their_field_numbers() {
    assert_eq!(encoded(&entry()), ENTRY);

    let request = pb::ReplicateRequest {
        from_node: "n".to_string(),
        view: 5,
        entries: vec![entry()],
    };
    let mut expected = vec![0x0a, 1, b'n', 0x10, 5, 0x1a, 14];
    expected.extend(ENTRY);
    assert_eq!(encoded(&request), expected);

    use pb::entry_result::Outcome;
    let response = pb::ReplicateResponse {
        results: vec![
            pb::EntryResult {
                outcome: Some(Outcome::Applied(pb::ApplyOutcome::Stale.into())),
            },
            pb::EntryResult {
                outcome: Some(Outcome::Error(pb::Error {
                    kind: pb::ErrorKind::NotOwner.into(),
                    message: String::new(),
                })),
            },
        ],
    };
    assert_eq!(
        encoded(&response),
        [
            0x0a, 2, 0x08, 4, // applied = 1
            0x0a, 4, 0x12, 2, 0x08, 8, // error = 2
        ]
    );
}

#[test]
fn transfer_messages_keep_their_field_numbers() {
    let batch = pb::TransferBatch {
        from_node: "n".to_string(),
        view: 5,
        sequence: 6,
        entries: vec![entry()],
        last: true,
    };
    let mut expected = vec![0x0a, 1, b'n', 0x10, 5, 0x18, 6, 0x22, 14];
    expected.extend(ENTRY);
    expected.extend([0x28, 1]);
    assert_eq!(encoded(&batch), expected);

    let ack = pb::TransferAck {
        sequence: 6,
        applied: 7,
        error: Some(pb::Error {
            kind: pb::ErrorKind::ShuttingDown.into(),
            message: "m".to_string(),
        }),
        rejected: vec![pb::RejectedEntry {
            key: Bytes::from_static(b"k"),
            error: Some(pb::Error {
                kind: pb::ErrorKind::InvalidArgument.into(),
                message: "n".to_string(),
            }),
        }],
    };
    assert_eq!(
        encoded(&ack),
        [
            0x08, 6, 0x10, 7, 0x1a, 5, 0x08, 7, 0x12, 1, b'm', 0x22, 10, 0x0a, 1, b'k', 0x12, 5,
            0x08, 4, 0x12, 1, b'n'
        ]
    );
}

#[test]
fn status_messages_keep_their_field_numbers() {
    assert!(encoded(&pb::StatusRequest {}).is_empty());
    let response = pb::StatusResponse {
        node_id: "n".to_string(),
        protocol_version: proto::PROTOCOL_VERSION,
        keys: 2,
        memory_bytes: 3,
        rebalance_pending: 4,
        view: 5,
        settled: true,
    };
    assert_eq!(
        encoded(&response),
        [
            0x0a, 1, b'n', 0x10, 1, 0x18, 2, 0x20, 3, 0x28, 4, 0x30, 5, 0x38, 1
        ]
    );
}

#[test]
fn enum_values_are_stable() {
    let error_kinds = [
        (0, "ERROR_KIND_UNSPECIFIED"),
        (1, "NOT_FOUND"),
        (2, "WRONG_TYPE"),
        (3, "CAPACITY_EXCEEDED"),
        (4, "INVALID_ARGUMENT"),
        (5, "CODEC"),
        (6, "UNAVAILABLE"),
        (7, "SHUTTING_DOWN"),
        (8, "NOT_OWNER"),
        (9, "INVALID_VALUE"),
        (10, "DEFERRED"),
        (11, "INDETERMINATE"),
    ];
    for (value, name) in error_kinds {
        let kind = pb::ErrorKind::from_str_name(name).expect(name);
        assert_eq!(i32::from(kind), value, "{name}");
    }
    assert!(
        pb::ErrorKind::try_from(12).is_err(),
        "a new kind needs a test"
    );

    let outcomes = [
        (0, "APPLY_OUTCOME_UNSPECIFIED"),
        (1, "STORED"),
        (2, "DELETED"),
        (3, "EXPIRED"),
        (4, "STALE"),
        (5, "DIVERGED"),
    ];
    for (value, name) in outcomes {
        let outcome = pb::ApplyOutcome::from_str_name(name).expect(name);
        assert_eq!(i32::from(outcome), value, "{name}");
    }
    assert!(
        pb::ApplyOutcome::try_from(6).is_err(),
        "a new outcome needs a test"
    );
}

#[test]
fn service_and_version_are_stable() {
    assert_eq!(pb::peer_server::SERVICE_NAME, "hive.peer.v1.Peer");
    assert_eq!(proto::PROTOCOL_VERSION, 1);
}

#[test]
fn descriptor_set_describes_the_package() {
    let needle = b"hive.peer.v1";
    assert!(
        proto::FILE_DESCRIPTOR_SET
            .windows(needle.len())
            .any(|window| window == needle),
        "descriptor set does not name the package"
    );
}
