use std::mem::{align_of, offset_of, size_of};
use std::ptr::{null, null_mut};

use proptest::prelude::*;

use super::support::last_error;
use crate::boundary::with_forced_panics;
use crate::*;

const SENTINEL: f64 = -12345.0;

fn allocate(demand: &[f64], total: f64, floor: f64) -> Result<Vec<f64>, vibra_status> {
    let mut out = vec![SENTINEL; demand.len()];
    // SAFETY: both arrays hold `demand.len()` values.
    let st = unsafe {
        vibra_allocate_proportional(
            demand.as_ptr(),
            demand.len(),
            total,
            floor,
            out.as_mut_ptr(),
        )
    };
    if st == VIBRA_OK {
        Ok(out)
    } else {
        assert!(out.iter().all(|&o| o == SENTINEL), "out written on error");
        Err(st)
    }
}

fn plan(
    current: &[f64],
    target: &[f64],
    cap: usize,
) -> Result<Vec<vibra_change>, (vibra_status, usize)> {
    let filler = vibra_change {
        vm: 9999,
        from: SENTINEL,
        to: SENTINEL,
    };
    let mut buf = vec![filler; cap];
    let mut len = 7777;
    // SAFETY: `buf` holds `cap` steps; the inputs hold at least `current.len()` values each
    // (the tests keep both lengths equal).
    let st = unsafe {
        vibra_allocation_plan(
            current.as_ptr(),
            target.as_ptr(),
            current.len(),
            buf.as_mut_ptr(),
            cap,
            &mut len,
        )
    };
    if st == VIBRA_OK {
        buf.truncate(len);
        Ok(buf)
    } else {
        assert!(buf.iter().all(|c| *c == filler), "changes written on error");
        Err((st, len))
    }
}

fn failover(
    alloc: &[f64],
    available: &[bool],
    failed: u32,
    r: u32,
) -> Result<Vec<f64>, vibra_status> {
    let mut out = vec![SENTINEL; alloc.len()];
    // SAFETY: all arrays hold `alloc.len()` values (the tests keep the lengths equal).
    let st = unsafe {
        vibra_failover_compensation(
            alloc.as_ptr(),
            available.as_ptr(),
            alloc.len(),
            failed,
            r,
            out.as_mut_ptr(),
        )
    };
    if st == VIBRA_OK {
        Ok(out)
    } else {
        assert!(out.iter().all(|&o| o == SENTINEL), "out written on error");
        Err(st)
    }
}

#[test]
fn vibra_change_has_the_c_layout() {
    assert_eq!(size_of::<vibra_change>(), 24);
    assert_eq!(align_of::<vibra_change>(), 8);
    assert_eq!(
        (
            offset_of!(vibra_change, vm),
            offset_of!(vibra_change, from),
            offset_of!(vibra_change, to)
        ),
        (0, 8, 16)
    );
}

#[test]
fn allocate_proportional_follows_eq_3_2_and_rejects_bad_input() {
    assert_eq!(
        allocate(&[1.0, 3.0, 0.0], 80.0, 4.0),
        Ok(vec![21.0, 55.0, 4.0])
    );
    assert_eq!(allocate(&[0.0, 0.0], 10.0, 1.0), Ok(vec![5.0, 5.0]));
    for (demand, total, floor) in [
        (vec![1.0, f64::NAN], 10.0, 0.0),
        (vec![1.0, -1.0], 10.0, 0.0),
        (vec![1.0, f64::INFINITY], 10.0, 0.0),
        (vec![1.0, 1.0], -1.0, 0.0),
        (vec![1.0, 1.0], f64::NAN, 0.0),
        (vec![1.0, 1.0], 10.0, -0.5),
        (vec![1.0, 1.0], 10.0, 6.0),
        (vec![], 10.0, 0.0),
    ] {
        assert_eq!(
            allocate(&demand, total, floor),
            Err(VIBRA_INVALID_ARGUMENT),
            "{demand:?} {total} {floor}"
        );
        assert!(!last_error().is_empty());
    }
    let mut out = [SENTINEL; 2];
    // SAFETY: each call has one NULL array with a non-zero length, which must be reported.
    unsafe {
        assert_eq!(
            vibra_allocate_proportional(null(), 2, 1.0, 0.0, out.as_mut_ptr()),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_allocate_proportional([1.0, 1.0].as_ptr(), 2, 1.0, 0.0, null_mut()),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_allocate_proportional(null(), 0, 1.0, 0.0, null_mut()),
            VIBRA_INVALID_ARGUMENT
        );
    }
    assert_eq!(out, [SENTINEL; 2]);
}

