//! The cluster resource manager (section 5.2.2): finds bottleneck hosts (they rejected
//! transfers, or they are fully utilised), picks the VM to migrate (the least-utilised VM of the
//! bottleneck, which dirties fewest pages and fits most easily) and its destination (the
//! least-utilised host, or best fit as the alternative), repacks VMs to free hosts (fig. 5.3),
//! and prices a migration (section 5.5.3: stop-and-copy vs live pre-copy).

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

/// What the demand-aware CRM ([`balance`]) sees of a host after an exchange period: its
/// capacity, the CPU it measured in use, and whether it has *unmet shortage*.
///
/// ```
/// let h = dps_core::HostDemand { host: dps_core::HostId(0), capacity: 1.0, used: 1.0, unmet: true };
/// assert_eq!(h.idle(), 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostDemand {
    /// The host.
    pub host: HostId,
    /// Its capacity in shares.
    pub capacity: f64,
    /// CPU it used last period, in shares (VMs and background).
    pub used: f64,
    /// It has unmet shortage (section 5.2.2): a grant to one of its VMs was rejected, or a VM
    /// used its whole share while the host was fully booked and had no idle CPU left to give,
    /// so that VM "notifies the CRM and seeks migration".
    pub unmet: bool,
}

impl HostDemand {
    /// Measured idle capacity, capacity - used (never negative).
    ///
    /// ```
    /// let h = dps_core::HostDemand { host: dps_core::HostId(0), capacity: 2.0, used: 0.5, unmet: false };
    /// assert_eq!(h.idle(), 1.5);
    /// ```
    pub fn idle(&self) -> f64 {
        (self.capacity - self.used).max(0.0)
    }
}

