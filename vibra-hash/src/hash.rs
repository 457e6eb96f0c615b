//! The hashes that split the key space into N sub-namespaces (SPEC section 2). Their mapping is
//! part of the ABI: independent front-ends must send a URL to the same servers, so the values
//! here are pinned by golden vectors and never change once released.

use core::fmt;
use core::num::NonZeroU32;
use core::str::FromStr;

use md5::{Digest, Md5};
use sha1::Sha1;

use crate::Error;

/// A hash from dispatch key to sub-namespace (SPEC section 2).
///
/// | kind | 64-bit value `h` | sub-namespace |
/// | --- | --- | --- |
/// | [`Charsum`](HashKind::Charsum) | wrapping sum of the key's bytes | `h mod N` |
/// | [`Md5`](HashKind::Md5) | first 8 bytes of MD5, big-endian | `h mod N` |
/// | [`Sha1`](HashKind::Sha1) | first 8 bytes of SHA-1, big-endian | `h mod N` |
/// | [`Fast`](HashKind::Fast) | XXH3-64 with seed 0 | `h mod N` |
///
/// The names (`charsum`, `md5`, `sha1`, `fast`) are what [`FromStr`] and [`fmt::Display`] use,
/// and [`HashKind::code`] gives the C API's `VIBRA_HASH_*` numbers.
///
/// ```
/// use std::num::NonZeroU32;
/// use vibra_hash::HashKind;
///
/// let n = NonZeroU32::new(4).unwrap();
/// // '/' is byte 47, and 47 mod 4 = 3.
/// assert_eq!(HashKind::Charsum.sub_namespace(b"/", n), 3);
/// assert_eq!("md5".parse::<HashKind>().unwrap(), HashKind::Md5);
/// assert_eq!(HashKind::Fast.to_string(), "fast");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashKind {
    /// The dissertation's own hash (section 3.4.3): the sum of the key's byte values. Kept for
    /// fidelity with its experiments. It is cheap but badly distributed: anagrams collide for
    /// every N ("/stop" and "/post"), keys whose sums differ by a multiple of N collide
    /// ("/prog" and "/stat", sums 487 and 491, share a sub-namespace on the dissertation's four
    /// servers), and short keys only reach a few thousand distinct sums.
    Charsum,
    /// MD5 (RustCrypto `md-5`), first 8 digest bytes read big-endian: the dissertation's
    /// comparison hash. Well distributed, but about an order of magnitude slower than `Fast`.
    Md5,
    /// SHA-1 (RustCrypto `sha1`), first 8 digest bytes read big-endian: the dissertation's other
    /// comparison hash.
    Sha1,
    /// The project's default: XXH3-64 with seed 0 (`xxhash-rust`), read as a `u64`.
    ///
    /// Chosen because it is *seedless* (every front-end computes the same value without sharing
    /// a secret), *specified* (XXH3 has a published, frozen specification and reference
    /// implementations in many languages, so a C module or another proxy can match it bit for
    /// bit), *stable* (the XXH3 output is frozen since xxHash 0.8.0) and *fast on short keys*
    /// (URL paths are a few dozen bytes, where XXH3 takes a few nanoseconds and passes SMHasher).
    /// It is part of the ABI: it never changes once released. It is not a keyed hash: an
    /// attacker who can choose URLs can aim them at one sub-namespace, exactly as with MD5 or
    /// SHA-1 here.
    Fast,
}

impl HashKind {
    /// Every kind, in C-code order.
    ///
    /// ```
    /// use vibra_hash::HashKind;
    /// assert_eq!(HashKind::ALL.map(|h| h.code()), [0, 1, 2, 3]);
    /// ```
    pub const ALL: [HashKind; 4] = [
        HashKind::Charsum,
        HashKind::Md5,
        HashKind::Sha1,
        HashKind::Fast,
    ];

    /// The 64-bit hash value `h` of a key (the table in [`HashKind`]'s docs). The sub-namespace
    /// is `h mod N`; the naive re-partitioning baseline uses `floor(h * M / 2^64)` instead.
    ///
    /// ```
    /// use vibra_hash::HashKind;
    /// // MD5("/") = 6666cd76f96956469e7be39d750cc7d9
    /// assert_eq!(HashKind::Md5.hash64(b"/"), 0x6666_cd76_f969_5646);
    /// assert_eq!(HashKind::Charsum.hash64(b"ab"), 97 + 98);
    /// ```
    #[inline]
    pub fn hash64(self, key: &[u8]) -> u64 {
        match self {
            HashKind::Charsum => charsum(key),
            HashKind::Md5 => first_eight_be(&Md5::digest(key)),
            HashKind::Sha1 => first_eight_be(&Sha1::digest(key)),
            HashKind::Fast => xxhash_rust::xxh3::xxh3_64(key),
        }
    }

