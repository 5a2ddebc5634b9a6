//! `hived` with clients this project did not write: `redis-cli` from Debian's
//! `redis-tools` and the Python `redis` package (spec: hived.md
//! "Compatibility evidence").

mod support;

use std::process::Command;

use support::{Hived, python_client_smoke};

/// Runs `redis-cli` against `server` with `args`; returns its output.
fn redis_cli(server: &Hived, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
        .args(args)
        .output()
        .expect("redis-cli must be installed (apt-get install redis-tools)");
    assert!(
        output.status.success(),
        "redis-cli {args:?} failed: {output:?}"
    );
    String::from_utf8(output.stdout).expect("text output")
}

#[test]
fn redis_cli_runs_commands_of_every_family() {
    let server = Hived::start();
    assert_eq!(redis_cli(&server, &["PING"]), "PONG\n");
    assert_eq!(
        redis_cli(&server, &["SET", "greeting", "hello world"]),
        "OK\n"
    );
    assert_eq!(redis_cli(&server, &["GET", "greeting"]), "hello world\n");
    assert_eq!(redis_cli(&server, &["RPUSH", "list", "a", "b", "c"]), "3\n");
    assert_eq!(
        redis_cli(&server, &["LRANGE", "list", "0", "-1"]),
        "a\nb\nc\n"
    );
    assert_eq!(redis_cli(&server, &["HSET", "user", "name", "ada"]), "1\n");
    assert_eq!(redis_cli(&server, &["HGET", "user", "name"]), "ada\n");
    assert_eq!(redis_cli(&server, &["SADD", "tags", "x"]), "1\n");
    assert_eq!(redis_cli(&server, &["ZADD", "board", "2.5", "ada"]), "1\n");
    assert_eq!(redis_cli(&server, &["ZSCORE", "board", "ada"]), "2.5\n");
    assert_eq!(
        redis_cli(&server, &["GET", "list"]),
        // redis-cli ends an error with an empty line, against Redis too.
        "WRONGTYPE Operation against a key holding the wrong kind of value\n\n"
    );
    assert_eq!(redis_cli(&server, &["TYPE", "board"]), "zset\n");
}

#[test]
fn redis_cli_speaks_resp3_and_reads_piped_commands() {
    let server = Hived::start();
    assert_eq!(redis_cli(&server, &["-3", "HSET", "h", "f", "v"]), "1\n");
    // A RESP3 map: redis-cli prints each pair on one line, as against Redis.
    assert_eq!(redis_cli(&server, &["-3", "HGETALL", "h"]), "f v\n");
    let mut piped = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli must be installed (apt-get install redis-tools)");
    {
        use std::io::Write;
        let mut stdin = piped.stdin.take().expect("stdin");
        stdin
            .write_all(b"SET counter 1\nGET counter\nDEL counter\nEXISTS counter\n")
            .expect("writes");
    }
    let output = piped.wait_with_output().expect("finishes");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "OK\n1\n1\n0\n");
}

#[test]
fn the_python_redis_package_works_in_resp2_and_resp3() {
    let server = Hived::start();
    python_client_smoke(server.addr, "py");
}
