//! A running Hive node: owns the store, the cache handle, the cluster layer (in
//! cluster mode) and every background task, and stops them all on `shutdown`
//! or drop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hive_cluster::{Cluster, ClusterConfig, Preset};
use hive_store::{Kind, Store, StoreConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cache::Cache;
use crate::config::{Config, GossipPreset, Mode};
use crate::error::{Error, Result};
use crate::evict::{self, Eviction, Thresholds};
use crate::janitor;
use crate::persist::{DataDir, Pace, PersistenceStatus, SavedSnapshot};
use crate::status::{ClusterStatus, Member, MemberState};

/// A running node. Get a [`Cache`] from it for the typed stores.
///
/// Stop it with [`Node::shutdown`]. Dropping it without `shutdown` stops it
/// abruptly, as a crash would: no leave message, no hand-off, sockets closed,
/// background tasks told to end, and later operations through its caches fail
/// with [`Error::ShuttingDown`].
#[derive(Debug)]
pub struct Node {
    id: String,
    config: Config,
    store: Arc<Store>,
    cache: Cache,
    /// The cluster layer; `None` in standalone mode.
    cluster: Option<Cluster>,
    /// Cancelled when the node stops; every background task watches it.
    stop: CancellationToken,
    /// Every background task, so `shutdown` can wait for all of them.
    tasks: TaskTracker,
    /// Where snapshots go, with `Config::data_dir`.
    data_dir: Option<Arc<DataDir>>,
    /// The background evictor's thresholds.
    eviction: Arc<Thresholds>,
}

impl Node {
    /// Starts a node and returns once it serves requests. In
    /// [`Mode::Standalone`] no socket is opened; in [`Mode::Cluster`] the node
    /// binds, joins the seeds and takes part in placement.
    ///
    /// Fails with [`Error::InvalidArgument`] naming the field if `config` is
    /// invalid or the node is refused by the cluster, and with
    /// [`Error::Unavailable`] if no seed answers within `join_timeout`.
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
        let clustered = config.mode == Mode::Cluster;
        let store = Arc::new(Store::new(StoreConfig {
            limits: config.limits(),
            mem_limit: config.mem_limit,
            node_tag: node_tag(&id),
            // Only a cluster has older copies that a tombstone must hold off.
            tombstones: clustered,
            eviction: config.eviction.store_settings(),
            ..StoreConfig::default()
        }));
        let data_dir = match &config.data_dir {
            Some(dir) => Some(Arc::new(DataDir::open(dir)?)),
            None => None,
        };
        // In a cluster, other members drop a tombstone `tombstone_retention`
        // after everyone settled: an older snapshot may hold copies of keys
        // deleted since, which nothing would stop coming back.
        let max_age = clustered.then_some(config.tombstone_retention);
        if let Some(dir) = &data_dir
            && let Some(loaded) = dir.load(store.clone(), max_age).await?
        {
            tracing::info!(
                node = %id,
                path = %dir.snapshot_path().display(),
                entries = loaded.entries,
                expired = loaded.expired,
                written_by = %loaded.node_id,
                "snapshot loaded"
            );
        }
        let (cluster, cache) = if clustered {
            let cluster = Cluster::start(cluster_config(&config, &id)?, store.clone()).await?;
            let cache = Cache::cluster(cluster.handle());
            (Some(cluster), cache)
        } else {
            (None, Cache::local(store.clone()))
        };
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(janitor::run(
            store.clone(),
            config.cleanup_interval,
            stop.clone(),
        ));
        let eviction = Thresholds::new(&config.eviction);
        tasks.spawn(evict::run(
            store.clone(),
            config.mem_limit,
            eviction.clone(),
            stop.clone(),
        ));
        if let (Some(dir), Some(every)) = (&data_dir, config.snapshot_interval) {
            tasks.spawn(save_every(
                Arc::downgrade(dir),
                store.clone(),
                id.clone(),
                every,
                stop.clone(),
            ));
        }
        tracing::info!(node = %id, mode = ?config.mode, "node started");
        Ok(Node {
            id,
            config,
            store,
            cache,
            cluster,
            stop,
            tasks,
            data_dir,
            eviction,
        })
    }

    /// Returns how this node evicts.
    pub fn eviction(&self) -> Eviction {
        let store = self.store.eviction();
        let (start_percent, stop_percent) = self.eviction.get();
        Eviction {
            policy: store.policy,
            samples: store.samples,
            start_percent,
            stop_percent,
        }
    }

    /// Changes how this node evicts, while it serves; fails with
    /// [`Error::InvalidArgument`] naming the field, changing nothing, if
    /// `eviction` is invalid.
    pub fn set_eviction(&self, eviction: Eviction) -> Result<()> {
        eviction.validate()?;
        self.eviction.set(&eviction);
        self.store.set_eviction(eviction.store_settings());
        Ok(())
    }

    /// Returns how many keys this node evicted since it started.
    pub fn evicted_keys(&self) -> u64 {
        self.store.evicted()
    }

    /// Writes a snapshot of this node's data to `Config::data_dir` and
    /// returns once the file is durable (written, synced, renamed into place,
    /// directory synced). The node keeps serving meanwhile; each store shard
    /// is saved as of one instant.
    ///
    /// Fails with [`Error::InvalidArgument`] without a `data_dir`, and with
    /// [`Error::Persistence`] naming the file if it cannot be written (the
    /// previous snapshot then stays).
    pub async fn save_snapshot(&self) -> Result<SavedSnapshot> {
        self.save_snapshot_at(Pace::Now).await
    }

    /// [`Node::save_snapshot`] at `pace`: [`Pace::Background`] encodes and
    /// writes at the lowest CPU priority, leaving the CPU to the node's
    /// clients first; it takes longer when they keep the cores busy.
    pub async fn save_snapshot_at(&self, pace: Pace) -> Result<SavedSnapshot> {
        if self.cache.is_stopped() {
            return Err(Error::ShuttingDown);
        }
        let Some(dir) = &self.data_dir else {
            return Err(Error::InvalidArgument(
                "save_snapshot needs Config::data_dir".to_owned(),
            ));
        };
        dir.save(self.store.clone(), &self.id, pace).await
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
        self.cluster.as_ref().map(Cluster::gossip_addr)
    }

    /// Returns the peer RPC address actually bound (`None` in standalone mode).
    pub fn rpc_addr(&self) -> Option<SocketAddr> {
        self.cluster.as_ref().map(Cluster::rpc_addr)
    }

    /// Returns the ids of the members holding the byte-level key `key` (as
    /// [`Cache::execute_raw`] names keys: no namespace), primary first, as this
    /// node sees them now. A standalone node holds every key.
    pub fn owners_raw(&self, key: &[u8]) -> Vec<String> {
        match &self.cluster {
            None => vec![self.id.clone()],
            Some(cluster) => cluster.owners(key),
        }
    }

    /// Takes one step of a scan over every byte-level key of the cluster (as
    /// [`Cache::execute_raw`] names keys), with each key's kind. Start with
    /// cursor 0 and pass each returned cursor back until it is 0 again. Each
    /// step lists one store shard of one member (the keys it is the primary
    /// of), so a step is small and the whole scan sees every key present
    /// throughout it — at least once, and exactly once while membership holds
    /// still.
    ///
    /// Fails with [`Error::Unavailable`] if the member of this step does not
    /// answer; the same cursor may be retried.
    pub async fn scan_raw(&self, cursor: u64) -> Result<(u64, Vec<(bytes::Bytes, Kind)>)> {
        if self.cache.is_stopped() {
            return Err(Error::ShuttingDown);
        }
        match &self.cluster {
            Some(cluster) => Ok(cluster.scan(cursor).await?),
            None => {
                let shard = usize::try_from(cursor).unwrap_or(usize::MAX);
                let keys = self.store.shard_keys(shard);
                let next = if shard + 1 < self.store.shard_count() {
                    cursor + 1
                } else {
                    0
                };
                Ok((next, keys))
            }
        }
    }

    /// Returns a [`Node::scan_raw`] cursor at a random step, for sampling the
    /// key space: scanning on from it (wrapping at 0) visits every step.
    pub fn random_scan_cursor(&self) -> u64 {
        match &self.cluster {
            Some(cluster) => cluster.random_scan_cursor(),
            None => fastrand::u64(..self.store.shard_count().max(1) as u64),
        }
    }

    /// Returns how many keys the whole cache holds: in a cluster each member
    /// counts the live keys it is the primary of, so replicas count once
    /// (`status().keys` is this node's share, replicas included).
    ///
    /// Fails with [`Error::Unavailable`] if a member does not answer.
    pub async fn key_count(&self) -> Result<u64> {
        if self.cache.is_stopped() {
            return Err(Error::ShuttingDown);
        }
        match &self.cluster {
            Some(cluster) => Ok(cluster.key_count().await?),
            // Live keys, as in a cluster (`Store::len` also counts expired
            // keys not yet reclaimed).
            None => Ok((0..self.store.shard_count())
                .map(|shard| self.store.shard_keys(shard).len() as u64)
                .sum()),
        }
    }

    /// Returns a point-in-time snapshot of this node and the members it sees.
    pub fn status(&self) -> ClusterStatus {
        let members = match &self.cluster {
            None => vec![Member {
                id: self.id.clone(),
                gossip_addr: None,
                rpc_addr: None,
                state: MemberState::Alive,
                ring_share: 1.0,
            }],
            Some(cluster) => cluster
                .members()
                .into_iter()
                .map(|member| Member {
                    id: member.id,
                    gossip_addr: Some(member.gossip_addr),
                    rpc_addr: Some(member.rpc_addr),
                    state: match member.state {
                        hive_cluster::MemberState::Alive => MemberState::Alive,
                        hive_cluster::MemberState::Suspect => MemberState::Suspect,
                        hive_cluster::MemberState::Dead => MemberState::Dead,
                        hive_cluster::MemberState::Left => MemberState::Left,
                    },
                    ring_share: member.ring_share,
                })
                .collect(),
        };
        ClusterStatus {
            node_id: self.id.clone(),
            members,
            replication_factor: self.config.replication_factor,
            keys: self.store.len() as u64,
            memory_bytes: self.store.memory_bytes(),
            tombstones: self.store.tombstone_count() as u64,
            rebalance_pending: self.cluster.as_ref().map_or(0, Cluster::rebalance_pending),
            peer_rpc_errors: self.cluster.as_ref().map_or(0, Cluster::peer_errors),
            transfer_refusals: self.cluster.as_ref().map_or(0, Cluster::transfer_refusals),
        }
    }

    /// Resolves when this node sees `members` alive members and has finished
    /// rebalancing for that view; [`Error::Unavailable`] after `timeout`. A
    /// standalone node is its only member: it is ready at once for
    /// `members <= 1` and never for more, which is reported at once.
    pub async fn wait_ready(&self, members: usize, timeout: Duration) -> Result<()> {
        match &self.cluster {
            Some(cluster) => Ok(cluster.wait_ready(members, timeout).await?),
            None if members <= 1 => Ok(()),
            None => Err(Error::Unavailable(format!(
                "a standalone node is a cluster of one; it will never see {members} members"
            ))),
        }
    }

    /// Returns where this node's snapshots stand; `None` without
    /// `Config::data_dir`.
    pub fn persistence(&self) -> Option<PersistenceStatus> {
        self.data_dir
            .as_ref()
            .map(|dir| dir.status(self.store.changes()))
    }

    /// Stops the node gracefully, as [`Node::shutdown`] does, but writes no
    /// snapshot: the data directory keeps the last one saved.
    pub async fn shutdown_without_save(mut self) -> Result<()> {
        self.data_dir = None;
        self.shutdown().await
    }

    /// Stops the node gracefully: in cluster mode the data this node holds is
    /// handed to its new owners and the cluster is told it leaves; then new
    /// operations fail with [`Error::ShuttingDown`], every background task
    /// is stopped and waited for, and with a `data_dir` a last snapshot is
    /// written (an error writing it is returned, once everything stopped).
    pub async fn shutdown(mut self) -> Result<()> {
        let mut saved = Ok(());
        if let Some(cluster) = self.cluster.take() {
            // A leaving member hands its keys off and ends up empty: its
            // snapshot is taken first. (Writes during the leave reach the
            // new owners; a restart catches up from them.)
            if let Some(dir) = self.data_dir.take() {
                saved = self.save_last(&dir).await;
            }
            cluster.shutdown().await?;
        }
        self.cache.stop();
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        if let Some(dir) = self.data_dir.take() {
            saved = self.save_last(&dir).await;
        }
        tracing::info!(node = %self.id, "node stopped");
        saved
    }

    /// Writes the snapshot of a stopping node.
    async fn save_last(&self, dir: &DataDir) -> Result<()> {
        let saved = dir.save(self.store.clone(), &self.id, Pace::Now).await?;
        tracing::info!(node = %self.id, path = %saved.path.display(), entries = saved.entries, "snapshot saved at shutdown");
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A crash: no hand-off. The cluster layer stops through its own drop;
        // tasks see the cancellation at their next await and end.
        self.cache.stop();
        self.stop.cancel();
        self.tasks.close();
    }
}

