//! LARD and LARD/R, locality-aware request distribution (Pai et al., ASPLOS'98), as the
//! dissertation compares them (sections 3.5 and 4.3.2): a per-object dispatching history in
//! the front-end. The history is what URL hashing avoids: it grows with every distinct object
//! (see [`Lard::history_bytes`]) and every request looks it up.
//!
//! Failures follow section 4.3.2's second approach: a failed server is treated as deceased and
//! entries are invalidated when referenced; a server that comes back is a new incarnation
//! (empty cache), so entries naming its old incarnation stay invalid.

use core::hash::BuildHasher;
use core::mem::size_of;
use core::time::Duration;
use std::collections::HashMap;
use std::hash::RandomState;

use super::{Placement, Selection, check_len};
use crate::Error;
use vibra_hash::Error as HashError;
use vibra_hash::{Availability, dispatch_key};

/// LARD's parameters: the load thresholds (active connections) and LARD/R's shrink period K.
///
/// ```
/// use std::time::Duration;
/// use vibra_baselines::LardParams;
///
/// let p = LardParams::PAI_ASPLOS98;
/// assert_eq!((p.t_low(), p.t_high(), p.k()), (25, 65, Duration::from_secs(20)));
/// assert!(LardParams::new(65, 25, Duration::ZERO).is_err());
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LardParams {
    t_low: u32,
    t_high: u32,
    k: Duration,
}

impl LardParams {
    /// The published parameters: T_low = 25, T_high = 65, K = 20 s.
    pub const PAI_ASPLOS98: LardParams = LardParams {
        t_low: 25,
        t_high: 65,
        k: Duration::from_secs(20),
    };

    /// Custom thresholds and shrink period.
    ///
    /// # Errors
    /// [`Error::InvalidThresholds`] unless `t_low < t_high`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use vibra_baselines::LardParams;
    /// assert!(LardParams::new(10, 30, Duration::from_secs(5)).is_ok());
    /// ```
    pub fn new(t_low: u32, t_high: u32, k: Duration) -> Result<Self, Error> {
        if t_low < t_high {
            Ok(LardParams { t_low, t_high, k })
        } else {
            Err(Error::InvalidThresholds { t_low, t_high })
        }
    }

    /// T_low: a server below it is underloaded.
    ///
    /// ```
    /// # use vibra_baselines::LardParams;
    /// assert_eq!(LardParams::PAI_ASPLOS98.t_low(), 25);
    /// ```
    pub fn t_low(&self) -> u32 {
        self.t_low
    }

    /// T_high: a server above it is overloaded.
    ///
    /// ```
    /// # use vibra_baselines::LardParams;
    /// assert_eq!(LardParams::PAI_ASPLOS98.t_high(), 65);
    /// ```
    pub fn t_high(&self) -> u32 {
        self.t_high
    }

    /// K: LARD/R removes a replica when a set has not changed for this long.
    ///
    /// ```
    /// # use vibra_baselines::LardParams;
    /// assert_eq!(LardParams::PAI_ASPLOS98.k().as_secs(), 20);
    /// ```
    pub fn k(&self) -> Duration {
        self.k
    }

    /// Pai et al.'s rebalancing test for the chosen server's load `n` and the cluster's least
    /// load `min`.
    #[inline]
    fn should_move(&self, n: u32, min: u32) -> bool {
        // 2 T_high in u64: T_high may be anything up to u32::MAX.
        (n > self.t_high && min < self.t_low) || u64::from(n) >= 2 * u64::from(self.t_high)
    }
}

/// A server incarnation: entries naming an older incarnation are stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Incarnation {
    server: u32,
    epoch: u32,
}

/// Availability plus incarnation numbers, shared by both LARD variants.
#[derive(Debug, Clone)]
struct Cluster {
    up: Availability,
    epochs: Vec<u32>,
}

impl Cluster {
    fn new(servers: u32) -> Result<Self, Error> {
        Ok(Cluster {
            up: Availability::all_up(servers)?,
            epochs: vec![0; servers as usize],
        })
    }

    #[inline]
    fn valid(&self, i: Incarnation) -> bool {
        self.up.is_up(i.server) && self.epochs[i.server as usize] == i.epoch
    }

    #[inline]
    fn incarnation(&self, server: u32) -> Incarnation {
        Incarnation {
            server,
            epoch: self.epochs[server as usize],
        }
    }

