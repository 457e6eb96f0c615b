//! The SPEC 7 invariants of the codec, the ring record and the high-resolution mode.

use bytes::{Buf, BytesMut};
use proptest::prelude::*;
use vtimestamp::{
    BackendNegotiation, EXTRA_FLAG_MORE, ExtraRecord, HiResDecoder, HiResEncoder, HiResEvent,
    MAX_OFFSET_NANOS, Timespec, TimestampRecord, Timeval, Ts48, TsError, extra_chain, put_chain,
    ts_extra_decode, ts_extra_encode, ts48_pack, ts48_unpack,
};

/// A backend whose frontend asked for, and got, the high-resolution mode.
fn hires_backend() -> BackendNegotiation {
    let mut be = BackendNegotiation::new();
    be.on_frontend_feature(Some("1")).expect("valid value");
    be.on_frontend_hires(Some("1")).expect("valid value");
    be
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn pack_unpack_error_is_in_zero_to_16us(sec in any::<u32>(), usec in 0u32..1_000_000) {
        let (s, u) = ts48_unpack(ts48_pack(sec, usec)?)?;
        prop_assert_eq!(s, sec);
        prop_assert!(u <= usec && usec - u < 16, "usec {} unpacked to {}", usec, u);
    }

    #[test]
    fn packing_is_monotonic_in_time_and_one_step_is_16_us(
        a in (any::<u32>(), 0u32..1_000_000), b in (any::<u32>(), 0u32..1_000_000),
    ) {
        // A later time never packs to a smaller value (tuples compare seconds first).
        let (early, late) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(ts48_pack(early.0, early.1)? <= ts48_pack(late.0, late.1)?);
        // 16 us later in the same second is the next packed value; the next second is more.
        let (sec, usec) = a;
        if usec + 16 < 1_000_000 {
            prop_assert_eq!(ts48_pack(sec, usec + 16)?, ts48_pack(sec, usec)? + 1);
        }
        if let Some(next) = sec.checked_add(1) {
            prop_assert!(ts48_pack(next, 0)? > ts48_pack(sec, 999_999)?);
        }
    }

    #[test]
    fn usec_out_of_range_is_a_typed_error(sec in any::<u32>(), usec in 1_000_000u32..) {
        prop_assert_eq!(ts48_pack(sec, usec), Err(TsError::MicrosOutOfRange(usec.into())));
        prop_assert!(ts_extra_encode(sec, usec, 0).is_err());
    }

    #[test]
    fn every_packed_value_unpacks_or_errors_and_repacks_identically(packed in any::<u64>()) {
        match ts48_unpack(packed) {
            Ok((s, u)) => prop_assert_eq!(ts48_pack(s, u)?, packed),
            Err(TsError::PackedTooWide(p)) => prop_assert!(p >> 48 != 0),
            Err(TsError::FractionOutOfRange(f)) => prop_assert!(f > 62_499),
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn encode_decode_round_trips(sec in any::<u32>(), usec in 0u32..1_000_000, more in any::<bool>()) {
        let flags = if more { EXTRA_FLAG_MORE } else { 0 };
        let rec = ts_extra_encode(sec, usec, flags)?;
        prop_assert_eq!(rec[0], 6);
        prop_assert_eq!(rec[1], flags);
        // Bytes 4..8 are the seconds, little-endian (SPEC 7: bits 16..48 of packed48, which
        // starts at byte 2); bytes 2..4 the 16-us fraction.
        prop_assert_eq!(&rec[4..], &sec.to_le_bytes()[..]);
        let (s, u, f) = ts_extra_decode(&rec)?;
        prop_assert_eq!((s, f), (sec, flags));
        prop_assert!(u <= usec && usec - u < 16 && u % 16 == 0, "usec {} decoded to {}", usec, u);
    }

    #[test]
    fn decode_of_arbitrary_bytes_never_panics_and_re_encodes_identically(b in any::<[u8; 8]>()) {
        if let Ok((s, u, f)) = ts_extra_decode(&b) {
            prop_assert_eq!(ts_extra_encode(s, u, f)?, b);
        }
    }

    #[test]
    fn decode_rejects_other_record_types(b in any::<[u8; 8]>()) {
        prop_assume!(b[0] != 6);
        prop_assert_eq!(ts_extra_decode(&b), Err(TsError::WrongRecordType { found: b[0], expected: 6 }));
    }

    #[test]
    fn bytes_buffers_round_trip_and_truncation_consumes_nothing(
        sec in any::<u32>(), usec in 0u32..1_000_000, cut in 0usize..8,
    ) {
        let rec = TimestampRecord { ts: Ts48::new(sec, usec)?, more: false };
        let mut buf = BytesMut::new();
        rec.put(&mut buf)?;
        let mut whole = buf.clone().freeze();
        prop_assert_eq!(TimestampRecord::get(&mut whole)?, rec);
        prop_assert_eq!(whole.remaining(), 0);
        let mut short = buf.freeze().slice(..cut);
        let truncated = matches!(TimestampRecord::get(&mut short), Err(TsError::Truncated { .. }));
        prop_assert!(truncated);
        prop_assert_eq!(short.remaining(), cut);
        let mut slot = vec![0u8; cut];
        prop_assert!(rec.put(&mut &mut slot[..]).is_err());
        prop_assert!(slot.iter().all(|&b| b == 0));
    }

    #[test]
    fn chains_set_more_on_all_but_the_last_and_walk_back(
        raw in prop::collection::vec(any::<[u8; 8]>(), 1..6), tail in any::<[u8; 8]>(),
    ) {
        let recs: Vec<ExtraRecord> = raw.iter().map(|b| ExtraRecord::from_bytes(*b)).collect();
        let mut out = Vec::new();
        put_chain(&recs, &mut out)?;
        out.extend_from_slice(&tail);
        let mut chain = extra_chain(&out);
        let walked: Vec<ExtraRecord> = chain.by_ref().collect::<Result<_, _>>()?;
        prop_assert_eq!(walked.len(), recs.len());
        for (i, (w, r)) in walked.iter().zip(&recs).enumerate() {
            prop_assert_eq!((w.kind, w.payload), (r.kind, r.payload));
            prop_assert_eq!(w.has_more(), i + 1 < recs.len());
            prop_assert_eq!(w.flags & !EXTRA_FLAG_MORE, r.flags & !EXTRA_FLAG_MORE);
        }
        prop_assert_eq!(chain.remainder(), &tail[..]);
    }

    #[test]
    fn chain_walk_of_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let n = extra_chain(&bytes).take(16).count();
        prop_assert!(n <= bytes.len() / 8 + 1);
    }

    #[test]
    fn hires_mode_is_exact_to_the_nanosecond_across_rebases(
        start in 0u64..u64::MAX / 2,
        steps in prop::collection::vec((0u64..4 * MAX_OFFSET_NANOS, any::<bool>()), 1..64),
    ) {
        let be = hires_backend();
        let (mut enc, mut dec) = (HiResEncoder::new(), HiResDecoder::new());
        let mut t = start;
        for (step, back) in steps {
            t = if back { t.saturating_sub(step / 1024) } else { t.saturating_add(step) };
            let mut got = None;
            for rec in enc.encode(be.hires()?, t, false).as_slice() {
                if let HiResEvent::Time { unix_nanos } = dec.decode(rec)? {
                    got = Some(unix_nanos);
                }
            }
            prop_assert_eq!(got, Some(t));
            prop_assert_eq!(dec.base_secs(), enc.base_secs());
        }
    }

    #[test]
    fn hires_decode_errors_change_nothing(base in 0u64..1 << 34, b in any::<[u8; 8]>()) {
        let mut dec = HiResDecoder::new();
        let mut enc = HiResEncoder::new();
        let be = hires_backend();
        for rec in enc.encode(be.hires()?, base * 1_000_000_000, false).as_slice() {
            dec.decode(rec)?;
        }
        let before = dec.base_secs();
        if dec.decode(&b).is_err() {
            prop_assert_eq!(dec.base_secs(), before);
        }
    }

    #[test]
    fn timeval_timespec_and_system_time_agree(sec in any::<u32>(), nsec in 0i64..1_000_000_000) {
        let ts = Ts48::try_from(Timespec { tv_sec: sec.into(), tv_nsec: nsec })?;
        let tv = Ts48::try_from(Timeval { tv_sec: sec.into(), tv_usec: nsec / 1000 })?;
        prop_assert_eq!(ts, tv);
        let st = std::time::SystemTime::from(ts);
        prop_assert_eq!(Ts48::try_from(st)?, ts);
        let n = sec as u64 * 1_000_000_000 + nsec as u64;
        prop_assert_eq!(Ts48::from_unix_nanos(n)?, ts);
        prop_assert!(n - ts.to_unix_nanos() < 16_000);
        prop_assert_eq!(Timespec::from(ts).to_unix_nanos()?, ts.to_unix_nanos());
    }
}

/// SPEC 7 by hand: packed48 = (sec << 16) | (usec >> 4), each value worked out on paper
/// (usec >> 4 is the whole number of 16-us steps: 16 -> 1, 15 -> 0, 500,000 -> 31,250 =
/// 0x7A12, 999,999 -> 62,499 = 0xF423).
const VECTORS: [(u32, u32, u64); 12] = [
    (0, 0, 0),
    (0, 15, 0),
    (0, 16, 1),
    (0, 999_983, 0xF422),
    (0, 999_984, 0xF423),
    (0, 999_999, 0xF423),
    (1, 0, 0x1_0000),
    (1, 15, 0x1_0000),
    (1, 16, 0x1_0001),
    (0x0102_0304, 500_000, 0x0102_0304_7A12),
    (u32::MAX, 0, 0xFFFF_FFFF_0000),
    (u32::MAX, 999_999, 0xFFFF_FFFF_F423),
];

#[test]
fn pack_and_unpack_give_the_hand_computed_vectors() {
    for (sec, usec, packed) in VECTORS {
        assert_eq!(ts48_pack(sec, usec), Ok(packed), "pack({sec}, {usec})");
        // Unpacking returns the start of the 16-us step: usec rounded down to a multiple of 16.
        let step_start = usec - usec % 16;
        assert_eq!(
            ts48_unpack(packed),
            Ok((sec, step_start)),
            "unpack({packed:#x})"
        );
    }
}

#[test]
fn pack_and_unpack_reject_what_spec_7_excludes() {
    assert_eq!(
        ts48_pack(0, 1_000_000),
        Err(TsError::MicrosOutOfRange(1_000_000))
    );
    assert_eq!(
        ts48_pack(u32::MAX, u32::MAX),
        Err(TsError::MicrosOutOfRange(4_294_967_295))
    );
    // 62,500 steps of 16 us would be 1,000,000 us: never produced by pack.
    assert_eq!(
        ts48_unpack(0xF424),
        Err(TsError::FractionOutOfRange(62_500))
    );
    assert_eq!(
        ts48_unpack(0xFFFF),
        Err(TsError::FractionOutOfRange(65_535))
    );
    assert_eq!(
        ts48_unpack(1 << 48),
        Err(TsError::PackedTooWide(0x1_0000_0000_0000))
    );
    assert_eq!(ts48_unpack(u64::MAX), Err(TsError::PackedTooWide(u64::MAX)));
}

/// The 8-byte ring record, written out byte by byte: type 6, flags, then packed48 in
/// little-endian order (SPEC 7), for values of [`VECTORS`].
#[test]
fn records_have_the_hand_written_byte_layout() {
    let cases: [((u32, u32, u8), [u8; 8]); 5] = [
        ((0, 0, 0), [6, 0, 0, 0, 0, 0, 0, 0]),
        (
            (1, 16, EXTRA_FLAG_MORE),
            [6, 1, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00],
        ),
        ((1, 15, 0), [6, 0, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00]),
        (
            (0x0102_0304, 500_000, 0),
            [6, 0, 0x12, 0x7A, 0x04, 0x03, 0x02, 0x01],
        ),
        (
            (u32::MAX, 999_999, EXTRA_FLAG_MORE),
            [6, 1, 0x23, 0xF4, 0xFF, 0xFF, 0xFF, 0xFF],
        ),
    ];
    for ((sec, usec, flags), bytes) in cases {
        assert_eq!(
            ts_extra_encode(sec, usec, flags),
            Ok(bytes),
            "{sec}.{usec:06}"
        );
        assert_eq!(ts_extra_decode(&bytes), Ok((sec, usec - usec % 16, flags)));
        let rec = TimestampRecord {
            ts: Ts48::new(sec, usec).unwrap(),
            more: flags == EXTRA_FLAG_MORE,
        };
        let mut buf = BytesMut::new();
        rec.put(&mut buf).unwrap();
        assert_eq!(&buf[..], &bytes[..]);
    }
    // Reserved flag bits, another record type and a fraction of 62,500 steps are refused.
    assert!(matches!(
        ts_extra_encode(1, 16, 0x02),
        Err(TsError::ReservedFlags { flags: 0x02, .. })
    ));
    assert!(matches!(
        ts_extra_decode(&[6, 0x80, 1, 0, 1, 0, 0, 0]),
        Err(TsError::ReservedFlags { flags: 0x80, .. })
    ));
    assert_eq!(
        ts_extra_decode(&[7, 0, 1, 0, 1, 0, 0, 0]),
        Err(TsError::WrongRecordType {
            found: 7,
            expected: 6
        })
    );
    assert_eq!(
        ts_extra_decode(&[6, 0, 0x24, 0xF4, 0, 0, 0, 0]),
        Err(TsError::FractionOutOfRange(62_500))
    );
}

#[test]
fn bad_conversions_are_typed_errors() {
    assert_eq!(
        Ts48::try_from(Timeval {
            tv_sec: -1,
            tv_usec: 0
        }),
        Err(TsError::SecondsOutOfRange(-1))
    );
    assert_eq!(
        Ts48::try_from(Timeval {
            tv_sec: 1 << 32,
            tv_usec: 0
        }),
        Err(TsError::SecondsOutOfRange(1 << 32))
    );
    assert_eq!(
        Ts48::try_from(Timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000_000
        }),
        Err(TsError::NanosOutOfRange(1_000_000_000))
    );
    assert!(Ts48::from_unix_nanos(u64::MAX).is_err());
    let before_epoch = std::time::UNIX_EPOCH - std::time::Duration::from_millis(1);
    assert!(matches!(
        Ts48::try_from(before_epoch),
        Err(TsError::SecondsOutOfRange(_))
    ));
    assert_eq!(Ts48::MAX.secs(), u32::MAX);
    assert_eq!(Ts48::MAX.micros(), 999_984);
}

