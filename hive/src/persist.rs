//! A node's data directory: its snapshot file, written atomically, and the
//! lock that keeps a second process out.
//!
//! A save writes the store to a temporary file in the directory, syncs it,
//! renames it over `snapshot.hive` and syncs the directory, so the file is
//! always a whole snapshot: the last one, or the one before. The store
//! streams itself ([`Store::save_snapshot`]); the file work runs on the
//! blocking pool, or for a background save on a low-priority thread of its
//! own.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use hive_store::{SnapshotError, SnapshotInfo, Store};

use crate::error::{Error, Result};

/// The snapshot's file name in the data directory.
pub(crate) const SNAPSHOT_FILE: &str = "snapshot.hive";

/// The lock file's name: held (`flock`) while a node uses the directory.
const LOCK_FILE: &str = "hive.lock";

/// Buffer between the store and the file.
const IO_BUFFER: usize = 1 << 20;

/// A snapshot written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSnapshot {
    /// The snapshot file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Live entries it holds.
    pub entries: u64,
    /// Tombstones it holds (cluster mode).
    pub tombstones: u64,
}

/// Where a node's snapshots stand ([`Node::persistence`](crate::Node::persistence)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistenceStatus {
    /// The data directory.
    pub dir: PathBuf,
    /// When the last successful save finished; at start, when the snapshot
    /// was loaded (or the node started, if there was none).
    pub last_save: SystemTime,
    /// Whether the last save attempt succeeded (true before any).
    pub last_save_ok: bool,
    /// A save is under way.
    pub saving: bool,
    /// Changes to keys since the last successful save began: what a crash
    /// now would lose.
    pub changes_since_save: u64,
}

/// The last save's outcome.
#[derive(Debug)]
struct LastSave {
    at: SystemTime,
    ok: bool,
    /// `Store::changes` when it began.
    changes: u64,
}

/// How fast a save goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// As fast as it can: someone waits for it (`SAVE`, a stopping node).
    Now,
    /// Leaving the CPU to clients first (`BGSAVE`, the snapshot timer): the
    /// thread that encodes, compresses and writes runs in the idle
    /// scheduling class where the system has one (Linux: `SCHED_IDLE`).
    Background,
}

/// An open data directory; the lock is held until it is dropped.
#[derive(Debug)]
pub(crate) struct DataDir {
    dir: PathBuf,
    /// Held for the directory's lifetime; dropping it releases the lock.
    _lock: File,
    /// One save at a time.
    one_at_a_time: tokio::sync::Mutex<()>,
    saving: AtomicBool,
    last: Mutex<LastSave>,
}

