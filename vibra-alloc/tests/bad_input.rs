//! Bad input gets a typed error and leaves every piece of state exactly as it was.

use std::time::Duration;

use vibra_alloc::{
    Agent, Alpha, ChangeF64, CustomerId, DemandEstimator, Error, FailoverLedger, HostId,
    InMemoryDirectory, KindConfig, Plan, ResourceKind, VmDirectory, VmId, allocate_proportional,
    allocation_plan, compensate_units, failover_compensation, split_units_into,
};

const BAD: [f64; 4] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0];

#[test]
fn spec_allocation_rejects_bad_input_and_writes_nothing() {
    let sentinel = [7.0; 3];
    let mut out = sentinel;
    assert_eq!(
        allocate_proportional(&[], 10.0, 0.0, &mut []),
        Err(Error::NoVms)
    );
    for bad in BAD {
        let e = allocate_proportional(&[1.0, bad, 1.0], 10.0, 0.0, &mut out).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidValue {
                    what: "demand",
                    index: Some(1),
                    ..
                }
            ),
            "{e}"
        );
        let e = allocate_proportional(&[1.0; 3], bad, 0.0, &mut out).unwrap_err();
        assert!(
            matches!(e, Error::InvalidValue { what: "total", .. }),
            "{e}"
        );
        let e = allocate_proportional(&[1.0; 3], 10.0, bad, &mut out).unwrap_err();
        assert!(
            matches!(e, Error::InvalidValue { what: "floor", .. }),
            "{e}"
        );
    }
    let e = allocate_proportional(&[1.0; 3], 10.0, 4.0, &mut out).unwrap_err();
    assert!(matches!(e, Error::FloorTooLarge { n: 3, .. }), "{e}");
    let e = allocate_proportional(&[1.0; 3], 10.0, 0.0, &mut out[..2]).unwrap_err();
    assert!(
        matches!(e, Error::LengthMismatch { what: "out", .. }),
        "{e}"
    );
    // (Finite demands whose sum overflows are served: see tests/extremes.rs.)
    assert_eq!(out, sentinel);
}

#[test]
fn unit_split_rejects_bad_input_and_writes_nothing() {
    let mut out = [9u64; 3];
    assert_eq!(
        split_units_into(&[], None, 10, 0, &mut []),
        Err(Error::NoVms)
    );
    for bad in BAD {
        assert!(split_units_into(&[1.0, 1.0, bad], None, 10, 0, &mut out).is_err());
        assert!(split_units_into(&[1.0; 3], Some(&[1.0, bad, 1.0]), 10, 0, &mut out).is_err());
    }
    assert!(split_units_into(&[1.0; 3], Some(&[1.0, 0.0, 1.0]), 10, 0, &mut out).is_err());
    assert!(split_units_into(&[1.0; 3], Some(&[1.0]), 10, 0, &mut out).is_err());
    assert!(matches!(
        split_units_into(&[1.0; 3], None, 10, 4, &mut out),
        Err(Error::FloorTooLarge { .. })
    ));
    assert!(split_units_into(&[1.0; 3], None, u64::MAX, u64::MAX, &mut out).is_err());
    assert_eq!(out, [9; 3]);
}

#[test]
fn spec_plan_rejects_bad_input_and_writes_nothing() {
    let sentinel = [ChangeF64 {
        vm: 99,
        from: 1.0,
        to: 2.0,
    }; 2];
    let mut out = sentinel;
    assert_eq!(allocation_plan(&[], &[], &mut out), Err(Error::NoVms));
    for bad in BAD {
        assert!(allocation_plan(&[1.0, bad], &[1.0, 1.0], &mut out).is_err());
        assert!(allocation_plan(&[1.0, 1.0], &[bad, 1.0], &mut out).is_err());
    }
    assert!(allocation_plan(&[1.0, 1.0], &[1.0], &mut out).is_err());
    assert_eq!(
        allocation_plan(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0], &mut out[..1]),
        Err(Error::BufferTooSmall {
            needed: 2,
            capacity: 1
        })
    );
    assert_eq!(out, sentinel);
}

