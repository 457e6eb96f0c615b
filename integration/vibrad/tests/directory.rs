//! The same suite against both directories: the in-memory store and a real etcd (started by
//! the test; skipped loudly without it, and CI forbids the skip).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use vibra_alloc::ResourceKind;
use vibrad::config::Config;
use vibrad::control::{HostKind, Leader};
use vibrad::directory::{Directory, Record};

use common::{FakeHost, each_store};

const BW: ResourceKind = ResourceKind::Bandwidth;

#[test]
fn store_contract_cas_and_leases() {
    each_store("store_contract_cas_and_leases", |kv| {
        let p = format!("/t{}", std::process::id());
        let k = format!("{p}/a");
        assert!(kv.cas(&k, 0, "1", None).unwrap());
        assert!(
            !kv.cas(&k, 0, "2", None).unwrap(),
            "absent-compare must fail once present"
        );
        let e = kv.get(&k).unwrap().unwrap();
        assert!(
            !kv.cas(&k, e.mod_revision - 1, "3", None).unwrap(),
            "stale revision"
        );
        assert!(kv.cas(&k, e.mod_revision, "4", None).unwrap());
        assert_eq!(kv.get(&k).unwrap().unwrap().value, "4");
        assert_eq!(kv.history(&k).unwrap(), vec!["1", "4"]);
        // A key under a lease vanishes when the lease is not kept alive.
        let lease = kv.grant_lease(Duration::from_secs(2)).unwrap();
        kv.put(&format!("{p}/leased"), "x", Some(lease)).unwrap();
        kv.keep_alive(lease).unwrap();
        let (keys, rev) = kv.get_prefix(&format!("{p}/")).unwrap();
        assert_eq!(keys.len(), 2);
        let deadline = Instant::now() + Duration::from_secs(10);
        while kv.get(&format!("{p}/leased")).unwrap().is_some() {
            assert!(Instant::now() < deadline, "lease never expired");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(kv.keep_alive(lease).is_err());
        // A watch sees a later change, and times out without one.
        assert!(
            !kv.wait(
                &format!("{p}/w"),
                kv.get_prefix("/").unwrap().1,
                Duration::from_millis(300)
            )
            .unwrap()
        );
        let kv2 = Arc::clone(&kv);
        let key = format!("{p}/w/x");
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            kv2.put(&key, "y", None).unwrap();
        });
        assert!(
            kv.wait(&format!("{p}/w/"), rev, Duration::from_secs(5))
                .unwrap()
        );
        t.join().unwrap();
    });
}

fn race_config(prefix: &str) -> Config {
    let mut src = format!(
        "host = \"A\"\n[agent]\nperiod_s = 0.001\n[directory]\nprefix = \"{prefix}\"\n\
         [[customer]]\nname = \"acme\"\nreplication = 2\n[customer.bandwidth]\n\
         pool_bytes_per_s = 100_000\nunit_bytes_per_s = 1000\n"
    );
    for i in 0..6 {
        let host = if i < 3 { "A" } else { "B" };
        src += &format!("[[vm]]\nname = \"v{i}\"\ncustomer = \"acme\"\nhost = \"{host}\"\n");
    }
    Config::parse(&src).unwrap()
}

fn sum(m: &BTreeMap<String, u64>) -> u64 {
    m.values().sum()
}

