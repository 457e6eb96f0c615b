//! Deterministic replays of agent failures that proptest once found, with the root cause of
//! each: these run on every `cargo test` whatever proptest's random seed is.

use std::time::Duration;

use vibra_alloc::{Agent, KindConfig, ResourceKind, VmId, VmPhase, units_sum};

const MEM: ResourceKind = ResourceKind::Memory;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// Memory only: 3,072 units, floor 64, re-divided every 30 s (first at the first tick).
fn memory_agent(n: u32, warmup: Duration) -> Agent {
    let ids: Vec<VmId> = (0..n).map(VmId).collect();
    let mut mem = KindConfig::memory(3 * 1024);
    mem.floor = 64;
    Agent::new(&ids, 1, warmup, vec![mem]).unwrap()
}

fn assert_live_at_floor(agent: &Agent, floor: u64) {
    for (i, &a) in agent.allocation(&MEM).unwrap().iter().enumerate() {
        if agent.phase(VmId(i as u32)).unwrap() == VmPhase::Live {
            assert!(
                a >= floor,
                "live vm{i} holds {a} < {floor}: {:?}",
                agent.allocation(&MEM)
            );
        }
    }
}

/// The CI failure (shrunk by proptest; the scenario below is its core). VM 0 took over VM 6's
/// 2,688 units; a re-division then cut VM 0 to 512, but the failover ledger still recorded it
/// as holding 2,688 of VM 6's credit. When VM 0 failed, all its 512 units were forwarded as
/// VM 6's credit and nothing was saved as its own, so its replacement got nothing back and
/// was live with 0 units (below the floor) after its warm-up. Fixed by voiding the live VMs'
/// credit records at every re-division (`FailoverLedger::rebalanced`).
#[test]
fn replacement_gets_its_own_allocation_back_after_a_redivision_voided_the_credit_it_held() {
    let mut agent = memory_agent(7, s(20));
    agent
        .observe(&MEM, &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 169.0])
        .unwrap();
    agent.tick(s(1)).unwrap();
    assert_eq!(
        agent.allocation(&MEM).unwrap(),
        &[64, 64, 64, 64, 64, 64, 2688]
    );
    agent.fail(VmId(6), s(29)).unwrap(); // R = 1: VM 0 takes over VM 6
    assert_eq!(
        agent.allocation(&MEM).unwrap(),
        &[2752, 64, 64, 64, 64, 64, 0]
    );
    agent.tick(s(36)).unwrap(); // re-division: no demand left, an even split
    assert_eq!(
        agent.allocation(&MEM).unwrap(),
        &[512, 512, 512, 512, 512, 512, 0]
    );
    agent.fail(VmId(0), s(38)).unwrap(); // VM 1 takes over VM 0's 512 units
    assert_eq!(
        agent.allocation(&MEM).unwrap(),
        &[0, 1024, 512, 512, 512, 512, 0]
    );
    // Memory boots with all of it (Boot::All): VM 0's replacement gets its 512 back.
    agent.replacement_started(VmId(0), s(45)).unwrap();
    assert_eq!(agent.allocation(&MEM).unwrap()[0], 512);
    // VM 6's 2,688 are owed too, but only 2,240 are to spare above the live VMs' floor;
    // warming-up VM 0 keeps what it got back.
    agent.replacement_started(VmId(6), s(45)).unwrap();
    assert_eq!(
        agent.allocation(&MEM).unwrap(),
        &[512, 64, 64, 64, 64, 64, 2240]
    );
    agent.tick(s(61)).unwrap(); // a re-division while both warm up changes nothing
    assert_live_at_floor(&agent, 64);
    agent.tick(s(65)).unwrap(); // both warm-ups end, no re-division due (next at 91 s)
    assert_eq!(agent.next_due(&MEM).unwrap(), Some(s(91)));
    assert!((0..7).all(|v| agent.phase(VmId(v)).unwrap() == VmPhase::Live));
    assert_eq!(units_sum(agent.allocation(&MEM).unwrap()), 3 * 1024);
    assert_live_at_floor(&agent, 64);
}

