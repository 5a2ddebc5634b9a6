//! `cargo xtask bench snapshot`: P11 (spec: performance.md) — snapshots of
//! a standalone `hived` against `redis-server`'s RDB, in the same run.
//!
//! Each server gets its own data directory and 1 M keys of 16 bytes with
//! 100-byte values (`redis-cli --pipe`). Then, for each: the time `SAVE`
//! takes, the file's size, and the time from starting the server again on
//! that directory (after `kill -9`) until it answers `DBSIZE` with every
//! key; and `redis-benchmark -t set,get` p99 latency at steady state and
//! while background saves run back to back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::resp::{cli, free_port, load_keys};

struct Settings {
    keys: u64,
    requests: u64,
}

/// What one server measured.
#[derive(Debug, Default)]
struct Measured {
    save: Duration,
    file_bytes: u64,
    restart: Duration,
    p99_steady_ms: f64,
    p99_saving_ms: f64,
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut settings = Settings {
        keys: 1_000_000,
        requests: 200_000,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => {
                settings.keys = 10_000;
                settings.requests = 2_000;
            }
            "--keys" => {
                settings.keys = args
                    .next()
                    .and_then(|keys| keys.parse().ok())
                    .context("--keys needs a number")?;
            }
            other => bail!("unknown option `{other}` (known: --smoke, --keys N)"),
        }
    }
    for tool in ["redis-server", "redis-cli", "redis-benchmark"] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("`{tool}` is not installed: apt-get install -y redis-server redis-tools");
        }
    }
    crate::run_command(crate::cargo().args(["build", "--release", "-p", "hived"]))?;
    let hived = crate::workspace_root().join("target/release/hived");
    let scratch = tempfile::tempdir().context("a scratch directory")?;

    let redis_dir = scratch.path().join("redis");
    let hived_dir = scratch.path().join("hived");
    let redis = measure(&Kind::Redis, &redis_dir, &settings)?;
    let hive = measure(&Kind::Hived(hived), &hived_dir, &settings)?;

    println!("\n{}", crate::bench::machine_info());
    println!(
        "P11: {} keys of 16 bytes, 100-byte values; SAVE, file size, restart to \
         DBSIZE = all keys after kill -9; redis-benchmark -t set,get -n {} -c 50 p99 \
         at steady state and during back-to-back BGSAVEs\n",
        settings.keys, settings.requests
    );
    println!(
        "{:<22} {:>12} {:>12} {:>8}   target",
        "", "redis", "hived", "ratio"
    );
    let rows = [
        (
            "save (s)",
            redis.save.as_secs_f64(),
            hive.save.as_secs_f64(),
            "<= 1.0x",
        ),
        (
            "file (MB)",
            redis.file_bytes as f64 / 1e6,
            hive.file_bytes as f64 / 1e6,
            "<= 1.2x",
        ),
        (
            "restart to ready (s)",
            redis.restart.as_secs_f64(),
            hive.restart.as_secs_f64(),
            "<= 1.0x",
        ),
        (
            "p99 steady (ms)",
            redis.p99_steady_ms,
            hive.p99_steady_ms,
            "",
        ),
        (
            "p99 during save (ms)",
            redis.p99_saving_ms,
            hive.p99_saving_ms,
            "",
        ),
    ];
    for (name, redis, hive, target) in rows {
        println!(
            "{name:<22} {redis:>12.3} {hive:>12.3} {:>7.2}x   {target}",
            hive / redis
        );
    }
    println!(
        "\np99 during save / steady: redis {:.2}x, hived {:.2}x (target for hived <= 3x)",
        redis.p99_saving_ms / redis.p99_steady_ms,
        hive.p99_saving_ms / hive.p99_steady_ms
    );
    Ok(())
}

enum Kind {
    Redis,
    Hived(PathBuf),
}

impl Kind {
    fn file(&self, dir: &Path) -> PathBuf {
        match self {
            Kind::Redis => dir.join("dump.rdb"),
            Kind::Hived(_) => dir.join("snapshot.hive"),
        }
    }

