//! The simulator's performance goal: a 10,000-host, 100,000-VM, 100-iteration run (fluid
//! scheduler, 16-VM 2-D torus programs). One simulation is one sequential event loop; with no
//! strategy argument the static and the bank-assisted runs (the comparison an operator wants)
//! go to both cores at once through `simulate_many`. Prints wall time and VM-iterations/s.
//!
//! `cargo run --release -p dps-sim --example scale [HOSTS VMS_PER_HOST ITERATIONS [static|bank]]`

use std::time::Instant;

use dps_sim::{Banker, SimConfig, Strategy, simulate, simulate_many, workloads};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<u32> = raw
        .iter()
        .take(3)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let (hosts, per_host, iterations) = match args[..] {
        [h, v, i] => (h, v, i),
        _ => (10_000, 10, 100),
    };
    let bank = Strategy::Bank {
        every: 1,
        banker: Banker::Spec,
    };
    let one = match raw.get(3).map(String::as_str) {
        Some("static") => Some(Strategy::Static),
        Some("bank") => Some(bank),
        _ => None,
    };
    let build = |s| workloads::large_cluster(hosts, per_host, 16, iterations, 1, s);
    let start = Instant::now();
    let (cfgs, reports): (Vec<SimConfig>, Vec<_>) = match one {
        Some(s) => {
            let cfg = build(s)?;
            let mut last = 0;
            let r = simulate(&cfg, &mut |p| {
                let pct = (p * 100.0) as u32;
                if pct / 10 > last / 10 {
                    eprint!("\r{} {:>3}%", s.name(), pct);
                    last = pct;
                }
            })?;
            eprintln!();
            (vec![cfg], vec![r])
        }
        None => {
            let cfgs = vec![build(Strategy::Static)?, build(bank)?];
            let reports = simulate_many(&cfgs)
                .into_iter()
                .collect::<Result<Vec<_>, _>>()?;
            (cfgs, reports)
        }
    };
    let wall = start.elapsed().as_secs_f64();
    let total: u64 = reports.iter().map(|r| r.vm_iterations).sum();
    for (c, r) in cfgs.iter().zip(&reports) {
        println!(
            "{}: {} hosts, {} VMs, {} iterations: simulated makespan {:.1} s, {} exchanges",
            c.strategy.name(),
            hosts,
            hosts * per_host,
            iterations,
            r.makespan_s,
            r.exchanges
        );
    }
    println!(
        "{} run(s) in {:.2} s wall: {:.0} VM-iterations/s",
        reports.len(),
        wall,
        total as f64 / wall
    );
    Ok(())
}
