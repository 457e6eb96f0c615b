//! The files the back ends serve: which World Cup URLs can be files, one copy of the requested
//! objects per back end (its own "disk"), and their eviction from the page cache.

use std::collections::HashSet;
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};

use super::TestbedError;
use crate::workload::{CorpusSource, Stream, UrlCorpus};

/// Whether a URL can be served as a plain file by nginx and carried byte for byte by an HTTP/1.1
/// request line and the proxy: it starts with `/`, does not end with `/` (a directory index),
/// has no query, no `%` escape (nginx would decode it), no empty, `.` or `..` segment, and
/// only the characters `A-Z a-z 0-9 - . _ ~ / + , = : @ ! $ & ' ( ) *`.
///
/// ```
/// use vibra_lab::testbed::servable;
/// assert!(servable(b"/english/competition/matchstat8874.htm"));
/// assert!(!servable(b"/english/"));
/// assert!(!servable(b"/a?x=1"));
/// assert!(!servable(b"/a b.html"));
/// assert!(!servable(b"/a/../etc/passwd"));
/// assert!(!servable(b"/caf%E9.html"));
/// ```
pub fn servable(url: &[u8]) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~/+,=:@!$&'()*".contains(&b);
    url.len() > 1
        && url[0] == b'/'
        && url[url.len() - 1] != b'/'
        && url.iter().all(|&b| allowed(b))
        && url[1..]
            .split(|&b| b == b'/')
            .all(|seg| !seg.is_empty() && seg != b"." && seg != b"..")
}

/// The URLs of `corpus` that can be files ([`servable`]), minus every URL below another one
/// (`/a/b` when `/a` exists: a path cannot be both a file and a folder; the real list has such
/// junk as `/english/splash_inet.html/ProScroll.class`), in their order.
///
/// ```
/// use vibra_lab::testbed::servable_corpus;
/// use vibra_lab::workload::{CorpusSource, UrlCorpus};
/// let corpus = UrlCorpus {
///     urls: vec![b"/a".to_vec(), b"/a/b.gif".to_vec(), b"/c d".to_vec(), b"/e.htm".to_vec()],
///     source: CorpusSource::Generated { seed: 1 },
/// };
/// assert_eq!(servable_corpus(&corpus).urls, vec![b"/a".to_vec(), b"/e.htm".to_vec()]);
/// ```
pub fn servable_corpus(corpus: &UrlCorpus) -> UrlCorpus {
    let ok: Vec<&Vec<u8>> = corpus.urls.iter().filter(|u| servable(u)).collect();
    let files: HashSet<&[u8]> = ok.iter().map(|u| u.as_slice()).collect();
    let below_a_file = |u: &[u8]| (1..u.len()).any(|i| u[i] == b'/' && files.contains(&u[..i]));
    UrlCorpus {
        urls: ok
            .iter()
            .filter(|u| !below_a_file(u))
            .map(|u| (*u).clone())
            .collect(),
        source: match &corpus.source {
            CorpusSource::WorldCup(p) => CorpusSource::WorldCup(p.clone()),
            CorpusSource::Generated { seed } => CorpusSource::Generated { seed: *seed },
        },
    }
}

/// One object the back ends serve: its URL and size.
///
/// ```
/// let f = vibra_lab::testbed::CorpusFile { url: "/a.gif".into(), bytes: 10 };
/// assert_eq!(f.bytes, 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusFile {
    /// The URL (servable, so valid UTF-8 ASCII).
    pub url: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The distinct objects a stream requests, as files, in object order.
