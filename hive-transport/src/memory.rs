//! The in-memory transport: a [`MemoryNetwork`] of servers keyed by address,
//! with links that tests can cut, for fast and deterministic cluster tests.
//!
//! Messages still go through protobuf encoding and the same conversion,
//! status mapping and server code as gRPC, and the same size bounds and
//! deadlines apply; only sockets and HTTP/2 are missing. Handlers run in the
//! caller's task, but a call yields to the runtime a seeded random number of
//! times before the server sees it and again before its caller sees the
//! answer, so concurrent calls interleave and overtake each other as they do
//! on a real network (a handler that ran inside its caller's first poll would
//! hide every such race). [`MemoryNetwork::seeded`] replays one order.
//!
//! # Layout
//! - this file: the network — who serves which address, which links are cut;
//! - `server.rs`: [`MemoryServer`], a registration that shuts down like a
//!   gRPC server;
//! - `client.rs`: [`MemoryClient`], the [`crate::PeerClient`] that routes
//!   through the network.

mod client;
mod server;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use client::MemoryClient;
pub use server::MemoryServer;

use crate::client::PeerAddr;
use crate::error::{Result, TransportError};
use crate::handler::PeerHandler;
use crate::options::TransportOptions;
use crate::service::{PeerService, WirePeer};

/// The first port handed out to servers that ask for port 0.
const FIRST_EPHEMERAL_PORT: u16 = 49152;

/// An in-memory network of peer servers. Cheap to clone; clones are the same
/// network.
///
/// A call from `a` to `b` gets through when a server serves `b` and the link
/// between `a` and `b` is up. Links are cut with [`cut`](Self::cut) (one pair,
/// both directions) or [`isolate`](Self::isolate) (every link of one node);
/// calls over a cut link fail at once with
/// [`TransportError::Unreachable`], and a call whose link is cut while it
/// runs loses its answer ([`TransportError::Interrupted`]: it may have run).
#[derive(Clone)]
pub struct MemoryNetwork {
    /// Shared by clones.
    state: Arc<Mutex<NetworkState>>,
    /// Woken whenever a stalled node resumes ([`MemoryNetwork::resume`]).
    resumed: Arc<tokio::sync::Notify>,
}

/// Servers and link state.
struct NetworkState {
    /// Who serves each address.
    servers: HashMap<PeerAddr, Registration>,
    /// Cut links, each stored once as `(lower, higher)`.
    cuts: HashSet<(PeerAddr, PeerAddr)>,
    /// Nodes cut from everyone.
    isolated: HashSet<PeerAddr>,
    /// Nodes whose server takes no calls until resumed (a paused process).
    stalled: HashSet<PeerAddr>,
    /// Source of registration ids, so a stale server handle never removes its
    /// successor.
    next_id: u64,
    /// Next port to try for servers asking for port 0.
    next_port: u16,
    /// Draws how long each call is held up ([`MemoryNetwork::delay`]).
    rng: fastrand::Rng,
    /// The seed `rng` started from.
    seed: u64,
}

/// At most this many yields to the runtime on each side of a call.
const MAX_YIELDS: u8 = 4;

/// One server's entry in the network.
struct Registration {
    /// Tells this registration from a later one on the same address.
    id: u64,
    /// The server's handler behind the protocol interface.
    service: Arc<dyn WirePeer>,
    /// The server's size bound.
    max_message_size: usize,
    /// Counts the calls in flight, so shutdown can wait for them.
    calls: TaskTracker,
}

/// Where a call goes: the server's side of it.
pub(crate) struct Route {
    /// The server's handler behind the protocol interface.
    pub(crate) service: Arc<dyn WirePeer>,
    /// The server's size bound.
    pub(crate) max_message_size: usize,
    /// Counts the server's calls in flight.
    pub(crate) calls: TaskTracker,
}

