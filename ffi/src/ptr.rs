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
//!   type's layout: changing an algorithm crate's internals never changes the ABI;
//! - a handle's thread-safety promise in `vibra.h` is its `Castable::Threads` kind, and the
//!   helpers accept a handle only when its Rust type keeps that promise ([`Shared`]: `Send +
//!   Sync`), so the compiler checks the header's text.

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
    /// The `(buffer, *len)` convention of SPEC 8: copies `values` and their count when they fit;
    /// otherwise writes only the needed count to `len`, leaves the buffer untouched and returns
    /// the failure `too_small(needed, cap)` builds (the algorithm crate's own error).
    pub(crate) fn write_with_len(
        self,
        values: &[T],
        len: Out<usize>,
        too_small: impl FnOnce(usize, usize) -> Failure,
    ) -> Result<(), Failure> {
        if values.len() > self.cap {
            let failure = too_small(values.len(), self.cap);
            len.write(values.len());
            return Err(failure);
        }
        self.write(values);
        len.write(values.len());
        Ok(())
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

/// A C handle type: a zero-sized marker standing for a Box-owned `Self::Rust`, and what
/// `vibra.h` promises C about using one handle from several threads (`Self::Threads`).
///
/// The handle helpers below take only handles of a kind whose promise the Rust type keeps, so
/// the header's thread-safety text is checked by the compiler: a handle type declared
/// [`Shared`] whose object is not `Send + Sync` does not compile (the model is rustls-ffi's
/// `Castable` with its ownership kinds).
pub(crate) trait Castable {
    /// The Rust object a pointer to `Self` really points to.
    type Rust;
    /// The header's thread-safety promise for this handle type: [`Shared`] (the only kind so
    /// far; a handle usable by one thread at a time would add a kind requiring only `Send`).
    type Threads;
}

/// The promise "every function but `_free` may be called on the same handle from any number of
/// threads at once", with nothing tying a handle to the thread that made it: the object is
/// shared between threads (`Sync`) and may be freed on another thread than its creator's
/// (`Send`). Every helper taking a `Shared` handle requires `Rust: Send + Sync`.
pub(crate) enum Shared {}

/// Compile-time check that a handle type keeps its header's promise: `const _: () =
/// assert_shared_handle::<vibra_x>();` beside the handle's `Castable` impl fails to compile
/// unless its object is `Send + Sync`.
pub(crate) const fn assert_shared_handle<C>()
where
    C: Castable<Threads = Shared>,
    C::Rust: Send + Sync,
{
}

/// Hands a new object to C.
pub(crate) fn into_handle<C>(value: C::Rust) -> *mut C
where
    C: Castable<Threads = Shared>,
    C::Rust: Send + Sync,
{
    Box::into_raw(Box::new(value)).cast()
}

/// The object behind a handle, shared: any number of threads may hold it at once.
///
/// # Safety
/// `p` is NULL or came from [`into_handle`] and has not been freed.
pub(crate) unsafe fn try_handle<'a, C>(p: *const C, name: &str) -> Result<&'a C::Rust, Failure>
where
    C: Castable<Threads = Shared>,
    C::Rust: Send + Sync,
{
    // SAFETY: handles are only made by `into_handle`, so a non-NULL `p` points to a live
    // `C::Rust`; shared access only, which other threads may have at the same time: `Sync`,
    // required above.
    unsafe { try_ref(p.cast::<C::Rust>(), name) }
}

/// Takes back and drops an object made by [`into_handle`]; NULL does nothing.
///
/// # Safety
/// `p` is NULL or came from [`into_handle`] and is not used again.
pub(crate) unsafe fn free_handle<C>(p: *mut C)
where
    C: Castable<Threads = Shared>,
    C::Rust: Send + Sync,
{
    if !p.is_null() {
        // SAFETY: the caller promises `p` came from `into_handle` (a `Box<C::Rust>`) and is
        // given up here; dropping it on this thread, which may not be its creator's, needs
        // `Send`, required above.
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
