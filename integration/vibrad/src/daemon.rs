//! The daemon: the agent role's loop over a host controller and a directory. Kernel and
//! process I/O stays here and in the controller; the period's decisions are in `control.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vibra_alloc::ResourceKind;
use vibra_host::{HostController, LinuxHost, VmSpec, VmUsage};

use crate::config::{Config, DirectoryConfig};
use crate::control::{HostKind, Leader};
use crate::directory::{Directory, Record};
use crate::error::{Error, Result};
use crate::kv::{EtcdKv, Kv, MemKv, timed};
use crate::metrics::Metrics;

/// A host controller vibrad can run on: names VMs by string and tells whether a VM still runs.
///
/// ```no_run
/// use vibrad::daemon::Vms;
/// let host = vibra_host::LinuxHost::new("vibrad-doc-vms")?;
/// assert!(host.running("not-created").is_err());
/// # Ok::<(), vibra_host::Error>(())
/// ```
pub trait Vms: HostController<VmId = String> {
    /// Whether the VM runs (Linux: its cgroup holds a process and its namespace exists).
    ///
    /// ```no_run
    /// use vibrad::daemon::Vms;
    /// let mut host = vibra_host::LinuxHost::new("vibrad-doc-run")?;
    /// let vm = host.create_vm(&vibra_host::VmSpec::new("doc-run")?)?;
    /// assert!(!host.running(&vm).unwrap()); // no process yet
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    fn running(&self, vm: &str) -> Result<bool>;

    /// Why a VM that is not running counts as failed, for the log (the platform's words;
    /// by default "not running").
    ///
    /// ```no_run
    /// use vibrad::daemon::Vms;
    /// let host = vibra_host::LinuxHost::new("vibrad-doc-why")?;
    /// assert_eq!(host.failure("any"), "no process in its cgroup, or no namespace");
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    fn failure(&self, vm: &str) -> String {
        let _ = vm;
        "not running".to_string()
    }
}

impl Vms for LinuxHost {
    fn running(&self, vm: &str) -> Result<bool> {
        Ok(self.is_running(vm)?)
    }

    fn failure(&self, _vm: &str) -> String {
        "no process in its cgroup, or no namespace".to_string()
    }
}

/// Flags the signal handlers set and the loop polls between periods.
///
/// ```
/// let s = vibrad::daemon::Signals::default();
/// assert!(!s.stop.load(std::sync::atomic::Ordering::SeqCst));
/// ```
#[derive(Debug, Default, Clone)]
pub struct Signals {
    /// SIGTERM/SIGINT: stop after the current period.
    pub stop: Arc<AtomicBool>,
    /// SIGHUP: reload the configuration before the next period.
    pub reload: Arc<AtomicBool>,
}

/// The store a configuration asks for.
///
/// ```
/// let cfg = vibrad::config::Config::parse(vibrad::config::MINIMAL).unwrap();
/// assert_eq!(vibrad::daemon::open_directory(&cfg).prefix(), "/vibra");
/// ```
pub fn open_directory(cfg: &Config) -> Directory {
    let kv: Arc<dyn Kv> = match &cfg.directory {
        DirectoryConfig::Memory => Arc::new(MemKv::new()),
        DirectoryConfig::Etcd { endpoints, .. } => {
            Arc::new(EtcdKv::new(endpoints.clone(), Duration::from_secs(2)))
        }
    };
    Directory::new(kv, &cfg.prefix)
}

/// One host's agent.
///
/// ```no_run
/// use vibrad::{config::Config, daemon::*};
/// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
/// let (host, children) = linux_host(&cfg)?;
/// let mut d = Daemon::new(cfg.clone(), host, open_directory(&cfg), false)?;
/// for c in children { d.adopt_child(c); }
/// d.step(true)?;
/// # Ok::<(), vibrad::Error>(())
/// ```
pub struct Daemon<H: Vms> {
    cfg: Config,
    config_path: Option<std::path::PathBuf>,
    dir: Directory,
    host: H,
    lease: Option<i64>,
    leaders: BTreeMap<String, Leader>,
    kinds: BTreeMap<(String, ResourceKind), HostKind>,
    last_usage: BTreeMap<String, (Instant, VmUsage)>,
    failed: BTreeSet<String>,
    seen_hosts: BTreeSet<String>,
    children: Vec<Child>,
    metrics: Arc<Metrics>,
    start: Instant,
    dry_run: bool,
}

