//! The one error type of vibra-lab: what went wrong, with the value that was wrong.

use std::path::PathBuf;

/// Everything that can make a `vibra-lab` command fail.
///
/// Each variant's message is one line, so the binary can print it as is and exit non-zero.
///
/// ```
/// use vibra_lab::LabError;
/// let e = LabError::UnknownExperiment("fig9.9".into());
/// assert_eq!(e.to_string(), "unknown experiment 'fig9.9' (try `vibra-lab list`)");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// `reproduce NAME` named no registered experiment.
    #[error("unknown experiment '{0}' (try `vibra-lab list`)")]
    UnknownExperiment(String),
    /// A command-line value was out of range or malformed.
    #[error("bad argument {option}: {reason}")]
    BadArgument {
        /// The option, e.g. `--down`.
        option: &'static str,
        /// Why the value was rejected.
        reason: String,
    },
    /// An experiment wrote a row that is not a JSON object.
    #[error("experiment {experiment}: row {index} is not a JSON object")]
    RowNotObject {
        /// The experiment's name.
        experiment: &'static str,
        /// The row's position in the report.
        index: usize,
    },
    /// An experiment wrote a row without one of its SPEC section 10 fields.
    #[error("experiment {experiment}: row {index} lacks the field '{field}'")]
    MissingField {
        /// The experiment's name.
        experiment: &'static str,
        /// The row's position in the report.
        index: usize,
        /// The missing field.
        field: &'static str,
    },
    /// An experiment produced no rows at all.
    #[error("experiment {0} produced no rows")]
    NoRows(&'static str),
    /// A figure could not be drawn.
    #[error("figure {figure}: {reason}")]
    Plot {
        /// The figure's file stem.
        figure: String,
        /// What the plotting library said.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing to standard output or reading standard input failed.
    #[error("standard stream: {0}")]
    Stream(#[from] std::io::Error),
    /// An input file had no usable content.
    #[error("{path}: {reason}")]
    BadInput {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// vibra-hash refused a request (bad N, R, server index, every server down, ...).
    #[error(transparent)]
    Hash(#[from] vibra_hash::Error),
    /// The World Cup data could not be found or read ([`wc98`]'s message names the file or
    /// the variable).
    #[error(transparent)]
    Data(#[from] wc98::Wc98Error),
    /// A baseline policy or a metric refused its input (vibra-baselines).
    #[error(transparent)]
    Baselines(#[from] vibra_baselines::Error),
    /// dps-core refused a configuration or a simulation did not finish.
    #[error(transparent)]
    Dps(#[from] dps_core::DpsError),
    /// The real-component testbed failed (or was interrupted, after tearing itself down).
    #[error(transparent)]
    Testbed(#[from] crate::testbed::error::TestbedError),
    /// The Xen lab experiment (fig6.5-xen) could not measure: a guest did not answer, or no
    /// host timestamp arrived.
    #[error("Xen lab: {0}")]
    XenLab(String),
    /// An experiment on real components cannot run here (not root, a package missing) and
    /// `VIBRA_REQUIRE_PRIVILEGED=1` is not set: `reproduce` lists it as skipped, with why.
    #[error("{experiment} skipped: {reason}")]
    Skipped {
        /// The experiment's name.
        experiment: &'static str,
        /// Why it cannot run here.
        reason: String,
    },
}

impl LabError {
    /// Wraps an I/O error with the path it concerns.
    ///
    /// ```
    /// use vibra_lab::LabError;
    /// let e = LabError::io("/nope", std::io::Error::other("gone"));
    /// assert_eq!(e.to_string(), "/nope: gone");
    /// ```
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LabError::Io {
            path: path.into(),
            source,
        }
    }
}
