//! The one mechanism behind both SPEC rules that walk the servers in cyclic order: a subset
//! (section 3, starting at the sub-namespace) and the takeover servers of a failed server
//! (section 4, starting just after it). Both are "the first `take` available servers among
//! `span` positions from `start`, wrapping at N"; keeping one implementation guarantees that the
//! servers that receive a failed server's allocation are exactly those that take over its
//! sub-namespaces.
//!
//! Availability is a bitset of `u64` words (bit `s % 64` of word `s / 64`, bits at or past N
//! always 0). The scan reads each word once and jumps between available servers with
//! `trailing_zeros`, so an all-up lookup costs one load and a couple of bit operations.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::Error;

/// A read-only view of an availability bitset.
pub(crate) trait BitWords: Copy {
    /// Word `index` of the bitset.
    fn word(&self, index: usize) -> u64;
}

impl BitWords for &[u64] {
    #[inline]
    fn word(&self, index: usize) -> u64 {
        self[index]
    }
}

impl BitWords for &[AtomicU64] {
    #[inline]
    fn word(&self, index: usize) -> u64 {
        // Relaxed is enough: availability guards no other memory, and each word is one atomic
        // value, so a scan sees each server either before or after any concurrent change.
        self[index].load(Ordering::Relaxed)
    }
}

/// Number of `u64` words for `servers` bits.
#[inline]
pub(crate) const fn words_for(servers: u32) -> usize {
    (servers as usize).div_ceil(64)
}

/// The available servers among `span` positions from `start` in cyclic order, at most `take`
/// of them, in that order. Allocation-free; each bitset word is loaded once per visit.
#[derive(Debug)]
pub(crate) struct CyclicScan<W: BitWords> {
    words: W,
    servers: u32,
    next: u32,
    left: u32,
    take: u32,
    cached_index: usize,
    cached: u64,
}

impl<W: BitWords> Clone for CyclicScan<W> {
    fn clone(&self) -> Self {
        CyclicScan { ..*self }
    }
}

impl<W: BitWords> CyclicScan<W> {
    /// `start < servers`, `span <= servers`; `words` covers `servers` bits.
    #[inline]
    pub(crate) fn new(words: W, servers: u32, start: u32, span: u32, take: u32) -> Self {
        debug_assert!(start < servers && span <= servers);
        CyclicScan {
            words,
            servers,
            next: start,
            left: span,
            take,
            cached_index: usize::MAX,
            cached: 0,
        }
    }
}

impl<W: BitWords> Iterator for CyclicScan<W> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        while self.take > 0 && self.left > 0 {
            let index = (self.next / 64) as usize;
            if index != self.cached_index {
                self.cached = self.words.word(index);
                self.cached_index = index;
            }
            let ahead = self.cached >> (self.next % 64);
            if ahead != 0 {
                let skip = ahead.trailing_zeros();
                if skip >= self.left {
                    break;
                }
                // Bits at or past `servers` are 0, so `server < servers`.
                let server = self.next + skip;
                self.left -= skip + 1;
                self.take -= 1;
                self.next = if server + 1 == self.servers {
                    0
                } else {
                    server + 1
                };
                return Some(server);
            }
            let word_end = ((index as u32 + 1) * 64).min(self.servers);
            let skipped = word_end - self.next;
            if skipped >= self.left {
                break;
            }
            self.left -= skipped;
            self.next = if word_end == self.servers {
                0
            } else {
                word_end
            };
        }
        self.left = 0;
        None
    }
}

/// A caller-supplied availability bitset (bit `s % 64` of word `s / 64` set = server `s` up),
/// read with the bits at or past N cleared, so that callers may leave garbage there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GivenWords<'a> {
    words: &'a [u64],
    /// Mask of the valid bits of the last word.
    last_mask: u64,
}

impl<'a> GivenWords<'a> {
    /// `words.len() == words_for(servers)`, else [`Error::MaskLength`].
    #[inline]
    pub(crate) fn new(words: &'a [u64], servers: u32) -> Result<Self, Error> {
        let want = words_for(servers);
        if words.len() != want {
            return Err(Error::MaskLength {
                len: words.len(),
                words: want,
                servers,
            });
        }
        let tail = servers % 64;
        Ok(GivenWords {
            words,
            last_mask: if tail == 0 {
                u64::MAX
            } else {
                (1u64 << tail) - 1
            },
        })
    }
}

