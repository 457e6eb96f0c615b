//! The Linux backend against the real kernel: real cgroups, network namespaces, veth pairs and
//! tc qdiscs, with real load (CPU burners, a UDP source).
//!
//! These need root and a cgroup hierarchy with cpu, cpuacct and memory. Without them each test
//! prints `SKIPPED <test>: <why>` and passes, unless `VIBRA_REQUIRE_PRIVILEGED=1` (set by CI),
//! which turns the skip into a failure. Names carry the prefix `vh` and this process's PID;
//! everything is removed by Drop guards, also when an assertion fails.

use std::io::Write;
use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vibra_alloc::{Change, Plan, VmId, split_units};
use vibra_host::{
    ApplyAllocationPlan, Bandwidth, CpuCap, CpuSetting, CpuWeight, Error, HostController,
    LinkAddrs, LinuxHost, MemoryTarget, Operation, Outcome, UnitSize, VmAllocation, VmSpec,
    plan_allocations,
};

const LOAD: &str = env!("CARGO_BIN_EXE_vibra-host-load");

/// Returns a fresh host for `test`, or `None` (after saying why) when the machine cannot run it.
fn host_or_skip(test: &str) -> Option<LinuxHost> {
    let require = std::env::var("VIBRA_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1");
    let skip = |why: String| -> Option<LinuxHost> {
        assert!(
            !require,
            "{test}: cannot run ({why}) but VIBRA_REQUIRE_PRIVILEGED=1 demands it"
        );
        eprintln!("SKIPPED {test}: {why}");
        None
    };
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|r| r.split_whitespace().nth(1).unwrap_or("").to_string())
            })
        });
    if euid.as_deref() != Some("0") {
        return skip(format!(
            "needs root for cgroups, network namespaces and tc (effective uid {euid:?})"
        ));
    }
    match LinuxHost::new(&format!("vibra-host-test-{}-{test}", std::process::id())) {
        Ok(h) => Some(h),
        Err(e) => skip(format!("no usable cgroups on this host: {e}")),
    }
}

/// A VM name unique to this process: `vh<pid><tag>`.
fn name(tag: &str) -> String {
    format!("vh{}{tag}", std::process::id())
}

/// A /30 link for test number `k`, in 10.213.0.0/16 (only our own namespaces use it).
fn link(k: u8) -> LinkAddrs {
    let third = (std::process::id() % 250) as u8;
    LinkAddrs::new(
        Ipv4Addr::new(10, 213, third, 4 * k + 1),
        Ipv4Addr::new(10, 213, third, 4 * k + 2),
        30,
    )
    .unwrap()
}

/// Kills and reaps a child when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first CPU this process may run on (burners are pinned to it, so two burners split one
/// CPU by their weights whatever else the machine runs).
fn first_cpu() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string();
    list.split([',', '-']).next().unwrap().to_string()
}

/// A CPU burner pinned to `cpu`. It spins until the test kills it (at most 10 minutes), so a
/// measurement that takes long on a busy machine never outlives it.
fn burner(cpu: &str) -> Reaped {
    Reaped(
        Command::new("taskset")
            .args(["-c", cpu, LOAD, "burn", "600"])
            .spawn()
            .expect("spawn taskset burner"),
    )
}

/// How long a measurement may take to reach its quota of CPU time or bytes before the test
/// gives up. The checks never depend on how long a measurement took (a busy machine only makes
/// it take longer); reaching this means the load never ran or the kernel never did what the
/// measurement waits for (for example, never throttled a capped group).
const STALL: Duration = Duration::from_secs(150);

/// CPU time used by each VM (the kernel's cgroup accounting) from now until together they used
/// at least `min_total`, however long that takes on a busy machine (up to [`STALL`]).
fn cpu_deltas(host: &LinuxHost, vms: &[&String], min_total: Duration) -> Vec<Duration> {
    let read = || -> Vec<Duration> {
        vms.iter()
            .map(|v| host.usage(v).unwrap().cpu_time)
            .collect()
    };
    let start = read();
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let deltas: Vec<Duration> = read()
            .iter()
            .zip(&start)
            .map(|(n, s)| n.saturating_sub(*s))
            .collect();
        let total: Duration = deltas.iter().sum();
        if total >= min_total {
            return deltas;
        }
        assert!(
            t0.elapsed() < STALL,
            "the burners used only {total:?} of CPU in {STALL:?} (wanted {min_total:?}): were they ever runnable?"
        );
    }
}

