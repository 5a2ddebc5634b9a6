//! The gRPC server: binds a TCP listener, serves a [`PeerHandler`] through
//! tonic with the size bounds of [`TransportOptions`], and owns its serving
//! task until [`GrpcServer::shutdown`] stops it and waits for it.

use std::net::SocketAddr;
use std::time::Duration;

use futures::stream::BoxStream;
use proto::pb;
use proto::pb::peer_server::{Peer, PeerServer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::error::{Result, TransportError};
use crate::handler::PeerHandler;
use crate::options::TransportOptions;
use crate::service::PeerService;

/// A running gRPC server for the peer protocol.
///
/// Stop it with [`shutdown`](Self::shutdown), which waits for it. Dropping it
/// instead stops it without waiting and cancels calls in flight at once (what
/// a crash looks like to peers, give or take the closed sockets).
#[derive(Debug)]
pub struct GrpcServer {
    /// The address actually bound (the real port when asked for port 0).
    local_addr: SocketAddr,
    /// Cancelled to stop accepting connections and start a graceful shutdown.
    stop_accepting: CancellationToken,
    /// Cancelled to end calls still in flight (they fail with `ShuttingDown`).
    abort_calls: CancellationToken,
    /// How long shutdown lets calls in flight finish before aborting them.
    grace: Duration,
    /// The serving task; `None` once awaited.
    task: Option<JoinHandle<std::result::Result<(), tonic::transport::Error>>>,
}

impl GrpcServer {
    /// Binds `addr` and starts serving `handler` on it, and returns the running
    /// server. Binding happens before this returns, so with port 0 the real
    /// port is known from [`local_addr`](Self::local_addr) and calls to it
    /// succeed at once. Fails with [`TransportError::Bind`] if `addr` cannot
    /// be bound.
    pub async fn bind<H: PeerHandler>(
        addr: SocketAddr,
        handler: H,
        options: TransportOptions,
    ) -> Result<GrpcServer> {
        let bind_error = |source| TransportError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

        let stop_accepting = CancellationToken::new();
        let abort_calls = CancellationToken::new();
        let service = GrpcService(PeerService::new(handler, abort_calls.clone()));
        let service = PeerServer::new(service)
            .max_decoding_message_size(options.max_message_size)
            .max_encoding_message_size(options.max_message_size);
        let serve = Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, stop_accepting.clone().cancelled_owned());
        let task = tokio::spawn(serve);
        tracing::debug!(%local_addr, "peer gRPC server listening");
        Ok(GrpcServer {
            local_addr,
            stop_accepting,
            abort_calls,
            grace: options.shutdown_grace,
            task: Some(task),
        })
    }

    /// Returns the address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the server and waits for it: stops accepting connections, lets
    /// calls in flight finish for up to the shutdown grace, then cancels the
    /// rest (their callers get `ShuttingDown`) and waits for the connections
    /// to close (for up to the grace again). Returns an error if the server
    /// had failed, or did not stop in time.
    pub async fn shutdown(mut self) -> Result<()> {
        self.stop_accepting.cancel();
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        let joined = match tokio::time::timeout(self.grace, &mut task).await {
            Ok(joined) => joined,
            Err(_) => {
                let local_addr = self.local_addr;
                tracing::debug!(%local_addr, "grace over; cancelling calls in flight");
                self.abort_calls.cancel();
                match tokio::time::timeout(self.grace, &mut task).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        task.abort();
                        return Err(TransportError::Serve(format!(
                            "server on {} did not stop within twice {:?}",
                            self.local_addr, self.grace
                        )));
                    }
                }
            }
        };
        match joined {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(TransportError::Serve(error.to_string())),
            Err(error) => Err(TransportError::Serve(error.to_string())),
        }
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.stop_accepting.cancel();
        self.abort_calls.cancel();
    }
}

/// The transport-independent service behind tonic's generated trait.
struct GrpcService<H>(PeerService<H>);

#[tonic::async_trait]
impl<H: PeerHandler> Peer for GrpcService<H> {
    async fn execute(
        &self,
        request: Request<pb::ExecuteRequest>,
    ) -> std::result::Result<Response<pb::ExecuteResponse>, Status> {
        self.0
            .execute(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn replicate(
        &self,
        request: Request<pb::ReplicateRequest>,
    ) -> std::result::Result<Response<pb::ReplicateResponse>, Status> {
        self.0
            .replicate(request.into_inner())
            .await
            .map(Response::new)
    }

    type TransferStream = BoxStream<'static, std::result::Result<pb::TransferAck, Status>>;

    async fn transfer(
        &self,
        request: Request<Streaming<pb::TransferBatch>>,
    ) -> std::result::Result<Response<Self::TransferStream>, Status> {
        Ok(Response::new(self.0.transfer(request.into_inner())))
    }

    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> std::result::Result<Response<pb::StatusResponse>, Status> {
        self.0.status().await.map(Response::new)
    }
}
