//! Where the World Cup data is: one rule for the whole workspace.
//!
//! An explicit option, else `$VIBRA_DATA_DIR`, else `../shared/data` beside the workspace root.
//! The workspace root is found from this crate's manifest directory, never from the current
//! directory, so a test, a benchmark and `cargo run` from any folder all find the same files.

use std::path::{Path, PathBuf};

use crate::Wc98Error;

/// The environment variable naming the shared data directory (the one holding `wc98/`).
///
/// ```
/// assert_eq!(wc98::DATA_DIR_ENV, "VIBRA_DATA_DIR");
/// ```
pub const DATA_DIR_ENV: &str = "VIBRA_DATA_DIR";

/// The environment variable that turns [`crate::urls_or_skip`]'s skip into a failure (CI sets it to 1).
///
/// ```
/// assert_eq!(wc98::REQUIRE_DATA_ENV, "VIBRA_REQUIRE_DATA");
/// ```
pub const REQUIRE_DATA_ENV: &str = "VIBRA_REQUIRE_DATA";

/// The default data directory, `../shared/data` beside the workspace root, whether or not it
/// exists.
///
/// ```
/// assert!(wc98::default_data_dir().ends_with("shared/data"));
/// ```
pub fn default_data_dir() -> PathBuf {
    // This crate sits at <root>/integration/wc98.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// A located data directory and whether someone named it (then a missing file in it is an
/// error, not a reason to fall back to generated data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    pub(crate) dir: PathBuf,
    pub(crate) explicit: bool,
}

pub(crate) fn locate(explicit: Option<&Path>) -> Result<Option<Located>, Wc98Error> {
    let named = |origin: &'static str, path: PathBuf| {
        if path.is_dir() {
            Ok(Some(Located {
                dir: path,
                explicit: true,
            }))
        } else {
            Err(Wc98Error::NotADirectory { origin, path })
        }
    };
    if let Some(path) = explicit {
        return named("the option", path.to_path_buf());
    }
    if let Some(value) = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
        return named(DATA_DIR_ENV, PathBuf::from(value));
    }
    let dir = default_data_dir();
    Ok(dir.is_dir().then_some(Located {
        dir,
        explicit: false,
    }))
}

/// The shared data directory: `explicit` when given, else `$VIBRA_DATA_DIR` when set and not
/// empty, else `../shared/data` beside the workspace root when it exists. `Ok(None)` when none
/// was named and the default does not exist.
///
/// # Errors
/// [`Wc98Error::NotADirectory`] when the option or the variable names something that is not a
/// directory (a wrong path is never silently replaced by generated data).
///
/// ```
/// let dir = std::env::temp_dir();
/// assert_eq!(wc98::data_dir(Some(&dir)).unwrap(), Some(dir.clone()));
/// assert!(wc98::data_dir(Some(std::path::Path::new("/nonexistent/vibra"))).is_err());
/// ```
pub fn data_dir(explicit: Option<&Path>) -> Result<Option<PathBuf>, Wc98Error> {
    Ok(locate(explicit)?.map(|l| l.dir))
}