    #[inline]
    fn least_loaded(&self, loads: &[u32]) -> Result<u32, Error> {
        self.up
            .iter()
            .min_by_key(|&s| loads[s as usize])
            .ok_or_else(|| HashError::NoServerAvailable.into())
    }

    fn set_available(&mut self, server: u32, available: bool) -> Result<(), Error> {
        let was = server < self.up.servers() && self.up.is_up(server);
        self.up.set(server, available)?;
        if was && !available {
            let e = &mut self.epochs[server as usize];
            *e = e.wrapping_add(1);
        }
        Ok(())
    }
}

/// Heap bytes of a `HashMap<Box<[u8]>, V>`: the table (slot + control byte per bucket, as in
/// hashbrown) plus the keys. An estimate that ignores allocator rounding.
fn table_bytes<V, S>(history: &HashMap<Box<[u8]>, V, S>) -> usize {
    history.capacity() * (size_of::<(Box<[u8]>, V)>() + 1)
        + history.keys().map(|k| k.len()).sum::<usize>()
}

/// LARD: each object is bound to one server, chosen least-loaded on first sight and moved to
/// the least-loaded server when its server is overloaded (load > T_high while some server is
/// below T_low, or load >= 2 T_high).
///
/// The history's hasher is a type parameter: `RandomState` (std's SipHash) by default, or any
/// faster `BuildHasher` (the benchmarks use `foldhash`).
///
/// ```
/// use std::time::Duration;
/// use vibra_baselines::{Lard, LardParams, Selection};
///
/// let mut lard = Lard::new(3, LardParams::PAI_ASPLOS98)?;
/// let t = Duration::ZERO;
/// assert_eq!(lard.select(b"/a.gif", &[5, 0, 3], t)?, 1); // least loaded on first sight
/// assert_eq!(lard.select(b"/a.gif", &[5, 40, 3], t)?, 1); // sticks below T_high
/// assert_eq!(lard.select(b"/a.gif", &[5, 70, 3], t)?, 2); // overloaded while 2 is under T_low
/// assert_eq!(lard.history_len(), 1);
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Lard<S = RandomState> {
    params: LardParams,
    cluster: Cluster,
    history: HashMap<Box<[u8]>, Incarnation, S>,
}

impl Lard {
    /// LARD over `servers` servers with std's default hasher.
    ///
    /// # Errors
    /// [`HashError::InvalidServerCount`] unless `1 <= servers <= Dispatcher::MAX_SERVERS`.
    ///
    /// ```
    /// # use vibra_baselines::{Lard, LardParams};
    /// assert!(Lard::new(0, LardParams::PAI_ASPLOS98).is_err());
    /// ```
    pub fn new(servers: u32, params: LardParams) -> Result<Self, Error> {
        Self::with_hasher(servers, params, RandomState::new())
    }
}

impl<S: BuildHasher> Lard<S> {
    /// LARD with a chosen history hasher.
    ///
    /// # Errors
    /// As [`Lard::new`].
    ///
    /// ```
    /// # use std::hash::RandomState;
    /// # use vibra_baselines::{Lard, LardParams};
    /// let lard = Lard::with_hasher(4, LardParams::PAI_ASPLOS98, RandomState::new())?;
    /// assert_eq!(lard.history_len(), 0);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    pub fn with_hasher(servers: u32, params: LardParams, hasher: S) -> Result<Self, Error> {
        Ok(Lard {
            params,
            cluster: Cluster::new(servers)?,
            history: HashMap::with_hasher(hasher),
        })
    }

    /// The number of objects in the history.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use vibra_baselines::{Lard, LardParams, Selection};
    /// let mut lard = Lard::new(2, LardParams::PAI_ASPLOS98)?;
    /// lard.select(b"/a?x=1", &[0, 0], Duration::ZERO)?;
    /// lard.select(b"/a?x=2", &[0, 0], Duration::ZERO)?;
    /// assert_eq!(lard.history_len(), 1);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Estimated heap bytes of the history (table slots, control bytes and key bytes; allocator
    /// rounding ignored). URL hashing's equivalent is 0.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use vibra_baselines::{Lard, LardParams, Selection};
    /// let mut lard = Lard::new(2, LardParams::PAI_ASPLOS98)?;
    /// lard.select(b"/index.html", &[0, 0], Duration::ZERO)?;
    /// assert!(lard.history_bytes() >= "/index.html".len());
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    pub fn history_bytes(&self) -> usize {
        table_bytes(&self.history)
    }
}

