//! `frond-profile`: guest instructions per symbol for any in-kernel benchmark
//! (`make profile BENCH=NAME`).
//!
//! How it counts, exactly:
//! 1. QEMU runs the kernel with `bench=NAME,iters=N,profile` under TCG with
//!    `one-insn-per-tb=on` and `-icount shift=0` (the same instruction counting as
//!    `make bench`), no TB chaining, and an HMP monitor on a Unix socket.
//! 2. Right before its measured region the kernel prints where each domain image is loaded
//!    (`kbench-profile domain slot=S base=B span=L crate=C`), then
//!    `kbench-profile: begin`, and waits for a byte on the serial port. The profiler
//!    switches on QEMU's execution log (`log exec,nochain`: one line per executed
//!    translation block, and every block is one instruction) and sends the byte. After the
//!    region the kernel prints `kbench-profile: end tsc=T` and waits again; the profiler
//!    switches the log off and lets it finish.
//! 3. Every logged guest PC between the execution of `frond_profile_begin` and of
//!    `frond_profile_end` is counted, then attributed to a symbol: the kernel ELF's for
//!    kernel addresses, each domain crate's ELF (from `target/domains/...`) shifted by its
//!    load base for domain addresses. Names are demangled without their hash.
//!
//! Output: the instructions per iteration of every symbol (and per module), largest
//! first, the total next to the kernel's own TSC figure for the region, and with
//! `--annotate TEXT` the disassembly (objdump) of every symbol whose name contains TEXT
//! with each instruction's count per iteration.
//!
//! Figures are per benchmark iteration (`kbench` iterations; for the forwarding
//! benchmarks an iteration is a packet).

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use frond_tests::qemu::workspace_root;
use frond_tests::{Accel, QemuSpec, SerialMode};
use object::{Object, ObjectSymbol, SymbolKind};

const USAGE: &str = "\
usage: frond-profile BENCH [--iters N] [--top K] [--annotate TEXT]... [--keep-log]

  BENCH            an in-kernel benchmark (kernel/src/kbench.rs), e.g. proxy_null_call
  --iters N        iterations to profile (default: a per-benchmark figure small enough
                   for the execution log; forwarding benchmarks need a multiple of 2 × batch)
  --top K          symbols to list (default 40; 0 = all)
  --annotate TEXT  disassemble every symbol whose demangled name contains TEXT, with
                   instructions per iteration on each executed instruction
  --keep-log       keep QEMU's execution log (target/profile/BENCH.log)

environment: FROND_KERNEL, FROND_BOOT_MODULE, FROND_QEMU, FROND_DOMAIN_DIR (domain ELFs;
             default target/domains/x86_64-unknown-none/release)";

struct Args {
    bench: String,
    iters: Option<u64>,
    top: usize,
    annotate: Vec<String>,
    keep_log: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args { bench: String::new(), iters: None, top: 40, annotate: Vec::new(), keep_log: false };
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--iters" => {
                let v = it.next().ok_or("--iters needs a value")?;
                args.iters = Some(v.parse().map_err(|_| format!("--iters {v}: not a number"))?);
            }
            "--top" => {
                let v = it.next().ok_or("--top needs a value")?;
                args.top = v.parse().map_err(|_| format!("--top {v}: not a number"))?;
            }
            "--annotate" => args.annotate.push(it.next().ok_or("--annotate needs a value")?),
            "--keep-log" => args.keep_log = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if args.bench.is_empty() => args.bench = s.to_string(),
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    if args.bench.is_empty() {
        return Err("missing BENCH".into());
    }
    Ok(args)
}

/// Iterations profiled by default: enough to make per-iteration figures exact, few enough
/// for the log (one line per instruction).
fn default_iters(bench: &str) -> u64 {
    match bench {
        "domain_restart" => 10,
        "thread_spawn_join" => 50,
        "fwd_null_b1" | "fwd_null_direct_b1" => 2_000,
        "fwd_null_b8" | "fwd_null_direct_b8" => 3_200,
        "fwd_null_b32" | "fwd_null_direct_b32" => 6_400,
        _ => 1_000,
    }
}

