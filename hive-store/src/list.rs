//! Lists: sequences of byte strings, pushed and popped at either end.

use std::collections::VecDeque;
use std::mem::size_of;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::entry::{Data, NO_DEADLINE};
use crate::error::{Result, StoreError};
use crate::index::{resolve_index, resolve_range};
use crate::shard::Write;
use crate::store::Store;

/// Which end of a list an operation works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum End {
    /// The head (index 0): `LPUSH`, `LPOP`.
    Front,
    /// The tail (index -1): `RPUSH`, `RPOP`.
    Back,
}

/// The payload of a list key.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListData {
    items: VecDeque<Bytes>,
}

/// Bytes accounted per element besides its contents.
const ELEMENT_OVERHEAD: usize = size_of::<Bytes>();

fn element_size(element: &[u8]) -> usize {
    ELEMENT_OVERHEAD + element.len()
}

impl ListData {
    pub(crate) fn from_items(items: VecDeque<Bytes>) -> Self {
        Self { items }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn items(&self) -> &VecDeque<Bytes> {
        &self.items
    }

    pub(crate) fn accounted_size(&self) -> usize {
        size_of::<Self>()
            + self
                .items
                .iter()
                .map(|item| element_size(item))
                .sum::<usize>()
    }

    fn push(&mut self, end: End, values: Vec<Bytes>) {
        for value in values {
            match end {
                End::Front => self.items.push_front(value),
                End::Back => self.items.push_back(value),
            }
        }
    }
}

fn as_list(data: &Data) -> Result<&ListData> {
    match data {
        Data::List(list) => Ok(list),
        _ => Err(StoreError::WrongType),
    }
}

fn as_list_mut(data: &mut Data) -> Result<&mut ListData> {
    match data {
        Data::List(list) => Ok(list),
        _ => Err(StoreError::WrongType),
    }
}

impl Store {
    /// Pushes `values` one by one at `end` of the list `key` (so `LPUSH k a b`
    /// leaves `b` first), creating the list if needed. Returns the new length.
    pub fn push(&self, key: &[u8], end: End, values: Vec<Bytes>) -> Result<usize> {
        if values.is_empty() {
            return Err(StoreError::InvalidArgument(
                "push needs at least one element".into(),
            ));
        }
        for value in &values {
            self.limits().check_value("element", value)?;
        }
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                let mut list = ListData::default();
                list.push(end, values);
                let len = list.items.len();
                return Ok(Write::Put {
                    data: Data::List(Box::new(list)),
                    deadline: NO_DEADLINE,
                    reply: len,
                });
            };
            let list = as_list_mut(&mut entry.data)?;
            reservation.resize(0, values.iter().map(|value| element_size(value)).sum())?;
            list.push(end, values);
            Ok(Write::Updated(list.items.len()))
        })
    }

    /// Removes and returns the element at `end` of the list `key` (the key goes
    /// with its last element). `NotFound` if the list is absent.
    pub fn pop(&self, key: &[u8], end: End) -> Result<Bytes> {
        self.pop_many(key, end, 1)?
            .pop()
            .ok_or(StoreError::NotFound)
    }

    /// Removes and returns up to `count` elements from `end` of the list `key`,
    /// in pop order. `NotFound` if the list is absent.
    pub fn pop_many(&self, key: &[u8], end: End, count: usize) -> Result<Vec<Bytes>> {
        self.write(key, |entry, reservation, _| {
            let list = as_list_mut(&mut entry.ok_or(StoreError::NotFound)?.data)?;
            let count = count.min(list.items.len());
            if count == 0 {
                return Ok(Write::Unchanged(Vec::new()));
            }
            let taken: usize = match end {
                End::Front => list
                    .items
                    .iter()
                    .take(count)
                    .map(|item| element_size(item))
                    .sum(),
                End::Back => list
                    .items
                    .iter()
                    .rev()
                    .take(count)
                    .map(|item| element_size(item))
                    .sum(),
            };
            reservation.resize(taken, 0)?;
            let popped = match end {
                End::Front => list.items.drain(..count).collect(),
                End::Back => list.items.drain(list.items.len() - count..).rev().collect(),
            };
            Ok(Write::Updated(popped))
        })
    }

    /// Returns the element at `index` (negative counts from the end). `NotFound`
    /// if the list is absent or the index is out of range.
    pub fn lindex(&self, key: &[u8], index: i64) -> Result<Bytes> {
        self.read(key, |entry, _| {
            let list = as_list(&entry.ok_or(StoreError::NotFound)?.data)?;
            let index = resolve_index(index, list.items.len()).ok_or(StoreError::NotFound)?;
            Ok(list.items[index].clone())
        })
    }

    /// Replaces the element at `index`. `NotFound` if the list is absent or the
    /// index is out of range.
    pub fn lset(&self, key: &[u8], index: i64, value: Bytes) -> Result<()> {
        self.limits().check_value("element", &value)?;
        self.write(key, |entry, reservation, _| {
            let list = as_list_mut(&mut entry.ok_or(StoreError::NotFound)?.data)?;
            let index = resolve_index(index, list.items.len()).ok_or(StoreError::NotFound)?;
            reservation.resize(element_size(&list.items[index]), element_size(&value))?;
            list.items[index] = value;
            Ok(Write::Updated(()))
        })
    }

    /// Returns the elements from `start` to `stop` inclusive, with `LRANGE`'s
    /// rules for negative and out-of-range indices (empty if the list is absent).
    pub fn lrange(&self, key: &[u8], start: i64, stop: i64) -> Result<Vec<Bytes>> {
        self.read(key, |entry, _| {
            let Some(entry) = entry else {
                return Ok(Vec::new());
            };
            let list = as_list(&entry.data)?;
            Ok(match resolve_range(start, stop, list.items.len()) {
                Some((start, stop)) => list.items.range(start..=stop).cloned().collect(),
                None => Vec::new(),
            })
        })
    }

    /// Returns the length of the list `key` (0 if absent).
    pub fn llen(&self, key: &[u8]) -> Result<usize> {
        self.read(key, |entry, _| {
            entry.map_or(Ok(0), |entry| Ok(as_list(&entry.data)?.items.len()))
        })
    }

    /// Pushes `values` at `end` of the list `key` only if it exists, as Redis's
    /// `LPUSHX`/`RPUSHX`; returns the new length (0 if absent).
    pub fn push_existing(&self, key: &[u8], end: End, values: Vec<Bytes>) -> Result<usize> {
        for value in &values {
            self.limits().check_value("element", value)?;
        }
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(0));
            };
            let list = as_list_mut(&mut entry.data)?;
            if values.is_empty() {
                return Ok(Write::Unchanged(list.items.len()));
            }
            reservation.resize(0, values.iter().map(|value| element_size(value)).sum())?;
            list.push(end, values);
            Ok(Write::Updated(list.items.len()))
        })
    }

    /// Keeps only the elements from `start` to `stop` inclusive (`LRANGE`'s
    /// index rules), as Redis's `LTRIM`; an empty range deletes the list.
    pub fn ltrim(&self, key: &[u8], start: i64, stop: i64) -> Result<()> {
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(()));
            };
            let list = as_list_mut(&mut entry.data)?;
            let len = list.items.len();
            let (keep_from, keep_to) = match resolve_range(start, stop, len) {
                Some((start, stop)) => (start, stop + 1),
                None => (0, 0),
            };
            if keep_from == 0 && keep_to == len {
                return Ok(Write::Unchanged(()));
            }
            let freed = list
                .items
                .iter()
                .enumerate()
                .filter(|(index, _)| !(keep_from..keep_to).contains(index))
                .map(|(_, item)| element_size(item))
                .sum();
            reservation.resize(freed, 0)?;
            list.items.truncate(keep_to);
            list.items.drain(..keep_from);
            Ok(Write::Updated(()))
        })
    }

    /// Removes elements equal to `element`, as Redis's `LREM`: the first
    /// `count` from the head if `count > 0`, the first `-count` from the tail
    /// if negative, all if 0. Returns how many went.
    pub fn lrem(&self, key: &[u8], count: i64, element: &[u8]) -> Result<usize> {
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(0));
            };
            let list = as_list_mut(&mut entry.data)?;
            let limit = match count.unsigned_abs() {
                0 => usize::MAX,
                limit => usize::try_from(limit).unwrap_or(usize::MAX),
            };
            let matching = |(index, item): (usize, &Bytes)| (item[..] == *element).then_some(index);
            let mut doomed: Vec<usize> = if count >= 0 {
                list.items
                    .iter()
                    .enumerate()
                    .filter_map(matching)
                    .take(limit)
                    .collect()
            } else {
                list.items
                    .iter()
                    .enumerate()
                    .rev()
                    .filter_map(matching)
                    .take(limit)
                    .collect()
            };
            if doomed.is_empty() {
                return Ok(Write::Unchanged(0));
            }
            reservation.resize(doomed.len() * element_size(element), 0)?;
            doomed.sort_unstable();
            let mut index = 0;
            list.items.retain(|_| {
                let keep = doomed.binary_search(&index).is_err();
                index += 1;
                keep
            });
            Ok(Write::Updated(doomed.len()))
        })
    }

    /// Inserts `element` before (or after) the first element equal to
    /// `pivot`, as Redis's `LINSERT`. Returns the new length, `-1` if the pivot
    /// is absent, `0` if the list is.
    pub fn linsert(&self, key: &[u8], before: bool, pivot: &[u8], element: Bytes) -> Result<i64> {
        self.limits().check_value("element", &element)?;
        self.write(key, |entry, reservation, _| {
            let Some(entry) = entry else {
                return Ok(Write::Unchanged(0));
            };
            let list = as_list_mut(&mut entry.data)?;
            let Some(at) = list.items.iter().position(|item| item[..] == *pivot) else {
                return Ok(Write::Unchanged(-1));
            };
            reservation.resize(0, element_size(&element))?;
            list.items.insert(if before { at } else { at + 1 }, element);
            Ok(Write::Updated(
                i64::try_from(list.items.len()).unwrap_or(i64::MAX),
            ))
        })
    }
}
