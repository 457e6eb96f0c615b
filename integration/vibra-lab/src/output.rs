//! Turns a checked [`Report`] into what users see: the printed text report, the `--json`
//! line, and the files under `--out` (one `<name>.json` with everything, one SVG per figure).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{Experiment, LabError, Report, render_svg};

/// How many rows the text report prints before pointing at `--json` and the JSON file.
///
/// ```
/// assert!(vibra_lab::TEXT_ROW_LIMIT >= 20); // table 3.1's 20 rows print whole
/// ```
pub const TEXT_ROW_LIMIT: usize = 24;

/// The SPEC section 10 `--json` object: `{"experiment": name, "rows": [...]}`, on one line.
///
/// ```
/// use vibra_lab::{Report, json_line};
/// let mut r = Report::default();
/// r.row(serde_json::json!({"a": 1}));
/// assert_eq!(json_line("fig4.1", &r), r#"{"experiment":"fig4.1","rows":[{"a":1}]}"#);
/// ```
pub fn json_line(name: &str, report: &Report) -> String {
    json!({"experiment": name, "rows": report.rows}).to_string()
}

/// Writes `<out>/<name>.json` (rows, comparisons, notes) and one `<out>/<file>.svg` per
/// figure; returns the SVG paths.
///
/// ```
/// use vibra_lab::{Figure, Report, Series, write_outputs};
/// let dir = std::env::temp_dir().join(format!("vibra-lab-doc-{}", std::process::id()));
/// let mut r = Report::default();
/// r.row(serde_json::json!({"x": 1}));
/// r.figure(Figure::lines("doc-fig", "t", "x", "y").with_series(Series::new("s", vec![(0.0, 1.0)])));
/// let svgs = write_outputs(vibra_lab::EXPERIMENTS[0], &r, &dir).unwrap();
/// assert!(svgs[0].ends_with("doc-fig.svg") && svgs[0].exists());
/// assert!(dir.join(format!("{}.json", vibra_lab::EXPERIMENTS[0].name())).exists());
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_outputs(
    experiment: &dyn Experiment,
    report: &Report,
    out: &Path,
) -> Result<Vec<PathBuf>, LabError> {
    std::fs::create_dir_all(out).map_err(|e| LabError::io(out, e))?;
    let full = json!({
        "experiment": experiment.name(),
        "title": experiment.title(),
        "dissertation": experiment.dissertation(),
        "notes": report.notes,
        "comparisons": report.comparisons.iter().map(|c| json!({
            "what": c.what, "ours": c.ours, "dissertation": c.dissertation,
        })).collect::<Vec<_>>(),
        "rows": report.rows,
    });
    let json_path = out.join(format!("{}.json", experiment.name()));
    let text = serde_json::to_string_pretty(&full).map_err(|e| LabError::Stream(e.into()))?;
    std::fs::write(&json_path, text + "\n").map_err(|e| LabError::io(&json_path, e))?;
    let mut svgs = Vec::with_capacity(report.figures.len());
    for figure in &report.figures {
        let svg = render_svg(figure)?;
        let path = out.join(format!("{}.svg", figure.file));
        std::fs::write(&path, svg).map_err(|e| LabError::io(&path, e))?;
        svgs.push(path);
    }
    Ok(svgs)
}

/// The printed report of one experiment: title, the dissertation's result, set-up notes, the
/// rows as a table of the SPEC columns (at most [`TEXT_ROW_LIMIT`] rows), "ours vs
/// dissertation", and the figures.
///
/// ```
/// use vibra_lab::{Comparison, Report, render_text};
/// let mut r = Report::default();
/// r.row(serde_json::json!({"servers": 10, "skip_loss": 0.1}));
/// r.compare(Comparison::new("skip loss, N = 10", "10.0%", "10%"));
/// let text = render_text(vibra_lab::EXPERIMENTS[0], &r, &[]);
/// assert!(text.contains("skip loss, N = 10") && text.contains("10.0%"));
/// ```
pub fn render_text(experiment: &dyn Experiment, report: &Report, svgs: &[PathBuf]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "== {}: {} ==", experiment.name(), experiment.title());
    let _ = writeln!(s, "dissertation: {}", experiment.dissertation());
    for note in &report.notes {
        let _ = writeln!(s, "set-up: {note}");
    }
    s.push_str(&table(&report.rows, experiment.row_fields()));
    if !report.comparisons.is_empty() {
        let what_w = width(report.comparisons.iter().map(|c| c.what.as_str()), 4);
        let ours_w = width(report.comparisons.iter().map(|c| c.ours.as_str()), 4);
        let _ = writeln!(s, "ours vs dissertation:");
        let _ = writeln!(s, "  {:what_w$}  {:>ours_w$}  dissertation", "what", "ours");
        for c in &report.comparisons {
            let _ = writeln!(
                s,
                "  {:what_w$}  {:>ours_w$}  {}",
                c.what, c.ours, c.dissertation
            );
        }
    }
    for svg in svgs {
        let _ = writeln!(s, "figure: {}", svg.display());
    }
    s
}

fn width<'a>(items: impl Iterator<Item = &'a str>, min: usize) -> usize {
    items.map(|i| i.chars().count()).max().unwrap_or(0).max(min)
}

/// The rows as a text table of the SPEC columns (the JSON outputs carry every field).
fn table(rows: &[Value], columns: &[&str]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let shown = rows.len().min(TEXT_ROW_LIMIT);
    let cells: Vec<Vec<String>> = rows[..shown]
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| row.get(*c).map(cell).unwrap_or_default())
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| width(cells.iter().map(|r| r[i].as_str()), c.chars().count()))
        .collect();
    let mut s = String::new();
    let line = |s: &mut String, items: &[&str]| {
        s.push(' ');
        for (item, w) in items.iter().zip(&widths) {
            let _ = write!(s, " {item:>w$}");
        }
        s.push('\n');
    };
    line(&mut s, columns);
    for row in &cells {
        let items: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&mut s, &items);
    }
    if rows.len() > shown {
        let _ = writeln!(
            s,
            "  ... {} more rows: see --json or the JSON file",
            rows.len() - shown
        );
    }
    s
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.abs() >= 1000.0 => format!("{f:.0}"),
            (None, Some(f)) if f.abs() >= 1.0 => format!("{f:.2}"),
            (None, Some(f)) => format!("{f:.4}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tables_are_cut_with_a_pointer_to_json() {
        let rows: Vec<Value> = (0..TEXT_ROW_LIMIT + 3).map(|i| json!({"i": i})).collect();
        let t = table(&rows, &["i"]);
        assert!(t.contains("... 3 more rows"), "{t}");
        assert_eq!(t.lines().count(), TEXT_ROW_LIMIT + 2);
    }

    #[test]
    fn cells_format_numbers_by_magnitude() {
        assert_eq!(cell(&json!(0.366_6)), "0.3666");
        assert_eq!(cell(&json!(12.345)), "12.35");
        assert_eq!(cell(&json!(12345.6)), "12346");
        assert_eq!(cell(&json!(7)), "7");
        assert_eq!(cell(&json!("md5")), "md5");
    }
}
