//! Two tiny hand-written SVG charts (no plotting crates): a strip plot of samples per
//! group with min–max whisker and median, and a horizontal bar chart. Axes start at 0.

use std::fmt::Write;

const W: f64 = 720.0;
const FONT: &str = "font-family=\"sans-serif\" font-size=\"13\"";

/// Escapes text for XML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A "nice" axis: (tick step, axis top) with top >= max and about 5 ticks.
fn nice_axis(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    (step, (max / step).ceil() * step)
}

fn num(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn header(svg: &mut String, h: f64, title: &str) {
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" \
         viewBox=\"0 0 {W} {h}\" {FONT}>\n\
         <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{h}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">{}</text>\n",
        W / 2.0,
        esc(title)
    );
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// A vertical strip plot: one column per `(label, samples)` group, each sample a dot,
/// a grey min–max whisker, and a red median bar labelled with its value.
pub fn strip_plot(title: &str, y_label: &str, groups: &[(String, Vec<f64>)]) -> String {
    let (h, left, right, top, bottom) = (440.0, 80.0, 30.0, 60.0, 60.0);
    let plot_h = h - top - bottom;
    let max = groups
        .iter()
        .flat_map(|(_, s)| s.iter().copied())
        .fold(0.0, f64::max);
    let (step, y_max) = nice_axis(max);
    let y = |v: f64| top + plot_h * (1.0 - v / y_max);
    let mut svg = String::new();
    header(&mut svg, h, title);
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"44\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555\">\
         dots: samples · grey: min–max · red: median</text>",
        W / 2.0
    );
    // Y axis: grid, ticks, label.
    let mut t = 0.0;
    while t <= y_max + step / 2.0 {
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#e5e5e5\"/>\n\
             <text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>",
            y(t),
            W - right,
            left - 6.0,
            y(t) + 4.0,
            num(t)
        );
        t += step;
    }
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{0}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\n\
         <text x=\"20\" y=\"{2}\" text-anchor=\"middle\" transform=\"rotate(-90 20 {2})\">{3}</text>",
        h - bottom,
        W - right,
        top + plot_h / 2.0,
        esc(y_label)
    );
    let col = (W - left - right) / groups.len().max(1) as f64;
    for (i, (label, samples)) in groups.iter().enumerate() {
        let cx = left + col * (i as f64 + 0.5);
        let _ = writeln!(
            svg,
            "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>\n\
             <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">n={}</text>",
            h - bottom + 20.0,
            esc(label),
            h - bottom + 38.0,
            samples.len()
        );
        if samples.is_empty() {
            continue;
        }
        let (lo, hi) = samples
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
        let wx = cx - 40.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{wx:.1}\" y1=\"{0:.1}\" x2=\"{wx:.1}\" y2=\"{1:.1}\" stroke=\"#888\" stroke-width=\"2\"/>\n\
             <line x1=\"{2:.1}\" y1=\"{0:.1}\" x2=\"{3:.1}\" y2=\"{0:.1}\" stroke=\"#888\" stroke-width=\"2\"/>\n\
             <line x1=\"{2:.1}\" y1=\"{1:.1}\" x2=\"{3:.1}\" y2=\"{1:.1}\" stroke=\"#888\" stroke-width=\"2\"/>",
            y(lo),
            y(hi),
            wx - 5.0,
            wx + 5.0
        );
        for (k, &v) in samples.iter().enumerate() {
            // Deterministic jitter so equal values stay visible.
            let dx = ((k % 7) as f64 - 3.0) * 5.0;
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#1f77b4\" fill-opacity=\"0.6\"/>",
                cx + dx,
                y(v)
            );
        }
        let m = median(samples);
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{2:.1}\" x2=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"#d62728\" stroke-width=\"3\"/>\n\
             <text x=\"{3:.1}\" y=\"{4:.1}\" fill=\"#d62728\">median {5}</text>",
            cx - 25.0,
            cx + 25.0,
            y(m),
            cx + 30.0,
            y(m) + 4.0,
            num(m)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Horizontal bars, one per `(label, value)`, each labelled with its value.
