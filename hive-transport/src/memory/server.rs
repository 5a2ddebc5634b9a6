//! A server on the in-memory network: a registration that, like a gRPC
//! server, stops taking calls on shutdown, lets calls in flight finish for a
//! grace period and then cancels them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::MemoryNetwork;
use crate::client::PeerAddr;

/// A server on a [`MemoryNetwork`], from [`MemoryNetwork::serve`].
///
/// Stop it with [`shutdown`](Self::shutdown). Dropping it instead removes it
/// from the network and cancels its calls in flight at once (a crash).
#[derive(Debug)]
pub struct MemoryServer {
    /// The network it is registered in.
    network: MemoryNetwork,
    /// The address it serves.
    addr: PeerAddr,
    /// Its registration id.
    id: u64,
    /// Cancelled to end calls still in flight (they fail with `ShuttingDown`).
    abort: CancellationToken,
    /// Counts its calls in flight.
    calls: TaskTracker,
    /// How long shutdown lets calls in flight finish.
    grace: Duration,
}

impl MemoryServer {
    /// Returns a handle on registration `id` of `addr` in `network`.
    pub(super) fn new(
        network: MemoryNetwork,
        addr: PeerAddr,
        id: u64,
        abort: CancellationToken,
        calls: TaskTracker,
        grace: Duration,
    ) -> Self {
        MemoryServer {
            network,
            addr,
            id,
            abort,
            calls,
            grace,
        }
    }

    /// Returns the address the server serves.
    pub fn local_addr(&self) -> PeerAddr {
        self.addr
    }

    /// Stops the server: new calls to its address fail with `Unreachable` at
    /// once; calls in flight get the shutdown grace to finish, then are
    /// cancelled (their callers get `ShuttingDown`). Returns when they are
    /// over, or after twice the grace if a caller stopped polling its call.
    pub async fn shutdown(self) {
        self.network.unregister(self.addr, self.id);
        self.calls.close();
        if tokio::time::timeout(self.grace, self.calls.wait())
            .await
            .is_err()
        {
            self.abort.cancel();
            // Callers that still poll their calls see the cancellation; one
            // that stopped polling is not worth waiting for forever.
            let _ = tokio::time::timeout(self.grace, self.calls.wait()).await;
        }
    }
}

impl Drop for MemoryServer {
    fn drop(&mut self) {
        self.network.unregister(self.addr, self.id);
        self.abort.cancel();
    }
}
