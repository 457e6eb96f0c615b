//! Extreme but valid inputs (sums of caller-provided `u64`s or `f64`s near their limits):
//! either the exact answer, or a typed error that changed nothing. Never a panic, a wrapped
//! integer or an infinity.

use proptest::prelude::*;
use vibra_alloc::{
    Alpha, Error, FailoverLedger, Plan, VmId, allocate_proportional, compensate_units, ema,
    failover_compensation, units_sum,
};

const MAX: u64 = u64::MAX;

#[test]
fn peak_from_a_start_the_plan_was_not_built_on_is_a_stale_change() {
    let plan = Plan::between(&[10], &[0]).unwrap();
    assert_eq!(
        plan.peak(&[0]),
        Err(Error::StaleChange {
            vm: VmId(0),
            expected: 10,
            actual: 0
        })
    );
    assert_eq!(plan.peak(&[]), Err(Error::VmOutOfRange { index: 0, n: 0 }));
    assert_eq!(plan.peak(&[10]), Ok(10));
}

#[test]
fn unit_compensation_that_would_overflow_is_refused_and_writes_nothing() {
    let mut out = [7u64; 2];
    assert_eq!(
        compensate_units(&[MAX, MAX], &[true; 2], 0, 1, &mut out),
        Err(Error::Overflow {
            what: "compensated allocation",
            index: Some(1)
        })
    );
    assert_eq!(out, [7, 7]);
    // Adding nothing, or adding to a VM with room, is served.
    let mut out3 = [0u64; 3];
    compensate_units(&[MAX, MAX, 0], &[true; 3], 2, 1, &mut out3).unwrap();
    assert_eq!(out3, [MAX, MAX, 0]);
    compensate_units(&[MAX, 0, 0], &[true; 3], 0, 2, &mut out3).unwrap();
    assert_eq!(out3, [0, MAX / 2 + 1, MAX / 2]);
}

#[test]
fn ledger_failure_that_would_overflow_is_refused_and_changes_nothing() {
    let mut ledger = FailoverLedger::new(2, 1).unwrap();
    let before = ledger.clone();
    assert_eq!(
        ledger.fail(&[MAX, MAX], 0),
        Err(Error::Overflow {
            what: "compensated allocation",
            index: Some(1)
        })
    );
    assert_eq!(ledger, before);
    assert_eq!(ledger.fail(&[MAX, 0], 0), Ok(vec![0, MAX]));
}

#[test]
fn ledger_credit_that_would_overflow_is_refused_and_changes_nothing() {
    // VM 1's replacement is warming up while VM 2 still holds MAX units of its credit; the
    // caller then reports VM 1 holding MAX units and failing again: the credit record for VM
    // 2 would need 2 * MAX units.
    let mut ledger = FailoverLedger::new(3, 1).unwrap();
    ledger.fail(&[0, MAX, 0], 1).unwrap();
    ledger.start_replacement(&[0, 0, MAX], 1, 0, 0).unwrap();
    let before = ledger.clone();
    assert!(matches!(
        ledger.fail(&[0, MAX, 0], 1),
        Err(Error::Overflow { .. })
    ));
    assert_eq!(ledger, before);
}

#[test]
fn ledger_reclaim_that_would_overflow_is_refused_and_changes_nothing() {
    let mut ledger = FailoverLedger::new(2, 1).unwrap();
    ledger.fail(&[MAX, 0], 0).unwrap();
    let before = ledger.clone();
    // The caller claims the failed VM still holds MAX units: getting its MAX back cannot fit.
    assert!(matches!(
        ledger.start_replacement(&[MAX, MAX], 0, MAX, 0),
        Err(Error::Overflow { .. })
    ));
    assert_eq!(ledger, before);
    ledger.start_replacement(&[0, MAX], 0, 0, 0).unwrap();
    let before = ledger.clone();
    assert!(matches!(
        ledger.finish_warmup(&[MAX, MAX], 0, 0),
        Err(Error::Overflow { .. })
    ));
    assert_eq!(ledger, before);
    assert_eq!(ledger.finish_warmup(&[0, MAX], 0, 0), Ok(vec![MAX, 0]));
}

#[test]
fn proportional_allocation_of_huge_demand_is_finite() {
    let mut out = [0.0; 2];
    allocate_proportional(&[1e300, 1e300], 1e300, 0.0, &mut out).unwrap();
    assert_eq!(out, [5e299, 5e299]);
    // Finite demands whose sum overflows still have the finite SPEC answer.
    allocate_proportional(&[f64::MAX; 2], 10.0, 0.0, &mut out).unwrap();
    assert_eq!(out, [5.0; 2]);
    let mut out3 = [0.0; 3];
    allocate_proportional(&[f64::MAX; 3], 10.0, 0.0, &mut out3).unwrap();
    assert!(
        out3.iter().all(|&o| (o - 10.0 / 3.0).abs() < 1e-15),
        "{out3:?}"
    );
    // floor + (T - floor) rounds past f64::MAX here; the answer is T.
    let mut one = [0.0];
    allocate_proportional(&[1.0], f64::MAX, 3.0 * 2f64.powi(970), &mut one).unwrap();
    assert_eq!(one, [f64::MAX]);
}

