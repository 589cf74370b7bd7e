//! rv6, the POSIX-like (xv6-style) subsystem: its system-call interface ([`Rv6`]), the
//! user-program entry ([`Program`]), and the two kernel services the rv6 core is built on
//! ([`Procs`]: program domains loaded from image bytes; [`Console`]: the serial console).
//!
//! **Processes are domains.** A user program is a separately compiled domain of kind
//! [`ProgramKind`]: its init gets a handle to the rv6 core's [`Rv6`] export and its pid,
//! and returns a [`Program`] whose `main(argv)` is the program. The rv6 core reads the
//! program's ELF file from the file system into an RRef buffer and lends it to
//! [`Procs::load`]; the kernel's loader validates it exactly as it validates boot images
//! (bounds, relocations, compiler and the entry hash — a program built against another
//! interface is refused). [`Procs::run`] calls `main` on the calling thread and returns
//! how the program ended; the kernel then removes the domain.
//!
//! **Who is calling.** The rv6 core has one export for all programs; it knows which
//! process a call comes from by asking the kernel who its caller is
//! (`frond_domrt::Syscalls::caller`: the domain and generation of the innermost proxied
//! call, which a program cannot forge). Processes are therefore never named by a
//! capability a program could pass on.
//!
//! **Data** moves in buffers the program lends: `read` lends `&mut RRefVec<u8>` through
//! the core to the file system, which fills it in place (no copy between the file system
//! and the program); `write` lends `&RRefVec<u8>` the same way. Pipes and the console copy
//! (a pipe holds bytes between two programs).
//!
//! Every error is an [`Errno`]; a syscall never panics the core on any argument.

use crate::fs::{DirChunk, Path, PATH_MAX};
use crate::{domain_kind, interface, Exchangeable, RRefVec, Remote, RpcResult};

/// Bytes of all arguments of one program together (NUL-separated).
pub const ARGV_BYTES: usize = 1024;
/// Arguments at most.
pub const ARGS_MAX: usize = 32;
/// Entries of a spawn's descriptor map.
pub const FDMAP_MAX: usize = 8;
/// Open descriptors per process (xv6's NOFILE).
pub const NOFILE: usize = 16;
/// Longest program name shown by `ps` and in the domain table.
pub const NAME_LEN: usize = 16;
/// Bytes of a crash message kept in an [`ExitStatus`].
pub const CRASH_MSG: usize = 120;
/// Rows of one [`ProcTable`].
pub const PS_ROWS: usize = 16;
/// Largest program image the core loads.
pub const IMAGE_MAX: usize = 8 << 20;

/// Device numbers of `mknod` (xv6: the console is major 1).
pub const CONSOLE_MAJOR: u16 = 1;

/// `open` flags (bit set; read is implied unless `O_WRONLY`).
pub const O_RDONLY: u32 = 0x000;
pub const O_WRONLY: u32 = 0x001;
pub const O_RDWR: u32 = 0x002;
pub const O_CREATE: u32 = 0x200;
pub const O_TRUNC: u32 = 0x400;
pub const O_APPEND: u32 = 0x800;
/// Every defined flag bit; an `open` with any other bit set fails with `Inval`.
pub const O_ALL: u32 = O_WRONLY | O_RDWR | O_CREATE | O_TRUNC | O_APPEND;

/// errno: why a system call failed. Numbers are Linux's, for familiarity.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Errno {
    /// Operation not permitted (links to directories, unlinking `.`, `..` or `/`).
    Perm,
    /// No such file, directory or process.
    NoEnt,
    /// No such process.
    Srch,
    /// Interrupted: the process was killed while the call blocked.
    Intr,
    /// I/O error (the device or file-system domain failed and could not be recovered).
    Io,
    /// Argument list or descriptor map too long.
    TooBig,
    /// Not an executable for this system (not an ELF image, built for another interface or
    /// another compiler, or larger than [`IMAGE_MAX`]).
    NoExec,
    /// Bad file descriptor (not open, or not open for this direction).
    BadF,
    /// No such child (wait).
    Child,
    /// Resource temporarily unavailable: the process table or the system's domain slots
    /// are full.
    Again,
    /// Out of memory (shared heap or the core's heap).
    NoMem,
    /// File exists.
    Exist,
    NotDir,
    IsDir,
    /// Invalid argument (flags, whence, offsets, lengths past the lent buffer).
    Inval,
    /// Too many open files in this process.
    MFile,
    /// File too large.
    FBig,
    /// No space left on the device (blocks or inodes).
    NoSpc,
    /// Illegal seek (on a pipe or the console).
    SPipe,
    /// Broken pipe: writing to a pipe with no reader.
    Pipe,
    /// A path longer than `PATH_MAX` or a name longer than `NAME_MAX`.
    NameTooLong,
    /// Directory not empty.
    NotEmpty,
    /// The file system is damaged (its domain reported the details on the console).
    Corrupt,
    /// A read-only file system.
    ReadOnly,
}