#[test]
fn allocate_proportional_may_write_over_its_input() {
    let mut values = [1.0, 1.0, 2.0];
    let p = values.as_mut_ptr();
    // SAFETY: one array of 3 values, read then written (documented as allowed).
    assert_eq!(
        unsafe { vibra_allocate_proportional(p, 3, 8.0, 0.0, p) },
        VIBRA_OK
    );
    assert_eq!(values, [2.0, 2.0, 4.0]);
}

#[test]
fn plan_reports_the_needed_length_and_leaves_changes_untouched() {
    let (current, target) = ([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 3.0]);
    let full = plan(&current, &target, 4).unwrap();
    assert_eq!(
        full,
        vec![
            vibra_change {
                vm: 2,
                from: 3.0,
                to: 2.0
            },
            vibra_change {
                vm: 3,
                from: 4.0,
                to: 3.0
            },
            vibra_change {
                vm: 0,
                from: 1.0,
                to: 2.0
            },
        ]
    );
    assert_eq!(plan(&current, &target, 3).unwrap(), full);
    assert_eq!(plan(&current, &target, 2), Err((VIBRA_BUFFER_TOO_SMALL, 3)));
    let mut len = 0;
    // SAFETY: NULL with capacity 0 asks for the length.
    let st = unsafe {
        vibra_allocation_plan(
            current.as_ptr(),
            target.as_ptr(),
            4,
            null_mut(),
            0,
            &mut len,
        )
    };
    assert_eq!((st, len), (VIBRA_BUFFER_TOO_SMALL, 3));
    assert_eq!(
        plan(&[1.0], &[1.0], 0),
        Ok(vec![]),
        "no change needs no buffer"
    );
    assert_eq!(
        plan(&[1.0, f64::NAN], &[1.0, 2.0], 2),
        Err((VIBRA_INVALID_ARGUMENT, 7777))
    );
    assert_eq!(
        plan(&[1.0, 2.0], &[1.0, -2.0], 2),
        Err((VIBRA_INVALID_ARGUMENT, 7777))
    );
    assert_eq!(plan(&[], &[], 2), Err((VIBRA_INVALID_ARGUMENT, 7777)));
    let mut buf = [vibra_change::default(); 2];
    let mut len = 7777;
    // SAFETY: each call has one NULL pointer that must be reported.
    unsafe {
        assert_eq!(
            vibra_allocation_plan(null(), target.as_ptr(), 2, buf.as_mut_ptr(), 2, &mut len),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_allocation_plan(current.as_ptr(), null(), 2, buf.as_mut_ptr(), 2, &mut len),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_allocation_plan(
                current.as_ptr(),
                target.as_ptr(),
                2,
                null_mut(),
                2,
                &mut len
            ),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_allocation_plan(
                current.as_ptr(),
                target.as_ptr(),
                2,
                buf.as_mut_ptr(),
                2,
                null_mut()
            ),
            VIBRA_NULL_POINTER
        );
    }
    assert_eq!(len, 7777);
}

#[test]
fn failover_splits_among_the_takeover_servers_and_checks_arguments() {
    assert_eq!(
        failover(&[6.0; 4], &[true; 4], 1, 2),
        Ok(vec![6.0, 0.0, 9.0, 9.0])
    );
    assert_eq!(
        failover(&[6.0; 4], &[true, true, false, true], 1, 2),
        Ok(vec![9.0, 0.0, 6.0, 9.0]),
        "server 2 is down, so the first two available after 1 are 3 and 0"
    );
    assert_eq!(
        failover(&[6.0; 4], &[true; 4], 3, 1),
        Ok(vec![12.0, 6.0, 6.0, 0.0]),
        "wraps around"
    );
    assert_eq!(
        failover(&[6.0; 4], &[false, true, false, false], 1, 2),
        Err(VIBRA_NO_SERVER_AVAILABLE)
    );
    assert_eq!(
        failover(&[6.0; 4], &[true; 4], 4, 2),
        Err(VIBRA_OUT_OF_RANGE)
    );
    assert_eq!(
        failover(&[6.0; 4], &[true; 4], 1, 0),
        Err(VIBRA_INVALID_ARGUMENT)
    );
    assert_eq!(
        failover(&[6.0; 4], &[true; 4], 1, 5),
        Err(VIBRA_INVALID_ARGUMENT)
    );
    assert_eq!(
        failover(&[6.0, f64::NAN, 1.0], &[true; 3], 0, 1),
        Err(VIBRA_INVALID_ARGUMENT)
    );
    assert_eq!(failover(&[], &[], 0, 1), Err(VIBRA_INVALID_ARGUMENT));
    let mut out = [SENTINEL; 2];
    // SAFETY: each call has one NULL array with a non-zero length, which must be reported.
    unsafe {
        let (a, up) = ([1.0, 1.0], [true, true]);
        assert_eq!(
            vibra_failover_compensation(null(), up.as_ptr(), 2, 0, 1, out.as_mut_ptr()),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_failover_compensation(a.as_ptr(), null(), 2, 0, 1, out.as_mut_ptr()),
            VIBRA_NULL_POINTER
        );
        assert_eq!(
            vibra_failover_compensation(a.as_ptr(), up.as_ptr(), 2, 0, 1, null_mut()),
            VIBRA_NULL_POINTER
        );
    }
    assert_eq!(out, [SENTINEL; 2]);
}

