//! Directories and paths: looking names up, adding and clearing entries, and resolving
//! paths from the root or a working directory.
//!
//! A path is at most `PATH_MAX` (128) bytes, so it has at most 64 components and a walk
//! follows at most 64 entries: a loop in a damaged directory graph cannot make it run
//! longer, and nothing here recurses. An entry naming an inode number out of range, a
//! free inode or one without links, or (other than `.`/`..`) its own directory, is
//! `Corrupt`.

use alloc::vec::Vec;

use frond_interface::fs::{FsError, FsResult, PATH_MAX};

use crate::dev::BlockDev;
use crate::fs::FileSystem;
use crate::inode::Src;
use crate::layout::*;

/// The components of `path` and whether it is absolute. An empty path, one longer than
/// `PATH_MAX`, or one holding a NUL byte is `BadPath`; a component longer than `DIRSIZ`
/// is `NameTooLong`.
pub(crate) fn components(path: &[u8]) -> FsResult<(bool, Vec<&[u8]>)> {
    if path.is_empty() || path.len() > PATH_MAX || path.contains(&0) {
        return Err(FsError::BadPath);
    }
    let mut v = Vec::new();
    for c in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if c.len() > DIRSIZ {
            return Err(FsError::NameTooLong);
        }
        v.push(c);
    }
    Ok((path.first() == Some(&b'/'), v))
}

pub(crate) fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

impl<D: BlockDev> FileSystem<D> {
    /// Finds `name` in directory `dinum` (inode `d`): its inode number and the entry's
    /// byte offset.
    pub(crate) fn dirlookup(&mut self, dinum: u32, d: &DInode, name: &[u8]) -> FsResult<Option<(u32, u64)>> {
        let size = d.size as u64;
        let bs = BSIZE as u64;
        for fbn in 0..size.div_ceil(bs) {
            let a = self.bmap(d, fbn)?;
            if a == 0 {
                continue;
            }
            let slot = self.bread(a)?;
            let n = (size - fbn * bs).min(bs) as usize / DIRENT_SIZE;
            for k in 0..n {
                let Some(raw) = self.cache.data(slot).get(k * DIRENT_SIZE..(k + 1) * DIRENT_SIZE) else { break };
                let de = Dirent::decode(raw);
                if de.inum == 0 || de.name() != name {
                    continue;
                }
                let inum = de.inum as u32;
                if inum >= self.g.ninodes || (inum == dinum && !is_dot(name)) {
                    return Err(FsError::Corrupt);
                }
                return Ok(Some((inum, fbn * bs + (k * DIRENT_SIZE) as u64)));
            }
        }
        Ok(None)
    }

    /// Byte offset of the first free entry of directory `d` (its size if none).
    fn dir_free_slot(&mut self, d: &DInode) -> FsResult<u64> {
        let size = d.size as u64;
        let bs = BSIZE as u64;
        for fbn in 0..size.div_ceil(bs) {
            let a = self.bmap(d, fbn)?;
            if a == 0 {
                return Ok(fbn * bs);
            }
            let slot = self.bread(a)?;
            let n = (size - fbn * bs).min(bs) as usize / DIRENT_SIZE;
            for k in 0..n {
                let raw = self.cache.data(slot).get(k * DIRENT_SIZE..k * DIRENT_SIZE + 2).ok_or(FsError::Corrupt)?;
                if raw == [0, 0] {
                    return Ok(fbn * bs + (k * DIRENT_SIZE) as u64);
                }
            }
        }
        Ok(size)
    }

