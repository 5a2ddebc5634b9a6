//! The chaos checker: reads every key the workload wrote through every node
//! and decides, from the recorded operations, whether each answer is one the
//! cluster may give. "Acknowledged means kept":
//!
//! - An operation ran, if acknowledged; did not, if refused with
//!   `-TRYAGAIN`; and may have, otherwise (`-INDETERMINATE`, a broken
//!   connection, a timeout, any other reply). One that ran took effect
//!   between its sending and its reply.
//! - String key (SET, DEL; one writer thread): the value must be the effect
//!   of the last acknowledged operation W, or of an operation that may have
//!   run and did not end before W began. Else, if W is a DEL, the key is
//!   *resurrected*; if W is a SET, its value is *lost*.
//! - Hash key (HSET of unique fields, DEL; one writer thread): for some DEL D
//!   that may have been the last to run (the last acknowledged DEL, or a
//!   later one that may have run; or none), the fields are exactly those of
//!   the acknowledged HSETs after D, plus any of the HSETs after D that may
//!   have run, each with its value. Else the acknowledged fields missing are
//!   *lost*, and fields from before the last acknowledged DEL mean the key is
//!   *resurrected*.
//! - Counter (INCR, shared): acknowledged ≤ value ≤ acknowledged + may have
//!   run; no two acknowledged INCRs got the same reply, and none a reply
//!   above the value. Else *out of range*.
//! - List (RPUSH of unique elements, shared): every acknowledged element is
//!   there (else *lost*), none twice (else *duplicated*).
//! - Anything no operation wrote is *unexplained*.
//! - Every node answers every key alike (else *divergent*).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;

use anyhow::bail;

use super::workload::{Key, Op, Outcome, Record};
use crate::cluster::{Client, Reply};

/// A key's state as one node answers it (an empty hash or list is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    Absent,
    Text(String),
    Hash(BTreeMap<String, String>),
    List(Vec<String>),
}

/// Reads `keys` through `addr`: strings and counters with MGET, hashes with
/// HGETALL, lists with LRANGE. Any error reply fails the read (the caller
/// polls again).
pub(super) fn read(addr: SocketAddr, keys: &[Key]) -> anyhow::Result<HashMap<Key, Value>> {
    let mut client = Client::connect(addr)?;
    let mut values = HashMap::with_capacity(keys.len());
    let plain: Vec<Key> = keys
        .iter()
        .copied()
        .filter(|key| matches!(key, Key::Str { .. } | Key::Counter(_)))
        .collect();
    for chunk in plain.chunks(200) {
        let names: Vec<String> = chunk.iter().map(Key::name).collect();
        let mut args = vec!["MGET"];
        args.extend(names.iter().map(String::as_str));
        let reply = client.call(&args)?;
        let Reply::Array(Some(replies)) = reply else {
            bail!("MGET through {addr}: {reply:?}");
        };
        for (key, reply) in chunk.iter().zip(replies) {
            let value = match reply {
                Reply::Bulk(None) => Value::Absent,
                Reply::Bulk(Some(_)) => Value::Text(reply.text().unwrap_or_default()),
                other => bail!("MGET {} through {addr}: {other:?}", key.name()),
            };
            values.insert(*key, value);
        }
    }
    for key in keys {
        let name = key.name();
        let reply = match key {
            Key::Hash { .. } => client.call(&["HGETALL", &name])?,
            Key::List { .. } => client.call(&["LRANGE", &name, "0", "-1"])?,
            Key::Str { .. } | Key::Counter(_) => continue,
        };
        let Reply::Array(Some(items)) = &reply else {
            bail!("reading {name} through {addr}: {reply:?}");
        };
        let texts: Vec<String> = items.iter().filter_map(Reply::text).collect();
        let value = match key {
            _ if texts.is_empty() => Value::Absent,
            Key::Hash { .. } => Value::Hash(
                texts
                    .chunks(2)
                    .map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or_default()))
                    .collect(),
            ),
            _ => Value::List(texts),
        };
        values.insert(*key, value);
    }
    Ok(values)
}

/// The violations found, by kind.
#[derive(Debug, Default)]
pub(super) struct Findings {
    /// Acknowledged SET values, HSET fields and RPUSH elements missing.
    pub(super) lost: usize,
    /// RPUSH elements found more often than sent (extra copies).
    pub(super) duplicated: usize,
    /// Keys deleted (acknowledged) that exist again with an older state.
    pub(super) resurrected: usize,
    /// Keys the nodes answer differently.
    pub(super) divergent: usize,
    pub(super) counters_out_of_range: usize,
    /// Values, fields or elements no operation wrote.
    pub(super) unexplained: usize,
    /// A few of the findings in words, with the operations on the key.
    pub(super) examples: Vec<String>,
    /// Every key with a finding.
    pub(super) keys: Vec<Key>,
}

