//! The testbed's error type, in a module of its own so that the crate's error type can wrap it
//! without depending on the rest of the testbed.

use std::path::PathBuf;

/// Everything that can go wrong on the testbed.
///
/// ```
/// let e = vibra_lab::testbed::TestbedError::Interrupted;
/// assert_eq!(e.to_string(), "interrupted (SIGINT or SIGTERM): the testbed was torn down");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// Something the testbed needs is missing (root, nginx, ip, the proxy binary).
    #[error("testbed unavailable: {0}")]
    Unavailable(String),
    /// A file or folder operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// vibra-host refused or failed (cgroups, namespaces, tc).
    #[error(transparent)]
    Host(#[from] vibra_host::Error),
    /// The corpus folder's file system has no block device to count reads on.
    #[error(
        "{dir} is on device {device}, which is no block device (tmpfs, overlay?): set VIBRA_TESTBED_DIR to a folder on a disk"
    )]
    NotOnBlockDevice {
        /// The folder.
        dir: PathBuf,
        /// Its `major:minor`.
        device: String,
    },
    /// A kernel file did not read as expected.
    #[error("cannot parse {what}: {text:?}")]
    Parse {
        /// The file.
        what: String,
        /// Its content.
        text: String,
    },
    /// A URL of the workload cannot be a file (see [`servable`]).
    #[error("URL {0:?} cannot be served as a file")]
    Unservable(String),
    /// A process (nginx, the proxy) did not start or died.
    #[error("{what}: {detail}")]
    Process {
        /// Which process.
        what: String,
        /// What happened, with its log's tail when there is one.
        detail: String,
    },
    /// The load generator saw a failed request.
    #[error("load generator: {0}")]
    Load(String),
    /// SIGINT or SIGTERM arrived; everything was torn down.
    #[error("interrupted (SIGINT or SIGTERM): the testbed was torn down")]
    Interrupted,
}

impl TestbedError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TestbedError::Io {
            path: path.into(),
            source,
        }
    }
}
