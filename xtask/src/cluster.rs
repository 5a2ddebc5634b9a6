//! `cargo xtask cluster`: starts N `hived` processes on 127.0.0.1, runs a load
//! of `SET`s over RESP that records every acknowledged write, optionally
//! `kill -9`s nodes mid-load, then reads every acknowledged write back through
//! every surviving node and reports acked / verified / lost. Exits non-zero if
//! anything acknowledged was lost.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

const USAGE: &str = "\
Usage: cargo xtask cluster [--nodes N] [--rf R] [--kill K] [--seconds S] [--writers W]
  Starts N hived processes (default 3, RF 2), writes for S seconds (default 6)
  from W connections (default 8), kill -9s K nodes halfway (default 0; K < R),
  then verifies every acknowledged write through every surviving node.
";

struct Settings {
    nodes: usize,
    replication_factor: usize,
    kill: usize,
    seconds: u64,
    writers: usize,
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut settings = Settings {
        nodes: 3,
        replication_factor: 2,
        kill: 0,
        seconds: 6,
        writers: 8,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--nodes" => settings.nodes = crate::option_value(&mut args, arg)?,
            "--rf" => settings.replication_factor = crate::option_value(&mut args, arg)?,
            "--kill" => settings.kill = crate::option_value(&mut args, arg)?,
            "--seconds" => settings.seconds = crate::option_value(&mut args, arg)?,
            "--writers" => settings.writers = crate::option_value(&mut args, arg)?,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    if settings.kill >= settings.replication_factor.min(settings.nodes) {
        bail!(
            "--kill must be below --rf and --nodes: killing as many nodes as there are copies loses data by design"
        );
    }
    crate::run_command(crate::cargo().args(["build", "--release", "-p", "hived"]))?;
    let binary = crate::workspace_root().join("target/release/hived");
    let mut nodes = start_nodes(&binary, &settings)?;
    for node in &nodes {
        node.wait_for(settings.nodes)?;
    }
    println!(
        "cluster: {} nodes, RF {}",
        settings.nodes, settings.replication_factor
    );

    let addrs: Vec<SocketAddr> = nodes.iter().map(|node| node.resp).collect();
    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..settings.writers)
        .map(|writer| {
            let (addrs, acked, failed, stop) =
                (addrs.clone(), acked.clone(), failed.clone(), stop.clone());
            std::thread::spawn(move || write_load(writer, &addrs, &acked, &failed, &stop))
        })
        .collect();
    let started = Instant::now();
    let total = Duration::from_secs(settings.seconds);
    let mut killed = 0;
    while started.elapsed() < total {
        std::thread::sleep(Duration::from_secs(1));
        if killed < settings.kill && started.elapsed() >= total / 2 {
            let victim = nodes.len() - 1 - killed;
            nodes[victim].kill();
            killed += 1;
            println!("  kill -9 node {victim} ({})", nodes[victim].resp);
        }
        println!(
            "  {:>3}s: {} acked, {} failed",
            started.elapsed().as_secs(),
            acked.lock().expect("no writer panicked").len(),
            failed.load(Ordering::Relaxed)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().expect("a writer thread");
    }
    let survivors: Vec<&Node> = nodes.iter().filter(|node| node.alive).collect();
    for node in &survivors {
        node.wait_for(survivors.len())?;
    }
    let acked = acked.lock().expect("no writer panicked").clone();
    println!(
        "verifying {} acknowledged writes through {} nodes",
        acked.len(),
        survivors.len()
    );
    let mut lost = 0;
    let mut verified = 0;
    for node in &survivors {
        let mut client = Client::connect(node.resp)?;
        for (key, value) in &acked {
            match client.call(&["GET", key])? {
                Reply::Bulk(Some(found)) if found == value.as_bytes() => verified += 1,
                other => {
                    lost += 1;
                    if lost <= 10 {
                        println!("  LOST {key} via {}: {other:?}", node.resp);
                    }
                }
            }
        }
    }
    println!(
        "acked {}, verified {verified} (reads, {} per node), lost {lost}, failed writes {} (not acknowledged; allowed)",
        acked.len(),
        acked.len(),
        failed.load(Ordering::Relaxed)
    );
    if lost > 0 {
        bail!("{lost} acknowledged writes were lost");
    }
    if acked.is_empty() {
        bail!("no write was acknowledged: the cluster never served");
    }
    Ok(())
}

/// One writer: `SET`s its own keys in order, moving to the next node when one
/// stops answering; records what was acknowledged.
fn write_load(
    writer: usize,
    addrs: &[SocketAddr],
    acked: &Mutex<Vec<(String, String)>>,
    failed: &AtomicU64,
    stop: &AtomicBool,
) {
    let mut target = writer % addrs.len();
    let mut client = None;
    let mut sequence = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if client.is_none() {
            client = Client::connect(addrs[target]).ok();
            if client.is_none() {
                target = (target + 1) % addrs.len();
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        }
        let (key, value) = (format!("w{writer}:{sequence}"), format!("v{sequence}"));
        sequence += 1;
        let reply = client.as_mut().map(|c| c.call(&["SET", &key, &value]));
        match reply {
            Some(Ok(Reply::Simple(ok))) if ok == "OK" => {
                acked.lock().expect("no writer panicked").push((key, value));
            }
            Some(Ok(_)) => {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                failed.fetch_add(1, Ordering::Relaxed);
                client = None;
                target = (target + 1) % addrs.len();
            }
        }
    }
}

pub(crate) struct Node {
    pub(crate) child: Child,
    pub(crate) resp: SocketAddr,
    pub(crate) alive: bool,
}

impl Node {
    /// Waits until the started `child` accepts clients on `resp`; fails at
    /// once if it exits first.
    pub(crate) fn serving(child: Child, resp: SocketAddr) -> anyhow::Result<Node> {
        let mut node = Node {
            child,
            resp,
            alive: true,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&resp, Duration::from_secs(1)).is_err() {
            if let Some(status) = node.child.try_wait()? {
                node.alive = false;
                bail!("hived for {resp} exited before serving ({status})");
            }
            if Instant::now() > deadline {
                bail!("hived did not open {resp}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(node)
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.alive = false;
    }

    /// Prints and runs `kill -NAME pid` (`KILL`, `TERM`, `STOP`, `CONT`).
    pub(crate) fn signal(&self, name: &str) -> anyhow::Result<()> {
        crate::run_command(
            Command::new("kill").args([format!("-{name}"), self.child.id().to_string()]),
        )
    }

    /// Reads this node's `HIVE.STATUS`.
    pub(crate) fn status(&self) -> anyhow::Result<Status> {
        Status::read(&mut Client::connect(self.resp)?)
    }

    /// Polls `HIVE.STATUS` until this node sees `members` alive members and
    /// nothing left to move.
    pub(crate) fn wait_for(&self, members: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = None;
        loop {
            if let Ok(status) = self.status() {
                if status.alive().count() == members && status.rebalance_pending == 0 {
                    return Ok(());
                }
                last = Some(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not see {members} members settle; last HIVE.STATUS: {last:?}",
                    self.resp
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.alive {
            self.kill();
        }
    }
}

/// One node's `HIVE.STATUS`, the fields the runners read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Status {
    pub(crate) node_id: String,
    /// Keys still to move for the current view.
    pub(crate) rebalance_pending: i64,
    pub(crate) tombstones: i64,
    /// Every member this node knows of: id and state (`alive`, `suspect`,
    /// `dead`, `left`).
    pub(crate) members: Vec<(String, String)>,
}

impl Status {
    pub(crate) fn read(client: &mut Client) -> anyhow::Result<Status> {
        let reply = client.call(&["HIVE.STATUS"])?;
        let Reply::Array(Some(fields)) = &reply else {
            bail!("HIVE.STATUS answered {reply:?}");
        };
        let mut status = Status {
            node_id: String::new(),
            rebalance_pending: -1,
            tombstones: -1,
            members: Vec::new(),
        };
        for pair in fields.chunks(2) {
            match (pair[0].text().as_deref(), pair.get(1)) {
                (Some("node_id"), Some(id)) => status.node_id = id.text().unwrap_or_default(),
                (Some("rebalance_pending"), Some(Reply::Int(n))) => status.rebalance_pending = *n,
                (Some("tombstones"), Some(Reply::Int(n))) => status.tombstones = *n,
                (Some("members"), Some(Reply::Array(Some(members)))) => {
                    for member in members {
                        let Reply::Array(Some(fields)) = member else {
                            bail!("a member in HIVE.STATUS: {member:?}");
                        };
                        let field = |name: &str| {
                            fields
                                .chunks(2)
                                .find(|pair| pair[0].text().as_deref() == Some(name))
                                .and_then(|pair| pair.get(1)?.text())
                                .unwrap_or_default()
                        };
                        status.members.push((field("id"), field("state")));
                    }
                }
                _ => {}
            }
        }
        Ok(status)
    }

    /// The ids of the members this node sees alive.
    pub(crate) fn alive(&self) -> impl Iterator<Item = &str> {
        self.members
            .iter()
            .filter(|(_, state)| state == "alive")
            .map(|(id, _)| id.as_str())
    }
}

fn start_nodes(binary: &Path, settings: &Settings) -> anyhow::Result<Vec<Node>> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut seeds = Vec::new();
    for _ in 0..settings.nodes {
        let member = Member {
            namespace: None,
            id: None,
            host: [127, 0, 0, 1].into(),
            resp_port: free_port()?,
            gossip_port: free_port()?,
            rpc_port: None,
            replication_factor: settings.replication_factor,
            seeds: &seeds,
        };
        let child = member.command(binary).spawn().context("starting hived")?;
        nodes.push(Node::serving(child, member.resp())?);
        if seeds.is_empty() {
            seeds.push(member.gossip());
        }
    }
    Ok(nodes)
}

/// How to start one `hived` cluster member (`--gossip local`, rebalance
/// debounce 100 ms, errors logged to stderr); a runner adds its own flags to
/// [`Member::command`].
pub(crate) struct Member<'a> {
    /// The network namespace to run in (`ip netns exec`, which execs
    /// `hived`, so the child's pid is hived's), or `None` for this one.
    pub(crate) namespace: Option<&'a str>,
    /// `--node-id`; `None` lets hived generate one.
    pub(crate) id: Option<&'a str>,
    /// Where it listens: gossip, peer RPC and RESP.
    pub(crate) host: IpAddr,
    pub(crate) resp_port: u16,
    pub(crate) gossip_port: u16,
    /// `None` lets hived pick a free port (it advertises it by gossip).
    pub(crate) rpc_port: Option<u16>,
    pub(crate) replication_factor: usize,
    /// Gossip addresses to join; empty for the first member.
    pub(crate) seeds: &'a [SocketAddr],
}

impl Member<'_> {
    /// The address clients reach it on.
    pub(crate) fn resp(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.resp_port)
    }

    /// The address members join it through.
    pub(crate) fn gossip(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.gossip_port)
    }

