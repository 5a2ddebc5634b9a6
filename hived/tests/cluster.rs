//! Three `hived` processes form a cluster on 127.0.0.1 (spec: hived.md): every
//! node accepts every key, a `kill -9` of one loses no acknowledged write
//! (RF=2), and a graceful stop (SIGTERM) hands its data to the last node.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{DEADLINE, Process, Value, encode, python_client_smoke};

/// Reads `key` through `node`, retrying while the cluster answers TRYAGAIN.
fn read(node: &Process, args: &[&str]) -> Value {
    let started = Instant::now();
    loop {
        match node.client().call(args) {
            Value::Error(e) if e.starts_with("TRYAGAIN") && started.elapsed() < DEADLINE => {
                std::thread::sleep(Duration::from_millis(25));
            }
            reply => return reply,
        }
    }
}

/// Runs `SCAN ... MATCH pattern COUNT 20` through `node` to the end and
/// returns the keys in order; fails on a key listed twice.
fn scan_all(node: &Process, pattern: &str) -> Vec<String> {
    let mut client = node.client();
    let (mut cursor, mut keys) = (String::from("0"), Vec::new());
    loop {
        let reply = client.call(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "20"]);
        let Value::Array(Some(parts)) = reply else {
            panic!("SCAN answered {reply:?}");
        };
        let [Value::Bulk(Some(next)), Value::Array(Some(batch))] = &parts[..] else {
            panic!("SCAN answered {parts:?}");
        };
        for key in batch {
            let Value::Bulk(Some(key)) = key else {
                panic!("a key: {key:?}");
            };
            keys.push(String::from_utf8(key.clone()).expect("utf-8 keys"));
        }
        cursor = String::from_utf8(next.clone()).expect("a numeric cursor");
        if cursor == "0" {
            break;
        }
    }
    keys.sort();
    let listed = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), listed, "SCAN listed a key twice");
    keys
}

