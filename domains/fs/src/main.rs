//! # dom-fs — the file-system domain
//!
//! Exports `Fs` for one xv6-format file system (`frond-fslib`) on the `Block` device the
//! kernel hands it (through a recovery proxy: a driver that dies mid-request is restarted
//! and the request submitted again, unseen here). Init mounts, which replays a committed
//! log and frees orphaned inodes — unless `FsArgs::keep_orphans` (a restart, whose
//! clients may still hold files that `unlink_keep` left as orphans); a device holding no
//! file system (an all-zero superblock block) is formatted when `FsArgs::format_if_empty`
//! says so, and anything else that does not mount is refused with the mount error (the
//! domain's init fails; nothing is written).
//!
//! **Commits.** Operations share a transaction (group commit, see `frond-fslib`). A call
//! that changed something commits before it returns unless another caller is already
//! queued for the file system, which then continues the transaction (the last of a
//! queue commits); a thread calls `tick` every [`TICK_NS`], which commits whatever is
//! still open, flushes, and installs the log when nothing was committed since the last
//! tick. So with one caller every returned call is in the log on the device (its commit
//! record written), and a restart of this domain loses nothing a caller saw complete;
//! with several, an operation returned while others were queued is committed within one
//! tick. A commit does not flush after its record: the next commit's flush, or the
//! tick's, makes it durable, so a power cut loses at most the last tick's worth of
//! returned calls (`sync` is the durability point, as before).
//!
//! **Device errors.** A device error in the log machinery poisons the file system (the
//! failing call returns `Io`; writes are refused after it). The commit thread notices
//! within one tick and panics: the domain restarts and its mount recovers the last commit,
//! so one transient I/O error costs the calls that saw it, not every later write.
//!
//! Buffers: `read`/`pread`/`write` copy between the caller's lent buffer and the file
//! system's 64 KiB I/O buffer (reads) or 64 KiB staging buffer (whole blocks written to
//! freshly allocated blocks), which are themselves lent to the block driver (the device
//! DMAs into and out of them).
//!
//! May depend on: `frond-interface`, `frond-domrt`, `frond-fslib`, `rref`.
//! `#![forbid(unsafe_code)]`.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, Ordering::SeqCst};
use frond_domrt::sync::Mutex;
use frond_domrt::{sys, Syscalls};
use frond_fslib::dev::BlockDev;
use frond_fslib::{FileSystem, MountError, MountOptions};
use frond_fslib::layout::{Variant, BSIZE};
use frond_fslib::mkfs::{self, Params};
use frond_interface::blk::{BlkError, BlkInfo, BlkReqs, Block};
use frond_interface::fs::*;
use frond_interface::{RRefVec, Remote, RpcResult};

frond_domrt::entry!(FsKind, init);

/// Period of the commit thread.
const TICK_NS: u64 = 100_000_000;

/// The block device through the kernel's recovery proxy. A call that fails even after
/// the proxy's retries (the driver keeps dying) is an I/O error to the file system.
struct Dev {
    blk: Remote<dyn Block>,
    info: BlkInfo,
}

impl BlockDev for Dev {
    type Buf = RRefVec<u8>;

    fn alloc_buf(&mut self, len: usize) -> Option<RRefVec<u8>> {
        RRefVec::try_new_with(len, |_| 0)
    }
    fn blocks(&self) -> u64 {
        self.info.blocks
    }
    fn read_only(&self) -> bool {
        self.info.read_only
    }
    fn read(&mut self, reqs: &BlkReqs, buf: &mut RRefVec<u8>) -> Result<(), BlkError> {
        self.blk.read(*reqs, buf).unwrap_or(Err(BlkError::Device))
    }
    fn write(&mut self, reqs: &BlkReqs, buf: &RRefVec<u8>) -> Result<(), BlkError> {
        self.blk.write(*reqs, buf).unwrap_or(Err(BlkError::Device))
    }
    fn flush(&mut self) -> Result<(), BlkError> {
        self.blk.flush().unwrap_or(Err(BlkError::Device))
    }
}