#[test]
fn compensation_rejects_bad_input_and_writes_nothing() {
    let mut out = [5.0; 3];
    let mut outu = [5u64; 3];
    let up = [true; 3];
    assert_eq!(
        failover_compensation(&[], &[], 0, 1, &mut []),
        Err(Error::NoVms)
    );
    assert!(matches!(
        failover_compensation(&[1.0; 3], &up, 3, 1, &mut out),
        Err(Error::VmOutOfRange { index: 3, n: 3 })
    ));
    for r in [0, 4] {
        assert!(matches!(
            failover_compensation(&[1.0; 3], &up, 0, r, &mut out),
            Err(Error::InvalidReplication { .. })
        ));
        assert!(compensate_units(&[1; 3], &up, 0, r, &mut outu).is_err());
    }
    for bad in BAD {
        assert!(failover_compensation(&[1.0, bad, 1.0], &up, 0, 1, &mut out).is_err());
    }
    assert!(failover_compensation(&[1.0; 3], &up[..2], 0, 1, &mut out).is_err());
    assert_eq!(
        failover_compensation(&[1.0; 3], &[true, false, false], 0, 2, &mut out),
        Err(Error::NoTakeover { failed: 0 })
    );
    assert_eq!(
        compensate_units(&[1; 3], &[false; 3], 1, 2, &mut outu),
        Err(Error::NoTakeover { failed: 1 })
    );
    assert_eq!(out, [5.0; 3]);
    assert_eq!(outu, [5; 3]);
}

#[test]
fn estimator_rejects_bad_usage_and_keeps_its_state() {
    assert_eq!(DemandEstimator::new(0, Alpha::default()), Err(Error::NoVms));
    for bad in [f64::NAN, -0.1, 1.1, f64::INFINITY] {
        assert!(Alpha::new(bad).is_err());
    }
    let mut est = DemandEstimator::new(3, Alpha::default()).unwrap();
    est.observe(&[1.0, 2.0, 3.0]).unwrap();
    let before = est.clone();
    for bad in BAD {
        assert!(est.observe(&[1.0, 1.0, bad]).is_err());
        assert!(est.observe_one(0, bad).is_err());
    }
    assert!(est.observe(&[1.0, 1.0]).is_err());
    assert!(est.observe_one(3, 1.0).is_err());
    assert_eq!(est, before);
}

#[test]
fn ledger_rejects_impossible_events_and_keeps_its_state() {
    assert!(FailoverLedger::new(0, 1).is_err());
    assert!(FailoverLedger::new(3, 0).is_err());
    let mut l = FailoverLedger::new(3, 1).unwrap();
    let a = l.fail(&[3, 3, 3], 0).unwrap();
    let before = l.clone();
    assert!(matches!(
        l.fail(&a, 0),
        Err(Error::WrongVmState { vm: 0, .. })
    ));
    assert!(matches!(l.fail(&a, 5), Err(Error::VmOutOfRange { .. })));
    assert!(l.fail(&a[..2], 1).is_err());
    assert!(l.start_replacement(&a, 1, 0, 0).is_err()); // live, not failed
    assert!(l.finish_warmup(&a, 0, 0).is_err()); // failed, not warming up
    let a2 = l.fail(&a, 1).unwrap();
    let before2 = l.clone();
    assert_eq!(l.fail(&a2, 2), Err(Error::NoTakeover { failed: 2 }));
    assert_eq!(l, before2);
    assert_ne!(before, before2);

    // Ending warm-ups together: one VM listed twice or not warming up rejects the whole batch.
    let mut l = FailoverLedger::new(3, 1).unwrap();
    let a = l.fail(&[3, 3, 3], 0).unwrap();
    let b = l.start_replacement(&a, 0, 1, 0).unwrap();
    let before = l.clone();
    assert_eq!(
        l.finish_warmups(&b, &[0, 0], 0),
        Err(Error::DuplicateVm(VmId(0)))
    );
    assert!(matches!(
        l.finish_warmups(&b, &[0, 1], 0),
        Err(Error::WrongVmState { vm: 1, .. })
    ));
    assert!(l.finish_warmups(&b[..2], &[0], 0).is_err());
    assert_eq!(l, before);
    assert_eq!(l.finish_warmups(&b, &[0], 0).unwrap(), vec![3, 3, 3]);
}

