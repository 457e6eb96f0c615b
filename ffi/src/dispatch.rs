//! URL-hash dispatching (SPEC sections 1-3) over `vibra_hash::Dispatcher`.
//!
//! This module converts arguments and results; the key extraction, hashing, subsets and
//! selection all live in vibra-hash and must never be re-implemented here.

use std::ffi::c_char;

// `::` because this module defines a C type of the same name.
use ::vibra_hash::{Dispatcher, Error, HashKind};

use crate::boundary::Failure;
use crate::ptr::{
    Castable, Shared, assert_shared_handle, free_handle, into_handle, try_bytes, try_handle,
    try_out, try_out_slice, try_slice,
};
use crate::status::{Status, vibra_status};

/// The hash that maps a dispatch key to its sub-namespace (SPEC section 2): one of the
/// `VIBRA_HASH_*` values. A plain `uint32_t` in C; any other value gives `VIBRA_INVALID_ENUM`.
pub type vibra_hash = u32;

/// Sum of the key's bytes (wrapping 64-bit) mod N: the dissertation's hash, cheapest, weakest.
pub const VIBRA_HASH_CHARSUM: vibra_hash = 0;
/// First 8 bytes of MD5(key), big-endian, mod N.
pub const VIBRA_HASH_MD5: vibra_hash = 1;
/// First 8 bytes of SHA-1(key), big-endian, mod N.
pub const VIBRA_HASH_SHA1: vibra_hash = 2;
/// The project's fast, well-distributed, seedless default (XXH3-64 with seed 0) mod N; fixed
/// forever as part of the ABI.
pub const VIBRA_HASH_FAST: vibra_hash = 3;

/// A URL-hash dispatcher: N servers, replication factor R, a hash, which servers are
/// available, and built-in active-connection counters.
///
/// Functions: `vibra_dispatcher_new`, `vibra_dispatcher_free`, `vibra_dispatcher_namespace`,
/// `vibra_dispatcher_subset`, `vibra_dispatcher_set_available`, `vibra_dispatcher_pick`,
/// `vibra_dispatcher_pick_with`, `vibra_dispatcher_acquire`, `vibra_dispatcher_release`.
///
/// Lifecycle:
/// 1. `vibra_dispatcher_new` creates it with every server available and no connections.
/// 2. Per request, either `vibra_dispatcher_pick` with load counts the caller keeps (for example
///    in shared memory seen by several processes), or `vibra_dispatcher_acquire` and, when the
///    connection ends, `vibra_dispatcher_release` with the built-in counters.
/// 3. `vibra_dispatcher_set_available` marks servers down and up as health checks decide;
///    only the sub-namespaces of a failed server move, and they move back when it returns. A
///    caller with its own health state passes it per request to `vibra_dispatcher_pick_with`
///    instead.
/// 4. `vibra_dispatcher_free` destroys it, once no other thread uses it.
///
/// Thread safety: every function but `vibra_dispatcher_free` may be called on the same
/// dispatcher from any number of threads at once (availability and counters are atomics,
/// lookups never block).
pub struct vibra_dispatcher {
    _opaque: [u8; 0],
}

impl Castable for vibra_dispatcher {
    type Rust = Dispatcher;
    // The "Thread safety" paragraph above: any number of threads at once on one dispatcher.
    type Threads = Shared;
}

// That promise, checked by the compiler: `Dispatcher` is `Send + Sync`.
const _: () = assert_shared_handle::<vibra_dispatcher>();

/// vibra-hash's errors as statuses; `needed` lengths are handled by the caller.
impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let status = match &e {
            Error::ServerOutOfRange { .. } | Error::NamespaceOutOfRange { .. } => {
                Status::OutOfRange
            }
            // A server already at u32::MAX active connections cannot take one more: to the
            // caller that is the same as no server being available (the message names it).
            Error::NoServerAvailable | Error::NoSurvivor { .. } | Error::ActiveCountFull { .. } => {
                Status::NoServerAvailable
            }
            Error::BufferTooSmall { .. } => Status::BufferTooSmall,
            Error::NotAcquired { .. } => Status::NotAcquired,
            Error::UnknownHashName { .. } | Error::UnknownHashCode { .. } => Status::InvalidEnum,
            _ => Status::InvalidArgument,
        };
        Failure::new(status, e.to_string())
    }
}

