use std::ptr::{null, null_mut};

use ::vibra_hash::{Dispatcher, HashKind};
use proptest::prelude::*;

use super::support::last_error;
use crate::boundary::with_forced_panics;
use crate::*;

/// A dispatcher made through the C entry point, freed on drop.
struct Handle(*mut vibra_dispatcher);

impl Handle {
    fn new(servers: u32, replication: u32, hash: vibra_hash) -> Handle {
        let mut d = null_mut();
        // SAFETY: `d` is writable.
        let st = unsafe { vibra_dispatcher_new(servers, replication, hash, &mut d) };
        assert_eq!(st, VIBRA_OK, "{}", last_error());
        assert!(!d.is_null());
        Handle(d)
    }

    fn namespace(&self, target: &[u8]) -> Result<u32, vibra_status> {
        let mut ns = 0;
        // SAFETY: live handle, `target` readable, `ns` writable.
        let st = unsafe {
            vibra_dispatcher_namespace(self.0, target.as_ptr().cast(), target.len(), &mut ns)
        };
        if st == VIBRA_OK { Ok(ns) } else { Err(st) }
    }

    fn subset(&self, ns: u32) -> Result<Vec<u32>, vibra_status> {
        let mut buf = vec![0; 64];
        let mut len = 0;
        // SAFETY: `buf` holds 64 values.
        let st =
            unsafe { vibra_dispatcher_subset(self.0, ns, buf.as_mut_ptr(), buf.len(), &mut len) };
        buf.truncate(len);
        if st == VIBRA_OK { Ok(buf) } else { Err(st) }
    }

    fn set_available(&self, server: u32, up: bool) -> vibra_status {
        // SAFETY: live handle.
        unsafe { vibra_dispatcher_set_available(self.0, server, up) }
    }

    fn pick(&self, target: &[u8], loads: &[u32]) -> Result<u32, vibra_status> {
        let mut server = u32::MAX;
        // SAFETY: live handle, readable inputs, writable output.
        let st = unsafe {
            vibra_dispatcher_pick(
                self.0,
                target.as_ptr().cast(),
                target.len(),
                loads.as_ptr(),
                loads.len(),
                &mut server,
            )
        };
        if st == VIBRA_OK { Ok(server) } else { Err(st) }
    }

    fn acquire(&self, target: &[u8]) -> Result<u32, vibra_status> {
        let mut server = u32::MAX;
        // SAFETY: live handle, readable target, writable output.
        let st = unsafe {
            vibra_dispatcher_acquire(self.0, target.as_ptr().cast(), target.len(), &mut server)
        };
        if st == VIBRA_OK { Ok(server) } else { Err(st) }
    }

    fn release(&self, server: u32) -> vibra_status {
        // SAFETY: live handle.
        unsafe { vibra_dispatcher_release(self.0, server) }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: made by `vibra_dispatcher_new`, not used again.
        unsafe { vibra_dispatcher_free(self.0) }
    }
}

const SENTINEL: u32 = 0xDEAD_BEEF;

#[test]
fn hash_constants_are_the_crate_codes() {
    let ours = [
        VIBRA_HASH_CHARSUM,
        VIBRA_HASH_MD5,
        VIBRA_HASH_SHA1,
        VIBRA_HASH_FAST,
    ];
    let theirs = [
        HashKind::Charsum,
        HashKind::Md5,
        HashKind::Sha1,
        HashKind::Fast,
    ];
    for (c, kind) in ours.into_iter().zip(theirs) {
        assert_eq!(c, kind.code());
    }
}

#[test]
fn new_rejects_bad_arguments_and_leaves_out_untouched() {
    let marker = 0x1234usize as *mut vibra_dispatcher;
    let cases = [
        (4, 2, 4, VIBRA_INVALID_ENUM),
        (4, 2, u32::MAX, VIBRA_INVALID_ENUM),
        (0, 1, VIBRA_HASH_FAST, VIBRA_INVALID_ARGUMENT),
        (4, 0, VIBRA_HASH_FAST, VIBRA_INVALID_ARGUMENT),
        (4, 5, VIBRA_HASH_FAST, VIBRA_INVALID_ARGUMENT),
        ((1 << 20) + 1, 1, VIBRA_HASH_FAST, VIBRA_INVALID_ARGUMENT),
    ];
    for (servers, replication, hash, expected) in cases {
        let mut out = marker;
        // SAFETY: `out` is writable.
        let st = unsafe { vibra_dispatcher_new(servers, replication, hash, &mut out) };
        assert_eq!(st, expected, "({servers}, {replication}, {hash})");
        assert_eq!(out, marker);
        assert!(!last_error().is_empty());
    }
    // SAFETY: a NULL out-parameter is reported, never written.
    let st = unsafe { vibra_dispatcher_new(4, 2, VIBRA_HASH_FAST, null_mut()) };
    assert_eq!(st, VIBRA_NULL_POINTER);
    assert_eq!(last_error(), "argument `out` is NULL");
}

