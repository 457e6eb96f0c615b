//! The live DPS cluster on one Linux machine (root): figs. 5.7/5.8 on real processes.
//!
//! N emulated hosts, each a cgroup (`vibra-live-<run>-h<j>`) with a fixed CPU capacity (a CFS
//! quota: v1 `cpu.cfs_quota_us`, v2 `cpu.max`), holding
//!
//! - one rank's VM: a cgroup (and network namespace) that the host's `vibrad` (dps role)
//!   creates through vibra-host under that host cgroup (its `[linux] cgroup_parent`), and whose
//!   CPU weight it sets from the VM's share;
//! - an always-runnable CPU burner (`sh -c 'while :; do :; done'`, the dissertation's
//!   `eatcpu`) in a child cgroup `burn` whose weight books `background` of the host;
//!
//! one `vibrad --config` per host (UDP on loopback; metrics on loopback for the share trace),
//! and the `patterns` program of `examples/mpi` started by `mpirun` with the PMPI hook of
//! `integration/vibra-mpi-hook` preloaded: each rank first moves itself into its VM's cgroups
//! (a generated launch script writes its pid to `cgroup.procs`, the directories given by
//! [`vibra_host::CgroupLayout::dirs_of`]), then `exec`s the program, whose waits the hook
//! reports to its host's `vibrad`. The ranks share the root network namespace (so `mpirun`
//! reaches them without any configuration); the VMs' namespaces stay empty.
//!
//! Strategies: [`Strategy::Static`] runs the same daemons with no upstream and no hook socket,
//! so nothing is ever offered (the weights stay at W / N); [`Strategy::Distributed`] and
//! [`Strategy::Bank`] are the dps role's two modes (the bank is host 0's vibrad), with the
//! `min_share` and `min_excess` safeguards of [`LiveConfig::min_share`] and
//! [`LiveConfig::min_excess`]. Every daemon records its ledger (crash
//! recovery) in one real etcd started for the run ([`vibrad::local_etcd`], data in the run's
//! folder), as a cluster's daemons would.
//!
//! Everything a run makes carries its run id (process id and clock, as the testbed's) and is
//! removed when the [`Cluster`] is dropped, on success, error, panic and SIGINT/SIGTERM (the
//! testbed's [`crate::testbed::stop_flag`], polled while the program runs): `mpirun`'s process
//! group is killed, the burners are killed and their cgroups removed, every `vibrad` gets
//! SIGTERM (it removes its VMs and host cgroups) and SIGKILL after 10 s, and whatever is left
//! (a daemon that died: its VMs' processes, cgroups and namespaces) is removed by hand; then
//! etcd is killed and its data removed with the run's folder.
//!
//! ```no_run
//! use vibra_lab::live::{LiveConfig, Programs, Strategy, run};
//! let programs = Programs::build()?;
//! let cfg = LiveConfig { share: 0.1, strategy: Strategy::Bank, ..LiveConfig::default() };
//! let r = run(&cfg, &programs)?;
//! println!("response time {:.2} s", r.response_s);
//! # Ok::<(), vibra_lab::testbed::TestbedError>(())
//! ```

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use vibra_host::{CgroupLayout, CpuCap, CpuWeight};

use vibrad::local_etcd::{EtcdMember, LocalEtcd};

use crate::testbed::{TestbedError, catch_signals, locate_binary, new_run_id, stop_flag};

/// The variable naming the `vibrad` binary (else it is looked for beside this program).
///
/// ```
/// assert_eq!(vibra_lab::live::VIBRAD_BIN_ENV, "VIBRA_VIBRAD_BIN");
/// ```
pub const VIBRAD_BIN_ENV: &str = "VIBRA_VIBRAD_BIN";

/// The longest a program run may take before it is stopped as hung.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// How shares move between the VMs.
///
/// ```
/// assert_eq!(vibra_lab::live::Strategy::Bank.name(), "bank");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// No exchange: the daemons run with no upstream and no hook, the weights stay at W / N.
    Static,
    /// The dps role's fully distributed mode (eq. 5.1).
    Distributed,
    /// The dps role's bank-assisted mode (eq. 5.2), the bank on host 0's vibrad.
    Bank,
}

impl Strategy {
    /// The name used in rows and figures.
    ///
    /// ```
    /// assert_eq!(vibra_lab::live::Strategy::Distributed.name(), "distributed");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Static => "static",
            Strategy::Distributed => "distributed",
            Strategy::Bank => "bank",
        }
    }
}

/// One run's parameters. Shares and the background are fractions of a host (the
/// dissertation's units); `host_cpus` is what a host is in real CPUs.
///
/// ```
/// let c = vibra_lab::live::LiveConfig::default();
/// assert_eq!((c.hosts, c.host_cpus, c.background), (4, 0.4, 0.5));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LiveConfig {
    /// Hosts, one rank each (2..=16).
    pub hosts: usize,
    /// Each host's capacity in CPUs (its CFS quota), in (0, 1].
    pub host_cpus: f64,
    /// The burner's booking, a fraction of the host in [0, 1).
    pub background: f64,
    /// Each VM's initial share, a fraction of the host in (0, 1 - background].
    pub share: f64,
    /// How shares move.
    pub strategy: Strategy,
    /// The exchange period T, seconds.
    pub period_s: f64,
    /// `patterns -n`.
    pub iterations: u32,
    /// `patterns -e`: node 1's elements per iteration (1e6 multiply-adds each).
    pub elements: u32,
    /// Sample every VM's share from the daemons' metrics once per period (fig. 5.8).
    pub sample_shares: bool,
    /// vibrad's `min_share` safeguard: no VM offers or deposits share below this fraction of
    /// W / N (0: the plain formulas; 0.5: dps-sim's guarded policy, the default).
    pub min_share: f64,
    /// vibrad's `min_excess` safeguard: an excess below this fraction of the VM's share counts
    /// as none (one period's measurement noise; 0: the plain formulas; 0.25, the default: a VM
    /// that needs its whole share reads 2-9% below it in most 0.5 s periods here and 15-50% in
    /// some, when a rank it exchanges with waited for its host's next quota period; with 0.1
    /// the bank still fell 7% behind static at 0.5 in one stage run: vibra-lab README).
    pub min_excess: f64,
    /// vibrad's `capped_grants`: the bank caps grants by each VM's host room (dps-core's
    /// `CappedBanker`; with `min_share` 0.5 this is dps-sim's guarded bank). Default true.
    pub capped_grants: bool,
}

