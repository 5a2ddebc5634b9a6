//! The gRPC client: one lazily connected HTTP/2 channel per peer (multiplexed,
//! shared by clones), dropped by `forget`; every call bounded by a deadline
//! both here (`tokio::time::timeout`) and at the server (`grpc-timeout`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use proto::pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::client::{PeerAddr, PeerClient};
use crate::convert;
use crate::error::{Result, TransportError};
use crate::message::{
    ExecuteRequest, ExecuteResponse, PeerStatus, ReplicateRequest, ReplicateResponse,
};
use crate::options::TransportOptions;
use crate::rpc_status;
use crate::transfer::TransferStream;

/// The generated client stub over one channel.
type Stub = pb::peer_client::PeerClient<Channel>;

/// A [`PeerClient`] over gRPC. Cheap to clone; clones share the channels.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    /// State shared by clones.
    inner: Arc<Inner>,
}

/// What clones of a [`GrpcClient`] share.
#[derive(Debug)]
struct Inner {
    /// Size bound, connect timeout and transfer window.
    options: TransportOptions,
    /// One channel per peer, created on first use.
    channels: Mutex<HashMap<PeerAddr, Channel>>,
}

impl GrpcClient {
    /// Returns a client with `options` and no connections yet.
    pub fn new(options: TransportOptions) -> Self {
        GrpcClient {
            inner: Arc::new(Inner {
                options,
                channels: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Returns the client's options.
    pub fn options(&self) -> &TransportOptions {
        &self.inner.options
    }

    /// Returns how many peers the client keeps a channel to.
    pub fn channel_count(&self) -> usize {
        self.channels().len()
    }

    /// Returns the channel map, locked.
    fn channels(&self) -> MutexGuard<'_, HashMap<PeerAddr, Channel>> {
        self.inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns a stub on `peer`'s channel, creating the channel (unconnected)
    /// on first use; it connects on its first call and reconnects as needed.
    fn stub(&self, peer: PeerAddr) -> Result<Stub> {
        let options = &self.inner.options;
        let channel = {
            let mut channels = self.channels();
            match channels.get(&peer) {
                Some(channel) => channel.clone(),
                None => {
                    let channel = Endpoint::from_shared(format!("http://{peer}"))
                        .map_err(|error| TransportError::Unreachable {
                            peer,
                            reason: error.to_string(),
                        })?
                        .tcp_nodelay(true)
                        .connect_timeout(options.connect_timeout)
                        .connect_lazy();
                    channels.insert(peer, channel.clone());
                    channel
                }
            }
        };
        Ok(Stub::new(channel)
            .max_decoding_message_size(options.max_message_size)
            .max_encoding_message_size(options.max_message_size))
    }

    /// Fails with [`TransportError::TooLarge`] if `message` is over the bound.
    fn check_size(&self, message: &impl prost::Message) -> Result<()> {
        let size = message.encoded_len();
        let limit = self.inner.options.max_message_size;
        if size > limit {
            return Err(TransportError::TooLarge { size, limit });
        }
        Ok(())
    }
}

/// Returns `message` as a request that tells the server its deadline.
fn with_deadline<T>(message: T, deadline: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(deadline);
    request
}

/// Returns the response of `call` to `peer`, or the error it failed with,
/// waiting at most `deadline`.
async fn call<T>(
    peer: PeerAddr,
    deadline: Duration,
    call: impl Future<Output = std::result::Result<Response<T>, Status>>,
) -> Result<T> {
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(rpc_status::to_transport_error(peer, deadline, status)),
        Err(_) => Err(TransportError::Timeout {
            peer,
            after: deadline,
        }),
    }
}

impl PeerClient for GrpcClient {
    async fn execute(
        &self,
        peer: PeerAddr,
        request: ExecuteRequest,
        deadline: Duration,
    ) -> Result<ExecuteResponse> {
        let expected = request.ops.len();
        let request = convert::execute_request_to_pb(request);
        self.check_size(&request)?;
        let mut stub = self.stub(peer)?;
        let response = call(
            peer,
            deadline,
            stub.execute(with_deadline(request, deadline)),
        )
        .await?;
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
        self.check_size(&request)?;
        let mut stub = self.stub(peer)?;
        let response = call(
            peer,
            deadline,
            stub.replicate(with_deadline(request, deadline)),
        )
        .await?;
        convert::replicate_response_from_pb(response, expected)
    }

    async fn status(&self, peer: PeerAddr, deadline: Duration) -> Result<PeerStatus> {
        let mut stub = self.stub(peer)?;
        let request = with_deadline(pb::StatusRequest {}, deadline);
        let response = call(peer, deadline, stub.status(request)).await?;
        Ok(convert::peer_status_from_pb(response))
    }

    async fn transfer(&self, peer: PeerAddr, deadline: Duration) -> Result<TransferStream> {
        let options = &self.inner.options;
        let (batches, outbound) = mpsc::channel(options.transfer_window.get());
        let mut stub = self.stub(peer)?;
        // No grpc-timeout: the deadline bounds each wait, not the whole stream.
        let acks = call(peer, deadline, stub.transfer(ReceiverStream::new(outbound))).await?;
        Ok(TransferStream::new(
            peer,
            deadline,
            options,
            batches,
            acks.boxed(),
        ))
    }

    fn forget(&self, peer: PeerAddr) {
        if self.channels().remove(&peer).is_some() {
            tracing::debug!(%peer, "dropped channel to peer");
        }
    }
}
