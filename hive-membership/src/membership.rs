//! [`Membership`]: one running gossip node — start, view, leave, stop.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use memberlist::error::Error as MlError;
use memberlist::net::NetTransportOptions;
use memberlist::tokio::{TokioSocketAddrResolver, TokioTcp};
use smol_str::SmolStr;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::MembershipConfig;
use crate::delegate::{LocalMeta, Ml, hive_delegate};
use crate::driver;
use crate::error::{MembershipError, Result};
use crate::event::Events;
use crate::gate::Gate;
use crate::join;
use crate::member::{MemberInfo, MemberState};
use crate::meta::{NodeMeta, WireMeta};
use crate::preset::memberlist_options;
use crate::reconnect;
use crate::tracker::{Notice, Tracker};

/// Attempts at creating the node when binding port 0: the OS picks a free TCP
/// port and memberlist binds UDP on the same number, which may be taken.
const BIND_ATTEMPTS_ON_PORT_0: usize = 5;

/// Shortest wait handed to memberlist: it treats a zero timeout as "forever".
const MIN_MEMBERLIST_WAIT: Duration = Duration::from_millis(1);

/// A running membership node.
///
/// Stopping: [`Membership::leave`] then [`Membership::shutdown`] is a graceful
/// exit (peers report `Left`); [`Membership::shutdown`] alone, or dropping the
/// value, is a crash as far as peers can tell (they report `Failed`). Dropping
/// stops the node in the background without waiting; `shutdown` waits for it.
/// Either way no task or socket outlives the stop.
pub struct Membership {
    id: String,
    gossip_addr: SocketAddr,
    /// What this node advertises now (its incarnation may be renewed).
    meta: Mutex<NodeMeta>,
    ml: Ml,
    local_meta: Arc<LocalMeta>,
    tracker: Arc<Mutex<Tracker>>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership")
            .field("id", &self.id)
            .field("gossip_addr", &self.gossip_addr)
            .field("meta", &self.local_meta())
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// Starts a node: validates `config`, binds the gossip sockets, then joins the
    /// seeds (all of them, skipping our own address) within `join_timeout`.
    /// Without seeds the node starts alone, as the first member.
    ///
    /// # Errors
    /// [`MembershipError::InvalidConfig`], [`MembershipError::Meta`] (metadata too
    /// large), [`MembershipError::Bind`], [`MembershipError::NoSeedReachable`], or
    /// [`MembershipError::Incompatible`] when the seeds' cluster uses another
    /// replication factor or protocol version. On error nothing keeps running.
    pub async fn start(config: MembershipConfig) -> Result<(Membership, Events)> {
        config.validate()?;
        let local_meta = Arc::new(LocalMeta::new(&WireMeta {
            meta: config.meta,
            leaving: false,
        })?);
        let gate = Arc::new(Gate::new(SmolStr::new(&config.node_id), config.meta));
        let (notice_tx, notice_rx) = mpsc::unbounded_channel();
        let ml = create(&config, &gate, &notice_tx, &local_meta).await?;
        drop(notice_tx); // the delegate inside `ml` holds the sender from now on

        let tracker = Arc::new(Mutex::new(Tracker::new(config.node_id.clone())));
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(driver::run(
            ml.clone(),
            notice_rx,
            tracker.clone(),
            event_tx.clone(),
            cancel.clone(),
        ));
        tasks.spawn(reconnect::run(
            ml.clone(),
            tracker.clone(),
            event_tx,
            cancel.clone(),
            config
                .reconnect_interval
                .unwrap_or_else(|| config.preset.reconnect_interval()),
            config.reconnect_timeout,
        ));
        tasks.close();
        let membership = Membership {
            id: config.node_id.clone(),
            gossip_addr: *ml.advertise_address(),
            meta: Mutex::new(config.meta),
            ml,
            local_meta,
            tracker,
            cancel,
            tasks,
        };

        let seeds = join::seeds_to_join(&config.seeds, &[membership.gossip_addr, config.bind]);
        if !seeds.is_empty() {
            match join::join_seeds(&membership.ml, &gate, &seeds, config.join_timeout).await {
                Ok(joined) => {
                    tracing::debug!(id = %membership.id, joined, "joined the cluster");
                }
                Err(error) => {
                    membership.shutdown().await;
                    return Err(error);
                }
            }
        }
        Ok((membership, Events::new(event_rx)))
    }

