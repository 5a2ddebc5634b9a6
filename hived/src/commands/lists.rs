//! List commands: `LPUSH`, `RPUSH`, `LPUSHX`, `RPUSHX`, `LPOP`, `RPOP`
//! (with count), `LLEN`, `LINDEX`, `LSET`, `LRANGE`, `LTRIM`, `LREM`,
//! `LINSERT`, `LPOS`, `LMOVE`, `RPOPLPUSH`.

use bytes::Bytes;
use hive::Error;
use hive::raw::{End, Kind, Op, Reply};

use super::keys::unexpected;
use super::{Args, Command, Conn, error_frame, handler, int_arg, is};
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
    Command {
        name: "lpushx",
        arity: -3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "list",
        summary: "Prepends elements to a list only if it exists; returns its length.",
        run: handler!(pushx),
    },
    Command {
        name: "rpushx",
        arity: -3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "list",
        summary: "Appends elements to a list only if it exists; returns its length.",
        run: handler!(pushx),
    },
    Command {
        name: "ltrim",
        arity: 4,
        flags: &["write"],
        keys: (1, 1, 1),
        group: "list",
        summary: "Keeps only a range of a list's elements.",
        run: handler!(ltrim),
    },
    Command {
        name: "lrem",
        arity: 4,
        flags: &["write"],
        keys: (1, 1, 1),
        group: "list",
        summary: "Removes elements equal to a value; returns how many.",
        run: handler!(lrem),
    },
    Command {
        name: "linsert",
        arity: 5,
        flags: &["write", "denyoom"],
        keys: (1, 1, 1),
        group: "list",
        summary: "Inserts an element before or after a pivot; returns the length.",
        run: handler!(linsert),
    },
    Command {
        name: "lpos",
        arity: -3,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "list",
        summary: "Returns the index of matching elements (RANK, COUNT, MAXLEN).",
        run: handler!(lpos),
    },
    Command {
        name: "lmove",
        arity: 5,
        flags: &["write", "denyoom"],
        keys: (1, 2, 1),
        group: "list",
        summary: "Pops an element from one list and pushes it onto another.",
        run: handler!(lmove),
    },
    Command {
        name: "rpoplpush",
        arity: 3,
        flags: &["write", "denyoom"],
        keys: (1, 2, 1),
        group: "list",
        summary: "Pops from the tail of one list and pushes to the head of another.",
        run: handler!(lmove),
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
    match conn
        .run(
            &args[1],
            Op::PopMany {
                end,
                count: count.unsigned_abs(),
            },
        )
        .await
    {
        Ok(Reply::List(popped)) => Frame::bulks(popped),
        Ok(other) => unexpected(&other),
        // Redis answers a missing list with a null array.
        Err(Error::NotFound) => Frame::NullArray,
        Err(err) => error_frame(&err),
    }
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

async fn pushx(conn: &mut Conn, mut args: Args) -> Frame {
    let end = end_of(&args[0]);
    let values = args.split_off(2);
    match conn.run(&args[1], Op::PushExisting { end, values }).await {
        Ok(Reply::Count(len)) => Frame::count(len),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

async fn ltrim(conn: &mut Conn, args: Args) -> Frame {
    let (start, stop) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(start), Ok(stop)) => (start, stop),
        (Err(refusal), _) | (_, Err(refusal)) => return refusal,
    };
    match conn.run(&args[1], Op::LTrim { start, stop }).await {
        Ok(_) => Frame::OK,
        Err(err) => error_frame(&err),
    }
}

async fn lrem(conn: &mut Conn, args: Args) -> Frame {
    let count = match int_arg(&args[2]) {
        Ok(count) => count,
        Err(refusal) => return refusal,
    };
    let op = Op::LRem {
        count,
        element: args[3].clone(),
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Count(removed)) => Frame::count(removed),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

async fn linsert(conn: &mut Conn, args: Args) -> Frame {
    let before = if is(&args[2], "before") {
        true
    } else if is(&args[2], "after") {
        false
    } else {
        return Frame::err("syntax error");
    };
    let op = Op::LInsert {
        before,
        pivot: args[3].clone(),
        element: args[4].clone(),
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Integer(len)) => Frame::Integer(len),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

/// `LPOS key element [RANK rank] [COUNT count] [MAXLEN len]`, over the list as
/// read in one operation.
async fn lpos(conn: &mut Conn, args: Args) -> Frame {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0i64);
    let mut options = args[3..].iter();
    while let Some(option) = options.next() {
        let Some(value) = options.next() else {
            return Frame::err("syntax error");
        };
        let value = match int_arg(value) {
            Ok(value) => value,
            Err(refusal) => return refusal,
        };
        if is(option, "rank") {
            if value == 0 {
                return Frame::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the \
                     second ... or use negative to start from the end of the list",
                );
            }
            if value == i64::MIN {
                return Frame::err("value is out of range");
            }
            rank = value;
        } else if is(option, "count") {
            if value < 0 {
                return Frame::err("COUNT can't be negative");
            }
            count = Some(value);
        } else if is(option, "maxlen") {
            if value < 0 {
                return Frame::err("MAXLEN can't be negative");
            }
            maxlen = value;
        } else {
            return Frame::err("syntax error");
        }
    }
    let items = match conn.run(&args[1], Op::LRange { start: 0, stop: -1 }).await {
        Ok(Reply::List(items)) => items,
        Ok(other) => return unexpected(&other),
        Err(Error::NotFound) => Vec::new(),
        Err(err) => return error_frame(&err),
    };
    let found = positions(&items, &args[2], rank, count.unwrap_or(1), maxlen);
    match count {
        Some(_) => Frame::Array(found.into_iter().map(Frame::count).collect()),
        None => found
            .first()
            .map_or(Frame::Null, |&index| Frame::count(index)),
    }
}

/// Indexes (from the head) of elements equal to `element`: skipping the first
/// `rank - 1` matches (searching from the tail if `rank < 0`), at most `count`
/// (0: all), comparing at most `maxlen` elements (0: all).
fn positions(items: &[Bytes], element: &[u8], rank: i64, count: i64, maxlen: i64) -> Vec<usize> {
    let limit = |n: i64| match usize::try_from(n) {
        Ok(0) | Err(_) => usize::MAX,
        Ok(n) => n,
    };
    let skip = usize::try_from(rank.unsigned_abs() - 1).unwrap_or(usize::MAX);
    let indexes: Box<dyn Iterator<Item = usize>> = if rank > 0 {
        Box::new(0..items.len())
    } else {
        Box::new((0..items.len()).rev())
    };
    indexes
        .take(limit(maxlen))
        .filter(|&index| items[index][..] == *element)
        .skip(skip)
        .take(limit(count))
        .collect()
}

fn side(arg: &[u8]) -> Option<End> {
    if is(arg, "left") {
        Some(End::Front)
    } else if is(arg, "right") {
        Some(End::Back)
    } else {
        None
    }
}

/// `LMOVE source destination LEFT|RIGHT LEFT|RIGHT` and `RPOPLPUSH`. The two
/// keys may live on different nodes: the element is popped, then pushed; if
/// the push fails it is pushed back where it came from. Not atomic across
/// keys (a reader may see it in neither list for a moment).
async fn lmove(conn: &mut Conn, args: Args) -> Frame {
    let (from, to) = if args.len() == 3 {
        (End::Back, End::Front)
    } else {
        match (side(&args[3]), side(&args[4])) {
            (Some(from), Some(to)) => (from, to),
            _ => return Frame::err("syntax error"),
        }
    };
    let (source, destination) = (&args[1], &args[2]);
    // As Redis: a missing source answers null before the destination is
    // looked at; a destination of another type refuses before anything moves.
    match conn.run(source, Op::LLen).await {
        Ok(Reply::Count(0)) | Err(Error::NotFound) => return Frame::Null,
        Ok(_) => {}
        Err(err) => return error_frame(&err),
    }
    match conn.run(destination, Op::Type).await {
        Ok(Reply::Kind(None | Some(Kind::List))) => {}
        Ok(Reply::Kind(Some(_))) => return error_frame(&Error::WrongType),
        Ok(other) => return unexpected(&other),
        Err(err) => return error_frame(&err),
    }
    let element = match conn.run(source, Op::Pop { end: from }).await {
        Ok(Reply::Bytes(element)) => element,
        Ok(other) => return unexpected(&other),
        Err(Error::NotFound) => return Frame::Null,
        Err(err) => return error_frame(&err),
    };
    let push = Op::Push {
        end: to,
        values: vec![element.clone()],
    };
    match conn.run(destination, push).await {
        Ok(_) => Frame::Bulk(element),
        // The push may have landed: putting the element back could make two.
        Err(err @ Error::Indeterminate(_)) => error_frame(&err),
        Err(err) => {
            // The push surely did not run: the element goes back.
            let back = Op::Push {
                end: from,
                values: vec![element],
            };
            if let Err(lost) = conn.run(source, back).await {
                tracing::error!(%lost, "LMOVE could not return an element to its source list");
            }
            error_frame(&err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lpos_positions_follow_rank_count_and_maxlen() {
        let items: Vec<Bytes> = ["a", "b", "c", "1", "2", "3", "c", "c"]
            .into_iter()
            .map(Bytes::from)
            .collect();
        assert_eq!(positions(&items, b"c", 1, 1, 0), vec![2]);
        assert_eq!(positions(&items, b"c", 2, 1, 0), vec![6]);
        assert_eq!(positions(&items, b"c", -1, 1, 0), vec![7]);
        assert_eq!(positions(&items, b"c", 1, 0, 0), vec![2, 6, 7]);
        assert_eq!(positions(&items, b"c", -1, 2, 0), vec![7, 6]);
        assert_eq!(positions(&items, b"c", 1, 0, 3), vec![2]);
        assert_eq!(positions(&items, b"c", -1, 0, 1), vec![7]);
        assert_eq!(positions(&items, b"z", 1, 0, 0), Vec::<usize>::new());
    }
}
