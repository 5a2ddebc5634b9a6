//! The `hived` binary: parses options, starts the node and the RESP server,
//! and stops gracefully on SIGTERM or SIGINT (a second signal exits at once).

use anyhow::Context;
use hived::options::{LoadError, Options};
use hived::{Server, ServerOptions};
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
            ..ServerOptions::default()
        },
    )
    .await
    .with_context(|| format!("binding {}", options.resp))?;
    let resp = server.local_addr()?;
    tracing::info!(node = %node.id(), %resp, gossip = ?node.gossip_addr(), "hived ready");

    let stop = CancellationToken::new();
    let serving = tokio::spawn(server.run(stop.clone()));
    wait_for_signal().await?;
    tracing::info!("stopping: finishing requests, handing data off");
    stop.cancel();
    tokio::spawn(async {
        if wait_for_signal().await.is_ok() {
            tracing::warn!("second signal: exiting at once");
            std::process::exit(130);
        }
    });
    serving.await.context("the server task")?;
    // Every connection has ended, so this is the last handle on the node.
    match std::sync::Arc::try_unwrap(node) {
        Ok(node) => node.shutdown().await.context("leaving the cluster")?,
        Err(_) => anyhow::bail!("a connection outlived the server; stopping without hand-off"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Waits for SIGINT or SIGTERM.
async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.context("waiting for SIGINT")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
