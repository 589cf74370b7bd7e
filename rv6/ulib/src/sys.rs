//! The system calls, with Rust types.
//!
//! * Paths are `&str`; one longer than [`PATH_MAX`] is `Err(NameTooLong)` without a call.
//! * A call that creates a descriptor (`open`, `dup`, `pipe`) returns an owned [`Fd`],
//!   which closes it when dropped; the others take the raw number (`i32`), so the standard
//!   descriptors (0, 1, 2) and deliberately bad numbers can be named too.
//! * [`read`]/[`write`] copy through the per-process staging buffer ([`STAGE_BYTES`], on
//!   the shared heap, allocated at the first use): one call moves at most 64 KiB, and
//!   `read` may return fewer bytes than asked, as POSIX's. [`read_rref`]/[`write_rref`]
//!   lend the caller's buffer to the core and the file system instead (zero-copy).
//! * An `RpcError` (the core died) panics: see the crate docs.

use crate::rt::rv6;
use alloc::string::String;
use alloc::vec::Vec;
use frond_domrt::sync::Mutex;
use frond_interface::fs::{DirChunk, Path, DIR_CHUNK, NAME_MAX};
use frond_interface::rv6::{Argv, Errno, FStat, FdMap, ProcRow, ProcTable, SysResult, Waited, Whence, O_RDONLY};
use frond_interface::{RRefVec, RpcResult};

pub use frond_interface::fs::PATH_MAX;

/// Bytes of the staging buffer byte-slice reads and writes copy through (the most one
/// `read`/`write` call moves).
pub const STAGE_BYTES: usize = frond_interface::fs::IO_MAX;

/// The standard descriptors.
pub const STDIN: i32 = 0;
pub const STDOUT: i32 = 1;
pub const STDERR: i32 = 2;

static STAGE: Mutex<Option<RRefVec<u8>>> = Mutex::new(None);

/// The answer of a system call; an `RpcError` (the rv6 core died or refused the call)
/// ends the program with a panic naming the call.
pub fn call<T>(what: &str, r: RpcResult<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("ulib: the rv6 core failed during {what}: {e}"),
    }
}

/// The raw system-call interface, for programs that must send what the typed wrappers
/// refuse to (the hostile tests). Pass its results through [`call`].
pub fn raw() -> &'static dyn frond_interface::rv6::Rv6 {
    rv6()
}

/// `s` as a [`Path`], `NameTooLong` past [`PATH_MAX`] bytes.
pub fn path(s: &str) -> SysResult<Path> {
    Path::new(s).ok_or(Errno::NameTooLong)
}

/// Runs `f` with the staging buffer (allocated on first use; `NoMem` if the shared heap
/// cannot hold it).
fn with_stage<R>(f: impl FnOnce(&mut RRefVec<u8>) -> SysResult<R>) -> SysResult<R> {
    let mut g = STAGE.lock();
    if g.is_none() {
        *g = Some(RRefVec::try_new_with(STAGE_BYTES, |_| 0).ok_or(Errno::NoMem)?);
    }
    match g.as_mut() {
        Some(buf) => f(buf),
        None => Err(Errno::NoMem),
    }
}

// ------------------------------------------------------------------------------------
// Descriptors

/// An open descriptor, closed when dropped (errors of that close are ignored; call
/// [`Fd::close`] to see them). [`Fd::into_raw`] gives the number up without closing.
#[derive(Debug, PartialEq, Eq)]
pub struct Fd(i32);

/// Files are descriptors.
pub type File = Fd;

impl Fd {
    /// Takes ownership of descriptor `fd` (it will be closed on drop).
    pub fn from_raw(fd: i32) -> Fd {
        Fd(fd)
    }

    pub fn raw(&self) -> i32 {
        self.0
    }

    /// The number, no longer closed on drop.
    pub fn into_raw(self) -> i32 {
        let fd = self.0;
        core::mem::forget(self);
        fd
    }

    /// `open(path, flags)`.
    pub fn open(path: &str, flags: u32) -> SysResult<Fd> {
        open(path, flags)
    }

    pub fn read(&self, buf: &mut [u8]) -> SysResult<usize> {
        read(self.0, buf)
    }

