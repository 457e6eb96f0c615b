//! Ring-record decoding on arbitrary bytes: the plain decoder, the chain walk and the
//! high-resolution decoder must never panic, and whatever decodes must re-encode to the same
//! bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vtimestamp::{HiResDecoder, HiResEvent, TimestampRecord, extra_chain, ts_extra_decode, ts_extra_encode};

fuzz_target!(|data: &[u8]| {
    for rec in data.chunks_exact(8) {
        let rec: &[u8; 8] = rec.try_into().expect("chunks_exact(8)");
        if let Ok((sec, usec, flags)) = ts_extra_decode(rec) {
            assert_eq!(ts_extra_encode(sec, usec, flags).as_ref(), Ok(rec));
        }
        if let Ok(r) = TimestampRecord::decode(rec) {
            assert_eq!(&r.encode(), rec);
        }
    }
    let mut chain = extra_chain(data);
    let mut n = 0;
    for rec in chain.by_ref() {
        if rec.is_err() {
            break;
        }
        n += 1;
    }
    assert!(n * 8 + chain.remainder().len() <= data.len());
    let mut dec = HiResDecoder::new();
    for rec in data.chunks_exact(8) {
        let before = dec.base_secs();
        match dec.decode(rec.try_into().expect("chunks_exact(8)")) {
            Ok(HiResEvent::Base { secs }) => assert_eq!(dec.base_secs(), Some(secs)),
            Ok(HiResEvent::Time { .. }) => assert_eq!(dec.base_secs(), before),
            Err(_) => assert_eq!(dec.base_secs(), before),
        }
    }
});
