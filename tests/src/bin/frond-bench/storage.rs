//! The storage benchmark of `make bench` (section `storage`; see `docs/storage.md`,
//! "Benchmark").
//!
//! Frond: the workload domain's benchmark (`fsload=bench`, `fs.large=on`): one file of
//! [`HEADLINE_BYTES`] written sequentially in requests of 4 KiB or 64 KiB and synced, then
//! read back, then [`FILES`] files created and deleted; the guest prints
//! `fsload: bench req=R bytes=B write_ns=W read_ns=R files=F create_delete_ns=C`. Once on
//! virtio-blk (`disk=virtio`, a fresh sparse raw image) and once on the RAM disk
//! (`disk=ram`), for each request size.
//!
//! Linux: the baseline guest of `scripts/linux-guest.sh` with `frond.mode=blk`, on the same
//! kind of fresh image: the same bytes in the same request sizes on the raw device with
//! `O_DIRECT` (busybox `dd`), then in a file on ext2, then the same number of files created
//! and deleted on ext2 (one line per figure, `linux-guest: blk op=… ns=… idle_ns=…`).
//!
//! Every boot gets identical QEMU flags: the harness's standard ones (TCG, 256 MiB) plus the
//! same virtio-blk disk ([`disk_args`]; Frond's RAM-disk runs have it attached too, unused).
//! Rounds are interleaved (each round boots every Frond configuration, then Linux); MB/s
//! come from [`DEFAULT_ROUNDS`] rounds under plain TCG, where the guests' clocks follow the
//! host's, and the instruction figures from one more boot each under `-icount shift=0`,
//! where a busy guest nanosecond is one instruction (an idle one still passes with the
//! host's clock: see `docs/storage.md`).
//!
//! `FROND_BENCH_STORAGE_ROUNDS` (default 3) and `FROND_BENCH_STORAGE_BYTES` (default and
//! most 32 MiB; a smaller value is a quick run and the table says so) change the amounts.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use frond_tests::fwdbench::Guest;
use frond_tests::qemu::{disk_args, workspace_root};
use frond_tests::{Accel, Boot, Exit, Outcome};

use super::{fmt, Record, Stats};

/// The file size of the headline figures (the issue's "at least 32 MiB").
pub const HEADLINE_BYTES: u64 = 32 << 20;
/// The virtio-blk image: room for the file, the file system's metadata and log.
const IMAGE_BYTES: u64 = 128 << 20;
pub const FILES: u32 = 200;
pub const REQS: [u32; 2] = [4096, 65536];
pub const DEFAULT_ROUNDS: usize = 3;
/// A Frond TCG boot whose TSC calibration is further than this from the median of all of
/// them is re-run: Frond's clock is the TSC calibrated once against the PIT at boot, and a
/// host stall during that window under TCG inflates it (seen: a boot measuring everything
/// 6–9× too fast).
const TSC_TOLERANCE: f64 = 0.02;
/// Deadline of one boot (under `-icount` the guests run a few times slower than plain TCG).
const BOOT_TIMEOUT: Duration = Duration::from_secs(900);
/// How long `df`, `threads` and `quit` may take once the workload is done.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    Virtio,
    Ram,
}

impl Disk {
    fn key(self) -> &'static str {
        match self {
            Disk::Virtio => "virtio",
            Disk::Ram => "ram",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Disk::Virtio => "virtio-blk",
            Disk::Ram => "RAM disk",
        }
    }
}

const DISKS: [Disk; 2] = [Disk::Virtio, Disk::Ram];

fn kib(req: u32) -> String {
    format!("{}K", req / 1024)
}

/// MB/s (10⁶ bytes per second) of `bytes` in `ns`.
fn mb_s(bytes: u64, ns: f64) -> f64 {
    if ns > 0.0 {
        bytes as f64 * 1e3 / ns
    } else {
        f64::NAN
    }
}

/// The `key=value` tokens after `prefix` on the first line containing it.
fn fields<'a>(line: &'a str, prefix: &str) -> Option<Vec<(&'a str, &'a str)>> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    Some(rest.split_whitespace().filter_map(|t| t.split_once('=')).collect())
}

fn num(fields: &[(&str, &str)], key: &str, line: &str) -> Result<u64, String> {
    let v = fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v).ok_or_else(|| format!("no {key}= in {line:?}"))?;
    v.trim_end_matches('\r').parse().map_err(|_| format!("{key}={v:?} is not a number in {line:?}"))
}

/// The block driver's counters from the console's `df` (`driver: N reads (B blocks), …`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DriverStats {
    pub reads: u64,
    pub read_blocks: u64,
    pub writes: u64,
    pub written_blocks: u64,
    pub flushes: u64,
    pub kicks: u64,
    pub irqs: u64,
    /// The file system's commits (`df`'s `fs: N commits`), if printed.
    pub commits: Option<u64>,
}

impl DriverStats {
    /// The counters of what happened after `base` (saturating).
    pub fn since(&self, base: &DriverStats) -> DriverStats {
        DriverStats {
            reads: self.reads.saturating_sub(base.reads),
            read_blocks: self.read_blocks.saturating_sub(base.read_blocks),
            writes: self.writes.saturating_sub(base.writes),
            written_blocks: self.written_blocks.saturating_sub(base.written_blocks),
            flushes: self.flushes.saturating_sub(base.flushes),
            kicks: self.kicks.saturating_sub(base.kicks),
            irqs: self.irqs.saturating_sub(base.irqs),
            commits: self.commits.zip(base.commits).map(|(a, b)| a.saturating_sub(b)),
        }
    }
}

