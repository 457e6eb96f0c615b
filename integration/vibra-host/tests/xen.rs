//! The Xen backend against a real Xen 4.17 hypervisor: run inside Domain-0 (CI boots one under
//! QEMU, see `.ci/xen.sh`) with a PV guest that burns CPU and streams TCP to Domain-0.
//!
//! Environment: `VIBRA_XEN_GUEST` (guest name, default `tiny`), `VIBRA_XEN_GUEST_IP` (default
//! `10.99.0.2`), `VIBRA_REQUIRE_XEN=1` turns "not on Xen, skipped" into a failure. Each step
//! prints `VIBRA-XEN STEP <name>: ok ...`, or panics with `VIBRA-XEN STEP <name> FAILED: ...`.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use vibra_host::{
    Bandwidth, CpuCap, CpuSetting, CpuWeight, DomId, Error, HostController, MemoryTarget, Outcome,
    XenHost,
};

fn on_xen_dom0() -> bool {
    std::fs::read_to_string("/proc/xen/capabilities").is_ok_and(|c| c.contains("control_d"))
}

/// Runs one named step; a failure panics with the step's name so CI can say which one failed.
fn step<T>(name: &str, f: impl FnOnce() -> Result<(T, String), String>) -> T {
    match f() {
        Ok((v, detail)) => {
            println!("VIBRA-XEN STEP {name}: ok {detail}");
            v
        }
        Err(e) => panic!("VIBRA-XEN STEP {name} FAILED: {e}"),
    }
}

fn sysfs_counter(dev: &str, name: &str) -> Result<u64, String> {
    let path = format!("/sys/class/net/{dev}/statistics/{name}");
    std::fs::read_to_string(&path)
        .map_err(|e| format!("{path}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("{path}: {e}"))
}

/// How long a measurement may take to reach its quota of CPU time or bytes (QEMU TCG on a busy
/// machine is slow). No check depends on how long a measurement took; reaching this means the
/// load never ran.
const STALL: Duration = Duration::from_secs(150);

/// Bytes on the wire per datagram of the Domain-0 sender: 1200 of payload, 8 of UDP header, 20
/// of IPv4 header, 14 of Ethernet header.
const DOM0_WIRE_BYTES: u64 = 1242;

/// Datagrams Domain-0 handed to IP (sent, plus dropped by a full qdisc, which UDP counts as
/// `SndbufErrors`): the offered load, in the kernel's own accounting.
fn udp_offered() -> Result<u64, String> {
    let snmp = std::fs::read_to_string("/proc/self/net/snmp")
        .map_err(|e| format!("/proc/self/net/snmp: {e}"))?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return Err(format!("no Udp lines in /proc/self/net/snmp: {snmp}"));
    };
    Ok(names
        .split_whitespace()
        .zip(values.split_whitespace())
        .filter(|(n, _)| *n == "OutDatagrams" || *n == "SndbufErrors")
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum())
}

/// Bytes counted on `dev`'s counter `name`, measured until they reach `quota` and `enough`
/// (given delivered bytes and Domain-0's offered datagrams since the start) holds, however
/// long that takes (up to [`STALL`]). At every sample the bytes must stay within `most`
/// (given the wall time since before the first read). Returns the bytes and the wall time
/// between the first and the last reads.
fn measure_bytes(
    dev: &str,
    name: &str,
    quota: u64,
    most: impl Fn(Duration) -> f64,
    enough: impl Fn(u64, u64) -> bool,
) -> Result<(u64, Duration), String> {
    let t0a = Instant::now();
    let b0 = sysfs_counter(dev, name)?;
    let o0 = udp_offered()?;
    let t0b = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let t1a = Instant::now();
        let bytes = sysfs_counter(dev, name)? - b0;
        let offered = udp_offered()? - o0;
        let limit = most(t0a.elapsed());
        if bytes as f64 > limit {
            return Err(format!(
                "{dev} {name}: {bytes} B in {:?}, above the bound of {limit:.0} B",
                t0a.elapsed()
            ));
        }
        if bytes >= quota && enough(bytes, offered) {
            return Ok((bytes, t1a - t0b));
        }
        if t0a.elapsed() > STALL {
            return Err(format!(
                "{dev} {name}: only {bytes} B (want {quota}) and {offered} datagrams offered by Domain-0 after {STALL:?}"
            ));
        }
    }
}

