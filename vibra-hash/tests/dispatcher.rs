//! Property tests for SPEC section 3 (subsets, selection, failure skip) and section 4
//! (takeover servers), each named after the invariant it checks.

use std::sync::Arc;

use proptest::prelude::*;
use vibra_hash::{Dispatcher, Error, HashKind, takeover_servers};

/// SPEC section 3 read literally: walk i, i+1, ... (mod N) and keep the first R available.
fn spec_subset(up: &[bool], ns: u32, r: u32) -> Vec<u32> {
    let n = up.len() as u32;
    (0..n)
        .map(|k| (ns + k) % n)
        .filter(|&s| up[s as usize])
        .take(r as usize)
        .collect()
}

/// N (with values on both sides of the 64-server word boundary), R in 1..=N, availability.
fn cluster() -> impl Strategy<Value = (u32, u32, Vec<bool>)> {
    prop_oneof![1u32..=12, 60u32..=70, 120u32..=200].prop_flat_map(|n| {
        (
            Just(n),
            1..=n,
            proptest::collection::vec(proptest::bool::weighted(0.8), n as usize),
        )
    })
}

fn dispatcher_with(n: u32, r: u32, up: &[bool]) -> Dispatcher {
    let d = Dispatcher::new(n, r, HashKind::Fast).unwrap();
    for (s, &u) in up.iter().enumerate() {
        d.set_available(s as u32, u).unwrap();
    }
    d
}

