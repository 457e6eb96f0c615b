//! What a simulation runs: hosts, programs, the exchange strategy and its safeguards, the
//! node-level scheduler model, migrations.

use crate::topology::Topology;
use dps_core::DpsError;
use dps_core::bank::{BankerPolicy, CappedBanker, SpecBanker};
use dps_core::crm::{Destination, MigrationCost, MigrationTime};
use dps_core::ledger::Acceptance;
use dps_core::model::{HostId, HostSpec};

/// One VM of a simulated program.
///
/// ```
/// let v = dps_sim::VmSpec { host: dps_core::HostId(0), demand: 0.05 };
/// assert_eq!(v.demand, 0.05);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VmSpec {
    /// Where it starts.
    pub host: HostId,
    /// CPU work per BSP iteration, in reference-CPU seconds (hidden from DPS, as in 5.5.6).
    pub demand: f64,
}

/// A BSP program: N VMs, a topology, a number of iterations and its total W.
///
/// ```
/// use dps_sim::{ProgramSpec, Topology, VmSpec};
/// let p = ProgramSpec { topology: Topology::Linear, iterations: 10, total_share: 0.4,
///     vms: (0..4).map(|i| VmSpec { host: dps_core::HostId(i), demand: 1.0 / (i + 1) as f64 }).collect() };
/// assert_eq!(p.vms.len(), 4);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramSpec {
    /// Who waits for whom between iterations.
    pub topology: Topology,
    /// Iterations to run.
    pub iterations: u32,
    /// W: the most CPU the program may book, split W/N at the start.
    pub total_share: f64,
    /// The VMs.
    pub vms: Vec<VmSpec>,
}

/// The node-level CPU scheduler model.
///
/// ```
/// assert_eq!(dps_sim::SchedulerMode::default(), dps_sim::SchedulerMode::Fluid);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchedulerMode {
    /// Work-conserving generalised processor sharing (exact, event-driven): the baseline.
    #[default]
    Fluid,
    /// Like Xen's credit scheduler: 10 ms ticks, 30 ms slices and accounting periods, 10
    /// credits per ms, BOOST/UNDER/OVER priorities, weight 256 for a 0.1 share; simulated in
    /// 1 ms steps. Hosts must have a whole number of CPUs.
    Credit,
}

/// Which banker routine a bank-assisted program uses.
///
/// ```
/// assert_ne!(dps_sim::Banker::Spec, dps_sim::Banker::Capped);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Banker {
    /// [`SpecBanker`]: the plain SPEC rule.
    #[default]
    Spec,
    /// [`CappedBanker`]: grants within each host's room.
    Capped,
}

impl Banker {
    pub(crate) fn policy(self) -> &'static dyn BankerPolicy {
        match self {
            Banker::Spec => &SpecBanker,
            Banker::Capped => &CappedBanker,
        }
    }
}

/// The share-exchange strategy of every program in the run.
///
/// ```
/// let s = dps_sim::Strategy::Bank { every: 1, banker: dps_sim::Banker::Spec };
/// assert!(s.is_dps());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// Shares stay W/N: the dissertation's baseline.
    Static,
    /// Eq. 5.1 to the inferred upstreams; `withhold` None means 1/(P+1).
    FullyDistributed {
        /// wh in [0, 1], or None for 1/(P+1).
        withhold: Option<f64>,
    },
    /// Eq. 5.2: deposit excess each period, redistribute every `every` periods (B = every * T).
    Bank {
        /// B / T, >= 1.
        every: u32,
        /// The banker routine.
        banker: Banker,
    },
    /// Beyond the dissertation (see the crate README): a bank that only feeds the critical
    /// path. Only VMs that others waited on (they appear as someone's upstream) report a
    /// shortage, only VMs that waited deposit, each VM keeps a floor, and grants stay within
    /// host room. Shares never move *away* from a VM that others wait for.
    CriticalPath {
        /// B / T, >= 1.
        every: u32,
    },
}

impl Strategy {
    /// The "beyond the dissertation" policy: bank-assisted exchange every period with the
    /// [`CappedBanker`]; pair it with [`Safeguards::guarded`].
    ///
    /// ```
    /// assert_eq!(dps_sim::Strategy::guarded().name(), "bank");
    /// ```
    pub fn guarded() -> Self {
        Strategy::Bank {
            every: 1,
            banker: Banker::Capped,
        }
    }

