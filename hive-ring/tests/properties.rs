//! Property and statistical tests of `hive_ring::Ring` placement.

use std::collections::{BTreeMap, HashMap};

use hive_ring::Ring;
use proptest::prelude::*;

/// Replication factors checked by the properties.
const MAX_R: usize = 4;

/// Keys checked per generated ring.
const KEYS: u32 = 300;

fn keys(count: u32) -> impl Iterator<Item = Vec<u8>> {
    (0..count).map(|i| format!("key:{i}").into_bytes())
}

fn ring_of<'a>(members: impl IntoIterator<Item = (&'a String, &'a u32)>) -> Ring<String> {
    let mut ring = Ring::new();
    for (node, &vnodes) in members {
        ring.add(node.clone(), vnodes);
    }
    ring
}

/// Member sets: 1 to 7 distinct short ids, each with 1 to 40 vnodes.
fn members() -> impl Strategy<Value = BTreeMap<String, u32>> {
    prop::collection::btree_map("[a-z0-9]{1,5}", 1u32..40, 1..8)
}

/// Returns `owners` without `node`, truncated to `r`.
fn without<'a>(owners: &[&'a String], node: &String, r: usize) -> Vec<&'a String> {
    owners
        .iter()
        .copied()
        .filter(|&m| m != node)
        .take(r)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn owners_are_distinct_primary_first(members in members(), n in 0usize..10) {
        let ring = ring_of(&members);
        for key in keys(KEYS) {
            let owners = ring.owners(&key, n);
            prop_assert_eq!(owners.len(), n.min(ring.len()));
            let mut distinct = owners.clone();
            distinct.sort();
            distinct.dedup();
            prop_assert_eq!(distinct.len(), owners.len());
            prop_assert!(owners.iter().all(|&m| ring.contains(m)));
            prop_assert_eq!(ring.owners(&key, 1).first().copied(), ring.owner(&key));
            prop_assert_eq!(ring.owners_at(hive_ring::position(&key), n), owners.clone());
            prop_assert_eq!(ring.owner_at(hive_ring::position(&key)), ring.owner(&key));
            if let Some(&first) = owners.first() {
                prop_assert_eq!(Some(first), ring.owner(&key));
            }
        }
    }

    #[test]
    fn insertion_order_does_not_matter(members in members(), seed in any::<u64>()) {
        let sorted = ring_of(&members);
        let mut shuffled: Vec<_> = members.iter().collect();
        // A deterministic permutation derived from the seed.
        shuffled.sort_by_key(|(node, _)| hive_ring::position(format!("{seed}{node}").as_bytes()));
        let shuffled = ring_of(shuffled);
        prop_assert_eq!(sorted.nodes(), shuffled.nodes());
        for key in keys(KEYS) {
            prop_assert_eq!(sorted.owners(&key, MAX_R), shuffled.owners(&key, MAX_R));
        }
    }

    #[test]
    fn adding_a_node_only_moves_keys_to_it(
        members in members(),
        new in "[A-Z]{1,5}", // disjoint from the lowercase member ids
        vnodes in 1u32..40,
    ) {
        let old = ring_of(&members);
        let mut grown = old.clone();
        grown.add(new.clone(), vnodes);
        for key in keys(KEYS) {
            let primary = grown.owner(&key);
            prop_assert!(primary == old.owner(&key) || primary == Some(&new));
            for r in 1..=MAX_R {
                let before = old.owners(&key, r);
                let after = grown.owners(&key, r);
                for node in &after {
                    prop_assert!(before.contains(node) || **node == new);
                }
                // Stronger: skipping the new node gives back the old walk.
                prop_assert_eq!(without(&grown.owners(&key, r + 1), &new, r), before);
            }
        }
    }

    #[test]
    fn removing_a_node_only_moves_its_keys(members in members(), pick in any::<prop::sample::Index>()) {
        let old = ring_of(&members);
        let gone = pick.get(&old.nodes()).to_string();
        let mut shrunk = old.clone();
        prop_assert!(shrunk.remove(&gone));
        prop_assert!(!shrunk.contains(&gone));
        for key in keys(KEYS) {
            for r in 1..=MAX_R {
                let before = old.owners(&key, r);
                let after = shrunk.owners(&key, r);
                if !before.contains(&&gone) {
                    prop_assert_eq!(&after, &before);
                }
                // Stronger: the new walk is the old one without the removed node.
                prop_assert_eq!(after, without(&old.owners(&key, r + 1), &gone, r));
            }
        }
    }

    #[test]
    fn shares_sum_to_one(members in members()) {
        let ring = ring_of(&members);
        let total: f64 = ring.nodes().into_iter().map(|n| ring.share(n)).sum();
        prop_assert!((total - 1.0).abs() < 1e-9, "total = {}", total);
    }
}

