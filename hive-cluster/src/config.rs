//! How a cluster node is set up.

use std::net::SocketAddr;
use std::time::Duration;

use hive_membership::Preset;

/// Everything [`Cluster::start`](crate::Cluster::start) needs.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Unique node id.
    pub node_id: String,
    /// Gossip address (TCP and UDP); port 0 picks a free one.
    pub gossip_bind: SocketAddr,
    /// Peer RPC address; port 0 picks a free one (it is advertised by gossip).
    pub rpc_bind: SocketAddr,
    /// Gossip address peers should dial, when it differs from `gossip_bind`.
    pub advertise: Option<SocketAddr>,
    /// Gossip addresses of members to join; empty for the first node.
    pub seeds: Vec<SocketAddr>,
    /// Copies of each key.
    pub replication_factor: usize,
    /// This node's ring weight.
    pub vnodes: u32,
    /// Probe and suspicion settings.
    pub preset: Preset,
    /// Gossip period override.
    pub gossip_interval: Option<Duration>,
    /// Peers per gossip round override.
    pub gossip_fanout: Option<usize>,
    /// How long to try the seeds before giving up.
    pub join_timeout: Duration,
    /// How long a failed member is tried again (a healed partition rejoins
    /// within it), and a departed one listed by `members`, before it is
    /// forgotten.
    pub reconnect_timeout: Duration,
    /// Quiet time after a membership change before data moves.
    pub rebalance_debounce: Duration,
    /// Deadline of one client operation, retries included.
    pub request_timeout: Duration,
    /// How long a tombstone is kept. Every live owner has it once the delete is
    /// acknowledged (replication is synchronous); it must outlive what could
    /// still carry an older copy: rebalance transfers and catch-up fetches.
    /// Collected only while no rebalance is pending.
    pub tombstone_retention: Duration,
}
