//! In-QEMU tests of the seeded fault injector (`inject=SEED`, docs/reliability.md): each
//! kind of fault under a running, self-verifying workload, and replay (the same seed
//! twice gives the same fault log).
//!
//! Every test checks: the kernel is alive (the console answers), every fault that took
//! effect is followed by its domain's recovery, the workload's verification passes
//! (fsload: no mismatched byte; fsck clean), and the memory counters are back at their
//! level before the workload once it stopped and the targets were restarted fresh.

use std::path::{Path, PathBuf};
use std::time::Duration;

use frond_tests::qemu::disk_args;
use frond_tests::{Boot, Session};

const CONSOLE_TIMEOUT: Duration = Duration::from_secs(60);

fn console(s: &mut Session, command: &str) -> String {
    s.send(format!("{command}\n").as_bytes()).unwrap_or_else(|e| panic!("sending {command:?}: {e}"));
    let out = s.expect("frond> ", CONSOLE_TIMEOUT).unwrap_or_else(|e| panic!("response to {command:?}: {e}"));
    out.split_once('\n').map(|(_, rest)| rest).unwrap_or("").trim_end_matches("frond> ").to_string()
}

fn seen(s: &mut Session, pattern: &str, timeout: Duration) {
    if !s.serial().contains(pattern) {
        s.expect(pattern, timeout).unwrap_or_else(|e| panic!("waiting for {pattern:?}: {e}\n{}", s.serial()));
    }
}

fn scratch(test: &str) -> PathBuf {
    let d = frond_tests::qemu::workspace_root().join("target/inject-tests").join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One `inject:` fault line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fault {
    n: u64,
    kind: String,
    domain: String,
    skipped: bool,
    gen: u64,
    /// The fault ends the domain's generation.
    ends: bool,
    /// `S:K`: the K-th fault of stream S.
    stream: String,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
}

/// The fault lines of a serial log (not the recovery lines), in order.
fn faults(serial: &str) -> Vec<Fault> {
    serial
        .lines()
        .filter_map(|l| {
            let l = &l[l.find("inject: n=")?..];
            let kind = field(l, "kind")?.to_string();
            Some(Fault {
                n: field(l, "n")?.parse().ok()?,
                domain: field(l, "domain")?.to_string(),
                skipped: l.contains(" skipped"),
                gen: field(l, "gen").and_then(|g| g.parse().ok()).unwrap_or(0),
                ends: matches!(kind.as_str(), "kill" | "panic" | "hang") || l.contains("at=used-ring id"),
                stream: field(l, "stream").unwrap_or_default().to_string(),
                kind,
            })
        })
        .collect()
}

/// Recovery lines: (n, domain, new generation).
fn recoveries(serial: &str) -> Vec<(u64, String, u64)> {
    serial
        .lines()
        .filter_map(|l| {
            let l = &l[l.find("inject: n=")?..];
            if !l.contains(" recovered ") {
                return None;
            }
            Some((field(l, "n")?.parse().ok()?, field(l, "domain")?.to_string(), field(l, "gen")?.parse().ok()?))
        })
        .collect()
}

/// The memory counters the console prints: kernel heap bytes used, free frames, kernel
/// RRefs, shared-heap bytes used, domain-heap KiB reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    kernel_heap: u64,
    frames_free: u64,
    kernel_rrefs: u64,
    shared_used: u64,
    domain_heaps_kib: u64,
}

fn number_before(s: &str, suffix: &str) -> u64 {
    let i = s.find(suffix).unwrap_or_else(|| panic!("no {suffix:?} in {s}"));
    let digits: String = s[..i].trim_end().chars().rev().take_while(|c| c.is_ascii_digit()).collect();
    digits.chars().rev().collect::<String>().parse().unwrap_or_else(|_| panic!("no number before {suffix:?} in {s}"))
}

