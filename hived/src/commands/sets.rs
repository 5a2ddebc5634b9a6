//! Set commands: `SADD`, `SREM`, `SISMEMBER`, `SMISMEMBER`, `SMEMBERS`,
//! `SCARD`, `SPOP`, `SRANDMEMBER`, `SSCAN`, `SINTER`, `SUNION`, `SDIFF` and
//! their `*STORE` forms, and `HIVE.SEXPIREMEMBER` for a TTL on one member.
//!
//! The set algebra reads each key where it lives and computes here, so keys
//! on different nodes work; it is not atomic across keys.

use std::collections::BTreeSet;

use bytes::Bytes;
use hive::Error;
use hive::raw::{Op, Reply};

use super::hashes::pick;
use super::keys::unexpected;
use super::scan::{Extra, Scan};
use super::{Args, Command, Conn, bound_reply, error_frame, handler, int_arg, scan};
use crate::resp::{Frame, bulk_len};

pub(super) static COMMANDS: &[Command] = &[
    Command {
        name: "sadd",
        arity: -3,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "set",
        summary: "Adds members to a set; returns how many were new.",
        run: handler!(sadd),
    },
    Command {
        name: "srem",
        arity: -3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "set",
        summary: "Removes members from a set; returns how many were there.",
        run: handler!(srem),
    },
    Command {
        name: "sismember",
        arity: 3,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "set",
        summary: "Returns 1 if a member is in a set.",
        run: handler!(sismember),
    },
    Command {
        name: "smismember",
        arity: -3,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "set",
        summary: "Returns, for each member, 1 if it is in the set.",
        run: handler!(sismember),
    },
    Command {
        name: "smembers",
        arity: 2,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "set",
        summary: "Returns every member of a set.",
        run: handler!(smembers),
    },
    Command {
        name: "scard",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "set",
        summary: "Returns the number of members of a set.",
        run: handler!(scard),
    },
    Command {
        name: "hive.sexpiremember",
        arity: 4,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "set",
        summary: "Gives one member of a set a time to live in seconds; 1 if set, 0 if no such member.",
        run: handler!(sexpire_member),
    },
    Command {
        name: "spop",
        arity: -2,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "set",
        summary: "Removes and returns random members of a set.",
        run: handler!(spop),
    },
    Command {
        name: "srandmember",
        arity: -2,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "set",
        summary: "Returns random members of a set (a negative count may repeat them).",
        run: handler!(srandmember),
    },
    Command {
        name: "sscan",
        arity: -3,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "set",
        summary: "Iterates a set's members (MATCH, COUNT).",
        run: handler!(sscan),
    },
    Command {
        name: "sinter",
        arity: -2,
        flags: &["readonly"],
        keys: (1, -1, 1),
        group: "set",
        summary: "Returns the intersection of sets.",
        run: handler!(algebra),
    },
    Command {
        name: "sinterstore",
        arity: -3,
        flags: &["write", "denyoom"],
        keys: (1, -1, 1),
        group: "set",
        summary: "Stores the inter of sets in a key; returns its size.",
        run: handler!(algebra),
    },
    Command {
        name: "sunion",
        arity: -2,
        flags: &["readonly"],
        keys: (1, -1, 1),
        group: "set",
        summary: "Returns the union of sets.",
        run: handler!(algebra),
    },
    Command {
        name: "sunionstore",
        arity: -3,
        flags: &["write", "denyoom"],
        keys: (1, -1, 1),
        group: "set",
        summary: "Stores the union of sets in a key; returns its size.",
        run: handler!(algebra),
    },
    Command {
        name: "sdiff",
        arity: -2,
        flags: &["readonly"],
        keys: (1, -1, 1),
        group: "set",
        summary: "Returns the members of the first set missing from the others.",
        run: handler!(algebra),
    },
    Command {
        name: "sdiffstore",
        arity: -3,
        flags: &["write", "denyoom"],
        keys: (1, -1, 1),
        group: "set",
        summary: "Stores the diff of sets in a key; returns its size.",
        run: handler!(algebra),
    },
];