#[test]
fn a_three_process_cluster_serves_every_key_everywhere_and_survives_kill_and_stop() {
    let first = Process::start(None);
    let second = Process::start(Some(first.gossip));
    let mut third = Process::start(Some(first.gossip));
    for node in [&first, &second, &third] {
        node.wait_for(3);
    }
    let mut writer = first.client();
    for i in 0..300 {
        let (key, value) = (format!("key-{i}"), format!("value-{i}"));
        assert_eq!(
            writer.call(&["SET", &key, &value]),
            Value::Simple("OK".into())
        );
    }
    let mut pusher = second.client();
    for i in 0..50 {
        assert_eq!(
            pusher.call(&["RPUSH", "log", &i.to_string()]),
            Value::Int(i + 1)
        );
    }
    let expected_log: Vec<Value> = (0..50).map(|i| Value::bulk(&i.to_string())).collect();
    // Every node names the same two owners of a key.
    let owners = read(&first, &["HIVE.OWNERS", "key-7"]);
    let Value::Array(Some(ids)) = &owners else {
        panic!("HIVE.OWNERS answers an array: {owners:?}");
    };
    assert_eq!(ids.len(), 2, "RF=2: {ids:?}");
    assert_ne!(ids[0], ids[1]);
    for node in [&second, &third] {
        assert_eq!(read(node, &["HIVE.OWNERS", "key-7"]), owners);
    }
    // SCAN and KEYS see the whole cluster through any node: every key once.
    let wanted: Vec<String> = {
        let mut keys: Vec<String> = (0..300).map(|i| format!("key-{i}")).collect();
        keys.sort();
        keys
    };
    assert_eq!(scan_all(&second, "key-*"), wanted);
    let Value::Array(Some(listed)) = read(&third, &["KEYS", "key-*"]) else {
        panic!("KEYS answers an array");
    };
    assert_eq!(listed.len(), 300);
    // DBSIZE counts the whole cluster, each key once (RF=2 keeps two copies).
    let Value::Array(Some(everything)) = read(&first, &["KEYS", "*"]) else {
        panic!("KEYS answers an array");
    };
    for node in [&first, &second, &third] {
        assert_eq!(read(node, &["DBSIZE"]), Value::Int(everything.len() as i64));
    }
    // A pipeline through one node: commands on distinct keys run at once,
    // commands on one key in the order sent, replies in order.
    let mut pipelined = third.client();
    let mut pipeline = Vec::new();
    for i in 0..200 {
        let (key, value) = (format!("p-{i}"), i.to_string());
        pipeline.extend(encode(&[b"SET", key.as_bytes(), value.as_bytes()]));
        pipeline.extend(encode(&[b"GET", key.as_bytes()]));
        pipeline.extend(encode(&[b"INCR", b"p-counter"]));
        pipeline.extend(encode(&[b"RPUSH", b"p-log", value.as_bytes()]));
        if i % 50 == 0 {
            pipeline.extend(encode(&[b"PING"]));
        }
    }
    pipelined.send_raw(&pipeline).expect("sent");
    for i in 0..200 {
        let value = i.to_string();
        assert_eq!(pipelined.read().unwrap(), Value::Simple("OK".into()));
        assert_eq!(pipelined.read().unwrap(), Value::bulk(&value));
        assert_eq!(pipelined.read().unwrap(), Value::Int(i + 1));
        assert_eq!(pipelined.read().unwrap(), Value::Int(i + 1));
        if i % 50 == 0 {
            assert_eq!(pipelined.read().unwrap(), Value::Simple("PONG".into()));
        }
    }
    let Value::Array(Some(log)) = read(&first, &["LRANGE", "p-log", "0", "-1"]) else {
        panic!("LRANGE answers an array");
    };
    let expected: Vec<Value> = (0..200).map(|i| Value::bulk(&i.to_string())).collect();
    assert_eq!(log, expected);
    // A real client library against one node of the cluster.
    python_client_smoke(third.resp, "py-cluster");
    for node in [&first, &second, &third] {
        assert_eq!(read(node, &["GET", "key-7"]), Value::bulk("value-7"));
        assert_eq!(
            read(node, &["LRANGE", "log", "0", "-1"]),
            Value::Array(Some(expected_log.clone()))
        );
    }

    // kill -9: the survivors detect it and still hold every acknowledged write.
    third.spawned.child.kill().expect("SIGKILL");
    third.spawned.child.wait().expect("reaped");
    for node in [&first, &second] {
        node.wait_for(2);
    }
    for node in [&first, &second] {
        for i in 0..300 {
            let key = format!("key-{i}");
            assert_eq!(
                read(node, &["GET", &key]),
                Value::bulk(&format!("value-{i}")),
                "{key}"
            );
        }
        assert_eq!(
            read(node, &["LRANGE", "log", "0", "-1"]),
            Value::Array(Some(expected_log.clone()))
        );
    }

    // SIGTERM: the node hands its data off before it exits.
    let status = Command::new("kill")
        .args(["-TERM", &second.spawned.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let mut second = second;
    let started = Instant::now();
    while second.spawned.child.try_wait().expect("waits").is_none() {
        assert!(
            started.elapsed() < DEADLINE,
            "hived did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    first.wait_for(1);
    for i in 0..300 {
        let key = format!("key-{i}");
        assert_eq!(
            read(&first, &["GET", &key]),
            Value::bulk(&format!("value-{i}")),
            "{key}"
        );
    }
}

/// Sends `signal` (`STOP`, `CONT`) to `node`'s process.
fn signal(node: &Process, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &node.spawned.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal}");
}

/// Returns `INFO memory`'s `hive_tombstones` through `node`.
fn tombstones(node: &Process) -> i64 {
    let Value::Bulk(Some(info)) = node.client().call(&["INFO", "memory"]) else {
        panic!("INFO answers a bulk string");
    };
    String::from_utf8(info)
        .expect("utf-8")
        .lines()
        .find_map(|line| line.strip_prefix("hive_tombstones:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("INFO memory reports hive_tombstones")
}

// Spec: cluster.md G5 — a delete sticks across any pause shorter than
// reconnect_timeout. A member is paused (SIGSTOP) until the others declare it
// failed, its keys are deleted meanwhile and kept deleted for ten tombstone
// retentions, then it resumes: it must neither answer the deleted keys nor
// let a write bring their old fields back. Before, tombstones went a
// retention after the delete, and the resumed member served its old copies.
#[test]
fn keys_deleted_while_a_member_was_paused_stay_deleted_after_it_resumes() {
    let retention = ["--tombstone-retention-ms", "300"];
    let first = Process::start_with(None, &retention);
    let second = Process::start_with(Some(first.gossip), &retention);
    let third = Process::start_with(Some(first.gossip), &retention);
    for node in [&first, &second, &third] {
        node.wait_for(3);
    }
    let keys: Vec<String> = (0..60).map(|i| format!("h{i}")).collect();
    let mut writer = first.client();
    for key in &keys {
        assert_eq!(writer.call(&["HSET", key, "old", "x"]), Value::Int(1));
    }

    signal(&third, "STOP");
    for node in [&first, &second] {
        node.wait_for(2);
    }
    for key in &keys {
        assert_eq!(read(&first, &["DEL", key]), Value::Int(1), "{key}");
    }
    // Ten retentions pass while the member is away: every tombstone stays.
    let held = tombstones(&first) + tombstones(&second);
    assert!(
        held >= keys.len() as i64,
        "{held} tombstones for {} deletes",
        keys.len()
    );
    let watch_until = Instant::now() + Duration::from_millis(3_000);
    while Instant::now() < watch_until {
        assert_eq!(
            tombstones(&first) + tombstones(&second),
            held,
            "a tombstone went while a member was away"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    signal(&third, "CONT");
    // From the moment it resumes, through every node, until all settled:
    // the deleted keys stay deleted, and a write through the resumed member
    // starts them afresh.
    let mut through_third = third.client();
    for key in &keys[..20] {
        let started = Instant::now();
        loop {
            match through_third.call(&["HSET", key, "new", "y"]) {
                Value::Int(1) => break,
                Value::Error(e) if e.starts_with("TRYAGAIN") && started.elapsed() < DEADLINE => {
                    std::thread::sleep(Duration::from_millis(25));
                }
                other => panic!("HSET {key} through the resumed member: {other:?}"),
            }
        }
    }
    let settled = |node: &Process| node.view() == (3, 0);
    let started = Instant::now();
    loop {
        let all_settled = [&first, &second, &third].iter().all(|node| settled(node));
        for node in [&first, &second, &third] {
            for (i, key) in keys.iter().enumerate() {
                let fields = read(node, &["HKEYS", key]);
                let expected = if i < 20 {
                    Value::Array(Some(vec![Value::bulk("new")]))
                } else {
                    Value::Array(Some(vec![]))
                };
                assert_eq!(fields, expected, "{key} through {}", node.resp);
            }
        }
        if all_settled {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the cluster did not settle after the resume"
        );
    }
}
