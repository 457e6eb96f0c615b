//! Figure 3.8: disk data read per dispatch policy over the same World Cup replay, on the real
//! testbed (`crate::testbed`): 4 nginx back ends, each in its own namespace with its own
//! cgroup memory limit and its own copy of the corpus, `vibra-proxy` in front with each
//! policy in turn, the corpus evicted before each policy, the block device's reads counted over
//! the whole replay.

use serde_json::json;

use super::web::{Replay, Setup, bring_up, mean_sd, replay, require_testbed, scaled_world_cup};
use crate::testbed::FrontEnd;
use crate::workload::StreamModel;
use crate::{
    Comparison, DissertationMark, Experiment, Figure, LabError, Report, RunContext, Series,
};

/// The `fig3.8` experiment.
pub struct Fig38;

/// The dissertation's figure: URL hashing with R = 2 reads 33% fewer disk blocks than the
/// content-unaware policies.
const DISSERTATION_RATIO: f64 = 0.67;
const QUICK_POLICIES: &[&str] = &["url-hash/r", "least-conn", "round-robin"];
const FULL_POLICIES: &[&str] = &[
    "url-hash",
    "url-hash/r",
    "lard",
    "lard/r",
    "least-conn",
    "round-robin",
    "nginx-vibra",
    "nginx-hash-consistent",
    "nginx-least-conn",
];

/// The scaled World Cup model (`web::scaled_world_cup`) with each back end's memory limit
/// about a third of one corpus copy: the working set does not fit one back end, as in the
/// dissertation's cluster, at a size this machine writes in seconds. The full run replays
/// three times as many requests over twice the objects, three times.
fn setup(quick: bool) -> Setup {
    let scaled = scaled_world_cup();
    if quick {
        Setup {
            model: StreamModel {
                requests: 20_000,
                cold_objects: 1_500,
                ..scaled
            },
            backends: 4,
            memory_mib: 24,
            egress_bits_per_sec: 400e6,
            connections: 8,
            repeats: 1,
            disk_read_bytes_per_sec: None,
        }
    } else {
        Setup {
            model: StreamModel {
                requests: 60_000,
                cold_objects: 3_000,
                ..scaled
            },
            backends: 4,
            memory_mib: 40,
            egress_bits_per_sec: 400e6,
            connections: 8,
            repeats: 3,
            disk_read_bytes_per_sec: None,
        }
    }
}

/// One policy's replay.
struct Measured {
    policy: &'static str,
    repeat: usize,
    replay: Replay,
}

