//! The production transport: the peer protocol over gRPC (tonic, HTTP/2).
//!
//! # Layout
//! - `server.rs`: [`GrpcServer`], which binds first (so port 0 works and the
//!   address is known), then serves until shut down.
//! - `client.rs`: [`GrpcClient`], one lazily connected channel per peer, every
//!   call under a deadline.

mod client;
mod server;

pub use client::GrpcClient;
pub use server::GrpcServer;
