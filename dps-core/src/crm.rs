//! The cluster resource manager (section 5.2.2): finds bottleneck hosts (they rejected
//! transfers, or they are fully utilised), picks the VM to migrate (the least-utilised VM of the
//! bottleneck, which dirties fewest pages and fits most easily) and its destination (the
//! least-utilised host, or best fit as the alternative), repacks VMs to free hosts (fig. 5.3),
//! and prices a migration (section 5.5.3: stop-and-copy vs live pre-copy). The demand-aware
//! balancing CRM, the recommended one where VMs may move, is [`crate::balance`].

use crate::error::DpsError;
use crate::model::{HostId, VmId};

/// What a host reports each period.
///
/// ```
/// let h = dps_core::HostLoad { host: dps_core::HostId(0), capacity: 1.0, used: 0.99, booked: 1.0, rejections: 0 };
/// assert!(h.is_bottleneck(0.98));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostLoad {
    /// The host.
    pub host: HostId,
    /// Its capacity in shares.
    pub capacity: f64,
    /// CPU it used last period, in shares.
    pub used: f64,
    /// Shares booked on it.
    pub booked: f64,
    /// Transfers it rejected since the last look.
    pub rejections: u64,
}

impl HostLoad {
    /// A bottleneck: it rejected a transfer, or it ran at >= `full` of its capacity.
    ///
    /// ```
    /// let h = dps_core::HostLoad { host: dps_core::HostId(0), capacity: 1.0, used: 0.5, booked: 1.0, rejections: 2 };
    /// assert!(h.is_bottleneck(0.98));
    /// ```
    pub fn is_bottleneck(&self, full: f64) -> bool {
        self.rejections > 0 || self.used >= full * self.capacity
    }

    /// used / capacity.
    ///
    /// ```
    /// let h = dps_core::HostLoad { host: dps_core::HostId(0), capacity: 2.0, used: 0.5, booked: 1.0, rejections: 0 };
    /// assert_eq!(h.utilization(), 0.25);
    /// ```
    pub fn utilization(&self) -> f64 {
        self.used / self.capacity
    }
}

/// What a VM reports each period.
///
/// ```
/// let v = dps_core::VmLoad { vm: dps_core::VmId(1), host: dps_core::HostId(0), used: 0.2, share: 0.1 };
/// assert_eq!(v.used, 0.2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VmLoad {
    /// The VM.
    pub vm: VmId,
    /// Its host.
    pub host: HostId,
    /// CPU it used last period, in shares.
    pub used: f64,
    /// Its share.
    pub share: f64,
}

/// Where a migrating VM goes.
///
/// ```
/// assert_ne!(dps_core::Destination::LeastUtilized, dps_core::Destination::BestFit);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Destination {
    /// The least-utilised host, so the VM can get more share there (the dissertation's choice).
    #[default]
    LeastUtilized,
    /// The host whose predicted utilisation comes closest to full without exceeding it.
    BestFit,
}

/// One migration decision.
///
/// ```
/// let m = dps_core::Migration { vm: dps_core::VmId(0), from: dps_core::HostId(0), to: dps_core::HostId(1) };
/// assert_ne!(m.from, m.to);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// The VM to move.
    pub vm: VmId,
    /// Its current host.
    pub from: HostId,
    /// Its destination.
    pub to: HostId,
}

/// The bottleneck hosts, most utilised first.
///
/// ```
/// use dps_core::*;
/// let hosts = [
///     HostLoad { host: HostId(0), capacity: 1.0, used: 0.2, booked: 0.5, rejections: 0 },
///     HostLoad { host: HostId(1), capacity: 1.0, used: 1.0, booked: 1.0, rejections: 0 },
/// ];
/// assert_eq!(bottlenecks(&hosts, 0.98), vec![HostId(1)]);
/// ```
pub fn bottlenecks(hosts: &[HostLoad], full: f64) -> Vec<HostId> {
    let mut b: Vec<&HostLoad> = hosts.iter().filter(|h| h.is_bottleneck(full)).collect();
    b.sort_by(|a, c| {
        c.utilization()
            .total_cmp(&a.utilization())
            .then(a.host.cmp(&c.host))
    });
    b.into_iter().map(|h| h.host).collect()
}

