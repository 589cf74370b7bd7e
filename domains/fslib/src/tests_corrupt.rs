//! Hostile images: thousands of images with bytes flipped or rewritten in the
//! superblock, the log, inodes, directories, the bitmap, indirect blocks or anywhere, and
//! truncated images. Each is mounted on a disk that refuses (and records) any write
//! outside `[2, size)`; if it mounts, the whole tree is walked, every file read, and
//! files created, written, truncated, linked and unlinked. Nothing may panic and no write
//! may leave the file system.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use frond_interface::fs::{FileType, FsError, IO_MAX};

use crate::dev::*;
use crate::layout::*;
use crate::testutil::*;
use crate::{FileSystem, MountError};

const R: u32 = ROOTINO;
const SIZE: u32 = 1024;

/// Where the interesting blocks of a base image are.
struct Meta {
    sb: SuperBlock,
    dir_blocks: Vec<u32>,
    ind_blocks: Vec<u32>,
    inode_blocks: Vec<u32>,
}

/// A base image of `variant` with a log of `log` blocks; with `pending_log`, cut right
/// after a commit record so that mount must replay: one transaction in a 30-block log,
/// or (a larger log) a few dozen commits appended to the log, not installed.
fn base_image(variant: Variant, pending_log: bool, log: u32) -> Vec<u8> {
    let mut disk = MemDisk::new(SIZE as u64);
    crate::mkfs::format(&mut disk, &crate::mkfs::Params { size: SIZE, ninodes: 64, variant, log }).unwrap();
    let mut fs = mount(RecordingDisk::new(disk));
    let mut rng = Rng::new(77);
    for d in ["/a", "/a/b", "/a/b/c", "/e"] {
        fs.create(R, d.as_bytes(), FileType::Dir, 0, 0, true).unwrap();
    }
    for i in 0..12 {
        let dir = ["/", "/a/", "/a/b/", "/a/b/c/", "/e/"][i % 5];
        let len = rng.below(6000) as usize;
        mkfile(&mut fs, &format!("{dir}f{i}"), &pattern(i as u64, len));
    }
    mkfile(&mut fs, "/a/ind", &pattern(50, 40 * 1024));
    if variant == Variant::Large {
        mkfile(&mut fs, "/e/dbl", &pattern(51, 300 * 1024));
    }
    fs.create(R, b"/a/dev", FileType::Device, 3, 4, true).unwrap();
    fs.link(R, b"/a/ind", b"/e/ind2").unwrap();
    fs.sync().unwrap();
    if !pending_log {
        return fs.into_device().inner.into_image();
    }
    // More transactions, cut right after the last commit record: mount must replay them.
    fs.device_mut().writes.clear();
    let mut base = fs.device().inner.image().to_vec();
    fs.create(R, b"/late", FileType::Dir, 0, 0, true).unwrap();
    mkfile(&mut fs, "/late/x", &pattern(52, 3000));
    if log > LOGBLOCKS as u32 {
        for i in 0..12 {
            fs.commit().unwrap();
            fs.create(R, format!("/late/d{i}").as_bytes(), FileType::Dir, 0, 0, true).unwrap();
            fs.commit().unwrap();
            mkfile(&mut fs, &format!("/late/d{i}/f"), &pattern(53 + i, 1500));
            let ind = fs.lookup(R, b"/a/ind").unwrap().inum;
            fs.write(ind, i * 1000, b"overwritten").unwrap();
        }
    }
    fs.commit().unwrap();
    let w = fs.into_device().writes;
    let h = w.iter().rposition(|x| x.block == 2 && u32_at(&x.data, 0) > 0).unwrap();
    if log > LOGBLOCKS as u32 {
        assert!(u32_at(&w[h].data, 0) > 64, "the pending log holds {} entries", u32_at(&w[h].data, 0));
    }
    for x in &w[..=h] {
        let at = x.block as usize * BSIZE;
        base[at..at + BSIZE].copy_from_slice(&x.data);
    }
    base
}