impl Findings {
    pub(super) fn violations(&self) -> usize {
        self.lost
            + self.duplicated
            + self.resurrected
            + self.divergent
            + self.counters_out_of_range
            + self.unexplained
    }
}

/// What one node's answer for one key breaks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Verdict {
    lost: usize,
    duplicated: usize,
    resurrected: bool,
    out_of_range: bool,
    unexplained: usize,
}

/// Checks every node's answers (`(node id, values)`) against `records`.
pub(super) fn check(records: &[Record], answers: &[(String, HashMap<Key, Value>)]) -> Findings {
    let mut histories: BTreeMap<Key, Vec<&Record>> = BTreeMap::new();
    for record in records {
        if record.outcome != Outcome::NotExecuted {
            histories.entry(record.key).or_default().push(record);
        }
    }
    let mut findings = Findings::default();
    for (key, history) in &mut histories {
        history.sort_by_key(|record| record.issued);
        let mut worst = Verdict::default();
        let mut described = false;
        for (node, values) in answers {
            let value = values.get(key).unwrap_or(&Value::Absent);
            let verdict = match key {
                Key::Str { .. } => check_string(history, value),
                Key::Hash { .. } => check_hash(history, value),
                Key::Counter(_) => check_counter(history, value),
                Key::List { .. } => check_list(history, value),
            };
            if verdict != Verdict::default() && !described && findings.examples.len() < 20 {
                findings
                    .examples
                    .push(describe(*key, node, value, &verdict, history));
                described = true;
            }
            worst = Verdict {
                lost: worst.lost.max(verdict.lost),
                duplicated: worst.duplicated.max(verdict.duplicated),
                resurrected: worst.resurrected || verdict.resurrected,
                out_of_range: worst.out_of_range || verdict.out_of_range,
                unexplained: worst.unexplained.max(verdict.unexplained),
            };
        }
        let first = answers.first().and_then(|(_, values)| values.get(key));
        let divergent = answers.iter().any(|(_, values)| values.get(key) != first);
        if worst != Verdict::default() || divergent {
            findings.keys.push(*key);
        }
        findings.lost += worst.lost;
        findings.duplicated += worst.duplicated;
        findings.resurrected += usize::from(worst.resurrected);
        findings.counters_out_of_range += usize::from(worst.out_of_range);
        findings.unexplained += worst.unexplained;
        if divergent {
            findings.divergent += 1;
            if findings.examples.len() < 20 {
                let mut text = format!("{}: nodes answer differently:", key.name());
                for (node, values) in answers {
                    let _ = write!(text, " {node}: {:?};", values.get(key));
                }
                findings.examples.push(text);
            }
        }
    }
    findings
}

/// The last acknowledged operation (of kind `op`, if given) of a key.
fn last_acknowledged<'a>(history: &[&'a Record], op: Option<Op>) -> Option<&'a Record> {
    history
        .iter()
        .filter(|record| record.outcome == Outcome::Ok && op.is_none_or(|op| record.op == op))
        .max_by_key(|record| record.replied)
        .copied()
}

fn check_string(history: &[&Record], value: &Value) -> Verdict {
    let effect = |record: &Record| match record.op {
        Op::Set => Value::Text(record.item()),
        _ => Value::Absent,
    };
    let last = last_acknowledged(history, None);
    let from = last.map_or(0, |last| last.issued);
    let mut possible = vec![last.map_or(Value::Absent, effect)];
    possible.extend(
        history
            .iter()
            .filter(|record| record.replied > from)
            .map(|record| effect(record)),
    );
    if possible.contains(value) {
        return Verdict::default();
    }
    match last.map(|last| last.op) {
        Some(Op::Del) => Verdict {
            resurrected: true,
            ..Verdict::default()
        },
        Some(_) => Verdict {
            lost: 1,
            ..Verdict::default()
        },
        None => Verdict {
            unexplained: 1,
            ..Verdict::default()
        },
    }
}

