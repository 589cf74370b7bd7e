//! In-QEMU tests of rv6: the shell over the serial console, xv6's usertests (file system
//! and pipes), descriptors that survive a crash of the file-system or block-driver
//! domain, crashes of programs and of the rv6 core, and hostile programs.
//!
//! Each test boots its own QEMU with `rv6=on` and a disk image made here: the large-file
//! variant holding rv6's programs in `/bin` (from `FROND_USER_DIR`, which `make build`
//! fills) and `/bin/wrongkind`, a domain image of another kind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use frond_fslib::dev::MemDisk;
use frond_fslib::layout::Variant;
use frond_fslib::mkfs::{self, Params};
use frond_fslib::FileSystem;
use frond_tests::qemu::{disk_args, workspace_root};
use frond_tests::{Boot, Session};

const PROMPT: &str = "$ ";
const STEP: Duration = Duration::from_secs(90);

fn user_dir() -> PathBuf {
    std::env::var_os("FROND_USER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/domains/x86_64-unknown-none/user"))
}

fn domain_elf() -> PathBuf {
    std::env::var_os("FROND_DOMAIN_ELF")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/domains/x86_64-unknown-none/release/dom-echo"))
}

/// The programs `make build` left in the user directory (executables, not `.d` files).
fn programs() -> Vec<(String, Vec<u8>)> {
    let dir = user_dir();
    let mut v = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e} (run `make build` first)", dir.display())) {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if !e.file_type().unwrap().is_file() || name.ends_with(".d") || name.starts_with('.') {
            continue;
        }
        v.push((name, std::fs::read(e.path()).unwrap()));
    }
    v.sort();
    assert!(v.iter().any(|(n, _)| n == "sh"), "no `sh` in {} (run `make build` first)", dir.display());
    v
}

