use std::ptr::{null, null_mut};

use proptest::prelude::*;

use super::support::last_error;
use crate::boundary::with_forced_panics;
use crate::*;

fn pack(sec: u32, usec: u32) -> Result<u64, vibra_status> {
    let mut packed = u64::MAX;
    // SAFETY: `packed` is writable.
    let st = unsafe { vibra_ts48_pack(sec, usec, &mut packed) };
    if st == VIBRA_OK {
        Ok(packed)
    } else {
        assert_eq!(packed, u64::MAX, "written on error");
        Err(st)
    }
}

fn unpack(packed: u64) -> Result<(u32, u32), vibra_status> {
    let (mut sec, mut usec) = (u32::MAX, u32::MAX);
    // SAFETY: both outputs are writable.
    let st = unsafe { vibra_ts48_unpack(packed, &mut sec, &mut usec) };
    if st == VIBRA_OK {
        Ok((sec, usec))
    } else {
        assert_eq!((sec, usec), (u32::MAX, u32::MAX), "written on error");
        Err(st)
    }
}

fn encode(sec: u32, usec: u32, flags: u8) -> Result<[u8; 8], vibra_status> {
    let mut out = [0xAA; 8];
    // SAFETY: 8 writable bytes.
    let st = unsafe { vibra_ts_extra_encode(sec, usec, flags, out.as_mut_ptr()) };
    if st == VIBRA_OK {
        Ok(out)
    } else {
        assert_eq!(out, [0xAA; 8], "written on error");
        Err(st)
    }
}

fn decode(record: [u8; 8]) -> Result<(u32, u32, u8), vibra_status> {
    let (mut sec, mut usec, mut flags) = (u32::MAX, u32::MAX, 0xEE);
    // SAFETY: 8 readable bytes, writable outputs.
    let st = unsafe { vibra_ts_extra_decode(record.as_ptr(), &mut sec, &mut usec, &mut flags) };
    if st == VIBRA_OK {
        Ok((sec, usec, flags))
    } else {
        assert_eq!(
            (sec, usec, flags),
            (u32::MAX, u32::MAX, 0xEE),
            "written on error"
        );
        Err(st)
    }
}

#[test]
fn constants_are_the_codec_constants() {
    assert_eq!(
        VIBRA_NETIF_EXTRA_TYPE_TIMESTAMP,
        vtimestamp::EXTRA_TYPE_TIMESTAMP
    );
    assert_eq!(VIBRA_NETIF_EXTRA_FLAG_MORE, vtimestamp::EXTRA_FLAG_MORE);
    assert_eq!(VIBRA_TS_RECORD_LEN, vtimestamp::RECORD_LEN);
    assert_eq!(
        u64::from(VIBRA_TS48_RESOLUTION_US),
        u64::from(vtimestamp::RESOLUTION_US)
    );
}

#[test]
fn pack_and_unpack_follow_spec_7_and_reject_bad_values() {
    assert_eq!(pack(1, 17), Ok(0x1_0001));
    assert_eq!(
        pack(u32::MAX, 999_999),
        Ok((u64::from(u32::MAX) << 16) | (999_999 >> 4))
    );
    assert_eq!(pack(1, 1_000_000), Err(VIBRA_INVALID_ARGUMENT));
    assert!(last_error().contains("1000000"), "{}", last_error());
    assert_eq!(unpack(0x1_0001), Ok((1, 16)));
    assert_eq!(
        unpack(1 << 48),
        Err(VIBRA_INVALID_ARGUMENT),
        "wider than 48 bits"
    );
    assert_eq!(
        unpack(62_500),
        Err(VIBRA_INVALID_ARGUMENT),
        "fraction beyond 999999 us"
    );
    let mut x = 0u32;
    // SAFETY: each call has one NULL out-parameter, which must be reported.
    unsafe {
        assert_eq!(vibra_ts48_pack(1, 2, null_mut()), VIBRA_NULL_POINTER);
        assert_eq!(vibra_ts48_unpack(1, null_mut(), &mut x), VIBRA_NULL_POINTER);
        assert_eq!(vibra_ts48_unpack(1, &mut x, null_mut()), VIBRA_NULL_POINTER);
    }
    assert_eq!(x, 0);
}

