//! The fluid node-level scheduler: generalised processor sharing, work-conserving, each
//! runnable entity limited to one CPU (single-vCPU VMs). Capacity goes to runnable entities in
//! proportion to their weights (shares); what an entity cannot use (its one-CPU cap) goes to
//! the others; zero-weight entities get only what positive-weight ones leave.

/// Fills `rates` (CPUs) for entities with `weights`, given `capacity` CPUs and a per-entity cap.
pub(crate) fn gps_rates(capacity: f64, cap: f64, weights: &[f64], rates: &mut [f64]) {
    rates.iter_mut().for_each(|r| *r = 0.0);
    let mut left = capacity;
    // Positive weights first, then (if capacity remains) zero weights equally.
    for zero_pass in [false, true] {
        loop {
            let mut wsum = 0.0;
            let mut count = 0usize;
            for (i, &w) in weights.iter().enumerate() {
                if rates[i] < cap && (w > 0.0) != zero_pass {
                    wsum += if zero_pass { 1.0 } else { w };
                    count += 1;
                }
            }
            if count == 0 || left <= 1e-15 {
                break;
            }
            let lambda = left / wsum;
            let capped = weights.iter().enumerate().any(|(i, &w)| {
                let ww = if zero_pass { 1.0 } else { w };
                rates[i] < cap && (w > 0.0) != zero_pass && lambda * ww >= cap - rates[i]
            });
            if !capped {
                for (i, &w) in weights.iter().enumerate() {
                    if rates[i] < cap && (w > 0.0) != zero_pass {
                        rates[i] += lambda * if zero_pass { 1.0 } else { w };
                    }
                }
                left = 0.0;
                break;
            }
            // Saturate the entities that hit the cap, then redistribute the rest.
            for (i, &w) in weights.iter().enumerate() {
                let ww = if zero_pass { 1.0 } else { w };
                if rates[i] < cap && (w > 0.0) != zero_pass && lambda * ww >= cap - rates[i] {
                    left -= cap - rates[i];
                    rates[i] = cap;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::gps_rates;

    #[test]
    fn proportional_when_uncapped() {
        let mut r = [0.0; 2];
        gps_rates(1.0, 1.0, &[0.1, 0.5], &mut r);
        assert!((r[0] - 1.0 / 6.0).abs() < 1e-12 && (r[1] - 5.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn cap_redistributes_to_others() {
        let mut r = [0.0; 3];
        gps_rates(2.0, 1.0, &[0.8, 0.1, 0.1], &mut r);
        assert!(
            (r[0] - 1.0).abs() < 1e-12 && (r[1] - 0.5).abs() < 1e-12 && (r[2] - 0.5).abs() < 1e-12
        );
    }

    #[test]
    fn zero_weight_gets_leftover_only() {
        let mut r = [0.0; 2];
        gps_rates(1.0, 1.0, &[0.3, 0.0], &mut r);
        assert_eq!(r, [1.0, 0.0]);
        gps_rates(2.0, 1.0, &[0.3, 0.0], &mut r);
        assert_eq!(r, [1.0, 1.0]);
        gps_rates(1.0, 1.0, &[0.0, 0.0], &mut r);
        assert_eq!(r, [0.5, 0.5]);
    }
}
