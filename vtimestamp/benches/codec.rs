//! Pack + encode and decode + unpack of the 8-byte timestamp record (issue goal: ~1 ns each).
//! Run: `cargo bench -p vtimestamp --bench codec`.
//!
//! Every benchmark works on a batch of 1,024 precomputed inputs per iteration and is reported
//! per record (criterion's throughput in elements), so criterion's per-iteration overhead is
//! spread over 1,024 records. The inputs go through `black_box` once per batch (the compiler
//! cannot see their values) and the outputs are written to an array that goes through
//! `black_box` once per batch (the work cannot be dropped). The `harness/...` variants repeat
//! the old form (`black_box` on every input and every `Result`) in the same run, to show how
//! much of its figure was the harness rather than the codec.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vtimestamp::{
    BackendNegotiation, HiResDecoder, HiResEncoder, HiResEvent, RECORD_LEN, ts_extra_decode,
    ts_extra_encode,
};

const BATCH: usize = 1024;

/// 1,024 realistic arrival times (2026, spread over a day) so the branch predictor sees data.
fn inputs() -> Vec<(u32, u32)> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..BATCH)
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

/// Encodes a batch; an invalid input leaves an all-zero record (none occurs here).
fn encode_batch(ins: &[(u32, u32)], out: &mut [[u8; RECORD_LEN]]) {
    for (o, &(s, u)) in out.iter_mut().zip(ins) {
        *o = ts_extra_encode(s, u, 0).unwrap_or([0; RECORD_LEN]);
    }
}

/// Decodes a batch; returns how many records failed (none here), so errors are not dropped.
fn decode_batch(recs: &[[u8; RECORD_LEN]], out: &mut [(u32, u32)]) -> usize {
    let mut bad = 0;
    for (o, r) in out.iter_mut().zip(recs) {
        match ts_extra_decode(r) {
            Ok((s, u, _)) => *o = (s, u),
            Err(_) => bad += 1,
        }
    }
    bad
}

fn codec(c: &mut Criterion) {
    let ins = inputs();
    let recs: Vec<[u8; RECORD_LEN]> = ins
        .iter()
        .map(|&(s, u)| ts_extra_encode(s, u, 0).expect("valid input"))
        .collect();
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(BATCH as u64));

    let mut out = vec![[0u8; RECORD_LEN]; BATCH];
    g.bench_function("pack+encode", |b| {
        b.iter(|| {
            encode_batch(black_box(&ins), &mut out);
            black_box(&mut out);
        })
    });
    let mut times = vec![(0u32, 0u32); BATCH];
    g.bench_function("decode+unpack", |b| {
        b.iter(|| {
            let bad = decode_batch(black_box(&recs), &mut times);
            black_box((&mut times, bad));
        })
    });

    // The old form: black_box around every input and every Result.
    g.bench_function("harness/pack+encode per-record black_box", |b| {
        b.iter(|| {
            for &(s, u) in &ins {
                black_box(ts_extra_encode(black_box(s), black_box(u), 0).ok());
            }
        })
    });
    g.bench_function("harness/decode+unpack per-record black_box", |b| {
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
    let mut hi_out = vec![[0u8; RECORD_LEN]; 2 * BATCH];
    g.bench_function("hires encode, random times", |b| {
        let mut enc = HiResEncoder::new();
        b.iter(|| {
            let mut n = 0;
            for &t in black_box(&nanos) {
                for r in enc.encode(agreed, t, false).as_slice() {
                    hi_out[n] = *r;
                    n += 1;
                }
            }
            black_box((&mut hi_out, n));
        })
    });
    // Arrival times as a ring sees them: rising. (In both variants the base settles on the
    // earliest second after the first batch, and every later packet is one offset record.)
    let mut rising = nanos.clone();
    rising.sort_unstable();
    g.bench_function("hires encode, rising times", |b| {
        let mut enc = HiResEncoder::new();
        b.iter(|| {
            let mut n = 0;
            for &t in black_box(&rising) {
                for r in enc.encode(agreed, t, false).as_slice() {
                    hi_out[n] = *r;
                    n += 1;
                }
            }
            black_box((&mut hi_out, n));
        })
    });
    let mut enc = HiResEncoder::new();
    let hires: Vec<[u8; RECORD_LEN]> = nanos
        .iter()
        .flat_map(|&n| enc.encode(agreed, n, false).as_slice().to_vec())
        .collect();
    let mut hi_times = vec![0u64; hires.len()];
    g.bench_function("hires decode", |b| {
        b.iter(|| {
            let mut dec = HiResDecoder::new();
            let mut bad = 0usize;
            for (o, r) in hi_times.iter_mut().zip(black_box(&hires)) {
                match dec.decode(r) {
                    Ok(HiResEvent::Time { unix_nanos }) => *o = unix_nanos,
                    Ok(HiResEvent::Base { secs }) => *o = secs,
                    Err(_) => bad += 1,
                }
            }
            black_box((&mut hi_times, bad));
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
