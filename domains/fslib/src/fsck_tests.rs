//! Tests of the checker: hand-built images (a small builder below, independent of the
//! file system's own mkfs), one corruption per problem class, seeded random
//! corruptions, and images made by the real xv6-riscv mkfs (see `testdata/README.md`).

use super::*;
use crate::layout::*;
use std::io::Read;

// ---------------------------------------------------------------------------------
// A tiny image builder, laid out the way xv6's mkfs lays images out.

#[derive(Clone)]
struct Img {
    b: Vec<u8>,
    sb: SuperBlock,
    v: Variant,
    next_block: u32,
    next_inode: u32,
}

impl Img {
    fn new(v: Variant, size: u32, ninodes: u32) -> Img {
        let nlog = LOGBLOCKS as u32 + 1;
        let ninodeblocks = ninodes / IPB as u32 + 1;
        let nbitmap = size / BPB as u32 + 1;
        let nmeta = 2 + nlog + ninodeblocks + nbitmap;
        let sb = SuperBlock {
            magic: v.magic(),
            size,
            nblocks: size - nmeta,
            ninodes,
            nlog,
            logstart: 2,
            inodestart: 2 + nlog,
            bmapstart: 2 + nlog + ninodeblocks,
        };
        let mut img = Img { b: vec![0; size as usize * BSIZE], sb, v, next_block: nmeta, next_inode: 1 };
        sb.encode(img.blk(1));
        for b in 0..nmeta {
            img.mark(b, true);
        }
        let root = img.ialloc(T_DIR);
        assert_eq!(root, ROOTINO);
        img.add_entry(root, b".", root);
        img.add_entry(root, b"..", root);
        img.set(root, |d| d.nlink = 1);
        img
    }
    fn blk(&mut self, b: u32) -> &mut [u8] {
        &mut self.b[b as usize * BSIZE..(b as usize + 1) * BSIZE]
    }
    fn mark(&mut self, b: u32, on: bool) {
        let at = self.sb.bblock(b) as usize * BSIZE + (b as usize % BPB) / 8;
        let bit = 1u8 << (b % 8);
        if on {
            self.b[at] |= bit;
        } else {
            self.b[at] &= !bit;
        }
    }
    fn alloc(&mut self) -> u32 {
        let b = self.next_block;
        assert!(b < self.sb.size, "builder image full");
        self.next_block += 1;
        self.mark(b, true);
        b
    }
    fn inode(&self, inum: u32) -> DInode {
        let at = self.sb.iblock(inum) as usize * BSIZE + (inum as usize % IPB) * DINODE_SIZE;
        DInode::decode(&self.b[at..at + DINODE_SIZE])
    }
    fn put(&mut self, inum: u32, d: &DInode) {
        let at = self.sb.iblock(inum) as usize * BSIZE + (inum as usize % IPB) * DINODE_SIZE;
        d.encode(&mut self.b[at..at + DINODE_SIZE]);
    }
    fn set(&mut self, inum: u32, f: impl FnOnce(&mut DInode)) {
        let mut d = self.inode(inum);
        f(&mut d);
        self.put(inum, &d);
    }
    fn ialloc(&mut self, typ: u16) -> u32 {
        let inum = self.next_inode;
        self.next_inode += 1;
        self.put(inum, &DInode { typ, ..Default::default() });
        inum
    }
    fn indirect_slot(&mut self, ind: u32, i: usize) -> u32 {
        let at = ind as usize * BSIZE + i * 4;
        let mut a = u32_at(&self.b, at);
        if a == 0 {
            a = self.alloc();
            put_u32(&mut self.b, at, a);
        }
        a
    }
    /// The block holding file block `fbn` of `inum`, allocated if needed (xv6's bmap).
    fn bmap(&mut self, inum: u32, fbn: usize) -> u32 {
        let mut d = self.inode(inum);
        let nd = self.v.ndirect();
        let a = if fbn < nd {
            if d.addrs[fbn] == 0 {
                d.addrs[fbn] = self.alloc();
            }
            d.addrs[fbn]
        } else if fbn < nd + NINDIRECT {
            if d.addrs[nd] == 0 {
                d.addrs[nd] = self.alloc();
            }
            self.put(inum, &d);
            return self.indirect_slot(d.addrs[nd], fbn - nd);
        } else {
            assert_eq!(self.v, Variant::Large);
            if d.addrs[nd + 1] == 0 {
                d.addrs[nd + 1] = self.alloc();
            }
            self.put(inum, &d);
            let k = fbn - nd - NINDIRECT;
            let mid = self.indirect_slot(d.addrs[nd + 1], k / NINDIRECT);
            return self.indirect_slot(mid, k % NINDIRECT);
        };
        self.put(inum, &d);
        a
    }
    fn append(&mut self, inum: u32, data: &[u8]) {
        let mut off = self.inode(inum).size as usize;
        let mut rest = data;
        while !rest.is_empty() {
            let fbn = off / BSIZE;
            let b = self.bmap(inum, fbn);
            let within = off % BSIZE;
            let n = core::cmp::min(rest.len(), BSIZE - within);
            self.blk(b)[within..within + n].copy_from_slice(&rest[..n]);
            off += n;
            rest = &rest[n..];
        }
        self.set(inum, |d| d.size = off as u32);
    }
    fn add_entry(&mut self, dir: u32, name: &[u8], inum: u32) {
        let mut raw = [0u8; DIRENT_SIZE];
        raw[0..2].copy_from_slice(&(inum as u16).to_le_bytes());
        raw[2..2 + name.len()].copy_from_slice(name);
        self.append(dir, &raw);
    }
    fn file(&mut self, dir: u32, name: &str, data: &[u8]) -> u32 {
        let inum = self.ialloc(T_FILE);
        self.set(inum, |d| d.nlink = 1);
        self.add_entry(dir, name.as_bytes(), inum);
        self.append(inum, data);
        inum
    }
    fn link(&mut self, dir: u32, name: &str, inum: u32) {
        self.add_entry(dir, name.as_bytes(), inum);
        self.set(inum, |d| d.nlink += 1);
    }
    fn mkdir(&mut self, parent: u32, name: &str) -> u32 {
        let inum = self.ialloc(T_DIR);
        self.set(inum, |d| d.nlink = 1);
        self.add_entry(inum, b".", inum);
        self.add_entry(inum, b"..", parent);
        self.set(parent, |d| d.nlink += 1);
        self.add_entry(parent, name.as_bytes(), inum);
        inum
    }
    fn device(&mut self, dir: u32, name: &str, major: u16, minor: u16) -> u32 {
        let inum = self.ialloc(T_DEVICE);
        self.set(inum, |d| {
            d.nlink = 1;
            d.major = major;
            d.minor = minor;
        });
        self.add_entry(dir, name.as_bytes(), inum);
        inum
    }
    /// Byte offset of entry `slot` of directory `dir` (first block only).
    fn entry_at(&self, dir: u32, slot: usize) -> usize {
        self.inode(dir).addrs[0] as usize * BSIZE + slot * DIRENT_SIZE
    }
    fn put_sb(&mut self, f: impl FnOnce(&mut SuperBlock)) {
        let mut sb = self.sb;
        f(&mut sb);
        sb.encode(&mut self.b[BSIZE..2 * BSIZE]);
    }
}

