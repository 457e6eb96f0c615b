//! The demand-aware balancing CRM (beyond section 5.2.2's utilisation rule, for "to balance
//! workload" in sections 5.5.5 and 5.5.6): the recommended CRM where VMs may move.
//!
//! It balances each host's **per-round demand**, not its utilisation. A BSP program goes at
//! the pace of its slowest VM, so in a busy cluster every host can be equally *used* while the
//! programs go at different paces: a host full of a fast program's VMs reads as busy as one
//! holding a slow program back. What the CRM measures of a VM is its CPU use u and its
//! program's pace f (iterations per second, from the wake-ups its peers' barrier messages
//! cause: [`crate::WakeRate`]); u / f is the CPU it needs per iteration, the demand the
//! simulator hides. [`round_loads`] scales each VM's use to the common pace, u * f_ref / f, so
//! that a host's load is the CPU it would use if every program went at the same pace; evening
//! those evens the programs' paces (largest-first placement on these loads, with full
//! knowledge, is what the zero-cost bound of fig. 5.10 approaches).

use std::collections::HashMap;

use crate::crm::Migration;
use crate::error::DpsError;
use crate::model::{HostId, VmId};

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
    /// It has unmet shortage (section 5.2.2): it had no idle CPU, and a grant to one of its
    /// VMs was rejected or one of its VMs used all of the share it is guaranteed and wanted
    /// more (a positive shortage that no share can meet, since no CPU is left to give), so
    /// that VM "notifies the CRM and seeks migration".
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

/// What the demand-aware CRM sees of a VM after an exchange period.
///
/// ```
/// let v = dps_core::VmDemand { vm: dps_core::VmId(0), host: dps_core::HostId(0), used: 0.4,
///     pace: Some(5.0), movable: true };
/// assert_eq!(v.used / v.pace.unwrap(), 0.08); // CPU-seconds per iteration
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VmDemand {
    /// The VM.
    pub vm: VmId,
    /// Its host.
    pub host: HostId,
    /// CPU it used last period, in shares.
    pub used: f64,
    /// Its program's measured pace, iterations per second ([`crate::WakeRate`] over the
    /// program's VMs); `None` before one was measured (its use then counts as it is).
    pub pace: Option<f64>,
    /// The CRM may move it now (not migrating, past its cooldown). Every running VM is
    /// listed, movable or not, since each one loads its host.
    pub movable: bool,
}

/// Each VM's load at the common pace: u * f_ref / f for a VM whose program's pace f is known,
/// with f_ref chosen so that these loads sum to the same CPU as the VMs' measured use (so they
/// are comparable with capacity and with the use of VMs whose pace is not known, which count
/// as used). A VM of a program going at half the pace of another counts twice its use.
/// Errors: a use negative or not finite, a pace not finite and positive.
///
/// ```
/// use dps_core::*;
/// let vm = |used, pace| VmDemand { vm: VmId(0), host: HostId(0), used, pace, movable: true };
/// // both need 0.1 CPU-s per iteration; one program goes twice as fast as the other
/// let l = round_loads(&[vm(0.6, Some(6.0)), vm(0.3, Some(3.0)), vm(0.2, None)]).unwrap();
/// assert!((l[0] - l[1]).abs() < 1e-12 && (l[0] + l[1] - 0.9).abs() < 1e-12);
/// assert_eq!(l[2], 0.2);
/// ```
pub fn round_loads(vms: &[VmDemand]) -> Result<Vec<f64>, DpsError> {
    let (mut used, mut per_round) = (0.0, 0.0);
    for v in vms {
        if !(v.used.is_finite() && v.used >= 0.0) {
            return Err(DpsError::InvalidUtilization(v.used));
        }
        if let Some(f) = v.pace {
            if !(f.is_finite() && f > 0.0) {
                return Err(DpsError::InvalidParameter {
                    name: "pace",
                    value: f,
                });
            }
            used += v.used;
            per_round += v.used / f;
        }
    }
    let reference = if per_round > 0.0 {
        used / per_round
    } else {
        0.0
    };
    Ok(vms
        .iter()
        .map(|v| match v.pace {
            Some(f) if reference > 0.0 => v.used * reference / f,
            _ => v.used,
        })
        .collect())
}

