//! The share-exchange functions of libvibra's C API (SPEC sections 6 and 8) called as a C
//! caller would: `vibra_dps_offer` with any share, utilisation, withholding factor and upstream
//! count, and `vibra_dps_bank_redistribute` with any shares, shortages and balance (NaN,
//! infinite, negative, huge, sums that overflow a double), counts from 0 to huge (with NULL
//! pointers) and grants aliasing an input.
//!
//! Each call must succeed exactly when the header's error conditions all fail and leave its
//! output untouched (sentinel) when it fails. On success: an offer is eq. 5.1 (each upstream
//! gets `max(share - utilization, 0) * (1 - withhold) / upstreams`, so together never more than
//! the excess); the bank's grants are non-negative, none above the balance, summing to the
//! balance (it is 0 afterwards); with too little in the bank (E < F) each grant is at most the
//! shortage and proportional to it, otherwise each is at least the shortage.
#![no_main]

use ffi_fuzz::{
    Contract, Expect, SENTINEL_F64, any_f64, count, is_amount, rare, sentinel_f64, sum_at_most,
    sum_close, tolerance, valid_f64,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use vibra::*;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn run(u: &mut Unstructured) -> Result<()> {
    let mut c = Contract::new();
    for _ in 0..8 {
        if u.is_empty() {
            break;
        }
        if u.arbitrary()? {
            offer(u, &mut c)?;
        } else {
            bank(u, &mut c)?;
        }
    }
    Ok(())
}

fn maybe_invalid(u: &mut Unstructured) -> Result<f64> {
    if rare(u)? { any_f64(u) } else { valid_f64(u) }
}

fn offer(u: &mut Unstructured, c: &mut Contract) -> Result<()> {
    let share = maybe_invalid(u)?;
    let utilization = maybe_invalid(u)?;
    let upstreams: u32 = match u.int_in_range(0u8..=7)? {
        0 => 0,
        1 => u.arbitrary()?,
        _ => u.int_in_range(1..=8)?,
    };
    let withhold = match u.int_in_range(0u8..=7)? {
        0 => any_f64(u)?,
        1 => 0.0,
        2 => 1.0,
        3 => f64::from_bits(1.0f64.to_bits() + 1),
        4 => -0.0,
        _ => 1.0 / (f64::from(upstreams) + 1.0),
    };
    let null = rare(u)?;
    let mut out = sentinel_f64();
    let p = if null {
        std::ptr::null_mut()
    } else {
        &raw mut out
    };
    // SAFETY: `p` is NULL or writable.
    let st = unsafe { vibra_dps_offer(share, utilization, withhold, upstreams, p) };
    let mut e = Expect::new();
    e.when(null, VIBRA_NULL_POINTER);
    e.when(
        !is_amount(share) || !is_amount(utilization) || !(0.0..=1.0).contains(&withhold),
        VIBRA_INVALID_ARGUMENT,
    );
    if !c.check(u, "vibra_dps_offer", st, &e)? {
        assert_eq!(
            out.to_bits(),
            SENTINEL_F64,
            "a failed offer wrote its output"
        );
        return Ok(());
    }
    let what = format!("offer({share:?}, {utilization:?}, {withhold:?}, {upstreams}) = {out:?}");
    assert!(out.is_finite() && out >= 0.0, "{what}: not an amount");
    let excess = (share - utilization).max(0.0);
    if upstreams == 0 {
        assert_eq!(out, 0.0, "{what}: no upstream, but an offer");
        return Ok(());
    }
    let p = f64::from(upstreams);
    let want = excess * (1.0 - withhold) / p;
    // Rounding to nearest: a relative error, and below 2^-1022 half a subnormal step per offer.
    assert!(
        (out - want).abs() <= 4.0 * f64::EPSILON * want + 5e-324,
        "{what}: not eq. 5.1 ({want:?})"
    );
    assert!(
        out * p <= excess * (1.0 + 4.0 * f64::EPSILON) + p * 5e-324,
        "{what}: offers more than the excess {excess:?}"
    );
    Ok(())
}

/// Where the grants go.
#[derive(Clone, Copy, PartialEq)]
enum Grants {
    Own,
    Null,
    AliasShares,
    AliasShortages,
}

fn bank(u: &mut Unstructured, c: &mut Contract) -> Result<()> {
    let (n, huge) = count(u, 600)?;
    let len = if huge { 0 } else { n };
    let shares_in: Vec<f64> = (0..len).map(|_| maybe_invalid(u)).collect::<Result<_>>()?;
    let shortages_in: Vec<f64> = (0..len)
        .map(|_| {
            Ok(match u.int_in_range(0u8..=3)? {
                0 => 0.0,
                _ => maybe_invalid(u)?,
            })
        })
        .collect::<Result<_>>()?;
    let f_sum: f64 = shortages_in.iter().sum();
    let balance = match u.int_in_range(0u8..=7)? {
        0 => any_f64(u)?,
        // On the E = F boundary, and just either side of it.
        1 => f_sum,
        2 => f_sum * (1.0 - f64::EPSILON),
        3 => f_sum * (1.0 + f64::EPSILON),
        _ => valid_f64(u)?,
    };
    let shares_null = huge || rare(u)?;
    let shortages_null = huge || rare(u)?;
    let mode = if huge || rare(u)? {
        Grants::Null
    } else {
        match u.int_in_range(0u8..=5)? {
            0 => Grants::AliasShares,
            1 => Grants::AliasShortages,
            _ => Grants::Own,
        }
    };
    let mut shares = shares_in.clone().into_boxed_slice();
    let mut shortages = shortages_in.clone().into_boxed_slice();
    let mut own = vec![sentinel_f64(); len].into_boxed_slice();
    let sp = if shares_null {
        std::ptr::null()
    } else {
        shares.as_ptr()
    };
    let fp = if shortages_null {
        std::ptr::null()
    } else {
        shortages.as_ptr()
    };
    let gp = match mode {
        Grants::Own => own.as_mut_ptr(),
        Grants::Null => std::ptr::null_mut(),
        Grants::AliasShares => shares.as_mut_ptr(),
        Grants::AliasShortages => shortages.as_mut_ptr(),
    };
    // SAFETY: each pointer is NULL or has `n` elements (a huge `n` only with NULL); grants may
    // alias an input, as documented.
    let st = unsafe { vibra_dps_bank_redistribute(sp, fp, n, balance, gp) };

    let mut e = Expect::new();
    e.when(
        n > 0 && (shares_null || shortages_null || mode == Grants::Null),
        VIBRA_NULL_POINTER,
    );
    e.when(
        !is_amount(balance)
            || (!shares_null && !shares_in.iter().all(|&w| is_amount(w)))
            || (!shortages_null && !shortages_in.iter().all(|&f| is_amount(f))),
        VIBRA_INVALID_ARGUMENT,
    );
    let (grants, before): (Vec<f64>, &[f64]) = match mode {
        Grants::AliasShares => (shares.to_vec(), &shares_in),
        Grants::AliasShortages => (shortages.to_vec(), &shortages_in),
        _ => (own.to_vec(), &[]),
    };
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    if !c.check(u, "vibra_dps_bank_redistribute", st, &e)? {
        if before.is_empty() {
            assert!(
                grants.iter().all(|g| g.to_bits() == SENTINEL_F64),
                "a failed redistribution wrote grants"
            );
        } else {
            assert_eq!(
                bits(&grants),
                bits(before),
                "a failed redistribution wrote grants"
            );
        }
        return Ok(());
    }
    if n == 0 {
        return Ok(());
    }
    let what = format!("bank({shares_in:?}, {shortages_in:?}, E {balance:?}) = {grants:?}");
    let tol = tolerance(n);
    assert!(
        grants
            .iter()
            .all(|&g| g.is_finite() && g >= 0.0 && g <= balance),
        "{what}: a grant outside [0, E]"
    );
    assert!(
        sum_close(&grants, balance, tol),
        "{what}: grants do not sum to E"
    );
    assert!(
        sum_at_most(&grants, balance, tol),
        "{what}: grants exceed E"
    );
    // E < F, with F the plain sum of the shortages (infinite if it overflows: still above E).
    let short = balance < shortages_in.iter().sum::<f64>();
    if short {
        assert!(
            grants
                .iter()
                .zip(&shortages_in)
                .all(|(&g, &f)| g <= f * (1.0 + tol)),
            "{what}: E < F, but a grant above its shortage"
        );
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| shortages_in[a].total_cmp(&shortages_in[b]));
        assert!(
            order.windows(2).all(|w| grants[w[0]] <= grants[w[1]]),
            "{what}: E < F, but grants not in proportion to the shortages"
        );
    } else {
        assert!(
            grants
                .iter()
                .zip(&shortages_in)
                .all(|(&g, &f)| g >= f * (1.0 - tol)),
            "{what}: E >= F, but a grant below its shortage"
        );
    }
    Ok(())
}
