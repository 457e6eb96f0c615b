//! Kernel timestamps on real loopback sockets, and the control-message parser on bad input.
#![cfg(all(feature = "socket", target_os = "linux"))]

use std::net::UdpSocket;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use vtimestamp::socket::{KernelClock, RecvBatch, TimestampedSocket, parse_control};
use vtimestamp::{CmsgFault, TsError};

const DATAGRAMS: usize = 200;

fn pair(clock: KernelClock) -> (UdpSocket, TimestampedSocket) {
    let rx = TimestampedSocket::bind("127.0.0.1:0", clock).expect("bind receiver");
    // A generous timeout: only a broken kernel path would hit it, never a slow machine.
    rx.socket()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    tx.connect(rx.socket().local_addr().expect("addr"))
        .expect("connect");
    warm_up(&tx, &rx);
    (tx, rx)
}

/// Linux turns on arrival stamping for the whole machine from a work queue shortly after the
/// first socket asks for it (`net_enable_timestamp`), so a datagram that arrives in between
/// has no arrival stamp: `SO_TIMESTAMPING` then reports none (`MissingTimestamp`) and
/// `SO_TIMESTAMPNS` stamps it at `recvmsg` time. Probe until a datagram comes back stamped.
fn warm_up(tx: &UdpSocket, rx: &TimestampedSocket) {
    let mut buf = [0u8; 16];
    for _ in 0..10_000 {
        tx.send(b"probe").expect("send probe");
        match rx.recv(&mut buf) {
            Ok(_) => return,
            Err(TsError::MissingTimestamp) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("probe failed: {e}"),
        }
    }
    panic!("the kernel never stamped a datagram");
}

fn kernel_arrival_never_later_than_app_clock(clock: KernelClock) {
    let (tx, rx) = pair(clock);
    let mut buf = [0u8; 512];
    for i in 0..DATAGRAMS as u32 {
        let sent = SystemTime::now();
        tx.send(&i.to_le_bytes()).expect("send");
        let got = rx.recv(&mut buf).expect("recvmsg");
        let app = SystemTime::now();
        let arrival = got.arrival.to_system_time().expect("valid kernel time");
        assert_eq!(&buf[..got.len], &i.to_le_bytes());
        assert_eq!(got.from, tx.local_addr().expect("addr"));
        assert!(!got.truncated);
        assert!(
            arrival <= app,
            "kernel {arrival:?} later than app clock {app:?}"
        );
        // Loopback delivers synchronously inside send(): the stamp lies between the two reads.
        assert!(
            sent <= arrival,
            "kernel {arrival:?} before the send at {sent:?}"
        );
    }
}

#[test]
fn so_timestampns_arrival_is_not_later_than_app_clock_for_every_datagram() {
    kernel_arrival_never_later_than_app_clock(KernelClock::Ns);
}

#[test]
fn so_timestamping_software_arrival_is_not_later_than_app_clock_for_every_datagram() {
    kernel_arrival_never_later_than_app_clock(KernelClock::Software);
}

#[test]
fn recvmmsg_returns_every_datagram_with_its_own_arrival_time() {
    let (tx, rx) = pair(KernelClock::Ns);
    let payload = [7u8; 296];
    let mut batch = RecvBatch::new(16, 2048).expect("batch");
    let mut seen = Vec::new();
    let mut last = None;
    // Rounds of 10 keep the queue far below the default receive buffer: nothing is dropped.
    for round in 0..DATAGRAMS / 10 {
        for i in round * 10..round * 10 + 10 {
            let mut p = payload;
            p[..8].copy_from_slice(&(i as u64).to_le_bytes());
            tx.send(&p).expect("send");
        }
        while seen.len() < round * 10 + 10 {
            let n = rx.recv_batch(&mut batch).expect("recvmmsg");
            let app = SystemTime::now();
            assert!((1..=16).contains(&n));
            assert_eq!(batch.len(), n);
            for (bytes, meta) in batch.iter() {
                assert_eq!(bytes.len(), 296);
                let arrival = meta.arrival.to_system_time().expect("valid");
                assert!(arrival <= app);
                // Arrival times follow the send order.
                if let Some(prev) = last {
                    assert!(prev <= arrival);
                }
                last = Some(arrival);
                seen.push(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")));
            }
        }
    }
    assert_eq!(seen, (0..DATAGRAMS as u64).collect::<Vec<_>>());
}

#[test]
fn short_buffers_report_truncation() {
    let (tx, rx) = pair(KernelClock::Ns);
    tx.send(&[1u8; 100]).expect("send");
    let mut small = [0u8; 10];
    let got = rx.recv(&mut small).expect("recvmsg");
    assert!(got.truncated);
    assert_eq!(got.len, 10);
}

#[test]
fn would_block_is_a_typed_error() {
    let (_tx, rx) = pair(KernelClock::Ns);
    rx.socket().set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 8];
    assert!(
        rx.recv(&mut buf)
            .expect_err("nothing queued")
            .is_would_block()
    );
    let mut batch = RecvBatch::new(4, 64).expect("batch");
    assert!(
        rx.recv_batch(&mut batch)
            .expect_err("nothing queued")
            .is_would_block()
    );
    assert!(batch.is_empty());
}

