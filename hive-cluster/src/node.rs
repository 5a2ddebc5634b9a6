//! What every task of a cluster node shares: the store, the current view, the
//! peer client, and the read and write paths (spec: cluster.md "Writes and
//! reads"): reads and writes go to the key's primary; the primary applies a
//! write, replicates the resulting versioned entry to the other owners, and
//! acknowledges only once every one of them applied it (G1, G6).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use hive_store::{Applied, ExportedEntry, Kind, Op, Reply, Store, StoreError};
use hive_transport::{
    ApplyOutcome, Entry, ErrorKind, ExecuteRequest, ExecuteResponse, Operation, OperationResult,
    PROTOCOL_VERSION, PeerClient, PeerHandler, PeerStatus, RemoteError, ReplicateRequest,
    ReplicateResponse, TransferAck, TransferBatch, TransportError,
};
use parking_lot::RwLock;

use crate::batcher::{BatchError, Batchers, Forward, Replicate};
use crate::error::{ClusterError, Result};
use crate::in_flight::InFlight;
use crate::retry::{self, Next};
use crate::view::{NodeId, Peer, View};
use crate::wire::{
    MESSAGE_MARGIN, PeerOp, PeerReply, decode_op, decode_reply, encode_op, encode_reply,
    from_remote, from_wire, to_remote, to_wire,
};

/// Longest pause before retrying an operation that met a view disagreement
/// or an unreachable primary; a change of this node's view or agreement ends
/// it early.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// At most this many earlier views are remembered for catching up (views whose
/// window has passed are forgotten first; equal member sets are kept once).
const REMEMBERED_VIEWS: usize = 16;

/// How much longer than its first pause a wait for the other members may
/// pause between two rounds of asking them.
const POLL_BACKOFF: u32 = 8;

/// How many times a write superseded by a replica's newer version is run
/// again before giving up.
const SUPERSEDED_ATTEMPTS: usize = 3;

/// Where a key's operations run now ([`Shared::route`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'v> {
    /// Here: this node is the key's acting primary.
    Here,
    /// On this other member.
    Peer(&'v NodeId),
    /// Nowhere for now: the key is moving from this node, which stopped
    /// running it, to a new primary, which starts once every member sees the
    /// move.
    HandingOver,
    /// Nowhere for now: this node, the key's primary, was just paused for
    /// long enough to have been declared failed, and has not rejoined yet.
    Paused,
    /// Nowhere: no alive member owns the key.
    Nobody,
}

/// Why one attempt at an operation failed.
enum Failure {
    /// Final: report it.
    Final(ClusterError),
    /// The attempt surely did not run (wrong owner, never sent, or a read):
    /// try again with a fresher view until the deadline, then report
    /// `Unavailable`.
    Retry(String),
    /// A read whose reply did not fit in its batch's response: send it again
    /// at once.
    Resend(String),
}

impl From<ClusterError> for Failure {
    fn from(err: ClusterError) -> Self {
        Failure::Final(err)
    }
}

/// State shared by the node's tasks and its peer handler.
#[derive(Debug)]
pub(crate) struct Shared<C: PeerClient> {
    pub(crate) id: String,
    pub(crate) store: Arc<Store>,
    pub(crate) client: C,
    /// Forwarded operations, coalesced per peer.
    forwards: Batchers<C, Forward>,
    /// Replicated entries, coalesced per peer.
    replicas: Batchers<C, Replicate>,
    /// Writes run here as primary and not finished, per key: which of them
    /// an adopted newer state discarded.
    in_flight: InFlight,
    view: RwLock<Arc<View>>,
    /// Recent earlier views: a primary that does not know a key yet fetches it
    /// from the key's owners in these before running an operation (spec:
    /// cluster.md G4, and G5 for deletes while keys move).
    /// Kept until every member reports it finished moving data for the
    /// current view ([`Shared::forget_earlier`]).
    earlier: RwLock<Vec<Arc<View>>>,
    /// The newest view every member was seen to have: keys whose primary
    /// changed since are run by their old primary until the change is agreed
    /// ([`View::acting_primary`]).
    agreed: RwLock<Arc<View>>,
    /// Keys fetched from their earlier owners since the views were last
    /// forgotten: once the old primary stopped acting, one fetch brings the
    /// last state it wrote.
    /// Cleared (and its generation bumped) when the views change or are
    /// forgotten, so a fetch that spans the change does not count.
    caught_up: parking_lot::Mutex<(u64, std::collections::HashSet<Bytes>)>,
    /// Bytes of read replies one `Execute` response may carry (the message
    /// bound less [`MESSAGE_MARGIN`]); reads past it are deferred.
    reply_budget: usize,
    /// Members declared failed: nothing to fetch from them.
    failed: RwLock<std::collections::HashSet<String>>,
    pub(crate) request_timeout: Duration,
    stopping: AtomicBool,
    /// Key copies still to send in the current rebalance.
    pub(crate) rebalance_pending: AtomicU64,
    /// Monotonic base of `last_beat_ms`.
    clock_base: Instant,
    /// When the driver last beat, in ms since `clock_base`.
    last_beat_ms: AtomicU64,
    /// A driver silent this long means the process was paused (0: not
    /// watched, as when no driver runs).
    away_after_ms: AtomicU64,
    /// Set when a replica arrived for a key this node does not own (a write
    /// made while its primary remembered earlier views): the driver soon runs
    /// a housekeeping pass that moves such copies to the owners.
    pub(crate) leftovers: AtomicBool,
    /// Peer RPCs from this node that failed in transport (unreachable, timed
    /// out), and rebalance transfers a receiver did not confirm, since start.
    pub(crate) peer_errors: AtomicU64,
    /// Key copies a receiver refused in a rebalance, one by one, since start
    /// (over its size limits, undecodable, past its memory limit): kept here,
    /// not sent again at once.
    pub(crate) transfer_refusals: AtomicU64,
    /// Epoch of the last view whose rebalance finished.
    pub(crate) settled_epoch: AtomicU64,
    /// Bumped whenever the view, the settled epoch or the pending count
    /// changes, so readiness can be awaited instead of polled.
    changes: tokio::sync::watch::Sender<u64>,
}

