//! Proportional resource allocation for VM clusters, after chapters 3 and 4 of C.-H. Tsai's
//! dissertation (Vibra) and SPEC sections 4-5.
//!
//! A customer owns a fixed pool per resource kind (say 80 MB/s of egress and 3 GB of memory)
//! for a cluster of VMs. This crate keeps re-dividing the pool so every VM's utilisation stays
//! even, in pieces that compose:
//!
//! | piece | module | what it does |
//! | --- | --- | --- |
//! | [`DemandEstimator`], [`ema`] | `estimate` | smooths measured usage (eq. 3.1) |
//! | [`split_units`], [`allocate_proportional`], [`damp`] | `allocate` | the proportional split with a floor, weights and hysteresis (eq. 3.2) |
//! | [`Plan`], [`allocation_plan`] | `plan` | the order of changes that never exceeds the pool |
//! | [`Agent`] | `agent` | the clock-free state machine running the dissertation's loop |
//! | [`FailoverLedger`], [`failover_compensation`] | `failover` | crediting a failed VM's share to its successors (ch. 4) |
//! | [`VmDirectory`], [`InMemoryDirectory`] | `directory` | bounds, capacities and the VM-to-host map (section 3.4.2) |
//! | [`VmId`], [`CustomerId`], [`HostId`] | `ids` | the identifiers every other module names things by |
//!
//! Allocations are whole **units** of a size the caller picks per kind (see [`units_sum`] and
//! the `units` module docs), so a split always sums to the pool exactly. The plain-`f64`
//! functions [`allocate_proportional`], [`allocation_plan`] and [`failover_compensation`]
//! compute SPEC's formulas as written, for the C ABI.
//!
//! No global state, no threads, no I/O, no clock: the caller feeds observations and time.
//!
//! ```
//! use vibra_alloc::{split_units, Plan};
//!
//! // 80 MB/s in 1 kB/s units, floor 1 MB/s, three VMs with smoothed demands 10, 50, 20 MB/s.
//! let current = [26_667, 26_667, 26_666];
//! let target = split_units(&[10.0, 50.0, 20.0], None, 80_000, 1_000).unwrap();
//! assert_eq!(target.iter().sum::<u64>(), 80_000);
//! let plan = Plan::between(&current, &target).unwrap();
//! assert!(plan.peak(&current).unwrap() <= 80_000); // never over the pool, even half-applied
//! ```
#![forbid(unsafe_code)]

mod agent;
mod allocate;
mod directory;
mod error;
mod estimate;
mod failover;
mod ids;
mod kind;
mod plan;
mod units;

pub use agent::{Agent, Boot, KindConfig, KindPlan};
pub use allocate::{allocate_proportional, damp, split_units, split_units_into};
pub use directory::{
    Amounts, CustomerRecord, HostRecord, InMemoryDirectory, Usage, VmDirectory, VmRecord,
};
pub use error::{Error, Result};
pub use estimate::{Alpha, DemandEstimator, ema};
pub use failover::{FailoverLedger, VmPhase, compensate_units, failover_compensation, takeover};
pub use ids::{CustomerId, HostId, VmId};
pub use kind::ResourceKind;
pub use plan::{Change, ChangeF64, Plan, allocation_plan, allocation_plan_vec};
pub use units::units_sum;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
