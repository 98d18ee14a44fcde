//! Latency CDF charts as SVG.
//!
//! A dependency-free renderer for the benchmark report: a grid of CDF panels (one per pipeline
//! stage or tx class), x = latency on a log10 scale, y = fraction of samples, one step line per
//! series, with a shared legend. The output is deterministic (same input, same bytes) so the
//! checked-in charts only change when the numbers do.

use std::fmt::Write as _;

/// One latency distribution to draw.
#[derive(Debug, Clone)]
pub struct CdfSeries {
    /// Which panel it belongs to (a pipeline stage or a tx class, e.g. "simulate+detect: Router02 swap").
    pub panel: String,
    /// Its name in the legend, e.g. "preempt", "floor (bare revm)", "peer: debug_traceCall http", "peer: ws".
    pub label: String,
    /// Samples in microseconds (any order; non-finite or negative values ignored).
    pub samples_us: Vec<f64>,
}

/// Nearest-rank percentile: the smallest sample `x` such that at least a fraction `q` of the
/// samples are `<= x` (on a sorted copy; `q` is clamped to `0..=1`, `q = 0` gives the minimum).
///
/// Non-finite samples are ignored. Returns `None` when no sample is left or `q` is NaN.
pub fn percentile(samples: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    percentile_sorted(&sorted, q)
}

/// [`percentile`] on data that is already sorted ascending and finite.
fn percentile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || q.is_nan() {
        return None;
    }
    let n = sorted.len();
    let r = q.clamp(0.0, 1.0) * n as f64;
    // Tolerate float noise so that e.g. q = k/n picks rank k, not k + 1.
    let rank =
        if (r - r.round()).abs() < 1e-9 * (n as f64).max(1.0) { r.round() } else { r.ceil() };
    let rank = (rank as usize).clamp(1, n);
    sorted.get(rank - 1).copied()
}

/// Readable, distinguishable line colors (Tableau 10), assigned to labels in order of first
/// appearance and reused cyclically beyond ten labels.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];

/// At most this many quantile steps per polyline (two points per step, so ~400 points).
const MAX_STEPS: usize = 200;

const WIDTH: f64 = 1000.0;
const MARGIN: f64 = 20.0;
const COL_GAP: f64 = 30.0;
const ROW_GAP: f64 = 26.0;
const PLOT_HEIGHT: f64 = 240.0;
const PLOT_LEFT_PAD: f64 = 52.0;
const PLOT_RIGHT_PAD: f64 = 12.0;
const ANNOT_LINE: f64 = 15.0;
const LEGEND_ROW: f64 = 22.0;

/// Y ticks (fraction of samples); 0.99 also gets a dashed guide line.
const Y_TICKS: [f64; 4] = [0.0, 0.5, 0.9, 0.99];

/// A series after validation: sorted, finite, non-negative samples.
struct Prepared<'a> {
    label: &'a str,
    color: &'static str,
    sorted: Vec<f64>,
}

struct Panel<'a> {
    name: &'a str,
    series: Vec<Prepared<'a>>,
}

