//! Snapshots: the whole store written to a byte stream, and read back.
//!
//! [`Store::save_snapshot`] writes every live entry and tombstone with its
//! version and TTLs while the store keeps serving, shard by shard, each
//! shard as of one instant; [`Store::load_snapshot`] reads one into an empty
//! store, all or nothing: a corrupt, truncated or unknown-version stream
//! leaves the store empty and says where the stream went wrong. TTLs run on
//! while a snapshot sits on disk: entries that expired since are skipped.
//!
//! The store does no file I/O of its own: its owner hands it any
//! [`Write`]/[`Read`] (a file written atomically, a socket, memory). The
//! format is `format.rs`.

mod format;

use std::io::{Read, Write};
use std::sync::mpsc::SyncSender;

use bytes::Bytes;

use thiserror::Error;

use crate::entry::Entry;
use crate::error::StoreError;
use crate::export::{ExportedEntry, ShardCopy, export_entry, tombstone};
use crate::shard::Prior;
use crate::store::Store;

use format::{FrameReader, FrameWriter, Header};

/// Entries of one shard's instant, on their way from the thread that copies
/// the shards to the one that writes the file.
#[derive(Debug, Default)]
struct Batch {
    /// The instant (Unix ms): the entries' TTLs remain from it.
    taken_at: u64,
    entries: Vec<ExportedEntry>,
}

/// Copies a shard's entries under its lock and hands them to the writing
/// thread between slices. The copies are reference counts, not bytes, and
/// the encoding waits for the other thread: encoding under the lock, on the
/// thread at the clients' priority, was measured to cost the clients more
/// (P11 in docs/benchmarks.md).
struct ToWriter<'a> {
    batch: Batch,
    batches: &'a SyncSender<Batch>,
}

/// The writing thread stopped, on an error its result carries.
#[derive(Debug)]
struct WriterGone;

impl ShardCopy for ToWriter<'_> {
    type Error = WriterGone;

    fn copy(&mut self, at_ms: u64, key: &Bytes, prior: Prior<&Entry>) -> Result<(), WriterGone> {
        self.batch.taken_at = at_ms;
        self.batch.entries.push(match prior {
            Prior::Live(entry) => export_entry(key, entry, at_ms),
            Prior::Tombstone(version) => tombstone(key, version),
        });
        Ok(())
    }

    fn between(&mut self) -> Result<(), WriterGone> {
        if self.batch.entries.len() >= BATCH_ENTRIES {
            let full = std::mem::take(&mut self.batch);
            self.batch.taken_at = full.taken_at;
            self.batches.send(full).map_err(|_| WriterGone)?;
        }
        Ok(())
    }
}

/// Entries per [`Batch`], at least: enough that handing a batch over costs
/// little next to encoding it.
const BATCH_ENTRIES: usize = 1024;

/// Batches copied ahead of the writer, at most: what a save holds in memory
/// beyond the store is bounded by this (and by the copy-on-write states of
/// the shard being copied).
const BATCHES_IN_FLIGHT: usize = 4;

/// Why a snapshot could not be saved or loaded. A failed load leaves the
/// store empty.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Reading or writing the stream failed.
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The stream is not a well-formed snapshot: damaged, truncated, or not
    /// a snapshot at all. `offset` is the byte where the damaged part starts.
    #[error("corrupt snapshot at byte {offset}: {reason}")]
    Corrupt {
        /// Byte offset of the damaged header, frame or trailer.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// The snapshot was written in a format this build does not read.
    #[error("snapshot format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The version in the stream.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// An entry of a well-formed snapshot does not fit this store: over its
    /// size limits, or past its memory limit.
    #[error("snapshot entry for key {key:?} in the frame at byte {offset} refused: {error}")]
    Refused {
        /// Byte offset of the frame holding the entry.
        offset: u64,
        /// The entry's key (lossy UTF-8, at most 64 bytes of it).
        key: String,
        /// Why the store refused it.
        error: StoreError,
    },
    /// A snapshot loads only into an empty store.
    #[error("a snapshot loads only into an empty store")]
    NotEmpty,
    /// A header or an entry could not be encoded.
    #[error("snapshot encoding: {0}")]
    Encode(String),
}

