//! vibrad's Xen backend (feature `xen`) against a real Xen 4.17, run inside Domain-0 by
//! `.ci/xen.sh` (integration/vibrad/xen-ci/dom0-vibrad.sh) with two PV guests that script
//! creates (`on_crash = "preserve"`, 128 MiB, maxmem 256 MiB), each running guest-init.sh's
//! default load: a CPU burner that stops when Domain-0 connects to the guest's TCP port 5002, and
//! a paced UDP stream to Domain-0. The vibrad binary built with `--features xen` runs:
//!
//! 1. the dps role, two daemons on loopback (hosts `xa` and `xb`, one guest each, `cap = true`):
//!    the idle guest's excess moves to the busy one, and the credit weight and cap Xen holds for
//!    each domain (read back through libxenctrl) are the ones the daemons' shares give;
//! 2. the agent role on both guests (egress, memory and CPU of one customer): Xen's vif rate,
//!    memory target and credit weight equal the granted units;
//! 3. a failure: the second guest is destroyed (`xl destroy`): vibrad marks it failed and its
//!    share goes to the first (compensation read back from Xen).
//!
//! Environment: `VIBRAD_BIN` (the vibrad binary; default: the one cargo built beside this test),
//! `VIBRA_XEN_GUESTS` (`busy,idle` domain names, default `vd-a,vd-b`), `VIBRA_XEN_IDLE_IP` (the
//! idle guest's address, default `10.99.0.12`), `VIBRA_REQUIRE_XEN=1` (a skip is a failure).
//! Each step prints `VIBRAD-XEN STEP <name>: ok ...`, or panics with
//! `VIBRAD-XEN STEP <name> FAILED: ...`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vibra_host::{DomId, DomainState, HostController, UnitSize, VmAllocation, XenHost};

fn on_xen_dom0() -> bool {
    std::fs::read_to_string("/proc/xen/capabilities").is_ok_and(|c| c.contains("control_d"))
}

fn vibrad_bin() -> PathBuf {
    std::env::var_os("VIBRAD_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_vibrad")),
        PathBuf::from,
    )
}

/// Runs one named step; a failure panics with the step's name so CI can say which one failed.
fn step<T>(name: &str, f: impl FnOnce() -> Result<(T, String), String>) -> T {
    match f() {
        Ok((v, detail)) => {
            println!("VIBRAD-XEN STEP {name}: ok {detail}");
            v
        }
        Err(e) => panic!("VIBRAD-XEN STEP {name} FAILED: {e}"),
    }
}

/// How long a condition may take under QEMU TCG on a loaded machine before it counts as never.
const PATIENCE: Duration = Duration::from_secs(120);

