//! The URL list (`object_mappings.sort`): `<blanks><id><blanks><url>` lines, `\n`-terminated.
//!
//! Every byte after the blanks that follow the id, up to the `\n`, is the URL: inner and
//! trailing blanks, tabs, `\r` and non-UTF-8 bytes included. 62 lines of the real list hold a
//! `\r`, 12 of them at the end, and `/images/arw_red_lk.gif` and `/images/arw_red_lk.gif ` are
//! two objects of the original trace: never split on whitespace, never trim.

use std::path::{Path, PathBuf};

use crate::Wc98Error;
use crate::location::{DATA_DIR_ENV, REQUIRE_DATA_ENV, default_data_dir, locate};

/// The URL list's file inside the data directory.
///
/// ```
/// assert_eq!(wc98::URLS_FILE, "wc98/object_mappings.sort");
/// ```
pub const URLS_FILE: &str = "wc98/object_mappings.sort";

/// Parses one line (without its `\n`) into its object id and URL. A line without an id, a
/// blank after it and a non-empty URL is `None`.
///
/// ```
/// use wc98::parse_line;
/// assert_eq!(parse_line(b"    12 /a b.html "), Some((12, &b"/a b.html "[..])));
/// assert_eq!(parse_line(b"7\t/x\r"), Some((7, &b"/x\r"[..])));
/// assert_eq!(parse_line(b"/no/id"), None);
/// assert_eq!(parse_line(b"8 "), None);
/// ```
pub fn parse_line(line: &[u8]) -> Option<(u64, &[u8])> {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = line.iter().position(|b| !blank(b))?;
    let rest = &line[start..];
    let id_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let gap = rest[id_len..].iter().take_while(|b| blank(b)).count();
    if id_len == 0 || gap == 0 || rest.len() == id_len + gap {
        return None;
    }
    // Digits only, so the only failure is overflow: not an id of this list.
    let id = std::str::from_utf8(&rest[..id_len]).ok()?.parse().ok()?;
    Some((id, &rest[id_len + gap..]))
}

/// Reads every URL of an `object_mappings.sort`-style file in file order, with [`parse_line`]
/// (lines it rejects are skipped).
///
/// # Errors
/// [`Wc98Error::Io`] when the file cannot be read, [`Wc98Error::BadInput`] when no line parses.
///
/// ```
/// let path = std::env::temp_dir().join(format!("wc98-read-{}", std::process::id()));
/// std::fs::write(&path, "     0 /images/home_logo.gif\n     1 /a b.html\r\n").unwrap();
/// let urls = wc98::read_urls(&path).unwrap();
/// assert_eq!(urls, vec![b"/images/home_logo.gif".to_vec(), b"/a b.html\r".to_vec()]);
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn read_urls(path: &Path) -> Result<Vec<Vec<u8>>, Wc98Error> {
    let data = std::fs::read(path).map_err(|e| Wc98Error::io(path, e))?;
    let urls: Vec<Vec<u8>> = data
        .split(|&b| b == b'\n')
        .filter_map(parse_line)
        .map(|(_, url)| url.to_vec())
        .collect();
    if urls.is_empty() {
        return Err(Wc98Error::BadInput {
            path: path.to_path_buf(),
            reason: "no `<id> <url>` line".to_string(),
        });
    }
    Ok(urls)
}

/// The URL list and the file it came from.
///
/// ```
/// let list = wc98::UrlList { path: "x.sort".into(), urls: vec![b"/".to_vec()] };
/// assert_eq!(list.urls.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlList {
    /// The file read.
    pub path: PathBuf,
    /// Its URLs in file order, raw bytes (89,997 for the real list).
    pub urls: Vec<Vec<u8>>,
}

