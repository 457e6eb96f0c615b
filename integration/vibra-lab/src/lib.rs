//! The library behind the `vibra-lab` command: `map` (SPEC section 9) and `reproduce`
//! (SPEC section 10).
//!
//! Experiments live in `src/experiments/`, one module each, and are listed in
//! [`EXPERIMENTS`]. An experiment returns a [`Report`] (rows as JSON objects, "ours vs
//! dissertation" lines, set-up notes, figures as data); the framework checks the rows against
//! the experiment's SPEC fields ([`run_checked`]), prints the report ([`render_text`]) or the
//! `--json` line ([`json_line`]), and draws every figure as SVG ([`write_outputs`]).
//!
//! ```
//! let table = vibra_lab::find("table3.1").unwrap();
//! let report = vibra_lab::run_checked(table, &vibra_lab::RunContext::quiet(true)).unwrap();
//! let line = vibra_lab::json_line(table.name(), &report);
//! assert!(line.starts_with(r#"{"experiment":"table3.1","rows":[{"#));
//! ```

#![forbid(unsafe_code)]

mod context;
mod error;
mod experiments;
pub mod live;
mod map;
mod output;
mod plot;
mod report;
mod rss;
pub mod testbed;
pub mod workload;

pub use context::{AgentChoice, DEFAULT_SEED, Progress, RunContext, Task};
pub use error::LabError;
pub use experiments::{EXPERIMENTS, Experiment, find, run_checked};
pub use map::{MapConfig, run_map};
pub use output::{TEXT_ROW_LIMIT, json_line, render_text, write_outputs};
pub use plot::{bar_centre, render_svg};
pub use report::{Comparison, DissertationMark, Figure, FigureKind, Report, Row, Series};
pub use rss::{anonymous_resident_bytes, exclude_huge_pages};
