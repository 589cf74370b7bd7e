//! `benchsys [ITERS]`: the cost of rv6's system calls, measured with the kernel's clock
//! (`ulib::now_ns`, no system call). Under QEMU's `-icount shift=0` a busy guest
//! nanosecond is one instruction, so the figures are instructions per operation there.
//!
//! Prints one line per figure, `benchsys: op=NAME iters=N ns_per_op=X`:
//! * `getpid` — the null system call (program → proxy → core → back);
//! * `read4k` — a 4 KiB `read` served from the file system's buffer cache (a 64 KiB file
//!   read in 4 KiB steps, one `lseek` back to 0 per 16 reads, included);
//! * `openclose` — `open` + `close` of an existing file by absolute path;
//! * `spawnwait` — `spawn` + `wait` of `/bin/true` (image read from the cache, loaded,
//!   run, removed);
//! * `pipeline` — `benchsys --produce` | `cat` | `benchsys --consume` moving 4 MiB in
//!   64 KiB writes: `bytes=` and `ns=` from spawning the first stage to reaping the last
//!   (this includes time a stage waits for another, which under -icount passes with the
//!   host's clock).

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;
use ulib::{RRefVec, IO_MAX, O_CREATE, O_RDONLY, O_TRUNC, O_WRONLY};

ulib::program!(main);

const PIPE_TOTAL: usize = 4 << 20;

fn report(op: &str, iters: u64, ns: u64) {
    println!("benchsys: op={op} iters={iters} ns_per_op={}", ns / iters.max(1));
}

fn main(args: Args) -> i32 {
    match args.get(1) {
        Some("--produce") => return produce(),
        Some("--consume") => return consume(),
        _ => {}
    }
    let iters: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2000);
    // Warm-up (the first call of each kind allocates in the core).
    // The system call itself (`ulib::getpid` answers from the pid the program got at init).
    let getpid = || ulib::call("getpid", ulib::raw().getpid());
    for _ in 0..10 {
        getpid();
    }
    let t = ulib::now_ns();
    for _ in 0..iters {
        getpid();
    }
    report("getpid", iters, ulib::now_ns() - t);

    let Some(mut buf) = RRefVec::<u8>::try_new_with(IO_MAX, |i| i as u8) else {
        eprintln!("benchsys: out of shared heap");
        return 1;
    };
    let f = match ulib::open("/benchsys.dat", O_CREATE | O_TRUNC | O_WRONLY) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("benchsys: /benchsys.dat: {}", e.as_str());
            return 1;
        }
    };
    if ulib::write_rref(f.raw(), &buf, IO_MAX).is_err() {
        eprintln!("benchsys: writing /benchsys.dat failed");
        return 1;
    }
    drop(f);
    let f = ulib::open("/benchsys.dat", O_RDONLY).expect("benchsys: reopen");
    let mut reads = 0u64;
    let mut spent = 0u64;
    // One untimed pass warms the cache.
    for pass in 0..=iters.div_ceil(16) {
        let _ = ulib::lseek(f.raw(), 0, Whence::Set);
        let t = ulib::now_ns();
        for _ in 0..16 {
            match ulib::read_rref(f.raw(), &mut buf, 4096) {
                Ok(4096) => {}
                other => {
                    eprintln!("benchsys: read gave {other:?}");
                    return 1;
                }
            }
        }
        if pass > 0 {
            spent += ulib::now_ns() - t;
            reads += 16;
        }
    }
    drop(f);
    report("read4k", reads, spent);

    let n = (iters / 4).max(1);
    let t = ulib::now_ns();
    for _ in 0..n {
        match ulib::open("/benchsys.dat", O_RDONLY) {
            Ok(f) => drop(f),
            Err(e) => {
                eprintln!("benchsys: open: {}", e.as_str());
                return 1;
            }
        }
    }
    report("openclose", n, ulib::now_ns() - t);
    let _ = ulib::unlink("/benchsys.dat");

    let n = (iters / 40).max(1);
    let _ = ulib::spawn("/bin/true", &["true"], FdMap::stdio()).and_then(ulib::wait);
    let t = ulib::now_ns();
    for _ in 0..n {
        match ulib::spawn("/bin/true", &["true"], FdMap::stdio()).and_then(ulib::wait) {
            Ok(w) if w.status.code == 0 => {}
            other => {
                eprintln!("benchsys: spawn+wait gave {other:?}");
                return 1;
            }
        }
    }
    report("spawnwait", n, ulib::now_ns() - t);

    let (r1, w1) = ulib::pipe().expect("benchsys: pipe");
    let (r2, w2) = ulib::pipe().expect("benchsys: pipe");
    let t = ulib::now_ns();
    let a = ulib::spawn("/bin/benchsys", &["benchsys", "--produce"], FdMap::new(&[0, w1.raw(), 2]).unwrap());
    let b = ulib::spawn("/bin/cat", &["cat"], FdMap::new(&[r1.raw(), w2.raw(), 2]).unwrap());
    let c = ulib::spawn("/bin/benchsys", &["benchsys", "--consume"], FdMap::new(&[r2.raw(), 1, 2]).unwrap());
    drop((r1, w1, r2, w2));
    let mut ok = true;
    for p in [a, b, c] {
        match p.and_then(ulib::wait) {
            Ok(w) if w.status.code == 0 => {}
            other => {
                eprintln!("benchsys: pipeline stage gave {other:?}");
                ok = false;
            }
        }
    }
    if !ok {
        return 1;
    }
    println!("benchsys: op=pipeline bytes={PIPE_TOTAL} ns={}", ulib::now_ns() - t);
    0
}

fn produce() -> i32 {
    let buf = RRefVec::<u8>::try_new_with(IO_MAX, |i| i as u8).expect("benchsys: out of shared heap");
    let mut sent = 0;
    while sent < PIPE_TOTAL {
        match ulib::write_rref(1, &buf, IO_MAX) {
            Ok(n) => sent += n,
            Err(_) => return 1,
        }
    }
    0
}

fn consume() -> i32 {
    let mut buf = RRefVec::<u8>::try_new_with(IO_MAX, |_| 0).expect("benchsys: out of shared heap");
    let mut got = 0;
    loop {
        match ulib::read_rref(0, &mut buf, IO_MAX) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => return 1,
        }
    }
    if got == PIPE_TOTAL { 0 } else { 1 }
}
