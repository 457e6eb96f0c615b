//! The crate's one error type.
//!
//! Every fallible function of the crate returns [`Error`] and, when it does, has changed
//! nothing: no output slice, estimator, ledger, agent or directory is touched on the error path.

use crate::ids::{CustomerId, HostId, VmId};
use crate::kind::ResourceKind;

/// What was wrong with an input, and with which value.
///
/// ```
/// use vibra_alloc::{allocate_proportional, Error};
///
/// let mut out = [0.0; 2];
/// let err = allocate_proportional(&[1.0, f64::NAN], 10.0, 0.0, &mut out).unwrap_err();
/// assert_eq!(err, Error::InvalidValue { what: "demand", index: Some(1), value: f64::NAN.to_string() });
/// assert_eq!(out, [0.0; 2]); // untouched
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operation needs at least one VM.
    #[error("no VMs: the operation needs at least one")]
    NoVms,
    /// More VMs than a `u32` index can name (the C ABI's `uint32_t vm`).
    #[error("{count} VMs: at most 2^32 can be indexed")]
    TooManyVms {
        /// The number given.
        count: usize,
    },
    /// A value that must be finite and non-negative (or in a stated range) was not.
    #[error("invalid {what}{}: {value}", .index.map(|i| format!(" at index {i}")).unwrap_or_default())]
    InvalidValue {
        /// Which input: "demand", "usage", "total", "floor", "weight", "alpha", ...
        what: &'static str,
        /// The position in the input slice, when the input is a slice.
        index: Option<usize>,
        /// The offending value, printed (`NaN`, `-1`, `inf`, ...).
        value: String,
    },
    /// Two slices that must have the same length did not.
    #[error("length mismatch: {what} has {got} entries, expected {expected}")]
    LengthMismatch {
        /// Which input had the wrong length.
        what: &'static str,
        /// The length expected (usually the number of VMs).
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// `n * floor` exceeds the pool, so the floor cannot be honoured.
    #[error("floor too large: {n} VMs x floor {floor} exceeds the pool {total}")]
    FloorTooLarge {
        /// The number of VMs sharing the pool.
        n: usize,
        /// The floor asked for, printed.
        floor: String,
        /// The pool, printed.
        total: String,
    },
    /// A caller-supplied output buffer is too small; `needed` entries are required.
    #[error("buffer too small: {needed} entries needed, capacity {capacity}")]
    BufferTooSmall {
        /// The number of entries the full result has.
        needed: usize,
        /// The capacity given.
        capacity: usize,
    },
    /// A VM index is outside `0..n`.
    #[error("VM index {index} out of range for {n} VMs")]
    VmOutOfRange {
        /// The index given.
        index: u32,
        /// The number of VMs.
        n: usize,
    },
    /// The replication factor must satisfy `1 <= R <= N` (SPEC section 3).
    #[error("replication factor {replication} invalid for {servers} servers (need 1 <= R <= N)")]
    InvalidReplication {
        /// The replication factor given.
        replication: u32,
        /// The number of servers (VMs).
        servers: usize,
    },
    /// Failover found no other available VM to take the failed VM's allocation.
    #[error("no other VM available to take over VM {failed}'s allocation")]
    NoTakeover {
        /// The failed VM.
        failed: u32,
    },
    /// vibra-hash refused the successor computation (an error this crate did not pre-check).
    #[error("successor rule: {0}")]
    Successor(vibra_hash::Error),
    /// A VM that is already failed was reported failed again, or a live VM recovered.
    #[error("VM {vm} is {state}, the event needs it {needed}")]
    WrongVmState {
        /// The VM.
        vm: u32,
        /// Its current state.
        state: &'static str,
        /// The state the event needs.
        needed: &'static str,
    },
    /// Time went backwards: the agent was fed an instant before one it already saw.
    #[error("time went backwards: {now_ms} ms is before {last_ms} ms")]
    TimeWentBackwards {
        /// The instant given, in milliseconds since the caller's epoch.
        now_ms: u128,
        /// The latest instant already seen.
        last_ms: u128,
    },
    /// A period (sampling or warm-up interval) must be non-zero.
    #[error("{what} period must be non-zero")]
    ZeroPeriod {
        /// Which period.
        what: &'static str,
    },
    /// The same resource kind was configured twice.
    #[error("resource kind {0} configured twice")]
    DuplicateKind(ResourceKind),
    /// The resource kind is not known to this agent or directory entry.
    #[error("unknown resource kind {0}")]
    UnknownKind(ResourceKind),
    /// The VM id is not in the directory (or the agent).
    #[error("unknown VM {0}")]
    UnknownVm(VmId),
    /// The VM id is already registered.
    #[error("VM {0} already exists")]
    DuplicateVm(VmId),
    /// The host id is not in the directory.
    #[error("unknown host {0}")]
    UnknownHost(HostId),
    /// The host id is already registered.
    #[error("host {0} already exists")]
    DuplicateHost(HostId),
    /// The customer id is not in the directory.
    #[error("unknown customer {0}")]
    UnknownCustomer(CustomerId),
    /// The customer id is already registered.
    #[error("customer {0} already exists")]
    DuplicateCustomer(CustomerId),
    /// The VM belongs to another customer than the one the change set names.
    #[error("VM {vm} belongs to customer {owner}, not {claimed}")]
    NotOwner {
        /// The VM.
        vm: VmId,
        /// Its owner.
        owner: CustomerId,
        /// The customer the change set claimed.
        claimed: CustomerId,
    },
    /// A result does not fit its type: a sum of caller-provided values would exceed
    /// `u64::MAX` units (or a credit record would), or an `f64` result would exceed
    /// `f64::MAX`. Raised before anything is written, so nothing changed.
    #[error("overflow: {what}{} would not fit", .index.map(|i| format!(" of VM {i}")).unwrap_or_default())]
    Overflow {
        /// Which result: "compensated allocation", "credit", "reclaimed allocation", ...
        what: &'static str,
        /// The VM (its position in the input slices), when one VM's entry overflows.
        index: Option<usize>,
    },
    /// A change's `from` does not match the directory: the plan was computed on stale data.
    #[error("stale change for VM {vm}: plan says {expected} units, directory has {actual}")]
    StaleChange {
        /// The VM.
        vm: VmId,
        /// The `from` value of the change.
        expected: u64,
        /// The allocation the directory holds.
        actual: u64,
    },
    /// Applying the change (or a prefix of the plan) would exceed the customer's bound.
    #[error("customer {customer} bound for {kind} exceeded: {would_be} > {bound} units")]
    OverCustomerBound {
        /// The customer.
        customer: CustomerId,
        /// The resource kind.
        kind: ResourceKind,
        /// The sum the customer's VMs would hold.
        would_be: u128,
        /// The customer's bound.
        bound: u64,
    },
    /// Applying the change (or a prefix of the plan) would exceed a host's capacity.
    #[error("host {host} capacity for {kind} exceeded: {would_be} > {capacity} units")]
    OverHostCapacity {
        /// The host.
        host: HostId,
        /// The resource kind.
        kind: ResourceKind,
        /// The sum the host's VMs would hold.
        would_be: u128,
        /// The host's capacity.
        capacity: u64,
    },
}

impl Error {
    pub(crate) fn invalid(what: &'static str, index: Option<usize>, value: f64) -> Self {
        Error::InvalidValue {
            what,
            index,
            value: value.to_string(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that `v` is finite and non-negative.
pub(crate) fn check_non_negative(what: &'static str, index: Option<usize>, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(what, index, v))
    }
}

/// Checks every entry of `values` is finite and non-negative.
pub(crate) fn check_all_non_negative(what: &'static str, values: &[f64]) -> Result<()> {
    values
        .iter()
        .enumerate()
        .try_for_each(|(i, &v)| check_non_negative(what, Some(i), v))
}

/// Checks `got == expected`.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what,
            expected,
            got,
        })
    }
}

/// Checks `n` VMs can be indexed by `u32`.
pub(crate) fn check_vm_count(n: usize) -> Result<()> {
    if n == 0 {
        Err(Error::NoVms)
    } else if u32::try_from(n - 1).is_err() {
        Err(Error::TooManyVms { count: n })
    } else {
        Ok(())
    }
}
