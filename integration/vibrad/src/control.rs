//! The control period's logic, free of kernel I/O: the customer leader (vibra-alloc's agent
//! over the directory) and the host applier (the cross-host order of SPEC 5: decreases written
//! to the kernel then recorded, increases recorded then written). The kernel is reached only
//! through [`ApplyAllocationPlan::apply_plan`] on any [`HostController`], so tests drive this
//! code with an in-memory controller and the daemon with vibra-host's Linux backend.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use vibra_alloc::{Agent, Change, KindConfig, KindPlan, Plan, ResourceKind, VmId, VmPhase};
use vibra_host::{ApplyAllocationPlan, HostController};

use crate::config::{AgentConfig, CustomerConfig, KindSpec};
use crate::directory::{Directory, Record, Units};
use crate::error::{Error, Result};

/// How many times a compare-and-swap is retried within one step before giving up until the
/// next period.
const CAS_TRIES: usize = 5;

/// What a leader step did.
///
/// ```
/// assert!(vibrad::control::LeaderReport::default().plans.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderReport {
    /// The plans (compensation and re-division), per kind.
    pub plans: Vec<KindPlan>,
    /// VMs newly treated as failed.
    pub failed: Vec<String>,
    /// Failed VMs started again (replacements).
    pub replaced: Vec<String>,
    /// Whether the granted record was written (false: nothing changed, or another writer won
    /// the race and this leader re-read the directory's allocation).
    pub wrote: bool,
}

/// One customer's allocator: vibra-alloc's [`Agent`] over the customer's VMs (configuration
/// order is SPEC 4's cyclic order), writing its allocation to `granted/<c>/<kind>`.
///
/// ```
/// # use std::sync::Arc;
/// # use vibrad::{config::Config, directory::Directory, kv::MemKv, control::Leader};
/// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
/// let dir = Directory::new(Arc::new(MemKv::new()), "/d");
/// let vms: Vec<String> = cfg.vms.iter().map(|v| v.name.clone()).collect();
/// let mut leader = Leader::new(&cfg.customers[0], vms, &cfg.agent, &dir).unwrap();
/// let r = leader.step(&dir, Default::default(), None, &Default::default()).unwrap();
/// assert!(r.wrote); // the first step publishes the even split
/// ```
#[derive(Debug)]
pub struct Leader {
    customer: CustomerConfig,
    vms: Vec<String>,
    agent: Agent,
    dry_run: bool,
    period: Duration,
    /// No re-division before this time: one period after a compensation (see `step`).
    hold_until: Option<Duration>,
}

impl Leader {
    /// A leader for `customer` whose VMs are `vms`. Its starting allocation is the directory's
    /// granted record when there is one (a leader taking over keeps what was granted), else
    /// the even split. Errors: directory content that does not fit (names the key).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::{config::Config, directory::Directory, kv::MemKv, control::Leader};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let dir = Directory::new(Arc::new(MemKv::new()), "/d");
    /// let vms: Vec<String> = cfg.vms.iter().map(|v| v.name.clone()).collect();
    /// let mut leader = Leader::new(&cfg.customers[0], vms, &cfg.agent, &dir).unwrap();
    /// assert_eq!(leader.customer(), "acme");
    /// ```
    pub fn new(
        customer: &CustomerConfig,
        vms: Vec<String>,
        agent_cfg: &AgentConfig,
        dir: &Directory,
    ) -> Result<Self> {
        let ids: Vec<VmId> = (0..vms.len() as u32).map(VmId).collect();
        let mut kinds = Vec::new();
        for k in &customer.kinds {
            // vibra-alloc's per-kind defaults (bandwidth boots with the floor, memory and CPU
            // with everything), then this configuration's period, alpha and floor.
            let mut kc = match k.kind {
                ResourceKind::Bandwidth => KindConfig::bandwidth(k.pool),
                ResourceKind::Memory => KindConfig::memory(k.pool),
                _ => KindConfig::new(k.kind.clone(), k.pool, agent_cfg.period),
            };
            kc.period = agent_cfg.period;
            kc.alpha = agent_cfg.alpha;
            kc.floor = k.floor;
            let granted = dir.read(Record::Granted, &customer.name, &k.kind)?;
            if granted.revision != 0 {
                let key = dir.key_alloc(Record::Granted, &customer.name, &k.kind);
                let init: Vec<u64> = vms
                    .iter()
                    .map(|v| granted.value.get(v).copied().unwrap_or(0))
                    .collect();
                if granted.value.keys().any(|v| !vms.contains(v)) {
                    return Err(Error::Directory {
                        key,
                        message: "names a VM the customer does not have".into(),
                    });
                }
                if init.iter().map(|&u| u128::from(u)).sum::<u128>() > u128::from(k.pool) {
                    return Err(Error::Directory {
                        key,
                        message: format!("sum over the pool of {} units", k.pool),
                    });
                }
                kc.initial = Some(init);
            }
            kinds.push(kc);
        }
        let agent = Agent::new(&ids, customer.replication, agent_cfg.warmup, kinds)?;
        Ok(Leader {
            customer: customer.clone(),
            vms,
            agent,
            dry_run: false,
            period: agent_cfg.period,
            hold_until: None,
        })
    }

