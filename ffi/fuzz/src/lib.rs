//! The contract checks shared by libvibra's fuzz targets (`fuzz_targets/`).
//!
//! Every target calls the exported `extern "C"` functions with raw pointers, exactly as a C
//! caller would, and checks the conventions of `vibra.h` and SPEC section 8, not only the
//! absence of a crash:
//!
//! - the status is a known code and never `VIBRA_PANIC`;
//! - it is `VIBRA_OK` exactly when none of the documented error conditions holds, and otherwise
//!   one of the codes whose condition holds ([`Expect`]: the header fixes no precedence between
//!   two errors that apply at once);
//! - after a failure, `vibra_last_error` gives a non-empty, readable message and copies it
//!   correctly into any capacity; after a success the message is unchanged ([`Contract`]);
//! - out-parameters are prefilled with sentinel bit patterns so a target can check that a
//!   failing call left them untouched.
//!
//! Sizes are bounded here so that the fuzzer never runs out of memory: a "huge" count is only
//! ever passed together with NULL pointers (the call must fail before reading anything).

use std::ffi::c_char;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use vibra::{
    VIBRA_BUFFER_TOO_SMALL, VIBRA_INVALID_ARGUMENT, VIBRA_INVALID_ENUM, VIBRA_NO_SERVER_AVAILABLE,
    VIBRA_NOT_ACQUIRED, VIBRA_NULL_POINTER, VIBRA_OK, VIBRA_OUT_OF_RANGE, VIBRA_PANIC,
    vibra_last_error, vibra_status,
};

/// Every status code `vibra.h` defines.
pub const KNOWN_STATUSES: [vibra_status; 9] = [
    VIBRA_OK,
    VIBRA_NULL_POINTER,
    VIBRA_INVALID_ARGUMENT,
    VIBRA_INVALID_ENUM,
    VIBRA_BUFFER_TOO_SMALL,
    VIBRA_OUT_OF_RANGE,
    VIBRA_NO_SERVER_AVAILABLE,
    VIBRA_NOT_ACQUIRED,
    VIBRA_PANIC,
];

/// A signalling-NaN bit pattern no computation produces: a double prefilled with it and still
/// holding it was not written.
pub const SENTINEL_F64: u64 = 0x7FF4_DEAD_BEEF_F00D;
/// The same for `uint32_t` out-parameters.
pub const SENTINEL_U32: u32 = 0xDEAD_BEEF;
/// The same for `size_t` out-parameters.
pub const SENTINEL_USIZE: usize = 0xA5A5_A5A5_A5A5_A5A5;

/// The sentinel double.
pub fn sentinel_f64() -> f64 {
    f64::from_bits(SENTINEL_F64)
}

/// The error codes a call may return: one per documented condition that holds.
#[derive(Debug, Default, Clone)]
pub struct Expect(Vec<vibra_status>);

impl Expect {
    /// No error condition yet.
    pub fn new() -> Expect {
        Expect::default()
    }

    /// Records that the call may (and, if nothing else applies, must) fail with `status`
    /// when `condition` holds.
    pub fn when(&mut self, condition: bool, status: vibra_status) -> &mut Expect {
        if condition && !self.0.contains(&status) {
            self.0.push(status);
        }
        self
    }

    /// Whether the call must succeed.
    pub fn success(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `status` is among the expected errors.
    pub fn allows(&self, status: vibra_status) -> bool {
        self.0.contains(&status)
    }
}

/// This thread's whole last error message, read through `vibra_last_error` as C would.
pub fn last_error() -> String {
    // SAFETY: NULL with capacity 0 only asks for the length.
    let len = unsafe { vibra_last_error(std::ptr::null_mut(), 0) };
    let mut buf = vec![0x5Au8; len + 1];
    // SAFETY: `buf` has `len + 1` writable bytes.
    let again = unsafe { vibra_last_error(buf.as_mut_ptr().cast::<c_char>(), buf.len()) };
    assert_eq!(
        again, len,
        "vibra_last_error changed its length between two calls"
    );
    assert_eq!(
        buf[len], 0,
        "vibra_last_error did not NUL-terminate a full copy"
    );
    buf.truncate(len);
    assert!(
        !buf.contains(&0),
        "the last error message contains a NUL byte: {buf:?}"
    );
    String::from_utf8(buf).expect("the last error message is not UTF-8")
}

/// Checks statuses against [`Expect`] and the last-error convention across a sequence of calls
/// on this thread.
pub struct Contract {
    last: String,
}

impl Default for Contract {
    fn default() -> Contract {
        Contract::new()
    }
}

impl Contract {
    /// Starts from whatever message this thread holds now.
    pub fn new() -> Contract {
        Contract { last: last_error() }
    }

