//! Figures 5.7 and 5.8 on real processes (issue 15): the `patterns` MPI program with the PMPI
//! hook, one `vibrad` (dps role) per emulated host, hosts as cgroups with a CPU quota and a
//! burner booked at half the host ([`crate::live`]). Each result is shown beside the
//! dissertation's and beside dps-sim's prediction for the same parameters (host capacity,
//! background, period, iterations, and node 1's CPU time per iteration measured in the static
//! runs: a calibrated input).

use dps_core::{Acceptance, HostSpec};
use dps_sim::{Banker, SimConfig, SimReport, Topology, simulate_many, workloads};
use serde_json::json;

use super::fig5::settle_cycle;
use super::web::require;
use crate::live::{self, Calibration, LiveConfig, LiveRun, Programs, Strategy};
use crate::{
    Comparison, DissertationMark, Experiment, Figure, LabError, Report, RunContext, Series,
};

const STRATEGIES: [Strategy; 3] = [Strategy::Static, Strategy::Distributed, Strategy::Bank];

/// The machine's load average now (`/proc/loadavg`'s first three fields).
pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        f64::NAN
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Sample standard deviation (0 for one value).
fn sd(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// dps-sim's configuration for the live parameters: `linear_patterns` with the live hosts
/// (capacity, burner), W, period, upstream expiry (2 T, as the dps role) and vibrad's default
/// acceptance (up to room); node 1 needs `d1` CPU-s per iteration.
fn sim_cfg(cfg: &LiveConfig, d1: f64, trace: bool) -> Result<SimConfig, LabError> {
    let strategy = match cfg.strategy {
        Strategy::Static => dps_sim::Strategy::Static,
        Strategy::Distributed => dps_sim::Strategy::FullyDistributed { withhold: None },
        Strategy::Bank => dps_sim::Strategy::Bank {
            every: 1,
            banker: if cfg.capped_grants {
                Banker::Capped
            } else {
                Banker::Spec
            },
        },
    };
    let mut c =
        workloads::linear_patterns(cfg.share, cfg.iterations, d1, Topology::Linear, strategy)?;
    let host =
        HostSpec::new(cfg.host_cpus, 0.0)?.with_background(cfg.background * cfg.host_cpus)?;
    let n = c.programs.first().map_or(0, |p| p.vms.len());
    c.hosts = vec![host; n];
    for p in &mut c.programs {
        p.total_share = cfg.share * cfg.host_cpus * n as f64;
    }
    c.period_s = cfg.period_s;
    c.upstream_ttl_s = 2.0 * cfg.period_s;
    c.safeguards.acceptance = Acceptance::UpToRoom;
    c.safeguards.min_share_fraction = cfg.min_share;
    c.trace_shares = trace;
    Ok(c)
}

fn simulate(cfgs: &[SimConfig]) -> Result<Vec<SimReport>, LabError> {
    simulate_many(cfgs)
        .into_iter()
        .map(|r| r.map_err(LabError::from))
        .collect()
}

/// The iterations a fig. 5.7 run at `share` makes: `base.iterations` at
/// [`live::CALIBRATION_SHARE`], and in proportion to node 1's static CPU rate above it, so
/// that every run lasts about as long (at 0.5, three times the iterations of 0.1). The machine's
/// speed wanders by several percent over seconds (steal and co-tenants of this VM: the same
/// work took 1.11-1.32 CPU-s over five static runs at 0.5); a 6 s run at 0.5 then had a 10% sd,
/// more than the 7% the CI check allows, where 18 s runs average it down.
fn iterations_at(base: &LiveConfig, share: f64) -> u32 {
    let rate = |s: f64| s / (s + base.background);
    let k = rate(share.max(live::CALIBRATION_SHARE)) / rate(live::CALIBRATION_SHARE);
    (f64::from(base.iterations) * k).round().max(1.0) as u32
}

/// A response time of `cfg.iterations` scaled to `base.iterations` (what the rows report).
fn per_base(base: &LiveConfig, cfg: &LiveConfig, t: f64) -> f64 {
    t * f64::from(base.iterations) / f64::from(cfg.iterations)
}

/// Runs one live point, with a progress step.
fn run_point(
    cfg: &LiveConfig,
    programs: &Programs,
    task: &mut crate::Task,
) -> Result<LiveRun, LabError> {
    let r = live::run(cfg, programs)?;
    task.advance(1);
    Ok(r)
}

/// The parameters both figures share: the harness's defaults (4 hosts of 0.4 CPU, burner
/// 0.5, T = 0.5 s, `min_share` 0.5) with `patterns -e` calibrated to this machine
/// ([`live::calibrate_elements`]: node 1's iteration 1.1 T at share 0.1).
fn base(programs: &Programs) -> Result<(LiveConfig, Calibration), LabError> {
    let d = LiveConfig::default();
    let cal = live::calibrate_elements(programs, &d)?;
    Ok((
        LiveConfig {
            elements: cal.elements,
            ..d
        },
        cal,
    ))
}

/// A response time scaled to the reference machine speed: `t` times the reference CPU time per
/// element over the run's (node 1's compute CPU per element in that run). The 2-core VM's speed
/// wanders between runs (steal, co-tenants: the same work took 1.11-1.32 CPU-s in five static
/// runs, and response times followed); this takes that out of a comparison between strategies.
/// The reference is the mean over every run of the invocation, so adjusted times stay near the
/// measured ones.
fn speed_adjusted(t: f64, run_cpu_s_per_element: f64, reference: f64) -> f64 {
    if run_cpu_s_per_element > 0.0 && reference > 0.0 {
        t * reference / run_cpu_s_per_element
    } else {
        t
    }
}

/// Node 1's compute CPU seconds per element in a run (the machine's speed then).
fn node1_cpu_per_element(cfg: &LiveConfig, r: &live::LiveRun) -> f64 {
    r.rank_compute_cpu_s[0] / (f64::from(cfg.iterations) * f64::from(cfg.elements))
}

fn setup_note(cfg: &LiveConfig, repeats: usize) -> String {
    format!(
        "live: {} hosts, each a cgroup with a CFS quota of {} CPU holding one rank's VM (vibrad's cgroup) and a burner booked at {} of the host; \
         one vibrad (dps role) per host on loopback UDP, T = {} s, acceptance up_to_room, min_share {} (no VM gives share away below that fraction of W/N; dps-sim's guarded floor), min_excess {} (an excess below that fraction of the VM's share is one period's measurement noise and is kept; no dps-sim counterpart: the fluid model has no noise), capped_grants {} (the bank caps grants by each host's reported room), every daemon recording its ledger in one real etcd started for the run; \
         patterns -t linear -n {} -e {} under mpirun with the PMPI hook preloaded (-e calibrated to this machine: node 1's iteration {} T at share {} under static weights); {} repeat(s) per point, means with sample sd",
        cfg.hosts,
        cfg.host_cpus,
        cfg.background,
        cfg.period_s,
        cfg.min_share,
        cfg.min_excess,
        cfg.capped_grants,
        cfg.iterations,
        cfg.elements,
        live::TARGET_PERIODS,
        live::CALIBRATION_SHARE,
        repeats
    )
}

/// Figure 5.7 on real processes.
pub struct Fig57Live;

impl Experiment for Fig57Live {
    fn name(&self) -> &'static str {
        "fig5.7-live"
    }
    fn title(&self) -> &'static str {
        "response time, static vs DPS on real processes (MPI patterns, cgroups, vibrad)"
    }
    fn dissertation(&self) -> &'static str {
        "Figure 5.7 (section 5.5.4): 4 VMs of `patterns`, linear, node i does 1/i of the work, \
         eatcpu books 0.5 of each host, 0.1-0.5 share per VM, exchange every 5 s: the bank cuts \
         the response time by nearly 38% at 0.1, no gain at 0.5 (hosts fully booked)."
    }
    fn row_fields(&self) -> &'static [&'static str] {
        &["share", "static_s", "distributed_s", "bank_s"]
    }
    fn real_components(&self) -> bool {
        true
    }
    fn run(&self, ctx: &RunContext) -> Result<Report, LabError> {
        require(self.name(), live::unavailable())?;
        let programs = Programs::build()?;
        let shares: Vec<f64> = ctx.scale(vec![0.1, 0.5], vec![0.1, 0.2, 0.3, 0.4, 0.5]);
        let repeats = ctx.scale(1, 3);
        // 30 iterations of about 1.1 T at 0.1: a run at 0.5 lasts about 11 periods. With 10
        // it lasted 3, and the bank's first cycle, in which every rank is still in MPI_Init
        // or its first exchange and looks idle, took VM 1's share down to 0.125-0.5 (measured
        // from the daemons' metrics) with too few periods left to make up for it; with 15
        // (5 periods) one run's noise at 0.5 was as large as the 7% the check allows.
        // Above 0.1 the program runs more iterations (`iterations_at`), so that every run
        // lasts about as long; each time is reported per `base.iterations` iterations.
        let (base, cal) = base(&programs)?;
        let load_before = loadavg();
        let mut task = ctx.progress.task(
            self.name(),
            "running patterns",
            (repeats * shares.len() * STRATEGIES.len()) as u64,
        );
        // times[share][strategy] = one response time per repeat; repeats outermost so that a
        // load change on the shared machine hits every point alike.
        let mut times = vec![vec![Vec::new(); STRATEGIES.len()]; shares.len()];
        // Node 1's compute CPU seconds per element in each of those runs (the machine's speed).
        let mut speed = vec![vec![Vec::new(); STRATEGIES.len()]; shares.len()];
        let mut node1_cpu_per_iteration = Vec::new();
        let mut received = vec![vec![Vec::new(); STRATEGIES.len()]; shares.len()];
        for _ in 0..repeats {
            for (i, &share) in shares.iter().enumerate() {
                for (k, &strategy) in STRATEGIES.iter().enumerate() {
                    let cfg = LiveConfig {
                        share,
                        strategy,
                        iterations: iterations_at(&base, share),
                        ..base.clone()
                    };
                    let r = run_point(&cfg, &programs, &mut task)?;
                    times[i][k].push(per_base(&base, &cfg, r.response_s));
                    speed[i][k].push(node1_cpu_per_element(&cfg, &r));
                    received[i][k].push(mean(&r.host_cpus_received));
                    if strategy == Strategy::Static {
                        node1_cpu_per_iteration.push(r.rank_cpu_s[0] / f64::from(cfg.iterations));
                    }
                }
            }
        }
        let load_after = loadavg();
        let d1 = mean(&node1_cpu_per_iteration);
        let all_speeds: Vec<f64> = speed.iter().flatten().flatten().copied().collect();
        let reference = mean(&all_speeds);
        let adjusted: Vec<Vec<Vec<f64>>> = times
            .iter()
            .zip(&speed)
            .map(|(ts, ss)| {
                ts.iter()
                    .zip(ss)
                    .map(|(t, s)| {
                        t.iter()
                            .zip(s)
                            .map(|(&t, &s)| speed_adjusted(t, s, reference))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let mut sim_cfgs = Vec::new();
        for &share in &shares {
            for &strategy in &STRATEGIES {
                let cfg = LiveConfig {
                    share,
                    strategy,
                    iterations: iterations_at(&base, share),
                    ..base.clone()
                };
                sim_cfgs.push(sim_cfg(&cfg, d1, false)?);
            }
        }
        let sims = simulate(&sim_cfgs)?;
        let mut report = Report::default();
        report.note(setup_note(&base, repeats));
        report.note(format!(
            "load average (1, 5, 15 min) before {load_before}, after {load_after}; simulated: dps-sim (fluid) with the same hosts, W, T and node 1's CPU time per iteration measured in the static runs: {d1:.4} CPU-s (calibrated input)"
        ));
        let mut series: Vec<Vec<(f64, f64)>> = vec![Vec::new(); 2 * STRATEGIES.len()];
        let mut gains = Vec::new();
        for (i, &share) in shares.iter().enumerate() {
            let m: Vec<f64> = times[i].iter().map(|t| mean(t)).collect();
            let a: Vec<f64> = adjusted[i].iter().map(|t| mean(t)).collect();
            let s: Vec<f64> = times[i].iter().map(|t| sd(t)).collect();
            let n = LiveConfig {
                share,
                iterations: iterations_at(&base, share),
                ..base.clone()
            };
            let sim: Vec<f64> = (0..STRATEGIES.len())
                .map(|k| per_base(&base, &n, sims[i * STRATEGIES.len() + k].makespan_s))
                .collect();
            for k in 0..STRATEGIES.len() {
                series[k].push((share, m[k]));
                series[STRATEGIES.len() + k].push((share, sim[k]));
            }
            let gain = |t: f64, base: f64| 100.0 * (1.0 - t / base);
            report.row(json!({
                "share": share,
                "static_s": m[0], "distributed_s": m[1], "bank_s": m[2],
                "static_sd": s[0], "distributed_sd": s[1], "bank_sd": s[2],
                "static_runs": times[i][0], "distributed_runs": times[i][1], "bank_runs": times[i][2],
                "sim_static_s": sim[0], "sim_distributed_s": sim[1], "sim_bank_s": sim[2],
                "bank_gain_pct": gain(m[2], m[0]), "distributed_gain_pct": gain(m[1], m[0]),
                "static_adj_s": a[0], "distributed_adj_s": a[1], "bank_adj_s": a[2],
                "static_adj_runs": adjusted[i][0], "distributed_adj_runs": adjusted[i][1],
                "bank_adj_runs": adjusted[i][2],
                "bank_gain_adj_pct": gain(a[2], a[0]), "distributed_gain_adj_pct": gain(a[1], a[0]),
                "calibration_cpu_s_per_element": cal.cpu_s_per_element,
                "reference_cpu_s_per_element": reference,
                "sim_bank_gain_pct": gain(sim[2], sim[0]),
                "sim_distributed_gain_pct": gain(sim[1], sim[0]),
                "host_cpus_received": received[i].iter().map(|v| mean(v)).collect::<Vec<_>>(),
                "repeats": repeats, "iterations": base.iterations,
                "iterations_run": iterations_at(&base, share), "host_cpus": base.host_cpus,
                "period_s": base.period_s, "node1_cpu_s_per_iteration": d1,
                "load_before": load_before, "load_after": load_after,
            }));
            for (k, strategy) in STRATEGIES.iter().enumerate() {
                let off = m[k] / sim[k] - 1.0;
                if off.abs() > 0.10 {
                    report.compare(Comparison::new(
                        format!("live vs simulated, {} at {share}", strategy.name()),
                        format!(
                            "{:.2} s vs {:.2} s ({:+.0}%); hosts received {:.3} of their {} CPU",
                            m[k],
                            sim[k],
                            100.0 * off,
                            mean(&received[i][k]),
                            base.host_cpus
                        ),
                        "- (more than 10% apart: the measured cause is in the vibra-lab README)",
                    ));
                }
            }
            gains.push((share, m, sim, a));
        }
        if let (Some((s0, m0, sim0, a0)), Some((s1, m1, sim1, a1))) = (gains.first(), gains.last())
        {
            report.compare(Comparison::new(
                format!("bank gain over static at {s0} (live, speed-adjusted live, simulated)"),
                format!(
                    "{} (sd of bank {:.2} s), {}, {}",
                    pct(1.0 - m0[2] / m0[0]),
                    sd(&times[0][2]),
                    pct(1.0 - a0[2] / a0[0]),
                    pct(1.0 - sim0[2] / sim0[0])
                ),
                "nearly 38%",
            ));
            report.compare(Comparison::new(
                format!("fully-distributed gain at {s0} (live, simulated)"),
                format!(
                    "{}, {}",
                    pct(1.0 - m0[1] / m0[0]),
                    pct(1.0 - sim0[1] / sim0[0])
                ),
                "less than the bank",
            ));
            report.compare(Comparison::new(
                format!("bank gain over static at {s1} (live, speed-adjusted live, simulated)"),
                format!(
                    "{}, {}, {}",
                    pct(1.0 - m1[2] / m1[0]),
                    pct(1.0 - a1[2] / a1[0]),
                    pct(1.0 - sim1[2] / sim1[0])
                ),
                "none (hosts fully booked)",
            ));
        }
        let names = ["static", "fully-distributed", "bank"];
        let mut fig = Figure::lines(
            "fig5.7-live",
            "Figure 5.7 on real processes: patterns response time (live solid, dps-sim dashed)",
            "initial CPU share per VM",
            "response time (s)",
        );
        if let Some(&(_, y)) = series[0].first() {
            fig = fig.with_dissertation(DissertationMark::new(
                shares[0],
                y * 0.62,
                "bank ~38% below static",
            ));
        }
        for (k, pts) in series.into_iter().enumerate() {
            let label = if k < STRATEGIES.len() {
                format!("{} (live)", names[k])
            } else {
                format!("{} (dps-sim)", names[k - STRATEGIES.len()])
            };
            let s = Series::new(label, pts);
            fig = fig.with_series(if k < STRATEGIES.len() { s } else { s.dashed() });
        }
        report.figure(fig);
        Ok(report)
    }
}

/// Figure 5.8 on real processes.
pub struct Fig58Live;

impl Experiment for Fig58Live {
    fn name(&self) -> &'static str {
        "fig5.8-live"
    }
    fn title(&self) -> &'static str {
        "CPU share per exchange cycle on real processes (0.2 per VM initially)"
    }
    fn dissertation(&self) -> &'static str {
        "Figure 5.8 (section 5.5.4): each node starts at 0.2; the shares match the 1/i workload \
         in about 3 cycles (fully distributed), the bank relays in one hop."
    }
    fn row_fields(&self) -> &'static [&'static str] {
        &["cycle", "strategy", "vm", "share"]
    }
    fn real_components(&self) -> bool {
        true
    }
    fn run(&self, ctx: &RunContext) -> Result<Report, LabError> {
        require(self.name(), live::unavailable())?;
        let programs = Programs::build()?;
        let base = LiveConfig {
            share: 0.2,
            iterations: ctx.scale(20, 40),
            sample_shares: true,
            ..base(&programs)?.0
        };
        let load_before = loadavg();
        let strategies = [Strategy::Distributed, Strategy::Bank];
        let mut task = ctx.progress.task(self.name(), "running patterns", 2);
        let mut report = Report::default();
        let mut runs = Vec::new();
        for strategy in strategies {
            let cfg = LiveConfig {
                strategy,
                ..base.clone()
            };
            let r = run_point(&cfg, &programs, &mut task)?;
            let d1 = r.rank_cpu_s[0] / f64::from(cfg.iterations);
            runs.push((cfg, r, d1));
        }
        let load_after = loadavg();
        let sim_cfgs: Vec<SimConfig> = runs
            .iter()
            .map(|(cfg, _, d1)| sim_cfg(cfg, *d1, true))
            .collect::<Result<_, _>>()?;
        let sims = simulate(&sim_cfgs)?;
        report.note(setup_note(&base, 1));
        report.note(format!(
            "load average before {load_before}, after {load_after}; a cycle is one sample of every daemon's metrics per period T from mpirun's start; dps-sim (fluid) traces the same parameters with node 1's CPU time per iteration from the same run"
        ));
        for ((cfg, r, d1), sim) in runs.iter().zip(&sims) {
            let name = cfg.strategy.name();
            let mut fig = Figure::lines(
                format!("fig5.8-live-{name}"),
                format!(
                    "Figure 5.8 on real processes, {name}: share per cycle (live solid, dps-sim dashed)"
                ),
                "exchange cycle",
                "CPU share (fraction of the host)",
            );
            for vm in 0..cfg.hosts {
                let pts: Vec<(f64, f64)> = r
                    .shares
                    .iter()
                    .filter(|s| s.1 == vm)
                    .map(|s| (f64::from(s.0), s.2))
                    .collect();
                for &(cycle, _, share) in r.shares.iter().filter(|s| s.1 == vm) {
                    report.row(
                        json!({"cycle": cycle, "strategy": name, "vm": vm + 1, "share": share,
                                      "node1_cpu_s_per_iteration": d1}),
                    );
                }
                fig = fig.with_series(Series::new(format!("VM{} (live)", vm + 1), pts));
                let sim_pts: Vec<(f64, f64)> = sim
                    .shares
                    .iter()
                    .filter(|s| s.vm as usize == vm)
                    .map(|s| (f64::from(s.cycle), s.share / cfg.host_cpus))
                    .collect();
                fig = fig
                    .with_series(Series::new(format!("VM{} (dps-sim)", vm + 1), sim_pts).dashed());
            }
            let vm1: Vec<(u32, f64)> = r
                .shares
                .iter()
                .filter(|s| s.1 == 0)
                .map(|s| (s.0, s.2))
                .collect();
            let sim_vm1: Vec<(u32, f64)> = sim
                .shares
                .iter()
                .filter(|s| s.vm == 0)
                .map(|s| (s.cycle, s.share / cfg.host_cpus))
                .collect();
            let last = |t: &[(u32, f64)]| t.last().map_or(f64::NAN, |x| x.1);
            report.compare(Comparison::new(
                format!("{name}: cycles until VM1's share stays within 10% of its final band (live, simulated)"),
                format!("{}, {}", settle_cycle(&vm1), settle_cycle(&sim_vm1)),
                match cfg.strategy {
                    Strategy::Bank => "about 1 cycle (one hop)",
                    _ => "about 3 cycles",
                },
            ));
            report.compare(Comparison::new(
                format!("{name}: VM1's last share (live, simulated)"),
                format!("{:.3}, {:.3}", last(&vm1), last(&sim_vm1)),
                "-",
            ));
            report.figure(fig);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The live hosts map to dps-sim in real CPUs: a host of c CPU with node 1 needing
    /// c x d CPU-s must predict the same times as the dissertation's 1-CPU host needing d.
    #[test]
    fn simulated_prediction_is_in_real_cpus() {
        for strategy in STRATEGIES {
            let small = LiveConfig {
                strategy,
                share: 0.1,
                ..LiveConfig::default()
            };
            let unit = LiveConfig {
                host_cpus: 1.0,
                ..small.clone()
            };
            let a = simulate(&[sim_cfg(&small, small.host_cpus * 0.03, false).unwrap()]).unwrap();
            let b = simulate(&[sim_cfg(&unit, 0.03, false).unwrap()]).unwrap();
            let (a, b) = (a[0].makespan_s, b[0].makespan_s);
            assert!((a - b).abs() < 1e-6 * b, "{strategy:?}: {a} vs {b}");
        }
        // Static: every iteration of node 1 at 0.1 / (0.1 + 0.5) of the host.
        let cfg = LiveConfig {
            share: 0.1,
            ..LiveConfig::default()
        };
        let r = simulate(&[sim_cfg(&cfg, 0.045, false).unwrap()]).unwrap();
        let want = f64::from(cfg.iterations) * 0.045 / (cfg.host_cpus * 0.1 / 0.6);
        assert!(
            (r[0].makespan_s - want).abs() < 0.01 * want,
            "{}",
            r[0].makespan_s
        );
    }

    #[test]
    fn runs_above_the_smallest_share_last_as_long_and_report_per_base_iterations() {
        let base = LiveConfig::default();
        assert_eq!(iterations_at(&base, 0.1), 30);
        assert_eq!(iterations_at(&base, 0.5), 90); // node 1 runs 3x faster at 0.5
        assert_eq!(iterations_at(&base, 0.2), 51);
        let at = |share| LiveConfig {
            share,
            iterations: iterations_at(&base, share),
            ..base.clone()
        };
        assert!((per_base(&base, &at(0.5), 18.0) - 6.0).abs() < 1e-12);
        // A run at 10% slower speed than the reference is scaled back.
        assert!((speed_adjusted(11.0, 0.0011, 0.001) - 10.0).abs() < 1e-9);
        assert_eq!(speed_adjusted(5.0, 0.0, 0.001), 5.0);
        // The simulated static time per base iterations is the weights' prediction.
        let cfg = at(0.5);
        let r = simulate(&[sim_cfg(&cfg, 0.045, false).unwrap()]).unwrap();
        let want = f64::from(base.iterations) * 0.045 / (base.host_cpus * 0.5 / 1.0);
        let got = per_base(&base, &cfg, r[0].makespan_s);
        assert!((got - want).abs() < 0.01 * want, "{got} vs {want}");
    }
}