fn pattern(n: usize, mul: usize, add: usize, modulo: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * mul + add) % modulo) as u8).collect()
}

const README: &[u8] = b"a small text file\n";

// Inode numbers of the sample image.
const I_README: u32 = 2;
const I_DIR: u32 = 3;
const I_NESTED: u32 = 4;
const I_DEEPER: u32 = 5;
const I_BIG: u32 = 6;
const I_CONSOLE: u32 = 7;

/// Root with README (also linked as dir/hard), dir/{nested, deeper/}, big (20 blocks,
/// through the indirect block) and a device.
fn sample(v: Variant) -> Img {
    let mut m = Img::new(v, 400, 64);
    assert_eq!(m.file(ROOTINO, "README", README), I_README);
    assert_eq!(m.mkdir(ROOTINO, "dir"), I_DIR);
    assert_eq!(m.file(I_DIR, "nested", b"nested contents"), I_NESTED);
    assert_eq!(m.mkdir(I_DIR, "deeper"), I_DEEPER);
    assert_eq!(m.file(ROOTINO, "big", &pattern(20 * BSIZE + 100, 7, 3, 251)), I_BIG);
    assert_eq!(m.device(ROOTINO, "console", 1, 0), I_CONSOLE);
    m.link(I_DIR, "hard", I_README);
    m
}

fn expected_sample_tree() -> Vec<TreeEntry> {
    vec![
        ("/".into(), T_DIR, vec![]),
        ("/README".into(), T_FILE, README.to_vec()),
        ("/big".into(), T_FILE, pattern(20 * BSIZE + 100, 7, 3, 251)),
        ("/console".into(), T_DEVICE, vec![]),
        ("/dir".into(), T_DIR, vec![]),
        ("/dir/deeper".into(), T_DIR, vec![]),
        ("/dir/hard".into(), T_FILE, README.to_vec()),
        ("/dir/nested".into(), T_FILE, b"nested contents".to_vec()),
    ]
}

#[track_caller]
fn assert_has(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|l| l.contains(needle)),
        "no problem line contains {needle:?}; lines: {problems:#?}"
    );
}

#[track_caller]
fn assert_clean(img: &[u8]) {
    let p = check(img);
    assert!(p.is_empty(), "expected a clean image, got {p:#?}");
}

// ---------------------------------------------------------------------------------
// Clean images

#[test]
fn clean_sample_images_pass() {
    for v in [Variant::Stock, Variant::Large] {
        let m = sample(v);
        let r = check_report(&m.b);
        assert!(r.is_clean(), "{v:?}: {:#?}", r.problems);
        assert_eq!(r.variant, Some(v));
        assert_eq!((r.inodes, r.dirs, r.files, r.devices), (7, 3, 3, 1));
        // Blocks: root, README, dir, nested, deeper, big (21 data + 1 indirect).
        assert_eq!(r.blocks_used, 5 + 22);
        assert_eq!(r.blocks_used + r.blocks_free, r.data_blocks);
        assert_eq!(r.log_pending, 0);
        assert!(r.notes.is_empty());
        assert_eq!(tree(&m.b).unwrap(), expected_sample_tree());
    }
}

#[test]
fn clean_large_variant_with_doubly_indirect_file() {
    let mut m = Img::new(Variant::Large, 1000, 32);
    let data = pattern(300 * BSIZE + 5, 13, 1, 253);
    let f = m.file(ROOTINO, "huge", &data);
    assert_ne!(m.inode(f).addrs[12], 0, "the doubly-indirect slot is used");
    let r = check_report(&m.b);
    assert!(r.is_clean(), "{:#?}", r.problems);
    // 301 data blocks + singly + doubly + 1 second-level block, and the root's.
    assert_eq!(r.blocks_used, 301 + 3 + 1);
    let t = tree(&m.b).unwrap();
    assert_eq!(t, vec![("/".into(), T_DIR, vec![]), ("/huge".into(), T_FILE, data)]);

    // The same file does not fit the stock format's 268 blocks: the builder refuses,
    // and a stock image claiming that size is reported.
    let mut s = Img::new(Variant::Stock, 400, 16);
    let f = s.file(ROOTINO, "f", b"x");
    s.set(f, |d| d.size = 300 * BSIZE as u32);
    assert_has(&check(&s.b), "exceeds the largest Stock-format file");
}