fn agent() -> Agent {
    let mut bw = KindConfig::bandwidth(1_000);
    bw.floor = 10;
    let ids = [VmId(10), VmId(11), VmId(12)];
    let mut a = Agent::new(
        &ids,
        2,
        Duration::from_secs(5),
        vec![bw, KindConfig::memory(300)],
    )
    .unwrap();
    a.observe(&ResourceKind::Bandwidth, &[1.0, 2.0, 3.0])
        .unwrap();
    a.tick(Duration::from_secs(10)).unwrap();
    a
}

#[test]
fn agent_construction_rejects_bad_configurations() {
    let ids = [VmId(0), VmId(1)];
    let s = Duration::from_secs;
    assert_eq!(
        Agent::new(&[], 1, s(1), vec![KindConfig::memory(1)]),
        Err(Error::NoVms)
    );
    assert!(matches!(
        Agent::new(&[VmId(0), VmId(0)], 1, s(1), vec![KindConfig::memory(1)]),
        Err(Error::DuplicateVm(VmId(0)))
    ));
    assert!(Agent::new(&ids, 3, s(1), vec![KindConfig::memory(1)]).is_err());
    assert!(Agent::new(&ids, 1, s(1), vec![]).is_err());
    assert!(matches!(
        Agent::new(
            &ids,
            1,
            s(1),
            vec![KindConfig::memory(1), KindConfig::memory(2)]
        ),
        Err(Error::DuplicateKind(ResourceKind::Memory))
    ));
    let mut zero = KindConfig::memory(1);
    zero.period = Duration::ZERO;
    assert!(matches!(
        Agent::new(&ids, 1, s(1), vec![zero]),
        Err(Error::ZeroPeriod { .. })
    ));
    let mut w = KindConfig::memory(10);
    w.weights = Some(vec![1.0, f64::NAN]);
    assert!(Agent::new(&ids, 1, s(1), vec![w]).is_err());
    let mut init = KindConfig::memory(10);
    init.initial = Some(vec![6, 5]);
    assert!(Agent::new(&ids, 1, s(1), vec![init]).is_err());
}

#[test]
fn agent_rejects_bad_input_and_keeps_its_state() {
    let mut a = agent();
    let before = a.clone();
    let bw = ResourceKind::Bandwidth;
    let s = Duration::from_secs;
    for bad in BAD {
        assert!(a.observe(&bw, &[1.0, bad, 1.0]).is_err());
        assert!(a.observe_vm(&bw, VmId(10), bad).is_err());
    }
    assert!(a.observe(&bw, &[1.0]).is_err());
    assert!(matches!(
        a.observe(&ResourceKind::Cpu, &[1.0; 3]),
        Err(Error::UnknownKind(_))
    ));
    assert!(matches!(
        a.observe_vm(&bw, VmId(3), 1.0),
        Err(Error::UnknownVm(VmId(3)))
    ));
    assert!(matches!(a.fail(VmId(3), s(11)), Err(Error::UnknownVm(_))));
    assert!(matches!(a.tick(s(9)), Err(Error::TimeWentBackwards { .. })));
    assert!(matches!(
        a.fail(VmId(10), s(9)),
        Err(Error::TimeWentBackwards { .. })
    ));
    assert!(matches!(
        a.replacement_started(VmId(10), s(11)),
        Err(Error::WrongVmState { .. })
    ));
    assert!(a.set_allocation(&bw, &[500, 500, 1]).is_err());
    assert!(a.set_allocation(&bw, &[500, 500]).is_err());
    assert_eq!(a, before);

    // After a failure, a second failure of the same VM and the loss of every survivor's
    // takeover are refused whole, across all kinds.
    a.fail(VmId(10), s(11)).unwrap();
    a.fail(VmId(11), s(11)).unwrap();
    let degraded = a.clone();
    assert!(a.fail(VmId(10), s(12)).is_err());
    assert_eq!(
        a.fail(VmId(12), s(12)),
        Err(Error::NoTakeover { failed: 2 })
    );
    assert_eq!(a, degraded);
}

