//! `frond-bench` (`make bench`): Frond's benchmarks. They print figures; they never pass
//! or fail — the exit status is non-zero only if a run itself broke (no prompt, QEMU did
//! not exit 33, unparsable output).
//!
//! What it measures, one QEMU at a time (never in parallel, so runs do not disturb each
//! other), always under TCG (`Boot::accel`, whatever `FROND_ACCEL` says):
//!
//! 1. **Boot to prompt**: host wall time from spawning QEMU until `frond> ` appears on
//!    the serial port, with an empty command line (the console), then `quit` (must end in
//!    a pass). `FROND_BENCH_BOOTS` boots (default 10) per firmware, qboot and SeaBIOS
//!    alternating, after one unrecorded warm-up boot (cold caches). Also the guest's own
//!    figure from `Frond console ready in N ms.`.
//! 2. **In-kernel micro-benchmarks** (`bench=all`; the kernel prints one
//!    `kbench name=NAME iters=N tsc=T` line per benchmark, reported as it comes):
//!    * 3 runs with `-icount shift=0`, where the guest TSC advances exactly one tick per
//!      guest instruction, so T/N is *instructions per operation*; the runs should agree
//!      exactly, and the spread ((max−min)/min over runs, worst benchmark) is reported;
//!    * 1 plain TCG run: *ns per operation* = T·10⁹ / tsc_hz / N, with tsc_hz from the
//!      kernel's `kbench-info tsc_hz=H` line (host time, so noisy).
//!
//! 3. **Network** (root only; see `frond-bench/net.rs`): forwarding vs Linux, a NIC driver
//!    crash under forwarding, a stack crash under ping and HTTP, and forwarding over QEMU's
//!    igb (Intel 82576) NICs vs Linux's own igb driver.
//!
//! 4. **Storage** (see `frond-bench/storage.rs` and `docs/storage.md`): sequential read and
//!    write (4 KiB and 64 KiB requests) and file create+delete on virtio-blk and on the RAM
//!    disk, against the Linux guest's `O_DIRECT` and ext2 figures on the same disk.
//!
//! `FROND_BENCH_ONLY=a,b,…` runs only the named sections: `boot`, `kbench`, `forward`,
//! `crash-nic`, `crash-stack`, `igb` (`net` = the last four), `storage`; such a partial run writes
//! `results-partial.json` instead of `results.json`. The packet tools (`frond-pktgen`,
//! `frond-pktcount`) must sit next to this executable: `make bench` builds them.
//!
//! Output: tables on stdout, then the paths of what it wrote under `target/bench/`:
//! * `results.json`: a flat JSON array of records
//!   `{"bench", "variant", "metric", "value", "unit", "samples"}`, where `value` is the
//!   median of `samples` (all raw observations, in run order). Records:
//!   - `boot_to_prompt` / `qboot`|`seabios` / `host_wall` (ms) and
//!     `guest_console_ready` (ms; omitted if the kernel did not print it);
//!   - `<benchmark>` / `icount` / `instructions_per_op` (instructions; one sample per run);
//!   - `<benchmark>` / `tcg` / `time_per_op` (ns; one sample);
//!   - `kbench` / `icount` / `max_spread` (%, no samples) and `kbench` / `tcg` / `tsc_hz` (Hz).
//! * `boot-time.svg`: boot-to-prompt samples per firmware (dots, min–max, median);
//! * `kbench.svg`: instructions per operation per micro-benchmark;
//! * `forward.svg` (and `forward-igb.svg`): forwarded pps per batch size, Frond against
//!   Linux, median bars with min–max whiskers; `crash-nic.svg`, `crash-stack.svg`;
//! * `storage-throughput.svg`, `storage-instructions.svg`: the storage section's MB/s
//!   and guest ns per KiB per configuration (records `storage_*`, see `frond-bench/storage.rs`).
//!
//! The charts are drawn with `plotters` (SVG backend, see `frond-bench/svg.rs`).
//!
//! Serial logs of failed runs stay in `target/qemu-logs/` (`bench-*.log`).