#[test]
fn cpu_split_between_pinned_burners_follows_weights() {
    let Some(mut host) = host_or_skip("cpu_split") else {
        return;
    };
    let (a, b) = (
        host.create_vm(&VmSpec::new(&name("ca")).unwrap()).unwrap(),
        host.create_vm(&VmSpec::new(&name("cb")).unwrap()).unwrap(),
    );
    let wa = CpuSetting {
        weight: CpuWeight::new(256).unwrap(),
        cap: None,
    };
    let wb = CpuSetting {
        weight: CpuWeight::new(768).unwrap(),
        cap: None,
    };
    host.set_cpu(&a, wa).unwrap();
    host.set_cpu(&b, wb).unwrap();
    assert_eq!(host.cpu(&a).unwrap(), wa);
    assert_eq!(host.cpu(&b).unwrap(), wb);
    let cpu = first_cpu();
    let ba = burner(&cpu);
    let bb = burner(&cpu);
    host.attach(&a, ba.0.id()).unwrap();
    host.attach(&b, bb.0.id()).unwrap();
    // Both burners are pinned to one CPU and never sleep, so whenever their parent group gets
    // that CPU, CFS divides it between the two cgroups by weight; other load on the CPU changes
    // how much the pair gets, not how the pair divides it. The split is measured in the
    // kernel's CPU-time accounting of both cgroups, after a warm-up and until the pair used 3 s
    // of CPU (not over a wall-clock window), so a busy machine only makes it take longer.
    cpu_deltas(&host, &[&a, &b], Duration::from_millis(300));
    let d = cpu_deltas(&host, &[&a, &b], Duration::from_secs(3));
    let ratio = d[1].as_secs_f64() / d[0].as_secs_f64().max(1e-9);
    eprintln!(
        "cpu_split: a={:?} b={:?} ratio b/a={ratio:.3} (weights 256:768, expected 3.0 +/- 20%)",
        d[0], d[1]
    );
    assert!(
        d[0] > Duration::from_millis(100),
        "burner a barely ran: {:?}",
        d[0]
    );
    assert!(
        (2.4..=3.6).contains(&ratio),
        "CPU split b/a = {ratio:.3}, expected 3.0 +/- 20%"
    );
}

/// CFS bandwidth-control counters of a VM's CPU cgroup, from its `cpu.stat` (cgroup v1 reports
/// `throttled_time` in ns, v2 `throttled_usec`).
#[derive(Clone, Copy, Debug)]
struct Throttling {
    nr_periods: u64,
    nr_throttled: u64,
    throttled: Duration,
}

fn throttling(test: &str, vm: &str) -> Throttling {
    let stat = cgroup_dirs(test, vm)
        .into_iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cpu.stat")).ok())
        .find(|s| s.contains("nr_throttled"))
        .unwrap_or_else(|| panic!("no cpu.stat with nr_throttled for {vm}"));
    let field = |k: &str| -> Option<u64> {
        stat.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(' ')?.trim().parse().ok())
    };
    Throttling {
        nr_periods: field("nr_periods").unwrap(),
        nr_throttled: field("nr_throttled").unwrap(),
        throttled: field("throttled_time")
            .map(Duration::from_nanos)
            .or_else(|| field("throttled_usec").map(Duration::from_micros))
            .unwrap(),
    }
}

