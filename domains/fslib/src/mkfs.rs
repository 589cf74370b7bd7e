//! Formatting: the layout xv6-riscv's mkfs produces for the same size and inode count,
//! in either variant, and helpers that add files and directories to a mounted file
//! system through the ordinary operations.
//!
//! ```text
//! block 0        boot block, zero
//! block 1        superblock
//! 2 ..           log: header + `log` blocks (nlog = log + 1; xv6: LOGBLOCKS = 30)
//! inodestart ..  ninodes / IPB + 1 inode blocks
//! bmapstart ..   size / BPB + 1 bitmap blocks
//! nmeta ..       data blocks (nblocks = size - nmeta); the first is the root's
//! ```
//! Inode 1 is the root directory: one link, entries `.` and `..` (both itself), size
//! one block (xv6 mkfs rounds the root's size up to the next block boundary). The bitmap
//! marks blocks `0 ..= nmeta` (the metadata and the root's block) used. Nothing else is
//! written: every other block is zero.
//!
//! The log: a stock image gets xv6's 30 blocks (xv6 recovers at most that many, and its
//! admission rule assumes them). The large-file variant, which only Frond mounts, may
//! have up to [`LOG_MAX`] (255: as many as one header block names); by default it gets a
//! 64th of the image within `[30, 255]`, so a big image has the largest log.

use core::fmt;

use frond_interface::fs::{FileType, FsResult};

use crate::dev::{BlkError, BlkReqs, BlockDev, BLK_BYTES_MAX};
use crate::fs::FileSystem;
use crate::layout::*;

/// What to format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Blocks in the file system (at most the device's).
    pub size: u32,
    /// Inodes (numbers `1 .. ninodes` are usable, as in xv6).
    pub ninodes: u32,
    pub variant: Variant,
    /// Log blocks, without the header: exactly [`LOGBLOCKS`] on a stock image,
    /// `MAXOPBLOCKS ..= LOG_MAX` on the large variant.
    pub log: u32,
}

impl Params {
    /// xv6-riscv's defaults: FSSIZE 2000 blocks, NINODES 200, LOGBLOCKS 30.
    pub const XV6: Params = Params { size: 2000, ninodes: 200, variant: Variant::Stock, log: LOGBLOCKS as u32 };

    /// `size` blocks and `ninodes` inodes of `variant`, with the variant's default log
    /// ([`default_log`]).
    pub fn new(size: u32, ninodes: u32, variant: Variant) -> Self {
        Params { size, ninodes, variant, log: default_log(variant, size) }
    }
}

/// The default log size (without the header): xv6's 30 blocks on a stock image; on the
/// large variant a 64th of the image, at least 30 and at most [`LOG_MAX`].
pub fn default_log(variant: Variant, size: u32) -> u32 {
    match variant {
        Variant::Stock => LOGBLOCKS as u32,
        Variant::Large => (size / 64).clamp(LOGBLOCKS as u32, LOG_MAX as u32),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// `size` leaves no data block for the root (`needed` blocks at least).
    TooSmall { size: u32, needed: u64 },
    /// `size` is larger than the device.
    BeyondDevice { size: u32, blocks: u64 },
    /// Fewer than 2 or more than 65536 inodes.
    BadInodeCount(u32),
    /// A log size the variant does not allow (see [`Params::log`]).
    BadLogSize { log: u32, variant: Variant },
    ReadOnly,
    NoMemory,
    Io(BlkError),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::TooSmall { size, needed } => {
                write!(f, "{size} blocks is too small: the metadata and the root need {needed}")
            }
            FormatError::BeyondDevice { size, blocks } => write!(f, "{size} blocks do not fit the device's {blocks}"),
            FormatError::BadInodeCount(n) => write!(f, "{n} inodes: need 2 to 65536"),
            FormatError::BadLogSize { log, variant: Variant::Stock } => {
                write!(f, "a log of {log} blocks: a stock image has xv6's {LOGBLOCKS}")
            }
            FormatError::BadLogSize { log, variant: Variant::Large } => {
                write!(f, "a log of {log} blocks: the large variant takes {MAXOPBLOCKS} to {LOG_MAX}")
            }
            FormatError::ReadOnly => write!(f, "the device is read-only"),
            FormatError::NoMemory => write!(f, "no memory for the I/O buffer"),
            FormatError::Io(e) => write!(f, "device error: {}", e.as_str()),
        }
    }
}

