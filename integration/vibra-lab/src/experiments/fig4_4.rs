//! Figure 4.4: per-server throughput over time while one back end is killed, on the real
//! testbed (`crate::testbed`), with fig. 4.3's set-up: 4 nginx back ends with scarce egress
//! bandwidth and memory, `vibra-proxy --policy url-hash/r` (R = 2) in front, the World Cup
//! stream replayed in a loop over keep-alive connections. At `fail_s` back end 1's nginx is
//! stopped (the dissertation kills its server 2 of 1..4 at t = 60 s). Who moves its bandwidth
//! and memory (`--agent`): `lab` (the default) splits them among the survivors through
//! vibra-host one agent period (3 s) later, by hand; `vibrad` runs a real `vibrad` (agent
//! role, period 3 s, alpha 0.9, R = 2) that adopts the back ends from the start
//! (`testbed::VibradAgent`), re-divides both pools by measured demand every period, notices the
//! dead nginx (its cgroup holds no process) and gives its share to the next R back ends (SPEC 4)
//! by itself; the lab then only reads back what was applied.
//! Requests arrive open-loop (Poisson, seeded) at `OFFERED_LOAD` of the back ends' total
//! egress rate, so each back end's throughput is the demand routed to it.
//! Every second the experiment reads each back end's egress counter (the host end of its
//! link), its memory limit and egress rate as the kernel holds them (whoever set them), the
//! disk's read counter and the load generator's live counters, and with `vibrad` its demand
//! estimates (its metrics endpoint).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::fig4_3::{self, BACKENDS, FAILED};
use super::web::{Transfer, bring_up, give_survivors, mean_sd, require_testbed_and_agent};
use crate::testbed::{
    AgentOptions, FrontEnd, LiveCounters, LoadOptions, VibradAgent, poisson_arrivals, run_load,
    run_load_with, stop_flag,
};
use crate::{
    AgentChoice, Comparison, DissertationMark, Experiment, Figure, LabError, Report, RunContext,
    Series,
};

/// The `fig4.4` experiment.
pub struct Fig44;

const POLICY: &str = "url-hash/r";
/// The offered load: Poisson arrivals at this fraction of the back ends' total egress rate
/// (the dissertation replayed a trace, an open loop: a closed loop would keep every back end
/// at its cap and hide where the failed one's requests go).
const OFFERED_LOAD: f64 = 0.6;
/// Seconds from the failure to the survivors' new resources: one period of the agent.
const AGENT_PERIOD_S: u64 = 3;

/// The run's timeline: total length and when the back end fails (seconds).
fn timeline(quick: bool) -> (u64, u64) {
    if quick { (36, 15) } else { (150, 60) }
}

/// One second's sample.
#[derive(Debug, Clone)]
struct Sample {
    t_s: f64,
    /// Per back end, MB/s sent during the second.
    mb_per_s: Vec<f64>,
    disk_mb_per_s: f64,
    requests_per_s: f64,
    failed: u64,
    mean_ms: f64,
    /// Per back end, the memory limit (MiB) and egress rate (Mbit/s) in the kernel.
    memory_limit_mib: Vec<f64>,
    egress_limit_mbit: Vec<f64>,
    /// Per back end, vibrad's bandwidth demand estimate (Mbit/s), with `--agent vibrad`.
    demand_mbit: Vec<Option<f64>>,
}

/// Mean over the samples with `lo <= t_s < hi` of `f`.
fn window(samples: &[Sample], lo: f64, hi: f64, f: impl Fn(&Sample) -> f64) -> (f64, f64) {
    let v: Vec<f64> = samples
        .iter()
        .filter(|s| s.t_s >= lo && s.t_s < hi)
        .map(f)
        .collect();
    mean_sd(&v)
}

