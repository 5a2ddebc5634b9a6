//! `hived --dir`: snapshots through SAVE, BGSAVE, SHUTDOWN and SIGTERM, and
//! what a restart — after kill -9 or a graceful stop — brings back.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{Client, Spawned, Value};

const DEADLINE: Duration = Duration::from_secs(30);

/// A standalone `hived` with a data directory; killed (-9) when dropped.
struct Hived {
    spawned: Spawned,
}

impl Hived {
    fn start(dir: &Path) -> Hived {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hived"));
        command
            .arg("--dir")
            .arg(dir)
            .args(["--save-interval", "0"])
            .stderr(Stdio::inherit());
        Hived {
            spawned: Spawned::start(command),
        }
    }

    fn client(&self) -> Client {
        self.spawned.client()
    }

    fn kill9(mut self) {
        self.spawned.child.kill().unwrap();
        self.spawned.child.wait().unwrap();
    }

    /// Waits for the process to exit by itself; true if it exited with 0.
    fn wait_exit(mut self) -> bool {
        let started = Instant::now();
        loop {
            if let Some(status) = self.spawned.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(started.elapsed() < DEADLINE, "hived did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn terminate(self) -> bool {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.spawned.child.id().to_string()])
            .status()
            .unwrap();
        assert!(signalled.success());
        self.wait_exit()
    }
}

fn ok() -> Value {
    Value::Simple("OK".into())
}

/// Returns `field` of `INFO persistence`.
fn persistence(client: &mut Client, field: &str) -> String {
    let Value::Bulk(Some(info)) = client.call(&["INFO", "persistence"]) else {
        panic!("INFO answers a bulk string");
    };
    String::from_utf8(info)
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")).map(str::to_owned))
        .unwrap_or_else(|| panic!("INFO persistence has no {field}"))
}

/// Sends `commands` pipelined, a thousand at a time, expecting no error.
fn pipeline(client: &mut Client, commands: &[Vec<String>]) {
    for batch in commands.chunks(1_000) {
        for command in batch {
            let args: Vec<&[u8]> = command.iter().map(|arg| arg.as_bytes()).collect();
            client.send(&args);
        }
        for command in batch {
            let reply = client.read().expect("a reply");
            assert!(!matches!(reply, Value::Error(_)), "{command:?}: {reply:?}");
        }
    }
}

/// 100 000 keys, 20 000 of each kind, every other one with a TTL (an
/// hour), and one hash field with its own TTL per hash.
fn every_kind(keys: usize) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let s = |parts: &[&str]| parts.iter().map(|part| (*part).to_owned()).collect();
    for i in 0..keys / 5 {
        let n = i.to_string();
        commands.push(s(&["SET", &format!("v:{n}"), &n]));
        commands.push(s(&["HSET", &format!("h:{n}"), "a", &n, "b", "2"]));
        commands.push(s(&[
            "HEXPIRE",
            &format!("h:{n}"),
            "3600",
            "FIELDS",
            "1",
            "b",
        ]));
        commands.push(s(&["RPUSH", &format!("l:{n}"), "x", &n]));
        commands.push(s(&["SADD", &format!("s:{n}"), "m", &n]));
        commands.push(s(&["ZADD", &format!("z:{n}"), "1.5", &n]));
        if i % 2 == 0 {
            for kind in ["v", "h", "l", "s", "z"] {
                commands.push(s(&["EXPIRE", &format!("{kind}:{n}"), "3600"]));
            }
        }
    }
    commands
}

fn assert_every_kind(client: &mut Client, keys: usize) {
    assert_eq!(client.call(&["DBSIZE"]), Value::Int(keys as i64));
    for i in [0, 1, keys / 5 / 2, keys / 5 - 1] {
        let n = i.to_string();
        assert_eq!(client.call(&["GET", &format!("v:{n}")]), Value::bulk(&n));
        assert_eq!(
            client.call(&["HGET", &format!("h:{n}"), "a"]),
            Value::bulk(&n)
        );
        let Value::Array(Some(field_ttl)) =
            client.call(&["HTTL", &format!("h:{n}"), "FIELDS", "1", "b"])
        else {
            panic!("HTTL answers an array");
        };
        assert!(
            matches!(field_ttl[0], Value::Int(ttl) if (3_500..=3_600).contains(&ttl)),
            "field TTL of h:{n}: {field_ttl:?}"
        );
        assert_eq!(
            client.call(&["LRANGE", &format!("l:{n}"), "0", "-1"]),
            Value::Array(Some(vec![Value::bulk("x"), Value::bulk(&n)]))
        );
        assert_eq!(
            client.call(&["SISMEMBER", &format!("s:{n}"), &n]),
            Value::Int(1)
        );
        assert_eq!(
            client.call(&["ZSCORE", &format!("z:{n}"), &n]),
            Value::bulk("1.5")
        );
        for kind in ["v", "h", "l", "s", "z"] {
            let ttl = client.call(&["TTL", &format!("{kind}:{n}")]);
            if i % 2 == 0 {
                assert!(
                    matches!(ttl, Value::Int(ttl) if (3_500..=3_600).contains(&ttl)),
                    "TTL of {kind}:{n}: {ttl:?}"
                );
            } else {
                assert_eq!(ttl, Value::Int(-1), "{kind}:{n} has no TTL");
            }
        }
    }
}

#[test]
fn save_then_kill_9_brings_back_100_000_keys_of_every_kind_with_their_ttls() {
    let dir = tempfile::tempdir().unwrap();
    let hived = Hived::start(dir.path());
    let mut client = hived.client();
    pipeline(&mut client, &every_kind(100_000));
    assert_ne!(persistence(&mut client, "rdb_changes_since_last_save"), "0");
    assert_eq!(client.call(&["SAVE"]), ok());
    assert_eq!(persistence(&mut client, "rdb_changes_since_last_save"), "0");
    assert_eq!(persistence(&mut client, "rdb_last_bgsave_status"), "ok");
    assert_eq!(client.call(&["SET", "after-save", "x"]), ok());
    hived.kill9();

    let hived = Hived::start(dir.path());
    let mut client = hived.client();
    assert_every_kind(&mut client, 100_000);
    assert_eq!(client.call(&["EXISTS", "after-save"]), Value::Int(0));

    // A graceful stop saves what came after the last SAVE too.
    assert_eq!(client.call(&["SET", "before-stop", "y"]), ok());
    assert!(hived.terminate(), "a clean exit after SIGTERM");
    let hived = Hived::start(dir.path());
    assert_eq!(
        hived.client().call(&["GET", "before-stop"]),
        Value::bulk("y")
    );
}

#[test]
fn shutdown_saves_unless_nosave_and_closes_the_connection_without_a_reply() {
    let dir = tempfile::tempdir().unwrap();
    let hived = Hived::start(dir.path());
    let mut client = hived.client();
    assert_eq!(client.call(&["SET", "kept", "1"]), ok());
    assert_eq!(client.call(&["SAVE"]), ok());
    assert_eq!(client.call(&["SET", "dropped", "1"]), ok());
    client.send(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(client.read().is_err(), "no reply: the connection closes");
    assert!(hived.wait_exit(), "a clean exit after SHUTDOWN NOSAVE");

    let hived = Hived::start(dir.path());
    let mut client = hived.client();
    assert_eq!(client.call(&["GET", "kept"]), Value::bulk("1"));
    assert_eq!(client.call(&["EXISTS", "dropped"]), Value::Int(0));
    assert_eq!(client.call(&["SET", "saved-at-shutdown", "1"]), ok());
    assert_eq!(
        client.call(&["SHUTDOWN", "SAVE", "NOSAVE"]),
        Value::Error("ERR syntax error".into())
    );
    client.send(&[b"SHUTDOWN"]);
    assert!(client.read().is_err());
    assert!(hived.wait_exit());

    let hived = Hived::start(dir.path());
    assert_eq!(
        hived.client().call(&["GET", "saved-at-shutdown"]),
        Value::bulk("1")
    );
}

#[test]
fn bgsave_lastsave_and_config_report_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let hived = Hived::start(dir.path());
    let mut client = hived.client();
    let Value::Int(started) = client.call(&["LASTSAVE"]) else {
        panic!("LASTSAVE answers an integer");
    };
    assert_eq!(client.call(&["SET", "k", "v"]), ok());
    assert_eq!(
        client.call(&["BGSAVE"]),
        Value::Simple("Background saving started".into())
    );
    let deadline = Instant::now() + DEADLINE;
    while persistence(&mut client, "rdb_changes_since_last_save") != "0" {
        assert!(Instant::now() < deadline, "the background save never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(persistence(&mut client, "rdb_bgsave_in_progress"), "0");
    let Value::Int(saved) = client.call(&["LASTSAVE"]) else {
        panic!("LASTSAVE answers an integer");
    };
    assert!(saved >= started);
    assert!(dir.path().join("snapshot.hive").is_file());
    let dir_name = dir.path().display().to_string();
    assert_eq!(
        client.call(&["CONFIG", "GET", "dir"]),
        Value::Array(Some(vec![Value::bulk("dir"), Value::bulk(&dir_name)]))
    );
    assert_eq!(
        client.call(&["BGSAVE", "NOW"]),
        Value::Error("ERR syntax error".into())
    );
}

#[test]
fn without_a_dir_save_says_what_is_missing() {
    let hived = support::Hived::start();
    let mut client = hived.client();
    for command in [&["SAVE"][..], &["BGSAVE"], &["SHUTDOWN", "SAVE"]] {
        let Value::Error(message) = client.call(command) else {
            panic!("{command:?} is refused");
        };
        assert!(message.contains("--dir"), "{command:?}: {message}");
    }
    assert!(matches!(client.call(&["LASTSAVE"]), Value::Int(_)));
}

#[test]
fn a_corrupt_snapshot_keeps_hived_from_starting_and_is_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let hived = Hived::start(dir.path());
    let mut client = hived.client();
    assert_eq!(client.call(&["SET", "k", "v"]), ok());
    assert_eq!(client.call(&["SAVE"]), ok());
    hived.kill9();
    let file = dir.path().join("snapshot.hive");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();

    let Output { status, stderr, .. } = Command::new(env!("CARGO_BIN_EXE_hived"))
        .args(["--resp", "127.0.0.1:0", "--log", "error"])
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!status.success(), "hived refused to start");
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        stderr.contains("snapshot.hive") && stderr.contains("corrupt"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        bytes,
        "the file is untouched"
    );
}