impl Errno {
    /// Linux's number for it.
    pub fn code(self) -> i32 {
        match self {
            Errno::Perm => 1,
            Errno::NoEnt => 2,
            Errno::Srch => 3,
            Errno::Intr => 4,
            Errno::Io => 5,
            Errno::TooBig => 7,
            Errno::NoExec => 8,
            Errno::BadF => 9,
            Errno::Child => 10,
            Errno::Again => 11,
            Errno::NoMem => 12,
            Errno::Exist => 17,
            Errno::NotDir => 20,
            Errno::IsDir => 21,
            Errno::Inval => 22,
            Errno::MFile => 24,
            Errno::FBig => 27,
            Errno::NoSpc => 28,
            Errno::SPipe => 29,
            Errno::ReadOnly => 30,
            Errno::Pipe => 32,
            Errno::NameTooLong => 36,
            Errno::NotEmpty => 39,
            Errno::Corrupt => 117,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Errno::Perm => "operation not permitted",
            Errno::NoEnt => "no such file or directory",
            Errno::Srch => "no such process",
            Errno::Intr => "interrupted",
            Errno::Io => "I/O error",
            Errno::TooBig => "argument list too long",
            Errno::NoExec => "exec format error",
            Errno::BadF => "bad file descriptor",
            Errno::Child => "no child processes",
            Errno::Again => "resource temporarily unavailable",
            Errno::NoMem => "out of memory",
            Errno::Exist => "file exists",
            Errno::NotDir => "not a directory",
            Errno::IsDir => "is a directory",
            Errno::Inval => "invalid argument",
            Errno::MFile => "too many open files",
            Errno::FBig => "file too large",
            Errno::NoSpc => "no space left on device",
            Errno::SPipe => "illegal seek",
            Errno::ReadOnly => "read-only file system",
            Errno::Pipe => "broken pipe",
            Errno::NameTooLong => "file name too long",
            Errno::NotEmpty => "directory not empty",
            Errno::Corrupt => "file system corrupt",
        }
    }

    /// The errno for a file-system error.
    pub fn from_fs(e: crate::fs::FsError) -> Errno {
        use crate::fs::FsError as F;
        match e {
            F::NotFound => Errno::NoEnt,
            F::Exists => Errno::Exist,
            F::NotDir => Errno::NotDir,
            F::IsDir => Errno::IsDir,
            F::NotEmpty => Errno::NotEmpty,
            F::NameTooLong => Errno::NameTooLong,
            F::BadPath => Errno::NoEnt,
            F::NoSpace | F::NoInodes => Errno::NoSpc,
            F::TooBig => Errno::FBig,
            F::Invalid => Errno::Inval,
            F::Stale => Errno::NoEnt,
            F::ReadOnly => Errno::ReadOnly,
            F::Io => Errno::Io,
            F::Corrupt => Errno::Corrupt,
            F::NotPermitted => Errno::Perm,
        }
    }
}

pub type SysResult<T> = Result<T, Errno>;

/// A program's arguments: `argc` NUL-terminated strings packed in `bytes[..len]`.
#[derive(Exchangeable, Clone, Copy)]
pub struct Argv {
    pub argc: u32,
    pub len: u32,
    pub bytes: [u8; ARGV_BYTES],
}

impl Argv {
    pub const fn empty() -> Self {
        Self { argc: 0, len: 0, bytes: [0; ARGV_BYTES] }
    }

    /// Packs `args`; `TooBig` past [`ARGS_MAX`] arguments or [`ARGV_BYTES`] bytes, `Inval`
    /// for an argument holding a NUL byte.
    pub fn new<S: AsRef<[u8]>>(args: &[S]) -> SysResult<Self> {
        let mut a = Self::empty();
        for s in args {
            a.push(s.as_ref())?;
        }
        Ok(a)
    }

    pub fn push(&mut self, arg: &[u8]) -> SysResult<()> {
        if arg.contains(&0) {
            return Err(Errno::Inval);
        }
        let at = self.len as usize;
        if self.argc as usize >= ARGS_MAX || at + arg.len() + 1 > ARGV_BYTES {
            return Err(Errno::TooBig);
        }
        self.bytes[at..at + arg.len()].copy_from_slice(arg);
        self.bytes[at + arg.len()] = 0;
        self.len += arg.len() as u32 + 1;
        self.argc += 1;
        Ok(())
    }

