//! Figure 3.10: throughput at different concurrency levels, YouTube-like workload
//! (`crate::workload::youtube`, section 3.5.4), on the real testbed (`crate::testbed`): the
//! client opens 400 to 600 keep-alive connections to the front end and issues the requests as
//! fast as it can (a closed loop), for each policy and concurrency level, through the same
//! `vibra-proxy` and back ends. Sizes are the generator's (divided by 32); each back end gets
//! the dissertation's 768 MB divided by the same 32 (24 MiB), so the catalogue (about 0.5 GB)
//! does not fit one back end, as 12 GB did not fit 768 MB. Like fig3.9 the back ends are made
//! disk-bound by a blkio read throttle, since this machine's virtual disk serves misses
//! almost for free.

use serde_json::json;

use super::web::{mean_sd, replay, require_testbed};
use crate::testbed::{FrontEnd, Testbed, TestbedConfig};
use crate::workload::youtube::YouTubeModel;
use crate::{
    Comparison, DissertationMark, Experiment, Figure, LabError, Report, RunContext, Series,
};

/// The `fig3.10` experiment.
pub struct Fig310;

const QUICK_POLICIES: &[&str] = &["url-hash", "lard", "least-conn"];
const FULL_POLICIES: &[&str] = &["url-hash", "url-hash/r", "lard", "lard/r", "least-conn"];
const QUICK_CONCURRENCY: &[usize] = &[400, 600];
const FULL_CONCURRENCY: &[usize] = &[400, 450, 500, 550, 600];
/// The dissertation's gains over least-connection (section 3.5.4): LARD and LARD/R about
/// 40%, URL hashing (R = 1) about 30%, URL hashing/R (R = 2) about 14%.
const DISSERTATION_GAINS: &[(&str, f64)] = &[
    ("lard", 0.40),
    ("lard/r", 0.40),
    ("url-hash", 0.30),
    ("url-hash/r", 0.14),
];

/// Back ends, as fig3.9.
const BACKENDS: usize = 4;
/// Each back end's memory: the dissertation's 768 MB divided by the size divisor (32).
const MEMORY_MIB: u64 = 24;
/// Each back end's egress: 60 Mbit/s (as fig3.9); the disk, not the link, is the bottleneck.
const EGRESS_BITS_PER_SEC: f64 = 60e6;
/// Each back end's disk-read rate (bytes/s).
const DISK_READ_BYTES_PER_SEC: u64 = 2_000_000;

fn model(quick: bool) -> YouTubeModel {
    YouTubeModel {
        requests: if quick { 800 } else { 4_000 },
        ..YouTubeModel::SECTION_3_5_4
    }
}

/// One replay's throughput.
struct Point {
    policy: &'static str,
    concurrency: usize,
    mb_per_s: f64,
}

