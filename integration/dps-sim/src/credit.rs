//! The credit-scheduler driver: a model of Xen's credit scheduler (credit1) stepped in 1 ms.
//! Every 30 ms accounting period each host hands out 300 credits per CPU to its active
//! entities in proportion to their weights (weight 256 for a 0.1 share); a running entity pays
//! 10 credits per ms. Entities with credit are UNDER, without are OVER; a VM woken from a block
//! while UNDER is BOOSTed and preempts, and loses the boost at the next 10 ms tick. Entities of
//! equal priority round-robin with 30 ms slices. Credits are clamped to one period's worth, as
//! Xen does for entities that do not use theirs.

use crate::engine::{Engine, WORK_EPS};
use crate::report::SimReport;
use dps_core::DpsError;

const STEP: f64 = 0.001;
const TICK_STEPS: u64 = 10;
const ACCOUNT_STEPS: u64 = 30;
const SLICE: f64 = 0.030;
const CREDITS_PER_S: f64 = 10_000.0;
const CREDIT_CAP: f64 = 300.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ent {
    Vm(u32),
    Bg,
}

#[derive(Debug, Clone, Copy, Default)]
struct Credit {
    credit: f64,
    boost: bool,
    last_run: u64,
    ran_recently: bool,
}

#[derive(Debug, Clone)]
struct Pcpu {
    cur: Option<Ent>,
    slice_left: f64,
}

/// A share maps to a Xen weight: 0.1 -> 256 (the default weight), at least 1.
fn weight(share: f64) -> f64 {
    (share * 2560.0).round().clamp(1.0, 65_535.0)
}

pub(crate) fn run_credit(
    mut e: Engine<'_>,
    progress: &mut dyn FnMut(f64),
) -> Result<SimReport, DpsError> {
    let nh = e.hosts.len();
    let mut vc = vec![Credit::default(); e.vms.len()];
    let mut bg = vec![Credit::default(); nh];
    let mut pcpus: Vec<Vec<Pcpu>> = e
        .hosts
        .iter()
        .map(|h| {
            vec![
                Pcpu {
                    cur: None,
                    slice_left: 0.0
                };
                h.capacity as usize
            ]
        })
        .collect();
    let period_steps = ((e.cfg.period_s / STEP).round() as u64).max(1);
    let mut seq: u64 = 0;
    let mut step: u64 = 0;
    let mut completions: Vec<(f64, u32)> = Vec::new();
    let mut woken: Vec<u32> = Vec::new();
    let mut last_progress = 0.0;
    while e.programs_left > 0 {
        let t0 = step as f64 * STEP;
        if t0 > e.cfg.max_time_s {
            return Err(DpsError::Unsupported(format!(
                "simulation did not finish by t = {t0} s"
            )));
        }
        e.now = t0;
        if step > 0 && step % ACCOUNT_STEPS == 0 {
            account(&e, &mut vc, &mut bg, &pcpus);
        }
        let tick = step % TICK_STEPS == 0;
        completions.clear();
        for h in 0..nh {
            let speed = e.hosts[h].speed;
            // Preemption: at a tick, or whenever a boosted entity waits.
            let best_waiting =
                best(&e, h, &vc, &bg[h], &pcpus[h], None).map(|x| prio(x, &vc, &bg[h]));
            for c in 0..pcpus[h].len() {
                if let Some(cur) = pcpus[h][c].cur {
                    if tick {
                        if let Ent::Vm(v) = cur {
                            vc[v as usize].boost = false;
                        }
                    }
                    if let Some(bw) = best_waiting {
                        if bw < prio(cur, &vc, &bg[h]) && (tick || bw == 0) {
                            pcpus[h][c].slice_left = 0.0;
                        }
                    }
                }
            }
            for c in 0..pcpus[h].len() {
                let mut left = STEP;
                while left > 1e-12 {
                    let valid = match pcpus[h][c].cur {
                        Some(Ent::Vm(v)) => {
                            e.vms[v as usize].active() && e.vms[v as usize].host as usize == h
                        }
                        Some(Ent::Bg) => true,
                        None => false,
                    };
                    if !valid || pcpus[h][c].slice_left <= 1e-12 {
                        let cur = if valid { pcpus[h][c].cur } else { None };
                        // The entity whose slice ended goes to the back of its priority.
                        if let Some(x) = cur {
                            seq += 1;
                            stamp(x, &mut vc, &mut bg[h], seq);
                        }
                        pcpus[h][c].cur = None;
                        let next = best(&e, h, &vc, &bg[h], &pcpus[h], None);
                        pcpus[h][c].cur = next;
                        pcpus[h][c].slice_left = SLICE;
                        if next.is_none() {
                            break;
                        }
                    }
                    let Some(cur) = pcpus[h][c].cur else { break };
                    let mut dt = left.min(pcpus[h][c].slice_left);
                    match cur {
                        Ent::Vm(v) => {
                            let vm = &mut e.vms[v as usize];
                            dt = dt.min(vm.remaining.max(0.0) / speed);
                            vm.remaining -= dt * speed;
                            vm.used += dt * speed;
                            e.hosts[h].used_period += dt * speed;
                            vc[v as usize].credit -= dt * CREDITS_PER_S;
                            vc[v as usize].ran_recently = true;
                            if vm.remaining <= WORK_EPS {
                                vm.runnable = false;
                                completions.push((t0 + (STEP - left) + dt, v));
                                pcpus[h][c].cur = None;
                            }
                        }
                        Ent::Bg => {
                            e.hosts[h].bg_used += dt;
                            e.hosts[h].used_period += dt * speed;
                            bg[h].credit -= dt * CREDITS_PER_S;
                            bg[h].ran_recently = true;
                        }
                    }
                    left -= dt;
                    pcpus[h][c].slice_left -= dt;
                }
            }
        }
        completions.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for &(t, vm) in &completions {
            // complete() expects the VM as running: restore the flag it clears.
            e.vms[vm as usize].runnable = true;
            woken.clear();
            e.complete(vm, t, &mut |_: &mut Engine<'_>, _h: u32, w: u32| {
                woken.push(w)
            })?;
            for &w in &woken {
                if w != vm && vc[w as usize].credit > 0.0 {
                    vc[w as usize].boost = true;
                }
            }
        }
        step += 1;
        let t1 = step as f64 * STEP;
        while e.next_timer() <= t1 {
            e.fire_timer()?;
        }
        if step % period_steps == 0 && e.programs_left > 0 {
            e.now = t1;
            e.exchange(t1)?;
            let p = e.progress();
            if p - last_progress >= 0.01 {
                progress(p);
                last_progress = p;
            }
        }
    }
    e.now = step as f64 * STEP;
    progress(1.0);
    Ok(e.finish())
}