    /// The sub-namespace of a dispatch key among `servers` sub-namespaces: `hash64(key) mod N`.
    ///
    /// The key is the output of [`dispatch_key`](crate::dispatch_key), not a raw target.
    ///
    /// ```
    /// use std::num::NonZeroU32;
    /// use vibra_hash::{dispatch_key, HashKind};
    ///
    /// let n = NonZeroU32::new(16).unwrap();
    /// let ns = HashKind::Fast.sub_namespace(dispatch_key(b"/index.html?x=1"), n);
    /// assert!(ns < 16);
    /// assert_eq!(ns, HashKind::Fast.sub_namespace(b"/index.html", n));
    /// ```
    #[inline]
    pub fn sub_namespace(self, key: &[u8], servers: NonZeroU32) -> u32 {
        // The remainder is below `servers`, so it fits in u32.
        (self.hash64(key) % u64::from(servers.get())) as u32
    }

    /// The name used by [`FromStr`], [`fmt::Display`] and `vibra-lab --hash`.
    ///
    /// ```
    /// use vibra_hash::HashKind;
    /// assert_eq!(HashKind::Sha1.name(), "sha1");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            HashKind::Charsum => "charsum",
            HashKind::Md5 => "md5",
            HashKind::Sha1 => "sha1",
            HashKind::Fast => "fast",
        }
    }

    /// The C API's number for this kind: `VIBRA_HASH_CHARSUM = 0`, `VIBRA_HASH_MD5 = 1`,
    /// `VIBRA_HASH_SHA1 = 2`, `VIBRA_HASH_FAST = 3` (SPEC section 8). Never reused.
    ///
    /// ```
    /// use vibra_hash::HashKind;
    /// assert_eq!(HashKind::Fast.code(), 3);
    /// assert_eq!(HashKind::try_from(1).unwrap(), HashKind::Md5);
    /// ```
    pub const fn code(self) -> u32 {
        match self {
            HashKind::Charsum => 0,
            HashKind::Md5 => 1,
            HashKind::Sha1 => 2,
            HashKind::Fast => 3,
        }
    }
}

impl TryFrom<u32> for HashKind {
    type Error = Error;

    /// The inverse of [`HashKind::code`]; other values give [`Error::UnknownHashCode`].
    fn try_from(code: u32) -> Result<Self, Error> {
        HashKind::ALL
            .into_iter()
            .find(|h| h.code() == code)
            .ok_or(Error::UnknownHashCode { code })
    }
}

impl FromStr for HashKind {
    type Err = Error;

    /// Parses `charsum`, `md5`, `sha1` or `fast` (exact, lower case).
    fn from_str(name: &str) -> Result<Self, Error> {
        HashKind::ALL
            .into_iter()
            .find(|h| h.name() == name)
            .ok_or_else(|| Error::UnknownHashName {
                name: name.to_owned(),
            })
    }
}

impl fmt::Display for HashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Wrapping sum of the bytes, eight at a time: adjacent bytes are added into four 16-bit lanes
/// (at most 510 each) and one multiplication gathers the lanes into the top 16 bits (at most
/// 2040). The last partial word is read as the key's final eight bytes shifted past the ones
/// already counted, so no loop depends on the remainder's length: on 20-40-byte URLs, length-
/// dependent branches, not additions, are what a byte loop pays for.
#[inline]
fn charsum(key: &[u8]) -> u64 {
    let n = key.len();
    if n < 8 {
        return key.iter().fold(0u64, |s, &b| s.wrapping_add(u64::from(b)));
    }
    let mut sum = 0u64;
    let mut at = 0;
    while at + 8 <= n {
        sum = sum.wrapping_add(byte_sum(word_at(key, at)));
        at += 8;
    }
    // 0..=7 bytes left; the shift drops the 8 - left bytes counted already (all 8 when 0 left).
    let left = (n - at) as u32;
    let tail = word_at(key, n - 8).checked_shr((8 - left) * 8).unwrap_or(0);
    sum.wrapping_add(byte_sum(tail))
}

/// The eight bytes at `at` as a little-endian word (`at + 8 <= key.len()`).
#[inline]
fn word_at(key: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&key[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Sum of the eight bytes of `w`.
#[inline]
fn byte_sum(w: u64) -> u64 {
    const BYTE_LANES: u64 = 0x00ff_00ff_00ff_00ff;
    const GATHER: u64 = 0x0001_0001_0001_0001;
    let pairs = (w & BYTE_LANES) + ((w >> 8) & BYTE_LANES);
    pairs.wrapping_mul(GATHER) >> 48
}

fn first_eight_be(digest: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(head)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn charsum_equals_the_bytewise_wrapping_sum(key in proptest::collection::vec(any::<u8>(), 0..200)) {
            let want = key.iter().fold(0u64, |s, &b| s.wrapping_add(u64::from(b)));
            prop_assert_eq!(super::charsum(&key), want);
        }
    }

    #[test]
    fn charsum_of_all_ff_bytes() {
        assert_eq!(super::charsum(&[0xff; 64]), 64 * 255);
    }
}
