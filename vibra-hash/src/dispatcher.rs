//! The URL-hash dispatcher of SPEC section 3 (dissertation 3.3.1 and 4.3.3): sub-namespace of a
//! target, its subset of R servers in cyclic order skipping unavailable ones, least-loaded
//! choice, and a built-in lock-free connection tracker.
//!
//! Holds no per-object state: memory is a few bits and one counter per server, whatever the
//! number of URLs. Lookups never lock and never allocate; availability changes are single atomic
//! bit operations, so they never block or tear a concurrent lookup.

use core::num::NonZeroU32;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::cyclic::{BitWords, CyclicScan, GivenWords, check_replication, words_for};
use crate::hash::Modulus;
use crate::key::extract_key;
use crate::{Error, HashKind};

/// A URL-hash dispatcher over N servers with replication factor R (SPEC section 3).
///
/// Sub-namespace `i` (of N) is served by `subset(i)`: the first `min(R, alive)` available
/// servers in the cyclic order `i, i+1, ..., N-1, 0, ..., i-1`. A request goes to the member of
/// its subset with the fewest active connections, ties to the earlier position (which keeps the
/// primary, and so locality, on ties). A failed server is skipped, so only the sub-namespace
/// instances it held move: the locality loss is `failed / N`, the optimum.
///
/// Two ways to pick: [`pick`](Dispatcher::pick) with caller-owned load counters (an nginx or
/// HAProxy module keeping them in shared memory), or the built-in tracker
/// ([`acquire`](Dispatcher::acquire) / [`release`](Dispatcher::release)).
///
/// `Dispatcher` is `Send + Sync`: share it with `Arc` between threads. Every method takes
/// `&self`; [`set_available`](Dispatcher::set_available) may run concurrently with lookups.
/// A lookup sees each server's availability either before or after any concurrent change, never
/// a torn state; for N <= 64 a lookup reads all availability in one atomic load, so it sees an
/// exact snapshot.
///
/// ```
/// use vibra_hash::{Dispatcher, HashKind};
///
/// let d = Dispatcher::new(4, 2, HashKind::Charsum)?;
/// // Charsum of "/" is 47, and 47 mod 4 = 3: subset(3) = {3, 0}.
/// assert_eq!(d.namespace(b"/?q=1"), 3);
/// assert_eq!(d.subset(3)?.collect::<Vec<_>>(), vec![3, 0]);
/// // Server 3 has more connections, so server 0 wins.
/// assert_eq!(d.pick(b"/", &[0, 0, 0, 5])?, 0);
/// // Server 3 fails: its instances move to the next available servers.
/// d.set_available(3, false)?;
/// assert_eq!(d.subset(3)?.collect::<Vec<_>>(), vec![0, 1]);
/// # Ok::<(), vibra_hash::Error>(())
/// ```
#[derive(Debug)]
pub struct Dispatcher {
    servers: NonZeroU32,
    replication: u32,
    hash: HashKind,
    /// `h mod N` without a division.
    modulus: Modulus,
    /// Bit `s` set = server `s` available. Bits at or past N stay 0.
    available: Box<[AtomicU64]>,
    /// Active connections per server, for the built-in tracker.
    active: Box<[AtomicU32]>,
    /// The sum of `active`, for [`acquire_bounded`](Dispatcher::acquire_bounded).
    total: AtomicU64,
    /// For N <= 64, the availability word with every server up (bits 0..N set).
    all_up: u64,
}

impl Dispatcher {
    /// The largest server count accepted (2^20): per-server state is 4.125 bytes, so the
    /// largest dispatcher stays under 5 MB.
    ///
    /// ```
    /// # use vibra_hash::{Dispatcher, HashKind};
    /// assert!(Dispatcher::new(Dispatcher::MAX_SERVERS, 1, HashKind::Fast).is_ok());
    /// assert!(Dispatcher::new(Dispatcher::MAX_SERVERS + 1, 1, HashKind::Fast).is_err());
    /// ```
    pub const MAX_SERVERS: u32 = crate::cyclic::MAX_SERVERS;

