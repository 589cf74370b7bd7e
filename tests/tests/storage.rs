//! In-QEMU tests of the storage path: the block drivers (virtio-blk, the RAM disk), the
//! file-system domain over them, the console's file commands, images made by `mkfs`
//! (ours and xv6-riscv's), crash and restart of the driver and the file system under a
//! verified workload, and power loss (QEMU killed) during writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use frond_fslib::dev::MemDisk;
use frond_fslib::layout::{Variant, FSMAGIC};
use frond_fslib::mkfs::{self, Params};
use frond_fslib::FileSystem;
use frond_tests::qemu::disk_args;
use frond_tests::{Boot, Session};

const CONSOLE_TIMEOUT: Duration = Duration::from_secs(60);

fn console(s: &mut Session, command: &str) -> String {
    s.send(format!("{command}\n").as_bytes()).unwrap_or_else(|e| panic!("sending {command:?}: {e}"));
    let out = s.expect("frond> ", CONSOLE_TIMEOUT).unwrap_or_else(|e| panic!("response to {command:?}: {e}"));
    // Drop the echoed command line and the prompt.
    out.split_once('\n').map(|(_, rest)| rest).unwrap_or("").trim_end_matches("frond> ").to_string()
}

/// Waits until the serial output holds `pattern` (it may already have passed: the console
/// prompt comes once the system is assembled) and returns the line it is on.
fn seen(s: &mut Session, pattern: &str) -> String {
    if !s.serial().contains(pattern) {
        s.expect(pattern, CONSOLE_TIMEOUT).unwrap_or_else(|e| panic!("waiting for {pattern:?}: {e}"));
    }
    let serial = s.serial();
    serial.lines().find(|l| l.contains(pattern)).unwrap_or_default().to_string()
}

/// Waits for the file system to be mounted and the storage path ready; returns the mount line.
fn wait_mounted(s: &mut Session) -> String {
    let m = seen(s, "fs: mounted");
    // The console's file commands work once the kernel has recorded the path.
    seen(s, "storage: ready");
    m
}

fn boot_console(cmdline: &str, qemu_args: Vec<std::ffi::OsString>) -> Session {
    let mut s = Boot::new().cmdline(cmdline).qemu_args(qemu_args).timeout(Duration::from_secs(240)).spawn();
    s.expect("frond> ", CONSOLE_TIMEOUT).unwrap_or_else(|e| panic!("no console prompt: {e}"));
    s
}

