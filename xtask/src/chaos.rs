//! `cargo xtask chaos`: a seeded fault schedule under a mixed workload, and
//! a checker that proves "acknowledged means kept" (spec: cluster.md G1-G7).
//!
//! N `hived` processes with fixed ids and ports run a workload of SET, HSET,
//! RPUSH, INCR and DEL through every node at once, each operation recorded
//! with its outcome, while the runner injects one fault at a time from a
//! plan the seed fixes (`schedule.rs`): `kill -9` with a restart at once,
//! after detection, or by a new id; a graceful leave and rejoin; a join and a
//! graceful leave; SIGSTOP pauses, one shorter and one longer than failure
//! detection and the tombstone retention; and, as root with `ip`, a network
//! partition of one node (every node then lives in its own network
//! namespace, `netns.rs`). After each fault the runner waits until every
//! node sees every member alive and nothing to move. At the end it stops the
//! workload, waits for the cluster to settle and checks every key through
//! every node (`check.rs` states the rules); any violation fails the run,
//! which prints the seed to replay it with.

mod check;
mod report;
mod schedule;
mod seats;
mod workload;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use self::check::Findings;
use self::schedule::{Fault, Step};
use self::seats::Cluster;
use self::workload::{Outcome, Record, Shared};
use crate::netns::missing_privileges;

const USAGE: &str = "\
Usage: cargo xtask chaos [--seed S] [--seconds T] [--nodes N] [--rf R] [--clients C] [--no-netns]
  Runs N hived processes (default 3, at most 5; RF R, default 2) under a mixed
  workload from C client threads per node (default 2) for T seconds (default
  60) while injecting a fault schedule planned from seed S (default: random,
  printed), then checks every key through every node: nothing acknowledged
  lost, no RPUSH duplicated, no acknowledged delete undone, counters in
  range, all nodes alike. As root with `ip`, nodes run in network namespaces
  and the schedule includes a partition; --no-netns keeps them on 127.0.0.1.
  Exits non-zero on any violation; the same --seed replays the schedule.
";

/// Bound on the final checks once the cluster has settled.
const CONVERGE: Duration = Duration::from_secs(30);

struct Settings {
    seed: u64,
    seconds: u64,
    nodes: usize,
    replication_factor: usize,
    clients: usize,
    netns: bool,
}

impl Settings {
    fn replay(&self) -> String {
        format!(
            "cargo xtask chaos --seed {} --seconds {} --nodes {} --rf {} --clients {}{}",
            self.seed,
            self.seconds,
            self.nodes,
            self.replication_factor,
            self.clients,
            if self.netns { "" } else { " --no-netns" }
        )
    }
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let Some(mut settings) = parse(args)? else {
        print!("{USAGE}");
        return Ok(());
    };
    let missing = missing_privileges();
    if let (true, Some(missing)) = (settings.netns, missing) {
        println!("chaos: partitions left out: {missing}; nodes run on 127.0.0.1 (CI runs as root)");
        settings.netns = false;
    }
    crate::run_command(crate::cargo().args(["build", "--release", "-p", "hived"]))?;
    let binary = crate::workspace_root().join("target/release/hived");
    let budget = Duration::from_secs(settings.seconds);
    let steps = schedule::plan(settings.seed, budget, settings.nodes, settings.netns);
    println!(
        "chaos: seed {}, {} s, {} nodes, RF {}, {} clients per node, {}",
        settings.seed,
        settings.seconds,
        settings.nodes,
        settings.replication_factor,
        settings.clients,
        if settings.netns {
            "nodes in network namespaces (partitions included)"
        } else {
            "nodes on 127.0.0.1 (no partitions)"
        }
    );
    println!("replay: {}", settings.replay());
    print!("{}", show_schedule(&steps, settings.nodes));

    let mut cluster = Cluster::create(&binary, &settings)?;
    for seat in 0..settings.nodes {
        cluster.start(seat)?;
    }
    cluster.settle()?;
    println!("chaos: {} members settled", settings.nodes);

