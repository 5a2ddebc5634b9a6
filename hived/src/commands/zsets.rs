//! Sorted-set commands: `ZADD` (`NX`, `XX`, `GT`, `LT`, `CH`, `INCR`),
//! `ZINCRBY`, `ZREM`, `ZSCORE`, `ZMSCORE`, `ZRANK`, `ZREVRANK`, `ZCARD`,
//! `ZCOUNT`, `ZRANGE` (`BYSCORE`, `BYLEX`, `REV`, `LIMIT`, `WITHSCORES`),
//! `ZREVRANGE`, `ZRANGEBYSCORE`, `ZREVRANGEBYSCORE`, `ZPOPMIN`, `ZPOPMAX`,
//! `ZREMRANGEBYRANK`, `ZREMRANGEBYSCORE`, `ZSCAN`.

use bytes::Bytes;
use hive::Error;
use hive::raw::{
    LexLimit, Op, Reply, ScoreBound, ScoreCompare, SetCondition, ZAddOptions, ZLimit, ZRangeBy,
};

use super::keys::unexpected;
use super::scan::{Extra, Scan};
use super::{Args, Command, Conn, error_frame, float_arg, handler, int_arg, is, scan};
use crate::resp::{Frame, Protocol, format_double};

pub(super) static COMMANDS: &[Command] = &[
    Command {
        name: "zadd",
        arity: -4,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Adds members with scores or updates them (NX, XX, GT, LT, CH, INCR).",
        run: handler!(zadd),
    },
    Command {
        name: "zincrby",
        arity: 4,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Adds to a member's score; returns the new score.",
        run: handler!(zincrby),
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
        name: "zmscore",
        arity: -3,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Returns the scores of members.",
        run: handler!(zmscore),
    },
    Command {
        name: "zrank",
        arity: -3,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Returns the rank of a member, lowest score first.",
        run: handler!(zrank),
    },
    Command {
        name: "zrevrank",
        arity: -3,
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
        name: "zcount",
        arity: 4,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Counts members with scores within a range.",
        run: handler!(zcount),
    },
    Command {
        name: "zrange",
        arity: -4,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Returns members by rank, score or lex range (BYSCORE, BYLEX, REV, LIMIT, WITHSCORES).",
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
        summary: "Returns members with scores within a range (WITHSCORES, LIMIT).",
        run: handler!(zrange),
    },
    Command {
        name: "zrevrangebyscore",
        arity: -4,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Returns members with scores within a range, highest first.",
        run: handler!(zrange),
    },
    Command {
        name: "zpopmin",
        arity: -2,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Removes and returns the members with the lowest scores.",
        run: handler!(zpop),
    },
    Command {
        name: "zpopmax",
        arity: -2,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Removes and returns the members with the highest scores.",
        run: handler!(zpop),
    },
    Command {
        name: "zremrangebyrank",
        arity: 4,
        flags: &["write"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Removes members within a range of ranks.",
        run: handler!(zremrange),
    },
    Command {
        name: "zremrangebyscore",
        arity: 4,
        flags: &["write"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Removes members with scores within a range.",
        run: handler!(zremrange),
    },
    Command {
        name: "zscan",
        arity: -3,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "sorted-set",
        summary: "Iterates a sorted set's members and scores (MATCH, COUNT).",
        run: handler!(zscan),
    },
];

/// `ZADD key [NX | XX] [GT | LT] [CH] [INCR] score member [score member ...]`,
/// checked in Redis's order: options, pair count, conflicts, then every score
/// before anything is written.
async fn zadd(conn: &mut Conn, args: Args) -> Frame {
    let mut options = ZAddOptions::default();
    let (mut nx, mut xx, mut gt, mut lt, mut incr) = (false, false, false, false, false);
    let mut at = 2;
    while let Some(arg) = args.get(at) {
        let flag = match () {
            () if is(arg, "nx") => &mut nx,
            () if is(arg, "xx") => &mut xx,
            () if is(arg, "gt") => &mut gt,
            () if is(arg, "lt") => &mut lt,
            () if is(arg, "ch") => &mut options.changed,
            () if is(arg, "incr") => &mut incr,
            () => break,
        };
        *flag = true;
        at += 1;
    }
    let rest = &args[at..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Frame::err("syntax error");
    }
    if nx && xx {
        return Frame::err("XX and NX options at the same time are not compatible");
    }
    if ((gt || lt) && nx) || (gt && lt) {
        return Frame::err("GT, LT, and/or NX options at the same time are not compatible");
    }
    if incr && rest.len() > 2 {
        return Frame::err("INCR option supports a single increment-element pair");
    }
    options.condition = match (nx, xx) {
        (true, _) => SetCondition::IfAbsent,
        (_, true) => SetCondition::IfPresent,
        _ => SetCondition::Always,
    };
    options.compare = match (gt, lt) {
        (true, _) => ScoreCompare::Greater,
        (_, true) => ScoreCompare::Less,
        _ => ScoreCompare::Any,
    };
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks(2) {
        match float_arg(&pair[0]) {
            Ok(score) => pairs.push((score, pair[1].clone())),
            Err(refusal) => return refusal,
        }
    }
    if incr {
        let (delta, member) = pairs.swap_remove(0);
        return increment(conn, &args[1], member, delta, options).await;
    }
    match conn.run(&args[1], Op::ZAddMany { pairs, options }).await {
        Ok(Reply::Count(counted)) => Frame::count(counted),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

/// Adds `delta` to `member`'s score: the new score, or null if the options
/// kept it from changing.
async fn increment(
    conn: &Conn,
    key: &[u8],
    member: Bytes,
    delta: f64,
    options: ZAddOptions,
) -> Frame {
    let op = Op::ZIncrBy {
        member,
        delta,
        options,
    };
    match conn.run(key, op).await {
        Ok(Reply::Scores(scores)) => match scores.first() {
            Some(Some(score)) => Frame::Double(*score),
            Some(None) => Frame::Null,
            None => unexpected(&Reply::Scores(scores)),
        },
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

async fn zincrby(conn: &mut Conn, args: Args) -> Frame {
    match float_arg(&args[2]) {
        Ok(delta) => {
            increment(
                conn,
                &args[1],
                args[3].clone(),
                delta,
                ZAddOptions::default(),
            )
            .await
        }
        Err(refusal) => refusal,
    }
}

async fn zrem(conn: &mut Conn, mut args: Args) -> Frame {
    let members = args.split_off(2);
    match conn.run(&args[1], Op::ZRemMany { members }).await {
        Ok(Reply::Count(removed)) => Frame::count(removed),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Integer(0),
        Err(err) => error_frame(&err),
    }
}

async fn zscore(conn: &mut Conn, args: Args) -> Frame {
    let op = Op::ZScore {
        member: args[2].clone(),
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Score(score)) => Frame::Double(score),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Null,
        Err(err) => error_frame(&err),
    }
}

async fn zmscore(conn: &mut Conn, mut args: Args) -> Frame {
    let members = args.split_off(2);
    match conn.run(&args[1], Op::ZMScore { members }).await {
        Ok(Reply::Scores(scores)) => Frame::Array(
            scores
                .into_iter()
                .map(|score| score.map_or(Frame::Null, Frame::Double))
                .collect(),
        ),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

/// `ZRANK`/`ZREVRANK key member [WITHSCORE]`.
async fn zrank(conn: &mut Conn, args: Args) -> Frame {
    let rev = args[0].eq_ignore_ascii_case(b"zrevrank");
    let member = args[2].clone();
    let op = match &args[3..] {
        [] => Op::ZRank { member, rev },
        [flag] if is(flag, "withscore") => Op::ZRankWithScore { member, rev },
        _ => return Frame::err("syntax error"),
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Count(rank)) => Frame::count(rank),
        Ok(Reply::Ranked { rank, score }) => {
            Frame::Array(vec![Frame::count(rank), Frame::Double(score)])
        }
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) if args.len() == 4 => Frame::NullArray,
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

/// Parses a score bound: a number, `-inf`/`+inf`, `(` for exclusive.
fn score_bound(arg: &[u8]) -> Result<ScoreBound, Frame> {
    let (exclusive, number) = match arg.strip_prefix(b"(") {
        Some(rest) => (true, rest),
        None => (false, arg),
    };
    let score = float_arg(number).map_err(|_| Frame::err("min or max is not a float"))?;
    Ok(ScoreBound { score, exclusive })
}

/// Parses a lexicographic bound: `-`, `+`, `[member` or `(member`.
fn lex_bound(arg: &Bytes) -> Result<LexLimit, Frame> {
    match arg.first() {
        Some(b'-') if arg.len() == 1 => Ok(LexLimit::Min),
        Some(b'+') if arg.len() == 1 => Ok(LexLimit::Max),
        Some(b'[') => Ok(LexLimit::Inclusive(arg.slice(1..))),
        Some(b'(') => Ok(LexLimit::Exclusive(arg.slice(1..))),
        _ => Err(Frame::err("min or max not valid string range item")),
    }
}

/// Which range a `ZRANGE`-family command reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeType {
    Rank,
    Score,
    Lex,
}

/// Parses `min max` (or `start stop`) of the given type.
fn range_of(kind: RangeType, min: &Bytes, max: &Bytes) -> Result<ZRangeBy, Frame> {
    Ok(match kind {
        RangeType::Rank => ZRangeBy::Rank {
            start: int_arg(min)?,
            stop: int_arg(max)?,
        },
        RangeType::Score => ZRangeBy::Score {
            min: score_bound(min)?,
            max: score_bound(max)?,
        },
        RangeType::Lex => ZRangeBy::Lex {
            min: lex_bound(min)?,
            max: lex_bound(max)?,
        },
    })
}

/// `ZRANGE`, `ZREVRANGE`, `ZRANGEBYSCORE`, `ZREVRANGEBYSCORE`: one parser, as
/// in Redis, with the command fixing the direction or range type up front.
async fn zrange(conn: &mut Conn, args: Args) -> Frame {
    let name = args[0].to_ascii_lowercase();
    let (mut rev, mut kind) = match name.as_slice() {
        b"zrevrange" => (Some(true), Some(RangeType::Rank)),
        b"zrangebyscore" => (Some(false), Some(RangeType::Score)),
        b"zrevrangebyscore" => (Some(true), Some(RangeType::Score)),
        _ => (None, None),
    };
    let (mut with_scores, mut limit) = (false, None);
    let mut at = 4;
    while let Some(option) = args.get(at) {
        let left = args.len() - at - 1;
        if is(option, "withscores") {
            with_scores = true;
        } else if is(option, "limit") && left >= 2 {
            match (int_arg(&args[at + 1]), int_arg(&args[at + 2])) {
                (Ok(offset), Ok(count)) => limit = Some((offset, count)),
                (Err(refusal), _) | (_, Err(refusal)) => return refusal,
            }
            at += 2;
        } else if rev.is_none() && is(option, "rev") {
            rev = Some(true);
        } else if kind.is_none() && is(option, "bylex") {
            kind = Some(RangeType::Lex);
        } else if kind.is_none() && is(option, "byscore") {
            kind = Some(RangeType::Score);
        } else {
            return Frame::err("syntax error");
        }
        at += 1;
    }
    let rev = rev.unwrap_or(false);
    let kind = kind.unwrap_or(RangeType::Rank);
    // As Redis, a count of -1 reads as no LIMIT at all (it is the default).
    if limit.is_some_and(|(_, count)| count != -1) && kind == RangeType::Rank {
        return Frame::err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    if with_scores && kind == RangeType::Lex {
        return Frame::err("syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    // Score and lex ranges are given highest first when reversed.
    let (low, high) = if rev && kind != RangeType::Rank {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let by = match range_of(kind, low, high) {
        Ok(by) => by,
        Err(refusal) => return refusal,
    };
    let limit = match limit {
        _ if kind == RangeType::Rank => None,
        // A negative offset selects nothing; a negative count means all.
        // (the key is still looked up, for its type).
        Some((offset, _)) if offset < 0 => Some(ZLimit {
            offset: 0,
            count: 0,
        }),
        Some((offset, count)) => Some(ZLimit {
            offset: usize::try_from(offset).unwrap_or(usize::MAX),
            count: usize::try_from(count).unwrap_or(usize::MAX),
        }),
        None => None,
    };
    let resp3 = conn.protocol == Protocol::Resp3;
    match conn.run(&args[1], Op::ZRangeBy { by, rev, limit }).await {
        Ok(Reply::Scored(items)) => scored(items, with_scores, resp3),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Array(Vec::new()),
        Err(err) => error_frame(&err),
    }
}

/// Returns the members (and scores if `with_scores`) as Redis lists them.
fn scored(items: Vec<(Bytes, f64)>, with_scores: bool, resp3_pairs: bool) -> Frame {
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

async fn zcount(conn: &mut Conn, args: Args) -> Frame {
    let by = match range_of(RangeType::Score, &args[2], &args[3]) {
        Ok(by) => by,
        Err(refusal) => return refusal,
    };
    match conn.run(&args[1], Op::ZCount { by }).await {
        Ok(Reply::Count(count)) => Frame::count(count),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

/// `ZPOPMIN`/`ZPOPMAX key [count]`: without a count a flat member-score pair,
/// with one a list of them (pairs of pairs in RESP3), as Redis 7.
async fn zpop(conn: &mut Conn, args: Args) -> Frame {
    let highest = args[0].eq_ignore_ascii_case(b"zpopmax");
    let count = match args.len() {
        2 => None,
        3 => match int_arg(&args[2]) {
            Ok(count) if count >= 0 => Some(count.unsigned_abs()),
            Ok(_) => return Frame::err("value is out of range, must be positive"),
            Err(refusal) => return refusal,
        },
        _ => return Frame::err("syntax error"),
    };
    let op = Op::ZPop {
        count: count.unwrap_or(1),
        highest,
    };
    let popped = match conn.run(&args[1], op).await {
        Ok(Reply::Scored(popped)) => popped,
        Ok(other) => return unexpected(&other),
        Err(Error::NotFound) => Vec::new(),
        Err(err) => return error_frame(&err),
    };
    let resp3_pairs = count.is_some() && conn.protocol == Protocol::Resp3;
    scored(popped, true, resp3_pairs)
}

async fn zremrange(conn: &mut Conn, args: Args) -> Frame {
    let kind = if args[0].eq_ignore_ascii_case(b"zremrangebyrank") {
        RangeType::Rank
    } else {
        RangeType::Score
    };
    let by = match range_of(kind, &args[2], &args[3]) {
        Ok(by) => by,
        Err(refusal) => return refusal,
    };
    match conn.run(&args[1], Op::ZRemRange { by }).await {
        Ok(Reply::Count(removed)) => Frame::count(removed),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`: the whole sorted set in
/// one reply with cursor 0, scores as strings.
async fn zscan(conn: &mut Conn, args: Args) -> Frame {
    if let Err(refusal) = Scan::cursor(&args[2]) {
        return refusal;
    }
    let all = ZRangeBy::Rank { start: 0, stop: -1 };
    let op = Op::ZRangeBy {
        by: all,
        rev: false,
        limit: None,
    };
    let items = match conn.run(&args[1], op).await {
        Ok(Reply::Scored(items)) if items.is_empty() => return scan::reply(0, Vec::new()),
        Ok(Reply::Scored(items)) => items,
        Ok(other) => return unexpected(&other),
        Err(Error::NotFound) => return scan::reply(0, Vec::new()),
        Err(err) => return error_frame(&err),
    };
    let scan = match Scan::parse(&args[2..], Extra::None) {
        Ok(scan) if scan.cursor == 0 => scan,
        Ok(_) => return scan::reply(0, Vec::new()),
        Err(refusal) => return refusal,
    };
    let elements = items
        .into_iter()
        .filter(|(member, _)| scan.wants(member))
        .flat_map(|(member, score)| [member, Bytes::from(format_double(score))])
        .collect();
    scan::reply(0, elements)
}
