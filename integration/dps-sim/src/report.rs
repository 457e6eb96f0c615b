//! What a simulation reports.

/// One program's outcome.
///
/// ```
/// assert_eq!(dps_sim::ProgramResult { response_s: 2.0 }.response_s, 2.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProgramResult {
    /// Wall-clock time from the common start to its last VM's last iteration.
    pub response_s: f64,
}

/// One VM's share after an exchange cycle (cycle 0 is the start).
///
/// ```
/// let s = dps_sim::ShareSample { t: 0.0, cycle: 0, program: 0, vm: 1, share: 0.2 };
/// assert_eq!(s.vm, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShareSample {
    /// Simulated time, s.
    pub t: f64,
    /// Exchange cycle.
    pub cycle: u32,
    /// Program index.
    pub program: u32,
    /// VM index within the program.
    pub vm: u32,
    /// Its share.
    pub share: f64,
}

/// One migration the cluster resource manager started.
///
/// ```
/// let m = dps_sim::MigrationEvent { t: 12.0, vm: 3, from: 0, to: 2 };
/// assert_ne!(m.from, m.to);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MigrationEvent {
    /// Simulated time the migration started, s.
    pub t: f64,
    /// The VM (cluster-wide index, programs' VMs in input order).
    pub vm: u32,
    /// The host it left.
    pub from: u32,
    /// The host it went to.
    pub to: u32,
}

/// The result of [`crate::simulate`].
///
/// ```
/// let r = dps_sim::SimReport::default();
/// assert_eq!(r.migrations, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimReport {
    /// Per program, in input order.
    pub programs: Vec<ProgramResult>,
    /// Mean response time, s.
    pub mean_response_s: f64,
    /// When the last program finished, s.
    pub makespan_s: f64,
    /// Share trace (only with `trace_shares`).
    pub shares: Vec<ShareSample>,
    /// Migrations started.
    pub migrations: u32,
    /// Every migration started, in time order (`migrations` entries).
    pub migration_log: Vec<MigrationEvent>,
    /// Transfers rejected by full hosts.
    pub rejections: u64,
    /// Exchanges in which an accepted transfer left a host booked above capacity (must be 0).
    pub capacity_violations: u32,
    /// VM-iterations simulated.
    pub vm_iterations: u64,
    /// Exchange cycles run.
    pub exchanges: u32,
    /// CPU-seconds the background (`eatcpu`) loads received.
    pub background_cpu_s: f64,
    /// The largest |shares + bank + in flight - W| over every program, checked after every
    /// exchange and every migration step (stop, resume): must stay at rounding level.
    pub max_conservation_error: f64,
}