    let run = exercise(&mut cluster, &settings, &steps);
    let stopped = Instant::now();
    let verdict = converge(&cluster, &run.records);
    report::report(&settings, &run, &steps, &verdict, stopped);
    let Exercised {
        records, failure, ..
    } = run;
    let panics = cluster.panics();
    if !panics.is_empty() {
        println!("hived panicked (the process went on; the panicking task did not):");
        for panic in &panics {
            println!("  {panic}");
        }
    }
    let converged = match verdict {
        Ok(converged) => converged,
        Err(err) => {
            print!("{}", show_schedule(&steps, settings.nodes));
            return Err(err.context(format!(
                "the members could not be read; logs in {}; replay: {}",
                cluster.logs.display(),
                settings.replay()
            )));
        }
    };
    let findings = &converged.findings;
    if !findings.keys.is_empty() {
        let path = cluster.logs.join("findings.txt");
        check::dump(&path, findings, &records, &converged.answers)?;
        println!(
            "every operation on the {} keys with findings: {}",
            findings.keys.len(),
            path.display()
        );
    }
    let unsettled = converged.settled.as_ref().err();
    if findings.violations() > 0 || failure.is_some() || unsettled.is_some() {
        for example in &findings.examples {
            println!("  {example}");
        }
        print!("{}", show_schedule(&steps, settings.nodes));
        let mut message = format!("{} violations", findings.violations());
        if let Some(failure) = failure {
            let _ = write!(message, "; a fault failed: {failure:#}");
        }
        if let Some(unsettled) = unsettled {
            let _ = write!(message, "; at the end, {unsettled}");
        }
        bail!(
            "{message}; seed {}; logs in {}; replay: {}",
            settings.seed,
            cluster.logs.display(),
            settings.replay()
        );
    }
    if records.iter().all(|record| record.outcome != Outcome::Ok) {
        bail!("no operation was acknowledged: the cluster never served");
    }
    Ok(())
}

/// Reads the options; `None` for `--help`.
fn parse(args: &[String]) -> anyhow::Result<Option<Settings>> {
    let mut settings = Settings {
        seed: random_seed(),
        seconds: 60,
        nodes: 3,
        replication_factor: 2,
        clients: 2,
        netns: true,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => settings.seed = crate::option_value(&mut args, arg)?,
            "--seconds" => settings.seconds = crate::option_value(&mut args, arg)?,
            "--nodes" => settings.nodes = crate::option_value(&mut args, arg)?,
            "--rf" => settings.replication_factor = crate::option_value(&mut args, arg)?,
            "--clients" => settings.clients = crate::option_value(&mut args, arg)?,
            "--no-netns" => settings.netns = false,
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    if !(2..=5).contains(&settings.nodes) {
        bail!("--nodes must be 2 to 5");
    }
    if !(2..=settings.nodes).contains(&settings.replication_factor) {
        bail!("--rf must be 2 to --nodes: one node at a time fails, and RF 1 loses its keys");
    }
    if !(1..=8).contains(&settings.clients) {
        bail!("--clients must be 1 to 8");
    }
    if settings.seconds < 10 {
        bail!("--seconds must be at least 10");
    }
    Ok(Some(settings))
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    u64::from(nanos ^ std::process::id()) % 1_000_000
}

fn show_schedule(steps: &[Step], nodes: usize) -> String {
    let mut text = format!(
        "schedule ({} faults; seats 0..{} start as node1..node{nodes}, seat {nodes} is the spare):\n",
        steps.len(),
        nodes - 1
    );
    for (index, step) in steps.iter().enumerate() {
        let _ = writeln!(
            text,
            "  #{index} at {:>5.1}s: {}",
            step.due.as_secs_f64(),
            step.fault
        );
    }
    text
}

/// SplitMix64: a small seeded generator, so a seed replays the same choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An index in `0..n`.
    fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).expect("below n")
    }

    /// A duration from `low` to `high` milliseconds.
    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.below(high - low + 1))
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

/// A fault as it ran.
struct Done {
    index: usize,
    fault: Fault,
    /// When the fault hit (the kill, the stop, the cut), since the workload began.
    hit: Duration,
    /// When the cluster had settled again.
    recovered: Duration,
    note: String,
}

/// What the workload and the fault schedule did.
struct Exercised {
    /// Every operation sent.
    records: Vec<Record>,
    faults: Vec<Done>,
    /// The error of a fault that failed: the run stops injecting then, and
    /// the checks still run.
    failure: Option<anyhow::Error>,
    /// The first replies that were neither expected nor errors the cluster
    /// defines (counted as maybe-executed).
    unexpected: Vec<String>,
}

