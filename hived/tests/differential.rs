//! Differential test (spec: hived.md "Compatibility evidence"): generated
//! command sequences over every supported family — including wrong types,
//! missing keys and bad arguments — go to `hived` and to a real `redis-server`
//! started here, and the replies must match.
//!
//! Intended differences, normalised before comparing (documented in
//! docs/redis-compatibility.md):
//! - error replies are compared by their code (`ERR`, `WRONGTYPE`, ...), not
//!   their wording;
//! - set members and hash fields come back in an unspecified order in both
//!   servers, so `SMEMBERS`, `HGETALL`, `HKEYS`, `HVALS`, the set algebra,
//!   `SSCAN`/`HSCAN` elements and random picks that take every element
//!   (`SPOP`, `SRANDMEMBER`, `HRANDFIELD` with a count above the size) are
//!   compared sorted, and picks that may repeat (a negative count) by their
//!   number;
//! - a positive `PTTL` is compared as "positive" only (time passes between the
//!   two servers' answers).

mod support;

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use support::{Client, Hived, Redis, Value};

/// Keys shared by every family, so type clashes happen.
const KEYS: &[&str] = &["a", "b", "c"];
const MEMBERS: &[&str] = &["x", "y", "z", "w"];

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS).prop_map(str::to_owned)
}

fn member() -> impl Strategy<Value = String> {
    prop::sample::select(MEMBERS).prop_map(str::to_owned)
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z]{0,6}", (-100i64..100).prop_map(|n| n.to_string()),]
}

fn index() -> impl Strategy<Value = String> {
    (-6i64..6).prop_map(|n| n.to_string())
}

fn score() -> impl Strategy<Value = String> {
    prop_oneof![
        (-20i32..20).prop_map(|n| n.to_string()),
        (-20i32..20).prop_map(|n| format!("{}.5", n)),
        Just("inf".to_owned()),
        Just("-inf".to_owned()),
        Just("nope".to_owned()),
    ]
}

/// A mix of `SET` options, valid or conflicting.
fn set_options() -> impl Strategy<Value = Vec<String>> {
    let option = prop_oneof![
        Just(vec!["NX".to_owned()]),
        Just(vec!["XX".to_owned()]),
        Just(vec!["GET".to_owned()]),
        Just(vec!["KEEPTTL".to_owned()]),
        Just(vec!["EX".to_owned(), "1000".to_owned()]),
        Just(vec!["PX".to_owned(), "-5".to_owned()]),
        Just(vec!["BOGUS".to_owned()]),
    ];
    prop::collection::vec(option, 0..3).prop_map(|options| options.concat())
}

