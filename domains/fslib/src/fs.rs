//! The file system object: mount (superblock and log-header validation, recovery, orphan
//! cleanup), the block layer over the buffer cache, and the write-ahead log with group
//! commit.

use alloc::vec::Vec;
use core::fmt;

use frond_interface::fs::{FsError, FsResult};

use crate::cache::Cache;
use crate::dev::{BlkError, BlkReq, BlkReqs, BlockDev, BLK_BYTES_MAX};
use crate::layout::*;

/// Why a device could not be mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountError {
    /// The device could not lend the file system its I/O buffers.
    NoMemory,
    /// Reading the superblock or the log, or replaying the log, failed.
    Io(BlkError),
    /// Fewer than two blocks: no superblock.
    DeviceTooSmall(u64),
    /// Neither xv6's magic nor the large-file variant's.
    BadMagic(u32),
    /// The superblock's `size` is larger than the device.
    SizeBeyondDevice { size: u32, blocks: u64 },
    /// The superblock's regions are inconsistent (which rule is in the message).
    BadSuperblock(&'static str),
    /// The log header is inconsistent.
    BadLog(&'static str),
    /// Inode 1 is not a directory.
    BadRoot,
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::NoMemory => write!(f, "no memory for the file system's I/O buffers"),
            MountError::Io(e) => write!(f, "device error while mounting: {}", e.as_str()),
            MountError::DeviceTooSmall(b) => write!(f, "device of {b} blocks holds no superblock"),
            MountError::BadMagic(m) => write!(f, "not an xv6 file system (magic {m:#010x})"),
            MountError::SizeBeyondDevice { size, blocks } => {
                write!(f, "superblock size {size} blocks exceeds the device's {blocks} blocks")
            }
            MountError::BadSuperblock(why) => write!(f, "bad superblock: {why}"),
            MountError::BadLog(why) => write!(f, "bad log: {why}"),
            MountError::BadRoot => write!(f, "root inode {ROOTINO} is not a directory"),
        }
    }
}

/// A validated superblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub variant: Variant,
    pub size: u32,
    pub ninodes: u32,
    pub nlog: u32,
    pub logstart: u32,
    /// Log blocks usable for one transaction: `min(nlog - 1, LOGBLOCKS)`.
    pub logcap: u32,
    pub inodestart: u32,
    pub bmapstart: u32,
    /// First data block: `size - nblocks`.
    pub datastart: u32,
}

impl Geometry {
    pub fn max_file_bytes(&self) -> u64 {
        self.variant.max_file_blocks() * BSIZE as u64
    }
}

/// Checks a superblock against a device of `dev_blocks` blocks. The rules: a known magic
/// (which selects the variant); `size` within the device; the regions in order and
/// disjoint — boot and superblock, log (`logstart >= 2`, `nlog - 1 >= MAXOPBLOCKS` so one
/// operation fits), inode blocks, bitmap, data (`size - nblocks`, at least one block) —
/// all inside `size`; `2 <= ninodes`, the inodes fit their blocks and every inode number
/// fits a directory entry's 16 bits; the bitmap has a bit for every block below `size`.
pub fn check_superblock(sb: &SuperBlock, dev_blocks: u64) -> Result<Geometry, MountError> {
    let variant = Variant::from_magic(sb.magic).ok_or(MountError::BadMagic(sb.magic))?;
    if sb.size as u64 > dev_blocks {
        return Err(MountError::SizeBeyondDevice { size: sb.size, blocks: dev_blocks });
    }
    let bad = |why| Err(MountError::BadSuperblock(why));
    let size = sb.size as u64;
    let (logstart, nlog) = (sb.logstart as u64, sb.nlog as u64);
    let (inodestart, bmapstart) = (sb.inodestart as u64, sb.bmapstart as u64);
    if logstart < 2 {
        return bad("log starts inside the boot block or the superblock");
    }
    if nlog < 2 {
        return bad("log too small for a header and one block");
    }
    if nlog - 1 < MAXOPBLOCKS as u64 {
        return bad("log smaller than one operation (MAXOPBLOCKS blocks plus the header)");
    }
    if logstart + nlog > inodestart {
        return bad("log overlaps the inode blocks");
    }
    if inodestart >= bmapstart {
        return bad("no inode blocks before the bitmap");
    }
    if sb.ninodes < 2 {
        return bad("no inode for the root directory");
    }
    if sb.ninodes > 1 << 16 {
        return bad("more inodes than a directory entry can name");
    }
    if sb.ninodes as u64 > (bmapstart - inodestart) * IPB as u64 {
        return bad("the inodes do not fit the inode blocks");
    }
    if sb.nblocks == 0 || sb.nblocks as u64 > size {
        return bad("data block count is zero or larger than the file system");
    }
    let datastart = size - sb.nblocks as u64;
    if bmapstart >= datastart {
        return bad("no bitmap blocks before the data blocks");
    }
    if (datastart - bmapstart) * (BPB as u64) < size {
        return bad("the bitmap does not cover the file system");
    }
    Ok(Geometry {
        variant,
        size: sb.size,
        ninodes: sb.ninodes,
        nlog: sb.nlog,
        logstart: sb.logstart,
        logcap: (sb.nlog - 1).min(LOGBLOCKS as u32),
        inodestart: sb.inodestart,
        bmapstart: sb.bmapstart,
        datastart: datastart as u32,
    })
}

