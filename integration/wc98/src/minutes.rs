//! The per-minute request counts of the whole trace (`requests_per_minute.csv`).

use std::path::Path;

use crate::{Wc98Error, location::locate};

/// The per-minute counts' file inside the data directory.
///
/// ```
/// assert_eq!(wc98::MINUTES_FILE, "wc98/requests_per_minute.csv");
/// ```
pub const MINUTES_FILE: &str = "wc98/requests_per_minute.csv";

/// One row of `requests_per_minute.csv`.
///
/// ```
/// let m = wc98::MinuteCount { period: "1998-07-07 21:41:00".into(), count: 229_426 };
/// assert_eq!(m.count, 229_426);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteCount {
    /// The minute, as the file writes it (`YYYY-MM-DD HH:MM:SS`).
    pub period: String,
    /// Requests in that minute.
    pub count: u64,
}

/// Reads a `period,count` file (a header line `period,count` is optional), in file order.
///
/// # Errors
/// [`Wc98Error::Io`] when it cannot be read; [`Wc98Error::BadInput`] naming the first bad line
/// (no comma, a count that is not a u64) or when the file has no row. Nothing is returned then.
///
/// ```
/// let path = std::env::temp_dir().join(format!("wc98-minutes-{}", std::process::id()));
/// std::fs::write(&path, "period,count\n1998-04-30 21:30:00,2\n1998-04-30 21:31:00,11\n").unwrap();
/// let rows = wc98::read_requests_per_minute(&path).unwrap();
/// assert_eq!(rows.len(), 2);
/// assert_eq!(rows[1].count, 11);
/// std::fs::write(&path, "period,count\n1998-04-30 21:30:00,x\n").unwrap();
/// assert!(wc98::read_requests_per_minute(&path).is_err());
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn read_requests_per_minute(path: &Path) -> Result<Vec<MinuteCount>, Wc98Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Wc98Error::io(path, e))?;
    let bad = |line: usize, reason: &str| Wc98Error::BadInput {
        path: path.to_path_buf(),
        reason: format!("line {line}: {reason}"),
    };
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || (index == 0 && line == "period,count") {
            continue;
        }
        let (period, count) = line
            .rsplit_once(',')
            .ok_or_else(|| bad(index + 1, "no `period,count` comma"))?;
        let count = count
            .trim()
            .parse()
            .map_err(|_| bad(index + 1, "the count is not a non-negative integer"))?;
        rows.push(MinuteCount {
            period: period.to_string(),
            count,
        });
    }
    if rows.is_empty() {
        return Err(bad(0, "no row"));
    }
    Ok(rows)
}

/// The per-minute counts from the data directory ([`crate::data_dir`]'s rule): `Ok(None)` when
/// no directory was named and the default has no such file.
///
/// # Errors
/// As [`read_requests_per_minute`], and when a named directory lacks the file.
///
/// ```
/// if let Some(rows) = wc98::requests_per_minute(None).unwrap() {
///     assert!(rows.len() > 100_000);
/// }
/// ```
pub fn requests_per_minute(dir: Option<&Path>) -> Result<Option<Vec<MinuteCount>>, Wc98Error> {
    let Some(located) = locate(dir)? else {
        return Ok(None);
    };
    let path = located.dir.join(MINUTES_FILE);
    if !located.explicit && !path.is_file() {
        return Ok(None);
    }
    read_requests_per_minute(&path).map(Some)
}
