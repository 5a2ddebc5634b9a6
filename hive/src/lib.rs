//! Hive: an embeddable, leaderless, distributed in-memory cache for Rust services.
//!
//! Start a [`Node`], take its [`Cache`], and keep typed state in it: values,
//! hashes, lists, sets and sorted sets, with TTLs down to a single hash field or
//! set member.
//!
//! **Invariant:** this crate is a thin facade. Storage semantics live in
//! `hive-store` and placement in `hive-ring`; here are only the public types,
//! value encoding (MessagePack) and key namespacing, and the node that owns the
//! background tasks.
//!
//! # Layout
//! - [`Node`] (`node.rs`) starts, reports [`ClusterStatus`], and stops; the
//!   janitor (`janitor.rs`) and the snapshot timer are its background tasks.
//! - `persist.rs`: the data directory — its lock, and the snapshot file
//!   written atomically ([`SavedSnapshot`]).
//! - [`Config`] and [`Mode`] (`config.rs`).
//! - [`Cache`] (`cache.rs`): the handle the stores work through.
//! - The typed stores (`stores.rs` and `stores/`): [`ValueStore`],
//!   [`HashStore`], [`ListStore`], [`SetStore`], [`ZSetStore`].
//! - [`Error`] and [`Result`] (`error.rs`); `codec.rs` turns values into bytes
//!   and durations into TTLs.
//! - [`raw`]: un-namespaced, byte-level operations ([`Cache::execute_raw`]) for
//!   servers such as `hived` that speak another protocol.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! struct Session { user: String, visits: u32 }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> hive::Result<()> {
//! let node = hive::Node::start(hive::Config::default()).await?;
//! let sessions = hive::ValueStore::<Session>::new(&node.cache(), "sessions");
//! let session = Session { user: "ada".into(), visits: 1 };
//! sessions.set_with_ttl("s1", &session, Duration::from_secs(60)).await?;
//! assert_eq!(sessions.get("s1").await?, session);
//!
//! let online = hive::SetStore::new(&node.cache(), "online");
//! online.sadd("now", "ada").await?;
//! online.sexpire_member("now", "ada", Duration::from_secs(30)).await?;
//! assert!(online.sismember("now", "ada").await?);
//! node.shutdown().await
//! # }
//! ```
#![deny(missing_docs)]

/// The README's example, compiled and run as a doctest so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExample;

mod cache;
mod codec;
mod config;
mod error;
mod evict;
mod janitor;
mod node;
mod persist;
mod status;
mod stores;

/// Byte-level access for servers that speak another protocol (`hived` speaks
/// Redis's): keys are used as given, without the typed stores' namespaces, and
/// values are raw bytes. Run with [`Cache::execute_raw`].
pub mod raw {
    pub use hive_store::{
        End, ExpireCondition, ExportedData, ExportedEntry, Kind, LexBound, LexLimit, Op, Reply,
        ScoreBound, ScoreCompare, SetCondition, SetTtl, ZAddOptions, ZLimit, ZRangeBy,
    };
}

pub use cache::Cache;
pub use config::{Config, GossipPreset, Mode};
pub use error::{Error, Result};
pub use evict::Eviction;
pub use hive_store::{EvictionPolicy, MAX_SAMPLES as MAX_EVICTION_SAMPLES};
pub use node::Node;
pub use persist::{Pace, PersistenceStatus, SavedSnapshot};
pub use status::{ClusterStatus, Member, MemberState};
pub use stores::{HashStore, ListStore, SetStore, ValueStore, ZSetEntry, ZSetStore};
