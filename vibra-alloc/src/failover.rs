//! Failover compensation (chapter 4, SPEC section 4).
//!
//! When VM j fails, its allocation goes in equal parts to the VMs that take over its
//! sub-namespaces: the first R available VMs after j in cyclic order, as computed by
//! [`vibra_hash::takeover_servers`] (reused here, so the dispatcher and the allocator can never
//! disagree on who the successors are). When j's replacement starts it gets a configurable
//! boot part of j's allocation back at once, and the rest after the warm-up; every unit comes
//! from the VMs that hold j's credit, so the customer's pool is never exceeded at any point.
//!
//! * [`failover_compensation`]: SPEC's plain `f64` step (the C `vibra_failover_compensation`).
//! * [`compensate_units`]: the same step in whole units, conserving the pool exactly.
//! * [`FailoverLedger`]: the stateful bookkeeping of failures, replacements and warm-ups.
//!
//! This module keeps no clock: the caller (or [`crate::Agent`]) decides when a warm-up is over.

use std::collections::BTreeMap;

use crate::error::{Error, Result, check_all_non_negative, check_len, check_vm_count};
use crate::ids::VmId;
use crate::units::units_sum;

/// The VMs that take over `failed`'s sub-namespaces (and so its allocation): the first
/// `replication` available VMs after it in cyclic order, or all other available VMs if fewer
/// remain. This is vibra-hash's successor rule; `available[failed]` is ignored.
///
/// Errors: no VMs; `failed` out of range; R outside `1..=n`; [`Error::NoTakeover`] when no
/// other VM is available.
///
/// ```
/// use vibra_alloc::takeover;
/// assert_eq!(takeover(&[true, true, false, true], 1, 2).unwrap(), vec![3, 0]);
/// assert!(takeover(&[true, false], 0, 1).is_err());
/// ```
pub fn takeover(available: &[bool], failed: u32, replication: u32) -> Result<Vec<u32>> {
    check_failed_and_replication(available.len(), failed, replication)?;
    vibra_hash::takeover_servers(available, failed, replication).map_err(|e| match e {
        vibra_hash::Error::NoSurvivor { failed } => Error::NoTakeover { failed },
        other => Error::Successor(other),
    })
}

fn check_failover_args(
    n: usize,
    available: &[bool],
    out_len: usize,
    failed: u32,
    replication: u32,
) -> Result<()> {
    check_vm_count(n)?;
    check_len("available", n, available.len())?;
    check_len("out", n, out_len)?;
    check_failed_and_replication(n, failed, replication)
}

/// `n` VMs (1..=2^32), `failed < n`, `1 <= replication <= n`.
fn check_failed_and_replication(n: usize, failed: u32, replication: u32) -> Result<()> {
    check_replication(n, replication)?;
    if failed as usize >= n {
        return Err(Error::VmOutOfRange { index: failed, n });
    }
    Ok(())
}

/// `n` VMs (1..=2^32) and `1 <= replication <= n`.
fn check_replication(n: usize, replication: u32) -> Result<()> {
    check_vm_count(n)?;
    if replication == 0 || replication as usize > n {
        return Err(Error::InvalidReplication {
            replication,
            servers: n,
        });
    }
    Ok(())
}