/// Found by 5,000 proptest cases against a first, too strict fix that let only live VMs
/// give units to a booting replacement. VMs 0 and 1 fail, VM 1's replacement starts, then VM
/// 2 (the last live VM) fails and warming-up VM 1 takes over all of it. With no live VM left
/// to give, VM 0's replacement booted with 0 units and, the warm-ups over, stayed at 0, below
/// the floor. A warming-up VM gives up what it holds beyond what it got back itself (the rest
/// is credit it took over), and a VM is topped up to the floor when its warm-up ends.
#[test]
fn replacement_reclaims_credit_held_by_a_warming_up_vm() {
    let mut agent = memory_agent(3, s(10));
    agent.fail(VmId(0), s(0)).unwrap();
    agent.fail(VmId(1), s(0)).unwrap();
    agent.tick(s(1)).unwrap();
    assert_eq!(agent.allocation(&MEM).unwrap(), &[0, 0, 3072]);
    agent.replacement_started(VmId(1), s(16)).unwrap();
    assert_eq!(agent.allocation(&MEM).unwrap(), &[0, 1024, 2048]);
    agent.fail(VmId(2), s(16)).unwrap();
    assert_eq!(agent.allocation(&MEM).unwrap(), &[0, 3072, 0]);
    agent.replacement_started(VmId(0), s(16)).unwrap();
    assert_eq!(agent.allocation(&MEM).unwrap(), &[1024, 2048, 0]);
    agent.tick(s(27)).unwrap(); // both warm-ups over, no re-division due (next at 31 s)
    assert_eq!(agent.next_due(&MEM).unwrap(), Some(s(31)));
    assert_eq!(agent.phase(VmId(0)).unwrap(), VmPhase::Live);
    assert_eq!(agent.allocation(&MEM).unwrap(), &[1024, 2048, 0]);
    assert_live_at_floor(&agent, 64);
}

/// Found by the proptest over boot parts, periods and warm-ups (20,000 cases) after the fixes
/// above. Two warm-ups ended at the same tick and were ended one at a time: VM 0, first,
/// could take nothing from VM 1, still warming up (its own part is protected), and stayed at
/// 0, below the floor, once both were live. Warm-ups that end together now turn live
/// together (`FailoverLedger::finish_warmups`), so VM 0 is topped up from VM 1.
#[test]
fn warm_ups_ending_at_the_same_tick_give_to_each_other() {
    let ids: Vec<VmId> = (0..5).map(VmId).collect();
    let mut mem = KindConfig::new(MEM, 125, s(15));
    mem.floor = 14;
    let mut agent = Agent::new(&ids, 1, Duration::ZERO, vec![mem]).unwrap();
    agent.fail(VmId(0), s(0)).unwrap();
    assert_eq!(agent.allocation(&MEM).unwrap(), &[0, 50, 25, 25, 25]);
    agent.observe(&MEM, &[0.0, 462.0, 0.0, 0.0, 0.0]).unwrap();
    agent.tick(s(1)).unwrap();
    assert_eq!(agent.allocation(&MEM).unwrap(), &[0, 83, 14, 14, 14]);
    agent.fail(VmId(1), s(3)).unwrap();
    assert_eq!(agent.allocation(&MEM).unwrap(), &[0, 0, 97, 14, 14]);
    agent.replacement_started(VmId(1), s(3)).unwrap();
    agent.replacement_started(VmId(0), s(3)).unwrap(); // nothing to spare for VM 0 now
    assert_eq!(agent.allocation(&MEM).unwrap(), &[0, 83, 14, 14, 14]);
    agent.tick(s(4)).unwrap(); // both warm-ups (0 s) over, no re-division due (next at 16 s)
    assert_eq!(agent.next_due(&MEM).unwrap(), Some(s(16)));
    assert_eq!(agent.allocation(&MEM).unwrap(), &[25, 58, 14, 14, 14]);
    assert_live_at_floor(&agent, 14);
}