impl BitWords for GivenWords<'_> {
    #[inline(always)]
    fn word(&self, index: usize) -> u64 {
        let w = self.words[index];
        if index + 1 == self.words.len() {
            w & self.last_mask
        } else {
            w
        }
    }
}

/// A caller's view of which servers are up, one bit per server: what
/// [`Dispatcher::pick_with`](crate::Dispatcher::pick_with) and the other `_with` lookups take
/// (as [`words`](Availability::words)), so that a front end with its own health state never
/// rewrites the dispatcher's shared state per request.
///
/// ```
/// use vibra_hash::Availability;
///
/// let mut up = Availability::all_up(70)?;
/// up.set(3, false)?;
/// assert_eq!(up.count(), 69);
/// assert!(!up.is_up(3) && up.is_up(69) && !up.is_up(70));
/// assert_eq!(up.words().len(), 2);
/// assert_eq!(up.iter().take(4).collect::<Vec<_>>(), vec![0, 1, 2, 4]);
/// # Ok::<(), vibra_hash::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    words: Vec<u64>,
    servers: u32,
}

impl Availability {
    /// `servers` servers, all up.
    ///
    /// # Errors
    /// [`Error::InvalidServerCount`] unless `1 <= servers <= Dispatcher::MAX_SERVERS`.
    ///
    /// ```
    /// # use vibra_hash::Availability;
    /// assert_eq!(Availability::all_up(5)?.count(), 5);
    /// assert!(Availability::all_up(0).is_err());
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn all_up(servers: u32) -> Result<Self, Error> {
        check_server_count(servers as usize)?;
        let mut up = Availability {
            words: vec![u64::MAX; words_for(servers)],
            servers,
        };
        up.clear_tail();
        Ok(up)
    }

