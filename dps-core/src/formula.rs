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
/// are 0). The grants always sum to E (the balance is 0 afterwards); with `n = 0` nothing is
/// granted. `grants` is written only on success.
///
/// Errors (nothing written): lengths differ; a share, shortage or the balance negative, NaN or
/// infinite.
///
/// ```
/// // SPEC's worked example: E = 0.3, F = 0.6, the VM short 0.17 gets 0.085
/// let mut g = [0.0; 2];
/// dps_core::bank_redistribute(&[0.5, 0.5], &[0.17, 0.43], 0.3, &mut g).unwrap();
/// assert!((g[0] - 0.085).abs() < 1e-12);
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
    if e < total_f {
        let k = e / total_f;
        for (g, &f) in grants.iter_mut().zip(shortages) {
            *g = f * k;
        }
        return Ok(());
    }
    let remainder = e - total_f;
    let after: f64 = shares.iter().zip(shortages).map(|(w, f)| w + f).sum();
    for ((g, &w), &f) in grants.iter_mut().zip(shares).zip(shortages) {
        let part = if after > 0.0 {
            (w + f) / after
        } else {
            1.0 / n as f64
        };
        *g = f + remainder * part;
    }
    Ok(())
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
    fn offer_rejects_withhold_outside_unit_interval() {
        assert_eq!(offer(0.5, 0.1, 1.5, 2), Err(DpsError::InvalidWithhold(1.5)));
        assert!(offer(0.5, 0.1, f64::NAN, 2).is_err());
        assert!(offer(-0.5, 0.1, 0.5, 2).is_err());
        assert_eq!(offer(0.5, 0.1, 1.0, 2).unwrap(), 0.0);
    }
}
