//! The chaos runner's report: the faults as they ran with the write gap
//! around each, the operations by outcome, the findings and convergence.

use std::time::{Duration, Instant};

use super::schedule::Step;
use super::workload::{Op, Outcome, Why};
use super::{Converged, Exercised, Settings};

/// The longest time between two writes acknowledged through seats other
/// than `seat`, from the last one before `from` to the first after `to`;
/// `acks` are sorted by time.
fn write_gap(acks: &[(Duration, u16)], seat: usize, from: Duration, to: Duration) -> Duration {
    let other = |(_, by): &&(Duration, u16)| usize::from(*by) != seat;
    let split = acks.partition_point(|(at, _)| *at <= from);
    let mut previous = acks[..split]
        .iter()
        .rev()
        .find(other)
        .map_or(from, |(at, _)| *at);
    let mut longest = Duration::ZERO;
    for (at, _) in acks[split..].iter().filter(other) {
        longest = longest.max(*at - previous);
        previous = *at;
        if *at > to {
            return longest;
        }
    }
    // No write went through after the fault's end: the gap lasts to it.
    longest.max(to.saturating_sub(previous))
}

pub(super) fn report(
    settings: &Settings,
    run: &Exercised,
    steps: &[Step],
    verdict: &anyhow::Result<Converged>,
    stopped: Instant,
) {
    let records = &run.records;
    let mut acks: Vec<(Duration, u16)> = records
        .iter()
        .filter(|record| record.outcome == Outcome::Ok)
        .map(|record| (record.at, record.seat))
        .collect();
    acks.sort_unstable();
    println!(
        "\nchaos: seed {}, {} s, {} nodes, RF {}; faults run {} of {} planned",
        settings.seed,
        settings.seconds,
        settings.nodes,
        settings.replication_factor,
        run.faults.len(),
        steps.len()
    );
    let spare = settings.nodes;
    let mut p9: Option<(Duration, usize)> = None;
    println!(
        "{:<4} {:>7} {:>9} {:>9}  fault",
        "#", "hit", "recovered", "write gap"
    );
    for done in &run.faults {
        let gap = write_gap(&acks, done.fault.seat(spare), done.hit, done.recovered);
        if done.fault.is_kill() && p9.is_none_or(|(longest, _)| gap > longest) {
            p9 = Some((gap, done.index));
        }
        println!(
            "#{:<3} {:>6.1}s {:>8.1}s {:>8.2}s  {} ({})",
            done.index,
            done.hit.as_secs_f64(),
            done.recovered.as_secs_f64(),
            gap.as_secs_f64(),
            done.fault,
            done.note
        );
    }
    println!(
        "\n{:<6} {:>9} {:>9} {:>12} {:>14} | {:>13} {:>10} {:>7} {:>5}",
        "op",
        "sent",
        "ok",
        "not-executed",
        "maybe-executed",
        "indeterminate",
        "connection",
        "timeout",
        "other"
    );
    let ops = [
        ("SET", Some(Op::Set)),
        ("HSET", Some(Op::HSet)),
        ("RPUSH", Some(Op::RPush)),
        ("INCR", Some(Op::Incr)),
        ("DEL", Some(Op::Del)),
        ("total", None),
    ];
    for (name, op) in ops {
        let count = |outcome: &dyn Fn(Outcome) -> bool| {
            records
                .iter()
                .filter(|record| op.is_none_or(|op| record.op == op) && outcome(record.outcome))
                .count()
        };
        let why = |why: Why| count(&|outcome| outcome == Outcome::Maybe(why));
        println!(
            "{name:<6} {:>9} {:>9} {:>12} {:>14} | {:>13} {:>10} {:>7} {:>5}",
            count(&|_| true),
            count(&|outcome| outcome == Outcome::Ok),
            count(&|outcome| outcome == Outcome::NotExecuted),
            count(&|outcome| matches!(outcome, Outcome::Maybe(_))),
            why(Why::Indeterminate),
            why(Why::Connection),
            why(Why::Timeout),
            why(Why::Other),
        );
    }
    if !run.unexpected.is_empty() {
        println!("unexpected replies (counted as maybe-executed), the first ones:");
        for reply in &run.unexpected {
            println!("  {reply}");
        }
    }
    match verdict {
        Ok(converged) => {
            let findings = &converged.findings;
            let rows = [
                (
                    "lost (acked SET values, HSET fields, RPUSH elements)",
                    findings.lost,
                ),
                ("duplicated (RPUSH elements)", findings.duplicated),
                ("resurrected (keys)", findings.resurrected),
                ("divergent (keys)", findings.divergent),
                ("counters out of range", findings.counters_out_of_range),
                ("unexplained (values nobody wrote)", findings.unexplained),
            ];
            println!();
            for (name, count) in rows {
                println!("{name:<54} {count:>8}");
            }
            match &converged.settled {
                Ok(settled) => println!(
                    "{:<54} {:>7.1}s",
                    "settled after the workload stopped (members, moves)",
                    settled.as_secs_f64()
                ),
                Err(err) => println!("{:<54} {err}", "did not settle"),
            }
            println!(
                "{:<54} {:>7.1}s{}",
                "time to converge (the check that passed began)",
                converged.checked.as_secs_f64(),
                if findings.violations() == 0 {
                    ""
                } else {
                    " (never passed)"
                }
            );
            let tombstones: Vec<String> = converged
                .tombstones
                .iter()
                .map(|(id, count)| format!("{id} {count}"))
                .collect();
            println!("{:<54} {}", "tombstones at the end", tombstones.join(", "));
        }
        Err(err) => println!(
            "\ncould not read the members {:.1?} after the workload stopped: {err:#}",
            stopped.elapsed()
        ),
    }
    match p9 {
        Some((gap, index)) => println!(
            "{:<54} {:>7.2}s (#{index})",
            "longest write gap around a kill (P9)",
            gap.as_secs_f64()
        ),
        None => println!(
            "{:<54} {:>8}",
            "longest write gap around a kill (P9)", "no kill"
        ),
    }
}