// ---------------------------------------------------------------------------------------
// Symbols

/// Code symbols of the kernel and the loaded domains, as sorted address ranges.
struct Symbols {
    /// (start, end, module index, name index), sorted by start.
    ranges: Vec<(u64, u64, usize, usize)>,
    names: Vec<String>,
    /// Module names and, for annotation, (ELF path, load base).
    modules: Vec<(String, PathBuf, u64)>,
}

impl Symbols {
    fn new() -> Symbols {
        Symbols { ranges: Vec::new(), names: Vec::new(), modules: Vec::new() }
    }

    /// Adds the function symbols of the ELF at `path`, shifted by `base`, as module `module`.
    fn add_elf(&mut self, module: &str, path: &Path, base: u64) -> Result<(), String> {
        let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file = object::File::parse(&*bytes).map_err(|e| format!("{}: not an ELF file ({e})", path.display()))?;
        let m = self.modules.len();
        self.modules.push((module.to_string(), path.to_path_buf(), base));
        let mut list: Vec<(u64, u64, String)> = Vec::new();
        for s in file.symbols() {
            if s.kind() != SymbolKind::Text || !s.is_definition() {
                continue;
            }
            let Ok(name) = s.name() else { continue };
            if name.is_empty() || name.starts_with(".L") {
                continue;
            }
            list.push((s.address(), s.size(), format!("{:#}", rustc_demangle::demangle(name))));
        }
        if list.is_empty() {
            return Err(format!("{}: no function symbols (stripped?)", path.display()));
        }
        list.sort_by_key(|&(a, ..)| a);
        for i in 0..list.len() {
            let (addr, size, ref name) = list[i];
            // Symbols without a size reach up to the next one.
            let end = if size > 0 { addr + size } else { list.get(i + 1).map_or(addr + 1, |n| n.0) };
            self.names.push(name.clone());
            self.ranges.push((base + addr, base + end, m, self.names.len() - 1));
        }
        self.ranges.sort_by_key(|r| r.0);
        Ok(())
    }

    /// The symbol range holding `pc`: (module, name index); `None` if none does.
    fn lookup(&self, pc: u64) -> Option<(usize, usize)> {
        let i = self.ranges.partition_point(|r| r.0 <= pc);
        // Several ranges may start before pc (aliases, nested sizes): take the closest
        // one that contains it.
        self.ranges[..i].iter().rev().take(8).find(|r| pc < r.1).map(|r| (r.2, r.3))
    }

    fn find(&self, name: &str) -> Option<(u64, u64)> {
        let idx = self.names.iter().position(|n| n == name)?;
        self.ranges.iter().find(|r| r.3 == idx).map(|r| (r.0, r.1))
    }
}

// ---------------------------------------------------------------------------------------
// Running QEMU

struct Domain {
    base: u64,
    crate_name: String,
}

struct Run {
    domains: Vec<Domain>,
    region_tsc: Option<u64>,
    kbench_line: Option<String>,
}

/// Sends one HMP command and waits for the next prompt.
fn monitor(sock: &mut UnixStream, cmd: &str) -> Result<(), String> {
    sock.write_all(format!("{cmd}\n").as_bytes()).map_err(|e| format!("monitor: {e}"))?;
    read_prompt(sock)
}

