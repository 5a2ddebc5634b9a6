//! Generic key commands: `DEL`, `UNLINK`, `EXISTS`, `TYPE`, the `EXPIRE`
//! family, `TTL`, `PTTL`, `PERSIST`.
//!
//! Multi-key commands run key by key (each key on its own primary); they are
//! not atomic across keys.

use hive::Error;
use hive::raw::{Kind, Op, Reply};

use super::{Args, Command, Conn, error_frame, handler, int_arg, now_ms};
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
        name: "expire",
        arity: 3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "generic",
        summary: "Sets a key's time to live in seconds.",
        run: handler!(expire),
    },
    Command {
        name: "pexpire",
        arity: 3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "generic",
        summary: "Sets a key's time to live in milliseconds.",
        run: handler!(expire),
    },
    Command {
        name: "expireat",
        arity: 3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "generic",
        summary: "Expires a key at a Unix time in seconds.",
        run: handler!(expire),
    },
    Command {
        name: "pexpireat",
        arity: 3,
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

/// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`: a time to live or deadline
/// already past deletes the key, as in Redis.
async fn expire(conn: &mut Conn, args: Args) -> Frame {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let invalid = || Frame::err(format!("invalid expire time in '{name}' command"));
    let amount = match int_arg(&args[2]) {
        Ok(amount) => amount,
        Err(refusal) => return refusal,
    };
    let ttl_ms = match name.as_str() {
        "expire" => amount.checked_mul(1000),
        "pexpire" => Some(amount),
        "expireat" => amount
            .checked_mul(1000)
            .map(|at| at.saturating_sub(now_ms())),
        _ => Some(amount.saturating_sub(now_ms())),
    };
    let Some(ttl_ms) = ttl_ms else {
        return invalid();
    };
    let op = match u64::try_from(ttl_ms) {
        Ok(ttl_ms) if ttl_ms > 0 => Op::Expire { ttl_ms },
        _ => Op::Del,
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

async fn persist(conn: &mut Conn, args: Args) -> Frame {
    match conn.run(&args[1], Op::Persist).await {
        Ok(Reply::Bool(had)) => Frame::Integer(had.into()),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Integer(0),
        Err(err) => error_frame(&err),
    }
}

/// The reply for a store answer of the wrong shape: a bug, reported, not a crash.
pub(super) fn unexpected(reply: &Reply) -> Frame {
    tracing::error!(?reply, "the store answered with an unexpected shape");
    Frame::err("internal error: unexpected reply shape")
}
