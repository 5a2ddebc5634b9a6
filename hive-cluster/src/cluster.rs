//! A running cluster node: the peer RPC server, the membership, and one driver
//! task that turns membership events into views and, after a quiet
//! `rebalance_debounce`, moves data to match the newest view.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use hive_membership::{
    Events, MemberInfo, MemberState, Membership, MembershipConfig, MembershipEvent, NodeMeta,
    SizeLimits,
};
use hive_store::{Kind, Op, Reply, Store};
use hive_transport::{GrpcClient, GrpcServer, PROTOCOL_VERSION, TransportOptions};
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ClusterConfig;
use crate::error::{ClusterError, Result};
use crate::rebalance;
use crate::shared::{Handler, Shared};
use crate::tombstones::Burials;
use crate::view::{Peer, View};
use crate::wire::message_limit;

/// How often a node that finished moving data asks the other members whether
/// they have too (then the earlier views can be forgotten).
const SETTLED_POLL: Duration = Duration::from_millis(100);

/// How often a node whose view changed asks the other members whether they
/// have it too. Operations on keys changing primary wait for that agreement,
/// so it is asked often, and only while a change is new.
const AGREE_POLL: Duration = Duration::from_millis(10);

/// Pause before the first retry of a rebalance that did not complete; it
/// doubles with every failure in a row, up to [`REBALANCE_RETRY_MAX`].
const REBALANCE_RETRY: Duration = Duration::from_millis(200);
const REBALANCE_RETRY_MAX: Duration = Duration::from_secs(2);

/// How long a leaving node waits for every other member to see it leave
/// before its last hand-off.
const LEAVE_AGREEMENT: Duration = Duration::from_secs(3);

/// Hand-off passes a leaving node makes at most: each sends what arrived
/// since the previous one.
const HANDOFF_PASSES: usize = 5;

/// How often the driver notes that it is running: a longer gap means this
/// process was paused (SIGSTOP, a VM freeze) — see [`Timing::away_after`].
const HEARTBEAT: Duration = Duration::from_millis(100);

/// How long a node waits for memberlist to gossip its renewed incarnation
/// before the driver goes on (it spreads anyway).
const RENEW_WAIT: Duration = Duration::from_millis(500);

/// What this node knows of one member, for status reports.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberReport {
    /// Its node id.
    pub id: String,
    /// Its gossip address.
    pub gossip_addr: SocketAddr,
    /// Its peer RPC address.
    pub rpc_addr: SocketAddr,
    /// Its state as last seen.
    pub state: MemberState,
    /// Fraction of the keyspace it is primary for (0 unless alive).
    pub ring_share: f64,
}