async fn sadd(conn: &mut Conn, mut args: Args) -> Frame {
    let members = args.split_off(2);
    match conn.run(&args[1], Op::SAdd { members }).await {
        Ok(Reply::Count(added)) => Frame::count(added),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

async fn srem(conn: &mut Conn, mut args: Args) -> Frame {
    let members = args.split_off(2);
    match conn.run(&args[1], Op::SRemMany { members }).await {
        Ok(Reply::Count(removed)) => Frame::count(removed),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Integer(0),
        Err(err) => error_frame(&err),
    }
}

/// `SISMEMBER` (one answer) and `SMISMEMBER` (one per member).
async fn sismember(conn: &mut Conn, args: Args) -> Frame {
    let mut answers = Vec::with_capacity(args.len() - 2);
    for member in &args[2..] {
        match conn
            .run(
                &args[1],
                Op::SIsMember {
                    member: member.clone(),
                },
            )
            .await
        {
            Ok(Reply::Bool(is)) => answers.push(Frame::Integer(is.into())),
            Ok(other) => return unexpected(&other),
            Err(Error::NotFound) => answers.push(Frame::Integer(0)),
            Err(err) => return error_frame(&err),
        }
    }
    if args[0].eq_ignore_ascii_case(b"sismember") {
        answers.pop().unwrap_or(Frame::Integer(0))
    } else {
        Frame::Array(answers)
    }
}

async fn smembers(conn: &mut Conn, args: Args) -> Frame {
    match conn.run(&args[1], Op::SMembers).await {
        Ok(Reply::List(members)) => Frame::Set(members.into_iter().map(Frame::Bulk).collect()),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Set(Vec::new()),
        Err(err) => error_frame(&err),
    }
}

async fn scard(conn: &mut Conn, args: Args) -> Frame {
    match conn.run(&args[1], Op::SCard).await {
        Ok(Reply::Count(len)) => Frame::count(len),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Integer(0),
        Err(err) => error_frame(&err),
    }
}

async fn sexpire_member(conn: &mut Conn, args: Args) -> Frame {
    let seconds = match int_arg(&args[3]) {
        Ok(seconds) => seconds,
        Err(refusal) => return refusal,
    };
    let Some(ttl_ms) = seconds
        .checked_mul(1000)
        .and_then(|ms| u64::try_from(ms).ok())
        .filter(|ms| *ms > 0)
    else {
        return Frame::err("invalid expire time in 'hive.sexpiremember' command");
    };
    let op = Op::SExpireMember {
        member: args[2].clone(),
        ttl_ms,
    };
    match conn.run(&args[1], op).await {
        Ok(_) => Frame::Integer(1),
        Err(Error::NotFound) => Frame::Integer(0),
        Err(Error::InvalidArgument(_)) => {
            Frame::err("invalid expire time in 'hive.sexpiremember' command")
        }
        Err(err) => error_frame(&err),
    }
}

/// The members of the set `key`, empty if absent.
async fn members(conn: &Conn, key: &[u8]) -> Result<Vec<Bytes>, Frame> {
    match conn.run(key, Op::SMembers).await {
        Ok(Reply::List(members)) => Ok(members),
        Ok(other) => Err(unexpected(&other)),
        Err(Error::NotFound) => Ok(Vec::new()),
        Err(err) => Err(error_frame(&err)),
    }
}

/// The optional count argument of `SPOP`/`SRANDMEMBER`.
fn count_arg(args: &Args) -> Result<Option<i64>, Frame> {
    match args.len() {
        2 => Ok(None),
        3 => int_arg(&args[2]).map(Some),
        _ => Err(Frame::err("syntax error")),
    }
}

async fn spop(conn: &mut Conn, args: Args) -> Frame {
    let count = match count_arg(&args) {
        Ok(None) => None,
        Ok(Some(count)) if count >= 0 => Some(count.unsigned_abs()),
        Ok(Some(_)) => return Frame::err("value is out of range, must be positive"),
        Err(refusal) => return refusal,
    };
    let op = Op::SPop {
        count: count.unwrap_or(1),
        seed: fastrand::u64(..),
    };
    let popped = match conn.run(&args[1], op).await {
        Ok(Reply::List(popped)) => popped,
        Ok(other) => return unexpected(&other),
        Err(Error::NotFound) => Vec::new(),
        Err(err) => return error_frame(&err),
    };
    match count {
        None => popped.into_iter().next().map_or(Frame::Null, Frame::Bulk),
        Some(_) => Frame::Set(popped.into_iter().map(Frame::Bulk).collect()),
    }
}

/// `SRANDMEMBER key [count]`: a positive count picks distinct members, a
/// negative one may repeat them, as in Redis; a negative count whose reply
/// could pass the output buffer limit is refused ([`bound_reply`]).
async fn srandmember(conn: &mut Conn, args: Args) -> Frame {
    let count = match count_arg(&args) {
        Ok(count) => count,
        Err(refusal) => return refusal,
    };
    if count.is_some_and(|count| count.checked_abs().is_none()) {
        return Frame::err("value is out of range");
    }
    let members = match members(conn, &args[1]).await {
        Ok(members) => members,
        Err(refusal) => return refusal,
    };
    let Some(count) = count else {
        return if members.is_empty() {
            Frame::Null
        } else {
            Frame::Bulk(members[fastrand::usize(..members.len())].clone())
        };
    };
    let largest = members.iter().map(Bytes::len).max().unwrap_or(0);
    let element = bulk_len(largest).saturating_add(std::mem::size_of::<Bytes>());
    match pick(members, count, |wanted| bound_reply(conn, wanted, element)) {
        Ok(picked) => Frame::bulks(picked),
        Err(refusal) => refusal,
    }
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`: the whole set in one
/// reply with cursor 0.
async fn sscan(conn: &mut Conn, args: Args) -> Frame {
    if let Err(refusal) = Scan::cursor(&args[2]) {
        return refusal;
    }
    let members = match members(conn, &args[1]).await {
        Ok(members) if members.is_empty() => return scan::reply(0, Vec::new()),
        Ok(members) => members,
        Err(refusal) => return refusal,
    };
    let scan = match Scan::parse(&args[2..], Extra::None) {
        Ok(scan) if scan.cursor == 0 => scan,
        Ok(_) => return scan::reply(0, Vec::new()),
        Err(refusal) => return refusal,
    };
    scan::reply(
        0,
        members
            .into_iter()
            .filter(|member| scan.wants(member))
            .collect(),
    )
}

/// `SINTER`, `SUNION`, `SDIFF` and their `*STORE` forms. Every source key is
/// read (and type-checked) before anything is computed, as in Redis.
async fn algebra(conn: &mut Conn, args: Args) -> Frame {
    let name = args[0].to_ascii_lowercase();
    let store = name.ends_with(b"store");
    let sources = if store { &args[2..] } else { &args[1..] };
    let mut sets = Vec::with_capacity(sources.len());
    for key in sources {
        match members(conn, key).await {
            Ok(members) => sets.push(members.into_iter().collect::<BTreeSet<Bytes>>()),
            Err(refusal) => return refusal,
        }
    }
    let mut sets = sets.into_iter();
    let first = sets.next().unwrap_or_default();
    let result: BTreeSet<Bytes> = match &name[..5] {
        b"sinte" => sets.fold(first, |acc, set| acc.intersection(&set).cloned().collect()),
        b"sunio" => sets.fold(first, |mut acc, set| {
            acc.extend(set);
            acc
        }),
        _ => sets.fold(first, |acc, set| acc.difference(&set).cloned().collect()),
    };
    if !store {
        return Frame::Set(result.into_iter().map(Frame::Bulk).collect());
    }
    let op = Op::SReplace {
        members: result.into_iter().collect(),
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Count(len)) => Frame::count(len),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}