fn meta(img: &[u8], variant: Variant) -> Meta {
    let sb = SuperBlock::decode(&img[BSIZE..]);
    let nd = variant.ndirect();
    let mut m = Meta { sb, dir_blocks: vec![], ind_blocks: vec![], inode_blocks: vec![] };
    for blk in sb.inodestart..sb.bmapstart {
        m.inode_blocks.push(blk);
        for k in 0..IPB {
            let at = blk as usize * BSIZE + k * DINODE_SIZE;
            let d = DInode::decode(&img[at..at + DINODE_SIZE]);
            if d.typ == T_DIR {
                m.dir_blocks.extend(d.addrs[..nd].iter().filter(|&&a| a != 0));
            }
            if d.typ == T_FILE {
                m.ind_blocks.extend(d.addrs[nd..].iter().filter(|&&a| a != 0));
                if variant == Variant::Large && d.addrs[nd + 1] != 0 {
                    let top = d.addrs[nd + 1] as usize * BSIZE;
                    for i in 0..NINDIRECT {
                        let a = u32_at(img, top + i * 4);
                        if a != 0 {
                            m.ind_blocks.push(a);
                        }
                    }
                }
            }
        }
    }
    assert!(!m.dir_blocks.is_empty() && !m.ind_blocks.is_empty());
    m
}

fn interesting(rng: &mut Rng, sb: &SuperBlock) -> u32 {
    let data = sb.size - sb.nblocks;
    let v = [
        0,
        1,
        2,
        sb.logstart,
        sb.logstart + 1,
        sb.inodestart,
        sb.bmapstart,
        data - 1,
        data,
        sb.size - 1,
        sb.size,
        sb.size + 1,
        u32::MAX,
        0x7fff_ffff,
        0x8000_0000,
        65535,
        65536,
        rng.below(sb.size as u64) as u32,
        rng.below(sb.size as u64) as u32,
        rng.next() as u32,
    ];
    v[rng.below(v.len() as u64) as usize]
}

fn put_interesting(img: &mut [u8], at: usize, rng: &mut Rng, sb: &SuperBlock) {
    let v = interesting(rng, sb);
    if at + 4 <= img.len() {
        put_u32(img, at, v);
    }
}

fn flip_bytes(img: &mut [u8], blk: u32, rng: &mut Rng, n: usize) {
    for _ in 0..n {
        let at = blk as usize * BSIZE + rng.below(BSIZE as u64) as usize;
        if let Some(b) = img.get_mut(at) {
            *b = match rng.below(3) {
                0 => *b ^ (1 << rng.below(8)),
                1 => rng.next() as u8,
                _ => 0xff,
            };
        }
    }
}

fn pick(rng: &mut Rng, v: &[u32]) -> u32 {
    v[rng.below(v.len() as u64) as usize]
}