/// One command, as its arguments.
fn command() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        // strings and keys
        (key(), value()).prop_map(|(k, v)| vec!["SET".into(), k, v]),
        (key(), value()).prop_map(|(k, v)| vec!["SET".into(), k, v, "EX".into(), "1000".into()]),
        key().prop_map(|k| vec!["GET".into(), k]),
        (key(), value(), set_options()).prop_map(|(k, v, options)| {
            let mut command = vec!["SET".into(), k, v];
            command.extend(options);
            command
        }),
        (key(), value()).prop_map(|(k, v)| vec!["SETNX".into(), k, v]),
        (key(), value()).prop_map(|(k, v)| vec!["GETSET".into(), k, v]),
        key().prop_map(|k| vec!["INCR".into(), k]),
        key().prop_map(|k| vec!["DECR".into(), k]),
        (key(), value()).prop_map(|(k, n)| vec!["INCRBY".into(), k, n]),
        (key(), value()).prop_map(|(k, n)| vec!["DECRBY".into(), k, n]),
        (key(), value()).prop_map(|(k, v)| vec!["APPEND".into(), k, v]),
        key().prop_map(|k| vec!["STRLEN".into(), k]),
        (key(), key()).prop_map(|(a, b)| vec!["MGET".into(), a, b]),
        (key(), value(), key(), value()).prop_map(|(a, x, b, y)| vec!["MSET".into(), a, x, b, y]),
        (key(), key()).prop_map(|(a, b)| vec!["DEL".into(), a, b]),
        (key(), key()).prop_map(|(a, b)| vec!["EXISTS".into(), a, b]),
        key().prop_map(|k| vec!["TYPE".into(), k]),
        key().prop_map(|k| vec!["EXPIRE".into(), k, "1000".into()]),
        key().prop_map(|k| vec!["TTL".into(), k]),
        key().prop_map(|k| vec!["EXPIRE".into(), k, "-1".into()]),
        key().prop_map(|k| vec!["PTTL".into(), k]),
        (key(), value()).prop_map(|(k, v)| vec!["SET".into(), k, v, "EX".into(), "0".into()]),
        (key(), value()).prop_map(|(k, v)| vec!["SET".into(), k, v, "PX".into(), "x".into()]),
        (key(), value()).prop_map(|(k, v)| vec!["SETEX".into(), k, "1000".into(), v]),
        key().prop_map(|k| vec!["PERSIST".into(), k]),
        // hashes
        (key(), member(), value()).prop_map(|(k, f, v)| vec!["HSET".into(), k, f, v]),
        (key(), member()).prop_map(|(k, f)| vec!["HGET".into(), k, f]),
        (key(), member(), member()).prop_map(|(k, f, g)| vec!["HMGET".into(), k, f, g]),
        (key(), member()).prop_map(|(k, f)| vec!["HDEL".into(), k, f]),
        (key(), member()).prop_map(|(k, f)| vec!["HEXISTS".into(), k, f]),
        key().prop_map(|k| vec!["HLEN".into(), k]),
        (key(), member()).prop_map(|(k, f)| vec!["HSET".into(), k, f]),
        (key(), member()).prop_map(|(k, f)| vec!["HSTRLEN".into(), k, f]),
        key().prop_map(|k| vec!["HVALS".into(), k]),
        key().prop_map(|k| vec!["HGETALL".into(), k]),
        key().prop_map(|k| vec!["HKEYS".into(), k]),
        // lists
        (key(), value(), value()).prop_map(|(k, a, b)| vec!["LPUSH".into(), k, a, b]),
        (key(), value()).prop_map(|(k, a)| vec!["RPUSH".into(), k, a]),
        key().prop_map(|k| vec!["LPOP".into(), k]),
        key().prop_map(|k| vec!["RPOP".into(), k, "2".into()]),
        key().prop_map(|k| vec!["LPOP".into(), k, "0".into()]),
        key().prop_map(|k| vec!["RPOP".into(), k, "-1".into()]),
        key().prop_map(|k| vec!["LLEN".into(), k]),
        (key(), index()).prop_map(|(k, i)| vec!["LINDEX".into(), k, i]),
        (key(), index(), value()).prop_map(|(k, i, v)| vec!["LSET".into(), k, i, v]),
        (key(), index(), index()).prop_map(|(k, a, b)| vec!["LRANGE".into(), k, a, b]),
        // sets
        (key(), member(), member()).prop_map(|(k, a, b)| vec!["SADD".into(), k, a, b]),
        (key(), member()).prop_map(|(k, m)| vec!["SREM".into(), k, m]),
        (key(), member()).prop_map(|(k, m)| vec!["SISMEMBER".into(), k, m]),
        (key(), member(), member()).prop_map(|(k, a, b)| vec!["SMISMEMBER".into(), k, a, b]),
        key().prop_map(|k| vec!["SCARD".into(), k]),
        key().prop_map(|k| vec!["SMEMBERS".into(), k]),
        // sorted sets
        (key(), score(), member()).prop_map(|(k, s, m)| vec!["ZADD".into(), k, s, m]),
        (key(), member()).prop_map(|(k, m)| vec!["ZREM".into(), k, m]),
        (key(), member()).prop_map(|(k, m)| vec!["ZSCORE".into(), k, m]),
        (key(), member()).prop_map(|(k, m)| vec!["ZRANK".into(), k, m]),
        (key(), member()).prop_map(|(k, m)| vec!["ZREVRANK".into(), k, m]),
        key().prop_map(|k| vec!["ZCARD".into(), k]),
        (key(), score()).prop_map(|(k, s)| vec!["ZADD".into(), k, s]),
        (key(), score(), member(), score(), member()).prop_map(|(k, s, m, t, n)| vec![
            "ZADD".into(),
            k,
            s,
            m,
            t,
            n
        ]),
        (key(), index(), index()).prop_map(|(k, a, b)| vec![
            "ZRANGE".into(),
            k,
            a,
            b,
            "WITHSCORES".into()
        ]),
        (key(), index(), index()).prop_map(|(k, a, b)| vec!["ZREVRANGE".into(), k, a, b]),
        (key(), score(), score()).prop_map(|(k, a, b)| vec![
            "ZRANGEBYSCORE".into(),
            k,
            a,
            b,
            "WITHSCORES".into()
        ]),
    ]
}

