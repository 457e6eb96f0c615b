//! # vibra-proxy: Vibra Web's HTTP reverse proxy on Pingora
//!
//! `vibra-proxy --listen HOST:PORT --replication R --hash H [--policy P] BACKEND...` (SPEC
//! section 11) proxies HTTP/1.1 to N back ends numbered 0..N-1 in command-line order. Every
//! SPEC 10 policy runs through the same proxy, so they are measured like for like:
//! `url-hash` and `url-hash/r` (vibra-hash's least-loaded member of the URL's subset, with the
//! proxy's own per-server active-request counts), `lard`, `lard/r`, `least-conn` and
//! `round-robin` (vibra-baselines).
//!
//! The crate has two layers. Always built: the routing decision ([`Router`]: policy, active
//! counts, health view) and the command line ([`Args`]). Behind the `pingora` feature: the
//! Pingora server (the `vibra-proxy` binary): `upstream_peer` calls [`Router::route`], health
//! checks run every `--health-interval-ms` (default 250 ms; one failed TCP check marks a server
//! down, one success brings it back), a refused connection marks the server down at once and
//! retries the request on the URL's next server, Pingora keeps keep-alive pools to back ends,
//! and SIGTERM stops it cleanly. The feature is off by default because Pingora's zlib-ng
//! needs `cmake` to build, and the workspace's test command must not.
//!
//! ```
//! use std::sync::Arc;
//! use vibra_hash::HashKind;
//! use vibra_proxy::{Policy, Router};
//!
//! let router = Arc::new(Router::new(4, 2, HashKind::Md5, Policy::UrlHash)?);
//! let request = router.route(b"/english/index.html?lang=en")?;
//! assert!(request.server() < 4);
//! # Ok::<(), vibra_proxy::ProxyError>(())
//! ```

#![forbid(unsafe_code)]

mod cli;
mod error;
mod policy;
mod router;
#[cfg(feature = "pingora")]
pub mod server;

pub use cli::Args;
pub use error::ProxyError;
pub use policy::Policy;
pub use router::{Active, Router};
