//! 48-bit packet-arrival timestamps and their 8-byte Xen ring record (SPEC section 7) over
//! vtimestamp's pure codec (its socket module is not linked: the `socket` feature is off).

use vtimestamp::TsError;

use crate::boundary::Failure;
use crate::ptr::{try_out, try_out_slice, try_slice};
use crate::status::{Status, vibra_status};

/// The extra-record type of a timestamp record (byte 0): 6, the first value free in both Xen's
/// and Linux's `netif.h`.
pub const VIBRA_NETIF_EXTRA_TYPE_TIMESTAMP: u8 = 6;
/// Flag bit 0 (byte 1), with Xen's meaning `XEN_NETIF_EXTRA_FLAG_MORE`: another extra record
/// follows this one.
pub const VIBRA_NETIF_EXTRA_FLAG_MORE: u8 = 1;
/// The size of a ring record in bytes.
pub const VIBRA_TS_RECORD_LEN: usize = 8;
/// The resolution of a 48-bit timestamp in microseconds: unpacking loses at most 15 us.
pub const VIBRA_TS48_RESOLUTION_US: u32 = 16;

/// vtimestamp's errors as statuses: every one is a value outside its domain.
impl From<TsError> for Failure {
    fn from(e: TsError) -> Failure {
        Failure::new(Status::InvalidArgument, e.to_string())
    }
}

/// Packs a time of day into 48 bits: `(sec << 16) | (usec >> 4)`, stored in `*packed`
/// (16-microsecond resolution).
///
/// Errors: `VIBRA_NULL_POINTER` if `packed` is NULL; `VIBRA_INVALID_ARGUMENT` if
/// `usec >= 1000000`.
///
/// Thread safety: may be called from any number of threads at once (no state).
///
/// # Safety
///
/// `packed` is NULL or writable.
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut packed = 0;
assert_eq!(unsafe { vibra_ts48_pack(1, 17, &mut packed) }, VIBRA_OK);
assert_eq!(packed, 0x1_0001);
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_ts48_pack(sec: u32, usec: u32, packed: *mut u64) -> vibra_status {
    ffi_boundary!({
        // SAFETY: the caller's promise above.
        let packed = unsafe { try_out(packed, "packed") }?;
        packed.write(vtimestamp::ts48_pack(sec, usec)?);
        Ok(())
    })
}

/// Unpacks a 48-bit timestamp: `*sec = packed >> 16`, `*usec = (packed & 0xFFFF) << 4` (at
/// most 15 us below the packed time).
///
/// Errors: `VIBRA_NULL_POINTER` if `sec` or `usec` is NULL; `VIBRA_INVALID_ARGUMENT` if bits
/// above bit 47 are set or the fraction is above 62499 (`pack` never makes either).
///
/// Thread safety: may be called from any number of threads at once (no state).
///
/// # Safety
///
/// `sec` and `usec` are NULL or writable.
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let (mut sec, mut usec) = (0, 0);
assert_eq!(unsafe { vibra_ts48_unpack(0x1_0001, &mut sec, &mut usec) }, VIBRA_OK);
assert_eq!((sec, usec), (1, 16));
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_ts48_unpack(
    packed: u64,
    sec: *mut u32,
    usec: *mut u32,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY (both): the caller's promise above.
        let sec = unsafe { try_out(sec, "sec") }?;
        let usec = unsafe { try_out(usec, "usec") }?;
        let (s, us) = vtimestamp::ts48_unpack(packed)?;
        sec.write(s);
        usec.write(us);
        Ok(())
    })
}

/// Encodes the 8-byte ring record of a timestamp into `out`: byte 0 the type
/// `VIBRA_NETIF_EXTRA_TYPE_TIMESTAMP`, byte 1 `flags`, bytes 2..8 the 48-bit timestamp in
/// little-endian order (the layout of Xen's `struct netif_extra_info`).
///
/// Errors: `VIBRA_NULL_POINTER` if `out` is NULL; `VIBRA_INVALID_ARGUMENT` if `usec >= 1000000`
/// or `flags` has a bit other than `VIBRA_NETIF_EXTRA_FLAG_MORE`.
///
/// Thread safety: may be called from any number of threads at once (no state).
///
/// # Safety
///
/// `out` is NULL or valid for writing 8 bytes.
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut record = [0u8; 8];
assert_eq!(unsafe { vibra_ts_extra_encode(1, 16, VIBRA_NETIF_EXTRA_FLAG_MORE, record.as_mut_ptr()) }, VIBRA_OK);
assert_eq!(record, [6, 1, 1, 0, 1, 0, 0, 0]);
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_ts_extra_encode(
    sec: u32,
    usec: u32,
    flags: u8,
    out: *mut u8,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY: the caller's promise above.
        let out = unsafe { try_out_slice(out, VIBRA_TS_RECORD_LEN, "out") }?;
        out.write(&vtimestamp::ts_extra_encode(sec, usec, flags)?);
        Ok(())
    })
}

/// Decodes an 8-byte timestamp ring record (see `vibra_ts_extra_encode`) into `*sec`, `*usec`
/// and `*flags`.
///
/// Errors: `VIBRA_NULL_POINTER` if a pointer is NULL; `VIBRA_INVALID_ARGUMENT` if byte 0 is not
/// `VIBRA_NETIF_EXTRA_TYPE_TIMESTAMP`, a flag other than `VIBRA_NETIF_EXTRA_FLAG_MORE` is set,
/// or the timestamp's fraction is above 62499.
///
/// Thread safety: may be called from any number of threads at once (no state).
///
/// # Safety
///
/// `record` is NULL or points to 8 readable bytes; `sec`, `usec` and `flags` are NULL or
/// writable.
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let (mut sec, mut usec, mut flags) = (0, 0, 0);
let record = [6u8, 1, 1, 0, 1, 0, 0, 0];
assert_eq!(unsafe { vibra_ts_extra_decode(record.as_ptr(), &mut sec, &mut usec, &mut flags) }, VIBRA_OK);
assert_eq!((sec, usec, flags), (1, 16, VIBRA_NETIF_EXTRA_FLAG_MORE));
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_ts_extra_decode(
    record: *const u8,
    sec: *mut u32,
    usec: *mut u32,
    flags: *mut u8,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY (all four): the caller's promises above; the record is exactly 8 bytes.
        let record = unsafe { try_slice(record, VIBRA_TS_RECORD_LEN, "record") }?;
        let sec = unsafe { try_out(sec, "sec") }?;
        let usec = unsafe { try_out(usec, "usec") }?;
        let flags = unsafe { try_out(flags, "flags") }?;
        let bytes: &[u8; VIBRA_TS_RECORD_LEN] =
            record.try_into().expect("try_slice returned 8 bytes");
        let (s, us, f) = vtimestamp::ts_extra_decode(bytes)?;
        sec.write(s);
        usec.write(us);
        flags.write(f);
        Ok(())
    })
}