    /// A dispatcher over `servers` servers (all available, no active connections) with
    /// replication factor `replication`, hashing with `hash`.
    ///
    /// # Errors
    /// [`Error::InvalidServerCount`] unless `1 <= servers <= MAX_SERVERS`;
    /// [`Error::InvalidReplication`] unless `1 <= replication <= servers`.
    ///
    /// ```
    /// use vibra_hash::{Dispatcher, Error, HashKind};
    ///
    /// assert!(Dispatcher::new(65_536, 3, HashKind::Fast).is_ok());
    /// assert!(matches!(Dispatcher::new(0, 1, HashKind::Fast), Err(Error::InvalidServerCount { .. })));
    /// assert!(matches!(Dispatcher::new(8, 0, HashKind::Fast), Err(Error::InvalidReplication { .. })));
    /// ```
    pub fn new(servers: u32, replication: u32, hash: HashKind) -> Result<Self, Error> {
        let n = NonZeroU32::new(servers)
            .filter(|n| n.get() <= Self::MAX_SERVERS)
            .ok_or(Error::InvalidServerCount {
                servers: servers as usize,
                max: Self::MAX_SERVERS as usize,
            })?;
        check_replication(replication, servers)?;
        let available = (0..words_for(servers))
            .map(|w| {
                let first = w as u32 * 64;
                let bits = servers - first;
                AtomicU64::new(if bits >= 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                })
            })
            .collect();
        let active = (0..servers).map(|_| AtomicU32::new(0)).collect();
        Ok(Dispatcher {
            servers: n,
            replication,
            hash,
            modulus: Modulus::new(n),
            available,
            active,
            total: AtomicU64::new(0),
            all_up: u64::MAX >> (64 - servers.min(64)),
        })
    }

    /// The server count N (also the number of sub-namespaces).
    ///
    /// ```
    /// # use vibra_hash::{Dispatcher, HashKind};
    /// assert_eq!(Dispatcher::new(10, 2, HashKind::Md5)?.servers(), 10);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline]
    pub fn servers(&self) -> u32 {
        self.servers.get()
    }

    /// The replication factor R.
    ///
    /// ```
    /// # use vibra_hash::{Dispatcher, HashKind};
    /// assert_eq!(Dispatcher::new(10, 2, HashKind::Md5)?.replication(), 2);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline]
    pub fn replication(&self) -> u32 {
        self.replication
    }

    /// The hash in use.
    ///
    /// ```
    /// # use vibra_hash::{Dispatcher, HashKind};
    /// assert_eq!(Dispatcher::new(10, 2, HashKind::Md5)?.hash(), HashKind::Md5);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline]
    pub fn hash(&self) -> HashKind {
        self.hash
    }

    /// The sub-namespace (in `0..N`) of an HTTP request-target: [`dispatch_key`](crate::dispatch_key) then
    /// [`HashKind::sub_namespace`]. Independent of availability.
    ///
    /// ```
    /// use std::num::NonZeroU32;
    /// use vibra_hash::{dispatch_key, Dispatcher, HashKind};
    ///
    /// let d = Dispatcher::new(16, 2, HashKind::Fast)?;
    /// let n = NonZeroU32::new(16).unwrap();
    /// assert_eq!(d.namespace(b"http://h/a.gif?x"), HashKind::Fast.sub_namespace(b"/a.gif", n));
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline]
    pub fn namespace(&self, target: &[u8]) -> u32 {
        self.namespace_of(target)
    }

    /// [`namespace`](Dispatcher::namespace), always inlined into the lookups: key, hash and
    /// the precomputed `mod N` (identical to [`HashKind::sub_namespace`]'s `%`).
    #[inline(always)]
    fn namespace_of(&self, target: &[u8]) -> u32 {
        self.modulus
            .reduce(self.hash.hash64_inline(extract_key(target)))
    }

    /// The current subset of sub-namespace `ns`, in SPEC order, as a non-allocating iterator
    /// of server indices (at least one, at most R).
    ///
    /// # Errors
    /// [`Error::NamespaceOutOfRange`] if `ns >= N`; [`Error::NoServerAvailable`] if every server
    /// is down.
    ///
    /// ```
    /// use vibra_hash::{Dispatcher, HashKind};
    ///
    /// let d = Dispatcher::new(5, 3, HashKind::Fast)?;
    /// assert_eq!(d.subset(4)?.collect::<Vec<_>>(), vec![4, 0, 1]);
    /// d.set_available(0, false)?;
    /// assert_eq!(d.subset(4)?.collect::<Vec<_>>(), vec![4, 1, 2]);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline]
    pub fn subset(&self, ns: u32) -> Result<Subset<'_>, Error> {
        let scan = self.scan(ns)?;
        let mut peek = scan.clone();
        match peek.next() {
            Some(_) => Ok(Subset {
                scan: Scan::Shared(scan),
            }),
            None => Err(Error::NoServerAvailable),
        }
    }

    /// [`subset`](Dispatcher::subset) under the caller's view of which servers are up (`up`,
    /// as [`Availability::words`](crate::Availability::words): bit `s % 64` of word `s / 64`,
    /// `ceil(N / 64)` words, bits at or past N ignored) instead of the dispatcher's own.
    ///
    /// # Errors
    /// As [`subset`](Dispatcher::subset), plus [`Error::MaskLength`] if `up` does not have
    /// `ceil(N / 64)` words.
    ///
    /// ```
    /// use vibra_hash::{Availability, Dispatcher, HashKind};
    ///
    /// let d = Dispatcher::new(5, 3, HashKind::Fast)?;
    /// let up = Availability::from_flags(&[false, true, true, true, true])?;
    /// assert_eq!(d.subset_with(4, up.words())?.collect::<Vec<_>>(), vec![4, 1, 2]);
    /// // The dispatcher's own view is unchanged.
    /// assert_eq!(d.subset(4)?.collect::<Vec<_>>(), vec![4, 0, 1]);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn subset_with<'a>(&'a self, ns: u32, up: &'a [u64]) -> Result<Subset<'a>, Error> {
        let words = GivenWords::new(up, self.servers.get())?;
        let servers = self.servers.get();
        if ns >= servers {
            return Err(Error::NamespaceOutOfRange {
                namespace: ns,
                servers,
            });
        }
        let scan = CyclicScan::new(words, servers, ns, servers, self.replication);
        let mut peek = scan.clone();
        match peek.next() {
            Some(_) => Ok(Subset {
                scan: Scan::Given(scan),
            }),
            None => Err(Error::NoServerAvailable),
        }
    }

    /// Writes the current subset of `ns` into `out` and returns its length
    /// (`min(R, available servers)`).
    ///
    /// # Errors
    /// As [`subset`](Dispatcher::subset), plus [`Error::BufferTooSmall`] (with the needed length)
    /// when `out` is shorter than the subset. Nothing is written on error. With `out.len() >= R`
    /// it never allocates.
    ///
    /// ```
    /// use vibra_hash::{Dispatcher, Error, HashKind};
    ///
    /// let d = Dispatcher::new(8, 3, HashKind::Fast)?;
    /// let mut buf = [0u32; 3];
    /// assert_eq!(d.subset_into(6, &mut buf)?, 3);
    /// assert_eq!(buf, [6, 7, 0]);
    /// assert_eq!(
    ///     d.subset_into(6, &mut [0u32; 2]),
    ///     Err(Error::BufferTooSmall { needed: 3, cap: 2 })
    /// );
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn subset_into(&self, ns: u32, out: &mut [u32]) -> Result<usize, Error> {
        let mut scan = self.scan(ns)?;
        if out.len() < self.replication as usize {
            // A buffer shorter than R may or may not fit: collect first (a cold path, so the
            // allocation is fine) so that nothing is written on error, even if a server comes
            // up concurrently.
            let found: Vec<u32> = scan.collect();
            if found.len() > out.len() {
                return Err(Error::BufferTooSmall {
                    needed: found.len(),
                    cap: out.len(),
                });
            }
            if found.is_empty() {
                return Err(Error::NoServerAvailable);
            }
            out[..found.len()].copy_from_slice(&found);
            return Ok(found.len());
        }
        // At most R servers come out, so they fit; nothing is written when none does.
        let mut len = 0;
        for (slot, server) in out.iter_mut().zip(scan.by_ref()) {
            *slot = server;
            len += 1;
        }
        if len == 0 {
            return Err(Error::NoServerAvailable);
        }
        Ok(len)
    }

    /// Marks `server` up or down. Never blocks and never tears a concurrent lookup: it is one
    /// atomic bit operation. Marking a server up again restores every subset exactly as it was.
    ///
    /// # Errors
    /// [`Error::ServerOutOfRange`] if `server >= N` (nothing changes).
    ///
    /// ```
    /// use vibra_hash::{Dispatcher, HashKind};
    ///
    /// let d = Dispatcher::new(4, 2, HashKind::Fast)?;
    /// d.set_available(1, false)?;
    /// assert_eq!(d.subset(0)?.collect::<Vec<_>>(), vec![0, 2]);
    /// d.set_available(1, true)?;
    /// assert_eq!(d.subset(0)?.collect::<Vec<_>>(), vec![0, 1]);
    /// assert!(d.set_available(4, true).is_err());
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn set_available(&self, server: u32, available: bool) -> Result<(), Error> {
        self.check_server(server)?;
        let word = &self.available[(server / 64) as usize];
        let bit = 1u64 << (server % 64);
        if available {
            word.fetch_or(bit, Ordering::Relaxed);
        } else {
            word.fetch_and(!bit, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether `server` is marked available.
    ///
    /// # Errors
    /// [`Error::ServerOutOfRange`] if `server >= N`.
    ///
    /// ```
    /// # use vibra_hash::{Dispatcher, HashKind};
    /// let d = Dispatcher::new(4, 2, HashKind::Fast)?;
    /// d.set_available(2, false)?;
    /// assert_eq!(d.is_available(2)?, false);
    /// assert_eq!(d.is_available(3)?, true);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn is_available(&self, server: u32) -> Result<bool, Error> {
        self.check_server(server)?;
        let word = self.available[(server / 64) as usize].load(Ordering::Relaxed);
        Ok(word >> (server % 64) & 1 == 1)
    }

    /// The number of servers marked available.
    ///
    /// ```
    /// # use vibra_hash::{Dispatcher, HashKind};
    /// let d = Dispatcher::new(100, 2, HashKind::Fast)?;
    /// d.set_available(70, false)?;
    /// assert_eq!(d.available_count(), 99);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn available_count(&self) -> u32 {
        self.available
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones())
            .sum()
    }

    /// Stateless selection: the member of the target's subset with the smallest `loads` entry
    /// (ties to the earlier subset position). `loads[s]` is server `s`'s active-connection count,
    /// kept by the caller.
    ///
    /// # Errors
    /// [`Error::SliceLength`] if `loads.len() != N`; [`Error::NoServerAvailable`] if every
    /// server is down.
    ///
    /// ```
    /// use vibra_hash::{Dispatcher, HashKind};
    ///
    /// let d = Dispatcher::new(4, 3, HashKind::Charsum)?; // "/" -> sub-namespace 3: {3, 0, 1}
    /// assert_eq!(d.pick(b"/", &[2, 1, 0, 2])?, 1);
    /// assert_eq!(d.pick(b"/", &[1, 1, 0, 1])?, 3); // tie: the primary keeps it
    /// assert!(d.pick(b"/", &[0; 3]).is_err());
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline(always)]
    pub fn pick(&self, target: &[u8], loads: &[u32]) -> Result<u32, Error> {
        if loads.len() != self.servers.get() as usize {
            return Err(Error::SliceLength {
                len: loads.len(),
                servers: self.servers.get(),
            });
        }
        self.least_loaded_member(&*self.available, self.namespace_of(target), loads, |&l| l)
    }

    /// [`pick`](Dispatcher::pick) under the caller's view of which servers are up, as `loads`
    /// is already the caller's: `up` is a bitset (bit `s % 64` of word `s / 64` set = server
    /// `s` up, `ceil(N / 64)` words, bits at or past N ignored; see
    /// [`Availability`](crate::Availability)). The dispatcher's own availability is not read,
    /// so a front end with its own health state (nginx peers, HAProxy servers) never writes
    /// shared dispatcher state per request. Picks exactly what [`pick`](Dispatcher::pick)
    /// picks after [`set_available`](Dispatcher::set_available) to the same state.
    ///
    /// # Errors
    /// As [`pick`](Dispatcher::pick), plus [`Error::MaskLength`] if `up` does not have
    /// `ceil(N / 64)` words.
    ///
    /// ```
    /// use vibra_hash::{Availability, Dispatcher, HashKind};
    ///
    /// let d = Dispatcher::new(4, 2, HashKind::Charsum)?; // "/" -> {3, 0}
    /// let mut up = Availability::all_up(4)?;
    /// assert_eq!(d.pick_with(b"/", &[0, 0, 0, 0], up.words())?, 3);
    /// up.set(3, false)?; // the caller's view: server 3 is down, so "/" -> {0, 1}
    /// assert_eq!(d.pick_with(b"/", &[5, 0, 0, 0], up.words())?, 1);
    /// assert_eq!(d.pick_with(b"/", &[0; 4], &[0b0111])?, 0); // raw words work too
    /// assert!(d.pick_with(b"/", &[0; 4], &[0]).is_err()); // nobody up
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline(always)]
    pub fn pick_with(&self, target: &[u8], loads: &[u32], up: &[u64]) -> Result<u32, Error> {
        if loads.len() != self.servers.get() as usize {
            return Err(Error::SliceLength {
                len: loads.len(),
                servers: self.servers.get(),
            });
        }
        let words = GivenWords::new(up, self.servers.get())?;
        self.least_loaded_member(words, self.namespace_of(target), loads, |&l| l)
    }

    /// Stateless selection with a load bound, in the spirit of HAProxy's `hash-balance-factor`:
    /// a server is eligible while its load is below `ceil(ceil((total + 1) * f / 100) / alive)`
    /// (HAProxy's slot rule with equal weights, `alive` = available servers), and always at
    /// load 0. `total` is the sum of `loads`, which the caller keeps beside them (an nginx or
    /// HAProxy module updates it with each count), so a decision never sums N loads. The
    /// least-loaded eligible member of the subset wins (ties to the earlier position); when
    /// every member is over the bound, the next available servers in cyclic order are tried and
    /// the first eligible one wins (O(N) at worst, only then). Some server is always eligible
    /// when `total` is the sum, since `f >= 100`; if none is (a wrong `total`), the primary
    /// keeps the request. The common case costs about one [`pick`](Dispatcher::pick): the
    /// bound is tested with multiplications only (`(total + 1) * f > 100 * load * alive`).
    ///
    /// # Errors
    /// As [`pick`](Dispatcher::pick).
    ///
    /// ```
    /// use vibra_hash::{BalanceFactor, Dispatcher, HashKind};
    ///
    /// let d = Dispatcher::new(4, 2, HashKind::Charsum)?; // "/" -> {3, 0}
    /// let f = BalanceFactor::new(125)?;
    /// // Balanced: the subset decides as usual.
    /// assert_eq!(d.pick_bounded(b"/", &[1, 1, 1, 1], 4, f)?, 3);
    /// // Both members are far above the mean: the request spills to server 1.
    /// assert_eq!(d.pick_bounded(b"/", &[9, 0, 0, 9], 18, f)?, 1);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline(always)]
    pub fn pick_bounded(
        &self,
        target: &[u8],
        loads: &[u32],
        total: u64,
        factor: BalanceFactor,
    ) -> Result<u32, Error> {
        self.check_loads(loads)?;
        self.bounded_member(
            &*self.available,
            self.namespace_of(target),
            loads,
            |&l| l,
            total,
            factor,
        )
    }

    /// [`pick_bounded`](Dispatcher::pick_bounded) under the caller's view of which servers
    /// are up (`up` as for [`pick_with`](Dispatcher::pick_with)); `alive` in the bound is the
    /// number of servers up in `up`.
    ///
    /// # Errors
    /// As [`pick_with`](Dispatcher::pick_with).
    ///
    /// ```
    /// use vibra_hash::{BalanceFactor, Dispatcher, HashKind};
    ///
    /// let d = Dispatcher::new(4, 2, HashKind::Charsum)?; // "/" -> {3, 0}
    /// let f = BalanceFactor::new(125)?;
    /// // Server 3 down in the caller's view: "/" -> {0, 1}; 0 is over the bound, 1 is not.
    /// assert_eq!(d.pick_bounded_with(b"/", &[9, 0, 0, 0], 9, f, &[0b0111])?, 1);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline(always)]
    pub fn pick_bounded_with(
        &self,
        target: &[u8],
        loads: &[u32],
        total: u64,
        factor: BalanceFactor,
        up: &[u64],
    ) -> Result<u32, Error> {
        self.check_loads(loads)?;
        let words = GivenWords::new(up, self.servers.get())?;
        self.bounded_member(
            words,
            self.namespace_of(target),
            loads,
            |&l| l,
            total,
            factor,
        )
    }

    /// The built-in tracker with a load bound: picks like
    /// [`pick_bounded`](Dispatcher::pick_bounded) over the dispatcher's own counters and the
    /// total it keeps beside them, then counts the connection like
    /// [`acquire`](Dispatcher::acquire).
    ///
    /// # Errors
    /// As [`acquire`](Dispatcher::acquire).
    ///
    /// ```
    /// use vibra_hash::{BalanceFactor, Dispatcher, HashKind};
    ///
    /// let d = Dispatcher::new(4, 2, HashKind::Charsum)?; // "/" -> {3, 0}
    /// let f = BalanceFactor::new(100)?;
    /// let a = d.acquire_bounded(b"/", f)?;
    /// let b = d.acquire_bounded(b"/", f)?;
    /// let c = d.acquire_bounded(b"/", f)?; // 3 and 0 are at the mean: spill to 1
    /// assert_eq!((a.server(), b.server(), c.server()), (3, 0, 1));
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline]
    pub fn acquire_bounded(
        &self,
        target: &[u8],
        factor: BalanceFactor,
    ) -> Result<Lease<'_>, Error> {
        let server = self.bounded_member(
            &*self.available,
            self.namespace_of(target),
            &self.active,
            |a| a.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
            factor,
        )?;
        self.count(server)?;
        Ok(Lease {
            dispatcher: self,
            server,
        })
    }

    /// `loads.len() == N`.
    #[inline(always)]
    fn check_loads(&self, loads: &[u32]) -> Result<(), Error> {
        if loads.len() == self.servers.get() as usize {
            Ok(())
        } else {
            Err(Error::SliceLength {
                len: loads.len(),
                servers: self.servers.get(),
            })
        }
    }

    /// The bounded choice for `ns < N` over `words` (see
    /// [`pick_bounded`](Dispatcher::pick_bounded)).
    #[inline(always)]
    fn bounded_member<W: BitWords, T>(
        &self,
        words: W,
        ns: u32,
        slots: &[T],
        load: impl Fn(&T) -> u32 + Copy,
        total: u64,
        factor: BalanceFactor,
    ) -> Result<u32, Error> {
        let (best, best_load, all_up) = self.least_loaded_member_load(words, ns, slots, load)?;
        // Every server up is the common case: no population count (baseline x86-64 has no
        // POPCNT instruction, and the portable one is about 15 instructions).
        let alive = if all_up {
            self.servers.get()
        } else {
            (0..self.available.len())
                .map(|i| words.word(i).count_ones())
                .sum()
        };
        let bound = LoadBound::new(total, factor, alive);
        if bound.admits(best_load) {
            return Ok(best);
        }
        // The least-loaded member is over the bound, so every member is: spill (out of line,
        // so that the common case stays a tight loop; the bound goes by value, in registers).
        self.spill(words, ns, slots, load, bound)
    }

    /// The spill walk of [`bounded_member`](Self::bounded_member): the first server in cyclic
    /// order past the subset of `ns` that `bound` admits. A concurrent availability change
    /// could leave nobody admitted; then the primary keeps the request.
    #[cold]
    #[inline(never)]
    fn spill<W: BitWords, T>(
        &self,
        words: W,
        ns: u32,
        slots: &[T],
        load: impl Fn(&T) -> u32,
        bound: LoadBound,
    ) -> Result<u32, Error> {
        let servers = self.servers.get();
        let mut walk = CyclicScan::new(words, servers, ns, servers, servers);
        let first = walk.next().ok_or(Error::NoServerAvailable)?;
        for _ in 1..self.replication {
            walk.next();
        }
        Ok(walk
            .find(|&s| {
                slots
                    .get(s as usize)
                    .is_some_and(|slot| bound.admits(load(slot)))
            })
            .unwrap_or(first))
    }

    /// Built-in tracker: picks like [`pick`](Dispatcher::pick) using the dispatcher's own
    /// atomic counters, counts one more active connection on the chosen server, and returns a
    /// [`Lease`] that releases it when dropped. Lock-free; concurrent acquires may both see the
    /// same counts and choose the same server, as any load balancer with shared counters does.
    ///
    /// # Errors
    /// [`Error::NoServerAvailable`] if every server is down; [`Error::ActiveCountFull`] if the
    /// chosen server (the least loaded of the subset) already counts `u32::MAX` active
    /// connections. Nothing is counted on error.
    ///
    /// ```
    /// use vibra_hash::{Dispatcher, HashKind};
    ///
    /// let d = Dispatcher::new(4, 2, HashKind::Charsum)?; // "/" -> {3, 0}
    /// let first = d.acquire(b"/")?;
    /// let second = d.acquire(b"/")?;
    /// assert_eq!((first.server(), second.server()), (3, 0));
    /// assert_eq!(d.active(3)?, 1);
    /// drop(first);
    /// assert_eq!(d.active(3)?, 0);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline]
    pub fn acquire(&self, target: &[u8]) -> Result<Lease<'_>, Error> {
        let server = self.acquire_server(target)?;
        Ok(Lease {
            dispatcher: self,
            server,
        })
    }

    /// The C-friendly form of [`acquire`](Dispatcher::acquire): counts the connection and returns
    /// the server, which the caller must later pass to [`release`](Dispatcher::release).
    ///
    /// # Errors
    /// As [`acquire`](Dispatcher::acquire): [`Error::NoServerAvailable`] or
    /// [`Error::ActiveCountFull`], with nothing counted.
    ///
    /// ```
    /// # use vibra_hash::{Dispatcher, HashKind};
    /// let d = Dispatcher::new(8, 2, HashKind::Fast)?;
    /// let s = d.acquire_server(b"/img/logo.gif")?;
    /// assert_eq!(d.active(s)?, 1);
    /// d.release(s)?;
    /// assert_eq!(d.active(s)?, 0);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline(always)]
    pub fn acquire_server(&self, target: &[u8]) -> Result<u32, Error> {
        let server = self.least_loaded_member(
            &*self.available,
            self.namespace_of(target),
            &self.active,
            |a| a.load(Ordering::Relaxed),
        )?;
        self.count(server)?;
        Ok(server)
    }

    /// Counts one more active connection on `server` (`< N`) and in the total.
    #[inline(always)]
    fn count(&self, server: u32) -> Result<(), Error> {
        // A compare-exchange loop rather than fetch_add, so that the count never wraps from
        // u32::MAX to 0: a full server refuses atomically with the increment, and a refusal
        // counts nothing. Uncontended it succeeds on the first exchange.
        self.active[server as usize]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
            .map_err(|_| Error::ActiveCountFull { server })?;
        // The total is at most N * u32::MAX < 2^52: it never wraps. Relaxed, like the
        // counters: a concurrent reader sees it either before or after this connection.
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Ends one active connection on `server` (the explicit path for C callers, and for a
    /// [`Lease`] turned into a plain index with [`Lease::into_server`]).
    ///
    /// # Errors
    /// [`Error::ServerOutOfRange`] if `server >= N`; [`Error::NotAcquired`] if `server` has no
    /// active connection (the counter never underflows).
    ///
    /// ```
    /// use vibra_hash::{Dispatcher, Error, HashKind};
    ///
    /// let d = Dispatcher::new(2, 1, HashKind::Fast)?;
    /// assert_eq!(d.release(1), Err(Error::NotAcquired { server: 1 }));
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn release(&self, server: u32) -> Result<(), Error> {
        self.check_server(server)?;
        self.active[server as usize]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .map_err(|_| Error::NotAcquired { server })?;
        self.total.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }

    /// The built-in tracker's active-connection count of `server`.
    ///
    /// # Errors
    /// [`Error::ServerOutOfRange`] if `server >= N`.
    ///
    /// ```
    /// # use vibra_hash::{Dispatcher, HashKind};
    /// let d = Dispatcher::new(2, 1, HashKind::Fast)?;
    /// assert_eq!(d.active(0)?, 0);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn active(&self, server: u32) -> Result<u32, Error> {
        self.check_server(server)?;
        Ok(self.active[server as usize].load(Ordering::Relaxed))
    }

    #[inline]
    fn check_server(&self, server: u32) -> Result<(), Error> {
        if server < self.servers.get() {
            Ok(())
        } else {
            Err(Error::ServerOutOfRange {
                server,
                servers: self.servers.get(),
            })
        }
    }

    /// The least-loaded member of `subset(ns)` for `ns < N` (SPEC tie-breaking); `slots` has
    /// one entry per server (`N` of them) and `load` reads an entry.
    #[inline(always)]
    fn least_loaded_member<W: BitWords, T>(
        &self,
        words: W,
        ns: u32,
        slots: &[T],
        load: impl Fn(&T) -> u32,
    ) -> Result<u32, Error> {
        self.least_loaded_member_load(words, ns, slots, load)
            .map(|(server, _, _)| server)
    }

    /// [`least_loaded_member`](Self::least_loaded_member) with the winner's load, and whether
    /// every server was seen up (`false` when unknown).
    #[inline(always)]
    fn least_loaded_member_load<W: BitWords, T>(
        &self,
        words: W,
        ns: u32,
        slots: &[T],
        load: impl Fn(&T) -> u32,
    ) -> Result<(u32, u32, bool), Error> {
        let r = self.replication;
        let servers = self.servers.get();
        let offset = ns % 64;
        // Common cases: every member is up, so the subset is the R positions from ns. One load
        // and one mask test replace the general scan, and the members' loads are read as one or
        // two contiguous slices (one bounds check each).
        if servers <= 32 {
            let word = words.word(0);
            if word == self.all_up {
                // Every server up (the common case): the members are the R positions from ns,
                // wrapping with a conditional move. R = 2, the dissertation's setting, without
                // the loop: two loads and a conditional move.
                if r == 2 {
                    let next = if ns + 1 == servers { 0 } else { ns + 1 };
                    if let (Some(a), Some(b)) = (slots.get(ns as usize), slots.get(next as usize)) {
                        // Strict '<': ties stay with the earlier subset position (SPEC 3).
                        let (la, lb) = (load(a), load(b));
                        return Ok(if lb < la {
                            (next, lb, true)
                        } else {
                            (ns, la, true)
                        });
                    }
                }
                if let Some(first) = slots.get(ns as usize) {
                    let mut best = ns;
                    let mut best_load = load(first);
                    for k in 1..r {
                        let s = ns + k;
                        let s = if s >= servers { s - servers } else { s };
                        let Some(slot) = slots.get(s as usize) else {
                            break;
                        };
                        let l = load(slot);
                        if l < best_load {
                            best = s;
                            best_load = l;
                        }
                    }
                    return Ok((best, best_load, true));
                }
            } else {
                // Some server down. The word doubled (bits N..2N repeat bits 0..N, 2N <= 64):
                // bit k of `ahead` says whether position ns + k of the cyclic order (k < N) is
                // up, wrapping past N - 1 to 0 without a branch. The members are its first R
                // set bits, taken with trailing_zeros and "clear lowest bit": no general scan,
                // and the same instructions whichever servers are down.
                let doubled = word | word << servers;
                let mut ahead = (doubled >> ns) & self.all_up;
                let position = |ahead: u64| {
                    let s = ns + ahead.trailing_zeros();
                    if s >= servers { s - servers } else { s }
                };
                if ahead != 0 {
                    let mut best = position(ahead);
                    let rest = ahead & (ahead - 1);
                    if r == 2 && rest != 0 {
                        let next = position(rest);
                        if let (Some(a), Some(b)) =
                            (slots.get(best as usize), slots.get(next as usize))
                        {
                            let (la, lb) = (load(a), load(b));
                            return Ok(if lb < la {
                                (next, lb, false)
                            } else {
                                (best, la, false)
                            });
                        }
                    }
                    if let Some(first) = slots.get(best as usize) {
                        let mut best_load = load(first);
                        for _ in 1..r {
                            ahead &= ahead - 1;
                            if ahead == 0 {
                                break;
                            }
                            let s = position(ahead);
                            let Some(slot) = slots.get(s as usize) else {
                                break;
                            };
                            let l = load(slot);
                            if l < best_load {
                                best = s;
                                best_load = l;
                            }
                        }
                        return Ok((best, best_load, false));
                    }
                }
            }
        } else if offset + r <= 64 && ns + r <= servers {
            // Not wrapping, inside one bitset word.
            let members = u64::MAX >> (64 - r);
            let word = words.word((ns / 64) as usize);
            if (word >> offset) & members == members {
                if let Some((at, l)) = slots
                    .get(ns as usize..(ns + r) as usize)
                    .and_then(|m| first_minimum(m.iter(), &load))
                {
                    return Ok((ns + at, l, false));
                }
            }
        } else if servers <= 64 && ns + r > servers {
            // Wrapping past N - 1 to 0, all servers in one word: members ns..N, then 0..head.
            let tail = servers - ns; // 1..=64
            let head = r - tail; // 1..=ns
            let members = (u64::MAX >> (64 - tail)) << ns | ((1u64 << head) - 1);
            let word = words.word(0);
            if word & members == members {
                if let (Some(end), Some(start)) = (
                    slots.get(ns as usize..servers as usize),
                    slots.get(..head as usize),
                ) {
                    if let Some((at, l)) = first_minimum(end.iter().chain(start), &load) {
                        return Ok((if at < tail { ns + at } else { at - tail }, l, false));
                    }
                }
            }
        }
        let best = least_loaded(self.scan_in(words, ns)?, |s| load(&slots[s as usize]))?;
        Ok((best, load(&slots[best as usize]), false))
    }

    /// The raw cyclic scan of `subset(ns)`.
    #[inline]
    fn scan(&self, ns: u32) -> Result<CyclicScan<&'_ [AtomicU64]>, Error> {
        self.scan_in(&*self.available, ns)
    }

    /// The raw cyclic scan of `subset(ns)` over the availability `words`.
    #[inline]
    fn scan_in<W: BitWords>(&self, words: W, ns: u32) -> Result<CyclicScan<W>, Error> {
        let servers = self.servers.get();
        if ns >= servers {
            return Err(Error::NamespaceOutOfRange {
                namespace: ns,
                servers,
            });
        }
        Ok(CyclicScan::new(
            words,
            servers,
            ns,
            servers,
            self.replication,
        ))
    }
}