impl<S: BuildHasher> Selection for Lard<S> {
    fn name(&self) -> &'static str {
        "lard"
    }

    fn servers(&self) -> u32 {
        self.cluster.up.servers()
    }

    #[inline]
    fn select(&mut self, target: &[u8], loads: &[u32], _now: Duration) -> Result<u32, Error> {
        check_len(loads.len(), self.cluster.up.servers())?;
        let key = dispatch_key(target);
        if let Some(entry) = self.history.get_mut(key) {
            if self.cluster.valid(*entry) {
                let n = loads[entry.server as usize];
                // The least load is only needed when n is above T_high.
                if n <= self.params.t_high {
                    return Ok(entry.server);
                }
                let best = self.cluster.least_loaded(loads)?;
                if self.params.should_move(n, loads[best as usize]) {
                    *entry = self.cluster.incarnation(best);
                }
                return Ok(entry.server);
            }
            let best = self.cluster.least_loaded(loads)?;
            *entry = self.cluster.incarnation(best);
            return Ok(best);
        }
        let best = self.cluster.least_loaded(loads)?;
        self.history
            .insert(key.into(), self.cluster.incarnation(best));
        Ok(best)
    }

    fn set_available(&mut self, server: u32, available: bool) -> Result<(), Error> {
        self.cluster.set_available(server, available)
    }
}

impl<S: BuildHasher> Placement for Lard<S> {
    fn holders(&self, target: &[u8], out: &mut Vec<u32>) -> Result<(), Error> {
        if self.cluster.up.count() == 0 {
            return Err(HashError::NoServerAvailable.into());
        }
        if let Some(&e) = self.history.get(dispatch_key(target)) {
            if self.cluster.valid(e) {
                out.push(e.server);
            }
        }
        Ok(())
    }
}

/// LARD/R's per-object replica set.
#[derive(Debug, Clone)]
struct ReplicaSet {
    members: Vec<Incarnation>,
    last_change: Duration,
}

/// LARD/R: each object has a *set* of servers and goes to its least-loaded member. The set
/// grows by the cluster's least-loaded server when even its least-loaded member is overloaded
/// (LARD's test), and loses its most-loaded member when it has more than one and has not
/// changed for K.
///
/// ```
/// use std::time::Duration;
/// use vibra_baselines::{LardParams, LardR, Selection};
///
/// let mut lr = LardR::new(3, LardParams::PAI_ASPLOS98)?;
/// let s = Duration::from_secs;
/// assert_eq!(lr.select(b"/hot", &[0, 1, 1], s(0))?, 0);
/// assert_eq!(lr.select(b"/hot", &[70, 1, 1], s(1))?, 1); // grows to {0, 1}
/// assert_eq!(lr.replicas(b"/hot"), vec![0, 1]);
/// assert_eq!(lr.select(b"/hot", &[30, 10, 1], s(30))?, 1); // shrinks: 0 leaves after K
/// assert_eq!(lr.replicas(b"/hot"), vec![1]);
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LardR<S = RandomState> {
    params: LardParams,
    cluster: Cluster,
    history: HashMap<Box<[u8]>, ReplicaSet, S>,
}

impl LardR {
    /// LARD/R over `servers` servers with std's default hasher.
    ///
    /// # Errors
    /// [`HashError::InvalidServerCount`] unless `1 <= servers <= Dispatcher::MAX_SERVERS`.
    ///
    /// ```
    /// # use vibra_baselines::{LardParams, LardR};
    /// assert!(LardR::new(4, LardParams::PAI_ASPLOS98).is_ok());
    /// ```
    pub fn new(servers: u32, params: LardParams) -> Result<Self, Error> {
        Self::with_hasher(servers, params, RandomState::new())
    }
}

impl<S: BuildHasher> LardR<S> {
    /// LARD/R with a chosen history hasher.
    ///
    /// # Errors
    /// As [`LardR::new`].
    ///
    /// ```
    /// # use std::hash::RandomState;
    /// # use vibra_baselines::{LardParams, LardR};
    /// assert!(LardR::with_hasher(4, LardParams::PAI_ASPLOS98, RandomState::new()).is_ok());
    /// ```
    pub fn with_hasher(servers: u32, params: LardParams, hasher: S) -> Result<Self, Error> {
        Ok(LardR {
            params,
            cluster: Cluster::new(servers)?,
            history: HashMap::with_hasher(hasher),
        })
    }