/// Section 5.2.2's choice for one bottleneck host: its least-utilised VM, to the destination
/// `rule` picks among the other hosts that can book the VM's share and are not bottlenecks
/// themselves. `None` when no VM or no destination qualifies. Errors: the bottleneck is not in
/// `hosts`.
///
/// ```
/// use dps_core::*;
/// let hosts = [
///     HostLoad { host: HostId(0), capacity: 1.0, used: 1.0, booked: 1.0, rejections: 1 },
///     HostLoad { host: HostId(1), capacity: 1.0, used: 0.3, booked: 0.5, rejections: 0 },
///     HostLoad { host: HostId(2), capacity: 1.0, used: 0.6, booked: 0.5, rejections: 0 },
/// ];
/// let vms = [
///     VmLoad { vm: VmId(0), host: HostId(0), used: 0.7, share: 0.5 },
///     VmLoad { vm: VmId(1), host: HostId(0), used: 0.3, share: 0.5 },
/// ];
/// let m = choose_migration(HostId(0), &hosts, &vms, Destination::LeastUtilized, 0.98).unwrap().unwrap();
/// assert_eq!((m.vm, m.to), (VmId(1), HostId(1)));
/// let m = choose_migration(HostId(0), &hosts, &vms, Destination::BestFit, 0.98).unwrap().unwrap();
/// assert_eq!(m.to, HostId(2)); // 0.6 + 0.3 = 0.9 is closest to full
/// ```
pub fn choose_migration(
    bottleneck: HostId,
    hosts: &[HostLoad],
    vms: &[VmLoad],
    rule: Destination,
    full: f64,
) -> Result<Option<Migration>, DpsError> {
    if !hosts.iter().any(|h| h.host == bottleneck) {
        return Err(DpsError::UnknownHost(bottleneck.0));
    }
    let Some(vm) = vms
        .iter()
        .filter(|v| v.host == bottleneck)
        .min_by(|a, b| a.used.total_cmp(&b.used).then(a.vm.cmp(&b.vm)))
    else {
        return Ok(None);
    };
    let fits = |h: &&HostLoad| {
        h.host != bottleneck && !h.is_bottleneck(full) && h.booked + vm.share <= h.capacity + 1e-9
    };
    let dest = match rule {
        Destination::LeastUtilized => hosts.iter().filter(fits).min_by(|a, b| {
            a.utilization()
                .total_cmp(&b.utilization())
                .then(a.host.cmp(&b.host))
        }),
        Destination::BestFit => hosts
            .iter()
            .filter(fits)
            .filter(|h| h.used + vm.used <= h.capacity + 1e-9)
            .min_by(|a, b| {
                let fa = 1.0 - (a.used + vm.used) / a.capacity;
                let fb = 1.0 - (b.used + vm.used) / b.capacity;
                fa.total_cmp(&fb).then(a.host.cmp(&b.host))
            }),
    };
    Ok(dest.map(|d| Migration {
        vm: vm.vm,
        from: bottleneck,
        to: d.host,
    }))
}

/// Repacking (fig. 5.3): first-fit decreasing of the VMs, by CPU used, into as few hosts as
/// hold them without exceeding `fill` of capacity (by use) or capacity (by booking), trying the
/// busiest hosts first so most VMs stay put. Returns the migrations (VMs whose bin differs from
/// their host) and the hosts left empty. Errors: a VM on a host missing from `hosts`.
///
/// ```
/// use dps_core::*;
/// let hosts: Vec<HostLoad> = (0..3).map(|h| HostLoad { host: HostId(h), capacity: 1.0, used: 0.3, booked: 0.3, rejections: 0 }).collect();
/// let vms: Vec<VmLoad> = (0..3).map(|i| VmLoad { vm: VmId(i), host: HostId(i), used: 0.3, share: 0.3 }).collect();
/// let (moves, freed) = repack(&hosts, &vms, 0.95).unwrap();
/// assert_eq!(moves.len(), 2);
/// assert_eq!(freed.len(), 2);
/// ```
pub fn repack(
    hosts: &[HostLoad],
    vms: &[VmLoad],
    fill: f64,
) -> Result<(Vec<Migration>, Vec<HostId>), DpsError> {
    for v in vms {
        if !hosts.iter().any(|h| h.host == v.host) {
            return Err(DpsError::UnknownHost(v.host.0));
        }
    }
    let mut order: Vec<&HostLoad> = hosts.iter().collect();
    order.sort_by(|a, b| b.used.total_cmp(&a.used).then(a.host.cmp(&b.host)));
    let mut used = vec![0.0; order.len()];
    let mut booked = vec![0.0; order.len()];
    let mut items: Vec<&VmLoad> = vms.iter().collect();
    items.sort_by(|a, b| b.used.total_cmp(&a.used).then(a.vm.cmp(&b.vm)));
    let mut moves = Vec::new();
    for v in items {
        // Prefer the VM's own host when it still fits there, then first fit.
        let own = order.iter().position(|h| h.host == v.host);
        let fits = |k: usize, used: &[f64], booked: &[f64]| {
            used[k] + v.used <= fill * order[k].capacity + 1e-12
                && booked[k] + v.share <= order[k].capacity + 1e-9
        };
        let k = own
            .filter(|&k| used[k] > 0.0 && fits(k, &used, &booked))
            .or_else(|| (0..order.len()).find(|&k| fits(k, &used, &booked)))
            .or(own)
            .unwrap_or(0);
        used[k] += v.used;
        booked[k] += v.share;
        if order[k].host != v.host {
            moves.push(Migration {
                vm: v.vm,
                from: v.host,
                to: order[k].host,
            });
        }
    }
    let freed = order
        .iter()
        .zip(&booked)
        .filter(|(_, b)| **b == 0.0)
        .map(|(h, _)| h.host)
        .collect();
    Ok((moves, freed))
}

