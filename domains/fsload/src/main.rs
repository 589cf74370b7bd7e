//! # dom-fsload — a file-system workload
//!
//! Drives the `Fs` interface (through a recovery proxy the kernel grants) for the storage
//! tests, the crash demos and the benchmark; see `LoadMode`:
//!
//! * `Verify`: round `r` writes files `/load/r{r}f{f}` (`f < files`) with bytes derived
//!   from (seed, r, f, offset), reads each back and compares, syncs every `sync_every`
//!   files and at the end of the round, printing `fsload: synced round R file F` after
//!   each sync; round `r` first removes round `r - 2`'s files so the disk does not fill.
//!   A failed call (the fs or its driver crashed) is counted and repeated.
//! * `Check`: after a reboot, prints the state of every file of rounds `rounds - 1` and
//!   `rounds` (`ok`, `missing`, `short N`, `corrupt at N`): the harness compares it with
//!   the last `synced` line the killed run printed.
//! * `Bench`: sequential write then read of one file in `request_bytes` requests, then
//!   `files` creates and deletes, printing time per figure (under `-icount shift=0` a
//!   nanosecond is one guest instruction).
//!
//! May depend on: `frond-interface`, `frond-domrt`, `rref`. `#![forbid(unsafe_code)]`.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use frond_domrt::{sys, Syscalls};
use frond_interface::fs::*;
use frond_interface::{RRefVec, Remote, RpcResult};

frond_domrt::entry!(FsLoadKind, init);

/// Attempts per operation before a round gives up on it.
const ATTEMPTS: u32 = 50;
/// Pause between attempts.
const RETRY_NS: u64 = 20_000_000;

fn init(_sys: &'static dyn Syscalls, (fs,): (Remote<dyn Fs>,)) -> Remote<dyn FsLoad> {
    Remote::local(Box::new(Load { fs }))
}

struct Load {
    fs: Remote<dyn Fs>,
}

