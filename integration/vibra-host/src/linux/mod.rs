//! The Linux backend: a VM is a cgroup (in each hierarchy that serves cpu, cpuacct and memory)
//! plus a network namespace joined to the host by a veth pair.
//!
//! Owns the VMs it creates and removes them (processes killed, cgroups, namespace and link
//! deleted) when dropped. It never touches a cgroup or namespace it did not create, except the
//! VMs it is told to adopt ([`LinuxHost::adopt_vm`]: another controller's, whose settings it
//! writes and reads but which it never kills or removes).
//!
//! Egress shaping: the tbf qdisc sits on the VM end of the veth (inside the namespace, set by
//! the host over an rtnetlink socket it opened in that namespace), because the VM's egress reaches the host end as *ingress*, where
//! Linux can only police (`act_police`, absent on some hosts such as this project's CI) and
//! not queue. The measurement is taken at the host: the host end's `rx_bytes`, as the
//! dissertation measured at the VMM (section 3.4.5). A process inside the VM cannot change
//! the qdisc unless it holds CAP_NET_ADMIN in that namespace.

pub(crate) mod cgroup;
pub(crate) mod net;
pub(crate) mod netlink;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::controller::{CpuSetting, HostController, Outcome, VmUsage};
use crate::error::{Error, Operation};
use crate::units::{Bandwidth, CpuCap, CpuWeight, MemoryTarget};
use cgroup::{CgroupLayout, Hierarchy, parse_u64, read, write};
use net::{LinkAddrs, NetnsSockets};

/// Longest VM name: the host end of its veth is the name plus `h`, and Linux interface names
/// hold 15 bytes.
pub const MAX_VM_NAME: usize = 14;

