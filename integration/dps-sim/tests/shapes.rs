//! The "must hold" shapes, on small fast configurations (fluid model).

use std::sync::OnceLock;

use dps_sim::{
    Banker, MigrationSettings, Safeguards, SchedulerMode, SimConfig, SimReport, Strategy, Topology,
    simulate, workloads,
};

fn run(cfg: &SimConfig) -> SimReport {
    let r = simulate(cfg, &mut |_| {}).expect("simulation");
    assert_eq!(r.capacity_violations, 0, "a host was booked above capacity");
    r
}

fn fig57(share: f64, s: Strategy, g: Safeguards) -> f64 {
    let mut cfg = workloads::linear_patterns(share, 10, 1.0, Topology::Linear, s).unwrap();
    cfg.safeguards = g;
    run(&cfg).makespan_s
}

const BANK: Strategy = Strategy::Bank {
    every: 1,
    banker: Banker::Spec,
};
const DIST: Strategy = Strategy::FullyDistributed { withhold: None };

#[test]
fn fig5_7_bank_gains_at_least_20_percent_at_0_1_and_leads_distributed() {
    let none = Safeguards::default();
    let stat = fig57(0.1, Strategy::Static, none);
    let bank = fig57(0.1, BANK, none);
    let dist = fig57(0.1, DIST, none);
    assert!(bank <= 0.8 * stat, "bank {bank} vs static {stat}");
    assert!(bank < dist, "bank {bank} vs distributed {dist}");
    assert!(dist < stat);
}

#[test]
fn fig5_7_nothing_to_gain_at_0_5_where_hosts_are_fully_booked() {
    let none = Safeguards::default();
    let stat = fig57(0.5, Strategy::Static, none);
    for s in [BANK, DIST, Strategy::guarded()] {
        let d = fig57(0.5, s, none);
        assert!((d - stat).abs() <= 1e-6 * stat, "{s:?}: {d} vs {stat}");
    }
}

#[test]
fn guarded_policy_keeps_most_of_the_fig5_7_gain() {
    let stat = fig57(0.1, Strategy::Static, Safeguards::default());
    let g = fig57(0.1, Strategy::guarded(), Safeguards::guarded());
    assert!(g <= 0.8 * stat, "guarded {g} vs static {stat}");
}

#[test]
fn one_program_alone_on_its_hosts_sees_no_dps_effect() {
    // Without competition a work-conserving scheduler gives each VM a whole CPU whatever its
    // share (section 5.5.4): moving shares cannot change anything.
    for s in [
        BANK,
        DIST,
        Strategy::guarded(),
        Strategy::CriticalPath { every: 1 },
    ] {
        let stat =
            run(&workloads::overbooked(8, 1, 0.1, 0.01, 0.1, 30, 3, Strategy::Static).unwrap());
        let dps = run(&workloads::overbooked(8, 1, 0.1, 0.01, 0.1, 30, 3, s).unwrap());
        assert!((dps.makespan_s - stat.makespan_s).abs() < 1e-9, "{s:?}");
    }
}

fn guarded_vs_static(programs: u32, share: f64, migrate: bool) -> (f64, f64) {
    let stat =
        run(
            &workloads::overbooked(16, programs, share, 0.01, 0.1, 40, 11, Strategy::Static)
                .unwrap(),
        );
    let mut cfg =
        workloads::overbooked(16, programs, share, 0.01, 0.1, 40, 11, Strategy::guarded()).unwrap();
    cfg.safeguards = Safeguards::guarded();
    if migrate {
        cfg.migration = Some(MigrationSettings::on_rejection());
    }
    (run(&cfg).makespan_s, stat.makespan_s)
}

#[test]
fn fig5_9_guarded_makespan_within_3_percent_of_static_or_better() {
    for n in [4, 8, 10, 12, 17] {
        let (g, s) = guarded_vs_static(n, 0.1, false);
        assert!(g <= 1.03 * s, "N = {n}: guarded {g} vs static {s}");
    }
}