/// Saves a snapshot every `every` until `stop` is cancelled; a failed save
/// is logged and tried again at the next tick. It holds the data directory
/// only while it saves, so a dropped node releases the directory's lock at
/// once (or when a save under way ends), as a crashed process would.
async fn save_every(
    dir: std::sync::Weak<DataDir>,
    store: Arc<Store>,
    id: String,
    every: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(dir) = dir.upgrade() else {
            return;
        };
        match dir.save(store.clone(), &id, Pace::Background).await {
            Ok(saved) => {
                tracing::debug!(node = %id, entries = saved.entries, bytes = saved.bytes, "snapshot saved")
            }
            Err(err) => tracing::warn!(node = %id, %err, "snapshot not saved"),
        }
    }
}

/// Builds the cluster layer's configuration from the node's.
fn cluster_config(config: &Config, id: &str) -> Result<ClusterConfig> {
    let bind = config.bind_ip()?;
    Ok(ClusterConfig {
        node_id: id.to_owned(),
        gossip_bind: SocketAddr::new(bind, config.bind_port),
        rpc_bind: SocketAddr::new(bind, config.rpc_port),
        advertise: config
            .advertise_ip()?
            .map(|ip| SocketAddr::new(ip, config.bind_port)),
        seeds: config.seed_addrs()?,
        replication_factor: config.replication_factor,
        vnodes: hive_ring::vnodes_for_mem_limit(config.mem_limit),
        preset: match config.gossip_preset {
            GossipPreset::Lan => Preset::Lan,
            GossipPreset::Local => Preset::Local,
        },
        gossip_interval: Some(config.gossip_interval),
        gossip_fanout: Some(config.gossip_fanout),
        join_timeout: config.join_timeout,
        reconnect_timeout: hive_cluster::DEFAULT_RECONNECT_TIMEOUT,
        rebalance_debounce: config.rebalance_debounce,
        request_timeout: config.request_timeout,
        tombstone_retention: config.tombstone_retention,
    })
}

/// Returns the tag this process stamps into versions. Ties between versions
/// break by it the same way everywhere, since it travels in the version. It is
/// drawn anew by every process, restarts under the same id included: a replica
/// takes a primary's state built on an older one only if that primary stamped
/// the newer state it holds (`Store::apply_built_on`), and a restarted process
/// has none of what its predecessor stamped.
fn node_tag(id: &str) -> u64 {
    hive_ring::position(id.as_bytes()) ^ fastrand::u64(..)
}
