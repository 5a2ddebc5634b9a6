//! Point-in-time snapshots of a node and its view of the cluster.

use std::net::SocketAddr;

/// What a node reports about itself and the members it sees.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterStatus {
    /// This node's id.
    pub node_id: String,
    /// Every member this node knows of, itself included.
    pub members: Vec<Member>,
    /// Copies kept of each key.
    pub replication_factor: usize,
    /// Entries held by this node, replicas included.
    pub keys: u64,
    /// Bytes accounted to those entries (and to the tombstones).
    pub memory_bytes: u64,
    /// Tombstones held: deleted or expired keys remembered so that no older
    /// copy brings them back (cluster mode; their bytes count in
    /// `memory_bytes` and against `mem_limit`). They are kept while a member
    /// is away and dropped `tombstone_retention` after everything settled.
    pub tombstones: u64,
    /// Entries still to move to their owners; 0 when settled.
    pub rebalance_pending: u64,
    /// Peer RPCs from this node that failed in transport (unreachable, timed
    /// out), and rebalance transfers a receiver did not confirm, since it
    /// started; 0 in standalone mode.
    pub peer_rpc_errors: u64,
    /// Key copies other members refused one by one in rebalances since start
    /// (over their size limits, past their memory limit): each stays on this
    /// node, logged, instead of being sent again in a loop; 0 in standalone
    /// mode.
    pub transfer_refusals: u64,
}

/// One member of the cluster as this node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The member's node id.
    pub id: String,
    /// Its gossip address (`None` in standalone mode).
    pub gossip_addr: Option<SocketAddr>,
    /// Its peer RPC address (`None` in standalone mode).
    pub rpc_addr: Option<SocketAddr>,
    /// Its state.
    pub state: MemberState,
    /// Fraction of the keyspace it is primary for.
    pub ring_share: f64,
}

/// A member's state. Only alive members own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed probes; keeps its keys until declared dead.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left gracefully.
    Left,
}
