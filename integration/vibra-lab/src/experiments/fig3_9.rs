//! Figure 3.9: throughput at different concurrency levels, World Cup workload, on the real
//! testbed (`crate::testbed`): the client opens a fixed number of keep-alive connections to the
//! front end and issues requests as fast as it can (a closed loop, as in section 3.5.3), for
//! each policy and concurrency level, through the same `vibra-proxy` and back ends. Scaled as
//! fig3.8/fig4.3 (memory a third of a corpus copy, bandwidth scarce); the dissertation's
//! 140-220 connections are kept.

use serde_json::json;

use super::web::{Setup, bring_up, mean_sd, replay, require_testbed, scaled_world_cup};
use crate::workload::StreamModel;
use crate::{
    Comparison, DissertationMark, Experiment, Figure, LabError, Report, RunContext, Series,
};

/// The `fig3.9` experiment.
pub struct Fig39;

const QUICK_POLICIES: &[&str] = &["url-hash/r", "lard", "least-conn"];
const FULL_POLICIES: &[&str] = &[
    "url-hash",
    "url-hash/r",
    "lard",
    "lard/r",
    "least-conn",
    "round-robin",
];
const QUICK_CONCURRENCY: &[usize] = &[140, 220];
const FULL_CONCURRENCY: &[usize] = &[140, 160, 180, 200, 220];
/// The dissertation at 140 connections: LARD and URL hashing over least-connection.
const DISSERTATION_LARD_GAIN: f64 = 0.26;
const DISSERTATION_HASH_GAIN: f64 = 0.23;

/// Each back end's disk-read rate: page-cache misses cost what they cost the dissertation's
/// disk-bound back ends (its least-connection was slowest "due to its excessive disk
/// activities"), where this machine's virtual disk would serve them almost for free.
const DISK_READ_BYTES_PER_SEC: u64 = 1_000_000;

/// fig4.3's scarce resources (24 MiB, 60 Mbit/s per back end: the dissertation gave each VM
/// 64 MB and 6 MB/s here) and a disk-read rate per back end; `connections` is set per point.
fn setup(quick: bool) -> Setup {
    let scaled = scaled_world_cup();
    Setup {
        model: StreamModel {
            requests: if quick { 8_000 } else { 20_000 },
            cold_objects: 1_500,
            ..scaled
        },
        backends: 4,
        memory_mib: 24,
        egress_bits_per_sec: 60e6,
        connections: 0,
        repeats: if quick { 1 } else { 2 },
        disk_read_bytes_per_sec: Some(DISK_READ_BYTES_PER_SEC),
    }
}

/// One replay's throughput.
struct Point {
    policy: &'static str,
    concurrency: usize,
    requests_per_s: f64,
    mb_per_s: f64,
    disk_read_mb: f64,
    mean_ms: f64,
}