fn check_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() || name.len() > MAX_VM_NAME {
        Some("must be 1 to 14 bytes")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Some("only ASCII letters, digits, '-' and '_' are allowed")
    } else if name.starts_with('-') {
        Some("must not start with '-'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// How to create a VM: its name (used for its cgroups and namespace) and optional addresses.
///
/// ```
/// use std::net::Ipv4Addr;
/// use vibra_host::{LinkAddrs, VmSpec};
/// let link = LinkAddrs::new(Ipv4Addr::new(10, 213, 0, 1), Ipv4Addr::new(10, 213, 0, 2), 30).unwrap();
/// let spec = VmSpec::new("web-1").unwrap().with_link(link);
/// assert_eq!(spec.name(), "web-1");
/// assert!(VmSpec::new("a name with spaces").is_err());
/// assert!(VmSpec::new("much-too-long-name").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSpec {
    name: String,
    link: Option<LinkAddrs>,
}

impl VmSpec {
    /// A VM named `name`: 1 to 14 ASCII letters, digits, `-` or `_`, not starting with `-`.
    ///
    /// ```
    /// assert!(vibra_host::VmSpec::new("").is_err());
    /// ```
    pub fn new(name: &str) -> Result<Self, Error> {
        check_name(name)?;
        Ok(VmSpec {
            name: name.to_string(),
            link: None,
        })
    }

    /// Gives the link addresses (host end, VM end); without them the link has none.
    ///
    /// ```
    /// # use std::net::Ipv4Addr;
    /// let link = vibra_host::LinkAddrs::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 30).unwrap();
    /// assert_eq!(vibra_host::VmSpec::new("v").unwrap().with_link(link).link(), Some(link));
    /// ```
    pub fn with_link(mut self, link: LinkAddrs) -> Self {
        self.link = Some(link);
        self
    }

    /// The VM's name.
    ///
    /// ```
    /// assert_eq!(vibra_host::VmSpec::new("v").unwrap().name(), "v");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The link addresses, if any.
    ///
    /// ```
    /// assert_eq!(vibra_host::VmSpec::new("v").unwrap().link(), None);
    /// ```
    pub fn link(&self) -> Option<LinkAddrs> {
        self.link
    }
}

/// One VM's places on the host and the settings this controller last wrote.
#[derive(Debug)]
struct Vm {
    cpu_dir: PathBuf,
    cpuacct_dir: PathBuf,
    memory_dir: PathBuf,
    /// Every distinct cgroup directory of the VM (one per hierarchy).
    dirs: Vec<PathBuf>,
    host_if: String,
    cpu: Option<CpuSetting>,
    memory: Option<MemoryTarget>,
    egress: Option<Bandwidth>,
    /// Adopted ([`LinuxHost::adopt_vm`]): someone else's, never killed or removed by us.
    adopted: bool,
}

/// A Linux host: VMs are cgroups plus network namespaces. Needs root.
///
/// Not `Sync`-shared by design: one controller owns a host's settings (`&mut self` setters).
/// Dropping it removes every VM it created.
///
/// ```no_run
/// use vibra_host::{CpuSetting, CpuWeight, HostController, LinuxHost, MemoryTarget, VmSpec};
/// let mut host = LinuxHost::new("vibra-example")?;
/// let vm = host.create_vm(&VmSpec::new("example-1")?)?;
/// host.attach(&vm, std::process::id())?; // this process now runs inside the VM
/// host.set_memory_target(&vm, MemoryTarget::from_mib(256)?)?;
/// # Ok::<(), vibra_host::Error>(())
/// ```
#[derive(Debug)]
pub struct LinuxHost {
    layout: CgroupLayout,
    /// The parent cgroup directory in each hierarchy, created by [`LinuxHost::new`].
    parents: Vec<(Hierarchy, PathBuf)>,
    vms: BTreeMap<String, Vm>,
    /// One rtnetlink socket per VM namespace, kept between calls (a mutex because reading a
    /// limit back takes `&self`).
    netns: Mutex<NetnsSockets>,
}

impl LinuxHost {
    /// Detects the cgroup layout and creates the parent cgroup `parent` (a name as for VMs,
    /// up to 64 bytes) in each hierarchy in use; VMs are its children.
    ///
    /// ```no_run
    /// let host = vibra_host::LinuxHost::new("vibra-agent")?;
    /// println!("{}", host.layout());
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn new(parent: &str) -> Result<Self, Error> {
        if parent.is_empty()
            || parent.len() > 64
            || !parent
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::InvalidName {
                name: parent.to_string(),
                reason: "parent cgroup: 1 to 64 ASCII letters, digits, '-' or '_'",
            });
        }
        let layout = CgroupLayout::detect()?;
        let mut host = LinuxHost {
            layout: layout.clone(),
            parents: Vec::new(),
            vms: BTreeMap::new(),
            netns: Mutex::new(NetnsSockets::default()),
        };
        for h in layout.hierarchies() {
            let dir = h.root().join(parent);
            if let Err(source) = std::fs::create_dir(&dir)
                && source.kind() != std::io::ErrorKind::AlreadyExists
            {
                return Err(Error::Io {
                    vm: parent.to_string(),
                    op: Operation::CreateVm,
                    path: dir.display().to_string(),
                    source,
                });
            }
            host.parents.push((h.clone(), dir.clone()));
            if let Hierarchy::V2(root) = h {
                for c in ["cpu", "memory"] {
                    let serves =
                        (c == "cpu" && layout.cpu == *h) || (c == "memory" && layout.memory == *h);
                    if serves {
                        cgroup::enable_v2_controller(parent, root, c)?;
                        cgroup::enable_v2_controller(parent, &dir, c)?;
                    }
                }
            }
        }
        Ok(host)
    }

    /// The cgroup layout in use.
    ///
    /// ```no_run
    /// let host = vibra_host::LinuxHost::new("vibra-layout")?;
    /// assert!(host.layout().to_string().contains("cpu:"));
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn layout(&self) -> &CgroupLayout {
        &self.layout
    }

    fn parent_dir<'a>(&'a self, h: &'a Hierarchy) -> &'a Path {
        // Every hierarchy of the layout got a parent in `new`.
        self.parents
            .iter()
            .find(|(p, _)| p == h)
            .map(|(_, d)| d.as_path())
            .unwrap_or(h.root())
    }

    /// Creates a VM: its cgroups, its namespace (named like the VM) and its veth link (`<name>h`
    /// in the host, `eth0` inside). On error nothing of it is left behind.
    ///
    /// ```no_run
    /// # use vibra_host::{LinuxHost, VmSpec};
    /// let mut host = LinuxHost::new("vibra-create")?;
    /// let vm = host.create_vm(&VmSpec::new("create-1")?)?;
    /// assert_eq!(vm, "create-1");
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn create_vm(&mut self, spec: &VmSpec) -> Result<String, Error> {
        let name = spec.name.clone();
        if self.vms.contains_key(&name) {
            return Err(Error::VmExists { vm: name });
        }
        let cpu_dir = self.parent_dir(&self.layout.cpu).join(&name);
        let cpuacct_dir = self.parent_dir(&self.layout.cpuacct).join(&name);
        let memory_dir = self.parent_dir(&self.layout.memory).join(&name);
        let mut dirs: Vec<PathBuf> = Vec::with_capacity(3);
        for d in [&cpu_dir, &cpuacct_dir, &memory_dir] {
            if !dirs.contains(d) {
                dirs.push(d.clone());
            }
        }
        let vm = Vm {
            cpu_dir,
            cpuacct_dir,
            memory_dir,
            dirs,
            host_if: format!("{name}h"),
            cpu: None,
            memory: None,
            egress: None,
            adopted: false,
        };
        let made = (|| {
            for d in &vm.dirs {
                std::fs::create_dir(d).map_err(|source| match source.kind() {
                    std::io::ErrorKind::AlreadyExists => Error::VmExists { vm: name.clone() },
                    _ => Error::Io {
                        vm: name.clone(),
                        op: Operation::CreateVm,
                        path: d.display().to_string(),
                        source,
                    },
                })?;
            }
            if let Hierarchy::V1(_) = self.layout.cpu {
                write(
                    &name,
                    Operation::CreateVm,
                    &vm.cpu_dir.join("cpu.cfs_period_us"),
                    &CpuCap::CFS_PERIOD_US.to_string(),
                )?;
            }
            net::create_link(&name, &name, &vm.host_if, spec.link)
        })();
        if let Err(e) = made {
            // Only remove what this call made: an existing directory is someone else's.
            if !matches!(e, Error::VmExists { .. }) {
                for d in &vm.dirs {
                    let _ = std::fs::remove_dir(d);
                }
            }
            return Err(e);
        }
        self.vms.insert(name.clone(), vm);
        Ok(name)
    }

    /// Forgets what this controller last wrote for `vm`, so that the next setting of each kind
    /// is written to the kernel even if it equals that value. For a VM whose settings another
    /// process may have changed since (one that adopted it, [`LinuxHost::adopt_vm`]): without
    /// this, setting the old value again is [`Outcome::Unchanged`](crate::Outcome) and the
    /// other process's value stays in force. Error: an unknown VM ([`Error::UnknownVm`]).
    ///
    /// ```no_run
    /// # use vibra_host::{HostController, LinuxHost, MemoryTarget, Outcome, VmSpec};
    /// let mut host = LinuxHost::new("vibra-forget")?;
    /// let vm = host.create_vm(&VmSpec::new("forget-1")?)?;
    /// let mem = MemoryTarget::from_mib(64)?;
    /// host.set_memory_target(&vm, mem)?;
    /// // ... another process changes forget-1's memory limit ...
    /// host.forget_settings(&vm)?;
    /// assert_eq!(host.set_memory_target(&vm, mem)?, Outcome::Written);
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn forget_settings(&mut self, vm: &str) -> Result<(), Error> {
        let v = self.vm_mut(vm, Operation::SetMemory)?;
        v.cpu = None;
        v.memory = None;
        v.egress = None;
        Ok(())
    }

    /// Adopts a VM that another controller created under the same parent cgroup (for example
    /// another process's `LinuxHost::new(parent)` and [`LinuxHost::create_vm`]): its cgroups
    /// `<parent>/<name>`, its namespace `/run/netns/<name>` and the host end `<name>h` of its
    /// link must all exist. This controller then reads and sets it like one of its own (the
    /// first setting of each kind is always written: it knows nothing of what the creator
    /// wrote), but never kills its processes nor removes it: [`LinuxHost::destroy_vm`] and
    /// dropping the controller only forget it, and a controller that adopted a VM leaves the
    /// parent cgroup in place (its creator removes it). Errors: a bad or already known name
    /// ([`Error::VmExists`]), or a missing part ([`Error::Io`] naming the path).
    ///
    /// ```no_run
    /// # use vibra_host::{HostController, LinuxHost, MemoryTarget, VmSpec};
    /// let mut owner = LinuxHost::new("vibra-adopt")?;
    /// owner.create_vm(&VmSpec::new("adopt-1")?)?;
    /// let mut agent = LinuxHost::new("vibra-adopt")?;
    /// let vm = agent.adopt_vm("adopt-1")?;
    /// agent.set_memory_target(&vm, MemoryTarget::from_mib(64)?)?;
    /// drop(agent); // adopt-1 is untouched
    /// assert_eq!(owner.memory_target(&vm)?, Some(MemoryTarget::from_mib(64)?));
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn adopt_vm(&mut self, name: &str) -> Result<String, Error> {
        check_name(name)?;
        if self.vms.contains_key(name) {
            return Err(Error::VmExists {
                vm: name.to_string(),
            });
        }
        let cpu_dir = self.parent_dir(&self.layout.cpu).join(name);
        let cpuacct_dir = self.parent_dir(&self.layout.cpuacct).join(name);
        let memory_dir = self.parent_dir(&self.layout.memory).join(name);
        let mut dirs: Vec<PathBuf> = Vec::with_capacity(3);
        for d in [&cpu_dir, &cpuacct_dir, &memory_dir] {
            if !dirs.contains(d) {
                dirs.push(d.clone());
            }
        }
        let host_if = format!("{name}h");
        let netns = Path::new("/run/netns").join(name);
        let sys_if = Path::new("/sys/class/net").join(&host_if);
        for p in dirs
            .iter()
            .map(PathBuf::as_path)
            .chain([netns.as_path(), sys_if.as_path()])
        {
            if let Err(source) = std::fs::metadata(p) {
                return Err(Error::Io {
                    vm: name.to_string(),
                    op: Operation::CreateVm,
                    path: p.display().to_string(),
                    source,
                });
            }
        }
        let vm = Vm {
            cpu_dir,
            cpuacct_dir,
            memory_dir,
            dirs,
            host_if,
            cpu: None,
            memory: None,
            egress: None,
            adopted: true,
        };
        self.vms.insert(name.to_string(), vm);
        Ok(name.to_string())
    }

    /// The namespace sockets (a panic elsewhere while holding them leaves nothing half-done
    /// in them, so a poisoned lock is taken as it is).
    fn netns_sockets(&self) -> MutexGuard<'_, NetnsSockets> {
        self.netns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn vm(&self, name: &str, op: Operation) -> Result<&Vm, Error> {
        self.vms.get(name).ok_or_else(|| Error::UnknownVm {
            vm: name.to_string(),
            op,
        })
    }

    fn vm_mut(&mut self, name: &str, op: Operation) -> Result<&mut Vm, Error> {
        self.vms.get_mut(name).ok_or_else(|| Error::UnknownVm {
            vm: name.to_string(),
            op,
        })
    }

    /// Moves process `pid` (all its threads) into the VM's cgroups.
    ///
    /// ```no_run
    /// # use vibra_host::{LinuxHost, VmSpec};
    /// let mut host = LinuxHost::new("vibra-attach")?;
    /// let vm = host.create_vm(&VmSpec::new("attach-1")?)?;
    /// let child = std::process::Command::new("sleep").arg("1").spawn().unwrap();
    /// host.attach(&vm, child.id())?;
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn attach(&self, vm: &str, pid: u32) -> Result<(), Error> {
        let v = self.vm(vm, Operation::Attach)?;
        for d in &v.dirs {
            write(
                vm,
                Operation::Attach,
                &d.join("cgroup.procs"),
                &pid.to_string(),
            )?;
        }
        Ok(())
    }

    /// The VM's network namespace name (for `ip netns exec`).
    ///
    /// ```no_run
    /// # use vibra_host::{LinuxHost, VmSpec};
    /// let mut host = LinuxHost::new("vibra-ns")?;
    /// let vm = host.create_vm(&VmSpec::new("ns-1")?)?;
    /// assert_eq!(host.netns(&vm)?, "ns-1");
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn netns(&self, vm: &str) -> Result<&str, Error> {
        self.vms
            .get_key_value(vm)
            .map(|(k, _)| k.as_str())
            .ok_or_else(|| Error::UnknownVm {
                vm: vm.to_string(),
                op: Operation::Attach,
            })
    }

    /// The host end of the VM's veth (where its egress is counted).
    ///
    /// ```no_run
    /// # use vibra_host::{LinuxHost, VmSpec};
    /// let mut host = LinuxHost::new("vibra-if")?;
    /// let vm = host.create_vm(&VmSpec::new("if-1")?)?;
    /// assert_eq!(host.host_interface(&vm)?, "if-1h");
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn host_interface(&self, vm: &str) -> Result<&str, Error> {
        Ok(&self.vm(vm, Operation::ReadUsage)?.host_if)
    }

    /// Whether the VM still runs: its cgroups hold at least one process and its network
    /// namespace still exists (`/run/netns/<name>`). A VM for which this is `false` has failed
    /// (vibrad compensates for it, SPEC section 4). Errors only when a cgroup file exists but
    /// cannot be read.
    ///
    /// ```no_run
    /// # use vibra_host::{LinuxHost, VmSpec};
    /// let mut host = LinuxHost::new("vibra-running")?;
    /// let vm = host.create_vm(&VmSpec::new("running-1")?)?;
    /// assert!(!host.is_running(&vm)?); // no process attached yet
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn is_running(&self, vm: &str) -> Result<bool, Error> {
        let op = Operation::ReadUsage;
        let v = self.vm(vm, op)?;
        if !Path::new("/run/netns").join(vm).exists() {
            return Ok(false);
        }
        let procs_path = v.memory_dir.join("cgroup.procs");
        match std::fs::read_to_string(&procs_path) {
            Ok(p) => Ok(p.split_whitespace().next().is_some()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(Error::Io {
                vm: vm.to_string(),
                op,
                path: procs_path.display().to_string(),
                source,
            }),
        }
    }

    /// Kills every process in the VM, then removes its cgroups, namespace and link; an adopted
    /// VM ([`LinuxHost::adopt_vm`]) is only forgotten.
    ///
    /// ```no_run
    /// # use vibra_host::{HostController, LinuxHost, VmSpec};
    /// let mut host = LinuxHost::new("vibra-destroy")?;
    /// let vm = host.create_vm(&VmSpec::new("destroy-1")?)?;
    /// host.destroy_vm(&vm)?;
    /// assert!(host.list_vms()?.is_empty());
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    pub fn destroy_vm(&mut self, vm: &str) -> Result<(), Error> {
        let v = self.vm(vm, Operation::DestroyVm)?;
        if v.adopted {
            // Someone else's: forget it (and close our socket in its namespace), touch nothing.
            self.netns_sockets().close(vm);
            self.vms.remove(vm);
            return Ok(());
        }
        for d in &v.dirs {
            kill_all(vm, d)?;
        }
        for d in &v.dirs {
            if let Err(source) = std::fs::remove_dir(d)
                && source.kind() != std::io::ErrorKind::NotFound
            {
                return Err(Error::Io {
                    vm: vm.to_string(),
                    op: Operation::DestroyVm,
                    path: d.display().to_string(),
                    source,
                });
            }
        }
        // The cached socket would keep the namespace (and the veth in it) alive.
        self.netns_sockets().close(vm);
        net::destroy_link(vm, vm, &v.host_if)?;
        self.vms.remove(vm);
        Ok(())
    }

    fn read_cpu(&self, vm: &str, v: &Vm) -> Result<CpuSetting, Error> {
        let op = Operation::ReadUsage;
        match &self.layout.cpu {
            Hierarchy::V1(_) => {
                let shares = parse_u64(
                    vm,
                    op,
                    "cpu.shares",
                    &read(vm, op, &v.cpu_dir.join("cpu.shares"))?,
                )?;
                let quota_text = read(vm, op, &v.cpu_dir.join("cpu.cfs_quota_us"))?;
                let quota: i64 = quota_text.trim().parse().map_err(|_| Error::Parse {
                    vm: vm.to_string(),
                    op,
                    what: "cpu.cfs_quota_us",
                    text: quota_text.clone(),
                })?;
                let period = parse_u64(
                    vm,
                    op,
                    "cpu.cfs_period_us",
                    &read(vm, op, &v.cpu_dir.join("cpu.cfs_period_us"))?,
                )?;
                Ok(CpuSetting {
                    weight: CpuWeight::from_cgroup_v1_shares(shares),
                    cap: CpuCap::from_cfs(quota, period),
                })
            }
            Hierarchy::V2(_) => {
                let weight = parse_u64(
                    vm,
                    op,
                    "cpu.weight",
                    &read(vm, op, &v.cpu_dir.join("cpu.weight"))?,
                )?;
                let max = read(vm, op, &v.cpu_dir.join("cpu.max"))?;
                let mut it = max.split_whitespace();
                let (quota, period) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
                let period: u64 = period.parse().map_err(|_| Error::Parse {
                    vm: vm.to_string(),
                    op,
                    what: "cpu.max",
                    text: max.clone(),
                })?;
                let cap = match quota {
                    "max" => None,
                    q => CpuCap::from_cfs(
                        q.parse().map_err(|_| Error::Parse {
                            vm: vm.to_string(),
                            op,
                            what: "cpu.max",
                            text: max.clone(),
                        })?,
                        period,
                    ),
                };
                Ok(CpuSetting {
                    weight: CpuWeight::from_cgroup_v2_weight(weight),
                    cap,
                })
            }
        }
    }
}

