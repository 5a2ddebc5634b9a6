//! String commands: `GET`, `SET` (`EX`, `PX`, `EXAT`, `PXAT`), `SETEX`,
//! `PSETEX`, `MGET`, `MSET`, `STRLEN`.

use hive::Error;
use hive::raw::{Op, Reply};

use super::keys::unexpected;
use super::{Args, Command, Conn, error_frame, handler, int_arg, is, now_ms};
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
        summary: "Sets the string value of a key, with an optional expiry (EX, PX, EXAT, PXAT).",
        run: handler!(set),
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
];

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

async fn set(conn: &mut Conn, args: Args) -> Frame {
    let mut ttl_ms = None;
    let mut options = args[3..].iter();
    while let Some(option) = options.next() {
        let (unit_ms, absolute) = if is(option, "ex") {
            (1000, false)
        } else if is(option, "px") {
            (1, false)
        } else if is(option, "exat") {
            (1000, true)
        } else if is(option, "pxat") {
            (1, true)
        } else if ["nx", "xx", "get", "keepttl"]
            .iter()
            .any(|word| is(option, word))
        {
            return Frame::err(format!(
                "SET {} is not supported by hived yet",
                String::from_utf8_lossy(option).to_ascii_uppercase()
            ));
        } else {
            return Frame::err("syntax error");
        };
        if ttl_ms.is_some() {
            return Frame::err("syntax error");
        }
        let Some(amount) = options.next() else {
            return Frame::err("syntax error");
        };
        let amount = match int_arg(amount) {
            Ok(amount) => amount,
            Err(refusal) => return refusal,
        };
        match ttl_of(amount, unit_ms, absolute) {
            Some(ms) => ttl_ms = Some(ms),
            None => return Frame::err("invalid expire time in 'set' command"),
        }
    }
    store(conn, &args, ttl_ms).await
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

async fn mget(conn: &mut Conn, args: Args) -> Frame {
    let mut values = Vec::with_capacity(args.len() - 1);
    for key in &args[1..] {
        values.push(match value(conn, key).await {
            Ok(Some(value)) => Frame::Bulk(value),
            Ok(None) | Err(Error::WrongType) => Frame::Null,
            Err(err) => return error_frame(&err),
        });
    }
    Frame::Array(values)
}

async fn mset(conn: &mut Conn, args: Args) -> Frame {
    if args.len().is_multiple_of(2) {
        return Frame::err("wrong number of arguments for 'mset' command");
    }
    for pair in args[1..].chunks(2) {
        let op = Op::Set {
            value: pair[1].clone(),
            ttl_ms: None,
        };
        if let Err(err) = conn.run(&pair[0], op).await {
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
