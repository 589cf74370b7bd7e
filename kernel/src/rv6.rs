//! rv6's kernel half: the two services the rv6 core domain is built on, and its start.
//!
//! * [`KernelProcs`] (`Procs`): program domains. `load` hands the image the core lent (an
//!   RRef buffer read from the file system) to the loader — the same validation as boot
//!   images, so a non-ELF file or a program built against another interface is refused —
//!   and creates the domain as a child of the calling core generation
//!   ([`domain::create_program`]): it is never restarted, keeps [`domain::SYSTEM_SLOTS`]
//!   slots free for the system, has the quotas the core asks for (bounded here) and no
//!   watchdog budget (a program may compute for as long as it likes; `kill` ends it), and
//!   dies with its parent. `run` calls the program's `main` on the calling (core) thread
//!   and removes the domain when it ends, reporting the exit code, the panic message or
//!   fault, or the kill. Only the parent may run, kill or discard a program: the caller
//!   is the kernel's record of who made the call, not an argument.
//! * [`KernelConsole`] (`Console`): while rv6 runs, the console thread edits input lines
//!   and queues them here ([`input`]); the core reads them. Output goes to the serial
//!   port. `monitor` runs a kernel console command (`rv6.monitor=off` refuses).
//! * [`construct`] makes the `rv6` kind of the system manifest: the core
//!   (`domains/dom-rv6`) over the file system. The manifest gives it `restart=always`: the
//!   assembly's supervisor restarts the core when it dies (its processes die with it; the
//!   new generation starts `/bin/init` again) and removes, through [`sweep_orphans`],
//!   program domains a dead core left behind.
//!
//! Command line (with storage's options): `rv6=on` (default off; `make run` sets it),
//! `rv6.init=PATH` (default `/bin/init`), `rv6.nproc=N` (default 24), `rv6.monitor=off`.

use crate::arch::irq::IrqMutex;
use crate::domain::{self, limits::Limits};
use crate::{println, sched};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use frond_interface::fs::{Fs, Path};
use frond_interface::rv6::*;
use frond_interface::{RRefVec, RpcError, RpcResult};
use rref::DomainId;

/// rv6 has (or is about to have) the console.
static WANTED: AtomicBool = AtomicBool::new(false);
static MONITOR: AtomicBool = AtomicBool::new(true);
/// The core's slot (0: not started).
static CORE: AtomicU32 = AtomicU32::new(0);

/// Called at boot with the command line's `rv6=` value, before the console starts.
pub fn set_wanted(on: bool) {
    WANTED.store(on, Relaxed);
}

/// True once the core was created.
pub fn started() -> bool {
    CORE.load(Relaxed) != 0
}

/// True while console input belongs to rv6.
pub fn console_wanted() -> bool {
    WANTED.load(Relaxed)
}

// ---------------------------------------------------------------------------------------
// Console input.

/// Bytes of typed input rv6 has not read yet, at most.
const INPUT_MAX: usize = 4096;

struct Input {
    bytes: VecDeque<u8>,
    /// Ctrl-D presses on an empty line not yet read.
    eofs: u32,
    dropped: u64,
}

static INPUT: IrqMutex<Input> = IrqMutex::new(Input { bytes: VecDeque::new(), eofs: 0, dropped: 0 });

/// A finished line (or, with `eof`, an end of input) from the console thread.
pub fn input(line: &[u8], eof: bool) {
    let mut i = INPUT.lock();
    for &b in line {
        if i.bytes.len() >= INPUT_MAX || i.bytes.try_reserve(1).is_err() {
            i.dropped += 1;
        } else {
            i.bytes.push_back(b);
        }
    }
    if eof {
        i.eofs = i.eofs.saturating_add(1);
    }
}

pub struct KernelConsole;
static CONSOLE: KernelConsole = KernelConsole;

/// Longest wait one `Console::read` call may ask for.
const READ_WAIT_MAX_MS: u32 = 1000;

impl Console for KernelConsole {
    fn read(&self, buf: &mut RRefVec<u8>, timeout_ms: u32) -> RpcResult<u32> {
        let end = crate::time::uptime_ns() + timeout_ms.min(READ_WAIT_MAX_MS) as u64 * 1_000_000;
        loop {
            {
                let mut i = INPUT.lock();
                if !i.bytes.is_empty() {
                    // At most one line.
                    let mut n = 0;
                    while n < buf.len() {
                        let Some(b) = i.bytes.pop_front() else { break };
                        buf[n] = b;
                        n += 1;
                        if b == b'\n' {
                            break;
                        }
                    }
                    return Ok(n as u32);
                }
                if i.eofs > 0 {
                    i.eofs -= 1;
                    return Ok(u32::MAX);
                }
            }
            if crate::time::uptime_ns() >= end {
                return Ok(0);
            }
            sched::sleep_ms(5);
        }
    }

