//! Commands the differential test cannot compare because the `redis-server`
//! it starts (Debian's 7.0) lacks them or answers at random: the hash-field
//! TTLs of Redis 7.4 (`HEXPIRE`, `HPEXPIRE`, `HTTL`, `HPTTL`, `HPERSIST`, with
//! the return codes Redis documents), `RENAME` across types, and the shapes
//! of the random picks; deadlines read back exactly (`EXPIRETIME`,
//! `HPEXPIRETIME`), `ZRANK ... WITHSCORE` (7.2) and the introspection
//! commands clients read (`INFO`, `CONFIG GET`, `CLIENT INFO`, `COMMAND LIST`),
//! and the bound on the random picks a client can ask to repeat.

mod support;

use hived::ServerOptions;
use support::{Client, Hived, Value};

fn ints(values: &[i64]) -> Value {
    Value::Array(Some(values.iter().map(|&n| Value::Int(n)).collect()))
}

fn call(client: &mut Client, line: &str) -> Value {
    let args: Vec<&str> = line.split(' ').collect();
    client.call(&args)
}

#[test]
fn hash_field_ttls_answer_with_redis_7_4_codes() {
    let server = Hived::start();
    let mut client = server.client();
    call(&mut client, "HSET h a 1 b 2 c 3");
    // 1 set, -2 no such field.
    assert_eq!(
        call(&mut client, "HEXPIRE h 100 FIELDS 2 a nope"),
        ints(&[1, -2])
    );
    assert_eq!(
        call(&mut client, "HTTL h FIELDS 3 a b nope"),
        ints(&[100, -1, -2])
    );
    let pttl = call(&mut client, "HPTTL h FIELDS 1 a");
    let Value::Array(Some(items)) = pttl else {
        panic!("HPTTL answered {pttl:?}");
    };
    assert!(matches!(items[0], Value::Int(ms) if (99_000..=100_000).contains(&ms)));
    // Conditions: 0 when not met.
    assert_eq!(
        call(&mut client, "HEXPIRE h 50 NX FIELDS 2 a b"),
        ints(&[0, 1])
    );
    assert_eq!(
        call(&mut client, "HEXPIRE h 500 XX FIELDS 2 a c"),
        ints(&[1, 0])
    );
    assert_eq!(
        call(&mut client, "HEXPIRE h 10 GT FIELDS 2 a c"),
        ints(&[0, 0])
    );
    assert_eq!(
        call(&mut client, "HEXPIRE h 10 LT FIELDS 2 a c"),
        ints(&[1, 1])
    );
    assert_eq!(
        call(&mut client, "HPEXPIRE h 20000 GT FIELDS 1 a"),
        ints(&[1])
    );
    assert_eq!(
        call(&mut client, "HTTL h FIELDS 3 a b c"),
        ints(&[20, 50, 10])
    );
    // HPERSIST: 1 removed, -1 had none, -2 no field.
    assert_eq!(call(&mut client, "HPERSIST h FIELDS 2 a a"), ints(&[1, -1]));
    assert_eq!(call(&mut client, "HPERSIST h FIELDS 1 nope"), ints(&[-2]));
    // A TTL of 0 deletes the field: 2.
    assert_eq!(call(&mut client, "HEXPIRE h 0 FIELDS 1 b"), ints(&[2]));
    assert_eq!(call(&mut client, "HEXISTS h b"), Value::Int(0));
    assert_eq!(call(&mut client, "HLEN h"), Value::Int(2));
    // A missing key: -2 for every field; the key keeps no trace.
    assert_eq!(
        call(&mut client, "HEXPIRE missing 10 FIELDS 2 a b"),
        ints(&[-2, -2])
    );
    assert_eq!(call(&mut client, "HTTL missing FIELDS 1 a"), ints(&[-2]));
    assert_eq!(call(&mut client, "EXISTS missing"), Value::Int(0));
}

#[test]
fn a_field_whose_ttl_runs_out_disappears() {
    let server = Hived::start();
    let mut client = server.client();
    call(&mut client, "HSET h a 1 b 2");
    assert_eq!(call(&mut client, "HPEXPIRE h 30 FIELDS 1 a"), ints(&[1]));
    // Poll with a deadline: the field goes once its 30 ms are up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while call(&mut client, "HEXISTS h a") == Value::Int(1) {
        assert!(
            std::time::Instant::now() < deadline,
            "the field never expired"
        );
        std::thread::yield_now();
    }
    assert_eq!(
        call(&mut client, "HGETALL h"),
        Value::Array(Some(vec![Value::bulk("b"), Value::bulk("2")]))
    );
}