/// A running cluster node. [`Cluster::shutdown`] leaves gracefully, handing data
/// off first; dropping it stops everything abruptly, as a crash would.
#[derive(Debug)]
pub struct Cluster {
    shared: Arc<Shared<GrpcClient>>,
    roster: Arc<RwLock<BTreeMap<String, MemberReport>>>,
    membership: Option<Arc<Membership>>,
    server: Option<GrpcServer>,
    gossip_addr: SocketAddr,
    rpc_addr: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Cluster {
    /// Binds the peer server, joins the seeds and starts the driver; returns once
    /// the node serves requests.
    pub async fn start(config: ClusterConfig, store: Arc<Store>) -> Result<Cluster> {
        let options = TransportOptions {
            max_message_size: message_limit(store.limits()),
            ..TransportOptions::default()
        };
        let replication_factor = config.replication_factor.max(1);
        let view = View::new(replication_factor);
        let shared = Arc::new(Shared::new(
            config.node_id.clone(),
            store,
            GrpcClient::new(options.clone()),
            view,
            config.request_timeout,
            options.max_message_size,
        ));
        let server = GrpcServer::bind(config.rpc_bind, Handler(shared.clone()), options).await?;
        let rpc_addr = advertised(server.local_addr(), config.advertise);
        let meta = NodeMeta {
            rpc_addr,
            vnodes: config.vnodes,
            replication_factor: u32::try_from(replication_factor).unwrap_or(u32::MAX),
            protocol_version: PROTOCOL_VERSION,
            incarnation: new_incarnation(),
            size_limits: size_limits(shared.store.limits()),
        };
        let mut membership_config =
            MembershipConfig::new(config.node_id.clone(), config.gossip_bind, meta);
        membership_config.advertise = config.advertise;
        membership_config.seeds = config.seeds.clone();
        membership_config.preset = config.preset;
        membership_config.gossip_interval = config.gossip_interval;
        membership_config.gossip_fanout = config.gossip_fanout;
        membership_config.join_timeout = config.join_timeout;
        membership_config.reconnect_timeout = config.reconnect_timeout;
        let (membership, events) = match Membership::start(membership_config).await {
            Ok(started) => started,
            Err(err) => {
                let _ = server.shutdown().await;
                return Err(err.into());
            }
        };
        let membership = Arc::new(membership);
        let gossip_addr = membership.local_gossip_addr();
        let roster = Arc::new(RwLock::new(BTreeMap::new()));
        let mut view = View::new(replication_factor);
        for member in membership.members().await {
            if member.state == MemberState::Alive {
                view = view.with(peer_of(&member));
            }
            roster.write().insert(member.id.clone(), report_of(&member));
        }
        let view = shared.set_view(view);
        // A joining node's keys are on the members that were there before it,
        // which run them until every member sees this node.
        let before = Arc::new(view.without(&shared.id));
        shared.set_agreed(before.clone());
        shared.remember(before);
        shared.settled_epoch.store(view.epoch(), Ordering::Release);
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        shared.watch_pauses(config.preset.failure_detection());
        tasks.spawn(drive(
            shared.clone(),
            roster.clone(),
            events,
            stop.clone(),
            membership.clone(),
            Timing {
                debounce: config.rebalance_debounce,
                tombstone_retention: config.tombstone_retention,
                away_after: config.preset.failure_detection(),
                reconnect_timeout: config.reconnect_timeout,
            },
            view,
        ));
        tracing::info!(node = %config.node_id, %gossip_addr, %rpc_addr, "cluster node started");
        Ok(Cluster {
            shared,
            roster,
            membership: Some(membership),
            server: Some(server),
            gossip_addr,
            rpc_addr,
            stop,
            tasks,
        })
    }

    /// Runs a client operation on `key`, wherever its primary is.
    pub async fn execute(&self, key: &[u8], op: Op) -> Result<Reply> {
        self.shared.execute(key, op).await
    }

    /// Returns a handle that runs operations (cheap to clone; fails with
    /// `ShuttingDown` once the node stops).
    pub fn handle(&self) -> ClusterHandle {
        ClusterHandle {
            shared: self.shared.clone(),
        }
    }

    /// Returns this node's id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Returns the gossip address actually bound.
    pub fn gossip_addr(&self) -> SocketAddr {
        self.gossip_addr
    }

    /// Returns the peer RPC address advertised.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    /// Returns every member this node knows of, itself included.
    pub fn members(&self) -> Vec<MemberReport> {
        let view = self.shared.view();
        let mut members: Vec<MemberReport> = self.roster.read().values().cloned().collect();
        for member in &mut members {
            member.ring_share = if view.contains(&member.id) {
                view.share(&member.id)
            } else {
                0.0
            };
        }
        members
    }

    /// Returns the ids of the members that own `key` in this node's current
    /// view, primary first.
    pub fn owners(&self, key: &[u8]) -> Vec<String> {
        self.shared
            .view()
            .owners(key)
            .into_iter()
            .cloned()
            .collect()
    }

    /// Returns a scan cursor at a random step (a random member, a random
    /// shard), for sampling the key space (`RANDOMKEY`).
    pub fn random_scan_cursor(&self) -> u64 {
        let members = self.shared.view().len().max(1) as u64;
        let shards = self.shared.store.shard_count().max(1) as u64;
        fastrand::u64(..members) << SCAN_SHARD_BITS | fastrand::u64(..shards)
    }

    /// Takes one step of a scan over every key of the cluster. Start with
    /// cursor 0; each call lists one store shard of one member — the keys that
    /// member is the primary of — and returns the cursor to pass next, 0 once
    /// every member's every shard was listed. A key present for the whole scan
    /// is returned once if membership holds still, and at least once unless a
    /// rebalance moves it between two steps; none is returned twice by one
    /// member.
    pub async fn scan(&self, cursor: u64) -> Result<(u64, Vec<(Bytes, Kind)>)> {
        let members = self.member_ids();
        let (member, shard) = (cursor >> SCAN_SHARD_BITS, cursor & SCAN_SHARD_MASK);
        let Some(id) = usize::try_from(member)
            .ok()
            .and_then(|member| members.get(member))
        else {
            return Ok((0, Vec::new()));
        };
        let shard = u32::try_from(shard).unwrap_or(u32::MAX);
        let (keys, shards) = self.shared.primary_keys(id, shard).await?;
        let next = if u64::from(shard) + 1 < u64::from(shards) {
            cursor + 1
        } else if (member as usize) + 1 < members.len() {
            (member + 1) << SCAN_SHARD_BITS
        } else {
            0
        };
        Ok((next, keys))
    }

    /// Returns how many live keys the cluster holds: each member counts the
    /// keys it is the primary of (replicas are not counted twice). Fails with
    /// `Unavailable` if a member does not answer.
    pub async fn key_count(&self) -> Result<u64> {
        let members = self.member_ids();
        let counts = join_all(members.iter().map(|id| self.shared.primary_count(id))).await;
        counts.into_iter().sum()
    }

    /// The ids of the members of the current view, in id order.
    fn member_ids(&self) -> Vec<String> {
        self.shared
            .view()
            .members()
            .map(|peer| peer.id.clone())
            .collect()
    }

    /// Returns how many peer RPCs from this node failed in transport
    /// (unreachable, timed out), and how many rebalance transfers a receiver
    /// did not confirm, since it started.
    pub fn peer_errors(&self) -> u64 {
        self.shared.peer_errors.load(Ordering::Relaxed)
    }

    /// Returns how many key copies receivers refused one by one in
    /// rebalances since start (over their size limits, undecodable, past
    /// their memory limit): each stays on this node and is reported, rather
    /// than sent again in a loop.
    pub fn transfer_refusals(&self) -> u64 {
        self.shared.transfer_refusals.load(Ordering::Relaxed)
    }

    /// Returns the copies of keys still to send in the current rebalance.
    pub fn rebalance_pending(&self) -> u64 {
        self.shared.rebalance_pending.load(Ordering::Relaxed)
    }

    /// Returns true once this node sees exactly `members` alive members (so a
    /// crashed member must first be detected), every one of them was seen to
    /// have the same view, and this node has finished rebalancing for it.
    pub fn is_ready(&self, members: usize) -> bool {
        let view = self.shared.view();
        view.len() == members
            && self.shared.is_agreed()
            && self.shared.settled_epoch.load(Ordering::Acquire) == view.epoch()
            && self.rebalance_pending() == 0
    }

    /// Waits until [`Cluster::is_ready`] or `timeout`; `Unavailable` on timeout.
    /// Woken by every change of the view or of the rebalance state, not by
    /// polling.
    pub async fn wait_ready(&self, members: usize, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.shared.changes();
        while !self.is_ready(members) {
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return Err(ClusterError::Unavailable(format!(
                    "{} of {members} members alive, rebalance {} after {timeout:?}",
                    self.shared.view().len(),
                    if self.rebalance_pending() == 0 {
                        "settling"
                    } else {
                        "in progress"
                    }
                )));
            }
        }
        Ok(())
    }