/// The demand-aware CRM's decisions for one exchange period: at most `max` migrations.
///
/// - **Load**: a host's load is its VMs' [`round_loads`] plus whatever else it used
///   (background); a VM moves its round load with it.
/// - **Source**: nothing moves unless some host has unmet shortage ([`HostDemand::unmet`]).
///   Then the sources are those hosts and every host whose load (as a fraction of capacity)
///   is above the mean of `hosts` by more than `min_gain`: once the short host is relieved
///   the programs speed up and those run out of CPU next, so they shed load at the same time
///   rather than one migration after another. Highest load first.
/// - **Destination**: the host that is not a source with the lowest load (the most idle
///   capacity at the common pace), else the next one.
/// - **VM**: the movable VM whose round load best evens the two hosts; when no single VM
///   narrows their gap (VMs are coarse next to it), the pair of movable VMs, one from each
///   host, whose difference best evens it swaps hosts (two migrations).
/// - **Hysteresis**: a move or swap must narrow the gap between the two hosts' load (as a
///   fraction of capacity) by more than `min_gain`: some host of a busy BSP cluster is always
///   the bottleneck, and gains below measurement noise are not worth a migration.
/// - **Capacity**: never moves a VM onto a host whose measured use it would push above
///   capacity (a swap counts the difference of the two VMs' use): bookings are full everywhere
///   in a fully booked cluster, so it judges by measured use, not by bookings.
/// - Each host is the source or destination of at most one move (or swap) per call, and later
///   moves see the earlier ones' projected effect. The caller leaves out hosts with a migration
///   in flight.
///
/// Errors: a VM on a host missing from `hosts`; `min_gain` negative or not finite; a capacity
/// not finite and positive; a use or pace [`round_loads`] rejects.
///
/// ```
/// use dps_core::*;
/// let hosts = [
///     HostDemand { host: HostId(0), capacity: 1.0, used: 1.0, unmet: true },
///     HostDemand { host: HostId(1), capacity: 1.0, used: 0.4, unmet: false },
/// ];
/// let vm = |v, h, used| VmDemand { vm: VmId(v), host: HostId(h), used, pace: Some(5.0), movable: true };
/// let vms = [vm(0, 0, 0.6), vm(1, 0, 0.25), vm(2, 0, 0.15), vm(3, 1, 0.4)];
/// // the gap is 0.6: moving 0.25 leaves 0.75 / 0.65, the most even of the three
/// let m = balance(&hosts, &vms, 4, 0.05).unwrap();
/// assert_eq!(m, vec![Migration { vm: VmId(1), from: HostId(0), to: HostId(1) }]);
/// ```
pub fn balance(
    hosts: &[HostDemand],
    vms: &[VmDemand],
    max: usize,
    min_gain: f64,
) -> Result<Vec<Migration>, DpsError> {
    if !(min_gain.is_finite() && min_gain >= 0.0) {
        return Err(DpsError::InvalidParameter {
            name: "min_gain",
            value: min_gain,
        });
    }
    let mut index = HashMap::with_capacity(hosts.len());
    for (i, h) in hosts.iter().enumerate() {
        if !(h.capacity.is_finite() && h.capacity > 0.0) {
            return Err(DpsError::InvalidCapacity(h.capacity));
        }
        if !(h.used.is_finite() && h.used >= 0.0) {
            return Err(DpsError::InvalidUtilization(h.used));
        }
        index.insert(h.host, i);
    }
    let vm_load = round_loads(vms)?;
    let mut on = vec![Vec::new(); hosts.len()];
    let mut vm_used = vec![0.0; hosts.len()];
    let mut load = vec![0.0; hosts.len()];
    for (k, v) in vms.iter().enumerate() {
        let &h = index.get(&v.host).ok_or(DpsError::UnknownHost(v.host.0))?;
        vm_used[h] += v.used;
        load[h] += vm_load[k];
        if v.movable {
            on[h].push(k);
        }
    }
    let mut used: Vec<f64> = hosts.iter().map(|h| h.used).collect();
    for h in 0..hosts.len() {
        // What the listed VMs did not use: background load, counted as it is.
        load[h] += (used[h] - vm_used[h]).max(0.0);
    }
    let level = |load: &[f64], i: usize| load[i] / hosts[i].capacity;
    let mut busy = vec![false; hosts.len()];
    // Some host is short: every host whose load is above the mean by more than the
    // hysteresis is a bottleneck in waiting (the next to run out of CPU once the short one is
    // relieved), so it sheds load now instead of one 13.6 s migration after another.
    let mean = (0..hosts.len()).map(|i| level(&load, i)).sum::<f64>() / hosts.len().max(1) as f64;
    let any_short = hosts.iter().any(|h| h.unmet);
    let source: Vec<bool> = (0..hosts.len())
        .map(|i| hosts[i].unmet || (any_short && level(&load, i) > mean + min_gain))
        .collect();
    let mut sources: Vec<usize> = (0..hosts.len()).filter(|&i| source[i]).collect();
    sources.sort_by(|&a, &b| {
        level(&load, b)
            .total_cmp(&level(&load, a))
            .then(hosts[a].host.cmp(&hosts[b].host))
    });
    // Destinations, least loaded first: sorted once, as only hosts that took part in a move
    // (and are then busy) change their load.
    let mut dests: Vec<usize> = (0..hosts.len()).filter(|&i| !source[i]).collect();
    dests.sort_by(|&x, &y| {
        level(&load, x)
            .total_cmp(&level(&load, y))
            .then(hosts[x].host.cmp(&hosts[y].host))
    });
    let gain = min_gain.max(1e-12);
    let mut out = Vec::new();
    for b in sources {
        if out.len() >= max {
            break;
        }
        for &d in &dests {
            if busy[d] {
                continue;
            }
            let (cb, cd) = (hosts[b].capacity, hosts[d].capacity);
            let gap = level(&load, b) - level(&load, d);
            if gap <= gain {
                break;
            }
            // Moving load x evens the two when (L_b - x) / C_b = (L_d + x) / C_d.
            let target = (load[b] * cd - load[d] * cb) / (cb + cd);
            let after = |x: f64| ((load[b] - x) / cb - (load[d] + x) / cd).abs();
            let room = cd - used[d];
            let single = on[b]
                .iter()
                .copied()
                .filter(|&k| vms[k].used > 0.0 && vms[k].used <= room + 1e-12)
                .filter(|&k| after(vm_load[k]) < gap - gain)
                .min_by(|&x, &y| {
                    (vm_load[x] - target)
                        .abs()
                        .total_cmp(&(vm_load[y] - target).abs())
                        .then(vms[x].vm.cmp(&vms[y].vm))
                });
            let pair = if single.is_none() && out.len() + 2 <= max {
                best_swap(&on[b], &on[d], vms, &vm_load, room, target, |x| {
                    after(x) < gap - gain
                })
            } else {
                None
            };
            let moved: Vec<(usize, usize, usize)> = match (single, pair) {
                (Some(k), _) => vec![(k, b, d)],
                (None, Some((a, c))) => vec![(a, b, d), (c, d, b)],
                (None, None) => continue,
            };
            for &(k, from, to) in &moved {
                used[from] -= vms[k].used;
                used[to] += vms[k].used;
                load[from] -= vm_load[k];
                load[to] += vm_load[k];
                out.push(Migration {
                    vm: vms[k].vm,
                    from: hosts[from].host,
                    to: hosts[to].host,
                });
            }
            busy[b] = true;
            busy[d] = true;
            break;
        }
    }
    Ok(out)
}

