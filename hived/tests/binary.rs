//! The `hived` binary as an operator runs it: options from a TOML file,
//! JSON logs, `--help`, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    ] {
        assert!(help.contains(option), "{option} missing from --help");
    }
    assert!(
        help.contains("HIVE_RESP"),
        "environment variables are listed"
    );
}
