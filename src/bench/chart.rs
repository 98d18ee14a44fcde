//! Charts for the bench reports, drawn with plotters' SVG backend: latency CDFs (bench.svg)
//! and two series over blocks (soak.svg).

use plotters::{
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::stats::percentile_sorted;

/// One latency distribution to draw.
#[derive(Debug, Clone)]
pub(super) struct CdfSeries {
    /// Which panel it belongs to (a pipeline stage or a tx class, e.g. "simulate: attack").
    pub(super) panel: String,
    /// Its name in the legend, e.g. "preempt simulate+detect", "peer: debug_traceCall ws".
    pub(super) label: String,
    /// Samples in microseconds (any order; non-finite or negative values ignored).
    pub(super) samples_us: Vec<f64>,
}

/// Line colors (Tableau 10), given to labels in order of first appearance, reused beyond ten.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
];

/// At most this many quantile steps per line (two points per step).
const MAX_STEPS: usize = 200;

const WIDTH: u32 = 1000;
const MARGIN: i32 = 20;
const COL_GAP: i32 = 30;
const ROW_GAP: i32 = 26;
/// The plot with its axis labels below and beside it.
const CHART_HEIGHT: i32 = 280;
const ANNOT_LINE: i32 = 15;
const LEGEND_TOP: i32 = 70;
const LEGEND_ROW: i32 = 22;

const GRID: RGBColor = RGBColor(0xd8, 0xd8, 0xd8);
const INK: RGBColor = RGBColor(0x11, 0x11, 0x11);
const MUTED: RGBColor = RGBColor(0x55, 0x55, 0x55);

/// A series ready to draw: sorted, finite, non-negative samples and its color.
struct Prepared<'a> {
    label: &'a str,
    color: RGBColor,
    sorted: Vec<f64>,
}

struct Panel<'a> {
    name: &'a str,
    series: Vec<Prepared<'a>>,
}

/// Latency CDFs: a title and subtitle, one shared legend (a color per label, the same in every
/// panel), then a two-column grid of panels in order of first appearance. Each panel plots the
/// fraction of samples `<= x` against latency on a log10 axis (decade ticks, minor grid, a
/// dashed line at 0.99), one step line per series, and lists each series' p50 and p99 (nearest
/// rank) in its color above the plot, so the text never covers a line. The same input gives
/// the same bytes, so the checked-in charts change only when the numbers do.
pub(super) fn render_cdf_svg(title: &str, subtitle: &str, series: &[CdfSeries]) -> String {
    let mut labels: Vec<(&str, RGBColor)> = Vec::new();
    for s in series {
        if !labels.iter().any(|(l, _)| *l == s.label) {
            labels.push((&s.label, PALETTE[labels.len() % PALETTE.len()]));
        }
    }
    let color_of =
        |label: &str| labels.iter().find(|(l, _)| *l == label).map_or(PALETTE[0], |(_, c)| *c);
    let mut panels: Vec<Panel<'_>> = Vec::new();
    for s in series {
        let mut sorted: Vec<f64> =
            s.samples_us.iter().copied().filter(|v| v.is_finite() && *v >= 0.0).collect();
        sorted.sort_by(f64::total_cmp);
        let prepared = Prepared { label: &s.label, color: color_of(&s.label), sorted };
        match panels.iter_mut().find(|p| p.name == s.panel) {
            Some(p) => p.series.push(prepared),
            None => panels.push(Panel { name: &s.panel, series: vec![prepared] }),
        }
    }

    let legend = legend_layout(&labels);
    let legend_bottom = legend.last().map_or(LEGEND_TOP, |(_, _, y)| *y + LEGEND_ROW);
    let annot_lines = panels
        .iter()
        .map(|p| p.series.iter().filter(|s| !s.sorted.is_empty()).count())
        .max()
        .unwrap_or(0);
    let plot_offset = 26 + ANNOT_LINE * i32::try_from(annot_lines).unwrap_or(0) + 6;
    let panel_h = plot_offset + CHART_HEIGHT;
    let panels_top = legend_bottom + 8;
    let rows = i32::try_from(panels.len().div_ceil(2)).unwrap_or(0);
    let height =
        (panels_top + rows * (panel_h + ROW_GAP) - ROW_GAP + MARGIN).max(panels_top + MARGIN);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, u32::try_from(height).unwrap_or(0)))
            .into_drawing_area();
        // Drawing into a String cannot fail for lack of a file; a failed draw leaves a
        // partial chart, which is still better than none in a report.
        let _ = draw_cdfs(&root, title, subtitle, &legend, &panels, panels_top, plot_offset);
        let _ = root.present();
    }
    svg
}