#[test]
fn cpu_cap_bounds_a_burner() {
    let Some(mut host) = host_or_skip("cpu_cap") else {
        return;
    };
    let vm = host.create_vm(&VmSpec::new(&name("cc")).unwrap()).unwrap();
    let setting = CpuSetting {
        weight: CpuWeight::DEFAULT,
        cap: Some(CpuCap::new(20).unwrap()),
    };
    host.set_cpu(&vm, setting).unwrap();
    assert_eq!(host.cpu(&vm).unwrap(), setting);
    let cpu = first_cpu();
    let b = burner(&cpu);
    host.attach(&vm, b.0.id()).unwrap();
    cpu_deltas(&host, &[&vm], Duration::from_millis(50));
    // Measured until the group used 0.6 s of CPU and the kernel throttled it at least 5 times.
    // Other load can only lower the burner's use, so the upper bound (the kernel enforces it:
    // at most one quota per 100 ms period) holds on any machine; the throttle count is what
    // tells the cap apart from contention: an uncapped group is never throttled.
    let t0 = Instant::now();
    let s0 = throttling("cpu_cap", &vm);
    let u0 = host.usage(&vm).unwrap().cpu_time;
    let (used, s1) = loop {
        std::thread::sleep(Duration::from_millis(200));
        let used = host.usage(&vm).unwrap().cpu_time - u0;
        let s1 = throttling("cpu_cap", &vm);
        let wall = t0.elapsed();
        assert!(
            used.as_secs_f64() <= 0.2 * wall.as_secs_f64() + 0.1,
            "cap exceeded: used {used:?} in {wall:?}"
        );
        if used >= Duration::from_millis(600) && s1.nr_throttled >= s0.nr_throttled + 5 {
            break (used, s1);
        }
        assert!(
            t0.elapsed() < STALL,
            "after {STALL:?} the capped burner used {used:?} and was throttled {} times (want 600 ms and 5): cap not enforced?",
            s1.nr_throttled - s0.nr_throttled
        );
    };
    let wall = t0.elapsed();
    let frac = used.as_secs_f64() / wall.as_secs_f64();
    let throttled = s1.throttled.saturating_sub(s0.throttled);
    eprintln!(
        "cpu_cap: used {used:?} in {wall:?} = {:.1}% (cap 20%, allowed up to 20% + 100 ms); {} periods, throttled in {} for {throttled:?}",
        frac * 100.0,
        s1.nr_periods - s0.nr_periods,
        s1.nr_throttled - s0.nr_throttled,
    );
    assert!(
        used.as_secs_f64() <= 0.2 * wall.as_secs_f64() + 0.1,
        "cap exceeded: {:.1}%",
        frac * 100.0
    );
    assert!(
        throttled > Duration::ZERO,
        "throttled {} times for no time at all",
        s1.nr_throttled - s0.nr_throttled
    );
    // Removing the cap reads back as None.
    host.set_cpu(
        &vm,
        CpuSetting {
            weight: CpuWeight::DEFAULT,
            cap: None,
        },
    )
    .unwrap();
    assert_eq!(host.cpu(&vm).unwrap().cap, None);
}

/// Bytes on the wire per datagram of `vibra-host-load udp-send`: 1400 of payload, 8 of UDP
/// header, 20 of IPv4 header, 14 of Ethernet header (what tbf and the veth counters count).
const WIRE_BYTES: u64 = 1442;

/// Datagrams the sender's network namespace handed to IP (sent, plus dropped by a full qdisc,
/// which UDP counts as `SndbufErrors`): the offered load, in the kernel's own accounting.
fn udp_offered(pid: u32) -> u64 {
    let snmp = std::fs::read_to_string(format!("/proc/{pid}/net/snmp")).unwrap();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter(|(n, _)| *n == "OutDatagrams" || *n == "SndbufErrors")
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .sum()
}

/// (CPU time, run-queue wait, timeslices) of `pid`, from `/proc/<pid>/schedstat`.
fn schedstat(pid: u32) -> (Duration, Duration, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .expect("/proc/<pid>/schedstat (CONFIG_SCHED_INFO) is needed to account for starvation");
    let f: Vec<u64> = text
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    (Duration::from_nanos(f[0]), Duration::from_nanos(f[1]), f[2])
}

/// One egress measurement, all in kernel counters except the two wall-clock spans.
#[derive(Debug)]
struct EgressWindow {
    /// Bytes received by the host end of the veth (what left the VM through the shaper).
    delivered: u64,
    /// Bytes the sender offered (datagrams handed to IP x [`WIRE_BYTES`]).
    offered: u64,
    /// Wall time spanning all the counter reads (for upper bounds).
    outer: Duration,
    /// Wall time between the first and the last reads (for lower bounds).
    inner: Duration,
    /// Time the sender waited for a CPU during the window.
    sender_wait: Duration,
}

/// The most tbf at `limit` lets through in `wall`: rate x time plus one full bucket (5% and
/// two datagrams for counting).
fn egress_most(limit: Bandwidth, wall: Duration) -> f64 {
    1.05 * limit.bytes_per_sec() as f64 * wall.as_secs_f64()
        + limit.tbf_burst_bytes() as f64
        + 2.0 * WIRE_BYTES as f64
}

