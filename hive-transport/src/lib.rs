//! `hive-transport`: moves Hive's peer-protocol messages between nodes — over
//! gRPC in production, over an in-memory, partitionable network in tests.
//!
//! **Invariant:** the transport knows messages, not cache semantics. Operations,
//! replies and entry payloads are opaque [`bytes::Bytes`] that the cluster layer
//! encodes; what a request *does* is decided by a [`PeerHandler`] the cluster
//! layer supplies. Every call has a deadline and every message a size bound.
//! This is the only crate that names `tonic` or the generated `proto::pb` types:
//! its API speaks plain Rust structs, and generated types stop at its boundary.
//!
//! # Layout
//! - Messages (`message.rs`): [`ExecuteRequest`], [`Operation`],
//!   [`ExecuteResponse`], [`ReplicateRequest`], [`Entry`], [`ReplicateResponse`],
//!   [`ApplyOutcome`], [`TransferBatch`], [`TransferAck`], [`PeerStatus`],
//!   [`RemoteError`] and its [`ErrorKind`].
//! - `convert.rs`: the one mapping between those and `proto::pb`; malformed
//!   messages (unknown enum values, missing results) become
//!   [`TransportError::Protocol`], never a panic.
//! - `rpc_status.rs`: the one mapping between errors and `tonic::Status`;
//!   [`ErrorKind`] travels in a header, so `NotFound` stays `NotFound`.
//! - [`TransportError`] (`error.rs`) and [`TransportOptions`] (`options.rs`).
//! - The seams: [`PeerHandler`] (`handler.rs`, the server side, implemented by
//!   the cluster layer) and [`PeerClient`] (`client.rs`, the caller side), with
//!   [`TransferStream`] (`transfer.rs`), the windowed sender of a rebalancing
//!   transfer.
//! - `service.rs`: the server side independent of how bytes travel — shared by
//!   both implementations.
//! - gRPC (`grpc.rs`, `grpc/`): [`GrpcServer`] and [`GrpcClient`], one lazily
//!   connected HTTP/2 channel per peer.
//! - In memory (`memory.rs`, `memory/`): [`MemoryNetwork`], [`MemoryServer`] and
//!   [`MemoryClient`]; messages still go through protobuf encoding, and links can
//!   be cut.
//!
//! Both implementations pass one conformance suite (`tests/conformance.rs`).
#![deny(missing_docs)]

mod client;
mod convert;
mod error;
mod grpc;
mod handler;
mod memory;
mod message;
mod options;
mod rpc_status;
mod service;
mod transfer;

pub use client::{PeerAddr, PeerClient};
pub use error::{Result, TransportError};
pub use grpc::{GrpcClient, GrpcServer};
pub use handler::PeerHandler;
pub use memory::{MemoryClient, MemoryNetwork, MemoryServer};
pub use message::{
    ApplyOutcome, Entry, EntryResult, ErrorKind, ExecuteRequest, ExecuteResponse, Operation,
    OperationResult, PeerStatus, RemoteError, ReplicateRequest, ReplicateResponse, Stamp,
    TransferAck, TransferBatch,
};
pub use options::{DEFAULT_MAX_MESSAGE_SIZE, TransportOptions};
pub use proto::PROTOCOL_VERSION;
pub use transfer::TransferStream;
