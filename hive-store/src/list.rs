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
}
