//! The RESP server: accepts connections and serves each on its own task,
//! reading pipelined commands, running them in order and writing the replies
//! in as few writes as the pipeline allows.
//!
//! Replies queued for a connection are bounded (Redis's
//! `client-output-buffer-limit`): once [`FLUSH_AT`] bytes are queued they are
//! written out and the connection runs no further command until the socket
//! has taken them (back-pressure: a client that does not read stops being
//! served, it does not grow the server), and a single reply larger than the
//! connection's hard limit is not queued at all: the client gets an error and
//! is disconnected.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use hive::Node;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use futures::future::join_all;

use crate::commands::{Args, Conn, Connected, Shared, ShutdownMode, Stats, dispatch, single_key};
use crate::resp::{Frame, Limits, Parser};

/// Replies are written once this much is queued, even mid-pipeline, and the
/// connection waits until the socket has taken them.
const FLUSH_AT: usize = 64 << 10;

/// Room an output buffer keeps after it is written out; a larger one (left by
/// a large reply) is freed.
const KEEP_CAPACITY: usize = 1 << 20;

/// The default hard limit on the reply bytes queued for one connection.
pub const DEFAULT_MAX_OUTPUT_BUFFER: usize = 1 << 30;

/// The smallest hard limit a server accepts (smaller ones are raised to it):
/// below it ordinary replies would cost clients their connection.
pub const MIN_MAX_OUTPUT_BUFFER: usize = 1 << 20;

/// Most commands parsed off a connection's buffer before they run.
const MAX_PIPELINE: usize = 1024;

/// Most commands of one pipeline running at once.
const MAX_GROUP: usize = 64;

/// What a server needs besides the cache.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Password clients must `AUTH` with, if any.
    pub password: Option<String>,
    /// Bounds on what one request may claim.
    pub limits: Limits,
    /// Most bytes a connection may have buffered without completing a command.
    pub max_query_buffer: Option<usize>,
    /// Most reply bytes one connection may have queued (default
    /// [`DEFAULT_MAX_OUTPUT_BUFFER`], at least [`MIN_MAX_OUTPUT_BUFFER`]): a
    /// larger reply is refused with an error and the client disconnected,
    /// and random picks whose reply could be larger are refused.
    pub max_output_buffer: Option<usize>,
    /// The node's memory limit in bytes (0: none), as `CONFIG GET maxmemory`
    /// reports it.
    pub maxmemory: u64,
    /// Period of automatic snapshots, as `CONFIG GET save` reports it.
    pub save_interval: Option<std::time::Duration>,
}

/// A bound RESP server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    limits: Limits,
    max_query_buffer: usize,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) to serve `node`.
    pub async fn bind(
        addr: SocketAddr,
        node: Arc<Node>,
        options: ServerOptions,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let limits = options.limits;
        let local = listener.local_addr()?;
        let max_query_buffer = options
            .max_query_buffer
            .unwrap_or(limits.max_bulk.saturating_mul(2).max(1 << 20));
        let max_output_buffer = options
            .max_output_buffer
            .unwrap_or(DEFAULT_MAX_OUTPUT_BUFFER)
            .max(MIN_MAX_OUTPUT_BUFFER);
        let settings = vec![
            ("bind", local.ip().to_string()),
            ("port", local.port().to_string()),
            ("databases", "1".to_owned()),
            ("maxmemory", options.maxmemory.to_string()),
            ("proto-max-bulk-len", limits.max_bulk.to_string()),
            ("client-query-buffer-limit", max_query_buffer.to_string()),
            ("timeout", "0".to_owned()),
            // No keepalive probes are configured, and no protected mode.
            ("tcp-keepalive", "0".to_owned()),
            ("protected-mode", "no".to_owned()),
            // Redis's form: save after N seconds if at least 1 change.
            (
                "save",
                options
                    .save_interval
                    .map_or_else(String::new, |every| format!("{} 1", every.as_secs())),
            ),
            ("appendonly", "no".to_owned()),
            (
                "dir",
                node.persistence()
                    .map_or_else(String::new, |status| status.dir.display().to_string()),
            ),
        ];
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                cache: node.cache(),
                clustered: node.rpc_addr().is_some(),
                node,
                password: options.password,
                next_client_id: AtomicU64::new(1),
                stats: Stats::new(local.port()),
                settings,
                max_output_buffer,
                shutdown: tokio::sync::watch::Sender::new(None),
                background: TaskTracker::new(),
            }),
            max_query_buffer,
            limits,
        })
    }

    /// Returns the address actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Returns a receiver that holds `Some(mode)` once a client sent
    /// `SHUTDOWN`: the owner then stops the server (and the node) as on
    /// SIGTERM, saving or not as `mode` says.
    pub fn shutdown_requests(&self) -> tokio::sync::watch::Receiver<Option<ShutdownMode>> {
        self.shared.shutdown.subscribe()
    }

    /// Serves until `stop` is cancelled, then stops accepting and waits for
    /// every connection to finish the command it is running.
    pub async fn run(self, stop: CancellationToken) {
        let connections = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let local = stream.local_addr().ok();
                    let conn = Conn::new(self.shared.clone(), Some(peer), local);
                    let (limits, max_buffer, stop) =
                        (self.limits, self.max_query_buffer, stop.clone());
                    connections.spawn(async move {
                        if let Err(err) = serve(stream, conn, limits, max_buffer, stop).await {
                            tracing::debug!(%peer, %err, "connection ended with an error");
                        }
                    });
                }
                Err(err) => {
                    // Out of file descriptors and the like: keep serving the
                    // connections there are.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        connections.close();
        connections.wait().await;
        self.shared.background.close();
        self.shared.background.wait().await;
    }
}

