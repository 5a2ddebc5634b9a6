//! The command table: every command `hived` knows, with its arity, flags and
//! key positions (what `COMMAND` reports) and its handler (what dispatch
//! runs). One module per command family; each exports its slice of the table.

mod connection;
mod hashes;
mod keys;
mod lists;
mod persistence;
mod scan;
mod server;
mod sets;
mod strings;
mod zsets;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub use persistence::ShutdownMode;

use bytes::Bytes;
use hive::raw::{Op, Reply};
use hive::{Cache, Error, Node};

use crate::resp::{Frame, Protocol};

/// The arguments of one command, the command name first.
pub(crate) type Args = Vec<Bytes>;

/// A boxed handler future; handlers borrow the connection while they run.
pub(crate) type Running<'a> = std::pin::Pin<Box<dyn Future<Output = Frame> + Send + 'a>>;

/// Runs one command for a connection.
pub(crate) type Handler = for<'a> fn(&'a mut Conn, Args) -> Running<'a>;

/// Turns `async fn name(&mut Conn, Args) -> Frame` into a table [`Handler`].
macro_rules! handler {
    ($run:path) => {{
        fn run<'a>(
            conn: &'a mut $crate::commands::Conn,
            args: $crate::commands::Args,
        ) -> $crate::commands::Running<'a> {
            Box::pin($run(conn, args))
        }
        run as $crate::commands::Handler
    }};
}
pub(crate) use handler;

/// One entry of the command table.
#[derive(Debug)]
pub(crate) struct Command {
    /// Lower-case name, as `COMMAND` reports it.
    pub name: &'static str,
    /// Redis arity: `n` exactly `n` arguments (name included), `-n` at least `n`.
    pub arity: i32,
    /// Redis command flags (`write`, `readonly`, `fast`, ...).
    pub flags: &'static [&'static str],
    /// First key argument, last key argument (negative: from the end) and step;
    /// `0, 0, 0` for commands without keys.
    pub keys: (i32, i32, i32),
    /// The documentation group (`string`, `hash`, ...).
    pub group: &'static str,
    /// One line for `COMMAND DOCS`.
    pub summary: &'static str,
    pub run: Handler,
}

/// What the server shares with every connection.
#[derive(Debug)]
pub(crate) struct Shared {
    pub node: Arc<Node>,
    pub cache: Cache,
    /// `requirepass`: connections must `AUTH` first when set.
    pub password: Option<String>,
    pub next_client_id: AtomicU64,
    /// Counters `INFO` reports.
    pub stats: Stats,
    /// What `CONFIG GET` reports: name and value, every one true of this server.
    pub settings: Vec<(&'static str, String)>,
    /// True for a cluster member: commands may wait on other nodes, so a
    /// pipeline's commands on distinct keys run concurrently.
    pub clustered: bool,
    /// Most reply bytes a connection may have queued (`--output-buffer-limit`):
    /// larger replies cost the client its connection, and random picks
    /// that could be larger are refused up front ([`bound_reply`]).
    pub max_output_buffer: usize,
    /// Set by `SHUTDOWN`: the server's owner stops it ([`Server::shutdown_requests`](crate::Server::shutdown_requests)).
    pub shutdown: tokio::sync::watch::Sender<Option<ShutdownMode>>,
    /// Work a command started and left running (`BGSAVE`): the server waits
    /// for it before it stops.
    pub background: tokio_util::task::TaskTracker,
}

/// Server-wide counters for `INFO`'s clients and stats sections.
#[derive(Debug)]
pub(crate) struct Stats {
    pub started: Instant,
    /// When the server started, on the wall clock (`LASTSAVE` without `--dir`).
    pub started_at: SystemTime,
    /// The port clients connect to (`INFO`'s `tcp_port`).
    pub port: u16,
    pub connected_clients: AtomicU64,
    pub connections_received: AtomicU64,
    pub commands_processed: AtomicU64,
    /// The most reply bytes any connection has had queued at once.
    pub peak_output_buffer: AtomicU64,
    /// Clients disconnected for a reply over the output buffer limit.
    pub output_limit_disconnections: AtomicU64,
}

impl Stats {
    pub(crate) fn new(port: u16) -> Stats {
        Stats {
            started: Instant::now(),
            started_at: SystemTime::now(),
            port,
            connected_clients: AtomicU64::new(0),
            connections_received: AtomicU64::new(0),
            commands_processed: AtomicU64::new(0),
            peak_output_buffer: AtomicU64::new(0),
            output_limit_disconnections: AtomicU64::new(0),
        }
    }
}

/// One client connection's state.
#[derive(Debug)]
pub(crate) struct Conn {
    pub shared: Arc<Shared>,
    pub protocol: Protocol,
    pub authenticated: bool,
    pub id: u64,
    pub name: Option<Bytes>,
    /// What `CLIENT SETINFO` recorded: the client library and its version.
    pub lib_name: String,
    pub lib_ver: String,
    /// The client's address and the address it connected to.
    pub peer: Option<SocketAddr>,
    pub local: Option<SocketAddr>,
    /// Set by `QUIT`: close once the reply is written.
    pub closing: bool,
}

impl Conn {
    pub(crate) fn new(
        shared: Arc<Shared>,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
    ) -> Conn {
        let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
        Conn {
            authenticated: shared.password.is_none(),
            shared,
            protocol: Protocol::Resp2,
            id,
            name: None,
            lib_name: String::new(),
            lib_ver: String::new(),
            peer,
            local,
            closing: false,
        }
    }