#[test]
fn free_of_null_is_a_no_op() {
    // SAFETY: NULL is documented as a no-op.
    unsafe { vibra_dispatcher_free(null_mut()) };
}

#[test]
fn namespace_matches_the_crate_and_checks_pointers() {
    for hash in [
        VIBRA_HASH_CHARSUM,
        VIBRA_HASH_MD5,
        VIBRA_HASH_SHA1,
        VIBRA_HASH_FAST,
    ] {
        let h = Handle::new(7, 2, hash);
        let rust = Dispatcher::new(7, 2, HashKind::try_from(hash).unwrap()).unwrap();
        for target in [
            &b"/"[..],
            b"http://x.org/a/b?c#d",
            b"/\xff\x00bin",
            b"?only-query",
        ] {
            assert_eq!(h.namespace(target), Ok(rust.namespace(target)));
        }
        let mut ns = SENTINEL;
        // SAFETY: a zero-length target may be NULL: it is the key "/".
        assert_eq!(
            unsafe { vibra_dispatcher_namespace(h.0, null(), 0, &mut ns) },
            VIBRA_OK
        );
        assert_eq!(ns, rust.namespace(b"/"));
        let mut ns = SENTINEL;
        // SAFETY: each call has exactly one NULL argument, which must be reported.
        unsafe {
            assert_eq!(
                vibra_dispatcher_namespace(h.0, null(), 3, &mut ns),
                VIBRA_NULL_POINTER
            );
            assert_eq!(
                vibra_dispatcher_namespace(null(), c"/".as_ptr(), 1, &mut ns),
                VIBRA_NULL_POINTER
            );
            assert_eq!(
                vibra_dispatcher_namespace(h.0, c"/".as_ptr(), 1, null_mut()),
                VIBRA_NULL_POINTER
            );
        }
        assert_eq!(ns, SENTINEL);
    }
}

#[test]
fn subset_reports_the_needed_length_and_leaves_the_buffer_untouched() {
    let h = Handle::new(8, 3, VIBRA_HASH_FAST);
    assert_eq!(h.subset(6), Ok(vec![6, 7, 0]));
    let mut buf = [SENTINEL; 2];
    let mut len = 99usize;
    // SAFETY: `buf` holds 2 values.
    let st = unsafe { vibra_dispatcher_subset(h.0, 6, buf.as_mut_ptr(), 2, &mut len) };
    assert_eq!(st, VIBRA_BUFFER_TOO_SMALL);
    assert_eq!(len, 3);
    assert_eq!(buf, [SENTINEL; 2]);
    let mut len = 99usize;
    // SAFETY: NULL with capacity 0 asks for the length.
    let st = unsafe { vibra_dispatcher_subset(h.0, 6, null_mut(), 0, &mut len) };
    assert_eq!((st, len), (VIBRA_BUFFER_TOO_SMALL, 3));
    let mut len = 99usize;
    // SAFETY: each call has a bad argument that must be reported before anything is written.
    unsafe {
        assert_eq!(
            vibra_dispatcher_subset(h.0, 6, null_mut(), 3, &mut len),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_dispatcher_subset(h.0, 6, buf.as_mut_ptr(), 2, null_mut()),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_dispatcher_subset(null(), 6, buf.as_mut_ptr(), 2, &mut len),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_dispatcher_subset(h.0, 8, buf.as_mut_ptr(), 2, &mut len),
            VIBRA_OUT_OF_RANGE
        );
        assert_eq!(
            vibra_dispatcher_subset(h.0, u32::MAX, buf.as_mut_ptr(), 2, &mut len),
            VIBRA_OUT_OF_RANGE
        );
    }
    assert_eq!((len, buf), (99, [SENTINEL; 2]));
    assert!(last_error().contains("out of range"), "{}", last_error());
}