    /// Reads until `buf` is full or the end of the file; returns the bytes read.
    pub fn read_full(&self, buf: &mut [u8]) -> SysResult<usize> {
        read_full(self.0, buf)
    }

    pub fn write(&self, buf: &[u8]) -> SysResult<usize> {
        write(self.0, buf)
    }

    pub fn write_all(&self, buf: &[u8]) -> SysResult<()> {
        write_all(self.0, buf)
    }

    pub fn read_rref(&self, buf: &mut RRefVec<u8>, len: usize) -> SysResult<usize> {
        read_rref(self.0, buf, len)
    }

    pub fn write_rref(&self, buf: &RRefVec<u8>, len: usize) -> SysResult<usize> {
        write_rref(self.0, buf, len)
    }

    pub fn seek(&self, off: i64, whence: Whence) -> SysResult<u64> {
        lseek(self.0, off, whence)
    }

    pub fn stat(&self) -> SysResult<FStat> {
        fstat(self.0)
    }

    pub fn dup(&self) -> SysResult<Fd> {
        dup(self.0)
    }

    /// Closes now, reporting the error.
    pub fn close(self) -> SysResult<()> {
        close(self.into_raw())
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = rv6().close(self.0);
    }
}

/// Writes through a descriptor with `write!`: every piece of the format is one `write`
/// call. Prefer [`fprint!`](crate::fprint), which buffers.
impl core::fmt::Write for &Fd {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write_all(self.0, s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}

pub fn open(p: &str, flags: u32) -> SysResult<Fd> {
    let p = path(p)?;
    call("open", rv6().open(p, flags)).map(Fd)
}

pub fn close(fd: i32) -> SysResult<()> {
    call("close", rv6().close(fd))
}

/// Reads up to `buf.len()` bytes (at most [`STAGE_BYTES`]); 0 at the end of the file or
/// of a pipe whose writers all closed.
pub fn read(fd: i32, buf: &mut [u8]) -> SysResult<usize> {
    let want = buf.len().min(STAGE_BYTES);
    with_stage(|stage| {
        let n = call("read", rv6().read(fd, stage, want as u32))? as usize;
        // A core answering more than asked is not believed past what was asked.
        let n = n.min(want);
        buf[..n].copy_from_slice(&stage[..n]);
        Ok(n)
    })
}

/// Reads until `buf` is full or a read returns 0.
pub fn read_full(fd: i32, buf: &mut [u8]) -> SysResult<usize> {
    let mut got = 0;
    while got < buf.len() {
        let n = read(fd, &mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got)
}

/// Writes up to `buf.len()` bytes (at most [`STAGE_BYTES`]); returns how many were.
pub fn write(fd: i32, buf: &[u8]) -> SysResult<usize> {
    let n = buf.len().min(STAGE_BYTES);
    with_stage(|stage| {
        stage[..n].copy_from_slice(&buf[..n]);
        let w = call("write", rv6().write(fd, stage, n as u32))? as usize;
        Ok(w.min(n))
    })
}

/// Writes all of `buf`; a write that moves nothing is `Io`.
pub fn write_all(fd: i32, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        let n = write(fd, buf)?;
        if n == 0 {
            return Err(Errno::Io);
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// Reads up to `len` bytes into `buf[..]`, lent to the core (no copy in the program).
pub fn read_rref(fd: i32, buf: &mut RRefVec<u8>, len: usize) -> SysResult<usize> {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    call("read", rv6().read(fd, buf, len)).map(|n| n as usize)
}

/// Writes `buf[..len]`, lent to the core (no copy in the program).
pub fn write_rref(fd: i32, buf: &RRefVec<u8>, len: usize) -> SysResult<usize> {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    call("write", rv6().write(fd, buf, len)).map(|n| n as usize)
}

pub fn lseek(fd: i32, off: i64, whence: Whence) -> SysResult<u64> {
    call("lseek", rv6().lseek(fd, off, whence))
}

pub fn fstat(fd: i32) -> SysResult<FStat> {
    call("fstat", rv6().fstat(fd))
}

/// A new descriptor (the lowest free) sharing `fd`'s open file and offset.
pub fn dup(fd: i32) -> SysResult<Fd> {
    call("dup", rv6().dup(fd)).map(Fd)
}

/// `(read end, write end)`.
pub fn pipe() -> SysResult<(Fd, Fd)> {
    call("pipe", rv6().pipe()).map(|[r, w]| (Fd(r), Fd(w)))
}

// ------------------------------------------------------------------------------------
// Processes

/// Starts the program at `path` (as given: no search) with arguments `args` (the whole
/// argv: `args[0]` is, by convention, the program's name) and the descriptors `fds`
/// ([`FdMap::stdio`] passes 0, 1, 2 on); returns the child's pid. `TooBig` past
/// [`ARGS_MAX`](crate::ARGS_MAX) arguments or [`ARGV_BYTES`](crate::ARGV_BYTES) bytes,
/// `Inval` for an argument holding a NUL, both without a call.
pub fn spawn<S: AsRef<[u8]>>(path_: &str, args: &[S], fds: FdMap) -> SysResult<i32> {
    let p = path(path_)?;
    let argv = Argv::new(args)?;
    call("spawn", rv6().spawn(p, argv, fds))
}

/// Waits for child `pid` (-1: any child) to end and reaps it.
pub fn wait(pid: i32) -> SysResult<Waited> {
    call("wait", rv6().wait(pid))
}

/// Ends the program with `code` (as returning `code` from `main`).
pub fn exit(code: i32) -> ! {
    call("exit", rv6().exit(code));
    // The core ends the domain inside the call or just after it returns: wait for that
    // (a kernel sleep, not a system call), and crash only if it never comes.
    for _ in 0..EXIT_WAIT_ROUNDS {
        frond_domrt::sys().sleep_ns(10_000_000);
    }
    panic!("ulib: exit({code}) returned and the program was not ended");
}

/// 10 ms rounds [`exit`] waits to be ended after the call returned.
const EXIT_WAIT_ROUNDS: u32 = 100;

/// This process's pid.
pub fn getpid() -> i32 {
    match crate::rt::init_pid() {
        Some(p) => p,
        None => call("getpid", rv6().getpid()),
    }
}

pub fn kill(pid: i32) -> SysResult<()> {
    call("kill", rv6().kill(pid))
}

/// Milliseconds since boot.
pub fn uptime_ms() -> u64 {
    call("uptime", rv6().uptime())
}

/// Nanoseconds since boot from the kernel's clock, without a system call (for
/// benchmarks: under QEMU's `-icount shift=0` a busy nanosecond is one instruction).
pub fn now_ns() -> u64 {
    frond_domrt::sys().now_ns()
}

/// Sleeps `ms` milliseconds (`Intr` if killed meanwhile).
pub fn sleep_ms(ms: u64) -> SysResult<()> {
    call("sleep", rv6().sleep(ms))
}

/// Every process (the core answers in tables of up to
/// [`PS_ROWS`](frond_interface::rv6::PS_ROWS) rows; this asks until the end).
pub fn ps() -> Vec<ProcRow> {
    collect_ps(|from| call("ps", rv6().ps(from)))
}

/// The listing [`ps`] builds from tables `query(from)`: rows in increasing pid order,
/// each once. The table's `next` is taken as "continue from here", whether it names the
/// last pid shown or the first one not shown; a table that does not move forward, an
/// empty one or `next == None` ends it.
pub fn collect_ps(mut query: impl FnMut(i32) -> ProcTable) -> Vec<ProcRow> {
    let mut rows: Vec<ProcRow> = Vec::new();
    let mut from = 0i32;
    // Bounded: a core answering nonsense cannot keep the program here.
    for _ in 0..1024 {
        let t = query(from);
        let n = (t.n as usize).min(t.rows.len());
        for r in &t.rows[..n] {
            if rows.last().is_none_or(|l| r.pid > l.pid) {
                rows.push(*r);
            }
        }
        let Some(next) = t.next else { break };
        if n == 0 {
            break;
        }
        let seen = rows.last().map_or(from, |r| r.pid.saturating_add(1));
        let to = next.max(seen);
        if to <= from {
            break;
        }
        from = to;
    }
    rows
}

// ------------------------------------------------------------------------------------
// The file system

pub fn mknod(p: &str, major: u16, minor: u16) -> SysResult<()> {
    let p = path(p)?;
    call("mknod", rv6().mknod(p, major, minor))
}

/// A new name `new` for the file `old`.
pub fn link(old: &str, new: &str) -> SysResult<()> {
    let (o, n) = (path(old)?, path(new)?);
    call("link", rv6().link(o, n))
}

pub fn unlink(p: &str) -> SysResult<()> {
    let p = path(p)?;
    call("unlink", rv6().unlink(p))
}

pub fn mkdir(p: &str) -> SysResult<()> {
    let p = path(p)?;
    call("mkdir", rv6().mkdir(p))
}

pub fn chdir(p: &str) -> SysResult<()> {
    let p = path(p)?;
    call("chdir", rv6().chdir(p))
}

/// The working directory's absolute path.
pub fn getcwd() -> SysResult<String> {
    let p = call("getcwd", rv6().getcwd())?;
    Ok(String::from_utf8_lossy(p.as_bytes()).into_owned())
}

/// Makes every completed file-system operation durable.
pub fn sync() -> SysResult<()> {
    call("sync", rv6().sync())
}

/// Runs a kernel monitor command (output on the console); `Perm` if the monitor is not
/// reachable from rv6.
pub fn monitor(cmd: &str) -> SysResult<()> {
    let c = path(cmd)?;
    call("monitor", rv6().monitor(c))
}

/// `path`'s status (opens it read-only, asks, closes).
pub fn stat(p: &str) -> SysResult<FStat> {
    open(p, O_RDONLY)?.stat()
}

/// One directory entry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DirEnt {
    pub inum: u32,
    len: u8,
    name: [u8; NAME_MAX],
}

impl DirEnt {
    pub fn name_bytes(&self) -> &[u8] {
        &self.name[..(self.len as usize).min(NAME_MAX)]
    }
    /// The name (`"?"` if it is not UTF-8).
    pub fn name(&self) -> &str {
        core::str::from_utf8(self.name_bytes()).unwrap_or("?")
    }
    /// `.` or `..`.
    pub fn is_dot(&self) -> bool {
        matches!(self.name_bytes(), b"." | b"..")
    }
}

impl core::fmt::Debug for DirEnt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}@{}", self.name(), self.inum)
    }
}

