//! P2 (spec: performance.md): the typed `ValueStore` in standalone mode,
//! MessagePack included, against P1's baseline — a `DashMap<Bytes, Bytes>` plus
//! `rmp-serde` encoding and decoding of the same struct — in the same run.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use dashmap::DashMap;
use hive::{Config, Node, ValueStore};
use serde::{Deserialize, Serialize};

const KEYS: usize = 100_000;

/// A typical cached record, about 100 bytes encoded.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    email: String,
    score: f64,
    tags: Vec<String>,
}

fn profile(id: u64) -> Profile {
    Profile {
        id,
        name: format!("user {id}"),
        email: format!("user{id}@example.com"),
        score: id as f64 * 1.5,
        tags: vec!["reader".into(), "beta".into()],
    }
}

fn p2(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let node = runtime.block_on(Node::start(Config::default())).unwrap();
    let store = ValueStore::<Profile>::new(&node.cache(), "profiles");
    let names: Vec<String> = (0..KEYS).map(|i| format!("user:{i:07}")).collect();
    let keys: Vec<Bytes> = names.iter().map(|name| Bytes::from(name.clone())).collect();
    let baseline: DashMap<Bytes, Bytes> = DashMap::new();
    let record = profile(42);
    for (name, key) in names.iter().zip(&keys) {
        runtime.block_on(store.set(name, &record)).unwrap();
        // The map owns a copy of the key, as the store does (see P1).
        let owned = Bytes::copy_from_slice(key);
        baseline.insert(
            owned,
            Bytes::from(rmp_serde::to_vec_named(&record).unwrap()),
        );
    }

    let mut group = c.benchmark_group("P2");
    let mut i = 0;
    let mut next = move || {
        i = (i + 7919) % KEYS;
        i
    };
    group.bench_function("get/baseline", |b| {
        b.iter(|| {
            let bytes = baseline.get(&keys[next()]).unwrap().clone();
            black_box(rmp_serde::from_slice::<Profile>(&bytes).unwrap())
        })
    });
    let store = &store;
    group.bench_function("get/value_store", |b| {
        b.to_async(&runtime).iter(|| {
            let name = &names[next()];
            async move { black_box(store.get(name).await.unwrap()) }
        })
    });
    group.bench_function("set/baseline", |b| {
        b.iter(|| {
            let bytes = Bytes::from(rmp_serde::to_vec_named(&record).unwrap());
            baseline.insert(keys[next()].clone(), bytes);
        })
    });
    group.bench_function("set/value_store", |b| {
        b.to_async(&runtime).iter(|| {
            let name = &names[next()];
            let record = &record;
            async move { store.set(name, record).await.unwrap() }
        })
    });
    group.finish();
    runtime.block_on(node.shutdown()).unwrap();
}

criterion_group!(benches, p2);
criterion_main!(benches);