/// SPEC section 4 in plain `f64`: `failed`'s allocation is split in equal parts among
/// [`takeover`]`(available, failed, replication)`; `failed`'s entry becomes 0 and every other
/// entry is copied unchanged. `out` is written only on success.
///
/// Errors (nothing written): no VMs; lengths differ; `failed` out of range; R outside
/// `1..=n`; an allocation negative, NaN or infinite; [`Error::NoTakeover`];
/// [`Error::Overflow`] when a taker's new allocation would exceed `f64::MAX`.
///
/// ```
/// use vibra_alloc::failover_compensation;
/// let mut out = [0.0; 4];
/// failover_compensation(&[6.0, 6.0, 6.0, 6.0], &[true; 4], 1, 2, &mut out).unwrap();
/// assert_eq!(out, [6.0, 0.0, 9.0, 9.0]);
/// ```
pub fn failover_compensation(
    alloc: &[f64],
    available: &[bool],
    failed: u32,
    replication: u32,
    out: &mut [f64],
) -> Result<()> {
    check_failover_args(alloc.len(), available, out.len(), failed, replication)?;
    check_all_non_negative("allocation", alloc)?;
    let takers = takeover(available, failed, replication)?;
    let share = alloc[failed as usize] / takers.len() as f64;
    // Takers are distinct: each gets one share. Checked before anything is written.
    if let Some(&t) = takers
        .iter()
        .find(|&&t| !(alloc[t as usize] + share).is_finite())
    {
        return Err(overflow(t));
    }
    out.copy_from_slice(alloc);
    out[failed as usize] = 0.0;
    for t in takers {
        out[t as usize] += share;
    }
    Ok(())
}

fn overflow(vm: u32) -> Error {
    Error::Overflow {
        what: "compensated allocation",
        index: Some(vm as usize),
    }
}

/// [`failover_compensation`] in whole units: each taker gets `a / k` units and the first
/// `a % k` takers (in successor order) one more, so the sum is conserved exactly.
///
/// Errors (nothing written): those of [`failover_compensation`], and [`Error::Overflow`]
/// when a taker's new allocation would exceed `u64::MAX` units.
///
/// ```
/// use vibra_alloc::compensate_units;
/// let mut out = [0; 4];
/// compensate_units(&[10, 7, 10, 10], &[true; 4], 1, 2, &mut out).unwrap();
/// assert_eq!(out, [10, 0, 14, 13]);
/// ```
pub fn compensate_units(
    alloc: &[u64],
    available: &[bool],
    failed: u32,
    replication: u32,
    out: &mut [u64],
) -> Result<()> {
    check_failover_args(alloc.len(), available, out.len(), failed, replication)?;
    let takers = takeover(available, failed, replication)?;
    let amount = alloc[failed as usize];
    // Takers are distinct: each gets one share. Checked before anything is written.
    if let Some((t, _)) = equal_parts(amount, &takers)
        .find(|&(t, share)| alloc[t as usize].checked_add(share).is_none())
    {
        return Err(overflow(t));
    }
    out.copy_from_slice(alloc);
    out[failed as usize] = 0;
    for (t, share) in equal_parts(amount, &takers) {
        out[t as usize] += share;
    }
    Ok(())
}

/// `amount` in `takers.len()` equal whole parts, the remainder one unit each to the first ones.
fn equal_parts(amount: u64, takers: &[u32]) -> impl Iterator<Item = (u32, u64)> + '_ {
    let k = takers.len() as u64;
    let (each, extra) = (amount / k, amount % k);
    takers
        .iter()
        .enumerate()
        .map(move |(i, &t)| (t, each + u64::from((i as u64) < extra)))
}

/// Where a VM is in the failure cycle.
///
/// ```
/// assert_eq!(vibra_alloc::VmPhase::default(), vibra_alloc::VmPhase::Live);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VmPhase {
    /// Serving, allocated by demand.
    #[default]
    Live,
    /// Down: holds nothing; its allocation is credited to its takers.
    Failed,
    /// Its replacement is booting: it holds its boot part (plus any credit it took over) and
    /// is available to the dispatcher, but the rest of its allocation is still credited out.
    WarmingUp,
}

impl VmPhase {
    fn name(self) -> &'static str {
        match self {
            VmPhase::Live => "live",
            VmPhase::Failed => "failed",
            VmPhase::WarmingUp => "warming up",
        }
    }
}