    /// One flag per server (`true` = up).
    ///
    /// # Errors
    /// [`Error::InvalidServerCount`] unless `1 <= flags.len() <= Dispatcher::MAX_SERVERS`.
    ///
    /// ```
    /// # use vibra_hash::Availability;
    /// let up = Availability::from_flags(&[true, false, true])?;
    /// assert_eq!(up.iter().collect::<Vec<_>>(), vec![0, 2]);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn from_flags(flags: &[bool]) -> Result<Self, Error> {
        check_server_count(flags.len())?;
        Ok(Self::from_flags_unchecked(flags))
    }

    /// [`from_flags`](Self::from_flags) for `1 <= flags.len() <= u32::MAX`.
    pub(crate) fn from_flags_unchecked(flags: &[bool]) -> Self {
        let servers = flags.len() as u32;
        let mut words = vec![0u64; words_for(servers)];
        for (s, _) in flags.iter().enumerate().filter(|(_, f)| **f) {
            words[s / 64] |= 1 << (s % 64);
        }
        Availability { words, servers }
    }

    fn clear_tail(&mut self) {
        let tail = self.servers % 64;
        if tail != 0 {
            if let Some(last) = self.words.last_mut() {
                *last &= (1u64 << tail) - 1;
            }
        }
    }

    /// The server count N.
    ///
    /// ```
    /// # use vibra_hash::Availability;
    /// assert_eq!(Availability::all_up(9)?.servers(), 9);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline]
    pub fn servers(&self) -> u32 {
        self.servers
    }

    /// Marks `server` up or down.
    ///
    /// # Errors
    /// [`Error::ServerOutOfRange`] if `server >= N` (nothing changes).
    ///
    /// ```
    /// # use vibra_hash::Availability;
    /// let mut up = Availability::all_up(2)?;
    /// up.set(1, false)?;
    /// assert!(!up.is_up(1));
    /// assert!(up.set(2, false).is_err());
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn set(&mut self, server: u32, available: bool) -> Result<(), Error> {
        if server >= self.servers {
            return Err(Error::ServerOutOfRange {
                server,
                servers: self.servers,
            });
        }
        let bit = 1u64 << (server % 64);
        let word = &mut self.words[(server / 64) as usize];
        if available {
            *word |= bit;
        } else {
            *word &= !bit;
        }
        Ok(())
    }

    /// Whether `server` is up (`false` for `server >= N`).
    ///
    /// ```
    /// # use vibra_hash::Availability;
    /// let up = Availability::all_up(2)?;
    /// assert!(up.is_up(1) && !up.is_up(2));
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline]
    pub fn is_up(&self, server: u32) -> bool {
        server < self.servers && self.words[(server / 64) as usize] >> (server % 64) & 1 == 1
    }

    /// The number of servers up.
    ///
    /// ```
    /// # use vibra_hash::Availability;
    /// assert_eq!(Availability::from_flags(&[false, true])?.count(), 1);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// The bitset itself: bit `s % 64` of word `s / 64` set = server `s` up, `ceil(N / 64)`
    /// words, bits at or past N clear. This is the `up` argument of the dispatcher's `_with`
    /// lookups and of libvibra's `vibra_dispatcher_pick_with`.
    ///
    /// ```
    /// # use vibra_hash::Availability;
    /// let up = Availability::from_flags(&[true, false, true])?;
    /// assert_eq!(up.words(), &[0b101]);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline]
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Every server up, in ascending order.
    ///
    /// ```
    /// # use vibra_hash::Availability;
    /// let up = Availability::from_flags(&[false, true, true])?;
    /// assert_eq!(up.iter().collect::<Vec<_>>(), vec![1, 2]);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline]
    pub fn iter(&self) -> Servers<'_> {
        Servers {
            scan: self.scan(0, self.servers, self.servers),
        }
    }

    /// Every server up in cyclic order from `start`: `start, start + 1, ..., N - 1, 0, ...,
    /// start - 1` (nothing for `start >= N`). A round-robin's next server is the first.
    ///
    /// ```
    /// # use vibra_hash::Availability;
    /// let up = Availability::from_flags(&[true, false, true, true])?;
    /// assert_eq!(up.iter_from(1).collect::<Vec<_>>(), vec![2, 3, 0]);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline]
    pub fn iter_from(&self, start: u32) -> Servers<'_> {
        let span = if start < self.servers {
            self.servers
        } else {
            0
        };
        Servers {
            scan: self.scan(start.min(self.servers - 1), span, span),
        }
    }

    /// See [`CyclicScan`]; `start < servers`, `span <= servers`.
    #[inline]
    pub(crate) fn scan(&self, start: u32, span: u32, take: u32) -> CyclicScan<&'_ [u64]> {
        CyclicScan::new(self.words.as_slice(), self.servers, start, span, take)
    }
}

/// The servers up in an [`Availability`], ascending: returned by [`Availability::iter`].
///
/// ```
/// # use vibra_hash::Availability;
/// let up = Availability::all_up(3)?;
/// assert_eq!(up.iter().sum::<u32>(), 3);
/// # Ok::<(), vibra_hash::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Servers<'a> {
    scan: CyclicScan<&'a [u64]>,
}

impl Iterator for Servers<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        self.scan.next()
    }
}

/// The server count of a per-server slice: 1..=u32::MAX entries.
pub(crate) fn server_count(len: usize) -> Result<u32, Error> {
    u32::try_from(len)
        .ok()
        .filter(|&n| n > 0)
        .ok_or(Error::InvalidServerCount {
            servers: len,
            max: u32::MAX as usize,
        })
}

/// The most servers a dispatcher takes (`Dispatcher::MAX_SERVERS` is this value; it lives here,
/// beside the scans sized by it, so this module imports nothing from the dispatcher).
pub(crate) const MAX_SERVERS: u32 = 1 << 20;

/// `1 <= servers <= Dispatcher::MAX_SERVERS`, as a `u32`.
pub(crate) fn check_server_count(servers: usize) -> Result<u32, Error> {
    let max = MAX_SERVERS;
    u32::try_from(servers)
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or(Error::InvalidServerCount {
            servers,
            max: max as usize,
        })
}

/// `1 <= replication <= servers`.
pub(crate) fn check_replication(replication: u32, servers: u32) -> Result<(), Error> {
    if replication == 0 || replication > servers {
        Err(Error::InvalidReplication {
            replication,
            servers,
        })
    } else {
        Ok(())
    }
}

