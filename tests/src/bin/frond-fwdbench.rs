//! `frond-fwdbench`: the forwarding benchmark (`frond_tests::fwdbench`) for one guest,
//! printing one JSON object on stdout with the forwarded packets per second of each
//! window and their min/median/max. Progress goes to stderr.
//!
//! ```text
//! frond-fwdbench [--guest linux|frond] [--batch N] [--windows W] [--seconds S]
//!                [--trace-rate PPS] [--append ARGS]
//! ```
//!
//! * `linux` (default): the baseline guest; built first with `scripts/linux-guest.sh` if
//!   `target/linux-guest/` lacks it (needs apt access the first time).
//! * `frond`: Frond's forwarder with `fwd.batch=N` (default 32), from the kernel and boot
//!   module `FROND_KERNEL`/`FROND_BOOT_MODULE` name (`make build` output by default).
//! * `--append ARGS`: more of Frond's command line, e.g. `fwd.idle=4`.
//! * `--trace-rate PPS`: instead of the windows, one paced run of S seconds (default 10)
//!   whose 10 ms buckets are printed (`Rig::trace`, nothing done to the guest meanwhile).
//!
//! Always under TCG (as `frond-bench`), whatever `FROND_ACCEL` says; firmware as the
//! harness chooses. Needs root (namespaces, taps) and the sibling binaries
//! `frond-pktgen` and `frond-pktcount` (built with this one). Never pass/fail: the exit
//! status is non-zero only if the run itself broke.

#![forbid(unsafe_code)]

use std::process::{Command, ExitCode};
use std::time::Duration;

use serde_json::json;

use frond_tests::fwdbench::{self, FwdOptions, Guest, DEFAULT_WINDOW, DEFAULT_WINDOWS};
use frond_tests::pkt::FRAME_LEN;
use frond_tests::qemu::workspace_root;
use frond_tests::Accel;

struct Args {
    guest: String,
    batch: usize,
    windows: usize,
    window: Duration,
    trace_rate: Option<u64>,
    /// More of Frond's command line (e.g. `fwd.idle=4`).
    append: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        guest: "linux".into(),
        batch: 32,
        windows: DEFAULT_WINDOWS,
        window: DEFAULT_WINDOW,
        trace_rate: None,
        append: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--guest" => a.guest = value()?,
            "--batch" => {
                a.batch = value()?
                    .parse()
                    .ok()
                    .filter(|b| *b > 0)
                    .ok_or("--batch: expected a positive integer")?
            }
            "--windows" => {
                a.windows = value()?
                    .parse()
                    .ok()
                    .filter(|w| *w > 0)
                    .ok_or("--windows: expected a positive integer")?
            }
            "--seconds" => {
                let s: f64 = value()?
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 3600.0)
                    .ok_or("--seconds: expected a positive number below 3600")?;
                a.window = Duration::from_secs_f64(s);
            }
            "--trace-rate" => {
                a.trace_rate = Some(
                    value()?
                        .parse()
                        .ok()
                        .filter(|r| *r > 0)
                        .ok_or("--trace-rate: expected a positive integer")?,
                )
            }
            "--append" => a.append = value()?,
            "-h" | "--help" => {
                return Err("usage: frond-fwdbench [--guest linux|frond] [--batch N] \
                            [--windows W] [--seconds S] [--trace-rate PPS] [--append ARGS]"
                    .into())
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if a.guest != "linux" && a.guest != "frond" {
        return Err(format!("--guest {:?}: expected linux or frond", a.guest));
    }
    Ok(a)
}

/// The Linux baseline, built with `scripts/linux-guest.sh` if it is missing.
fn linux_guest() -> Result<Guest, String> {
    let guest = Guest::linux_baseline();
    if !guest.kernel.is_file() || !guest.initrd.is_file() {
        let script = workspace_root().join("scripts").join("linux-guest.sh");
        eprintln!(
            "frond-fwdbench: building the Linux guest with {}",
            script.display()
        );
        let status = Command::new(&script)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !status.success() || !guest.kernel.is_file() || !guest.initrd.is_file() {
            return Err(format!("{} failed ({status})", script.display()));
        }
    }
    Ok(guest)
}