/// What a saved or loaded snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The id of the node that wrote it.
    pub node_id: String,
    /// When it was started (Unix ms).
    pub created_ms: u64,
    /// Live entries in the stream.
    pub entries: u64,
    /// Tombstones in the stream.
    pub tombstones: u64,
    /// Entries that had expired by the time they were loaded, and were
    /// skipped (0 on save).
    pub expired: u64,
    /// Bytes of the stream.
    pub bytes: u64,
}

impl Store {
    /// Writes a snapshot of the store to `out` — every live entry and
    /// tombstone, with its version and remaining TTLs — and returns what it
    /// wrote. The store keeps serving meanwhile: each shard is copied as of
    /// one instant, 64 keys per lock acquisition, copy-on-write for keys
    /// changed meanwhile. `out` is flushed, not synced: making it durable is
    /// the caller's.
    ///
    /// The work is split over two threads: the calling thread copies the
    /// shards, the only part that takes the store's locks, and a second one
    /// encodes, compresses and writes, holding none.
    pub fn save_snapshot<W: Write + Send>(
        &self,
        out: W,
        node_id: &str,
    ) -> Result<(W, SnapshotInfo), SnapshotError> {
        self.save_snapshot_with(out, node_id, || {})
    }

    /// [`Store::save_snapshot`], running `writer_setup` first on the thread
    /// that encodes and writes: a background save lowers that thread's CPU
    /// priority there, so that the bulk of its work yields to the store's
    /// clients. The copying stays on the calling thread, at its priority: a
    /// thread of the lowest priority holding a shard lock could be kept off
    /// the CPU for milliseconds while the clients wait for that lock.
    pub fn save_snapshot_with<W: Write + Send>(
        &self,
        out: W,
        node_id: &str,
        writer_setup: impl FnOnce() + Send,
    ) -> Result<(W, SnapshotInfo), SnapshotError> {
        let created_ms = self.now_ms();
        let header = Header {
            node_id: node_id.to_owned(),
            created_ms,
        };
        let (batches, received) = std::sync::mpsc::sync_channel::<Batch>(BATCHES_IN_FLIGHT);
        let (out, bytes, counts) = std::thread::scope(|scope| {
            let writer = std::thread::Builder::new()
                .name("hive-snapshot-writer".into())
                .spawn_scoped(scope, || {
                    writer_setup();
                    let mut writer = FrameWriter::new(out, &header)?;
                    for batch in received {
                        writer.entries(batch.taken_at, &batch.entries)?;
                    }
                    writer.finish()
                })?;
            // Copying stops early only if the writer stopped on an error,
            // which its result carries.
            let _ = self.send_shards(&batches);
            drop(batches);
            writer.join().unwrap_or_else(|_| {
                Err(SnapshotError::Encode("the snapshot writer panicked".into()))
            })
        })?;
        Ok((
            out,
            SnapshotInfo {
                node_id: header.node_id,
                created_ms,
                entries: counts.entries,
                tombstones: counts.tombstones,
                expired: 0,
                bytes,
            },
        ))
    }

    /// Copies every shard into `batches`, [`BATCH_ENTRIES`] entries at a
    /// time.
    fn send_shards(&self, batches: &SyncSender<Batch>) -> Result<(), WriterGone> {
        for shard in 0..self.shard_count() {
            let mut to = ToWriter {
                batch: Batch::default(),
                batches,
            };
            self.capture_shard(shard, &mut to)?;
            if !to.batch.entries.is_empty() {
                batches.send(to.batch).map_err(|_| WriterGone)?;
            }
        }
        Ok(())
    }

    /// Reads a snapshot from `input` into this store, which must be empty,
    /// and returns what it held. Versions are kept, so the store's clocks
    /// move past them and later writes order after the loaded state. TTLs
    /// ran on since the snapshot was taken: entries, hash fields and set
    /// members that expired meanwhile are skipped.
    ///
    /// All or nothing: on any error — corrupt, truncated, unknown version,
    /// an entry the store refuses — the store is left empty. Every length in
    /// the stream is checked before anything is allocated for it; a frame
    /// is at most the store's entry limit plus 1 MiB.
    pub fn load_snapshot<R: Read>(&self, input: R) -> Result<SnapshotInfo, SnapshotError> {
        if !self.is_empty() || self.tombstone_count() > 0 {
            return Err(SnapshotError::NotEmpty);
        }
        let loaded = self.load_frames(input);
        if loaded.is_err() {
            self.clear();
        }
        loaded
    }