    /// Dry run: plans are computed but never written to `granted/`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::{config::Config, directory::Directory, kv::MemKv, control::Leader};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let dir = Directory::new(Arc::new(MemKv::new()), "/d");
    /// let vms: Vec<String> = cfg.vms.iter().map(|v| v.name.clone()).collect();
    /// let mut leader = Leader::new(&cfg.customers[0], vms, &cfg.agent, &dir).unwrap();
    /// leader.set_dry_run(true);
    /// assert!(!leader.step(&dir, Default::default(), None, &Default::default()).unwrap().wrote);
    /// ```
    pub fn set_dry_run(&mut self, dry_run: bool) {
        self.dry_run = dry_run;
    }

    /// The customer's name.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::{config::Config, directory::Directory, kv::MemKv, control::Leader};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let dir = Directory::new(Arc::new(MemKv::new()), "/d");
    /// let vms: Vec<String> = cfg.vms.iter().map(|v| v.name.clone()).collect();
    /// let mut leader = Leader::new(&cfg.customers[0], vms, &cfg.agent, &dir).unwrap();
    /// assert_eq!(leader.customer(), "acme");
    /// ```
    #[must_use]
    pub fn customer(&self) -> &str {
        &self.customer.name
    }

    /// The allocation of a kind by VM name.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::{config::Config, directory::Directory, kv::MemKv, control::Leader};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let dir = Directory::new(Arc::new(MemKv::new()), "/d");
    /// let vms: Vec<String> = cfg.vms.iter().map(|v| v.name.clone()).collect();
    /// let mut leader = Leader::new(&cfg.customers[0], vms, &cfg.agent, &dir).unwrap();
    /// let a = leader.allocation(&cfg.customers[0].kinds[0]).unwrap();
    /// assert_eq!(a["acme-1"] + a["acme-2"], 10_000);
    /// ```
    pub fn allocation(&self, spec: &KindSpec) -> Result<Units> {
        let a = self.agent.allocation(&spec.kind)?;
        Ok(self.vms.iter().cloned().zip(a.iter().copied()).collect())
    }

    /// The demand estimates of a kind by VM name.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::{config::Config, directory::Directory, kv::MemKv, control::Leader};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let dir = Directory::new(Arc::new(MemKv::new()), "/d");
    /// let vms: Vec<String> = cfg.vms.iter().map(|v| v.name.clone()).collect();
    /// let mut leader = Leader::new(&cfg.customers[0], vms, &cfg.agent, &dir).unwrap();
    /// assert_eq!(leader.demand(&cfg.customers[0].kinds[0]).unwrap()["acme-1"], 0.0);
    /// ```
    pub fn demand(&self, spec: &KindSpec) -> Result<BTreeMap<String, f64>> {
        let d = self.agent.demand(&spec.kind)?;
        Ok(self.vms.iter().cloned().zip(d.iter().copied()).collect())
    }

