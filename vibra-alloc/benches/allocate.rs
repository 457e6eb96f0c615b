//! One allocation + plan for 10, 1,000 and 100,000 VMs (the performance goal:
//! linear in VMs, 100,000 VMs in under 5 ms). Figures go in the crate README.
//!
//! Run: `cargo bench -p vibra-alloc --bench allocate`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use vibra_alloc::{ChangeF64, Plan, allocate_proportional, allocation_plan, split_units_into};

/// Deterministic, uneven demand (a cheap LCG; no randomness crate needed for a fixed input).
fn demand(n: usize) -> Vec<f64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            ((x >> 33) % 10_000) as f64 / 10.0
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("allocate_and_plan");
    for n in [10usize, 1_000, 100_000] {
        let d = demand(n);
        // A pool of 1,000 units per VM with a floor of 10: the current split is even.
        let total = 1_000 * n as u64;
        let current = vec![1_000u64; n];
        let mut target = vec![0u64; n];
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("units", n), &n, |b, _| {
            b.iter(|| {
                split_units_into(black_box(&d), None, total, 10, &mut target).unwrap();
                black_box(Plan::between(&current, &target).unwrap())
            })
        });
        g.bench_with_input(BenchmarkId::new("units_split_only", n), &n, |b, _| {
            b.iter(|| split_units_into(black_box(&d), None, total, 10, &mut target).unwrap())
        });
        // Calibration on a shared machine: one streaming pass over the demand, the least any
        // allocator must do. The README states the others as multiples of it.
        g.bench_with_input(BenchmarkId::new("baseline_sum", n), &n, |b, _| {
            b.iter(|| black_box(&d).iter().sum::<f64>())
        });
        let cur_f = vec![1_000.0f64; n];
        let mut out = vec![0.0f64; n];
        let mut changes = vec![ChangeF64::default(); n];
        g.bench_with_input(BenchmarkId::new("f64_spec", n), &n, |b, _| {
            b.iter(|| {
                allocate_proportional(black_box(&d), total as f64, 10.0, &mut out).unwrap();
                black_box(allocation_plan(&cur_f, &out, &mut changes).unwrap())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
