//! Locality-loss and load metrics (SPEC section 3, dissertation figure 4.1 and table 3.1).

use proptest::prelude::*;
use vibra_baselines::{
    Error, StreamStats, failover_load, fig4_1, fig4_1_row, naive_loss, neighbour_peak,
    skip_rule_loss,
};
use vibra_hash::Error as HashError;

#[test]
fn fig4_1_naive_worst_is_half_and_average_is_36_7_percent_at_n10_r1() {
    let row = fig4_1_row(10, 1).unwrap();
    assert!((row.naive_worst_loss - 0.5).abs() < 1e-12, "{row:?}");
    assert_eq!(format!("{:.1}", row.naive_avg_loss * 100.0), "36.7");
    assert!((row.skip_loss - 0.1).abs() < 1e-12);
}

#[test]
fn fig4_1_naive_worst_case_is_half_for_every_cluster_size_with_r1() {
    // Section 4.3.3: "the naive approach will lose 50% of locality for all cluster sizes in the
    // worst case", and the average shrinks as the cluster grows.
    let rows = fig4_1(2..=32, 1..=1).unwrap();
    for row in &rows {
        assert!((row.naive_worst_loss - 0.5).abs() < 1e-12, "{row:?}");
    }
    for pair in rows.windows(2).skip(1) {
        assert!(pair[1].naive_avg_loss < pair[0].naive_avg_loss, "{pair:?}");
    }
}

#[test]
fn fig4_1_replication_lowers_the_naive_average_but_stays_above_the_skip_rule() {
    for row in fig4_1(4..=32, 1..=4).unwrap() {
        if row.replication + 1 < row.servers {
            assert!(row.naive_avg_loss > row.skip_loss + 1e-9, "{row:?}");
        } else {
            // R >= N - 1: every survivor serves the whole key space either way.
            assert!(
                (row.naive_avg_loss - row.skip_loss).abs() < 1e-12,
                "{row:?}"
            );
        }
        if row.replication > 1 {
            let r1 = fig4_1_row(row.servers, 1).unwrap();
            assert!(row.naive_avg_loss < r1.naive_avg_loss, "{row:?} vs {r1:?}");
        }
    }
}

#[test]
fn metrics_reject_bad_input() {
    assert!(matches!(
        naive_loss(&[], &[], 1),
        Err(Error::Hash(HashError::InvalidServerCount { .. }))
    ));
    assert_eq!(
        skip_rule_loss(&[true; 3], &[true; 2], 1),
        Err(Error::Hash(HashError::SliceLength { len: 2, servers: 3 }))
    );
    assert_eq!(
        naive_loss(&[true; 3], &[false; 3], 1),
        Err(Error::Hash(HashError::NoServerAvailable))
    );
    assert_eq!(
        skip_rule_loss(&[true; 3], &[true; 3], 4),
        Err(Error::Hash(HashError::InvalidReplication {
            replication: 4,
            servers: 3
        }))
    );
    assert!(fig4_1_row(1, 1).is_err());
    assert_eq!(
        failover_load(&[1.0, f64::NAN], 1, &[true; 2], &[true; 2]),
        Err(Error::InvalidWeight { index: 1 })
    );
    assert_eq!(
        neighbour_peak(&[1.0; 2], 1, &[true, false], 0),
        Err(Error::Hash(HashError::NoSurvivor { failed: 0 }))
    );
}

/// Naive scheme by definition, on the common grid of M_b * M_a equal cells: the servers of a
/// cell are the R survivors from its range, in survivor order.
fn naive_by_cells(before: &[bool], after: &[bool], r: u32) -> f64 {
    let alive =
        |st: &[bool]| -> Vec<u32> { (0..st.len() as u32).filter(|&s| st[s as usize]).collect() };
    let (b, a) = (alive(before), alive(after));
    let (mb, ma) = (b.len(), a.len());
    let cells = mb * ma;
    let members = |surv: &[u32], cell: usize, per_range: usize| -> Vec<u32> {
        let m = surv.len();
        let j = cell / per_range;
        (0..(r as usize).min(m))
            .map(|t| surv[(j + t) % m])
            .collect()
    };
    let mut kept = 0usize;
    for cell in 0..cells {
        let sb = members(&b, cell, ma);
        let sa = members(&a, cell, mb);
        kept += sb.iter().filter(|s| sa.contains(s)).count();
    }
    let held = cells * (r as usize).min(mb);
    (held - kept) as f64 / held as f64
}

