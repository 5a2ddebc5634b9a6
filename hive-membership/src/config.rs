//! Membership configuration: a plain struct with documented fields and one `validate`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{MembershipError, Result};
use crate::meta::NodeMeta;
use crate::preset::Preset;

/// Default bound on the time spent reaching the seeds at start.
pub const DEFAULT_JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Default time a failed member is still tried again before it is forgotten
/// (as Serf does: a day covers any partition someone would want healed).
pub const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest node id accepted, in bytes. Ids travel in every gossip packet (UDP,
/// about 1.4 KB), so they must stay short; a UUID is 36 bytes.
pub const MAX_NODE_ID_LEN: usize = 255;

/// How to start a [`Membership`](crate::Membership).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipConfig {
    /// This node's id: unique in the cluster and stable across restarts (a node
    /// that restarts with the same id takes its old place on the ring, as a new
    /// incarnation: see [`NodeMeta::incarnation`](crate::NodeMeta::incarnation)).
    /// 1 to [`MAX_NODE_ID_LEN`] bytes.
    pub node_id: String,
    /// Address to gossip on, TCP and UDP. Port 0 picks a free port;
    /// [`Membership::local_gossip_addr`](crate::Membership::local_gossip_addr)
    /// tells which.
    pub bind: SocketAddr,
    /// Address other nodes should dial, when it differs from `bind`. Required when
    /// `bind` is a wildcard (`0.0.0.0` or `::`), since peers cannot dial that; its
    /// port must then be the real one (so bind a fixed port).
    pub advertise: Option<SocketAddr>,
    /// Gossip addresses of existing members to join. Empty: this is the first
    /// node and it starts alone. Our own address is skipped, so every node may be
    /// given the same list. Giving several (or all known) members makes the join
    /// robust to one of them being down or to a lost gossip packet.
    pub seeds: Vec<SocketAddr>,
    /// What this node advertises to the others.
    pub meta: NodeMeta,
    /// Failure-detection timings.
    pub preset: Preset,
    /// Overrides the preset's gossip period (memberlist `gossip_interval`).
    pub gossip_interval: Option<Duration>,
    /// Overrides the preset's number of peers per gossip round (memberlist
    /// `gossip_nodes`).
    pub gossip_fanout: Option<usize>,
    /// Bound on the time spent reaching the seeds at start; seeds that refuse the
    /// connection are retried until then. Default [`DEFAULT_JOIN_TIMEOUT`].
    pub join_timeout: Duration,
    /// Overrides the preset's period between attempts to reconnect to failed
    /// members (see [`Preset`]).
    pub reconnect_interval: Option<Duration>,
    /// How long a failed member is tried again, and a departed one remembered,
    /// before it is reported
    /// [`MembershipEvent::Forgotten`](crate::MembershipEvent::Forgotten).
    /// Default [`DEFAULT_RECONNECT_TIMEOUT`].
    pub reconnect_timeout: Duration,
}

impl MembershipConfig {
    /// Returns a configuration for a first node (no seeds) with the
    /// [`Preset::Lan`] timings and the default join timeout.
    pub fn new(node_id: impl Into<String>, bind: SocketAddr, meta: NodeMeta) -> Self {
        Self {
            node_id: node_id.into(),
            bind,
            advertise: None,
            seeds: Vec::new(),
            meta,
            preset: Preset::default(),
            gossip_interval: None,
            gossip_fanout: None,
            join_timeout: DEFAULT_JOIN_TIMEOUT,
            reconnect_interval: None,
            reconnect_timeout: DEFAULT_RECONNECT_TIMEOUT,
        }
    }

