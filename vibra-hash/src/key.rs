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
/// expensive step of a dispatch decision after the hash, so paths of 8-64 bytes are tested
/// word-wise without length-dependent branches, and `memchr`'s SIMD search does the rest.
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
    extract_key(target)
}

/// [`dispatch_key`], always inlined into the dispatcher's lookups (a call's register saves and
/// restores cost about as much as the scan of a short path).
#[inline(always)]
pub(crate) fn extract_key(target: &[u8]) -> &[u8] {
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
/// Most paths are 8 to 64 bytes long (90% of the World Cup URLs) and have neither byte (96%).
/// For them the answer is "none" after a fixed amount of work and at most one branch on the
/// length. On x86-64, paths of 16 to 64 bytes are tested as four overlapping 16-byte windows
/// (at `min(16k, n - 16)`, so they cover the whole path) with SSE2 compares, through
/// `safe_arch`'s safe wrappers; paths of 8 to 15 bytes (and 8 to 64 elsewhere) as overlapping
/// 8-byte words with exact SWAR arithmetic. A general search (`memchr`) branches on the length
/// several times (short paths byte by byte, a loop from 32 bytes, a tail), and on short,
/// varied URLs those branches are mispredicted often enough to cost more than the search.
/// Paths outside 8..=64 bytes, and the few that do contain `?` or `#`, take [`find_general`].
#[inline(always)]
fn find_query_or_fragment(path: &[u8]) -> Option<usize> {
    let n = path.len();
    if !(8..=64).contains(&n) {
        return find_general(path);
    }
    #[cfg(target_arch = "x86_64")]
    if n >= 16 {
        return if sse2::any_query_or_fragment(path) {
            find_general(path)
        } else {
            None
        };
    }
    // Words at min(8k, n - 8) cover the first min(n, 32) bytes, words at n - 32 + 8k the last
    // 32 of a longer path.
    let last = n - 8;
    let mut any = 0;
    for k in 0..4 {
        any |= marks(word(path, (8 * k).min(last)));
    }
    if n > 32 {
        for k in 0..4 {
            any |= marks(word(path, n - 32 + 8 * k));
        }
    }
    if any == 0 { None } else { find_general(path) }
}

/// The 16-byte window check of 16..=64-byte paths (SSE2 is part of the x86-64 baseline).
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };

    /// Whether any byte of `path` (16..=64 bytes) is `?` or `#`: four windows at
    /// `min(16k, n - 16)`, which overlap on shorter paths and together cover every byte.
    #[inline(always)]
    pub(super) fn any_query_or_fragment(path: &[u8]) -> bool {
        debug_assert!((16..=64).contains(&path.len()));
        let last = path.len() - 16;
        let query = set_splat_i8_m128i(b'?' as i8);
        let fragment = set_splat_i8_m128i(b'#' as i8);
        let mut any = m128i::default();
        for k in 0..4 {
            let at = (16 * k).min(last);
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&path[at..at + 16]);
            let w = load_unaligned_m128i(&bytes);
            any = bitor_m128i(any, cmp_eq_mask_i8_m128i(w, query));
            any = bitor_m128i(any, cmp_eq_mask_i8_m128i(w, fragment));
        }
        move_mask_i8_m128i(any) != 0
    }
}

/// Position of the first `?` or `#`, for any length. On x86-64, memchr's SSE2 searcher is
/// called directly: the runtime CPU-feature dispatch of `memchr2` costs about as much as the
/// search on short paths (and AVX2 only helps from 32 bytes on). SSE2 is part of the x86-64
/// baseline, so the searcher always exists there; elsewhere `memchr2` decides.
#[inline]
fn find_general(path: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(searcher) = memchr::arch::x86_64::sse2::memchr::Two::new(b'?', b'#') {
        return searcher.find(path);
    }
    memchr2(b'?', b'#', path)
}

/// The 8 bytes at `at` as a little-endian word (`at + 8 <= path.len()`).
#[inline(always)]
fn word(path: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&path[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The high bit of byte `i` set exactly when byte `i` of `w` is `?` or `#`. Exact (no false
/// positives): the per-byte sum `(x & 0x7f) + 0x7f` never carries into the next byte.
#[inline(always)]
fn marks(w: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const QUERY: u64 = 0x3f3f_3f3f_3f3f_3f3f; // '?'
    const FRAGMENT: u64 = 0x2323_2323_2323_2323; // '#'
    // Each byte of `nonzero(x)` has its high bit set iff that byte of `x` is not zero.
    let nonzero = |x: u64| ((x & LOW7) + LOW7) | x;
    !(nonzero(w ^ QUERY) & nonzero(w ^ FRAGMENT)) & !LOW7
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

    proptest::proptest! {
        #[test]
        fn scan_finds_the_first_query_or_fragment_byte(
            path in proptest::collection::vec(proptest::prop_oneof![
                proptest::prelude::Just(b'?'), proptest::prelude::Just(b'#'),
                proptest::prelude::Just(b'/'), proptest::prelude::Just(0xbf_u8),
                proptest::prelude::Just(0x3f ^ 0x80), proptest::prelude::Just(0x23 ^ 0x80),
                proptest::prelude::any::<u8>()], 0..140)
        ) {
            let want = path.iter().position(|&c| c == b'?' || c == b'#');
            proptest::prop_assert_eq!(super::find_query_or_fragment(&path), want);
        }
    }

    /// Every length the window and word checks take, with one '?' or '#' at every position
    /// (and none, and bytes that differ from them only in the high bit).
    #[test]
    fn window_checks_find_a_mark_at_every_position() {
        for n in 0..=80usize {
            let plain: Vec<u8> = (0..n).map(|i| [b'a', 0xbf, 0xa3, b'/'][i % 4]).collect();
            assert_eq!(super::find_query_or_fragment(&plain), None, "n={n}");
            for at in 0..n {
                for mark in [b'?', b'#'] {
                    let mut path = plain.clone();
                    path[at] = mark;
                    assert_eq!(
                        super::find_query_or_fragment(&path),
                        Some(at),
                        "n={n} at={at}"
                    );
                }
            }
        }
    }

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