#[test]
fn hires_base_overflow_and_missing_base_are_rejected() {
    let mut dec = HiResDecoder::new();
    assert_eq!(
        dec.decode(&[6, 4, 0, 0, 0, 0, 0, 0]),
        Err(TsError::MissingBase)
    );
    // Base 2^48 - 1 seconds: times 10^9 does not fit a u64.
    assert!(matches!(
        dec.decode(&[6, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Err(TsError::HiResOutOfRange { .. })
    ));
    assert_eq!(dec.base_secs(), None);
    // The largest base that fits, then an offset that overflows.
    let max_base = (u64::MAX / 1_000_000_000).to_le_bytes();
    let mut base = [6, 3, 0, 0, 0, 0, 0, 0];
    base[2..].copy_from_slice(&max_base[..6]);
    assert!(dec.decode(&base).is_ok());
    assert!(matches!(
        dec.decode(&[6, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Err(TsError::HiResOutOfRange { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever order the xenstore watches fire in and whatever the frontend writes, the
    /// backend hands out the high-resolution proof exactly when the frontend's plain key is "1"
    /// and its hires key was written "1" since the plain key was last withdrawn; and after a
    /// new agreement the encoder starts with a base again.
    #[test]
    fn hires_records_only_while_both_keys_are_agreed(
        events in prop::collection::vec((any::<bool>(), 0u8..3), 1..32),
    ) {
        let mut be = BackendNegotiation::new();
        let mut enc = HiResEncoder::new();
        let (mut plain_on, mut hires_wanted) = (false, false);
        let mut was_agreed = false;
        for (which, v) in events {
            let value = [None, Some("0"), Some("1")][usize::from(v)];
            let on = value == Some("1");
            if which {
                if plain_on && !on {
                    hires_wanted = false;
                }
                plain_on = on;
                be.on_frontend_feature(value)?;
            } else {
                hires_wanted = on;
                be.on_frontend_hires(value)?;
            }
            let both = plain_on && hires_wanted;
            prop_assert_eq!(be.hires().is_ok(), both);
            prop_assert_eq!(be.may_send().is_ok(), plain_on);
            if let Ok(agreed) = be.hires() {
                let n = enc.encode(agreed, 5_000_000_000, false).as_slice().len();
                // A base on the first record of every agreement, none after it.
                prop_assert_eq!(n, if was_agreed { 1 } else { 2 });
            }
            was_agreed = both;
        }
    }
}
