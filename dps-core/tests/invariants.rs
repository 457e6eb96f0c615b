//! Property tests of SPEC section 6 and the ledger protocol, named after the invariant each
//! checks.

use dps_core::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Send { from: u8, to: u8, frac: f64 },
    Deliver(usize),
    Duplicate(usize),
    Drop(usize),
    Retransmit,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..10, 0u8..10, 0.0f64..1.2).prop_map(|(from, to, frac)| Op::Send { from, to, frac }),
        4 => any::<usize>().prop_map(Op::Deliver),
        1 => any::<usize>().prop_map(Op::Duplicate),
        1 => any::<usize>().prop_map(Op::Drop),
        1 => Just(Op::Retransmit),
    ]
}

/// Finite non-negative doubles over the whole exponent range, f64::MAX and 0 included, so
/// that sums of a few of them overflow.
fn huge() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => (0.0f64..1.0, 0i32..=1023).prop_map(|(m, x)| m * 2f64.powi(x)),
        1 => Just(f64::MAX),
        1 => Just(0.0),
        1 => 0.0f64..1.0,
    ]
}

/// Parties 0..=3 are program 0's VMs, 4 its bank, 5..=8 program 1's VMs, 9 its bank.
fn party(k: u8) -> Party {
    match k {
        4 => Party::Bank(ProgramId(0)),
        9 => Party::Bank(ProgramId(1)),
        k if k < 4 => Party::Vm(VmId(u32::from(k))),
        k => Party::Vm(VmId(u32::from(k) - 1)),
    }
}

