//! `cargo xtask partition`: G7 with real processes and a real network cut
//! (spec: cluster.md "Fault and load testing").
//!
//! Three `hived` processes (RF 2), each in its own Linux network namespace
//! (`netns.rs`: joined by a bridge in the root namespace, where the runner
//! stays and reaches every node throughout). The runner cuts one node off from
//! the other two (packets vanish silently, as in a real partition), writes
//! through both sides for a while (longer than memberlist's gossip to
//! the dead, so only reconnecting heals the cluster), heals the cut, and
//! checks:
//! - every node answers every key identically (one value per key);
//! - every acknowledged write that no other write touched is readable;
//! - every key both sides wrote holds a value one of them wrote (last writer
//!   wins by version; the other side's writes to it are lost, and counted).
//!
//! Needs root and iproute2 (`ip netns`); without them it says so and skips.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::cluster::{Client, Member, Node, Reply};
use crate::netns::{Net, missing_privileges};

const USAGE: &str = "\
Usage: cargo xtask partition [--seconds S]
  Starts 3 hived processes (RF 2) in network namespaces, cuts one off for S
  seconds (default 20) while writing through both sides, heals the cut, and
  checks that all nodes converge and no acknowledged write was lost unless the
  other side overwrote it. Needs root and iproute2; skips without them.
";

const NODES: usize = 3;
/// The node cut off from the others.
const ISOLATED: usize = 2;
const RESP_PORT: u16 = 6380;
const GOSSIP_PORT: u16 = 7946;
/// Keys written before the cut.
const BEFORE: usize = 2_000;
/// Keys both sides write during the cut.
const CONTESTED: usize = 200;
/// Writes per side during the cut, at most (a lone node takes hundreds of
/// thousands in 20 s, and checking them all would dominate the run).
const WRITES_PER_SIDE: usize = 20_000;
/// Bound on every wait for the cluster to settle or converge.
const SETTLE: Duration = Duration::from_secs(90);

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut seconds = 20;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = crate::option_value(&mut args, arg)?,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    if let Some(missing) = missing_privileges() {
        println!("partition: skipped: {missing} (CI runs it as root)");
        return Ok(());
    }
    crate::run_command(crate::cargo().args(["build", "--release", "-p", "hived"]))?;
    let binary = crate::workspace_root().join("target/release/hived");

    // Declared before the nodes, so it is dropped (and torn down) after them.
    let net = Net::create(NODES)?;
    let nodes = start_nodes(&binary, &net)?;
    for node in &nodes {
        node.wait_for(NODES)?;
    }
    println!(
        "partition: {NODES} nodes in namespaces {}*, RF 2",
        net.prefix
    );

    let before = write_keys(nodes[0].resp, "before", BEFORE)?;
    println!("  {} keys written before the cut", before.len());

    net.cut(ISOLATED)?;
    let cut_at = Instant::now();
    for (index, node) in nodes.iter().enumerate() {
        node.wait_for(if index == ISOLATED { 1 } else { NODES - 1 })?;
    }
    println!(
        "  cut node {ISOLATED} off; both sides saw the other fail after {:.1?}",
        cut_at.elapsed()
    );

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (majority, minority) = (nodes[0].resp, nodes[ISOLATED].resp);
    let sides = [("a", majority), ("b", minority)]
        .map(|(side, addr)| std::thread::spawn(move || write_side(side, addr, deadline)));
    let [a, b] = sides.map(|side| side.join().expect("a writer thread"));
    let (a, b) = (a?, b?);
    println!(
        "  during the cut: side a acked {} writes ({} failed), side b acked {} ({} failed)",
        a.acked.len(),
        a.failed,
        b.acked.len(),
        b.failed
    );
    if a.acked.is_empty() || b.acked.is_empty() {
        bail!("a side of the partition served no write");
    }

    net.heal(ISOLATED)?;
    let healed_at = Instant::now();
    for node in &nodes {
        node.wait_for(NODES)?;
    }
    println!(
        "  healed after {:.1?} apart; all {NODES} alive again after {:.1?}",
        deadline.saturating_duration_since(cut_at) + healed_at.saturating_duration_since(deadline),
        healed_at.elapsed()
    );

    let mut keys: Vec<String> = before.iter().map(|(key, _)| key.clone()).collect();
    keys.extend(a.acked.iter().chain(&b.acked).map(|(key, _)| key.clone()));
    keys.sort();
    keys.dedup();
    let (values, pass) = converged(&nodes, &keys)?;
    println!(
        "  converged: {} keys answer identically through all {NODES} nodes in the check \
         that began {:.1?} after the heal (a check reads every key through every node: {:.1?})",
        keys.len(),
        pass.start.saturating_duration_since(healed_at),
        pass.took
    );
    check(&values, &before, &a, &b)
}

fn start_nodes(binary: &Path, net: &Net) -> anyhow::Result<Vec<Node>> {
    let seed = [SocketAddr::from((net.node_ip(0), GOSSIP_PORT))];
    let mut nodes = Vec::new();
    for index in 0..NODES {
        let (ns, id) = (net.ns(index), format!("node-{index}"));
        let member = Member {
            namespace: Some(&ns),
            id: Some(&id),
            host: net.node_ip(index).into(),
            resp_port: RESP_PORT,
            gossip_port: GOSSIP_PORT,
            rpc_port: None,
            replication_factor: 2,
            seeds: if index > 0 { &seed } else { &[] },
        };
        let child = member
            .command(binary)
            .spawn()
            .context("starting hived in a namespace")?;
        nodes.push(Node::serving(child, member.resp())?);
    }
    Ok(nodes)
}

