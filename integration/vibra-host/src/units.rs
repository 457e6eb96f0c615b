//! Platform-neutral resource quantities and their documented mapping to each platform's units.
//!
//! This module owns validation: a value of these types is always in range, so a backend never
//! sees a weight of 0, a NaN bandwidth or a zero memory target. It never touches the system.
//!
//! | quantity | neutral unit | Xen | Linux cgroup v2 | Linux cgroup v1 |
//! | --- | --- | --- | --- | --- |
//! | [`CpuWeight`] | 1..=65535, 256 = default | credit `weight` (same number) | `cpu.weight` = round(w * 100 / 256) clamped to 1..=10000 | `cpu.shares` = w * 4 (exact) |
//! | [`CpuCap`] | percent of one CPU, 1..=6400 | credit `cap` (same number) | `cpu.max` = `cap*1000 100000` | `cpu.cfs_quota_us` = cap*1000, `cpu.cfs_period_us` = 100000 |
//! | [`MemoryTarget`] | bytes, page-rounded down, >= 1 page | `libxl_set_memory_target` in KiB | `memory.max` | `memory.limit_in_bytes` |
//! | [`Bandwidth`] | bytes per second | vif `rate` = `bytes,usecs` per 50 ms window | tc `tbf rate <bits>bit` | same |

use crate::error::Error;

/// The page size every memory target is rounded to (4 KiB on x86-64 Xen and Linux).
pub const PAGE_BYTES: u64 = 4096;

/// A proportional CPU weight on Xen's credit-scheduler scale: 1..=65535, 256 is the default.
///
/// Only ratios between VMs on one host matter. The neutral scale is Xen's so that a Xen
/// backend applies it unchanged; Linux maps it (see the module table).
///
/// ```
/// use vibra_host::CpuWeight;
/// let w = CpuWeight::new(512).unwrap();
/// assert_eq!(w.cgroup_v1_shares(), 2048);
/// assert_eq!(w.cgroup_v2_weight(), 200);
/// assert!(CpuWeight::new(0).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuWeight(u16);

impl CpuWeight {
    /// Xen's default credit weight.
    pub const DEFAULT: CpuWeight = CpuWeight(256);
    /// The largest weight (Xen credit's limit).
    pub const MAX: CpuWeight = CpuWeight(u16::MAX);
    /// Scale used by [`CpuWeight::from_share`]: a share of 1.0 (a whole host) is this weight.
    pub const SHARE_SCALE: f64 = 65535.0;

    /// A weight in 1..=65535; 0 is an error ([`Error::InvalidWeight`]).
    ///
    /// ```
    /// assert_eq!(vibra_host::CpuWeight::new(256).unwrap(), vibra_host::CpuWeight::DEFAULT);
    /// ```
    pub fn new(weight: u32) -> Result<Self, Error> {
        match u16::try_from(weight) {
            Ok(w) if w >= 1 => Ok(CpuWeight(w)),
            _ => Err(Error::InvalidWeight { weight }),
        }
    }

    /// Maps a DPS CPU share (the fraction of one host's CPU a VM is entitled to, in (0, 1]) to
    /// a weight: `round(share * 65535)`, at least 1. Shares of VMs on one host then keep their
    /// ratios to within 1/65535 of the host.
    ///
    /// ```
    /// use vibra_host::CpuWeight;
    /// assert_eq!(CpuWeight::from_share(1.0).unwrap(), CpuWeight::MAX);
    /// assert_eq!(CpuWeight::from_share(0.25).unwrap().get(), 16384);
    /// assert!(CpuWeight::from_share(0.0).is_err());
    /// assert!(CpuWeight::from_share(f64::NAN).is_err());
    /// ```
    pub fn from_share(share: f64) -> Result<Self, Error> {
        if !(share > 0.0 && share <= 1.0) {
            return Err(Error::InvalidShare { share });
        }
        let w = (share * Self::SHARE_SCALE).round().max(1.0);
        // In range by construction: share <= 1 gives w <= 65535.
        Ok(CpuWeight(w as u16))
    }

    /// The weight as a number (1..=65535).
    ///
    /// ```
    /// assert_eq!(vibra_host::CpuWeight::DEFAULT.get(), 256);
    /// ```
    pub fn get(self) -> u16 {
        self.0
    }

    /// The cgroup v1 `cpu.shares` value: `w * 4` (Linux's default 1024 = Xen's 256). Exact.
    ///
    /// ```
    /// assert_eq!(vibra_host::CpuWeight::DEFAULT.cgroup_v1_shares(), 1024);
    /// ```
    pub fn cgroup_v1_shares(self) -> u64 {
        u64::from(self.0) * 4
    }