/// The swap (a from the source's movable VMs `from`, c from the destination's `to`) whose
/// load difference comes closest to `target`, moves load toward the destination, passes
/// `narrows`, and adds at most `room` of measured use to the destination.
fn best_swap(
    from: &[usize],
    to: &[usize],
    vms: &[VmDemand],
    vm_load: &[f64],
    room: f64,
    target: f64,
    narrows: impl Fn(f64) -> bool,
) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize, f64)> = None;
    for &a in from {
        for &c in to {
            let x = vm_load[a] - vm_load[c];
            if x <= 0.0 || vms[a].used - vms[c].used > room + 1e-12 || !narrows(x) {
                continue;
            }
            let miss = (x - target).abs();
            if best.is_none_or(|(sa, sc, m)| {
                miss < m || (miss == m && (vms[a].vm, vms[c].vm) < (vms[sa].vm, vms[sc].vm))
            }) {
                best = Some((a, c, miss));
            }
        }
    }
    best.map(|(a, c, _)| (a, c))
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

    fn vm(v: u32, h: u32, used: f64) -> VmDemand {
        paced(v, h, used, None)
    }

    fn paced(v: u32, h: u32, used: f64, pace: Option<f64>) -> VmDemand {
        VmDemand {
            vm: VmId(v),
            host: HostId(h),
            used,
            pace,
            movable: true,
        }
    }

    #[test]
    fn balance_never_pushes_the_destination_above_capacity() {
        // Only a 0.5 VM could move, and 0.6 + 0.5 > 1: nothing moves.
        let hosts = [host(0, 1.0, true), host(1, 0.6, false)];
        let vms = [vm(0, 0, 0.5), vm(1, 0, 0.5), vm(2, 1, 0.6)];
        assert!(balance(&hosts, &vms, 4, 0.0).unwrap().is_empty());
        // Without unmet shortage there is no source at all.
        let hosts = [host(0, 1.0, false), host(1, 0.0, false)];
        assert!(
            balance(&hosts, &[vm(0, 0, 0.5), vm(1, 0, 0.5)], 4, 0.0)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn balance_moves_only_when_the_gap_narrows_and_once_per_host() {
        // Gap 0.4: the 0.6 VM would put host 1 at 1.2 (above capacity); the 0.2 VM evens
        // the two at 0.8.
        let hosts = [host(0, 1.0, true), host(1, 0.6, false)];
        let vms = [vm(0, 0, 0.6), vm(1, 0, 0.2), vm(2, 0, 0.2), vm(3, 1, 0.6)];
        let m = balance(&hosts, &vms, 4, 0.0).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].vm, VmId(1));
        // A VM the caller marks not movable stays (VM 2 is the same size and goes instead).
        let mut pinned = vms;
        pinned[1].movable = false;
        assert_eq!(balance(&hosts, &pinned, 4, 0.0).unwrap()[0].vm, VmId(2));
        // Two sources, one destination: the destination takes one move per round.
        let hosts = [host(0, 1.0, true), host(1, 1.0, true), host(2, 0.2, false)];
        let vms = [vm(0, 0, 0.4), vm(1, 0, 0.6), vm(2, 1, 0.4), vm(3, 1, 0.6)];
        let m = balance(&hosts, &vms, 4, 0.0).unwrap();
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

    #[test]
    fn hosts_above_the_mean_shed_load_only_while_some_host_is_short() {
        // Host 0 is short; host 1 has idle CPU but carries more than the mean (0.625) plus the
        // hysteresis: both shed a VM, to the two least loaded hosts.
        let hosts = [
            host(0, 1.0, true),
            host(1, 0.9, false),
            host(2, 0.3, false),
            host(3, 0.3, false),
        ];
        let vms = [
            vm(0, 0, 0.5),
            vm(1, 0, 0.5),
            vm(2, 1, 0.45),
            vm(3, 1, 0.45),
            vm(4, 2, 0.3),
            vm(5, 3, 0.3),
        ];
        let m = balance(&hosts, &vms, 4, 0.1).unwrap();
        let moves: Vec<(u32, u32, u32)> = m.iter().map(|x| (x.vm.0, x.from.0, x.to.0)).collect();
        assert_eq!(moves, vec![(0, 0, 2), (2, 1, 3)]);
        // Nobody short: nothing moves, however uneven the loads.
        let calm: Vec<HostDemand> = hosts
            .iter()
            .map(|h| HostDemand { unmet: false, ..*h })
            .collect();
        assert!(balance(&calm, &vms, 4, 0.1).unwrap().is_empty());
    }

    #[test]
    fn balance_evens_the_programs_pace_not_the_hosts_use() {
        // Both hosts are fully used. Host 0 holds two VMs of a slow program (pace 2 per s,
        // 0.25 CPU-s per iteration each), host 1 two VMs of a fast one (pace 8, 0.0625 each):
        // by use the hosts are level and nothing would move; per iteration host 0 needs four
        // times what host 1 does. Swapping one VM of each evens the two.
        let hosts = [host(0, 1.0, true), host(1, 1.0, false)];
        let vms = [
            paced(0, 0, 0.5, Some(2.0)),
            paced(1, 0, 0.5, Some(2.0)),
            paced(2, 1, 0.5, Some(8.0)),
            paced(3, 1, 0.5, Some(8.0)),
        ];
        let m = balance(&hosts, &vms, 4, 0.1).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].vm, m[0].to), (VmId(0), HostId(1)));
        assert_eq!((m[1].vm, m[1].to), (VmId(2), HostId(0)));
        // Without paces the same measurements show no gap.
        let unpaced: Vec<VmDemand> = vms.iter().map(|v| VmDemand { pace: None, ..*v }).collect();
        assert!(balance(&hosts, &unpaced, 4, 0.1).unwrap().is_empty());
    }

    #[test]
    fn round_loads_keep_the_total_and_reject_bad_input() {
        let vms = [paced(0, 0, 0.5, Some(2.0)), paced(1, 0, 0.3, Some(8.0))];
        let l = round_loads(&vms).unwrap();
        assert!((l.iter().sum::<f64>() - 0.8).abs() < 1e-12);
        assert!((l[0] / l[1] - (0.5 / 2.0) / (0.3 / 8.0)).abs() < 1e-9);
        assert!(round_loads(&[paced(0, 0, 0.5, Some(0.0))]).is_err());
        assert!(round_loads(&[paced(0, 0, f64::NAN, None)]).is_err());
        // Nothing used: loads are the (zero) use.
        assert_eq!(
            round_loads(&[paced(0, 0, 0.0, Some(1.0))]).unwrap(),
            vec![0.0]
        );
        let bad = [HostDemand {
            capacity: 0.0,
            ..host(0, 0.0, false)
        }];
        assert_eq!(
            balance(&bad, &[], 1, 0.0),
            Err(DpsError::InvalidCapacity(0.0))
        );
    }
}
