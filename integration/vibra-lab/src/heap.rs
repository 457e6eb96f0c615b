//! Measures heap growth, for table 3.2's "memory per distinct object": the process's global
//! allocator is the system allocator wrapped with a per-thread count of live bytes, so a
//! single-threaded measurement is not disturbed by other threads (e.g. parallel tests).
//!
//! This is the crate's only `unsafe`: implementing [`GlobalAlloc`] is an unsafe trait, and
//! every method only forwards to [`System`] with the caller's own arguments.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator plus a per-thread byte count.
pub(crate) struct CountingAllocator;

thread_local! {
    // `const` initialisation: no lazy set-up, so no allocation happens inside the allocator.
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn add(delta: i64) {
    // `try_with`: during thread teardown the slot may be gone; such frees are not measured.
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees are ours; the bookkeeping touches only a thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's (a non-zero-sized layout).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (hence by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as i64));
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr`/`layout` come from this allocator and `new_size` is the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// Bytes allocated and not yet freed by the calling thread since it started (frees of memory
/// another thread allocated count too, so measure single-threaded work).
///
/// ```
/// let before = vibra_lab::thread_heap_bytes();
/// let v = vec![0u8; 4096];
/// assert_eq!(vibra_lab::thread_heap_bytes() - before, 4096);
/// drop(v);
/// assert_eq!(vibra_lab::thread_heap_bytes(), before);
/// ```
pub fn thread_heap_bytes() -> i64 {
    LIVE.try_with(Cell::get).unwrap_or(0)
}