/// Returns how many of `count` keys each node is primary for.
fn primary_counts(ring: &Ring<String>, count: u32) -> HashMap<&String, u32> {
    let mut counts: HashMap<&String, u32> = ring.nodes().into_iter().map(|n| (n, 0)).collect();
    for key in keys(count) {
        if let Some(owner) = ring.owner(&key) {
            *counts.entry(owner).or_default() += 1;
        }
    }
    counts
}

#[test]
fn load_is_balanced_across_equal_nodes() {
    // Each node's share of 10 × 100 vnodes has a relative spread of about
    // 1/sqrt(100) = 10%, so ±35% is a safe (~3.5 sigma) but meaningful bound.
    let names: Vec<String> = (0..10).map(|i| format!("node-{i}")).collect();
    let ring = ring_of(names.iter().map(|n| (n, &100)));
    let keys = 100_000;
    let mean = f64::from(keys) / 10.0;
    for (node, count) in primary_counts(&ring, keys) {
        let ratio = f64::from(count) / mean;
        assert!(
            (0.65..=1.35).contains(&ratio),
            "{node}: {count} keys, {ratio:.3} × mean"
        );
        let share_ratio = ring.share(node) * 10.0;
        assert!(
            (0.65..=1.35).contains(&share_ratio),
            "{node}: share {share_ratio:.3} × mean"
        );
    }
}

#[test]
fn load_is_proportional_to_vnodes() {
    // One 200-vnode node among 15 nodes of 100: the heavy node's relative spread
    // is about 1/sqrt(200) = 7%, the light nodes' average is tight, so 1.6–2.4
    // leaves ~3 sigma of margin.
    let mut ring = Ring::new();
    for i in 0..15 {
        ring.add(format!("light-{i}"), 100);
    }
    let heavy = "heavy".to_string();
    ring.add(heavy.clone(), 200);

    let counts = primary_counts(&ring, 200_000);
    let light_mean = counts
        .iter()
        .filter(|(node, _)| ***node != heavy)
        .map(|(_, &c)| f64::from(c))
        .sum::<f64>()
        / 15.0;
    let ratio = f64::from(counts[&heavy]) / light_mean;
    assert!(
        (1.6..=2.4).contains(&ratio),
        "heavy/light keys = {ratio:.3}"
    );

    let light_share = (1.0 - ring.share(&heavy)) / 15.0;
    let share_ratio = ring.share(&heavy) / light_share;
    assert!(
        (1.6..=2.4).contains(&share_ratio),
        "heavy/light share = {share_ratio:.3}"
    );
}

#[test]
fn shares_match_sampled_key_counts() {
    let names: Vec<String> = (0..5).map(|i| format!("n{i}")).collect();
    let ring = ring_of(names.iter().zip(&[20, 40, 60, 80, 100]));
    let keys = 100_000;
    for (node, count) in primary_counts(&ring, keys) {
        let sampled = f64::from(count) / f64::from(keys);
        assert!(
            (sampled - ring.share(node)).abs() < 0.01,
            "{node}: {sampled} vs share"
        );
    }
}
