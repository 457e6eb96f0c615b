//! # vibra-baselines: what Vibra's URL-hash dispatcher is compared against
//!
//! The dispatching policies of the dissertation's evaluation (chapters 3-4) behind one
//! [`Selection`] trait, so that every comparison is like for like: round-robin,
//! least-connection, naive re-partitioning, LARD and LARD/R, an nginx-compatible ketama ring,
//! and vibra-hash's own [`Dispatcher`](vibra_hash::Dispatcher) (plain or [`BoundedLoad`]). Plus
//! the locality and load metrics the figures and tables are computed with.
//!
//! Experiments (vibra-lab) and benchmarks depend on this crate; production code never does:
//! vibra-hash and libvibra carry none of it. The [`Selection`] and [`Placement`] traits live
//! here, implemented here for vibra-hash's types, so vibra-hash depends on nothing of this
//! crate and there is no cycle.
//!
//! ```
//! use std::time::Duration;
//! use vibra_baselines::{LeastConnection, RoundRobin, Selection};
//! use vibra_hash::{Dispatcher, HashKind};
//!
//! let mut policies: Vec<Box<dyn Selection>> = vec![
//!     Box::new(RoundRobin::new(4)?),
//!     Box::new(LeastConnection::new(4)?),
//!     Box::new(Dispatcher::new(4, 2, HashKind::Fast)?),
//! ];
//! for p in &mut policies {
//!     let s = p.select(b"/index.html", &[3, 0, 2, 1], Duration::ZERO)?;
//!     assert!(s < 4, "{}", p.name());
//! }
//! # Ok::<(), vibra_baselines::Error>(())
//! ```
#![forbid(unsafe_code)]

mod error;
mod metrics;
mod selection;

pub use error::Error;
pub use metrics::{
    FailoverLoad, Fig41Row, NeighbourPeak, ServerStats, StreamStats, failover_load, fig4_1,
    fig4_1_row, locality_loss, naive_loss, neighbour_peak, skip_rule_loss,
};
pub use selection::{
    BoundedLoad, KetamaRing, Lard, LardParams, LardR, LeastConnection, NaiveRepartition, Placement,
    RoundRobin, Selection,
};
