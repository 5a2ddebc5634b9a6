//! `hive-cluster`: placement over the membership view, forwarding to primaries,
//! replication and rebalancing — composed from `hive-ring`, `hive-store`,
//! `hive-transport` and `hive-membership`.
//!
//! **Invariant:** decisions are pure functions of views and keys (`view.rs`,
//! `plan.rs`), unit-tested without I/O; one driver task per node executes them,
//! and a write is acknowledged only after every live owner applied it.
//!
//! # Layout
//! - [`Cluster`] (`cluster.rs`): start, graceful shutdown, crash on drop.
//! - `driver.rs`: the driver, a state machine generic over the peer client
//!   (membership events → views → debounced rebalancing, agreement,
//!   housekeeping, pause detection); `driver_tests.rs` runs fault scenarios
//!   through it on the in-memory network under paused time.
//! - `shared.rs`: what the node's tasks share — store, views, agreement,
//!   routing — with one file per path below it: `shared/execute.rs` (run an
//!   operation wherever its primary is, forwarding with retries),
//!   `shared/primary.rs` (catch-up, write, replicate, adopt),
//!   `shared/scan.rs` (keys a member answers for) and `shared/handler.rs`
//!   (the peer handler).
//! - `in_flight.rs`: a primary's writes in flight per key, so that adopting a
//!   replica's newer state runs each of them again.
//! - `tombstones.rs`: when tombstones may be dropped, aged on a monotonic
//!   clock.
//! - `retry.rs`: the pure rule for a failed forward: run again, or report
//!   `Unavailable` (surely did not run) or `Indeterminate` (may have run).
//! - `batcher.rs`: coalesces operations forwarded to one peer into batched RPCs.
//! - `rebalance.rs`: executes a plan over transfer streams.
//! - [`View`] (`view.rs`) and [`plan`] (`plan.rs`): the pure decisions.
//! - `wire.rs`: operations, replies, entries and errors on the wire.
#![deny(missing_docs)]

mod batcher;
mod cluster;
mod config;
mod driver;
#[cfg(test)]
mod driver_tests;
mod error;
mod in_flight;
#[cfg(test)]
mod partition_tests;
mod plan;
mod rebalance;
mod retry;
mod shared;
mod tombstones;
mod view;
mod wire;

pub use cluster::{Cluster, ClusterHandle, MemberReport};
pub use config::ClusterConfig;
pub use error::{ClusterError, Result};
pub use hive_membership::{DEFAULT_RECONNECT_TIMEOUT, MemberState, MembershipError, Preset};
pub use plan::{ArcPlans, KeyPlan, Plan, plan, plan_at, plan_key};
pub use view::{NodeId, Peer, View};
