//! The unit convention shared by every module.
//!
//! Allocations are counted in whole **units** (`u64`). The caller picks what one unit is, per
//! resource kind, and says so once (for example 1 unit = 1 kB/s of egress bandwidth, 1 unit =
//! one 4 KiB memory page, 1 unit = 1/10,000 of a CPU). Integer units are what lets the crate
//! promise that a pool is never exceeded because of rounding: every split is computed with
//! largest-remainder rounding and sums to the pool exactly.

/// Sum of unit allocations without overflow (`u128` holds the sum of 2^64 `u64`s).
///
/// ```
/// assert_eq!(vibra_alloc::units_sum(&[u64::MAX, u64::MAX]), 2 * u128::from(u64::MAX));
/// ```
#[must_use]
pub fn units_sum(alloc: &[u64]) -> u128 {
    alloc.iter().map(|&a| u128::from(a)).sum()
}