/// One Frond boot's results.
#[derive(Debug, Clone, PartialEq)]
pub struct FrondRun {
    pub req: u64,
    pub bytes: u64,
    pub write_ns: u64,
    pub read_ns: u64,
    pub files: u64,
    pub create_delete_ns: u64,
    pub driver: Option<DriverStats>,
    /// CPU time of the idle thread over the whole boot (`threads`), in ms.
    pub idle_ms: Option<u64>,
    /// The kernel's TSC calibration (`TSC N MHz` at boot): its clock.
    pub tsc_mhz: Option<u64>,
}

pub const FSLOAD_PREFIX: &str = "fsload: bench ";

/// Parses a Frond boot's serial output: the bench line (required), `df`'s driver line and
/// `threads`' idle row (optional).
pub fn parse_frond(serial: &str) -> Result<FrondRun, String> {
    if let Some(l) = serial.lines().find(|l| l.contains("fsload: FAILED") || l.contains("fsload: stopped")) {
        return Err(format!("the workload failed: {}", l.trim()));
    }
    let line = serial.lines().find(|l| l.contains(FSLOAD_PREFIX)).ok_or("no `fsload: bench` line")?;
    let f = fields(line, FSLOAD_PREFIX).expect("the line has the prefix");
    let n = |k: &str| num(&f, k, line);
    let mut run = FrondRun {
        req: n("req")?,
        bytes: n("bytes")?,
        write_ns: n("write_ns")?,
        read_ns: n("read_ns")?,
        files: n("files")?,
        create_delete_ns: n("create_delete_ns")?,
        driver: None,
        idle_ms: None,
        tsc_mhz: serial.lines().find_map(|l| l.split_once("TSC ")?.1.split_once(" MHz")?.0.trim().parse().ok()),
    };
    (run.driver, run.idle_ms) = console_figures(serial);
    Ok(run)
}

/// From the console's `df` and `threads`: the block driver's counters and the idle
/// thread's CPU time (ms), if printed.
pub fn console_figures(serial: &str) -> (Option<DriverStats>, Option<u64>) {
    let mut driver = serial.lines().find_map(|l| parse_driver(l.split_once("driver: ")?.1));
    if let Some(d) = &mut driver {
        d.commits = serial.lines().find_map(|l| l.split_once("fs: ")?.1.split_once(" commits")?.0.trim().parse().ok());
    }
    // `threads`: "  id  name  prio state  cpu-ms  switches  stack" rows; the idle thread is id 0.
    let idle = serial.lines().find_map(|l| {
        let t: Vec<&str> = l.split_whitespace().collect();
        (t.len() >= 7 && t[0] == "0" && t[1] == "idle").then(|| t[4].parse().ok()).flatten()
    });
    (driver, idle)
}

/// `N reads (B blocks), N writes (B blocks), N flushes, N errors, N kicks, N irqs`.
fn parse_driver(s: &str) -> Option<DriverStats> {
    let t: Vec<&str> = s.split(|c: char| c.is_whitespace() || "(),".contains(c)).filter(|t| !t.is_empty()).collect();
    let get = |word: &str, nth: usize| -> Option<u64> {
        let i = t.iter().enumerate().filter(|(_, w)| **w == word).nth(nth)?.0;
        t.get(i.checked_sub(1)?)?.parse().ok()
    };
    Some(DriverStats {
        reads: get("reads", 0)?,
        read_blocks: get("blocks", 0)?,
        writes: get("writes", 0)?,
        written_blocks: get("blocks", 1)?,
        flushes: get("flushes", 0)?,
        kicks: get("kicks", 0)?,
        irqs: get("irqs", 0)?,
        commits: None,
    })
}

/// One figure of the Linux guest: `ns` with the cost of starting a process already taken
/// off (see [`parse_linux`]), and the CPU's idle time over the interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinuxFigure {
    pub ns: f64,
    pub idle_ns: f64,
    /// What the disk completed over the interval, if printed.
    pub dev: Option<LinuxDev>,
}

/// Deltas of `/sys/block/vda/stat` over one figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxDev {
    pub reads: u64,
    pub read_kib: u64,
    pub writes: u64,
    pub write_kib: u64,
    pub flushes: u64,
}

/// One Linux boot's results.
#[derive(Debug, Clone, PartialEq)]
pub struct LinuxRun {
    pub bytes: u64,
    /// (op, mode, req) → figure; op is `write`, `read` or `create_delete`, mode `direct`
    /// or `ext2`, req 0 for create_delete.
    pub figures: Vec<((String, String, u64), LinuxFigure)>,
    /// What timing an empty `dd` costs (process start; the minimum of the guest's 3).
    pub overhead_ns: f64,
}

impl LinuxRun {
    pub fn get(&self, op: &str, mode: &str, req: u64) -> Option<LinuxFigure> {
        self.figures.iter().find(|((o, m, r), _)| o == op && m == mode && *r == req).map(|(_, f)| *f)
    }
}

pub const LINUX_PREFIX: &str = "linux-guest: blk op=";

