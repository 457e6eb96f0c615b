//! The Xen backend (cargo feature `xen`, `backend = "xen"`): vibrad runs in Domain-0 and drives
//! the domains its VMs name through vibra-host's [`XenHost`] (credit scheduler weight and cap,
//! libxl memory target, the netback vif `rate`; usage from the domain info and the vif's
//! counters).
//!
//! On Xen a toolstack (`xl`, libvirt, XAPI) creates and destroys domains, so vibrad **adopts**
//! them: at start it looks up each of this host's VMs by domain name and keeps its domain id.
//! It never creates, reboots or destroys a domain, and leaves the domains with their last
//! settings when it stops. A VM has failed when its adopted domain is gone (destroyed, or
//! dying), has crashed, or has shut down; a domain the toolstack starts again under the same
//! name is a new domain id, adopted when vibrad restarts (as a Linux VM is recreated then).

use std::collections::BTreeMap;

use vibra_host::{
    Bandwidth, CpuSetting, DomId, DomainState, Error as HostError, HostController, MemoryTarget,
    Operation, Outcome, VmUsage, XenHost,
};

use crate::config::Config;
use crate::daemon::Vms;
use crate::error::Result;

/// This host's VMs as adopted Xen domains, named by the configuration's VM names.
///
/// ```no_run
/// let cfg = vibrad::config::Config::load(std::path::Path::new("/etc/vibrad/vibrad.toml"))?;
/// let host = vibrad::xen::agent_host(&cfg)?;
/// println!("vm-1 is {}", host.domain("vm-1")?);
/// # Ok::<(), vibrad::Error>(())
/// ```
pub struct XenVms {
    xen: XenHost,
    /// VM name -> the domain adopted at start (`None`: no running domain had the name).
    doms: BTreeMap<String, Option<DomId>>,
}

impl std::fmt::Debug for XenVms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XenVms").field("doms", &self.doms).finish()
    }
}

impl XenVms {
    /// Opens Xen (libxenctrl, xenstore, libxl) and adopts the running domains called `names`.
    /// A name with no running domain is kept, unadopted: it counts as not running (so the
    /// agent marks it failed at its first period, and the dps role keeps its share until it
    /// has been seen running). Errors: Xen cannot be opened ([`HostError::XenUnavailable`]
    /// outside a privileged Domain-0), or the domain list cannot be read.
    ///
    /// ```no_run
    /// let host = vibrad::xen::XenVms::adopt(["web-1", "web-2"])?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn adopt<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let xen = XenHost::open()?;
        let mut by_name = BTreeMap::new();
        for d in xen.list_vms()? {
            if xen.domain_state(d)?.is_running()
                && let Ok(n) = xen.domain_name(d)
            {
                by_name.insert(n, d);
            }
        }
        let mut doms = BTreeMap::new();
        for name in names {
            let dom = by_name.get(name).copied();
            match dom {
                Some(d) => tracing::info!(vm = name, domid = d.0, "adopted Xen domain"),
                None => tracing::warn!(
                    vm = name,
                    "no running Xen domain has this name: the VM counts as not running"
                ),
            }
            doms.insert(name.to_string(), dom);
        }
        Ok(XenVms { xen, doms })
    }

    /// The domain adopted for `vm`. Errors: an unknown VM, or one adopted with no domain
    /// ([`HostError::UnknownVm`]).
    ///
    /// ```no_run
    /// let host = vibrad::xen::XenVms::adopt(["web-1"])?;
    /// assert!(host.domain("not-configured").is_err());
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn domain(&self, vm: &str) -> Result<DomId, HostError> {
        self.doms
            .get(vm)
            .copied()
            .flatten()
            .ok_or_else(|| HostError::UnknownVm {
                vm: vm.to_string(),
                op: Operation::ListVms,
            })
    }

    /// What Xen says of `vm`'s adopted domain now: [`DomainState::Gone`] also when it was
    /// never adopted, or when its id now belongs to a domain with another name.
    ///
    /// ```no_run
    /// let host = vibrad::xen::XenVms::adopt(["web-1"])?;
    /// println!("{}", host.state("web-1")?);
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn state(&self, vm: &str) -> Result<DomainState> {
        let Ok(dom) = self.domain(vm) else {
            return Ok(DomainState::Gone);
        };
        let state = self.xen.domain_state(dom)?;
        if state == DomainState::Gone || self.xen.domain_name(dom).ok().as_deref() != Some(vm) {
            return Ok(DomainState::Gone);
        }
        Ok(state)
    }

    /// The underlying controller (to read settings back by domain id).
    ///
    /// ```no_run
    /// use vibra_host::HostController;
    /// let host = vibrad::xen::XenVms::adopt(["web-1"])?;
    /// println!("{:?}", host.xen().cpu(&host.domain("web-1")?)?);
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    #[must_use]
    pub fn xen(&self) -> &XenHost {
        &self.xen
    }
}

