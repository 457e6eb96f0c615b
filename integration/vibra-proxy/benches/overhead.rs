//! Proxy overhead per request: `vibra-proxy` (URL hash, R = 2, the fast hash, its own counts)
//! against Pingora's own round-robin proxy (`pingora-round-robin`: `LoadBalancer<RoundRobin>`
//! in `upstream_peer`, the same server set-up), both one worker thread, in front of the same
//! four loopback back ends, fed the same URLs over one keep-alive connection each.
//!
//! `vibra-proxy --policy round-robin` runs the same routing pattern as the baseline, so its
//! ratio is the cost of vibra-proxy's own per-request path (router, counts, hooks); the URL-hash
//! ratio adds what the routing pattern itself changes (which upstream connection is reused).
//!
//! Paired, interleaved rounds (the order rotates and reverses from round to round) so both proxies see the same
//! machine load. The measure is each proxy process's CPU time per request (the sum of its
//! threads' run time from `/proc/<pid>/task/*/schedstat`, in nanoseconds), which other
//! processes' load does not inflate the way it inflates wall time; wall time per request is
//! printed beside it. Prints the load average before and after.
//!
//! `cargo bench -p vibra-proxy --features pingora --bench overhead` (release build);
//! `VIBRA_BENCH_ROUNDS` and `VIBRA_BENCH_REQUESTS` override 15 rounds of 3,000 requests.

#[path = "../tests/support/backend.rs"]
mod backend;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use backend::{free_port, http_safe, start_backends};

struct Proxy {
    name: &'static str,
    child: Child,
    port: u16,
}

impl Proxy {
    fn start(name: &'static str, exe: &str, extra: &[&str], backends: &[String]) -> Proxy {
        let port = free_port();
        let child = Command::new(exe)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--threads", "1"])
            .args(extra)
            .args(backends)
            .stdout(Stdio::null())
            .spawn()
            .expect("start proxy");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{name} did not start");
            thread::sleep(Duration::from_millis(20));
        }
        Proxy { name, child, port }
    }

    /// Nanoseconds every thread of the process has run.
    fn cpu_ns(&self) -> u64 {
        let dir = format!("/proc/{}/task", self.child.id());
        std::fs::read_dir(dir)
            .expect("proc")
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends every URL once over one keep-alive connection, reading each response in full.
fn run(port: u16, urls: &[String]) {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut out = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    for url in urls {
        write!(out, "GET {url} HTTP/1.1\r\nHost: bench\r\n\r\n").unwrap();
        let mut length = None;
        let mut status_ok = false;
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.starts_with("HTTP/1.1 200") {
                status_ok = true;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        assert!(status_ok, "{url}: not 200");
        let mut body = vec![0; length.expect("content-length")];
        reader.read_exact(&mut body).unwrap();
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` convention: nothing to list
    }
    let rounds = env_or("VIBRA_BENCH_ROUNDS", 15);
    let requests = env_or("VIBRA_BENCH_REQUESTS", 3000);
    let mut urls: Vec<String> =
        match wc98::urls_or_skip("vibra-proxy overhead bench: World Cup URLs") {
            Some(list) => list
                .urls
                .iter()
                .filter(|u| http_safe(u))
                .map(|u| String::from_utf8(u.clone()).expect("ASCII"))
                .collect(),
            None => (0..5000)
                .map(|i| format!("/english/images/item_{i}.gif"))
                .collect(),
        };
    urls.truncate(requests);
    while urls.len() < requests {
        urls.extend_from_within(..urls.len().min(requests - urls.len()));
    }

    let backends = start_backends(4);
    let addrs: Vec<String> = backends.iter().map(|b| b.addr.to_string()).collect();
    let proxies = [
        Proxy::start(
            "vibra-proxy url-hash R=2",
            env!("CARGO_BIN_EXE_vibra-proxy"),
            &[
                "--policy",
                "url-hash",
                "--replication",
                "2",
                "--hash",
                "fast",
            ],
            &addrs,
        ),
        Proxy::start(
            "vibra-proxy round-robin",
            env!("CARGO_BIN_EXE_vibra-proxy"),
            &["--policy", "round-robin"],
            &addrs,
        ),
        Proxy::start(
            "pingora round-robin",
            env!("CARGO_BIN_EXE_pingora-round-robin"),
            &[],
            &addrs,
        ),
    ];
    println!("load average before: {}", loadavg());
    for p in &proxies {
        run(p.port, &urls); // warm-up: connection pools, caches
    }
    const P: usize = 3;
    let baseline = P - 1;
    let mut cpu: [Vec<f64>; P] = Default::default();
    let mut wall: [Vec<f64>; P] = Default::default();
    let mut ratio: [Vec<f64>; P] = Default::default();
    for round in 0..rounds {
        // Every order in turn, so no proxy always runs first or right after another.
        let mut order: [usize; P] = std::array::from_fn(|i| i);
        order.rotate_left(round % P);
        if (round / P) % 2 == 1 {
            order.reverse();
        }
        let mut this = [0.0; P];
        for i in order {
            let p = &proxies[i];
            let (c0, t0) = (p.cpu_ns(), Instant::now());
            run(p.port, &urls);
            let (c1, t1) = (p.cpu_ns(), t0.elapsed());
            this[i] = (c1 - c0) as f64 / requests as f64 / 1e3;
            cpu[i].push(this[i]);
            wall[i].push(t1.as_secs_f64() * 1e6 / requests as f64);
        }
        for i in 0..P {
            ratio[i].push(this[i] / this[baseline]);
        }
    }
    println!("load average after:  {}", loadavg());
    println!(
        "{rounds} paired rounds x {requests} requests, one keep-alive connection, 1 worker thread each"
    );
    for i in 0..P {
        let (c, cs) = mean_sd(&cpu[i]);
        let (w, ws) = mean_sd(&wall[i]);
        println!(
            "{:<26} proxy CPU {c:7.2} +- {cs:5.2} us/request   wall {w:7.2} +- {ws:5.2} us/request",
            proxies[i].name
        );
    }
    for i in 0..baseline {
        let (r, rs) = mean_sd(&ratio[i]);
        let mut sorted = ratio[i].clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "CPU ratio {} / pingora round-robin: mean {r:.3} +- {rs:.3} (median {:.3}, min {:.3}, max {:.3})",
            proxies[i].name,
            sorted[sorted.len() / 2],
            sorted[0],
            sorted[sorted.len() - 1]
        );
    }
}
