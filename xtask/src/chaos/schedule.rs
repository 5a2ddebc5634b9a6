//! The seeded fault schedule: which fault, on which seat, when, for how long.
//! One seed always plans the same schedule for the same budget and cluster.

use std::fmt;
use std::time::Duration;

use super::Rng;

/// Workload before the first fault.
const WARMUP: Duration = Duration::from_secs(2);
/// Workload after the last fault has recovered, before the run ends.
const TAIL: Duration = Duration::from_secs(2);

/// One fault. At most one seat is faulty at a time: each fault ends once the
/// cluster sees all its members settled again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Fault {
    /// `kill -9`, then the same id on the same ports as soon as the process
    /// is reaped (before the others can notice).
    CrashRestart { seat: usize },
    /// `kill -9`, then the same id on the same ports once the others see the
    /// member failed.
    CrashDetectRestart { seat: usize },
    /// `kill -9`, then a fresh member with a new id on the seat's address
    /// and ports, at once or once the failure was detected; the old id never
    /// comes back.
    CrashReplace { seat: usize, after_detection: bool },
    /// SIGTERM (hand-off, leave), wait for the exit, rejoin with the same id.
    LeaveRejoin { seat: usize },
    /// A member joins on the spare seat, serves for `stay`, then leaves
    /// gracefully (SIGTERM).
    JoinLeave { stay: Duration },
    /// SIGSTOP, `length`, SIGCONT.
    Pause { seat: usize, length: Duration },
    /// The seat's network namespace cut off from every other node for
    /// `length`, then healed (the runner still reaches every node).
    Partition { seat: usize, length: Duration },
}

impl Fault {
    /// An estimate of the fault's duration, recovery (and the runner's
    /// 1.5 s steady hold) included, from runs on 2 cores with `--gossip
    /// local`, with some slack; a fault whose estimate no longer fits in
    /// the budget when it is due is skipped.
    fn cost(&self) -> Duration {
        let secs = Duration::from_secs_f64;
        match *self {
            Fault::CrashRestart { .. } => secs(2.5),
            Fault::CrashDetectRestart { .. } => secs(3.5),
            Fault::CrashReplace { .. } => secs(4.0),
            Fault::LeaveRejoin { .. } => secs(5.0),
            Fault::JoinLeave { stay } => stay + secs(7.0),
            Fault::Pause { length, .. } => length + secs(2.5),
            Fault::Partition { length, .. } => length + secs(5.0),
        }
    }

    /// The seat the fault hits (the spare seat for a join).
    pub(super) fn seat(&self, spare: usize) -> usize {
        match *self {
            Fault::CrashRestart { seat }
            | Fault::CrashDetectRestart { seat }
            | Fault::CrashReplace { seat, .. }
            | Fault::LeaveRejoin { seat }
            | Fault::Pause { seat, .. }
            | Fault::Partition { seat, .. } => seat,
            Fault::JoinLeave { .. } => spare,
        }
    }

    /// Whether the fault is a `kill -9` (P9 measures the write gap around those).
    pub(super) fn is_kill(&self) -> bool {
        matches!(
            self,
            Fault::CrashRestart { .. }
                | Fault::CrashDetectRestart { .. }
                | Fault::CrashReplace { .. }
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::CrashRestart { seat } => {
                write!(f, "kill -9 seat {seat}, restart same id at once")
            }
            Fault::CrashDetectRestart { seat } => write!(
                f,
                "kill -9 seat {seat}, restart same id once the failure is detected"
            ),
            Fault::CrashReplace {
                seat,
                after_detection,
            } => write!(
                f,
                "kill -9 seat {seat}, replace it with a new id {}",
                if after_detection {
                    "once the failure is detected"
                } else {
                    "at once"
                }
            ),
            Fault::LeaveRejoin { seat } => {
                write!(f, "SIGTERM seat {seat} (graceful leave), rejoin same id")
            }
            Fault::JoinLeave { stay } => write!(
                f,
                "a new member joins on the spare seat, leaves gracefully after {stay:.1?}"
            ),
            Fault::Pause { seat, length } => {
                write!(f, "SIGSTOP seat {seat} for {length:.1?}, then SIGCONT")
            }
            Fault::Partition { seat, length } => write!(
                f,
                "cut seat {seat} off from the other nodes for {length:.1?}, then heal"
            ),
        }
    }
}

/// A fault and when it is due (since the workload started); it starts then
/// or once the fault before it has recovered, whichever is later.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step {
    pub(super) due: Duration,
    pub(super) fault: Fault,
    /// The estimate the plan counted on.
    pub(super) cost: Duration,
}

/// Plans faults on `seats` seats (plus the spare) within `budget`: rounds of
/// every kind in a seeded order, the replacement last in each round (after
/// it, the replaced id stays failed, and tombstones are kept while a member
/// is away), with seeded quiet gaps between faults.
pub(super) fn plan(seed: u64, budget: Duration, seats: usize, partitions: bool) -> Vec<Step> {
    let mut rng = Rng::new(seed ^ 0x5eed_fa17_5c4e_d01e);
    let mut steps = Vec::new();
    let mut at = WARMUP;
    loop {
        let mut round = vec![
            Fault::CrashRestart {
                seat: rng.index(seats),
            },
            Fault::CrashDetectRestart {
                seat: rng.index(seats),
            },
            Fault::LeaveRejoin {
                seat: rng.index(seats),
            },
            Fault::JoinLeave {
                stay: rng.millis(1_000, 3_000),
            },
            // Shorter than failure detection (`local`: about 1 s).
            Fault::Pause {
                seat: rng.index(seats),
                length: rng.millis(200, 500),
            },
            // Longer than failure detection and than the tombstone retention.
            Fault::Pause {
                seat: rng.index(seats),
                length: rng.millis(3_000, 3_500),
            },
        ];
        if partitions {
            round.push(Fault::Partition {
                seat: rng.index(seats),
                length: rng.millis(3_000, 4_000),
            });
        }
        rng.shuffle(&mut round);
        round.push(Fault::CrashReplace {
            seat: rng.index(seats),
            after_detection: rng.below(2) == 1,
        });
        let planned = steps.len();
        for fault in round {
            let gap = rng.millis(800, 1_800);
            let cost = fault.cost();
            if at + gap + cost + TAIL <= budget {
                at += gap;
                steps.push(Step {
                    due: at,
                    fault,
                    cost,
                });
                at += cost;
            }
        }
        if steps.len() == planned {
            return steps;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_plans_one_schedule_within_the_budget() {
        let budget = Duration::from_secs(60);
        let first = plan(1, budget, 3, true);
        let again = plan(1, budget, 3, true);
        assert_eq!(format!("{first:?}"), format!("{again:?}"));
        let last = first.last().expect("faults fit in 60 s");
        assert!(last.due + last.cost + TAIL <= budget);
        assert!(first.iter().all(|step| step.fault.seat(3) <= 3));
    }

    #[test]
    fn sixty_seconds_hold_every_kind_of_fault() {
        for seed in 0..200 {
            let steps = plan(seed, Duration::from_secs(60), 5, true);
            let kinds: std::collections::HashSet<_> = steps
                .iter()
                .map(|step| std::mem::discriminant(&step.fault))
                .collect();
            assert_eq!(kinds.len(), 7, "seed {seed}: {steps:?}");
        }
    }
}
