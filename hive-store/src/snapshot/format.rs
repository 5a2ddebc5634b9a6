//! The snapshot file format, version 1, and its bounded reader and writer.
//!
//! ```text
//! header   "HIVESNAP" | format version: u32 | header length: u32 | header (MessagePack map:
//!          node_id, created_ms)
//! frames   stored length: u32 (1..) | crc32 of the stored bytes: u32 |
//!          payload length: u32 (0: stored as is) | stored bytes (the payload,
//!          LZ4-block-compressed unless the payload length is 0)
//!          payload = taken at (Unix ms): u64 | entry count: u32 | that many MessagePack
//!                    `ExportedEntry`s (TTLs remaining as of "taken at")
//! trailer  0: u32 (a frame length of 0 ends the frames) | entries: u64 | tombstones: u64 |
//!          crc32 of every byte before it: u32
//! ```
//!
//! Integers are little-endian. A frame holds about [`FRAME_TARGET`] bytes of
//! entries (one larger entry goes alone), compressed when that makes it
//! smaller. The file is untrusted input: every length — stored and
//! decompressed — is checked against a bound before anything is allocated
//! for it.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::export::{ExportedData, ExportedEntry};

use super::SnapshotError;

/// The first bytes of every snapshot file.
pub(super) const MAGIC: &[u8; 8] = b"HIVESNAP";

/// The format this build writes and reads.
pub(super) const FORMAT_VERSION: u32 = 1;

/// The header's MessagePack is at most this long.
const MAX_HEADER_LEN: u32 = 4096;

/// A frame is cut once its entries pass this many bytes.
pub(super) const FRAME_TARGET: usize = 1 << 20;

/// Bytes a frame may hold beyond its largest entry: the frame's own fields
/// and the entry's encoding overhead.
pub(super) const FRAME_SLACK: usize = 1 << 20;

/// Bytes of a frame payload before its entries: taken-at and count.
const FRAME_PREFIX: usize = 8 + 4;

/// What the header records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Header {
    pub(super) node_id: String,
    pub(super) created_ms: u64,
}

/// Counts of what a snapshot holds, as its trailer records them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub(super) entries: u64,
    pub(super) tombstones: u64,
}

/// Writes a snapshot: header, frames, trailer, with the whole-file checksum
/// computed on the way.
pub(super) struct FrameWriter<W: Write> {
    out: W,
    crc: crc32fast::Hasher,
    written: u64,
    /// The frame being filled: its entries, already encoded.
    frame: Vec<u8>,
    /// Room for the compressed frame, reused.
    compressed: Vec<u8>,
    frame_taken_at: u64,
    frame_count: u32,
    counts: Counts,
}

impl<W: Write> FrameWriter<W> {
    /// Writes the header.
    pub(super) fn new(out: W, header: &Header) -> Result<Self, SnapshotError> {
        let encoded =
            rmp_serde::to_vec_named(header).map_err(|e| SnapshotError::Encode(e.to_string()))?;
        let len = u32::try_from(encoded.len())
            .ok()
            .filter(|&len| len <= MAX_HEADER_LEN)
            .ok_or_else(|| {
                SnapshotError::Encode(format!(
                    "header of {} bytes is over {MAX_HEADER_LEN}",
                    encoded.len()
                ))
            })?;
        let mut writer = Self {
            out,
            crc: crc32fast::Hasher::new(),
            written: 0,
            frame: Vec::with_capacity(FRAME_PREFIX + FRAME_TARGET),
            compressed: Vec::new(),
            frame_taken_at: 0,
            frame_count: 0,
            counts: Counts::default(),
        };
        writer.put(MAGIC)?;
        writer.put(&FORMAT_VERSION.to_le_bytes())?;
        writer.put(&len.to_le_bytes())?;
        writer.put(&encoded)?;
        Ok(writer)
    }

    /// Adds the entries of one instant (`taken_at`, Unix ms: their TTLs are
    /// remaining from it), cutting frames as they fill.
    pub(super) fn entries(
        &mut self,
        taken_at: u64,
        entries: &[ExportedEntry],
    ) -> Result<(), SnapshotError> {
        if self.frame_count > 0 && self.frame_taken_at != taken_at {
            self.flush_frame()?;
        }
        self.frame_taken_at = taken_at;
        for entry in entries {
            if self.frame.is_empty() {
                self.frame.extend_from_slice(&[0; FRAME_PREFIX]);
            }
            rmp_serde::encode::write(&mut self.frame, entry)
                .map_err(|e| SnapshotError::Encode(e.to_string()))?;
            self.frame_count += 1;
            if entry.data == ExportedData::Tombstone {
                self.counts.tombstones += 1;
            } else {
                self.counts.entries += 1;
            }
            if self.frame.len() >= FRAME_TARGET || self.frame_count == u32::MAX {
                self.flush_frame()?;
            }
        }
        Ok(())
    }