/// True if block 1 (the superblock) is all zeros: a device that never held a file system.
fn blank(dev: &mut Dev) -> Result<bool, BlkError> {
    let mut buf = dev.alloc_buf(BSIZE).ok_or(BlkError::Device)?;
    dev.read(&BlkReqs::one(1, 1), &mut buf)?;
    Ok(buf.iter().all(|&b| b == 0))
}

fn mount(mut dev: Dev, args: FsArgs) -> Result<FileSystem<Dev>, String> {
    let formatted = if args.format_if_empty && dev.blocks() >= 2 && blank(&mut dev).map_err(|e| format!("reading the superblock: {}", e.as_str()))? {
        let size = dev.blocks().min(u32::MAX as u64) as u32;
        // One inode per 16 blocks (xv6's mkfs: 200 for 2000), within the format's limits.
        let ninodes = (size / 16).clamp(200, 65535);
        let variant = if args.large { Variant::Large } else { Variant::Stock };
        mkfs::format(&mut dev, &Params::new(size, ninodes, variant)).map_err(|e| format!("formatting: {e}"))?;
        true
    } else {
        false
    };
    let opts = MountOptions { keep_orphans: args.keep_orphans, ..MountOptions::default() };
    let fs = FileSystem::mount_with(dev, opts).map_err(|(_, e): (Dev, MountError)| format!("{e}"))?;
    if formatted {
        sys().print("fs: formatted the empty device");
    }
    Ok(fs)
}

fn init(sys: &'static dyn Syscalls, (blk, args): (Remote<dyn Block>, FsArgs)) -> Remote<dyn Fs> {
    let info = match blk.info() {
        Ok(i) => i,
        Err(e) => panic!("fs: the block device does not answer: {}", e.as_str()),
    };
    let mut fs = match mount(Dev { blk, info }, args) {
        Ok(fs) => fs,
        Err(e) => panic!("fs: not mounted: {e}"),
    };
    let orphans = if args.keep_orphans { String::from("orphans kept") } else { format!("{} orphans freed", fs.orphans_freed()) };
    match fs.info() {
        Ok(i) => sys.print(&format!(
            "fs: mounted {} file system: {} blocks ({} data, {} free), {} inodes ({} free), log {} blocks; {} log blocks replayed, {}{}",
            if i.large { "large-file" } else { "xv6" },
            i.size,
            i.data_blocks,
            i.free_blocks,
            i.inodes,
            i.free_inodes,
            i.log_blocks,
            i.replayed,
            orphans,
            if info.read_only { " (read-only)" } else { "" }
        )),
        Err(e) => sys.print(&format!("fs: mounted, but reading the counters failed: {}", e.as_str())),
    }
    let shared = Arc::new(Shared { fs: Mutex::new(fs), waiting: AtomicU32::new(0) });
    let s = shared.clone();
    let ticker = sys.spawn(
        "fs-commit",
        Box::new(move || loop {
            sys.sleep_ns(TICK_NS);
            let mut fs = s.fs.lock();
            if let Err(e) = fs.tick() {
                sys.print(&format!("fs: periodic commit failed: {}", e.as_str()));
            }
            if fs.poisoned() {
                // Poisoned, the file system would refuse every write until mounted again:
                // fail, so the kernel restarts the domain, whose mount recovers the last
                // commit (every call that returned success is in it).
                panic!("fs: a device error poisoned the file system; restarting to recover from the log");
            }
        }),
    );
    if let Err(e) = ticker {
        sys.print(&format!("fs: no commit thread ({e}); every call commits"));
    }
    Remote::local(Box::new(FsDomain { s: shared }))
}

struct Shared {
    fs: Mutex<FileSystem<Dev>>,
    /// Callers waiting for the lock (they continue the open transaction).
    waiting: AtomicU32,
}

struct FsDomain {
    s: Arc<Shared>,
}

