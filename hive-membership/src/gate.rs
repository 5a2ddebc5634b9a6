//! Admission: memberlist's alive and merge delegates, refusing incompatible nodes.
//!
//! memberlist asks [`AliveDelegate::notify_alive`] before it accepts any "alive"
//! message (gossip or push/pull) and [`MergeDelegate::notify_merge`] before it
//! merges the member list a peer sends during a join; an `Err` drops the message
//! or cancels the merge. During a join both sides run the merge delegate — the
//! seed on the joiner's list, the joiner on the seed's reply — and a refusing
//! joiner sees `join` fail. So both sides refuse each other, and the joiner
//! learns why from [`Gate::take_refusal`].
//!
//! Like every delegate, these run under memberlist's member lock: they only
//! compute and record, never call memberlist and never wait.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use memberlist::delegate::{AliveDelegate, MergeDelegate};
use memberlist::proto::{NodeState, State};
use smol_str::SmolStr;
use thiserror::Error;

use crate::compat;
use crate::error::MembershipError;
use crate::meta::NodeMeta;

/// The refusal handed back to memberlist (which logs it).
#[derive(Debug, Error)]
#[error("{0}")]
pub(crate) struct Refused(MembershipError);

/// Admits compatible peers and remembers the last refusal.
#[derive(Debug)]
pub(crate) struct Gate {
    local_id: SmolStr,
    ours: NodeMeta,
    last_refusal: Mutex<Option<MembershipError>>,
}

impl Gate {
    pub(crate) fn new(local_id: SmolStr, ours: NodeMeta) -> Self {
        Self {
            local_id,
            ours,
            last_refusal: Mutex::new(None),
        }
    }

    /// Checks one peer against our metadata; records and returns a refusal.
    fn admit(&self, id: &SmolStr, addr: SocketAddr, meta: &[u8]) -> Result<(), Refused> {
        if *id == self.local_id {
            return Ok(());
        }
        compat::check(&self.ours, meta).map_err(|mismatch| {
            let error = mismatch.into_error(format!("{id}@{addr}"));
            tracing::warn!(%error, "refusing an incompatible node");
            *self
                .last_refusal
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(error.clone());
            Refused(error)
        })
    }

    /// Returns (and clears) the last refusal, if any.
    pub(crate) fn take_refusal(&self) -> Option<MembershipError> {
        self.last_refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl AliveDelegate for Gate {
    type Id = SmolStr;
    type Address = SocketAddr;
    type Error = Refused;

    async fn notify_alive(&self, peer: Arc<NodeState<SmolStr, SocketAddr>>) -> Result<(), Refused> {
        self.admit(peer.id(), *peer.address(), peer.meta())
    }
}

impl MergeDelegate for Gate {
    type Id = SmolStr;
    type Address = SocketAddr;
    type Error = Refused;

    async fn notify_merge(
        &self,
        peers: Arc<[NodeState<SmolStr, SocketAddr>]>,
    ) -> Result<(), Refused> {
        // Departed members may carry an older configuration (even our own id's,
        // before a restart with new settings); only live ones must match.
        peers
            .iter()
            .filter(|peer| matches!(peer.state(), State::Alive | State::Suspect))
            .try_for_each(|peer| self.admit(peer.id(), *peer.address(), peer.meta()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{SizeLimits, WireMeta};
    use memberlist::proto::Meta;

    fn meta(replication_factor: u32) -> NodeMeta {
        NodeMeta {
            rpc_addr: "127.0.0.1:7001".parse().unwrap(),
            vnodes: 100,
            replication_factor,
            protocol_version: 1,
            incarnation: 0,
            size_limits: SizeLimits::default(),
        }
    }

    fn state(id: &str, replication_factor: u32, state: State) -> NodeState<SmolStr, SocketAddr> {
        let bytes = WireMeta {
            meta: meta(replication_factor),
            leaving: false,
        }
        .encode()
        .unwrap();
        NodeState::new(SmolStr::new(id), "127.0.0.1:9".parse().unwrap(), state)
            .with_meta(Meta::try_from(bytes).unwrap())
    }

    fn run<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn alive_admits_compatible_and_refuses_incompatible_peers() {
        let gate = Gate::new("me".into(), meta(2));
        assert!(run(gate.notify_alive(Arc::new(state("b", 2, State::Alive)))).is_ok());
        assert!(gate.take_refusal().is_none());
        assert!(run(gate.notify_alive(Arc::new(state("c", 3, State::Alive)))).is_err());
        assert!(matches!(
            gate.take_refusal(),
            Some(MembershipError::Incompatible { field: "replication_factor", ref peer, .. })
                if peer == "c@127.0.0.1:9"
        ));
        assert!(gate.take_refusal().is_none(), "taking clears it");
    }

    #[test]
    fn merge_refuses_a_list_with_a_live_incompatible_member() {
        let gate = Gate::new("me".into(), meta(2));
        let good: Arc<[_]> =
            vec![state("a", 2, State::Alive), state("b", 2, State::Suspect)].into();
        assert!(run(gate.notify_merge(good)).is_ok());
        let bad: Arc<[_]> = vec![state("a", 2, State::Alive), state("c", 3, State::Alive)].into();
        assert!(run(gate.notify_merge(bad)).is_err());
        assert!(gate.take_refusal().is_some());
    }

    #[test]
    fn merge_ignores_departed_members_and_ourselves() {
        let gate = Gate::new("me".into(), meta(2));
        let list: Arc<[_]> = vec![
            state("a", 2, State::Alive),
            state("old", 3, State::Dead),
            state("gone", 3, State::Left),
            state("me", 3, State::Alive),
        ]
        .into();
        assert!(run(gate.notify_merge(list)).is_ok());
    }
}