fn s(text: &str) -> String {
    text.to_owned()
}

const EXPIRE_OPTIONS: &[&[&str]] = &[
    &[],
    &["NX"],
    &["XX"],
    &["GT"],
    &["LT"],
    &["XX", "GT"],
    &["XX", "LT"],
    &["NX", "GT"],
    &["GT", "LT"],
    &["BOGUS"],
];
const GETEX_OPTIONS: &[&[&str]] = &[
    &[],
    &["EX", "1000"],
    &["PX", "-5"],
    &["PERSIST"],
    &["EXAT", "1"],
    &["EX", "10", "PX", "10"],
    &["BOGUS"],
];
const LPOS_OPTIONS: &[&[&str]] = &[
    &[],
    &["RANK", "2"],
    &["RANK", "-1"],
    &["COUNT", "0"],
    &["RANK", "0"],
    &["COUNT", "2", "MAXLEN", "3"],
    &["RANK", "-2", "COUNT", "1"],
];
const POP_COUNTS: &[&[&str]] = &[&[], &["2"], &["-1"]];

/// One of several argument lists.
fn options_of(choices: &'static [&'static [&'static str]]) -> impl Strategy<Value = Vec<String>> {
    prop::sample::select(choices)
        .prop_map(|options| options.iter().map(|option| s(option)).collect())
}

/// An `EXPIRE` option, valid or not.
fn expire_option() -> impl Strategy<Value = Vec<String>> {
    options_of(EXPIRE_OPTIONS)
}

/// A `ZADD` flag combination, valid or conflicting.
fn zadd_flags() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(&["NX", "XX", "GT", "LT", "CH", "INCR"][..]),
        0..3,
    )
    .prop_map(|flags| flags.into_iter().map(s).collect())
}

/// A score-range bound: inclusive, exclusive, infinite or invalid.
fn score_bound() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => score(),
        2 => (-20i32..20).prop_map(|n| format!("({n}")),
        1 => Just(s("(inf")),
        1 => Just(s("(x")),
    ]
}

fn lex_bound() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(s("-")),
        Just(s("+")),
        member().prop_map(|m| format!("[{m}")),
        member().prop_map(|m| format!("({m}")),
        Just(s("x")),
    ]
}

/// Options after a `ZRANGE`-family range.
fn zrange_options() -> impl Strategy<Value = Vec<String>> {
    let option = prop_oneof![
        Just(vec![s("WITHSCORES")]),
        Just(vec![s("REV")]),
        Just(vec![s("BYSCORE")]),
        (-1i32..3, -1i32..3).prop_map(|(o, c)| vec![s("LIMIT"), o.to_string(), c.to_string()]),
    ];
    prop::collection::vec(option, 0..3).prop_map(|options| options.concat())
}