impl<H: Vms> Daemon<H> {
    /// A daemon for `cfg` on `host` (whose VMs, this host's VMs of the configuration, must
    /// exist), with `dir` as directory. Publishes the configuration and registers the host.
    ///
    /// ```no_run
    /// use vibrad::{config::Config, daemon::*};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let (host, children) = linux_host(&cfg)?;
    /// let mut d = Daemon::new(cfg.clone(), host, open_directory(&cfg), false)?;
    /// for c in children { d.adopt_child(c); }
    /// d.step(true)?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn new(cfg: Config, host: H, dir: Directory, dry_run: bool) -> Result<Self> {
        let mut d = Daemon {
            cfg,
            config_path: None,
            dir,
            host,
            lease: None,
            leaders: BTreeMap::new(),
            kinds: BTreeMap::new(),
            last_usage: BTreeMap::new(),
            failed: BTreeSet::new(),
            seen_hosts: BTreeSet::new(),
            children: Vec::new(),
            metrics: Arc::new(Metrics::default()),
            start: Instant::now(),
            dry_run,
        };
        d.dir.publish(&d.cfg)?;
        // This host's VMs are running now (created at start): any failure marker is from an
        // earlier life, and clearing it makes the leader count them as replacements.
        for (vm, customer) in d.my_vms() {
            d.dir.clear_failed(&customer, &vm)?;
        }
        d.register()?;
        Ok(d)
    }

    fn register(&mut self) -> Result<()> {
        let ttl = match &self.cfg.directory {
            DirectoryConfig::Memory => Duration::from_secs(3600),
            DirectoryConfig::Etcd { lease_ttl, .. } => *lease_ttl,
        };
        self.lease = Some(self.dir.register_host(&self.cfg.host, ttl)?);
        Ok(())
    }

    /// The metrics registry.
    ///
    /// ```no_run
    /// use vibrad::{config::Config, daemon::*};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let (host, children) = linux_host(&cfg)?;
    /// let mut d = Daemon::new(cfg.clone(), host, open_directory(&cfg), false)?;
    /// for c in children { d.adopt_child(c); }
    /// d.step(true)?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    #[must_use]
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The host controller.
    ///
    /// ```no_run
    /// use vibrad::{config::Config, daemon::*};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let (host, children) = linux_host(&cfg)?;
    /// let mut d = Daemon::new(cfg.clone(), host, open_directory(&cfg), false)?;
    /// for c in children { d.adopt_child(c); }
    /// d.step(true)?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn host_mut(&mut self) -> &mut H {
        &mut self.host
    }

    /// Remembers the file to re-read on SIGHUP.
    ///
    /// ```no_run
    /// use vibrad::{config::Config, daemon::*};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let (host, children) = linux_host(&cfg)?;
    /// let mut d = Daemon::new(cfg.clone(), host, open_directory(&cfg), false)?;
    /// for c in children { d.adopt_child(c); }
    /// d.step(true)?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn set_config_path(&mut self, p: std::path::PathBuf) {
        self.config_path = Some(p);
    }

    /// Keeps a process started inside a VM, to reap it.
    ///
    /// ```no_run
    /// use vibrad::{config::Config, daemon::*};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let (host, children) = linux_host(&cfg)?;
    /// let mut d = Daemon::new(cfg.clone(), host, open_directory(&cfg), false)?;
    /// for c in children { d.adopt_child(c); }
    /// d.step(true)?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn adopt_child(&mut self, c: Child) {
        self.children.push(c);
    }

    fn my_vms(&self) -> Vec<(String, String)> {
        self.cfg
            .vms
            .iter()
            .filter(|v| v.host == self.cfg.host)
            .map(|v| (v.name.clone(), v.customer.clone()))
            .collect()
    }

    fn observe(&mut self) -> Result<()> {
        for c in &mut self.children {
            let _ = c.try_wait();
        }
        let now = Instant::now();
        for (vm, customer) in self.my_vms() {
            if self.failed.contains(&vm) {
                continue;
            }
            let running = match self.host.running(&vm) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(vm, error = %e, "liveness check failed; retried next period");
                    continue;
                }
            };
            if !running {
                let reason = self.host.failure(&vm);
                tracing::warn!(vm, customer, reason, "VM failed");
                self.dir.mark_failed(&customer, &vm)?;
                self.failed.insert(vm.clone());
                self.metrics
                    .add("vibrad_vm_failures_total", &[("vm", &vm)], 1.0);
                continue;
            }
            let usage = match self.host.usage(&vm) {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!(vm, error = %e, "usage read failed; retried next period");
                    continue;
                }
            };
            let Some((then, before)) = self.last_usage.insert(vm.clone(), (now, usage)) else {
                continue;
            };
            let dt = now.duration_since(then).as_secs_f64().max(1e-3);
            let Some(c) = self.cfg.customers.iter().find(|c| c.name == customer) else {
                continue;
            };
            let mut rates = BTreeMap::new();
            for k in &c.kinds {
                let per = k.unit_size as f64;
                let u = match k.kind {
                    ResourceKind::Bandwidth => {
                        usage.egress_bytes.saturating_sub(before.egress_bytes) as f64 / dt / per
                    }
                    ResourceKind::Memory => usage.memory_bytes as f64 / per,
                    _ => usage.cpu_time.saturating_sub(before.cpu_time).as_secs_f64() / dt * per,
                };
                rates.insert(k.kind.to_string(), u);
            }
            self.dir.report_usage(&customer, &vm, &rates, self.lease)?;
        }
        Ok(())
    }

    /// One step: keep the lease; when `observe` (once per period) read and publish usage and
    /// liveness; lead the customers this host leads; apply the grants for this host's VMs.
    ///
    /// ```no_run
    /// use vibrad::{config::Config, daemon::*};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let (host, children) = linux_host(&cfg)?;
    /// let mut d = Daemon::new(cfg.clone(), host, open_directory(&cfg), false)?;
    /// for c in children { d.adopt_child(c); }
    /// d.step(true)?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn step(&mut self, observe: bool) -> Result<()> {
        if let Some(lease) = self.lease {
            let (r, lat) = timed(|| self.dir.kv().keep_alive(lease));
            self.metrics.set(
                "vibrad_directory_latency_seconds",
                &[("op", "keepalive")],
                lat.as_secs_f64(),
            );
            match r {
                Ok(()) => {}
                Err(Error::LeaseExpired(_)) => {
                    tracing::warn!("host lease expired; registering again");
                    self.register()?;
                }
                Err(e) => return Err(e),
            }
        }
        if observe {
            self.observe()?;
            self.metrics.add("vibrad_periods_total", &[], 1.0);
        }
        self.fence_lost_hosts()?;
        let now = self.start.elapsed();
        let customers = self.cfg.customers.clone();
        for c in &customers {
            if !self.dir.try_lead(&c.name, &self.cfg.host, self.lease)? {
                self.leaders.remove(&c.name);
                continue;
            }
            if !self.leaders.contains_key(&c.name) {
                let vms = self
                    .cfg
                    .vms_of(&c.name)
                    .iter()
                    .map(|v| v.name.clone())
                    .collect();
                let mut l = Leader::new(c, vms, &self.cfg.agent, &self.dir)?;
                l.set_dry_run(self.dry_run);
                tracing::info!(customer = c.name, "leading");
                self.leaders.insert(c.name.clone(), l);
            }
            let failed = self.dir.failed(&c.name)?;
            let usage = if observe {
                Some(self.dir.usage(&c.name)?)
            } else {
                None
            };
            let Some(leader) = self.leaders.get_mut(&c.name) else {
                continue;
            };
            let (r, lat) = timed(|| leader.step(&self.dir, now, usage.as_ref(), &failed));
            self.metrics.set(
                "vibrad_directory_latency_seconds",
                &[("op", "leader_step")],
                lat.as_secs_f64(),
            );
            let report = r?;
            for vm in &report.failed {
                tracing::info!(customer = c.name, vm, "compensated (SPEC 4)");
            }
            for vm in &report.replaced {
                tracing::info!(customer = c.name, vm, "replacement started");
            }
            for p in &report.plans {
                let kind = p.kind.to_string();
                self.metrics.add(
                    "vibrad_plan_changes_total",
                    &[("customer", &c.name), ("kind", &kind)],
                    p.plan.len() as f64,
                );
                if self.dry_run {
                    println!("dry-run plan {} {}: {:?}", c.name, kind, p.plan.changes());
                }
            }
            for k in &c.kinds {
                let kind = k.kind.to_string();
                for (vm, u) in leader.allocation(k)? {
                    self.metrics.set(
                        "vibrad_allocation_units",
                        &[("customer", &c.name), ("kind", &kind), ("vm", &vm)],
                        u as f64,
                    );
                }
                for (vm, d) in leader.demand(k)? {
                    self.metrics.set(
                        "vibrad_demand_units",
                        &[("customer", &c.name), ("kind", &kind), ("vm", &vm)],
                        d,
                    );
                }
            }
        }
        let mine = self.my_vms();
        for c in &customers {
            let vms: Vec<(String, String)> = mine
                .iter()
                .filter(|(_, cust)| *cust == c.name)
                .map(|(v, _)| (v.clone(), v.clone()))
                .collect();
            if vms.is_empty() {
                continue;
            }
            let alive: BTreeMap<String, bool> = vms
                .iter()
                .map(|(v, _)| (v.clone(), !self.failed.contains(v)))
                .collect();
            for k in &c.kinds {
                let hk = self
                    .kinds
                    .entry((c.name.clone(), k.kind.clone()))
                    .or_default();
                let step = hk.step(
                    &self.dir,
                    &c.name,
                    k,
                    &vms,
                    &alive,
                    &mut self.host,
                    self.dry_run,
                )?;
                self.metrics.add(
                    "vibrad_apply_writes_total",
                    &[("customer", &c.name)],
                    step.written as f64,
                );
                for (vm, e) in &step.errors {
                    tracing::warn!(customer = c.name, vm, error = %e, "apply failed; retried next step");
                    self.metrics.add(
                        "vibrad_apply_errors_total",
                        &[("customer", &c.name), ("vm", vm)],
                        1.0,
                    );
                }
            }
        }
        Ok(())
    }

    /// A host seen alive whose lease has expired: its VMs count as failed and their `applied/`
    /// entries drop to 0, so the next R VMs take their shares (SPEC 4). A lapsed lease is not
    /// proof that the VMs stopped: this is only safe once the host is fenced (its VMs killed),
    /// which the operator guarantees (README, "Fencing").
    fn fence_lost_hosts(&mut self) -> Result<()> {
        let live = self.dir.live_hosts()?;
        let lost: Vec<String> = self
            .seen_hosts
            .difference(&live)
            .filter(|h| **h != self.cfg.host)
            .cloned()
            .collect();
        self.seen_hosts.extend(live);
        for h in lost {
            tracing::warn!(
                host = h,
                "host lease expired: its VMs count as failed (the host must be fenced)"
            );
            for v in self.cfg.vms.iter().filter(|v| v.host == h) {
                self.dir.mark_failed(&v.customer, &v.name)?;
                if let Some(c) = self.cfg.customers.iter().find(|c| c.name == v.customer) {
                    for k in &c.kinds {
                        self.dir.release(&c.name, &k.kind, k.pool, &v.name)?;
                    }
                }
            }
            self.seen_hosts.remove(&h);
        }
        Ok(())
    }

    fn reload(&mut self) {
        let Some(path) = self.config_path.clone() else {
            return;
        };
        match Config::load(&path) {
            Ok(new) => {
                let mine_new: Vec<_> = new
                    .vms
                    .iter()
                    .filter(|v| v.host == new.host)
                    .cloned()
                    .collect();
                let mine_old: Vec<_> = self
                    .cfg
                    .vms
                    .iter()
                    .filter(|v| v.host == self.cfg.host)
                    .cloned()
                    .collect();
                if mine_new != mine_old
                    || new.host != self.cfg.host
                    || new.directory != self.cfg.directory
                {
                    tracing::error!(
                        "reload refused: this host's VMs, its name or the directory changed (restart vibrad for that); keeping the old configuration"
                    );
                    return;
                }
                if let Err(e) = self.dir.publish(&new) {
                    tracing::error!(error = %e, "reload: publishing failed; keeping the old configuration");
                    return;
                }
                self.cfg = new;
                self.leaders.clear();
                tracing::info!("configuration reloaded");
            }
            Err(e) => tracing::error!(error = %e, "reload refused; keeping the old configuration"),
        }
    }

    /// Runs until `signals.stop`: a step per period with usage observation, and between periods
    /// a step whenever the directory changes (a watch), so grants and compensations of other
    /// hosts are applied without waiting for the next period. A stop request is honoured
    /// between steps, never inside one.
    ///
    /// ```no_run
    /// use vibrad::{config::Config, daemon::*};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let (host, children) = linux_host(&cfg)?;
    /// let mut d = Daemon::new(cfg.clone(), host, open_directory(&cfg), false)?;
    /// for c in children { d.adopt_child(c); }
    /// d.step(true)?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn run(&mut self, signals: &Signals) -> Result<()> {
        let period = self.cfg.agent.period;
        let mut next = Instant::now();
        while !signals.stop.load(Ordering::SeqCst) {
            if signals.reload.swap(false, Ordering::SeqCst) {
                self.reload();
            }
            let observe = Instant::now() >= next;
            if observe {
                next += period;
                if next < Instant::now() {
                    next = Instant::now() + period;
                }
            }
            if let Err(e) = self.step(observe) {
                tracing::error!(error = %e, "step failed; retried next period");
                self.metrics.add("vibrad_directory_errors_total", &[], 1.0);
            }
            let rev = self.dir.revision().unwrap_or(0);
            // Short waits so a stop request is seen within a fraction of a period.
            let left = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(500));
            if !left.is_zero() && self.dir.wait(rev, left).is_err() {
                std::thread::sleep(left);
            }
        }
        tracing::info!("stopping after a complete period");
        if let Some(l) = self.lease {
            let _ = self.dir.kv().revoke(l);
        }
        Ok(())
    }

    /// The applied record of a customer's kind (tests and tools).
    ///
    /// ```no_run
    /// use vibrad::{config::Config, daemon::*};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let (host, children) = linux_host(&cfg)?;
    /// let mut d = Daemon::new(cfg.clone(), host, open_directory(&cfg), false)?;
    /// for c in children { d.adopt_child(c); }
    /// d.step(true)?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn applied(&self, customer: &str, kind: &ResourceKind) -> Result<crate::directory::Units> {
        Ok(self.dir.read(Record::Applied, customer, kind)?.value)
    }
}

