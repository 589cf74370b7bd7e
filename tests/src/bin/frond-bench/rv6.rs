//! rv6's benchmark in `make bench` (section `rv6`; see `docs/rv6.md`, "Benchmark").
//!
//! Each round boots Frond twice with identical QEMU flags (TCG, `-icount shift=0`, the same
//! kind of virtio-blk disk, freshly made each time):
//! * `rv6=on` on an image made by `frond-mkfs` (large-file variant, rv6's programs in
//!   `/bin`), where the shell runs `benchsys` (system-call costs: `getpid`, a 4 KiB read
//!   from the buffer cache, `open`+`close`, `spawn`+`wait` of `/bin/true`, a three-stage
//!   pipeline) and `benchfs` (write, sync, read back a file; create and delete files);
//! * `fsload=bench` on an empty image, the same `benchfs` workload run by the workload
//!   domain straight on the `Fs` interface, without rv6.
//!
//! Under `-icount shift=0` a busy guest nanosecond is one instruction: the system-call
//! figures are guest instructions per operation. Time a guest spends halted (waiting for
//! the disk, a pipe stage waiting for another) still passes with the host's clock, so the
//! MB/s figures and the ratio rv6 / direct are comparable only within one run.
//! `FROND_BENCH_RV6_ROUNDS` (default 3) sets the rounds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use frond_tests::qemu::{disk_args, workspace_root};
use frond_tests::{Accel, Boot};

use super::{fmt, storage, Record, Stats};

const FILE_BYTES: u64 = 4 << 20;
const REQ: u32 = 64 << 10;
const FILES: u32 = 100;
const BOOT_TIMEOUT: Duration = Duration::from_secs(900);
const STEP: Duration = Duration::from_secs(600);
const SYSCALLS: [&str; 4] = ["getpid", "read4k", "openclose", "spawnwait"];

fn user_dir() -> PathBuf {
    std::env::var_os("FROND_USER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/domains/x86_64-unknown-none/user"))
}