    /// The cgroup v2 `cpu.weight` value: `round(w * 100 / 256)` clamped to 1..=10000 (Linux's
    /// default 100 = Xen's 256). Weights 1..=3 all map to 1: v2's scale is coarser at the bottom.
    ///
    /// ```
    /// assert_eq!(vibra_host::CpuWeight::DEFAULT.cgroup_v2_weight(), 100);
    /// assert_eq!(vibra_host::CpuWeight::MAX.cgroup_v2_weight(), 10000);
    /// ```
    pub fn cgroup_v2_weight(self) -> u64 {
        ((u64::from(self.0) * 100 + 128) / 256).clamp(1, 10_000)
    }

    /// The weight back from a cgroup v1 `cpu.shares` value (the inverse of
    /// [`CpuWeight::cgroup_v1_shares`], rounded to nearest).
    ///
    /// ```
    /// use vibra_host::CpuWeight;
    /// assert_eq!(CpuWeight::from_cgroup_v1_shares(2048), CpuWeight::new(512).unwrap());
    /// ```
    pub fn from_cgroup_v1_shares(shares: u64) -> CpuWeight {
        CpuWeight(((shares + 2) / 4).clamp(1, u64::from(u16::MAX)) as u16)
    }

    /// The weight back from a cgroup v2 `cpu.weight` value (nearest neutral weight).
    ///
    /// ```
    /// use vibra_host::CpuWeight;
    /// assert_eq!(CpuWeight::from_cgroup_v2_weight(100), CpuWeight::DEFAULT);
    /// ```
    pub fn from_cgroup_v2_weight(weight: u64) -> CpuWeight {
        CpuWeight(((weight * 256 + 50) / 100).clamp(1, u64::from(u16::MAX)) as u16)
    }
}

/// A CPU cap in percent of one physical CPU (Xen credit's `cap`): 100 = one full CPU.
///
/// 1..=6400 (64 CPUs); "no cap" is `Option::None` at the API, never a magic 0.
///
/// ```
/// use vibra_host::CpuCap;
/// let cap = CpuCap::new(50).unwrap();
/// assert_eq!(cap.cfs_quota_us(), 50_000);
/// assert!(CpuCap::new(0).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuCap(u16);

impl CpuCap {
    /// The CFS period the Linux backend uses with a cap, in microseconds.
    pub const CFS_PERIOD_US: u64 = 100_000;
    /// The largest cap accepted (64 CPUs).
    pub const MAX_PERCENT: u32 = 6400;

    /// A cap in 1..=6400 percent.
    ///
    /// ```
    /// assert!(vibra_host::CpuCap::new(6401).is_err());
    /// ```
    pub fn new(percent: u32) -> Result<Self, Error> {
        if (1..=Self::MAX_PERCENT).contains(&percent) {
            Ok(CpuCap(percent as u16))
        } else {
            Err(Error::InvalidCap { percent })
        }
    }

    /// The cap in percent of one CPU.
    ///
    /// ```
    /// assert_eq!(vibra_host::CpuCap::new(20).unwrap().percent(), 20);
    /// ```
    pub fn percent(self) -> u16 {
        self.0
    }

    /// The CFS quota per [`CpuCap::CFS_PERIOD_US`] period, in microseconds.
    ///
    /// ```
    /// assert_eq!(vibra_host::CpuCap::new(150).unwrap().cfs_quota_us(), 150_000);
    /// ```
    pub fn cfs_quota_us(self) -> u64 {
        u64::from(self.0) * Self::CFS_PERIOD_US / 100
    }

    /// The cap back from a CFS quota and period (`None` for "unlimited", i.e. quota < 0 or
    /// `max`), rounded to the nearest percent and at least 1.
    ///
    /// ```
    /// use vibra_host::CpuCap;
    /// assert_eq!(CpuCap::from_cfs(50_000, 100_000), Some(CpuCap::new(50).unwrap()));
    /// assert_eq!(CpuCap::from_cfs(-1, 100_000), None);
    /// ```
    pub fn from_cfs(quota_us: i64, period_us: u64) -> Option<CpuCap> {
        if quota_us < 0 || period_us == 0 {
            return None;
        }
        let pct = (quota_us as u64 * 100 + period_us / 2) / period_us;
        Some(CpuCap(pct.clamp(1, u64::from(Self::MAX_PERCENT)) as u16))
    }
}

