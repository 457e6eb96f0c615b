//! Open-loop arrival times: a Poisson process whose rate is constant within each interval (a
//! minute of the World Cup trace's per-minute counts, or one rate for a whole run), seeded so
//! that a run is repeatable. The load generator sends request `i` at `arrivals[i]` after its
//! start ([`crate::testbed::LoadOptions::arrivals`]).

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

use super::TestbedError;

/// Arrival offsets of a Poisson process with rate `rates[k]` (requests per second) during
/// `[k * interval, (k + 1) * interval)`, in increasing order; a rate of 0 sends nothing in its
/// interval. Memoryless, so restarting the exponential draw at each interval boundary gives
/// exactly the piecewise-constant process.
///
/// ```
/// use std::time::Duration;
/// use vibra_lab::testbed::poisson_arrivals;
/// let a = poisson_arrivals(&[100.0, 0.0], Duration::from_secs(10), 7)?;
/// assert!(a.len() > 900 && a.len() < 1100);
/// assert!(a.windows(2).all(|w| w[0] <= w[1]) && *a.last().unwrap() < Duration::from_secs(10));
/// assert!(poisson_arrivals(&[-1.0], Duration::from_secs(1), 7).is_err());
/// # Ok::<(), vibra_lab::testbed::TestbedError>(())
/// ```
pub fn poisson_arrivals(
    rates: &[f64],
    interval: Duration,
    seed: u64,
) -> Result<Vec<Duration>, TestbedError> {
    if let Some(bad) = rates.iter().find(|r| !r.is_finite() || **r < 0.0) {
        return Err(TestbedError::Load(format!(
            "an arrival rate must be finite and >= 0, got {bad}"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let span = interval.as_secs_f64();
    let mut out = Vec::new();
    for (k, &rate) in rates.iter().enumerate() {
        if rate == 0.0 {
            continue;
        }
        let exp = Exp::new(rate).map_err(|e| TestbedError::Load(format!("rate {rate}: {e}")))?;
        let (lo, hi) = (k as f64 * span, (k + 1) as f64 * span);
        let mut t = lo + exp.sample(&mut rng);
        while t < hi {
            out.push(Duration::from_secs_f64(t));
            t += exp.sample(&mut rng);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_count_per_interval_follows_its_rate_and_the_seed_repeats_it() {
        let rates = [50.0, 200.0, 0.0, 100.0];
        let a = poisson_arrivals(&rates, Duration::from_secs(20), 42).unwrap();
        for (k, rate) in rates.iter().enumerate() {
            let n = a.iter().filter(|t| t.as_secs() / 20 == k as u64).count() as f64;
            let expected = rate * 20.0;
            // Poisson: sd = sqrt(mean); 5 sd either side.
            assert!(
                (n - expected).abs() <= 5.0 * expected.sqrt().max(1.0),
                "interval {k}: {n} arrivals at rate {rate}"
            );
        }
        assert_eq!(
            a,
            poisson_arrivals(&rates, Duration::from_secs(20), 42).unwrap()
        );
        assert_ne!(
            a,
            poisson_arrivals(&rates, Duration::from_secs(20), 43).unwrap()
        );
    }

    proptest! {
        #[test]
        fn arrivals_are_ordered_and_inside_the_schedule(
            rates in proptest::collection::vec(0.0f64..50.0, 0..6),
            secs in 1u64..5,
            seed in any::<u64>(),
        ) {
            let a = poisson_arrivals(&rates, Duration::from_secs(secs), seed).unwrap();
            prop_assert!(a.windows(2).all(|w| w[0] <= w[1]));
            let end = Duration::from_secs(secs * rates.len() as u64);
            prop_assert!(a.iter().all(|t| *t < end));
        }

        #[test]
        fn bad_rates_are_refused(bad in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), -1e9f64..-1e-9]) {
            prop_assert!(poisson_arrivals(&[1.0, bad], Duration::from_secs(1), 1).is_err());
        }
    }
}
