//! Generic key commands: `DEL`, `UNLINK`, `EXISTS`, `TYPE`, the `EXPIRE`
//! family (with `NX`, `XX`, `GT`, `LT`), `TTL`, `PTTL`, `PERSIST`, `RENAME`,
//! and the cluster-wide key space: `SCAN`, `KEYS`, `RANDOMKEY`, `FLUSHDB`,
//! `FLUSHALL`.
//!
//! Multi-key commands run key by key (each key on its own primary); they are
//! not atomic across keys.

use hive::Error;
use hive::raw::{ExpireCondition, Kind, Op, Reply};

use super::scan::{Extra, Scan};
use super::{Args, Command, Conn, error_frame, handler, int_arg, is, scan};
use crate::resp::Frame;

pub(super) static COMMANDS: &[Command] = &[
    Command {
        name: "del",
        arity: -2,
        flags: &["write"],
        keys: (1, -1, 1),
        group: "generic",
        summary: "Deletes keys; returns how many existed.",
        run: handler!(del),
    },
    Command {
        name: "unlink",
        arity: -2,
        flags: &["write", "fast"],
        keys: (1, -1, 1),
        group: "generic",
        summary: "Deletes keys (as DEL); returns how many existed.",
        run: handler!(del),
    },
    Command {
        name: "exists",
        arity: -2,
        flags: &["readonly", "fast"],
        keys: (1, -1, 1),
        group: "generic",
        summary: "Counts the given keys that exist (repeats count again).",
        run: handler!(exists),
    },
    Command {
        name: "type",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "generic",
        summary: "Returns the type of the value at a key.",
        run: handler!(kind),
    },
    Command {
        name: "object",
        arity: -3,
        flags: &["readonly"],
        keys: (2, 2, 1),
        group: "generic",
        summary: "OBJECT FREQ and OBJECT IDLETIME: a key's access record, as eviction reads it.",
        run: handler!(object),
    },
    Command {
        name: "expire",
        arity: -3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "generic",
        summary: "Sets a key's time to live in seconds.",
        run: handler!(expire),
    },
    Command {
        name: "pexpire",
        arity: -3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "generic",
        summary: "Sets a key's time to live in milliseconds.",
        run: handler!(expire),
    },
    Command {
        name: "expireat",
        arity: -3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "generic",
        summary: "Expires a key at a Unix time in seconds.",
        run: handler!(expire),
    },
    Command {
        name: "pexpireat",
        arity: -3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "generic",
        summary: "Expires a key at a Unix time in milliseconds.",
        run: handler!(expire),
    },
    Command {
        name: "ttl",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "generic",
        summary: "Returns a key's remaining time to live in seconds (-1 none, -2 no key).",
        run: handler!(ttl),
    },
    Command {
        name: "expiretime",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "generic",
        summary: "Returns a key's expiry as a Unix time in seconds (-1 none, -2 no key).",
        run: handler!(expire_time),
    },
    Command {
        name: "pexpiretime",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "generic",
        summary: "Returns a key's expiry as a Unix time in ms (-1 none, -2 no key).",
        run: handler!(expire_time),
    },
    Command {
        name: "pttl",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "generic",
        summary: "Returns a key's remaining time to live in ms (-1 none, -2 no key).",
        run: handler!(ttl),
    },
    Command {
        name: "persist",
        arity: 2,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "generic",
        summary: "Removes a key's expiration; returns 1 if it had one.",
        run: handler!(persist),
    },
    Command {
        name: "rename",
        arity: 3,
        flags: &["write"],
        keys: (1, 2, 1),
        group: "generic",
        summary: "Renames a key (with its TTL), replacing the destination.",
        run: handler!(rename),
    },
    Command {
        name: "scan",
        arity: -2,
        flags: &["readonly"],
        keys: (0, 0, 0),
        group: "generic",
        summary: "Iterates the keys of the whole cluster (MATCH, COUNT, TYPE).",
        run: handler!(scan_keys),
    },
    Command {
        name: "keys",
        arity: 2,
        flags: &["readonly"],
        keys: (0, 0, 0),
        group: "generic",
        summary: "Returns every key of the cluster matching a pattern.",
        run: handler!(keys),
    },
    Command {
        name: "randomkey",
        arity: 1,
        flags: &["readonly"],
        keys: (0, 0, 0),
        group: "generic",
        summary: "Returns a random key of the cluster.",
        run: handler!(randomkey),
    },
    Command {
        name: "flushdb",
        arity: -1,
        flags: &["write"],
        keys: (0, 0, 0),
        group: "server",
        summary: "Deletes every key of the cluster (key by key, as deletes).",
        run: handler!(flush),
    },
    Command {
        name: "flushall",
        arity: -1,
        flags: &["write"],
        keys: (0, 0, 0),
        group: "server",
        summary: "As FLUSHDB: a Hive cluster has one database.",
        run: handler!(flush),
    },
];