/// Mount options.
#[derive(Clone, Copy, Debug)]
pub struct MountOptions {
    /// Buffer-cache capacity in blocks (at least `LOGBLOCKS + 16` are used).
    pub cache_blocks: usize,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self { cache_blocks: 128 }
    }
}

/// Undo record of one block an operation touched: its bytes before (`None`: the block
/// was not cached and the operation overwrote it whole) and whether it already belonged
/// to the open transaction.
pub(crate) struct Undo {
    pub bno: u32,
    pub old: Option<Vec<u8>>,
    pub was_in_txn: bool,
}

/// The operation in progress.
pub(crate) struct Op {
    pub undo: Vec<Undo>,
    /// Blocks this operation added to the transaction (at most `MAXOPBLOCKS`).
    pub added: usize,
}

/// An xv6-format file system on a [`BlockDev`]. See the crate documentation.
pub struct FileSystem<D: BlockDev> {
    pub(crate) dev: D,
    pub(crate) g: Geometry,
    pub(crate) read_only: bool,
    pub(crate) cache: Cache,
    /// Blocks of the open transaction, in the order they joined it.
    pub(crate) txn: Vec<u32>,
    pub(crate) op: Option<Op>,
    /// Operations in the open transaction.
    pub(crate) txn_ops: u32,
    /// 64 KiB for file data, log writes and installs.
    pub(crate) io: D::Buf,
    /// One block for cache misses and the log header.
    pub(crate) mbuf: D::Buf,
    /// A commit failed: nothing is written any more (see the crate docs).
    pub(crate) poisoned: bool,
    pub(crate) commits: u64,
    pub(crate) replayed: u32,
    pub(crate) orphans: u32,
    pub(crate) balloc_hint: u32,
    pub(crate) ialloc_hint: u32,
}

fn buf_of<D: BlockDev>(dev: &mut D, len: usize) -> Option<D::Buf> {
    dev.alloc_buf(len).filter(|b| b.len() == len)
}

impl<D: BlockDev> FileSystem<D> {
    /// Mounts the file system on `dev` with default options.
    pub fn mount(dev: D) -> Result<Self, (D, MountError)> {
        Self::mount_with(dev, MountOptions::default())
    }

