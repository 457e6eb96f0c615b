//! This thread's last error message, behind `vibra_last_error`.
//!
//! Every failing call replaces the message of its thread; successful calls leave it alone (like
//! `errno`). Messages never contain a NUL byte, so C can treat them as strings.

use std::cell::RefCell;
use std::ffi::c_char;

use crate::ptr;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Replaces this thread's message. NUL bytes (which may come from a caller's data quoted in a
/// message) are written as `\0` so C sees the whole message.
pub(crate) fn set(message: &str) {
    LAST_ERROR.with(|last| {
        let mut last = last.borrow_mut();
        last.clear();
        last.push_str(&message.replace('\0', "\\0"));
    });
}

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
        LAST_ERROR.with(|last| {
            let last = last.borrow();
            // SAFETY: the caller promises `buf` is NULL or valid for `cap` bytes.
            unsafe { ptr::write_c_string(buf, cap, &last) };
            last.len()
        })
    })
}
