//! The crate's one error type.

use std::path::PathBuf;

/// What went wrong reading the World Cup data.
///
/// ```
/// let e = wc98::read_urls(std::path::Path::new("/nonexistent/object_mappings.sort")).unwrap_err();
/// assert!(matches!(e, wc98::Wc98Error::Io { .. }));
/// assert!(e.to_string().contains("/nonexistent/object_mappings.sort"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Wc98Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file was read but holds nothing of the expected form.
    #[error("{path}: {reason}")]
    BadInput {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// An explicitly named data directory (option or `VIBRA_DATA_DIR`) is not a directory: a
    /// wrong path is an error, never a silent fall-back.
    #[error("{origin} names {path}, which is not a directory")]
    NotADirectory {
        /// Where the path came from (`"the option"` or the variable's name).
        origin: &'static str,
        /// The path.
        path: PathBuf,
    },
}

impl Wc98Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Wc98Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