    /// Validates the superblock and the log header, replays a committed transaction
    /// (on a read-only device: into pinned cache entries instead of the disk), checks the
    /// root, and frees orphaned inodes (allocated, no links: left by a crash inside a
    /// multi-transaction unlink). On failure the device is handed back.
    pub fn mount_with(mut dev: D, opts: MountOptions) -> Result<Self, (D, MountError)> {
        let (io, mut mbuf) = match (buf_of(&mut dev, BLK_BYTES_MAX), buf_of(&mut dev, BSIZE)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err((dev, MountError::NoMemory)),
        };
        let blocks = dev.blocks();
        if blocks < 2 {
            return Err((dev, MountError::DeviceTooSmall(blocks)));
        }
        if let Err(e) = dev.read(&BlkReqs::one(1, 1), &mut mbuf) {
            return Err((dev, MountError::Io(e)));
        }
        let sb = SuperBlock::decode(&mbuf);
        let g = match check_superblock(&sb, blocks) {
            Ok(g) => g,
            Err(e) => return Err((dev, e)),
        };
        let read_only = dev.read_only();
        let mut fs = FileSystem {
            dev,
            g,
            read_only,
            cache: Cache::new(opts.cache_blocks.max(LOGBLOCKS + 16)),
            txn: Vec::new(),
            op: None,
            txn_ops: 0,
            io,
            mbuf,
            poisoned: false,
            commits: 0,
            replayed: 0,
            orphans: 0,
            balloc_hint: g.datastart,
            ialloc_hint: 1,
        };
        if let Err(e) = fs.recover() {
            return Err((fs.dev, e));
        }
        match fs.iread(ROOTINO) {
            Ok(d) if d.typ == T_DIR => {}
            Ok(_) | Err(FsError::Corrupt) => return Err((fs.dev, MountError::BadRoot)),
            Err(_) => return Err((fs.dev, MountError::Io(BlkError::Io))),
        }
        if !fs.read_only {
            if let Err(FsError::Io) = fs.free_orphans() {
                return Err((fs.dev, MountError::Io(BlkError::Io)));
            }
        }
        Ok(fs)
    }

    /// Replays the log if it holds a committed transaction, then clears it.
    fn recover(&mut self) -> Result<(), MountError> {
        let g = self.g;
        self.dev.read(&BlkReqs::one(g.logstart as u64, 1), &mut self.mbuf).map_err(MountError::Io)?;
        let lh = LogHeader::decode(&self.mbuf);
        if lh.n > g.logcap {
            return Err(MountError::BadLog("the header counts more blocks than the log holds"));
        }
        let n = lh.n as usize;
        let homes = &lh.block[..n];
        if homes.iter().any(|&b| b < g.inodestart || b >= g.size) {
            return Err(MountError::BadLog("the header names a block outside the inode, bitmap and data blocks"));
        }
        if n == 0 {
            return Ok(());
        }
        self.dev.read(&BlkReqs::one(g.logstart as u64 + 1, n as u32), &mut self.io).map_err(MountError::Io)?;
        if self.read_only {
            // Serve the recovered blocks from the cache; later copies of a block win.
            for (i, &b) in homes.iter().enumerate() {
                let slot = match self.cache.find(b) {
                    Some(s) => s,
                    None => self.cache.insert(b).ok_or(MountError::NoMemory)?,
                };
                if let Some(e) = self.cache.entry_mut(slot) {
                    e.data.copy_from_slice(&self.io[i * BSIZE..(i + 1) * BSIZE]);
                    e.pinned = true;
                }
            }
        } else {
            let mut reqs = BlkReqs::new();
            for (i, &b) in homes.iter().enumerate() {
                if homes[i + 1..].contains(&b) {
                    continue; // a later copy of the same block wins
                }
                push_coalesced(&mut reqs, b as u64, i);
            }
            self.dev.write(&reqs, &self.io).map_err(MountError::Io)?;
            self.dev.flush().map_err(MountError::Io)?;
            self.mbuf.fill(0);
            self.dev.write(&BlkReqs::one(g.logstart as u64, 1), &self.mbuf).map_err(MountError::Io)?;
            self.dev.flush().map_err(MountError::Io)?;
        }
        self.replayed = n as u32;
        Ok(())
    }

    /// Frees every allocated inode without links (after a crash inside a
    /// multi-transaction unlink). Inodes that turn out corrupt are left alone.
    fn free_orphans(&mut self) -> FsResult<()> {
        let g = self.g;
        let mut orphans = Vec::new();
        let nblk = (g.ninodes - 1) / IPB as u32 + 1;
        self.scan(g.inodestart, nblk, |bno, data| {
            for k in 0..IPB {
                let inum = (bno - g.inodestart) * IPB as u32 + k as u32;
                if inum == 0 || inum >= g.ninodes {
                    continue;
                }
                let d = DInode::decode(&data[k * DINODE_SIZE..(k + 1) * DINODE_SIZE]);
                if (T_DIR..=T_DEVICE).contains(&d.typ) && d.nlink == 0 {
                    orphans.push(inum);
                }
            }
        })?;
        for inum in orphans {
            match self.release(inum, u64::MAX) {
                Ok(()) => self.orphans += 1,
                Err(FsError::Io) => return Err(FsError::Io),
                Err(_) => {}
            }
        }
        self.sync()
    }

