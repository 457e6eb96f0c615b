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

use vibra_host::{
    Bandwidth, CpuCap, CpuSetting, CpuWeight, Error, HostController, LinkAddrs, LinuxHost,
    MemoryTarget, Operation, VmAllocation, VmSpec,
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

fn burner(cpu: &str, seconds: u32) -> Reaped {
    Reaped(
        Command::new("taskset")
            .args(["-c", cpu, LOAD, "burn", &seconds.to_string()])
            .spawn()
            .expect("spawn taskset burner"),
    )
}

/// CPU time used by each VM from now until together they used at least `min_total` (or 30 s
/// of wall time passed).
fn cpu_deltas(host: &LinuxHost, vms: &[&String], min_total: Duration) -> Vec<Duration> {
    let start: Vec<Duration> = vms
        .iter()
        .map(|v| host.usage(v).unwrap().cpu_time)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now: Vec<Duration> = vms
            .iter()
            .map(|v| host.usage(v).unwrap().cpu_time)
            .collect();
        let deltas: Vec<Duration> = now
            .iter()
            .zip(&start)
            .map(|(n, s)| n.saturating_sub(*s))
            .collect();
        if deltas.iter().sum::<Duration>() >= min_total || Instant::now() > deadline {
            return deltas;
        }
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
    let ba = burner(&cpu, 60);
    let bb = burner(&cpu, 60);
    host.attach(&a, ba.0.id()).unwrap();
    host.attach(&b, bb.0.id()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Measure until the pair has used 2 s of CPU: enough for CFS's fairness at any load level.
    let d = cpu_deltas(&host, &[&a, &b], Duration::from_secs(2));
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
    let b = burner(&cpu, 60);
    host.attach(&vm, b.0.id()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let u0 = host.usage(&vm).unwrap().cpu_time;
    std::thread::sleep(Duration::from_secs(3));
    let used = host.usage(&vm).unwrap().cpu_time - u0;
    let wall = t0.elapsed();
    let frac = used.as_secs_f64() / wall.as_secs_f64();
    eprintln!(
        "cpu_cap: used {used:?} in {wall:?} = {:.1}% (cap 20%, allowed up to 20% + one 100 ms period)",
        frac * 100.0
    );
    assert!(used > Duration::from_millis(10), "capped burner never ran");
    assert!(
        used.as_secs_f64() <= 0.2 * wall.as_secs_f64() + 0.1,
        "cap exceeded: {:.1}%",
        frac * 100.0
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

/// Bytes per second the VM sends, measured at the host end of its veth over `window`.
fn measured_egress(host: &LinuxHost, vm: &String, window: Duration) -> f64 {
    let b0 = host.usage(vm).unwrap().egress_bytes;
    let t0 = Instant::now();
    std::thread::sleep(window);
    let b1 = host.usage(vm).unwrap().egress_bytes;
    (b1 - b0) as f64 / t0.elapsed().as_secs_f64()
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
    let _source = Reaped(
        Command::new("ip")
            .args(["netns", "exec", &ns, LOAD, "udp-send", &target, "30"])
            .spawn()
            .expect("spawn traffic source"),
    );
    std::thread::sleep(Duration::from_millis(700));
    let r_fast = measured_egress(&host, &vm, Duration::from_secs(2));
    let slow = Bandwidth::from_bits_per_sec(2e6).unwrap();
    host.set_egress(&vm, slow).unwrap();
    assert_eq!(host.egress_limit(&vm).unwrap(), Some(slow));
    std::thread::sleep(Duration::from_millis(500));
    let r_slow = measured_egress(&host, &vm, Duration::from_secs(2));
    eprintln!(
        "egress: limit 1000000 B/s -> {r_fast:.0} B/s; limit 250000 B/s -> {r_slow:.0} B/s (tolerance -15%/+10%)"
    );
    for (measured, limit) in [(r_fast, fast), (r_slow, slow)] {
        let l = limit.bytes_per_sec() as f64;
        assert!(
            measured >= 0.85 * l && measured <= 1.10 * l,
            "measured {measured:.0} B/s for a limit of {l} B/s"
        );
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
    // The namespace (and so the VM end) is gone too: tc's own error text comes back.
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
            Error::Command {
                op: Operation::SetEgress,
                ..
            }
        ),
        "{e}"
    );
    eprintln!("vanished namespace: {e}");

    // The cgroups vanish: the write fails with the OS's "No such file or directory".
    for dir in cgroup_dirs_of(&host, &vm) {
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

/// The VM's cgroup directories, found by name under each mounted hierarchy (test-only probing).
fn cgroup_dirs_of(host: &LinuxHost, vm: &str) -> Vec<std::path::PathBuf> {
    let _ = host;
    let parent = format!("vibra-host-test-{}-errors", std::process::id());
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
