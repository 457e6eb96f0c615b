//! `Dispatcher::pick_bounded` (HAProxy's hash-balance-factor rule): the bound holds, the
//! bound changes nothing when the subset is balanced, and extreme loads and factors neither
//! overflow nor disagree with exact arithmetic.

use proptest::prelude::*;
use vibra_hash::{BalanceFactor, Dispatcher, Error, HashKind};

proptest! {
    #[test]
    fn bounded_pick_respects_the_bound_and_equals_pick_when_balanced(
        n in 1u32..40, r_seed in any::<u32>(), f in 100u32..300,
        loads_seed in proptest::collection::vec(0u32..50, 40),
        down in proptest::collection::vec(any::<bool>(), 40),
        target in proptest::collection::vec(any::<u8>(), 0..30)
    ) {
        let r = 1 + r_seed % n;
        let d = Dispatcher::new(n, r, HashKind::Fast).unwrap();
        for s in 0..n {
            d.set_available(s, !down[s as usize]).unwrap();
        }
        let loads = &loads_seed[..n as usize];
        let factor = BalanceFactor::new(f).unwrap();
        let sum: u64 = loads.iter().map(|&l| u64::from(l)).sum();
        let got = d.pick_bounded(&target, loads, sum, factor);
        let alive = d.available_count() as u64;
        if alive == 0 {
            prop_assert_eq!(got, Err(Error::NoServerAvailable));
            return Ok(());
        }
        let s = got.unwrap();
        prop_assert!(d.is_available(s).unwrap());
        let total: u64 = loads.iter().map(|&l| u64::from(l)).sum();
        let slots = ((total + 1) * u64::from(f)).div_ceil(100).div_ceil(alive).max(1);
        prop_assert!(u64::from(loads[s as usize]) < slots);
        // When the plain choice is within the bound, the bound changes nothing.
        let plain = d.pick(&target, loads).unwrap();
        let subset: Vec<u32> = d.subset(d.namespace(&target)).unwrap().collect();
        if subset.iter().all(|&m| u64::from(loads[m as usize]) < slots) {
            prop_assert_eq!(s, plain);
        }
    }
}

/// `pick_bounded` read literally, in exact arithmetic: the bound as the single ceiling division
/// `ceil((total + 1) * f / (100 * alive))` (equal to the nested ceilings of the doc, since
/// `ceil(ceil(x / a) / b) = ceil(x / ab)`), in u128, where `total < 2^64` and `f <= 10^5` cannot
/// overflow. `None` when every server is down.
fn bounded_reference(
    up: &[bool],
    r: u32,
    ns: u32,
    loads: &[u32],
    total: u64,
    f: u32,
) -> Option<u32> {
    let n = up.len() as u32;
    let order: Vec<u32> = (0..n)
        .map(|k| (ns + k) % n)
        .filter(|&s| up[s as usize])
        .collect();
    let alive = order.len() as u128;
    if alive == 0 {
        return None;
    }
    let total = u128::from(total);
    let slots = ((total + 1) * u128::from(f)).div_ceil(100 * alive).max(1);
    let eligible = |s: u32| u128::from(loads[s as usize]) < slots;
    let (subset, rest) = order.split_at((r as usize).min(order.len()));
    let mut best: Option<u32> = None;
    for &s in subset {
        if eligible(s) && best.is_none_or(|b| loads[s as usize] < loads[b as usize]) {
            best = Some(s);
        }
    }
    Some(
        best.or_else(|| rest.iter().copied().find(|&s| eligible(s)))
            .unwrap_or(subset[0]),
    )
}

/// The reviewer's case: 50,000 servers at `u32::MAX` active connections and a factor of
/// 100,000% make `(total + 1) * percent` exceed `u64::MAX`. The bound is then above every load,
/// so the plain least-loaded choice (the primary, on ties) must win.
#[test]
fn bounded_pick_with_extreme_loads_and_factor_does_not_overflow() {
    let n = 50_000;
    let d = Dispatcher::new(n, 2, HashKind::Fast).unwrap();
    let loads = vec![u32::MAX; n as usize];
    let factor = BalanceFactor::new(100_000).unwrap();
    for target in [&b"/"[..], b"/images/logo.gif", b"/english/index.html?x=1"] {
        assert_eq!(
            d.pick_bounded(
                target,
                &loads,
                loads.iter().map(|&l| u64::from(l)).sum(),
                factor
            ),
            d.pick(target, &loads),
            "{:?}",
            String::from_utf8_lossy(target)
        );
    }
}

