//! Proportional allocation (SPEC section 5, eq. 3.2 with a floor), in two forms:
//!
//! * [`allocate_proportional`]: the plain `f64` formula exactly as SPEC section 5 writes it
//!   (`out_i = f + (T - n*f) * d_i / sum(d)`), which the C function
//!   `vibra_allocate_proportional` computes;
//! * [`split_units`] / [`split_units_into`]: the same split in whole units with optional
//!   per-VM weights and largest-remainder rounding, which sums to the pool *exactly*, so the
//!   pool is never exceeded because of rounding. This is what the agent uses.
//!
//! Plus [`damp`], the optional hysteresis that suppresses moves too small to be worth issuing.
//! Nothing here keeps state or reads a clock.

use crate::error::{
    Error, Result, check_all_non_negative, check_len, check_non_negative, check_vm_count,
};
use crate::units::units_sum;

/// SPEC section 5's plain formula, in `f64`: `out_i = f + (T - n*f) * d_i / sum(d)`, or
/// `T / n` for every VM when `sum(d) = 0`.
///
/// `out` must have the same length as `demand` and is written only on success.
/// Errors (nothing written): `n = 0`; `total` or `floor` negative or not finite; `n*f > T`;
/// any demand negative, NaN or infinite; `out` of another length.
///
/// The result is the textbook formula, computed as `f + (T - n*f) * (d_i / sum(d))` so that no
/// intermediate overflows for any finite input (demands whose sum exceeds `f64::MAX` are
/// scaled first), and each entry is capped at `T`: every entry is finite and `>= f`, and the
/// sum differs from `T` only by rounding (relative error about n ulps at worst); use
/// [`split_units`] when the pool must never be exceeded.
///
/// ```
/// use vibra_alloc::allocate_proportional;
/// let mut out = [0.0; 3];
/// allocate_proportional(&[1.0, 3.0, 0.0], 80.0, 4.0, &mut out).unwrap();
/// assert_eq!(out, [4.0 + 68.0 * 0.25, 4.0 + 68.0 * 0.75, 4.0]);
///
/// allocate_proportional(&[0.0, 0.0, 0.0], 90.0, 4.0, &mut out).unwrap();
/// assert_eq!(out, [30.0; 3]);
/// ```
pub fn allocate_proportional(
    demand: &[f64],
    total: f64,
    floor: f64,
    out: &mut [f64],
) -> Result<()> {
    let n = demand.len();
    if n == 0 {
        return Err(Error::NoVms);
    }
    check_len("out", n, out.len())?;
    check_non_negative("total", None, total)?;
    check_non_negative("floor", None, floor)?;
    check_all_non_negative("demand", demand)?;
    let nf = n as f64 * floor;
    if nf > total {
        return Err(Error::FloorTooLarge {
            n,
            floor: floor.to_string(),
            total: total.to_string(),
        });
    }
    let mut sum: f64 = demand.iter().sum();
    // Every demand is finite, but their sum can overflow: then sum them scaled down by
    // 2^-64 (exact for any demand large enough to matter; n < 2^32 entries of at most
    // f64::MAX * 2^-64 cannot overflow). Only the ratios d_i / sum(d) are used.
    let mut scale = 1.0;
    if !sum.is_finite() {
        scale = 2f64.powi(-64);
        sum = demand.iter().map(|&d| d * scale).sum();
    }
    if sum == 0.0 {
        let each = total / n as f64;
        out.iter_mut().for_each(|o| *o = each);
    } else {
        let rest = total - nf;
        // `d / sum` is in [0, 1], so no product overflows (`rest * d` can: demand and pool
        // 1e300 gave inf). `floor + rest` can still round one ulp past `total` (even to inf
        // at f64::MAX); the exact value never exceeds `total`, so clamp to it.
        for (o, &d) in out.iter_mut().zip(demand) {
            *o = (floor + rest * ((d * scale) / sum)).min(total);
        }
    }
    Ok(())
}

/// [`split_units_into`], returning a new vector.
///
/// ```
/// use vibra_alloc::split_units;
/// // 80,000 units (1 unit = 1 kB/s: 80 MB/s), floor 1,000 units, demand 1:2:1.
/// let a = split_units(&[10.0, 20.0, 10.0], None, 80_000, 1_000).unwrap();
/// assert_eq!(a, vec![20_250, 39_500, 20_250]);
/// assert_eq!(a.iter().sum::<u64>(), 80_000);
///
/// // Weights skew the split toward high-valued services (section 3.3.2).
/// let w = split_units(&[10.0, 10.0], Some(&[3.0, 1.0]), 100, 0).unwrap();
/// assert_eq!(w, vec![75, 25]);
///
/// // Remainders go to the largest fractional parts, ties to the lower index.
/// assert_eq!(split_units(&[1.0, 1.0, 1.0], None, 10, 0).unwrap(), vec![4, 3, 3]);
/// ```
pub fn split_units(
    demand: &[f64],
    weights: Option<&[f64]>,
    total: u64,
    floor: u64,
) -> Result<Vec<u64>> {
    let mut out = vec![0; demand.len()];
    split_units_into(demand, weights, total, floor, &mut out)?;
    Ok(out)
}

