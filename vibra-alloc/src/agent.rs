//! The resource-allocation agent of sections 3.3.2 and 3.4.7 as a clock-free state machine.
//!
//! The caller feeds it usage observations, failure and replacement events, and the time; it
//! answers with [`KindPlan`]s for the caller to apply (through a [`crate::VmDirectory`], then
//! the VMM). Each resource kind runs on its own period (bandwidth every 3 s, memory on a
//! slower one: section 3.4.7, "memory page transfers should be invoked less frequently"). The
//! agent never sleeps, spawns or reads a clock, so it is deterministic and testable.

use std::collections::HashMap;
use std::time::Duration;

use crate::allocate::{damp, split_units};
use crate::error::{Error, Result, check_all_non_negative, check_len, check_non_negative};
use crate::estimate::{Alpha, DemandEstimator};
use crate::failover::{FailoverLedger, VmPhase};
use crate::ids::VmId;
use crate::kind::ResourceKind;
use crate::plan::Plan;
use crate::units::units_sum;

/// How much of its saved allocation a replacement VM gets back when it starts (the rest
/// comes back when its warm-up is over).
///
/// ```
/// assert_eq!(vibra_alloc::KindConfig::memory(3 << 18).boot, vibra_alloc::Boot::All);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// Everything at once: memory and CPU are "mandatory in booting up a new server" (4.3.1).
    All,
    /// The kind's floor: "most servers do not require egress bandwidth during boot-up".
    Floor,
    /// A fixed number of units (capped at the saved allocation).
    Units(u64),
}

/// The configuration of one resource kind.
///
/// ```
/// use std::time::Duration;
/// use vibra_alloc::{KindConfig, ResourceKind};
///
/// // 80 MB/s of egress in 1 kB/s units, at least 500 kB/s per VM, moves under 100 kB/s skipped.
/// let mut bw = KindConfig::bandwidth(80_000);
/// bw.floor = 500;
/// bw.hysteresis = 100;
/// assert_eq!(bw.period, Duration::from_secs(3));
/// assert_eq!(bw.kind, ResourceKind::Bandwidth);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct KindConfig {
    /// The kind.
    pub kind: ResourceKind,
    /// The customer's pool, in units.
    pub pool: u64,
    /// The least any live VM holds, in units: re-divisions give every live VM at least this,
    /// and failures, replacement boots and warm-up ends never take a live VM below it (a VM
    /// whose warm-up ends is topped up to it). Only an allocation the caller sets (`initial`,
    /// [`Agent::set_allocation`]) can be below it, until the next re-division; and if it
    /// leaves a warming-up replacement, which is pinned, holding so much that the rest cannot
    /// give every live VM the floor, the live VMs share the rest evenly instead until the
    /// next re-division after the warm-up.
    pub floor: u64,
    /// How often the kind is re-divided.
    pub period: Duration,
    /// The EMA smoothing factor (eq. 3.1).
    pub alpha: Alpha,
    /// Moves smaller than this many units are not issued (see [`crate::damp`]); 0 disables.
    pub hysteresis: u64,
    /// Per-VM weights (> 0), in the agent's VM order, skewing the split toward high-valued
    /// services; `None` weighs every VM alike.
    pub weights: Option<Vec<f64>>,
    /// What a replacement gets back at start.
    pub boot: Boot,
    /// The allocation at start, in the agent's VM order (sum <= pool); `None` splits the
    /// pool evenly (by weight).
    pub initial: Option<Vec<u64>>,
}

impl KindConfig {
    /// A kind with the dissertation's defaults: alpha 0.9, no floor, no hysteresis, no
    /// weights, [`Boot::All`], an even initial split.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cpu = vibra_alloc::KindConfig::new(vibra_alloc::ResourceKind::Cpu, 10_000, Duration::from_secs(1));
    /// assert_eq!(cpu.pool, 10_000);
    /// ```
    #[must_use]
    pub fn new(kind: ResourceKind, pool: u64, period: Duration) -> Self {
        KindConfig {
            kind,
            pool,
            floor: 0,
            period,
            alpha: Alpha::DISSERTATION,
            hysteresis: 0,
            weights: None,
            boot: Boot::All,
            initial: None,
        }
    }

