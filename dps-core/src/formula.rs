//! The plain share-exchange formulas of SPEC section 6 (dissertation section 5.3): excess,
//! the fully-distributed offer (eq. 5.1), the shortage and the bank redistribution (eq. 5.2 in
//! its corrected min form, with the remainder rule). No state, no safeguards: policies built on
//! top may add a minimum share or capacity caps, these functions must stay exact because the
//! fixed C functions `vibra_dps_offer` and `vibra_dps_bank_redistribute` are one-to-one
//! wrappers of [`offer`] and [`bank_redistribute`].

use crate::error::{DpsError, non_negative};

/// Excess share e = max(w - u, 0).
///
/// ```
/// assert!((dps_core::excess(0.5, 0.1).unwrap() - 0.4).abs() < 1e-12);
/// assert_eq!(dps_core::excess(0.25, 0.33).unwrap(), 0.0);
/// ```
pub fn excess(share: f64, utilization: f64) -> Result<f64, DpsError> {
    let w = non_negative(share, DpsError::InvalidShare)?;
    let u = non_negative(utilization, DpsError::InvalidUtilization)?;
    Ok((w - u).max(0.0))
}

/// The default withholding factor 1/(P+1): the VM keeps as much as it sends to each upstream.
///
/// ```
/// assert_eq!(dps_core::default_withhold(3), 0.25);
/// ```
pub fn default_withhold(upstreams: u32) -> f64 {
    1.0 / (f64::from(upstreams) + 1.0)
}

/// Eq. 5.1: the share offered to *each* of `upstreams` upstream VMs,
/// s = max(w - u, 0) * (1 - wh) / P, and 0 when P = 0. This is `vibra_dps_offer`.
///
/// Errors (nothing computed): share or utilisation negative, NaN or infinite; `withhold`
/// outside [0, 1].
///
/// ```
/// // the dissertation's example: 0.4 excess, 3 upstreams, wh = 1/(P+1): 0.1 to each
/// let s = dps_core::offer(0.5, 0.1, dps_core::default_withhold(3), 3).unwrap();
/// assert!((s - 0.1).abs() < 1e-12);
/// assert_eq!(dps_core::offer(0.5, 0.1, 0.25, 0).unwrap(), 0.0);
/// ```
pub fn offer(share: f64, utilization: f64, withhold: f64, upstreams: u32) -> Result<f64, DpsError> {
    let e = excess(share, utilization)?;
    if !(0.0..=1.0).contains(&withhold) {
        return Err(DpsError::InvalidWithhold(withhold));
    }
    if upstreams == 0 {
        return Ok(0.0);
    }
    Ok(e * (1.0 - withhold) / f64::from(upstreams))
}

/// The shortage a VM reports to the bank, f = min(u - w, r) when u > w, else 0, where `r` is
/// the unbooked capacity of its host (pass 0 when the host is fully booked).
///
/// ```
/// // a VM with 0.5 share using 0.67 CPU on a host with room: 0.17 short
/// assert!((dps_core::shortage(0.5, 0.67, 1.0).unwrap() - 0.17).abs() < 1e-12);
/// assert_eq!(dps_core::shortage(0.5, 0.67, 0.0).unwrap(), 0.0);
/// ```
pub fn shortage(share: f64, utilization: f64, unbooked: f64) -> Result<f64, DpsError> {
    let w = non_negative(share, DpsError::InvalidShare)?;
    let u = non_negative(utilization, DpsError::InvalidUtilization)?;
    let r = non_negative(unbooked, DpsError::InvalidCapacity)?;
    Ok((u - w).max(0.0).min(r))
}

