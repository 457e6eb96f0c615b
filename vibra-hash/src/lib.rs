//! # vibra-hash: locality-aware URL-hash dispatching
//!
//! A front-end (a Rust proxy, an nginx or HAProxy module through `libvibra`) decides per
//! request which back-end server gets it (dissertation chapters 3-4, SPEC sections 1-4):
//!
//! 1. [`dispatch_key`] takes the object name out of the request-target;
//! 2. a [`HashKind`] splits the key space into N sub-namespaces;
//! 3. sub-namespace `i` is served by a subset of R servers in cyclic order, skipping failed
//!    ones, and the least-loaded member wins ([`Dispatcher`]).
//!
//! No state grows with the number of objects (against LARD's per-URL history), and a failed
//! server only loses its own share of cached objects. [`takeover_servers`] names the servers
//! that absorb a failed server's sub-namespaces, for resource reallocation (vibra-alloc).
//!
//! ```
//! use vibra_hash::{Dispatcher, HashKind};
//!
//! let d = Dispatcher::new(16, 2, HashKind::Fast)?;
//! let lease = d.acquire(b"/english/teams/team_FR.html?lang=en")?;
//! println!("send to server {}", lease.server());
//! // the connection is released when `lease` is dropped
//! # Ok::<(), vibra_hash::Error>(())
//! ```
#![forbid(unsafe_code)]

mod cyclic;
mod dispatcher;
mod error;
mod hash;
mod key;

pub use cyclic::{Availability, Servers, takeover_servers};
pub use dispatcher::{BalanceFactor, Dispatcher, Lease, Subset};
pub use error::Error;
pub use hash::HashKind;
pub use key::dispatch_key;
