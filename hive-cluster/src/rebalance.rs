//! Executes a rebalance plan (spec: cluster.md "Rebalancing"): streams each
//! receiver its keys in bounded batches with back-pressure (the transport's
//! window of unacknowledged batches), then drops the copies this node no longer
//! owns — only those whose every receiver confirmed, and only if no newer
//! write arrived since they were exported. A failed transfer drops nothing.
//!
//! One pass, pipelined: each moving key is exported once (so every receiver
//! gets the same version, and the drop can check nothing newer arrived since)
//! just before its batch goes out, while earlier batches are still in flight
//! and being applied; nothing but keys and versions is held for the whole
//! rebalance.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::future::join_all;
use hive_store::{Exported, ExportedEntry};
use hive_transport::{Entry, ErrorKind, PeerClient, RemoteError, TransferBatch, TransferStream};
use tokio::time::Instant;

use crate::plan::ArcPlans;
use crate::shared::Shared;
use crate::view::{NodeId, View};
use crate::wire::to_wire;

/// Entries per batch, at most.
const BATCH_ENTRIES: usize = 256;
/// Bytes of keys and payloads per batch, at most (one entry may exceed it).
const BATCH_BYTES: usize = 1 << 20;
/// Keys planned between two yields to the runtime, and keys exported or
/// dropped per store call and between two yields. Planning, exporting and
/// dropping are CPU work that rarely awaits (a batch goes out at once while
/// the window has room); without yielding, a rebalance holds a worker thread
/// for tens of milliseconds and the client operations queued behind it wait
/// (spec: cluster.md "must not stall client traffic"). Each step takes some
/// tens of microseconds; longer steps measurably raise client p99 latency
/// during a rebalance (P8).
const PLAN_STEP: usize = 64;
const MOVE_STEP: usize = 16;

/// Moves this node's data from the placement of `old` to that of `new`.
///
/// Works shard by shard in the store's own order, so each store call finds
/// its shard's keys together and takes the shard's lock once per run of
/// them, and the receivers, whose stores shard keys the same way, apply them
/// in runs too.
pub(crate) async fn run<C: PeerClient>(
    shared: &Shared<C>,
    old: &View,
    new: &View,
) -> Result<(), String> {
    let store = &shared.store;
    let started = Instant::now();
    // Decide every key first, so progress can be reported from the start:
    // each moving key with the arc whose plan applies to it.
    let arcs = ArcPlans::new(&shared.id, old, new);
    let mut moves: Vec<(Bytes, usize)> = Vec::new();
    for shard in 0..store.shard_count() {
        for step in store.held_keys(shard).chunks(PLAN_STEP) {
            for key in step {
                let arc = arcs.arc_of(hive_ring::position(key));
                if !arcs.plan(arc).send_to.is_empty() {
                    moves.push((key.clone(), arc));
                }
            }
            tokio::task::yield_now().await;
        }
    }
    let pending: usize = moves
        .iter()
        .map(|(_, arc)| arcs.plan(*arc).send_to.len())
        .sum();
    shared
        .rebalance_pending
        .store(pending as u64, Ordering::Relaxed);
    if moves.is_empty() {
        return Ok(());
    }
    let mut outbound: Vec<Outbound> = Vec::new();
    // What each moving key was exported as; `None` if it vanished (expired)
    // before its turn.
    let mut sent: Vec<Option<Exported>> = Vec::with_capacity(moves.len());
    for step in moves.chunks(MOVE_STEP) {
        let entries = store.export_many(step.iter().map(|(key, _)| key));
        for ((_, arc), entry) in step.iter().zip(entries) {
            sent.push(entry.as_ref().map(ExportedEntry::exported));
            let Some(entry) = entry else { continue };
            let wire = to_wire(&entry);
            for receiver in &arcs.plan(*arc).send_to {
                let found = outbound.iter().position(|out| out.receiver == **receiver);
                let at = match found {
                    Some(at) => at,
                    None => {
                        outbound.push(Outbound::open(shared, new, receiver).await);
                        outbound.len() - 1
                    }
                };
                outbound[at].push(shared, new, wire.clone()).await;
            }
        }
        tokio::task::yield_now().await;
    }
    let finished = join_all(outbound.into_iter().map(|out| out.finish(shared, new))).await;
    let mut failed: HashSet<NodeId> = HashSet::new();
    // Copies a receiver refused one by one: a permanent condition as far as
    // this pass can tell (its limits, its memory), so they are kept here and
    // reported — not a failed transfer retried in a loop, which would keep
    // the cluster from ever settling.
    let mut refused: HashSet<Bytes> = HashSet::new();
    for (receiver, result) in finished {
        match result {
            Ok(rejected) => {
                // Not confirmed by a receiver that does not own the key by its
                // own view (views differ for a while after a change): kept
                // here until a pass finds the receivers agreeing.
                let (not_owner, rejected): (Vec<_>, Vec<_>) = rejected
                    .into_iter()
                    .partition(|(_, err)| err.kind == ErrorKind::NotOwner);
                if !not_owner.is_empty() {
                    tracing::debug!(
                        node = %shared.id,
                        %receiver,
                        kept = not_owner.len(),
                        "the receiver does not own these keys by its view; copies kept"
                    );
                }
                refused.extend(not_owner.into_iter().map(|(key, _)| key));
                if let Some((key, reason)) = rejected.first() {
                    tracing::error!(
                        node = %shared.id,
                        %receiver,
                        refused = rejected.len(),
                        first_key = %String::from_utf8_lossy(key),
                        %reason,
                        "the receiver refused key copies; they stay here"
                    );
                }
                shared
                    .transfer_refusals
                    .fetch_add(rejected.len() as u64, Ordering::Relaxed);
                refused.extend(rejected.into_iter().map(|(key, _)| key));
            }
            Err(reason) => {
                tracing::warn!(node = %shared.id, %receiver, %reason, "rebalance transfer failed; will retry");
                shared.peer_failed();
                failed.insert(receiver);
            }
        }
    }
    // Drop the copies this node no longer owns whose receivers all confirmed.
    let droppable: Vec<(&Bytes, Exported)> = moves
        .iter()
        .zip(&sent)
        .filter(|((key, arc), _)| {
            let plan = arcs.plan(*arc);
            plan.drop_after
                && plan.send_to.iter().all(|to| !failed.contains(*to))
                && !refused.contains(key)
        })
        .filter_map(|((key, _), sent)| sent.map(|exported| (key, exported)))
        .collect();
    if tracing::enabled!(tracing::Level::TRACE) {
        let dropping: HashSet<&Bytes> = droppable.iter().map(|(key, _)| *key).collect();
        for ((key, arc), sent) in moves.iter().zip(&sent) {
            let plan = arcs.plan(*arc);
            tracing::trace!(
                node = %shared.id,
                key = %String::from_utf8_lossy(key),
                to = ?plan.send_to,
                version = ?sent.map(|exported| exported.version),
                dropping = dropping.contains(key),
                "moved"
            );
        }
    }
    let mut dropped = 0;
    for step in droppable.chunks(MOVE_STEP) {
        dropped += store.drop_exported(step.iter().copied());
        tokio::task::yield_now().await;
    }
    tracing::debug!(
        node = %shared.id,
        moved = moves.len(),
        dropped,
        took = ?started.elapsed(),
        from = %old.describe(),
        to = %new.describe(),
        "rebalance pass finished"
    );
    shared.rebalance_pending.store(0, Ordering::Relaxed);
    shared.notify();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} receiver(s) did not confirm", failed.len()))
    }
}

