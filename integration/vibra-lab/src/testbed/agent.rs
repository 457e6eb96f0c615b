//! `vibrad` as the testbed's allocation agent: one `vibrad` process (agent role, in-memory
//! directory, Linux backend) whose VMs ARE the testbed's back ends. It adopts them by name
//! (`[linux] adopt = true`: vibra-host's `LinuxHost::adopt_vm` on the testbed's cgroups,
//! namespaces and veths), so the shaping mechanism stays vibra-host's and the back ends stay
//! the testbed's: every period it reads their use (egress at the host end of each veth,
//! memory charge of each cgroup), re-divides the customer's pools of egress bandwidth and
//! memory by demand (SPEC 5), applies the plan (decreases first), and when a back end's cgroup
//! holds no process any more (its nginx killed) gives its share to the next R back ends
//! (SPEC 4). The lab only starts it, reads what it applied back from the kernel
//! ([`super::Testbed::limits`]) and its metrics endpoint, and stops it.
//!
//! The process is stopped (SIGTERM, SIGKILL after 10 s) and reaped when the [`VibradAgent`]
//! is dropped, before the testbed it adopted from is torn down (drop it first); being adopted,
//! the back ends keep their last settings and are removed by the testbed. Its configuration
//! and log are in the testbed's folder.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Testbed, TestbedError, stop_flag};
use crate::live::{free_tcp, reap, scrape, signal, spawn_vibrad, vibrad_bin};

/// What the agent moves, and how.
///
/// ```
/// let o = vibra_lab::testbed::AgentOptions::dissertation(60e6, 24);
/// assert_eq!((o.period_s, o.alpha, o.replication), (3.0, 0.9, 2));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOptions {
    /// Re-division period, seconds (the dissertation's 3).
    pub period_s: f64,
    /// EMA factor (the dissertation's 0.9).
    pub alpha: f64,
    /// R of SPEC 4 (the front end's `url-hash/r` R).
    pub replication: u32,
    /// Each back end's egress rate before any move, bits/s: the bandwidth pool is the number
    /// of back ends times this. `None`: bandwidth is not moved.
    pub egress_bits_per_sec: Option<f64>,
    /// Each back end's memory before any move, MiB: the memory pool is the number of back
    /// ends times this. `None`: memory is not moved.
    pub memory_mib: Option<u64>,
    /// The least bandwidth any back end keeps, bits/s.
    pub egress_floor_bits_per_sec: f64,
    /// The least memory any back end keeps, MiB (below its nginx's own use the kernel would
    /// OOM-kill it, which the agent would take for a failure).
    pub memory_floor_mib: u64,
}

impl AgentOptions {
    /// Both resources moved, period 3 s, alpha 0.9, R = 2: the dissertation's agent for back
    /// ends of `egress_bits_per_sec` and `memory_mib` each. Floors: a quarter of the even
    /// share of bandwidth, and the larger of 8 MiB and a quarter of the even share of memory.
    /// Demand is measured as use, and use cannot exceed the allocation, so a back end cut low
    /// early (its first period's use small) would otherwise stay low under a closed loop: with
    /// a 1 Mbit/s floor one fig4.4 warm-up saw a 4 MB object take over the load generator's
    /// 30 s timeout.
    ///
    /// ```
    /// let o = vibra_lab::testbed::AgentOptions::dissertation(60e6, 24);
    /// assert_eq!(o.memory_mib, Some(24));
    /// assert_eq!((o.egress_floor_bits_per_sec, o.memory_floor_mib), (15e6, 8));
    /// ```
    pub fn dissertation(egress_bits_per_sec: f64, memory_mib: u64) -> Self {
        AgentOptions {
            period_s: 3.0,
            alpha: 0.9,
            replication: 2,
            egress_bits_per_sec: Some(egress_bits_per_sec),
            memory_mib: Some(memory_mib),
            egress_floor_bits_per_sec: egress_bits_per_sec / 4.0,
            memory_floor_mib: (memory_mib / 4).max(8),
        }
    }
}

/// Bandwidth unit of the agent's configuration: 1000 bytes/s (vibrad's default).
const BANDWIDTH_UNIT: f64 = 1000.0;

