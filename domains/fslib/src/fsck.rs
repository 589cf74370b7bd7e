//! An independent consistency checker for xv6-format images, and a raw tree extractor.
//!
//! Nothing here shares code with the file system proper (cache, log, inodes,
//! directories): it reads the image as a byte slice through [`crate::layout`] only, so
//! it can judge what the file system wrote, and what the real xv6 `mkfs` wrote.
//!
//! * [`check`] returns one human-readable line per problem; an empty vector means the
//!   image is consistent.
//! * [`check_report`] returns the same problems plus counts and notes ([`Report`]).
//! * [`tree`] lists every path reachable from the root with its type and, for regular
//!   files, its contents (used by crash-consistency tests to compare images).
//!
//! Both never panic and always terminate, whatever the bytes: every block number is
//! range-checked before it is read, every loop is bounded by the image's size, indirect
//! blocks are entered at most once, and the directory walk marks what it has visited.
//!
//! # What counts as a problem
//!
//! * Superblock: unknown magic, an image shorter than `size` blocks, `nblocks > size`,
//!   regions out of order or overlapping (boot and superblock, log, inodes, bitmap,
//!   data, where the data area is the last `nblocks` blocks), fewer inode blocks than
//!   `ninodes` needs, a bitmap too small to cover `size` blocks, no log header, or a
//!   log area smaller than the header plus [`LOGBLOCKS`] on a stock image (xv6 logs up
//!   to that many blocks whatever `nlog` says) or plus [`MAXOPBLOCKS`] on the large
//!   variant (Frond's minimum). The structural ones end the check: nothing past them
//!   can be located.
//! * Log header: a count above what the log holds (`nlog - 1`, and at most
//!   [`LOGBLOCKS`] on a stock image, [`LOG_MAX`](crate::layout::LOG_MAX) on the large variant), or a home block
//!   inside the boot block, the superblock or the log area, or past `size`. A *valid*
//!   non-empty header is not a problem: the image holds committed transactions that
//!   mount will install (in log order: a block logged twice gets its later copy). The check then judges the image as it will be after that replay, and
//!   says so in [`Report::notes`] and [`Report::log_pending`].
//! * Inodes: a type other than 0, `T_DIR`, `T_FILE`, `T_DEVICE`; a free inode (type 0)
//!   with a non-zero link count; a block address (direct, indirect, or in an indirect
//!   block) outside the data area; a block referenced twice (by two inodes, or twice by
//!   one); a data block mapped at or past the block that holds byte `size` (xv6
//!   allocates on write, so it never leaves one there); a size above the variant's
//!   largest file, or above the image's length; a directory whose size is not a multiple of 16. Holes (unmapped
//!   blocks below `size`) are not problems: xv6 reads and fills them as zeros, and the
//!   real mkfs leaves one when it rounds the root directory's size up.
//! * Bitmap: a metadata block (everything before the data area) marked free; a data
//!   block that an allocated inode uses but the bitmap marks free; a data block marked
//!   in use that no inode references ("leaked"). Blocks of an unreachable inode count
//!   as used: the inode is the one problem reported.
//! * Directories: the root (inode 1) not a directory; a first entry that is not `.`
//!   naming the directory itself, a second that is not `..` naming its parent (the
//!   root's parent is the root); other entries named `.` or `..`; entries naming an
//!   inode out of range, free, or of invalid type; empty names, names with `/`, names
//!   not NUL-padded, duplicate names in one directory; a directory reachable twice (a
//!   loop or a hard link to a directory).
//! * Link counts: an inode whose `nlink` differs from the number of directory entries
//!   that name it (every entry but `.` counts, `..` included, exactly as xv6 counts);
//!   a reachable inode with `nlink` 0; an allocated inode not reachable from the root
//!   (an orphan).
//!
//! At most [`MAX_PROBLEMS`] lines are listed; a last line then says how many more
//! there were. Runs of blocks with the same bitmap problem are reported as one line.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::layout::{
    u32_at, DInode, Dirent, LogHeader, SuperBlock, Variant, BPB, BSIZE, DINODE_SIZE,
    DIRENT_SIZE, DIRSIZ, FSMAGIC, FSMAGIC_LARGE, IPB, LOGBLOCKS, MAXOPBLOCKS, NINDIRECT, ROOTINO, T_DEVICE,
    T_DIR, T_FILE,
};

