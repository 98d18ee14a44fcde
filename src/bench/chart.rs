//! Charts for the bench reports, drawn with plotters' SVG backend.

use plotters::prelude::*;

/// Two series over the same x axis (e.g. blocks), the first on the left y axis, the second on
/// the right. Returns the SVG text; an empty series draws an empty axis.
pub(super) fn render_series_svg(
    title: &str,
    left: &[(f64, f64)],
    left_label: &str,
    right: &[(f64, f64)],
    right_label: &str,
) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 480)).into_drawing_area();
        // Drawing into a String cannot fail for lack of a file; a failed draw leaves a
        // partial chart, which is still better than none in a report.
        let _ = draw(&root, title, left, left_label, right, right_label);
        let _ = root.present();
    }
    svg
}

fn bounds(points: &[(f64, f64)]) -> (f64, f64, f64, f64) {
    let finite = points.iter().filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for (x, y) in finite {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y1 = y1.max(*y);
    }
    if x0 > x1 { (0.0, 1.0, 0.0, 1.0) } else { (x0, x1.max(x0 + 1.0), 0.0, (y1 * 1.1).max(1e-9)) }
}

fn draw<'a>(
    root: &'a DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    left: &[(f64, f64)],
    left_label: &str,
    right: &[(f64, f64)],
    right_label: &str,
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    root.fill(&WHITE)?;
    let (lx0, lx1, ly0, ly1) = bounds(left);
    let (rx0, rx1, ry0, ry1) = bounds(right);
    let (x0, x1) = (lx0.min(rx0), lx1.max(rx1));
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .right_y_label_area_size(64)
        .build_cartesian_2d(x0..x1, ly0..ly1)?
        .set_secondary_coord(x0..x1, ry0..ry1);
    chart.configure_mesh().x_desc("block").y_desc(left_label).draw()?;
    chart.configure_secondary_axes().y_desc(right_label).draw()?;
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    chart
        .draw_series(LineSeries::new(left.iter().copied(), blue.stroke_width(2)))?
        .label(left_label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], blue.stroke_width(2)));
    chart
        .draw_secondary_series(LineSeries::new(right.iter().copied(), orange.stroke_width(1)))?
        .label(right_label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], orange.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    Ok(())
}
