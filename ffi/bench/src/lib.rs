//! # vibra-ffi-bench
//!
//! The C half of libvibra's pick benchmark (`benches/pick.rs`, `ffi/README.md`): `c/pick_loop.c`,
//! a C program's dispatch loop calling `vibra_dispatcher_pick` through `vibra.h` exactly as an
//! nginx module would, compiled by `build.rs` and linked into this crate, with the Rust
//! declarations to call it. It is a package of its own (`publish = false`) so that building or
//! installing libvibra never needs a C compiler nor compiles benchmark C.
//!
//! ```
//! use vibra::{VIBRA_HASH_FAST, VIBRA_OK, vibra_dispatcher_free, vibra_dispatcher_new};
//! use vibra_ffi_bench::{CTargets, c_pick_loop, synthetic_targets};
//!
//! let targets = synthetic_targets(64);
//! let mut d = std::ptr::null_mut();
//! // SAFETY: `d` is writable; freed below.
//! assert_eq!(unsafe { vibra_dispatcher_new(4, 2, VIBRA_HASH_FAST, &mut d) }, VIBRA_OK);
//! // SAFETY: `d` is a live dispatcher.
//! let sum = unsafe { c_pick_loop(d, &CTargets::new(&targets), &[0; 4]) };
//! assert!(sum <= 3 * 64); // 64 decisions, each a server below 4
//! // SAFETY: made above, not used again.
//! unsafe { vibra_dispatcher_free(d) };
//! ```

use std::ffi::{c_char, c_void};
use std::marker::PhantomData;

use vibra::vibra_dispatcher;

unsafe extern "C" {
    /// The C loop of `c/pick_loop.c` (`d` is a `const vibra_dispatcher *`; declared as `c_void`
    /// because the Rust marker type is deliberately not `repr(C)`).
    fn bench_c_pick_loop(
        d: *const c_void,
        targets: *const *const c_char,
        lens: *const usize,
        n: usize,
        loads: *const u32,
        n_loads: usize,
    ) -> u64;
}

/// Request-targets as the C loop takes them: an array of pointers and an array of lengths,
/// built once, borrowing the targets.
///
/// ```
/// let targets = vec![b"/a".to_vec(), b"/bc".to_vec()];
/// assert_eq!(vibra_ffi_bench::CTargets::new(&targets).len(), 2);
/// ```
#[derive(Debug)]
pub struct CTargets<'a> {
    pointers: Vec<*const c_char>,
    lens: Vec<usize>,
    targets: PhantomData<&'a [Vec<u8>]>,
}

impl<'a> CTargets<'a> {
    /// The pointer and length arrays of `targets`.
    ///
    /// ```
    /// let targets = [b"/x".to_vec()];
    /// assert!(!vibra_ffi_bench::CTargets::new(&targets).is_empty());
    /// ```
    #[must_use]
    pub fn new(targets: &'a [Vec<u8>]) -> CTargets<'a> {
        CTargets {
            pointers: targets.iter().map(|t| t.as_ptr().cast()).collect(),
            lens: targets.iter().map(Vec::len).collect(),
            targets: PhantomData,
        }
    }

    /// The number of targets.
    ///
    /// ```
    /// assert_eq!(vibra_ffi_bench::CTargets::new(&[]).len(), 0);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.pointers.len()
    }

    /// Whether there are no targets.
    ///
    /// ```
    /// assert!(vibra_ffi_bench::CTargets::new(&[]).is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pointers.is_empty()
    }
}

/// Runs the C loop: `vibra_dispatcher_pick(d, target, len, loads, loads.len(), &server)` for
/// every target, in order, and returns the sum of the servers picked by the calls that returned
/// `VIBRA_OK` (the Rust side of the benchmark computes the same sum).
///
/// # Safety
///
/// `d` is a live dispatcher from `vibra_dispatcher_new`, not freed during the call.
///
/// ```
/// use vibra::{VIBRA_HASH_CHARSUM, VIBRA_OK, vibra_dispatcher_free, vibra_dispatcher_new};
/// use vibra_hash::{Dispatcher, HashKind};
///
/// let targets = vec![b"/index.html".to_vec(), b"/images/logo.gif?v=2".to_vec()];
/// let loads = [3, 0, 1, 2];
/// let rust = Dispatcher::new(4, 2, HashKind::Charsum).unwrap();
/// let expected: u64 = targets.iter().map(|t| u64::from(rust.pick(t, &loads).unwrap())).sum();
/// let mut d = std::ptr::null_mut();
/// // SAFETY: `d` is writable; then live until freed.
/// unsafe {
///     assert_eq!(vibra_dispatcher_new(4, 2, VIBRA_HASH_CHARSUM, &mut d), VIBRA_OK);
///     let c = vibra_ffi_bench::c_pick_loop(d, &vibra_ffi_bench::CTargets::new(&targets), &loads);
///     assert_eq!(c, expected);
///     vibra_dispatcher_free(d);
/// }
/// ```
#[inline]
pub unsafe fn c_pick_loop(
    d: *const vibra_dispatcher,
    targets: &CTargets<'_>,
    loads: &[u32],
) -> u64 {
    // SAFETY: the arrays hold `targets.len()` entries each, pointing into targets borrowed for
    // `CTargets`' lifetime; `loads` is a live slice; the caller promises `d` is live.
    unsafe {
        bench_c_pick_loop(
            d.cast(),
            targets.pointers.as_ptr(),
            targets.lens.as_ptr(),
            targets.len(),
            loads.as_ptr(),
            loads.len(),
        )
    }
}

/// `n` generated request-targets shaped like the World Cup site's (paths, queries), for machines
/// without the data: `/english/images/team_<i % 32>/photo_<i>.jpg?v=<i % 7>`.
///
/// ```
/// let t = vibra_ffi_bench::synthetic_targets(3);
/// assert_eq!(t[2], b"/english/images/team_2/photo_2.jpg?v=2".to_vec());
/// ```
#[must_use]
pub fn synthetic_targets(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("/english/images/team_{}/photo_{i}.jpg?v={}", i % 32, i % 7).into_bytes())
        .collect()
}