#[test]
fn batch_sizes_are_checked() {
    assert!(matches!(
        RecvBatch::new(0, 1),
        Err(TsError::BatchSize { .. })
    ));
    assert!(matches!(
        RecvBatch::new(65, 1),
        Err(TsError::BatchSize { .. })
    ));
    assert!(matches!(
        RecvBatch::new(1, 0),
        Err(TsError::BatchSize { .. })
    ));
}

/// A `cmsghdr` + payload in the native 64-bit layout.
fn cmsg(len: usize, level: i32, kind: i32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&len.to_ne_bytes());
    v.extend_from_slice(&level.to_ne_bytes());
    v.extend_from_slice(&kind.to_ne_bytes());
    v.extend_from_slice(payload);
    while v.len() % 8 != 0 {
        v.push(0);
    }
    v
}

fn timespec(sec: i64, nsec: i64) -> Vec<u8> {
    [sec.to_ne_bytes(), nsec.to_ne_bytes()].concat()
}

#[test]
fn malformed_control_messages_are_typed_errors() {
    let ok = cmsg(32, libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &timespec(5, 6));
    assert_eq!(
        parse_control(&ok).expect("valid").ns.map(|t| t.tv_nsec),
        Some(6)
    );
    let fault = |bytes: &[u8]| match parse_control(bytes) {
        Err(TsError::MalformedCmsg { fault, .. }) => fault,
        other => panic!("expected a malformed-cmsg error, got {other:?}"),
    };
    assert_eq!(fault(&cmsg(3, 1, 1, &[])), CmsgFault::LengthBelowHeader(3));
    assert!(matches!(
        fault(&cmsg(64, 1, 1, &[0; 8])),
        CmsgFault::LengthPastEnd { len: 64, .. }
    ));
    let short = cmsg(24, libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &[0; 8]);
    assert_eq!(
        fault(&short),
        CmsgFault::PayloadSize {
            len: 8,
            expected: 16
        }
    );
    let bad_ns = cmsg(
        32,
        libc::SOL_SOCKET,
        libc::SCM_TIMESTAMPNS,
        &timespec(1, 1_000_000_000),
    );
    assert!(matches!(fault(&bad_ns), CmsgFault::BadTimespec { .. }));
    let negative = cmsg(
        32,
        libc::SOL_SOCKET,
        libc::SCM_TIMESTAMPNS,
        &timespec(-1, 0),
    );
    assert!(matches!(fault(&negative), CmsgFault::BadTimespec { .. }));
    // Found by the cmsg_parse fuzz target: a time too far in the future for u64 nanoseconds.
    let far = cmsg(
        32,
        libc::SOL_SOCKET,
        libc::SCM_TIMESTAMPNS,
        &timespec(0x7878_7878_f61a_2500, 15),
    );
    assert!(matches!(fault(&far), CmsgFault::BadTimespec { .. }));
    // A second, malformed message after a good one is still caught, with its offset.
    let both = [ok.clone(), cmsg(8, 1, 1, &[])].concat();
    assert!(matches!(
        parse_control(&both),
        Err(TsError::MalformedCmsg { offset: 32, .. })
    ));
    // Unknown messages are skipped; SCM_TIMESTAMPING's software stamp is found.
    let tsing = [
        cmsg(24, libc::IPPROTO_IP, libc::IP_TTL, &[64, 0, 0, 0]),
        cmsg(
            64,
            libc::SOL_SOCKET,
            libc::SCM_TIMESTAMPING,
            &[timespec(9, 10), timespec(0, 0), timespec(0, 0)].concat(),
        ),
    ]
    .concat();
    let found = parse_control(&tsing).expect("valid");
    assert_eq!(found.software.map(|t| (t.tv_sec, t.tv_nsec)), Some((9, 10)));
    assert_eq!(found.arrival(), found.software);
}

proptest! {
    #[test]
    fn cmsg_parse_of_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_control(&bytes);
    }

    #[test]
    fn cmsg_parse_finds_any_valid_timestamp(sec in 0i64..1 << 34, nsec in 0i64..1_000_000_000, pad in 0usize..3) {
        let mut bytes = Vec::new();
        for _ in 0..pad {
            bytes.extend(cmsg(20, libc::IPPROTO_IP, libc::IP_TOS, &[0; 4]));
        }
        bytes.extend(cmsg(32, libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &timespec(sec, nsec)));
        let ts = parse_control(&bytes)?.arrival().expect("found");
        prop_assert_eq!((ts.tv_sec, ts.tv_nsec), (sec, nsec));
    }

    #[test]
    fn every_parsed_timestamp_converts_to_system_time(sec in any::<i64>(), nsec in any::<i64>()) {
        let bytes = cmsg(32, libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &timespec(sec, nsec));
        if let Ok(found) = parse_control(&bytes) {
            let ts = found.arrival().expect("found");
            prop_assert!(ts.to_system_time().is_ok());
        }
    }
}
