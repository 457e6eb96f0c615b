//! The command line of SPEC section 11:
//! `vibra-proxy --listen HOST:PORT --replication R --hash H [--policy P] BACKEND...`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Parser;
use vibra_hash::HashKind;

use crate::{Policy, ProxyError, Router};

/// `vibra-proxy`'s arguments. Back ends are numbered 0..N-1 in the order given (SPEC 11).
///
/// ```
/// use clap::Parser;
/// use vibra_proxy::{Args, Policy};
/// let a = Args::try_parse_from([
///     "vibra-proxy", "--listen", "127.0.0.1:8080", "--replication", "2", "--hash", "md5",
///     "127.0.0.1:9001", "127.0.0.1:9002",
/// ]).unwrap();
/// assert_eq!((a.replication, a.policy, a.backends.len()), (2, Policy::UrlHash, 2));
/// assert_eq!(a.backend_addrs()?[1].port(), 9002);
/// # Ok::<(), vibra_proxy::ProxyError>(())
/// ```
#[derive(Debug, Clone, Parser)]
#[command(
    name = "vibra-proxy",
    about = "HTTP reverse proxy on Pingora routing by Vibra's URL hash (or a comparison policy)"
)]
pub struct Args {
    /// Address to listen on, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: String,
    /// Replication factor R of the URL-hash policies (1 <= R <= N).
    #[arg(long, value_name = "R", default_value_t = 1)]
    pub replication: u32,
    /// Hash of the dispatch key: charsum, md5, sha1 or fast (SPEC section 2).
    #[arg(long, value_name = "H", default_value = "fast", value_parser = parse_hash)]
    pub hash: HashKind,
    /// Dispatching policy (SPEC section 10's names).
    #[arg(long, value_enum, default_value_t = Policy::UrlHash)]
    pub policy: Policy,
    /// Health-check period in milliseconds (SPEC 11: at most 500; one failed check marks a
    /// server down, one success brings it back).
    #[arg(long, value_name = "MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(10..=500))]
    pub health_interval_ms: u64,
    /// Worker threads of the proxy service.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub threads: u64,
    /// Back ends, HOST:PORT each, numbered 0..N-1 in this order.
    #[arg(value_name = "BACKEND", required = true)]
    pub backends: Vec<String>,
}

fn parse_hash(s: &str) -> Result<HashKind, String> {
    s.parse::<HashKind>().map_err(|e| e.to_string())
}

impl Args {
    /// Each BACKEND resolved to its first socket address, in command-line order.
    ///
    /// # Errors
    /// [`ProxyError::BadBackend`] for an argument that is not `HOST:PORT` or does not resolve.
    ///
    /// ```
    /// use clap::Parser;
    /// let a = vibra_proxy::Args::try_parse_from(["p", "--listen", "[::1]:1", "nonsense"]).unwrap();
    /// assert!(a.backend_addrs().is_err());
    /// ```
    pub fn backend_addrs(&self) -> Result<Vec<SocketAddr>, ProxyError> {
        self.backends
            .iter()
            .map(|b| {
                let bad = |reason: String| ProxyError::BadBackend {
                    backend: b.clone(),
                    reason,
                };
                b.to_socket_addrs()
                    .map_err(|e| bad(e.to_string()))?
                    .next()
                    .ok_or_else(|| bad("resolves to no address".into()))
            })
            .collect()
    }

    /// The router these arguments describe (every check of [`Router::new`]).
    ///
    /// # Errors
    /// As [`Router::new`].
    ///
    /// ```
    /// use clap::Parser;
    /// let a = vibra_proxy::Args::try_parse_from(
    ///     ["p", "--listen", "127.0.0.1:1", "--replication", "3", "127.0.0.1:2", "127.0.0.1:3"],
    /// ).unwrap();
    /// assert!(a.router().is_err()); // R = 3 > N = 2
    /// ```
    pub fn router(&self) -> Result<Router, ProxyError> {
        let n = u32::try_from(self.backends.len()).unwrap_or(u32::MAX);
        Router::new(n, self.replication, self.hash, self.policy)
    }

    /// The health-check period.
    ///
    /// ```
    /// use clap::Parser;
    /// let a = vibra_proxy::Args::try_parse_from(["p", "--listen", "h:1", "h:2"]).unwrap();
    /// assert_eq!(a.health_interval().as_millis(), 250);
    /// ```
    pub fn health_interval(&self) -> Duration {
        Duration::from_millis(self.health_interval_ms)
    }
}