/// Two agents racing on one customer (both believe they lead; each also applies for its own
/// host's VMs) never take the customer over its pool: not in any version of the granted or
/// applied records, and not in the (shared, fake) kernels at any write.
#[test]
fn two_agents_racing_never_exceed_the_pool() {
    each_store("two_agents_racing_never_exceed_the_pool", |kv| {
        let prefix = format!("/race{}x{}", std::process::id(), rand::random::<u32>());
        let cfg = race_config(&prefix);
        let dir = Directory::new(kv, &prefix);
        let kernel = Arc::new(parking_lot::Mutex::new(BTreeMap::new()));
        let pool = cfg.customers[0].kinds[0].pool;
        let threads: Vec<_> = ["A", "B"]
            .into_iter()
            .enumerate()
            .map(|(t, host)| {
                let cfg = cfg.clone();
                let dir = dir.clone();
                let kernel = Arc::clone(&kernel);
                std::thread::spawn(move || {
                    let c = &cfg.customers[0];
                    let vms: Vec<String> = cfg.vms.iter().map(|v| v.name.clone()).collect();
                    let mine: Vec<(String, String)> = cfg
                        .vms
                        .iter()
                        .filter(|v| v.host == host)
                        .map(|v| (v.name.clone(), v.name.clone()))
                        .collect();
                    let mut fake = FakeHost {
                        vms: mine.iter().map(|(v, _)| v.clone()).collect(),
                        kernel,
                        bound_bytes: Some(pool * 1000),
                        ..FakeHost::default()
                    };
                    let mut leader = Leader::new(c, vms.clone(), &cfg.agent, &dir).unwrap();
                    let mut hk = HostKind::default();
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(t as u64);
                    let start = Instant::now();
                    let alive: BTreeMap<String, bool> =
                        mine.iter().map(|(v, _)| (v.clone(), true)).collect();
                    for _ in 0..40 {
                        let usage: BTreeMap<String, BTreeMap<String, f64>> = vms
                            .iter()
                            .map(|v| {
                                (
                                    v.clone(),
                                    [("bandwidth".to_string(), rng.random_range(0.0..1000.0))]
                                        .into(),
                                )
                            })
                            .collect();
                        std::thread::sleep(Duration::from_millis(2));
                        leader
                            .step(&dir, start.elapsed(), Some(&usage), &BTreeSet::new())
                            .unwrap();
                        let s = hk
                            .step(&dir, "acme", &c.kinds[0], &mine, &alive, &mut fake, false)
                            .unwrap();
                        assert!(s.errors.is_empty());
                    }
                    hk
                })
            })
            .collect();
        let _hks: Vec<HostKind> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let granted = dir.history(Record::Granted, "acme", &BW).unwrap();
        let applied = dir.history(Record::Applied, "acme", &BW).unwrap();
        assert!(
            granted.len() > 10 && applied.len() > 10,
            "too little racing: {} {}",
            granted.len(),
            applied.len()
        );
        for g in &granted {
            assert!(sum(g) <= pool, "granted over the pool: {g:?}");
        }
        for a in &applied {
            assert!(sum(a) <= pool, "applied over the pool: {a:?}");
        }
        let k: u64 = kernel.lock().values().sum();
        assert!(k <= pool * 1000);
    });
}

fn daemon_config(prefix: &str) -> Config {
    let mut src = format!(
        "host = \"h1\"\n[agent]\nperiod_s = 0.3\nalpha = 0.0\n[directory]\nprefix = \"{prefix}\"\n\
         [[customer]]\nname = \"acme\"\nreplication = 2\n[customer.bandwidth]\n\
         pool_bytes_per_s = 400_000\nfloor_bytes_per_s = 10_000\nunit_bytes_per_s = 1000\n"
    );
    for i in 0..4 {
        src += &format!("[[vm]]\nname = \"v{i}\"\ncustomer = \"acme\"\nhost = \"h1\"\n");
    }
    Config::parse(&src).unwrap()
}

fn kernel_kbps(fake: &FakeHost) -> Vec<u64> {
    let k = fake.kernel.lock();
    (0..4)
        .map(|i| k.get(&format!("v{i}")).copied().unwrap_or(0) / 1000)
        .collect()
}

