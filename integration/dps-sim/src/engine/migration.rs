//! The cluster resource manager (section 5.2.2's utilisation rule or the demand-aware
//! balancing) and the migration timers (pre-copy, stop, resume).

use super::*;

impl Engine<'_> {
    pub(crate) fn plan_migrations(
        &mut self,
        util: &[f64],
        host_used: &[f64],
        t: f64,
    ) -> Result<(), DpsError> {
        let Some(m) = self.cfg.migration else {
            return Ok(());
        };
        if m.balancing == Balancing::DemandAware {
            self.measure_paces();
        }
        let chosen = match m.balancing {
            Balancing::Utilization => self.utilization_moves(&m, util, host_used, t)?,
            Balancing::DemandAware => self.demand_aware_moves(&m, util, host_used, t)?,
        };
        let time = m.time()?;
        let cooldown = match m.balancing {
            Balancing::Utilization => m.cooldown_s,
            Balancing::DemandAware => m.cooldown_periods * self.cfg.period_s,
        };
        for mig in chosen {
            let vm = mig.vm.0 as usize;
            self.migrating[vm] = true;
            self.move_target[vm] = mig.to.0;
            self.cooldown_until[vm] = t + time.total_s + cooldown;
            self.report.migration_log.push(MigrationEvent {
                t,
                vm: mig.vm.0,
                from: mig.from.0,
                to: mig.to.0,
            });
            self.push_timer(
                t + time.total_s - time.downtime_s,
                Timer::Stop(vm as u32, mig.to.0),
            );
            self.push_timer(t + time.total_s, Timer::Resume(vm as u32));
            self.report.migrations += 1;
        }
        Ok(())
    }

    /// VMs the CRM may pick now: running, not migrating, past their cooldown, not done.
    pub(crate) fn movable(&self, vm: usize, t: f64) -> bool {
        self.running(vm)
            && !self.migrating[vm]
            && t >= self.cooldown_until[vm]
            && self.vms[vm].done < self.progs[self.vms[vm].prog as usize].iterations
    }

    pub(crate) fn vm_load(&self, vm: usize, util: &[f64]) -> VmLoad {
        VmLoad {
            vm: VmId(vm as u32),
            host: HostId(self.vms[vm].host),
            used: util[vm],
            share: self.ledger.shares()[vm],
        }
    }

    /// Section 5.2.2 as written: [`bottlenecks`] by rejection or utilisation threshold, then
    /// [`choose_migration`] for each, at most `max_per_period`.
    pub(crate) fn utilization_moves(
        &self,
        m: &MigrationSettings,
        util: &[f64],
        host_used: &[f64],
        t: f64,
    ) -> Result<Vec<Migration>, DpsError> {
        let hosts: Vec<HostLoad> = (0..self.hosts.len())
            .map(|h| {
                let id = HostId(h as u32);
                Ok(HostLoad {
                    host: id,
                    capacity: self.cfg.hosts[h].capacity_shares(),
                    used: host_used[h],
                    booked: self.ledger.booked(id)?,
                    rejections: self.ledger.rejections(id)?,
                })
            })
            .collect::<Result<_, DpsError>>()?;
        let vms: Vec<VmLoad> = (0..self.vms.len())
            .filter(|&vm| self.movable(vm, t))
            .map(|vm| self.vm_load(vm, util))
            .collect();
        let mut out = Vec::new();
        for b in bottlenecks(&hosts, m.full) {
            if out.len() >= m.max_per_period {
                break;
            }
            if let Some(mig) = choose_migration(b, &hosts, &vms, m.rule, m.full)? {
                out.push(mig);
            }
        }
        Ok(out)
    }

    /// Closes every VM's wake-up window; a program's pace is the mean of its VMs' rates
    /// (all of a BSP program's VMs go at one pace; the last to reach a barrier is never
    /// woken, so its peers measure it).
    pub(crate) fn measure_paces(&mut self) {
        for p in 0..self.progs.len() {
            let (first, n) = (self.progs[p].first as usize, self.progs[p].n as usize);
            let (mut sum, mut k) = (0.0, 0u32);
            for meter in &mut self.wake_rates[first..first + n] {
                if let Some(r) = meter.close() {
                    sum += r;
                    k += 1;
                }
            }
            if k > 0 {
                self.pace[p] = Some(sum / f64::from(k));
            }
        }
    }

    /// [`dps_core::balance`] over the hosts with no migration in flight: every running VM
    /// on them with its measured use and its program's measured pace.
    pub(crate) fn demand_aware_moves(
        &self,
        m: &MigrationSettings,
        util: &[f64],
        host_used: &[f64],
        t: f64,
    ) -> Result<Vec<Migration>, DpsError> {
        let mut in_flight = vec![false; self.hosts.len()];
        for (vm, &moving) in self.migrating.iter().enumerate() {
            if moving {
                in_flight[self.vms[vm].host as usize] = true;
                in_flight[self.move_target[vm] as usize] = true;
            }
        }
        let unmet = self.unmet_shortage(util, host_used)?;
        let hosts: Vec<HostDemand> = (0..self.hosts.len())
            .filter(|&h| !in_flight[h])
            .map(|h| HostDemand {
                host: HostId(h as u32),
                capacity: self.cfg.hosts[h].capacity_shares(),
                used: host_used[h],
                unmet: unmet[h],
            })
            .collect();
        let vms: Vec<VmDemand> = (0..self.vms.len())
            .filter(|&vm| self.running(vm) && !in_flight[self.vms[vm].host as usize])
            .map(|vm| VmDemand {
                vm: VmId(vm as u32),
                host: HostId(self.vms[vm].host),
                used: util[vm],
                pace: self.pace[self.vms[vm].prog as usize],
                movable: self.movable(vm, t),
            })
            .collect();
        balance(&hosts, &vms, m.max_per_period, m.min_gain)
    }

    /// Per host: unmet shortage in the last period (section 5.2.2's signal to the CRM). It had
    /// no idle CPU (less than [`IDLE_EPS`] of capacity: with idle CPU, every runnable VM got
    /// all it asked for) and either a grant to one of its VMs was rejected, or one of its
    /// running VMs used at least [`FULL_USE`] of what its share guarantees (its share, scaled
    /// by capacity / booking when a migration left the host booked above capacity) and so
    /// wanted more: on a fully booked host it "notifies the CRM and seeks migration"; on one
    /// with unbooked room it has a positive shortage for the bank, but a grant there only
    /// divides the same busy CPU differently, so the CRM hears of it too.
    pub(crate) fn unmet_shortage(
        &self,
        util: &[f64],
        host_used: &[f64],
    ) -> Result<Vec<bool>, DpsError> {
        let shares = self.ledger.shares();
        (0..self.hosts.len())
            .map(|h| {
                let id = HostId(h as u32);
                let cap = self.cfg.hosts[h].capacity_shares();
                // With idle CPU every runnable VM got all it asked for.
                let no_idle = host_used[h] >= cap * (1.0 - IDLE_EPS);
                if !no_idle {
                    return Ok(false);
                }
                if self.ledger.rejections(id)? > 0 {
                    return Ok(true);
                }
                let booked = self.ledger.booked(id)?;
                // What a VM's share guarantees it: all of it, or its proportional part of
                // the capacity when a migration left the host booked above capacity.
                let scale = if booked > cap { cap / booked } else { 1.0 };
                Ok(self.hosts[h].vms.iter().any(|&vm| {
                    let vm = vm as usize;
                    self.running(vm) && util[vm] >= FULL_USE * shares[vm] * scale
                }))
            })
            .collect()
    }

    pub(crate) fn push_timer(&mut self, at: f64, kind: Timer) {
        let k = self.timer_kinds.len();
        self.timer_kinds.push(kind);
        self.timers.push(Reverse((OrdF64(at), k as u64, k)));
    }

    pub fn next_timer(&self) -> f64 {
        self.timers
            .peek()
            .map_or(f64::INFINITY, |Reverse((t, _, _))| t.0)
    }

    /// Applies the earliest timer; returns the hosts whose entity set changed.
    pub fn fire_timer(&mut self) -> Result<Vec<usize>, DpsError> {
        let Some(Reverse((_, _, k))) = self.timers.pop() else {
            return Ok(Vec::new());
        };
        match self.timer_kinds[k] {
            Timer::Stop(vm, to) => {
                let from = self.vms[vm as usize].host as usize;
                self.hosts[from].vms.retain(|&x| x != vm);
                self.hosts[to as usize].vms.push(vm);
                self.vms[vm as usize].host = to;
                self.vms[vm as usize].paused = true;
                self.ledger.move_vm(VmId(vm), HostId(to))?;
                self.check_conservation()?;
                Ok(vec![from, to as usize])
            }
            Timer::Resume(vm) => {
                self.vms[vm as usize].paused = false;
                self.migrating[vm as usize] = false;
                self.check_conservation()?;
                Ok(vec![self.vms[vm as usize].host as usize])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads;

    /// Fig. 5.10 at N = 2 on 4 hosts: host 0 busy all period, host 3 half idle.
    fn cfg() -> SimConfig {
        let mut c = workloads::overbooked(4, 2, 0.5, 0.01, 0.1, 10, 1, Strategy::Static).unwrap();
        c.migration = Some(MigrationSettings::demand_aware());
        c
    }

    #[test]
    fn unmet_shortage_needs_a_host_without_idle_cpu_and_a_vm_using_its_share() {
        let c = cfg();
        let e = Engine::new(&c).unwrap();
        // VMs 0 and 4 are on host 0, 3 and 7 on host 3.
        let mut util = vec![0.3; 8];
        util[0] = 0.5;
        util[4] = 0.5;
        let used = [1.0, 0.8, 0.8, 0.5];
        assert_eq!(
            e.unmet_shortage(&util, &used).unwrap(),
            vec![true, false, false, false]
        );
    }

    #[test]
    fn the_demand_aware_crm_moves_to_the_idlest_host_and_the_timers_move_the_vm() {
        let c = cfg();
        let mut e = Engine::new(&c).unwrap();
        let mut util = vec![0.4; 8];
        util[0] = 0.6;
        util[4] = 0.4;
        util[3] = 0.2;
        util[7] = 0.1;
        let used = [1.0, 0.8, 0.8, 0.3];
        e.plan_migrations(&util, &used, 5.0).unwrap();
        // Gap 0.7: moving VM 0 (0.6) leaves 0.4 / 0.9, VM 4 (0.4) leaves 0.6 / 0.7: VM 4.
        assert_eq!(e.report.migration_log.len(), 1);
        let m = e.report.migration_log[0];
        assert_eq!((m.vm, m.from, m.to), (4, 0, 3));
        assert!(e.migrating[4]);
        let time = MigrationSettings::demand_aware().time().unwrap();
        assert_eq!(e.cooldown_until[4], 5.0 + time.total_s + 10.0 * c.period_s);
        // Stop: the VM and its share move and it pauses; resume: it runs again.
        assert!((e.next_timer() - (5.0 + time.total_s - time.downtime_s)).abs() < 1e-12);
        assert_eq!(e.fire_timer().unwrap(), vec![0, 3]);
        assert_eq!(e.vms[4].host, 3);
        assert!(e.vms[4].paused);
        assert_eq!(e.ledger.host_of(VmId(4)).unwrap(), HostId(3));
        e.fire_timer().unwrap();
        assert!(!e.vms[4].paused && !e.migrating[4]);
        assert_eq!(e.report.max_conservation_error, 0.0);
        // Within its cooldown the VM is not movable.
        assert!(!e.movable(4, 6.0));
    }
}