/// The servers that take over from a failed server (SPEC section 4, dissertation 4.3.3): the
/// first `replication` available servers after `failed` in cyclic order (`failed + 1`,
/// `failed + 2`, ...), or every other available server if fewer remain.
///
/// These are exactly the servers that gain `failed`'s sub-namespace instances under the
/// failure-skip rule, which is why vibra-alloc hands them `failed`'s allocation. The entry for
/// `failed` itself is ignored (it may be either value). Shares its cyclic walk with
/// [`Dispatcher::subset`](crate::Dispatcher::subset).
///
/// # Errors
/// [`Error::InvalidServerCount`] for an empty slice (or one longer than `u32::MAX`),
/// [`Error::ServerOutOfRange`] if `failed >= N`, [`Error::InvalidReplication`] if R is 0 or
/// above N, [`Error::NoSurvivor`] if no other server is available.
///
/// ```
/// use vibra_hash::takeover_servers;
///
/// let up = [true, true, false, true, true];
/// assert_eq!(takeover_servers(&up, 1, 2).unwrap(), vec![3, 4]);
/// assert_eq!(takeover_servers(&up, 4, 3).unwrap(), vec![0, 1, 3]);
/// // Fewer than R others available: all of them.
/// assert_eq!(takeover_servers(&[true, false, true], 0, 3).unwrap(), vec![2]);
/// ```
pub fn takeover_servers(
    available: &[bool],
    failed: u32,
    replication: u32,
) -> Result<Vec<u32>, Error> {
    let servers = server_count(available.len())?;
    if failed >= servers {
        return Err(Error::ServerOutOfRange {
            server: failed,
            servers,
        });
    }
    check_replication(replication, servers)?;
    let up = Availability::from_flags_unchecked(available);
    let start = if failed + 1 == servers { 0 } else { failed + 1 };
    let chosen: Vec<u32> = up.scan(start, servers - 1, replication).collect();
    if chosen.is_empty() {
        return Err(Error::NoSurvivor { failed });
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(up: &[bool]) -> Vec<u64> {
        let mut w = vec![0u64; words_for(up.len() as u32)];
        for (s, &u) in up.iter().enumerate() {
            if u {
                w[s / 64] |= 1 << (s % 64);
            }
        }
        w
    }

    /// The definition, position by position.
    fn reference(up: &[bool], start: u32, span: u32, take: u32) -> Vec<u32> {
        let n = up.len() as u32;
        (0..span)
            .map(|k| (start + k) % n)
            .filter(|&s| up[s as usize])
            .take(take as usize)
            .collect()
    }

    #[test]
    fn scan_matches_definition_across_word_boundaries() {
        for n in [1u32, 2, 63, 64, 65, 127, 128, 130, 200] {
            let up: Vec<bool> = (0..n).map(|s| (s * 7 + n) % 5 != 0).collect();
            let w = bits(&up);
            for start in [0, n / 2, n - 1] {
                for span in [0, 1, n / 2, n] {
                    for take in [0, 1, 3, n] {
                        let got: Vec<u32> =
                            CyclicScan::new(w.as_slice(), n, start, span, take).collect();
                        assert_eq!(
                            got,
                            reference(&up, start, span, take),
                            "n={n} start={start} span={span} take={take}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn takeover_errors() {
        assert_eq!(
            takeover_servers(&[], 0, 1),
            Err(Error::InvalidServerCount {
                servers: 0,
                max: u32::MAX as usize
            })
        );
        assert_eq!(
            takeover_servers(&[true, true], 2, 1),
            Err(Error::ServerOutOfRange {
                server: 2,
                servers: 2
            })
        );
        assert_eq!(
            takeover_servers(&[true, true], 0, 0),
            Err(Error::InvalidReplication {
                replication: 0,
                servers: 2
            })
        );
        assert_eq!(
            takeover_servers(&[true, true], 0, 3),
            Err(Error::InvalidReplication {
                replication: 3,
                servers: 2
            })
        );
        assert_eq!(
            takeover_servers(&[true, false, false], 0, 2),
            Err(Error::NoSurvivor { failed: 0 })
        );
        assert_eq!(
            takeover_servers(&[true], 0, 1),
            Err(Error::NoSurvivor { failed: 0 })
        );
    }
}