/// Runs the workload for the budget while injecting `steps`.
fn exercise(cluster: &mut Cluster, settings: &Settings, steps: &[Step]) -> Exercised {
    let seats = cluster.seats.len();
    let threads = seats * settings.clients;
    let shared = Arc::new(Shared::new(threads));
    let current = Arc::new(Mutex::new(String::from("none")));
    let clients: Vec<_> = (0..threads)
        .map(|thread| {
            let seat = thread / settings.clients;
            let (addr, seed, shared) = (cluster.seats[seat].resp(), settings.seed, shared.clone());
            std::thread::spawn(move || workload::client(thread, seat, addr, seed, &shared))
        })
        .collect();
    let reporter = {
        let (shared, current) = (shared.clone(), current.clone());
        std::thread::spawn(move || progress(&shared, &current))
    };

    let budget = Duration::from_secs(settings.seconds);
    let mut done = Vec::new();
    let mut failure = None;
    for (index, step) in steps.iter().enumerate() {
        // The quiet gap before the fault.
        std::thread::sleep(step.due.saturating_sub(shared.started.elapsed()));
        if shared.started.elapsed() + step.cost > budget {
            println!("  #{index} skipped: out of time");
            continue;
        }
        *current.lock().expect("no panic") = format!("#{index} {}", step.fault);
        println!(
            "  [{:>5.1}s] #{index}: {}",
            shared.started.elapsed().as_secs_f64(),
            step.fault
        );
        match inject(cluster, step.fault, &shared, settings.clients) {
            Ok((hit, note)) => {
                let recovered = shared.started.elapsed();
                println!(
                    "  [{:>5.1}s] #{index} recovered: {note}",
                    recovered.as_secs_f64()
                );
                done.push(Done {
                    index,
                    fault: step.fault,
                    hit,
                    recovered,
                    note,
                });
            }
            Err(err) => {
                println!("  #{index} FAILED: {err:#}");
                failure = Some(err);
                break;
            }
        }
        *current.lock().expect("no panic") = String::from("none");
    }
    if failure.is_none() {
        std::thread::sleep(budget.saturating_sub(shared.started.elapsed()));
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut records = Vec::new();
    for client in clients {
        records.extend(client.join().expect("a client thread"));
    }
    reporter.join().expect("the progress thread");
    let unexpected = shared.unexpected.lock().expect("no panic").clone();
    Exercised {
        records,
        faults: done,
        failure,
        unexpected,
    }
}

/// Injects one fault and waits for the cluster to recover; returns when it
/// hit and what happened.
fn inject(
    cluster: &mut Cluster,
    fault: Fault,
    shared: &Shared,
    clients: usize,
) -> anyhow::Result<(Duration, String)> {
    let now = || shared.started.elapsed();
    let mut note = String::new();
    let seat = fault.seat(cluster.spare());
    let id = cluster.seats[seat].id.clone();
    let hit;
    match fault {
        Fault::CrashRestart { .. } => {
            hit = now();
            cluster.kill(seat)?;
            cluster.start(seat)?;
            let _ = write!(note, "{id} killed and restarted");
        }
        Fault::CrashDetectRestart { .. } => {
            hit = now();
            cluster.kill(seat)?;
            let detected = cluster.detected(&id)?;
            cluster.start(seat)?;
            let _ = write!(
                note,
                "{id} killed, failure seen after {detected:.1?}, restarted"
            );
        }
        Fault::CrashReplace {
            after_detection, ..
        } => {
            hit = now();
            cluster.kill(seat)?;
            if after_detection {
                let detected = cluster.detected(&id)?;
                let _ = write!(note, "failure seen after {detected:.1?}, ");
            }
            cluster.new_id(seat);
            cluster.start(seat)?;
            let _ = write!(note, "{id} killed, replaced by {}", cluster.seats[seat].id);
        }
        Fault::LeaveRejoin { .. } => {
            hit = now();
            let took = cluster.terminate(seat)?;
            let left = cluster.settle()?;
            cluster.start(seat)?;
            let _ = write!(
                note,
                "{id} left in {took:.1?}, the others settled {left:.1?} later, rejoined"
            );
        }
        Fault::JoinLeave { stay } => {
            cluster.new_id(seat);
            cluster.start(seat)?;
            let joined = cluster.settle()?;
            std::thread::sleep(stay);
            hit = now();
            let took = cluster.terminate(seat)?;
            let _ = write!(
                note,
                "{} joined (settled in {joined:.1?}), left in {took:.1?}",
                cluster.seats[seat].id
            );
        }
        Fault::Pause { length, .. } => {
            cluster.signal(seat, "STOP")?;
            hit = now();
            std::thread::sleep(length);
            cluster.signal(seat, "CONT")?;
            let _ = write!(note, "{id} paused for {length:.1?}");
        }
        Fault::Partition { length, .. } => {
            let net = cluster
                .net
                .as_ref()
                .context("a partition needs namespaces")?;
            // Its clients keep off shared keys: a key written on both sides
            // keeps one side's version (G7, last writer wins), by design.
            shared.isolate(Some(seat), &workload::threads_of(seat, clients))?;
            net.cut(seat)?;
            hit = now();
            std::thread::sleep(length);
            net.heal(seat)?;
            let _ = write!(note, "{id} cut off for {length:.1?}");
        }
    }
    let settled = cluster.settle()?;
    shared.isolate(None, &[])?;
    let _ = write!(note, "; settled after {settled:.1?}");
    Ok((hit, note))
}

/// Prints the operations by outcome and the current fault once a second
/// until the workload stops.
fn progress(shared: &Shared, current: &Mutex<String>) {
    let mut next = Duration::from_secs(1);
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(next.saturating_sub(shared.started.elapsed()));
        let [ok, not, maybe] = shared
            .counts
            .each_ref()
            .map(|count| count.load(Ordering::Relaxed));
        println!(
            "  {:>4}s  ok {ok}  not-executed {not}  maybe-executed {maybe}  fault: {}",
            next.as_secs(),
            current.lock().expect("no panic")
        );
        next += Duration::from_secs(1);
    }
}