/// Eq. 5.2 (corrected min form) with the remainder rule. This is `vibra_dps_bank_redistribute`.
///
/// With balance E and F = sum(shortages): if E < F each VM gets f_i * E / F; otherwise f_i plus
/// the remainder E - F in proportion to its share after that grant (equally if all those shares
/// are 0). The grants always sum to E (the balance is 0 afterwards), within rounding, even
/// when F or sum(w + f) exceeds the largest double: such a sum is taken over the inputs scaled
/// by a power of two and only used in ratios. With `n = 0` nothing is granted. `grants` is
/// written only on success.
///
/// Errors (nothing written): lengths differ; a share, shortage or the balance negative, NaN or
/// infinite.
///
/// ```
/// // SPEC's worked example: E = 0.3, F = 0.6, the VM short 0.17 gets 0.085
/// let mut g = [0.0; 2];
/// dps_core::bank_redistribute(&[0.5, 0.5], &[0.17, 0.43], 0.3, &mut g).unwrap();
/// assert!((g[0] - 0.085).abs() < 1e-12);
/// // huge shares: sum(w + f) overflows, the balance is still handed out in full
/// dps_core::bank_redistribute(&[f64::MAX, f64::MAX], &[0.0, 0.0], 1.0, &mut g).unwrap();
/// assert_eq!(g, [0.5, 0.5]);
/// ```
pub fn bank_redistribute(
    shares: &[f64],
    shortages: &[f64],
    balance: f64,
    grants: &mut [f64],
) -> Result<(), DpsError> {
    let n = shares.len();
    if shortages.len() != n {
        return Err(DpsError::LengthMismatch {
            what: "shortages",
            got: shortages.len(),
            expected: n,
        });
    }
    if grants.len() != n {
        return Err(DpsError::LengthMismatch {
            what: "grants",
            got: grants.len(),
            expected: n,
        });
    }
    for &w in shares {
        non_negative(w, DpsError::InvalidShare)?;
    }
    let mut total_f = 0.0;
    for &f in shortages {
        total_f += non_negative(f, DpsError::InvalidShortage)?;
    }
    let e = non_negative(balance, DpsError::InvalidBalance)?;
    if n == 0 {
        return Ok(());
    }
    // Every input is finite, but F and sum(w + f) can still overflow to infinity (huge shares,
    // such as a C caller's uninitialised memory). A sum that would overflow is computed on the
    // inputs scaled by a power of two (exact: only values too small to move the sum are lost)
    // and used only in ratios, so the grants still sum to E. Inputs whose sums are finite take
    // the unscaled path, bit for bit the plain formula.
    if e < total_f {
        // total_f may be infinite here, which still compares right: the true F exceeds E.
        let s = sum_scale(total_f, shortages.iter().copied());
        let total_scaled: f64 = shortages.iter().map(|f| f * s).sum();
        let k = e / total_scaled;
        // When E / F is subnormal or 0 (E tiny next to F) it keeps too few bits: take f / F first.
        let tiny_k = e > 0.0 && !k.is_normal();
        for (g, &f) in grants.iter_mut().zip(shortages) {
            let grant = if tiny_k {
                e * (f * s / total_scaled)
            } else {
                f * s * k
            };
            *g = grant.min(e);
        }
        return Ok(());
    }
    let remainder = e - total_f;
    let after: f64 = shares.iter().zip(shortages).map(|(w, f)| w + f).sum();
    let s = sum_scale(after, shares.iter().chain(shortages).copied());
    let after_scaled: f64 = shares
        .iter()
        .zip(shortages)
        .map(|(w, f)| w * s + f * s)
        .sum();
    for ((g, &w), &f) in grants.iter_mut().zip(shares).zip(shortages) {
        let part = if after_scaled > 0.0 {
            (w * s + f * s) / after_scaled
        } else {
            1.0 / n as f64
        };
        // f + R * part <= F + R = E exactly; the min only undoes rounding (at E near f64::MAX
        // it would otherwise round to infinity).
        *g = (f + remainder * part).min(e);
    }
    Ok(())
}