/// A grid of panels (2 columns, in order of first appearance), each a CDF plot: x = latency in µs on a
/// log10 scale (decade ticks 1, 10, 100, 1k, 10k… with faint minor grid), y = fraction of samples 0..1
/// (ticks at 0, 0.5, 0.9, 0.99 — 0.99 matters: draw a dashed p99 guide line), one step polyline per series.
/// Colors are fixed per label across panels (the same label always gets the same color, from a
/// readable palette, assigned in order of first appearance), with one shared legend at the top.
/// Title and subtitle (machine, date) at the top. Width ~ 1000 px; height grows with the panel count.
///
/// Each panel also lists every non-empty series' p50 and p99 (nearest rank, see [`percentile`])
/// in the series color at its top left, above the plot area so the text never covers a line.
pub fn render_cdf_svg(title: &str, subtitle: &str, series: &[CdfSeries]) -> String {
    // Colors per label, in order of first appearance.
    let mut labels: Vec<(&str, &'static str)> = Vec::new();
    for s in series {
        if !labels.iter().any(|(l, _)| *l == s.label) {
            let color = PALETTE[labels.len() % PALETTE.len()];
            labels.push((&s.label, color));
        }
    }
    let color_of =
        |label: &str| labels.iter().find(|(l, _)| *l == label).map_or(PALETTE[0], |(_, c)| *c);

    // Panels, in order of first appearance.
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

    let mut out = String::new();

    // Legend layout first: its height decides where the panels start.
    let legend_top = 78.0;
    let mut legend = String::new();
    let mut lx = MARGIN;
    let mut ly = legend_top;
    for (label, color) in &labels {
        let item_w = 28.0 + text_width(label, 12.0) + 14.0;
        if lx > MARGIN && lx + item_w > WIDTH - MARGIN {
            lx = MARGIN;
            ly += LEGEND_ROW;
        }
        let _ = writeln!(
            legend,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{color}" stroke-width="3" stroke-linecap="round"/>"#,
            num(lx + 2.0),
            num(ly - 4.0),
            num(lx + 22.0),
            num(ly - 4.0),
        );
        let _ = writeln!(
            legend,
            r##"<text x="{}" y="{}" font-size="12" fill="#222">{}</text>"##,
            num(lx + 28.0),
            num(ly),
            esc(label),
        );
        lx += item_w;
    }
    let legend_bottom = if labels.is_empty() { legend_top - LEGEND_ROW } else { ly };

    let max_lines = panels
        .iter()
        .map(|p| p.series.iter().filter(|s| !s.sorted.is_empty()).count())
        .max()
        .unwrap_or(0);
    let annot_h = max_lines as f64 * ANNOT_LINE;
    // Panel: title, annotation lines, plot, x tick labels and axis label.
    let plot_offset = 24.0 + annot_h + 10.0;
    let panel_h = plot_offset + PLOT_HEIGHT + 42.0;
    let panels_top = legend_bottom + 20.0;
    let rows = panels.len().div_ceil(2);
    let height = panels_top + rows as f64 * (panel_h + ROW_GAP) - ROW_GAP + MARGIN;
    let height = height.max(panels_top + MARGIN).ceil();

    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif">"#,
        w = num(WIDTH),
        h = num(height),
    );
    let _ = writeln!(
        out,
        r##"<rect x="0" y="0" width="{}" height="{}" fill="#fff"/>"##,
        num(WIDTH),
        num(height)
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="32" font-size="20" font-weight="bold" fill="#111">{}</text>"##,
        num(MARGIN),
        esc(title)
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="54" font-size="13" fill="#555">{}</text>"##,
        num(MARGIN),
        esc(subtitle)
    );
    out.push_str(&legend);

    let col_w = (WIDTH - 2.0 * MARGIN - COL_GAP) / 2.0;
    for (i, panel) in panels.iter().enumerate() {
        let px = MARGIN + (i % 2) as f64 * (col_w + COL_GAP);
        let py = panels_top + (i / 2) as f64 * (panel_h + ROW_GAP);
        let plot = Rect {
            left: px + PLOT_LEFT_PAD,
            right: px + col_w - PLOT_RIGHT_PAD,
            top: py + plot_offset,
            bottom: py + plot_offset + PLOT_HEIGHT,
        };
        render_panel(&mut out, panel, px, py, col_w, &plot);
    }

    out.push_str("</svg>\n");
    out
}

#[derive(Debug, Clone, Copy)]
struct Rect {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
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

fn render_panel(out: &mut String, panel: &Panel<'_>, px: f64, py: f64, col_w: f64, plot: &Rect) {
    let (lo, hi) = decade_range(panel);
    let span = f64::from(hi - lo);
    let plot_w = plot.right - plot.left;
    let plot_h = plot.bottom - plot.top;
    let x_of = |v: f64| {
        let l = if v > 0.0 { v.log10() } else { f64::from(lo) };
        let t = ((l - f64::from(lo)) / span).clamp(0.0, 1.0);
        plot.left + t * plot_w
    };
    let y_of = |f: f64| plot.bottom - f.clamp(0.0, 1.0) * plot_h;

    let _ = writeln!(out, "<g>");
    // Panel title, truncated to the column width.
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" font-size="14" font-weight="bold" fill="#111">{}</text>"##,
        num(px),
        num(py + 16.0),
        esc(&truncate(panel.name, col_w, 14.0)),
    );