#[test]
fn failover_reads_any_nonzero_byte_as_available() {
    let bytes = [1u8, 2, 0, 255];
    let mut out = [0.0; 4];
    // SAFETY: 4 readable bytes passed where C passes `bool`s; 2 and 255 are not valid Rust bools,
    // which is exactly why the function reads bytes.
    let st = unsafe {
        vibra_failover_compensation(
            [4.0; 4].as_ptr(),
            bytes.as_ptr().cast(),
            4,
            0,
            2,
            out.as_mut_ptr(),
        )
    };
    assert_eq!(st, VIBRA_OK);
    assert_eq!(out, [0.0, 6.0, 4.0, 6.0]);
}

#[test]
fn panics_inside_allocation_functions_come_back_as_a_status() {
    let mut out = [SENTINEL; 2];
    let mut steps = [vibra_change::default(); 2];
    let mut len = 5usize;
    with_forced_panics(|| {
        // SAFETY: valid arguments; only the forced panic can fail these calls.
        unsafe {
            assert_eq!(
                vibra_allocate_proportional([1.0, 1.0].as_ptr(), 2, 2.0, 0.0, out.as_mut_ptr()),
                VIBRA_PANIC
            );
            assert_eq!(
                vibra_allocation_plan(
                    [1.0, 1.0].as_ptr(),
                    [0.0, 2.0].as_ptr(),
                    2,
                    steps.as_mut_ptr(),
                    2,
                    &mut len
                ),
                VIBRA_PANIC
            );
            assert_eq!(
                vibra_failover_compensation(
                    [1.0, 1.0].as_ptr(),
                    [true, true].as_ptr(),
                    2,
                    0,
                    1,
                    out.as_mut_ptr()
                ),
                VIBRA_PANIC
            );
        }
    });
    assert_eq!(
        (out, steps, len),
        ([SENTINEL; 2], [vibra_change::default(); 2], 5)
    );
    assert!(last_error().starts_with("panic inside libvibra (vibra_failover_compensation)"));
}

fn amounts(n: usize) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(0.0f64..1000.0, n)
}

proptest! {
    /// The C function returns exactly the crate's allocation.
    #[test]
    fn c_allocation_equals_the_crate_allocation(demand in amounts(5), total in 0.0f64..1e6, floor_part in 0.0f64..0.2) {
        let floor = total * floor_part / 5.0;
        let mut expected = [0.0; 5];
        vibra_alloc::allocate_proportional(&demand, total, floor, &mut expected).unwrap();
        prop_assert_eq!(allocate(&demand, total, floor).unwrap(), expected.to_vec());
    }

    /// Applying the C plan step by step turns `current` into `target`, and no prefix of it
    /// raises the sum above the larger of the two sums (SPEC section 5).
    #[test]
    fn every_prefix_of_the_plan_keeps_the_sum_within_bounds(current in amounts(6), target in amounts(6)) {
        let steps = plan(&current, &target, 6).unwrap();
        let bound = current.iter().sum::<f64>().max(target.iter().sum::<f64>()) + 1e-6;
        let mut state = current.clone();
        for step in &steps {
            prop_assert_eq!(state[step.vm as usize], step.from);
            state[step.vm as usize] = step.to;
            prop_assert!(state.iter().sum::<f64>() <= bound);
        }
        prop_assert_eq!(state, target);
    }
}