fn check_hash(history: &[&Record], value: &Value) -> Verdict {
    let empty = BTreeMap::new();
    let found = match value {
        Value::Hash(fields) => fields,
        Value::Absent => &empty,
        Value::Text(_) | Value::List(_) => {
            return Verdict {
                unexplained: 1,
                ..Verdict::default()
            };
        }
    };
    // The DELs that may have been the last to run, as the sequence number
    // after which HSETs count: the last acknowledged one (or the start)...
    let last_del = last_acknowledged(history, Some(Op::Del));
    let first = last_del.map_or(0, |del| del.issued);
    let mut cuts = vec![first];
    // ... or any later one that may have run.
    cuts.extend(
        history
            .iter()
            .filter(|record| record.op == Op::Del && record.issued > first)
            .map(|record| record.issued),
    );
    let mut best: Option<Verdict> = None;
    for cut in cuts {
        let after: Vec<&&Record> = history
            .iter()
            .filter(|record| record.op == Op::HSet && record.issued > cut)
            .collect();
        let lost = after
            .iter()
            .filter(|record| {
                record.outcome == Outcome::Ok
                    && found.get(&record.item()) != Some(&record.field_value())
            })
            .count();
        let extra: Vec<&String> = found
            .iter()
            .filter(|(field, value)| {
                !after
                    .iter()
                    .any(|record| record.item() == **field && record.field_value() == **value)
            })
            .map(|(field, _)| field)
            .collect();
        // Fields an acknowledged DEL removed, back again.
        let removed = |field: &String| {
            last_del.is_some_and(|del| {
                history.iter().any(|record| {
                    record.op == Op::HSet && record.issued < del.issued && record.item() == *field
                })
            })
        };
        let resurrected = extra.iter().filter(|field| removed(field)).count();
        let verdict = Verdict {
            lost,
            resurrected: resurrected > 0,
            unexplained: extra.len() - resurrected,
            ..Verdict::default()
        };
        let weight = |v: &Verdict| v.lost + v.unexplained + usize::from(v.resurrected);
        if best.is_none_or(|best| weight(&verdict) < weight(&best)) {
            best = Some(verdict);
        }
    }
    best.unwrap_or_default()
}

fn check_counter(history: &[&Record], value: &Value) -> Verdict {
    let count = match value {
        Value::Absent => 0,
        Value::Text(text) => match text.parse::<i64>() {
            Ok(count) => count,
            Err(_) => {
                return Verdict {
                    unexplained: 1,
                    ..Verdict::default()
                };
            }
        },
        Value::Hash(_) | Value::List(_) => {
            return Verdict {
                unexplained: 1,
                ..Verdict::default()
            };
        }
    };
    let mut replies: Vec<i64> = history
        .iter()
        .filter(|record| record.outcome == Outcome::Ok)
        .map(|record| record.counted)
        .collect();
    let acknowledged = i64::try_from(replies.len()).expect("fits");
    let maybe = i64::try_from(history.len()).expect("fits") - acknowledged;
    replies.sort_unstable();
    let repeated = replies.windows(2).any(|pair| pair[0] == pair[1]);
    let above = replies.last().is_some_and(|&highest| highest > count);
    Verdict {
        out_of_range: count < acknowledged || count > acknowledged + maybe || repeated || above,
        ..Verdict::default()
    }
}

fn check_list(history: &[&Record], value: &Value) -> Verdict {
    let found: &[String] = match value {
        Value::List(items) => items,
        Value::Absent => &[],
        Value::Text(_) | Value::Hash(_) => {
            return Verdict {
                unexplained: 1,
                ..Verdict::default()
            };
        }
    };
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for item in found {
        *copies.entry(item).or_default() += 1;
    }
    let sent: HashMap<String, Outcome> = history
        .iter()
        .map(|record| (record.item(), record.outcome))
        .collect();
    Verdict {
        lost: sent
            .iter()
            .filter(|(item, outcome)| {
                **outcome == Outcome::Ok && !copies.contains_key(item.as_str())
            })
            .count(),
        duplicated: copies.values().map(|&n| n.saturating_sub(1)).sum(),
        unexplained: copies
            .keys()
            .filter(|item| !sent.contains_key(**item))
            .count(),
        ..Verdict::default()
    }
}

/// Writes every operation on the keys with findings, and what each node
/// answered for them, to `path`.
pub(super) fn dump(
    path: &std::path::Path,
    findings: &Findings,
    records: &[Record],
    answers: &[(String, HashMap<Key, Value>)],
) -> std::io::Result<()> {
    let mut text = String::new();
    for key in &findings.keys {
        let _ = writeln!(text, "{}", key.name());
        for (node, values) in answers {
            let _ = writeln!(text, "  {node} answers {:?}", values.get(key));
        }
        let mut history: Vec<&Record> = records.iter().filter(|r| r.key == *key).collect();
        history.sort_by_key(|record| record.issued);
        for record in history {
            let _ = writeln!(
                text,
                "  {:?} {} {:?} counted {} seq {}..{} at {:.6?} via seat {} thread {}",
                record.op,
                record.item(),
                record.outcome,
                record.counted,
                record.issued,
                record.replied,
                record.at,
                record.seat,
                record.thread
            );
        }
    }
    std::fs::write(path, text)
}

