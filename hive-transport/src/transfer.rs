//! The sending end of a rebalancing transfer: batches go out in order, acks
//! come back in order, and at most a window of batches is ever unacknowledged
//! (back-pressure). The same type serves both implementations: each supplies a
//! channel for batches and a stream of acks.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use prost::Message as _;
use proto::pb;
use tokio::sync::mpsc;
use tonic::Status;

use crate::client::PeerAddr;
use crate::convert;
use crate::error::{Result, TransportError};
use crate::message::{TransferAck, TransferBatch};
use crate::options::TransportOptions;
use crate::rpc_status;

/// The sending end of a transfer stream, from [`crate::PeerClient::transfer`].
///
/// Send batches with [`send`](Self::send), which waits while
/// [`window`](Self::window) batches are unacknowledged; take acks with
/// [`next_ack`](Self::next_ack) as they come; end with
/// [`finish`](Self::finish), which waits for the rest. Acks arrive in batch
/// order and the transport checks each names the oldest unacknowledged batch.
///
/// Every wait (for room in the window, for an ack, for the end) is bounded by
/// the deadline given when the stream was opened. Any failure ends the stream:
/// later calls return [`TransportError::Closed`]; batches not acknowledged may
/// or may not have been applied, and the caller sends them again on a new
/// stream. Dropping the stream cancels it.
pub struct TransferStream {
    /// The receiving peer.
    peer: PeerAddr,
    /// Bound on each wait.
    deadline: Duration,
    /// Most batches that may be unacknowledged at once.
    window: usize,
    /// Bound on an encoded batch.
    max_message_size: usize,
    /// Where batches go; `None` once the sending side is closed.
    batches: Option<mpsc::Sender<pb::TransferBatch>>,
    /// Where acks come from, as the receiver sent them.
    acks: BoxStream<'static, Result<pb::TransferAck, Status>>,
    /// Sequences of the batches sent and not yet acknowledged, oldest first.
    unacked: VecDeque<u64>,
    /// Acks received (while waiting for room) but not yet taken by the caller.
    received: VecDeque<TransferAck>,
    /// Set once a call failed; the stream is then unusable.
    failed: bool,
}

impl TransferStream {
    /// Returns a stream to `peer` that sends batches on `batches` and reads acks
    /// from `acks`. `batches` should hold at least a window of batches.
    pub(crate) fn new(
        peer: PeerAddr,
        deadline: Duration,
        options: &TransportOptions,
        batches: mpsc::Sender<pb::TransferBatch>,
        acks: BoxStream<'static, Result<pb::TransferAck, Status>>,
    ) -> Self {
        TransferStream {
            peer,
            deadline,
            window: options.transfer_window.get(),
            max_message_size: options.max_message_size,
            batches: Some(batches),
            acks,
            unacked: VecDeque::new(),
            received: VecDeque::new(),
            failed: false,
        }
    }

    /// Returns the peer receiving the batches.
    pub fn peer(&self) -> PeerAddr {
        self.peer
    }

    /// Returns the most batches that may be unacknowledged at once.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Returns how many batches were sent and are not acknowledged yet.
    pub fn unacked(&self) -> usize {
        self.unacked.len()
    }

    /// Sends `batch`, first waiting for acks while the window is full (acks
    /// received meanwhile are kept for [`next_ack`](Self::next_ack)).
    ///
    /// A batch over the size bound fails with [`TransportError::TooLarge`]
    /// and is not sent; the stream stays usable. Not cancel-safe: dropping the
    /// future may lose the batch, so drop the whole stream instead.
    pub async fn send(&mut self, batch: TransferBatch) -> Result<()> {
        self.check_usable()?;
        let sequence = batch.sequence;
        let batch = convert::transfer_batch_to_pb(batch);
        let size = batch.encoded_len();
        if size > self.max_message_size {
            return Err(TransportError::TooLarge {
                size,
                limit: self.max_message_size,
            });
        }
        while self.unacked.len() >= self.window {
            let ack = self.receive().await?;
            self.received.push_back(ack);
        }
        let Some(batches) = &self.batches else {
            return Err(TransportError::Closed);
        };
        match tokio::time::timeout(self.deadline, batches.send(batch)).await {
            Ok(Ok(())) => {
                self.unacked.push_back(sequence);
                Ok(())
            }
            Ok(Err(_)) => Err(self.failure().await),
            Err(_) => {
                self.failed = true;
                Err(self.timeout())
            }
        }
    }

