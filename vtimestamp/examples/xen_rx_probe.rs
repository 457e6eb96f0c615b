//! Sender and receiver for the Xen lab's host-timestamp checks (integration/xen-netif-ts).
//!
//! ```sh
//! xen_rx_probe send 10.99.0.2:6000 50 20 dom0   # 50 datagrams, 20 ms apart, tagged "dom0"
//! xen_rx_probe recv 6000 100 60                 # up to 100 datagrams or 60 s
//! xen_rx_probe skew 10.99.0.2:6000 20           # the receiver's clock minus ours
//! ```
//!
//! Each datagram carries its tag and the sender's `CLOCK_REALTIME` in nanoseconds. The receiver
//! reads the kernel's `SO_TIMESTAMPNS` stamp (with the patched netfront, the host arrival time
//! that netback put on the ring), then its own clock, and prints one summary line per tag:
//!
//! `NETIF-PROBE tag=T n=N missing=M le_after=A send_le=S mult16=K stamp_minus_send=[lo,hi]
//! after_minus_stamp=[lo,hi]` (nanoseconds). `le_after` counts stamps <= the receiver's clock
//! after `recv` (two clocks: Domain-0's and the guest's, each Xen's wallclock read at boot plus
//! system time), `send_le` counts send times the stamp does not precede (a stamp later than
//! `send - 16 us`, as the 16 us record truncates), `mult16` counts stamps that are whole
//! multiples of 16 us, which a 16 us SPEC-7 record gives and a guest kernel stamp almost never
//! does.
//!
//! The receiver stops at COUNT datagrams, at the timeout, or at a datagram tagged `end`. It also
//! answers `sync` datagrams (not counted) with its clock, read after `recv`.
//! `skew` sends them and prints `NETIF-PROBE skew off_lo=L off_hi=H rtt=R` for the exchange with
//! the shortest round trip: the receiver's clock minus the sender's lies in [L, H] (its clock was
//! read between our send and our receive), so a check "stamp <= receiver's clock after recv"
//! across the two clocks is `after_minus_stamp - L >= 0`.
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vtimestamp::socket::{KernelClock, TimestampedSocket};

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

#[derive(Default)]
struct TagStats {
    n: u64,
    missing: u64,
    le_after: u64,
    send_le: u64,
    mult16: u64,
    stamp_minus_send: Option<(i128, i128)>,
    after_minus_stamp: Option<(i128, i128)>,
}

fn widen(r: &mut Option<(i128, i128)>, v: i128) {
    *r = Some(match *r {
        None => (v, v),
        Some((lo, hi)) => (lo.min(v), hi.max(v)),
    });
}

fn range(r: Option<(i128, i128)>) -> String {
    r.map_or_else(|| "[]".to_string(), |(lo, hi)| format!("[{lo},{hi}]"))
}

fn send(args: &[String]) -> Result<(), String> {
    let [addr, count, gap_ms, tag] = args else {
        return Err("usage: send ADDR COUNT GAP_MS TAG".into());
    };
    let count: u32 = count.parse().map_err(|e| format!("COUNT: {e}"))?;
    let gap = Duration::from_millis(gap_ms.parse().map_err(|e| format!("GAP_MS: {e}"))?);
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind: {e}"))?;
    for _ in 0..count {
        let msg = format!("{tag} {}", now_ns());
        sock.send_to(msg.as_bytes(), addr.as_str())
            .map_err(|e| format!("send_to {addr}: {e}"))?;
        std::thread::sleep(gap);
    }
    println!("NETIF-PROBE sent tag={tag} n={count}");
    Ok(())
}

