//! String commands: `GET`, `SET` (`EX`, `PX`, `EXAT`, `PXAT`, `NX`, `XX`,
//! `GET`, `KEEPTTL`), `SETNX`, `SETEX`, `PSETEX`, `GETSET`, `MGET`, `MSET`,
//! `STRLEN`, `INCR`, `INCRBY`, `DECR`, `DECRBY`, `APPEND`, `GETDEL`, `GETEX`,
//! `INCRBYFLOAT`, `GETRANGE`, `SETRANGE`.

use std::collections::HashSet;

use bytes::Bytes;
use futures::future::join_all;
use hive::Error;
use hive::raw::{Op, Reply, SetCondition, SetTtl};

use super::keys::unexpected;
use super::{Args, Command, Conn, error_frame, float_arg, handler, int_arg, is, now_ms};
use crate::resp::Frame;

pub(super) static COMMANDS: &[Command] = &[
    Command {
        name: "get",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Returns the string value of a key.",
        run: handler!(get),
    },
    Command {
        name: "set",
        arity: -3,
        flags: &["write", "denyoom"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Sets the string value of a key (NX, XX, GET, EX, PX, EXAT, PXAT, KEEPTTL).",
        run: handler!(set),
    },
    Command {
        name: "setnx",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Sets a key's value only if the key does not exist; 1 if it did.",
        run: handler!(setnx),
    },
    Command {
        name: "getset",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Sets a key's value and returns the previous one.",
        run: handler!(getset),
    },
    Command {
        name: "incr",
        arity: 2,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Adds 1 to the integer value of a key.",
        run: handler!(incr),
    },
    Command {
        name: "decr",
        arity: 2,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Subtracts 1 from the integer value of a key.",
        run: handler!(incr),
    },
    Command {
        name: "incrby",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Adds an amount to the integer value of a key.",
        run: handler!(incr),
    },
    Command {
        name: "decrby",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Subtracts an amount from the integer value of a key.",
        run: handler!(incr),
    },
    Command {
        name: "append",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Appends to a key's string value; returns the new length.",
        run: handler!(append),
    },
    Command {
        name: "setex",
        arity: 4,
        flags: &["write", "denyoom"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Sets the string value and the expiry in seconds of a key.",
        run: handler!(setex),
    },
    Command {
        name: "psetex",
        arity: 4,
        flags: &["write", "denyoom"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Sets the string value and the expiry in milliseconds of a key.",
        run: handler!(setex),
    },
    Command {
        name: "mget",
        arity: -2,
        flags: &["readonly", "fast"],
        keys: (1, -1, 1),
        group: "string",
        summary: "Returns the string values of keys (nil for missing or non-string keys).",
        run: handler!(mget),
    },
    Command {
        name: "mset",
        arity: -3,
        flags: &["write", "denyoom"],
        keys: (1, -1, 2),
        group: "string",
        summary: "Sets several keys (key by key: not atomic across nodes).",
        run: handler!(mset),
    },
    Command {
        name: "strlen",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Returns the length of a string value.",
        run: handler!(strlen),
    },
    Command {
        name: "getdel",
        arity: 2,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Returns the string value of a key and deletes the key.",
        run: handler!(getdel),
    },
    Command {
        name: "getex",
        arity: -2,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Returns the string value of a key and sets or removes its TTL.",
        run: handler!(getex),
    },
    Command {
        name: "incrbyfloat",
        arity: 3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Adds a floating-point number to a key's value.",
        run: handler!(incrbyfloat),
    },
    Command {
        name: "getrange",
        arity: 4,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Returns a substring of a key's value.",
        run: handler!(getrange),
    },
    Command {
        name: "setrange",
        arity: 4,
        flags: &["write", "denyoom"],
        keys: (1, 1, 1),
        group: "string",
        summary: "Overwrites part of a key's value from an offset; returns the new length.",
        run: handler!(setrange),
    },
];

/// Redis's `proto-max-bulk-len`: the longest string `SETRANGE` may build.
const MAX_STRING: i64 = 512 * 1024 * 1024;

/// Runs `GET` on `key`: the value, `Null` if absent.
async fn value(conn: &Conn, key: &[u8]) -> Result<Option<bytes::Bytes>, Error> {
    match conn.run(key, Op::Get).await {
        Ok(Reply::Bytes(value)) => Ok(Some(value)),
        Ok(_) | Err(Error::NotFound) => Ok(None),
        Err(err) => Err(err),
    }
}

async fn get(conn: &mut Conn, args: Args) -> Frame {
    match value(conn, &args[1]).await {
        Ok(found) => found.map_or(Frame::Null, Frame::Bulk),
        Err(err) => error_frame(&err),
    }
}

/// Stores `value` at `key` with an optional TTL; `OK` or the error.
async fn store(conn: &Conn, args: &Args, ttl_ms: Option<u64>) -> Frame {
    let op = Op::Set {
        value: args[2].clone(),
        ttl_ms,
    };
    match conn.run(&args[1], op).await {
        Ok(_) => Frame::OK,
        Err(err) => error_frame(&err),
    }
}

/// Turns an expiry amount into a TTL in ms; `None` if it is not positive or
/// overflows (Redis: "invalid expire time").
fn ttl_of(amount: i64, unit_ms: i64, absolute: bool) -> Option<u64> {
    let ms = amount.checked_mul(unit_ms)?;
    let ms = if absolute {
        ms.checked_sub(now_ms())?
    } else {
        ms
    };
    if amount <= 0 {
        return None;
    }
    // An absolute time already past leaves the smallest TTL: gone at once.
    u64::try_from(ms.max(1)).ok()
}

/// The unit of an expiry option: milliseconds per unit and whether it is an
/// absolute time (`EX`, `PX`, `EXAT`, `PXAT`); `None` for another word.
fn expiry_unit(option: &[u8]) -> Option<(i64, bool)> {
    [
        ("ex", 1000, false),
        ("px", 1, false),
        ("exat", 1000, true),
        ("pxat", 1, true),
    ]
    .into_iter()
    .find(|(word, _, _)| is(option, word))
    .map(|(_, unit_ms, absolute)| (unit_ms, absolute))
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]`.
/// As in Redis, every option is read (and conflicts reported as syntax
/// errors) before the expiry's number is checked.
async fn set(conn: &mut Conn, args: Args) -> Frame {
    let mut condition = SetCondition::Always;
    let (mut get, mut keep_ttl) = (false, false);
    let mut expiry: Option<(i64, bool, &bytes::Bytes)> = None;
    let mut options = args[3..].iter();
    while let Some(option) = options.next() {
        let unit = expiry_unit(option);
        let conflict = if let Some((unit_ms, absolute)) = unit {
            let amount = options.next();
            // Repeating the same option is allowed (the last wins), mixing
            // kinds is not.
            let other_kind = expiry.is_some_and(|(u, a, _)| (u, a) != (unit_ms, absolute));
            let conflict = other_kind || keep_ttl || amount.is_none();
            if let Some(amount) = amount {
                expiry = Some((unit_ms, absolute, amount));
            }
            conflict
        } else if is(option, "nx") {
            let conflict = condition == SetCondition::IfPresent;
            condition = SetCondition::IfAbsent;
            conflict
        } else if is(option, "xx") {
            let conflict = condition == SetCondition::IfAbsent;
            condition = SetCondition::IfPresent;
            conflict
        } else if is(option, "get") {
            get = true;
            false
        } else if is(option, "keepttl") {
            keep_ttl = true;
            expiry.is_some()
        } else {
            true
        };
        if conflict {
            return Frame::err("syntax error");
        }
    }
    let ttl = match expiry {
        None if keep_ttl => SetTtl::Keep,
        None => SetTtl::None,
        Some((unit_ms, absolute, amount)) => {
            let amount = match int_arg(amount) {
                Ok(amount) => amount,
                Err(refusal) => return refusal,
            };
            match ttl_of(amount, unit_ms, absolute) {
                Some(ms) => SetTtl::Ms(ms),
                None => return Frame::err("invalid expire time in 'set' command"),
            }
        }
    };
    let op = Op::SetWith {
        value: args[2].clone(),
        ttl,
        condition,
        get,
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Written { old, .. }) if get => old.map_or(Frame::Null, Frame::Bulk),
        Ok(Reply::Written { written: true, .. }) => Frame::OK,
        Ok(Reply::Written { written: false, .. }) => Frame::Null,
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

/// `SETNX key value`: 1 if it stored, 0 if the key existed.
async fn setnx(conn: &mut Conn, args: Args) -> Frame {
    let op = Op::SetWith {
        value: args[2].clone(),
        ttl: SetTtl::None,
        condition: SetCondition::IfAbsent,
        get: false,
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Written { written, .. }) => Frame::Integer(written.into()),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

/// `GETSET key value`: stores and returns the previous string.
async fn getset(conn: &mut Conn, args: Args) -> Frame {
    let op = Op::SetWith {
        value: args[2].clone(),
        ttl: SetTtl::None,
        condition: SetCondition::Always,
        get: true,
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Written { old, .. }) => old.map_or(Frame::Null, Frame::Bulk),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

/// `INCR`, `DECR`, `INCRBY`, `DECRBY`.
async fn incr(conn: &mut Conn, args: Args) -> Frame {
    let name = args[0].to_ascii_lowercase();
    let delta = match name.as_slice() {
        b"incr" => Ok(1),
        b"decr" => Ok(-1),
        b"incrby" => int_arg(&args[2]),
        _ => int_arg(&args[2]).and_then(|delta| {
            delta
                .checked_neg()
                .ok_or_else(|| Frame::err("decrement would overflow"))
        }),
    };
    let delta = match delta {
        Ok(delta) => delta,
        Err(refusal) => return refusal,
    };
    match conn.run(&args[1], Op::IncrBy { delta }).await {
        Ok(Reply::Integer(value)) => Frame::Integer(value),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

async fn append(conn: &mut Conn, args: Args) -> Frame {
    let op = Op::Append {
        value: args[2].clone(),
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Count(len)) => Frame::count(len),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

async fn setex(conn: &mut Conn, args: Args) -> Frame {
    let unit_ms = if is(&args[0], "setex") { 1000 } else { 1 };
    let amount = match int_arg(&args[2]) {
        Ok(amount) => amount,
        Err(refusal) => return refusal,
    };
    let Some(ttl_ms) = ttl_of(amount, unit_ms, false) else {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        return Frame::err(format!("invalid expire time in '{name}' command"));
    };
    let args = vec![args[0].clone(), args[1].clone(), args[3].clone()];
    store(conn, &args, Some(ttl_ms)).await
}

/// Keys of one `MGET` or `MSET` in flight at once: in a cluster each is a
/// round trip to its primary, and concurrent ones share batched requests.
const MULTI_KEY_IN_FLIGHT: usize = 128;

async fn mget(conn: &mut Conn, args: Args) -> Frame {
    let conn = &*conn;
    let mut values = Vec::with_capacity(args.len() - 1);
    for keys in args[1..].chunks(MULTI_KEY_IN_FLIGHT) {
        let mut reads = Vec::with_capacity(keys.len());
        for key in keys {
            reads.push(value(conn, key));
        }
        for read in join_all(reads).await {
            values.push(match read {
                Ok(Some(value)) => Frame::Bulk(value),
                Ok(None) | Err(Error::WrongType) => Frame::Null,
                Err(err) => return error_frame(&err),
            });
        }
    }
    Frame::Array(values)
}

async fn mset(conn: &mut Conn, args: Args) -> Frame {
    if args.len().is_multiple_of(2) {
        return Frame::err("wrong number of arguments for 'mset' command");
    }
    let pairs: Vec<&[Bytes]> = args[1..].chunks(2).collect();
    // A key named twice keeps its last value: such a command runs in order.
    let distinct = pairs.iter().map(|pair| &pair[0]).collect::<HashSet<_>>();
    let in_flight = if distinct.len() == pairs.len() {
        MULTI_KEY_IN_FLIGHT
    } else {
        1
    };
    let conn = &*conn;
    for pairs in pairs.chunks(in_flight) {
        let mut writes = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let op = Op::Set {
                value: pair[1].clone(),
                ttl_ms: None,
            };
            writes.push(conn.run(&pair[0], op));
        }
        if let Some(Err(err)) = join_all(writes).await.into_iter().find(Result::is_err) {
            return error_frame(&err);
        }
    }
    Frame::OK
}

async fn strlen(conn: &mut Conn, args: Args) -> Frame {
    match conn.run(&args[1], Op::Get).await {
        Ok(Reply::Bytes(value)) => Frame::count(value.len()),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Integer(0),
        Err(err) => error_frame(&err),
    }
}

/// Answers a read of a string value: the bulk, or null if the key is absent.
fn bulk_or_null(outcome: Result<Reply, Error>) -> Frame {
    match outcome {
        Ok(Reply::Bytes(value)) => Frame::Bulk(value),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Null,
        Err(err) => error_frame(&err),
    }
}

async fn getdel(conn: &mut Conn, args: Args) -> Frame {
    bulk_or_null(conn.run(&args[1], Op::GetDel).await)
}

/// `GETEX key [EX s | PX ms | EXAT s | PXAT ms | PERSIST]`; a deadline already
/// past deletes the key after reading it, as in Redis.
async fn getex(conn: &mut Conn, args: Args) -> Frame {
    let mut ttl = SetTtl::Keep;
    let mut expiry: Option<(i64, bool, &bytes::Bytes)> = None;
    let mut options = args[2..].iter();
    while let Some(option) = options.next() {
        let unit = expiry_unit(option);
        let chosen = expiry.is_some() || ttl != SetTtl::Keep;
        match unit {
            Some((unit_ms, absolute)) if !chosen => match options.next() {
                Some(amount) => expiry = Some((unit_ms, absolute, amount)),
                None => return Frame::err("syntax error"),
            },
            None if is(option, "persist") && !chosen => ttl = SetTtl::None,
            _ => return Frame::err("syntax error"),
        }
    }
    let op = match expiry {
        None => Op::GetEx { ttl },
        Some((unit_ms, absolute, amount)) => {
            // Redis looks the key up before it reads the expiry: a missing
            // key is null, another type WRONGTYPE, whatever the number says.
            let valid = int_arg(amount).map_err(Some).and_then(|amount| {
                amount
                    .checked_mul(unit_ms)
                    .filter(|_| amount > 0)
                    .ok_or(None)
            });
            let ms = match valid {
                Ok(ms) => ms,
                Err(refusal) => {
                    return match value(conn, &args[1]).await {
                        Ok(None) => Frame::Null,
                        Ok(Some(_)) => refusal.unwrap_or_else(|| {
                            Frame::err("invalid expire time in 'getex' command")
                        }),
                        Err(err) => error_frame(&err),
                    };
                }
            };
            let remaining = if absolute {
                ms.saturating_sub(now_ms())
            } else {
                ms
            };
            match u64::try_from(remaining) {
                Ok(remaining) if remaining > 0 => Op::GetEx {
                    ttl: SetTtl::Ms(remaining),
                },
                _ => Op::GetDel,
            }
        }
    };
    match conn.run(&args[1], op).await {
        Err(Error::InvalidArgument(_)) => Frame::err("invalid expire time in 'getex' command"),
        outcome => bulk_or_null(outcome),
    }
}

async fn incrbyfloat(conn: &mut Conn, args: Args) -> Frame {
    let delta = match float_arg(&args[2]) {
        Ok(delta) => delta,
        // Redis checks the key's type before the increment.
        Err(refusal) => {
            return match value(conn, &args[1]).await {
                Err(err) => error_frame(&err),
                Ok(_) => refusal,
            };
        }
    };
    match conn.run(&args[1], Op::IncrByFloat { delta }).await {
        Ok(Reply::Bytes(value)) => Frame::Bulk(value),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

/// `GETRANGE key start end`, with Redis's clamping of negative and
/// out-of-range offsets; an absent key reads as the empty string.
async fn getrange(conn: &mut Conn, args: Args) -> Frame {
    let (start, end) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(start), Ok(end)) => (start, end),
        (Err(refusal), _) | (_, Err(refusal)) => return refusal,
    };
    let value = match value(conn, &args[1]).await {
        Ok(value) => value.unwrap_or_default(),
        Err(err) => return error_frame(&err),
    };
    Frame::Bulk(substring(&value, start, end))
}

/// The bytes of `value` from `start` to `end` inclusive, as Redis's `GETRANGE`
/// reads them.
fn substring(value: &bytes::Bytes, start: i64, end: i64) -> bytes::Bytes {
    let len = i64::try_from(value.len()).unwrap_or(i64::MAX);
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return bytes::Bytes::new();
    }
    let from_end = |offset: i64| {
        if offset < 0 {
            (len + offset).max(0)
        } else {
            offset
        }
    };
    let (start, end) = (from_end(start), from_end(end).min(len - 1));
    if start > end {
        return bytes::Bytes::new();
    }
    // Both lie within 0..len here.
    value.slice(start as usize..=end as usize)
}

async fn setrange(conn: &mut Conn, args: Args) -> Frame {
    let offset = match int_arg(&args[2]) {
        Ok(offset) if offset >= 0 => offset,
        Ok(_) => return Frame::err("offset is out of range"),
        Err(refusal) => return refusal,
    };
    let patch = args[3].clone();
    let too_long = i64::try_from(patch.len())
        .ok()
        .and_then(|len| offset.checked_add(len))
        .is_none_or(|end| end > MAX_STRING);
    if too_long && !patch.is_empty() {
        return Frame::err("string exceeds maximum allowed size (proto-max-bulk-len)");
    }
    let op = Op::SetRange {
        offset: offset.unsigned_abs(),
        value: patch,
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Count(len)) => Frame::count(len),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getrange_clamps_like_redis() {
        let value = bytes::Bytes::from_static(b"This is a string");
        let read = |start, end| substring(&value, start, end);
        assert_eq!(read(0, 3), "This");
        assert_eq!(read(-3, -1), "ing");
        assert_eq!(read(0, -1), "This is a string");
        assert_eq!(read(10, 100), "string");
        assert_eq!(read(-100, 1), "Th");
        assert_eq!(read(5, 2), "");
        assert_eq!(read(-1, -5), "");
        assert_eq!(substring(&bytes::Bytes::new(), 0, -1), "");
    }
}