    fn write(&self, buf: &RRefVec<u8>, len: u32) -> RpcResult<u32> {
        let n = (len as usize).min(buf.len());
        crate::print!("{}", String::from_utf8_lossy(&buf[..n]));
        Ok(n as u32)
    }

    fn monitor(&self, cmd: Path) -> RpcResult<bool> {
        if !MONITOR.load(Relaxed) {
            return Ok(false);
        }
        let line = String::from_utf8_lossy(cmd.as_bytes()).into_owned();
        crate::console::run_command(line.trim());
        Ok(true)
    }
}

// ---------------------------------------------------------------------------------------
// Program domains.

pub struct KernelProcs;
static PROCS: KernelProcs = KernelProcs;

/// Programs inside `run` (slot, generation): the supervisor leaves them to `run`.
static RUNNING: IrqMutex<Vec<(usize, u64)>> = IrqMutex::new(Vec::new());

/// Upper bounds of what a parent may give one program.
const HEAP_MAX_KIB: u32 = 64 << 10;
const SHARED_MAX_KIB: u32 = 8 << 10;
const THREADS_MAX: u32 = 16;

fn failure(error: LoadError, msg: &str) -> LoadFailure {
    let mut f = LoadFailure { error, msg_len: 0, msg: [0; CRASH_MSG] };
    let mut n = msg.len().min(CRASH_MSG);
    while !msg.is_char_boundary(n) {
        n -= 1;
    }
    f.msg[..n].copy_from_slice(&msg.as_bytes()[..n]);
    f.msg_len = n as u32;
    f
}

/// The calling domain if it is `p`'s parent and `p` is the live generation.
fn parent_check(p: ProcId) -> bool {
    let (caller, generation) = domain::rpc::caller();
    let slot = p.domain as usize;
    slot < domain::MAX
        && domain::owner_of(slot) == Some((caller.0 as usize, generation))
        && domain::alive_generation(slot) == p.generation
}

impl Procs for KernelProcs {
    fn load(&self, name: Name, image: &RRefVec<u8>, len: u32, limits: ProcLimits, args: ProgArgs) -> RpcResult<Result<ProcId, LoadFailure>> {
        let (caller, generation) = domain::rpc::caller();
        if caller.0 == 0 {
            return Ok(Err(failure(LoadError::Invalid, "the kernel has no programs")));
        }
        if len as usize > image.len() || limits.heap_kib == 0 || limits.threads == 0 {
            return Ok(Err(failure(LoadError::Invalid, "length past the buffer, or zero limits")));
        }
        let core = match domain::root_target::<dyn Rv6>(caller) {
            Ok(t) if t.generation() == generation => t,
            _ => return Ok(Err(failure(LoadError::Invalid, "the caller does not export Rv6"))),
        };
        let heap = limits.heap_kib.min(HEAP_MAX_KIB) as u64 * 1024;
        let threads = limits.threads.min(THREADS_MAX) as u64;
        let l = Limits {
            heap,
            shared: limits.shared_kib.min(SHARED_MAX_KIB) as u64 * 1024,
            threads,
            frames: heap / 4096 + threads * (sched::DEFAULT_STACK / 4096) as u64 + 64,
            budget_ns: 0,
            wall_ns: Some(0),
        };
        let made = domain::create_program::<ProgramKind>(
            (caller.0 as usize, generation),
            name.as_str(),
            &image[..len as usize],
            l,
            move |_| (domain::proxy(core), args),
        );
        Ok(match made {
            Ok(id) => Ok(ProcId { domain: id.0, generation: domain::alive_generation(id.0 as usize) }),
            Err(e) => {
                let kind = if let Some(why) = e.strip_prefix(domain::BAD_IMAGE) {
                    return Ok(Err(failure(LoadError::BadImage, why)));
                } else if e.contains("slots") || e.contains("parent") {
                    LoadError::NoSlot
                } else if e.contains("memory") {
                    LoadError::NoMemory
                } else if e.starts_with("init failed") {
                    LoadError::InitFailed
                } else {
                    LoadError::BadImage
                };
                Err(failure(kind, &e))
            }
        })
    }