impl Experiment for Fig38 {
    fn name(&self) -> &'static str {
        "fig3.8"
    }

    fn title(&self) -> &'static str {
        "disk data read per policy, World Cup replay on real nginx back ends"
    }

    fn dissertation(&self) -> &'static str {
        "Figure 3.8 (section 3.5.3): over the same trace replay, URL hashing with R = 2 reads \
         33% fewer disk blocks than the content-unaware policies (least-connection, \
         round-robin), because each back end caches only its share of the objects."
    }

    fn row_fields(&self) -> &'static [&'static str] {
        &["policy", "disk_read_mb"]
    }

    fn real_components(&self) -> bool {
        true
    }

    fn run(&self, ctx: &RunContext) -> Result<Report, LabError> {
        let defaults = if ctx.quick {
            QUICK_POLICIES
        } else {
            FULL_POLICIES
        };
        // A bad --policies is refused before anything else, also where the testbed is skipped.
        let chosen = ctx.policies(self.name(), defaults, FULL_POLICIES)?;
        require_testbed(self.name())?;
        let s = setup(ctx.quick);
        let mut skipped = Vec::new();
        // nginx with Vibra's module runs only where the module was built.
        let policies: Vec<&str> = chosen
            .into_iter()
            .filter(|&p| match (p, FrontEnd::locate_nginx_module()) {
                ("nginx-vibra", Err(e)) => {
                    skipped.push(format!("{p} skipped: {e}"));
                    false
                }
                _ => true,
            })
            .collect();
        let (work, tb, proxy) = bring_up(ctx, self.name(), &s)?;
        let mut measured: Vec<Measured> = Vec::new();
        let mut task = ctx.progress.task(
            self.name(),
            "policy replays",
            (s.repeats * policies.len()) as u64,
        );
        for repeat in 0..s.repeats {
            for &policy in &policies {
                measured.push(Measured {
                    policy,
                    repeat,
                    replay: replay(&tb, &proxy, policy, &work.requests, s.connections)?,
                });
                task.advance(1);
            }
        }

        let mut report = Report::default();
        report.note(format!(
            "testbed: {} back ends (nginx in its own network namespace, cgroup memory limit {} \
             MiB, egress {:.0} Mbit/s, its own corpus copy, {}), run id {}, set up in {:.1} \
             s; cgroups {}; disk reads from {}",
            s.backends,
            s.memory_mib,
            s.egress_bits_per_sec / 1e6,
            tb.disk_read_note(),
            tb.run_id(),
            tb.setup_seconds(),
            tb.cgroup_layout(),
            tb.disk().stat_path().display()
        ));
        report.note(format!(
            "front end: {} (--hash md5, R = 2 for the /r policies: least-loaded member of the \
             URL's subset by the proxy's active-request counts; no allocation agent moves \
             memory or bandwidth here); the nginx-* policies: Debian's nginx as the front end \
             (2 workers, 64 keep-alive connections per worker to the back ends; vibra_hash \
             replication=2 hash=md5 from examples/nginx, hash $request_uri consistent, \
             least_conn); {} keep-alive connections from the load generator",
            proxy.display(),
            s.connections
        ));
        for why in &skipped {
            report.note(why.clone());
        }
        report.note(work.note(ctx.seed));
        report.note(format!(
            "each policy: corpus evicted (syncfs + posix_fadvise DONTNEED), then the whole \
             replay; {} repeat(s); disk reads are the device's, so other activity on it adds noise",
            s.repeats
        ));
        drop(tb);

        let rr: Vec<f64> = measured
            .iter()
            .filter(|m| m.policy == "round-robin")
            .map(|m| m.replay.disk_bytes as f64 / 1e6)
            .collect();
        let (rr_mean, _) = mean_sd(&rr);
        for m in &measured {
            let mb = m.replay.disk_bytes as f64 / 1e6;
            report.row(json!({
                "policy": m.policy,
                "disk_read_mb": mb,
                "repeat": m.repeat,
                "ratio_to_round_robin": if rr_mean > 0.0 { mb / rr_mean } else { f64::NAN },
                "requests": m.replay.stats.requests,
                "requests_per_s": m.replay.stats.requests as f64 / m.replay.stats.seconds,
                "mb_per_s": m.replay.stats.bytes as f64 / 1e6 / m.replay.stats.seconds,
                "mean_ms": m.replay.stats.mean_ms(),
                "p95_ms": m.replay.stats.latency_ms(0.95),
                "max_backend_memory_mb": m.replay.memory_max as f64 / 1e6,
            }));
        }
        let per_policy: Vec<(&str, f64, f64)> = policies
            .iter()
            .map(|&p| {
                let v: Vec<f64> = measured
                    .iter()
                    .filter(|m| m.policy == p)
                    .map(|m| m.replay.disk_bytes as f64 / 1e6)
                    .collect();
                let (mean, sd) = mean_sd(&v);
                (p, mean, sd)
            })
            .collect();
        let get = |p: &str| per_policy.iter().find(|x| x.0 == p).map(|x| x.1);
        if let (Some(hash), Some(rr)) = (get("url-hash/r"), get("round-robin"))
            && rr > 0.0
        {
            report.compare(Comparison::new(
                "url-hash/r (R = 2) disk read vs round-robin",
                format!(
                    "{:+.0}% ({:.0} vs {:.0} MB)",
                    100.0 * (hash / rr - 1.0),
                    hash,
                    rr
                ),
                "-33% vs content-unaware",
            ));
        }
        if let (Some(hash), Some(lc)) = (get("url-hash/r"), get("least-conn"))
            && lc > 0.0
        {
            report.compare(Comparison::new(
                "url-hash/r (R = 2) disk read vs least-conn",
                format!(
                    "{:+.0}% ({:.0} vs {:.0} MB)",
                    100.0 * (hash / lc - 1.0),
                    hash,
                    lc
                ),
                "-33% vs content-unaware",
            ));
        }
        let categories: Vec<String> = policies.iter().map(|p| p.to_string()).collect();
        let x_of = |p: &str| policies.iter().position(|q| *q == p).unwrap_or(0) as f64;
        let mut absolute = Figure::bars(
            "fig3.8",
            "Disk data read over the replay (mean over repeats)",
            "policy",
            "disk read (MB)",
            categories.clone(),
        )
        .with_series(Series::new(
            "ours",
            per_policy
                .iter()
                .enumerate()
                .map(|(i, p)| (i as f64, p.1))
                .collect(),
        ));
        let mut relative = Figure::bars(
            "fig3.8-relative",
            "Disk data read relative to round-robin",
            "policy",
            "% of round-robin's disk reads",
            categories,
        )
        .with_series(Series::new(
            "ours",
            per_policy
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    (
                        i as f64,
                        if rr_mean > 0.0 {
                            100.0 * p.1 / rr_mean
                        } else {
                            0.0
                        },
                    )
                })
                .collect(),
        ));
        // The dissertation's mark sits on url-hash/r's bar, where --policies kept it.
        if policies.contains(&"url-hash/r") {
            if rr_mean > 0.0 {
                absolute = absolute.with_dissertation(DissertationMark::new(
                    x_of("url-hash/r"),
                    DISSERTATION_RATIO * rr_mean,
                    "-33% (dissertation)",
                ));
            }
            relative = relative.with_dissertation(DissertationMark::new(
                x_of("url-hash/r"),
                100.0 * DISSERTATION_RATIO,
                "67% (dissertation)",
            ));
        }
        report.figure(absolute);
        report.figure(relative);
        Ok(report)
    }
}
