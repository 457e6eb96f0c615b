//! Identifiers and the unit convention shared by every module.
//!
//! Allocations are counted in whole **units** (`u64`). The caller picks what one unit is, per
//! resource kind, and says so once (for example 1 unit = 1 kB/s of egress bandwidth, 1 unit =
//! one 4 KiB memory page, 1 unit = 1/10,000 of a CPU). Integer units are what lets the crate
//! promise that a pool is never exceeded because of rounding: every split is computed with
//! largest-remainder rounding and sums to the pool exactly.

use std::fmt;

/// A VM's identifier. In the slice functions it is the VM's position (0-based) in the input,
/// which is also what the C ABI's `vibra_change.vm` carries. Wherever the crate orders by
/// VM (the groups of a [`crate::Plan`], SPEC section 5's "ascending VM index") it orders by
/// this id, never by a position in some other list.
///
/// ```
/// use vibra_alloc::VmId;
/// assert_eq!(VmId(3).to_string(), "vm3");
/// assert_eq!(VmId(3).index(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VmId(pub u32);

impl VmId {
    /// The id as a slice index.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::VmId(7).index(), 7usize);
    /// ```
    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for VmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vm{}", self.0)
    }
}

/// Sum of unit allocations without overflow (`u128` holds the sum of 2^64 `u64`s).
///
/// ```
/// assert_eq!(vibra_alloc::units_sum(&[u64::MAX, u64::MAX]), 2 * u128::from(u64::MAX));
/// ```
#[must_use]
pub fn units_sum(alloc: &[u64]) -> u128 {
    alloc.iter().map(|&a| u128::from(a)).sum()
}
