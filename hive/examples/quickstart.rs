//! Quickstart: starts a standalone Hive node and walks through every typed
//! store, TTLs down to a hash field and a set member, and the node's status.
//!
//! Run with `cargo run --release -p hive --example quickstart`.

use std::time::Duration;

use hive::{Config, HashStore, ListStore, Node, SetStore, ValueStore, ZSetStore};
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
    Ok(())
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}