/// A scratch directory under target/ for this test's images.
fn scratch(test: &str) -> PathBuf {
    let d = frond_tests::qemu::workspace_root().join("target/storage-tests").join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn ram_disk_console_round_trip() {
    let mut s = boot_console("net=off disk=ram ram.mib=8", Vec::new());
    wait_mounted(&mut s);
    let df = console(&mut s, "df");
    assert!(df.contains("on membdev"), "df names the RAM disk\n{df}");
    assert!(df.contains("xv6 format"), "a fresh RAM disk is formatted with the stock format\n{df}");
    let w = console(&mut s, "write /hello.txt hello from frond");
    assert!(w.contains("/hello.txt: 17 bytes"), "{w}");
    let c = console(&mut s, "cat /hello.txt");
    assert!(c.contains("hello from frond"), "{c}");
    console(&mut s, "mkdir /d");
    let w = console(&mut s, "write /d/inner x");
    assert!(w.contains("2 bytes"), "{w}");
    let ls = console(&mut s, "ls /");
    for name in [".", "..", "hello.txt", "d"] {
        assert!(ls.lines().any(|l| l.trim_end().ends_with(&format!(" {name}"))), "`ls /` lacks {name}\n{ls}");
    }
    let rm = console(&mut s, "rm /d");
    assert!(rm.contains("directory not empty"), "{rm}");
    console(&mut s, "rm /d/inner");
    console(&mut s, "rm /d");
    console(&mut s, "rm /hello.txt");
    let ls = console(&mut s, "ls /");
    assert!(!ls.contains("hello.txt") && !ls.contains(" d\n"), "{ls}");
    let c = console(&mut s, "cat /hello.txt");
    assert!(c.contains("no such file or directory"), "{c}");
    let long = format!("write /{} x", "n".repeat(15));
    assert!(console(&mut s, &long).contains("name too long"));
    let df = console(&mut s, "df");
    assert!(df.contains("0 errors"), "{df}");
    s.send(b"quit\n").unwrap();
    s.wait(CONSOLE_TIMEOUT).assert_pass();
}

/// A stock image of `blocks` blocks holding `files` in the root, built with the library
/// the fs domain runs.
fn image_with(path: &Path, blocks: u32, variant: Variant, files: &[(&str, Vec<u8>)]) {
    let mut disk = MemDisk::new(blocks as u64);
    mkfs::format(&mut disk, &Params::new(blocks, 200, variant)).unwrap();
    let mut fs = FileSystem::mount(disk).map_err(|(_, e)| e.to_string()).unwrap();
    for (name, data) in files {
        mkfs::add_file(&mut fs, 1, name.as_bytes(), data).unwrap();
    }
    let (disk, r) = fs.unmount();
    r.unwrap();
    std::fs::write(path, disk.into_image()).unwrap();
}

/// fsck's problems with the image at `path` (after replaying a committed log).
fn fsck(path: &Path) -> Vec<String> {
    frond_fslib::fsck::check(&std::fs::read(path).unwrap())
}

/// The contents of file `name` in the image's tree (`None`: absent).
fn file_in(path: &Path, name: &str) -> Option<Vec<u8>> {
    let tree = frond_fslib::fsck::tree(&std::fs::read(path).unwrap()).unwrap();
    tree.into_iter().find(|(p, _, _)| p == name).map(|(_, _, data)| data)
}

fn pattern(len: usize, k: u32) -> Vec<u8> {
    (0..len).map(|i| ((i as u32).wrapping_mul(7).wrapping_add(k) % 251) as u8).collect()
}

#[test]
fn virtio_disk_made_by_mkfs_is_read_and_written() {
    let dir = scratch("virtio_mkfs");
    let img = dir.join("disk.img");
    let big = pattern(200 * 1024, 3); // through the indirect block
    image_with(&img, 4096, Variant::Stock, &[("hello.txt", b"hello, disk\n".to_vec()), ("big.bin", big.clone())]);
    let mut s = boot_console("net=off", disk_args(&img, false));
    let m = wait_mounted(&mut s);
    assert!(m.contains("xv6 file system"), "{m}");
    let c = console(&mut s, "cat /hello.txt");
    assert!(c.contains("hello, disk"), "{c}");
    let ls = console(&mut s, "ls /");
    assert!(ls.contains(&format!("{} ", big.len())) && ls.contains("big.bin"), "{ls}");
    let w = console(&mut s, "write /from-guest.txt written by frond");
    assert!(w.contains("17 bytes"), "{w}");
    console(&mut s, "mkdir /sub");
    console(&mut s, "write /sub/x y");
    let sync = console(&mut s, "sync");
    assert!(sync.contains("synced"), "{sync}");
    let df = console(&mut s, "df");
    assert!(df.contains("on virtio-blk0") && df.contains(" 0 errors"), "{df}");
    s.send(b"quit\n").unwrap();
    s.wait(CONSOLE_TIMEOUT).assert_pass();
    assert_eq!(fsck(&img), Vec::<String>::new(), "fsck after the guest wrote");
    assert_eq!(file_in(&img, "/from-guest.txt").as_deref(), Some(&b"written by frond\n"[..]));
    assert_eq!(file_in(&img, "/sub/x").as_deref(), Some(&b"y\n"[..]));
    assert_eq!(file_in(&img, "/big.bin"), Some(big), "the guest's writes left the big file alone");
}

/// An image made by xv6-riscv's own mkfs (see domains/fslib/testdata/README.md) mounts,
/// reads, takes writes, and stays a valid stock image.
#[test]
fn xv6_made_image_mounts_and_stays_valid_for_xv6() {
    let dir = scratch("xv6_image");
    let img = dir.join("xv6.img");
    let gz = frond_tests::qemu::workspace_root().join("domains/fslib/testdata/xv6-small.img.gz");
    let out = std::process::Command::new("gzip").arg("-dc").arg(&gz).output().expect("gzip");
    assert!(out.status.success(), "gzip -dc {}", gz.display());
    std::fs::write(&img, &out.stdout).unwrap();
    let readme = file_in(&img, "/README").expect("the fixture has /README");
    let mut s = boot_console("net=off", disk_args(&img, false));
    let m = wait_mounted(&mut s);
    assert!(m.contains("xv6 file system: 2000 blocks"), "{m}");
    let c = console(&mut s, "cat /README");
    let first = String::from_utf8_lossy(&readme).lines().next().unwrap_or("").to_string();
    assert!(c.contains(&first), "cat /README shows its first line {first:?}\n{c}");
    console(&mut s, "write /frond.txt hello xv6");
    console(&mut s, "rm /small.bin");
    console(&mut s, "sync");
    s.send(b"quit\n").unwrap();
    s.wait(CONSOLE_TIMEOUT).assert_pass();
    let bytes = std::fs::read(&img).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[1024..1028].try_into().unwrap()), FSMAGIC, "still a stock xv6 image");
    assert_eq!(fsck(&img), Vec::<String>::new());
    assert_eq!(file_in(&img, "/frond.txt").as_deref(), Some(&b"hello xv6\n"[..]));
    assert!(file_in(&img, "/small.bin").is_none());
    assert_eq!(file_in(&img, "/README"), Some(readme));
}

