//! Time-series charts drawn on the server as inline SVG (no script, printable, read
//! by screen readers through their title and a table the page keeps beside them):
//! a line of the average with a band from the lowest to the highest value of each
//! bucket, time along the bottom in Beijing time, the value's scale on the left,
//! and gaps where nothing was measured.

use std::fmt::Write as _;

/// One point: the bucket's start (ms), and its average, lowest and highest value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Point {
    pub at: i64,
    pub avg: f64,
    pub lo: f64,
    pub hi: f64,
}

const W: f64 = 640.0;
const H: f64 = 180.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A round step for about `n` ticks over `span`.
fn nice_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn label(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}").trim_end_matches('0').to_string()
    }
}

/// Beijing `HH:MM` (a range of a day or less) or `MM-DD` (longer).
fn time_label(ms: i64, long: bool) -> String {
    let s = lianyi_fhir::datetime::format_instant(ms + 8 * 3_600_000);
    if long { s[5..10].to_string() } else { s[11..16].to_string() }
}

/// The chart of `points` (oldest first) between `from` and `to`; `gap` is the
/// longest pause between points still drawn as one line. `title` names it for
/// assistive technology.
pub(crate) fn line(title: &str, points: &[Point], from: i64, to: i64, gap: i64) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{t}\" preserveAspectRatio=\"none\"><title>{t}</title>",
        t = escape(title)
    );
    let span_t = (to - from).max(1) as f64;
    let (mut lo, mut hi) =
        points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| (l.min(p.lo), h.max(p.hi)));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if lo > 0.0 && lo < hi * 0.5 {
        lo = 0.0;
    }
    if (hi - lo).abs() < f64::EPSILON {
        hi = lo + 1.0;
    }
    let step = nice_step(hi - lo, 5.0);
    let (lo, hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    let x = |at: i64| LEFT + (at - from) as f64 / span_t * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM);
    // The value's scale.
    let mut v = lo;
    while v <= hi + step * 0.01 {
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 4.0,
            y(v) + 3.0,
            label(v),
            y = y(v)
        );
        v += step;
    }
    // Time: six labels.
    let long = to - from > 86_400_000;
    for i in 0..=5 {
        let at = from + (to - from) * i / 5;
        let anchor = match i {
            0 => "start",
            5 => "end",
            _ => "middle",
        };
        let _ = write!(
            svg,
            "<text class=\"axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
            x(at),
            H - 6.0,
            time_label(at, long)
        );
    }
    // Runs of points without a gap: a band (lowest to highest) and the average's line.
    let mut runs: Vec<&[Point]> = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].at - points[i - 1].at > gap {
            runs.push(&points[start..i]);
            start = i;
        }
    }
    for run in runs.iter().filter(|r| !r.is_empty()) {
        if run.iter().any(|p| p.hi > p.lo) {
            svg.push_str("<polygon class=\"band\" points=\"");
            for p in run.iter() {
                let _ = write!(svg, "{:.1},{:.1} ", x(p.at), y(p.hi));
            }
            for p in run.iter().rev() {
                let _ = write!(svg, "{:.1},{:.1} ", x(p.at), y(p.lo));
            }
            svg.push_str("\"/>");
        }
        if run.len() == 1 {
            let _ =
                write!(svg, "<circle class=\"dot\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\"/>", x(run[0].at), y(run[0].avg));
        } else {
            svg.push_str("<polyline class=\"line\" points=\"");
            for p in run.iter() {
                let _ = write!(svg, "{:.1},{:.1} ", x(p.at), y(p.avg));
            }
            svg.push_str("\"/>");
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One bar: its label, its value and, when it drills down, where to.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Bar {
    pub label: String,
    pub value: f64,
    /// The value as the page writes it (`12.5%`, `¥1,200.00`).
    pub shown: String,
    pub href: Option<String>,
}

const BAR_H: f64 = 22.0;
const BAR_LABEL: f64 = 150.0;
const BAR_VALUE: f64 = 90.0;

/// Horizontal bars, one per line, each a link where it drills down; the longest bar
/// spans the width. `title` names the chart for assistive technology.
pub(crate) fn bars(title: &str, bars: &[Bar]) -> String {
    let h = (bars.len().max(1) as f64) * BAR_H + 4.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart bars\" viewBox=\"0 0 {W} {h}\" role=\"{role}\" aria-label=\"{t}\"><title>{t}</title>",
        t = escape(title),
        // Bars that are links are controls: a group of them, not one picture.
        role = if bars.iter().any(|b| b.href.is_some()) { "group" } else { "img" }
    );
    let peak = bars.iter().map(|b| b.value).fold(0.0f64, f64::max);
    let span = W - BAR_LABEL - BAR_VALUE;
    for (i, b) in bars.iter().enumerate() {
        let y = 2.0 + i as f64 * BAR_H;
        let width = if peak > 0.0 { (b.value.max(0.0) / peak * span).max(1.0) } else { 1.0 };
        if let Some(href) = &b.href {
            let _ = write!(svg, "<a href=\"{}\">", escape(href));
        }
        let _ = write!(
            svg,
            "<text class=\"axis\" x=\"{x:.1}\" y=\"{ty:.1}\" text-anchor=\"end\">{label}</text>\
             <rect class=\"hbar\" x=\"{BAR_LABEL}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{bh:.1}\"/>\
             <text class=\"axis\" x=\"{vx:.1}\" y=\"{ty:.1}\">{shown}</text>",
            x = BAR_LABEL - 6.0,
            ty = y + BAR_H * 0.65,
            label = escape(&b.label),
            bh = BAR_H - 6.0,
            vx = BAR_LABEL + width + 4.0,
            shown = escape(&b.shown),
        );
        if b.href.is_some() {
            svg.push_str("</a>");
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(at: i64, v: f64) -> Point {
        Point { at, avg: v, lo: v, hi: v }
    }

    #[test]
    fn a_gap_longer_than_allowed_breaks_the_line_and_a_lone_point_is_a_dot() {
        let pts = [p(0, 1.0), p(60_000, 2.0), p(120_000, 3.0), p(900_000, 4.0)];
        let svg = line("延迟 <ms>", &pts, 0, 1_000_000, 120_000);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("aria-label=\"延迟 &lt;ms&gt;\""));
        assert!(!svg.contains("<ms>"));
    }

    #[test]
    fn the_scale_is_round_and_holds_every_value() {
        let pts = [Point { at: 0, avg: 12.0, lo: 3.0, hi: 47.0 }, Point { at: 60_000, avg: 20.0, lo: 10.0, hi: 30.0 }];
        let svg = line("x", &pts, 0, 60_000, 120_000);
        // 0 … 50 in steps of 10 (3 is close enough to zero to start there).
        for v in ["0", "10", "20", "30", "40", "50"] {
            assert!(svg.contains(&format!(">{v}</text>")), "{v}: {svg}");
        }
        assert!(svg.contains("<polygon class=\"band\""));
    }

    #[test]
    fn nothing_measured_draws_the_frame_only() {
        let svg = line("x", &[], 0, 86_400_000, 60_000);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(!svg.contains("<polyline") && !svg.contains("<circle"));
    }
}