/// The commands added with the full command table.
fn command_more() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        // strings and keys
        key().prop_map(|k| vec![s("GETDEL"), k]),
        (key(), options_of(GETEX_OPTIONS))
            .prop_map(|(k, options)| [vec![s("GETEX"), k], options].concat()),
        (
            key(),
            prop::sample::select(&["1.5", "-0.25", "3", "abc", "inf"][..])
        )
            .prop_map(|(k, n)| vec![s("INCRBYFLOAT"), k, s(n)]),
        (key(), index(), index()).prop_map(|(k, a, b)| vec![s("GETRANGE"), k, a, b]),
        (key(), 0u8..4, value()).prop_map(|(k, o, v)| vec![s("SETRANGE"), k, o.to_string(), v]),
        key().prop_map(|k| vec![s("SETRANGE"), k, s("-1"), s("x")]),
        (
            key(),
            prop::sample::select(&["1000", "-1", "50"][..]),
            expire_option()
        )
            .prop_map(|(k, t, options)| [vec![s("EXPIRE"), k, s(t)], options].concat()),
        (key(), key()).prop_map(|(a, b)| vec![s("RENAME"), a, b]),
        // hashes
        (key(), member(), value(), member(), value()).prop_map(|(k, f, v, g, w)| vec![
            s("HSET"),
            k,
            f,
            v,
            g,
            w
        ]),
        (key(), member(), value()).prop_map(|(k, f, v)| vec![s("HSETNX"), k, f, v]),
        (key(), member(), value()).prop_map(|(k, f, n)| vec![s("HINCRBY"), k, f, n]),
        (
            key(),
            member(),
            prop::sample::select(&["1.5", "-2", "x"][..])
        )
            .prop_map(|(k, f, n)| vec![s("HINCRBYFLOAT"), k, f, s(n)]),
        (key(), member(), member()).prop_map(|(k, f, g)| vec![s("HDEL"), k, f, g]),
        key().prop_map(|k| vec![s("HSCAN"), k, s("0")]),
        key().prop_map(|k| vec![
            s("HSCAN"),
            k,
            s("0"),
            s("MATCH"),
            s("[xy]"),
            s("COUNT"),
            s("5")
        ]),
        key().prop_map(|k| vec![s("HSCAN"), k, s("0"), s("COUNT"), s("0")]),
        key().prop_map(|k| vec![s("HRANDFIELD"), k, s("100")]),
        key().prop_map(|k| vec![s("HRANDFIELD"), k, s("0"), s("WITHVALUES")]),
        (
            key(),
            prop::sample::select(&["-1", "-3", "-9"][..]),
            any::<bool>()
        )
            .prop_map(|(k, n, values)| {
                let mut command = vec![s("HRANDFIELD"), k, s(n)];
                command.extend(values.then(|| s("WITHVALUES")));
                command
            }),
        // Counts out of Redis's range, refused before the key is read (an
        // in-range count this large would make redis-server send it).
        (
            key(),
            prop::sample::select(
                &[
                    "-9223372036854775808",
                    "-4611686018427387904",
                    "4611686018427387904",
                ][..]
            )
        )
            .prop_map(|(k, n)| vec![s("HRANDFIELD"), k, s(n), s("WITHVALUES")]),
        // lists
        (key(), member()).prop_map(|(k, v)| vec![s("RPUSH"), k, v]),
        (key(), member(), member()).prop_map(|(k, a, b)| vec![s("LPUSHX"), k, a, b]),
        (key(), member()).prop_map(|(k, a)| vec![s("RPUSHX"), k, a]),
        (key(), index(), index()).prop_map(|(k, a, b)| vec![s("LTRIM"), k, a, b]),
        (key(), -2i32..3, member()).prop_map(|(k, n, v)| vec![s("LREM"), k, n.to_string(), v]),
        (
            key(),
            prop::sample::select(&["BEFORE", "AFTER", "NEAR"][..]),
            member(),
            member()
        )
            .prop_map(|(k, w, p, v)| vec![s("LINSERT"), k, s(w), p, v]),
        (key(), member(), options_of(LPOS_OPTIONS)).prop_map(|(k, v, options)| [
            vec![s("LPOS"), k, v],
            options
        ]
        .concat()),
        (
            key(),
            key(),
            prop::sample::select(&["LEFT", "RIGHT", "UP"][..]),
            prop::sample::select(&["LEFT", "RIGHT"][..])
        )
            .prop_map(|(a, b, f, t)| vec![s("LMOVE"), a, b, s(f), s(t)]),
        (key(), key()).prop_map(|(a, b)| vec![s("RPOPLPUSH"), a, b]),
        // sets
        (key(), member(), member()).prop_map(|(k, a, b)| vec![s("SREM"), k, a, b]),
        key().prop_map(|k| vec![s("SPOP"), k, s("100")]),
        key().prop_map(|k| vec![s("SPOP"), k, s("-1")]),
        key().prop_map(|k| vec![s("SRANDMEMBER"), k, s("100")]),
        key().prop_map(|k| vec![s("SRANDMEMBER"), k, s("0")]),
        (
            key(),
            prop::sample::select(&["-1", "-5", "-9223372036854775808"][..])
        )
            .prop_map(|(k, n)| vec![s("SRANDMEMBER"), k, s(n)]),
        key().prop_map(|k| vec![s("SSCAN"), k, s("0"), s("MATCH"), s("*")]),
        (
            prop::sample::select(&["SINTER", "SUNION", "SDIFF"][..]),
            key(),
            key()
        )
            .prop_map(|(c, a, b)| vec![s(c), a, b]),
        (
            prop::sample::select(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"][..]),
            key(),
            key(),
            key()
        )
            .prop_map(|(c, d, a, b)| vec![s(c), d, a, b]),
        // sorted sets
        (key(), zadd_flags(), score(), member()).prop_map(|(k, flags, sc, m)| [
            vec![s("ZADD"), k],
            flags,
            vec![sc, m]
        ]
        .concat()),
        (key(), zadd_flags(), score(), member(), score(), member()).prop_map(
            |(k, flags, a, m, b, n)| [vec![s("ZADD"), k], flags, vec![a, m, b, n]].concat()
        ),
        (key(), score(), member()).prop_map(|(k, sc, m)| vec![s("ZINCRBY"), k, sc, m]),
        (key(), member(), member()).prop_map(|(k, a, b)| vec![s("ZREM"), k, a, b]),
        (key(), member(), member()).prop_map(|(k, a, b)| vec![s("ZMSCORE"), k, a, b]),
        (key(), score_bound(), score_bound()).prop_map(|(k, a, b)| vec![s("ZCOUNT"), k, a, b]),
        (key(), index(), index(), zrange_options()).prop_map(|(k, a, b, o)| [
            vec![s("ZRANGE"), k, a, b],
            o
        ]
        .concat()),
        (key(), score_bound(), score_bound(), zrange_options()).prop_map(|(k, a, b, o)| [
            vec![s("ZRANGE"), k, a, b, s("BYSCORE")],
            o
        ]
        .concat()),
        (key(), score_bound(), score_bound()).prop_map(|(k, a, b)| vec![
            s("ZRANGEBYSCORE"),
            k,
            a,
            b,
            s("LIMIT"),
            s("1"),
            s("2")
        ]),
        (key(), score_bound(), score_bound()).prop_map(|(k, a, b)| vec![
            s("ZREVRANGEBYSCORE"),
            k,
            a,
            b,
            s("WITHSCORES")
        ]),
        member().prop_map(|m| vec![s("ZADD"), s("lex"), s("0"), m]),
        (lex_bound(), lex_bound(), any::<bool>()).prop_map(|(a, b, rev)| {
            let mut command = vec![s("ZRANGE"), s("lex"), a, b, s("BYLEX")];
            if rev {
                command.push(s("REV"));
            }
            command
        }),
        (
            key(),
            prop::sample::select(&["ZPOPMIN", "ZPOPMAX"][..]),
            options_of(POP_COUNTS)
        )
            .prop_map(|(k, c, n)| [vec![s(c), k], n].concat()),
        (key(), index(), index()).prop_map(|(k, a, b)| vec![s("ZREMRANGEBYRANK"), k, a, b]),
        (key(), score_bound(), score_bound()).prop_map(|(k, a, b)| vec![
            s("ZREMRANGEBYSCORE"),
            k,
            a,
            b
        ]),
        key().prop_map(|k| vec![s("ZSCAN"), k, s("0")]),
        // The pattern is prefixed like a key: only this case's keys match.
        prop::sample::select(&["*", "?", "[ab]", "a*"][..]).prop_map(|p| vec![s("KEYS"), s(p)]),
    ]
}