fn read_prompt(sock: &mut UnixStream) -> Result<(), String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen).contains("(qemu) ") {
        if Instant::now() > deadline {
            return Err("monitor: no prompt".into());
        }
        let n = sock.read(&mut buf).map_err(|e| format!("monitor: {e}"))?;
        if n == 0 {
            return Err("monitor: closed".into());
        }
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

fn connect_monitor(path: &Path) -> Result<UnixStream, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match UnixStream::connect(path) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(30))).ok();
                read_prompt(&mut s)?;
                return Ok(s);
            }
            Err(e) if Instant::now() > deadline => return Err(format!("monitor {}: {e}", path.display())),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn run_qemu(bench: &str, iters: u64, log: &Path, sock_path: &Path) -> Result<Run, String> {
    let cmdline = format!("bench={bench},iters={iters},profile");
    let mut spec = QemuSpec::from_env(&cmdline, SerialMode::Batch).map_err(|e| e.to_string())?;
    spec.accel = Accel::Tcg;
    spec.extra_args.clear();
    let mut args = spec.args();
    // One instruction per translation block, so that the execution log has one line per
    // executed instruction.
    if let Some(i) = args.iter().position(|a| a == "-accel") {
        args[i + 1] = "tcg,one-insn-per-tb=on".into();
    }
    let _ = fs::remove_file(sock_path);
    args.extend(
        [
            "-icount".to_string(),
            "shift=0".into(),
            "-d".into(),
            "nochain".into(),
            "-D".into(),
            log.display().to_string(),
            "-monitor".into(),
            format!("unix:{},server=on,wait=off", sock_path.display()),
        ]
        .map(Into::into),
    );
    let mut child: Child = Command::new(&spec.qemu)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", spec.qemu.display()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let child = Arc::new(Mutex::new(child));
    {
        // A run that hangs is ended.
        let child = Arc::clone(&child);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1800));
            let _ = child.lock().map(|mut c| c.kill());
        });
    }
    let mut mon: Option<UnixStream> = None;
    let mut run = Run { domains: Vec::new(), region_tsc: None, kbench_line: None };
    let mut began = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("reading the serial port: {e}"))?;
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("kbench-profile domain ") {
            let field = |k: &str| rest.split_whitespace().find_map(|f| f.strip_prefix(k).map(str::to_string));
            let base = field("base=0x").and_then(|b| u64::from_str_radix(&b, 16).ok());
            match (base, field("crate=")) {
                (Some(base), Some(crate_name)) => run.domains.push(Domain { base, crate_name }),
                _ => return Err(format!("unparsable line: {line}")),
            }
        } else if line == "kbench-profile: begin" {
            let m = match &mut mon {
                Some(m) => m,
                None => mon.insert(connect_monitor(sock_path)?),
            };
            monitor(m, "log exec,nochain")?;
            began = true;
            stdin.write_all(b"g").and_then(|_| stdin.flush()).map_err(|e| format!("serial: {e}"))?;
        } else if let Some(t) = line.strip_prefix("kbench-profile: end tsc=") {
            run.region_tsc = t.parse().ok();
            if let Some(m) = &mut mon {
                monitor(m, "log none")?;
            }
            stdin.write_all(b"g").and_then(|_| stdin.flush()).map_err(|e| format!("serial: {e}"))?;
        } else if line.starts_with("kbench name=") {
            run.kbench_line = Some(line.to_string());
        } else if line.starts_with("kbench:") || line.contains("panic") || line.contains("PANIC") {
            eprintln!("guest: {line}");
        }
    }
    let status = child.lock().map_err(|_| "lock")?.wait().map_err(|e| e.to_string())?;
    if !began {
        return Err(format!("the guest never reached the profiled region (QEMU exit {status})"));
    }
    if run.kbench_line.is_none() {
        return Err(format!("the benchmark did not finish (QEMU exit {status})"));
    }
    Ok(run)
}

// ---------------------------------------------------------------------------------------
// The log

/// The guest PC of one `-d exec` line: `Trace N: HOST [CS_BASE/PC/FLAGS/CFLAGS] ...`.
fn pc_of(line: &[u8]) -> Option<u64> {
    if !line.starts_with(b"Trace ") {
        return None;
    }
    let open = line.iter().position(|&b| b == b'[')?;
    let rest = &line[open + 1..];
    let first = rest.iter().position(|&b| b == b'/')?;
    let rest = &rest[first + 1..];
    let end = rest.iter().position(|&b| b == b'/')?;
    u64::from_str_radix(std::str::from_utf8(&rest[..end]).ok()?, 16).ok()
}