/// The superblock xv6-riscv's mkfs writes for `p`.
pub fn layout(p: &Params) -> Result<SuperBlock, FormatError> {
    if p.ninodes < 2 || p.ninodes > 1 << 16 {
        return Err(FormatError::BadInodeCount(p.ninodes));
    }
    let log_ok = match p.variant {
        Variant::Stock => p.log == LOGBLOCKS as u32,
        Variant::Large => (MAXOPBLOCKS as u32..=LOG_MAX as u32).contains(&p.log),
    };
    if !log_ok {
        return Err(FormatError::BadLogSize { log: p.log, variant: p.variant });
    }
    let nlog = p.log as u64 + 1;
    let ninodeblocks = p.ninodes as u64 / IPB as u64 + 1;
    let nbitmap = p.size as u64 / BPB as u64 + 1;
    let nmeta = 2 + nlog + ninodeblocks + nbitmap;
    if nmeta + 1 > p.size as u64 {
        return Err(FormatError::TooSmall { size: p.size, needed: nmeta + 1 });
    }
    Ok(SuperBlock {
        magic: p.variant.magic(),
        size: p.size,
        nblocks: (p.size as u64 - nmeta) as u32,
        ninodes: p.ninodes,
        nlog: nlog as u32,
        logstart: 2,
        inodestart: (2 + nlog) as u32,
        bmapstart: (2 + nlog + ninodeblocks) as u32,
    })
}

/// Formats `dev` (see the module docs) and flushes it. Returns the superblock.
pub fn format<D: BlockDev>(dev: &mut D, p: &Params) -> Result<SuperBlock, FormatError> {
    let sb = layout(p)?;
    if p.size as u64 > dev.blocks() {
        return Err(FormatError::BeyondDevice { size: p.size, blocks: dev.blocks() });
    }
    if dev.read_only() {
        return Err(FormatError::ReadOnly);
    }
    let mut buf = dev.alloc_buf(BLK_BYTES_MAX).filter(|b| b.len() == BLK_BYTES_MAX).ok_or(FormatError::NoMemory)?;
    let per = (BLK_BYTES_MAX / BSIZE) as u32;
    let nmeta = sb.size - sb.nblocks;
    let write = |dev: &mut D, buf: &D::Buf, block: u32, count: u32| {
        dev.write(&BlkReqs::one(block as u64, count), buf).map_err(FormatError::Io)
    };

    // Every block zero.
    buf.fill(0);
    let mut b = 0;
    while b < p.size {
        let n = per.min(p.size - b);
        write(dev, &buf, b, n)?;
        b += n;
    }

    // Superblock.
    sb.encode(&mut buf[..BSIZE]);
    write(dev, &buf, 1, 1)?;

    // Root inode (inode 1, in the first inode block) and its directory block.
    buf[..BSIZE].fill(0);
    let mut root = DInode { typ: T_DIR, nlink: 1, size: BSIZE as u32, ..DInode::default() };
    root.addrs[0] = nmeta;
    let off = ROOTINO as usize % IPB * DINODE_SIZE;
    root.encode(&mut buf[off..off + DINODE_SIZE]);
    write(dev, &buf, sb.iblock(ROOTINO), 1)?;

    buf[..BSIZE].fill(0);
    for (i, name) in [&b"."[..], &b".."[..]].into_iter().enumerate() {
        let mut n = [0; DIRSIZ];
        n[..name.len()].copy_from_slice(name);
        Dirent { inum: ROOTINO as u16, name: n }.encode(&mut buf[i * DIRENT_SIZE..(i + 1) * DIRENT_SIZE]);
    }
    write(dev, &buf, nmeta, 1)?;

    // Bitmap: blocks 0 ..= nmeta in use.
    let used = nmeta as u64 + 1;
    let mut k = 0u64;
    while k * (BPB as u64) < used {
        buf[..BSIZE].fill(0);
        for bit in 0..BPB as u64 {
            if k * BPB as u64 + bit < used {
                buf[(bit / 8) as usize] |= 1 << (bit % 8);
            }
        }
        write(dev, &buf, sb.bmapstart + k as u32, 1)?;
        k += 1;
    }
    dev.flush().map_err(FormatError::Io)?;
    Ok(sb)
}

/// Creates file `name` in directory `dir` holding `data` (written in 64 KiB calls, as
/// the fs domain receives them). Returns its inode number.
pub fn add_file<D: BlockDev>(fs: &mut FileSystem<D>, dir: u32, name: &[u8], data: &[u8]) -> FsResult<u32> {
    let st = fs.create(dir, name, FileType::File, 0, 0, true)?;
    let mut off = 0;
    for chunk in data.chunks(64 * 1024) {
        let n = fs.write(st.inum, off as u64, chunk)? as usize;
        if n < chunk.len() {
            return Err(frond_interface::fs::FsError::NoSpace);
        }
        off += n;
    }
    Ok(st.inum)
}

/// Creates directory `name` in directory `dir`. Returns its inode number.
pub fn add_dir<D: BlockDev>(fs: &mut FileSystem<D>, dir: u32, name: &[u8]) -> FsResult<u32> {
    Ok(fs.create(dir, name, FileType::Dir, 0, 0, true)?.inum)
}
