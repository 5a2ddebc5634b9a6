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
//!   servers, so `SMEMBERS`, `HGETALL`, `HKEYS` and `HVALS` are compared sorted;
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

/// Applies the documented normalisations.
fn normalise(command: &str, reply: Value) -> Value {
    match (command, reply) {
        (_, Value::Error(message)) => {
            Value::Error(message.split(' ').next().unwrap_or_default().to_owned())
        }
        // Milliseconds pass between the two servers' answers.
        ("PTTL", Value::Int(ms)) if ms > 0 => Value::Int(1),
        ("SMEMBERS" | "HKEYS" | "HVALS", Value::Array(Some(mut items))) => {
            items.sort_by_key(|item| format!("{item:?}"));
            Value::Array(Some(items))
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
                "DEL" | "EXISTS" | "MGET" => i >= 1,
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
    normalise(name, client.call(&args))
}

#[test]
fn hived_answers_like_redis() {
    // The servers live for this test only (and are stopped by their drops,
    // even when a case fails); proptest runs the cases against them.
    let (hived_server, redis_server) = (Hived::start(), Redis::start());
    let mut runner = TestRunner::new(ProptestConfig::with_cases(200));
    let outcome = runner.run(&prop::collection::vec(command(), 1..40), |commands| {
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
