//! The RESP server against a raw socket (spec: hived.md "Protocol"):
//! pipelining, inline commands, RESP3, authentication, and malformed input —
//! the offending connection gets a protocol error and is closed, the server
//! stays up, and claimed sizes are never allocated.

mod support;

use std::time::Duration;

use hived::ServerOptions;
use hived::resp::Limits;
use support::{Client, Hived, Value, encode};

#[test]
fn pipelined_commands_are_answered_in_order() {
    let server = Hived::start();
    let mut client = server.client();
    let mut pipeline = Vec::new();
    for i in 0..100 {
        let value = i.to_string();
        pipeline.extend(encode(&[b"SET", b"counter", value.as_bytes()]));
        pipeline.extend(encode(&[b"GET", b"counter"]));
    }
    client.send_raw(&pipeline).unwrap();
    for i in 0..100 {
        assert_eq!(client.read().unwrap(), Value::Simple("OK".into()));
        assert_eq!(client.read().unwrap(), Value::bulk(&i.to_string()));
    }
}

#[test]
fn inline_commands_work_as_typed_in_a_terminal() {
    let server = Hived::start();
    let mut client = server.client();
    client
        .send_raw(b"SET greeting \"hello world\"\r\nGET greeting\r\nPING\n")
        .unwrap();
    assert_eq!(client.read().unwrap(), Value::Simple("OK".into()));
    assert_eq!(client.read().unwrap(), Value::bulk("hello world"));
    assert_eq!(client.read().unwrap(), Value::Simple("PONG".into()));
}

#[test]
fn hello_3_switches_to_resp3_shapes() {
    let server = Hived::start();
    let mut client = server.client();
    client.call(&["HSET", "h", "f", "v"]);
    client.call(&["ZADD", "z", "1.5", "m"]);
    let Value::Map(hello) = client.call(&["HELLO", "3"]) else {
        panic!("HELLO 3 answers a map");
    };
    assert!(hello.contains(&(Value::bulk("proto"), Value::Int(3))));
    assert_eq!(
        client.call(&["HGETALL", "h"]),
        Value::Map(vec![(Value::bulk("f"), Value::bulk("v"))])
    );
    assert_eq!(
        client.call(&["ZSCORE", "z", "m"]),
        Value::Double("1.5".into())
    );
    assert_eq!(client.call(&["GET", "missing"]), Value::Null);
    assert_eq!(
        client.call(&["HELLO", "4"]),
        Value::Error("NOPROTO unsupported protocol version".into())
    );
}

#[test]
fn a_password_is_required_before_anything_else() {
    let server = Hived::start_with(ServerOptions {
        password: Some("secret".into()),
        ..ServerOptions::default()
    });
    let mut client = server.client();
    assert!(matches!(client.call(&["GET", "k"]), Value::Error(e) if e.starts_with("NOAUTH")));
    assert!(
        matches!(client.call(&["AUTH", "wrong"]), Value::Error(e) if e.starts_with("WRONGPASS"))
    );
    assert_eq!(client.call(&["AUTH", "secret"]), Value::Simple("OK".into()));
    assert_eq!(client.call(&["GET", "k"]), Value::Bulk(None));
}

#[test]
fn unknown_commands_and_wrong_arity_are_errors_not_disconnects() {
    let server = Hived::start();
    let mut client = server.client();
    assert!(
        matches!(client.call(&["NOSUCH", "x"]), Value::Error(e) if e.starts_with("ERR unknown command 'NOSUCH'"))
    );
    assert!(
        matches!(client.call(&["GET"]), Value::Error(e) if e.contains("wrong number of arguments"))
    );
    assert_eq!(client.call(&["PING"]), Value::Simple("PONG".into()));
}

/// Sends `bytes` on a fresh connection and returns what comes back before the
/// server closes it.
fn rejected(server: &Hived, bytes: &[u8]) -> Vec<Value> {
    let mut client = server.client();
    // The server may close before reading everything: a failed write is fine.
    let _ = client.send_raw(bytes);
    client.finish_sending();
    let mut replies = Vec::new();
    while let Ok(reply) = client.read() {
        replies.push(reply);
    }
    replies
}

#[test]
fn malformed_frames_close_the_connection_and_the_server_stays_up() {
    let server = Hived::start_with(ServerOptions {
        limits: Limits {
            max_bulk: 1 << 20,
            max_elements: 1024,
            max_inline: 1024,
        },
        ..ServerOptions::default()
    });
    let cases: &[&[u8]] = &[
        b"*1\r\n$999999999999\r\n",   // a bulk far beyond the limit
        b"*99999999\r\n",             // too many elements
        b"*1\r\n$-7\r\n",             // a negative length
        b"*2\r\n$3\r\nGET\r\n:1\r\n", // not a bulk string
        b"*1\r\n$4\r\nPINGxx\r\n",    // bulk not terminated where claimed
        b"*abc\r\n",                  // not a number
        b"GET \"unbalanced\r\n",      // inline quotes
    ];
    for case in cases {
        let replies = rejected(&server, case);
        assert!(
            matches!(replies.last(), Some(Value::Error(e)) if e.starts_with("ERR Protocol error")),
            "{case:?}: {replies:?}"
        );
    }
    let mut long_line = vec![b'x'; 4096];
    long_line.extend_from_slice(b"\r\n");
    assert!(matches!(
        rejected(&server, &long_line).last(),
        Some(Value::Error(_))
    ));
    // Binary garbage: whatever it is read as, the connection ends without a
    // crash, and the server keeps serving others.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = rejected(&server, &garbage);
    assert_eq!(
        server.client().call(&["PING"]),
        Value::Simple("PONG".into())
    );
}

