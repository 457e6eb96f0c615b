//! The dps role's loop: every period T read each local VM's CPU use through the host
//! controller, compute excess and offers (fully distributed) or deposits and shortages (bank)
//! with dps-core's SPEC 6 functions, exchange datagrams with the other hosts' daemons over UDP,
//! decide received offers by this host's room, and write each VM's share as its CPU weight
//! (and cap) through the controller. Open transfers are sent again every T / 5 until answered.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dps_core::{Message, Party, VmId};
use parking_lot::Mutex;
use vibra_host::{CpuCap, CpuSetting, CpuWeight};
use vibra_mpi_hook::{UpstreamConfig, Upstreams, WaitListener, job_hash};

use super::ledger::{HostLedger, Layout, PROGRAM, Snapshot};
use super::wire::{Body, Envelope, MAX_LEN};
use crate::config::{Config, DpsConfig, DpsMode};
use crate::daemon::{Signals, Vms, open_directory};
use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// Transfers smaller than this many CPUs are not sent (they would only churn the network).
pub const MIN_TRANSFER: f64 = 1e-4;

/// Measured periods after a VM starts (or starts again) in which it gives nothing away: its
/// first period holds its start-up, not its demand.
///
/// ```
/// assert_eq!(vibrad::dps::STARTUP_PERIODS, 1);
/// ```
pub const STARTUP_PERIODS: u32 = 1;

/// The PMPI hook's side: its socket, the upstream sets and the job.
struct Hook {
    listener: WaitListener,
    upstreams: Upstreams,
    job: u64,
}

/// A point in the exchange where a fault-injection run stops the daemon dead (the recovery
/// tests; `vibrad --crash-at`): nothing more is written to the directory, the kernel or the
/// network, as after `kill -9` there.
///
/// ```
/// use vibrad::dps::CrashPoint;
/// assert_eq!("offer-sent".parse::<CrashPoint>().unwrap(), CrashPoint::OfferSent);
/// assert!("later".parse::<CrashPoint>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Right after the first offer of a batch left for another host.
    OfferSent,
    /// Right after a reply accepting (some of) an offer left.
    OfferAccepted,
    /// Right after a reply closed one of this host's transfers (the refund not yet recorded).
    ReplyReceived,
    /// On the bank's host, right after the grants of a bank round left.
    GrantsSent,
}

impl std::str::FromStr for CrashPoint {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "offer-sent" => Ok(CrashPoint::OfferSent),
            "offer-accepted" => Ok(CrashPoint::OfferAccepted),
            "reply-received" => Ok(CrashPoint::ReplyReceived),
            "grants-sent" => Ok(CrashPoint::GrantsSent),
            _ => Err(format!(
                "unknown crash point {s:?} (offer-sent, offer-accepted, reply-received, grants-sent)"
            )),
        }
    }
}

/// How a reached [`CrashPoint`] stops the daemon.
///
/// ```
/// assert_ne!(vibrad::dps::CrashMode::Kill, vibrad::dps::CrashMode::Halt);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// The process sends itself SIGKILL (a real `kill -9`).
    Kill,
    /// The role goes silent and `run` returns (in-process daemons of a test).
    Halt,
}

/// One host's dps role.
///
/// ```no_run
/// use vibrad::config::{Config, MINIMAL_DPS};
/// use vibrad::dps::DpsRole;
/// let cfg = Config::parse(MINIMAL_DPS).unwrap();
/// let host = vibrad::dps::linux_host(&cfg)?;
/// let mut role = DpsRole::new(&cfg, host)?;
/// role.tick()?;
/// # Ok::<(), vibrad::Error>(())
/// ```
pub struct DpsRole<H: Vms> {
    cfg: DpsConfig,
    host: H,
    ledger: Arc<Mutex<HostLedger>>,
    sock: UdpSocket,
    me: u16,
    addrs: Vec<Option<SocketAddr>>,
    cluster: u64,
    names: Vec<String>,
    ranks: BTreeMap<u32, u32>,
    upstreams: Vec<Vec<u32>>,
    last: BTreeMap<u32, (Instant, Duration)>,
    /// Periods measured per local VM since it (re)started running: its first one holds its
    /// start-up (an MPI rank idles in `MPI_Init` while `mpirun` starts the others), which is
    /// not excess, so a VM offers or deposits nothing until its second measured period.
    measured: BTreeMap<u32, u32>,
    /// Local VMs seen running: only those can exit (a VM whose ranks are not started yet
    /// keeps its share).
    seen: std::collections::BTreeSet<u32>,
    hook: Option<Hook>,
    metrics: Arc<Metrics>,
    /// The whole configuration (what a reload may not change is compared against it).
    base: Config,
    config_path: Option<std::path::PathBuf>,
    dir: Directory,
    /// The mod revision of this host's `dps/` record as last written (0: not yet).
    record_rev: i64,
    /// The ledger as last recorded in the directory.
    recorded: Option<Snapshot>,
    /// Records attempted since the last confirmed one whose writes failed without an answer
    /// (a timeout): the store may have applied one of them.
    unconfirmed: Vec<Snapshot>,
    /// Another writer changed this host's record: this daemon must stop.
    owner_lost: bool,
    crash: Option<(CrashPoint, CrashMode)>,
    crashed: bool,
    dry_run: bool,
}

