//! Rebalance planning: given the view before and after a membership change,
//! what this node must send, to whom, and what it may drop once the receivers
//! have confirmed. Pure: the driver executes the plan.
//!
//! Rules (spec: cluster.md "Rebalancing", G2, G5):
//! - owners present in both views already hold the key (writes are acknowledged
//!   only after every owner applied them), so only newcomers need it — and a
//!   member that restarted in between (another incarnation) is a newcomer;
//! - of the old owners still alive, the first sends it, so each newcomer gets a
//!   copy even when the old primary crashed;
//! - a node that stops owning a key sends it to every new owner before
//!   dropping it (an earlier rebalance may not have finished) and drops it
//!   only after every receiver confirmed — never on a failed transfer;
//! - a node holding a key it did not own (a leftover) sends it to every new
//!   owner: applying is idempotent and keeps the newest version, so extra
//!   copies are harmless.

use std::collections::BTreeMap;

use crate::view::{NodeId, View};

/// What to do with one key held by this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPlan<'v> {
    /// Members of the new view to send the key to.
    pub send_to: Vec<&'v NodeId>,
    /// Drop the local copy once every member in `send_to` confirmed.
    pub drop_after: bool,
}

/// Returns what `local` must do with `key`, which it holds, when the view moves
/// from `old` to `new`.
pub fn plan_key<'v>(local: &str, key: &[u8], old: &View, new: &'v View) -> KeyPlan<'v> {
    plan_at(local, hive_ring::position(key), old, new)
}

/// Returns what `local` must do with the key at ring position `at`
/// ([`hive_ring::position`]); the key is hashed once for both views.
pub fn plan_at<'v>(local: &str, at: u64, old: &View, new: &'v View) -> KeyPlan<'v> {
    let mut old_owners = old.owners_at(at);
    // A member that restarted since (another incarnation in `new`) lost what it
    // held: it is a newcomer, not an owner that kept the key.
    old_owners.retain(|owner| !new.contains(owner) || old.same_incarnation(new, owner));
    let new_owners = new.owners_at(at);
    let stays = new_owners.iter().any(|owner| *owner == local);
    // The usual case, kept cheap: the owners did not change.
    if stays && old_owners == new_owners {
        return KeyPlan::default();
    }
    let was_owner = old_owners.iter().any(|owner| *owner == local);
    let recipients = |include_old: bool| -> Vec<&'v NodeId> {
        new_owners
            .iter()
            .filter(|owner| **owner != local && (include_old || !old_owners.contains(owner)))
            .copied()
            .collect()
    };
    let send_to = match (was_owner, stays) {
        // A leftover copy: every new owner gets it.
        (false, _) => recipients(true),
        // Leaving the owners: hand it to every new owner before dropping it —
        // an owner that stayed may not hold it yet if an earlier rebalance
        // has not finished; applying is idempotent.
        (true, false) => recipients(true),
        // Staying: the first surviving old owner serves the newcomers.
        (true, true)
            if old_owners
                .iter()
                .find(|owner| new.contains(owner))
                .is_some_and(|owner| *owner == local) =>
        {
            recipients(false)
        }
        (true, true) => Vec::new(),
    };
    KeyPlan {
        send_to,
        drop_after: !stays,
    }
}

/// [`plan_at`] for every ring position at once: the owners in both views are
/// constant on each arc between two consecutive vnode positions of either
/// view, so so is the plan. Planning a key is then a hash and a binary search
/// over a few hundred arcs, not two ring walks and their allocations — the
/// bulk of a rebalance's planning, which touches every key a node holds.
#[derive(Debug, Clone)]
pub struct ArcPlans<'v> {
    /// The union of both views' vnode positions, ascending, without repeats.
    /// Arc `i` is `(ends[i - 1], ends[i]]`; arc 0 also takes the wrap-around.
    ends: Vec<u64>,
    /// The plan of each arc.
    plans: Vec<KeyPlan<'v>>,
}

