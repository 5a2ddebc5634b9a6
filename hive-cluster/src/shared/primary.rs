//! The primary's path: catch a key up from its earlier owners, run the write,
//! replicate the resulting state to every other owner, and adopt a replica's
//! newer state when one holds it (spec: cluster.md G1, G4, G5, G6).

use std::net::SocketAddr;

use bytes::Bytes;
use futures::future::join_all;
use hive_store::{Applied, ExportedEntry, Op, Reply, Version};
use hive_transport::{
    ApplyOutcome, Entry, ErrorKind, ExecuteRequest, Operation, PeerClient, Stamp, TransportError,
};
use tokio::time::Instant;

use crate::batcher::BatchError;
use crate::error::{ClusterError, Result};
use crate::view::{NodeId, Peer, View};
use crate::wire::{PeerOp, PeerReply, decode_reply, encode_op, from_remote, to_wire};

use super::Shared;

/// How many times a write superseded by a replica's newer version is run
/// again before giving up.
const SUPERSEDED_ATTEMPTS: usize = 3;

impl<C: PeerClient> Shared<C> {
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
            let ((reply, base), ticket) = self.in_flight.write(key, || {
                let base = self.store.state_version(key);
                (self.store.execute(key, op.clone()), base)
            });
            let reply = reply?;
            let base = base?.unwrap_or(Version::ZERO);
            tokio::time::timeout_at(deadline, self.replicate(key, base))
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
            tracing::debug!(node = %self.id, "a replica's state was taken over; running the write again");
        }
        // The last run's effect was discarded here, but replicas that stored
        // it before the adoption may still show it until the newer state
        // reaches them.
        Err(ClusterError::Indeterminate(
            "replicas kept holding newer versions of the key; the write was superseded".into(),
        ))
    }

    /// Sends the key's current entry, built on `base`, to every other owner
    /// in the current view (read after the write ran: a catch-up may have
    /// spanned a view change, and a node that stopped owning the key
    /// meanwhile must not keep the only copy), and waits for every one to
    /// confirm. A replica holding a newer version the primary lacks has it
    /// fetched and adopted here; so does one whose state the primary's was
    /// not built on (`Diverged`: this node acted on a stale copy, which
    /// nothing told it to catch up — failure detection is not symmetric),
    /// even if the primary's version is newer.
    async fn replicate(&self, key: &[u8], base: Version) -> Result<()> {
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
        let entry = Entry {
            base: Some(Stamp {
                hlc: base.hlc,
                node: base.node,
            }),
            ..to_wire(&entry)
        };
        // Coalesced with other writes' entries for the same replica.
        let sends = replicas.iter().map(|peer| {
            self.replicas
                .execute(peer.rpc_addr, (view.epoch(), entry.clone()))
        });
        let mut newer_elsewhere = Vec::new();
        let mut diverged = Vec::new();
        for (peer, result) in replicas.iter().zip(join_all(sends).await) {
            let applied = match result {
                Ok(Ok(ApplyOutcome::Stale)) => {
                    newer_elsewhere.push(peer.rpc_addr);
                    Ok(())
                }
                Ok(Ok(ApplyOutcome::Diverged)) => {
                    diverged.push(peer);
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
        for peer in diverged {
            let taken = match self.fetch(peer.rpc_addr, key).await {
                Ok(Some(entry)) => self.take_over(key, entry),
                Ok(None) => Err(ClusterError::Unavailable(
                    "it no longer holds the key".into(),
                )),
                Err(err) => Err(err),
            };
            taken.map_err(|err| {
                ClusterError::Indeterminate(format!(
                    "applied on the primary, but replica {} holds a write this state lacks, \
                     and its state could not be taken over ({err})",
                    peer.id
                ))
            })?;
            tracing::debug!(
                node = %self.id,
                replica = %peer.id,
                key = %String::from_utf8_lossy(key),
                "a replica holds a write this primary's copy lacked: taken over"
            );
        }
        Ok(())
    }

    /// Replaces the local state of `key` with a replica's that the local one
    /// had diverged from, even though it is older, discarding the effect of
    /// the writes in flight on the key (they run again on top of it).
    fn take_over(&self, key: &[u8], entry: ExportedEntry) -> Result<()> {
        self.in_flight
            .adopt(key, || Ok(self.store.replace(entry)? != Applied::Stale))
            .map(drop)
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
                // A member that restarted since is another process: the one
                // the earlier view names is gone with what it held (copies
                // at the other owners are fetched from them), and its
                // successor holds nothing it can vouch for.
                let restarted = |peer: &Peer| {
                    current
                        .peer(id)
                        .is_some_and(|now| now.incarnation != peer.incarnation)
                };
                if *id != self.id
                    && !failed.contains(id)
                    && let Some(peer) = view.peer(id)
                    && !restarted(peer)
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
}
