//! # dom-rv6 — the rv6 core domain
//!
//! Exports `Rv6`, the system calls of every rv6 program, over `frond-rv6core` (the
//! state and the logic, host-tested). This crate adds what needs the kernel: who is
//! calling (`Syscalls::caller`, mapped to a pid), waiting, threads, loading and running
//! program domains (`Procs`), and the console (`Console`).
//!
//! **One lock.** The core sits behind one sleeping `Mutex`. A call takes it, asks the
//! core, and returns; a call the core says would block (pipe, `wait`) waits on the
//! `Condvar` — which releases the lock — for at most [`STEP_NS`] at a time and asks
//! again, and fails with `Intr` once its process was killed. `sleep` and console reads
//! wait the same way. Nothing waits, and nothing calls the console or `Procs`, with the
//! lock held (a program's init, run by `Procs::load`, may call back into `Rv6`).
//! File-system calls do run under the lock: they are bounded, and descriptors share
//! offsets that the lock keeps consistent.
//!
//! **Processes.** `spawn` reserves the child in the core (an embryo), reads its image
//! and loads the domain without the lock, registers the domain, and starts a thread
//! `rv6-pid<N>` that runs the program's `main` through `Procs::run` and, when it
//! returns, ends the process in the core (its descriptors closed, a zombie for its
//! parent). Pid 1 (`Rv6Args::init`, with the console as 0, 1, 2) runs on the thread
//! init starts; when it ends its status is printed and it starts again a second later.
//!
//! **Zero copy.** `read`/`write` on a file lend the program's buffer to the file
//! system; console writes lend it to the console. Pipes and console reads copy.
//!
//! May depend on: `frond-interface`, `frond-domrt`, `frond-rv6core`, `rref`.
//! `#![forbid(unsafe_code)]`.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::sync::Arc;
use frond_domrt::sync::{Condvar, Mutex};
use frond_domrt::{sys, Syscalls};
use frond_interface::fs::{DirChunk, Fs, Path, IO_MAX};
use frond_interface::rv6::*;
use frond_interface::{DomainKind, RRefVec, Remote, RpcResult};
use frond_rv6core::{read_image, Core, Exec, Io, Poll};

frond_domrt::entry!(Rv6Kind, init);

/// Longest single wait of a blocked call before it looks again (and at its `killed`).
const STEP_NS: u64 = 100_000_000;
/// Pause before pid 1 starts again.
const INIT_RESTART_NS: u64 = 1_000_000_000;
/// Longest wait of one `Console::read`.
const CONSOLE_POLL_MS: u32 = 100;
/// Largest console read (the console returns at most a line).
const CONSOLE_CHUNK: usize = 4096;

fn init(sys: &'static dyn Syscalls, (fs, procs, console, args): <Rv6Kind as DomainKind>::Args) -> Remote<dyn Rv6> {
    let s = Arc::new(Shared { core: Mutex::new(Core::new(args.nproc)), cv: Condvar::new(), fs, procs, console, args });
    let s1 = s.clone();
    if let Err(e) = sys.spawn("rv6-pid1", Box::new(move || init_loop(&s1))) {
        sys.print(&format!("no thread for pid 1 ({}): nothing will run", e.as_str()));
    }
    Remote::local(Box::new(Rv6Dom { s }))
}

struct Shared {
    core: Mutex<Core>,
    /// Notified whenever the core reports a change a blocked call may wait for.
    cv: Condvar,
    fs: Remote<dyn Fs>,
    procs: Remote<dyn Procs>,
    console: Remote<dyn Console>,
    args: Rv6Args,
}

impl Shared {
    /// Runs `f` on the core under the lock, then wakes the blocked calls if it changed
    /// something they may wait for.
    fn with<T>(&self, f: impl FnOnce(&mut Core, &dyn Fs) -> T) -> T {
        let mut c = self.core.lock();
        let r = f(&mut c, &*self.fs);
        let wake = c.take_wake();
        drop(c);
        if wake {
            self.cv.notify_all();
        }
        r
    }

    /// The calling process: `Srch` for any caller that is not a running program.
    fn me(&self) -> SysResult<i32> {
        let (d, generation) = sys().caller();
        self.core.lock().pid_of(ProcId { domain: d.0, generation }).ok_or(Errno::Srch)
    }

