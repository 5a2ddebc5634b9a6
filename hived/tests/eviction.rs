//! `--maxmemory` with `--maxmemory-policy`: an evicting server keeps taking
//! SETs under its limit and counts what it evicted in `INFO stats`; under
//! `noeviction` the same load gets `OOM`; the policy and the samples change
//! with `CONFIG SET` and read back with `CONFIG GET`.

mod support;

use std::process::Command;

use support::{Client, Spawned, Value};

fn hived(args: &[&str]) -> Spawned {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hived"));
    command.args(args);
    Spawned::start(command)
}

/// Sends `count` SETs of 1 KB values in pipelined batches and returns every
/// reply that is not `+OK`.
fn set_kilobytes(client: &mut Client, count: usize) -> Vec<Value> {
    let value = vec![b'x'; 1024];
    let mut refused = Vec::new();
    for batch in 0..count.div_ceil(500) {
        let keys: Vec<String> = (batch * 500..((batch + 1) * 500).min(count))
            .map(|i| format!("key:{i}"))
            .collect();
        for key in &keys {
            client.send(&[b"SET", key.as_bytes(), &value]);
        }
        for _ in &keys {
            let reply = client.read().expect("a reply");
            if reply != Value::Simple("OK".into()) {
                refused.push(reply);
            }
        }
    }
    refused
}

/// The value of `field` in `INFO section`.
fn info(client: &mut Client, section: &str, field: &str) -> String {
    let Value::Bulk(Some(text)) = client.call(&["INFO", section]) else {
        panic!("INFO {section} is no bulk string");
    };
    let text = String::from_utf8(text).expect("UTF-8");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
        .to_owned()
}

#[test]
fn an_evicting_server_absorbs_sets_past_its_limit_and_reports_evictions() {
    let server = hived(&["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru"]);
    let mut client = server.client();
    assert_eq!(set_kilobytes(&mut client, 40_000), Vec::<Value>::new());

    let used: u64 = info(&mut client, "memory", "used_memory").parse().unwrap();
    assert!(used <= 4_000_000, "used_memory {used}");
    assert_eq!(info(&mut client, "memory", "maxmemory"), "4000000");
    assert_eq!(
        info(&mut client, "memory", "maxmemory_policy"),
        "allkeys-lru"
    );
    let evicted: u64 = info(&mut client, "stats", "evicted_keys").parse().unwrap();
    assert!(evicted > 30_000, "evicted_keys {evicted}");
    // The newest key is there.
    assert!(matches!(
        client.call(&["GET", "key:39999"]),
        Value::Bulk(Some(_))
    ));
}

#[test]
fn without_eviction_the_same_load_gets_oom() {
    let server = hived(&["--maxmemory", "4mb"]);
    let mut client = server.client();
    let refused = set_kilobytes(&mut client, 40_000);
    assert!(!refused.is_empty());
    assert!(
        refused
            .iter()
            .all(|reply| matches!(reply, Value::Error(text) if text.starts_with("OOM"))),
        "{:?}",
        &refused[..1]
    );
    assert_eq!(info(&mut client, "stats", "evicted_keys"), "0");
    assert_eq!(
        info(&mut client, "memory", "maxmemory_policy"),
        "noeviction"
    );
}

#[test]
fn the_policy_and_the_samples_change_with_config_set() {
    let server = hived(&["--maxmemory", "4mb", "--maxmemory-samples", "7"]);
    let mut client = server.client();
    let get = |client: &mut Client, name: &str| client.call(&["CONFIG", "GET", name]);
    assert_eq!(
        get(&mut client, "maxmemory-*"),
        Value::Array(Some(vec![
            Value::bulk("maxmemory-policy"),
            Value::bulk("noeviction"),
            Value::bulk("maxmemory-samples"),
            Value::bulk("7"),
        ]))
    );

    let set = client.call(&[
        "CONFIG",
        "SET",
        "maxmemory-policy",
        "volatile-ttl",
        "maxmemory-samples",
        "10",
    ]);
    assert_eq!(set, Value::Simple("OK".into()));
    assert_eq!(
        get(&mut client, "maxmemory-policy"),
        Value::Array(Some(vec![
            Value::bulk("maxmemory-policy"),
            Value::bulk("volatile-ttl")
        ]))
    );

    // All or nothing: one bad pair changes nothing.
    for bad in [
        &[
            "CONFIG",
            "SET",
            "maxmemory-policy",
            "allkeys-lru",
            "maxmemory-samples",
            "0",
        ][..],
        &["CONFIG", "SET", "maxmemory-policy", "most-recent"],
        &["CONFIG", "SET", "maxmemory-samples", "65"],
        &["CONFIG", "SET", "no-such-option", "1"],
        &["CONFIG", "SET", "maxmemory-policy"],
    ] {
        assert!(matches!(client.call(bad), Value::Error(_)), "{bad:?}");
    }
    assert_eq!(
        get(&mut client, "maxmemory-samples"),
        Value::Array(Some(vec![
            Value::bulk("maxmemory-samples"),
            Value::bulk("10")
        ]))
    );
    assert_eq!(
        info(&mut client, "memory", "maxmemory_policy"),
        "volatile-ttl"
    );
}

#[test]
fn an_unknown_policy_on_the_command_line_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_hived"))
        .args(["--maxmemory-policy", "lru-ish"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown eviction policy"), "{stderr}");
}

#[test]
fn object_idletime_and_freq_follow_the_policy() {
    let server = hived(&[]);
    let mut client = server.client();
    client.call(&["SET", "k", "v"]);
    assert_eq!(client.call(&["OBJECT", "IDLETIME", "k"]), Value::Int(0));
    assert_eq!(
        client.call(&["OBJECT", "IDLETIME", "absent"]),
        Value::Bulk(None)
    );
    let Value::Error(message) = client.call(&["OBJECT", "FREQ", "k"]) else {
        panic!("OBJECT FREQ answers without an LFU policy");
    };
    assert!(
        message.contains("LFU maxmemory policy is not selected"),
        "{message}"
    );

    client.call(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]);
    client.call(&["SET", "fresh", "v"]);
    assert_eq!(client.call(&["OBJECT", "FREQ", "fresh"]), Value::Int(5));
    let Value::Error(message) = client.call(&["OBJECT", "IDLETIME", "fresh"]) else {
        panic!("OBJECT IDLETIME answers under an LFU policy");
    };
    assert!(
        message.contains("LFU maxmemory policy is selected"),
        "{message}"
    );

    assert!(matches!(
        client.call(&["OBJECT", "ENCODING", "k"]),
        Value::Error(message) if message.contains("unknown subcommand")
    ));
    assert!(matches!(client.call(&["OBJECT", "FREQ"]), Value::Error(_)));
}