#[test]
fn holes_below_size_are_not_problems() {
    // xv6's mkfs rounds the root directory's size up to the next block boundary,
    // leaving a hole when the entries exactly fill a block.
    let mut m = sample(Variant::Stock);
    m.set(ROOTINO, |d| d.size = 2 * BSIZE as u32);
    assert_clean(&m.b);
    let t = tree(&m.b).unwrap();
    assert_eq!(t, expected_sample_tree());
}

#[test]
fn tree_lists_depth_first_sorted_by_name() {
    let mut m = Img::new(Variant::Stock, 300, 32);
    let b = m.mkdir(ROOTINO, "b");
    m.file(ROOTINO, "c", b"C");
    let a = m.mkdir(ROOTINO, "a");
    m.file(a, "z", b"Z");
    let ay = m.mkdir(a, "y");
    m.file(ay, "x", b"X");
    m.file(b, "w", b"W");
    m.file(ROOTINO, "Upper", b"U");
    assert_clean(&m.b);
    let names: Vec<String> = tree(&m.b).unwrap().into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["/", "/Upper", "/a", "/a/y", "/a/y/x", "/a/z", "/b", "/b/w", "/c"]);
}

// ---------------------------------------------------------------------------------
// Superblock problems

#[test]
fn superblock_problems() {
    let m = sample(Variant::Stock);
    assert_has(&check(&m.b[..100]), "too short to hold a superblock");
    assert_has(&check(&[]), "too short");

    let mut x = m.clone();
    x.put_sb(|s| s.magic = 0x1234_5678);
    assert_has(&check(&x.b), "superblock magic 0x12345678");

    assert_has(&check(&m.b[..m.b.len() / 2]), "exceeds the image");

    let mut x = m.clone();
    x.put_sb(|s| s.nblocks = s.size + 1);
    assert_has(&check(&x.b), "nblocks 401 exceeds size 400");

    let mut x = m.clone();
    x.put_sb(|s| s.logstart = 1);
    assert_has(&check(&x.b), "inside the boot block or the superblock");

    let mut x = m.clone();
    x.put_sb(|s| s.nlog = 0);
    assert_has(&check(&x.b), "no room for the log header");

    let mut x = m.clone();
    x.put_sb(|s| s.inodestart = 20);
    assert_has(&check(&x.b), "overlaps the inode area");

    let mut x = m.clone();
    x.put_sb(|s| s.ninodes = 10_000);
    assert_has(&check(&x.b), "10000 inodes need 625 inode blocks");

    let mut x = m.clone();
    x.put_sb(|s| s.ninodes = 1);
    assert_has(&check(&x.b), "no room for the root inode");

    let mut x = m.clone();
    x.put_sb(|s| s.nblocks = s.size - s.bmapstart);
    assert_has(&check(&x.b), "to cover 400 blocks");

    // A log area smaller than a transaction is a problem, but not a fatal one.
    let mut x = m.clone();
    x.put_sb(|s| s.nlog = 10);
    let p = check(&x.b);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_has(&p, "log area of 10 blocks is smaller");

    // A longer image than the file system is fine.
    let mut longer = m.b.clone();
    longer.extend_from_slice(&[0xAB; 3 * BSIZE + 7]);
    assert_clean(&longer);
}

// ---------------------------------------------------------------------------------
// Inode problems

#[test]
fn invalid_type_and_free_inode_with_links() {
    let mut x = sample(Variant::Stock);
    x.set(I_BIG, |d| d.typ = 7);
    let p = check(&x.b);
    assert_has(&p, "inode 6 has invalid type 7");
    assert_has(&p, "names inode 6 of invalid type 7");

    let mut x = sample(Variant::Stock);
    x.set(50, |d| d.nlink = 3);
    let p = check(&x.b);
    assert_eq!(p, ["inode 50 is free (type 0) but has nlink 3"]);
}

#[test]
fn block_addresses_outside_the_data_area() {
    let mut x = sample(Variant::Stock);
    x.set(I_NESTED, |d| d.addrs[0] = 5);
    assert_has(&check(&x.b), "inode 4: file block 0 at block 5 is outside the data area");

    let mut x = sample(Variant::Stock);
    x.set(I_NESTED, |d| d.addrs[0] = 400);
    assert_has(&check(&x.b), "at block 400 is outside the data area");

    let mut x = sample(Variant::Stock);
    let ind = x.inode(I_BIG).addrs[12];
    put_u32(&mut x.b, ind as usize * BSIZE, 99_999);
    assert_has(&check(&x.b), "inode 6: file block 12 at block 99999 is outside the data area");

    let mut x = sample(Variant::Stock);
    x.set(I_BIG, |d| d.addrs[12] = 3);
    assert_has(&check(&x.b), "inode 6: indirect block at block 3 is outside the data area");
}

#[test]
fn blocks_referenced_twice() {
    let mut x = sample(Variant::Stock);
    let readme_block = x.inode(I_README).addrs[0];
    x.set(I_NESTED, |d| d.addrs[1] = readme_block);
    x.set(I_NESTED, |d| d.size = 2 * BSIZE as u32);
    assert_has(&check(&x.b), &format!("block {readme_block} is referenced twice: by inode 2 and by inode 4"));

    // Within one inode, through its indirect block.
    let mut x = sample(Variant::Stock);
    let d = x.inode(I_BIG);
    put_u32(&mut x.b, d.addrs[12] as usize * BSIZE + 4, d.addrs[0]);
    assert_has(&check(&x.b), "is referenced twice by it");

    // An indirect block shared by two inodes: reported once, not once per entry.
    let mut x = sample(Variant::Stock);
    let ind = x.inode(I_BIG).addrs[12];
    x.set(I_NESTED, |d| d.addrs[12] = ind);
    let p = check(&x.b);
    assert_has(&p, &format!("block {ind} is referenced twice: by inode 4 and by inode 6"));
    assert_eq!(p.iter().filter(|l| l.contains("referenced twice")).count(), 1, "{p:#?}");
}

