//! Property tests of the simulator: hosts are never booked above capacity by a transfer, and a
//! bad configuration is a typed error.

use dps_core::DpsError;
use dps_sim::{Banker, MigrationSettings, SimConfig, Strategy as Exchange, simulate, workloads};
use proptest::prelude::*;

proptest! {
    // Whole simulations with migrations: fewer cases than the cheap properties.
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn conservation_holds_at_every_step_including_during_migration(
        n in 2u32..5, seed in 0u64..1000, free in any::<bool>(), credit in any::<bool>(),
    ) {
        let mut cfg = workloads::overbooked(8, n, 1.0 / f64::from(n), 0.01, 0.1, 60, seed, Exchange::guarded()).unwrap();
        cfg.safeguards = dps_sim::Safeguards::shared_cluster();
        let m = MigrationSettings::demand_aware();
        cfg.migration = Some(if free { m.free() } else { MigrationSettings { memory_mb: 8.0, ..m } });
        if credit {
            cfg.mode = dps_sim::SchedulerMode::Credit;
        }
        let a = simulate(&cfg, &mut |_| {}).unwrap();
        prop_assert!(a.max_conservation_error <= 1e-9, "{}", a.max_conservation_error);
        prop_assert_eq!(a.capacity_violations, 0);
        // Determinism for a fixed seed, migrations included.
        prop_assert_eq!(&a, &simulate(&cfg, &mut |_| {}).unwrap());
    }
}

proptest! {
    #[test]
    fn simulated_hosts_are_never_booked_above_capacity_by_a_transfer(
        n in 1u32..8, seed in 0u64..1000, which in 0usize..4,
    ) {
        let strategy = [
            Exchange::FullyDistributed { withhold: None },
            Exchange::Bank { every: 1, banker: Banker::Spec },
            Exchange::Bank { every: 2, banker: Banker::Capped },
            Exchange::CriticalPath { every: 1 },
        ][which];
        let share = [0.1, 0.25, 1.0 / f64::from(n), 0.2][which];
        let cfg: SimConfig = workloads::overbooked(4, n, share, 0.01, 0.1, 12, seed, strategy).unwrap();
        let r = simulate(&cfg, &mut |_| {}).unwrap();
        prop_assert_eq!(r.capacity_violations, 0);
        prop_assert_eq!(r.vm_iterations, u64::from(4 * n * 12));
    }
}

#[test]
fn bad_config_is_a_typed_error() {
    let mut cfg = workloads::overbooked(2, 1, 0.1, 0.01, 0.1, 2, 0, Exchange::Static).unwrap();
    cfg.period_s = 0.0;
    assert!(matches!(
        simulate(&cfg, &mut |_| {}),
        Err(DpsError::InvalidParameter { .. })
    ));
    cfg.period_s = 1.0;
    cfg.strategy = Exchange::FullyDistributed {
        withhold: Some(1.5),
    };
    assert_eq!(
        simulate(&cfg, &mut |_| {}),
        Err(DpsError::InvalidWithhold(1.5))
    );
    cfg.strategy = Exchange::Static;
    cfg.programs[0].total_share = -1.0;
    assert_eq!(
        simulate(&cfg, &mut |_| {}),
        Err(DpsError::InvalidTotal(-1.0))
    );
    cfg.programs[0].total_share = 0.1;
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        cfg.migration = Some(MigrationSettings {
            cooldown_s: bad,
            ..Default::default()
        });
        assert!(matches!(
            simulate(&cfg, &mut |_| {}),
            Err(DpsError::InvalidParameter {
                name: "cooldown_s",
                ..
            })
        ));
    }
}
