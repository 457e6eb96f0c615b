//! Share exchange between the virtual machines of a distributed program (SPEC section 6, the
//! plain formulas of eq. 5.1 and 5.2) over dps-core.

use dps_core::DpsError;

use crate::boundary::Failure;
use crate::ptr::{try_out, try_out_slice, try_slice};
use crate::status::{Status, vibra_status};

/// dps-core's errors as statuses.
impl From<DpsError> for Failure {
    fn from(e: DpsError) -> Failure {
        let status = match &e {
            DpsError::UnknownVm(_) | DpsError::UnknownHost(_) | DpsError::UnknownProgram(_) => {
                Status::OutOfRange
            }
            _ => Status::InvalidArgument,
        };
        Failure::new(status, e.to_string())
    }
}

/// Fully-distributed share exchange (eq. 5.1): stores in `*per_upstream` the share a virtual
/// machine with CPU share `share` and utilisation `utilization` offers to *each* of its
/// `upstreams` upstream machines: `max(share - utilization, 0) * (1 - withhold) / upstreams`,
/// and 0 when `upstreams == 0`. The usual withholding factor is `1 / (upstreams + 1)`.
///
/// Errors: `VIBRA_NULL_POINTER` if `per_upstream` is NULL; `VIBRA_INVALID_ARGUMENT` if `share`
/// or `utilization` is negative, NaN or infinite, or `withhold` is outside [0, 1].
///
/// Thread safety: may be called from any number of threads at once (no state).
///
/// # Safety
///
/// `per_upstream` is NULL or writable.
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut s = 0.0;
// 0.4 excess, 3 upstreams, withholding 1/(3+1): 0.1 to each
assert_eq!(unsafe { vibra_dps_offer(0.5, 0.1, 0.25, 3, &mut s) }, VIBRA_OK);
assert!((s - 0.1).abs() < 1e-12);
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_dps_offer(
    share: f64,
    utilization: f64,
    withhold: f64,
    upstreams: u32,
    per_upstream: *mut f64,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY: the caller's promise above.
        let per_upstream = unsafe { try_out(per_upstream, "per_upstream") }?;
        per_upstream.write(dps_core::offer(share, utilization, withhold, upstreams)?);
        Ok(())
    })
}

/// Bank-assisted share exchange (eq. 5.2, in the min form its worked example uses): with the
/// bank's balance E = `balance` and F = the sum of the `n` `shortages`, writes each machine's
/// grant into `grants`: `shortages[i] * E / F` when E < F; otherwise `shortages[i]` plus the
/// remainder E - F shared in proportion to each machine's share after that grant
/// (`shares[i] + shortages[i]`), equally if those are all 0. The grants sum to E: the balance is
/// 0 afterwards. With `n == 0` nothing is granted.
///
/// Errors: `VIBRA_NULL_POINTER` if an array is NULL with `n > 0`; `VIBRA_INVALID_ARGUMENT` if a
/// share, a shortage or the balance is negative, NaN or infinite.
///
/// Thread safety: may be called from any number of threads at once (no state).
///
/// # Safety
///
/// `shares` and `shortages` are NULL or point to `n` readable values; `grants` is NULL or valid
/// for writing `n` values (it may be one of the inputs).
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut grants = [0.0; 2];
// SPEC's worked example: E = 0.3 < F = 0.6, so the machine short 0.17 gets 0.17 * 0.3 / 0.6
let st = unsafe {
    vibra_dps_bank_redistribute([0.5, 0.5].as_ptr(), [0.17, 0.43].as_ptr(), 2, 0.3, grants.as_mut_ptr())
};
assert_eq!(st, VIBRA_OK);
assert!((grants[0] - 0.085).abs() < 1e-12);
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_dps_bank_redistribute(
    shares: *const f64,
    shortages: *const f64,
    n: usize,
    balance: f64,
    grants: *mut f64,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY (all three): the caller's promises above.
        let shares = unsafe { try_slice(shares, n, "shares") }?;
        let shortages = unsafe { try_slice(shortages, n, "shortages") }?;
        let grants = unsafe { try_out_slice(grants, n, "grants") }?;
        let mut result = vec![0.0; n];
        dps_core::bank_redistribute(shares, shortages, balance, &mut result)?;
        grants.write(&result);
        Ok(())
    })
}