#![forbid(unsafe_code)]

#[path = "frond-bench/svg.rs"]
mod svg;
#[path = "frond-bench/net.rs"]
mod net;
#[path = "frond-bench/storage.rs"]
mod storage;
#[path = "frond-bench/rv6.rs"]
mod rv6;

use std::fmt::Write as _;
use std::fs;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use frond_tests::qemu::workspace_root;
use frond_tests::serial::{self, Kbench};
use frond_tests::{Accel, Boot, Firmware};

const PROMPT: &str = "frond> ";
const DEFAULT_BOOTS: usize = 10;
const ICOUNT_RUNS: usize = 3;
/// Deadline of one whole QEMU run.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const PROMPT_TIMEOUT: Duration = Duration::from_secs(30);
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRMWARES: [Firmware; 2] = [Firmware::Qboot, Firmware::SeaBios];

/// One row of `results.json`.
struct Record {
    bench: String,
    variant: String,
    metric: &'static str,
    value: f64,
    unit: &'static str,
    samples: Vec<f64>,
}

impl Record {
    fn new(bench: &str, variant: &str, metric: &'static str, unit: &'static str) -> Record {
        Record {
            bench: bench.to_string(),
            variant: variant.to_string(),
            metric,
            value: f64::NAN,
            unit,
            samples: Vec::new(),
        }
    }

    /// `value` = median of `samples`.
    fn samples(mut self, samples: Vec<f64>) -> Record {
        self.value = Stats::of(&samples).median;
        self.samples = samples;
        self
    }

    fn value(mut self, value: f64) -> Record {
        self.value = value;
        self
    }
}

/// Min, median and max of samples (NaNs for none): the harness's one definition.
use frond_tests::fwdbench::Summary as Stats;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `v` with `decimals` decimals, or `-` if it is not a number.
fn fmt(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "-".to_string()
    }
}

fn boots_from_env() -> Result<usize, String> {
    match std::env::var("FROND_BENCH_BOOTS") {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "FROND_BENCH_BOOTS={v:?}: expected a positive integer"
            )),
        },
        _ => Ok(DEFAULT_BOOTS),
    }
}

/// Boots the console with `firmware` under TCG and quits: (host ms to prompt, guest ms).
fn boot_to_prompt(firmware: Firmware) -> Result<(f64, Option<u64>), String> {
    let fw = firmware.as_str();
    let started = Instant::now();
    let mut session = Boot::new()
        .accel(Accel::Tcg)
        .firmware(firmware)
        .name(format!("bench-boot-{fw}"))
        .timeout(RUN_TIMEOUT)
        .try_spawn()
        .map_err(|e| format!("boot with {fw}: {e}"))?;
    let text = session
        .expect(PROMPT, PROMPT_TIMEOUT)
        .map_err(|e| format!("boot with {fw}: no prompt: {e}"))?;
    let host = ms(started.elapsed());
    session
        .send(b"quit\n")
        .map_err(|e| format!("boot with {fw}: {e}"))?;
    let out = session.wait(QUIT_TIMEOUT);
    if !out.exit.is_pass() {
        return Err(format!(
            "boot with {fw}: `quit` did not end in a pass\n{}",
            out.report()
        ));
    }
    Ok((host, serial::parse_console_ready_ms(&text)))
}

/// One `bench=all` run under TCG (with `-icount shift=0` if `icount`).
fn kbench_run(icount: bool) -> Result<Kbench, String> {
    let variant = if icount { "icount" } else { "tcg" };
    let mut boot = Boot::new()
        .accel(Accel::Tcg)
        .cmdline("bench=all")
        .name(format!("bench-kbench-{variant}"))
        .timeout(RUN_TIMEOUT);
    if icount {
        boot = boot.qemu_args(["-icount", "shift=0"]);
    }
    let out = boot
        .try_run()
        .map_err(|e| format!("bench=all ({variant}): {e}"))?;
    if !out.exit.is_pass() {
        return Err(format!(
            "bench=all ({variant}) did not pass\n{}",
            out.report()
        ));
    }
    let k = serial::parse_kbench(&out.serial)
        .map_err(|e| format!("bench=all ({variant}): {e}\n{}", out.report()))?;
    if !k.done || k.results.is_empty() {
        return Err(format!(
            "bench=all ({variant}): no results or no `kbench: done`\n{}",
            out.report()
        ));
    }
    Ok(k)
}

