//! `hive-store`: the storage engine of Hive — a sharded in-memory store of typed
//! entries (values, hashes, lists, sets, sorted sets) with millisecond TTLs down
//! to a single hash field or set member, versions, tombstones and a memory budget.
//!
//! **Invariant:** this crate does no I/O of its own (snapshots stream to and
//! from whatever `Write`/`Read` its owner hands it) and knows nothing of
//! networking or of other nodes. Time comes from an injected [`Clock`]; every change to a key goes
//! through one write path that settles its version, memory, expiry index and
//! tombstone, so those can never disagree with the data.
//!
//! # Layout
//! - [`Store`] (`store.rs`): shards, the read path (shared lock, lazy expiry) and
//!   the write path; `shard.rs` keeps each shard's table, expiry index,
//!   tombstones, hybrid logical clock and byte count consistent.
//! - One module per data type adds its operations to [`Store`]: `keys.rs` (any
//!   key), `value.rs`, `hash.rs`, `list.rs`, `set.rs`, `zset.rs` (with its skip
//!   list).
//! - [`Op`] / [`Reply`] (`op.rs`): operations as data, for routing and
//!   forwarding; [`Store::execute`] runs one.
//! - [`ExportedEntry`] (`export.rs`): an entry with its version and remaining
//!   TTLs, and [`Store::apply`], which stores it only if it is newer.
//! - [`Store::save_snapshot`] / [`Store::load_snapshot`] (`snapshot.rs`, the
//!   format in `snapshot/format.rs`): the whole store to a byte stream and
//!   back, all or nothing, with [`SnapshotInfo`] and [`SnapshotError`].
//! - [`Clock`], [`Version`], [`StoreConfig`], [`StoreError`].
//!
//! # Example
//! ```
//! use bytes::Bytes;
//! use hive_store::{Store, StoreConfig, StoreError};
//!
//! let store = Store::new(StoreConfig::default());
//! store.set(b"greeting", Bytes::from("hello"), Some(60_000))?;
//! assert_eq!(store.get(b"greeting")?, "hello");
//! store.push(b"queue", hive_store::End::Back, vec![Bytes::from("job")])?;
//! assert_eq!(store.get(b"queue"), Err(StoreError::WrongType));
//! # Ok::<(), StoreError>(())
//! ```
#![deny(missing_docs)]

mod budget;
mod clock;
mod config;
mod entry;
mod error;
mod evict;
mod expiring;
mod export;
mod hash;
mod index;
mod keys;
mod list;
mod op;
mod set;
mod shard;
mod snapshot;
mod store;
mod value;
mod version;
mod zset;

pub use clock::{Clock, MockClock, SystemClock};
pub use config::{Limits, MAX_TTL_MS, StoreConfig};
pub use entry::Kind;
pub use error::{Result, StoreError};
pub use evict::{Eviction, EvictionPolicy, MAX_SAMPLES};
pub use export::{Exported, ExportedData, ExportedEntry};
pub use keys::ExpireCondition;
pub use list::End;
pub use op::{Op, Reply};
pub use shard::Applied;
pub use snapshot::{SnapshotError, SnapshotInfo};
pub use store::Store;
pub use value::{SetCondition, SetTtl};
pub use version::Version;
pub use zset::{LexBound, LexLimit, ScoreBound, ScoreCompare, ZAddOptions, ZLimit, ZRangeBy};
