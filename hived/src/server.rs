//! The RESP server: accepts connections and serves each on its own task,
//! reading pipelined commands, running them in order and writing the replies
//! in as few writes as the pipeline allows.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::BytesMut;
use hive::Node;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use futures::future::join_all;

use crate::commands::{Args, Conn, Connected, Shared, Stats, dispatch, single_key};
use crate::resp::{Frame, Limits, parse};

/// Replies are written once this much is queued, even mid-pipeline.
const FLUSH_AT: usize = 64 << 10;

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
    /// The node's memory limit in bytes (0: none), as `CONFIG GET maxmemory`
    /// reports it.
    pub maxmemory: u64,
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
        let settings = vec![
            ("bind", local.ip().to_string()),
            ("port", local.port().to_string()),
            ("databases", "1".to_owned()),
            ("maxmemory", options.maxmemory.to_string()),
            // Writes past the limit are refused (OOM), never evicted.
            ("maxmemory-policy", "noeviction".to_owned()),
            ("proto-max-bulk-len", limits.max_bulk.to_string()),
            ("client-query-buffer-limit", max_query_buffer.to_string()),
            ("timeout", "0".to_owned()),
            // No keepalive probes are configured, and no protected mode.
            ("tcp-keepalive", "0".to_owned()),
            ("protected-mode", "no".to_owned()),
            // Hive keeps nothing on disk.
            ("save", String::new()),
            ("appendonly", "no".to_owned()),
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
            }),
            max_query_buffer,
            limits,
        })
    }

    /// Returns the address actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
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
    let mut output = BytesMut::with_capacity(16 << 10);
    loop {
        let mut pipeline = Vec::new();
        let mut broken = None;
        while pipeline.len() < MAX_PIPELINE {
            match parse(&mut input, &limits) {
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
            return stream.write_all(&output).await;
        }
        if let Some(err) = broken {
            Frame::err(&err).write(&mut output, conn.protocol);
            stream.write_all(&output).await?;
            return Ok(());
        }
        if full {
            // More complete commands may be buffered: run them before reading.
            continue;
        }
        if input.len() > max_buffer {
            Frame::err("Protocol error: query buffer limit exceeded")
                .write(&mut output, conn.protocol);
            stream.write_all(&output).await?;
            return Ok(());
        }
        if !output.is_empty() {
            stream.write_all(&output).await?;
            output.clear();
        }
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
/// sent. Stops after `QUIT`.
async fn run_pipeline(
    conn: &mut Conn,
    pipeline: Vec<Args>,
    stream: &mut TcpStream,
    output: &mut BytesMut,
) -> io::Result<()> {
    let mut commands = pipeline.into_iter().peekable();
    while let Some(first) = commands.next() {
        let mut group = Vec::new();
        if single_key(conn, &first).is_some() {
            while let Some(key) = commands.peek().and_then(|next| single_key(conn, next)) {
                let taken = std::iter::once(&first)
                    .chain(&group)
                    .any(|args: &Args| args[1] == *key);
                if taken || group.len() + 1 == MAX_GROUP {
                    break;
                }
                group.extend(commands.next());
            }
        }
        if group.is_empty() {
            dispatch(conn, first).await.write(output, conn.protocol);
            if conn.closing {
                return Ok(());
            }
        } else {
            group.insert(0, first);
            let running = group.into_iter().map(|args| {
                let mut alone = conn.for_key_command();
                async move { dispatch(&mut alone, args).await }
            });
            for reply in join_all(running).await {
                reply.write(output, conn.protocol);
            }
        }
        if output.len() >= FLUSH_AT {
            stream.write_all(output).await?;
            output.clear();
        }
    }
    Ok(())
}
