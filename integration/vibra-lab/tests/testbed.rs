//! The real testbed (`vibra_lab::testbed`) end to end through the built `vibra-lab` binary:
//! - without root, `reproduce fig3.8` says it is skipped and why, and exits 0; with
//!   `VIBRA_REQUIRE_PRIVILEGED=1` it fails instead;
//! - as root, Ctrl-C (SIGINT to the process group) in the middle of a replay ends the run with "interrupted" and
//!   leaves nothing of it: no corpus folder, no network namespace, no cgroup, no process.
//!
//! The second test needs root, nginx and the vibra-proxy binary (`VIBRA_PROXY_BIN`, or built
//! with `cargo build -p vibra-proxy --features pingora`); without them it prints
//! `SKIPPED <test>: <why>` and passes, unless `VIBRA_REQUIRE_PRIVILEGED=1` (CI's testbed stage).

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{is_root, skip};

const BIN: &str = env!("CARGO_BIN_EXE_vibra-lab");

/// `vibra-lab reproduce fig3.8 --quick` as an unprivileged user: as root through
/// `setpriv` (uid/gid 65534), otherwise directly.
fn unprivileged(require_env: bool) -> Option<std::process::Output> {
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    cmd.args([
        "reproduce",
        "fig3.8",
        "--quick",
        "--generated-urls",
        "--out",
    ])
    .arg(std::env::temp_dir().join(format!("vibra-lab-unpriv-{}", std::process::id())))
    .env_remove("VIBRA_REQUIRE_PRIVILEGED");
    if require_env {
        cmd.env("VIBRA_REQUIRE_PRIVILEGED", "1");
    }
    cmd.output().ok()
}

#[test]
fn without_root_fig3_8_is_skipped_with_its_reason_or_fails_when_skipping_is_forbidden() {
    let test = "without_root_fig3_8_is_skipped";
    let Some(out) = unprivileged(false) else {
        return skip(test, "setpriv could not run the binary");
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("Permission denied") {
        return skip(test, "the binary is not reachable by uid 65534");
    }
    assert!(out.status.success(), "{err}");
    assert!(text.contains("== fig3.8: SKIPPED: needs root"), "{text}");
    assert!(err.contains("SKIPPED fig3.8: needs root"), "{err}");
    let out = unprivileged(true).expect("ran once already");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("VIBRA_REQUIRE_PRIVILEGED=1 forbids"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every cgroup directory named `name` under /sys/fs/cgroup (v1 hierarchies and v2).
fn cgroups_named(name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(top) = std::fs::read_dir("/sys/fs/cgroup") else {
        return found;
    };
    for h in top.flatten() {
        let direct = h.path().join(name);
        if direct.exists() {
            found.push(direct);
        }
        if let Ok(sub) = std::fs::read_dir(h.path()) {
            for s in sub.flatten() {
                let p = s.path().join(name);
                if s.path().is_dir() && p.exists() {
                    found.push(p);
                }
            }
        }
    }
    found
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(cmd) = std::fs::read(p.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(cmd);
            }
        }
    }
    found
}

fn run_folder(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        e.file_name()
            .to_str()?
            .strip_prefix("vibra-testbed-")
            .map(str::to_string)
    })
}

#[test]
fn ctrl_c_during_a_replay_tears_the_testbed_down() {
    let test = "ctrl_c_during_a_replay_tears_the_testbed_down";
    if !is_root() {
        return skip(test, "needs root for namespaces and cgroups");
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("testbed-ctrl-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "reproduce",
            "fig3.8",
            "--quick",
            "--generated-urls",
            "--out",
        ])
        .arg(dir.join("out"))
        .env("VIBRA_TESTBED_DIR", &dir)
        .env_remove("VIBRA_REQUIRE_PRIVILEGED")
        // Its own process group, signalled as a whole below, as a terminal's Ctrl-C does.
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vibra-lab starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let mut run_id = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("SKIPPED fig3.8") {
            let _ = child.wait();
            std::fs::remove_dir_all(&dir).unwrap();
            return skip(test, line.trim());
        }
        if line.contains("policy replays: 0%") {
            run_id = run_folder(&dir);
            break;
        }
    }
    let run_id = run_id.unwrap_or_else(|| panic!("no replay started: {seen}"));
    // Mid-replay: let some requests go through first.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !processes_mentioning(&format!("vibra-testbed-{run_id}")).is_empty(),
        "nginx of run {run_id} should be running"
    );
    let started = Instant::now();
    let kill = Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(kill.success());
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "an interrupted run must fail: {seen}");
    assert!(seen.contains("interrupted"), "{seen}");
    assert!(started.elapsed() < Duration::from_secs(120));
    // Nothing of the run is left.
    assert!(run_folder(&dir).is_none(), "corpus folder left");
    for i in 0..4 {
        let ns = format!("/run/netns/vt{run_id}b{i}");
        assert!(!Path::new(&ns).exists(), "{ns} left");
        let link = format!("/sys/class/net/vt{run_id}b{i}h");
        assert!(!Path::new(&link).exists(), "{link} left");
    }
    let cgroups = cgroups_named(&format!("vibra-testbed-{run_id}"));
    assert!(cgroups.is_empty(), "{cgroups:?}");
    let procs = processes_mentioning(&format!("vibra-testbed-{run_id}"));
    assert!(procs.is_empty(), "{procs:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
