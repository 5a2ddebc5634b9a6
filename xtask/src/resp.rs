//! `cargo xtask bench resp`: P6 and P7 (spec: performance.md) — `hived`
//! against a real `redis-server` in the same run.
//!
//! - P6: `redis-benchmark -t set,get,lpush,lpop,sadd,hset,zadd -n N -r 100000
//!   -c 50` at `-P 1` and `-P 16` against `redis-server`, a standalone `hived`
//!   and one node of a 3-node `hived` cluster with RF=2; requests per second
//!   and ratios to Redis.
//! - P7: 1 M keys of 16 bytes with 100-byte values loaded into `redis-server`
//!   and a standalone `hived` (`redis-cli --pipe`); bytes per key from Redis's
//!   `used_memory`, Hive's accounted `used_memory`, and each process's
//!   resident-set growth.
//!
//! Every server runs on 127.0.0.1 on a free port and is killed at the end.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

const TESTS: &str = "set,get,lpush,lpop,sadd,hset,zadd";
/// What the cluster runs: redis-benchmark's collection tests all hit a single
/// key (`mylist`, `myset`, ...), and a cluster replicates a collection's whole
/// state on every write until delta replication lands — O(n) per write, so
/// those runs measure that known gap rather than the server.
const CLUSTER_TESTS: &str = "set,get";

struct Settings {
    requests: u64,
    memory_keys: u64,
    cluster: bool,
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut settings = Settings {
        requests: 200_000,
        memory_keys: 1_000_000,
        cluster: true,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => {
                settings.requests = 2_000;
                settings.memory_keys = 10_000;
            }
            "-n" => {
                settings.requests = args
                    .next()
                    .context("-n needs a number")?
                    .parse()
                    .context("-n needs a number")?;
            }
            "--no-cluster" => settings.cluster = false,
            other => bail!("unknown option `{other}` (known: --smoke, -n N, --no-cluster)"),
        }
    }
    for tool in ["redis-server", "redis-cli", "redis-benchmark"] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("`{tool}` is not installed: apt-get install -y redis-server redis-tools");
        }
    }
    crate::run_command(crate::cargo().args(["build", "--release", "-p", "hived"]))?;
    let hived = crate::workspace_root().join("target/release/hived");

    let mut rows: BTreeMap<(u32, String), [Option<f64>; 3]> = BTreeMap::new();
    let redis = Server::redis()?;
    let standalone = Server::hived(&hived, &[])?;
    let cluster = if settings.cluster {
        Some(Cluster::start(&hived)?)
    } else {
        None
    };
    for pipeline in [1, 16] {
        let mut targets = vec![(0, redis.port, TESTS), (1, standalone.port, TESTS)];
        if let Some(cluster) = &cluster {
            targets.push((2, cluster.nodes[0].port, CLUSTER_TESTS));
        }
        for (column, port, tests) in targets {
            for (test, rps) in benchmark(port, pipeline, settings.requests, tests)? {
                rows.entry((pipeline, test)).or_default()[column] = Some(rps);
            }
        }
    }
    drop(cluster);
    println!("\n{}", crate::bench::machine_info());
    println!(
        "P6: redis-benchmark -t {TESTS} -n {} -r 100000 -c 50 (requests/s; ratio to redis-server)\n",
        settings.requests
    );
    println!(
        "{:<8} {:>3} {:>12} {:>12} {:>7} {:>14} {:>7}",
        "test", "-P", "redis", "hived", "ratio", "hived cluster", "ratio"
    );
    for ((pipeline, test), [redis_rps, hived_rps, cluster_rps]) in &rows {
        let ratio = |rps: &Option<f64>| match (rps, redis_rps) {
            (Some(rps), Some(base)) if *base > 0.0 => format!("{:.2}x", rps / base),
            _ => "-".to_owned(),
        };
        let shown = |rps: &Option<f64>| rps.map_or("-".to_owned(), |rps| format!("{rps:.0}"));
        println!(
            "{test:<8} {pipeline:>3} {:>12} {:>12} {:>7} {:>14} {:>7}",
            shown(redis_rps),
            shown(hived_rps),
            ratio(hived_rps),
            shown(cluster_rps),
            ratio(cluster_rps)
        );
    }
    println!("\ntargets: standalone >= 1.0x redis, cluster (RF=2, 3 nodes) >= 0.5x redis");
    println!(
        "the cluster runs {CLUSTER_TESTS} only: the collection tests write one key, whose whole \
         state is replicated per write until delta replication lands"
    );

    let redis_memory = memory(&redis, settings.memory_keys)?;
    let hived_memory = memory(&standalone, settings.memory_keys)?;
    println!(
        "\nP7: {} keys of 16 bytes, 100-byte values (bytes per key)\n",
        settings.memory_keys
    );
    println!("{:<8} {:>12} {:>14}", "server", "used_memory", "RSS growth");
    for (name, (used, rss)) in [("redis", redis_memory), ("hived", hived_memory)] {
        println!("{name:<8} {used:>12.1} {rss:>14.1}");
    }
    println!(
        "\nratio hived/redis: used_memory {:.2}x, RSS growth {:.2}x (target <= 1.0x)",
        hived_memory.0 / redis_memory.0,
        hived_memory.1 / redis_memory.1
    );
    Ok(())
}