    /// Starts the server on `dir` and `port`; returns once it accepts
    /// connections (it may still be loading).
    fn start(&self, dir: &Path, port: u16) -> anyhow::Result<Child> {
        std::fs::create_dir_all(dir)?;
        let mut command = match self {
            Kind::Redis => {
                let mut command = Command::new("redis-server");
                command
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no"])
                    .arg("--dir")
                    .arg(dir)
                    .args(["--dbfilename", "dump.rdb"]);
                command
            }
            Kind::Hived(binary) => {
                let mut command = Command::new(binary);
                command
                    .args(["--resp", &format!("127.0.0.1:{port}"), "--log", "warn"])
                    .arg("--dir")
                    .arg(dir)
                    .args(["--save-interval", "0"]);
                command
            }
        };
        let child = command
            .stdout(Stdio::null())
            .spawn()
            .context("starting the server")?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("the server on port {port} did not open it");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(child)
    }
}

/// Kills the child when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn measure(kind: &Kind, dir: &Path, settings: &Settings) -> anyhow::Result<Measured> {
    let port = free_port()?;
    let server = Killed(kind.start(dir, port)?);
    wait_for_keys(port, 0)?;
    load_keys(port, settings.keys)?;
    wait_for_keys(port, settings.keys)?;

    let p99_steady_ms = p99(port, settings.requests)?;
    let p99_saving_ms = p99_while_saving(port, settings.requests)?;
    wait_for_no_background_save(port)?;
    // The benchmark's writes may have added keys (with fewer keys loaded
    // than its -r range): the restart must bring back what is there now.
    let keys = cli(port, &["DBSIZE"])?
        .trim()
        .parse::<u64>()
        .context("DBSIZE answers a number")?;

    let started = Instant::now();
    let saved = cli(port, &["SAVE"])?;
    let save = started.elapsed();
    if saved.trim() != "OK" {
        bail!("SAVE answered {saved}");
    }
    let file_bytes = std::fs::metadata(kind.file(dir))
        .context("the snapshot file")?
        .len();
    drop(server); // kill -9

    let started = Instant::now();
    let _server = Killed(kind.start(dir, port)?);
    wait_for_keys(port, keys)?;
    let restart = started.elapsed();
    Ok(Measured {
        save,
        file_bytes,
        restart,
        p99_steady_ms,
        p99_saving_ms,
    })
}

/// Polls `DBSIZE` until it answers `keys` (Redis answers LOADING meanwhile).
fn wait_for_keys(port: u16, keys: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let answer = cli(port, &["DBSIZE"])?;
        if answer.trim().parse::<u64>().ok() == Some(keys) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("DBSIZE answered {answer:?}, not {keys}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Polls `INFO persistence` until no background save runs.
fn wait_for_no_background_save(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while cli(port, &["INFO", "persistence"])?.contains("rdb_bgsave_in_progress:1") {
        if Instant::now() > deadline {
            bail!("a background save never ended");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// p99 latency in ms of `redis-benchmark -t set,get` (the larger of the two).
fn p99(port: u16, requests: u64) -> anyhow::Result<f64> {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "set,get"])
        .args([
            "-n",
            &requests.to_string(),
            "-r",
            "100000",
            "-c",
            "50",
            "-d",
            "100",
        ])
        .arg("--csv")
        .output()
        .context("running redis-benchmark")?;
    if !output.status.success() {
        bail!("redis-benchmark failed: {output:?}");
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .context("no CSV header")?
        .split(',')
        .map(|field| field.trim_matches('"'))
        .collect();
    let column = header
        .iter()
        .position(|field| *field == "p99_latency_ms")
        .context("redis-benchmark prints no p99_latency_ms")?;
    lines
        .filter_map(|line| {
            line.split(',')
                .nth(column)
                .and_then(|field| field.trim_matches('"').parse::<f64>().ok())
        })
        .reduce(f64::max)
        .context("no p99 in redis-benchmark's output")
}

/// [`p99`] while another connection runs `BGSAVE` back to back.
fn p99_while_saving(port: u16, requests: u64) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicBool::new(false));
    let saver = {
        let done = done.clone();
        std::thread::spawn(move || -> anyhow::Result<u32> {
            let mut saves = 0;
            while !done.load(Ordering::Relaxed) {
                let answer = cli(port, &["BGSAVE"])?;
                if answer.contains("started") {
                    saves += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(saves)
        })
    };
    let p99 = p99(port, requests);
    done.store(true, Ordering::Relaxed);
    let saves = saver.join().expect("the saver thread")?;
    println!("  {saves} background saves started during the measurement");
    p99
}
