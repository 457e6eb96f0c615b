//! The codec's work in machine instructions, for `valgrind --tool=callgrind` (instruction counts
//! do not depend on how loaded the machine is, unlike the criterion timings). Encodes, then
//! decodes, `ROUNDS` x 1,024 records from a precomputed array in two `#[inline(never)]` batch
//! functions; count each function's instructions with
//!
//! ```sh
//! cargo build --release -p vtimestamp --example codec_instructions
//! valgrind --tool=callgrind --callgrind-out-file=cg.out --toggle-collect='*::encode_batch' \
//!     target/release/examples/codec_instructions
//! ```
//!
//! (and `--toggle-collect='*::decode_batch'`, `*hires_encode_batch*`, and
//! `*harness_encode_batch*` /
//! `*harness_decode_batch*` for the old benchmark's per-record `black_box` form), then divide
//! the reported `Collected` count by the number of records the program prints.

use std::hint::black_box;

use vtimestamp::{
    BackendNegotiation, HiResAgreed, HiResEncoder, RECORD_LEN, ts_extra_decode, ts_extra_encode,
};

const BATCH: usize = 1024;
const ROUNDS: usize = 1000;

/// Encodes a batch; an invalid input leaves an all-zero record.
#[inline(never)]
fn encode_batch(ins: &[(u32, u32)], out: &mut [[u8; RECORD_LEN]]) {
    for (o, &(s, u)) in out.iter_mut().zip(ins) {
        *o = ts_extra_encode(s, u, 0).unwrap_or([0; RECORD_LEN]);
    }
}

/// Decodes a batch; returns how many records failed.
#[inline(never)]
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

/// The old benchmark's form: `black_box` around every input and every `Result`.
#[inline(never)]
fn harness_encode_batch(ins: &[(u32, u32)]) {
    for &(s, u) in ins {
        black_box(ts_extra_encode(black_box(s), black_box(u), 0).ok());
    }
}

/// The old benchmark's form for decoding.
#[inline(never)]
fn harness_decode_batch(recs: &[[u8; RECORD_LEN]]) {
    for r in recs {
        black_box(ts_extra_decode(black_box(r)).ok());
    }
}

/// High-resolution encoding of rising arrival times; returns the number of records written.
#[inline(never)]
fn hires_encode_batch(
    enc: &mut HiResEncoder,
    agreed: HiResAgreed<'_>,
    nanos: &[u64],
    out: &mut [[u8; RECORD_LEN]],
) -> usize {
    let mut n = 0;
    for &t in nanos {
        for r in enc.encode(agreed, t, false).as_slice() {
            if let Some(o) = out.get_mut(n) {
                *o = *r;
            }
            n += 1;
        }
    }
    n
}

fn main() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let ins: Vec<(u32, u32)> = (0..BATCH)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (
                1_790_000_000 + (x >> 40) as u32 % 86_400,
                (x % 1_000_000) as u32,
            )
        })
        .collect();
    let mut recs = vec![[0u8; RECORD_LEN]; BATCH];
    let mut times = vec![(0u32, 0u32); BATCH];
    let mut be = BackendNegotiation::new();
    be.on_frontend_feature(Some("1")).expect("valid value");
    be.on_frontend_hires(Some("1")).expect("valid value");
    let agreed = be.hires().expect("negotiated");
    let mut rising: Vec<u64> = ins
        .iter()
        .map(|&(s, u)| u64::from(s) * 1_000_000_000 + u64::from(u) * 1_000 + 7)
        .collect();
    rising.sort_unstable();
    let mut enc = HiResEncoder::new();
    let mut hi_out = vec![[0u8; RECORD_LEN]; 2 * BATCH];
    let mut bad = 0;
    for _ in 0..ROUNDS {
        black_box(hires_encode_batch(
            &mut enc,
            agreed,
            black_box(&rising),
            &mut hi_out,
        ));
        encode_batch(black_box(&ins), &mut recs);
        black_box(&mut recs);
        bad += decode_batch(black_box(&recs), &mut times);
        black_box(&mut times);
        harness_encode_batch(black_box(&ins));
        harness_decode_batch(black_box(&recs));
    }
    let ok = times
        .iter()
        .zip(&ins)
        .all(|(&(s, u), &(si, ui))| s == si && u == ui & !15);
    println!(
        "records: {} encoded and {} decoded per function, {bad} failed, round trip ok: {ok}",
        BATCH * ROUNDS,
        BATCH * ROUNDS
    );
}