/// A server process on 127.0.0.1, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn redis() -> anyhow::Result<Server> {
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        Server::ready(child, port)
    }

    fn hived(binary: &PathBuf, extra: &[String]) -> anyhow::Result<Server> {
        let port = free_port()?;
        let child = Command::new(binary)
            .args(["--resp", &format!("127.0.0.1:{port}"), "--log", "warn"])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .context("starting hived")?;
        Server::ready(child, port)
    }

    /// Waits until the server answers `PING`.
    fn ready(child: Child, port: u16) -> anyhow::Result<Server> {
        let server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while cli(port, &["PING"])
            .map(|out| out.trim() != "PONG")
            .unwrap_or(true)
        {
            if Instant::now() > deadline {
                bail!("the server on port {port} did not answer PING");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three `hived` processes, RF=2, on the fast gossip preset.
struct Cluster {
    nodes: Vec<Server>,
}

impl Cluster {
    fn start(binary: &PathBuf) -> anyhow::Result<Cluster> {
        let gossip: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_, _>>()?;
        let mut nodes = Vec::new();
        for (i, port) in gossip.iter().enumerate() {
            let mut args: Vec<String> = [
                "--cluster",
                "--bind",
                "127.0.0.1",
                "--gossip",
                "local",
                "--replication-factor",
                "2",
                "--port",
            ]
            .iter()
            .map(|arg| (*arg).to_owned())
            .collect();
            args.push(port.to_string());
            if i > 0 {
                args.extend(["--seed".to_owned(), format!("127.0.0.1:{}", gossip[0])]);
            }
            nodes.push(Server::hived(binary, &args)?);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &nodes {
            loop {
                let status = cli(node.port, &["HIVE.STATUS"])?;
                if status.lines().filter(|line| *line == "alive").count() == 3 {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("the cluster did not form: {status}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(Cluster { nodes })
    }
}

/// Runs `redis-cli -p port args...`; returns its output.
pub(crate) fn cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .context("running redis-cli")?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs redis-benchmark against `port`; returns requests/s per test.
fn benchmark(
    port: u16,
    pipeline: u32,
    requests: u64,
    tests: &str,
) -> anyhow::Result<Vec<(String, f64)>> {
    let mut command = Command::new("redis-benchmark");
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", tests])
        .args(["-n", &requests.to_string(), "-r", "100000", "-c", "50"])
        .args(["-P", &pipeline.to_string(), "--csv"]);
    println!("$ {}", crate::display_command(&command));
    let output = command.output().context("running redis-benchmark")?;
    if !output.status.success() {
        bail!("redis-benchmark failed: {output:?}");
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut results = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
        if let [test, rps, ..] = fields.as_slice()
            && let Ok(rps) = rps.parse::<f64>()
        {
            // "LPUSH (needed to benchmark LPOP)" and the like keep their first word.
            let test = test
                .split_whitespace()
                .next()
                .unwrap_or(test)
                .to_ascii_lowercase();
            if !results.iter().any(|(seen, _)| *seen == test) {
                results.push((test, rps));
            }
        }
    }
    if results.is_empty() {
        bail!("redis-benchmark printed no results: {text}");
    }
    Ok(results)
}

/// Loads `keys` keys into the server; returns bytes per key from its
/// `used_memory` and from its resident-set growth.
fn memory(server: &Server, keys: u64) -> anyhow::Result<(f64, f64)> {
    let used_before = used_memory(server.port)?;
    let rss_before = rss(server.child.id())?;
    load_keys(server.port, keys)?;
    let used = used_memory(server.port)?.saturating_sub(used_before);
    let rss = rss(server.child.id())?.saturating_sub(rss_before);
    Ok((used as f64 / keys as f64, rss as f64 / keys as f64))
}

/// Loads `keys` keys of 16 bytes with 100-byte values into the server on
/// `port` (`redis-cli --pipe`).
pub(crate) fn load_keys(port: u16, keys: u64) -> anyhow::Result<()> {
    let mut pipe = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("running redis-cli --pipe")?;
    {
        let mut stdin = std::io::BufWriter::new(pipe.stdin.take().context("stdin")?);
        let value = [b'v'; 100];
        for i in 0..keys {
            let key = format!("key:{i:012}");
            write!(stdin, "*3\r\n$3\r\nSET\r\n$16\r\n{key}\r\n$100\r\n")?;
            stdin.write_all(&value)?;
            stdin.write_all(b"\r\n")?;
        }
    }
    if !pipe.wait()?.success() {
        bail!("redis-cli --pipe failed");
    }
    Ok(())
}

fn used_memory(port: u16) -> anyhow::Result<u64> {
    let info = cli(port, &["INFO", "memory"])?;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .context("INFO memory has no used_memory")
}

/// Resident set size of process `pid` in bytes (Linux).
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading /proc/<pid>/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .context("no VmRSS")
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