/// Parses the Linux guest's `linux-guest: blk op=…` lines. Every figure is taken as
/// `ns − overhead`, where overhead is the smallest `op=overhead mode=dd` (the time to start
/// and end an empty busybox `dd`: each measured command is one such process start, which
/// Frond's workload, already running, does not pay).
pub fn parse_linux(serial: &str) -> Result<LinuxRun, String> {
    if let Some(l) = serial.lines().find(|l| l.contains("linux-guest: FAILED")) {
        return Err(format!("the Linux guest failed: {}", l.trim()));
    }
    if !serial.contains("linux-guest: blk done") {
        return Err("the Linux guest did not print `linux-guest: blk done`".into());
    }
    let mut raw = Vec::new();
    let mut overhead = f64::INFINITY;
    let mut bytes = 0;
    for line in serial.lines().filter(|l| l.contains(LINUX_PREFIX)) {
        let f = fields(line, "linux-guest: blk ").expect("the line has the prefix");
        let s = |k: &str| f.iter().find(|(key, _)| *key == k).map(|(_, v)| v.trim_end_matches('\r').to_string()).ok_or_else(|| format!("no {k}= in {line:?}"));
        let (op, mode) = (s("op")?, s("mode")?);
        let (req, ns, idle) = (num(&f, "req", line)?, num(&f, "ns", line)? as f64, num(&f, "idle_ns", line)? as f64);
        bytes = num(&f, "bytes", line)?;
        if op == "overhead" {
            if mode == "dd" {
                overhead = overhead.min(ns);
            }
            continue;
        }
        let dev = (|| {
            let n = |k: &str| num(&f, k, line).ok();
            Some(LinuxDev { reads: n("reads")?, read_kib: n("read_kib")?, writes: n("writes")?, write_kib: n("write_kib")?, flushes: n("flushes")? })
        })();
        raw.push(((op, mode, req), LinuxFigure { ns, idle_ns: idle, dev }));
    }
    if !overhead.is_finite() {
        return Err("no `op=overhead mode=dd` line".into());
    }
    let figures = raw
        .into_iter()
        .map(|(k, f)| (k, LinuxFigure { ns: (f.ns - overhead).max(1.0), ..f }))
        .collect::<Vec<_>>();
    if figures.is_empty() {
        return Err("no figures".into());
    }
    Ok(LinuxRun { bytes, figures, overhead_ns: overhead })
}

/// What the section runs with.
#[derive(Debug, Clone)]
struct Plan {
    bytes: u64,
    rounds: usize,
    image: PathBuf,
    linux: Guest,
}

fn env_number(var: &str, default: u64) -> Result<u64, String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| format!("{var}={v:?}: expected a positive integer")),
        _ => Ok(default),
    }
}

/// Builds (or confirms up to date) the Linux guest: the script checks its own outputs'
/// age against itself, so a guest built before `frond.mode=blk` existed is rebuilt.
fn ensure_linux() -> Result<Guest, String> {
    let st = Command::new(workspace_root().join("scripts/linux-guest.sh")).status().map_err(|e| format!("scripts/linux-guest.sh: {e}"))?;
    if !st.success() {
        return Err(format!("scripts/linux-guest.sh failed ({st})"));
    }
    Ok(Guest::linux_baseline())
}

/// A fresh all-zero sparse image (each boot starts from an empty disk).
fn fresh_image(path: &Path) -> Result<(), String> {
    let _ = fs::remove_file(path);
    let f = fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.set_len(IMAGE_BYTES).map_err(|e| format!("cannot size {}: {e}", path.display()))
}

fn boot(plan: &Plan, name: String, icount: bool) -> Result<Boot, String> {
    fresh_image(&plan.image)?;
    let mut b = Boot::new().accel(Accel::Tcg).name(name).timeout(BOOT_TIMEOUT).qemu_args(disk_args(&plan.image, false));
    if icount {
        b = b.qemu_args(["-icount", "shift=0"]);
    }
    Ok(b)
}

fn variant(icount: bool) -> &'static str {
    if icount {
        "icount"
    } else {
        "tcg"
    }
}

/// The Frond command line of one configuration.
pub fn frond_cmdline(disk: Disk, req: u32, bytes: u64) -> String {
    let disk = match disk {
        Disk::Virtio => "disk=virtio".to_string(),
        // The file plus room for the metadata and the log. The RAM disk lives in the
        // membdev domain's heap, which in the 256 MiB guest cannot grow much past 37 MiB.
        Disk::Ram => format!("disk=ram ram.mib={}", (bytes >> 20) + 4),
    };
    format!("{disk} fs.large=on fsload=bench fsload.bytes={bytes} fsload.req={req} fsload.files={FILES}")
}

/// Why storage did not start, if the kernel said so.
fn not_started(serial: &str) -> Option<String> {
    serial.lines().find_map(|l| Some(l[l.find("storage: not started")?..].trim().to_string()))
}

/// A build without the storage domains (the boot module lacks them): Frond is skipped.
fn missing_domains(why: &str) -> bool {
    why.contains("not found in the boot module")
}

enum FrondOutcome {
    Ran(FrondRun),
    /// A build without the storage domains.
    Unavailable(String),
}

