//! In-QEMU tests of the storage path: the block drivers (virtio-blk, the RAM disk), the
//! file-system domain over them, the console's file commands, images made by `mkfs`
//! (ours and xv6-riscv's), crash and restart of the driver and the file system under a
//! verified workload, and power loss (QEMU killed) during writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use frond_tests::qemu::disk_args;
use frond_tests::{Boot, Session};

const CONSOLE_TIMEOUT: Duration = Duration::from_secs(60);

fn console(s: &mut Session, command: &str) -> String {
    s.send(format!("{command}\n").as_bytes()).unwrap_or_else(|e| panic!("sending {command:?}: {e}"));
    let out = s.expect("frond> ", CONSOLE_TIMEOUT).unwrap_or_else(|e| panic!("response to {command:?}: {e}"));
    // Drop the echoed command line and the prompt.
    out.split_once('\n').map(|(_, rest)| rest).unwrap_or("").trim_end_matches("frond> ").to_string()
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
    s.expect("fs: mounted", CONSOLE_TIMEOUT).ok();
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