/// Splits `total` units among `n = demand.len()` VMs: each gets `floor` units plus a share of
/// the rest proportional to `weight_i * demand_i` (weights default to 1), rounded to whole
/// units by the largest-remainder method (remainders compared at 2^-32 resolution, ties to
/// the lower index).
///
/// Guarantees, whatever the inputs (proved by the crate's proptests):
/// * the entries sum to `total` **exactly**, so the pool is never exceeded by rounding;
/// * every entry is `>= floor`;
/// * when every weighted demand is 0, the rest is split in proportion to the weights
///   (equally without weights: SPEC's `T / n`);
/// * each entry is within one unit of its exact real quota, up to `f64` precision of the
///   quota (exact for pools below 2^53 units and ordinary demand ranges).
///
/// `out` is written only on success. Errors (nothing written): `n = 0` or more than 2^32
/// VMs; `n * floor > total`; a demand negative, NaN or infinite; a weight that is not a
/// finite number `> 0`; `weights` or `out` of another length.
///
/// Runs in O(n) time (one selection, no sort) with O(n) scratch space.
///
/// ```
/// use vibra_alloc::split_units_into;
/// let mut out = [7u64; 2];
/// assert!(split_units_into(&[1.0, 1.0], None, 10, 6, &mut out).is_err()); // 2 x 6 > 10
/// assert_eq!(out, [7, 7]);
/// split_units_into(&[0.0, 5.0], None, 10, 2, &mut out).unwrap();
/// assert_eq!(out, [2, 8]);
/// ```
pub fn split_units_into(
    demand: &[f64],
    weights: Option<&[f64]>,
    total: u64,
    floor: u64,
    out: &mut [u64],
) -> Result<()> {
    let n = demand.len();
    check_vm_count(n)?;
    check_len("out", n, out.len())?;
    check_all_non_negative("demand", demand)?;
    if let Some(w) = weights {
        check_len("weights", n, w.len())?;
        for (i, &x) in w.iter().enumerate() {
            if !(x.is_finite() && x > 0.0) {
                return Err(Error::invalid("weight", Some(i), x));
            }
        }
    }
    let reserved = n as u128 * u128::from(floor);
    if reserved > u128::from(total) {
        return Err(Error::FloorTooLarge {
            n,
            floor: floor.to_string(),
            total: total.to_string(),
        });
    }
    // Validation is over: from here on nothing can fail, so `out` is written in place.
    let rest = total - reserved as u64;
    // Scale into [0, 1] before multiplying so no product or sum can overflow: by 2^1000 first
    // (exact) if the largest demand is subnormal, then by one reciprocal (a multiply per VM
    // is several times cheaper than a divide). No NaN is left, so a plain `>` finds maxima.
    let max_of = |v: &[f64]| v.iter().fold(0.0f64, |m, &x| if x > m { x } else { m });
    let dmax = max_of(demand);
    let pre = if dmax < f64::MIN_POSITIVE {
        2f64.powi(1000)
    } else {
        1.0
    };
    let dinv = if dmax > 0.0 { 1.0 / (dmax * pre) } else { 0.0 };
    let x_of = |d: f64| (d * pre) * dinv; // in [0, 1]
    let wmax = weights.map_or(1.0, max_of);
    let winv = 1.0 / wmax;
    // x_i = x_of(d_i) * w_i / wmax, or (no representable demand: SPEC's T / n, skewed by
    // the weights if any) w_i / wmax. Recomputed rather than stored: a multiply is cheaper
    // than an n-sized scratch vector.
    let demand_sum: f64 = match weights {
        None => demand.iter().map(|&d| x_of(d)).sum(),
        Some(w) => demand
            .iter()
            .zip(w)
            .map(|(&d, &w)| x_of(d) * (w * winv))
            .sum(),
    };
    let by_demand = demand_sum > 0.0;
    let sum = if by_demand {
        demand_sum
    } else {
        weights.map_or(n as f64, |w| w.iter().map(|&w| w * winv).sum())
    };
    let scale = rest as f64 / sum;
    let mut given: u128 = 0;
    // Each VM's rounding remainder in 32-bit fixed point, kept only while it is needed.
    let mut remainder: Vec<u32> = Vec::with_capacity(n);
    let mut place = |o: &mut u64, q: f64| {
        // `as` truncates (= floor, as q >= 0) and saturates: a quota rounded past u64::MAX
        // becomes u64::MAX and is fixed below. Cheaper than `f64::floor`, a libm call on
        // baseline x86-64.
        *o = q as u64;
        given += u128::from(*o);
        remainder.push(((q - *o as f64) * 4_294_967_296.0) as u32);
    };
    match (weights, by_demand) {
        (None, true) => out
            .iter_mut()
            .zip(demand)
            .for_each(|(o, &d)| place(o, x_of(d) * scale)),
        (None, false) => out.iter_mut().for_each(|o| place(o, scale)),
        (Some(w), true) => out
            .iter_mut()
            .zip(demand.iter().zip(w))
            .for_each(|(o, (&d, &w))| place(o, x_of(d) * (w * winv) * scale)),
        (Some(w), false) => out
            .iter_mut()
            .zip(w)
            .for_each(|(o, &w)| place(o, w * winv * scale)),
    }
    let rest = u128::from(rest);
    if given < rest {
        hand_out(out, &remainder, rest - given);
    } else if given > rest {
        take_back(out, &remainder, given - rest);
    }
    out.iter_mut().for_each(|o| *o += floor);
    debug_assert_eq!(units_sum(out), u128::from(total));
    Ok(())
}

