//! Property tests, one per invariant the issue and SPEC sections 4-5 name.
// The tests walk several parallel per-VM slices by index, as the SPEC states its rules.
#![allow(clippy::needless_range_loop)]

use std::time::Duration;

use proptest::prelude::*;
use vibra_alloc::{
    Agent, Boot, ChangeF64, CustomerId, FailoverLedger, HostId, InMemoryDirectory, KindConfig,
    Plan, ResourceKind, VmDirectory, VmId, VmPhase, allocate_proportional, allocation_plan_vec,
    compensate_units, damp, failover_compensation, split_units, units_sum,
};

/// Demands with zeros, tiny and huge values mixed in.
fn demand_strategy(max_len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![
            3 => 0.0..1e6f64,
            1 => Just(0.0),
            1 => 0.0..1e-300f64,
            1 => 0.0..1e-310f64,
            1 => 1e300..f64::MAX,
        ],
        1..max_len,
    )
}

/// The SPEC section 3/4 successor rule written out, to check the reuse of vibra-hash.
fn reference_takers(available: &[bool], failed: usize, r: usize) -> Vec<usize> {
    let n = available.len();
    (1..n)
        .map(|k| (failed + k) % n)
        .filter(|&s| available[s])
        .take(r)
        .collect()
}

fn prefix_sums(start: &[u64], plan: &Plan) -> Vec<u128> {
    let mut cur = start.to_vec();
    let mut sums = vec![units_sum(&cur)];
    for c in plan {
        assert_eq!(
            cur[c.vm.index()],
            c.from,
            "plan step does not start where the VM is"
        );
        cur[c.vm.index()] = c.to;
        sums.push(units_sum(&cur));
    }
    sums
}