/// The power of two to scale `values` by before summing them: 1 when their plain `sum` is
/// finite, else 2^-ceil(log2(max)), which maps every value into [0, 1] (so up to 2^1023 of them,
/// or of their pairwise sums, add up to a finite number) and is exact for every value that
/// does not underflow.
fn sum_scale(sum: f64, values: impl Iterator<Item = f64>) -> f64 {
    if sum.is_finite() {
        return 1.0;
    }
    let max = values.fold(0.0f64, f64::max);
    // max is finite and > 1 here (the sum of finite values overflowed), so the exponent lies
    // in 1..=1024 and 2^-exponent is a normal or subnormal double, never 0.
    // (`2.0.powi(-1024)` would compute 1 / 2^1024 = 1 / inf = 0.)
    let exponent = max.log2().ceil() as i32;
    0.5f64.powi(exponent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remainder_goes_in_proportion_to_shares_after_grants() {
        let mut g = [0.0; 3];
        bank_redistribute(&[0.1, 0.3, 0.0], &[0.1, 0.0, 0.0], 0.5, &mut g).unwrap();
        // after grants: 0.2, 0.3, 0.0; remainder 0.4 split 2:3:0
        assert!((g[0] - (0.1 + 0.4 * 0.4)).abs() < 1e-12);
        assert!((g[1] - 0.4 * 0.6).abs() < 1e-12);
        assert_eq!(g[2], 0.0);
    }

    #[test]
    fn remainder_split_equally_when_all_shares_zero() {
        let mut g = [0.0; 4];
        bank_redistribute(&[0.0; 4], &[0.0; 4], 0.4, &mut g).unwrap();
        assert!(g.iter().all(|x| (x - 0.1).abs() < 1e-12));
    }

    #[test]
    fn bad_input_leaves_grants_untouched() {
        let mut g = [7.0; 2];
        assert!(bank_redistribute(&[0.1, f64::NAN], &[0.0, 0.0], 0.1, &mut g).is_err());
        assert!(bank_redistribute(&[0.1, 0.1], &[0.0, -1.0], 0.1, &mut g).is_err());
        assert!(bank_redistribute(&[0.1, 0.1], &[0.0, 0.0], f64::INFINITY, &mut g).is_err());
        assert!(bank_redistribute(&[0.1], &[0.0, 0.0], 0.1, &mut g).is_err());
        assert_eq!(g, [7.0; 2]);
    }

    #[test]
    fn grants_sum_to_the_balance_when_shares_plus_shortages_overflow() {
        // sum(w + f) overflows to infinity: every grant used to become f + remainder * 0 = 0.
        let mut g = [7.0; 2];
        bank_redistribute(&[f64::MAX, f64::MAX], &[0.0, 0.0], 1.0, &mut g).unwrap();
        assert_eq!(g, [0.5, 0.5]);
        bank_redistribute(&[f64::MAX, f64::MAX / 2.0], &[0.25, 0.0], 1.0, &mut g).unwrap();
        assert!((g[0] - (0.25 + 0.75 * 2.0 / 3.0)).abs() < 1e-12);
        assert!((g[0] + g[1] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn grants_sum_to_the_balance_when_the_total_shortage_overflows() {
        // F overflows to infinity: k = E / F used to be 0, so nothing was granted.
        let mut g = [7.0; 3];
        bank_redistribute(&[0.0; 3], &[f64::MAX, f64::MAX, 0.0], 1.0, &mut g).unwrap();
        assert_eq!(g, [0.5, 0.5, 0.0]);
        // a balance as large as a double goes: the grants stay finite and sum to it
        bank_redistribute(&[0.0; 3], &[f64::MAX, f64::MAX, f64::MAX], f64::MAX, &mut g).unwrap();
        assert!(g.iter().all(|x| x.is_finite()));
        let sum: f64 = g.iter().map(|x| x / f64::MAX).sum();
        assert!((sum - 1.0).abs() < 1e-12);
        // E / F rounds to 0 (or a subnormal): the grant is still E, not 0
        let mut one = [7.0];
        bank_redistribute(&[0.0], &[f64::MAX], 3.4e-16, &mut one).unwrap();
        assert_eq!(one, [3.4e-16]);
    }

    #[test]
    fn offer_rejects_withhold_outside_unit_interval() {
        assert_eq!(offer(0.5, 0.1, 1.5, 2), Err(DpsError::InvalidWithhold(1.5)));
        assert!(offer(0.5, 0.1, f64::NAN, 2).is_err());
        assert!(offer(-0.5, 0.1, 0.5, 2).is_err());
        assert_eq!(offer(0.5, 0.1, 1.0, 2).unwrap(), 0.0);
    }
}
