//! One interface for every dispatching policy, so that comparisons are like for like: the
//! URL-hash [`Dispatcher`] (plain or [`BoundedLoad`]) and the baselines of the dissertation's
//! evaluation ([`RoundRobin`], [`LeastConnection`], [`NaiveRepartition`], [`Lard`], [`LardR`])
//! plus an nginx-compatible [`KetamaRing`].
//!
//! Policies never read a clock or a load counter of their own: the caller passes the
//! per-server active-connection counts and the current time, so simulations and benchmarks are
//! deterministic.

mod ketama;
mod lard;
mod naive;
mod simple;

use core::time::Duration;

pub use ketama::KetamaRing;
pub use lard::{Lard, LardParams, LardR};
pub use naive::NaiveRepartition;
pub use simple::{LeastConnection, RoundRobin};

use crate::Error;
use vibra_hash::{BalanceFactor, Dispatcher, Error as HashError};

/// A request-dispatching policy: picks the server for each request.
///
/// `loads[s]` is server `s`'s number of active connections (one entry per server) and `now`
/// the time since any fixed epoch; only [`LardR`] reads it. Implementations never allocate on
/// the decision path except where the policy itself must remember something new (LARD's
/// history gains an entry for an object it has never seen).
///
/// ```
/// use std::time::Duration;
/// use vibra_hash::{Dispatcher, HashKind};
/// use vibra_baselines::{LeastConnection, RoundRobin, Selection};
///
/// let mut policies: Vec<Box<dyn Selection>> = vec![
///     Box::new(RoundRobin::new(4)?),
///     Box::new(LeastConnection::new(4)?),
///     Box::new(Dispatcher::new(4, 2, HashKind::Fast)?),
/// ];
/// let loads = [3, 0, 2, 1];
/// for p in &mut policies {
///     let s = p.select(b"/index.html", &loads, Duration::ZERO)?;
///     println!("{}: server {s}", p.name());
/// }
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
pub trait Selection {
    /// A short name for reports, e.g. `"round-robin"` or `"url-hash/fast"`.
    ///
    /// ```
    /// use vibra_baselines::{RoundRobin, Selection};
    /// assert_eq!(RoundRobin::new(2)?.name(), "round-robin");
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    fn name(&self) -> &'static str;

    /// The number of servers N.
    ///
    /// ```
    /// use vibra_baselines::{LeastConnection, Selection};
    /// assert_eq!(LeastConnection::new(7)?.servers(), 7);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    fn servers(&self) -> u32;

    /// Chooses the server for one request.
    ///
    /// # Errors
    /// [`HashError::SliceLength`] if `loads` does not have N entries; [`HashError::NoServerAvailable`]
    /// if no server can take the request. Nothing changes on error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use vibra_hash::{Dispatcher, HashKind};
    /// use vibra_baselines::Selection;
    ///
    /// let mut d = Dispatcher::new(4, 2, HashKind::Charsum)?; // "/" -> {3, 0}
    /// assert_eq!(d.select(b"/", &[0, 0, 0, 1], Duration::ZERO)?, 0);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    fn select(&mut self, target: &[u8], loads: &[u32], now: Duration) -> Result<u32, Error>;

    /// Marks a server up or down.
    ///
    /// # Errors
    /// [`HashError::ServerOutOfRange`] if `server >= N` (nothing changes).
    ///
    /// ```
    /// use std::time::Duration;
    /// use vibra_baselines::{LeastConnection, Selection};
    ///
    /// let mut lc = LeastConnection::new(2)?;
    /// lc.set_available(0, false)?;
    /// assert_eq!(lc.select(b"/", &[0, 9], Duration::ZERO)?, 1);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    fn set_available(&mut self, server: u32, available: bool) -> Result<(), Error>;
}

/// A policy that can say, without serving a request, which servers hold a key's objects (its
/// *cover* in SPEC section 3). This is what [`locality_loss`](crate::locality_loss) compares.
///
/// ```
/// use vibra_hash::{Dispatcher, HashKind};
/// use vibra_baselines::Placement;
///
/// let d = Dispatcher::new(4, 2, HashKind::Charsum)?;
/// let mut holders = Vec::new();
/// d.holders(b"/", &mut holders)?;
/// assert_eq!(holders, vec![3, 0]);
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
pub trait Placement {
    /// Appends the servers that hold the objects of `target`'s dispatch key to `out` (nothing
    /// when the policy holds it nowhere, e.g. an object LARD has never seen).
    ///
    /// # Errors
    /// [`HashError::NoServerAvailable`] when no server is available.
    ///
    /// ```
    /// use vibra_baselines::{KetamaRing, Placement};
    ///
    /// let ring = KetamaRing::with_servers(4)?;
    /// let mut held = Vec::new();
    /// ring.holders(b"/index.html", &mut held)?;
    /// assert_eq!(held.len(), 1);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    fn holders(&self, target: &[u8], out: &mut Vec<u32>) -> Result<(), Error>;
}