/// Creates a dispatcher over `servers` servers (numbered 0..servers-1, all available) with
/// replication factor `replication` and hash `hash` (a `VIBRA_HASH_*` value), and stores it in
/// `*out`. Free it with `vibra_dispatcher_free`.
///
/// Errors: `VIBRA_NULL_POINTER` if `out` is NULL; `VIBRA_INVALID_ENUM` for an unknown `hash`;
/// `VIBRA_INVALID_ARGUMENT` unless `1 <= servers <= 2^20` and `1 <= replication <= servers`.
///
/// Thread safety: may be called from any number of threads at once.
///
/// # Safety
///
/// `out` is NULL or valid for writing one pointer.
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut d: *mut vibra_dispatcher = std::ptr::null_mut();
let st = unsafe { vibra_dispatcher_new(8, 2, VIBRA_HASH_MD5, &mut d) };
assert_eq!(st, VIBRA_OK);
unsafe { vibra_dispatcher_free(d) };
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_dispatcher_new(
    servers: u32,
    replication: u32,
    hash: vibra_hash,
    out: *mut *mut vibra_dispatcher,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY: the caller promises `out` is NULL or writable.
        let out = unsafe { try_out(out, "out") }?;
        let hash = HashKind::try_from(hash)?;
        let inner = Dispatcher::new(servers, replication, hash)?;
        out.write(into_handle::<vibra_dispatcher>(inner));
        Ok(())
    })
}

/// Destroys a dispatcher made by `vibra_dispatcher_new`. NULL is a no-op.
///
/// Thread safety: no other call may use `d` during or after this one.
///
/// # Safety
///
/// `d` is NULL or a dispatcher from `vibra_dispatcher_new` that is not used again.
#[cfg_attr(
    doc,
    doc = r#"
