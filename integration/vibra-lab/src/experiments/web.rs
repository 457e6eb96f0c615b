//! What the Vibra Web experiments on the real testbed (fig3.8, fig4.3, fig4.4) share: the skip
//! rule, the World Cup workload as files and requests, one measured replay through the proxy,
//! and moving a failed back end's resources to the survivors.

use std::path::{Path, PathBuf};

use crate::testbed::{
    self, CorpusFile, FrontEnd, LoadStats, NGINX_POLICIES, REQUIRE_PRIVILEGED_ENV, Request,
    Testbed, TestbedConfig, TestbedError, files_of, run_load, servable_corpus, stop_flag,
};
use crate::workload::{StreamModel, UrlCorpus};
use crate::{LabError, RunContext};

/// Skips (or, with `VIBRA_REQUIRE_PRIVILEGED=1`, fails) when the testbed cannot run here.
pub(crate) fn require_testbed(experiment: &'static str) -> Result<(), LabError> {
    require(experiment, testbed::unavailable())
}

/// [`require_testbed`], and with `--agent vibrad` the `vibrad` binary as well.
pub(crate) fn require_testbed_and_agent(
    experiment: &'static str,
    agent: crate::context::AgentChoice,
) -> Result<(), LabError> {
    require_testbed(experiment)?;
    if agent == crate::context::AgentChoice::Vibrad {
        require(experiment, crate::testbed::VibradAgent::unavailable())?;
    }
    Ok(())
}

/// Skips (or, with `VIBRA_REQUIRE_PRIVILEGED=1`, fails) when `unavailable` gives a reason.
pub(crate) fn require(
    experiment: &'static str,
    unavailable: Option<String>,
) -> Result<(), LabError> {
    let Some(reason) = unavailable else {
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

/// The sizes of one testbed experiment's run (quick or full).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup {
    pub(crate) model: StreamModel,
    pub(crate) backends: usize,
    pub(crate) memory_mib: u64,
    pub(crate) egress_bits_per_sec: f64,
    pub(crate) connections: usize,
    pub(crate) repeats: usize,
    /// Each back end's disk-read rate (bytes/s), `None` for the disk's own speed.
    pub(crate) disk_read_bytes_per_sec: Option<u64>,
}

/// The World Cup stream model of `crate::workload` (hot objects, Zipf 1.0 over the rest,
/// log-normal sizes) with sizes scaled 4x (median 16 KiB): the testbed experiments' workload.
pub(crate) fn scaled_world_cup() -> StreamModel {
    StreamModel {
        median_bytes: 4.0 * StreamModel::WORLD_CUP_CLIP.median_bytes,
        ..StreamModel::WORLD_CUP_CLIP
    }
}

/// Generates `s`'s workload, finds the proxy and brings the testbed up (saying so as
/// `experiment`): what every testbed experiment starts with.
pub(crate) fn bring_up(
    ctx: &RunContext,
    experiment: &'static str,
    s: &Setup,
) -> Result<(Workload, Testbed, PathBuf), LabError> {
    let work = Workload::new(ctx, s.model)?;
    let config = TestbedConfig {
        backends: s.backends,
        memory_mib: s.memory_mib,
        egress_bits_per_sec: s.egress_bits_per_sec,
        disk_read_bytes_per_sec: ctx.disk_read_rate(s.disk_read_bytes_per_sec),
        ..TestbedConfig::default()
    };
    let proxy = FrontEnd::locate()?;
    ctx.progress.say(
        experiment,
        &format!(
            "bringing up {} back ends, {} files ({:.0} MB) per copy",
            config.backends,
            work.files.len(),
            work.corpus_bytes() as f64 / 1e6
        ),
    );
    let tb = Testbed::up(&config, &work.files)?;
    Ok((work, tb, proxy))
}

/// Which of a failed back end's resources the survivors get, split evenly among them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Transfer {
    pub(crate) bandwidth: bool,
    pub(crate) memory: bool,
}

