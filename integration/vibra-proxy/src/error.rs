//! The proxy's one error type.

use thiserror::Error;

/// What went wrong building or using the proxy's router.
///
/// ```
/// use vibra_proxy::ProxyError;
/// let e = ProxyError::NoBackends;
/// assert_eq!(e.to_string(), "no back end given: at least one BACKEND (HOST:PORT) is needed");
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The command line named no back end.
    #[error("no back end given: at least one BACKEND (HOST:PORT) is needed")]
    NoBackends,
    /// More back ends than the router's fixed snapshot buffers hold.
    #[error("{servers} back ends given; the proxy takes at most {max}")]
    TooManyBackends {
        /// How many were given.
        servers: usize,
        /// [`Router::MAX_SERVERS`](crate::Router::MAX_SERVERS).
        max: usize,
    },
    /// A BACKEND that is not `HOST:PORT` or does not resolve.
    #[error("back end {backend:?}: {reason}")]
    BadBackend {
        /// The argument as given.
        backend: String,
        /// Why it was refused.
        reason: String,
    },
    /// `--policy url-hash/r` with R = 1 (its runs are the replicated ones).
    #[error("--policy url-hash/r needs --replication 2 or more (got {replication})")]
    ReplicationTooLow {
        /// The R given.
        replication: u32,
    },
    /// vibra-hash refused the configuration or found no server up.
    #[error(transparent)]
    Hash(#[from] vibra_hash::Error),
    /// A comparison policy refused the configuration or found no server up.
    #[error(transparent)]
    Baseline(#[from] vibra_baselines::Error),
}