/// The position of the first entry with the smallest load (SPEC tie-breaking: strict `<`) and
/// that load, or `None` for no entry.
#[inline(always)]
fn first_minimum<'a, T: 'a>(
    mut slots: impl Iterator<Item = &'a T>,
    load: impl Fn(&T) -> u32,
) -> Option<(u32, u32)> {
    let mut best_load = load(slots.next()?);
    let mut best = 0;
    for (i, slot) in slots.enumerate() {
        let l = load(slot);
        if l < best_load {
            best = i as u32 + 1;
            best_load = l;
        }
    }
    Some((best, best_load))
}

/// The first server with the smallest load, or `NoServerAvailable` for an empty scan.
#[inline]
pub(crate) fn least_loaded(
    mut servers: impl Iterator<Item = u32>,
    load: impl Fn(u32) -> u32,
) -> Result<u32, Error> {
    let mut best = servers.next().ok_or(Error::NoServerAvailable)?;
    let mut best_load = load(best);
    for s in servers {
        let l = load(s);
        // Strict '<': ties stay with the earlier subset position (SPEC section 3).
        if l < best_load {
            best = s;
            best_load = l;
        }
    }
    Ok(best)
}

/// A subset of servers in SPEC order: an allocation-free iterator returned by
/// [`Dispatcher::subset`].
///
/// ```
/// # use vibra_hash::{Dispatcher, HashKind};
/// let d = Dispatcher::new(3, 2, HashKind::Fast)?;
/// let mut subset = d.subset(2)?;
/// assert_eq!(subset.next(), Some(2));
/// assert_eq!(subset.next(), Some(0));
/// assert_eq!(subset.next(), None);
/// # Ok::<(), vibra_hash::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Subset<'a> {
    scan: Scan<'a>,
}

