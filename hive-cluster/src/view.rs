//! The membership view: the alive members, their ring, and the owners of a key.
//!
//! Every node builds the same view from the same members, so every node
//! computes the same owners for every key.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use hive_ring::Ring;

/// A node's id.
pub type NodeId = String;

/// A member that owns keys: alive, with its peer address and ring weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its node id.
    pub id: NodeId,
    /// Where its peer RPC server listens.
    pub rpc_addr: SocketAddr,
    /// Its virtual-node count on the ring.
    pub vnodes: u32,
    /// Which start of the member this is (its boot nonce): a member back with
    /// another incarnation restarted and holds nothing it held before, so it
    /// is a new owner of its keys although its id and place on the ring are
    /// the same.
    pub incarnation: u64,
}

/// The alive members as one node sees them, and the placement they imply.
#[derive(Debug, Clone)]
pub struct View {
    epoch: u64,
    replication_factor: usize,
    members: BTreeMap<NodeId, Peer>,
    ring: Ring<NodeId>,
}

impl View {
    /// Returns an empty view (epoch 0) placing `replication_factor` copies of each key.
    pub fn new(replication_factor: usize) -> Self {
        Self {
            epoch: 0,
            replication_factor: replication_factor.max(1),
            members: BTreeMap::new(),
            ring: Ring::new(),
        }
    }

    /// Returns the view with `peer` added (or updated), one epoch later.
    #[must_use]
    pub fn with(&self, peer: Peer) -> View {
        let mut next = self.clone();
        next.epoch += 1;
        next.ring.add(peer.id.clone(), peer.vnodes);
        next.members.insert(peer.id.clone(), peer);
        next
    }

    /// Returns the view without member `id`, one epoch later.
    #[must_use]
    pub fn without(&self, id: &str) -> View {
        let mut next = self.clone();
        next.epoch += 1;
        if next.members.remove(id).is_some() {
            next.ring.remove(&id.to_owned());
        }
        next
    }

    /// Returns the members as `id#incarnation`, for logs: views are told
    /// apart by who is in them, not by their local epochs.
    pub fn describe(&self) -> String {
        let members: Vec<String> = self
            .members()
            .map(|peer| format!("{}#{:04x}", peer.id, peer.incarnation & 0xffff))
            .collect();
        format!("[{}]", members.join(" "))
    }

    /// Returns how many changes led to this view (local to this node).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Returns the number of copies kept of each key.
    pub fn replication_factor(&self) -> usize {
        self.replication_factor
    }

    /// Returns the number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Returns true without members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Returns true if `id` is a member.
    pub fn contains(&self, id: &str) -> bool {
        self.members.contains_key(id)
    }

    /// Returns member `id`.
    pub fn peer(&self, id: &str) -> Option<&Peer> {
        self.members.get(id)
    }

    /// Returns the members, ordered by id.
    pub fn members(&self) -> impl Iterator<Item = &Peer> {
        self.members.values()
    }

    /// Returns the owners of `key`, primary first: `min(replication_factor,
    /// members)` distinct members.
    pub fn owners(&self, key: &[u8]) -> Vec<&NodeId> {
        self.ring.owners(key, self.replication_factor)
    }

    /// Returns the owners of the keys at ring position `at`
    /// ([`hive_ring::position`]), as [`View::owners`] does for a key.
    pub fn owners_at(&self, at: u64) -> Vec<&NodeId> {
        self.ring.owners_at(at, self.replication_factor)
    }

    /// Returns the ring's vnode positions, ascending: owners are constant on
    /// each arc `(positions[i - 1], positions[i]]` (the first arc wraps).
    pub fn positions(&self) -> &[u64] {
        self.ring.positions()
    }

    /// Returns the primary of `key`.
    pub fn primary(&self, key: &[u8]) -> Option<&NodeId> {
        self.ring.owner(key)
    }

    /// Returns the primary of the keys at ring position `at`.
    pub fn primary_at(&self, at: u64) -> Option<&NodeId> {
        self.ring.owner_at(at)
    }

    /// Returns a digest of the members, their incarnations and their ring
    /// weights: equal on two nodes exactly when they place every key alike on
    /// the same incarnations (barring a 64-bit collision). Epochs are local;
    /// this is what nodes compare.
    pub fn digest(&self) -> u64 {
        let mut bytes = Vec::new();
        for peer in self.members.values() {
            bytes.extend_from_slice(&(peer.id.len() as u64).to_le_bytes());
            bytes.extend_from_slice(peer.id.as_bytes());
            bytes.extend_from_slice(&peer.vnodes.to_le_bytes());
            bytes.extend_from_slice(&peer.incarnation.to_le_bytes());
        }
        bytes.extend_from_slice(&(self.replication_factor as u64).to_le_bytes());
        hive_ring::position(&bytes)
    }