async fn del(conn: &mut Conn, args: Args) -> Frame {
    let mut deleted = 0;
    for key in &args[1..] {
        match conn.run(key, Op::Del).await {
            Ok(Reply::Bool(true)) => deleted += 1,
            Ok(_) => {}
            Err(err) => return error_frame(&err),
        }
    }
    Frame::Integer(deleted)
}

async fn exists(conn: &mut Conn, args: Args) -> Frame {
    let mut found = 0;
    for key in &args[1..] {
        match conn.run(key, Op::Exists).await {
            Ok(Reply::Bool(true)) => found += 1,
            Ok(_) => {}
            Err(err) => return error_frame(&err),
        }
    }
    Frame::Integer(found)
}

/// The name `TYPE` reports for a kind.
pub(super) fn type_name(kind: Option<Kind>) -> &'static str {
    match kind {
        None => "none",
        Some(Kind::Value) => "string",
        Some(Kind::Hash) => "hash",
        Some(Kind::List) => "list",
        Some(Kind::Set) => "set",
        Some(Kind::ZSet) => "zset",
    }
}

async fn kind(conn: &mut Conn, args: Args) -> Frame {
    match conn.run(&args[1], Op::Type).await {
        Ok(Reply::Kind(kind)) => Frame::Simple(type_name(kind)),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

async fn object(conn: &mut Conn, args: Args) -> Frame {
    let op = match () {
        () if is(&args[1], "freq") && args.len() == 3 => Op::ObjectFreq,
        () if is(&args[1], "idletime") && args.len() == 3 => Op::ObjectIdleTime,
        () => {
            return Frame::err(format!(
                "unknown subcommand '{}'. Try OBJECT HELP.",
                String::from_utf8_lossy(&args[1])
            ));
        }
    };
    match conn.run(&args[2], op).await {
        Ok(Reply::Access(Some(value))) => Frame::Integer(i64::try_from(value).unwrap_or(i64::MAX)),
        Ok(Reply::Access(None)) => Frame::Null,
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

/// Parses the `NX`/`XX`/`GT`/`LT` options of the `EXPIRE` family, with
/// Redis's conflict rules.
fn expire_condition(options: &[bytes::Bytes]) -> Result<Option<ExpireCondition>, Frame> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for option in options {
        let flag = match () {
            () if is(option, "nx") => &mut nx,
            () if is(option, "xx") => &mut xx,
            () if is(option, "gt") => &mut gt,
            () if is(option, "lt") => &mut lt,
            () => {
                return Err(Frame::err(format!(
                    "Unsupported option {}",
                    String::from_utf8_lossy(option)
                )));
            }
        };
        *flag = true;
    }
    if nx && (xx || gt || lt) {
        return Err(Frame::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Frame::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    Ok(match (nx, xx, gt, lt) {
        (true, ..) => Some(ExpireCondition::IfNone),
        (_, _, true, _) => Some(ExpireCondition::Later),
        (_, true, _, true) => Some(ExpireCondition::EarlierThanSome),
        (_, _, _, true) => Some(ExpireCondition::Earlier),
        (_, true, ..) => Some(ExpireCondition::IfSome),
        _ => None,
    })
}

/// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT` with `NX`/`XX`/`GT`/`LT`: a
/// time to live or deadline already past deletes the key, as in Redis.
async fn expire(conn: &mut Conn, args: Args) -> Frame {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let invalid = || Frame::err(format!("invalid expire time in '{name}' command"));
    let condition = match expire_condition(&args[3..]) {
        Ok(condition) => condition,
        Err(refusal) => return refusal,
    };
    let amount = match int_arg(&args[2]) {
        Ok(amount) => amount,
        Err(refusal) => return refusal,
    };
    let Some(ms) = amount.checked_mul(if name.starts_with('p') { 1 } else { 1000 }) else {
        return invalid();
    };
    // Past times become a TTL of 0: deleted at once.
    let ms = u64::try_from(ms).unwrap_or(0);
    let op = match (name.ends_with("at"), condition) {
        // The store measures a deadline against its own clock: kept exactly.
        (true, condition) => Op::ExpireIfAt {
            at_ms: ms,
            condition: condition.unwrap_or(ExpireCondition::Always),
        },
        (false, Some(condition)) => Op::ExpireIf {
            ttl_ms: ms,
            condition,
        },
        (false, None) if ms > 0 => Op::Expire { ttl_ms: ms },
        (false, None) => Op::Del,
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Unit | Reply::Bool(true)) => Frame::Integer(1),
        Ok(_) | Err(Error::NotFound) => Frame::Integer(0),
        Err(Error::InvalidArgument(_)) => invalid(),
        Err(err) => error_frame(&err),
    }
}

async fn ttl(conn: &mut Conn, args: Args) -> Frame {
    let in_seconds = args[0].eq_ignore_ascii_case(b"ttl");
    match conn.run(&args[1], Op::Ttl).await {
        Ok(Reply::Ttl(None)) => Frame::Integer(-1),
        // Rounded to the nearest second, as Redis does.
        Ok(Reply::Ttl(Some(ms))) if in_seconds => Frame::count(ms.saturating_add(500) / 1000),
        Ok(Reply::Ttl(Some(ms))) => Frame::count(ms),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Integer(-2),
        Err(err) => error_frame(&err),
    }
}

async fn expire_time(conn: &mut Conn, args: Args) -> Frame {
    let in_seconds = args[0].eq_ignore_ascii_case(b"expiretime");
    match conn.run(&args[1], Op::ExpireTime).await {
        Ok(Reply::Ttl(None)) => Frame::Integer(-1),
        Ok(Reply::Ttl(Some(at_ms))) if in_seconds => Frame::count(at_ms / 1000),
        Ok(Reply::Ttl(Some(at_ms))) => Frame::count(at_ms),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Integer(-2),
        Err(err) => error_frame(&err),
    }
}

async fn persist(conn: &mut Conn, args: Args) -> Frame {
    match conn.run(&args[1], Op::Persist).await {
        Ok(Reply::Bool(had)) => Frame::Integer(had.into()),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Integer(0),
        Err(err) => error_frame(&err),
    }
}

/// `RENAME key newkey`: the value and its TTL move; the destination is
/// replaced whatever it held. The keys may live on different nodes: the value
/// is copied, then the source deleted (not atomic across keys).
async fn rename(conn: &mut Conn, args: Args) -> Frame {
    let (source, destination) = (&args[1], &args[2]);
    let dumped = match conn.run(source, Op::Dump).await {
        Ok(Reply::Dump(dumped)) => dumped,
        Ok(other) => return unexpected(&other),
        Err(Error::NotFound) => return Frame::err("no such key"),
        Err(err) => return error_frame(&err),
    };
    if source == destination {
        return Frame::OK;
    }
    let restore = Op::Restore {
        data: dumped.data,
        ttl_ms: dumped.ttl_ms,
    };
    if let Err(err) = conn.run(destination, restore).await {
        return error_frame(&err);
    }
    match conn.run(source, Op::Del).await {
        Ok(_) => Frame::OK,
        Err(err) => error_frame(&err),
    }
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]` over the whole
/// cluster: steps of the node's key scan until `count` keys were looked at
/// or the scan is done. The cursor is the node's scan cursor.
async fn scan_keys(conn: &mut Conn, args: Args) -> Frame {
    let scan = match Scan::parse(&args[1..], Extra::Type) {
        Ok(scan) => scan,
        Err(refusal) => return refusal,
    };
    let mut cursor = scan.cursor;
    let (mut seen, mut found) = (0, Vec::new());
    loop {
        let (next, keys) = match conn.shared.node.scan_raw(cursor).await {
            Ok(step) => step,
            Err(err) => return error_frame(&err),
        };
        seen += keys.len();
        found.extend(
            keys.into_iter()
                .filter(|(key, kind)| scan.wants(key) && wanted_type(&scan, *kind))
                .map(|(key, _)| key),
        );
        cursor = next;
        if cursor == 0 || seen >= scan.count {
            return scan::reply(cursor, found);
        }
    }
}

fn wanted_type(scan: &Scan, kind: Kind) -> bool {
    scan.kind
        .as_ref()
        .is_none_or(|wanted| wanted.eq_ignore_ascii_case(type_name(Some(kind)).as_bytes()))
}

/// Every key of the cluster, with its kind.
async fn every_key(conn: &Conn) -> Result<Vec<(bytes::Bytes, Kind)>, Error> {
    let mut cursor = 0;
    let mut all = Vec::new();
    loop {
        let (next, keys) = conn.shared.node.scan_raw(cursor).await?;
        all.extend(keys);
        if next == 0 {
            return Ok(all);
        }
        cursor = next;
    }
}

async fn keys(conn: &mut Conn, args: Args) -> Frame {
    match every_key(conn).await {
        Ok(keys) => Frame::bulks(
            keys.into_iter()
                .map(|(key, _)| key)
                .filter(|key| crate::glob::matches(&args[1], key)),
        ),
        Err(err) => error_frame(&err),
    }
}

/// `RANDOMKEY`: the scan starts at a random step and takes a random key of
/// the first step that has any (a step is one shard of one member).
async fn randomkey(conn: &mut Conn, _: Args) -> Frame {
    let start = conn.shared.node.random_scan_cursor();
    let mut cursor = start;
    let mut wrapped = false;
    loop {
        let (next, keys) = match conn.shared.node.scan_raw(cursor).await {
            Ok(step) => step,
            Err(err) => return error_frame(&err),
        };
        if !keys.is_empty() {
            return Frame::Bulk(keys[fastrand::usize(..keys.len())].0.clone());
        }
        if next == 0 {
            if wrapped {
                return Frame::Null;
            }
            wrapped = true;
        }
        cursor = next;
        if wrapped && cursor >= start {
            return Frame::Null;
        }
    }
}

/// `FLUSHDB`/`FLUSHALL [ASYNC | SYNC]`: deletes every key of the cluster
/// through the normal delete path (so replicas and tombstones follow); not
/// atomic — keys written meanwhile may survive.
async fn flush(conn: &mut Conn, args: Args) -> Frame {
    match args.get(1) {
        None => {}
        Some(mode) if args.len() == 2 && (is(mode, "async") || is(mode, "sync")) => {}
        Some(_) => return Frame::err("syntax error"),
    }
    let keys = match every_key(conn).await {
        Ok(keys) => keys,
        Err(err) => return error_frame(&err),
    };
    for (key, _) in keys {
        if let Err(err) = conn.run(&key, Op::Del).await {
            return error_frame(&err);
        }
    }
    Frame::OK
}

/// The reply for a store answer of the wrong shape: a bug, reported, not a crash.
pub(super) fn unexpected(reply: &Reply) -> Frame {
    tracing::error!(?reply, "the store answered with an unexpected shape");
    Frame::err("internal error: unexpected reply shape")
}