    fn load_frames<R: Read>(&self, input: R) -> Result<SnapshotInfo, SnapshotError> {
        let (mut reader, header) = FrameReader::new(input, self.limits().max_entry_len)?;
        let mut info = SnapshotInfo {
            node_id: header.node_id,
            created_ms: header.created_ms,
            entries: 0,
            tombstones: 0,
            expired: 0,
            bytes: 0,
        };
        while let Some(frame) = reader.next_frame()? {
            let elapsed = self.now_ms().saturating_sub(frame.taken_at);
            let mut fresh = Vec::with_capacity(frame.entries.len());
            for entry in frame.entries {
                if entry.data == crate::export::ExportedData::Tombstone {
                    info.tombstones += 1;
                    fresh.push(entry);
                    continue;
                }
                info.entries += 1;
                match aged(entry, elapsed) {
                    Some(entry) => fresh.push(entry),
                    None => info.expired += 1,
                }
            }
            let keys: Vec<_> = fresh.iter().map(|entry| entry.key.clone()).collect();
            for (key, result) in keys.iter().zip(self.apply_many(fresh)) {
                if let Err(error) = result {
                    return Err(SnapshotError::Refused {
                        offset: frame.offset,
                        key: String::from_utf8_lossy(&key[..key.len().min(64)]).into_owned(),
                        error,
                    });
                }
            }
        }
        info.bytes = reader.offset();
        Ok(info)
    }
}

