//! The public API of the `hive` facade, exercised as an application would use it
//! (spec: api.md and semantics.md), in standalone mode.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hive::{
    Cache, Config, Error, HashStore, ListStore, MemberState, Mode, Node, SetStore, ValueStore,
    ZSetEntry, ZSetStore,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    user: String,
    visits: u32,
}

fn session(user: &str) -> Session {
    Session {
        user: user.to_owned(),
        visits: 1,
    }
}

async fn node() -> Node {
    Node::start(Config::default())
        .await
        .expect("a default node starts")
}

/// Polls `condition` every 10 ms until it holds or `within` passes.
async fn eventually(within: Duration, mut condition: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition().await
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

fn assert_handle<T: Clone + Send + Sync + 'static>() {}

#[test]
fn handles_are_cheap_shareable_values() {
    assert_handle::<Cache>();
    assert_handle::<ValueStore<Session>>();
    assert_handle::<HashStore<Session>>();
    assert_handle::<ListStore<Session>>();
    assert_handle::<SetStore>();
    assert_handle::<ZSetStore>();
}

#[tokio::test]
async fn futures_are_send() {
    let node = assert_send(Node::start(Config::default())).await.unwrap();
    let values = ValueStore::<Session>::new(&node.cache(), "s");
    assert_send(values.set("k", &session("a"))).await.unwrap();
    assert_send(values.get("k")).await.unwrap();
    assert_send(node.shutdown()).await.unwrap();
}

#[tokio::test]
async fn values_set_get_delete_and_ttl() {
    let node = node().await;
    let sessions = ValueStore::<Session>::new(&node.cache(), "sessions");
    assert_eq!(sessions.get("ada").await, Err(Error::NotFound));
    sessions.set("ada", &session("ada")).await.unwrap();
    assert_eq!(sessions.get("ada").await.unwrap(), session("ada"));
    assert_eq!(sessions.ttl("ada").await, Ok(None));

    sessions
        .expire("ada", Duration::from_secs(60))
        .await
        .unwrap();
    let ttl = sessions.ttl("ada").await.unwrap().expect("a TTL");
    assert!(
        ttl > Duration::from_secs(59) && ttl <= Duration::from_secs(60),
        "{ttl:?}"
    );
    sessions.persist("ada").await.unwrap();
    assert_eq!(sessions.ttl("ada").await, Ok(None));

    sessions
        .set_with_ttl("ada", &session("ada"), Duration::from_secs(5))
        .await
        .unwrap();
    sessions.set("ada", &session("ada")).await.unwrap();
    assert_eq!(sessions.ttl("ada").await, Ok(None), "set clears the TTL");

    sessions.del("ada").await.unwrap();
    sessions.del("ada").await.unwrap();
    assert_eq!(sessions.get("ada").await, Err(Error::NotFound));
    assert_eq!(sessions.ttl("ada").await, Err(Error::NotFound));
    assert_eq!(
        sessions.expire("ada", Duration::from_secs(1)).await,
        Err(Error::NotFound)
    );
    assert_eq!(sessions.persist("ada").await, Err(Error::NotFound));
}

#[tokio::test]
async fn a_short_ttl_expires_in_real_time() {
    let node = node().await;
    let values = ValueStore::<u32>::new(&node.cache(), "v");
    values
        .set_with_ttl("k", &7, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(
        values.get("k").await,
        Ok(7),
        "a 300 ms TTL is not rounded down to nothing"
    );
    assert!(
        eventually(Duration::from_secs(5), async || values.get("k").await
            == Err(Error::NotFound))
        .await
    );
}

#[tokio::test]
async fn batches_keep_request_order() {
    let node = node().await;
    let values = ValueStore::<u32>::new(&node.cache(), "v");
    values
        .set_many(&[("a", 1), ("b", 2), ("c", 3)])
        .await
        .unwrap();
    values.del("b").await.unwrap();
    assert_eq!(
        values.get_many(&["c", "b", "a", "zz"]).await.unwrap(),
        vec![Some(3), None, Some(1), None]
    );
}

#[tokio::test]
async fn a_failed_batch_names_the_key_it_did_not_write() {
    let config = Config {
        max_value_bytes: 64,
        ..Config::default()
    };
    let node = Node::start(config).await.unwrap();
    let values = ValueStore::<String>::new(&node.cache(), "v");
    let items = [
        ("small", "x".to_owned()),
        ("big", "y".repeat(100)),
        ("after", "z".to_owned()),
    ];
    match values.set_many(&items).await {
        Err(Error::InvalidArgument(message)) => assert!(message.contains("\"big\""), "{message}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert_eq!(values.get("small").await.unwrap(), "x");
    assert_eq!(
        values.get("big").await,
        Err(Error::NotFound),
        "never a partial write"
    );
}

#[tokio::test]
async fn bad_input_is_a_typed_error() {
    let config = Config {
        max_key_bytes: 32,
        max_value_bytes: 16,
        ..Config::default()
    };
    let node = Node::start(config).await.unwrap();
    let values = ValueStore::<String>::new(&node.cache(), "v");
    assert!(matches!(
        values.set("", &"x".into()).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        values.set(&"k".repeat(40), &"x".into()).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        values.set("k", &"x".repeat(40)).await,
        Err(Error::InvalidArgument(_))
    ));
    for ttl in [Duration::ZERO, Duration::from_secs(101 * 365 * 24 * 3600)] {
        let refused = values.set_with_ttl("k", &"x".into(), ttl).await;
        assert!(
            matches!(refused, Err(Error::InvalidArgument(_))),
            "{ttl:?}: {refused:?}"
        );
    }
    assert_eq!(
        values.get("k").await,
        Err(Error::NotFound),
        "refused writes change nothing"
    );

    let scores = ZSetStore::new(&node.cache(), "z");
    assert!(matches!(
        scores.zadd("k", f64::NAN, "m").await,
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(scores.zcard("k").await, Ok(0));
}

#[tokio::test]
async fn a_value_of_another_type_is_a_codec_error() {
    let node = node().await;
    ValueStore::<String>::new(&node.cache(), "v")
        .set("k", &"text".into())
        .await
        .unwrap();
    assert!(matches!(
        ValueStore::<Session>::new(&node.cache(), "v")
            .get("k")
            .await,
        Err(Error::Codec(_))
    ));
}

#[tokio::test]
async fn stores_never_collide() {
    let node = node().await;
    let cache = node.cache();
    ValueStore::<u32>::new(&cache, "a")
        .set("k", &1)
        .await
        .unwrap();
    ValueStore::<u32>::new(&cache, "b")
        .set("k", &2)
        .await
        .unwrap();
    ListStore::<u32>::new(&cache, "a")
        .rpush("k", &3)
        .await
        .unwrap();
    SetStore::new(&cache, "a").sadd("k", "m").await.unwrap();
    assert_eq!(ValueStore::<u32>::new(&cache, "a").get("k").await, Ok(1));
    assert_eq!(ValueStore::<u32>::new(&cache, "b").get("k").await, Ok(2));
    assert_eq!(ListStore::<u32>::new(&cache, "a").lpop("k").await, Ok(3));
    assert_eq!(node.status().keys, 3);
}

#[tokio::test]
async fn hashes_with_field_ttls() {
    let node = node().await;
    let streams = HashStore::<u32>::new(&node.cache(), "streams");
    assert_eq!(streams.hget_all("s").await.unwrap(), HashMap::new());
    assert_eq!(streams.hkeys("s").await.unwrap(), Vec::<String>::new());
    assert_eq!(streams.hget("s", "f").await, Err(Error::NotFound));
    streams.hset("s", "views", &10).await.unwrap();
    streams
        .hset_with_ttl("s", "live", &1, Duration::from_millis(200))
        .await
        .unwrap();
    streams.expire("s", Duration::from_secs(60)).await.unwrap();
    streams.hset("s", "views", &11).await.unwrap();
    assert!(
        streams.ttl("s").await.unwrap().is_some(),
        "hset keeps the key's TTL"
    );
    assert_eq!(streams.hget("s", "views").await, Ok(11));
    let mut keys = streams.hkeys("s").await.unwrap();
    keys.sort();
    assert_eq!(keys, ["live", "views"]);
    assert!(
        eventually(Duration::from_secs(5), async || streams
            .hget("s", "live")
            .await
            == Err(Error::NotFound))
        .await
    );
    assert_eq!(
        streams.hget_all("s").await.unwrap(),
        HashMap::from([("views".to_owned(), 11)])
    );
    assert_eq!(
        streams
            .hexpire_field("s", "gone", Duration::from_secs(1))
            .await,
        Err(Error::NotFound)
    );
    assert_eq!(
        streams
            .hexpire_field("none", "f", Duration::from_secs(1))
            .await,
        Err(Error::NotFound)
    );
    streams.hdel("s", "views").await.unwrap();
    streams.hdel("s", "views").await.unwrap();
    assert_eq!(
        streams.ttl("s").await,
        Err(Error::NotFound),
        "the last field takes the key with it"
    );
}

#[tokio::test]
async fn lists_follow_redis_indexing() {
    let node = node().await;
    let queue = ListStore::<u32>::new(&node.cache(), "queue");
    assert_eq!(queue.lpop("q").await, Err(Error::NotFound));
    assert_eq!(queue.llen("q").await, Ok(0));
    assert_eq!(queue.lrange("q", 0, -1).await, Ok(vec![]));
    for value in [2, 3] {
        queue.rpush("q", &value).await.unwrap();
    }
    queue.lpush("q", &1).await.unwrap();
    assert_eq!(queue.lrange("q", 0, -1).await, Ok(vec![1, 2, 3]));
    assert_eq!(queue.lrange("q", -2, 10).await, Ok(vec![2, 3]));
    assert_eq!(
        queue.lrange("q", 3, 10).await,
        Ok(vec![]),
        "start past the end is empty"
    );
    assert_eq!(queue.lrange("q", 2, 1).await, Ok(vec![]));
    assert_eq!(queue.lindex("q", -1).await, Ok(3));
    assert_eq!(queue.lindex("q", 3).await, Err(Error::NotFound));
    queue.lset("q", -1, &30).await.unwrap();
    assert_eq!(queue.lset("q", 5, &0).await, Err(Error::NotFound));
    assert_eq!(queue.lset("none", 0, &0).await, Err(Error::NotFound));
    assert_eq!(queue.rpop("q").await, Ok(30));
    assert_eq!(queue.lpop("q").await, Ok(1));
    assert_eq!(queue.lpop("q").await, Ok(2));
    assert_eq!(queue.lpop("q").await, Err(Error::NotFound));
    assert_eq!(node.status().keys, 0, "an empty list does not exist");
}

#[tokio::test]
async fn sets_with_member_ttls() {
    let node = node().await;
    let online = SetStore::new(&node.cache(), "online");
    assert!(!online.sismember("now", "ada").await.unwrap());
    online.sadd("now", "ada").await.unwrap();
    online.sadd("now", "bob").await.unwrap();
    online.sadd("now", "bob").await.unwrap();
    assert_eq!(online.scard("now").await, Ok(2));
    online
        .sexpire_member("now", "bob", Duration::from_millis(100))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), async || !online
            .sismember("now", "bob")
            .await
            .unwrap())
        .await
    );
    assert_eq!(online.smembers("now").await, Ok(vec!["ada".to_owned()]));
    assert_eq!(online.scard("now").await, Ok(1));
    assert_eq!(
        online
            .sexpire_member("now", "bob", Duration::from_secs(1))
            .await,
        Err(Error::NotFound)
    );
    online.srem("now", "ada").await.unwrap();
    assert_eq!(online.smembers("now").await, Ok(vec![]));
    assert_eq!(node.status().keys, 0);
}

#[tokio::test]
async fn sorted_sets_rank_and_range() {
    let node = node().await;
    let board = ZSetStore::new(&node.cache(), "board");
    assert_eq!(board.zscore("b", "x").await, Err(Error::NotFound));
    assert_eq!(board.zrank("b", "x").await, Err(Error::NotFound));
    for (score, member) in [
        (3.0, "c"),
        (1.0, "a"),
        (2.0, "b"),
        (2.0, "aa"),
        (f64::INFINITY, "top"),
    ] {
        board.zadd("b", score, member).await.unwrap();
    }
    let entry = |member: &str, score: f64| ZSetEntry {
        member: member.to_owned(),
        score,
    };
    assert_eq!(
        board.zrange("b", 0, 2).await.unwrap(),
        vec![entry("a", 1.0), entry("aa", 2.0), entry("b", 2.0)]
    );
    assert_eq!(board.zrank("b", "b").await, Ok(2));
    assert_eq!(board.zrevrank("b", "b").await, Ok(2));
    assert_eq!(board.zrevrank("b", "top").await, Ok(0));
    assert_eq!(
        board.zrange("b", -1, -1).await.unwrap(),
        vec![entry("top", f64::INFINITY)]
    );
    assert_eq!(
        board.zrange_by_score("b", 2.0, 3.0).await.unwrap(),
        vec![entry("aa", 2.0), entry("b", 2.0), entry("c", 3.0)]
    );
    assert_eq!(board.zrange_by_score("b", 3.0, 2.0).await.unwrap(), vec![]);
    board.zadd("b", 0.5, "c").await.unwrap();
    assert_eq!(board.zrank("b", "c").await, Ok(0));
    assert_eq!(board.zscore("b", "c").await, Ok(0.5));
    board.zrem("b", "c").await.unwrap();
    assert_eq!(board.zcard("b").await, Ok(4));
}

#[tokio::test]
async fn the_memory_limit_refuses_growth_but_never_deletes() {
    let node = Node::start(Config {
        mem_limit: 20_000,
        ..Config::default()
    })
    .await
    .unwrap();
    let values = ValueStore::<Vec<u8>>::new(&node.cache(), "v");
    let mut written = 0;
    let refused = loop {
        match values.set(&format!("k{written}"), &vec![7; 500]).await {
            Ok(()) => written += 1,
            Err(err) => break err,
        }
    };
    assert_eq!(refused, Error::CapacityExceeded);
    assert!(written > 10, "{written} values fit");
    assert!(node.status().memory_bytes <= 20_000);
    assert_eq!(
        values.get(&format!("k{written}")).await,
        Err(Error::NotFound)
    );
    values
        .set("k0", &vec![1; 10])
        .await
        .expect("a shrinking write always passes");
    values.del("k1").await.unwrap();
    values
        .set(&format!("k{written}"), &vec![7; 500])
        .await
        .expect("freed memory is reusable");
}

#[tokio::test]
async fn the_janitor_reclaims_expired_data_nobody_reads() {
    let config = Config {
        cleanup_interval: Duration::from_millis(50),
        ..Config::default()
    };
    let node = Node::start(config).await.unwrap();
    let values = ValueStore::<u32>::new(&node.cache(), "v");
    let online = SetStore::new(&node.cache(), "s");
    for i in 0..500 {
        values
            .set_with_ttl(&i.to_string(), &i, Duration::from_millis(100))
            .await
            .unwrap();
    }
    online.sadd("set", "stays").await.unwrap();
    online.sadd("set", "goes").await.unwrap();
    online
        .sexpire_member("set", "goes", Duration::from_millis(100))
        .await
        .unwrap();
    let full = node.status().memory_bytes;
    assert_eq!(node.status().keys, 501);
    assert!(eventually(Duration::from_secs(5), async || node.status().keys == 1).await);
    let status = node.status();
    assert!(
        status.memory_bytes < full / 50,
        "{} of {full} bytes left",
        status.memory_bytes
    );
}

#[tokio::test]
async fn status_describes_a_standalone_node() {
    let node = Node::start(Config {
        node_id: "solo".into(),
        replication_factor: 2,
        ..Config::default()
    })
    .await
    .unwrap();
    assert_eq!(node.id(), "solo");
    assert_eq!((node.gossip_addr(), node.rpc_addr()), (None, None));
    ValueStore::<u32>::new(&node.cache(), "v")
        .set("k", &1)
        .await
        .unwrap();
    let status = node.status();
    assert_eq!(status.node_id, "solo");
    assert_eq!(status.replication_factor, 2);
    assert_eq!((status.keys, status.rebalance_pending), (1, 0));
    assert!(status.memory_bytes > 0);
    assert_eq!(status.members.len(), 1);
    assert_eq!(status.members[0].id, "solo");
    assert_eq!(status.members[0].state, MemberState::Alive);
    assert_eq!(status.members[0].ring_share, 1.0);
    assert_eq!(node.wait_ready(1, Duration::from_secs(1)).await, Ok(()));
    assert!(matches!(
        node.wait_ready(2, Duration::from_millis(10)).await,
        Err(Error::Unavailable(_))
    ));
}

#[tokio::test]
async fn generated_ids_are_unique() {
    let (a, b) = (node().await, node().await);
    assert!(!a.id().is_empty());
    assert_ne!(a.id(), b.id());
}

#[tokio::test]
async fn invalid_configuration_is_refused_by_name() {
    let zero = Node::start(Config {
        replication_factor: 0,
        ..Config::default()
    })
    .await;
    assert!(
        matches!(zero, Err(Error::InvalidArgument(message)) if message.contains("replication_factor"))
    );
    let seed = Config {
        mode: Mode::Cluster,
        seeds: vec!["not an address".into()],
        ..Config::default()
    };
    let refused = Node::start(seed).await;
    assert!(matches!(refused, Err(Error::InvalidArgument(message)) if message.contains("seeds")));
    let short_tombstones = Config {
        mode: Mode::Cluster,
        rebalance_debounce: Duration::from_secs(1),
        tombstone_retention: Duration::from_millis(500),
        ..Config::default()
    };
    let refused = Node::start(short_tombstones).await;
    assert!(
        matches!(refused, Err(Error::InvalidArgument(message)) if message.contains("tombstone_retention"))
    );
}

#[tokio::test]
async fn a_stopped_node_refuses_operations() {
    let node = node().await;
    let values = ValueStore::<u32>::new(&node.cache(), "v");
    values.set("k", &1).await.unwrap();
    node.shutdown().await.unwrap();
    assert_eq!(values.get("k").await, Err(Error::ShuttingDown));

    let crashed = self::node().await;
    let values = ValueStore::<u32>::new(&crashed.cache(), "v");
    drop(crashed);
    assert_eq!(values.set("k", &1).await, Err(Error::ShuttingDown));
}
