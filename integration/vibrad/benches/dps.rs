//! The dps role's costs. Run: `cargo bench -p vibrad --bench dps`.
//!
//! - `dps/round_trip`: one transfer between two daemons on loopback: daemon A sends an open
//!   offer (`retransmit`), daemon B receives, decides and answers it, A receives the reply and
//!   closes the transfer (two UDP datagrams, two decodes, two ledger steps).
//! - `dps/period_100`: one period (`tick`) for 100 VMs on one host, fully distributed, each VM
//!   waiting on the next (offers delivered in-process), CPU use from an in-memory controller:
//!   usage reads, SPEC 6 offers, transfers and the 100 CPU settings (kernel writes excluded).
//! - `dps/record_100/memory` and `dps/record_100/etcd`: recording one host's ledger in the
//!   directory (the compare-and-swap the role makes before a datagram leaves when its ledger
//!   changed) for a host of 100 VMs with 50 open transfers and 50 decisions (about 13 KB of
//!   JSON), in memory and on a real local etcd (left out without an `etcd` binary).

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::CpuHost;
use criterion::{Criterion, criterion_group, criterion_main};
use dps_core::{Party, VmId};
use vibrad::config::Config;
use vibrad::directory::Directory;
use vibrad::dps::DpsRole;
use vibrad::dps::ledger::{HostLedger, Layout};

fn port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn round_trip(c: &mut Criterion) {
    let (pa, pb) = (port(), port());
    let cfg = |me: u16, other: u16, host: &str, peer: &str| {
        Config::parse(&format!(
            "host = \"{host}\"\nroles = [\"dps\"]\n[dps]\nlisten = \"127.0.0.1:{me}\"\ntotal = 1.0\ncpus = 1.0\n\
             [dps.peers]\n{peer} = \"127.0.0.1:{other}\"\n[[dps.vm]]\nname = \"a\"\nhost = \"ha\"\n\
             [[dps.vm]]\nname = \"b\"\nhost = \"hb\"\n"
        ))
        .unwrap()
    };
    let host = |vm: &str| CpuHost {
        vms: [vm.to_string()].into(),
        ..CpuHost::default()
    };
    let mut a = DpsRole::new(&cfg(pa, pb, "ha", "hb"), host("a")).unwrap();
    let mut b = DpsRole::new(&cfg(pb, pa, "hb", "ha"), host("b")).unwrap();
    let (la, lb) = (a.ledger(), b.ledger());
    let wait = Duration::from_secs(1);
    c.bench_function("dps/round_trip", |bench| {
        bench.iter(|| {
            la.lock()
                .send(Party::Vm(VmId(0)), Party::Vm(VmId(1)), 1e-6)
                .unwrap();
            a.retransmit();
            assert_eq!(b.recv_one(wait), Some(true));
            assert_eq!(a.recv_one(wait), Some(true));
            // Give the share back without a round trip of the bench's own.
            lb.lock()
                .send(Party::Vm(VmId(1)), Party::Vm(VmId(0)), 1e-6)
                .unwrap();
            b.retransmit();
            assert_eq!(a.recv_one(wait), Some(true));
            assert_eq!(b.recv_one(wait), Some(true));
        });
    });
}

fn period_100(c: &mut Criterion) {
    const VMS: usize = 100;
    let mut s = format!(
        "host = \"h\"\nroles = [\"dps\"]\n[dps]\nlisten = \"127.0.0.1:{}\"\ntotal = 50.0\ncpus = 100.0\n",
        port()
    );
    for i in 0..VMS {
        s.push_str(&format!(
            "[[dps.vm]]\nname = \"v{i}\"\nhost = \"h\"\nupstreams = [\"v{}\"]\n",
            (i + 1) % VMS
        ));
    }
    let cfg = Config::parse(&s).unwrap();
    let host = CpuHost {
        vms: (0..VMS).map(|i| format!("v{i}")).collect(),
        start: Some(Instant::now()),
        ..CpuHost::default()
    };
    for i in 0..VMS {
        // every other VM waits; the rest compute flat out
        host.rate
            .lock()
            .insert(format!("v{i}"), if i % 2 == 0 { 0.05 } else { 1.0 });
    }
    let mut role = DpsRole::new(&cfg, host).unwrap();
    role.tick().unwrap();
    c.bench_function("dps/period_100", |bench| {
        bench.iter(|| role.tick().unwrap());
    });
}

/// A ledger of host 0 of two with 100 VMs each: 50 offers open to host 1, 50 decisions on
/// host 1's offers.
fn busy_ledger() -> HostLedger {
    let layout = |me| Layout {
        me,
        bank_host: None,
        vm_host: (0..200).map(|v| u16::from(v >= 100)).collect(),
        total: 100.0,
        cpus: 200.0,
        background: 0.0,
    };
    let mut a = HostLedger::new(layout(0), Default::default(), 1);
    let mut b = HostLedger::new(layout(1), Default::default(), 2);
    for v in 0..50u32 {
        a.send(Party::Vm(VmId(v)), Party::Vm(VmId(100 + v)), 0.01)
            .unwrap();
        let m = b
            .send(Party::Vm(VmId(150 + v)), Party::Vm(VmId(50 + v)), 0.01)
            .unwrap();
        a.receive(1, b.low_open(), m.into()).unwrap();
    }
    a
}

fn record_100(c: &mut Criterion) {
    let snap = busy_ledger().snapshot();
    eprintln!(
        "dps/record_100: {} bytes of JSON",
        serde_json::to_string(&snap).unwrap().len()
    );
    let mut g = c.benchmark_group("dps/record_100");
    let mut bench = |name: &str, dir: Directory| {
        let mut rev = 0;
        g.bench_function(name, |bch| {
            bch.iter(|| {
                rev = dir.write_dps(1, "h0", rev, &snap).unwrap().unwrap();
            });
        });
    };
    bench(
        "memory",
        Directory::new(Arc::new(vibrad::kv::MemKv::new()), "/b"),
    );
    match common::Etcd::start("dps/record_100/etcd") {
        Some(etcd) => bench("etcd", Directory::new(Arc::new(etcd.kv()), "/b")),
        None => eprintln!("dps/record_100/etcd: left out (no etcd)"),
    }
    g.finish();
}

criterion_group!(benches, round_trip, period_100, record_100);
criterion_main!(benches);