/// The availability a [`Subset`] walks: the dispatcher's own, or a caller's.
#[derive(Debug, Clone)]
enum Scan<'a> {
    Shared(CyclicScan<&'a [AtomicU64]>),
    Given(CyclicScan<GivenWords<'a>>),
}

impl Iterator for Subset<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        match &mut self.scan {
            Scan::Shared(scan) => scan.next(),
            Scan::Given(scan) => scan.next(),
        }
    }
}

/// One active connection counted by the built-in tracker; dropping it releases the connection.
///
/// ```
/// # use vibra_hash::{Dispatcher, HashKind};
/// let d = Dispatcher::new(2, 2, HashKind::Fast)?;
/// {
///     let lease = d.acquire(b"/a")?;
///     assert_eq!(d.active(lease.server())?, 1);
/// }
/// assert_eq!((d.active(0)?, d.active(1)?), (0, 0));
/// # Ok::<(), vibra_hash::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "dropping a Lease releases the connection at once"]
pub struct Lease<'a> {
    dispatcher: &'a Dispatcher,
    server: u32,
}

impl Lease<'_> {
    /// The server this connection goes to.
    ///
    /// ```
    /// # use vibra_hash::{Dispatcher, HashKind};
    /// let d = Dispatcher::new(1, 1, HashKind::Fast)?;
    /// assert_eq!(d.acquire(b"/")?.server(), 0);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    #[inline]
    pub fn server(&self) -> u32 {
        self.server
    }

    /// Keeps the connection counted without the guard, returning the server; release it later
    /// with [`Dispatcher::release`].
    ///
    /// ```
    /// # use vibra_hash::{Dispatcher, HashKind};
    /// let d = Dispatcher::new(1, 1, HashKind::Fast)?;
    /// let s = d.acquire(b"/")?.into_server();
    /// assert_eq!(d.active(s)?, 1);
    /// d.release(s)?;
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn into_server(self) -> u32 {
        let server = self.server;
        core::mem::forget(self);
        server
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // Cannot fail: this lease's own increment is still counted (unless the caller also
        // released it by hand, which the count then simply absorbs without underflow).
        let _ = self.dispatcher.release(self.server);
    }
}