    // p50 / p99 annotations, one line per non-empty series.
    let mut line_y = py + 24.0 + ANNOT_LINE - 3.0;
    for s in panel.series.iter().filter(|s| !s.sorted.is_empty()) {
        let (Some(p50), Some(p99)) =
            (percentile_sorted(&s.sorted, 0.5), percentile_sorted(&s.sorted, 0.99))
        else {
            continue;
        };
        let text = format!("{} p50 {} µs · p99 {} µs", s.label, fmt_latency(p50), fmt_latency(p99));
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" font-size="11" fill="{}">{}</text>"#,
            num(px + 4.0),
            num(line_y),
            s.color,
            esc(&truncate(&text, col_w - 4.0, 11.0)),
        );
        line_y += ANNOT_LINE;
    }

    // Minor grid: 2..9 within each decade.
    let mut minor = String::new();
    for e in lo..hi {
        for m in 2..=9 {
            let x = x_of(f64::from(m) * 10f64.powi(e));
            let _ = write!(minor, "M{} {}V{}", num(x), num(plot.top), num(plot.bottom));
        }
    }
    if !minor.is_empty() {
        let _ =
            writeln!(out, r##"<path d="{minor}" stroke="#f0f0f0" stroke-width="1" fill="none"/>"##);
    }

    // Major grid and labels at each decade; thin out the labels on very wide ranges.
    let label_step = usize::try_from((hi - lo + 9) / 10).unwrap_or(1).max(1);
    let mut major = String::new();
    for (k, e) in (lo..=hi).enumerate() {
        let x = x_of(10f64.powi(e));
        let _ = write!(major, "M{} {}V{}", num(x), num(plot.top), num(plot.bottom));
        if k % label_step == 0 {
            let _ = writeln!(
                out,
                r##"<text x="{}" y="{}" font-size="11" fill="#444" text-anchor="middle">{}</text>"##,
                num(x),
                num(plot.bottom + 15.0),
                decade_label(e),
            );
        }
    }
    let _ = writeln!(out, r##"<path d="{major}" stroke="#d8d8d8" stroke-width="1" fill="none"/>"##);

    // Horizontal grid and y tick labels; the p99 line is dashed and darker.
    for f in Y_TICKS {
        let y = y_of(f);
        if f == 0.99 {
            let _ = writeln!(
                out,
                r##"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#888" stroke-width="1" stroke-dasharray="5 3"/>"##,
                num(plot.left),
                num(plot.right),
                y = num(y),
            );
        } else if f > 0.0 {
            let _ = writeln!(
                out,
                r##"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="#d8d8d8" stroke-width="1"/>"##,
                num(plot.left),
                num(plot.right),
                y = num(y),
            );
        }
        // Keep "0.99" from sitting on top of the frame's "1" edge: nudge it down a little.
        let dy = if f == 0.99 { 6.0 } else { 4.0 };
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{}" font-size="11" fill="#444" text-anchor="end">{}</text>"##,
            num(plot.left - 6.0),
            num(y + dy),
            num(f),
        );
    }

    // Plot frame.
    let _ = writeln!(
        out,
        r##"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#999" stroke-width="1"/>"##,
        num(plot.left),
        num(plot.top),
        num(plot_w),
        num(plot_h),
    );

    // Axis labels.
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" font-size="11" fill="#444" text-anchor="middle">latency (µs, log scale)</text>"##,
        num((plot.left + plot.right) / 2.0),
        num(plot.bottom + 33.0),
    );
    let (ax, ay) = (px + 12.0, (plot.top + plot.bottom) / 2.0);
    let _ = writeln!(
        out,
        r##"<text x="{x}" y="{y}" font-size="11" fill="#444" text-anchor="middle" transform="rotate(-90 {x} {y})">fraction ≤ x</text>"##,
        x = num(ax),
        y = num(ay),
    );

    // One step line per non-empty series.
    for s in panel.series.iter().filter(|s| !s.sorted.is_empty()) {
        let points = cdf_points(&s.sorted, &x_of, &y_of);
        let mut attr = String::new();
        for (i, (x, y)) in points.iter().enumerate() {
            if i > 0 {
                attr.push(' ');
            }
            let _ = write!(attr, "{x},{y}");
        }
        let _ = writeln!(
            out,
            r#"<polyline points="{attr}" fill="none" stroke="{}" stroke-width="1.8" stroke-linejoin="round"/>"#,
            s.color,
        );
    }
    let _ = writeln!(out, "</g>");
}

