//! Pack + encode and decode + unpack of the 8-byte timestamp record (issue goal: ~1 ns each).
//! Run: `cargo bench -p vtimestamp --bench codec`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vtimestamp::{
    BackendNegotiation, HiResDecoder, HiResEncoder, ts_extra_decode, ts_extra_encode,
};

/// 1024 realistic arrival times (2026, spread over a day) so the branch predictor sees data.
fn inputs() -> Vec<(u32, u32)> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (
                1_790_000_000 + (x >> 40) as u32 % 86_400,
                (x % 1_000_000) as u32,
            )
        })
        .collect()
}

fn codec(c: &mut Criterion) {
    let ins = inputs();
    let recs: Vec<[u8; 8]> = ins
        .iter()
        .map(|&(s, u)| ts_extra_encode(s, u, 0).expect("valid input"))
        .collect();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(ins.len() as u64));
    g.bench_function("pack+encode", |b| {
        b.iter(|| {
            for &(s, u) in &ins {
                black_box(ts_extra_encode(black_box(s), black_box(u), 0).ok());
            }
        })
    });
    g.bench_function("decode+unpack", |b| {
        b.iter(|| {
            for r in &recs {
                black_box(ts_extra_decode(black_box(r)).ok());
            }
        })
    });
    let nanos: Vec<u64> = ins
        .iter()
        .map(|&(s, u)| s as u64 * 1_000_000_000 + u as u64 * 1_000 + 7)
        .collect();
    let mut be = BackendNegotiation::new();
    be.on_frontend_feature(Some("1")).expect("valid value");
    be.on_frontend_hires(Some("1")).expect("valid value");
    let agreed = be.hires().expect("negotiated");
    g.bench_function("hires encode", |b| {
        let mut enc = HiResEncoder::new();
        b.iter(|| {
            for &n in &nanos {
                black_box(enc.encode(agreed, black_box(n), false));
            }
        })
    });
    let mut enc = HiResEncoder::new();
    let hires: Vec<[u8; 8]> = nanos
        .iter()
        .flat_map(|&n| enc.encode(agreed, n, false).as_slice().to_vec())
        .collect();
    g.bench_function("hires decode", |b| {
        b.iter(|| {
            let mut dec = HiResDecoder::new();
            for r in &hires {
                black_box(dec.decode(black_box(r)).ok());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