/// A finding in words: the key, the first node whose answer breaks a rule,
/// what it answered, and the last operations on the key.
fn describe(key: Key, node: &str, value: &Value, verdict: &Verdict, history: &[&Record]) -> String {
    let shown = match value {
        Value::List(items) if items.len() > 8 => format!("a list of {} elements", items.len()),
        other => format!("{other:?}"),
    };
    let mut text = format!("{} through {node}: {verdict:?}; holds {shown}", key.name());
    let acknowledged = || history.iter().filter(|r| r.outcome == Outcome::Ok);
    // The operations that explain the finding best: the acknowledged
    // elements missing from a list, else the last operations on the key.
    let shown: Vec<&Record> = match (key, value) {
        (Key::List { .. }, _) => {
            let found: Vec<&String> = match value {
                Value::List(items) => items.iter().collect(),
                _ => Vec::new(),
            };
            let missing: Vec<&Record> = acknowledged()
                .filter(|record| !found.contains(&&record.item()))
                .copied()
                .collect();
            let _ = write!(text, "; {} acknowledged elements missing", missing.len());
            missing.into_iter().take(10).collect()
        }
        (Key::Counter(_), _) => {
            let mut replies: Vec<i64> = acknowledged().map(|record| record.counted).collect();
            replies.sort_unstable();
            let repeated: Vec<i64> = replies
                .windows(2)
                .filter(|pair| pair[0] == pair[1])
                .map(|pair| pair[0])
                .take(10)
                .collect();
            let _ = write!(
                text,
                "; {} acknowledged INCRs, {} that may have run, highest reply {:?}, replies \
                 given twice: {repeated:?}",
                replies.len(),
                history.len() - replies.len(),
                replies.last()
            );
            history[history.len().saturating_sub(8)..].to_vec()
        }
        _ => history[history.len().saturating_sub(8)..].to_vec(),
    };
    text.push_str("; operations:");
    for record in shown {
        let what = match record.op {
            Op::Set | Op::HSet | Op::RPush => record.item(),
            Op::Incr if record.outcome == Outcome::Ok => format!("-> {}", record.counted),
            Op::Incr | Op::Del => String::new(),
        };
        let _ = write!(
            text,
            "\n      {:?} {what} {:?} seq {}..{} at {:.3?} via seat {}",
            record.op, record.outcome, record.issued, record.replied, record.at, record.seat
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::chaos::workload::Why;

    /// Operations on one key by one thread, one after the other.
    fn history(key: Key, ops: &[(Op, Outcome)]) -> Vec<Record> {
        ops.iter()
            .enumerate()
            .map(|(i, &(op, outcome))| Record {
                key,
                op,
                thread: 0,
                seat: 0,
                n: u32::try_from(i).unwrap(),
                outcome,
                issued: 2 * i as u64 + 1,
                replied: 2 * i as u64 + 2,
                at: Duration::ZERO,
                counted: 0,
            })
            .collect()
    }

    fn verdict(records: &[Record], value: Value) -> Findings {
        check(
            records,
            &[("node1".to_owned(), HashMap::from([(records[0].key, value)]))],
        )
    }

    const MAYBE: Outcome = Outcome::Maybe(Why::Connection);
    const STR: Key = Key::Str {
        thread: 0,
        index: 0,
    };
    const HASH: Key = Key::Hash {
        thread: 0,
        index: 0,
    };

    #[test]
    fn a_string_holds_its_last_acknowledged_value_or_a_later_maybe() {
        let ops = history(
            STR,
            &[
                (Op::Set, Outcome::Ok),
                (Op::Set, MAYBE),
                (Op::Set, Outcome::Ok),
                (Op::Set, MAYBE),
                (Op::Del, MAYBE),
            ],
        );
        for fine in [text("v0.2"), text("v0.3"), Value::Absent] {
            assert_eq!(verdict(&ops, fine).violations(), 0);
        }
        // Earlier values: the acknowledged v0.2 was lost.
        assert_eq!(verdict(&ops, text("v0.0")).lost, 1);
        assert_eq!(verdict(&ops, text("v0.1")).lost, 1);
        assert_eq!(verdict(&ops, text("nobody")).lost, 1);
    }

    #[test]
    fn an_acknowledged_delete_sticks() {
        let ops = history(STR, &[(Op::Set, Outcome::Ok), (Op::Del, Outcome::Ok)]);
        assert_eq!(verdict(&ops, Value::Absent).violations(), 0);
        assert_eq!(verdict(&ops, text("v0.0")).resurrected, 1);
        let ops = history(
            STR,
            &[
                (Op::Set, Outcome::Ok),
                (Op::Del, Outcome::Ok),
                (Op::Set, MAYBE),
            ],
        );
        assert_eq!(verdict(&ops, text("v0.2")).violations(), 0);
        assert_eq!(verdict(&ops, text("v0.0")).resurrected, 1);
    }

    #[test]
    fn a_hash_holds_every_acknowledged_field_since_the_last_delete() {
        let ops = history(
            HASH,
            &[
                (Op::HSet, Outcome::Ok),
                (Op::Del, Outcome::Ok),
                (Op::HSet, Outcome::Ok),
                (Op::HSet, MAYBE),
                (Op::HSet, Outcome::NotExecuted),
            ],
        );
        assert_eq!(verdict(&ops, hash(&[2])).violations(), 0);
        assert_eq!(verdict(&ops, hash(&[2, 3])).violations(), 0);
        assert_eq!(verdict(&ops, Value::Absent).lost, 1);
        assert_eq!(verdict(&ops, hash(&[0, 2])).resurrected, 1);
        assert_eq!(verdict(&ops, hash(&[2, 4])).unexplained, 1);
    }

    #[test]
    fn a_delete_that_may_have_run_may_have_emptied_a_hash() {
        let ops = history(
            HASH,
            &[
                (Op::HSet, Outcome::Ok),
                (Op::Del, MAYBE),
                (Op::HSet, Outcome::Ok),
            ],
        );
        assert_eq!(verdict(&ops, hash(&[2])).violations(), 0);
        assert_eq!(verdict(&ops, hash(&[0, 2])).violations(), 0);
        assert_eq!(verdict(&ops, hash(&[0])).lost, 1);
    }

    #[test]
    fn a_counter_stays_between_acknowledged_and_maybe() {
        let key = Key::Counter(0);
        let mut ops = history(
            key,
            &[
                (Op::Incr, Outcome::Ok),
                (Op::Incr, MAYBE),
                (Op::Incr, Outcome::Ok),
            ],
        );
        ops[0].counted = 1;
        ops[2].counted = 3;
        assert_eq!(verdict(&ops, text("3")).violations(), 0);
        assert_eq!(
            verdict(&ops, text("2")).counters_out_of_range,
            1,
            "below a reply"
        );
        assert_eq!(verdict(&ops, text("4")).counters_out_of_range, 1);
        ops[2].counted = 1;
        assert_eq!(
            verdict(&ops, text("2")).counters_out_of_range,
            1,
            "a reply twice"
        );
    }

    #[test]
    fn a_list_holds_every_acknowledged_element_once() {
        let key = Key::List { index: 0, epoch: 0 };
        let ops = history(key, &[(Op::RPush, Outcome::Ok), (Op::RPush, MAYBE)]);
        let list = |items: &[&str]| Value::List(items.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(verdict(&ops, list(&["e0.0"])).violations(), 0);
        assert_eq!(verdict(&ops, list(&["e0.0", "e0.1"])).violations(), 0);
        assert_eq!(verdict(&ops, list(&["e0.1"])).lost, 1);
        assert_eq!(verdict(&ops, list(&["e0.0", "e0.0"])).duplicated, 1);
        assert_eq!(verdict(&ops, list(&["e0.0", "e9.9"])).unexplained, 1);
    }

    #[test]
    fn nodes_that_answer_differently_diverge() {
        let ops = history(STR, &[(Op::Set, Outcome::Ok), (Op::Set, MAYBE)]);
        let answers = [
            ("node1".to_owned(), HashMap::from([(STR, text("v0.0"))])),
            ("node2".to_owned(), HashMap::from([(STR, text("v0.1"))])),
        ];
        let findings = check(&ops, &answers);
        assert_eq!((findings.divergent, findings.violations()), (1, 1));
    }

    fn text(value: &str) -> Value {
        Value::Text(value.to_owned())
    }

    /// A hash holding the fields HSET number `ns` wrote.
    fn hash(ns: &[u32]) -> Value {
        Value::Hash(
            ns.iter()
                .map(|n| (format!("f0.{n}"), format!("x0.{n}")))
                .collect(),
        )
    }
}