/// Adds `k` units: `k / n` to everyone, then one more to the `k % n` largest remainders
/// (compared at 2^-32 resolution; ties to the lower index).
fn hand_out(out: &mut [u64], remainder: &[u32], k: u128) {
    let n = out.len() as u128;
    let each = (k / n) as u64; // k <= total <= u64::MAX
    let extra = (k % n) as usize;
    if each > 0 {
        out.iter_mut().for_each(|o| *o += each);
    }
    if extra == 0 {
        return;
    }
    // One integer key per VM: larger remainder first, then lower index. Selecting on plain
    // u64 keys is several times faster than comparing f64s through an index.
    let mut keys: Vec<u64> = remainder
        .iter()
        .enumerate()
        .map(|(i, &r)| (u64::from(r) << 32) | u64::from(u32::MAX - i as u32))
        .collect();
    if extra < keys.len() {
        keys.select_nth_unstable_by(extra - 1, |a, b| b.cmp(a));
    }
    for &key in &keys[..extra] {
        out[(u32::MAX - key as u32) as usize] += 1;
    }
}

/// Removes `k` units, smallest remainders first. Only reached when `f64` rounding pushed some
/// quotas just past an integer (rare; larger for pools beyond 2^53 units, where a quota's ulp
/// exceeds one unit). sum(out) >= k holds, so it ends.
fn take_back(out: &mut [u64], remainder: &[u32], mut k: u128) {
    let mut idx: Vec<usize> = (0..out.len()).collect();
    idx.sort_by_key(|&i| (remainder[i], i));
    while k > 0 {
        let positive = idx.iter().filter(|&&i| out[i] > 0).count() as u128;
        let per = (k / positive.max(1)).max(1);
        for &i in &idx {
            let d = per.min(u128::from(out[i])).min(k);
            out[i] -= d as u64;
            k -= d;
            if k == 0 {
                break;
            }
        }
    }
}

/// Hysteresis: keeps a VM at its current allocation when its move would be smaller than
/// `threshold` units, so tiny moves are not issued (each costs a `tc` or balloon call).
///
/// To keep the pool safe, a small *increase* is always suppressed (it only frees units),
/// while a small *decrease* is suppressed only while the units freed by suppressed increases
/// (plus any slack `total - sum(target)`) pay for it, smallest decreases first; a VM below
/// `floor` is always moved. So the result never sums above `total`, every entry is either the
/// current or the target value, and entries that were `>= floor` stay so. Units left idle by
/// suppressed moves are at most the suppressed increases (each `< threshold`).
///
/// Errors (nothing computed): lengths differ; `sum(target) > total`.
///
/// ```
/// use vibra_alloc::damp;
/// // 3 VMs, pool 100: VM 0 would move by 1 unit, VM 1 by 1, VM 2 by 2.
/// let r = damp(&[30, 30, 40], &[31, 29, 40], 100, 0, 5).unwrap();
/// assert_eq!(r, vec![30, 30, 40]); // both tiny moves suppressed
/// let r = damp(&[30, 30, 40], &[50, 29, 21], 100, 0, 5).unwrap();
/// assert_eq!(r, vec![50, 29, 21]); // VM 1's decrease must happen to pay for VM 0
/// ```
pub fn damp(
    current: &[u64],
    target: &[u64],
    total: u64,
    floor: u64,
    threshold: u64,
) -> Result<Vec<u64>> {
    check_len("target", current.len(), target.len())?;
    let tsum = units_sum(target);
    if tsum > u128::from(total) {
        return Err(Error::InvalidValue {
            what: "target sum",
            index: None,
            value: tsum.to_string(),
        });
    }
    let mut result = target.to_vec();
    let mut budget = u128::from(total) - tsum;
    let mut small_decreases = Vec::new();
    for (i, (&c, &t)) in current.iter().zip(target).enumerate() {
        if c >= floor && c.abs_diff(t) < threshold {
            if c < t {
                result[i] = c;
                budget += u128::from(t - c);
            } else if c > t {
                small_decreases.push((c - t, i));
            }
        }
    }
    small_decreases.sort_unstable();
    for (cost, i) in small_decreases {
        if u128::from(cost) > budget {
            break;
        }
        budget -= u128::from(cost);
        result[i] = current[i];
    }
    Ok(result)
}
