//! Versions: the crate version and the ABI version, as header macros and as functions, so a
//! program can check that the library it loaded matches the header it was compiled with.

use std::ffi::c_char;

/// The ABI version: bumped on any change that can break a program compiled against an earlier
/// `vibra.h` (a removed or changed function, type, constant or meaning). The shared library's
/// soname is `libvibra.so.<VIBRA_ABI_VERSION>`; `ffi/build.rs` reads it from this line.
pub const VIBRA_ABI_VERSION: u32 = 1;

/// The crate version's major number.
pub const VIBRA_VERSION_MAJOR: u32 = 0;
/// The crate version's minor number.
pub const VIBRA_VERSION_MINOR: u32 = 1;
/// The crate version's patch number.
pub const VIBRA_VERSION_PATCH: u32 = 0;
/// The crate version as one comparable number: `(major << 16) | (minor << 8) | patch`.
pub const VIBRA_VERSION_NUMBER: u32 =
    (VIBRA_VERSION_MAJOR << 16) | (VIBRA_VERSION_MINOR << 8) | VIBRA_VERSION_PATCH;

/// The library's crate version, e.g. "0.1.0" (`VIBRA_VERSION_MAJOR.MINOR.PATCH`): a static NUL-terminated string, never to be freed.
///
/// Thread safety: may be called from any number of threads at once.
#[cfg_attr(
    doc,
    doc = r#"
```
use std::ffi::CStr;
let v = unsafe { CStr::from_ptr(vibra::vibra_version()) };
let parts = (vibra::VIBRA_VERSION_MAJOR, vibra::VIBRA_VERSION_MINOR, vibra::VIBRA_VERSION_PATCH);
assert_eq!(v.to_str().unwrap(), format!("{}.{}.{}", parts.0, parts.1, parts.2));
```
"#
)]
#[unsafe(no_mangle)]
pub extern "C" fn vibra_version() -> *const c_char {
    ffi_boundary!(or std::ptr::null(); {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
    })
}

/// The library's ABI version. A program compiled against `vibra.h` should check
/// `vibra_abi_version() == VIBRA_ABI_VERSION` at start-up.
///
/// Thread safety: may be called from any number of threads at once.
#[cfg_attr(
    doc,
    doc = r#"
```
assert_eq!(vibra::vibra_abi_version(), vibra::VIBRA_ABI_VERSION);
```
"#
)]
#[unsafe(no_mangle)]
pub extern "C" fn vibra_abi_version() -> u32 {
    ffi_boundary!(or 0; { VIBRA_ABI_VERSION })
}
