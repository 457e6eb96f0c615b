//! vibrad's one error type.

/// Everything that can go wrong in vibrad. Each variant names what it is about.
///
/// ```
/// let e = vibrad::Error::Directory { key: "/vibra/granted/acme/bandwidth".into(), message: "bad JSON".into() };
/// assert!(e.to_string().contains("/vibra/granted/acme/bandwidth"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration has errors (every one found, each with its key and line).
    #[error("invalid configuration:\n{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Config(Vec<ConfigError>),
    /// The configuration file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadConfig {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Directory content that vibrad cannot use (names the key); nothing was applied.
    #[error("directory key {key}: {message}")]
    Directory {
        /// The key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A write that would take a customer's allocation over its bound was refused.
    #[error("directory key {key}: sum {sum} would exceed the bound {bound}; refused")]
    OverBound {
        /// The key.
        key: String,
        /// The sum the write would have made.
        sum: u128,
        /// The bound.
        bound: u64,
    },
    /// A lease expired (or was never granted).
    #[error("etcd lease {0:x} expired")]
    LeaseExpired(i64),
    /// etcd could not be reached or answered with an error.
    #[error("etcd: {0}")]
    Etcd(String),
    /// The allocator refused (bad state or input).
    #[error("allocator: {0}")]
    Alloc(#[from] vibra_alloc::Error),
    /// The host controller failed.
    #[error("host controller: {0}")]
    Host(#[from] vibra_host::Error),
    /// A DPS computation refused its input (dps-core's error).
    #[error("dps: {0}")]
    Dps(#[from] dps_core::DpsError),
    /// Other I/O (metrics socket, process spawn).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// vibrad's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One configuration error: the key it is about, its line (1-based) and what is wrong.
///
/// ```
/// let errs = vibrad::config::Config::parse("bogus = 1\n").unwrap_err();
/// assert_eq!(errs[0].key, "bogus");
/// assert_eq!(errs[0].line, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Line in the file, 1-based.
    pub line: usize,
    /// Dotted key path, with array indexes (`customer[0].bandwidth.pool_bytes_per_s`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.key, self.message)
    }
}
