//! The crate's one error type: vibra-hash's errors (bad server counts, slice lengths, no server
//! available: the same conditions as the dispatcher's, so a comparison sees one error whatever
//! the policy) plus the few conditions only a baseline or a metric has.

/// An error of a baseline policy or a metric. A function that returns an error has changed
/// nothing.
///
/// ```
/// use vibra_baselines::{Error, RoundRobin};
///
/// assert!(matches!(
///     RoundRobin::new(0),
///     Err(Error::Hash(vibra_hash::Error::InvalidServerCount { .. }))
/// ));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A condition the dispatcher shares (server count, replication, slice length, server
    /// index, no server available, no survivor).
    #[error(transparent)]
    Hash(#[from] vibra_hash::Error),
    /// LARD thresholds with `t_low >= t_high`.
    #[error("LARD thresholds need t_low < t_high, got t_low = {t_low}, t_high = {t_high}")]
    InvalidThresholds {
        /// The low threshold given.
        t_low: u32,
        /// The high threshold given.
        t_high: u32,
    },
    /// A ketama server that cannot go on the ring.
    #[error("ketama server {server}: {reason}")]
    InvalidRingServer {
        /// The server's index.
        server: u32,
        /// Why.
        reason: &'static str,
    },
    /// A per-sub-namespace load weight that is negative or not finite.
    #[error("weight at index {index} is negative or not finite")]
    InvalidWeight {
        /// The first bad weight's index.
        index: usize,
    },
    /// Load weights whose sum is not a finite `f64`.
    #[error("load weights up to index {index} sum past the largest finite f64")]
    WeightSumOverflow {
        /// The index at which the running sum overflowed.
        index: usize,
    },
}
