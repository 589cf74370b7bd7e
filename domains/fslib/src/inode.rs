//! Inodes and their blocks: reading and checking inodes, the block map of both variants
//! (stock: 12 direct + singly indirect; large: 11 direct + singly + doubly indirect),
//! block and inode allocation, and freeing a file's tail a transaction at a time.
//!
//! Every block number read from an inode or an indirect block is checked to be 0 (a
//! hole) or inside the data area before it is used; anything else is `Corrupt`.

use frond_interface::fs::{FsError, FsResult};

use crate::dev::BlockDev;
use crate::fs::FileSystem;
use crate::layout::*;

/// Where an inode was named from: by the caller (a bad number is the caller's mistake)
/// or by a directory entry (a bad number is damage on disk).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Src {
    /// A number the caller gave, for an operation that needs links (a working directory,
    /// `readdir`): an orphan is `Stale`.
    Api,
    /// A number the caller holds (a file it has open): an orphan — allocated, no links,
    /// kept by `unlink_keep` — is accepted.
    Held,
    Entry,
}

/// Where file block `fbn` is mapped.
#[derive(Clone, Copy)]
pub(crate) enum Loc {
    Direct(usize),
    Single(usize),
    Double(usize, usize),
}

impl<D: BlockDev> FileSystem<D> {
    pub(crate) fn inode_block(&self, inum: u32) -> u32 {
        self.g.inodestart + inum / IPB as u32
    }

    /// The on-disk inode `inum` as it is, without judging it (`inum` must be a valid
    /// number: `Corrupt` otherwise).
    pub(crate) fn iread(&mut self, inum: u32) -> FsResult<DInode> {
        if inum == 0 || inum >= self.g.ninodes {
            return Err(FsError::Corrupt);
        }
        let slot = self.bread(self.inode_block(inum))?;
        let off = (inum as usize % IPB) * DINODE_SIZE;
        let b = self.cache.data(slot).get(off..off + DINODE_SIZE).ok_or(FsError::Corrupt)?;
        Ok(DInode::decode(b))
    }

    /// Writes inode `inum` within the current operation.
    pub(crate) fn iwrite(&mut self, inum: u32, d: &DInode) -> FsResult<()> {
        if inum == 0 || inum >= self.g.ninodes {
            return Err(FsError::Corrupt);
        }
        let slot = self.modify(self.inode_block(inum), false)?;
        let off = (inum as usize % IPB) * DINODE_SIZE;
        let b = self.cache.data_mut(slot).get_mut(off..off + DINODE_SIZE).ok_or(FsError::Corrupt)?;
        d.encode(b);
        Ok(())
    }

    /// Inode `inum`, checked: a number in range, an allocated inode with links (or
    /// without, for [`Src::Held`]), a known type, a size within the variant's limit (and a
    /// whole number of entries for a directory). Failures are `Invalid`/`Stale` for a
    /// number the caller gave, `Corrupt` for one a directory entry gave.
    pub(crate) fn iget(&mut self, inum: u32, src: Src) -> FsResult<DInode> {
        let damage = |api| if src == Src::Entry { Err(FsError::Corrupt) } else { Err(api) };
        if inum == 0 || inum >= self.g.ninodes {
            return damage(FsError::Invalid);
        }
        let d = self.iread(inum)?;
        if d.typ == 0 || (d.nlink == 0 && src != Src::Held) {
            return damage(FsError::Stale);
        }
        if d.typ > T_DEVICE
            || d.size as u64 > self.g.max_file_bytes()
            || (d.typ == T_DIR && !(d.size as usize).is_multiple_of(DIRENT_SIZE))
        {
            return Err(FsError::Corrupt);
        }
        Ok(d)
    }

    /// A block number from an inode or an indirect block: 0 or inside the data area.
    pub(crate) fn check_addr(&self, a: u32) -> FsResult<u32> {
        if a == 0 || (a >= self.g.datastart && a < self.g.size) {
            Ok(a)
        } else {
            Err(FsError::Corrupt)
        }
    }

    pub(crate) fn slot_addr(&self, d: &DInode, i: usize) -> FsResult<u32> {
        self.check_addr(d.addrs.get(i).copied().ok_or(FsError::Corrupt)?)
    }

    fn set_slot(d: &mut DInode, i: usize, v: u32) -> FsResult<()> {
        *d.addrs.get_mut(i).ok_or(FsError::Corrupt)? = v;
        Ok(())
    }

