//! `vibra_dispatcher_pick` called from C against the same decision made in Rust, side by side
//! (issue 6's goal: the C call costs at most 5 ns more).
//!
//! Three loops over the same request-targets and the same load counts:
//! - `rust`: `vibra_hash::Dispatcher::pick`, what a Rust proxy calls;
//! - `c`: a C function (`ffi/bench/c/pick_loop.c`, compiled by this package's `build.rs` against
//!   `vibra.h`) calling `vibra_dispatcher_pick`, what an nginx module does;
//! - `c_abi_from_rust`: the exported function called from Rust, to show the boundary alone.
//!
//! Targets: the first 4,096 URLs of the 1998 World Cup site (`wc98::urls`: the list in
//! `$VIBRA_DATA_DIR`, else in `../shared/data` beside the workspace), or synthetic ones when the
//! data is absent; the benchmark prints which.
//!
//! Run: `cargo bench -p vibra-ffi-bench --bench pick`. Each iteration is one pass over all
//! targets; divide by 4,096 for the cost of one decision.
//!
//! On a shared machine, criterion's rows (run one after the other) drift with the load. So the
//! benchmark first prints a paired measurement: the three loops interleaved pass by pass, many
//! times, with the minimum pass time of each (interference only ever adds time) and the median.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vibra::{VIBRA_HASH_CHARSUM, VIBRA_HASH_FAST, VIBRA_OK, vibra_hash};
use vibra_ffi_bench::{CTargets, c_pick_loop, synthetic_targets};

const SERVERS: u32 = 16;
const REPLICATION: u32 = 2;
const TARGETS: usize = 4096;

/// The first URLs of the real World Cup list (`wc98::urls`), or generated ones of the same
/// shapes when the data is absent. A data directory that is named but wrong is an error, never a
/// silent switch to generated targets.
fn targets() -> Vec<Vec<u8>> {
    match wc98::urls(None) {
        Ok(Some(list)) if list.urls.len() >= TARGETS => {
            println!(
                "targets: the first {TARGETS} URLs of {}",
                list.path.display()
            );
            list.urls.into_iter().take(TARGETS).collect()
        }
        Ok(short_or_none) => {
            let why = short_or_none.map_or_else(
                || format!("no World Cup URL list (set {})", wc98::DATA_DIR_ENV),
                |l| format!("{} holds fewer than {TARGETS} URLs", l.path.display()),
            );
            println!("targets: {TARGETS} synthetic ones: {why}");
            synthetic_targets(TARGETS)
        }
        Err(e) => panic!("the World Cup URL list: {e}"),
    }
}

fn pick(c: &mut Criterion) {
    let targets = targets();
    let c_targets = CTargets::new(&targets);
    let loads: Vec<u32> = (0..SERVERS).map(|s| (s * 7 + 3) % 5).collect();
    let mut group = c.benchmark_group("pick");
    group.throughput(Throughput::Elements(TARGETS as u64));
    for (name, hash) in [("fast", VIBRA_HASH_FAST), ("charsum", VIBRA_HASH_CHARSUM)] {
        let rust = ::vibra_hash::Dispatcher::new(SERVERS, REPLICATION, hash_kind(hash)).unwrap();
        let mut d = std::ptr::null_mut();
        // SAFETY: `d` is writable; freed below.
        assert_eq!(
            unsafe { vibra::vibra_dispatcher_new(SERVERS, REPLICATION, hash, &mut d) },
            VIBRA_OK
        );
        let rust_sum: u64 = targets
            .iter()
            .map(|t| u64::from(rust.pick(t, &loads).unwrap()))
            .sum();
        // SAFETY: `d` is live until freed below.
        let c_sum = unsafe { c_pick_loop(d, &c_targets, &loads) };
        assert_eq!(c_sum, rust_sum, "C and Rust make the same decisions");

        let rust_pass = || {
            let mut sum = 0u64;
            for t in black_box(&targets) {
                if let Ok(s) = rust.pick(t, black_box(&loads)) {
                    sum += u64::from(s);
                }
            }
            sum
        };
        // SAFETY: as for `c_sum` above.
        let c_pass = || unsafe { c_pick_loop(black_box(d), &c_targets, black_box(&loads)) };
        let abi_pass = || {
            let mut sum = 0u64;
            for t in black_box(&targets) {
                let mut s = 0;
                // SAFETY: live dispatcher, readable target and loads, writable `s`.
                let st = unsafe {
                    vibra::vibra_dispatcher_pick(
                        d,
                        t.as_ptr().cast(),
                        t.len(),
                        loads.as_ptr(),
                        loads.len(),
                        &mut s,
                    )
                };
                if st == VIBRA_OK {
                    sum += u64::from(s);
                }
            }
            sum
        };
        paired(
            name,
            &[
                ("rust", &rust_pass),
                ("c", &c_pass),
                ("c_abi_from_rust", &abi_pass),
            ],
        );

        group.bench_function(format!("{name}/rust"), |b| b.iter(rust_pass));
        group.bench_function(format!("{name}/c"), |b| b.iter(c_pass));
        group.bench_function(format!("{name}/c_abi_from_rust"), |b| b.iter(abi_pass));
        // SAFETY: made above, not used again.
        unsafe { vibra::vibra_dispatcher_free(d) };
    }
    group.finish();
}

/// Times the passes interleaved (A, B, C, A, B, C, ...) for about two seconds and prints each
/// one's minimum and median pass time per decision, and the difference from the first.
fn paired(name: &str, passes: &[(&str, &dyn Fn() -> u64)]) {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); passes.len()];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) || times[0].len() < 50 {
        for (i, (_, pass)) in passes.iter().enumerate() {
            let t = Instant::now();
            black_box(pass());
            times[i].push(t.elapsed());
        }
    }
    let per_decision = |d: Duration| d.as_secs_f64() * 1e9 / TARGETS as f64;
    let stats: Vec<(f64, f64)> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            (per_decision(t[0]), per_decision(t[t.len() / 2]))
        })
        .collect();
    println!(
        "paired/{name}: {} interleaved passes of {TARGETS} decisions each, ns per decision",
        times[0].len()
    );
    for ((label, _), (min, median)) in passes.iter().zip(&stats) {
        println!(
            "paired/{name}/{label:<16} min {min:6.2} ({:+5.2})   median {median:6.2} ({:+5.2})",
            min - stats[0].0,
            median - stats[0].1
        );
    }
}

fn hash_kind(hash: vibra_hash) -> ::vibra_hash::HashKind {
    ::vibra_hash::HashKind::try_from(hash).unwrap()
}

criterion_group!(benches, pick);
criterion_main!(benches);
