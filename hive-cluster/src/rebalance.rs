//! Executes a rebalance plan (spec: cluster.md "Rebalancing"): streams each
//! receiver its keys in bounded batches with back-pressure (the transport's
//! window of unacknowledged batches), then drops the copies this node no longer
//! owns — only those whose every receiver confirmed, and only if no newer
//! write arrived since they were exported. A failed transfer drops nothing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use bytes::Bytes;
use hive_store::{ExportedData, ExportedEntry};
use hive_transport::{PeerClient, TransferBatch};

use crate::node::Shared;
use crate::plan::plan;
use crate::view::{NodeId, View};
use crate::wire::to_wire;

/// Entries per batch, at most.
const BATCH_ENTRIES: usize = 256;
/// Bytes of keys and payloads per batch, at most (one entry may exceed it).
const BATCH_BYTES: usize = 1 << 20;

/// Moves this node's data from the placement of `old` to that of `new`.
pub(crate) async fn run<C: PeerClient>(
    shared: &Shared<C>,
    old: &View,
    new: &View,
) -> Result<(), String> {
    let store = &shared.store;
    let mut keys = store.keys();
    keys.extend(store.tombstone_keys());
    let plan = plan(&shared.id, keys.iter().map(Bytes::as_ref), old, new);
    shared
        .rebalance_pending
        .store(plan.pending() as u64, Ordering::Relaxed);
    if plan.pending() == 0 && plan.drops.is_empty() {
        return Ok(());
    }
    // Export each moving key once, so every receiver gets the same version and
    // the drop below can check nothing newer arrived since.
    let mut exported: HashMap<&[u8], ExportedEntry> = HashMap::new();
    let mut receivers: HashMap<&[u8], Vec<&NodeId>> = HashMap::new();
    for (receiver, keys) in &plan.sends {
        for key in keys {
            receivers.entry(key).or_default().push(receiver);
            if !exported.contains_key(key.as_slice())
                && let Ok(Some(entry)) = store.export(key)
            {
                exported.insert(key, entry);
            }
        }
    }
    let mut failed: HashSet<&NodeId> = HashSet::new();
    for (receiver, keys) in &plan.sends {
        if let Err(reason) = send(shared, new, receiver, keys, &exported).await {
            tracing::warn!(node = %shared.id, %receiver, %reason, "rebalance transfer failed; will retry");
            failed.insert(receiver);
        }
    }
    for key in &plan.drops {
        let confirmed = receivers
            .get(key.as_slice())
            .is_none_or(|to| to.iter().all(|r| !failed.contains(r)));
        if !confirmed {
            continue;
        }
        match exported.get(key.as_slice()) {
            Some(entry) if entry.data == ExportedData::Tombstone => {
                store.forget_tombstone(key, entry.version);
            }
            Some(entry) => {
                store.remove_if_version(key, entry.version);
            }
            None => {}
        }
    }
    shared.rebalance_pending.store(0, Ordering::Relaxed);
    shared.notify();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} receiver(s) did not confirm", failed.len()))
    }
}

/// Streams `keys` to `receiver` and waits for every acknowledgement.
async fn send<C: PeerClient>(
    shared: &Shared<C>,
    view: &View,
    receiver: &str,
    keys: &[Vec<u8>],
    exported: &HashMap<&[u8], ExportedEntry>,
) -> Result<(), String> {
    let peer = view
        .peer(receiver)
        .ok_or_else(|| format!("{receiver} left the view"))?;
    let mut stream = shared
        .client
        .transfer(peer.rpc_addr, shared.request_timeout)
        .await
        .map_err(|err| err.to_string())?;
    let mut sequence = 0;
    let mut entries = Vec::new();
    let mut bytes = 0;
    let batch = |sequence, entries, last| TransferBatch {
        from_node: shared.id.clone(),
        view: view.epoch(),
        sequence,
        entries,
        last,
    };
    for key in keys {
        let Some(entry) = exported.get(key.as_slice()) else {
            continue;
        };
        let entry = to_wire(entry);
        bytes += entry.key.len() + entry.payload.len();
        entries.push(entry);
        if entries.len() >= BATCH_ENTRIES || bytes >= BATCH_BYTES {
            let sent = entries.len() as u64;
            stream
                .send(batch(sequence, std::mem::take(&mut entries), false))
                .await
                .map_err(|err| err.to_string())?;
            shared.rebalance_pending.fetch_sub(
                sent.min(shared.rebalance_pending.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            sequence += 1;
            bytes = 0;
        }
    }
    stream
        .send(batch(sequence, entries, true))
        .await
        .map_err(|err| err.to_string())?;
    let acks = stream.finish().await.map_err(|err| err.to_string())?;
    match acks.into_iter().find_map(|ack| ack.error) {
        Some(err) => Err(err.to_string()),
        None => Ok(()),
    }
}
