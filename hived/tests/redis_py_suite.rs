//! redis-py's own command tests, run unmodified against `hived` (spec:
//! hived.md "Compatibility evidence"; issue: independent Redis-protocol suites).
//!
//! `cargo xtask test` unpacks the source distribution of the redis-py release
//! the client tests use and names it in `HIVE_REDIS_PY_SUITE`. Its
//! `tests/test_commands.py` and `tests/test_hash.py` run here, over RESP2 and
//! RESP3 against a standalone `hived` and over RESP2 through one node of a
//! 3-process cluster (RF=2), with the markers redis-py's own CI uses for a
//! standalone server.
//! Every test ends up in one bucket:
//!
//! - passed;
//! - skipped by the suite itself (a newer server version, a module, ...);
//! - unsupported: it failed on `unknown command` / `unknown subcommand`, a
//!   command outside `hived`'s table, or on `Unknown option ... for CONFIG
//!   SET`, a parameter `hived` does not let clients change;
//! - a documented difference, listed in [`DIFFERENCES`] with its reason;
//! - anything else fails this test, as does a listed difference that passes.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use support::{Hived, Process};

/// Tests of supported commands that fail against `hived` on purpose; each is a
/// difference docs/redis-compatibility.md describes.
const DIFFERENCES: &[(&str, &str)] = &[
    ("test_select", "one database: SELECT accepts only 0"),
    (
        "test_copy_to_another_database",
        "one database: SELECT accepts only 0",
    ),
    (
        "test_expiretime",
        "TTLs past 100 years are refused; the test sets one 1000 years ahead",
    ),
    (
        "test_pexpiretime",
        "TTLs past 100 years are refused; the test sets one 1000 years ahead",
    ),
    (
        "test_hscan_iter_novalues",
        "hash fields come in no set order; the test expects insertion order",
    ),
    (
        "test_command_list",
        "the test expects more than 300 commands",
    ),
    (
        "test_config_get_multi_params",
        "Redis's encoding settings (hash-max-listpack-entries) do not exist",
    ),
    (
        "test_slowlog_get",
        "no SLOWLOG: the fixture reads its CONFIG settings",
    ),
    (
        "test_slowlog_get_limit",
        "no SLOWLOG: the fixture reads its CONFIG settings",
    ),
    (
        "test_slowlog_length",
        "no SLOWLOG: the fixture reads its CONFIG settings",
    ),
];

/// Tests that also talk to a server on Redis's default port 6379, which this
/// run does not start: they fail unless something happens to listen there.
const NEEDS_DEFAULT_PORT: &[&str] = &[
    "test_client_setinfo",
    "test_client_setinfo_with_driver_info",
];

/// The suite's files this test runs.
const FILES: &[&str] = &["tests/test_commands.py", "tests/test_hash.py"];

/// redis-py's selection for a standalone server without modules or TLS.
const MARKERS: &str = "not onlycluster and not redismod and not ssl and not replica";

#[derive(Debug, Default)]
struct Tally {
    passed: usize,
    skipped: usize,
    unsupported: BTreeMap<String, usize>,
    differences: Vec<String>,
    unexpected: Vec<String>,
    stale: Vec<String>,
}

/// Runs the suite over `protocol` against the server at `addr`; returns the tally.
fn run_suite(addr: std::net::SocketAddr, protocol: u8) -> Tally {
    let suite = std::env::var("HIVE_REDIS_PY_SUITE").expect(
        "HIVE_REDIS_PY_SUITE must name redis-py's unpacked source distribution: run the \
         suite with `cargo xtask test`, which downloads it",
    );
    let python = std::env::var("HIVE_PYTHON").expect(
        "HIVE_PYTHON must name a Python with redis-py and pytest: run the suite with \
         `cargo xtask test`, which sets it up",
    );
    let report = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "redis-py-{}-resp{protocol}-{}.tsv",
        addr.port(),
        std::process::id()
    ));
    let output = Command::new(python)
        .current_dir(&suite)
        .args(["-m", "pytest"])
        .args(FILES)
        .arg(format!("--redis-url=redis://{addr}/0"))
        .arg(format!("--protocol={protocol}"))
        .args(["-m", MARKERS, "-q", "--tb=line", "-p", "no:cacheprovider"])
        .args(["-p", "hive_report"])
        .env(
            "PYTHONPATH",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python"),
        )
        .env("HIVE_REPORT", &report)
        .output()
        .expect("the Python interpreter runs");
    // 0: all passed, 1: some failed; anything else means the run broke.
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "pytest did not run the suite ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = std::fs::read_to_string(&report).expect("the report plugin wrote its file");
    let _ = std::fs::remove_file(&report);
    tally(&lines)
}

