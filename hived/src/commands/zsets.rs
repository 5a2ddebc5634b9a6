//! Sorted-set commands: `ZADD` (score-member pairs), `ZREM`, `ZSCORE`,
//! `ZRANK`, `ZREVRANK`, `ZCARD`, `ZRANGE`/`ZREVRANGE` by rank and
//! `ZRANGEBYSCORE` with inclusive bounds, `WITHSCORES`.

use hive::Error;
use hive::raw::{Op, Reply};

use super::keys::unexpected;
use super::{Args, Command, Conn, count_true, error_frame, float_arg, handler, int_arg, is};
use crate::resp::Frame;

pub(super) static COMMANDS: &[Command] = &[
    Command {
        name: "zadd",
        arity: -4,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Adds members with scores (or updates their scores); returns how many were new.",
        run: handler!(zadd),
    },
    Command {
        name: "zrem",
        arity: -3,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Removes members; returns how many were there.",
        run: handler!(zrem),
    },
    Command {
        name: "zscore",
        arity: 3,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Returns the score of a member.",
        run: handler!(zscore),
    },
    Command {
        name: "zrank",
        arity: 3,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Returns the rank of a member, lowest score first.",
        run: handler!(zrank),
    },
    Command {
        name: "zrevrank",
        arity: 3,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Returns the rank of a member, highest score first.",
        run: handler!(zrank),
    },
    Command {
        name: "zcard",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Returns the number of members.",
        run: handler!(zcard),
    },
    Command {
        name: "zrange",
        arity: -4,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Returns members by rank (REV and WITHSCORES supported).",
        run: handler!(zrange),
    },
    Command {
        name: "zrevrange",
        arity: -4,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Returns members by rank, highest score first.",
        run: handler!(zrange),
    },
    Command {
        name: "zrangebyscore",
        arity: -4,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Returns members with scores between inclusive bounds.",
        run: handler!(zrangebyscore),
    },
];

async fn zadd(conn: &mut Conn, args: Args) -> Frame {
    if let Some(flag) = args[2..].iter().find(|arg| {
        ["nx", "xx", "gt", "lt", "ch", "incr"]
            .iter()
            .any(|word| is(arg, word))
    }) {
        return Frame::err(format!(
            "ZADD {} is not supported by hived yet",
            String::from_utf8_lossy(flag).to_ascii_uppercase()
        ));
    }
    if !args.len().is_multiple_of(2) {
        return Frame::err("syntax error");
    }
    // Every score is checked before anything is written.
    let mut pairs = Vec::with_capacity((args.len() - 2) / 2);
    for pair in args[2..].chunks(2) {
        match float_arg(&pair[0]) {
            Ok(score) => pairs.push((score, pair[1].clone())),
            Err(refusal) => return refusal,
        }
    }
    let mut added = 0;
    for (score, member) in pairs {
        match conn.run(&args[1], Op::ZAdd { score, member }).await {
            Ok(Reply::Bool(new)) => added += i64::from(new),
            Ok(other) => return unexpected(&other),
            Err(err) => return error_frame(&err),
        }
    }
    Frame::Integer(added)
}

async fn zrem(conn: &mut Conn, args: Args) -> Frame {
    count_true(conn, &args[1], &args[2..], |member| Op::ZRem { member }).await
}

async fn zscore(conn: &mut Conn, args: Args) -> Frame {
    match conn
        .run(
            &args[1],
            Op::ZScore {
                member: args[2].clone(),
            },
        )
        .await
    {
        Ok(Reply::Score(score)) => Frame::Double(score),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Null,
        Err(err) => error_frame(&err),
    }
}

async fn zrank(conn: &mut Conn, args: Args) -> Frame {
    let rev = args[0].eq_ignore_ascii_case(b"zrevrank");
    let op = Op::ZRank {
        member: args[2].clone(),
        rev,
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Count(rank)) => Frame::count(rank),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Null,
        Err(err) => error_frame(&err),
    }
}

async fn zcard(conn: &mut Conn, args: Args) -> Frame {
    match conn.run(&args[1], Op::ZCard).await {
        Ok(Reply::Count(len)) => Frame::count(len),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Integer(0),
        Err(err) => error_frame(&err),
    }
}

/// Returns the members (and scores if `with_scores`) as Redis lists them.
fn scored(items: Vec<(bytes::Bytes, f64)>, with_scores: bool, resp3_pairs: bool) -> Frame {
    if !with_scores {
        return Frame::bulks(items.into_iter().map(|(member, _)| member));
    }
    if resp3_pairs {
        return Frame::Array(
            items
                .into_iter()
                .map(|(member, score)| {
                    Frame::Array(vec![Frame::Bulk(member), Frame::Double(score)])
                })
                .collect(),
        );
    }
    Frame::Array(
        items
            .into_iter()
            .flat_map(|(member, score)| [Frame::Bulk(member), Frame::Double(score)])
            .collect(),
    )
}

/// Reads the options after the range: `WITHSCORES`, and `REV` for `ZRANGE`.
fn options(args: &[bytes::Bytes], allow_rev: bool) -> Result<(bool, bool), Frame> {
    let (mut with_scores, mut rev) = (false, false);
    for option in args {
        if is(option, "withscores") {
            with_scores = true;
        } else if allow_rev && is(option, "rev") {
            rev = true;
        } else if ["byscore", "bylex", "limit"]
            .iter()
            .any(|word| is(option, word))
        {
            return Err(Frame::err(format!(
                "ZRANGE {} is not supported by hived yet",
                String::from_utf8_lossy(option).to_ascii_uppercase()
            )));
        } else {
            return Err(Frame::err("syntax error"));
        }
    }
    Ok((with_scores, rev))
}

async fn zrange(conn: &mut Conn, args: Args) -> Frame {
    let reversed_command = args[0].eq_ignore_ascii_case(b"zrevrange");
    let (start, stop) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(start), Ok(stop)) => (start, stop),
        (Err(refusal), _) | (_, Err(refusal)) => return refusal,
    };
    let (with_scores, rev) = match options(&args[4..], !reversed_command) {
        Ok(options) => options,
        Err(refusal) => return refusal,
    };
    let op = Op::ZRange {
        start,
        stop,
        rev: rev || reversed_command,
    };
    let resp3 = conn.protocol == crate::resp::Protocol::Resp3;
    match conn.run(&args[1], op).await {
        Ok(Reply::Scored(items)) => scored(items, with_scores, resp3),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Array(Vec::new()),
        Err(err) => error_frame(&err),
    }
}

async fn zrangebyscore(conn: &mut Conn, args: Args) -> Frame {
    let bound = |arg: &[u8]| {
        if arg.first() == Some(&b'(') {
            Err(Frame::err(
                "exclusive score bounds are not supported by hived yet",
            ))
        } else {
            float_arg(arg).map_err(|_| Frame::err("min or max is not a float"))
        }
    };
    let (min, max) = match (bound(&args[2]), bound(&args[3])) {
        (Ok(min), Ok(max)) => (min, max),
        (Err(refusal), _) | (_, Err(refusal)) => return refusal,
    };
    let (with_scores, _) = match options(&args[4..], false) {
        Ok(options) => options,
        Err(refusal) => return refusal,
    };
    let resp3 = conn.protocol == crate::resp::Protocol::Resp3;
    match conn.run(&args[1], Op::ZRangeByScore { min, max }).await {
        Ok(Reply::Scored(items)) => scored(items, with_scores, resp3),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Array(Vec::new()),
        Err(err) => error_frame(&err),
    }
}