impl<C: PeerClient> Shared<C> {
    pub(crate) fn new(
        id: String,
        store: Arc<Store>,
        client: C,
        view: View,
        request_timeout: Duration,
        max_message_size: usize,
    ) -> Self {
        Self {
            forwards: Batchers::new(client.clone(), id.clone(), request_timeout),
            replicas: Batchers::new(client.clone(), id.clone(), request_timeout),
            in_flight: InFlight::new(),
            id,
            store,
            client,
            agreed: RwLock::new(Arc::new(view.clone())),
            view: RwLock::new(Arc::new(view)),
            earlier: RwLock::new(Vec::new()),
            caught_up: parking_lot::Mutex::new((0, std::collections::HashSet::new())),
            reply_budget: max_message_size.saturating_sub(MESSAGE_MARGIN),
            failed: RwLock::new(std::collections::HashSet::new()),
            request_timeout,
            stopping: AtomicBool::new(false),
            rebalance_pending: AtomicU64::new(0),
            leftovers: AtomicBool::new(false),
            clock_base: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            away_after_ms: AtomicU64::new(0),
            peer_errors: AtomicU64::new(0),
            transfer_refusals: AtomicU64::new(0),
            settled_epoch: AtomicU64::new(0),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Tells readiness waiters that something they watch changed.
    /// Counts a peer RPC that failed in transport.
    pub(crate) fn peer_failed(&self) {
        self.peer_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn notify(&self) {
        self.changes
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Returns a receiver that wakes on every [`Shared::notify`].
    pub(crate) fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    /// Records that every member has `view` (see [`Shared::agreed`]).
    pub(crate) fn set_agreed(&self, view: Arc<View>) {
        *self.agreed.write() = view;
        self.notify();
    }

    /// Returns true if every member was seen to have the current view.
    pub(crate) fn is_agreed(&self) -> bool {
        self.agreed.read().digest() == self.view().digest()
    }

    /// Returns where operations on `key` run now, in `view`. This node runs
    /// them only if it is the key's primary in `view` and the change that made
    /// it so was agreed. A node that sees a key moving away stops at once, and
    /// the new primary starts only once every member (the old primary too)
    /// sees the move, so no two nodes run a key's operations at the same time
    /// (G4). The key is hashed once.
    fn route<'v>(&self, view: &'v View, key: &[u8]) -> Route<'v> {
        let at = hive_ring::position(key);
        let Some(primary) = view.primary_at(at) else {
            return Route::Nobody;
        };
        let acting = {
            let agreed = self.agreed.read();
            if std::ptr::eq(&**agreed, view) {
                primary
            } else {
                let failed = self.failed.read();
                view.acting_primary_at(&agreed, at, |id| failed.contains(id))
                    .unwrap_or(primary)
            }
        };
        match (*acting == self.id, *primary == self.id) {
            (false, _) => Route::Peer(acting),
            (true, true) if self.seems_paused() => Route::Paused,
            (true, true) => Route::Here,
            (true, false) => Route::HandingOver,
        }
    }

    /// Starts watching for pauses of this process: from now on, if the driver
    /// has not beaten ([`Shared::beat`]) for `away_after`, this node runs no
    /// key until it has rejoined as a new incarnation.
    pub(crate) fn watch_pauses(&self, away_after: Duration) {
        self.beat();
        let away_ms = u64::try_from(away_after.as_millis()).unwrap_or(u64::MAX);
        self.away_after_ms.store(away_ms.max(1), Ordering::Release);
    }

    /// Notes that the driver is running now.
    pub(crate) fn beat(&self) {
        let now = self.clock_base.elapsed().as_millis() as u64;
        self.last_beat_ms.store(now, Ordering::Release);
    }

    /// Returns true if the driver last beat longer ago than a pause peers
    /// would take for a failure: whatever this node holds may be out of date
    /// (the driver is about to rejoin as a new incarnation).
    fn seems_paused(&self) -> bool {
        let away = self.away_after_ms.load(Ordering::Acquire);
        if away == 0 {
            return false;
        }
        let now = self.clock_base.elapsed().as_millis() as u64;
        now.saturating_sub(self.last_beat_ms.load(Ordering::Acquire)) >= away
    }

    /// Makes `view` current; the one it replaces is remembered for catching up.
    pub(crate) fn set_view(&self, view: View) -> Arc<View> {
        let view = Arc::new(view);
        let replaced = std::mem::replace(&mut *self.view.write(), view.clone());
        self.remember(replaced);
        self.notify();
        view
    }

    /// Remembers `view` as one that keys may still be arriving from.
    pub(crate) fn remember(&self, view: Arc<View>) {
        if view.is_empty() {
            return;
        }
        self.reset_caught_up();
        let mut earlier = self.earlier.write();
        earlier.retain(|earlier| !same_members(earlier, &view));
        earlier.push(view);
        if earlier.len() > REMEMBERED_VIEWS {
            earlier.remove(0);
        }
    }

    /// Returns once every other member of `view` reports that it has that
    /// same view — and, with `settled`, finished moving data for it, so every
    /// key is at its owners in `view` and nothing is still arriving. Asks
    /// after `poll`, then less and less often (up to [`POLL_BACKOFF`] times
    /// `poll`): a change is usually agreed within a gossip round or two, and
    /// every member asking every other one stays cheap when it takes longer.
    pub(crate) async fn wait_for_members(&self, view: &View, settled: bool, poll: Duration) {
        let digest = view.digest();
        let mut pause = poll;
        loop {
            let asks = view
                .members()
                .filter(|peer| peer.id != self.id)
                .map(|peer| self.client.status(peer.rpc_addr, self.request_timeout));
            let done = join_all(asks).await.iter().all(|status| {
                matches!(status, Ok(status) if status.view == digest && (status.settled || !settled))
            });
            if done {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(poll * POLL_BACKOFF);
        }
    }

    /// Returns true while keys may still be arriving from earlier views.
    pub(crate) fn remembers_earlier(&self) -> bool {
        !self.earlier.read().is_empty()
    }

    /// Forgets the earlier views: every member finished moving data for the
    /// current one, so every key is at its owners.
    pub(crate) fn forget_earlier(&self) {
        self.earlier.write().clear();
        self.reset_caught_up();
    }

    fn reset_caught_up(&self) {
        let mut caught_up = self.caught_up.lock();
        caught_up.0 += 1;
        caught_up.1.clear();
    }

    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.forwards.stop();
        self.replicas.stop();
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Releases the connection and the batch queue of a peer that left or
    /// failed (spec: cluster.md "Peer protocol": dropped when the peer leaves).
    pub(crate) fn forget_peer(&self, addr: SocketAddr) {
        self.client.forget(addr);
        self.forwards.forget(addr);
        self.replicas.forget(addr);
    }

    /// Records that member `id` failed (`true`) or is alive again (`false`).
    pub(crate) fn mark_failed(&self, id: &str, failed: bool) {
        let mut set = self.failed.write();
        if failed {
            set.insert(id.to_owned());
        } else {
            set.remove(id);
        }
    }

    /// Returns true while some member is failed and not yet forgotten: it may
    /// come back with copies older than this node's tombstones.
    pub(crate) fn any_member_away(&self) -> bool {
        !self.failed.read().is_empty()
    }

    /// Returns the refusal for work arriving at a node that stopped:
    /// `NotOwner`, meaning nothing ran, so the sender may retry. A node that
    /// is leaving still takes replicas and transfers — its peers count it an
    /// owner until they see it leave — and hands them off with the rest.
    fn refusal(&self) -> Option<RemoteError> {
        self.is_stopping()
            .then(|| RemoteError::new(ErrorKind::NotOwner, format!("{} stopped", self.id)))
    }

    /// Runs a client operation wherever its key's primary is.
    pub(crate) async fn execute(&self, key: &[u8], op: Op) -> Result<Reply> {
        let deadline = Instant::now() + self.request_timeout;
        // Subscribed at the first retry; from then on a change of the view or
        // of the agreement ends the pause between two attempts early.
        let mut changes = None;
        loop {
            if self.is_stopping() {
                return Err(ClusterError::ShuttingDown);
            }
            let view = self.view();
            let attempt = match self.route(&view, key) {
                Route::Nobody => {
                    return Err(ClusterError::Unavailable(
                        "no alive member owns the key".into(),
                    ));
                }
                Route::Peer(primary) => self.forward(&view, primary, key, &op).await,
                Route::Here => self
                    .execute_as_primary(key, op.clone(), deadline)
                    .await
                    .map_err(Failure::from),
                Route::HandingOver => Err(Failure::Retry(
                    "the key is being handed over to its new primary".into(),
                )),
                Route::Paused => Err(Failure::Retry(
                    "this node was paused and is rejoining the cluster".into(),
                )),
            };
            match attempt {
                Ok(reply) => return Ok(reply),
                Err(Failure::Final(err)) => return Err(err),
                Err(Failure::Retry(reason)) if Instant::now() + RETRY_PAUSE < deadline => {
                    tracing::debug!(%reason, "retrying an operation");
                    match &mut changes {
                        // Try again at once: a change from now on is seen below.
                        None => changes = Some(self.changes()),
                        Some(changes) => {
                            let _ = tokio::time::timeout(RETRY_PAUSE, changes.changed()).await;
                        }
                    }
                }
                Err(Failure::Retry(reason)) => return Err(ClusterError::Unavailable(reason)),
                Err(Failure::Resend(_)) if Instant::now() < deadline => {}
                Err(Failure::Resend(reason)) => return Err(ClusterError::Unavailable(reason)),
            }
        }
    }

    /// Runs `op` here, as the key's primary; a write is acknowledged once every
    /// other owner applied the resulting entry (spec: cluster.md G1).
    ///
    /// A replica holding a newer version than the write produced (one written
    /// on the other side of a healed partition, say) would make the write
    /// vanish once versions converge (G7). The primary then adopts that newer
    /// state, which discards the effect of every write on the key in flight
    /// here, and each of them runs again on top of it ([`InFlight`]), so what
    /// it acknowledges is what every owner keeps, once.
    ///
    /// Answers by `deadline` — the caller's, so the caller learns the outcome
    /// rather than giving up on an unknown one: `Unavailable` if the key could
    /// not be caught up by then (nothing ran), `Indeterminate` if a write's
    /// replication did not finish (it ran here).
    pub(crate) async fn execute_as_primary(
        &self,
        key: &[u8],
        op: Op,
        deadline: Instant,
    ) -> Result<Reply> {
        let deadline = tokio::time::Instant::from_std(deadline);
        for _ in 0..SUPERSEDED_ATTEMPTS {
            tokio::time::timeout_at(deadline, self.catch_up(key))
                .await
                .map_err(|_| {
                    ClusterError::Unavailable(
                        "the key's state could not be fetched from its earlier owners in time"
                            .into(),
                    )
                })??;
            if !op.is_write() {
                return Ok(self.store.execute(key, op)?);
            }
            let (reply, ticket) = self
                .in_flight
                .write(key, || self.store.execute(key, op.clone()));
            let reply = reply?;
            tokio::time::timeout_at(deadline, self.replicate(key))
                .await
                .map_err(|_| {
                    ClusterError::Indeterminate(
                        "applied on the primary, but its replicas did not confirm it in time"
                            .into(),
                    )
                })??;
            if !ticket.discarded() {
                return Ok(reply);
            }
            tracing::debug!(node = %self.id, "a newer state from a replica was adopted; running the write again");
        }
        // The last run's effect was discarded here, but replicas that stored
        // it before the adoption may still show it until the newer state
        // reaches them.
        Err(ClusterError::Indeterminate(
            "replicas kept holding newer versions of the key; the write was superseded".into(),
        ))
    }

    /// Sends the key's current entry to every other owner in the current view
    /// (read after the write ran: a catch-up may have spanned a view change,
    /// and a node that stopped owning the key meanwhile must not keep the only
    /// copy), and waits for every one to confirm. A replica holding a newer
    /// version the primary lacks has it fetched and adopted here.
    async fn replicate(&self, key: &[u8]) -> Result<()> {
        let view = self.view();
        let replicas = self.replicas_of(&view, key);
        if replicas.is_empty() {
            return Ok(());
        }
        // The state after the write (or a newer one), never a re-run command
        // (spec: cluster.md G6): replicas keep whichever version is newest.
        let Some(entry) = self.store.export(key)? else {
            return Ok(());
        };
        let entry = to_wire(&entry);
        // Coalesced with other writes' entries for the same replica.
        let sends = replicas.iter().map(|peer| {
            self.replicas
                .execute(peer.rpc_addr, (view.epoch(), entry.clone()))
        });
        let mut newer_elsewhere = Vec::new();
        for (peer, result) in replicas.iter().zip(join_all(sends).await) {
            let applied = match result {
                Ok(Ok(ApplyOutcome::Stale)) => {
                    newer_elsewhere.push(peer.rpc_addr);
                    Ok(())
                }
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) | Err(BatchError::Remote(err)) => Err(err.to_string()),
                Err(BatchError::Unreachable(reason) | BatchError::Failed(reason)) => {
                    self.peer_failed();
                    Err(reason)
                }
            };
            if let Err(reason) = applied {
                return Err(ClusterError::Indeterminate(format!(
                    "applied on the primary, but replica {} did not confirm it ({reason})",
                    peer.id
                )));
            }
        }
        // A replica at the same version holds this very state, and one whose
        // newer version the primary already has (a later write here) will get
        // it from that write: only a version the primary lacks is adopted.
        for addr in newer_elsewhere {
            let adopted = match self.fetch(addr, key).await {
                Ok(Some(entry)) => self.adopt(key, entry),
                Ok(None) => Ok(()),
                Err(err) => Err(err),
            };
            adopted.map_err(|err| {
                ClusterError::Indeterminate(format!(
                    "applied on the primary, but a replica's newer version could not be adopted ({err})"
                ))
            })?;
        }
        Ok(())
    }

    /// Applies another node's state of `key` here if it is newer, discarding
    /// the effect of the writes in flight on the key (they run again).
    fn adopt(&self, key: &[u8], entry: ExportedEntry) -> Result<()> {
        self.in_flight
            .adopt(key, || Ok(self.store.apply(entry)? != Applied::Stale))
            .map(drop)
    }

    /// Returns the members a write to `key` must reach besides this node: its
    /// other owners in `view`, and — while earlier views are remembered — its
    /// owners in those that are still members. Nodes learn of a view change at
    /// different moments, so until every member settled on it a node that
    /// owned the key before may still be the one others fall back on (a
    /// failed primary's successor in their view): it must not miss a write
    /// acknowledged meanwhile (spec: cluster.md G1 during a join).
    fn replicas_of<'v>(&self, view: &'v View, key: &[u8]) -> Vec<&'v Peer> {
        let mut ids: Vec<&NodeId> = view
            .owners(key)
            .into_iter()
            .filter(|id| **id != self.id)
            .collect();
        for earlier in self.earlier.read().iter() {
            for id in earlier.owners(key) {
                if *id != self.id
                    && let Some(peer) = view.peer(id)
                    && !ids.contains(&&peer.id)
                {
                    ids.push(&peer.id);
                }
            }
        }
        ids.into_iter().filter_map(|id| view.peer(id)).collect()
    }

