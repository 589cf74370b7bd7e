//! The on-disk format: xv6-riscv's, and the large-file variant.
//!
//! ```text
//! [ boot | super | log header | log blocks ... | inode blocks ... | bitmap ... | data ... ]
//!    0      1      logstart     logstart+1       inodestart         bmapstart
//! ```
//! All integers are little-endian (xv6-riscv's targets are). Blocks are
//! [`BSIZE`] = 1024 bytes. The stock format announces itself with [`FSMAGIC`]; the
//! large-file variant with [`FSMAGIC_LARGE`] and differs only in how an inode's 13
//! address slots are used (11 direct + 1 singly + 1 doubly indirect instead of 12 direct
//! + 1 singly indirect), so a dinode stays 64 bytes and every other structure is shared.

/// Block size.
pub const BSIZE: usize = 1024;
/// Stock xv6-riscv superblock magic.
pub const FSMAGIC: u32 = 0x1020_3040;
/// Superblock magic of the large-file variant (Frond's; stock xv6 refuses it).
pub const FSMAGIC_LARGE: u32 = 0x1020_3050;
/// Root directory inode number.
pub const ROOTINO: u32 = 1;
/// Blocks one file-system operation writes at most (xv6's MAXOPBLOCKS).
pub const MAXOPBLOCKS: usize = 10;
/// Log capacity in blocks, without the header (xv6-riscv's LOGBLOCKS = MAXOPBLOCKS * 3):
/// the most a stock image's log is used for, so that xv6 itself can recover it.
pub const LOGBLOCKS: usize = MAXOPBLOCKS * 3;
/// Most blocks one log header can name (`n` and 255 block numbers fill the 1024-byte
/// header block): the largest log of the large-file variant.
pub const LOG_MAX: usize = (BSIZE - 4) / 4;
/// Bytes of one on-disk inode.
pub const DINODE_SIZE: usize = 64;
/// Inodes per block.
pub const IPB: usize = BSIZE / DINODE_SIZE;
/// Bitmap bits per block.
pub const BPB: usize = BSIZE * 8;
/// Bytes of one directory entry, and of its name.
pub const DIRENT_SIZE: usize = 16;
pub const DIRSIZ: usize = 14;
/// Block addresses per indirect block.
pub const NINDIRECT: usize = BSIZE / 4;
/// Address slots in a dinode.
pub const NADDRS: usize = 13;

/// Inode types.
pub const T_DIR: u16 = 1;
pub const T_FILE: u16 = 2;
pub const T_DEVICE: u16 = 3;

/// Which of the two formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// xv6-riscv: 12 direct + 1 singly indirect (268 KiB per file).
    Stock,
    /// 11 direct + 1 singly + 1 doubly indirect (65,803 KiB per file).
    Large,
}

impl Variant {
    pub fn magic(self) -> u32 {
        match self {
            Variant::Stock => FSMAGIC,
            Variant::Large => FSMAGIC_LARGE,
        }
    }
    pub fn from_magic(m: u32) -> Option<Self> {
        match m {
            FSMAGIC => Some(Variant::Stock),
            FSMAGIC_LARGE => Some(Variant::Large),
            _ => None,
        }
    }
    /// Direct address slots.
    pub fn ndirect(self) -> usize {
        match self {
            Variant::Stock => 12,
            Variant::Large => 11,
        }
    }
    /// Most log blocks (without the header) a transaction may use on this variant:
    /// [`LOGBLOCKS`] on a stock image (what xv6 recovers), [`LOG_MAX`] on the large one.
    pub fn max_log(self) -> u32 {
        match self {
            Variant::Stock => LOGBLOCKS as u32,
            Variant::Large => LOG_MAX as u32,
        }
    }
    /// Largest file in blocks.
    pub fn max_file_blocks(self) -> u64 {
        match self {
            Variant::Stock => (12 + NINDIRECT) as u64,
            Variant::Large => (11 + NINDIRECT + NINDIRECT * NINDIRECT) as u64,
        }
    }
}

/// The superblock (block 1), as xv6-riscv lays it out: eight `u32`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SuperBlock {
    pub magic: u32,
    /// Blocks in the image.
    pub size: u32,
    /// Data blocks.
    pub nblocks: u32,
    pub ninodes: u32,
    /// Log blocks, *including* the header block (xv6-riscv's mkfs writes LOGBLOCKS + 1).
    pub nlog: u32,
    pub logstart: u32,
    pub inodestart: u32,
    pub bmapstart: u32,
}

impl SuperBlock {
    pub fn decode(b: &[u8]) -> Self {
        let w = |i: usize| u32_at(b, i * 4);
        Self { magic: w(0), size: w(1), nblocks: w(2), ninodes: w(3), nlog: w(4), logstart: w(5), inodestart: w(6), bmapstart: w(7) }
    }
    pub fn encode(&self, b: &mut [u8]) {
        let v = [self.magic, self.size, self.nblocks, self.ninodes, self.nlog, self.logstart, self.inodestart, self.bmapstart];
        for (i, x) in v.iter().enumerate() {
            put_u32(b, i * 4, *x);
        }
    }
    /// Block holding inode `inum`.
    pub fn iblock(&self, inum: u32) -> u32 {
        self.inodestart + inum / IPB as u32
    }
    /// Bitmap block holding block `b`'s bit.
    pub fn bblock(&self, b: u32) -> u32 {
        self.bmapstart + b / BPB as u32
    }
}

