//! The chaos workload: client threads through every seat, each sending one
//! operation at a time and recording every operation with its outcome.
//!
//! Each thread owns its string and hash keys (only it writes them, so "the
//! last acknowledged write" of such a key is exact); counters and lists are
//! shared by all threads. Values, hash fields and list elements are unique
//! (thread and operation number), so the checker can tell every write apart.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::Rng;
use crate::cluster::{Client, Reply};

/// String keys per thread (SET, DEL).
const STRING_KEYS: u64 = 16;
/// Hash keys per thread (HSET, DEL).
const HASH_KEYS: u64 = 4;
/// Counters shared by every thread (INCR).
const COUNTERS: u64 = 4;
/// Lists shared by every thread (RPUSH).
const LISTS: u64 = 4;
/// The workload moves on to fresh list keys this often, which bounds each
/// list's length: a cluster replicates a collection's whole state per write.
const LIST_EPOCH: Duration = Duration::from_secs(10);
/// A thread whose seat has no member (killed, or the spare seat between
/// joins) tries to connect again after this long.
const RECONNECT_PACE: Duration = Duration::from_millis(20);

/// A key the workload writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Key {
    Str { thread: u16, index: u16 },
    Hash { thread: u16, index: u16 },
    Counter(u16),
    List { index: u16, epoch: u32 },
}

impl Key {
    pub(super) fn name(&self) -> String {
        match self {
            Key::Str { thread, index } => format!("s{thread}.{index}"),
            Key::Hash { thread, index } => format!("h{thread}.{index}"),
            Key::Counter(index) => format!("c{index}"),
            Key::List { index, epoch } => format!("l{index}.{epoch}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Op {
    Set,
    HSet,
    RPush,
    Incr,
    Del,
}

/// What the client learned of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Outcome {
    /// Acknowledged: it ran and must be kept.
    Ok,
    /// `-TRYAGAIN`: the cluster guarantees it did not run.
    NotExecuted,
    /// It may have run.
    Maybe(Why),
}

/// Why an operation may have run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Why {
    /// `-INDETERMINATE`.
    Indeterminate,
    /// The connection broke (or could not be read) with the operation sent.
    Connection,
    /// No reply within the client's read timeout.
    Timeout,
    /// Any other reply (kept in [`Shared::unexpected`]).
    Other,
}

/// One operation sent.
#[derive(Debug, Clone, Copy)]
pub(super) struct Record {
    pub(super) key: Key,
    pub(super) op: Op,
    pub(super) thread: u16,
    /// The seat the thread sends through.
    pub(super) seat: u16,
    /// The thread's operation number; makes values unique.
    pub(super) n: u32,
    pub(super) outcome: Outcome,
    /// Global sequence numbers taken just before sending and when the reply
    /// (or the error) arrived: operation A is over before B began exactly
    /// when `A.replied < B.issued`.
    pub(super) issued: u64,
    pub(super) replied: u64,
    /// When the reply arrived, since the workload started.
    pub(super) at: Duration,
    /// INCR's reply, when acknowledged.
    pub(super) counted: i64,
}

impl Record {
    /// What it wrote: the SET value, the HSET field, the RPUSH element.
    pub(super) fn item(&self) -> String {
        let prefix = match self.op {
            Op::Set => "v",
            Op::HSet => "f",
            Op::RPush => "e",
            Op::Incr | Op::Del => "-",
        };
        format!("{prefix}{}.{}", self.thread, self.n)
    }

    /// The value an HSET stored under its field.
    pub(super) fn field_value(&self) -> String {
        format!("x{}.{}", self.thread, self.n)
    }
}

/// What the workload threads and the runner share.
pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    pub(super) started: Instant,
    sequence: AtomicU64,
    /// Operations by outcome so far: acknowledged, not executed, maybe.
    pub(super) counts: [AtomicU64; 3],
    /// A seat cut off by a partition, plus one (0: none): its threads write
    /// only their own keys, so no key is written on both sides (G7 lets one
    /// side's writes to such a key go, by design).
    isolated: AtomicUsize,
    /// Bumped whenever `isolated` changes.
    generation: AtomicU64,
    /// Per thread, the `generation` it read before its current operation.
    seen: Vec<AtomicU64>,
    /// The first unexpected replies, for the report.
    pub(super) unexpected: Mutex<Vec<String>>,
}