/// The entries of a directory, `.` and `..` included, as the file system lists them.
/// Ends after an error (which it yields once).
pub struct ReadDir {
    fd: Fd,
    chunk: DirChunk,
    at: usize,
    done: bool,
}

/// Opens directory `path` for listing.
pub fn read_dir(p: &str) -> SysResult<ReadDir> {
    let fd = open(p, O_RDONLY)?;
    read_dir_fd(fd)
}

/// Lists an open directory (from its current entry on).
pub fn read_dir_fd(fd: Fd) -> SysResult<ReadDir> {
    let empty = DirChunk { n: 0, entries: [Default::default(); DIR_CHUNK], next: None };
    Ok(ReadDir { fd, chunk: empty, at: 0, done: false })
}

impl Iterator for ReadDir {
    type Item = SysResult<DirEnt>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let n = (self.chunk.n as usize).min(DIR_CHUNK);
            while self.at < n {
                let e = self.chunk.entries[self.at];
                self.at += 1;
                if e.inum != 0 {
                    return Some(Ok(DirEnt { inum: e.inum, len: e.name_len, name: e.name }));
                }
            }
            match call("readdir", rv6().readdir(self.fd.raw())) {
                Ok(c) if c.n == 0 => self.done = true,
                Ok(c) => {
                    self.chunk = c;
                    self.at = 0;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // No rv6 handle exists on the host: these pass only if no call is made.

    #[test]
    fn long_paths_are_refused_without_a_call() {
        let long = "a".repeat(PATH_MAX + 1);
        assert_eq!(open(&long, O_RDONLY).unwrap_err(), Errno::NameTooLong);
        assert_eq!(mkdir(&long), Err(Errno::NameTooLong));
        assert_eq!(unlink(&long), Err(Errno::NameTooLong));
        assert_eq!(link("a", &long), Err(Errno::NameTooLong));
        assert_eq!(link(&long, "a"), Err(Errno::NameTooLong));
        assert_eq!(chdir(&long), Err(Errno::NameTooLong));
        assert_eq!(mknod(&long, 1, 0), Err(Errno::NameTooLong));
        assert_eq!(stat(&long).unwrap_err(), Errno::NameTooLong);
        assert_eq!(monitor(&long), Err(Errno::NameTooLong));
        assert_eq!(spawn(&long, &["x"], FdMap::stdio()), Err(Errno::NameTooLong));
        assert!(path(&"a".repeat(PATH_MAX)).is_ok());
    }

    #[test]
    fn bad_argv_is_refused_without_a_call() {
        let many = ["a"; 33];
        assert_eq!(spawn("/bin/x", &many, FdMap::stdio()), Err(Errno::TooBig));
        let big = "x".repeat(2000);
        assert_eq!(spawn("/bin/x", &[big.as_str()], FdMap::stdio()), Err(Errno::TooBig));
        assert_eq!(spawn("/bin/x", &["a\0b"], FdMap::stdio()), Err(Errno::Inval));
    }

    use frond_interface::rv6::{Name, ProcState, PS_ROWS};

    fn row(pid: i32) -> ProcRow {
        ProcRow { pid, ppid: 1, state: ProcState::Running, name: Name::new("p"), domain: 0 }
    }

    /// A core with processes `pids`, answering `PS_ROWS` at a time; `next` is the last
    /// pid shown (`after`) or the first one not shown.
    fn table(pids: &[i32], from: i32, after: bool) -> ProcTable {
        let mut t = ProcTable { n: 0, rows: [row(0); PS_ROWS], next: None };
        let shown: Vec<i32> = pids.iter().copied().filter(|&p| p >= from).take(PS_ROWS).collect();
        for (i, p) in shown.iter().enumerate() {
            t.rows[i] = row(*p);
        }
        t.n = shown.len() as u32;
        let rest = pids.iter().copied().find(|&p| p > *shown.last().unwrap_or(&i32::MAX));
        t.next = rest.map(|r| if after { *shown.last().unwrap() } else { r });
        t
    }

    #[test]
    fn ps_pages_through_either_meaning_of_next() {
        let pids: Vec<i32> = (1..=40).map(|i| i * 3).collect();
        for after in [false, true] {
            let got: Vec<i32> = collect_ps(|from| table(&pids, from, after)).iter().map(|r| r.pid).collect();
            assert_eq!(got, pids, "next = {}", if after { "last shown" } else { "first not shown" });
        }
        let few = [1, 2, 5];
        let got: Vec<i32> = collect_ps(|from| table(&few, from, false)).iter().map(|r| r.pid).collect();
        assert_eq!(got, few);
        assert!(collect_ps(|from| table(&[], from, false)).is_empty());
    }

    #[test]
    fn ps_stops_on_a_core_that_does_not_move_on() {
        let mut calls = 0;
        let got = collect_ps(|_| {
            calls += 1;
            let mut t = table(&[1, 2, 3], 0, false);
            t.next = Some(0);
            t
        });
        assert_eq!(got.len(), 3);
        assert!(calls <= 2, "{calls} calls");
        let mut calls = 0;
        let got = collect_ps(|_| {
            calls += 1;
            let mut t = table(&[1, 2, 3], 0, false);
            t.n = 1000;
            t.next = Some(i32::MAX);
            t
        });
        assert_eq!(got.len(), 3);
        assert!(calls <= 2);
    }

    #[test]
    #[should_panic(expected = "before the program's init")]
    fn a_call_before_init_panics() {
        let _ = uptime_ms();
    }

    #[test]
    #[should_panic(expected = "the rv6 core failed during read: callee domain is dead")]
    fn rpc_errors_panic_with_the_call() {
        let r: RpcResult<u32> = Err(frond_interface::RpcError::DomainDead);
        call("read", r);
    }
}
