//! The simulation state shared by both scheduler models: BSP progress and dependencies,
//! upstream inference, utilisation accounting, share exchange through the [`ShareLedger`],
//! and migrations. The fluid driver is event-driven (exact); the credit driver steps 1 ms.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::config::{Balancing, MigrationSettings, SimConfig, Strategy};
use crate::gps::gps_rates;
use crate::report::{MigrationEvent, ProgramResult, ShareSample, SimReport};
use crate::topology::Topology;
use dps_core::DpsError;
use dps_core::bank::BankRound;
use dps_core::crm::{
    HostDemand, HostLoad, Migration, VmLoad, balance, bottlenecks, choose_migration,
};
use dps_core::formula::{excess, offer, shortage};
use dps_core::ledger::{Party, ProgramLayout, ShareLedger};
use dps_core::model::{HostId, ProgramId, VmId};
use dps_core::upstream::{UpstreamTracker, WakeUp};

/// The smallest scheduling weight, as a share: Xen's weight 1 when 0.1 share is weight 256.
pub(crate) const MIN_WEIGHT_SHARE: f64 = 1.0 / 2560.0;

/// A host with less idle CPU than this fraction of its capacity had none to give.
pub(crate) const IDLE_EPS: f64 = 0.01;

/// A VM that used at least this fraction of its share used all of it (the credit model's
/// 10 ms accounting leaves a little noise).
pub(crate) const FULL_USE: f64 = 0.98;

/// Work below this (reference CPU-seconds) counts as done: absorbs float error.
pub(crate) const WORK_EPS: f64 = 1e-9;

#[derive(Debug, Clone)]
pub(crate) struct Vm {
    pub prog: u32,
    pub host: u32,
    pub demand: f64,
    pub remaining: f64,
    pub rate: f64,
    pub done: u32,
    pub waiting: u32,
    pub runnable: bool,
    pub paused: bool,
    pub used: f64,
}