    /// Egress bandwidth, re-divided every 3 s (section 3.5.3: "alpha = 0.9 ... an adaptation
    /// interval of 3s is found to be optimal"); a replacement boots with the floor.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::KindConfig::bandwidth(1).boot, vibra_alloc::Boot::Floor);
    /// ```
    #[must_use]
    pub fn bandwidth(pool: u64) -> Self {
        KindConfig {
            boot: Boot::Floor,
            ..Self::new(ResourceKind::Bandwidth, pool, Duration::from_secs(3))
        }
    }

    /// Memory, re-divided every 30 s (section 3.5.5 found 10-60 s working-set sampling
    /// periods equally good and memory moves expensive); a replacement boots with all of it.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::KindConfig::memory(1).period.as_secs(), 30);
    /// ```
    #[must_use]
    pub fn memory(pool: u64) -> Self {
        Self::new(ResourceKind::Memory, pool, Duration::from_secs(30))
    }
}

/// A plan for one resource kind, produced by the agent.
///
/// ```
/// use vibra_alloc::{KindPlan, Plan, ResourceKind};
/// let p = KindPlan { kind: ResourceKind::Memory, plan: Plan::default() };
/// assert!(p.plan.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindPlan {
    /// The kind the plan is for.
    pub kind: ResourceKind,
    /// The changes, in the order to apply them.
    pub plan: Plan,
}

#[derive(Debug, Clone, PartialEq)]
struct KindState {
    cfg: KindConfig,
    estimator: DemandEstimator,
    alloc: Vec<u64>,
    ledger: FailoverLedger,
    next_due: Option<Duration>,
}

/// The agent: per-kind demand estimates, allocations and failover ledgers for one customer's
/// VM cluster.
///
/// The agent assumes the plans it returns are applied; if one is rejected (say the host was
/// full), tell it what the allocation really is with [`Agent::set_allocation`].
/// Every method is all-or-nothing. Not internally synchronised (`&mut self`); `Send + Sync`.
///
/// ```
/// use std::time::Duration;
/// use vibra_alloc::{Agent, KindConfig, ResourceKind, VmId};
///
/// let s = Duration::from_secs;
/// let vms = [VmId(0), VmId(1), VmId(2), VmId(3)];
/// let mut agent = Agent::new(&vms, 2, s(30), vec![KindConfig::bandwidth(80_000)]).unwrap();
/// let bw = ResourceKind::Bandwidth;
/// assert_eq!(agent.allocation(&bw).unwrap(), &[20_000; 4]);
///
/// // Usage is measured every second; every 3 s the pool is re-divided by demand.
/// agent.observe(&bw, &[30_000.0, 10_000.0, 10_000.0, 10_000.0]).unwrap();
/// let plans = agent.tick(s(0)).unwrap();
/// assert_eq!(agent.allocation(&bw).unwrap(), &[40_000, 13_334, 13_333, 13_333]);
/// assert!(plans[0].plan.changes()[0].is_decrease());
/// assert!(agent.tick(s(1)).unwrap().is_empty()); // not due yet
///
/// // VM 1 dies: VMs 2 and 3 (its successors with R = 2) take its bandwidth at once.
/// agent.fail(VmId(1), s(4)).unwrap();
/// assert_eq!(agent.allocation(&bw).unwrap(), &[40_000, 0, 20_000, 20_000]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    ids: Vec<VmId>,
    index: HashMap<VmId, usize>,
    warmup: Duration,
    warm_until: Vec<Option<Duration>>,
    kinds: Vec<KindState>,
    last: Option<Duration>,
}

