//! `t-survive DOMAIN`: descriptors survive a crash of `DOMAIN` (`fs` or `virtio-blk0`).
//!
//! Starts four workers, each holding file-system state in the rv6 core while the domain
//! is crashed under them (through the kernel monitor, `crash DOMAIN`), and checks that
//! each carries on with no error:
//! * `reader`: reads the 1 MiB file `/sv/big` in 16 KiB steps with pauses, checking every
//!   byte against the pattern at its offset (the next read continues at the same offset);
//! * `writer`: writes 1 MiB to `/sv/w` in 16 KiB steps with pauses, then reads it all
//!   back through a second descriptor and checks it (the writer's data is complete);
//! * `cwd`: changes to `/sv/sub/deep`, waits past the crash, then creates, writes and
//!   reads `f` by a relative path, opens `../../big` relatively, and checks `getcwd`;
//! * `pipe`: `pwrite` writes 512 KiB into a pipe in slow steps while `pread` blocks on it
//!   and checks the pattern.
//!
//! Every worker prints `t-survive: ROLE: ok start=MS end=MS errors=0` (or `FAILED: …`)
//! and exits 0 on success; the orchestrator prints `t-survive: crash at MS` and, at the
//! end, `t-survive: all ok` or `t-survive: N failed`. The test checks that the crash fell
//! inside every worker's run.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;
use ulib::{RRefVec, O_CREATE, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY};

ulib::program!(main);

const BIG: usize = 1 << 20;
const STEP: usize = 16 << 10;
const PIPE_BYTES: usize = 512 << 10;
const PAUSE_MS: u64 = 25;

fn pattern(off: usize, salt: u8) -> u8 {
    ((off / 7) as u8) ^ (off as u8).rotate_left(3) ^ salt
}

fn main(args: Args) -> i32 {
    match args.get(1) {
        Some("--reader") => reader(),
        Some("--writer") => writer(),
        Some("--cwd") => cwd(),
        Some("--pwrite") => pipe_writer(),
        Some("--pread") => pipe_reader(),
        Some(domain) => orchestrate(domain),
        None => {
            eprintln!("usage: t-survive fs|virtio-blk0");
            2
        }
    }
}

fn fail(role: &str, what: &str, e: Errno) -> i32 {
    println!("t-survive: {role}: FAILED: {what}: {}", e.as_str());
    1
}

fn buf() -> RRefVec<u8> {
    RRefVec::<u8>::try_new_with(STEP, |_| 0).expect("t-survive: out of shared heap")
}

fn setup() -> Result<(), Errno> {
    for d in ["/sv", "/sv/sub", "/sv/sub/deep"] {
        match ulib::mkdir(d) {
            Ok(()) | Err(Errno::Exist) => {}
            Err(e) => return Err(e),
        }
    }
    let f = ulib::open("/sv/big", O_CREATE | O_TRUNC | O_WRONLY)?;
    let mut b = buf();
    for chunk in 0..BIG / STEP {
        for i in 0..STEP {
            b[i] = pattern(chunk * STEP + i, 0);
        }
        let n = ulib::write_rref(f.raw(), &b, STEP)?;
        if n != STEP {
            return Err(Errno::Io);
        }
    }
    ulib::sync()
}

fn orchestrate(domain: &str) -> i32 {
    if let Err(e) = setup() {
        return fail("setup", "making /sv", e);
    }
    let mut pids = Vec::new();
    for role in ["--reader", "--writer", "--cwd"] {
        match ulib::spawn("/bin/t-survive", &["t-survive", role], FdMap::stdio()) {
            Ok(p) => pids.push(p),
            Err(e) => return fail("spawn", role, e),
        }
    }
    let (r, w) = match ulib::pipe() {
        Ok(p) => p,
        Err(e) => return fail("pipe", "pipe", e),
    };
    let fds = |i: i32| FdMap::new(&[i, 1, 2]).unwrap();
    for (role, m) in [("--pread", fds(r.raw())), ("--pwrite", FdMap::new(&[0, 1, 2, w.raw()]).unwrap())] {
        match ulib::spawn("/bin/t-survive", &["t-survive", role], m) {
            Ok(p) => pids.push(p),
            Err(e) => return fail("spawn", role, e),
        }
    }
    drop(r);
    drop(w);
    // Every worker is well inside its run by now (each takes over a second).
    let _ = ulib::sleep_ms(400);
    println!("t-survive: crash at {}", ulib::uptime_ms());
    if let Err(e) = ulib::monitor(&format!("crash {domain}")) {
        return fail("crash", "monitor", e);
    }
    let mut failed = 0;
    for p in pids {
        match ulib::wait(p) {
            Ok(w) if w.status.kind == ExitKind::Exited && w.status.code == 0 => {}
            Ok(w) => {
                println!("t-survive: worker {p} ended {:?}", w.status);
                failed += 1;
            }
            Err(e) => {
                println!("t-survive: wait {p}: {}", e.as_str());
                failed += 1;
            }
        }
    }
    if failed == 0 {
        println!("t-survive: all ok");
    } else {
        println!("t-survive: {failed} failed");
    }
    failed
}

use ulib::ExitKind;

fn done(role: &str, start: u64) -> i32 {
    println!("t-survive: {role}: ok start={start} end={} errors=0", ulib::uptime_ms());
    0
}