fn counters(s: &mut Session) -> Counters {
    let mem = console(s, "mem");
    let frames = mem.lines().find(|l| l.contains("frames:")).expect("a frames line");
    let heap = mem.lines().find(|l| l.contains("heap:")).expect("a heap line");
    let doms = console(s, "domains");
    let k = doms.lines().find(|l| l.contains("kernel:") && l.contains("shared heap")).expect("the kernel line");
    Counters {
        kernel_heap: number_before(heap, "bytes used"),
        frames_free: number_before(frames, "free ("),
        kernel_rrefs: number_before(k, "RRefs"),
        shared_used: number_before(k, "B used"),
        domain_heaps_kib: number_before(k.split("reserve").nth(1).expect("domain heaps reserve"), "KiB"),
    }
}

/// The fresh-restart baseline: the targets restarted (a new generation holds only what
/// its init allocates), then the counters.
fn fresh_counters(s: &mut Session, targets: &[&str]) -> Counters {
    for t in targets {
        let r = console(s, &format!("restart {t}"));
        assert!(!r.contains("failed") && !r.contains("no domain"), "restart {t}: {r}");
    }
    counters(s)
}

/// Kernel heap: the injector's totals table and the domains' last words stay (one line
/// per domain that died); everything else must be back exactly.
const KERNEL_HEAP_SLACK: u64 = 4096;

fn assert_counters_back(before: Counters, after: Counters, serial: &str) {
    assert_eq!(before.kernel_rrefs, after.kernel_rrefs, "kernel RRefs\n{before:?}\n{after:?}\n{serial}");
    assert_eq!(before.shared_used, after.shared_used, "shared heap bytes\n{before:?}\n{after:?}\n{serial}");
    assert_eq!(before.domain_heaps_kib, after.domain_heaps_kib, "domain heaps\n{before:?}\n{after:?}\n{serial}");
    assert!(
        after.kernel_heap <= before.kernel_heap + KERNEL_HEAP_SLACK,
        "kernel heap grew by {} bytes\n{before:?}\n{after:?}\n{serial}",
        after.kernel_heap as i64 - before.kernel_heap as i64
    );
    // Frames: the kernel heap's growth aside (in whole pages), the same.
    let heap_pages = after.kernel_heap.saturating_sub(before.kernel_heap).div_ceil(4096) + 1;
    assert!(
        after.frames_free + heap_pages >= before.frames_free,
        "free frames did not return: {} before, {} after\n{serial}",
        before.frames_free,
        after.frames_free
    );
}

/// Every fault that took effect and ends its domain's generation (kill, panic, hang, a
/// used entry with a bad id) is followed by its domain's recovery (a newer generation).
fn assert_recovered(serial: &str, fs: &[Fault]) {
    let rec = recoveries(serial);
    for f in fs.iter().filter(|f| !f.skipped && f.ends) {
        let r = rec.iter().find(|(n, _, _)| *n == f.n);
        let (_, d, g) = r.unwrap_or_else(|| panic!("fault n={} ({} of {}) has no recovery line\n{serial}", f.n, f.kind, f.domain));
        assert_eq!(d, &f.domain, "{serial}");
        assert!(*g > f.gen, "recovered generation {g} after the fault in generation {}\n{serial}", f.gen);
    }
}

/// Shows the injector's lines (and the workload's verdict) in the test output.
fn report(test: &str, serial: &str) {
    for l in serial.lines().filter(|l| l.contains("inject:") || l.contains("fsload: done") || l.contains("watchdog:") || l.contains("panicked")) {
        eprintln!("{test}: {l}");
    }
}

fn fsck(path: &Path) -> Vec<String> {
    frond_fslib::fsck::check(&std::fs::read(path).unwrap())
}

const TARGETS: [&str; 2] = ["fs", "virtio-blk0"];