///
/// ```
/// use vibra_lab::testbed::files_of;
/// use vibra_lab::workload::{Object, Stream, UrlCorpus, CorpusSource};
/// let corpus = UrlCorpus { urls: vec![b"/a".to_vec(), b"/b".to_vec()], source: CorpusSource::Generated { seed: 0 } };
/// let stream = Stream { objects: vec![Object { url: 1, bytes: 5 }, Object { url: 0, bytes: 7 }], requests: vec![0, 0] };
/// assert_eq!(files_of(&corpus, &stream).unwrap(), vec![vibra_lab::testbed::CorpusFile { url: "/b".into(), bytes: 5 }]);
/// ```
pub fn files_of(corpus: &UrlCorpus, stream: &Stream) -> Result<Vec<CorpusFile>, TestbedError> {
    let mut wanted = vec![false; stream.objects.len()];
    for &r in &stream.requests {
        wanted[r as usize] = true;
    }
    stream
        .objects
        .iter()
        .zip(wanted)
        .filter(|(_, w)| *w)
        .map(|(o, _)| {
            let raw = &corpus.urls[o.url];
            match std::str::from_utf8(raw) {
                Ok(url) if servable(raw) => Ok(CorpusFile {
                    url: url.to_string(),
                    bytes: o.bytes,
                }),
                _ => Err(TestbedError::Unservable(
                    String::from_utf8_lossy(raw).into_owned(),
                )),
            }
        })
        .collect()
}

/// Writes one copy of `files` under `root` (created), each file `bytes` long, its content a
/// pattern that depends on the URL (no holes: every block is on the disk). Stops with
/// [`TestbedError::Interrupted`] when `stop` is set.
pub(crate) fn write_copy(
    root: &Path,
    files: &[CorpusFile],
    stop: &AtomicBool,
) -> Result<(), TestbedError> {
    let mut block = vec![0u8; 64 * 1024];
    for f in files {
        if stop.load(Ordering::Relaxed) {
            return Err(TestbedError::Interrupted);
        }
        let path = file_path(root, &f.url);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| TestbedError::io(dir, e))?;
        }
        let seed = f
            .url
            .bytes()
            .fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
        for (i, b) in block.iter_mut().enumerate() {
            *b = seed.wrapping_add(i as u8);
        }
        let mut file = std::fs::File::create(&path).map_err(|e| TestbedError::io(&path, e))?;
        let mut left = f.bytes;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            file.write_all(&block[..n])
                .map_err(|e| TestbedError::io(&path, e))?;
            left -= n as u64;
        }
    }
    Ok(())
}

/// Where URL `url` lives under `root`.
pub(crate) fn file_path(root: &Path, url: &str) -> PathBuf {
    root.join(url.trim_start_matches('/'))
}

/// Drops the page cache of every file of every copy: `syncfs` first (`posix_fadvise` keeps
/// dirty pages), then `posix_fadvise(POSIX_FADV_DONTNEED)` on each file. Pages are then
/// charged to whichever back end reads them next.
pub(crate) fn evict(roots: &[PathBuf], files: &[CorpusFile]) -> Result<(), TestbedError> {
    for root in roots {
        let dir = std::fs::File::open(root).map_err(|e| TestbedError::io(root, e))?;
        nix::unistd::syncfs(dir.as_fd()).map_err(|e| TestbedError::io(root, e.into()))?;
        for f in files {
            let path = file_path(root, &f.url);
            let file = std::fs::File::open(&path).map_err(|e| TestbedError::io(&path, e))?;
            posix_fadvise(file.as_fd(), 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED)
                .map_err(|e| TestbedError::io(&path, e.into()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_servable_url_stays_under_the_root(url in proptest::collection::vec(any::<u8>(), 0..40)) {
            if servable(&url) {
                let s = std::str::from_utf8(&url).unwrap();
                let p = file_path(Path::new("/srv/x"), s);
                prop_assert!(p.starts_with("/srv/x"));
                prop_assert!(p.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::RootDir)));
            }
        }
    }

    #[test]
    fn copies_have_the_sizes_and_eviction_runs() {
        let root = std::env::temp_dir().join(format!("vibra-lab-corpus-{}", std::process::id()));
        let files = vec![
            CorpusFile {
                url: "/a/b.gif".into(),
                bytes: 70_000,
            },
            CorpusFile {
                url: "/c.htm".into(),
                bytes: 0,
            },
        ];
        write_copy(&root, &files, &AtomicBool::new(false)).unwrap();
        assert_eq!(
            std::fs::metadata(root.join("a/b.gif")).unwrap().len(),
            70_000
        );
        assert_eq!(std::fs::metadata(root.join("c.htm")).unwrap().len(), 0);
        evict(std::slice::from_ref(&root), &files).unwrap();
        assert!(matches!(
            write_copy(&root, &files, &AtomicBool::new(true)),
            Err(TestbedError::Interrupted)
        ));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