    /// The validated superblock.
    pub fn geometry(&self) -> Geometry {
        self.g
    }

    pub fn variant(&self) -> Variant {
        self.g.variant
    }

    pub fn device(&self) -> &D {
        &self.dev
    }

    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// The device back, without committing: operations since the last commit are lost
    /// as in a crash. [`unmount`](Self::unmount) commits first.
    pub fn into_device(self) -> D {
        self.dev
    }

    /// Syncs and hands the device back.
    pub fn unmount(mut self) -> (D, FsResult<()>) {
        let r = self.sync();
        (self.dev, r)
    }

    /// Blocks in the open (uncommitted) transaction.
    pub fn pending_blocks(&self) -> usize {
        self.txn.len()
    }

    /// Operations in the open transaction.
    pub fn pending_ops(&self) -> u32 {
        self.txn_ops
    }

    /// Orphaned inodes freed at mount.
    pub fn orphans_freed(&self) -> u32 {
        self.orphans
    }

    // ----- block layer ----------------------------------------------------------------

    /// The cache slot holding block `bno` (read on a miss). Only blocks after the
    /// superblock and inside the file system are read.
    pub(crate) fn bread(&mut self, bno: u32) -> FsResult<usize> {
        if bno < 2 || bno >= self.g.size {
            return Err(FsError::Corrupt);
        }
        if let Some(s) = self.cache.find(bno) {
            self.cache.touch(s);
            return Ok(s);
        }
        self.dev.read(&BlkReqs::one(bno as u64, 1), &mut self.mbuf).map_err(|_| FsError::Io)?;
        // Every entry held cannot happen: the cache is larger than the log.
        let slot = self.cache.insert(bno).ok_or(FsError::Io)?;
        self.cache.data_mut(slot).copy_from_slice(&self.mbuf[..BSIZE]);
        Ok(slot)
    }

    /// Makes block `bno` part of the current operation and returns its cache slot for the
    /// caller to change. `fresh`: the caller overwrites it whole (it is zeroed, not read).
    /// Only blocks from the inode blocks on are ever written; an operation adds at most
    /// `MAXOPBLOCKS` blocks to the transaction (more can only come from a damaged image,
    /// and fails the operation with `Corrupt`).
    pub(crate) fn modify(&mut self, bno: u32, fresh: bool) -> FsResult<usize> {
        if bno < self.g.inodestart || bno >= self.g.size {
            return Err(FsError::Corrupt);
        }
        let Some(op) = self.op.as_ref() else { return Err(FsError::Corrupt) };
        let already = op.undo.iter().any(|u| u.bno == bno);
        let (added, cached) = (op.added, self.cache.find(bno));
        let slot = match cached {
            Some(s) => {
                self.cache.touch(s);
                s
            }
            None if fresh => self.cache.insert(bno).ok_or(FsError::Io)?,
            None => self.bread(bno)?,
        };
        if !already {
            let was_in_txn = self.cache.entry(slot).map(|e| e.in_txn).unwrap_or(false);
            if !was_in_txn && (added >= MAXOPBLOCKS || self.txn.len() >= self.g.logcap as usize) {
                if cached.is_none() && fresh {
                    self.cache.remove(slot);
                }
                return Err(FsError::Corrupt);
            }
            let old = if cached.is_none() && fresh { None } else { Some(self.cache.data(slot).to_vec()) };
            if !was_in_txn {
                if let Some(e) = self.cache.entry_mut(slot) {
                    e.in_txn = true;
                }
                self.txn.push(bno);
            }
            if let Some(op) = self.op.as_mut() {
                op.undo.push(Undo { bno, old, was_in_txn });
                if !was_in_txn {
                    op.added += 1;
                }
            }
        }
        if fresh {
            self.cache.data_mut(slot).fill(0);
        }
        Ok(slot)
    }

