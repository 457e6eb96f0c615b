//! Demand estimation: the exponential moving average of SPEC section 5 (eq. 3.1).
//!
//! This module owns the smoothing only. It never allocates anything and never reads a clock:
//! the caller (or [`crate::Agent`]) decides when an observation is taken.

use crate::error::{Error, Result, check_all_non_negative, check_len, check_non_negative};

/// The smoothing factor alpha of eq. 3.1, a finite number in `[0, 1]`: the weight of the
/// previous estimate. Larger is smoother.
///
/// The default, 0.9, is the dissertation's best setting with a 3 s bandwidth period
/// (section 3.5.3: "For alpha = 0.9, an adaptation interval of 3s is found to be optimal").
///
/// ```
/// use vibra_alloc::Alpha;
/// assert_eq!(Alpha::default().get(), 0.9);
/// assert!(Alpha::new(1.5).is_err());
/// assert!(Alpha::new(f64::NAN).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Alpha(f64);

impl Alpha {
    /// The dissertation's setting, 0.9.
    pub const DISSERTATION: Alpha = Alpha(0.9);

    /// Alpha in `[0, 1]`, else [`Error::InvalidValue`].
    ///
    /// ```
    /// assert_eq!(vibra_alloc::Alpha::new(0.5).unwrap().get(), 0.5);
    /// ```
    pub fn new(alpha: f64) -> Result<Self> {
        if alpha.is_finite() && (0.0..=1.0).contains(&alpha) {
            Ok(Alpha(alpha))
        } else {
            Err(Error::invalid("alpha", None, alpha))
        }
    }

    /// The value.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::Alpha::DISSERTATION.get(), 0.9);
    /// ```
    #[must_use]
    pub fn get(self) -> f64 {
        self.0
    }
}

impl Default for Alpha {
    fn default() -> Self {
        Alpha::DISSERTATION
    }
}

/// One step of eq. 3.1: `d' = alpha * d + (1 - alpha) * u`, exactly as SPEC section 5 writes it,
/// with the rounded result kept between `d` and `u` (where the exact one lies), so it is
/// always finite and a constant series stays constant.
///
/// `previous` is `None` before the first observation, which then initialises the estimate to
/// `u`. Errors (nothing computed): `previous` or `usage` negative, NaN or infinite.
///
/// ```
/// use vibra_alloc::{ema, Alpha};
/// let a = Alpha::new(0.5).unwrap();
/// assert_eq!(ema(a, None, 8.0).unwrap(), 8.0);
/// assert_eq!(ema(a, Some(8.0), 4.0).unwrap(), 6.0);
/// assert!(ema(a, Some(8.0), -1.0).is_err());
/// ```
pub fn ema(alpha: Alpha, previous: Option<f64>, usage: f64) -> Result<f64> {
    check_non_negative("usage", None, usage)?;
    match previous {
        None => Ok(usage),
        Some(d) => {
            check_non_negative("demand", None, d)?;
            let a = alpha.get();
            // The exact convex combination lies between `d` and `usage`; the rounded one can
            // stray an ulp outside (a constant series drifting, or inf at f64::MAX), so clamp
            // it back. The result is always finite: no error for valid inputs.
            let next = (a * d + (1.0 - a) * usage).clamp(d.min(usage), d.max(usage));
            Ok(next)
        }
    }
}

/// Per-VM demand estimates for one resource kind.
///
/// Not shared between threads by itself (`&mut self` to observe); wrap it in a lock if needed.
///
/// ```
/// use vibra_alloc::{Alpha, DemandEstimator};
///
/// let mut est = DemandEstimator::new(2, Alpha::new(0.5).unwrap()).unwrap();
/// est.observe(&[4.0, 0.0]).unwrap(); // first observation initialises
/// est.observe(&[0.0, 8.0]).unwrap();
/// assert_eq!(est.demand(), &[2.0, 4.0]);
///
/// // A bad sample is rejected whole: nothing changes.
/// assert!(est.observe(&[1.0, f64::INFINITY]).is_err());
/// assert_eq!(est.demand(), &[2.0, 4.0]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DemandEstimator {
    alpha: Alpha,
    demand: Vec<f64>,
    seen: Vec<bool>,
}