impl Default for MemoryNetwork {
    fn default() -> Self {
        MemoryNetwork::seeded(fastrand::u64(..))
    }
}

impl MemoryNetwork {
    /// Returns an empty network: no servers, every link up, deliveries
    /// reordered by a random seed ([`MemoryNetwork::seed`] tells which).
    pub fn new() -> Self {
        MemoryNetwork::default()
    }

    /// Returns an empty network whose deliveries are held up by draws from
    /// `seed`: on a single-threaded runtime, the same seed and the same calls
    /// give the same interleaving.
    pub fn seeded(seed: u64) -> Self {
        let state = NetworkState {
            servers: HashMap::new(),
            cuts: HashSet::new(),
            isolated: HashSet::new(),
            stalled: HashSet::new(),
            next_id: 0,
            next_port: 0,
            rng: fastrand::Rng::with_seed(seed),
            seed,
        };
        MemoryNetwork {
            state: Arc::new(Mutex::new(state)),
            resumed: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Returns the seed deliveries are reordered by: print it when a test
    /// fails, and replay with [`MemoryNetwork::seeded`].
    pub fn seed(&self) -> u64 {
        self.lock().seed
    }

    /// Holds a delivery up for a random number of yields to the runtime, so
    /// that calls in flight together reach their servers (and their answers
    /// their callers) in a seeded, shuffled order.
    pub(crate) async fn delay(&self) {
        let yields = self.lock().rng.u8(..=MAX_YIELDS);
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
    }

    /// Starts serving `handler` at `addr` and returns the server. With port 0
    /// a free port is chosen (see [`MemoryServer::local_addr`]). Fails with
    /// [`TransportError::Bind`] if another server serves `addr`.
    pub fn serve<H: PeerHandler>(
        &self,
        addr: PeerAddr,
        handler: H,
        options: TransportOptions,
    ) -> Result<MemoryServer> {
        let abort = CancellationToken::new();
        let service: Arc<dyn WirePeer> = Arc::new(PeerService::new(handler, abort.clone()));
        let calls = TaskTracker::new();
        let mut state = self.lock();
        let addr = if addr.port() == 0 {
            state.free_port(addr)?
        } else {
            addr
        };
        if state.servers.contains_key(&addr) {
            return Err(TransportError::Bind {
                addr,
                source: std::io::ErrorKind::AddrInUse.into(),
            });
        }
        state.next_id += 1;
        let id = state.next_id;
        state.servers.insert(
            addr,
            Registration {
                id,
                service,
                max_message_size: options.max_message_size,
                calls: calls.clone(),
            },
        );
        Ok(MemoryServer::new(
            self.clone(),
            addr,
            id,
            abort,
            calls,
            options.shutdown_grace,
        ))
    }

    /// Returns a client whose calls come from `from` (the address links are
    /// checked against, normally the caller's own server address).
    pub fn client(&self, from: PeerAddr, options: TransportOptions) -> MemoryClient {
        MemoryClient::new(self.clone(), from, options)
    }

    /// Cuts the link between `a` and `b`, both directions.
    pub fn cut(&self, a: PeerAddr, b: PeerAddr) {
        self.lock().cuts.insert(pair(a, b));
    }

    /// Restores the link between `a` and `b` cut by [`cut`](Self::cut). Does
    /// not undo [`isolate`](Self::isolate).
    pub fn heal(&self, a: PeerAddr, b: PeerAddr) {
        self.lock().cuts.remove(&pair(a, b));
    }

    /// Cuts every link of `node`, including links to nodes that join later.
    pub fn isolate(&self, node: PeerAddr) {
        self.lock().isolated.insert(node);
    }

    /// Undoes [`isolate`](Self::isolate) for `node`; links cut one by one stay
    /// cut.
    pub fn rejoin(&self, node: PeerAddr) {
        self.lock().isolated.remove(&node);
    }

    /// Stalls `node` as a paused process would be: calls to it are held,
    /// unanswered, until [`resume`](Self::resume) (or their deadline).
    pub fn stall(&self, node: PeerAddr) {
        self.lock().stalled.insert(node);
    }

    /// Lets the calls held by [`stall`](Self::stall) through.
    pub fn resume(&self, node: PeerAddr) {
        self.lock().stalled.remove(&node);
        self.resumed.notify_waiters();
    }

    /// Returns once `node` is not stalled.
    pub(crate) async fn unstalled(&self, node: PeerAddr) {
        loop {
            // Registered before the check, so a resume in between is seen.
            let resumed = self.resumed.notified();
            if !self.lock().stalled.contains(&node) {
                return;
            }
            resumed.await;
        }
    }

    /// Restores every link.
    pub fn heal_all(&self) {
        let mut state = self.lock();
        state.cuts.clear();
        state.isolated.clear();
    }

    /// Returns whether the link between `a` and `b` is up (a node always
    /// reaches itself).
    pub fn is_linked(&self, a: PeerAddr, b: PeerAddr) -> bool {
        self.lock().is_linked(a, b)
    }

    /// Returns the server side of a call from `from` to `to`, or why it cannot
    /// get there.
    pub(crate) fn route(&self, from: PeerAddr, to: PeerAddr) -> Result<Route> {
        let state = self.lock();
        if !state.is_linked(from, to) {
            return Err(link_cut(from, to));
        }
        let server = state
            .servers
            .get(&to)
            .ok_or_else(|| TransportError::Unreachable {
                peer: to,
                reason: "nothing serves this address".to_string(),
            })?;
        Ok(Route {
            service: Arc::clone(&server.service),
            max_message_size: server.max_message_size,
            calls: server.calls.clone(),
        })
    }

    /// Removes registration `id` from `addr`, if it is still there.
    pub(crate) fn unregister(&self, addr: PeerAddr, id: u64) {
        let mut state = self.lock();
        if state
            .servers
            .get(&addr)
            .is_some_and(|server| server.id == id)
        {
            state.servers.remove(&addr);
        }
    }

    /// Returns the state, locked.
    fn lock(&self) -> MutexGuard<'_, NetworkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl NetworkState {
    /// Returns whether the link between `a` and `b` is up.
    fn is_linked(&self, a: PeerAddr, b: PeerAddr) -> bool {
        a == b
            || !(self.isolated.contains(&a)
                || self.isolated.contains(&b)
                || self.cuts.contains(&pair(a, b)))
    }

    /// Returns `addr` with a port no server uses.
    fn free_port(&mut self, addr: PeerAddr) -> Result<PeerAddr> {
        for _ in 0..=u16::MAX {
            let port = self.next_port.max(FIRST_EPHEMERAL_PORT);
            self.next_port = port.checked_add(1).unwrap_or(FIRST_EPHEMERAL_PORT);
            let candidate = PeerAddr::new(addr.ip(), port);
            if !self.servers.contains_key(&candidate) {
                return Ok(candidate);
            }
        }
        Err(TransportError::Bind {
            addr,
            source: std::io::ErrorKind::AddrInUse.into(),
        })
    }
}

impl fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        let mut servers: Vec<_> = state.servers.keys().collect();
        servers.sort();
        f.debug_struct("MemoryNetwork")
            .field("servers", &servers)
            .field("cuts", &state.cuts)
            .field("isolated", &state.isolated)
            .field("seed", &state.seed)
            .finish_non_exhaustive()
    }
}

/// Returns the link between `a` and `b` in its stored orientation.
fn pair(a: PeerAddr, b: PeerAddr) -> (PeerAddr, PeerAddr) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Returns the error of a call over the cut link from `from` to `to`.
pub(crate) fn link_cut(from: PeerAddr, to: PeerAddr) -> TransportError {
    TransportError::Unreachable {
        peer: to,
        reason: format!("the link from {from} is cut"),
    }
}
