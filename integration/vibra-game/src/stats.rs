//! Delay samples and their summary (mean and 95th percentile, section 6.6.3).

/// Mean and 95th percentile of a set of delays, in microseconds.
///
/// ```
/// let s = vibra_game::DelaySummary::from_nanos(&mut vec![1_000, 2_000, 3_000]);
/// assert_eq!((s.samples, s.mean_us, s.p95_us), (3, 2.0, 3.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DelaySummary {
    /// How many packets.
    pub samples: usize,
    /// Mean delay.
    pub mean_us: f64,
    /// 95th percentile (nearest rank).
    pub p95_us: f64,
}

impl DelaySummary {
    /// Summarises delays given in nanoseconds (sorts them in place). No samples give zeros.
    ///
    /// ```
    /// let s = vibra_game::DelaySummary::from_nanos(&mut Vec::new());
    /// assert_eq!(s.samples, 0);
    /// ```
    pub fn from_nanos(delays: &mut [u64]) -> Self {
        if delays.is_empty() {
            return DelaySummary {
                samples: 0,
                mean_us: 0.0,
                p95_us: 0.0,
            };
        }
        delays.sort_unstable();
        let sum: u128 = delays.iter().map(|&d| u128::from(d)).sum();
        // Nearest rank: the smallest value with at least 95% of the samples at or below it.
        let rank = (delays.len() * 95).div_ceil(100).max(1);
        DelaySummary {
            samples: delays.len(),
            mean_us: sum as f64 / delays.len() as f64 / 1_000.0,
            p95_us: delays[rank - 1] as f64 / 1_000.0,
        }
    }
}
