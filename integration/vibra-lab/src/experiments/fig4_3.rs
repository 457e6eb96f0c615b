//! Figure 4.3: throughput in normal and degraded operation, with and without transferring the
//! failed back end's resources, on the real testbed (`crate::testbed`): 4 nginx back ends with
//! scarce egress bandwidth and memory, `vibra-proxy --policy url-hash/r` (R = 2) in front.
//! `failed`: back end 1's nginx is stopped (the proxy's refused connection and health check
//! move its URLs to the other member of their subsets). `failed+bandwidth`, `failed+memory`,
//! `failed+both`: its egress rate, memory limit or both are split evenly among the three
//! survivors through vibra-host before the replay, as the allocation agent would
//! (`--agent lab`, the default). With `--agent vibrad` a real `vibrad` moves them instead: for
//! each `failed+*` scenario one is started with the pools of the resources that scenario
//! transfers, adopting the back ends (`testbed::VibradAgent`); back end 1's nginx is then
//! killed, vibrad gives its share to the next R = 2 back ends (SPEC 4) by itself, and the replay
//! starts once that is in the kernel, vibrad running (re-dividing by demand every 3 s) until
//! the replay ends. `normal` and `failed` run without an agent.

use serde_json::json;

use std::time::{Duration, Instant};

use super::web::{
    Setup, Transfer, bring_up, give_survivors, mean_sd, replay, require_testbed_and_agent,
    scaled_world_cup,
};
use crate::testbed::{AgentOptions, Testbed, TestbedError, VibradAgent};
use crate::workload::StreamModel;
use crate::{
    AgentChoice, Comparison, DissertationMark, Experiment, Figure, LabError, Report, RunContext,
    Series,
};

/// The `fig4.3` experiment.
pub struct Fig43;

const POLICY: &str = "url-hash/r";
const QUICK_SCENARIOS: &[&str] = &["normal", "failed", "failed+both"];
const FULL_SCENARIOS: &[&str] = &[
    "normal",
    "failed",
    "failed+bandwidth",
    "failed+memory",
    "failed+both",
];
/// The back end that fails (0-based; any one would do).
pub(super) const FAILED: usize = 1;
pub(super) const BACKENDS: usize = 4;
/// The dissertation: 97% of normal throughput with both resources transferred.
const DISSERTATION_BOTH: f64 = 0.97;

/// The scaled World Cup model (`web::scaled_world_cup`); 60 Mbit/s per back end, so the four back ends' 30 MB/s
/// is the bottleneck (the proxy and load generator carry 70-90 MB/s here, 25-45 MB/s when
/// other builds load the machine), as bandwidth was scarce in the dissertation's cluster.
pub(super) fn setup(quick: bool) -> Setup {
    let scaled = scaled_world_cup();
    Setup {
        model: StreamModel {
            requests: if quick { 6_000 } else { 20_000 },
            cold_objects: 1_500,
            ..scaled
        },
        backends: BACKENDS,
        memory_mib: 24,
        egress_bits_per_sec: 60e6,
        connections: 32,
        repeats: if quick { 1 } else { 3 },
        disk_read_bytes_per_sec: None,
    }
}

