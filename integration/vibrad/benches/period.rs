//! One control period for 100 VMs on one host, split by phase, plus one etcd transaction.
//!
//! Run: `cargo bench -p vibrad --bench period` (the Linux phases need root; the etcd round trip
//! needs an `etcd` binary; without them they say why and are left out).
//!
//! - `period_100/read_usage` (root): vibra-host's `usage` for 100 real VMs (cgroup files and
//!   the host-end link counters).
//! - `period_100/allocate`: the leader's step: feed 100 usages to vibra-alloc's agent, re-divide
//!   one kind, write `granted/` (one CAS) on the in-memory directory.
//! - `period_100/plan_and_record`: the host's step with every grant changed, kernel writes
//!   excluded (a controller that only counts): the decrease/increase split and the `applied/`
//!   CAS on the in-memory directory.
//! - `period_100/apply` (root): the same step with vibra-host's Linux backend, every VM's egress
//!   changed (two rtnetlink round trips per VM).
//! - `directory/etcd_cas` (etcd): one compare-and-swap transaction on a real local etcd.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use vibra_alloc::ResourceKind;
use vibra_host::{HostController, LinuxHost, VmSpec};
use vibrad::config::Config;
use vibrad::control::{HostKind, Leader};
use vibrad::directory::{Directory, Record, Units};
use vibrad::kv::MemKv;

const VMS: usize = 100;

fn config() -> Config {
    let pid = std::process::id();
    let mut s = format!(
        "host = \"h\"\n[agent]\nperiod_s = 0.000001\n[linux]\ncgroup_parent = \"vibrad-bench-{pid}\"\n\
         [[customer]]\nname = \"c\"\nreplication = 2\n[customer.bandwidth]\n\
         pool_bytes_per_s = 100_000_000\nfloor_bytes_per_s = 100_000\nunit_bytes_per_s = 1000\n"
    );
    for i in 0..VMS {
        s += &format!("[[vm]]\nname = \"b{pid}v{i}\"\ncustomer = \"c\"\nhost = \"h\"\n");
    }
    Config::parse(&s).expect("bench config")
}

/// Two grants that differ for every VM (demands 10..110 and reversed).
fn grants(cfg: &Config) -> (Units, Units) {
    let names: Vec<String> = cfg.vms.iter().map(|v| v.name.clone()).collect();
    let up: Vec<f64> = (0..VMS).map(|i| 10.0 + i as f64).collect();
    let down: Vec<f64> = up.iter().rev().copied().collect();
    let k = &cfg.customers[0].kinds[0];
    let a = vibra_alloc::split_units(&up, None, k.pool, k.floor).unwrap();
    let b = vibra_alloc::split_units(&down, None, k.pool, k.floor).unwrap();
    (
        names.iter().cloned().zip(a).collect(),
        names.iter().cloned().zip(b).collect(),
    )
}

/// Times `HostKind::step` only; the grant flips between A and B before each step.
fn time_steps<H: HostController<VmId = String>>(
    iters: u64,
    cfg: &Config,
    host: &mut H,
) -> Duration {
    let dir = Directory::new(Arc::new(MemKv::new()), "/b");
    let spec = &cfg.customers[0].kinds[0];
    let mine: Vec<(String, String)> = cfg
        .vms
        .iter()
        .map(|v| (v.name.clone(), v.name.clone()))
        .collect();
    let alive: BTreeMap<String, bool> = mine.iter().map(|(v, _)| (v.clone(), true)).collect();
    let (a, b) = grants(cfg);
    let mut hk = HostKind::default();
    let mut total = Duration::ZERO;
    for i in 0..=iters {
        let g = if i % 2 == 0 { &a } else { &b };
        let cur = dir.read(Record::Granted, "c", &spec.kind).unwrap();
        assert!(
            dir.write(Record::Granted, "c", &spec.kind, spec.pool, cur.revision, g)
                .unwrap()
        );
        let t = Instant::now();
        let s = hk
            .step(&dir, "c", spec, &mine, &alive, host, false)
            .unwrap();
        if i > 0 {
            // The first step only sets the start; every later one changes all 100 VMs.
            total += t.elapsed();
        }
        assert!(s.errors.is_empty(), "{:?}", s.errors.first());
    }
    total
}

fn bench(c: &mut Criterion) {
    let cfg = config();
    let mut g = c.benchmark_group("period_100");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));

    let names: Vec<String> = cfg.vms.iter().map(|v| v.name.clone()).collect();
    let dir = Directory::new(Arc::new(MemKv::new()), "/b");
    let mut leader = Leader::new(&cfg.customers[0], names.clone(), &cfg.agent, &dir).unwrap();
    let start = Instant::now();
    let mut flip = false;
    g.bench_function("allocate", |bch| {
        bch.iter(|| {
            flip = !flip;
            let usage: BTreeMap<String, BTreeMap<String, f64>> = names
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let u = if flip { 10 + i } else { 110 - i } as f64;
                    (v.clone(), [("bandwidth".to_string(), u)].into())
                })
                .collect();
            leader
                .step(&dir, start.elapsed(), Some(&usage), &BTreeSet::new())
                .unwrap()
        });
    });

    let mut counting = common::FakeHost {
        vms: names.iter().cloned().collect(),
        ..common::FakeHost::default()
    };
    g.bench_function("plan_and_record", |bch| {
        bch.iter_custom(|iters| time_steps(iters, &cfg, &mut counting));
    });

    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    match (root, LinuxHost::new(&cfg.cgroup_parent)) {
        (true, Ok(mut host)) => {
            for v in &names {
                host.create_vm(&VmSpec::new(v).unwrap()).expect("create VM");
            }
            g.bench_function("read_usage", |bch| {
                bch.iter(|| {
                    for v in &names {
                        std::hint::black_box(host.usage(v).unwrap());
                    }
                });
            });
            g.bench_function("apply", |bch| {
                bch.iter_custom(|iters| time_steps(iters, &cfg, &mut host));
            });
        }
        (false, _) => eprintln!("period_100/read_usage, apply: left out (needs root)"),
        (true, Err(e)) => eprintln!("period_100/read_usage, apply: left out ({e})"),
    }
    g.finish();

    match common::Etcd::start("directory/etcd_cas") {
        Some(etcd) => {
            let dir = Directory::new(Arc::new(etcd.kv()), "/b");
            let (a, b) = grants(&cfg);
            let kind = ResourceKind::Bandwidth;
            let pool = cfg.customers[0].kinds[0].pool;
            let mut flip = false;
            let mut g = c.benchmark_group("directory");
            g.sample_size(20);
            g.bench_function("etcd_cas", |bch| {
                bch.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        flip = !flip;
                        let rev = dir.read(Record::Granted, "c", &kind).unwrap().revision;
                        let t = Instant::now();
                        let ok = dir
                            .write(
                                Record::Granted,
                                "c",
                                &kind,
                                pool,
                                rev,
                                if flip { &a } else { &b },
                            )
                            .unwrap();
                        total += t.elapsed();
                        assert!(ok);
                    }
                    total
                });
            });
            g.finish();
        }
        None => eprintln!("directory/etcd_cas: left out (no etcd)"),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