    /// Whether shares move at all.
    ///
    /// ```
    /// assert!(!dps_sim::Strategy::Static.is_dps());
    /// ```
    pub fn is_dps(&self) -> bool {
        !matches!(self, Strategy::Static)
    }

    /// A short name for reports.
    ///
    /// ```
    /// assert_eq!(dps_sim::Strategy::Static.name(), "static");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Static => "static",
            Strategy::FullyDistributed { .. } => "distributed",
            Strategy::Bank { .. } => "bank",
            Strategy::CriticalPath { .. } => "critical",
        }
    }
}

/// Safeguards of "beyond the dissertation" (SPEC 6 allows policies to add them).
///
/// ```
/// let g = dps_sim::Safeguards::default();
/// assert_eq!(g.min_share_fraction, 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Safeguards {
    /// A VM never gives away share below this fraction of W/N (0: plain formulas).
    pub min_share_fraction: f64,
    /// No host's booking may grow above what it was at the start (or its capacity): every VM
    /// keeps not only its guaranteed CPU but its whole proportional slice of the host, so DPS
    /// cannot take free CPU from other programs.
    pub host_neutral: bool,
    /// How receivers answer a transfer their host cannot book in full: reject it whole
    /// (section 5.2.2, the default) or take what fits ([`Acceptance::UpToRoom`]).
    pub acceptance: Acceptance,
}

impl Safeguards {
    /// The safeguards of the guarded policy: every VM keeps at least half of W/N, so one
    /// period without use (a period shorter than an iteration) never starves it.
    ///
    /// ```
    /// assert_eq!(dps_sim::Safeguards::guarded().min_share_fraction, 0.5);
    /// ```
    pub fn guarded() -> Self {
        Self {
            min_share_fraction: 0.5,
            host_neutral: false,
            acceptance: Acceptance::Whole,
        }
    }

    /// The safeguards of the recommended policy in a cluster shared by several programs
    /// (figs. 5.9 and 5.10): every VM keeps three quarters of W/N and no host's booking grows
    /// above its start, so DPS moves CPU within a program without taking the free CPU of
    /// co-located programs (which is what made the plain bank's mean-response "gains" in fig.
    /// 5.9 unfair and its losses at N <= 8 possible). Measured: never below 0.97x static on
    /// mean response or makespan at any N in fig. 5.9, both scheduler models (test
    /// `fig5_9_recommended_policy_never_below_0_97_of_static_on_mean_or_makespan`). With one
    /// program on hosts that have unbooked CPU (fig. 5.7) use [`Safeguards::guarded`]: taking
    /// that free CPU is the point there.
    ///
    /// ```
    /// assert!(dps_sim::Safeguards::shared_cluster().host_neutral);
    /// ```
    pub fn shared_cluster() -> Self {
        Self {
            min_share_fraction: 0.75,
            host_neutral: true,
            acceptance: Acceptance::Whole,
        }
    }
}

/// How the cluster resource manager picks migrations.
///
/// ```
/// assert_eq!(dps_sim::Balancing::default(), dps_sim::Balancing::Utilization);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balancing {
    /// Section 5.2.2 as written: a host that rejected a transfer or ran at >= `full` of its
    /// capacity is a bottleneck; its least-utilised VM goes to the destination `rule` picks
    /// (by bookings). In a fully booked cluster every host is "full", so this moves VMs
    /// between equally loaded hosts (fig. 5.10: a loss).
    #[default]
    Utilization,
    /// [`dps_core::balance()`]: hosts are compared by *per-round load* (each VM's measured use
    /// scaled to the common pace by its program's measured pace, from wake-ups), so the CRM
    /// evens the programs' paces, not the hosts' use. While some host has unmet shortage, the
    /// sources are the short hosts and every host loaded more than `min_gain` above the mean;
    /// the destination is the least loaded host; the VM (or swap) is the one that best evens
    /// the two, never pushing the destination's measured use above its capacity; one move per
    /// host at a time, and a VM waits [`MigrationSettings::cooldown_periods`] exchange periods
    /// after its move before it may move again. The recommended mode where migration is
    /// allowed ([`MigrationSettings::demand_aware`]).
    DemandAware,
}

