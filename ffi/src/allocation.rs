//! Proportional allocation, change plans and failover compensation (SPEC sections 4-5) over
//! vibra-alloc's plain `f64` functions.
//!
//! Every function computes its whole result into memory it owns, then copies it out, so the
//! caller's buffers are written only on success (and may even alias the inputs).

use vibra_alloc::{ChangeF64, Error};

use crate::boundary::Failure;
use crate::ptr::{try_out, try_out_slice, try_slice};
use crate::status::{Status, vibra_status};

/// One step of an allocation change plan: set virtual machine `vm`'s allocation from `from` to
/// `to`.
///
/// A plain struct: C reads its fields directly. It holds no pointers, so copies may be shared
/// between threads freely.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct vibra_change {
    /// The virtual machine's index in the input arrays.
    pub vm: u32,
    /// Its allocation before the step.
    pub from: f64,
    /// Its allocation after the step.
    pub to: f64,
}

impl From<ChangeF64> for vibra_change {
    fn from(c: ChangeF64) -> vibra_change {
        vibra_change {
            vm: c.vm,
            from: c.from,
            to: c.to,
        }
    }
}

/// vibra-alloc's errors as statuses.
impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let status = match &e {
            Error::BufferTooSmall { .. } => Status::BufferTooSmall,
            Error::VmOutOfRange { .. } => Status::OutOfRange,
            Error::NoTakeover { .. } => Status::NoServerAvailable,
            Error::Successor(inner) => return Failure::from(inner.clone()),
            _ => Status::InvalidArgument,
        };
        Failure::new(status, e.to_string())
    }
}

/// Proportional allocation (SPEC section 5, eq. 3.2 with a floor): writes
/// `out[i] = floor + (total - n*floor) * demand[i] / sum(demand)` for the `n` virtual machines,
/// or `total / n` for each when every demand is 0.
///
/// Errors: `VIBRA_NULL_POINTER` if `demand` or `out` is NULL with `n > 0`;
/// `VIBRA_INVALID_ARGUMENT` if `n == 0`, `total` or `floor` is negative or not finite,
/// `n * floor > total`, or a demand is negative, NaN or infinite. Finite demands whose sum
/// would overflow a double are accepted (they are scaled first); no entry exceeds `total`.
///
/// Thread safety: may be called from any number of threads at once (no state).
///
/// # Safety
///
/// `demand` is NULL or points to `n` readable values; `out` is NULL or valid for writing `n`
/// values (it may be `demand` itself).
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut out = [0.0; 3];
let st = unsafe { vibra_allocate_proportional([1.0, 3.0, 0.0].as_ptr(), 3, 80.0, 4.0, out.as_mut_ptr()) };
assert_eq!(st, VIBRA_OK);
assert_eq!(out, [21.0, 55.0, 4.0]);
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_allocate_proportional(
    demand: *const f64,
    n: usize,
    total: f64,
    floor: f64,
    out: *mut f64,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY (both): the caller's promises above.
        let demand = unsafe { try_slice(demand, n, "demand") }?;
        let out = unsafe { try_out_slice(out, n, "out") }?;
        let mut result = vec![0.0; n];
        vibra_alloc::allocate_proportional(demand, total, floor, &mut result)?;
        out.write(&result);
        Ok(())
    })
}