fn directory() -> InMemoryDirectory {
    let bw = ResourceKind::Bandwidth;
    let dir = InMemoryDirectory::new();
    dir.add_customer(CustomerId(1), [(bw.clone(), 100)].into())
        .unwrap();
    dir.add_customer(CustomerId(2), [(bw.clone(), 100)].into())
        .unwrap();
    dir.add_host(HostId(0), [(bw.clone(), 120)].into()).unwrap();
    dir.add_host(HostId(1), [(bw.clone(), 40)].into()).unwrap();
    dir.add_vm(VmId(0), CustomerId(1), HostId(0), [(bw.clone(), 40)].into())
        .unwrap();
    dir.add_vm(VmId(1), CustomerId(1), HostId(0), [(bw.clone(), 40)].into())
        .unwrap();
    dir.add_vm(VmId(2), CustomerId(2), HostId(0), [(bw.clone(), 30)].into())
        .unwrap();
    dir.add_vm(VmId(3), CustomerId(2), HostId(1), [(bw.clone(), 30)].into())
        .unwrap();
    dir
}

#[test]
fn directory_rejects_bad_changes_whole_and_keeps_its_state() {
    let bw = ResourceKind::Bandwidth;
    let dir = directory();
    let before = dir.snapshot();
    let ids = [VmId(0), VmId(1)];
    let plan = |from: [u64; 2], to: [u64; 2]| Plan::between_ids(&ids, &from, &to).unwrap();

    // Over the customer bound (40 + 40 -> 40 + 61 = 101 > 100).
    assert!(matches!(
        dir.apply(CustomerId(1), &bw, &plan([40, 40], [40, 61])),
        Err(Error::OverCustomerBound {
            would_be: 101,
            bound: 100,
            ..
        })
    ));
    // Over host 0's capacity (40 + 40 + 30 = 110; +11 = 121 > 120), within the bound.
    assert!(matches!(
        dir.apply(CustomerId(1), &bw, &plan([40, 40], [40, 51])),
        Err(Error::OverHostCapacity {
            would_be: 121,
            capacity: 120,
            ..
        })
    ));
    // A valid decrease followed by an invalid increase: nothing of it is applied.
    assert!(
        dir.apply(CustomerId(1), &bw, &plan([40, 40], [30, 71]))
            .is_err()
    );
    // Stale plan, wrong owner, unknown VM, unknown customer, unknown kind.
    assert!(matches!(
        dir.apply(CustomerId(1), &bw, &plan([41, 40], [40, 40])),
        Err(Error::StaleChange { .. })
    ));
    let other = Plan::between_ids(&[VmId(2)], &[30], &[20]).unwrap();
    assert!(matches!(
        dir.apply(CustomerId(1), &bw, &other),
        Err(Error::NotOwner { .. })
    ));
    let ghost = Plan::between_ids(&[VmId(9)], &[0], &[1]).unwrap();
    assert!(matches!(
        dir.apply(CustomerId(1), &bw, &ghost),
        Err(Error::UnknownVm(_))
    ));
    assert!(matches!(
        dir.apply(CustomerId(9), &bw, &plan([40, 40], [30, 30])),
        Err(Error::UnknownCustomer(_))
    ));
    assert!(matches!(
        dir.apply(
            CustomerId(1),
            &ResourceKind::Memory,
            &plan([40, 40], [30, 30])
        ),
        Err(Error::UnknownKind(_))
    ));
    // Registration and reports.
    assert!(dir.add_customer(CustomerId(1), Default::default()).is_err());
    assert!(dir.add_host(HostId(0), Default::default()).is_err());
    assert!(
        dir.add_vm(VmId(0), CustomerId(1), HostId(0), Default::default())
            .is_err()
    );
    assert!(
        dir.add_vm(VmId(8), CustomerId(9), HostId(0), Default::default())
            .is_err()
    );
    assert!(
        dir.add_vm(VmId(8), CustomerId(1), HostId(9), Default::default())
            .is_err()
    );
    assert!(matches!(
        dir.add_vm(VmId(8), CustomerId(1), HostId(1), [(bw.clone(), 21)].into()),
        Err(Error::OverCustomerBound { .. })
    ));
    assert!(matches!(
        dir.add_vm(VmId(8), CustomerId(2), HostId(1), [(bw.clone(), 11)].into()),
        Err(Error::OverHostCapacity { .. })
    ));
    assert!(matches!(
        dir.add_vm(
            VmId(8),
            CustomerId(1),
            HostId(1),
            [(ResourceKind::Cpu, 1)].into()
        ),
        Err(Error::UnknownKind(_))
    ));
    for bad in BAD {
        assert!(dir.report_vm_usage(VmId(0), bw.clone(), bad).is_err());
        assert!(dir.report_host_usage(HostId(0), bw.clone(), bad).is_err());
    }
    assert!(dir.report_vm_usage(VmId(9), bw.clone(), 1.0).is_err());
    assert!(dir.report_host_usage(HostId(9), bw.clone(), 1.0).is_err());
    assert!(matches!(
        dir.move_vm(VmId(0), HostId(1)),
        Err(Error::OverHostCapacity { .. })
    ));
    assert!(dir.move_vm(VmId(0), HostId(9)).is_err());
    assert!(dir.move_vm(VmId(9), HostId(0)).is_err());
    assert!(dir.remove_vm(VmId(9)).is_err());
    assert!(
        dir.set_customer_bound(CustomerId(9), bw.clone(), 1)
            .is_err()
    );
    assert!(dir.same_contents(&before));

    // And the good paths do change it.
    dir.apply(CustomerId(1), &bw, &plan([40, 40], [30, 50]))
        .unwrap();
    assert_eq!(dir.customer_total(CustomerId(1), &bw).unwrap(), 80);
    assert_eq!(dir.host_total(HostId(0), &bw).unwrap(), 110);
    assert!(!dir.same_contents(&before));
}

