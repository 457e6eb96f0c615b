//! The Vibra Web testbed on one Linux machine (root): N back ends, each a real nginx in its own
//! network namespace, its own cgroup memory limit (so its page cache is bounded) and its own
//! copy of the corpus (its own "disk"), egress shaped, all through vibra-host's Linux backend
//! ([`vibra_host::LinuxHost`]: cgroup v1 or v2, detected at run time); a front end (the
//! `vibra-proxy` binary, [`FrontEnd`]); a load generator ([`run_load`]); and disk reads counted
//! from the block device's `stat` file ([`BlockDevice`]).
//!
//! Everything a run makes carries its run id ([`Testbed::run_id`]: the process id and the start
//! time), so two runs never collide, and is removed when the [`Testbed`] (or [`FrontEnd`]) is
//! dropped: on success, on error, on panic, and on Ctrl-C or SIGTERM, which set a flag the run
//! polls ([`stop_flag`]) so that it unwinds through the same `Drop`s (a second signal exits at
//! once).
//!
//! The measured traps of the lab recipe are handled here: each back end has its own copy of
//! the files (page cache is shared between cgroups), the copies are synced before
//! `posix_fadvise(DONTNEED)` evicts them (dirty pages stay), and the workload is skewed
//! (`crate::workload`'s World Cup model), not a uniform cycle.
//!
//! ```no_run
//! use vibra_lab::testbed::{CorpusFile, FrontEnd, Request, Testbed, TestbedConfig, run_load, stop_flag};
//! let files = vec![CorpusFile { url: "/english/index.html".into(), bytes: 20_000 }];
//! let mut tb = Testbed::up(&TestbedConfig::default(), &files)?;
//! tb.evict()?;
//! let fe = FrontEnd::start(&FrontEnd::locate()?, "round-robin", 1, tb.backend_addrs(), tb.work_dir())?;
//! let before = tb.disk().read_bytes()?;
//! let reqs = vec![Request { target: "/english/index.html".into(), bytes: 20_000 }; 100];
//! let stats = run_load(fe.addr(), &reqs, 4, &stop_flag())?;
//! println!("{} requests, {} bytes read from disk", stats.requests, tb.disk().read_bytes()? - before);
//! # Ok::<(), vibra_lab::testbed::TestbedError>(())
//! ```

mod agent;
mod arrivals;
mod corpus;
mod disk;
pub(crate) mod error;
mod loadgen;
mod nginx_front;
mod throttle;

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use vibra_host::{Bandwidth, HostController as _, LinkAddrs, LinuxHost, MemoryTarget, VmSpec};

pub use agent::{AgentOptions, VibradAgent};
pub use arrivals::poisson_arrivals;
pub use corpus::{CorpusFile, files_of, servable, servable_corpus};
pub use disk::BlockDevice;
pub use error::TestbedError;
pub use loadgen::{
    IO_TIMEOUT, LiveCounters, LoadOptions, LoadStats, Request, run_load, run_load_with,
};
pub use nginx_front::{NGINX_MODULE_ENV, NGINX_POLICIES};

/// The variable that turns a skipped real-component experiment into a failure (CI sets it; the
/// same one the vibra-host and vibrad tests use).
///
/// ```
/// assert_eq!(vibra_lab::testbed::REQUIRE_PRIVILEGED_ENV, "VIBRA_REQUIRE_PRIVILEGED");
/// ```
pub const REQUIRE_PRIVILEGED_ENV: &str = "VIBRA_REQUIRE_PRIVILEGED";
/// The variable naming the `vibra-proxy` binary (else it is looked for beside this program).
///
/// ```
/// assert_eq!(vibra_lab::testbed::PROXY_BIN_ENV, "VIBRA_PROXY_BIN");
/// ```
pub const PROXY_BIN_ENV: &str = "VIBRA_PROXY_BIN";
/// The variable naming the folder the run's corpus copies go in (default `/var/tmp`): it must
/// be on a block device, whose reads are what the experiments count.
///
/// ```
/// assert_eq!(vibra_lab::testbed::DIR_ENV, "VIBRA_TESTBED_DIR");
/// ```
pub const DIR_ENV: &str = "VIBRA_TESTBED_DIR";