fn states() -> impl Strategy<Value = (u32, Vec<bool>, Vec<bool>)> {
    (1u32..24).prop_flat_map(|n| {
        (
            1..=n,
            proptest::collection::vec(proptest::bool::weighted(0.8), n as usize),
            proptest::collection::vec(proptest::bool::weighted(0.7), n as usize),
        )
    })
}

proptest! {
    #[test]
    fn skip_rule_locality_loss_equals_failed_over_n(
        n in 1u32..200, r_seed in any::<u32>(),
        down in proptest::collection::vec(proptest::bool::weighted(0.2), 200)
    ) {
        let r = 1 + r_seed % n;
        let after: Vec<bool> = (0..n as usize).map(|s| !down[s]).collect();
        prop_assume!(after.contains(&true));
        let k = after.iter().filter(|&&u| !u).count() as f64;
        let loss = skip_rule_loss(&vec![true; n as usize], &after, r).unwrap();
        prop_assert!((loss - k / f64::from(n)).abs() < 1e-12, "loss {} k {} n {}", loss, k, n);
    }

    #[test]
    fn naive_loss_matches_the_cellwise_definition((_, before, after) in states(), r_seed in any::<u32>()) {
        prop_assume!(before.contains(&true) && after.contains(&true));
        let n = before.len() as u32;
        let r = 1 + r_seed % n;
        let exact = naive_loss(&before, &after, r).unwrap();
        prop_assert!((exact - naive_by_cells(&before, &after, r)).abs() < 1e-12);
        prop_assert!((0.0..=1.0).contains(&exact));
    }

    #[test]
    fn losses_are_zero_without_change((_, before, _) in states(), r_seed in any::<u32>()) {
        prop_assume!(before.contains(&true));
        let r = 1 + r_seed % before.len() as u32;
        prop_assert_eq!(skip_rule_loss(&before, &before, r).unwrap(), 0.0);
        prop_assert_eq!(naive_loss(&before, &before, r).unwrap(), 0.0);
    }

    #[test]
    fn failover_load_conserves_total_load(
        (r, before, after) in states(),
        weights in proptest::collection::vec(0.0f64..100.0, 24)
    ) {
        prop_assume!(before.contains(&true) && after.contains(&true));
        let n = before.len() as u32;
        let w = &weights[..n as usize];
        let l = failover_load(w, r, &before, &after).unwrap();
        let total: f64 = w.iter().sum();
        prop_assert!((l.before.iter().sum::<f64>() - total).abs() < 1e-6);
        prop_assert!((l.after.iter().sum::<f64>() - total).abs() < 1e-6);
        prop_assert_eq!(l.after.len(), n as usize);
        for (load, up) in l.after.iter().zip(&after) {
            if !up {
                prop_assert_eq!(*load, 0.0);
            }
        }
    }

    #[test]
    fn neighbour_peak_is_one_plus_one_over_r_under_uniform_load(
        n in 2u32..64, r_seed in any::<u32>(), failed_seed in any::<u32>()
    ) {
        let r = 1 + r_seed % (n - 1); // R < N, so R servers remain
        let failed = failed_seed % n;
        let p = neighbour_peak(&vec![1.0; n as usize], r, &vec![true; n as usize], failed).unwrap();
        prop_assert!((p.before - 1.0).abs() < 1e-9);
        prop_assert!((p.after - (1.0 + 1.0 / f64::from(r))).abs() < 1e-9, "{:?}", p);
        prop_assert_eq!(p.server, (failed + 1) % n);
    }

    #[test]
    fn stream_stats_partition_the_stream(
        reqs in proptest::collection::vec((0u32..5, 0u8..20, 1u64..1000), 0..300)
    ) {
        let mut st = StreamStats::new(5).unwrap();
        for &(s, obj, bytes) in &reqs {
            st.record(s, format!("/o{obj}?v={bytes}").as_bytes(), bytes).unwrap();
        }
        let per = st.per_server();
        prop_assert_eq!(per.iter().map(|s| s.requests).sum::<u64>(), reqs.len() as u64);
        prop_assert_eq!(per.iter().map(|s| s.bytes).sum::<u64>(), reqs.iter().map(|r| r.2).sum::<u64>());
        for (i, s) in per.iter().enumerate() {
            let mut objs: Vec<u8> = reqs.iter().filter(|r| r.0 == i as u32).map(|r| r.1).collect();
            objs.sort_unstable();
            objs.dedup();
            prop_assert_eq!(s.distinct_objects, objs.len() as u64);
            prop_assert!(s.distinct_bytes <= s.bytes);
        }
        prop_assert_eq!(st.locality_loss_to(&st).unwrap(), 0.0);
    }
}