pub fn hbar_chart(title: &str, x_label: &str, bars: &[(String, f64)]) -> String {
    let (row, top, bottom, right) = (30.0, 50.0, 60.0, 80.0);
    let longest = bars
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let left = 20.0 + 7.5 * longest as f64;
    let h = top + bottom + row * bars.len().max(1) as f64;
    let plot_w = W - left - right;
    let max = bars.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let (step, x_max) = nice_axis(max);
    let x = |v: f64| left + plot_w * (v / x_max).clamp(0.0, 1.0);
    let mut svg = String::new();
    header(&mut svg, h, title);
    let mut t = 0.0;
    while t <= x_max + step / 2.0 {
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#e5e5e5\"/>\n\
             <text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>",
            x(t),
            h - bottom,
            h - bottom + 18.0,
            num(t)
        );
        t += step;
    }
    for (i, (label, v)) in bars.iter().enumerate() {
        let y0 = top + row * i as f64;
        let _ = writeln!(
            svg,
            "<text x=\"{0:.1}\" y=\"{1:.1}\" text-anchor=\"end\">{2}</text>\n\
             <rect x=\"{left:.1}\" y=\"{3:.1}\" width=\"{4:.1}\" height=\"{5:.1}\" fill=\"#1f77b4\"/>\n\
             <text x=\"{6:.1}\" y=\"{1:.1}\">{7}</text>",
            left - 8.0,
            y0 + row / 2.0 + 4.0,
            esc(label),
            y0 + 5.0,
            x(*v) - left,
            row - 10.0,
            x(*v) + 5.0,
            num(*v)
        );
    }
    let _ = writeln!(
        svg,
        "<line x1=\"{left:.1}\" y1=\"{top}\" x2=\"{left:.1}\" y2=\"{0}\" stroke=\"black\"/>\n\
         <line x1=\"{left:.1}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\n\
         <text x=\"{2:.1}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>",
        h - bottom,
        W - right,
        left + plot_w / 2.0,
        h - 15.0,
        esc(x_label)
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that tags balance and every `&` starts an entity; returns the tag names.
    fn check_well_formed(svg: &str) -> Vec<String> {
        let mut stack: Vec<String> = Vec::new();
        let mut names = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            for (i, _) in text.match_indices('&') {
                let ent = &text[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                        .iter()
                        .any(|e| ent.starts_with(e)),
                    "bare & in {text:?}"
                );
            }
            let end = rest[start..].find('>').expect("unclosed tag") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "'<' inside tag {tag:?}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else {
                let name = tag.split_whitespace().next().unwrap().trim_end_matches('/');
                names.push(name.to_string());
                if !tag.ends_with('/') {
                    stack.push(name.to_string());
                }
            }
            rest = &rest[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        assert!(rest.trim().is_empty(), "text after root: {rest:?}");
        names
    }

    #[test]
    fn strip_plot_is_well_formed() {
        let svg = strip_plot(
            "Boot <to> prompt & more",
            "wall time (ms)",
            &[
                ("qboot".into(), vec![510.0, 530.5, 600.0]),
                ("seabios".into(), vec![1400.0, 1450.0]),
                ("none".into(), vec![]),
            ],
        );
        let names = check_well_formed(&svg);
        assert_eq!(names[0], "svg");
        assert_eq!(names.iter().filter(|n| *n == "circle").count(), 5);
        for label in [
            "Boot &lt;to&gt; prompt &amp; more",
            "wall time (ms)",
            "qboot",
            "seabios",
            "median 530",
            "red: median",
            "n=3",
            "n=0",
        ] {
            assert!(svg.contains(label), "{label:?} missing");
        }
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn hbar_chart_is_well_formed() {
        let svg = hbar_chart(
            "kbench",
            "instructions/op",
            &[("yield_switch".into(), 319.6), ("mutex".into(), 139.0)],
        );
        let names = check_well_formed(&svg);
        assert_eq!(names.iter().filter(|n| *n == "rect").count(), 3); // + background
        for label in ["yield_switch", "mutex", "320", "instructions/op"] {
            assert!(svg.contains(label), "{label:?} missing");
        }
        check_well_formed(&hbar_chart("empty", "x", &[]));
    }

    #[test]
    fn axes_are_nice() {
        for (max, want) in [
            (1450.0, (500.0, 1500.0)),
            (320.0, (100.0, 400.0)),
            (0.0, (0.2, 1.0)),
            (9.0, (2.0, 10.0)),
        ] {
            let got = nice_axis(max);
            let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.max(1.0);
            assert!(
                close(got.0, want.0) && close(got.1, want.1),
                "{max}: {got:?}"
            );
        }
    }
}

/// A time series: one polyline per series over a shared x axis (seconds), with vertical
/// marker lines (e.g. "crash") labelled at the top. Axes start at 0.
pub fn time_series(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, &str, Vec<(f64, f64)>)],
    marks: &[(f64, String)],
) -> String {
    let h = 380.0;
    let (left, right, top, bottom) = (70.0, W - 20.0, 50.0, h - 70.0);
    let x_max = series.iter().flat_map(|s| s.2.iter().map(|p| p.0)).fold(0.0f64, f64::max);
    let y_max = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold(0.0f64, f64::max);
    let (xs, xt) = nice_axis(x_max);
    let (ys, yt) = nice_axis(y_max);
    let px = |x: f64| left + (right - left) * x / xt;
    let py = |y: f64| bottom - (bottom - top) * y / yt;
    let mut svg = String::new();
    header(&mut svg, h, title);
    let mut y = 0.0;
    while y <= yt + ys / 2.0 {
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{right}\" y2=\"{0:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\">{3}</text>",
            py(y),
            left - 6.0,
            py(y) + 4.0,
            num(y)
        );
        y += ys;
    }
    let mut x = 0.0;
    while x <= xt + xs / 2.0 {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            px(x),
            bottom + 18.0,
            num(x)
        );
        x += xs;
    }
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\" stroke=\"black\"/>\
         <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"black\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
         <text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">{}</text>",
        (left + right) / 2.0,
        bottom + 38.0,
        esc(x_label),
        (top + bottom) / 2.0,
        (top + bottom) / 2.0,
        esc(y_label)
    );
    for (at, label) in marks {
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{bottom}\" stroke=\"#c00\" stroke-dasharray=\"4 3\"/>\
             <text x=\"{1:.1}\" y=\"{2}\" fill=\"#c00\">{3}</text>",
            px(*at),
            px(*at) + 4.0,
            top + 12.0,
            esc(label)
        );
    }
    for (i, (name, color, pts)) in series.iter().enumerate() {
        let mut d = String::new();
        for (x, y) in pts {
            let _ = write!(d, "{:.1},{:.1} ", px(*x), py(*y));
        }
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.2\" points=\"{d}\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"{color}\">{}</text>",
            left + 10.0 + 260.0 * i as f64,
            h - 12.0,
            esc(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}