    /// Returns this node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Returns the address this node gossips on, as peers see it: the advertised
    /// address, or the bound one (with the real port when `bind` used port 0).
    pub fn local_gossip_addr(&self) -> SocketAddr {
        self.gossip_addr
    }

    /// Returns the metadata this node advertises.
    pub fn local_meta(&self) -> NodeMeta {
        *self.meta.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Advertises `incarnation` from now on, as a node would after a restart:
    /// peers that knew the node report it [`MembershipEvent::Restarted`] (or,
    /// if they had declared it failed, `Joined`). For a node that finds it was
    /// away long enough to have been declared failed (its process was paused),
    /// and so cannot know what it missed. Waits at most `timeout` for
    /// memberlist to gossip the change (it spreads anyway).
    ///
    /// [`MembershipEvent::Restarted`]: crate::MembershipEvent::Restarted
    ///
    /// # Errors
    /// [`MembershipError::NotRunning`] once the node stopped or left.
    pub async fn renew_incarnation(&self, incarnation: u64, timeout: Duration) -> Result<()> {
        let meta = {
            let mut meta = self.meta.lock().unwrap_or_else(PoisonError::into_inner);
            meta.incarnation = incarnation;
            *meta
        };
        self.local_meta.set(&WireMeta {
            meta,
            leaving: false,
        })?;
        match self.ml.update_node(timeout.max(MIN_MEMBERLIST_WAIT)).await {
            Ok(()) => Ok(()),
            Err(MlError::NotRunning) => Err(MembershipError::NotRunning),
            Err(error) => {
                tracing::debug!(id = %self.id, %error, "the new incarnation is not confirmed as gossiped yet");
                Ok(())
            }
        }
    }

    /// Returns every member this node knows, itself included, sorted by id: live
    /// ones as `Alive` (suspected ones too, see [`MemberState`]), departed ones as
    /// `Left` or `Dead` until they are forgotten (`reconnect_timeout` after
    /// they departed).
    pub async fn members(&self) -> Vec<MemberInfo> {
        // All first, then the online ones: a member joining in between is simply
        // not listed yet, rather than listed as not online.
        let all = self.ml.members().await;
        let online: HashSet<SmolStr> = self
            .ml
            .online_members()
            .await
            .iter()
            .map(|node| node.id().clone())
            .collect();
        let tracker = self.tracker.lock().unwrap_or_else(PoisonError::into_inner);
        let mut members: Vec<MemberInfo> = all
            .iter()
            .filter_map(|node| {
                let wire = WireMeta::decode(node.meta()).ok()?;
                let id = node.id().to_string();
                let state = if online.contains(node.id()) {
                    MemberState::Alive
                } else if id == self.id {
                    // We only go offline in our own view by leaving.
                    MemberState::Left
                } else if tracker.tracks(&id) {
                    tracker.departed_state(&id)
                } else {
                    // Forgotten after `reconnect_timeout` (memberlist itself
                    // never forgets, see `preset.rs`), or only ever heard of
                    // as departed.
                    return None;
                };
                Some(MemberInfo {
                    id,
                    gossip_addr: *node.address(),
                    meta: wire.meta,
                    state,
                })
            })
            .collect();
        drop(tracker);
        members.sort_by(|a, b| a.id.cmp(&b.id));
        members
    }

    /// Returns the number of live members, this node included.
    pub async fn alive_count(&self) -> usize {
        self.ml.num_online_members().await
    }

    /// Leaves the cluster gracefully, so peers report [`MembershipEvent::Left`]
    /// rather than `Failed`. Call [`Membership::shutdown`] afterwards.
    ///
    /// memberlist reports a leave like a failure (gotcha 2), so this first
    /// advertises metadata with the `leaving` flag and waits until memberlist has
    /// finished gossiping that update — the point where its protocol considers
    /// the update spread (`retransmit_mult × ⌈log10(n+1)⌉` transmissions; about
    /// one gossip interval in a small cluster) — for at most half of `timeout`. Then it
    /// broadcasts memberlist's leave and waits for it to go out, within the rest
    /// of `timeout`.
    ///
    /// [`MembershipEvent::Left`]: crate::MembershipEvent::Left
    ///
    /// # Errors
    /// [`MembershipError::LeaveTimeout`] if the leave could not be confirmed (the
    /// node has left anyway), [`MembershipError::NotRunning`] after a previous
    /// leave.
    pub async fn leave(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let deadline = started + timeout;
        self.local_meta.set(&WireMeta {
            meta: self.local_meta(),
            leaving: true,
        })?;
        match self
            .ml
            .update_node((timeout / 2).max(MIN_MEMBERLIST_WAIT))
            .await
        {
            Ok(()) => {}
            Err(MlError::NotRunning) => return Err(MembershipError::NotRunning),
            Err(error) => {
                // Still leave: peers that missed the flag report a failure.
                tracing::warn!(id = %self.id, %error, "leaving flag not confirmed as gossiped");
            }
        }
        let rest = deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_MEMBERLIST_WAIT);
        match self.ml.leave(rest).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MembershipError::NotRunning),
            Err(MlError::LeaveTimeout) => Err(MembershipError::LeaveTimeout {
                waited: started.elapsed(),
            }),
            Err(error) => Err(MembershipError::Gossip {
                operation: "leave",
                reason: error.to_string(),
            }),
        }
    }

    /// Stops the node without announcing a leave (peers report `Failed`, unless
    /// [`Membership::leave`] ran first) and waits until the owner task has shut
    /// memberlist down: its transport is closed and its own background tasks
    /// have been told to stop (they exit within moments, releasing the sockets).
    /// memberlist logs a few ERROR lines while it stops; they are expected
    /// (gotcha 5). The event stream ends afterwards.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.wait().await;
    }
}