/// Checks a per-server slice length.
#[inline]
pub(crate) fn check_len(len: usize, servers: u32) -> Result<(), Error> {
    if len == servers as usize {
        Ok(())
    } else {
        Err(HashError::SliceLength { len, servers }.into())
    }
}

/// Checks a server count for the baselines (same range as [`Dispatcher`]).
pub(crate) fn check_servers(servers: u32) -> Result<(), Error> {
    if (1..=Dispatcher::MAX_SERVERS).contains(&servers) {
        Ok(())
    } else {
        Err(HashError::InvalidServerCount {
            servers: servers as usize,
            max: Dispatcher::MAX_SERVERS as usize,
        }
        .into())
    }
}

impl Selection for Dispatcher {
    fn name(&self) -> &'static str {
        match self.hash() {
            vibra_hash::HashKind::Charsum => "url-hash/charsum",
            vibra_hash::HashKind::Md5 => "url-hash/md5",
            vibra_hash::HashKind::Sha1 => "url-hash/sha1",
            vibra_hash::HashKind::Fast => "url-hash/fast",
        }
    }

    fn servers(&self) -> u32 {
        Dispatcher::servers(self)
    }

    #[inline]
    fn select(&mut self, target: &[u8], loads: &[u32], _now: Duration) -> Result<u32, Error> {
        Ok(self.pick(target, loads)?)
    }

    fn set_available(&mut self, server: u32, available: bool) -> Result<(), Error> {
        Ok(Dispatcher::set_available(self, server, available)?)
    }
}

impl Placement for Dispatcher {
    fn holders(&self, target: &[u8], out: &mut Vec<u32>) -> Result<(), Error> {
        out.extend(self.subset(self.namespace(target))?);
        Ok(())
    }
}

/// The URL-hash dispatcher with a load bound ([`Dispatcher::pick_bounded`]), as a policy.
///
/// ```
/// use std::time::Duration;
/// use vibra_hash::{BalanceFactor, Dispatcher, HashKind};
/// use vibra_baselines::{BoundedLoad, Selection};
///
/// let d = Dispatcher::new(4, 2, HashKind::Charsum)?;
/// let mut p = BoundedLoad::new(d, BalanceFactor::new(125)?);
/// assert_eq!(p.select(b"/", &[9, 0, 0, 9], Duration::ZERO)?, 1);
/// # Ok::<(), vibra_baselines::Error>(())
/// ```
#[derive(Debug)]
pub struct BoundedLoad {
    dispatcher: Dispatcher,
    factor: BalanceFactor,
}

impl BoundedLoad {
    /// Wraps a dispatcher with a load bound.
    ///
    /// ```
    /// # use vibra_hash::{BalanceFactor, Dispatcher, HashKind};
    /// # use vibra_baselines::BoundedLoad;
    /// let p = BoundedLoad::new(Dispatcher::new(8, 2, HashKind::Fast)?, BalanceFactor::new(150)?);
    /// assert_eq!(p.dispatcher().servers(), 8);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    pub fn new(dispatcher: Dispatcher, factor: BalanceFactor) -> Self {
        BoundedLoad { dispatcher, factor }
    }

    /// The wrapped dispatcher.
    ///
    /// ```
    /// # use vibra_hash::{BalanceFactor, Dispatcher, HashKind};
    /// # use vibra_baselines::BoundedLoad;
    /// let p = BoundedLoad::new(Dispatcher::new(8, 2, HashKind::Fast)?, BalanceFactor::new(150)?);
    /// assert_eq!(p.dispatcher().replication(), 2);
    /// # Ok::<(), vibra_baselines::Error>(())
    /// ```
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }
}

impl Selection for BoundedLoad {
    fn name(&self) -> &'static str {
        "url-hash/bounded"
    }

    fn servers(&self) -> u32 {
        self.dispatcher.servers()
    }

    #[inline]
    fn select(&mut self, target: &[u8], loads: &[u32], _now: Duration) -> Result<u32, Error> {
        // A policy gets only the loads, so it sums them; a front end keeps the total beside
        // its counts and passes it (what `Dispatcher::pick_bounded` asks for).
        let total = loads.iter().map(|&l| u64::from(l)).sum();
        Ok(self
            .dispatcher
            .pick_bounded(target, loads, total, self.factor)?)
    }

    fn set_available(&mut self, server: u32, available: bool) -> Result<(), Error> {
        Ok(self.dispatcher.set_available(server, available)?)
    }
}
