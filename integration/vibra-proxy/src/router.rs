//! The routing decision of every request: the policy, the proxy's own per-server
//! active-request counts and its health view. Owns no socket and no clock but the one LARD/R
//! reads; the Pingora glue (`server`) calls it from `upstream_peer`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use vibra_baselines::{Lard, LardParams, LardR, LeastConnection, RoundRobin, Selection};
use vibra_hash::{Dispatcher, HashKind};

use crate::{Policy, ProxyError};

/// Per-request routing over N servers: picks a server under the proxy's current health view
/// and counts the request as active on it until the returned [`Active`] is dropped.
///
/// For the URL-hash policies the pick is vibra-hash's
/// [`Dispatcher::pick_with`](vibra_hash::Dispatcher::pick_with): the least-loaded member of
/// the URL's subset under this router's availability bitset, both read per call, so the
/// dispatcher's own state is never written per request (nor ever: health lives here). The
/// comparison policies (vibra-baselines) take `&mut self`, so they run under a mutex, and
/// learn a health change the first time they are asked after it.
///
/// Counts are taken when the request is routed (it is about to be sent upstream) and given
/// back when its [`Active`] drops, on every path: success, upstream error, client gone.
///
/// ```
/// use std::sync::Arc;
/// use vibra_hash::HashKind;
/// use vibra_proxy::{Policy, Router};
///
/// let router = Arc::new(Router::new(4, 2, HashKind::Charsum, Policy::UrlHash)?);
/// // charsum("/") = 47 and 47 mod 4 = 3: subset {3, 0}.
/// let first = router.route(b"/")?;
/// assert_eq!(first.server(), 3);
/// // Server 3 now has one active request, so the next goes to 0.
/// assert_eq!(router.route(b"/")?.server(), 0);
/// drop(first);
/// router.set_up(3, false);
/// assert_eq!(router.route(b"/")?.server(), 0); // 3 is down: subset {0, 1}
/// assert_eq!(router.active(0), 0);
/// # Ok::<(), vibra_proxy::ProxyError>(())
/// ```
#[derive(Debug)]
pub struct Router {
    servers: u32,
    decide: Decide,
    /// Active requests per server (routed, not yet ended).
    active: Box<[AtomicU32]>,
    /// Bit `s % 64` of word `s / 64` set = server `s` up (vibra-hash's `Availability` words).
    up: Box<[AtomicU64]>,
}

#[derive(Debug)]
enum Decide {
    UrlHash(Dispatcher),
    Baseline(Mutex<Baseline>),
}

struct Baseline {
    selection: Box<dyn Selection + Send>,
    /// The availability words this policy was last told (diffed on each decision).
    told: Vec<u64>,
    epoch: Instant,
}

impl std::fmt::Debug for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Baseline")
            .field("policy", &self.selection.name())
            .field("told", &self.told)
            .finish()
    }
}

impl Router {
    /// The most servers a router takes: per-request snapshots of loads and availability live
    /// on the stack in fixed buffers of this size (4 KiB of counts).
    pub const MAX_SERVERS: usize = 1024;

    /// A router over `servers` servers, all up, none busy. `replication` and `hash` matter only
    /// for the URL-hash policies.
    ///
    /// # Errors
    /// [`ProxyError::NoBackends`] for 0 servers, [`ProxyError::TooManyBackends`] above
    /// [`MAX_SERVERS`](Router::MAX_SERVERS), [`ProxyError::ReplicationTooLow`] for
    /// `url-hash/r` with R = 1, and vibra-hash's error for an R outside `1..=N`.
    ///
    /// ```
    /// use vibra_hash::HashKind;
    /// use vibra_proxy::{Policy, ProxyError, Router};
    /// assert!(Router::new(4, 1, HashKind::Fast, Policy::RoundRobin).is_ok());
    /// assert!(matches!(
    ///     Router::new(4, 1, HashKind::Fast, Policy::UrlHashR),
    ///     Err(ProxyError::ReplicationTooLow { replication: 1 })
    /// ));
    /// assert!(Router::new(4, 5, HashKind::Fast, Policy::UrlHash).is_err());
    /// ```
    pub fn new(
        servers: u32,
        replication: u32,
        hash: HashKind,
        policy: Policy,
    ) -> Result<Self, ProxyError> {
        let n = servers as usize;
        if n == 0 {
            return Err(ProxyError::NoBackends);
        }
        if n > Self::MAX_SERVERS {
            return Err(ProxyError::TooManyBackends {
                servers: n,
                max: Self::MAX_SERVERS,
            });
        }
        let baseline = |selection: Box<dyn Selection + Send>| {
            Decide::Baseline(Mutex::new(Baseline {
                selection,
                told: all_up_words(servers),
                epoch: Instant::now(),
            }))
        };
        let decide = match policy {
            Policy::UrlHashR if replication < 2 => {
                return Err(ProxyError::ReplicationTooLow { replication });
            }
            Policy::UrlHash | Policy::UrlHashR => {
                Decide::UrlHash(Dispatcher::new(servers, replication, hash)?)
            }
            Policy::Lard => baseline(Box::new(Lard::new(servers, LardParams::PAI_ASPLOS98)?)),
            Policy::LardR => baseline(Box::new(LardR::new(servers, LardParams::PAI_ASPLOS98)?)),
            Policy::LeastConn => baseline(Box::new(LeastConnection::new(servers)?)),
            Policy::RoundRobin => baseline(Box::new(RoundRobin::new(servers)?)),
        };
        Ok(Router {
            servers,
            decide,
            active: (0..n).map(|_| AtomicU32::new(0)).collect(),
            up: all_up_words(servers)
                .into_iter()
                .map(AtomicU64::new)
                .collect(),
        })
    }