#[test]
fn fig5_9_recommended_policy_never_below_0_97_of_static_on_mean_or_makespan() {
    for mode in [SchedulerMode::Fluid, SchedulerMode::Credit] {
        for n in [1u32, 4, 6, 8, 10, 12, 17] {
            let cfg = |s| {
                let mut c =
                    workloads::overbooked(16, n, 0.1, 0.01, 0.1, 30, 19_980_630, s).unwrap();
                c.mode = mode;
                c
            };
            let stat = run(&cfg(Strategy::Static));
            let mut g = cfg(Strategy::guarded());
            g.safeguards = Safeguards::shared_cluster();
            let dps = run(&g);
            let (m, k) = (
                stat.mean_response_s / dps.mean_response_s,
                stat.makespan_s / dps.makespan_s,
            );
            assert!(m >= 0.97 && k >= 0.97, "{mode:?} N = {n}: {m:.3} / {k:.3}");
        }
    }
}

/// Fig. 5.10 over the four seeds vibra-lab uses: static's and the recommended policy's mean
/// response and makespan (averaged), and each seed's spread (slowest / fastest program).
struct Fig510 {
    st: (f64, f64),
    dp: (f64, f64),
    dps_spreads: Vec<f64>,
    static_spreads: Vec<f64>,
}

fn spread(r: &SimReport) -> f64 {
    let rs = r.programs.iter().map(|p| p.response_s);
    rs.clone().fold(0.0, f64::max) / rs.fold(f64::INFINITY, f64::min)
}

fn fig5_10(n: u32, mode: SchedulerMode) -> Fig510 {
    let mut out = Fig510 {
        st: (0.0, 0.0),
        dp: (0.0, 0.0),
        dps_spreads: Vec::new(),
        static_spreads: Vec::new(),
    };
    for seed in 19_980_630..19_980_634 {
        let cfg = |s| {
            let mut c =
                workloads::overbooked(16, n, 1.0 / f64::from(n), 0.01, 0.1, 1000, seed, s).unwrap();
            c.mode = mode;
            c
        };
        let stat = run(&cfg(Strategy::Static));
        let mut d = cfg(Strategy::guarded());
        d.safeguards = Safeguards::shared_cluster();
        d.migration = Some(MigrationSettings::demand_aware());
        let dps = run(&d);
        assert!(dps.migrations > 0, "N = {n}: the CRM never moved a VM");
        out.st.0 += stat.mean_response_s / 4.0;
        out.st.1 += stat.makespan_s / 4.0;
        out.dp.0 += dps.mean_response_s / 4.0;
        out.dp.1 += dps.makespan_s / 4.0;
        out.dps_spreads.push(spread(&dps));
        out.static_spreads.push(spread(&stat));
    }
    out
}

/// Fig. 5.10 at N = 3, run once per scheduler model for the tests that read it.
fn fig5_10_n3(mode: SchedulerMode) -> &'static Fig510 {
    static FLUID: OnceLock<Fig510> = OnceLock::new();
    static CREDIT: OnceLock<Fig510> = OnceLock::new();
    let cell = match mode {
        SchedulerMode::Fluid => &FLUID,
        SchedulerMode::Credit => &CREDIT,
    };
    cell.get_or_init(|| fig5_10(3, mode))
}

#[test]
fn fig5_10_dps_with_the_demand_aware_crm_makespan_at_most_0_85_of_static_at_n_3() {
    for mode in [SchedulerMode::Fluid, SchedulerMode::Credit] {
        let Fig510 { st, dp, .. } = fig5_10_n3(mode);
        assert!(
            dp.1 <= 0.85 * st.1,
            "{mode:?}: makespan {} vs static {}",
            dp.1,
            st.1
        );
        assert!(
            dp.0 <= 0.85 * st.0,
            "{mode:?}: mean {} vs static {}",
            dp.0,
            st.0
        );
    }
}

#[test]
fn fig5_10_recommended_spread_at_most_1_1_at_n_3_in_both_models() {
    // The CRM evens per-round loads, so the programs go at one pace: the slowest program's
    // response is within 10% of the fastest's on average over the four seeds, and within 15%
    // in every one (static: 1.15-1.38).
    for mode in [SchedulerMode::Fluid, SchedulerMode::Credit] {
        let r = fig5_10_n3(mode);
        let mean = r.dps_spreads.iter().sum::<f64>() / 4.0;
        let worst = r.dps_spreads.iter().copied().fold(0.0, f64::max);
        let static_mean = r.static_spreads.iter().sum::<f64>() / 4.0;
        assert!(
            mean <= 1.1 && worst <= 1.15,
            "{mode:?}: spreads {:?}",
            r.dps_spreads
        );
        assert!(
            mean < static_mean,
            "{mode:?}: {mean} vs static {static_mean}"
        );
    }
}