/// Benchmark names in first-seen order across `runs`.
fn bench_names<'a>(runs: impl IntoIterator<Item = &'a Kbench>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in runs.into_iter().flat_map(|k| &k.results) {
        if !names.contains(&r.name) {
            names.push(r.name.clone());
        }
    }
    names
}

/// TSC ticks per operation of `name` in `run`, if it ran.
fn per_op(run: &Kbench, name: &str) -> Option<f64> {
    let r = run.results.iter().find(|r| r.name == name)?;
    Some(r.tsc as f64 / r.iters as f64)
}

/// (max − min) / min in percent; 0 for identical samples, infinite if a sample is missing.
fn spread_pct(samples: &[f64], expected: usize) -> f64 {
    if samples.len() != expected {
        return f64::INFINITY;
    }
    let s = Stats::of(samples);
    if s.min > 0.0 {
        (s.max - s.min) / s.min * 100.0
    } else if s.max == s.min {
        0.0
    } else {
        f64::INFINITY
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number (rounded to 3 decimals), or `null` if not finite.
fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{}", (v * 1000.0).round() / 1000.0)
    } else {
        "null".to_string()
    }
}

fn to_json(records: &[Record]) -> String {
    let mut out = String::from("[\n");
    for (i, r) in records.iter().enumerate() {
        let samples: Vec<String> = r.samples.iter().map(|&v| json_num(v)).collect();
        let _ = writeln!(
            out,
            "  {{\"bench\": {}, \"variant\": {}, \"metric\": {}, \"value\": {}, \"unit\": {}, \"samples\": [{}]}}{}",
            json_str(&r.bench),
            json_str(&r.variant),
            json_str(r.metric),
            json_num(r.value),
            json_str(r.unit),
            samples.join(", "),
            if i + 1 < records.len() { "," } else { "" }
        );
    }
    out.push_str("]\n");
    out
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("frond-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let only = Sections::from_env()?;
    let mut records = Vec::new();
    let mut table = String::new();
    let mut svgs: Vec<(&str, String)> = Vec::new();
    if only.boot {
        boot_section(&mut records, &mut table, &mut svgs)?;
    }
    if only.kbench {
        kbench_section(&mut records, &mut table, &mut svgs)?;
    }

    // 3. Network: forwarding vs Linux, crashes under traffic (needs root: namespaces).
    if only.any_net() {
        if frond_tests::net::can_manage_netns() {
            svgs.extend(net::run(&only, &mut records, &mut table)?.svgs);
        } else {
            let _ = writeln!(table, "\nnetwork benchmarks skipped: they need root (network namespaces and taps)");
            frond_tests::skipped("frond-bench network benchmarks", "need root (network namespaces and taps)");
        }
    }

    // 4. Storage: Frond's file system and block drivers against the Linux guest.
    if only.storage {
        svgs.extend(storage::run(&mut records, &mut table)?);
    }

    // 5. rv6: system calls, pipes and the file system through rv6.
    if only.rv6 {
        rv6::run(&mut records, &mut table)?;
    }

    // 6. The data-path targets, from the records above.
    targets_section(&mut records, &mut table);

    // 7. Files. A partial run (FROND_BENCH_ONLY) never overwrites the full results.
    let dir = workspace_root().join("target").join("bench");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let write = |name: &str, text: String| -> Result<PathBuf, String> {
        let path = dir.join(name);
        fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    };
    let json = if only.is_all() { "results.json" } else { "results-partial.json" };
    let mut paths = vec![write(json, to_json(&records))?];
    for (name, svg) in svgs {
        paths.push(write(name, svg)?);
    }
    print!("{table}");
    println!();
    for p in paths {
        println!("{}", p.display());
    }
    Ok(())
}

/// Which parts to run: `FROND_BENCH_ONLY`, a comma-separated list of section names
/// (`boot`, `kbench`, `forward`, `crash-nic`, `crash-stack`, `igb`; `net` = the last four;
/// `storage`); unset or empty = everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sections {
    pub boot: bool,
    pub kbench: bool,
    pub forward: bool,
    pub crash_nic: bool,
    pub crash_stack: bool,
    /// Forwarding over igb NICs, Frond vs Linux.
    pub igb: bool,
    pub storage: bool,
    pub rv6: bool,
}

