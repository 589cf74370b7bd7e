//! The file system (`Fs`), exported by the fs domain over a `Block` device.
//!
//! Files are named by **inode number** once looked up: an inode number is the on-disk
//! identity of a file, so it stays valid across a restart of the fs domain (which
//! replays its log and mounts again). Every operation on an inode number is stateless and
//! `#[idempotent]` (a read or write names its offset), so a recovery proxy can repeat it
//! after a crash; only the namespace operations that are not (`create` with `excl`,
//! `link`, `unlink`) are left to the caller to repeat.
//!
//! Data moves in buffers the caller lends (`&mut RRefVec<u8>` to read into,
//! `&RRefVec<u8>` to write from). Paths cross by value ([`Path`]).

use crate::{domain_kind, interface, Exchangeable, RRefVec, Remote, RpcResult};

/// Longest path, in bytes (xv6's MAXPATH).
pub const PATH_MAX: usize = 128;
/// Longest name of one directory entry, in bytes (xv6's DIRSIZ).
pub const NAME_MAX: usize = 14;
/// The root directory's inode number.
pub const ROOT_INUM: u32 = 1;
/// Bytes one `read`/`write` call moves at most.
pub const IO_MAX: usize = 64 * 1024;
/// Entries one `readdir` call returns at most.
pub const DIR_CHUNK: usize = 16;

/// A path: absolute (from the root) or relative to the `cwd` inode passed with it.
#[derive(Exchangeable, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    pub len: u16,
    pub bytes: [u8; PATH_MAX],
}

impl Path {
    /// `None` if longer than [`PATH_MAX`].
    pub fn new(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() > PATH_MAX {
            return None;
        }
        let mut p = Self { len: b.len() as u16, bytes: [0; PATH_MAX] };
        p.bytes[..b.len()].copy_from_slice(b);
        Some(p)
    }

    /// The bytes (`len` clamped to the array).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..(self.len as usize).min(PATH_MAX)]
    }
}

impl core::fmt::Debug for Path {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", core::str::from_utf8(self.as_bytes()).unwrap_or("<non-utf8>"))
    }
}

/// On-disk inode types (xv6's `T_DIR`, `T_FILE`, `T_DEVICE` = 1, 2, 3).
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    Dir,
    File,
    Device,
}

#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub inum: u32,
    pub kind: FileType,
    pub nlink: u16,
    pub size: u64,
    /// Device numbers (`FileType::Device` only).
    pub major: u16,
    pub minor: u16,
}

/// One directory entry.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DirEntry {
    pub inum: u32,
    pub name_len: u8,
    pub name: [u8; NAME_MAX],
}

impl DirEntry {
    pub fn name(&self) -> &[u8] {
        &self.name[..(self.name_len as usize).min(NAME_MAX)]
    }
}

/// Up to [`DIR_CHUNK`] entries of a directory (`entries[..n]`, empty slots skipped) and
/// the entry index to continue from (`next`; `None` at the end).
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirChunk {
    pub n: u32,
    pub entries: [DirEntry; DIR_CHUNK],
    pub next: Option<u32>,
}

/// The file system as a whole (`df`).
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FsInfo {
    /// True for the large-file variant (11 direct + single + double indirect).
    pub large: bool,
    pub block_size: u32,
    /// Blocks in the file system (the superblock's `size`).
    pub size: u32,
    /// Data blocks and how many are free.
    pub data_blocks: u32,
    pub free_blocks: u32,
    pub inodes: u32,
    pub free_inodes: u32,
    /// Log blocks (without the header).
    pub log_blocks: u32,
    /// Largest file, in bytes.
    pub max_file: u64,
    /// Transactions committed and log blocks replayed at mount since this instance started.
    pub commits: u64,
    pub replayed: u32,
}

#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsError {
    NotFound,
    Exists,
    NotDir,
    IsDir,
    NotEmpty,
    /// A path component longer than [`NAME_MAX`] bytes.
    NameTooLong,
    /// A path longer than [`PATH_MAX`] bytes, or empty.
    BadPath,
    /// No free data block.
    NoSpace,
    /// No free inode.
    NoInodes,
    /// Past the largest file size.
    TooBig,
    /// An argument is out of range (inode number, offset, length, type).
    Invalid,
    /// The inode number names a free inode.
    Stale,
    /// The device is read-only.
    ReadOnly,
    /// The device failed.
    Io,
    /// The on-disk structure is inconsistent (the message went to the console).
    Corrupt,
    /// Links to a directory, across devices, or `.`/`..` as a target.
    NotPermitted,
}

impl FsError {
    pub fn as_str(&self) -> &'static str {
        match self {
            FsError::NotFound => "no such file or directory",
            FsError::Exists => "file exists",
            FsError::NotDir => "not a directory",
            FsError::IsDir => "is a directory",
            FsError::NotEmpty => "directory not empty",
            FsError::NameTooLong => "name too long",
            FsError::BadPath => "bad path",
            FsError::NoSpace => "no space left on device",
            FsError::NoInodes => "no free inodes",
            FsError::TooBig => "file too large",
            FsError::Invalid => "invalid argument",
            FsError::Stale => "stale inode",
            FsError::ReadOnly => "read-only file system",
            FsError::Io => "I/O error",
            FsError::Corrupt => "file system corrupt",
            FsError::NotPermitted => "operation not permitted",
        }
    }
}

pub type FsResult<T> = Result<T, FsError>;