    /// Returns a request for another member's entry of `key`.
    fn fetch_request(&self, key: &[u8]) -> ExecuteRequest {
        ExecuteRequest {
            from_node: self.id.clone(),
            view: 0,
            timeout_ms: 0,
            ops: vec![Operation {
                key: Bytes::copy_from_slice(key),
                op: encode_op(&PeerOp::Fetch),
            }],
        }
    }

    /// Asks the member at `addr` for its entry of `key`.
    async fn fetch(&self, addr: SocketAddr, key: &[u8]) -> Result<Option<ExportedEntry>> {
        let response = self
            .client
            .execute(addr, self.fetch_request(key), self.request_timeout)
            .await
            .map_err(|err| {
                self.peer_failed();
                ClusterError::Unavailable(format!("fetch from {addr}: {err}"))
            })?;
        match response.results.into_iter().next() {
            Some(Ok(reply)) => match decode_reply(&reply)? {
                PeerReply::Entry(entry) => Ok(entry),
                _ => Err(ClusterError::Codec("another reply to a fetch".into())),
            },
            Some(Err(err)) => Err(from_remote(err)),
            None => Err(ClusterError::Codec("an empty fetch reply".into())),
        }
    }

    /// Returns true if this node answers for `key` in `view`: it is the key's
    /// acting primary — during a hand-over the old primary, which still
    /// holds the latest state, rather than the new one, which may not.
    fn answers_for(&self, view: &View, key: &[u8]) -> bool {
        matches!(
            self.route(view, key),
            Route::Here | Route::HandingOver | Route::Paused
        )
    }

