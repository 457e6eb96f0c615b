//! Sender and receiver for the Xen lab's host-timestamp checks (integration/xen-netif-ts).
//!
//! ```sh
//! xen_rx_probe send 10.99.0.2:6000 50 20 dom0   # 50 datagrams, 20 ms apart, tagged "dom0"
//! xen_rx_probe recv 6000 100 60                 # up to 100 datagrams or 60 s
//! xen_rx_probe skew 10.99.0.2:6000 20           # the receiver's clock minus ours
//! xen_rx_probe compare rx_ts_log guest.log 3     # stamps against netback's log (domain 3)
//! ```
//!
//! Each datagram carries its tag, the sender's `CLOCK_REALTIME` in nanoseconds and, as its last
//! 8 bytes, an identifier: 8 hex digits, the high 16 bits a hash of the tag, the low 16 the
//! datagram's number (`TAG NS IDID`). The receiver
//! reads the kernel's `SO_TIMESTAMPNS` stamp (with the patched netfront, the host arrival time
//! that netback put on the ring), then its own clock, and prints one summary line per tag:
//!
//! `NETIF-PROBE tag=T n=N missing=M le_after=A send_le=S mult16=K stamp_minus_send=[lo,hi]
//! after_minus_stamp=[lo,hi]` (nanoseconds). `le_after` counts stamps <= the receiver's clock
//! after `recv` (two clocks: Domain-0's and the guest's, each Xen's wallclock read at boot plus
//! system time), `send_le` counts send times the stamp does not precede (a stamp later than
//! `send - 16 us`, as the 16 us record truncates), `mult16` counts stamps that are whole
//! multiples of 16 us, which a 16 us SPEC-7 record gives and a guest kernel stamp almost never
//! does. Then one line per stamped datagram, `NETIF-STAMP tag=T id=HEX stamp=NS send=NS
//! after=NS`, where HEX is the datagram's last 8 bytes in hex (as netback's log prints them).
//!
//! `compare NETBACK_LOG GUEST_LOG DOMID` joins those lines (from the receiver's console, in
//! domain DOMID) with the patched netback's test-only log (debugfs `xen-netback/rx_ts_log`,
//! lines `seq=N dom=D ns=T flags=XX id=HEX`) on the identifier and prints, per tag,
//! `NETIF-PROBE compare tag=T n=N logged=L equal=E local=K diff_ns=[lo,hi]`: L datagrams have
//! exactly one record for DOMID with their identifier, E of them a stamp equal to the logged
//! time truncated to the record's 16 us, K of them a record flagged LOCAL (bit 3: netback's own
//! time), and `diff_ns` is the range of logged time minus stamp. Then `NETIF-PROBE log dom=D
//! records=R` for each domain in the log.
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

/// The record's resolution (SPEC 7): a stamp is the host time truncated to a multiple of this.
const RECORD_NS: i128 = 16_000;

/// LOCAL, flag bit 3 of the record: the time is netback's, not a host receive stamp.
const FLAG_LOCAL: u8 = 0x08;

/// The datagram identifier's tag part: FNV-1a of the tag, high 16 bits.
fn tag_hash(tag: &str) -> u32 {
    let h = tag.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    h & 0xffff_0000
}