/// The plan that moves `n` allocations from `current` to `target` (SPEC section 5): every
/// decrease first, then every increase, each group in ascending index; unchanged entries are
/// left out. Applying the steps in order never lets the sum of allocations exceed
/// `max(sum(current), sum(target))`. Writes the steps into `changes` and their number into
/// `*len`.
///
/// Errors: `VIBRA_NULL_POINTER` if `len` is NULL, `current`/`target` is NULL with `n > 0`, or
/// `changes` is NULL with `cap > 0`; `VIBRA_INVALID_ARGUMENT` if `n == 0` or a value is
/// negative, NaN or infinite; `VIBRA_BUFFER_TOO_SMALL` if the plan has more than `cap` steps:
/// then `*len` receives the needed number and `changes` is untouched (`cap == n` always
/// suffices; `cap == 0` asks for the number).
///
/// Thread safety: may be called from any number of threads at once (no state).
///
/// # Safety
///
/// `current` and `target` are NULL or point to `n` readable values; `changes` is NULL or valid
/// for writing `cap` steps; `len` is NULL or writable.
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut steps = [vibra_change::default(); 3];
let mut len = 0;
let st = unsafe {
    vibra_allocation_plan([1.0, 2.0, 3.0].as_ptr(), [2.0, 2.0, 2.0].as_ptr(), 3, steps.as_mut_ptr(), 3, &mut len)
};
assert_eq!((st, len), (VIBRA_OK, 2));
assert_eq!(steps[0], vibra_change { vm: 2, from: 3.0, to: 2.0 }); // the decrease first
assert_eq!(steps[1], vibra_change { vm: 0, from: 1.0, to: 2.0 });
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_allocation_plan(
    current: *const f64,
    target: *const f64,
    n: usize,
    changes: *mut vibra_change,
    cap: usize,
    len: *mut usize,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY (all four): the caller's promises above.
        let current = unsafe { try_slice(current, n, "current") }?;
        let target = unsafe { try_slice(target, n, "target") }?;
        let changes = unsafe { try_out_slice(changes, cap, "changes") }?;
        let len = unsafe { try_out(len, "len") }?;
        let plan: Vec<vibra_change> = vibra_alloc::allocation_plan_vec(current, target)?
            .into_iter()
            .map(vibra_change::from)
            .collect();
        changes.write_with_len(&plan, len, |needed, capacity| {
            Error::BufferTooSmall { needed, capacity }.into()
        })
    })
}

/// Failover compensation (SPEC section 4): server `failed`'s allocation is split in equal parts
/// among the first `replication` available servers after it in cyclic order (or all available
/// ones if fewer remain), `failed`'s entry becomes 0, and every other entry is copied from
/// `alloc`. These are exactly the servers that take over `failed`'s sub-namespaces in a
/// dispatcher with the same availability.
///
/// Errors: `VIBRA_NULL_POINTER` if an array is NULL with `n > 0`; `VIBRA_INVALID_ARGUMENT` if
/// `n == 0`, `replication` is outside 1..=n, an allocation is negative, NaN or infinite, or a
/// taker's compensated allocation would overflow a double; `VIBRA_OUT_OF_RANGE` if `failed >= n`; `VIBRA_NO_SERVER_AVAILABLE` if no server other than
/// `failed` is available (the allocation would be lost).
///
/// Thread safety: may be called from any number of threads at once (no state).
///
/// # Safety
///
/// `alloc` and `available` are NULL or point to `n` readable values; `out` is NULL or valid for
/// writing `n` values (it may be `alloc` itself).
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut out = [0.0; 4];
let st = unsafe {
    vibra_failover_compensation([6.0; 4].as_ptr(), [true; 4].as_ptr(), 4, 1, 2, out.as_mut_ptr())
};
assert_eq!(st, VIBRA_OK);
assert_eq!(out, [6.0, 0.0, 9.0, 9.0]);
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_failover_compensation(
    alloc: *const f64,
    available: *const bool,
    n: usize,
    failed: u32,
    replication: u32,
    out: *mut f64,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY (all three): the caller's promises above. `available` is read as bytes, so a
        // byte that is neither 0 nor 1 (possible from C, invalid as a Rust bool) counts as
        // available instead of being undefined behaviour.
        let alloc = unsafe { try_slice(alloc, n, "alloc") }?;
        let available = unsafe { try_slice(available.cast::<u8>(), n, "available") }?;
        let out = unsafe { try_out_slice(out, n, "out") }?;
        let available: Vec<bool> = available.iter().map(|&b| b != 0).collect();
        let mut result = vec![0.0; n];
        vibra_alloc::failover_compensation(alloc, &available, failed, replication, &mut result)?;
        out.write(&result);
        Ok(())
    })
}
