//! A member of the cluster as this node sees it: identity, address, metadata, state.

use std::net::SocketAddr;

use crate::meta::NodeMeta;

/// The state of a member, as far as this node knows.
///
/// memberlist 0.8.5 does not expose suspicion through its public API, so a
/// suspected member is reported [`MemberState::Alive`] until it is declared dead.
/// That matches the cluster rule "a suspect member keeps its keys until it is
/// declared dead"; `Suspect` exists for the API contract and is never produced
/// today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// Answering probes (or suspected, see above).
    Alive,
    /// Suspected of having failed; not produced by memberlist 0.8.5 (see above).
    Suspect,
    /// Declared failed: it stopped answering without announcing a leave.
    Dead,
    /// Left gracefully (it announced the leave first).
    Left,
}

/// One member of the cluster. Departed members stay listed, as `Dead` or `Left`,
/// until they are forgotten, `reconnect_timeout` after they departed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member's node id (unique in the cluster, stable across restarts).
    pub id: String,
    /// The address the member gossips on.
    pub gossip_addr: SocketAddr,
    /// What the member advertises.
    pub meta: NodeMeta,
    /// Its state as this node sees it.
    pub state: MemberState,
}