impl FsDomain {
    /// Runs `f` on the file system; if `changes`, commits afterwards unless a caller is
    /// queued behind (see the crate docs).
    fn with<T>(&self, changes: bool, f: impl FnOnce(&mut FileSystem<Dev>) -> FsResult<T>) -> RpcResult<FsResult<T>> {
        self.s.waiting.fetch_add(1, SeqCst);
        let mut fs = self.s.fs.lock();
        self.s.waiting.fetch_sub(1, SeqCst);
        let r = f(&mut fs);
        if changes && self.s.waiting.load(SeqCst) == 0 {
            if let Err(e) = fs.commit() {
                // The operation completed but is not durable: say so.
                return Ok(Err(r.err().unwrap_or(e)));
            }
        }
        Ok(r)
    }
}

fn path(p: &Path) -> FsResult<&[u8]> {
    if p.len as usize > PATH_MAX || p.len == 0 {
        return Err(FsError::BadPath);
    }
    Ok(p.as_bytes())
}

/// The caller's byte count, checked against its buffer and the per-call limit.
fn span(len: usize, buf_len: usize) -> FsResult<usize> {
    if len > buf_len || len > IO_MAX {
        return Err(FsError::Invalid);
    }
    Ok(len)
}

impl Fs for FsDomain {
    fn info(&self) -> RpcResult<FsResult<FsInfo>> {
        self.with(false, |fs| fs.info())
    }
    fn lookup(&self, cwd: u32, p: Path) -> RpcResult<FsResult<Stat>> {
        self.with(false, |fs| fs.lookup(cwd, path(&p)?))
    }
    fn stat(&self, inum: u32) -> RpcResult<FsResult<Stat>> {
        self.with(false, |fs| fs.stat(inum))
    }
    fn create(&self, cwd: u32, p: Path, kind: FileType, major: u16, minor: u16, excl: bool) -> RpcResult<FsResult<Stat>> {
        self.with(true, |fs| fs.create(cwd, path(&p)?, kind, major, minor, excl))
    }
    fn read(&self, inum: u32, off: u64, buf: &mut RRefVec<u8>) -> RpcResult<FsResult<u32>> {
        self.with(false, |fs| fs.pread(inum, off, buf, u32::MAX))
    }
    fn pread(&self, inum: u32, off: u64, buf: &mut RRefVec<u8>, len: u32) -> RpcResult<FsResult<u32>> {
        self.with(false, |fs| fs.pread(inum, off, buf, len))
    }
    fn write(&self, inum: u32, off: u64, buf: &RRefVec<u8>, len: u32) -> RpcResult<FsResult<u32>> {
        self.with(true, |fs| {
            let n = span(len as usize, buf.len())?;
            fs.write(inum, off, &buf[..n])
        })
    }
    fn truncate(&self, inum: u32, size: u64) -> RpcResult<FsResult<()>> {
        self.with(true, |fs| fs.truncate(inum, size))
    }
    fn readdir(&self, inum: u32, from: u32) -> RpcResult<FsResult<DirChunk>> {
        self.with(false, |fs| fs.readdir(inum, from))
    }
    fn link(&self, cwd: u32, old: Path, new: Path) -> RpcResult<FsResult<()>> {
        self.with(true, |fs| fs.link(cwd, path(&old)?, path(&new)?))
    }
    fn unlink(&self, cwd: u32, p: Path) -> RpcResult<FsResult<()>> {
        self.with(true, |fs| fs.unlink(cwd, path(&p)?))
    }
    fn unlink_keep(&self, cwd: u32, p: Path) -> RpcResult<FsResult<()>> {
        self.with(true, |fs| fs.unlink_keep(cwd, path(&p)?))
    }
    fn release(&self, inum: u32) -> RpcResult<FsResult<()>> {
        self.with(true, |fs| fs.release(inum))
    }
    fn sync(&self) -> RpcResult<FsResult<()>> {
        self.with(false, |fs| fs.sync())
    }
}