/// The process-wide stop flag, set by SIGINT or SIGTERM once the first testbed of the process
/// has been brought up (a second signal then exits at once with status 130).
///
/// ```
/// use std::sync::atomic::Ordering;
/// assert!(!vibra_lab::testbed::stop_flag().load(Ordering::Relaxed));
/// ```
pub fn stop_flag() -> Arc<AtomicBool> {
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    STOP.get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone()
}

pub(crate) fn catch_signals() -> Result<(), TestbedError> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let done = DONE.get_or_init(|| {
        let stop = stop_flag();
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // The first signal sets the flag; one arriving when it is already set exits.
            signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
                .and_then(|_| signal_hook::flag::register(sig, stop.clone()))
                .map_err(|e| format!("signal {sig}: {e}"))?;
        }
        Ok(())
    });
    done.clone().map_err(TestbedError::Unavailable)
}

/// Why the testbed cannot run here, if it cannot: not root, or a command it runs is missing,
/// or the proxy binary is not found ([`FrontEnd::locate`]).
///
/// ```
/// // Some reason off root, or on a machine without nginx; none on CI's testbed stage.
/// let _ = vibra_lab::testbed::unavailable();
/// ```
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some(format!(
            "needs root for cgroups, network namespaces and tc (effective uid {})",
            nix::unistd::geteuid()
        ));
    }
    if let Some(why) = missing_command(&[
        ("nginx", "-v", "nginx"),
        ("ip", "-V", "iproute2"),
        ("tc", "-V", "iproute2"),
    ]) {
        return Some(why);
    }
    FrontEnd::locate().err().map(|e| e.to_string())
}

/// The first of `commands` (`(command, version argument, Debian package)`) that does not run
/// successfully, said as a reason to skip.
pub(crate) fn missing_command(commands: &[(&str, &str, &str)]) -> Option<String> {
    commands.iter().find_map(|&(cmd, arg, package)| {
        let ok = Command::new(cmd)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        (!ok).then(|| format!("`{cmd}` is not installed (Debian package {package})"))
    })
}

/// The size of a testbed.
///
/// ```
/// let c = vibra_lab::testbed::TestbedConfig::default();
/// assert_eq!(c.backends, 4);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TestbedConfig {
    /// Number of back ends (1..=60).
    pub backends: usize,
    /// Each back end's cgroup memory limit, in MiB: bounds its page cache.
    pub memory_mib: u64,
    /// Each back end's egress rate, bits per second.
    pub egress_bits_per_sec: f64,
    /// The folder the run's own folder is made in (on a block device).
    pub dir: PathBuf,
    /// Each back end's disk-read rate, bytes per second (a cgroup v1 blkio throttle on the
    /// corpus's disk), or `None` for the disk's own speed.
    pub disk_read_bytes_per_sec: Option<u64>,
}

impl Default for TestbedConfig {
    /// 4 back ends, 64 MiB each, 200 Mbit/s each, no disk-read throttle, in
    /// `$VIBRA_TESTBED_DIR` or `/var/tmp`.
    fn default() -> Self {
        TestbedConfig {
            backends: 4,
            memory_mib: 64,
            egress_bits_per_sec: 200e6,
            dir: std::env::var_os(DIR_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/tmp")),
            disk_read_bytes_per_sec: None,
        }
    }
}

/// One back end's limits as the kernel holds them ([`Testbed::limits`]).
///
/// ```
/// let l = vibra_lab::testbed::Limits { memory_bytes: Some(1 << 20), egress_bits_per_sec: None };
/// assert_eq!(l.egress_bits_per_sec, None); // no tbf qdisc: unlimited
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// The memory cgroup's limit, bytes (`None`: unlimited).
    pub memory_bytes: Option<u64>,
    /// The egress tbf qdisc's rate, bits per second (`None`: not shaped).
    pub egress_bits_per_sec: Option<f64>,
}

