//! # dps-core
//!
//! Distributed proportional-share (DPS) CPU scheduling for parallel programs in VM clusters,
//! after chapter 5 of C.-H. Tsai's dissertation. A program asks for "N nodes, at most W CPUs"
//! instead of N dedicated CPUs; DPS moves CPU share from VMs that wait on their peers to the
//! VMs that hold the program back.
//!
//! - [`formula`]: the exact formulas of SPEC section 6 ([`offer`], eq. 5.1;
//!   [`bank_redistribute`], eq. 5.2 in its corrected min form with the remainder rule), which
//!   `libvibra`'s `vibra_dps_offer` and `vibra_dps_bank_redistribute` wrap one-to-one.
//! - [`ledger`]: transfers as idempotent messages over a cluster-wide share book, keeping
//!   shares + bank + in flight = W under loss, duplication and reordering.
//! - [`upstream`]: upstream inference from wake-up events, with expiry and traffic filters.
//! - [`bank`]: pluggable banker routines. [`crm`]: bottlenecks, migration choice, repacking,
//!   migration cost (section 5.2.2). [`balance`](mod@balance): the demand-aware CRM that
//!   evens hosts' per-round demand (the recommended one where VMs may move).
//!
//! The deterministic cluster simulator that reproduces the chapter's figures is the separate,
//! unpublished crate `dps-sim` (`integration/dps-sim`), so this library links nothing it needs.
//!
//! ```
//! let s = dps_core::offer(0.5, 0.1, dps_core::default_withhold(3), 3).unwrap();
//! assert!((s - 0.1).abs() < 1e-12);
//! ```
#![forbid(unsafe_code)]

pub mod balance;
pub mod bank;
pub mod crm;
pub mod error;
pub mod formula;
pub mod ledger;
pub mod model;
pub mod upstream;

pub use balance::{HostDemand, VmDemand, balance, round_loads};
pub use bank::{BankRound, BankerPolicy, CappedBanker, SpecBanker};
pub use crm::{
    Destination, HostLoad, Migration, MigrationCost, MigrationTime, VmLoad, bottlenecks,
    choose_migration, repack,
};
pub use error::DpsError;
pub use formula::{bank_redistribute, default_withhold, excess, offer, shortage};
pub use ledger::{
    Acceptance, MAX_LEDGER_TOTAL, Message, Outcome, Party, ProgramLayout, ShareLedger, TransferId,
};
pub use model::{HostId, HostSpec, ProgramId, VmId};
pub use upstream::{INFRASTRUCTURE_PORTS, TrafficFilter, UpstreamTracker, WakeRate, WakeUp};
