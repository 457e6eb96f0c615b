//! Change plans (SPEC section 5): how to go from the current allocation to a target one so
//! that the pool is never exceeded, even when only part of the plan has been applied.
//!
//! Order: every decrease first, then every increase, each group in ascending VM order;
//! unchanged VMs are omitted. "VM order" is the order of [`VmId`]s: for the slice functions
//! ([`Plan::between`], [`allocation_plan`]) the id of VM `i` is its position `i`, so it is
//! also ascending position; [`Plan::between_ids`] and [`Plan::from_changes`] sort by id. Decreases only lower the sum, and after all of them the sum is
//! `sum(min(current, target)) <= sum(target)`; increases then climb monotonically to
//! `sum(target)`. So every prefix sums to at most `max(sum(current), sum(target))`, which is
//! within the pool whenever both ends are.

use crate::error::{Error, Result, check_all_non_negative, check_len, check_vm_count};
use crate::ids::VmId;
use crate::units::units_sum;

/// One step of a plan in whole units: set `vm`'s allocation from `from` to `to`.
///
/// ```
/// use vibra_alloc::{Change, VmId};
/// let c = Change { vm: VmId(2), from: 10, to: 4 };
/// assert!(c.is_decrease());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Change {
    /// The VM.
    pub vm: VmId,
    /// Its allocation before the step.
    pub from: u64,
    /// Its allocation after the step.
    pub to: u64,
}

impl Change {
    /// Whether the step lowers the allocation.
    ///
    /// ```
    /// assert!(!vibra_alloc::Change { vm: vibra_alloc::VmId(0), from: 1, to: 2 }.is_decrease());
    /// ```
    #[must_use]
    pub fn is_decrease(&self) -> bool {
        self.to < self.from
    }
}

/// An ordered list of [`Change`]s, decreases first (see the module docs).
///
/// Immutable once built; `Send + Sync`.
///
/// ```
/// use vibra_alloc::{Plan, VmId};
/// let plan = Plan::between(&[10, 20, 30], &[20, 20, 20]).unwrap();
/// let steps: Vec<_> = plan.iter().map(|c| (c.vm.0, c.from, c.to)).collect();
/// assert_eq!(steps, [(2, 30, 20), (0, 10, 20)]);
/// assert_eq!(plan.peak(&[10, 20, 30]), Ok(60));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    changes: Vec<Change>,
}

impl Plan {
    /// The plan from `current` to `target`, VM `i` being `VmId(i)`.
    /// Errors: lengths differ; no VMs; more than 2^32 VMs.
    ///
    /// ```
    /// let p = vibra_alloc::Plan::between(&[5, 5], &[5, 5]).unwrap();
    /// assert!(p.is_empty());
    /// ```
    pub fn between(current: &[u64], target: &[u64]) -> Result<Plan> {
        check_vm_count(current.len())?;
        check_len("target", current.len(), target.len())?;
        Ok(Self::build(current, target, |i| VmId(i as u32)))
    }