proptest! {
    #[test]
    fn subsets_hold_min_r_alive_distinct_available_servers_in_spec_order(
        (n, r, up) in cluster(), ns_seed in any::<u32>()
    ) {
        let d = dispatcher_with(n, r, &up);
        let ns = ns_seed % n;
        let alive = up.iter().filter(|&&u| u).count();
        let want = spec_subset(&up, ns, r);
        match d.subset(ns) {
            Ok(subset) => {
                let got: Vec<u32> = subset.collect();
                prop_assert_eq!(got.len(), (r as usize).min(alive));
                let mut distinct = got.clone();
                distinct.sort_unstable();
                distinct.dedup();
                prop_assert_eq!(distinct.len(), got.len());
                prop_assert!(got.iter().all(|&s| up[s as usize]));
                prop_assert_eq!(&got, &want);
                let mut buf = vec![u32::MAX; r as usize];
                let len = d.subset_into(ns, &mut buf).unwrap();
                prop_assert_eq!(&buf[..len], &want[..]);
            }
            Err(e) => {
                prop_assert_eq!(alive, 0);
                prop_assert_eq!(e, Error::NoServerAvailable);
            }
        }
    }

    #[test]
    fn skip_rule_loses_only_failed_instances((n, r, up) in cluster()) {
        // Instances are (sub-namespace, member) pairs; each sub-namespace weighs 1/N, so the
        // locality loss is lost / (N * R) and must equal k / N, i.e. lost == k * R exactly.
        let all_up = Dispatcher::new(n, r, HashKind::Fast).unwrap();
        let after = dispatcher_with(n, r, &up);
        let failed = up.iter().filter(|&&u| !u).count();
        let mut lost = 0usize;
        for ns in 0..n {
            let before: Vec<u32> = all_up.subset(ns).unwrap().collect();
            let now: Vec<u32> = after.subset(ns).map(|s| s.collect()).unwrap_or_default();
            lost += before.iter().filter(|s| !now.contains(s)).count();
        }
        prop_assert_eq!(lost, failed * r as usize);
    }

    #[test]
    fn marking_a_server_up_again_restores_the_original_mapping(
        (n, r, up) in cluster(), flips in proptest::collection::vec(any::<u32>(), 1..8)
    ) {
        let d = dispatcher_with(n, r, &up);
        let original: Vec<Option<Vec<u32>>> =
            (0..n).map(|ns| d.subset(ns).ok().map(|s| s.collect())).collect();
        let flipped: Vec<u32> = flips.iter().map(|f| f % n).collect();
        for &s in &flipped {
            d.set_available(s, !up[s as usize]).unwrap();
        }
        for &s in &flipped {
            d.set_available(s, up[s as usize]).unwrap();
        }
        let restored: Vec<Option<Vec<u32>>> =
            (0..n).map(|ns| d.subset(ns).ok().map(|s| s.collect())).collect();
        prop_assert_eq!(original, restored);
    }

    #[test]
    fn namespace_is_the_hash_of_the_dispatch_key_mod_n(
        n in prop_oneof![1u32..=70, 1u32..=Dispatcher::MAX_SERVERS],
        kind in prop_oneof![Just(HashKind::Charsum), Just(HashKind::Fast), Just(HashKind::Md5), Just(HashKind::Sha1)],
        target in proptest::collection::vec(any::<u8>(), 0..60)
    ) {
        let d = Dispatcher::new(n, 1, kind).unwrap();
        let key = vibra_hash::dispatch_key(&target);
        prop_assert_eq!(u64::from(d.namespace(&target)), kind.hash64(key) % u64::from(n));
    }

    #[test]
    fn least_loaded_choice_breaks_ties_to_the_earlier_subset_position(
        (n, r, up) in cluster(), loads_seed in proptest::collection::vec(0u32..3, 200),
        target in proptest::collection::vec(any::<u8>(), 0..40)
    ) {
        let d = dispatcher_with(n, r, &up);
        let loads = &loads_seed[..n as usize];
        let subset = spec_subset(&up, d.namespace(&target), r);
        let got = d.pick(&target, loads);
        match subset.iter().map(|&s| loads[s as usize]).min() {
            None => prop_assert_eq!(got, Err(Error::NoServerAvailable)),
            Some(min) => {
                let first = subset.iter().copied().find(|&s| loads[s as usize] == min).unwrap();
                prop_assert_eq!(got, Ok(first));
            }
        }
    }

    #[test]
    fn takeover_servers_are_the_subset_after_the_failed_server(
        (n, r, up) in cluster(), failed_seed in any::<u32>()
    ) {
        let failed = failed_seed % n;
        let mut down = up.clone();
        down[failed as usize] = false;
        let d = dispatcher_with(n, r, &down);
        let next = (failed + 1) % n;
        let want = d.subset(next).map(|s| s.collect::<Vec<u32>>());
        match takeover_servers(&up, failed, r) {
            Ok(got) => prop_assert_eq!(Ok(got), want),
            Err(e) => {
                prop_assert_eq!(e, Error::NoSurvivor { failed });
                prop_assert_eq!(want, Err(Error::NoServerAvailable));
            }
        }
    }

    #[test]
    fn takeover_servers_gain_every_instance_the_failed_server_loses(
        (n, r, up) in cluster(), failed_seed in any::<u32>()
    ) {
        let failed = failed_seed % n;
        let mut up = up;
        up[failed as usize] = true;
        let before = dispatcher_with(n, r, &up);
        let mut down = up.clone();
        down[failed as usize] = false;
        let after = dispatcher_with(n, r, &down);
        let Ok(takers) = takeover_servers(&up, failed, r) else {
            return Ok(());
        };
        for ns in 0..n {
            let b: Vec<u32> = before.subset(ns).unwrap().collect();
            let a: Vec<u32> = after.subset(ns).unwrap().collect();
            for gained in a.iter().filter(|s| !b.contains(s)) {
                prop_assert!(takers.contains(gained), "ns {} gained {}", ns, gained);
            }
        }
    }

    #[test]
    fn bad_input_is_a_typed_error_and_changes_nothing(
        n in 1u32..100, r_seed in any::<u32>(), server_seed in any::<u32>(), len in 0usize..200
    ) {
        let r = 1 + r_seed % n;
        let d = Dispatcher::new(n, r, HashKind::Md5).unwrap();
        let before: Vec<Vec<u32>> = (0..n).map(|ns| d.subset(ns).unwrap().collect()).collect();
        let server = n + server_seed % 1000;
        prop_assert_eq!(
            d.set_available(server, false),
            Err(Error::ServerOutOfRange { server, servers: n })
        );
        prop_assert_eq!(d.release(server), Err(Error::ServerOutOfRange { server, servers: n }));
        prop_assert_eq!(
            d.subset(server).map(|s| s.count()),
            Err(Error::NamespaceOutOfRange { namespace: server, servers: n })
        );
        if len != n as usize {
            prop_assert_eq!(
                d.pick(b"/x", &vec![0; len]),
                Err(Error::SliceLength { len, servers: n })
            );
        }
        for s in 0..n {
            prop_assert_eq!(d.release(s), Err(Error::NotAcquired { server: s }));
        }
        let after: Vec<Vec<u32>> = (0..n).map(|ns| d.subset(ns).unwrap().collect()).collect();
        prop_assert_eq!(before, after);
        prop_assert_eq!(
            Dispatcher::new(n, n + 1 + r_seed % 5, HashKind::Fast).unwrap_err(),
            Error::InvalidReplication { replication: n + 1 + r_seed % 5, servers: n }
        );
    }
}

