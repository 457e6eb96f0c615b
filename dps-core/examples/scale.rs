//! The simulator's performance goal: a 10,000-host, 100,000-VM, 100-iteration run (fluid
//! scheduler, bank-assisted DPS, 16-VM 2-D torus programs). Prints the wall time and
//! VM-iterations per second.
//!
//! `cargo run --release -p dps-core --example scale [HOSTS VMS_PER_HOST ITERATIONS [static|bank]]`

use std::time::Instant;

use dps_core::sim::{Banker, Strategy, simulate, workloads};

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
    let strategies = match raw.get(3).map(String::as_str) {
        Some("static") => vec![Strategy::Static],
        Some("bank") => vec![bank],
        _ => vec![Strategy::Static, bank],
    };
    for strategy in strategies {
        let cfg = workloads::large_cluster(hosts, per_host, 16, iterations, 1, strategy)?;
        let start = Instant::now();
        let mut last = 0;
        let r = simulate(&cfg, &mut |p| {
            let pct = (p * 100.0) as u32;
            if pct / 10 > last / 10 {
                eprint!("\r{} {:>3}%", strategy.name(), pct);
                last = pct;
            }
        })?;
        let wall = start.elapsed().as_secs_f64();
        eprintln!();
        println!(
            "{}: {} hosts, {} VMs, {} iterations: {:.2} s wall, {:.0} VM-iterations/s, simulated makespan {:.1} s, {} exchanges",
            strategy.name(),
            hosts,
            hosts * per_host,
            iterations,
            wall,
            r.vm_iterations as f64 / wall,
            r.makespan_s,
            r.exchanges
        );
    }
    Ok(())
}