    /// Checks the status `what` returned against `expect`, then the last error message: new,
    /// readable and correctly copied into a fuzzer-chosen capacity after a failure, unchanged
    /// after a success. Returns whether the call succeeded.
    pub fn check(
        &mut self,
        u: &mut Unstructured,
        what: &str,
        status: vibra_status,
        expect: &Expect,
    ) -> Result<bool> {
        assert!(
            KNOWN_STATUSES.contains(&status),
            "{what}: unknown status {status}"
        );
        assert_ne!(
            status,
            VIBRA_PANIC,
            "{what}: a panic inside libvibra: {}",
            last_error()
        );
        if expect.success() {
            assert_eq!(
                status,
                VIBRA_OK,
                "{what}: failed ({}) where the contract says it succeeds",
                last_error()
            );
            let now = last_error();
            assert_eq!(
                now, self.last,
                "{what}: a successful call changed the last error message"
            );
            return Ok(true);
        }
        assert!(
            expect.allows(status),
            "{what}: returned {status}, but the contract allows only {:?} (message: {:?})",
            expect.0,
            if status == VIBRA_OK {
                String::new()
            } else {
                last_error()
            }
        );
        self.last = check_message(u, what)?;
        Ok(false)
    }
}

/// Checks the message after a failed call and its copy into a capacity the fuzzer chooses
/// (including 0, a cut inside a multi-byte character and exactly the needed size).
fn check_message(u: &mut Unstructured, what: &str) -> Result<String> {
    let msg = last_error();
    assert!(!msg.is_empty(), "{what}: failed with an empty message");
    assert!(
        !msg.chars().any(char::is_control),
        "{what}: unreadable message {msg:?}"
    );
    let full = msg.len();
    let cap = u.int_in_range(0..=full + 1)?;
    const SLACK: usize = 8;
    let mut buf = vec![0x5Au8; cap + SLACK];
    let null = cap == 0 && rare(u)?;
    let ptr = if null {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast::<c_char>()
    };
    // SAFETY: `ptr` is NULL (with cap 0) or has `cap + SLACK >= cap` writable bytes.
    let returned = unsafe { vibra_last_error(ptr, cap) };
    assert_eq!(
        returned, full,
        "{what}: vibra_last_error({cap}) returned a different length"
    );
    if cap == 0 {
        assert!(
            buf.iter().all(|&b| b == 0x5A),
            "vibra_last_error wrote into a buffer of capacity 0"
        );
        return Ok(msg);
    }
    let copied = buf[..cap]
        .iter()
        .position(|&b| b == 0)
        .expect("vibra_last_error wrote no NUL within the capacity");
    let wanted = (cap - 1).min(full);
    assert!(
        copied <= wanted && copied + 4 > wanted && msg.is_char_boundary(copied),
        "vibra_last_error copied {copied} bytes of {full} into {cap}"
    );
    assert_eq!(&buf[..copied], &msg.as_bytes()[..copied]);
    assert!(
        buf[copied + 1..].iter().all(|&b| b == 0x5A),
        "vibra_last_error wrote past the NUL"
    );
    Ok(msg)
}

/// True about once in 16 draws (false once the input is exhausted, so a short input takes the
/// ordinary paths).
pub fn rare(u: &mut Unstructured) -> Result<bool> {
    Ok(u.int_in_range(0u8..=15)? == 15)
}

/// Doubles that matter to the domain checks: ordinary small values, negatives, zeros of both
/// signs, NaN, infinities, the largest and smallest finite values, and raw bit patterns.
pub fn any_f64(u: &mut Unstructured) -> Result<f64> {
    const SPECIAL: [f64; 18] = [
        0.0,
        -0.0,
        1.0,
        0.5,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        f64::MAX / 2.0,
        f64::MIN_POSITIVE,
        5e-324,
        1e300,
        1e308,
        1e-300,
        f64::EPSILON,
        -f64::MIN_POSITIVE,
        -1.0,
        f64::MIN,
    ];
    Ok(match u.int_in_range(0u8..=9)? {
        0 => f64::from_bits(u.arbitrary()?),
        1 => *u.choose(&SPECIAL)?,
        2 => -f64::from(u.int_in_range(1u32..=1000)?),
        _ => f64::from(u.int_in_range(0u32..=1000)?) / 4.0,
    })
}

/// A non-negative, finite double (ordinary or extreme): the valid domain of most arguments.
pub fn valid_f64(u: &mut Unstructured) -> Result<f64> {
    let x = any_f64(u)?;
    Ok(if x.is_finite() { x.abs() } else { 1.0 })
}

/// Finite and non-negative: the domain of every amount in SPEC sections 4-6.
pub fn is_amount(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

/// An element count: usually small (1..=48), sometimes 0, sometimes up to `large`, and
/// sometimes huge (`true` in the second field): then the caller must pass NULL pointers only.
pub fn count(u: &mut Unstructured, large: usize) -> Result<(usize, bool)> {
    const HUGE: [usize; 5] = [
        usize::MAX,
        isize::MAX as usize,
        1 << 40,
        u32::MAX as usize + 1,
        u32::MAX as usize + 2,
    ];
    Ok(match u.int_in_range(0u8..=15)? {
        0 => (0, false),
        1 => (*u.choose(&HUGE)?, true),
        2 => (u.int_in_range(1..=large)?, false),
        _ => (u.int_in_range(1..=48)?, false),
    })
}

/// A pointer for a buffer of `len` elements: NULL when `null`, else the buffer's own (for
/// `len == 0` a dangling but aligned pointer, as a C caller may pass).
pub fn ptr_or_null<T>(buf: &[T], null: bool) -> *const T {
    if null { std::ptr::null() } else { buf.as_ptr() }
}

/// The mutable form of [`ptr_or_null`].
pub fn mut_ptr_or_null<T>(buf: &mut [T], null: bool) -> *mut T {
    if null {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr()
    }
}

/// Sums are compared after scaling every term by 2^-16: exact for all but subnormal values
/// (whose rounding the tolerance covers), and no sum of fewer than 2^16 finite terms overflows.
const SCALE: f64 = 1.0 / 65536.0;

/// `sum(values) * 2^-16`, which never overflows for fewer than 2^16 finite values.
pub fn scaled_sum(values: &[f64]) -> f64 {
    values.iter().map(|&v| v * SCALE).sum()
}

/// The absolute rounding of `n` scaled terms near the subnormal range.
fn granularity(n: usize) -> f64 {
    (n as f64 + 2.0) * 4.0 * 5e-324
}

/// Whether `sum(values)` equals `reference` within `rel` (relative) plus the subnormal
/// granularity, compared in the scaled space.
pub fn sum_close(values: &[f64], reference: f64, rel: f64) -> bool {
    let reference = reference * SCALE;
    (scaled_sum(values) - reference).abs() <= rel * reference + granularity(values.len())
}

/// Whether `sum(values) <= limit` up to the same tolerance as [`sum_close`].
pub fn sum_at_most(values: &[f64], limit: f64, rel: f64) -> bool {
    at_most_scaled(values, limit * SCALE, rel)
}

/// Whether `sum(values) <= limit` where `limit` is already scaled (a [`scaled_sum`]).
pub fn at_most_scaled(values: &[f64], limit: f64, rel: f64) -> bool {
    scaled_sum(values) <= limit + rel * limit + granularity(values.len())
}

/// Whether two arrays have the same sum within `rel`, compared in the scaled space.
pub fn sums_close(a: &[f64], b: &[f64], rel: f64) -> bool {
    let (x, y) = (scaled_sum(a), scaled_sum(b));
    (x - y).abs() <= rel * x.max(y) + granularity(a.len().max(b.len()))
}

/// A relative tolerance for a computation over `n` terms: generous against rounding, still far
/// below any real error.
pub fn tolerance(n: usize) -> f64 {
    16.0 * (n as f64 + 4.0) * f64::EPSILON
}
