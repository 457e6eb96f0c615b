//! The allocation functions of libvibra's C API (SPEC sections 4, 5 and 8) called as a C caller
//! would: `vibra_allocate_proportional`, `vibra_allocation_plan` and
//! `vibra_failover_compensation` with NaN, infinite, negative and huge values, counts from 0 to
//! huge (with NULL pointers), tiny capacities, out-of-range indices, invalid replication
//! factors, availability bytes other than 0 and 1, and outputs aliasing inputs.
//!
//! Each call must succeed exactly when the header's error conditions all fail, leave its
//! outputs untouched (sentinels) when it fails, and on success satisfy SPEC: an allocation
//! lies between the floor and the total and sums to the total (floating tolerance); a plan
//! lists every changed entry, decreases first, and every prefix stays within the pool; a
//! compensation moves the failed server's allocation in equal parts to exactly the servers
//! SPEC section 4 names and conserves the sum.
#![no_main]

use ffi_fuzz::{
    Contract, Expect, SENTINEL_F64, SENTINEL_USIZE, any_f64, at_most_scaled, count, is_amount,
    mut_ptr_or_null, ptr_or_null, rare, scaled_sum, sentinel_f64, sum_at_most, sum_close,
    sums_close, tolerance, valid_f64,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use vibra::*;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn run(u: &mut Unstructured) -> Result<()> {
    let mut c = Contract::new();
    for _ in 0..8 {
        if u.is_empty() {
            break;
        }
        match u.int_in_range(0u8..=2)? {
            0 => proportional(u, &mut c)?,
            1 => plan(u, &mut c)?,
            _ => failover(u, &mut c)?,
        }
    }
    Ok(())
}

/// Where a function's output goes.
#[derive(Clone, Copy, PartialEq)]
enum Output {
    Own,
    Null,
    /// The first input array itself (documented as allowed).
    Alias,
}

fn output(u: &mut Unstructured) -> Result<Output> {
    Ok(if rare(u)? {
        Output::Null
    } else if u.int_in_range(0u8..=3)? == 0 {
        Output::Alias
    } else {
        Output::Own
    })
}

/// `n` values, each invalid (negative, NaN, infinite) only rarely so that most calls get
/// through the checks.
fn values(u: &mut Unstructured, n: usize) -> Result<Vec<f64>> {
    (0..n)
        .map(|_| if rare(u)? { any_f64(u) } else { valid_f64(u) })
        .collect()
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn proportional(u: &mut Unstructured, c: &mut Contract) -> Result<()> {
    let (n, huge) = count(u, 1000)?;
    let len = if huge { 0 } else { n };
    let demand_in = values(u, len)?;
    let total = if rare(u)? { any_f64(u)? } else { valid_f64(u)? };
    let floor = match u.int_in_range(0u8..=7)? {
        0 => any_f64(u)?,
        1 if n > 0 => total / n as f64,
        2 => valid_f64(u)?,
        _ => 0.0,
    };
    let demand_null = huge || rare(u)?;
    let out_mode = if huge { Output::Null } else { output(u)? };
    let mut demand = demand_in.clone().into_boxed_slice();
    let mut own = vec![sentinel_f64(); len].into_boxed_slice();
    let dp = ptr_or_null(&demand, demand_null);
    let op = match out_mode {
        Output::Own => own.as_mut_ptr(),
        Output::Null => std::ptr::null_mut(),
        Output::Alias => demand.as_mut_ptr(),
    };
    // SAFETY: each pointer is NULL or has `n` elements (a huge `n` only with NULL pointers).
    let st = unsafe { vibra_allocate_proportional(dp, n, total, floor, op) };

    let mut e = Expect::new();
    e.when(
        n > 0 && (demand_null || out_mode == Output::Null),
        VIBRA_NULL_POINTER,
    );
    e.when(
        n == 0
            || !is_amount(total)
            || !is_amount(floor)
            || n as f64 * floor > total
            || (!demand_null && !demand_in.iter().all(|&d| is_amount(d))),
        VIBRA_INVALID_ARGUMENT,
    );
    let out: Vec<f64> = match out_mode {
        Output::Alias => demand.to_vec(),
        _ => own.to_vec(),
    };
    if !c.check(u, "vibra_allocate_proportional", st, &e)? {
        match out_mode {
            Output::Alias => assert_eq!(bits(&out), bits(&demand_in), "failed call wrote out"),
            _ => assert!(
                out.iter().all(|x| x.to_bits() == SENTINEL_F64),
                "failed call wrote out"
            ),
        }
        return Ok(());
    }
    let what = format!("allocate({demand_in:?}, total {total:?}, floor {floor:?}) = {out:?}");
    assert!(
        out.iter()
            .all(|&o| o.is_finite() && o >= floor && o <= total),
        "{what}: an entry outside [floor, total]"
    );
    assert!(
        sum_close(&out, total, tolerance(n)),
        "{what}: does not sum to the total"
    );
    assert!(
        sum_at_most(&out, total, tolerance(n)),
        "{what}: exceeds the total"
    );
    if demand_in.iter().all(|&d| d == 0.0) {
        let each = total / n as f64;
        assert!(
            out.iter().all(|&o| o == each),
            "{what}: zero demand, not T/n each"
        );
    } else {
        // Eq. 3.2 is monotone in the demand, and a VM demanding nothing gets just the floor.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| demand_in[a].total_cmp(&demand_in[b]));
        assert!(
            order.windows(2).all(|w| out[w[0]] <= out[w[1]]),
            "{what}: not monotone in the demand"
        );
        assert!(
            (0..n).all(|i| demand_in[i] != 0.0 || out[i] == floor),
            "{what}: a VM with no demand got more than the floor"
        );
    }
    Ok(())
}

fn plan(u: &mut Unstructured, c: &mut Contract) -> Result<()> {
    let (n, huge) = count(u, 600)?;
    let len = if huge { 0 } else { n };
    let current = values(u, len)?;
    let mut target = Vec::with_capacity(len);
    for &cur in &current {
        target.push(match u.int_in_range(0u8..=3)? {
            0 => cur,
            1 => cur * 0.5,
            _ => {
                if rare(u)? {
                    any_f64(u)?
                } else {
                    valid_f64(u)?
                }
            }
        });
    }
    let current = current.into_boxed_slice();
    let target = target.into_boxed_slice();
    let (cap, cap_huge) = match u.int_in_range(0u8..=7)? {
        0 => (0, false),
        1 if !huge => (n, false),
        2 => (usize::MAX, true),
        _ => (u.int_in_range(0..=len + 2)?, false),
    };
    let cur_null = huge || rare(u)?;
    let tgt_null = huge || rare(u)?;
    let buf_null = cap_huge || (cap == 0 && u.arbitrary()?) || rare(u)?;
    let len_null = rare(u)?;
    let blank = vibra_change {
        vm: 0xA5A5_A5A5,
        from: sentinel_f64(),
        to: sentinel_f64(),
    };
    let mut buf = vec![blank; if cap_huge { 0 } else { cap }].into_boxed_slice();
    let mut out_len = SENTINEL_USIZE;
    let lp = if len_null {
        std::ptr::null_mut()
    } else {
        &raw mut out_len
    };
    // SAFETY: each pointer is NULL or has its length/capacity; a huge count or capacity comes
    // only with NULL.
    let st = unsafe {
        vibra_allocation_plan(
            ptr_or_null(&current, cur_null),
            ptr_or_null(&target, tgt_null),
            n,
            mut_ptr_or_null(&mut buf, buf_null),
            cap,
            lp,
        )
    };

    let arrays = !cur_null && !tgt_null;
    let valid = arrays && current.iter().chain(target.iter()).all(|&v| is_amount(v));
    let needed = current.iter().zip(&target).filter(|(c, t)| c != t).count();
    let mut e = Expect::new();
    e.when(
        len_null || (n > 0 && (cur_null || tgt_null)) || (cap > 0 && buf_null),
        VIBRA_NULL_POINTER,
    );
    e.when(
        n == 0 || (n - 1) > u32::MAX as usize || (arrays && !valid),
        VIBRA_INVALID_ARGUMENT,
    );
    e.when(valid && needed > cap, VIBRA_BUFFER_TOO_SMALL);
    let ok = c.check(u, "vibra_allocation_plan", st, &e)?;
    let untouched = |from: usize| {
        buf[from..].iter().all(|s| {
            s.vm == blank.vm && s.from.to_bits() == SENTINEL_F64 && s.to.to_bits() == SENTINEL_F64
        })
    };
    if !ok {
        assert!(untouched(0), "a failed plan wrote into changes");
        if st == VIBRA_BUFFER_TOO_SMALL {
            assert_eq!(
                out_len, needed,
                "BUFFER_TOO_SMALL must give the needed length"
            );
        } else {
            assert_eq!(out_len, SENTINEL_USIZE, "a failed plan wrote *len");
        }
        return Ok(());
    }
    assert!(untouched(out_len), "plan wrote past its length");
    let steps = &buf[..out_len];
    let what = format!("plan({current:?} -> {target:?}) = {steps:?}");
    assert_eq!(
        out_len, needed,
        "{what}: not every changed entry, or an unchanged one"
    );
    // Decreases first, then increases, each in ascending VM order, each a real change.
    let decreases = steps.iter().take_while(|s| s.to < s.from).count();
    assert!(
        steps[decreases..].iter().all(|s| s.to > s.from),
        "{what}: not decreases first"
    );
    for group in [&steps[..decreases], &steps[decreases..]] {
        assert!(
            group.windows(2).all(|w| w[0].vm < w[1].vm),
            "{what}: not ascending"
        );
    }
    for s in steps {
        let i = s.vm as usize;
        assert!(i < n, "{what}: vm out of range");
        assert_eq!(s.from.to_bits(), current[i].to_bits(), "{what}: wrong from");
        assert_eq!(s.to.to_bits(), target[i].to_bits(), "{what}: wrong to");
    }
    // Every prefix keeps the sum within the pool max(sum(current), sum(target)).
    let mut now = current.to_vec();
    let pool = scaled_sum(&current).max(scaled_sum(&target));
    for s in steps {
        now[s.vm as usize] = s.to;
        assert!(
            at_most_scaled(&now, pool, tolerance(n)),
            "{what}: a prefix exceeds the pool"
        );
    }
    // A capacity of n always suffices, and the plan does not depend on the capacity.
    if cap != n {
        let mut again = vec![blank; n];
        let mut l2 = SENTINEL_USIZE;
        // SAFETY: both arrays have `n` elements, `again` has `n`, `l2` is writable.
        let st2 = unsafe {
            vibra_allocation_plan(
                current.as_ptr(),
                target.as_ptr(),
                n,
                again.as_mut_ptr(),
                n,
                &mut l2,
            )
        };
        assert_eq!((st2, l2), (VIBRA_OK, out_len));
        assert_eq!(&again[..l2], steps, "the plan depends on the capacity");
    }
    Ok(())
}

fn failover(u: &mut Unstructured, c: &mut Contract) -> Result<()> {
    let (n, huge) = count(u, 600)?;
    let len = if huge { 0 } else { n };
    let alloc_in = values(u, len)?;
    // Availability as the bytes a C `bool` array may hold: usually 0 or 1, sometimes others.
    let available: Vec<u8> = (0..len)
        .map(|_| {
            Ok(match u.int_in_range(0u8..=7)? {
                0 | 1 => 0,
                2 => u.arbitrary()?,
                _ => 1,
            })
        })
        .collect::<Result<_>>()?;
    let n32 = u32::try_from(n).unwrap_or(u32::MAX);
    let failed: u32 = if rare(u)? {
        u.arbitrary()?
    } else {
        u.int_in_range(0..=n32)?
    };
    let replication: u32 = if rare(u)? {
        u.arbitrary()?
    } else {
        u.int_in_range(0..=n32.saturating_add(1).min(50))?
    };
    let alloc_null = huge || rare(u)?;
    let avail_null = huge || rare(u)?;
    let out_mode = if huge { Output::Null } else { output(u)? };
    let mut alloc = alloc_in.clone().into_boxed_slice();
    let available = available.into_boxed_slice();
    let mut own = vec![sentinel_f64(); len].into_boxed_slice();
    let op = match out_mode {
        Output::Own => own.as_mut_ptr(),
        Output::Null => std::ptr::null_mut(),
        Output::Alias => alloc.as_mut_ptr(),
    };
    // SAFETY: each pointer is NULL or has `n` elements (a huge `n` only with NULL); the
    // availability bytes are passed as C's `bool` array, which libvibra reads as bytes.
    let st = unsafe {
        vibra_failover_compensation(
            ptr_or_null(&alloc, alloc_null),
            ptr_or_null(&available, avail_null).cast::<bool>(),
            n,
            failed,
            replication,
            op,
        )
    };

    let arrays = !alloc_null && !avail_null;
    let valid_values = alloc_in.iter().all(|&a| is_amount(a));
    let in_range = (failed as usize) < n;
    // SPEC section 4: the first R available servers after `failed` in cyclic order.
    let takers: Vec<usize> = if arrays && in_range && replication >= 1 {
        (1..n)
            .map(|k| (failed as usize + k) % n)
            .filter(|&s| available[s] != 0)
            .take(replication as usize)
            .collect()
    } else {
        Vec::new()
    };
    let share = if takers.is_empty() {
        0.0
    } else {
        alloc_in[failed as usize] / takers.len() as f64
    };
    let overflow = valid_values && takers.iter().any(|&t| !(alloc_in[t] + share).is_finite());
    let mut e = Expect::new();
    e.when(
        n > 0 && (alloc_null || avail_null || out_mode == Output::Null),
        VIBRA_NULL_POINTER,
    );
    e.when(
        n == 0
            || (n - 1) > u32::MAX as usize
            || replication == 0
            || replication as usize > n
            || (!alloc_null && !valid_values)
            || overflow,
        VIBRA_INVALID_ARGUMENT,
    );
    e.when(n > 0 && !in_range, VIBRA_OUT_OF_RANGE);
    e.when(
        arrays && in_range && takers.is_empty(),
        VIBRA_NO_SERVER_AVAILABLE,
    );
    let out: Vec<f64> = match out_mode {
        Output::Alias => alloc.to_vec(),
        _ => own.to_vec(),
    };
    if !c.check(u, "vibra_failover_compensation", st, &e)? {
        match out_mode {
            Output::Alias => assert_eq!(bits(&out), bits(&alloc_in), "failed call wrote out"),
            _ => assert!(
                out.iter().all(|x| x.to_bits() == SENTINEL_F64),
                "failed call wrote out"
            ),
        }
        return Ok(());
    }
    let what = format!(
        "failover({alloc_in:?}, {available:?}, failed {failed}, R {replication}) = {out:?}"
    );
    let f = failed as usize;
    assert_eq!(out[f], 0.0, "{what}: the failed server keeps an allocation");
    for i in (0..n).filter(|&i| i != f) {
        if takers.contains(&i) {
            let want = alloc_in[i] + share;
            assert!(
                out[i].is_finite() && (out[i] - want).abs() <= 2.0 * f64::EPSILON * want,
                "{what}: taker {i} did not get an equal part"
            );
        } else {
            assert_eq!(
                out[i].to_bits(),
                alloc_in[i].to_bits(),
                "{what}: {i} changed"
            );
        }
    }
    assert!(
        sums_close(&out, &alloc_in, tolerance(n)),
        "{what}: the sum is not conserved"
    );
    Ok(())
}