/// The cluster fingerprint: FNV-1a 64 (the hook's `job_hash`) of the hosts, the VMs with
/// their hosts, W and the mode. Two daemons with different layouts never exchange share.
///
/// ```
/// use vibrad::config::{Config, MINIMAL_DPS};
/// let a = Config::parse(MINIMAL_DPS).unwrap().dps.unwrap();
/// let b = Config::parse(&MINIMAL_DPS.replace("total = 0.4", "total = 0.5")).unwrap().dps.unwrap();
/// assert_ne!(vibrad::dps::fingerprint(&a), vibrad::dps::fingerprint(&b));
/// ```
#[must_use]
pub fn fingerprint(cfg: &DpsConfig) -> u64 {
    let mut s = cfg.hosts().join(",");
    for v in &cfg.vms {
        s.push_str(&format!(";{}@{}", v.name, v.host));
    }
    s.push_str(&format!(";W={:x}", cfg.total.to_bits()));
    if let DpsMode::Bank { host } = &cfg.mode {
        s.push_str(&format!(";bank={host}"));
    }
    job_hash(&s)
}

/// `CLOCK_MONOTONIC` in seconds: the hook's records carry it.
fn monotonic_s() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
        .unwrap_or(0.0)
}

/// The CPU setting for a share: weight `share / cpus` of the host on vibra-host's neutral
/// scale (`CpuWeight::from_share`), and with `cap` a cap of the share in percent of a CPU.
///
/// ```
/// let s = vibrad::dps::cpu_setting(0.25, 1.0, true).unwrap();
/// assert_eq!(s.weight.get(), 16384);
/// assert_eq!(s.cap.unwrap().percent(), 25);
/// assert_eq!(vibrad::dps::cpu_setting(0.0, 1.0, false).unwrap().weight.get(), 1);
/// ```
pub fn cpu_setting(share: f64, cpus: f64, cap: bool) -> Result<CpuSetting> {
    let frac = (share / cpus).clamp(1.0 / CpuWeight::SHARE_SCALE, 1.0);
    let weight = CpuWeight::from_share(frac)?;
    let cap = if cap {
        let pct = (share * 100.0)
            .ceil()
            .clamp(1.0, f64::from(CpuCap::MAX_PERCENT));
        Some(CpuCap::new(pct as u32)?)
    } else {
        None
    };
    Ok(CpuSetting { weight, cap })
}

