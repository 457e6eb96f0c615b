//! Helpers shared by the boundary tests.

use std::ffi::{CStr, c_char};

use crate::vibra_last_error;

/// This thread's last error message, read through the exported function as C would.
pub(crate) fn last_error() -> String {
    // SAFETY: NULL with capacity 0 only asks for the length.
    let len = unsafe { vibra_last_error(std::ptr::null_mut(), 0) };
    let mut buf = vec![0 as c_char; len + 1];
    // SAFETY: `buf` has `len + 1` writable bytes.
    let again = unsafe { vibra_last_error(buf.as_mut_ptr(), buf.len()) };
    assert_eq!(again, len);
    // SAFETY: `vibra_last_error` NUL-terminated the buffer.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .to_owned()
}

/// The text behind a static C string returned by the library.
pub(crate) fn text(p: *const c_char) -> &'static str {
    assert!(!p.is_null());
    // SAFETY: libvibra returns static NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap()
}