/// `SET {prefix}:{i} v{i}` for `count` keys through `addr`; every one must be
/// acknowledged.
fn write_keys(
    addr: SocketAddr,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut client = Client::connect(addr)?;
    (0..count)
        .map(|i| {
            let (key, value) = (format!("{prefix}:{i}"), format!("v{i}"));
            match client.call(&["SET", &key, &value])? {
                Reply::Simple(ok) if ok == "OK" => Ok((key, value)),
                other => bail!("SET {key} through {addr}: {other:?}"),
            }
        })
        .collect()
}

/// What one side of the partition wrote.
struct Side {
    /// Acknowledged writes, in order.
    acked: Vec<(String, String)>,
    /// Every value attempted per contested key, acknowledged or not.
    attempted: HashMap<String, Vec<String>>,
    failed: u64,
}

/// Writes through `addr` until `deadline` (at most [`WRITES_PER_SIDE`], then
/// it waits for the deadline): keys of its own (`{side}:{n}`) and keys the
/// other side writes too (`c:{n % CONTESTED}`), alternately.
fn write_side(side: &str, addr: SocketAddr, deadline: Instant) -> anyhow::Result<Side> {
    let mut out = Side {
        acked: Vec::new(),
        attempted: HashMap::new(),
        failed: 0,
    };
    let mut client = Client::connect(addr)?;
    let mut n = 0usize;
    while Instant::now() < deadline {
        if n == WRITES_PER_SIDE {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            break;
        }
        let (key, value) = if n.is_multiple_of(2) {
            (format!("{side}:{n}"), format!("{side}{n}"))
        } else {
            let key = format!("c:{}", (n / 2) % CONTESTED);
            let value = format!("{side}{n}");
            out.attempted
                .entry(key.clone())
                .or_default()
                .push(value.clone());
            (key, value)
        };
        n += 1;
        match client.call(&["SET", &key, &value]) {
            Ok(Reply::Simple(ok)) if ok == "OK" => out.acked.push((key, value)),
            Ok(_) => out.failed += 1,
            Err(_) => {
                out.failed += 1;
                client = Client::connect(addr)?;
            }
        }
    }
    Ok(out)
}

/// Polls until every node answers every key identically; returns the answers.
/// When the check that found the nodes converged began, and how long it took.
struct Pass {
    start: Instant,
    took: Duration,
}

/// Reads every key through every node until all nodes answer alike; returns
/// the values and the check that found them alike.
fn converged(
    nodes: &[Node],
    keys: &[String],
) -> anyhow::Result<(HashMap<String, Option<String>>, Pass)> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let start = Instant::now();
        let mut answers: Vec<HashMap<String, Option<String>>> = Vec::new();
        for node in nodes {
            let mut client = Client::connect(node.resp)?;
            let mut values = HashMap::with_capacity(keys.len());
            for chunk in keys.chunks(500) {
                let mut args = vec!["MGET"];
                args.extend(chunk.iter().map(String::as_str));
                let Reply::Array(Some(replies)) = client.call(&args)? else {
                    bail!("MGET through {} did not answer an array", node.resp);
                };
                for (key, reply) in chunk.iter().zip(replies) {
                    let Reply::Bulk(value) = reply else {
                        bail!("MGET {key} through {}: {reply:?}", node.resp);
                    };
                    let value = value.map(|v| String::from_utf8_lossy(&v).into_owned());
                    values.insert(key.clone(), value);
                }
            }
            answers.push(values);
        }
        let differing = keys
            .iter()
            .filter(|key| {
                answers
                    .iter()
                    .any(|values| values[*key] != answers[0][*key])
            })
            .count();
        if differing == 0 {
            let took = start.elapsed();
            return Ok((answers.swap_remove(0), Pass { start, took }));
        }
        if Instant::now() > deadline {
            bail!("{differing} keys still differ between nodes after {SETTLE:?}");
        }
        println!(
            "  {differing} keys still differ between nodes (a check that began {:.1?} ago); \
             waiting",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Checks the converged `values` against what was written.
fn check(
    values: &HashMap<String, Option<String>>,
    before: &[(String, String)],
    a: &Side,
    b: &Side,
) -> anyhow::Result<()> {
    let mut lost = 0;
    let sole_writes = before
        .iter()
        .chain(&a.acked)
        .chain(&b.acked)
        .filter(|(key, _)| !key.starts_with("c:"));
    let mut sole = 0;
    for (key, value) in sole_writes {
        sole += 1;
        if values[key].as_deref() != Some(value.as_str()) {
            lost += 1;
            if lost <= 10 {
                println!("  LOST {key}: wrote {value}, read {:?}", values[key]);
            }
        }
    }
    let (mut won_a, mut won_b, mut foreign) = (0, 0, 0);
    let contested = a
        .attempted
        .keys()
        .filter(|key| b.attempted.contains_key(*key));
    for key in contested {
        let value = values[key].as_deref();
        let wrote = |side: &Side| {
            side.attempted[key]
                .iter()
                .any(|v| Some(v.as_str()) == value)
        };
        if wrote(a) {
            won_a += 1;
        } else if wrote(b) {
            won_b += 1;
        } else {
            foreign += 1;
            println!("  {key} holds {value:?}, which neither side wrote");
        }
    }
    println!(
        "acked writes no other write touched: {sole}, lost {lost}; keys both sides wrote: \
         {} — side a's version kept for {won_a}, side b's for {won_b} (the other side's \
         writes to those keys are lost by design: last writer wins), {foreign} invalid",
        won_a + won_b + foreign
    );
    if lost > 0 || foreign > 0 {
        bail!(
            "G7 violated: {lost} acknowledged writes lost, {foreign} keys hold an unwritten value"
        );
    }
    if won_a + won_b == 0 {
        bail!("no key was written by both sides: the run tested nothing");
    }
    Ok(())
}
