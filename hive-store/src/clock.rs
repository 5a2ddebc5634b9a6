//! Wall-clock time in Unix milliseconds, behind a trait so tests can move time by hand.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time in milliseconds since the Unix epoch.
///
/// Deadlines are absolute Unix milliseconds so that they mean the same thing on
/// every node; the store reads the clock only when an entry carries a deadline
/// and when it stamps a version on a write.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Returns the current time in Unix milliseconds.
    fn now_ms(&self) -> u64;
}

/// The system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that only moves when told to: tests of TTL logic advance it instead
/// of sleeping.
#[derive(Debug, Clone)]
pub struct MockClock {
    now: Arc<AtomicU64>,
}

impl MockClock {
    /// Returns a clock standing at `start_ms` (Unix milliseconds).
    pub fn new(start_ms: u64) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(start_ms)),
        }
    }

    /// Moves the clock forward by `ms` milliseconds; clones see the change.
    pub fn advance(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `ms`, which may be earlier than now (to test clock skew).
    pub fn set(&self, ms: u64) {
        self.now.store(ms, Ordering::SeqCst);
    }
}

impl Default for MockClock {
    /// A clock at 2023-11-14T22:13:20Z, so deadlines look like real ones.
    fn default() -> Self {
        Self::new(1_700_000_000_000)
    }
}

impl Clock for MockClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}
