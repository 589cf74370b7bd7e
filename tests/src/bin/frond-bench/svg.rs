//! The benchmark's charts, drawn with `plotters` into SVG strings: a strip plot of
//! samples per group (dots, min–max whisker, median), a horizontal bar chart, a time
//! series with marker lines, and grouped bars with min–max error bars. Axes start at 0.
//!
//! Only the SVG backend is used, without `plotters`' `ttf` feature: text is written as
//! SVG `<text>` in the generic `sans-serif` family and laid out with `plotters`' built-in
//! size estimate, so no font files, fontconfig or other system library are needed.

use plotters::coord::Shift;
use plotters::element::{DashedPathElement, ErrorBar};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const W: u32 = 720;
const FONT: &str = "sans-serif";

/// A "nice" axis: (tick step, axis top) with top >= max and about 5 ticks.
fn nice_axis(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    (step, (max / step).ceil() * step)
}

/// Number of ticks for an axis of `top` in steps of `step` (0 included).
fn ticks(step: f64, top: f64) -> usize {
    (top / step).round() as usize + 1
}

fn num(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// `#rrggbb` → colour (black if malformed).
fn hex(c: &str) -> RGBColor {
    let c = c.trim_start_matches('#');
    let byte = |i: usize| c.get(i..i + 2).and_then(|s| u8::from_str_radix(s, 16).ok()).unwrap_or(0);
    RGBColor(byte(0), byte(2), byte(4))
}

const BLUE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const RED: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const GREY: RGBColor = RGBColor(0x88, 0x88, 0x88);
const DARK: RGBColor = RGBColor(0x55, 0x55, 0x55);

fn text(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// Index label of a category axis whose categories sit at 0, 1, …; blank between them.
fn category(labels: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() > 1e-6 || i < 0.0 {
        return String::new();
    }
    labels.get(i as usize).cloned().unwrap_or_default()
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws with `draw` on a white `h`-pixel-high canvas and returns the SVG text. A drawing
/// error (none is expected for finite data) yields the partial picture; the bench's
/// figures are in its tables and JSON, the pictures only show them.
fn render(h: u32, draw: impl FnOnce(&Area) -> DrawResult) -> String {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (W, h)).into_drawing_area();
        let result = root.fill(&WHITE).map_err(Into::into).and_then(|()| draw(&root));
        if let Err(e) = result {
            eprintln!("frond-bench: plot: {e}");
        }
        let _ = root.present();
    }
    out.push('\n');
    out
}

/// A vertical strip plot: one column per `(label, samples)` group, each sample a dot,
/// a grey min–max whisker, and a red median bar labelled with its value.
pub fn strip_plot(title: &str, y_label: &str, groups: &[(String, Vec<f64>)]) -> String {
    let max = groups.iter().flat_map(|(_, s)| s.iter().copied()).fold(0.0, f64::max);
    let (step, y_max) = nice_axis(max);
    let labels: Vec<String> = groups.iter().map(|(l, s)| format!("{l} (n={})", s.len())).collect();
    render(440, |root| {
        root.draw(&Text::new(
            "dots: samples · grey: min–max · red: median",
            (W as i32 / 2, 44),
            text(11).color(&DARK).pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
        let n = groups.len().max(1);
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 16).into_font().style(FontStyle::Bold))
            .margin_top(24)
            .margin_right(30)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..y_max)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(0xe5, 0xe5, 0xe5))
            .x_labels(n + 1)
            .x_label_formatter(&|x| category(&labels, *x))
            .y_labels(ticks(step, y_max))
            .y_label_formatter(&|v| num(*v))
            .y_desc(y_label)
            .label_style(text(13))
            .draw()?;
        for (i, (_, samples)) in groups.iter().enumerate() {
            if samples.is_empty() {
                continue;
            }
            let cx = i as f64;
            let (lo, hi) = samples.iter().fold((f64::INFINITY, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
            let m = median(samples);
            let wx = cx - 0.25;
            chart.draw_series(
                [
                    vec![(wx, lo), (wx, hi)],
                    vec![(wx - 0.03, lo), (wx + 0.03, lo)],
                    vec![(wx - 0.03, hi), (wx + 0.03, hi)],
                ]
                .into_iter()
                .map(|p| PathElement::new(p, GREY.stroke_width(2))),
            )?;
            // Deterministic jitter so equal values stay visible.
            chart.draw_series(samples.iter().enumerate().map(|(k, &v)| {
                Circle::new((cx + ((k % 7) as f64 - 3.0) * 0.02, v), 4, BLUE.mix(0.6).filled())
            }))?;
            chart.draw_series([PathElement::new(vec![(cx - 0.12, m), (cx + 0.12, m)], RED.stroke_width(3))])?;
            chart.draw_series([Text::new(
                format!("median {}", num(m)),
                (cx + 0.14, m),
                text(13).color(&RED).pos(Pos::new(HPos::Left, VPos::Center)),
            )])?;
        }
        Ok(())
    })
}

fn median(v: &[f64]) -> f64 {
    frond_tests::fwdbench::Summary::of(v).median
}

/// Horizontal bars, one per `(label, value)`, each labelled with its value.
pub fn hbar_chart(title: &str, x_label: &str, bars: &[(String, f64)]) -> String {
    let longest = bars.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
    let n = bars.len().max(1);
    let h = 110 + 30 * n as u32;
    let max = bars.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let (step, x_max) = nice_axis(max);
    // Bar i sits at y = n-1-i, so the first bar is at the top.
    let labels: Vec<String> = bars.iter().rev().map(|(l, _)| l.clone()).collect();
    render(h, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 16).into_font().style(FontStyle::Bold))
            .margin_right(80)
            .x_label_area_size(45)
            .y_label_area_size(20 + (7.5 * longest as f64) as u32)
            .build_cartesian_2d(0.0..x_max, -0.5..n as f64 - 0.5)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(0xe5, 0xe5, 0xe5))
            .x_labels(ticks(step, x_max))
            .x_label_formatter(&|v| num(*v))
            .y_labels(n + 1)
            .y_label_formatter(&|y| category(&labels, *y))
            .x_desc(x_label)
            .label_style(text(13))
            .draw()?;
        let k = bars.len();
        chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            let y = (k - 1 - i) as f64;
            Rectangle::new([(0.0, y - 0.33), (v.clamp(0.0, x_max), y + 0.33)], BLUE.filled())
        }))?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            let y = (k - 1 - i) as f64;
            Text::new(format!(" {}", num(*v)), (v.clamp(0.0, x_max), y), text(13).pos(Pos::new(HPos::Left, VPos::Center)))
        }))?;
        Ok(())
    })
}