/// Applies the documented normalisations.
fn normalise(command: &str, reply: Value) -> Value {
    match (command, reply) {
        (_, Value::Error(message)) => {
            Value::Error(message.split(' ').next().unwrap_or_default().to_owned())
        }
        // Milliseconds pass between the two servers' answers.
        ("PTTL", Value::Int(ms)) if ms > 0 => Value::Int(1),
        (
            "SMEMBERS" | "HKEYS" | "HVALS" | "SINTER" | "SUNION" | "SDIFF" | "SPOP" | "SRANDMEMBER"
            | "HRANDFIELD" | "KEYS",
            Value::Array(Some(mut items)),
        ) => {
            items.sort_by_key(|item| format!("{item:?}"));
            Value::Array(Some(items))
        }
        // A scan reply: the cursor, then the elements in an unspecified order.
        ("SSCAN" | "HSCAN", Value::Array(Some(mut reply))) if reply.len() == 2 => {
            let elements = reply.pop().map(|elements| {
                normalise(
                    if command == "SSCAN" {
                        "SMEMBERS"
                    } else {
                        "HGETALL"
                    },
                    elements,
                )
            });
            reply.extend(elements);
            Value::Array(Some(reply))
        }
        ("HGETALL", Value::Array(Some(items))) => {
            let mut pairs: Vec<Vec<Value>> = items.chunks(2).map(<[Value]>::to_vec).collect();
            pairs.sort_by_key(|pair| format!("{pair:?}"));
            Value::Array(Some(pairs.concat()))
        }
        (_, reply) => reply,
    }
}

