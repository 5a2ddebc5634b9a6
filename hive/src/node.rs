//! A running Hive node: owns the store, the cache handle and every background
//! task, and stops them all on `shutdown` or drop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hive_store::{Store, StoreConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cache::Cache;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::janitor;
use crate::status::{ClusterStatus, Member, MemberState};

/// A running node. Get a [`Cache`] from it for the typed stores.
///
/// Stop it with [`Node::shutdown`]. Dropping it without `shutdown` stops it
/// abruptly, as a crash would: background tasks are told to end, nothing is
/// handed off, and later operations through its caches fail with
/// [`Error::ShuttingDown`].
#[derive(Debug)]
pub struct Node {
    id: String,
    config: Config,
    store: Arc<Store>,
    cache: Cache,
    /// Cancelled when the node stops; every background task watches it.
    stop: CancellationToken,
    /// Every background task, so `shutdown` can wait for all of them.
    tasks: TaskTracker,
}

impl Node {
    /// Starts a node and returns once it serves requests. In
    /// [`Mode::Standalone`](crate::Mode::Standalone) no socket is opened.
    ///
    /// Fails with [`Error::InvalidArgument`] naming the field if `config` is
    /// invalid.
    pub async fn start(config: Config) -> Result<Node> {
        config.validate()?;
        if let Some(level) = config.log_level {
            // An application that installed its own subscriber keeps it.
            let _ = tracing_subscriber::fmt().with_max_level(level).try_init();
        }
        let id = if config.node_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            config.node_id.clone()
        };
        let store = Arc::new(Store::new(StoreConfig {
            limits: config.limits(),
            mem_limit: config.mem_limit,
            node_tag: node_tag(&id),
            ..StoreConfig::default()
        }));
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(janitor::run(
            store.clone(),
            config.cleanup_interval,
            stop.clone(),
        ));
        let cache = Cache::new(store.clone());
        tracing::info!(node = %id, mode = ?config.mode, "node started");
        Ok(Node {
            id,
            config,
            store,
            cache,
            stop,
            tasks,
        })
    }

    /// Returns a handle for the typed stores.
    pub fn cache(&self) -> Cache {
        self.cache.clone()
    }

    /// Returns this node's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Returns the gossip address actually bound (`None` in standalone mode).
    pub fn gossip_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// Returns the peer RPC address actually bound (`None` in standalone mode).
    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// Returns a point-in-time snapshot of this node and the members it sees.
    pub fn status(&self) -> ClusterStatus {
        ClusterStatus {
            node_id: self.id.clone(),
            members: vec![Member {
                id: self.id.clone(),
                gossip_addr: None,
                rpc_addr: None,
                state: MemberState::Alive,
                ring_share: 1.0,
            }],
            replication_factor: self.config.replication_factor,
            keys: self.store.len() as u64,
            memory_bytes: self.store.memory_bytes(),
            rebalance_pending: 0,
        }
    }

    /// Resolves when this node sees `members` alive members and has finished
    /// rebalancing for that view. A standalone node is its only member: it is
    /// ready at once for `members <= 1` and never for more, which is reported
    /// at once as [`Error::Unavailable`] rather than after `timeout`.
    pub async fn wait_ready(&self, members: usize, timeout: Duration) -> Result<()> {
        let _ = timeout;
        if members <= 1 {
            return Ok(());
        }
        Err(Error::Unavailable(format!(
            "a standalone node is a cluster of one; it will never see {members} members"
        )))
    }

    /// Stops the node gracefully: new operations fail with
    /// [`Error::ShuttingDown`], and every background task is stopped and waited
    /// for.
    pub async fn shutdown(self) -> Result<()> {
        self.cache.stop();
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        tracing::info!(node = %self.id, "node stopped");
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A crash: no hand-off. Tasks see the cancellation at their next await
        // and end; nothing here blocks.
        self.cache.stop();
        self.stop.cancel();
        self.tasks.close();
    }
}

/// Returns the tag this node stamps into versions: derived from its id (with the
/// ring's hash), so ties between nodes break the same way everywhere.
fn node_tag(id: &str) -> u64 {
    hive_ring::position(id.as_bytes())
}
