//! The `dps` role (dissertation chapter 5, SPEC 6): distributed proportional-share CPU
//! scheduling of one parallel program's VMs across hosts. Each host's vibrad reads its VMs'
//! CPU use, moves share from VMs that wait on their peers to the peers they wait on (fully
//! distributed) or through a bank (one vibrad's role), and writes the shares as CPU weights.
//!
//! - [`wire`]: the datagram, carrying dps-core's [`dps_core::Message`].
//! - [`ledger`]: one host's half of the transfer protocol (ids, idempotence, conservation).
//! - [`role`]: the loop over a host controller and a UDP socket; it records the ledger in the
//!   directory (`dps/<cluster>/<host>`) before any datagram leaves and restores it at start,
//!   so a daemon killed mid-exchange loses no share.
//!
//! ```
//! let cfg = vibrad::config::Config::parse(vibrad::config::MINIMAL_DPS).unwrap();
//! assert_eq!(cfg.dps.unwrap().hosts().len(), 2);
//! ```

pub mod ledger;
pub mod role;
pub mod wire;

pub use role::{
    CrashMode, CrashPoint, DpsRole, MIN_TRANSFER, STARTUP_PERIODS, cpu_setting, fingerprint,
    kept_use,
};

use crate::config::Config;
use crate::error::Result;
use vibra_host::{LinuxHost, VmSpec};

/// Creates this host's `[[dps.vm]]` VMs (cgroups and namespaces through vibra-host) under the
/// `[linux] cgroup_parent`. The ranks are started into them by the operator or the MPI
/// launcher (`vibra_host::LinuxHost::attach`, or the cgroup's `cgroup.procs`).
///
/// ```no_run
/// let cfg = vibrad::config::Config::parse(vibrad::config::MINIMAL_DPS).unwrap();
/// let host = vibrad::dps::linux_host(&cfg)?;
/// # Ok::<(), vibrad::Error>(())
/// ```
pub fn linux_host(cfg: &Config) -> Result<LinuxHost> {
    let mut host = LinuxHost::new(&cfg.cgroup_parent)?;
    if let Some(d) = &cfg.dps {
        for v in d.vms.iter().filter(|v| v.host == cfg.host) {
            host.create_vm(&VmSpec::new(&v.name)?)?;
        }
    }
    Ok(host)
}