    /// Leaves gracefully (spec: cluster.md G2): hands every key to its owners
    /// without this node, tells the others it leaves, hands off what was written
    /// meanwhile, then stops every task.
    pub async fn shutdown(mut self) -> Result<()> {
        let shared = self.shared.clone();
        // No driver from here on: its rebalances would race the hand-off.
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        let current = shared.view();
        let without = current.without(&shared.id);
        // 1. Stop being a primary: client operations are forwarded to the new
        //    owners (retried until they see this node leave). Replicas and
        //    transfers are still taken — peers count this node an owner until
        //    they see it leave, and refusing would fail their writes — and
        //    handed off below with the rest. Until then this node answers the
        //    new owners' fetches for keys they have not received (their
        //    catch-up), so they build on the latest state.
        shared.set_view(without.clone());
        // 2. Leave: the others route every key to its new owners.
        if let Some(membership) = &self.membership
            && let Err(err) = membership.leave(Duration::from_secs(2)).await
        {
            tracing::warn!(node = %shared.id, %err, "leave not confirmed");
        }
        //    Once every other member's view is without this node, nobody
        //    sends it replicas any more: what it holds after that is final.
        let others_agree = shared.wait_for_members(&without, false, AGREE_POLL);
        if tokio::time::timeout(LEAVE_AGREEMENT, others_agree)
            .await
            .is_err()
        {
            tracing::warn!(node = %shared.id, "not every member saw the leave in time; handing off anyway");
        }
        // 3. Hand everything off, dropping each copy its receivers confirmed;
        //    again while copies remain (a replica that arrived after its key
        //    went out is kept, and goes in the next pass).
        if !without.is_empty() {
            for pass in 1..=HANDOFF_PASSES {
                if let Err(reason) = rebalance::run(&shared, &current, &without).await {
                    tracing::warn!(node = %shared.id, pass, %reason, "hand-off pass incomplete");
                    tokio::time::sleep(REBALANCE_RETRY).await;
                }
                let left = shared.store.len() + shared.store.tombstone_count();
                if left == 0 {
                    break;
                }
                if pass == HANDOFF_PASSES {
                    tracing::warn!(node = %shared.id, left, "hand-off incomplete: copies left behind");
                }
            }
        }
        self.stop_tasks().await;
        Ok(())
    }

