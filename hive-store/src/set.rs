//! Sets: unordered unique byte strings, each member with its own optional TTL.

use std::mem::size_of;

use bytes::Bytes;

use crate::config::deadline_after;
use crate::entry::{Data, NO_DEADLINE};
use crate::error::{Result, StoreError};
use crate::expiring::ExpiringMap;
use crate::shard::Write;
use crate::store::Store;

/// The payload of a set key: each member with its deadline ([`NO_DEADLINE`] if none).
#[derive(Debug, Clone)]
pub(crate) struct SetData {
    members: ExpiringMap<u64>,
}

/// Bytes accounted per member besides its contents.
const MEMBER_OVERHEAD: usize = size_of::<(Bytes, u64)>() + 1;

fn member_size(member: &[u8]) -> usize {
    MEMBER_OVERHEAD + member.len()
}

impl SetData {
    pub(crate) fn new() -> Self {
        Self {
            members: ExpiringMap::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub(crate) fn next_expiry(&self) -> u64 {
        self.members.next_expiry()
    }

    pub(crate) fn members(&self) -> impl Iterator<Item = (&Bytes, u64)> {
        self.members
            .iter()
            .map(|(member, deadline)| (member, *deadline))
    }

    pub(crate) fn accounted_size(&self) -> usize {
        size_of::<Self>()
            + self
                .members
                .names()
                .map(|member| member_size(member))
                .sum::<usize>()
    }

    /// Adds a member without accounting (used to build a set accounted as a whole).
    pub(crate) fn insert(&mut self, member: Bytes, deadline: u64) {
        self.members.insert(member, deadline);
    }

    pub(crate) fn purge_expired(&mut self, now: u64) -> usize {
        self.members
            .purge_expired(now, |member, _| member_size(member))
    }
}

fn as_set(data: &Data) -> Result<&SetData> {
    match data {
        Data::Set(set) => Ok(set),
        _ => Err(StoreError::WrongType),
    }
}

fn as_set_mut(data: &mut Data) -> Result<&mut SetData> {
    match data {
        Data::Set(set) => Ok(set),
        _ => Err(StoreError::WrongType),
    }
}

impl Store {
    /// Adds `members` to the set `key`, creating it if needed; a member already
    /// present loses its TTL. Returns how many members were new.
    pub fn sadd(&self, key: &[u8], mut members: Vec<Bytes>) -> Result<usize> {
        if members.is_empty() {
            return Err(StoreError::InvalidArgument(
                "sadd needs at least one member".into(),
            ));
        }
        for member in &members {
            self.limits().check_value("member", member)?;
        }
        if members.len() > 1 {
            members.sort_unstable();
            members.dedup();
        }
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                let mut set = SetData::new();
                let added = members.len();
                for member in members {
                    set.insert(member, NO_DEADLINE);
                }
                return Ok(Write::Put {
                    data: Data::Set(Box::new(set)),
                    deadline: NO_DEADLINE,
                    reply: added,
                });
            };
            let set = as_set_mut(&mut entry.data)?;
            let mut changed = false;
            let growth: usize = members
                .iter()
                .map(|member| match set.members.get(&member[..]) {
                    None => member_size(member),
                    Some(&deadline) => {
                        changed |= deadline != NO_DEADLINE;
                        0
                    }
                })
                .sum();
            reservation.resize(0, growth)?;
            let mut added = 0;
            for member in members {
                added += usize::from(set.members.insert(member, NO_DEADLINE).is_none());
            }
            Ok(if added > 0 || changed {
                Write::Updated(added)
            } else {
                Write::Unchanged(0)
            })
        })
    }

    /// Removes `member` from the set `key` (the key goes with its last member);
    /// returns whether it was there.
    pub fn srem(&self, key: &[u8], member: &[u8]) -> Result<bool> {
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(false));
            };
            let set = as_set_mut(&mut entry.data)?;
            if set.members.get(member).is_none() {
                return Ok(Write::Unchanged(false));
            }
            reservation.resize(member_size(member), 0)?;
            set.members.remove(member);
            Ok(Write::Updated(true))
        })
    }

    /// Returns whether `member` is a live member of the set `key`.
    pub fn sismember(&self, key: &[u8], member: &[u8]) -> Result<bool> {
        self.read(key, |entry, _| {
            entry.map_or(Ok(false), |entry| {
                Ok(as_set(&entry.data)?.members.get(member).is_some())
            })
        })
    }

    /// Returns the live members of the set `key`, in no particular order.
    pub fn smembers(&self, key: &[u8]) -> Result<Vec<Bytes>> {
        self.read(key, |entry, _| {
            let Some(entry) = entry else {
                return Ok(Vec::new());
            };
            Ok(as_set(&entry.data)?.members.names().cloned().collect())
        })
    }

    /// Returns the number of live members of the set `key` (0 if absent).
    pub fn scard(&self, key: &[u8]) -> Result<usize> {
        self.read(key, |entry, _| {
            entry.map_or(Ok(0), |entry| Ok(as_set(&entry.data)?.members.len()))
        })
    }

    /// Gives `member` of the set `key` a TTL of `ttl_ms`. `NotFound` if the key
    /// or member is absent.
    pub fn sexpire_member(&self, key: &[u8], member: &[u8], ttl_ms: u64) -> Result<()> {
        self.write(key, |entry, _, now| {
            let deadline = deadline_after(now, ttl_ms)?;
            let set = as_set_mut(&mut entry.ok_or(StoreError::NotFound)?.data)?;
            if !set.members.set_deadline(member, deadline) {
                return Err(StoreError::NotFound);
            }
            Ok(Write::Updated(()))
        })
    }

    /// Returns the remaining TTL of `member` in milliseconds, `None` if it has
    /// none. `NotFound` if the key or member is absent.
    pub fn sttl_member(&self, key: &[u8], member: &[u8]) -> Result<Option<u64>> {
        self.read(key, |entry, now| {
            let set = as_set(&entry.ok_or(StoreError::NotFound)?.data)?;
            let deadline = *set.members.get(member).ok_or(StoreError::NotFound)?;
            Ok((deadline != NO_DEADLINE).then(|| deadline.saturating_sub(now.get())))
        })
    }

    /// Removes `members` from the set `key` in one write (the key goes with its
    /// last member); returns how many were there.
    pub fn srem_many(&self, key: &[u8], members: &[Bytes]) -> Result<usize> {
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(0));
            };
            let set = as_set_mut(&mut entry.data)?;
            let removed: Vec<&Bytes> = members
                .iter()
                .filter(|member| set.members.remove(member).is_some())
                .collect();
            if removed.is_empty() {
                return Ok(Write::Unchanged(0));
            }
            reservation.resize(removed.iter().map(|member| member_size(member)).sum(), 0)?;
            Ok(Write::Updated(removed.len()))
        })
    }

    /// Removes up to `count` members chosen at random and returns them, as
    /// Redis's `SPOP` with a count. The choice is a function of `seed`, so a
    /// caller that picks the seed decides the outcome (and tests can repeat it).
    pub fn spop(&self, key: &[u8], count: usize, seed: u64) -> Result<Vec<Bytes>> {
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(Vec::new()));
            };
            let set = as_set_mut(&mut entry.data)?;
            if count == 0 {
                return Ok(Write::Unchanged(Vec::new()));
            }
            // O(n) per call: the member map has no random access. A partial
            // Fisher-Yates shuffle picks `count` distinct members.
            let mut names: Vec<Bytes> = set.members.names().cloned().collect();
            let count = count.min(names.len());
            let mut rng = fastrand::Rng::with_seed(seed);
            for index in 0..count {
                let pick = rng.usize(index..names.len());
                names.swap(index, pick);
            }
            names.truncate(count);
            reservation.resize(names.iter().map(|member| member_size(member)).sum(), 0)?;
            for member in &names {
                set.members.remove(member);
            }
            Ok(Write::Updated(names))
        })
    }

    /// Replaces whatever `key` holds with a set of `members` (deleting the key
    /// if there are none), as the `*STORE` forms of Redis's set algebra;
    /// returns the set's size.
    pub fn sreplace(&self, key: &[u8], mut members: Vec<Bytes>) -> Result<usize> {
        for member in &members {
            self.limits().check_value("member", member)?;
        }
        members.sort_unstable();
        members.dedup();
        self.write(key, |_, _, _| {
            if members.is_empty() {
                return Ok(Write::Delete(0));
            }
            let mut set = SetData::new();
            let len = members.len();
            for member in members {
                set.insert(member, NO_DEADLINE);
            }
            Ok(Write::Put {
                data: Data::Set(Box::new(set)),
                deadline: NO_DEADLINE,
                reply: len,
            })
        })
    }
}
