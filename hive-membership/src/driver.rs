//! The owner task of one memberlist node.
//!
//! It holds a handle to the node, turns the delegate's notices into typed events
//! (through the [`Tracker`]), and shuts the node down once cancelled. Dropping a
//! memberlist handle does not stop the node (its background tasks hold their own
//! handles: gotcha 1 in the dependency notes), so the shutdown must be an
//! explicit async call; this task is where it happens, which lets a synchronous
//! `Drop` stop the node by cancelling a token.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use crate::delegate::Ml;
use crate::event::MembershipEvent;
use crate::tracker::{Notice, Tracker};

/// Runs until `cancel` fires, then shuts the memberlist node down (without a
/// leave: call `leave` first for a graceful exit).
pub(crate) async fn run(
    ml: Ml,
    mut notices: UnboundedReceiver<Notice>,
    tracker: Arc<Mutex<Tracker>>,
    events: UnboundedSender<MembershipEvent>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            notice = notices.recv() => {
                // `None` cannot happen while `ml` (which holds the sender) lives.
                let Some(notice) = notice else { break };
                let mut tracker = tracker.lock().unwrap_or_else(PoisonError::into_inner);
                // Sent under the lock (the send never waits), so events keep the
                // order of the tracker's changes, whichever task made them.
                if let Some(event) = tracker.apply(notice) {
                    // A send error means `Events` was dropped: nobody listens.
                    let _ = events.send(event);
                }
            }
        }
    }
    // memberlist logs a few ERROR lines while shutting down ("transport is being
    // shutdown", "failed to send nack"): they are expected (gotcha 5).
    if let Err(error) = ml.shutdown().await {
        tracing::warn!(%error, "memberlist shutdown reported an error");
    }
}