impl Agent {
    /// An agent for the VMs `vms` (their order is the order of every per-VM slice; its plans
    /// list each group by ascending [`VmId`] whatever this order), with
    /// replication factor `replication` (the dispatcher's R), the warm-up time of a
    /// replacement, and one configuration per resource kind.
    ///
    /// Errors: no VMs or a repeated id; R outside `1..=n`; no kinds or a repeated kind; a zero
    /// period; `n * floor > pool`; bad weights; an initial allocation of the wrong length or
    /// over the pool.
    ///
    /// ```
    /// use std::time::Duration;
    /// use vibra_alloc::{Agent, KindConfig, VmId};
    /// let mut bad = KindConfig::bandwidth(10);
    /// bad.floor = 6;
    /// assert!(Agent::new(&[VmId(0), VmId(1)], 1, Duration::ZERO, vec![bad]).is_err());
    /// ```
    pub fn new(
        vms: &[VmId],
        replication: u32,
        warmup: Duration,
        kinds: Vec<KindConfig>,
    ) -> Result<Self> {
        let n = vms.len();
        let mut index = HashMap::with_capacity(n);
        for (i, &id) in vms.iter().enumerate() {
            if index.insert(id, i).is_some() {
                return Err(Error::DuplicateVm(id));
            }
        }
        let ledger = FailoverLedger::new(n, replication)?;
        if kinds.is_empty() {
            return Err(Error::InvalidValue {
                what: "kinds",
                index: None,
                value: "none".into(),
            });
        }
        let mut states: Vec<KindState> = Vec::with_capacity(kinds.len());
        for cfg in kinds {
            if states.iter().any(|s| s.cfg.kind == cfg.kind) {
                return Err(Error::DuplicateKind(cfg.kind));
            }
            if cfg.period.is_zero() {
                return Err(Error::ZeroPeriod { what: "sampling" });
            }
            // Validates n, floor, weights at once, and gives the even initial split.
            let even = split_units(&vec![0.0; n], cfg.weights.as_deref(), cfg.pool, cfg.floor)?;
            let alloc = match &cfg.initial {
                None => even,
                Some(init) => {
                    check_len("initial", n, init.len())?;
                    let sum = units_sum(init);
                    if sum > u128::from(cfg.pool) {
                        return Err(Error::InvalidValue {
                            what: "initial allocation sum",
                            index: None,
                            value: sum.to_string(),
                        });
                    }
                    init.clone()
                }
            };
            // Units hysteresis leaves idle go to a booting replacement first.
            let mut kind_ledger = ledger.clone();
            kind_ledger.set_pool(cfg.pool);
            states.push(KindState {
                estimator: DemandEstimator::new(n, cfg.alpha)?,
                cfg,
                alloc,
                ledger: kind_ledger,
                next_due: None,
            });
        }
        Ok(Agent {
            ids: vms.to_vec(),
            index,
            warmup,
            warm_until: vec![None; n],
            kinds: states,
            last: None,
        })
    }

    /// The VMs, in the order of every per-VM slice.
    ///
    /// ```
    /// # use vibra_alloc::*;
    /// let a = Agent::new(&[VmId(5)], 1, Default::default(), vec![KindConfig::bandwidth(1)]).unwrap();
    /// assert_eq!(a.vms(), &[VmId(5)]);
    /// ```
    #[must_use]
    pub fn vms(&self) -> &[VmId] {
        &self.ids
    }

    fn kind(&self, kind: &ResourceKind) -> Result<&KindState> {
        self.kinds
            .iter()
            .find(|k| &k.cfg.kind == kind)
            .ok_or_else(|| Error::UnknownKind(kind.clone()))
    }

    fn kind_pos(&self, kind: &ResourceKind) -> Result<usize> {
        self.kinds
            .iter()
            .position(|k| &k.cfg.kind == kind)
            .ok_or_else(|| Error::UnknownKind(kind.clone()))
    }

    fn vm_pos(&self, vm: VmId) -> Result<usize> {
        self.index.get(&vm).copied().ok_or(Error::UnknownVm(vm))
    }

    /// The current allocation of a kind, in VM order.
    ///
    /// ```
    /// # use vibra_alloc::*;
    /// let a = Agent::new(&[VmId(0), VmId(1)], 1, Default::default(), vec![KindConfig::memory(9)]).unwrap();
    /// assert_eq!(a.allocation(&ResourceKind::Memory).unwrap(), &[5, 4]);
    /// assert!(a.allocation(&ResourceKind::Cpu).is_err());
    /// ```
    pub fn allocation(&self, kind: &ResourceKind) -> Result<&[u64]> {
        Ok(&self.kind(kind)?.alloc)
    }

    /// The current demand estimates of a kind, in VM order.
    ///
    /// ```
    /// # use vibra_alloc::*;
    /// let mut a = Agent::new(&[VmId(0)], 1, Default::default(), vec![KindConfig::memory(9)]).unwrap();
    /// a.observe(&ResourceKind::Memory, &[3.0]).unwrap();
    /// assert_eq!(a.demand(&ResourceKind::Memory).unwrap(), &[3.0]);
    /// ```
    pub fn demand(&self, kind: &ResourceKind) -> Result<&[f64]> {
        Ok(self.kind(kind)?.estimator.demand())
    }