#[test]
fn failures_move_only_the_failed_servers_instances() {
    let h = Handle::new(6, 2, VIBRA_HASH_MD5);
    let before: Vec<_> = (0..6).map(|ns| h.subset(ns).unwrap()).collect();
    assert_eq!(h.set_available(2, false), VIBRA_OK);
    for (ns, old) in before.iter().enumerate() {
        let new = h.subset(ns as u32).unwrap();
        assert!(!new.contains(&2));
        for s in old.iter().filter(|&&s| s != 2) {
            assert!(new.contains(s), "ns {ns}: survivor {s} lost its instance");
        }
    }
    assert_eq!(h.set_available(2, true), VIBRA_OK);
    let after: Vec<_> = (0..6).map(|ns| h.subset(ns).unwrap()).collect();
    assert_eq!(after, before);
    assert_eq!(h.set_available(6, false), VIBRA_OUT_OF_RANGE);
    // SAFETY: a NULL dispatcher must be reported.
    assert_eq!(
        unsafe { vibra_dispatcher_set_available(null_mut(), 0, false) },
        VIBRA_NULL_POINTER
    );
}

#[test]
fn every_server_down_is_no_server_available() {
    let h = Handle::new(3, 2, VIBRA_HASH_CHARSUM);
    for s in 0..3 {
        assert_eq!(h.set_available(s, false), VIBRA_OK);
    }
    assert_eq!(h.subset(0), Err(VIBRA_NO_SERVER_AVAILABLE));
    assert_eq!(h.pick(b"/a", &[0, 0, 0]), Err(VIBRA_NO_SERVER_AVAILABLE));
    assert_eq!(h.acquire(b"/a"), Err(VIBRA_NO_SERVER_AVAILABLE));
    assert_eq!(last_error(), "no server available");
    for s in 0..3 {
        assert_eq!(
            h.release(s),
            VIBRA_NOT_ACQUIRED,
            "a failed acquire counted nothing"
        );
    }
}

#[test]
fn pick_checks_its_arguments_and_leaves_server_untouched() {
    let h = Handle::new(4, 3, VIBRA_HASH_CHARSUM);
    assert_eq!(h.pick(b"/", &[2, 1, 0, 2]), Ok(1));
    assert_eq!(h.pick(b"/", &[1, 1, 0, 1]), Ok(3), "ties keep the primary");
    assert_eq!(h.pick(b"/", &[0; 3]), Err(VIBRA_INVALID_ARGUMENT));
    assert_eq!(h.pick(b"/", &[0; 5]), Err(VIBRA_INVALID_ARGUMENT));
    let mut server = SENTINEL;
    let loads = [0u32; 4];
    // SAFETY: each call has a bad argument that must be reported before anything is written.
    unsafe {
        assert_eq!(
            vibra_dispatcher_pick(h.0, null(), 0, null(), 0, &mut server),
            VIBRA_INVALID_ARGUMENT
        );
        assert_eq!(
            vibra_dispatcher_pick(h.0, null(), 0, null(), 4, &mut server),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_dispatcher_pick(h.0, null(), 1, loads.as_ptr(), 4, &mut server),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_dispatcher_pick(null(), null(), 0, loads.as_ptr(), 4, &mut server),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_dispatcher_pick(h.0, null(), 0, loads.as_ptr(), 4, null_mut()),
            VIBRA_NULL_POINTER
        );
    }
    assert_eq!(server, SENTINEL);
    // SAFETY: an empty target may be NULL.
    assert_eq!(
        unsafe { vibra_dispatcher_pick(h.0, null(), 0, loads.as_ptr(), 4, &mut server) },
        VIBRA_OK
    );
    assert_eq!(
        server, 3,
        "the empty key is \"/\", whose charsum 47 is 3 mod 4"
    );
}

#[test]
fn acquire_and_release_count_connections() {
    let h = Handle::new(4, 2, VIBRA_HASH_CHARSUM); // "/" -> {3, 0}
    assert_eq!(h.acquire(b"/"), Ok(3));
    assert_eq!(h.acquire(b"/"), Ok(0));
    assert_eq!(h.acquire(b"/"), Ok(3));
    assert_eq!(h.release(3), VIBRA_OK);
    assert_eq!(h.release(3), VIBRA_OK);
    assert_eq!(h.release(3), VIBRA_NOT_ACQUIRED);
    assert_eq!(h.release(0), VIBRA_OK);
    assert_eq!(h.release(4), VIBRA_OUT_OF_RANGE);
    let mut server = SENTINEL;
    // SAFETY: each call has one NULL argument that must be reported.
    unsafe {
        assert_eq!(
            vibra_dispatcher_acquire(null_mut(), null(), 0, &mut server),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_dispatcher_acquire(h.0, null(), 2, &mut server),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_dispatcher_acquire(h.0, null(), 0, null_mut()),
            VIBRA_NULL_POINTER
        );
        assert_eq!(vibra_dispatcher_release(null_mut(), 0), VIBRA_NULL_POINTER);
    }
    assert_eq!(server, SENTINEL);
    for s in 0..4 {
        assert_eq!(
            h.release(s),
            VIBRA_NOT_ACQUIRED,
            "failed calls counted nothing"
        );
    }
}

