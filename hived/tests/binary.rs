//! The `hived` binary as an operator runs it: options from a TOML file,
//! JSON logs, `--help`, a clean exit on SIGTERM, the Prometheus endpoint, and
//! memory that neither claimed lengths nor unread replies can inflate.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Client, Spawned, Value, free_port};

#[test]
fn options_from_a_file_json_logs_and_a_graceful_sigterm() {
    let dir = std::env::temp_dir().join(format!("hived-binary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("hived.toml");
    std::fs::write(&file, "resp = \"127.0.0.1:0\"\nlog-format = \"json\"\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hived"))
        .arg("--config")
        .arg(&file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("hived starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map(|line| line.expect("a log line"))
        .inspect(|line| {
            assert!(
                line.starts_with('{') && line.ends_with('}'),
                "not JSON: {line}"
            )
        })
        .find(|line| line.contains("hived ready"))
        .expect("hived logs that it is ready");
    assert!(ready.contains("\"resp\":\"127.0.0.1:"), "{ready}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|line| line.contains("\"stopped\"")),
        "{rest:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_lists_every_option_with_its_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_hived"))
        .arg("--help")
        .output()
        .expect("hived runs");
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for option in [
        "--resp",
        "--seed",
        "--replication-factor",
        "--mem-limit",
        "--config",
        "--log-format",
        "--requirepass",
        "--metrics",
        "--output-buffer-limit",
        "--tombstone-retention-ms",
    ] {
        assert!(help.contains(option), "{option} missing from --help");
    }
    assert!(
        help.contains("HIVE_RESP") && help.contains("HIVE_OUTPUT_BUFFER_LIMIT"),
        "environment variables are listed"
    );
}

/// Fetches the scrape endpoint's text.
fn scrape(addr: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: hived\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.starts_with("HTTP/1.1 200").then_some(response)
}

#[test]
fn metrics_count_commands_by_result_and_report_the_node() {
    let metrics = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hived"));
    command.args(["--metrics", &format!("127.0.0.1:{metrics}")]);
    let hived = Spawned::start(command);
    let mut client = hived.client();
    assert_eq!(client.call(&["SET", "k", "v"]), Value::Simple("OK".into()));
    assert_eq!(client.call(&["GET", "k"]), Value::bulk("v"));
    assert!(matches!(client.call(&["LPUSH", "k", "x"]), Value::Error(_)));

    // The gauges refresh every second: poll until they show the key.
    let endpoint = format!("127.0.0.1:{metrics}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        if let Some(text) = scrape(&endpoint)
            && text.contains("hive_keys 1")
        {
            break text;
        }
        assert!(Instant::now() < deadline, "no metrics with the key");
        std::thread::sleep(Duration::from_millis(50));
    };
    for wanted in [
        "hive_commands_total{command=\"set\",result=\"ok\"} 1",
        "hive_commands_total{command=\"get\",result=\"ok\"} 1",
        "hive_commands_total{command=\"lpush\",result=\"WRONGTYPE\"} 1",
        "hive_command_duration_seconds_bucket{command=\"get\",le=\"1\"} 1",
        "hive_members{state=\"alive\"} 1",
        "hive_rebalance_pending_keys 0",
        "hive_tombstones 0",
        "hive_transfer_refusals 0",
        "hive_peer_rpc_errors 0",
        "hive_memory_bytes ",
    ] {
        assert!(text.contains(wanted), "{wanted} missing from:\n{text}");
    }
}

/// Reads a `/proc/<pid>/status` field, in KiB.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[test]
fn claimed_lengths_are_not_allocated_before_their_bytes_arrive() {
    let hived = Spawned::start(Command::new(env!("CARGO_BIN_EXE_hived")));
    let addr = hived.resp;
    let mut control = hived.client();
    let before = proc_status_kib(hived.child.id(), "VmSize:");
    // 40 clients each announce a 60 MiB argument (within the 64 MiB limit)
    // and send one byte of it: 2.4 GiB claimed.
    let claims: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .write_all(b"*2\r\n$3\r\nGET\r\n$62914560\r\nx")
                .unwrap();
            stream
        })
        .collect();
    let started = Instant::now();
    loop {
        let Value::Bulk(Some(info)) = control.call(&["INFO", "clients"]) else {
            panic!("INFO answers a bulk string");
        };
        if String::from_utf8_lossy(&info).contains("connected_clients:41\r\n") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "clients not connected"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(control.call(&["PING"]), Value::Simple("PONG".into()));
    let after = proc_status_kib(hived.child.id(), "VmSize:");
    assert!(
        after < before + (512 << 10),
        "virtual memory grew from {before} KiB to {after} KiB for 2.4 GiB of claims"
    );
    drop(claims);
}