    /// Returns the live keys of local shard `shard` this node answers for
    /// ([`Shared::answers_for`]), and the number of local shards.
    fn local_primary_keys(&self, shard: u32) -> (Vec<(Bytes, Kind)>, u32) {
        let view = self.view();
        let mut keys = self.store.shard_keys(shard as usize);
        keys.retain(|(key, _)| self.answers_for(&view, key));
        let shards = u32::try_from(self.store.shard_count()).unwrap_or(u32::MAX);
        (keys, shards)
    }

    /// Returns how many live keys this node answers for.
    fn local_primary_count(&self) -> u64 {
        let view = self.view();
        (0..self.store.shard_count())
            .map(|shard| {
                let keys = self.store.shard_keys(shard);
                keys.iter()
                    .filter(|(key, _)| self.answers_for(&view, key))
                    .count() as u64
            })
            .sum()
    }

    /// Returns the keys of shard `shard` of member `id` that it is the primary
    /// of, and its shard count.
    pub(crate) async fn primary_keys(
        &self,
        id: &str,
        shard: u32,
    ) -> Result<(Vec<(Bytes, Kind)>, u32)> {
        if id == self.id {
            return Ok(self.local_primary_keys(shard));
        }
        match self.ask(id, PeerOp::Keys { shard }).await? {
            PeerReply::Keys { keys, shards } => Ok((keys, shards)),
            _ => Err(ClusterError::Codec("another reply to a key listing".into())),
        }
    }

