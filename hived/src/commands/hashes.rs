//! Hash commands: `HSET`, `HMSET`, `HGET`, `HMGET`, `HGETALL`, `HKEYS`,
//! `HVALS`, `HLEN`, `HEXISTS`, `HDEL`, `HSTRLEN`.

use hive::Error;
use hive::raw::{Op, Reply};

use super::keys::unexpected;
use super::{Args, Command, Conn, count_true, error_frame, handler};
use crate::resp::Frame;

pub(super) static COMMANDS: &[Command] = &[
    Command {
        name: "hset",
        arity: -4,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Sets hash fields; returns how many were new.",
        run: handler!(hset),
    },
    Command {
        name: "hmset",
        arity: -4,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Sets hash fields; returns OK.",
        run: handler!(hset),
    },
    Command {
        name: "hget",
        arity: 3,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Returns the value of a hash field.",
        run: handler!(hget),
    },
    Command {
        name: "hmget",
        arity: -3,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Returns the values of hash fields.",
        run: handler!(hmget),
    },
    Command {
        name: "hgetall",
        arity: 2,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Returns every field and value of a hash.",
        run: handler!(hgetall),
    },
    Command {
        name: "hkeys",
        arity: 2,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Returns every field of a hash.",
        run: handler!(hgetall),
    },
    Command {
        name: "hvals",
        arity: 2,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Returns every value of a hash.",
        run: handler!(hgetall),
    },
    Command {
        name: "hlen",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Returns the number of fields of a hash.",
        run: handler!(hlen),
    },
    Command {
        name: "hexists",
        arity: 3,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Returns 1 if a hash field exists.",
        run: handler!(hexists),
    },
    Command {
        name: "hdel",
        arity: -3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Deletes hash fields; returns how many existed.",
        run: handler!(hdel),
    },
    Command {
        name: "hstrlen",
        arity: 3,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Returns the length of a hash field's value.",
        run: handler!(hstrlen),
    },
];

async fn hset(conn: &mut Conn, args: Args) -> Frame {
    if !args.len().is_multiple_of(2) {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        return Frame::err(format!("wrong number of arguments for '{name}' command"));
    }
    let mut added = 0;
    for pair in args[2..].chunks(2) {
        let op = Op::HSet {
            field: pair[0].clone(),
            value: pair[1].clone(),
            ttl_ms: None,
        };
        match conn.run(&args[1], op).await {
            Ok(Reply::Bool(new)) => added += i64::from(new),
            Ok(other) => return unexpected(&other),
            Err(err) => return error_frame(&err),
        }
    }
    if args[0].eq_ignore_ascii_case(b"hmset") {
        Frame::OK
    } else {
        Frame::Integer(added)
    }
}

/// The value of `field`, `None` if the key or field is absent.
async fn field(
    conn: &Conn,
    key: &[u8],
    field: &bytes::Bytes,
) -> Result<Option<bytes::Bytes>, Error> {
    match conn
        .run(
            key,
            Op::HGet {
                field: field.clone(),
            },
        )
        .await
    {
        Ok(Reply::Bytes(value)) => Ok(Some(value)),
        Ok(_) | Err(Error::NotFound) => Ok(None),
        Err(err) => Err(err),
    }
}

async fn hget(conn: &mut Conn, args: Args) -> Frame {
    match field(conn, &args[1], &args[2]).await {
        Ok(value) => value.map_or(Frame::Null, Frame::Bulk),
        Err(err) => error_frame(&err),
    }
}

async fn hmget(conn: &mut Conn, args: Args) -> Frame {
    let mut values = Vec::with_capacity(args.len() - 2);
    for name in &args[2..] {
        match field(conn, &args[1], name).await {
            Ok(value) => values.push(value.map_or(Frame::Null, Frame::Bulk)),
            Err(err) => return error_frame(&err),
        }
    }
    Frame::Array(values)
}

/// `HGETALL`, `HKEYS` and `HVALS`: one read of the whole hash.
async fn hgetall(conn: &mut Conn, args: Args) -> Frame {
    let pairs = match conn.run(&args[1], Op::HGetAll).await {
        Ok(Reply::Pairs(pairs)) => pairs,
        Ok(other) => return unexpected(&other),
        Err(Error::NotFound) => Vec::new(),
        Err(err) => return error_frame(&err),
    };
    if args[0].eq_ignore_ascii_case(b"hkeys") {
        Frame::bulks(pairs.into_iter().map(|(field, _)| field))
    } else if args[0].eq_ignore_ascii_case(b"hvals") {
        Frame::bulks(pairs.into_iter().map(|(_, value)| value))
    } else {
        Frame::Map(
            pairs
                .into_iter()
                .map(|(field, value)| (Frame::Bulk(field), Frame::Bulk(value)))
                .collect(),
        )
    }
}

async fn hlen(conn: &mut Conn, args: Args) -> Frame {
    match conn.run(&args[1], Op::HLen).await {
        Ok(Reply::Count(len)) => Frame::count(len),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Integer(0),
        Err(err) => error_frame(&err),
    }
}

async fn hexists(conn: &mut Conn, args: Args) -> Frame {
    match field(conn, &args[1], &args[2]).await {
        Ok(value) => Frame::Integer(value.is_some().into()),
        Err(err) => error_frame(&err),
    }
}

async fn hdel(conn: &mut Conn, args: Args) -> Frame {
    count_true(conn, &args[1], &args[2..], |field| Op::HDel { field }).await
}

async fn hstrlen(conn: &mut Conn, args: Args) -> Frame {
    match field(conn, &args[1], &args[2]).await {
        Ok(value) => Frame::count(value.map_or(0, |value| value.len())),
        Err(err) => error_frame(&err),
    }
}