/// Cluster resource manager settings for runs with migration.
///
/// ```
/// let m = dps_sim::MigrationSettings::default();
/// assert!(m.live);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MigrationSettings {
    /// Destination rule.
    pub rule: Destination,
    /// A host running at this fraction of capacity is a bottleneck.
    pub full: f64,
    /// Network and pre-copy model.
    pub cost: MigrationCost,
    /// VM memory, MB (the dissertation used 128 MB).
    pub memory_mb: f64,
    /// Live (pre-copy) instead of stop-and-copy.
    pub live: bool,
    /// Page-dirtying rate of a running VM, MB/s, for live migration.
    pub dirty_mb_s: f64,
    /// At most this many migrations start per exchange period.
    pub max_per_period: usize,
    /// Seconds after a VM's migration ends before the CRM may pick that VM again (default
    /// [`MigrationSettings::DEFAULT_COOLDOWN_S`]). Without it a VM can bounce between hosts: a
    /// VM that just arrived measured little use while it moved, so it is the least-utilised VM
    /// of its new host and the first one picked when that host is a bottleneck. 0 disables it.
    /// Used by [`Balancing::Utilization`].
    pub cooldown_s: f64,
    /// Which CRM rule picks migrations.
    pub balancing: Balancing,
    /// [`Balancing::DemandAware`]'s cooldown in exchange periods: a VM may not move again
    /// until this many periods after its migration ended (it scales with T, unlike
    /// `cooldown_s`).
    pub cooldown_periods: f64,
    /// The migration's duration as a parameter: `None` takes it from `cost` (the default:
    /// section 5.5.3's measured Xen numbers, 128 MB live over Fast Ethernet, 13.6 s of which
    /// 0.2 s stopped); `Some(MigrationTime { total_s: 0.0, downtime_s: 0.0 })` is the free
    /// migration of an upper-bound run ([`MigrationSettings::free`]).
    pub fixed_time: Option<MigrationTime>,
    /// [`Balancing::DemandAware`]'s hysteresis: a move must narrow the gap between the two
    /// hosts' per-round loads by more than this fraction of capacity, and a host that is not
    /// itself short sheds load only when it is this much above the mean (default
    /// [`MigrationSettings::DEFAULT_MIN_GAIN`]).
    pub min_gain: f64,
}

impl MigrationSettings {
    /// The default [`MigrationSettings::cooldown_s`]: 60 s. A live migration of a 128 MB VM
    /// over Fast Ethernet takes 13.6 s, so a VM then spends at most about a fifth of its time
    /// moving, and both hosts get twelve 5 s exchange periods to settle before the CRM judges
    /// the VM again. In section 5.5.5's run (`cargo run --release -p dps-sim --example
    /// section_5_5_5`) it turns 29 migrations, 9 of them straight back, into 15 and none.
    ///
    /// ```
    /// use dps_sim::MigrationSettings;
    /// assert_eq!(MigrationSettings::DEFAULT_COOLDOWN_S, 60.0);
    /// assert_eq!(MigrationSettings::default().cooldown_s, MigrationSettings::DEFAULT_COOLDOWN_S);
    /// ```
    pub const DEFAULT_COOLDOWN_S: f64 = 60.0;

    /// Migrate only away from hosts that rejected a transfer (section 5.2.2's first signal),
    /// never merely because a host is fully utilised: in a fully booked cluster every host is,
    /// and moving VMs then only adds load elsewhere.
    ///
    /// ```
    /// assert!(dps_sim::MigrationSettings::on_rejection().full > 1.0);
    /// ```
    pub fn on_rejection() -> Self {
        Self {
            full: 2.0,
            ..Self::default()
        }
    }
}

impl MigrationSettings {
    /// The default [`MigrationSettings::cooldown_periods`]: 10 exchange periods.
    ///
    /// ```
    /// assert_eq!(dps_sim::MigrationSettings::DEFAULT_COOLDOWN_PERIODS, 10.0);
    /// ```
    pub const DEFAULT_COOLDOWN_PERIODS: f64 = 10.0;