    /// Returns how many live keys member `id` is the primary of.
    pub(crate) async fn primary_count(&self, id: &str) -> Result<u64> {
        if id == self.id {
            return Ok(self.local_primary_count());
        }
        match self.ask(id, PeerOp::CountKeys).await? {
            PeerReply::Count(count) => Ok(count),
            _ => Err(ClusterError::Codec("another reply to a key count".into())),
        }
    }

    /// Sends member `id` one keyless peer operation and returns its reply.
    async fn ask(&self, id: &str, op: PeerOp) -> Result<PeerReply> {
        let addr = self
            .view()
            .peer(id)
            .map(|peer| peer.rpc_addr)
            .ok_or_else(|| ClusterError::Unavailable(format!("{id} left the view")))?;
        let request = ExecuteRequest {
            from_node: self.id.clone(),
            view: 0,
            timeout_ms: 0,
            ops: vec![Operation {
                key: Bytes::new(),
                op: encode_op(&op),
            }],
        };
        let response = self
            .client
            .execute(addr, request, self.request_timeout)
            .await
            .map_err(|err| {
                self.peer_failed();
                ClusterError::Unavailable(format!("asking {id}: {err}"))
            })?;
        match response.results.into_iter().next() {
            Some(Ok(reply)) => decode_reply(&reply),
            Some(Err(err)) => Err(from_remote(err)),
            None => Err(ClusterError::Codec("an empty reply".into())),
        }
    }