    async fn stop_tasks(&mut self) {
        self.shared.stop();
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        if let Some(server) = self.server.take() {
            let _ = server.shutdown().await;
        }
        if let Some(membership) = self.membership.take() {
            membership.shutdown().await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A crash: no leave, no hand-off. The server and membership stop
        // through their own drops; the driver sees the cancellation.
        self.shared.stop();
        self.stop.cancel();
        self.tasks.close();
    }
}

/// A cheap handle that runs operations on a cluster node.
#[derive(Debug, Clone)]
pub struct ClusterHandle {
    shared: Arc<Shared<GrpcClient>>,
}

impl ClusterHandle {
    /// Runs a client operation on `key`, wherever its primary is.
    pub async fn execute(&self, key: &[u8], op: Op) -> Result<Reply> {
        self.shared.execute(key, op).await
    }
}

/// A scan cursor is a member's index (in id order) above its shard's index.
const SCAN_SHARD_BITS: u32 = 20;
const SCAN_SHARD_MASK: u64 = (1 << SCAN_SHARD_BITS) - 1;

/// The driver's clocks.
#[derive(Debug, Clone, Copy)]
struct Timing {
    debounce: Duration,
    tombstone_retention: Duration,
    /// A pause of the driver this long means peers may have declared this
    /// node failed (their failure detection time) and gone on without it:
    /// it then comes back as a new incarnation ([`reincarnate`]).
    away_after: Duration,
    /// A node away longer than this was forgotten by its peers, which may
    /// have dropped the tombstones that hide its old copies: it rejoins empty.
    reconnect_timeout: Duration,
}

/// A rebalance (or a housekeeping pass) in flight, with the view it targets.
type Rebalancing = Pin<Box<dyn Future<Output = (Arc<View>, Result<(), String>)> + Send>>;

/// Waiting for every member to finish moving data for a view; yields the
/// view's epoch.
type Confirming = Pin<Box<dyn Future<Output = u64> + Send>>;

/// Waiting for every member to have a view (then keys move to their new
/// primaries); yields that view.
type Agreeing = Pin<Box<dyn Future<Output = Arc<View>> + Send>>;

/// Starts waiting for every member to have the current view.
fn agree(shared: &Arc<Shared<GrpcClient>>) -> Agreeing {
    let (shared, view) = (shared.clone(), shared.view());
    Box::pin(async move {
        shared.wait_for_members(&view, false, AGREE_POLL).await;
        view
    })
}

/// Starts waiting for every member to settle on `view`, if this node still
/// remembers earlier views (and so still fetches keys it does not know).
fn confirm(shared: &Arc<Shared<GrpcClient>>, view: &Arc<View>) -> Option<Confirming> {
    if !shared.remembers_earlier() || shared.view().epoch() != view.epoch() {
        return None;
    }
    let (shared, view) = (shared.clone(), view.clone());
    Some(Box::pin(async move {
        shared.wait_for_members(&view, true, SETTLED_POLL).await;
        view.epoch()
    }))
}

/// The driver: one loop over membership events, the debounce timer, the
/// running rebalance, and tombstone collection.
async fn drive(
    shared: Arc<Shared<GrpcClient>>,
    roster: Arc<RwLock<BTreeMap<String, MemberReport>>>,
    mut events: Events,
    stop: CancellationToken,
    membership: Arc<Membership>,
    timing: Timing,
    mut settled: Arc<View>,
) {
    let debounce = timing.debounce;
    let mut due: Option<tokio::time::Instant> = None;
    let mut running: Option<Rebalancing> = None;
    // Keys move to new primaries once every member has the view, and the
    // earlier views are forgotten once every member settled on it.
    let mut agreeing = agree(&shared);
    let mut confirming = confirm(&shared, &settled);
    let mut retry = REBALANCE_RETRY;
    let mut collect =
        tokio::time::interval((timing.tombstone_retention / 4).max(Duration::from_millis(10)));
    collect.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut burials = Burials::new(timing.tombstone_retention);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = heartbeat.tick() => {
                let now = tokio::time::Instant::now();
                let gap = now.saturating_duration_since(last_beat);
                last_beat = now;
                // Replicas of keys this node does not own arrived (writes
                // made while their primary remembered earlier views): a
                // housekeeping pass moves them to the owners.
                if shared.leftovers.swap(false, Ordering::Relaxed) && due.is_none() {
                    due = Some(now + debounce);
                }
                if gap >= timing.away_after {
                    tracing::warn!(node = %shared.id, ?gap, "this process was paused long enough to be declared failed; rejoining as a new incarnation");
                    if gap >= timing.reconnect_timeout {
                        tracing::warn!(node = %shared.id, "away longer than reconnect_timeout: rejoining empty");
                        shared.store.clear();
                    }
                    reincarnate(&shared, &membership).await;
                    due = Some(tokio::time::Instant::now() + debounce);
                    agreeing = agree(&shared);
                    confirming = None;
                    last_beat = tokio::time::Instant::now();
                }
                // Only now: until the new incarnation took over, operations
                // on this node's keys wait (`Route::Paused`).
                shared.beat();
            }
            // Housekeeping while idle: copies left behind (a drop that found
            // a newer write, a replica written by a primary on an older view)
            // go to their owners, then old tombstones are collected — only
            // after every leftover went out, so none can outlive its tombstone.
            _ = collect.tick(), if running.is_none() && due.is_none() => {
                let now = tokio::time::Instant::now();
                burials.open(now, shared.store.next_tombstone_epoch());
                let purgeable_before = burials.purgeable_before(now);
                let (shared, view) = (shared.clone(), settled.clone());
                running = Some(Box::pin(async move {
                    let result = rebalance::run(&shared, &view, &view).await;
                    if result.is_ok()
                        && let Some(before) = purgeable_before
                    {
                        collect_tombstones(&shared, before);
                    }
                    (view, result)
                }));
            }
            event = events.recv() => {
                let Some(event) = event else { return };
                // An event that changes no member (memberlist also reports the
                // members it already knew) neither moves data nor makes this
                // node forget where keys were before.
                match &event {
                    MembershipEvent::Joined(member) => shared.member_back(peer_of(member)),
                    MembershipEvent::Failed(id) => {
                        shared.mark_failed(id, true);
                    }
                    MembershipEvent::Forgotten(id) => {
                        shared.mark_failed(id, false);
                    }
                    MembershipEvent::Updated(_)
                    | MembershipEvent::Restarted(_)
                    | MembershipEvent::Left(_) => {}
                }
                // A departed member's connection and queues go; so do those
                // of a restarted one, which lead to a process that is gone.
                // So do those of a member that moved to another address.
                let gone = match &event {
                    MembershipEvent::Left(id) | MembershipEvent::Failed(id) => Some(id.as_str()),
                    MembershipEvent::Restarted(member) => Some(member.id.as_str()),
                    MembershipEvent::Updated(member)
                        if shared
                            .view()
                            .peer(&member.id)
                            .is_some_and(|peer| peer.rpc_addr != member.meta.rpc_addr) =>
                    {
                        Some(member.id.as_str())
                    }
                    _ => None,
                };
                if let Some(id) = gone
                    && let Some(peer) = shared.view().peer(id)
                {
                    shared.forget_peer(peer.rpc_addr);
                }
                if let MembershipEvent::Restarted(member) = &event {
                    tracing::info!(node = %shared.id, member = %member.id, "member restarted as a new incarnation; refilling it");
                }
                if let Some(view) = apply_event(&shared.view(), &roster, event) {
                    shared.set_view(view);
                    due = Some(tokio::time::Instant::now() + debounce);
                    agreeing = agree(&shared);
                    confirming = None;
                }
            }
            () = sleep_until(due), if due.is_some() && running.is_none() => {
                due = None;
                let target = shared.view();
                let (shared, from) = (shared.clone(), settled.clone());
                running = Some(Box::pin(async move {
                    let result = rebalance::run(&shared, &from, &target).await;
                    (target, result)
                }));
            }
            view = &mut agreeing => {
                agreeing = Box::pin(std::future::pending());
                if shared.view().digest() == view.digest() {
                    shared.set_agreed(view);
                }
            }
            epoch = async { confirming.as_mut().expect("guarded by the precondition").await }, if confirming.is_some() => {
                confirming = None;
                if shared.view().epoch() == epoch {
                    shared.forget_earlier();
                    tracing::debug!(node = %shared.id, epoch, "every member settled; earlier views forgotten");
                }
            }
            (target, result) = async { running.as_mut().expect("guarded by the precondition").await }, if running.is_some() => {
                running = None;
                match result {
                    Ok(()) => {
                        retry = REBALANCE_RETRY;
                        shared.settled_epoch.store(target.epoch(), Ordering::Release);
                        shared.notify();
                        settled = target;
                        if shared.view().epoch() != settled.epoch() && due.is_none() {
                            due = Some(tokio::time::Instant::now());
                        }
                        if confirming.is_none() {
                            confirming = confirm(&shared, &settled);
                        }
                    }
                    Err(reason) => {
                        tracing::warn!(node = %shared.id, %reason, "rebalance incomplete; retrying");
                        due = Some(tokio::time::Instant::now() + retry);
                        retry = (retry * 2).min(REBALANCE_RETRY_MAX);
                    }
                }
            }
        }
    }
}