    /// When `kind` is next re-divided: `None` before the first tick (it is due at once).
    ///
    /// ```
    /// # use vibra_alloc::*;
    /// # use std::time::Duration;
    /// let mut a = Agent::new(&[VmId(0)], 1, Duration::ZERO, vec![KindConfig::bandwidth(9)]).unwrap();
    /// assert_eq!(a.next_due(&ResourceKind::Bandwidth).unwrap(), None);
    /// a.tick(Duration::from_secs(1)).unwrap();
    /// assert_eq!(a.next_due(&ResourceKind::Bandwidth).unwrap(), Some(Duration::from_secs(4)));
    /// ```
    pub fn next_due(&self, kind: &ResourceKind) -> Result<Option<Duration>> {
        Ok(self.kind(kind)?.next_due)
    }

    /// The next instant at which [`Agent::tick`] has work: the earliest re-division or
    /// warm-up end (`None` before the first tick: call it now). A caller's loop can sleep
    /// until then.
    ///
    /// ```
    /// # use vibra_alloc::*;
    /// # use std::time::Duration;
    /// let s = Duration::from_secs;
    /// let mut a = Agent::new(&[VmId(0)], 1, s(5), vec![KindConfig::bandwidth(9), KindConfig::memory(9)]).unwrap();
    /// a.tick(s(0)).unwrap();
    /// assert_eq!(a.next_tick(), Some(s(3)));
    /// ```
    #[must_use]
    pub fn next_tick(&self) -> Option<Duration> {
        let mut next: Option<Duration> = None;
        for k in &self.kinds {
            next = match (next, k.next_due) {
                (_, None) => return None,
                (None, due) => due,
                (Some(a), Some(b)) => Some(a.min(b)),
            };
        }
        self.warm_until
            .iter()
            .flatten()
            .fold(next, |acc, &w| Some(acc.map_or(w, |a| a.min(w))))
    }

    /// A VM's phase (live, failed, warming up).
    ///
    /// ```
    /// # use vibra_alloc::*;
    /// let a = Agent::new(&[VmId(0)], 1, Default::default(), vec![KindConfig::memory(9)]).unwrap();
    /// assert_eq!(a.phase(VmId(0)).unwrap(), VmPhase::Live);
    /// ```
    pub fn phase(&self, vm: VmId) -> Result<VmPhase> {
        let i = self.vm_pos(vm)?;
        self.kinds[0]
            .ledger
            .phase(i as u32)
            .ok_or(Error::UnknownVm(vm))
    }

    /// Feeds one usage sample per VM for a kind (in VM order). Samples for failed VMs are
    /// checked but ignored. Errors (nothing changed): unknown kind; wrong length; a sample
    /// negative, NaN or infinite.
    ///
    /// ```
    /// # use vibra_alloc::*;
    /// let mut a = Agent::new(&[VmId(0)], 1, Default::default(), vec![KindConfig::memory(9)]).unwrap();
    /// assert!(a.observe(&ResourceKind::Memory, &[-1.0]).is_err());
    /// ```
    pub fn observe(&mut self, kind: &ResourceKind, usage: &[f64]) -> Result<()> {
        let k = self.kind_pos(kind)?;
        let n = self.ids.len();
        check_len("usage", n, usage.len())?;
        check_all_non_negative("usage", usage)?;
        let state = &self.kinds[k];
        let mut est = state.estimator.clone();
        for (i, &u) in usage.iter().enumerate() {
            if state.ledger.phase(i as u32) != Some(VmPhase::Failed) {
                est.observe_one(i, u)?;
            }
        }
        self.kinds[k].estimator = est;
        Ok(())
    }

    /// Feeds one VM's usage sample for a kind. Ignored for a failed VM. Errors (nothing
    /// changed): unknown kind or VM; a sample negative, NaN or infinite.
    ///
    /// ```
    /// # use vibra_alloc::*;
    /// let mut a = Agent::new(&[VmId(4)], 1, Default::default(), vec![KindConfig::memory(9)]).unwrap();
    /// a.observe_vm(&ResourceKind::Memory, VmId(4), 2.0).unwrap();
    /// assert!(a.observe_vm(&ResourceKind::Memory, VmId(5), 2.0).is_err());
    /// ```
    pub fn observe_vm(&mut self, kind: &ResourceKind, vm: VmId, usage: f64) -> Result<()> {
        let k = self.kind_pos(kind)?;
        let i = self.vm_pos(vm)?;
        check_non_negative("usage", Some(i), usage)?;
        let state = &mut self.kinds[k];
        if state.ledger.phase(i as u32) == Some(VmPhase::Failed) {
            return Ok(());
        }
        state.estimator.observe_one(i, usage)
    }

