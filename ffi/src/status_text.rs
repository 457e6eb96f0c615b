//! `vibra_status_str`: the static text of a status code (the codes are in `status`).

use std::ffi::c_char;

use crate::status::{Status, vibra_status};

const UNKNOWN_STATUS: &str = "unknown vibra_status code\0";

/// Static text for a status code: its name and what it means.
///
/// Any integer may be passed; a number that is not a `vibra_status` gives
/// "unknown vibra_status code". The string is static and NUL-terminated: never free it.
///
/// Thread safety: may be called from any number of threads at once.
#[cfg_attr(
    doc,
    doc = r#"
```
use std::ffi::CStr;
use vibra::{vibra_status_str, VIBRA_BUFFER_TOO_SMALL};
let text = unsafe { CStr::from_ptr(vibra_status_str(VIBRA_BUFFER_TOO_SMALL)) };
assert!(text.to_str().unwrap().starts_with("VIBRA_BUFFER_TOO_SMALL"));
```
"#
)]
#[unsafe(no_mangle)]
pub extern "C" fn vibra_status_str(status: vibra_status) -> *const c_char {
    ffi_boundary!(or Status::Panic.text().as_ptr().cast(); {
        Status::from_code(status)
            .map_or(UNKNOWN_STATUS, Status::text)
            .as_ptr()
            .cast()
    })
}
