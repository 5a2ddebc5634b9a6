//! What the `hived` tests share: a server in-process on 127.0.0.1:0, a real
//! `redis-server` on a free port, and a small blocking RESP client that reads
//! replies into [`Value`]s.

#![allow(dead_code)] // reason: each test binary uses a different part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hived::{Server, ServerOptions};
use tokio_util::sync::CancellationToken;

/// A `hived` server running on its own runtime; stopped when dropped.
pub(crate) struct Hived {
    pub(crate) addr: SocketAddr,
    stop: CancellationToken,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Hived {
    pub(crate) fn start() -> Hived {
        Hived::start_with(ServerOptions::default())
    }

    /// A server whose node keeps its snapshot in `dir`, as `--dir` does.
    pub(crate) fn start_in(dir: &std::path::Path) -> Hived {
        Hived::start_node(
            hive::Config {
                data_dir: Some(dir.to_owned()),
                ..hive::Config::default()
            },
            ServerOptions::default(),
        )
    }

    pub(crate) fn start_with(options: ServerOptions) -> Hived {
        Hived::start_node(hive::Config::default(), options)
    }

    fn start_node(config: hive::Config, options: ServerOptions) -> Hived {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let stop = CancellationToken::new();
        let addr = runtime.block_on(async {
            let node =
                std::sync::Arc::new(hive::Node::start(config).await.expect("a standalone node"));
            let server = Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), node.clone(), options)
                .await
                .expect("binds");
            let addr = server.local_addr().expect("bound");
            let stop = stop.clone();
            tokio::spawn(async move {
                server.run(stop).await;
                if let Ok(node) = std::sync::Arc::try_unwrap(node) {
                    let _ = node.shutdown().await;
                }
            });
            addr
        });
        Hived {
            addr,
            stop,
            runtime: Some(runtime),
        }
    }

    pub(crate) fn client(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for Hived {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

/// A real `redis-server` on a free port, without persistence; killed when dropped.
pub(crate) struct Redis {
    pub(crate) addr: SocketAddr,
    child: Child,
}

impl Redis {
    /// Starts `redis-server` (Debian's `redis-server` package; CI installs it).
    pub(crate) fn start() -> Redis {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { addr, child }
    }

    pub(crate) fn client(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `hived` process listening on ports it picked itself (`--resp
/// 127.0.0.1:0`, and `--port 0` for gossip in cluster mode): its addresses
/// come from its "hived ready" log line, so no test guesses a free port that
/// another process may take first. Killed (-9) when dropped.
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) resp: SocketAddr,
    /// The gossip address, in cluster mode.
    pub(crate) gossip: Option<SocketAddr>,
}

impl Spawned {
    /// Runs `command` (a `hived` with every option but `--resp` and the log
    /// options) and waits until it is ready. Panics with hived's last lines
    /// if it exits first.
    pub(crate) fn start(mut command: Command) -> Spawned {
        command
            .args([
                "--resp",
                "127.0.0.1:0",
                "--log",
                "info",
                "--log-format",
                "json",
            ])
            .stdout(Stdio::piped());
        let mut child = command.spawn().expect("hived starts");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut seen = Vec::new();
        let ready = loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("hived ready") => break line,
                Some(Ok(line)) => seen.push(line),
                _ => {
                    let status = child.wait().expect("reaped");
                    panic!(
                        "hived exited ({status}) before it was ready:\n{}",
                        seen.join("\n")
                    );
                }
            }
        };
        // Keep reading so that hived never blocks on a full pipe.
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        let field = |name: &str, prefix: &str| -> Option<SocketAddr> {
            let start =
                ready.find(&format!("\"{name}\":\"{prefix}"))? + name.len() + prefix.len() + 4;
            let end = start + ready[start..].find(['"', ')'])?;
            ready[start..end].parse().ok()
        };
        Spawned {
            resp: field("resp", "").unwrap_or_else(|| panic!("no resp address in {ready}")),
            gossip: field("gossip", "Some("),
            child,
        }
    }

    pub(crate) fn client(&self) -> Client {
        Client::connect(self.resp)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns a port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// One RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
    Double(String),
    Null,
    Bool(bool),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
}

impl Value {
    pub(crate) fn bulk(text: &str) -> Value {
        Value::Bulk(Some(text.as_bytes().to_vec()))
    }
}

/// A blocking RESP client.
pub(crate) struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub(crate) fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        Client {
            reader: BufReader::new(stream.try_clone().expect("clones")),
            writer: stream,
        }
    }

    /// Sends raw bytes.
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// Returns true if nothing arrives within `period` (and the connection
    /// stays open).
    pub(crate) fn silent_for(&mut self, period: Duration) -> bool {
        let stream = self.reader.get_ref();
        stream.set_read_timeout(Some(period)).expect("a timeout");
        let silent = match self.reader.fill_buf() {
            // Bytes arrived, or the connection closed (an empty read).
            Ok(_) => false,
            Err(err) => matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        silent
    }

    /// Closes the sending half: the server sees the end of the input.
    pub(crate) fn finish_sending(&mut self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Write);
    }

    /// Sends one command as a multibulk array.
    pub(crate) fn send(&mut self, args: &[&[u8]]) {
        self.send_raw(&encode(args)).expect("sends");
    }

    /// Sends one command and reads its reply.
    pub(crate) fn call(&mut self, args: &[&str]) -> Value {
        let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        self.send(&args);
        self.read().expect("a reply")
    }

    /// Reads one reply; an error if the connection closed or sent garbage.
    pub(crate) fn read(&mut self) -> std::io::Result<Value> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let text = String::from_utf8_lossy(&line[1..line.len().saturating_sub(2)]).into_owned();
        let number = || text.parse::<i64>().expect("a number");
        Ok(match line[0] {
            b'+' => Value::Simple(text),
            b'-' => Value::Error(text),
            b':' => Value::Int(number()),
            b'$' if number() < 0 => Value::Bulk(None),
            b'$' => {
                let mut body = vec![0; usize::try_from(number()).expect("a length") + 2];
                self.reader.read_exact(&mut body)?;
                body.truncate(body.len() - 2);
                Value::Bulk(Some(body))
            }
            b'*' if number() < 0 => Value::Array(None),
            b'*' => Value::Array(Some(
                (0..number())
                    .map(|_| self.read())
                    .collect::<Result<_, _>>()?,
            )),
            b'~' => Value::Set(
                (0..number())
                    .map(|_| self.read())
                    .collect::<Result<_, _>>()?,
            ),
            b'%' => Value::Map(
                (0..number())
                    .map(|_| Ok((self.read()?, self.read()?)))
                    .collect::<std::io::Result<_>>()?,
            ),
            b',' => Value::Double(text),
            b'_' => Value::Null,
            b'#' => Value::Bool(text == "t"),
            other => panic!("unexpected reply type {:?}", char::from(other)),
        })
    }
}