/// Drops the tombstones buried in epochs before `before` — at least
/// `tombstone_retention` ago — unless an older copy could still come back
/// (spec: cluster.md G5, `tombstones.rs`): a member is away (failed, not yet
/// forgotten), a rebalance is pending, or some member has not settled on this
/// node's view yet.
fn collect_tombstones(shared: &Shared<GrpcClient>, before: u64) {
    if shared.rebalance_pending.load(Ordering::Relaxed) != 0
        || shared.any_member_away()
        || !shared.is_agreed()
        || shared.remembers_earlier()
    {
        return;
    }
    let dropped = shared.store.purge_tombstones(before);
    if dropped > 0 {
        tracing::debug!(node = %shared.id, dropped, "tombstones collected");
    }
}

/// Makes this node a new incarnation of itself after a pause long enough for
/// peers to have declared it failed and gone on without it: deleted keys it
/// still holds, writes it missed. Like a node that restarts, it then runs its
/// keys only once every member sees the new incarnation, catching each up
/// from the other owners first, and the other owners refill it; what it holds
/// is offered to them version by version, where newer versions and
/// tombstones win.
async fn reincarnate(shared: &Shared<GrpcClient>, membership: &Membership) {
    let incarnation = new_incarnation();
    let view = shared.view();
    let Some(me) = view.peer(&shared.id) else {
        return;
    };
    let renewed = view.with(Peer {
        incarnation,
        ..me.clone()
    });
    let view = shared.set_view(renewed);
    let before = Arc::new(view.without(&shared.id));
    shared.set_agreed(before.clone());
    shared.remember(before);
    if let Err(err) = membership.renew_incarnation(incarnation, RENEW_WAIT).await {
        tracing::warn!(node = %shared.id, %err, "could not advertise the new incarnation");
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// Returns the view after `event` (`None` if the members did not change), and
/// records the member's state.
fn apply_event(
    view: &View,
    roster: &RwLock<BTreeMap<String, MemberReport>>,
    event: MembershipEvent,
) -> Option<View> {
    match event {
        // A restarted member keeps its id and its place on the ring, but as
        // another incarnation it is a new owner of its keys: the view (and its
        // digest) changes, the rebalance refills it (`plan_at`), and it runs
        // its keys only once every member sees it (`Shared::route`).
        MembershipEvent::Joined(member)
        | MembershipEvent::Updated(member)
        | MembershipEvent::Restarted(member) => {
            roster.write().insert(member.id.clone(), report_of(&member));
            let peer = peer_of(&member);
            (view.peer(&peer.id) != Some(&peer)).then(|| view.with(peer))
        }
        MembershipEvent::Left(id) => {
            if let Some(report) = roster.write().get_mut(&id) {
                report.state = MemberState::Left;
            }
            view.contains(&id).then(|| view.without(&id))
        }
        MembershipEvent::Failed(id) => {
            if let Some(report) = roster.write().get_mut(&id) {
                report.state = MemberState::Dead;
            }
            view.contains(&id).then(|| view.without(&id))
        }
        // Departed long ago: no longer listed, so the roster stays bounded.
        MembershipEvent::Forgotten(id) => {
            roster.write().remove(&id);
            view.contains(&id).then(|| view.without(&id))
        }
    }
}

fn peer_of(member: &MemberInfo) -> Peer {
    Peer {
        id: member.id.clone(),
        rpc_addr: member.meta.rpc_addr,
        vnodes: member.meta.vnodes,
        incarnation: member.meta.incarnation,
    }
}

fn report_of(member: &MemberInfo) -> MemberReport {
    MemberReport {
        id: member.id.clone(),
        gossip_addr: member.gossip_addr,
        rpc_addr: member.meta.rpc_addr,
        state: member.state,
        ring_share: 0.0,
    }
}

/// Returns the size limits a node advertises: members must share them.
fn size_limits(limits: &hive_store::Limits) -> SizeLimits {
    let bytes = |len: usize| u64::try_from(len).unwrap_or(u64::MAX);
    SizeLimits {
        key: bytes(limits.max_key_len),
        value: bytes(limits.max_value_len),
        entry: bytes(limits.max_entry_len),
    }
}

/// Returns a number that names this start of the node (its boot nonce): the
/// clock's nanoseconds mixed with a random draw, never 0 (which peers read as
/// "did not advertise one").
fn new_incarnation() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64);
    (nanos ^ fastrand::u64(..)).max(1)
}

/// Returns the RPC address peers should dial: a wildcard bind address takes the
/// advertised gossip host.
fn advertised(bound: SocketAddr, advertise: Option<SocketAddr>) -> SocketAddr {
    match advertise {
        Some(advertise) if bound.ip().is_unspecified() => {
            SocketAddr::new(advertise.ip(), bound.port())
        }
        _ => bound,
    }
}
