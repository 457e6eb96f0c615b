//! Figure 4.1: locality lost when one of N servers fails, the naive re-partitioning against
//! vibra's failure-skip rule, for N = 2..32 and R = 1..4. The figures are exact (vibra-hash's
//! `fig4_1`, computed on the key space as a measure); a sampled check over real or generated
//! URLs confirms them through the dispatchers themselves.

use serde_json::json;
use vibra_baselines::{Fig41Row, NaiveRepartition, Selection, locality_loss};
use vibra_hash::{Dispatcher, HashKind};

use crate::workload::UrlCorpus;
use crate::{
    Comparison, DissertationMark, Experiment, Figure, LabError, Report, RunContext, Series,
};

/// The `fig4.1` experiment.
pub struct Fig41;

const SERVERS: std::ops::RangeInclusive<u32> = 2..=32;
const REPLICATIONS: std::ops::RangeInclusive<u32> = 1..=4;
/// The cluster size the dissertation quotes (section 4.3.3).
const QUOTED_N: u32 = 10;

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// Sampled loss of a policy type for N = `servers`, averaged over which server fails.
fn sampled(
    urls: &[&[u8]],
    servers: u32,
    replication: u32,
    naive: bool,
) -> Result<(f64, f64), LabError> {
    let (mut sum, mut worst) = (0.0f64, 0.0f64);
    for failed in 0..servers {
        let loss = if naive {
            let before = NaiveRepartition::new(servers, replication, HashKind::Fast)?;
            let mut after = before.clone();
            after.set_available(failed, false)?;
            locality_loss(urls.iter().copied(), &before, &after)?
        } else {
            let before = Dispatcher::new(servers, replication, HashKind::Fast)?;
            let after = Dispatcher::new(servers, replication, HashKind::Fast)?;
            Dispatcher::set_available(&after, failed, false)?;
            locality_loss(urls.iter().copied(), &before, &after)?
        };
        sum += loss;
        worst = worst.max(loss);
    }
    Ok((sum / f64::from(servers), worst))
}