impl Sections {
    const ALL: Sections = Sections { boot: true, kbench: true, forward: true, crash_nic: true, crash_stack: true, igb: true, storage: true, rv6: true };
    const NAMES: &str = "boot, kbench, forward, crash-nic, crash-stack, igb, net, storage, rv6";

    fn from_env() -> Result<Sections, String> {
        Sections::parse(&std::env::var("FROND_BENCH_ONLY").unwrap_or_default())
    }

    fn parse(spec: &str) -> Result<Sections, String> {
        if spec.trim().is_empty() {
            return Ok(Sections::ALL);
        }
        let mut s = Sections { boot: false, kbench: false, forward: false, crash_nic: false, crash_stack: false, igb: false, storage: false, rv6: false };
        for name in spec.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "boot" => s.boot = true,
                "kbench" => s.kbench = true,
                "forward" => s.forward = true,
                "crash-nic" => s.crash_nic = true,
                "crash-stack" => s.crash_stack = true,
                "igb" => s.igb = true,
                "net" => (s.forward, s.crash_nic, s.crash_stack, s.igb) = (true, true, true, true),
                "storage" => s.storage = true,
                "rv6" => s.rv6 = true,
                other => return Err(format!("FROND_BENCH_ONLY: unknown section {other:?} (known: {})", Sections::NAMES)),
            }
        }
        Ok(s)
    }

    fn is_all(&self) -> bool {
        *self == Sections::ALL
    }

    pub fn any_net(&self) -> bool {
        self.forward || self.crash_nic || self.crash_stack || self.igb
    }
}

/// A data-path target: a figure from the records and the bound it should meet.
struct Target {
    what: &'static str,
    bench: &'static str,
    variant: &'static str,
    metric: &'static str,
    /// The figure must be at most (`true`) or at least (`false`) `bound`.
    at_most: bool,
    bound: f64,
    unit: &'static str,
}

/// The targets of the data-path work (docs/performance.md): guest instructions under
/// `-icount shift=0`, and forwarding against the Linux guest of the same run.
const TARGETS: &[Target] = &[
    Target { what: "proxied null call", bench: "proxy_null_call", variant: "icount", metric: "instructions_per_op", at_most: true, bound: 40.0, unit: "instr" },
    Target { what: "call moving one RRef there and back", bench: "proxy_rref_bounce", variant: "icount", metric: "instructions_per_op", at_most: true, bound: 60.0, unit: "instr" },
    Target { what: "forwarding via NIC shadows, batch 32", bench: "fwd_null_b32", variant: "icount", metric: "instructions_per_op", at_most: true, bound: 100.0, unit: "instr/pkt" },
    Target { what: "forwarding via NIC shadows, batch 1", bench: "fwd_null_b1", variant: "icount", metric: "instructions_per_op", at_most: true, bound: 400.0, unit: "instr/pkt" },
    Target { what: "small-domain restart", bench: "domain_restart", variant: "icount", metric: "instructions_per_op", at_most: true, bound: 100_000.0, unit: "instr" },
    Target { what: "virtio-net forwarding, batch 32 vs Linux", bench: "forward", variant: "frond_batch32", metric: "ratio_to_linux", at_most: false, bound: 4.0, unit: "x" },
    Target { what: "virtio-net forwarding, batch 1 vs Linux", bench: "forward", variant: "frond_batch1", metric: "ratio_to_linux", at_most: false, bound: 2.0, unit: "x" },
    Target { what: "frames lost in the guest, batch 32", bench: "forward", variant: "frond_batch32", metric: "lost_in_guest", at_most: true, bound: 0.5, unit: "%" },
    Target { what: "frames lost in the guest, batch 8", bench: "forward", variant: "frond_batch8", metric: "lost_in_guest", at_most: true, bound: 0.5, unit: "%" },
    Target { what: "frames lost in the guest, batch 1", bench: "forward", variant: "frond_batch1", metric: "lost_in_guest", at_most: true, bound: 0.5, unit: "%" },
];

