//! The keys a member answers for, for cluster-wide scans and counts (`SCAN`,
//! `KEYS`, `DBSIZE`): each key is listed by its acting primary only.

use bytes::Bytes;
use hive_store::Kind;
use hive_transport::{ExecuteRequest, Operation, PeerClient};

use crate::error::{ClusterError, Result};
use crate::view::View;
use crate::wire::{PeerOp, PeerReply, decode_reply, encode_op, from_remote};

use super::Shared;

impl<C: PeerClient> Shared<C> {
    /// Returns true if this node answers for `key` in `view` in scans and
    /// counts: it is the key's primary in the newest view every member was
    /// seen to have (if still a member and not failed), else in `view` —
    /// during a hand-over the old primary, which holds the latest state,
    /// rather than the new one, which may not yet. Every node that agrees on
    /// those two views names the same member.
    fn answers_for(&self, view: &View, key: &[u8]) -> bool {
        let agreed = self.agreed.read();
        let failed = self.failed.read();
        view.acting_primary(&agreed, key, |id| failed.contains(id))
            .is_some_and(|acting| *acting == self.id)
    }

    /// Returns the live keys of local shard `shard` this node answers for
    /// ([`Shared::answers_for`]), and the number of local shards.
    pub(super) fn local_primary_keys(&self, shard: u32) -> (Vec<(Bytes, Kind)>, u32) {
        let view = self.view();
        let mut keys = self.store.shard_keys(shard as usize);
        keys.retain(|(key, _)| self.answers_for(&view, key));
        let shards = u32::try_from(self.store.shard_count()).unwrap_or(u32::MAX);
        (keys, shards)
    }

    /// Returns how many live keys this node answers for.
    pub(super) fn local_primary_count(&self) -> u64 {
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
}