impl Shared {
    pub(super) fn new(threads: usize) -> Shared {
        Shared {
            stop: AtomicBool::new(false),
            started: Instant::now(),
            sequence: AtomicU64::new(0),
            counts: Default::default(),
            isolated: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            seen: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            unexpected: Mutex::new(Vec::new()),
        }
    }

    /// Makes the threads of `seat` keep off shared keys (or lets them back
    /// with `None`); with a seat, returns once none of its threads has an
    /// operation on a shared key in flight.
    pub(super) fn isolate(
        &self,
        seat: Option<usize>,
        threads_of_seat: &[usize],
    ) -> anyhow::Result<()> {
        self.isolated
            .store(seat.map_or(0, |seat| seat + 1), Ordering::SeqCst);
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        if seat.is_none() {
            return Ok(());
        }
        // A thread's operation outlives the change for at most the client's
        // read timeout.
        let deadline = Instant::now() + Duration::from_secs(30);
        while threads_of_seat
            .iter()
            .any(|&thread| self.seen[thread].load(Ordering::SeqCst) < generation)
        {
            if Instant::now() > deadline {
                bail!("a client thread did not finish its operation within 30 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

/// One client thread: until `stop`, sends a seeded choice of operation
/// through `addr` (its seat), reconnecting whenever the connection breaks.
pub(super) fn client(
    thread: usize,
    seat: usize,
    addr: SocketAddr,
    seed: u64,
    shared: &Shared,
) -> Vec<Record> {
    let mut rng = Rng::new(seed ^ (thread as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let thread_id = u16::try_from(thread).expect("a few dozen threads");
    let mut connection: Option<Client> = None;
    let mut records = Vec::new();
    let mut n = 0u32;
    while !shared.stop.load(Ordering::Relaxed) {
        let generation = shared.generation.load(Ordering::SeqCst);
        shared.seen[thread].store(generation, Ordering::SeqCst);
        let client = match &mut connection {
            Some(client) => client,
            None => match Client::connect(addr) {
                Ok(client) => connection.insert(client),
                Err(_) => {
                    std::thread::sleep(RECONNECT_PACE);
                    continue;
                }
            },
        };
        let isolated = shared.isolated.load(Ordering::SeqCst) == seat + 1;
        let epoch = shared.started.elapsed().as_secs() / LIST_EPOCH.as_secs();
        let (op, key) = choose(&mut rng, thread_id, isolated, epoch);
        n += 1;
        let record = Record {
            key,
            op,
            thread: thread_id,
            seat: u16::try_from(seat).expect("a handful of seats"),
            n,
            outcome: Outcome::NotExecuted,
            issued: 0,
            replied: 0,
            at: Duration::ZERO,
            counted: 0,
        };
        let (name, item) = (key.name(), record.item());
        let field_value = record.field_value();
        let args: Vec<&str> = match op {
            Op::Set => vec!["SET", &name, &item],
            Op::HSet => vec!["HSET", &name, &item, &field_value],
            Op::RPush => vec!["RPUSH", &name, &item],
            Op::Incr => vec!["INCR", &name],
            Op::Del => vec!["DEL", &name],
        };
        let issued = shared.sequence.fetch_add(1, Ordering::SeqCst);
        let reply = client.call(&args);
        let replied = shared.sequence.fetch_add(1, Ordering::SeqCst);
        let at = shared.started.elapsed();
        let (outcome, counted) = match reply {
            Ok(reply) => classify(op, reply, &args, shared),
            Err(err) => {
                connection = None;
                (Outcome::Maybe(io_why(&err)), 0)
            }
        };
        let slot = match outcome {
            Outcome::Ok => 0,
            Outcome::NotExecuted => 1,
            Outcome::Maybe(_) => 2,
        };
        shared.counts[slot].fetch_add(1, Ordering::Relaxed);
        records.push(Record {
            outcome,
            issued,
            replied,
            at,
            counted,
            ..record
        });
    }
    records
}

/// The next operation: SET 30 %, HSET 20 %, RPUSH 15 %, INCR 15 %, DEL 20 %
/// (of one of the thread's string or hash keys). A thread cut off by a
/// partition turns its RPUSHes into HSETs and its INCRs into SETs.
fn choose(rng: &mut Rng, thread: u16, isolated: bool, epoch: u64) -> (Op, Key) {
    let mut op = match rng.below(100) {
        0..30 => Op::Set,
        30..50 => Op::HSet,
        50..65 => Op::RPush,
        65..80 => Op::Incr,
        _ => Op::Del,
    };
    if isolated {
        op = match op {
            Op::RPush => Op::HSet,
            Op::Incr => Op::Set,
            other => other,
        };
    }
    let index = |rng: &mut Rng, count: u64| u16::try_from(rng.below(count)).expect("small");
    let key = match op {
        Op::Set => Key::Str {
            thread,
            index: index(rng, STRING_KEYS),
        },
        Op::HSet => Key::Hash {
            thread,
            index: index(rng, HASH_KEYS),
        },
        Op::RPush => Key::List {
            index: index(rng, LISTS),
            epoch: u32::try_from(epoch).expect("a short run"),
        },
        Op::Incr => Key::Counter(index(rng, COUNTERS)),
        Op::Del => match index(rng, STRING_KEYS + HASH_KEYS) {
            i if u64::from(i) < STRING_KEYS => Key::Str { thread, index: i },
            i => Key::Hash {
                thread,
                index: i - STRING_KEYS as u16,
            },
        },
    };
    (op, key)
}

/// The outcome a reply means for `op`, and INCR's count.
fn classify(op: Op, reply: Reply, args: &[&str], shared: &Shared) -> (Outcome, i64) {
    match (op, &reply) {
        (_, Reply::Error(error)) if error.starts_with("TRYAGAIN") => (Outcome::NotExecuted, 0),
        (_, Reply::Error(error)) if error.starts_with("INDETERMINATE") => {
            (Outcome::Maybe(Why::Indeterminate), 0)
        }
        (Op::Set, Reply::Simple(ok)) if ok == "OK" => (Outcome::Ok, 0),
        (Op::HSet, Reply::Int(1)) | (Op::Del, Reply::Int(0 | 1)) => (Outcome::Ok, 0),
        (Op::RPush, Reply::Int(length)) if *length >= 1 => (Outcome::Ok, 0),
        (Op::Incr, Reply::Int(count)) => (Outcome::Ok, *count),
        _ => {
            let mut unexpected = shared.unexpected.lock().expect("no thread panicked");
            if unexpected.len() < 20 {
                unexpected.push(format!("{} -> {reply:?}", args.join(" ")));
            }
            (Outcome::Maybe(Why::Other), 0)
        }
    }
}

fn io_why(err: &anyhow::Error) -> Why {
    match err
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
    {
        Some(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Why::Timeout,
        _ => Why::Connection,
    }
}

/// The keys the workload can write, for reading back: `records` name the
/// lists that exist.
pub(super) fn keys(records: &[Record]) -> Vec<Key> {
    let mut keys: Vec<Key> = records.iter().map(|record| record.key).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Returns the threads of `seat`: `clients` threads per seat, seats in order.
pub(super) fn threads_of(seat: usize, clients: usize) -> Vec<usize> {
    (seat * clients..(seat + 1) * clients).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_off_thread_writes_only_its_own_keys() {
        let mut rng = Rng::new(7);
        for _ in 0..1_000 {
            let (op, key) = choose(&mut rng, 3, true, 0);
            assert!(matches!(op, Op::Set | Op::HSet | Op::Del), "{op:?}");
            assert!(
                matches!(
                    key,
                    Key::Str { thread: 3, .. } | Key::Hash { thread: 3, .. }
                ),
                "{key:?}"
            );
        }
    }

    #[test]
    fn a_seed_replays_the_same_choices() {
        let choices = |seed| {
            let mut rng = Rng::new(seed);
            (0..100)
                .map(|_| choose(&mut rng, 1, false, 0))
                .collect::<Vec<_>>()
        };
        assert_eq!(choices(5), choices(5));
        assert_ne!(choices(5), choices(6));
    }
}