/// Step-CDF vertices in pixels (formatted), downsampled evenly over quantiles: at quantile
/// `q_k = k/m` the line rises to `q_k` at `percentile(q_k)`. With `m` = sample count this is the
/// exact empirical CDF; a single sample is one vertical step.
fn cdf_points(
    sorted: &[f64],
    x_of: &dyn Fn(f64) -> f64,
    y_of: &dyn Fn(f64) -> f64,
) -> Vec<(String, String)> {
    let m = sorted.len().min(MAX_STEPS);
    let mut raw: Vec<(String, String)> = Vec::with_capacity(2 * m);
    for k in 1..=m {
        let q_prev = (k - 1) as f64 / m as f64;
        let q = k as f64 / m as f64;
        let Some(x) = percentile_sorted(sorted, q) else { continue };
        let xs = num(x_of(x));
        for p in [(xs.clone(), num(y_of(q_prev))), (xs, num(y_of(q)))] {
            if raw.last() != Some(&p) {
                raw.push(p);
            }
        }
    }
    // Drop the middle of any three points on one vertical or horizontal line.
    let mut pts: Vec<(String, String)> = Vec::with_capacity(raw.len());
    for p in raw {
        if pts.len() >= 2 {
            let a = &pts[pts.len() - 2];
            let b = &pts[pts.len() - 1];
            if (a.0 == b.0 && b.0 == p.0) || (a.1 == b.1 && b.1 == p.1) {
                pts.pop();
            }
        }
        pts.push(p);
    }
    pts
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
    trim_zeros(s)
}

/// A coordinate or value with at most two decimals, trailing zeros trimmed, never "-0".
fn num(v: f64) -> String {
    let s = trim_zeros(format!("{v:.2}"));
    if s == "-0" { "0".to_owned() } else { s }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

/// Rough rendered width of `s` in a sans-serif font of `size` px.
fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.56
}

/// `s`, cut with an ellipsis so it fits in `width` px at `size`.
fn truncate(s: &str, width: f64, size: f64) -> String {
    if text_width(s, size) <= width {
        return s.to_owned();
    }
    let keep = ((width / (size * 0.56)) as usize).saturating_sub(1);
    let mut t: String = s.chars().take(keep).collect();
    t.push('…');
    t
}