    /// Returns the owners of `key` in the remembered views, other than this node
    /// and members declared failed, with whether each is still in the view.
    fn earlier_owners(&self, key: &[u8]) -> Vec<(SocketAddr, bool)> {
        let earlier = self.earlier.read();
        // A key this node was the primary of all along was written nowhere else.
        if earlier
            .iter()
            .all(|view| view.primary(key).map(String::as_str) == Some(self.id.as_str()))
        {
            return Vec::new();
        }
        let current = self.view();
        let failed = self.failed.read();
        let mut owners: Vec<(SocketAddr, bool)> = Vec::new();
        for view in earlier.iter() {
            for id in view.owners(key) {
                if *id != self.id
                    && !failed.contains(id)
                    && let Some(peer) = view.peer(id)
                    && !owners.iter().any(|(addr, _)| *addr == peer.rpc_addr)
                {
                    owners.push((peer.rpc_addr, current.contains(id)));
                }
            }
        }
        owners
    }

    /// Before a primary first runs an operation on a key that had another
    /// primary in a remembered earlier view, fetches the key's state from its
    /// owners in those views and keeps the newest — even if a copy is already
    /// here, which a transfer may have brought before the old primary's last
    /// write. The old primary stopped acting once the change was agreed, so
    /// one fetch per key suffices: a read does not miss or go back on a key
    /// that is still moving, and a write or delete builds on (and supersedes)
    /// the moving copy instead of being undone by it. Owners gone from the view
    /// that do not answer are skipped.
    async fn catch_up(&self, key: &[u8]) -> Result<()> {
        let owners = self.earlier_owners(key);
        let generation = {
            let caught_up = self.caught_up.lock();
            if owners.is_empty() || caught_up.1.contains(key) {
                return Ok(());
            }
            caught_up.0
        };
        let fetches = owners.iter().map(|(addr, _)| {
            self.client
                .execute(*addr, self.fetch_request(key), self.request_timeout)
        });
        for ((addr, in_view), response) in owners.iter().zip(join_all(fetches).await) {
            let reply = match response {
                Ok(response) => response.results.into_iter().next(),
                // A member that left refuses the call once it stopped, or
                // drops it as it stops: gone, with its keys handed off (it
                // stops serving only after its hand-off).
                Err(TransportError::Unreachable { .. } | TransportError::Interrupted { .. })
                    if !in_view =>
                {
                    continue;
                }
                Err(TransportError::Remote(err)) if err.kind == ErrorKind::NotOwner && !in_view => {
                    continue;
                }
                // Not knowing what it holds, running the operation could undo a
                // moving key or revive a deleted one: refuse instead.
                Err(err) => {
                    return Err(ClusterError::Unavailable(format!(
                        "could not fetch the key's state from {addr}: {err}"
                    )));
                }
            };
            match reply {
                Some(Ok(reply)) => {
                    if let PeerReply::Entry(Some(entry)) = decode_reply(&reply)? {
                        self.adopt(key, entry)?;
                    }
                }
                // A stopped member answers NotOwner: gone too.
                Some(Err(err)) if err.kind == ErrorKind::NotOwner && !in_view => {}
                Some(Err(err)) => return Err(from_remote(err)),
                None => return Err(ClusterError::Codec("an empty fetch reply".into())),
            }
        }
        let mut caught_up = self.caught_up.lock();
        if caught_up.0 == generation {
            caught_up.1.insert(Bytes::copy_from_slice(key));
        }
        Ok(())
    }