/// Damages `img` in the region `kind` names; returns a description.
fn mutate(img: &mut Vec<u8>, m: &Meta, kind: u64, rng: &mut Rng) -> String {
    let sb = &m.sb;
    let rounds = 1 + rng.below(4) as usize;
    match kind {
        0 => {
            for _ in 0..rounds {
                if rng.below(2) == 0 {
                    put_interesting(img, BSIZE + 4 * rng.below(8) as usize, rng, sb);
                } else {
                    flip_bytes(img, 1, rng, 1);
                }
            }
            "superblock".into()
        }
        1 => {
            let at = sb.logstart as usize * BSIZE;
            let slots = (sb.nlog.max(2) - 1) as u64;
            for _ in 0..rounds {
                match rng.below(3) {
                    0 => put_u32(img, at, rng.below(slots + 10) as u32),
                    1 => put_interesting(img, at + 4 + 4 * rng.below(slots.min(LOG_MAX as u64)) as usize, rng, sb),
                    _ => flip_bytes(img, sb.logstart + 1 + rng.below(slots) as u32, rng, 8),
                }
            }
            "log".into()
        }
        2 => {
            for _ in 0..rounds {
                let blk = pick(rng, &m.inode_blocks);
                let at = blk as usize * BSIZE + rng.below(IPB as u64) as usize * DINODE_SIZE;
                match rng.below(5) {
                    0 => img[at..at + 2].copy_from_slice(&(rng.below(6) as u16).to_le_bytes()),
                    1 => img[at + 6..at + 8].copy_from_slice(&[0u16, 1, 2, 65535][rng.below(4) as usize].to_le_bytes()),
                    2 => put_interesting(img, at + 8, rng, sb),
                    3 => put_interesting(img, at + 12 + 4 * rng.below(NADDRS as u64) as usize, rng, sb),
                    _ => flip_bytes(img, blk, rng, 2),
                }
            }
            "inode".into()
        }
        3 => {
            for _ in 0..rounds {
                let blk = pick(rng, &m.dir_blocks);
                let at = blk as usize * BSIZE + rng.below((BSIZE / DIRENT_SIZE) as u64) as usize * DIRENT_SIZE;
                match rng.below(4) {
                    0 => img[at..at + 2].copy_from_slice(&(interesting(rng, sb) as u16).to_le_bytes()),
                    1 => img[at..at + 2].copy_from_slice(&(rng.below(70) as u16).to_le_bytes()),
                    2 => img[at + 2 + rng.below(DIRSIZ as u64) as usize] = [0, b'/', b'.', 0xff][rng.below(4) as usize],
                    _ => flip_bytes(img, blk, rng, 3),
                }
            }
            "directory".into()
        }
        4 => {
            let bmap = sb.bmapstart;
            match rng.below(3) {
                0 => img[bmap as usize * BSIZE..(bmap as usize + 1) * BSIZE].fill(0),
                1 => img[bmap as usize * BSIZE..(bmap as usize + 1) * BSIZE].fill(0xff),
                _ => flip_bytes(img, bmap, rng, 16),
            }
            "bitmap".into()
        }
        5 => {
            for _ in 0..rounds {
                let blk = pick(rng, &m.ind_blocks);
                let at = blk as usize * BSIZE + 4 * rng.below(NINDIRECT as u64) as usize;
                if rng.below(4) == 0 {
                    flip_bytes(img, blk, rng, 8);
                } else {
                    put_interesting(img, at, rng, sb);
                }
            }
            "indirect".into()
        }
        6 => {
            for _ in 0..rounds {
                let blk = rng.below(sb.size as u64) as u32;
                let n = 1 + rng.below(32) as usize;
                flip_bytes(img, blk, rng, n);
            }
            "anywhere".into()
        }
        _ => {
            let len = rng.below(img.len() as u64 + 1) as usize;
            img.truncate(len);
            "truncated".into()
        }
    }
}

#[derive(Default, Debug)]
struct Counts {
    images: u32,
    refused: u32,
    clean: u32,
    errored: u32,
    ops_failed: u32,
}

/// Walks the tree (bounded), reading every file; returns (errors, files, dirs).
fn walk<D: BlockDev>(fs: &mut FileSystem<D>) -> (u32, Vec<String>, Vec<String>) {
    let mut errors = 0;
    let (mut files, mut dirs) = (vec![], vec![String::from("/")]);
    let mut seen = BTreeSet::from([R]);
    let mut stack = vec![(R, String::new())];
    let mut calls = 0;
    let mut buf = vec![0u8; IO_MAX];
    while let Some((dir, path)) = stack.pop() {
        let mut from = 0;
        while calls < 300 {
            calls += 1;
            let c = match fs.readdir(dir, from) {
                Ok(c) => c,
                Err(_) => {
                    errors += 1;
                    break;
                }
            };
            assert!(c.n as usize <= c.entries.len());
            for e in &c.entries[..c.n as usize] {
                let name = e.name();
                if name == b"." || name == b".." {
                    continue;
                }
                let full = format!("{path}/{}", String::from_utf8_lossy(name));
                match fs.lookup(dir, name) {
                    Err(_) => errors += 1,
                    Ok(st) => match st.kind {
                        FileType::Dir => {
                            if seen.insert(st.inum) {
                                stack.push((st.inum, full.clone()));
                                dirs.push(full);
                            }
                        }
                        FileType::File => {
                            let mut off = 0u64;
                            while off < st.size.min(256 * 1024) {
                                match fs.read(st.inum, off, &mut buf) {
                                    Ok(0) => break,
                                    Ok(n) => {
                                        assert!(n as usize <= buf.len());
                                        off += n as u64;
                                    }
                                    Err(_) => {
                                        errors += 1;
                                        break;
                                    }
                                }
                            }
                            files.push(full);
                        }
                        FileType::Device => {
                            let _ = fs.stat(st.inum);
                        }
                    },
                }
            }
            match c.next {
                Some(n) if n > from => from = n,
                Some(_) => panic!("readdir did not advance"),
                None => break,
            }
        }
    }
    (errors, files, dirs)
}

