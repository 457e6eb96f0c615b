//! The boundary every exported function's body runs inside.
//!
//! `ffi_boundary!` catches a panic (unwinding into C is undefined behaviour), records a message
//! for `vibra_last_error`, and turns the outcome into the function's C return value. The
//! exported signatures themselves stay plain `extern "C" fn`s so cbindgen sees them.
//!
//! Two forms:
//! - `ffi_boundary!({ ... })`: the body returns `Result<(), Failure>`; the function returns a
//!   `vibra_status` (`VIBRA_PANIC` for a caught panic);
//! - `ffi_boundary!(or VALUE; { ... })`: the body returns the function's value directly; a caught
//!   panic returns `VALUE` (for functions that cannot fail, such as `vibra_abi_version`).
//!
//! This module must never write to caller memory: that is `ptr`'s job. It imports only the two
//! leaves, `status` and `last_error`, so every other module may use it.

use std::any::Any;

use crate::last_error;
use crate::status::{Status, vibra_status};

/// Why a call failed: the status C sees and the message `vibra_last_error` returns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub(crate) status: Status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: Status, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// Records the message for this thread and gives the code to return.
    pub(crate) fn report(self) -> vibra_status {
        last_error::set(&self.message);
        self.status.code()
    }
}

/// The outcome of a fallible boundary body.
pub(crate) type Outcome = Result<(), Failure>;

/// Records a caught panic and gives `VIBRA_PANIC`.
pub(crate) fn report_panic(function: &str, payload: Box<dyn Any + Send>) -> vibra_status {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    last_error::set(&format!("panic inside libvibra ({function}): {detail}"));
    Status::Panic.code()
}

/// The name of the enclosing function, for panic messages.
macro_rules! function_name {
    () => {{
        fn here() {}
        let name = std::any::type_name_of_val(&here);
        let name = name.strip_suffix("::here").unwrap_or(name);
        name.rsplit("::").next().unwrap_or(name)
    }};
}

macro_rules! ffi_boundary {
    (or $on_panic:expr; $body:block) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| {
            $crate::boundary::forced_panic_point();
            $body
        })) {
            Ok(value) => value,
            Err(payload) => {
                $crate::boundary::report_panic(function_name!(), payload);
                $on_panic
            }
        }
    }};
    ($body:block) => {{
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(
            || -> $crate::boundary::Outcome {
                $crate::boundary::forced_panic_point();
                $body
            },
        )) {
            Ok(Ok(())) => $crate::status::VIBRA_OK,
            Ok(Err(failure)) => failure.report(),
            Err(payload) => $crate::boundary::report_panic(function_name!(), payload),
        }
    }};
}

#[cfg(test)]
thread_local! {
    static FORCE_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// In tests, panics when [`force_panics`] asked for it, so that every exported function can be
/// shown to turn a panic inside the library into a status; compiled to nothing otherwise.
#[inline(always)]
pub(crate) fn forced_panic_point() {
    #[cfg(test)]
    if FORCE_PANIC.with(|f| f.get()) {
        panic!("forced by a test");
    }
}

/// Makes every boundary on this thread panic while `f` runs (tests only).
#[cfg(test)]
pub(crate) fn with_forced_panics<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            FORCE_PANIC.with(|p| p.set(false));
        }
    }
    FORCE_PANIC.with(|p| p.set(true));
    let _reset = Reset;
    f()
}