    /// Whether directory `d` holds nothing but `.` and `..`.
    pub(crate) fn dir_is_empty(&mut self, d: &DInode) -> FsResult<bool> {
        let size = d.size as u64;
        let bs = BSIZE as u64;
        for fbn in 0..size.div_ceil(bs) {
            let a = self.bmap(d, fbn)?;
            if a == 0 {
                continue;
            }
            let slot = self.bread(a)?;
            let n = (size - fbn * bs).min(bs) as usize / DIRENT_SIZE;
            for k in 0..n {
                let Some(raw) = self.cache.data(slot).get(k * DIRENT_SIZE..(k + 1) * DIRENT_SIZE) else { break };
                let de = Dirent::decode(raw);
                if de.inum != 0 && !is_dot(de.name()) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Writes `bytes` (inside one block) at `off` of inode `inum`, growing it, within the
    /// current operation.
    pub(crate) fn write_small(&mut self, inum: u32, off: u64, bytes: &[u8]) -> FsResult<()> {
        let mut d = self.iread(inum)?;
        let end = off + bytes.len() as u64;
        if end > self.g.max_file_bytes() {
            return Err(FsError::TooBig);
        }
        let bs = BSIZE as u64;
        if off / bs != (end - 1) / bs {
            return Err(FsError::Invalid);
        }
        let (a, _) = self.bmap_alloc(&mut d, off / bs, false)?;
        let slot = self.modify(a, false)?;
        let o = (off % bs) as usize;
        self.cache
            .data_mut(slot)
            .get_mut(o..o + bytes.len())
            .ok_or(FsError::Corrupt)?
            .copy_from_slice(bytes);
        if end > d.size as u64 {
            d.size = end as u32;
        }
        self.iwrite(inum, &d)
    }

    /// Adds the entry `name` → `inum` to directory `dinum` (`Exists` if the name is
    /// there), within the current operation.
    pub(crate) fn dirlink(&mut self, dinum: u32, name: &[u8], inum: u32) -> FsResult<()> {
        let packed = Dirent::pack_name(name).ok_or(FsError::NameTooLong)?;
        let inum16 = u16::try_from(inum).map_err(|_| FsError::Invalid)?;
        let d = self.iread(dinum)?;
        if self.dirlookup(dinum, &d, name)?.is_some() {
            return Err(FsError::Exists);
        }
        let off = self.dir_free_slot(&d)?;
        let mut raw = [0u8; DIRENT_SIZE];
        Dirent { inum: inum16, name: packed }.encode(&mut raw);
        self.write_small(dinum, off, &raw)
    }

    /// The directory to start a walk from: the root for an absolute path, else `cwd`
    /// (which must be a directory).
    fn start(&mut self, cwd: u32, absolute: bool) -> FsResult<u32> {
        if absolute {
            return Ok(ROOTINO);
        }
        let d = self.iget(cwd, Src::Api)?;
        if d.typ != T_DIR {
            return Err(FsError::NotDir);
        }
        Ok(cwd)
    }

    /// One step of a walk: `name` in directory `dir`.
    fn step(&mut self, dir: u32, name: &[u8]) -> FsResult<u32> {
        let d = self.iget(dir, Src::Entry)?;
        if d.typ != T_DIR {
            return Err(FsError::NotDir);
        }
        let (inum, _) = self.dirlookup(dir, &d, name)?.ok_or(FsError::NotFound)?;
        self.iget(inum, Src::Entry)?;
        Ok(inum)
    }

    /// Resolves `path` to an inode number.
    pub(crate) fn namei(&mut self, cwd: u32, path: &[u8]) -> FsResult<u32> {
        let (abs, comps) = components(path)?;
        let mut cur = self.start(cwd, abs)?;
        for c in comps {
            cur = self.step(cur, c)?;
        }
        self.iget(cur, Src::Entry)?;
        Ok(cur)
    }

    /// Resolves all but the last component of `path`: the parent directory and the last
    /// name (`None` for a path naming the root, like `/`).
    pub(crate) fn nameiparent<'p>(&mut self, cwd: u32, path: &'p [u8]) -> FsResult<(u32, Option<&'p [u8]>)> {
        let (abs, mut comps) = components(path)?;
        let last = comps.pop();
        let mut cur = self.start(cwd, abs)?;
        for c in comps {
            cur = self.step(cur, c)?;
        }
        let d = self.iget(cur, Src::Entry)?;
        if d.typ != T_DIR {
            return Err(FsError::NotDir);
        }
        Ok((cur, last))
    }
}