/// Found by the same proptest next. The floor is the whole even share (every VM exactly at it)
/// and hysteresis left one unit idle at a re-division (a +1 move skipped), so a replacement
/// could reclaim only 21 of its 22 units from the VMs and, its warm-up over, was live one unit
/// below the floor. The agent's ledgers now hand out the pool's idle units first.
#[test]
fn replacement_gets_the_units_hysteresis_left_idle() {
    let ids: Vec<VmId> = (0..5).map(VmId).collect();
    let bw = ResourceKind::Bandwidth;
    let mut cfg = KindConfig::new(bw.clone(), 110, s(5));
    cfg.floor = 22;
    cfg.hysteresis = 2;
    cfg.boot = vibra_alloc::Boot::All;
    let mut agent = Agent::new(&ids, 1, Duration::ZERO, vec![cfg]).unwrap();
    agent.observe(&bw, &[0.0, 0.0, 0.0, 0.0, 764.0]).unwrap();
    agent.fail(VmId(0), s(0)).unwrap();
    assert_eq!(agent.allocation(&bw).unwrap(), &[0, 44, 22, 22, 22]);
    agent.observe(&bw, &[0.0, 0.0, 0.0, 343.0, 0.0]).unwrap();
    agent.tick(s(1)).unwrap();
    // VM 3's +1 is below the hysteresis: skipped, one unit idle.
    assert_eq!(agent.allocation(&bw).unwrap(), &[0, 22, 22, 22, 43]);
    agent.replacement_started(VmId(0), s(1)).unwrap();
    assert_eq!(agent.allocation(&bw).unwrap(), &[22, 22, 22, 22, 22]);
    agent.tick(s(2)).unwrap();
    assert_eq!(agent.phase(VmId(0)).unwrap(), VmPhase::Live);
    assert_eq!(agent.allocation(&bw).unwrap(), &[22, 22, 22, 22, 22]);
}

/// Found by the same proptest next (floor 11 of an even share of 12, boot 16 units). VM 1's
/// replacement booted with 10 units (all there was to spare), and when its warm-up ended the
/// only VM above the floor was VM 3, still warming up, whose boot part was protected; VM 1 went
/// live below the floor, and the re-division had to lower the floor for everyone. Bringing a
/// VM up to the floor now outranks the part of a warming-up VM's boot allocation above the
/// floor (which it gets back when its own warm-up ends).
#[test]
fn the_floor_outranks_a_warming_up_vms_boot_part() {
    let ids: Vec<VmId> = (0..4).map(VmId).collect();
    let mut mem = KindConfig::new(MEM, 48, s(1));
    mem.floor = 11;
    mem.boot = vibra_alloc::Boot::Units(16);
    let mut agent = Agent::new(&ids, 1, s(16), vec![mem]).unwrap();
    agent.fail(VmId(1), s(0)).unwrap();
    agent.tick(s(1)).unwrap();
    assert_eq!(agent.allocation(&MEM).unwrap(), &[16, 0, 16, 16]);
    agent.fail(VmId(3), s(1)).unwrap();
    agent.replacement_started(VmId(3), s(1)).unwrap();
    agent.replacement_started(VmId(1), s(1)).unwrap();
    assert_eq!(agent.allocation(&MEM).unwrap(), &[11, 10, 11, 16]);
    agent.fail(VmId(3), s(1)).unwrap();
    agent.tick(s(4)).unwrap();
    assert_eq!(agent.allocation(&MEM).unwrap(), &[19, 10, 19, 0]);
    agent.replacement_started(VmId(3), s(4)).unwrap();
    assert_eq!(agent.allocation(&MEM).unwrap(), &[11, 10, 11, 16]);
    agent.tick(s(17)).unwrap(); // VM 1's warm-up is over, VM 3's not (until 20 s)
    assert_eq!(agent.allocation(&MEM).unwrap(), &[11, 11, 11, 15]);
    assert_live_at_floor(&agent, 11);
    agent.tick(s(20)).unwrap(); // VM 3's too; no demand: an even re-division
    assert_eq!(agent.allocation(&MEM).unwrap(), &[12, 12, 12, 12]);
}