    /// Repeats `step` under the lock until it is ready, waiting on the condition variable
    /// (without the lock) in between; the core fails blocked steps of a killed process
    /// with `Intr`.
    fn block<T>(&self, pid: i32, mut step: impl FnMut(&mut Core, &dyn Fs) -> SysResult<Poll<T>>) -> SysResult<T> {
        let mut c = self.core.lock();
        let r = loop {
            match step(&mut c, &*self.fs) {
                Ok(Poll::Ready(v)) => break Ok(v),
                Err(e) => break Err(e),
                Ok(Poll::Block) => {
                    // A partial pipe write may have made data for a reader.
                    if c.take_wake() {
                        self.cv.notify_all();
                    }
                    c.set_sleeping(pid, true);
                    self.cv.wait_timeout(&mut c, STEP_NS);
                    c.set_sleeping(pid, false);
                }
            }
        };
        let wake = c.take_wake();
        drop(c);
        if wake {
            self.cv.notify_all();
        }
        r
    }

    fn read(&self, fd: i32, buf: &mut RRefVec<u8>, len: u32) -> SysResult<u32> {
        let me = self.me()?;
        // Ready(Some(n)): done; Ready(None): the console's.
        let r = self.block(me, |c, fs| {
            Ok(match c.read(fs, me, fd, buf, len)? {
                Io::Done(n) => Poll::Ready(Some(n)),
                Io::Console => Poll::Ready(None),
                Io::Block => Poll::Block,
            })
        })?;
        match r {
            Some(n) => Ok(n),
            None => self.console_read(me, buf, len),
        }
    }

    /// Polls the console until it has input (a line at most), copies it into `buf`.
    /// End of input reads as 0.
    fn console_read(&self, me: i32, buf: &mut RRefVec<u8>, len: u32) -> SysResult<u32> {
        let n = (len as usize).min(buf.len()).min(IO_MAX).min(CONSOLE_CHUNK);
        if n == 0 {
            return Ok(0);
        }
        let mut tmp = RRefVec::try_new_with(n, |_| 0u8).ok_or(Errno::NoMem)?;
        loop {
            if self.with(|c, _| {
                c.set_sleeping(me, true);
                c.killed(me)
            }) {
                return Err(Errno::Intr);
            }
            let r = self.console.read(&mut tmp, CONSOLE_POLL_MS);
            self.with(|c, _| c.set_sleeping(me, false));
            match r {
                Err(_) => return Err(Errno::Io),
                Ok(0) => continue,
                Ok(u32::MAX) => return Ok(0),
                Ok(k) => {
                    let k = (k as usize).min(n);
                    buf[..k].copy_from_slice(&tmp[..k]);
                    return Ok(k as u32);
                }
            }
        }
    }

    fn write(&self, fd: i32, buf: &RRefVec<u8>, len: u32) -> SysResult<u32> {
        let me = self.me()?;
        let total = (len as usize).min(IO_MAX) as u32;
        let mut done = 0u32;
        // A pipe takes what fits and the loop goes on; anything else completes in one
        // step. An error after part of the bytes went out reports the part.
        let r = self.block(me, |c, fs| loop {
            match c.write(fs, me, fd, buf, len, done) {
                Ok(Io::Done(k)) => {
                    done += k;
                    if k == 0 || done >= total {
                        return Ok(Poll::Ready(Some(done)));
                    }
                }
                Ok(Io::Block) => return Ok(Poll::Block),
                Ok(Io::Console) => return Ok(Poll::Ready(None)),
                Err(_) if done > 0 => return Ok(Poll::Ready(Some(done))),
                Err(e) => return Err(e),
            }
        })?;
        match r {
            Some(n) => Ok(n),
            // The core checked `len` against the buffer; the console writes it in place.
            None => self.console.write(buf, total).map_err(|_| Errno::Io),
        }
    }

    fn sleep(&self, ms: u64) -> SysResult<()> {
        let me = self.me()?;
        let end = sys().now_ns().saturating_add(ms.saturating_mul(1_000_000));
        let mut c = self.core.lock();
        loop {
            if c.killed(me) {
                return Err(Errno::Intr);
            }
            let now = sys().now_ns();
            if now >= end {
                return Ok(());
            }
            c.set_sleeping(me, true);
            self.cv.wait_timeout(&mut c, (end - now).min(STEP_NS));
            c.set_sleeping(me, false);
        }
    }