/// Measures the VM's egress until the host received `quota` bytes and the sender had offered
/// at least 1.5 times what was delivered (so the shaper, not the sender, set the rate), however
/// long that takes on a busy machine (up to [`STALL`]). Checks at every sample that no more
/// than [`egress_most`] got through.
fn measure_egress(
    host: &LinuxHost,
    vm: &String,
    sender: u32,
    limit: Bandwidth,
    quota: u64,
) -> EgressWindow {
    let t0a = Instant::now();
    let d0 = host.usage(vm).unwrap().egress_bytes;
    let o0 = udp_offered(sender);
    let (_, w0, _) = schedstat(sender);
    let t0b = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let t1a = Instant::now();
        let (_, _, slices) = schedstat(sender);
        let delivered = host.usage(vm).unwrap().egress_bytes - d0;
        let offered = (udp_offered(sender) - o0) * WIRE_BYTES;
        let most = egress_most(limit, t0a.elapsed());
        assert!(
            delivered as f64 <= most,
            "delivered {delivered} B in {:?} through a limit of {} B/s (at most {most:.0} B)",
            t0a.elapsed(),
            limit.bytes_per_sec()
        );
        if delivered >= quota && 2 * offered >= 3 * delivered {
            // A wait still in progress at t1a is only counted once the sender runs again:
            // wait for that (this may count a little wait after t1a, which loosens the bound).
            let sender_wait = loop {
                let (_, w1, s) = schedstat(sender);
                if s > slices {
                    break w1 - w0;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            return EgressWindow {
                delivered,
                offered,
                outer: t0a.elapsed(),
                inner: t1a - t0b,
                sender_wait,
            };
        }
        assert!(
            t0a.elapsed() < STALL,
            "after {STALL:?}: delivered {delivered} B (want {quota}), offered {offered} B (want 1.5x delivered): is the shaper in place and the sender running?"
        );
    }
}

#[test]
fn egress_rate_measured_at_host_follows_tc_limit() {
    let Some(mut host) = host_or_skip("egress") else {
        return;
    };
    let addrs = link(1);
    let vm = host
        .create_vm(&VmSpec::new(&name("eg")).unwrap().with_link(addrs))
        .unwrap();
    assert_eq!(host.egress_limit(&vm).unwrap(), None);
    let sink = UdpSocket::bind((addrs.host(), 0)).unwrap();
    let target = sink.local_addr().unwrap().to_string();
    let ns = host.netns(&vm).unwrap().to_string();
    let fast = Bandwidth::from_bits_per_sec(8e6).unwrap();
    host.set_egress(&vm, fast).unwrap();
    assert_eq!(host.egress_limit(&vm).unwrap(), Some(fast));
    // The source offers 4 MB/s (4x and 16x the limits), paced so it needs little CPU, at high
    // priority where the machine allows it (nice only warns otherwise). `nice` and
    // `ip netns exec` both exec, so the child's PID is the sender's.
    let source = Reaped(
        Command::new("nice")
            .args(["-n", "-20", "ip", "netns", "exec", &ns, LOAD, "udp-send"])
            .args([&target, "600", "4000000"])
            .spawn()
            .expect("spawn traffic source"),
    );
    let pid = source.0.id();
    let t = Instant::now();
    while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default()
        != "vibra-host-load\n"
    {
        assert!(t.elapsed() < STALL, "the traffic source never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let burst = fast.tbf_burst_bytes();
    measure_egress(&host, &vm, pid, fast, burst);
    let slow = Bandwidth::from_bits_per_sec(2e6).unwrap();
    let mut windows = vec![(
        fast,
        measure_egress(&host, &vm, pid, fast, 2 * fast.bytes_per_sec()),
    )];
    host.set_egress(&vm, slow).unwrap();
    assert_eq!(host.egress_limit(&vm).unwrap(), Some(slow));
    measure_egress(&host, &vm, pid, slow, slow.tbf_burst_bytes());
    windows.push((
        slow,
        measure_egress(&host, &vm, pid, slow, 2 * slow.bytes_per_sec()),
    ));
    for (limit, w) in windows {
        let l = limit.bytes_per_sec() as f64;
        let most = egress_most(limit, w.outer);
        // Lower: while the sender runs it keeps the queue (50 ms of data) full, so the link
        // carries the limit except while the sender waited for a CPU (25% for kernel timers).
        let busy = w.inner.saturating_sub(w.sender_wait);
        let least = 0.75 * l * busy.as_secs_f64();
        eprintln!(
            "egress: limit {l} B/s: {w:?} = {:.0} B/s delivered, {:.0} B/s offered; bounds [{least:.0}, {most:.0}] B",
            w.delivered as f64 / w.inner.as_secs_f64(),
            w.offered as f64 / w.inner.as_secs_f64(),
        );
        assert!(
            (w.delivered as f64) <= most,
            "delivered {} B in {:?} through a limit of {l} B/s (at most {most:.0} B)",
            w.delivered,
            w.outer
        );
        assert!(
            (w.delivered as f64) >= least,
            "delivered {} B in {:?} of which the sender waited {:?} for a CPU, through a limit of {l} B/s (at least {least:.0} B)",
            w.delivered,
            w.inner,
            w.sender_wait
        );
    }
}

/// The VM's root qdisc as iproute2 prints it with every detail (`tc -j -d -r qdisc show`):
/// kind, handle, rate, burst (and its time form), mpu, latency, limit, link layer.
fn tc_show_root(ns: &str, dev: &str) -> String {
    let out = Command::new("tc")
        .args([
            "-n", ns, "-j", "-d", "-r", "qdisc", "show", "dev", dev, "root",
        ])
        .output()
        .expect("run tc");
    assert!(out.status.success(), "tc show: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The tbf that the backend applies over netlink is the one iproute2's own command makes:
/// after each netlink change, `tc qdisc replace ... tbf rate R burst B latency 50ms` (the
/// command the backend ran before) with the same rate must leave `tc`'s detailed view
/// unchanged, and the backend must read the rate back. Rates from 8 kbit/s to 40 Gbit/s
/// (above 32 bits of bytes/s, where the 64-bit rate attribute is needed); the first change
/// replaces the veth's default qdisc, the others change the tbf in place.
#[test]
fn netlink_tbf_is_what_tc_itself_sets() {
    let Some(mut host) = host_or_skip("tbf_oracle") else {
        return;
    };
    let vm = host.create_vm(&VmSpec::new(&name("tb")).unwrap()).unwrap();
    let ns = host.netns(&vm).unwrap().to_string();
    assert_eq!(host.egress_limit(&vm).unwrap(), None, "no tbf yet");
    for bytes_per_sec in [
        1_000.0,
        125_000.0,
        1_000_000.0,
        12_500_000.0,
        1_250_000_000.0,
        5_000_000_000.0,
    ] {
        let rate = Bandwidth::from_bytes_per_sec(bytes_per_sec).unwrap();
        host.set_egress(&vm, rate).unwrap();
        let ours = tc_show_root(&ns, "eth0");
        assert_eq!(host.egress_limit(&vm).unwrap(), Some(rate));
        let burst = rate.tbf_burst_bytes().to_string();
        let tc_rate = rate.tc_rate();
        let args = [
            "-n", &ns, "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", &tc_rate, "burst",
            &burst, "latency", "50ms",
        ];
        let status = Command::new("tc").args(args).status().unwrap();
        assert!(status.success(), "tc {}", args.join(" "));
        let theirs = tc_show_root(&ns, "eth0");
        eprintln!("tbf_oracle: {rate:?}: {ours}");
        assert!(ours.contains("\"kind\":\"tbf\""), "{ours}");
        assert_eq!(ours, theirs, "netlink's tbf differs from tc's at {rate:?}");
    }
}

#[test]
fn memory_target_reads_back_and_usage_counts_vm_pages() {
    let Some(mut host) = host_or_skip("memory") else {
        return;
    };
    let vm = host.create_vm(&VmSpec::new(&name("me")).unwrap()).unwrap();
    let target = MemoryTarget::from_mib(256).unwrap();
    host.set_memory_target(&vm, target).unwrap();
    assert_eq!(host.memory_target(&vm).unwrap(), Some(target));
    let before = host.usage(&vm).unwrap().memory_bytes;
    let file = format!("/dev/shm/vibra-host-test-{}", std::process::id());
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _remove = Remove(file.clone());
    // The child waits for a line on stdin, so it is inside the VM before it touches memory.
    let mut child = Reaped(
        Command::new("sh")
            .args([
                "-c",
                &format!("read go; head -c 16777216 /dev/zero > {file}; sleep 30"),
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    host.attach(&vm, child.0.id()).unwrap();
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut now = before;
    while Instant::now() < deadline {
        now = host.usage(&vm).unwrap().memory_bytes;
        if now >= before + (15 << 20) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("memory: usage {before} -> {now} bytes after writing 16 MiB of tmpfs inside the VM");
    assert!(
        now >= before + (15 << 20),
        "usage grew only from {before} to {now}"
    );
}

#[test]
fn plan_application_writes_only_changed_settings() {
    let Some(mut host) = host_or_skip("plan") else {
        return;
    };
    let vms: Vec<String> = (0..3)
        .map(|i| {
            host.create_vm(&VmSpec::new(&name(&format!("p{i}"))).unwrap())
                .unwrap()
        })
        .collect();
    let alloc = |w: u32, mib: u64, mbit: f64| VmAllocation {
        cpu: Some(CpuSetting {
            weight: CpuWeight::new(w).unwrap(),
            cap: None,
        }),
        memory: Some(MemoryTarget::from_mib(mib).unwrap()),
        egress: Some(Bandwidth::from_bits_per_sec(mbit * 1e6).unwrap()),
    };
    let mut plan: Vec<(String, VmAllocation)> = vms
        .iter()
        .enumerate()
        .map(|(i, v)| (v.clone(), alloc(100 + i as u32, 64, 5.0)))
        .collect();
    let r = host.apply(&plan).unwrap();
    assert_eq!((r.written, r.unchanged), (9, 0));
    let r = host.apply(&plan).unwrap();
    assert_eq!((r.written, r.unchanged), (0, 9));
    plan[1].1.egress = Some(Bandwidth::from_bits_per_sec(3e6).unwrap());
    let r = host.apply(&plan).unwrap();
    assert_eq!((r.written, r.unchanged), (1, 8));
    for (vm, a) in &plan {
        assert_eq!(host.cpu(vm).unwrap(), a.cpu.unwrap());
        assert_eq!(host.memory_target(vm).unwrap(), a.memory);
        assert_eq!(host.egress_limit(vm).unwrap(), a.egress);
    }
}

/// vibra-alloc's own plans, applied as they are: the kernel ends at the allocator's target,
/// every setting is written in the plan's order, and a plan that names an unknown VM or an
/// invalid amount writes nothing.
#[test]
fn vibra_alloc_plans_apply_in_order_and_a_bad_plan_changes_nothing() {
    let Some(mut host) = host_or_skip("alloc_plan") else {
        return;
    };
    let vms: Vec<String> = (0..4)
        .map(|i| {
            host.create_vm(&VmSpec::new(&name(&format!("a{i}"))).unwrap())
                .unwrap()
        })
        .collect();
    // 64 MiB of memory in 4 KiB pages over four VMs, 1 MiB floor each.
    let unit = UnitSize::memory_bytes(4096).unwrap();
    let (pool, floor) = (16_384u64, 256u64);
    let even = split_units(&[1.0; 4], None, pool, floor).unwrap();
    let skewed = split_units(&[1.0, 5.0, 1.0, 9.0], None, pool, floor).unwrap();
    let read = |host: &LinuxHost| -> Vec<u64> {
        vms.iter()
            .map(|vm| host.memory_target(vm).unwrap().unwrap().bytes() / 4096)
            .collect()
    };
    // From the floor (nothing set yet) to an even split: all increases.
    let start = Plan::between(&[floor; 4], &even).unwrap();
    host.apply(&plan_allocations(&vms, &start, unit).unwrap())
        .unwrap();
    assert_eq!(read(&host), even);
    let plan = Plan::between(&even, &skewed).unwrap();
    let report = host.apply_plan(&vms, &plan, unit).unwrap();
    assert_eq!(report.written, plan.len());
    assert_eq!(read(&host), skewed);

    // VM index 4 does not exist; and 0 pages is no memory target: both refused before any write.
    let beyond = Plan::from_changes(vec![
        Change {
            vm: VmId(0),
            from: skewed[0],
            to: skewed[0] - 1,
        },
        Change {
            vm: VmId(4),
            from: 1,
            to: 2,
        },
    ]);
    assert!(matches!(
        host.apply_plan(&vms, &beyond, unit),
        Err(Error::PlanVm { vm: 4, vms: 4 })
    ));
    let zero = Plan::between(&skewed, &[skewed[0] + skewed[1], 0, skewed[2], skewed[3]]).unwrap();
    assert!(host.apply_plan(&vms, &zero, unit).is_err());
    assert_eq!(read(&host), skewed, "a refused plan wrote something");
}

#[test]
fn bad_input_and_vanished_resources_give_typed_errors() {
    let Some(mut host) = host_or_skip("errors") else {
        return;
    };
    let ghost = "no-such-vm".to_string();
    let e = host
        .set_cpu(
            &ghost,
            CpuSetting {
                weight: CpuWeight::DEFAULT,
                cap: None,
            },
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::UnknownVm { vm, op: Operation::SetCpu } if vm == "no-such-vm"),
        "{e}"
    );
    assert!(matches!(host.usage(&ghost), Err(Error::UnknownVm { .. })));
    let vm = host.create_vm(&VmSpec::new(&name("er")).unwrap()).unwrap();
    assert!(matches!(
        host.create_vm(&VmSpec::new(&vm).unwrap()),
        Err(Error::VmExists { .. })
    ));

    // The egress limit is set over the VM namespace's netlink socket, opened now and kept.
    host.set_egress(&vm, Bandwidth::from_bits_per_sec(2e6).unwrap())
        .unwrap();
    // The interface vanishes: usage names the counter file and the OS error.
    let host_if = host.host_interface(&vm).unwrap().to_string();
    assert!(
        Command::new("ip")
            .args(["link", "del", &host_if])
            .status()
            .unwrap()
            .success()
    );
    let e = host.usage(&vm).unwrap_err();
    assert!(
        matches!(&e, Error::Io { op: Operation::ReadUsage, path, .. } if path.contains(&host_if)),
        "{e}"
    );
    // Deleting the host end deleted the VM end too: the kernel's "No such device" comes back
    // for the link lookup in the namespace.
    let e = host
        .set_egress(&vm, Bandwidth::from_bits_per_sec(1e6).unwrap())
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Netlink {
                op: Operation::SetEgress,
                source,
                ..
            } if source.raw_os_error() == Some(19)
        ),
        "{e}"
    );
    eprintln!("vanished link: {e}");
    // The namespace is gone too: the kept socket is not used on it, the
    // namespace's own "No such file or directory" comes back.
    let ns = host.netns(&vm).unwrap().to_string();
    assert!(
        Command::new("ip")
            .args(["netns", "del", &ns])
            .status()
            .unwrap()
            .success()
    );
    let e = host
        .set_egress(&vm, Bandwidth::from_bits_per_sec(1e6).unwrap())
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Io {
                op: Operation::SetEgress,
                path,
                source,
                ..
            } if path.ends_with(&ns) && source.kind() == std::io::ErrorKind::NotFound
        ),
        "{e}"
    );
    eprintln!("vanished namespace: {e}");
    assert!(matches!(
        host.egress_limit(&vm),
        Err(Error::Io {
            op: Operation::ReadUsage,
            ..
        })
    ));

    // The cgroups vanish: the write fails with the OS's "No such file or directory".
    for dir in cgroup_dirs("errors", &vm) {
        std::fs::remove_dir(&dir).unwrap();
    }
    let e = host
        .set_cpu(
            &vm,
            CpuSetting {
                weight: CpuWeight::new(300).unwrap(),
                cap: None,
            },
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::Io { op: Operation::SetCpu, source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{e}"
    );
    // Destroying a half-vanished VM still succeeds and forgets it.
    host.destroy_vm(&vm).unwrap();
    assert!(host.list_vms().unwrap().is_empty());
}

/// The cgroup directories of `vm` made by test `test`, found by name under each mounted
/// hierarchy (test-only probing).
fn cgroup_dirs(test: &str, vm: &str) -> Vec<std::path::PathBuf> {
    let parent = format!("vibra-host-test-{}-{test}", std::process::id());
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let candidates = [
            entry.path().join(&parent).join(vm),
            std::path::Path::new("/sys/fs/cgroup")
                .join(&parent)
                .join(vm),
        ];
        for c in candidates {
            if c.is_dir() && !out.contains(&c) {
                out.push(c);
            }
        }
    }
    assert!(!out.is_empty(), "found no cgroup directory of {vm}");
    out
}

#[test]
fn dropping_the_host_removes_cgroups_namespaces_links_and_processes() {
    let Some(mut host) = host_or_skip("cleanup") else {
        return;
    };
    let vm = host.create_vm(&VmSpec::new(&name("cl")).unwrap()).unwrap();
    let mut child = Command::new(LOAD).args(["burn", "60"]).spawn().unwrap();
    host.attach(&vm, child.id()).unwrap();
    let host_if = host.host_interface(&vm).unwrap().to_string();
    let parent = format!("vibra-host-test-{}-cleanup", std::process::id());
    drop(host);
    // The burner was killed by the drop: reaping it must not block.
    let status = child.wait().unwrap();
    assert!(!status.success(), "burner should have been killed");
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&host_if)
            .exists(),
        "{host_if} still exists"
    );
    let netns = String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        !netns
            .lines()
            .any(|l| l.split_whitespace().next() == Some(vm.as_str())),
        "namespace {vm} still listed"
    );
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        assert!(
            !entry.path().join(&parent).exists(),
            "{} still exists",
            entry.path().join(&parent).display()
        );
    }
}