#[test]
fn fig5_10_guarded_makespan_within_3_percent_of_static_or_better() {
    for n in [2, 3, 4, 8, 12] {
        let (g, s) = guarded_vs_static(n, 1.0 / f64::from(n), true);
        assert!(g <= 1.03 * s, "N = {n}: guarded {g} vs static {s}");
    }
}

#[test]
fn simulation_is_deterministic_for_a_seed() {
    let mut cfg = workloads::overbooked(8, 5, 0.1, 0.01, 0.1, 20, 5, BANK).unwrap();
    cfg.jitter = 0.3;
    cfg.seed = 99;
    assert_eq!(run(&cfg), run(&cfg));
    cfg.seed = 100;
    let other = run(&cfg);
    cfg.seed = 99;
    assert_ne!(run(&cfg).makespan_s, other.makespan_s);
}

#[test]
fn credit_mode_agrees_with_fluid_on_fig5_7_within_5_percent() {
    for s in [Strategy::Static, BANK] {
        let mut cfg = workloads::linear_patterns(0.1, 6, 0.5, Topology::Linear, s).unwrap();
        cfg.period_s = 2.5;
        let fluid = run(&cfg).makespan_s;
        cfg.mode = dps_sim::SchedulerMode::Credit;
        let credit = run(&cfg).makespan_s;
        assert!(
            (credit - fluid).abs() <= 0.05 * fluid,
            "{s:?}: credit {credit} vs fluid {fluid}"
        );
    }
}

#[test]
fn every_topology_completes_every_iteration() {
    let topologies = [
        Topology::Linear,
        Topology::Ring,
        Topology::Mesh2d { cols: 4 },
        Topology::Torus2d { cols: 4 },
        Topology::Tree,
        Topology::Hypercube,
        Topology::AllToAll,
    ];
    for t in topologies {
        let mut cfg = workloads::overbooked(16, 2, 0.2, 0.01, 0.1, 7, 1, DIST).unwrap();
        for p in &mut cfg.programs {
            p.topology = t;
        }
        let r = run(&cfg);
        assert_eq!(r.vm_iterations, 2 * 16 * 7, "{t:?}");
    }
}

/// Section 5.5.5's set-up (`workloads::migration_bottleneck`): both VM1s share host 0, which
/// becomes the bottleneck.
fn section_5_5_5(iterations: u32, migration: Option<MigrationSettings>) -> SimReport {
    run(&dps_sim::workloads::migration_bottleneck(iterations, BANK, migration).unwrap())
}

#[test]
fn section_5_5_5_migration_sheds_load_from_the_bottleneck_host() {
    let stay = section_5_5_5(30, None);
    let moved = section_5_5_5(30, Some(MigrationSettings::default()));
    assert_eq!(stay.migrations, 0);
    assert!(stay.rejections > 0, "the full host must reject grants");
    assert!(moved.migrations > 0);
    assert_eq!(moved.migration_log.len(), moved.migrations as usize);
    let first = moved
        .programs
        .iter()
        .map(|p| p.response_s)
        .fold(f64::INFINITY, f64::min);
    assert!(
        first <= 0.85 * stay.makespan_s,
        "{first} vs {}",
        stay.makespan_s
    );
    assert!(moved.makespan_s <= stay.makespan_s * 1.001);
}

