//! Quickstart: starts a standalone Hive node and walks through every typed
//! store, TTLs down to a hash field and a set member, and the node's status;
//! then runs a three-node cluster in this process, writes through one node,
//! reads through another, and lets a node leave without losing data.
//!
//! Run with `cargo run --release -p hive --example quickstart`.

use std::time::Duration;

use hive::{
    Config, GossipPreset, HashStore, ListStore, Mode, Node, SetStore, ValueStore, ZSetStore,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    user: String,
    logins: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Task {
    id: u64,
    kind: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let node = Node::start(Config {
        cleanup_interval: Duration::from_millis(200),
        ..Config::default()
    })
    .await?;
    let cache = node.cache();
    println!("started standalone node {}", node.id());

    // Values: a typed struct with a TTL.
    let sessions = ValueStore::<Session>::new(&cache, "sessions");
    let ada = Session {
        user: "ada".into(),
        logins: 3,
    };
    sessions
        .set_with_ttl("s-ada", &ada, Duration::from_millis(300))
        .await?;
    println!(
        "sessions: s-ada = {:?}, ttl {:?}",
        sessions.get("s-ada").await?,
        sessions.ttl("s-ada").await?
    );

    // Hashes: one field carries its own TTL.
    let streams = HashStore::<u64>::new(&cache, "streams");
    streams.hset("stream-1", "viewers", &1_204).await?;
    streams
        .hset_with_ttl("stream-1", "highlight", &42, Duration::from_millis(300))
        .await?;
    println!(
        "streams: stream-1 fields {:?}",
        sorted(streams.hkeys("stream-1").await?)
    );

    // Lists: a work queue.
    let queue = ListStore::<Task>::new(&cache, "work_queue");
    for id in 1..=3 {
        queue
            .rpush(
                "jobs",
                &Task {
                    id,
                    kind: "resize".into(),
                },
            )
            .await?;
    }
    println!(
        "work_queue: {} jobs, first {:?}",
        queue.llen("jobs").await?,
        queue.lpop("jobs").await?
    );
    println!(
        "work_queue: the rest {:?}",
        queue.lrange("jobs", 0, -1).await?
    );

    // Sets: a member that expires on its own.
    let online = SetStore::new(&cache, "online_users");
    online.sadd("now", "ada").await?;
    online.sadd("now", "grace").await?;
    online
        .sexpire_member("now", "grace", Duration::from_millis(300))
        .await?;
    println!("online_users: {:?}", sorted(online.smembers("now").await?));

    // Sorted sets: a leaderboard.
    let scores = ZSetStore::new(&cache, "leaderboard");
    for (score, player) in [(310.0, "ada"), (120.0, "grace"), (275.5, "alan")] {
        scores.zadd("weekly", score, player).await?;
    }
    println!(
        "leaderboard: top 2 {:?}",
        scores.zrange("weekly", 0, 1).await?
    );
    println!(
        "leaderboard: ada ranks {} from the top",
        scores.zrevrank("weekly", "ada").await?
    );

    let status = node.status();
    println!(
        "status: {} keys, {} bytes, members {:?}",
        status.keys, status.memory_bytes, status.members
    );

    println!("waiting 500 ms for the TTLs to pass ...");
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("sessions: s-ada -> {:?}", sessions.get("s-ada").await);
    println!(
        "streams: stream-1 fields {:?}",
        sorted(streams.hkeys("stream-1").await?)
    );
    println!("online_users: {:?}", online.smembers("now").await?);
    let status = node.status();
    println!(
        "status: {} keys, {} bytes (the janitor reclaimed the expired key)",
        status.keys, status.memory_bytes
    );

    node.shutdown().await?;
    println!("node stopped");

    cluster().await
}

/// Three nodes on 127.0.0.1 (ephemeral ports), two copies of every key.
async fn cluster() -> anyhow::Result<()> {
    println!("\n--- cluster: three nodes, replication factor 2");
    let config = |seeds: Vec<String>| Config {
        mode: Mode::Cluster,
        bind_addr: "127.0.0.1".into(),
        bind_port: 0,
        seeds,
        replication_factor: 2,
        gossip_preset: GossipPreset::Local,
        gossip_interval: Duration::from_millis(50),
        rebalance_debounce: Duration::from_millis(100),
        ..Config::default()
    };
    let first = Node::start(config(vec![])).await?;
    let seed = first
        .gossip_addr()
        .expect("a cluster node gossips")
        .to_string();
    let second = Node::start(config(vec![seed.clone()])).await?;
    let third = Node::start(config(vec![seed])).await?;
    for node in [&first, &second, &third] {
        node.wait_ready(3, Duration::from_secs(10)).await?;
    }
    for member in first.status().members {
        println!(
            "member {} at {:?}: {:?}, primary for {:.0}% of the keys",
            member.id,
            member.gossip_addr.expect("cluster members have addresses"),
            member.state,
            member.ring_share * 100.0
        );
    }

    let writes = ValueStore::<u32>::new(&first.cache(), "counters");
    for i in 0..100 {
        writes.set(&format!("page-{i}"), &i).await?;
    }
    let reads = ValueStore::<u32>::new(&second.cache(), "counters");
    println!(
        "wrote 100 keys through the first node; the second reads page-42 = {}",
        reads.get("page-42").await?
    );
    for node in [&first, &second, &third] {
        println!(
            "node {} holds {} keys (primaries and replicas)",
            node.id(),
            node.status().keys
        );
    }

    println!("the third node leaves gracefully, handing its keys off ...");
    third.shutdown().await?;
    first.wait_ready(2, Duration::from_secs(10)).await?;
    let mut readable = 0;
    for i in 0..100 {
        readable += u32::from(reads.get(&format!("page-{i}")).await? == i);
    }
    println!("after the leave, {readable} of 100 keys read back through the second node");
    second.shutdown().await?;
    first.shutdown().await?;
    println!("cluster stopped");
    Ok(())
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}
