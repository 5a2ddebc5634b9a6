//! Elements under byte-string names that may each carry a deadline: what hashes
//! (per-field TTL) and sets (per-member TTL) share.

use bytes::Bytes;

use crate::entry::{NEVER, NO_DEADLINE};
use crate::shard::{FastMap, fast_map};

/// An element that may expire.
pub(crate) trait Expiring {
    /// Returns the element's deadline, or [`NO_DEADLINE`].
    fn deadline(&self) -> u64;
    /// Sets the element's deadline ([`NO_DEADLINE`] removes it).
    fn set_deadline(&mut self, deadline: u64);
}

/// A set member is nothing but its deadline.
impl Expiring for u64 {
    fn deadline(&self) -> u64 {
        *self
    }

    fn set_deadline(&mut self, deadline: u64) {
        *self = deadline;
    }
}

/// Named elements with deadlines, and a lower bound on the earliest one so the
/// owner knows when something may be due without scanning.
#[derive(Debug, Clone)]
pub(crate) struct ExpiringMap<V> {
    items: FastMap<Bytes, V>,
    /// No element expires before this ([`NEVER`] if none has a deadline). Only a
    /// lower bound: removing an element does not raise it; a purge recomputes it.
    next_expiry: u64,
}

impl<V: Expiring> ExpiringMap<V> {
    pub(crate) fn new() -> Self {
        Self {
            items: fast_map(),
            next_expiry: NEVER,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn next_expiry(&self) -> u64 {
        self.next_expiry
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Bytes, &V)> {
        self.items.iter()
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &Bytes> {
        self.items.keys()
    }

    pub(crate) fn get(&self, name: &[u8]) -> Option<&V> {
        self.items.get(name)
    }

    /// Inserts or replaces an element; returns the one it replaced.
    pub(crate) fn insert(&mut self, name: Bytes, element: V) -> Option<V> {
        self.note(element.deadline());
        self.items.insert(name, element)
    }

    pub(crate) fn remove(&mut self, name: &[u8]) -> Option<V> {
        self.items.remove(name)
    }

    /// Sets the deadline of element `name`; returns false if there is none.
    pub(crate) fn set_deadline(&mut self, name: &[u8], deadline: u64) -> bool {
        let Some(element) = self.items.get_mut(name) else {
            return false;
        };
        element.set_deadline(deadline);
        self.note(deadline);
        true
    }

    /// Drops the elements whose deadline has passed at `now`, returning the bytes
    /// freed as measured by `size`, and recomputes the earliest deadline.
    pub(crate) fn purge_expired(&mut self, now: u64, size: impl Fn(&Bytes, &V) -> usize) -> usize {
        let mut freed = 0;
        let mut next = NEVER;
        self.items.retain(|name, element| {
            let deadline = element.deadline();
            if deadline != NO_DEADLINE && deadline <= now {
                freed += size(name, element);
                return false;
            }
            if deadline != NO_DEADLINE {
                next = next.min(deadline);
            }
            true
        });
        self.next_expiry = next;
        freed
    }

    fn note(&mut self, deadline: u64) {
        if deadline != NO_DEADLINE {
            self.next_expiry = self.next_expiry.min(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_deadline_is_tracked_and_recomputed_by_a_purge() {
        let mut map = ExpiringMap::<u64>::new();
        map.insert(Bytes::from("a"), 30);
        map.insert(Bytes::from("b"), 10);
        map.insert(Bytes::from("c"), NO_DEADLINE);
        assert_eq!(map.next_expiry(), 10);
        assert_eq!(map.purge_expired(10, |name, _| name.len()), 1);
        assert_eq!((map.len(), map.next_expiry()), (2, 30));
        assert!(map.set_deadline(b"c", 20));
        assert!(!map.set_deadline(b"zz", 20));
        assert_eq!(map.next_expiry(), 20);
        map.set_deadline(b"c", NO_DEADLINE);
        assert_eq!(map.purge_expired(25, |_, _| 1), 0);
        assert_eq!(map.next_expiry(), 30);
    }
}