/// Where each legend entry goes: `(label, color, baseline y)` and its x, wrapped to the width.
fn legend_layout<'a>(labels: &[(&'a str, RGBColor)]) -> Vec<((&'a str, i32), RGBColor, i32)> {
    let (mut x, mut y) = (MARGIN, LEGEND_TOP);
    let right = i32::try_from(WIDTH).unwrap_or(i32::MAX) - MARGIN;
    let mut out = Vec::with_capacity(labels.len());
    for (label, color) in labels {
        let item_w = 28 + text_width(label, 12) + 14;
        if x > MARGIN && x + item_w > right {
            x = MARGIN;
            y += LEGEND_ROW;
        }
        out.push(((*label, x), *color, y));
        x += item_w;
    }
    out
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult<'a> =
    Result<(), DrawingAreaErrorKind<<SVGBackend<'a> as DrawingBackend>::ErrorType>>;

fn draw_cdfs<'a>(
    root: &Area<'a>,
    title: &str,
    subtitle: &str,
    legend: &[((&str, i32), RGBColor, i32)],
    panels: &[Panel<'_>],
    panels_top: i32,
    plot_offset: i32,
) -> DrawResult<'a> {
    root.fill(&WHITE)?;
    let bold = |size: i32, color: RGBColor| font(size).style(FontStyle::Bold).color(&color);
    root.draw(&Text::new(title.to_string(), (MARGIN, 14), bold(20, INK)))?;
    root.draw(&Text::new(subtitle.to_string(), (MARGIN, 42), font(12).color(&MUTED)))?;
    for ((label, x), color, y) in legend {
        root.draw(&PathElement::new([(x + 2, y + 6), (x + 22, y + 6)], color.stroke_width(3)))?;
        root.draw(&Text::new(label.to_string(), (x + 28, *y), font(12).color(&INK)))?;
    }
    let col_w = (i32::try_from(WIDTH).unwrap_or(0) - 2 * MARGIN - COL_GAP) / 2;
    let panel_h = plot_offset + CHART_HEIGHT;
    for (i, panel) in panels.iter().enumerate() {
        let i = i32::try_from(i).unwrap_or(0);
        let (px, py) =
            (MARGIN + (i % 2) * (col_w + COL_GAP), panels_top + (i / 2) * (panel_h + ROW_GAP));
        let area = root.clone().shrink((px, py), (col_w as u32, panel_h as u32));
        draw_panel(&area, panel, col_w, plot_offset)?;
    }
    Ok(())
}

fn draw_panel<'a>(
    area: &Area<'a>,
    panel: &Panel<'_>,
    col_w: i32,
    plot_offset: i32,
) -> DrawResult<'a> {
    let bold = font(14).style(FontStyle::Bold).color(&INK);
    area.draw(&Text::new(truncate(panel.name, col_w, 14), (0, 4), bold))?;
    let mut y = 26;
    for s in panel.series.iter().filter(|s| !s.sorted.is_empty()) {
        let (Some(p50), Some(p99)) =
            (percentile_sorted(&s.sorted, 0.5), percentile_sorted(&s.sorted, 0.99))
        else {
            continue;
        };
        let text = format!("{} p50 {} µs · p99 {} µs", s.label, fmt_latency(p50), fmt_latency(p99));
        let style = font(11).color(&s.color);
        area.draw(&Text::new(truncate(&text, col_w - 4, 11), (4, y), style))?;
        y += ANNOT_LINE;
    }

    let (lo, hi) = decade_range(panel);
    let (x_min, x_max) = (10f64.powi(lo), 10f64.powi(hi));
    let decades: Vec<f64> = (lo..=hi).map(|e| 10f64.powi(e)).collect();
    let minors: Vec<f64> =
        (lo..hi).flat_map(|e| (2..=9).map(move |m| f64::from(m) * 10f64.powi(e))).collect();
    // Thin out the labels on very wide ranges.
    let label_step = (hi - lo + 9) / 10;
    let chart_area = area.clone().shrink((0, plot_offset), (col_w as u32, CHART_HEIGHT as u32));
    let mut chart = ChartBuilder::on(&chart_area)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .margin_right(12)
        .margin_top(2)
        .build_cartesian_2d(
            (x_min..x_max).log_scale().with_key_points(decades).with_light_points(minors),
            0f64..1f64,
        )?;
    let label_font = font(11).color(&RGBColor(0x44, 0x44, 0x44));
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
        .axis_style(RGBColor(0x99, 0x99, 0x99))
        .label_style(label_font.clone())
        .axis_desc_style(label_font.clone())
        .x_desc("latency (µs, log scale)")
        .y_desc("fraction ≤ x")
        .x_label_formatter(&|v| {
            let e = floor_log10(*v);
            if (e - lo) % label_step.max(1) == 0 { decade_label(e) } else { String::new() }
        })
        .y_labels(0)
        .disable_y_mesh()
        .draw()?;
    // The y ticks are the fractions that matter (plotters picks evenly spaced ones): grid
    // lines, a dashed one at 0.99, and labels beside the axis.
    let base = chart_area.get_base_pixel();
    for f in Y_TICKS {
        if f == 0.99 {
            let guide = RGBColor(0x88, 0x88, 0x88).into();
            chart.draw_series(DashedLineSeries::new([(x_min, f), (x_max, f)], 5, 3, guide))?;
        } else if f > 0.0 {
            chart.draw_series(LineSeries::new([(x_min, f), (x_max, f)], GRID))?;
        }
        let (x, y) = chart.backend_coord(&(x_min, f));
        // "0.99" nudged down a little, off the frame's top edge.
        let dy = if f == 0.99 { 1 } else { -1 };
        let style = label_font.clone().pos(Pos::new(HPos::Right, VPos::Center));
        chart_area.draw(&Text::new(format!("{f}"), (x - base.0 - 6, y - base.1 + dy), style))?;
    }
    // The frame's top and right edges.
    let frame = RGBColor(0x99, 0x99, 0x99);
    chart.draw_series(LineSeries::new([(x_min, 1.0), (x_max, 1.0), (x_max, 0.0)], frame))?;
    for s in panel.series.iter().filter(|s| !s.sorted.is_empty()) {
        let points = cdf_points(&s.sorted, x_min);
        chart.draw_series(LineSeries::new(points, s.color.stroke_width(2)))?;
    }
    Ok(())
}

