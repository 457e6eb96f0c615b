//! `libvibra`: the stable C interface of the Vibra algorithm crates.
//!
//! This crate is the third layer of Vibra (after the pure algorithm crates and the integration
//! crates): it owns every `unsafe` line that touches a C caller's memory and nothing else. No
//! algorithm lives here; each exported function checks its arguments, calls the crate that owns
//! the algorithm, and writes its out-parameters only when everything succeeded.
//!
//! The C header `include/vibra.h` is generated from these sources by cbindgen and committed.
//! Conventions every function follows (the "API conventions" of `ffi/README.md`):
//!
//! - functions that can fail return a [`vibra_status`]: [`VIBRA_OK`] (0) on success, a non-zero
//!   code otherwise, with this thread's message in [`vibra_last_error`];
//! - on failure, out-parameters and objects are left untouched (no partial successes);
//! - a panic inside the library is caught at the boundary and returned as [`VIBRA_PANIC`];
//! - pointers are NULL-checked, lengths explicit, enumerations received as plain integers.
//!
//! Rust programs should depend on the algorithm crates directly; the Rust items here exist so
//! that the tests and the benchmark can call the exported functions as C would.
//!
//! ```
//! use vibra::{vibra_abi_version, VIBRA_ABI_VERSION};
//! assert_eq!(vibra_abi_version(), VIBRA_ABI_VERSION);
//! ```

// The C names are part of the fixed ABI (SPEC section 8): lower-case types, upper-case constants.
#![allow(non_camel_case_types)]

// Layers, each importing only from those above it (`.ci/import-cycles.py` checks that no two
// modules import each other):
// - `status` (the codes) and `last_error` (this thread's message): leaves;
// - `boundary`: the panic-catching `ffi_boundary!` and `Failure`, on the two leaves;
// - `ptr`: every cast between C pointers and Rust references, failing with `Failure`;
// - the exported functions, one module per group, on all of the above.
//
// Declaration order is the order of vibra.h (cbindgen reads the modules in this order; the
// modules without exported items may go anywhere).
mod last_error;
#[macro_use]
mod boundary;
mod allocation;
mod dispatch;
mod message;
mod ptr;
mod share;
mod status;
mod status_text;
mod timestamp;
mod version;

pub use allocation::*;
pub use dispatch::*;
pub use message::vibra_last_error;
pub use share::*;
pub use status::*;
pub use status_text::vibra_status_str;
pub use timestamp::*;
pub use version::*;

#[cfg(test)]
mod tests;
