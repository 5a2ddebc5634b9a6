//! Running an operation wherever its key's primary is: here, or forwarded to
//! the primary with retries while it surely did not run ([`crate::retry`]).

use std::time::Duration;

use bytes::Bytes;
use hive_store::{Op, Reply, StoreError};
use hive_transport::{Operation, PeerClient};
use tokio::time::Instant;

use crate::batcher::BatchError;
use crate::error::{ClusterError, Result};
use crate::retry::{self, Next};
use crate::view::View;
use crate::wire::{PeerOp, PeerReply, decode_reply, encode_op, from_remote};

use super::{Route, Shared};

/// Longest pause before retrying an operation that met a view disagreement
/// or an unreachable primary; a change of this node's view or agreement ends
/// it early.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Why one attempt at an operation failed.
enum Failure {
    /// Final: report it.
    Final(ClusterError),
    /// The attempt surely did not run (wrong owner, never sent, or a read):
    /// try again with a fresher view until the deadline, then report
    /// `Unavailable`.
    Retry(String),
    /// A read whose reply did not fit in its batch's response: send it again
    /// at once.
    Resend(String),
}

impl From<ClusterError> for Failure {
    fn from(err: ClusterError) -> Self {
        Failure::Final(err)
    }
}

impl<C: PeerClient> Shared<C> {
    /// Runs a client operation wherever its key's primary is.
    pub(crate) async fn execute(&self, key: &[u8], op: Op) -> Result<Reply> {
        let deadline = Instant::now() + self.request_timeout;
        // Subscribed at the first retry; from then on a change of the view or
        // of the agreement ends the pause between two attempts early.
        let mut changes = None;
        loop {
            if self.is_stopping() {
                return Err(ClusterError::ShuttingDown);
            }
            let view = self.view();
            let attempt = match self.route(&view, key) {
                Route::Nobody => {
                    return Err(ClusterError::Unavailable(
                        "no alive member owns the key".into(),
                    ));
                }
                Route::Peer(primary) => self.forward(&view, primary, key, &op).await,
                Route::Here => self
                    .execute_as_primary(key, op.clone(), deadline)
                    .await
                    .map_err(Failure::from),
                Route::HandingOver => Err(Failure::Retry(
                    "the key is being handed over to its new primary".into(),
                )),
                Route::Paused => Err(Failure::Retry(
                    "this node was paused and is rejoining the cluster".into(),
                )),
            };
            match attempt {
                Ok(reply) => return Ok(reply),
                Err(Failure::Final(err)) => return Err(err),
                Err(Failure::Retry(reason)) if Instant::now() + RETRY_PAUSE < deadline => {
                    tracing::debug!(%reason, "retrying an operation");
                    match &mut changes {
                        // Try again at once: a change from now on is seen below.
                        None => changes = Some(self.changes()),
                        Some(changes) => {
                            let _ = tokio::time::timeout(RETRY_PAUSE, changes.changed()).await;
                        }
                    }
                }
                Err(Failure::Retry(reason)) => return Err(ClusterError::Unavailable(reason)),
                Err(Failure::Resend(_)) if Instant::now() < deadline => {}
                Err(Failure::Resend(reason)) => return Err(ClusterError::Unavailable(reason)),
            }
        }
    }

    /// Sends `op` to `primary`.
    async fn forward(
        &self,
        view: &View,
        primary: &str,
        key: &[u8],
        op: &Op,
    ) -> Result<Reply, Failure> {
        let Some(peer) = view.peer(primary) else {
            return Err(Failure::Retry(format!("primary {primary} left the view")));
        };
        let operation = Operation {
            key: Bytes::copy_from_slice(key),
            op: encode_op(&PeerOp::Client(op.clone())),
        };
        let size = operation.key.len() + operation.op.len();
        if size > self.reply_budget {
            return Err(Failure::Final(ClusterError::Store(
                StoreError::InvalidArgument(format!(
                    "the operation is {size} bytes; a peer message carries at most {}",
                    self.reply_budget
                )),
            )));
        }
        let outcome = self.forwards.execute(peer.rpc_addr, operation).await;
        if matches!(
            outcome,
            Err(BatchError::Unreachable(_) | BatchError::Failed(_))
        ) {
            self.peer_failed();
        }
        match outcome {
            Ok(Ok(reply)) => match decode_reply(&reply) {
                Ok(PeerReply::Client(reply)) => Ok(reply),
                Ok(_) => Err(Failure::Final(ClusterError::Codec(
                    "another reply to an operation".into(),
                ))),
                Err(err) => Err(Failure::Final(err)),
            },
            // A per-operation error is the primary's answer, like a refusal
            // of the whole request.
            Ok(Err(err)) => Err(failure(BatchError::Remote(err), op.is_write())),
            Err(err) => Err(failure(err, op.is_write())),
        }
    }
}

/// Returns the failure of a forwarded operation (a write if `write`) that got
/// `err` ([`retry::after_forward`]).
fn failure(err: BatchError, write: bool) -> Failure {
    let next = retry::after_forward(&err, write);
    let reason = match err {
        BatchError::Remote(remote) if next == Next::Report => {
            return Failure::Final(from_remote(remote));
        }
        BatchError::Remote(remote) => remote.message,
        BatchError::Unreachable(reason) | BatchError::Failed(reason) => reason,
    };
    match next {
        Next::Retry => Failure::Retry(reason),
        Next::Resend => Failure::Resend(reason),
        Next::MaybeRan | Next::Report => Failure::Final(ClusterError::Indeterminate(format!(
            "the write may have run on its primary: {reason}"
        ))),
    }
}
