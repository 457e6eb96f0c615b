//! `vibrad` as the testbed's allocation agent (`vibra_lab::testbed::VibradAgent`): a small
//! testbed (4 nginx back ends in their own namespaces and cgroups), one real `vibrad` adopting
//! them (period 1 s here to keep the test short, alpha 0.9, R = 2), back end 1's nginx killed.
//! Read back from the kernel (memory cgroup limits, tbf rates) every 50 ms: within three
//! periods of the kill, back end 2's rate jumps, and that change gives back end 1's bandwidth
//! and memory, in equal parts, to back ends 2 and 3 (its next R = 2 in cyclic order, SPEC 4)
//! and to nobody else (compared with the sample just before it: a periodic re-division may
//! land between the kill and vibrad noticing it); the lab itself writes no setting after the
//! testbed is up.
//!
//! Needs root, nginx and iproute2, and the `vibrad` binary (`VIBRA_VIBRAD_BIN`, or built with
//! `cargo build -p vibrad`); without them it prints `SKIPPED <test>: <why>` and passes,
//! unless `VIBRA_REQUIRE_PRIVILEGED=1` (CI's testbed stage).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vibra_lab::testbed::{AgentOptions, CorpusFile, Limits, Testbed, TestbedConfig, VibradAgent};

mod common;
use common::{is_root, skip};

fn runs(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Memory bytes and egress bits/s of back end `i`.
fn of(l: &[Limits], i: usize) -> (f64, f64) {
    (
        l[i].memory_bytes.expect("a memory limit") as f64,
        l[i].egress_bits_per_sec.expect("an egress rate"),
    )
}

#[test]
fn vibrad_moves_a_killed_back_ends_bandwidth_and_memory_to_the_next_r() {
    let test = "vibrad_moves_a_killed_back_ends_bandwidth_and_memory_to_the_next_r";
    if !is_root() {
        return skip(test, "needs root for cgroups, namespaces and tc");
    }
    for (cmd, arg) in [("nginx", "-v"), ("ip", "-V"), ("tc", "-V")] {
        if !runs(cmd, arg) {
            return skip(test, &format!("`{cmd}` is not installed"));
        }
    }
    if let Some(why) = VibradAgent::unavailable() {
        return skip(test, &why);
    }
    let (mib, bps) = (32, 40e6);
    let files = [CorpusFile {
        url: "/index.html".into(),
        bytes: 4096,
    }];
    let config = TestbedConfig {
        backends: 4,
        memory_mib: mib,
        egress_bits_per_sec: bps,
        ..TestbedConfig::default()
    };
    let mut tb = Testbed::up(&config, &files).unwrap();
    let period = Duration::from_secs(1);
    let options = AgentOptions {
        period_s: period.as_secs_f64(),
        ..AgentOptions::dissertation(bps, mib)
    };
    // Declared after the testbed: stopped before it is torn down, also on a failed assert.
    let mut agent = VibradAgent::start(&tb, &options).unwrap();
    std::thread::sleep(2 * period + Duration::from_millis(500));
    let before = tb.limits().unwrap();
    for i in 0..4 {
        of(&before, i); // vibrad's grants are in the kernel: every back end is limited
    }
    let killed = Instant::now();
    tb.stop_backend(1).unwrap();
    let mut prev = tb.limits().unwrap();
    let (changed_after, cur) = loop {
        assert!(
            killed.elapsed() < 3 * period + Duration::from_secs(1),
            "no change of the kernel limits {:?} after the kill; vibrad log: {}",
            killed.elapsed(),
            agent.log_tail(8)
        );
        std::thread::sleep(Duration::from_millis(50));
        let now = tb.limits().unwrap();
        if of(&now, 2).1 - of(&prev, 2).1 > 0.4 * of(&prev, 1).1 {
            let at = killed.elapsed();
            // Both kinds are written in one step: read again once it is surely over (the
            // compensation then holds for a whole period).
            std::thread::sleep(Duration::from_millis(300));
            break (at, tb.limits().unwrap());
        }
        prev = now;
    };
    eprintln!(
        "compensation in the kernel {changed_after:?} after the kill (period {period:?}): \
         before {prev:?}, after {cur:?}"
    );
    let (m1, b1) = of(&prev, 1);
    for i in [0, 1] {
        assert_eq!(of(&cur, i), of(&prev, i), "back end {i} changed");
    }
    for i in [2, 3] {
        let (dm, db) = (
            of(&cur, i).0 - of(&prev, i).0,
            of(&cur, i).1 - of(&prev, i).1,
        );
        assert!(
            (dm - m1 / 2.0).abs() <= 4096.0,
            "back end {i}'s memory grew by {dm} bytes, not half of back end 1's {m1}"
        );
        assert!(
            (db - b1 / 2.0).abs() <= 8000.0,
            "back end {i}'s egress grew by {db} bit/s, not half of back end 1's {b1}"
        );
    }
    assert_eq!(agent.failures_seen().unwrap(), 1);
    assert!(agent.running(), "vibrad exited: {}", agent.log_tail(8));
    let log = agent.log_tail(50);
    assert!(log.contains("compensated"), "{log}");
    drop(agent);
    drop(tb);
}