/// Serves one connection until the client leaves, breaks the protocol, sends
/// `QUIT`, or the server stops.
async fn serve(
    mut stream: TcpStream,
    mut conn: Conn,
    limits: Limits,
    max_buffer: usize,
    stop: CancellationToken,
) -> io::Result<()> {
    let _connected = Connected::new(conn.shared.clone());
    let mut input = BytesMut::with_capacity(16 << 10);
    let mut parser = Parser::default();
    let mut output = Output::new(conn.shared.max_output_buffer, limits.max_bulk);
    loop {
        let mut pipeline = Vec::new();
        let mut broken = None;
        while pipeline.len() < MAX_PIPELINE {
            match parser.next(&mut input, &limits) {
                Ok(Some(args)) if args.is_empty() => {}
                Ok(Some(args)) => pipeline.push(args),
                Ok(None) => break,
                Err(err) => {
                    broken = Some(err);
                    break;
                }
            }
        }
        let full = pipeline.len() == MAX_PIPELINE;
        run_pipeline(&mut conn, pipeline, &mut stream, &mut output).await?;
        if conn.closing {
            return output.flush(&mut stream).await;
        }
        if let Some(err) = broken {
            Frame::err(&err).write(&mut output.queued, conn.protocol);
            return output.flush(&mut stream).await;
        }
        if full {
            // More complete commands may be buffered: run them before reading.
            continue;
        }
        if input.len() > max_buffer {
            Frame::err("Protocol error: query buffer limit exceeded")
                .write(&mut output.queued, conn.protocol);
            return output.flush(&mut stream).await;
        }
        output.flush(&mut stream).await?;
        if input.capacity() - input.len() < 4096 {
            input.reserve(16 << 10);
        }
        let read = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            read = stream.read_buf(&mut input) => read?,
        };
        if read == 0 {
            return Ok(());
        }
    }
}