/// Makes the rv6 image with `frond-mkfs` (which `make bench` builds).
fn rv6_image(path: &Path) -> Result<(), String> {
    let mkfs = workspace_root().join("target/debug/frond-mkfs");
    let mut progs: Vec<PathBuf> = std::fs::read_dir(user_dir())
        .map_err(|e| format!("{}: {e} (run `make build`)", user_dir().display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.extension().is_none())
        .collect();
    progs.sort();
    let out = Command::new(&mkfs)
        .args(["build", "--large", "--size", "65536"])
        .arg(path)
        .arg("--into")
        .arg("bin")
        .args(&progs)
        .output()
        .map_err(|e| format!("{}: {e} (make bench builds it)", mkfs.display()))?;
    if !out.status.success() {
        return Err(format!("frond-mkfs: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

fn fresh_image(path: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.set_len(64 << 20).map_err(|e| format!("{}: {e}", path.display()))
}

/// `key=value` of a line starting with `prefix`.
fn field(serial: &str, prefix: &str, key: &str) -> Option<f64> {
    let line = serial.lines().find(|l| l.starts_with(prefix))?;
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.trim().parse().ok())
}

struct Rv6Run {
    /// Instructions per operation, in `SYSCALLS` order.
    syscalls: Vec<f64>,
    pipeline_mb_s: f64,
    write_mb_s: f64,
    read_mb_s: f64,
    create_delete_us: f64,
}

fn rv6_run(dir: &Path, round: usize) -> Result<Rv6Run, String> {
    let img = dir.join("rv6.img");
    rv6_image(&img)?;
    let mut s = Boot::new()
        .accel(Accel::Tcg)
        .name(format!("bench-rv6-{round}"))
        .cmdline("net=off rv6=on")
        .qemu_args(disk_args(&img, false))
        .qemu_args(["-icount", "shift=0"])
        .timeout(BOOT_TIMEOUT)
        .try_spawn()
        .map_err(|e| format!("rv6 boot: {e}"))?;
    s.expect("\n$ ", STEP).map_err(|e| format!("rv6: no shell prompt: {e}"))?;
    s.send(b"benchsys 2000\n").map_err(|e| e.to_string())?;
    s.expect("op=pipeline", STEP).map_err(|e| format!("benchsys: {e}"))?;
    s.expect("\n$ ", STEP).map_err(|e| e.to_string())?;
    s.send(format!("benchfs {FILE_BYTES} {REQ} {FILES}\n").as_bytes()).map_err(|e| e.to_string())?;
    s.expect("benchfs: write_bytes", STEP).map_err(|e| format!("benchfs: {e}"))?;
    s.expect("\n$ ", STEP).map_err(|e| e.to_string())?;
    let serial = s.serial().replace('\r', "");
    drop(s);
    let mut syscalls = Vec::new();
    for op in SYSCALLS {
        let v = field(&serial, &format!("benchsys: op={op} "), "ns_per_op").ok_or_else(|| format!("no benchsys {op} line"))?;
        syscalls.push(v);
    }
    let pipe_ns = field(&serial, "benchsys: op=pipeline ", "ns").ok_or("no pipeline line")?;
    let bytes = field(&serial, "benchsys: op=pipeline ", "bytes").ok_or("no pipeline bytes")?;
    let b = |k: &str| field(&serial, "benchfs: ", k).ok_or_else(|| format!("no benchfs {k}="));
    let wb = b("write_bytes")?;
    Ok(Rv6Run {
        syscalls,
        pipeline_mb_s: bytes / 1e6 / (pipe_ns / 1e9),
        write_mb_s: wb / 1e6 / (b("write_ms")? / 1e3),
        read_mb_s: wb / 1e6 / (b("read_ms")? / 1e3),
        create_delete_us: b("ms")? * 1000.0 / b("create_delete")?,
    })
}

struct DirectRun {
    write_mb_s: f64,
    read_mb_s: f64,
    create_delete_us: f64,
}

fn direct_run(dir: &Path, round: usize) -> Result<DirectRun, String> {
    let img = dir.join("direct.img");
    fresh_image(&img)?;
    let mut s = Boot::new()
        .accel(Accel::Tcg)
        .name(format!("bench-rv6-direct-{round}"))
        .cmdline(format!("net=off disk=virtio fs.large=on fsload=bench fsload.bytes={FILE_BYTES} fsload.req={REQ} fsload.files={FILES}"))
        .qemu_args(disk_args(&img, false))
        .qemu_args(["-icount", "shift=0"])
        .timeout(BOOT_TIMEOUT)
        .try_spawn()
        .map_err(|e| format!("fsload boot: {e}"))?;
    s.expect("fsload: done", STEP).map_err(|e| format!("fsload: {e}"))?;
    let r = storage::parse_frond(&s.serial())?;
    drop(s);
    let mb_s = |ns: u64| r.bytes as f64 / 1e6 / (ns as f64 / 1e9);
    Ok(DirectRun {
        write_mb_s: mb_s(r.write_ns),
        read_mb_s: mb_s(r.read_ns),
        create_delete_us: r.create_delete_ns as f64 / 1e3 / r.files.max(1) as f64,
    })
}

pub fn run(records: &mut Vec<Record>, table: &mut String) -> Result<(), String> {
    let rounds: usize = match std::env::var("FROND_BENCH_RV6_ROUNDS") {
        Ok(v) => v.parse().map_err(|_| format!("FROND_BENCH_RV6_ROUNDS={v}: not a number"))?,
        Err(_) => 3,
    };
    let dir = workspace_root().join("target/bench/rv6");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("frond-bench: rv6, {rounds} rounds of (rv6 benchsys+benchfs, fsload direct) under -icount shift=0");
    let mut rv6 = Vec::new();
    let mut direct = Vec::new();
    for round in 0..rounds {
        rv6.push(rv6_run(&dir, round)?);
        direct.push(direct_run(&dir, round)?);
    }
    let _ = writeln!(
        table,
        "\nrv6 system calls (guest instructions per operation, -icount shift=0, median of {rounds} boots)\n{:<12} {:>10} {:>10} {:>10}",
        "operation", "min", "median", "max"
    );
    for (i, op) in SYSCALLS.iter().enumerate() {
        let v: Vec<f64> = rv6.iter().map(|r| r.syscalls[i]).collect();
        let st = Stats::of(&v);
        let _ = writeln!(table, "{op:<12} {:>10} {:>10} {:>10}", fmt(st.min, 0), fmt(st.median, 0), fmt(st.max, 0));
        records.push(Record::new(&format!("rv6_{op}"), "icount", "instructions_per_op", "instructions").samples(v));
    }
    let pipe: Vec<f64> = rv6.iter().map(|r| r.pipeline_mb_s).collect();
    let _ = writeln!(
        table,
        "three-stage pipeline (benchsys | cat | benchsys, 4 MiB): {} MB/s guest time (median; min {}, max {})",
        fmt(Stats::of(&pipe).median, 1),
        fmt(Stats::of(&pipe).min, 1),
        fmt(Stats::of(&pipe).max, 1)
    );
    records.push(Record::new("rv6_pipeline", "icount", "throughput", "MB/s").samples(pipe));
    let _ = writeln!(
        table,
        "\nbenchfs through rv6 vs the same workload on the fs domain directly (fsload), {} MiB in {} KiB requests, {FILES} files; guest time, -icount\n{:<22} {:>12} {:>12} {:>8}",
        FILE_BYTES >> 20,
        REQ >> 10,
        "figure (median)",
        "rv6",
        "direct",
        "rv6/dir"
    );
    type Pick = fn(&Rv6Run, &DirectRun) -> (f64, f64);
    let rows: [(&str, &str, &'static str, Pick); 3] = [
        ("write MB/s", "write", "MB/s", |r, d| (r.write_mb_s, d.write_mb_s)),
        ("read MB/s", "read", "MB/s", |r, d| (r.read_mb_s, d.read_mb_s)),
        ("create+delete us/file", "create_delete", "us", |r, d| (r.create_delete_us, d.create_delete_us)),
    ];
    for (label, key, unit, pick) in rows {
        let (a, b): (Vec<f64>, Vec<f64>) = rv6.iter().zip(&direct).map(|(r, d)| pick(r, d)).unzip();
        let (ma, mb) = (Stats::of(&a).median, Stats::of(&b).median);
        let _ = writeln!(table, "{label:<22} {:>12} {:>12} {:>8}", fmt(ma, 1), fmt(mb, 1), fmt(ma / mb, 2));
        records.push(Record::new(&format!("benchfs_{key}"), "rv6", "guest_time", unit).samples(a));
        records.push(Record::new(&format!("benchfs_{key}"), "direct", "guest_time", unit).samples(b));
    }
    Ok(())
}
