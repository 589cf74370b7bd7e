//! `benchfs [BYTES] [REQBYTES] [FILES]`: the file-system benchmark, from user space.
//!
//! The workload of the kernel's fsload bench mode: a sequential write of one file
//! (`/benchfs.dat`, `BYTES`, default 4 MiB) in requests of `REQBYTES` (default 64 KiB,
//! at most 64 KiB) followed by `sync`, then a sequential read of it, then `FILES`
//! (default 100) creates and deletes of empty files in `/`. Reads and writes lend one
//! `RRefVec` to the core (zero-copy). After the timed read the file is read again and
//! checked (untimed), then removed. Sizes take a `K` or `M` suffix (KiB, MiB).
//!
//! Prints one machine-readable line:
//! `benchfs: write_bytes=B write_ms=W read_ms=R create_delete=N ms=C req_bytes=Q verify=ok`
//! (times from `uptime_ms`: the write includes the `sync`).

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;
use ulib::{RRefVec, IO_MAX, O_CREATE, O_RDWR, O_TRUNC, O_WRONLY};

ulib::program!(main);

const FILE: &str = "/benchfs.dat";

fn size(s: &str) -> Option<u64> {
    let (num, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let arg = |i: usize, default: u64| match argv.get(i) {
        None => Some(default),
        Some(s) => size(s),
    };
    let (Some(bytes), Some(req), Some(files)) = (arg(1, 4 << 20), arg(2, 64 << 10), arg(3, 100)) else {
        eprintln!("usage: benchfs [BYTES] [REQBYTES] [FILES]");
        return 1;
    };
    let req = (req as usize).clamp(1, IO_MAX);
    match bench(bytes, req, files) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("benchfs: FAILED: {e}");
            let _ = ulib::unlink(FILE);
            1
        }
    }
}

fn bench(size: u64, req: usize, files: u64) -> Result<(), String> {
    let err = |what: &str, e: Errno| format!("{what}: {}", e.as_str());
    let mut buf = RRefVec::<u8>::try_new_with(req, |i| i as u8).ok_or("shared heap exhausted")?;
    let fd = ulib::open(FILE, O_RDWR | O_CREATE | O_TRUNC).map_err(|e| err("create", e))?;

    let t0 = ulib::uptime_ms();
    let mut off = 0u64;
    while off < size {
        let n = ((size - off) as usize).min(req);
        let w = fd.write_rref(&buf, n).map_err(|e| err(&format!("write at {off}"), e))?;
        if w != n {
            return Err(format!("write at {off}: {w} of {n} bytes"));
        }
        off += n as u64;
    }
    ulib::sync().map_err(|e| err("sync", e))?;
    let t1 = ulib::uptime_ms();

    fd.seek(0, Whence::Set).map_err(|e| err("seek", e))?;
    off = 0;
    while off < size {
        let got = fd.read_rref(&mut buf, req).map_err(|e| err(&format!("read at {off}"), e))?;
        if got == 0 {
            return Err(format!("read at {off}: end of file before {size}"));
        }
        off += got as u64;
    }
    let t2 = ulib::uptime_ms();

    // Untimed check: byte `o` of the file is `o % req` (every write sent `buf[..n]`).
    fd.seek(0, Whence::Set).map_err(|e| err("seek", e))?;
    off = 0;
    while off < size {
        let got = fd.read_rref(&mut buf, req).map_err(|e| err(&format!("read at {off}"), e))?;
        if got == 0 {
            return Err(format!("verify at {off}: end of file before {size}"));
        }
        let got = got.min(buf.len());
        if let Some(i) = (0..got).find(|&i| buf[i] != ((off + i as u64) % req as u64) as u8) {
            return Err(format!("verify: wrong byte at {}", off + i as u64));
        }
        off += got as u64;
    }
    drop(fd);
    ulib::unlink(FILE).map_err(|e| err("unlink", e))?;

    let t3 = ulib::uptime_ms();
    for f in 0..files {
        let p = format!("/bf{f}");
        ulib::open(&p, O_CREATE | O_WRONLY).map_err(|e| err(&format!("create {p}"), e))?;
        ulib::unlink(&p).map_err(|e| err(&format!("unlink {p}"), e))?;
    }
    let t4 = ulib::uptime_ms();

    println!(
        "benchfs: write_bytes={size} write_ms={} read_ms={} create_delete={files} ms={} req_bytes={req} verify=ok",
        t1 - t0,
        t2 - t1,
        t4 - t3
    );
    Ok(())
}
