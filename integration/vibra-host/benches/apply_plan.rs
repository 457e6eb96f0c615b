//! Deciding and applying one allocation for 100 VMs: vibra-alloc computes the split and the
//! change plan, the Linux backend applies that very plan (real cgroups, and tbf qdiscs over
//! rtnetlink).
//!
//! Run: `cargo bench -p vibra-host --bench apply_plan` (the apply groups need root and cgroups;
//! otherwise they say why and only the decision is measured).
//!
//! - `decide/split_and_plan_100`: `vibra_alloc::split_units` (SPEC section 5's proportional
//!   split in whole units, with its floor) and `vibra_alloc::Plan::between` for 100 VMs: the
//!   allocator's whole decision for one resource kind.
//! - `apply_plan_100_vms/changed/*`: vibra-alloc plans between two allocations that differ for
//!   every VM (applied A -> B, B -> A alternately), so each plan is 100 platform writes per
//!   kind: cgroup writes for CPU and memory, two rtnetlink round trips per VM for egress (the
//!   link index, then the tbf). `changed/all` applies the three kinds' plans one after the
//!   other.
//! - `apply_plan_100_vms/in_force_all`: the settings of all three kinds again when they are
//!   already in force (the controller writes nothing).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vibra_alloc::{Plan, split_units};
use vibra_host::{
    ApplyAllocationPlan, HostController, LinuxHost, UnitSize, VmSpec, plan_allocations,
};

const VMS: usize = 100;

/// One resource kind: its unit, its pool and floor in units, and two allocations A and B from
/// vibra-alloc that differ for every VM.
struct Kind {
    name: &'static str,
    unit: UnitSize,
    floor: u64,
    a: Vec<u64>,
    b: Vec<u64>,
}

impl Kind {
    fn new(name: &'static str, unit: UnitSize, pool: u64, floor: u64) -> Kind {
        // Demands 10..110 and the same reversed: no VM gets the same share in both.
        let up: Vec<f64> = (0..VMS).map(|i| 10.0 + i as f64).collect();
        let down: Vec<f64> = up.iter().rev().copied().collect();
        let a = split_units(&up, None, pool, floor).expect("split A");
        let b = split_units(&down, None, pool, floor).expect("split B");
        assert!(
            a.iter().zip(&b).all(|(x, y)| x != y),
            "{name}: a VM kept its share"
        );
        Kind {
            name,
            unit,
            floor,
            a,
            b,
        }
    }
}

fn kinds() -> [Kind; 3] {
    [
        // CPU: 1 unit = 1/10,000 of a share; the 100 VMs share one CPU's scale.
        Kind::new(
            "cpu",
            UnitSize::cpu_units_per_share(10_000).unwrap(),
            10_000,
            10,
        ),
        // Memory: 1 unit = one 4 KiB page; 6.25 GiB of limits, 16 MiB floor.
        Kind::new(
            "memory",
            UnitSize::memory_bytes(4096).unwrap(),
            1_638_400,
            4_096,
        ),
        // Egress: 1 unit = 1 kB/s; 100 MB/s, 100 kB/s floor.
        Kind::new(
            "egress",
            UnitSize::bandwidth_bytes_per_sec(1000.0).unwrap(),
            100_000,
            100,
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let demand: Vec<f64> = (0..VMS).map(|i| (i % 17) as f64 + 0.5).collect();
    let current = split_units(&vec![1.0; VMS], None, 100_000, 100).unwrap();
    c.bench_function("decide/split_and_plan_100", |b| {
        b.iter(|| {
            let target = split_units(black_box(&demand), None, 100_000, 100).unwrap();
            Plan::between(black_box(&current), &target).unwrap()
        })
    });

    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    });
    if !root {
        eprintln!(
            "SKIPPED apply_plan benchmarks: they need root (cgroups, network namespaces, qdiscs)"
        );
        return;
    }
    let mut host = match LinuxHost::new(&format!("vibra-host-bench-{}", std::process::id())) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("SKIPPED apply_plan benchmarks: {e}");
            return;
        }
    };
    let vms: Vec<String> = (0..VMS)
        .map(|i| {
            host.create_vm(&VmSpec::new(&format!("vh{}b{i}", std::process::id())).unwrap())
                .expect("create VM")
        })
        .collect();
    eprintln!("created {VMS} VMs ({})", host.layout());

    let kinds = kinds();
    // Every kind starts at A: from its floor, all increases.
    for k in &kinds {
        let start = Plan::between(&vec![k.floor; VMS], &k.a).unwrap();
        host.apply_plan(&vms, &start, k.unit).expect("start at A");
    }
    let plans: Vec<[Plan; 2]> = kinds
        .iter()
        .map(|k| {
            let ab = Plan::between(&k.a, &k.b).unwrap();
            let ba = Plan::between(&k.b, &k.a).unwrap();
            assert_eq!((ab.len(), ba.len()), (VMS, VMS), "{}", k.name);
            [ab, ba]
        })
        .collect();

    let mut group = c.benchmark_group("apply_plan_100_vms");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    // Which plan of each pair comes next: every kind is at A or B, and the next plan moves it.
    let mut next = [0usize; 3];
    let selections: [(&str, &[usize]); 4] = [
        ("changed/cpu_only", &[0]),
        ("changed/memory_only", &[1]),
        ("changed/egress_only", &[2]),
        ("changed/all", &[0, 1, 2]),
    ];
    for (name, which) in selections {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut written = 0;
                for &k in which {
                    let report = host
                        .apply_plan(&vms, &plans[k][next[k]], kinds[k].unit)
                        .expect("apply plan");
                    assert_eq!(report.unchanged, 0);
                    written += report.written;
                    next[k] ^= 1;
                }
                written
            })
        });
    }
    // The settings in force right now, as allocations: re-applying them writes nothing.
    let in_force: Vec<_> = kinds
        .iter()
        .zip(next)
        .flat_map(|(k, n)| {
            let now = if n == 0 { &k.a } else { &k.b };
            let plan = Plan::between(&vec![k.floor; VMS], now).unwrap();
            plan_allocations(&vms, &plan, k.unit).unwrap()
        })
        .collect();
    group.bench_function("in_force_all", |b| {
        b.iter(|| {
            let report = host.apply(&in_force).expect("apply");
            assert_eq!(report.written, 0);
            report
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