/// One on-disk inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DInode {
    /// 0 = free, else `T_DIR`/`T_FILE`/`T_DEVICE`.
    pub typ: u16,
    pub major: u16,
    pub minor: u16,
    pub nlink: u16,
    pub size: u32,
    pub addrs: [u32; NADDRS],
}

impl DInode {
    /// Decodes the 64 bytes at `b[..64]`.
    pub fn decode(b: &[u8]) -> Self {
        let h = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let mut addrs = [0; NADDRS];
        for (i, a) in addrs.iter_mut().enumerate() {
            *a = u32_at(b, 12 + i * 4);
        }
        Self { typ: h(0), major: h(2), minor: h(4), nlink: h(6), size: u32_at(b, 8), addrs }
    }
    pub fn encode(&self, b: &mut [u8]) {
        b[0..2].copy_from_slice(&self.typ.to_le_bytes());
        b[2..4].copy_from_slice(&self.major.to_le_bytes());
        b[4..6].copy_from_slice(&self.minor.to_le_bytes());
        b[6..8].copy_from_slice(&self.nlink.to_le_bytes());
        put_u32(b, 8, self.size);
        for (i, a) in self.addrs.iter().enumerate() {
            put_u32(b, 12 + i * 4, *a);
        }
    }
}

/// One directory entry: inode number 0 marks a free slot; the name is NUL-padded and
/// not NUL-terminated when it is [`DIRSIZ`] bytes long.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Dirent {
    pub inum: u16,
    pub name: [u8; DIRSIZ],
}

impl Dirent {
    pub fn decode(b: &[u8]) -> Self {
        let mut name = [0; DIRSIZ];
        name.copy_from_slice(&b[2..2 + DIRSIZ]);
        Self { inum: u16::from_le_bytes([b[0], b[1]]), name }
    }
    pub fn encode(&self, b: &mut [u8]) {
        b[0..2].copy_from_slice(&self.inum.to_le_bytes());
        b[2..2 + DIRSIZ].copy_from_slice(&self.name);
    }
    /// The name without its NUL padding.
    pub fn name(&self) -> &[u8] {
        let n = self.name.iter().position(|&c| c == 0).unwrap_or(DIRSIZ);
        &self.name[..n]
    }
    /// A NUL-padded name; `None` if empty, longer than [`DIRSIZ`] or containing `/` or NUL.
    pub fn pack_name(s: &[u8]) -> Option<[u8; DIRSIZ]> {
        if s.is_empty() || s.len() > DIRSIZ || s.iter().any(|&c| c == b'/' || c == 0) {
            return None;
        }
        let mut n = [0; DIRSIZ];
        n[..s.len()].copy_from_slice(s);
        Some(n)
    }
}

/// The log header (block `logstart`): `n`, then `n` home block numbers (`i32`s in xv6);
/// log block `i` (at `logstart + 1 + i`) belongs at home `block[i]`, and a home named
/// twice gets its later copy. xv6 declares `LOGBLOCKS` entries; the rest of the block
/// holds the entries of a larger log (up to [`LOG_MAX`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogHeader {
    pub n: u32,
    pub block: [u32; LOG_MAX],
}

impl Default for LogHeader {
    fn default() -> Self {
        Self { n: 0, block: [0; LOG_MAX] }
    }
}

impl LogHeader {
    /// Decodes without judging: `n` may exceed the log (mount refuses that).
    pub fn decode(b: &[u8]) -> Self {
        let mut block = [0; LOG_MAX];
        for (i, x) in block.iter_mut().enumerate() {
            *x = u32_at(b, 4 + i * 4);
        }
        Self { n: u32_at(b, 0), block }
    }
    pub fn encode(&self, b: &mut [u8]) {
        put_u32(b, 0, self.n);
        for (i, x) in self.block.iter().enumerate() {
            put_u32(b, 4 + i * 4, *x);
        }
    }
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_xv6() {
        assert_eq!(IPB, 16);
        assert_eq!(BPB, 8192);
        assert_eq!(Variant::Stock.max_file_blocks() * BSIZE as u64, 268 * 1024);
        assert_eq!(Variant::Large.max_file_blocks(), 11 + 256 + 65536);
        let d = DInode { typ: T_FILE, major: 1, minor: 2, nlink: 3, size: 4, addrs: [7; NADDRS] };
        let mut b = [0u8; 64];
        d.encode(&mut b);
        assert_eq!(DInode::decode(&b), d);
        assert_eq!(&b[0..2], &[2, 0]);
        assert_eq!(&b[12..16], &[7, 0, 0, 0]);
    }
}