/// The agent role on one host, its kernel faked: allocations follow demand, a dead VM's
/// share goes to the next R = 2 VMs in the same step, and a controller error on one VM leaves
/// the others applied and is retried.
#[test]
fn agent_follows_demand_compensates_and_survives_controller_errors() {
    each_store(
        "agent_follows_demand_compensates_and_survives_controller_errors",
        |kv| {
            let prefix = format!("/agent{}x{}", std::process::id(), rand::random::<u32>());
            let cfg = daemon_config(&prefix);
            let fake = FakeHost {
                vms: (0..4).map(|i| format!("v{i}")).collect(),
                bound_bytes: Some(400_000),
                ..FakeHost::default()
            };
            let view = fake.clone();
            let dir = Directory::new(kv, &prefix);
            let mut d = vibrad::daemon::Daemon::new(cfg, fake, dir.clone(), false).unwrap();
            // Demand 3:1:0:0 kB/s per ... (egress counters grow at those rates).
            let mut sent = [0u64; 4];
            let rates = [300_000u64, 100_000, 0, 0];
            for _ in 0..4 {
                for i in 0..4 {
                    sent[i] += rates[i] * 3 / 10;
                    view.egress.lock().insert(format!("v{i}"), sent[i]);
                }
                d.step(true).unwrap();
                std::thread::sleep(Duration::from_millis(310));
            }
            let k = kernel_kbps(&view);
            assert_eq!(k.iter().sum::<u64>(), 400, "{k:?}");
            assert!(
                k[0] > 2 * k[1] && k[1] > k[2] && k[2] == 10 && k[3] == 10,
                "follows demand 3:1:0:0: {k:?}"
            );
            // VM 0 dies: its share goes to VMs 1 and 2 in the very next step (taken before the
            // next re-division is due, so the compensation is seen alone).
            for i in 0..4 {
                sent[i] += rates[i] * 3 / 10;
                view.egress.lock().insert(format!("v{i}"), sent[i]);
            }
            d.step(true).unwrap();
            let before = kernel_kbps(&view);
            view.dead.lock().insert("v0".into());
            d.step(true).unwrap();
            let k = kernel_kbps(&view);
            let applied = d.applied("acme", &BW).unwrap();
            assert_eq!(applied["v0"], 0);
            let half = before[0] / 2;
            assert!(
                k[1] >= before[1] + half && k[2] >= before[2] + half,
                "compensation {before:?} -> {k:?}"
            );
            assert_eq!(k[3], before[3], "VM 3 is not among the next R = 2");
            // A controller error on VM 2 leaves VM 1 applied and is retried.
            view.failing.lock().insert("v2".into());
            for _ in 0..3 {
                sent[1] += 5_000;
                sent[2] += 200_000;
                sent[3] += 5_000;
                for (i, s) in sent.iter().enumerate().skip(1) {
                    view.egress.lock().insert(format!("v{i}"), *s);
                }
                std::thread::sleep(Duration::from_millis(310));
                d.step(true).unwrap();
            }
            let errs = d
                .metrics()
                .get(
                    "vibrad_apply_errors_total",
                    &[("customer", "acme"), ("vm", "v2")],
                )
                .unwrap_or(0.0);
            assert!(errs >= 1.0, "errors counted");
            let stuck = kernel_kbps(&view)[2];
            view.failing.lock().clear();
            std::thread::sleep(Duration::from_millis(310));
            d.step(true).unwrap();
            let k = kernel_kbps(&view);
            let granted = dir.read(Record::Granted, "acme", &BW).unwrap().value;
            assert_eq!(
                k[2], granted["v2"],
                "retried once the controller works (was {stuck})"
            );
            assert_eq!(k[1], granted["v1"]);
            assert!(
                k[1..].iter().sum::<u64>() <= 400,
                "live VMs within the pool: {k:?}"
            );
        },
    );
}

/// Bad directory content stops with an error naming the key, and nothing is applied.
#[test]
fn bad_directory_content_names_the_key_and_applies_nothing() {
    each_store(
        "bad_directory_content_names_the_key_and_applies_nothing",
        |kv| {
            let prefix = format!("/bad{}x{}", std::process::id(), rand::random::<u32>());
            let cfg = daemon_config(&prefix);
            let key = format!("{prefix}/granted/acme/bandwidth");
            kv.put(&key, "{\"v0\": \"lots\"}", None).unwrap();
            let fake = FakeHost {
                vms: (0..4).map(|i| format!("v{i}")).collect(),
                ..FakeHost::default()
            };
            let view = fake.clone();
            let dir = Directory::new(kv, &prefix);
            let mut d = vibrad::daemon::Daemon::new(cfg, fake, dir, false).unwrap();
            let err = d.step(true).unwrap_err().to_string();
            assert!(err.contains(&key), "{err}");
            assert_eq!(*view.writes.lock(), 0);
        },
    );
}