#[test]
fn is_running_follows_procs_and_ns() {
    let Some(mut host) = host_or_skip("is_running_follows_procs_and_ns") else {
        return;
    };
    let vm = host.create_vm(&VmSpec::new(&name("run")).unwrap()).unwrap();
    assert!(!host.is_running(&vm).unwrap(), "no process attached yet");
    let mut child = Reaped(Command::new("sleep").arg("60").spawn().unwrap());
    host.attach(&vm, child.0.id()).unwrap();
    assert!(host.is_running(&vm).unwrap());
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert!(!host.is_running(&vm).unwrap(), "the cgroup is empty again");
    // A process, but the namespace is gone: failed too.
    let again = Reaped(Command::new("sleep").arg("60").spawn().unwrap());
    host.attach(&vm, again.0.id()).unwrap();
    assert!(host.is_running(&vm).unwrap());
    let del = Command::new("ip")
        .args(["netns", "del", &vm])
        .status()
        .unwrap();
    assert!(del.success());
    assert!(!host.is_running(&vm).unwrap(), "namespace gone");
    assert!(host.is_running("never-created").is_err());
}

#[test]
fn an_adopted_vm_is_set_and_read_but_never_removed() {
    let Some(mut owner) = host_or_skip("adopt") else {
        return;
    };
    let vm = owner
        .create_vm(&VmSpec::new(&name("ad")).unwrap().with_link(link(7)))
        .unwrap();
    let child = Reaped(Command::new("sleep").arg("60").spawn().unwrap());
    owner.attach(&vm, child.0.id()).unwrap();
    let parent = format!("vibra-host-test-{}-adopt", std::process::id());
    let mut agent = LinuxHost::new(&parent).unwrap();
    assert!(matches!(
        agent.adopt_vm(&name("none")),
        Err(Error::Io { .. })
    ));
    let adopted = agent.adopt_vm(&vm).unwrap();
    assert!(matches!(agent.adopt_vm(&vm), Err(Error::VmExists { .. })));
    assert!(agent.is_running(&adopted).unwrap());
    let mem = MemoryTarget::from_mib(96).unwrap();
    let rate = Bandwidth::from_bits_per_sec(40e6).unwrap();
    agent.set_memory_target(&adopted, mem).unwrap();
    agent.set_egress(&adopted, rate).unwrap();
    // The owner reads back from the kernel what the adopter wrote.
    assert_eq!(owner.memory_target(&vm).unwrap(), Some(mem));
    assert_eq!(owner.egress_limit(&vm).unwrap(), Some(rate));
    assert_eq!(agent.list_vms().unwrap(), vec![vm.clone()]);
    drop(agent);
    // Nothing of the VM was removed or killed, and the parent is still there.
    assert!(
        owner.is_running(&vm).unwrap(),
        "the adopter's drop killed the VM"
    );
    assert_eq!(owner.memory_target(&vm).unwrap(), Some(mem));
    assert!(cgroup_dirs("adopt", &vm).iter().all(|d| d.is_dir()));
    let host_if = owner.host_interface(&vm).unwrap().to_string();
    assert!(
        std::path::Path::new("/sys/class/net")
            .join(host_if)
            .exists()
    );
    drop(child);
}