/// A running `vibrad` adopting a testbed's back ends; dropping it stops it.
///
/// ```no_run
/// use vibra_lab::testbed::{AgentOptions, Testbed, TestbedConfig, VibradAgent};
/// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
/// let agent = VibradAgent::start(&tb, &AgentOptions::dissertation(200e6, 64))?;
/// println!("{:?}", agent.bandwidth_demand_bits_per_sec()?);
/// drop(agent); // before the testbed
/// # Ok::<(), vibra_lab::testbed::TestbedError>(())
/// ```
#[derive(Debug)]
pub struct VibradAgent {
    child: Child,
    metrics: SocketAddr,
    vms: Vec<String>,
    log: PathBuf,
}

impl VibradAgent {
    /// Why the agent cannot run here: no `vibrad` binary (`$VIBRA_VIBRAD_BIN`, else beside
    /// this program).
    ///
    /// ```
    /// let _ = vibra_lab::testbed::VibradAgent::unavailable();
    /// ```
    pub fn unavailable() -> Option<String> {
        vibrad_bin().err().map(|e| e.to_string())
    }

    /// The configuration `start` writes: host `testbed`, one customer `web` owning every back
    /// end in back-end order (SPEC 4's cyclic order), the testbed's parent cgroup, adoption,
    /// the in-memory directory, metrics on `metrics`.
    fn config(tb: &Testbed, o: &AgentOptions, metrics: SocketAddr) -> String {
        let n = tb.vm_names().len() as f64;
        let mut t = String::new();
        let _ = writeln!(t, "host = \"testbed\"\nroles = [\"agent\"]");
        let _ = writeln!(t, "[agent]\nperiod_s = {}\nalpha = {}", o.period_s, o.alpha);
        let _ = writeln!(t, "[metrics]\nlisten = \"{metrics}\"");
        let _ = writeln!(
            t,
            "[linux]\ncgroup_parent = \"{}\"\nadopt = true",
            tb.cgroup_parent()
        );
        let _ = writeln!(
            t,
            "[[customer]]\nname = \"web\"\nreplication = {}",
            o.replication
        );
        if let Some(bps) = o.egress_bits_per_sec {
            let unit = BANDWIDTH_UNIT;
            let pool = (n * bps / 8.0 / unit).floor() * unit;
            let floor = (o.egress_floor_bits_per_sec / 8.0 / unit).ceil().max(1.0) * unit;
            let _ = writeln!(
                t,
                "[customer.bandwidth]\npool_bytes_per_s = {pool:.0}\nfloor_bytes_per_s = {floor:.0}\nunit_bytes_per_s = {unit:.0}"
            );
        }
        if let Some(mib) = o.memory_mib {
            let _ = writeln!(
                t,
                "[customer.memory]\npool_bytes = {}\nfloor_bytes = {}\nunit_bytes = 4096",
                (n as u64) * (mib << 20),
                o.memory_floor_mib << 20
            );
        }
        for vm in tb.vm_names() {
            let _ = writeln!(
                t,
                "[[vm]]\nname = \"{vm}\"\ncustomer = \"web\"\nhost = \"testbed\""
            );
        }
        t
    }