    /// The plan from `current` to `target`, VM `i` being `ids[i]` (the agent's and the
    /// directory's ids, in any order). As everywhere in the crate, "ascending VM order" means
    /// ascending [`VmId`], not position in the slices: each group (decreases, then increases)
    /// is listed by ascending id, exactly as [`Plan::from_changes`] would order the same
    /// changes, so the plan does not depend on the order the caller lists its VMs in.
    /// Errors: lengths differ; no VMs; an id listed twice ([`Error::DuplicateVm`]).
    ///
    /// ```
    /// use vibra_alloc::{Plan, VmId};
    /// let p = Plan::between_ids(&[VmId(7), VmId(9)], &[1, 2], &[2, 1]).unwrap();
    /// assert_eq!(p.changes()[0].vm, VmId(9));
    /// // Positions do not matter, ids do: VM 3 goes before VM 8 whatever the slice order.
    /// let p = Plan::between_ids(&[VmId(8), VmId(3)], &[5, 5], &[4, 4]).unwrap();
    /// assert_eq!(p.changes()[0].vm, VmId(3));
    /// ```
    pub fn between_ids(ids: &[VmId], current: &[u64], target: &[u64]) -> Result<Plan> {
        if ids.is_empty() {
            return Err(Error::NoVms);
        }
        check_len("current", ids.len(), current.len())?;
        check_len("target", ids.len(), target.len())?;
        if !strictly_ascending(ids) {
            let mut sorted = ids.to_vec();
            sorted.sort_unstable();
            if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(Error::DuplicateVm(w[0]));
            }
        }
        Ok(Self::between_unique_ids(ids, current, target))
    }

    /// [`Plan::between_ids`] for ids already known to be distinct, with lengths already
    /// checked (the agent's): sorts by id only when the ids are not ascending already.
    pub(crate) fn between_unique_ids(ids: &[VmId], current: &[u64], target: &[u64]) -> Plan {
        let mut plan = Self::build(current, target, |i| ids[i]);
        if !strictly_ascending(ids) {
            // Ids are distinct, so an unstable sort is deterministic.
            plan.changes
                .sort_unstable_by_key(|c| (!c.is_decrease(), c.vm));
        }
        plan
    }

    fn build(current: &[u64], target: &[u64], id: impl Fn(usize) -> VmId) -> Plan {
        let step = |i: usize| Change {
            vm: id(i),
            from: current[i],
            to: target[i],
        };
        // Count first (branch-free), then fill one exact-size vector with two cursors: the
        // decrease/increase branch is unpredictable for real demand, so it is taken once per
        // VM, and no reallocation or second buffer is needed.
        let pairs = || current.iter().zip(target);
        let decreases: usize = pairs().map(|(c, t)| usize::from(t < c)).sum();
        let increases: usize = pairs().map(|(c, t)| usize::from(t > c)).sum();
        let blank = Change {
            vm: VmId(0),
            from: 0,
            to: 0,
        };
        let mut changes = vec![blank; decreases + increases];
        let (mut d, mut u) = (0, decreases);
        for (i, (c, t)) in pairs().enumerate() {
            if t < c {
                changes[d] = step(i);
                d += 1;
            } else if t > c {
                changes[u] = step(i);
                u += 1;
            }
        }
        Plan { changes }
    }

    /// Builds a plan from changes given in any order: sorts them into SPEC order (decreases,
    /// then increases, each by ascending VM) and drops no-ops. Used to combine steps.
    ///
    /// ```
    /// use vibra_alloc::{Change, Plan, VmId};
    /// let p = Plan::from_changes(vec![
    ///     Change { vm: VmId(0), from: 1, to: 5 },
    ///     Change { vm: VmId(1), from: 5, to: 1 },
    ///     Change { vm: VmId(2), from: 3, to: 3 },
    /// ]);
    /// assert_eq!(p.len(), 2);
    /// assert!(p.changes()[0].is_decrease());
    /// ```
    #[must_use]
    pub fn from_changes(mut changes: Vec<Change>) -> Plan {
        changes.retain(|c| c.from != c.to);
        changes.sort_by_key(|c| (!c.is_decrease(), c.vm));
        Plan { changes }
    }

    /// The steps, in the order they must be applied.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::Plan::between(&[1], &[2]).unwrap().changes().len(), 1);
    /// ```
    #[must_use]
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Iterates over the steps in order.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::Plan::between(&[1], &[2]).unwrap().iter().count(), 1);
    /// ```
    pub fn iter(&self) -> std::slice::Iter<'_, Change> {
        self.changes.iter()
    }

    /// The number of steps.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::Plan::between(&[1, 2], &[2, 1]).unwrap().len(), 2);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether there is nothing to do.
    ///
    /// ```
    /// assert!(vibra_alloc::Plan::default().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The steps, owned.
    ///
    /// ```
    /// assert_eq!(vibra_alloc::Plan::between(&[1], &[0]).unwrap().into_changes()[0].to, 0);
    /// ```
    #[must_use]
    pub fn into_changes(self) -> Vec<Change> {
        self.changes
    }

    /// The largest sum of allocations reached before or after any step when the plan is
    /// applied to `start` (indexed by `VmId`). For a plan built by this module from `start`
    /// it is `max(sum(current), sum(target))`.
    ///
    /// Errors exactly when [`Plan::apply_to`] would fail on `start`: a step's VM out of range
    /// ([`Error::VmOutOfRange`]) or a step whose `from` is not what the VM holds at that point
    /// ([`Error::StaleChange`]: the plan was not built from `start`).
    ///
    /// ```
    /// use vibra_alloc::{Error, Plan, VmId};
    /// let p = Plan::between(&[0, 9], &[9, 0]).unwrap();
    /// assert_eq!(p.peak(&[0, 9]), Ok(9)); // the decrease goes first
    /// assert_eq!(
    ///     p.peak(&[0, 0]),
    ///     Err(Error::StaleChange { vm: VmId(1), expected: 9, actual: 0 })
    /// );
    /// ```
    pub fn peak(&self, start: &[u64]) -> Result<u128> {
        self.replay(&mut start.to_vec())
    }

    /// Applies the whole plan to `alloc` (indexed by `VmId`), or nothing: every step's VM must
    /// be in range and its `from` must match the allocation at that point.
    ///
    /// ```
    /// let mut a = [10, 20];
    /// let p = vibra_alloc::Plan::between(&[10, 20], &[15, 15]).unwrap();
    /// p.apply_to(&mut a).unwrap();
    /// assert_eq!(a, [15, 15]);
    /// assert!(p.apply_to(&mut a).is_err()); // stale: `from` no longer matches
    /// assert_eq!(a, [15, 15]);
    /// ```
    pub fn apply_to(&self, alloc: &mut [u64]) -> Result<()> {
        let mut next = alloc.to_vec();
        self.replay(&mut next)?;
        alloc.copy_from_slice(&next);
        Ok(())
    }

    /// Applies the steps to `alloc` in order, checking each, and returns the peak sum.
    /// On error `alloc` is partly updated: callers pass a scratch copy.
    fn replay(&self, alloc: &mut [u64]) -> Result<u128> {
        let n = alloc.len();
        let mut sum = units_sum(alloc);
        let mut peak = sum;
        for c in &self.changes {
            let slot = alloc
                .get_mut(c.vm.index())
                .ok_or(Error::VmOutOfRange { index: c.vm.0, n })?;
            if *slot != c.from {
                return Err(Error::StaleChange {
                    vm: c.vm,
                    expected: c.from,
                    actual: *slot,
                });
            }
            *slot = c.to;
            // `sum` includes `c.from` (the slot held it), so this cannot underflow.
            sum = sum - u128::from(c.from) + u128::from(c.to);
            peak = peak.max(sum);
        }
        Ok(peak)
    }
}