/// A CPU setting as the control files of `h` hold it: (weight file, value, cap file, value).
struct CpuFiles {
    weight_file: &'static str,
    weight: String,
    cap_file: &'static str,
    cap: String,
}

fn cpu_files(h: &Hierarchy, cpu: CpuSetting) -> CpuFiles {
    match h {
        Hierarchy::V1(_) => CpuFiles {
            weight_file: "cpu.shares",
            weight: cpu.weight.cgroup_v1_shares().to_string(),
            cap_file: "cpu.cfs_quota_us",
            cap: cpu
                .cap
                .map_or("-1".to_string(), |c| c.cfs_quota_us().to_string()),
        },
        Hierarchy::V2(_) => CpuFiles {
            weight_file: "cpu.weight",
            weight: cpu.weight.cgroup_v2_weight().to_string(),
            cap_file: "cpu.max",
            cap: format!(
                "{} {}",
                cpu.cap
                    .map_or("max".to_string(), |c| c.cfs_quota_us().to_string()),
                CpuCap::CFS_PERIOD_US
            ),
        },
    }
}

/// Kills every process of cgroup directory `dir` and waits (up to 5 s) until it is empty.
fn kill_all(vm: &str, dir: &Path) -> Result<(), Error> {
    let op = Operation::DestroyVm;
    let procs_path = dir.join("cgroup.procs");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let procs = match std::fs::read_to_string(&procs_path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(Error::Io {
                    vm: vm.to_string(),
                    op,
                    path: procs_path.display().to_string(),
                    source,
                });
            }
        };
        let pids: Vec<&str> = procs.split_whitespace().collect();
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Command {
                vm: vm.to_string(),
                op,
                command: format!("kill -KILL {}", pids.join(" ")),
                stderr: "processes still present after 5 s".to_string(),
            });
        }
        let kill = dir.join("cgroup.kill");
        if kill.exists() {
            write(vm, op, &kill, "1")?;
        } else {
            let mut args = vec!["-KILL"];
            args.extend(pids.iter().copied());
            // A process may exit between the read and the kill: that failure is harmless.
            let _ = net::run(vm, op, "kill", &args);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for LinuxHost {
    fn drop(&mut self) {
        let adopted = self.vms.values().any(|v| v.adopted);
        let names: Vec<String> = self.vms.keys().cloned().collect();
        for name in names {
            if let Err(e) = self.destroy_vm(&name) {
                eprintln!("vibra-host: cleanup of VM {name} failed: {e}");
            }
        }
        // The creator of adopted VMs owns the parent they live in.
        for (_, dir) in self.parents.iter().filter(|_| !adopted) {
            if let Err(e) = std::fs::remove_dir(dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                eprintln!("vibra-host: cleanup of {} failed: {e}", dir.display());
            }
        }
    }
}

impl HostController for LinuxHost {
    type VmId = String;

    fn list_vms(&self) -> Result<Vec<String>, Error> {
        Ok(self.vms.keys().cloned().collect())
    }

    fn set_cpu(&mut self, vm: &String, cpu: CpuSetting) -> Result<Outcome, Error> {
        let op = Operation::SetCpu;
        let v = self.vm(vm, op)?;
        if v.cpu == Some(cpu) {
            return Ok(Outcome::Unchanged);
        }
        let dir = v.cpu_dir.clone();
        let new = cpu_files(&self.layout.cpu, cpu);
        // What this controller last wrote is in force (as for the unchanged check above): only
        // the file whose value changes is written, so a weight change is one write.
        let prev = v.cpu.map(|p| cpu_files(&self.layout.cpu, p));
        let write_weight = prev.as_ref().is_none_or(|p| p.weight != new.weight);
        let write_cap = prev.as_ref().is_none_or(|p| p.cap != new.cap);
        // For undoing the weight if the cap cannot be written: no half update.
        let old_weight = match (&prev, write_weight && write_cap) {
            (_, false) => None,
            (Some(p), true) => Some(p.weight.clone()),
            (None, true) => Some(read(vm, op, &dir.join(new.weight_file))?.trim().to_string()),
        };
        if write_weight {
            write(vm, op, &dir.join(new.weight_file), &new.weight)?;
        }
        if write_cap && let Err(e) = write(vm, op, &dir.join(new.cap_file), &new.cap) {
            if let Some(old) = old_weight {
                let _ = write(vm, op, &dir.join(new.weight_file), &old);
            }
            return Err(e);
        }
        self.vm_mut(vm, op)?.cpu = Some(cpu);
        Ok(Outcome::Written)
    }

    fn cpu(&self, vm: &String) -> Result<CpuSetting, Error> {
        self.read_cpu(vm, self.vm(vm, Operation::ReadUsage)?)
    }

    fn set_memory_target(&mut self, vm: &String, target: MemoryTarget) -> Result<Outcome, Error> {
        let op = Operation::SetMemory;
        let v = self.vm(vm, op)?;
        if v.memory == Some(target) {
            return Ok(Outcome::Unchanged);
        }
        let file = match self.layout.memory {
            Hierarchy::V1(_) => "memory.limit_in_bytes",
            Hierarchy::V2(_) => "memory.max",
        };
        write(
            vm,
            op,
            &v.memory_dir.join(file),
            &target.bytes().to_string(),
        )?;
        self.vm_mut(vm, op)?.memory = Some(target);
        Ok(Outcome::Written)
    }

    fn memory_target(&self, vm: &String) -> Result<Option<MemoryTarget>, Error> {
        let op = Operation::ReadUsage;
        let v = self.vm(vm, op)?;
        let (file, unlimited_above) = match self.layout.memory {
            // v1 reports "no limit" as the largest page-aligned i64.
            Hierarchy::V1(_) => (
                "memory.limit_in_bytes",
                (i64::MAX as u64) - crate::units::PAGE_BYTES * 2,
            ),
            Hierarchy::V2(_) => ("memory.max", u64::MAX),
        };
        let text = read(vm, op, &v.memory_dir.join(file))?;
        if text.trim() == "max" {
            return Ok(None);
        }
        let bytes = parse_u64(vm, op, file, &text)?;
        if bytes >= unlimited_above {
            return Ok(None);
        }
        MemoryTarget::from_bytes(bytes).map(Some)
    }

    fn set_egress(&mut self, vm: &String, rate: Bandwidth) -> Result<Outcome, Error> {
        let op = Operation::SetEgress;
        let v = self.vm(vm, op)?;
        if v.egress == Some(rate) {
            return Ok(Outcome::Unchanged);
        }
        {
            let mut sockets = self.netns_sockets();
            net::shape(vm, sockets.get(vm, op, vm)?, net::VM_IF, rate)?;
        }
        self.vm_mut(vm, op)?.egress = Some(rate);
        Ok(Outcome::Written)
    }

    fn egress_limit(&self, vm: &String) -> Result<Option<Bandwidth>, Error> {
        let op = Operation::ReadUsage;
        self.vm(vm, op)?;
        let mut sockets = self.netns_sockets();
        net::shaped_rate(vm, sockets.get(vm, op, vm)?, net::VM_IF)
    }

    fn usage(&self, vm: &String) -> Result<VmUsage, Error> {
        let op = Operation::ReadUsage;
        let v = self.vm(vm, op)?;
        let cpu_time = match self.layout.cpuacct {
            Hierarchy::V1(_) => Duration::from_nanos(parse_u64(
                vm,
                op,
                "cpuacct.usage",
                &read(vm, op, &v.cpuacct_dir.join("cpuacct.usage"))?,
            )?),
            Hierarchy::V2(_) => {
                let stat = read(vm, op, &v.cpuacct_dir.join("cpu.stat"))?;
                let usec = stat
                    .lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|n| n.trim().parse().ok())
                    .ok_or_else(|| Error::Parse {
                        vm: vm.clone(),
                        op,
                        what: "cpu.stat usage_usec",
                        text: stat.clone(),
                    })?;
                Duration::from_micros(usec)
            }
        };
        let mem_file = match self.layout.memory {
            Hierarchy::V1(_) => "memory.usage_in_bytes",
            Hierarchy::V2(_) => "memory.current",
        };
        let memory_bytes = parse_u64(
            vm,
            op,
            mem_file,
            &read(vm, op, &v.memory_dir.join(mem_file))?,
        )?;
        let egress_bytes = net::counter(vm, &v.host_if, "rx_bytes")?;
        Ok(VmUsage {
            cpu_time,
            memory_bytes,
            egress_bytes,
        })
    }
}
