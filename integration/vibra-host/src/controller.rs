//! The one trait every backend implements, and the plain data it exchanges.
//!
//! It owns the contract (what a call must do, what it may leave behind on error); it never
//! touches a platform itself.

use std::fmt::{Debug, Display};
use std::hash::Hash;
use std::time::Duration;

use crate::error::Error;
use crate::units::{Bandwidth, CpuCap, CpuWeight, MemoryTarget};

/// A VM's CPU setting: a proportional weight and an optional hard cap.
///
/// ```
/// use vibra_host::{CpuCap, CpuSetting, CpuWeight};
/// let s = CpuSetting { weight: CpuWeight::DEFAULT, cap: Some(CpuCap::new(50).unwrap()) };
/// assert_eq!(s.cap.unwrap().percent(), 50);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CpuSetting {
    /// Proportional weight among the VMs of the host.
    pub weight: CpuWeight,
    /// Upper bound in percent of one CPU, or `None` for work-conserving (no cap).
    pub cap: Option<CpuCap>,
}

/// Cumulative counters of one VM, read at one instant. Subtract two readings to get a rate.
///
/// ```
/// use std::time::Duration;
/// let u = vibra_host::VmUsage { cpu_time: Duration::from_millis(5), memory_bytes: 4096, egress_bytes: 0 };
/// assert_eq!(u.cpu_time.as_micros(), 5000);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmUsage {
    /// CPU time consumed since the VM started.
    pub cpu_time: Duration,
    /// Memory in use now, in bytes (Linux: the cgroup's charge; Xen: the domain's pages).
    pub memory_bytes: u64,
    /// Bytes the VM has sent, counted at the host end of its link.
    pub egress_bytes: u64,
}

/// What one plan entry asks of one VM; `None` fields are left alone.
///
/// ```
/// use vibra_host::{Bandwidth, VmAllocation};
/// let a = VmAllocation { egress: Some(Bandwidth::from_bits_per_sec(1e6).unwrap()), ..Default::default() };
/// assert!(a.cpu.is_none() && a.memory.is_none());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmAllocation {
    /// New CPU setting.
    pub cpu: Option<CpuSetting>,
    /// New memory target.
    pub memory: Option<MemoryTarget>,
    /// New egress limit.
    pub egress: Option<Bandwidth>,
}

/// Whether a setter had to touch the platform.
///
/// ```
/// assert_ne!(vibra_host::Outcome::Written, vibra_host::Outcome::Unchanged);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The platform was written.
    Written,
    /// The value was already in force (as last written by this controller): nothing was done.
    Unchanged,
}

/// What [`HostController::apply`] did.
///
/// ```
/// let r = vibra_host::ApplyReport::default();
/// assert_eq!(r.written + r.unchanged, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Settings written to the platform.
    pub written: usize,
    /// Settings skipped because they were already in force.
    pub unchanged: usize,
}

impl ApplyReport {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Written => self.written += 1,
            Outcome::Unchanged => self.unchanged += 1,
        }
    }
}

/// The thing that enforces per-VM resources on one host and reports their use.
///
/// Setters validate nothing themselves: the unit types ([`CpuWeight`], [`Bandwidth`], ...)
/// cannot hold a bad value. A setter that fails leaves that VM's setting as it was whenever
/// the platform allows it (a weight written before a failing cap write is restored), and its
/// error names the VM, the operation and the platform's own error text. Setters return
/// [`Outcome::Unchanged`] without touching the platform when the value is the one this
/// controller last wrote, so applying a plan costs one platform write per changed setting.
///
/// ```no_run
/// use vibra_host::{Bandwidth, CpuSetting, CpuWeight, HostController, LinuxHost, VmSpec};
/// let mut host = LinuxHost::new("vibra-doc")?;
/// let vm = host.create_vm(&VmSpec::new("doc-vm")?)?;
/// host.set_cpu(&vm, CpuSetting { weight: CpuWeight::from_share(0.3)?, cap: None })?;
/// host.set_egress(&vm, Bandwidth::from_bits_per_sec(10e6)?)?;
/// println!("{:?}", host.usage(&vm)?);
/// # Ok::<(), vibra_host::Error>(())
/// ```
pub trait HostController {
    /// How this platform names a VM (a cgroup/netns name on Linux, a domain id on Xen).
    type VmId: Clone + Eq + Hash + Debug + Display;

    /// The VMs this controller can act on.
    fn list_vms(&self) -> Result<Vec<Self::VmId>, Error>;

    /// Sets the CPU weight and cap (cap `None` removes any cap).
    fn set_cpu(&mut self, vm: &Self::VmId, cpu: CpuSetting) -> Result<Outcome, Error>;

    /// Reads the CPU setting back from the platform.
    fn cpu(&self, vm: &Self::VmId) -> Result<CpuSetting, Error>;

    /// Sets the memory target.
    fn set_memory_target(
        &mut self,
        vm: &Self::VmId,
        target: MemoryTarget,
    ) -> Result<Outcome, Error>;

    /// Reads the memory target back from the platform (`None`: no limit set).
    fn memory_target(&self, vm: &Self::VmId) -> Result<Option<MemoryTarget>, Error>;

    /// Limits the VM's egress (the traffic it sends) to `rate`.
    fn set_egress(&mut self, vm: &Self::VmId, rate: Bandwidth) -> Result<Outcome, Error>;

    /// Reads the egress limit back from the platform (`None`: unlimited).
    fn egress_limit(&self, vm: &Self::VmId) -> Result<Option<Bandwidth>, Error>;

    /// Reads the cumulative CPU time, memory use and egress bytes.
    fn usage(&self, vm: &Self::VmId) -> Result<VmUsage, Error>;

    /// Applies a plan in order, one platform write per changed setting and none for settings
    /// already in force. Stops at the first error, which names the VM: the entries before it
    /// stay applied, so order the plan so that every prefix is safe (decreases first, as
    /// vibra-alloc's change plans are).
    ///
    /// ```no_run
    /// use vibra_host::{Bandwidth, HostController, LinuxHost, VmAllocation, VmSpec};
    /// let mut host = LinuxHost::new("vibra-doc-plan")?;
    /// let vm = host.create_vm(&VmSpec::new("doc-plan")?)?;
    /// let egress = Some(Bandwidth::from_bits_per_sec(2e6)?);
    /// let report = host.apply(&[(vm.clone(), VmAllocation { egress, ..Default::default() })])?;
    /// assert_eq!(report.written, 1);
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    fn apply(&mut self, plan: &[(Self::VmId, VmAllocation)]) -> Result<ApplyReport, Error> {
        let mut report = ApplyReport::default();
        for (vm, alloc) in plan {
            if let Some(cpu) = alloc.cpu {
                report.count(self.set_cpu(vm, cpu)?);
            }
            if let Some(memory) = alloc.memory {
                report.count(self.set_memory_target(vm, memory)?);
            }
            if let Some(egress) = alloc.egress {
                report.count(self.set_egress(vm, egress)?);
            }
        }
        Ok(report)
    }
}
