//! The crate's one error type: every failure names the VM and the operation, and carries the
//! operating system's or Xen's own error text.

use std::fmt;

/// What the controller was doing when it failed (part of every platform error).
///
/// ```
/// assert_eq!(vibra_host::Operation::SetEgress.to_string(), "set egress bandwidth");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Creating a VM's cgroups, namespace and link.
    CreateVm,
    /// Removing a VM's cgroups, namespace and link.
    DestroyVm,
    /// Listing VMs.
    ListVms,
    /// Moving a process into a VM.
    Attach,
    /// Setting a CPU weight and cap.
    SetCpu,
    /// Setting a memory target.
    SetMemory,
    /// Setting an egress bandwidth limit.
    SetEgress,
    /// Reading cumulative usage counters.
    ReadUsage,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::CreateVm => "create VM",
            Operation::DestroyVm => "destroy VM",
            Operation::ListVms => "list VMs",
            Operation::Attach => "attach process",
            Operation::SetCpu => "set CPU weight/cap",
            Operation::SetMemory => "set memory target",
            Operation::SetEgress => "set egress bandwidth",
            Operation::ReadUsage => "read usage",
        })
    }
}

/// Every way a host controller can fail.
///
/// ```
/// use vibra_host::{CpuWeight, Error};
/// let e = CpuWeight::new(0).unwrap_err();
/// assert!(matches!(e, Error::InvalidWeight { weight: 0 }));
/// assert_eq!(e.to_string(), "CPU weight 0 is outside 1..=65535");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CPU weight outside 1..=65535.
    #[error("CPU weight {weight} is outside 1..=65535")]
    InvalidWeight {
        /// The rejected weight.
        weight: u32,
    },
    /// A DPS share outside (0, 1] or not a number.
    #[error("CPU share {share} is outside (0, 1]")]
    InvalidShare {
        /// The rejected share.
        share: f64,
    },
    /// A CPU cap outside 1..=6400 percent.
    #[error("CPU cap {percent}% is outside 1..=6400")]
    InvalidCap {
        /// The rejected cap.
        percent: u32,
    },
    /// A memory target below one page or too large for the platforms.
    #[error("memory target of {bytes} bytes is below one 4 KiB page or above i64::MAX")]
    InvalidMemory {
        /// The rejected size.
        bytes: u64,
    },
    /// A bandwidth that is NaN, infinite, negative or below 1 byte/s.
    #[error("bandwidth {rate} is not a finite rate of at least 1 byte/s")]
    InvalidBandwidth {
        /// The rejected rate, as given.
        rate: f64,
    },
    /// A plan unit size that is zero, negative or not finite.
    #[error("a {kind} unit of {value} is not a positive, finite size")]
    InvalidUnit {
        /// The resource kind.
        kind: &'static str,
        /// The rejected size, as given.
        value: String,
    },
    /// A vibra-alloc plan names a VM beyond the list it is applied to.
    #[error("the plan names vm{vm}, but only {vms} VMs were given")]
    PlanVm {
        /// The plan's VM id.
        vm: u32,
        /// How many VMs were given.
        vms: usize,
    },
    /// A plan of one resource kind applied with a unit of another.
    #[error("a {plan} plan cannot be applied in {unit} units")]
    UnitKindMismatch {
        /// The plan's kind.
        plan: String,
        /// The unit's kind.
        unit: String,
    },
    /// A VM name that cannot be used for a cgroup, namespace or interface.
    #[error("invalid VM name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The VM is not managed by this controller (or no longer exists).
    #[error("{op} on VM {vm}: no such VM")]
    UnknownVm {
        /// The VM asked for.
        vm: String,
        /// The operation.
        op: Operation,
    },
    /// A VM of that name already exists.
    #[error("create VM {vm}: a VM of that name already exists")]
    VmExists {
        /// The name.
        vm: String,
    },
    /// A system file (cgroup, sysfs counter) could not be read or written.
    #[error("{op} on VM {vm}: {path}: {source}")]
    Io {
        /// The VM.
        vm: String,
        /// The operation.
        op: Operation,
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An external command (`ip`, `tc`, `kill`) failed.
    #[error("{op} on VM {vm}: `{command}` failed: {stderr}")]
    Command {
        /// The VM.
        vm: String,
        /// The operation.
        op: Operation,
        /// The command line.
        command: String,
        /// Its standard error (or the spawn error).
        stderr: String,
    },
    /// A netlink request to the kernel (rtnetlink: link lookup, qdisc change or dump) failed.
    #[error("{op} on VM {vm}: netlink {request} failed: {source}{}", kernel_suffix(.kernel_says))]
    Netlink {
        /// The VM.
        vm: String,
        /// The operation.
        op: Operation,
        /// The request, e.g. `RTM_GETLINK eth0`.
        request: String,
        /// The kernel's errno (or the local socket or decoding failure).
        #[source]
        source: std::io::Error,
        /// The kernel's extended-ack message, empty when it gave none.
        kernel_says: String,
    },
    /// A counter or setting read back from the system did not parse.
    #[error("{op} on VM {vm}: cannot parse {what} from {text:?}")]
    Parse {
        /// The VM.
        vm: String,
        /// The operation.
        op: Operation,
        /// What was being read.
        what: &'static str,
        /// The text read.
        text: String,
    },
    /// The host offers no usable controller for a resource (no cgroup hierarchy, not root).
    #[error("no usable {resource} controller: {detail}")]
    NoController {
        /// `cpu`, `cpuacct` or `memory`.
        resource: &'static str,
        /// What was found instead.
        detail: String,
    },
    /// A Xen library call failed.
    #[error("{op} on VM {vm}: {call} failed: {message}")]
    Xen {
        /// The VM (domain id or name).
        vm: String,
        /// The operation.
        op: Operation,
        /// The library function.
        call: &'static str,
        /// Xen's or the OS's error text.
        message: String,
    },
    /// Xen is not present or its control interfaces cannot be opened.
    #[error("Xen is not available: {reason}")]
    XenUnavailable {
        /// Why (the library's error text).
        reason: String,
    },
}

/// The kernel's extended-ack text as a suffix of an error message (nothing when empty).
fn kernel_suffix(kernel_says: &str) -> String {
    if kernel_says.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {kernel_says})")
    }
}
