//! The memberlist delegate of a Hive node: it serves our metadata, forwards
//! join/update/leave notifications to a channel, and admits peers through the
//! [`Gate`]. Also names the concrete memberlist type, [`Ml`].
//!
//! memberlist calls these delegates while it holds its member lock (gotcha 4 in
//! the dependency notes), so they only copy data into an unbounded channel or
//! read a mutex held for nanoseconds: they never call memberlist and never wait.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use memberlist::delegate::{CompositeDelegate, EventDelegate, NodeDelegate, VoidDelegate};
use memberlist::proto::{Meta, NodeState};
use memberlist::tokio::{TokioSocketAddrResolver, TokioTcpMemberlist};
use smol_str::SmolStr;
use tokio::sync::mpsc::UnboundedSender;

use crate::gate::Gate;
use crate::meta::{MAX_META_SIZE, MetaError, WireMeta};
use crate::tracker::{Change, Notice};

/// Our delegate, assembled from its parts (alive, conflict, event, merge, node).
pub(crate) type HiveDelegate = CompositeDelegate<
    SmolStr,
    SocketAddr,
    Arc<Gate>,
    VoidDelegate<SmolStr, SocketAddr>,
    Forwarder,
    Arc<Gate>,
    Arc<LocalMeta>,
>;

/// The memberlist node: TCP + UDP on tokio, `SocketAddr` addresses, `SmolStr` ids.
pub(crate) type Ml = TokioTcpMemberlist<SmolStr, TokioSocketAddrResolver, HiveDelegate>;

/// Assembles the delegate.
pub(crate) fn hive_delegate(
    gate: Arc<Gate>,
    notices: UnboundedSender<Notice>,
    local_meta: Arc<LocalMeta>,
) -> HiveDelegate {
    CompositeDelegate::new()
        .with_alive_delegate(gate.clone())
        .with_merge_delegate(gate)
        .with_event_delegate(Forwarder { notices })
        .with_node_delegate(local_meta)
}

/// Forwards memberlist's event notifications, as [`Notice`]s, to the driver.
#[derive(Debug)]
pub(crate) struct Forwarder {
    notices: UnboundedSender<Notice>,
}

impl Forwarder {
    fn forward(&self, change: Change, node: &NodeState<SmolStr, SocketAddr>) {
        // A send error means the driver has stopped: nobody wants the event.
        let _ = self.notices.send(Notice {
            change,
            id: node.id().to_string(),
            addr: *node.address(),
            meta: node.meta().to_vec(),
        });
    }
}

impl EventDelegate for Forwarder {
    type Id = SmolStr;
    type Address = SocketAddr;

    async fn notify_join(&self, node: Arc<NodeState<SmolStr, SocketAddr>>) {
        self.forward(Change::Joined, &node);
    }

    async fn notify_leave(&self, node: Arc<NodeState<SmolStr, SocketAddr>>) {
        self.forward(Change::Departed, &node);
    }

    async fn notify_update(&self, node: Arc<NodeState<SmolStr, SocketAddr>>) {
        self.forward(Change::Updated, &node);
    }
}

/// Our current metadata, already encoded and size-checked.
#[derive(Debug)]
pub(crate) struct LocalMeta {
    meta: Mutex<Meta>,
}

impl LocalMeta {
    /// Encodes `wire`; fails (before memberlist sees it) if it is too large.
    pub(crate) fn new(wire: &WireMeta) -> Result<Self, MetaError> {
        Ok(Self {
            meta: Mutex::new(to_meta(wire)?),
        })
    }

    /// Replaces the metadata; memberlist picks it up on its next `update_node`.
    pub(crate) fn set(&self, wire: &WireMeta) -> Result<(), MetaError> {
        let meta = to_meta(wire)?;
        *self.meta.lock().unwrap_or_else(PoisonError::into_inner) = meta;
        Ok(())
    }
}

fn to_meta(wire: &WireMeta) -> Result<Meta, MetaError> {
    let bytes = wire.encode()?;
    let len = bytes.len();
    Meta::try_from(bytes).map_err(|_| MetaError::TooLarge {
        len,
        max: MAX_META_SIZE,
    })
}

impl NodeDelegate for LocalMeta {
    async fn node_meta(&self, _limit: usize) -> Meta {
        self.meta
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