    /// Reads and loads `e`'s image; on failure the embryo is removed.
    fn load(&self, e: &Exec) -> SysResult<ProcId> {
        let r = match read_image(&*self.fs, e.ino, e.size) {
            Ok(image) => {
                let r = self.procs.load(e.name, &image, e.size, self.args.limits, ProgArgs { pid: e.pid });
                // The image is freed here, before the program runs.
                drop(image);
                match r {
                    Ok(Ok(id)) => Ok(id),
                    Ok(Err(f)) => {
                        if matches!(f.error, LoadError::BadImage | LoadError::InitFailed) {
                            sys().print(&format!("pid {} ({}): not loaded: {}", e.pid, e.name.as_str(), f.message()));
                        }
                        Err(match f.error {
                            LoadError::NoSlot => Errno::Again,
                            LoadError::NoMemory => Errno::NoMem,
                            LoadError::BadImage | LoadError::InitFailed | LoadError::Invalid => Errno::NoExec,
                        })
                    }
                    Err(_) => Err(Errno::Io),
                }
            }
            Err(err) => Err(err),
        };
        match r {
            Ok(id) => {
                if self.with(|c, fs| c.spawn_loaded(fs, e.pid, id)) {
                    // Killed while it loaded.
                    let _ = self.procs.kill(id, false);
                }
                Ok(id)
            }
            Err(err) => {
                self.with(|c, fs| c.spawn_abort(fs, e.pid));
                Err(err)
            }
        }
    }

    /// Runs a loaded program to its end on this thread; returns how it ended.
    fn run(&self, id: ProcId, argv: Argv) -> ExitStatus {
        match self.procs.run(id, argv) {
            Ok(Ok(st)) => st,
            Ok(Err(e)) => ExitStatus::crashed(e.as_str()),
            Err(e) => ExitStatus::crashed(e.as_str()),
        }
    }
}

/// `spawn`: the child runs on a thread of its own.
fn spawn(s: &Arc<Shared>, path: Path, argv: Argv, fds: FdMap) -> SysResult<i32> {
    let me = s.me()?;
    // An `Argv` the program filled in by hand: refuse what `Argv::new` would have refused,
    // so the child gets exactly what its parent could have built.
    if argv.argc as usize > ARGS_MAX || argv.len as usize > ARGV_BYTES || argv.iter().count() != argv.argc as usize {
        return Err(Errno::TooBig);
    }
    let e = s.with(|c, fs| c.spawn(fs, me, &path, &fds))?;
    let id = s.load(&e)?;
    let s2 = s.clone();
    let pid = e.pid;
    let started = sys().spawn(
        &format!("rv6-pid{pid}"),
        Box::new(move || {
            let st = s2.run(id, argv);
            s2.with(|c, fs| c.ended(fs, pid, st));
        }),
    );
    if started.is_err() {
        let _ = s.procs.discard(id);
        s.with(|c, fs| c.spawn_abort(fs, pid));
        return Err(Errno::Again);
    }
    Ok(pid)
}

/// Pid 1's thread: starts `Rv6Args::init`, runs it, and starts it again a second after
/// it ends.
fn init_loop(s: &Shared) {
    loop {
        match run_init(s) {
            Ok(st) => sys().print(&format!("pid 1 ended: {st:?}; starting it again in 1 s")),
            Err(e) => sys().print(&format!("pid 1 ({:?}) not started: {}; trying again in 1 s", s.args.init, e.as_str())),
        }
        sys().sleep_ns(INIT_RESTART_NS);
    }
}

fn run_init(s: &Shared) -> SysResult<ExitStatus> {
    let e = s.with(|c, fs| c.start_init(fs, &s.args.init))?;
    let id = s.load(&e)?;
    let argv = Argv::new(&[e.name.as_str()]).unwrap_or(Argv::empty());
    let st = s.run(id, argv);
    Ok(s.with(|c, fs| {
        c.ended(fs, e.pid, st);
        c.reap_init()
    })
    .unwrap_or(st))
}

struct Rv6Dom {
    s: Arc<Shared>,
}

impl Rv6Dom {
    /// A file call for the calling process, under the lock.
    fn call<T>(&self, f: impl FnOnce(&mut Core, &dyn Fs, i32) -> SysResult<T>) -> RpcResult<SysResult<T>> {
        Ok(self.s.me().and_then(|me| self.s.with(|c, fs| f(c, fs, me))))
    }
}

impl Rv6 for Rv6Dom {
    fn spawn(&self, path: Path, argv: Argv, fds: FdMap) -> RpcResult<SysResult<i32>> {
        Ok(spawn(&self.s, path, argv, fds))
    }