impl<H: Vms> Drop for Daemon<H> {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Creates this host's VMs on a Linux host and starts their commands inside them; with
/// `[linux] adopt = true`, adopts the existing VMs of those names instead (nothing started).
///
/// ```no_run
/// use vibrad::{config::Config, daemon::*};
/// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
/// let (host, children) = linux_host(&cfg)?;
/// let mut d = Daemon::new(cfg.clone(), host, open_directory(&cfg), false)?;
/// for c in children { d.adopt_child(c); }
/// d.step(true)?;
/// # Ok::<(), vibrad::Error>(())
/// ```
pub fn linux_host(cfg: &Config) -> Result<(LinuxHost, Vec<Child>)> {
    let mut host = LinuxHost::new(&cfg.cgroup_parent)?;
    let mut children = Vec::new();
    for v in cfg.vms.iter().filter(|v| v.host == cfg.host) {
        if cfg.adopt {
            // Someone else's VM (`[linux] adopt`): set and read, never started or removed.
            host.adopt_vm(&v.name)?;
            tracing::info!(vm = v.name, "adopted");
            continue;
        }
        let mut spec = VmSpec::new(&v.name)?;
        if let Some(l) = v.link {
            spec = spec.with_link(l);
        }
        host.create_vm(&spec)?;
        if !v.command.is_empty() {
            let child = std::process::Command::new("ip")
                .args(["netns", "exec", &v.name])
                .args(&v.command)
                .stdin(std::process::Stdio::null())
                .spawn()
                .map_err(|source| Error::Io {
                    what: format!("start {:?} in VM {}", v.command, v.name),
                    source,
                })?;
            host.attach(&v.name, child.id())?;
            children.push(child);
        }
    }
    Ok((host, children))
}
