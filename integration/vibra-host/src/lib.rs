//! Host controllers: make an allocation decision real on a Linux host or a Xen hypervisor.
//!
//! One small trait, [`HostController`], sets per-VM CPU weight and cap, memory target and
//! egress bandwidth, and reads cumulative CPU time, memory use and egress bytes. Backends:
//!
//! - [`LinuxHost`] (always built): a VM is a cgroup plus a network namespace joined by a veth
//!   pair; cgroup v2 where its controllers are enabled, v1 otherwise (detected, never assumed);
//!   egress shaped with a tbf qdisc set over rtnetlink (no `tc` process) and counted at the
//!   host end of the veth.
//! - `XenHost` (cargo feature `xen`): domains through libxenctrl (credit scheduler, domain
//!   info), libxenlight (memory target) and xenstore (the vif `rate` key), with a tbf on
//!   `vif<dom>.<dev>` (rtnetlink, as on Linux) as the alternative shaper.
//!
//! Values are validated by their types ([`CpuWeight`], [`CpuCap`], [`MemoryTarget`],
//! [`Bandwidth`]), whose docs give the mapping to each platform's units, including the DPS
//! share to weight mapping ([`CpuWeight::from_share`]).
//!
//! ```no_run
//! use vibra_host::{Bandwidth, CpuSetting, CpuWeight, HostController, LinuxHost, VmAllocation, VmSpec};
//! let mut host = LinuxHost::new("vibra-quickstart")?;
//! let a = host.create_vm(&VmSpec::new("qs-a")?)?;
//! let b = host.create_vm(&VmSpec::new("qs-b")?)?;
//! let plan = vec![
//!     (a.clone(), VmAllocation { cpu: Some(CpuSetting { weight: CpuWeight::from_share(0.25)?, cap: None }), ..Default::default() }),
//!     (b.clone(), VmAllocation { egress: Some(Bandwidth::from_bits_per_sec(20e6)?), ..Default::default() }),
//! ];
//! let report = host.apply(&plan)?;
//! println!("{} writes, {} unchanged; a used {:?}", report.written, report.unchanged, host.usage(&a)?.cpu_time);
//! # Ok::<(), vibra_host::Error>(())
//! ```

mod controller;
mod error;
mod linux;
mod plan;
mod units;
#[cfg(feature = "xen")]
mod xen;

pub use controller::{ApplyReport, CpuSetting, HostController, Outcome, VmAllocation, VmUsage};
pub use error::{Error, Operation};
pub use linux::cgroup::CgroupLayout;
pub use linux::net::LinkAddrs;
pub use linux::{LinuxHost, MAX_VM_NAME, VmSpec};
pub use plan::{ApplyAllocationPlan, UnitSize, kind_plan_allocations, plan_allocations};
pub use units::{Bandwidth, CpuCap, CpuWeight, MemoryTarget, PAGE_BYTES};
#[cfg(feature = "xen")]
pub use xen::{DomId, DomainState, XenHost};
