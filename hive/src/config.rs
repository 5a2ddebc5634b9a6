//! Node configuration: one plain struct with public fields and one `validate`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use hive_store::Limits;

use crate::error::{Error, Result};
use crate::evict::Eviction;

/// How a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// A purely local cache: no sockets at all.
    #[default]
    Standalone,
    /// A member of a cluster: gossip, peer RPC, replication and rebalancing.
    Cluster,
}

/// Probe and suspicion timing of the gossip layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GossipPreset {
    /// For real networks: failures detected in about 3 seconds.
    #[default]
    Lan,
    /// For one machine and tests: failures detected in about 1 second.
    Local,
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
    /// Probe and suspicion timing of the gossip layer (cluster mode).
    pub gossip_preset: GossipPreset,
    /// How long `start` tries the seeds before failing (cluster mode).
    pub join_timeout: Duration,
    /// Deadline of one operation, forwarding and replication included (cluster
    /// mode); past it the operation fails with `Unavailable`.
    pub request_timeout: Duration,
    /// How long a deleted or expired key's tombstone is kept (cluster mode): long
    /// enough that no rebalance or catch-up can still bring an older copy.
    pub tombstone_retention: Duration,
    /// Longest key in bytes, namespace prefix of the typed stores included.
    pub max_key_bytes: usize,
    /// Longest value, field value, element or member in bytes (encoded size).
    pub max_value_bytes: usize,
    /// Most bytes one key may hold: a value, or a whole collection counted with
    /// its per-element overhead (as `mem_limit` counts it). A key moves between
    /// nodes as one message, so this keeps every key replicable; a write that
    /// would pass it fails with `InvalidArgument` and changes nothing. At least
    /// `max_value_bytes`.
    pub max_entry_bytes: usize,
    /// Directory for this node's snapshot: loaded at start, written at a
    /// graceful shutdown, every `snapshot_interval` and by
    /// [`Node::save_snapshot`](crate::Node::save_snapshot). One process per
    /// directory. In cluster mode a snapshot older than
    /// `tombstone_retention` is discarded at start (it could bring back keys
    /// deleted since), and a loaded one is offered to the other owners
    /// version by version: newer versions and tombstones win. `None` keeps
    /// nothing across restarts.
    pub data_dir: Option<PathBuf>,
    /// Period of automatic snapshots (with `data_dir`); `None` saves only at
    /// a graceful shutdown and when asked.
    pub snapshot_interval: Option<Duration>,
    /// What goes when memory runs short of `mem_limit`: by default nothing
    /// (writes that do not fit fail). Evictions are local to the node and
    /// leave no tombstone: in a cluster, an evicted key is a miss on this
    /// node while another owner may still hold a copy, which a later
    /// rebalance can bring back. Changeable with
    /// [`Node::set_eviction`](crate::Node::set_eviction).
    pub eviction: Eviction,
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
            gossip_preset: GossipPreset::Lan,
            join_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            tombstone_retention: Duration::from_secs(120),
            max_key_bytes: limits.max_key_len,
            max_value_bytes: limits.max_value_len,
            max_entry_bytes: limits.max_entry_len,
            data_dir: None,
            snapshot_interval: None,
            eviction: Eviction::default(),
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
        if self.max_entry_bytes < self.max_value_bytes {
            return invalid("max_entry_bytes must be at least max_value_bytes");
        }
        if self.snapshot_interval.is_some_and(|every| every.is_zero()) {
            return invalid("snapshot_interval must be greater than zero");
        }
        if self.snapshot_interval.is_some() && self.data_dir.is_none() {
            return invalid("snapshot_interval needs a data_dir to write to");
        }
        self.eviction.validate()?;
        if self.mode == Mode::Cluster {
            self.bind_ip()?;
            self.advertise_ip()?;
            self.seed_addrs()?;
            if self.request_timeout.is_zero() {
                return invalid("request_timeout must be greater than zero");
            }
            if self.tombstone_retention <= self.rebalance_debounce {
                return invalid(
                    "tombstone_retention must be longer than rebalance_debounce: a tombstone \
                     must outlive the rebalance that could bring back an older copy",
                );
            }
        }
        Ok(())
    }

    pub(crate) fn bind_ip(&self) -> Result<IpAddr> {
        self.bind_addr.parse().map_err(|_| {
            Error::InvalidArgument(format!(
                "bind_addr {:?} is not an IP address",
                self.bind_addr
            ))
        })
    }

    pub(crate) fn advertise_ip(&self) -> Result<Option<IpAddr>> {
        self.advertise_addr
            .as_deref()
            .map(|addr| {
                addr.parse().map_err(|_| {
                    Error::InvalidArgument(format!("advertise_addr {addr:?} is not an IP address"))
                })
            })
            .transpose()
    }

    /// Resolves every seed (`host:port`); the error names the seed.
    pub(crate) fn seed_addrs(&self) -> Result<Vec<SocketAddr>> {
        self.seeds
            .iter()
            .map(|seed| {
                seed.to_socket_addrs()
                    .ok()
                    .and_then(|mut addrs| addrs.next())
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "seeds: {seed:?} is not a reachable host:port"
                        ))
                    })
            })
            .collect()
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_key_len: self.max_key_bytes,
            max_value_len: self.max_value_bytes,
            max_entry_len: self.max_entry_bytes,
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
        let small_entries = Config {
            max_entry_bytes: 10,
            max_value_bytes: 11,
            ..Config::default()
        };
        assert!(message(&small_entries).contains("max_entry_bytes"));
        let seed = Config {
            mode: Mode::Cluster,
            seeds: vec!["no port".into()],
            ..Config::default()
        };
        assert!(message(&seed).contains("seeds"));
        let bind = Config {
            mode: Mode::Cluster,
            bind_addr: "localhost:1".into(),
            ..Config::default()
        };
        assert!(message(&bind).contains("bind_addr"));
    }
}