/// Runs the commands of one pipeline, queueing their replies in order.
///
/// Consecutive single-key commands on distinct keys run concurrently: in a
/// cluster each may wait on a different node, and a pipeline should cost one
/// round trip, not one per command. A command on a key the running group
/// already has, and every other command (several keys, connection state),
/// waits for the group to finish, so commands on one key run in the order
/// sent. A group's replies are held until the whole group is done, so its
/// size is also bounded by [`Output::group_limit`]. Stops after `QUIT`, or
/// after a reply over the output limit.
async fn run_pipeline(
    conn: &mut Conn,
    pipeline: Vec<Args>,
    stream: &mut TcpStream,
    output: &mut Output,
) -> io::Result<()> {
    let mut commands = pipeline.into_iter().peekable();
    while let Some(first) = commands.next() {
        let mut group = Vec::new();
        if single_key(conn, &first).is_some() {
            let limit = output.group_limit();
            while let Some(key) = commands.peek().and_then(|next| single_key(conn, next)) {
                let taken = std::iter::once(&first)
                    .chain(&group)
                    .any(|args: &Args| args[1] == *key);
                if taken || group.len() + 1 >= limit {
                    break;
                }
                group.extend(commands.next());
            }
        }
        if group.is_empty() {
            let reply = dispatch(conn, first).await;
            output.queue(&reply, conn, stream).await?;
        } else {
            group.insert(0, first);
            let running = group.into_iter().map(|args| {
                let mut alone = conn.for_key_command();
                async move { dispatch(&mut alone, args).await }
            });
            for reply in join_all(running).await {
                output.queue(&reply, conn, stream).await?;
                if conn.closing {
                    break;
                }
            }
        }
        output.end_group();
        if conn.closing {
            return Ok(());
        }
    }
    Ok(())
}

/// The replies queued for one connection and the bounds on them.
#[derive(Debug)]
struct Output {
    /// Encoded replies not yet written.
    queued: BytesMut,
    /// The hard limit: most bytes `queued` may hold.
    max: usize,
    /// The largest reply seen lately (halved after each group): the guess at
    /// how large the next replies will be, to size the next group. It starts
    /// at the largest value a client can store.
    recent_largest: usize,
    /// The largest reply of the running group.
    group_largest: usize,
}

impl Output {
    fn new(max: usize, max_bulk: usize) -> Output {
        Output {
            queued: BytesMut::with_capacity(16 << 10),
            max,
            recent_largest: max_bulk,
            group_largest: 0,
        }
    }

    /// Most commands of a pipeline to run at once: their replies are held
    /// until the whole group is done, so the group's expected replies must
    /// fit within the hard limit.
    fn group_limit(&self) -> usize {
        (self.max / self.recent_largest.max(1)).clamp(1, MAX_GROUP)
    }

    /// Notes the end of a group (or of a command run alone).
    fn end_group(&mut self) {
        self.recent_largest = (self.recent_largest / 2).max(self.group_largest);
        self.group_largest = 0;
    }

    /// Queues `reply`, first writing out what is queued if both would pass
    /// the hard limit, and after it if [`FLUSH_AT`] bytes are queued (each
    /// write waits for the socket: back-pressure). A reply larger than the
    /// hard limit by itself is not queued: the client gets an error in its
    /// place and the connection is marked closing.
    async fn queue(
        &mut self,
        reply: &Frame,
        conn: &mut Conn,
        stream: &mut TcpStream,
    ) -> io::Result<()> {
        let len = reply.encoded_len(conn.protocol);
        self.group_largest = self.group_largest.max(len);
        let stats = &conn.shared.stats;
        if len > self.max {
            stats
                .output_limit_disconnections
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                client = conn.id,
                peer = ?conn.peer,
                reply_bytes = len,
                limit = self.max,
                "closing a client: its reply exceeds the output buffer limit (--output-buffer-limit)"
            );
            Frame::err(format!(
                "reply of {len} bytes exceeds the output buffer limit of {} bytes; closing the connection",
                self.max
            ))
            .write(&mut self.queued, conn.protocol);
            conn.closing = true;
            return Ok(());
        }
        if self.queued.len() + len > self.max {
            self.flush(stream).await?;
        }
        reply.write(&mut self.queued, conn.protocol);
        let queued = u64::try_from(self.queued.len()).unwrap_or(u64::MAX);
        stats
            .peak_output_buffer
            .fetch_max(queued, Ordering::Relaxed);
        if self.queued.len() >= FLUSH_AT {
            self.flush(stream).await?;
        }
        Ok(())
    }

    /// Writes out everything queued, waiting until the socket takes it.
    async fn flush(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        if !self.queued.is_empty() {
            stream.write_all(&self.queued).await?;
            self.queued.clear();
            if self.queued.capacity() > KEEP_CAPACITY {
                // A large reply's room is given back, not kept while idle.
                self.queued = BytesMut::with_capacity(16 << 10);
            }
        }
        Ok(())
    }
}