/// Boots a fresh virtio disk with the verified fsload workload (started after the
/// baseline is taken) and `inject`, runs it to the end; returns the serial log, the
/// counters before and after, and the image.
fn storage_run(test: &str, inject: &str) -> (String, Counters, Counters, PathBuf) {
    let dir = scratch(test);
    let img = dir.join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    let cmd = format!(
        "net=off fsload=verify fsload.delay=2500 fsload.rounds=150 fsload.files=6 fsload.bytes=65536 fsload.req=16384 fsload.sync=2 {inject}"
    );
    let mut s = Boot::new().cmdline(&cmd).qemu_args(disk_args(&img, false)).timeout(Duration::from_secs(300)).spawn();
    s.expect("frond> ", CONSOLE_TIMEOUT).unwrap_or_else(|e| panic!("no console prompt: {e}"));
    seen(&mut s, "storage: ready", CONSOLE_TIMEOUT);
    let before = fresh_counters(&mut s, &TARGETS);
    assert!(!s.serial().contains("fsload: starting"), "the baseline must come before the workload; raise fsload.delay\n{}", s.serial());
    seen(&mut s, "fsload: done:", Duration::from_secs(240));
    seen(&mut s, "inject: done:", Duration::from_secs(60));
    // Alive: the console answers, and the injector's totals agree with the log.
    let totals = console(&mut s, "inject");
    assert!(totals.contains("seed "), "{totals}");
    console(&mut s, "sync");
    let after = fresh_counters(&mut s, &TARGETS);
    s.send(b"quit\n").unwrap();
    let out = s.wait(CONSOLE_TIMEOUT);
    out.assert_pass();
    report(test, &out.serial);
    eprintln!("{test}: counters before {before:?}\n{test}: counters after  {after:?}");
    (out.serial.clone(), before, after, img)
}

/// The workload finished with every byte verified; at most `max_errors` calls failed (a
/// call the dying fs was in, an I/O error; fsload retries them).
fn assert_workload_clean(serial: &str, img: &Path, max_errors: usize) {
    let line = serial.lines().find(|l| l.contains("fsload: done:")).unwrap_or_else(|| panic!("no done line\n{serial}"));
    assert!(line.contains("150 rounds, 900 files written, 900 verified, 0 mismatches"), "{line}\n{serial}");
    let errors = number_before(line, "errors") as usize;
    assert!(errors <= max_errors, "{errors} errors, at most {max_errors} expected\n{line}\n{serial}");
    assert!(!serial.contains("MISMATCH") && !serial.contains("fsload: FAILED"), "{serial}");
    assert!(!serial.contains("EXCEPTION") && !serial.contains("kernel panic"), "{serial}");
    assert_eq!(fsck(img), Vec::<String>::new(), "fsck after the run");
}

fn inject_args(seed: u64, kinds: &str, count: u64) -> String {
    format!("inject={seed} inject.rate=2 inject.kinds={kinds} inject.domains=fs,virtio-blk0 inject.count={count} inject.start=5000")
}

#[test]
fn injected_kills_under_a_storage_workload() {
    let (serial, before, after, img) = storage_run("kill", &inject_args(7, "kill", 3));
    let fs = faults(&serial);
    assert_eq!(fs.len(), 3, "{serial}");
    assert!(fs.iter().filter(|f| !f.skipped).count() >= 2, "most kills found their moment\n{serial}");
    assert_recovered(&serial, &fs);
    assert_workload_clean(&serial, &img, on_fs(&fs));
    assert_counters_back(before, after, &serial);
}

/// Faults that took effect on the fs (each may fail the one call it was in).
fn on_fs(fs: &[Fault]) -> usize {
    fs.iter().filter(|f| !f.skipped && f.domain == "fs").count()
}

#[test]
fn injected_panics_under_a_storage_workload() {
    let (serial, before, after, img) = storage_run("panic", &inject_args(11, "panic", 4));
    let fs = faults(&serial);
    assert_eq!(fs.len(), 4, "{serial}");
    assert!(fs.iter().filter(|f| !f.skipped).count() >= 3, "most panics found a call\n{serial}");
    assert!(serial.contains("panicked: injected fault n="), "{serial}");
    // Seed 11 draws panics at both points of a call: at entry and at exit (after the
    // callee ran the call to its end; its result is discarded).
    let panics: Vec<&str> = serial.lines().filter(|l| l.contains("kind=panic") && l.contains(" at=")).collect();
    assert!(panics.iter().any(|l| l.contains(" at=exit:")), "no panic at a call's exit\n{serial}");
    assert!(panics.iter().any(|l| !l.contains(" at=exit:")), "no panic at a call's entry\n{serial}");
    assert_recovered(&serial, &fs);
    assert_workload_clean(&serial, &img, on_fs(&fs));
    assert_counters_back(before, after, &serial);
}

