//! Section 5.5.5 (workload redistribution): two aligned 4-VM `patterns` programs (linear,
//! load 1/i, 2 CPUs each, 100 iterations, plain bank) on four fully booked hosts, so both VM1s
//! share host 0, the bottleneck. Runs it without migration and with the cluster resource
//! manager for a few migration cooldowns (section 5.2.2's utilisation rule) and with the
//! demand-aware CRM, and prints the response times, the migrations and how many of them took
//! a VM straight back to the host it had just left.
//!
//! `cargo run --release -p dps-sim --example section_5_5_5 [ITERATIONS]`

use dps_sim::{Banker, MigrationSettings, SimConfig, SimReport, Strategy, simulate, workloads};

fn config(iterations: u32, migration: Option<MigrationSettings>) -> SimConfig {
    let bank = Strategy::Bank {
        every: 1,
        banker: Banker::Spec,
    };
    workloads::migration_bottleneck(iterations, bank, migration).expect("a valid set-up")
}

/// Migrations that took a VM back to the host its previous migration took it from.
fn returns(r: &SimReport) -> usize {
    r.migration_log
        .iter()
        .enumerate()
        .filter(|(k, m)| {
            r.migration_log[..*k]
                .iter()
                .rev()
                .find(|p| p.vm == m.vm)
                .is_some_and(|p| p.from == m.to)
        })
        .count()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: u32 = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 100,
    };
    let show = |label: &str, r: &SimReport| {
        let mut resp: Vec<f64> = r.programs.iter().map(|p| p.response_s).collect();
        resp.sort_by(f64::total_cmp);
        println!(
            "{label:<24} responses {:>6.1} s and {:>6.1} s, {:>3} migrations, {:>3} straight back",
            resp[0],
            resp[resp.len() - 1],
            r.migrations,
            returns(r)
        );
    };
    show(
        "no migration",
        &simulate(&config(iterations, None), &mut |_| {})?,
    );
    for cooldown in [
        0.0,
        15.0,
        30.0,
        MigrationSettings::DEFAULT_COOLDOWN_S,
        120.0,
    ] {
        let m = MigrationSettings {
            cooldown_s: cooldown,
            ..MigrationSettings::default()
        };
        let r = simulate(&config(iterations, Some(m)), &mut |_| {})?;
        show(&format!("migration, cooldown {cooldown} s"), &r);
    }
    let r = simulate(
        &config(iterations, Some(MigrationSettings::demand_aware())),
        &mut |_| {},
    )?;
    show("demand-aware CRM", &r);
    Ok(())
}