#[test]
fn hash_field_ttl_commands_refuse_bad_arguments() {
    let server = Hived::start();
    let mut client = server.client();
    call(&mut client, "HSET h a 1");
    call(&mut client, "SET s v");
    let refusals = [
        "HEXPIRE h 10 FIELDS 0 a",
        "HEXPIRE h 10 FIELDS 2 a",
        "HEXPIRE h 10 FIELDS x a",
        "HEXPIRE h 10 a",
        "HEXPIRE h -1 FIELDS 1 a",
        "HEXPIRE h x FIELDS 1 a",
        "HTTL h FIELD 1 a",
        "HPERSIST h FIELDS 2 a b c",
    ];
    for line in refusals {
        let reply = call(&mut client, line);
        assert!(
            matches!(&reply, Value::Error(message) if message.starts_with("ERR")),
            "{line}: {reply:?}"
        );
    }
    let reply = call(&mut client, "HEXPIRE s 10 FIELDS 1 a");
    assert!(matches!(&reply, Value::Error(message) if message.starts_with("WRONGTYPE")));
    assert_eq!(
        call(&mut client, "HTTL h FIELDS 1 a"),
        ints(&[-1]),
        "nothing changed"
    );
}

#[test]
fn rename_moves_any_type_with_its_ttl() {
    let server = Hived::start();
    let mut client = server.client();
    call(&mut client, "ZADD z 1 a 2 b");
    call(&mut client, "EXPIRE z 100");
    call(&mut client, "SET target old");
    assert_eq!(
        call(&mut client, "RENAME z target"),
        Value::Simple("OK".into())
    );
    assert_eq!(call(&mut client, "EXISTS z"), Value::Int(0));
    assert_eq!(
        call(&mut client, "TYPE target"),
        Value::Simple("zset".into())
    );
    assert_eq!(call(&mut client, "TTL target"), Value::Int(100));
    assert_eq!(
        call(&mut client, "ZRANGE target 0 -1"),
        Value::Array(Some(vec![Value::bulk("a"), Value::bulk("b")]))
    );
    let reply = call(&mut client, "RENAME nothing x");
    assert_eq!(reply, Value::Error("ERR no such key".into()));
}

#[test]
fn random_picks_have_redis_shapes() {
    let server = Hived::start();
    let mut client = server.client();
    call(&mut client, "HSET h a 1 b 2 c 3");
    call(&mut client, "SADD s a b c");
    let Value::Array(Some(fields)) = call(&mut client, "HRANDFIELD h 2") else {
        panic!("not an array");
    };
    assert_eq!(fields.len(), 2);
    assert_ne!(
        fields[0], fields[1],
        "a positive count picks distinct fields"
    );
    let Value::Array(Some(repeats)) = call(&mut client, "SRANDMEMBER s -7") else {
        panic!("not an array");
    };
    assert_eq!(repeats.len(), 7, "a negative count may repeat members");
    let Value::Array(Some(pairs)) = call(&mut client, "HRANDFIELD h -4 WITHVALUES") else {
        panic!("not an array");
    };
    assert_eq!(pairs.len(), 8, "field, value, field, value, ...");
    for pair in pairs.chunks(2) {
        let Value::Bulk(Some(field)) = &pair[0] else {
            panic!("{pair:?}");
        };
        let want = match field.as_slice() {
            b"a" => "1",
            b"b" => "2",
            _ => "3",
        };
        assert_eq!(pair[1], Value::bulk(want));
    }
    assert!(matches!(call(&mut client, "SPOP s"), Value::Bulk(Some(_))));
    assert_eq!(call(&mut client, "SCARD s"), Value::Int(2));
    assert_eq!(call(&mut client, "HRANDFIELD missing"), Value::Bulk(None));
}

/// Returns the number of elements of an array reply, failing on another.
fn array_len(reply: Value) -> usize {
    match reply {
        Value::Array(Some(items)) => items.len(),
        other => panic!("not an array: {other:?}"),
    }
}

