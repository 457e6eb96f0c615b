//! Figure 3.7: mean response time per dispatch policy against the bandwidth each back end
//! gets, replaying a 10-minute window of the World Cup trace on the real testbed
//! (`crate::testbed`): 4 nginx back ends, each in its own namespace with its own cgroup memory
//! limit and corpus copy, `vibra-proxy` in front with each policy in turn.
//!
//! The replay (`super::replay_schedule`): requests arrive open-loop, Poisson within each
//! minute at that minute's rate in `requests_per_minute.csv` (the dissertation's own clip,
//! 1998-06-30 16:10-16:19 in the file's UTC clock), all rates scaled by one factor so that the
//! busiest minute offers [`PEAK_LOAD`] of the back ends' total egress at the equal-bandwidth
//! point; URLs, sizes and popularity come from the World Cup stream model
//! (`super::web::scaled_world_cup`). Each request's response time counts from its arrival
//! (a wait for a free connection included). Before each point the egress rate is set, the
//! corpus evicted, and the same arrivals replayed.
//!
//! The agent (`--agent vibrad`): section 3.5.3 compares "URL-hashing in a Vibra-enabled web
//! cluster" with LARD, least-connection and round-robin "in a fixed bandwidth web cluster",
//! after choosing alpha 0.9 and "adapt bandwidth allocation every 3s for our evaluation"; each
//! server had a fixed 48 MB (memory transfer is section 3.5.5's, a separate experiment). So
//! with `--agent vibrad` the Vibra policies (`url-hash`, `url-hash/r`) run with a real
//! `vibrad` (`testbed::VibradAgent`) re-dividing the back ends' egress pool (4 x the point's
//! rate) by demand every 3 s, alpha 0.9, memory fixed; the content-unaware and LARD policies
//! run without an agent at the fixed rate. Without it (`--agent lab`, the default) no policy
//! has an agent (the lab moves nothing here: there is no failure). Every point samples each
//! back end's egress and the egress limit in the kernel once a second.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::replay_schedule::{ReplaySchedule, WindowRule, choose_window};
use super::web::{Setup, bring_up, mean_sd, require_testbed_and_agent, scaled_world_cup};
use crate::testbed::{
    AgentOptions, FrontEnd, LoadOptions, LoadStats, Request, Testbed, TestbedError, VibradAgent,
    poisson_arrivals, run_load_with, stop_flag,
};
use crate::workload::StreamModel;
use crate::{
    AgentChoice, Comparison, DissertationMark, Experiment, Figure, LabError, Report, RunContext,
    Series,
};

/// The `fig3.7` experiment.
pub struct Fig37;

/// The dissertation's clip, "6:10pm-6:20pm GMT+2, June 30, 1998" (section 3.5.1), in the
/// counts' clock, which is UTC: that day's counts climb from 14:30 (Romania-Croatia kicked off
/// at 16:30 in France, GMT+2) and from 19:00 (Argentina-England, 21:00), and collapse after
/// 21:45, when that game's penalty shoot-out ended.
const WINDOW: WindowRule<'static> = WindowRule::StartingAt("1998-06-30 16:10:00");
const WINDOW_MINUTES: usize = 10;
const BACKENDS: usize = 4;
/// Each back end's memory limit (fig4.3's: the working set does not fit one back end).
const MEMORY_MIB: u64 = 24;
/// The dissertation's bandwidths per VM (MB/s): least-connection and round-robin need 3.0,
/// URL hashing works with 20% less, 2.4; LARD and least-connection fail below 2.7.
const EQUAL_MB_S: f64 = 3.0;
const MIDDLE_MB_S: f64 = 2.7;
const REDUCED_MB_S: f64 = 2.4;
/// The busiest minute offers this fraction of the back ends' total egress at [`EQUAL_MB_S`]:
/// the dissertation's URL hashing still served its trace at 4 x 2.4 MB/s, so the trace's
/// peak was below 0.8 of the 3.0 MB/s point; 0.7 leaves a margin for TCP/IP headers and
/// Poisson bursts (0.78 of the 2.7 point, 0.875 of the 2.4 point).
const PEAK_LOAD: f64 = 0.7;
/// Load-generator connections: enough that a wait for a free one is rare below saturation.
const CONNECTIONS: usize = 64;
/// How long a point may run past its last arrival before unsent requests are given up.
const DRAIN: Duration = Duration::from_secs(20);
/// A point "works" (the dissertation's word) when every arrival was answered and the mean
/// response time stays below this; the figure draws only working points, so that one
/// overloaded policy (seconds, minutes) does not flatten the others (the rows keep them all).
const WORKING_LIMIT_MS: f64 = 1_000.0;
/// The dissertation: URL hashing (R = 2) against least-connection and LARD at equal bandwidth.
const DISSERTATION_VS_LEAST_CONN: f64 = -0.35;
const DISSERTATION_VS_LARD: f64 = -0.51;