    /// Writes the last frame and the trailer, flushes, and returns the
    /// output, the bytes written and the counts.
    pub(super) fn finish(mut self) -> Result<(W, u64, Counts), SnapshotError> {
        self.flush_frame()?;
        self.put(&0u32.to_le_bytes())?;
        self.put(&self.counts.entries.to_le_bytes())?;
        self.put(&self.counts.tombstones.to_le_bytes())?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.flush()?;
        Ok((self.out, self.written + 4, self.counts))
    }

    fn flush_frame(&mut self) -> Result<(), SnapshotError> {
        if self.frame_count == 0 {
            return Ok(());
        }
        self.frame[..8].copy_from_slice(&self.frame_taken_at.to_le_bytes());
        self.frame[8..FRAME_PREFIX].copy_from_slice(&self.frame_count.to_le_bytes());
        let too_large = |_| SnapshotError::Encode("a frame over 4 GiB".to_owned());
        let raw_len = u32::try_from(self.frame.len()).map_err(too_large)?;
        self.compressed.resize(
            lz4_flex::block::get_maximum_output_size(self.frame.len()),
            0,
        );
        let compressed = lz4_flex::block::compress_into(&self.frame, &mut self.compressed)
            .map_err(|e| SnapshotError::Encode(format!("compressing a frame: {e}")))?;
        // Stored compressed only when that is smaller; a payload length of
        // 0 says the stored bytes are the payload itself.
        let (stored, payload_len) = if compressed < self.frame.len() {
            (std::mem::take(&mut self.compressed), raw_len)
        } else {
            (std::mem::take(&mut self.frame), 0)
        };
        let stored_len = if payload_len == 0 {
            raw_len
        } else {
            u32::try_from(compressed).map_err(too_large)?
        };
        let bytes = &stored[..stored_len as usize];
        let crc = crc32fast::hash(bytes);
        self.put(&stored_len.to_le_bytes())?;
        self.put(&crc.to_le_bytes())?;
        self.put(&payload_len.to_le_bytes())?;
        self.put(bytes)?;
        if payload_len == 0 {
            self.frame = stored;
        } else {
            self.compressed = stored;
        }
        self.frame.clear();
        self.frame_count = 0;
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.out.write_all(bytes)?;
        self.crc.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// One frame as read: where it started, when its entries were taken, and
/// the entries.
pub(super) struct Frame {
    pub(super) offset: u64,
    pub(super) taken_at: u64,
    pub(super) entries: Vec<ExportedEntry>,
}

/// Reads a snapshot, checking every length against its bound before
/// allocating, every frame against its checksum, and the trailer against
/// the whole file.
pub(super) struct FrameReader<R: Read> {
    input: R,
    crc: crc32fast::Hasher,
    offset: u64,
    max_frame: usize,
    seen: Counts,
}

impl<R: Read> FrameReader<R> {
    /// Reads the header. Frames may be at most `max_entry_len` plus
    /// [`FRAME_SLACK`] bytes.
    pub(super) fn new(input: R, max_entry_len: usize) -> Result<(Self, Header), SnapshotError> {
        let mut reader = Self {
            input,
            crc: crc32fast::Hasher::new(),
            offset: 0,
            max_frame: max_entry_len.saturating_add(FRAME_SLACK),
            seen: Counts::default(),
        };
        let mut magic = [0; 8];
        reader.take(&mut magic)?;
        if &magic != MAGIC {
            return Err(reader.corrupt(0, "not a Hive snapshot (bad magic)"));
        }
        let version = reader.u32()?;
        if version != FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let at = reader.offset;
        let len = reader.u32()?;
        if len > MAX_HEADER_LEN {
            return Err(reader.corrupt(at, &format!("header length {len} over {MAX_HEADER_LEN}")));
        }
        let mut encoded = vec![0; len as usize];
        reader.take(&mut encoded)?;
        let header: Header = rmp_serde::from_slice(&encoded)
            .map_err(|e| reader.corrupt(at, &format!("undecodable header: {e}")))?;
        Ok((reader, header))
    }

    /// Returns the next frame, or `None` after the trailer, once the trailer's
    /// counts and checksum matched.
    pub(super) fn next_frame(&mut self) -> Result<Option<Frame>, SnapshotError> {
        let offset = self.offset;
        let stored_len = self.u32()? as usize;
        if stored_len == 0 {
            self.trailer()?;
            return Ok(None);
        }
        let expected_crc = self.u32()?;
        let payload_len = self.u32()? as usize;
        let len = if payload_len == 0 {
            stored_len
        } else {
            payload_len
        };
        if stored_len > self.max_frame || len > self.max_frame || len < FRAME_PREFIX {
            return Err(self.corrupt(
                offset,
                &format!(
                    "frame length {len} (stored {stored_len}) outside {FRAME_PREFIX}..={}",
                    self.max_frame
                ),
            ));
        }
        let mut stored = vec![0; stored_len];
        self.take(&mut stored)?;
        if crc32fast::hash(&stored) != expected_crc {
            return Err(self.corrupt(offset, "frame checksum mismatch"));
        }
        let payload = if payload_len == 0 {
            stored
        } else {
            let mut payload = vec![0; payload_len];
            match lz4_flex::block::decompress_into(&stored, &mut payload) {
                Ok(written) if written == payload_len => payload,
                Ok(written) => {
                    return Err(self.corrupt(
                        offset,
                        &format!("frame decompressed to {written} bytes, not {payload_len}"),
                    ));
                }
                Err(e) => {
                    return Err(self.corrupt(offset, &format!("frame does not decompress: {e}")));
                }
            }
        };
        let taken_at = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
        let count = u32::from_le_bytes(payload[8..FRAME_PREFIX].try_into().expect("4 bytes"));
        // Every entry takes at least one byte: a count past that is a lie,
        // and would size the vector below.
        if count as usize > len - FRAME_PREFIX {
            return Err(self.corrupt(offset, &format!("{count} entries in {len} bytes")));
        }
        let mut rest = &payload[FRAME_PREFIX..];
        let mut entries = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let entry: ExportedEntry = rmp_serde::from_read(&mut rest)
                .map_err(|e| self.corrupt(offset, &format!("undecodable entry: {e}")))?;
            if entry.data == ExportedData::Tombstone {
                self.seen.tombstones += 1;
            } else {
                self.seen.entries += 1;
            }
            entries.push(entry);
        }
        if !rest.is_empty() {
            return Err(self.corrupt(offset, "bytes after the frame's last entry"));
        }
        Ok(Some(Frame {
            offset,
            taken_at,
            entries,
        }))
    }

    /// Returns how many bytes were read.
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    fn trailer(&mut self) -> Result<(), SnapshotError> {
        let at = self.offset;
        let entries = self.u64()?;
        let tombstones = self.u64()?;
        let computed = self.crc.clone().finalize();
        let mut stored = [0; 4];
        self.take(&mut stored)?;
        if u32::from_le_bytes(stored) != computed {
            return Err(self.corrupt(at, "file checksum mismatch"));
        }
        if (Counts {
            entries,
            tombstones,
        }) != self.seen
        {
            return Err(self.corrupt(
                at,
                &format!(
                    "trailer counts {entries} entries and {tombstones} tombstones, the frames {} and {}",
                    self.seen.entries, self.seen.tombstones
                ),
            ));
        }
        let mut extra = [0; 1];
        match self.input.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err(self.corrupt(self.offset, "bytes after the trailer")),
            Err(e) => Err(e.into()),
        }
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let mut bytes = [0; 4];
        self.take(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let mut bytes = [0; 8];
        self.take(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// Fills `buf` from the input, counting it into the checksum and offset;
    /// the end of the input is a truncated file.
    fn take(&mut self, buf: &mut [u8]) -> Result<(), SnapshotError> {
        match self.input.read_exact(buf) {
            Ok(()) => {
                self.crc.update(buf);
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.corrupt(self.offset, "truncated"))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn corrupt(&self, offset: u64, reason: &str) -> SnapshotError {
        SnapshotError::Corrupt {
            offset,
            reason: reason.to_owned(),
        }
    }
}