/// Prints every target with the figure measured in this run (`-` for sections that did
/// not run) and records `target` / `<bench>.<variant>.<metric>` / `met` (1 or 0).
fn targets_section(records: &mut Vec<Record>, table: &mut String) {
    let find = |b: &str, v: &str, m: &str| records.iter().find(|r| r.bench == b && r.variant == v && r.metric == m).map(|r| r.value);
    let linux = find("forward", "linux", "rx_pps");
    let _ = writeln!(
        table,
        "\nData-path targets (instructions: median of the -icount runs; forwarding: median of the windows)\n\
         {:<42} {:>16} {:>18} {:>5}",
        "target", "measured", "goal", "met"
    );
    let mut met_records = Vec::new();
    for t in TARGETS {
        let v = find(t.bench, t.variant, t.metric).filter(|v| v.is_finite());
        let goal = format!("{} {}", if t.at_most { "≤" } else { "≥" }, fmt(t.bound, if t.bound < 10.0 { 1 } else { 0 }));
        let (shown, met) = match v {
            Some(v) => {
                let met = if t.at_most { v <= t.bound } else { v >= t.bound };
                met_records.push(Record::new("target", &format!("{}.{}.{}", t.bench, t.variant, t.metric), "met", "bool").value(met as u8 as f64));
                (format!("{} {}", fmt(v, if v < 10.0 { 2 } else { 0 }), t.unit), if met { "yes" } else { "NO" })
            }
            None => ("-".to_string(), "-"),
        };
        let _ = writeln!(table, "{:<42} {:>16} {:>18} {:>5}", t.what, shown, format!("{goal} {}", t.unit), met);
    }
    if let (Some(l), Some(b32), Some(b1)) = (linux, find("forward", "frond_batch32", "rx_pps"), find("forward", "frond_batch1", "rx_pps")) {
        let _ = writeln!(table, "(Linux guest {l:.0} pps, Frond batch 32 {b32:.0} pps, batch 1 {b1:.0} pps in this run)");
    }
    records.extend(met_records);
}

/// 1. Boot to prompt.
fn boot_section(records: &mut Vec<Record>, table: &mut String, svgs: &mut Vec<(&str, String)>) -> Result<(), String> {
    let boots = boots_from_env()?;
    eprintln!("frond-bench: warm-up boot, then {boots} boots each with qboot and SeaBIOS (TCG)");
    boot_to_prompt(Firmware::Qboot)?;
    let mut host: Vec<Vec<f64>> = vec![Vec::new(); FIRMWARES.len()];
    let mut guest: Vec<Vec<f64>> = vec![Vec::new(); FIRMWARES.len()];
    let progress = std::io::stderr().is_terminal();
    for i in 0..boots {
        for (k, &fw) in FIRMWARES.iter().enumerate() {
            let (h, g) = boot_to_prompt(fw)?;
            host[k].push(h);
            guest[k].extend(g.map(|g| g as f64));
        }
        if progress {
            eprint!("\rfrond-bench: boot round {}/{boots}", i + 1);
        }
    }
    if progress {
        eprintln!();
    }
    let _ = writeln!(
        table,
        "Boot to `{PROMPT}` under TCG ({boots} boots per firmware; host wall time from spawn)\n\
         {:<10} {:>10} {:>10} {:>10}   {:>20}",
        "firmware", "min ms", "median ms", "max ms", "guest median ms"
    );
    for (k, fw) in FIRMWARES.iter().enumerate() {
        let h = Stats::of(&host[k]);
        let g = Stats::of(&guest[k]);
        let _ = writeln!(
            table,
            "{:<10} {:>10} {:>10} {:>10}   {:>20}",
            fw.as_str(),
            fmt(h.min, 1),
            fmt(h.median, 1),
            fmt(h.max, 1),
            fmt(g.median, 0)
        );
        records.push(
            Record::new("boot_to_prompt", fw.as_str(), "host_wall", "ms").samples(host[k].clone()),
        );
        if !guest[k].is_empty() {
            records.push(
                Record::new("boot_to_prompt", fw.as_str(), "guest_console_ready", "ms")
                    .samples(guest[k].clone()),
            );
        }
    }
    let _ = writeln!(
        table,
        "(guest = the kernel's own `Frond console ready in N ms.`)\n"
    );

    let groups: Vec<(String, Vec<f64>)> = FIRMWARES
        .iter()
        .zip(&host)
        .map(|(fw, s)| (fw.as_str().to_string(), s.clone()))
        .collect();
    svgs.push((
        "boot-time.svg",
        svg::strip_plot(
            &format!("Frond: boot to `{}` under QEMU TCG ({boots} boots each)", PROMPT.trim()),
            "host wall time, spawn to prompt (ms)",
            &groups,
        ),
    ));
    Ok(())
}