    /// One step at `now`: VMs in `failed` that the agent still counts live fail (SPEC 4: their
    /// share goes to the next R live VMs); when `usage` is given (once per period) it is fed to
    /// the estimator (SPEC 5); the agent re-divides the kinds that are due, except within one
    /// period after a compensation (which a re-division on the estimates from before the
    /// failure would undo at once); the result is
    /// written to `granted/` as one compare-and-swap per kind. A lost race re-reads the
    /// directory's record into the agent and reports `wrote = false`.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibrad::{config::Config, directory::Directory, kv::MemKv, control::Leader};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let dir = Directory::new(Arc::new(MemKv::new()), "/d");
    /// let vms: Vec<String> = cfg.vms.iter().map(|v| v.name.clone()).collect();
    /// let mut leader = Leader::new(&cfg.customers[0], vms, &cfg.agent, &dir).unwrap();
    /// let usage = [("acme-1".to_string(), [("bandwidth".to_string(), 3.0)].into()),
    ///              ("acme-2".to_string(), [("bandwidth".to_string(), 1.0)].into())].into();
    /// leader.step(&dir, Default::default(), Some(&usage), &Default::default()).unwrap();
    /// assert_eq!(leader.allocation(&cfg.customers[0].kinds[0]).unwrap()["acme-1"], 7_500);
    /// ```
    pub fn step(
        &mut self,
        dir: &Directory,
        now: Duration,
        usage: Option<&BTreeMap<String, BTreeMap<String, f64>>>,
        failed: &BTreeSet<String>,
    ) -> Result<LeaderReport> {
        let mut report = LeaderReport::default();
        for (i, vm) in self.vms.iter().enumerate() {
            let id = VmId(i as u32);
            if failed.contains(vm) && self.agent.phase(id)? == VmPhase::Live {
                match self.agent.fail(id, now) {
                    Ok(plans) => {
                        report.plans.extend(plans);
                        report.failed.push(vm.clone());
                    }
                    // The last live VM: nobody to take its share; it keeps it on paper.
                    Err(vibra_alloc::Error::NoTakeover { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // A failed VM no longer marked failed was started again by its host: a replacement
        // gets its boot share back (vibra-alloc's `replacement_started`).
        for (i, vm) in self.vms.iter().enumerate() {
            let id = VmId(i as u32);
            if !failed.contains(vm) && self.agent.phase(id)? == VmPhase::Failed {
                report
                    .plans
                    .extend(self.agent.replacement_started(id, now)?);
                report.replaced.push(vm.clone());
            }
        }
        if let Some(usage) = usage {
            for k in &self.customer.kinds {
                for (i, vm) in self.vms.iter().enumerate() {
                    if let Some(u) = usage.get(vm).and_then(|m| m.get(&k.kind.to_string())) {
                        self.agent.observe_vm(&k.kind, VmId(i as u32), *u)?;
                    }
                }
            }
        }
        // The compensation is its own granted version, written before any re-division, so
        // the takers' hosts apply it even if the re-division's write loses a race.
        if !report.failed.is_empty() || !report.replaced.is_empty() {
            report.wrote |= self.publish(dir)?;
        }
        // A re-division right after a compensation would undo it at once (the takers' demand
        // estimates are still from before the failure): the compensated allocation holds for
        // one period, then the pool is re-divided by the demand measured since.
        if !report.failed.is_empty() {
            self.hold_until = Some(now + self.period);
        }
        if self.hold_until.is_none_or(|h| now >= h) {
            self.hold_until = None;
            report.plans.extend(self.agent.tick(now)?);
        }
        report.wrote |= self.publish(dir)?;
        Ok(report)
    }
}

impl Leader {
    /// Writes the agent's allocation to `granted/` (one CAS per kind). A lost race adopts the
    /// directory's record. Returns whether anything was written.
    fn publish(&mut self, dir: &Directory) -> Result<bool> {
        let mut wrote = false;
        if self.dry_run {
            return Ok(false);
        }
        for k in &self.customer.kinds {
            let want = self.allocation(k)?;
            let cur = dir.read(Record::Granted, &self.customer.name, &k.kind)?;
            if cur.value == want {
                continue;
            }
            if dir.write(
                Record::Granted,
                &self.customer.name,
                &k.kind,
                k.pool,
                cur.revision,
                &want,
            )? {
                wrote = true;
                continue;
            }
            // Another writer won: adopt what it wrote, so the next step plans from it.
            let cur = dir.read(Record::Granted, &self.customer.name, &k.kind)?;
            let adopted: Vec<u64> = self
                .vms
                .iter()
                .map(|v| cur.value.get(v).copied().unwrap_or(0))
                .collect();
            self.agent.set_allocation(&k.kind, &adopted)?;
        }
        Ok(wrote)
    }
}

/// What one host applied for one customer and kind in one step.
///
/// ```
/// assert_eq!(vibrad::control::ApplyStep::default().written, 0);
/// ```
#[derive(Debug, Default)]
pub struct ApplyStep {
    /// Settings written to the kernel (decreases and increases).
    pub written: usize,
    /// Per-VM controller errors (the others went on; retried next step).
    pub errors: Vec<(String, Error)>,
    /// Increases waiting for another host's decrease to be recorded.
    pub waiting: usize,
}

/// One host's side of one customer's kind: what its kernel holds for each of its VMs, as last
/// written by this host. `None`: never written (the VM is unlimited until its first grant).
///
/// ```
/// assert!(vibrad::control::HostKind::default().kernel.is_empty());
/// ```
#[derive(Debug, Default, Clone)]
pub struct HostKind {
    /// Kernel value per VM, in units.
    pub kernel: BTreeMap<String, u64>,
}

impl HostKind {
    /// Applies the directory's grant for `my_vms` (this host's VMs of the customer; `alive`
    /// false for a failed one) on `host`, keeping the kernel within the bound at every
    /// instant across hosts: (1) decreases are written to the kernel, (2) one CAS on
    /// `applied/` records every kernel value, releases what was decreased and reserves the
    /// increases that fit under the bound given what other hosts still hold, (3) the reserved
    /// increases are written. A failed VM's record drops to 0. A controller error on one VM
    /// is reported and leaves the others going; the VM is retried at the next step.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use vibrad::{config::Config, directory::Directory, kv::MemKv, control::HostKind};
    /// use vibra_host::{LinuxHost, VmSpec};
    /// let cfg = Config::parse(vibrad::config::MINIMAL).unwrap();
    /// let dir = Directory::new(Arc::new(MemKv::new()), "/d");
    /// let mut host = LinuxHost::new("vibrad-doc")?;
    /// let mine: Vec<(String, String)> = cfg.vms.iter().map(|v| (v.name.clone(), v.name.clone())).collect();
    /// for (v, _) in &mine { host.create_vm(&VmSpec::new(v)?)?; }
    /// let alive = mine.iter().map(|(v, _)| (v.clone(), true)).collect();
    /// let mut hk = HostKind::default();
    /// let r = hk.step(&dir, "acme", &cfg.customers[0].kinds[0], &mine, &alive, &mut host, false).unwrap();
    /// assert!(r.errors.is_empty());
    /// # Ok::<(), vibra_host::Error>(())
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn step<H>(
        &mut self,
        dir: &Directory,
        customer: &str,
        spec: &KindSpec,
        my_vms: &[(String, H::VmId)],
        alive: &BTreeMap<String, bool>,
        host: &mut H,
        dry_run: bool,
    ) -> Result<ApplyStep>
    where
        H: HostController + ?Sized,
    {
        let mut out = ApplyStep::default();
        let granted = dir.read(Record::Granted, customer, &spec.kind)?;
        let is_alive = |v: &str| alive.get(v).copied().unwrap_or(true);
        // (1) decreases, in ascending VM order.
        for (name, id) in my_vms {
            let (Some(&g), Some(&k)) = (granted.value.get(name), self.kernel.get(name)) else {
                continue;
            };
            if is_alive(name) && g < k {
                self.set_one(host, &mut out, (customer, spec, dry_run), (name, id), k, g);
            }
        }
        // (2) record.
        let mut reserved: BTreeMap<String, u64> = BTreeMap::new();
        for _ in 0..CAS_TRIES {
            let applied = dir.read(Record::Applied, customer, &spec.kind)?;
            let mut next = applied.value.clone();
            for (name, _) in my_vms {
                let k = if is_alive(name) {
                    self.kernel.get(name).copied().unwrap_or(0)
                } else {
                    0
                };
                next.insert(name.clone(), k);
            }
            reserved.clear();
            out.waiting = 0;
            for (name, _) in my_vms {
                let Some(&g) = granted.value.get(name) else {
                    continue;
                };
                let cur = next[name];
                if !is_alive(name) || g <= cur {
                    continue;
                }
                let sum: u128 = next.values().map(|&u| u128::from(u)).sum();
                if sum - u128::from(cur) + u128::from(g) <= u128::from(spec.pool) {
                    next.insert(name.clone(), g);
                    reserved.insert(name.clone(), g);
                } else {
                    out.waiting += 1;
                }
            }
            if next == applied.value || dry_run {
                break;
            }
            if dir.write(
                Record::Applied,
                customer,
                &spec.kind,
                spec.pool,
                applied.revision,
                &next,
            )? {
                break;
            }
            reserved.clear();
        }
        // (3) the reserved increases.
        for (name, id) in my_vms {
            let Some(&g) = reserved.get(name) else {
                continue;
            };
            let k = self.kernel.get(name).copied().unwrap_or(0);
            self.set_one(host, &mut out, (customer, spec, dry_run), (name, id), k, g);
        }
        // A failed VM holds nothing on record; forget its kernel value.
        for (name, _) in my_vms {
            if !is_alive(name) {
                self.kernel.insert(name.clone(), 0);
            }
        }
        Ok(out)
    }
}

impl HostKind {
    /// One VM's change from `k` to `g` units, a decrease or a reserved increase: printed in a
    /// dry run, else applied and remembered as the kernel's value; an error is collected for
    /// the caller to retry next period.
    fn set_one<H>(
        &mut self,
        host: &mut H,
        out: &mut ApplyStep,
        (customer, spec, dry_run): (&str, &KindSpec, bool),
        (name, id): (&String, &H::VmId),
        k: u64,
        g: u64,
    ) where
        H: HostController + ?Sized,
    {
        if dry_run {
            let what = if g < k { "decrease" } else { "increase" };
            println!(
                "dry-run {customer} {} {name}: {k} -> {g} units ({what})",
                spec.kind
            );
            return;
        }
        match apply_one(host, id, k, g, spec) {
            Ok(n) => {
                out.written += n;
                self.kernel.insert(name.clone(), g);
            }
            Err(e) => out.errors.push((name.clone(), e)),
        }
    }
}

/// Writes one VM's setting through vibra-host's plan application (one change, one VM).
fn apply_one<H>(host: &mut H, id: &H::VmId, from: u64, to: u64, spec: &KindSpec) -> Result<usize>
where
    H: HostController + ?Sized,
{
    let plan = Plan::from_changes(vec![Change {
        vm: VmId(0),
        from,
        to,
    }]);
    let report = host.apply_plan(std::slice::from_ref(id), &plan, spec.unit)?;
    Ok(report.written)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{Config, MINIMAL};
    use crate::kv::MemKv;

    #[test]
    fn a_compensation_holds_for_one_period_before_the_next_re_division() {
        let src =
            format!("{MINIMAL}[[vm]]\nname = \"acme-3\"\ncustomer = \"acme\"\nhost = \"h1\"\n");
        let cfg = Config::parse(&src).unwrap();
        let dir = Directory::new(Arc::new(MemKv::new()), "/d");
        let vms: Vec<String> = cfg.vms.iter().map(|v| v.name.clone()).collect();
        let mut leader = Leader::new(&cfg.customers[0], vms, &cfg.agent, &dir).unwrap();
        let k = &cfg.customers[0].kinds[0];
        let s = Duration::from_secs;
        let usage: BTreeMap<String, BTreeMap<String, f64>> =
            [("acme-1", 1000.0), ("acme-2", 1000.0), ("acme-3", 8000.0)]
                .into_iter()
                .map(|(v, u)| (v.to_string(), [("bandwidth".to_string(), u)].into()))
                .collect();
        let none = BTreeSet::new();
        let failed: BTreeSet<String> = ["acme-1".to_string()].into();
        leader.step(&dir, s(0), Some(&usage), &none).unwrap();
        let a0 = leader.allocation(k).unwrap();
        assert!(a0["acme-3"] > 7_900, "{a0:?}"); // by demand, 1 unit floors
        // acme-1 fails when a re-division is due (period 3 s): only the compensation (R = 1:
        // acme-2 takes its share) is applied.
        let r = leader.step(&dir, s(3), Some(&usage), &failed).unwrap();
        assert_eq!(r.failed, ["acme-1"]);
        let a1 = leader.allocation(k).unwrap();
        assert_eq!(a1["acme-1"], 0);
        assert_eq!(a1["acme-2"], a0["acme-1"] + a0["acme-2"]);
        assert_eq!(a1["acme-3"], a0["acme-3"]);
        assert_eq!(
            dir.read(Record::Granted, "acme", &k.kind).unwrap().value,
            a1
        );
        leader.step(&dir, s(5), None, &failed).unwrap();
        assert_eq!(
            leader.allocation(k).unwrap(),
            a1,
            "re-divided within the period"
        );
        // One period after the compensation: re-divided by demand among the live VMs.
        leader.step(&dir, s(6), Some(&usage), &failed).unwrap();
        let a2 = leader.allocation(k).unwrap();
        assert_eq!(a2["acme-1"], 0);
        assert!(a2["acme-3"] > a1["acme-3"], "{a2:?}");
        assert_eq!(a2["acme-2"] + a2["acme-3"], 10_000);
    }
}
