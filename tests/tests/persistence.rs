//! A node with a data directory keeps its data across restarts: what a
//! graceful stop, `save_snapshot` or the snapshot timer wrote comes back at
//! the next start; a crash keeps what the last snapshot held. (Restarts from
//! a snapshot in a cluster: `cluster.rs`.)

use std::path::Path;
use std::time::{Duration, Instant};

use hive::{Config, Error, HashStore, ListStore, Node, SetStore, ValueStore, ZSetStore};

fn config(dir: &Path) -> Config {
    Config {
        data_dir: Some(dir.to_owned()),
        ..Config::default()
    }
}

async fn start(dir: &Path) -> Node {
    Node::start(config(dir)).await.expect("starts")
}

/// Writes one key of every kind, some with TTLs.
async fn write_all_kinds(node: &Node, tag: &str) {
    let cache = node.cache();
    let values = ValueStore::<String>::new(&cache, "v");
    values.set(tag, &tag.to_owned()).await.unwrap();
    values
        .set_with_ttl(
            &format!("{tag}-ttl"),
            &"brief".to_owned(),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    let hashes = HashStore::<u32>::new(&cache, "h");
    hashes.hset(tag, "a", &1).await.unwrap();
    hashes.hset(tag, "b", &2).await.unwrap();
    hashes
        .hexpire_field(tag, "b", Duration::from_secs(600))
        .await
        .unwrap();
    ListStore::<String>::new(&cache, "l")
        .rpush(tag, &"first".to_owned())
        .await
        .unwrap();
    SetStore::new(&cache, "s")
        .sadd(tag, "member")
        .await
        .unwrap();
    ZSetStore::new(&cache, "z")
        .zadd(tag, 2.5, "m")
        .await
        .unwrap();
}

/// Asserts that every key `write_all_kinds(tag)` wrote is there.
async fn assert_all_kinds(node: &Node, tag: &str) {
    let cache = node.cache();
    let values = ValueStore::<String>::new(&cache, "v");
    assert_eq!(values.get(tag).await.unwrap(), tag);
    let ttl = values
        .ttl(&format!("{tag}-ttl"))
        .await
        .unwrap()
        .expect("a TTL");
    assert!(
        ttl <= Duration::from_secs(600) && ttl > Duration::from_secs(500),
        "the TTL ran on, but not by much: {ttl:?}"
    );
    let hashes = HashStore::<u32>::new(&cache, "h");
    assert_eq!(hashes.hget(tag, "a").await.unwrap(), 1);
    assert_eq!(hashes.hget(tag, "b").await.unwrap(), 2);
    assert_eq!(
        ListStore::<String>::new(&cache, "l")
            .lrange(tag, 0, -1)
            .await
            .unwrap(),
        vec!["first".to_owned()]
    );
    assert_eq!(
        SetStore::new(&cache, "s").smembers(tag).await.unwrap(),
        vec!["member".to_owned()]
    );
    assert_eq!(
        ZSetStore::new(&cache, "z").zscore(tag, "m").await.unwrap(),
        2.5
    );
}

/// Starts a node on `dir` and asserts that it holds what
/// `write_all_kinds(kept)` wrote and not the value `write_all_kinds(lost)` wrote.
async fn assert_restart_keeps(dir: &Path, kept: &str, lost: &str) {
    let node = start(dir).await;
    assert_all_kinds(&node, kept).await;
    let values = ValueStore::<String>::new(&node.cache(), "v");
    assert_eq!(values.get(lost).await, Err(Error::NotFound));
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_graceful_stop_saves_and_the_next_start_loads_everything() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    write_all_kinds(&node, "one").await;
    node.shutdown().await.expect("stops and saves");

    let node = start(dir.path()).await;
    assert_all_kinds(&node, "one").await;
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_crash_keeps_what_the_last_snapshot_held() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    write_all_kinds(&node, "saved").await;
    let saved = node.save_snapshot().await.expect("saves");
    assert_eq!(saved.path, dir.path().join("snapshot.hive"));
    assert_eq!(saved.entries, 6);
    assert_eq!(
        saved.bytes,
        std::fs::metadata(&saved.path).unwrap().len(),
        "the file is all there"
    );
    write_all_kinds(&node, "unsaved").await;
    drop(node); // a crash: no save

    assert_restart_keeps(dir.path(), "saved", "unsaved").await;
}

#[tokio::test]
async fn the_snapshot_timer_saves_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(Config {
        snapshot_interval: Some(Duration::from_millis(50)),
        ..config(dir.path())
    })
    .await
    .unwrap();
    write_all_kinds(&node, "timed").await;
    // Once a save that began after the writes has finished, a crash keeps
    // them: a save finished after the writes may have begun before them, but
    // the next one began after it.
    let file = dir.path().join("snapshot.hive");
    let mut since = std::time::SystemTime::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    for _ in 0..2 {
        loop {
            let modified = std::fs::metadata(&file).and_then(|meta| meta.modified());
            if let Ok(at) = modified
                && at > since
            {
                since = at;
                break;
            }
            assert!(Instant::now() < deadline, "no snapshot written within 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    drop(node);

    // A save under way when the node was dropped holds the directory until
    // it ends, as the crashed process would have.
    let deadline = Instant::now() + Duration::from_secs(10);
    let node = loop {
        match Node::start(config(dir.path())).await {
            Ok(node) => break node,
            Err(Error::InvalidArgument(m)) if m.contains("another process") => {
                assert!(Instant::now() < deadline, "the lock was never released");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(other) => panic!("restart: {other}"),
        }
    };
    assert_all_kinds(&node, "timed").await;
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_second_node_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    match Node::start(config(dir.path())).await {
        Err(Error::InvalidArgument(message)) => {
            assert!(message.contains("another process"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    node.shutdown().await.unwrap();
    // Released at the stop.
    start(dir.path()).await.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_corrupt_snapshot_stops_the_start_and_is_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    write_all_kinds(&node, "x").await;
    node.shutdown().await.unwrap();
    let file = dir.path().join("snapshot.hive");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();

    match Node::start(config(dir.path())).await {
        Err(Error::Persistence(message)) => {
            assert!(
                message.contains("snapshot.hive"),
                "names the file: {message}"
            );
            assert!(message.contains("byte"), "names the offset: {message}");
        }
        other => panic!("expected a persistence error, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        bytes,
        "the file is untouched"
    );
}

#[tokio::test]
async fn a_node_without_a_snapshot_starts_empty_and_save_needs_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(&dir.path().join("new")).await;
    assert_eq!(node.key_count().await.unwrap(), 0);
    node.shutdown().await.unwrap();

    let plain = Node::start(Config::default()).await.unwrap();
    assert!(matches!(
        plain.save_snapshot().await,
        Err(Error::InvalidArgument(_))
    ));
    plain.shutdown().await.unwrap();
}

#[test]
fn snapshot_settings_are_checked() {
    let no_dir = Config {
        snapshot_interval: Some(Duration::from_secs(1)),
        ..Config::default()
    };
    assert!(matches!(no_dir.validate(), Err(Error::InvalidArgument(m)) if m.contains("data_dir")));
    let zero = Config {
        snapshot_interval: Some(Duration::ZERO),
        ..config(Path::new("/tmp/unused"))
    };
    assert!(
        matches!(zero.validate(), Err(Error::InvalidArgument(m)) if m.contains("snapshot_interval"))
    );
}

#[tokio::test]
async fn the_status_counts_changes_since_the_last_save() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let fresh = node.persistence().expect("a data dir");
    assert_eq!(fresh.dir, dir.path());
    assert_eq!(
        (fresh.changes_since_save, fresh.saving, fresh.last_save_ok),
        (0, false, true)
    );
    write_all_kinds(&node, "a").await;
    let dirty = node.persistence().unwrap().changes_since_save;
    assert!(dirty >= 7, "one change per write at least: {dirty}");
    node.save_snapshot().await.unwrap();
    let saved = node.persistence().unwrap();
    assert_eq!(saved.changes_since_save, 0);
    assert!(saved.last_save >= fresh.last_save);
    node.shutdown().await.unwrap();

    let plain = Node::start(Config::default()).await.unwrap();
    assert_eq!(plain.persistence(), None);
    plain.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stop_without_save_keeps_the_last_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    write_all_kinds(&node, "kept").await;
    node.save_snapshot().await.unwrap();
    write_all_kinds(&node, "dropped").await;
    node.shutdown_without_save().await.unwrap();

    assert_restart_keeps(dir.path(), "kept", "dropped").await;
}

#[tokio::test]
async fn a_save_abandoned_by_its_caller_does_not_stay_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    write_all_kinds(&node, "a").await;
    // Dropped at its first await: the save never reports as running again.
    let abandoned = tokio::time::timeout(Duration::ZERO, node.save_snapshot()).await;
    drop(abandoned);
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.persistence().unwrap().saving {
        assert!(Instant::now() < deadline, "still saving");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    node.save_snapshot().await.expect("a later save runs");
    node.shutdown().await.unwrap();
}