// The issue: `HRANDFIELD h -200000000 WITHVALUES` on a one-field hash got the
// process OOM-killed, `SRANDMEMBER s -200000000` peaked at 14 GB and dropped
// the connection, and `SRANDMEMBER s -9223372036854775807` panicked a worker
// ("capacity overflow"). A negative count's reply is bounded by the output
// buffer limit (docs/redis-compatibility.md): past it the command is refused
// with an error, and the connection and the data stay as they were.
#[test]
fn random_counts_past_the_reply_limit_are_refused_and_change_nothing() {
    let server = Hived::start();
    let mut client = server.client();
    call(&mut client, "HSET h f v");
    call(&mut client, "SADD s m");
    for line in [
        "SRANDMEMBER s -9223372036854775807",
        "HRANDFIELD h -9223372036854775807",
        "HRANDFIELD h -200000000 WITHVALUES",
        "HRANDFIELD h -200000000",
        "SRANDMEMBER s -200000000",
        "HRANDFIELD h -4611686018427387903 WITHVALUES",
        // Out of Redis's own range.
        "SRANDMEMBER s -9223372036854775808",
        "HRANDFIELD h -9223372036854775808",
        "HRANDFIELD h -4611686018427387904 WITHVALUES",
        "HRANDFIELD h 4611686018427387904 WITHVALUES",
    ] {
        let reply = call(&mut client, line);
        assert!(
            matches!(&reply, Value::Error(message) if message.starts_with("ERR value is out of range")),
            "{line}: {reply:?}"
        );
    }
    assert_eq!(call(&mut client, "PING"), Value::Simple("PONG".into()));
    assert_eq!(
        call(&mut client, "HGETALL h"),
        Value::Array(Some(vec![Value::bulk("f"), Value::bulk("v")]))
    );
    assert_eq!(
        call(&mut client, "SMEMBERS s"),
        Value::Array(Some(vec![Value::bulk("m")]))
    );

    // In range, the reply is Redis's: |count| picks of the only member.
    let Value::Array(Some(picks)) = call(&mut client, "SRANDMEMBER s -100000") else {
        panic!("SRANDMEMBER answers an array");
    };
    assert_eq!(picks.len(), 100_000);
    assert!(picks.iter().all(|pick| *pick == Value::bulk("m")));
    let Value::Array(Some(pairs)) = call(&mut client, "HRANDFIELD h -1000 WITHVALUES") else {
        panic!("HRANDFIELD answers an array");
    };
    assert_eq!(pairs.len(), 2000);
    assert!(
        pairs
            .chunks(2)
            .all(|pair| pair == [Value::bulk("f"), Value::bulk("v")])
    );
    // A missing key has nothing to repeat, whatever the count.
    assert_eq!(
        array_len(call(&mut client, "SRANDMEMBER nothing -200000000")),
        0
    );
    assert_eq!(
        array_len(call(
            &mut client,
            "HRANDFIELD nothing -200000000 WITHVALUES"
        )),
        0
    );
    // RESP3 replies nest the pairs: bounded the same way.
    call(&mut client, "HELLO 3");
    assert!(matches!(
        call(&mut client, "HRANDFIELD h -200000000 WITHVALUES"),
        Value::Error(_)
    ));
    assert_eq!(
        array_len(call(&mut client, "HRANDFIELD h -3 WITHVALUES")),
        3
    );

    // The bound follows the server's output buffer limit.
    let small = Hived::start_with(ServerOptions {
        max_output_buffer: Some(1 << 20),
        ..ServerOptions::default()
    });
    let mut client = small.client();
    call(&mut client, "SADD s m");
    assert_eq!(array_len(call(&mut client, "SRANDMEMBER s -10000")), 10_000);
    assert!(matches!(
        call(&mut client, "SRANDMEMBER s -100000"),
        Value::Error(message) if message.starts_with("ERR value is out of range")
    ));
    assert_eq!(call(&mut client, "SCARD s"), Value::Int(1));
}

#[test]
fn scan_keys_randomkey_and_flush_cover_the_key_space() {
    let server = Hived::start();
    let mut client = server.client();
    for i in 0..100 {
        call(&mut client, &format!("SET user:{i} v"));
    }
    call(&mut client, "HSET user:h f v");
    call(&mut client, "SADD other x");
    // SCAN to the end: every key once, MATCH and TYPE applied.
    let (mut cursor, mut seen) = (String::from("0"), Vec::new());
    loop {
        let reply = call(&mut client, &format!("SCAN {cursor} MATCH user:* COUNT 7"));
        let Value::Array(Some(parts)) = reply else {
            panic!("{reply:?}");
        };
        let [Value::Bulk(Some(next)), Value::Array(Some(batch))] = &parts[..] else {
            panic!("{parts:?}");
        };
        seen.extend(batch.iter().cloned());
        cursor = String::from_utf8(next.clone()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 101);
    let Value::Array(Some(hashes)) = call(&mut client, "SCAN 0 TYPE hash COUNT 1000") else {
        panic!("not an array");
    };
    assert_eq!(hashes[1], Value::Array(Some(vec![Value::bulk("user:h")])));
    let Value::Array(Some(listed)) = call(&mut client, "KEYS user:?") else {
        panic!("not an array");
    };
    assert_eq!(listed.len(), 11, "user:0 .. user:9 and user:h");
    assert!(matches!(
        call(&mut client, "RANDOMKEY"),
        Value::Bulk(Some(_))
    ));
    assert_eq!(
        call(&mut client, "SCAN x"),
        Value::Error("ERR invalid cursor".into())
    );
    assert_eq!(call(&mut client, "FLUSHALL"), Value::Simple("OK".into()));
    assert_eq!(call(&mut client, "DBSIZE"), Value::Int(0));
    assert_eq!(call(&mut client, "RANDOMKEY"), Value::Bulk(None));
    assert_eq!(call(&mut client, "KEYS *"), Value::Array(Some(Vec::new())));
}

fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(elapsed.as_millis()).expect("fits")
}

