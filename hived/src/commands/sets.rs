//! Set commands: `SADD`, `SREM`, `SISMEMBER`, `SMISMEMBER`, `SMEMBERS`,
//! `SCARD`, and `HIVE.SEXPIREMEMBER` for a TTL on one member.

use hive::Error;
use hive::raw::{Op, Reply};

use super::keys::unexpected;
use super::{Args, Command, Conn, count_true, error_frame, handler, int_arg};
use crate::resp::Frame;

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
];

async fn sadd(conn: &mut Conn, mut args: Args) -> Frame {
    let members = args.split_off(2);
    match conn.run(&args[1], Op::SAdd { members }).await {
        Ok(Reply::Count(added)) => Frame::count(added),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

async fn srem(conn: &mut Conn, args: Args) -> Frame {
    count_true(conn, &args[1], &args[2..], |member| Op::SRem { member }).await
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