/// A host that restarts its failed VM: the leader (on another host) counts it as a replacement
/// and gives it its boot share back (the bandwidth floor, vibra-alloc's `Boot::Floor`), and
/// the next re-division gives it a share by demand again.
#[test]
fn a_restarted_vm_comes_back_as_a_replacement() {
    each_store("a_restarted_vm_comes_back_as_a_replacement", |kv| {
        let prefix = format!("/rep{}x{}", std::process::id(), rand::random::<u32>());
        let mut src = format!(
            "host = \"A\"\n[agent]\nperiod_s = 0.3\nalpha = 0.0\nwarmup_s = 60\n[directory]\nprefix = \"{prefix}\"\n\
             [[customer]]\nname = \"acme\"\nreplication = 2\n[customer.bandwidth]\n\
             pool_bytes_per_s = 600_000\nfloor_bytes_per_s = 10_000\nunit_bytes_per_s = 1000\n"
        );
        for i in 0..6 {
            let h = if i < 3 { "A" } else { "B" };
            src += &format!("[[vm]]\nname = \"v{i}\"\ncustomer = \"acme\"\nhost = \"{h}\"\n");
        }
        let cfg_a = Config::parse(&src).unwrap();
        let cfg_b = Config::parse(&src.replacen("host = \"A\"", "host = \"B\"", 1)).unwrap();
        let fake = |vms: std::ops::Range<u32>| FakeHost {
            vms: vms.map(|i| format!("v{i}")).collect(),
            ..FakeHost::default()
        };
        let dir = Directory::new(kv, &prefix);
        let (fa, fb) = (fake(0..3), fake(3..6));
        let mut a = vibrad::daemon::Daemon::new(cfg_a, fa, dir.clone(), false).unwrap();
        let fb_view = fb.clone();
        let mut b = vibrad::daemon::Daemon::new(cfg_b.clone(), fb, dir.clone(), false).unwrap();
        a.step(true).unwrap(); // A leads
        b.step(true).unwrap();
        let g = dir.read(Record::Granted, "acme", &BW).unwrap().value;
        assert_eq!(g["v4"], 100);
        // VM 4 on host B dies: compensated by the leader on A.
        fb_view.dead.lock().insert("v4".into());
        b.step(true).unwrap();
        a.step(false).unwrap();
        assert_eq!(
            dir.read(Record::Granted, "acme", &BW).unwrap().value["v4"],
            0
        );
        assert!(dir.failed("acme").unwrap().contains("v4"));
        // Host B restarts (its VMs are created anew): the marker is cleared, the leader starts
        // VM 4 as a replacement with the floor, before any re-division is due.
        drop(b);
        let mut b = vibrad::daemon::Daemon::new(cfg_b, fake(3..6), dir.clone(), false).unwrap();
        assert!(dir.failed("acme").unwrap().is_empty());
        a.step(false).unwrap();
        b.step(false).unwrap();
        let g = dir.read(Record::Granted, "acme", &BW).unwrap().value;
        assert_eq!(g["v4"], 10, "boot share = the floor: {g:?}");
        assert_eq!(g.values().sum::<u64>(), 600);
        let ap = dir.read(Record::Applied, "acme", &BW).unwrap().value;
        assert_eq!(ap["v4"], 10, "applied on the restarted host");
    });
}

/// `--dry-run`: the plans are computed (and printed), but nothing that allocates is written:
/// no kernel setting, no `granted/`, no `applied/` record.
#[test]
fn dry_run_writes_no_allocation() {
    each_store("dry_run_writes_no_allocation", |kv| {
        let prefix = format!("/dry{}x{}", std::process::id(), rand::random::<u32>());
        let cfg = daemon_config(&prefix);
        let fake = FakeHost {
            vms: (0..4).map(|i| format!("v{i}")).collect(),
            ..FakeHost::default()
        };
        let view = fake.clone();
        let dir = Directory::new(kv, &prefix);
        let mut d = vibrad::daemon::Daemon::new(cfg, fake, dir.clone(), true).unwrap();
        for round in 0..3u64 {
            // Uneven demand, so the re-division has a plan to (not) apply.
            for i in 0..4u64 {
                view.egress
                    .lock()
                    .insert(format!("v{i}"), round * (i + 1) * 50_000);
            }
            d.step(true).unwrap();
            std::thread::sleep(Duration::from_millis(310));
        }
        assert_eq!(*view.writes.lock(), 0);
        for which in [Record::Granted, Record::Applied] {
            assert_eq!(
                dir.read(which, "acme", &BW).unwrap().revision,
                0,
                "{which:?} written"
            );
        }
        let plans = d
            .metrics()
            .get(
                "vibrad_plan_changes_total",
                &[("customer", "acme"), ("kind", "bandwidth")],
            )
            .unwrap_or(0.0);
        assert!(plans > 0.0, "the plans were computed");
    });
}
