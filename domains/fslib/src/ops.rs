//! The operations, one method per `Fs` method (paths as byte strings, data in the
//! caller's slices).

use alloc::vec::Vec;

use frond_interface::fs::{DirChunk, DirEntry, FileType, FsError, FsInfo, FsResult, Stat, DIR_CHUNK, IO_MAX, NAME_MAX};

use crate::dev::{BlkReq, BlkReqs, BlockDev, BLK_BYTES_MAX, BLK_REQS_MAX};
use crate::dir::is_dot;
use crate::fs::FileSystem;
use crate::inode::Src;
use crate::layout::*;

fn kind_of(typ: u16) -> FsResult<FileType> {
    match typ {
        T_DIR => Ok(FileType::Dir),
        T_FILE => Ok(FileType::File),
        T_DEVICE => Ok(FileType::Device),
        _ => Err(FsError::Corrupt),
    }
}

fn typ_of(kind: FileType) -> u16 {
    match kind {
        FileType::Dir => T_DIR,
        FileType::File => T_FILE,
        FileType::Device => T_DEVICE,
    }
}

fn stat_of(inum: u32, d: &DInode) -> FsResult<Stat> {
    Ok(Stat { inum, kind: kind_of(d.typ)?, nlink: d.nlink, size: d.size as u64, major: d.major, minor: d.minor })
}

impl<D: BlockDev> FileSystem<D> {
    /// The file system as a whole (`df`): free blocks and inodes are counted from the
    /// bitmap and the inode blocks as the file system sees them (open transaction included).
    pub fn info(&mut self) -> FsResult<FsInfo> {
        let g = self.g;
        let mut free_blocks = 0u32;
        self.scan(g.bmapstart, g.datastart - g.bmapstart, |bno, data| {
            let base = (bno - g.bmapstart) as u64 * BPB as u64;
            for (i, &byte) in data.iter().enumerate() {
                if byte == 0xff {
                    continue;
                }
                for bit in 0..8 {
                    let b = base + (i * 8 + bit) as u64;
                    if b >= g.datastart as u64 && b < g.size as u64 && byte & (1 << bit) == 0 {
                        free_blocks += 1;
                    }
                }
            }
        })?;
        let mut free_inodes = 0u32;
        self.scan(g.inodestart, (g.ninodes - 1) / IPB as u32 + 1, |bno, data| {
            for k in 0..IPB {
                let inum = (bno - g.inodestart) * IPB as u32 + k as u32;
                let off = k * DINODE_SIZE;
                if inum != 0 && inum < g.ninodes && data[off] == 0 && data[off + 1] == 0 {
                    free_inodes += 1;
                }
            }
        })?;
        Ok(FsInfo {
            large: g.variant == Variant::Large,
            block_size: BSIZE as u32,
            size: g.size,
            data_blocks: g.size - g.datastart,
            free_blocks,
            inodes: g.ninodes,
            free_inodes,
            log_blocks: g.logcap,
            max_file: g.max_file_bytes(),
            commits: self.stats.commits,
            replayed: self.replayed,
        })
    }

    /// Resolves `path` (relative paths from directory `cwd`).
    pub fn lookup(&mut self, cwd: u32, path: &[u8]) -> FsResult<Stat> {
        let inum = self.namei(cwd, path)?;
        let d = self.iget(inum, Src::Entry)?;
        stat_of(inum, &d)
    }

    /// An inode by number; an orphan (see [`unlink_keep`](Self::unlink_keep)) too.
    pub fn stat(&mut self, inum: u32) -> FsResult<Stat> {
        let d = self.iget(inum, Src::Held)?;
        stat_of(inum, &d)
    }