    /// The default [`MigrationSettings::min_gain`]: 10% of capacity. In fig. 5.10 at N = 3 (1000
    /// iterations, four seeds) with the earlier use-based loads, 0.05 gave 32-64 migrations per
    /// run and 0.1 gave 20-38, with the same speed-ups within 0.02; with per-round loads (before
    /// above-mean hosts became sources) 0.05 again about doubled the migrations without a
    /// smaller spread.
    ///
    /// ```
    /// assert_eq!(dps_sim::MigrationSettings::DEFAULT_MIN_GAIN, 0.1);
    /// ```
    pub const DEFAULT_MIN_GAIN: f64 = 0.1;

    /// The recommended CRM where migration is allowed: [`Balancing::DemandAware`], live
    /// migration at section 5.5.3's measured cost, as many moves per period as there are
    /// disjoint (source, destination) pairs.
    ///
    /// ```
    /// let m = dps_sim::MigrationSettings::demand_aware();
    /// assert_eq!(m.balancing, dps_sim::Balancing::DemandAware);
    /// assert!(m.fixed_time.is_none());
    /// ```
    pub fn demand_aware() -> Self {
        Self {
            balancing: Balancing::DemandAware,
            max_per_period: usize::MAX,
            ..Self::default()
        }
    }

    /// The same settings with migrations that take no time: an upper bound, not a model of
    /// any network.
    ///
    /// ```
    /// let m = dps_sim::MigrationSettings::demand_aware().free();
    /// assert_eq!(m.fixed_time.unwrap().total_s, 0.0);
    /// ```
    pub fn free(self) -> Self {
        Self {
            fixed_time: Some(MigrationTime {
                total_s: 0.0,
                downtime_s: 0.0,
            }),
            ..self
        }
    }

    /// How long one migration takes, and how long the VM is stopped.
    pub(crate) fn time(&self) -> Result<MigrationTime, DpsError> {
        if let Some(t) = self.fixed_time {
            return Ok(t);
        }
        if self.live {
            self.cost.live(self.memory_mb, self.dirty_mb_s)
        } else {
            self.cost.stop_and_copy(self.memory_mb)
        }
    }
}

impl Default for MigrationSettings {
    fn default() -> Self {
        Self {
            rule: Destination::LeastUtilized,
            full: 0.98,
            cost: MigrationCost::fast_ethernet(),
            memory_mb: 128.0,
            live: true,
            dirty_mb_s: 2.0,
            max_per_period: 1,
            cooldown_s: Self::DEFAULT_COOLDOWN_S,
            balancing: Balancing::Utilization,
            cooldown_periods: Self::DEFAULT_COOLDOWN_PERIODS,
            fixed_time: None,
            min_gain: Self::DEFAULT_MIN_GAIN,
        }
    }
}

/// A whole simulation.
///
/// ```
/// use dps_sim::*;
/// use dps_core::{HostId, HostSpec};
/// let cfg = SimConfig::new(
///     vec![HostSpec::new(1.0, 0.0).unwrap(); 2],
///     vec![ProgramSpec { topology: Topology::Linear, iterations: 3, total_share: 0.4,
///         vms: vec![VmSpec { host: HostId(0), demand: 0.1 }, VmSpec { host: HostId(1), demand: 0.05 }] }],
///     Strategy::Static,
/// );
/// let r = simulate(&cfg, &mut |_| {}).unwrap();
/// assert!((r.makespan_s - 0.3).abs() < 1e-9); // alone on its hosts, each VM gets a full CPU
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Hosts.
    pub hosts: Vec<HostSpec>,
    /// Programs, all starting at time 0.
    pub programs: Vec<ProgramSpec>,
    /// Exchange strategy.
    pub strategy: Strategy,
    /// Safeguards.
    pub safeguards: Safeguards,
    /// Exchange period T, seconds.
    pub period_s: f64,
    /// Node-level scheduler model.
    pub mode: SchedulerMode,
    /// Migrations, if any.
    pub migration: Option<MigrationSettings>,
    /// Upstream entries expire after this many seconds.
    pub upstream_ttl_s: f64,
    /// Per-iteration demand noise: each iteration's demand is scaled by U(1-j, 1+j).
    pub jitter: f64,
    /// Seed for the noise.
    pub seed: u64,
    /// Record every VM's share after every exchange (fig. 5.8).
    pub trace_shares: bool,
    /// Give up (an error) if simulated time passes this.
    pub max_time_s: f64,
}