proptest! {
    #[test]
    fn conservation_holds_under_loss_duplication_reordering_and_rejections_whole_or_partial(
        caps in proptest::collection::vec(0.3f64..1.5, 3),
        ops in proptest::collection::vec(op(), 1..120),
        partial in any::<bool>(),
    ) {
        let hosts: Vec<HostSpec> = caps.iter().map(|&c| HostSpec::new(c, 0.0).unwrap()).collect();
        let p0 = ProgramLayout::new(0.8, vec![HostId(0), HostId(1), HostId(2), HostId(0)]).unwrap();
        let p1 = ProgramLayout::new(1.2, vec![HostId(1), HostId(2), HostId(0), HostId(1)]).unwrap();
        let mut l = ShareLedger::new(hosts, &[p0, p1]).unwrap();
        if partial {
            l.set_acceptance(Acceptance::UpToRoom);
        }
        let start: Vec<f64> = (0..3).map(|h| l.booked(HostId(h)).unwrap()).collect();
        let mut net: Vec<Message> = Vec::new();
        for op in ops {
            match op {
                Op::Send { from, to, frac } => {
                    let (f, t) = (party(from), party(to));
                    let held = match f {
                        Party::Vm(v) => l.share(v).unwrap(),
                        Party::Bank(p) => l.bank(p).unwrap(),
                    };
                    if let Ok(m) = l.send(f, t, held * frac) {
                        net.push(m);
                    }
                }
                Op::Deliver(i) if !net.is_empty() => {
                    let m = net.remove(i % net.len());
                    if let Some(reply) = l.deliver(m).unwrap() {
                        net.push(reply);
                    }
                }
                Op::Duplicate(i) if !net.is_empty() => {
                    let m = net[i % net.len()];
                    net.push(m);
                }
                Op::Drop(i) if !net.is_empty() => {
                    net.remove(i % net.len());
                }
                Op::Retransmit => net.extend(l.retransmissions()),
                _ => {}
            }
            for p in 0..2 {
                let p = ProgramId(p);
                prop_assert!(l.conservation_error(p).unwrap() < 1e-9);
                let sum: f64 = l.program_vms(p).unwrap().map(|v| l.share(VmId(v)).unwrap()).sum();
                prop_assert!((sum + l.bank(p).unwrap() + l.in_flight(p).unwrap() - l.total(p).unwrap()).abs() < 1e-9);
            }
            for v in 0..l.vms() as u32 {
                prop_assert!(l.share(VmId(v)).unwrap() >= 0.0);
            }
            for h in 0..3u32 {
                let cap = l.host_spec(HostId(h)).unwrap().capacity_shares();
                prop_assert!(l.booked(HostId(h)).unwrap() <= cap.max(start[h as usize]) + 1e-9);
            }
        }
        // Deliver everything left, retransmitting until quiet: nothing may stay in flight.
        for _ in 0..4 {
            net.extend(l.retransmissions());
            while let Some(m) = net.pop() {
                if let Some(r) = l.deliver(m).unwrap() { net.push(r); }
            }
        }
        for p in 0..2 {
            prop_assert!(l.in_flight(ProgramId(p)).unwrap() < 1e-9);
        }
    }

    #[test]
    fn offer_is_eq_5_1(w in 0.0f64..2.0, u in 0.0f64..2.0, wh in 0.0f64..=1.0, p in 0u32..8) {
        let s = offer(w, u, wh, p).unwrap();
        let expected = if p == 0 { 0.0 } else { (w - u).max(0.0) * (1.0 - wh) / f64::from(p) };
        prop_assert_eq!(s, expected);
    }

    #[test]
    fn bank_grants_are_eq_5_2_min_form_plus_proportional_remainder(
        rows in proptest::collection::vec((0.0f64..1.0, 0.0f64..0.5), 1..12),
        e in 0.0f64..3.0,
    ) {
        let shares: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let short: Vec<f64> = rows.iter().map(|r| r.1).collect();
        let mut g = vec![0.0; rows.len()];
        bank_redistribute(&shares, &short, e, &mut g).unwrap();
        let f: f64 = short.iter().sum();
        let after: f64 = shares.iter().zip(&short).map(|(w, s)| w + s).sum();
        for i in 0..rows.len() {
            let expected = if e < f {
                short[i] * e / f
            } else {
                short[i] + (e - f) * (shares[i] + short[i]) / after
            };
            prop_assert!((g[i] - expected).abs() < 1e-12);
            prop_assert!(g[i] >= 0.0);
        }
        prop_assert!((g.iter().sum::<f64>() - e).abs() < 1e-9);
    }

    #[test]
    fn bank_grants_sum_to_the_balance_even_for_huge_finite_inputs(
        rows in proptest::collection::vec((huge(), huge()), 1..16),
        e in prop_oneof![
            2 => (0.0f64..1.0, -60i32..=1023).prop_map(|(m, x)| m * 2f64.powi(x)),
            1 => Just(f64::MAX),
            1 => Just(0.0),
        ],
    ) {
        let shares: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let short: Vec<f64> = rows.iter().map(|r| r.1).collect();
        let mut g = vec![-1.0; rows.len()];
        match bank_redistribute(&shares, &short, e, &mut g) {
            // A typed error must leave the grants untouched.
            Err(_) => prop_assert!(g.iter().all(|&x| x == -1.0)),
            Ok(()) => {
                prop_assert!(g.iter().all(|&x| x.is_finite() && (0.0..=e).contains(&x)), "{:?}", g);
                if e == 0.0 {
                    prop_assert!(g.iter().all(|&x| x == 0.0));
                } else {
                    // Sum g / E rather than g: the grants of E = f64::MAX overflow when added.
                    let sum: f64 = g.iter().map(|x| x / e).sum();
                    prop_assert!((sum - 1.0).abs() < 1e-9, "grants / E sum to {}", sum);
                }
            }
        }
    }

    #[test]
    fn bad_input_is_a_typed_error_and_changes_nothing(
        bad in prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-1.0), Just(-1e-300)],
        which in 0usize..3,
    ) {
        let mut g = [9.0; 3];
        let mut shares = [0.1, 0.2, 0.3];
        let mut short = [0.0, 0.1, 0.0];
        let mut balance = 0.5;
        match which {
            0 => shares[1] = bad,
            1 => short[2] = bad,
            _ => balance = bad,
        }
        prop_assert!(bank_redistribute(&shares, &short, balance, &mut g).is_err());
        prop_assert_eq!(g, [9.0; 3]);
        prop_assert!(offer(bad, 0.1, 0.5, 1).is_err());
        prop_assert!(offer(0.1, bad, 0.5, 1).is_err());
        prop_assert!(matches!(offer(0.1, 0.0, 1.0 + bad.abs().max(1e-9), 1), Err(DpsError::InvalidWithhold(_))));
        // The ledger: a bad amount changes nothing.
        let p = ProgramLayout::new(0.8, vec![HostId(0), HostId(0)]).unwrap();
        let mut l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
        prop_assert!(l.send(Party::Vm(VmId(0)), Party::Vm(VmId(1)), bad).is_err());
        prop_assert!(l.send(Party::Vm(VmId(0)), Party::Vm(VmId(7)), 0.1).is_err());
        prop_assert_eq!(l.shares(), &[0.4, 0.4]);
        prop_assert_eq!(l.in_flight(ProgramId(0)).unwrap(), 0.0);
        let non_positive = if bad.is_nan() { bad } else { -bad.abs() };
        prop_assert!(ProgramLayout::new(non_positive, vec![HostId(0)]).is_err());
        prop_assert!(HostSpec::new(non_positive, 0.0).is_err());
    }
}

