//! The cluster model of section 5.3.1-5.3.2: hosts with a capacity C_j (CPUs less the
//! virtualisation overhead) and an exchange rate for heterogeneous hosts, programs with N VMs
//! and a total W. Shares and W are in *reference CPUs*: a host with exchange rate 2 does twice
//! the work per CPU-second, so one of its CPUs is worth 2 shares.

use crate::error::DpsError;

/// A host index.
///
/// ```
/// assert_eq!(dps_core::HostId(3).0, 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(pub u32);

/// A program index.
///
/// ```
/// assert_eq!(dps_core::ProgramId(0).0, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProgramId(pub u32);

/// A VM index, global over the cluster (VMs of program 0 first, then program 1, ...).
///
/// ```
/// assert_eq!(dps_core::VmId(7).0, 7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VmId(pub u32);

/// A host machine: validated capacity, exchange rate and background booking.
///
/// ```
/// // a dual-CPU node advertising 1.9 CPUs for a 5% virtualisation overhead (section 5.3.1)
/// let h = dps_core::HostSpec::new(2.0, 0.1).unwrap();
/// assert!((h.capacity() - 1.9).abs() < 1e-12);
/// assert!(dps_core::HostSpec::new(1.0, 1.0).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostSpec {
    cpus: f64,
    capacity: f64,
    speed: f64,
    background: f64,
}

impl HostSpec {
    /// A host of `cpus` CPUs advertising `cpus - overhead` of them. Errors unless the result
    /// is finite and > 0 and the overhead is finite and >= 0.
    ///
    /// ```
    /// assert!(dps_core::HostSpec::new(1.0, 0.0).is_ok());
    /// ```
    pub fn new(cpus: f64, overhead: f64) -> Result<Self, DpsError> {
        if !(overhead.is_finite() && overhead >= 0.0) {
            return Err(DpsError::InvalidParameter {
                name: "overhead",
                value: overhead,
            });
        }
        let capacity = cpus - overhead;
        if !(cpus.is_finite() && capacity.is_finite() && capacity > 0.0) {
            return Err(DpsError::InvalidCapacity(capacity));
        }
        Ok(Self {
            cpus,
            capacity,
            speed: 1.0,
            background: 0.0,
        })
    }

    /// Sets the exchange rate (relative computing power of one CPU). Errors unless finite, > 0.
    ///
    /// ```
    /// let h = dps_core::HostSpec::new(1.0, 0.0).unwrap().with_speed(2.0).unwrap();
    /// assert_eq!(h.capacity_shares(), 2.0);
    /// ```
    pub fn with_speed(mut self, speed: f64) -> Result<Self, DpsError> {
        if !(speed.is_finite() && speed > 0.0) {
            return Err(DpsError::InvalidParameter {
                name: "speed",
                value: speed,
            });
        }
        self.speed = speed;
        Ok(self)
    }

    /// Books `share` (in reference CPUs) for an immovable always-busy background load (the
    /// dissertation's `eatcpu` in domain 0). Errors unless finite, >= 0 and within capacity.
    ///
    /// ```
    /// let h = dps_core::HostSpec::new(1.0, 0.0).unwrap().with_background(0.5).unwrap();
    /// assert_eq!(h.background(), 0.5);
    /// ```
    pub fn with_background(mut self, share: f64) -> Result<Self, DpsError> {
        if !(share.is_finite() && share >= 0.0 && share <= self.capacity_shares()) {
            return Err(DpsError::InvalidParameter {
                name: "background",
                value: share,
            });
        }
        self.background = share;
        Ok(self)
    }

    /// Physical CPUs.
    ///
    /// ```
    /// assert_eq!(dps_core::HostSpec::new(2.0, 0.1).unwrap().cpus(), 2.0);
    /// ```
    pub fn cpus(&self) -> f64 {
        self.cpus
    }

    /// Advertised CPUs (C_j): CPUs less the overhead.
    ///
    /// ```
    /// assert_eq!(dps_core::HostSpec::new(1.0, 0.0).unwrap().capacity(), 1.0);
    /// ```
    pub fn capacity(&self) -> f64 {
        self.capacity
    }

    /// The exchange rate.
    ///
    /// ```
    /// assert_eq!(dps_core::HostSpec::new(1.0, 0.0).unwrap().speed(), 1.0);
    /// ```
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Capacity in reference CPUs (shares): C_j times the exchange rate.
    ///
    /// ```
    /// assert_eq!(dps_core::HostSpec::new(4.0, 0.0).unwrap().capacity_shares(), 4.0);
    /// ```
    pub fn capacity_shares(&self) -> f64 {
        self.capacity * self.speed
    }

    /// The background booking, in shares.
    ///
    /// ```
    /// assert_eq!(dps_core::HostSpec::new(1.0, 0.0).unwrap().background(), 0.0);
    /// ```
    pub fn background(&self) -> f64 {
        self.background
    }
}