    /// The arguments. A damaged `Argv` (lengths past the array) yields what is in bounds.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let end = (self.len as usize).min(ARGV_BYTES);
        self.bytes[..end].split(|&b| b == 0).take(self.argc.min(ARGS_MAX as u32) as usize)
    }
}

impl core::fmt::Debug for Argv {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter().map(|a| core::str::from_utf8(a).unwrap_or("<non-utf8>"))).finish()
    }
}

/// The descriptors a spawned child starts with: its descriptor `i` is a duplicate of the
/// parent's descriptor `fds[i]` for `i < n` (`-1`: left closed).
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdMap {
    pub n: u32,
    pub fds: [i32; FDMAP_MAX],
}

impl FdMap {
    /// The parent's 0, 1 and 2.
    pub const fn stdio() -> Self {
        Self { n: 3, fds: [0, 1, 2, -1, -1, -1, -1, -1] }
    }
    /// `fds` of at most [`FDMAP_MAX`] entries.
    pub fn new(fds: &[i32]) -> SysResult<Self> {
        if fds.len() > FDMAP_MAX {
            return Err(Errno::TooBig);
        }
        let mut m = Self { n: fds.len() as u32, fds: [-1; FDMAP_MAX] };
        m.fds[..fds.len()].copy_from_slice(fds);
        Ok(m)
    }
}

/// `lseek`'s origin.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whence {
    Set,
    Cur,
    End,
}

/// What a descriptor or path names.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Dir,
    File,
    /// A device inode (`mknod`): the console is major [`CONSOLE_MAJOR`].
    Device,
    Pipe,
}

#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct FStat {
    pub kind: FileKind,
    /// Inode number (0 for a pipe).
    pub ino: u32,
    pub nlink: u16,
    pub size: u64,
    pub major: u16,
    pub minor: u16,
}

/// How a process ended.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// `exit(code)` or a return from `main` with `code`.
    Exited,
    /// Panicked or faulted; `msg` holds the panic message.
    Crashed,
    /// Killed (`kill`, the watchdog, or the core ending it).
    Killed,
}

#[derive(Exchangeable, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    pub kind: ExitKind,
    pub code: i32,
    pub msg_len: u32,
    pub msg: [u8; CRASH_MSG],
}

impl ExitStatus {
    pub const fn exited(code: i32) -> Self {
        Self { kind: ExitKind::Exited, code, msg_len: 0, msg: [0; CRASH_MSG] }
    }
    pub const fn killed() -> Self {
        Self { kind: ExitKind::Killed, code: -1, msg_len: 0, msg: [0; CRASH_MSG] }
    }
    /// A crash with `msg` (cut at [`CRASH_MSG`] bytes, on a character boundary).
    pub fn crashed(msg: &str) -> Self {
        let mut n = msg.len().min(CRASH_MSG);
        while !msg.is_char_boundary(n) {
            n -= 1;
        }
        let mut s = Self { kind: ExitKind::Crashed, code: -1, msg_len: n as u32, msg: [0; CRASH_MSG] };
        s.msg[..n].copy_from_slice(&msg.as_bytes()[..n]);
        s
    }
    pub fn message(&self) -> &str {
        let n = (self.msg_len as usize).min(CRASH_MSG);
        core::str::from_utf8(&self.msg[..n]).unwrap_or("<non-utf8>")
    }
    /// The shell's `$?`: the code, or 128+9 when killed, 128+6 when crashed (as Linux's
    /// SIGKILL and SIGABRT).
    pub fn shell_code(&self) -> i32 {
        match self.kind {
            ExitKind::Exited => self.code,
            ExitKind::Crashed => 134,
            ExitKind::Killed => 137,
        }
    }
}

impl core::fmt::Debug for ExitStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.kind {
            ExitKind::Exited => write!(f, "exited({})", self.code),
            ExitKind::Killed => write!(f, "killed"),
            ExitKind::Crashed => write!(f, "crashed({:?})", self.message()),
        }
    }
}

/// A reaped child.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waited {
    pub pid: i32,
    pub status: ExitStatus,
}

/// A short name (program names; `name[..len]`).
#[derive(Exchangeable, Clone, Copy, PartialEq, Eq, Default)]
pub struct Name {
    pub len: u8,
    pub bytes: [u8; NAME_LEN],
}