    /// Sets a kind's allocation to what the VMs really hold (after a rejected plan).
    /// Errors (nothing changed): unknown kind; wrong length; sum over the pool.
    ///
    /// ```
    /// # use vibra_alloc::*;
    /// let mut a = Agent::new(&[VmId(0), VmId(1)], 1, Default::default(), vec![KindConfig::memory(10)]).unwrap();
    /// a.set_allocation(&ResourceKind::Memory, &[3, 7]).unwrap();
    /// assert!(a.set_allocation(&ResourceKind::Memory, &[3, 8]).is_err());
    /// assert_eq!(a.allocation(&ResourceKind::Memory).unwrap(), &[3, 7]);
    /// ```
    pub fn set_allocation(&mut self, kind: &ResourceKind, alloc: &[u64]) -> Result<()> {
        let k = self.kind_pos(kind)?;
        check_len("allocation", self.ids.len(), alloc.len())?;
        let sum = units_sum(alloc);
        if sum > u128::from(self.kinds[k].cfg.pool) {
            return Err(Error::InvalidValue {
                what: "allocation sum",
                index: None,
                value: sum.to_string(),
            });
        }
        self.kinds[k].alloc.copy_from_slice(alloc);
        Ok(())
    }

    fn check_time(&self, now: Duration) -> Result<()> {
        match self.last {
            Some(last) if now < last => Err(Error::TimeWentBackwards {
                now_ms: now.as_millis(),
                last_ms: last.as_millis(),
            }),
            _ => Ok(()),
        }
    }

    /// Collects, per kind, the plan from `before` to the (cloned, updated) state `after`.
    fn plans(&self, before: &[KindState], after: &[KindState]) -> Vec<KindPlan> {
        let mut out = Vec::new();
        for (b, a) in before.iter().zip(after) {
            // Ids are distinct (checked by `new`) and every slice has their length.
            let plan = Plan::between_unique_ids(&self.ids, &b.alloc, &a.alloc);
            if !plan.is_empty() {
                out.push(KindPlan {
                    kind: a.cfg.kind.clone(),
                    plan,
                });
            }
        }
        out
    }

    /// VM `vm` failed at `now`: for every kind its allocation goes at once to its takers
    /// (vibra-hash's successor rule). Returns the plans. Errors (nothing changed): unknown VM;
    /// already failed; time went backwards; no other VM available.
    ///
    /// ```
    /// # use vibra_alloc::*;
    /// let mut a = Agent::new(&[VmId(0)], 1, Default::default(), vec![KindConfig::memory(9)]).unwrap();
    /// assert_eq!(a.fail(VmId(0), Default::default()), Err(Error::NoTakeover { failed: 0 }));
    /// ```
    pub fn fail(&mut self, vm: VmId, now: Duration) -> Result<Vec<KindPlan>> {
        self.check_time(now)?;
        let i = self.vm_pos(vm)? as u32;
        let mut next = self.kinds.clone();
        for k in &mut next {
            k.alloc = k.ledger.fail(&k.alloc, i)?;
        }
        let plans = self.plans(&self.kinds, &next);
        self.kinds = next;
        self.warm_until[i as usize] = None;
        self.last = Some(now);
        Ok(plans)
    }

    /// The replacement for failed VM `vm` started at `now`: it gets its boot part back for
    /// every kind (see [`Boot`]), its demand history is forgotten, and its warm-up runs until
    /// `now + warmup`, when [`Agent::tick`] gives it the rest. Until then it is pinned (not
    /// re-divided by demand). Errors (nothing changed): unknown VM; not failed; time went
    /// backwards.
    ///
    /// ```
    /// # use vibra_alloc::*;
    /// # use std::time::Duration;
    /// let s = Duration::from_secs;
    /// let mut a = Agent::new(&[VmId(0), VmId(1)], 1, s(10), vec![KindConfig::memory(10)]).unwrap();
    /// a.fail(VmId(1), s(1)).unwrap();
    /// a.replacement_started(VmId(1), s(2)).unwrap();
    /// assert_eq!(a.allocation(&ResourceKind::Memory).unwrap(), &[5, 5]); // Boot::All for memory
    /// assert_eq!(a.phase(VmId(1)).unwrap(), VmPhase::WarmingUp);
    /// ```
    pub fn replacement_started(&mut self, vm: VmId, now: Duration) -> Result<Vec<KindPlan>> {
        self.check_time(now)?;
        let i = self.vm_pos(vm)?;
        let mut next = self.kinds.clone();
        for k in &mut next {
            let boot = match k.cfg.boot {
                Boot::All => u64::MAX,
                Boot::Floor => k.cfg.floor,
                Boot::Units(u) => u,
            };
            k.alloc = k
                .ledger
                .start_replacement(&k.alloc, i as u32, boot, k.cfg.floor)?;
            k.estimator.forget(i)?;
        }
        let plans = self.plans(&self.kinds, &next);
        self.kinds = next;
        self.warm_until[i] = Some(now.saturating_add(self.warmup));
        self.last = Some(now);
        Ok(plans)
    }

