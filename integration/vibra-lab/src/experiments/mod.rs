//! The experiment registry. Adding an experiment is one new module in this folder plus one
//! `mod` line and one registry line below (see the crate README, "Adding an experiment").
//!
//! The framework, not the experiment, checks every row against the SPEC section 10 fields,
//! prints the report, writes `--json`, and draws the figures.

use crate::{LabError, Report, RunContext};

mod fig3_10;
mod fig3_7;
mod fig3_8;
mod fig3_9;
mod fig4_1;
mod fig4_3;
mod fig4_4;
mod fig5;
mod fig5_live;
mod fig6_5;
mod fig6_5_xen;
mod replay_schedule;
mod table3_1;
mod table3_2;
mod web;

/// One reproducible result of the dissertation.
///
/// Implement it on a unit struct in `src/experiments/<name>.rs`, then add the struct to
/// [`EXPERIMENTS`].
///
/// ```
/// use serde_json::json;
/// use vibra_lab::{Comparison, Experiment, LabError, Report, RunContext};
///
/// struct Doubling;
/// impl Experiment for Doubling {
///     fn name(&self) -> &'static str { "demo" }
///     fn title(&self) -> &'static str { "doubling" }
///     fn dissertation(&self) -> &'static str { "2 x 2 = 4" }
///     fn row_fields(&self) -> &'static [&'static str] { &["x", "twice"] }
///     fn run(&self, ctx: &RunContext) -> Result<Report, LabError> {
///         let mut report = Report::default();
///         for x in 0..ctx.scale(3, 10) {
///             report.row(json!({"x": x, "twice": 2 * x}));
///         }
///         report.compare(Comparison::new("2 x 2", "4", "4"));
///         Ok(report)
///     }
/// }
///
/// let report = vibra_lab::run_checked(&Doubling, &RunContext::quiet(true)).unwrap();
/// assert_eq!(report.rows.len(), 3);
/// ```
pub trait Experiment: Sync {
    /// The SPEC section 10 name, e.g. `fig4.1`: what `reproduce NAME` takes.
    fn name(&self) -> &'static str;
    /// A one-line title for the printed report.
    fn title(&self) -> &'static str;
    /// The dissertation's result in words, with its numbers and the section it comes from.
    fn dissertation(&self) -> &'static str;
    /// The row fields SPEC section 10 requires of this experiment; every row must carry them.
    fn row_fields(&self) -> &'static [&'static str];
    /// Runs the experiment. Must honour `ctx.quick` (under a minute on 2 cores), take every
    /// random choice from `ctx.seed`, report long loops through `ctx.progress`, and never
    /// print to standard output.
    fn run(&self, ctx: &RunContext) -> Result<Report, LabError>;
    /// Whether it runs on the real testbed (root, namespaces, cgroups, nginx): such an
    /// experiment skips with its reason where it cannot run, and `reproduce --no-testbed`
    /// skips it. False unless overridden.
    ///
    /// ```
    /// assert!(!vibra_lab::find("table3.1").unwrap().real_components());
    /// assert!(vibra_lab::find("fig3.8").unwrap().real_components());
    /// ```
    fn real_components(&self) -> bool {
        false
    }
}

/// Every registered experiment, in the order `reproduce` runs them.
///
/// ```
/// let names: Vec<&str> = vibra_lab::EXPERIMENTS.iter().map(|e| e.name()).collect();
/// assert!(names.contains(&"fig4.1") && names.contains(&"table3.1") && names.contains(&"table3.2"));
/// ```
pub static EXPERIMENTS: &[&dyn Experiment] = &[
    &fig4_1::Fig41,
    &table3_1::Table31,
    &table3_2::Table32,
    &fig3_7::Fig37,
    &fig3_8::Fig38,
    &fig3_9::Fig39,
    &fig3_10::Fig310,
    &fig4_3::Fig43,
    &fig4_4::Fig44,
    &fig5::Fig57,
    &fig5::Fig58,
    &fig5::Fig59,
    &fig5::Fig510,
    &fig5_live::Fig57Live,
    &fig5_live::Fig58Live,
    &fig6_5::Fig65,
    &fig6_5_xen::Fig65Xen,
];

/// Looks an experiment up by its SPEC section 10 name.
///
/// ```
/// assert_eq!(vibra_lab::find("table3.1").unwrap().name(), "table3.1");
/// assert!(vibra_lab::find("fig0.0").is_err());
/// ```
pub fn find(name: &str) -> Result<&'static dyn Experiment, LabError> {
    EXPERIMENTS
        .iter()
        .copied()
        .find(|e| e.name() == name)
        .ok_or_else(|| LabError::UnknownExperiment(name.to_string()))
}

/// Runs an experiment and checks its rows: at least one, each a JSON object carrying every
/// field of [`Experiment::row_fields`].
///
/// ```
/// let table = vibra_lab::find("table3.1").unwrap();
/// let report = vibra_lab::run_checked(table, &vibra_lab::RunContext::quiet(true)).unwrap();
/// assert!(report.rows.iter().all(|r| r.get("distinct_objects").is_some()));
/// ```
pub fn run_checked(experiment: &dyn Experiment, ctx: &RunContext) -> Result<Report, LabError> {
    let report = experiment.run(ctx)?;
    if report.rows.is_empty() {
        return Err(LabError::NoRows(experiment.name()));
    }
    for (index, row) in report.rows.iter().enumerate() {
        let object = row.as_object().ok_or(LabError::RowNotObject {
            experiment: experiment.name(),
            index,
        })?;
        if let Some(field) = experiment
            .row_fields()
            .iter()
            .find(|f| !object.contains_key(**f))
        {
            return Err(LabError::MissingField {
                experiment: experiment.name(),
                index,
                field,
            });
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn registry_names_are_unique_and_figure_files_carry_them() {
        let mut seen = HashSet::new();
        for e in EXPERIMENTS {
            assert!(seen.insert(e.name()), "duplicate experiment {}", e.name());
            assert!(
                !e.row_fields().is_empty(),
                "{} declares no row fields",
                e.name()
            );
            assert!(!e.dissertation().is_empty());
        }
    }

    #[test]
    fn unknown_experiment_is_a_typed_error() {
        assert!(matches!(find("nope"), Err(LabError::UnknownExperiment(n)) if n == "nope"));
    }

    struct Broken(serde_json::Value);
    impl Experiment for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn title(&self) -> &'static str {
            "broken"
        }
        fn dissertation(&self) -> &'static str {
            "none"
        }
        fn row_fields(&self) -> &'static [&'static str] {
            &["a", "b"]
        }
        fn run(&self, _: &RunContext) -> Result<Report, LabError> {
            let mut r = Report::default();
            r.row(self.0.clone());
            Ok(r)
        }
    }

    #[test]
    fn rows_missing_a_spec_field_are_rejected() {
        let ctx = RunContext::quiet(true);
        let missing = run_checked(&Broken(serde_json::json!({"a": 1})), &ctx);
        assert!(matches!(
            missing,
            Err(LabError::MissingField { field: "b", .. })
        ));
        let not_object = run_checked(&Broken(serde_json::json!([1, 2])), &ctx);
        assert!(matches!(not_object, Err(LabError::RowNotObject { .. })));
        let ok = run_checked(&Broken(serde_json::json!({"a": 1, "b": 2})), &ctx);
        assert!(ok.is_ok());
    }
}