/// A scratch directory under target/ for this test's image.
fn scratch(test: &str) -> PathBuf {
    let d = workspace_root().join("target/rv6-tests").join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Makes `dir/disk.img`: 32 MiB, large-file variant, `/bin` with the programs, and `files`
/// in the root.
fn rv6_image(dir: &Path, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let blocks = 32 * 1024;
    let mut disk = MemDisk::new(blocks as u64);
    mkfs::format(&mut disk, &Params::new(blocks, 2048, Variant::Large)).unwrap();
    let mut fs = FileSystem::mount(disk).map_err(|(_, e)| e).unwrap();
    let bin = mkfs::add_dir(&mut fs, 1, b"bin").unwrap();
    for (name, data) in programs() {
        mkfs::add_file(&mut fs, bin, name.as_bytes(), &data).unwrap_or_else(|e| panic!("/bin/{name}: {}", e.as_str()));
    }
    let other = std::fs::read(domain_elf()).unwrap();
    mkfs::add_file(&mut fs, bin, b"wrongkind", &other).unwrap();
    for (name, data) in files {
        mkfs::add_file(&mut fs, 1, name.as_bytes(), data).unwrap();
    }
    let (disk, r) = fs.unmount();
    r.unwrap();
    let path = dir.join("disk.img");
    std::fs::write(&path, disk.image()).unwrap();
    path
}

fn image_fsck(path: &Path) -> Vec<String> {
    frond_fslib::fsck::check(&std::fs::read(path).unwrap())
}

/// Boots rv6 on `img` and waits for the shell's first prompt.
fn boot(img: &Path, extra_cmdline: &str, timeout: Duration) -> Session {
    let mut s = Boot::new()
        .cmdline(format!("net=off rv6=on {extra_cmdline}"))
        .qemu_args(disk_args(img, false))
        .timeout(timeout)
        .spawn();
    s.expect("rv6: core started", STEP).unwrap_or_else(|e| panic!("the rv6 core did not start: {e}"));
    s.expect(PROMPT, STEP).unwrap_or_else(|e| panic!("no shell prompt: {e}"));
    s
}

/// Types `line` at the shell and returns what it printed before the next prompt
/// (without the echoed line).
fn sh_wait(s: &mut Session, line: &str, timeout: Duration) -> String {
    s.send(format!("{line}\n").as_bytes()).unwrap_or_else(|e| panic!("sending {line:?}: {e}"));
    let out = s.expect(&format!("\n{PROMPT}"), timeout).unwrap_or_else(|e| panic!("response to {line:?}: {e}"));
    let out = out.strip_suffix(PROMPT).unwrap_or(&out);
    out.split_once('\n').map(|(_, rest)| rest).unwrap_or("").replace('\r', "")
}

fn sh(s: &mut Session, line: &str) -> String {
    sh_wait(s, line, STEP)
}

#[test]
fn shell_session() {
    let dir = scratch("shell_session");
    let img = rv6_image(&dir, &[("hello.txt", b"hello from the host\n".to_vec())]);
    let mut s = boot(&img, "", Duration::from_secs(300));

    let ls = sh(&mut s, "ls /");
    assert!(ls.contains("bin") && ls.contains("hello.txt"), "ls / lists the root\n{ls}");
    let ls = sh(&mut s, "ls /bin");
    for p in ["sh", "cat", "grep", "wc", "usertests"] {
        assert!(ls.contains(p), "/bin holds {p}\n{ls}");
    }
    assert_eq!(sh(&mut s, "cat hello.txt").trim(), "hello from the host");

    sh(&mut s, "echo hi > f");
    assert_eq!(sh(&mut s, "cat f").trim(), "hi");
    sh(&mut s, "echo there >> f");
    assert_eq!(sh(&mut s, "cat f").trim(), "hi\nthere");
    let wc = sh(&mut s, "cat f | grep h | wc");
    let n: Vec<&str> = wc.split_whitespace().collect();
    assert_eq!(&n[..3], &["2", "2", "9"], "two lines hold an h: 2 lines, 2 words, 9 bytes\n{wc}");
    assert_eq!(sh(&mut s, "wc < f").split_whitespace().take(3).collect::<Vec<_>>(), ["2", "2", "9"]);

    sh(&mut s, "mkdir d; cd d; echo inside > g");
    assert_eq!(sh(&mut s, "pwd").trim(), "/d");
    assert_eq!(sh(&mut s, "cat /d/g").trim(), "inside");
    sh(&mut s, "cd ..");
    assert_eq!(sh(&mut s, "pwd").trim(), "/");

    // Exit status of the last command.
    sh(&mut s, "cat /nonexistent");
    assert_ne!(sh(&mut s, "echo $?").trim(), "0", "a failed cat has a non-zero status");
    sh(&mut s, "echo ok");
    assert_eq!(sh(&mut s, "echo $?").trim(), "0");

    // A background job: the prompt comes back at once, the job's output comes later.
    let bg = sh(&mut s, "sleep 1 ; echo late > bgout &");
    assert!(bg.contains('['), "a background job prints its pid\n{bg}");
    std::thread::sleep(Duration::from_secs(3));
    let mut found = String::new();
    for _ in 0..20 {
        found = sh(&mut s, "cat bgout");
        if found.contains("late") {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(found.contains("late"), "the background job ran\n{found}");

    // A script file.
    sh(&mut s, "echo 'echo one > s1' > script");
    sh(&mut s, "echo 'cat s1 | wc' >> script");
    let out = sh(&mut s, "sh script");
    assert!(out.split_whitespace().take(3).eq(["1", "1", "4"]), "the script ran both lines\n{out}");

    let ps = sh(&mut s, "ps");
    assert!(ps.contains("init") && ps.contains("sh"), "ps lists init and the shell\n{ps}");
    let mon = sh(&mut s, "mon domains");
    assert!(mon.contains("rv6") && mon.contains("fs"), "the monitor's domain table through `mon`\n{mon}");
    drop(s);
    let problems = image_fsck(&img);
    assert!(problems.is_empty(), "fsck after the session: {problems:?}");
}

#[test]
fn usertests_pass() {
    let dir = scratch("usertests");
    let img = rv6_image(&dir, &[]);
    let mut s = boot(&img, "", Duration::from_secs(1500));
    let out = sh_wait(&mut s, "usertests", Duration::from_secs(1200));
    let failed: Vec<&str> = out.lines().filter(|l| l.contains("FAILED")).collect();
    assert!(out.contains("usertests: ALL TESTS PASSED"), "usertests: {failed:?}\n{out}");
    for name in [
        "opentest", "writetest", "writebig", "createtest", "dirtest", "pipe1", "sharedfd", "fourfiles", "createdelete",
        "unlinkread", "linktest", "concreate", "linkunlink", "subdir", "bigwrite", "bigfile", "fourteen", "rmdot",
        "dirfile", "iref", "truncate1", "truncate2", "truncate3", "bigdir", "diskfull", "outofinodes",
    ] {
        assert!(out.contains(&format!("usertests: {name}: ok")), "{name} ran and passed\n{out}");
    }
    sh(&mut s, "sync");
    drop(s);
    let problems = image_fsck(&img);
    assert!(problems.is_empty(), "fsck after usertests: {problems:?}");
}

/// The `start=`/`end=` of a `t-survive: ROLE: ok …` line.
fn worker_span(out: &str, role: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("t-survive: {role}: ")))
        .unwrap_or_else(|| panic!("no line from worker {role}\n{out}"));
    assert!(line.contains(": ok "), "worker {role} failed: {line}\n{out}");
    let field = |k: &str| -> u64 {
        line.split_whitespace().find_map(|w| w.strip_prefix(k)).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{k} in {line}"))
    };
    (field("start="), field("end="))
}

/// Crashes `domain` under four programs holding file-system state (see `t-survive`) and
/// checks that every one carried on without an error, with the crash inside its run.
fn descriptors_survive(test: &str, domain: &str) {
    let dir = scratch(test);
    let img = rv6_image(&dir, &[]);
    let mut s = boot(&img, "", Duration::from_secs(600));
    let out = sh_wait(&mut s, &format!("t-survive {domain}"), Duration::from_secs(300));
    assert!(out.contains("killed"), "the monitor killed {domain}\n{out}");
    assert!(out.contains("t-survive: all ok"), "every worker carried on\n{out}");
    let crash: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("t-survive: crash at "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no crash time\n{out}"));
    for role in ["reader", "writer", "cwd", "pread", "pwrite"] {
        let (start, end) = worker_span(&out, role);
        assert!(start < crash && crash < end, "{role} ran {start}..{end} ms, the crash was at {crash} ms\n{out}");
    }
    let serial = s.serial();
    let restarted = match domain {
        "fs" => serial.matches("fs: mounted").count() >= 2,
        _ => serial.contains("restarted") || serial.matches("virtio-blk").count() > 1,
    };
    assert!(restarted, "{domain} was restarted (serial log)");
    let doms = sh(&mut s, "mon domains");
    let row = doms.lines().find(|l| l.split_whitespace().nth(1) == Some(domain)).unwrap_or_else(|| panic!("{domain} row\n{doms}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2], "2", "{domain} is in its second generation\n{doms}");
    assert_eq!(cols[3], "Alive", "{doms}");
    sh(&mut s, "sync");
    drop(s);
    let problems = image_fsck(&img);
    assert!(problems.is_empty(), "fsck after the crash: {problems:?}");
}

#[test]
fn descriptors_survive_a_file_system_crash() {
    descriptors_survive("survive_fs", "fs");
}

#[test]
fn descriptors_survive_a_block_driver_crash() {
    descriptors_survive("survive_blk", "virtio-blk0");
}

#[test]
fn crashed_and_killed_programs_end_alone() {
    let dir = scratch("program_crash");
    let img = rv6_image(&dir, &[]);
    let mut s = boot(&img, "", Duration::from_secs(600));
    let baseline = sh(&mut s, "mon domains");

    let out = sh(&mut s, "t-crash boom");
    assert!(out.contains("sh: t-crash: crashed: boom"), "the shell reports the crash with its message\n{out}");
    assert_eq!(sh(&mut s, "echo $?").trim(), "134");

    // The writer crashes: its end closes and the reader sees end of file.
    let out = sh(&mut s, "t-crash midstream | wc");
    assert!(out.lines().any(|l| l.split_whitespace().eq(["0", "0", "0"])), "wc saw end of file\n{out}");
    // The reader crashes: the writer gets EPIPE.
    let out = sh(&mut s, "t-pipewriter | t-crash reader-gone");
    assert!(out.contains("t-pipewriter: wrote") && out.contains("broken pipe"), "the writer got EPIPE\n{out}");
    assert!(out.contains("crashed: reader-gone"), "{out}");

    // A spinning program is killed; only it ends.
    let bg = sh(&mut s, "t-spin &");
    // The job's first line may arrive before the prompt: the pid is the `[N]` line.
    let pid: i32 = bg
        .lines()
        .find_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']')?.parse().ok())
        .unwrap_or_else(|| panic!("pid of t-spin\n{bg}"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(sh(&mut s, "ps").contains("t-spin"), "t-spin runs");
    let mut waited = sh(&mut s, &format!("kill {pid}"));
    for _ in 0..10 {
        if waited.contains(&format!("[{pid}]")) {
            break;
        }
        waited += &sh(&mut s, "echo done");
        if waited.contains(&format!("[{pid}]")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(waited.contains(&format!("[{pid}] Done 137")), "the shell reaped the killed job (status 128+9)\n{waited}");
    assert!(!sh(&mut s, "ps").contains("t-spin"), "t-spin is gone");

    // The heap hog dies at its quota.
    let out = sh_wait(&mut s, "t-hog", Duration::from_secs(120));
    assert!(out.contains("sh: t-hog: crashed"), "t-hog dies at its heap quota\n{out}");
    assert_eq!(sh(&mut s, "echo still fine").trim(), "still fine");

    // Nothing is left behind: the same domains as before, heaps and RRefs as before.
    let after = sh(&mut s, "mon domains");
    let rows = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.trim_start().chars().next().is_some_and(|c| c.is_ascii_digit()))
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect()
    };
    let (b, a) = (rows(&baseline), rows(&after));
    assert_eq!(b.len(), a.len(), "the same number of domains\n{baseline}\n{after}");
    let rv6_crashes = |t: &str| t.lines().find(|l| l.split_whitespace().nth(1) == Some("rv6")).map(|l| l.split_whitespace().nth(10).unwrap_or("").to_string());
    assert_eq!(rv6_crashes(&after).as_deref(), Some("0"), "the rv6 core never crashed\n{after}");
}

#[test]
fn the_core_restarts_and_the_shell_comes_back() {
    let dir = scratch("core_crash");
    let img = rv6_image(&dir, &[("keep", b"kept\n".to_vec())]);
    let mut s = boot(&img, "", Duration::from_secs(600));
    sh(&mut s, "t-spin &");
    s.send(b"mon crash rv6\n").unwrap();
    s.expect("rv6: restarted (generation", STEP).unwrap_or_else(|e| panic!("the supervisor restarted the core: {e}"));
    s.expect(PROMPT, STEP).unwrap_or_else(|e| panic!("a new shell: {e}"));
    assert_eq!(sh(&mut s, "cat keep").trim(), "kept");
    let ps = sh(&mut s, "ps");
    assert!(!ps.contains("t-spin"), "the old core's processes died with it\n{ps}");
    let doms = sh(&mut s, "mon domains");
    assert!(!doms.contains("t-spin"), "their domains are gone\n{doms}");
    let rv6 = doms.lines().find(|l| l.split_whitespace().nth(1) == Some("rv6")).unwrap_or_else(|| panic!("{doms}"));
    assert_eq!(rv6.split_whitespace().nth(2), Some("2"), "the core's second generation\n{doms}");
}

#[test]
fn hostile_programs_get_errors_and_nothing_else_is_affected() {
    let dir = scratch("hostile");
    let img = rv6_image(&dir, &[]);
    let mut s = boot(&img, "", Duration::from_secs(600));
    let out = sh_wait(&mut s, "t-badcalls", Duration::from_secs(120));
    assert!(out.contains("t-badcalls: done, 0 failed"), "every bad call got its error\n{out}");
    assert!(!out.contains("crashed"), "{out}");

    let out = sh(&mut s, "wrongkind");
    assert!(out.contains("exec format error"), "a domain of another kind is refused\n{out}");
    sh(&mut s, "echo not an elf > /notelf");
    let out = sh(&mut s, "/notelf");
    assert!(out.contains("exec format error"), "a text file is refused\n{out}");

    let out = sh_wait(&mut s, "t-forkbomb 3000", Duration::from_secs(120));
    assert!(out.contains("t-forkbomb: spawned") && out.contains("refused"), "{out}");
    assert_eq!(sh(&mut s, "echo $?").trim(), "0", "the fork bomb was refused and ended\n{out}");
    std::thread::sleep(Duration::from_secs(4));
    let ps = sh(&mut s, "ps");
    assert!(!ps.contains("t-forkbomb"), "every child ended\n{ps}");
    assert_eq!(sh(&mut s, "echo alive | wc").split_whitespace().next(), Some("1"));
    let doms = sh(&mut s, "mon domains");
    assert!(!doms.contains("t-forkbomb"), "their domains are gone\n{doms}");
}

// ---- kill mid-write

/// Kills after the workloads' start lines fall uniformly in this window.
const KILL_WINDOW_MS: u64 = 4000;

/// One workload of one kill: its directory and seed, the last operation it reported
/// synced (0: the empty start) and how many syncs it reported, and the operation whose
/// state the check found (with `partial`: inside the next one).
#[derive(Debug, Clone)]
struct Writer {
    dir: String,
    seed: u64,
    synced: u32,
    syncs: u32,
    found: u32,
    partial: Option<String>,
}

/// One kill of [`kill_mid_write`].
#[derive(Debug)]
struct Kill {
    /// From the last workload's start line to the kill, as drawn.
    delay_ms: u64,
    /// From the last `synced` line seen (or the start line) to the kill.
    since_sync_ms: u64,
    /// Blocks of a committed log fsck found to replay.
    log_pending: u32,
    writers: Vec<Writer>,
}

fn mix(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The last complete `t-durable: synced OP DIR/FILE …` line's operation for `dir`, and
/// how many such lines there were.
fn last_synced(serial: &str, dir: &str) -> (u32, u32) {
    // A line the kill cut short has no newline (and no full `state=` field).
    let complete = serial.rsplit_once('\n').map_or("", |(done, _)| done);
    let ops: Vec<u32> = complete
        .lines()
        .filter_map(|l| {
            let rest = l.split("t-durable: synced ").nth(1)?;
            let state = rest.split(" state=").nth(1)?;
            (state.trim().len() == 16).then_some(())?;
            let mut w = rest.split_whitespace();
            let op = w.next()?.parse().ok()?;
            w.next()?.strip_prefix(dir)?.strip_prefix('/')?;
            Some(op)
        })
        .collect();
    (ops.last().copied().unwrap_or(0), ops.len() as u32)
}

/// The crashed image's `dir`, checked on the host against the workload's model (fsck's
/// own reader, with the committed log replayed on a copy).
fn host_check(img: &Path, dir: &str, seed: u64, synced: u32) -> Result<ulib::durable::Found, String> {
    let tree = frond_fslib::fsck::tree(&std::fs::read(img).unwrap())?;
    let prefix = format!("{dir}/");
    let listing: Vec<(String, Vec<u8>)> = tree
        .into_iter()
        .filter_map(|(p, _, data)| p.strip_prefix(&prefix).map(|n| (n.to_string(), data)))
        .collect();
    ulib::durable::check(seed, synced, &listing, ulib::durable::MAX_AHEAD)
}

/// Runs `t-durable check` in the booted system; returns the operation it found.
fn guest_check(s: &mut Session, w: &Writer, what: &str) -> u32 {
    let out = sh_wait(s, &format!("t-durable check {} {} {}", w.seed, w.synced, w.dir), Duration::from_secs(300));
    let line = out.lines().find(|l| l.starts_with("t-durable: check ")).unwrap_or_else(|| panic!("{what}: no check result\n{out}"));
    assert!(line.starts_with("t-durable: check ok "), "{what}: the check on the next boot failed: {line}\n{out}");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("found="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: {line}"))
}

/// Figures of a run of kills, as the docs report them.
fn kill_summary(kills: &[Kill], seed: u64, wall: Duration) -> String {
    let n = kills.len();
    let ws: Vec<&Writer> = kills.iter().flat_map(|k| &k.writers).collect();
    let mut since: Vec<u64> = kills.iter().map(|k| k.since_sync_ms).collect();
    since.sort_unstable();
    let q = |p: usize| since[(n - 1) * p / 100];
    let bucket = |lo: u64, hi: u64| since.iter().filter(|&&t| t >= lo && t < hi).count();
    let ahead = |lo: u32, hi: u32| ws.iter().filter(|w| (lo..hi).contains(&(w.found - w.synced))).count();
    let mut last: Vec<u32> = ws.iter().map(|w| w.synced).collect();
    last.sort_unstable();
    let mut s = String::new();
    s += &format!(
        "kill mid-write: {n} kills ({} with one workload, {} with two at once), seed {seed} (FROND_DURABILITY_SEED={seed} replays the schedule), {:.0} s\n",
        kills.iter().filter(|k| k.writers.len() == 1).count(),
        kills.iter().filter(|k| k.writers.len() == 2).count(),
        wall.as_secs_f64()
    );
    s += &format!(
        "  time from the last completed sync to the kill, ms: min {} / p25 {} / median {} / p75 {} / max {}\n",
        since[0],
        q(25),
        q(50),
        q(75),
        since[n - 1]
    );
    let mut delays: Vec<u64> = kills.iter().map(|k| k.delay_ms).collect();
    delays.sort_unstable();
    s += &format!(
        "  kill moments drawn, ms after the (last) start line: min {} / median {} / max {}\n",
        delays[0],
        delays[(n - 1) / 2],
        delays[n - 1]
    );
    s += &format!(
        "  kills by that time: <100 ms {}, 100-300 ms {}, 300-1000 ms {}, >=1000 ms {}\n",
        bucket(0, 100),
        bucket(100, 300),
        bucket(300, 1000),
        bucket(1000, u64::MAX)
    );
    s += &format!("  fsck: {n} of {n} clean; a committed log to replay in {}\n", kills.iter().filter(|k| k.log_pending > 0).count());
    s += &format!(
        "  workloads checked: {}, {} of them killed before their first sync; synced operations verified: {} (last synced op per workload: median {}, max {}); syncs reported: {}\n",
        ws.len(),
        ws.iter().filter(|w| w.syncs == 0).count(),
        ws.iter().map(|w| w.synced as u64).sum::<u64>(),
        last[(last.len() - 1) / 2],
        last[last.len() - 1],
        ws.iter().map(|w| w.syncs as u64).sum::<u64>()
    );
    s += &format!(
        "  state found, in operations past the last sync: 0: {}, 1-2: {}, 3-5: {}, 6+: {}; inside an operation: {}\n",
        ahead(0, 1),
        ahead(1, 3),
        ahead(3, 6),
        ahead(6, u32::MAX),
        ws.iter().filter(|w| w.partial.is_some()).count()
    );
    s += "  failures: 0\n";
    s
}

/// Boots rv6 on a fresh image and, `iters` times: starts `t-durable run` — one workload
/// in `/dur0` on even iterations, two at once in `/dur0` and `/dur1` on odd ones — with
/// seeds drawn from `seed`, SIGKILLs QEMU's process group at a moment drawn from the
/// same seed (uniform in the first [`KILL_WINDOW_MS`] after the last start line),
/// requires a clean fsck of the image and the host's check of each directory against
/// its model, then boots again, where `t-durable check` must pass for each and find the
/// same state the host found; the next iteration's workloads run in that boot. Panics at
/// the first failure, naming the seed and the iteration (the crashed image is kept as
/// `crashed.img`).
fn kill_mid_write(iters: u64, seed: u64) -> String {
    let started = std::time::Instant::now();
    let dir = scratch("kill_mid_write");
    let img = rv6_image(&dir, &[]);
    eprintln!("kill mid-write: {iters} iterations, seed {seed}");
    let mut kills: Vec<Kill> = Vec::new();
    for i in 0..=iters {
        let mut s = boot(&img, "", Duration::from_secs(900));
        if let Some(k) = kills.last() {
            let what = format!("seed {seed} iteration {}", i - 1);
            for w in &k.writers {
                let found = guest_check(&mut s, w, &what);
                assert_eq!(found, w.found, "{what}: {}: the guest found the state after op {found}, the host after op {}", w.dir, w.found);
            }
        }
        if i == iters {
            break;
        }
        let what = format!("seed {seed} iteration {i}");
        let mut writers: Vec<Writer> = (0..1 + i % 2)
            .map(|k| Writer { dir: format!("/dur{k}"), seed: mix(seed, 3 * i + k), synced: 0, syncs: 0, found: 0, partial: None })
            .collect();
        let delay_ms = mix(seed, 3 * i + 2) % KILL_WINDOW_MS;
        for w in &writers {
            let bg = if writers.len() > 1 { " &" } else { "" };
            s.send(format!("t-durable run {} {}{bg}\n", w.seed, w.dir).as_bytes()).unwrap();
            s.expect(&format!("t-durable: start seed={} dir={}", w.seed, w.dir), STEP)
                .unwrap_or_else(|e| panic!("{what}: the workload in {} did not start: {e}", w.dir));
        }
        let start = std::time::Instant::now();
        let kill_at = start + Duration::from_millis(delay_ms);
        let mut seen = start;
        loop {
            let now = std::time::Instant::now();
            if now >= kill_at {
                break;
            }
            match s.expect("t-durable: synced ", kill_at - now) {
                Ok(_) => seen = std::time::Instant::now(),
                Err(_) => break,
            }
        }
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(s.pid()), nix::sys::signal::Signal::SIGKILL);
        let since_sync_ms = seen.elapsed().as_millis() as u64;
        let out = s.wait(Duration::from_secs(30));
        assert!(!out.serial.contains("t-durable: FAILED"), "{what}: a workload failed\n{}", out.serial);
        let _ = std::fs::copy(&img, dir.join("crashed.img"));
        let report = frond_fslib::fsck::check_report(&std::fs::read(&img).unwrap());
        assert!(
            report.problems.is_empty(),
            "{what}: killed {delay_ms} ms after the start, {since_sync_ms} ms after the last sync: fsck: {:?}",
            report.problems
        );
        let mut line = format!("kill {i}: {delay_ms} ms after the start, {since_sync_ms} ms after the last sync; fsck clean ({} log blocks pending)", report.log_pending);
        for w in &mut writers {
            (w.synced, w.syncs) = last_synced(&out.serial, &w.dir);
            let host = host_check(&img, &w.dir, w.seed, w.synced).unwrap_or_else(|e| {
                panic!("{what}: killed {delay_ms} ms after the start: {} (seed {}) synced op {}: on the host: {e}", w.dir, w.seed, w.synced)
            });
            w.found = host.op;
            w.partial = host.partial;
            line += &format!(
                "; {} seed {}: synced op {} ({} syncs), state after op {}{}",
                w.dir,
                w.seed,
                w.synced,
                w.syncs,
                w.found,
                w.partial.as_deref().map(|p| format!(" ({p})")).unwrap_or_default()
            );
        }
        eprintln!("{line}");
        kills.push(Kill { delay_ms, since_sync_ms, log_pending: report.log_pending, writers });
    }
    let summary = kill_summary(&kills, seed, started.elapsed());
    let _ = std::fs::write(dir.join("summary.txt"), &summary);
    summary
}

/// `FROND_DURABILITY_ITERS` kills (default 3; `make durability` runs 100), seeded by
/// `FROND_DURABILITY_SEED` (default: the clock; printed, so a failure replays).
#[test]
fn kill_mid_write_keeps_every_synced_write() {
    let iters = std::env::var("FROND_DURABILITY_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let seed = std::env::var("FROND_DURABILITY_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let summary = kill_mid_write(iters, seed);
    eprint!("{summary}");
}
