use std::ffi::c_char;

use super::support::{last_error, text};
use crate::boundary::with_forced_panics;
use crate::status::Status;
use crate::*;

#[test]
fn every_status_has_its_own_number_and_named_text() {
    let names = [
        (VIBRA_OK, "VIBRA_OK"),
        (VIBRA_NULL_POINTER, "VIBRA_NULL_POINTER"),
        (VIBRA_INVALID_ARGUMENT, "VIBRA_INVALID_ARGUMENT"),
        (VIBRA_INVALID_ENUM, "VIBRA_INVALID_ENUM"),
        (VIBRA_BUFFER_TOO_SMALL, "VIBRA_BUFFER_TOO_SMALL"),
        (VIBRA_OUT_OF_RANGE, "VIBRA_OUT_OF_RANGE"),
        (VIBRA_NO_SERVER_AVAILABLE, "VIBRA_NO_SERVER_AVAILABLE"),
        (VIBRA_NOT_ACQUIRED, "VIBRA_NOT_ACQUIRED"),
        (VIBRA_PANIC, "VIBRA_PANIC"),
    ];
    assert_eq!(names.len(), Status::ALL.len());
    for (code, name) in names {
        let s = text(vibra_status_str(code));
        assert!(s.starts_with(&format!("{name}: ")), "{code} -> {s}");
        assert_eq!(Status::from_code(code).map(Status::code), Some(code));
    }
    let mut codes: Vec<_> = names.iter().map(|(c, _)| *c).collect();
    codes.dedup();
    assert_eq!(codes.len(), names.len(), "numbers are never reused");
}

#[test]
fn status_str_accepts_any_integer() {
    for code in [8, 9, 99, 101, 1000, u32::MAX] {
        assert_eq!(text(vibra_status_str(code)), "unknown vibra_status code");
    }
}

#[test]
fn version_macros_match_the_crate_and_the_functions() {
    assert_eq!(text(vibra_version()), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        text(vibra_version()),
        format!("{VIBRA_VERSION_MAJOR}.{VIBRA_VERSION_MINOR}.{VIBRA_VERSION_PATCH}")
    );
    let part = |s: &str| s.parse::<u32>().unwrap();
    assert_eq!(VIBRA_VERSION_MAJOR, part(env!("CARGO_PKG_VERSION_MAJOR")));
    assert_eq!(VIBRA_VERSION_MINOR, part(env!("CARGO_PKG_VERSION_MINOR")));
    assert_eq!(VIBRA_VERSION_PATCH, part(env!("CARGO_PKG_VERSION_PATCH")));
    assert_eq!(
        VIBRA_VERSION_NUMBER,
        VIBRA_VERSION_MAJOR * 65536 + VIBRA_VERSION_MINOR * 256 + VIBRA_VERSION_PATCH
    );
    assert_eq!(vibra_abi_version(), VIBRA_ABI_VERSION);
}

#[test]
fn last_error_is_empty_on_a_fresh_thread() {
    std::thread::spawn(|| {
        assert_eq!(last_error(), "");
        let mut buf = [b'x' as c_char; 4];
        // SAFETY: 4 writable bytes.
        assert_eq!(unsafe { vibra_last_error(buf.as_mut_ptr(), 4) }, 0);
        assert_eq!(buf[0], 0);
    })
    .join()
    .unwrap();
}

#[test]
fn last_error_reports_full_length_and_cuts_at_a_character() {
    std::thread::spawn(|| {
        crate::last_error::set("déjà vu");
        let full = "déjà vu".len();
        // SAFETY: NULL with capacity 0 (and NULL with a capacity) only return the length.
        assert_eq!(unsafe { vibra_last_error(std::ptr::null_mut(), 0) }, full);
        assert_eq!(unsafe { vibra_last_error(std::ptr::null_mut(), 16) }, full);
        let mut buf = [b'x' as c_char; 3];
        // SAFETY: 3 writable bytes; "dé" needs 3 bytes, so only "d" and the NUL fit.
        assert_eq!(unsafe { vibra_last_error(buf.as_mut_ptr(), 3) }, full);
        assert_eq!(buf[..2], [b'd' as c_char, 0]);
        assert_eq!(buf[2], b'x' as c_char, "nothing written past the NUL");
        let mut zero = [b'x' as c_char; 1];
        // SAFETY: capacity 0: nothing may be written.
        assert_eq!(unsafe { vibra_last_error(zero.as_mut_ptr(), 0) }, full);
        assert_eq!(zero[0], b'x' as c_char);
        assert_eq!(last_error(), "déjà vu");
    })
    .join()
    .unwrap();
}

#[test]
fn last_error_never_contains_a_nul() {
    crate::last_error::set("bad key a\0b");
    assert_eq!(last_error(), "bad key a\\0b");
}

#[test]
fn last_error_is_per_thread() {
    crate::last_error::set("main thread's");
    std::thread::spawn(|| crate::last_error::set("other thread's"))
        .join()
        .unwrap();
    assert_eq!(last_error(), "main thread's");
}

#[test]
fn panics_in_infallible_functions_return_their_documented_value() {
    with_forced_panics(|| {
        assert_eq!(vibra_abi_version(), 0);
        assert!(vibra_version().is_null());
        let s = vibra_status_str(VIBRA_OK);
        assert!(text(s).starts_with("VIBRA_PANIC"));
        // SAFETY: NULL with capacity 0.
        assert_eq!(unsafe { vibra_last_error(std::ptr::null_mut(), 0) }, 0);
    });
    let message = last_error();
    assert!(
        message.starts_with("panic inside libvibra (vibra_last_error)"),
        "{message}"
    );
    assert!(message.contains("forced by a test"));
}