impl SimConfig {
    /// A configuration with defaults: T = 5 s, fluid, no migration, TTL 2T, no jitter.
    ///
    /// ```
    /// let c = dps_sim::SimConfig::new(vec![], vec![], dps_sim::Strategy::Static);
    /// assert_eq!(c.period_s, 5.0);
    /// ```
    pub fn new(hosts: Vec<HostSpec>, programs: Vec<ProgramSpec>, strategy: Strategy) -> Self {
        Self {
            hosts,
            programs,
            strategy,
            safeguards: Safeguards::default(),
            period_s: 5.0,
            mode: SchedulerMode::Fluid,
            migration: None,
            upstream_ttl_s: 10.0,
            jitter: 0.0,
            seed: 0,
            trace_shares: false,
            max_time_s: 1e7,
        }
    }

    /// Checks everything the engines rely on.
    pub(crate) fn validate(&self) -> Result<(), DpsError> {
        let pos = |name: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(DpsError::InvalidParameter { name, value: v })
            }
        };
        pos("period_s", self.period_s)?;
        pos("upstream_ttl_s", self.upstream_ttl_s)?;
        pos("max_time_s", self.max_time_s)?;
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(DpsError::InvalidParameter {
                name: "jitter",
                value: self.jitter,
            });
        }
        if !(0.0..=1.0).contains(&self.safeguards.min_share_fraction) {
            return Err(DpsError::InvalidParameter {
                name: "min_share_fraction",
                value: self.safeguards.min_share_fraction,
            });
        }
        match self.strategy {
            Strategy::FullyDistributed { withhold: Some(wh) } if !(0.0..=1.0).contains(&wh) => {
                return Err(DpsError::InvalidWithhold(wh));
            }
            Strategy::Bank { every: 0, .. } | Strategy::CriticalPath { every: 0 } => {
                return Err(DpsError::InvalidParameter {
                    name: "every",
                    value: 0.0,
                });
            }
            _ => {}
        }
        if let Some(m) = &self.migration {
            pos("memory_mb", m.memory_mb.max(f64::MIN_POSITIVE))?;
            pos("full", m.full)?;
            if !(m.cooldown_s.is_finite() && m.cooldown_s >= 0.0) {
                return Err(DpsError::InvalidParameter {
                    name: "cooldown_s",
                    value: m.cooldown_s,
                });
            }
            if !(m.min_gain.is_finite() && m.min_gain >= 0.0) {
                return Err(DpsError::InvalidParameter {
                    name: "min_gain",
                    value: m.min_gain,
                });
            }
            if !(m.cooldown_periods.is_finite() && m.cooldown_periods >= 0.0) {
                return Err(DpsError::InvalidParameter {
                    name: "cooldown_periods",
                    value: m.cooldown_periods,
                });
            }
            if let Some(t) = m.fixed_time {
                let ok = |x: f64| x.is_finite() && x >= 0.0;
                if !(ok(t.total_s) && ok(t.downtime_s) && t.downtime_s <= t.total_s) {
                    return Err(DpsError::InvalidParameter {
                        name: "fixed_time",
                        value: t.total_s,
                    });
                }
            }
        }
        for p in &self.programs {
            if !(p.total_share.is_finite() && p.total_share > 0.0) {
                return Err(DpsError::InvalidTotal(p.total_share));
            }
            p.topology.validate(p.vms.len() as u32)?;
            for v in &p.vms {
                if v.host.0 as usize >= self.hosts.len() {
                    return Err(DpsError::UnknownHost(v.host.0));
                }
                if !(v.demand.is_finite() && v.demand >= 0.0) {
                    return Err(DpsError::InvalidParameter {
                        name: "demand",
                        value: v.demand,
                    });
                }
            }
        }
        if self.mode == SchedulerMode::Credit {
            for h in &self.hosts {
                if h.capacity().fract() != 0.0 || h.capacity() < 1.0 {
                    return Err(DpsError::Unsupported(format!(
                        "credit mode needs whole CPUs per host, got capacity {}",
                        h.capacity()
                    )));
                }
            }
        }
        Ok(())
    }
}
