//! `hive-cluster`: placement over the membership view, forwarding to primaries,
//! replication and rebalancing — composed from `hive-ring`, `hive-store`,
//! `hive-transport` and `hive-membership`.
//!
//! **Invariant:** decisions are pure functions of views and keys (`view.rs`,
//! `plan.rs`), unit-tested without I/O; one driver task per node executes them.
//!
//! # Layout
//! - [`View`] (`view.rs`): alive members, their ring, the owners of a key.
//! - [`plan`] / [`plan_key`] (`plan.rs`): what to send where, and what to drop,
//!   when the view changes.
#![deny(missing_docs)]

mod plan;
mod view;

pub use plan::{KeyPlan, Plan, plan, plan_key};
pub use view::{NodeId, Peer, View};