#[test]
fn deadlines_set_by_expireat_read_back_exactly() {
    let server = Hived::start();
    let mut client = server.client();
    let at_ms = now_ms() + 3_600_000;
    call(&mut client, "SET k v");
    assert_eq!(
        call(&mut client, &format!("PEXPIREAT k {at_ms}")),
        Value::Int(1)
    );
    assert_eq!(call(&mut client, "PEXPIRETIME k"), Value::Int(at_ms));
    assert_eq!(call(&mut client, "EXPIRETIME k"), Value::Int(at_ms / 1000));
    call(&mut client, "SET plain v");
    assert_eq!(call(&mut client, "EXPIRETIME plain"), Value::Int(-1));
    assert_eq!(call(&mut client, "PEXPIRETIME missing"), Value::Int(-2));
    // A deadline already past deletes the key.
    assert_eq!(call(&mut client, "EXPIREAT k 1"), Value::Int(1));
    assert_eq!(call(&mut client, "EXISTS k"), Value::Int(0));

    // The same for hash fields (Redis 7.4's HEXPIREAT family).
    call(&mut client, "HSET h a 1 b 2 c 3");
    let at_s = at_ms / 1000;
    assert_eq!(
        call(&mut client, &format!("HEXPIREAT h {at_s} FIELDS 2 a nope")),
        ints(&[1, -2])
    );
    assert_eq!(
        call(
            &mut client,
            &format!("HPEXPIREAT h {at_ms} XX FIELDS 2 b c")
        ),
        ints(&[0, 0])
    );
    assert_eq!(
        call(&mut client, &format!("HPEXPIREAT h {at_ms} FIELDS 1 b")),
        ints(&[1])
    );
    assert_eq!(
        call(&mut client, "HPEXPIRETIME h FIELDS 4 a b c nope"),
        ints(&[at_s * 1000, at_ms, -1, -2])
    );
    assert_eq!(
        call(&mut client, "HEXPIRETIME h FIELDS 2 a b"),
        ints(&[at_s, at_ms / 1000])
    );
    assert_eq!(
        call(&mut client, "HEXPIRETIME missing FIELDS 1 a"),
        ints(&[-2])
    );
    // Past: the field is deleted, code 2.
    assert_eq!(call(&mut client, "HPEXPIREAT h 1 FIELDS 1 c"), ints(&[2]));
    assert_eq!(call(&mut client, "HEXISTS h c"), Value::Int(0));
    assert!(matches!(
        call(&mut client, "HEXPIREAT h -1 FIELDS 1 a"),
        Value::Error(message) if message.contains("invalid expire time")
    ));
}

#[test]
fn zrank_withscore_answers_rank_and_score() {
    let server = Hived::start();
    let mut client = server.client();
    call(&mut client, "ZADD z 1 a 2.5 b 3 c");
    assert_eq!(
        call(&mut client, "ZRANK z b WITHSCORE"),
        Value::Array(Some(vec![Value::Int(1), Value::bulk("2.5")]))
    );
    assert_eq!(
        call(&mut client, "ZREVRANK z a withscore"),
        Value::Array(Some(vec![Value::Int(2), Value::bulk("1")]))
    );
    assert_eq!(
        call(&mut client, "ZRANK z nope WITHSCORE"),
        Value::Array(None)
    );
    assert_eq!(call(&mut client, "ZRANK z nope"), Value::Bulk(None));
    assert!(matches!(
        call(&mut client, "ZRANK z a SCORES"),
        Value::Error(_)
    ));
}