impl<H: Vms> DpsRole<H> {
    /// The role for `cfg` (which must have a `[dps]` section) on `host`, whose VMs (this
    /// host's `[[dps.vm]]`) must exist. Binds the UDP socket and the hook's socket.
    ///
    /// ```no_run
    /// use vibrad::config::{Config, MINIMAL_DPS};
    /// let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn new(cfg: &Config, host: H) -> Result<Self> {
        Self::with_directory(cfg, host, open_directory(cfg))
    }

    /// The role over `dir`: when the directory holds this host's ledger (`dps/<cluster>/<host>`,
    /// written by an earlier daemon of this host that was killed or stopped), the ledger is
    /// restored from it (shares, bank balance, open transfers, decisions, next id); else it
    /// starts at W / N per VM. Unreadable or inconsistent content is an error naming the key.
    ///
    /// ```no_run
    /// use vibrad::config::{Config, MINIMAL_DPS};
    /// let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let dir = vibrad::daemon::open_directory(&cfg);
    /// let role = vibrad::dps::DpsRole::with_directory(&cfg, vibrad::dps::linux_host(&cfg)?, dir)?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn with_directory(cfg: &Config, host: H, dir: Directory) -> Result<Self> {
        let d = cfg.dps.clone().ok_or_else(|| Error::Directory {
            key: "dps".into(),
            message: "no [dps] section".into(),
        })?;
        let hosts = d.hosts();
        let index = |h: &str| hosts.iter().position(|x| x == h).unwrap_or(0) as u16;
        let me = index(&cfg.host);
        let addrs = hosts
            .iter()
            .map(|h| {
                if *h == cfg.host {
                    Some(d.listen)
                } else {
                    d.peers.get(h).copied()
                }
            })
            .collect();
        let names: Vec<String> = d.vms.iter().map(|v| v.name.clone()).collect();
        let id_of = |n: &str| names.iter().position(|x| x == n).unwrap_or(0) as u32;
        let upstreams = d
            .vms
            .iter()
            .map(|v| v.upstreams.iter().map(|u| id_of(u)).collect())
            .collect();
        let ranks = d
            .vms
            .iter()
            .enumerate()
            .map(|(i, v)| (v.rank, i as u32))
            .collect();
        let layout = Layout {
            me,
            bank_host: match &d.mode {
                DpsMode::Bank { host } => Some(index(host)),
                DpsMode::Distributed => None,
            },
            vm_host: d.vms.iter().map(|v| index(&v.host)).collect(),
            total: d.total,
            cpus: d.cpus,
            background: d.background,
        };
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_secs() as u32);
        let sock = UdpSocket::bind(d.listen).map_err(|source| Error::Io {
            what: format!("dps listen on {}", d.listen),
            source,
        })?;
        let hook = match &d.hook {
            Some(h) => {
                let listener = WaitListener::bind(&h.socket).map_err(|source| Error::Io {
                    what: format!("hook socket {}", h.socket.display()),
                    source,
                })?;
                // Entries expire after two periods: a peer waited on in neither is no upstream.
                let upstreams = Upstreams::new(UpstreamConfig {
                    ttl_s: 2.0 * d.period.as_secs_f64(),
                    ..UpstreamConfig::default()
                })
                .map_err(|e| Error::Directory {
                    key: "dps.period_s".into(),
                    message: e.to_string(),
                })?;
                Some(Hook {
                    listener,
                    upstreams,
                    job: job_hash(&h.job),
                })
            }
            None => None,
        };
        let cluster = fingerprint(&d);
        let stored = dir.read_dps(cluster, &cfg.host)?;
        let mut ledger = match stored.value {
            Some(snap) => {
                let l =
                    HostLedger::restore(layout, d.acceptance, snap.clone()).map_err(|message| {
                        Error::Directory {
                            key: dir.key_dps(cluster, &cfg.host),
                            message,
                        }
                    })?;
                tracing::info!(
                    key = dir.key_dps(cluster, &cfg.host),
                    open = l.open().count(),
                    balance = l.balance(),
                    "dps: ledger restored from the directory"
                );
                l
            }
            None => HostLedger::new(layout, d.acceptance, epoch),
        };
        ledger.set_capped_grants(d.capped_grants);
        let recorded = (stored.revision != 0).then(|| ledger.snapshot());
        let role = DpsRole {
            cluster,
            ledger: Arc::new(Mutex::new(ledger)),
            cfg: d,
            host,
            sock,
            me,
            addrs,
            names,
            ranks,
            upstreams,
            last: BTreeMap::new(),
            measured: BTreeMap::new(),
            seen: std::collections::BTreeSet::new(),
            hook,
            metrics: Arc::new(Metrics::default()),
            base: cfg.clone(),
            config_path: None,
            dir,
            record_rev: stored.revision,
            recorded,
            unconfirmed: Vec::new(),
            owner_lost: false,
            crash: None,
            crashed: false,
            dry_run: false,
        };
        Ok(role)
    }

    /// The ledger (shared: tests check conservation across daemons under its lock).
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// let shares: Vec<_> = role.ledger().lock().local_vms().collect();
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    #[must_use]
    pub fn ledger(&self) -> Arc<Mutex<HostLedger>> {
        Arc::clone(&self.ledger)
    }

    /// The metrics registry.
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// let text = role.metrics().render();
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    #[must_use]
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The host controller.
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let mut role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// let _host = role.host_mut();
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn host_mut(&mut self) -> &mut H {
        &mut self.host
    }

    /// Dry run: every period the planned transfers and CPU settings are printed; nothing is
    /// sent, written to the kernel or recorded in the directory, and received offers are
    /// decided on a copy of the ledger and not answered.
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let mut role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// role.set_dry_run(true);
    /// role.tick()?; // prints, changes nothing
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn set_dry_run(&mut self, dry_run: bool) {
        self.dry_run = dry_run;
    }

    /// The file SIGHUP re-reads.
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let mut role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// role.set_config_path("/etc/vibrad/dps.toml".into());
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn set_config_path(&mut self, path: std::path::PathBuf) {
        self.config_path = Some(path);
    }

    /// Fault injection: stop dead at `point` (see [`CrashPoint`]).
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// use vibrad::dps::{CrashMode, CrashPoint};
    /// let mut role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// role.crash_at(CrashPoint::OfferSent, CrashMode::Halt);
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn crash_at(&mut self, point: CrashPoint, mode: CrashMode) {
        self.crash = Some((point, mode));
    }

    /// Whether a [`CrashMode::Halt`] crash point was reached (the role is silent since).
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// assert!(!role.crashed());
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    #[must_use]
    pub fn crashed(&self) -> bool {
        self.crashed
    }

    /// The fingerprint of this role's layout (its directory records are under it).
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// assert_eq!(role.cluster(), vibrad::dps::fingerprint(cfg.dps.as_ref().unwrap()));
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    #[must_use]
    pub fn cluster(&self) -> u64 {
        self.cluster
    }

    fn crash_point(&mut self, point: CrashPoint) {
        let Some((p, mode)) = self.crash else {
            return;
        };
        if p != point || self.crashed {
            return;
        }
        tracing::warn!(?point, "dps: crash point reached; stopping dead");
        if mode == CrashMode::Kill {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
        self.crashed = true;
    }

    /// Records the ledger in the directory if it changed since the last record: one
    /// compare-and-swap on this host's `dps/` key. Every datagram is sent only after this
    /// succeeded, so nothing another host sees is ever missing from the directory (README,
    /// "Crash recovery"). Returns whether the directory holds the ledger as it is now.
    fn persist(&mut self) -> bool {
        if self.crashed || self.owner_lost || self.dry_run {
            return false;
        }
        let snap = self.ledger.lock().snapshot();
        if self.recorded.as_ref() == Some(&snap) {
            return true;
        }
        let t = Instant::now();
        let r = self
            .dir
            .write_dps(self.cluster, &self.base.host, self.record_rev, &snap);
        let took = t.elapsed().as_secs_f64();
        self.metrics.set(
            "vibrad_directory_latency_seconds",
            &[("op", "dps_record")],
            took,
        );
        self.metrics
            .add("vibrad_dps_record_seconds_total", &[], took);
        match r {
            Ok(Some(rev)) => {
                self.record_rev = rev;
                self.recorded = Some(snap);
                self.unconfirmed.clear();
                self.metrics.add("vibrad_dps_records_total", &[], 1.0);
                true
            }
            Ok(None) if self.adopt_applied_record() => self.persist(),
            Ok(None) => {
                tracing::error!(
                    key = self.dir.key_dps(self.cluster, &self.base.host),
                    "dps: another daemon wrote this host's ledger; stopping"
                );
                self.owner_lost = true;
                false
            }
            Err(e) => {
                // The write may still have been applied (a lost reply): remembered, so that the
                // next compare-and-swap's failure is not taken for another writer.
                if self.unconfirmed.len() == 64 {
                    self.unconfirmed.remove(0); // the latest attempts are the likely ones
                }
                self.unconfirmed.push(snap);
                tracing::warn!(error = %e, "dps: recording the ledger failed; holding this host's datagrams until it succeeds");
                self.metrics.add("vibrad_directory_errors_total", &[], 1.0);
                false
            }
        }
    }

    /// After a failed compare-and-swap: whether the record holds one of this daemon's own
    /// unanswered writes (applied, its reply lost in a timeout). If so its revision is taken as
    /// the one last written and the caller writes again; else another daemon wrote it.
    fn adopt_applied_record(&mut self) -> bool {
        if self.unconfirmed.is_empty() {
            return false;
        }
        let Ok(stored) = self.dir.read_dps(self.cluster, &self.base.host) else {
            return false;
        };
        let Some(value) = stored.value else {
            return false;
        };
        if !self.unconfirmed.contains(&value) {
            return false;
        }
        tracing::info!(
            key = self.dir.key_dps(self.cluster, &self.base.host),
            revision = stored.revision,
            "dps: a record whose reply was lost had been applied; continuing from it"
        );
        self.record_rev = stored.revision;
        self.recorded = Some(value);
        self.unconfirmed.clear();
        true
    }

    /// The address the role's socket is bound to.
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// assert_eq!(role.local_addr()?.port(), 7701);
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.sock.local_addr().map_err(|source| Error::Io {
            what: "dps local address".into(),
            source,
        })
    }

    /// The upstream VMs of local VM `vm` now: from the hook when its socket is configured
    /// (the ranks the VM's rank waited on, mapped to VMs by `rank`), else the configuration.
    fn upstreams_of(&self, vm: u32, now_s: f64) -> Vec<u32> {
        match &self.hook {
            Some(h) => {
                let rank = self.cfg.vms[vm as usize].rank;
                h.upstreams
                    .upstreams(h.job, rank, now_s)
                    .into_iter()
                    .filter_map(|r| self.ranks.get(&r).copied())
                    .filter(|&u| u != vm)
                    .collect()
            }
            None => self.upstreams[vm as usize].clone(),
        }
    }

    /// Sends one datagram, after recording the ledger (the write-ahead rule: the directory
    /// holds every state a datagram reflects before it leaves). When the record fails nothing
    /// is sent: open offers go out again at the next retransmission, replies when the sender
    /// asks again.
    fn send_to(&mut self, host: u16, body: Body) -> bool {
        let Some(addr) = self.addrs.get(host as usize).copied().flatten() else {
            return false;
        };
        if !self.persist() {
            return false;
        }
        let low_open = self.ledger.lock().low_open();
        let e = Envelope {
            from_host: self.me,
            cluster: self.cluster,
            low_open,
            body,
        };
        if let Err(e) = self.sock.send_to(&e.encode(), addr) {
            tracing::debug!(%addr, error = %e, "dps send failed; the transfer stays open and is sent again");
            false
        } else {
            self.metrics
                .add("vibrad_dps_datagrams_sent_total", &[], 1.0);
            true
        }
    }

    /// Delivers `(destination, body)` pairs: to other hosts over the socket, to this host
    /// through the ledger at once (and its replies likewise).
    /// Returns how many offers left for other hosts.
    fn dispatch(&mut self, mut out: Vec<(u16, Body)>) -> usize {
        let mut remote = Vec::new();
        while let Some((to, body)) = out.pop() {
            if to != self.me {
                remote.push((to, body));
                continue;
            }
            let low = self.ledger.lock().low_open();
            match self.ledger.lock().receive(self.me, low, body) {
                Ok(Some(reply)) => out.push((self.me, reply)),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "dps: local delivery refused"),
            }
        }
        let mut offers = 0;
        for (to, body) in remote {
            if self.crashed {
                break;
            }
            if self.send_to(to, body) && matches!(body, Body::Transfer(Message::Offer { .. })) {
                offers += 1;
                self.crash_point(CrashPoint::OfferSent);
            }
        }
        offers
    }

    /// One period: liveness and CPU use of the local VMs, this period's transfers (and the
    /// bank's round on the bank host), and the weights.
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let mut role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// role.tick()?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn tick(&mut self) -> Result<()> {
        if self.crashed || self.owner_lost {
            return Ok(());
        }
        // A dry run works on the ledger and puts it back afterwards.
        let saved = self.dry_run.then(|| self.ledger.lock().clone());
        let now_s = monotonic_s();
        if let Some(h) = &mut self.hook {
            let ups = &mut h.upstreams;
            match h.listener.drain(|r| ups.ingest(r)) {
                Ok(d) => {
                    self.metrics
                        .add("vibrad_dps_hook_records_total", &[], d.accepted as f64);
                    if d.rejected > 0 {
                        tracing::warn!(rejected = d.rejected, last = ?h.listener.last_rejection(), "dps: bad hook records");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "dps: hook socket read failed"),
            }
            ups.expire(now_s);
        }
        let now = Instant::now();
        let local: Vec<(VmId, f64)> = self.ledger.lock().local_vms().collect();
        let mut util = BTreeMap::new();
        let mut exited = Vec::new();
        let mut running = Vec::new();
        for (vm, _) in &local {
            let name = self.names[vm.0 as usize].clone();
            match self.host.running(&name) {
                Ok(true) => {
                    running.push(*vm);
                    self.seen.insert(vm.0);
                }
                Ok(false) => {
                    if self.seen.contains(&vm.0) {
                        exited.push(*vm);
                    }
                    self.last.remove(&vm.0);
                    self.measured.remove(&vm.0);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(vm = name, error = %e, "dps: liveness check failed");
                    continue;
                }
            }
            let used = match self.host.usage(&name) {
                Ok(u) => u.cpu_time,
                Err(e) => {
                    tracing::warn!(vm = name, error = %e, "dps: usage read failed");
                    continue;
                }
            };
            if let Some((then, before)) = self.last.insert(vm.0, (now, used)) {
                let dt = now.duration_since(then).as_secs_f64().max(1e-3);
                util.insert(vm.0, used.saturating_sub(before).as_secs_f64() / dt);
                *self.measured.entry(vm.0).or_default() += 1;
            }
        }
        let mut out: Vec<(u16, Body)> = Vec::new();
        {
            let mut l = self.ledger.lock();
            let bank = l.layout().bank_host;
            let vm_host = l.layout().vm_host.clone();
            for vm in &running {
                if !l.alive(*vm) {
                    tracing::info!(vm = self.names[vm.0 as usize], "dps: VM runs again");
                }
                l.set_alive(*vm, true);
            }
            for vm in &exited {
                if l.alive(*vm) {
                    tracing::warn!(
                        vm = self.names[vm.0 as usize],
                        "dps: VM exited; returning its share"
                    );
                }
                l.set_alive(*vm, false);
                let w = l.share(*vm).unwrap_or(0.0);
                if w < MIN_TRANSFER {
                    continue;
                }
                // A VM that exits returns its share: to the bank, or split among the others.
                let to: Vec<Party> = match bank {
                    Some(_) => vec![Party::Bank(PROGRAM)],
                    None => (0..vm_host.len() as u32)
                        .filter(|&v| v != vm.0)
                        .map(|v| Party::Vm(VmId(v)))
                        .collect(),
                };
                let each = w / to.len().max(1) as f64;
                for p in to {
                    if let Ok(m) = l.send(Party::Vm(*vm), p, each) {
                        out.push((dest(&vm_host, bank, p), m.into()));
                    }
                }
            }
            // The min_share safeguard: excess and offers are computed against the larger of
            // the use and the floor, so no VM gives its share away below the floor.
            let floor = self.cfg.min_share * l.layout().total / vm_host.len().max(1) as f64;
            for (&v, &u) in &util {
                let vm = VmId(v);
                let w = l.share(vm).unwrap_or(0.0);
                let u_kept = kept_use(w, u, floor, self.cfg.min_excess);
                // Start-up is not excess: the first measured period gives nothing away.
                let settled = self.measured.get(&v).copied().unwrap_or(0) > STARTUP_PERIODS;
                match bank {
                    None => {
                        let ups = self.upstreams_of(v, now_s);
                        let p = ups.len() as u32;
                        let wh = self
                            .cfg
                            .withhold
                            .unwrap_or_else(|| dps_core::default_withhold(p));
                        let s = dps_core::offer(w, u_kept, wh, p).map_err(dps_err)?;
                        self.metrics.set(
                            "vibrad_dps_upstreams",
                            &[("vm", &self.names[v as usize])],
                            f64::from(p),
                        );
                        if settled && s >= MIN_TRANSFER {
                            for j in ups {
                                let to = Party::Vm(VmId(j));
                                if let Ok(m) = l.send(Party::Vm(vm), to, s) {
                                    out.push((vm_host[j as usize], m.into()));
                                }
                            }
                        }
                    }
                    Some(bh) => {
                        let e = dps_core::excess(w, u_kept).map_err(dps_err)?;
                        if settled && e >= MIN_TRANSFER {
                            if let Ok(m) = l.send(Party::Vm(vm), Party::Bank(PROGRAM), e) {
                                out.push((bh, m.into()));
                            }
                        }
                        let w = l.share(vm).unwrap_or(0.0);
                        let room = l.room();
                        let f = dps_core::shortage(w, u, room).map_err(dps_err)?;
                        out.push((
                            bh,
                            Body::Report {
                                vm,
                                share: w,
                                shortage: f,
                                room,
                            },
                        ));
                    }
                }
                self.metrics.set(
                    "vibrad_dps_utilization_cpus",
                    &[("vm", &self.names[v as usize])],
                    u,
                );
            }
        }
        if let Some(saved) = saved {
            let r = self.print_plan(out);
            *self.ledger.lock() = saved;
            return r;
        }
        // The bank's round sees this host's own deposits and reports of this period.
        let _ = self.dispatch(out);
        if self.ledger.lock().layout().bank_host == Some(self.me) && !self.crashed {
            let grants = self
                .ledger
                .lock()
                .bank_round(MIN_TRANSFER)
                .map_err(dps_err)?;
            let sent = self.dispatch(grants.into_iter().map(|(h, m)| (h, m.into())).collect());
            if sent > 0 {
                self.crash_point(CrashPoint::GrantsSent);
            }
        }
        self.apply();
        self.metrics.add("vibrad_dps_periods_total", &[], 1.0);
        Ok(())
    }

    /// Dry run: prints this period's transfers (and on the bank's host its round) and the CPU
    /// settings; the caller puts the ledger back as it was.
    fn print_plan(&mut self, out: Vec<(u16, Body)>) -> Result<()> {
        let hosts = self.cfg.hosts();
        let name = |p: Party| match p {
            Party::Vm(v) => self.names[v.0 as usize].clone(),
            Party::Bank(_) => "bank".into(),
        };
        let mut lines = Vec::new();
        for (to, body) in &out {
            let host = hosts.get(usize::from(*to)).cloned().unwrap_or_default();
            match body {
                Body::Transfer(Message::Offer {
                    from, to, amount, ..
                }) => lines.push(format!(
                    "dry-run dps {}: {} -> {} ({host}): {amount:.6} CPUs",
                    self.base.host,
                    name(*from),
                    name(*to)
                )),
                Body::Report {
                    vm,
                    share,
                    shortage,
                    room,
                } => lines.push(format!(
                    "dry-run dps {}: report {} to the bank ({host}): share {share:.6}, shortage {shortage:.6}, room {room:.6}",
                    self.base.host,
                    name(Party::Vm(*vm))
                )),
                Body::Transfer(_) => {}
            }
        }
        let mut l = self.ledger.lock();
        for (to, body) in out {
            if to == self.me {
                let low = l.low_open();
                let _ = l.receive(self.me, low, body);
            }
        }
        if l.layout().bank_host == Some(self.me) {
            for (h, m) in l.bank_round(MIN_TRANSFER).map_err(dps_err)? {
                if let Message::Offer { to, amount, .. } = m {
                    lines.push(format!(
                        "dry-run dps {}: bank -> {}: {amount:.6} CPUs",
                        self.base.host,
                        name(to)
                    ));
                }
                if h == self.me {
                    let low = l.low_open();
                    if let Ok(Some(reply)) = l.receive(self.me, low, m.into()) {
                        let _ = l.receive(self.me, low, reply);
                    }
                }
            }
        }
        for (vm, w) in l.local_vms() {
            let setting = cpu_setting(w, self.cfg.cpus, self.cfg.cap)?;
            lines.push(format!(
                "dry-run dps {}: {} weight {} cap {:?} (share {w:.6})",
                self.base.host,
                name(Party::Vm(vm)),
                setting.weight.get(),
                setting.cap.map(|c| c.percent())
            ));
        }
        drop(l);
        for line in lines {
            println!("{line}");
        }
        self.metrics.add("vibrad_dps_periods_total", &[], 1.0);
        Ok(())
    }

    /// Sends every open offer again.
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let mut role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// role.retransmit();
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn retransmit(&mut self) {
        let again = self.ledger.lock().retransmissions();
        self.metrics
            .add("vibrad_dps_retransmissions_total", &[], again.len() as f64);
        let _ = self.dispatch(again.into_iter().map(|(h, m)| (h, m.into())).collect());
    }

    /// Handles one datagram from `src`: refused with a logged reason (and a count in
    /// `vibrad_dps_bad_messages_total`) when it does not decode, comes from another cluster,
    /// from an unknown host or from an address that is not that host's, or when the ledger
    /// refuses it; nothing changes then. Returns whether it was accepted.
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let mut role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// assert!(!role.handle(b"junk", "127.0.0.1:7702".parse().unwrap()));
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn handle(&mut self, bytes: &[u8], src: SocketAddr) -> bool {
        let bad = |reason: &str, detail: String| {
            tracing::warn!(%src, reason, detail, "dps: datagram refused; nothing changed");
            self.metrics
                .add("vibrad_dps_bad_messages_total", &[("reason", reason)], 1.0);
            false
        };
        let e = match Envelope::decode(bytes) {
            Ok(e) => e,
            Err(err) => return bad("decode", err.to_string()),
        };
        if e.cluster != self.cluster {
            return bad(
                "cluster",
                format!("fingerprint {:x}, ours {:x}", e.cluster, self.cluster),
            );
        }
        if e.from_host == self.me {
            return bad("host", "claims to come from this host".into());
        }
        match self.addrs.get(e.from_host as usize).copied().flatten() {
            None => return bad("host", format!("unknown host index {}", e.from_host)),
            Some(a) if a != src => {
                return bad(
                    "source",
                    format!("host {} is at {a}, not {src}", e.from_host),
                );
            }
            Some(_) => {}
        }
        if self.crashed || self.owner_lost {
            return false;
        }
        if self.dry_run {
            // Decided on a copy: a dry run changes nothing and answers nothing.
            let r = self
                .ledger
                .lock()
                .clone()
                .receive(e.from_host, e.low_open, e.body);
            tracing::info!(?e.body, would_reply = ?r, "dps dry-run: datagram not answered");
            return r.is_ok();
        }
        let r = self.ledger.lock().receive(e.from_host, e.low_open, e.body);
        match r {
            Ok(reply) => {
                if let Body::Transfer(m) = e.body {
                    let kind = match m {
                        Message::Offer { .. } => "offer",
                        Message::Accept { .. } => "accept",
                        Message::Reject { .. } => "reject",
                        Message::AcceptPart { .. } => "accept_part",
                    };
                    self.metrics
                        .add("vibrad_dps_received_total", &[("kind", kind)], 1.0);
                }
                if let Body::Transfer(m) = e.body
                    && !matches!(m, Message::Offer { .. })
                {
                    self.crash_point(CrashPoint::ReplyReceived);
                }
                if let Some(reply) = reply
                    && self.send_to(e.from_host, reply)
                {
                    let accepted = matches!(
                        reply,
                        Body::Transfer(Message::Accept { .. } | Message::AcceptPart { .. })
                    );
                    if accepted {
                        self.crash_point(CrashPoint::OfferAccepted);
                    }
                }
                true
            }
            Err(err) => bad("ledger", err.to_string()),
        }
    }

    /// Receives and handles datagrams for up to `wait`; returns how many were accepted.
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let mut role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// role.poll(std::time::Duration::from_millis(10));
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn poll(&mut self, wait: Duration) -> usize {
        if self.crashed || self.owner_lost {
            std::thread::sleep(wait);
            return 0;
        }
        let until = Instant::now() + wait;
        let mut n = 0;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if self.recv_one(left) == Some(true) {
                n += 1;
            }
            if self.crashed || self.owner_lost {
                return n;
            }
        }
        if n > 0 {
            self.apply();
        }
        n
    }

    /// Waits up to `wait` for one datagram and handles it (without writing weights): `None`
    /// when none came, else whether it was accepted.
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let mut role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// assert_eq!(role.recv_one(std::time::Duration::from_millis(1)), None);
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn recv_one(&mut self, wait: Duration) -> Option<bool> {
        let mut buf = [0u8; MAX_LEN + 1];
        if self
            .sock
            .set_read_timeout(Some(wait.max(Duration::from_micros(1))))
            .is_err()
        {
            return None;
        }
        match self.sock.recv_from(&mut buf) {
            Ok((len, src)) => Some(self.handle(&buf[..len], src)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "dps: receive failed");
                std::thread::sleep(wait.min(Duration::from_millis(10)));
                None
            }
        }
    }

    /// Writes every local VM's share as its CPU setting (unchanged settings are skipped by
    /// the controller); a controller error on one VM is logged and counted, the others go on.
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let mut role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// role.apply();
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn apply(&mut self) {
        let (local, balance, room, open): (Vec<(VmId, f64, bool)>, f64, f64, usize) = {
            let l = self.ledger.lock();
            (
                l.local_vms().map(|(v, w)| (v, w, l.alive(v))).collect(),
                l.balance(),
                l.room(),
                l.open().count(),
            )
        };
        if self.crashed || self.dry_run {
            return;
        }
        for (vm, w, alive) in local {
            let name = self.names[vm.0 as usize].clone();
            self.metrics
                .set("vibrad_dps_share_cpus", &[("vm", &name)], w);
            if !alive {
                continue;
            }
            let setting = match cpu_setting(w, self.cfg.cpus, self.cfg.cap) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(vm = name, error = %e, "dps: no CPU setting for share {w}");
                    continue;
                }
            };
            match self.host.set_cpu(&name, setting) {
                Ok(_) => self.metrics.set(
                    "vibrad_dps_weight",
                    &[("vm", &name)],
                    f64::from(setting.weight.get()),
                ),
                Err(e) => {
                    tracing::warn!(vm = name, error = %e, "dps: CPU setting failed; retried");
                    self.metrics
                        .add("vibrad_apply_errors_total", &[("vm", &name)], 1.0);
                }
            }
        }
        self.metrics
            .set("vibrad_dps_bank_balance_cpus", &[], balance);
        self.metrics.set("vibrad_dps_room_cpus", &[], room);
        self.metrics
            .set("vibrad_dps_open_transfers", &[], open as f64);
    }

    /// Runs until `signals.stop`: a period every T, open offers again every T / 5, datagrams
    /// handled in between. Stops between steps, never inside one.
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let mut role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// role.run(&vibrad::daemon::Signals::default())?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn run(&mut self, signals: &Signals) -> Result<()> {
        let mut next = Instant::now();
        let mut next_resend = Instant::now();
        while !signals.stop.load(Ordering::SeqCst) {
            if signals.reload.swap(false, Ordering::SeqCst) {
                self.reload();
            }
            if self.crashed {
                tracing::warn!("dps: halted at a crash point");
                return Ok(());
            }
            if self.owner_lost {
                return Err(Error::Directory {
                    key: self.dir.key_dps(self.cluster, &self.base.host),
                    message: "written by another daemon of this host; stopped".into(),
                });
            }
            let period = self.cfg.period;
            let resend = (period / 5).max(Duration::from_millis(20));
            let now = Instant::now();
            if now >= next {
                next += period;
                if next < now {
                    next = now + period;
                }
                if let Err(e) = self.tick() {
                    tracing::error!(error = %e, "dps: period failed; next period retries");
                }
            }
            if now >= next_resend {
                next_resend = now + resend;
                self.retransmit();
            }
            let wait = next
                .min(next_resend)
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(200));
            self.poll(wait.max(Duration::from_millis(1)));
        }
        // A clean stop records the ledger as it is (a restart then reopens nothing closed).
        self.persist();
        tracing::info!("dps: stopping");
        Ok(())
    }

    /// SIGHUP: re-reads the configuration file. `period_s`, `withhold`, `cap`, `acceptance`,
    /// `cpus`, `background` and the VMs' `upstreams` change in place (shares, open transfers
    /// and decisions stay); anything else (host, directory, the layout: VMs, ranks, W, mode,
    /// bank, addresses, hook, metrics, cgroup parent) is refused, as is a file with errors,
    /// and the old configuration kept.
    fn reload(&mut self) {
        let Some(path) = self.config_path.clone() else {
            tracing::warn!("dps: SIGHUP without a configuration file; ignored");
            return;
        };
        match Config::load(&path).and_then(|new| self.reconfigure(new)) {
            Ok(()) => tracing::info!("dps: configuration reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "dps: reload refused; keeping the old configuration")
            }
        }
    }

    /// Applies a new configuration as SIGHUP does (see `reload`): refused with the reason
    /// (nothing changed) when it changes more than the tunables.
    ///
    /// ```no_run
    /// # use vibrad::config::{Config, MINIMAL_DPS};
    /// # let cfg = Config::parse(MINIMAL_DPS).unwrap();
    /// let mut role = vibrad::dps::DpsRole::new(&cfg, vibrad::dps::linux_host(&cfg)?)?;
    /// role.reconfigure(Config::parse(&MINIMAL_DPS.replace("total = 0.4", "total = 0.5")).unwrap())
    ///     .unwrap_err(); // W is part of the layout
    /// role.reconfigure(Config::parse(&MINIMAL_DPS.replace("cpus = 1.0", "cpus = 2.0")).unwrap())?;
    /// # Ok::<(), vibrad::Error>(())
    /// ```
    pub fn reconfigure(&mut self, new: Config) -> Result<()> {
        let refuse = |what: &str| {
            Err(Error::Directory {
                key: what.to_string(),
                message: "changed; restart vibrad for that".into(),
            })
        };
        let Some(d) = new.dps.clone() else {
            return refuse("dps");
        };
        let mut same = d.clone();
        same.period = self.cfg.period;
        same.withhold = self.cfg.withhold;
        same.min_share = self.cfg.min_share;
        same.min_excess = self.cfg.min_excess;
        same.capped_grants = self.cfg.capped_grants;
        same.cap = self.cfg.cap;
        same.acceptance = self.cfg.acceptance;
        same.cpus = self.cfg.cpus;
        same.background = self.cfg.background;
        if same.vms.len() == self.cfg.vms.len() {
            for (n, o) in same.vms.iter_mut().zip(&self.cfg.vms) {
                n.upstreams.clone_from(&o.upstreams);
            }
        }
        if same != self.cfg {
            return refuse("dps (layout, addresses or hook)");
        }
        let mut rest = new.clone();
        rest.dps = self.base.dps.clone();
        if rest != self.base {
            return refuse("host, directory, metrics or linux");
        }
        let names = &self.names;
        let id_of = |n: &str| names.iter().position(|x| x == n).unwrap_or(0) as u32;
        self.upstreams = d
            .vms
            .iter()
            .map(|v| v.upstreams.iter().map(|u| id_of(u)).collect())
            .collect();
        {
            let mut l = self.ledger.lock();
            l.set_capacity(d.cpus, d.background, d.acceptance);
            l.set_capped_grants(d.capped_grants);
        }
        self.cfg = d;
        self.base = new;
        Ok(())
    }
}

