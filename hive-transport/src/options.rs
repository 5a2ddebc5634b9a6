//! Transport settings: message size bound, connection and shutdown timeouts and
//! the transfer window. One plain struct, shared by servers and clients.

use std::num::NonZeroUsize;
use std::time::Duration;

/// The default bound on an encoded message: 64 MiB of payload plus 1 MiB for
/// keys, versions and framing (spec: "default 64 MiB + overhead").
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 65 * 1024 * 1024;

/// Settings of a transport server or client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportOptions {
    /// Largest encoded message, in bytes, that this side sends or accepts.
    /// Larger ones fail with [`crate::TransportError::TooLarge`]; on receipt
    /// they are refused from their length prefix, before allocation. Keep it
    /// equal on every node (a sender with a larger bound than its receiver
    /// gets its big requests refused by the receiver).
    pub max_message_size: usize,
    /// How long opening a TCP connection to a peer may take before calls fail
    /// with [`crate::TransportError::Unreachable`] (gRPC only; each call's
    /// deadline still applies on top).
    pub connect_timeout: Duration,
    /// How many batches a [`crate::TransferStream`] may have sent but not had
    /// acknowledged; `send` waits while the window is full (back-pressure).
    pub transfer_window: NonZeroUsize,
    /// How long [`crate::GrpcServer::shutdown`] lets calls in flight finish
    /// before cancelling them (they then fail with `ShuttingDown`).
    pub shutdown_grace: Duration,
}

impl Default for TransportOptions {
    /// Returns the settings for a LAN: 65 MiB messages, 1 s connect timeout, a
    /// window of 4 transfer batches, 5 s shutdown grace.
    fn default() -> Self {
        TransportOptions {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            connect_timeout: Duration::from_secs(1),
            transfer_window: NonZeroUsize::new(4).expect("4 is not zero"),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}