fn tally(report: &str) -> Tally {
    let mut tally = Tally::default();
    let mut failed_differences = Vec::new();
    for line in report.lines() {
        let mut parts = line.splitn(3, '\t');
        let (outcome, id, message) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let name = id.rsplit("::").next().unwrap_or(id);
        let name = name.split('[').next().unwrap_or(name);
        let listed = DIFFERENCES.iter().any(|(listed, _)| *listed == name);
        match outcome {
            "passed" if listed => tally.stale.push(id.to_owned()),
            "passed" => tally.passed += 1,
            "skipped" => tally.skipped += 1,
            _ => {
                if let Some(command) = unknown_command(message) {
                    *tally.unsupported.entry(command).or_default() += 1;
                } else if listed || NEEDS_DEFAULT_PORT.contains(&name) {
                    failed_differences.push(name.to_owned());
                    tally.differences.push(id.to_owned());
                } else {
                    tally.unexpected.push(format!("{id}: {message}"));
                }
            }
        }
    }
    tally.stale.extend(
        DIFFERENCES
            .iter()
            .filter(|(name, _)| !failed_differences.iter().any(|failed| failed == name))
            .map(|(name, reason)| format!("{name} ({reason}) no longer fails")),
    );
    tally
}

/// The command named by an `unknown command '...'` or `unknown subcommand
/// '...'` error, lower-cased; `config set <name>` for a parameter `CONFIG
/// SET` does not change.
fn unknown_command(message: &str) -> Option<String> {
    if let Some((_, rest)) =
        message.split_once("Unknown option or number of arguments for CONFIG SET - '")
    {
        let (name, _) = rest.split_once('\'')?;
        return Some(format!("config set {}", name.to_ascii_lowercase()));
    }
    let (_, rest) = message
        .split_once("unknown command '")
        .or_else(|| message.split_once("unknown subcommand '"))?;
    let (command, _) = rest.split_once('\'')?;
    Some(command.to_ascii_lowercase())
}

fn check(addr: std::net::SocketAddr, protocol: u8, target: &str) {
    let tally = run_suite(addr, protocol);
    let unsupported: usize = tally.unsupported.values().sum();
    let supported = tally.passed + tally.differences.len() + tally.unexpected.len();
    println!(
        "redis-py suite, {target}, RESP{protocol}: {} passed, {} documented differences, \
         {} unexpected failures, {unsupported} on unsupported commands, {} skipped by the \
         suite; {:.1}% of the tests of supported commands pass",
        tally.passed,
        tally.differences.len(),
        tally.unexpected.len(),
        tally.skipped,
        100.0 * tally.passed as f64 / supported.max(1) as f64,
    );
    println!("unsupported commands (tests): {:?}", tally.unsupported);
    assert!(
        tally.passed > 250,
        "only {} tests passed: is the suite complete?",
        tally.passed
    );
    assert!(
        tally.unexpected.is_empty(),
        "redis-py tests of supported commands failed:\n{}",
        tally.unexpected.join("\n")
    );
    assert!(
        tally.stale.is_empty(),
        "listed differences that no longer fail (remove them from DIFFERENCES):\n{}",
        tally.stale.join("\n")
    );
}

// Each server has a data directory, as every redis-server has one: the
// suite's SAVE, BGSAVE and LASTSAVE tests write snapshots.

#[test]
fn redis_py_command_tests_pass_over_resp2() {
    let dir = tempfile::tempdir().unwrap();
    let server = Hived::start_in(dir.path());
    check(server.addr, 2, "standalone");
}

#[test]
fn redis_py_command_tests_pass_over_resp3() {
    let dir = tempfile::tempdir().unwrap();
    let server = Hived::start_in(dir.path());
    check(server.addr, 3, "standalone");
}

#[test]
fn redis_py_command_tests_pass_through_a_three_process_cluster() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let dir = |i: usize| dirs[i].path().to_str().unwrap().to_owned();
    let first = Process::start_with(None, &["--dir", &dir(0)]);
    let second = Process::start_with(Some(first.gossip), &["--dir", &dir(1)]);
    let third = Process::start_with(Some(first.gossip), &["--dir", &dir(2)]);
    for node in [&first, &second, &third] {
        node.wait_for(3);
    }
    check(second.resp, 2, "one node of a 3-process cluster (RF=2)");
}

#[test]
fn the_tally_sorts_outcomes_into_their_buckets() {
    let report = "passed\ttests/test_commands.py::T::test_get\t\n\
                  skipped\ttests/test_commands.py::T::test_new\t\n\
                  failed\ttests/test_commands.py::T::test_geo\tx.py:1: ResponseError: unknown command 'GEOADD', with args\n\
                  failed\ttests/test_commands.py::T::test_config_set\tx.py:1: ResponseError: Unknown option or number of arguments for CONFIG SET - 'timeout'\n\
                  failed\ttests/test_commands.py::T::test_select\tx.py:1: DB index is out of range\n\
                  failed\ttests/test_commands.py::T::test_set[2]\tx.py:1: AssertionError\n\
                  passed\ttests/test_commands.py::T::test_slowlog_get\t\n";
    let tally = tally(report);
    assert_eq!(tally.passed, 1);
    assert_eq!(tally.skipped, 1);
    assert_eq!(tally.unsupported.get("geoadd"), Some(&1));
    assert_eq!(tally.unsupported.get("config set timeout"), Some(&1));
    assert_eq!(
        tally.differences,
        ["tests/test_commands.py::T::test_select"]
    );
    assert_eq!(tally.unexpected.len(), 1);
    assert!(tally.unexpected[0].contains("test_set[2]"));
    // test_slowlog_get passed although listed, and the other listed ones did not fail.
    assert!(
        tally
            .stale
            .iter()
            .any(|stale| stale.contains("test_slowlog_get"))
    );
    assert_eq!(tally.stale.len(), DIFFERENCES.len());
}