impl Experiment for Fig39 {
    fn name(&self) -> &'static str {
        "fig3.9"
    }

    fn title(&self) -> &'static str {
        "throughput vs concurrency, World Cup workload"
    }

    fn dissertation(&self) -> &'static str {
        "Figure 3.9 (section 3.5.3): 140 to 220 concurrent connections issuing requests as fast \
         as possible, 64 MB and 6 MB/s per VM; least-connection is the slowest and falls with \
         load (disk activity); at 140 connections LARD and URL hashing beat it by 26% and 23%; \
         LARD degrades at high concurrency as the hot objects' traffic saturates links."
    }

    fn row_fields(&self) -> &'static [&'static str] {
        &["policy", "concurrency", "requests_per_s", "mb_per_s"]
    }

    fn real_components(&self) -> bool {
        true
    }

    fn run(&self, ctx: &RunContext) -> Result<Report, LabError> {
        let (defaults, levels) = if ctx.quick {
            (QUICK_POLICIES, QUICK_CONCURRENCY)
        } else {
            (FULL_POLICIES, FULL_CONCURRENCY)
        };
        let policies = &ctx.policies(self.name(), defaults, FULL_POLICIES)?[..];
        require_testbed(self.name())?;
        let s = setup(ctx.quick);
        let (work, tb, proxy) = bring_up(ctx, self.name(), &s)?;
        let mut task = ctx.progress.task(
            self.name(),
            "replays",
            (s.repeats * policies.len() * levels.len()) as u64,
        );
        let mut points = Vec::new();
        let mut report = Report::default();
        for repeat in 0..s.repeats {
            for &concurrency in levels {
                for &policy in policies {
                    let r = replay(&tb, &proxy, policy, &work.requests, concurrency)?;
                    let p = Point {
                        policy,
                        concurrency,
                        requests_per_s: r.stats.requests as f64 / r.stats.seconds,
                        mb_per_s: r.stats.bytes as f64 / 1e6 / r.stats.seconds,
                        disk_read_mb: r.disk_bytes as f64 / 1e6,
                        mean_ms: r.stats.mean_ms(),
                    };
                    report.row(json!({
                        "policy": policy,
                        "concurrency": concurrency,
                        "requests_per_s": p.requests_per_s,
                        "mb_per_s": p.mb_per_s,
                        "repeat": repeat,
                        "disk_read_mb": p.disk_read_mb,
                        "mean_ms": p.mean_ms,
                        "p95_ms": r.stats.latency_ms(0.95),
                    }));
                    points.push(p);
                    task.advance(1);
                }
            }
        }
        report.note(format!(
            "testbed: {} back ends (nginx in its own network namespace, its own corpus copy), \
             each {} MiB, {:.0} Mbit/s and {:.1} MB/s of disk reads (blkio throttle); run id \
             {}, set up in {:.1} s; cgroups {}",
            s.backends,
            s.memory_mib,
            s.egress_bits_per_sec / 1e6,
            tb.disk_read_limit().unwrap_or(0) as f64 / 1e6,
            tb.run_id(),
            tb.setup_seconds(),
            tb.cgroup_layout()
        ));
        drop(tb);
        report.note(format!(
            "front end: {} (--hash md5, R = 2 for the /r policies; no allocation agent moves \
             memory or bandwidth here); for each concurrency level and policy the corpus is \
             evicted and the whole stream replayed over that many keep-alive connections as \
             fast as they go; {} repeat(s)",
            proxy.display(),
            s.repeats
        ));
        report.note(work.note(ctx.seed));

        // Mean over repeats per (policy, concurrency).
        let mean_of = |policy: &str, c: usize, f: &dyn Fn(&Point) -> f64| {
            let v: Vec<f64> = points
                .iter()
                .filter(|p| p.policy == policy && p.concurrency == c)
                .map(f)
                .collect();
            mean_sd(&v)
        };
        let low = levels[0];
        let lc = mean_of("least-conn", low, &|p| p.requests_per_s).0;
        for (policy, theirs) in [
            ("url-hash/r", DISSERTATION_HASH_GAIN),
            ("lard", DISSERTATION_LARD_GAIN),
        ] {
            let (ours, sd) = mean_of(policy, low, &|p| p.requests_per_s);
            if lc > 0.0 && ours > 0.0 {
                report.compare(Comparison::new(
                    format!("{policy} over least-conn at {low} connections (requests/s)"),
                    format!(
                        "{:+.0}% ({ours:.0} +- {sd:.0} vs {lc:.0})",
                        100.0 * (ours / lc - 1.0)
                    ),
                    format!("{:+.0}%", 100.0 * theirs),
                ));
            }
        }
        let high = *levels.last().unwrap_or(&low);
        for policy in policies {
            let (a, _) = mean_of(policy, low, &|p| p.requests_per_s);
            let (b, _) = mean_of(policy, high, &|p| p.requests_per_s);
            if a > 0.0 {
                report.compare(Comparison::new(
                    format!("{policy}: requests/s at {high} vs {low} connections"),
                    format!("{:+.0}%", 100.0 * (b / a - 1.0)),
                    match *policy {
                        "least-conn" => "falls with load",
                        "lard" | "lard/r" => "degrades at high concurrency",
                        _ => "-",
                    },
                ));
            }
        }
        let mut fig = Figure::lines(
            "fig3.9",
            "Throughput vs concurrency, World Cup workload (mean over repeats)",
            "concurrent connections",
            "requests per second",
        );
        for &policy in policies {
            fig = fig.with_series(Series::new(
                policy,
                levels
                    .iter()
                    .map(|&c| (c as f64, mean_of(policy, c, &|p| p.requests_per_s).0))
                    .collect(),
            ));
        }
        if lc > 0.0 {
            fig = fig
                .with_dissertation(DissertationMark::new(
                    low as f64,
                    lc * (1.0 + DISSERTATION_HASH_GAIN),
                    "URL hash +23% over least-conn at 140",
                ))
                .with_dissertation(DissertationMark::new(
                    low as f64,
                    lc * (1.0 + DISSERTATION_LARD_GAIN),
                    "LARD +26%",
                ));
        }
        report.figure(fig);
        Ok(report)
    }
}
