//! Three `vibrad` processes on one machine, each in its own network namespace joined to the
//! root namespace (where etcd listens) by a veth, each with two VMs as cgroups + network namespaces through
//! vibra-host's Linux backend, sending real UDP traffic, against a real three-member etcd
//! cluster started here.
//! Needs root, `ip` and `etcd`: skips loudly without them (CI forbids the skip).
//!
//! Shown: the grant follows a demand shift within two periods (alpha = 0 here, so the
//! estimate is the last period's usage) and the kernel's measured egress follows the grant;
//! killing a VM's processes gives its share to the next R = 2 VMs (SPEC 4) within one period,
//! applied on their hosts; losing one etcd member of three, and then restarting the whole etcd
//! cluster, loses no allocation and no host's lease while the daemons keep running; no version
//! of the granted or applied records exceeds the pool (faults included); SIGHUP reloads; a
//! host killed with its VMs is compensated once its lease lapses; SIGTERM stops every daemon cleanly and removes its VMs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vibra_alloc::ResourceKind;
use vibrad::directory::{Directory, Record, Units};

use common::{Cluster, skip};

const TEST: &str = "three_vibrad_hosts_follow_demand_and_compensate_a_failed_vm";
const POOL: u64 = 3_000_000; // bytes/s for the customer
const PERIOD: f64 = 1.0;

/// Run by `sh -c` inside the host's network namespace and a new mount namespace: a sysfs of
/// this network namespace on /sys, the cgroup mounts kept, then vibrad (`$0`) with the rest.
const ENTER_HOST: &str = "d=$(mktemp -d) && mount --rbind /sys/fs/cgroup \"$d\" && \
    mount -t sysfs sysfs /sys && mount --move \"$d\" /sys/fs/cgroup && rmdir \"$d\" && \
    exec \"$0\" \"$@\"";