#[test]
fn block_mapped_past_size_and_oversized_file() {
    let mut x = sample(Variant::Stock);
    x.set(I_README, |d| d.size = 0);
    assert_has(&check(&x.b), "inode 2: file block 0 (block");
    assert_has(&check(&x.b), "is mapped past its size 0");

    let mut x = sample(Variant::Stock);
    x.set(I_BIG, |d| d.size = u32::MAX);
    let p = check(&x.b);
    assert_has(&p, "inode 6: size 4294967295 exceeds the largest");
    assert!(tree(&x.b).is_err());

    // Holes are allowed, but not a file larger than the image holding it.
    let mut x = sample(Variant::Large);
    x.set(I_NESTED, |d| d.size = 401 * BSIZE as u32);
    assert_eq!(check(&x.b), [format!("inode 4: size {} exceeds the whole image ({} bytes)", 401 * BSIZE, 400 * BSIZE)]);
    assert!(tree(&x.b).is_err());

    let mut x = sample(Variant::Stock);
    x.set(I_DIR, |d| d.size += 3);
    assert_has(&check(&x.b), "directory inode 3: size 83 is not a multiple of 16");
}

// ---------------------------------------------------------------------------------
// Bitmap problems

#[test]
fn bitmap_problems() {
    let mut x = sample(Variant::Stock);
    let b = x.inode(I_README).addrs[0];
    x.mark(b, false);
    assert_eq!(check(&x.b), [format!("block {b}: in use (first by inode 2) but marked free in the bitmap")]);

    let mut x = sample(Variant::Stock);
    let free = x.next_block;
    x.mark(free, true);
    x.mark(free + 1, true);
    x.mark(free + 5, true);
    assert_eq!(
        check(&x.b),
        [
            format!("blocks {free}..={}: marked in use in the bitmap but referenced by no inode (leaked)", free + 1),
            format!("block {}: marked in use in the bitmap but referenced by no inode (leaked)", free + 5),
        ]
    );

    let mut x = sample(Variant::Stock);
    x.mark(5, false);
    assert_eq!(check(&x.b), ["block 5: metadata, but marked free in the bitmap"]);
}

// ---------------------------------------------------------------------------------
// Link counts, reachability

#[test]
fn link_count_problems_and_orphans() {
    let mut x = sample(Variant::Stock);
    x.set(I_README, |d| d.nlink = 1);
    assert_eq!(check(&x.b), ["inode 2 (/README) has nlink 1 but 2 directory entries name it"]);

    let mut x = sample(Variant::Stock);
    x.set(I_NESTED, |d| d.nlink = 0);
    assert_eq!(check(&x.b), ["inode 4 (/dir/nested) is reachable but has nlink 0"]);

    // A directory's link count includes its subdirectories' '..' entries.
    let mut x = sample(Variant::Stock);
    x.set(I_DIR, |d| d.nlink = 1);
    assert_eq!(check(&x.b), ["inode 3 (/dir) has nlink 1 but 2 directory entries name it"]);

    let mut x = sample(Variant::Stock);
    let o = x.ialloc(T_FILE);
    x.set(o, |d| d.nlink = 1);
    x.append(o, b"lost");
    assert_eq!(check(&x.b), [format!("inode {o} (file, nlink 1, size 4) is allocated but not reachable from the root")]);

    // An unlinked directory takes its subtree with it: each allocated inode is an orphan.
    let mut x = sample(Variant::Stock);
    let slot = (0..8).find(|&s| &x.b[x.entry_at(ROOTINO, s) + 2..x.entry_at(ROOTINO, s) + 5] == b"dir").unwrap();
    let at = x.entry_at(ROOTINO, slot);
    x.b[at..at + 2].copy_from_slice(&0u16.to_le_bytes());
    let p = check(&x.b);
    assert_has(&p, "inode 3 (directory, nlink 2, size 80) is allocated but not reachable");
    assert_has(&p, "inode 4 (file");
    assert_has(&p, "inode 5 (directory");
    assert_has(&p, "inode 1 (/) has nlink 2 but 1 directory entries name it");
}

// ---------------------------------------------------------------------------------
// Directory problems

#[test]
fn root_not_a_directory() {
    let mut x = sample(Variant::Stock);
    x.set(ROOTINO, |d| d.typ = T_FILE);
    assert_has(&check(&x.b), "root inode 1 is not a directory (type 2)");
    assert!(tree(&x.b).is_err());
}