#[test]
fn server_introspection_reports_what_clients_read() {
    let server = Hived::start();
    let mut client = server.client();
    let mut other = server.client();
    call(&mut other, "SET k v");
    let Value::Bulk(Some(info)) = call(&mut client, "INFO") else {
        panic!("INFO is a bulk string");
    };
    let info = String::from_utf8(info).expect("text");
    for section in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Stats",
        "# Keyspace",
        "# Cluster",
    ] {
        assert!(info.contains(section), "INFO lacks {section}:\n{info}");
    }
    assert!(info.contains("redis_version:7.4.0\r\n"));
    assert!(info.contains(&format!("tcp_port:{}\r\n", server.addr.port())));
    assert!(info.contains("connected_clients:2\r\n"), "{info}");
    assert!(info.contains("db0:keys=1,"), "{info}");
    assert!(info.contains("arch_bits:64\r\n"));
    let Value::Bulk(Some(clients)) = call(&mut client, "INFO clients") else {
        panic!("INFO clients is a bulk string");
    };
    assert!(!String::from_utf8_lossy(&clients).contains("# Server"));

    // CONFIG GET takes glob patterns and reports only real settings.
    let Value::Array(Some(pairs)) = call(&mut client, "CONFIG GET max*") else {
        panic!("CONFIG GET answers pairs");
    };
    assert_eq!(
        pairs,
        vec![
            Value::bulk("maxmemory"),
            Value::bulk("0"),
            Value::bulk("maxmemory-policy"),
            Value::bulk("noeviction"),
            Value::bulk("maxmemory-samples"),
            Value::bulk("5"),
        ]
    );
    assert_eq!(
        call(&mut client, "CONFIG GET nothing-like-it"),
        Value::Array(Some(vec![]))
    );

    // CLIENT SETINFO is recorded and shown by CLIENT INFO, with the addresses.
    assert_eq!(
        call(&mut client, "CLIENT SETINFO lib-name hive-test"),
        Value::Simple("OK".into())
    );
    assert_eq!(
        call(&mut client, "CLIENT SETINFO lib-ver 1.2"),
        Value::Simple("OK".into())
    );
    assert!(matches!(
        call(&mut client, "CLIENT SETINFO colour blue"),
        Value::Error(_)
    ));
    let Value::Bulk(Some(me)) = call(&mut client, "CLIENT INFO") else {
        panic!("CLIENT INFO is a bulk string");
    };
    let me = String::from_utf8(me).expect("text");
    assert!(me.contains("lib-name=hive-test lib-ver=1.2"), "{me}");
    assert!(me.contains(&format!("laddr={}", server.addr)), "{me}");
    assert!(me.contains("addr=127.0.0.1:"), "{me}");

    // COMMAND LIST, whole or filtered.
    let Value::Array(Some(all)) = call(&mut client, "COMMAND LIST") else {
        panic!("COMMAND LIST is an array");
    };
    assert_eq!(
        Value::Int(all.len() as i64),
        call(&mut client, "COMMAND COUNT")
    );
    let Value::Array(Some(hashes)) = call(&mut client, "COMMAND LIST FILTERBY PATTERN hexpire*")
    else {
        panic!("COMMAND LIST FILTERBY is an array");
    };
    let mut names: Vec<String> = hashes
        .into_iter()
        .map(|name| match name {
            Value::Bulk(Some(name)) => String::from_utf8(name).expect("text"),
            other => panic!("a command name, not {other:?}"),
        })
        .collect();
    names.sort();
    assert_eq!(names, ["hexpire", "hexpireat", "hexpiretime"]);
}

/// `MGET` and `MSET` run their keys concurrently, in chunks; the replies
/// still come in the order of the keys, and a key named twice in one `MSET`
/// keeps its last value.
#[test]
fn multi_key_commands_keep_key_order_across_many_keys() {
    let server = Hived::start();
    let mut client = server.client();
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    let mut mset = vec!["MSET".to_owned()];
    for (i, key) in keys.iter().enumerate() {
        mset.extend([key.clone(), format!("v{i}")]);
    }
    let mset: Vec<&str> = mset.iter().map(String::as_str).collect();
    assert_eq!(client.call(&mset), Value::Simple("OK".into()));
    call(&mut client, "LPUSH list x");
    assert_eq!(
        call(&mut client, "MSET twice 1 other 2 twice 3"),
        Value::Simple("OK".into())
    );
    assert_eq!(
        call(&mut client, "GET twice"),
        Value::Bulk(Some(b"3".to_vec()))
    );

    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    mget.extend(["list", "missing"]);
    let mut expected: Vec<Value> = (0..300)
        .map(|i| Value::Bulk(Some(format!("v{i}").into_bytes())))
        .collect();
    expected.extend([Value::Bulk(None), Value::Bulk(None)]);
    assert_eq!(client.call(&mget), Value::Array(Some(expected)));
}
