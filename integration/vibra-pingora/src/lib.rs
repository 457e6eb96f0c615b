//! # vibra-pingora: Vibra's URL-hash subset selection for Pingora users
//!
//! Cloudflare's `pingora-load-balancing` picks a back end through a `BackendSelection` built
//! from a *sorted* backend set, and gives it no load counts. This crate fits vibra-hash's
//! subset-with-failover into that shape:
//!
//! - [`FailoverOrder`] (always built, no Pingora type): servers numbered in their configured
//!   order whatever order the set arrives in, and each URL's failover order over them
//!   (sub-namespace first, then cyclically on, skipping absent servers);
//! - `VibraSelection` and `VibraConfig` (feature `pingora`): the `BackendSelection`. With
//!   `LoadBalancer::select`, each URL goes to the first healthy server of its failover order:
//!   where `vibra-lab map` says with equal loads, and only a failed server's URLs move.
//!
//! The feature is off by default because Pingora's zlib-ng needs `cmake` to build; the
//! runnable example is `cargo run -p vibra-pingora --features pingora --example select`.
//! For least-loaded-in-subset with real load counts, see `vibra-proxy`.
//!
//! ```
//! use vibra_hash::HashKind;
//! use vibra_pingora::FailoverOrder;
//!
//! let order = FailoverOrder::new(&["b:80", "a:80"], ["a:80", "b:80"], |s| *s, HashKind::Md5)?;
//! assert_eq!(order.server(0), Some(&"b:80"));
//! assert_eq!(order.failover(b"/index.html").count(), 2);
//! # Ok::<(), vibra_hash::Error>(())
//! ```
#![forbid(unsafe_code)]

mod order;
#[cfg(feature = "pingora")]
mod selection;

pub use order::{Cursor, FailoverOrder};
#[cfg(feature = "pingora")]
pub use selection::{VibraConfig, VibraIter, VibraSelection};