proptest! {
    #[test]
    fn split_sums_to_pool_exactly_and_respects_floor(
        demand in demand_strategy(64),
        weights_seed in prop::collection::vec(1e-3..1e3f64, 64),
        use_weights in any::<bool>(),
        total in prop_oneof![0..1_000u64, 0..u64::MAX, Just(u64::MAX)],
        floor_frac in 0.0..=1.0f64,
    ) {
        let n = demand.len();
        let floor = ((total / n as u64) as f64 * floor_frac) as u64;
        let weights = use_weights.then(|| weights_seed[..n].to_vec());
        let out = split_units(&demand, weights.as_deref(), total, floor).unwrap();
        prop_assert_eq!(units_sum(&out), u128::from(total));
        prop_assert!(out.iter().all(|&a| a >= floor));
    }

    #[test]
    fn split_is_within_one_unit_of_the_exact_quota(
        demand in prop::collection::vec(0.0..1e6f64, 1..64),
        weights in prop::collection::vec(0.1..10.0f64, 64),
        total in 0..(1u64 << 40),
        floor_frac in 0.0..=1.0f64,
    ) {
        let n = demand.len();
        let floor = ((total / n as u64) as f64 * floor_frac) as u64;
        let w = &weights[..n];
        let out = split_units(&demand, Some(w), total, floor).unwrap();
        let x: Vec<f64> = demand.iter().zip(w).map(|(d, w)| d * w).collect();
        let s: f64 = x.iter().sum();
        let rest = (total - n as u64 * floor) as f64;
        for (i, &a) in out.iter().enumerate() {
            let quota = if s > 0.0 { rest * x[i] / s } else { rest * w[i] / w.iter().sum::<f64>() };
            let got = (a - floor) as f64;
            prop_assert!((got - quota).abs() < 1.0 + 1e-9 * quota, "vm {}: {} vs quota {}", i, got, quota);
        }
    }

    #[test]
    fn split_agrees_with_the_spec_formula_within_one_unit(
        demand in prop::collection::vec(0.0..1e6f64, 1..64),
        total in 0..(1u64 << 40),
        floor_frac in 0.0..=1.0f64,
    ) {
        let n = demand.len();
        let floor = ((total / n as u64) as f64 * floor_frac) as u64;
        let units = split_units(&demand, None, total, floor).unwrap();
        let mut spec = vec![0.0; n];
        allocate_proportional(&demand, total as f64, floor as f64, &mut spec).unwrap();
        for (u, f) in units.iter().zip(&spec) {
            prop_assert!((*u as f64 - f).abs() < 1.0 + 1e-9 * f, "{} vs {}", u, f);
        }
    }

    #[test]
    fn split_of_tiny_or_huge_demand_is_proportional(
        ratio in prop::collection::vec(1u32..1_000, 1..20),
        unit in prop_oneof![Just(5e-324f64), Just(1e-310), Just(1e-300), Just(1e300)],
        total in 0..1_000_000u64,
    ) {
        // Demands k_i * unit, for units from the smallest subnormal to near f64::MAX: the
        // split must not depend on the unit (no overflow, no underflow to "no demand").
        let demand: Vec<f64> = ratio.iter().map(|&k| f64::from(k) * unit).collect();
        let plain: Vec<f64> = ratio.iter().map(|&k| f64::from(k)).collect();
        let a = split_units(&demand, None, total, 0).unwrap();
        let b = split_units(&plain, None, total, 0).unwrap();
        prop_assert_eq!(units_sum(&a), u128::from(total));
        for (x, y) in a.iter().zip(&b) {
            prop_assert!(x.abs_diff(*y) <= 1, "{:?} vs {:?}", a, b);
        }
    }

    #[test]
    fn split_without_demand_is_even(n in 1usize..100, total in 0..1_000_000u64) {
        let out = split_units(&vec![0.0; n], None, total, 0).unwrap();
        let (lo, hi) = (out.iter().min().unwrap(), out.iter().max().unwrap());
        prop_assert!(hi - lo <= 1);
        prop_assert_eq!(units_sum(&out), u128::from(total));
    }

    #[test]
    fn plan_prefixes_stay_within_the_pool(
        demand in demand_strategy(40),
        current_seed in prop::collection::vec(0.0..1.0f64, 40),
        total in 0..10_000_000u64,
    ) {
        let n = demand.len();
        // A current allocation within the pool (any shape), and a fresh target.
        let seed_sum: f64 = current_seed[..n].iter().sum::<f64>().max(1e-9);
        let current: Vec<u64> = current_seed[..n]
            .iter()
            .map(|s| (s / seed_sum * total as f64 * 0.999) as u64)
            .collect();
        prop_assume!(units_sum(&current) <= u128::from(total));
        let target = split_units(&demand, None, total, 0).unwrap();
        let plan = Plan::between(&current, &target).unwrap();
        for s in prefix_sums(&current, &plan) {
            prop_assert!(s <= u128::from(total));
        }
        let mut applied = current.clone();
        plan.apply_to(&mut applied).unwrap();
        prop_assert_eq!(&applied, &target);
        // SPEC order: decreases first, each group ascending, no no-ops.
        let d = plan.iter().take_while(|c| c.is_decrease()).count();
        prop_assert!(plan.iter().skip(d).all(|c| c.to > c.from));
        prop_assert!(plan.changes()[..d].windows(2).all(|w| w[0].vm < w[1].vm));
        prop_assert!(plan.changes()[d..].windows(2).all(|w| w[0].vm < w[1].vm));
        prop_assert_eq!(plan.peak(&current), Ok(units_sum(&current).max(units_sum(&target))));
    }

    #[test]
    fn f64_plan_applies_to_the_target_in_spec_order(
        current in prop::collection::vec(0.0..100.0f64, 1..40),
        target_seed in prop::collection::vec(prop_oneof![Just(None), (0.0..100.0f64).prop_map(Some)], 40),
    ) {
        let n = current.len();
        let target: Vec<f64> = (0..n).map(|i| target_seed[i].unwrap_or(current[i])).collect();
        let plan = allocation_plan_vec(&current, &target).unwrap();
        let mut cur = current.clone();
        for &ChangeF64 { vm, from, to } in &plan {
            prop_assert_eq!(cur[vm as usize], from);
            prop_assert!(from != to);
            cur[vm as usize] = to;
        }
        prop_assert_eq!(cur, target);
        let d = plan.iter().take_while(|c| c.to < c.from).count();
        prop_assert!(plan[d..].iter().all(|c| c.to > c.from));
    }

    #[test]
    fn hysteresis_never_exceeds_the_pool_nor_drops_below_the_floor(
        current_seed in prop::collection::vec(0..1_000u64, 1..40),
        demand in prop::collection::vec(0.0..1_000.0f64, 40),
        threshold in 0..200u64,
        floor in 0..20u64,
    ) {
        let n = current_seed.len();
        let total = units_sum(&current_seed) as u64 + floor * n as u64;
        let current: Vec<u64> = current_seed.iter().map(|c| c + floor).collect();
        let target = split_units(&demand[..n], None, total, floor).unwrap();
        let r = damp(&current, &target, total, floor, threshold).unwrap();
        prop_assert!(units_sum(&r) <= u128::from(total));
        for i in 0..n {
            prop_assert!(r[i] == current[i] || r[i] == target[i]);
            prop_assert!(r[i] >= floor);
            if current[i].abs_diff(target[i]) >= threshold {
                prop_assert_eq!(r[i], target[i]);
            }
        }
        let plan = Plan::between(&current, &r).unwrap();
        for s in prefix_sums(&current, &plan) {
            prop_assert!(s <= u128::from(total));
        }
    }

    #[test]
    fn compensation_conserves_the_pool_and_credits_only_the_successors(
        alloc in prop::collection::vec(0..1_000_000u64, 1..40),
        avail_seed in prop::collection::vec(any::<bool>(), 40),
        failed_seed in any::<usize>(),
        r_seed in any::<usize>(),
    ) {
        let n = alloc.len();
        let available = &avail_seed[..n];
        let failed = failed_seed % n;
        let r = 1 + r_seed % n;
        let takers = reference_takers(available, failed, r);
        let mut out = vec![0; n];
        let res = compensate_units(&alloc, available, failed as u32, r as u32, &mut out);
        if takers.is_empty() {
            prop_assert!(res.is_err());
            return Ok(());
        }
        res.unwrap();
        prop_assert_eq!(units_sum(&out), units_sum(&alloc));
        prop_assert_eq!(out[failed], 0);
        let share = alloc[failed] / takers.len() as u64;
        for i in 0..n {
            if i == failed { continue; }
            if takers.contains(&i) {
                let gain = out[i] - alloc[i];
                prop_assert!(gain == share || gain == share + 1);
            } else {
                prop_assert_eq!(out[i], alloc[i]);
            }
        }
        // The f64 form: same takers, equal parts, same total up to rounding.
        let af: Vec<f64> = alloc.iter().map(|&a| a as f64).collect();
        let mut of = vec![0.0; n];
        failover_compensation(&af, available, failed as u32, r as u32, &mut of).unwrap();
        for i in 0..n {
            let expect = if i == failed { 0.0 } else if takers.contains(&i) {
                af[i] + af[failed] / takers.len() as f64
            } else { af[i] };
            prop_assert_eq!(of[i], expect);
        }
    }

    #[test]
    fn ledger_conserves_the_pool_and_recovery_restores_the_pre_failure_split(
        initial in prop::collection::vec(0..100_000u64, 2..16),
        r_seed in any::<usize>(),
        events in prop::collection::vec((0u8..3, any::<usize>(), 0..200_000u64), 0..60),
    ) {
        let n = initial.len();
        let r = 1 + r_seed % n;
        let mut ledger = FailoverLedger::new(n, r as u32).unwrap();
        let mut alloc = initial.clone();
        let pool = units_sum(&initial);
        for (op, vm_seed, boot) in events {
            let vm = (vm_seed % n) as u32;
            let before = ledger.clone();
            let res = match op {
                0 => ledger.fail(&alloc, vm),
                1 => ledger.start_replacement(&alloc, vm, boot, 0),
                _ => ledger.finish_warmup(&alloc, vm, 0),
            };
            match res {
                Ok(next) => {
                    prop_assert_eq!(units_sum(&next), pool);
                    alloc = next;
                }
                Err(_) => prop_assert_eq!(&ledger, &before),
            }
            for i in 0..n {
                if ledger.phase(i as u32) == Some(VmPhase::Failed) {
                    prop_assert_eq!(alloc[i], 0);
                }
            }
        }
        // Recover everything, in VM order: start every failed VM, then end every warm-up.
        for vm in 0..n as u32 {
            if ledger.phase(vm) == Some(VmPhase::Failed) {
                alloc = ledger.start_replacement(&alloc, vm, 0, 0).unwrap();
            }
        }
        for vm in 0..n as u32 {
            if ledger.phase(vm) == Some(VmPhase::WarmingUp) {
                alloc = ledger.finish_warmup(&alloc, vm, 0).unwrap();
            }
        }
        prop_assert_eq!(alloc, initial);
    }

    #[test]
    fn agent_never_exceeds_any_pool_nor_leaves_a_live_vm_below_the_floor_and_its_plans_are_prefix_safe(
        n in 2usize..10,
        r_seed in any::<u32>(),
        weights in prop::collection::vec(0.5..4.0f64, 10),
        use_weights in any::<bool>(),
        hysteresis in 0..50u64,
        steps in prop::collection::vec((0u8..6, any::<usize>(), prop::collection::vec(0.0..1_000.0f64, 10)), 1..60),
    ) {
        let ids: Vec<VmId> = (0..n as u32).map(VmId).collect();
        let r = 1 + r_seed % n as u32;
        let mut bw = KindConfig::bandwidth(10_000);
        bw.floor = 100;
        bw.hysteresis = hysteresis;
        bw.weights = use_weights.then(|| weights[..n].to_vec());
        let mut mem = KindConfig::memory(3 * 1024);
        mem.floor = 64;
        let pools = [(ResourceKind::Bandwidth, 10_000u128, 100u64), (ResourceKind::Memory, 3 * 1024, 64)];
        let mut agent = Agent::new(&ids, r, Duration::from_secs(20), vec![bw, mem]).unwrap();
        let mut now = Duration::ZERO;
        for (op, vm_seed, usage) in steps {
            let vm = VmId((vm_seed % n) as u32);
            let before: Vec<Vec<u64>> = pools.iter().map(|(k, _, _)| agent.allocation(k).unwrap().to_vec()).collect();
            let res = match op {
                0 | 1 => agent.observe(&pools[op as usize].0, &usage[..n]).map(|()| Vec::new()),
                3 => agent.fail(vm, now),
                4 => agent.replacement_started(vm, now),
                _ => {
                    now += Duration::from_secs(if op == 2 { 1 } else { 7 });
                    agent.tick(now)
                }
            };
            let Ok(plans) = res else { continue };
            for (k, (kind, pool, floor)) in pools.iter().enumerate() {
                let after = agent.allocation(kind).unwrap();
                prop_assert!(units_sum(after) <= *pool, "{} over its pool", kind);
                if let Some(p) = plans.iter().find(|p| &p.kind == kind) {
                    let mut cur = before[k].clone();
                    for s in prefix_sums(&before[k], &p.plan) {
                        prop_assert!(s <= *pool);
                    }
                    p.plan.apply_to(&mut cur).unwrap();
                    prop_assert_eq!(&cur[..], after);
                } else {
                    prop_assert_eq!(&before[k][..], after);
                }
                // The floor holds for every live VM after every step, not only right after a
                // re-division: failures, replacements and warm-up ends never take it away.
                for (i, &a) in after.iter().enumerate() {
                    match agent.phase(VmId(i as u32)).unwrap() {
                        VmPhase::Failed => prop_assert_eq!(a, 0),
                        VmPhase::Live => prop_assert!(a >= *floor, "live vm{} below floor", i),
                        VmPhase::WarmingUp => {}
                    }
                }
            }
        }
    }

    #[test]
    fn agent_keeps_every_pool_and_floor_for_any_boot_part_period_and_warm_up(
        n in 2usize..8,
        r_seed in any::<u32>(),
        warmup in 0..40u64,
        // Per kind: pool per VM, floor, boot (All, Floor, Units), boot units, hysteresis, period.
        kinds in prop::collection::vec((1u64..2_000, 0u64..300, 0u8..3, 0u64..600, 0u64..50, 1u64..40), 2),
        steps in prop::collection::vec((0u8..6, any::<usize>(), prop::collection::vec(prop_oneof![Just(0.0), 0.0..1_000.0f64], 8)), 1..80),
    ) {
        let ids: Vec<VmId> = (0..n as u32).map(VmId).collect();
        let r = 1 + r_seed % n as u32;
        let names = [ResourceKind::Bandwidth, ResourceKind::Memory];
        let mut cfgs = Vec::new();
        let mut pools = Vec::new();
        for (k, &(per_vm, floor, boot, units, hysteresis, period)) in kinds.iter().enumerate() {
            // A floor up to the whole even share: every VM may sit exactly at the floor.
            let floor = floor.min(per_vm);
            let pool = per_vm * n as u64;
            let mut cfg = KindConfig::new(names[k].clone(), pool, Duration::from_secs(period));
            cfg.floor = floor;
            cfg.hysteresis = hysteresis;
            cfg.boot = match boot { 0 => Boot::All, 1 => Boot::Floor, _ => Boot::Units(units) };
            cfgs.push(cfg);
            pools.push((names[k].clone(), u128::from(pool), floor, hysteresis));
        }
        let mut agent = Agent::new(&ids, r, Duration::from_secs(warmup), cfgs).unwrap();
        let mut now = Duration::ZERO;
        for (op, vm_seed, usage) in steps {
            let vm = VmId((vm_seed % n) as u32);
            let before: Vec<Vec<u64>> = pools.iter().map(|(k, _, _, _)| agent.allocation(k).unwrap().to_vec()).collect();
            let res = match op {
                0 | 1 => agent.observe(&pools[op as usize].0, &usage[..n]).map(|()| Vec::new()),
                3 => agent.fail(vm, now),
                4 => agent.replacement_started(vm, now),
                _ => {
                    now += Duration::from_secs(if op == 2 { 1 } else { (vm_seed % 20) as u64 });
                    agent.tick(now)
                }
            };
            let Ok(plans) = res else { continue };
            for (k, (kind, pool, floor, hysteresis)) in pools.iter().enumerate() {
                let after = agent.allocation(kind).unwrap();
                // Every step conserves the sum, and only hysteresis leaves units idle.
                if *hysteresis == 0 {
                    prop_assert_eq!(units_sum(after), *pool, "{} does not use its pool", kind);
                } else {
                    prop_assert!(units_sum(after) <= *pool, "{} over its pool", kind);
                }
                let mut cur = before[k].clone();
                if let Some(p) = plans.iter().find(|p| &p.kind == kind) {
                    for s in prefix_sums(&before[k], &p.plan) {
                        prop_assert!(s <= *pool);
                    }
                    p.plan.apply_to(&mut cur).unwrap();
                }
                prop_assert_eq!(&cur[..], after);
                for (i, &a) in after.iter().enumerate() {
                    match agent.phase(VmId(i as u32)).unwrap() {
                        VmPhase::Failed => prop_assert_eq!(a, 0),
                        VmPhase::Live => prop_assert!(a >= *floor, "live vm{} below the {} floor", i, kind),
                        VmPhase::WarmingUp => {}
                    }
                }
            }
        }
    }

    #[test]
    fn agent_restores_the_pre_failure_split_once_the_warm_up_is_over(
        usage in prop::collection::vec(1.0..1_000.0f64, 2..10),
        r_seed in any::<u32>(),
        failed_seed in any::<usize>(),
    ) {
        let n = usage.len();
        let ids: Vec<VmId> = (0..n as u32).map(VmId).collect();
        let r = 1 + r_seed % n as u32;
        let bw = ResourceKind::Bandwidth;
        let mut cfg = KindConfig::bandwidth(80_000);
        cfg.floor = 500;
        let s = Duration::from_secs;
        let mut agent = Agent::new(&ids, r, s(30), vec![cfg]).unwrap();
        agent.observe(&bw, &usage).unwrap();
        agent.tick(s(0)).unwrap();
        let pre = agent.allocation(&bw).unwrap().to_vec();
        let failed = VmId((failed_seed % n) as u32);
        agent.fail(failed, s(1)).unwrap();
        // Steady usage while degraded, then the replacement boots and warms up.
        for t in 2..10 {
            agent.observe(&bw, &usage).unwrap();
            agent.tick(s(t)).unwrap();
        }
        agent.replacement_started(failed, s(10)).unwrap();
        for t in 11..40 {
            agent.observe(&bw, &usage).unwrap();
            agent.tick(s(t)).unwrap();
            prop_assert!(units_sum(agent.allocation(&bw).unwrap()) <= 80_000);
        }
        prop_assert_eq!(agent.phase(failed).unwrap(), VmPhase::WarmingUp);
        agent.observe(&bw, &usage).unwrap();
        agent.tick(s(45)).unwrap();
        prop_assert_eq!(agent.phase(failed).unwrap(), VmPhase::Live);
        // The same demand gives the same split, up to the one unit that EMA rounding (u * 0.9
        // + u * 0.1 need not be exactly u in f64) can move across a rounding boundary.
        let post = agent.allocation(&bw).unwrap();
        for (a, b) in post.iter().zip(&pre) {
            prop_assert!(a.abs_diff(*b) <= 1, "{:?} vs {:?}", post, pre);
        }
    }

    #[test]
    fn directory_applies_a_plan_whole_exactly_when_it_fits(
        current in prop::collection::vec(0..1_000u64, 1..12),
        target_seed in prop::collection::vec(0..1_200u64, 12),
        hosts in prop::collection::vec(0u32..3, 12),
        slack in 0..2_000u64,
        capacity in 1_000..6_000u64,
    ) {
        let n = current.len();
        let bw = ResourceKind::Bandwidth;
        let ids: Vec<VmId> = (0..n as u32).map(VmId).collect();
        let bound = units_sum(&current) as u64 + slack / 4;
        // Host 0 is tight (its capacity at least what its VMs hold now); hosts 1-2 are roomy.
        let host0: u128 = (0..n).filter(|&i| hosts[i] == 0).map(|i| u128::from(current[i])).sum();
        let cap0 = capacity.max(host0 as u64);
        let dir = InMemoryDirectory::new();
        dir.add_customer(CustomerId(0), [(bw.clone(), bound)].into()).unwrap();
        for (h, cap) in [(0, cap0), (1, u64::MAX), (2, u64::MAX)] {
            dir.add_host(HostId(h), [(bw.clone(), cap)].into()).unwrap();
        }
        for i in 0..n {
            dir.add_vm(ids[i], CustomerId(0), HostId(hosts[i]), [(bw.clone(), current[i])].into()).unwrap();
        }
        let target = &target_seed[..n];
        let plan = Plan::between_ids(&ids, &current, target).unwrap();
        let before = dir.snapshot();
        let fits_bound = units_sum(target) <= u128::from(bound);
        let host0_after: u128 = (0..n).filter(|&i| hosts[i] == 0).map(|i| u128::from(target[i])).sum();
        let fits_host = host0_after <= u128::from(cap0);
        // Decreases go first, so every prefix fits exactly when the end state does.
        match dir.apply(CustomerId(0), &bw, &plan) {
            Ok(()) => {
                prop_assert!(fits_bound && fits_host);
                for i in 0..n {
                    prop_assert_eq!(dir.vm(ids[i]).unwrap().allocation[&bw], target[i]);
                }
            }
            Err(e) => {
                prop_assert!(!(fits_bound && fits_host), "refused a fitting plan: {}", e);
                prop_assert!(dir.same_contents(&before));
            }
        }
    }
}