fn reader() -> i32 {
    let start = ulib::uptime_ms();
    let f = match ulib::open("/sv/big", O_RDONLY) {
        Ok(f) => f,
        Err(e) => return fail("reader", "open", e),
    };
    let mut b = buf();
    let mut off = 0;
    while off < BIG {
        let n = match ulib::read_rref(f.raw(), &mut b, STEP) {
            Ok(n) => n,
            Err(e) => return fail("reader", &format!("read at {off}"), e),
        };
        if n == 0 {
            println!("t-survive: reader: FAILED: end of file at {off}");
            return 1;
        }
        if let Some(i) = (0..n).find(|&i| b[i] != pattern(off + i, 0)) {
            println!("t-survive: reader: FAILED: wrong byte at {}", off + i);
            return 1;
        }
        off += n;
        let _ = ulib::sleep_ms(PAUSE_MS);
    }
    done("reader", start)
}

fn writer() -> i32 {
    let start = ulib::uptime_ms();
    let f = match ulib::open("/sv/w", O_CREATE | O_TRUNC | O_WRONLY) {
        Ok(f) => f,
        Err(e) => return fail("writer", "open", e),
    };
    let mut b = buf();
    for chunk in 0..BIG / STEP {
        for i in 0..STEP {
            b[i] = pattern(chunk * STEP + i, 0x5a);
        }
        match ulib::write_rref(f.raw(), &b, STEP) {
            Ok(n) if n == STEP => {}
            Ok(n) => {
                println!("t-survive: writer: FAILED: short write {n} at chunk {chunk}");
                return 1;
            }
            Err(e) => return fail("writer", &format!("write of chunk {chunk}"), e),
        }
        let _ = ulib::sleep_ms(PAUSE_MS);
    }
    drop(f);
    let f = match ulib::open("/sv/w", O_RDONLY) {
        Ok(f) => f,
        Err(e) => return fail("writer", "reopen", e),
    };
    match f.stat() {
        Ok(st) if st.size == BIG as u64 => {}
        Ok(st) => {
            println!("t-survive: writer: FAILED: size {} after writing {BIG}", st.size);
            return 1;
        }
        Err(e) => return fail("writer", "fstat", e),
    }
    let mut off = 0;
    while off < BIG {
        let n = match ulib::read_rref(f.raw(), &mut b, STEP) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return fail("writer", "read back", e),
        };
        if let Some(i) = (0..n).find(|&i| b[i] != pattern(off + i, 0x5a)) {
            println!("t-survive: writer: FAILED: wrong byte read back at {}", off + i);
            return 1;
        }
        off += n;
    }
    if off != BIG {
        println!("t-survive: writer: FAILED: read back {off} bytes");
        return 1;
    }
    done("writer", start)
}

fn cwd() -> i32 {
    let start = ulib::uptime_ms();
    if let Err(e) = ulib::chdir("/sv/sub/deep") {
        return fail("cwd", "chdir", e);
    }
    // Hold the working directory across the crash.
    let _ = ulib::sleep_ms(1500);
    let f = match ulib::open("f", O_CREATE | O_TRUNC | O_RDWR) {
        Ok(f) => f,
        Err(e) => return fail("cwd", "open f", e),
    };
    if let Err(e) = f.write_all(b"still here\n") {
        return fail("cwd", "write f", e);
    }
    drop(f);
    let mut got = [0u8; 32];
    let n = match ulib::open("/sv/sub/deep/f", O_RDONLY).and_then(|f| f.read(&mut got)) {
        Ok(n) => n,
        Err(e) => return fail("cwd", "read /sv/sub/deep/f", e),
    };
    if &got[..n] != b"still here\n" {
        println!("t-survive: cwd: FAILED: f holds {:?}", &got[..n]);
        return 1;
    }
    match ulib::open("../../big", O_RDONLY).and_then(|f| f.stat()) {
        Ok(st) if st.size == BIG as u64 => {}
        Ok(st) => {
            println!("t-survive: cwd: FAILED: ../../big has {} bytes", st.size);
            return 1;
        }
        Err(e) => return fail("cwd", "../../big", e),
    }
    match ulib::getcwd() {
        Ok(p) if p == "/sv/sub/deep" => {}
        Ok(p) => {
            println!("t-survive: cwd: FAILED: getcwd says {p}");
            return 1;
        }
        Err(e) => return fail("cwd", "getcwd", e),
    }
    done("cwd", start)
}

fn pipe_writer() -> i32 {
    let start = ulib::uptime_ms();
    let mut b = buf();
    let mut off = 0;
    // The pipe is descriptor 3 (1 stays the console for the report).
    while off < PIPE_BYTES {
        for i in 0..STEP {
            b[i] = pattern(off + i, 0xa5);
        }
        match ulib::write_rref(3, &b, STEP) {
            Ok(n) if n == STEP => off += n,
            Ok(n) => {
                println!("t-survive: pwrite: FAILED: short write {n}");
                return 1;
            }
            Err(e) => return fail("pwrite", "write", e),
        }
        let _ = ulib::sleep_ms(PAUSE_MS * 2);
    }
    let _ = ulib::close(3);
    done("pwrite", start)
}

fn pipe_reader() -> i32 {
    let start = ulib::uptime_ms();
    let mut b = buf();
    let mut off = 0;
    loop {
        let n = match ulib::read_rref(0, &mut b, STEP) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return fail("pread", "read", e),
        };
        if let Some(i) = (0..n).find(|&i| b[i] != pattern(off + i, 0xa5)) {
            println!("t-survive: pread: FAILED: wrong byte at {}", off + i);
            return 1;
        }
        off += n;
    }
    if off != PIPE_BYTES {
        println!("t-survive: pread: FAILED: {off} bytes before end of file");
        return 1;
    }
    done("pread", start)
}
