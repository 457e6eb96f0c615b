//! Every conversion between a C pointer and a Rust reference: the one audited file of casts.
//!
//! Rules kept here:
//! - a NULL pointer is an error (`VIBRA_NULL_POINTER`) naming the argument, except a buffer with
//!   a length or capacity of 0, which may be NULL;
//! - out-parameters are checked first and written last, through [`Out`] and [`OutSlice`], so a
//!   failing call leaves them untouched;
//! - handles are Box-owned: `_new` gives C a `Box::into_raw`, `_free` takes it back, `_free(NULL)`
//!   does nothing. The C-visible handle type is a zero-sized marker ([`Castable`]) so that neither
//!   the header nor the library's debug information (which the ABI check reads) exposes the Rust
//!   type's layout: changing an algorithm crate's internals never changes the ABI.

use std::ffi::c_char;

use crate::boundary::Failure;
use crate::status::Status;

fn null(name: &str) -> Failure {
    Failure::new(Status::NullPointer, format!("argument `{name}` is NULL"))
}

/// A shared reference to the object behind a non-NULL pointer.
///
/// # Safety
/// `p` is NULL or points to a live `T` not written by anyone during `'a`.
pub(crate) unsafe fn try_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: forwarded from the caller.
    unsafe { p.as_ref() }.ok_or_else(|| null(name))
}

/// The `len` elements at `p`; NULL is accepted (as empty) only when `len` is 0.
///
/// # Safety
/// `p` is NULL or points to `len` initialised `T`s not written during `'a`.
pub(crate) unsafe fn try_slice<'a, T>(
    p: *const T,
    len: usize,
    name: &str,
) -> Result<&'a [T], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Failure::new(
            Status::NullPointer,
            format!("argument `{name}` is NULL with a length of {len}"),
        ));
    }
    // SAFETY: non-NULL and, by the caller's promise, valid for `len` reads.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The bytes of a C string given with its length (no NUL needed).
///
/// # Safety
/// As [`try_slice`].
pub(crate) unsafe fn try_bytes<'a>(
    p: *const c_char,
    len: usize,
    name: &str,
) -> Result<&'a [u8], Failure> {
    // SAFETY: forwarded from the caller; c_char and u8 have the same layout.
    unsafe { try_slice(p.cast::<u8>(), len, name) }
}

/// A checked, not yet written out-parameter.
pub(crate) struct Out<T>(std::ptr::NonNull<T>);

impl<T> Out<T> {
    /// Writes the value: call only once the whole call has succeeded.
    pub(crate) fn write(self, value: T) {
        // SAFETY: `try_out`'s caller promised the pointer is valid for a write of `T`.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// Checks an out-parameter for NULL without writing it.
///
/// # Safety
/// `p` is NULL or valid for a write of one `T` until [`Out::write`] is called.
pub(crate) unsafe fn try_out<T>(p: *mut T, name: &str) -> Result<Out<T>, Failure> {
    std::ptr::NonNull::new(p).map(Out).ok_or_else(|| null(name))
}

/// A checked, not yet written output buffer of `cap` elements.
pub(crate) struct OutSlice<T> {
    ptr: *mut T,
    cap: usize,
}

impl<T: Copy> OutSlice<T> {
    /// The buffer's capacity in elements.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Copies `values` into the buffer, which the caller has checked is large enough. Input and
    /// output may overlap: the copy is a `memmove` of values computed beforehand.
    pub(crate) fn write(self, values: &[T]) {
        assert!(
            values.len() <= self.cap,
            "OutSlice::write past its capacity"
        );
        if values.is_empty() {
            return;
        }
        // SAFETY: `try_out_slice`'s caller promised `cap` writable elements, and `values` fits.
        unsafe { std::ptr::copy(values.as_ptr(), self.ptr, values.len()) }
    }
}

/// Checks an output buffer (NULL is accepted only with `cap == 0`) without writing it.
///
/// # Safety
/// `p` is NULL or valid for writes of `cap` elements until [`OutSlice::write`] is called.
pub(crate) unsafe fn try_out_slice<T>(
    p: *mut T,
    cap: usize,
    name: &str,
) -> Result<OutSlice<T>, Failure> {
    if p.is_null() && cap != 0 {
        return Err(Failure::new(
            Status::NullPointer,
            format!("argument `{name}` is NULL with a capacity of {cap}"),
        ));
    }
    Ok(OutSlice { ptr: p, cap })
}

/// A C handle type: a zero-sized marker standing for a Box-owned `Self::Rust`.
pub(crate) trait Castable {
    /// The Rust object a pointer to `Self` really points to.
    type Rust;
}

/// Hands a new object to C.
pub(crate) fn into_handle<C: Castable>(value: C::Rust) -> *mut C {
    Box::into_raw(Box::new(value)).cast()
}

/// The object behind a handle.
///
/// # Safety
/// `p` is NULL or came from [`into_handle`] and has not been freed.
pub(crate) unsafe fn try_handle<'a, C: Castable>(
    p: *const C,
    name: &str,
) -> Result<&'a C::Rust, Failure> {
    // SAFETY: handles are only made by `into_handle`, so a non-NULL `p` points to a live
    // `C::Rust`; shared access only, as every handle's state is safe to share between threads.
    unsafe { try_ref(p.cast::<C::Rust>(), name) }
}

/// Takes back and drops an object made by [`into_handle`]; NULL does nothing.
///
/// # Safety
/// `p` is NULL or came from [`into_handle`] and is not used again.
pub(crate) unsafe fn free_handle<C: Castable>(p: *mut C) {
    if !p.is_null() {
        // SAFETY: the caller promises `p` came from `into_handle` (a `Box<C::Rust>`) and is
        // given up here.
        drop(unsafe { Box::from_raw(p.cast::<C::Rust>()) });
    }
}

/// Writes `text` as a NUL-terminated C string into `buf` (capacity `cap`), cut at a UTF-8
/// boundary to fit; writes nothing when `buf` is NULL or `cap` is 0.
///
/// # Safety
/// `buf` is NULL or valid for writes of `cap` bytes.
pub(crate) unsafe fn write_c_string(buf: *mut c_char, cap: usize, text: &str) {
    if buf.is_null() || cap == 0 {
        return;
    }
    let mut n = text.len().min(cap - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `n + 1 <= cap` bytes are written inside the caller's buffer; `text` is Rust-owned
    // and cannot overlap it.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
        buf.add(n).write(0);
    }
}
