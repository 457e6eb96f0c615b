//! Applying one allocation plan to 100 VMs on the Linux backend (real cgroups and tc).
//!
//! Needs root and cgroups; otherwise it says why and measures nothing. Run:
//! `cargo bench -p vibra-host --bench apply_plan`.
//!
//! - `changed/*`: every VM's setting differs from the last plan (plans A and B alternate), so
//!   each plan costs 100 platform writes per resource: cgroup file writes for CPU and memory,
//!   one `tc` run per VM for egress.
//! - `unchanged_all`: the same plan again: nothing is written.
//! - `reference/proportional_allocation_100`: computing a 100-VM proportional allocation
//!   (SPEC section 5 formula), to show the decision is negligible beside applying it.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vibra_host::{
    Bandwidth, CpuSetting, CpuWeight, HostController, LinuxHost, MemoryTarget, VmAllocation, VmSpec,
};

const VMS: usize = 100;

fn plan(
    vms: &[String],
    variant: u32,
    cpu: bool,
    mem: bool,
    egress: bool,
) -> Vec<(String, VmAllocation)> {
    vms.iter()
        .enumerate()
        .map(|(i, vm)| {
            let i = i as u32;
            let alloc = VmAllocation {
                cpu: cpu.then(|| CpuSetting {
                    weight: CpuWeight::new(100 + i + variant).unwrap(),
                    cap: None,
                }),
                memory: mem.then(|| MemoryTarget::from_mib(64 + u64::from(i + variant)).unwrap()),
                egress: egress.then(|| {
                    Bandwidth::from_bits_per_sec(f64::from(1_000 + i + variant) * 1e3).unwrap()
                }),
            };
            (vm.clone(), alloc)
        })
        .collect()
}

fn proportional(demand: &[f64], total: f64, floor: f64, out: &mut [f64]) {
    let sum: f64 = demand.iter().sum();
    let spare = total - demand.len() as f64 * floor;
    for (o, d) in out.iter_mut().zip(demand) {
        *o = if sum > 0.0 {
            floor + spare * d / sum
        } else {
            total / demand.len() as f64
        };
    }
}

fn bench(c: &mut Criterion) {
    let demand: Vec<f64> = (0..VMS).map(|i| (i % 17) as f64 + 0.5).collect();
    let mut out = vec![0.0; VMS];
    c.bench_function("reference/proportional_allocation_100", |b| {
        b.iter(|| proportional(black_box(&demand), 100e6, 1e5, &mut out))
    });

    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    });
    if !root {
        eprintln!(
            "SKIPPED apply_plan benchmarks: they need root (cgroups, network namespaces, tc)"
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

    let mut group = c.benchmark_group("apply_plan_100_vms");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    for (k, (name, cpu, mem, egress)) in [
        ("changed/cpu_only", true, false, false),
        ("changed/memory_only", false, true, false),
        ("changed/egress_only", false, false, true),
        ("changed/all", true, true, true),
    ]
    .into_iter()
    .enumerate()
    {
        // Values no earlier group used, so every setting of every plan is a change.
        let base = 2 * k as u32 + 2;
        let plans = [
            plan(&vms, base, cpu, mem, egress),
            plan(&vms, base + 1, cpu, mem, egress),
        ];
        let mut flip = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                flip ^= 1;
                let report = host.apply(&plans[flip]).expect("apply plan");
                assert_eq!(report.unchanged, 0);
                report
            })
        });
    }
    let same = plan(&vms, 0, true, true, true);
    host.apply(&same).expect("apply plan");
    group.bench_function("unchanged_all", |b| {
        b.iter(|| {
            let report = host.apply(&same).expect("apply plan");
            assert_eq!(report.written, 0);
            report
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
