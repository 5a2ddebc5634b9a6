//! Node configuration: one plain struct with public fields and one `validate`.

use std::time::Duration;

use hive_store::Limits;

use crate::error::{Error, Result};

/// How a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// A purely local cache: no sockets at all.
    #[default]
    Standalone,
    /// A member of a cluster: gossip, peer RPC, replication and rebalancing.
    Cluster,
}

/// Everything a [`Node`](crate::Node) needs to start. Write
/// `Config { .., ..Default::default() }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Unique node id; empty means a generated UUID.
    pub node_id: String,
    /// Standalone or cluster.
    pub mode: Mode,
    /// Address for gossip and peer RPC.
    pub bind_addr: String,
    /// Gossip port (TCP and UDP); 0 picks a free one.
    pub bind_port: u16,
    /// Peer gRPC port; 0 picks a free one. Advertised through gossip, so it never
    /// needs configuring by hand.
    pub rpc_port: u16,
    /// Address peers should dial, when it differs from the bind address.
    pub advertise_addr: Option<String>,
    /// `host:port` gossip addresses of nodes to join.
    pub seeds: Vec<String>,
    /// Copies of each key; at least 1.
    pub replication_factor: usize,
    /// Bytes this node may hold, and its ring weight; 0 is unlimited with the
    /// default weight.
    pub mem_limit: u64,
    /// Heartbeat period.
    pub gossip_interval: Duration,
    /// Peers per gossip round.
    pub gossip_fanout: usize,
    /// Quiet time after a topology change before data moves.
    pub rebalance_debounce: Duration,
    /// Janitor period: expired data is reclaimed within this time even if it is
    /// never read again.
    pub cleanup_interval: Duration,
    /// Install a `tracing` subscriber at this level when the node starts (unless
    /// the application installed one). `None` installs nothing, so only errors an
    /// application subscriber chooses to show appear.
    pub log_level: Option<tracing::Level>,
    /// Longest key in bytes, namespace prefix of the typed stores included.
    pub max_key_bytes: usize,
    /// Longest value, field value, element or member in bytes (encoded size).
    pub max_value_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            node_id: String::new(),
            mode: Mode::Standalone,
            bind_addr: "0.0.0.0".into(),
            bind_port: 7946,
            rpc_port: 0,
            advertise_addr: None,
            seeds: Vec::new(),
            replication_factor: 1,
            mem_limit: 0,
            gossip_interval: Duration::from_secs(1),
            gossip_fanout: 3,
            rebalance_debounce: Duration::from_millis(500),
            cleanup_interval: Duration::from_secs(30),
            log_level: None,
            max_key_bytes: limits.max_key_len,
            max_value_bytes: limits.max_value_len,
        }
    }
}

impl Config {
    /// Checks the configuration; the error names the offending field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: &str| Err(Error::InvalidArgument(message.to_owned()));
        if self.replication_factor == 0 {
            return invalid("replication_factor must be at least 1");
        }
        if self.cleanup_interval.is_zero() {
            return invalid("cleanup_interval must be greater than zero");
        }
        if self.max_key_bytes == 0 {
            return invalid("max_key_bytes must be at least 1");
        }
        if self.max_value_bytes == 0 {
            return invalid("max_value_bytes must be at least 1");
        }
        if self.mode == Mode::Cluster {
            return invalid(
                "mode: cluster mode is not built yet in this version; use Mode::Standalone",
            );
        }
        Ok(())
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_key_len: self.max_key_bytes,
            max_value_len: self.max_value_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(config: &Config) -> String {
        match config.validate() {
            Err(Error::InvalidArgument(message)) => message,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn the_default_is_a_valid_standalone_node() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(Config::default().mode, Mode::Standalone);
    }

    #[test]
    fn errors_name_the_field() {
        let zero_rf = Config {
            replication_factor: 0,
            ..Config::default()
        };
        assert!(message(&zero_rf).contains("replication_factor"));
        let zero_cleanup = Config {
            cleanup_interval: Duration::ZERO,
            ..Config::default()
        };
        assert!(message(&zero_cleanup).contains("cleanup_interval"));
        let cluster = Config {
            mode: Mode::Cluster,
            ..Config::default()
        };
        assert!(message(&cluster).contains("mode"));
    }
}
