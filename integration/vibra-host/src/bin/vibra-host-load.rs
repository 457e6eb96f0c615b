//! Load generators for the host-controller tests and benchmark, and for trying a backend by
//! hand: a CPU burner and a UDP traffic source. Both stop by themselves after a bounded time.
//!
//! ```text
//! vibra-host-load burn <seconds>                 # spin on one thread
//! vibra-host-load udp-send <ip:port> <seconds>   # send 1400-byte datagrams as fast as possible
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn usage() -> ExitCode {
    eprintln!("usage: vibra-host-load burn <seconds> | udp-send <ip:port> <seconds>");
    ExitCode::from(2)
}

fn seconds(arg: Option<&String>) -> Option<Duration> {
    let s: f64 = arg?.parse().ok()?;
    (s.is_finite() && s > 0.0 && s <= 3600.0).then(|| Duration::from_secs_f64(s))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("burn") => {
            let Some(limit) = seconds(args.get(1)) else {
                return usage();
            };
            let end = Instant::now() + limit;
            let mut x: u64 = 1;
            while Instant::now() < end {
                for _ in 0..100_000 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            ExitCode::SUCCESS
        }
        Some("udp-send") => {
            let (Some(addr), Some(limit)) = (
                args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
                seconds(args.get(2)),
            ) else {
                return usage();
            };
            let socket = match UdpSocket::bind(("0.0.0.0", 0)) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("vibra-host-load: bind: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let payload = [0x5au8; 1400];
            let end = Instant::now() + limit;
            while Instant::now() < end {
                // A full qdisc answers ENOBUFS: that is the shaper working, so keep going.
                if socket.send_to(&payload, addr).is_err() {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}
