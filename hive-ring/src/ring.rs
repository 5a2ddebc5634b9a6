//! The consistent-hash ring: members, their virtual nodes, and key ownership.

use std::hash::Hash;

use crate::hash::{position, vnode_position};

/// The largest vnode count a node can have; [`Ring::add`] clamps to `[1, MAX_VNODES]`.
///
/// This bounds the ring's memory and rebuild time whatever the caller passes,
/// and matches the upper bound of [`vnodes_for_mem_limit`](crate::vnodes_for_mem_limit).
pub const MAX_VNODES: u32 = 10_000;

/// Above this many requested owners, [`Ring::owners`] tracks seen nodes in a
/// table instead of scanning its (then no longer tiny) result.
const SMALL_N: usize = 16;

/// A weighted consistent-hash ring mapping keys to the member nodes that own them.
///
/// Each member node `N` is placed at as many ring positions as it has virtual
/// nodes. Placement is a pure function of the member set and vnode counts; see
/// the [crate docs](crate) for the guarantees.
///
/// Node ids are identified by their bytes (`AsRef<[u8]>`), which must be
/// distinct for distinct nodes.
#[derive(Debug, Clone)]
pub struct Ring<N> {
    /// Members with their vnode counts, sorted by id bytes. Sorting makes the
    /// indices below, and so tie-breaking, independent of insertion order.
    members: Vec<(N, u32)>,
    /// Positions of all virtual nodes, ascending.
    positions: Vec<u64>,
    /// `owners[i]` is the index in `members` of the node owning `positions[i]`.
    /// Kept apart from `positions` so the binary search touches only 8-byte
    /// entries (1000 vnodes fit in 8 KiB of cache).
    owners: Vec<u32>,
}

impl<N> Default for Ring<N> {
    fn default() -> Self {
        Self {
            members: Vec::new(),
            positions: Vec::new(),
            owners: Vec::new(),
        }
    }
}

impl<N: Clone + Eq + Hash + AsRef<[u8]>> Ring<N> {
    /// Returns an empty ring.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the ring position of `key`; the same as [`position`](crate::position).
    #[must_use]
    pub fn position(key: &[u8]) -> u64 {
        position(key)
    }

    /// Adds `node` with `vnodes` virtual nodes, or replaces its vnode count if
    /// it is already a member.
    ///
    /// `vnodes` is clamped to `[1, MAX_VNODES]`: every member owns part of the
    /// ring (use [`remove`](Self::remove) to own nothing). Rebuilds the ring,
    /// which costs O(V log V) for V virtual nodes in total.
    pub fn add(&mut self, node: N, vnodes: u32) {
        let vnodes = vnodes.clamp(1, MAX_VNODES);
        match self.index_of(&node) {
            Some(i) if self.members[i].1 == vnodes => return,
            Some(i) => self.members[i].1 = vnodes,
            None => {
                let at = self
                    .members
                    .partition_point(|(m, _)| m.as_ref() <= node.as_ref());
                self.members.insert(at, (node, vnodes));
            }
        }
        self.rebuild();
    }

    /// Removes `node`; returns whether it was a member.
    pub fn remove(&mut self, node: &N) -> bool {
        let Some(i) = self.index_of(node) else {
            return false;
        };
        self.members.remove(i);
        self.rebuild();
        true
    }

    /// Returns the primary owner of `key`, or `None` if the ring is empty.
    #[must_use]
    pub fn owner(&self, key: &[u8]) -> Option<&N> {
        self.owner_at(position(key))
    }

    /// Returns the primary owner of the keys at ring position `at`
    /// ([`position`]), as [`Ring::owner`] does for a key.
    #[must_use]
    pub fn owner_at(&self, at: u64) -> Option<&N> {
        let first = *self.owners.get(self.start(at))?;
        Some(self.node(first))
    }

    /// Returns the distinct owners of `key`, primary first, then its replicas.
    ///
    /// Walks clockwise from the first virtual node at or after the key's
    /// position, wrapping around, collecting distinct nodes. Returns
    /// `min(n, self.len())` nodes: all members if `n` exceeds them, none if the
    /// ring is empty or `n` is 0. Only the returned `Vec` is allocated for
    /// small `n`.
    #[must_use]
    pub fn owners(&self, key: &[u8], n: usize) -> Vec<&N> {
        self.owners_at(position(key), n)
    }

    /// Returns the distinct owners of the keys at ring position `at` (see
    /// [`position`](crate::position)), as [`owners`](Self::owners) does for a
    /// key: callers placing one key on several rings hash it once.
    #[must_use]
    pub fn owners_at(&self, at: u64, n: usize) -> Vec<&N> {
        let want = n.min(self.members.len());
        let mut out = Vec::with_capacity(want);
        if want == 0 {
            return out;
        }
        // A linear scan of `out` is fastest for the usual replication factor;
        // large requests use a table instead to stay linear in the walk.
        let mut seen = vec![
            false;
            if want > SMALL_N {
                self.members.len()
            } else {
                0
            }
        ];

        let (before, from) = self.owners.split_at(self.start(at));
        for &index in from.iter().chain(before) {
            let node = self.node(index);
            let duplicate = match seen.get_mut(index as usize) {
                Some(flag) => std::mem::replace(flag, true),
                None => out.iter().any(|&m| std::ptr::eq(m, node)),
            };
            if !duplicate {
                out.push(node);
                if out.len() == want {
                    break;
                }
            }
        }
        out
    }