impl Name {
    /// Cut at [`NAME_LEN`] bytes on a character boundary.
    pub fn new(s: &str) -> Self {
        let mut n = s.len().min(NAME_LEN);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        let mut r = Self { len: n as u8, bytes: [0; NAME_LEN] };
        r.bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
        r
    }
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..(self.len as usize).min(NAME_LEN)]).unwrap_or("?")
    }
}

impl core::fmt::Debug for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    /// Being loaded.
    Embryo,
    Running,
    /// Blocked in a system call (pipe, console, wait, sleep).
    Sleeping,
    /// Ended, not yet waited for.
    Zombie,
}

#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcRow {
    pub pid: i32,
    pub ppid: i32,
    pub state: ProcState,
    pub name: Name,
    /// The program's domain id (0 while loading or after it ended).
    pub domain: u32,
}

/// Up to [`PS_ROWS`] processes (`rows[..n]`) and the pid to continue after (`next`).
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcTable {
    pub n: u32,
    pub rows: [ProcRow; PS_ROWS],
    pub next: Option<i32>,
}

/// The system calls: the rv6 core's export, called by every program. The calling process
/// is the caller's domain (see the module docs); a call from anything else (the kernel, an
/// unknown domain) gets `Srch`.
#[interface]
pub trait Rv6: Send + Sync {
    // ---- processes
    /// Starts the program at `path` (searched as given; the shell adds `/bin`) with `argv`
    /// and the descriptors `fds`; returns the child's pid.
    fn spawn(&self, path: Path, argv: Argv, fds: FdMap) -> RpcResult<SysResult<i32>>;
    /// Waits for child `pid` (-1: any child) to end and reaps it.
    fn wait(&self, pid: i32) -> RpcResult<SysResult<Waited>>;
    /// Ends the calling process with `code`. Never returns to a live caller.
    fn exit(&self, code: i32) -> RpcResult<()>;
    fn getpid(&self) -> RpcResult<i32>;
    /// Kills process `pid` (any process, as in xv6).
    fn kill(&self, pid: i32) -> RpcResult<SysResult<()>>;
    /// Milliseconds since boot.
    fn uptime(&self) -> RpcResult<u64>;
    /// Sleeps `ms` milliseconds (`Intr` if killed meanwhile).
    fn sleep(&self, ms: u64) -> RpcResult<SysResult<()>>;
    /// Processes from pid `from` on.
    fn ps(&self, from: i32) -> RpcResult<ProcTable>;

    // ---- files
    fn open(&self, path: Path, flags: u32) -> RpcResult<SysResult<i32>>;
    fn close(&self, fd: i32) -> RpcResult<SysResult<()>>;
    /// Reads up to `len` bytes (at most `buf.len()` and 64 KiB) into `buf[..]` at the
    /// descriptor's offset; 0 at end of file (or a pipe whose writers all closed).
    fn read(&self, fd: i32, buf: &mut RRefVec<u8>, len: u32) -> RpcResult<SysResult<u32>>;
    /// Writes `buf[..len]` (at most 64 KiB) at the descriptor's offset (the end with
    /// `O_APPEND`).
    fn write(&self, fd: i32, buf: &RRefVec<u8>, len: u32) -> RpcResult<SysResult<u32>>;
    /// Moves a file's offset; returns the new offset. Past the end is allowed (a write
    /// there fills the gap with zeros); before 0 is `Inval`.
    fn lseek(&self, fd: i32, off: i64, whence: Whence) -> RpcResult<SysResult<u64>>;
    fn fstat(&self, fd: i32) -> RpcResult<SysResult<FStat>>;
    /// A new descriptor (the lowest free) sharing `fd`'s open file and offset.
    fn dup(&self, fd: i32) -> RpcResult<SysResult<i32>>;
    /// `[read end, write end]`.
    fn pipe(&self) -> RpcResult<SysResult<[i32; 2]>>;
    fn mknod(&self, path: Path, major: u16, minor: u16) -> RpcResult<SysResult<()>>;
    fn link(&self, old: Path, new: Path) -> RpcResult<SysResult<()>>;
    fn unlink(&self, path: Path) -> RpcResult<SysResult<()>>;
    fn mkdir(&self, path: Path) -> RpcResult<SysResult<()>>;
    fn chdir(&self, path: Path) -> RpcResult<SysResult<()>>;
    /// The working directory's absolute path.
    fn getcwd(&self) -> RpcResult<SysResult<Path>>;
    /// The next entries of directory `fd` (opened with `open`), advancing its offset;
    /// `n == 0` at the end.
    fn readdir(&self, fd: i32) -> RpcResult<SysResult<DirChunk>>;
    /// Makes every completed file-system operation durable.
    fn sync(&self) -> RpcResult<SysResult<()>>;
    /// Runs a command of the kernel monitor (`domains`, `crash fs`, …); its output goes
    /// to the console. `Perm` unless the system was started with the monitor reachable.
    fn monitor(&self, cmd: Path) -> RpcResult<SysResult<()>>;
}