/// Problem lines listed at most; the rest are counted in one last line.
pub const MAX_PROBLEMS: usize = 500;

/// What [`check_report`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The format, if the magic was recognised.
    pub variant: Option<Variant>,
    /// The superblock, if the image was long enough to hold one.
    pub superblock: Option<SuperBlock>,
    /// Allocated inodes (type `T_DIR`, `T_FILE` or `T_DEVICE`), and of them:
    pub inodes: u32,
    pub dirs: u32,
    pub files: u32,
    pub devices: u32,
    /// Blocks in the data area (the last `nblocks` blocks).
    pub data_blocks: u32,
    /// Data-area blocks referenced by allocated inodes (data and indirect blocks).
    pub blocks_used: u32,
    /// Data-area blocks the bitmap marks free.
    pub blocks_free: u32,
    /// Blocks of a committed transaction still in the log (valid header only); the
    /// rest of the report describes the image with them installed.
    pub log_pending: u32,
    /// Observations that are not problems.
    pub notes: Vec<String>,
    /// One line per problem; empty = consistent.
    pub problems: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The problems of `img`, one line each; empty when the image is consistent.
pub fn check(img: &[u8]) -> Vec<String> {
    check_report(img).problems
}

/// Checks `img` and returns counts, notes and problems.
pub fn check_report(img: &[u8]) -> Report {
    let mut p = Sink::default();
    let mut r = Report::default();
    if img.len() >= 2 * BSIZE {
        let sb = SuperBlock::decode(&img[BSIZE..2 * BSIZE]);
        r.superblock = Some(sb);
        r.variant = Variant::from_magic(sb.magic);
    }
    let Some(g) = Geo::parse(img, &mut p) else {
        r.problems = p.finish();
        return r;
    };
    r.data_blocks = g.size - g.datastart;
    let replayed = match replay(img, &g) {
        Ok(None) => None,
        Ok(Some((n, copy))) => {
            r.log_pending = n;
            r.notes.push(format!(
                "log holds {n} committed blocks not yet installed; checked as if replayed"
            ));
            Some(copy)
        }
        Err(lines) => {
            for l in lines {
                p.push(l);
            }
            None
        }
    };
    let img = replayed.as_deref().unwrap_or(img);
    Checker::new(img, g, &mut p, &mut r).run();
    r.problems = p.finish();
    r
}

/// Installs a committed transaction of `img`'s log, as mount would.
///
/// `Ok(None)`: the log is empty. `Ok(Some(image))`: a copy with the logged blocks
/// installed (the header is left as it was). `Err`: the superblock or the log header
/// is invalid.
pub fn replay_log(img: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut p = Sink::default();
    let g = Geo::parse(img, &mut p).ok_or_else(|| p.finish().join("; "))?;
    match replay(img, &g) {
        Ok(x) => Ok(x.map(|(_, copy)| copy)),
        Err(lines) => Err(lines.join("; ")),
    }
}

/// One entry of [`tree`]: path from the root (`/` for the root itself), inode type,
/// and contents (regular files only; empty for directories and devices).
pub type TreeEntry = (String, u16, Vec<u8>);

