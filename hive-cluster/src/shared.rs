//! What every task of a cluster node shares: the store, the current view and
//! the views it remembers, agreement, routing, and pause detection — and,
//! one concern per file below, the read and write paths (spec: cluster.md
//! "Writes and reads"): reads and writes go to the key's primary; the primary
//! applies a write, replicates the resulting versioned entry to the other
//! owners, and acknowledges only once every one of them applied it (G1, G6).
//!
//! # Layout
//! - this file: [`Shared`], its state, views, agreement and [`Route`];
//! - `execute.rs`: running an operation wherever its key's primary is, and
//!   forwarding with retries;
//! - `primary.rs`: the primary's path — catch-up, the write, replication,
//!   adopting a replica's newer state;
//! - `scan.rs`: the keys a member answers for (SCAN, DBSIZE);
//! - `handler.rs`: [`Handler`], what other nodes ask of this one.

mod execute;
mod handler;
mod primary;
mod scan;

pub(crate) use handler::Handler;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use hive_store::Store;
use hive_transport::{ErrorKind, PeerClient, RemoteError};
use parking_lot::RwLock;
use tokio::time::Instant;

use crate::batcher::{Batchers, Forward, Replicate};
use crate::in_flight::InFlight;
use crate::view::{NodeId, Peer, View};
use crate::wire::MESSAGE_MARGIN;

/// At most this many earlier views are remembered for catching up (views whose
/// window has passed are forgotten first; equal member sets are kept once).
const REMEMBERED_VIEWS: usize = 16;

/// How much longer than its first pause a wait for the other members may
/// pause between two rounds of asking them.
const POLL_BACKOFF: u32 = 8;

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
    /// The members seen with the current view (its digest, then their ids;
    /// this node included): each of them has stopped running the keys that
    /// moved away from it, so their new primaries may start.
    acked: RwLock<(u64, HashSet<String>)>,
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
            acked: RwLock::new((0, HashSet::new())),
            failed: RwLock::new(HashSet::new()),
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

    /// Counts a peer RPC that failed in transport.
    pub(crate) fn peer_failed(&self) {
        self.peer_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Tells readiness waiters that something they watch changed.
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
                // The old primary hands the key over once it has this view
                // (it stops running the key the moment it does), or at once
                // if it failed.
                let failed = self.failed.read();
                let acked = self.acked.read();
                view.acting_primary_at(&agreed, at, |id| {
                    failed.contains(id) || acked.1.contains(id)
                })
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

    /// Records that member `id` was seen with the view of `digest`, if that is
    /// still the current view.
    fn acknowledge(&self, id: &str, digest: u64) {
        let mut acked = self.acked.write();
        if acked.0 == digest && !acked.1.contains(id) {
            acked.1.insert(id.to_owned());
            drop(acked);
            self.notify();
        }
    }

    /// Makes `view` current; the one it replaces is remembered for catching up.
    pub(crate) fn set_view(&self, view: View) -> Arc<View> {
        let view = Arc::new(view);
        tracing::debug!(node = %self.id, epoch = view.epoch(), members = %view.describe(), "view changed");
        *self.acked.write() = (view.digest(), HashSet::from([self.id.clone()]));
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
    ///
    /// Each member seen with the view is recorded as it answers
    /// ([`Shared::acknowledge`]): a key moves to its new primary as soon as its
    /// old primary has the view, without waiting for the slowest member.
    pub(crate) async fn wait_for_members(&self, view: &View, settled: bool, poll: Duration) {
        let digest = view.digest();
        let mut pause = poll;
        loop {
            let mut asks: FuturesUnordered<_> = view
                .members()
                .filter(|peer| peer.id != self.id)
                .map(|peer| async move {
                    let status = self
                        .client
                        .status(peer.rpc_addr, self.request_timeout)
                        .await;
                    (peer.id.as_str(), status)
                })
                .collect();
            let mut done = true;
            while let Some((id, status)) = asks.next().await {
                let has_view = matches!(&status, Ok(status) if status.view == digest);
                if has_view {
                    self.acknowledge(id, digest);
                }
                done &= has_view && matches!(&status, Ok(status) if status.settled || !settled);
            }
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
    /// Returns whether it was marked failed before.
    pub(crate) fn mark_failed(&self, id: &str, failed: bool) -> bool {
        let mut set = self.failed.write();
        if failed {
            !set.insert(id.to_owned())
        } else {
            set.remove(id)
        }
    }

    /// Records that `peer` is alive again. If this node had declared it
    /// failed (a healed partition), it may have run any key on its side while
    /// this node thought it ran them all along: until everyone settles, each
    /// key is caught up from it too before its first operation here
    /// ([`Shared::catch_up`]), as from a view where it was the only member.
    pub(crate) fn member_back(&self, peer: Peer) {
        if self.mark_failed(&peer.id, false) {
            let alone = View::new(self.view().replication_factor()).with(peer);
            self.remember(Arc::new(alone));
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
}

/// Returns true if both views have the same members.
fn same_members(a: &View, b: &View) -> bool {
    a.len() == b.len() && a.members().zip(b.members()).all(|(x, y)| x == y)
}
