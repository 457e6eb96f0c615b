//! What an experiment hands back: rows (JSON objects), "ours vs dissertation" lines, notes on
//! the set-up, and figures as plain data. Experiments never print, write files or draw: the
//! framework does that, the same way for all of them.

use serde_json::{Map, Value};

/// One result row: a JSON object carrying at least the experiment's SPEC section 10 fields.
///
/// ```
/// let mut row = vibra_lab::Row::new();
/// row.insert("servers".into(), 10.into());
/// assert_eq!(serde_json::Value::Object(row).to_string(), r#"{"servers":10}"#);
/// ```
pub type Row = Map<String, Value>;

/// One "ours vs dissertation" line of the printed report.
///
/// ```
/// use vibra_lab::Comparison;
/// let c = Comparison::new("naive worst loss, N = 10, R = 1", "50.0%", "50%");
/// assert_eq!(c.dissertation, "50%");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// What is compared, e.g. `naive average loss, N = 10, R = 1`.
    pub what: String,
    /// Our figure, formatted.
    pub ours: String,
    /// The dissertation's figure, formatted as it prints it.
    pub dissertation: String,
}

impl Comparison {
    /// Builds a comparison line.
    ///
    /// ```
    /// use vibra_lab::Comparison;
    /// let c = Comparison::new("cost of charsum", "12 ns", "0.28 us");
    /// assert_eq!(c.ours, "12 ns");
    /// ```
    pub fn new(
        what: impl Into<String>,
        ours: impl Into<String>,
        dissertation: impl Into<String>,
    ) -> Self {
        Comparison {
            what: what.into(),
            ours: ours.into(),
            dissertation: dissertation.into(),
        }
    }
}

/// How a figure is drawn.
///
/// ```
/// use vibra_lab::{Figure, FigureKind};
/// assert_eq!(Figure::lines("f", "t", "x", "y").kind, FigureKind::Lines);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum FigureKind {
    /// Each series is a polyline with a marker at every point; x and y are numbers.
    Lines,
    /// Grouped bars: x of every point is a category index into `categories`, one bar per
    /// series in each group.
    Bars {
        /// The category labels, in x order.
        categories: Vec<String>,
    },
}

/// One named data series of a figure.
///
/// ```
/// use vibra_lab::Series;
/// let s = Series::new("skip", vec![(2.0, 50.0), (4.0, 25.0)]);
/// assert_eq!(s.points.len(), 2);
/// assert!(!s.dashed);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend label.
    pub label: String,
    /// The (x, y) points, in drawing order.
    pub points: Vec<(f64, f64)>,
    /// Draw the line dashed (e.g. a reference or optimum curve).
    pub dashed: bool,
}

impl Series {
    /// A solid series.
    ///
    /// ```
    /// use vibra_lab::Series;
    /// assert_eq!(Series::new("a", vec![]).label, "a");
    /// ```
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            label: label.into(),
            points,
            dashed: false,
        }
    }

    /// The same series drawn dashed.
    ///
    /// ```
    /// use vibra_lab::Series;
    /// assert!(Series::new("optimum", vec![(1.0, 1.0)]).dashed().dashed);
    /// ```
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// A figure as data; the framework draws it as `<out>/<file>.svg`.
///
/// ```
/// use vibra_lab::{Figure, FigureKind, Series};
/// let f = Figure::lines("fig4.1-r1", "Locality loss, R = 1", "servers N", "loss (%)")
///     .with_series(Series::new("skip", vec![(2.0, 50.0), (3.0, 33.3)]));
/// assert_eq!(f.kind, FigureKind::Lines);
/// assert_eq!(f.series.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// File stem, unique across all experiments: start it with the experiment's name.
    pub file: String,
    /// The title drawn above the plot.
    pub title: String,
    /// The x-axis label.
    pub x_label: String,
    /// The y-axis label.
    pub y_label: String,
    /// Lines or grouped bars.
    pub kind: FigureKind,
    /// The data.
    pub series: Vec<Series>,
    /// The dissertation's own values where its text gives them, drawn as black marks with
    /// their labels over our data, so a reader sees both at a glance.
    pub dissertation: Vec<DissertationMark>,
}

/// One value the dissertation's text gives for a figure, at a point of its axes (for a bar
/// chart, x is the category's index).
///
/// ```
/// use vibra_lab::DissertationMark;
/// let m = DissertationMark::new(0.1, 38.0, "~38% (text)");
/// assert_eq!((m.x, m.y), (0.1, 38.0));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DissertationMark {
    /// Position on the x axis (category index for bars).
    pub x: f64,
    /// The dissertation's value, in the figure's y unit.
    pub y: f64,
    /// A short label drawn beside the mark (the value as the text words it).
    pub label: String,
}