    /// The server count N.
    ///
    /// ```
    /// # use vibra_proxy::{Policy, Router};
    /// let r = Router::new(3, 1, vibra_hash::HashKind::Fast, Policy::LeastConn)?;
    /// assert_eq!(r.servers(), 3);
    /// # Ok::<(), vibra_proxy::ProxyError>(())
    /// ```
    pub fn servers(&self) -> u32 {
        self.servers
    }

    /// Routes one request (its raw HTTP request-target) and counts it active on the chosen
    /// server until the returned [`Active`] drops.
    ///
    /// # Errors
    /// `NoServerAvailable` (from vibra-hash or vibra-baselines) when every server is down;
    /// nothing is counted then.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use vibra_proxy::{Policy, Router};
    /// let r = Arc::new(Router::new(2, 1, vibra_hash::HashKind::Fast, Policy::RoundRobin)?);
    /// let (a, b) = (r.route(b"/x")?, r.route(b"/x")?);
    /// assert_ne!(a.server(), b.server());
    /// r.set_up(0, false);
    /// r.set_up(1, false);
    /// assert!(r.route(b"/x").is_err());
    /// # Ok::<(), vibra_proxy::ProxyError>(())
    /// ```
    pub fn route(self: &Arc<Self>, target: &[u8]) -> Result<Active, ProxyError> {
        let n = self.servers as usize;
        let mut loads = [0u32; Self::MAX_SERVERS];
        let mut up = [0u64; Self::MAX_SERVERS / 64];
        let words = self.up.len();
        for (dst, src) in loads[..n].iter_mut().zip(self.active.iter()) {
            *dst = src.load(Ordering::Relaxed);
        }
        for (dst, src) in up[..words].iter_mut().zip(self.up.iter()) {
            *dst = src.load(Ordering::Acquire);
        }
        let (loads, up) = (&loads[..n], &up[..words]);
        let server = match &self.decide {
            Decide::UrlHash(d) => d.pick_with(target, loads, up)?,
            Decide::Baseline(m) => {
                let mut b = m.lock().unwrap_or_else(PoisonError::into_inner);
                b.tell(up)?;
                let now = b.epoch.elapsed();
                b.selection.select(target, loads, now)?
            }
        };
        self.active[server as usize].fetch_add(1, Ordering::Relaxed);
        Ok(Active {
            router: Arc::clone(self),
            server,
        })
    }

    /// Marks a server up or down in the proxy's health view (health checks, and a failed
    /// connection). Out-of-range servers are ignored.
    ///
    /// ```
    /// # use vibra_proxy::{Policy, Router};
    /// let r = Router::new(2, 1, vibra_hash::HashKind::Fast, Policy::LeastConn)?;
    /// r.set_up(1, false);
    /// assert!(r.is_up(0) && !r.is_up(1) && !r.is_up(7));
    /// # Ok::<(), vibra_proxy::ProxyError>(())
    /// ```
    pub fn set_up(&self, server: u32, up: bool) {
        if server >= self.servers {
            return;
        }
        let (word, bit) = ((server / 64) as usize, 1u64 << (server % 64));
        if up {
            self.up[word].fetch_or(bit, Ordering::AcqRel);
        } else {
            self.up[word].fetch_and(!bit, Ordering::AcqRel);
        }
    }

    /// Whether a server is up in the proxy's health view (false out of range).
    ///
    /// ```
    /// # use vibra_proxy::{Policy, Router};
    /// let r = Router::new(2, 1, vibra_hash::HashKind::Fast, Policy::LeastConn)?;
    /// assert!(r.is_up(1));
    /// # Ok::<(), vibra_proxy::ProxyError>(())
    /// ```
    pub fn is_up(&self, server: u32) -> bool {
        server < self.servers
            && self.up[(server / 64) as usize].load(Ordering::Acquire) & (1 << (server % 64)) != 0
    }

    /// The number of routed requests on a server that have not ended (0 out of range).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibra_proxy::{Policy, Router};
    /// let r = Arc::new(Router::new(1, 1, vibra_hash::HashKind::Fast, Policy::UrlHash)?);
    /// let a = r.route(b"/")?;
    /// assert_eq!(r.active(0), 1);
    /// drop(a);
    /// assert_eq!(r.active(0), 0);
    /// # Ok::<(), vibra_proxy::ProxyError>(())
    /// ```
    pub fn active(&self, server: u32) -> u32 {
        self.active
            .get(server as usize)
            .map_or(0, |a| a.load(Ordering::Relaxed))
    }
}