    /// Returns the member that runs operations on `key` while this view is
    /// current but `agreed` is the newest view every member is known to have:
    /// the key's primary in `agreed` as long as it is still a member here and
    /// not `failed`, else its primary here. A key moves to a new primary only
    /// once every member sees the change, so the old primary (which then sees
    /// it too) has stopped running operations on it: never two at once (G4).
    pub fn acting_primary<'a>(
        &'a self,
        agreed: &View,
        key: &[u8],
        failed: impl Fn(&str) -> bool,
    ) -> Option<&'a NodeId> {
        self.acting_primary_at(agreed, hive_ring::position(key), failed)
    }

    /// [`View::acting_primary`] for the keys at ring position `at`
    /// ([`hive_ring::position`]).
    pub fn acting_primary_at<'a>(
        &'a self,
        agreed: &View,
        at: u64,
        failed: impl Fn(&str) -> bool,
    ) -> Option<&'a NodeId> {
        let now = self.primary_at(at)?;
        match agreed.primary_at(at) {
            Some(before) if before != now && !failed(before) => {
                Some(self.peer(before).map_or(now, |peer| &peer.id))
            }
            _ => Some(now),
        }
    }

    /// Returns true if member `id` of this view is the same incarnation in
    /// `other` — so whatever it held in this view it still holds there.
    pub fn same_incarnation(&self, other: &View, id: &str) -> bool {
        match (self.peer(id), other.peer(id)) {
            (Some(here), Some(there)) => here.incarnation == there.incarnation,
            _ => false,
        }
    }

    /// Returns the fraction of the keyspace member `id` is primary for.
    pub fn share(&self, id: &str) -> f64 {
        self.ring.share(&id.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str, port: u16) -> Peer {
        Peer {
            id: id.into(),
            rpc_addr: SocketAddr::from(([127, 0, 0, 1], port)),
            vnodes: 100,
            incarnation: 1,
        }
    }

    #[test]
    fn a_key_changes_acting_primary_only_once_the_change_is_agreed() {
        let before = View::new(1).with(peer("a", 1));
        let after = before.with(peer("b", 2));
        let moving = (0..)
            .map(|i| format!("key-{i}"))
            .find(|key| after.primary(key.as_bytes()).map(String::as_str) == Some("b"))
            .expect("b owns some key");
        let key = moving.as_bytes();
        let nobody_failed = |_: &str| false;
        // Not agreed yet: the old primary still acts.
        assert_eq!(
            after
                .acting_primary(&before, key, nobody_failed)
                .map(String::as_str),
            Some("a")
        );
        // Agreed: the new one.
        assert_eq!(
            after
                .acting_primary(&after, key, nobody_failed)
                .map(String::as_str),
            Some("b")
        );
        // An old primary that failed or left hands nothing over: the new one acts at once.
        let a_failed = |id: &str| id == "a";
        assert_eq!(
            after
                .acting_primary(&before, key, a_failed)
                .map(String::as_str),
            Some("b")
        );
        let without_a = after.without("a");
        assert_eq!(
            without_a
                .acting_primary(&before, key, nobody_failed)
                .map(String::as_str),
            Some("b")
        );
        assert_eq!(
            View::new(1).acting_primary(&before, key, nobody_failed),
            None
        );
    }

    #[test]
    fn the_digest_names_the_placement_not_the_history() {
        let ab = View::new(2).with(peer("a", 1)).with(peer("b", 2));
        let ba = View::new(2).with(peer("b", 2)).with(peer("a", 1));
        let round_trip = ab.with(peer("c", 3)).without("c");
        assert_eq!(ab.digest(), ba.digest());
        assert_eq!(ab.digest(), round_trip.digest());
        assert_ne!(ab.epoch(), round_trip.epoch());
        let heavier = ab.with(Peer {
            vnodes: 200,
            ..peer("b", 2)
        });
        assert_ne!(ab.digest(), heavier.digest());
        let restarted = ab.with(Peer {
            incarnation: 2,
            ..peer("b", 2)
        });
        assert_ne!(ab.digest(), restarted.digest());
        assert!(!ab.same_incarnation(&restarted, "b"));
        assert!(ab.same_incarnation(&restarted, "a"));
        assert!(!ab.same_incarnation(&ab.without("a"), "a"));
        assert_ne!(ab.digest(), ab.without("b").digest());
        assert_ne!(
            ab.digest(),
            View::new(1).with(peer("a", 1)).with(peer("b", 2)).digest()
        );
    }

    #[test]
    fn views_built_in_any_order_place_keys_alike() {
        let ab = View::new(2)
            .with(peer("a", 1))
            .with(peer("b", 2))
            .with(peer("c", 3));
        let ba = View::new(2)
            .with(peer("c", 3))
            .with(peer("b", 2))
            .with(peer("a", 1));
        for i in 0..500 {
            let key = format!("key-{i}");
            assert_eq!(ab.owners(key.as_bytes()), ba.owners(key.as_bytes()));
        }
    }

    #[test]
    fn owners_are_capped_by_members_and_the_primary_comes_first() {
        let view = View::new(3).with(peer("a", 1)).with(peer("b", 2));
        let owners = view.owners(b"k");
        assert_eq!(owners.len(), 2);
        assert_eq!(Some(owners[0]), view.primary(b"k"));
        assert!(View::new(2).owners(b"k").is_empty());
    }

    #[test]
    fn epochs_count_changes_and_removal_forgets_the_member() {
        let view = View::new(1).with(peer("a", 1)).with(peer("b", 2));
        let smaller = view.without("a");
        assert_eq!((view.epoch(), smaller.epoch()), (2, 3));
        assert!(!smaller.contains("a") && smaller.peer("b").is_some());
        assert_eq!(smaller.primary(b"anything").map(String::as_str), Some("b"));
        assert!((smaller.share("b") - 1.0).abs() < 1e-9);
    }
}