/// **The one call** for the World Cup URLs: `file` when given, else `wc98/object_mappings.sort`
/// in the data directory ([`crate::data_dir`]'s rule: `$VIBRA_DATA_DIR`, else `../shared/data`
/// beside the workspace root). `Ok(None)` when no file or variable was given and the default
/// has no list: callers then use generated URLs, or skip loudly ([`urls_or_skip`]).
///
/// # Errors
/// As [`read_urls`]; and [`Wc98Error::NotADirectory`] or [`Wc98Error::Io`] when
/// `$VIBRA_DATA_DIR` names no directory or one without the list.
///
/// ```
/// let path = std::env::temp_dir().join(format!("wc98-urls-{}", std::process::id()));
/// std::fs::write(&path, "  3 /french/index.html\n").unwrap();
/// let list = wc98::urls(Some(&path)).unwrap().unwrap();
/// assert_eq!(list.path, path);
/// assert_eq!(list.urls, vec![b"/french/index.html".to_vec()]);
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn urls(file: Option<&Path>) -> Result<Option<UrlList>, Wc98Error> {
    let path = match file {
        Some(p) => p.to_path_buf(),
        None => {
            let Some(located) = locate(None)? else {
                return Ok(None);
            };
            let path = located.dir.join(URLS_FILE);
            if !located.explicit && !path.is_file() {
                return Ok(None);
            }
            path
        }
    };
    let urls = read_urls(&path)?;
    Ok(Some(UrlList { path, urls }))
}

/// The World Cup URL list for a test that needs it: `Some` when it is there; otherwise prints
/// `SKIPPED <test>: ...` to standard error and returns `None` (the test then returns and
/// passes), unless `VIBRA_REQUIRE_DATA=1`, when it panics instead: CI sets that variable, so a
/// missing data file can never make a CI test pass without checking anything.
///
/// # Panics
/// When the data is missing and `VIBRA_REQUIRE_DATA=1`, or when it is there but unreadable or
/// malformed (always a failure).
///
/// ```
/// if let Some(list) = wc98::urls_or_skip("doc example") {
///     assert!(!list.urls.is_empty());
/// }
/// ```
pub fn urls_or_skip(test: &str) -> Option<UrlList> {
    match urls(None) {
        Ok(Some(list)) => Some(list),
        Ok(None) => {
            let why = format!(
                "no World Cup URL list (set {DATA_DIR_ENV}, or put the shared data at {})",
                default_data_dir().display()
            );
            if std::env::var_os(REQUIRE_DATA_ENV).is_some_and(|v| v == "1") {
                panic!("{test}: {why}, and {REQUIRE_DATA_ENV}=1 forbids skipping");
            }
            eprintln!("SKIPPED {test}: {why}");
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn malformed_lines_are_skipped_and_every_other_byte_is_kept() {
        let path = std::env::temp_dir().join(format!("wc98-malformed-{}", std::process::id()));
        std::fs::write(
            &path,
            b"   12 /x y\r\nnot a line\n\n 7 \n 8 /\xff\n 9 /last",
        )
        .unwrap();
        let urls = read_urls(&path).unwrap();
        assert_eq!(
            urls,
            vec![b"/x y\r".to_vec(), b"/\xff".to_vec(), b"/last".to_vec()]
        );
        std::fs::write(&path, b"nothing here\n").unwrap();
        assert!(matches!(read_urls(&path), Err(Wc98Error::BadInput { .. })));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_real_list_reads_as_89_997_urls_keeping_every_carriage_return() {
        let Some(list) = urls_or_skip("wc98 real list") else {
            return;
        };
        let urls = list.urls;
        assert_eq!(urls.len(), 89_997);
        let distinct: HashSet<&[u8]> = urls.iter().map(Vec::as_slice).collect();
        // Six lines repeat an earlier URL exactly (`/cgi-bin/phf?Qalias=x` five times).
        assert_eq!(distinct.len(), 89_991);
        assert_eq!(urls.iter().filter(|u| u.contains(&b'\r')).count(), 62);
        assert_eq!(urls.iter().filter(|u| u.ends_with(b"\r")).count(), 12);
        for url in [
            &b"/images/arw_red_lk.gif "[..],
            b"/images/arw_red_lk.gif",
            b"/english/index.html\r",
            b"/english/index.html",
        ] {
            assert!(distinct.contains(url), "{:?}", String::from_utf8_lossy(url));
        }
    }

    proptest! {
        #[test]
        fn parse_line_returns_the_id_and_the_rest_of_the_line_verbatim(
            lead in "[ \t]{0,8}",
            id in any::<u64>(),
            gap in "[ \t]{1,4}",
            first in any::<u8>().prop_filter("not blank", |b| !matches!(b, b' ' | b'\t' | b'\n')),
            rest in proptest::collection::vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 0..40),
        ) {
            let mut url = vec![first];
            url.extend(rest);
            let mut line = format!("{lead}{id}{gap}").into_bytes();
            line.extend_from_slice(&url);
            prop_assert_eq!(parse_line(&line), Some((id, &url[..])));
        }
    }
}