#[test]
fn f64_compensation_that_would_overflow_is_refused_and_writes_nothing() {
    let mut out = [7.0; 2];
    assert_eq!(
        failover_compensation(&[f64::MAX, f64::MAX], &[true; 2], 0, 1, &mut out),
        Err(Error::Overflow {
            what: "compensated allocation",
            index: Some(1)
        })
    );
    assert_eq!(out, [7.0; 2]);
}

#[test]
fn plan_between_ids_orders_each_group_by_vm_id() {
    let ids = [VmId(9), VmId(3), VmId(7), VmId(1)];
    let plan = Plan::between_ids(&ids, &[5, 5, 1, 1], &[4, 4, 2, 2]).unwrap();
    let order: Vec<u32> = plan.iter().map(|c| c.vm.0).collect();
    assert_eq!(order, [3, 9, 1, 7]);
    assert_eq!(
        Plan::between_ids(&[VmId(1), VmId(2), VmId(1)], &[0; 3], &[1; 3]),
        Err(Error::DuplicateVm(VmId(1)))
    );
}

#[test]
fn agent_plans_order_each_group_by_vm_id_not_by_position() {
    use vibra_alloc::{Agent, KindConfig, ResourceKind};
    let ids = [VmId(9), VmId(3), VmId(7), VmId(1)];
    let bw = ResourceKind::Bandwidth;
    let mut agent = Agent::new(
        &ids,
        1,
        Default::default(),
        vec![KindConfig::bandwidth(400)],
    )
    .unwrap();
    agent.observe(&bw, &[1.0, 1.0, 3.0, 3.0]).unwrap();
    let plans = agent.tick(Default::default()).unwrap();
    let order: Vec<(u32, bool)> = plans[0]
        .plan
        .iter()
        .map(|c| (c.vm.0, c.is_decrease()))
        .collect();
    assert_eq!(order, [(3, true), (9, true), (1, false), (7, false)]);
}

#[test]
fn ema_of_a_constant_huge_series_is_that_value() {
    let a = Alpha::new(0.3).unwrap();
    assert_eq!(ema(a, Some(f64::MAX), f64::MAX), Ok(f64::MAX));
}

fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(MAX),
        Just(MAX - 1),
        Just(MAX / 2),
        Just(MAX / 2 + 1),
        (MAX - 1000)..=MAX,
        any::<u64>(),
        0..100u64,
    ]
}

fn extreme_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        1e300..=f64::MAX,
        0.0..1e6f64,
        any::<f64>().prop_map(|x| if x.is_finite() { x.abs() } else { 1.0 }),
    ]
}