/// Every path reachable from the root, depth-first with each directory's entries
/// sorted by name (as bytes), the root first as `/`. `.` and `..` are not listed; a
/// file with several names appears under each. Names that are not UTF-8 are converted
/// lossily. A committed log is installed first (in a copy), as mount would.
///
/// Fails on what makes the tree undefined: a bad superblock or log header, a root that
/// is not a directory, an entry naming an inode out of range, free or of invalid type,
/// a directory reachable twice, a block address outside the data area, a file larger
/// than the variant allows or than the image itself.
pub fn tree(img: &[u8]) -> Result<Vec<TreeEntry>, String> {
    let mut p = Sink::default();
    let g = Geo::parse(img, &mut p).ok_or_else(|| p.finish().join("; "))?;
    let replayed = replay(img, &g).map_err(|l| l.join("; "))?;
    let img = match &replayed {
        Some((_, copy)) => copy.as_slice(),
        None => img,
    };
    let root = g.inode(img, ROOTINO);
    if root.typ != T_DIR {
        return Err(format!("root inode {ROOTINO} is not a directory (type {})", root.typ));
    }
    let mut out = Vec::new();
    let mut seen_dir = vec![false; g.ninodes as usize];
    seen_dir[ROOTINO as usize] = true;
    // Pre-order walk: a stack of (path, inum), children pushed in reverse name order.
    let mut stack: Vec<(String, u32)> = vec![(String::from("/"), ROOTINO)];
    while let Some((path, inum)) = stack.pop() {
        let d = g.inode(img, inum);
        let data = read_contents(img, &g, inum, &d)?;
        if d.typ != T_DIR {
            let data = if d.typ == T_FILE { data } else { Vec::new() };
            out.push((path, d.typ, data));
            continue;
        }
        let mut kids: Vec<(Vec<u8>, u32)> = Vec::new();
        for chunk in data.chunks_exact(DIRENT_SIZE) {
            let de = Dirent::decode(chunk);
            if de.inum == 0 || de.name() == b"." || de.name() == b".." {
                continue;
            }
            let t = de.inum as u32;
            let name = String::from_utf8_lossy(de.name()).to_string();
            if t >= g.ninodes {
                return Err(format!("{} names inode {t}, past ninodes {}", join_path(&path, &name), g.ninodes));
            }
            let ti = g.inode(img, t);
            if !valid_type(ti.typ) {
                return Err(format!("{} names inode {t} of type {}", join_path(&path, &name), ti.typ));
            }
            if ti.typ == T_DIR {
                if seen_dir[t as usize] {
                    return Err(format!(
                        "directory inode {t} is reachable twice (again as {})",
                        join_path(&path, &name)
                    ));
                }
                seen_dir[t as usize] = true;
            }
            kids.push((de.name().to_vec(), t));
        }
        kids.sort_by(|a, b| a.0.cmp(&b.0));
        out.push((path.clone(), T_DIR, Vec::new()));
        for (name, t) in kids.into_iter().rev() {
            stack.push((join_path(&path, &String::from_utf8_lossy(&name)), t));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Geometry

/// A validated superblock: every region lies inside the image, in order.
#[derive(Clone, Copy)]
struct Geo {
    variant: Variant,
    size: u32,
    ninodes: u32,
    nlog: u32,
    logstart: u32,
    inodestart: u32,
    bmapstart: u32,
    /// First block of the data area: `size - nblocks`.
    datastart: u32,
}

impl Geo {
    fn parse(img: &[u8], p: &mut Sink) -> Option<Geo> {
        if img.len() < 2 * BSIZE {
            p.push(format!(
                "image is {} bytes, too short to hold a superblock (needs {})",
                img.len(),
                2 * BSIZE
            ));
            return None;
        }
        let sb = SuperBlock::decode(&img[BSIZE..2 * BSIZE]);
        let Some(variant) = Variant::from_magic(sb.magic) else {
            p.push(format!(
                "superblock magic {:#010x} is neither {FSMAGIC:#010x} (xv6) nor {FSMAGIC_LARGE:#010x} (large-file variant)",
                sb.magic
            ));
            return None;
        };
        let mut ok = true;
        let img_blocks = (img.len() / BSIZE) as u64;
        let size = sb.size as u64;
        let nblocks = sb.nblocks as u64;
        let (logstart, nlog) = (sb.logstart as u64, sb.nlog as u64);
        let (inodestart, bmapstart) = (sb.inodestart as u64, sb.bmapstart as u64);
        let ninodes = sb.ninodes as u64;
        if size > img_blocks {
            p.push(format!(
                "superblock size {size} blocks exceeds the image ({img_blocks} whole blocks of {BSIZE} bytes)"
            ));
            ok = false;
        }
        if nblocks > size {
            p.push(format!("superblock nblocks {nblocks} exceeds size {size}"));
            ok = false;
        }
        let datastart = size.saturating_sub(nblocks);
        if logstart < 2 {
            p.push(format!("log starts at block {logstart}, inside the boot block or the superblock"));
            ok = false;
        }
        if nlog == 0 {
            p.push("log area is empty (nlog 0): no room for the log header".to_string());
            ok = false;
        } else if variant == Variant::Stock && nlog < LOGBLOCKS as u64 + 1 {
            p.push(format!(
                "log area of {nlog} blocks is smaller than its header plus the {LOGBLOCKS} blocks one transaction may log"
            ));
        } else if nlog < MAXOPBLOCKS as u64 + 1 {
            p.push(format!(
                "log area of {nlog} blocks is smaller than its header plus the {MAXOPBLOCKS} blocks one operation may log"
            ));
        }
        if logstart + nlog > inodestart {
            p.push(format!(
                "log area [{logstart}, {}) overlaps the inode area starting at {inodestart}",
                logstart + nlog
            ));
            ok = false;
        }
        if ninodes < 2 {
            p.push(format!("ninodes {ninodes} leaves no room for the root inode {ROOTINO}"));
            ok = false;
        }
        let iblocks = ninodes.div_ceil(IPB as u64);
        if inodestart + iblocks > bmapstart {
            p.push(format!(
                "{ninodes} inodes need {iblocks} inode blocks from block {inodestart}, but the bitmap starts at {bmapstart}"
            ));
            ok = false;
        }
        let bblocks = size.div_ceil(BPB as u64);
        if bmapstart + bblocks > datastart {
            p.push(format!(
                "the bitmap at block {bmapstart} needs {bblocks} blocks to cover {size} blocks, but the data area (size - nblocks) starts at {datastart}"
            ));
            ok = false;
        }
        if !ok {
            return None;
        }
        // Every value is now at most `size`, which fits in u32.
        Some(Geo {
            variant,
            size: sb.size,
            ninodes: sb.ninodes,
            nlog: sb.nlog,
            logstart: sb.logstart,
            inodestart: sb.inodestart,
            bmapstart: sb.bmapstart,
            datastart: datastart as u32,
        })
    }

    fn in_data(&self, b: u32) -> bool {
        b >= self.datastart && b < self.size
    }

    /// Inode `inum` (< `ninodes`, so its block lies in the inode area).
    fn inode(&self, img: &[u8], inum: u32) -> DInode {
        let b = self.inodestart as usize + inum as usize / IPB;
        let off = b * BSIZE + (inum as usize % IPB) * DINODE_SIZE;
        match img.get(off..off + DINODE_SIZE) {
            Some(s) => DInode::decode(s),
            None => DInode::default(),
        }
    }

    fn bitmap_bit(&self, img: &[u8], b: u32) -> bool {
        let blk = self.bmapstart as usize + b as usize / BPB;
        let bit = b as usize % BPB;
        img.get(blk * BSIZE + bit / 8).is_some_and(|byte| byte & (1 << (bit % 8)) != 0)
    }

    fn max_file_bytes(&self) -> u64 {
        self.variant.max_file_blocks() * BSIZE as u64
    }
}

fn block(img: &[u8], b: u32) -> Option<&[u8]> {
    let at = b as usize * BSIZE;
    img.get(at..at + BSIZE)
}

fn valid_type(t: u16) -> bool {
    t == T_DIR || t == T_FILE || t == T_DEVICE
}

fn type_name(t: u16) -> &'static str {
    match t {
        T_DIR => "directory",
        T_FILE => "file",
        T_DEVICE => "device",
        _ => "invalid",
    }
}

fn join_path(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Validates the log header; on a valid non-empty one returns its count and a copy of
/// the image with the logged blocks installed.
fn replay(img: &[u8], g: &Geo) -> Result<Option<(u32, Vec<u8>)>, Vec<String>> {
    let Some(hb) = block(img, g.logstart) else {
        return Err(vec![format!("log header block {} is outside the image", g.logstart)]);
    };
    let h = LogHeader::decode(hb);
    let room = core::cmp::min(g.variant.max_log(), g.nlog - 1);
    if h.n > room {
        return Err(vec![format!(
            "log header counts {} blocks, but the log has room for {room}",
            h.n
        )]);
    }
    let mut bad = Vec::new();
    for (i, &home) in h.block[..h.n as usize].iter().enumerate() {
        if home < g.inodestart || home >= g.size {
            bad.push(format!(
                "log entry {i} names home block {home}, outside the inode, bitmap and data areas [{}, {})",
                g.inodestart, g.size
            ));
        }
    }
    if !bad.is_empty() {
        return Err(bad);
    }
    if h.n == 0 {
        return Ok(None);
    }
    let mut copy = img.to_vec();
    for (i, &home) in h.block[..h.n as usize].iter().enumerate() {
        let src = (g.logstart as usize + 1 + i) * BSIZE;
        let dst = home as usize * BSIZE;
        // Both lie inside the image: the log area and `home` are below `size`.
        if src + BSIZE <= copy.len() && dst + BSIZE <= copy.len() {
            copy.copy_within(src..src + BSIZE, dst);
        }
    }
    Ok(Some((h.n, copy)))
}

// ---------------------------------------------------------------------------------
// Walking an inode's blocks

#[derive(Clone, Copy)]
enum Kind {
    /// A data block at this file block number.
    Data(u64),
    /// An indirect block (singly, doubly, or a doubly's second level).
    Indirect,
}

/// Calls `f` for every non-zero address of `d`, in file order; an indirect block is
/// entered only when `f` returns true for it (and it lies inside the image). Bounded:
/// at most 13 + 256 + 256 * 257 calls.
fn walk(img: &[u8], g: &Geo, d: &DInode, f: &mut dyn FnMut(u32, Kind) -> bool) {
    let nd = g.variant.ndirect();
    for (i, &a) in d.addrs[..nd].iter().enumerate() {
        if a != 0 {
            f(a, Kind::Data(i as u64));
        }
    }
    let single = d.addrs[nd];
    if single != 0 && f(single, Kind::Indirect) {
        if let Some(b) = block(img, single) {
            for j in 0..NINDIRECT {
                let a = u32_at(b, j * 4);
                if a != 0 {
                    f(a, Kind::Data((nd + j) as u64));
                }
            }
        }
    }
    if g.variant == Variant::Large {
        let double = d.addrs[nd + 1];
        if double != 0 && f(double, Kind::Indirect) {
            if let Some(b) = block(img, double) {
                for j in 0..NINDIRECT {
                    let m = u32_at(b, j * 4);
                    if m == 0 || !f(m, Kind::Indirect) {
                        continue;
                    }
                    let Some(mb) = block(img, m) else { continue };
                    for k in 0..NINDIRECT {
                        let a = u32_at(mb, k * 4);
                        if a != 0 {
                            f(a, Kind::Data((nd + NINDIRECT + j * NINDIRECT + k) as u64));
                        }
                    }
                }
            }
        }
    }
}

/// The bytes of inode `inum` up to its size, holes as zeros; for [`tree`].
fn read_contents(img: &[u8], g: &Geo, inum: u32, d: &DInode) -> Result<Vec<u8>, String> {
    let size = d.size as u64;
    if size > g.max_file_bytes() {
        return Err(format!("inode {inum}: size {size} exceeds the largest file ({})", g.max_file_bytes()));
    }
    if size > img.len() as u64 {
        return Err(format!("inode {inum}: size {size} exceeds the image"));
    }
    let mut out = vec![0u8; size as usize];
    let mut err = None;
    walk(img, g, d, &mut |a, kind| {
        if !g.in_data(a) {
            if err.is_none() {
                err = Some(format!(
                    "inode {inum}: block address {a} is outside the data area [{}, {})",
                    g.datastart, g.size
                ));
            }
            return false;
        }
        if let Kind::Data(k) = kind {
            let at = k.saturating_mul(BSIZE as u64);
            if at < size {
                let n = core::cmp::min(BSIZE as u64, size - at) as usize;
                if let Some(b) = block(img, a) {
                    out[at as usize..at as usize + n].copy_from_slice(&b[..n]);
                }
            }
        }
        true
    });
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

// ---------------------------------------------------------------------------------
// The checker

#[derive(Default)]
struct Sink {
    lines: Vec<String>,
    dropped: usize,
}

impl Sink {
    fn push(&mut self, s: String) {
        if self.lines.len() < MAX_PROBLEMS {
            self.lines.push(s);
        } else {
            self.dropped += 1;
        }
    }
    fn finish(mut self) -> Vec<String> {
        if self.dropped > 0 {
            let n = self.dropped;
            self.lines.push(format!("... and {n} further problems not listed"));
        }
        self.lines
    }
}

struct Checker<'a> {
    img: &'a [u8],
    g: Geo,
    p: &'a mut Sink,
    r: &'a mut Report,
    /// The inodes 0..ninodes, as read once.
    inodes: Vec<DInode>,
    /// Which inode references each block (0 = none), indexed by block number.
    owner: Vec<u32>,
    /// For directories: their valid data blocks as (file block, address), in order.
    dir_blocks: BTreeMap<u32, Vec<(u64, u32)>>,
}

impl<'a> Checker<'a> {
    fn new(img: &'a [u8], g: Geo, p: &'a mut Sink, r: &'a mut Report) -> Self {
        let inodes = (0..g.ninodes).map(|i| g.inode(img, i)).collect();
        Checker { img, g, p, r, inodes, owner: vec![0; g.size as usize], dir_blocks: BTreeMap::new() }
    }

    fn run(mut self) {
        self.inodes_pass();
        self.directory_pass();
        self.bitmap_pass();
    }

    fn inodes_pass(&mut self) {
        let g = self.g;
        for inum in 1..g.ninodes {
            let d = self.inodes[inum as usize];
            if d.typ == 0 {
                if d.nlink != 0 {
                    self.p.push(format!("inode {inum} is free (type 0) but has nlink {}", d.nlink));
                }
                continue;
            }
            if !valid_type(d.typ) {
                self.p.push(format!("inode {inum} has invalid type {}", d.typ));
                continue;
            }
            self.r.inodes += 1;
            match d.typ {
                T_DIR => self.r.dirs += 1,
                T_FILE => self.r.files += 1,
                _ => self.r.devices += 1,
            }
            let size = d.size as u64;
            if size > g.max_file_bytes() {
                self.p.push(format!(
                    "inode {inum}: size {size} exceeds the largest {:?}-format file ({} bytes)",
                    g.variant,
                    g.max_file_bytes()
                ));
            } else if size > self.img.len() as u64 {
                self.p.push(format!(
                    "inode {inum}: size {size} exceeds the whole image ({} bytes)",
                    self.img.len()
                ));
            }
            if d.typ == T_DIR && !size.is_multiple_of(DIRENT_SIZE as u64) {
                self.p.push(format!(
                    "directory inode {inum}: size {size} is not a multiple of {DIRENT_SIZE}"
                ));
            }
            let need = size.div_ceil(BSIZE as u64);
            let is_dir = d.typ == T_DIR;
            let mut mine = Vec::new();
            let (p, owner, r) = (&mut *self.p, &mut self.owner, &mut *self.r);
            walk(self.img, &g, &d, &mut |a, kind| {
                let what = match kind {
                    Kind::Data(k) => format!("file block {k}"),
                    Kind::Indirect => "indirect block".to_string(),
                };
                if !g.in_data(a) {
                    p.push(format!(
                        "inode {inum}: {what} at block {a} is outside the data area [{}, {})",
                        g.datastart, g.size
                    ));
                    return false;
                }
                let o = owner[a as usize];
                if o == inum {
                    p.push(format!("inode {inum}: block {a} ({what}) is referenced twice by it"));
                    return false;
                }
                if o != 0 {
                    p.push(format!(
                        "block {a} is referenced twice: by inode {o} and by inode {inum} ({what})"
                    ));
                    return false;
                }
                owner[a as usize] = inum;
                r.blocks_used += 1;
                if let Kind::Data(k) = kind {
                    if k >= need {
                        p.push(format!(
                            "inode {inum}: {what} (block {a}) is mapped past its size {size}"
                        ));
                    }
                    if is_dir {
                        mine.push((k, a));
                    }
                }
                true
            });
            if is_dir {
                self.dir_blocks.insert(inum, mine);
            }
        }
    }

    /// The used entries of directory `inum` as (byte offset, entry), up to its size.
    fn entries(&self, inum: u32) -> Vec<(u64, Dirent)> {
        let size = self.inodes[inum as usize].size as u64;
        let mut out = Vec::new();
        let Some(blocks) = self.dir_blocks.get(&inum) else { return out };
        for &(k, a) in blocks {
            let Some(b) = block(self.img, a) else { continue };
            for (slot, chunk) in b.chunks_exact(DIRENT_SIZE).enumerate() {
                let off = k * BSIZE as u64 + (slot * DIRENT_SIZE) as u64;
                if off + DIRENT_SIZE as u64 > size {
                    break;
                }
                let de = Dirent::decode(chunk);
                if de.inum != 0 {
                    out.push((off, de));
                }
            }
        }
        out
    }

    fn directory_pass(&mut self) {
        let n = self.g.ninodes as usize;
        let root = self.inodes[ROOTINO as usize];
        if root.typ != T_DIR {
            self.p.push(format!(
                "root inode {ROOTINO} is not a directory (type {}); the tree cannot be checked",
                root.typ
            ));
            return;
        }
        let mut refs = vec![0u32; n];
        let mut reached = vec![false; n];
        let mut path_of: BTreeMap<u32, String> = BTreeMap::new();
        reached[ROOTINO as usize] = true;
        path_of.insert(ROOTINO, String::from("/"));
        let mut stack: Vec<(u32, u32, String)> = vec![(ROOTINO, ROOTINO, String::from("/"))];
        while let Some((dir, parent, path)) = stack.pop() {
            let mut names: BTreeSet<[u8; DIRSIZ]> = BTreeSet::new();
            let (mut dot, mut dotdot) = (false, false);
            for (off, de) in self.entries(dir) {
                let name = de.name();
                let shown = String::from_utf8_lossy(name).to_string();
                let at = format!("directory {path} (inode {dir}), entry '{shown}' at offset {off}");
                if !names.insert(de.name) {
                    self.p.push(format!("{at}: duplicate name"));
                }
                if name.is_empty() {
                    self.p.push(format!("{at}: empty name"));
                } else if name.contains(&b'/') {
                    self.p.push(format!("{at}: name contains '/'"));
                }
                if de.name[name.len()..].iter().any(|&c| c != 0) {
                    self.p.push(format!("{at}: name is not NUL-padded"));
                }
                let t = de.inum as u32;
                if name == b"." {
                    if off != 0 {
                        self.p.push(format!("{at}: '.' anywhere but offset 0"));
                    } else if t != dir {
                        self.p.push(format!("{at}: '.' names inode {t}, not the directory itself"));
                    } else {
                        dot = true;
                    }
                    continue; // never counted in nlink
                }
                if name == b".." {
                    if off != DIRENT_SIZE as u64 {
                        self.p.push(format!("{at}: '..' anywhere but offset {DIRENT_SIZE}"));
                        continue;
                    }
                    dotdot = true;
                    if t != parent {
                        self.p.push(format!("{at}: '..' names inode {t}, not the parent {parent}"));
                    }
                }
                if t >= self.g.ninodes {
                    self.p.push(format!("{at}: names inode {t}, past ninodes {}", self.g.ninodes));
                    continue;
                }
                let tt = self.inodes[t as usize].typ;
                if tt == 0 {
                    self.p.push(format!("{at}: names free inode {t}"));
                    continue;
                }
                if !valid_type(tt) {
                    self.p.push(format!("{at}: names inode {t} of invalid type {tt}"));
                    continue;
                }
                refs[t as usize] += 1;
                if name == b".." {
                    continue;
                }
                let child = join_path(&path, &shown);
                if tt == T_DIR {
                    if reached[t as usize] {
                        let first = path_of.get(&t).cloned().unwrap_or_default();
                        self.p.push(format!(
                            "directory inode {t} is reachable twice, as {first} and as {child} (a loop or a hard link to a directory)"
                        ));
                        continue;
                    }
                    stack.push((t, dir, child.clone()));
                }
                if !reached[t as usize] {
                    reached[t as usize] = true;
                    path_of.insert(t, child);
                }
            }
            if !dot {
                self.p.push(format!("directory {path} (inode {dir}): no '.' entry naming itself at offset 0"));
            }
            if !dotdot {
                self.p.push(format!("directory {path} (inode {dir}): no '..' entry at offset {DIRENT_SIZE}"));
            }
        }
        for inum in 1..self.g.ninodes {
            let d = self.inodes[inum as usize];
            if !valid_type(d.typ) {
                continue;
            }
            let i = inum as usize;
            if !reached[i] {
                self.p.push(format!(
                    "inode {inum} ({}, nlink {}, size {}) is allocated but not reachable from the root",
                    type_name(d.typ),
                    d.nlink,
                    d.size
                ));
                continue;
            }
            let path = path_of.get(&inum).map(String::as_str).unwrap_or("?");
            if d.nlink == 0 {
                self.p.push(format!("inode {inum} ({path}) is reachable but has nlink 0"));
            } else if d.nlink as u32 != refs[i] {
                self.p.push(format!(
                    "inode {inum} ({path}) has nlink {} but {} directory entries name it",
                    d.nlink, refs[i]
                ));
            }
        }
    }

    fn bitmap_pass(&mut self) {
        let g = self.g;
        let mut meta_free = Vec::new();
        let mut unmarked = Vec::new();
        let mut leaked = Vec::new();
        for b in 0..g.size {
            let bit = g.bitmap_bit(self.img, b);
            if b < g.datastart {
                if !bit {
                    meta_free.push(b);
                }
                continue;
            }
            if !bit {
                self.r.blocks_free += 1;
            }
            let owned = self.owner[b as usize] != 0;
            if owned && !bit {
                unmarked.push(b);
            } else if !owned && bit {
                leaked.push(b);
            }
        }
        for (lo, hi) in runs(&meta_free) {
            self.p.push(format!("{}: metadata, but marked free in the bitmap", blocks(lo, hi)));
        }
        for (lo, hi) in runs(&unmarked) {
            let o = self.owner[lo as usize];
            self.p.push(format!(
                "{}: in use (first by inode {o}) but marked free in the bitmap",
                blocks(lo, hi)
            ));
        }
        for (lo, hi) in runs(&leaked) {
            self.p.push(format!(
                "{}: marked in use in the bitmap but referenced by no inode (leaked)",
                blocks(lo, hi)
            ));
        }
    }
}

/// Runs of consecutive numbers in an increasing list, as inclusive (first, last).
fn runs(v: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &b in v {
        match out.last_mut() {
            Some((_, hi)) if *hi + 1 == b => *hi = b,
            _ => out.push((b, b)),
        }
    }
    out
}

fn blocks(lo: u32, hi: u32) -> String {
    if lo == hi {
        format!("block {lo}")
    } else {
        format!("blocks {lo}..={hi}")
    }
}

#[cfg(test)]
#[path = "fsck_tests.rs"]
mod tests;