#[test]
fn ring_records_have_the_xen_layout_and_reject_bad_records() {
    assert_eq!(
        encode(1, 16, VIBRA_NETIF_EXTRA_FLAG_MORE),
        Ok([6, 1, 1, 0, 1, 0, 0, 0])
    );
    assert_eq!(encode(0x0102_0304, 0, 0), Ok([6, 0, 0, 0, 4, 3, 2, 1]));
    assert_eq!(encode(1, 1_000_000, 0), Err(VIBRA_INVALID_ARGUMENT));
    assert_eq!(encode(1, 0, 0x80), Err(VIBRA_INVALID_ARGUMENT));
    assert_eq!(decode([6, 1, 1, 0, 1, 0, 0, 0]), Ok((1, 16, 1)));
    assert_eq!(
        decode([5, 0, 0, 0, 0, 0, 0, 0]),
        Err(VIBRA_INVALID_ARGUMENT),
        "another extra type"
    );
    assert_eq!(
        decode([6, 2, 0, 0, 0, 0, 0, 0]),
        Err(VIBRA_INVALID_ARGUMENT),
        "reserved flag"
    );
    assert_eq!(
        decode([6, 0, 0xFF, 0xFF, 0, 0, 0, 0]),
        Err(VIBRA_INVALID_ARGUMENT),
        "fraction too big"
    );
    let record = [6u8, 0, 0, 0, 0, 0, 0, 0];
    let (mut s, mut u, mut f) = (0u32, 0u32, 0u8);
    // SAFETY: each call has one NULL pointer, which must be reported.
    unsafe {
        assert_eq!(
            vibra_ts_extra_encode(1, 0, 0, null_mut()),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_ts_extra_decode(null(), &mut s, &mut u, &mut f),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_ts_extra_decode(record.as_ptr(), null_mut(), &mut u, &mut f),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_ts_extra_decode(record.as_ptr(), &mut s, null_mut(), &mut f),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_ts_extra_decode(record.as_ptr(), &mut s, &mut u, null_mut()),
            VIBRA_NULL_POINTER
        );
    }
}

#[test]
fn panics_inside_timestamp_functions_come_back_as_a_status() {
    let (mut packed, mut s, mut u, mut f, mut out) = (7u64, 7u32, 7u32, 7u8, [7u8; 8]);
    let record = [6u8, 0, 0, 0, 0, 0, 0, 0];
    with_forced_panics(|| {
        // SAFETY: valid arguments; only the forced panic can fail these calls.
        unsafe {
            assert_eq!(vibra_ts48_pack(1, 2, &mut packed), VIBRA_PANIC);
            assert_eq!(vibra_ts48_unpack(1, &mut s, &mut u), VIBRA_PANIC);
            assert_eq!(
                vibra_ts_extra_encode(1, 2, 0, out.as_mut_ptr()),
                VIBRA_PANIC
            );
            assert_eq!(
                vibra_ts_extra_decode(record.as_ptr(), &mut s, &mut u, &mut f),
                VIBRA_PANIC
            );
        }
    });
    assert_eq!((packed, s, u, f, out), (7, 7, 7, 7, [7; 8]));
    assert!(last_error().starts_with("panic inside libvibra (vibra_ts_extra_decode)"));
}

proptest! {
    /// Unpacking a packed time gives it back to within the 16 us resolution (SPEC section 7).
    #[test]
    fn unpack_of_pack_loses_less_than_16_us(sec in any::<u32>(), usec in 0u32..1_000_000) {
        let (s, u) = unpack(pack(sec, usec).unwrap()).unwrap();
        prop_assert_eq!(s, sec);
        prop_assert!(u <= usec && usec - u < VIBRA_TS48_RESOLUTION_US);
    }

    /// Decoding an encoded record gives back its time (to 16 us) and its flags.
    #[test]
    fn decode_of_encode_round_trips(sec in any::<u32>(), usec in 0u32..1_000_000, more in any::<bool>()) {
        let flags = if more { VIBRA_NETIF_EXTRA_FLAG_MORE } else { 0 };
        let (s, u, f) = decode(encode(sec, usec, flags).unwrap()).unwrap();
        prop_assert_eq!((s, f), (sec, flags));
        prop_assert!(u <= usec && usec - u < VIBRA_TS48_RESOLUTION_US);
    }

    /// Any 8 bytes are either decoded or refused with a status: never a panic, never UB.
    #[test]
    fn any_record_decodes_or_is_refused(record in any::<[u8; 8]>()) {
        match decode(record) {
            Ok((_, u, _)) => prop_assert!(u < 1_000_000),
            Err(st) => prop_assert_eq!(st, VIBRA_INVALID_ARGUMENT),
        }
    }
}
