//! Prometheus metrics on an HTTP address (`--metrics 127.0.0.1:9100`): every
//! command counted by name and result (`ok` or the error code) and timed,
//! plus the node's keys, memory, members by state, rebalance progress and
//! failed peer RPCs, refreshed every second.
//!
//! The exporter is process-global (the `metrics` facade's recorder); without
//! `--metrics` none is installed, and commands are neither timed nor recorded
//! (the facade would still build each metric's key): that costs one atomic
//! load per command.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use hive::{MemberState, Node};
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder};
use tokio_util::sync::CancellationToken;

use crate::resp::Frame;

/// Command latency buckets, in seconds: 10 µs to 1 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Set once a recorder is installed.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Returns true if commands are being recorded (`--metrics` is on).
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// How often the node gauges are refreshed.
const REFRESH: Duration = Duration::from_secs(1);

/// Serves the scrape endpoint on `addr` (any path answers) and refreshes the
/// node gauges until `stop`. Holds the node only weakly, so it never delays
/// the node's shutdown.
///
/// Fails if a recorder is installed already or `addr` cannot be bound.
pub fn serve(
    addr: SocketAddr,
    node: &Arc<Node>,
    stop: CancellationToken,
) -> Result<(), BuildError> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(LATENCY_BUCKETS)?
        .install()?;
    ENABLED.store(true, Ordering::Relaxed);
    metrics::describe_counter!(
        "hive_commands_total",
        "Commands run, by command and result."
    );
    metrics::describe_histogram!(
        "hive_command_duration_seconds",
        metrics::Unit::Seconds,
        "Time from a command's arrival to its reply, by command."
    );
    metrics::describe_gauge!("hive_keys", "Keys this node holds, replicas included.");
    metrics::describe_gauge!("hive_memory_bytes", "Bytes of data this node holds.");
    metrics::describe_gauge!("hive_members", "Members this node sees, by state.");
    metrics::describe_gauge!("hive_rebalance_pending_keys", "Keys still to move.");
    metrics::describe_gauge!(
        "hive_transfer_refusals",
        "Key copies other members refused in rebalances since start; they stay on this node."
    );
    metrics::describe_gauge!(
        "hive_tombstones",
        "Deleted or expired keys remembered so that no older copy brings them back."
    );
    metrics::describe_gauge!(
        "hive_peer_rpc_errors",
        "Peer RPCs from this node that failed (unreachable, timed out) and rebalance transfers not confirmed, since start."
    );
    tokio::spawn(refresh(Arc::downgrade(node), stop));
    Ok(())
}

async fn refresh(node: Weak<Node>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(REFRESH);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(status) = node.upgrade().map(|node| node.status()) else {
            return;
        };
        metrics::gauge!("hive_keys").set(status.keys as f64);
        metrics::gauge!("hive_memory_bytes").set(status.memory_bytes as f64);
        metrics::gauge!("hive_rebalance_pending_keys").set(status.rebalance_pending as f64);
        metrics::gauge!("hive_tombstones").set(status.tombstones as f64);
        metrics::gauge!("hive_transfer_refusals").set(status.transfer_refusals as f64);
        metrics::gauge!("hive_peer_rpc_errors").set(status.peer_rpc_errors as f64);
        for (state, name) in [
            (MemberState::Alive, "alive"),
            (MemberState::Suspect, "suspect"),
            (MemberState::Dead, "dead"),
            (MemberState::Left, "left"),
        ] {
            let count = status
                .members
                .iter()
                .filter(|member| member.state == state)
                .count();
            metrics::gauge!("hive_members", "state" => name).set(count as f64);
        }
    }
}

/// Records one command: counted by name and result, and timed.
pub(crate) fn record(command: &'static str, reply: &Frame, elapsed: Duration) {
    let result = match reply {
        Frame::Error(message) => error_code(message),
        _ => "ok",
    };
    metrics::counter!("hive_commands_total", "command" => command, "result" => result).increment(1);
    metrics::histogram!("hive_command_duration_seconds", "command" => command)
        .record(elapsed.as_secs_f64());
}

/// The label for an error reply: its code, from a fixed set.
fn error_code(message: &str) -> &'static str {
    let code = message.split(' ').next().unwrap_or_default();
    [
        "ERR",
        "WRONGTYPE",
        "OOM",
        "TRYAGAIN",
        "NOAUTH",
        "WRONGPASS",
        "NOPROTO",
    ]
    .into_iter()
    .find(|known| *known == code)
    .unwrap_or("other")
}