    /// Advances the agent to `now`: ends the warm-ups that are over (their VMs get the rest of
    /// their allocation back), then re-divides every kind whose period has come, and returns
    /// one plan per kind that changed (the composition of both steps, decreases first). Each
    /// kind is first due at the first tick. Errors (nothing changed): time went backwards.
    ///
    /// ```
    /// # use vibra_alloc::*;
    /// # use std::time::Duration;
    /// let s = Duration::from_secs;
    /// let mut a = Agent::new(&[VmId(0), VmId(1)], 1, s(10), vec![KindConfig::bandwidth(100)]).unwrap();
    /// a.observe(&ResourceKind::Bandwidth, &[1.0, 3.0]).unwrap();
    /// assert_eq!(a.tick(s(3)).unwrap().len(), 1);
    /// assert_eq!(a.allocation(&ResourceKind::Bandwidth).unwrap(), &[25, 75]);
    /// assert!(a.tick(s(2)).is_err());
    /// ```
    pub fn tick(&mut self, now: Duration) -> Result<Vec<KindPlan>> {
        self.check_time(now)?;
        let mut next = self.kinds.clone();
        let mut warm_until = self.warm_until.clone();
        // Warm-ups that are over end together, so each can give to the others.
        let mut ended = Vec::new();
        for (i, until) in warm_until.iter_mut().enumerate() {
            if until.is_some_and(|u| u <= now) {
                ended.push(i as u32);
                *until = None;
            }
        }
        if !ended.is_empty() {
            for k in &mut next {
                k.alloc = k.ledger.finish_warmups(&k.alloc, &ended, k.cfg.floor)?;
            }
        }
        for k in &mut next {
            if k.next_due.is_some_and(|due| due > now) {
                continue;
            }
            rebalance(k)?;
            let mut due = k.next_due.unwrap_or(now);
            while due <= now {
                due = due.saturating_add(k.cfg.period);
            }
            k.next_due = Some(due);
        }
        let plans = self.plans(&self.kinds, &next);
        self.kinds = next;
        self.warm_until = warm_until;
        self.last = Some(now);
        Ok(plans)
    }
}

/// Re-divides one kind among its live VMs: warming-up VMs keep what they hold, failed VMs
/// hold nothing, the live ones share the rest by weighted demand.
fn rebalance(k: &mut KindState) -> Result<()> {
    let live: Vec<usize> = (0..k.alloc.len())
        .filter(|&i| k.ledger.phase(i as u32) == Some(VmPhase::Live))
        .collect();
    if live.is_empty() {
        return Ok(());
    }
    let pinned: u128 = (0..k.alloc.len())
        .filter(|&i| k.ledger.phase(i as u32) == Some(VmPhase::WarmingUp))
        .map(|i| u128::from(k.alloc[i]))
        .sum();
    // sum(alloc) <= pool always holds, so this cannot underflow; saturate anyway.
    let avail = u64::try_from(u128::from(k.cfg.pool).saturating_sub(pinned)).unwrap_or(0);
    let floor = k.cfg.floor.min(avail / live.len() as u64);
    let demand: Vec<f64> = live.iter().map(|&i| k.estimator.demand()[i]).collect();
    let weights: Option<Vec<f64>> = k
        .cfg
        .weights
        .as_ref()
        .map(|w| live.iter().map(|&i| w[i]).collect());
    let target = split_units(&demand, weights.as_deref(), avail, floor)?;
    let current: Vec<u64> = live.iter().map(|&i| k.alloc[i]).collect();
    let current_sum = units_sum(&current);
    let target = if k.cfg.hysteresis > 0 && current_sum <= u128::from(avail) {
        damp(&current, &target, avail, floor, k.cfg.hysteresis)?
    } else {
        target
    };
    for (&i, t) in live.iter().zip(target) {
        k.alloc[i] = t;
    }
    // The live VMs were re-divided by demand: their credit records are void.
    k.ledger.rebalanced();
    Ok(())
}
