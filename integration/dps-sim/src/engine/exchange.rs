//! The exchange at the end of each period: utilisation, then the strategy (fully
//! distributed eq. 5.1, the bank eq. 5.2, the critical-path bank) through the ledger.

use super::*;

impl Engine<'_> {
    /// The exchange at the end of a period: utilisation, the strategy, the CRM.
    pub fn exchange(&mut self, t: f64) -> Result<(), DpsError> {
        let span = t - self.period_start;
        self.period_start = t;
        self.cycle += 1;
        if span <= 0.0 {
            return Ok(());
        }
        let util: Vec<f64> = self.vms.iter().map(|v| v.used / span).collect();
        for v in &mut self.vms {
            v.used = 0.0;
        }
        for tr in &mut self.trackers {
            tr.expire(t);
        }
        let host_used: Vec<f64> = self.hosts.iter().map(|h| h.used_period / span).collect();
        for h in &mut self.hosts {
            h.used_period = 0.0;
        }
        let before: Vec<f64> = (0..self.hosts.len())
            .map(|h| self.ledger.booked(HostId(h as u32)).unwrap_or(0.0))
            .collect();
        match self.cfg.strategy {
            Strategy::Static => {}
            Strategy::FullyDistributed { withhold } => {
                self.exchange_distributed(&util, withhold, t)?
            }
            Strategy::Bank { every, banker } => {
                self.exchange_bank(&util, every, banker.policy(), false, t)?;
            }
            Strategy::CriticalPath { every } => {
                self.exchange_bank(&util, every, &dps_core::bank::CappedBanker, true, t)?;
            }
        }
        for (h, &b) in before.iter().enumerate() {
            let after = self.ledger.booked(HostId(h as u32))?;
            let cap = self.cfg.hosts[h].capacity_shares();
            if after > cap + 1e-9 && after > b + 1e-9 {
                self.report.capacity_violations += 1;
            }
        }
        if self.cfg.trace_shares {
            self.trace();
        }
        self.check_conservation()?;
        if self.cfg.migration.is_some() {
            self.plan_migrations(&util, &host_used, t)?;
        }
        for h in 0..self.hosts.len() {
            self.report.rejections += self.ledger.rejections(HostId(h as u32))?;
        }
        self.ledger.clear_rejections();
        Ok(())
    }

    pub(crate) fn floor(&self, vm: usize) -> f64 {
        let p = &self.progs[self.vms[vm].prog as usize];
        self.cfg.safeguards.min_share_fraction
            * self.cfg.programs[self.vms[vm].prog as usize].total_share
            / f64::from(p.n)
    }

    pub(crate) fn running(&self, vm: usize) -> bool {
        let v = &self.vms[vm];
        self.progs[v.prog as usize].done_at.is_none()
    }

    #[allow(clippy::needless_range_loop)] // `vm` indexes the ledger, util and the VM table alike
    pub(crate) fn exchange_distributed(
        &mut self,
        util: &[f64],
        withhold: Option<f64>,
        t: f64,
    ) -> Result<(), DpsError> {
        let mut ups = Vec::new();
        for vm in 0..self.vms.len() {
            if !self.running(vm) {
                continue;
            }
            ups.clear();
            ups.extend(self.trackers[vm].upstreams(t));
            let p = ups.len() as u32;
            if p == 0 {
                continue;
            }
            let w = self.ledger.shares()[vm];
            let wh = withhold.unwrap_or_else(|| dps_core::formula::default_withhold(p));
            // The floor: excess is computed against max(u, floor) so the VM keeps at least it.
            let u = util[vm].max(self.floor(vm));
            let s = offer(w, u, wh, p)?;
            if s <= 1e-12 {
                continue;
            }
            for &up in &ups {
                self.ledger
                    .transfer(Party::Vm(VmId(vm as u32)), Party::Vm(VmId(up)), s)?;
            }
        }
        Ok(())
    }

    pub(crate) fn exchange_bank(
        &mut self,
        util: &[f64],
        every: u32,
        banker: &dyn dps_core::bank::BankerPolicy,
        critical: bool,
        t: f64,
    ) -> Result<(), DpsError> {
        // Who is someone's upstream (critical path), for the critical-path policy.
        let mut is_upstream = vec![false; if critical { self.vms.len() } else { 0 }];
        if critical {
            for tr in &self.trackers {
                for up in tr.upstreams(t) {
                    is_upstream[up as usize] = true;
                }
            }
        }
        for vm in 0..self.vms.len() {
            if !self.running(vm) {
                continue;
            }
            let w = self.ledger.shares()[vm];
            let u = util[vm].max(self.floor(vm));
            let waited = self.trackers[vm].count(t) > 0;
            let e = excess(w, u)?;
            if e > 1e-12 && (!critical || (waited && !is_upstream[vm])) {
                let p = self.vms[vm].prog;
                self.ledger
                    .transfer(Party::Vm(VmId(vm as u32)), Party::Bank(ProgramId(p)), e)?;
                self.shortages_pending[vm] = 0.0;
            } else if !critical || is_upstream[vm] {
                let r = self.ledger.unbooked(HostId(self.vms[vm].host))?;
                self.shortages_pending[vm] = shortage(w, util[vm], r)?;
            } else {
                self.shortages_pending[vm] = 0.0;
            }
        }
        if self.cycle % every != 0 {
            return Ok(());
        }
        let (mut shares, mut short, mut room, mut grants) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for p in 0..self.progs.len() {
            if self.progs[p].done_at.is_some() {
                continue;
            }
            let balance = self.ledger.bank(ProgramId(p as u32))?;
            if balance <= 1e-12 {
                continue;
            }
            let range =
                self.progs[p].first as usize..(self.progs[p].first + self.progs[p].n) as usize;
            shares.clear();
            short.clear();
            room.clear();
            for vm in range.clone() {
                shares.push(self.ledger.shares()[vm]);
                short.push(self.shortages_pending[vm]);
                room.push(self.ledger.unbooked(HostId(self.vms[vm].host))?);
            }
            // The critical-path banker keeps the remainder for the critical VMs only.
            if critical {
                for (k, vm) in range.clone().enumerate() {
                    if !is_upstream[vm] {
                        room[k] = 0.0;
                        shares[k] = 0.0;
                    }
                }
            }
            grants.clear();
            grants.resize(shares.len(), 0.0);
            banker.grants(
                &BankRound {
                    shares: &shares,
                    shortages: &short,
                    headroom: &room,
                    balance,
                },
                &mut grants,
            )?;
            for (k, vm) in range.enumerate() {
                let g = grants[k].min(self.ledger.bank(ProgramId(p as u32))?);
                if g > 1e-12 {
                    self.ledger.transfer(
                        Party::Bank(ProgramId(p as u32)),
                        Party::Vm(VmId(vm as u32)),
                        g,
                    )?;
                }
                self.shortages_pending[vm] = 0.0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Banker, ProgramSpec, VmSpec};
    use dps_core::model::HostSpec;

    /// Two VMs on two half-booked hosts, W = 0.4: VM 0 busy, VM 1 idle for a period.
    fn engine(cfg: &SimConfig) -> Engine<'_> {
        let mut e = Engine::new(cfg).unwrap();
        e.vms[0].used = 0.5 * cfg.period_s;
        e.vms[1].used = 0.0;
        // VM 1 waited on VM 0: VM 0 is its upstream.
        e.trackers[1].observe(WakeUp {
            sender: 0,
            receiver_was_blocked: true,
            at: 1.0,
        });
        e
    }

    fn cfg(strategy: Strategy) -> SimConfig {
        let host = HostSpec::new(1.0, 0.0)
            .unwrap()
            .with_background(0.5)
            .unwrap();
        let prog = ProgramSpec {
            topology: Topology::Linear,
            iterations: 5,
            total_share: 0.4,
            vms: (0..2)
                .map(|h| VmSpec {
                    host: HostId(h),
                    demand: 1.0,
                })
                .collect(),
        };
        SimConfig::new(vec![host; 2], vec![prog], strategy)
    }

    #[test]
    fn the_bank_moves_the_idle_vms_share_to_the_busy_one_and_conserves() {
        let c = cfg(Strategy::Bank {
            every: 1,
            banker: Banker::Spec,
        });
        let mut e = engine(&c);
        e.exchange(c.period_s).unwrap();
        let s = e.ledger.shares();
        assert!(s[0] > 0.2 + 0.19, "busy VM got {}", s[0]);
        assert!(s[1] < 0.01, "idle VM kept {}", s[1]);
        assert!(e.ledger.conservation_error(ProgramId(0)).unwrap() < 1e-12);
        assert_eq!(e.cycle, 1);
        assert_eq!(e.vms[0].used, 0.0, "usage restarts each period");
    }

    #[test]
    fn fully_distributed_offers_eq_5_1_to_the_upstream_only() {
        let c = cfg(Strategy::FullyDistributed { withhold: None });
        let mut e = engine(&c);
        e.exchange(c.period_s).unwrap();
        // VM 1: excess 0.2, one upstream, wh = 1/2: offers 0.1 to VM 0.
        let s = e.ledger.shares();
        assert!((s[0] - 0.3).abs() < 1e-12 && (s[1] - 0.1).abs() < 1e-12);
    }

    #[test]
    fn static_shares_never_move_and_the_floor_is_kept() {
        let c = cfg(Strategy::Static);
        let mut e = engine(&c);
        e.exchange(c.period_s).unwrap();
        assert_eq!(e.ledger.shares(), &[0.2, 0.2]);
        let mut g = cfg(Strategy::guarded());
        g.safeguards = crate::config::Safeguards::guarded();
        let mut e = engine(&g);
        e.exchange(g.period_s).unwrap();
        assert!(e.ledger.shares()[1] >= 0.1 - 1e-12, "floor of half W/N");
    }
}