/// Changes things on a mounted hostile image; returns how many operations failed.
fn exercise<D: BlockDev>(fs: &mut FileSystem<D>, files: &[String], dirs: &[String], rng: &mut Rng) -> u32 {
    let mut failed = 0;
    // Only damage counts: Corrupt (or Io from a refused write); other errors are
    // ordinary answers (NotEmpty, Exists, ...).
    let mut count = |r: Result<(), FsError>| {
        if matches!(r, Err(FsError::Corrupt) | Err(FsError::Io)) {
            failed += 1;
        }
    };
    let data = pattern(rng.next(), 5000);
    match fs.create(R, b"/new.file", FileType::File, 0, 0, false) {
        Ok(st) => {
            let w = fs.write(st.inum, 0, &data);
            count(w.map(drop));
            if w == Ok(5000) {
                let mut back = vec![0u8; 5000];
                if fs.read(st.inum, 0, &mut back) == Ok(5000) {
                    assert!(back == data, "a file reads back what was written to it");
                }
            }
        }
        Err(e) => count(Err(e)),
    }
    count(fs.create(R, b"/nd", FileType::Dir, 0, 0, false).map(drop));
    count(fs.create(R, b"/nd/x", FileType::File, 0, 0, false).map(drop));
    if let Some(d) = dirs.get(rng.below(dirs.len() as u64 + 1) as usize) {
        let p = format!("{d}/made");
        count(fs.create(R, p.as_bytes(), FileType::File, 0, 0, false).map(drop));
        count(fs.unlink(R, p.as_bytes()).map(drop));
    }
    if !files.is_empty() {
        // Overwrite some files whole, grow some far (through every block pointer up to
        // the new size), shrink some: every pointer of the file gets used.
        for _ in 0..3 {
            let f = &files[rng.below(files.len() as u64) as usize];
            let Ok(st) = fs.lookup(R, f.as_bytes()) else { continue };
            let mut off = 0;
            while off < st.size.min(320 * 1024) {
                let n = (st.size - off).min(IO_MAX as u64) as usize;
                let chunk = pattern(off, n);
                match fs.write(st.inum, off, &chunk) {
                    Ok(w) if w > 0 => off += w as u64,
                    r => {
                        count(r.map(drop));
                        break;
                    }
                }
            }
            match rng.below(3) {
                0 => count(fs.truncate(st.inum, rng.below(320 * 1024)).map(drop)),
                1 => count(fs.truncate(st.inum, st.size / 2).map(drop)),
                _ => count(fs.write(st.inum, st.size + rng.below(300 * 1024), &data[..100]).map(drop)),
            }
        }
        let f = &files[rng.below(files.len() as u64) as usize];
        count(fs.link(R, f.as_bytes(), b"/lnk").map(drop));
        let g = &files[rng.below(files.len() as u64) as usize];
        count(fs.unlink(R, g.as_bytes()).map(drop));
    }
    // A new entry in every directory (damaged ones included), removed again.
    for d in dirs.iter().take(8) {
        let p = format!("{d}/e2");
        count(fs.create(R, p.as_bytes(), FileType::File, 0, 0, false).map(drop));
        count(fs.unlink(R, p.as_bytes()).map(drop));
    }
    if let Some(d) = dirs.get(1 + rng.below(dirs.len() as u64) as usize) {
        count(fs.unlink(R, d.as_bytes()).map(drop));
    }
    count(fs.unlink(R, b"/nd/x").map(drop));
    count(fs.unlink(R, b"/nd").map(drop));
    let _ = fs.info();
    count(fs.sync().map(drop));
    failed
}

