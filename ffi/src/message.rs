//! `vibra_last_error`: this thread's last error message (kept by `last_error`), copied into a
//! C buffer.

use std::ffi::c_char;

use crate::{last_error, ptr};

/// Copies this thread's last error message into `buf` and returns its full length in bytes.
///
/// The message is that of the most recent call on this thread that failed (successful calls do
/// not clear it); it is empty when no call failed yet. At most `cap - 1` bytes are copied,
/// followed by a NUL, cutting at a UTF-8 character boundary; the return value is the length of
/// the whole message without its NUL, so a return value `>= cap` means the copy was cut and a
/// buffer of `return + 1` bytes holds it all. With `buf == NULL` or `cap == 0` nothing is
/// written and only the length is returned.
///
/// Thread safety: may be called from any number of threads at once; each sees its own message.
///
/// # Safety
///
/// `buf` is NULL or points to `cap` writable bytes.
#[cfg_attr(
    doc,
    doc = r#"
```
use std::ffi::CStr;
use vibra::vibra_last_error;
let mut buf = [0 as std::ffi::c_char; 128];
let len = unsafe { vibra_last_error(buf.as_mut_ptr(), buf.len()) };
let text = unsafe { CStr::from_ptr(buf.as_ptr()) };
assert_eq!(text.to_bytes().len(), len.min(127));
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_last_error(buf: *mut c_char, cap: usize) -> usize {
    ffi_boundary!(or 0; {
        last_error::with(|last| {
            // SAFETY: the caller promises `buf` is NULL or valid for `cap` bytes.
            unsafe { ptr::write_c_string(buf, cap, last) };
            last.len()
        })
    })
}