impl Default for LiveConfig {
    /// 4 hosts of 0.4 CPU (four fit on 2 cores with 0.4 CPU left for the daemons, etcd, mpirun
    /// and the hypervisor's steal: at 0.45 the hosts received 0.40-0.45 in some runs, and
    /// those ran up to 10% slower), burner at 0.5,
    /// share 0.2, static, T = 0.5 s, 30 iterations, 90 elements (experiments replace them
    /// with [`calibrate_elements`]' count: node 1's iteration 1.1 T at share 0.1, near the
    /// 1.2 T of dps-sim's fig5.7 and below the 1.3 T where the plain bank stops helping; see
    /// the crate README), `min_share` 0.5, `min_excess` 0.25.
    fn default() -> Self {
        LiveConfig {
            hosts: 4,
            host_cpus: 0.4,
            background: 0.5,
            share: 0.2,
            strategy: Strategy::Static,
            period_s: 0.5,
            iterations: 30,
            elements: 90,
            sample_shares: false,
            min_share: 0.5,
            min_excess: 0.25,
            capped_grants: true,
        }
    }
}

impl LiveConfig {
    fn check(&self) -> Result<(), TestbedError> {
        let bad = |what: &str| Err(TestbedError::Unavailable(format!("live cluster: {what}")));
        if !(2..=16).contains(&self.hosts) {
            return bad("hosts must be 2..=16");
        }
        if !(self.host_cpus > 0.0 && self.host_cpus <= 1.0) {
            return bad("host_cpus must be in (0, 1]");
        }
        if !(self.background >= 0.0 && self.background < 1.0) {
            return bad("background must be in [0, 1)");
        }
        if !(self.share > 0.0 && self.share <= 1.0 - self.background) {
            return bad("share must be in (0, 1 - background]");
        }
        if !(self.period_s >= 0.05 && self.period_s <= 60.0) {
            return bad("period_s must be in [0.05, 60]");
        }
        if !(0.0..=1.0).contains(&self.min_share) {
            return bad("min_share must be in [0, 1]");
        }
        if !(0.0..1.0).contains(&self.min_excess) {
            return bad("min_excess must be in [0, 1)");
        }
        if self.iterations == 0 || self.elements == 0 {
            return bad("iterations and elements must be > 0");
        }
        Ok(())
    }
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRun {
    /// `patterns`' response time: the slowest rank, from a common barrier to its last
    /// iteration, seconds.
    pub response_s: f64,
    /// Each rank's CPU time (utime + stime), seconds.
    pub rank_cpu_s: Vec<f64>,
    /// Each rank's CPU time outside the exchange calls (`cpu_s - wait_cpu_s`): its
    /// multiply-adds, whose CPU time per element is the machine's speed during the run.
    pub rank_compute_cpu_s: Vec<f64>,
    /// The CPU each host cgroup received while `mpirun` ran (burner, rank and all), in CPUs:
    /// its quota (`host_cpus`) when the machine has the CPU to give, less when it has not.
    pub host_cpus_received: Vec<f64>,
    /// `(cycle, vm, share)` once per period from the program's start (with
    /// [`LiveConfig::sample_shares`]); `vm` from 0, the share a fraction of the host.
    pub shares: Vec<(u32, usize, f64)>,
}

/// Why the live cluster cannot run here, if it cannot: not root, no cgroup cpu controller, a
/// command missing (`mpicc`, `mpirun`, `make`), or no `vibrad` binary.
///
/// ```
/// let _ = vibra_lab::live::unavailable(); // Some(reason) off root or without Open MPI
/// ```
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some(format!(
            "needs root for cgroups (effective uid {})",
            nix::unistd::geteuid()
        ));
    }
    if let Err(e) = CgroupLayout::detect() {
        return Some(format!("no cgroup cpu controller: {e}"));
    }
    if let Some(why) = crate::testbed::missing_command(&[
        ("mpicc", "--version", "libopenmpi-dev"),
        ("mpirun", "--version", "openmpi-bin"),
        ("make", "--version", "make"),
        ("taskset", "--version", "util-linux"),
        ("etcd", "--version", "etcd-server"),
    ]) {
        return Some(why);
    }
    vibrad_bin().err().map(|e| e.to_string())
}

/// The `vibrad` binary: `$VIBRA_VIBRAD_BIN`, else beside this program (or in its target
/// folder's `release`/`debug`).
pub(crate) fn vibrad_bin() -> Result<PathBuf, TestbedError> {
    locate_binary(
        "vibrad",
        VIBRAD_BIN_ENV,
        "`cargo build --release -p vibrad`",
    )
}