/// Returns `entry` as it stands `elapsed` ms after it was exported: every
/// TTL shortened by that much (an element whose TTL ran out arrives as
/// expired, and is dropped), or `None` if the key itself expired.
fn aged(mut entry: ExportedEntry, elapsed: u64) -> Option<ExportedEntry> {
    use crate::export::ExportedData;

    let age = |ttl: &mut Option<u64>| {
        if let Some(ms) = ttl {
            *ms = ms.saturating_sub(elapsed);
        }
    };
    if entry.ttl_ms.is_some_and(|ms| ms <= elapsed) {
        return None;
    }
    age(&mut entry.ttl_ms);
    match &mut entry.data {
        ExportedData::Hash(fields) => fields.iter_mut().for_each(|(_, _, ttl)| age(ttl)),
        ExportedData::Set(members) => members.iter_mut().for_each(|(_, ttl)| age(ttl)),
        ExportedData::Tombstone
        | ExportedData::Value(_)
        | ExportedData::List(_)
        | ExportedData::ZSet(_) => {}
    }
    Some(entry)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::convert::Infallible;
    use std::sync::Arc;

    use super::*;
    use crate::{MockClock, StoreConfig};

    /// Copies a shard and, between its slices, changes the store: overwrites
    /// and deletes keys the copy may not have reached yet, and adds enough
    /// new keys to make the table grow.
    struct WritingBetween<'a> {
        store: &'a Store,
        copied: Vec<ExportedEntry>,
        slices: usize,
    }

    impl ShardCopy for WritingBetween<'_> {
        type Error = Infallible;

        fn copy(
            &mut self,
            at_ms: u64,
            key: &Bytes,
            prior: Prior<&Entry>,
        ) -> Result<(), Infallible> {
            self.copied.push(match prior {
                Prior::Live(entry) => export_entry(key, entry, at_ms),
                Prior::Tombstone(version) => tombstone(key, version),
            });
            Ok(())
        }

        fn between(&mut self) -> Result<(), Infallible> {
            let n = self.slices;
            self.slices += 1;
            let value = Bytes::from_static(b"changed");
            self.store
                .set(format!("k{n}").as_bytes(), value, None)
                .unwrap();
            self.store.del(format!("k{}", 999 - n).as_bytes()).unwrap();
            self.store.del(format!("gone{n}").as_bytes()).unwrap();
            for i in 0..100 {
                let key = format!("new{n}-{i}");
                self.store
                    .set(key.as_bytes(), Bytes::from_static(b"x"), None)
                    .unwrap();
            }
            Ok(())
        }
    }

    #[test]
    fn a_capture_is_the_state_at_its_instant_even_when_the_table_grows_meanwhile() {
        let clock = MockClock::new(1_000_000);
        let config = StoreConfig {
            shards: 1,
            tombstones: true,
            ..StoreConfig::default()
        };
        let store = Store::with_clock(config, Arc::new(clock));
        for i in 0..1000 {
            let value = Bytes::from(format!("v{i}"));
            store
                .set(format!("k{i}").as_bytes(), value, Some(60_000))
                .unwrap();
        }
        for i in 0..20 {
            let key = format!("gone{i}");
            store
                .set(key.as_bytes(), Bytes::from_static(b"soon"), None)
                .unwrap();
            store.del(key.as_bytes()).unwrap();
        }
        let mut expected = BTreeMap::new();
        for key in (0..1000)
            .map(|i| format!("k{i}"))
            .chain((0..20).map(|i| format!("gone{i}")))
        {
            let entry = store.export(key.as_bytes()).unwrap().expect("known");
            expected.insert(entry.key.clone(), entry);
        }
        let layout = || store.shard_lock(0).unwrap().read().layout();
        let before = layout();

        let mut copy = WritingBetween {
            store: &store,
            copied: Vec::new(),
            slices: 0,
        };
        let Ok(()) = store.capture_shard(0, &mut copy);

        assert_ne!(layout(), before, "the table grew during the copy");
        let mut got = BTreeMap::new();
        for entry in copy.copied {
            if let Some(earlier) = got.insert(entry.key.clone(), entry.clone()) {
                assert_eq!(earlier, entry, "a key that comes twice comes the same");
            }
        }
        assert_eq!(got, expected);
    }

    /// Records the threads that write to it.
    #[derive(Clone, Default)]
    struct Threads(Arc<parking_lot::Mutex<Vec<std::thread::ThreadId>>>);

    impl Write for Threads {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().push(std::thread::current().id());
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_writer_setup_runs_on_the_thread_that_writes_and_not_on_the_caller() {
        let store = Store::new(StoreConfig::default());
        for i in 0..5000 {
            store
                .set(format!("k{i}").as_bytes(), Bytes::from_static(b"v"), None)
                .unwrap();
        }
        let setup = Arc::new(parking_lot::Mutex::new(None));
        let on_setup = setup.clone();
        let out = Threads::default();
        let (out, info) = store
            .save_snapshot_with(out, "node-a", move || {
                *on_setup.lock() = Some(std::thread::current().id());
            })
            .unwrap();

        assert_eq!(info.entries, 5000);
        let writer = setup.lock().expect("the setup ran");
        assert_ne!(writer, std::thread::current().id());
        let writes = out.0.lock();
        assert!(!writes.is_empty());
        assert!(writes.iter().all(|&thread| thread == writer));
    }

    /// Fails every write after the first `budget` bytes.
    #[derive(Debug)]
    struct FailingAfter {
        budget: usize,
    }

    impl Write for FailingAfter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if buf.len() > self.budget {
                return Err(std::io::Error::other("disk full"));
            }
            self.budget -= buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_writer_that_fails_mid_save_stops_the_copy_and_is_the_error() {
        let store = Store::new(StoreConfig::default());
        // More entries than the batches in flight hold, so the copy is
        // waiting on the writer when it fails.
        for i in 0..(BATCH_ENTRIES * BATCHES_IN_FLIGHT * 4) {
            let value = Bytes::from(format!("value {i}").repeat(20));
            store.set(format!("k{i}").as_bytes(), value, None).unwrap();
        }
        for budget in [0, 100, 300_000] {
            match store.save_snapshot(FailingAfter { budget }, "node-a") {
                Err(SnapshotError::Io(error)) => assert_eq!(error.to_string(), "disk full"),
                other => panic!("budget {budget}: {other:?}"),
            }
        }
        // The store keeps serving, and a later save succeeds.
        assert_eq!(
            store.save_snapshot(Vec::new(), "node-a").unwrap().1.entries,
            16_384
        );
    }
}