/// The use a VM's excess and offers are computed against (SPEC 6's `u`, with vibrad's two
/// safeguards): at least the `floor` (`min_share` x W / N), and the whole share `w` when what
/// would be left over is below `min_excess` x `w` (the noise of one period's measurement).
///
/// ```
/// use vibrad::dps::kept_use;
/// assert_eq!(kept_use(0.2, 0.05, 0.0, 0.0), 0.05); // the plain formulas
/// assert_eq!(kept_use(0.2, 0.05, 0.1, 0.0), 0.1); // the floor
/// assert_eq!(kept_use(0.2, 0.19, 0.0, 0.1), 0.2); // 5% below the share: noise, kept
/// assert_eq!(kept_use(0.2, 0.15, 0.0, 0.1), 0.15); // 25% below: excess
/// ```
#[must_use]
pub fn kept_use(w: f64, u: f64, floor: f64, min_excess: f64) -> f64 {
    let u = u.max(floor);
    if w - u < min_excess * w { w.max(u) } else { u }
}

fn dest(vm_host: &[u16], bank: Option<u16>, p: Party) -> u16 {
    match p {
        Party::Vm(v) => vm_host[v.0 as usize],
        Party::Bank(_) => bank.unwrap_or(0),
    }
}

fn dps_err(e: dps_core::DpsError) -> Error {
    Error::Dps(e)
}
