//! The `hived` binary: parses options, starts the node and the RESP server,
//! and stops gracefully on SIGTERM or SIGINT (a second signal exits at once).

use anyhow::Context;
use hived::options::{LoadError, Options};
use hived::{Server, ServerOptions, ShutdownMode};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = match Options::load(std::env::args_os()) {
        Ok(options) => options,
        // Help, version and usage errors: clap prints them and picks the exit code.
        Err(LoadError::Args(err)) => err.exit(),
        Err(err @ LoadError::File(_)) => {
            eprintln!("hived: {err}");
            std::process::exit(2);
        }
    };
    let logs =
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(&options.log));
    if options.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    let node = std::sync::Arc::new(
        hive::Node::start(options.node_config())
            .await
            .context("starting the node")?,
    );
    let server = Server::bind(
        options.resp,
        node.clone(),
        ServerOptions {
            password: options.requirepass.clone(),
            maxmemory: options.mem_limit,
            max_output_buffer: Some(options.output_buffer_limit),
            save_interval: node_snapshot_interval(&options),
            ..ServerOptions::default()
        },
    )
    .await
    .with_context(|| format!("binding {}", options.resp))?;
    let stop = CancellationToken::new();
    if let Some(addr) = options.metrics {
        hived::metrics::serve(addr, &node, stop.clone())
            .with_context(|| format!("serving metrics on {addr}"))?;
        tracing::info!(%addr, "metrics endpoint up");
    }
    let resp = server.local_addr()?;
    // Handlers first: once "ready" is logged, a signal must stop us gracefully.
    let mut signals = Signals::install()?;
    tracing::info!(node = %node.id(), %resp, gossip = ?node.gossip_addr(), "hived ready");

    let mut shutdown = server.shutdown_requests();
    let serving = tokio::spawn(server.run(stop.clone()));
    let mode = tokio::select! {
        () = signals.next() => ShutdownMode::Save,
        requested = shutdown.wait_for(Option::is_some) => {
            requested.ok().and_then(|mode| *mode).unwrap_or(ShutdownMode::Save)
        }
    };
    tracing::info!("stopping: finishing requests, handing data off");
    stop.cancel();
    tokio::spawn(async move {
        signals.next().await;
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    });
    serving.await.context("the server task")?;
    // Every connection has ended, so this is the last handle on the node.
    match (std::sync::Arc::try_unwrap(node), mode) {
        (Ok(node), ShutdownMode::Save) => node.shutdown().await.context("stopping the node")?,
        (Ok(node), ShutdownMode::NoSave) => node
            .shutdown_without_save()
            .await
            .context("stopping the node")?,
        (Err(_), _) => {
            anyhow::bail!("a connection outlived the server; stopping without hand-off")
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Returns the automatic snapshot period the node runs with.
fn node_snapshot_interval(options: &Options) -> Option<std::time::Duration> {
    options.node_config().snapshot_interval
}

/// SIGINT and SIGTERM, listened for from installation on.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Waits for the next SIGINT or SIGTERM.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