/// The load bound of [`Dispatcher::pick_bounded`], as HAProxy's `hash-balance-factor`: a
/// percentage of the mean load, at least 100.
///
/// ```
/// use vibra_hash::{BalanceFactor, Error};
///
/// assert_eq!(BalanceFactor::new(150)?.percent(), 150);
/// assert_eq!(BalanceFactor::new(99), Err(Error::InvalidBalanceFactor { percent: 99 }));
/// # Ok::<(), vibra_hash::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BalanceFactor(u32);

impl BalanceFactor {
    /// A bound of `percent`% of the mean load.
    ///
    /// # Errors
    /// [`Error::InvalidBalanceFactor`] below 100 (nobody could be eligible) or above 100,000.
    ///
    /// ```
    /// # use vibra_hash::BalanceFactor;
    /// assert!(BalanceFactor::new(125).is_ok());
    /// ```
    pub fn new(percent: u32) -> Result<Self, Error> {
        if (100..=100_000).contains(&percent) {
            Ok(BalanceFactor(percent))
        } else {
            Err(Error::InvalidBalanceFactor { percent })
        }
    }

    /// The percentage.
    ///
    /// ```
    /// # use vibra_hash::BalanceFactor;
    /// assert_eq!(BalanceFactor::new(200)?.percent(), 200);
    /// # Ok::<(), vibra_hash::Error>(())
    /// ```
    pub fn percent(self) -> u32 {
        self.0
    }
}