#[test]
fn a_client_that_buffers_past_the_query_limit_is_cut_off() {
    let server = Hived::start_with(ServerOptions {
        limits: Limits {
            max_bulk: 1 << 20,
            ..Limits::default()
        },
        max_query_buffer: Some(64 << 10),
        ..ServerOptions::default()
    });
    // A 1 MiB argument is within the bulk limit, but the connection may not
    // buffer more than 64 KiB of an unfinished command.
    let mut frame = b"*2\r\n$3\r\nGET\r\n$1048576\r\n".to_vec();
    frame.extend(std::iter::repeat_n(b'x', 256 << 10));
    let replies = rejected(&server, &frame);
    assert!(
        matches!(replies.last(), Some(Value::Error(e)) if e.contains("query buffer limit")),
        "{replies:?}"
    );
    assert_eq!(
        server.client().call(&["PING"]),
        Value::Simple("PONG".into())
    );
}

#[test]
fn a_truncated_frame_waits_and_a_closed_connection_is_dropped_quietly() {
    let server = Hived::start();
    let mut client = server.client();
    client.send_raw(b"*2\r\n$3\r\nGET\r\n$5\r\nab").unwrap();
    assert!(
        client.silent_for(Duration::from_millis(100)),
        "the server answered half a command"
    );
    client.send_raw(b"cde\r\n").unwrap();
    assert_eq!(client.read().unwrap(), Value::Bulk(None));
    drop(client);
    // A client that vanishes mid-frame does not disturb the next one.
    let mut half = Client::connect(server.addr);
    half.send_raw(b"*3\r\n$3\r\nSET\r\n").unwrap();
    drop(half);
    assert_eq!(
        server.client().call(&["PING"]),
        Value::Simple("PONG".into())
    );
}

#[test]
fn quit_answers_then_closes() {
    let server = Hived::start();
    let mut client = server.client();
    assert_eq!(client.call(&["QUIT"]), Value::Simple("OK".into()));
    assert!(client.read().is_err());
}

#[test]
fn command_lists_the_table_and_docs_answer_for_redis_cli() {
    let server = Hived::start();
    let mut client = server.client();
    let Value::Int(count) = client.call(&["COMMAND", "COUNT"]) else {
        panic!("COMMAND COUNT answers an integer");
    };
    let Value::Array(Some(all)) = client.call(&["COMMAND"]) else {
        panic!("COMMAND answers an array");
    };
    assert_eq!(all.len() as i64, count);
    let Value::Array(Some(info)) = client.call(&["COMMAND", "INFO", "get", "nosuch"]) else {
        panic!("COMMAND INFO answers an array");
    };
    let Value::Array(Some(get)) = &info[0] else {
        panic!("GET is described");
    };
    assert_eq!(&get[..2], &[Value::bulk("get"), Value::Int(2)]);
    assert_eq!(info[1], Value::Array(None));
    let Value::Array(Some(docs)) = client.call(&["COMMAND", "DOCS", "set"]) else {
        panic!("COMMAND DOCS answers a map (an array in RESP2)");
    };
    assert_eq!(docs[0], Value::bulk("set"));
}

#[test]
fn hive_status_dbsize_and_info_describe_the_node() {
    let server = Hived::start();
    let mut client = server.client();
    client.call(&["SET", "a", "1"]);
    client.call(&["RPUSH", "b", "x"]);
    assert_eq!(client.call(&["DBSIZE"]), Value::Int(2));
    let Value::Array(Some(status)) = client.call(&["HIVE.STATUS"]) else {
        panic!("HIVE.STATUS answers a map (an array in RESP2)");
    };
    let field = |name: &str| {
        status
            .chunks(2)
            .find(|pair| pair[0] == Value::bulk(name))
            .map(|pair| pair[1].clone())
    };
    assert_eq!(field("keys"), Some(Value::Int(2)));
    assert_eq!(field("tombstones"), Some(Value::Int(0)));
    assert_eq!(field("replication_factor"), Some(Value::Int(1)));
    let Some(Value::Array(Some(members))) = field("members") else {
        panic!("members listed");
    };
    assert_eq!(members.len(), 1);
    let Some(Value::Bulk(Some(node_id))) = field("node_id") else {
        panic!("node_id reported");
    };
    assert_eq!(
        client.call(&["HIVE.OWNERS", "any-key"]),
        Value::Array(Some(vec![Value::Bulk(Some(node_id))])),
        "a standalone node holds every key"
    );
    let Value::Bulk(Some(info)) = client.call(&["INFO"]) else {
        panic!("INFO answers a bulk string");
    };
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("# Keyspace\r\ndb0:keys=2"), "{info}");
    assert!(info.contains("# Cluster\r\n"), "{info}");
}

#[test]
fn config_get_reports_what_benchmark_tools_ask_for() {
    let server = Hived::start();
    let mut client = server.client();
    assert_eq!(
        client.call(&["CONFIG", "GET", "appendonly"]),
        Value::Array(Some(vec![Value::bulk("appendonly"), Value::bulk("no")]))
    );
    assert_eq!(
        client.call(&["CONFIG", "GET", "maxmemory"]),
        Value::Array(Some(vec![Value::bulk("maxmemory"), Value::bulk("0")]))
    );
    // Settings Hive does not have are not invented.
    assert_eq!(
        client.call(&["CONFIG", "GET", "hash-max-listpack-entries"]),
        Value::Array(Some(vec![]))
    );
    assert!(matches!(
        client.call(&["CONFIG", "SET", "save", ""]),
        Value::Error(_)
    ));
}