/// The processes of a VM, from its cgroup (its namespace is only visible to its host's
/// mount namespace).
fn vm_pids(pid: u32, host: &str, vm: &str) -> Vec<String> {
    let dir = format!("/sys/fs/cgroup/memory/vibrad-t{pid}-{host}/{vm}/cgroup.procs");
    let unified = format!("/sys/fs/cgroup/vibrad-t{pid}-{host}/{vm}/cgroup.procs");
    std::fs::read_to_string(&dir)
        .or_else(|_| std::fs::read_to_string(&unified))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// vibra-host's traffic source, built beside this test (`cargo test --workspace` builds it;
/// `.ci/vibrad.sh` builds it first). Not built from here: a nested cargo would wait forever
/// for the build directory lock the running `cargo test` holds.
fn load_binary() -> Option<PathBuf> {
    // target/<profile>/deps/multihost-<hash> -> target/<profile>/vibra-host-load
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("vibra-host-load");
    bin.exists().then_some(bin)
}

struct Daemons {
    children: Vec<Child>,
    dir: PathBuf,
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .stderr(Stdio::null())
                .status();
        }
        for c in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn metrics_port(pid: u32) -> u16 {
    20000 + ((pid * 8 + 6) % 40000) as u16
}

/// h1's Prometheus text (its endpoint listens inside h1's namespace, reached over the veth).
fn metrics_body(ip: std::net::Ipv4Addr, pid: u32) -> String {
    use std::io::{Read, Write};
    let mut body = String::new();
    let mut c = std::net::TcpStream::connect((ip, metrics_port(pid))).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    c.read_to_string(&mut body).unwrap();
    body
}

/// The value of an unlabelled metric in Prometheus text (0 when absent).
fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn config(
    host: &str,
    pid: u32,
    endpoints: &[String],
    load: &Path,
    metrics_ip: std::net::Ipv4Addr,
) -> String {
    let endpoints = endpoints
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let net = 100 + pid % 100;
    let metrics = if host == "h1" {
        format!(
            "[metrics]\nlisten = \"{metrics_ip}:{}\"\n",
            metrics_port(pid)
        )
    } else {
        String::new()
    };
    let mut s = format!(
        "host = \"{host}\"\n[agent]\nperiod_s = {PERIOD}\nalpha = 0.0\n\
         [directory]\nbackend = \"etcd\"\nendpoints = [{endpoints}]\nprefix = \"/mh{pid}\"\nlease_ttl_s = 3\n\
         [linux]\ncgroup_parent = \"vibrad-t{pid}-{host}\"\n\
         [[customer]]\nname = \"acme\"\nreplication = 2\n[customer.bandwidth]\n\
         pool_bytes_per_s = {POOL}\nfloor_bytes_per_s = 50_000\nunit_bytes_per_s = 1000\n"
    );
    s = s.replacen("[agent]", &format!("{metrics}[agent]"), 1);
    let load = load.display();
    for i in 0..6u32 {
        let h = format!("h{}", i / 2 + 1);
        let target = format!("10.{net}.{}.1:9", i * 4);
        // VM 0 is busy for the first 10 s, then quiet; VM 3 the other way round.
        let (first, then) = match i {
            0 => (2_500_000, 30_000),
            3 => (30_000, 2_500_000),
            _ => (30_000, 30_000),
        };
        s += &format!(
            "[[vm]]\nname = \"{}\"\ncustomer = \"acme\"\nhost = \"{h}\"\nhost_ip = \"10.{net}.{}.1\"\nvm_ip = \"10.{net}.{}.2\"\n\
             command = [\"sh\", \"-c\", \"{load} udp-send {target} 10 {first}; {load} udp-send {target} 600 {then}\"]\n",
            vm(pid, i),
            i * 4,
            i * 4
        );
    }
    s
}

fn vm(pid: u32, i: u32) -> String {
    format!("m{pid}v{i}")
}

fn granted(dir: &Directory) -> Units {
    dir.read(Record::Granted, "acme", &ResourceKind::Bandwidth)
        .map(|v| v.value)
        .unwrap_or_default()
}

fn applied(dir: &Directory) -> Units {
    dir.read(Record::Applied, "acme", &ResourceKind::Bandwidth)
        .map(|v| v.value)
        .unwrap_or_default()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    t.elapsed()
}

/// The host end's received bytes of a VM's link, read inside its host's namespace.
fn rx_bytes(host_ns: &str, vm: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", host_ns, "cat"])
        .arg(format!("/sys/class/net/{vm}h/statistics/rx_bytes"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// One network namespace per host, joined to the root namespace by a veth
/// (root end 10.252.x.(4k+1), host end 10.252.x.(4k+2)); removed on drop.
struct HostNets {
    names: Vec<String>,
    roots: Vec<std::net::Ipv4Addr>,
    inners: Vec<std::net::Ipv4Addr>,
}

impl HostNets {
    fn new(pid: u32, n: u32) -> HostNets {
        let third = (pid % 250) as u8;
        let mut nets = HostNets {
            names: Vec::new(),
            roots: Vec::new(),
            inners: Vec::new(),
        };
        for k in 0..n {
            let ns = format!("mh{pid}h{}", k + 1);
            let root_if = format!("mh{}r{}", pid % 100_000, k + 1);
            let root = std::net::Ipv4Addr::new(10, 252, third, (4 * k + 1) as u8);
            let inner = std::net::Ipv4Addr::new(10, 252, third, (4 * k + 2) as u8);
            nets.names.push(ns.clone());
            let run = |args: &[&str]| {
                let st = Command::new("ip").args(args).status().unwrap();
                assert!(st.success(), "ip {args:?}");
            };
            run(&["netns", "add", &ns]);
            run(&[
                "link", "add", &root_if, "type", "veth", "peer", "name", "up0", "netns", &ns,
            ]);
            run(&["addr", "add", &format!("{root}/30"), "dev", &root_if]);
            run(&["link", "set", &root_if, "up"]);
            run(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{inner}/30"),
                "dev",
                "up0",
            ]);
            run(&["-n", &ns, "link", "set", "up0", "up"]);
            run(&["-n", &ns, "link", "set", "lo", "up"]);
            nets.roots.push(root);
            nets.inners.push(inner);
        }
        nets
    }
}

impl Drop for HostNets {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and so the pair.
        for ns in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn three_vibrad_hosts_follow_demand_and_compensate_a_failed_vm() {
    if unsafe_free_uid() != 0 {
        skip(TEST, "needs root (cgroups, network namespaces, tc)");
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        skip(TEST, "no ip (iproute2)");
        return;
    }
    let Some(load) = load_binary() else {
        skip(
            TEST,
            "no vibra-host-load beside the test (cargo build -p vibra-host --bin vibra-host-load)",
        );
        return;
    };
    let pid = std::process::id();
    let nets = HostNets::new(pid, 3);
    // Three etcd members (the fault phase loses one, then restarts all three).
    let Some(mut etcd) = Cluster::start_on(TEST, 3, &nets.roots) else {
        return;
    };
    let tmp = std::env::temp_dir().join(format!("vibrad-mh-{pid}"));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut daemons = Daemons {
        children: Vec::new(),
        dir: tmp.clone(),
    };
    for (k, h) in ["h1", "h2", "h3"].into_iter().enumerate() {
        let file = tmp.join(format!("{h}.toml"));
        // Each host reaches the etcd members over its own veth, at the root end's address.
        let urls = etcd.urls_on(nets.roots[k]);
        std::fs::write(&file, config(h, pid, &urls, &load, nets.inners[k])).unwrap();
        let log = std::fs::File::create(tmp.join(format!("{h}.log"))).unwrap();
        daemons.children.push(
            // vibrad joins its host's network namespace (nsenter) in a mount namespace of its
            // own where /sys is the namespace's sysfs (so the host ends of its VMs' links are
            // visible) with the cgroup hierarchies moved over it (`ip netns exec` would remount
            // /sys and lose them). Every step execs: the child's pid is vibrad's (signals).
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", nets.names[k]))
                .args([
                    "unshare",
                    "-m",
                    "--propagation",
                    "slave",
                    "sh",
                    "-c",
                    ENTER_HOST,
                ])
                .arg(env!("CARGO_BIN_EXE_vibrad"))
                .arg("--config")
                .arg(&file)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    let dir = Directory::new(Arc::new(etcd.kv()), &format!("/mh{pid}"));
    let show_logs = |tmp: &Path| {
        for h in ["h1", "h2", "h3"] {
            eprintln!(
                "--- {h}.log\n{}",
                std::fs::read_to_string(tmp.join(format!("{h}.log"))).unwrap_or_default()
            );
        }
    };
    let guard = scopeguard(|| show_logs(&tmp));
    let mut vm_started = Vec::new();
    for (host, i) in [("h1", 0), ("h2", 3)] {
        wait_for("a VM's command started", Duration::from_secs(15), || {
            !vm_pids(pid, host, &vm(pid, i)).is_empty()
        });
        vm_started.push(Instant::now());
    }
    wait_for("three hosts registered", Duration::from_secs(15), || {
        dir.live_hosts().map(|h| h.len() == 3).unwrap_or(false)
    });
    let (v0, v3, v4, v5) = (vm(pid, 0), vm(pid, 3), vm(pid, 4), vm(pid, 5));
    // Phase 1: VM 0 is the busy one.
    let t = wait_for(
        "VM 0 gets the largest grant",
        Duration::from_secs(8),
        || {
            let g = granted(&dir);
            g.get(&v0)
                .is_some_and(|&a| g.values().all(|&b| b <= a) && a * 1000 > POOL / 2)
        },
    );
    eprintln!("VM 0 led the grant {t:?} after registration");
    // Phase 2: at ~10 s after start, demand moves from VM 0 to VM 3.
    // Each VM's command switches 10 s after it started; VMs 0 and 3 started when their
    // cgroups first held a process (seen below, right after the daemons were spawned).
    let shift_at = vm_started.iter().max().copied().unwrap() + Duration::from_secs(10);
    std::thread::sleep(shift_at.saturating_duration_since(Instant::now()));
    let limit = Duration::from_secs_f64(2.0 * PERIOD + 1.0);
    let took = wait_for("grant follows the shift within two periods", limit, || {
        let g = granted(&dir);
        g.get(&v3).is_some_and(|&a| g.values().all(|&b| b <= a))
    });
    eprintln!("grant followed the demand shift in {took:?} (limit {limit:?})");
    // The kernel follows: VM 3's host applies its grant, and its measured egress is within it.
    wait_for("VM 3's grant applied", Duration::from_secs(3), || {
        let g = granted(&dir);
        let a = applied(&dir);
        g.contains_key(&v3) && g.get(&v3) == a.get(&v3)
    });
    let g3 = granted(&dir)[&v3] * 1000;
    let r0 = rx_bytes(&nets.names[1], &v3);
    std::thread::sleep(Duration::from_secs(1));
    let rate = (rx_bytes(&nets.names[1], &v3) - r0) as f64;
    let g3_now = granted(&dir)[&v3] * 1000;
    eprintln!("VM 3: granted {g3} -> {g3_now} B/s, measured {rate:.0} B/s at the host end");
    assert!(
        rate <= 1.25 * g3.max(g3_now) as f64,
        "egress {rate} over the grant {g3}/{g3_now}"
    );
    assert!(
        rate >= 0.3 * g3.min(g3_now) as f64,
        "egress {rate} far below the grant {g3}/{g3_now}"
    );
    // Phase 3: kill VM 4's processes; its share goes to VMs 5 and 0 within one period.
    let before = granted(&dir);
    let pids = vm_pids(pid, "h3", &v4);
    assert!(!pids.is_empty(), "VM 4 runs nothing?");
    let killed = Instant::now();
    for p in &pids {
        let _ = Command::new("kill").args(["-KILL", p]).status();
    }
    let limit = Duration::from_secs_f64(PERIOD + 1.0);
    let took = wait_for("VM 4's share compensated within one period", limit, || {
        granted(&dir).get(&v4) == Some(&0)
    });
    eprintln!("compensation granted {took:?} after the kill (limit {limit:?})");
    let history = dir
        .history(Record::Granted, "acme", &ResourceKind::Bandwidth)
        .unwrap();
    let first = history.iter().position(|g| g.get(&v4) == Some(&0)).unwrap();
    let (prev, comp) = (&history[first - 1], &history[first]);
    let share = prev[&v4];
    assert!(share >= before[&v4].min(share), "share seen");
    for (vmn, units) in comp {
        let was = prev[vmn];
        if *vmn == v5 || *vmn == v0 {
            assert!(
                units - was >= share / 2,
                "{vmn}: {was} -> {units}, share {share}"
            );
        } else if *vmn != v4 {
            assert_eq!(*units, was, "{vmn} is not among the next R = 2 VMs");
        }
    }
    // The takers' hosts (h3 for VM 5, h1 for VM 0) apply what is granted (the compensation,
    // or the re-division that may already follow it) once VM 4's host recorded it at 0.
    wait_for(
        "compensation applied on the takers' hosts",
        Duration::from_secs_f64(PERIOD + 1.0),
        || {
            let a = applied(&dir);
            let g = granted(&dir);
            a.get(&v4) == Some(&0) && a.get(&v5) == g.get(&v5) && a.get(&v0) == g.get(&v0)
        },
    );
    eprintln!("compensation applied {:?} after the kill", killed.elapsed());
    // Phase 4: etcd faults under the running daemons. First one member of three is lost (the
    // first endpoint every client tries), then the whole cluster restarts. Neither loses an
    // allocation or a host's lease, and the daemons keep running their periods.
    let periods = || metric(&metrics_body(nets.inners[0], pid), "vibrad_periods_total");
    let all_granted = |what: &str| {
        let g = granted(&dir);
        assert_eq!(
            g.values().sum::<u64>() * 1000,
            POOL,
            "{what}: share lost: {g:?}"
        );
        for (v, u) in &g {
            assert!(
                *v == v4 || *u > 0,
                "{what}: live {v} lost its allocation: {g:?}"
            );
        }
        assert_eq!(
            dir.live_hosts().unwrap().len(),
            3,
            "{what}: a host's lease lapsed"
        );
    };
    let p0 = periods();
    etcd.kill_member(0);
    std::thread::sleep(Duration::from_secs_f64(3.0 * PERIOD + 0.5));
    all_granted("one etcd member of three down");
    let p1 = periods();
    assert!(
        p1 >= p0 + 2.0,
        "periods stalled with two of three members: {p0} -> {p1}"
    );
    eprintln!(
        "one member of three down: {} periods ran, nothing lost",
        p1 - p0
    );
    for i in 0..3 {
        etcd.kill_member(i);
    }
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..3 {
        etcd.start_member(i);
    }
    let back = etcd.wait_ready(Duration::from_secs(20));
    let p2 = periods();
    std::thread::sleep(Duration::from_secs_f64(3.0 * PERIOD + 0.5));
    all_granted("after the whole etcd cluster restarted");
    let p3 = periods();
    assert!(
        p3 >= p2 + 2.0,
        "periods stalled after etcd came back: {p2} -> {p3}"
    );
    wait_for(
        "hosts apply what is granted after the restart",
        Duration::from_secs(3),
        || {
            let g = granted(&dir);
            let a = applied(&dir);
            g.iter().all(|(v, u)| a.get(v) == Some(u))
        },
    );
    eprintln!(
        "whole etcd cluster down 2 s, back {back:?} later: nothing lost, {} periods ran",
        p3 - p2
    );
    // The bound held in every version of both records.
    for which in [Record::Granted, Record::Applied] {
        let h = dir
            .history(which, "acme", &ResourceKind::Bandwidth)
            .unwrap();
        assert!(h.len() > 3);
        for m in &h {
            let s: u64 = m.values().sum();
            assert!(s * 1000 <= POOL, "{which:?} over the pool: {m:?}");
        }
        eprintln!("{which:?}: {} versions, all within the pool", h.len());
    }
    // The Prometheus endpoint (h1) shows allocations, plan sizes and latency.
    let body = metrics_body(nets.inners[0], pid);
    for want in [
        "HTTP/1.1 200 OK",
        "vibrad_periods_total",
        "vibrad_directory_latency_seconds{op=\"keepalive\"}",
        "vibrad_apply_writes_total",
    ] {
        assert!(body.contains(want), "metrics lack {want}: {body}");
    }
    // SIGHUP reloads (alpha changed on h1), a broken file is refused and the old one kept.
    let h1 = tmp.join("h1.toml");
    let text = std::fs::read_to_string(&h1).unwrap();
    std::fs::write(&h1, text.replace("alpha = 0.0", "alpha = 0.5")).unwrap();
    Command::new("kill")
        .args(["-HUP", &daemons.children[0].id().to_string()])
        .status()
        .unwrap();
    wait_for("reload logged", Duration::from_secs(5), || {
        std::fs::read_to_string(tmp.join("h1.log"))
            .unwrap_or_default()
            .contains("configuration reloaded")
    });
    std::fs::write(&h1, text.replace("alpha = 0.0", "alpha = 7")).unwrap();
    Command::new("kill")
        .args(["-HUP", &daemons.children[0].id().to_string()])
        .status()
        .unwrap();
    wait_for("bad reload refused", Duration::from_secs(5), || {
        std::fs::read_to_string(tmp.join("h1.log"))
            .unwrap_or_default()
            .contains("reload refused")
    });
    // Host h2 dies with its VMs (SIGKILL: no clean-up, its lease lapses after 3 s): its VMs'
    // shares are compensated on the others once the lease is gone.
    let (v2, v3) = (vm(pid, 2), vm(pid, 3));
    let mut h2 = daemons.children.remove(1);
    h2.kill().unwrap();
    h2.wait().unwrap();
    let killed = Instant::now();
    for v in [&v2, &v3] {
        for p in &vm_pids(pid, "h2", v) {
            let _ = Command::new("kill").args(["-KILL", p]).status();
        }
    }
    let h2_leftovers = Leftovers {
        pid,
        host: "h2",
        vms: vec![v2.clone(), v3.clone()],
    };
    wait_for(
        "the dead host's VMs compensated (lease TTL 3 s + a period)",
        Duration::from_secs(8),
        || {
            let g = granted(&dir);
            g.get(&v2) == Some(&0) && g.get(&v3) == Some(&0)
        },
    );
    eprintln!(
        "dead host's VMs compensated {:?} after the kill",
        killed.elapsed()
    );
    wait_for("the others apply it", Duration::from_secs(4), || {
        let g = granted(&dir);
        let a = applied(&dir);
        g.iter()
            .all(|(v, u)| *v == v2 || *v == v3 || *v == v4 || a.get(v) == Some(u))
    });
    let g = granted(&dir);
    assert_eq!(g.values().sum::<u64>() * 1000, POOL, "no share lost: {g:?}");
    // SIGTERM: every daemon stops after its period, exits 0 and removes its VMs.
    for c in &daemons.children {
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
    }
    for c in &mut daemons.children {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                assert!(st.success(), "vibrad exited with {st}");
                break;
            }
            assert!(Instant::now() < deadline, "vibrad did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    drop(h2_leftovers);
    // Their VMs' cgroups are gone (the VMs' namespaces lived in the daemons' own mount
    // namespaces, which ended with them; the hosts' namespaces go with `nets`).
    for h in ["h1", "h3"] {
        let left: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .map(|d| d.path().join(format!("vibrad-t{pid}-{h}")))
            .filter(|p| p.exists())
            .collect();
        assert!(left.is_empty(), "cgroups left: {left:?}");
    }
    std::mem::forget(guard);
}

/// What a SIGKILLed vibrad leaves behind (its VMs' namespaces and cgroups), removed on drop.
struct Leftovers {
    pid: u32,
    host: &'static str,
    vms: Vec<String>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for v in &self.vms {
            let _ = Command::new("ip")
                .args(["netns", "del", v])
                .stderr(Stdio::null())
                .status();
        }
        let parent = format!("vibrad-t{}-{}", self.pid, self.host);
        if let Ok(hier) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hier.flatten() {
                let p = h.path().join(&parent);
                for v in &self.vms {
                    let _ = std::fs::remove_dir(p.join(v));
                }
                let _ = std::fs::remove_dir(&p);
            }
        }
    }
}

/// The effective uid without unsafe code: `/proc/self/status`'s `Uid:` line.
fn unsafe_free_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).and_then(|u| u.parse().ok()))
        })
        .unwrap_or(u32::MAX)
}

/// Runs `f` on drop unless forgotten (prints the daemons' logs when an assertion fails).
struct Guard<F: FnMut()>(F);
impl<F: FnMut()> Drop for Guard<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}
fn scopeguard<F: FnMut()>(f: F) -> Guard<F> {
    Guard(f)
}