#[test]
fn construction_bounds() {
    assert!(Dispatcher::new(1, 1, HashKind::Fast).is_ok());
    assert!(Dispatcher::new(65_536, 65_536, HashKind::Sha1).is_ok());
    assert_eq!(
        Dispatcher::new(0, 1, HashKind::Fast).unwrap_err(),
        Error::InvalidServerCount {
            servers: 0,
            max: Dispatcher::MAX_SERVERS as usize
        }
    );
    assert_eq!(
        Dispatcher::new(Dispatcher::MAX_SERVERS + 1, 1, HashKind::Fast).unwrap_err(),
        Error::InvalidServerCount {
            servers: Dispatcher::MAX_SERVERS as usize + 1,
            max: Dispatcher::MAX_SERVERS as usize
        }
    );
    assert_eq!(
        Dispatcher::new(3, 0, HashKind::Fast).unwrap_err(),
        Error::InvalidReplication {
            replication: 0,
            servers: 3
        }
    );
}

#[test]
fn every_server_down_is_an_error_everywhere() {
    let d = Dispatcher::new(3, 2, HashKind::Charsum).unwrap();
    for s in 0..3 {
        d.set_available(s, false).unwrap();
    }
    assert_eq!(d.pick(b"/", &[0, 0, 0]), Err(Error::NoServerAvailable));
    assert_eq!(d.acquire(b"/").unwrap_err(), Error::NoServerAvailable);
    assert_eq!(d.acquire_server(b"/"), Err(Error::NoServerAvailable));
    assert_eq!(d.subset(0).unwrap_err(), Error::NoServerAvailable);
    assert_eq!(d.subset_into(0, &mut [0; 4]), Err(Error::NoServerAvailable));
    assert_eq!((0..3).map(|s| d.active(s).unwrap()).sum::<u32>(), 0);
}

