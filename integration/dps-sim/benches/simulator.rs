//! Simulator throughput in VM-iterations per second (the README reports these).
//! `cargo bench -p dps-sim --bench simulator`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dps_sim::{Banker, SchedulerMode, Strategy, simulate, workloads};

fn fluid(c: &mut Criterion) {
    let mut g = c.benchmark_group("simulator");
    g.sample_size(10);
    for (name, strategy) in [
        ("static", Strategy::Static),
        (
            "bank",
            Strategy::Bank {
                every: 1,
                banker: Banker::Spec,
            },
        ),
    ] {
        let cfg = workloads::large_cluster(1000, 10, 16, 20, 1, strategy).expect("config");
        let iters = 1000 * 10 * 20;
        g.throughput(Throughput::Elements(iters));
        g.bench_function(format!("fluid_{name}_1k_hosts_10k_vms_20_iter"), |b| {
            b.iter(|| simulate(&cfg, &mut |_| {}).expect("run"))
        });
    }
    let mut cfg = workloads::overbooked(
        16,
        4,
        0.1,
        0.01,
        0.1,
        20,
        1,
        Strategy::Bank {
            every: 1,
            banker: Banker::Spec,
        },
    )
    .expect("config");
    cfg.mode = SchedulerMode::Credit;
    g.throughput(Throughput::Elements(16 * 4 * 20));
    g.bench_function("credit_bank_16_hosts_64_vms_20_iter", |b| {
        b.iter(|| simulate(&cfg, &mut |_| {}).expect("run"))
    });
    g.finish();
}

criterion_group!(benches, fluid);
criterion_main!(benches);
