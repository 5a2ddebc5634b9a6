//! Hash commands: `HSET`, `HMSET`, `HSETNX`, `HGET`, `HMGET`, `HGETALL`,
//! `HKEYS`, `HVALS`, `HLEN`, `HEXISTS`, `HDEL`, `HSTRLEN`, `HINCRBY`,
//! `HINCRBYFLOAT`, `HSCAN`, `HRANDFIELD`, and the per-field TTLs of Redis 7.4:
//! `HEXPIRE`, `HPEXPIRE`, `HTTL`, `HPTTL`, `HPERSIST`.

use bytes::Bytes;
use hive::Error;
use hive::raw::{ExpireCondition, Op, Reply};

use super::keys::unexpected;
use super::scan::{Extra, Scan};
use super::{Args, Command, Conn, bound_reply, error_frame, float_arg, handler, int_arg, is, scan};
use crate::resp::{Frame, Protocol, bulk_len};

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
    Command {
        name: "hsetnx",
        arity: 4,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Sets a hash field only if it does not exist; 1 if it did.",
        run: handler!(hsetnx),
    },
    Command {
        name: "hincrby",
        arity: 4,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Adds an integer to a hash field's value.",
        run: handler!(hincrby),
    },
    Command {
        name: "hincrbyfloat",
        arity: 4,
        flags: &["write", "denyoom", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Adds a floating-point number to a hash field's value.",
        run: handler!(hincrbyfloat),
    },
    Command {
        name: "hscan",
        arity: -3,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Iterates a hash's fields and values (MATCH, COUNT, NOVALUES).",
        run: handler!(hscan),
    },
    Command {
        name: "hrandfield",
        arity: -2,
        flags: &["readonly"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Returns random fields of a hash (count, WITHVALUES).",
        run: handler!(hrandfield),
    },
    Command {
        name: "hexpire",
        arity: -6,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Sets hash fields' TTL in seconds (NX, XX, GT, LT); one code per field.",
        run: handler!(hexpire),
    },
    Command {
        name: "hpexpire",
        arity: -6,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Sets hash fields' TTL in milliseconds (NX, XX, GT, LT); one code per field.",
        run: handler!(hexpire),
    },
    Command {
        name: "hexpireat",
        arity: -6,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Sets hash fields' expiry to a Unix time in seconds (NX, XX, GT, LT).",
        run: handler!(hexpire),
    },
    Command {
        name: "hpexpireat",
        arity: -6,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Sets hash fields' expiry to a Unix time in ms (NX, XX, GT, LT).",
        run: handler!(hexpire),
    },
    Command {
        name: "hexpiretime",
        arity: -5,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Returns hash fields' expiry as a Unix time in seconds (-1 none, -2 no field).",
        run: handler!(httl),
    },
    Command {
        name: "hpexpiretime",
        arity: -5,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Returns hash fields' expiry as a Unix time in ms (-1 none, -2 no field).",
        run: handler!(httl),
    },
    Command {
        name: "httl",
        arity: -5,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Returns hash fields' remaining TTL in seconds (-1 none, -2 no field).",
        run: handler!(httl),
    },
    Command {
        name: "hpttl",
        arity: -5,
        flags: &["readonly", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Returns hash fields' remaining TTL in ms (-1 none, -2 no field).",
        run: handler!(httl),
    },
    Command {
        name: "hpersist",
        arity: -5,
        flags: &["write", "fast"],
        keys: (1, 1, 1),
        group: "hash",
        summary: "Removes hash fields' TTL (1 removed, -1 had none, -2 no field).",
        run: handler!(hpersist),
    },
];

async fn hset(conn: &mut Conn, args: Args) -> Frame {
    if !args.len().is_multiple_of(2) {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        return Frame::err(format!("wrong number of arguments for '{name}' command"));
    }
    let pairs = args[2..]
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    match conn.run(&args[1], Op::HSetMany { pairs }).await {
        Ok(Reply::Count(_)) if args[0].eq_ignore_ascii_case(b"hmset") => Frame::OK,
        Ok(Reply::Count(added)) => Frame::count(added),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
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

async fn hdel(conn: &mut Conn, mut args: Args) -> Frame {
    let fields = args.split_off(2);
    match conn.run(&args[1], Op::HDelMany { fields }).await {
        Ok(Reply::Count(removed)) => Frame::count(removed),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Integer(0),
        Err(err) => error_frame(&err),
    }
}

async fn hstrlen(conn: &mut Conn, args: Args) -> Frame {
    match field(conn, &args[1], &args[2]).await {
        Ok(value) => Frame::count(value.map_or(0, |value| value.len())),
        Err(err) => error_frame(&err),
    }
}

async fn hsetnx(conn: &mut Conn, args: Args) -> Frame {
    let op = Op::HSetNx {
        field: args[2].clone(),
        value: args[3].clone(),
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Bool(set)) => Frame::Integer(set.into()),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

async fn hincrby(conn: &mut Conn, args: Args) -> Frame {
    let delta = match int_arg(&args[3]) {
        Ok(delta) => delta,
        Err(refusal) => return refusal,
    };
    let op = Op::HIncrBy {
        field: args[2].clone(),
        delta,
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Integer(value)) => Frame::Integer(value),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

async fn hincrbyfloat(conn: &mut Conn, args: Args) -> Frame {
    let delta = match float_arg(&args[3]) {
        Ok(delta) => delta,
        Err(refusal) => return refusal,
    };
    let op = Op::HIncrByFloat {
        field: args[2].clone(),
        delta,
    };
    match conn.run(&args[1], op).await {
        Ok(Reply::Bytes(value)) => Frame::Bulk(value),
        Ok(other) => unexpected(&other),
        Err(err) => error_frame(&err),
    }
}

/// Every field and value of the hash, empty if the key is absent.
async fn pairs(conn: &Conn, key: &[u8]) -> Result<Vec<(Bytes, Bytes)>, Frame> {
    match conn.run(key, Op::HGetAll).await {
        Ok(Reply::Pairs(pairs)) => Ok(pairs),
        Ok(other) => Err(unexpected(&other)),
        Err(Error::NotFound) => Ok(Vec::new()),
        Err(err) => Err(error_frame(&err)),
    }
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES]`: the whole hash
/// in one reply with cursor 0 (`COUNT` is a hint, as in Redis, which does the
/// same for small hashes).
async fn hscan(conn: &mut Conn, args: Args) -> Frame {
    if let Err(refusal) = Scan::cursor(&args[2]) {
        return refusal;
    }
    let pairs = match pairs(conn, &args[1]).await {
        Ok(pairs) if pairs.is_empty() => return scan::reply(0, Vec::new()),
        Ok(pairs) => pairs,
        Err(refusal) => return refusal,
    };
    let scan = match Scan::parse(&args[2..], Extra::NoValues) {
        Ok(scan) if scan.cursor == 0 => scan,
        Ok(_) => return scan::reply(0, Vec::new()),
        Err(refusal) => return refusal,
    };
    let mut elements = Vec::new();
    for (field, value) in pairs.into_iter().filter(|(field, _)| scan.wants(field)) {
        elements.push(field);
        if !scan.novalues {
            elements.push(value);
        }
    }
    scan::reply(0, elements)
}

/// `HRANDFIELD key [count [WITHVALUES]]`: a positive count picks distinct
/// fields, a negative one may repeat them, as in Redis; a negative count whose
/// reply could pass the output buffer limit is refused ([`bound_reply`]).
async fn hrandfield(conn: &mut Conn, args: Args) -> Frame {
    let count = match args.get(2).map(|count| int_arg(count)) {
        None => None,
        Some(Ok(count)) if count.checked_abs().is_some() => Some(count),
        Some(Ok(_)) => return Frame::err("value is out of range"),
        Some(Err(refusal)) => return refusal,
    };
    let with_values = match args.get(3) {
        None => false,
        Some(option) if is(option, "withvalues") && args.len() == 4 => true,
        Some(_) => return Frame::err("syntax error"),
    };
    // As Redis: with values the reply holds twice the count, which must not
    // overflow, whatever the key holds.
    if with_values
        && count.is_some_and(|count| count.unsigned_abs() > (i64::MAX / 2).unsigned_abs())
    {
        return Frame::err("value is out of range");
    }
    let mut pairs = match pairs(conn, &args[1]).await {
        Ok(pairs) => pairs,
        Err(refusal) => return refusal,
    };
    let Some(count) = count else {
        if pairs.is_empty() {
            return Frame::Null;
        }
        let pick = fastrand::usize(..pairs.len());
        return Frame::Bulk(pairs.swap_remove(pick).0);
    };
    let resp3 = conn.protocol == Protocol::Resp3;
    let largest = |side: fn(&(Bytes, Bytes)) -> usize| pairs.iter().map(side).max().unwrap_or(0);
    let mut element = bulk_len(largest(|(field, _)| field.len()))
        .saturating_add(std::mem::size_of::<(Bytes, Bytes)>());
    if with_values {
        // The value's bulk and frame, and in RESP3 a two-element array.
        element = element
            .saturating_add(bulk_len(largest(|(_, value)| value.len())))
            .saturating_add(std::mem::size_of::<Frame>());
        if resp3 {
            element = element.saturating_add(4 + std::mem::size_of::<Frame>());
        }
    }
    let picked = match pick(pairs, count, |wanted| bound_reply(conn, wanted, element)) {
        Ok(picked) => picked,
        Err(refusal) => return refusal,
    };
    if !with_values {
        return Frame::bulks(picked.into_iter().map(|(field, _)| field));
    }
    if resp3 {
        return Frame::Array(
            picked
                .into_iter()
                .map(|(field, value)| Frame::Array(vec![Frame::Bulk(field), Frame::Bulk(value)]))
                .collect(),
        );
    }
    Frame::bulks(picked.into_iter().flat_map(|(field, value)| [field, value]))
}

/// Picks random items for a count the client chose (Redis's
/// `HRANDFIELD`/`SRANDMEMBER` rule): distinct if positive, so at most all of
/// them; with repeats if negative, so exactly `|count|` of them, once `bound`
/// has accepted that many (it is asked before anything is allocated, and its
/// refusal is returned).
pub(super) fn pick<T: Clone>(
    mut items: Vec<T>,
    count: i64,
    bound: impl FnOnce(u64) -> Result<usize, Frame>,
) -> Result<Vec<T>, Frame> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    if count < 0 {
        let wanted = bound(count.unsigned_abs())?;
        return Ok((0..wanted)
            .map(|_| items[fastrand::usize(..items.len())].clone())
            .collect());
    }
    fastrand::shuffle(&mut items);
    items.truncate(usize::try_from(count).unwrap_or(usize::MAX));
    Ok(items)
}

/// Parses `FIELDS numfields field ...` from `args[at..]`.
fn fields(args: &[Bytes], at: usize) -> Result<Vec<Bytes>, Frame> {
    if !args.get(at).is_some_and(|word| is(word, "fields")) {
        return Err(Frame::err(
            "Mandatory argument FIELDS is missing or not at the right position",
        ));
    }
    let count = args
        .get(at + 1)
        .and_then(|count| int_arg(count).ok())
        .and_then(|count| usize::try_from(count).ok())
        .filter(|&count| count > 0)
        .ok_or_else(|| Frame::err("Parameter `numFields` should be greater than 0"))?;
    let fields = &args[at + 2..];
    if fields.len() != count {
        return Err(Frame::err(
            "The `numfields` parameter must match the number of arguments",
        ));
    }
    Ok(fields.to_vec())
}

/// The frame for per-field codes.
fn codes(outcome: Result<Reply, Error>, fields: usize, map: impl Fn(i64) -> i64) -> Frame {
    match outcome {
        Ok(Reply::Integers(codes)) => Frame::Array(
            codes
                .into_iter()
                .map(|code| Frame::Integer(map(code)))
                .collect(),
        ),
        Ok(other) => unexpected(&other),
        Err(Error::NotFound) => Frame::Array(vec![Frame::Integer(-2); fields]),
        Err(err) => error_frame(&err),
    }
}

/// `HEXPIRE`/`HPEXPIRE key time [NX | XX | GT | LT] FIELDS numfields field ...`,
/// and `HEXPIREAT`/`HPEXPIREAT` with a Unix time instead.
async fn hexpire(conn: &mut Conn, args: Args) -> Frame {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let unit_ms = if name.starts_with("hp") { 1 } else { 1000 };
    let absolute = name.ends_with("at");
    let amount = match int_arg(&args[2]) {
        Ok(amount) => amount,
        Err(refusal) => return refusal,
    };
    let condition = [
        ("nx", ExpireCondition::IfNone),
        ("xx", ExpireCondition::IfSome),
        ("gt", ExpireCondition::Later),
        ("lt", ExpireCondition::Earlier),
    ]
    .into_iter()
    .find(|(word, _)| is(&args[3], word))
    .map(|(_, condition)| condition);
    let at = if condition.is_some() { 4 } else { 3 };
    let fields = match fields(&args, at) {
        Ok(fields) => fields,
        Err(refusal) => return refusal,
    };
    let invalid = || Frame::err(format!("invalid expire time in '{name}' command"));
    let Some(ms) = amount
        .checked_mul(unit_ms)
        .and_then(|ms| u64::try_from(ms).ok())
    else {
        return invalid();
    };
    let count = fields.len();
    let condition = condition.unwrap_or(ExpireCondition::Always);
    let op = if absolute {
        Op::HExpireFieldsAt {
            fields,
            at_ms: ms,
            condition,
        }
    } else {
        Op::HExpireFields {
            fields,
            ttl_ms: ms,
            condition,
        }
    };
    match conn.run(&args[1], op).await {
        Err(Error::InvalidArgument(_)) => invalid(),
        outcome => codes(outcome, count, |code| code),
    }
}

/// `HTTL`/`HPTTL key FIELDS numfields field ...`; seconds round up, so a
/// field with time left never reads 0. `HEXPIRETIME`/`HPEXPIRETIME` report
/// the deadline as a Unix time instead (seconds round down).
async fn httl(conn: &mut Conn, args: Args) -> Frame {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let in_seconds = !name.starts_with("hp");
    let fields = match fields(&args, 2) {
        Ok(fields) => fields,
        Err(refusal) => return refusal,
    };
    let count = fields.len();
    if name.ends_with("expiretime") {
        let outcome = conn.run(&args[1], Op::HExpireTimeFields { fields }).await;
        return codes(outcome, count, |code| match code {
            ms if ms >= 0 && in_seconds => ms / 1000,
            code => code,
        });
    }
    let outcome = conn.run(&args[1], Op::HTtlFields { fields }).await;
    codes(outcome, count, |code| match code {
        ms if ms >= 0 && in_seconds => (ms + 999) / 1000,
        code => code,
    })
}

async fn hpersist(conn: &mut Conn, args: Args) -> Frame {
    let fields = match fields(&args, 2) {
        Ok(fields) => fields,
        Err(refusal) => return refusal,
    };
    let count = fields.len();
    let outcome = conn.run(&args[1], Op::HPersistFields { fields }).await;
    codes(outcome, count, |code| code)
}