fn trial(img: Vec<u8>, rng: &mut Rng, c: &mut Counts) {
    c.images += 1;
    let blocks = (img.len() / BSIZE) as u64;
    let size = if blocks >= 2 { SuperBlock::decode(&img[BSIZE..]).size as u64 } else { 0 };
    let hi = size.min(blocks);
    let disk = RangeCheckDisk::new(MemDisk::from_image(img), 2, hi);
    let mut fs = match FileSystem::mount(disk) {
        Ok(fs) => fs,
        Err((d, e)) => {
            assert!(d.violations.is_empty(), "refused mount wrote outside: {:?}", d.violations);
            assert!(d.writes == 0 || e == MountError::BadRoot, "a refused mount ({e}) wrote {} blocks", d.writes);
            assert!(!e.to_string().is_empty());
            c.refused += 1;
            return;
        }
    };
    let (e1, files, dirs) = walk(&mut fs);
    let e2 = exercise(&mut fs, &files, &dirs, rng);
    assert!(fs.device().violations.is_empty(), "write outside [2, {hi}): {:?}", fs.device().violations);
    if e1 + e2 == 0 {
        c.clean += 1;
    } else {
        c.errored += 1;
    }
    c.ops_failed += e2;
    // Whatever the operations left must mount and walk again without harm.
    let disk = fs.into_device();
    if let Ok(mut fs) = FileSystem::mount(disk) {
        walk(&mut fs);
        assert!(fs.device().violations.is_empty(), "write outside after remount");
    }
}

fn campaign(name: &str, variant: Variant, pending_log: bool, log: u32, per_kind: u32, seed: u64) {
    let base = base_image(variant, pending_log, log);
    // The undamaged image is fine.
    let mut c0 = Counts::default();
    trial(base.clone(), &mut Rng::new(1), &mut c0);
    assert_eq!((c0.clean, c0.errored, c0.refused), (1, 0, 0), "undamaged base image");
    let m = meta(&base, variant);
    let kinds = ["superblock", "log", "inode", "directory", "bitmap", "indirect", "anywhere", "truncated"];
    let mut total = Counts::default();
    for (kind, kname) in kinds.iter().enumerate() {
        let mut c = Counts::default();
        for i in 0..per_kind {
            let s = seed ^ ((kind as u64) << 32) ^ i as u64;
            let mut rng = Rng::new(s);
            let mut img = base.clone();
            let what = mutate(&mut img, &m, kind as u64, &mut rng);
            let r = catch_unwind(AssertUnwindSafe(|| trial(img, &mut rng, &mut c)));
            if let Err(p) = r {
                eprintln!("{name}: panic on a {what} image, seed {s:#x}");
                std::panic::resume_unwind(p);
            }
        }
        println!(
            "corrupt {name} {kname:>10}: {} images: {} refused at mount, {} mounted with errors later ({} failed ops), {} mounted clean",
            c.images, c.refused, c.errored, c.ops_failed, c.clean
        );
        total.images += c.images;
        total.refused += c.refused;
        total.errored += c.errored;
        total.clean += c.clean;
        total.ops_failed += c.ops_failed;
    }
    println!(
        "corrupt {name} total: {} images: {} refused at mount, {} with errors after mounting, {} clean",
        total.images, total.refused, total.errored, total.clean
    );
    assert_eq!(total.images, per_kind * kinds.len() as u32);
    assert!(total.refused > 0 && total.errored > 0, "the campaign reached both refusals and later errors");
}

#[test]
fn corrupt_stock_images() {
    campaign("stock", Variant::Stock, false, LOGBLOCKS as u32, 150, 0x5eed_0001);
}

#[test]
fn corrupt_large_images() {
    campaign("large", Variant::Large, false, LOGBLOCKS as u32, 150, 0x5eed_0002);
}

#[test]
fn corrupt_images_with_pending_log() {
    campaign("pending-log", Variant::Stock, true, LOGBLOCKS as u32, 150, 0x5eed_0003);
}

/// The large variant's 255-block log, holding a few dozen appended commits (more than
/// one replay call's worth of entries, homes repeated) when the damage is done.
#[test]
fn corrupt_large_images_with_a_long_pending_log() {
    campaign("long-log", Variant::Large, true, LOG_MAX as u32, 100, 0x5eed_0004);
}