/// One back end: its VM (cgroups + namespace), address, corpus copy and nginx.
#[derive(Debug)]
struct Backend {
    vm: String,
    addr: SocketAddr,
    root: PathBuf,
    nginx: Option<Child>,
    /// Its blkio group's `cgroup.procs`, when reads are throttled.
    blkio_procs: Option<PathBuf>,
}

/// A running testbed; dropping it tears everything down (see the module documentation).
///
/// ```no_run
/// use vibra_lab::testbed::{Testbed, TestbedConfig};
/// let tb = Testbed::up(&TestbedConfig { backends: 2, ..TestbedConfig::default() }, &[])?;
/// drop(tb); // nginx, namespaces, cgroups, qdiscs and files are gone
/// # Ok::<(), vibra_lab::testbed::TestbedError>(())
/// ```
#[derive(Debug)]
pub struct Testbed {
    run_id: String,
    work: PathBuf,
    disk: BlockDevice,
    files: Vec<CorpusFile>,
    backends: Vec<Backend>,
    /// `None` only while dropping (so it is dropped after the nginx processes are reaped).
    host: Option<LinuxHost>,
    /// The back ends' disk-read throttle, if any (dropped after the host: its groups can only
    /// be removed once their processes are gone).
    throttle: Option<throttle::ReadThrottle>,
    setup_seconds: f64,
}

/// The run id: 6 hex digits from the process id and the clock (VM names are limited to 14
/// bytes, `vt<id>b<i>`).
pub(crate) fn new_run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mix = (u64::from(std::process::id()) << 20) ^ nanos ^ (nanos >> 24);
    format!("{:06x}", mix & 0xff_ffff)
}

impl Testbed {
    /// Brings a testbed up serving `files`: the run's folder, one corpus copy per back end,
    /// one VM per back end (memory limit, egress rate, /30 links in a 10.214.x.0/24 no
    /// interface of the host uses, x tried from the run id on), one nginx per back end started inside its VM, every nginx answering. On error,
    /// what was made is torn down before returning.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[CorpusFile { url: "/a.htm".into(), bytes: 1 }])?;
    /// assert_eq!(tb.backend_addrs().len(), 4);
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn up(config: &TestbedConfig, files: &[CorpusFile]) -> Result<Testbed, TestbedError> {
        if !(1..=60).contains(&config.backends) {
            return Err(TestbedError::Unavailable(format!(
                "{} back ends asked, 1..=60 supported",
                config.backends
            )));
        }
        catch_signals()?;
        let stop = stop_flag();
        let started = Instant::now();
        let run_id = new_run_id();
        let work = config.dir.join(format!("vibra-testbed-{run_id}"));
        std::fs::create_dir(&work).map_err(|e| TestbedError::io(&work, e))?;
        let disk = match BlockDevice::of_dir(&work) {
            Ok(d) => d,
            Err(e) => {
                let _ = std::fs::remove_dir(&work);
                return Err(e);
            }
        };
        let host = match LinuxHost::new(&format!("vibra-testbed-{run_id}")) {
            Ok(h) => h,
            Err(e) => {
                let _ = std::fs::remove_dir(&work);
                return Err(e.into());
            }
        };
        let mut tb = Testbed {
            run_id,
            work,
            disk,
            files: files.to_vec(),
            backends: Vec::new(),
            host: Some(host),
            throttle: None,
            setup_seconds: 0.0,
        };
        if let Some(bps) = config.disk_read_bytes_per_sec {
            let disk = tb.disk.whole_disk()?;
            tb.throttle = Some(throttle::ReadThrottle::new(&tb.run_id, disk, bps)?);
        }
        let subnet = free_subnet(u8::from_str_radix(&tb.run_id[..2], 16).unwrap_or(0))?;
        for i in 0..config.backends {
            let root = tb.work.join(format!("b{i}")).join("www");
            corpus::write_copy(&root, files, &stop)?;
            let k = i as u8;
            let link = LinkAddrs::new(
                Ipv4Addr::new(10, 214, subnet, 4 * k + 1),
                Ipv4Addr::new(10, 214, subnet, 4 * k + 2),
                30,
            )
            .ok_or_else(|| TestbedError::Unavailable("no /30 for the back end".into()))?;
            let vm = format!("vt{}b{i}", tb.run_id);
            let host = tb.host_mut();
            host.create_vm(&VmSpec::new(&vm)?.with_link(link))?;
            let blkio_procs = tb.throttle.as_mut().map(|t| t.add(&vm)).transpose()?;
            tb.backends.push(Backend {
                vm: vm.clone(),
                addr: SocketAddr::from((link.vm(), 80)),
                root,
                nginx: None,
                blkio_procs,
            });
            tb.set_resources(i, config.memory_mib, config.egress_bits_per_sec)?;
            tb.start_nginx(i)?;
        }
        for b in &tb.backends {
            wait_listening(
                b.addr,
                &format!("nginx of {}", b.vm),
                Duration::from_secs(10),
            )?;
        }
        tb.setup_seconds = started.elapsed().as_secs_f64();
        Ok(tb)
    }