/// HAProxy's hash-balance-factor bound for one decision: a server with `load` connections may
/// take one more while `load < max(1, ceil(ceil(W / 100) / alive))`, `W = (total + 1) * f`.
/// For an integer load that is `W > 100 * load * alive` (load 0 always passes: `W >= 100`).
/// The right side is below 2^59 (load < 2^32, alive <= 2^20), so `W` saturated at `u64::MAX`
/// compares exactly as `W` would: no division and no u128, one multiplication per test.
#[derive(Clone, Copy)]
struct LoadBound {
    /// `(total + 1) * f`, saturated.
    weighted: u64,
    /// `100 * alive`.
    hundred_alive: u64,
}

impl LoadBound {
    #[inline(always)]
    fn new(total: u64, factor: BalanceFactor, alive: u32) -> Self {
        LoadBound {
            weighted: total
                .saturating_add(1)
                .saturating_mul(u64::from(factor.percent())),
            hundred_alive: 100 * u64::from(alive),
        }
    }

    /// Whether a server with `load` connections is under the bound.
    #[inline(always)]
    fn admits(self, load: u32) -> bool {
        self.weighted > self.hundred_alive * u64::from(load)
    }
}

#[cfg(test)]
impl Dispatcher {
    /// Sets the tracker's count of `server` directly: the only way to reach `u32::MAX` active
    /// connections in a test.
    fn set_active(&self, server: u32, n: u32) {
        let old = self.active[server as usize].swap(n, Ordering::Relaxed);
        self.total.fetch_add(u64::from(n), Ordering::Relaxed);
        self.total.fetch_sub(u64::from(old), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server at `u32::MAX` active connections refuses one more (the counter never wraps to
    /// 0), with a typed error and nothing counted, through both `acquire` and `acquire_server`.
    #[test]
    fn acquire_at_the_maximum_count_is_an_error_and_changes_nothing() {
        let d = Dispatcher::new(1, 1, HashKind::Fast).unwrap();
        d.set_active(0, u32::MAX);
        assert_eq!(
            d.acquire_server(b"/a"),
            Err(Error::ActiveCountFull { server: 0 })
        );
        assert_eq!(
            d.acquire(b"/a").map(Lease::into_server),
            Err(Error::ActiveCountFull { server: 0 })
        );
        assert_eq!(d.active(0), Ok(u32::MAX));
        // One below the maximum: the last connection is still counted, then refused.
        d.set_active(0, u32::MAX - 1);
        assert_eq!(d.acquire_server(b"/a"), Ok(0));
        assert_eq!(d.active(0), Ok(u32::MAX));
        assert!(d.acquire_server(b"/a").is_err());
        d.release(0).unwrap();
        assert_eq!(d.active(0), Ok(u32::MAX - 1));

        // Only a full least-loaded member is refused: a subset member below the maximum wins.
        let d = Dispatcher::new(4, 2, HashKind::Charsum).unwrap(); // "/" -> {3, 0}
        d.set_active(3, u32::MAX);
        assert_eq!(d.acquire_server(b"/"), Ok(0));
        d.set_active(0, u32::MAX);
        assert_eq!(
            d.acquire_server(b"/"),
            Err(Error::ActiveCountFull { server: 3 })
        );
        assert_eq!((d.active(3), d.active(0)), (Ok(u32::MAX), Ok(u32::MAX)));
        assert_eq!((d.active(1), d.active(2)), (Ok(0), Ok(0)));
    }

    /// From `u32::MAX - k`, concurrent acquires on several threads count exactly `k` more and
    /// refuse the rest: the refusal is atomic with the increment, however they interleave.
    #[test]
    fn concurrent_acquires_stop_exactly_at_the_maximum_count() {
        let d = Dispatcher::new(1, 1, HashKind::Fast).unwrap();
        let k = 5;
        d.set_active(0, u32::MAX - k);
        let granted: u32 = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..4)
                            .filter(|_| match d.acquire_server(b"/x") {
                                Ok(_) => true,
                                Err(e) => {
                                    assert_eq!(e, Error::ActiveCountFull { server: 0 });
                                    false
                                }
                            })
                            .count() as u32
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(granted, k);
        assert_eq!(d.active(0), Ok(u32::MAX));
    }

    /// Every fast path of `least_loaded_member` (one doubled word for N <= 32, one word without
    /// wrapping) picks what the general cyclic scan picks, for every sub-namespace.
    #[test]
    fn least_loaded_fast_paths_agree_with_the_general_scan() {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for n in [
            1u32, 2, 3, 5, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 130,
        ] {
            for r in 1..=n.min(5) {
                for trial in 0..12 {
                    let d = Dispatcher::new(n, r, HashKind::Fast).unwrap();
                    if trial > 0 {
                        for s in 0..n {
                            if next() % 5 == 0 {
                                d.set_available(s, false).unwrap();
                            }
                        }
                    }
                    let loads: Vec<u32> = (0..n).map(|_| (next() % 4) as u32).collect();
                    for ns in 0..n {
                        let want = least_loaded(d.scan(ns).unwrap(), |s| loads[s as usize]);
                        let got = d.least_loaded_member(&*d.available, ns, &loads, |&l| l);
                        assert_eq!(got, want, "n={n} r={r} ns={ns} trial={trial}");
                    }
                }
            }
        }
    }
}
