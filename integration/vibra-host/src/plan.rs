//! The host side of vibra-alloc's change plans.
//!
//! vibra-alloc decides in whole units and orders each [`Plan`] so that every prefix stays within
//! the customer's pool (decreases first, SPEC section 5). This module turns such a plan into one
//! platform setting per changed VM, in the plan's own order, so the kernel never holds more than
//! the pool either, even when applying stops half way. It owns the unit conversion; it never
//! re-orders, merges or decides anything.

use vibra_alloc::{KindPlan, Plan, ResourceKind};

use crate::controller::{ApplyReport, CpuSetting, HostController, VmAllocation};
use crate::error::Error;
use crate::units::{Bandwidth, CpuWeight, MemoryTarget};

/// What one unit of a vibra-alloc plan is on this host, for one resource kind. Built only
/// through its checked constructors, so a unit size is always positive and finite.
///
/// ```
/// use vibra_host::UnitSize;
/// let kb = UnitSize::bandwidth_bytes_per_sec(1000.0).unwrap();   // 1 unit = 1 kB/s
/// assert_eq!(kb.kind(), vibra_alloc::ResourceKind::Bandwidth);
/// assert!(UnitSize::memory_bytes(0).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitSize(Unit);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Unit {
    /// Egress: bytes per second in one unit.
    Bandwidth(f64),
    /// Memory: bytes in one unit.
    Memory(u64),
    /// CPU: units in a whole share of 1.0 (mapped with [`CpuWeight::from_share`]).
    Cpu(u64),
}

impl UnitSize {
    /// One unit is `bytes` bytes per second of egress bandwidth.
    ///
    /// # Errors
    /// [`Error::InvalidUnit`] unless `bytes` is finite and positive.
    ///
    /// ```
    /// assert!(vibra_host::UnitSize::bandwidth_bytes_per_sec(f64::NAN).is_err());
    /// ```
    pub fn bandwidth_bytes_per_sec(bytes: f64) -> Result<Self, Error> {
        if bytes.is_finite() && bytes > 0.0 {
            Ok(UnitSize(Unit::Bandwidth(bytes)))
        } else {
            Err(Error::InvalidUnit {
                kind: "bandwidth",
                value: bytes.to_string(),
            })
        }
    }

    /// One unit is `bytes` bytes of memory (4096: one page per unit).
    ///
    /// # Errors
    /// [`Error::InvalidUnit`] when `bytes` is 0.
    ///
    /// ```
    /// assert!(vibra_host::UnitSize::memory_bytes(4096).is_ok());
    /// ```
    pub fn memory_bytes(bytes: u64) -> Result<Self, Error> {
        if bytes > 0 {
            Ok(UnitSize(Unit::Memory(bytes)))
        } else {
            Err(Error::InvalidUnit {
                kind: "memory",
                value: bytes.to_string(),
            })
        }
    }

    /// `units` units make a CPU share of 1.0 (10,000: one unit is 1/10,000 of the share scale).
    ///
    /// # Errors
    /// [`Error::InvalidUnit`] when `units` is 0.
    ///
    /// ```
    /// assert!(vibra_host::UnitSize::cpu_units_per_share(10_000).is_ok());
    /// ```
    pub fn cpu_units_per_share(units: u64) -> Result<Self, Error> {
        if units > 0 {
            Ok(UnitSize(Unit::Cpu(units)))
        } else {
            Err(Error::InvalidUnit {
                kind: "cpu",
                value: units.to_string(),
            })
        }
    }

    /// The resource kind this unit measures.
    ///
    /// ```
    /// let u = vibra_host::UnitSize::memory_bytes(4096).unwrap();
    /// assert_eq!(u.kind(), vibra_alloc::ResourceKind::Memory);
    /// ```
    #[must_use]
    pub fn kind(&self) -> ResourceKind {
        match self.0 {
            Unit::Bandwidth(_) => ResourceKind::Bandwidth,
            Unit::Memory(_) => ResourceKind::Memory,
            Unit::Cpu(_) => ResourceKind::Cpu,
        }
    }