    fn host_mut(&mut self) -> &mut LinuxHost {
        // Some from `up` until `drop`.
        self.host.as_mut().expect("host present until drop")
    }

    fn host(&self) -> &LinuxHost {
        self.host.as_ref().expect("host present until drop")
    }

    /// Starts back end `i`'s nginx in its VM: a shell waits on its standard input until its
    /// process id has been moved into the VM's cgroups, then `exec`s `ip netns exec <vm>
    /// nginx` (same process, so nginx's master and worker are born inside both).
    fn start_nginx(&mut self, i: usize) -> Result<(), TestbedError> {
        let b = &self.backends[i];
        let dir = self.work.join(format!("b{i}"));
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(&dir, &b.root, b.addr))
            .map_err(|e| TestbedError::io(&conf, e))?;
        let log = dir.join("error.log");
        let script = format!(
            "read -r _ && exec ip netns exec {} nginx -q -p {} -c {} -e {}",
            b.vm,
            dir.display(),
            conf.display(),
            log.display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| TestbedError::Process {
                what: "sh (nginx launcher)".into(),
                detail: e.to_string(),
            })?;
        let attached = self
            .host()
            .attach(&b.vm, child.id())
            .map_err(TestbedError::from)
            .and_then(|()| {
                b.blkio_procs
                    .as_deref()
                    .map_or(Ok(()), |p| throttle::ReadThrottle::attach(p, child.id()))
            });
        let go = attached.and_then(|()| {
            child
                .stdin
                .take()
                .map(|mut s| s.write_all(b"go\n"))
                .transpose()
                .map_err(|e| TestbedError::Process {
                    what: format!("nginx of {}", b.vm),
                    detail: e.to_string(),
                })
        });
        self.backends[i].nginx = Some(child);
        go.map(|_| ())
    }

    /// Fails back end `i`: its nginx gets SIGTERM (master and worker exit; SIGKILL after
    /// 10 s) and is reaped, so its address refuses connections. Its VM and resources stay.
    /// Stopping a stopped back end does nothing.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let mut tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// tb.stop_backend(1)?;
    /// tb.start_backend(1)?;
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn stop_backend(&mut self, i: usize) -> Result<(), TestbedError> {
        let b = self.backend_mut(i)?;
        let Some(mut child) = b.nginx.take() else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok(());
                }
            }
        }
    }

    /// Starts back end `i`'s nginx again (after [`Testbed::stop_backend`]) and waits until it
    /// answers. Starting a running back end does nothing.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let mut tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// tb.stop_backend(0)?;
    /// tb.start_backend(0)?;
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn start_backend(&mut self, i: usize) -> Result<(), TestbedError> {
        let b = self.backend_mut(i)?;
        if b.nginx.is_some() {
            return Ok(());
        }
        self.start_nginx(i)?;
        let b = &self.backends[i];
        wait_listening(
            b.addr,
            &format!("nginx of {}", b.vm),
            Duration::from_secs(10),
        )
    }

    /// Sets back end `i`'s memory limit (MiB) and egress rate (bits per second) through
    /// vibra-host; lowering the limit reclaims page cache at once.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let mut tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// tb.set_resources(2, 96, 300e6)?; // 96 MiB, 300 Mbit/s
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn set_resources(
        &mut self,
        i: usize,
        memory_mib: u64,
        egress_bits_per_sec: f64,
    ) -> Result<(), TestbedError> {
        let vm = self.backend_mut(i)?.vm.clone();
        let memory = MemoryTarget::from_mib(memory_mib)?;
        let rate = Bandwidth::from_bits_per_sec(egress_bits_per_sec)?;
        let host = self.host_mut();
        // vibra-host skips a write equal to its own last one, but a `VibradAgent` adopting the
        // back ends writes the same kernel objects from another process: forget what this
        // controller wrote, so the values asked for are in the kernel afterwards.
        host.forget_settings(&vm)?;
        host.set_memory_target(&vm, memory)?;
        host.set_egress(&vm, rate)?;
        Ok(())
    }

    fn backend_mut(&mut self, i: usize) -> Result<&mut Backend, TestbedError> {
        let n = self.backends.len();
        self.backends
            .get_mut(i)
            .ok_or_else(|| TestbedError::Unavailable(format!("back end {i} of {n}")))
    }

    /// Each back end's disk-read rate in bytes per second, if reads are throttled.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig { disk_read_bytes_per_sec: Some(4_000_000), ..TestbedConfig::default() }, &[])?;
    /// assert_eq!(tb.disk_read_limit(), Some(4_000_000));
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn disk_read_limit(&self) -> Option<u64> {
        self.throttle
            .as_ref()
            .map(throttle::ReadThrottle::bytes_per_sec)
    }

    /// The disk-read rate in words for a report: `"disk reads at the device's own speed"` or
    /// `"disk reads throttled to 1.0 MB/s per back end (blkio)"`.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// assert_eq!(tb.disk_read_note(), "disk reads at the device's own speed");
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn disk_read_note(&self) -> String {
        match self.disk_read_limit() {
            Some(bps) => format!(
                "disk reads throttled to {:.1} MB/s per back end (blkio)",
                bps as f64 / 1e6
            ),
            None => "disk reads at the device's own speed".to_string(),
        }
    }

    /// The run id every name of this run carries.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// assert_eq!(tb.run_id().len(), 6);
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The run's own folder (corpus copies, nginx configurations and logs).
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// assert!(tb.work_dir().ends_with(format!("vibra-testbed-{}", tb.run_id())));
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// The block device the corpus copies are on.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// println!("{} bytes read", tb.disk().read_bytes()?);
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn disk(&self) -> &BlockDevice {
        &self.disk
    }

    /// The back ends' addresses, in back-end order (server 0 first).
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// assert_eq!(tb.backend_addrs()[0].port(), 80);
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn backend_addrs(&self) -> Vec<SocketAddr> {
        self.backends.iter().map(|b| b.addr).collect()
    }

    /// Seconds `up` took.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// assert!(tb.setup_seconds() > 0.0);
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn setup_seconds(&self) -> f64 {
        self.setup_seconds
    }

    /// The back ends' VM names (cgroups and network namespaces), in back-end order.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// assert_eq!(tb.vm_names()[0], format!("vt{}b0", tb.run_id()));
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn vm_names(&self) -> Vec<String> {
        self.backends.iter().map(|b| b.vm.clone()).collect()
    }

    /// The parent cgroup the back ends' VMs live under (in each hierarchy).
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// assert!(tb.cgroup_parent().ends_with(tb.run_id()));
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn cgroup_parent(&self) -> String {
        format!("vibra-testbed-{}", self.run_id)
    }

    /// Each back end's memory limit (bytes) and egress rate (bits per second) as the kernel
    /// holds them now, read back through vibra-host (the memory cgroup's limit, the tbf
    /// qdisc's rate); `None` where there is no limit. Whoever set them (this testbed, or a
    /// `vibrad` that adopted its VMs: [`VibradAgent`]).
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig { memory_mib: 64, ..TestbedConfig::default() }, &[])?;
    /// assert_eq!(tb.limits()?[0].memory_bytes, Some(64 << 20));
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn limits(&self) -> Result<Vec<Limits>, TestbedError> {
        self.backends
            .iter()
            .map(|b| {
                let host = self.host();
                let memory = host.memory_target(&b.vm)?.map(MemoryTarget::bytes);
                let egress = host
                    .egress_limit(&b.vm)?
                    .map(|r| r.bytes_per_sec() as f64 * 8.0);
                Ok(Limits {
                    memory_bytes: memory,
                    egress_bits_per_sec: egress,
                })
            })
            .collect()
    }

    /// The cgroup layout in use (v1 or v2, as detected).
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// assert!(tb.cgroup_layout().contains("memory:"));
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn cgroup_layout(&self) -> String {
        self.host().layout().to_string()
    }

    /// Drops every copy of the corpus from the page cache ([`corpus`]'s `evict`: sync, then
    /// `posix_fadvise(DONTNEED)`).
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[CorpusFile { url: "/a.htm".into(), bytes: 9 }])?;
    /// tb.evict()?;
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn evict(&self) -> Result<(), TestbedError> {
        let roots: Vec<PathBuf> = self.backends.iter().map(|b| b.root.clone()).collect();
        corpus::evict(&roots, &self.files)
    }

    /// Each back end's memory charge now (page cache included), in bytes.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// assert_eq!(tb.memory_bytes()?.len(), 4);
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn memory_bytes(&self) -> Result<Vec<u64>, TestbedError> {
        self.backends
            .iter()
            .map(|b| Ok(self.host().usage(&b.vm)?.memory_bytes))
            .collect()
    }

    /// Each back end's egress bytes so far (counted at the host end of its veth).
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// assert_eq!(tb.egress_bytes()?.len(), 4);
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn egress_bytes(&self) -> Result<Vec<u64>, TestbedError> {
        self.backends
            .iter()
            .map(|b| Ok(self.host().usage(&b.vm)?.egress_bytes))
            .collect()
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        // nginx masters are our children: kill and reap them first, then the VMs (the host's
        // Drop kills whatever is left in their cgroups and removes cgroups, namespaces, links
        // and qdiscs), then the files.
        for b in &mut self.backends {
            if let Some(mut c) = b.nginx.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        drop(self.host.take());
        drop(self.throttle.take());
        if let Err(e) = std::fs::remove_dir_all(&self.work)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!(
                "vibra-lab testbed: cleanup of {} failed: {e}",
                self.work.display()
            );
        }
    }
}