impl<'v> ArcPlans<'v> {
    /// Plans every arc for `local`, from view `old` to view `new`.
    pub fn new(local: &str, old: &View, new: &'v View) -> Self {
        let mut ends: Vec<u64> = old
            .positions()
            .iter()
            .chain(new.positions())
            .copied()
            .collect();
        ends.sort_unstable();
        ends.dedup();
        if ends.is_empty() {
            // Both views empty: one arc, the whole ring.
            ends.push(u64::MAX);
        }
        let plans = ends
            .iter()
            .map(|&end| plan_at(local, end, old, new))
            .collect();
        Self { ends, plans }
    }

    /// Returns the index of the arc holding ring position `at`.
    pub fn arc_of(&self, at: u64) -> usize {
        let arc = self.ends.partition_point(|&end| end < at);
        if arc == self.ends.len() { 0 } else { arc }
    }

    /// Returns the plan of arc `arc` (from [`ArcPlans::arc_of`]).
    pub fn plan(&self, arc: usize) -> &KeyPlan<'v> {
        &self.plans[arc]
    }

    /// Returns the plan for the key at ring position `at`: [`plan_at`]'s.
    pub fn plan_at(&self, at: u64) -> &KeyPlan<'v> {
        self.plan(self.arc_of(at))
    }
}

/// The plan for every key this node holds, grouped by receiver.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Keys to send, per receiver.
    pub sends: BTreeMap<NodeId, Vec<Vec<u8>>>,
    /// Keys to drop once all their receivers confirmed (a key with no receiver
    /// can be dropped at once: its new owners already hold it).
    pub drops: Vec<Vec<u8>>,
}

impl Plan {
    /// Returns the number of key copies to send.
    pub fn pending(&self) -> usize {
        self.sends.values().map(Vec::len).sum()
    }
}

