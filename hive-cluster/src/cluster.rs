//! A running cluster node: the peer RPC server, the membership, and one driver
//! task (`driver.rs`) that turns membership events into views and, after a quiet
//! `rebalance_debounce`, moves data to match the newest view.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use hive_membership::{MemberState, Membership, MembershipConfig, NodeMeta, SizeLimits};
use hive_store::{Kind, Op, Reply, Store};
use hive_transport::{GrpcClient, GrpcServer, PROTOCOL_VERSION, TransportOptions};
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ClusterConfig;
use crate::driver::{Driver, Roster, Timing, joining_view, leave, new_incarnation};
use crate::error::{ClusterError, Result};
use crate::shared::{Handler, Shared};
use crate::view::View;
use crate::wire::message_limit;

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
    roster: Roster,
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
        let roster: Roster = Arc::new(RwLock::new(BTreeMap::new()));
        let view = joining_view(&shared, &roster, membership.members().await);
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        shared.watch_pauses(config.preset.failure_detection());
        let timing = Timing {
            debounce: config.rebalance_debounce,
            tombstone_retention: config.tombstone_retention,
            away_after: config.preset.failure_detection(),
            reconnect_timeout: config.reconnect_timeout,
        };
        let driver = Driver::new(
            shared.clone(),
            roster.clone(),
            membership.clone(),
            timing,
            view,
        );
        tasks.spawn(driver.run(events, stop.clone()));
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
        if let Some(membership) = &self.membership {
            leave(&shared, membership).await;
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

/// Returns the size limits a node advertises: members must share them.
fn size_limits(limits: &hive_store::Limits) -> SizeLimits {
    let bytes = |len: usize| u64::try_from(len).unwrap_or(u64::MAX);
    SizeLimits {
        key: bytes(limits.max_key_len),
        value: bytes(limits.max_value_len),
        entry: bytes(limits.max_entry_len),
    }
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