    /// Returns the fraction of the 64-bit keyspace for which `node` is the
    /// primary owner, in `[0.0, 1.0]`; 0.0 if it is not a member.
    ///
    /// This is the sum of the lengths of the arcs ending at the node's
    /// virtual nodes, divided by 2^64. The shares of all members sum to 1.0.
    #[must_use]
    pub fn share(&self, node: &N) -> f64 {
        let Some(target) = self.index_of(node) else {
            return 0.0;
        };
        let Some(&last) = self.positions.last() else {
            return 0.0;
        };
        // The arc ending at vnode i covers (positions[i-1], positions[i]]; the
        // first arc wraps around from the last vnode, so the arcs total 2^64.
        let mut previous = i128::from(last) - (1i128 << 64);
        let mut owned: u128 = 0;
        for (&pos, &index) in self.positions.iter().zip(&self.owners) {
            if index as usize == target {
                owned += (i128::from(pos) - previous).unsigned_abs();
            }
            previous = i128::from(pos);
        }
        owned as f64 / 2f64.powi(64)
    }

    /// Returns the positions of all virtual nodes, ascending (with repeats if
    /// two vnodes collide). The owners of a position depend only on the first
    /// vnode position at or after it, so they are constant between two
    /// consecutive entries: callers comparing rings can work per arc instead
    /// of per key.
    #[must_use]
    pub fn positions(&self) -> &[u64] {
        &self.positions
    }

    /// Returns the number of member nodes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Returns whether the ring has no members.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Returns the member nodes, sorted by their id bytes.
    #[must_use]
    pub fn nodes(&self) -> Vec<&N> {
        self.members.iter().map(|(node, _)| node).collect()
    }

    /// Returns whether `node` is a member.
    #[must_use]
    pub fn contains(&self, node: &N) -> bool {
        self.index_of(node).is_some()
    }

    /// Returns the vnode count of `node` (after clamping), or `None` if it is
    /// not a member.
    #[must_use]
    pub fn vnodes(&self, node: &N) -> Option<u32> {
        self.index_of(node).map(|i| self.members[i].1)
    }

    /// Returns the index of `node` in `members`, by binary search on its bytes.
    fn index_of(&self, node: &N) -> Option<usize> {
        let id = node.as_ref();
        let at = self.members.partition_point(|(m, _)| m.as_ref() < id);
        self.members[at..]
            .iter()
            .take_while(|(m, _)| m.as_ref() == id)
            .position(|(m, _)| m == node)
            .map(|offset| at + offset)
    }

    /// Returns the member at `index` (an entry of `owners`).
    fn node(&self, index: u32) -> &N {
        &self.members[index as usize].0
    }

    /// Returns the index of the first vnode at or after `pos`, wrapping to 0
    /// past the last one.
    fn start(&self, pos: u64) -> usize {
        let i = self.positions.partition_point(|&p| p < pos);
        if i == self.positions.len() { 0 } else { i }
    }

    /// Recomputes all vnode positions from `members`.
    ///
    /// Vnodes are sorted by (position, member index, vnode index). Members are
    /// sorted by id bytes, so equal positions are ordered by id, then by vnode
    /// index: placement does not depend on insertion order.
    fn rebuild(&mut self) {
        let total = self.members.iter().map(|&(_, v)| v as usize).sum();
        let mut points: Vec<(u64, u32, u32)> = Vec::with_capacity(total);
        for (index, (node, vnodes)) in self.members.iter().enumerate() {
            // Members number far below u32::MAX: each holds at least one vnode.
            let index = index as u32;
            let id = node.as_ref();
            points.extend((0..*vnodes).map(|v| (vnode_position(id, v), index, v)));
        }
        points.sort_unstable();
        self.positions = points.iter().map(|&(pos, _, _)| pos).collect();
        self.owners = points.iter().map(|&(_, index, _)| index).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> String {
        name.to_string()
    }

    fn ring_of(members: &[(&str, u32)]) -> Ring<String> {
        let mut ring = Ring::new();
        for &(name, vnodes) in members {
            ring.add(id(name), vnodes);
        }
        ring
    }

    #[test]
    fn empty_ring_owns_nothing() {
        let ring = Ring::<String>::new();
        assert!(ring.is_empty());
        assert_eq!(ring.len(), 0);
        assert_eq!(ring.owner(b"k"), None);
        assert!(ring.owners(b"k", 3).is_empty());
        assert!(ring.nodes().is_empty());
        assert_eq!(ring.share(&id("a")), 0.0);
        assert_eq!(Ring::<String>::default().len(), 0);
    }

    #[test]
    fn owners_edge_cases() {
        let ring = ring_of(&[("a", 10), ("b", 10), ("c", 10)]);
        assert!(ring.owners(b"k", 0).is_empty());
        let all = ring.owners(b"k", 100);
        assert_eq!(all.len(), 3);
        assert_eq!(ring.owners(b"k", usize::MAX), all);
        assert_eq!(ring.owner(b"k"), Some(all[0]));
        assert_eq!(ring.owners(b"k", 1), vec![all[0]]);
    }

    #[test]
    fn large_n_uses_the_seen_table_and_stays_distinct() {
        let names: Vec<String> = (0..40).map(|i| format!("node-{i}")).collect();
        let mut ring = Ring::new();
        for name in &names {
            ring.add(name.clone(), 5);
        }
        let all = ring.owners(b"k", 40);
        assert_eq!(all.len(), 40);
        let mut sorted: Vec<&String> = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 40);
        // Both dedup strategies agree on the shared prefix.
        assert_eq!(ring.owners(b"k", SMALL_N), all[..SMALL_N]);
    }