#[test]
fn acquire_and_release_from_many_threads_balance_out() {
    let h = Handle::new(5, 3, VIBRA_HASH_FAST);
    let d = h.0 as usize;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let h = Handle(d as *mut vibra_dispatcher);
                for i in 0..500 {
                    let url = format!("/t{t}/{i}");
                    let s = h.acquire(url.as_bytes()).unwrap();
                    assert_eq!(h.release(s), VIBRA_OK);
                }
                std::mem::forget(h); // owned by the main thread
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for s in 0..5 {
        assert_eq!(h.release(s), VIBRA_NOT_ACQUIRED);
    }
}

#[test]
fn panics_inside_dispatch_functions_come_back_as_a_status() {
    let h = Handle::new(4, 2, VIBRA_HASH_FAST);
    let loads = [0u32; 4];
    let (mut ns, mut server, mut len, mut buf) = (SENTINEL, SENTINEL, 77usize, [SENTINEL; 4]);
    let mut out = null_mut();
    with_forced_panics(|| {
        // SAFETY: valid arguments throughout; only the forced panic can fail these calls.
        unsafe {
            assert_eq!(
                vibra_dispatcher_new(4, 2, VIBRA_HASH_FAST, &mut out),
                VIBRA_PANIC
            );
            assert_eq!(
                vibra_dispatcher_namespace(h.0, c"/".as_ptr(), 1, &mut ns),
                VIBRA_PANIC
            );
            assert_eq!(
                vibra_dispatcher_subset(h.0, 0, buf.as_mut_ptr(), 4, &mut len),
                VIBRA_PANIC
            );
            assert_eq!(vibra_dispatcher_set_available(h.0, 0, false), VIBRA_PANIC);
            assert_eq!(
                vibra_dispatcher_pick(h.0, c"/".as_ptr(), 1, loads.as_ptr(), 4, &mut server),
                VIBRA_PANIC
            );
            assert_eq!(
                vibra_dispatcher_acquire(h.0, c"/".as_ptr(), 1, &mut server),
                VIBRA_PANIC
            );
            assert_eq!(vibra_dispatcher_release(h.0, 0), VIBRA_PANIC);
            vibra_dispatcher_free(null_mut());
        }
    });
    assert!(out.is_null());
    assert_eq!(
        (ns, server, len, buf),
        (SENTINEL, SENTINEL, 77, [SENTINEL; 4])
    );
    assert!(last_error().starts_with("panic inside libvibra (vibra_dispatcher_free)"));
    assert_eq!(h.subset(0), Ok(vec![0, 1]), "set_available did nothing");
    assert_eq!(h.release(0), VIBRA_NOT_ACQUIRED, "acquire counted nothing");
}

fn hash_code() -> impl Strategy<Value = vibra_hash> {
    prop_oneof![
        Just(VIBRA_HASH_CHARSUM),
        Just(VIBRA_HASH_MD5),
        Just(VIBRA_HASH_SHA1),
        Just(VIBRA_HASH_FAST)
    ]
}

proptest! {
    /// The C entry points make exactly the decisions of the Rust crate, with any servers down.
    #[test]
    fn c_pick_and_subset_agree_with_the_rust_dispatcher(
        servers in 1u32..24,
        r_seed in 0u32..1000,
        hash in hash_code(),
        down in proptest::collection::vec(any::<bool>(), 24),
        target in proptest::collection::vec(any::<u8>(), 0..40),
        load_seed in proptest::collection::vec(0u32..5, 24),
    ) {
        let replication = 1 + r_seed % servers;
        let h = Handle::new(servers, replication, hash);
        let rust = Dispatcher::new(servers, replication, HashKind::try_from(hash).unwrap()).unwrap();
        for s in 0..servers {
            let up = !down[s as usize];
            prop_assert_eq!(h.set_available(s, up), VIBRA_OK);
            rust.set_available(s, up).unwrap();
        }
        let loads = &load_seed[..servers as usize];
        let expected = rust.pick(&target, loads).map_err(|_| VIBRA_NO_SERVER_AVAILABLE);
        prop_assert_eq!(h.pick(&target, loads), expected);
        let ns = rust.namespace(&target);
        prop_assert_eq!(h.namespace(&target), Ok(ns));
        let expected = match rust.subset(ns).map(|s| s.collect::<Vec<_>>()) {
            Ok(subset) if !subset.is_empty() => Ok(subset),
            _ => Err(VIBRA_NO_SERVER_AVAILABLE),
        };
        prop_assert_eq!(h.subset(ns), expected);
    }
}