/// Sets every back end's memory limit and egress rate through vibra-host: `s`'s for each,
/// and for the survivors of back end `failed` also an even share of its bandwidth and/or
/// memory as `transfer` says (what the allocation agent does after a failure, SPEC 4 with
/// the whole pool moved). `Transfer::default()` restores everyone's own resources.
pub(crate) fn give_survivors(
    tb: &mut Testbed,
    s: &Setup,
    failed: usize,
    transfer: Transfer,
) -> Result<(), LabError> {
    let more = s.backends as f64 / (s.backends - 1).max(1) as f64;
    for i in 0..s.backends {
        let survivor = i != failed;
        let memory = if survivor && transfer.memory {
            (s.memory_mib as f64 * more).round() as u64
        } else {
            s.memory_mib
        };
        let egress = if survivor && transfer.bandwidth {
            s.egress_bits_per_sec * more
        } else {
            s.egress_bits_per_sec
        };
        tb.set_resources(i, memory, egress)?;
    }
    Ok(())
}

/// Mean and sample standard deviation (0 for fewer than two values).
pub(crate) fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, sd)
}

/// The World Cup stream of `model` over the servable URLs, as files and requests.
pub(crate) struct Workload {
    pub(crate) model: StreamModel,
    pub(crate) files: Vec<CorpusFile>,
    pub(crate) requests: Vec<Request>,
    source: String,
    stream_bytes: u64,
}

impl Workload {
    pub(crate) fn new(ctx: &RunContext, model: StreamModel) -> Result<Self, LabError> {
        let corpus = servable_corpus(&UrlCorpus::from_option(ctx.urls.as_deref(), ctx.seed));
        let stream = model.generate(&corpus, ctx.seed)?;
        let files = files_of(&corpus, &stream)?;
        let requests = stream
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
        Ok(Workload {
            model,
            files,
            requests,
            source: corpus.source.to_string(),
            stream_bytes: stream.total_bytes(),
        })
    }

    /// Bytes of one corpus copy.
    pub(crate) fn corpus_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    /// The set-up line describing it.
    pub(crate) fn note(&self, seed: u64) -> String {
        format!(
            "workload: {} requests ({:.0} MB) over {} distinct objects ({:.0} MB per copy), \
             the World Cup stream model (hot objects + Zipf {} over {} cold URLs, log-normal \
             sizes, median {:.0} KiB) over the servable URLs of {}, seed {}",
            self.requests.len(),
            self.stream_bytes as f64 / 1e6,
            self.files.len(),
            self.corpus_bytes() as f64 / 1e6,
            self.model.zipf_exponent,
            self.model.cold_objects,
            self.model.median_bytes / 1024.0,
            self.source,
            seed
        )
    }
}

/// One replay's measurements.
pub(crate) struct Replay {
    pub(crate) disk_bytes: u64,
    pub(crate) stats: LoadStats,
    pub(crate) memory_max: u64,
}

/// Starts the front end for `policy` (`vibra-proxy`, R = 2 for the `/r` policies; nginx for
/// the `nginx-*` policies), evicts every corpus copy,
/// replays `requests` over `connections` connections, and counts the disk's reads meanwhile.
pub(crate) fn replay(
    tb: &Testbed,
    proxy: &Path,
    policy: &str,
    requests: &[Request],
    connections: usize,
) -> Result<Replay, LabError> {
    let fe = if NGINX_POLICIES.contains(&policy) {
        FrontEnd::start_nginx(policy, tb.backend_addrs(), tb.work_dir())?
    } else {
        let r = if policy.ends_with("/r") { 2 } else { 1 };
        FrontEnd::start(proxy, policy, r, tb.backend_addrs(), tb.work_dir())?
    };
    tb.evict()?;
    let before = tb.disk().read_bytes()?;
    let stats = run_load(fe.addr(), requests, connections, &stop_flag())?;
    let disk_bytes = tb.disk().read_bytes()?.saturating_sub(before);
    let memory_max = tb.memory_bytes()?.into_iter().max().unwrap_or(0);
    drop(fe);
    Ok(Replay {
        disk_bytes,
        stats,
        memory_max,
    })
}