#[test]
fn read_only_disk_refuses_writes() {
    let dir = scratch("read_only");
    let img = dir.join("ro.img");
    image_with(&img, 2000, Variant::Stock, &[("a.txt", b"read me\n".to_vec())]);
    let before = std::fs::read(&img).unwrap();
    let mut s = boot_console("net=off", disk_args(&img, true));
    let m = wait_mounted(&mut s);
    assert!(m.contains("(read-only)"), "{m}");
    assert!(console(&mut s, "cat /a.txt").contains("read me"));
    let w = console(&mut s, "write /b.txt no");
    assert!(w.contains("read-only"), "{w}");
    let df = console(&mut s, "df");
    assert!(df.contains("(read-only)"), "{df}");
    s.send(b"quit\n").unwrap();
    s.wait(CONSOLE_TIMEOUT).assert_pass();
    assert!(std::fs::read(&img).unwrap() == before, "a read-only disk was written");
}

/// A device holding something that is not a file system is refused, not formatted.
#[test]
fn garbage_disk_is_refused_not_formatted() {
    let dir = scratch("garbage");
    let img = dir.join("garbage.img");
    let junk = pattern(2 * 1024 * 1024, 11);
    std::fs::write(&img, &junk).unwrap();
    let mut s = boot_console("net=off", disk_args(&img, false));
    seen(&mut s, "not mounted: not an xv6 file system");
    let ls = console(&mut s, "ls /");
    assert!(ls.contains("fs domain") || ls.contains("no file system"), "{ls}");
    s.send(b"quit\n").unwrap();
    s.wait(CONSOLE_TIMEOUT).assert_pass();
    assert!(std::fs::read(&img).unwrap() == junk, "a foreign disk was written");
}

/// Runs the verified workload on a fresh virtio disk under a crash schedule; returns the
/// serial log and the image.
fn fsload_under_crashes(test: &str, crashes: &str, large: bool) -> (String, PathBuf) {
    let dir = scratch(test);
    let img = dir.join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    let cmd = format!(
        "net=off fs.large={} fsload=verify fsload.rounds=80 fsload.files=6 fsload.bytes=98304 fsload.req=16384 fsload.sync=2 fs.crash={crashes}",
        if large { "on" } else { "off" }
    );
    let mut s = boot_console(&cmd, disk_args(&img, false));
    let done = s.expect("fsload: done:", Duration::from_secs(200)).unwrap_or_else(|e| panic!("{e}"));
    s.expect("\n", CONSOLE_TIMEOUT).unwrap();
    console(&mut s, "sync");
    let domains = console(&mut s, "domains");
    s.send(b"quit\n").unwrap();
    let out = s.wait(CONSOLE_TIMEOUT);
    out.assert_pass();
    let _ = (done, domains);
    (out.serial.clone(), img)
}

fn assert_workload_clean(serial: &str, img: &Path, crashed: &str) {
    let done_at = serial.find("fsload: done:").expect("a done line");
    let last_crash = serial.rfind(&format!("crash: killed `{crashed}`")).expect("a crash");
    assert!(last_crash < done_at, "every crash hit the running workload\n{serial}");
    let line = serial.lines().find(|l| l.contains("fsload: done:")).expect("a done line");
    assert!(line.contains("80 rounds, 480 files written, 480 verified, 0 mismatches"), "{line}\n{serial}");
    assert!(!serial.contains("MISMATCH") && !serial.contains("fsload: FAILED"), "{serial}");
    assert_eq!(fsck(img), Vec::<String>::new(), "fsck after the run");
}