    /// Creates `path` of `kind` (xv6's `create`): an existing file or device of the same
    /// kind is returned unless `excl`; an existing directory, or anything else, is `Exists`.
    /// A directory gets `.` and `..`, and its parent one more link.
    pub fn create(&mut self, cwd: u32, path: &[u8], kind: FileType, major: u16, minor: u16, excl: bool) -> FsResult<Stat> {
        let (dp, name) = self.nameiparent(cwd, path)?;
        let name = name.ok_or(FsError::Exists)?;
        let dd = self.iget(dp, Src::Entry)?;
        if let Some((inum, _)) = self.dirlookup(dp, &dd, name)? {
            let d = self.iget(inum, Src::Entry)?;
            if !excl && kind != FileType::Dir && d.typ == typ_of(kind) {
                return stat_of(inum, &d);
            }
            return Err(FsError::Exists);
        }
        self.writable()?;
        let (major, minor) = if kind == FileType::Device { (major, minor) } else { (0, 0) };
        self.atomic(|fs| {
            let typ = typ_of(kind);
            let inum = fs.ialloc(typ)?;
            let d = DInode { typ, major, minor, nlink: 1, ..DInode::default() };
            fs.iwrite(inum, &d)?;
            if kind == FileType::Dir {
                fs.dirlink(inum, b".", inum)?;
                fs.dirlink(inum, b"..", dp)?;
                let mut p = fs.iread(dp)?;
                p.nlink = p.nlink.checked_add(1).ok_or(FsError::Invalid)?;
                fs.iwrite(dp, &p)?;
            }
            fs.dirlink(dp, name, inum)?;
            let d = fs.iread(inum)?;
            stat_of(inum, &d)
        })
    }