/// The demand-aware balancing CRM (beyond section 5.2.2's utilisation rule, for "to balance
/// workload" in sections 5.5.5 and 5.5.6): at most `max` migrations, each from a host with
/// unmet shortage (most used first) to the host with the most measured idle capacity, moving
/// the VM whose measured use best evens the two hosts' utilisation. When no single VM narrows
/// the gap (VMs are coarse next to it), the pair of VMs, one from each host, whose difference
/// best evens it swaps hosts (two migrations); when neither works with that destination, the
/// next most idle host is tried. A move must strictly
/// narrow the gap between the two hosts and may never push the destination's measured demand
/// above its capacity (bookings are full everywhere in a fully booked cluster, so it judges
/// by measured use, not by bookings). Each host is the source or destination of at most one
/// move per call, and later moves see the earlier ones' projected effect. `vms` lists only
/// the VMs the caller allows to move (not migrating, not in their cooldown). A move (or swap)
/// must narrow the gap between the two hosts' utilisation by more than `min_gain` (a fraction
/// of capacity): in a busy BSP cluster some host is always the bottleneck, so without this
/// hysteresis the CRM keeps trading VMs for gains that measurement noise erases.
///
/// Errors: a VM on a host missing from `hosts`; `min_gain` negative or not finite.
///
/// ```
/// use dps_core::*;
/// let hosts = [
///     HostDemand { host: HostId(0), capacity: 1.0, used: 1.0, unmet: true },
///     HostDemand { host: HostId(1), capacity: 1.0, used: 0.4, unmet: false },
/// ];
/// let vms = [
///     VmLoad { vm: VmId(0), host: HostId(0), used: 0.6, share: 0.5 },
///     VmLoad { vm: VmId(1), host: HostId(0), used: 0.25, share: 0.25 },
///     VmLoad { vm: VmId(2), host: HostId(0), used: 0.15, share: 0.25 },
/// ];
/// // the gap is 0.6: moving 0.25 leaves 0.75 / 0.65, the most even of the three
/// let m = balance(&hosts, &vms, 4, 0.05).unwrap();
/// assert_eq!(m, vec![Migration { vm: VmId(1), from: HostId(0), to: HostId(1) }]);
/// ```
pub fn balance(
    hosts: &[HostDemand],
    vms: &[VmLoad],
    max: usize,
    min_gain: f64,
) -> Result<Vec<Migration>, DpsError> {
    if !(min_gain.is_finite() && min_gain >= 0.0) {
        return Err(DpsError::InvalidParameter {
            name: "min_gain",
            value: min_gain,
        });
    }
    let index = |h: HostId| hosts.iter().position(|x| x.host == h);
    for v in vms {
        if index(v.host).is_none() {
            return Err(DpsError::UnknownHost(v.host.0));
        }
    }
    let mut used: Vec<f64> = hosts.iter().map(|h| h.used).collect();
    let mut busy = vec![false; hosts.len()];
    let mut sources: Vec<usize> = (0..hosts.len()).filter(|&i| hosts[i].unmet).collect();
    sources.sort_by(|&a, &b| {
        (used[b] / hosts[b].capacity)
            .total_cmp(&(used[a] / hosts[a].capacity))
            .then(hosts[a].host.cmp(&hosts[b].host))
    });
    let mut out = Vec::new();
    for b in sources {
        if out.len() >= max {
            break;
        }
        if busy[b] {
            continue;
        }
        // Destinations by measured idle capacity, most first: the first that some VM evens.
        let mut dests: Vec<usize> = (0..hosts.len())
            .filter(|&i| i != b && !busy[i] && !hosts[i].unmet)
            .filter(|&i| hosts[i].capacity - used[i] > 0.0)
            .collect();
        dests.sort_by(|&x, &y| {
            (hosts[y].capacity - used[y])
                .total_cmp(&(hosts[x].capacity - used[x]))
                .then(hosts[x].host.cmp(&hosts[y].host))
        });
        for d in dests {
            let (cb, cd) = (hosts[b].capacity, hosts[d].capacity);
            let gap = used[b] / cb - used[d] / cd;
            if gap <= 0.0 {
                break;
            }
            // A move must narrow the utilisation gap by more than this.
            let gain = min_gain.max(1e-12);
            // Moving x evens the utilisation when (U_b - x) / C_b = (U_d + x) / C_d.
            let target = (used[b] * cd - used[d] * cb) / (cb + cd);
            let after = |x: f64| ((used[b] - x) / cb - (used[d] + x) / cd).abs();
            let best = vms
                .iter()
                .filter(|v| v.host == hosts[b].host && v.used > 0.0)
                .filter(|v| used[d] + v.used <= cd + 1e-12 && after(v.used) < gap - gain)
                .min_by(|x, y| {
                    (x.used - target)
                        .abs()
                        .total_cmp(&(y.used - target).abs())
                        .then(x.vm.cmp(&y.vm))
                });
            if let Some(v) = best {
                used[b] -= v.used;
                used[d] += v.used;
                busy[b] = true;
                busy[d] = true;
                out.push(Migration {
                    vm: v.vm,
                    from: hosts[b].host,
                    to: hosts[d].host,
                });
                break;
            }
            // No single VM evens the pair (VMs are coarse next to the gap): swap the pair of
            // VMs whose difference in measured use best evens it.
            if out.len() + 2 > max {
                continue;
            }
            let mut swap: Option<(&VmLoad, &VmLoad, f64)> = None;
            for a in vms.iter().filter(|v| v.host == hosts[b].host) {
                for c in vms.iter().filter(|v| v.host == hosts[d].host) {
                    let x = a.used - c.used;
                    if x <= 0.0 || used[d] + x > cd + 1e-12 || after(x) >= gap - gain {
                        continue;
                    }
                    let miss = (x - target).abs();
                    if swap.is_none_or(|(sa, sc, m)| {
                        miss < m || (miss == m && (a.vm, c.vm) < (sa.vm, sc.vm))
                    }) {
                        swap = Some((a, c, miss));
                    }
                }
            }
            if let Some((a, c, _)) = swap {
                used[b] -= a.used - c.used;
                used[d] += a.used - c.used;
                busy[b] = true;
                busy[d] = true;
                out.push(Migration {
                    vm: a.vm,
                    from: hosts[b].host,
                    to: hosts[d].host,
                });
                out.push(Migration {
                    vm: c.vm,
                    from: hosts[d].host,
                    to: hosts[b].host,
                });
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(h: u32, used: f64, unmet: bool) -> HostDemand {
        HostDemand {
            host: HostId(h),
            capacity: 1.0,
            used,
            unmet,
        }
    }

    fn vm(v: u32, h: u32, used: f64) -> VmLoad {
        VmLoad {
            vm: VmId(v),
            host: HostId(h),
            used,
            share: 0.25,
        }
    }

    #[test]
    fn balance_never_pushes_the_destination_above_capacity() {
        // Only a 0.5 VM could move, and 0.6 + 0.5 > 1: nothing moves.
        let hosts = [host(0, 1.0, true), host(1, 0.6, false)];
        assert!(
            balance(&hosts, &[vm(0, 0, 0.5)], 4, 0.0)
                .unwrap()
                .is_empty()
        );
        // Without unmet shortage there is no source at all.
        let hosts = [host(0, 1.0, false), host(1, 0.0, false)];
        assert!(
            balance(&hosts, &[vm(0, 0, 0.5)], 4, 0.0)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn balance_moves_only_when_the_gap_narrows_and_once_per_host() {
        // Gap 0.1: the 0.3 VM would put host 1 at 1.2 (above capacity); the 0.04 VM narrows
        // the gap to 0.02.
        let hosts = [host(0, 1.0, true), host(1, 0.9, false)];
        let m = balance(&hosts, &[vm(0, 0, 0.3), vm(1, 0, 0.04)], 4, 0.0).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].vm, VmId(1));
        // Two sources, one destination: the destination takes one move per round.
        let hosts = [host(0, 1.0, true), host(1, 1.0, true), host(2, 0.2, false)];
        let m = balance(&hosts, &[vm(0, 0, 0.4), vm(1, 1, 0.4)], 4, 0.0).unwrap();
        assert_eq!(m.len(), 1);
        // A negative hysteresis is a typed error.
        assert!(balance(&hosts, &[], 1, -0.1).is_err());
        // A host missing from `hosts` is a typed error.
        assert_eq!(
            balance(&hosts, &[vm(0, 9, 0.1)], 1, 0.0),
            Err(DpsError::UnknownHost(9))
        );
    }

    #[test]
    fn balance_swaps_when_every_single_vm_is_too_coarse() {
        // Moving either 0.5 VM would put host 1 at 1.3; swapping one for a 0.4 VM evens the
        // two hosts at 0.9.
        let hosts = [host(0, 1.0, true), host(1, 0.8, false)];
        let vms = [vm(0, 0, 0.5), vm(1, 0, 0.5), vm(2, 1, 0.4), vm(3, 1, 0.4)];
        let m = balance(&hosts, &vms, 4, 0.1).unwrap();
        assert_eq!(
            m,
            vec![
                Migration {
                    vm: VmId(0),
                    from: HostId(0),
                    to: HostId(1)
                },
                Migration {
                    vm: VmId(2),
                    from: HostId(1),
                    to: HostId(0)
                },
            ]
        );
        // Room for one move only: a swap needs two.
        assert!(balance(&hosts, &vms, 1, 0.1).unwrap().is_empty());
        // A gain below the hysteresis is not worth two migrations.
        assert!(balance(&hosts, &vms, 4, 0.25).unwrap().is_empty());
    }
}