fn strictly_ascending(ids: &[VmId]) -> bool {
    ids.windows(2).all(|w| w[0] < w[1])
}

impl<'a> IntoIterator for &'a Plan {
    type Item = &'a Change;
    type IntoIter = std::slice::Iter<'a, Change>;
    fn into_iter(self) -> Self::IntoIter {
        self.changes.iter()
    }
}

/// One step of an `f64` plan, laid out like the C ABI's
/// `vibra_change { uint32_t vm; double from; double to; }`.
///
/// ```
/// let c = vibra_alloc::ChangeF64 { vm: 1, from: 2.5, to: 1.0 };
/// assert_eq!(c.vm, 1);
/// ```
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChangeF64 {
    /// The VM's index in the input slices.
    pub vm: u32,
    /// Its allocation before the step.
    pub from: f64,
    /// Its allocation after the step.
    pub to: f64,
}

/// SPEC section 5's plan over plain `f64` allocations, written into a caller buffer (what
/// `vibra_allocation_plan` wraps): decreases first, then increases, each in ascending VM
/// index; entries with `current == target` omitted. Returns the number of steps written.
///
/// Errors (nothing written): no VMs; more than 2^32 VMs; lengths differ; any value negative,
/// NaN or infinite; [`Error::BufferTooSmall`] with the needed length when `out` is too short.
///
/// ```
/// use vibra_alloc::{allocation_plan, ChangeF64, Error};
/// let mut buf = [ChangeF64::default(); 3];
/// let len = allocation_plan(&[1.0, 2.0, 3.0], &[2.0, 2.0, 2.0], &mut buf).unwrap();
/// assert_eq!(&buf[..len], &[ChangeF64 { vm: 2, from: 3.0, to: 2.0 }, ChangeF64 { vm: 0, from: 1.0, to: 2.0 }]);
///
/// let mut small = [ChangeF64::default(); 1];
/// assert_eq!(
///     allocation_plan(&[1.0, 2.0, 3.0], &[2.0, 2.0, 2.0], &mut small),
///     Err(Error::BufferTooSmall { needed: 2, capacity: 1 })
/// );
/// ```
pub fn allocation_plan(current: &[f64], target: &[f64], out: &mut [ChangeF64]) -> Result<usize> {
    check_vm_count(current.len())?;
    check_len("target", current.len(), target.len())?;
    check_all_non_negative("current", current)?;
    check_all_non_negative("target", target)?;
    let pairs = || current.iter().zip(target);
    let decreases: usize = pairs().map(|(c, t)| usize::from(t < c)).sum();
    let needed = decreases + pairs().map(|(c, t)| usize::from(t > c)).sum::<usize>();
    if needed > out.len() {
        return Err(Error::BufferTooSmall {
            needed,
            capacity: out.len(),
        });
    }
    // Two cursors, one pass (see `Plan::build`).
    let (mut d, mut u) = (0, decreases);
    for (i, (&from, &to)) in pairs().enumerate() {
        let change = ChangeF64 {
            vm: i as u32,
            from,
            to,
        };
        if to < from {
            out[d] = change;
            d += 1;
        } else if to > from {
            out[u] = change;
            u += 1;
        }
    }
    Ok(needed)
}

/// [`allocation_plan`] into a new vector (never [`Error::BufferTooSmall`]).
///
/// ```
/// let plan = vibra_alloc::allocation_plan_vec(&[3.0, 1.0], &[1.0, 3.0]).unwrap();
/// assert_eq!(plan.len(), 2);
/// assert_eq!(plan[0].vm, 0);
/// ```
pub fn allocation_plan_vec(current: &[f64], target: &[f64]) -> Result<Vec<ChangeF64>> {
    check_vm_count(current.len())?;
    check_len("target", current.len(), target.len())?;
    let needed = current.iter().zip(target).filter(|(c, t)| c != t).count();
    let mut out = vec![ChangeF64::default(); needed];
    let len = allocation_plan(current, target, &mut out)?;
    out.truncate(len);
    Ok(out)
}