/// A time series: one polyline per `(name, colour, points)` over a shared x axis
/// (seconds), with dashed vertical marker lines (e.g. "crash") labelled at the top.
pub fn time_series(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, &str, Vec<(f64, f64)>)],
    marks: &[(f64, String)],
) -> String {
    let x_max = series.iter().flat_map(|s| s.2.iter().map(|p| p.0)).fold(0.0f64, f64::max);
    let y_max = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold(0.0f64, f64::max);
    let (xs, xt) = nice_axis(x_max);
    let (ys, yt) = nice_axis(y_max);
    render(380, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 16).into_font().style(FontStyle::Bold))
            .margin_right(20)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..xt, 0.0..yt)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
            .x_labels(ticks(xs, xt))
            .y_labels(ticks(ys, yt))
            .x_label_formatter(&|v| num(*v))
            .y_label_formatter(&|v| num(*v))
            .x_desc(x_label)
            .y_desc(y_label)
            .label_style(text(13))
            .draw()?;
        let mark = RGBColor(0xcc, 0, 0);
        for (at, label) in marks {
            chart.draw_series([DashedPathElement::new(vec![(*at, 0.0), (*at, yt)], 4, 3, mark.stroke_width(1))])?;
            chart.draw_series([Text::new(format!(" {label}"), (*at, yt * 0.97), text(13).color(&mark))])?;
        }
        for (name, color, pts) in series {
            let c = hex(color);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(1)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(GREY)
                .label_font(text(13))
                .draw()?;
        }
        Ok(())
    })
}

/// One bar of [`range_bars`]: the median's height with a min–max error bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

