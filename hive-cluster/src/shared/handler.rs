//! The peer handler: what other nodes ask of this one — forwarded operations,
//! replicas, rebalance batches, status.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use hive_store::{Applied, Store, Version};
use hive_transport::{
    ApplyOutcome, Entry, ErrorKind, ExecuteRequest, ExecuteResponse, OperationResult,
    PROTOCOL_VERSION, PeerClient, PeerHandler, PeerStatus, RemoteError, ReplicateRequest,
    ReplicateResponse, TransferAck, TransferBatch,
};
use tokio::time::Instant;

use crate::error::{ClusterError, Result};
use crate::wire::{PeerOp, PeerReply, decode_op, encode_reply, from_wire, to_remote};

use super::{Route, Shared};

impl<C: PeerClient> Shared<C> {
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
        // Client operations only from a member of this node's view: one from
        // a node it has declared failed was routed by a view it does not
        // share — a request sent before a partition and delivered when it
        // heals would otherwise run here, on a copy the other side has moved
        // past, with a fresh version. Nothing runs; the sender retries. Peer
        // reads (a joining node's catch-up fetches, key listings) are served.
        let from_member = self.0.view().contains(&request.from_node);
        let from = &request.from_node;
        // Answer within the time the caller still waits (deadlines nest).
        let budget = match request.timeout_ms {
            0 => self.0.request_timeout,
            ms => Duration::from_millis(u64::from(ms)).min(self.0.request_timeout),
        };
        let deadline = Instant::now() + budget;
        let runs = request.ops.into_iter().map(|operation| async move {
            match decode_op(&operation.op) {
                Ok(PeerOp::Client(_)) if !from_member => {
                    let refusal = RemoteError::new(
                        ErrorKind::NotOwner,
                        format!("{from} is not a member of {}'s view", self.0.id),
                    );
                    (Err(refusal), false)
                }
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
        // A copy of a key this node does not own by its own view is kept (the
        // newest version wins, and it moves on from here) but not confirmed:
        // the sender planned with a view this node does not share, and once
        // both dropped their copies on each other's word, a key could end up
        // with fewer copies than the replication factor — or none.
        let view = self.0.view();
        let mut leftovers = false;
        for (key, result) in keys.into_iter().zip(self.0.store.apply_many(entries)) {
            match result {
                Ok(_) if !view.owners(&key).contains(&&self.0.id) => {
                    leftovers = true;
                    let refusal = RemoteError::new(
                        ErrorKind::NotOwner,
                        format!("{} does not own the key in its view", self.0.id),
                    );
                    rejected.push((key, refusal));
                }
                Ok(_) => applied += 1,
                Err(err) => rejected.push((key, to_remote(&ClusterError::Store(err)))),
            }
        }
        if leftovers {
            self.0.leftovers.store(true, Ordering::Relaxed);
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

/// Applies one replicated entry if it is newer than what the store holds and,
/// when the primary says what its state was built on, if it does not lose a
/// write the store holds (spec: cluster.md G1; see [`Store::apply_built_on`]).
fn apply(store: &Store, entry: Entry) -> Result<ApplyOutcome, RemoteError> {
    let base = entry.base.map(|base| Version {
        hlc: base.hlc,
        node: base.node,
    });
    let entry = from_wire(entry)?;
    let applied = match base {
        Some(base) => store.apply_built_on(entry, base),
        None => store.apply(entry),
    };
    match applied {
        Ok(Applied::Stored) => Ok(ApplyOutcome::Stored),
        Ok(Applied::Deleted) => Ok(ApplyOutcome::Deleted),
        Ok(Applied::Expired) => Ok(ApplyOutcome::Expired),
        Ok(Applied::Stale) => Ok(ApplyOutcome::Stale),
        Ok(Applied::Diverged) => Ok(ApplyOutcome::Diverged),
        Err(err) => Err(to_remote(&ClusterError::Store(err))),
    }
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
