//! # dps-sim
//!
//! The cluster simulator of DPS (sections 5.5.4-5.5.6): hosts running a work-conserving
//! proportional-share CPU scheduler (a fluid model, or one faithful to Xen's credit
//! scheduler), BSP programs over topologies with per-VM per-iteration demand that DPS never
//! sees, a background `eatcpu` load, share exchange through the real [`dps_core::ShareLedger`]
//! and upstream tracker, and migrations chosen by the cluster resource manager.
//! Deterministic: the same configuration (and seed) gives the same report.
//!
//! The library half of DPS (formulas, ledger, bank, CRM) is `dps-core`, which `libvibra` links;
//! this crate is the experiment bench around it and is not published.
#![forbid(unsafe_code)]

mod config;
mod credit;
mod engine;
mod gps;
mod report;
mod topology;
pub mod workloads;

pub use config::{
    Balancing, Banker, MigrationSettings, ProgramSpec, Safeguards, SchedulerMode, SimConfig,
    Strategy, VmSpec,
};
pub use report::{MigrationEvent, ProgramResult, ShareSample, SimReport};
pub use topology::Topology;

use dps_core::DpsError;

/// Runs a simulation to the end. `progress` is called with the fraction of VM-iterations done
/// (at most about 100 times, and with 1.0 at the end): draw a progress bar with it.
/// Errors: an invalid configuration, or a run that does not finish by `max_time_s`.
///
/// ```
/// use dps_sim::*;
/// use dps_core::{HostId, HostSpec};
/// let host = HostSpec::new(1.0, 0.0).unwrap().with_background(0.5).unwrap();
/// let prog = ProgramSpec { topology: Topology::Linear, iterations: 10, total_share: 0.4,
///     vms: (0..4).map(|i| VmSpec { host: HostId(i), demand: 1.0 / (i + 1) as f64 }).collect() };
/// let run = |s| simulate(&SimConfig::new(vec![host; 4], vec![prog.clone()], s), &mut |_| {}).unwrap();
/// let stat = run(Strategy::Static);
/// let bank = run(Strategy::Bank { every: 1, banker: Banker::Spec });
/// assert!(bank.makespan_s < stat.makespan_s);
/// ```
pub fn simulate(cfg: &SimConfig, progress: &mut dyn FnMut(f64)) -> Result<SimReport, DpsError> {
    let engine = engine::Engine::new(cfg)?;
    match cfg.mode {
        SchedulerMode::Fluid => engine::run_fluid(engine, progress),
        SchedulerMode::Credit => credit::run_credit(engine, progress),
    }
}

/// Runs independent simulations on every core (rayon), results in input order. Each run is
/// as deterministic as [`simulate`]: the thread count changes nothing but the wall time.
///
/// ```
/// use dps_sim::*;
/// let cfgs: Vec<SimConfig> = [Strategy::Static, Strategy::guarded()]
///     .into_iter()
///     .map(|s| workloads::overbooked(4, 2, 0.1, 0.01, 0.1, 5, 1, s).unwrap())
///     .collect();
/// let out = simulate_many(&cfgs);
/// assert_eq!(out.len(), 2);
/// assert_eq!(out[0].as_ref().unwrap(), &simulate(&cfgs[0], &mut |_| {}).unwrap());
/// ```
pub fn simulate_many(cfgs: &[SimConfig]) -> Vec<Result<SimReport, DpsError>> {
    use rayon::prelude::*;
    cfgs.par_iter().map(|c| simulate(c, &mut |_| {})).collect()
}