/// An xv6-format file system.
#[interface(recover)]
pub trait Fs: Send + Sync {
    #[idempotent]
    fn info(&self) -> RpcResult<FsResult<FsInfo>>;
    /// Resolves `path` (relative paths from directory `cwd`).
    #[idempotent]
    fn lookup(&self, cwd: u32, path: Path) -> RpcResult<FsResult<Stat>>;
    #[idempotent]
    fn stat(&self, inum: u32) -> RpcResult<FsResult<Stat>>;
    /// Creates `path` of `kind`. An existing file of the same kind is returned unless
    /// `excl` (then `Exists`); for directories `excl` is implied.
    fn create(&self, cwd: u32, path: Path, kind: FileType, major: u16, minor: u16, excl: bool) -> RpcResult<FsResult<Stat>>;
    /// Reads from `off` into `buf` (at most [`IO_MAX`] bytes); returns the bytes read
    /// (0 at or past the end).
    #[idempotent]
    fn read(&self, inum: u32, off: u64, buf: &mut RRefVec<u8>) -> RpcResult<FsResult<u32>>;
    /// Writes `buf[..len]` at `off` (at most [`IO_MAX`] bytes), growing the file; returns
    /// the bytes written. One call is one or more transactions: a crash may leave a
    /// prefix of it written, never a torn block.
    #[idempotent]
    fn write(&self, inum: u32, off: u64, buf: &RRefVec<u8>, len: u32) -> RpcResult<FsResult<u32>>;
    /// Reads from `off` into `buf[..n]` with `n` the least of `len`, `buf.len()` and
    /// [`IO_MAX`]; returns the bytes read (0 at or past the end).
    #[idempotent]
    fn pread(&self, inum: u32, off: u64, buf: &mut RRefVec<u8>, len: u32) -> RpcResult<FsResult<u32>>;
    /// Sets a file's size (shrinks it, freeing blocks, or grows it with zeros).
    #[idempotent]
    fn truncate(&self, inum: u32, size: u64) -> RpcResult<FsResult<()>>;
    /// Entries of directory `inum` from entry index `from`.
    #[idempotent]
    fn readdir(&self, inum: u32, from: u32) -> RpcResult<FsResult<DirChunk>>;
    /// A new name `new` for the file at `old` (not a directory).
    fn link(&self, cwd: u32, old: Path, new: Path) -> RpcResult<FsResult<()>>;
    /// Removes `path` (a directory only if empty); the inode is freed with its last link.
    fn unlink(&self, cwd: u32, path: Path) -> RpcResult<FsResult<()>>;
    /// As `unlink`, but a file whose last link this removes stays allocated (an *orphan*:
    /// readable and writable by inode number) until [`Fs::release`] or the next mount
    /// that frees orphans: the caller still has it open.
    fn unlink_keep(&self, cwd: u32, path: Path) -> RpcResult<FsResult<()>>;
    /// Frees `inum` if it is an orphan (allocated, no links); does nothing to a linked
    /// inode (`Ok`), `Stale` for a free one.
    #[idempotent]
    fn release(&self, inum: u32) -> RpcResult<FsResult<()>>;
    /// Makes every completed operation durable (commits and flushes the device).
    #[idempotent]
    fn sync(&self) -> RpcResult<FsResult<()>>;
}

/// Mount options of the fs domain.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FsArgs {
    /// Format the device first if it holds no file system (the RAM disk).
    pub format_if_empty: bool,
    /// Format with the large-file variant (when formatting).
    pub large: bool,
    /// Leave orphaned inodes (allocated, no links) alone at mount instead of freeing
    /// them: a restart of the domain, whose clients may still hold unlinked files open.
    /// The first mount after boot frees them.
    pub keep_orphans: bool,
}

domain_kind!(pub FsKind: (Remote<dyn crate::blk::Block>, FsArgs) => dyn Fs);

// ------------------------------------------------------------------------------------
// The file-system workload domain (tests, crash demos, benchmarks).

/// What a `FsLoad::run` does.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadMode {
    /// Round after round: write `files` files of `file_bytes` under `/load` with contents
    /// derived from (seed, file, round), read each back and compare, `sync` every
    /// `sync_every` files, printing `fsload: synced round R file F` after each sync.
    Verify,
    /// Check what an earlier `Verify` run printed as synced (after a reboot): every file
    /// of every synced round is there with the right bytes (a later round's bytes are
    /// accepted for a file rewritten after the sync).
    Check,
    /// Sequential write and read of one file of `file_bytes` in requests of
    /// `request_bytes`, then `files` creates and deletes; prints the figures.
    Bench,
}

#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadArgs {
    pub mode: LoadMode,
    pub files: u32,
    pub file_bytes: u32,
    pub request_bytes: u32,
    pub sync_every: u32,
    /// Rounds (`Verify`; 0: until killed).
    pub rounds: u32,
    pub seed: u64,
}

#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LoadStats {
    pub rounds: u64,
    pub files_written: u64,
    pub files_verified: u64,
    /// Files whose bytes differed from what was written (must stay 0).
    pub mismatches: u64,
    /// File-system calls that failed (and were retried).
    pub errors: u64,
    pub syncs: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
}

#[interface]
pub trait FsLoad: Send + Sync {
    /// Runs on the calling thread until done; returns the counters.
    fn run(&self, args: LoadArgs) -> RpcResult<LoadStats>;
}

domain_kind!(pub FsLoadKind: (Remote<dyn Fs>,) => dyn FsLoad);