    /// Log blocks among `blocks` (distinct) that are not in the transaction yet.
    pub(crate) fn cost(&self, blocks: &[u32]) -> usize {
        let mut n = 0;
        for (i, &b) in blocks.iter().enumerate() {
            if blocks[..i].contains(&b) {
                continue;
            }
            let in_txn = self.cache.find(b).and_then(|s| self.cache.entry(s)).map(|e| e.in_txn).unwrap_or(false);
            if !in_txn {
                n += 1;
            }
        }
        n
    }

    /// Whether the current operation can add `extra` more blocks to the transaction.
    pub(crate) fn fits(&self, extra: usize) -> bool {
        self.op.as_ref().map(|op| op.added + extra <= MAXOPBLOCKS).unwrap_or(false)
    }

    /// Calls `f` with each block of `[first, first + count)` as the file system sees it
    /// (the cache's copy if there is one, else the disk's), reading uncached blocks in
    /// calls of up to 64 blocks.
    pub(crate) fn scan(&mut self, first: u32, count: u32, mut f: impl FnMut(u32, &[u8])) -> FsResult<()> {
        let per = (BLK_BYTES_MAX / BSIZE) as u32;
        let end = first.saturating_add(count).min(self.g.size);
        let mut b = first.max(2);
        while b < end {
            let n = per.min(end - b);
            if (b..b + n).any(|x| self.cache.find(x).is_none()) {
                self.dev.read(&BlkReqs::one(b as u64, n), &mut self.io).map_err(|_| FsError::Io)?;
            }
            for i in 0..n {
                let x = b + i;
                match self.cache.find(x) {
                    Some(s) => f(x, self.cache.data(s)),
                    None => f(x, &self.io[i as usize * BSIZE..(i as usize + 1) * BSIZE]),
                }
            }
            b += n;
        }
        Ok(())
    }

    // ----- the log --------------------------------------------------------------------

    pub(crate) fn writable(&self) -> FsResult<()> {
        if self.read_only {
            Err(FsError::ReadOnly)
        } else if self.poisoned {
            Err(FsError::Io)
        } else {
            Ok(())
        }
    }

    /// Starts an operation: commits first if the log has no room for one more.
    pub(crate) fn begin_op(&mut self) -> FsResult<()> {
        self.writable()?;
        if self.txn.len() + MAXOPBLOCKS > self.g.logcap as usize {
            self.commit()?;
        }
        self.op = Some(Op { undo: Vec::new(), added: 0 });
        Ok(())
    }

    /// Ends an operation: its blocks stay in the open transaction, which commits now
    /// only if it has no room for another operation (group commit).
    pub(crate) fn end_op(&mut self) -> FsResult<()> {
        self.op = None;
        self.txn_ops += 1;
        if self.txn.len() + MAXOPBLOCKS > self.g.logcap as usize {
            self.commit()?;
        }
        Ok(())
    }

    /// Undoes everything the current operation changed.
    pub(crate) fn abort_op(&mut self) {
        self.rollback_to(0);
        self.op = None;
    }

    /// A point of the current operation to roll back to.
    pub(crate) fn savepoint(&self) -> usize {
        self.op.as_ref().map(|op| op.undo.len()).unwrap_or(0)
    }

    /// Undoes what the current operation changed since `savepoint`.
    pub(crate) fn rollback_to(&mut self, savepoint: usize) {
        let Some(op) = self.op.as_mut() else { return };
        let undo = op.undo.split_off(savepoint.min(op.undo.len()));
        for u in undo.into_iter().rev() {
            if !u.was_in_txn {
                if let Some(op) = self.op.as_mut() {
                    op.added -= 1;
                }
                self.txn.retain(|&b| b != u.bno);
            }
            let Some(slot) = self.cache.find(u.bno) else { continue };
            match u.old {
                Some(old) => {
                    if let Some(e) = self.cache.entry_mut(slot) {
                        e.data.copy_from_slice(&old);
                        if !u.was_in_txn {
                            e.in_txn = false;
                        }
                    }
                }
                None => self.cache.remove(slot),
            }
        }
    }