    /// Runs `op` on `key` as given (no namespace).
    pub(crate) async fn run(&self, key: &[u8], op: Op) -> Result<Reply, Error> {
        self.shared.cache.execute_raw(key, op).await
    }

    /// A copy to run one single-key command on while the connection runs
    /// others (see [`single_key`]): the same server, protocol and
    /// authentication. The connection's own state (name, library) is left
    /// out: single-key commands neither read nor change it.
    pub(crate) fn for_key_command(&self) -> Conn {
        Conn {
            shared: self.shared.clone(),
            protocol: self.protocol,
            authenticated: self.authenticated,
            id: self.id,
            name: None,
            lib_name: String::new(),
            lib_ver: String::new(),
            peer: self.peer,
            local: self.local,
            closing: false,
        }
    }
}

/// Counts a client in `INFO`'s `connected_clients` while it lives.
#[derive(Debug)]
pub(crate) struct Connected(Arc<Shared>);

impl Connected {
    pub(crate) fn new(shared: Arc<Shared>) -> Connected {
        let stats = &shared.stats;
        stats.connected_clients.fetch_add(1, Ordering::Relaxed);
        stats.connections_received.fetch_add(1, Ordering::Relaxed);
        Connected(shared)
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.0
            .stats
            .connected_clients
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every command, by family.
pub(crate) fn table() -> impl Iterator<Item = &'static Command> {
    [
        connection::COMMANDS,
        keys::COMMANDS,
        strings::COMMANDS,
        hashes::COMMANDS,
        lists::COMMANDS,
        persistence::COMMANDS,
        server::COMMANDS,
        sets::COMMANDS,
        zsets::COMMANDS,
    ]
    .into_iter()
    .flatten()
}

static BY_NAME: LazyLock<HashMap<&'static str, &'static Command>> =
    LazyLock::new(|| table().map(|command| (command.name, command)).collect());

/// Longest command name in the table, with room to spare.
const MAX_NAME: usize = 32;

/// Looks a command up by name, in any case (lower-cased on the stack: this
/// runs for every request).
pub(crate) fn lookup(name: &[u8]) -> Option<&'static Command> {
    if name.len() > MAX_NAME {
        return None;
    }
    let mut lower = [0u8; MAX_NAME];
    let lower = &mut lower[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    BY_NAME.get(std::str::from_utf8(lower).ok()?).copied()
}

/// Returns the key of a command that touches that one key and nothing else
/// (no connection state, no other key), so it may run concurrently with
/// commands on other keys; `None` for every other command, and for every
/// command of a standalone server.
pub(crate) fn single_key<'a>(conn: &Conn, args: &'a Args) -> Option<&'a Bytes> {
    if !conn.shared.clustered {
        // Standalone, every command completes without waiting: nothing to
        // overlap, and the commands run strictly in order, as in Redis.
        return None;
    }
    let command = lookup(args.first()?)?;
    (conn.authenticated && command.keys == (1, 1, 1))
        .then(|| args.get(1))
        .flatten()
}

/// Runs one command: lookup, arity, authentication, then its handler.
pub(crate) async fn dispatch(conn: &mut Conn, args: Args) -> Frame {
    let Some(name) = args.first() else {
        return Frame::err("empty command");
    };
    let Some(command) = lookup(name) else {
        let shown: Vec<String> = args[1..]
            .iter()
            .map(|arg| format!("'{}'", String::from_utf8_lossy(arg)))
            .collect();
        return Frame::err(format!(
            "unknown command '{}', with args beginning with: {}",
            String::from_utf8_lossy(name),
            shown.join(" ")
        ));
    };
    if !conn.authenticated && !matches!(command.name, "auth" | "hello" | "quit" | "reset") {
        return Frame::Error("NOAUTH Authentication required.".into());
    }
    let count = i32::try_from(args.len()).unwrap_or(i32::MAX);
    let arity_ok = if command.arity >= 0 {
        count == command.arity
    } else {
        count >= -command.arity
    };
    if !arity_ok {
        return Frame::err(format!(
            "wrong number of arguments for '{}' command",
            command.name
        ));
    }
    let started = crate::metrics::enabled().then(Instant::now);
    let reply = (command.run)(conn, args).await;
    conn.shared
        .stats
        .commands_processed
        .fetch_add(1, Ordering::Relaxed);
    if let Some(started) = started {
        crate::metrics::record(command.name, &reply, started.elapsed());
    }
    reply
}