#[test]
fn dot_and_dotdot_problems() {
    // Slot 0 of /dir is '.', slot 1 '..'.
    let mut x = sample(Variant::Stock);
    let at = x.entry_at(I_DIR, 0);
    x.b[at..at + 2].copy_from_slice(&1u16.to_le_bytes());
    let p = check(&x.b);
    assert_has(&p, "directory /dir (inode 3), entry '.' at offset 0: '.' names inode 1, not the directory itself");
    assert_has(&p, "directory /dir (inode 3): no '.' entry naming itself at offset 0");

    let mut x = sample(Variant::Stock);
    let at = x.entry_at(I_DEEPER, 1);
    x.b[at..at + 2].copy_from_slice(&1u16.to_le_bytes());
    let p = check(&x.b);
    assert_has(&p, "'..' names inode 1, not the parent 3");

    let mut x = sample(Variant::Stock);
    let at = x.entry_at(I_DEEPER, 1);
    x.b[at..at + 2].copy_from_slice(&0u16.to_le_bytes());
    assert_has(&check(&x.b), "directory /dir/deeper (inode 5): no '..' entry at offset 16");

    // The root's '..' must be the root.
    let mut x = sample(Variant::Stock);
    let at = x.entry_at(ROOTINO, 1);
    x.b[at..at + 2].copy_from_slice(&(I_DIR as u16).to_le_bytes());
    assert_has(&check(&x.b), "'..' names inode 3, not the parent 1");

    let mut x = sample(Variant::Stock);
    x.add_entry(I_DEEPER, b".", I_DEEPER);
    assert_has(&check(&x.b), "'.' anywhere but offset 0");
}

#[test]
fn entries_naming_bad_inodes() {
    let mut x = sample(Variant::Stock);
    x.add_entry(ROOTINO, b"far", 60_000);
    assert_has(&check(&x.b), "entry 'far' at offset 96: names inode 60000, past ninodes 64");
    assert!(tree(&x.b).is_err());

    let mut x = sample(Variant::Stock);
    x.add_entry(ROOTINO, b"ghost", 40);
    assert_has(&check(&x.b), "entry 'ghost' at offset 96: names free inode 40");
    assert!(tree(&x.b).is_err());
}

#[test]
fn directories_reachable_twice() {
    // A loop: /dir/deeper/up -> /dir.
    let mut x = sample(Variant::Stock);
    x.add_entry(I_DEEPER, b"up", I_DIR);
    x.set(I_DIR, |d| d.nlink += 1);
    let p = check(&x.b);
    assert_has(&p, "directory inode 3 is reachable twice, as /dir and as /dir/deeper/up");
    assert!(tree(&x.b).is_err());

    // A hard link to a directory.
    let mut x = sample(Variant::Stock);
    x.add_entry(ROOTINO, b"alias", I_DEEPER);
    x.set(I_DEEPER, |d| d.nlink += 1);
    assert_has(&check(&x.b), "directory inode 5 is reachable twice");

    // The root named from below.
    let mut x = sample(Variant::Stock);
    x.add_entry(I_DIR, b"top", ROOTINO);
    x.set(ROOTINO, |d| d.nlink += 1);
    assert_has(&check(&x.b), "directory inode 1 is reachable twice, as / and as /dir/top");
}

#[test]
fn bad_names() {
    let mut x = sample(Variant::Stock);
    x.link(ROOTINO, "a/b", I_NESTED);
    assert_has(&check(&x.b), "entry 'a/b' at offset 96: name contains '/'");

    let mut x = sample(Variant::Stock);
    x.set(I_NESTED, |d| d.nlink += 1);
    x.add_entry(ROOTINO, b"ab\0c", I_NESTED);
    assert_eq!(check(&x.b), ["directory / (inode 1), entry 'ab' at offset 96: name is not NUL-padded"]);

    let mut x = sample(Variant::Stock);
    x.set(I_NESTED, |d| d.nlink += 1);
    x.add_entry(ROOTINO, b"\0x", I_NESTED);
    let p = check(&x.b);
    assert_has(&p, "entry '' at offset 96: empty name");
    assert_has(&p, "entry '' at offset 96: name is not NUL-padded");

    let mut x = sample(Variant::Stock);
    x.link(ROOTINO, "README", I_NESTED);
    assert_eq!(check(&x.b), ["directory / (inode 1), entry 'README' at offset 96: duplicate name"]);

    // A full 14-byte name without NUL is fine.
    let mut x = sample(Variant::Stock);
    x.link(ROOTINO, "abcdefghijklmn", I_NESTED);
    assert_clean(&x.b);
    assert!(tree(&x.b).unwrap().iter().any(|e| e.0 == "/abcdefghijklmn"));
}

// ---------------------------------------------------------------------------------
// The log

#[test]
fn invalid_log_headers_are_problems() {
    let mut x = sample(Variant::Stock);
    let lb = x.sb.logstart;
    put_u32(x.blk(lb), 0, 31);
    assert_eq!(check(&x.b), ["log header counts 31 blocks, but the log has room for 30"]);
    assert!(tree(&x.b).is_err());
    assert!(replay_log(&x.b).is_err());

    let mut x = sample(Variant::Stock);
    let hb = x.blk(lb);
    put_u32(hb, 0, 2);
    put_u32(hb, 4, 40);
    put_u32(hb, 8, 1);
    assert_eq!(
        check(&x.b),
        ["log entry 1 names home block 1, outside the inode, bitmap and data areas [33, 400)"]
    );

    let mut x = sample(Variant::Stock);
    let hb = x.blk(lb);
    put_u32(hb, 0, 1);
    put_u32(hb, 4, 400);
    assert_has(&check(&x.b), "log entry 0 names home block 400");
}

