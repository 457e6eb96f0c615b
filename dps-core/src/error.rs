//! The one error type of dps-core. Every fallible function returns it and changes nothing when
//! it does (SPEC section 6: "Errors, with nothing changed").

use thiserror::Error;

/// What was wrong with an input, and with which value.
///
/// ```
/// use dps_core::{offer, DpsError};
/// assert!(matches!(offer(0.5, f64::NAN, 0.5, 2), Err(DpsError::InvalidUtilization(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DpsError {
    /// A CPU share that is negative, NaN or infinite.
    #[error("invalid share {0}: must be finite and >= 0")]
    InvalidShare(f64),
    /// A utilisation that is negative, NaN or infinite.
    #[error("invalid utilisation {0}: must be finite and >= 0")]
    InvalidUtilization(f64),
    /// A withholding factor outside [0, 1] (or NaN).
    #[error("invalid withholding factor {0}: must lie in [0, 1]")]
    InvalidWithhold(f64),
    /// A share shortage that is negative, NaN or infinite.
    #[error("invalid shortage {0}: must be finite and >= 0")]
    InvalidShortage(f64),
    /// A bank balance that is negative, NaN or infinite.
    #[error("invalid bank balance {0}: must be finite and >= 0")]
    InvalidBalance(f64),
    /// A program total W that is not finite and > 0.
    #[error("invalid program total W = {0}: must be finite and > 0")]
    InvalidTotal(f64),
    /// A host capacity C (after overhead) that is not finite and > 0.
    #[error("invalid host capacity {0}: must be finite and > 0")]
    InvalidCapacity(f64),
    /// Some other parameter (named) that is out of its range.
    #[error("invalid {name} = {value}")]
    InvalidParameter {
        /// Which parameter.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// Slices that must have the same length do not.
    #[error("length mismatch: {what} has {got} entries, expected {expected}")]
    LengthMismatch {
        /// Which slice.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The length it must have.
        expected: usize,
    },
    /// A VM id that is not known.
    #[error("unknown VM {0}")]
    UnknownVm(u32),
    /// A host id that is not known.
    #[error("unknown host {0}")]
    UnknownHost(u32),
    /// A program id that is not known.
    #[error("unknown program {0}")]
    UnknownProgram(u32),
    /// A transfer id that is not known.
    #[error("unknown transfer {0}")]
    UnknownTransfer(u64),
    /// A transfer that would take more share than the sender holds.
    #[error("insufficient share: {available} available, {requested} requested")]
    InsufficientShare {
        /// What the sender holds.
        available: f64,
        /// What was asked.
        requested: f64,
    },
    /// A transfer between parties of different programs (shares never leave their program).
    #[error("transfer crosses programs")]
    CrossProgram,
    /// A program with no VMs, or a topology that does not fit its VM count.
    #[error("invalid topology: {0}")]
    InvalidTopology(String),
    /// A configuration the chosen scheduler mode cannot run.
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
}

/// Checks that `x` is finite and >= 0, else returns `err(x)`.
pub(crate) fn non_negative(x: f64, err: fn(f64) -> DpsError) -> Result<f64, DpsError> {
    if x.is_finite() && x >= 0.0 {
        Ok(x)
    } else {
        Err(err(x))
    }
}
