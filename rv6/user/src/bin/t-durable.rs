//! `t-durable run SEED [DIR [OPS]]` / `t-durable check SEED SYNCED [DIR]`: the
//! kill-mid-write workload and its check (the model and the rules are
//! `ulib::durable`'s). `DIR` is the workload's directory, `/dur` by default; several
//! workloads may run at once in different directories.
//!
//! `run` empties `DIR` (making it if needed), `sync`s and prints
//! `t-durable: start seed=SEED dir=DIR`; from then on the directory's state is the model's after
//! operation 0. It then runs the workload's operations 1, 2, … (`OPS`, default 100000:
//! in practice until the machine is killed) through ordinary system calls — `open` with
//! `O_CREATE`, `O_APPEND` or `O_TRUNC`, `lseek`, `write` in 16 KiB calls, `link` and
//! `unlink` for a rename, `unlink` — and after each operation the model marks, calls
//! `sync` and, once it returned, prints
//! `t-durable: synced OP DIR/FILE LEN CHECKSUM files=N state=SUM` (`FILE` the file
//! the operation wrote, renamed to or unlinked; `LEN CHECKSUM` is `absent -` for an
//! unlinked one; `state` a checksum of the whole directory): everything up to operation
//! `OP` must now survive.
//! A failing call prints `t-durable: FAILED …` and exits 1; the end prints
//! `t-durable: done N ops`.
//!
//! `check` (on the next boot) reads every file in `DIR` and checks it against the
//! model: the state after some operation at or past `SYNCED` (or inside the one after
//! it, as the file system allows), see `ulib::durable::check`. It prints
//! `t-durable: check ok dir=DIR synced=S found=J ahead=J-S files=N bytes=B` (with
//! `partial: WHAT` when inside an operation) and exits 0, or
//! `t-durable: check FAILED dir=DIR synced=S: WHY` and exits 1.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::durable::{self, Op, Workload, DIR, NAMES};
use ulib::prelude::*;
use ulib::{O_APPEND, O_CREATE, O_RDONLY, O_TRUNC, O_WRONLY};

ulib::program!(main);

/// Bytes per `write` call.
const CHUNK: usize = 16 << 10;

fn main(args: Args) -> i32 {
    let num = |i: usize| args.get(i).and_then(|s| s.parse::<u64>().ok());
    match (args.get(1), num(2)) {
        (Some("run"), Some(seed)) => run(args.get(3).unwrap_or(DIR), seed, num(4).unwrap_or(100_000) as u32),
        (Some("check"), Some(seed)) if num(3).is_some() => check(args.get(4).unwrap_or(DIR), seed, num(3).unwrap_or(0) as u32),
        _ => {
            eprintln!("usage: t-durable run SEED [DIR [OPS]] | t-durable check SEED SYNCED [DIR]");
            2
        }
    }
}

fn path(dir: &str, file: usize) -> String {
    format!("{dir}/{}", NAMES[file])
}

/// The directory's entries other than `.` and `..`.
fn entries(dir: &str) -> Result<Vec<String>, Errno> {
    let mut v = Vec::new();
    for e in ulib::read_dir(dir)? {
        let e = e?;
        if !e.is_dot() {
            v.push(e.name().to_string());
        }
    }
    Ok(v)
}

fn setup(dir: &str) -> Result<(), Errno> {
    match ulib::mkdir(dir) {
        Ok(()) | Err(Errno::Exist) => {}
        Err(e) => return Err(e),
    }
    for name in entries(dir)? {
        ulib::unlink(&format!("{dir}/{name}"))?;
    }
    ulib::sync()
}

fn write_chunks(fd: &Fd, data: &[u8]) -> Result<(), Errno> {
    for c in data.chunks(CHUNK) {
        let n = fd.write(c)?;
        if n != c.len() {
            return Err(Errno::Io);
        }
    }
    Ok(())
}

fn exec(dir: &str, op: &Op) -> Result<(), Errno> {
    let path = |f: usize| path(dir, f);
    match op {
        Op::Create { file, data } => write_chunks(&ulib::open(&path(*file), O_CREATE | O_WRONLY)?, data),
        Op::Append { file, data } => write_chunks(&ulib::open(&path(*file), O_WRONLY | O_APPEND)?, data),
        Op::Overwrite { file, off, data } => {
            let fd = ulib::open(&path(*file), O_WRONLY)?;
            fd.seek(*off as i64, Whence::Set)?;
            write_chunks(&fd, data)
        }
        Op::Rewrite { file, data } => write_chunks(&ulib::open(&path(*file), O_WRONLY | O_TRUNC)?, data),
        Op::Rename { from, to } => {
            ulib::link(&path(*from), &path(*to))?;
            ulib::unlink(&path(*from))
        }
        Op::Unlink { file } => ulib::unlink(&path(*file)),
    }
}

fn run(dir: &str, seed: u64, ops: u32) -> i32 {
    if let Err(e) = setup(dir) {
        println!("t-durable: FAILED setup of {dir}: {}", e.as_str());
        return 1;
    }
    println!("t-durable: start seed={seed} dir={dir} at={}", ulib::uptime_ms());
    let mut w = Workload::new(seed);
    for _ in 0..ops {
        let step = w.next_op();
        if let Err(e) = exec(dir, &step.op) {
            println!("t-durable: FAILED op {} {} {}: {}", step.n, step.op.kind(), path(dir, step.op.file()), e.as_str());
            return 1;
        }
        w.apply(&step);
        if step.sync {
            if let Err(e) = ulib::sync() {
                println!("t-durable: FAILED sync after op {} in {dir}: {}", step.n, e.as_str());
                return 1;
            }
            println!("{}", w.report(dir, &step));
        }
    }
    println!("t-durable: done {ops} ops in {dir}");
    0
}

fn read_file(dir: &str, name: &str) -> Result<Vec<u8>, Errno> {
    let fd = ulib::open(&format!("{dir}/{name}"), O_RDONLY)?;
    let st = fd.stat()?;
    if st.kind != FileKind::File {
        return Err(Errno::IsDir);
    }
    let mut v = vec![0u8; st.size as usize + 1];
    let n = fd.read_full(&mut v)?;
    if n != st.size as usize {
        return Err(Errno::Io);
    }
    v.truncate(n);
    Ok(v)
}

fn check(dir: &str, seed: u64, synced: u32) -> i32 {
    let fail = |why: &str| {
        println!("t-durable: check FAILED dir={dir} synced={synced}: {why}");
        1
    };
    let names = match entries(dir) {
        Ok(n) => n,
        Err(e) => return fail(&format!("listing {dir}: {}", e.as_str())),
    };
    let mut disk = Vec::new();
    for name in names {
        match read_file(dir, &name) {
            Ok(d) => disk.push((name, d)),
            Err(e) => return fail(&format!("reading {name}: {}", e.as_str())),
        }
    }
    let bytes: usize = disk.iter().map(|(_, d)| d.len()).sum();
    match durable::check(seed, synced, &disk, durable::MAX_AHEAD) {
        Ok(f) => {
            let partial = f.partial.map(|p| format!(" partial: {p}")).unwrap_or_default();
            println!(
                "t-durable: check ok dir={dir} synced={synced} found={} ahead={} files={} bytes={bytes}{partial}",
                f.op,
                f.op - synced,
                disk.len()
            );
            0
        }
        Err(why) => fail(&why),
    }
}
