//! Benchmark P10: `Ring::owners(key, 3)` against hashing the key with BLAKE3 alone.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hive_ring::Ring;

/// Number of distinct pre-generated keys the benchmarks cycle through.
const KEYS: usize = 4096;

/// Returns `KEYS` distinct 16-byte keys.
fn keys() -> Vec<[u8; 16]> {
    (0..KEYS as u64)
        .map(|i| {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&i.to_le_bytes());
            key[8..].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
            key
        })
        .collect()
}

fn p10(c: &mut Criterion) {
    let keys = keys();
    let mut ring = Ring::new();
    for i in 0..10 {
        ring.add(format!("node-{i}"), 100);
    }

    let mut group = c.benchmark_group("P10");
    group.bench_function("blake3_key", |b| {
        let mut i = 0;
        b.iter(|| {
            let key = &keys[i % KEYS];
            i += 1;
            let hash = blake3::hash(black_box(key));
            let [b0, b1, b2, b3, b4, b5, b6, b7, ..] = *hash.as_bytes();
            u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7])
        });
    });
    group.bench_function("owners_3", |b| {
        let mut i = 0;
        b.iter(|| {
            let key = &keys[i % KEYS];
            i += 1;
            ring.owners(black_box(key), 3)
        });
    });
    group.finish();
}

criterion_group!(benches, p10);
criterion_main!(benches);