/// Byte `i` of file `f` of round `r`.
fn byte(seed: u64, r: u32, f: u32, i: u64) -> u8 {
    let x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (r as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (f as u64).wrapping_mul(0x94d0_49bb_1331_11eb);
    let w = x.wrapping_add((i / 8).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let w = w ^ (w >> 29);
    (w >> ((i % 8) * 8)) as u8
}

fn name(r: u32, f: u32) -> Path {
    Path::new(&format!("/load/r{r}f{f}")).expect("short path")
}

impl Load {
    /// Repeats `op` while the call fails (the fs died under it) or returns an error that
    /// a crash explains (`Io`); other file-system errors are returned.
    fn retry<T>(&self, st: &mut LoadStats, what: &str, mut op: impl FnMut() -> RpcResult<FsResult<T>>) -> FsResult<T> {
        let mut last = FsError::Io;
        for _ in 0..ATTEMPTS {
            match op() {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(FsError::Io)) => {
                    st.errors += 1;
                    sys().print(&format!("fsload: {what}: I/O error; retrying"));
                }
                Ok(Err(e)) => return Err(e),
                Err(e) => {
                    st.errors += 1;
                    sys().print(&format!("fsload: {what}: {}; retrying", e.as_str()));
                }
            }
            last = FsError::Io;
            sys().sleep_ns(RETRY_NS);
        }
        Err(last)
    }

    fn verify(&self, a: &LoadArgs, st: &mut LoadStats) -> Result<(), String> {
        let req = (a.request_bytes as usize).clamp(1, IO_MAX);
        let mut wbuf = RRefVec::<u8>::try_new_with(req, |_| 0).ok_or("shared heap exhausted")?;
        let mut rbuf = RRefVec::<u8>::try_new_with(req, |_| 0).ok_or("shared heap exhausted")?;
        match self.retry(st, "mkdir /load", || self.fs.create(ROOT_INUM, Path::new("/load").unwrap(), FileType::Dir, 0, 0, true)) {
            Ok(_) | Err(FsError::Exists) => {}
            Err(e) => return Err(format!("mkdir /load: {}", e.as_str())),
        }
        let mut r = 0u32;
        while a.rounds == 0 || r < a.rounds {
            if r >= 2 {
                for f in 0..a.files {
                    match self.retry(st, "unlink", || self.fs.unlink(ROOT_INUM, name(r - 2, f))) {
                        Ok(()) | Err(FsError::NotFound) => {}
                        Err(e) => return Err(format!("unlink r{}f{f}: {}", r - 2, e.as_str())),
                    }
                }
            }
            for f in 0..a.files {
                let p = name(r, f);
                let ino = self
                    .retry(st, "create", || self.fs.create(ROOT_INUM, p, FileType::File, 0, 0, false))
                    .map_err(|e| format!("create r{r}f{f}: {}", e.as_str()))?
                    .inum;
                self.retry(st, "truncate", || self.fs.truncate(ino, 0)).map_err(|e| format!("truncate r{r}f{f}: {}", e.as_str()))?;
                let size = a.file_bytes as u64;
                let mut off = 0u64;
                while off < size {
                    let n = ((size - off) as usize).min(req);
                    for (i, b) in wbuf[..n].iter_mut().enumerate() {
                        *b = byte(a.seed, r, f, off + i as u64);
                    }
                    let w = self
                        .retry(st, "write", || self.fs.write(ino, off, &wbuf, n as u32))
                        .map_err(|e| format!("write r{r}f{f} at {off}: {}", e.as_str()))?;
                    if w as usize != n {
                        return Err(format!("write r{r}f{f} at {off}: {w} of {n} bytes"));
                    }
                    off += n as u64;
                    st.bytes_written += n as u64;
                }
                st.files_written += 1;
                off = 0;
                let mut good = true;
                while off < size {
                    let got = self
                        .retry(st, "read", || self.fs.read(ino, off, &mut rbuf))
                        .map_err(|e| format!("read r{r}f{f} at {off}: {}", e.as_str()))? as usize;
                    if got == 0 {
                        good = false;
                        break;
                    }
                    let got = got.min(rbuf.len());
                    if (0..got).any(|i| rbuf[i] != byte(a.seed, r, f, off + i as u64)) {
                        good = false;
                        break;
                    }
                    off += got as u64;
                    st.bytes_read += got as u64;
                }
                if good {
                    st.files_verified += 1;
                } else {
                    st.mismatches += 1;
                    sys().print(&format!("fsload: MISMATCH in r{r}f{f} at {off}"));
                }
                if (a.sync_every != 0 && (f + 1) % a.sync_every == 0) || f + 1 == a.files {
                    self.retry(st, "sync", || self.fs.sync()).map_err(|e| format!("sync: {}", e.as_str()))?;
                    st.syncs += 1;
                    sys().print(&format!("fsload: synced round {r} file {f}"));
                }
            }
            st.rounds += 1;
            r += 1;
        }
        Ok(())
    }

    fn check(&self, a: &LoadArgs, st: &mut LoadStats) -> Result<(), String> {
        let mut buf = RRefVec::<u8>::try_new_with(IO_MAX, |_| 0).ok_or("shared heap exhausted")?;
        for r in a.rounds.saturating_sub(1)..=a.rounds {
            for f in 0..a.files {
                let state = match self.retry(st, "lookup", || self.fs.lookup(ROOT_INUM, name(r, f))) {
                    Err(FsError::NotFound) => String::from("missing"),
                    Err(e) => format!("error {}", e.as_str()),
                    Ok(s) => {
                        let mut off = 0u64;
                        let mut bad = None;
                        while off < s.size && bad.is_none() {
                            let got = self.retry(st, "read", || self.fs.read(s.inum, off, &mut buf)).map_err(|e| format!("read: {}", e.as_str()))? as usize;
                            if got == 0 {
                                break;
                            }
                            bad = (0..got.min(buf.len())).find(|&i| buf[i] != byte(a.seed, r, f, off + i as u64)).map(|i| off + i as u64);
                            off += got as u64;
                        }
                        match bad {
                            Some(at) => {
                                st.mismatches += 1;
                                format!("corrupt at {at}")
                            }
                            None if s.size < a.file_bytes as u64 => format!("short {}", s.size),
                            None => {
                                st.files_verified += 1;
                                String::from("ok")
                            }
                        }
                    }
                };
                sys().print(&format!("fsload: check r{r}f{f} {state}"));
            }
        }
        Ok(())
    }

    fn bench(&self, a: &LoadArgs, st: &mut LoadStats) -> Result<(), String> {
        let req = (a.request_bytes as usize).clamp(1, IO_MAX);
        let mut buf = RRefVec::<u8>::try_new_with(req, |i| i as u8).ok_or("shared heap exhausted")?;
        let p = Path::new("/bench.dat").unwrap();
        let ino = self.retry(st, "create", || self.fs.create(ROOT_INUM, p, FileType::File, 0, 0, false)).map_err(|e| format!("create: {}", e.as_str()))?.inum;
        self.retry(st, "truncate", || self.fs.truncate(ino, 0)).map_err(|e| format!("truncate: {}", e.as_str()))?;
        let size = a.file_bytes as u64;
        let t0 = sys().now_ns();
        let mut off = 0u64;
        while off < size {
            let n = ((size - off) as usize).min(req);
            let w = self.retry(st, "write", || self.fs.write(ino, off, &buf, n as u32)).map_err(|e| format!("write at {off}: {}", e.as_str()))?;
            if w == 0 {
                return Err(format!("write at {off}: nothing written"));
            }
            off += w as u64;
        }
        self.retry(st, "sync", || self.fs.sync()).map_err(|e| format!("sync: {}", e.as_str()))?;
        let t1 = sys().now_ns();
        st.bytes_written += size;
        off = 0;
        while off < size {
            let got = self.retry(st, "read", || self.fs.read(ino, off, &mut buf)).map_err(|e| format!("read at {off}: {}", e.as_str()))?;
            if got == 0 {
                return Err(format!("read at {off}: end of file before {size}"));
            }
            off += got as u64;
        }
        let t2 = sys().now_ns();
        st.bytes_read += size;
        let mut t3 = t2;
        if a.files > 0 {
            for f in 0..a.files {
                let p = Path::new(&format!("/c{f}")).unwrap();
                self.retry(st, "create", || self.fs.create(ROOT_INUM, p, FileType::File, 0, 0, false)).map_err(|e| format!("create: {}", e.as_str()))?;
                self.retry(st, "unlink", || self.fs.unlink(ROOT_INUM, p)).map_err(|e| format!("unlink: {}", e.as_str()))?;
            }
            t3 = sys().now_ns();
        }
        sys().print(&format!(
            "fsload: bench req={req} bytes={size} write_ns={} read_ns={} files={} create_delete_ns={}",
            t1 - t0,
            t2 - t1,
            a.files,
            t3 - t2
        ));
        Ok(())
    }
}

impl FsLoad for Load {
    fn run(&self, a: LoadArgs) -> RpcResult<LoadStats> {
        let mut st = LoadStats::default();
        let r = match a.mode {
            LoadMode::Verify => self.verify(&a, &mut st),
            LoadMode::Check => self.check(&a, &mut st),
            LoadMode::Bench => self.bench(&a, &mut st),
        };
        if let Err(e) = r {
            sys().print(&format!("fsload: FAILED: {e}"));
        }
        Ok(st)
    }
}
