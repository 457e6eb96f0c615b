//! BSP progress: a VM's iteration starts when it and its neighbours finished the previous
//! one; the neighbour whose completion wakes a blocked VM is reported to its upstream tracker.

use super::*;

/// Deterministic per-(seed, vm, iteration) noise in [0, 1): order-independent, so engines and
/// any parallel phase draw the same numbers.
fn unit_noise(seed: u64, vm: u32, iteration: u32) -> f64 {
    let mut z =
        seed ^ (u64::from(vm) << 32 | u64::from(iteration)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Engine<'_> {
    pub(crate) fn start_iteration(&mut self, vm: u32) {
        let v = &mut self.vms[vm as usize];
        let j = self.cfg.jitter;
        let scale = if j > 0.0 {
            1.0 - j + 2.0 * j * unit_noise(self.cfg.seed, vm, v.done)
        } else {
            1.0
        };
        v.remaining = v.demand * scale;
        v.runnable = true;
    }

    /// VM `vm` finished its current iteration at `t`. `before_wake(engine, host, woken_vm)` is
    /// called for each VM it unblocks, before that VM becomes runnable, so the driver can bring
    /// that host's clock to `t`.
    pub fn complete(
        &mut self,
        vm: u32,
        t: f64,
        before_wake: &mut dyn FnMut(&mut Self, u32, u32),
    ) -> Result<(), DpsError> {
        let p = self.vms[vm as usize].prog as usize;
        {
            let v = &mut self.vms[vm as usize];
            v.runnable = false;
            v.remaining = 0.0;
            v.done += 1;
        }
        self.total_iterations += 1;
        let done = self.vms[vm as usize].done;
        let iterations = self.progs[p].iterations;
        if done == iterations {
            self.progs[p].finished_vms += 1;
            if self.progs[p].finished_vms == self.progs[p].n {
                self.finish_program(p, t)?;
                return Ok(());
            }
        }
        let first = self.progs[p].first;
        if self.progs[p].topology == Topology::AllToAll {
            self.progs[p].arrived += 1;
            if self.progs[p].arrived == self.progs[p].n {
                self.progs[p].arrived = 0;
                for other in first..first + self.progs[p].n {
                    if self.vms[other as usize].done < iterations {
                        let h = self.vms[other as usize].host;
                        before_wake(self, h, other);
                        if other != vm {
                            self.trackers[other as usize].observe(WakeUp {
                                sender: vm,
                                receiver_was_blocked: true,
                                at: t,
                            });
                            self.wake_rates[other as usize].observe(t);
                        }
                        self.start_iteration(other);
                    }
                }
            }
            return Ok(());
        }
        let local = vm - first;
        let neighbours = std::mem::take(&mut self.progs[p].neighbours[local as usize]);
        for &nb in &neighbours {
            let o = (first + nb) as usize;
            if self.vms[o].done == done && !self.vms[o].runnable && self.vms[o].done < iterations {
                self.vms[o].waiting -= 1;
                if self.vms[o].waiting == 0 {
                    let h = self.vms[o].host;
                    before_wake(self, h, first + nb);
                    self.trackers[o].observe(WakeUp {
                        sender: vm,
                        receiver_was_blocked: true,
                        at: t,
                    });
                    self.wake_rates[o].observe(t);
                    self.start_iteration(first + nb);
                }
            }
        }
        if done < iterations {
            let missing = neighbours
                .iter()
                .filter(|&&nb| self.vms[(first + nb) as usize].done < done)
                .count() as u32;
            self.vms[vm as usize].waiting = missing;
            if missing == 0 {
                self.start_iteration(vm);
            }
        }
        self.progs[p].neighbours[local as usize] = neighbours;
        Ok(())
    }

    pub(crate) fn finish_program(&mut self, p: usize, t: f64) -> Result<(), DpsError> {
        if self.progs[p].done_at.is_none() {
            self.progs[p].done_at = Some(t);
            self.programs_left -= 1;
            self.ledger.retire(ProgramId(p as u32))?;
        }
        Ok(())
    }

    pub fn progress(&self) -> f64 {
        let total: u64 = self
            .progs
            .iter()
            .map(|p| u64::from(p.n) * u64::from(p.iterations))
            .sum();
        if total == 0 {
            1.0
        } else {
            self.total_iterations as f64 / total as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProgramSpec, VmSpec};
    use dps_core::model::HostSpec;

    fn two_vm_linear() -> SimConfig {
        let prog = ProgramSpec {
            topology: Topology::Linear,
            iterations: 2,
            total_share: 0.4,
            vms: (0..2)
                .map(|h| VmSpec {
                    host: HostId(h),
                    demand: 1.0,
                })
                .collect(),
        };
        SimConfig::new(
            vec![HostSpec::new(1.0, 0.0).unwrap(); 2],
            vec![prog],
            Strategy::Static,
        )
    }

    #[test]
    fn noise_is_a_pure_function_in_the_unit_interval() {
        for i in 0..100 {
            let x = unit_noise(7, i, i * 3);
            assert!((0.0..1.0).contains(&x));
            assert_eq!(x, unit_noise(7, i, i * 3));
        }
        assert_ne!(unit_noise(7, 1, 0), unit_noise(8, 1, 0));
    }

    #[test]
    fn a_vm_waits_for_its_neighbour_and_names_it_as_upstream_when_woken() {
        let cfg = two_vm_linear();
        let mut e = Engine::new(&cfg).unwrap();
        assert!(e.vms[0].runnable && e.vms[1].runnable);
        // VM 0 finishes iteration 1 first: it must wait for VM 1.
        e.complete(0, 1.0, &mut |_, _, _| {}).unwrap();
        assert!(!e.vms[0].runnable);
        assert_eq!(e.vms[0].waiting, 1);
        assert_eq!(e.progress(), 0.25);
        // VM 1's completion wakes VM 0 (and VM 1 goes on at once: VM 0 is done with 1).
        let mut woken = Vec::new();
        e.complete(1, 2.0, &mut |_, _, vm| woken.push(vm)).unwrap();
        assert_eq!(woken, vec![0]);
        assert!(e.vms[0].runnable && e.vms[1].runnable);
        assert_eq!(e.trackers[0].upstreams(2.0).collect::<Vec<_>>(), vec![1]);
        // Last iterations: the program finishes and retires from the ledger.
        e.complete(0, 3.0, &mut |_, _, _| {}).unwrap();
        e.complete(1, 4.0, &mut |_, _, _| {}).unwrap();
        assert_eq!(e.programs_left, 0);
        assert_eq!(e.progs[0].done_at, Some(4.0));
        assert_eq!(e.progress(), 1.0);
        assert_eq!(e.ledger.booked(HostId(0)).unwrap(), 0.0);
    }
}