/// The bookkeeping of failures, replacements and warm-ups for one resource kind.
///
/// For each VM that failed it remembers the allocation to give back (`saved`), what its
/// replacement already got back (`restored`) and which VMs hold how much of it (`credits`).
/// A taker that fails in turn forwards the credit it holds to its own takers, so every unit
/// can be traced home. With no demand-driven rebalancing in between, recovering every VM
/// restores the pre-failure split exactly (a crate proptest checks it). When the caller did
/// rebalance in between (as [`crate::Agent`] does, telling the ledger with
/// [`FailoverLedger::rebalanced`]), reclaiming takes a holder's credit only down to `floor`
/// and finds any rest among the other VMs with the most to spare.
///
/// Every method takes the current allocation and returns the new one; on error the ledger is
/// unchanged. Every step conserves the sum of the allocation exactly. (The ledgers inside an
/// [`crate::Agent`] know the pool, and hand a replacement the units its hysteresis left idle
/// before taking any from a VM.)
///
/// ```
/// use vibra_alloc::{FailoverLedger, VmPhase};
///
/// let mut ledger = FailoverLedger::new(4, 2).unwrap();
/// let before = vec![30, 30, 20, 20];
/// let failed = ledger.fail(&before, 1).unwrap();
/// assert_eq!(failed, vec![30, 0, 35, 35]); // VM 1's 30 units to VMs 2 and 3
///
/// let booting = ledger.start_replacement(&failed, 1, 10, 0).unwrap(); // 10 units to boot
/// assert_eq!(booting, vec![30, 10, 25, 35]);
/// assert_eq!(ledger.phase(1), Some(VmPhase::WarmingUp));
///
/// let after = ledger.finish_warmup(&booting, 1, 0).unwrap(); // warm-up over: credit reclaimed
/// assert_eq!(after, before);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverLedger {
    replication: u32,
    phase: Vec<VmPhase>,
    saved: Vec<u64>,
    restored: Vec<u64>,
    /// Per origin VM: holder -> units of the origin's allocation it holds.
    credits: Vec<BTreeMap<u32, u64>>,
    /// The pool, when the ledger may hand out units nobody holds (hysteresis can leave some
    /// idle); `None` for a ledger used alone, whose steps conserve the sum exactly.
    pool: Option<u64>,
}

impl FailoverLedger {
    /// A ledger for `n` live VMs with replication factor `replication` (1 <= R <= n).
    ///
    /// ```
    /// assert!(vibra_alloc::FailoverLedger::new(3, 4).is_err());
    /// ```
    pub fn new(n: usize, replication: u32) -> Result<Self> {
        check_replication(n, replication)?;
        Ok(FailoverLedger {
            replication,
            phase: vec![VmPhase::Live; n],
            saved: vec![0; n],
            restored: vec![0; n],
            credits: vec![BTreeMap::new(); n],
            pool: None,
        })
    }