#[test]
fn committed_log_is_a_note_and_is_replayed() {
    let before = sample(Variant::Stock);
    let mut after = before.clone();
    after.file(I_DIR, "late", b"written by the last transaction");
    assert_clean(&after.b);
    // The blocks the transaction changed, written to the log instead of home.
    let changed: Vec<u32> = (0..before.sb.size)
        .filter(|&b| {
            let r = b as usize * BSIZE..(b as usize + 1) * BSIZE;
            before.b[r.clone()] != after.b[r]
        })
        .collect();
    assert!(!changed.is_empty() && changed.len() <= LOGBLOCKS);
    let mut crashed = before.clone();
    let mut h = LogHeader { n: changed.len() as u32, ..Default::default() };
    for (i, &home) in changed.iter().enumerate() {
        h.block[i] = home;
        let data = after.b[home as usize * BSIZE..(home as usize + 1) * BSIZE].to_vec();
        crashed.blk(before.sb.logstart + 1 + i as u32).copy_from_slice(&data);
    }
    h.encode(crashed.blk(before.sb.logstart));

    let r = check_report(&crashed.b);
    assert!(r.is_clean(), "{:#?}", r.problems);
    assert_eq!(r.log_pending, changed.len() as u32);
    assert_eq!(r.notes, [format!("log holds {} committed blocks not yet installed; checked as if replayed", changed.len())]);
    assert_eq!(r.files, 4);
    assert_eq!(tree(&crashed.b).unwrap(), tree(&after.b).unwrap());
    let replayed = replay_log(&crashed.b).unwrap().unwrap();
    assert_eq!(tree(&replayed).unwrap(), tree(&after.b).unwrap());
    assert_eq!(replay_log(&before.b).unwrap(), None);

    // The same log with its header cleared: the transaction never committed, and the
    // home blocks still hold the old, consistent image.
    let mut uncommitted = crashed.clone();
    put_u32(uncommitted.blk(before.sb.logstart), 0, 0);
    assert_clean(&uncommitted.b);
    assert_eq!(tree(&uncommitted.b).unwrap(), tree(&before.b).unwrap());
}

// ---------------------------------------------------------------------------------
// Termination on adversarial structure

#[test]
fn self_referencing_indirect_blocks_terminate() {
    let mut x = sample(Variant::Stock);
    let ind = x.inode(I_BIG).addrs[12];
    put_u32(x.blk(ind), 0, ind);
    assert_has(&check(&x.b), "is referenced twice by it");
    let _ = tree(&x.b);

    let mut m = Img::new(Variant::Large, 1000, 32);
    let f = m.file(ROOTINO, "huge", &pattern(300 * BSIZE, 1, 0, 256));
    let dbl = m.inode(f).addrs[12];
    put_u32(m.blk(dbl), 4, dbl);
    assert_has(&check(&m.b), "is referenced twice by it");
    let _ = tree(&m.b);
}

#[test]
fn problem_lines_are_capped() {
    let mut x = Img::new(Variant::Stock, 400, 64);
    // Each of these entries is a problem of its own (out-of-range inode), and all but
    // the first also a duplicate name.
    for _ in 0..600 {
        x.add_entry(ROOTINO, b"n", 0xffff);
    }
    let p = check(&x.b);
    assert_eq!(p.len(), MAX_PROBLEMS + 1);
    assert_eq!(p.last().unwrap(), &format!("... and {} further problems not listed", 600 + 599 - MAX_PROBLEMS));
}

// ---------------------------------------------------------------------------------
// Random corruption: never a panic, never a hang.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// One random corruption of `img`, aimed mostly at metadata.
fn corrupt(rng: &mut Rng, img: &[u8], sb: &SuperBlock) -> Vec<u8> {
    let mut x = img.to_vec();
    let meta_end = (sb.size - sb.nblocks) as usize * BSIZE;
    let mode = rng.below(9);
    match mode {
        0 => {
            // Random bytes anywhere in the metadata.
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(meta_end as u64) as usize;
                x[at] = rng.next() as u8;
            }
        }
        1 => {
            // A random inode field, set to a small value that is likely to matter.
            let inum = rng.below(sb.ninodes as u64 + 2) as u32;
            let at = sb.iblock(inum) as usize * BSIZE + (inum as usize % IPB) * DINODE_SIZE;
            let field = rng.below(16) as usize * 4;
            let v = match rng.below(3) {
                0 => rng.below(4) as u32,
                1 => rng.below(sb.size as u64 + 10) as u32,
                _ => rng.next() as u32,
            };
            if at + field + 4 <= x.len() {
                put_u32(&mut x, at + field, v);
            }
        }
        2 => {
            // A superblock field.
            let field = rng.below(8) as usize;
            let v = match rng.below(3) {
                0 => rng.below(64) as u32,
                1 => rng.below(sb.size as u64 * 2) as u32,
                _ => rng.next() as u32,
            };
            if field != 0 || rng.below(4) == 0 {
                put_u32(&mut x, BSIZE + field * 4, v);
            }
        }
        3 => {
            // Truncation.
            let n = rng.below(x.len() as u64 + 1) as usize;
            x.truncate(n);
        }
        4 => {
            // Directory entries of the first few data blocks renamed or renumbered.
            for _ in 0..1 + rng.below(4) {
                let b = (sb.size - sb.nblocks) as u64 + rng.below(8);
                let at = b as usize * BSIZE + rng.below(64) as usize * DIRENT_SIZE;
                if rng.below(2) == 0 {
                    let inum = rng.below(sb.ninodes as u64 + 3) as u16;
                    x[at..at + 2].copy_from_slice(&inum.to_le_bytes());
                } else {
                    x[at + 2 + rng.below(DIRSIZ as u64) as usize] = rng.next() as u8;
                }
            }
        }
        5 => {
            // A log header, valid or not.
            let lb = sb.logstart as usize * BSIZE;
            let n = rng.below(34) as u32;
            put_u32(&mut x, lb, n);
            for i in 0..n.min(LOGBLOCKS as u32) as usize {
                let home = rng.below(sb.size as u64 + 4) as u32;
                put_u32(&mut x, lb + 4 + i * 4, home);
            }
            for i in 0..rng.below(4) as usize {
                let at = (sb.logstart as usize + 1 + i) * BSIZE + rng.below(BSIZE as u64) as usize;
                x[at] = rng.next() as u8;
            }
        }
        6 => {
            // Bitmap bits.
            for _ in 0..1 + rng.below(6) {
                let at = sb.bmapstart as usize * BSIZE + rng.below(((sb.size as usize) / 8 + 1) as u64) as usize;
                x[at] ^= 1 << rng.below(8);
            }
        }
        7 => {
            // Indirect-block entries: random words in random data blocks.
            for _ in 0..1 + rng.below(6) {
                let b = (sb.size - sb.nblocks) as u64 + rng.below(sb.nblocks as u64);
                let at = b as usize * BSIZE + rng.below(NINDIRECT as u64) as usize * 4;
                let v = rng.below(sb.size as u64 + 3) as u32;
                put_u32(&mut x, at, v);
            }
        }
        _ => {
            // Garbage of random length, sometimes with a valid magic.
            let n = rng.below(64 * BSIZE as u64) as usize;
            x = (0..n).map(|_| rng.next() as u8).collect();
            if n >= 2 * BSIZE && rng.below(2) == 0 {
                put_u32(&mut x, BSIZE, if rng.below(2) == 0 { FSMAGIC } else { FSMAGIC_LARGE });
                for f in 1..8 {
                    let v = rng.below(80) as u32;
                    put_u32(&mut x, BSIZE + f * 4, v);
                }
            }
        }
    }
    x
}

