//! The soak's report: the pass criteria ([`Report::failures`]), a table on stdout
//! (`Display`), `results.json` and `soak.svg` (throughput of every workload over the run,
//! faults marked), drawn with `plotters` (SVG backend, no fonts needed).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::{json, Value};

use super::inject::{self, Event, InjectOptions, Tally};
use super::series::{covers, Counters, GapCheck, Series};
use super::{SeenEvent, SoakOptions};
use crate::pkt::CountReport;
use crate::HarnessError;

/// The forwarding path: its NIC drivers and the forwarder (their faults cost forwarded
/// frames).
pub const FORWARD_PATH: &[&str] = &["virtio-net1", "virtio-net2", "forward"];
/// Window after a forwarding-path fault in which missing frames are charged to it.
pub const LOSS_WINDOW_S: f64 = 3.0;

/// What [`super::run`] hands over.
pub struct Inputs<'a> {
    pub opts: &'a SoakOptions,
    pub inject: Option<InjectOptions>,
    pub injector: bool,
    pub secs: u64,
    pub series: Vec<Series>,
    pub events: Vec<SeenEvent>,
    /// The counter's report, when bucket 0 began (s), frames the generator sent.
    pub forward: Option<(CountReport, f64, u64)>,
    pub base: Counters,
    pub base_text: String,
    pub after: Option<Counters>,
    pub after_text: String,
    pub inject_totals: String,
    pub kernel_died: Option<String>,
    pub fsck_clean: bool,
    pub fsck_text: String,
    pub durability: Vec<String>,
    pub rv6_launches: u64,
    pub serial_log: Option<PathBuf>,
}

/// Frames lost around one fault of the forwarding path.
#[derive(Debug, Clone, PartialEq)]
pub struct NicLoss {
    pub n: u64,
    pub t: f64,
    pub domain: String,
    pub kind: String,
    pub lost: u64,
}

pub struct Report {
    pub json: Value,
    pub failures: Vec<String>,
    table: String,
    svg: String,
}