```
unsafe { vibra::vibra_dispatcher_free(std::ptr::null_mut()) }; // a no-op
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_dispatcher_free(d: *mut vibra_dispatcher) {
    ffi_boundary!(or (); {
        // SAFETY: the caller gives up `d`, which came from `vibra_dispatcher_new`.
        unsafe { free_handle(d) }
    })
}

/// Stores in `*ns` the sub-namespace (0..servers-1) of the request-target `target` (`len`
/// bytes, no NUL needed, any bytes): the dispatch key of SPEC section 1 hashed as in section 2.
/// An empty target (`len == 0`, `target` may then be NULL) has the key "/".
///
/// Errors: `VIBRA_NULL_POINTER` if `d` or `ns` is NULL, or `target` is NULL with `len > 0`.
///
/// Thread safety: may be called from any number of threads at once, also on the same
/// dispatcher.
///
/// # Safety
///
/// `d` is NULL or a live dispatcher; `target` is NULL or points to `len` readable bytes; `ns` is
/// NULL or writable.
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut d = std::ptr::null_mut();
let mut ns = u32::MAX;
let url = "http://example.com/index.html?x=1";
unsafe {
    assert_eq!(vibra_dispatcher_new(4, 1, VIBRA_HASH_CHARSUM, &mut d), VIBRA_OK);
    assert_eq!(vibra_dispatcher_namespace(d, url.as_ptr().cast(), url.len(), &mut ns), VIBRA_OK);
    vibra_dispatcher_free(d);
}
let key_sum: u64 = b"/index.html".iter().map(|&b| u64::from(b)).sum();
assert_eq!(u64::from(ns), key_sum % 4);
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_dispatcher_namespace(
    d: *const vibra_dispatcher,
    target: *const c_char,
    len: usize,
    ns: *mut u32,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY (all three): the caller's promises above.
        let d = unsafe { try_handle(d, "d") }?;
        let target = unsafe { try_bytes(target, len, "target") }?;
        let ns = unsafe { try_out(ns, "ns") }?;
        ns.write(d.namespace(target));
        Ok(())
    })
}

/// Writes the current subset of sub-namespace `ns` (SPEC section 3: the first min(R, available)
/// available servers in the cyclic order ns, ns+1, ..., wrapping) into `servers`, in subset
/// order, and its length into `*len`.
///
/// Errors: `VIBRA_NULL_POINTER` if `d` or `len` is NULL, or `servers` is NULL with `cap > 0`;
/// `VIBRA_OUT_OF_RANGE` if `ns >= N`; `VIBRA_NO_SERVER_AVAILABLE` if every server is down;
/// `VIBRA_BUFFER_TOO_SMALL` if the subset has more than `cap` servers: then `*len` receives the
/// needed length and `servers` is untouched (a capacity of R always suffices, so
/// `cap == 0` asks for the length).
///
/// Thread safety: may be called from any number of threads at once, also on the same
/// dispatcher.
///
/// # Safety
///
/// `d` is NULL or a live dispatcher; `servers` is NULL or valid for writing `cap` values; `len`
/// is NULL or writable.
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut d = std::ptr::null_mut();
let (mut buf, mut len) = ([0u32; 3], 0usize);
unsafe {
    assert_eq!(vibra_dispatcher_new(8, 3, VIBRA_HASH_FAST, &mut d), VIBRA_OK);
    assert_eq!(vibra_dispatcher_subset(d, 6, buf.as_mut_ptr(), 3, &mut len), VIBRA_OK);
    assert_eq!(&buf[..len], &[6, 7, 0]);
    assert_eq!(vibra_dispatcher_subset(d, 6, std::ptr::null_mut(), 0, &mut len), VIBRA_BUFFER_TOO_SMALL);
    assert_eq!(len, 3);
    vibra_dispatcher_free(d);
}
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_dispatcher_subset(
    d: *const vibra_dispatcher,
    ns: u32,
    servers: *mut u32,
    cap: usize,
    len: *mut usize,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY (all three): the caller's promises above.
        let d = unsafe { try_handle(d, "d") }?;
        let servers = unsafe { try_out_slice(servers, cap, "servers") }?;
        let len = unsafe { try_out(len, "len") }?;
        // Collected first, so a concurrent set_available can never leave a partial subset in
        // the caller's buffer; at most R values.
        let subset: Vec<u32> = d.subset(ns)?.collect();
        if subset.is_empty() {
            return Err(Error::NoServerAvailable.into());
        }
        servers.write_with_len(&subset, len, |needed, cap| {
            Error::BufferTooSmall { needed, cap }.into()
        })
    })
}

/// Marks `server` available (`true`) or down (`false`). Only the sub-namespaces whose subsets
/// contained a failed server change; marking it available again restores them exactly.
///
/// Errors: `VIBRA_NULL_POINTER` if `d` is NULL; `VIBRA_OUT_OF_RANGE` if `server >= N`.
///
/// Thread safety: may be called from any number of threads at once, also on the same
/// dispatcher, concurrently with lookups (one atomic operation; lookups never block).
///
/// # Safety
///
/// `d` is NULL or a live dispatcher.
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut d = std::ptr::null_mut();
let (mut buf, mut len) = ([0u32; 2], 0usize);
unsafe {
    assert_eq!(vibra_dispatcher_new(4, 2, VIBRA_HASH_FAST, &mut d), VIBRA_OK);
    assert_eq!(vibra_dispatcher_set_available(d, 1, false), VIBRA_OK);
    assert_eq!(vibra_dispatcher_subset(d, 0, buf.as_mut_ptr(), 2, &mut len), VIBRA_OK);
    assert_eq!(buf, [0, 2]);
    assert_eq!(vibra_dispatcher_set_available(d, 4, false), VIBRA_OUT_OF_RANGE);
    vibra_dispatcher_free(d);
}
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_dispatcher_set_available(
    d: *mut vibra_dispatcher,
    server: u32,
    available: bool,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY: the caller's promise above. A shared reference: the dispatcher's state is
        // atomic, so other threads may hold references at the same time.
        let d = unsafe { try_handle(d, "d") }?;
        d.set_available(server, available)?;
        Ok(())
    })
}

/// Stateless selection: stores in `*server` the member of the target's subset with the fewest
/// active connections according to `loads` (ties go to the earlier subset position, which keeps
/// the primary and so locality). `loads[s]` is server `s`'s active-connection count, kept by the
/// caller (for example in nginx shared memory so all worker processes agree); `n_loads` must be
/// the server count N.
///
/// Errors: `VIBRA_NULL_POINTER` if `d` or `server` is NULL, or `target`/`loads` is NULL with a
/// non-zero length; `VIBRA_INVALID_ARGUMENT` if `n_loads != N`; `VIBRA_NO_SERVER_AVAILABLE` if
/// every server is down.
///
/// Thread safety: may be called from any number of threads at once, also on the same
/// dispatcher. Never allocates, never blocks.
///
/// # Safety
///
/// `d` is NULL or a live dispatcher; `target` is NULL or points to `len` readable bytes;
/// `loads` is NULL or points to `n_loads` readable values; `server` is NULL or writable.
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut d = std::ptr::null_mut();
let mut server = u32::MAX;
let loads = [2u32, 1, 0, 2];
unsafe {
    // charsum: "/" is 47, 47 mod 4 = 3, so the subset is {3, 0, 1}
    assert_eq!(vibra_dispatcher_new(4, 3, VIBRA_HASH_CHARSUM, &mut d), VIBRA_OK);
    assert_eq!(vibra_dispatcher_pick(d, "/".as_ptr().cast(), 1, loads.as_ptr(), 4, &mut server), VIBRA_OK);
    assert_eq!(server, 1);
    vibra_dispatcher_free(d);
}
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_dispatcher_pick(
    d: *const vibra_dispatcher,
    target: *const c_char,
    len: usize,
    loads: *const u32,
    n_loads: usize,
    server: *mut u32,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY (all four): the caller's promises above.
        let d = unsafe { try_handle(d, "d") }?;
        let target = unsafe { try_bytes(target, len, "target") }?;
        let loads = unsafe { try_slice(loads, n_loads, "loads") }?;
        let server = unsafe { try_out(server, "server") }?;
        server.write(d.pick(target, loads)?);
        Ok(())
    })
}

/// Stateless selection under the caller's view of which servers are up: as
/// `vibra_dispatcher_pick`, but availability comes from `up`, not from the dispatcher (whose
/// own availability is neither read nor changed). `up` is a bitset of `n_up` words: bit
/// `s % 64` of `up[s / 64]` set means server `s` is up; `n_up` must be `ceil(N / 64)`, and bits
/// at or past N are ignored. A front end with its own health state (nginx peers, HAProxy
/// servers) passes it per request instead of calling `vibra_dispatcher_set_available`, so it
/// never writes shared dispatcher state per request. The choice is exactly what
/// `vibra_dispatcher_pick` chooses after `vibra_dispatcher_set_available` to the same state.
///
/// Errors: `VIBRA_NULL_POINTER` if `d` or `server` is NULL, or `target`/`loads`/`up` is NULL
/// with a non-zero length; `VIBRA_INVALID_ARGUMENT` if `n_loads != N` or `n_up != ceil(N / 64)`;
/// `VIBRA_NO_SERVER_AVAILABLE` if no server is up in `up`.
///
/// Thread safety: may be called from any number of threads at once, also on the same
/// dispatcher. Never allocates, never blocks, writes nothing but `*server`.
///
/// # Safety
///
/// `d` is NULL or a live dispatcher; `target` is NULL or points to `len` readable bytes;
/// `loads` is NULL or points to `n_loads` readable values; `up` is NULL or points to `n_up`
/// readable words; `server` is NULL or writable.
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut d = std::ptr::null_mut();
let mut server = u32::MAX;
let loads = [0u32, 0, 0, 0];
unsafe {
    // charsum: "/" is 47, 47 mod 4 = 3, so the subset is {3, 0} with every server up
    assert_eq!(vibra_dispatcher_new(4, 2, VIBRA_HASH_CHARSUM, &mut d), VIBRA_OK);
    let up = [0b0111u64]; // server 3 is down in the caller's view: the subset is {0, 1}
    assert_eq!(
        vibra_dispatcher_pick_with(d, "/".as_ptr().cast(), 1, loads.as_ptr(), 4, up.as_ptr(), 1, &mut server),
        VIBRA_OK
    );
    assert_eq!(server, 0);
    // the dispatcher's own view is unchanged
    assert_eq!(vibra_dispatcher_pick(d, "/".as_ptr().cast(), 1, loads.as_ptr(), 4, &mut server), VIBRA_OK);
    assert_eq!(server, 3);
    vibra_dispatcher_free(d);
}
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_dispatcher_pick_with(
    d: *const vibra_dispatcher,
    target: *const c_char,
    len: usize,
    loads: *const u32,
    n_loads: usize,
    up: *const u64,
    n_up: usize,
    server: *mut u32,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY (all five): the caller's promises above.
        let d = unsafe { try_handle(d, "d") }?;
        let target = unsafe { try_bytes(target, len, "target") }?;
        let loads = unsafe { try_slice(loads, n_loads, "loads") }?;
        let up = unsafe { try_slice(up, n_up, "up") }?;
        let server = unsafe { try_out(server, "server") }?;
        server.write(d.pick_with(target, loads, up)?);
        Ok(())
    })
}

/// Selection with the built-in counters: picks like `vibra_dispatcher_pick` using the
/// dispatcher's own active-connection counts, counts one more connection on the chosen server
/// and stores it in `*server`. Pass the server to `vibra_dispatcher_release` when the
/// connection ends.
///
/// Errors: `VIBRA_NULL_POINTER` if `d` or `server` is NULL, or `target` is NULL with `len > 0`;
/// `VIBRA_NO_SERVER_AVAILABLE` if every server is down, or the chosen one already counts
/// `UINT32_MAX` active connections (nothing is counted).
///
/// Thread safety: may be called from any number of threads at once, also on the same
/// dispatcher (lock-free; two concurrent acquires may see the same counts and choose the same
/// server, as with any shared counters).
///
/// # Safety
///
/// `d` is NULL or a live dispatcher; `target` is NULL or points to `len` readable bytes;
/// `server` is NULL or writable.
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut d = std::ptr::null_mut();
let (mut first, mut second) = (0u32, 0u32);
unsafe {
    assert_eq!(vibra_dispatcher_new(4, 2, VIBRA_HASH_CHARSUM, &mut d), VIBRA_OK);
    assert_eq!(vibra_dispatcher_acquire(d, "/".as_ptr().cast(), 1, &mut first), VIBRA_OK);
    assert_eq!(vibra_dispatcher_acquire(d, "/".as_ptr().cast(), 1, &mut second), VIBRA_OK);
    assert_eq!((first, second), (3, 0)); // the primary is busy, so its replica takes the second
    assert_eq!(vibra_dispatcher_release(d, first), VIBRA_OK);
    assert_eq!(vibra_dispatcher_release(d, second), VIBRA_OK);
    vibra_dispatcher_free(d);
}
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_dispatcher_acquire(
    d: *mut vibra_dispatcher,
    target: *const c_char,
    len: usize,
    server: *mut u32,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY (all three): the caller's promises above; a shared reference, as the counters
        // are atomics shared between threads.
        let d = unsafe { try_handle(d, "d") }?;
        let target = unsafe { try_bytes(target, len, "target") }?;
        let server = unsafe { try_out(server, "server") }?;
        server.write(d.acquire_server(target)?);
        Ok(())
    })
}

/// Ends one active connection on `server` in the built-in counters.
///
/// Errors: `VIBRA_NULL_POINTER` if `d` is NULL; `VIBRA_OUT_OF_RANGE` if `server >= N`;
/// `VIBRA_NOT_ACQUIRED` if `server` has no active connection (the counter never goes below 0).
///
/// Thread safety: may be called from any number of threads at once, also on the same
/// dispatcher.
///
/// # Safety
///
/// `d` is NULL or a live dispatcher.
#[cfg_attr(
    doc,
    doc = r#"
```
use vibra::*;
let mut d = std::ptr::null_mut();
unsafe {
    assert_eq!(vibra_dispatcher_new(2, 1, VIBRA_HASH_FAST, &mut d), VIBRA_OK);
    assert_eq!(vibra_dispatcher_release(d, 1), VIBRA_NOT_ACQUIRED);
    vibra_dispatcher_free(d);
}
```
"#
)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vibra_dispatcher_release(
    d: *mut vibra_dispatcher,
    server: u32,
) -> vibra_status {
    ffi_boundary!({
        // SAFETY: the caller's promise above; shared, as in `vibra_dispatcher_acquire`.
        let d = unsafe { try_handle(d, "d") }?;
        d.release(server)?;
        Ok(())
    })
}
