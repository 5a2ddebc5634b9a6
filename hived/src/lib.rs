//! `hived`: one Hive node as a process, serving clients over the Redis
//! protocol (spec: hived.md). Every node accepts every key; the cluster layer
//! forwards each operation to the key's primary, so clients need no
//! cluster-aware routing.
//!
//! **Invariant:** `hived` uses only the public `hive` API and its byte-level
//! [`hive::raw`] access; cache semantics stay in the lower crates.
//!
//! # Layout
//! - `options.rs`: the command line and `HIVE_*` environment variables.
//! - `resp/`: the protocol — bounded request parsing, reply encoding for RESP2
//!   and RESP3.
//! - `server.rs`: connections, pipelining, bounded output, graceful stop.
//! - `commands/`: the command table (what `COMMAND` reports and dispatch
//!   runs), one module per command family.
//! - `glob.rs`: Redis's glob patterns for `KEYS` and `SCAN ... MATCH`.
//! - `metrics.rs`: the optional Prometheus endpoint (`--metrics`).

mod commands;
mod glob;
pub mod metrics;
pub mod options;
pub mod resp;
mod server;

pub use commands::ShutdownMode;
pub use server::{DEFAULT_MAX_OUTPUT_BUFFER, MIN_MAX_OUTPUT_BUFFER, Server, ServerOptions};
