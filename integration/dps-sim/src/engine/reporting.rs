//! What the run reports: the share trace, conservation checks, the final [`SimReport`].

use super::*;

impl Engine<'_> {
    /// Records the worst conservation error of any program now (SPEC 6's invariant).
    pub(crate) fn check_conservation(&mut self) -> Result<(), DpsError> {
        for p in 0..self.progs.len() {
            let e = self.ledger.conservation_error(ProgramId(p as u32))?.abs();
            if e > self.report.max_conservation_error {
                self.report.max_conservation_error = e;
            }
        }
        Ok(())
    }

    pub(crate) fn trace(&mut self) {
        let shares = self.ledger.shares();
        for p in 0..self.progs.len() {
            let first = self.progs[p].first;
            for k in 0..self.progs[p].n {
                let vm = first + k;
                self.report.shares.push(ShareSample {
                    t: self.now,
                    cycle: self.cycle,
                    program: p as u32,
                    vm: k,
                    share: shares[vm as usize],
                });
            }
        }
    }

    pub fn finish(mut self) -> SimReport {
        let mut sum = 0.0;
        let mut makespan: f64 = 0.0;
        for p in &self.progs {
            let r = p.done_at.unwrap_or(self.now);
            sum += r;
            makespan = makespan.max(r);
            self.report.programs.push(ProgramResult { response_s: r });
        }
        self.report.mean_response_s = if self.progs.is_empty() {
            0.0
        } else {
            sum / self.progs.len() as f64
        };
        self.report.makespan_s = makespan;
        self.report.vm_iterations = self.total_iterations;
        self.report.exchanges = self.cycle;
        self.report.background_cpu_s = self.hosts.iter().map(|h| h.bg_used).sum();
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads;

    #[test]
    fn the_report_summarises_programs_and_the_trace_has_one_sample_per_vm() {
        let mut cfg =
            workloads::linear_patterns(0.1, 2, 1.0, Topology::Linear, Strategy::Static).unwrap();
        cfg.trace_shares = true;
        let mut e = Engine::new(&cfg).unwrap();
        assert_eq!(e.report.shares.len(), 4, "cycle 0 is traced at the start");
        e.check_conservation().unwrap();
        assert_eq!(e.report.max_conservation_error, 0.0);
        e.progs[0].done_at = Some(12.0);
        e.now = 12.0;
        let r = e.finish();
        assert_eq!(r.programs.len(), 1);
        assert_eq!((r.mean_response_s, r.makespan_s), (12.0, 12.0));
    }
}