/// Starts `vibrad --config CONFIG` (the binary from [`vibrad_bin`]) with its log (stderr,
/// `info` level) written to LOG, stdin and stdout closed.
pub(crate) fn spawn_vibrad(config: &Path, log: &Path) -> Result<Child, TestbedError> {
    let bin = vibrad_bin()?;
    let file = std::fs::File::create(log).map_err(|e| TestbedError::io(log, e))?;
    Command::new(&bin)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .map_err(|e| TestbedError::Process {
            what: format!("{} --config {}", bin.display(), config.display()),
            detail: e.to_string(),
        })
}

/// The workspace root this program was built from (the C sources of `patterns` and the hook).
fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `patterns` and the PMPI hook, built with `mpicc` from the workspace's sources into a
/// folder of their own, removed when dropped.
#[derive(Debug)]
pub struct Programs {
    dir: PathBuf,
    patterns: PathBuf,
    hook: PathBuf,
}

impl Programs {
    /// Builds both with their Makefiles (`make -f examples/mpi/Makefile` and
    /// `integration/vibra-mpi-hook/c/Makefile`).
    ///
    /// ```no_run
    /// let p = vibra_lab::live::Programs::build()?;
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn build() -> Result<Programs, TestbedError> {
        let dir = std::env::temp_dir().join(format!("vibra-live-bin-{}", new_run_id()));
        std::fs::create_dir(&dir).map_err(|e| TestbedError::io(&dir, e))?;
        let programs = Programs {
            patterns: dir.join("patterns"),
            hook: dir.join("libvibra_mpi_hook.so"),
            dir,
        };
        let root = source_root();
        for makefile in [
            "examples/mpi/Makefile",
            "integration/vibra-mpi-hook/c/Makefile",
        ] {
            let out = Command::new("make")
                .arg("-s")
                .arg("-f")
                .arg(root.join(makefile))
                .arg(format!("OUT={}", programs.dir.display()))
                .output()
                .map_err(|e| TestbedError::Process {
                    what: format!("make -f {makefile}"),
                    detail: e.to_string(),
                })?;
            if !out.status.success() {
                return Err(TestbedError::Process {
                    what: format!("make -f {makefile}"),
                    detail: String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
                });
            }
        }
        Ok(programs)
    }
}

impl Drop for Programs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Node 1's iteration at share [`CALIBRATION_SHARE`] under static weights, in periods T, that
/// [`calibrate_elements`] aims for: near dps-sim's fig5.7 (1.2 T) and below the 1.3 T where
/// the plain bank stops helping (crate README).
pub const TARGET_PERIODS: f64 = 1.1;

/// The share [`calibrate_elements`] sizes the work for (fig. 5.7's smallest).
pub const CALIBRATION_SHARE: f64 = 0.1;