/// Sets every back end's resources for `scenario` and stops or starts the failed back end:
/// with `AgentChoice::Lab` by hand (`web::give_survivors`); with `AgentChoice::Vibrad` the
/// even split by hand, then for a transfer a `vibrad` with the transferred pools, back end
/// `FAILED` killed while it watches, and its compensation awaited in the kernel (the agent is
/// returned, to run until the replay ends).
fn apply(
    tb: &mut Testbed,
    s: &Setup,
    scenario: &str,
    agent: AgentChoice,
) -> Result<Option<VibradAgent>, LabError> {
    let failed = scenario.starts_with("failed");
    let transfer = Transfer {
        bandwidth: failed && (scenario.ends_with("+bandwidth") || scenario.ends_with("+both")),
        memory: failed && (scenario.ends_with("+memory") || scenario.ends_with("+both")),
    };
    let by_vibrad = agent == AgentChoice::Vibrad && (transfer.bandwidth || transfer.memory);
    if !by_vibrad {
        give_survivors(tb, s, FAILED, transfer)?;
        if failed {
            tb.stop_backend(FAILED)?;
        } else {
            tb.start_backend(FAILED)?;
        }
        return Ok(None);
    }
    give_survivors(tb, s, FAILED, Transfer::default())?;
    tb.start_backend(FAILED)?;
    let options = AgentOptions {
        egress_bits_per_sec: transfer.bandwidth.then_some(s.egress_bits_per_sec),
        memory_mib: transfer.memory.then_some(s.memory_mib),
        ..AgentOptions::dissertation(s.egress_bits_per_sec, s.memory_mib)
    };
    let vibrad = VibradAgent::start(tb, &options)?;
    let before = tb.limits()?;
    tb.stop_backend(FAILED)?;
    // The next back end's limits change when the compensation is applied: within one period
    // of the kill, plus the time to notice it.
    let limit = Duration::from_secs_f64(2.0 * options.period_s) + Duration::from_secs(5);
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if tb.limits()?[FAILED + 1] != before[FAILED + 1] {
            // Both kinds are written in the same step.
            std::thread::sleep(Duration::from_millis(300));
            return Ok(Some(vibrad));
        }
        if started.elapsed() > limit {
            return Err(TestbedError::Process {
                what: "vibrad (the testbed's agent)".into(),
                detail: format!(
                    "no compensation in the kernel {limit:?} after back end {FAILED} was killed; log: {}",
                    vibrad.log_tail(5)
                ),
            }
            .into());
        }
    }
}