    /// Runs `f` as one operation: all of it joins the transaction, or (on an error)
    /// none of it.
    pub(crate) fn atomic<T>(&mut self, f: impl FnOnce(&mut Self) -> FsResult<T>) -> FsResult<T> {
        self.begin_op()?;
        match f(self) {
            Ok(v) => {
                self.end_op()?;
                Ok(v)
            }
            Err(e) => {
                self.abort_op();
                Err(e)
            }
        }
    }

    /// Commits the open transaction: the blocks (sorted) to the log in one request,
    /// flush, the header (the commit point), flush, the blocks to their homes in one call
    /// (contiguous homes coalesced), flush, the header cleared, flush. A device error
    /// poisons the file system: nothing more is written, and the next mount recovers.
    pub(crate) fn commit(&mut self) -> FsResult<()> {
        if self.txn.is_empty() {
            return Ok(());
        }
        if self.poisoned {
            return Err(FsError::Io);
        }
        let g = self.g;
        let mut blocks = self.txn.clone();
        blocks.sort_unstable();
        let n = blocks.len();
        if n > g.logcap as usize {
            self.poisoned = true;
            return Err(FsError::Io);
        }
        for (i, &b) in blocks.iter().enumerate() {
            let Some(slot) = self.cache.find(b) else {
                self.poisoned = true;
                return Err(FsError::Io);
            };
            self.io[i * BSIZE..(i + 1) * BSIZE].copy_from_slice(self.cache.data(slot));
        }
        let mut lh = LogHeader { n: n as u32, ..LogHeader::default() };
        lh.block[..n].copy_from_slice(&blocks);
        let hdr = n * BSIZE;
        self.io[hdr..hdr + BSIZE].fill(0);
        lh.encode(&mut self.io[hdr..hdr + BSIZE]);
        let mut header = BlkReqs::new();
        header.push(BlkReq { block: g.logstart as u64, offset: hdr as u32, count: 1 });
        let mut install = BlkReqs::new();
        for (i, &b) in blocks.iter().enumerate() {
            push_coalesced(&mut install, b as u64, i);
        }
        let r = (|| {
            self.dev.write(&BlkReqs::one(g.logstart as u64 + 1, n as u32), &self.io)?;
            self.dev.flush()?;
            self.dev.write(&header, &self.io)?;
            self.dev.flush()?;
            self.dev.write(&install, &self.io)?;
            self.dev.flush()?;
            self.io[hdr..hdr + BSIZE].fill(0);
            self.dev.write(&header, &self.io)?;
            self.dev.flush()
        })();
        if r.is_err() {
            self.poisoned = true;
            return Err(FsError::Io);
        }
        for &b in &blocks {
            if let Some(e) = self.cache.find(b).and_then(|s| self.cache.entry_mut(s)) {
                e.in_txn = false;
            }
        }
        self.txn.clear();
        self.txn_ops = 0;
        self.commits += 1;
        Ok(())
    }

    /// Commits the open transaction and flushes the device: every completed operation
    /// is durable.
    pub fn sync(&mut self) -> FsResult<()> {
        if self.read_only {
            return Ok(());
        }
        if self.poisoned {
            return Err(FsError::Io);
        }
        self.commit()?;
        self.dev.flush().map_err(|_| FsError::Io)
    }

    /// The periodic commit: commits the open transaction if it holds anything, and says
    /// whether it did. The embedding domain calls it on a timer; the period bounds how
    /// long a completed operation stays only in memory.
    pub fn tick(&mut self) -> FsResult<bool> {
        if self.txn.is_empty() || self.read_only {
            return Ok(false);
        }
        self.commit()?;
        Ok(true)
    }
}

/// Adds a one-block request for `block` at buffer slot `slot`, extending the last
/// request when both the blocks and the slots are contiguous.
pub(crate) fn push_coalesced(reqs: &mut BlkReqs, block: u64, slot: usize) -> bool {
    let off = (slot * BSIZE) as u32;
    let n = reqs.n as usize;
    if n > 0 {
        if let Some(last) = reqs.reqs.get_mut(n - 1) {
            if last.block + last.count as u64 == block && last.offset + last.count * BSIZE as u32 == off {
                last.count += 1;
                return true;
            }
        }
    }
    reqs.push(BlkReq { block, offset: off, count: 1 })
}