/// Executions per PC between the first execution of `begin` and the next of `end`.
fn count(log: &Path, begin: (u64, u64), end: (u64, u64)) -> Result<(HashMap<u64, u64>, u64), String> {
    let f = File::open(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut counts: HashMap<u64, u64> = HashMap::new();
    let mut line = Vec::with_capacity(128);
    let (mut on, mut total, mut done) = (false, 0u64, false);
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).map_err(|e| e.to_string())? == 0 {
            break;
        }
        let Some(pc) = pc_of(&line) else { continue };
        if pc >= end.0 && pc < end.1 {
            if on {
                done = true;
                break;
            }
            continue;
        }
        if pc >= begin.0 && pc < begin.1 {
            on = true;
            continue;
        }
        if on {
            *counts.entry(pc).or_default() += 1;
            total += 1;
        }
    }
    if !done {
        return Err(format!("{}: the region's end marker was not logged", log.display()));
    }
    Ok((counts, total))
}

// ---------------------------------------------------------------------------------------
// Output

fn per_iter(n: u64, iters: u64) -> String {
    format!("{:.2}", n as f64 / iters as f64)
}

fn annotate(syms: &Symbols, counts: &HashMap<u64, u64>, iters: u64, text: &str) {
    let mut shown = 0;
    let mut done = std::collections::HashSet::new();
    for &(start, end, m, n) in &syms.ranges {
        if !syms.names[n].contains(text) || !done.insert((start, m)) {
            continue;
        }
        let in_sym: u64 = counts.iter().filter(|(&pc, _)| pc >= start && pc < end).map(|(_, &c)| c).sum();
        if in_sym == 0 {
            continue;
        }
        shown += 1;
        let (module, path, base) = &syms.modules[m];
        println!("\n== {} [{module}] {} per iteration", syms.names[n], per_iter(in_sym, iters));
        let out = Command::new("objdump")
            .args(["-d", "--no-show-raw-insn", "-M", "intel"])
            .arg(format!("--start-address={:#x}", start - base))
            .arg(format!("--stop-address={:#x}", end - base))
            .arg(path)
            .output();
        let out = match out {
            Ok(o) if o.status.success() => o.stdout,
            _ => {
                // No objdump: addresses and counts only.
                let mut pcs: Vec<_> = counts.iter().filter(|(&pc, _)| pc >= start && pc < end).collect();
                pcs.sort();
                for (pc, c) in pcs {
                    println!("{:>10}  {pc:#x}", per_iter(*c, iters));
                }
                continue;
            }
        };
        for l in String::from_utf8_lossy(&out).lines() {
            let t = l.trim_start();
            let addr = t.split(':').next().and_then(|a| u64::from_str_radix(a, 16).ok());
            match addr {
                Some(a) if l.starts_with(' ') && l.contains(":\t") => {
                    let c = counts.get(&(a + base)).copied().unwrap_or(0);
                    let col = if c == 0 { String::new() } else { per_iter(c, iters) };
                    println!("{col:>10}  {}", t);
                }
                _ => {}
            }
        }
    }
    if shown == 0 {
        println!("\n(no executed symbol contains '{text}')");
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("frond-profile: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("frond-profile: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let root = workspace_root();
    let iters = args.iters.unwrap_or_else(|| default_iters(&args.bench));
    let dir = root.join("target/profile");
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log = dir.join(format!("{}.log", args.bench));
    let sock = dir.join(format!("{}.monitor", args.bench));
    let _ = fs::remove_file(&log);
    eprintln!("frond-profile: running {} for {iters} iterations (one log line per instruction)", args.bench);
    let run = run_qemu(&args.bench, iters, &log, &sock)?;
    let _ = fs::remove_file(&sock);

    let kernel = std::env::var_os("FROND_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/x86_64-unknown-none/release/frond-kernel"));
    let domain_dir = std::env::var_os("FROND_DOMAIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/domains/x86_64-unknown-none/release"));
    let mut syms = Symbols::new();
    syms.add_elf("kernel", &kernel, 0)?;
    for d in &run.domains {
        syms.add_elf(&d.crate_name, &domain_dir.join(&d.crate_name), d.base)?;
    }
    let begin = syms.find("frond_profile_begin").ok_or("the kernel has no frond_profile_begin")?;
    let end = syms.find("frond_profile_end").ok_or("the kernel has no frond_profile_end")?;
    let (counts, total) = count(&log, begin, end)?;
    if !args.keep_log {
        let _ = fs::remove_file(&log);
    }

    // Per symbol (instances of one crate and instantiations that demangle alike are
    // summed: `xN` says how many address ranges a row covers) and per module.
    let mut by_range: HashMap<(usize, usize), u64> = HashMap::new();
    let mut unknown: HashMap<u64, u64> = HashMap::new();
    for (&pc, &c) in &counts {
        match syms.lookup(pc) {
            Some(k) => *by_range.entry(k).or_default() += c,
            None => *unknown.entry(pc & !0xfff).or_default() += c,
        }
    }
    let mut by_sym: HashMap<(&str, &str), (u64, usize)> = HashMap::new();
    let mut by_mod: HashMap<&str, u64> = HashMap::new();
    for (&(m, n), &c) in &by_range {
        let module = syms.modules[m].0.as_str();
        let e = by_sym.entry((module, syms.names[n].as_str())).or_default();
        e.0 += c;
        e.1 += 1;
        *by_mod.entry(module).or_default() += c;
    }
    let mut rows: Vec<_> = by_sym.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));

    println!("# {} — {} iterations", args.bench, iters);
    if let Some(k) = &run.kbench_line {
        println!("# guest: {k}");
    }
    let region = run.region_tsc.map_or("-".to_string(), |t| per_iter(t, iters));
    println!(
        "# instructions per iteration: {} counted in the profile, {} by the kernel's TSC (region incl. markers)",
        per_iter(total, iters),
        region
    );
    println!();
    println!("{:>10} {:>6}  {:<14} symbol", "instr/iter", "%", "module");
    let shown = if args.top == 0 { rows.len() } else { args.top.min(rows.len()) };
    for ((module, name), (c, ranges)) in &rows[..shown] {
        let times = if *ranges > 1 { format!(" x{ranges}") } else { String::new() };
        println!(
            "{:>10} {:>5.1}%  {:<14} {name}{times}",
            per_iter(*c, iters),
            100.0 * *c as f64 / total.max(1) as f64,
            module,
        );
    }
    if rows.len() > shown {
        let rest: u64 = rows[shown..].iter().map(|r| r.1 .0).sum();
        println!("{:>10} {:>5.1}%  ({} more symbols)", per_iter(rest, iters), 100.0 * rest as f64 / total.max(1) as f64, rows.len() - shown);
    }
    for (page, c) in &unknown {
        println!("{:>10} {:>5.1}%  ?              (no symbol) page {page:#x}", per_iter(*c, iters), 100.0 * *c as f64 / total.max(1) as f64);
    }
    println!();
    println!("{:>10} {:>6}  module", "instr/iter", "%");
    let mut mods: Vec<_> = by_mod.into_iter().collect();
    mods.sort_by(|a, b| b.1.cmp(&a.1));
    for (m, c) in mods {
        println!("{:>10} {:>5.1}%  {m}", per_iter(c, iters), 100.0 * c as f64 / total.max(1) as f64);
    }
    for text in &args.annotate {
        annotate(&syms, &counts, iters, text);
    }
    Ok(())
}