/// A fresh key prefix per case: no state leaks between cases.
fn prefix() -> String {
    static CASE: AtomicU64 = AtomicU64::new(0);
    format!("case{}:", CASE.fetch_add(1, Ordering::Relaxed))
}

fn run(client: &mut Client, prefix: &str, command: &[String]) -> Value {
    let name = command[0].as_str();
    // Key arguments are prefixed: the first argument after the name for most
    // commands, every other one for MSET, all of them for DEL/EXISTS/MGET.
    let args: Vec<String> = command
        .iter()
        .enumerate()
        .map(|(i, arg)| {
            let is_key = match name {
                "MSET" => i % 2 == 1,
                "DEL" | "EXISTS" | "MGET" | "SINTER" | "SUNION" | "SDIFF" | "SINTERSTORE"
                | "SUNIONSTORE" | "SDIFFSTORE" => i >= 1,
                "LMOVE" | "RPOPLPUSH" | "RENAME" => i == 1 || i == 2,
                _ => i == 1,
            };
            if is_key {
                format!("{prefix}{arg}")
            } else {
                arg.clone()
            }
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let reply = client.call(&args);
    // Picks that may repeat are random: compared by their number.
    let repeats = matches!(name, "SRANDMEMBER" | "HRANDFIELD")
        && command.get(2).is_some_and(|count| count.starts_with('-'));
    match reply {
        Value::Array(Some(picks)) if repeats => {
            Value::Array(Some(vec![Value::Simple("pick".into()); picks.len()]))
        }
        reply => normalise(name, reply),
    }
}

#[test]
fn hived_answers_like_redis() {
    // The servers live for this test only (and are stopped by their drops,
    // even when a case fails); proptest runs the cases against them.
    let (hived_server, redis_server) = (Hived::start(), Redis::start());
    let mut runner = TestRunner::new(ProptestConfig::with_cases(200));
    let command = prop_oneof![3 => command(), 2 => command_more()];
    let outcome = runner.run(&prop::collection::vec(command, 1..40), |commands| {
        let (mut hived, mut redis) = (hived_server.client(), redis_server.client());
        let prefix = prefix();
        for (step, command) in commands.iter().enumerate() {
            let ours = run(&mut hived, &prefix, command);
            let theirs = run(&mut redis, &prefix, command);
            prop_assert_eq!(ours, theirs, "step {} of {:?}", step, commands);
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