/// Lower-case hex of bytes, as the kernel's `%*phN` prints them.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn send(args: &[String]) -> Result<(), String> {
    let [addr, count, gap_ms, tag] = args else {
        return Err("usage: send ADDR COUNT GAP_MS TAG".into());
    };
    let count: u32 = count.parse().map_err(|e| format!("COUNT: {e}"))?;
    let gap = Duration::from_millis(gap_ms.parse().map_err(|e| format!("GAP_MS: {e}"))?);
    let sock = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind: {e}"))?;
    for i in 0..count {
        let id = tag_hash(tag) | (i & 0xffff);
        let msg = format!("{tag} {} {id:08x}", now_ns());
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
    let mut stamps: Vec<String> = Vec::new();
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
        let id = match &got {
            Ok(g) if g.len >= 8 => hex(&buf[g.len - 8..g.len]),
            _ => "-".to_string(),
        };
        let st = stats.entry(tag.clone()).or_default();
        total += 1;
        st.n += 1;
        let stamp = match got.map(|g| g.arrival.to_unix_nanos()) {
            Ok(Ok(ns)) => ns as i128,
            _ => {
                st.missing += 1;
                continue;
            }
        };
        // Printed after the loop, so the console does not delay the next recv.
        stamps.push(format!(
            "NETIF-STAMP tag={tag} id={id} stamp={stamp} send={} after={after}",
            sent.map_or_else(|| "-".to_string(), |s| s.to_string())
        ));
        st.le_after += u64::from(stamp <= after);
        st.mult16 += u64::from(stamp % RECORD_NS == 0);
        widen(&mut st.after_minus_stamp, after - stamp);
        if let Some(s) = sent {
            // The record truncates to 16 us: a time t >= s arrives as a stamp > s - 16 us.
            st.send_le += u64::from(s - stamp < RECORD_NS);
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
    for line in &stamps {
        println!("{line}");
    }
    println!("NETIF-PROBE done total={total}");
    Ok(())
}

/// `key=value` from a line of space-separated pairs.
fn kv<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// One record of netback's test-only log.
struct LogRecord {
    dom: u32,
    ns: i128,
    flags: u8,
    id: String,
}

fn parse_log_line(line: &str) -> Option<LogRecord> {
    Some(LogRecord {
        dom: kv(line, "dom")?.parse().ok()?,
        ns: kv(line, "ns")?.parse().ok()?,
        flags: u8::from_str_radix(kv(line, "flags")?, 16).ok()?,
        id: kv(line, "id")?.to_string(),
    })
}

#[derive(Default)]
struct CompareStats {
    n: u64,
    logged: u64,
    equal: u64,
    local: u64,
    diff: Option<(i128, i128)>,
}

fn compare(args: &[String]) -> Result<(), String> {
    let [log_path, guest_path, domid] = args else {
        return Err("usage: compare NETBACK_LOG GUEST_LOG DOMID".into());
    };
    let domid: u32 = domid.parse().map_err(|e| format!("DOMID: {e}"))?;
    let log = std::fs::read_to_string(log_path).map_err(|e| format!("{log_path}: {e}"))?;
    let guest = std::fs::read_to_string(guest_path).map_err(|e| format!("{guest_path}: {e}"))?;
    let mut per_dom: BTreeMap<u32, u64> = BTreeMap::new();
    let mut by_id: BTreeMap<String, Vec<LogRecord>> = BTreeMap::new();
    for line in log.lines() {
        let Some(r) = parse_log_line(line) else {
            return Err(format!("{log_path}: unreadable line {line:?}"));
        };
        *per_dom.entry(r.dom).or_default() += 1;
        if r.dom == domid && r.id != "-" {
            by_id.entry(r.id.clone()).or_default().push(r);
        }
    }
    let mut stats: BTreeMap<String, CompareStats> = BTreeMap::new();
    for line in guest.lines() {
        let Some(rest) = line.trim_end_matches('\r').strip_prefix("NETIF-STAMP ") else {
            continue;
        };
        let (Some(tag), Some(id), Some(stamp)) = (
            kv(rest, "tag"),
            kv(rest, "id"),
            kv(rest, "stamp").and_then(|s| s.parse::<i128>().ok()),
        ) else {
            return Err(format!("{guest_path}: unreadable line {line:?}"));
        };
        let st = stats.entry(tag.to_string()).or_default();
        st.n += 1;
        // Exactly one record for this packet: an identifier seen twice proves nothing.
        let Some([r]) = by_id.get(id).map(Vec::as_slice) else {
            continue;
        };
        st.logged += 1;
        st.equal += u64::from(stamp == r.ns - r.ns.rem_euclid(RECORD_NS));
        st.local += u64::from(r.flags & FLAG_LOCAL != 0);
        widen(&mut st.diff, r.ns - stamp);
    }
    for (tag, st) in &stats {
        println!(
            "NETIF-PROBE compare tag={tag} n={} logged={} equal={} local={} diff_ns={}",
            st.n,
            st.logged,
            st.equal,
            st.local,
            range(st.diff)
        );
    }
    for (dom, records) in &per_dom {
        println!("NETIF-PROBE log dom={dom} records={records}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("send") => send(&args[1..]),
        Some("recv") => recv(&args[1..]),
        Some("skew") => skew(&args[1..]),
        Some("compare") => compare(&args[1..]),
        _ => Err(
            "usage: xen_rx_probe send ADDR COUNT GAP_MS TAG | recv PORT COUNT TIMEOUT_S \
                  | skew ADDR COUNT | compare NETBACK_LOG GUEST_LOG DOMID"
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