impl Experiment for Fig44 {
    fn name(&self) -> &'static str {
        "fig4.4"
    }

    fn title(&self) -> &'static str {
        "per-server throughput over time, one back end killed"
    }

    fn dissertation(&self) -> &'static str {
        "Figure 4.4 (section 4.4): four servers serve requests until server 2 is killed at \
         t = 60 s; its workload moves to servers 3 and 4 (the next members of its URLs' \
         subsets), server 1 gains a little through server 4; disk reads rise by 14% and the \
         mean response time from 19 ms to 23 ms, still below every other dispatcher tested."
    }

    fn row_fields(&self) -> &'static [&'static str] {
        &["t_s", "server", "mb_per_s"]
    }

    fn real_components(&self) -> bool {
        true
    }

    fn run(&self, ctx: &RunContext) -> Result<Report, LabError> {
        require_testbed_and_agent(self.name(), ctx.agent)?;
        let s = fig4_3::setup(ctx.quick);
        let (length_s, fail_s) = timeline(ctx.quick);
        let (work, mut tb, proxy) = bring_up(ctx, self.name(), &s)?;
        give_survivors(&mut tb, &s, FAILED, Transfer::default())?;
        // Declared after the testbed, so dropped (stopped) before it on every path.
        let agent_options = AgentOptions::dissertation(s.egress_bits_per_sec, s.memory_mib);
        let mut agent = match ctx.agent {
            AgentChoice::Vibrad => Some(VibradAgent::start(&tb, &agent_options)?),
            AgentChoice::Lab => None,
        };
        let fe = FrontEnd::start(&proxy, POLICY, 2, tb.backend_addrs(), tb.work_dir())?;
        tb.evict()?;
        // Warm-up: one closed-loop pass over the stream, so that the timeline compares page
        // caches in steady state before and after the failure, not a cold start with a warm one.
        let warm = run_load(fe.addr(), &work.requests, s.connections, &stop_flag())?;
        let mut task = ctx.progress.task(self.name(), "seconds", length_s);
        let live = Arc::new(LiveCounters::default());
        let stop = stop_flag();
        let start = Instant::now();
        let mean_bytes = work.requests.iter().map(|r| r.bytes).sum::<u64>() as f64
            / work.requests.len().max(1) as f64;
        let capacity = s.backends as f64 * s.egress_bits_per_sec / 8.0;
        let rate = OFFERED_LOAD * capacity / mean_bytes.max(1.0);
        let arrivals = poisson_arrivals(&[rate], Duration::from_secs(length_s), ctx.seed)?;
        let options = LoadOptions {
            count_failures: true,
            until: Some(start + Duration::from_secs(length_s)),
            live: Some(Arc::clone(&live)),
            arrivals: Some(arrivals.into()),
        };
        let (addr, requests, connections) = (fe.addr(), &work.requests, s.connections);
        let mut samples: Vec<Sample> = Vec::new();
        let mut events: Vec<String> = Vec::new();
        let stats = std::thread::scope(|scope| -> Result<_, LabError> {
            let load = scope.spawn(|| run_load_with(addr, requests, connections, &stop, &options));
            // Sample every second on the second; fail and transfer at their times.
            let sampled = (|| -> Result<(), LabError> {
                let mut egress = tb.egress_bytes()?;
                let mut disk = tb.disk().read_bytes()?;
                let mut counters = live.snapshot();
                let mut last = start;
                let (mut failed, mut moved) = (false, false);
                for second in 1..=length_s {
                    let due = start + Duration::from_secs(second);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    let now = Instant::now();
                    let dt = now.duration_since(last).as_secs_f64();
                    let e = tb.egress_bytes()?;
                    let d = tb.disk().read_bytes()?;
                    let c = live.snapshot();
                    let limits = tb.limits()?;
                    let demand = match &agent {
                        Some(a) => a.bandwidth_demand_bits_per_sec()?,
                        None => vec![None; limits.len()],
                    };
                    let answered = c.0 - counters.0;
                    samples.push(Sample {
                        t_s: second as f64,
                        mb_per_s: e
                            .iter()
                            .zip(&egress)
                            .map(|(a, b)| a.saturating_sub(*b) as f64 / 1e6 / dt)
                            .collect(),
                        disk_mb_per_s: d.saturating_sub(disk) as f64 / 1e6 / dt,
                        requests_per_s: answered as f64 / dt,
                        failed: c.2 - counters.2,
                        mean_ms: if answered > 0 {
                            (c.3 - counters.3) as f64 / answered as f64 / 1e3
                        } else {
                            0.0
                        },
                        memory_limit_mib: limits
                            .iter()
                            .map(|l| l.memory_bytes.map_or(f64::NAN, |b| b as f64 / 1048576.0))
                            .collect(),
                        egress_limit_mbit: limits
                            .iter()
                            .map(|l| l.egress_bits_per_sec.map_or(f64::NAN, |b| b / 1e6))
                            .collect(),
                        demand_mbit: demand.iter().map(|d| d.map(|b| b / 1e6)).collect(),
                    });
                    (egress, disk, counters, last) = (e, d, c, now);
                    task.advance(1);
                    if !failed && second >= fail_s {
                        tb.stop_backend(FAILED)?;
                        events.push(format!(
                            "t = {:.1} s: back end {FAILED}'s nginx stopped",
                            start.elapsed().as_secs_f64()
                        ));
                        failed = true;
                    }
                    if let Some(a) = agent.as_mut()
                        && !a.running()
                    {
                        return Err(LabError::from(crate::testbed::TestbedError::Process {
                            what: "vibrad (the testbed's agent)".into(),
                            detail: format!("exited during the run; log: {}", a.log_tail(5)),
                        }));
                    }
                    if agent.is_none() && !moved && second >= fail_s + AGENT_PERIOD_S {
                        let both = Transfer {
                            bandwidth: true,
                            memory: true,
                        };
                        give_survivors(&mut tb, &s, FAILED, both)?;
                        events.push(format!(
                            "t = {:.1} s: its bandwidth and memory split among the survivors",
                            start.elapsed().as_secs_f64()
                        ));
                        moved = true;
                    }
                }
                Ok(())
            })();
            // A signal also stops vibrad (same process group), so a sample may fail on its
            // metrics endpoint: that run was interrupted, and is said so.
            let sampled = match sampled {
                Err(_) if stop.load(std::sync::atomic::Ordering::Relaxed) => {
                    Err(crate::testbed::TestbedError::Interrupted.into())
                }
                other => other,
            };
            if sampled.is_err() {
                // End the load early: the run is failing anyway.
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let stats = load.join().map_err(|_| {
                LabError::from(crate::testbed::TestbedError::Load(
                    "the load generator panicked".into(),
                ))
            })?;
            sampled?;
            Ok(stats?)
        })?;
        drop(fe);
        let agent_note = match &agent {
            Some(a) => format!(
                "agent: vibrad (agent role, in-memory directory, period {} s, alpha {}, R = {}, \
                 floors {:.0} Mbit/s and {} MiB) adopting the back ends' cgroups, namespaces and \
                 veths at the start; pools {} x {:.0} Mbit/s and {} x {} MiB; it saw {} \
                 failure(s); the lab moved nothing",
                agent_options.period_s,
                agent_options.alpha,
                agent_options.replication,
                agent_options.egress_floor_bits_per_sec / 1e6,
                agent_options.memory_floor_mib,
                BACKENDS,
                s.egress_bits_per_sec / 1e6,
                BACKENDS,
                s.memory_mib,
                a.failures_seen()?
            ),
            None => "agent: vibra-lab itself (vibrad not running): one period after the \
                     failure the failed back end's bandwidth and memory split evenly among the \
                     survivors through vibra-host"
                .to_string(),
        };
        drop(agent);
        if let Some(e) = moved_event(&samples, fail_s) {
            events.push(e);
        }

        let mut report = Report::default();
        for smp in &samples {
            for (server, mb) in smp.mb_per_s.iter().enumerate() {
                report.row(json!({
                    "t_s": smp.t_s,
                    "server": server,
                    "mb_per_s": mb,
                    "policy": POLICY,
                    "killed_at_s": fail_s,
                    "requests_per_s": smp.requests_per_s,
                    "failed_requests": smp.failed,
                    "mean_ms": smp.mean_ms,
                    "disk_read_mb_per_s": smp.disk_mb_per_s,
                    "memory_limit_mib": finite(smp.memory_limit_mib[server]),
                    "egress_limit_mbit": finite(smp.egress_limit_mbit[server]),
                    "demand_mbit": smp.demand_mbit[server],
                    "agent": match ctx.agent {
                        AgentChoice::Lab => "lab",
                        AgentChoice::Vibrad => "vibrad",
                    },
                }));
            }
        }
        report.note(format!(
            "testbed: {BACKENDS} back ends (nginx in its own network namespace, its own corpus \
             copy), each {} MiB and {:.0} Mbit/s before the failure, {}; run id {}, set up \
             in {:.1} s; cgroups {}",
            s.memory_mib,
            s.egress_bits_per_sec / 1e6,
            tb.disk_read_note(),
            tb.run_id(),
            tb.setup_seconds(),
            tb.cgroup_layout()
        ));
        drop(tb);
        report.note(format!(
            "front end: {} --policy {POLICY} (R = 2, --hash md5), {} keep-alive connections; \
             open-loop Poisson arrivals at {rate:.0} requests/s ({:.0}% of the back ends' \
             total egress at the stream's mean of {:.0} KB per request) for {length_s} s, the \
             stream cycled, after the corpus was evicted and one closed-loop warm-up pass \
             over the stream ({:.1} s); {}",
            proxy.display(),
            s.connections,
            100.0 * OFFERED_LOAD,
            mean_bytes / 1e3,
            warm.seconds,
            events.join("; ")
        ));
        report.note(agent_note);
        report.note(work.note(ctx.seed));
        report.note(format!(
            "load generator: {} requests answered, {} failed (in flight on the killed back end \
             or refused before the proxy's health view changed), {:.1} s",
            stats.requests, stats.failed, stats.seconds
        ));

        // Before: the seconds after a warm-up of a third of the time to the failure; after:
        // from one agent period past the transfer to the end.
        let warm = fail_s as f64 / 3.0;
        let (b_lo, b_hi) = (warm, fail_s as f64);
        let a_lo = (fail_s + 2 * AGENT_PERIOD_S) as f64;
        let a_hi = f64::INFINITY;
        let mut gains = Vec::new();
        for server in 0..BACKENDS {
            let (before, _) = window(&samples, b_lo, b_hi, |x| x.mb_per_s[server]);
            let (after, sd) = window(&samples, a_lo, a_hi, |x| x.mb_per_s[server]);
            gains.push(format!("{server}: {before:.2} -> {after:.2} (sd {sd:.2})"));
        }
        report.compare(Comparison::new(
            "per-server MB/s before -> after the failure (server 1 killed)",
            gains.join(", "),
            "server 2 (ours 1) killed: its load moves to 3 and 4 (ours 2 and 3), 1 gains a little",
        ));
        let total = |x: &Sample| x.mb_per_s.iter().sum::<f64>();
        let (t_before, _) = window(&samples, b_lo, b_hi, total);
        let (t_after, _) = window(&samples, a_lo, a_hi, total);
        if t_before > 0.0 {
            report.compare(Comparison::new(
                "total throughput after / before",
                format!(
                    "{:.0}% ({t_after:.1} vs {t_before:.1} MB/s)",
                    100.0 * t_after / t_before
                ),
                "(fig. 4.3: 97% with both resources transferred)",
            ));
        }
        let (d_before, _) = window(&samples, b_lo, b_hi, |x| x.disk_mb_per_s);
        let (d_after, _) = window(&samples, a_lo, a_hi, |x| x.disk_mb_per_s);
        report.compare(Comparison::new(
            "disk reads per second after / before",
            if d_before > 0.0 {
                format!(
                    "{:+.0}% ({d_after:.2} vs {d_before:.2} MB/s)",
                    100.0 * (d_after / d_before - 1.0)
                )
            } else {
                format!("{d_after:.2} vs {d_before:.2} MB/s")
            },
            "+14%",
        ));
        let (m_before, _) = window(&samples, b_lo, b_hi, |x| x.mean_ms);
        let (m_after, _) = window(&samples, a_lo, a_hi, |x| x.mean_ms);
        report.compare(Comparison::new(
            "mean response time before -> after",
            format!("{m_before:.1} -> {m_after:.1} ms"),
            "19 -> 23 ms",
        ));

        let mut fig = Figure::lines(
            "fig4.4",
            format!("Per-server throughput, back end {FAILED} killed at {fail_s} s (url-hash/r)"),
            "time (s)",
            "throughput (MB/s)",
        );
        for server in 0..BACKENDS {
            fig = fig.with_series(Series::new(
                format!("server {server}"),
                samples
                    .iter()
                    .map(|x| (x.t_s, x.mb_per_s[server]))
                    .collect(),
            ));
        }
        report.figure(fig);
        for (id, title, unit, get) in [
            (
                "fig4.4-egress",
                "Egress rate applied per server (kernel)",
                "egress rate (Mbit/s)",
                (|x: &Sample, i: usize| x.egress_limit_mbit[i]) as fn(&Sample, usize) -> f64,
            ),
            (
                "fig4.4-memory",
                "Memory limit applied per server (kernel)",
                "memory limit (MiB)",
                |x: &Sample, i: usize| x.memory_limit_mib[i],
            ),
        ] {
            let mut f = Figure::lines(
                id,
                format!("{title}, back end {FAILED} killed at {fail_s} s"),
                "time (s)",
                unit,
            );
            for server in 0..BACKENDS {
                f = f.with_series(Series::new(
                    format!("server {server}"),
                    samples
                        .iter()
                        .filter(|x| get(x, server).is_finite())
                        .map(|x| (x.t_s, get(x, server)))
                        .collect(),
                ));
            }
            report.figure(f);
        }
        let response = Figure::lines(
            "fig4.4-response",
            "Mean response time per second",
            "time (s)",
            "mean response (ms)",
        )
        .with_series(Series::new(
            "ours",
            samples.iter().map(|x| (x.t_s, x.mean_ms)).collect(),
        ))
        .with_dissertation(DissertationMark::new(
            b_lo.midpoint(b_hi),
            19.0,
            "19 ms before",
        ))
        .with_dissertation(DissertationMark::new(
            a_lo.midpoint(length_s as f64),
            23.0,
            "23 ms after",
        ));
        report.figure(response);
        Ok(report)
    }
}