proptest! {
    /// Peak never panics: it is the running maximum when the start matches the plan, and
    /// errors exactly when applying the plan to that start would.
    #[test]
    fn peak_is_defined_exactly_when_the_plan_applies(
        current in prop::collection::vec(extreme_u64(), 1..8),
        target_seed in prop::collection::vec(extreme_u64(), 8),
        start_seed in prop::collection::vec(extreme_u64(), 8),
        use_current in any::<bool>(),
    ) {
        let n = current.len();
        let target = &target_seed[..n];
        let plan = Plan::between(&current, target).unwrap();
        let start: Vec<u64> = if use_current { current.clone() } else { start_seed[..n].to_vec() };
        let mut applied = start.clone();
        match (plan.peak(&start), plan.apply_to(&mut applied)) {
            (Ok(peak), Ok(())) => {
                // Decreases first: the peak is at one end.
                prop_assert_eq!(peak, units_sum(&start).max(units_sum(&applied)));
                if use_current {
                    prop_assert_eq!(&applied[..], target);
                }
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (p, a) => prop_assert!(false, "peak {:?} but apply {:?}", p, a),
        }
        if use_current {
            prop_assert!(plan.peak(&start).is_ok());
        }
    }

    /// Unit compensation conserves the sum exactly or refuses with `Overflow`, writing nothing.
    #[test]
    fn unit_compensation_conserves_the_pool_or_writes_nothing(
        alloc in prop::collection::vec(extreme_u64(), 2..8),
        failed_seed in any::<u32>(),
        r_seed in any::<u32>(),
    ) {
        let n = alloc.len();
        let failed = failed_seed % n as u32;
        let r = 1 + r_seed % n as u32;
        let available = vec![true; n];
        let mut out = vec![3u64; n];
        match compensate_units(&alloc, &available, failed, r, &mut out) {
            Ok(()) => {
                prop_assert_eq!(units_sum(&out), units_sum(&alloc));
                prop_assert_eq!(out[failed as usize], 0);
            }
            Err(Error::Overflow { .. }) => prop_assert_eq!(out, vec![3u64; n]),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    /// Every ledger step on extreme allocations conserves the sum or changes nothing.
    #[test]
    fn ledger_steps_on_extreme_allocations_conserve_the_sum_or_change_nothing(
        allocs in prop::collection::vec(prop::collection::vec(extreme_u64(), 4), 1..12),
        events in prop::collection::vec((0..3u8, 0..4u32, extreme_u64(), extreme_u64()), 1..12),
    ) {
        let mut ledger = FailoverLedger::new(4, 2).unwrap();
        for (alloc, (what, vm, boot, floor)) in allocs.iter().zip(events) {
            let before = ledger.clone();
            let res = match what {
                0 => ledger.fail(alloc, vm),
                1 => ledger.start_replacement(alloc, vm, boot, floor),
                _ => ledger.finish_warmup(alloc, vm, floor),
            };
            match res {
                Ok(out) => prop_assert_eq!(units_sum(&out), units_sum(alloc)),
                Err(_) => prop_assert_eq!(&ledger, &before),
            }
        }
    }

    /// The SPEC formula on extreme finite inputs gives finite entries in `[floor, T]`
    /// (within rounding) summing to `T` within a relative 1e-12.
    #[test]
    fn proportional_allocation_of_extreme_inputs_is_finite_and_sums_to_the_pool(
        demand in prop::collection::vec(extreme_f64(), 1..8),
        total in extreme_f64(),
        floor_part in 0.0..=1.0f64,
    ) {
        let n = demand.len();
        let floor = total / n as f64 * floor_part * 0.999;
        let mut out = vec![-1.0; n];
        allocate_proportional(&demand, total, floor, &mut out).unwrap();
        let mut sum = 0.0f64;
        for &o in &out {
            prop_assert!(o.is_finite() && o <= total, "{o} of {total}");
            prop_assert!(o >= floor * (1.0 - 1e-12), "{o} below floor {floor}");
            sum += o / n as f64; // cannot overflow
        }
        let mean = total / n as f64;
        prop_assert!((sum - mean).abs() <= 1e-12 * mean, "mean {sum} vs {mean}");
    }

    /// The `f64` compensation writes finite values conserving the pool (within rounding), or
    /// refuses with `Overflow` and writes nothing.
    #[test]
    fn f64_compensation_is_finite_or_writes_nothing(
        alloc in prop::collection::vec(extreme_f64(), 2..8),
        failed_seed in any::<u32>(),
        r_seed in any::<u32>(),
    ) {
        let n = alloc.len();
        let failed = failed_seed % n as u32;
        let r = 1 + r_seed % n as u32;
        let mut out = vec![-3.0; n];
        match failover_compensation(&alloc, &vec![true; n], failed, r, &mut out) {
            Ok(()) => {
                prop_assert!(out.iter().all(|o| o.is_finite()));
                prop_assert_eq!(out[failed as usize], 0.0);
            }
            Err(Error::Overflow { .. }) => prop_assert_eq!(out, vec![-3.0; n]),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    /// The exact-unit split sums to the pool exactly and honours the floor for pools up to
    /// `u64::MAX` units and demands and weights up to `f64::MAX`.
    #[test]
    fn unit_split_of_extreme_inputs_sums_to_the_pool_exactly(
        demand in prop::collection::vec(extreme_f64(), 1..8),
        weights_seed in prop::collection::vec(extreme_f64(), 8),
        use_weights in any::<bool>(),
        total in extreme_u64(),
        floor_part in 0.0..=1.0f64,
    ) {
        let n = demand.len();
        let floor = ((total / n as u64) as f64 * floor_part) as u64;
        let floor = floor.min(total / n as u64);
        let weights: Vec<f64> = weights_seed[..n].iter().map(|&w| if w > 0.0 { w } else { 1.0 }).collect();
        let w = use_weights.then_some(&weights[..]);
        let out = vibra_alloc::split_units(&demand, w, total, floor).unwrap();
        prop_assert_eq!(units_sum(&out), u128::from(total));
        prop_assert!(out.iter().all(|&o| o >= floor));
    }

    /// The EMA stays between the previous demand and the new usage, whatever their size.
    #[test]
    fn ema_stays_between_previous_demand_and_usage(
        d in extreme_f64(),
        u in extreme_f64(),
        a in 0.0..=1.0f64,
    ) {
        let next = ema(Alpha::new(a).unwrap(), Some(d), u).unwrap();
        prop_assert!(next >= d.min(u) && next <= d.max(u), "{next} not between {d} and {u}");
    }

    /// Plans built from ids in any order list each group by ascending id, like `from_changes`.
    #[test]
    fn plan_from_ids_in_any_order_equals_the_sorted_plan(
        pairs in prop::collection::btree_map(any::<u32>(), (extreme_u64(), extreme_u64()), 1..10),
        rotate in any::<usize>(),
    ) {
        let mut entries: Vec<(u32, (u64, u64))> = pairs.into_iter().collect();
        let k = rotate % entries.len();
        entries.rotate_left(k);
        let ids: Vec<VmId> = entries.iter().map(|e| VmId(e.0)).collect();
        let current: Vec<u64> = entries.iter().map(|e| e.1.0).collect();
        let target: Vec<u64> = entries.iter().map(|e| e.1.1).collect();
        let plan = Plan::between_ids(&ids, &current, &target).unwrap();
        let expected = Plan::from_changes(plan.changes().to_vec());
        prop_assert_eq!(plan, expected);
    }
}