fn fuzz(img: &[u8], seed: u64, rounds: usize) -> usize {
    let sb = SuperBlock::decode(&img[BSIZE..2 * BSIZE]);
    assert_clean(img);
    let mut rng = Rng(seed);
    let mut dirty = 0;
    let mut cur = img.to_vec();
    for i in 0..rounds {
        // Mostly fresh corruptions of the clean image; sometimes stacked ones.
        let base = if i % 4 == 3 && cur.len() == img.len() { cur.clone() } else { img.to_vec() };
        let x = corrupt(&mut rng, &base, &sb);
        let r = check_report(&x);
        if !r.problems.is_empty() {
            dirty += 1;
        }
        assert!(r.problems.len() <= MAX_PROBLEMS + 1);
        let t = tree(&x);
        // What the checker passes, the extractor can read.
        if r.problems.is_empty() {
            assert!(t.is_ok(), "round {i}: clean image but tree failed: {t:?}");
        }
        let _ = replay_log(&x);
        cur = x;
    }
    dirty
}

#[test]
fn random_corruptions_never_panic_stock() {
    let m = sample(Variant::Stock);
    let dirty = fuzz(&m.b, 0x9E37_79B9_7F4A_7C15, 4000);
    // Most corruptions are caught (some hit bytes no check reads, like padding).
    assert!(dirty > 1800, "only {dirty} of 4000 corruptions reported");
}

#[test]
fn random_corruptions_never_panic_large() {
    let mut m = Img::new(Variant::Large, 700, 32);
    m.file(ROOTINO, "huge", &pattern(280 * BSIZE, 3, 1, 256));
    let d = m.mkdir(ROOTINO, "d");
    m.file(d, "f", b"f");
    let dirty = fuzz(&m.b, 42, 2000);
    assert!(dirty > 900, "only {dirty} of 2000 corruptions reported");
}

// ---------------------------------------------------------------------------------
// Images made by the real xv6-riscv mkfs (testdata/README.md says how).

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut out).expect("valid gzip");
    out
}

fn xv6_small() -> Vec<u8> {
    gunzip(include_bytes!("../testdata/xv6-small.img.gz"))
}

fn xv6_big() -> Vec<u8> {
    gunzip(include_bytes!("../testdata/xv6-big.img.gz"))
}

/// What xv6-riscv's mkfs computes for FSSIZE 2000, NINODES 200, LOGBLOCKS 30:
/// nlog = 31, 13 inode blocks (200 / 16 + 1), 1 bitmap block (2000 / 8192 + 1),
/// nmeta = 2 + 31 + 13 + 1 = 47.
const XV6_SB: SuperBlock = SuperBlock {
    magic: FSMAGIC,
    size: 2000,
    nblocks: 1953,
    ninodes: 200,
    nlog: 31,
    logstart: 2,
    inodestart: 33,
    bmapstart: 46,
};

#[test]
fn xv6_fixture_superblocks_are_what_mkfs_computes() {
    for img in [xv6_small(), xv6_big()] {
        assert_eq!(img.len(), 2000 * BSIZE);
        assert_eq!(SuperBlock::decode(&img[BSIZE..2 * BSIZE]), XV6_SB);
        // The log header is empty, the boot block zero.
        assert_eq!(u32_at(&img, 2 * BSIZE), 0);
        assert!(img[..BSIZE].iter().all(|&b| b == 0));
    }
}

#[test]
fn xv6_small_fixture_is_clean_and_readable() {
    let img = xv6_small();
    let r = check_report(&img);
    assert!(r.is_clean(), "{:#?}", r.problems);
    assert_eq!(r.variant, Some(Variant::Stock));
    assert_eq!((r.inodes, r.dirs, r.files, r.devices), (5, 1, 4, 0));
    // root 1 + README 1 + notes 1 + small.bin 5 + abcdefghijklmn 1; mkfs printed
    // "first 56 blocks have been allocated" = 47 metadata + 9.
    assert_eq!(r.blocks_used, 9);
    assert_eq!(r.data_blocks, 1953);
    assert_eq!(r.blocks_free, 1953 - 9);
    // mkfs rounds the root directory's size up to a whole block.
    let root = DInode::decode(&img[33 * BSIZE + DINODE_SIZE..33 * BSIZE + 2 * DINODE_SIZE]);
    assert_eq!((root.typ, root.nlink, root.size), (T_DIR, 1, BSIZE as u32));
    let t = tree(&img).unwrap();
    let expect: Vec<TreeEntry> = vec![
        ("/".into(), T_DIR, vec![]),
        ("/README".into(), T_FILE, include_bytes!("../testdata/xv6-inputs/README").to_vec()),
        ("/abcdefghijklmn".into(), T_FILE, include_bytes!("../testdata/xv6-inputs/abcdefghijklmn").to_vec()),
        ("/notes".into(), T_FILE, include_bytes!("../testdata/xv6-inputs/_notes").to_vec()),
        ("/small.bin".into(), T_FILE, pattern(5000, 31, 7, 256)),
    ];
    assert_eq!(t, expect);
}