/// The back end's nginx configuration: one worker, its files in the back end's folder,
/// `sendfile`, no access log, long keep-alive.
fn nginx_conf(dir: &Path, root: &Path, addr: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\n\
         daemon off;\n\
         pid {d}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 sendfile on;\n\
         \x20 tcp_nopush on;\n\
         \x20 keepalive_requests 1000000;\n\
         \x20 keepalive_timeout 300s;\n\
         \x20 default_type application/octet-stream;\n\
         \x20 client_body_temp_path {d}/tmp-body;\n\
         \x20 proxy_temp_path {d}/tmp-proxy;\n\
         \x20 fastcgi_temp_path {d}/tmp-fastcgi;\n\
         \x20 uwsgi_temp_path {d}/tmp-uwsgi;\n\
         \x20 scgi_temp_path {d}/tmp-scgi;\n\
         \x20 server {{ listen {addr}; root {}; }}\n\
         }}\n",
        root.display()
    )
}

/// The first third octet X, from `start` on, such that no interface of the host has an address
/// in 10.214.X.0/24: the back ends' links of one run live there, and another run's (or anyone
/// else's) would make their routes ambiguous.
fn free_subnet(start: u8) -> Result<u8, TestbedError> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .map_err(|e| TestbedError::Process {
            what: "ip -4 -o addr show".into(),
            detail: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    (0..=255u8)
        .map(|k| start.wrapping_add(k))
        .find(|x| !text.contains(&format!(" 10.214.{x}.")))
        .ok_or_else(|| TestbedError::Unavailable("every 10.214.x.0/24 is in use".into()))
}

/// Waits until `addr` accepts a TCP connection.
fn wait_listening(addr: SocketAddr, what: &str, limit: Duration) -> Result<(), TestbedError> {
    let deadline = Instant::now() + limit;
    loop {
        if stop_flag().load(Ordering::Relaxed) {
            return Err(TestbedError::Interrupted);
        }
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(TestbedError::Process {
                    what: what.to_string(),
                    detail: format!("not listening on {addr} after {limit:?}: {e}"),
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A program of the workspace: `$<env>` if set (an error if it is no file), else `name` beside
/// this program or in the `release`/`debug` folder of its target folder (where `cargo build`
/// puts it); `build` says how to build it when it is not found.
pub(crate) fn locate_binary(name: &str, env: &str, build: &str) -> Result<PathBuf, TestbedError> {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(TestbedError::Unavailable(format!(
                "{env}={} is no file",
                p.display()
            )))
        };
    }
    let exe = std::env::current_exe().map_err(|e| TestbedError::io("current_exe", e))?;
    let mut dirs = exe.ancestors().skip(1).take(3);
    let found = dirs.find_map(|d| {
        ["", "release", "debug"]
            .iter()
            .map(|sub| d.join(sub).join(name))
            .find(|p| p.is_file())
    });
    found.ok_or_else(|| {
        TestbedError::Unavailable(format!(
            "no {name} binary beside {} (build it: {build}; or set {env})",
            exe.display()
        ))
    })
}

/// The front end: a `vibra-proxy` process ([`FrontEnd::start`]) or an nginx
/// ([`FrontEnd::start_nginx`]) on 127.0.0.1 in front of the back ends, killed and reaped when
/// dropped.
///
/// ```no_run
/// use vibra_lab::testbed::{FrontEnd, Testbed, TestbedConfig};
/// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
/// let fe = FrontEnd::start(&FrontEnd::locate()?, "least-conn", 1, tb.backend_addrs(), tb.work_dir())?;
/// drop(fe); // the proxy is killed and reaped
/// # Ok::<(), vibra_lab::testbed::TestbedError>(())
/// ```
#[derive(Debug)]
pub struct FrontEnd {
    child: Child,
    addr: SocketAddr,
    /// The child leads a process group of its own (nginx: a master and its workers), which
    /// is killed as a whole; else the child alone (vibra-proxy: one process).
    group: bool,
}

impl FrontEnd {
    /// The `vibra-proxy` binary: `$VIBRA_PROXY_BIN`, else beside this program or in the
    /// `release`/`debug` folder of its target folder (where `cargo build -p vibra-proxy
    /// --features pingora` puts it).
    ///
    /// ```no_run
    /// println!("{}", vibra_lab::testbed::FrontEnd::locate()?.display());
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn locate() -> Result<PathBuf, TestbedError> {
        locate_binary(
            "vibra-proxy",
            PROXY_BIN_ENV,
            "`cargo build --release -p vibra-proxy --features pingora`, which needs cmake",
        )
    }

    /// Starts `bin --listen 127.0.0.1:<free port> --policy <policy> --replication <r>
    /// --hash md5 --threads 2 <back ends...>`, its output logged to `<log_dir>/proxy-*.log`,
    /// and waits until it accepts connections.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// let fe = FrontEnd::start(&FrontEnd::locate()?, "url-hash/r", 2, tb.backend_addrs(), tb.work_dir())?;
    /// assert!(fe.addr().ip().is_loopback());
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn start(
        bin: &Path,
        policy: &str,
        replication: u32,
        backends: Vec<SocketAddr>,
        log_dir: &Path,
    ) -> Result<FrontEnd, TestbedError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| TestbedError::io("127.0.0.1:0", e))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log_path = log_dir.join(format!("proxy-{}.log", policy.replace('/', "_")));
        let log = std::fs::File::create(&log_path).map_err(|e| TestbedError::io(&log_path, e))?;
        let err_log = log
            .try_clone()
            .map_err(|e| TestbedError::io(&log_path, e))?;
        let mut cmd = Command::new(bin);
        cmd.args(["--listen", &addr.to_string(), "--policy", policy])
            .args(["--replication", &replication.to_string(), "--hash", "md5"])
            .args(["--threads", "2"])
            .args(backends.iter().map(SocketAddr::to_string))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        let child = cmd.spawn().map_err(|e| TestbedError::Process {
            what: format!("{}", bin.display()),
            detail: e.to_string(),
        })?;
        FrontEnd::listening(
            child,
            false,
            addr,
            format!("vibra-proxy --policy {policy}"),
            &log_path,
        )
    }

    /// A started front end once it accepts connections on `addr`; else (it is killed on
    /// drop) an error with its exit status and the tail of its log.
    fn listening(
        child: Child,
        group: bool,
        addr: SocketAddr,
        what: String,
        log: &Path,
    ) -> Result<FrontEnd, TestbedError> {
        let mut fe = FrontEnd { child, addr, group };
        if let Err(e) = wait_listening(addr, &what, Duration::from_secs(15)) {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let exited = fe.child.try_wait().ok().flatten();
            return Err(match e {
                TestbedError::Interrupted => e,
                _ => TestbedError::Process {
                    what,
                    detail: format!("{e}; exit {exited:?}; log: {}", tail.trim_end()),
                },
            });
        }
        Ok(fe)
    }

    /// Where the proxy listens.
    ///
    /// ```no_run
    /// # use vibra_lab::testbed::{CorpusFile, FrontEnd, Testbed, TestbedConfig};
    /// let tb = Testbed::up(&TestbedConfig::default(), &[])?;
    /// let fe = FrontEnd::start(&FrontEnd::locate()?, "round-robin", 1, tb.backend_addrs(), tb.work_dir())?;
    /// println!("proxy on {}", fe.addr());
    /// # Ok::<(), vibra_lab::testbed::TestbedError>(())
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for FrontEnd {
    fn drop(&mut self) {
        // nginx's workers outlive a killed master (they were left running, listening on the
        // front end's port, before the group kill), so a group leader's whole group goes.
        if self.group
            && let Ok(pid) = i32::try_from(self.child.id())
        {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_fit_vm_names_and_differ() {
        let a = new_run_id();
        std::thread::sleep(Duration::from_millis(2));
        let b = new_run_id();
        assert_eq!(a.len(), 6);
        assert_ne!(a, b);
        let vm = format!("vt{a}b59");
        assert!(VmSpec::new(&vm).is_ok(), "{vm}");
    }

    #[test]
    fn nginx_conf_names_the_back_ends_own_folders() {
        let c = nginx_conf(
            Path::new("/x/b1"),
            Path::new("/x/b1/www"),
            "10.214.3.6:80".parse().unwrap(),
        );
        assert!(c.contains("listen 10.214.3.6:80;"));
        assert!(c.contains("root /x/b1/www;"));
        assert!(c.contains("pid /x/b1/nginx.pid;"));
    }
}
