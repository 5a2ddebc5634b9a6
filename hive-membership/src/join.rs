//! Joining the seeds at start, within a bounded time.
//!
//! All seeds are contacted concurrently (one push/pull each); joining several
//! makes the start robust to a lost gossip packet or a seed that is down. Seeds
//! that cannot be reached are retried with a growing pause until `join_timeout`;
//! as soon as one seed was joined, the others get a short grace period and the
//! join is done. A seed whose cluster is incompatible makes the join fail with
//! [`MembershipError::Incompatible`].

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use memberlist::proto::MaybeResolvedAddress;
use tokio::time::Instant;

use crate::delegate::Ml;
use crate::error::{MembershipError, Result};
use crate::gate::Gate;

/// First pause between two rounds of attempts; doubled each round.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Longest pause between two rounds of attempts.
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(800);
/// How long the other seeds may still take once one seed was joined.
const GRACE_AFTER_FIRST_JOIN: Duration = Duration::from_millis(500);

/// The seeds to contact: `seeds` without our own address, without duplicates.
pub(crate) fn seeds_to_join(seeds: &[SocketAddr], ours: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::with_capacity(seeds.len());
    for seed in seeds {
        if !ours.contains(seed) && !out.contains(seed) {
            out.push(*seed);
        }
    }
    out
}

/// Joins `seeds` (non-empty) within `timeout`; returns how many were joined.
pub(crate) async fn join_seeds(
    ml: &Ml,
    gate: &Gate,
    seeds: &[SocketAddr],
    timeout: Duration,
) -> Result<usize> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut pause = FIRST_RETRY_PAUSE;
    let mut last_error = None;
    loop {
        let round = join_round(ml, seeds, deadline).await;
        if let Some(refusal) = gate.take_refusal() {
            return Err(refusal);
        }
        if round.joined > 0 {
            return Ok(round.joined);
        }
        last_error = round.last_error.or(last_error);
        // Pause, but never start a round at or past the deadline: it could not
        // finish in time, and would only turn the last real error into a timeout.
        tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
        if Instant::now() >= deadline {
            break;
        }
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
    }
    Err(MembershipError::NoSeedReachable {
        seeds: seeds.to_vec(),
        waited: started.elapsed(),
        last_error,
    })
}

/// The outcome of one round of attempts.
struct Round {
    joined: usize,
    last_error: Option<String>,
}

/// Tries every seed once, concurrently, until all answered or `deadline`; after
/// a first success the rest get [`GRACE_AFTER_FIRST_JOIN`].
async fn join_round(ml: &Ml, seeds: &[SocketAddr], deadline: Instant) -> Round {
    let mut attempts: FuturesUnordered<_> = seeds
        .iter()
        .map(|seed| async move {
            let result = ml.join(MaybeResolvedAddress::resolved(*seed)).await;
            (*seed, result)
        })
        .collect();
    let mut round = Round {
        joined: 0,
        last_error: None,
    };
    let mut until = deadline;
    while let Ok(Some((seed, result))) = tokio::time::timeout_at(until, attempts.next()).await {
        match result {
            Ok(_) => {
                round.joined += 1;
                until = until.min(Instant::now() + GRACE_AFTER_FIRST_JOIN);
            }
            Err(error) => {
                tracing::debug!(%seed, %error, "could not join seed");
                round.last_error = Some(format!("{seed}: {error}"));
            }
        }
    }
    if round.last_error.is_none() && round.joined < seeds.len() {
        round.last_error = Some("timed out".into());
    }
    round
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_address_and_duplicates_are_skipped() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let me: SocketAddr = "127.0.0.1:3".parse().unwrap();
        assert_eq!(seeds_to_join(&[a, me, b, a], &[me]), vec![a, b]);
        assert!(seeds_to_join(&[me], &[me]).is_empty());
    }
}