fn run(args: &Args) -> Result<serde_json::Value, String> {
    let guest = match args.guest.as_str() {
        "linux" => linux_guest()?,
        _ => {
            let mut g = Guest::frond(args.batch).map_err(|e| e.to_string())?;
            if !args.append.is_empty() {
                g.cmdline = format!("{} {}", g.cmdline, args.append);
            }
            g
        }
    };
    let mut opts = FwdOptions::new().map_err(|e| e.to_string())?;
    opts.accel = Some(Accel::Tcg);
    // Boot + every window (warm-up, window, generator slack, tool start-up) + margin.
    let per_window = opts.warmup + args.window + Duration::from_secs(5);
    opts.lifetime = guest.boot_timeout + per_window * args.windows as u32 + Duration::from_secs(60);
    if let Some(rate) = args.trace_rate {
        eprintln!(
            "frond-fwdbench: {}: trace of {:?} at {rate} pps",
            guest.name, args.window
        );
        let t = fwdbench::trace(&guest, &opts, rate, args.window, |_, _| Ok(()))
            .map_err(|e| format!("{}: {e}", guest.name))?;
        return Ok(json!({
            "guest": guest.name,
            "rate_pps": t.rate,
            "bucket_ms": t.bucket_ms,
            "buckets": t.buckets,
            "total": t.total,
            "tx_packets": t.tx_packets,
            "tx_errors": t.tx_errors,
        }));
    }
    eprintln!(
        "frond-fwdbench: {}: {} window(s) of {:?}, {FRAME_LEN}-byte frames at saturation",
        guest.name, args.windows, args.window
    );
    let frond = args.guest == "frond";
    let mut rig = fwdbench::Rig::start(&guest, &opts).map_err(|e| format!("{}: {e}", guest.name))?;
    let m = rig
        .measure_probed(args.windows, args.window, |s| if frond { console_counters(s) } else { Vec::new() })
        .map_err(|e| format!("{}: {e}", guest.name))?;
    drop(rig);
    for (i, w) in m.windows.iter().enumerate() {
        eprintln!(
            "frond-fwdbench: window {}: {:.0} pps forwarded ({} frames in {:.2} s); \
             generator {:.0} pps, {} send errors",
            i + 1,
            w.rx_pps,
            w.rx_packets,
            w.rx_seconds,
            w.tx_pps,
            w.tx_errors
        );
        eprintln!(
            "frond-fwdbench: window {}: QEMU took {} from tapA (tapA dropped {}), wrote {} to tapB: \
             {:.2} % lost inside the guest; guest counters {:?}",
            i + 1,
            w.accepted,
            w.tap_dropped,
            w.emitted,
            100.0 * w.lost_in_guest(),
            w.guest
        );
    }
    let s = m.summary();
    let round = |v: f64| (v * 10.0).round() / 10.0;
    Ok(json!({
        "guest": m.guest,
        "cmdline": guest.cmdline,
        "frame_bytes": FRAME_LEN,
        "windows": m.windows.len(),
        "window_s": args.window.as_secs_f64(),
        "rx_pps": m.windows.iter().map(|w| round(w.rx_pps)).collect::<Vec<_>>(),
        "rx_packets": m.windows.iter().map(|w| w.rx_packets).collect::<Vec<_>>(),
        "tx_pps": m.windows.iter().map(|w| round(w.tx_pps)).collect::<Vec<_>>(),
        "tx_errors": m.windows.iter().map(|w| w.tx_errors).collect::<Vec<_>>(),
        "accepted": m.windows.iter().map(|w| w.accepted).collect::<Vec<_>>(),
        "emitted": m.windows.iter().map(|w| w.emitted).collect::<Vec<_>>(),
        "tap_dropped": m.windows.iter().map(|w| w.tap_dropped).collect::<Vec<_>>(),
        "lost_in_guest": m.windows.iter().map(|w| w.lost_in_guest()).collect::<Vec<_>>(),
        "guest_counters": m.windows.iter().map(|w| w.guest.clone()).collect::<Vec<_>>(),
        "min_pps": round(s.min),
        "median_pps": round(s.median),
        "max_pps": round(s.max),
    }))
}

/// Frond's `net` console output as `name.counter` → value (as `frond-bench` reads it):
/// every `WORD NUMBER` pair of a line, named after the line's first word.
fn console_counters(s: &mut frond_tests::Session) -> Vec<(String, u64)> {
    if s.send(b"net\r").is_err() {
        return Vec::new();
    }
    let head = s.expect("rounds", Duration::from_secs(10)).unwrap_or_default();
    let tail = s.expect("frond> ", Duration::from_secs(10)).unwrap_or_default();
    let mut out = Vec::new();
    for line in (head + &tail).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = words.first() else { continue };
        for w in words.windows(2).skip(1) {
            if let Ok(v) = w[1].parse::<u64>() {
                if w[0].chars().all(|c| c.is_ascii_alphabetic()) {
                    out.push((format!("{first}.{}", w[0]), v));
                }
            }
        }
    }
    out
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("frond-fwdbench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("frond-fwdbench: error: {e}");
            ExitCode::FAILURE
        }
    }
}