fn skew(args: &[String]) -> Result<(), String> {
    let [addr, count] = args else {
        return Err("usage: skew ADDR COUNT".into());
    };
    let count: u32 = count.parse().map_err(|e| format!("COUNT: {e}"))?;
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| format!("set_read_timeout: {e}"))?;
    let mut best: Option<(i128, i128, i128)> = None; // (rtt, off_lo, off_hi)
    let mut buf = [0u8; 128];
    for _ in 0..count {
        let t1 = now_ns();
        sock.send_to(format!("sync {t1}").as_bytes(), addr.as_str())
            .map_err(|e| format!("send_to {addr}: {e}"))?;
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let t3 = now_ns();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut w = text.split_whitespace();
        let (Some("syncr"), Some(echo), Some(t2)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        let (Ok(echo), Ok(t2)) = (echo.parse::<i128>(), t2.parse::<i128>()) else {
            continue;
        };
        if echo != t1 {
            continue; // a late reply to an earlier request
        }
        let rtt = t3 - t1;
        if best.is_none_or(|(r, _, _)| rtt < r) {
            best = Some((rtt, t2 - t3, t2 - t1));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (rtt, lo, hi) = best.ok_or("no sync reply")?;
    println!("NETIF-PROBE skew off_lo={lo} off_hi={hi} rtt={rtt}");
    Ok(())
}

fn recv(args: &[String]) -> Result<(), String> {
    let [port, count, timeout_s] = args else {
        return Err("usage: recv PORT COUNT TIMEOUT_S".into());
    };
    let count: u64 = count.parse().map_err(|e| format!("COUNT: {e}"))?;
    let deadline = Instant::now()
        + Duration::from_secs(timeout_s.parse().map_err(|e| format!("TIMEOUT_S: {e}"))?);
    let sock = TimestampedSocket::bind(
        (
            "0.0.0.0",
            port.parse::<u16>().map_err(|e| format!("PORT: {e}"))?,
        ),
        KernelClock::Ns,
    )
    .map_err(|e| format!("bind: {e}"))?;
    sock.socket()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| format!("set_read_timeout: {e}"))?;
    println!("NETIF-PROBE listening port={port}");
    let mut stats: BTreeMap<String, TagStats> = BTreeMap::new();
    let mut total = 0u64;
    let mut buf = [0u8; 256];
    while total < count && Instant::now() < deadline {
        let got = match sock.recv(&mut buf) {
            Ok(g) => Ok(g),
            Err(e) if e.is_would_block() => continue,
            Err(e) => Err(e),
        };
        let after = now_ns();
        let text = match &got {
            Ok(g) => String::from_utf8_lossy(&buf[..g.len]).into_owned(),
            Err(_) => String::new(),
        };
        let mut words = text.split_whitespace();
        let tag = words.next().unwrap_or("untagged").to_string();
        let sent: Option<i128> = words.next().and_then(|w| w.parse().ok());
        if let (Ok(g), "sync", Some(t1)) = (&got, tag.as_str(), sent) {
            // A clock exchange for `skew`: not counted. A lost reply only costs that sample.
            let _ = sock
                .socket()
                .send_to(format!("syncr {t1} {after}").as_bytes(), g.from);
            continue;
        }
        if tag == "end" {
            break;
        }
        let st = stats.entry(tag).or_default();
        total += 1;
        st.n += 1;
        let stamp = match got.map(|g| g.arrival.to_unix_nanos()) {
            Ok(Ok(ns)) => ns as i128,
            _ => {
                st.missing += 1;
                continue;
            }
        };
        st.le_after += u64::from(stamp <= after);
        st.mult16 += u64::from(stamp % 16_000 == 0);
        widen(&mut st.after_minus_stamp, after - stamp);
        if let Some(s) = sent {
            // The record truncates to 16 us: a time t >= s arrives as a stamp > s - 16 us.
            st.send_le += u64::from(s - stamp < 16_000);
            widen(&mut st.stamp_minus_send, stamp - s);
        }
    }
    for (tag, st) in &stats {
        println!(
            "NETIF-PROBE tag={tag} n={} missing={} le_after={} send_le={} mult16={} stamp_minus_send={} after_minus_stamp={}",
            st.n,
            st.missing,
            st.le_after,
            st.send_le,
            st.mult16,
            range(st.stamp_minus_send),
            range(st.after_minus_stamp)
        );
    }
    println!("NETIF-PROBE done total={total}");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("send") => send(&args[1..]),
        Some("recv") => recv(&args[1..]),
        Some("skew") => skew(&args[1..]),
        _ => Err(
            "usage: xen_rx_probe send ADDR COUNT GAP_MS TAG | recv PORT COUNT TIMEOUT_S \
                  | skew ADDR COUNT"
                .into(),
        ),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("NETIF-PROBE error: {e}");
            ExitCode::FAILURE
        }
    }
}