    /// Returns the oldest ack not yet taken, waiting for it if needed, or
    /// `None` when every batch sent so far has been acknowledged and taken.
    pub async fn next_ack(&mut self) -> Result<Option<TransferAck>> {
        if let Some(ack) = self.received.pop_front() {
            return Ok(Some(ack));
        }
        if self.unacked.is_empty() {
            return Ok(None);
        }
        self.check_usable()?;
        self.receive().await.map(Some)
    }

    /// Closes the sending side, waits for every remaining ack and for the
    /// receiver to end the stream, and returns the acks not yet taken, in
    /// order.
    pub async fn finish(mut self) -> Result<Vec<TransferAck>> {
        self.check_usable()?;
        self.batches = None;
        while !self.unacked.is_empty() {
            let ack = self.receive().await?;
            self.received.push_back(ack);
        }
        match tokio::time::timeout(self.deadline, self.acks.next()).await {
            Ok(None) => Ok(self.received.into()),
            Ok(Some(Ok(ack))) => Err(TransportError::Protocol(format!(
                "ack for batch {} after every batch was acknowledged",
                ack.sequence
            ))),
            Ok(Some(Err(status))) => Err(self.status_error(status)),
            Err(_) => Err(self.timeout()),
        }
    }

    /// Fails if an earlier call failed.
    fn check_usable(&self) -> Result<()> {
        if self.failed {
            Err(TransportError::Closed)
        } else {
            Ok(())
        }
    }

    /// Returns the next ack from the receiver, checked against the oldest
    /// unacknowledged batch; any failure marks the stream failed.
    async fn receive(&mut self) -> Result<TransferAck> {
        let result = match tokio::time::timeout(self.deadline, self.acks.next()).await {
            Err(_) => Err(self.timeout()),
            Ok(None) => Err(TransportError::Closed),
            Ok(Some(Err(status))) => Err(self.status_error(status)),
            Ok(Some(Ok(ack))) => {
                convert::transfer_ack_from_pb(ack).and_then(|ack| match self.unacked.pop_front() {
                    Some(sequence) if sequence == ack.sequence => Ok(ack),
                    Some(sequence) => Err(TransportError::Protocol(format!(
                        "ack for batch {} while the oldest unacknowledged batch is {sequence}",
                        ack.sequence
                    ))),
                    None => Err(TransportError::Protocol(format!(
                        "ack for batch {} that was never sent",
                        ack.sequence
                    ))),
                })
            }
        };
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Returns why the receiver stopped taking batches, reading the acks it
    /// sent before it did.
    async fn failure(&mut self) -> TransportError {
        loop {
            match self.receive().await {
                Ok(ack) => self.received.push_back(ack),
                Err(error) => return error,
            }
        }
    }

    /// Returns the error for a wait that outlived the deadline.
    fn timeout(&self) -> TransportError {
        TransportError::Timeout {
            peer: self.peer,
            after: self.deadline,
        }
    }

    /// Returns the error the receiver's final `status` stands for.
    fn status_error(&self, status: Status) -> TransportError {
        rpc_status::to_transport_error(self.peer, self.deadline, status)
    }
}

impl fmt::Debug for TransferStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransferStream")
            .field("peer", &self.peer)
            .field("deadline", &self.deadline)
            .field("window", &self.window)
            .field("unacked", &self.unacked)
            .field("received", &self.received.len())
            .field("closed", &self.batches.is_none())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}