/// `x`, or JSON null when it is not finite (no limit in the kernel).
fn finite(x: f64) -> serde_json::Value {
    if x.is_finite() {
        json!(x)
    } else {
        serde_json::Value::Null
    }
}

/// The first change of the applied limits after the failure, said as an event: when, and
/// each back end's egress rate and memory limit before -> after.
fn moved_event(samples: &[Sample], fail_s: u64) -> Option<String> {
    let fail = fail_s as f64;
    let before = samples.iter().rfind(|x| x.t_s <= fail)?;
    let same = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9);
    let after = samples.iter().find(|x| {
        x.t_s > fail
            && !(same(&x.egress_limit_mbit, &before.egress_limit_mbit)
                && same(&x.memory_limit_mib, &before.memory_limit_mib))
    })?;
    let per: Vec<String> = (0..before.egress_limit_mbit.len())
        .map(|i| {
            format!(
                "{i}: {:.1} -> {:.1} Mbit/s, {:.1} -> {:.1} MiB",
                before.egress_limit_mbit[i],
                after.egress_limit_mbit[i],
                before.memory_limit_mib[i],
                after.memory_limit_mib[i]
            )
        })
        .collect();
    Some(format!(
        "first change of the applied limits after the failure seen at t = {:.0} s ({})",
        after.t_s,
        per.join("; ")
    ))
}