    fn run(&self, p: ProcId, argv: Argv) -> RpcResult<SysResult<ExitStatus>> {
        if !parent_check(p) {
            return Ok(Err(Errno::Srch));
        }
        let slot = p.domain as usize;
        let Ok(target) = domain::root_target::<dyn Program>(DomainId(p.domain)) else {
            return Ok(Err(Errno::Srch));
        };
        {
            let mut r = RUNNING.lock();
            if r.contains(&(slot, p.generation)) || r.try_reserve(1).is_err() {
                return Ok(Err(Errno::Srch));
            }
            r.push((slot, p.generation));
        }
        let status = match domain::proxy(target).main(argv) {
            Ok(code) => ExitStatus::exited(code),
            Err(RpcError::Panicked) => {
                ExitStatus::crashed(domain::last_words(slot).as_deref().unwrap_or("panicked"))
            }
            Err(_) => ExitStatus::killed(),
        };
        if let Err(e) = domain::remove_if(slot, p.generation) {
            log::warn!("rv6: removing program domain {slot}: {e}");
        }
        RUNNING.lock().retain(|&x| x != (slot, p.generation));
        Ok(Ok(status))
    }

    fn kill(&self, p: ProcId, orderly: bool) -> RpcResult<bool> {
        if !parent_check(p) {
            return Ok(false);
        }
        let reason = if orderly { RpcError::Refused } else { RpcError::Killed };
        Ok(domain::die(p.domain as usize, p.generation, reason).is_some())
    }

    fn discard(&self, p: ProcId) -> RpcResult<()> {
        let running = RUNNING.lock().contains(&(p.domain as usize, p.generation));
        if parent_check(p) && !running {
            let _ = domain::remove_if(p.domain as usize, p.generation);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Start and supervision.

fn number(o: &crate::storage::Options<'_>, key: &str, default: u64) -> Result<u64, String> {
    match o.value(key) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("{key}={v}: expected a number")),
    }
}

/// The `rv6` kind: the core over the file system (`fs=ENTRY`), with the console.
pub fn construct(e: &crate::assembly::Entry, ctx: &mut crate::assembly::Ctx<'_>) -> Result<Option<DomainId>, String> {
    let Some((fs, r)) = ctx.domain(e.need("fs")?) else { return Ok(None) };
    try_start(&e.name, &e.image, fs, r, ctx.opts).map(Some)
}

/// After the manifest ran: if rv6 was asked for and did not start, the monitor gets the
/// console.
pub fn finish(_: &crate::assembly::Ctx<'_>) {
    if console_wanted() && !started() {
        start_failed("no file system, or the rv6 entry failed (see above)");
    }
}

/// rv6 was asked for but cannot run: the monitor gets the console back (after the next
/// line typed, which the console thread is already waiting for).
pub fn start_failed(why: &str) {
    if console_wanted() {
        println!("rv6: not started: {why}; the kernel monitor has the console (press Enter)");
        WANTED.store(false, Relaxed);
    }
}

fn try_start(name: &str, image: &str, fs: DomainId, r: crate::assembly::Restart, o: &crate::storage::Options<'_>) -> Result<DomainId, String> {
    let mut args = Rv6Args::default_init();
    if let Some(p) = o.value("rv6.init") {
        args.init = Path::new(p).ok_or("rv6.init: path too long")?;
    }
    args.nproc = number(o, "rv6.nproc", args.nproc as u64)?.clamp(1, 64) as u32;
    MONITOR.store(o.value("rv6.monitor") != Some("off"), Relaxed);
    // A disk without the programs (an image from another mkfs): no rv6, the monitor stays.
    let fs_handle = domain::grant::<dyn Fs>(fs)?;
    match fs_handle.lookup(frond_interface::fs::ROOT_INUM, args.init) {
        Ok(Ok(st)) if st.kind == frond_interface::fs::FileType::File => {}
        Ok(Ok(_)) => return Err(format!("{:?} is not a file", args.init)),
        Ok(Err(e)) => return Err(format!("{:?}: {} (a disk made by `make run` holds rv6's programs in /bin)", args.init, e.as_str())),
        Err(e) => return Err(format!("the file system does not answer: {}", e.as_str())),
    }
    drop(fs_handle);
    // One thread per process plus its own; syscalls that block sleep (no CPU), and the
    // longest call (a spawn reading a large image) stays far below 10 s.
    domain::limits::configure_default(&format!("{name}:threads=72,budget=10000ms"))?;
    crate::assembly::link::<dyn Fs>(fs, r)?;
    let id = domain::create::<Rv6Kind>(name, image, move || {
        (
            crate::assembly::link::<dyn Fs>(fs, r).expect("fs exports Fs"),
            domain::export::<dyn Procs>(&PROCS),
            domain::export::<dyn Console>(&CONSOLE),
            args,
        )
    })?;
    CORE.store(id.0, Relaxed);
    println!("rv6: core started (domain {}); it starts {:?}", id.0, args.init);
    Ok(id)
}

/// Removes program domains whose parent generation died (loaded, never run: nobody else
/// will); the supervisor calls this.
pub fn sweep_orphans() {
    let running = RUNNING.lock().clone();
    for (s, g) in domain::orphans() {
        if !running.contains(&(s, g)) {
            let _ = domain::remove_if(s, g);
        }
    }
}