/// Encodes a command as a RESP multibulk array.
pub(crate) fn encode(args: &[&[u8]]) -> Vec<u8> {
    hived::resp::encode_request(args)
}

/// Runs `hived/tests/python/client_smoke.py` with the Python `redis` package
/// against the server at `addr`; panics with its output unless it passes.
pub(crate) fn python_client_smoke(addr: SocketAddr, prefix: &str) {
    let python = std::env::var("HIVE_PYTHON").expect(
        "HIVE_PYTHON must name a Python with the `redis` package: run the suite with \
         `cargo xtask test`, which sets it up",
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client_smoke.py");
    let output = Command::new(&python)
        .arg(script)
        .arg(addr.port().to_string())
        .arg(prefix)
        .output()
        .expect("the Python interpreter runs");
    assert!(
        output.status.success() && output.stdout == b"ok\n",
        "redis-py against {addr}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// How long cluster tests wait for a condition before failing.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// One `hived` process, a member of a local test cluster (RF=2, gossip
/// preset `local`); killed when dropped.
pub(crate) struct Process {
    pub(crate) spawned: Spawned,
    pub(crate) resp: SocketAddr,
    pub(crate) gossip: u16,
}

impl Process {
    /// Starts a member, joining `seed` (a gossip port) if given.
    pub(crate) fn start(seed: Option<u16>) -> Process {
        Process::start_with(seed, &[])
    }

    /// [`Process::start`] with `extra` arguments.
    pub(crate) fn start_with(seed: Option<u16>, extra: &[&str]) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hived"));
        command
            .args(["--cluster", "--bind", "127.0.0.1", "--port", "0"])
            .args(["--gossip", "local"])
            .args(["--replication-factor", "2", "--rebalance-debounce-ms", "50"])
            .args(extra)
            .stderr(Stdio::inherit());
        if let Some(seed) = seed {
            command.args(["--seed", &format!("127.0.0.1:{seed}")]);
        }
        let spawned = Spawned::start(command);
        Process {
            resp: spawned.resp,
            gossip: spawned.gossip.expect("a cluster member gossips").port(),
            spawned,
        }
    }

    pub(crate) fn client(&self) -> Client {
        Client::connect(self.resp)
    }

    /// Returns (alive members, rebalance pending) from `HIVE.STATUS`.
    pub(crate) fn view(&self) -> (usize, i64) {
        let Value::Array(Some(status)) = self.client().call(&["HIVE.STATUS"]) else {
            panic!("HIVE.STATUS answers a map");
        };
        let field = |name: &str| {
            status
                .chunks(2)
                .find(|pair| pair[0] == Value::bulk(name))
                .map(|pair| pair[1].clone())
                .expect("a status field")
        };
        let Value::Array(Some(members)) = field("members") else {
            panic!("members listed");
        };
        let alive = members
            .iter()
            .filter(|member| {
                matches!(member, Value::Array(Some(fields))
                    if fields.windows(2).any(|pair| pair == [Value::bulk("state"), Value::bulk("alive")]))
            })
            .count();
        let Value::Int(pending) = field("rebalance_pending") else {
            panic!("rebalance_pending is a number");
        };
        (alive, pending)
    }

    /// Polls until this node sees `members` alive members and nothing to move.
    pub(crate) fn wait_for(&self, members: usize) {
        let started = Instant::now();
        while self.view() != (members, 0) {
            assert!(
                started.elapsed() < DEADLINE,
                "{} sees {:?}, wanted {members} members",
                self.resp,
                self.view()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}