fn frond_run(plan: &Plan, disk: Disk, req: u32, icount: bool) -> Result<FrondOutcome, String> {
    let what = format!("frond {} {} ({})", disk.label(), kib(req), variant(icount));
    let mut s = boot(plan, format!("bench-storage-frond-{}-{}-{}", disk.key(), req, variant(icount)), icount)?
        .cmdline(frond_cmdline(disk, req, plan.bytes))
        .try_spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    // Storage starts on a thread of its own, the workload on another: watch the output
    // for the end of the workload (`fsload: done`/`stopped`), or storage refusing to start.
    let log = |s: &frond_tests::Session| s.log_path().map_or("-".into(), |p| p.display().to_string());
    let started = Instant::now();
    loop {
        let serial = s.serial();
        if serial.contains("fsload: done") || serial.contains("fsload: stopped") {
            break;
        }
        if let Some(why) = not_started(&serial) {
            if missing_domains(&why) {
                return Ok(FrondOutcome::Unavailable(why));
            }
            return Err(format!("{what}: {why} (serial log: {})", log(&s)));
        }
        if let Some(exit) = s.exited() {
            return Err(format!("{what}: QEMU ended ({exit}) before the workload did (serial log: {})", log(&s)));
        }
        if started.elapsed() > BOOT_TIMEOUT {
            return Err(format!("{what}: no `fsload: done` within {} s (serial log: {})", BOOT_TIMEOUT.as_secs(), log(&s)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Err(e) = parse_frond(&s.serial()) {
        return Err(format!("{what}: {e} (serial log: {})", log(&s)));
    }
    // Where the time went: the driver's counters and the threads' CPU time.
    let _ = s.send(b"df\nthreads\nquit\n");
    let out = s.wait(CONSOLE_TIMEOUT);
    let run = parse_frond(&out.serial).map_err(|e| format!("{what}: {e}"))?;
    if !out.exit.is_pass() {
        eprintln!("frond-bench: {what}: `quit` did not end in a pass ({}); figures kept", out.exit);
    }
    Ok(FrondOutcome::Ran(run))
}

/// What formatting and mounting alone cost (`fs.large=on`, no workload): the driver's
/// counters and the idle thread's time at the console afterwards, taken off a workload
/// boot's in "where Frond's time goes".
fn frond_baseline(plan: &Plan, icount: bool) -> Result<(Option<DriverStats>, Option<u64>), String> {
    let what = format!("frond virtio-blk format+mount only ({})", variant(icount));
    let mut s = boot(plan, format!("bench-storage-frond-virtio-baseline-{}", variant(icount)), icount)?
        .cmdline("disk=virtio fs.large=on")
        .try_spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    s.expect("fs: mounted", BOOT_TIMEOUT).map_err(|e| format!("{what}: {e}"))?;
    let _ = s.send(b"df\nthreads\nquit\n");
    let out = s.wait(CONSOLE_TIMEOUT);
    Ok(console_figures(&out.serial))
}

fn linux_run(plan: &Plan, icount: bool) -> Result<LinuxRun, String> {
    let what = format!("linux ({})", variant(icount));
    let reqs: Vec<String> = REQS.iter().map(u32::to_string).collect();
    let out: Outcome = boot(plan, format!("bench-storage-linux-{}", variant(icount)), icount)?
        .kernel(&plan.linux.kernel)
        .boot_module(&plan.linux.initrd)
        .cmdline(format!("{} frond.mode=blk frond.bytes={} frond.files={FILES} frond.req={}", plan.linux.cmdline, plan.bytes, reqs.join(",")))
        .try_run()
        .map_err(|e| format!("{what}: {e}"))?;
    let run = parse_linux(&out.serial).map_err(|e| format!("{what}: {e}\n{}", out.report()))?;
    // `poweroff -f` ends QEMU with status 0: the expected end (the log is then removed).
    if out.exit == Exit::Error(0) {
        out.assert_exit(Exit::Error(0));
    }
    Ok(run)
}

/// Samples of one configuration.
#[derive(Default)]
struct Series {
    tcg: Vec<FrondRun>,
    icount: Option<FrondRun>,
}

/// Runs the section; returns the SVGs.
pub fn run(records: &mut Vec<Record>, table: &mut String) -> Result<Vec<(&'static str, String)>, String> {
    let bytes = env_number("FROND_BENCH_STORAGE_BYTES", HEADLINE_BYTES)?;
    let rounds = env_number("FROND_BENCH_STORAGE_ROUNDS", DEFAULT_ROUNDS as u64)? as usize;
    // At most the headline size: the RAM disk (file + 4 MiB) cannot grow much past 37 MiB
    // in the 256 MiB guest.
    if bytes % 65536 != 0 || bytes > HEADLINE_BYTES {
        return Err(format!("FROND_BENCH_STORAGE_BYTES={bytes}: expected a multiple of 64 KiB, at most {} MiB", HEADLINE_BYTES >> 20));
    }
    let linux = ensure_linux()?;
    let dir = workspace_root().join("target").join("bench");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let plan = Plan { bytes, rounds, image: dir.join("storage-disk.img"), linux };
    let configs: Vec<(Disk, u32)> = DISKS.iter().flat_map(|&d| REQS.iter().map(move |&r| (d, r))).collect();
    eprintln!(
        "frond-bench: storage, {} MiB per figure: {rounds} rounds × ({} Frond boots + 1 Linux boot) under TCG, then one of each under -icount shift=0",
        bytes >> 20,
        configs.len()
    );
    let mut frond: Vec<Series> = configs.iter().map(|_| Series::default()).collect();
    let mut unavailable: Option<String> = None;
    let mut linux_tcg = Vec::new();
    let mut linux_icount = None;
    let mut baseline = (None, None);
    let mut notes = Vec::new();
    for pass in 0..=rounds {
        let icount = pass == rounds;
        if icount && unavailable.is_none() {
            notes.extend(recheck_clocks(&plan, &configs, &mut frond)?);
        }
        for (i, &(disk, req)) in configs.iter().enumerate() {
            if unavailable.is_some() {
                break;
            }
            eprintln!("frond-bench: storage {}: frond {} {}", if icount { "icount".to_string() } else { format!("round {}/{rounds}", pass + 1) }, disk.label(), kib(req));
            match frond_run(&plan, disk, req, icount)? {
                FrondOutcome::Ran(r) if icount => frond[i].icount = Some(r),
                FrondOutcome::Ran(r) => frond[i].tcg.push(r),
                FrondOutcome::Unavailable(why) => {
                    eprintln!("frond-bench: storage: Frond not measured: {why}");
                    unavailable = Some(why);
                }
            }
        }
        if icount && unavailable.is_none() {
            eprintln!("frond-bench: storage icount: frond virtio-blk, format and mount only");
            baseline = frond_baseline(&plan, true)?;
        }
        eprintln!("frond-bench: storage {}: linux", if icount { "icount".to_string() } else { format!("round {}/{rounds}", pass + 1) });
        let l = linux_run(&plan, icount)?;
        if icount {
            linux_icount = Some(l);
        } else {
            linux_tcg.push(l);
        }
    }
    let _ = fs::remove_file(&plan.image);
    let r = Results { configs, frond, unavailable, baseline, linux_tcg, linux_icount, notes };
    Ok(report(&plan, &r, records, table))
}

/// Replaces the Frond TCG samples whose boot calibrated its TSC more than
/// [`TSC_TOLERANCE`] away from the median of all of them (at most two tries each); returns
/// what it did, for the table.
fn recheck_clocks(plan: &Plan, configs: &[(Disk, u32)], frond: &mut [Series]) -> Result<Vec<String>, String> {
    let all: Vec<f64> = frond.iter().flat_map(|s| s.tcg.iter().filter_map(|r| r.tsc_mhz)).map(|m| m as f64).collect();
    let median = Stats::of(&all).median;
    let off = |r: &FrondRun| r.tsc_mhz.is_some_and(|m| ((m as f64 - median) / median).abs() > TSC_TOLERANCE);
    let mut notes = Vec::new();
    for (i, &(disk, req)) in configs.iter().enumerate() {
        let bad: Vec<u64> = frond[i].tcg.iter().filter(|r| off(r)).filter_map(|r| r.tsc_mhz).collect();
        if bad.is_empty() {
            continue;
        }
        frond[i].tcg.retain(|r| !off(r));
        let mut tries = 0;
        while frond[i].tcg.len() < plan.rounds && tries < 2 * bad.len() {
            tries += 1;
            eprintln!("frond-bench: storage: re-running frond {} {} (TSC calibrated at {bad:?} MHz, median {median:.0})", disk.label(), kib(req));
            if let FrondOutcome::Ran(r) = frond_run(plan, disk, req, false)? {
                if !off(&r) {
                    frond[i].tcg.push(r);
                }
            }
        }
        notes.push(format!(
            "frond {} {}: {} boot(s) calibrated the TSC at {bad:?} MHz against a median of {median:.0}: dropped and re-run ({} samples now)",
            disk.label(),
            kib(req),
            bad.len(),
            frond[i].tcg.len()
        ));
    }
    Ok(notes)
}

fn linux_samples(runs: &[LinuxRun], op: &str, mode: &str, req: u64, bytes: u64) -> Vec<f64> {
    runs.iter().filter_map(|r| r.get(op, mode, req)).map(|f| mb_s(bytes, f.ns)).collect()
}

fn cell(s: &[f64]) -> String {
    let st = Stats::of(s);
    if s.len() > 1 {
        format!("{} [{}–{}]", fmt(st.median, 1), fmt(st.min, 1), fmt(st.max, 1))
    } else {
        fmt(st.median, 1)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

/// Everything the section measured.
struct Results {
    configs: Vec<(Disk, u32)>,
    frond: Vec<Series>,
    /// Why Frond was not measured (a build without the storage domains).
    unavailable: Option<String>,
    /// Format + mount alone on virtio-blk under -icount: driver counters, idle ms.
    baseline: (Option<DriverStats>, Option<u64>),
    linux_tcg: Vec<LinuxRun>,
    linux_icount: Option<LinuxRun>,
    /// Boots re-run and why.
    notes: Vec<String>,
}

fn report(plan: &Plan, res: &Results, records: &mut Vec<Record>, table: &mut String) -> Vec<(&'static str, String)> {
    let (configs, frond, linux_tcg) = (&res.configs[..], &res.frond[..], &res.linux_tcg[..]);
    let (unavailable, linux_icount) = (res.unavailable.as_deref(), res.linux_icount.as_ref());
    let bytes = plan.bytes;
    let kib_total = bytes as f64 / 1024.0;
    let quick = if bytes < HEADLINE_BYTES { format!("  QUICK RUN: {} MiB, below the headline 32 MiB", bytes >> 20) } else { String::new() };
    let _ = writeln!(
        table,
        "\nStorage: sequential write (+ sync) and read of {} MiB, create+delete of {FILES} files{quick}\n\
         TCG, {} rounds interleaved, median [min–max]; MB/s = 10⁶ B/s; Linux: same QEMU flags and disk, minus a process start ({} ms)",
        bytes >> 20,
        plan.rounds,
        fmt(Stats::of(&linux_tcg.iter().map(|r| r.overhead_ns / 1e6).collect::<Vec<_>>()).median, 1)
    );
    let _ = writeln!(
        table,
        "{:<22} {:>22} {:>22}   {:>13} {:>13}",
        "configuration", "write MB/s", "read MB/s", "×O_DIRECT w/r", "×ext2 w/r"
    );
    let mut bars: Vec<(String, f64)> = Vec::new();
    let push = |records: &mut Vec<Record>, bench: &str, variant: &str, samples: Vec<f64>| {
        records.push(Record::new(bench, variant, "throughput", "MB/s").samples(samples));
    };
    let lmed = |op: &str, mode: &str, req: u32| Stats::of(&linux_samples(linux_tcg, op, mode, req as u64, bytes)).median;
    for (i, &(disk, req)) in configs.iter().enumerate() {
        let s = &frond[i];
        let name = format!("frond {} {}", disk.label(), kib(req));
        let variant = format!("frond_{}_req{req}", disk.key());
        if s.tcg.is_empty() {
            let _ = writeln!(table, "{name:<22} {:>22} {:>22}", "-", "-");
            continue;
        }
        let w: Vec<f64> = s.tcg.iter().map(|r| mb_s(r.bytes, r.write_ns as f64)).collect();
        let r: Vec<f64> = s.tcg.iter().map(|r| mb_s(r.bytes, r.read_ns as f64)).collect();
        let (wm, rm) = (Stats::of(&w).median, Stats::of(&r).median);
        let (dw, dr) = (ratio(wm, lmed("write", "direct", req)), ratio(rm, lmed("read", "direct", req)));
        let (ew, er) = (ratio(wm, lmed("write", "ext2", req)), ratio(rm, lmed("read", "ext2", req)));
        let _ = writeln!(
            table,
            "{name:<22} {:>22} {:>22}   {:>6}/{:<6} {:>6}/{:<6}",
            cell(&w),
            cell(&r),
            fmt(dw, 2),
            fmt(dr, 2),
            fmt(ew, 2),
            fmt(er, 2)
        );
        bars.push((format!("write {} frond {}", kib(req), disk.label()), wm));
        bars.push((format!("read {} frond {}", kib(req), disk.label()), rm));
        push(records, "storage_write", &variant, w);
        push(records, "storage_read", &variant, r);
        for (bench, v) in [("storage_write", dw), ("storage_read", dr)] {
            records.push(Record::new(bench, &variant, "ratio_to_linux_direct", "x").value(v));
        }
        for (bench, v) in [("storage_write", ew), ("storage_read", er)] {
            records.push(Record::new(bench, &variant, "ratio_to_linux_ext2", "x").value(v));
        }
    }
    for mode in ["direct", "ext2"] {
        for &req in &REQS {
            let w = linux_samples(linux_tcg, "write", mode, req as u64, bytes);
            let r = linux_samples(linux_tcg, "read", mode, req as u64, bytes);
            let label = if mode == "direct" { "O_DIRECT" } else { "ext2" };
            let _ = writeln!(table, "{:<22} {:>22} {:>22}", format!("linux {label} {}", kib(req)), cell(&w), cell(&r));
            bars.push((format!("write {} linux {label}", kib(req)), Stats::of(&w).median));
            bars.push((format!("read {} linux {label}", kib(req)), Stats::of(&r).median));
            push(records, "storage_write", &format!("linux_{mode}_req{req}"), w);
            push(records, "storage_read", &format!("linux_{mode}_req{req}"), r);
        }
    }
    if let Some(why) = unavailable {
        let _ = writeln!(table, "Frond not measured: {why}");
    }
    for n in &res.notes {
        let _ = writeln!(table, "{n}");
    }

    // Create + delete.
    let _ = write!(table, "create+delete of {FILES} files, files/s:");
    for (i, &(disk, req)) in configs.iter().enumerate() {
        let rates: Vec<f64> = frond[i].tcg.iter().map(|r| r.files as f64 * 1e9 / r.create_delete_ns.max(1) as f64).collect();
        if !rates.is_empty() {
            let _ = write!(table, "  frond {} ({} run) {}", disk.label(), kib(req), cell(&rates));
            records.push(Record::new("storage_create_delete", &format!("frond_{}_req{req}", disk.key()), "rate", "files/s").samples(rates));
        }
    }
    let lr: Vec<f64> = linux_tcg.iter().filter_map(|r| r.get("create_delete", "ext2", 0)).map(|f| FILES as f64 * 1e9 / f.ns).collect();
    let _ = writeln!(table, "  linux ext2 {}", cell(&lr));
    records.push(Record::new("storage_create_delete", "linux_ext2", "rate", "files/s").samples(lr));

    // Instructions.
    let _ = writeln!(
        table,
        "\nUnder -icount shift=0 (one boot each): guest ns per KiB moved (= instructions, plus any idle\n\
         time, which passes with the host's clock); Linux busy = the same minus its idle+iowait time\n\
         {:<22} {:>10} {:>10} {:>12} {:>12} {:>14}",
        "configuration", "write/KiB", "read/KiB", "busy w/KiB", "busy r/KiB", "create+del/file"
    );
    let mut ibars: Vec<(String, f64)> = Vec::new();
    for (i, &(disk, req)) in configs.iter().enumerate() {
        let Some(r) = &frond[i].icount else { continue };
        let variant = format!("frond_{}_req{req}", disk.key());
        let (w, rd) = (r.write_ns as f64 / (r.bytes as f64 / 1024.0), r.read_ns as f64 / (r.bytes as f64 / 1024.0));
        let cd = r.create_delete_ns as f64 / r.files.max(1) as f64;
        let _ = writeln!(table, "{:<22} {:>10} {:>10} {:>12} {:>12} {:>14}", format!("frond {} {}", disk.label(), kib(req)), fmt(w, 0), fmt(rd, 0), "", "", fmt(cd, 0));
        ibars.push((format!("write {} frond {}", kib(req), disk.label()), w));
        ibars.push((format!("read {} frond {}", kib(req), disk.label()), rd));
        records.push(Record::new("storage_write", &variant, "instructions_per_kib", "instructions").value(w));
        records.push(Record::new("storage_read", &variant, "instructions_per_kib", "instructions").value(rd));
        records.push(Record::new("storage_create_delete", &variant, "instructions_per_file", "instructions").value(cd));
    }
    if let Some(l) = linux_icount {
        for mode in ["direct", "ext2"] {
            for &req in &REQS {
                let per = |op: &str| l.get(op, mode, req as u64).map_or((f64::NAN, f64::NAN), |f| (f.ns / kib_total, (f.ns - f.idle_ns).max(0.0) / kib_total));
                let ((w, wb), (rd, rb)) = (per("write"), per("read"));
                let label = if mode == "direct" { "O_DIRECT" } else { "ext2" };
                let _ = writeln!(
                    table,
                    "{:<22} {:>10} {:>10} {:>12} {:>12}",
                    format!("linux {label} {}", kib(req)),
                    fmt(w, 0),
                    fmt(rd, 0),
                    fmt(wb, 0),
                    fmt(rb, 0)
                );
                ibars.push((format!("write {} linux {label}", kib(req)), w));
                ibars.push((format!("read {} linux {label}", kib(req)), rd));
                let variant = format!("linux_{mode}_req{req}");
                records.push(Record::new("storage_write", &variant, "instructions_per_kib", "instructions").value(w));
                records.push(Record::new("storage_read", &variant, "instructions_per_kib", "instructions").value(rd));
                records.push(Record::new("storage_write", &variant, "busy_instructions_per_kib", "instructions").value(wb));
                records.push(Record::new("storage_read", &variant, "busy_instructions_per_kib", "instructions").value(rb));
            }
        }
        if let Some(f) = l.get("create_delete", "ext2", 0) {
            let cd = f.ns / FILES as f64;
            let _ = writeln!(table, "{:<22} {:>60}", "linux ext2", fmt(cd, 0));
            records.push(Record::new("storage_create_delete", "linux_ext2", "instructions_per_file", "instructions").value(cd));
        }
    }

    // Where Frond's time goes: the file system alone (RAM disk) against the whole path
    // (virtio-blk), and what the driver did.
    let mut lines = String::new();
    for &req in &REQS {
        let get = |d: Disk| configs.iter().position(|&c| c == (d, req)).and_then(|i| frond[i].icount.as_ref());
        if let (Some(v), Some(m)) = (get(Disk::Virtio), get(Disk::Ram)) {
            let per = |ns: u64, r: &FrondRun| ns as f64 / (r.bytes as f64 / 1024.0);
            let _ = writeln!(
                lines,
                "  {}: RAM disk (file system + calls) write {} / read {} ns/KiB; virtio-blk adds {} / {} ns/KiB",
                kib(req),
                fmt(per(m.write_ns, m), 0),
                fmt(per(m.read_ns, m), 0),
                fmt(per(v.write_ns, v) - per(m.write_ns, m), 0),
                fmt(per(v.read_ns, v) - per(m.read_ns, m), 0)
            );
            if let (Some(d), (Some(base), base_idle)) = (&v.driver, &res.baseline) {
                let d = d.since(base);
                let data_blocks = (v.bytes / 1024).max(1);
                let idle = match (v.idle_ms, base_idle) {
                    (Some(a), Some(b)) => format!("{} ms", a.saturating_sub(*b)),
                    _ => "-".into(),
                };
                let _ = writeln!(
                    lines,
                    "    frond virtio-blk, whole workload (write, read, {FILES} create+delete; boot minus format+mount):\n\
                     \x20     {} writes of {} blocks ({:.1}× the file, {:.1} KiB per request), {} flushes, {} commits; \
                     {} reads of {} blocks ({:.1} KiB per request); {} kicks, {} irqs; idle thread {idle}",
                    d.writes,
                    d.written_blocks,
                    d.written_blocks as f64 / data_blocks as f64,
                    d.written_blocks as f64 / d.writes.max(1) as f64,
                    d.flushes,
                    d.commits.map_or("-".into(), |c| c.to_string()),
                    d.reads,
                    d.read_blocks,
                    d.read_blocks as f64 / d.reads.max(1) as f64,
                    d.kicks,
                    d.irqs
                );
                if let Some(c) = d.commits {
                    records.push(Record::new("storage_driver", &format!("frond_virtio_req{req}"), "commits", "commits").value(c as f64));
                }
                let v = format!("frond_virtio_req{req}");
                for (metric, unit, x) in [
                    ("writes", "requests", d.writes),
                    ("written_blocks", "blocks", d.written_blocks),
                    ("flushes", "flushes", d.flushes),
                    ("reads", "requests", d.reads),
                    ("read_blocks", "blocks", d.read_blocks),
                    ("irqs", "irqs", d.irqs),
                ] {
                    records.push(Record::new("storage_driver", &v, metric, unit).value(x as f64));
                }
            }
            // The same for Linux, per figure, from its -icount boot.
            if let Some(l) = linux_icount {
                let mut parts = Vec::new();
                for (op, mode, label) in [("write", "direct", "O_DIRECT write"), ("read", "direct", "O_DIRECT read"), ("write", "ext2", "ext2 write"), ("read", "ext2", "ext2 read")] {
                    if let Some(dev) = l.get(op, mode, req as u64).and_then(|f| f.dev) {
                        let (n, k) = if op == "write" { (dev.writes, dev.write_kib) } else { (dev.reads, dev.read_kib) };
                        parts.push(format!("{label} {n} requests ({:.1} KiB each), {} flushes", k as f64 / n.max(1) as f64, dev.flushes));
                    }
                }
                if !parts.is_empty() {
                    let _ = writeln!(lines, "    linux: {}", parts.join("; "));
                }
            }
        }
    }
    if !lines.is_empty() {
        let _ = write!(table, "Where Frond's time goes (-icount):\n{lines}");
    }
    records.push(Record::new("storage", "config", "file_bytes", "bytes").value(bytes as f64));

    // Bars grouped by operation and request size: write 4K (Frond, then Linux), read 4K, …
    let group = |label: &str| {
        let op = usize::from(label.starts_with("read"));
        let req = usize::from(label.contains(" 64K "));
        op * 2 + req
    };
    bars.sort_by_key(|(l, _)| group(l));
    ibars.sort_by_key(|(l, _)| group(l));
    let mib = bytes >> 20;
    vec![
        (
            "storage-throughput.svg",
            super::svg::hbar_chart(&format!("Storage, {mib} MiB sequential: MB/s under TCG (median of {} rounds)", plan.rounds), "MB/s (10⁶ B/s)", &bars),
        ),
        (
            "storage-instructions.svg",
            super::svg::hbar_chart(&format!("Storage, {mib} MiB sequential, -icount shift=0: guest ns per KiB"), "ns per KiB (instructions + idle time)", &ibars),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frond_output() {
        let serial = "[    0.04] INFO  frond_kernel: TSC 2301 MHz; I/O APIC at 0xfec00000\r\nFrond console ready in 50 ms.\r\nfrond> [fsload] fsload: bench req=65536 bytes=33554432 write_ns=2000000000 read_ns=1000000000 files=200 create_delete_ns=400000000\r\n\
            fsload: done: 0 rounds, 0 files written, 0 verified, 0 mismatches, 0 errors, 0 syncs\r\n\
            \x20 / on virtio-blk0 (domain 3): large-file format\r\n\
            \x20 driver: 1030 reads (32800 blocks), 520 writes (33000 blocks), 3 flushes, 0 errors, 1550 kicks, 1549 irqs\r\n\
            \x20 fs: 1700 commits, 0 log blocks replayed at the last mount\r\n\
            \x20   id  name             prio    state        cpu ms  switches  stack\r\n\
            \x20    0  idle             -       Ready           812       100    64K\r\n";
        let r = parse_frond(serial).unwrap();
        assert_eq!((r.req, r.bytes, r.write_ns, r.read_ns, r.files, r.create_delete_ns), (65536, 33554432, 2_000_000_000, 1_000_000_000, 200, 400_000_000));
        let d = r.driver.unwrap();
        assert_eq!((d.reads, d.read_blocks, d.writes, d.written_blocks, d.flushes, d.kicks, d.irqs), (1030, 32800, 520, 33000, 3, 1550, 1549));
        assert_eq!(r.idle_ms, Some(812));
        assert_eq!(d.commits, Some(1700));
        assert_eq!(r.tsc_mhz, Some(2301));
        assert!((mb_s(r.bytes, r.write_ns as f64) - 16.777).abs() < 0.01);
        assert!(parse_frond("fsload: FAILED: write at 0: no space").unwrap_err().contains("no space"));
        assert!(parse_frond("nothing").is_err());
    }

    #[test]
    fn linux_output() {
        let serial = "linux-guest: blk start dev=/dev/vda\n\
            linux-guest: blk op=overhead mode=stamp req=0 bytes=4194304 ns=200 idle_ns=0\n\
            linux-guest: blk op=overhead mode=dd req=0 bytes=4194304 ns=1000 idle_ns=0\n\
            linux-guest: blk op=overhead mode=dd req=0 bytes=4194304 ns=900 idle_ns=0\n\
            linux-guest: blk op=write mode=direct req=4096 bytes=4194304 ns=10900 idle_ns=5000\n\
            linux-guest: blk op=read mode=ext2 req=65536 bytes=4194304 ns=1900 idle_ns=0 reads=33 read_kib=4096 writes=0 write_kib=0 flushes=0\r\n\
            linux-guest: blk op=create_delete mode=ext2 req=0 bytes=4194304 ns=900 idle_ns=0\n\
            linux-guest: blk done\n";
        let l = parse_linux(serial).unwrap();
        assert_eq!(l.overhead_ns, 900.0);
        assert_eq!(l.bytes, 4194304);
        assert_eq!(l.get("write", "direct", 4096), Some(LinuxFigure { ns: 10000.0, idle_ns: 5000.0, dev: None }));
        let d = l.get("read", "ext2", 65536).unwrap().dev.unwrap();
        assert_eq!((d.reads, d.read_kib, d.writes, d.write_kib, d.flushes), (33, 4096, 0, 0, 0));
        assert_eq!(l.get("read", "ext2", 65536).unwrap().ns, 1000.0);
        assert_eq!(l.get("create_delete", "ext2", 0).unwrap().ns, 1.0, "never below 1 ns");
        assert!(l.get("read", "direct", 4096).is_none());
        assert!(parse_linux("linux-guest: FAILED: mount").unwrap_err().contains("mount"));
        assert!(parse_linux("linux-guest: blk op=write mode=direct req=1 bytes=1 ns=1 idle_ns=0\n").is_err(), "no done line");
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            frond_cmdline(Disk::Virtio, 4096, HEADLINE_BYTES),
            "disk=virtio fs.large=on fsload=bench fsload.bytes=33554432 fsload.req=4096 fsload.files=200"
        );
        assert!(frond_cmdline(Disk::Ram, 65536, HEADLINE_BYTES).starts_with("disk=ram ram.mib=36 fs.large=on"));
        assert!(missing_domains("storage: not started: boot module entry `domains/dom-fs`: entry not found in the boot module"));
        assert!(!missing_domains("storage: not started: init failed: callee panicked during the call"));
    }
}