/// Byte totals near `u64::MAX`, on a few servers.
fn huge_requests() -> impl Strategy<Value = Vec<(u32, u8, u64)>> {
    let bytes = prop_oneof![
        Just(u64::MAX),
        (u64::MAX - 16)..=u64::MAX,
        any::<u64>(),
        0u64..1000
    ];
    proptest::collection::vec((0u32..3, 0u8..6, bytes), 0..40)
}

proptest! {
    #[test]
    fn stream_byte_counts_saturate_at_u64_max_instead_of_wrapping(reqs in huge_requests()) {
        let mut st = StreamStats::new(3).unwrap();
        for &(s, obj, bytes) in &reqs {
            st.record(s, format!("/o{obj}").as_bytes(), bytes).unwrap();
        }
        for (i, got) in st.per_server().iter().enumerate() {
            let mine: Vec<_> = reqs.iter().filter(|r| r.0 == i as u32).collect();
            let exact: u128 = mine.iter().map(|r| u128::from(r.2)).sum();
            let mut seen = std::collections::HashSet::new();
            let distinct: u128 = mine
                .iter()
                .filter(|r| seen.insert(r.1))
                .map(|r| u128::from(r.2))
                .sum();
            let capped = |x: u128| u64::try_from(x).unwrap_or(u64::MAX);
            prop_assert_eq!(got.requests, mine.len() as u64);
            prop_assert_eq!(got.bytes, capped(exact));
            prop_assert_eq!(got.distinct_bytes, capped(distinct));
            prop_assert_eq!(got.distinct_objects, seen.len() as u64);
        }
    }

    #[test]
    fn failover_loads_are_finite_or_the_weight_total_overflow_is_refused(
        (r, before, after) in states(),
        weights in proptest::collection::vec(
            prop_oneof![Just(f64::MAX), (f64::MAX / 8.0)..f64::MAX, 0.0f64..100.0],
            24
        )
    ) {
        prop_assume!(before.contains(&true) && after.contains(&true));
        let w = &weights[..before.len()];
        let got = failover_load(w, r, &before, &after);
        // The f64 running total, in index order, first becomes infinite here (if it does).
        let mut total = 0.0f64;
        let overflow = w.iter().position(|x| {
            total += x;
            total.is_infinite()
        });
        match overflow {
            Some(index) => prop_assert_eq!(got, Err(Error::WeightSumOverflow { index })),
            None => {
                let l = got.unwrap();
                for x in l.before.iter().chain(&l.after) {
                    prop_assert!(x.is_finite() && *x >= 0.0, "{:?}", l);
                }
                // Conservation, summed at half scale (exact for these values): each load is
                // finite, but adding them up can round past f64::MAX when the total is near it.
                let sum: f64 = w.iter().map(|x| x * 0.5).sum();
                let after: f64 = l.after.iter().map(|x| x * 0.5).sum();
                prop_assert!((after - sum).abs() <= sum * 1e-9, "{:?}", l);
            }
        }
    }
}

#[test]
fn huge_weights_are_refused_only_when_their_total_overflows() {
    let up = [true; 2];
    let down = [true, false];
    assert_eq!(
        failover_load(&[f64::MAX, f64::MAX], 1, &up, &down),
        Err(Error::WeightSumOverflow { index: 1 })
    );
    assert_eq!(
        neighbour_peak(&[f64::MAX, f64::MAX], 1, &up, 1).map(|p| p.after),
        Err(Error::WeightSumOverflow { index: 1 })
    );
    let half = f64::MAX / 2.0;
    let l = failover_load(&[half, half], 1, &up, &down).unwrap();
    assert_eq!(l.after, vec![f64::MAX, 0.0]);
}