/// Y ticks (fraction of samples); 0.99 also gets the dashed guide.
const Y_TICKS: [f64; 4] = [0.0, 0.5, 0.9, 0.99];

/// Step-CDF vertices, downsampled evenly over quantiles: at `q_k = k/m` the line rises to `q_k`
/// at `percentile(q_k)`. With `m` = sample count this is the exact empirical CDF; one sample is
/// one vertical step. Zero latencies sit on the axis's left edge.
fn cdf_points(sorted: &[f64], x_min: f64) -> Vec<(f64, f64)> {
    let m = sorted.len().min(MAX_STEPS);
    let mut points: Vec<(f64, f64)> = Vec::with_capacity(2 * m);
    for k in 1..=m {
        let (q_prev, q) = ((k - 1) as f64 / m as f64, k as f64 / m as f64);
        let Some(x) = percentile_sorted(sorted, q) else { continue };
        let x = x.max(x_min);
        for p in [(x, q_prev), (x, q)] {
            // Drop the middle of three points on one vertical or horizontal line.
            if let [.., a, b] = points[..]
                && ((a.0 == b.0 && b.0 == p.0) || (a.1 == b.1 && b.1 == p.1))
            {
                points.pop();
            }
            if points.last() != Some(&p) {
                points.push(p);
            }
        }
    }
    points
}

/// Whole-decade x range `[10^lo, 10^hi]` covering the panel's positive samples.
fn decade_range(panel: &Panel<'_>) -> (i32, i32) {
    let positive = panel.series.iter().flat_map(|s| s.sorted.iter().copied()).filter(|v| *v > 0.0);
    let (min, max) =
        positive.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !min.is_finite() {
        return (0, 1);
    }
    let lo = floor_log10(min);
    let mut hi = floor_log10(max);
    if 10f64.powi(hi) < max {
        hi += 1;
    }
    (lo, hi.max(lo + 1))
}

/// `floor(log10(v))` for `v > 0`, exact at powers of ten.
fn floor_log10(v: f64) -> i32 {
    let mut e = v.log10().floor() as i32;
    if 10f64.powi(e) > v {
        e -= 1;
    } else if 10f64.powi(e + 1) <= v {
        e += 1;
    }
    e
}

