use std::ptr::{null, null_mut};

use proptest::prelude::*;

use super::support::last_error;
use crate::boundary::with_forced_panics;
use crate::*;

const SENTINEL: f64 = -777.0;

fn offer(share: f64, utilization: f64, withhold: f64, upstreams: u32) -> Result<f64, vibra_status> {
    let mut out = SENTINEL;
    // SAFETY: `out` is writable.
    let st = unsafe { vibra_dps_offer(share, utilization, withhold, upstreams, &mut out) };
    if st == VIBRA_OK {
        Ok(out)
    } else {
        assert_eq!(out, SENTINEL, "written on error");
        Err(st)
    }
}

fn redistribute(shares: &[f64], shortages: &[f64], balance: f64) -> Result<Vec<f64>, vibra_status> {
    let mut grants = vec![SENTINEL; shares.len()];
    // SAFETY: all arrays hold `shares.len()` values (the tests keep the lengths equal).
    let st = unsafe {
        vibra_dps_bank_redistribute(
            shares.as_ptr(),
            shortages.as_ptr(),
            shares.len(),
            balance,
            grants.as_mut_ptr(),
        )
    };
    if st == VIBRA_OK {
        Ok(grants)
    } else {
        assert!(grants.iter().all(|&g| g == SENTINEL), "written on error");
        Err(st)
    }
}

#[test]
fn offer_follows_eq_5_1_and_rejects_bad_input() {
    let s = offer(0.5, 0.1, 0.25, 3).unwrap();
    assert!((s - 0.1).abs() < 1e-12);
    assert_eq!(
        offer(0.5, 0.1, 0.25, 0),
        Ok(0.0),
        "no upstream: nothing offered"
    );
    assert_eq!(
        offer(0.1, 0.5, 0.25, 2),
        Ok(0.0),
        "no excess: nothing offered"
    );
    assert_eq!(offer(0.5, 0.1, 1.0, 2), Ok(0.0), "withholding everything");
    for (w, u, wh) in [
        (-0.1, 0.0, 0.5),
        (f64::NAN, 0.0, 0.5),
        (0.5, f64::INFINITY, 0.5),
        (0.5, 0.1, 1.5),
        (0.5, 0.1, -0.1),
    ] {
        assert_eq!(
            offer(w, u, wh, 2),
            Err(VIBRA_INVALID_ARGUMENT),
            "{w} {u} {wh}"
        );
        assert!(!last_error().is_empty());
    }
    // SAFETY: a NULL out-parameter must be reported.
    assert_eq!(
        unsafe { vibra_dps_offer(0.5, 0.1, 0.25, 3, null_mut()) },
        VIBRA_NULL_POINTER
    );
}

#[test]
fn bank_follows_eq_5_2_and_rejects_bad_input() {
    let g = redistribute(&[0.5, 0.5], &[0.17, 0.43], 0.3).unwrap();
    assert!(
        (g[0] - 0.085).abs() < 1e-12 && (g[1] - 0.215).abs() < 1e-12,
        "{g:?}"
    );
    let g = redistribute(&[0.1, 0.3, 0.0], &[0.1, 0.0, 0.0], 0.5).unwrap();
    assert!(
        (g[0] - 0.26).abs() < 1e-12 && (g[1] - 0.24).abs() < 1e-12 && g[2] == 0.0,
        "{g:?}"
    );
    assert_eq!(
        redistribute(&[0.0, 0.0], &[0.0, 0.0], 0.4),
        Ok(vec![0.2, 0.2]),
        "equal when all shares are 0"
    );
    assert_eq!(redistribute(&[], &[], 0.4), Ok(vec![]));
    for (shares, shortages, balance) in [
        ([0.5, -0.5], [0.1, 0.1], 0.3),
        ([0.5, 0.5], [0.1, f64::NAN], 0.3),
        ([0.5, 0.5], [0.1, 0.1], -0.3),
        ([0.5, 0.5], [0.1, 0.1], f64::INFINITY),
    ] {
        assert_eq!(
            redistribute(&shares, &shortages, balance),
            Err(VIBRA_INVALID_ARGUMENT)
        );
    }
    let mut grants = [SENTINEL; 2];
    // SAFETY: each call has one NULL array with a non-zero length, which must be reported; a
    // zero length accepts NULL everywhere.
    unsafe {
        let w = [0.5, 0.5];
        assert_eq!(
            vibra_dps_bank_redistribute(null(), w.as_ptr(), 2, 0.1, grants.as_mut_ptr()),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_dps_bank_redistribute(w.as_ptr(), null(), 2, 0.1, grants.as_mut_ptr()),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_dps_bank_redistribute(w.as_ptr(), w.as_ptr(), 2, 0.1, null_mut()),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_dps_bank_redistribute(null(), null(), 0, 0.1, null_mut()),
            VIBRA_OK
        );
    }
    assert_eq!(grants, [SENTINEL; 2]);
}

#[test]
fn panics_inside_share_functions_come_back_as_a_status() {
    let (mut s, mut grants) = (SENTINEL, [SENTINEL; 2]);
    with_forced_panics(|| {
        // SAFETY: valid arguments; only the forced panic can fail these calls.
        unsafe {
            assert_eq!(vibra_dps_offer(0.5, 0.1, 0.25, 3, &mut s), VIBRA_PANIC);
            assert_eq!(
                vibra_dps_bank_redistribute(
                    [0.5, 0.5].as_ptr(),
                    [0.1, 0.1].as_ptr(),
                    2,
                    0.1,
                    grants.as_mut_ptr()
                ),
                VIBRA_PANIC
            );
        }
    });
    assert_eq!((s, grants), (SENTINEL, [SENTINEL; 2]));
    assert!(last_error().starts_with("panic inside libvibra (vibra_dps_bank_redistribute)"));
}

proptest! {
    /// The bank's balance is conserved: the grants of one redistribution sum to it (n > 0).
    #[test]
    fn grants_sum_to_the_balance(
        shares in proptest::collection::vec(0.0f64..1.0, 1..8),
        shortage_seed in proptest::collection::vec(0.0f64..0.5, 8),
        balance in 0.0f64..2.0,
    ) {
        let shortages = &shortage_seed[..shares.len()];
        let grants = redistribute(&shares, shortages, balance).unwrap();
        let sum: f64 = grants.iter().sum();
        prop_assert!((sum - balance).abs() <= 1e-9 * (1.0 + balance), "{} vs {}", sum, balance);
        prop_assert!(grants.iter().all(|&g| g >= 0.0));
    }

    /// The C offer is the crate's offer, bit for bit.
    #[test]
    fn c_offer_equals_the_crate_offer(w in 0.0f64..1.0, u in 0.0f64..1.0, wh in 0.0f64..=1.0, p in 0u32..16) {
        prop_assert_eq!(offer(w, u, wh, p), Ok(dps_core::offer(w, u, wh, p).unwrap()));
    }
}