/// The CI run's whole shrunk proptest input (`invariants.proptest-regressions`, line `cc
/// ccc320f0...`), replayed with the proptest's checks: 7 VMs, R = 1, no weights, no
/// hysteresis. Ops: 0/1 observe bandwidth/memory, 2 tick +1 s, 3 fail, 4 replacement
/// started, 5 tick +7 s.
#[test]
fn ci_shrunk_input_keeps_every_live_vm_at_the_floor() {
    let steps: [(u8, u64, [f64; 10]); 19] = [
        (
            1,
            0,
            [
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                169.14798519240023,
                0.0,
                0.0,
                0.0,
            ],
        ),
        (2, 0, [0.0; 10]),
        (5, 0, [0.0; 10]),
        (5, 0, [0.0; 10]),
        (5, 0, [0.0; 10]),
        (5, 0, [0.0; 10]),
        (3, 8935351660774578479, [0.0; 10]),
        (5, 0, [0.0; 10]),
        (2, 0, [0.0; 10]),
        (2, 0, [0.0; 10]),
        (3, 898150616396513914, [0.0; 10]),
        (
            5,
            0,
            [
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                561.0692110115442,
                716.227516760087,
                130.0091439677254,
            ],
        ),
        (
            4,
            2075545084803021153,
            [
                550.3349529823697,
                277.1994113075189,
                594.9226628540786,
                377.51077923273374,
                623.4341063081649,
                361.28316474847566,
                620.4594474084266,
                750.2010760393151,
                388.3713715863318,
                136.98922917604628,
            ],
        ),
        (
            4,
            1164616068620227376,
            [
                623.3658074068265,
                526.195431021927,
                967.5385727617683,
                421.89040797462525,
                433.8365460708527,
                166.3145562327753,
                987.4912423475589,
                260.7600539417338,
                425.16989797852796,
                67.00723619167212,
            ],
        ),
        (
            5,
            895681280848301599,
            [
                844.7628745380717,
                686.6813901040811,
                923.9976381058549,
                682.5856760398854,
                376.3661953790961,
                896.9116694896958,
                31.72073933108095,
                339.897129227244,
                641.4836883804139,
                517.1688029978352,
            ],
        ),
        (
            5,
            17981357771379283561,
            [
                861.1704344347322,
                648.3519996676372,
                207.12402188403482,
                797.8934405155683,
                509.2886296249845,
                19.288277476995443,
                533.649406919821,
                282.84046362377836,
                597.824185190498,
                776.5242280042563,
            ],
        ),
        (
            2,
            8086959995173201198,
            [
                725.5288495354151,
                95.88493079932506,
                387.241013700686,
                26.036384249952487,
                81.53585881269836,
                240.82385046075717,
                872.09588641205,
                188.57892576444263,
                358.60777500698765,
                963.8597374528605,
            ],
        ),
        (
            2,
            7436554246564327557,
            [
                173.75492818261384,
                300.7400567122748,
                171.34836255189518,
                439.597181696801,
                16.335052125024067,
                553.3294254124407,
                33.48849273608134,
                884.0370747957808,
                455.00869124442187,
                159.98492168378573,
            ],
        ),
        (
            5,
            6401713664433753992,
            [
                968.1035219640315,
                574.6325230273545,
                350.86886714933684,
                379.6807318157798,
                366.5500353404785,
                189.31382959718357,
                682.7367950616865,
                94.14487795678205,
                218.84355509447673,
                318.2194085804468,
            ],
        ),
    ];
    let n = 7u64;
    let ids: Vec<VmId> = (0..n as u32).map(VmId).collect();
    let mut bw = KindConfig::bandwidth(10_000);
    bw.floor = 100;
    let mut mem = KindConfig::memory(3 * 1024);
    mem.floor = 64;
    let pools = [(ResourceKind::Bandwidth, 10_000, 100), (MEM, 3 * 1024, 64)];
    let mut agent = Agent::new(&ids, 1, s(20), vec![bw, mem]).unwrap();
    let mut now = Duration::ZERO;
    for (step, (op, vm_seed, usage)) in steps.into_iter().enumerate() {
        let vm = VmId((vm_seed % n) as u32);
        let res = match op {
            0 | 1 => agent
                .observe(&pools[usize::from(op)].0, &usage[..n as usize])
                .map(|()| Vec::new()),
            3 => agent.fail(vm, now),
            4 => agent.replacement_started(vm, now),
            _ => {
                now += s(if op == 2 { 1 } else { 7 });
                agent.tick(now)
            }
        };
        if res.is_err() {
            continue; // e.g. failing a VM that already failed: nothing changed
        }
        for (kind, pool, floor) in &pools {
            let after = agent.allocation(kind).unwrap();
            assert!(
                units_sum(after) <= *pool,
                "step {step}: {kind} over its pool"
            );
            for (i, &a) in after.iter().enumerate() {
                match agent.phase(VmId(i as u32)).unwrap() {
                    VmPhase::Failed => assert_eq!(a, 0, "step {step}: failed vm{i} holds {kind}"),
                    VmPhase::Live => {
                        assert!(
                            a >= *floor,
                            "step {step}: live vm{i} below the {kind} floor"
                        )
                    }
                    VmPhase::WarmingUp => {}
                }
            }
        }
    }
}