/// The reply for a failed operation, in Redis's words.
pub(crate) fn error_frame(err: &Error) -> Frame {
    match err {
        Error::WrongType => {
            Frame::Error("WRONGTYPE Operation against a key holding the wrong kind of value".into())
        }
        Error::CapacityExceeded => {
            Frame::Error("OOM command not allowed when used memory > 'maxmemory'.".into())
        }
        // Surely not run: clients retry TRYAGAIN on their own.
        Error::Unavailable(reason) => Frame::Error(format!("TRYAGAIN {reason}")),
        // May have run: a prefix no client retries, so an INCR never counts twice.
        Error::Indeterminate(reason) => Frame::Error(format!("INDETERMINATE {reason}")),
        Error::ShuttingDown => Frame::err("the server is shutting down"),
        Error::NotFound => Frame::err("no such key"),
        Error::InvalidArgument(message) | Error::Codec(message) => Frame::err(message),
        // `hive::Error` is non-exhaustive: a kind added later still gets a reply.
        other => Frame::err(other),
    }
}

/// In-memory bytes of one reply element besides its encoding: the reply is
/// built as frames before it is encoded.
const FRAME_BYTES: usize = std::mem::size_of::<Frame>();

/// Checks, before anything is allocated for it, a reply of `count` elements
/// of at most `element` encoded bytes each, for commands whose client picks
/// the count (random picks that may repeat): refused, with nothing changed,
/// if its encoding plus its frames could pass the connection's output buffer
/// limit. Redis would send it; `hived` would only drop the client over it.
pub(crate) fn bound_reply(conn: &Conn, count: u64, element: usize) -> Result<usize, Frame> {
    let limit = conn.shared.max_output_buffer;
    let per_element = u64::try_from(element.saturating_add(FRAME_BYTES)).unwrap_or(u64::MAX);
    count
        .checked_mul(per_element)
        .filter(|bytes| *bytes <= u64::try_from(limit).unwrap_or(u64::MAX))
        .and_then(|_| usize::try_from(count).ok())
        .ok_or_else(|| {
            Frame::err(format!(
                "value is out of range: a reply of {count} elements could exceed the client \
                 output buffer limit of {limit} bytes"
            ))
        })
}

/// Parses an integer argument as Redis does.
pub(crate) fn int_arg(arg: &[u8]) -> Result<i64, Frame> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| Frame::err("value is not an integer or out of range"))
}

/// Parses a float argument as Redis does (`inf`, `-inf`, `+inf` accepted; NaN refused).
pub(crate) fn float_arg(arg: &[u8]) -> Result<f64, Frame> {
    let text = std::str::from_utf8(arg).map_err(|_| float_error())?;
    let value: f64 = match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        lower if lower.contains("nan") || text.trim() != text => return Err(float_error()),
        _ => text.parse().map_err(|_| float_error())?,
    };
    Ok(value)
}

fn float_error() -> Frame {
    Frame::err("value is not a valid float")
}

/// Returns the current Unix time in milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Returns true if `arg` equals `word`, ignoring ASCII case.
pub(crate) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_listed_once_with_a_valid_shape() {
        let mut seen = std::collections::HashSet::new();
        for command in table() {
            assert!(seen.insert(command.name), "{} listed twice", command.name);
            assert_eq!(command.name, command.name.to_ascii_lowercase());
            assert_ne!(command.arity, 0, "{}", command.name);
            assert!(!command.summary.is_empty(), "{}", command.name);
            let (first, _, step) = command.keys;
            assert!(first >= 0 && step >= 0, "{}", command.name);
            assert!(command.name.len() <= MAX_NAME, "{}", command.name);
            assert!(lookup(command.name.to_uppercase().as_bytes()).is_some());
        }
    }

    #[test]
    fn floats_parse_like_redis() {
        assert_eq!(float_arg(b"1.5"), Ok(1.5));
        assert_eq!(float_arg(b"-inf"), Ok(f64::NEG_INFINITY));
        assert_eq!(float_arg(b"+inf"), Ok(f64::INFINITY));
        assert!(float_arg(b"nan").is_err());
        assert!(float_arg(b" 1").is_err());
        assert!(float_arg(b"abc").is_err());
        assert_eq!(int_arg(b"-12"), Ok(-12));
        assert!(int_arg(b"1.0").is_err());
    }
}