/// One run's size: the minutes replayed, their compression, the points measured.
struct Plan {
    replayed_minutes: usize,
    compression: u32,
    points: Vec<(&'static str, f64)>,
    setup: Setup,
}

/// `--quick`: the clip's first 5 minutes, each in 10 s (6x), `url-hash/r`, `least-conn` and
/// `lard` at 3.0 MB/s and `url-hash/r` at 2.4 MB/s (about 4 minutes). Full: all 10 minutes,
/// each in 15 s (4x), those three and `round-robin` at 2.4, 2.7 and 3.0 MB/s (about 32
/// minutes).
fn plan(quick: bool) -> Plan {
    let setup = Setup {
        model: StreamModel {
            requests: if quick { 10_000 } else { 30_000 },
            cold_objects: 1_500,
            ..scaled_world_cup()
        },
        backends: BACKENDS,
        memory_mib: MEMORY_MIB,
        egress_bits_per_sec: EQUAL_MB_S * 8e6,
        connections: CONNECTIONS,
        repeats: 1,
        disk_read_bytes_per_sec: None,
    };
    if quick {
        Plan {
            replayed_minutes: 5,
            compression: 6,
            points: vec![
                ("url-hash/r", EQUAL_MB_S),
                ("least-conn", EQUAL_MB_S),
                ("lard", EQUAL_MB_S),
                ("url-hash/r", REDUCED_MB_S),
            ],
            setup,
        }
    } else {
        let policies = ["url-hash/r", "least-conn", "lard", "round-robin"];
        Plan {
            replayed_minutes: WINDOW_MINUTES,
            compression: 4,
            points: [EQUAL_MB_S, MIDDLE_MB_S, REDUCED_MB_S]
                .iter()
                .flat_map(|&b| policies.iter().map(move |&p| (p, b)))
                .collect(),
            setup,
        }
    }
}

/// Whether `policy` runs with the agent: with `--agent vibrad`, the Vibra policies (URL
/// hashing, `url-hash` and `url-hash/r`) only, as in section 3.5.3, where URL hashing ran in
/// "a Vibra-enabled web cluster" and the others "in a fixed bandwidth web cluster".
fn with_agent(policy: &str, agent: AgentChoice) -> bool {
    agent == AgentChoice::Vibrad && (policy == "url-hash" || policy == "url-hash/r")
}

/// The agent of section 3.5.3 for back ends of `mb_s` MB/s each: bandwidth re-divided every
/// 3 s, alpha 0.9, R = 2 (the dissertation's defaults); memory not moved (48 MB fixed there).
fn agent_options(mb_s: f64) -> AgentOptions {
    AgentOptions {
        memory_mib: None,
        ..AgentOptions::dissertation(mb_s * 8e6, MEMORY_MIB)
    }
}

/// Per back end: minimum, mean and maximum of `samples` (one row per sample, one column per
/// back end); empty without samples.
fn min_mean_max(samples: &[Vec<f64>]) -> Vec<(f64, f64, f64)> {
    let n = samples.iter().map(Vec::len).max().unwrap_or(0);
    (0..n)
        .map(|i| {
            let v: Vec<f64> = samples.iter().filter_map(|s| s.get(i).copied()).collect();
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (min, v.iter().sum::<f64>() / v.len().max(1) as f64, max)
        })
        .collect()
}

/// One point's measurement.
struct Point {
    policy: &'static str,
    mb_s: f64,
    stats: LoadStats,
    /// Arrivals never sent (the run ended [`DRAIN`] after the last one).
    unsent: u64,
    disk_bytes: u64,
    /// Whether vibrad moved bandwidth during this point.
    agent: bool,
    /// Each back end's egress over the point, MB/s (bytes at its veth's host end / duration).
    backend_mb_s: Vec<f64>,
    /// Each back end's egress limit in the kernel, Mbit/s: minimum, mean and maximum over the
    /// once-a-second samples (constant without the agent).
    limit_mbit: Vec<(f64, f64, f64)>,
}

impl Point {
    /// Every arrival answered (none failed, none left unsent).
    fn complete(&self) -> bool {
        self.stats.failed == 0 && self.unsent == 0
    }