impl HostController for XenVms {
    type VmId = String;

    fn list_vms(&self) -> Result<Vec<String>, HostError> {
        Ok(self
            .doms
            .iter()
            .filter(|(_, d)| d.is_some())
            .map(|(n, _)| n.clone())
            .collect())
    }

    fn set_cpu(&mut self, vm: &String, cpu: CpuSetting) -> Result<Outcome, HostError> {
        let d = self.domain(vm)?;
        self.xen.set_cpu(&d, cpu)
    }

    fn cpu(&self, vm: &String) -> Result<CpuSetting, HostError> {
        self.xen.cpu(&self.domain(vm)?)
    }

    fn set_memory_target(
        &mut self,
        vm: &String,
        target: MemoryTarget,
    ) -> Result<Outcome, HostError> {
        let d = self.domain(vm)?;
        self.xen.set_memory_target(&d, target)
    }

    fn memory_target(&self, vm: &String) -> Result<Option<MemoryTarget>, HostError> {
        self.xen.memory_target(&self.domain(vm)?)
    }

    fn set_egress(&mut self, vm: &String, rate: Bandwidth) -> Result<Outcome, HostError> {
        let d = self.domain(vm)?;
        self.xen.set_egress(&d, rate)
    }

    fn egress_limit(&self, vm: &String) -> Result<Option<Bandwidth>, HostError> {
        self.xen.egress_limit(&self.domain(vm)?)
    }

    fn usage(&self, vm: &String) -> Result<VmUsage, HostError> {
        self.xen.usage(&self.domain(vm)?)
    }
}

impl Vms for XenVms {
    fn running(&self, vm: &str) -> Result<bool> {
        Ok(self.state(vm)?.is_running())
    }

    fn failure(&self, vm: &str) -> String {
        match self.state(vm) {
            Ok(s) => format!("Xen domain {s}"),
            Err(e) => format!("Xen domain state unreadable: {e}"),
        }
    }
}

/// Opens Xen and adopts this host's `[[vm]]` domains (the agent role).
///
/// ```no_run
/// let cfg = vibrad::config::Config::load(std::path::Path::new("/etc/vibrad/vibrad.toml"))?;
/// let host = vibrad::xen::agent_host(&cfg)?;
/// # Ok::<(), vibrad::Error>(())
/// ```
pub fn agent_host(cfg: &Config) -> Result<XenVms> {
    XenVms::adopt(
        cfg.vms
            .iter()
            .filter(|v| v.host == cfg.host)
            .map(|v| v.name.as_str()),
    )
}

/// Opens Xen and adopts this host's `[[dps.vm]]` domains (the dps role).
///
/// ```no_run
/// let cfg = vibrad::config::Config::load(std::path::Path::new("/etc/vibrad/dps.toml"))?;
/// let host = vibrad::xen::dps_host(&cfg)?;
/// # Ok::<(), vibrad::Error>(())
/// ```
pub fn dps_host(cfg: &Config) -> Result<XenVms> {
    XenVms::adopt(
        cfg.dps
            .iter()
            .flat_map(|d| d.vms.iter())
            .filter(|v| v.host == cfg.host)
            .map(|v| v.name.as_str()),
    )
}