    /// Entry `i` of indirect block `blk`, checked.
    pub(crate) fn ind_get(&mut self, blk: u32, i: usize) -> FsResult<u32> {
        if i >= NINDIRECT {
            return Err(FsError::Corrupt);
        }
        let slot = self.bread(blk)?;
        let a = u32_at(self.cache.data(slot), i * 4);
        self.check_addr(a)
    }

    fn ind_set(&mut self, blk: u32, i: usize, v: u32) -> FsResult<()> {
        if i >= NINDIRECT {
            return Err(FsError::Corrupt);
        }
        let slot = self.modify(blk, false)?;
        put_u32(self.cache.data_mut(slot), i * 4, v);
        Ok(())
    }

    pub(crate) fn ndirect(&self) -> usize {
        self.g.variant.ndirect()
    }

    pub(crate) fn locate(&self, fbn: u64) -> FsResult<Loc> {
        let nd = self.ndirect() as u64;
        let ni = NINDIRECT as u64;
        if fbn < nd {
            return Ok(Loc::Direct(fbn as usize));
        }
        let f = fbn - nd;
        if f < ni {
            return Ok(Loc::Single(f as usize));
        }
        let f = f - ni;
        if self.g.variant == Variant::Large && f < ni * ni {
            return Ok(Loc::Double((f / ni) as usize, (f % ni) as usize));
        }
        Err(FsError::TooBig)
    }

    /// The disk block of file block `fbn` (0: a hole), allocating nothing.
    pub(crate) fn bmap(&mut self, d: &DInode, fbn: u64) -> FsResult<u32> {
        let nd = self.ndirect();
        match self.locate(fbn)? {
            Loc::Direct(i) => self.slot_addr(d, i),
            Loc::Single(i) => match self.slot_addr(d, nd)? {
                0 => Ok(0),
                ind => self.ind_get(ind, i),
            },
            Loc::Double(i, j) => match self.slot_addr(d, nd + 1)? {
                0 => Ok(0),
                top => match self.ind_get(top, i)? {
                    0 => Ok(0),
                    l1 => self.ind_get(l1, j),
                },
            },
        }
    }

    /// An entry of indirect block `blk`, allocating its block if it is 0 (a file data
    /// block if `data`, else an indirect block). Also says whether it was allocated now.
    fn ensure_entry(&mut self, blk: u32, i: usize, data: bool) -> FsResult<(u32, bool)> {
        match self.ind_get(blk, i)? {
            0 => {
                let n = self.balloc_for(data)?;
                self.ind_set(blk, i, n)?;
                Ok((n, true))
            }
            a => Ok((a, false)),
        }
    }

    fn ensure_slot(&mut self, d: &mut DInode, i: usize, data: bool) -> FsResult<(u32, bool)> {
        match self.slot_addr(d, i)? {
            0 => {
                let n = self.balloc_for(data)?;
                Self::set_slot(d, i, n)?;
                Ok((n, true))
            }
            a => Ok((a, false)),
        }
    }

    fn balloc_for(&mut self, data: bool) -> FsResult<u32> {
        if data {
            self.balloc_data()
        } else {
            self.balloc()
        }
    }

    /// The disk block of file block `fbn`, allocating it and the indirect blocks on its
    /// way (within the current operation; the caller writes `d` back), and whether the
    /// block was allocated now. `data`: the block holds a regular file's data, allocated
    /// by [`balloc_data`](Self::balloc_data) (the caller zeroes or fills it); else
    /// directory contents, allocated zeroed and logged.
    pub(crate) fn bmap_alloc(&mut self, d: &mut DInode, fbn: u64, data: bool) -> FsResult<(u32, bool)> {
        let nd = self.ndirect();
        match self.locate(fbn)? {
            Loc::Direct(i) => self.ensure_slot(d, i, data),
            Loc::Single(i) => {
                let (ind, _) = self.ensure_slot(d, nd, false)?;
                self.ensure_entry(ind, i, data)
            }
            Loc::Double(i, j) => {
                let (top, _) = self.ensure_slot(d, nd + 1, false)?;
                let (l1, _) = self.ensure_entry(top, i, false)?;
                self.ensure_entry(l1, j, data)
            }
        }
    }