#[test]
fn xv6_big_fixture_is_clean_and_readable() {
    let img = xv6_big();
    let r = check_report(&img);
    assert!(r.is_clean(), "{:#?}", r.problems);
    assert_eq!((r.inodes, r.dirs, r.files), (4, 1, 3));
    // root 1 + big.bin 100 + its indirect 1 + max.bin 268 + its indirect 1;
    // mkfs printed "first 418 blocks have been allocated" = 47 + 371.
    assert_eq!(r.blocks_used, 371);
    assert_eq!(r.blocks_free, 1953 - 371);
    let t = tree(&img).unwrap();
    let expect: Vec<TreeEntry> = vec![
        ("/".into(), T_DIR, vec![]),
        ("/big.bin".into(), T_FILE, pattern(102_400, 7, 3, 251)),
        ("/empty".into(), T_FILE, vec![]),
        ("/max.bin".into(), T_FILE, pattern(274_432, 13, 1, 253)),
    ];
    assert_eq!(t, expect);
    // big.bin is inode 2 and goes through its indirect block; max.bin is the largest
    // file the stock format holds.
    let ino = |i: usize| {
        let at = 33 * BSIZE + i * DINODE_SIZE;
        DInode::decode(&img[at..at + DINODE_SIZE])
    };
    assert_ne!(ino(2).addrs[12], 0);
    assert_eq!(ino(3).size as u64, Variant::Stock.max_file_blocks() * BSIZE as u64);
    assert_eq!(ino(4).size, 0);
    assert_eq!(ino(4).addrs, [0; NADDRS]);
}

#[test]
fn xv6_fixture_corruptions_are_reported() {
    let img = xv6_big();
    // Clear big.bin's first data block in the bitmap.
    let mut x = img.clone();
    let first = u32_at(&x, 33 * BSIZE + 2 * DINODE_SIZE + 12);
    let at = 46 * BSIZE + first as usize / 8;
    x[at] &= !(1 << (first % 8));
    assert_eq!(check(&x), [format!("block {first}: in use (first by inode 2) but marked free in the bitmap")]);
    // The large-file magic on a stock image: max.bin's 13th slot becomes a doubly
    // indirect block and the 12th, its indirect block, a data block.
    let mut x = img.clone();
    put_u32(&mut x, BSIZE, FSMAGIC_LARGE);
    assert!(!check(&x).is_empty());
}

#[test]
fn random_corruptions_of_xv6_fixtures_never_panic() {
    fuzz(&xv6_small(), 7, 400);
    fuzz(&xv6_big(), 11, 400);
}

// ---------------------------------------------------------------------------------
// The large variant's longer log

/// An image with many commits appended to a 255-block log and not installed: clean, the
/// tree is the one after the replay (later copies of a block win), and a count past the
/// log, or past 30 on a stock image whatever `nlog` says, is a problem.
#[test]
fn long_pending_log_of_the_large_variant() {
    use crate::dev::{MemDisk, RecordingDisk};
    use crate::mkfs::{format, Params};
    use frond_interface::fs::FileType;
    let mut disk = MemDisk::new(3000);
    format(&mut disk, &Params { size: 3000, ninodes: 200, variant: Variant::Large, log: 255 }).unwrap();
    let mut fs = crate::FileSystem::mount(RecordingDisk::new(disk)).map_err(|(_, e)| e).unwrap();
    for i in 0..20u32 {
        let st = fs.create(ROOTINO, format!("/f{i}").as_bytes(), FileType::File, 0, 0, true).unwrap();
        fs.write(st.inum, 0, &pattern(3000 + i as usize, 7, i as usize, 251)).unwrap();
        fs.commit().unwrap();
        fs.write(st.inum, 100, b"overwritten after the commit").unwrap();
        fs.commit().unwrap();
    }
    let rec = fs.into_device();
    let n = u32_at(rec.inner.block(2), 0);
    assert!(n > LOGBLOCKS as u32 && n <= 255, "{n} entries");
    let img = rec.inner.into_image();
    let r = check_report(&img);
    assert!(r.is_clean(), "{:#?}", r.problems);
    assert_eq!(r.log_pending, n);
    let mounted = {
        let mut fs = crate::FileSystem::mount(MemDisk::from_image(img.clone())).map_err(|(_, e)| e).unwrap();
        fs.sync().unwrap();
        fs.into_device().into_image()
    };
    assert_clean(&mounted);
    assert_eq!(tree(&img).unwrap(), tree(&mounted).unwrap());
    // Past the log's 255 entries; past 30 on the same image relabelled stock.
    let mut bad = img.clone();
    put_u32(&mut bad, 2 * BSIZE, 256);
    assert_has(&check(&bad), "log header counts 256 blocks, but the log has room for 255");
    let mut stock = img.clone();
    put_u32(&mut stock, BSIZE, FSMAGIC);
    assert_has(&check(&stock), &format!("log header counts {n} blocks, but the log has room for 30"));
}