    /// Checks every field; the error names the first one out of bounds.
    pub fn validate(&self) -> Result<()> {
        let id = &self.node_id;
        if id.is_empty() {
            return invalid("node_id", "must not be empty");
        }
        if id.len() > MAX_NODE_ID_LEN {
            return invalid(
                "node_id",
                format!("is {} bytes, the limit is {MAX_NODE_ID_LEN}", id.len()),
            );
        }
        if id.chars().any(char::is_control) {
            return invalid("node_id", "must not contain control characters");
        }
        match self.advertise {
            None if self.bind.ip().is_unspecified() => {
                return invalid(
                    "advertise",
                    format!(
                        "is required when bind is the wildcard address {}",
                        self.bind
                    ),
                );
            }
            Some(addr) if addr.ip().is_unspecified() || addr.port() == 0 => {
                return invalid(
                    "advertise",
                    format!("must be a dialable address with a port, got {addr}"),
                );
            }
            _ => {}
        }
        if let Some(seed) = self
            .seeds
            .iter()
            .find(|s| s.ip().is_unspecified() || s.port() == 0)
        {
            return invalid(
                "seeds",
                format!("must be dialable addresses with a port, got {seed}"),
            );
        }
        let meta = &self.meta;
        if meta.rpc_addr.ip().is_unspecified() || meta.rpc_addr.port() == 0 {
            return invalid(
                "meta.rpc_addr",
                format!(
                    "must be the dialable, bound RPC address, got {}",
                    meta.rpc_addr
                ),
            );
        }
        if meta.vnodes == 0 {
            return invalid("meta.vnodes", "must be at least 1");
        }
        if meta.replication_factor == 0 {
            return invalid("meta.replication_factor", "must be at least 1");
        }
        if self.gossip_interval == Some(Duration::ZERO) {
            return invalid("gossip_interval", "must be positive");
        }
        if self.gossip_fanout == Some(0) {
            return invalid("gossip_fanout", "must be at least 1");
        }
        if self.join_timeout.is_zero() {
            return invalid("join_timeout", "must be positive");
        }
        if self.reconnect_interval == Some(Duration::ZERO) {
            return invalid("reconnect_interval", "must be positive");
        }
        if self.reconnect_timeout.is_zero() {
            return invalid("reconnect_timeout", "must be positive");
        }
        Ok(())
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Result<()> {
    Err(MembershipError::InvalidConfig {
        field,
        reason: reason.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> MembershipConfig {
        MembershipConfig::new(
            "node-a",
            "127.0.0.1:0".parse().unwrap(),
            NodeMeta {
                rpc_addr: "127.0.0.1:7001".parse().unwrap(),
                vnodes: 100,
                replication_factor: 2,
                protocol_version: 1,
                incarnation: 0,
                size_limits: crate::meta::SizeLimits::default(),
            },
        )
    }

    fn field_of(config: &MembershipConfig) -> &'static str {
        match config.validate() {
            Err(MembershipError::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(valid().validate(), Ok(()));
        assert_eq!(valid().join_timeout, DEFAULT_JOIN_TIMEOUT);
        assert_eq!(valid().preset, Preset::Lan);
    }

    #[test]
    fn errors_name_the_field() {
        type Change = Box<dyn Fn(&mut MembershipConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("node_id", Box::new(|c| c.node_id.clear())),
            ("node_id", Box::new(|c| c.node_id = "x".repeat(256))),
            ("node_id", Box::new(|c| c.node_id = "a\nb".into())),
            (
                "advertise",
                Box::new(|c| c.bind = "0.0.0.0:7946".parse().unwrap()),
            ),
            (
                "advertise",
                Box::new(|c| c.advertise = Some("10.0.0.1:0".parse().unwrap())),
            ),
            (
                "seeds",
                Box::new(|c| c.seeds = vec!["0.0.0.0:7946".parse().unwrap()]),
            ),
            (
                "seeds",
                Box::new(|c| c.seeds = vec!["127.0.0.1:0".parse().unwrap()]),
            ),
            (
                "meta.rpc_addr",
                Box::new(|c| c.meta.rpc_addr = "127.0.0.1:0".parse().unwrap()),
            ),
            ("meta.vnodes", Box::new(|c| c.meta.vnodes = 0)),
            (
                "meta.replication_factor",
                Box::new(|c| c.meta.replication_factor = 0),
            ),
            (
                "gossip_interval",
                Box::new(|c| c.gossip_interval = Some(Duration::ZERO)),
            ),
            ("gossip_fanout", Box::new(|c| c.gossip_fanout = Some(0))),
            (
                "join_timeout",
                Box::new(|c| c.join_timeout = Duration::ZERO),
            ),
            (
                "reconnect_interval",
                Box::new(|c| c.reconnect_interval = Some(Duration::ZERO)),
            ),
            (
                "reconnect_timeout",
                Box::new(|c| c.reconnect_timeout = Duration::ZERO),
            ),
        ];
        for (field, change) in cases {
            let mut config = valid();
            change(&mut config);
            assert_eq!(field_of(&config), field);
            assert!(config.validate().unwrap_err().to_string().contains(field));
        }
    }

    #[test]
    fn wildcard_bind_with_advertise_is_valid() {
        let mut config = valid();
        config.bind = "0.0.0.0:7946".parse().unwrap();
        config.advertise = Some("10.0.0.1:7946".parse().unwrap());
        assert_eq!(config.validate(), Ok(()));
    }
}