impl Report {
    pub fn build(i: Inputs<'_>) -> Report {
        let evs: Vec<Event> = i.events.iter().map(|e| e.event.clone()).collect();
        let tally = Tally::of(&evs);
        let faults_at: Vec<(f64, String)> = i
            .events
            .iter()
            .filter_map(|e| match &e.event {
                Event::Fault(f) => Some((e.t, format!("{} {}", f.kind, f.domain))),
                _ => None,
            })
            .collect();

        // Frames lost per NIC-driver fault.
        let mut losses = Vec::new();
        if let Some((c, from, _)) = &i.forward {
            let bucket_s = c.bucket_ms as f64 / 1000.0;
            let per_bucket = i.opts.fwd_pps as f64 * bucket_s;
            for e in &i.events {
                let Event::Fault(f) = &e.event else { continue };
                if !FORWARD_PATH.contains(&f.domain.as_str()) {
                    continue;
                }
                let a = ((e.t - from) / bucket_s).max(0.0) as usize;
                let b = (((e.t - from + LOSS_WINDOW_S) / bucket_s) as usize).min(c.buckets.len());
                let got: u64 = c.buckets.get(a..b).map_or(0, |s| s.iter().sum());
                let expected = (per_bucket * b.saturating_sub(a) as f64).round() as u64;
                losses.push(NicLoss { n: f.n, t: e.t, domain: f.domain.clone(), kind: f.kind.clone(), lost: expected.saturating_sub(got) });
            }
        }

        // The pass criteria.
        let mut failures = Vec::new();
        if let Some(why) = &i.kernel_died {
            failures.push(format!("the kernel died: {why}"));
        }
        let covers = covers(&i.events);
        let gaps: Vec<(String, GapCheck)> = i.series.iter().map(|s| (s.name.clone(), s.check_gaps(super::depends(&s.name), &covers))).collect();
        for (s, (_, g)) in i.series.iter().zip(&gaps) {
            const SHOWN: usize = 3;
            for h in g.failed.iter().take(SHOWN) {
                failures.push(format!(
                    "{}: no success for {:.1} s from t={:.1} s, {:.1} s of it (from t={:.1} s) with no fault in {} (bound {:.0} s)",
                    s.name,
                    h.gap.1 - h.gap.0,
                    h.gap.0,
                    h.len,
                    h.from,
                    super::depends(&s.name).join(", "),
                    g.bound
                ));
            }
            if g.failed.len() > SHOWN {
                failures.push(format!("{}: {} more such gaps (results.json, \"resume\")", s.name, g.failed.len() - SHOWN));
            }
            if s.corrupt_count > 0 {
                let first = s.errors.iter().find(|e| e.corrupt).map_or("", |e| e.cause.as_str());
                failures.push(format!("{}: {} corrupted answers reached the client (first: {first})", s.name, s.corrupt_count));
            }
            if s.total().ok == 0 {
                failures.push(format!("{}: not one success", s.name));
            }
        }
        if !i.fsck_clean {
            failures.push(format!("fsck of the disk image: {}", i.fsck_text.trim()));
        }
        failures.extend(i.durability.iter().map(|d| format!("synced write lost: {d}")));
        match &i.after {
            None => failures.push("the memory counters were not read at the end".into()),
            Some(a) => {
                for (name, b, n) in a.differences(&i.base) {
                    failures.push(format!("{name} did not return: {b} at the start, {n} at the end"));
                }
            }
        }
        if i.injector && i.kernel_died.is_none() {
            for n in tally.unrecovered.iter().filter(|&&n| n < super::SCHEDULED_N) {
                failures.push(format!("fault n={n} has no recovery line"));
            }
        }

        let nfaults: u64 = tally.faults.values().sum();
        let secs = i.secs.max(1) as f64;
        let throughput: BTreeMap<String, f64> = i
            .series
            .iter()
            .map(|s| {
                let t = s.total();
                let v = if s.name == "echo" { t.bytes as f64 } else { t.ok as f64 };
                (s.name.clone(), v / secs)
            })
            .collect();
        let recovery: BTreeMap<String, Value> = tally
            .recoveries
            .iter()
            .map(|(d, v)| {
                let (p50, p99, max) = inject::percentiles(v);
                (d.clone(), json!({"n": v.len(), "p50_us": p50, "p99_us": p99, "max_us": max}))
            })
            .collect();
        let json = json!({
            "passed": failures.is_empty(),
            "failures": failures,
            "secs": i.secs,
            "seed": i.opts.seed,
            "injector": i.injector,
            "inject": i.inject.as_ref().map(|x| x.cmdline()),
            "faults_requested": i.opts.faults,
            "faults_seen": nfaults,
            "faults": tally.faults.iter().map(|((d, k), n)| json!({"domain": d, "kind": k, "n": n})).collect::<Vec<_>>(),
            "recovery": recovery,
            "unrecovered": tally.unrecovered,
            "nic_losses": losses.iter().map(|l| json!({"n": l.n, "t_s": l.t, "domain": l.domain, "kind": l.kind, "lost": l.lost})).collect::<Vec<_>>(),
            "throughput_per_s": {
                "forwarded_pps": throughput.get("forward"), "ping_replies": throughput.get("ping"),
                "http_gets": throughput.get("http"), "echo_bytes": throughput.get("echo"), "rv6_iterations": throughput.get("rv6"),
            },
            "forward": i.forward.as_ref().map(|(c, _, sent)| json!({"sent": sent, "counted": c.total, "verify": c.verify.as_ref().map(|v| json!({
                "frames": v.frames, "good": v.good, "bad_dst_mac": v.bad_dst_mac, "bad_src_mac": v.bad_src_mac, "bad_ttl": v.bad_ttl,
                "bad_checksum": v.bad_checksum, "bad_payload": v.bad_payload, "duplicates": v.duplicates, "first_bad": v.first_bad}))})),
            "workloads": i.series.iter().map(Series::to_json).collect::<Vec<_>>(),
            "resume": gaps.iter().map(|(n, g)| { let mut v = g.to_json(); v["workload"] = json!(n); v["depends_on"] = json!(super::depends(n)); v }).collect::<Vec<_>>(),
            "fault_times_s": faults_at.iter().map(|f| f.0).collect::<Vec<_>>(),
            "counters": {"start": i.base.to_json(), "end": i.after.map(|a| a.to_json()), "start_text": i.base_text, "end_text": i.after_text},
            "inject_totals": i.inject_totals,
            "kernel_died": i.kernel_died,
            "fsck": {"clean": i.fsck_clean, "output": i.fsck_text},
            "durability": i.durability,
            "rv6_launches": i.rv6_launches,
            "serial_log": i.serial_log.as_ref().map(|p| p.display().to_string()),
        });
        let table = table(&i, &tally, &losses, &throughput, &gaps, &failures);
        let svg = plot(&i.series, &faults_at, i.secs);
        Report { json, failures, table, svg }
    }

    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Writes `results.json` and `soak.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), HarnessError> {
        let w = |name: &str, text: String| std::fs::write(dir.join(name), text).map_err(|e| HarnessError::io(format!("writing {}", dir.join(name).display()), e));
        w("results.json", serde_json::to_string_pretty(&self.json).unwrap_or_default())?;
        w("soak.svg", self.svg.clone())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.table)
    }
}

fn table(i: &Inputs<'_>, tally: &Tally, losses: &[NicLoss], thr: &BTreeMap<String, f64>, gaps: &[(String, GapCheck)], failures: &[String]) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(t, "soak: {} s, seed {}, {}", i.secs, i.opts.seed, match (&i.inject, i.injector) {
        (Some(x), true) => format!("injector on: {}", x.cmdline()),
        (Some(_), false) => "NO FAULT INJECTOR IN THIS KERNEL: no faults were injected".into(),
        (None, _) => "no faults requested".into(),
    });
    let _ = writeln!(t, "\nfaults per domain and kind:");
    if tally.faults.is_empty() {
        let _ = writeln!(t, "  (none)");
    }
    for ((d, k), n) in &tally.faults {
        let _ = writeln!(t, "  {d:<14} {k:<8} {n:>6}");
    }
    let _ = writeln!(t, "\nrecovery time per domain (µs):\n  {:<14} {:>6} {:>9} {:>9} {:>9}", "domain", "n", "p50", "p99", "max");
    for (d, v) in &tally.recoveries {
        let (p50, p99, max) = inject::percentiles(v);
        let _ = writeln!(t, "  {d:<14} {:>6} {p50:>9} {p99:>9} {max:>9}", v.len());
    }
    let _ = writeln!(t, "\nframes lost per fault on the forwarding path (NIC drivers virtio-net1/2, forward; {} s window): {}", LOSS_WINDOW_S, if losses.is_empty() { "(no such fault)".to_string() } else { String::new() });
    let mut per: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
    for l in losses {
        per.entry((l.domain.as_str(), l.kind.as_str())).or_default().push(l.lost);
    }
    for ((d, k), v) in &per {
        let (p50, _, max) = inject::percentiles(v);
        let _ = writeln!(t, "  {d:<12} {k:<9} faults {:>5}  lost {:>8} in all, median {p50}, max {max}", v.len(), v.iter().sum::<u64>());
    }
    for l in losses.iter().take(12) {
        let _ = writeln!(t, "    n={:<6} t={:>7.1} s {:<12} {:<9} lost {}", l.n, l.t, l.domain, l.kind, l.lost);
    }
    if losses.len() > 12 {
        let _ = writeln!(t, "    … {} more in results.json", losses.len() - 12);
    }
    let _ = writeln!(t, "\nworkloads:\n  {:<8} {:>10} {:>8} {:>12} {:>8} {:>8} {:>9} {:>6}  {}", "workload", "ok", "failed", "bytes", "errors", "corrupt", "max gap", "bound", "per second");
    for s in &i.series {
        let tot = s.total();
        let rate = thr.get(&s.name).copied().unwrap_or(0.0);
        let per = if s.name == "echo" { format!("{:.0} B/s", rate) } else { format!("{rate:.1} {}/s", s.unit) };
        let _ = writeln!(t, "  {:<8} {:>10} {:>8} {:>12} {:>8} {:>8} {:>8.1}s {:>5.0}s  {per}", s.name, tot.ok, tot.fail, tot.bytes, s.error_count, s.corrupt_count, s.max_gap.0, s.gap_bound);
    }
    let _ = writeln!(
        t,
        "\nresume after faults (a gap fails if it holds a stretch longer than the bound with no fault\n\
         covering the workload's domains; a fault covers from its line to its domain's recovery line):\n  {:<8} {:>9} {:>11} {:>6} {:>14}  {:<6} {}",
        "workload", "max gap", "fault-free", "bound", "covered >bound", "", "domains"
    );
    for (name, g) in gaps {
        let _ = writeln!(
            t,
            "  {name:<8} {:>8.1}s {:>10.1}s {:>5.0}s {:>14}  {:<6} {}",
            g.longest.0,
            g.longest_free.map_or(0.0, |h| h.len),
            g.bound,
            g.excused,
            if g.passed() { "ok" } else { "FAILED" },
            super::depends(name).join(", ")
        );
    }
    let _ = writeln!(t, "\nerrors that reached a client:");
    let mut any = false;
    for s in &i.series {
        for (cause, n) in s.causes().into_iter().take(8) {
            any = true;
            let _ = writeln!(t, "  {:<8} {n:>6} × {cause}", s.name);
        }
    }
    if !any {
        let _ = writeln!(t, "  (none)");
    }
    let _ = writeln!(t, "\nmemory at start → end: {}", match &i.after {
        Some(a) => format!(
            "kernel heap {} → {} B, free frames {} → {}, shared heap {} → {} B, domain heaps {} → {} KiB",
            i.base.kernel_heap_used, a.kernel_heap_used, i.base.frames_free, a.frames_free, i.base.shared_heap_used, a.shared_heap_used, i.base.domain_heaps_kib, a.domain_heaps_kib
        ),
        None => "not read".into(),
    });
    let _ = writeln!(t, "disk: fsck {}; {} slots checked against their last synced write; rv6 workload launched {} times", if i.fsck_clean { "clean" } else { "NOT CLEAN" }, super::series::SLOTS, i.rv6_launches);
    if failures.is_empty() {
        let _ = writeln!(t, "\nsoak: PASSED");
    } else {
        let _ = writeln!(t, "\nsoak: FAILED");
        for f in failures {
            let _ = writeln!(t, "  - {f}");
        }
    }
    t
}

/// One panel per workload (successes per second; bytes per second for echo), faults as
/// red ticks along each panel.
fn plot(series: &[Series], faults: &[(f64, String)], secs: u64) -> String {
    let mut out = String::new();
    let h = 170 * series.len().max(1) as u32 + 40;
    {
        let root = SVGBackend::with_string(&mut out, (900, h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let (title, body) = root.split_vertically(40);
        let _ = title.titled(&format!("Soak: every workload at once, per second (x: seconds since the soak began); {} faults marked (red)", faults.len()), ("sans-serif", 16));
        let panels = body.split_evenly((series.len().max(1), 1));
        let x_max = (secs.max(1) as f64) * 1.02;
        for (s, area) in series.iter().zip(panels.iter()) {
            let echo = s.name == "echo";
            let pts: Vec<(f64, f64)> = s.secs.iter().enumerate().map(|(k, v)| (k as f64 + 0.5, if echo { v.bytes as f64 / 1024.0 } else { v.ok as f64 })).collect();
            let y_max = pts.iter().map(|p| p.1).fold(1.0f64, f64::max) * 1.15;
            let label = if echo { "echo KiB/s".to_string() } else { format!("{} {}/s", s.name, s.unit) };
            let Ok(mut chart) = ChartBuilder::on(area).margin(6).x_label_area_size(22).y_label_area_size(60).build_cartesian_2d(0.0..x_max, 0.0..y_max) else { continue };
            let _ = chart.configure_mesh().disable_x_mesh().light_line_style(WHITE).y_desc(label).y_labels(4).x_labels(10).label_style(("sans-serif", 11)).draw();
            let alpha = if faults.len() > 200 { 0.08 } else { 0.35 };
            let red = RGBColor(0xcc, 0, 0).mix(alpha);
            let _ = chart.draw_series(faults.iter().map(|(t, _)| PathElement::new(vec![(*t, 0.0), (*t, y_max)], red.stroke_width(1))));
            let _ = chart.draw_series(LineSeries::new(pts, RGBColor(0x1f, 0x77, 0xb4).stroke_width(1)));
        }
        let _ = root.present();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_is_svg_with_a_panel_per_workload() {
        let mut a = Series::new("ping", "reply", 15.0);
        let mut b = Series::new("echo", "chunk", 20.0);
        for k in 0..20 {
            a.ok(k as f64, 20, 20 * 64);
            b.ok(k as f64, 5, 40_000);
        }
        let svg = plot(&[a, b], &[(5.0, "kill netstack".into())], 20);
        assert!(svg.starts_with("<svg") && svg.contains("echo KiB/s") && svg.contains("ping reply/s"), "{}", &svg[..svg.len().min(300)]);
    }
}