    #[test]
    fn membership_queries() {
        let mut ring = ring_of(&[("a", 100), ("b", 200)]);
        assert_eq!(ring.len(), 2);
        assert!(ring.contains(&id("a")));
        assert!(!ring.contains(&id("z")));
        assert_eq!(ring.vnodes(&id("b")), Some(200));
        assert_eq!(ring.vnodes(&id("z")), None);
        assert_eq!(ring.nodes(), vec![&id("a"), &id("b")]);

        assert!(!ring.remove(&id("z")));
        assert!(ring.remove(&id("a")));
        assert!(!ring.remove(&id("a")));
        assert_eq!(ring.nodes(), vec![&id("b")]);
        assert_eq!(ring.owners(b"k", 3), vec![&id("b")]);
    }

    #[test]
    fn re_add_replaces_vnode_count() {
        let mut ring = ring_of(&[("a", 100), ("b", 100)]);
        ring.add(id("a"), 300);
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.vnodes(&id("a")), Some(300));
        assert_eq!(ring.positions.len(), 400);
        assert!(ring.share(&id("a")) > ring.share(&id("b")));
        assert_eq!(ring_of(&[("b", 100), ("a", 300)]).owners, ring.owners);
    }

    #[test]
    fn vnodes_are_clamped() {
        let ring = ring_of(&[("zero", 0), ("huge", u32::MAX)]);
        assert_eq!(ring.vnodes(&id("zero")), Some(1));
        assert_eq!(ring.vnodes(&id("huge")), Some(MAX_VNODES));
        assert!(ring.share(&id("zero")) > 0.0);
        assert_eq!(ring.positions.len(), 1 + MAX_VNODES as usize);
    }

    #[test]
    fn single_vnode_owns_everything() {
        let ring = ring_of(&[("a", 1)]);
        assert_eq!(ring.share(&id("a")), 1.0);
        assert_eq!(ring.owner(b"anything"), Some(&id("a")));
    }

    #[test]
    fn shares_sum_to_one() {
        let ring = ring_of(&[("a", 100), ("b", 200), ("c", 7)]);
        let total: f64 = ring.nodes().into_iter().map(|n| ring.share(n)).sum();
        assert!((total - 1.0).abs() < 1e-9, "total = {total}");
        assert_eq!(ring.share(&id("z")), 0.0);
    }

    #[test]
    fn key_maps_to_first_vnode_at_or_after_its_position() {
        let ring = ring_of(&[("a", 3), ("b", 3)]);
        for (i, &pos) in ring.positions.iter().enumerate() {
            assert_eq!(ring.start(pos), i);
        }
        let last = *ring.positions.last().unwrap();
        assert_eq!(ring.start(last.saturating_add(1)), 0, "wraps around");
        assert_eq!(ring.start(u64::MAX), 0, "wraps around");
        assert_eq!(Ring::<String>::position(b"k"), position(b"k"));
    }

    #[test]
    fn insertion_order_does_not_matter() {
        let forward = ring_of(&[("a", 50), ("b", 80), ("c", 20)]);
        let backward = ring_of(&[("c", 20), ("b", 80), ("a", 50)]);
        assert_eq!(forward.positions, backward.positions);
        assert_eq!(forward.owners, backward.owners);
        for i in 0..1000u32 {
            let key = i.to_le_bytes();
            assert_eq!(forward.owners(&key, 2), backward.owners(&key, 2));
        }
    }

    #[test]
    fn first_of_equal_positions_wins() {
        // Hand-build a ring whose vnodes collide at one position; `rebuild`
        // orders such ties by member index, i.e. by id bytes.
        let mut ring = ring_of(&[("b", 1), ("a", 1)]);
        ring.positions = vec![7, 7];
        ring.owners = vec![0, 1];
        assert_eq!(ring.owner(b"k"), Some(&id("a")));
        assert_eq!(ring.share(&id("a")), 1.0);
        assert_eq!(ring.share(&id("b")), 0.0);
    }
}
