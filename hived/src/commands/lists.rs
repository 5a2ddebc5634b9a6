//! List commands: `LPUSH`, `RPUSH`, `LPOP`, `RPOP` (with count), `LLEN`,
//! `LINDEX`, `LSET`, `LRANGE`.

use hive::Error;
use hive::raw::{End, Op, Reply};

use super::keys::unexpected;
use super::{Args, Command, Conn, error_frame, handler, int_arg};
use crate::resp::Frame;

pub(super) static COMMANDS: &[Command] = &[
    Command {
        name: "lpush",
        arity: -3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "list",
        summary: "Prepends elements to a list; returns its length.",
        run: handler!(push),
    },
    Command {
        name: "rpush",
        arity: -3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "list",
        summary: "Appends elements to a list; returns its length.",
        run: handler!(push),
    },
    Command {
        name: "lpop",
        arity: -2,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "list",
        summary: "Removes and returns the first elements of a list.",
        run: handler!(pop),
    },
    Command {
        name: "rpop",
        arity: -2,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "list",
        summary: "Removes and returns the last elements of a list.",
        run: handler!(pop),
    },
    Command {
        name: "llen",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "list",
        summary: "Returns the length of a list.",
        run: handler!(llen),
    },
    Command {
        name: "lindex",
        arity: 3,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "list",
        summary: "Returns the element at an index of a list.",
        run: handler!(lindex),
    },
    Command {
        name: "lset",
        arity: 4,
        flags: &["write", "denyoom"],
        keys: (1, 1, 1),
        group: "list",
        summary: "Replaces the element at an index of a list.",
        run: handler!(lset),
    },
    Command {
        name: "lrange",
        arity: 4,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "list",
        summary: "Returns a range of a list's elements.",
        run: handler!(lrange),
    },
];

fn end_of(name: &[u8]) -> End {
    if name[0].eq_ignore_ascii_case(&b'l') {
        End::Front
    } else {
        End::Back
    }
}

async fn push(conn: &mut Conn, mut args: Args) -> Frame {
    let end = end_of(&args[0]);
    let values = args.split_off(2);
    match conn.run(&args[1], Op::Push { end, values }).await {
        Ok(Reply::Count(len)) => Frame::count(len),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

async fn pop(conn: &mut Conn, args: Args) -> Frame {
    let end = end_of(&args[0]);
    let count = match args.get(2).map(|count| int_arg(count)) {
        None => None,
        Some(Ok(count)) if count >= 0 => Some(count),
        Some(_) => return Frame::err("value is out of range, must be positive"),
    };
    if args.len() > 3 {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        return Frame::err(format!("wrong number of arguments for '{name}' command"));
    }
    let Some(count) = count else {
        return match conn.run(&args[1], Op::Pop { end }).await {
            Ok(Reply::Bytes(value)) => Frame::Bulk(value),
            Ok(other) => unexpected(&other),
            Err(Error::NotFound) => Frame::Null,
            Err(err) => error_frame(&err),
        };
    };
    // With a count: one pop per element (not atomic against concurrent pushes).
    let mut popped = Vec::new();
    while (popped.len() as i64) < count {
        match conn.run(&args[1], Op::Pop { end }).await {
            Ok(Reply::Bytes(value)) => popped.push(Frame::Bulk(value)),
            Ok(other) => return unexpected(&other),
            Err(Error::NotFound) => break,
            Err(err) => return error_frame(&err),
        }
    }
    if popped.is_empty() {
        // Redis answers a missing list with a null array, an existing one
        // asked for 0 elements with an empty array, another type with
        // WRONGTYPE (lists are removed when emptied: length 0 means missing).
        return match conn.run(&args[1], Op::LLen).await {
            Ok(Reply::Count(0)) | Err(Error::NotFound) => Frame::NullArray,
            Ok(_) => Frame::Array(Vec::new()),
            Err(err) => error_frame(&err),
        };
    }
    Frame::Array(popped)
}

async fn llen(conn: &mut Conn, args: Args) -> Frame {
    match conn.run(&args[1], Op::LLen).await {
        Ok(Reply::Count(len)) => Frame::count(len),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Integer(0),
        Err(err) => error_frame(&err),
    }
}

async fn lindex(conn: &mut Conn, args: Args) -> Frame {
    let index = match int_arg(&args[2]) {
        Ok(index) => index,
        Err(refusal) => return refusal,
    };
    match conn.run(&args[1], Op::LIndex { index }).await {
        Ok(Reply::Bytes(value)) => Frame::Bulk(value),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Null,
        Err(err) => error_frame(&err),
    }
}

async fn lset(conn: &mut Conn, args: Args) -> Frame {
    let index = match int_arg(&args[2]) {
        Ok(index) => index,
        Err(refusal) => return refusal,
    };
    let op = Op::LSet {
        index,
        value: args[3].clone(),
    };
    match conn.run(&args[1], op).await {
        Ok(_) => Frame::OK,
        // The store says NotFound for both; Redis tells them apart.
        Err(Error::NotFound) => match conn.run(&args[1], Op::Exists).await {
            Ok(Reply::Bool(true)) => Frame::err("index out of range"),
            Ok(_) => Frame::err("no such key"),
            Err(err) => error_frame(&err),
        },
        Err(err) => error_frame(&err),
    }
}

async fn lrange(conn: &mut Conn, args: Args) -> Frame {
    let (start, stop) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(start), Ok(stop)) => (start, stop),
        (Err(refusal), _) | (_, Err(refusal)) => return refusal,
    };
    match conn.run(&args[1], Op::LRange { start, stop }).await {
        Ok(Reply::List(items)) => Frame::bulks(items),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Array(Vec::new()),
        Err(err) => error_frame(&err),
    }
}
