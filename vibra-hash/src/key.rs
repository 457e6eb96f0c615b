//! Dispatch-key extraction (SPEC section 1, dissertation section 3.4.3): the part of an HTTP
//! request-target that names the object. Owns no state and never allocates: the key is always a
//! sub-slice of the target, or the static `/`.

use memchr::{memchr2, memchr3};

/// The key of an empty path: SPEC 1 rule 3.
const ROOT: &[u8] = b"/";

/// Extracts the dispatch key of an HTTP request-target (SPEC section 1).
///
/// - absolute form (`http://` or `https://`, ASCII case-insensitive): the scheme and authority
///   are dropped; the authority ends at the first `/`, `?` or `#` after `//`;
/// - the key ends before the first `?` or `#` (the dissertation hashes "the object name, not
///   including the search part");
/// - an empty key is `/`; no percent-decoding, no case folding, no UTF-8 requirement.
///
/// The result borrows from `target`, or is the static `b"/"`. The `?`/`#` scan is the most
/// expensive step of a dispatch decision, so it uses `memchr`'s SIMD search.
///
/// ```
/// use vibra_hash::dispatch_key;
///
/// assert_eq!(dispatch_key(b"/english/index.html?lang=en"), b"/english/index.html");
/// assert_eq!(dispatch_key(b"HTTP://www.example.com/a/b#top"), b"/a/b");
/// assert_eq!(dispatch_key(b"https://example.com?q=1"), b"/");
/// assert_eq!(dispatch_key(b""), b"/");
/// assert_eq!(dispatch_key(b"/%7Euser/A"), b"/%7Euser/A");
/// ```
#[inline]
pub fn dispatch_key(target: &[u8]) -> &[u8] {
    // Origin form ("/...") is what proxies see almost always: one compare skips the scheme test.
    let path = if target.first() == Some(&b'/') {
        target
    } else {
        strip_absolute_form(target)
    };
    let key = match find_query_or_fragment(path) {
        Some(end) => &path[..end],
        None => path,
    };
    if key.is_empty() { ROOT } else { key }
}

/// Position of the first `?` or `#`.
///
/// On x86-64, memchr's SSE2 searcher is called directly: URL paths are a few dozen bytes, where
/// the runtime CPU-feature dispatch of `memchr2` costs about as much as the search itself
/// (and AVX2 only helps from 32 bytes on). SSE2 is part of the x86-64 baseline, so the searcher
/// always exists there; elsewhere, and if it ever did not, `memchr2` decides.
#[inline]
fn find_query_or_fragment(path: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(searcher) = memchr::arch::x86_64::sse2::memchr::Two::new(b'?', b'#') {
        return searcher.find(path);
    }
    memchr2(b'?', b'#', path)
}

/// Drops `scheme://authority` from an absolute-form target; other targets pass unchanged.
fn strip_absolute_form(target: &[u8]) -> &[u8] {
    let rest = if starts_with_ignore_case(target, b"http://") {
        &target[7..]
    } else if starts_with_ignore_case(target, b"https://") {
        &target[8..]
    } else {
        return target;
    };
    match memchr3(b'/', b'?', b'#', rest) {
        Some(at) if rest[at] == b'/' => &rest[at..],
        // Authority ended at '?', '#' or the end of the target: the key is "/".
        _ => ROOT,
    }
}

fn starts_with_ignore_case(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack.len() >= prefix.len() && haystack[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::dispatch_key;

    #[test]
    fn spec_section_1_cases() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"/", b"/"),
            (b"", b"/"),
            (b"?", b"/"),
            (b"#frag", b"/"),
            (b"/a?b#c", b"/a"),
            (b"/a#b?c", b"/a"),
            (b"http://host", b"/"),
            (b"http://host/", b"/"),
            (b"http://host?x=/y", b"/"),
            (b"http://host#/y", b"/"),
            (b"hTtPs://user@host:8080/p/q?r", b"/p/q"),
            (b"https://h/p#q/r", b"/p"),
            (b"ftp://host/p", b"ftp://host/p"),
            (b"http:/host/p", b"http:/host/p"),
            (b"*", b"*"),
            (b"/caf\xc3\xa9/\xff", b"/caf\xc3\xa9/\xff"),
            (b"/A%2FB", b"/A%2FB"),
        ];
        for (target, key) in cases {
            assert_eq!(
                dispatch_key(target),
                *key,
                "target {:?}",
                String::from_utf8_lossy(target)
            );
        }
    }
}