impl Drop for Membership {
    /// Stops the node as a crash would: no leave. The owner task shuts memberlist
    /// down; dropping the handle alone would leave it running (gotcha 1).
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Creates the memberlist node, retrying a few times if port 0 was requested.
async fn create(
    config: &MembershipConfig,
    gate: &Arc<Gate>,
    notices: &mpsc::UnboundedSender<Notice>,
    local_meta: &Arc<LocalMeta>,
) -> Result<Ml> {
    let attempts = if config.bind.port() == 0 {
        BIND_ATTEMPTS_ON_PORT_0
    } else {
        1
    };
    let mut attempt = 1;
    loop {
        let mut transport = NetTransportOptions::<SmolStr, TokioSocketAddrResolver, TokioTcp>::new(
            SmolStr::new(&config.node_id),
        );
        transport.add_bind_address(config.bind);
        if let Some(advertise) = config.advertise {
            transport = transport.with_advertise_address(advertise);
        }
        let delegate = hive_delegate(gate.clone(), notices.clone(), local_meta.clone());
        match Ml::with_delegate(delegate, transport, memberlist_options(config)).await {
            Ok(ml) => return Ok(ml),
            Err(error) if attempt < attempts => {
                tracing::debug!(%error, attempt, "could not bind gossip sockets, retrying");
                attempt += 1;
            }
            Err(error) => {
                return Err(MembershipError::Bind {
                    addr: config.bind,
                    reason: error.to_string(),
                });
            }
        }
    }
}
