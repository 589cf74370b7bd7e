//! The file system object: mount (superblock and log-header validation, recovery, orphan
//! cleanup), the block layer over the buffer cache, and the write-ahead log: group
//! commit, ordered file data, an appending log installed at checkpoints (see the crate
//! documentation for the protocol and why it is crash consistent).

use alloc::collections::BTreeSet;
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
    /// Log blocks in use at most (the header's largest `n`): `min(nlog - 1, LOGBLOCKS)`
    /// on a stock image (what xv6 recovers), `min(nlog - 1, LOG_MAX)` on the large one.
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
        logcap: (sb.nlog - 1).min(variant.max_log()),
        inodestart: sb.inodestart,
        bmapstart: sb.bmapstart,
        datastart: datastart as u32,
    })
}

/// Mount options.
#[derive(Clone, Copy, Debug)]
pub struct MountOptions {
    /// Buffer-cache capacity in blocks (at least the log's capacity plus
    /// `2 * ORDERED_OP + 16` are used: held blocks must always fit).
    pub cache_blocks: usize,
    /// Leave orphaned inodes (allocated, no links) allocated instead of freeing them: a
    /// remount while clients still hold unlinked files open (see `unlink_keep`).
    pub keep_orphans: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self { cache_blocks: 128, keep_orphans: false }
    }
}

/// File data blocks one operation may leave waiting to be written home (and may stage),
/// and the count at which `end_op` writes those in the cache: one I/O buffer (64 blocks).
pub(crate) const ORDERED_OP: usize = BLK_BYTES_MAX / BSIZE;

/// What the file system has done to the device since it was mounted (recovery not
/// included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsStats {
    /// Transactions committed (commit records written).
    pub commits: u64,
    /// Checkpoints: the log installed to its homes and cleared.
    pub checkpoints: u64,
    /// Blocks written to the log.
    pub log_blocks: u64,
    /// File data blocks written straight to their homes (ordered data).
    pub data_blocks: u64,
    /// Blocks installed from the log to their homes.
    pub installed_blocks: u64,
    /// Header writes: commit records and log clears.
    pub headers: u64,
    /// Device calls.
    pub write_calls: u64,
    pub flushes: u64,
}

/// Undo record of one block an operation touched: its bytes before (`None`: the block
/// was not cached and the operation overwrote it whole) and which of the transaction's
/// lists the operation added it to.
pub(crate) struct Undo {
    pub bno: u32,
    pub old: Option<Vec<u8>>,
    /// Added to the open transaction (the log) by this operation.
    pub joined_txn: bool,
    /// Added to the file data waiting to be written home by this operation.
    pub joined_ordered: bool,
    /// Staged whole (in the staging buffer, not in the cache) by this operation.
    pub staged: bool,
}

/// The operation in progress.
pub(crate) struct Op {
    pub undo: Vec<Undo>,
    /// Blocks this operation added to the transaction (at most `MAXOPBLOCKS`).
    pub added: usize,
    /// File data blocks it added to those waiting to be written home (at most `ORDERED_OP`).
    pub ordered: usize,
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
    /// Homes of the log's committed entries, in slot order (what the header on the device
    /// names); installed and cleared by a checkpoint.
    pub(crate) log: Vec<u32>,
    /// The same blocks as a set.
    pub(crate) log_homes: BTreeSet<u32>,
    /// File data blocks changed in the cache and not written home yet (`ordered` entries).
    pub(crate) ordered: Vec<u32>,
    /// Whole fresh data blocks the current operation wrote into the staging buffer
    /// (block `staged[k]` in slot `k`); `end_op` writes them home.
    pub(crate) staged: Vec<u32>,
    /// Blocks allocated in the open transaction that are free in every state a crash can
    /// recover and named by no log entry: their data may go home before the commit.
    pub(crate) fresh: BTreeSet<u32>,
    /// Blocks the open transaction freed that a recoverable state still uses.
    pub(crate) freed: BTreeSet<u32>,
    /// Blocks the last commit freed, while its record may not be durable yet (until the
    /// next flush).
    pub(crate) freed_prev: BTreeSet<u32>,
    /// Something was written since the last flush.
    pub(crate) unflushed: bool,
    /// 64 KiB for file data, log writes and installs.
    pub(crate) io: D::Buf,
    /// One block for cache misses and the log header.
    pub(crate) mbuf: D::Buf,
    /// 64 KiB staging buffer: whole fresh data blocks of the current operation.
    pub(crate) dbuf: D::Buf,
    /// A commit failed: nothing is written any more (see the crate docs).
    pub(crate) poisoned: bool,
    pub(crate) stats: FsStats,
    /// `stats.commits` at the last tick.
    pub(crate) ticked_at: u64,
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