impl Experiment for Fig41 {
    fn name(&self) -> &'static str {
        "fig4.1"
    }

    fn title(&self) -> &'static str {
        "locality loss after one failure: naive re-partitioning vs failure-skip"
    }

    fn dissertation(&self) -> &'static str {
        "Figure 4.1 (section 4.3.3): with R = 1 the naive approach (a new hash onto N - 1 \
         sub-namespaces) loses 50% of locality in the worst case for every cluster size, and \
         37% on average for 10 servers; the average falls as N grows and is lower for R > 1, \
         but stays far above the optimum 1/N that skipping the failed server achieves."
    }

    fn row_fields(&self) -> &'static [&'static str] {
        &[
            "servers",
            "replication",
            "naive_avg_loss",
            "naive_worst_loss",
            "skip_loss",
        ]
    }

    fn run(&self, ctx: &RunContext) -> Result<Report, LabError> {
        let mut report = Report::default();
        report.note(
            "exact: vibra_baselines::fig4_1 over the key space as a measure (naive = N - 1 contiguous \
             equal ranges handed to the survivors in server order, SPEC section 3), every \
             server equally likely to fail; losses are fractions in the rows",
        );
        let rows: Vec<Fig41Row> = vibra_baselines::fig4_1(SERVERS, REPLICATIONS)?;
        for r in &rows {
            report.row(json!({
                "servers": r.servers,
                "replication": r.replication,
                "naive_avg_loss": r.naive_avg_loss,
                "naive_worst_loss": r.naive_worst_loss,
                "skip_loss": r.skip_loss,
                "optimal_loss": 1.0 / f64::from(r.servers),
            }));
        }
        let at = |n: u32, r: u32| rows.iter().find(|x| x.servers == n && x.replication == r);
        if let Some(q) = at(QUOTED_N, 1) {
            report.compare(Comparison::new(
                "naive worst loss, N = 10, R = 1",
                pct(q.naive_worst_loss),
                "50%",
            ));
            report.compare(Comparison::new(
                "naive average loss, N = 10, R = 1",
                pct(q.naive_avg_loss),
                "37% (36.7%)",
            ));
            report.compare(Comparison::new(
                "failure-skip loss, N = 10",
                pct(q.skip_loss),
                "optimal: 1/N = 10%",
            ));
        }
        let r1: Vec<&Fig41Row> = rows.iter().filter(|r| r.replication == 1).collect();
        let (lo, hi) = r1.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| {
            (lo.min(r.naive_worst_loss), hi.max(r.naive_worst_loss))
        });
        report.compare(Comparison::new(
            "naive worst loss, R = 1, N = 2..32",
            format!("{} to {}", pct(lo), pct(hi)),
            "50% for all cluster sizes",
        ));
        let falling = r1
            .windows(2)
            .all(|w| w[1].naive_avg_loss <= w[0].naive_avg_loss + 1e-12);
        report.compare(Comparison::new(
            "naive average loss, R = 1, as N grows",
            if falling {
                "falls at every step"
            } else {
                "does not fall monotonically"
            },
            "decreases",
        ));
        let by_r: Vec<String> = REPLICATIONS
            .filter_map(|r| at(QUOTED_N, r).map(|x| format!("R={r}: {}", pct(x.naive_avg_loss))))
            .collect();
        report.compare(Comparison::new(
            "naive average loss, N = 10",
            by_r.join(", "),
            "lower for R > 1, still far above 1/N",
        ));
        let skip_exact = rows
            .iter()
            .all(|r| (r.skip_loss - 1.0 / f64::from(r.servers)).abs() < 1e-12);
        report.compare(Comparison::new(
            "failure-skip loss = 1/N for every N, R",
            if skip_exact { "yes" } else { "NO" },
            "yes (optimal)",
        ));

        // Sampled cross-check through the dispatchers themselves.
        let corpus = UrlCorpus::from_option(ctx.urls.as_deref(), ctx.seed);
        let take = ctx.scale(10_000, corpus.urls.len());
        let urls: Vec<&[u8]> = corpus.urls.iter().take(take).map(Vec::as_slice).collect();
        report.note(format!(
            "sampled check: {} URLs of {}, fast hash, N = {QUOTED_N}, every single failure",
            urls.len(),
            corpus.source
        ));
        let mut task = ctx.progress.task(
            self.name(),
            "sampled check",
            2 * REPLICATIONS.count() as u64,
        );
        for r in REPLICATIONS {
            let (naive_avg, naive_worst) = sampled(&urls, QUOTED_N, r, true)?;
            task.advance(1);
            let (skip_avg, _) = sampled(&urls, QUOTED_N, r, false)?;
            task.advance(1);
            if let Some(exact) = at(QUOTED_N, r) {
                report.compare(Comparison::new(
                    format!("sampled vs exact, N = 10, R = {r}: naive avg / worst, skip"),
                    format!(
                        "{} / {}, {}",
                        pct(naive_avg),
                        pct(naive_worst),
                        pct(skip_avg)
                    ),
                    format!(
                        "exact {} / {}, {}",
                        pct(exact.naive_avg_loss),
                        pct(exact.naive_worst_loss),
                        pct(exact.skip_loss)
                    ),
                ));
            }
        }

        let series = |r: u32, f: &dyn Fn(&Fig41Row) -> f64| -> Vec<(f64, f64)> {
            rows.iter()
                .filter(|x| x.replication == r)
                .map(|x| (f64::from(x.servers), 100.0 * f(x)))
                .collect()
        };
        let skip: Vec<(f64, f64)> = series(1, &|x| x.skip_loss);
        let mut avg = Figure::lines(
            "fig4.1",
            "Figure 4.1: average locality loss after one failure",
            "servers N",
            "average locality loss (%)",
        );
        let mut worst = Figure::lines(
            "fig4.1-worst",
            "Figure 4.1 (worst case): locality loss after the worst single failure",
            "servers N",
            "worst-case locality loss (%)",
        );
        for r in REPLICATIONS {
            avg = avg.with_series(Series::new(
                format!("naive, R = {r}"),
                series(r, &|x| x.naive_avg_loss),
            ));
            worst = worst.with_series(Series::new(
                format!("naive, R = {r}"),
                series(r, &|x| x.naive_worst_loss),
            ));
        }
        // Section 4.3.3's text: at N = 10, R = 1, the naive approach loses 37% on average and
        // 50% in the worst case; failure-skip's 1/N = 10% is the optimum.
        report.figure(
            avg.with_series(Series::new("failure-skip (any R) = 1/N", skip.clone()).dashed())
                .with_dissertation(DissertationMark::new(10.0, 37.0, "naive 37%"))
                .with_dissertation(DissertationMark::new(10.0, 10.0, "optimum 1/N")),
        );
        report.figure(
            worst
                .with_series(Series::new("failure-skip (any R) = 1/N", skip).dashed())
                .with_dissertation(DissertationMark::new(10.0, 50.0, "naive worst 50%")),
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dissertations_numbers_at_n10_r1() {
        let report = crate::run_checked(&Fig41, &RunContext::quiet(true)).unwrap();
        let row = report
            .rows
            .iter()
            .find(|r| r["servers"] == 10 && r["replication"] == 1)
            .unwrap();
        assert!((row["naive_worst_loss"].as_f64().unwrap() - 0.5).abs() < 1e-9);
        assert!((row["naive_avg_loss"].as_f64().unwrap() - 0.367).abs() < 5e-4);
        assert!((row["skip_loss"].as_f64().unwrap() - 0.1).abs() < 1e-12);
        // N = 2..32 and R = 1..4, without the three pairs where R > N.
        assert_eq!(report.rows.len(), 31 * 4 - 3);
        assert_eq!(report.figures.len(), 2);
    }
}