    /// Sends `op` to `primary`.
    async fn forward(
        &self,
        view: &View,
        primary: &str,
        key: &[u8],
        op: &Op,
    ) -> Result<Reply, Failure> {
        let Some(peer) = view.peer(primary) else {
            return Err(Failure::Retry(format!("primary {primary} left the view")));
        };
        let operation = Operation {
            key: Bytes::copy_from_slice(key),
            op: encode_op(&PeerOp::Client(op.clone())),
        };
        let size = operation.key.len() + operation.op.len();
        if size > self.reply_budget {
            return Err(Failure::Final(ClusterError::Store(
                StoreError::InvalidArgument(format!(
                    "the operation is {size} bytes; a peer message carries at most {}",
                    self.reply_budget
                )),
            )));
        }
        let outcome = self.forwards.execute(peer.rpc_addr, operation).await;
        if matches!(
            outcome,
            Err(BatchError::Unreachable(_) | BatchError::Failed(_))
        ) {
            self.peer_failed();
        }
        match outcome {
            Ok(Ok(reply)) => match decode_reply(&reply) {
                Ok(PeerReply::Client(reply)) => Ok(reply),
                Ok(_) => Err(Failure::Final(ClusterError::Codec(
                    "another reply to an operation".into(),
                ))),
                Err(err) => Err(Failure::Final(err)),
            },
            // A per-operation error is the primary's answer, like a refusal
            // of the whole request.
            Ok(Err(err)) => Err(failure(BatchError::Remote(err), op.is_write())),
            Err(err) => Err(failure(err, op.is_write())),
        }
    }

    async fn execute_forwarded(
        &self,
        key: &[u8],
        op: PeerOp,
        deadline: Instant,
    ) -> OperationResult {
        let op = match op {
            PeerOp::Client(op) => op,
            PeerOp::Fetch => {
                let entry = self
                    .store
                    .export(key)
                    .map_err(|err| to_remote(&err.into()))?;
                return Ok(encode_reply(&PeerReply::Entry(entry)));
            }
            PeerOp::Keys { shard } => {
                let (keys, shards) = self.local_primary_keys(shard);
                return Ok(encode_reply(&PeerReply::Keys { keys, shards }));
            }
            PeerOp::CountKeys => {
                return Ok(encode_reply(&PeerReply::Count(self.local_primary_count())));
            }
        };
        if !matches!(self.route(&self.view(), key), Route::Here) {
            return Err(RemoteError::new(
                ErrorKind::NotOwner,
                format!("{} is not the primary of this key", self.id),
            ));
        }
        match self.execute_as_primary(key, op, deadline).await {
            Ok(reply) => Ok(encode_reply(&PeerReply::Client(reply))),
            Err(err) => Err(to_remote(&err)),
        }
    }
}

/// Returns the failure of a forwarded operation (a write if `write`) that got
/// `err` ([`retry::after_forward`]).
fn failure(err: BatchError, write: bool) -> Failure {
    let next = retry::after_forward(&err, write);
    let reason = match err {
        BatchError::Remote(remote) if next == Next::Report => {
            return Failure::Final(from_remote(remote));
        }
        BatchError::Remote(remote) => remote.message,
        BatchError::Unreachable(reason) | BatchError::Failed(reason) => reason,
    };
    match next {
        Next::Retry => Failure::Retry(reason),
        Next::Resend => Failure::Resend(reason),
        Next::MaybeRan | Next::Report => Failure::Final(ClusterError::Indeterminate(format!(
            "the write may have run on its primary: {reason}"
        ))),
    }
}

/// Keeps an `Execute` response's replies within `budget` bytes, so it stays
/// under the message bound however many large values a batch reads. Each result
/// comes with whether its operation was a read: a read whose reply would pass
/// the budget (after the first result, so every response makes progress) is
/// answered `Deferred` instead, and its caller sends it again — it had no
/// effect. A write's reply is always kept: the write ran.
fn fit_replies(results: Vec<(OperationResult, bool)>, budget: usize) -> Vec<OperationResult> {
    let mut used = 0usize;
    results
        .into_iter()
        .map(|(result, read)| {
            let size = match &result {
                Ok(reply) => reply.len(),
                Err(err) => err.message.len(),
            };
            if read && used > 0 && used.saturating_add(size) > budget {
                return Err(RemoteError::new(
                    ErrorKind::Deferred,
                    format!("a {size}-byte reply did not fit in the response"),
                ));
            }
            used = used.saturating_add(size);
            result
        })
        .collect()
}

/// The peer handler: what other nodes ask of this one.
#[derive(Debug)]
pub(crate) struct Handler<C: PeerClient>(pub(crate) Arc<Shared<C>>);

impl<C: PeerClient> PeerHandler for Handler<C> {
    async fn execute(&self, request: ExecuteRequest) -> Result<ExecuteResponse, RemoteError> {
        // A leaving node still serves fetches (new owners catching up); its
        // view no longer makes it a primary, so client operations get NotOwner.
        if self.0.is_stopping() {
            return Err(RemoteError::new(
                ErrorKind::NotOwner,
                format!("{} stopped", self.0.id),
            ));
        }
        // Answer within the time the caller still waits (deadlines nest).
        let budget = match request.timeout_ms {
            0 => self.0.request_timeout,
            ms => Duration::from_millis(u64::from(ms)).min(self.0.request_timeout),
        };
        let deadline = Instant::now() + budget;
        let runs = request.ops.into_iter().map(|operation| async move {
            match decode_op(&operation.op) {
                Ok(op) => {
                    let read = op.is_read();
                    let result = self.0.execute_forwarded(&operation.key, op, deadline).await;
                    (result, read)
                }
                Err(err) => (Err(err), false),
            }
        });
        let results = join_all(runs).await;
        Ok(ExecuteResponse {
            results: fit_replies(results, self.0.reply_budget),
        })
    }