/// 2. In-kernel micro-benchmarks.
fn kbench_section(records: &mut Vec<Record>, table: &mut String, svgs: &mut Vec<(&str, String)>) -> Result<(), String> {
    eprintln!(
        "frond-bench: bench=all, {ICOUNT_RUNS} runs with -icount shift=0 and 1 plain TCG run"
    );
    let icount: Vec<Kbench> = (0..ICOUNT_RUNS)
        .map(|_| kbench_run(true))
        .collect::<Result<_, _>>()?;
    let tcg = kbench_run(false)?;
    let tsc_hz = tcg
        .tsc_hz
        .ok_or("bench=all (tcg): the kernel printed no `kbench-info tsc_hz=`")?;
    let names = bench_names(icount.iter().chain([&tcg]));
    let _ = writeln!(
        table,
        "In-kernel micro-benchmarks (bench=all)\n{:<22} {:>8} {:>20} {:>14}",
        "benchmark", "iters", "instructions/op *", "ns/op (TCG)"
    );
    let mut worst_spread = 0.0f64;
    let mut bars = Vec::new();
    for name in &names {
        let instr: Vec<f64> = icount.iter().filter_map(|k| per_op(k, name)).collect();
        let ns = per_op(&tcg, name).map(|t| t * 1e9 / tsc_hz as f64);
        let iters = icount
            .iter()
            .chain([&tcg])
            .find_map(|k| k.results.iter().find(|r| &r.name == name))
            .map_or(0, |r| r.iters);
        worst_spread = worst_spread.max(spread_pct(&instr, ICOUNT_RUNS));
        let median = Stats::of(&instr).median;
        let _ = writeln!(
            table,
            "{:<22} {:>8} {:>20} {:>14}",
            name,
            iters,
            fmt(median, 1),
            fmt(ns.unwrap_or(f64::NAN), 1)
        );
        if median.is_finite() {
            bars.push((name.clone(), median));
        }
        records.push(
            Record::new(name, "icount", "instructions_per_op", "instructions").samples(instr),
        );
        if let Some(ns) = ns {
            records.push(Record::new(name, "tcg", "time_per_op", "ns").samples(vec![ns]));
        }
    }
    let repeatable = worst_spread == 0.0;
    let _ = writeln!(
        table,
        "* median of {ICOUNT_RUNS} runs under -icount shift=0 (guest TSC = instructions executed)\n\
         repeatable: {} (max spread {}%)\n\
         TCG tsc_hz = {tsc_hz}",
        if repeatable { "yes" } else { "no" },
        if worst_spread.is_finite() {
            fmt(worst_spread, 2)
        } else {
            "inf: a benchmark is missing from some run".to_string()
        }
    );
    records.push(Record::new("kbench", "icount", "max_spread", "%").value(worst_spread));
    records.push(Record::new("kbench", "tcg", "tsc_hz", "Hz").value(tsc_hz as f64));

    svgs.push((
        "kbench.svg",
        svg::hbar_chart("Frond in-kernel micro-benchmarks (-icount shift=0)", "guest instructions per operation", &bars),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats() {
        let s = Stats::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert!(Stats::of(&[]).median.is_nan());
    }

    #[test]
    fn sections() {
        assert_eq!(Sections::parse("").unwrap(), Sections::ALL);
        assert!(Sections::parse(" ").unwrap().is_all());
        let net = Sections::parse("net").unwrap();
        assert!(net.any_net() && !net.boot && !net.kbench && !net.is_all());
        let s = Sections::parse("kbench, crash-nic").unwrap();
        assert!(s.kbench && s.crash_nic && !s.boot && !s.forward && !s.crash_stack && !s.igb);
        let igb = Sections::parse("igb").unwrap();
        assert!(igb.igb && igb.any_net() && !igb.forward && !igb.is_all());
        assert!(Sections::parse("boot,nope").unwrap_err().contains("nope"));
        assert_eq!(Sections::parse("boot,kbench,net,storage,rv6").unwrap(), Sections::ALL);
        let st = Sections::parse("storage").unwrap();
        assert!(st.storage && !st.rv6 && !st.any_net() && !st.boot && !st.is_all());
        let r = Sections::parse("rv6").unwrap();
        assert!(r.rv6 && !r.storage && !r.any_net() && !r.is_all());
    }

    #[test]
    fn targets_report_met_missed_and_missing() {
        let mut recs = vec![
            Record::new("proxy_null_call", "icount", "instructions_per_op", "instructions").samples(vec![94.0, 94.0, 94.0]),
            Record::new("domain_restart", "icount", "instructions_per_op", "instructions").samples(vec![46_000.0]),
            Record::new("forward", "frond_batch32", "ratio_to_linux", "x").value(4.5),
        ];
        let mut table = String::new();
        targets_section(&mut recs, &mut table);
        let line = |what: &str| table.lines().find(|l| l.starts_with(what)).unwrap().to_string();
        assert!(line("proxied null call").ends_with("NO"), "{table}");
        assert!(line("small-domain restart").ends_with("yes"), "{table}");
        assert!(line("virtio-net forwarding, batch 32").ends_with("yes"), "{table}");
        assert!(line("forwarding via NIC shadows, batch 1").ends_with("-"), "{table}");
        let met: Vec<f64> = recs.iter().filter(|r| r.bench == "target").map(|r| r.value).collect();
        assert_eq!(met, [0.0, 1.0, 1.0]);
    }

    #[test]
    fn spread() {
        assert_eq!(spread_pct(&[5.0, 5.0, 5.0], 3), 0.0);
        assert!((spread_pct(&[100.0, 101.0, 100.5], 3) - 1.0).abs() < 1e-9);
        assert!(spread_pct(&[5.0, 5.0], 3).is_infinite());
    }

    #[test]
    fn json_is_escaped_and_flat() {
        let recs = [
            Record::new("a\"b\\c\n", "v", "m", "ms").samples(vec![1.0, 2.5, 3.0004]),
            Record::new("k", "v", "m", "%").value(f64::INFINITY),
        ];
        let j = to_json(&recs);
        assert_eq!(
            j,
            "[\n  {\"bench\": \"a\\\"b\\\\c\\n\", \"variant\": \"v\", \"metric\": \"m\", \
             \"value\": 2.5, \"unit\": \"ms\", \"samples\": [1, 2.5, 3]},\n  \
             {\"bench\": \"k\", \"variant\": \"v\", \"metric\": \"m\", \"value\": null, \
             \"unit\": \"%\", \"samples\": []}\n]\n"
        );
        assert_eq!(json_str("\u{1}"), "\"\\u0001\"");
    }
}