#[test]
fn large_clusters_wrap_across_words() {
    let d = Dispatcher::new(65_536, 3, HashKind::Fast).unwrap();
    assert_eq!(
        d.subset(65_535).unwrap().collect::<Vec<_>>(),
        vec![65_535, 0, 1]
    );
    d.set_available(0, false).unwrap();
    d.set_available(1, false).unwrap();
    assert_eq!(
        d.subset(65_535).unwrap().collect::<Vec<_>>(),
        vec![65_535, 2, 3]
    );
    // Only server 40_000 left: every subset is {40_000}.
    for s in 0..65_536 {
        d.set_available(s, s == 40_000).unwrap();
    }
    assert_eq!(d.subset(40_001).unwrap().collect::<Vec<_>>(), vec![40_000]);
    assert_eq!(d.available_count(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn tracker_counts_return_to_zero_after_any_interleaving(
        n in 1u32..20, r_seed in any::<u32>(), threads in 2usize..5,
        plans in proptest::collection::vec(proptest::collection::vec(any::<(u8, bool)>(), 1..200), 4)
    ) {
        let r = 1 + r_seed % n;
        let d = Arc::new(Dispatcher::new(n, r, HashKind::Fast).unwrap());
        let handles: Vec<_> = plans.into_iter().take(threads).enumerate().map(|(t, plan)| {
            let d = Arc::clone(&d);
            std::thread::spawn(move || {
                let mut held = Vec::new();
                for (i, (byte, release_now)) in plan.into_iter().enumerate() {
                    let target = [b'/', byte, t as u8];
                    if i % 3 == 0 {
                        // the explicit C-style path
                        let s = d.acquire_server(&target).unwrap();
                        held.push(s);
                    } else {
                        let lease = d.acquire(&target).unwrap();
                        if !release_now {
                            held.push(lease.into_server());
                        }
                    }
                    if release_now {
                        if let Some(s) = held.pop() {
                            d.release(s).unwrap();
                        }
                    }
                }
                for s in held {
                    d.release(s).unwrap();
                }
            })
        }).collect();
        for h in handles {
            h.join().unwrap();
        }
        for s in 0..n {
            prop_assert_eq!(d.active(s).unwrap(), 0);
        }
    }
}

proptest! {
    #[test]
    fn subset_into_writes_only_on_success(
        (n, r, up) in cluster(), ns_seed in any::<u32>(), cap in 0usize..8
    ) {
        let d = dispatcher_with(n, r, &up);
        let ns = ns_seed % n;
        let want = spec_subset(&up, ns, r);
        let mut buf = vec![u32::MAX; cap];
        match d.subset_into(ns, &mut buf) {
            Ok(len) => {
                prop_assert_eq!(&buf[..len], &want[..]);
                prop_assert!(buf[len..].iter().all(|&x| x == u32::MAX));
            }
            Err(e) => {
                prop_assert!(buf.iter().all(|&x| x == u32::MAX));
                if want.is_empty() {
                    prop_assert_eq!(e, Error::NoServerAvailable);
                } else {
                    prop_assert_eq!(e, Error::BufferTooSmall { needed: want.len(), cap });
                }
            }
        }
    }
}

/// A target for the fast-path proptests: random bytes including 0x80 and above, '?' and '#' at
/// any position, the empty target and absolute-form targets.
fn any_target() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        Just(b'?'),
        Just(b'#'),
        Just(b'/'),
        0x80u8..=0xff,
        any::<u8>()
    ];
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(byte.clone(), 0..90),
        (
            prop_oneof![Just(&b"http://"[..]), Just(&b"HTTPS://"[..])],
            proptest::collection::vec(byte, 0..70)
        )
            .prop_map(|(scheme, rest)| [scheme, &rest[..]].concat()),
    ]
}

proptest! {
    /// The caller's availability per call picks exactly what the dispatcher picks after
    /// being told the same availability, and leaves the dispatcher's own state alone.
    #[test]
    fn pick_with_the_callers_availability_equals_pick_after_set_available(
        (n, r, up) in cluster(),
        loads_seed in proptest::collection::vec(0u32..4, 200),
        garbage in any::<u64>(),
        target in any_target()
    ) {
        let told = dispatcher_with(n, r, &up);
        let fresh = Dispatcher::new(n, r, HashKind::Fast).unwrap();
        let loads = &loads_seed[..n as usize];
        let mut words = vibra_hash::Availability::from_flags(&up).unwrap().words().to_vec();
        if n % 64 != 0 {
            *words.last_mut().unwrap() |= garbage << (n % 64); // ignored
        }
        prop_assert_eq!(fresh.pick_with(&target, loads, &words), told.pick(&target, loads));
        prop_assert_eq!(fresh.available_count(), n);
        let ns = fresh.namespace(&target);
        let with: Result<Vec<u32>, Error> = fresh.subset_with(ns, &words).map(Iterator::collect);
        let want: Result<Vec<u32>, Error> = told.subset(ns).map(Iterator::collect);
        prop_assert_eq!(with, want);
        prop_assert_eq!(
            fresh.pick_with(&target, loads, &words[1..]),
            Err(Error::MaskLength { len: words.len() - 1, words: words.len(), servers: n })
        );
    }
}