/// `patterns -e` for this machine: node 1's iteration takes [`TARGET_PERIODS`] x T at share
/// [`CALIBRATION_SHARE`] under static weights (the VM then runs at
/// `host_cpus x s / (s + background)` CPUs). The CPU time per element is measured here: one
/// rank of `patterns` alone on CPU 0, 10 iterations of `cfg.elements` (its `cpu_s`, 10 ms
/// resolution). A machine three times slower than another gets a third of the elements, so
/// the ratio of iteration to period the figure depends on stays the same (measured: 1.2 ms
/// per element on the 2026-12-02 CI machine, 0.45 ms on an earlier one).
///
/// ```no_run
/// use vibra_lab::live::{LiveConfig, Programs, calibrate_elements};
/// let c = calibrate_elements(&Programs::build()?, &LiveConfig::default())?;
/// assert!(c.elements >= 1);
/// # Ok::<(), vibra_lab::testbed::TestbedError>(())
/// ```
pub fn calibrate_elements(
    programs: &Programs,
    cfg: &LiveConfig,
) -> Result<Calibration, TestbedError> {
    cfg.check()?;
    const ITERATIONS: u32 = 10;
    let out = Command::new("mpirun")
        .args(["--allow-run-as-root", "--bind-to", "none", "-np", "1"])
        .args(["taskset", "-c", "0"])
        .arg(&programs.patterns)
        .args(["-t", "linear", "-n", &ITERATIONS.to_string()])
        .args(["-e", &cfg.elements.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TestbedError::Process {
            what: "mpirun patterns (calibration)".into(),
            detail: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(TestbedError::Process {
            what: "mpirun patterns (calibration)".into(),
            detail: String::from_utf8_lossy(&out.stderr).trim_end().to_string(),
        });
    }
    let run = parse_patterns(&text, 1)?;
    let per_element = run.rank_compute_cpu_s[0] / f64::from(ITERATIONS * cfg.elements);
    if !(per_element > 0.0 && per_element.is_finite()) {
        return Err(TestbedError::Parse {
            what: "patterns calibration (cpu_s 0)".into(),
            text: text.lines().take(4).collect::<Vec<_>>().join(" | "),
        });
    }
    Ok(Calibration {
        elements: elements_for(cfg, per_element),
        cpu_s_per_element: per_element,
    })
}

/// What [`calibrate_elements`] measured and chose.
///
/// ```
/// let c = vibra_lab::live::Calibration { elements: 29, cpu_s_per_element: 0.0013 };
/// assert_eq!(c.elements, 29);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    /// `patterns -e` for this machine.
    pub elements: u32,
    /// CPU seconds one element took in the calibration run.
    pub cpu_s_per_element: f64,
}

/// The elements that make node 1's iteration [`TARGET_PERIODS`] x T at [`CALIBRATION_SHARE`],
/// given the CPU seconds one element takes.
fn elements_for(cfg: &LiveConfig, per_element: f64) -> u32 {
    let s = CALIBRATION_SHARE;
    let rate = cfg.host_cpus * s / (s + cfg.background);
    let want = TARGET_PERIODS * cfg.period_s * rate;
    (want / per_element).round().clamp(1.0, 100_000.0) as u32
}

/// Runs `patterns` once on a fresh live cluster and tears the cluster down.
///
/// ```no_run
/// # use vibra_lab::live::{LiveConfig, Programs, run};
/// let r = run(&LiveConfig::default(), &Programs::build()?)?;
/// assert_eq!(r.rank_cpu_s.len(), 4);
/// # Ok::<(), vibra_lab::testbed::TestbedError>(())
/// ```
pub fn run(cfg: &LiveConfig, programs: &Programs) -> Result<LiveRun, TestbedError> {
    cfg.check()?;
    let mut cluster = Cluster::up(cfg)?;
    cluster.run_program(cfg, programs)
}

/// A running live cluster; dropping it tears everything down (see the module documentation).
#[derive(Debug)]
pub struct Cluster {
    run_id: String,
    work: PathBuf,
    layout: CgroupLayout,
    /// Host cgroup names (`vibra-live-<run>-h<j>`), pushed before they are created.
    parents: Vec<String>,
    /// VM names (`vl<run>v<j>`), VM j on host j.
    vms: Vec<String>,
    burners: Vec<Child>,
    daemons: Vec<Child>,
    mpirun: Option<Child>,
    metrics: Vec<SocketAddr>,
    host_cpus: f64,
    /// CPUs this process may run on.
    cpus: usize,
    /// The directory every daemon records its ledger in (dropped after the daemons stop).
    etcd: Option<LocalEtcd>,
}

/// Loopback ports handed to daemons come from here, below Linux's ephemeral range (32768-60999
/// by default): a port the kernel picked for `bind(0)` and the harness released can go to any
/// other socket before the daemon binds it (CI saw "dps listen on 127.0.0.1:49199: Address
/// already in use").
const DAEMON_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A loopback port in [`DAEMON_PORTS`] that `bind` accepted just now (tried at random up to
/// 200 times; an error if every one was taken).
fn free_port<S>(
    bind: impl Fn(SocketAddr) -> std::io::Result<S>,
    what: &str,
) -> Result<SocketAddr, TestbedError> {
    use rand::Rng as _;
    let mut rng = rand::rng();
    for _ in 0..200 {
        let addr = SocketAddr::from(([127, 0, 0, 1], rng.random_range(DAEMON_PORTS)));
        if bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    Err(TestbedError::io(
        what,
        std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "200 random ports in 20000-31999 were all taken",
        ),
    ))
}

fn free_udp() -> Result<SocketAddr, TestbedError> {
    free_port(UdpSocket::bind, "127.0.0.1 (udp)")
}

pub(crate) fn free_tcp() -> Result<SocketAddr, TestbedError> {
    free_port(std::net::TcpListener::bind, "127.0.0.1 (tcp)")
}

fn write_file(path: &Path, text: &str) -> Result<(), TestbedError> {
    std::fs::write(path, text).map_err(|e| TestbedError::io(path, e))
}

impl Cluster {
    /// Brings the hosts, burners and daemons up; on error, what was made is torn down.
    fn up(cfg: &LiveConfig) -> Result<Cluster, TestbedError> {
        catch_signals()?;
        let run_id = new_run_id();
        let work = std::env::temp_dir().join(format!("vibra-live-{run_id}"));
        std::fs::create_dir(&work).map_err(|e| TestbedError::io(&work, e))?;
        let layout = match CgroupLayout::detect() {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir(&work);
                return Err(e.into());
            }
        };
        let mut c = Cluster {
            vms: (0..cfg.hosts).map(|j| format!("vl{run_id}v{j}")).collect(),
            run_id,
            work,
            layout,
            parents: Vec::new(),
            burners: Vec::new(),
            daemons: Vec::new(),
            mpirun: None,
            metrics: Vec::new(),
            host_cpus: cfg.host_cpus,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            etcd: None,
        };
        for j in 0..cfg.hosts {
            c.host_up(j, cfg)?;
        }
        c.etcd_up()?;
        c.daemons_up(cfg)?;
        Ok(c)
    }

    /// The directory: one etcd member in the run's folder, on loopback ports from
    /// [`DAEMON_PORTS`] (client, and the next one for peers).
    fn etcd_up(&mut self) -> Result<(), TestbedError> {
        let client = loop {
            let a = free_tcp()?;
            let peer = SocketAddr::from(([127, 0, 0, 1], a.port().wrapping_add(1)));
            if a.port() + 1 < DAEMON_PORTS.end && std::net::TcpListener::bind(peer).is_ok() {
                break a.port();
            }
        };
        let member = EtcdMember::single(
            &format!("vl{}", self.run_id),
            &self.work.join("etcd"),
            client,
        );
        let etcd = member
            .start(Duration::from_secs(20))
            .map_err(|e| TestbedError::Process {
                what: "etcd (the daemons' directory)".into(),
                detail: e.to_string(),
            })?;
        self.etcd = Some(etcd);
        Ok(())
    }

    /// Host j's cgroup with its quota, and its burner. The host cgroup also gets the largest
    /// CPU weight, so that it receives its quota when the machine is busy (at the default
    /// weight a top-level cgroup counts as one task against every other runnable process: on
    /// a loaded machine a host received a fraction of its quota, its VMs then used less than
    /// their shares and gave them away). The quota is the host's capacity, guaranteed and
    /// capped.
    fn host_up(&mut self, j: usize, cfg: &LiveConfig) -> Result<(), TestbedError> {
        let parent = format!("vibra-live-{}-h{j}", self.run_id);
        self.parents.push(parent.clone());
        let (dir, v2) = self.layout.cpu_dir_of(&parent);
        if v2 && let Some(root) = dir.parent() {
            write_file(&root.join("cgroup.subtree_control"), "+cpu")?;
        }
        // The host (and its burner) in every hierarchy, so that its CPU use is accounted
        // (cpuacct) with the burner's; vibrad's vibra-host accepts the existing host cgroup.
        for d in self.layout.dirs_of(&parent) {
            std::fs::create_dir(&d).map_err(|e| TestbedError::io(&d, e))?;
            let b = d.join("burn");
            if b != dir.join("burn") {
                std::fs::create_dir(&b).map_err(|e| TestbedError::io(&b, e))?;
            }
        }
        let cap = CpuCap::new((cfg.host_cpus * 100.0).round() as u32)?;
        let burn_weight = CpuWeight::from_share(cfg.background.max(1.0 / CpuWeight::SHARE_SCALE))?;
        let burn = dir.join("burn");
        if v2 {
            write_file(
                &dir.join("cpu.max"),
                &format!("{} {}", cap.cfs_quota_us(), CpuCap::CFS_PERIOD_US),
            )?;
            write_file(
                &dir.join("cpu.weight"),
                &CpuWeight::MAX.cgroup_v2_weight().to_string(),
            )?;
            write_file(&dir.join("cgroup.subtree_control"), "+cpu")?;
            std::fs::create_dir(&burn).map_err(|e| TestbedError::io(&burn, e))?;
            write_file(
                &burn.join("cpu.weight"),
                &burn_weight.cgroup_v2_weight().to_string(),
            )?;
        } else {
            write_file(
                &dir.join("cpu.cfs_period_us"),
                &CpuCap::CFS_PERIOD_US.to_string(),
            )?;
            write_file(
                &dir.join("cpu.cfs_quota_us"),
                &cap.cfs_quota_us().to_string(),
            )?;
            write_file(
                &dir.join("cpu.shares"),
                &CpuWeight::MAX.cgroup_v1_shares().to_string(),
            )?;
            std::fs::create_dir(&burn).map_err(|e| TestbedError::io(&burn, e))?;
            write_file(
                &burn.join("cpu.shares"),
                &burn_weight.cgroup_v1_shares().to_string(),
            )?;
        }
        if cfg.background > 0.0 {
            let child = Command::new("taskset")
                .args([
                    "-c",
                    &self.cpu_of(j).to_string(),
                    "sh",
                    "-c",
                    "while :; do :; done",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| TestbedError::Process {
                    what: "burner (taskset sh)".into(),
                    detail: e.to_string(),
                })?;
            let pid = child.id();
            self.burners.push(child);
            for d in self.layout.dirs_of(&parent) {
                write_file(&d.join("burn").join("cgroup.procs"), &pid.to_string())?;
            }
        }
        Ok(())
    }

    /// One vibrad per host, each with its configuration file; waits until every VM exists.
    fn daemons_up(&mut self, cfg: &LiveConfig) -> Result<(), TestbedError> {
        let n = cfg.hosts;
        let mut udp: Vec<SocketAddr> = Vec::with_capacity(n);
        while udp.len() < n {
            let a = free_udp()?;
            if !udp.contains(&a) {
                udp.push(a);
            }
        }
        let mut metrics: Vec<SocketAddr> = Vec::with_capacity(n);
        while metrics.len() < n {
            let a = free_tcp()?;
            if !metrics.contains(&a) {
                metrics.push(a);
            }
        }
        self.metrics = metrics;
        for j in 0..n {
            let path = self.work.join(format!("h{j}.toml"));
            write_file(&path, &self.vibrad_config(cfg, j, &udp))?;
            let child = spawn_vibrad(&path, &self.work.join(format!("h{j}.log")))?;
            self.daemons.push(child);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for j in 0..n {
            let vm = format!("{}/{}", self.parents[j], self.vms[j]);
            let sock = self.hook_socket(j);
            loop {
                if stop_flag().load(Ordering::Relaxed) {
                    return Err(TestbedError::Interrupted);
                }
                let vm_ready = self.layout.dirs_of(&vm).iter().all(|d| d.exists());
                let hook_ready = cfg.strategy == Strategy::Static || sock.exists();
                if vm_ready && hook_ready && TcpStream::connect(self.metrics[j]).is_ok() {
                    break;
                }
                let exited = self.daemons[j].try_wait().ok().flatten();
                if exited.is_some() || Instant::now() > deadline {
                    let log = self.work.join(format!("h{j}.log"));
                    let tail = std::fs::read_to_string(&log).unwrap_or_default();
                    return Err(TestbedError::Process {
                        what: format!("vibrad of host h{j}"),
                        detail: format!(
                            "not ready (exit {exited:?}); log: {}",
                            tail.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
                        ),
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The CPU host j's processes (burner and rank) are pinned to: hosts alternate over the
    /// machine's CPUs. Pinned, the VM and the burner compete on one run queue, where CFS
    /// splits the host's quota by their weights; unpinned, each ran on its own CPU most of the
    /// time and the VM got about 1.7x its weighted part (static at 0.1 took 3.1 s where the
    /// weights predict 4.8 s).
    fn cpu_of(&self, j: usize) -> usize {
        j % self.cpus.max(1)
    }

    fn hook_socket(&self, j: usize) -> PathBuf {
        self.work.join(format!("h{j}.sock"))
    }

    /// Host j's vibrad configuration (shares in CPUs: the fraction times `host_cpus`).
    fn vibrad_config(&self, cfg: &LiveConfig, j: usize, udp: &[SocketAddr]) -> String {
        let c = cfg.host_cpus;
        let mut t = String::new();
        let _ = writeln!(t, "host = \"h{j}\"\nroles = [\"dps\"]");
        if let Some(etcd) = &self.etcd {
            let _ = writeln!(
                t,
                "[directory]\nbackend = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"/vibra-live-{}\"",
                etcd.url(),
                self.run_id
            );
        }
        let _ = writeln!(t, "[metrics]\nlisten = \"{}\"", self.metrics[j]);
        let _ = writeln!(t, "[linux]\ncgroup_parent = \"{}\"", self.parents[j]);
        let _ = writeln!(t, "[dps]\nperiod_s = {}", cfg.period_s);
        match cfg.strategy {
            Strategy::Bank => {
                let _ = writeln!(t, "mode = \"bank\"\nbank = \"h0\"");
            }
            Strategy::Static | Strategy::Distributed => {
                let _ = writeln!(t, "mode = \"distributed\"");
            }
        }
        let _ = writeln!(
            t,
            "listen = \"{}\"\nmin_share = {}\nmin_excess = {}\ncapped_grants = {}",
            udp[j], cfg.min_share, cfg.min_excess, cfg.capped_grants
        );
        let _ = writeln!(
            t,
            "total = {}\ncpus = {c}\nbackground = {}",
            cfg.share * c * cfg.hosts as f64,
            cfg.background * c
        );
        if cfg.strategy != Strategy::Static {
            let _ = writeln!(
                t,
                "hook_socket = \"{}\"\njob = \"{}\"",
                self.hook_socket(j).display(),
                self.run_id
            );
        }
        let _ = writeln!(t, "[dps.peers]");
        for (k, a) in udp.iter().enumerate().filter(|&(k, _)| k != j) {
            let _ = writeln!(t, "h{k} = \"{a}\"");
        }
        for (k, vm) in self.vms.iter().enumerate() {
            let _ = writeln!(t, "[[dps.vm]]\nname = \"{vm}\"\nhost = \"h{k}\"");
        }
        t
    }

    /// The launch script: rank r moves itself into VM r's cgroups, then becomes `patterns`
    /// with the hook preloaded and its host's daemon's socket.
    fn launch_script(&self, cfg: &LiveConfig, programs: &Programs) -> String {
        let mut s = String::from(
            "#!/bin/sh\n# vibra-lab live cluster: rank r joins VM r, then becomes patterns\n\
             r=${OMPI_COMM_WORLD_RANK:-$PMI_RANK}\ncase \"$r\" in\n",
        );
        for (j, vm) in self.vms.iter().enumerate() {
            let dirs: Vec<String> = self
                .layout
                .dirs_of(&format!("{}/{vm}", self.parents[j]))
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            let sock = if cfg.strategy == Strategy::Static {
                String::new()
            } else {
                self.hook_socket(j).display().to_string()
            };
            let _ = writeln!(
                s,
                "{j}) dirs='{}'; sock='{sock}'; cpu={} ;;",
                dirs.join(" "),
                self.cpu_of(j)
            );
        }
        let _ = writeln!(
            s,
            "*) echo \"no VM for rank $r\" >&2; exit 1 ;;\nesac\n\
             exec 2>>'{}/rank'\"$r\".err\n\
             for d in $dirs; do echo $$ > \"$d/cgroup.procs\" || exit 1; done\n\
             if [ -n \"$sock\" ]; then export VIBRA_MPI_SOCKET=\"$sock\"; fi\n\
             export VIBRA_MPI_JOB='{}'\n\
             exec taskset -c \"$cpu\" env LD_PRELOAD='{}' '{}' -t linear -n {} -e {}",
            self.work.display(),
            self.run_id,
            programs.hook.display(),
            programs.patterns.display(),
            cfg.iterations,
            cfg.elements
        );
        s
    }

    /// Runs `patterns` under `mpirun`, sampling the shares once per period if asked.
    fn run_program(
        &mut self,
        cfg: &LiveConfig,
        programs: &Programs,
    ) -> Result<LiveRun, TestbedError> {
        let script = self.work.join("launch.sh");
        write_file(&script, &self.launch_script(cfg, programs))?;
        let out_path = self.work.join("mpirun.out");
        let err_path = self.work.join("mpirun.err");
        let out = std::fs::File::create(&out_path).map_err(|e| TestbedError::io(&out_path, e))?;
        let err = std::fs::File::create(&err_path).map_err(|e| TestbedError::io(&err_path, e))?;
        let child = Command::new("mpirun")
            .args([
                "--allow-run-as-root",
                "--oversubscribe",
                "--bind-to",
                "none",
            ])
            .args(["-np", &cfg.hosts.to_string(), "sh"])
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| TestbedError::Process {
                what: "mpirun".into(),
                detail: e.to_string(),
            })?;
        self.mpirun = Some(child);
        let started = Instant::now();
        let cpu_before = self.host_cpu_seconds();
        let period = Duration::from_secs_f64(cfg.period_s);
        let mut next_sample = started;
        let mut shares = Vec::new();
        let mut sampling = true;
        let status = loop {
            if stop_flag().load(Ordering::Relaxed) {
                return Err(TestbedError::Interrupted);
            }
            let polled = self.mpirun.as_mut().map(Child::try_wait);
            match polled {
                Some(Ok(Some(status))) => break status,
                Some(Err(e)) => return Err(TestbedError::io("mpirun", e)),
                _ => {}
            }
            if started.elapsed() > RUN_LIMIT {
                return Err(TestbedError::Process {
                    what: "mpirun".into(),
                    detail: format!("still running after {RUN_LIMIT:?}"),
                });
            }
            // The trace covers the program: from the first sample with every rank in its VM
            // (cycle 0) to the last before any rank has exited (an exited VM returns its share).
            let now = Instant::now();
            if cfg.sample_shares && sampling && now >= next_sample {
                let running = self.ranks_running();
                if running {
                    let cycle = shares.len() / cfg.hosts.max(1);
                    for (vm, share) in self.sample_shares()?.into_iter().enumerate() {
                        shares.push((cycle as u32, vm, share));
                    }
                    next_sample = if cycle == 0 { now } else { next_sample } + period;
                } else if !shares.is_empty() {
                    sampling = false;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.mpirun = None;
        let text =
            std::fs::read_to_string(&out_path).map_err(|e| TestbedError::io(&out_path, e))?;
        if !status.success() {
            // The ranks' own messages (launch script and program) first, then mpirun's.
            let mut err = String::new();
            for j in 0..cfg.hosts {
                let p = self.work.join(format!("rank{j}.err"));
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                if !text.trim().is_empty() {
                    let _ = writeln!(err, "rank {j}: {}", text.trim());
                }
            }
            err += &std::fs::read_to_string(&err_path).unwrap_or_default();
            // The daemons' errors and warnings (a daemon that stopped removes its VM and kills
            // the rank in it): the run's folder is removed with the cluster.
            let mut daemons = String::new();
            for j in 0..cfg.hosts {
                let log = std::fs::read_to_string(self.work.join(format!("h{j}.log")))
                    .unwrap_or_default();
                for line in log
                    .lines()
                    .filter(|l| l.contains("ERROR") || l.contains("WARN"))
                    .take(3)
                {
                    let _ = write!(daemons, " | h{j}: {}", line.trim());
                }
            }
            return Err(TestbedError::Process {
                what: "mpirun patterns".into(),
                detail: format!(
                    "{status}; stderr: {}; vibrad:{}",
                    err.lines().take(8).collect::<Vec<_>>().join(" | "),
                    if daemons.is_empty() {
                        " no errors or warnings"
                    } else {
                        &daemons
                    }
                ),
            });
        }
        let elapsed = started.elapsed().as_secs_f64();
        let mut run = parse_patterns(&text, cfg.hosts)?;
        run.shares = shares;
        run.host_cpus_received = self
            .host_cpu_seconds()
            .iter()
            .zip(&cpu_before)
            .map(|(after, before)| (after - before) / elapsed)
            .collect();
        Ok(run)
    }

    /// CPU seconds each host cgroup has used (v1 `cpuacct.usage`, v2 `cpu.stat` usage_usec);
    /// NaN where neither reads.
    fn host_cpu_seconds(&self) -> Vec<f64> {
        self.parents
            .iter()
            .map(|parent| {
                self.layout
                    .dirs_of(parent)
                    .iter()
                    .find_map(|d| {
                        let v1 = std::fs::read_to_string(d.join("cpuacct.usage"))
                            .ok()
                            .and_then(|t| t.trim().parse::<f64>().ok())
                            .map(|ns| ns / 1e9);
                        v1.or_else(|| {
                            std::fs::read_to_string(d.join("cpu.stat"))
                                .ok()
                                .and_then(|t| {
                                    t.lines()
                                        .find_map(|l| l.strip_prefix("usage_usec "))
                                        .and_then(|v| v.trim().parse::<f64>().ok())
                                        .map(|us| us / 1e6)
                                })
                        })
                    })
                    .unwrap_or(f64::NAN)
            })
            .collect()
    }

    /// Whether every VM's cgroup holds a process (its rank).
    fn ranks_running(&self) -> bool {
        self.parents.iter().zip(&self.vms).all(|(parent, vm)| {
            let (dir, _) = self.layout.cpu_dir_of(&format!("{parent}/{vm}"));
            std::fs::read_to_string(dir.join("cgroup.procs"))
                .is_ok_and(|p| p.split_whitespace().next().is_some())
        })
    }

    /// Every VM's share now (fraction of its host), from its daemon's metrics endpoint.
    fn sample_shares(&self) -> Result<Vec<f64>, TestbedError> {
        self.metrics
            .iter()
            .zip(&self.vms)
            .map(|(addr, vm)| {
                let text = scrape(*addr)?;
                let key = format!("vibrad_dps_share_cpus{{vm=\"{vm}\"}} ");
                text.lines()
                    .find_map(|l| l.strip_prefix(&key))
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .map(|cpus| cpus / self.host_cpus)
                    .ok_or_else(|| TestbedError::Parse {
                        what: format!("metrics of {addr} ({key})"),
                        text: text.lines().take(3).collect::<Vec<_>>().join(" | "),
                    })
            })
            .collect()
    }
}

/// One GET of a metrics endpoint; the body.
pub(crate) fn scrape(addr: SocketAddr) -> Result<String, TestbedError> {
    let io = |e| TestbedError::io(format!("metrics {addr}"), e);
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(io)?;
    c.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(io)?;
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").map_err(io)?;
    let mut body = String::new();
    c.read_to_string(&mut body).map_err(io)?;
    Ok(body)
}

/// `response_time_s` and each rank's `cpu_s` from `patterns`' output.
fn parse_patterns(text: &str, ranks: usize) -> Result<LiveRun, TestbedError> {
    let bad = || TestbedError::Parse {
        what: "patterns output".into(),
        text: text.lines().take(8).collect::<Vec<_>>().join(" | "),
    };
    let response_s = text
        .lines()
        .find_map(|l| l.strip_prefix("response_time_s "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(bad)?;
    let mut rank_cpu_s = vec![f64::NAN; ranks];
    let mut rank_wait_cpu_s = vec![f64::NAN; ranks];
    for line in text.lines().filter(|l| l.starts_with("rank ")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let rank = f.get(1).and_then(|r| r.parse::<usize>().ok());
        let field = |name: &str| {
            f.iter()
                .position(|&w| w == name)
                .and_then(|i| f.get(i + 1))
                .and_then(|v| v.parse::<f64>().ok())
        };
        if let (Some(r), Some(c), Some(w)) = (rank, field("cpu_s"), field("wait_cpu_s"))
            && r < ranks
        {
            rank_cpu_s[r] = c;
            rank_wait_cpu_s[r] = w;
        }
    }
    if rank_cpu_s.iter().any(|c| c.is_nan()) {
        return Err(bad());
    }
    let rank_compute_cpu_s = rank_cpu_s
        .iter()
        .zip(&rank_wait_cpu_s)
        .map(|(c, w)| (c - w).max(0.0))
        .collect();
    Ok(LiveRun {
        response_s,
        rank_cpu_s,
        rank_compute_cpu_s,
        host_cpus_received: Vec::new(),
        shares: Vec::new(),
    })
}

/// Sends `sig` to `pid` (errors ignored: the process may be gone).
pub(crate) fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Waits up to `limit` for `child` to exit, then kills it; always reaps it.
pub(crate) fn reap(child: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Kills every process of a cgroup directory and removes it (for what a dead daemon left).
fn remove_cgroup(dir: &Path) {
    if !dir.exists() {
        return;
    }
    for _ in 0..50 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<u32> = procs
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for p in pids {
            signal(p, nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Err(e) = std::fs::remove_dir(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("vibra-lab live: cleanup of {} failed: {e}", dir.display());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        use nix::sys::signal::Signal;
        // 1. The program: mpirun's whole process group (mpirun, its daemon, the launch shells).
        if let Some(mut m) = self.mpirun.take() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(m.id() as i32),
                Signal::SIGTERM,
            );
            reap(&mut m, Duration::from_secs(3));
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(m.id() as i32),
                Signal::SIGKILL,
            );
        }
        // 2. The burners and their cgroups (so the daemons can remove the host cgroups).
        for b in &mut self.burners {
            let _ = b.kill();
            let _ = b.wait();
        }
        for parent in &self.parents {
            for dir in self.layout.dirs_of(parent) {
                remove_cgroup(&dir.join("burn"));
            }
        }
        // 3. The daemons: SIGTERM removes their VMs (ranks killed) and host cgroups.
        for d in &mut self.daemons {
            signal(d.id(), Signal::SIGTERM);
        }
        for d in &mut self.daemons {
            reap(d, Duration::from_secs(10));
        }
        // 4. Whatever is left: a daemon that died before or during the run.
        for (parent, vm) in self.parents.iter().zip(&self.vms) {
            for dir in self.layout.dirs_of(&format!("{parent}/{vm}")) {
                remove_cgroup(&dir);
            }
            if Path::new("/run/netns").join(vm).exists() {
                let _ = Command::new("ip")
                    .args(["netns", "delete", vm])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            for dir in self.layout.dirs_of(parent) {
                remove_cgroup(&dir);
            }
        }
        // 5. The directory, once no daemon writes to it (its data is in the run's folder).
        drop(self.etcd.take());
        if let Err(e) = std::fs::remove_dir_all(&self.work)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!(
                "vibra-lab live: cleanup of {} failed: {e}",
                self.work.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn calibration_sizes_node_1_at_the_target_ratio() {
        let cfg = super::LiveConfig::default();
        // 0.4 x 0.1 / 0.6 = 0.0667 CPUs; 1.1 x 0.5 s x 0.0667 = 0.03667 CPU-s per iteration
        assert_eq!(super::elements_for(&cfg, 0.11 / 3.0 / 30.0), 30);
        assert_eq!(super::elements_for(&cfg, 0.11 / 3.0 / 90.0), 90);
        assert_eq!(super::elements_for(&cfg, 10.0), 1);
    }

    use super::*;

    #[test]
    fn patterns_output_is_parsed() {
        let text = "patterns: 2 ranks, linear\nresponse_time_s 5.145298\n\
                    rank 0 compute_s 4.3 wait_s 0.3 cpu_s 0.31 wait_cpu_s 0.0006 check 503.3\n\
                    rank 1 compute_s 2.4 wait_s 2.6 cpu_s 0.20 wait_cpu_s 0.04 check 501.4\n";
        let r = parse_patterns(text, 2).unwrap();
        assert_eq!(r.response_s, 5.145298);
        assert_eq!(r.rank_cpu_s, vec![0.31, 0.20]);
        assert!((r.rank_compute_cpu_s[0] - 0.3094).abs() < 1e-12);
        assert!((r.rank_compute_cpu_s[1] - 0.16).abs() < 1e-12);
        assert!(parse_patterns(text, 3).is_err(), "a rank missing");
        assert!(
            parse_patterns("rank 0 cpu_s 1\n", 1).is_err(),
            "no response"
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        let ok = LiveConfig::default();
        assert!(ok.check().is_ok());
        for bad in [
            LiveConfig {
                hosts: 1,
                ..ok.clone()
            },
            LiveConfig {
                host_cpus: 0.0,
                ..ok.clone()
            },
            LiveConfig {
                share: 0.6,
                ..ok.clone()
            },
            LiveConfig {
                background: 1.0,
                ..ok.clone()
            },
            LiveConfig {
                period_s: 0.0,
                ..ok.clone()
            },
            LiveConfig {
                iterations: 0,
                ..ok.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