    /// The number of VMs.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::FailoverLedger::new(3, 1).unwrap().len(), 3);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.phase.len()
    }

    /// Always false (a ledger has at least one VM).
    ///
    /// ```
    /// assert!(!vibra_alloc::FailoverLedger::new(1, 1).unwrap().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.phase.is_empty()
    }

    /// The replication factor.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::FailoverLedger::new(3, 2).unwrap().replication(), 2);
    /// ```
    #[must_use]
    pub fn replication(&self) -> u32 {
        self.replication
    }

    /// A VM's phase, or `None` out of range.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::FailoverLedger::new(1, 1).unwrap().phase(5), None);
    /// ```
    #[must_use]
    pub fn phase(&self, vm: u32) -> Option<VmPhase> {
        self.phase.get(vm as usize).copied()
    }

    /// Which VMs the dispatcher may use (not failed; warming-up VMs are available).
    ///
    /// ```
    /// let mut l = vibra_alloc::FailoverLedger::new(2, 1).unwrap();
    /// l.fail(&[1, 1], 0).unwrap();
    /// assert_eq!(l.available(), vec![false, true]);
    /// ```
    #[must_use]
    pub fn available(&self) -> Vec<bool> {
        self.phase.iter().map(|&p| p != VmPhase::Failed).collect()
    }

    /// The units of `origin`'s allocation still held by other VMs, by holder.
    ///
    /// ```
    /// let mut l = vibra_alloc::FailoverLedger::new(3, 2).unwrap();
    /// l.fail(&[9, 9, 9], 0).unwrap();
    /// assert_eq!(l.credits_of(0).unwrap().iter().map(|(&h, &u)| (h, u)).collect::<Vec<_>>(), [(1, 5), (2, 4)]);
    /// ```
    #[must_use]
    pub fn credits_of(&self, origin: u32) -> Option<&BTreeMap<u32, u64>> {
        self.credits.get(origin as usize)
    }

    /// The allocation `vm` gets back when its warm-up is over (0 for a live VM).
    ///
    /// ```
    /// let mut l = vibra_alloc::FailoverLedger::new(2, 1).unwrap();
    /// l.fail(&[4, 6], 1).unwrap();
    /// assert_eq!(l.saved(1), Some(6));
    /// ```
    #[must_use]
    pub fn saved(&self, vm: u32) -> Option<u64> {
        self.saved.get(vm as usize).copied()
    }

    fn check(&self, alloc: &[u64], vm: u32, needed: VmPhase) -> Result<()> {
        check_len("allocation", self.phase.len(), alloc.len())?;
        let n = self.phase.len();
        let phase = *self
            .phase
            .get(vm as usize)
            .ok_or(Error::VmOutOfRange { index: vm, n })?;
        let ok = match needed {
            // A VM fails from any phase but Failed (a replacement may die while warming up).
            VmPhase::Live => phase != VmPhase::Failed,
            other => phase == other,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::WrongVmState {
                vm,
                state: phase.name(),
                needed: match needed {
                    VmPhase::Live => "live or warming up",
                    other => other.name(),
                },
            })
        }
    }

    /// VM `vm` failed: its allocation goes in equal parts to its takers (the credit it held
    /// for other failed VMs is forwarded with it). Errors (nothing changed): wrong length;
    /// `vm` out of range or already failed; [`Error::NoTakeover`]; [`Error::Overflow`] when a
    /// taker's allocation, or a credit record, would exceed `u64::MAX` units (possible only
    /// for allocations summing past `u64::MAX`, or ones inconsistent with the ledger's past).
    ///
    /// ```
    /// let mut l = vibra_alloc::FailoverLedger::new(3, 1).unwrap();
    /// assert_eq!(l.fail(&[5, 5, 5], 2).unwrap(), vec![10, 5, 0]);
    /// assert!(l.fail(&[10, 5, 0], 2).is_err()); // already failed
    /// ```
    pub fn fail(&mut self, alloc: &[u64], vm: u32) -> Result<Vec<u64>> {
        self.check(alloc, vm, VmPhase::Live)?;
        let mut available = self.available();
        available[vm as usize] = false;
        let takers = takeover(&available, vm, self.replication)?;
        self.transact(|ledger| ledger.fail_to(alloc, vm, &takers))
    }

    /// Runs `step` on a copy of the ledger and keeps the copy only if it succeeds: the one
    /// place that makes every mutator all-or-nothing.
    fn transact<T>(&mut self, step: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let mut next = self.clone();
        let out = step(&mut next)?;
        *self = next;
        Ok(out)
    }

    /// [`FailoverLedger::fail`] once `vm` and its `takers` are known good. Fails only with
    /// [`Error::Overflow`], possibly after changing `self` (see `transact`).
    fn fail_to(&mut self, alloc: &[u64], vm: u32, takers: &[u32]) -> Result<Vec<u64>> {
        let v = vm as usize;
        let mut out = alloc.to_vec();
        let mut left = alloc[v];
        let mut parts: Vec<(usize, u64)> = Vec::new();
        for origin in 0..self.credits.len() {
            if let Some(held) = self.credits[origin].remove(&vm) {
                let take = held.min(left);
                left -= take;
                parts.push((origin, take));
            }
        }
        if self.phase[v] == VmPhase::Live {
            self.saved[v] = left;
        }
        // A replacement dying while warming up hands back what it had restored.
        self.restored[v] = 0;
        parts.push((v, left));
        for (origin, amount) in parts {
            for (t, share) in equal_parts(amount, takers) {
                if share == 0 {
                    continue;
                }
                let ti = t as usize;
                out[ti] = out[ti].checked_add(share).ok_or_else(|| overflow(t))?;
                let (what, slot) = if ti == origin {
                    // A warming-up origin took over part of its own credit: it is home.
                    ("restored allocation", &mut self.restored[origin])
                } else {
                    ("credit", self.credits[origin].entry(t).or_insert(0))
                };
                *slot = slot.checked_add(share).ok_or(Error::Overflow {
                    what,
                    index: Some(origin),
                })?;
            }
        }
        out[v] = 0;
        self.phase[v] = VmPhase::Failed;
        debug_assert_eq!(units_sum(&out), units_sum(alloc));
        Ok(out)
    }

    /// The replacement for `vm` started: it gets `boot` units of its saved allocation back at
    /// once (capped at the saved allocation), reclaimed from the VMs holding its credit down
    /// to `floor`. Errors (nothing changed): wrong length; `vm` out of range or not failed;
    /// [`Error::Overflow`] when `vm` would hold more than `u64::MAX` units (only for an
    /// `alloc` summing past `u64::MAX`).
    ///
    /// ```
    /// let mut l = vibra_alloc::FailoverLedger::new(2, 1).unwrap();
    /// let a = l.fail(&[4, 6], 1).unwrap();
    /// assert_eq!(l.start_replacement(&a, 1, 100, 0).unwrap(), vec![4, 6]); // boot capped at 6
    /// ```
    pub fn start_replacement(
        &mut self,
        alloc: &[u64],
        vm: u32,
        boot: u64,
        floor: u64,
    ) -> Result<Vec<u64>> {
        self.check(alloc, vm, VmPhase::Failed)?;
        self.transact(|ledger| {
            let v = vm as usize;
            let mut out = alloc.to_vec();
            let want = boot.min(ledger.saved[v]);
            let got = ledger.reclaim(&mut out, v, want, floor, false)?;
            ledger.restored[v] = got;
            ledger.phase[v] = VmPhase::WarmingUp;
            Ok(out)
        })
    }

    /// The warm-up of `vm` is over: it is brought up to `floor` and gets the rest of its
    /// saved allocation back, reclaimed from the VMs holding its credit (down to `floor`; any
    /// shortfall from the VMs with the most to spare), and its remaining credit is cleared.
    /// The same as [`FailoverLedger::finish_warmups`] with one VM. Errors: wrong length; `vm`
    /// out of range or not warming up.
    ///
    /// ```
    /// let mut l = vibra_alloc::FailoverLedger::new(2, 1).unwrap();
    /// let a = l.fail(&[4, 6], 1).unwrap();
    /// let b = l.start_replacement(&a, 1, 0, 0).unwrap();
    /// assert_eq!(l.finish_warmup(&b, 1, 0).unwrap(), vec![4, 6]);
    /// ```
    pub fn finish_warmup(&mut self, alloc: &[u64], vm: u32, floor: u64) -> Result<Vec<u64>> {
        self.finish_warmups(alloc, &[vm], floor)
    }

    /// The warm-ups of `vms` end at the same instant. All of them turn live first, so each
    /// can give up to the others what it holds above `floor`; then each is brought up to
    /// `floor` (what it saved may be below it: credit it held was forwarded when it failed),
    /// then each gets the rest of its saved allocation back, in the order given; the units
    /// come from the holders of its credit first, then from the VMs with the most to spare.
    /// Errors (nothing changed): wrong length; a VM out of range, not warming up or listed
    /// twice; [`Error::Overflow`] when a VM would hold more than `u64::MAX` units (only for an
    /// `alloc` summing past `u64::MAX`).
    ///
    /// ```
    /// let mut l = vibra_alloc::FailoverLedger::new(3, 1).unwrap();
    /// l.fail(&[2, 2, 2], 0).unwrap(); // [0, 4, 2]
    /// l.rebalanced(); // the caller re-divided VMs 1 and 2 by demand: [0, 5, 1]
    /// let a = l.fail(&[0, 5, 1], 1).unwrap();
    /// assert_eq!(a, vec![0, 0, 6]);
    /// let b = l.start_replacement(&a, 1, 5, 1).unwrap(); // VM 1 boots with its 5 units
    /// let c = l.start_replacement(&b, 0, 2, 1).unwrap(); // nothing to spare for VM 0
    /// assert_eq!(c, vec![0, 5, 1]);
    /// // One at a time, VM 0 could take nothing from VM 1, still warming up, and stayed at 0.
    /// assert_eq!(l.finish_warmups(&c, &[0, 1], 1).unwrap(), vec![2, 3, 1]);
    /// ```
    pub fn finish_warmups(&mut self, alloc: &[u64], vms: &[u32], floor: u64) -> Result<Vec<u64>> {
        for (k, &vm) in vms.iter().enumerate() {
            self.check(alloc, vm, VmPhase::WarmingUp)?;
            if vms[..k].contains(&vm) {
                return Err(Error::DuplicateVm(VmId(vm)));
            }
        }
        self.transact(|ledger| ledger.finish_warmups_of(alloc, vms, floor))
    }

    /// [`FailoverLedger::finish_warmups`] once `vms` are known good. Fails only with
    /// [`Error::Overflow`], possibly after changing `self` (see `transact`).
    fn finish_warmups_of(&mut self, alloc: &[u64], vms: &[u32], floor: u64) -> Result<Vec<u64>> {
        let mut out = alloc.to_vec();
        for &vm in vms {
            self.phase[vm as usize] = VmPhase::Live;
        }
        let mut rest = Vec::with_capacity(vms.len());
        for &vm in vms {
            let v = vm as usize;
            let short = floor.saturating_sub(out[v]);
            let got = self.reclaim(&mut out, v, short, floor, true)?;
            rest.push(
                self.saved[v]
                    .saturating_sub(self.restored[v])
                    .saturating_sub(got),
            );
        }
        for (&vm, rest) in vms.iter().zip(rest) {
            let v = vm as usize;
            self.reclaim(&mut out, v, rest, floor, false)?;
            self.credits[v].clear();
            self.saved[v] = 0;
            self.restored[v] = 0;
        }
        debug_assert!(match self.pool {
            None => units_sum(&out) == units_sum(alloc),
            Some(pool) => units_sum(&out) <= u128::from(pool).max(units_sum(alloc)),
        });
        Ok(out)
    }

    /// The caller re-divided the live VMs by demand (as [`crate::Agent`] does every period):
    /// what a live VM holds no longer says how much of it is credit taken over from a failed
    /// VM. So the live holders are released from their credit records: every failed or
    /// warming-up VM's outstanding allocation ([`FailoverLedger::saved`] minus what its
    /// replacement already got) stays owed, and is reclaimed from the live VMs with the most
    /// above the floor; and when a live VM fails later, all it holds counts as its own (none
    /// of it is forwarded as someone else's credit). Credit held by warming-up VMs, which are
    /// pinned and not re-divided, is kept.
    ///
    /// Without this, a stale record could outweigh what the holder really has: a VM holding
    /// a 2,688-unit credit that a re-division cut to 512 units would, on failing, forward all
    /// 512 as the credit and save nothing of its own, so its replacement got nothing back.
    ///
    /// ```
    /// let mut l = vibra_alloc::FailoverLedger::new(3, 1).unwrap();
    /// let a = l.fail(&[10, 80, 10], 1).unwrap(); // VM 2 takes over VM 1's 80 units
    /// assert_eq!(a, vec![10, 0, 90]);
    /// l.rebalanced(); // the caller re-divided by demand: now [50, 0, 50]
    /// assert!(l.credits_of(1).unwrap().is_empty());
    /// let b = l.fail(&[50, 0, 50], 2).unwrap(); // VM 2's 50 units are its own
    /// assert_eq!(b, vec![100, 0, 0]);
    /// assert_eq!(l.saved(2), Some(50));
    /// assert_eq!(l.saved(1), Some(80)); // still owed to VM 1's replacement
    /// ```
    pub fn rebalanced(&mut self) {
        let phase = &self.phase;
        for credits in &mut self.credits {
            credits.retain(|&h, _| phase[h as usize] == VmPhase::WarmingUp);
        }
    }

    /// Lets reclaiming hand out the units of `pool` that nobody holds before taking any from
    /// a VM (the agent's hysteresis can leave some idle). The sum then never exceeds `pool`.
    pub(crate) fn set_pool(&mut self, pool: u64) {
        self.pool = Some(pool);
    }

    /// What VM `i`, holding `held`, can give up: a live VM what it holds above `floor`; a
    /// warming-up replacement what it holds above `floor` and, unless `for_floor`, above what
    /// it got back itself (the rest is credit it took over from others); a failed VM nothing.
    /// `for_floor`: the units bring a VM up to the floor, which outranks a boot part.
    fn spare(&self, i: usize, held: u64, floor: u64, for_floor: bool) -> u64 {
        match self.phase[i] {
            VmPhase::Live => held.saturating_sub(floor),
            VmPhase::WarmingUp if for_floor => held.saturating_sub(floor),
            VmPhase::WarmingUp => held.saturating_sub(floor.max(self.restored[i])),
            VmPhase::Failed => 0,
        }
    }

    /// Takes `take` units (at most its `spare`) from VM `i`; a warming-up VM giving up part of
    /// what it got back itself gets that part back when its warm-up ends.
    fn take_from(&mut self, out: &mut [u64], i: usize, take: u64, floor: u64) {
        if self.phase[i] == VmPhase::WarmingUp {
            let credit_part = out[i].saturating_sub(floor.max(self.restored[i]));
            self.restored[i] = self.restored[i].saturating_sub(take.saturating_sub(credit_part));
        }
        out[i] -= take;
    }

    /// Moves up to `want` units to `v`: first any idle units of the pool (see `set_pool`),
    /// then from the holders of `v`'s credit (ascending VM order), then from the other VMs
    /// with the most to spare (see `spare`). Returns the units moved. Fails only with
    /// [`Error::Overflow`] when `out[v]` cannot hold them, after changing `out` and `self`
    /// (callers run it inside `transact` on a scratch `out`).
    fn reclaim(
        &mut self,
        out: &mut [u64],
        v: usize,
        want: u64,
        floor: u64,
        for_floor: bool,
    ) -> Result<u64> {
        let mut left = want;
        if let Some(pool) = self.pool {
            let idle = u128::from(pool).saturating_sub(units_sum(out));
            // Added to `out[v]` with the rest at the end.
            left -= u64::try_from(idle).unwrap_or(u64::MAX).min(left);
        }
        let holders: Vec<(u32, u64)> = self.credits[v].iter().map(|(&h, &u)| (h, u)).collect();
        for (h, credit) in holders {
            if left == 0 {
                break;
            }
            let h = h as usize;
            let take = credit
                .min(left)
                .min(self.spare(h, out[h], floor, for_floor));
            if take == 0 {
                continue;
            }
            self.take_from(out, h, take, floor);
            left -= take;
            let h = h as u32;
            if take == credit {
                self.credits[v].remove(&h);
            } else if let Some(c) = self.credits[v].get_mut(&h) {
                *c -= take;
            }
        }
        if left > 0 {
            let mut donors: Vec<(u64, usize)> = (0..out.len())
                .filter(|&i| i != v)
                .map(|i| (self.spare(i, out[i], floor, for_floor), i))
                .filter(|&(spare, _)| spare > 0)
                .collect();
            donors.sort_by_key(|&(spare, i)| (std::cmp::Reverse(spare), i));
            for (spare, i) in donors {
                let take = spare.min(left);
                self.take_from(out, i, take, floor);
                left -= take;
                if left == 0 {
                    break;
                }
            }
        }
        let got = want - left;
        out[v] = out[v].checked_add(got).ok_or(Error::Overflow {
            what: "reclaimed allocation",
            index: Some(v),
        })?;
        Ok(got)
    }
}
