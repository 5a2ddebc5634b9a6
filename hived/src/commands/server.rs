//! Server commands: `HIVE.STATUS` (members, states, ring shares, rebalance
//! progress), `HIVE.OWNERS`, `DBSIZE` and `INFO` (whose persistence section
//! `persistence.rs` writes).

use std::sync::atomic::Ordering;

use hive::{ClusterStatus, MemberState};

use super::{Args, Command, Conn, error_frame, handler};
use crate::resp::Frame;

/// The Redis version whose command semantics `hived` follows, as `INFO`
/// reports it: clients read it to decide which commands and options to use.
const REDIS_VERSION: &str = "7.4.0";

pub(super) static COMMANDS: &[Command] = &[
    Command {
        name: "hive.status",
        arity: 1,
        flags: &["readonly", "fast"],
        keys: (0, 0, 0),
        group: "server",
        summary: "Returns this node's view of the cluster: members, states, ring shares, rebalance progress.",
        run: handler!(status),
    },
    Command {
        name: "hive.owners",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "server",
        summary: "Returns the ids of the nodes holding a key, primary first.",
        run: handler!(owners),
    },
    Command {
        name: "dbsize",
        arity: 1,
        flags: &["readonly", "fast"],
        keys: (0, 0, 0),
        group: "server",
        summary: "Returns the number of keys in the whole cluster, each counted once.",
        run: handler!(dbsize),
    },
    Command {
        name: "info",
        arity: -1,
        flags: &["stale"],
        keys: (0, 0, 0),
        group: "server",
        summary: "Returns server, clients, memory, stats, keyspace and cluster information.",
        run: handler!(info),
    },
];

fn state_name(state: MemberState) -> &'static str {
    match state {
        MemberState::Alive => "alive",
        MemberState::Suspect => "suspect",
        MemberState::Dead => "dead",
        MemberState::Left => "left",
    }
}

fn text(value: impl ToString) -> Frame {
    Frame::bulk(value.to_string())
}

async fn status(conn: &mut Conn, _: Args) -> Frame {
    let status = conn.shared.node.status();
    let members = status
        .members
        .iter()
        .map(|member| {
            let addr = |addr: Option<std::net::SocketAddr>| addr.map_or(Frame::Null, text);
            Frame::Map(vec![
                (text("id"), text(&member.id)),
                (text("state"), text(state_name(member.state))),
                (text("ring_share"), Frame::Double(member.ring_share)),
                (text("gossip_addr"), addr(member.gossip_addr)),
                (text("rpc_addr"), addr(member.rpc_addr)),
            ])
        })
        .collect();
    Frame::Map(vec![
        (text("node_id"), text(&status.node_id)),
        (
            text("replication_factor"),
            Frame::count(status.replication_factor),
        ),
        (text("keys"), Frame::count(status.keys)),
        (text("memory_bytes"), Frame::count(status.memory_bytes)),
        (text("tombstones"), Frame::count(status.tombstones)),
        (
            text("rebalance_pending"),
            Frame::count(status.rebalance_pending),
        ),
        (text("members"), Frame::Array(members)),
    ])
}

async fn owners(conn: &mut Conn, args: Args) -> Frame {
    Frame::Array(
        conn.shared
            .node
            .owners_raw(&args[1])
            .into_iter()
            .map(text)
            .collect(),
    )
}

/// `DBSIZE`: the keys of the whole cluster, each counted once.
async fn dbsize(conn: &mut Conn, _: Args) -> Frame {
    match conn.shared.node.key_count().await {
        Ok(keys) => Frame::count(keys),
        Err(err) => error_frame(&err),
    }
}

async fn info(conn: &mut Conn, args: Args) -> Frame {
    let status = conn.shared.node.status();
    let wanted = |section: &str| {
        args.len() == 1
            || args[1..].iter().any(|arg| {
                arg.eq_ignore_ascii_case(section.as_bytes())
                    || arg.eq_ignore_ascii_case(b"all")
                    || arg.eq_ignore_ascii_case(b"everything")
            })
    };
    let stats = &conn.shared.stats;
    let uptime = stats.started.elapsed().as_secs();
    let mut out = String::new();
    if wanted("server") {
        out.push_str(&format!(
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\n\
             hive_version:{}\r\nos:{} {}\r\narch_bits:{}\r\nprocess_id:{}\r\nrun_id:{}\r\n\
             tcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            usize::BITS,
            std::process::id(),
            status.node_id,
            stats.port,
            uptime / 86_400,
        ));
    }
    if wanted("clients") {
        // Hive's own: the most reply bytes one connection has had queued
        // (bounded by back-pressure and --output-buffer-limit).
        out.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\nhive_peak_output_buffer:{}\r\n\r\n",
            stats.connected_clients.load(Ordering::Relaxed),
            stats.peak_output_buffer.load(Ordering::Relaxed),
        ));
    }
    if wanted("memory") {
        out.push_str(&format!(
            "# Memory\r\nused_memory:{}\r\nmaxmemory:{}\r\nmaxmemory_policy:{}\r\n\
             hive_tombstones:{}\r\n\r\n",
            status.memory_bytes,
            conn.shared
                .settings
                .iter()
                .find(|(name, _)| *name == "maxmemory")
                .map_or("0", |(_, value)| value.as_str()),
            conn.shared.node.eviction().policy.redis_name(),
            status.tombstones
        ));
    }
    if wanted("stats") {
        out.push_str(&format!(
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             client_output_buffer_limit_disconnections:{}\r\nevicted_keys:{}\r\n\
             hive_peer_rpc_errors:{}\r\nhive_transfer_refusals:{}\r\n\r\n",
            stats.connections_received.load(Ordering::Relaxed),
            stats.commands_processed.load(Ordering::Relaxed),
            stats.output_limit_disconnections.load(Ordering::Relaxed),
            conn.shared.node.evicted_keys(),
            status.peer_rpc_errors,
            status.transfer_refusals,
        ));
    }
    if wanted("persistence") {
        out.push_str(&super::persistence::info_section(conn));
    }
    if wanted("keyspace") {
        out.push_str("# Keyspace\r\n");
        if status.keys > 0 {
            out.push_str(&format!("db0:keys={},expires=0,avg_ttl=0\r\n", status.keys));
        }
        out.push_str("\r\n");
    }
    if wanted("cluster") {
        out.push_str(&cluster_section(&status));
    }
    Frame::bulk(out)
}

fn cluster_section(status: &ClusterStatus) -> String {
    let mut out = format!(
        "# Cluster\r\ncluster_enabled:0\r\nhive_node_id:{}\r\nhive_replication_factor:{}\r\nhive_members:{}\r\nhive_rebalance_pending:{}\r\n",
        status.node_id,
        status.replication_factor,
        status.members.len(),
        status.rebalance_pending
    );
    for (i, member) in status.members.iter().enumerate() {
        out.push_str(&format!(
            "hive_member{i}:id={},state={},ring_share={:.4}\r\n",
            member.id,
            state_name(member.state),
            member.ring_share
        ));
    }
    out.push_str("\r\n");
    out
}