/// Grouped vertical bars: for each group (x axis category, e.g. a batch size), one bar per
/// series `(name, colour, one range per group)`, the bar at the median with a min–max
/// error bar, and the median written above it. `None`: no bar for that group.
pub fn range_bars(
    title: &str,
    x_label: &str,
    y_label: &str,
    groups: &[String],
    series: &[(String, &str, Vec<Option<Range>>)],
) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.2.iter().flatten().map(|r| r.max.max(r.median)))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let (step, y_max) = nice_axis(max * 1.08);
    let n = groups.len().max(1);
    let k = series.len().max(1) as f64;
    let width = 0.8 / k;
    render(440, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 16).into_font().style(FontStyle::Bold))
            .margin_right(20)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..y_max)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .bold_line_style(RGBColor(0xe5, 0xe5, 0xe5))
            .x_labels(n + 1)
            .x_label_formatter(&|x| category(groups, *x))
            .y_labels(ticks(step, y_max))
            .y_label_formatter(&|v| num(*v))
            .x_desc(x_label)
            .y_desc(y_label)
            .label_style(text(13))
            .draw()?;
        for (j, (name, color, ranges)) in series.iter().enumerate() {
            let c = hex(color);
            let x0 = |g: usize| g as f64 - 0.4 + width * j as f64;
            let bars: Vec<(usize, Range)> = ranges
                .iter()
                .enumerate()
                .filter_map(|(g, r)| r.filter(|r| r.median.is_finite()).map(|r| (g, r)))
                .collect();
            chart
                .draw_series(bars.iter().map(|&(g, r)| {
                    Rectangle::new([(x0(g) + width * 0.1, 0.0), (x0(g) + width * 0.9, r.median)], c.mix(0.8).filled())
                }))?
                .label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
            chart.draw_series(bars.iter().filter(|(_, r)| r.min.is_finite() && r.max.is_finite()).map(|&(g, r)| {
                ErrorBar::new_vertical(x0(g) + width / 2.0, r.min, r.median, r.max, BLACK.stroke_width(2), 12)
            }))?;
            chart.draw_series(bars.iter().map(|&(g, r)| {
                let top = if r.max.is_finite() { r.max.max(r.median) } else { r.median };
                Text::new(num(r.median), (x0(g) + width / 2.0, top + y_max * 0.01), text(12).pos(Pos::new(HPos::Center, VPos::Bottom)))
            }))?;
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(GREY)
                .label_font(text(13))
                .draw()?;
        }
        Ok(())
    })
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
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&apos;"].iter().any(|e| ent.starts_with(e)),
                    "bare & in {text:?}"
                );
            }
            let end = rest[start..].find('>').expect("unclosed tag") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "'<' inside tag {tag:?}");
            if tag.starts_with('?') || tag.starts_with('!') {
                rest = &rest[end + 1..];
                continue;
            }
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

    fn sane(svg: &str) {
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        assert!(svg.contains("font-family=\"sans-serif\""), "text without the generic family");
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
        assert_eq!(names.iter().find(|n| *n != "?xml").map(String::as_str), Some("svg"));
        assert_eq!(names.iter().filter(|n| *n == "circle").count(), 5);
        for label in [
            "Boot &lt;to&gt; prompt &amp; more",
            "wall time (ms)",
            "qboot (n=3)",
            "seabios (n=2)",
            "none (n=0)",
            "median 530",
            "red: median",
            "1500",
        ] {
            assert!(svg.contains(label), "{label:?} missing");
        }
        sane(&svg);
    }

    #[test]
    fn hbar_chart_is_well_formed() {
        let svg = hbar_chart("kbench", "instructions/op", &[("yield_switch".into(), 319.6), ("mutex".into(), 139.0)]);
        check_well_formed(&svg);
        for label in ["yield_switch", "mutex", "320", "139", "instructions/op", "400"] {
            assert!(svg.contains(label), "{label:?} missing");
        }
        // The first bar is the top one.
        let (a, b) = (svg.find("yield_switch").unwrap(), svg.find("mutex").unwrap());
        let y = |at: usize| -> f64 {
            let tag = &svg[svg[..at].rfind("<text").unwrap()..at];
            let v = &tag[tag.find(" y=\"").unwrap() + 4..];
            v[..v.find('"').unwrap()].parse().unwrap()
        };
        assert!(y(a) < y(b), "yield_switch should be above mutex");
        sane(&svg);
        check_well_formed(&hbar_chart("empty", "x", &[]));
    }

    #[test]
    fn time_series_is_well_formed() {
        let pts: Vec<(f64, f64)> = (0..100).map(|i| (i as f64 * 0.1, (i % 10) as f64 * 50.0)).collect();
        let svg = time_series(
            "crash & recovery",
            "seconds",
            "per 100 ms",
            &[("ping replies".into(), "#1f77b4", pts.clone()), ("HTTP 200s".into(), "#2ca02c", pts)],
            &[(4.0, "crash netstack".into())],
        );
        check_well_formed(&svg);
        for label in ["crash &amp; recovery", "seconds", "per 100 ms", "ping replies", "HTTP 200s", "crash netstack", "#1F77B4", "#2CA02C"] {
            assert!(svg.to_uppercase().contains(&label.to_uppercase()), "{label:?} missing");
        }
        assert!(svg.contains("<polyline"), "no line drawn");
        sane(&svg);
        check_well_formed(&time_series("empty", "x", "y", &[], &[]));
    }

    #[test]
    fn range_bars_are_well_formed() {
        let r = |min, median, max| Some(Range { min, median, max });
        let svg = range_bars(
            "forwarding",
            "batch size",
            "packets/s",
            &["batch 1".into(), "batch 8".into(), "batch 32".into()],
            &[
                ("Frond".into(), "#1f77b4", vec![r(25_000.0, 30_000.0, 38_000.0), None, r(76_000.0, 80_000.0, 89_000.0)]),
                ("Linux".into(), "#ff7f0e", vec![r(29_000.0, 33_000.0, 37_000.0); 3]),
            ],
        );
        check_well_formed(&svg);
        for label in ["batch 1", "batch 8", "batch 32", "Frond", "Linux", "packets/s", "80000", "33000"] {
            assert!(svg.contains(label), "{label:?} missing");
        }
        // 2 + 3 bars and the 2 legend boxes (plus the background and legend frame).
        assert!(svg.matches("<rect").count() >= 7, "{svg}");
        sane(&svg);
        check_well_formed(&range_bars("empty", "x", "y", &[], &[]));
    }

    #[test]
    fn axes_are_nice() {
        for (max, want) in [(1450.0, (500.0, 1500.0)), (320.0, (100.0, 400.0)), (0.0, (0.2, 1.0)), (9.0, (2.0, 10.0))] {
            let got = nice_axis(max);
            let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.max(1.0);
            assert!(close(got.0, want.0) && close(got.1, want.1), "{max}: {got:?}");
        }
        assert_eq!(ticks(500.0, 1500.0), 4);
        assert_eq!(hex("#1f77b4"), RGBColor(0x1f, 0x77, 0xb4));
    }
}