/// Time a migration takes and how long the VM is stopped.
///
/// ```
/// let t = dps_core::MigrationTime { total_s: 10.0, downtime_s: 10.0 };
/// assert!(t.downtime_s <= t.total_s);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MigrationTime {
    /// From start to the VM running on the destination.
    pub total_s: f64,
    /// The part of it during which the VM does not run.
    pub downtime_s: f64,
}

/// Section 5.5.3's cost model. Stop-and-copy stops the VM while its memory crosses the
/// network (128 MB over Fast Ethernet: about 10 s, the dissertation measured 10-12 s). Live
/// migration copies while the VM runs, then re-copies the pages dirtied meanwhile, round after
/// round, until what is left is small (or stops converging), and stops the VM only for that.
///
/// ```
/// let c = dps_core::MigrationCost::fast_ethernet();
/// let stop = c.stop_and_copy(128.0).unwrap();
/// assert!(stop.downtime_s > 9.0 && stop.downtime_s < 12.0);
/// let live = c.live(128.0, 1.0).unwrap();
/// assert!(live.downtime_s < 1.0 && live.total_s > stop.total_s);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MigrationCost {
    /// Usable network bandwidth, MB/s.
    pub bandwidth_mb_s: f64,
    /// Live migration stops iterating when the dirty set is below this, MB.
    pub stop_below_mb: f64,
    /// At most this many pre-copy rounds.
    pub max_rounds: u32,
    /// Fixed cost of suspending and resuming, s.
    pub resume_s: f64,
}

impl MigrationCost {
    /// Fast Ethernet (about 11.5 MB/s usable), as in the dissertation's testbed.
    ///
    /// ```
    /// assert!(dps_core::MigrationCost::fast_ethernet().bandwidth_mb_s > 10.0);
    /// ```
    pub fn fast_ethernet() -> Self {
        Self {
            bandwidth_mb_s: 11.5,
            stop_below_mb: 1.0,
            max_rounds: 30,
            resume_s: 0.1,
        }
    }

    fn check(&self, memory_mb: f64) -> Result<(), DpsError> {
        if !(self.bandwidth_mb_s.is_finite() && self.bandwidth_mb_s > 0.0) {
            return Err(DpsError::InvalidParameter {
                name: "bandwidth_mb_s",
                value: self.bandwidth_mb_s,
            });
        }
        if !(memory_mb.is_finite() && memory_mb >= 0.0) {
            return Err(DpsError::InvalidParameter {
                name: "memory_mb",
                value: memory_mb,
            });
        }
        Ok(())
    }

    /// Stop-and-copy: the VM is stopped for the whole copy.
    ///
    /// ```
    /// assert!(dps_core::MigrationCost::fast_ethernet().stop_and_copy(-1.0).is_err());
    /// ```
    pub fn stop_and_copy(&self, memory_mb: f64) -> Result<MigrationTime, DpsError> {
        self.check(memory_mb)?;
        let t = memory_mb / self.bandwidth_mb_s + self.resume_s;
        Ok(MigrationTime {
            total_s: t,
            downtime_s: t,
        })
    }

    /// Live pre-copy with the VM dirtying `dirty_mb_s` MB/s while it runs.
    ///
    /// ```
    /// let c = dps_core::MigrationCost::fast_ethernet();
    /// // a VM dirtying memory faster than the link copies never converges: it ends after
    /// // max_rounds with a long stop
    /// let t = c.live(128.0, 20.0).unwrap();
    /// assert!(t.downtime_s > 5.0);
    /// ```
    pub fn live(&self, memory_mb: f64, dirty_mb_s: f64) -> Result<MigrationTime, DpsError> {
        self.check(memory_mb)?;
        if !(dirty_mb_s.is_finite() && dirty_mb_s >= 0.0) {
            return Err(DpsError::InvalidParameter {
                name: "dirty_mb_s",
                value: dirty_mb_s,
            });
        }
        let mut to_copy = memory_mb;
        let mut total = 0.0;
        for _ in 0..self.max_rounds {
            if to_copy <= self.stop_below_mb {
                break;
            }
            let t = to_copy / self.bandwidth_mb_s;
            total += t;
            // Pages dirtied meanwhile, never more than the whole memory.
            let next = (dirty_mb_s * t).min(memory_mb);
            if next >= to_copy {
                to_copy = next;
                break;
            }
            to_copy = next;
        }
        let down = to_copy / self.bandwidth_mb_s + self.resume_s;
        Ok(MigrationTime {
            total_s: total + down,
            downtime_s: down,
        })
    }
}
