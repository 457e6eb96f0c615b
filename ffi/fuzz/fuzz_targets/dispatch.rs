//! The dispatcher's C API (`vibra_dispatcher_*`, SPEC sections 1-3 and 8) driven as a C caller
//! would: construction with any server count, replication and hash (valid or not), then any
//! sequence of namespace / subset / pick / pick_with / acquire / release / set_available calls
//! with targets of any bytes and lengths, load arrays and availability bitsets of any length,
//! NULL pointers and small capacities.
//!
//! A model of the dispatcher's state (which servers are up, the built-in connection counts)
//! follows the calls that succeeded, and every result is checked against SPEC section 3 on it:
//! a subset is the first min(R, alive) available servers in cyclic order from the
//! sub-namespace, a pick is the least-loaded member of the target's subset (ties to the earlier
//! position), an acquire is that pick on the built-in counts. Failed calls must leave their
//! out-parameters (sentinels) and the dispatcher (the model) untouched.
#![no_main]

use std::ffi::{CStr, c_char};

use ffi_fuzz::{
    Contract, Expect, SENTINEL_U32, SENTINEL_USIZE, mut_ptr_or_null, ptr_or_null, rare,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use vibra::*;

/// `Dispatcher::MAX_SERVERS`, from vibra.h's documentation of `vibra_dispatcher_new`.
const MAX_SERVERS: u32 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

/// What the dispatcher must be: SPEC section 3's rules on the state the calls so far produced.
struct Model {
    n: u32,
    r: u32,
    available: Vec<bool>,
    alive: usize,
    active: Vec<u32>,
}

impl Model {
    fn alive(&self) -> usize {
        self.alive
    }

    fn set_available(&mut self, server: u32, available: bool) {
        let slot = &mut self.available[server as usize];
        match (*slot, available) {
            (false, true) => self.alive += 1,
            (true, false) => self.alive -= 1,
            _ => {}
        }
        *slot = available;
    }

    /// subset(ns): the first min(R, alive) available servers in the order ns, ns+1, ... (mod N).
    fn subset(&self, ns: u32) -> Vec<u32> {
        let mut out = Vec::new();
        for k in 0..self.n {
            let s = ((u64::from(ns) + u64::from(k)) % u64::from(self.n)) as u32;
            if self.available[s as usize] {
                out.push(s);
                if out.len() == self.r as usize {
                    break;
                }
            }
        }
        out
    }

    /// The same dispatcher under another view of which servers are up (a caller's bitset).
    fn with_availability(&self, available: Vec<bool>) -> Model {
        Model {
            n: self.n,
            r: self.r,
            alive: available.iter().filter(|&&a| a).count(),
            available,
            active: self.active.clone(),
        }
    }

    /// Selection: the subset member with the fewest connections, the earliest on ties.
    fn select(&self, ns: u32, loads: &[u32]) -> Option<u32> {
        self.subset(ns)
            .into_iter()
            .min_by_key(|&s| loads[s as usize])
    }
}

/// A request-target as C would hold it: exactly `len` heap bytes (so AddressSanitizer sees any
/// read past them), often starting with an absolute-form prefix of SPEC section 1.
fn target_bytes(u: &mut Unstructured) -> Result<Box<[u8]>> {
    const PREFIXES: [&[u8]; 8] = [
        b"",
        b"",
        b"/",
        b"http://",
        b"https://",
        b"HTTP://host",
        b"hTTpS://h:80/",
        b"/a?",
    ];
    let prefix = *u.choose(&PREFIXES)?;
    let len = u.int_in_range(0..=300usize)?.min(u.len());
    let mut t = prefix.to_vec();
    t.extend_from_slice(u.bytes(len)?);
    Ok(t.into_boxed_slice())
}

/// A target argument pair: the bytes, and whether to pass NULL instead of them (NULL with
/// `len == 0` is allowed and means the key "/"; with `len > 0` it is an error).
fn target(u: &mut Unstructured) -> Result<(Box<[u8]>, bool)> {
    let t = target_bytes(u)?;
    let null = rare(u)?;
    Ok((t, null))
}

/// A server or sub-namespace index: mostly in or just past 0..N, sometimes anything.
fn index(u: &mut Unstructured, n: u32) -> Result<u32> {
    if rare(u)? {
        u.arbitrary()
    } else {
        u.int_in_range(0..=n.saturating_add(1))
    }
}

fn run(u: &mut Unstructured) -> Result<()> {
    let mut c = Contract::new();
    // SAFETY: NULL is documented as a no-op.
    unsafe { vibra_dispatcher_free(std::ptr::null_mut()) };

    let servers: u32 = match u.int_in_range(0u8..=15)? {
        0 => u.arbitrary()?,
        // The largest dispatchers are slow to model: rarely.
        1 if rare(u)? => MAX_SERVERS - 1 + u.int_in_range(0..=2)?,
        _ => u.int_in_range(0..=130)?,
    };
    let replication: u32 = if rare(u)? {
        u.arbitrary()?
    } else {
        u.int_in_range(0..=servers.min(66).saturating_add(1))?
    };
    let hash: vibra_hash = if rare(u)? {
        u.arbitrary()?
    } else {
        u.int_in_range(0..=4)?
    };

    // Construction with a NULL out-pointer must fail whatever the rest.
    if rare(u)? {
        // SAFETY: `out` may be NULL.
        let st = unsafe { vibra_dispatcher_new(servers, replication, hash, std::ptr::null_mut()) };
        let mut e = Expect::new();
        e.when(true, VIBRA_NULL_POINTER);
        e.when(hash > VIBRA_HASH_FAST, VIBRA_INVALID_ENUM);
        e.when(
            servers == 0 || servers > MAX_SERVERS || replication == 0 || replication > servers,
            VIBRA_INVALID_ARGUMENT,
        );
        c.check(u, "vibra_dispatcher_new(out = NULL)", st, &e)?;
    }

    let sentinel = SENTINEL_USIZE as *mut vibra_dispatcher;
    let mut d = sentinel;
    // SAFETY: `d` is writable.
    let st = unsafe { vibra_dispatcher_new(servers, replication, hash, &mut d) };
    let mut e = Expect::new();
    e.when(hash > VIBRA_HASH_FAST, VIBRA_INVALID_ENUM);
    e.when(
        servers == 0 || servers > MAX_SERVERS || replication == 0 || replication > servers,
        VIBRA_INVALID_ARGUMENT,
    );
    if !c.check(u, "vibra_dispatcher_new", st, &e)? {
        assert_eq!(d, sentinel, "a failed vibra_dispatcher_new wrote *out");
        return Ok(());
    }
    assert!(!d.is_null() && d != sentinel);

    let mut m = Model {
        n: servers,
        r: replication,
        available: vec![true; servers as usize],
        alive: servers as usize,
        active: vec![0; servers as usize],
    };
    // A huge dispatcher is correct too, but each pick on it needs an N-entry load array.
    let max_ops = if servers > 4096 { 8 } else { 200 };
    let result = (|| {
        for _ in 0..max_ops {
            if u.is_empty() {
                break;
            }
            step(u, &mut c, d, &mut m)?;
        }
        Ok(())
    })();
    // SAFETY: `d` came from vibra_dispatcher_new and is not used again.
    unsafe { vibra_dispatcher_free(d) };
    result
}

/// `vibra_dispatcher_namespace` on the model's dispatcher, which must succeed.
fn namespace_of(d: *const vibra_dispatcher, target: &[u8]) -> u32 {
    let mut ns = SENTINEL_U32;
    // SAFETY: `d` is live, `target` has `len` bytes, `ns` is writable.
    let st = unsafe {
        vibra_dispatcher_namespace(d, target.as_ptr().cast::<c_char>(), target.len(), &mut ns)
    };
    assert_eq!(st, VIBRA_OK);
    ns
}

/// Load counts as a C caller holds them: usually one per server, sometimes a wrong length
/// (`n_loads` is then `loads.len()`), and whether to pass NULL instead.
fn caller_loads(u: &mut Unstructured, n: usize) -> Result<(Box<[u32]>, bool)> {
    let n_loads = match u.int_in_range(0u8..=11)? {
        0 => 0,
        1 => n + 1,
        2 => n - 1,
        3 => u.int_in_range(0..=300)?,
        _ => n,
    };
    let mut loads = vec![0u32; n_loads].into_boxed_slice();
    if n_loads <= 300 {
        for l in loads.iter_mut() {
            *l = if rare(u)? {
                u.arbitrary()?
            } else {
                u.int_in_range(0..=3)?
            };
        }
    } else {
        let pattern: Vec<u32> = (0..8)
            .map(|_| u.int_in_range(0..=3))
            .collect::<Result<_>>()?;
        for (i, l) in loads.iter_mut().enumerate() {
            *l = pattern[i % 8];
        }
    }
    let loads_null = (n_loads == 0 && u.arbitrary()?) || rare(u)?;
    Ok((loads, loads_null))
}

/// An availability bitset as a C caller holds it: usually `ceil(N / 64)` words, sometimes a
/// wrong count; bits at or past N are random (they must be ignored). Returns the words, whether
/// to pass NULL, and the view of servers 0..N it gives.
fn caller_up(u: &mut Unstructured, n: usize) -> Result<(Box<[u64]>, bool, Vec<bool>)> {
    let words = n.div_ceil(64);
    let n_up = match u.int_in_range(0u8..=11)? {
        0 => 0,
        1 => words + 1,
        2 => words - 1,
        _ => words,
    };
    let all_up = u.arbitrary::<bool>()?;
    let mut up = vec![0u64; n_up].into_boxed_slice();
    for w in up.iter_mut() {
        *w = if all_up && !rare(u)? {
            u64::MAX
        } else {
            u.arbitrary()?
        };
    }
    let view = (0..n)
        .map(|s| up.get(s / 64).is_some_and(|w| w >> (s % 64) & 1 == 1))
        .collect();
    let up_null = (n_up == 0 && u.arbitrary()?) || rare(u)?;
    Ok((up, up_null, view))
}

fn step(
    u: &mut Unstructured,
    c: &mut Contract,
    d: *mut vibra_dispatcher,
    m: &mut Model,
) -> Result<()> {
    let d_null = rare(u)?;
    let dp = if d_null { std::ptr::null_mut() } else { d };
    match u.int_in_range(0u8..=8)? {
        0 => {
            let (t, t_null) = target(u)?;
            let ns_null = rare(u)?;
            let mut ns = SENTINEL_U32;
            let nsp = if ns_null {
                std::ptr::null_mut()
            } else {
                &raw mut ns
            };
            // SAFETY: `dp` is NULL or live; the target pointer is NULL or has `len` bytes;
            // `nsp` is NULL or writable.
            let st = unsafe {
                vibra_dispatcher_namespace(dp, ptr_or_null(&t, t_null).cast(), t.len(), nsp)
            };
            let mut e = Expect::new();
            e.when(
                d_null || ns_null || (t_null && !t.is_empty()),
                VIBRA_NULL_POINTER,
            );
            if c.check(u, "vibra_dispatcher_namespace", st, &e)? {
                assert!(ns < m.n, "namespace {ns} not below N = {}", m.n);
                assert_eq!(ns, namespace_of(d, &t), "namespace is not a function");
                if t.is_empty() {
                    assert_eq!(
                        ns,
                        namespace_of(d, b"/"),
                        "an empty target is not the key /"
                    );
                }
            } else {
                assert_eq!(ns, SENTINEL_U32, "a failed namespace call wrote *ns");
            }
        }
        1 => {
            let ns = index(u, m.n)?;
            let cap: usize = match u.int_in_range(0u8..=3)? {
                0 => 0,
                1 => m.r as usize,
                _ => u.int_in_range(0..=(m.r as usize).min(300) + 2)?,
            };
            let buf_null = (cap == 0 && u.arbitrary()?) || rare(u)?;
            let len_null = rare(u)?;
            let mut buf = vec![SENTINEL_U32; cap].into_boxed_slice();
            let mut len = SENTINEL_USIZE;
            let lenp = if len_null {
                std::ptr::null_mut()
            } else {
                &raw mut len
            };
            // SAFETY: `dp` is NULL or live; the buffer pointer is NULL or has `cap` elements;
            // `lenp` is NULL or writable.
            let st = unsafe {
                vibra_dispatcher_subset(dp, ns, mut_ptr_or_null(&mut buf, buf_null), cap, lenp)
            };
            let valid_ns = ns < m.n;
            let want = if valid_ns { m.subset(ns) } else { Vec::new() };
            let mut e = Expect::new();
            e.when(
                d_null || len_null || (buf_null && cap > 0),
                VIBRA_NULL_POINTER,
            );
            e.when(!valid_ns, VIBRA_OUT_OF_RANGE);
            e.when(valid_ns && m.alive() == 0, VIBRA_NO_SERVER_AVAILABLE);
            e.when(want.len() > cap, VIBRA_BUFFER_TOO_SMALL);
            let ok = c.check(u, "vibra_dispatcher_subset", st, &e)?;
            let written = if ok { len } else { 0 };
            if ok {
                assert_eq!(&buf[..len], &want[..], "subset({ns}) with R = {}", m.r);
            } else if st == VIBRA_BUFFER_TOO_SMALL {
                assert_eq!(
                    len,
                    want.len(),
                    "BUFFER_TOO_SMALL must give the needed length"
                );
            } else {
                assert_eq!(len, SENTINEL_USIZE, "a failed subset call wrote *len");
            }
            assert!(
                buf[written..].iter().all(|&s| s == SENTINEL_U32),
                "subset wrote past its result (or on failure)"
            );
        }
        2 => {
            let server = index(u, m.n)?;
            let available: bool = u.arbitrary()?;
            // SAFETY: `dp` is NULL or live.
            let st = unsafe { vibra_dispatcher_set_available(dp, server, available) };
            let mut e = Expect::new();
            e.when(d_null, VIBRA_NULL_POINTER);
            e.when(server >= m.n, VIBRA_OUT_OF_RANGE);
            if c.check(u, "vibra_dispatcher_set_available", st, &e)? {
                m.set_available(server, available);
            }
        }
        3 => {
            let (t, t_null) = target(u)?;
            let n = m.n as usize;
            let (loads, loads_null) = caller_loads(u, n)?;
            let n_loads = loads.len();
            let server_null = rare(u)?;
            let mut server = SENTINEL_U32;
            let sp = if server_null {
                std::ptr::null_mut()
            } else {
                &raw mut server
            };
            // SAFETY: `dp` is NULL or live; the target and loads pointers are NULL or have
            // their lengths; `sp` is NULL or writable.
            let st = unsafe {
                vibra_dispatcher_pick(
                    dp,
                    ptr_or_null(&t, t_null).cast(),
                    t.len(),
                    ptr_or_null(&loads, loads_null),
                    n_loads,
                    sp,
                )
            };
            let mut e = Expect::new();
            e.when(
                d_null || server_null || (t_null && !t.is_empty()) || (loads_null && n_loads > 0),
                VIBRA_NULL_POINTER,
            );
            e.when(n_loads != n, VIBRA_INVALID_ARGUMENT);
            e.when(m.alive() == 0, VIBRA_NO_SERVER_AVAILABLE);
            if c.check(u, "vibra_dispatcher_pick", st, &e)? {
                let want = m.select(namespace_of(d, &t), &loads);
                assert_eq!(
                    Some(server),
                    want,
                    "pick is not the least-loaded subset member"
                );
            } else {
                assert_eq!(server, SENTINEL_U32, "a failed pick wrote *server");
            }
        }
        4 => {
            let (t, t_null) = target(u)?;
            let server_null = rare(u)?;
            let mut server = SENTINEL_U32;
            let sp = if server_null {
                std::ptr::null_mut()
            } else {
                &raw mut server
            };
            // SAFETY: `dp` is NULL or live; the target pointer is NULL or has `len` bytes;
            // `sp` is NULL or writable.
            let st = unsafe {
                vibra_dispatcher_acquire(dp, ptr_or_null(&t, t_null).cast(), t.len(), sp)
            };
            let mut e = Expect::new();
            e.when(
                d_null || server_null || (t_null && !t.is_empty()),
                VIBRA_NULL_POINTER,
            );
            e.when(m.alive() == 0, VIBRA_NO_SERVER_AVAILABLE);
            if c.check(u, "vibra_dispatcher_acquire", st, &e)? {
                let want = m.select(namespace_of(d, &t), &m.active);
                assert_eq!(
                    Some(server),
                    want,
                    "acquire is not the pick on the built-in counts"
                );
                m.active[server as usize] += 1;
            } else {
                assert_eq!(server, SENTINEL_U32, "a failed acquire wrote *server");
            }
        }
        5 => {
            // Mostly a server that holds connections, so releases succeed as often as not.
            let server = match m.active.iter().position(|&a| a > 0) {
                Some(s) if u.arbitrary()? => s as u32,
                _ => index(u, m.n)?,
            };
            // SAFETY: `dp` is NULL or live.
            let st = unsafe { vibra_dispatcher_release(dp, server) };
            let mut e = Expect::new();
            e.when(d_null, VIBRA_NULL_POINTER);
            e.when(server >= m.n, VIBRA_OUT_OF_RANGE);
            e.when(
                server < m.n && m.active[server as usize] == 0,
                VIBRA_NOT_ACQUIRED,
            );
            if c.check(u, "vibra_dispatcher_release", st, &e)? {
                m.active[server as usize] -= 1;
            }
        }
        6 => {
            // Any integer has a static, NUL-terminated text.
            let code: vibra_status = if u.arbitrary()? {
                u.arbitrary()?
            } else {
                u.int_in_range(0..=8)?
            };
            let p = vibra_status_str(code);
            assert!(!p.is_null());
            // SAFETY: vibra_status_str returns a static NUL-terminated string.
            let text = unsafe { CStr::from_ptr(p) }
                .to_str()
                .expect("UTF-8 status text");
            if code == VIBRA_PANIC || code <= VIBRA_NOT_ACQUIRED {
                assert!(text.starts_with("VIBRA_"), "{code}: {text}");
            } else {
                assert_eq!(text, "unknown vibra_status code");
            }
        }
        7 => {
            let (t, t_null) = target(u)?;
            let n = m.n as usize;
            let (loads, loads_null) = caller_loads(u, n)?;
            let (up, up_null, view) = caller_up(u, n)?;
            let server_null = rare(u)?;
            let mut server = SENTINEL_U32;
            let sp = if server_null {
                std::ptr::null_mut()
            } else {
                &raw mut server
            };
            // SAFETY: `dp` is NULL or live; the target, loads and up pointers are NULL or have
            // their lengths; `sp` is NULL or writable.
            let st = unsafe {
                vibra_dispatcher_pick_with(
                    dp,
                    ptr_or_null(&t, t_null).cast(),
                    t.len(),
                    ptr_or_null(&loads, loads_null),
                    loads.len(),
                    ptr_or_null(&up, up_null),
                    up.len(),
                    sp,
                )
            };
            let theirs = m.with_availability(view);
            let mut e = Expect::new();
            e.when(
                d_null
                    || server_null
                    || (t_null && !t.is_empty())
                    || (loads_null && !loads.is_empty())
                    || (up_null && !up.is_empty()),
                VIBRA_NULL_POINTER,
            );
            e.when(
                loads.len() != n || up.len() != n.div_ceil(64),
                VIBRA_INVALID_ARGUMENT,
            );
            e.when(theirs.alive() == 0, VIBRA_NO_SERVER_AVAILABLE);
            if c.check(u, "vibra_dispatcher_pick_with", st, &e)? {
                let want = theirs.select(namespace_of(d, &t), &loads);
                assert_eq!(
                    Some(server),
                    want,
                    "pick_with is not the least-loaded member of the caller's subset"
                );
            } else {
                assert_eq!(server, SENTINEL_U32, "a failed pick_with wrote *server");
            }
        }
        _ => {
            // The key of an empty target is "/", whichever way it is passed.
            let slash = namespace_of(d, b"/");
            let empty: [u8; 0] = [];
            for p in [std::ptr::null(), empty.as_ptr()] {
                let mut ns = SENTINEL_U32;
                // SAFETY: a length of 0 with NULL or a dangling pointer reads nothing.
                let st = unsafe { vibra_dispatcher_namespace(d, p.cast(), 0, &mut ns) };
                assert_eq!((st, ns), (VIBRA_OK, slash));
            }
        }
    }
    Ok(())
}
