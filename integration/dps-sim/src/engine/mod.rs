//! The simulation state shared by both scheduler models and the fluid node scheduler; each
//! concern has its own module: [`progress`] (BSP iterations, dependencies, upstream
//! inference), [`exchange`] (utilisation and share exchange through the [`ShareLedger`]),
//! [`migration`] (the CRM and migration timers), [`reporting`] (traces, conservation checks,
//! the final report). The fluid driver here is event-driven (exact); the credit driver
//! (`credit.rs`) steps 1 ms.

mod exchange;
mod migration;
mod progress;
mod reporting;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::config::{Balancing, MigrationSettings, SimConfig, Strategy};
use crate::gps::gps_rates;
use crate::report::{MigrationEvent, ProgramResult, ShareSample, SimReport};
use crate::topology::Topology;
use dps_core::DpsError;
use dps_core::balance::{HostDemand, VmDemand, balance};
use dps_core::bank::BankRound;
use dps_core::crm::{HostLoad, Migration, VmLoad, bottlenecks, choose_migration};
use dps_core::formula::{excess, offer, shortage};
use dps_core::ledger::{Party, ProgramLayout, ShareLedger};
use dps_core::model::{HostId, ProgramId, VmId};
use dps_core::upstream::{UpstreamTracker, WakeRate, WakeUp};

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
    /// Per VM: how often its peers wake it from blocking (its program's pace).
    pub wake_rates: Vec<WakeRate>,
    /// Per program: its measured pace, iterations per second (the mean of its VMs'
    /// [`WakeRate`]s at the last exchange), for the demand-aware CRM.
    pub pace: Vec<Option<f64>>,
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
            wake_rates: vec![WakeRate::default(); nvm],
            pace: vec![None; cfg.programs.len()],
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
