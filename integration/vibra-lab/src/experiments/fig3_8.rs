//! Figure 3.8: disk data read per dispatch policy over the same World Cup replay, on the real
//! testbed (`crate::testbed`): 4 nginx back ends, each in its own namespace with its own
//! cgroup memory limit and its own copy of the corpus, `vibra-proxy` in front with each
//! policy in turn, the corpus evicted before each policy, the block device's reads counted over
//! the whole replay.

use serde_json::json;

use crate::testbed::{
    self, FrontEnd, LoadStats, REQUIRE_PRIVILEGED_ENV, Request, Testbed, TestbedConfig,
    TestbedError, files_of, run_load, servable_corpus, stop_flag,
};
use crate::workload::{StreamModel, UrlCorpus};
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
];

/// The sizes of a run: quick or full.
#[derive(Debug, Clone, Copy)]
struct Setup {
    model: StreamModel,
    memory_mib: u64,
    egress_bits_per_sec: f64,
    connections: usize,
    repeats: usize,
}

/// The World Cup stream model of `crate::workload` (hot objects, Zipf 1.0 over the rest,
/// log-normal sizes) with sizes scaled 4x (median 16 KiB), and each back end's memory limit
/// about a third of one corpus copy: the working set does not fit one back end, as in the
/// dissertation's cluster, at a size this machine writes in seconds. The full run replays
/// three times as many requests over twice the objects, three times.
fn setup(quick: bool) -> Setup {
    let scaled = StreamModel {
        median_bytes: 4.0 * StreamModel::WORLD_CUP_CLIP.median_bytes,
        ..StreamModel::WORLD_CUP_CLIP
    };
    if quick {
        Setup {
            model: StreamModel {
                requests: 20_000,
                cold_objects: 1_500,
                ..scaled
            },
            memory_mib: 24,
            egress_bits_per_sec: 400e6,
            connections: 8,
            repeats: 1,
        }
    } else {
        Setup {
            model: StreamModel {
                requests: 60_000,
                cold_objects: 3_000,
                ..scaled
            },
            memory_mib: 40,
            egress_bits_per_sec: 400e6,
            connections: 8,
            repeats: 3,
        }
    }
}

/// Skips (or, with `VIBRA_REQUIRE_PRIVILEGED=1`, fails) when the testbed cannot run here.
pub(crate) fn require_testbed(experiment: &'static str) -> Result<(), LabError> {
    let Some(reason) = testbed::unavailable() else {
        return Ok(());
    };
    if std::env::var(REQUIRE_PRIVILEGED_ENV).is_ok_and(|v| v == "1") {
        return Err(TestbedError::Unavailable(format!(
            "{reason}, and {REQUIRE_PRIVILEGED_ENV}=1 forbids skipping"
        ))
        .into());
    }
    Err(LabError::Skipped { experiment, reason })
}