/// Plans every key in `keys` for `local`, from view `old` to view `new`.
pub fn plan<'k>(
    local: &str,
    keys: impl IntoIterator<Item = &'k [u8]>,
    old: &View,
    new: &View,
) -> Plan {
    let mut plan = Plan::default();
    for key in keys {
        let key_plan = plan_key(local, key, old, new);
        for receiver in key_plan.send_to {
            plan.sends
                .entry(receiver.clone())
                .or_default()
                .push(key.to_vec());
        }
        if key_plan.drop_after {
            plan.drops.push(key.to_vec());
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::view::Peer;

    fn view(rf: usize, ids: &[&str]) -> View {
        ids.iter()
            .enumerate()
            .fold(View::new(rf), |view, (port, id)| {
                view.with(Peer {
                    id: (*id).into(),
                    rpc_addr: SocketAddr::from(([127, 0, 0, 1], port as u16)),
                    vnodes: 100,
                    incarnation: 1,
                })
            })
    }

    fn keys() -> Vec<Vec<u8>> {
        (0..2_000)
            .map(|i| format!("key-{i}").into_bytes())
            .collect()
    }

    /// The keys `node` holds in `view`: those it owns.
    fn held_by(node: &str, view: &View) -> Vec<Vec<u8>> {
        keys()
            .into_iter()
            .filter(|key| view.owners(key).iter().any(|o| *o == node))
            .collect()
    }

    /// Which nodes hold each key after executing every node's plan.
    fn holders_after(old: &View, new: &View, holders: &[&str]) -> Vec<Vec<NodeId>> {
        keys()
            .iter()
            .map(|key| {
                let mut after: Vec<NodeId> = Vec::new();
                for holder in holders
                    .iter()
                    .filter(|h| old.owners(key).iter().any(|o| o == *h))
                {
                    let key_plan = plan_key(holder, key, old, new);
                    after.extend(key_plan.send_to.into_iter().cloned());
                    if !key_plan.drop_after {
                        after.push((*holder).into());
                    }
                }
                after.sort();
                after.dedup();
                after
            })
            .collect()
    }

    #[test]
    fn after_a_join_every_new_owner_holds_every_key() {
        let old = view(2, &["a", "b", "c"]);
        let new = view(2, &["a", "b", "c", "d"]);
        for (key, holders) in keys()
            .iter()
            .zip(holders_after(&old, &new, &["a", "b", "c"]))
        {
            let mut owners: Vec<NodeId> = new.owners(key).into_iter().cloned().collect();
            owners.sort();
            assert_eq!(holders, owners);
        }
    }

    #[test]
    fn after_a_crash_the_survivors_restore_every_copy() {
        // Spec: cluster.md G1 — copies lost with "b" are re-created from survivors.
        let old = view(2, &["a", "b", "c"]);
        let new = view(2, &["a", "c"]);
        for (key, holders) in keys().iter().zip(holders_after(&old, &new, &["a", "c"])) {
            let mut owners: Vec<NodeId> = new.owners(key).into_iter().cloned().collect();
            owners.sort();
            assert_eq!(holders, owners);
        }
    }

    #[test]
    fn a_member_restarted_unnoticed_gets_every_key_it_owns_again() {
        // Spec: cluster.md G1 — a node back with the same id (same place on
        // the ring) but another incarnation lost its copies; they are
        // re-created from the other owners, although no owner changed by id.
        let old = view(2, &["a", "b", "c"]);
        let mut restarted_b = old.peer("b").unwrap().clone();
        restarted_b.incarnation += 1;
        let new = old.with(restarted_b);
        for (key, holders) in keys().iter().zip(holders_after(&old, &new, &["a", "c"])) {
            let mut owners: Vec<NodeId> = new.owners(key).into_iter().cloned().collect();
            owners.sort();
            assert_eq!(holders, owners, "{:?}", String::from_utf8_lossy(key));
        }
        // And the arcs agree with planning each position.
        let arcs = ArcPlans::new("a", &old, &new);
        for key in keys() {
            let at = hive_ring::position(&key);
            assert_eq!(*arcs.plan_at(at), plan_at("a", at, &old, &new));
        }
    }

    #[test]
    fn a_leaving_node_hands_everything_off_even_with_one_copy() {
        // Spec: cluster.md G2.
        let old = view(1, &["a", "b"]);
        let new = view(1, &["b"]);
        let held = held_by("a", &old);
        let plan = plan("a", held.iter().map(Vec::as_slice), &old, &new);
        let owned_by_a = held.len();
        assert!(owned_by_a > 500);
        assert_eq!(plan.pending(), owned_by_a);
        assert_eq!(plan.drops.len(), owned_by_a);
        assert!(plan.sends.keys().all(|receiver| receiver == "b"));
    }

    #[test]
    fn an_unchanged_view_moves_nothing() {
        let old = view(2, &["a", "b", "c"]);
        let plan = plan(
            "a",
            held_by("a", &old).iter().map(Vec::as_slice),
            &old,
            &old,
        );
        assert_eq!((plan.pending(), plan.drops.len()), (0, 0));
    }

    #[test]
    fn arc_plans_agree_with_planning_each_position() {
        let views = [
            view(2, &[]),
            view(1, &["a"]),
            view(2, &["a", "b", "c"]),
            view(2, &["a", "b", "c", "d"]),
            view(2, &["a", "c"]),
            view(3, &["b", "c", "d"]),
        ];
        for old in &views {
            for new in &views {
                for local in ["a", "b", "d"] {
                    let arcs = ArcPlans::new(local, old, new);
                    // Every vnode position and its neighbours (arc edges),
                    // the ends of the ring, and positions in between.
                    let mut probes: Vec<u64> = vec![0, 1, u64::MAX - 1, u64::MAX];
                    for &end in old.positions().iter().chain(new.positions()) {
                        probes.extend([end.wrapping_sub(1), end, end.wrapping_add(1)]);
                    }
                    probes.extend((0..2_000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
                    for at in probes {
                        assert_eq!(
                            *arcs.plan_at(at),
                            plan_at(local, at, old, new),
                            "{local} at {at:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_leftover_copy_goes_to_every_owner_and_is_dropped() {
        let old = view(2, &["a", "b", "c"]);
        let key = keys()
            .into_iter()
            .find(|key| !old.owners(key).iter().any(|o| *o == "c"))
            .unwrap();
        let key_plan = plan_key("c", &key, &old, &old);
        assert!(key_plan.drop_after);
        let mut owners: Vec<NodeId> = old.owners(&key).into_iter().cloned().collect();
        let mut send_to: Vec<NodeId> = key_plan.send_to.into_iter().cloned().collect();
        owners.sort();
        send_to.sort();
        assert_eq!(send_to, owners);
    }
}