/// A program's arguments to init.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgArgs {
    pub pid: i32,
}

/// A user program: its init stores the `Rv6` handle; `main` is the program.
#[interface]
pub trait Program: Send + Sync {
    /// Runs the program; the result is its exit code.
    fn main(&self, argv: Argv) -> RpcResult<i32>;
}

domain_kind!(pub ProgramKind: (Remote<dyn Rv6>, ProgArgs) => dyn Program);

// ------------------------------------------------------------------------------------
// The kernel's services for the rv6 core.

/// A program domain: its slot and generation.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcId {
    pub domain: u32,
    pub generation: u64,
}

/// Quotas of one program domain.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcLimits {
    pub heap_kib: u32,
    pub shared_kib: u32,
    pub threads: u32,
}

/// Why [`Procs::load`] failed.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The image is not a valid program for this kernel (`msg` says why).
    BadImage,
    /// Every domain slot is in use, or the caller's process quota is reached.
    NoSlot,
    /// No memory for the image or the domain.
    NoMemory,
    /// The program's init panicked.
    InitFailed,
    /// Arguments out of range (`len` past the buffer, zero limits).
    Invalid,
}

#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadFailure {
    pub error: LoadError,
    pub msg_len: u32,
    pub msg: [u8; CRASH_MSG],
}

impl LoadFailure {
    pub fn message(&self) -> &str {
        let n = (self.msg_len as usize).min(CRASH_MSG);
        core::str::from_utf8(&self.msg[..n]).unwrap_or("<non-utf8>")
    }
}

/// Program domains, for the rv6 core (exported by the kernel). Every program a caller
/// loads is its child: only it may run or kill it, and the child dies with it.
#[interface]
pub trait Procs: Send + Sync {
    /// Loads `image[..len]` as a new program domain named `name` with quotas `limits`,
    /// runs its init with a handle to the caller's `Rv6` export and `args`.
    fn load(&self, name: Name, image: &RRefVec<u8>, len: u32, limits: ProcLimits, args: ProgArgs) -> RpcResult<Result<ProcId, LoadFailure>>;
    /// Runs `main(argv)` of a loaded program on the calling thread, then removes the
    /// domain (whatever happened) and returns how the program ended. Once per program.
    fn run(&self, p: ProcId, argv: Argv) -> RpcResult<SysResult<ExitStatus>>;
    /// Kills a program (`orderly`: an `exit`, not counted as a crash). False if it had
    /// already ended.
    fn kill(&self, p: ProcId, orderly: bool) -> RpcResult<bool>;
    /// Removes a program that was loaded but will never run.
    fn discard(&self, p: ProcId) -> RpcResult<()>;
}

/// The serial console, for the rv6 core (exported by the kernel). Input is line-edited by
/// the kernel (echo, backspace, Ctrl-U); a read returns at most one line.
#[interface]
pub trait Console: Send + Sync {
    /// Waits up to `timeout_ms` for input; returns the bytes placed in `buf` (0: none yet).
    /// `Ctrl-D` on an empty line is end of input: `u32::MAX`.
    fn read(&self, buf: &mut RRefVec<u8>, timeout_ms: u32) -> RpcResult<u32>;
    /// Writes `buf[..len]`.
    fn write(&self, buf: &RRefVec<u8>, len: u32) -> RpcResult<u32>;
    /// Runs a monitor command; false if the monitor is not reachable from rv6.
    fn monitor(&self, cmd: Path) -> RpcResult<bool>;
}

/// The rv6 core's configuration.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rv6Args {
    /// The first program (`/bin/init`), started with the console as 0, 1, 2.
    pub init: Path,
    /// Processes at most (the fork-bomb bound).
    pub nproc: u32,
    pub limits: ProcLimits,
}

impl Rv6Args {
    pub fn default_init() -> Self {
        let mut init = Path { len: 0, bytes: [0; PATH_MAX] };
        let s = b"/bin/init";
        init.bytes[..s.len()].copy_from_slice(s);
        init.len = s.len() as u16;
        Self { init, nproc: 24, limits: ProcLimits { heap_kib: 8192, shared_kib: 2048, threads: 4 } }
    }
}

domain_kind!(pub Rv6Kind: (Remote<dyn crate::fs::Fs>, Remote<dyn Procs>, Remote<dyn Console>, Rv6Args) => dyn Rv6);