/// The most netback lets through at `limit` in `wall`: the credit per time (+`slack`) and
/// its largest burst (`max(128 KiB, one 50 ms credit)`, Linux xen-netback's `max_burst`).
fn netback_most(limit: Bandwidth, slack: f64, wall: Duration) -> f64 {
    let l = limit.bytes_per_sec() as f64;
    (1.0 + slack) * l * (wall.as_secs_f64() + 0.05) + 131_072f64.max(l * 0.05)
}

#[test]
fn without_xen_opening_is_a_typed_error() {
    if on_xen_dom0() {
        eprintln!("SKIPPED without_xen_opening_is_a_typed_error: this is a Xen Domain-0");
        return;
    }
    match XenHost::open() {
        Err(Error::XenUnavailable { reason }) => {
            assert!(!reason.is_empty());
            eprintln!("not on Xen: {reason}");
        }
        other => panic!("expected XenUnavailable, got {other:?}"),
    }
}

#[test]
fn xen_backend_drives_dom0_and_a_pv_guest() {
    if !on_xen_dom0() {
        let why = "not running in a Xen Domain-0 (/proc/xen/capabilities lacks control_d)";
        assert!(
            std::env::var("VIBRA_REQUIRE_XEN").as_deref() != Ok("1"),
            "{why}, but VIBRA_REQUIRE_XEN=1"
        );
        eprintln!("SKIPPED xen_backend_drives_dom0_and_a_pv_guest: {why}");
        return;
    }
    let guest_name = std::env::var("VIBRA_XEN_GUEST").unwrap_or_else(|_| "tiny".to_string());
    let guest_ip = std::env::var("VIBRA_XEN_GUEST_IP").unwrap_or_else(|_| "10.99.0.2".to_string());
    let dom0 = DomId(0);

    let mut xen = step("open", || {
        XenHost::open()
            .map(|x| (x, String::new()))
            .map_err(|e| e.to_string())
    });
    let guest = step("list", || {
        let vms = xen.list_vms().map_err(|e| e.to_string())?;
        if !vms.contains(&dom0) {
            return Err(format!("Domain-0 missing from {vms:?}"));
        }
        let g = xen.find_domain(&guest_name).map_err(|e| e.to_string())?;
        let name0 = xen.domain_name(dom0).map_err(|e| e.to_string())?;
        Ok((
            g,
            format!("{vms:?}, {guest_name} = {g}, domain 0 = {name0}"),
        ))
    });

    for (who, dom, w, cap) in [("dom0", dom0, 512, 50), ("guest", guest, 128, 20)] {
        step(&format!("{who} sched-credit set and read back"), || {
            let s = CpuSetting {
                weight: CpuWeight::new(w).unwrap(),
                cap: Some(CpuCap::new(cap).unwrap()),
            };
            xen.set_cpu(&dom, s).map_err(|e| e.to_string())?;
            let back = xen.cpu(&dom).map_err(|e| e.to_string())?;
            if back != s {
                return Err(format!("set {s:?}, read back {back:?}"));
            }
            let again = xen.set_cpu(&dom, s).map_err(|e| e.to_string())?;
            if again != Outcome::Unchanged {
                return Err("repeating a setting touched the hypervisor".to_string());
            }
            Ok(((), format!("weight {w} cap {cap}")))
        });
    }
    step("dom0 uncapped again", || {
        let s = CpuSetting {
            weight: CpuWeight::DEFAULT,
            cap: None,
        };
        xen.set_cpu(&dom0, s).map_err(|e| e.to_string())?;
        let back = xen.cpu(&dom0).map_err(|e| e.to_string())?;
        if back != s {
            Err(format!("read back {back:?}"))
        } else {
            Ok(((), String::new()))
        }
    });

    for (who, dom, mib) in [("dom0", dom0, 400u64), ("guest", guest, 96)] {
        step(&format!("{who} memory target set and read back"), || {
            let t = MemoryTarget::from_mib(mib).unwrap();
            xen.set_memory_target(&dom, t).map_err(|e| e.to_string())?;
            let back = xen.memory_target(&dom).map_err(|e| e.to_string())?;
            if back != Some(t) {
                return Err(format!("set {t:?}, read back {back:?}"));
            }
            Ok(((), format!("{mib} MiB")))
        });
    }

    step("guest CPU time grows under load", || {
        xen.set_cpu(
            &guest,
            CpuSetting {
                weight: CpuWeight::DEFAULT,
                cap: None,
            },
        )
        .map_err(|e| e.to_string())?;
        // Until the guest used 300 ms of CPU, however long the emulated machine takes.
        let u0 = xen.usage(&guest).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let u1 = xen.usage(&guest).map_err(|e| e.to_string())?;
            let d = u1.cpu_time.saturating_sub(u0.cpu_time);
            if d >= Duration::from_millis(300) {
                return Ok((
                    (),
                    format!(
                        "{d:?} in {:?}, memory {} bytes",
                        t0.elapsed(),
                        u1.memory_bytes
                    ),
                ));
            }
            if t0.elapsed() > STALL {
                return Err(format!(
                    "guest used only {d:?} of CPU in {STALL:?} while burning"
                ));
            }
        }
    });

    step(
        "stop the guest's CPU burner (TCP connect to its port 5002)",
        || {
            let addr: std::net::SocketAddr = format!("{guest_ip}:5002")
                .parse()
                .map_err(|e| format!("{e}"))?;
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(20))
                .map_err(|e| format!("connect {addr}: {e}"))?;
            std::thread::sleep(Duration::from_secs(1));
            let u0 = xen.usage(&guest).map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_secs(2));
            let u1 = xen.usage(&guest).map_err(|e| e.to_string())?;
            Ok((
                (),
                format!(
                    "guest CPU now {:?} per 2 s",
                    u1.cpu_time.saturating_sub(u0.cpu_time)
                ),
            ))
        },
    );

    let vif = format!("vif{}.0", guest.0);
    let fast = Bandwidth::from_bits_per_sec(8e6).unwrap();
    let r_fast = step("guest egress with an 8 Mbit/s vif rate", || {
        xen.set_egress(&guest, fast).map_err(|e| e.to_string())?;
        let back = xen.egress_limit(&guest).map_err(|e| e.to_string())?;
        if back != Some(fast) {
            return Err(format!("set {fast:?}, read back {back:?}"));
        }
        // Until 400 kB arrived (a second at the guest's pace): the limit caps it at any speed.
        let (bytes, wall) = measure_bytes(
            &vif,
            "rx_bytes",
            400_000,
            |w| netback_most(fast, 0.15, w),
            |_, _| true,
        )?;
        let r = bytes as f64 / wall.as_secs_f64();
        let via_usage = xen.usage(&guest).map_err(|e| e.to_string())?.egress_bytes;
        if via_usage == 0 {
            return Err("usage() counted no egress bytes".to_string());
        }
        Ok((
            r,
            format!(
                "{bytes} B in {wall:?} = {r:.0} B/s (the guest paces itself at 400000 B/s; TCG may be slower)"
            ),
        ))
    });
    // A quarter of what the emulated machine achieved, so the limit binds however fast or slow
    // this host is; a whole number of kB/s so the 50 ms netback credit reads back exactly.
    let slow_bps = ((r_fast / 4.0 / 1000.0).floor() * 1000.0).clamp(2000.0, 125_000.0);
    let slow = Bandwidth::from_bytes_per_sec(slow_bps).unwrap();
    step(
        "guest egress limit lowered live (vif rate in xenstore)",
        || {
            xen.set_egress(&guest, slow).map_err(|e| e.to_string())?;
            let back = xen.egress_limit(&guest).map_err(|e| e.to_string())?;
            if back != Some(slow) {
                return Err(format!("set {slow:?}, read back {back:?}"));
            }
            // Until 8 s worth at the new limit arrived (long enough that netback's 128 KiB
            // burst cannot hide a limit twice too high); at every sample no more than the limit
            // (+20%) and that burst. A guest that gets less CPU only sends less, so there is no
            // lower bound here: what the guest offered is not visible from Domain-0.
            let (bytes, wall) = measure_bytes(
                &vif,
                "rx_bytes",
                8 * slow.bytes_per_sec(),
                |w| netback_most(slow, 0.2, w),
                |_, _| true,
            )?;
            let r = bytes as f64 / wall.as_secs_f64();
            let limit = slow.bytes_per_sec() as f64;
            if r_fast < 1.5 * r {
                return Err(format!(
                    "the rate change is not visible: {r_fast:.0} B/s before, {r:.0} B/s after"
                ));
            }
            Ok((
                (),
                format!("limit {limit} B/s, measured {r:.0} B/s (was {r_fast:.0} B/s)"),
            ))
        },
    );

    step("tc tbf on the vif limits dom0 to guest traffic", || {
        let target = format!("{guest_ip}:5001");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let sender = std::thread::spawn(move || {
            let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
            let payload = [0u8; 1200];
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = s.send_to(&payload, &target);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let result = (|| {
            // The unshaped rate only picks the limit; it is not checked.
            let (b, w) = measure_bytes(&vif, "tx_bytes", 60_000, |_| f64::INFINITY, |_, _| true)?;
            let unshaped = b as f64 / w.as_secs_f64();
            // A quarter of the unshaped rate (at most 512 kbit/s), so the tbf binds on any host.
            let l = ((unshaped / 4.0 / 1000.0).floor() * 1000.0).clamp(2000.0, 64_000.0);
            let limit = Bandwidth::from_bytes_per_sec(l).unwrap();
            xen.shape_vif_tx(guest, 0, limit)
                .map_err(|e| e.to_string())?;
            // Until 4 s worth at the limit went to the guest and Domain-0 had offered 1.5 times
            // that (so the tbf, not the sender, set the rate; counted by Domain-0's kernel): at
            // every sample at most the limit (+20%), one tbf bucket and two datagrams.
            let burst = limit.tbf_burst_bytes() as f64 + 2.0 * DOM0_WIRE_BYTES as f64;
            let (bytes, wall) = measure_bytes(
                &vif,
                "tx_bytes",
                4 * limit.bytes_per_sec(),
                |w| 1.2 * l * w.as_secs_f64() + burst,
                |bytes, offered| 2 * offered * DOM0_WIRE_BYTES >= 3 * bytes,
            )?;
            let r = bytes as f64 / wall.as_secs_f64();
            Ok((
                (),
                format!(
                    "unshaped {unshaped:.0} B/s, tbf {l} B/s, measured {bytes} B in {wall:?} = {r:.0} B/s"
                ),
            ))
        })();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = sender.join();
        result
    });

    step("unknown domain gives typed errors", || {
        let ghost = DomId(4242);
        let e = xen
            .set_cpu(
                &ghost,
                CpuSetting {
                    weight: CpuWeight::DEFAULT,
                    cap: None,
                },
            )
            .unwrap_err();
        if !matches!(e, Error::Xen { .. }) {
            return Err(format!("set_cpu: {e:?}"));
        }
        let u = xen.usage(&ghost).unwrap_err();
        if !matches!(u, Error::UnknownVm { .. }) {
            return Err(format!("usage: {u:?}"));
        }
        let m = xen
            .set_memory_target(&ghost, MemoryTarget::from_mib(64).unwrap())
            .unwrap_err();
        if !matches!(m, Error::UnknownVm { .. }) {
            return Err(format!("set_memory_target: {m:?}"));
        }
        let g = xen.set_egress(&dom0, slow).unwrap_err();
        Ok(((), format!("{e}; {u}; {m}; dom0 egress: {g}")))
    });
}