#[test]
fn block_driver_crashes_are_invisible_to_the_file_system() {
    let (serial, img) = fsload_under_crashes("blk_crash", "virtio-blk0@300,virtio-blk0@900,virtio-blk0@1600", false);
    assert_eq!(serial.matches("crash: killed `virtio-blk0`").count(), 3, "{serial}");
    assert_workload_clean(&serial, &img, "virtio-blk0");
    // The recovery proxy restarted the driver and resubmitted: the fs never saw an error.
    let line = serial.lines().find(|l| l.contains("fsload: done:")).unwrap();
    assert!(line.contains(" 0 errors"), "{line}");
    assert!(serial.matches("virtio-blk 00:12.0 capacity").count() >= 4, "the driver came back each time\n{serial}");
}

#[test]
fn file_system_crashes_lose_nothing_committed() {
    let (serial, img) = fsload_under_crashes("fs_crash", "fs@400,fs@1300", true);
    assert_eq!(serial.matches("crash: killed `fs`").count(), 2, "{serial}");
    assert!(serial.matches("fs: mounted large-file file system").count() >= 3, "the fs mounted again\n{serial}");
    assert_workload_clean(&serial, &img, "fs");
}

/// Power loss: QEMU is SIGKILLed at a random moment of a write workload; the image is
/// consistent (fsck) and every file the workload had synced is there on the next boot.
#[test]
fn power_loss_keeps_every_synced_write() {
    let dir = scratch("power_loss");
    let img = dir.join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    for iteration in 0..3u64 {
        let args = "fsload.files=6 fsload.bytes=49152 fsload.req=16384 fsload.sync=2";
        let mut s = boot_console(&format!("net=off fsload=verify fsload.rounds=0 {args}"), disk_args(&img, false));
        // Let it sync a few times, then cut the power somewhere in the next stretch.
        for _ in 0..3 {
            s.expect("fsload: synced round", Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}"));
        }
        let delay = (seed.wrapping_mul(6364136223846793005).wrapping_add(iteration * 1442695040888963407) >> 33) % 1500;
        std::thread::sleep(Duration::from_millis(delay));
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(s.pid()), nix::sys::signal::Signal::SIGKILL);
        let out = s.wait(CONSOLE_TIMEOUT);
        let (round, file) = out
            .serial
            .lines()
            .filter_map(|l| {
                let rest = l.split("fsload: synced round ").nth(1)?;
                let (r, f) = rest.split_once(" file ")?;
                Some((r.trim().parse::<u32>().ok()?, f.trim().parse::<u32>().ok()?))
            })
            .last()
            .expect("synced lines");
        let problems = fsck(&img);
        assert!(problems.is_empty(), "iteration {iteration} (killed {delay} ms after the third sync): fsck: {problems:?}");
        // The next boot replays the log and checks the files.
        let mut s = boot_console(&format!("net=off fsload=check fsload.rounds={round} {args}"), disk_args(&img, false));
        let done = s.expect("fsload: done:", Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}"));
        for f in 0..=file {
            assert!(done.contains(&format!("fsload: check r{round}f{f} ok")), "iteration {iteration}: r{round}f{f} was synced\n{done}");
        }
        s.send(b"quit\n").unwrap();
        s.wait(CONSOLE_TIMEOUT).assert_pass();
        eprintln!("power loss {iteration}: killed {delay} ms after the third sync; last synced r{round}f{file}; all present, fsck clean");
    }
}

/// An explicit restart of the fs (whose commit thread sleeps inside it) reloads it every
/// time: the next generation is loaded only once the previous one's image is unmapped,
/// even when the thread reclaiming it is preempted half-way (a restart right after boot
/// once failed with "page already mapped").
#[test]
fn restarting_the_fs_repeatedly_always_reloads_it() {
    let mut s = boot_console("net=off disk=ram ram.mib=8", Vec::new());
    wait_mounted(&mut s);
    for i in 0..15 {
        let r = console(&mut s, "restart fs");
        assert!(r.contains("restarted: generation"), "restart {i}: {r}");
    }
    let w = console(&mut s, "write /after.txt still here");
    assert!(w.contains("11 bytes"), "{w}");
    s.send(b"quit\n").unwrap();
    s.wait(CONSOLE_TIMEOUT).assert_pass();
}