    /// Complete, and its mean response time below [`WORKING_LIMIT_MS`].
    fn works(&self) -> bool {
        self.complete() && self.stats.mean_ms() < WORKING_LIMIT_MS
    }
}

/// Sets every back end's egress to `mb_s`, starts the front end for `policy` (R = 2 for the
/// `/r` policies) and, when [`with_agent`], a `vibrad` re-dividing the egress pool; evicts the
/// corpus and replays `arrivals` over `requests`, sampling each back end's egress limit once a
/// second. The agent is stopped when the replay ends.
fn measure(
    tb: &mut Testbed,
    proxy: &Path,
    (policy, mb_s): (&'static str, f64),
    agent: AgentChoice,
    requests: &[Request],
    arrivals: &Arc<[Duration]>,
    length: Duration,
) -> Result<Point, LabError> {
    for i in 0..BACKENDS {
        tb.set_resources(i, MEMORY_MIB, mb_s * 8e6)?;
    }
    let r = if policy.ends_with("/r") { 2 } else { 1 };
    let fe = FrontEnd::start(proxy, policy, r, tb.backend_addrs(), tb.work_dir())?;
    // Declared after the front end: stopped first, on every path.
    let mut vibrad = if with_agent(policy, agent) {
        Some(VibradAgent::start(tb, &agent_options(mb_s))?)
    } else {
        None
    };
    tb.evict()?;
    let before = tb.disk().read_bytes()?;
    let egress_before = tb.egress_bytes()?;
    let stop = stop_flag();
    let start = Instant::now();
    let options = LoadOptions {
        count_failures: true,
        until: Some(start + length + DRAIN),
        arrivals: Some(Arc::clone(arrivals)),
        live: None,
    };
    let addr = fe.addr();
    let mut limits: Vec<Vec<f64>> = Vec::new();
    let tb_ref: &Testbed = tb;
    let stats = std::thread::scope(|scope| -> Result<LoadStats, LabError> {
        let load = scope.spawn(|| run_load_with(addr, requests, CONNECTIONS, &stop, &options));
        let sampled = (|| -> Result<(), LabError> {
            let mut second = 0;
            while !load.is_finished() {
                second += 1;
                let due = start + Duration::from_secs(second);
                while !load.is_finished() && Instant::now() < due {
                    std::thread::sleep(Duration::from_millis(50));
                }
                limits.push(
                    tb_ref
                        .limits()?
                        .iter()
                        .map(|l| l.egress_bits_per_sec.map_or(f64::NAN, |b| b / 1e6))
                        .collect(),
                );
                if let Some(a) = vibrad.as_mut()
                    && !a.running()
                {
                    return Err(TestbedError::Process {
                        what: "vibrad (the testbed's agent)".into(),
                        detail: format!("exited during the replay; log: {}", a.log_tail(5)),
                    }
                    .into());
                }
            }
            Ok(())
        })();
        if sampled.is_err() {
            // End the load early: the point is failing anyway.
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let stats = load
            .join()
            .map_err(|_| TestbedError::Load("the load generator panicked".into()))?;
        sampled?;
        Ok(stats?)
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let backend_mb_s = tb
        .egress_bytes()?
        .iter()
        .zip(&egress_before)
        .map(|(a, b)| a.saturating_sub(*b) as f64 / 1e6 / seconds)
        .collect();
    let disk_bytes = tb.disk().read_bytes()?.saturating_sub(before);
    let agent = vibrad.is_some();
    drop(vibrad);
    drop(fe);
    let unsent = (arrivals.len() as u64).saturating_sub(stats.requests + stats.failed);
    Ok(Point {
        policy,
        mb_s,
        stats,
        unsent,
        disk_bytes,
        agent,
        backend_mb_s,
        limit_mbit: min_mean_max(&limits),
    })
}

/// Mean and sd over repeats of `policy`'s mean response time at `mb_s`, if measured.
fn mean_ms(points: &[Point], policy: &str, mb_s: f64) -> Option<(f64, f64)> {
    let v: Vec<f64> = points
        .iter()
        .filter(|p| p.policy == policy && p.mb_s == mb_s)
        .map(|p| p.stats.mean_ms())
        .collect();
    (!v.is_empty()).then(|| mean_sd(&v))
}

impl Experiment for Fig37 {
    fn name(&self) -> &'static str {
        "fig3.7"
    }

    fn title(&self) -> &'static str {
        "mean response time vs bandwidth per back end, World Cup trace replay on real nginx back ends"
    }

    fn dissertation(&self) -> &'static str {
        "Figure 3.7 (section 3.5.3): replaying the 10-minute clip of June 30, 1998 (6:10-6:20pm \
         GMT+2) on 4 VMs with 48 MB each, URL hashing with R = 2 (and the allocation agent) \
         cuts the average response time by 35% against least-connection and by 51% against \
         LARD at the same bandwidth; round-robin fails below 3.0 MB/s per VM, LARD and \
         least-connection below 2.7 MB/s, URL hashing still works at 2.4 MB/s, where its \
         response time is about least-connection's at 3.0 MB/s (20% less bandwidth)."
    }

    fn row_fields(&self) -> &'static [&'static str] {
        &["policy", "bandwidth_mb_s", "mean_ms", "p95_ms"]
    }

    fn real_components(&self) -> bool {
        true
    }

    fn run(&self, ctx: &RunContext) -> Result<Report, LabError> {
        require_testbed_and_agent(self.name(), ctx.agent)?;
        let Some(minutes) = wc98::requests_per_minute(None)? else {
            return Err(LabError::Skipped {
                experiment: self.name(),
                reason: format!(
                    "no {} in the data directory (set VIBRA_DATA_DIR)",
                    wc98::MINUTES_FILE
                ),
            });
        };
        let bad = |e: super::replay_schedule::ScheduleError| LabError::BadInput {
            path: wc98::MINUTES_FILE.into(),
            reason: e.to_string(),
        };
        let window = choose_window(&minutes, WINDOW, WINDOW_MINUTES).map_err(bad)?;
        let busiest =
            choose_window(&minutes, WindowRule::BusiestOfDay("1998-06-30"), 10).map_err(bad)?;
        drop(minutes);
        let plan = plan(ctx.quick);
        let load_before = super::fig5_live::loadavg();
        let (work, mut tb, proxy) = bring_up(ctx, self.name(), &plan.setup)?;
        let mean_bytes = work.requests.iter().map(|r| r.bytes).sum::<u64>() as f64
            / work.requests.len().max(1) as f64;
        let capacity = BACKENDS as f64 * EQUAL_MB_S * 1e6;
        let schedule = ReplaySchedule::new(
            &window,
            plan.replayed_minutes,
            plan.compression,
            mean_bytes,
            PEAK_LOAD * capacity,
        )
        .map_err(bad)?;
        let arrivals: Arc<[Duration]> =
            poisson_arrivals(&schedule.rates(), schedule.minute(), ctx.seed)?.into();
        let length = schedule.length();

        let mut task = ctx
            .progress
            .task(self.name(), "replays", plan.points.len() as u64);
        let mut points = Vec::new();
        for &point in &plan.points {
            points.push(measure(
                &mut tb,
                &proxy,
                point,
                ctx.agent,
                &work.requests,
                &arrivals,
                length,
            )?);
            task.advance(1);
        }
        let load_after = super::fig5_live::loadavg();

        let mut report = Report::default();
        for p in &points {
            report.row(json!({
                "policy": p.policy,
                "bandwidth_mb_s": p.mb_s,
                "mean_ms": p.stats.mean_ms(),
                "p95_ms": p.stats.latency_ms(0.95),
                "p50_ms": p.stats.latency_ms(0.5),
                "max_ms": p.stats.latency_ms(1.0),
                "repeat": 0,
                "arrivals": arrivals.len(),
                "requests": p.stats.requests,
                "failed": p.stats.failed,
                "unsent": p.unsent,
                "complete": p.complete(),
                "works": p.works(),
                "mb_per_s": p.stats.bytes as f64 / 1e6 / length.as_secs_f64(),
                "disk_read_mb": p.disk_bytes as f64 / 1e6,
                "agent": if p.agent { "vibrad" } else { "none" },
                "backend_mb_per_s": p.backend_mb_s,
                "egress_limit_mbit_min": p.limit_mbit.iter().map(|l| l.0).collect::<Vec<_>>(),
                "egress_limit_mbit_mean": p.limit_mbit.iter().map(|l| l.1).collect::<Vec<_>>(),
                "egress_limit_mbit_max": p.limit_mbit.iter().map(|l| l.2).collect::<Vec<_>>(),
            }));
        }
        report.note(format!(
            "testbed: {BACKENDS} back ends (nginx in its own network namespace, cgroup memory \
             limit {MEMORY_MIB} MiB, its own corpus copy), egress set per point, {}; run id \
             {}, set up in {:.1} s; cgroups {}; load average (1, 5, 15 min) {load_before} \
             before, {load_after} after",
            tb.disk_read_note(),
            tb.run_id(),
            tb.setup_seconds(),
            tb.cgroup_layout()
        ));
        drop(tb);
        let agent_note = match ctx.agent {
            AgentChoice::Vibrad => {
                let o = agent_options(EQUAL_MB_S);
                format!(
                    "for url-hash and url-hash/r a real vibrad (agent role, period {} s, alpha \
                     {}, R = {}) re-divides the egress pool (4 x the point's rate) by demand, \
                     floor a quarter of the even share, memory fixed (section 3.5.3); the \
                     other policies at the fixed rate, no agent",
                    o.period_s, o.alpha, o.replication
                )
            }
            AgentChoice::Lab => "no allocation agent moves bandwidth or memory here, unlike \
                                 the dissertation's url-hash/r (--agent vibrad runs one)"
                .to_string(),
        };
        report.note(format!(
            "front end: {} (--hash md5, R = 2 for url-hash/r: the least-loaded member of the \
             URL's subset by the proxy's active-request counts); {agent_note}; {CONNECTIONS} \
             keep-alive connections; each point: egress set, corpus evicted, the same arrivals \
             replayed open-loop, each response time counted from its arrival",
            proxy.display()
        ));
        for p in &points {
            let f = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join("/")
            };
            let pick = |k: fn(&(f64, f64, f64)) -> f64| -> Vec<f64> {
                p.limit_mbit.iter().map(|l| k(l) / 8.0).collect()
            };
            report.note(format!(
                "{} at {} MB/s ({}): back ends sent {} MB/s; egress limit MB/s mean {} \
                 (min {}, max {})",
                p.policy,
                p.mb_s,
                if p.agent { "vibrad" } else { "no agent" },
                f(&p.backend_mb_s),
                f(&pick(|l| l.1)),
                f(&pick(|l| l.0)),
                f(&pick(|l| l.2)),
            ));
        }
        let rates = schedule.rates();
        report.note(format!(
            "replay: the dissertation's clip {} + {} minutes of requests_per_minute.csv \
             (counts {:?}; the busiest 10 minutes of that day start at {} with {} requests), \
             the first {} minutes replayed, each in {:.0} s ({}x time compression, same \
             rates); one factor {:.5} for every minute, chosen so the busiest minute ({} \
             requests) offers {:.0}% of the back ends' total egress at {EQUAL_MB_S} MB/s \
             ({:.1} MB/s at the stream's mean of {:.1} KB per request): {:.0}-{:.0} \
             requests/s, {} Poisson arrivals (expected {:.0}; seed {}) over {:.0} s",
            schedule.first,
            WINDOW_MINUTES,
            window.counts,
            busiest.first,
            busiest.counts.iter().sum::<u64>(),
            schedule.counts.len(),
            schedule.minute().as_secs_f64(),
            schedule.compression,
            schedule.factor,
            schedule.peak_count,
            100.0 * PEAK_LOAD,
            PEAK_LOAD * capacity / 1e6,
            mean_bytes / 1e3,
            rates.iter().copied().fold(f64::INFINITY, f64::min),
            rates.iter().copied().fold(0.0, f64::max),
            arrivals.len(),
            schedule.expected_requests(),
            ctx.seed,
            length.as_secs_f64()
        ));
        report.note(work.note(ctx.seed));
        let failing: Vec<String> = points
            .iter()
            .filter(|p| !p.works())
            .map(|p| {
                format!(
                    "{} at {} MB/s (mean {:.0} ms, {} failed, {} unsent)",
                    p.policy,
                    p.mb_s,
                    p.stats.mean_ms(),
                    p.stats.failed,
                    p.unsent
                )
            })
            .collect();
        if !failing.is_empty() {
            report.note(format!(
                "did not work (an arrival failed or was left unsent, or the mean response \
                 exceeded {WORKING_LIMIT_MS} ms; not drawn in the figure, kept in the rows, \
                 whose mean covers only the answered requests): {}",
                failing.join(", ")
            ));
        }

        let bandwidths: Vec<f64> = {
            let mut b: Vec<f64> = points.iter().map(|p| p.mb_s).collect();
            b.sort_by(f64::total_cmp);
            b.dedup();
            b
        };
        for &bw in &bandwidths {
            let Some((hash, hash_sd)) = mean_ms(&points, "url-hash/r", bw) else {
                continue;
            };
            for (other, theirs) in [
                ("least-conn", DISSERTATION_VS_LEAST_CONN),
                ("lard", DISSERTATION_VS_LARD),
            ] {
                if let Some((o, o_sd)) = mean_ms(&points, other, bw)
                    && o > 0.0
                {
                    report.compare(Comparison::new(
                        format!("url-hash/r vs {other} at {bw} MB/s per back end (mean response)"),
                        format!(
                            "{:+.0}% ({hash:.1} +- {hash_sd:.1} vs {o:.1} +- {o_sd:.1} ms)",
                            100.0 * (hash / o - 1.0)
                        ),
                        format!("{:+.0}%", 100.0 * theirs),
                    ));
                }
            }
        }
        if let (Some((reduced, _)), Some((lc, _))) = (
            mean_ms(&points, "url-hash/r", REDUCED_MB_S),
            mean_ms(&points, "least-conn", EQUAL_MB_S),
        ) && lc > 0.0
        {
            let works = points
                .iter()
                .filter(|p| p.policy == "url-hash/r" && p.mb_s == REDUCED_MB_S)
                .all(Point::complete);
            report.compare(Comparison::new(
                format!(
                    "url-hash/r at {REDUCED_MB_S} MB/s (20% less) vs least-conn at {EQUAL_MB_S} MB/s"
                ),
                format!(
                    "{:+.0}% ({reduced:.1} vs {lc:.1} ms; {})",
                    100.0 * (reduced / lc - 1.0),
                    if works {
                        "every arrival served"
                    } else {
                        "NOT every arrival served"
                    }
                ),
                "works, about equal",
            ));
        }

        let mut fig = Figure::lines(
            "fig3.7",
            "Mean response time, World Cup replay (1998-06-30 16:10 UTC)",
            "bandwidth per back end (MB/s)",
            "mean response time (ms)",
        );
        let policies: Vec<&str> = {
            let mut v: Vec<&str> = Vec::new();
            for p in &points {
                if !v.contains(&p.policy) {
                    v.push(p.policy);
                }
            }
            v
        };
        for &policy in &policies {
            let works_at = |b: f64| {
                points
                    .iter()
                    .filter(|p| p.policy == policy && p.mb_s == b)
                    .all(Point::works)
            };
            let failing: Vec<String> = bandwidths
                .iter()
                .filter(|&&b| mean_ms(&points, policy, b).is_some() && !works_at(b))
                .map(|b| b.to_string())
                .collect();
            let label = if failing.is_empty() {
                policy.to_string()
            } else {
                format!("{policy} (fails at {} MB/s)", failing.join(", "))
            };
            fig = fig.with_series(Series::new(
                label,
                bandwidths
                    .iter()
                    .filter(|&&b| works_at(b))
                    .filter_map(|&b| mean_ms(&points, policy, b).map(|m| (b, m.0)))
                    .collect(),
            ));
        }
        if let Some((lc, _)) = mean_ms(&points, "least-conn", EQUAL_MB_S) {
            fig = fig
                .with_dissertation(DissertationMark::new(
                    EQUAL_MB_S,
                    lc * (1.0 + DISSERTATION_VS_LEAST_CONN),
                    "URL hash -35% vs least-conn",
                ))
                .with_dissertation(DissertationMark::new(
                    REDUCED_MB_S,
                    lc,
                    "URL hash at 2.4 ~ least-conn at 3.0",
                ));
        }
        if let Some((lard, _)) = mean_ms(&points, "lard", EQUAL_MB_S) {
            fig = fig.with_dissertation(DissertationMark::new(
                EQUAL_MB_S,
                lard * (1.0 + DISSERTATION_VS_LARD),
                "URL hash -51% vs LARD",
            ));
        }
        report.figure(fig);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plans_measure_what_the_dissertation_compares() {
        for quick in [true, false] {
            let p = plan(quick);
            for needed in [
                ("url-hash/r", EQUAL_MB_S),
                ("least-conn", EQUAL_MB_S),
                ("lard", EQUAL_MB_S),
                ("url-hash/r", REDUCED_MB_S),
            ] {
                assert!(p.points.contains(&needed), "quick {quick}: {needed:?}");
            }
            assert!(p.replayed_minutes <= WINDOW_MINUTES && p.compression >= 1);
        }
        // The quick replay is shorter, not lighter: the same rates in fewer, shorter minutes.
        let (q, f) = (plan(true), plan(false));
        assert!(q.replayed_minutes < f.replayed_minutes && q.compression > f.compression);
        assert_eq!(q.setup.egress_bits_per_sec, f.setup.egress_bits_per_sec);
        assert!((REDUCED_MB_S / EQUAL_MB_S - 0.8).abs() < 1e-12);
    }

    #[test]
    fn only_url_hashing_runs_with_the_agent_and_only_when_asked() {
        for policy in ["url-hash", "url-hash/r"] {
            assert!(with_agent(policy, AgentChoice::Vibrad), "{policy}");
            assert!(!with_agent(policy, AgentChoice::Lab), "{policy}");
        }
        for policy in ["least-conn", "lard", "lard/r", "round-robin", "nginx-vibra"] {
            assert!(!with_agent(policy, AgentChoice::Vibrad), "{policy}");
        }
    }

    #[test]
    fn the_agent_moves_the_points_bandwidth_every_3_s_and_no_memory() {
        for mb_s in [EQUAL_MB_S, REDUCED_MB_S] {
            let o = agent_options(mb_s);
            assert_eq!((o.period_s, o.alpha, o.replication), (3.0, 0.9, 2));
            assert_eq!(o.egress_bits_per_sec, Some(mb_s * 8e6));
            assert_eq!(o.memory_mib, None);
            assert!(o.egress_floor_bits_per_sec < mb_s * 8e6);
        }
    }

    #[test]
    fn limits_are_summarised_per_back_end() {
        let s = vec![vec![24.0, 10.0], vec![24.0, 30.0], vec![24.0, 20.0]];
        assert_eq!(
            min_mean_max(&s),
            vec![(24.0, 24.0, 24.0), (10.0, 20.0, 30.0)]
        );
        assert!(min_mean_max(&[]).is_empty());
    }
}