impl Baseline {
    /// Tells the policy every availability change since the last decision.
    fn tell(&mut self, up: &[u64]) -> Result<(), ProxyError> {
        for (w, (&now, told)) in up.iter().zip(self.told.iter_mut()).enumerate() {
            let mut changed = now ^ *told;
            while changed != 0 {
                let bit = changed.trailing_zeros();
                let server = w as u32 * 64 + bit;
                self.selection
                    .set_available(server, now & (1 << bit) != 0)?;
                changed &= changed - 1;
            }
            *told = now;
        }
        Ok(())
    }
}

fn all_up_words(servers: u32) -> Vec<u64> {
    let n = servers as usize;
    (0..n.div_ceil(64))
        .map(|w| {
            let bits = (n - w * 64).min(64);
            if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            }
        })
        .collect()
}

/// One routed request, counted active on its server until dropped.
///
/// ```
/// # use std::sync::Arc;
/// # use vibra_proxy::{Policy, Router};
/// let r = Arc::new(Router::new(3, 1, vibra_hash::HashKind::Fast, Policy::LeastConn)?);
/// let a = r.route(b"/")?;
/// assert_eq!(r.active(a.server()), 1);
/// # Ok::<(), vibra_proxy::ProxyError>(())
/// ```
#[derive(Debug)]
pub struct Active {
    router: Arc<Router>,
    server: u32,
}

impl Active {
    /// The chosen server, numbered in command-line order.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use vibra_proxy::{Policy, Router};
    /// let r = Arc::new(Router::new(4, 1, vibra_hash::HashKind::Charsum, Policy::UrlHash)?);
    /// assert_eq!(r.route(b"/")?.server(), 3); // 47 mod 4
    /// # Ok::<(), vibra_proxy::ProxyError>(())
    /// ```
    pub fn server(&self) -> u32 {
        self.server
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.router.active[self.server as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vibra_hash::Availability;

    fn router(policy: Policy, r: u32) -> Arc<Router> {
        Arc::new(Router::new(5, r, HashKind::Md5, policy).unwrap())
    }

    #[test]
    fn url_hash_is_pick_with_under_the_routers_counts_and_health() {
        let r = router(Policy::UrlHash, 3);
        let d = Dispatcher::new(5, 3, HashKind::Md5).unwrap();
        let mut up = Availability::all_up(5).unwrap();
        let mut held = Vec::new();
        for i in 0..200u32 {
            if i % 50 == 25 {
                let s = i / 50;
                r.set_up(s, false);
                up.set(s, false).unwrap();
            }
            let url = format!("/u/{}", i % 17);
            let loads: Vec<u32> = (0..5).map(|s| r.active(s)).collect();
            let expected = d.pick_with(url.as_bytes(), &loads, up.words()).unwrap();
            let a = r.route(url.as_bytes()).unwrap();
            assert_eq!(a.server(), expected);
            if i % 3 != 0 {
                held.push(a);
            }
        }
        drop(held);
        assert!((0..5).all(|s| r.active(s) == 0), "every count given back");
    }

    #[test]
    fn baselines_learn_health_changes_and_never_pick_a_down_server() {
        for policy in [
            Policy::Lard,
            Policy::LardR,
            Policy::LeastConn,
            Policy::RoundRobin,
        ] {
            let r = router(policy, 1);
            r.set_up(2, false);
            r.set_up(4, false);
            for i in 0..50 {
                let s = r.route(format!("/x/{i}").as_bytes()).unwrap().server();
                assert!(s != 2 && s != 4, "{policy}: picked down server {s}");
            }
            r.set_up(2, true);
            let mut seen = [false; 5];
            for i in 0..50 {
                seen[r.route(format!("/y/{i}").as_bytes()).unwrap().server() as usize] = true;
            }
            if policy == Policy::RoundRobin {
                assert_eq!(seen, [true, true, true, true, false], "{policy}");
            }
        }
    }

    #[test]
    fn nothing_up_is_an_error_and_counts_nothing() {
        for policy in Policy::ALL {
            let r = router(policy, 2);
            (0..5).for_each(|s| r.set_up(s, false));
            assert!(r.route(b"/").is_err(), "{policy}");
            assert!((0..5).all(|s| r.active(s) == 0));
        }
    }

    #[test]
    fn availability_words_cover_more_than_64_servers() {
        let r = Arc::new(Router::new(130, 2, HashKind::Fast, Policy::UrlHash).unwrap());
        assert_eq!(all_up_words(130), vec![u64::MAX, u64::MAX, 0b11]);
        (0..130)
            .filter(|s| s % 7 != 0)
            .for_each(|s| r.set_up(s, false));
        for i in 0..100 {
            let s = r.route(format!("/{i}").as_bytes()).unwrap().server();
            assert_eq!(s % 7, 0);
        }
        assert!(Router::new(1025, 1, HashKind::Fast, Policy::UrlHash).is_err());
    }
}