    /// Starts `vibrad --config <testbed folder>/vibrad-<n>.toml` (configuration above, log
    /// beside it) and waits until its metrics endpoint answers (it has adopted every back
    /// end by then). Errors: no binary, a configuration vibrad refuses, or it not answering
    /// within 15 s (with its log's tail); `Interrupted` on SIGINT/SIGTERM.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{AgentOptions, Testbed, TestbedConfig, VibradAgent};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// let agent = VibradAgent::start(&tb, &AgentOptions::dissertation(200e6, 64))?;
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn start(tb: &Testbed, options: &AgentOptions) -> Result<VibradAgent, TestbedError> {
        let metrics = free_tcp()?;
        let k = (0..)
            .find(|k| !tb.work_dir().join(format!("vibrad-{k}.toml")).exists())
            .unwrap_or(0);
        let path = tb.work_dir().join(format!("vibrad-{k}.toml"));
        std::fs::write(&path, Self::config(tb, options, metrics))
            .map_err(|e| TestbedError::io(&path, e))?;
        let log = tb.work_dir().join(format!("vibrad-{k}.log"));
        let child = spawn_vibrad(&path, &log)?;
        let mut agent = VibradAgent {
            child,
            metrics,
            vms: tb.vm_names(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if stop_flag().load(Ordering::Relaxed) {
                return Err(TestbedError::Interrupted);
            }
            if TcpStream::connect_timeout(&metrics, Duration::from_millis(200)).is_ok() {
                return Ok(agent);
            }
            let exited = agent.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                return Err(TestbedError::Process {
                    what: "vibrad (the testbed's agent)".into(),
                    detail: format!("not ready (exit {exited:?}); log: {}", agent.log_tail(5)),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `n` lines of its log.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{AgentOptions, Testbed, TestbedConfig, VibradAgent};
    /// # let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// let agent = VibradAgent::start(&tb, &AgentOptions::dissertation(200e6, 64))?;
    /// println!("{}", agent.log_tail(3));
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(n).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// Whether the process still runs.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{AgentOptions, Testbed, TestbedConfig, VibradAgent};
    /// # let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// let mut agent = VibradAgent::start(&tb, &AgentOptions::dissertation(200e6, 64))?;
    /// assert!(agent.running());
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its metrics endpoint's text (Prometheus format).
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{AgentOptions, Testbed, TestbedConfig, VibradAgent};
    /// # let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// let agent = VibradAgent::start(&tb, &AgentOptions::dissertation(200e6, 64))?;
    /// assert!(agent.metrics()?.contains("vibrad_periods_total"));
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn metrics(&self) -> Result<String, TestbedError> {
        scrape(self.metrics)
    }

    /// The value of metric `name` for each back end (label `vm`) with label `kind`, in
    /// back-end order; `None` where the endpoint has no such line yet.
    fn per_vm(&self, name: &str, kind: &str) -> Result<Vec<Option<f64>>, TestbedError> {
        let text = self.metrics()?;
        Ok(self
            .vms
            .iter()
            .map(|vm| {
                let (k, v) = (format!("kind=\"{kind}\""), format!("vm=\"{vm}\""));
                text.lines()
                    .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
                    .filter(|l| l.contains(&k) && l.contains(&v))
                    .find_map(|l| l.rsplit_once(' ').and_then(|(_, x)| x.parse().ok()))
            })
            .collect())
    }

    /// vibrad's smoothed bandwidth demand estimate of each back end (SPEC 5), bits/s.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{AgentOptions, Testbed, TestbedConfig, VibradAgent};
    /// # let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// let agent = VibradAgent::start(&tb, &AgentOptions::dissertation(200e6, 64))?;
    /// assert_eq!(agent.bandwidth_demand_bits_per_sec()?.len(), 4);
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn bandwidth_demand_bits_per_sec(&self) -> Result<Vec<Option<f64>>, TestbedError> {
        Ok(self
            .per_vm("vibrad_demand_units", "bandwidth")?
            .into_iter()
            .map(|u| u.map(|u| u * BANDWIDTH_UNIT * 8.0))
            .collect())
    }

    /// The number of back-end failures vibrad has seen.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{AgentOptions, Testbed, TestbedConfig, VibradAgent};
    /// # let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// let agent = VibradAgent::start(&tb, &AgentOptions::dissertation(200e6, 64))?;
    /// assert_eq!(agent.failures_seen()?, 0);
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn failures_seen(&self) -> Result<u64, TestbedError> {
        let text = self.metrics()?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("vibrad_vm_failures_total{"))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, x)| x.parse::<f64>().ok()))
            .sum::<f64>() as u64)
    }
}

impl Drop for VibradAgent {
    fn drop(&mut self) {
        // SIGTERM: vibrad finishes its step (nothing half-applied) and exits; adopted back ends
        // are left as they are, for the testbed to remove.
        signal(self.child.id(), nix::sys::signal::Signal::SIGTERM);
        reap(&mut self.child, Duration::from_secs(10));
    }
}