    /// The current (valid) replica set of a target's object, in the order members joined.
    ///
    /// ```
    /// # use vibra_baselines::{LardParams, LardR};
    /// let lr = LardR::new(4, LardParams::PAI_ASPLOS98)?;
    /// assert!(lr.replicas(b"/never-seen").is_empty());
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    pub fn replicas(&self, target: &[u8]) -> Vec<u32> {
        self.history
            .get(dispatch_key(target))
            .map(|set| {
                set.members
                    .iter()
                    .filter(|m| self.cluster.valid(**m))
                    .map(|m| m.server)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The number of objects in the history.
    ///
    /// ```
    /// # use vibra_baselines::{LardParams, LardR};
    /// assert_eq!(LardR::new(4, LardParams::PAI_ASPLOS98)?.history_len(), 0);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Estimated heap bytes of the history, replica vectors included.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use vibra_baselines::{LardParams, LardR, Selection};
    /// let mut lr = LardR::new(2, LardParams::PAI_ASPLOS98)?;
    /// lr.select(b"/x", &[0, 0], Duration::ZERO)?;
    /// assert!(lr.history_bytes() > 0);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    pub fn history_bytes(&self) -> usize {
        table_bytes(&self.history)
            + self
                .history
                .values()
                .map(|s| s.members.capacity() * size_of::<Incarnation>())
                .sum::<usize>()
    }
}

impl<S: BuildHasher> Selection for LardR<S> {
    fn name(&self) -> &'static str {
        "lard/r"
    }

    fn servers(&self) -> u32 {
        self.cluster.up.servers()
    }

    fn select(&mut self, target: &[u8], loads: &[u32], now: Duration) -> Result<u32, Error> {
        check_len(loads.len(), self.cluster.up.servers())?;
        let key = dispatch_key(target);
        let cluster = &self.cluster;
        let Some(set) = self.history.get_mut(key) else {
            let best = cluster.least_loaded(loads)?;
            self.history.insert(
                key.into(),
                ReplicaSet {
                    members: vec![cluster.incarnation(best)],
                    last_change: now,
                },
            );
            return Ok(best);
        };
        let load = |m: &Incarnation| loads[m.server as usize];
        let before = set.members.len();
        set.members.retain(|m| cluster.valid(*m));
        let mut changed = set.members.len() != before;
        if set.members.is_empty() {
            let best = cluster.least_loaded(loads)?;
            set.members.push(cluster.incarnation(best));
            set.last_change = now;
            return Ok(best);
        }
        // n: first least-loaded member; m: last most-loaded member (distinct when |set| > 1).
        let (mut n, mut m) = (0, 0);
        for (i, member) in set.members.iter().enumerate() {
            if load(member) < load(&set.members[n]) {
                n = i;
            }
            if load(member) >= load(&set.members[m]) {
                m = i;
            }
        }
        let mut chosen = set.members[n].server;
        if loads[chosen as usize] > self.params.t_high {
            let best = cluster.least_loaded(loads)?;
            if self
                .params
                .should_move(loads[chosen as usize], loads[best as usize])
                && !set.members.iter().any(|x| x.server == best)
            {
                set.members.push(cluster.incarnation(best));
                chosen = best;
                changed = true;
            }
        }
        if set.members.len() > 1 && now.saturating_sub(set.last_change) > self.params.k {
            // m was computed before any growth, so it never names a just-added server, and it
            // differs from n because |set| > 1; the fallback below only guards the invariant.
            set.members.remove(m);
            changed = true;
            if !set.members.iter().any(|x| x.server == chosen) {
                chosen = set.members[0].server;
            }
        }
        if changed {
            set.last_change = now;
        }
        Ok(chosen)
    }

    fn set_available(&mut self, server: u32, available: bool) -> Result<(), Error> {
        self.cluster.set_available(server, available)
    }
}

impl<S: BuildHasher> Placement for LardR<S> {
    fn holders(&self, target: &[u8], out: &mut Vec<u32>) -> Result<(), Error> {
        if self.cluster.up.count() == 0 {
            return Err(HashError::NoServerAvailable.into());
        }
        out.extend(self.replicas(target));
        Ok(())
    }
}