/// One policy's replay.
struct Measured {
    policy: &'static str,
    repeat: usize,
    disk_bytes: u64,
    stats: LoadStats,
    memory_max: u64,
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, sd)
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
        require_testbed(self.name())?;
        let s = setup(ctx.quick);
        let policies = if ctx.quick {
            QUICK_POLICIES
        } else {
            FULL_POLICIES
        };
        let corpus = servable_corpus(&UrlCorpus::from_option(ctx.urls.as_deref(), ctx.seed));
        let stream = s.model.generate(&corpus, ctx.seed)?;
        let files = files_of(&corpus, &stream)?;
        let requests: Vec<Request> = stream
            .requests
            .iter()
            .map(|&o| {
                let obj = stream.objects[o as usize];
                Request {
                    target: String::from_utf8_lossy(&corpus.urls[obj.url]).into_owned(),
                    bytes: obj.bytes,
                }
            })
            .collect();
        let corpus_bytes: u64 = files.iter().map(|f| f.bytes).sum();
        let stream_bytes = stream.total_bytes();
        let config = TestbedConfig {
            memory_mib: s.memory_mib,
            egress_bits_per_sec: s.egress_bits_per_sec,
            ..TestbedConfig::default()
        };
        let proxy = FrontEnd::locate()?;
        ctx.progress.say(
            self.name(),
            &format!(
                "bringing up {} back ends, {} files ({:.0} MB) per copy",
                config.backends,
                files.len(),
                corpus_bytes as f64 / 1e6
            ),
        );
        let tb = Testbed::up(&config, &files)?;
        let stop = stop_flag();
        let mut measured: Vec<Measured> = Vec::new();
        let mut task = ctx.progress.task(
            self.name(),
            "policy replays",
            (s.repeats * policies.len()) as u64,
        );
        for repeat in 0..s.repeats {
            for &policy in policies {
                let r = if policy.ends_with("/r") { 2 } else { 1 };
                let fe = FrontEnd::start(&proxy, policy, r, tb.backend_addrs(), tb.work_dir())?;
                tb.evict()?;
                let before = tb.disk().read_bytes()?;
                let stats = run_load(fe.addr(), &requests, s.connections, &stop)?;
                let disk_bytes = tb.disk().read_bytes()?.saturating_sub(before);
                let memory_max = tb.memory_bytes()?.into_iter().max().unwrap_or(0);
                drop(fe);
                measured.push(Measured {
                    policy,
                    repeat,
                    disk_bytes,
                    stats,
                    memory_max,
                });
                task.advance(1);
            }
        }

        let mut report = Report::default();
        report.note(format!(
            "testbed: {} back ends (nginx in its own network namespace, cgroup memory limit {} \
             MiB, egress {:.0} Mbit/s, its own corpus copy), run id {}, set up in {:.1} s; \
             cgroups {}; disk reads from {}",
            config.backends,
            s.memory_mib,
            s.egress_bits_per_sec / 1e6,
            tb.run_id(),
            tb.setup_seconds(),
            tb.cgroup_layout(),
            tb.disk().stat_path().display()
        ));
        report.note(format!(
            "front end: {} (--hash md5, R = 2 for the /r policies: least-loaded member of the \
             URL's subset by the proxy's active-request counts; no allocation agent moves \
             memory or bandwidth here), {} keep-alive connections",
            proxy.display(),
            s.connections
        ));
        report.note(format!(
            "workload: {} requests ({:.0} MB) over {} distinct objects ({:.0} MB per copy), the \
             World Cup stream model (hot objects + Zipf {} over {} cold URLs, log-normal sizes, \
             median {:.0} KiB) over the servable URLs of {}, seed {}",
            requests.len(),
            stream_bytes as f64 / 1e6,
            files.len(),
            corpus_bytes as f64 / 1e6,
            s.model.zipf_exponent,
            s.model.cold_objects,
            s.model.median_bytes / 1024.0,
            corpus.source,
            ctx.seed
        ));
        report.note(format!(
            "each policy: corpus evicted (syncfs + posix_fadvise DONTNEED), then the whole \
             replay; {} repeat(s); disk reads are the device's, so other activity on it adds noise",
            s.repeats
        ));
        drop(tb);

        let rr: Vec<f64> = measured
            .iter()
            .filter(|m| m.policy == "round-robin")
            .map(|m| m.disk_bytes as f64 / 1e6)
            .collect();
        let (rr_mean, _) = mean_sd(&rr);
        for m in &measured {
            let mb = m.disk_bytes as f64 / 1e6;
            report.row(json!({
                "policy": m.policy,
                "disk_read_mb": mb,
                "repeat": m.repeat,
                "ratio_to_round_robin": if rr_mean > 0.0 { mb / rr_mean } else { f64::NAN },
                "requests": m.stats.requests,
                "requests_per_s": m.stats.requests as f64 / m.stats.seconds,
                "mb_per_s": m.stats.bytes as f64 / 1e6 / m.stats.seconds,
                "mean_ms": m.stats.mean_ms(),
                "p95_ms": m.stats.latency_ms(0.95),
                "max_backend_memory_mb": m.memory_max as f64 / 1e6,
            }));
        }
        let per_policy: Vec<(&str, f64, f64)> = policies
            .iter()
            .map(|&p| {
                let v: Vec<f64> = measured
                    .iter()
                    .filter(|m| m.policy == p)
                    .map(|m| m.disk_bytes as f64 / 1e6)
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
        report.figure(absolute);
        report.figure(relative);
        Ok(report)
    }
}
