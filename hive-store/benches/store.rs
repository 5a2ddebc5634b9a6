//! P1 (spec: performance.md): `hive-store` get and set of 16-byte keys with
//! 100-byte values over 1 M keys, on 1 and 2 threads, against `DashMap<Bytes,
//! Bytes>` and `Mutex<HashMap<Bytes, Bytes>>` doing the same in the same run.
//!
//! Each benchmark reports the time of one operation per thread: with 2 threads,
//! both run `iters` operations at once and the wall time is divided by `iters`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use dashmap::DashMap;
use hive_store::{Store, StoreConfig};

const KEYS: usize = 1_000_000;
const VALUE_LEN: usize = 100;

/// A map under test: the same two operations for every contender.
trait Map: Sync {
    fn get(&self, key: &Bytes) -> Option<Bytes>;
    fn set(&self, key: &Bytes, value: &Bytes);
}

impl Map for DashMap<Bytes, Bytes> {
    fn get(&self, key: &Bytes) -> Option<Bytes> {
        DashMap::get(self, key).map(|value| value.clone())
    }
    fn set(&self, key: &Bytes, value: &Bytes) {
        self.insert(key.clone(), value.clone());
    }
}

impl Map for Mutex<HashMap<Bytes, Bytes>> {
    fn get(&self, key: &Bytes) -> Option<Bytes> {
        self.lock().unwrap().get(key).cloned()
    }
    fn set(&self, key: &Bytes, value: &Bytes) {
        self.lock().unwrap().insert(key.clone(), value.clone());
    }
}

impl Map for Store {
    fn get(&self, key: &Bytes) -> Option<Bytes> {
        Store::get(self, key).ok()
    }
    fn set(&self, key: &Bytes, value: &Bytes) {
        Store::set(self, key, value.clone(), None).unwrap();
    }
}

/// 16-byte keys, each already shared so cloning one is a reference-count bump
/// for every contender alike.
fn keys() -> Vec<Bytes> {
    (0..KEYS)
        .map(|i| Bytes::from(format!("key:{i:012}")))
        .collect()
}

/// Fills `map` with its own copy of every key, as a server's map owns keys that
/// arrived in requests: a lookup then reads the stored key from the map's
/// memory, not from the benchmark's key array it has just touched.
fn filled<M: Map>(map: M, keys: &[Bytes], value: &Bytes) -> M {
    for key in keys {
        map.set(&Bytes::copy_from_slice(key), value);
    }
    map
}

/// Runs `op` `iters` times on each of `threads` threads over pseudo-random keys;
/// returns the wall time from a common start to the last thread's end.
fn timed(threads: usize, iters: u64, keys: &[Bytes], op: &(dyn Fn(&Bytes) + Sync)) -> Duration {
    let barrier = Barrier::new(threads + 1);
    thread::scope(|scope| {
        for seed in 0..threads {
            let barrier = &barrier;
            scope.spawn(move || {
                let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ (seed as u64 + 1);
                barrier.wait();
                for _ in 0..iters {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    op(&keys[(state % keys.len() as u64) as usize]);
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Leaving the scope joins every thread.
        start
    })
    .elapsed()
}

fn p1(c: &mut Criterion) {
    let keys = keys();
    let value = Bytes::from(vec![b'v'; VALUE_LEN]);
    let dashmap = filled(DashMap::new(), &keys, &value);
    let mutex = filled(Mutex::new(HashMap::new()), &keys, &value);
    let store = filled(Store::new(StoreConfig::default()), &keys, &value);
    let contenders: [(&str, &dyn Map); 3] = [
        ("dashmap", &dashmap),
        ("mutex_hashmap", &mutex),
        ("hive_store", &store),
    ];

    // Contenders of one operation run back to back, so drift on a shared
    // machine hits the baseline and the store alike.
    let mut group = c.benchmark_group("P1");
    for threads in [1, 2] {
        let label = format!("{threads}t");
        for (name, map) in contenders {
            group.bench_with_input(
                BenchmarkId::new(format!("get/{name}"), &label),
                &threads,
                |b, &t| {
                    b.iter_custom(|iters| {
                        timed(t, iters, &keys, &|key| {
                            black_box(map.get(key));
                        })
                    })
                },
            );
        }
        for (name, map) in contenders {
            group.bench_with_input(
                BenchmarkId::new(format!("set/{name}"), &label),
                &threads,
                |b, &t| b.iter_custom(|iters| timed(t, iters, &keys, &|key| map.set(key, &value))),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, p1);
criterion_main!(benches);