impl Experiment for Fig43 {
    fn name(&self) -> &'static str {
        "fig4.3"
    }

    fn title(&self) -> &'static str {
        "throughput in normal and degraded operation, with and without resource transfer"
    }

    fn dissertation(&self) -> &'static str {
        "Figure 4.3 (section 4.4): after one of the back ends fails, transferring its \
         bandwidth and memory to the survivors keeps 97% of the normal throughput; the \
         memory transfer alone adds 37-73% over the failed case without transfer."
    }

    fn row_fields(&self) -> &'static [&'static str] {
        &["policy", "scenario", "mb_per_s"]
    }

    fn real_components(&self) -> bool {
        true
    }

    fn run(&self, ctx: &RunContext) -> Result<Report, LabError> {
        require_testbed_and_agent(self.name(), ctx.agent)?;
        let s = setup(ctx.quick);
        let scenarios = if ctx.quick {
            QUICK_SCENARIOS
        } else {
            FULL_SCENARIOS
        };
        let (work, mut tb, proxy) = bring_up(ctx, self.name(), &s)?;
        let mut task = ctx.progress.task(
            self.name(),
            "scenario replays",
            (s.repeats * scenarios.len()) as u64,
        );
        let mut report = Report::default();
        let mut measured: Vec<(&str, usize, f64)> = Vec::new();
        for repeat in 0..s.repeats {
            for &scenario in scenarios {
                let agent = apply(&mut tb, &s, scenario, ctx.agent)?;
                let by = if agent.is_some() { "vibrad" } else { "lab" };
                let r = replay(&tb, &proxy, POLICY, &work.requests, s.connections)?;
                drop(agent);
                let mb_per_s = r.stats.bytes as f64 / 1e6 / r.stats.seconds;
                report.row(json!({
                    "policy": POLICY,
                    "scenario": scenario,
                    "mb_per_s": mb_per_s,
                    "repeat": repeat,
                    "requests_per_s": r.stats.requests as f64 / r.stats.seconds,
                    "disk_read_mb": r.disk_bytes as f64 / 1e6,
                    "mean_ms": r.stats.mean_ms(),
                    "p95_ms": r.stats.latency_ms(0.95),
                    "max_backend_memory_mb": r.memory_max as f64 / 1e6,
                    "moved_by": by,
                }));
                measured.push((scenario, repeat, mb_per_s));
                task.advance(1);
            }
        }
        report.note(format!(
            "testbed: {BACKENDS} back ends (nginx in its own network namespace, its own corpus \
             copy), each {} MiB and {:.0} Mbit/s normally, {}; run id {}, set up in {:.1} \
             s; cgroups {}",
            s.memory_mib,
            s.egress_bits_per_sec / 1e6,
            tb.disk_read_note(),
            tb.run_id(),
            tb.setup_seconds(),
            tb.cgroup_layout()
        ));
        report.note(format!(
            "front end: {} --policy {POLICY} (R = 2, --hash md5), {} keep-alive connections; \
             failure: back end {FAILED}'s nginx stopped before the replay; transfer: the \
             {}",
            proxy.display(),
            s.connections,
            match ctx.agent {
                AgentChoice::Lab => "survivors' memory limit and/or egress rate x 4/3, set \
                                     through vibra-host (what the allocation agent would do; \
                                     vibrad itself is not running)"
                    .to_string(),
                AgentChoice::Vibrad => "failed back end's share, moved by a real vibrad (agent role, period 3 s, alpha \
                                        0.9, R = 2, floors a quarter of the even bandwidth and \
                                        8 MiB) started for each \
                                        failed+* scenario with the pools it transfers, adopting \
                                        the back ends; back end 1 killed while it watched, the \
                                        replay started once its compensation (to back ends 2 \
                                        and 3) was in the kernel, vibrad re-dividing by demand \
                                        until the replay ended"
                    .to_string(),
            }
        ));
        report.note(work.note(ctx.seed));
        report.note(format!(
            "each scenario: corpus evicted, then the whole replay; {} repeat(s)",
            s.repeats
        ));
        drop(tb);

        let per: Vec<(&str, f64, f64)> = scenarios
            .iter()
            .map(|&sc| {
                let v: Vec<f64> = measured.iter().filter(|m| m.0 == sc).map(|m| m.2).collect();
                let (mean, sd) = mean_sd(&v);
                (sc, mean, sd)
            })
            .collect();
        let get = |sc: &str| per.iter().find(|p| p.0 == sc).map(|p| p.1);
        if let (Some(normal), Some(both)) = (get("normal"), get("failed+both"))
            && normal > 0.0
        {
            report.compare(Comparison::new(
                "failed+both throughput / normal",
                format!(
                    "{:.0}% ({both:.1} vs {normal:.1} MB/s)",
                    100.0 * both / normal
                ),
                "97%",
            ));
        }
        if let (Some(failed), Some(both)) = (get("failed"), get("failed+both"))
            && failed > 0.0
        {
            report.compare(Comparison::new(
                "failed+both / failed (gain of transferring both)",
                format!("{:+.0}%", 100.0 * (both / failed - 1.0)),
                "(97% of normal vs the failed case)",
            ));
        }
        if let (Some(failed), Some(mem)) = (get("failed"), get("failed+memory"))
            && failed > 0.0
        {
            report.compare(Comparison::new(
                "failed+memory / failed (gain of the memory transfer)",
                format!("{:+.0}%", 100.0 * (mem / failed - 1.0)),
                "+37% to +73%",
            ));
        }
        let categories: Vec<String> = scenarios.iter().map(|s| s.to_string()).collect();
        let mut fig = Figure::bars(
            "fig4.3",
            "Throughput, normal and after one failure (url-hash/r, mean over repeats)",
            "scenario",
            "throughput (MB/s)",
            categories,
        )
        .with_series(Series::new(
            "ours",
            per.iter()
                .enumerate()
                .map(|(i, p)| (i as f64, p.1))
                .collect(),
        ));
        if let (Some(normal), Some(x)) = (
            get("normal"),
            scenarios.iter().position(|s| *s == "failed+both"),
        ) {
            fig = fig.with_dissertation(DissertationMark::new(
                x as f64,
                DISSERTATION_BOTH * normal,
                "97% of normal (dissertation)",
            ));
        }
        report.figure(fig);
        Ok(report)
    }
}