/// A memory target in bytes, rounded down to whole 4 KiB pages, at least one page.
///
/// ```
/// use vibra_host::MemoryTarget;
/// let m = MemoryTarget::from_bytes(64 << 20).unwrap();
/// assert_eq!(m.kib(), 65536);
/// assert_eq!(MemoryTarget::from_bytes(4097).unwrap().bytes(), 4096);
/// assert!(MemoryTarget::from_bytes(100).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemoryTarget(u64);

impl MemoryTarget {
    /// A target of `bytes`, rounded down to a page; less than one page is an error.
    ///
    /// ```
    /// assert!(vibra_host::MemoryTarget::from_bytes(0).is_err());
    /// ```
    pub fn from_bytes(bytes: u64) -> Result<Self, Error> {
        let pages = bytes / PAGE_BYTES;
        // Cap at what Xen's KiB target (int64) and Linux (i64 byte counters) can hold.
        if pages == 0 || bytes > i64::MAX as u64 {
            return Err(Error::InvalidMemory { bytes });
        }
        Ok(MemoryTarget(pages * PAGE_BYTES))
    }

    /// A target of `mib` mebibytes.
    ///
    /// ```
    /// assert_eq!(vibra_host::MemoryTarget::from_mib(1).unwrap().bytes(), 1 << 20);
    /// ```
    pub fn from_mib(mib: u64) -> Result<Self, Error> {
        Self::from_bytes(
            mib.checked_mul(1 << 20)
                .ok_or(Error::InvalidMemory { bytes: u64::MAX })?,
        )
    }

    /// The target in bytes (a multiple of [`PAGE_BYTES`]).
    ///
    /// ```
    /// assert_eq!(vibra_host::MemoryTarget::from_bytes(8192).unwrap().bytes(), 8192);
    /// ```
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The target in KiB (libxenlight's unit).
    ///
    /// ```
    /// assert_eq!(vibra_host::MemoryTarget::from_bytes(8192).unwrap().kib(), 8);
    /// ```
    pub fn kib(self) -> u64 {
        self.0 / 1024
    }
}

/// An egress bandwidth in bytes per second: finite and at least 1 byte/s (rounded down to
/// whole bytes per second).
///
/// ```
/// use vibra_host::Bandwidth;
/// let b = Bandwidth::from_bits_per_sec(8_000_000.0).unwrap();
/// assert_eq!(b.bytes_per_sec(), 1_000_000);
/// assert_eq!(b.tc_rate(), "8000000bit");
/// assert_eq!(b.xen_vif_rate(), "50000,50000");
/// assert!(Bandwidth::from_bytes_per_sec(f64::NAN).is_err());
/// assert!(Bandwidth::from_bytes_per_sec(0.0).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bandwidth(u64);

impl Bandwidth {
    /// Netback's credit window used for the Xen vif `rate` key, in microseconds (xl's default).
    pub const XEN_WINDOW_US: u64 = 50_000;

    /// A rate in bytes per second; NaN, infinite, negative, or below 1 byte/s is an error.
    ///
    /// ```
    /// assert!(vibra_host::Bandwidth::from_bytes_per_sec(-5.0).is_err());
    /// ```
    pub fn from_bytes_per_sec(rate: f64) -> Result<Self, Error> {
        // tc stores rates as u64 bytes/s; keep a margin for the *8 in tc_rate.
        if !(rate.is_finite() && rate >= 1.0 && rate <= (u64::MAX / 8) as f64) {
            return Err(Error::InvalidBandwidth { rate });
        }
        Ok(Bandwidth(rate as u64))
    }

    /// A rate in bits per second (e.g. a `tc`-style "8Mbit" = 8e6).
    ///
    /// ```
    /// assert_eq!(vibra_host::Bandwidth::from_bits_per_sec(16.0).unwrap().bytes_per_sec(), 2);
    /// ```
    pub fn from_bits_per_sec(rate: f64) -> Result<Self, Error> {
        Self::from_bytes_per_sec(rate / 8.0).map_err(|_| Error::InvalidBandwidth { rate })
    }

    /// The rate in bytes per second.
    ///
    /// ```
    /// assert_eq!(vibra_host::Bandwidth::from_bytes_per_sec(1e3).unwrap().bytes_per_sec(), 1000);
    /// ```
    pub fn bytes_per_sec(self) -> u64 {
        self.0
    }

    /// The rate as a `tc` rate argument, in bits per second.
    ///
    /// ```
    /// assert_eq!(vibra_host::Bandwidth::from_bytes_per_sec(125.0).unwrap().tc_rate(), "1000bit");
    /// ```
    pub fn tc_rate(self) -> String {
        format!("{}bit", self.0 * 8)
    }