/// `vibra_dispatcher_pick_with` with an availability bitset of `words` (up to 130 servers, so
/// one to three words).
fn pick_with(h: &Handle, target: &[u8], loads: &[u32], words: &[u64]) -> Result<u32, vibra_status> {
    let mut server = u32::MAX;
    // SAFETY: live handle, readable inputs, writable output.
    let st = unsafe {
        vibra_dispatcher_pick_with(
            h.0,
            target.as_ptr().cast(),
            target.len(),
            loads.as_ptr(),
            loads.len(),
            words.as_ptr(),
            words.len(),
            &mut server,
        )
    };
    if st == VIBRA_OK { Ok(server) } else { Err(st) }
}

#[test]
fn pick_with_checks_its_arguments_and_leaves_the_dispatcher_untouched() {
    let h = Handle::new(4, 2, VIBRA_HASH_CHARSUM); // "/" -> {3, 0}
    let loads = [0u32; 4];
    assert_eq!(pick_with(&h, b"/", &loads, &[0b1111]), Ok(3));
    assert_eq!(pick_with(&h, b"/", &loads, &[0b0111]), Ok(0));
    // Bits at or past N are ignored.
    assert_eq!(pick_with(&h, b"/", &loads, &[!0b1000]), Ok(0));
    assert_eq!(
        pick_with(&h, b"/", &loads, &[0]),
        Err(VIBRA_NO_SERVER_AVAILABLE)
    );
    assert_eq!(
        pick_with(&h, b"/", &loads, &[!0u64 << 4]),
        Err(VIBRA_NO_SERVER_AVAILABLE)
    );
    assert_eq!(
        pick_with(&h, b"/", &loads, &[]),
        Err(VIBRA_INVALID_ARGUMENT)
    );
    assert_eq!(
        pick_with(&h, b"/", &loads, &[1, 1]),
        Err(VIBRA_INVALID_ARGUMENT)
    );
    assert_eq!(
        pick_with(&h, b"/", &[0; 3], &[1]),
        Err(VIBRA_INVALID_ARGUMENT)
    );
    // The dispatcher's own availability is neither read nor changed.
    assert_eq!(h.set_available(3, false), VIBRA_OK);
    assert_eq!(pick_with(&h, b"/", &loads, &[0b1111]), Ok(3));
    assert_eq!(h.pick(b"/", &loads), Ok(0));
    let mut server = 7u32;
    // SAFETY: NULL `up` with a non-zero length must be refused before any read.
    let st = unsafe {
        vibra_dispatcher_pick_with(
            h.0,
            c"/".as_ptr(),
            1,
            loads.as_ptr(),
            4,
            null(),
            1,
            &mut server,
        )
    };
    assert_eq!(st, VIBRA_NULL_POINTER);
    assert_eq!(server, 7, "nothing written on error");
    // SAFETY: NULL output.
    let st = unsafe {
        vibra_dispatcher_pick_with(
            h.0,
            c"/".as_ptr(),
            1,
            loads.as_ptr(),
            4,
            [1u64].as_ptr(),
            1,
            null_mut(),
        )
    };
    assert_eq!(st, VIBRA_NULL_POINTER);
}

proptest! {
    /// Picking with the caller's availability is picking after telling the dispatcher the
    /// same availability, for every hash and up to three bitset words.
    #[test]
    fn c_pick_with_equals_pick_after_set_available(
        servers in 1u32..130,
        r_seed in 0u32..1000,
        hash in hash_code(),
        down in proptest::collection::vec(any::<bool>(), 130),
        garbage in any::<u64>(),
        target in proptest::collection::vec(any::<u8>(), 0..40),
        load_seed in proptest::collection::vec(0u32..5, 130),
    ) {
        let replication = 1 + r_seed % servers;
        let h = Handle::new(servers, replication, hash);
        let rust = Dispatcher::new(servers, replication, HashKind::try_from(hash).unwrap()).unwrap();
        let mut words = vec![0u64; servers.div_ceil(64) as usize];
        for s in 0..servers {
            let up = !down[s as usize];
            rust.set_available(s, up).unwrap();
            words[(s / 64) as usize] |= u64::from(up) << (s % 64);
        }
        if servers % 64 != 0 {
            // Bits at or past N carry garbage: they must be ignored.
            *words.last_mut().unwrap() |= garbage << (servers % 64);
        }
        let loads = &load_seed[..servers as usize];
        let expected = rust.pick(&target, loads).map_err(|_| VIBRA_NO_SERVER_AVAILABLE);
        prop_assert_eq!(pick_with(&h, &target, loads, &words), expected);
    }
}