/// Tick label for `10^e`: 0.01, 0.1, 1, 10, 100, 1k … 100k, 1M …
fn decade_label(e: i32) -> String {
    if e < 0 {
        return format!("{}", 10f64.powi(e));
    }
    let suffixes = ["", "k", "M", "G", "T"];
    let group = usize::try_from(e / 3).unwrap_or(0).min(suffixes.len() - 1);
    let rest = e - 3 * i32::try_from(group).unwrap_or(0);
    format!("{}{}", 10u64.pow(rest.unsigned_abs()), suffixes[group])
}

/// Latency in µs for annotations: two decimals below 1, one below 10, whole numbers above.
fn fmt_latency(v: f64) -> String {
    let s = if v < 1.0 {
        format!("{v:.2}")
    } else if v < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    };
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

/// A sans-serif font of `size` px as written to the SVG (plotters' SVG backend writes a
/// font's size divided by 1.24).
fn font(size: i32) -> FontDesc<'static> {
    ("sans-serif", f64::from(size) * 1.24).into_font()
}

/// Rough rendered width of `s` in a sans-serif font of `size` px.
fn text_width(s: &str, size: i32) -> i32 {
    (s.chars().count() as f64 * f64::from(size) * 0.56) as i32
}

/// `s`, cut with an ellipsis so it fits in `width` px at `size`.
fn truncate(s: &str, width: i32, size: i32) -> String {
    if text_width(s, size) <= width {
        return s.to_owned();
    }
    let keep = ((f64::from(width) / (f64::from(size) * 0.56)) as usize).saturating_sub(1);
    let mut t: String = s.chars().take(keep).collect();
    t.push('…');
    t
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn series(panel: &str, label: &str, samples: &[f64]) -> CdfSeries {
        CdfSeries { panel: panel.to_owned(), label: label.to_owned(), samples_us: samples.to_vec() }
    }

    /// Deterministic pseudo-random log-normal samples (no rand dependency).
    fn lognormal(seed: u64, n: usize, median_us: f64, sigma: f64) -> Vec<f64> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u1, u2) = (next(), next());
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                median_us * (sigma * z).exp()
            })
            .collect()
    }

    /// What `preempt bench` draws: the stages panel, then one panel per tx class.
    fn bench_like() -> Vec<CdfSeries> {
        let mut out = Vec::new();
        // Stages as wide as a real run's: detect spans 0.1 µs to 10 ms.
        let stages = [
            ("decode", 95.0, 0.4),
            ("filter", 3.1, 0.5),
            ("detect", 1.5, 1.5),
            ("plan + sign", 59.0, 0.5),
        ];
        for (i, (name, median, sigma)) in stages.into_iter().enumerate() {
            let samples = lognormal(i as u64, 3000, median, sigma);
            out.push(series("pipeline stages outside the EVM", name, &samples));
        }
        for (j, class) in
            ["attack", "erc-20 transfer", "eth transfer", "protocol call", "uniswap v2 router"]
                .into_iter()
                .enumerate()
        {
            let panel = format!("simulate: {class}");
            let seed = 10 * (j as u64 + 1);
            for (k, (label, median)) in [
                ("preempt simulate+detect", 80.0),
                ("floor: bare revm transact", 50.0),
                ("peer: debug_traceCall http", 450.0),
                ("peer: debug_traceCall ws", 350.0),
            ]
            .into_iter()
            .enumerate()
            {
                let samples = lognormal(seed + k as u64, 500, median / (j as f64 + 1.0), 0.4);
                out.push(series(&panel, label, &samples));
            }
        }
        out
    }

    /// The stroke colors of the step lines, in drawing order (the series are drawn last and
    /// are the only lines 2 px wide).
    fn line_colors(svg: &str) -> Vec<String> {
        svg.lines()
            .filter(|l| l.contains("<polyline") && l.contains(r#"stroke-width="2""#))
            .filter_map(|l| l.split("stroke=\"").nth(1))
            .filter_map(|s| s.split('"').next())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn cdf_chart_has_a_panel_per_group_a_line_per_series_and_p50_p99_per_series() {
        let input = vec![
            series("stage a", "preempt", &[1.0, 5.0, 20.0]),
            series("stage a", "peer", &[100.0, 300.0]),
            series("stage b", "preempt", &[42.0]),
            series("stage b", "empty", &[]),
        ];
        let svg = render_cdf_svg("the title", "the subtitle", &input);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(line_colors(&svg).len(), 3);
        assert!(svg.contains(">\nthe title\n</text>") && svg.contains(">\nthe subtitle\n</text>"));
        assert!(svg.contains("latency (µs, log scale)"));
        assert!(svg.contains("fraction ≤ x"));
        assert!(svg.contains(">\n0.99\n</text>"));
        assert!(svg.contains(">\nempty\n</text>"), "an empty series is still in the legend");
        assert!(svg.contains("preempt p50 5 µs · p99 20 µs"));
        assert!(svg.contains("peer p50 100 µs · p99 300 µs"));
        assert!(!svg.contains("empty p50"));
        let a = svg.find(">\nstage a\n</text>");
        let b = svg.find(">\nstage b\n</text>");
        assert!(a.is_some() && b.is_some() && a < b, "panels in order of first appearance");
    }

    #[test]
    fn cdf_chart_gives_a_label_the_same_color_in_every_panel() {
        let input = vec![
            series("p1", "alpha", &[1.0, 2.0]),
            series("p1", "beta", &[3.0, 4.0]),
            series("p2", "beta", &[5.0, 6.0]),
            series("p2", "alpha", &[7.0, 8.0]),
        ];
        let colors = line_colors(&render_cdf_svg("t", "s", &input));
        assert_eq!(colors.len(), 4);
        assert_eq!(colors[0], colors[3], "alpha");
        assert_eq!(colors[1], colors[2], "beta");
        assert_ne!(colors[0], colors[1]);
        assert_eq!(colors[0], "#1F77B4");
    }

    #[test]
    fn cdf_chart_is_deterministic_and_escapes_text() {
        let input = bench_like();
        assert_eq!(render_cdf_svg("t", "s", &input), render_cdf_svg("t", "s", &input.clone()));
        let svg = render_cdf_svg("T & <x>", "s", &[series("p<1>", "a<b", &[1.0, 2.0])]);
        assert!(svg.contains("T &amp; &lt;x&gt;") && svg.contains("p&lt;1&gt;"));
        assert!(!svg.contains("a<b"));
    }

    #[test]
    fn cdf_chart_draws_nothing_for_invalid_samples() {
        let bad = [f64::NAN, -1.0, f64::INFINITY, f64::NEG_INFINITY];
        let svg = render_cdf_svg("t", "s", &[series("p", "bad", &bad)]);
        assert!(line_colors(&svg).is_empty());
        assert!(svg.contains(">\nbad\n</text>") && !svg.contains("bad p50"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn cdf_steps_are_capped_and_one_sample_is_one_vertical_step() {
        assert_eq!(cdf_points(&[42.0], 1.0), vec![(42.0, 0.0), (42.0, 1.0)]);
        let mut big = lognormal(9, 100_000, 50.0, 1.0);
        big.sort_by(f64::total_cmp);
        assert!(cdf_points(&big, 0.01).len() <= 2 * MAX_STEPS);
        assert_eq!(cdf_points(&[0.0, 5.0], 1.0)[0], (1.0, 0.0), "zero sits on the left edge");
    }

    #[test]
    fn decade_labels_and_ranges() {
        assert_eq!(decade_label(-2), "0.01");
        assert_eq!(decade_label(0), "1");
        assert_eq!(decade_label(3), "1k");
        assert_eq!(decade_label(5), "100k");
        assert_eq!(decade_label(6), "1M");
        assert_eq!(floor_log10(1000.0), 3);
        assert_eq!(floor_log10(999.9), 2);
        assert_eq!(floor_log10(0.5), -1);
        let range = |v: &[f64]| {
            let series = vec![Prepared { label: "l", color: PALETTE[0], sorted: v.to_vec() }];
            decade_range(&Panel { name: "p", series })
        };
        assert_eq!(range(&[72.0, 160.0]), (1, 3));
        assert_eq!(range(&[100.0]), (2, 3));
        assert_eq!(range(&[0.0]), (0, 1));
        assert_eq!(fmt_latency(72.4), "72");
        assert_eq!(fmt_latency(7.25), "7.2");
        assert_eq!(fmt_latency(0.456), "0.46");
    }

    /// Renders a bench-like chart to `$PREEMPT_CHART_OUT` (an .svg path) to look at:
    /// `PREEMPT_CHART_OUT=/tmp/cdf.svg cargo test --lib chart::tests::render -- --ignored`.
    #[test]
    #[ignore = "writes a file to look at"]
    fn render_bench_like_chart_to_look_at() {
        let Some(out) = std::env::var_os("PREEMPT_CHART_OUT") else { return };
        let subtitle = "AMD EPYC · 2 cores · 2026-12-07T02:11:58Z";
        let svg = render_cdf_svg(
            "preempt latency CDFs (same run, same warm state)",
            subtitle,
            &bench_like(),
        );
        std::fs::write(out, svg).expect("write the chart");
    }
}