    /// The host setting for `units` units of this kind.
    ///
    /// # Errors
    /// The unit types' own errors when the amount is not a valid setting (0 units of any kind:
    /// a VM cannot run with no CPU weight, no memory or no bandwidth; a CPU share above 1.0).
    ///
    /// ```
    /// use vibra_host::UnitSize;
    /// let mem = UnitSize::memory_bytes(4096).unwrap();
    /// let a = mem.allocation(256).unwrap();
    /// assert_eq!(a.memory.unwrap().bytes(), 1 << 20);
    /// assert!(mem.allocation(0).is_err());
    /// ```
    pub fn allocation(&self, units: u64) -> Result<VmAllocation, Error> {
        Ok(match self.0 {
            Unit::Bandwidth(per) => VmAllocation {
                egress: Some(Bandwidth::from_bytes_per_sec(units as f64 * per)?),
                ..VmAllocation::default()
            },
            Unit::Memory(per) => VmAllocation {
                memory: Some(MemoryTarget::from_bytes(
                    units
                        .checked_mul(per)
                        .ok_or(Error::InvalidMemory { bytes: u64::MAX })?,
                )?),
                ..VmAllocation::default()
            },
            Unit::Cpu(per) => VmAllocation {
                cpu: Some(CpuSetting {
                    weight: CpuWeight::from_share(units as f64 / per as f64)?,
                    cap: None,
                }),
                ..VmAllocation::default()
            },
        })
    }
}

/// The settings of `plan`, in its order, for VMs named by position: the plan's `VmId(i)` is
/// `vms[i]` (as in vibra-alloc's slice functions and its agent). All or nothing: any entry that
/// names no VM or converts to no valid setting fails the whole call.
///
/// # Errors
/// [`Error::PlanVm`] for a VM id beyond `vms`; the unit types' errors for a bad amount.
///
/// ```
/// use vibra_alloc::Plan;
/// use vibra_host::{UnitSize, plan_allocations};
/// let plan = Plan::between(&[300, 100], &[200, 200]).unwrap();   // decrease first
/// let unit = UnitSize::bandwidth_bytes_per_sec(1000.0).unwrap();
/// let steps = plan_allocations(&["a", "b"], &plan, unit).unwrap();
/// assert_eq!(steps[0].0, "a");
/// assert_eq!(steps[0].1.egress.unwrap().bytes_per_sec(), 200_000);
/// assert!(plan_allocations(&["a"], &plan, unit).is_err());
/// ```
pub fn plan_allocations<V: Clone>(
    vms: &[V],
    plan: &Plan,
    unit: UnitSize,
) -> Result<Vec<(V, VmAllocation)>, Error> {
    plan.iter()
        .map(|change| {
            let vm = vms.get(change.vm.index()).ok_or(Error::PlanVm {
                vm: change.vm.0,
                vms: vms.len(),
            })?;
            Ok((vm.clone(), unit.allocation(change.to)?))
        })
        .collect()
}

/// [`plan_allocations`] for an agent's [`KindPlan`], checking that `unit` measures the plan's
/// kind.
///
/// # Errors
/// [`Error::UnitKindMismatch`] when it does not; otherwise as [`plan_allocations`].
///
/// ```
/// use vibra_alloc::{KindPlan, Plan, ResourceKind};
/// use vibra_host::{UnitSize, kind_plan_allocations};
/// let kp = KindPlan { kind: ResourceKind::Memory, plan: Plan::between(&[1], &[2]).unwrap() };
/// let bw = UnitSize::bandwidth_bytes_per_sec(1000.0).unwrap();
/// assert!(kind_plan_allocations(&["vm"], &kp, bw).is_err());
/// ```
pub fn kind_plan_allocations<V: Clone>(
    vms: &[V],
    plan: &KindPlan,
    unit: UnitSize,
) -> Result<Vec<(V, VmAllocation)>, Error> {
    if plan.kind != unit.kind() {
        return Err(Error::UnitKindMismatch {
            plan: plan.kind.to_string(),
            unit: unit.kind().to_string(),
        });
    }
    plan_allocations(vms, &plan.plan, unit)
}