    /// What writing file data block `fbn` may add to the current operation: log blocks
    /// (the inode block, the indirect blocks that change, the data block unless it goes
    /// home directly, and for each block to allocate the block and its bitmap block) and
    /// whether the data block may go home directly (then it counts against the
    /// operation's `ORDERED_OP`). An allocation of the data block alone is sized
    /// exactly, by looking at the block the allocator will hand out; more allocations
    /// (the first block under a new indirect block) count two log blocks each.
    pub(crate) fn write_cost(&mut self, inum: u32, d: &DInode, fbn: u64) -> FsResult<(usize, bool)> {
        let nd = self.ndirect();
        let iblk = self.inode_block(inum);
        // (the indirect block that gains an entry, the mapped data block, allocations)
        let (path, leaf, allocs) = match self.locate(fbn)? {
            Loc::Direct(i) => match self.slot_addr(d, i)? {
                0 => (0, 0, 1),
                a => (0, a, 0),
            },
            Loc::Single(i) => match self.slot_addr(d, nd)? {
                0 => (0, 0, 2),
                ind => match self.ind_get(ind, i)? {
                    0 => (ind, 0, 1),
                    a => (0, a, 0),
                },
            },
            Loc::Double(i, j) => match self.slot_addr(d, nd + 1)? {
                0 => (0, 0, 3),
                top => match self.ind_get(top, i)? {
                    0 => (top, 0, 2),
                    l1 => match self.ind_get(l1, j)? {
                        0 => (l1, 0, 1),
                        a => (0, a, 0),
                    },
                },
            },
        };
        if leaf != 0 {
            return Ok(if self.ordered_ok(leaf) { (self.cost(&[iblk]), true) } else { (self.cost(&[iblk, leaf]), false) });
        }
        let known = if path == 0 { [iblk, iblk] } else { [iblk, path] };
        if allocs == 1 {
            return Ok(match self.pick_free()? {
                Some((b, true)) => (self.cost(&[known[0], known[1], self.bmap_block(b)]), true),
                Some((b, false)) => (self.cost(&[known[0], known[1], self.bmap_block(b)]) + 1, false),
                None => (self.cost(&known) + 2, false),
            });
        }
        Ok((self.cost(&known) + 2 * allocs, true))
    }

