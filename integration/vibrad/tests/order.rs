//! SPEC 5's plan order across hosts, as a property: whatever the sequence of grants and the
//! interleaving of the hosts' steps, the kernels of all hosts together never hold more than
//! the pool (checked at every kernel write), the `applied/` record never exceeds it, and once
//! the grants stop changing two rounds of steps make every kernel equal its grant.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use vibra_alloc::ResourceKind;
use vibrad::config::Config;
use vibrad::control::HostKind;
use vibrad::directory::{Directory, Record, Units};
use vibrad::kv::MemKv;

use common::FakeHost;

const POOL: u64 = 60;

fn config() -> Config {
    let mut s = "host = \"h0\"\n[[customer]]\nname = \"c\"\n[customer.bandwidth]\n\
                 pool_bytes_per_s = 60_000\nunit_bytes_per_s = 1000\n"
        .to_string();
    for i in 0..6 {
        s += &format!(
            "[[vm]]\nname = \"v{i}\"\ncustomer = \"c\"\nhost = \"h{}\"\n",
            i / 2
        );
    }
    Config::parse(&s).unwrap()
}

/// A grant over the 6 VMs, each at least 1 unit, summing to the pool.
fn grant(weights: &[u8]) -> Units {
    let w: Vec<f64> = weights.iter().map(|&x| f64::from(x)).collect();
    let units = vibra_alloc::split_units(&w, None, POOL, 1).unwrap();
    units
        .into_iter()
        .enumerate()
        .map(|(i, u)| (format!("v{i}"), u))
        .collect()
}

/// One simulated host: its kernel (faked), its applier state, its VMs.
type Host = (FakeHost, HostKind, Vec<(String, String)>);

#[derive(Clone, Debug)]
enum Op {
    Grant(Vec<u8>),
    Step(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        proptest::collection::vec(0u8..50, 6).prop_map(Op::Grant),
        (0usize..3).prop_map(Op::Step),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn kernels_never_exceed_the_pool_and_converge(ops in proptest::collection::vec(op(), 1..60)) {
        let cfg = config();
        let spec = &cfg.customers[0].kinds[0];
        let dir = Directory::new(Arc::new(MemKv::new()), "/o");
        let kernel = Arc::new(parking_lot::Mutex::new(BTreeMap::new()));
        let mut hosts: Vec<Host> = (0..3)
            .map(|h| {
                let mine: Vec<(String, String)> =
                    (2 * h..2 * h + 2).map(|i| (format!("v{i}"), format!("v{i}"))).collect();
                let fake = FakeHost {
                    vms: mine.iter().map(|(v, _)| v.clone()).collect(),
                    kernel: Arc::clone(&kernel),
                    bound_bytes: Some(POOL * 1000),
                    ..FakeHost::default()
                };
                (fake, HostKind::default(), mine)
            })
            .collect();
        let alive: BTreeMap<String, bool> = (0..6).map(|i| (format!("v{i}"), true)).collect();
        let kind = ResourceKind::Bandwidth;
        let step = |hosts: &mut [Host], h: usize| {
            let (fake, hk, mine) = &mut hosts[h];
            let r = hk.step(&dir, "c", spec, mine, &alive, fake, false).unwrap();
            assert!(r.errors.is_empty());
        };
        for op in &ops {
            match op {
                Op::Grant(w) => {
                    let cur = dir.read(Record::Granted, "c", &kind).unwrap();
                    prop_assert!(dir.write(Record::Granted, "c", &kind, POOL, cur.revision, &grant(w)).unwrap());
                }
                Op::Step(h) => step(&mut hosts, *h),
            }
        }
        for _ in 0..2 {
            for h in 0..3 {
                step(&mut hosts, h);
            }
        }
        for a in dir.history(Record::Applied, "c", &kind).unwrap() {
            prop_assert!(a.values().sum::<u64>() <= POOL, "applied over the pool: {:?}", a);
        }
        let granted = dir.read(Record::Granted, "c", &kind).unwrap().value;
        if !granted.is_empty() {
            let k = kernel.lock();
            for (vm, units) in &granted {
                prop_assert_eq!(k.get(vm).copied(), Some(units * 1000), "{} not converged", vm);
            }
        }
    }
}
