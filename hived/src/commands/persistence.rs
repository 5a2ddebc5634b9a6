//! Persistence commands: `SAVE`, `BGSAVE`, `LASTSAVE`, `SHUTDOWN`, and the
//! `INFO persistence` section. Snapshots go to `--dir` (the node's data
//! directory); without it `SAVE` and `BGSAVE` say so.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Args, Command, Conn, error_frame, handler, is};
use crate::resp::Frame;

pub(super) static COMMANDS: &[Command] = &[
    Command {
        name: "save",
        arity: 1,
        flags: &["admin", "noscript", "no_async_loading", "no_multi"],
        keys: (0, 0, 0),
        group: "server",
        summary: "Writes a snapshot to --dir and answers once it is durable.",
        run: handler!(save),
    },
    Command {
        name: "bgsave",
        arity: -1,
        flags: &["admin", "noscript", "no_async_loading", "no_multi"],
        keys: (0, 0, 0),
        group: "server",
        summary: "Starts writing a snapshot to --dir in the background.",
        run: handler!(bgsave),
    },
    Command {
        name: "lastsave",
        arity: 1,
        flags: &["fast", "loading", "stale"],
        keys: (0, 0, 0),
        group: "server",
        summary: "Returns the Unix time of the last successful snapshot.",
        run: handler!(lastsave),
    },
    Command {
        name: "shutdown",
        arity: -1,
        flags: &[
            "admin",
            "noscript",
            "loading",
            "stale",
            "no_multi",
            "allow_busy",
        ],
        keys: (0, 0, 0),
        group: "server",
        summary: "Stops the server gracefully; with --dir it saves first unless NOSAVE.",
        run: handler!(shutdown),
    },
];

/// How `SHUTDOWN` asked the server to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Write a last snapshot (the default with `--dir`).
    Save,
    /// Keep the snapshot already on disk.
    NoSave,
}

const NO_DIR: &str = "snapshots need a data directory: start hived with --dir";

async fn save(conn: &mut Conn, _: Args) -> Frame {
    if conn.shared.node.persistence().is_none() {
        return Frame::err(NO_DIR);
    }
    if conn
        .shared
        .node
        .persistence()
        .is_some_and(|status| status.saving)
    {
        return Frame::err("Background save already in progress");
    }
    match conn.shared.node.save_snapshot().await {
        Ok(_) => Frame::OK,
        Err(err) => error_frame(&err),
    }
}

async fn bgsave(conn: &mut Conn, args: Args) -> Frame {
    // `BGSAVE SCHEDULE` waits for a save under way rather than failing.
    let schedule = match &args[1..] {
        [] => false,
        [option] if is(option, "schedule") => true,
        _ => return Frame::err("syntax error"),
    };
    let Some(status) = conn.shared.node.persistence() else {
        return Frame::err(NO_DIR);
    };
    if status.saving && !schedule {
        return Frame::err("Background save already in progress");
    }
    let node = conn.shared.node.clone();
    conn.shared.background.spawn(async move {
        if let Err(err) = node.save_snapshot_at(hive::Pace::Background).await {
            tracing::warn!(%err, "background save failed");
        }
    });
    if status.saving {
        Frame::Simple("Background saving scheduled")
    } else {
        Frame::Simple("Background saving started")
    }
}

async fn lastsave(conn: &mut Conn, _: Args) -> Frame {
    let at = conn
        .shared
        .node
        .persistence()
        .map_or(conn.shared.stats.started_at, |status| status.last_save);
    Frame::Integer(unix_seconds(at))
}

/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]`: with `--dir` (or `SAVE`) a
/// snapshot is written first, and if that fails the server stays up and says
/// so. Then the server stops as on SIGTERM and this connection closes
/// without a reply, as clients expect.
async fn shutdown(conn: &mut Conn, args: Args) -> Frame {
    let (mut save, mut nosave) = (false, false);
    for option in &args[1..] {
        if is(option, "save") {
            save = true;
        } else if is(option, "nosave") {
            nosave = true;
        } else if is(option, "now") || is(option, "force") {
            // Nothing to wait for or force: hived has no replicas to catch up.
        } else if is(option, "abort") {
            return Frame::err("No shutdown in progress.");
        } else {
            return Frame::err("syntax error");
        }
    }
    if save && nosave {
        return Frame::err("syntax error");
    }
    let has_dir = conn.shared.node.persistence().is_some();
    if save && !has_dir {
        return Frame::err(NO_DIR);
    }
    let mode = if has_dir && !nosave {
        // Saved now so a failure can keep the server up; the stop saves
        // again, taking what is written meanwhile.
        if let Err(err) = conn.shared.node.save_snapshot().await {
            tracing::warn!(%err, "SHUTDOWN: the snapshot was not written; staying up");
            return Frame::err("Errors trying to SHUTDOWN. Check logs.");
        }
        ShutdownMode::Save
    } else {
        ShutdownMode::NoSave
    };
    tracing::info!(?mode, client = conn.id, "SHUTDOWN requested");
    conn.shared.shutdown.send_replace(Some(mode));
    conn.closing = true;
    Frame::Silence
}

/// The `INFO persistence` section.
pub(super) fn info_section(conn: &Conn) -> String {
    let Some(status) = conn.shared.node.persistence() else {
        return format!(
            "# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:0\r\n\
             rdb_bgsave_in_progress:0\r\nrdb_last_save_time:{}\r\n\
             rdb_last_bgsave_status:ok\r\naof_enabled:0\r\nhive_dir:\r\n\r\n",
            unix_seconds(conn.shared.stats.started_at)
        );
    };
    format!(
        "# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:{}\r\n\
         rdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\n\
         rdb_last_bgsave_status:{}\r\naof_enabled:0\r\nhive_dir:{}\r\n\r\n",
        status.changes_since_save,
        u8::from(status.saving),
        unix_seconds(status.last_save),
        if status.last_save_ok { "ok" } else { "err" },
        status.dir.display(),
    )
}

fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
    })
}