/// Escape text for XML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
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

    #[test]
    fn percentile_nearest_rank() {
        let data: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&data, 0.5), Some(50.0));
        assert_eq!(percentile(&data, 0.99), Some(99.0));
        assert_eq!(percentile(&data, 0.9), Some(90.0));
        assert_eq!(percentile(&data, 0.0), Some(1.0));
        assert_eq!(percentile(&data, 1.0), Some(100.0));
        assert_eq!(percentile(&data, 0.001), Some(1.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[f64::NAN], 0.5), None);
        assert_eq!(percentile(&[3.0, f64::NAN, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&data, f64::NAN), None);
    }

    #[test]
    fn shape_and_polylines() {
        let input = vec![
            series("stage a", "preempt", &[1.0, 5.0, 20.0]),
            series("stage a", "peer", &[100.0, 300.0]),
            series("stage b", "preempt", &[42.0]),
            series("stage b", "empty", &[]),
        ];
        let svg = render_cdf_svg("t", "s", &input);
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains(r##"fill="#fff""##));
        assert!(svg.contains("font-family=\"sans-serif\""));
        assert!(svg.contains("latency (µs, log scale)"));
        assert!(svg.contains("fraction ≤ x"));
        assert!(svg.contains("stroke-dasharray"));
        assert!(svg.contains(">empty</text>"), "empty series still in the legend");
        assert!(svg.contains("preempt p50 5 µs · p99 20 µs"));
        // Panel order follows first appearance.
        let a = svg.find(">stage a</text>");
        let b = svg.find(">stage b</text>");
        assert!(a.is_some() && b.is_some() && a < b);
    }

    #[test]
    fn single_sample_is_vertical_step() {
        let svg = render_cdf_svg("t", "s", &[series("p", "x", &[42.0])]);
        let start = svg.find("points=\"").map(|i| i + 8);
        let Some(start) = start else { panic!("no polyline") };
        let end = svg[start..].find('"').map(|e| start + e);
        let Some(end) = end else { panic!("unterminated") };
        let pts: Vec<(&str, &str)> =
            svg[start..end].split(' ').filter_map(|p| p.split_once(',')).collect();
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0].0, pts[1].0);
        assert_ne!(pts[0].1, pts[1].1);
    }

    #[test]
    fn escapes_text() {
        let svg =
            render_cdf_svg("T & <x>", "\"sub\"", &[series("p<1>", "a<b & \"c\"", &[1.0, 2.0])]);
        assert!(svg.contains("a&lt;b &amp; &quot;c&quot;"));
        assert!(svg.contains("T &amp; &lt;x&gt;"));
        assert!(svg.contains("&quot;sub&quot;"));
        assert!(svg.contains("p&lt;1&gt;"));
        assert!(!svg.contains("a<b"));
    }

    #[test]
    fn deterministic() {
        let input = vec![
            series("x", "preempt", &lognormal(1, 5000, 70.0, 0.4)),
            series("x", "peer", &lognormal(2, 5000, 900.0, 0.6)),
            series("y", "preempt", &lognormal(3, 50, 30.0, 0.3)),
        ];
        let a = render_cdf_svg("t", "s", &input);
        let b = render_cdf_svg("t", "s", &input.clone());
        assert_eq!(a, b);
    }

    #[test]
    fn invalid_samples_draw_nothing() {
        let svg = render_cdf_svg(
            "t",
            "s",
            &[series("p", "bad", &[f64::NAN, -1.0, f64::INFINITY, f64::NEG_INFINITY])],
        );
        assert_eq!(svg.matches("<polyline").count(), 0);
        assert!(svg.contains(">bad</text>"));
        assert!(!svg.contains("bad p50"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn same_label_same_color() {
        let input = vec![
            series("p1", "alpha", &[1.0, 2.0]),
            series("p1", "beta", &[3.0, 4.0]),
            series("p2", "beta", &[5.0, 6.0]),
            series("p2", "alpha", &[7.0, 8.0]),
        ];
        let svg = render_cdf_svg("t", "s", &input);
        let strokes: Vec<&str> = svg
            .lines()
            .filter(|l| l.starts_with("<polyline"))
            .filter_map(|l| l.split("stroke=\"").nth(1))
            .filter_map(|s| s.split('"').next())
            .collect();
        assert_eq!(strokes.len(), 4);
        assert_eq!(strokes[0], strokes[3], "alpha");
        assert_eq!(strokes[1], strokes[2], "beta");
        assert_ne!(strokes[0], strokes[1]);
        assert_eq!(strokes[0], PALETTE[0]);
        assert_eq!(strokes[1], PALETTE[1]);
    }

    #[test]
    fn polylines_are_capped_and_numbers_short() {
        let svg =
            render_cdf_svg("t", "s", &[series("p", "big", &lognormal(9, 100_000, 50.0, 1.0))]);
        let line = svg.lines().find(|l| l.starts_with("<polyline"));
        let Some(line) = line else { panic!("no polyline") };
        let Some(points) = line.split("points=\"").nth(1).and_then(|s| s.split('"').next()) else {
            panic!("no points")
        };
        assert!(points.split(' ').count() <= 2 * MAX_STEPS);
        for n in points.split([' ', ',']) {
            let decimals = n.split_once('.').map_or(0, |(_, d)| d.len());
            assert!(decimals <= 2, "{n}");
        }
    }

    #[test]
    fn decade_labels_and_ranges() {
        assert_eq!(decade_label(-2), "0.01");
        assert_eq!(decade_label(0), "1");
        assert_eq!(decade_label(2), "100");
        assert_eq!(decade_label(3), "1k");
        assert_eq!(decade_label(5), "100k");
        assert_eq!(decade_label(6), "1M");
        assert_eq!(floor_log10(1000.0), 3);
        assert_eq!(floor_log10(999.9), 2);
        assert_eq!(floor_log10(0.5), -1);
        let panel = |v: &[f64]| {
            let mut sorted = v.to_vec();
            sorted.sort_by(f64::total_cmp);
            decade_range(&Panel {
                name: "p",
                series: vec![Prepared { label: "l", color: "#000", sorted }],
            })
        };
        assert_eq!(panel(&[72.0, 160.0]), (1, 3));
        assert_eq!(panel(&[100.0]), (2, 3));
        assert_eq!(panel(&[10.0, 1000.0]), (1, 3));
        assert_eq!(panel(&[0.0]), (0, 1));
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(12.345_6), "12.35");
        assert_eq!(num(3.0), "3");
        assert_eq!(fmt_latency(72.4), "72");
        assert_eq!(fmt_latency(7.25), "7.2");
        assert_eq!(fmt_latency(0.456), "0.46");
    }
}
