//! The client of the in-memory network: routes each call to the server at the
//! peer's address, through protobuf encoding and both sides' size bounds, under
//! the call's deadline, and fails it when the link is cut.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use proto::pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tonic::Status;

use super::{MemoryNetwork, Route, link_cut};
use crate::client::{PeerAddr, PeerClient};
use crate::convert;
use crate::error::{Result, TransportError};
use crate::message::{
    ExecuteRequest, ExecuteResponse, PeerStatus, ReplicateRequest, ReplicateResponse,
};
use crate::options::TransportOptions;
use crate::rpc_status;
use crate::transfer::TransferStream;

/// A [`PeerClient`] on a [`MemoryNetwork`], from [`MemoryNetwork::client`].
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct MemoryClient {
    /// The network calls go through.
    network: MemoryNetwork,
    /// The address calls come from, for link checks.
    from: PeerAddr,
    /// Size bound and transfer window.
    options: TransportOptions,
}

impl MemoryClient {
    /// Returns a client on `network` calling from `from`.
    pub(super) fn new(network: MemoryNetwork, from: PeerAddr, options: TransportOptions) -> Self {
        MemoryClient {
            network,
            from,
            options,
        }
    }

    /// Returns the address this client's calls come from.
    pub fn local_addr(&self) -> PeerAddr {
        self.from
    }

    /// Returns `response` of a call to `peer` that ran `call` on the server
    /// side, waiting at most `deadline`; fails with `Interrupted` if the link
    /// was cut meanwhile.
    async fn call<T>(
        &self,
        peer: PeerAddr,
        deadline: Duration,
        route: &Route,
        call: BoxFuture<'static, std::result::Result<T, Status>>,
    ) -> Result<T> {
        let delivered = async {
            self.network.delay().await;
            self.network.unstalled(peer).await;
            let response = route.calls.track_future(call).await;
            self.network.delay().await;
            response
        };
        let result = tokio::time::timeout(deadline, delivered).await;
        // Cut while the call was under way: the server may have run it.
        if !self.network.is_linked(self.from, peer) {
            return Err(TransportError::Interrupted {
                peer,
                reason: format!("the link from {} was cut during the call", self.from),
            });
        }
        match result {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(status)) => Err(rpc_status::to_transport_error(peer, deadline, status)),
            Err(_) => Err(TransportError::Timeout {
                peer,
                after: deadline,
            }),
        }
    }
}

/// Returns `message` after a trip through its encoding, checking it against
/// the sender's bound and then the receiver's.
fn carry<M: prost::Message + Default>(
    message: &M,
    sender_limit: usize,
    receiver_limit: usize,
) -> Result<M> {
    let size = message.encoded_len();
    for limit in [sender_limit, receiver_limit] {
        if size > limit {
            return Err(TransportError::TooLarge { size, limit });
        }
    }
    M::decode(Bytes::from(message.encode_to_vec()))
        .map_err(|error| TransportError::Protocol(error.to_string()))
}

/// Returns `message` after a trip through its encoding within one stream,
/// as a status the stream can end with on failure.
fn carry_in_stream<M: prost::Message + Default>(
    message: &M,
    sender_limit: usize,
    receiver_limit: usize,
) -> std::result::Result<M, Status> {
    carry(message, sender_limit, receiver_limit).map_err(|error| match error {
        TransportError::TooLarge { size, limit } => rpc_status::too_large(size, limit),
        other => Status::internal(other.to_string()),
    })
}

impl PeerClient for MemoryClient {
    async fn execute(
        &self,
        peer: PeerAddr,
        request: ExecuteRequest,
        deadline: Duration,
    ) -> Result<ExecuteResponse> {
        let expected = request.ops.len();
        let request = convert::execute_request_to_pb(request);
        let route = self.network.route(self.from, peer)?;
        let limit = self.options.max_message_size;
        let request = carry(&request, limit, route.max_message_size)?;
        let call = route.service.execute(request);
        let response = self.call(peer, deadline, &route, call).await?;
        let response = carry(&response, route.max_message_size, limit)?;
        convert::execute_response_from_pb(response, expected)
    }

    async fn replicate(
        &self,
        peer: PeerAddr,
        request: ReplicateRequest,
        deadline: Duration,
    ) -> Result<ReplicateResponse> {
        let expected = request.entries.len();
        let request = convert::replicate_request_to_pb(request);
        let route = self.network.route(self.from, peer)?;
        let limit = self.options.max_message_size;
        let request = carry(&request, limit, route.max_message_size)?;
        let call = route.service.replicate(request);
        let response = self.call(peer, deadline, &route, call).await?;
        let response = carry(&response, route.max_message_size, limit)?;
        convert::replicate_response_from_pb(response, expected)
    }

    async fn status(&self, peer: PeerAddr, deadline: Duration) -> Result<PeerStatus> {
        let route = self.network.route(self.from, peer)?;
        let call = route.service.status();
        let response = self.call(peer, deadline, &route, call).await?;
        let response = carry(
            &response,
            route.max_message_size,
            self.options.max_message_size,
        )?;
        Ok(convert::peer_status_from_pb(response))
    }

    async fn transfer(&self, peer: PeerAddr, deadline: Duration) -> Result<TransferStream> {
        let route = self.network.route(self.from, peer)?;
        let (client_limit, server_limit) = (self.options.max_message_size, route.max_message_size);
        let (batches, outbound) = mpsc::channel(self.options.transfer_window.get());
        let inbound = ReceiverStream::new(outbound)
            .map(move |batch: pb::TransferBatch| {
                carry_in_stream(&batch, client_limit, server_limit)
            })
            .boxed();
        let acks = route
            .service
            .transfer(inbound)
            .map(move |ack| ack.and_then(|ack| carry_in_stream(&ack, server_limit, client_limit)))
            .boxed();
        let link = Link {
            network: self.network.clone(),
            from: self.from,
            to: peer,
        };
        let acks = link.watch(acks, route.calls.token());
        Ok(TransferStream::new(
            peer,
            deadline,
            &self.options,
            batches,
            acks,
        ))
    }

    /// Does nothing: the in-memory network keeps no connections.
    fn forget(&self, _peer: PeerAddr) {}
}

/// One direction of a link, as a stream sees it.
struct Link {
    /// The network the link is in.
    network: MemoryNetwork,
    /// The calling end.
    from: PeerAddr,
    /// The serving end.
    to: PeerAddr,
}

impl Link {
    /// Returns `acks`, ended with `Unavailable` as soon as the link is found
    /// cut (checked before and after each ack). `in_flight` counts the stream
    /// as a call in flight of the server until the stream ends.
    fn watch(
        self,
        acks: BoxStream<'static, std::result::Result<pb::TransferAck, Status>>,
        in_flight: TaskTrackerToken,
    ) -> BoxStream<'static, std::result::Result<pb::TransferAck, Status>> {
        stream::unfold(Some((acks, self, in_flight)), |state| async move {
            let (mut acks, link, in_flight) = state?;
            if let Some(status) = link.cut() {
                return Some((Err(status), None));
            }
            let ack = acks.next().await?;
            if let Some(status) = link.cut() {
                return Some((Err(status), None));
            }
            let state = ack.is_ok().then_some((acks, link, in_flight));
            Some((ack, state))
        })
        .boxed()
    }

    /// Returns the status of a call over the link if it is cut.
    fn cut(&self) -> Option<Status> {
        (!self.network.is_linked(self.from, self.to))
            .then(|| Status::unavailable(link_cut(self.from, self.to).to_string()))
    }
}