#[test]
fn directory_lowered_bound_lets_only_decreases_through() {
    let bw = ResourceKind::Bandwidth;
    let dir = directory();
    dir.set_customer_bound(CustomerId(1), bw.clone(), 50)
        .unwrap();
    let ids = [VmId(0), VmId(1)];
    let up = Plan::between_ids(&ids, &[40, 40], &[35, 41]).unwrap();
    assert!(dir.apply(CustomerId(1), &bw, &up).is_err());
    let down = Plan::between_ids(&ids, &[40, 40], &[25, 25]).unwrap();
    dir.apply(CustomerId(1), &bw, &down).unwrap();
    assert_eq!(dir.customer_total(CustomerId(1), &bw).unwrap(), 50);
}

#[test]
fn directory_stays_within_bounds_under_concurrent_agents() {
    use std::sync::Arc;
    let bw = ResourceKind::Bandwidth;
    let dir = Arc::new(directory());
    // Two agents race on customer 1's VMs with plans computed on possibly stale reads:
    // each apply either lands whole or is refused; the bound and capacity always hold.
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let dir = Arc::clone(&dir);
            let bw = bw.clone();
            scope.spawn(move || {
                for step in 0..500u64 {
                    let a = dir.vm(VmId(0)).unwrap().allocation[&bw];
                    let b = dir.vm(VmId(1)).unwrap().allocation[&bw];
                    let x = (step * 7 + t * 13) % 61;
                    let target = [x, 80u64.saturating_sub(x) + (step % 3)];
                    let plan = Plan::between_ids(&[VmId(0), VmId(1)], &[a, b], &target).unwrap();
                    let _ = dir.apply(CustomerId(1), &bw, &plan);
                    assert!(dir.customer_total(CustomerId(1), &bw).unwrap() <= 100);
                    assert!(dir.host_total(HostId(0), &bw).unwrap() <= 120);
                }
            });
        }
    });
    let total = dir.customer_total(CustomerId(1), &bw).unwrap();
    let by_vm: u128 = [VmId(0), VmId(1)]
        .iter()
        .map(|&v| u128::from(dir.vm(v).unwrap().allocation[&bw]))
        .sum();
    assert_eq!(total, by_vm);
}