impl DissertationMark {
    /// A mark at (x, y) labelled `label`.
    ///
    /// ```
    /// assert_eq!(vibra_lab::DissertationMark::new(46.0, 3.1, "3.1 ms").label, "3.1 ms");
    /// ```
    pub fn new(x: f64, y: f64, label: impl Into<String>) -> Self {
        DissertationMark {
            x,
            y,
            label: label.into(),
        }
    }
}

impl Figure {
    /// A line chart with no series yet.
    ///
    /// ```
    /// use vibra_lab::Figure;
    /// assert!(Figure::lines("x", "t", "a", "b").series.is_empty());
    /// ```
    pub fn lines(
        file: impl Into<String>,
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Figure {
            file: file.into(),
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            kind: FigureKind::Lines,
            series: Vec::new(),
            dissertation: Vec::new(),
        }
    }

    /// A grouped bar chart over `categories` with no series yet.
    ///
    /// ```
    /// use vibra_lab::{Figure, FigureKind};
    /// let f = Figure::bars("t31", "shares", "server", "%", vec!["0".into(), "1".into()]);
    /// assert!(matches!(f.kind, FigureKind::Bars { ref categories } if categories.len() == 2));
    /// ```
    pub fn bars(
        file: impl Into<String>,
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
        categories: Vec<String>,
    ) -> Self {
        Figure {
            kind: FigureKind::Bars { categories },
            ..Figure::lines(file, title, x_label, y_label)
        }
    }

    /// Adds a series.
    ///
    /// ```
    /// use vibra_lab::{Figure, Series};
    /// let f = Figure::lines("x", "t", "a", "b").with_series(Series::new("s", vec![(0.0, 1.0)]));
    /// assert_eq!(f.series[0].label, "s");
    /// ```
    pub fn with_series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// Adds a mark of the dissertation's own value.
    ///
    /// ```
    /// use vibra_lab::{DissertationMark, Figure};
    /// let f = Figure::lines("x", "t", "a", "b").with_dissertation(DissertationMark::new(1.0, 2.0, "2"));
    /// assert_eq!(f.dissertation.len(), 1);
    /// ```
    pub fn with_dissertation(mut self, mark: DissertationMark) -> Self {
        self.dissertation.push(mark);
        self
    }
}

/// What one run of an experiment produced.
///
/// ```
/// use serde_json::json;
/// use vibra_lab::{Comparison, Report};
/// let mut r = Report::default();
/// r.row(json!({"servers": 10, "replication": 1}));
/// r.compare(Comparison::new("loss", "36.7%", "37%"));
/// r.note("seed 42");
/// assert_eq!(r.rows.len(), 1);
/// assert_eq!(r.rows[0]["servers"], 10);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The result rows (`--json` prints exactly these).
    pub rows: Vec<Value>,
    /// "Ours vs dissertation" lines, printed beside each other.
    pub comparisons: Vec<Comparison>,
    /// Set-up lines printed before the results: seed, data source, model, caveats.
    pub notes: Vec<String>,
    /// Figures to draw as SVG.
    pub figures: Vec<Figure>,
}

impl Report {
    /// Appends a row; the framework checks after the run that it is an object with every
    /// SPEC section 10 field of the experiment.
    ///
    /// ```
    /// use vibra_lab::Report;
    /// let mut r = Report::default();
    /// r.row(serde_json::json!({"algorithm": "charsum"}));
    /// assert_eq!(r.rows[0]["algorithm"], "charsum");
    /// ```
    pub fn row(&mut self, row: Value) {
        self.rows.push(row);
    }

    /// Appends an "ours vs dissertation" line.
    ///
    /// ```
    /// use vibra_lab::{Comparison, Report};
    /// let mut r = Report::default();
    /// r.compare(Comparison::new("a", "1", "2"));
    /// assert_eq!(r.comparisons.len(), 1);
    /// ```
    pub fn compare(&mut self, comparison: Comparison) {
        self.comparisons.push(comparison);
    }

    /// Appends a set-up note.
    ///
    /// ```
    /// use vibra_lab::Report;
    /// let mut r = Report::default();
    /// r.note("seed 7");
    /// assert_eq!(r.notes, vec!["seed 7".to_string()]);
    /// ```
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Appends a figure.
    ///
    /// ```
    /// use vibra_lab::{Figure, Report};
    /// let mut r = Report::default();
    /// r.figure(Figure::lines("f", "t", "x", "y"));
    /// assert_eq!(r.figures[0].file, "f");
    /// ```
    pub fn figure(&mut self, figure: Figure) {
        self.figures.push(figure);
    }
}