#[test]
fn injected_hangs_are_ended_by_the_watchdog() {
    let (serial, before, after, img) =
        storage_run("hang", &format!("limit=fs:budget=2000ms {}", inject_args(5, "hang", 2)));
    let fs = faults(&serial);
    assert_eq!(fs.len(), 2, "{serial}");
    let hung: Vec<&Fault> = fs.iter().filter(|f| !f.skipped).collect();
    assert!(!hung.is_empty(), "a hang found its moment\n{serial}");
    // The real watchdog ended each hung call.
    for f in &hung {
        assert!(
            serial.contains(&format!("watchdog: domain `{}` (id", f.domain)),
            "the watchdog ended the hung call of {}\n{serial}",
            f.domain
        );
    }
    assert_recovered(&serial, &fs);
    assert_workload_clean(&serial, &img, on_fs(&fs));
    assert_counters_back(before, after, &serial);
}

#[test]
fn injected_block_io_errors_reach_the_caller_and_leave_the_fs_consistent() {
    let (serial, before, after, img) = storage_run(
        "blkdev",
        "inject=3 inject.rate=4 inject.kinds=blkdev inject.domains=virtio-blk0 inject.count=4 inject.start=5000",
    );
    let fs = faults(&serial);
    assert_eq!(fs.len(), 4, "{serial}");
    let hit = fs.iter().filter(|f| !f.skipped).count();
    assert!(hit >= 3, "most I/O errors found a request\n{serial}");
    // No restart was needed: an I/O error is an answer, not a crash.
    assert!(recoveries(&serial).is_empty(), "{serial}");
    assert!(!serial.contains("domain `virtio-blk0` (id"), "the driver did not die\n{serial}");
    // A failed commit poisons the fs; it restarts itself and recovers the last commit (an
    // I/O error during that mount fails the restart; the next call tries again).
    for l in serial.lines().filter(|l| l.contains("panicked:")) {
        assert!(
            l.contains("domain `fs`")
                && (l.contains("poisoned the file system") || l.contains("device error while mounting") || l.contains("fs: not mounted:")),
            "{l}\n{serial}"
        );
    }
    // Each error reached its caller (fsload counts and retries it); until the poisoned fs
    // has restarted (within one commit tick) its writes fail too.
    let line = serial.lines().find(|l| l.contains("fsload: done:")).unwrap_or_default();
    assert!(number_before(line, "errors") >= 1, "no I/O error reached the workload\n{line}");
    assert_workload_clean(&serial, &img, 25 * hit);
    assert_counters_back(before, after, &serial);
}

/// The same seed and command line give the same decisions: fault numbers, their streams
/// and places in them, kinds and target domains (whether and when each found its moment
/// depends on the run's timing, and so does the order of the lines of overlapping faults).
#[test]
fn the_same_seed_replays_the_same_faults() {
    let args = inject_args(1234, "kill,panic,blkdev", 5);
    let (a, ..) = storage_run("replay_a", &args);
    let (b, ..) = storage_run("replay_b", &args);
    let key = |s: &str| {
        let mut k = faults(s).into_iter().map(|f| (f.n, f.stream, f.kind, f.domain)).collect::<Vec<_>>();
        k.sort();
        k
    };
    assert_eq!(key(&a).len(), 5, "{a}");
    assert!(key(&a).iter().all(|k| !k.1.is_empty()), "every fault line names its stream\n{a}");
    // Both targets have a stream of their own.
    let streams: std::collections::BTreeSet<String> = key(&a).into_iter().map(|k| k.3).collect();
    assert_eq!(streams.len(), 2, "faults in both domains\n{a}");
    assert_eq!(key(&a), key(&b), "the two runs' fault logs differ\n--- first ---\n{a}\n--- second ---\n{b}");
}
