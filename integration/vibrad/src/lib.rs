//! vibrad: the per-host daemon that runs Vibra's allocation loop (vibra-alloc over
//! vibra-host), with its VM directory in memory (one host) or on etcd (many hosts), and the
//! DPS share exchange between hosts ([`dps`]).
//!
//! Backends: vibra-host's Linux controller (default), and with the cargo feature `xen` its Xen
//! controller from Domain-0 ([`config::Backend`]; the `xen` module adopts existing domains).
//!
//! The period's logic ([`control`]) is separate from the kernel and process I/O ([`daemon`]),
//! so it is tested without root against any [`vibra_host::HostController`].
//!
//! ```
//! let cfg = vibrad::config::Config::parse(vibrad::config::MINIMAL).unwrap();
//! assert_eq!(cfg.vms.len(), 2);
//! ```

pub mod config;
pub mod control;
pub mod daemon;
pub mod directory;
pub mod dps;
mod error;
pub mod kv;
pub mod local_etcd;
pub mod metrics;
#[cfg(feature = "xen")]
pub mod xen;

pub use error::{Error, Result};
