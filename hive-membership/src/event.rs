//! Typed membership events and the receiver they arrive on.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::member::MemberInfo;

/// A change in the cluster, seen from this node. Events are about other members:
/// this node's own join and leave are never reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    /// A member appeared (for the first time, or again after it left or failed,
    /// for example restarted with the same id).
    Joined(MemberInfo),
    /// A live member changed its advertised metadata or gossip address.
    Updated(MemberInfo),
    /// A member came back as a new incarnation (another
    /// [`NodeMeta::incarnation`](crate::NodeMeta::incarnation)) before this
    /// node saw it depart: it crashed and restarted with the same id, and holds
    /// nothing its earlier incarnation held. Carries the new incarnation.
    Restarted(MemberInfo),
    /// A member left gracefully: its last metadata announced the leave. Carries its id.
    Left(String),
    /// A member stopped answering without announcing a leave (crash, kill,
    /// partition). Carries its id.
    Failed(String),
    /// A member that failed (or left) `reconnect_timeout` ago and did not come
    /// back: it is no longer tried or tracked. Carries its id.
    Forgotten(String),
}

/// The events of one [`Membership`](crate::Membership), in the order this node
/// learned them. Also a [`Stream`].
///
/// The channel is **unbounded**: memberlist calls its delegates while holding its
/// member lock, so they must never wait for a reader. Events are as rare as
/// membership changes, so the backlog of a slow reader stays small; a reader that
/// never reads leaks one small event per change. Dropping `Events` is fine: later
/// events are discarded. The stream ends (`None`) once the membership has stopped.
#[derive(Debug)]
pub struct Events {
    rx: UnboundedReceiver<MembershipEvent>,
}

impl Events {
    pub(crate) fn new(rx: UnboundedReceiver<MembershipEvent>) -> Self {
        Self { rx }
    }

    /// Returns the next event, waiting for it; `None` once the membership stopped
    /// and every event was read.
    pub async fn recv(&mut self) -> Option<MembershipEvent> {
        self.rx.recv().await
    }

    /// Returns the next event if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<MembershipEvent> {
        self.rx.try_recv().ok()
    }
}

impl Stream for Events {
    type Item = MembershipEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