    /// Checks every block number of `d` (direct, indirect and what they point to).
    pub(crate) fn check_all_blocks(&mut self, d: &DInode) -> FsResult<()> {
        let nd = self.ndirect();
        for i in 0..nd {
            self.slot_addr(d, i)?;
        }
        let ind = self.slot_addr(d, nd)?;
        if ind != 0 {
            for i in 0..NINDIRECT {
                self.ind_get(ind, i)?;
            }
        }
        if self.g.variant == Variant::Large {
            let top = self.slot_addr(d, nd + 1)?;
            if top != 0 {
                for i in 0..NINDIRECT {
                    let l1 = self.ind_get(top, i)?;
                    if l1 != 0 {
                        for j in 0..NINDIRECT {
                            self.ind_get(l1, j)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    // ----- allocation -----------------------------------------------------------------

    /// Allocates a block for metadata (an indirect or directory block) and zeroes it,
    /// both within the current operation (logged).
    pub(crate) fn balloc(&mut self) -> FsResult<u32> {
        let b = self.balloc_bit()?;
        self.modify(b, true)?;
        Ok(b)
    }

    /// Allocates a block for a regular file's data, within the current operation; the
    /// caller fills it whole or zeroes it (through [`modify_data`](Self::modify_data) or
    /// [`stage`](Self::stage)). If the block is clean (see
    /// [`pick_free`](Self::pick_free)) it is `fresh`, and its data goes home before the
    /// commit record without being logged; else it is logged like any block.
    pub(crate) fn balloc_data(&mut self) -> FsResult<u32> {
        self.balloc_bit()
    }

    /// Marks the block [`pick_free`](Self::pick_free) chooses allocated, within the
    /// current operation.
    fn balloc_bit(&mut self) -> FsResult<u32> {
        let (b, clean) = self.pick_free()?.ok_or(FsError::NoSpace)?;
        let bblk = self.g.bmapstart + b / BPB as u32;
        let slot = self.modify(bblk, false)?;
        let bi = b as usize % BPB;
        if let Some(byte) = self.cache.data_mut(slot).get_mut(bi / 8) {
            *byte |= 1 << (bi % 8);
        }
        if clean {
            self.fresh.insert(b);
        } else {
            self.fresh.remove(&b);
        }
        self.balloc_hint = b + 1;
        Ok(b)
    }

    /// The block the next allocation takes, and whether it is clean: free in the bitmap
    /// and in every state a crash can recover, and named by no log entry — i.e. not freed
    /// by the open transaction, nor by the last commit while its record may not be durable,
    /// and not in the log. Clean blocks are searched first, from where the last search
    /// ended; only when none is left is any free block taken. Only data-area blocks are
    /// handed out whatever the bitmap says about the metadata.
    pub(crate) fn pick_free(&mut self) -> FsResult<Option<(u32, bool)>> {
        let (lo, hi) = (self.g.datastart, self.g.size);
        let start = if self.balloc_hint >= lo && self.balloc_hint < hi { self.balloc_hint } else { lo };
        for clean in [true, false] {
            if !clean && self.freed.is_empty() && self.freed_prev.is_empty() && self.log_homes.is_empty() {
                break;
            }
            for (from, to) in [(start, hi), (lo, start)] {
                if let Some(b) = self.find_free(from, to, clean)? {
                    return Ok(Some((b, clean)));
                }
            }
        }
        Ok(None)
    }

    fn unclean(&self, b: u32) -> bool {
        self.freed.contains(&b) || self.freed_prev.contains(&b) || self.log_homes.contains(&b)
    }

    fn find_free(&mut self, from: u32, to: u32, clean: bool) -> FsResult<Option<u32>> {
        let mut b = from;
        while b < to {
            let bblk = self.g.bmapstart + b / BPB as u32;
            let slot = self.bread(bblk)?;
            let end = to.min((b / BPB as u32 + 1) * BPB as u32);
            let data = self.cache.data(slot);
            while b < end {
                let bi = b as usize % BPB;
                let byte = data.get(bi / 8).copied().unwrap_or(0xff);
                if byte == 0xff && bi.is_multiple_of(8) && b + 8 <= end {
                    b += 8;
                    continue;
                }
                if byte & (1 << (bi % 8)) == 0 && !(clean && self.unclean(b)) {
                    return Ok(Some(b));
                }
                b += 1;
            }
        }
        Ok(None)
    }

    /// Frees data block `b`; freeing a block the bitmap shows free is `Corrupt`. A block
    /// a recoverable state still uses is remembered (`freed`): it is not clean until the
    /// commit that frees it is durable.
    pub(crate) fn bfree(&mut self, b: u32) -> FsResult<()> {
        if b < self.g.datastart || b >= self.g.size {
            return Err(FsError::Corrupt);
        }
        let bblk = self.g.bmapstart + b / BPB as u32;
        let bi = b as usize % BPB;
        let slot = self.bread(bblk)?;
        let byte = self.cache.data(slot).get(bi / 8).copied().ok_or(FsError::Corrupt)?;
        if byte & (1 << (bi % 8)) == 0 {
            return Err(FsError::Corrupt);
        }
        let slot = self.modify(bblk, false)?;
        if let Some(byte) = self.cache.data_mut(slot).get_mut(bi / 8) {
            *byte &= !(1 << (bi % 8));
        }
        if !self.fresh.remove(&b) {
            self.freed.insert(b);
        }
        Ok(())
    }

    /// Bitmap block of data block `b`.
    pub(crate) fn bmap_block(&self, b: u32) -> u32 {
        self.g.bmapstart + b / BPB as u32
    }

    /// Allocates an inode of type `typ` (all other fields zero), within the current
    /// operation.
    pub(crate) fn ialloc(&mut self, typ: u16) -> FsResult<u32> {
        let n = self.g.ninodes;
        let start = if self.ialloc_hint >= 1 && self.ialloc_hint < n { self.ialloc_hint } else { 1 };
        for inum in (start..n).chain(1..start) {
            if self.iread(inum)?.typ == 0 {
                self.iwrite(inum, &DInode { typ, ..DInode::default() })?;
                self.ialloc_hint = inum + 1;
                return Ok(inum);
            }
        }
        Err(FsError::NoInodes)
    }

    // ----- freeing ----------------------------------------------------------------------

    /// Frees, from the end, the blocks of `d` at file block numbers `>= keep` — data
    /// blocks, then each indirect block once nothing it maps is kept — zeroing the
    /// pointers to them and lowering `d.size` accordingly, while the current operation
    /// has room. `cursor` carries progress between calls (start with `u64::MAX`).
    /// Returns whether everything is freed. Each call frees at least one block or
    /// finishes; the caller writes `d` back.
    pub(crate) fn free_tail_step(&mut self, inum: u32, d: &mut DInode, keep: u64, cursor: &mut u64) -> FsResult<bool> {
        let nd = self.ndirect();
        let ni = NINDIRECT as u64;
        let iblk = self.inode_block(inum);
        let bs = BSIZE as u64;
        let mut freed = false;
        // Doubly indirect region.
        if self.g.variant == Variant::Large {
            let base = nd as u64 + ni;
            let top = self.slot_addr(d, nd + 1)?;
            if top != 0 {
                for g in (0..NINDIRECT).rev() {
                    let gs = base + g as u64 * ni;
                    if gs + ni <= keep {
                        break;
                    }
                    if gs >= *cursor {
                        continue;
                    }
                    let l1 = self.ind_get(top, g)?;
                    if l1 != 0 {
                        for j in (0..NINDIRECT).rev() {
                            let fbn = gs + j as u64;
                            if fbn < keep {
                                break;
                            }
                            let a = self.ind_get(l1, j)?;
                            if a != 0 {
                                let c = self.cost(&[self.bmap_block(a), l1, iblk]);
                                if !self.fits(c) {
                                    return self.stalled(freed);
                                }
                                self.bfree(a)?;
                                self.ind_set(l1, j, 0)?;
                                freed = true;
                            }
                            d.size = d.size.min((fbn * bs) as u32);
                        }
                        if gs >= keep {
                            let c = self.cost(&[self.bmap_block(l1), top, iblk]);
                            if !self.fits(c) {
                                return self.stalled(freed);
                            }
                            self.bfree(l1)?;
                            self.ind_set(top, g, 0)?;
                            freed = true;
                        }
                    }
                    *cursor = gs.max(keep);
                }
                if base >= keep {
                    let c = self.cost(&[self.bmap_block(top), iblk]);
                    if !self.fits(c) {
                        return self.stalled(freed);
                    }
                    self.bfree(top)?;
                    Self::set_slot(d, nd + 1, 0)?;
                    freed = true;
                }
            }
        }
        // Singly indirect region.
        let ind = self.slot_addr(d, nd)?;
        if ind != 0 && nd as u64 + ni > keep {
            for j in (0..NINDIRECT).rev() {
                let fbn = nd as u64 + j as u64;
                if fbn < keep {
                    break;
                }
                if fbn >= *cursor {
                    continue;
                }
                let a = self.ind_get(ind, j)?;
                if a != 0 {
                    let c = self.cost(&[self.bmap_block(a), ind, iblk]);
                    if !self.fits(c) {
                        return self.stalled(freed);
                    }
                    self.bfree(a)?;
                    self.ind_set(ind, j, 0)?;
                    freed = true;
                }
                d.size = d.size.min((fbn * bs) as u32);
                *cursor = fbn;
            }
            if nd as u64 >= keep {
                let c = self.cost(&[self.bmap_block(ind), iblk]);
                if !self.fits(c) {
                    return self.stalled(freed);
                }
                self.bfree(ind)?;
                Self::set_slot(d, nd, 0)?;
                freed = true;
            }
        }
        // Direct blocks.
        for i in (0..nd).rev() {
            if (i as u64) < keep {
                break;
            }
            let a = self.slot_addr(d, i)?;
            if a != 0 {
                let c = self.cost(&[self.bmap_block(a), iblk]);
                if !self.fits(c) {
                    return self.stalled(freed);
                }
                self.bfree(a)?;
                Self::set_slot(d, i, 0)?;
                freed = true;
            }
            d.size = d.size.min((i as u64 * bs) as u32);
        }
        Ok(true)
    }

    /// Out of room in this operation: fine if something was freed, else the operation
    /// cannot make progress (only a damaged image does that).
    fn stalled(&self, freed: bool) -> FsResult<bool> {
        if freed {
            Ok(false)
        } else {
            Err(FsError::Corrupt)
        }
    }

    /// Frees inode `inum` and all its blocks, in as many transactions as it takes
    /// (continuing from `cursor`, see [`free_tail_step`](Self::free_tail_step)).
    pub(crate) fn free_inode(&mut self, inum: u32, mut cursor: u64) -> FsResult<()> {
        loop {
            let done = self.atomic(|fs| {
                let mut d = fs.iread(inum)?;
                let done = fs.free_tail_step(inum, &mut d, 0, &mut cursor)?;
                if done {
                    d = DInode::default();
                }
                fs.iwrite(inum, &d)?;
                Ok(done)
            })?;
            if done {
                return Ok(());
            }
        }
    }
}