impl Experiment for Fig310 {
    fn name(&self) -> &'static str {
        "fig3.10"
    }

    fn title(&self) -> &'static str {
        "throughput vs concurrency, YouTube-like workload"
    }

    fn dissertation(&self) -> &'static str {
        "Figure 3.10 (section 3.5.4): 2,000 videos (12 GB), 4,000 requests (25 GB), Zipf 0.56, \
         768 MB per VM and 80 MB/s for the cluster, 400 to 600 concurrent connections; no \
         hot spot; LARD and LARD/R about 40% faster than least-connection, URL hashing (R = 1) \
         about 30% and URL hashing/R (R = 2) about 14%."
    }

    fn row_fields(&self) -> &'static [&'static str] {
        &["policy", "concurrency", "requests_per_s", "mb_per_s"]
    }

    fn real_components(&self) -> bool {
        true
    }

    fn run(&self, ctx: &RunContext) -> Result<Report, LabError> {
        let (defaults, levels, repeats) = if ctx.quick {
            (QUICK_POLICIES, QUICK_CONCURRENCY, 1)
        } else {
            (FULL_POLICIES, FULL_CONCURRENCY, 2)
        };
        let policies = &ctx.policies(self.name(), defaults, FULL_POLICIES)?[..];
        require_testbed(self.name())?;
        let m = model(ctx.quick);
        let work = m.generate(ctx.seed)?;
        let files = work.files();
        let requests = work.load_requests();
        let config = TestbedConfig {
            backends: BACKENDS,
            memory_mib: MEMORY_MIB,
            egress_bits_per_sec: EGRESS_BITS_PER_SEC,
            disk_read_bytes_per_sec: ctx.disk_read_rate(Some(DISK_READ_BYTES_PER_SEC)),
            ..TestbedConfig::default()
        };
        let proxy = FrontEnd::locate()?;
        ctx.progress.say(
            self.name(),
            &format!(
                "bringing up {BACKENDS} back ends, {} videos ({:.0} MB) per copy",
                files.len(),
                work.corpus_bytes() as f64 / 1e6
            ),
        );
        let tb = Testbed::up(&config, &files)?;
        let mut task = ctx.progress.task(
            self.name(),
            "replays",
            (repeats * policies.len() * levels.len()) as u64,
        );
        let mut points = Vec::new();
        let mut report = Report::default();
        for repeat in 0..repeats {
            for &concurrency in levels {
                for &policy in policies {
                    let r = replay(&tb, &proxy, policy, &requests, concurrency)?;
                    let mb_per_s = r.stats.bytes as f64 / 1e6 / r.stats.seconds;
                    report.row(json!({
                        "policy": policy,
                        "concurrency": concurrency,
                        "requests_per_s": r.stats.requests as f64 / r.stats.seconds,
                        "mb_per_s": mb_per_s,
                        "repeat": repeat,
                        "disk_read_mb": r.disk_bytes as f64 / 1e6,
                        "mean_ms": r.stats.mean_ms(),
                    }));
                    points.push(Point {
                        policy,
                        concurrency,
                        mb_per_s,
                    });
                    task.advance(1);
                }
            }
        }
        report.note(format!(
            "testbed: {} back ends (nginx in its own network namespace, its own corpus copy), \
             each {} MiB, {:.0} Mbit/s and {:.1} MB/s of disk reads (blkio throttle); run id \
             {}, set up in {:.1} s",
            BACKENDS,
            MEMORY_MIB,
            EGRESS_BITS_PER_SEC / 1e6,
            tb.disk_read_limit().unwrap_or(0) as f64 / 1e6,
            tb.run_id(),
            tb.setup_seconds(),
        ));
        drop(tb);
        report.note(format!(
            "front end: {} (--hash md5, R = 2 for the /r policies; no allocation agent); for \
             each concurrency level and policy the corpus is evicted and the whole request list \
             replayed over that many keep-alive connections as fast as they go; {repeats} \
             repeat(s)",
            proxy.display(),
        ));
        report.note(format!(
            "workload: the YouTube-like generator (workload::youtube), {} videos ({:.0} MB per \
             copy, sizes divided by {}), {} requests ({:.0} MB), Zipf {}, seed {}",
            work.videos.len(),
            work.corpus_bytes() as f64 / 1e6,
            m.size_divisor,
            requests.len(),
            work.transfer_bytes() as f64 / 1e6,
            m.zipf_beta,
            ctx.seed
        ));

        let mean_of = |policy: &str, c: usize| {
            let v: Vec<f64> = points
                .iter()
                .filter(|p| p.policy == policy && p.concurrency == c)
                .map(|p| p.mb_per_s)
                .collect();
            mean_sd(&v)
        };
        // Gain over least-connection, averaged over the concurrency levels.
        let gain = |policy: &str| {
            let g: Vec<f64> = levels
                .iter()
                .filter_map(|&c| {
                    let lc = mean_of("least-conn", c).0;
                    (lc > 0.0).then(|| mean_of(policy, c).0 / lc - 1.0)
                })
                .collect();
            mean_sd(&g)
        };
        for &(policy, theirs) in DISSERTATION_GAINS {
            if policies.contains(&policy) {
                let (g, sd) = gain(policy);
                report.compare(Comparison::new(
                    format!("{policy} over least-conn (MB/s, mean over {levels:?} connections)"),
                    format!("{:+.0}% (+- {:.0} across levels)", 100.0 * g, 100.0 * sd),
                    format!("{:+.0}%", 100.0 * theirs),
                ));
            }
        }
        let mut fig = Figure::lines(
            "fig3.10",
            "Throughput vs concurrency, YouTube-like workload (mean over repeats)",
            "concurrent connections",
            "MB per second",
        );
        for &policy in policies {
            fig = fig.with_series(Series::new(
                policy,
                levels
                    .iter()
                    .map(|&c| (c as f64, mean_of(policy, c).0))
                    .collect(),
            ));
        }
        let low = levels[0];
        let lc = mean_of("least-conn", low).0;
        if lc > 0.0 {
            for &(policy, theirs) in DISSERTATION_GAINS {
                if policies.contains(&policy) && !policy.ends_with("/r") {
                    fig = fig.with_dissertation(DissertationMark::new(
                        low as f64,
                        lc * (1.0 + theirs),
                        format!("{policy} {:+.0}% over least-conn", 100.0 * theirs),
                    ));
                }
            }
        }
        report.figure(fig);
        Ok(report)
    }
}