/// Applies vibra-alloc's change plans on any [`HostController`] (a blanket extension, so every
/// backend, Linux and Xen, applies plans the same way).
pub trait ApplyAllocationPlan: HostController {
    /// Applies one of vibra-alloc's change plans: VM `i` of the plan is `vms[i]`, one unit is
    /// `unit`, and the settings are applied in the plan's order (decreases first), so every
    /// prefix stays within the pool on this host too. The plan is converted in full before
    /// anything is written: a plan naming an unknown VM or an invalid amount changes nothing.
    /// A platform error stops at that entry, as [`HostController::apply`] does.
    ///
    /// ```no_run
    /// use vibra_alloc::{split_units, Plan};
    /// use vibra_host::{ApplyAllocationPlan, LinuxHost, UnitSize, VmSpec};
    /// let mut host = LinuxHost::new("vibra-doc-alloc")?;
    /// let vms = [host.create_vm(&VmSpec::new("doc-a")?)?, host.create_vm(&VmSpec::new("doc-b")?)?];
    /// let now = [40_000, 40_000];                                   // 80 MB/s in 1 kB/s units
    /// let next = split_units(&[10.0, 30.0], None, 80_000, 1_000).unwrap();
    /// let plan = Plan::between(&now, &next).unwrap();
    /// host.apply_plan(&vms, &plan, UnitSize::bandwidth_bytes_per_sec(1000.0)?)?;
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    fn apply_plan(
        &mut self,
        vms: &[Self::VmId],
        plan: &Plan,
        unit: UnitSize,
    ) -> Result<ApplyReport, Error> {
        let steps = plan_allocations(vms, plan, unit)?;
        self.apply(&steps)
    }
}

impl<H: HostController + ?Sized> ApplyAllocationPlan for H {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vibra_alloc::split_units;

    #[test]
    fn cpu_units_map_to_the_share_weight() {
        let cpu = UnitSize::cpu_units_per_share(10_000).unwrap();
        let a = cpu.allocation(2_500).unwrap();
        assert_eq!(a.cpu.unwrap().weight, CpuWeight::from_share(0.25).unwrap());
        assert!(a.memory.is_none() && a.egress.is_none());
        assert!(matches!(
            cpu.allocation(10_001),
            Err(Error::InvalidShare { .. })
        ));
    }

    #[test]
    fn a_memory_amount_past_u64_is_an_error_not_a_wrap() {
        let mem = UnitSize::memory_bytes(1 << 20).unwrap();
        assert!(matches!(
            mem.allocation(u64::MAX / 2),
            Err(Error::InvalidMemory { .. })
        ));
    }

    #[test]
    fn a_bad_entry_fails_the_whole_conversion() {
        // VM 1 goes to 0 units: no valid memory target, so nothing is returned to apply.
        let plan = Plan::between(&[10, 10], &[20, 0]).unwrap();
        let mem = UnitSize::memory_bytes(4096).unwrap();
        assert!(plan_allocations(&["a", "b"], &plan, mem).is_err());
    }

    proptest! {
        /// The host applies exactly vibra-alloc's plan: same VMs, same order, same amounts.
        #[test]
        fn allocations_follow_the_plan_order_and_amounts(
            a in proptest::collection::vec(0.0f64..100.0, 1..40),
            b_seed in any::<u64>(),
        ) {
            let n = a.len();
            let b: Vec<f64> = (0..n).map(|i| ((b_seed >> (i % 64)) & 0xff) as f64).collect();
            let pool = 1_000_000u64;
            let floor = 1_000u64;
            let from = split_units(&a, None, pool, floor).unwrap();
            let to = split_units(&b, None, pool, floor).unwrap();
            let plan = Plan::between(&from, &to).unwrap();
            let names: Vec<String> = (0..n).map(|i| format!("vm{i}")).collect();
            let unit = UnitSize::bandwidth_bytes_per_sec(1000.0).unwrap();
            let steps = plan_allocations(&names, &plan, unit).unwrap();
            prop_assert_eq!(steps.len(), plan.len());
            let mut applied: Vec<u64> = from.clone();
            for ((name, alloc), change) in steps.iter().zip(plan.iter()) {
                prop_assert_eq!(name, &names[change.vm.index()]);
                let bytes = alloc.egress.unwrap().bytes_per_sec();
                prop_assert_eq!(bytes, change.to * 1000);
                applied[change.vm.index()] = bytes / 1000;
                // Every prefix stays within the pool on the host too.
                prop_assert!(applied.iter().sum::<u64>() <= pool);
            }
            prop_assert_eq!(applied, to);
        }
    }
}
