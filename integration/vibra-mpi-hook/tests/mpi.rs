//! Real Open MPI (or MPICH) runs of `examples/mpi/patterns` with and without the PMPI hook.
//!
//! Needs `mpicc` and `mpirun` on the PATH (Debian: openmpi-bin libopenmpi-dev). Without them
//! every test says so on stderr and passes, unless `VIBRA_REQUIRE_MPI=1` (CI: `.ci/mpi.sh`),
//! which turns the skip into a failure. The C sources are built with their Makefiles into
//! cargo's per-test temporary directory; the MPI runs are serialised (one at a time), because
//! the CPU test compares CPU time and the machine may have only 2 cores.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use vibra_mpi_hook::{UpstreamConfig, Upstreams, WaitKind, WaitListener, WaitRecord, job_hash};

static SERIAL: Mutex<()> = Mutex::new(());

struct Built {
    dir: PathBuf,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Builds the hook, the benchmarks and patterns once; None (after a loud skip) without MPI.
fn built(test: &str) -> Option<(&'static Built, MutexGuard<'static, ()>)> {
    static BUILT: OnceLock<Option<Built>> = OnceLock::new();
    let b = BUILT.get_or_init(|| {
        if !have("mpicc") || !have("mpirun") {
            return None;
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vibra-mpi-hook");
        std::fs::create_dir_all(&dir).expect("create build directory");
        let root = repo_root();
        for mk in ["integration/vibra-mpi-hook/c", "examples/mpi"] {
            let st = Command::new("make")
                .arg("-s")
                .arg("-f")
                .arg(root.join(mk).join("Makefile"))
                .arg(format!("OUT={}", dir.display()))
                .status()
                .expect("run make");
            assert!(st.success(), "make in {mk} failed");
        }
        Some(Built { dir })
    });
    match b {
        Some(b) => Some((b, SERIAL.lock().unwrap_or_else(|e| e.into_inner()))),
        None => {
            assert!(
                std::env::var("VIBRA_REQUIRE_MPI").as_deref() != Ok("1"),
                "{test}: mpicc/mpirun not found and VIBRA_REQUIRE_MPI=1"
            );
            eprintln!(
                "SKIPPED {test}: mpicc/mpirun not found (apt-get install openmpi-bin \
                 libopenmpi-dev; VIBRA_REQUIRE_MPI=1 makes this a failure)"
            );
            None
        }
    }
}

/// `mpirun -np N [-x VAR=..]... prog args`; returns stdout, panics with stderr on failure.
fn mpirun(np: usize, env: &[(&str, String)], prog: &Path, args: &[&str]) -> (String, String) {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np"])
        .arg(np.to_string());
    for (k, v) in env {
        c.arg("-x").arg(format!("{k}={v}"));
    }
    c.arg(prog).args(args);
    let out = c.output().expect("run mpirun");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "mpirun {prog:?} {args:?} failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

struct RankLine {
    compute_s: f64,
    wait_s: f64,
    cpu_s: f64,
    wait_cpu_s: f64,
}

fn field(line: &str, name: &str) -> f64 {
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        if w == name {
            return it.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
        }
    }
    f64::NAN
}

/// (response time, per-rank lines) from patterns' output.
fn parse_patterns(out: &str, np: usize) -> (f64, Vec<RankLine>) {
    let response = out
        .lines()
        .find(|l| l.starts_with("response_time_s "))
        .map(|l| field(l, "response_time_s"))
        .unwrap_or(f64::NAN);
    let ranks: Vec<RankLine> = out
        .lines()
        .filter(|l| l.starts_with("rank "))
        .map(|l| RankLine {
            compute_s: field(l, "compute_s"),
            wait_s: field(l, "wait_s"),
            cpu_s: field(l, "cpu_s"),
            wait_cpu_s: field(l, "wait_cpu_s"),
        })
        .collect();
    assert_eq!(ranks.len(), np, "one line per rank in:\n{out}");
    (response, ranks)
}

#[test]
fn patterns_runs_and_prints_its_response_time() {
    let Some((b, _g)) = built("patterns_runs_and_prints_its_response_time") else {
        return;
    };
    for topo in ["linear", "all"] {
        let (out, _) = mpirun(
            4,
            &[],
            &b.dir.join("patterns"),
            &["-t", topo, "-n", "4", "-e", "20"],
        );
        let (response, ranks) = parse_patterns(&out, 4);
        assert!(response > 0.0 && response.is_finite(), "{out}");
        for (i, r) in ranks.iter().enumerate() {
            assert!(
                r.compute_s > 0.0 && r.wait_s >= 0.0 && r.cpu_s >= 0.0,
                "rank {i}: {out}"
            );
            assert!(r.compute_s + r.wait_s <= response * 1.05 + 0.01, "{out}");
        }
    }
}

/// Runs patterns under the hook with a socket bound, returns the records received.
fn records_of(b: &Built, tag: &str, args: &[&str]) -> Vec<WaitRecord> {
    let sock_path = b.dir.join(format!("wait-{tag}.sock"));
    let _ = std::fs::remove_file(&sock_path);
    let mut listener = WaitListener::bind(&sock_path).expect("bind the record socket");
    let env = [
        (
            "LD_PRELOAD",
            b.dir.join("libvibra_mpi_hook.so").display().to_string(),
        ),
        ("VIBRA_MPI_SOCKET", sock_path.display().to_string()),
        ("VIBRA_MPI_JOB", format!("test-{tag}")),
        ("VIBRA_MPI_FLUSH_MS", "50".to_string()),
    ];
    // Read while the program runs: a datagram socket's queue is short (net.unix.max_dgram_qlen
    // and the receive buffer), and the hook drops what does not fit rather than block.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut recs = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                let d = listener
                    .drain(|r| recs.push(*r))
                    .expect("read the record socket");
                assert_eq!(d.rejected, 0, "{:?}", listener.last_rejection());
                if finished {
                    return recs;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    mpirun(4, &env, &b.dir.join("patterns"), args);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    reader.join().expect("reader thread")
}

#[test]
fn hook_names_each_ranks_upstream_neighbour_in_a_linear_1_over_i_program() {
    let Some((b, _g)) = built("hook_names_each_ranks_upstream_neighbour") else {
        return;
    };
    // Node i = rank + 1 computes 1/i: in the linear chain every rank r > 0 is held back by its
    // left neighbour r - 1, the one that computes more; rank 0 waits on nobody for long.
    for mode in ["waitall", "sendrecv", "recv"] {
        let recs = records_of(b, mode, &["-n", "6", "-e", "200", "-c", mode]);
        assert!(!recs.is_empty(), "{mode}: no records");
        let job = job_hash(&format!("test-{mode}"));
        let mut total = [[0u64; 4]; 4];
        for r in &recs {
            assert_eq!((r.job, r.world_size), (job, 4), "{r:?}");
            if r.kind == WaitKind::PointToPoint {
                total[r.rank as usize][r.peer as usize] += r.wait_ns;
            }
        }
        for rank in 1..4 {
            let (peer, ns) = (0..4)
                .map(|p| (p, total[rank][p]))
                .max_by_key(|&(_, ns)| ns)
                .unwrap();
            assert_eq!(
                peer,
                rank - 1,
                "{mode}: rank {rank} waited most on {peer}: {total:?}"
            );
            assert!(ns > 1_000_000, "{mode}: rank {rank}: {total:?}");
            // The linear topology has no other edges.
            for (p, &w) in total[rank].iter().enumerate() {
                assert!(
                    w == 0 || p + 1 == rank || p == rank + 1,
                    "{mode}: {total:?}"
                );
            }
        }
        // The same records as upstream sets: each rank r > 0 has r - 1 (and rank 3, the last,
        // only that); rank 0 waited on rank 1 only for message transit, under min_wait_ns.
        let mut ups = Upstreams::new(UpstreamConfig {
            min_wait_ns: 5_000_000,
            ..Default::default()
        })
        .unwrap();
        let mut last = 0.0f64;
        for r in &recs {
            ups.ingest(r);
            last = last.max(r.end_ns as f64 * 1e-9);
        }
        for rank in 1..4u32 {
            assert!(
                ups.upstreams(job, rank, last).contains(&(rank - 1)),
                "{mode}: {rank}: {total:?}"
            );
        }
        assert_eq!(ups.upstreams(job, 3, last), vec![2], "{mode}: {total:?}");
    }
}

#[test]
fn hook_makes_a_waiting_rank_give_its_cpu_away() {
    let Some((b, _g)) = built("hook_makes_a_waiting_rank_give_its_cpu_away") else {
        return;
    };
    // Two ranks, no oversubscription (Open MPI then polls without even yielding); rank 1 does
    // half of rank 0's work and waits the rest of each iteration. patterns reports each rank's
    // CPU time inside the exchange calls (wait_cpu_s) and its whole CPU time from
    // /proc/self/stat (cpu_s): the same work, so the difference between the runs is the CPU
    // burnt by busy-polling. The machine may be loaded: a spinner then gets less than a core,
    // so the bounds are relative to the wait time, not absolute.
    // 24 iterations: on an idle machine the ranks' waits add up to only ~0.1 s in 8.
    let args = ["-t", "all", "-n", "24", "-e", "200"];
    let prog = b.dir.join("patterns");
    let run = |env: &[(&str, String)]| {
        let mut c = Command::new("mpirun");
        c.args(["--allow-run-as-root", "-np", "2"]);
        for (k, v) in env {
            c.arg("-x").arg(format!("{k}={v}"));
        }
        let out = c.arg(&prog).args(args).output().expect("mpirun");
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{s}");
        let (_, r) = parse_patterns(&s, 2);
        let sum = |f: fn(&RankLine) -> f64| r.iter().map(f).sum::<f64>();
        (
            sum(|r| r.wait_cpu_s),
            sum(|r| r.wait_s),
            sum(|r| r.cpu_s),
            s,
        )
    };
    let (spin_plain, wait_plain, cpu_plain, out_plain) = run(&[]);
    let hook = b.dir.join("libvibra_mpi_hook.so").display().to_string();
    let (spin_hook, wait_hook, cpu_hook, out_hook) = run(&[("LD_PRELOAD", hook)]);
    eprintln!(
        "CPU in waits: without hook {spin_plain:.3} s over {wait_plain:.2} s of waits \
         (/proc cpu {cpu_plain:.2} s), with hook {spin_hook:.3} s over {wait_hook:.2} s \
         (/proc cpu {cpu_hook:.2} s)"
    );
    // Spinning burns CPU through the wait (less of it when other work loads the machine);
    // the waits must be long enough to tell.
    assert!(
        wait_plain >= 0.1 && spin_plain >= 0.1 * wait_plain,
        "the plain run should spin:\n{out_plain}"
    );
    // The hook's own polls cost about 2% of a long wait on an idle machine (README, bench_wake)
    // and twice that when the test runs beside others (CI measured 0.081 s over 2.03 s): allow
    // 10%, still a tenth of what a spinner takes.
    assert!(
        spin_hook <= 0.1 * wait_hook + 0.02 && spin_hook <= spin_plain / 3.0,
        "with the hook the waiting rank should sleep: {spin_hook:.3} s vs {spin_plain:.3} s\n\
         {out_hook}"
    );
    // The whole process's CPU (/proc/self/stat) is printed, not asserted: it also holds the
    // compute, which is not the hook's to promise. On an idle machine a run measured 1.22 s
    // with the hook against 1.00 s without, while the CPU spent inside the waits fell from
    // 0.254 s to 0.011 s: ranks that sleep between polls compute more slowly afterwards (cold
    // caches, wake-up latency), so the total is no proxy for what the hook gives away.
}

#[test]
fn no_socket_never_fails_the_program() {
    let Some((b, _g)) = built("no_socket_never_fails_the_program") else {
        return;
    };
    let env = [
        (
            "LD_PRELOAD",
            b.dir.join("libvibra_mpi_hook.so").display().to_string(),
        ),
        (
            "VIBRA_MPI_SOCKET",
            b.dir.join("nobody-listens.sock").display().to_string(),
        ),
        ("VIBRA_MPI_SUMMARY", "1".to_string()),
    ];
    let (out, err) = mpirun(
        4,
        &env,
        &b.dir.join("patterns"),
        &["-n", "4", "-e", "20", "-B"],
    );
    let (response, _) = parse_patterns(&out, 4);
    assert!(response > 0.0, "{out}");
    // Every rank kept counting and says how many records it could not deliver.
    for rank in 0..4 {
        let line = err
            .lines()
            .find(|l| l.starts_with(&format!("vibra-mpi-hook: rank {rank} sent 0 records")))
            .unwrap_or_else(|| panic!("no summary of rank {rank}:\n{err}"));
        assert!(!line.ends_with("dropped 0"), "{line}");
    }
    assert!(
        err.contains("collective waits"),
        "barrier waits counted:\n{err}"
    );
}

#[test]
fn c_encoder_and_rust_decoder_agree() {
    let Some((b, _g)) = built("c_encoder_and_rust_decoder_agree") else {
        return;
    };
    let src = b.dir.join("encode.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include "vibra_mpi_wait.h"
int main(void) {
    struct vibra_mpi_wait r = {1, 0, 0x11223344u, 3, 4, 2, 9, 0xA0B0C0D0E0F0ull, 5, 6};
    uint8_t b[VIBRA_MPI_WAIT_LEN];
    int i;
    r.job = vibra_mpi_wait_job_hash("job-7");
    vibra_mpi_wait_encode(&r, b);
    for (i = 0; i < VIBRA_MPI_WAIT_LEN; i++) printf("%02x", b[i]);
    return 0;
}
"#,
    )
    .unwrap();
    let exe = b.dir.join("encode");
    let st = Command::new("mpicc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(repo_root().join("integration/vibra-mpi-hook/c"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap();
    assert!(st.success());
    let hex = String::from_utf8(Command::new(&exe).output().unwrap().stdout).unwrap();
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let r = WaitRecord::decode(&bytes).expect("C bytes decode");
    let want = WaitRecord {
        kind: WaitKind::Collective,
        job: job_hash("job-7"),
        pid: 0x1122_3344,
        rank: 3,
        world_size: 4,
        peer: 2,
        waits: 9,
        wait_ns: 0xA0B0_C0D0_E0F0,
        start_ns: 5,
        end_ns: 6,
    };
    assert_eq!(r, want);
    assert_eq!(bytes, want.encode());
}