#[test]
fn forget_settings_makes_the_next_equal_setting_reach_the_kernel() {
    let Some(mut owner) = host_or_skip("forget") else {
        return;
    };
    let vm = owner.create_vm(&VmSpec::new(&name("fg")).unwrap()).unwrap();
    let parent = format!("vibra-host-test-{}-forget", std::process::id());
    let mut other = LinuxHost::new(&parent).unwrap();
    let adopted = other.adopt_vm(&vm).unwrap();
    let mem = MemoryTarget::from_mib(96).unwrap();
    let changed = MemoryTarget::from_mib(48).unwrap();
    assert_eq!(owner.set_memory_target(&vm, mem).unwrap(), Outcome::Written);
    // Another process changes the limit behind the owner's back.
    other.set_memory_target(&adopted, changed).unwrap();
    drop(other);
    // What the owner last wrote is equal: skipped, and the other value stays in force.
    assert_eq!(
        owner.set_memory_target(&vm, mem).unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(owner.memory_target(&vm).unwrap(), Some(changed));
    owner.forget_settings(&vm).unwrap();
    assert_eq!(owner.set_memory_target(&vm, mem).unwrap(), Outcome::Written);
    assert_eq!(owner.memory_target(&vm).unwrap(), Some(mem));
    assert!(matches!(
        owner.forget_settings("no-such-vm"),
        Err(Error::UnknownVm { .. })
    ));
}
