//! Weighted consistent hashing for Hive: maps keys to the nodes that own them.
//!
//! A [`Ring`] places every member node at a number of *virtual node* (vnode)
//! positions on a 64-bit ring. A key is owned by the distinct nodes met when
//! walking clockwise from the key's [`position`]: the first is its primary,
//! the next ones its replicas. More vnodes means a larger share of the keys;
//! [`vnodes_for_mem_limit`] turns a node's memory limit into a vnode count.
//!
//! # Invariant
//!
//! The ring is pure and deterministic: placement depends only on the member
//! set and vnode counts; no I/O, no async, no global state. Two rings with the
//! same members agree on every key, whatever order the members were added in.
//! Adding a node only moves keys to that node, and removing a node only moves
//! the keys it owned.
//!
//! # Example
//!
//! ```
//! use hive_ring::Ring;
//!
//! let mut ring = Ring::<String>::new();
//! ring.add("node-a".to_string(), 100);
//! ring.add("node-b".to_string(), 200); // twice the weight
//!
//! let owners = ring.owners(b"user:42", 2); // distinct nodes, primary first
//! assert_eq!(owners.len(), 2);
//! assert_eq!(ring.owner(b"user:42"), Some(owners[0]));
//!
//! assert!(ring.remove(&"node-a".to_string()));
//! assert_eq!(ring.owner(b"user:42"), Some(&"node-b".to_string()));
//! ```
#![deny(missing_docs)]

mod hash;
mod ring;
mod weight;

pub use hash::position;
pub use ring::{MAX_VNODES, Ring};
pub use weight::vnodes_for_mem_limit;

/// Compiles and runs the README example as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
