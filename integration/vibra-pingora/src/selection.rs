//! [`VibraSelection`]: vibra-hash's subset-with-failover as a Pingora
//! [`BackendSelection`](pingora_load_balancing::selection::BackendSelection) (feature
//! `pingora`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use pingora_core::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora_load_balancing::Backend;
use pingora_load_balancing::selection::{BackendIter, BackendSelection};
use vibra_hash::HashKind;

use crate::{Cursor, FailoverOrder};

/// What [`VibraSelection`] needs beyond Pingora's sorted backend set: the servers in their
/// configured order (SPEC 11 numbers them so) and the hash (SPEC section 2).
///
/// ```
/// use vibra_pingora::VibraConfig;
/// let c = VibraConfig::new(["10.0.0.2:80".parse()?, "10.0.0.1:80".parse()?], vibra_hash::HashKind::Md5);
/// assert_eq!(c.order()[0].to_string(), "10.0.0.2:80");
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VibraConfig {
    order: Vec<SocketAddr>,
    hash: HashKind,
}

impl VibraConfig {
    /// Servers numbered 0..N-1 in the order given.
    ///
    /// ```
    /// # use vibra_pingora::VibraConfig;
    /// let c = VibraConfig::new([], vibra_hash::HashKind::Fast);
    /// assert!(c.order().is_empty());
    /// ```
    pub fn new(order: impl IntoIterator<Item = SocketAddr>, hash: HashKind) -> Self {
        VibraConfig {
            order: order.into_iter().collect(),
            hash,
        }
    }

    /// The configured order.
    ///
    /// ```
    /// # use vibra_pingora::VibraConfig;
    /// let c = VibraConfig::new(["127.0.0.1:1".parse().unwrap()], vibra_hash::HashKind::Fast);
    /// assert_eq!(c.order().len(), 1);
    /// ```
    pub fn order(&self) -> &[SocketAddr] {
        &self.order
    }

    /// The hash.
    ///
    /// ```
    /// # use vibra_pingora::VibraConfig;
    /// assert_eq!(VibraConfig::new([], vibra_hash::HashKind::Md5).hash(), vibra_hash::HashKind::Md5);
    /// ```
    pub fn hash(&self) -> HashKind {
        self.hash
    }
}

/// URL-hash selection with failure-skip failover for Pingora's `LoadBalancer`.
///
/// Pingora builds a selection from a *sorted* backend set and gives it no load counts, so:
/// - the set is mapped back to [`VibraConfig`]'s order (by socket address) before numbering;
///   built without a config (`LoadBalancer::from_backends`), servers are numbered in the
///   set's sorted order, which matches another front end only if it lists them sorted;
/// - [`iter`](BackendSelection::iter) yields the request-target's failover order (its
///   sub-namespace `i`, then `i + 1, ...` cyclically). `LoadBalancer::select` returns the
///   first healthy one of these, which is SPEC section 3's choice with equal loads, for every
///   R: the first available member of `subset(i)`. So each URL goes where `vibra-lab map`
///   says, and a server marked down moves only its own URLs. Choosing the *least-loaded* of
///   the first R healthy ones needs load counts, which Pingora does not give a selection:
///   pass an `accept` closure to `select_with`, or use `vibra-proxy`, which keeps its own.
///
/// The key passed to `select` must be the raw request-target (`RequestHeader::raw_path`);
/// vibra-hash extracts the dispatch key from it (SPEC section 1). A set that numbers no server
/// (empty) selects nothing.
///
/// ```
/// use pingora_load_balancing::{Backends, LoadBalancer, discovery};
/// use vibra_pingora::{VibraConfig, VibraSelection};
///
/// let order = ["127.0.0.1:8003", "127.0.0.1:8001", "127.0.0.1:8002"];
/// let set = order.iter().map(|a| pingora_load_balancing::Backend::new(a).unwrap()).collect();
/// let config = VibraConfig::new(order.map(|a| a.parse().unwrap()), vibra_hash::HashKind::Charsum);
/// let lb = LoadBalancer::<VibraSelection>::from_backends_with_config(
///     Backends::new(discovery::Static::new(set)),
///     Some(config),
/// );
/// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// runtime.block_on(lb.update()).unwrap(); // discovery: the static set
/// // charsum("/") = 47, 47 mod 3 = 2: configured server 2, 127.0.0.1:8002.
/// let chosen = lb.select(b"/", 3).unwrap();
/// assert_eq!(chosen.addr.to_string(), "127.0.0.1:8002");
/// ```
#[derive(Debug)]
pub struct VibraSelection {
    order: Option<FailoverOrder<Backend>>,
}

fn inet(addr: &PingoraAddr) -> Option<SocketAddr> {
    addr.as_inet().copied()
}

impl BackendSelection for VibraSelection {
    type Iter = VibraIter;
    type Config = VibraConfig;

    fn build_with_config(backends: &BTreeSet<Backend>, config: &VibraConfig) -> Self {
        let configured: Vec<Option<SocketAddr>> = config.order.iter().copied().map(Some).collect();
        VibraSelection {
            order: FailoverOrder::new(
                &configured,
                backends.iter().cloned(),
                |b| inet(&b.addr),
                config.hash,
            )
            .ok(),
        }
    }

    fn build(backends: &BTreeSet<Backend>) -> Self {
        Self::build_with_config(backends, &VibraConfig::new([], HashKind::Fast))
    }

    fn iter(self: &Arc<Self>, key: &[u8]) -> VibraIter {
        VibraIter {
            cursor: self.order.as_ref().map(|o| o.cursor(key)),
            selection: Arc::clone(self),
        }
    }
}

/// One request-target's failover order over a [`VibraSelection`].
#[derive(Debug)]
pub struct VibraIter {
    selection: Arc<VibraSelection>,
    cursor: Option<Cursor>,
}

impl BackendIter for VibraIter {
    fn next(&mut self) -> Option<&Backend> {
        let order = self.selection.order.as_ref()?;
        self.cursor.as_mut()?.next(order)
    }
}