/// Polls `f` every 250 ms until it returns `Ok`, or returns its last error after `PATIENCE`.
fn until<T>(mut f: impl FnMut() -> Result<T, String>) -> Result<(T, Duration), String> {
    let t0 = Instant::now();
    loop {
        match f() {
            Ok(v) => return Ok((v, t0.elapsed())),
            Err(e) if t0.elapsed() > PATIENCE => return Err(format!("after {PATIENCE:?}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// A scrape of a vibrad metrics endpoint: `name{labels}` -> value.
type Scrape = BTreeMap<String, f64>;

fn scrape(port: u16) -> Result<Scrape, String> {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port))
        .map_err(|e| format!("metrics 127.0.0.1:{port}: {e}"))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    c.read_to_string(&mut body).map_err(|e| e.to_string())?;
    Ok(body
        .lines()
        .filter(|l| l.starts_with("vibrad_"))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect())
}

fn metric(s: &Scrape, key: &str) -> Result<f64, String> {
    s.get(key)
        .copied()
        .ok_or_else(|| format!("no metric {key}"))
}

/// vibrad processes started by this test, stopped (SIGTERM, then SIGKILL) on every exit path,
/// and the test's temporary directory, removed with them.
struct Daemons {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Daemons {
    fn new() -> Daemons {
        let dir = std::env::temp_dir().join(format!("vibrad-xen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Daemons {
            dir,
            children: Vec::new(),
        }
    }

    /// Starts `vibrad --config <name>.toml` with `config`, its stderr in `<name>.log`.
    fn start(&mut self, name: &str, config: &str) -> Result<(), String> {
        let cfg = self.dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, config).map_err(|e| e.to_string())?;
        let check = Command::new(vibrad_bin())
            .arg("check-config")
            .arg(&cfg)
            .output()
            .map_err(|e| format!("{}: {e}", vibrad_bin().display()))?;
        if !check.status.success() {
            return Err(format!(
                "check-config {name}: {}",
                String::from_utf8_lossy(&check.stderr)
            ));
        }
        let log = std::fs::File::create(self.log_path(name)).map_err(|e| e.to_string())?;
        let child = Command::new(vibrad_bin())
            .arg("--config")
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", vibrad_bin().display()))?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// SIGTERM to `name`; its exit status must be 0 within `PATIENCE`.
    fn stop(&mut self, name: &str) -> Result<String, String> {
        let i = self
            .children
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| format!("no daemon {name}"))?;
        let (_, mut child) = self.children.remove(i);
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                return if st.success() {
                    Ok(format!("{name} stopped on SIGTERM in {:?}", t0.elapsed()))
                } else {
                    Err(format!("{name} exited with {st}: {}", self.log(name)))
                };
            }
            if t0.elapsed() > PATIENCE {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name} ignored SIGTERM: {}", self.log(name)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The logs of every daemon started, for a failure's message.
    fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "log") {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(30).collect();
                    out.push_str(&format!("----- {}\n", e.path().display()));
                    for l in tail.into_iter().rev() {
                        out.push_str(l);
                        out.push('\n');
                    }
                }
            }
        }
        out
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        std::thread::sleep(Duration::from_millis(500));
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Ports for this process's daemons (UDP for the dps role, TCP for the metrics).
fn port(pid: u32, k: u32) -> u16 {
    20000 + ((pid * 8 + k) % 40000) as u16
}

fn dps_config(me: &str, pid: u32, busy: &str, idle: &str) -> String {
    let (listen, peer, other) = if me == "xa" {
        (port(pid, 0), port(pid, 1), "xb")
    } else {
        (port(pid, 1), port(pid, 0), "xa")
    };
    let metrics = if me == "xa" {
        port(pid, 2)
    } else {
        port(pid, 3)
    };
    format!(
        "host = \"{me}\"\nroles = [\"dps\"]\nbackend = \"xen\"\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\
         [dps]\nperiod_s = 1\nlisten = \"127.0.0.1:{listen}\"\ntotal = 2.0\ncpus = 2.0\ncap = true\n\
         [dps.peers]\n{other} = \"127.0.0.1:{peer}\"\n\
         [[dps.vm]]\nname = \"{busy}\"\nhost = \"xa\"\n\
         [[dps.vm]]\nname = \"{idle}\"\nhost = \"xb\"\nupstreams = [\"{busy}\"]\n"
    )
}

const BW_POOL: u64 = 400_000;
const BW_UNIT: u64 = 1000;
const MEM_POOL: u64 = 256 << 20;
const MEM_UNIT: u64 = 1 << 20;
const CPU_POOL: u64 = 10_000;
const CPU_PER_SHARE: u64 = 10_000;

fn agent_config(pid: u32, busy: &str, idle: &str) -> String {
    let mut s = format!(
        "host = \"dom0\"\nbackend = \"xen\"\n[agent]\nperiod_s = 1\n\
         [metrics]\nlisten = \"127.0.0.1:{}\"\n\
         [[customer]]\nname = \"xc\"\nreplication = 1\n\
         [customer.bandwidth]\npool_bytes_per_s = {BW_POOL}\nfloor_bytes_per_s = 50_000\nunit_bytes_per_s = {BW_UNIT}\n\
         [customer.memory]\npool_bytes = {MEM_POOL}\nfloor_bytes = {}\nunit_bytes = {MEM_UNIT}\n\
         [customer.cpu]\npool_units = {CPU_POOL}\nfloor_units = 1000\nunits_per_share = {CPU_PER_SHARE}\n",
        port(pid, 4),
        96 << 20,
    );
    for vm in [busy, idle] {
        s.push_str(&format!(
            "[[vm]]\nname = \"{vm}\"\ncustomer = \"xc\"\nhost = \"dom0\"\n"
        ));
    }
    s
}

/// The settings Xen holds for `dom`, as a `VmAllocation` (egress, memory target, CPU).
fn read_back(xen: &XenHost, dom: DomId) -> Result<VmAllocation, String> {
    Ok(VmAllocation {
        cpu: Some(xen.cpu(&dom).map_err(|e| e.to_string())?),
        memory: xen.memory_target(&dom).map_err(|e| e.to_string())?,
        egress: xen.egress_limit(&dom).map_err(|e| e.to_string())?,
    })
}

/// What the agent's grant of `units` per kind means on the host (vibra-host's own conversion).
fn expected(bw: u64, mem: u64, cpu: u64) -> Result<VmAllocation, String> {
    let e = |r: Result<VmAllocation, vibra_host::Error>| r.map_err(|e| e.to_string());
    let b = e(UnitSize::bandwidth_bytes_per_sec(BW_UNIT as f64).and_then(|u| u.allocation(bw)))?;
    let m = e(UnitSize::memory_bytes(MEM_UNIT).and_then(|u| u.allocation(mem)))?;
    let c = e(UnitSize::cpu_units_per_share(CPU_PER_SHARE).and_then(|u| u.allocation(cpu)))?;
    Ok(VmAllocation {
        cpu: c.cpu,
        memory: m.memory,
        egress: b.egress,
    })
}

/// The agent's grant to `vm` per kind (bandwidth, memory, cpu units) in a scrape.
fn grant(s: &Scrape, vm: &str) -> Result<(u64, u64, u64), String> {
    let g = |kind: &str| {
        metric(
            s,
            &format!("vibrad_allocation_units{{customer=\"xc\",kind=\"{kind}\",vm=\"{vm}\"}}"),
        )
        .map(|v| v as u64)
    };
    Ok((g("bandwidth")?, g("memory")?, g("cpu")?))
}

fn xl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("xl")
        .args(args)
        .output()
        .map_err(|e| format!("xl {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "xl {args:?}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn without_xen_vibrad_stops_with_a_typed_error() {
    if on_xen_dom0() {
        eprintln!("SKIPPED without_xen_vibrad_stops_with_a_typed_error: this is a Xen Domain-0");
        return;
    }
    let mut d = Daemons::new();
    let pid = std::process::id();
    for (name, cfg) in [
        ("agent", agent_config(pid, "vd-a", "vd-b")),
        ("xa", dps_config("xa", pid, "vd-a", "vd-b")),
    ] {
        // check-config accepts the file (it reads no Xen state) ...
        d.start(name, &cfg).expect("start");
        // ... and the daemon stops with Xen's typed error, not a panic (exit status 1, not 101).
        let (_, mut child) = d.children.pop().expect("child");
        let st = child.wait().expect("wait");
        let log = d.log(name);
        assert_eq!(st.code(), Some(1), "{name}: {st}: {log}");
        assert!(
            log.contains("Xen is not available") || log.contains("xc_interface_open"),
            "{name}: no Xen error in: {log}"
        );
        assert!(!log.contains("panicked"), "{name}: {log}");
    }
}

#[test]
fn xen_backend_runs_the_dps_and_agent_roles_on_real_domains() {
    if !on_xen_dom0() {
        let why = "not running in a Xen Domain-0 (/proc/xen/capabilities lacks control_d)";
        assert!(
            std::env::var("VIBRA_REQUIRE_XEN").as_deref() != Ok("1"),
            "{why}, but VIBRA_REQUIRE_XEN=1"
        );
        eprintln!("SKIPPED xen_backend_runs_the_dps_and_agent_roles_on_real_domains: {why}");
        return;
    }
    let guests = std::env::var("VIBRA_XEN_GUESTS").unwrap_or_else(|_| "vd-a,vd-b".to_string());
    let (busy, idle) = guests
        .split_once(',')
        .expect("VIBRA_XEN_GUESTS is busy,idle");
    let idle_ip = std::env::var("VIBRA_XEN_IDLE_IP").unwrap_or_else(|_| "10.99.0.12".to_string());
    let pid = std::process::id();
    let mut d = Daemons::new();

    let xen = step("open", || {
        XenHost::open()
            .map(|x| (x, String::new()))
            .map_err(|e| e.to_string())
    });
    let (dom_busy, dom_idle) = step("domains", || {
        let a = xen.find_domain(busy).map_err(|e| e.to_string())?;
        let b = xen.find_domain(idle).map_err(|e| e.to_string())?;
        Ok(((a, b), format!("{busy} = {a}, {idle} = {b}")))
    });
    step("idle guest", || {
        // guest-init.sh's burner stops when Domain-0 connects to its port 5002.
        let (_, t) = until(|| {
            std::net::TcpStream::connect_timeout(
                &format!("{idle_ip}:5002")
                    .parse()
                    .map_err(|e| format!("{e}"))?,
                Duration::from_secs(5),
            )
            .map_err(|e| format!("{idle_ip}:5002: {e}"))
        })?;
        Ok(((), format!("{idle}'s CPU burner stopped ({t:?})")))
    });

    // 1. The dps role: two daemons, one exchange at least, weights read back from Xen.
    step("dps start", || {
        d.start("xa", &dps_config("xa", pid, busy, idle))?;
        d.start("xb", &dps_config("xb", pid, busy, idle))?;
        Ok((
            (),
            format!(
                "hosts xa ({busy}) and xb ({idle}), W = 2.0 CPUs, 2 CPUs per host, T = 1 s, cap = true"
            ),
        ))
    });
    step("dps exchange read back from Xen", || {
        let share =
            |s: &Scrape, vm: &str| metric(s, &format!("vibrad_dps_share_cpus{{vm=\"{vm}\"}}"));
        let ((sa, sb, xa_set, xb_set), t) = until(|| {
            let a1 = scrape(port(pid, 2))?;
            let b1 = scrape(port(pid, 3))?;
            let (sa, sb) = (share(&a1, busy)?, share(&b1, idle)?);
            let open = metric(&a1, "vibrad_dps_open_transfers")?
                + metric(&b1, "vibrad_dps_open_transfers")?;
            let got_a = xen.cpu(&dom_busy).map_err(|e| e.to_string())?;
            let got_b = xen.cpu(&dom_idle).map_err(|e| e.to_string())?;
            let a2 = scrape(port(pid, 2))?;
            let b2 = scrape(port(pid, 3))?;
            if (share(&a2, busy)?, share(&b2, idle)?) != (sa, sb) {
                return Err("shares moved during the read".into());
            }
            if sa <= 1.0 + 0.01 {
                return Err(format!("no exchange yet: {busy} {sa}, {idle} {sb}"));
            }
            if open != 0.0 || (sa + sb - 2.0).abs() > 1e-9 {
                return Err(format!(
                    "transfers open ({open}) or shares {sa} + {sb} != W"
                ));
            }
            let want_a = vibrad::dps::cpu_setting(sa, 2.0, true).map_err(|e| e.to_string())?;
            let want_b = vibrad::dps::cpu_setting(sb, 2.0, true).map_err(|e| e.to_string())?;
            if got_a != want_a || got_b != want_b {
                return Err(format!(
                    "Xen holds {got_a:?} / {got_b:?}, shares {sa} / {sb} give {want_a:?} / {want_b:?}"
                ));
            }
            Ok((sa, sb, got_a, got_b))
        })?;
        let cap = |s: vibra_host::CpuSetting| s.cap.map_or(0, |c| c.percent());
        let detail = format!(
            "after {t:?}: {busy} share {sa:.4} -> credit weight {} cap {}%, {idle} share {sb:.4} -> weight {} cap {}% (xl sched-credit below)",
            xa_set.weight.get(),
            cap(xa_set),
            xb_set.weight.get(),
            cap(xb_set)
        );
        Ok(((), detail))
    });
    if let Ok(out) = xl(&["sched-credit"]) {
        println!("{out}");
    }
    step("dps stop", || {
        let a = d.stop("xa")?;
        let b = d.stop("xb")?;
        Ok(((), format!("{a}; {b}")))
    });

    // 2. The agent role: the grants for egress, memory and CPU, read back from Xen.
    step("agent start", || {
        d.start("agent", &agent_config(pid, busy, idle))?;
        Ok((
            (),
            format!("one customer, VMs {busy} and {idle}, period 1 s"),
        ))
    });
    step("agent grants read back from Xen", || {
        let ((ga, gb), t) = until(|| {
            let s1 = scrape(port(pid, 4))?;
            let (ga, gb) = (grant(&s1, busy)?, grant(&s1, idle)?);
            let got_a = read_back(&xen, dom_busy)?;
            let got_b = read_back(&xen, dom_idle)?;
            let s2 = scrape(port(pid, 4))?;
            if (grant(&s2, busy)?, grant(&s2, idle)?) != (ga, gb) {
                return Err("grants moved during the read".into());
            }
            if ga.2 <= gb.2 {
                return Err(format!(
                    "CPU not by demand yet: {busy} {} <= {idle} {}",
                    ga.2, gb.2
                ));
            }
            let (want_a, want_b) = (expected(ga.0, ga.1, ga.2)?, expected(gb.0, gb.1, gb.2)?);
            if got_a != want_a || got_b != want_b {
                return Err(format!(
                    "Xen holds {got_a:?} / {got_b:?}, grants {ga:?} / {gb:?} give {want_a:?} / {want_b:?}"
                ));
            }
            Ok((ga, gb))
        })?;
        Ok((
            (),
            format!(
                "after {t:?}: (bandwidth kB/s, memory MiB, cpu units) {busy} {ga:?}, {idle} {gb:?}: vif rate, memory target and credit weight equal"
            ),
        ))
    });

    // 3. A destroyed domain: noticed, its share compensated to the other.
    step("destroy", || {
        xl(&["destroy", idle])?;
        let (st, t) = until(
            || match xen.domain_state(dom_idle).map_err(|e| e.to_string())? {
                DomainState::Gone => Ok(DomainState::Gone),
                s => Err(format!("{idle} is {s}")),
            },
        )?;
        Ok((
            (),
            format!("{idle} is {st} {t:?} after `xl destroy {idle}`"),
        ))
    });
    step("agent notices the failure and compensates", || {
        let failed_key = format!("vibrad_vm_failures_total{{vm=\"{idle}\"}}");
        let (_, t) = until(|| {
            let s = scrape(port(pid, 4))?;
            if metric(&s, &failed_key)? < 1.0 {
                return Err(format!("{failed_key} not set"));
            }
            if !d
                .log("agent")
                .lines()
                .any(|l| l.contains("VM failed") && l.contains(idle) && l.contains("gone"))
            {
                return Err("no \"VM failed ... gone\" line in the log".into());
            }
            let full = expected(BW_POOL / BW_UNIT, MEM_POOL / MEM_UNIT, CPU_POOL)?;
            let got = read_back(&xen, dom_busy)?;
            if got != full {
                return Err(format!("{busy} holds {got:?}, the whole pool is {full:?}"));
            }
            Ok(())
        })?;
        Ok((
            (),
            format!(
                "{t:?} after the destroy: {idle} failed (Xen domain gone), {busy} holds the whole pool in Xen"
            ),
        ))
    });
    step("agent stop", || Ok(((), d.stop("agent")?)));
    let _ = xl(&["destroy", busy]);
}