impl Vm {
    /// Competes for CPU now.
    pub fn active(&self) -> bool {
        self.runnable && !self.paused
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Prog {
    pub first: u32,
    pub n: u32,
    pub topology: Topology,
    pub iterations: u32,
    pub neighbours: Vec<Vec<u32>>,
    pub arrived: u32,
    pub finished_vms: u32,
    pub done_at: Option<f64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub vms: Vec<u32>,
    pub last: f64,
    pub version: u64,
    pub capacity: f64,
    pub speed: f64,
    pub bg_weight: f64,
    pub bg_rate: f64,
    pub bg_used: f64,
    pub used_period: f64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Timer {
    /// The migrating VM stops (pre-copy done): it moves and is paused.
    Stop(u32, u32),
    /// The migrated VM resumes on its new host.
    Resume(u32),
}

pub(crate) struct Engine<'c> {
    pub cfg: &'c SimConfig,
    pub vms: Vec<Vm>,
    /// Upstream trackers, apart from the hot per-VM state (touched on wake-ups and exchanges).
    pub trackers: Vec<UpstreamTracker<u32>>,
    pub progs: Vec<Prog>,
    pub hosts: Vec<Host>,
    pub ledger: ShareLedger,
    pub now: f64,
    pub period_start: f64,
    pub cycle: u32,
    pub programs_left: usize,
    pub timers: BinaryHeap<Reverse<(OrdF64, u64, usize)>>,
    pub timer_kinds: Vec<Timer>,
    pub migrating: Vec<bool>,
    /// Per VM: where its current (or last) migration goes.
    pub move_target: Vec<u32>,
    /// Per VM: the earliest time the CRM may pick it again (its last migration's end plus
    /// [`crate::MigrationSettings::cooldown_s`]).
    pub cooldown_until: Vec<f64>,
    pub report: SimReport,
    pub total_iterations: u64,
    pub shortages_pending: Vec<f64>,
}

/// f64 with a total order, for the timer heap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OrdF64(pub f64);
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Deterministic per-(seed, vm, iteration) noise in [0, 1): order-independent, so engines and
/// any parallel phase draw the same numbers.
fn unit_noise(seed: u64, vm: u32, iteration: u32) -> f64 {
    let mut z =
        seed ^ (u64::from(vm) << 32 | u64::from(iteration)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl<'c> Engine<'c> {
    pub fn new(cfg: &'c SimConfig) -> Result<Self, DpsError> {
        cfg.validate()?;
        let layouts: Vec<ProgramLayout> = cfg
            .programs
            .iter()
            .map(|p| ProgramLayout::new(p.total_share, p.vms.iter().map(|v| v.host).collect()))
            .collect::<Result<_, _>>()?;
        let mut ledger = ShareLedger::new(cfg.hosts.clone(), &layouts)?;
        ledger.set_acceptance(cfg.safeguards.acceptance);
        if cfg.safeguards.host_neutral {
            for h in 0..cfg.hosts.len() {
                let id = HostId(h as u32);
                let b = ledger.booked(id)?;
                ledger.set_booking_limit(id, b)?;
            }
        }
        let mut hosts: Vec<Host> = cfg
            .hosts
            .iter()
            .map(|h| Host {
                vms: Vec::new(),
                last: 0.0,
                version: 0,
                capacity: h.capacity(),
                speed: h.speed(),
                bg_weight: h.background(),
                bg_rate: 0.0,
                bg_used: 0.0,
                used_period: 0.0,
            })
            .collect();
        let mut vms = Vec::new();
        let mut trackers = Vec::new();
        let mut progs = Vec::new();
        for (p, spec) in cfg.programs.iter().enumerate() {
            let n = spec.vms.len() as u32;
            let first = vms.len() as u32;
            let neighbours = if spec.topology == Topology::AllToAll {
                Vec::new()
            } else {
                (0..n)
                    .map(|i| spec.topology.neighbours(i, n))
                    .collect::<Result<_, _>>()?
            };
            for v in &spec.vms {
                hosts[v.host.0 as usize].vms.push(vms.len() as u32);
                vms.push(Vm {
                    prog: p as u32,
                    host: v.host.0,
                    demand: v.demand,
                    remaining: 0.0,
                    rate: 0.0,
                    done: 0,
                    waiting: 0,
                    runnable: false,
                    paused: false,
                    used: 0.0,
                });
                trackers.push(UpstreamTracker::new(cfg.upstream_ttl_s)?);
            }
            progs.push(Prog {
                first,
                n,
                topology: spec.topology,
                iterations: spec.iterations,
                neighbours,
                arrived: 0,
                finished_vms: 0,
                done_at: None,
            });
        }
        let nvm = vms.len();
        let mut e = Engine {
            cfg,
            vms,
            trackers,
            progs,
            hosts,
            ledger,
            now: 0.0,
            period_start: 0.0,
            cycle: 0,
            programs_left: cfg.programs.len(),
            timers: BinaryHeap::new(),
            timer_kinds: Vec::new(),
            migrating: vec![false; nvm],
            move_target: vec![0; nvm],
            cooldown_until: vec![f64::NEG_INFINITY; nvm],
            report: SimReport::default(),
            total_iterations: 0,
            shortages_pending: vec![0.0; nvm],
        };
        for p in 0..e.progs.len() {
            if e.progs[p].iterations == 0 {
                e.finish_program(p, 0.0)?;
                continue;
            }
            let (first, n) = (e.progs[p].first, e.progs[p].n);
            for vm in first..first + n {
                e.start_iteration(vm);
            }
        }
        if e.cfg.trace_shares {
            e.trace();
        }
        Ok(e)
    }

    fn start_iteration(&mut self, vm: u32) {
        let v = &mut self.vms[vm as usize];
        let j = self.cfg.jitter;
        let scale = if j > 0.0 {
            1.0 - j + 2.0 * j * unit_noise(self.cfg.seed, vm, v.done)
        } else {
            1.0
        };
        v.remaining = v.demand * scale;
        v.runnable = true;
    }

    /// VM `vm` finished its current iteration at `t`. `before_wake(engine, host, woken_vm)` is
    /// called for each VM it unblocks, before that VM becomes runnable, so the driver can bring
    /// that host's clock to `t`.
    pub fn complete(
        &mut self,
        vm: u32,
        t: f64,
        before_wake: &mut dyn FnMut(&mut Self, u32, u32),
    ) -> Result<(), DpsError> {
        let p = self.vms[vm as usize].prog as usize;
        {
            let v = &mut self.vms[vm as usize];
            v.runnable = false;
            v.remaining = 0.0;
            v.done += 1;
        }
        self.total_iterations += 1;
        let done = self.vms[vm as usize].done;
        let iterations = self.progs[p].iterations;
        if done == iterations {
            self.progs[p].finished_vms += 1;
            if self.progs[p].finished_vms == self.progs[p].n {
                self.finish_program(p, t)?;
                return Ok(());
            }
        }
        let first = self.progs[p].first;
        if self.progs[p].topology == Topology::AllToAll {
            self.progs[p].arrived += 1;
            if self.progs[p].arrived == self.progs[p].n {
                self.progs[p].arrived = 0;
                for other in first..first + self.progs[p].n {
                    if self.vms[other as usize].done < iterations {
                        let h = self.vms[other as usize].host;
                        before_wake(self, h, other);
                        if other != vm {
                            self.trackers[other as usize].observe(WakeUp {
                                sender: vm,
                                receiver_was_blocked: true,
                                at: t,
                            });
                        }
                        self.start_iteration(other);
                    }
                }
            }
            return Ok(());
        }
        let local = vm - first;
        let neighbours = std::mem::take(&mut self.progs[p].neighbours[local as usize]);
        for &nb in &neighbours {
            let o = (first + nb) as usize;
            if self.vms[o].done == done && !self.vms[o].runnable && self.vms[o].done < iterations {
                self.vms[o].waiting -= 1;
                if self.vms[o].waiting == 0 {
                    let h = self.vms[o].host;
                    before_wake(self, h, first + nb);
                    self.trackers[o].observe(WakeUp {
                        sender: vm,
                        receiver_was_blocked: true,
                        at: t,
                    });
                    self.start_iteration(first + nb);
                }
            }
        }
        if done < iterations {
            let missing = neighbours
                .iter()
                .filter(|&&nb| self.vms[(first + nb) as usize].done < done)
                .count() as u32;
            self.vms[vm as usize].waiting = missing;
            if missing == 0 {
                self.start_iteration(vm);
            }
        }
        self.progs[p].neighbours[local as usize] = neighbours;
        Ok(())
    }

    fn finish_program(&mut self, p: usize, t: f64) -> Result<(), DpsError> {
        if self.progs[p].done_at.is_none() {
            self.progs[p].done_at = Some(t);
            self.programs_left -= 1;
            self.ledger.retire(ProgramId(p as u32))?;
        }
        Ok(())
    }

    /// Per-VM weights of a host's entities for the node-level scheduler: VM shares, plus the
    /// background load last.
    pub fn host_weights(&self, h: usize, out_ids: &mut Vec<u32>, out_w: &mut Vec<f64>) {
        out_ids.clear();
        out_w.clear();
        let shares = self.ledger.shares();
        for &vm in &self.hosts[h].vms {
            if self.vms[vm as usize].active() {
                out_ids.push(vm);
                // Xen's smallest weight is 1 (a share of 1/2560 here): a VM whose share the
                // plain formulas drove to 0 crawls instead of never running again.
                out_w.push(shares[vm as usize].max(MIN_WEIGHT_SHARE));
            }
        }
        if self.hosts[h].bg_weight > 0.0 {
            out_w.push(self.hosts[h].bg_weight);
        }
    }

    /// Brings host `h`'s fluid clock to `t`.
    pub fn advance_fluid(&mut self, h: usize, t: f64) {
        let host = &mut self.hosts[h];
        let dt = t - host.last;
        if dt <= 0.0 {
            return;
        }
        let speed = host.speed;
        let mut used = 0.0;
        for &vm in &host.vms {
            let v = &mut self.vms[vm as usize];
            if v.active() && v.rate > 0.0 {
                let work = v.rate * speed * dt;
                v.remaining -= work;
                v.used += work;
                used += work;
            }
        }
        host.bg_used += host.bg_rate * dt;
        host.used_period += used + host.bg_rate * speed * dt;
        host.last = t;
    }

    /// Recomputes host `h`'s fluid rates; returns the time of its next completion.
    pub fn rates_fluid(
        &mut self,
        h: usize,
        ids: &mut Vec<u32>,
        w: &mut Vec<f64>,
        r: &mut Vec<f64>,
    ) -> f64 {
        self.host_weights(h, ids, w);
        r.resize(w.len(), 0.0);
        let host = &self.hosts[h];
        gps_rates(host.capacity, host.capacity.min(1.0), w, r);
        let speed = host.speed;
        let last = host.last;
        let mut next = f64::INFINITY;
        for (k, &vm) in ids.iter().enumerate() {
            let v = &mut self.vms[vm as usize];
            v.rate = r[k];
            if r[k] > 0.0 {
                next = next.min(last + v.remaining.max(0.0) / (r[k] * speed));
            }
        }
        // Inactive VMs hold no rate.
        for &vm in &self.hosts[h].vms {
            let v = &mut self.vms[vm as usize];
            if !v.active() {
                v.rate = 0.0;
            }
        }
        self.hosts[h].bg_rate = if self.hosts[h].bg_weight > 0.0 {
            *r.last().unwrap_or(&0.0)
        } else {
            0.0
        };
        next
    }

    /// The exchange at the end of a period: utilisation, the strategy, the CRM.
    pub fn exchange(&mut self, t: f64) -> Result<(), DpsError> {
        let span = t - self.period_start;
        self.period_start = t;
        self.cycle += 1;
        if span <= 0.0 {
            return Ok(());
        }
        let util: Vec<f64> = self.vms.iter().map(|v| v.used / span).collect();
        for v in &mut self.vms {
            v.used = 0.0;
        }
        for tr in &mut self.trackers {
            tr.expire(t);
        }
        let host_used: Vec<f64> = self.hosts.iter().map(|h| h.used_period / span).collect();
        for h in &mut self.hosts {
            h.used_period = 0.0;
        }
        let before: Vec<f64> = (0..self.hosts.len())
            .map(|h| self.ledger.booked(HostId(h as u32)).unwrap_or(0.0))
            .collect();
        match self.cfg.strategy {
            Strategy::Static => {}
            Strategy::FullyDistributed { withhold } => {
                self.exchange_distributed(&util, withhold, t)?
            }
            Strategy::Bank { every, banker } => {
                self.exchange_bank(&util, every, banker.policy(), false, t)?;
            }
            Strategy::CriticalPath { every } => {
                self.exchange_bank(&util, every, &dps_core::bank::CappedBanker, true, t)?;
            }
        }
        for (h, &b) in before.iter().enumerate() {
            let after = self.ledger.booked(HostId(h as u32))?;
            let cap = self.cfg.hosts[h].capacity_shares();
            if after > cap + 1e-9 && after > b + 1e-9 {
                self.report.capacity_violations += 1;
            }
        }
        if self.cfg.trace_shares {
            self.trace();
        }
        self.check_conservation()?;
        if self.cfg.migration.is_some() {
            self.plan_migrations(&util, &host_used, t)?;
        }
        for h in 0..self.hosts.len() {
            self.report.rejections += self.ledger.rejections(HostId(h as u32))?;
        }
        self.ledger.clear_rejections();
        Ok(())
    }

    fn floor(&self, vm: usize) -> f64 {
        let p = &self.progs[self.vms[vm].prog as usize];
        self.cfg.safeguards.min_share_fraction
            * self.cfg.programs[self.vms[vm].prog as usize].total_share
            / f64::from(p.n)
    }

    fn running(&self, vm: usize) -> bool {
        let v = &self.vms[vm];
        self.progs[v.prog as usize].done_at.is_none()
    }

    #[allow(clippy::needless_range_loop)] // `vm` indexes the ledger, util and the VM table alike
    fn exchange_distributed(
        &mut self,
        util: &[f64],
        withhold: Option<f64>,
        t: f64,
    ) -> Result<(), DpsError> {
        let mut ups = Vec::new();
        for vm in 0..self.vms.len() {
            if !self.running(vm) {
                continue;
            }
            ups.clear();
            ups.extend(self.trackers[vm].upstreams(t));
            let p = ups.len() as u32;
            if p == 0 {
                continue;
            }
            let w = self.ledger.shares()[vm];
            let wh = withhold.unwrap_or_else(|| dps_core::formula::default_withhold(p));
            // The floor: excess is computed against max(u, floor) so the VM keeps at least it.
            let u = util[vm].max(self.floor(vm));
            let s = offer(w, u, wh, p)?;
            if s <= 1e-12 {
                continue;
            }
            for &up in &ups {
                self.ledger
                    .transfer(Party::Vm(VmId(vm as u32)), Party::Vm(VmId(up)), s)?;
            }
        }
        Ok(())
    }

    fn exchange_bank(
        &mut self,
        util: &[f64],
        every: u32,
        banker: &dyn dps_core::bank::BankerPolicy,
        critical: bool,
        t: f64,
    ) -> Result<(), DpsError> {
        // Who is someone's upstream (critical path), for the critical-path policy.
        let mut is_upstream = vec![false; if critical { self.vms.len() } else { 0 }];
        if critical {
            for tr in &self.trackers {
                for up in tr.upstreams(t) {
                    is_upstream[up as usize] = true;
                }
            }
        }
        for vm in 0..self.vms.len() {
            if !self.running(vm) {
                continue;
            }
            let w = self.ledger.shares()[vm];
            let u = util[vm].max(self.floor(vm));
            let waited = self.trackers[vm].count(t) > 0;
            let e = excess(w, u)?;
            if e > 1e-12 && (!critical || (waited && !is_upstream[vm])) {
                let p = self.vms[vm].prog;
                self.ledger
                    .transfer(Party::Vm(VmId(vm as u32)), Party::Bank(ProgramId(p)), e)?;
                self.shortages_pending[vm] = 0.0;
            } else if !critical || is_upstream[vm] {
                let r = self.ledger.unbooked(HostId(self.vms[vm].host))?;
                self.shortages_pending[vm] = shortage(w, util[vm], r)?;
            } else {
                self.shortages_pending[vm] = 0.0;
            }
        }
        if self.cycle % every != 0 {
            return Ok(());
        }
        let (mut shares, mut short, mut room, mut grants) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for p in 0..self.progs.len() {
            if self.progs[p].done_at.is_some() {
                continue;
            }
            let balance = self.ledger.bank(ProgramId(p as u32))?;
            if balance <= 1e-12 {
                continue;
            }
            let range =
                self.progs[p].first as usize..(self.progs[p].first + self.progs[p].n) as usize;
            shares.clear();
            short.clear();
            room.clear();
            for vm in range.clone() {
                shares.push(self.ledger.shares()[vm]);
                short.push(self.shortages_pending[vm]);
                room.push(self.ledger.unbooked(HostId(self.vms[vm].host))?);
            }
            // The critical-path banker keeps the remainder for the critical VMs only.
            if critical {
                for (k, vm) in range.clone().enumerate() {
                    if !is_upstream[vm] {
                        room[k] = 0.0;
                        shares[k] = 0.0;
                    }
                }
            }
            grants.clear();
            grants.resize(shares.len(), 0.0);
            banker.grants(
                &BankRound {
                    shares: &shares,
                    shortages: &short,
                    headroom: &room,
                    balance,
                },
                &mut grants,
            )?;
            for (k, vm) in range.enumerate() {
                let g = grants[k].min(self.ledger.bank(ProgramId(p as u32))?);
                if g > 1e-12 {
                    self.ledger.transfer(
                        Party::Bank(ProgramId(p as u32)),
                        Party::Vm(VmId(vm as u32)),
                        g,
                    )?;
                }
                self.shortages_pending[vm] = 0.0;
            }
        }
        Ok(())
    }

    fn plan_migrations(&mut self, util: &[f64], host_used: &[f64], t: f64) -> Result<(), DpsError> {
        let Some(m) = self.cfg.migration else {
            return Ok(());
        };
        let chosen = match m.balancing {
            Balancing::Utilization => self.utilization_moves(&m, util, host_used, t)?,
            Balancing::DemandAware => self.demand_aware_moves(&m, util, host_used, t)?,
        };
        let time = m.time()?;
        let cooldown = match m.balancing {
            Balancing::Utilization => m.cooldown_s,
            Balancing::DemandAware => m.cooldown_periods * self.cfg.period_s,
        };
        for mig in chosen {
            let vm = mig.vm.0 as usize;
            self.migrating[vm] = true;
            self.move_target[vm] = mig.to.0;
            self.cooldown_until[vm] = t + time.total_s + cooldown;
            self.report.migration_log.push(MigrationEvent {
                t,
                vm: mig.vm.0,
                from: mig.from.0,
                to: mig.to.0,
            });
            self.push_timer(
                t + time.total_s - time.downtime_s,
                Timer::Stop(vm as u32, mig.to.0),
            );
            self.push_timer(t + time.total_s, Timer::Resume(vm as u32));
            self.report.migrations += 1;
        }
        Ok(())
    }

    /// VMs the CRM may pick now: running, not migrating, past their cooldown, not done.
    fn movable(&self, vm: usize, t: f64) -> bool {
        self.running(vm)
            && !self.migrating[vm]
            && t >= self.cooldown_until[vm]
            && self.vms[vm].done < self.progs[self.vms[vm].prog as usize].iterations
    }

    fn vm_load(&self, vm: usize, util: &[f64]) -> VmLoad {
        VmLoad {
            vm: VmId(vm as u32),
            host: HostId(self.vms[vm].host),
            used: util[vm],
            share: self.ledger.shares()[vm],
        }
    }

    /// Section 5.2.2 as written: [`bottlenecks`] by rejection or utilisation threshold, then
    /// [`choose_migration`] for each, at most `max_per_period`.
    fn utilization_moves(
        &self,
        m: &MigrationSettings,
        util: &[f64],
        host_used: &[f64],
        t: f64,
    ) -> Result<Vec<Migration>, DpsError> {
        let hosts: Vec<HostLoad> = (0..self.hosts.len())
            .map(|h| {
                let id = HostId(h as u32);
                Ok(HostLoad {
                    host: id,
                    capacity: self.cfg.hosts[h].capacity_shares(),
                    used: host_used[h],
                    booked: self.ledger.booked(id)?,
                    rejections: self.ledger.rejections(id)?,
                })
            })
            .collect::<Result<_, DpsError>>()?;
        let vms: Vec<VmLoad> = (0..self.vms.len())
            .filter(|&vm| self.movable(vm, t))
            .map(|vm| self.vm_load(vm, util))
            .collect();
        let mut out = Vec::new();
        for b in bottlenecks(&hosts, m.full) {
            if out.len() >= m.max_per_period {
                break;
            }
            if let Some(mig) = choose_migration(b, &hosts, &vms, m.rule, m.full)? {
                out.push(mig);
            }
        }
        Ok(out)
    }

    /// [`dps_core::balance`] over the hosts with no migration in flight.
    fn demand_aware_moves(
        &self,
        m: &MigrationSettings,
        util: &[f64],
        host_used: &[f64],
        t: f64,
    ) -> Result<Vec<Migration>, DpsError> {
        let mut in_flight = vec![false; self.hosts.len()];
        for (vm, &moving) in self.migrating.iter().enumerate() {
            if moving {
                in_flight[self.vms[vm].host as usize] = true;
                in_flight[self.move_target[vm] as usize] = true;
            }
        }
        let unmet = self.unmet_shortage(util, host_used)?;
        let hosts: Vec<HostDemand> = (0..self.hosts.len())
            .filter(|&h| !in_flight[h])
            .map(|h| HostDemand {
                host: HostId(h as u32),
                capacity: self.cfg.hosts[h].capacity_shares(),
                used: host_used[h],
                unmet: unmet[h],
            })
            .collect();
        let vms: Vec<VmLoad> = (0..self.vms.len())
            .filter(|&vm| self.movable(vm, t) && !in_flight[self.vms[vm].host as usize])
            .map(|vm| self.vm_load(vm, util))
            .collect();
        balance(&hosts, &vms, m.max_per_period)
    }

    /// Per host: unmet shortage in the last period (section 5.2.2's signal to the CRM). It had
    /// no idle CPU (less than [`IDLE_EPS`] of capacity: with idle CPU, every runnable VM got
    /// all it asked for) and either a grant to one of its VMs was rejected, or it was fully
    /// booked and one of its running VMs used at least
    /// [`FULL_USE`] of what its share guarantees (its share, scaled by capacity / booking when
    /// a migration left the host booked above capacity): that VM wanted more than the host
    /// could give.
    pub(crate) fn unmet_shortage(
        &self,
        util: &[f64],
        host_used: &[f64],
    ) -> Result<Vec<bool>, DpsError> {
        let shares = self.ledger.shares();
        (0..self.hosts.len())
            .map(|h| {
                let id = HostId(h as u32);
                let cap = self.cfg.hosts[h].capacity_shares();
                // With idle CPU every runnable VM got all it asked for.
                let no_idle = host_used[h] >= cap * (1.0 - IDLE_EPS);
                if !no_idle {
                    return Ok(false);
                }
                if self.ledger.rejections(id)? > 0 {
                    return Ok(true);
                }
                let booked = self.ledger.booked(id)?;
                let full = self.ledger.unbooked(id)? <= 1e-9;
                // What a VM's share guarantees it: all of it, or its proportional part of
                // the capacity when a migration left the host booked above capacity.
                let scale = if booked > cap { cap / booked } else { 1.0 };
                let wants_more = self.hosts[h].vms.iter().any(|&vm| {
                    let vm = vm as usize;
                    self.running(vm) && util[vm] >= FULL_USE * shares[vm] * scale
                });
                Ok(full && wants_more)
            })
            .collect()
    }

    fn push_timer(&mut self, at: f64, kind: Timer) {
        let k = self.timer_kinds.len();
        self.timer_kinds.push(kind);
        self.timers.push(Reverse((OrdF64(at), k as u64, k)));
    }

    pub fn next_timer(&self) -> f64 {
        self.timers
            .peek()
            .map_or(f64::INFINITY, |Reverse((t, _, _))| t.0)
    }

    /// Records the worst conservation error of any program now (SPEC 6's invariant).
    pub(crate) fn check_conservation(&mut self) -> Result<(), DpsError> {
        for p in 0..self.progs.len() {
            let e = self.ledger.conservation_error(ProgramId(p as u32))?.abs();
            if e > self.report.max_conservation_error {
                self.report.max_conservation_error = e;
            }
        }
        Ok(())
    }

    /// Applies the earliest timer; returns the hosts whose entity set changed.
    pub fn fire_timer(&mut self) -> Result<Vec<usize>, DpsError> {
        let Some(Reverse((_, _, k))) = self.timers.pop() else {
            return Ok(Vec::new());
        };
        match self.timer_kinds[k] {
            Timer::Stop(vm, to) => {
                let from = self.vms[vm as usize].host as usize;
                self.hosts[from].vms.retain(|&x| x != vm);
                self.hosts[to as usize].vms.push(vm);
                self.vms[vm as usize].host = to;
                self.vms[vm as usize].paused = true;
                self.ledger.move_vm(VmId(vm), HostId(to))?;
                self.check_conservation()?;
                Ok(vec![from, to as usize])
            }
            Timer::Resume(vm) => {
                self.vms[vm as usize].paused = false;
                self.migrating[vm as usize] = false;
                self.check_conservation()?;
                Ok(vec![self.vms[vm as usize].host as usize])
            }
        }
    }

    fn trace(&mut self) {
        let shares = self.ledger.shares();
        for p in 0..self.progs.len() {
            let first = self.progs[p].first;
            for k in 0..self.progs[p].n {
                let vm = first + k;
                self.report.shares.push(ShareSample {
                    t: self.now,
                    cycle: self.cycle,
                    program: p as u32,
                    vm: k,
                    share: shares[vm as usize],
                });
            }
        }
    }

    pub fn progress(&self) -> f64 {
        let total: u64 = self
            .progs
            .iter()
            .map(|p| u64::from(p.n) * u64::from(p.iterations))
            .sum();
        if total == 0 {
            1.0
        } else {
            self.total_iterations as f64 / total as f64
        }
    }

    pub fn finish(mut self) -> SimReport {
        let mut sum = 0.0;
        let mut makespan: f64 = 0.0;
        for p in &self.progs {
            let r = p.done_at.unwrap_or(self.now);
            sum += r;
            makespan = makespan.max(r);
            self.report.programs.push(ProgramResult { response_s: r });
        }
        self.report.mean_response_s = if self.progs.is_empty() {
            0.0
        } else {
            sum / self.progs.len() as f64
        };
        self.report.makespan_s = makespan;
        self.report.vm_iterations = self.total_iterations;
        self.report.exchanges = self.cycle;
        self.report.background_cpu_s = self.hosts.iter().map(|h| h.bg_used).sum();
        self.report
    }
}

/// Each host's next completion time in a tournament tree: O(log hosts) updates, the earliest
/// (ties to the lowest host index) at the root, no stale entries as a heap would keep.
struct NextEvents {
    size: usize,
    tree: Vec<(f64, u32)>,
}

impl NextEvents {
    fn new(hosts: usize) -> Self {
        let size = hosts.next_power_of_two().max(1);
        let mut tree = vec![(f64::INFINITY, u32::MAX); 2 * size];
        for h in 0..hosts {
            tree[size + h].1 = h as u32;
        }
        Self { size, tree }
    }

    fn set(&mut self, host: usize, t: f64) {
        let mut i = self.size + host;
        self.tree[i].0 = t;
        while i > 1 {
            i /= 2;
            let (a, b) = (self.tree[2 * i], self.tree[2 * i + 1]);
            self.tree[i] = if (b.0, b.1) < (a.0, a.1) { b } else { a };
        }
    }

    fn first(&self) -> (f64, usize) {
        let (t, h) = self.tree[1];
        (t, h as usize)
    }
}

/// The fluid, event-driven driver.
pub(crate) fn run_fluid(
    mut e: Engine<'_>,
    progress: &mut dyn FnMut(f64),
) -> Result<SimReport, DpsError> {
    let nh = e.hosts.len();
    let mut queue = NextEvents::new(nh);
    let (mut ids, mut w, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for h in 0..nh {
        let next = e.rates_fluid(h, &mut ids, &mut w, &mut r);
        queue.set(h, next);
    }
    let mut next_period = e.cfg.period_s;
    let mut dirty: Vec<usize> = Vec::new();
    let mut is_dirty = vec![false; nh];
    let mut finished: Vec<u32> = Vec::new();
    let mut last_progress = 0.0;
    while e.programs_left > 0 {
        let (th, next_host) = queue.first();
        let tg = next_period.min(e.next_timer());
        let t = th.min(tg);
        if !t.is_finite() || t > e.cfg.max_time_s {
            return Err(DpsError::Unsupported(format!(
                "simulation did not finish by t = {} s ({} programs left)",
                e.now, e.programs_left
            )));
        }
        e.now = t;
        dirty.clear();
        if th <= tg {
            let h = next_host;
            e.advance_fluid(h, t);
            is_dirty[h] = true;
            dirty.push(h);
            finished.clear();
            for &vm in &e.hosts[h].vms {
                let v = &e.vms[vm as usize];
                if v.active() && v.remaining <= WORK_EPS {
                    finished.push(vm);
                }
            }
            for &vm in &finished {
                e.complete(vm, t, &mut |e: &mut Engine<'_>, hh: u32, _woken: u32| {
                    let hh = hh as usize;
                    if !is_dirty[hh] {
                        e.advance_fluid(hh, t);
                        is_dirty[hh] = true;
                        dirty.push(hh);
                    }
                })?;
            }
        } else {
            for h in 0..nh {
                e.advance_fluid(h, t);
            }
            if next_period <= e.next_timer() {
                e.exchange(t)?;
                next_period += e.cfg.period_s;
                dirty.extend(0..nh);
            } else {
                for h in e.fire_timer()? {
                    dirty.push(h);
                }
            }
            let p = e.progress();
            if p - last_progress >= 0.01 {
                progress(p);
                last_progress = p;
            }
        }
        for &h in &dirty {
            is_dirty[h] = false;
            e.hosts[h].version += 1;
            let next = e.rates_fluid(h, &mut ids, &mut w, &mut r);
            queue.set(h, if next.is_finite() { next.max(t) } else { next });
        }
    }
    progress(1.0);
    Ok(e.finish())
}