/// Reads a number from an `INFO` reply.
fn info_field(client: &mut Client, section: &str, field: &str) -> u64 {
    let Value::Bulk(Some(info)) = client.call(&["INFO", section]) else {
        panic!("INFO answers a bulk string");
    };
    let info = String::from_utf8(info).expect("INFO is text");
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}:\n{info}"))
}

// The issue: 64 pipelined GETs of 64 MiB values buffered 4 GB in the server.
// A cluster member runs a pipeline's GETs on distinct keys together, and it
// queued all their replies before writing any. Queued replies are now written
// from 64 KiB on, the next commands wait for the socket, and a reply over
// `--output-buffer-limit` costs the client its connection instead of memory.
#[test]
fn replies_queued_for_a_client_stay_bounded() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hived"));
    command
        .args(["--cluster", "--bind", "127.0.0.1", "--port", "0"])
        .args(["--gossip", "local", "--output-buffer-limit", "16MiB"]);
    let hived = Spawned::start(command);
    let addr = hived.resp;
    let mut control = Client::connect(addr);
    // 64 keys of 2 MiB each.
    const KEYS: usize = 64;
    const VALUE: usize = 2 << 20;
    let value = |i: usize| vec![b'a' + (i % 26) as u8; VALUE];
    for i in 0..KEYS {
        control.send(&[b"SET", format!("big-{i}").as_bytes(), &value(i)]);
        assert_eq!(control.read().unwrap(), Value::Simple("OK".into()));
    }
    let peak_before = proc_status_kib(hived.child.id(), "VmHWM:");

    // Two rounds of GETs over every key, sent at once, nothing read yet.
    let mut reader = Client::connect(addr);
    let mut pipeline = Vec::new();
    for _ in 0..2 {
        for i in 0..KEYS {
            pipeline.extend(support::encode(&[b"GET", format!("big-{i}").as_bytes()]));
        }
    }
    let processed = info_field(&mut control, "stats", "total_commands_processed");
    reader.send_raw(&pipeline).unwrap();
    let started = Instant::now();
    while info_field(&mut control, "stats", "total_commands_processed") <= processed + 1 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the pipeline did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Then read normally: every reply comes, in order.
    for round in 0..2 {
        for i in 0..KEYS {
            let reply = reader.read().expect("a reply");
            assert!(
                reply == Value::Bulk(Some(value(i))),
                "round {round}, key {i}: a wrong reply"
            );
        }
    }
    let grown_kib = proc_status_kib(hived.child.id(), "VmHWM:").saturating_sub(peak_before);
    assert!(
        grown_kib < 48 << 10,
        "the server's peak memory grew by {grown_kib} KiB serving {KEYS} replies of {VALUE} bytes \
         per round"
    );
    let peak = info_field(&mut control, "clients", "hive_peak_output_buffer");
    assert!(
        peak <= (VALUE + (128 << 10)) as u64,
        "{peak} bytes queued for one client at once"
    );

    // A single reply over the limit: an error, then the connection closes;
    // the server and its other clients go on.
    control.send(&[b"SET", b"huge", &vec![b'h'; 20 << 20]]);
    assert_eq!(control.read().unwrap(), Value::Simple("OK".into()));
    let mut greedy = Client::connect(addr);
    let reply = greedy.call(&["GET", "huge"]);
    assert!(
        matches!(&reply, Value::Error(message) if message.contains("output buffer limit")),
        "{reply:?}"
    );
    assert!(greedy.read().is_err(), "the connection is closed");
    assert_eq!(
        info_field(
            &mut control,
            "stats",
            "client_output_buffer_limit_disconnections"
        ),
        1
    );
    assert_eq!(control.call(&["STRLEN", "huge"]), Value::Int(20 << 20));
    assert_eq!(
        Client::connect(addr).call(&["GET", "big-0"]),
        Value::Bulk(Some(value(0)))
    );
}