impl DemandEstimator {
    /// An estimator for `n` VMs with no observation yet (every demand reads 0).
    /// Errors: `n = 0`, or more VMs than `u32` can index.
    ///
    /// ```
    /// let est = vibra_alloc::DemandEstimator::new(3, Default::default()).unwrap();
    /// assert_eq!(est.demand(), &[0.0; 3]);
    /// ```
    pub fn new(n: usize, alpha: Alpha) -> Result<Self> {
        crate::error::check_vm_count(n)?;
        Ok(DemandEstimator {
            alpha,
            demand: vec![0.0; n],
            seen: vec![false; n],
        })
    }

    /// The number of VMs.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::DemandEstimator::new(3, Default::default()).unwrap().len(), 3);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.demand.len()
    }

    /// Always false: an estimator has at least one VM. Present for the `len`/`is_empty` pair.
    ///
    /// ```
    /// assert!(!vibra_alloc::DemandEstimator::new(1, Default::default()).unwrap().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.demand.is_empty()
    }

    /// The smoothing factor.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::DemandEstimator::new(1, Default::default()).unwrap().alpha().get(), 0.9);
    /// ```
    #[must_use]
    pub fn alpha(&self) -> Alpha {
        self.alpha
    }

    /// Feeds one usage sample per VM (same order as the VMs). All-or-nothing: any negative,
    /// NaN or infinite sample, or a wrong length, is an error and changes nothing.
    ///
    /// ```
    /// let mut est = vibra_alloc::DemandEstimator::new(1, Default::default()).unwrap();
    /// est.observe(&[10.0]).unwrap();
    /// est.observe(&[0.0]).unwrap();
    /// assert!((est.demand()[0] - 9.0).abs() < 1e-12);
    /// ```
    pub fn observe(&mut self, usage: &[f64]) -> Result<()> {
        check_len("usage", self.demand.len(), usage.len())?;
        check_all_non_negative("usage", usage)?;
        let mut next = Vec::with_capacity(usage.len());
        for (i, &u) in usage.iter().enumerate() {
            let prev = self.seen[i].then_some(self.demand[i]);
            next.push(ema(self.alpha, prev, u).map_err(|e| with_index(e, i))?);
        }
        self.demand = next;
        self.seen.iter_mut().for_each(|s| *s = true);
        Ok(())
    }

    /// Feeds one VM's usage sample. Errors (nothing changed): index out of range, bad sample.
    ///
    /// ```
    /// let mut est = vibra_alloc::DemandEstimator::new(2, Default::default()).unwrap();
    /// est.observe_one(1, 5.0).unwrap();
    /// assert_eq!(est.demand(), &[0.0, 5.0]);
    /// assert!(est.observe_one(2, 5.0).is_err());
    /// ```
    pub fn observe_one(&mut self, vm: usize, usage: f64) -> Result<()> {
        let n = self.demand.len();
        if vm >= n {
            return Err(Error::VmOutOfRange {
                index: u32::try_from(vm).unwrap_or(u32::MAX),
                n,
            });
        }
        let prev = self.seen[vm].then_some(self.demand[vm]);
        let d = ema(self.alpha, prev, usage).map_err(|e| with_index(e, vm))?;
        self.demand[vm] = d;
        self.seen[vm] = true;
        Ok(())
    }

    /// Forgets one VM's history (a replacement VM starts afresh: its first sample initialises).
    ///
    /// ```
    /// let mut est = vibra_alloc::DemandEstimator::new(1, Default::default()).unwrap();
    /// est.observe(&[10.0]).unwrap();
    /// est.forget(0).unwrap();
    /// est.observe(&[2.0]).unwrap();
    /// assert_eq!(est.demand(), &[2.0]);
    /// ```
    pub fn forget(&mut self, vm: usize) -> Result<()> {
        let n = self.demand.len();
        if vm >= n {
            return Err(Error::VmOutOfRange {
                index: u32::try_from(vm).unwrap_or(u32::MAX),
                n,
            });
        }
        self.demand[vm] = 0.0;
        self.seen[vm] = false;
        Ok(())
    }

    /// The current estimates (0 for a VM never observed).
    ///
    /// ```
    /// let est = vibra_alloc::DemandEstimator::new(2, Default::default()).unwrap();
    /// assert_eq!(est.demand().len(), 2);
    /// ```
    #[must_use]
    pub fn demand(&self) -> &[f64] {
        &self.demand
    }
}

fn with_index(e: Error, i: usize) -> Error {
    match e {
        Error::InvalidValue { what, value, .. } => Error::InvalidValue {
            what,
            index: Some(i),
            value,
        },
        other => other,
    }
}