    fn wait(&self, pid: i32) -> RpcResult<SysResult<Waited>> {
        Ok(self.s.me().and_then(|me| self.s.block(me, |c, _| c.wait(me, pid))))
    }

    fn exit(&self, code: i32) -> RpcResult<()> {
        if let Ok(me) = self.s.me() {
            if let Some(id) = self.s.with(|c, _| c.exit(me, code)) {
                // The kernel unwinds this (now dead) caller when the call returns.
                let _ = self.s.procs.kill(id, true);
            }
        }
        Ok(())
    }

    fn getpid(&self) -> RpcResult<i32> {
        Ok(self.s.me().unwrap_or(-1))
    }

    fn kill(&self, pid: i32) -> RpcResult<SysResult<()>> {
        let r = self.s.me().and_then(|_| self.s.with(|c, _| c.kill(pid)));
        Ok(r.map(|id| {
            if let Some(id) = id {
                let _ = self.s.procs.kill(id, false);
            }
        }))
    }

    fn uptime(&self) -> RpcResult<u64> {
        Ok(sys().now_ns() / 1_000_000)
    }

    fn sleep(&self, ms: u64) -> RpcResult<SysResult<()>> {
        Ok(self.s.sleep(ms))
    }

    fn ps(&self, from: i32) -> RpcResult<ProcTable> {
        Ok(self.s.core.lock().ps(from))
    }

    fn open(&self, path: Path, flags: u32) -> RpcResult<SysResult<i32>> {
        self.call(|c, fs, me| c.open(fs, me, &path, flags))
    }

    fn close(&self, fd: i32) -> RpcResult<SysResult<()>> {
        self.call(|c, fs, me| c.close(fs, me, fd))
    }

    fn read(&self, fd: i32, buf: &mut RRefVec<u8>, len: u32) -> RpcResult<SysResult<u32>> {
        Ok(self.s.read(fd, buf, len))
    }

    fn write(&self, fd: i32, buf: &RRefVec<u8>, len: u32) -> RpcResult<SysResult<u32>> {
        Ok(self.s.write(fd, buf, len))
    }

    fn lseek(&self, fd: i32, off: i64, whence: Whence) -> RpcResult<SysResult<u64>> {
        self.call(|c, fs, me| c.lseek(fs, me, fd, off, whence))
    }

    fn fstat(&self, fd: i32) -> RpcResult<SysResult<FStat>> {
        self.call(|c, fs, me| c.fstat(fs, me, fd))
    }

    fn dup(&self, fd: i32) -> RpcResult<SysResult<i32>> {
        self.call(|c, _, me| c.dup(me, fd))
    }

    fn pipe(&self) -> RpcResult<SysResult<[i32; 2]>> {
        self.call(|c, _, me| c.pipe(me))
    }

    fn mknod(&self, path: Path, major: u16, minor: u16) -> RpcResult<SysResult<()>> {
        self.call(|c, fs, me| c.mknod(fs, me, &path, major, minor))
    }

    fn link(&self, old: Path, new: Path) -> RpcResult<SysResult<()>> {
        self.call(|c, fs, me| c.link(fs, me, &old, &new))
    }

    fn unlink(&self, path: Path) -> RpcResult<SysResult<()>> {
        self.call(|c, fs, me| c.unlink(fs, me, &path))
    }

    fn mkdir(&self, path: Path) -> RpcResult<SysResult<()>> {
        self.call(|c, fs, me| c.mkdir(fs, me, &path))
    }

    fn chdir(&self, path: Path) -> RpcResult<SysResult<()>> {
        self.call(|c, fs, me| c.chdir(fs, me, &path))
    }

    fn getcwd(&self) -> RpcResult<SysResult<Path>> {
        self.call(|c, _, me| c.getcwd(me))
    }

    fn readdir(&self, fd: i32) -> RpcResult<SysResult<DirChunk>> {
        self.call(|c, fs, me| c.readdir(fs, me, fd))
    }

    fn sync(&self) -> RpcResult<SysResult<()>> {
        // Not under the lock: a sync may take a while and touches no descriptor.
        Ok(self.s.me().and_then(|_| self.s.fs.sync().map_err(|_| Errno::Io).and_then(|r| r.map_err(Errno::from_fs))))
    }

    fn monitor(&self, cmd: Path) -> RpcResult<SysResult<()>> {
        Ok(self.s.me().and_then(|_| match self.s.console.monitor(cmd) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Errno::Perm),
            Err(_) => Err(Errno::Io),
        }))
    }
}