/// One receiver's transfer stream and the batch being filled for it. After
/// the first failure it only remembers why.
struct Outbound {
    receiver: NodeId,
    stream: Result<TransferStream, String>,
    entries: Vec<Entry>,
    bytes: usize,
    sequence: u64,
}

impl Outbound {
    async fn open<C: PeerClient>(shared: &Shared<C>, view: &View, receiver: &str) -> Outbound {
        let stream = match view.peer(receiver) {
            Some(peer) => shared
                .client
                .transfer(peer.rpc_addr, shared.request_timeout)
                .await
                .map_err(|err| err.to_string()),
            None => Err(format!("{receiver} left the view")),
        };
        Outbound {
            receiver: receiver.to_owned(),
            stream,
            entries: Vec::new(),
            bytes: 0,
            sequence: 0,
        }
    }

    /// Queues `entry`, sending the batch once it is full.
    async fn push<C: PeerClient>(&mut self, shared: &Shared<C>, view: &View, entry: Entry) {
        if self.stream.is_err() {
            return;
        }
        self.bytes += entry.key.len() + entry.payload.len();
        self.entries.push(entry);
        if self.entries.len() >= BATCH_ENTRIES || self.bytes >= BATCH_BYTES {
            self.flush(shared, view, false).await;
        }
    }

    /// Sends the queued entries as one batch (the last one if `last`).
    async fn flush<C: PeerClient>(&mut self, shared: &Shared<C>, view: &View, last: bool) {
        let Ok(stream) = &mut self.stream else {
            return;
        };
        let entries = std::mem::take(&mut self.entries);
        let count = entries.len() as u64;
        let batch = TransferBatch {
            from_node: shared.id.clone(),
            view: view.epoch(),
            sequence: self.sequence,
            entries,
            last,
        };
        if let Err(err) = stream.send(batch).await {
            self.stream = Err(err.to_string());
            return;
        }
        let _ = shared.rebalance_pending.fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |pending| Some(pending.saturating_sub(count)),
        );
        self.sequence += 1;
        self.bytes = 0;
    }

    /// Sends what is queued and waits for every acknowledgement; returns the
    /// copies the receiver refused one by one, with why.
    async fn finish<C: PeerClient>(
        mut self,
        shared: &Shared<C>,
        view: &View,
    ) -> (NodeId, Result<Vec<(Bytes, RemoteError)>, String>) {
        self.flush(shared, view, true).await;
        let result = match self.stream {
            Ok(stream) => match stream.finish().await {
                Ok(acks) => {
                    let mut rejected = Vec::new();
                    let mut error = None;
                    for ack in acks {
                        error = error.or(ack.error);
                        rejected.extend(ack.rejected);
                    }
                    match error {
                        Some(err) => Err(err.to_string()),
                        None => Ok(rejected),
                    }
                }
                Err(err) => Err(err.to_string()),
            },
            Err(reason) => Err(reason),
        };
        (self.receiver, result)
    }
}