    async fn replicate(&self, request: ReplicateRequest) -> Result<ReplicateResponse, RemoteError> {
        if let Some(refusal) = self.0.refusal() {
            return Err(refusal);
        }
        let view = self.0.view();
        let mut leftovers = false;
        let results = request
            .entries
            .into_iter()
            .map(|entry| {
                leftovers |= !view.owners(&entry.key).contains(&&self.0.id);
                apply(&self.0.store, entry)
            })
            .collect();
        if leftovers {
            self.0.leftovers.store(true, Ordering::Relaxed);
        }
        Ok(ReplicateResponse { results })
    }

    async fn transfer(&self, batch: TransferBatch) -> Result<TransferAck, RemoteError> {
        if let Some(refusal) = self.0.refusal() {
            return Err(refusal);
        }
        // Each entry stands alone: one this node cannot take (undecodable,
        // over its limits, past its memory limit) is refused by key, and the
        // rest of the batch is applied.
        let mut rejected = Vec::new();
        let mut entries = Vec::with_capacity(batch.entries.len());
        for entry in batch.entries {
            let key = entry.key.clone();
            match from_wire(entry) {
                Ok(entry) => entries.push(entry),
                Err(err) => rejected.push((key, err)),
            }
        }
        let keys: Vec<Bytes> = entries.iter().map(|entry| entry.key.clone()).collect();
        let mut applied = 0;
        for (key, result) in keys.into_iter().zip(self.0.store.apply_many(entries)) {
            match result {
                Ok(_) => applied += 1,
                Err(err) => rejected.push((key, to_remote(&ClusterError::Store(err)))),
            }
        }
        Ok(TransferAck {
            sequence: batch.sequence,
            applied,
            error: None,
            rejected,
        })
    }

    async fn status(&self) -> Result<PeerStatus, RemoteError> {
        let store = &self.0.store;
        let view = self.0.view();
        Ok(PeerStatus {
            node_id: self.0.id.clone(),
            protocol_version: PROTOCOL_VERSION,
            keys: store.len() as u64,
            memory_bytes: store.memory_bytes(),
            rebalance_pending: self.0.rebalance_pending.load(Ordering::Relaxed),
            view: view.digest(),
            settled: self.0.settled_epoch.load(Ordering::Acquire) == view.epoch(),
        })
    }
}

/// Applies one incoming entry if it is newer than what the store holds.
fn apply(store: &Store, entry: Entry) -> Result<ApplyOutcome, RemoteError> {
    let entry = from_wire(entry)?;
    match store.apply(entry) {
        Ok(Applied::Stored) => Ok(ApplyOutcome::Stored),
        Ok(Applied::Deleted) => Ok(ApplyOutcome::Deleted),
        Ok(Applied::Expired) => Ok(ApplyOutcome::Expired),
        Ok(Applied::Stale) => Ok(ApplyOutcome::Stale),
        Err(err) => Err(to_remote(&ClusterError::Store(err))),
    }
}

/// Returns true if both views have the same members.
fn same_members(a: &View, b: &View) -> bool {
    a.len() == b.len() && a.members().zip(b.members()).all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(bytes: usize) -> OperationResult {
        Ok(Bytes::from(vec![0; bytes]))
    }

    fn deferred(result: &OperationResult) -> bool {
        matches!(result, Err(err) if err.kind == ErrorKind::Deferred)
    }

    #[test]
    fn reads_past_the_reply_budget_are_deferred_and_writes_always_kept() {
        let results = vec![
            (reply(60), true),
            (reply(30), true),
            (reply(20), true),  // 60 + 30 + 20 > 100: deferred
            (reply(50), false), // a write's reply stays whatever its size
            (reply(5), true),   // past the budget now: deferred
            (Err(RemoteError::new(ErrorKind::NotFound, "")), true), // so is any read
            (Err(RemoteError::new(ErrorKind::WrongType, "")), false),
        ];
        let fitted = fit_replies(results, 100);
        let kept: Vec<bool> = fitted.iter().map(|result| !deferred(result)).collect();
        assert_eq!(kept, [true, true, false, true, false, false, true]);
        assert_eq!(fitted[3].as_ref().map(Bytes::len), Ok(50));
    }

    #[test]
    fn the_first_result_is_kept_whatever_its_size_so_every_response_progresses() {
        let fitted = fit_replies(vec![(reply(500), true), (reply(1), true)], 100);
        assert_eq!(fitted[0].as_ref().map(Bytes::len), Ok(500));
        assert!(deferred(&fitted[1]));
    }
}
