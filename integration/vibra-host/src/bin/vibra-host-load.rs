//! Load generators for the host-controller tests and benchmark, and for trying a backend by
//! hand: a CPU burner and a UDP traffic source. Each stops by itself after a bounded time.
//!
//! ```text
//! vibra-host-load burn <seconds>                            # spin one thread
//! vibra-host-load burn-until-connect <port> <seconds>       # spin until a TCP connection to <port>
//! vibra-host-load udp-send <ip:port> <seconds> [bytes/s]    # 1400-byte datagrams, optionally paced
//! ```

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn usage() -> ExitCode {
    eprintln!(
        "usage: vibra-host-load burn <seconds> | burn-until-connect <port> <seconds> | udp-send <ip:port> <seconds> [bytes_per_sec]"
    );
    ExitCode::from(2)
}

fn seconds(arg: Option<&String>) -> Option<Duration> {
    let s: f64 = arg?.parse().ok()?;
    (s.is_finite() && s > 0.0 && s <= 3600.0).then(|| Duration::from_secs_f64(s))
}

/// Spins until `end` or until `stop` is set.
fn burn(end: Instant, stop: &AtomicBool) {
    let mut x: u64 = 1;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("burn") => {
            let Some(limit) = seconds(args.get(1)) else {
                return usage();
            };
            burn(Instant::now() + limit, &AtomicBool::new(false));
            ExitCode::SUCCESS
        }
        Some("burn-until-connect") => {
            let (Some(port), Some(limit)) = (
                args.get(1).and_then(|p| p.parse::<u16>().ok()),
                seconds(args.get(2)),
            ) else {
                return usage();
            };
            let listener = match TcpListener::bind(("0.0.0.0", port)) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("vibra-host-load: listen on port {port}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            std::thread::spawn(move || {
                let _ = listener.accept();
                stop2.store(true, Ordering::Relaxed);
            });
            burn(Instant::now() + limit, &stop);
            eprintln!("vibra-host-load: burner stopped");
            ExitCode::SUCCESS
        }
        Some("udp-send") => {
            let (Some(addr), Some(limit)) = (
                args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
                seconds(args.get(2)),
            ) else {
                return usage();
            };
            let pace: Option<f64> = match args.get(3).map(|r| r.parse::<f64>()) {
                None => None,
                Some(Ok(r)) if r.is_finite() && r >= 1.0 => Some(r),
                Some(_) => return usage(),
            };
            let socket = match UdpSocket::bind(("0.0.0.0", 0)) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("vibra-host-load: bind: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let payload = [0x5au8; 1400];
            let start = Instant::now();
            let end = start + limit;
            let mut sent: f64 = 0.0;
            while Instant::now() < end {
                // A full qdisc answers ENOBUFS: that is the shaper working, so keep going.
                if socket.send_to(&payload, addr).is_err() {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                sent += payload.len() as f64;
                if let Some(rate) = pace {
                    let due = start + Duration::from_secs_f64(sent / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}