impl DataDir {
    /// Opens (creating it if needed) and locks `dir`. Fails if another
    /// process holds it.
    pub(crate) fn open(dir: &Path) -> Result<DataDir> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_error(&lock_path, &e))?;
        lock.try_lock().map_err(|_| {
            Error::InvalidArgument(format!(
                "data_dir {}: another process is using it ({} is locked)",
                dir.display(),
                lock_path.display()
            ))
        })?;
        Ok(DataDir {
            dir: dir.to_owned(),
            _lock: lock,
            one_at_a_time: tokio::sync::Mutex::new(()),
            saving: AtomicBool::new(false),
            last: Mutex::new(LastSave {
                at: SystemTime::now(),
                ok: true,
                changes: 0,
            }),
        })
    }

    /// Returns where saves stand, given the store's change count now.
    pub(crate) fn status(&self, changes_now: u64) -> PersistenceStatus {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        PersistenceStatus {
            dir: self.dir.clone(),
            last_save: last.at,
            last_save_ok: last.ok,
            saving: self.saving.load(Ordering::Acquire),
            changes_since_save: changes_now.wrapping_sub(last.changes),
        }
    }

    /// Records that the store, as loaded, is what the directory holds.
    fn loaded(&self, changes: u64) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        *last = LastSave {
            at: SystemTime::now(),
            ok: true,
            changes,
        };
    }

    /// Returns the snapshot file's path.
    pub(crate) fn snapshot_path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }

    /// Loads the snapshot into `store` (empty), if there is one; `None` if
    /// there is none, or if it was written `max_age` or longer ago (then it
    /// is discarded with a log line: in a cluster, the tombstones of keys
    /// deleted since may be gone, and its copies would bring those keys
    /// back). On any error the store stays empty and the file is left as it
    /// is.
    pub(crate) async fn load(
        &self,
        store: Arc<Store>,
        max_age: Option<std::time::Duration>,
    ) -> Result<Option<SnapshotInfo>> {
        let path = self.snapshot_path();
        let loaded = blocking(move || {
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_error(&path, &e)),
            };
            let info = store
                .load_snapshot(BufReader::with_capacity(IO_BUFFER, file))
                .map_err(|e| snapshot_error(&path, &e))?;
            let age_ms = store.now_ms().saturating_sub(info.created_ms);
            if let Some(max_age) = max_age
                && u128::from(age_ms) >= max_age.as_millis()
            {
                store.clear();
                tracing::warn!(
                    path = %path.display(),
                    age_ms,
                    max_age_ms = max_age.as_millis() as u64,
                    "snapshot discarded: older than tombstone_retention, it could bring back keys deleted since"
                );
                return Ok(None);
            }
            Ok(Some((info, store.changes())))
        })
        .await?;
        Ok(loaded.map(|(info, changes)| {
            self.loaded(changes);
            info
        }))
    }

    /// Saves `store` as this directory's snapshot and returns once the file
    /// is durable. A background save ([`Pace::Background`]) encodes and
    /// writes at the lowest CPU priority.
    pub(crate) async fn save(
        &self,
        store: Arc<Store>,
        node_id: &str,
        pace: Pace,
    ) -> Result<SavedSnapshot> {
        let _one_at_a_time = self.one_at_a_time.lock().await;
        // Cleared however this ends, a caller dropping the future included
        // (the file work itself runs on to its end).
        let _saving = Saving::start(&self.saving);
        let changes = store.changes();
        let saved = self.write(store, node_id, pace).await;
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match &saved {
            Ok(_) => {
                *last = LastSave {
                    at: SystemTime::now(),
                    ok: true,
                    changes,
                };
            }
            Err(_) => last.ok = false,
        }
        saved
    }

    /// Writes the snapshot file; see [`DataDir::save`].
    async fn write(&self, store: Arc<Store>, node_id: &str, pace: Pace) -> Result<SavedSnapshot> {
        let (dir, path, node_id) = (self.dir.clone(), self.snapshot_path(), node_id.to_owned());
        let work = move || {
            let temp = tempfile::Builder::new()
                .prefix(".snapshot-")
                .suffix(".tmp")
                .tempfile_in(&dir)
                .map_err(|e| io_error(&dir, &e))?;
            let out = BufWriter::with_capacity(IO_BUFFER, temp);
            let saved = match pace {
                Pace::Now => store.save_snapshot(out, &node_id),
                Pace::Background => store.save_snapshot_with(out, &node_id, lowest_priority),
            };
            let (out, info) = saved.map_err(|e| snapshot_error(&path, &e))?;
            let temp = out.into_inner().map_err(|e| io_error(&path, e.error()))?;
            temp.as_file().sync_all().map_err(|e| io_error(&path, &e))?;
            temp.persist(&path).map_err(|e| io_error(&path, &e.error))?;
            File::open(&dir)
                .and_then(|dir| dir.sync_all())
                .map_err(|e| io_error(&dir, &e))?;
            Ok(SavedSnapshot {
                path,
                bytes: info.bytes,
                entries: info.entries,
                tombstones: info.tombstones,
            })
        };
        blocking(work).await
    }
}

/// Marks a save under way until dropped.
struct Saving<'a>(&'a AtomicBool);

impl<'a> Saving<'a> {
    fn start(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::Release);
        Saving(flag)
    }
}

impl Drop for Saving<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Persistence(format!("snapshot task failed: {e}")))?
}

/// Moves the calling thread to the idle scheduling class (`SCHED_IDLE`), or
/// to nice 19 where that is refused. A background save runs its writing
/// thread there, so that a client's thread that wakes takes the core from
/// it at once: at the clients' priority, a save's thread took its share of
/// two busy cores in slices of milliseconds (client p99 latency during
/// back-to-back saves about five times the steady one, `cargo xtask bench
/// snapshot`). The thread that takes the store's locks keeps the clients'
/// priority (see `Store::save_snapshot_with`), and the writing thread ends
/// with the save: an unprivileged thread cannot leave the idle class.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(err) =
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
        {
            tracing::debug!(?err, "the snapshot thread is not in the idle class");
            if let Err(err) =
                rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19)
            {
                tracing::debug!(%err, "the snapshot thread keeps its priority");
            }
        }
    }
}

fn io_error(path: &Path, err: &std::io::Error) -> Error {
    Error::Persistence(format!("{}: {err}", path.display()))
}

fn snapshot_error(path: &Path, err: &SnapshotError) -> Error {
    Error::Persistence(format!("{}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn the_lowest_priority_is_the_idle_class_for_the_calling_thread_only() {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
        let policy = || thread_priority::thread_schedule_policy().unwrap();
        let before = policy();
        let inside = std::thread::spawn(move || {
            lowest_priority();
            policy()
        })
        .join()
        .unwrap();
        assert_eq!(
            inside,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
        );
        assert_eq!(policy(), before);
    }
}
