//! Reconnecting to failed members.
//!
//! memberlist neither probes nor pushes/pulls with a member it declared dead
//! (it only sends it gossip, and only while it has news), and the member does
//! likewise: two sides of a partition could stay apart for good. So every
//! `reconnect_interval` this task pings each member declared failed at its last
//! address — by id, so a process that has taken over the address answers only
//! to its own id and is never joined by mistake — and joins it if it answers.
//! The join's push/pull merges both sides' member tables; each side then
//! reports the other `Joined`. A member departed (failed or left) for
//! `reconnect_timeout` is given up and reported [`MembershipEvent::Forgotten`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::join_all;
use memberlist::proto::{MaybeResolvedAddress, Node};
use smol_str::SmolStr;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::delegate::Ml;
use crate::event::MembershipEvent;
use crate::tracker::Tracker;

/// Runs until `cancel` fires.
pub(crate) async fn run(
    ml: Ml,
    tracker: Arc<Mutex<Tracker>>,
    events: UnboundedSender<MembershipEvent>,
    cancel: CancellationToken,
    interval: Duration,
    timeout: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let retry = {
            let mut tracker = tracker.lock().unwrap_or_else(PoisonError::into_inner);
            let reconnects = tracker.reconnects(Instant::now(), timeout);
            // Sent under the lock, like the driver's events, so they keep the
            // order in which the tracker changed.
            for id in reconnects.forgotten {
                tracing::info!(peer = %id, "failed member not back within the reconnect timeout; forgotten");
                let _ = events.send(MembershipEvent::Forgotten(id));
            }
            reconnects.retry
        };
        let attempts = retry.into_iter().map(|(id, addr)| reconnect(&ml, id, addr));
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = join_all(attempts) => {}
        }
    }
}

/// Pings member `id` at `addr` and joins it if it answers.
async fn reconnect(ml: &Ml, id: String, addr: SocketAddr) {
    let node = Node::new(SmolStr::new(&id), addr);
    if let Err(error) = ml.ping(node).await {
        tracing::trace!(peer = %id, %addr, %error, "failed member still unreachable");
        return;
    }
    match ml.join(MaybeResolvedAddress::resolved(addr)).await {
        Ok(_) => tracing::info!(peer = %id, %addr, "reconnected to a failed member"),
        Err(error) => {
            tracing::debug!(peer = %id, %addr, %error, "could not rejoin a failed member")
        }
    }
}