/// Loads near `u32::MAX` on clusters up to 70,000 servers, with a few other values and down
/// servers: `(N, R, loads, availability)`.
fn extreme_bounded_case() -> impl Strategy<Value = (u32, u32, Vec<u32>, Vec<bool>)> {
    let n = prop_oneof![1u32..=70, 40_000u32..=70_000];
    let base = prop_oneof![
        Just(u32::MAX),
        Just(u32::MAX - 1),
        (u32::MAX - 100)..=u32::MAX,
        any::<u32>(),
        0u32..4,
    ];
    let value = prop_oneof![Just(u32::MAX), any::<u32>(), 0u32..4];
    (
        n,
        any::<u32>(),
        base,
        proptest::collection::vec((any::<u32>(), value), 0..8),
        proptest::collection::vec(any::<u32>(), 0..8),
        any::<bool>(),
    )
        .prop_map(|(n, r_seed, base, overrides, down, all_down)| {
            let mut loads = vec![base; n as usize];
            for (at, v) in overrides {
                loads[(at % n) as usize] = v;
            }
            let mut up = vec![!(all_down && n <= 3); n as usize];
            for at in down {
                up[(at % n) as usize] = false;
            }
            (n, 1 + r_seed % n.min(64), loads, up)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn bounded_pick_never_panics_and_agrees_with_exact_arithmetic(
        (n, r, loads, up) in extreme_bounded_case(),
        // Factors up to the 100,000% maximum, where (total + 1) * f passes 2^64.
        f in prop_oneof![Just(100_000u32), Just(100), 100u32..=100_000],
        target in proptest::collection::vec(any::<u8>(), 0..30)
    ) {
        let d = Dispatcher::new(n, r, HashKind::Fast).unwrap();
        for (s, &u) in up.iter().enumerate() {
            d.set_available(s as u32, u).unwrap();
        }
        let sum: u64 = loads.iter().map(|&l| u64::from(l)).sum();
        let got = d.pick_bounded(&target, &loads, sum, BalanceFactor::new(f).unwrap());
        let want = bounded_reference(&up, r, d.namespace(&target), &loads, sum, f)
            .ok_or(Error::NoServerAvailable);
        prop_assert_eq!(got, want);
    }
}

proptest! {
    /// The caller's total is the caller's: it need not be the sum of `loads` (a front end may
    /// count connections the dispatcher's loads do not show), and any u64 is taken, up to
    /// `u64::MAX` where `(total + 1) * f` leaves u64 and the bound admits every load.
    #[test]
    fn bounded_pick_takes_any_callers_total_exactly(
        n in 1u32..=40,
        r_seed in any::<u32>(),
        loads_seed in proptest::collection::vec(prop_oneof![0u32..8, any::<u32>()], 40),
        down in proptest::collection::vec(proptest::bool::weighted(0.2), 40),
        total in prop_oneof![
            0u64..64,
            any::<u64>(),
            (u64::MAX - 200_000)..=u64::MAX,
            (u64::MAX / 100_000 - 4)..=(u64::MAX / 100_000 + 4),
        ],
        f in prop_oneof![Just(100_000u32), Just(100), 100u32..=100_000],
        target in proptest::collection::vec(any::<u8>(), 0..30)
    ) {
        let r = 1 + r_seed % n;
        let d = Dispatcher::new(n, r, HashKind::Fast).unwrap();
        let up = &down[..n as usize].iter().map(|&d| !d).collect::<Vec<_>>();
        for (s, &u) in up.iter().enumerate() {
            d.set_available(s as u32, u).unwrap();
        }
        let loads = &loads_seed[..n as usize];
        let got = d.pick_bounded(&target, loads, total, BalanceFactor::new(f).unwrap());
        let want = bounded_reference(up, r, d.namespace(&target), loads, total, f)
            .ok_or(Error::NoServerAvailable);
        prop_assert_eq!(got, want);
    }
}

proptest! {
    /// The caller's availability per call decides exactly as the dispatcher's own; any total,
    /// even one that is not the sum, never panics and picks an available server.
    #[test]
    fn bounded_pick_with_the_callers_availability_equals_the_dispatchers(
        n in 1u32..140, r_seed in any::<u32>(), f in 100u32..400,
        loads_seed in proptest::collection::vec(0u32..30, 140),
        down in proptest::collection::vec(proptest::bool::weighted(0.3), 140),
        wrong_total in any::<u64>(),
        target in proptest::collection::vec(any::<u8>(), 0..40)
    ) {
        let r = 1 + r_seed % n;
        let d = Dispatcher::new(n, r, HashKind::Fast).unwrap();
        let fresh = Dispatcher::new(n, r, HashKind::Fast).unwrap();
        let mut words = vec![0u64; n.div_ceil(64) as usize];
        for s in 0..n {
            let up = !down[s as usize];
            d.set_available(s, up).unwrap();
            words[(s / 64) as usize] |= u64::from(up) << (s % 64);
        }
        let loads = &loads_seed[..n as usize];
        let factor = BalanceFactor::new(f).unwrap();
        for total in [loads.iter().map(|&l| u64::from(l)).sum(), wrong_total] {
            let own = d.pick_bounded(&target, loads, total, factor);
            prop_assert_eq!(fresh.pick_bounded_with(&target, loads, total, factor, &words), own.clone());
            if let Ok(s) = own {
                prop_assert!(d.is_available(s).unwrap());
            }
        }
    }

    /// The built-in tracker's bounded acquire decides as `pick_bounded` over its own counts and
    /// their sum, and its total returns to zero once every lease is dropped.
    #[test]
    fn bounded_acquire_equals_bounded_pick_over_the_trackers_counts(
        n in 1u32..20, r_seed in any::<u32>(), f in 100u32..200,
        targets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 1..60)
    ) {
        let r = 1 + r_seed % n;
        let d = Dispatcher::new(n, r, HashKind::Fast).unwrap();
        let factor = BalanceFactor::new(f).unwrap();
        let mut leases = Vec::new();
        for target in &targets {
            let loads: Vec<u32> = (0..n).map(|s| d.active(s).unwrap()).collect();
            let total = loads.iter().map(|&l| u64::from(l)).sum();
            let want = d.pick_bounded(target, &loads, total, factor).unwrap();
            let lease = d.acquire_bounded(target, factor).unwrap();
            prop_assert_eq!(lease.server(), want);
            leases.push(lease);
        }
        drop(leases);
        prop_assert!((0..n).all(|s| d.active(s) == Ok(0)));
        let zero = vec![0u32; n as usize];
        // With every count back at 0, the bounded acquire is the plain pick again.
        let lease = d.acquire_bounded(&targets[0], factor).unwrap();
        prop_assert_eq!(lease.server(), d.pick(&targets[0], &zero).unwrap());
    }
}
