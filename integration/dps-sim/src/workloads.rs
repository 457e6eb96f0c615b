//! Ready-made configurations: the dissertation's experiments (section 5.5.4 and 5.5.6) and a
//! scalable cluster for benchmarks. Demands come from ChaCha8 seeded by the caller, so a seed
//! names one workload forever.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{ProgramSpec, SimConfig, Strategy, VmSpec};
use crate::topology::Topology;
use dps_core::DpsError;
use dps_core::model::{HostId, HostSpec};

/// Fig. 5.7/5.8: 4 hosts (1 CPU each) with `eatcpu` booking 0.5 of each, one 4-VM `patterns`
/// program, VM i on host i with demand `unit`/i per iteration, `share` per VM, exchange every
/// 5 s.
///
/// ```
/// use dps_sim::{simulate, workloads, Strategy};
/// let cfg = workloads::linear_patterns(0.1, 10, 1.0, dps_sim::Topology::Linear, Strategy::Static).unwrap();
/// assert_eq!(cfg.programs[0].vms.len(), 4);
/// ```
pub fn linear_patterns(
    share: f64,
    iterations: u32,
    unit: f64,
    topology: Topology,
    strategy: Strategy,
) -> Result<SimConfig, DpsError> {
    let host = HostSpec::new(1.0, 0.0)?.with_background(0.5)?;
    let vms = (0..4)
        .map(|i| VmSpec {
            host: HostId(i),
            demand: unit / f64::from(i + 1),
        })
        .collect();
    let prog = ProgramSpec {
        topology,
        iterations,
        total_share: share * 4.0,
        vms,
    };
    Ok(SimConfig::new(vec![host; 4], vec![prog], strategy))
}

/// Section 5.5.5: two aligned 4-VM copies of `patterns` (linear, VM i on host i with demand
/// 1/(i+1) per iteration, W = 2) on four fully booked single-CPU hosts, so both VM1s share host
/// 0, which becomes the bottleneck that migration relieves. `strategy` exchanges shares;
/// `migration` is set on the returned configuration as given.
///
/// ```
/// use dps_sim::{workloads, Strategy};
/// let cfg = workloads::migration_bottleneck(10, Strategy::Static, None).unwrap();
/// assert_eq!((cfg.hosts.len(), cfg.programs.len()), (4, 2));
/// ```
pub fn migration_bottleneck(
    iterations: u32,
    strategy: Strategy,
    migration: Option<crate::MigrationSettings>,
) -> Result<SimConfig, DpsError> {
    let programs = (0..2)
        .map(|_| ProgramSpec {
            topology: Topology::Linear,
            iterations,
            total_share: 2.0,
            vms: (0..4)
                .map(|i| VmSpec {
                    host: HostId(i),
                    demand: 1.0 / f64::from(i + 1),
                })
                .collect(),
        })
        .collect();
    let mut config = SimConfig::new(vec![HostSpec::new(1.0, 0.0)?; 4], programs, strategy);
    config.migration = migration;
    Ok(config)
}

/// Fig. 5.9/5.10: `hosts` single-CPU hosts, `programs` programs of `hosts` VMs each (VM i on
/// host i), each VM `share` and a demand drawn once from U(`lo`, `hi`) seconds per iteration,
/// all-to-all (BSP barrier) dependencies.
///
/// ```
/// use dps_sim::{workloads, Strategy};
/// let cfg = workloads::overbooked(16, 3, 0.1, 0.01, 0.1, 20, 7, Strategy::Static).unwrap();
/// assert_eq!(cfg.programs.len(), 3);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn overbooked(
    hosts: u32,
    programs: u32,
    share: f64,
    lo: f64,
    hi: f64,
    iterations: u32,
    seed: u64,
    strategy: Strategy,
) -> Result<SimConfig, DpsError> {
    if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi) {
        return Err(DpsError::InvalidParameter {
            name: "demand range",
            value: hi - lo,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let host = HostSpec::new(1.0, 0.0)?;
    let progs = (0..programs)
        .map(|_| ProgramSpec {
            topology: Topology::AllToAll,
            iterations,
            total_share: share * f64::from(hosts),
            vms: (0..hosts)
                .map(|h| VmSpec {
                    host: HostId(h),
                    demand: rng.random_range(lo..=hi),
                })
                .collect(),
        })
        .collect();
    let mut cfg = SimConfig::new(vec![host; hosts as usize], progs, strategy);
    cfg.period_s = 1.0;
    cfg.upstream_ttl_s = 2.0;
    Ok(cfg)
}

/// A large cluster for throughput measurements: `hosts` hosts, `vms_per_host` VMs on each, in
/// programs of `program_size` VMs spread over consecutive hosts (each program's VMs on distinct
/// hosts), share 1/`vms_per_host` each, demand U(10 ms, 100 ms), 2-D torus programs.
///
/// ```
/// use dps_sim::{workloads, Strategy};
/// let cfg = workloads::large_cluster(100, 10, 16, 5, 1, Strategy::Static).unwrap();
/// assert_eq!(cfg.programs.iter().map(|p| p.vms.len()).sum::<usize>(), 1000);
/// ```
pub fn large_cluster(
    hosts: u32,
    vms_per_host: u32,
    program_size: u32,
    iterations: u32,
    seed: u64,
    strategy: Strategy,
) -> Result<SimConfig, DpsError> {
    if hosts == 0 || vms_per_host == 0 || program_size == 0 || program_size > hosts {
        return Err(DpsError::InvalidParameter {
            name: "program_size",
            value: f64::from(program_size),
        });
    }
    let total = u64::from(hosts) * u64::from(vms_per_host);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let share = 1.0 / f64::from(vms_per_host);
    let mut progs = Vec::new();
    let mut next: u64 = 0;
    while next < total {
        let n = (total - next).min(u64::from(program_size)) as u32;
        let topology = if n % 4 == 0 {
            Topology::Torus2d { cols: 4 }
        } else {
            Topology::Ring
        };
        let vms = (0..n)
            .map(|k| {
                let slot = next + u64::from(k);
                // Host = slot mod hosts walks consecutive hosts; a program never repeats a host.
                VmSpec {
                    host: HostId((slot % u64::from(hosts)) as u32),
                    demand: rng.random_range(0.01..=0.1),
                }
            })
            .collect();
        progs.push(ProgramSpec {
            topology,
            iterations,
            total_share: share * f64::from(n),
            vms,
        });
        next += u64::from(n);
    }
    let host = HostSpec::new(1.0, 0.0)?;
    let mut cfg = SimConfig::new(vec![host; hosts as usize], progs, strategy);
    cfg.period_s = 1.0;
    cfg.upstream_ttl_s = 2.0;
    Ok(cfg)
}
