//! Draws a [`Figure`] as SVG with plotters' SVG backend (no fonts are loaded: the SVG names a
//! `sans-serif` family and the viewer renders the text).

use plotters::prelude::*;

use crate::{Figure, FigureKind, LabError};

const SIZE: (u32, u32) = (820, 520);
/// Extra width per bar-chart category beyond 8, so that labels do not overlap.
const CATEGORY_WIDTH: u32 = 90;

/// Matplotlib's "tab10": distinct, readable on white (plotters' Palette99 starts with a pale
/// yellow among its first five).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Renders a figure to an SVG document.
///
/// ```
/// use vibra_lab::{Figure, Series, render_svg};
/// let fig = Figure::lines("demo", "Demo", "x", "y")
///     .with_series(Series::new("up", vec![(0.0, 0.0), (1.0, 2.0)]));
/// let svg = render_svg(&fig).unwrap();
/// assert!(svg.starts_with("<svg"));
/// assert!(svg.contains("Demo"));
/// ```
pub fn render_svg(figure: &Figure) -> Result<String, LabError> {
    let mut svg = String::new();
    {
        let size = match &figure.kind {
            FigureKind::Bars { categories } if categories.len() > 8 => (
                SIZE.0 + CATEGORY_WIDTH * (categories.len() as u32 - 8),
                SIZE.1,
            ),
            _ => SIZE,
        };
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(figure, &root).map_err(|reason| LabError::Plot {
            figure: figure.file.clone(),
            reason,
        })?;
    }
    Ok(svg)
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn draw(figure: &Figure, root: &Area<'_>) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (x_range, y_range) = ranges(figure)?;
    let mut chart = ChartBuilder::on(root)
        .caption(&figure.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range.clone(), y_range)
        .map_err(|e| err(&e))?;

    let categories = match &figure.kind {
        FigureKind::Bars { categories } => Some(categories.clone()),
        FigureKind::Lines => None,
    };
    let label_of = |v: &f64| match &categories {
        Some(cats) => {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < cats.len() {
                cats[i as usize].clone()
            } else {
                String::new()
            }
        }
        None => format_tick(*v),
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(figure.x_label.as_str())
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 13))
        .y_desc(figure.y_label.as_str())
        .x_label_formatter(&label_of)
        .y_label_formatter(&|v| format_tick(*v));
    if let Some(cats) = &categories {
        mesh.x_labels(cats.len() + 1).disable_x_mesh();
    }
    mesh.draw().map_err(|e| err(&e))?;

    for (i, series) in figure.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()].to_rgba();
        let legend_color = color;
        match &figure.kind {
            FigureKind::Lines => {
                let style = color.stroke_width(2);
                let points = series.points.clone();
                let drawn = if series.dashed {
                    chart.draw_series(DashedLineSeries::new(points, 8, 5, style))
                } else {
                    chart.draw_series(LineSeries::new(points, style))
                }
                .map_err(|e| err(&e))?;
                drawn.label(series.label.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], legend_color.stroke_width(2))
                });
                chart
                    .draw_series(
                        series
                            .points
                            .iter()
                            .map(|&p| Circle::new(p, 3, color.filled())),
                    )
                    .map_err(|e| err(&e))?;
            }
            FigureKind::Bars { .. } => {
                let (offset, width) = bar_slot(figure.series.len(), i);
                chart
                    .draw_series(series.points.iter().map(|&(x, y)| {
                        Rectangle::new(
                            [(x + offset, 0.0), (x + offset + width * 0.92, y)],
                            color.filled(),
                        )
                    }))
                    .map_err(|e| err(&e))?
                    .label(series.label.as_str())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], legend_color.filled())
                    });
            }
        }
    }
    if !figure.dissertation.is_empty() {
        let black = BLACK.stroke_width(2);
        chart
            .draw_series(
                figure
                    .dissertation
                    .iter()
                    .map(|m| Cross::new((m.x, m.y), 7, black)),
            )
            .map_err(|e| err(&e))?
            .label("the dissertation's value")
            .legend(move |(x, y)| Cross::new((x + 10, y), 6, black));
        chart
            .draw_series(figure.dissertation.iter().map(|m| {
                // Labels of marks in the right part of the plot go to their left, so they stay
                // inside the picture (about 7 px per character at this size).
                let right = (m.x - x_range.start) > 0.6 * (x_range.end - x_range.start);
                let dx = if right {
                    -(m.label.chars().count() as i32 * 7 + 6)
                } else {
                    9
                };
                EmptyElement::at((m.x, m.y))
                    + Text::new(m.label.clone(), (dx, -16), ("sans-serif", 13).into_font())
            }))
            .map_err(|e| err(&e))?;
    }
    if figure.series.iter().any(|s| !s.label.is_empty()) || !figure.dissertation.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Where series `i` of `groups` draws its bar within a category: (offset from the category's
/// centre, width).
fn bar_slot(groups: usize, i: usize) -> (f64, f64) {
    let width = 0.8 / groups.max(1) as f64;
    (-0.4 + width * i as f64, width)
}

/// The x coordinate of the centre of series `series`'s bar in category `category` of a bar
/// chart with `groups` series (to place a [`crate::DissertationMark`] on a bar).
///
/// ```
/// assert_eq!(vibra_lab::bar_centre(1, 0, 2), 2.0 - 0.4 + 0.8 * 0.46);
/// ```
pub fn bar_centre(groups: usize, series: usize, category: usize) -> f64 {
    let (offset, width) = bar_slot(groups, series);
    category as f64 + offset + width * 0.46
}

type Ranges = (std::ops::Range<f64>, std::ops::Range<f64>);

fn ranges(figure: &Figure) -> Result<Ranges, String> {
    let marks: Vec<(f64, f64)> = figure.dissertation.iter().map(|m| (m.x, m.y)).collect();
    let points = figure
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .chain(marks.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, 0.0f64, f64::MIN);
    let mut any = false;
    for &(x, y) in points {
        if !x.is_finite() || !y.is_finite() {
            return Err(format!("non-finite point ({x}, {y})"));
        }
        any = true;
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !any {
        return Err("no data points".to_string());
    }
    if let FigureKind::Bars { categories } = &figure.kind {
        x0 = -0.5;
        x1 = categories.len().max(1) as f64 - 0.5;
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    // Head room for the legend box (about 18 px per series in a ~420 px plot), so that it
    // never covers the data.
    let entries = figure.series.len() + usize::from(!figure.dissertation.is_empty());
    let legend = ((entries as f64 * 18.0 + 30.0) / 420.0).min(0.6);
    let top = y1 + (y1 - y0) * legend / (1.0 - legend);
    Ok((x0..x1, y0..top))
}

fn format_tick(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e9 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Series;

    #[test]
    fn bars_draw_one_rectangle_per_point_and_name_categories() {
        let fig = Figure::bars(
            "b",
            "Bars",
            "server",
            "%",
            vec!["cat-alpha".into(), "cat-beta".into()],
        )
        .with_series(Series::new("md5", vec![(0.0, 40.0), (1.0, 60.0)]))
        .with_series(Series::new("sha1", vec![(0.0, 55.0), (1.0, 45.0)]));
        let svg = render_svg(&fig).unwrap();
        assert!(
            svg.contains("cat-alpha") && svg.contains("cat-beta"),
            "{svg}"
        );
        // The same figure with one point less per series has two rectangles less.
        let mut fewer = fig.clone();
        for s in &mut fewer.series {
            s.points.pop();
        }
        let rects = |svg: &str| svg.matches("<rect").count();
        assert_eq!(rects(&svg), rects(&render_svg(&fewer).unwrap()) + 2);
        assert!(svg.contains("md5") && svg.contains("sha1"));
    }

    #[test]
    fn dissertation_marks_are_drawn_labelled_and_inside_the_plot() {
        let fig = Figure::lines("d", "D", "share", "gain (%)")
            .with_series(Series::new("ours", vec![(0.1, 26.0), (0.5, 0.0)]))
            .with_dissertation(crate::DissertationMark::new(0.1, 38.0, "~38% (text)"));
        let svg = render_svg(&fig).unwrap();
        assert!(svg.contains("~38% (text)"), "{svg}");
        assert!(
            svg.contains("the dissertation&apos;s value")
                || svg.contains("the dissertation's value")
        );
        // The mark lies above every data point, so the y axis must stretch to it: the same
        // figure without the mark has a lower top tick.
        let mut plain = fig.clone();
        plain.dissertation.clear();
        assert_ne!(ranges(&fig).unwrap().1, ranges(&plain).unwrap().1);
        assert!(ranges(&fig).unwrap().1.end > 38.0);
    }

    #[test]
    fn empty_or_non_finite_figures_are_typed_errors() {
        let empty = Figure::lines("e", "E", "x", "y");
        assert!(matches!(render_svg(&empty), Err(LabError::Plot { .. })));
        let nan = Figure::lines("n", "N", "x", "y")
            .with_series(Series::new("bad", vec![(0.0, f64::NAN)]));
        assert!(matches!(render_svg(&nan), Err(LabError::Plot { .. })));
    }
}