fn prio(x: Ent, vc: &[Credit], bg: &Credit) -> u8 {
    let c = match x {
        Ent::Vm(v) => &vc[v as usize],
        Ent::Bg => bg,
    };
    if c.boost {
        0
    } else if c.credit > 0.0 {
        1
    } else {
        2
    }
}

fn stamp(x: Ent, vc: &mut [Credit], bg: &mut Credit, seq: u64) {
    match x {
        Ent::Vm(v) => vc[v as usize].last_run = seq,
        Ent::Bg => bg.last_run = seq,
    }
}

/// The runnable entity to run next on host `h`: highest priority, then least recently run.
fn best(
    e: &Engine<'_>,
    h: usize,
    vc: &[Credit],
    bg: &Credit,
    pcpus: &[Pcpu],
    _skip: Option<Ent>,
) -> Option<Ent> {
    let running = |x: Ent| pcpus.iter().any(|p| p.cur == Some(x));
    let mut out: Option<(u8, u64, Ent)> = None;
    let mut consider = |x: Ent, last: u64| {
        if running(x) {
            return;
        }
        let key = (prio(x, vc, bg), last);
        if out.is_none_or(|(p, l, _)| key < (p, l)) {
            out = Some((key.0, key.1, x));
        }
    };
    for &v in &e.hosts[h].vms {
        if e.vms[v as usize].active() {
            consider(Ent::Vm(v), vc[v as usize].last_run);
        }
    }
    if e.hosts[h].bg_weight > 0.0 {
        consider(Ent::Bg, bg.last_run);
    }
    out.map(|(_, _, x)| x)
}

/// Credit accounting every 30 ms.
fn account(e: &Engine<'_>, vc: &mut [Credit], bg: &mut [Credit], pcpus: &[Vec<Pcpu>]) {
    let shares = e.ledger.shares();
    for (h, host) in e.hosts.iter().enumerate() {
        let mut wsum = 0.0;
        for &v in &host.vms {
            let c = &vc[v as usize];
            if e.vms[v as usize].active() || c.ran_recently {
                wsum += weight(shares[v as usize]);
            }
        }
        if host.bg_weight > 0.0 {
            wsum += weight(host.bg_weight);
        }
        if wsum <= 0.0 {
            continue;
        }
        let total = CREDIT_CAP * pcpus[h].len() as f64;
        for &v in &host.vms {
            let active = e.vms[v as usize].active() || vc[v as usize].ran_recently;
            let c = &mut vc[v as usize];
            if active {
                c.credit += total * weight(shares[v as usize]) / wsum;
            }
            c.credit = c.credit.clamp(-CREDIT_CAP, CREDIT_CAP);
            c.ran_recently = false;
        }
        if host.bg_weight > 0.0 {
            bg[h].credit = (bg[h].credit + total * weight(host.bg_weight) / wsum)
                .clamp(-CREDIT_CAP, CREDIT_CAP);
            bg[h].ran_recently = false;
        }
    }
}