/// The end of a run: how the cluster converged and what the checks found.
struct Converged {
    /// From the workload's stop until every member saw every member alive
    /// and nothing to move (the start of the steady hold), or why that did
    /// not happen in time (the checks run all the same).
    settled: Result<Duration, String>,
    /// From the workload's stop until the check that passed (or the last
    /// one) began.
    checked: Duration,
    findings: Findings,
    /// Each member's tombstone count (`HIVE.STATUS`) after the checks.
    tombstones: Vec<(String, i64)>,
    /// What each member answered in the last check.
    answers: Vec<(String, HashMap<workload::Key, check::Value>)>,
}

/// Waits for the cluster to settle, then polls the checks through every
/// member until they pass or [`CONVERGE`] passes; fails only if the members
/// cannot be read.
fn converge(cluster: &Cluster, records: &[Record]) -> anyhow::Result<Converged> {
    let started = Instant::now();
    let settled = cluster.settle().map_err(|err| format!("{err:#}"));
    if let Err(err) = &settled {
        println!("  {err}; checking the data all the same");
    }
    let keys = workload::keys(records);
    let deadline = Instant::now() + CONVERGE;
    let mut reported = None;
    loop {
        let began = started.elapsed();
        let answers: anyhow::Result<Vec<_>> = cluster
            .running()
            .map(|(seat, _)| Ok((seat.id.clone(), check::read(seat.resp(), &keys)?)))
            .collect();
        match answers {
            Ok(answers) => {
                let findings = check::check(records, &answers);
                if findings.violations() == 0 || Instant::now() > deadline {
                    let tombstones = cluster
                        .running()
                        .map(|(seat, node)| {
                            let count = node.status().map_or(-1, |status| status.tombstones);
                            (seat.id.clone(), count)
                        })
                        .collect();
                    return Ok(Converged {
                        settled,
                        checked: began,
                        findings,
                        tombstones,
                        answers,
                    });
                }
                if reported != Some(findings.violations()) {
                    println!(
                        "  {} violations in a check {began:.1?} after the workload stopped; \
                         checking again until {CONVERGE:?} after settling",
                        findings.violations()
                    );
                    reported = Some(findings.violations());
                }
            }
            Err(err) if Instant::now() > deadline => return Err(err),
            Err(err) => println!("  reading back: {err:#}; again"),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