    /// Validates the superblock and the log header, replays a committed log (on a
    /// read-only device: into pinned cache entries instead of the disk), checks the
    /// root, and frees orphaned inodes (allocated, no links: left by a crash inside a
    /// multi-transaction unlink, or by `unlink_keep`) unless `opts.keep_orphans`. On
    /// failure the device is handed back.
    pub fn mount_with(mut dev: D, opts: MountOptions) -> Result<Self, (D, MountError)> {
        let (io, mut mbuf, dbuf) = match (buf_of(&mut dev, BLK_BYTES_MAX), buf_of(&mut dev, BSIZE), buf_of(&mut dev, BLK_BYTES_MAX)) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
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
        // Held entries: the log and the open transaction together (at most `logcap`
        // blocks), the data waiting to go home (fewer than `2 * ORDERED_OP`), and room
        // for an operation's reads.
        let cache_blocks = opts.cache_blocks.max(g.logcap as usize + 2 * ORDERED_OP + 16);
        let mut fs = FileSystem {
            dev,
            g,
            read_only,
            cache: Cache::new(cache_blocks),
            txn: Vec::new(),
            op: None,
            txn_ops: 0,
            log: Vec::new(),
            log_homes: BTreeSet::new(),
            ordered: Vec::new(),
            staged: Vec::new(),
            fresh: BTreeSet::new(),
            freed: BTreeSet::new(),
            freed_prev: BTreeSet::new(),
            unflushed: false,
            io,
            mbuf,
            dbuf,
            poisoned: false,
            stats: FsStats::default(),
            ticked_at: 0,
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
        if !fs.read_only && !opts.keep_orphans {
            if let Err(FsError::Io) = fs.free_orphans() {
                return Err((fs.dev, MountError::Io(BlkError::Io)));
            }
        }
        Ok(fs)
    }

    /// Replays the log if it holds committed entries (in slot order, so a block logged
    /// twice gets its later copy), in reads of up to 64 blocks, then clears it.
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
        let per = BLK_BYTES_MAX / BSIZE;
        let mut first = 0;
        while first < n {
            let m = per.min(n - first);
            self.dev.read(&BlkReqs::one(g.logstart as u64 + 1 + first as u64, m as u32), &mut self.io).map_err(MountError::Io)?;
            if self.read_only {
                // Serve the recovered blocks from the cache; later copies of a block win.
                for i in 0..m {
                    let b = homes[first + i];
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
                for i in 0..m {
                    let b = homes[first + i];
                    if homes[first + i + 1..].contains(&b) {
                        continue; // a later copy of the same block wins
                    }
                    if !push_coalesced(&mut reqs, b as u64, i) {
                        self.dev.write(&reqs, &self.io).map_err(MountError::Io)?;
                        reqs = BlkReqs::new();
                        push_coalesced(&mut reqs, b as u64, i);
                    }
                }
                if reqs.n > 0 {
                    self.dev.write(&reqs, &self.io).map_err(MountError::Io)?;
                }
            }
            first += m;
        }
        if !self.read_only {
            self.dev.flush().map_err(MountError::Io)?;
            self.mbuf.fill(0);
            self.dev.write(&BlkReqs::one(g.logstart as u64, 1), &self.mbuf).map_err(MountError::Io)?;
            self.dev.flush().map_err(MountError::Io)?;
        }
        self.replayed = n as u32;
        Ok(())
    }

    /// Frees every allocated inode without links (after a crash inside a
    /// multi-transaction unlink, or files `unlink_keep` kept). Inodes that turn out
    /// corrupt are left alone.
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
            match self.free_inode(inum, u64::MAX) {
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

    /// Committed log entries not installed yet.
    pub fn log_entries(&self) -> usize {
        self.log.len()
    }

    /// Orphaned inodes freed at mount.
    pub fn orphans_freed(&self) -> u32 {
        self.orphans
    }

    /// What the file system has written since it was mounted.
    pub fn stats(&self) -> FsStats {
        self.stats
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
        // Every entry held cannot happen: the cache is larger than what can be held.
        let slot = self.cache.insert(bno).ok_or(FsError::Io)?;
        self.cache.data_mut(slot).copy_from_slice(&self.mbuf[..BSIZE]);
        Ok(slot)
    }

    /// Makes block `bno` part of the current operation, logged, and returns its cache
    /// slot for the caller to change. `fresh`: the caller overwrites it whole (it is
    /// zeroed, not read). Only blocks from the inode blocks on are ever written; an
    /// operation adds at most `MAXOPBLOCKS` blocks to the transaction (more can only come
    /// from a damaged image, and fails the operation with `Corrupt`).
    pub(crate) fn modify(&mut self, bno: u32, fresh: bool) -> FsResult<usize> {
        self.join(bno, fresh, false)
    }

    /// Whether file data block `bno` goes home directly before the commit instead of
    /// through the log: it was allocated from a clean block in the open transaction
    /// (see `fresh`) and is not in the log already.
    pub(crate) fn ordered_ok(&self, bno: u32) -> bool {
        self.fresh.contains(&bno) && !self.cache.find(bno).and_then(|s| self.cache.entry(s)).is_some_and(|e| e.in_txn)
    }

    /// [`modify`](Self::modify) for a file data block: ordered (written home before the
    /// commit record, not logged) if [`ordered_ok`](Self::ordered_ok), else logged. An
    /// operation leaves at most `ORDERED_OP` data blocks waiting.
    pub(crate) fn modify_data(&mut self, bno: u32, whole: bool) -> FsResult<usize> {
        let ordered = self.ordered_ok(bno);
        self.join(bno, whole, ordered)
    }

    fn join(&mut self, bno: u32, whole: bool, ordered: bool) -> FsResult<usize> {
        if bno < self.g.inodestart || bno >= self.g.size {
            return Err(FsError::Corrupt);
        }
        let Some(op) = self.op.as_ref() else { return Err(FsError::Corrupt) };
        let idx = op.undo.iter().position(|u| u.bno == bno);
        let (added, nord) = (op.added, op.ordered);
        let cached = self.cache.find(bno);
        let slot = match cached {
            Some(s) => {
                self.cache.touch(s);
                s
            }
            None if whole => self.cache.insert(bno).ok_or(FsError::Io)?,
            None => self.bread(bno)?,
        };
        let (in_txn, is_ordered) = self.cache.entry(slot).map(|e| (e.in_txn, e.ordered)).unwrap_or((false, false));
        let joins = if ordered { !is_ordered } else { !in_txn };
        let full = if ordered {
            nord >= ORDERED_OP
        } else {
            added >= MAXOPBLOCKS || self.log.len() + self.txn.len() >= self.g.logcap as usize
        };
        if joins && full {
            if idx.is_none() && cached.is_none() && whole {
                self.cache.remove(slot);
            }
            return Err(FsError::Corrupt);
        }
        let idx = match idx {
            Some(i) => i,
            None => {
                let old = if cached.is_none() && whole { None } else { Some(self.cache.data(slot).to_vec()) };
                let Some(op) = self.op.as_mut() else { return Err(FsError::Corrupt) };
                op.undo.push(Undo { bno, old, joined_txn: false, joined_ordered: false, staged: false });
                op.undo.len() - 1
            }
        };
        if joins {
            if let Some(e) = self.cache.entry_mut(slot) {
                if ordered {
                    e.ordered = true;
                } else {
                    e.in_txn = true;
                }
            }
            if ordered {
                self.ordered.push(bno);
            } else {
                self.txn.push(bno);
            }
            if let Some(op) = self.op.as_mut() {
                if let Some(u) = op.undo.get_mut(idx) {
                    if ordered {
                        u.joined_ordered = true;
                    } else {
                        u.joined_txn = true;
                    }
                }
                if ordered {
                    op.ordered += 1;
                } else {
                    op.added += 1;
                }
            }
        }
        if whole {
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

    /// Whether a whole write of file data block `bno` may be staged: its data may go home
    /// directly and the cache does not hold a changed copy of it.
    pub(crate) fn stageable(&self, bno: u32) -> bool {
        self.ordered_ok(bno) && !self.cache.find(bno).and_then(|s| self.cache.entry(s)).is_some_and(|e| e.ordered || e.in_txn || e.in_log || e.pinned)
    }

    /// Reserves a slot of the staging buffer for a whole write of file data block `bno`
    /// (which must be [`stageable`](Self::stageable)) and returns it; a clean cached copy
    /// is dropped. `end_op` writes the staged blocks home; undoing the operation drops
    /// them.
    pub(crate) fn stage(&mut self, bno: u32) -> FsResult<usize> {
        if bno < self.g.datastart || bno >= self.g.size {
            return Err(FsError::Corrupt);
        }
        let Some(op) = self.op.as_mut() else { return Err(FsError::Corrupt) };
        if op.ordered >= ORDERED_OP || self.staged.len() >= ORDERED_OP {
            return Err(FsError::Corrupt);
        }
        op.ordered += 1;
        op.undo.push(Undo { bno, old: None, joined_txn: false, joined_ordered: false, staged: true });
        if let Some(slot) = self.cache.find(bno) {
            self.cache.remove(slot);
        }
        self.staged.push(bno);
        Ok(self.staged.len() - 1)
    }

    /// Whether the current operation can leave one more data block waiting to go home.
    pub(crate) fn fits_ordered(&self) -> bool {
        self.op.as_ref().map(|op| op.ordered < ORDERED_OP).unwrap_or(false)
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

    /// A device error poisoned the file system (see the crate docs): it writes nothing
    /// more until it is mounted again.
    pub fn poisoned(&self) -> bool {
        self.poisoned
    }

    pub(crate) fn writable(&self) -> FsResult<()> {
        if self.read_only {
            Err(FsError::ReadOnly)
        } else if self.poisoned {
            Err(FsError::Io)
        } else {
            Ok(())
        }
    }

    /// Commits, and installs the log, as needed for the log to take one more operation.
    fn make_room(&mut self) -> FsResult<()> {
        let cap = self.g.logcap as usize;
        if self.log.len() + self.txn.len() + MAXOPBLOCKS > cap {
            self.commit()?;
            if self.log.len() + MAXOPBLOCKS > cap {
                self.checkpoint()?;
            }
        }
        Ok(())
    }

    /// Starts an operation: commits and installs first if the log has no room for one
    /// more.
    pub(crate) fn begin_op(&mut self) -> FsResult<()> {
        self.writable()?;
        self.make_room()?;
        self.op = Some(Op { undo: Vec::new(), added: 0, ordered: 0 });
        Ok(())
    }

    /// Ends an operation: its blocks stay in the open transaction (group commit). Data
    /// waiting to go home is written once there is an I/O buffer's worth of it; the
    /// transaction commits now only if the log has no room for another operation.
    pub(crate) fn end_op(&mut self) -> FsResult<()> {
        self.op = None;
        self.txn_ops += 1;
        if !self.staged.is_empty() {
            let r = self.write_staged();
            self.check(r)?;
        }
        if self.ordered.len() >= ORDERED_OP {
            let r = self.write_ordered();
            self.check(r)?;
        }
        self.make_room()
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
            if u.staged {
                if let Some(op) = self.op.as_mut() {
                    op.ordered -= 1;
                }
                if let Some(k) = self.staged.iter().rposition(|&b| b == u.bno) {
                    self.staged.remove(k);
                }
                continue;
            }
            if let Some(op) = self.op.as_mut() {
                if u.joined_txn {
                    op.added -= 1;
                }
                if u.joined_ordered {
                    op.ordered -= 1;
                }
            }
            if u.joined_txn {
                self.txn.retain(|&b| b != u.bno);
            }
            if u.joined_ordered {
                self.ordered.retain(|&b| b != u.bno);
            }
            let Some(slot) = self.cache.find(u.bno) else { continue };
            match u.old {
                Some(old) => {
                    if let Some(e) = self.cache.entry_mut(slot) {
                        e.data.copy_from_slice(&old);
                        if u.joined_txn {
                            e.in_txn = false;
                        }
                        if u.joined_ordered {
                            e.ordered = false;
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

    /// A device error in the log machinery poisons the file system.
    fn check(&mut self, r: Result<(), BlkError>) -> FsResult<()> {
        if r.is_err() {
            self.poisoned = true;
            return Err(FsError::Io);
        }
        Ok(())
    }

    /// Writes `items` — (destination block, cache block whose bytes go there) — sorted by
    /// destination, through the I/O buffer: up to 64 blocks per call, contiguous
    /// destinations in one request, up to 32 requests.
    fn write_blocks(&mut self, items: &mut [(u64, u32)]) -> Result<(), BlkError> {
        items.sort_unstable_by_key(|&(dst, _)| dst);
        let per = BLK_BYTES_MAX / BSIZE;
        let mut reqs = BlkReqs::new();
        let mut used = 0;
        for &(dst, src) in items.iter() {
            let slot = self.cache.find(src).ok_or(BlkError::Device)?;
            if used == per {
                self.dev_write(&reqs)?;
                reqs = BlkReqs::new();
                used = 0;
            }
            self.io[used * BSIZE..(used + 1) * BSIZE].copy_from_slice(self.cache.data(slot));
            if !push_coalesced(&mut reqs, dst, used) {
                // 32 requests: write them and start again at the buffer's beginning.
                self.dev_write(&reqs)?;
                reqs = BlkReqs::new();
                self.io.copy_within(used * BSIZE..(used + 1) * BSIZE, 0);
                used = 0;
                push_coalesced(&mut reqs, dst, used);
            }
            used += 1;
        }
        if used > 0 {
            self.dev_write(&reqs)?;
        }
        Ok(())
    }

    fn dev_write(&mut self, reqs: &BlkReqs) -> Result<(), BlkError> {
        self.dev_write_from(reqs, false)
    }

    /// A write call from the I/O buffer, or from the staging buffer.
    fn dev_write_from(&mut self, reqs: &BlkReqs, staging: bool) -> Result<(), BlkError> {
        self.stats.write_calls += 1;
        self.unflushed = true;
        self.dev.write(reqs, if staging { &self.dbuf } else { &self.io })
    }

    /// Flushes if anything was written since the last flush. Afterwards every commit
    /// record written is durable, so the blocks the last commit freed may be reused.
    fn flush(&mut self) -> Result<(), BlkError> {
        if self.unflushed {
            self.stats.flushes += 1;
            self.dev.flush()?;
            self.unflushed = false;
        }
        self.freed_prev.clear();
        Ok(())
    }

    /// Writes the log header naming `self.log` (from the one-block buffer).
    fn write_header(&mut self) -> Result<(), BlkError> {
        self.mbuf.fill(0);
        put_u32(&mut self.mbuf, 0, self.log.len() as u32);
        for (i, &b) in self.log.iter().enumerate() {
            put_u32(&mut self.mbuf, 4 + 4 * i, b);
        }
        self.stats.headers += 1;
        self.stats.write_calls += 1;
        self.unflushed = true;
        self.dev.write(&BlkReqs::one(self.g.logstart as u64, 1), &self.mbuf)
    }

    /// Writes the staged blocks home from the staging buffer (no flush: the next
    /// commit's flush orders them before its record).
    fn write_staged(&mut self) -> Result<(), BlkError> {
        let staged = core::mem::take(&mut self.staged);
        let mut reqs = BlkReqs::new();
        for (k, &b) in staged.iter().enumerate() {
            if !push_coalesced(&mut reqs, b as u64, k) {
                self.dev_write_from(&reqs, true)?;
                reqs = BlkReqs::new();
                push_coalesced(&mut reqs, b as u64, k);
            }
        }
        if reqs.n > 0 {
            self.dev_write_from(&reqs, true)?;
        }
        self.stats.data_blocks += staged.len() as u64;
        Ok(())
    }

    /// Writes the data blocks waiting to go home (no flush: the next commit's flush
    /// orders them before its record).
    fn write_ordered(&mut self) -> Result<(), BlkError> {
        let mut items = Vec::with_capacity(self.ordered.len());
        for b in core::mem::take(&mut self.ordered) {
            if let Some(e) = self.cache.find(b).and_then(|s| self.cache.entry_mut(s)) {
                // A data block that joined the log meanwhile goes home from there.
                if e.ordered && !e.in_txn {
                    items.push((b as u64, b));
                }
                e.ordered = false;
            }
        }
        self.stats.data_blocks += items.len() as u64;
        self.write_blocks(&mut items)
    }

    /// Commits the open transaction: the waiting file data to its homes and the
    /// transaction's blocks (sorted) to the log after its committed entries, in calls of
    /// up to 64 blocks; a flush; then the header naming every entry (the commit record).
    /// The record is not flushed here: the next flush (the next commit's, a checkpoint's,
    /// `sync`'s or `tick`'s) makes it durable, and nothing written before that flush
    /// depends on it (see the crate docs). A device error poisons the file system:
    /// nothing more is written, and the next mount recovers.
    pub fn commit(&mut self) -> FsResult<()> {
        if self.txn.is_empty() && self.ordered.is_empty() {
            return Ok(());
        }
        if self.poisoned || self.read_only {
            return Err(FsError::Io);
        }
        let r = self.commit_inner();
        self.check(r)
    }

    fn commit_inner(&mut self) -> Result<(), BlkError> {
        let g = self.g;
        if self.txn.is_empty() {
            // Only data (cannot happen: allocating it changed the bitmap).
            return self.write_ordered();
        }
        let mut blocks = self.txn.clone();
        blocks.sort_unstable();
        let base = self.log.len();
        if base + blocks.len() > g.logcap as usize {
            return Err(BlkError::Device);
        }
        let mut items = Vec::with_capacity(self.ordered.len() + blocks.len());
        for b in core::mem::take(&mut self.ordered) {
            if let Some(e) = self.cache.find(b).and_then(|s| self.cache.entry_mut(s)) {
                if e.ordered && !e.in_txn {
                    items.push((b as u64, b));
                }
                e.ordered = false;
            }
        }
        self.stats.data_blocks += items.len() as u64;
        for (i, &b) in blocks.iter().enumerate() {
            items.push((g.logstart as u64 + 1 + (base + i) as u64, b));
        }
        self.stats.log_blocks += blocks.len() as u64;
        self.write_blocks(&mut items)?;
        self.flush()?;
        self.log.extend_from_slice(&blocks);
        self.write_header()?;
        for &b in &blocks {
            if let Some(e) = self.cache.find(b).and_then(|s| self.cache.entry_mut(s)) {
                e.in_txn = false;
                e.in_log = true;
            }
            self.log_homes.insert(b);
        }
        self.txn.clear();
        self.txn_ops = 0;
        self.stats.commits += 1;
        self.fresh.clear();
        self.freed_prev = core::mem::take(&mut self.freed);
        Ok(())
    }

    /// Installs the log: commits the open transaction, then flush (every record
    /// durable), the logged blocks to their homes (each once, its latest copy, from the
    /// cache), flush, the header cleared, flush.
    pub(crate) fn checkpoint(&mut self) -> FsResult<()> {
        self.commit()?;
        if self.log.is_empty() {
            return Ok(());
        }
        if self.poisoned {
            return Err(FsError::Io);
        }
        let r = (|| {
            self.flush()?;
            let mut items: Vec<(u64, u32)> = self.log_homes.iter().map(|&b| (b as u64, b)).collect();
            self.stats.installed_blocks += items.len() as u64;
            self.write_blocks(&mut items)?;
            self.flush()?;
            self.log.clear();
            self.write_header()?;
            self.flush()
        })();
        self.check(r)?;
        for b in core::mem::take(&mut self.log_homes) {
            if let Some(e) = self.cache.find(b).and_then(|s| self.cache.entry_mut(s)) {
                e.in_log = false;
            }
        }
        self.stats.checkpoints += 1;
        Ok(())
    }

    /// Commits the open transaction, installs the log and flushes the device: every
    /// completed operation is durable and at home, and the log is clear.
    pub fn sync(&mut self) -> FsResult<()> {
        if self.read_only {
            return Ok(());
        }
        if self.poisoned {
            return Err(FsError::Io);
        }
        self.checkpoint()?;
        let r = self.flush();
        self.check(r)
    }

    /// The periodic commit, for the embedding domain's timer: commits the open
    /// transaction if it holds anything (and says whether it did), flushes so that every
    /// commit record written is durable, and when nothing was committed since the
    /// previous tick installs the log. The period bounds how long a completed operation
    /// stays only in memory, or not durable.
    pub fn tick(&mut self) -> FsResult<bool> {
        if self.read_only {
            return Ok(false);
        }
        if self.poisoned {
            return if self.txn.is_empty() { Ok(false) } else { Err(FsError::Io) };
        }
        let committed = !self.txn.is_empty();
        if committed || !self.ordered.is_empty() {
            self.commit()?;
        }
        let idle = self.stats.commits == self.ticked_at;
        self.ticked_at = self.stats.commits;
        if idle && !self.log.is_empty() {
            self.checkpoint()?;
        } else if self.unflushed {
            let r = self.flush();
            self.check(r)?;
        }
        Ok(committed)
    }
}

/// Adds a one-block request for `block` at buffer slot `slot`, extending the last
/// request when both the blocks and the slots are contiguous. False if that takes a new
/// request and there are 32 already.
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
