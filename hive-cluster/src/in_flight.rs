//! Writes in flight on a primary, per key, and the states adopted under them.
//!
//! A primary runs a write on its store, then replicates the resulting state.
//! If a replica answers with a newer version the primary lacked (written on the
//! other side of a healed partition), the primary *adopts* that state: it
//! replaces the local one, and with it the effect of every write on the key
//! that ran here but is not acknowledged yet. Each of those writes must run
//! again on top of the adopted state — not only the one that happened to fetch
//! it — and none that ran after the adoption may run twice.
//!
//! So a write runs its store call through [`InFlight::write`], which records,
//! under the same lock that [`InFlight::adopt`] takes, how many adoptions the
//! key had; after replicating, [`Ticket::discarded`] tells whether one came
//! since. Only keys with writes in flight have an entry, so the table stays as
//! small as the number of concurrent writes.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use parking_lot::Mutex;

/// Lock stripes: writes on keys of different stripes never wait for each
/// other here.
const STRIPES: usize = 256;

/// What is known of one key's writes in flight.
#[derive(Debug, Default)]
struct Flight {
    /// Writes that ran on the store and are not finished yet.
    writers: usize,
    /// States adopted for the key while `writers > 0`.
    adoptions: u64,
}

/// One lock stripe: the keys of the stripe that have writes in flight.
type Stripe = Mutex<HashMap<Box<[u8]>, Flight>>;

/// The writes in flight on this node as a primary (see the module docs).
#[derive(Debug)]
pub(crate) struct InFlight {
    hasher: RandomState,
    stripes: Box<[Stripe]>,
}

/// One write in flight: from its store call until it is dropped.
#[derive(Debug)]
pub(crate) struct Ticket<'a> {
    in_flight: &'a InFlight,
    key: &'a [u8],
    /// The key's adoptions when the write ran.
    adoptions: u64,
}

impl InFlight {
    pub(crate) fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
        }
    }

    fn stripe(&self, key: &[u8]) -> &Stripe {
        let hash = self.hasher.hash_one(key);
        &self.stripes[(hash as usize) % STRIPES]
    }

    /// Runs `write` — the store call of a write on `key` — as a write in
    /// flight, and returns its outcome with the write's ticket.
    pub(crate) fn write<'a, R>(
        &'a self,
        key: &'a [u8],
        write: impl FnOnce() -> R,
    ) -> (R, Ticket<'a>) {
        let mut flights = self.stripe(key).lock();
        let outcome = write();
        let flight = flights.entry(key.into()).or_default();
        flight.writers += 1;
        let ticket = Ticket {
            in_flight: self,
            key,
            adoptions: flight.adoptions,
        };
        (outcome, ticket)
    }

    /// Runs `adopt`, which applies another node's state of `key` and returns
    /// whether it replaced the local one; if it did, every write in flight on
    /// the key lost its effect ([`Ticket::discarded`]).
    pub(crate) fn adopt<E>(
        &self,
        key: &[u8],
        adopt: impl FnOnce() -> Result<bool, E>,
    ) -> Result<bool, E> {
        let mut flights = self.stripe(key).lock();
        let replaced = adopt()?;
        if replaced && let Some(flight) = flights.get_mut(key) {
            flight.adoptions += 1;
        }
        Ok(replaced)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.stripes.iter().map(|stripe| stripe.lock().len()).sum()
    }
}

impl Ticket<'_> {
    /// Returns true if another node's state was adopted for the key since the
    /// write ran: the write's effect is in no copy, and it must run again.
    pub(crate) fn discarded(&self) -> bool {
        let flights = self.in_flight.stripe(self.key).lock();
        flights
            .get(self.key)
            .is_some_and(|flight| flight.adoptions != self.adoptions)
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut flights = self.in_flight.stripe(self.key).lock();
        if let Some(flight) = flights.get_mut(self.key) {
            flight.writers -= 1;
            if flight.writers == 0 {
                flights.remove(self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adopt(in_flight: &InFlight, key: &[u8], replaced: bool) {
        let _ = in_flight.adopt::<()>(key, || Ok(replaced));
    }

    #[test]
    fn an_adoption_discards_every_write_in_flight_before_it_and_none_after() {
        let in_flight = InFlight::new();
        let ((), first) = in_flight.write(b"k", || ());
        let ((), second) = in_flight.write(b"k", || ());
        let ((), elsewhere) = in_flight.write(b"other", || ());
        adopt(&in_flight, b"k", true);
        let ((), after) = in_flight.write(b"k", || ());
        assert!(first.discarded() && second.discarded());
        assert!(!after.discarded(), "ran on the adopted state");
        assert!(!elsewhere.discarded(), "another key");
    }

    #[test]
    fn a_state_not_adopted_discards_nothing() {
        let in_flight = InFlight::new();
        let ((), write) = in_flight.write(b"k", || ());
        adopt(&in_flight, b"k", false);
        assert!(!write.discarded());
    }

    #[test]
    fn finished_writes_leave_nothing_behind() {
        let in_flight = InFlight::new();
        {
            let ((), _a) = in_flight.write(b"k", || ());
            let ((), _b) = in_flight.write(b"k", || ());
            assert_eq!(in_flight.tracked(), 1);
        }
        assert_eq!(in_flight.tracked(), 0);
        // An adoption with no write in flight is not remembered.
        adopt(&in_flight, b"k", true);
        assert_eq!(in_flight.tracked(), 0);
    }
}