    /// The command that starts it, with stdout (its log) discarded unless
    /// `HIVE_CHAOS_LOG` names a log filter.
    pub(crate) fn command(&self, binary: &Path) -> Command {
        let mut command = match self.namespace {
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command
            .args(["--cluster", "--bind", &self.host.to_string()])
            .args(["--resp", &self.resp().to_string()])
            .args(["--port", &self.gossip_port.to_string(), "--gossip", "local"])
            .args(["--replication-factor", &self.replication_factor.to_string()])
            .args([
                "--rebalance-debounce-ms",
                "100",
                "--log",
                &member_log_filter(),
            ])
            .stdout(Stdio::null());
        if let Some(id) = self.id {
            command.args(["--node-id", id]);
        }
        if let Some(port) = self.rpc_port {
            command.args(["--rpc-port", &port.to_string()]);
        }
        for seed in self.seeds {
            command.args(["--seed", &seed.to_string()]);
        }
        command
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A reply, as far as this load generator needs to tell them apart.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// A simple or bulk string's text.
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(text) => Some(text.clone()),
            Reply::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

/// A blocking RESP2 client.
pub(crate) struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub(crate) fn connect(addr: SocketAddr) -> anyhow::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    pub(crate) fn call(&mut self, args: &[&str]) -> anyhow::Result<Reply> {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.writer.write_all(request.as_bytes())?;
        self.read()
    }

    fn read(&mut self) -> anyhow::Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("the connection closed");
        }
        let text = line.trim_end_matches("\r\n");
        let (kind, rest) = text.split_at(1);
        let number = || rest.parse::<i64>().context("a RESP length");
        Ok(match kind {
            "+" => Reply::Simple(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Int(number()?),
            "$" if number()? < 0 => Reply::Bulk(None),
            "$" => {
                let mut body = vec![0; usize::try_from(number()?)? + 2];
                self.reader.read_exact(&mut body)?;
                body.truncate(body.len() - 2);
                Reply::Bulk(Some(body))
            }
            "*" if number()? < 0 => Reply::Array(None),
            "*" => Reply::Array(Some(
                (0..number()?)
                    .map(|_| self.read())
                    .collect::<anyhow::Result<_>>()?,
            )),
            other => bail!("unexpected RESP type {other:?}"),
        })
    }
}

/// The log filter members run with: errors only, or `HIVE_CHAOS_LOG` (a
/// `tracing` filter such as `hive_cluster=info`) to diagnose a run.
pub(crate) fn member_log_filter() -> String {
    std::env::var("HIVE_CHAOS_LOG").unwrap_or_else(|_| "error".to_owned())
}
