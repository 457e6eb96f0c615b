//! The crate's one error type. Every fallible function returns it; a function that returns an
//! error has changed nothing.

/// Everything that can go wrong in vibra-hash, with the offending values.
///
/// ```
/// use vibra_hash::{Dispatcher, Error, HashKind};
///
/// let err = Dispatcher::new(4, 5, HashKind::Fast).unwrap_err();
/// assert_eq!(err, Error::InvalidReplication { replication: 5, servers: 4 });
/// assert_eq!(err.to_string(), "replication factor 5 is outside 1..=4 (the server count)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server count is 0, or larger than the supported maximum.
    #[error("server count {servers} is outside 1..={max}")]
    InvalidServerCount {
        /// The count given (a slice length where the count comes from a slice).
        servers: usize,
        /// The largest count supported by the function that refused it.
        max: usize,
    },
    /// The replication factor R is 0 or larger than the server count N.
    #[error("replication factor {replication} is outside 1..={servers} (the server count)")]
    InvalidReplication {
        /// The R given.
        replication: u32,
        /// The server count N.
        servers: u32,
    },
    /// A server index is not below the server count.
    #[error("server {server} is out of range for {servers} servers")]
    ServerOutOfRange {
        /// The index given.
        server: u32,
        /// The server count N.
        servers: u32,
    },
    /// A sub-namespace index is not below the server count.
    #[error("sub-namespace {namespace} is out of range for {servers} sub-namespaces")]
    NamespaceOutOfRange {
        /// The index given.
        namespace: u32,
        /// The number of sub-namespaces (= servers).
        servers: u32,
    },
    /// A per-server slice (loads, weights) does not have one entry per server.
    #[error("slice has {len} entries, expected one per server ({servers})")]
    SliceLength {
        /// Its length.
        len: usize,
        /// The server count N.
        servers: u32,
    },
    /// Every server that could serve the request is marked unavailable.
    #[error("no server available")]
    NoServerAvailable,
    /// A failed server has no available server to hand its work to (SPEC section 4).
    #[error("no server other than the failed server {failed} is available")]
    NoSurvivor {
        /// The failed server.
        failed: u32,
    },
    /// An output buffer is too small.
    #[error("buffer holds {cap} servers, {needed} needed")]
    BufferTooSmall {
        /// How many entries the result has.
        needed: usize,
        /// The buffer's capacity.
        cap: usize,
    },
    /// A release for a server that has no active connection left to release.
    #[error("server {server} has no active connection to release")]
    NotAcquired {
        /// The server given.
        server: u32,
    },
    /// The server chosen by the built-in tracker already counts `u32::MAX` active connections,
    /// so one more cannot be counted (nothing was).
    #[error("server {server} already counts the maximum of 4294967295 active connections")]
    ActiveCountFull {
        /// The server chosen (the least loaded member of the subset).
        server: u32,
    },
    /// An availability bitset (the `up` argument of the `_with` lookups) without exactly
    /// `ceil(N / 64)` words.
    #[error("availability bitset has {len} words, expected {words} for {servers} servers")]
    MaskLength {
        /// The number of words given.
        len: usize,
        /// The number expected, `ceil(N / 64)`.
        words: usize,
        /// The server count N.
        servers: u32,
    },
    /// A hash name that is not one of `charsum`, `md5`, `sha1`, `fast`.
    #[error("unknown hash {name:?}: expected charsum, md5, sha1 or fast")]
    UnknownHashName {
        /// The name given.
        name: String,
    },
    /// A bounded-load factor below 100% of the mean (nobody would be eligible) or above
    /// 100,000%.
    #[error("balance factor {percent}% is outside 100..=100000")]
    InvalidBalanceFactor {
        /// The percentage given.
        percent: u32,
    },
    /// A numeric hash code that is not one of the C API's `VIBRA_HASH_*` values (0..=3).
    #[error("unknown hash code {code}: expected 0 (charsum), 1 (md5), 2 (sha1) or 3 (fast)")]
    UnknownHashCode {
        /// The code given.
        code: u32,
    },
}