    /// Reads from `off` into `dst`; returns the bytes read (0 at or past the end). Blocks
    /// in the cache are copied from it; the others are read (and, for a read of at most
    /// 16 KiB, kept in the cache) in runs — contiguous blocks in
    /// one request, up to 32 requests and 64 blocks per device call — into the file
    /// system's I/O buffer and copied from there. Holes read as zeros. Like every
    /// operation by inode number on a file, it works on an orphan.
    pub fn read(&mut self, inum: u32, off: u64, dst: &mut [u8]) -> FsResult<u32> {
        const CACHED_READ_MAX: u64 = 16 * BSIZE as u64;
        let d = self.iget(inum, Src::Held)?;
        if d.typ == T_DEVICE {
            return Err(FsError::Invalid);
        }
        let size = d.size as u64;
        if off >= size {
            return Ok(0);
        }
        let n = (dst.len() as u64).min(size - off).min(u32::MAX as u64);
        let end = off + n;
        let bs = BSIZE as u64;
        let slots = BLK_BYTES_MAX / BSIZE;
        let mut pos = off;
        // (offset in the I/O buffer, offset in dst, length)
        let mut copies: Vec<(usize, usize, usize)> = Vec::new();
        while pos < end {
            let mut reqs = BlkReqs::new();
            let mut used = 0;
            copies.clear();
            while pos < end {
                let (fbn, boff) = (pos / bs, (pos % bs) as usize);
                let len = (bs - boff as u64).min(end - pos) as usize;
                let at = (pos - off) as usize;
                let a = self.bmap(&d, fbn)?;
                if a == 0 {
                    dst[at..at + len].fill(0);
                } else if let Some(s) = self.cache.find(a) {
                    dst[at..at + len].copy_from_slice(&self.cache.data(s)[boff..boff + len]);
                } else {
                    if used == slots {
                        break;
                    }
                    let last = reqs.as_slice().last().copied();
                    let joined = match last {
                        Some(r) => r.block + r.count as u64 == a as u64 && r.offset as usize + r.count as usize * BSIZE == used * BSIZE,
                        None => false,
                    };
                    if joined {
                        if let Some(r) = reqs.reqs.get_mut(reqs.n as usize - 1) {
                            r.count += 1;
                        }
                    } else if reqs.as_slice().len() == BLK_REQS_MAX {
                        break;
                    } else {
                        reqs.push(BlkReq { block: a as u64, offset: (used * BSIZE) as u32, count: 1 });
                    }
                    copies.push((used * BSIZE + boff, at, len));
                    used += 1;
                }
                pos += len as u64;
            }
            if used > 0 {
                self.dev.read(&reqs, &mut self.io).map_err(|_| FsError::Io)?;
                for &(src, at, len) in &copies {
                    dst[at..at + len].copy_from_slice(&self.io[src..src + len]);
                }
                // Small reads keep what they read (a program reading a file in small
                // steps, or again, hits the cache); large sequential reads do not, so
                // they do not push the metadata out.
                if n <= CACHED_READ_MAX {
                    for r in reqs.as_slice() {
                        for k in 0..r.count as usize {
                            let (b, at) = (r.block as u32 + k as u32, r.offset as usize + k * BSIZE);
                            if self.cache.find(b).is_none() {
                                if let Some(slot) = self.cache.insert(b) {
                                    self.cache.data_mut(slot).copy_from_slice(&self.io[at..at + BSIZE]);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(n as u32)
    }

    /// `Fs::pread`: [`read`](Self::read) into `dst[..n]`, `n` the least of `len`,
    /// `dst.len()` and `IO_MAX`.
    pub fn pread(&mut self, inum: u32, off: u64, dst: &mut [u8], len: u32) -> FsResult<u32> {
        let n = (len as usize).min(dst.len()).min(IO_MAX);
        self.read(inum, off, &mut dst[..n])
    }

    /// Writes `src` at `off`, growing the file (a gap past the end is filled with
    /// zeros); returns the bytes written. The write is split into operations that each
    /// add at most `MAXOPBLOCKS` blocks to the log (counting the inode, the bitmap and the
    /// indirect blocks it changes); each is atomic, so a crash leaves a prefix written.
    /// An error after some progress returns the bytes written so far.
    pub fn write(&mut self, inum: u32, off: u64, src: &[u8]) -> FsResult<u32> {
        self.writable()?;
        let d = self.iget(inum, Src::Held)?;
        match d.typ {
            T_DIR => return Err(FsError::IsDir),
            T_DEVICE => return Err(FsError::Invalid),
            _ => {}
        }
        let len = u32::try_from(src.len()).map_err(|_| FsError::Invalid)? as u64;
        let end = off.checked_add(len).ok_or(FsError::TooBig)?;
        if end > self.g.max_file_bytes() {
            return Err(FsError::TooBig);
        }
        if len == 0 {
            return Ok(0);
        }
        let start = off.min(d.size as u64);
        let done = self.fill(inum, start, off, src)?;
        Ok(done as u32)
    }

    /// Writes zeros over `[start, off)` and `src` at `off` (the file's size must be at
    /// least `start`), a transaction at a time; returns the bytes of `src` written.
    fn fill(&mut self, inum: u32, start: u64, off: u64, src: &[u8]) -> FsResult<u64> {
        let bs = BSIZE as u64;
        let end = off + src.len() as u64;
        // Check the blocks the write passes through first, so that a damaged file is
        // refused before anything changes.
        let d = self.iread(inum)?;
        let mapped_end = end.min(d.size as u64).div_ceil(bs);
        for fbn in start / bs..mapped_end {
            self.bmap(&d, fbn)?;
        }
        let mut pos = start;
        while pos < end {
            let r = self.atomic(|fs| {
                let mut d = fs.iread(inum)?;
                let mut p = pos;
                let mut stopped = None;
                while p < end {
                    let fbn = p / bs;
                    if p > pos {
                        let (c, ordered) = fs.write_cost(inum, &d, fbn)?;
                        if !fs.fits(c) || (ordered && !fs.fits_ordered()) {
                            break;
                        }
                    }
                    // One block; on an error after progress, keep the blocks before it.
                    let (sp, saved) = (fs.savepoint(), d);
                    match fs.fill_block(&mut d, p, off, end, src) {
                        Ok(n) => p += n as u64,
                        Err(e) if p > pos => {
                            fs.rollback_to(sp);
                            d = saved;
                            stopped = Some(e);
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                    if p > d.size as u64 {
                        d.size = p as u32;
                    }
                }
                fs.iwrite(inum, &d)?;
                Ok((p, stopped))
            });
            match r {
                Ok((p, None)) => pos = p,
                Ok((p, Some(e))) => return if p > off { Ok(p - off) } else { Err(e) },
                Err(_) if pos > off => return Ok(pos - off),
                Err(e) => return Err(e),
            }
        }
        Ok(end - off)
    }

    /// Writes the part of `[p, end)` inside p's block: zeros before `off`, `src` from it.
    /// Returns the bytes written.
    fn fill_block(&mut self, d: &mut DInode, p: u64, off: u64, end: u64, src: &[u8]) -> FsResult<usize> {
        let bs = BSIZE as u64;
        let (a, new) = self.bmap_alloc(d, p / bs, true)?;
        let boff = (p % bs) as usize;
        let n = (bs - boff as u64).min(end - p) as usize;
        let whole = boff == 0 && n == BSIZE;
        let dst = if whole && self.stageable(a) {
            let k = self.stage(a)?;
            self.dbuf.get_mut(k * BSIZE..(k + 1) * BSIZE).ok_or(FsError::Corrupt)?
        } else {
            // A block allocated just now is zeroed, never read.
            let slot = self.modify_data(a, whole || new)?;
            self.cache.data_mut(slot).get_mut(boff..boff + n).ok_or(FsError::Corrupt)?
        };
        if p >= off {
            let s = (p - off) as usize;
            dst.copy_from_slice(&src[s..s + n]);
        } else {
            // Zeros up to `off`, then the start of `src`.
            let z = n.min((off - p) as usize);
            dst[..z].fill(0);
            dst[z..].copy_from_slice(&src[..n - z]);
        }
        Ok(n)
    }

    /// Sets a file's size: shrinking frees the blocks past it (a transaction at a time,
    /// from the end); growing writes zeros.
    pub fn truncate(&mut self, inum: u32, size: u64) -> FsResult<()> {
        self.writable()?;
        let d = self.iget(inum, Src::Held)?;
        match d.typ {
            T_DIR => return Err(FsError::IsDir),
            T_DEVICE => return Err(FsError::Invalid),
            _ => {}
        }
        if size > self.g.max_file_bytes() {
            return Err(FsError::TooBig);
        }
        let cur = d.size as u64;
        if size > cur {
            self.fill(inum, cur, size, &[])?;
            return Ok(());
        }
        if size == cur {
            return Ok(());
        }
        self.check_all_blocks(&d)?;
        let keep = size.div_ceil(BSIZE as u64);
        let mut cursor = u64::MAX;
        loop {
            let done = self.atomic(|fs| {
                let mut d = fs.iread(inum)?;
                let done = fs.free_tail_step(inum, &mut d, keep, &mut cursor)?;
                if done {
                    d.size = d.size.min(size as u32);
                }
                fs.iwrite(inum, &d)?;
                Ok(done)
            })?;
            if done {
                return Ok(());
            }
        }
    }

    /// Entries of directory `inum` from entry index `from` (free entries skipped).
    pub fn readdir(&mut self, inum: u32, from: u32) -> FsResult<DirChunk> {
        let d = self.iget(inum, Src::Api)?;
        if d.typ != T_DIR {
            return Err(FsError::NotDir);
        }
        let mut chunk = DirChunk { n: 0, entries: [DirEntry::default(); DIR_CHUNK], next: None };
        let total = d.size as u64 / DIRENT_SIZE as u64;
        let per = (BSIZE / DIRENT_SIZE) as u64;
        let mut idx = from as u64;
        let mut n = 0;
        while idx < total && n < DIR_CHUNK {
            let a = self.bmap(&d, idx / per)?;
            if a == 0 {
                idx = (idx / per + 1) * per;
                continue;
            }
            let slot = self.bread(a)?;
            let k = (idx % per) as usize * DIRENT_SIZE;
            let raw = self.cache.data(slot).get(k..k + DIRENT_SIZE).ok_or(FsError::Corrupt)?;
            let de = Dirent::decode(raw);
            idx += 1;
            if de.inum == 0 {
                continue;
            }
            if de.inum as u32 >= self.g.ninodes {
                return Err(FsError::Corrupt);
            }
            let name = de.name();
            let mut e = DirEntry { inum: de.inum as u32, name_len: name.len() as u8, name: [0; NAME_MAX] };
            e.name[..name.len()].copy_from_slice(name);
            chunk.entries[n] = e;
            n += 1;
        }
        chunk.n = n as u32;
        chunk.next = if idx < total { Some(idx.min(u32::MAX as u64) as u32) } else { None };
        Ok(chunk)
    }

    /// A new name `new` for the file at `old` (not a directory).
    pub fn link(&mut self, cwd: u32, old: &[u8], new: &[u8]) -> FsResult<()> {
        let inum = self.namei(cwd, old)?;
        let d = self.iget(inum, Src::Entry)?;
        if d.typ == T_DIR {
            return Err(FsError::NotPermitted);
        }
        let (dp, name) = self.nameiparent(cwd, new)?;
        let name = name.ok_or(FsError::Exists)?;
        if is_dot(name) {
            return Err(FsError::NotPermitted);
        }
        self.writable()?;
        self.atomic(|fs| {
            let mut d = fs.iread(inum)?;
            d.nlink = d.nlink.checked_add(1).ok_or(FsError::Invalid)?;
            fs.iwrite(inum, &d)?;
            fs.dirlink(dp, name, inum)
        })
    }

    /// Removes `path` (a directory only if empty, never `.` or `..`); the inode and its
    /// blocks are freed with its last link — in the same transaction if they fit, else in
    /// further ones (a crash in between leaves an orphan that the next mount frees).
    pub fn unlink(&mut self, cwd: u32, path: &[u8]) -> FsResult<()> {
        self.remove(cwd, path, false)
    }

    /// As [`unlink`](Self::unlink), but a file or device whose last link this removes is
    /// not freed: it stays allocated with nlink 0 and its blocks (an *orphan*), and
    /// [`stat`](Self::stat), [`read`](Self::read), [`write`](Self::write) and
    /// [`truncate`](Self::truncate) work on it by inode number until
    /// [`release`](Self::release) or a mount that frees orphans. A directory is freed
    /// with its last link as by `unlink` (it is empty, and nothing can be done with an
    /// unlinked directory).
    pub fn unlink_keep(&mut self, cwd: u32, path: &[u8]) -> FsResult<()> {
        self.remove(cwd, path, true)
    }

    /// Frees `inum` and its blocks if it is an orphan (allocated, no links), in as many
    /// transactions as it takes (a crash in between leaves an orphan that the next
    /// freeing mount frees). A linked inode, and the root, are left alone (`Ok`); a free
    /// one is `Stale`, a number out of range `Invalid`.
    pub fn release(&mut self, inum: u32) -> FsResult<()> {
        let d = self.iget(inum, Src::Held)?;
        if d.nlink > 0 || inum == ROOTINO {
            return Ok(());
        }
        self.writable()?;
        self.check_all_blocks(&d)?;
        self.free_inode(inum, u64::MAX)
    }

    /// `unlink` and `unlink_keep`: with `keep`, a file's last link leaves an orphan.
    fn remove(&mut self, cwd: u32, path: &[u8], keep: bool) -> FsResult<()> {
        let (dp, name) = self.nameiparent(cwd, path)?;
        let name = name.ok_or(FsError::NotPermitted)?;
        if is_dot(name) {
            return Err(FsError::NotPermitted);
        }
        self.writable()?;
        let dd = self.iget(dp, Src::Entry)?;
        let (inum, off) = self.dirlookup(dp, &dd, name)?.ok_or(FsError::NotFound)?;
        if inum == ROOTINO {
            // Only a damaged directory names the root other than by `.`/`..`.
            return Err(FsError::Corrupt);
        }
        let d = self.iget(inum, Src::Entry)?;
        if d.typ == T_DIR && !self.dir_is_empty(&d)? {
            return Err(FsError::NotEmpty);
        }
        let keep = keep && d.typ != T_DIR;
        if d.nlink == 1 && !keep {
            self.check_all_blocks(&d)?;
        }
        let mut cursor = u64::MAX;
        let done = self.atomic(|fs| {
            fs.write_small(dp, off, &[0; DIRENT_SIZE])?;
            let mut d = fs.iread(inum)?;
            if d.typ == T_DIR {
                let mut p = fs.iread(dp)?;
                p.nlink = p.nlink.checked_sub(1).ok_or(FsError::Corrupt)?;
                fs.iwrite(dp, &p)?;
            }
            d.nlink = d.nlink.checked_sub(1).ok_or(FsError::Corrupt)?;
            if d.nlink > 0 || keep {
                fs.iwrite(inum, &d)?;
                return Ok(true);
            }
            let done = fs.free_tail_step(inum, &mut d, 0, &mut cursor)?;
            if done {
                d = DInode::default();
            }
            fs.iwrite(inum, &d)?;
            Ok(done)
        })?;
        if !done {
            self.free_inode(inum, cursor)?;
        }
        Ok(())
    }
}