#[test]
fn an_unknown_vm_is_a_typed_error() {
    let p = ProgramLayout::new(0.8, vec![HostId(0)]).unwrap();
    let l = ShareLedger::new(vec![HostSpec::new(1.0, 0.0).unwrap()], &[p]).unwrap();
    assert_eq!(l.share(VmId(3)), Err(DpsError::UnknownVm(3)));
}

#[test]
fn ledger_rejects_totals_whose_sums_would_overflow() {
    let host = || vec![HostSpec::new(1.0, 0.0).unwrap()];
    let huge = || ProgramLayout::new(f64::MAX, vec![HostId(0), HostId(0)]).unwrap();
    // Two programs of W = f64::MAX on one host: its booking would be infinite.
    assert!(matches!(
        ShareLedger::new(host(), &[huge(), huge()]),
        Err(DpsError::InvalidTotal(_))
    ));
    // One is already too close to the top for sums of its parts to be safe.
    assert!(matches!(
        ShareLedger::new(host(), &[huge()]),
        Err(DpsError::InvalidTotal(_))
    ));
    // Large but with headroom: fine, and conservation holds.
    let big = ProgramLayout::new(f64::MAX / 4.0, vec![HostId(0), HostId(0)]).unwrap();
    let mut l = ShareLedger::new(host(), &[big]).unwrap();
    let half = l.share(VmId(0)).unwrap();
    l.transfer(Party::Vm(VmId(0)), Party::Vm(VmId(1)), half)
        .unwrap();
    assert!(l.booked(HostId(0)).unwrap().is_finite());
    assert_eq!(l.conservation_error(ProgramId(0)).unwrap(), 0.0);
}

#[test]
fn node_formulas_stay_finite_at_the_top_of_the_double_range() {
    assert_eq!(excess(f64::MAX, 0.0).unwrap(), f64::MAX);
    assert_eq!(excess(0.0, f64::MAX).unwrap(), 0.0);
    assert_eq!(offer(f64::MAX, 0.0, 0.0, 1).unwrap(), f64::MAX);
    assert_eq!(offer(f64::MAX, 0.0, 0.5, 1).unwrap(), f64::MAX / 2.0);
    assert_eq!(shortage(0.0, f64::MAX, f64::MAX).unwrap(), f64::MAX);
    assert_eq!(shortage(f64::MAX, 0.0, f64::MAX).unwrap(), 0.0);
}
