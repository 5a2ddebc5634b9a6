//! `hive-membership`: who is in a Hive cluster. Gossip membership (SWIM, through the
//! `memberlist` crate) with Hive's metadata, typed events, graceful leave told
//! apart from failure, and refusal of incompatible nodes.
//!
//! **Invariant:** this is the only crate that names `memberlist` types; its public
//! API uses its own ([`MembershipConfig`], [`NodeMeta`], [`MemberInfo`],
//! [`MembershipEvent`], [`MembershipError`]). It depends on no other workspace
//! crate. Every task it starts has an owner that stops it: no node outlives its
//! [`Membership`], whether shut down or dropped.
//!
//! # Guarantees
//! - [`Membership::start`] with seeds returns only once a seed was joined, or fails
//!   within `join_timeout` with [`MembershipError::NoSeedReachable`].
//! - Nodes whose replication factor or protocol version differ never share a
//!   cluster: both sides refuse each other, and the joiner's `start` fails with
//!   [`MembershipError::Incompatible`].
//! - A member that ran [`Membership::leave`] is reported [`MembershipEvent::Left`];
//!   one that stopped without it is reported [`MembershipEvent::Failed`].
//! - A node restarting with the same id on a new address is accepted back as soon
//!   as the others have declared its previous incarnation dead.
//! - A node restarting with the same id on its old address before the others
//!   noticed it had gone is reported [`MembershipEvent::Restarted`]: every start
//!   advertises a new [`NodeMeta::incarnation`].
//! - A failed member that answers again at its last address (a healed partition,
//!   a restart on the same address without seeds) is reconnected within about
//!   one `reconnect_interval`, however long it was away, until
//!   `reconnect_timeout`; then it is reported [`MembershipEvent::Forgotten`].
//!
//! # memberlist 0.8.5 gotchas, and where they are handled
//! 1. Dropping a memberlist handle does not stop the node: `driver.rs` owns the
//!    node and shuts it down when cancelled; `Drop` only cancels.
//! 2. Leave and failure look alike: `tracker.rs` and [`Membership::leave`] (a
//!    `leaving` flag in the metadata, gossiped before the leave).
//! 3. A restart on a new address is refused until the dead entry may be
//!    reclaimed: `preset.rs` sets the reclaim time to 1 ms. A node restarted
//!    *before* the others declared it dead is only accepted after that (about one
//!    failure-detection time plus, at worst, one push/pull interval).
//! 4. Delegates run under memberlist's lock: `delegate.rs` and `gate.rs` only
//!    compute and forward to a channel.
//! 5. memberlist logs ERROR lines during a normal shutdown ("transport is being
//!    shutdown", "failed to send nack"). They are noise; filter them with
//!    `memberlist_core=off,memberlist_net=off` (or `warn` and above) if needed.
//!
//! # Layout
//! - [`Membership`] (`membership.rs`): start, [`Membership::members`], leave,
//!   shutdown, drop; `join.rs` joins the seeds within a deadline.
//! - [`MembershipConfig`] (`config.rs`) and [`Preset`] (`preset.rs`, mapping onto
//!   memberlist's options).
//! - [`NodeMeta`] (`meta.rs`): what a member advertises, and its ≤ 512-byte wire
//!   encoding; `compat.rs`: what members must agree on.
//! - [`MemberInfo`], [`MemberState`] (`member.rs`); [`MembershipEvent`],
//!   [`Events`] (`event.rs`).
//! - Internals: `delegate.rs` (memberlist delegate), `gate.rs` (admission),
//!   `tracker.rs` (pure leave/failure bookkeeping), `driver.rs` (owner task),
//!   `reconnect.rs` (tries failed members again).
//! - [`MembershipError`] (`error.rs`).
//!
//! # Example
//! ```no_run
//! use hive_membership::{Membership, MembershipConfig, NodeMeta, Preset};
//!
//! # async fn demo(seed: std::net::SocketAddr) -> Result<(), hive_membership::MembershipError> {
//! let meta = NodeMeta {
//!     rpc_addr: "127.0.0.1:7001".parse().unwrap(),
//!     vnodes: 100,
//!     replication_factor: 2,
//!     protocol_version: 1,
//!     incarnation: 1,
//!     size_limits: Default::default(),
//! };
//! let mut config = MembershipConfig::new("node-b", "127.0.0.1:0".parse().unwrap(), meta);
//! config.seeds = vec![seed];
//! config.preset = Preset::Local;
//! let (membership, mut events) = Membership::start(config).await?;
//! println!("gossiping on {}", membership.local_gossip_addr());
//! if let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! membership.leave(std::time::Duration::from_secs(2)).await?;
//! membership.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod compat;
mod config;
mod delegate;
mod driver;
mod error;
mod event;
mod gate;
mod join;
mod member;
mod membership;
mod meta;
mod preset;
mod reconnect;
mod tracker;

pub use config::{
    DEFAULT_JOIN_TIMEOUT, DEFAULT_RECONNECT_TIMEOUT, MAX_NODE_ID_LEN, MembershipConfig,
};
pub use error::{MembershipError, Result};
pub use event::{Events, MembershipEvent};
pub use member::{MemberInfo, MemberState};
pub use membership::Membership;
pub use meta::{MAX_META_SIZE, MetaError, NodeMeta, SizeLimits};
pub use preset::Preset;