#[test]
fn a_vm_is_not_migrated_again_within_the_cooldown() {
    let settings = MigrationSettings::default();
    let took = dps_core::MigrationCost::fast_ethernet()
        .live(settings.memory_mb, settings.dirty_mb_s)
        .unwrap()
        .total_s;
    // Without a cooldown this run moves some VM straight back to the host it just left.
    let bouncing = section_5_5_5(
        100,
        Some(MigrationSettings {
            cooldown_s: 0.0,
            ..settings
        }),
    );
    let back_within = |r: &SimReport, window: f64| {
        r.migration_log.iter().enumerate().any(|(k, m)| {
            r.migration_log[..k]
                .iter()
                .rev()
                .find(|p| p.vm == m.vm)
                .is_some_and(|p| p.from == m.to && m.t < p.t + took + window)
        })
    };
    assert!(back_within(&bouncing, settings.cooldown_s));
    // With the default cooldown no VM moves again (back or elsewhere) until its last migration
    // ended and the cooldown passed.
    let calm = section_5_5_5(100, Some(settings));
    assert!(calm.migrations > 0);
    assert!(calm.migrations < bouncing.migrations);
    assert!(!back_within(&calm, settings.cooldown_s));
    for (k, m) in calm.migration_log.iter().enumerate() {
        if let Some(p) = calm.migration_log[..k].iter().rev().find(|p| p.vm == m.vm) {
            assert!(
                m.t >= p.t + took + settings.cooldown_s - 1e-9,
                "VM {} moved at {} s and again at {} s",
                m.vm,
                p.t,
                m.t
            );
        }
    }
}

#[test]
fn a_faster_host_does_the_same_work_sooner_by_its_exchange_rate() {
    use dps_core::{HostId, HostSpec};
    use dps_sim::{ProgramSpec, VmSpec};
    let prog = ProgramSpec {
        topology: Topology::Linear,
        iterations: 4,
        total_share: 1.0,
        vms: vec![
            VmSpec {
                host: HostId(0),
                demand: 0.5,
            },
            VmSpec {
                host: HostId(1),
                demand: 0.5,
            },
        ],
    };
    let slow = HostSpec::new(1.0, 0.0).unwrap();
    let fast = slow.with_speed(2.0).unwrap();
    let both_slow = run(&SimConfig::new(
        vec![slow, slow],
        vec![prog.clone()],
        Strategy::Static,
    ));
    let both_fast = run(&SimConfig::new(
        vec![fast, fast],
        vec![prog],
        Strategy::Static,
    ));
    assert!((both_slow.makespan_s - 2.0).abs() < 1e-9);
    assert!((both_fast.makespan_s - 1.0).abs() < 1e-9);
}

#[test]
fn fig5_9_static_makespan_meets_the_host_work_bound_in_both_scheduler_models() {
    // Why fig. 5.9 cannot gain on makespan: static shares already keep the busiest host busy
    // all the time, so the makespan equals max over hosts of (work on it) / capacity.
    for (n, mode) in [4u32, 10, 17]
        .into_iter()
        .flat_map(|n| [(n, SchedulerMode::Fluid), (n, SchedulerMode::Credit)])
    {
        let mut cfg =
            workloads::overbooked(16, n, 0.1, 0.01, 0.1, 40, 19_980_630, Strategy::Static).unwrap();
        cfg.mode = mode;
        let mut work = [0.0f64; 16];
        for p in &cfg.programs {
            for v in &p.vms {
                work[v.host.0 as usize] += v.demand * f64::from(p.iterations);
            }
        }
        let bound = work.iter().copied().fold(0.0, f64::max);
        let r = run(&cfg);
        assert!(
            r.makespan_s >= bound - 1e-3,
            "N = {n} {mode:?}: below the bound?"
        );
        assert!(
            r.makespan_s <= 1.005 * bound,
            "N = {n} {mode:?}: static {} vs bound {bound}",
            r.makespan_s
        );
    }
}

#[test]
fn plain_bank_starves_when_an_iteration_lasts_longer_than_the_period_and_the_floor_prevents_it() {
    // Node 1's iteration at 0.1 share lasts 2.4 periods: a VM that waited a whole period on
    // its neighbours used nothing, deposits nearly its whole share, and crawls next time.
    let cfg = |s, g| {
        let mut c = workloads::linear_patterns(0.1, 10, 2.0, Topology::Linear, s).unwrap();
        c.safeguards = g;
        run(&c).makespan_s
    };
    let stat = cfg(Strategy::Static, Safeguards::default());
    let bank = cfg(BANK, Safeguards::default());
    let guarded = cfg(Strategy::guarded(), Safeguards::guarded());
    assert!(bank > 1.1 * stat, "plain bank {bank} vs static {stat}");
    assert!(guarded < 0.8 * stat, "guarded {guarded} vs static {stat}");
}
