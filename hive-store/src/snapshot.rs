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

use thiserror::Error;

use crate::error::StoreError;
use crate::export::ExportedEntry;
use crate::store::Store;

use format::{FrameReader, FrameWriter, Header};

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
    /// changed meanwhile; encoding and writing hold no lock. `out` is
    /// flushed, not synced: making it durable is the caller's.
    pub fn save_snapshot<W: Write>(
        &self,
        out: W,
        node_id: &str,
    ) -> Result<(W, SnapshotInfo), SnapshotError> {
        self.save_snapshot_paced(out, node_id, |_| {})
    }

    /// [`Store::save_snapshot`], calling `pace` after each shard with the
    /// time the shard took: a background save can pause there to leave the
    /// CPU to the store's clients (sleeping as long as the shard took halves
    /// its share of a core).
    pub fn save_snapshot_paced<W: Write>(
        &self,
        out: W,
        node_id: &str,
        mut pace: impl FnMut(std::time::Duration),
    ) -> Result<(W, SnapshotInfo), SnapshotError> {
        let created_ms = self.now_ms();
        let header = Header {
            node_id: node_id.to_owned(),
            created_ms,
        };
        let mut writer = FrameWriter::new(out, &header)?;
        for shard in 0..self.shard_count() {
            let started = std::time::Instant::now();
            self.capture_shard(shard, |taken_at, entries| writer.entries(taken_at, entries))?;
            pace(started.elapsed());
        }
        let (out, bytes, counts) = writer.finish()?;
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