    /// The tbf bucket size used with this rate, in bytes: 10 ms worth of traffic, at least
    /// 16 KiB (so a 1500-byte frame and a 64 KiB GSO burst can always pass at low rates).
    ///
    /// ```
    /// assert_eq!(vibra_host::Bandwidth::from_bytes_per_sec(1e3).unwrap().tbf_burst_bytes(), 16384);
    /// ```
    pub fn tbf_burst_bytes(self) -> u64 {
        (self.0 / 100).max(16 * 1024)
    }

    /// The Xen netback credit for [`Bandwidth::XEN_WINDOW_US`]: the vif `rate` key's value
    /// `bytes,usecs` (at least 1 byte per window).
    ///
    /// ```
    /// assert_eq!(vibra_host::Bandwidth::from_bits_per_sec(2e6).unwrap().xen_vif_rate(), "12500,50000");
    /// ```
    pub fn xen_vif_rate(self) -> String {
        let per_window = (u128::from(self.0) * u128::from(Self::XEN_WINDOW_US) / 1_000_000).max(1);
        format!("{per_window},{}", Self::XEN_WINDOW_US)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn v1_shares_round_trip_every_weight(w in 1u32..=65535) {
            let weight = CpuWeight::new(w).unwrap();
            prop_assert_eq!(CpuWeight::from_cgroup_v1_shares(weight.cgroup_v1_shares()), weight);
        }

        #[test]
        fn v2_weight_stays_in_linux_range_and_keeps_order(a in 1u32..=65535, b in 1u32..=65535) {
            let (wa, wb) = (CpuWeight::new(a).unwrap(), CpuWeight::new(b).unwrap());
            prop_assert!((1..=10_000).contains(&wa.cgroup_v2_weight()));
            if wa <= wb {
                prop_assert!(wa.cgroup_v2_weight() <= wb.cgroup_v2_weight());
            }
        }

        #[test]
        fn share_to_weight_keeps_ratio_within_one_unit(s in 0.001f64..=1.0) {
            let w = CpuWeight::from_share(s).unwrap();
            prop_assert!((f64::from(w.get()) - s * CpuWeight::SHARE_SCALE).abs() <= 0.5 + 1e-9);
        }

        #[test]
        fn xen_vif_rate_matches_bandwidth_within_one_byte_per_window(r in 20u64..=10_000_000_000) {
            let b = Bandwidth::from_bytes_per_sec(r as f64).unwrap();
            let v = b.xen_vif_rate();
            let (bytes, usecs) = v.split_once(',').unwrap();
            let bytes: u128 = bytes.parse().unwrap();
            let usecs: u128 = usecs.parse().unwrap();
            let back = bytes * 1_000_000 / usecs;
            prop_assert!(back <= u128::from(r) && u128::from(r) - back <= 1_000_000 / usecs);
        }

        #[test]
        fn cap_survives_cfs_round_trip(p in 1u32..=6400) {
            let cap = CpuCap::new(p).unwrap();
            prop_assert_eq!(CpuCap::from_cfs(cap.cfs_quota_us() as i64, CpuCap::CFS_PERIOD_US), Some(cap));
        }

        #[test]
        fn memory_target_is_page_aligned_and_not_above_request(b in 4096u64..(1 << 50)) {
            let m = MemoryTarget::from_bytes(b).unwrap();
            prop_assert_eq!(m.bytes() % PAGE_BYTES, 0);
            prop_assert!(m.bytes() <= b && b - m.bytes() < PAGE_BYTES);
        }
    }

    #[test]
    fn bad_values_are_typed_errors() {
        assert!(matches!(
            CpuWeight::new(0),
            Err(Error::InvalidWeight { weight: 0 })
        ));
        assert!(matches!(
            CpuWeight::new(65536),
            Err(Error::InvalidWeight { .. })
        ));
        assert!(matches!(
            CpuWeight::from_share(1.5),
            Err(Error::InvalidShare { .. })
        ));
        assert!(matches!(
            CpuCap::new(0),
            Err(Error::InvalidCap { percent: 0 })
        ));
        assert!(matches!(
            MemoryTarget::from_bytes(4095),
            Err(Error::InvalidMemory { .. })
        ));
        assert!(matches!(
            MemoryTarget::from_mib(u64::MAX),
            Err(Error::InvalidMemory { .. })
        ));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 0.5] {
            assert!(matches!(
                Bandwidth::from_bytes_per_sec(bad),
                Err(Error::InvalidBandwidth { .. })
            ));
        }
    }
}
