//! Functional tests: layout, operations, limits, group commit, batching, device errors.

use frond_interface::fs::{FileType, FsError, IO_MAX};

use crate::dev::*;
use crate::layout::*;
use crate::mkfs::{format, layout, Params};
use crate::testutil::*;
use crate::{FileSystem, MountError, MountOptions};

const R: u32 = ROOTINO;

fn b(s: &str) -> &[u8] {
    s.as_bytes()
}

#[test]
fn format_is_xv6_mkfs_layout() {
    let mut d = MemDisk::new(2000);
    let sb = format(&mut d, &Params::XV6).unwrap();
    // xv6-riscv mkfs with FSSIZE 2000, NINODES 200, LOGBLOCKS 30: nlog 31,
    // 200/16+1 = 13 inode blocks, 2000/8192+1 = 1 bitmap block, nmeta 2+31+13+1 = 47.
    assert_eq!(
        sb,
        SuperBlock { magic: FSMAGIC, size: 2000, nblocks: 1953, ninodes: 200, nlog: 31, logstart: 2, inodestart: 33, bmapstart: 46 }
    );
    assert_eq!(SuperBlock::decode(d.block(1)), sb);
    assert!(d.block(0).iter().all(|&x| x == 0), "boot block zero");
    let root = DInode::decode(&d.block(33)[64..128]);
    assert_eq!(root.typ, T_DIR);
    assert_eq!(root.nlink, 1);
    assert_eq!(root.size, BSIZE as u32);
    assert_eq!(root.addrs[0], 47);
    assert!(root.addrs[1..].iter().all(|&a| a == 0));
    let dot = Dirent::decode(&d.block(47)[0..16]);
    let dotdot = Dirent::decode(&d.block(47)[16..32]);
    assert_eq!((dot.inum, dot.name()), (1, &b"."[..]));
    assert_eq!((dotdot.inum, dotdot.name()), (1, &b".."[..]));
    // Bitmap: blocks 0..=47 used, nothing else.
    let bm = d.block(46);
    for blk in 0..2000usize {
        let used = bm[blk / 8] & (1 << (blk % 8)) != 0;
        assert_eq!(used, blk <= 47, "bitmap bit {blk}");
    }
    // Only the superblock, the first inode block, the bitmap and the root's block hold data.
    let nonzero: Vec<u64> = (0..2000).filter(|&i| d.block(i).iter().any(|&x| x != 0)).collect();
    assert_eq!(nonzero, vec![1, 33, 46, 47]);

    // The large variant differs only in the magic.
    let l = layout(&Params { variant: Variant::Large, ..Params::XV6 }).unwrap();
    assert_eq!(l, SuperBlock { magic: FSMAGIC_LARGE, ..sb });
    // Sizes that need more bitmap blocks, and a size too small for the root.
    let big = layout(&Params { size: 81920, ninodes: 1000, variant: Variant::Large, log: LOGBLOCKS as u32 }).unwrap();
    assert_eq!(big.bmapstart - big.inodestart, 1000 / 16 + 1);
    assert_eq!(big.size - big.nblocks - big.bmapstart, 81920 / 8192 + 1);
    assert!(layout(&Params { size: 47, ..Params::XV6 }).is_err());
    assert!(layout(&Params { size: 48, ..Params::XV6 }).is_ok());
    assert!(layout(&Params { ninodes: 1, ..Params::XV6 }).is_err());
    assert!(format(&mut MemDisk::new(1999), &Params::XV6).is_err());
}

#[test]
fn fresh_fs_info_and_root() {
    let mut fs = mount(fresh(2000, 200, Variant::Stock));
    let i = fs.info().unwrap();
    assert!(!i.large);
    assert_eq!((i.size, i.data_blocks, i.free_blocks), (2000, 1953, 1952));
    assert_eq!((i.inodes, i.free_inodes), (200, 198));
    assert_eq!(i.log_blocks, LOGBLOCKS as u32);
    assert_eq!(i.max_file, 268 * 1024);
    let st = fs.lookup(R, b("/")).unwrap();
    assert_eq!((st.inum, st.kind, st.size), (1, FileType::Dir, 1024));
    let c = fs.readdir(R, 0).unwrap();
    assert_eq!(c.n, 2);
    assert_eq!(c.entries[0].name(), b".");
    assert_eq!(c.entries[1].name(), b"..");
    assert_eq!(c.next, None);
}

#[test]
fn create_write_read_lookup_readdir() {
    let mut fs = mount(fresh(2000, 200, Variant::Stock));
    let st = fs.create(R, b("/hello"), FileType::File, 0, 0, true).unwrap();
    assert_eq!((st.kind, st.size, st.nlink), (FileType::File, 0, 1));
    assert_eq!(fs.write(st.inum, 0, b("hello, world")).unwrap(), 12);
    let mut buf = [0u8; 64];
    assert_eq!(fs.read(st.inum, 0, &mut buf).unwrap(), 12);
    assert_eq!(&buf[..12], b("hello, world"));
    assert_eq!(fs.read(st.inum, 7, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b("world"));
    assert_eq!(fs.read(st.inum, 12, &mut buf).unwrap(), 0);
    assert_eq!(fs.read(st.inum, 1000, &mut buf).unwrap(), 0);
    // Overwrite in the middle, append, write past the end (gap reads as zeros).
    fs.write(st.inum, 7, b("WORLD")).unwrap();
    fs.write(st.inum, 12, b("!")).unwrap();
    fs.write(st.inum, 3000, b("far")).unwrap();
    let v = file(&mut fs, "/hello");
    assert_eq!(v.len(), 3003);
    assert_eq!(&v[..13], b("hello, WORLD!"));
    assert!(v[13..3000].iter().all(|&x| x == 0));
    assert_eq!(&v[3000..], b("far"));
    // Lookups: absolute, relative, through . and ..; errors.
    assert_eq!(fs.lookup(R, b("hello")).unwrap().inum, st.inum);
    assert_eq!(fs.lookup(R, b("/./hello")).unwrap().inum, st.inum);
    assert_eq!(fs.lookup(R, b("//hello//")).unwrap().inum, st.inum);
    assert_eq!(fs.lookup(R, b("/nope")), Err(FsError::NotFound));
    assert_eq!(fs.lookup(R, b("/hello/x")), Err(FsError::NotDir));
    assert_eq!(fs.lookup(st.inum, b("x")), Err(FsError::NotDir));
    assert_eq!(fs.lookup(R, b("")), Err(FsError::BadPath));
    assert_eq!(fs.lookup(999, b("x")), Err(FsError::Invalid));
    assert_eq!(fs.stat(0), Err(FsError::Invalid));
    assert_eq!(fs.stat(50), Err(FsError::Stale));
    // Non-exclusive create returns the file; exclusive refuses.
    assert_eq!(fs.create(R, b("/hello"), FileType::File, 0, 0, false).unwrap().inum, st.inum);
    assert_eq!(fs.create(R, b("/hello"), FileType::File, 0, 0, true), Err(FsError::Exists));
    assert_eq!(fs.create(R, b("/hello"), FileType::Dir, 0, 0, false), Err(FsError::Exists));
    assert_eq!(fs.create(R, b("/"), FileType::Dir, 0, 0, false), Err(FsError::Exists));
    // Many entries: readdir in chunks sees each once.
    for i in 0..100 {
        fs.create(R, format!("/f{i}").as_bytes(), FileType::File, 0, 0, true).unwrap();
    }
    let mut names = Vec::new();
    let mut from = 0;
    loop {
        let c = fs.readdir(R, from).unwrap();
        assert!(c.n as usize <= 16);
        names.extend(c.entries[..c.n as usize].iter().map(|e| String::from_utf8(e.name().to_vec()).unwrap()));
        match c.next {
            Some(n) => from = n,
            None => break,
        }
    }
    assert_eq!(names.len(), 103);
    assert!(names.contains(&"f99".to_string()) && names.contains(&"hello".to_string()));
    assert_eq!(fs.readdir(st.inum, 0), Err(FsError::NotDir));
}

#[test]
fn name_and_path_limits() {
    let mut fs = mount(fresh(2000, 200, Variant::Stock));
    let n14 = "abcdefghijklmn";
    let n15 = "abcdefghijklmno";
    let st = fs.create(R, n14.as_bytes(), FileType::File, 0, 0, true).unwrap();
    assert_eq!(fs.lookup(R, n14.as_bytes()).unwrap().inum, st.inum);
    let c = fs.readdir(R, 0).unwrap();
    assert_eq!(c.entries[2].name(), n14.as_bytes());
    assert_eq!(fs.create(R, n15.as_bytes(), FileType::File, 0, 0, true), Err(FsError::NameTooLong));
    assert_eq!(fs.lookup(R, n15.as_bytes()), Err(FsError::NameTooLong));
    assert_eq!(fs.lookup(R, format!("/{n15}/x").as_bytes()), Err(FsError::NameTooLong));
    // 128 bytes is a path, 129 is not.
    let mut p = String::from("/");
    while p.len() + 2 <= 128 {
        p.push_str("./");
    }
    while p.len() < 128 {
        p.push('/');
    }
    assert_eq!(p.len(), 128);
    assert_eq!(fs.lookup(R, p.as_bytes()).unwrap().inum, R);
    p.push('/');
    assert_eq!(fs.lookup(R, p.as_bytes()), Err(FsError::BadPath));
    assert_eq!(fs.create(R, p.as_bytes(), FileType::File, 0, 0, true), Err(FsError::BadPath));
    assert_eq!(fs.lookup(R, b"a\0b"), Err(FsError::BadPath));
}

#[test]
fn directories_links_unlink() {
    let mut fs = mount(fresh(2000, 200, Variant::Stock));
    let a = fs.create(R, b("/a"), FileType::Dir, 0, 0, false).unwrap();
    assert_eq!(fs.stat(R).unwrap().nlink, 2, "a's .. links the root");
    assert_eq!((a.kind, a.nlink), (FileType::Dir, 1));
    let bdir = fs.create(a.inum, b("b"), FileType::Dir, 0, 0, false).unwrap();
    assert_eq!(fs.lookup(R, b("/a/b/..")).unwrap().inum, a.inum);
    assert_eq!(fs.lookup(bdir.inum, b("../..")).unwrap().inum, R);
    assert_eq!(fs.lookup(bdir.inum, b(".")).unwrap().inum, bdir.inum);
    let f = mkfile(&mut fs, "/a/b/f", b"data");
    // Links.
    fs.link(R, b("/a/b/f"), b("/g")).unwrap();
    assert_eq!(fs.stat(f).unwrap().nlink, 2);
    assert_eq!(fs.link(R, b("/a"), b("/a2")), Err(FsError::NotPermitted));
    assert_eq!(fs.link(R, b("/g"), b("/a/b/f")), Err(FsError::Exists));
    assert_eq!(fs.stat(f).unwrap().nlink, 2, "failed link changed nothing");
    assert_eq!(fs.link(R, b("/g"), b("/a/..")), Err(FsError::NotPermitted));
    assert_eq!(fs.link(R, b("/nope"), b("/x")), Err(FsError::NotFound));
    // Unlink rules.
    assert_eq!(fs.unlink(R, b("/a")), Err(FsError::NotEmpty));
    assert_eq!(fs.unlink(R, b("/a/b/.")), Err(FsError::NotPermitted));
    assert_eq!(fs.unlink(R, b("/a/b/..")), Err(FsError::NotPermitted));
    assert_eq!(fs.unlink(R, b("/")), Err(FsError::NotPermitted));
    assert_eq!(fs.unlink(R, b("/zz")), Err(FsError::NotFound));
    let free0 = fs.info().unwrap();
    fs.unlink(R, b("/a/b/f")).unwrap();
    assert_eq!(fs.stat(f).unwrap().nlink, 1);
    assert_eq!(file(&mut fs, "/g"), b"data");
    fs.unlink(R, b("/g")).unwrap();
    assert_eq!(fs.stat(f), Err(FsError::Stale));
    let free1 = fs.info().unwrap();
    assert_eq!(free1.free_blocks, free0.free_blocks + 1);
    assert_eq!(free1.free_inodes, free0.free_inodes + 1);
    fs.unlink(R, b("/a/b")).unwrap();
    assert_eq!(fs.stat(a.inum).unwrap().nlink, 1);
    fs.unlink(R, b("/a")).unwrap();
    assert_eq!(fs.stat(R).unwrap().nlink, 1);
    let i = fs.info().unwrap();
    assert_eq!((i.free_blocks, i.free_inodes), (1952, 198), "everything back");
    // A device node.
    let dev = fs.create(R, b("/console"), FileType::Device, 1, 7, false).unwrap();
    assert_eq!((dev.kind, dev.major, dev.minor), (FileType::Device, 1, 7));
    assert_eq!(fs.read(dev.inum, 0, &mut [0; 4]), Err(FsError::Invalid));
    assert_eq!(fs.write(dev.inum, 0, b"x"), Err(FsError::Invalid));
    assert_eq!(fs.create(R, b("/console"), FileType::Device, 1, 7, false).unwrap().inum, dev.inum);
    assert_eq!(fs.write(R, 0, b"x"), Err(FsError::IsDir));
    assert_eq!(fs.truncate(R, 0), Err(FsError::IsDir));
}

#[test]
fn truncate_shrinks_and_grows() {
    let mut fs = mount(fresh(2000, 200, Variant::Stock));
    let free0 = fs.info().unwrap().free_blocks;
    let data = pattern(1, 40 * 1024);
    let f = mkfile(&mut fs, "/t", &data);
    // 40 blocks + 1 indirect.
    assert_eq!(fs.info().unwrap().free_blocks, free0 - 41);
    fs.truncate(f, 20 * 1024 + 5).unwrap();
    assert_eq!(fs.stat(f).unwrap().size, 20 * 1024 + 5);
    assert_eq!(fs.info().unwrap().free_blocks, free0 - 22);
    assert_eq!(file(&mut fs, "/t"), &data[..20 * 1024 + 5]);
    // Growing reads zeros past the old end, also in the old last block.
    fs.truncate(f, 30 * 1024).unwrap();
    let v = file(&mut fs, "/t");
    assert_eq!(&v[..20 * 1024 + 5], &data[..20 * 1024 + 5]);
    assert!(v[20 * 1024 + 5..].iter().all(|&x| x == 0));
    assert_eq!(fs.info().unwrap().free_blocks, free0 - 31);
    fs.truncate(f, 11 * 1024).unwrap();
    assert_eq!(fs.info().unwrap().free_blocks, free0 - 11, "indirect block freed");
    fs.truncate(f, 0).unwrap();
    assert_eq!(fs.info().unwrap().free_blocks, free0);
    assert_eq!(fs.stat(f).unwrap().size, 0);
    assert_eq!(fs.truncate(f, 268 * 1024 + 1), Err(FsError::TooBig));
    fs.sync().unwrap();
    let mut fs = mount(fs.into_device());
    assert_eq!(fs.stat(f).unwrap().size, 0);
    assert_eq!(fs.info().unwrap().free_blocks, free0);
}

#[test]
fn stock_max_file_size() {
    let mut fs = mount(fresh(2000, 200, Variant::Stock));
    let max = 268 * 1024;
    let data = pattern(2, max);
    let f = mkfile(&mut fs, "/big", &data);
    assert_eq!(fs.stat(f).unwrap().size, max as u64);
    assert_eq!(fs.write(f, max as u64, b"x"), Err(FsError::TooBig));
    assert_eq!(fs.write(f, max as u64 - 1, b"xy"), Err(FsError::TooBig));
    assert_eq!(fs.write(f, u64::MAX - 1, b"xy"), Err(FsError::TooBig));
    assert_eq!(fs.write(f, max as u64 - 1, b"y").unwrap(), 1);
    let mut expect = data.clone();
    expect[max - 1] = b'y';
    fs.sync().unwrap();
    let mut fs = mount(fs.into_device());
    assert_eq!(file(&mut fs, "/big"), expect);
}

#[test]
fn large_variant_32mib_file() {
    // 80 MiB disk, large variant: a 32 MiB file reaches the doubly indirect block.
    let mut fs = mount(fresh(80 * 1024, 200, Variant::Large));
    let free0 = fs.info().unwrap().free_blocks;
    let len = 32 << 20;
    let data = pattern(3, len);
    let st = fs.create(R, b("/huge"), FileType::File, 0, 0, true).unwrap();
    let mut off = 0;
    for c in data.chunks(IO_MAX) {
        assert_eq!(fs.write(st.inum, off as u64, c).unwrap() as usize, c.len());
        off += c.len();
    }
    let nblocks = (len / BSIZE) as u32;
    // data + singly indirect + doubly indirect top + second-level blocks
    let l1 = (nblocks - 11 - 256).div_ceil(256);
    assert_eq!(fs.info().unwrap().free_blocks, free0 - nblocks - 1 - 1 - l1);
    fs.sync().unwrap();
    let mut fs = mount(fs.into_device());
    assert_eq!(fs.stat(st.inum).unwrap().size, len as u64);
    let mut back = vec![0u8; len];
    let mut off = 0;
    while off < len {
        let n = fs.read(st.inum, off as u64, &mut back[off..(off + IO_MAX).min(len)]).unwrap() as usize;
        off += n;
    }
    assert!(back == data, "32 MiB read back");
    // Overwrite a piece across the singly/doubly boundary and check it.
    let at = (11 + 256) * BSIZE as u64 - 100;
    fs.write(st.inum, at, &[7u8; 300]).unwrap();
    let mut small = [0u8; 300];
    fs.read(st.inum, at, &mut small).unwrap();
    assert_eq!(small, [7u8; 300]);
    // Max size of the variant.
    let max = Variant::Large.max_file_blocks() * BSIZE as u64;
    assert_eq!(fs.write(st.inum, max, b"x"), Err(FsError::TooBig));
    // Unlink frees everything (in several transactions: the second-level blocks change).
    let commits = fs.info().unwrap().commits;
    fs.unlink(R, b("/huge")).unwrap();
    assert!(fs.info().unwrap().commits > commits + 1, "multi-transaction unlink");
    assert_eq!(fs.info().unwrap().free_blocks, free0);
    assert_eq!(fs.stat(st.inum), Err(FsError::Stale));
}

#[test]
fn out_of_space_changes_nothing() {
    let mut fs = mount(fresh(200, 32, Variant::Stock));
    let free0 = fs.info().unwrap().free_blocks;
    let f = fs.create(R, b("/fill"), FileType::File, 0, 0, true).unwrap().inum;
    // Write until the disk is full: the last write is short, the next fails.
    let chunk = pattern(4, 8 * 1024);
    let mut off = 0u64;
    loop {
        match fs.write(f, off, &chunk) {
            Ok(n) if n as usize == chunk.len() => off += n as u64,
            Ok(n) => {
                off += n as u64;
                break;
            }
            Err(e) => {
                assert_eq!(e, FsError::NoSpace);
                break;
            }
        }
    }
    assert_eq!(fs.write(f, off, b"x"), Err(FsError::NoSpace));
    assert_eq!(fs.info().unwrap().free_blocks, 0);
    assert_eq!(fs.stat(f).unwrap().size, off);
    let before = snapshot(&mut fs, usize::MAX).unwrap();
    // A directory needs a block: refused whole (no inode left allocated, no entry).
    assert_eq!(fs.create(R, b("/d"), FileType::Dir, 0, 0, true), Err(FsError::NoSpace));
    assert_eq!(fs.truncate(f, off + 5000), Err(FsError::NoSpace));
    assert_eq!(snapshot(&mut fs, usize::MAX).unwrap(), before);
    fs.unlink(R, b("/fill")).unwrap();
    assert_eq!(fs.info().unwrap().free_blocks, free0);
    fs.create(R, b("/d"), FileType::Dir, 0, 0, true).unwrap();
}

#[test]
fn out_of_inodes() {
    let mut fs = mount(fresh(300, 16, Variant::Stock));
    // Inodes 2..15 are free.
    for i in 0..14 {
        fs.create(R, format!("/f{i}").as_bytes(), FileType::File, 0, 0, true).unwrap();
    }
    assert_eq!(fs.info().unwrap().free_inodes, 0);
    let before = snapshot(&mut fs, usize::MAX).unwrap();
    assert_eq!(fs.create(R, b("/x"), FileType::File, 0, 0, true), Err(FsError::NoInodes));
    assert_eq!(fs.create(R, b("/x"), FileType::Dir, 0, 0, true), Err(FsError::NoInodes));
    assert_eq!(snapshot(&mut fs, usize::MAX).unwrap(), before);
    fs.unlink(R, b("/f3")).unwrap();
    fs.create(R, b("/x"), FileType::File, 0, 0, true).unwrap();
}

#[test]
fn remount_sees_everything_and_stock_stays_stock() {
    let mut fs = mount(fresh(2000, 200, Variant::Stock));
    let mut rng = Rng::new(5);
    fs.create(R, b("/d1"), FileType::Dir, 0, 0, true).unwrap();
    fs.create(R, b("/d1/d2"), FileType::Dir, 0, 0, true).unwrap();
    for i in 0..20 {
        let len = rng.below(30_000) as usize;
        mkfile(&mut fs, &format!("/d1/d2/f{i}"), &pattern(i, len));
    }
    mkfile(&mut fs, "/top", &pattern(99, 70_000));
    fs.unlink(R, b("/d1/d2/f3")).unwrap();
    fs.link(R, b("/top"), b("/d1/top2")).unwrap();
    let before = snapshot(&mut fs, usize::MAX).unwrap();
    let (disk, r) = fs.unmount();
    r.unwrap();
    assert_eq!(u32_at(disk.block(1), 0), FSMAGIC, "a stock image stays stock");
    let mut fs = mount(disk);
    assert_eq!(fs.variant(), Variant::Stock);
    assert_eq!(snapshot(&mut fs, usize::MAX).unwrap(), before);
    assert_eq!(fs.info().unwrap().replayed, 0);
}

/// Index of the first commit-record write (the log header with n > 0) in `w`.
fn first_commit(w: &[BlockWrite], logstart: u64) -> Option<usize> {
    w.iter().position(|x| x.block == logstart && u32_at(&x.data, 0) > 0)
}

#[test]
fn log_replays_after_crash_between_commit_and_install() {
    let disk = fresh(2000, 200, Variant::Stock);
    let base = disk.image().to_vec();
    let mut fs = mount(RecordingDisk::new(disk));
    let f = mkfile(&mut fs, "/x", &pattern(7, 5000));
    fs.create(R, b("/dir"), FileType::Dir, 0, 0, true).unwrap();
    fs.sync().unwrap();
    let after = snapshot(&mut fs, usize::MAX).unwrap();
    let rec = fs.into_device();
    let h = first_commit(&rec.writes, 2).expect("a commit");
    let n = u32_at(&rec.writes[h].data, 0);
    // Everything up to and including the commit record, none of the installs.
    let mut img = base.clone();
    for w in &rec.writes[..=h] {
        img[w.block as usize * BSIZE..(w.block as usize + 1) * BSIZE].copy_from_slice(&w.data);
    }
    let mut fs = mount(MemDisk::from_image(img.clone()));
    assert_eq!(fs.info().unwrap().replayed, n);
    assert_eq!(snapshot(&mut fs, usize::MAX).unwrap(), after);
    assert_eq!(fs.stat(f).unwrap().size, 5000);
    // The log is clear afterwards: mounting again replays nothing.
    let mut fs = mount(fs.into_device());
    assert_eq!(fs.info().unwrap().replayed, 0);
    // A read-only device replays into the cache only.
    let mut ro = MemDisk::from_image(img);
    ro.set_read_only(true);
    let mut fs = mount(ro);
    assert_eq!(fs.info().unwrap().replayed, n);
    assert_eq!(snapshot(&mut fs, usize::MAX).unwrap(), after);
    assert_eq!(fs.create(R, b("/y"), FileType::File, 0, 0, true), Err(FsError::ReadOnly));
    assert_eq!(fs.write(f, 0, b"z"), Err(FsError::ReadOnly));
    // An existing file is still "created" (opened) on a read-only file system.
    assert_eq!(fs.create(R, b("/x"), FileType::File, 0, 0, false).unwrap().inum, f);
    fs.sync().unwrap();
}

#[test]
fn group_commit() {
    let mut fs = mount(RecordingDisk::new(fresh(2000, 200, Variant::Stock)));
    let c0 = fs.info().unwrap().commits;
    let f = fs.create(R, b("/a"), FileType::File, 0, 0, true).unwrap().inum;
    for i in 0..20u64 {
        fs.write(f, i * 10, b"0123456789").unwrap();
    }
    // 21 small operations on the same few blocks absorb into one open transaction.
    assert_eq!(fs.info().unwrap().commits, c0);
    assert_eq!(fs.pending_ops(), 21);
    assert!(fs.pending_blocks() <= 5, "{} blocks", fs.pending_blocks());
    let d = fs.device();
    let (writes, wc, fc) = (d.writes.len(), d.write_calls, d.flush_calls);
    assert_eq!(writes, 0, "nothing written before the commit");
    assert!(fs.tick().unwrap());
    assert_eq!(fs.info().unwrap().commits, c0 + 1);
    // One commit: the data block home and the metadata to the log in one call, a flush,
    // the commit record; the tick then flushes so that the record is durable.
    let d = fs.device();
    assert_eq!((d.write_calls - wc, d.flush_calls - fc), (2, 2));
    assert_eq!(fs.log_entries(), fs.stats().log_blocks as usize, "the log holds the transaction, not installed");
    // A tick with nothing committed since the last one installs the log: the blocks to
    // their homes, a flush, the header cleared, a flush.
    assert!(!fs.tick().unwrap(), "nothing left to commit");
    assert_eq!(fs.info().unwrap().commits, c0 + 1);
    let d = fs.device();
    assert_eq!((d.write_calls - wc, d.flush_calls - fc), (4, 4));
    assert_eq!(fs.log_entries(), 0);
    assert_eq!(fs.stats().checkpoints, 1);
    // Operations touching many blocks commit when the log has no room for another.
    for i in 0..20 {
        fs.create(R, format!("/d{i}").as_bytes(), FileType::Dir, 0, 0, true).unwrap();
        assert!(fs.pending_blocks() + MAXOPBLOCKS <= LOGBLOCKS);
    }
    assert!(fs.info().unwrap().commits > c0 + 1);
    // Uncommitted operations are lost in a crash, committed ones are not.
    fs.sync().unwrap();
    fs.create(R, b("/lost"), FileType::File, 0, 0, true).unwrap();
    let mut fs = mount(fs.into_device().inner);
    assert_eq!(fs.lookup(R, b("/lost")), Err(FsError::NotFound));
    assert!(fs.lookup(R, b("/d19")).is_ok());
    assert_eq!(fs.stat(f).unwrap().size, 200);
}

#[test]
fn batched_io() {
    let disk = fresh(2000, 200, Variant::Stock);
    let mut fs = mount(RecordingDisk::new(disk));
    // 60 blocks written in one go are placed contiguously (plus the indirect block).
    let data = pattern(8, 60 * 1024);
    let f = mkfile(&mut fs, "/run", &data);
    fs.sync().unwrap();
    let mut fs = mount(fs.into_device());
    let before = fs.device().read_calls;
    let mut back = vec![0u8; 60 * 1024];
    assert_eq!(fs.read(f, 0, &mut back).unwrap(), 60 * 1024);
    assert_eq!(back, data);
    let calls = fs.device().read_calls - before;
    // The data: one call (two runs around the indirect block); the metadata: the inode
    // block and the indirect block.
    assert!(calls <= 3, "{calls} read calls for 60 blocks");
    // Overwriting committed data goes through the log: a commit writes the log in one
    // request and the record; sync installs in one call and clears the header.
    fs.device_mut().writes.clear();
    let w0 = fs.device().write_calls;
    fs.write(f, 0, &pattern(9, 8 * 1024)).unwrap();
    fs.sync().unwrap();
    assert_eq!(fs.device().write_calls - w0, 4);
    assert_eq!(fs.stats().data_blocks, 0, "no data written home unlogged");
    // Every header the log ever held counts at most LOGBLOCKS blocks.
    assert!(fs.device().writes.iter().filter(|w| w.block == 2).all(|w| u32_at(&w.data, 0) as usize <= LOGBLOCKS));
}

#[test]
fn device_errors() {
    let mut fs = mount(FaultyDisk::new(fresh(2000, 200, Variant::Stock)));
    mkfile(&mut fs, "/a", &pattern(10, 20_000));
    fs.create(R, b("/dir"), FileType::Dir, 0, 0, true).unwrap();
    fs.sync().unwrap();
    let before = snapshot(&mut fs, usize::MAX).unwrap();
    // Cold cache: remount, then fail reads.
    let mut fs = mount(fs.into_device());
    fs.device_mut().fail_reads_after = Some(0);
    assert_eq!(fs.lookup(R, b("/a")), Err(FsError::Io));
    assert_eq!(fs.create(R, b("/new"), FileType::File, 0, 0, true), Err(FsError::Io));
    assert_eq!(fs.unlink(R, b("/a")), Err(FsError::Io));
    fs.device_mut().heal();
    assert_eq!(snapshot(&mut fs, usize::MAX).unwrap(), before, "failed reads changed nothing");
    // Fail reads part-way through operations: each is done whole or not at all.
    let outcomes = {
        let run = |unlink: bool, create: bool| {
            let mut f = mount(fs.device().inner.clone());
            if unlink {
                f.unlink(R, b("/a")).unwrap();
            }
            if create {
                f.create(R, b("/dir/x"), FileType::File, 0, 0, true).unwrap();
            }
            snapshot(&mut f, usize::MAX).unwrap()
        };
        [run(false, false), run(true, false), run(false, true), run(true, true)]
    };
    for k in 0..12 {
        let mut fs2 = mount(FaultyDisk::new(fs.device().inner.clone()));
        fs2.device_mut().fail_reads_after = Some(k);
        let r1 = fs2.unlink(R, b("/a"));
        let r2 = fs2.create(R, b("/dir/x"), FileType::File, 0, 0, true);
        fs2.device_mut().heal();
        let t = snapshot(&mut fs2, usize::MAX).unwrap();
        let want = &outcomes[r1.is_ok() as usize + 2 * r2.is_ok() as usize];
        assert!(t == *want, "k={k} {r1:?} {r2:?}: {}", t.diff(want));
    }
    // A failed commit poisons the file system; the disk recovers to a consistent state.
    fs.create(R, b("/b"), FileType::File, 0, 0, true).unwrap();
    fs.device_mut().fail_writes_after = Some(1);
    assert_eq!(fs.sync(), Err(FsError::Io));
    assert_eq!(fs.create(R, b("/c"), FileType::File, 0, 0, true), Err(FsError::Io));
    assert_eq!(fs.sync(), Err(FsError::Io));
    assert!(fs.lookup(R, b("/b")).is_ok(), "reads still work");
    let mut disk = fs.into_device();
    disk.heal();
    let mut fs = mount(disk);
    let t = snapshot(&mut fs, usize::MAX).unwrap();
    let mut with_b = before.clone();
    with_b.nodes.insert("/b".into(), Node::File { nlink: 1, size: 0, data: vec![] });
    with_b.free_inodes -= 1;
    assert!(t == before || t == with_b, "{}", t.diff(&before));
}

#[test]
fn mount_refusals_are_explained() {
    let good = fresh(2000, 200, Variant::Stock).into_image();
    let sb = SuperBlock::decode(&good[BSIZE..2 * BSIZE]);
    let try_sb = |f: &dyn Fn(&mut SuperBlock)| {
        let mut img = good.clone();
        let mut s = sb;
        f(&mut s);
        s.encode(&mut img[BSIZE..2 * BSIZE]);
        match FileSystem::mount(MemDisk::from_image(img)) {
            Ok(_) => None,
            Err((_, e)) => Some(e),
        }
    };
    assert_eq!(try_sb(&|_| {}), None);
    assert_eq!(try_sb(&|s| s.magic = 0x1234), Some(MountError::BadMagic(0x1234)));
    assert!(matches!(try_sb(&|s| s.size = 2001), Some(MountError::SizeBeyondDevice { .. })));
    for (what, f) in [
        ("logstart", &(|s: &mut SuperBlock| s.logstart = 1) as &dyn Fn(&mut SuperBlock)),
        ("nlog", &|s: &mut SuperBlock| s.nlog = 1),
        ("nlog small", &|s: &mut SuperBlock| s.nlog = 5),
        ("log overlap", &|s: &mut SuperBlock| s.nlog = 40),
        ("inodes", &|s: &mut SuperBlock| s.ninodes = 209),
        ("inodes 1", &|s: &mut SuperBlock| s.ninodes = 1),
        ("order", &|s: &mut SuperBlock| s.bmapstart = s.inodestart),
        ("nblocks", &|s: &mut SuperBlock| s.nblocks = 1960),
        ("nblocks 0", &|s: &mut SuperBlock| s.nblocks = 0),
        ("bitmap", &|s: &mut SuperBlock| s.size = 1000),
    ] {
        match try_sb(f) {
            Some(MountError::BadSuperblock(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    // The bitmap must cover the size.
    let mut big = MemDisk::new(9000);
    big.image_mut()[..good.len()].copy_from_slice(&good);
    let mut s = sb;
    s.size = 9000;
    s.nblocks = 9000 - 47;
    s.encode(&mut big.image_mut()[BSIZE..2 * BSIZE]);
    let e = FileSystem::mount(big).err().unwrap().1;
    assert_eq!(e, MountError::BadSuperblock("the bitmap does not cover the file system"));
    assert!(e.to_string().contains("bitmap"));
    // Log header.
    let mut img = good.clone();
    put_u32(&mut img, 2 * BSIZE, 31);
    assert!(matches!(FileSystem::mount(MemDisk::from_image(img)).err().unwrap().1, MountError::BadLog(_)));
    let mut img = good.clone();
    put_u32(&mut img, 2 * BSIZE, 1);
    put_u32(&mut img, 2 * BSIZE + 4, 1);
    assert!(matches!(FileSystem::mount(MemDisk::from_image(img)).err().unwrap().1, MountError::BadLog(_)));
    // Root.
    let mut img = good.clone();
    img[33 * BSIZE + 64] = T_FILE as u8;
    assert_eq!(FileSystem::mount(MemDisk::from_image(img)).err().unwrap().1, MountError::BadRoot);
    // Truncated device.
    assert!(matches!(FileSystem::mount(MemDisk::from_image(good[..BSIZE].to_vec())).err().unwrap().1, MountError::DeviceTooSmall(1)));
    assert!(matches!(
        FileSystem::mount(MemDisk::from_image(good[..1500 * BSIZE + 3].to_vec())).err().unwrap().1,
        MountError::SizeBeyondDevice { size: 2000, blocks: 1500 }
    ));
}

#[test]
fn orphan_freed_at_mount() {
    let mut fs = mount(fresh(2000, 200, Variant::Stock));
    let free0 = fs.info().unwrap();
    let f = mkfile(&mut fs, "/o", &pattern(11, 50_000));
    // Unlink's first half only: the entry goes, the inode keeps its blocks (as after a
    // crash between the transactions of a multi-transaction unlink).
    fs.atomic(|fs| {
        let (dp, name) = fs.nameiparent(R, b"/o")?;
        let d = fs.iread(dp)?;
        let (_, off) = fs.dirlookup(dp, &d, name.unwrap())?.unwrap();
        fs.write_small(dp, off, &[0; DIRENT_SIZE])?;
        let mut ino = fs.iread(f)?;
        ino.nlink = 0;
        fs.iwrite(f, &ino)
    })
    .unwrap();
    fs.sync().unwrap();
    assert!(fs.info().unwrap().free_blocks < free0.free_blocks);
    let mut fs = mount(fs.into_device());
    assert_eq!(fs.orphans_freed(), 1);
    let i = fs.info().unwrap();
    assert_eq!((i.free_blocks, i.free_inodes), (free0.free_blocks, free0.free_inodes));
}

/// Mounts with orphans kept (a restart of the fs domain).
fn mount_keeping<D: BlockDev>(d: D) -> FileSystem<D> {
    FileSystem::mount_with(d, MountOptions { keep_orphans: true, ..MountOptions::default() }).map_err(|(_, e)| e).expect("mount")
}

/// fsck's problems on the image the file system has synced.
fn fsck_of(fs: &mut FileSystem<MemDisk>) -> Vec<String> {
    fs.sync().unwrap();
    crate::fsck::check(fs.device().image())
}

#[test]
fn pread_reads_the_least_of_len_buffer_and_io_max() {
    let mut fs = mount(fresh(2000, 200, Variant::Stock));
    let size = IO_MAX + 5000;
    let data = pattern(40, size);
    let f = mkfile(&mut fs, "/p", &data);
    let mut buf = vec![0xaau8; 2 * IO_MAX];
    // len 0: nothing read, nothing touched.
    assert_eq!(fs.pread(f, 0, &mut buf, 0), Ok(0));
    assert!(buf.iter().all(|&x| x == 0xaa));
    // len past the buffer: the buffer's length.
    assert_eq!(fs.pread(f, 10, &mut buf[..100], 1000), Ok(100));
    assert_eq!(&buf[..100], &data[10..110]);
    assert_eq!(buf[100], 0xaa);
    // len shorter than the buffer: len, the rest untouched.
    assert_eq!(fs.pread(f, 7, &mut buf, 33), Ok(33));
    assert_eq!(&buf[..33], &data[7..40]);
    assert_eq!(buf[33..100], data[43..110], "the earlier read's bytes past it stay");
    // len and buffer past IO_MAX: IO_MAX.
    buf.fill(0xaa);
    assert_eq!(fs.pread(f, 0, &mut buf, u32::MAX), Ok(IO_MAX as u32));
    assert_eq!(&buf[..IO_MAX], &data[..IO_MAX]);
    assert!(buf[IO_MAX..].iter().all(|&x| x == 0xaa));
    assert_eq!(fs.pread(f, 0, &mut buf, IO_MAX as u32 + 1), Ok(IO_MAX as u32));
    // Up to the end, at the end, past it.
    assert_eq!(fs.pread(f, size as u64 - 10, &mut buf, 100), Ok(10));
    assert_eq!(&buf[..10], &data[size - 10..]);
    assert_eq!(fs.pread(f, size as u64, &mut buf, 100), Ok(0));
    assert_eq!(fs.pread(f, u64::MAX, &mut buf, 100), Ok(0));
    // Bad inode numbers, a device.
    assert_eq!(fs.pread(0, 0, &mut buf, 10), Err(FsError::Invalid));
    assert_eq!(fs.pread(200, 0, &mut buf, 10), Err(FsError::Invalid));
    assert_eq!(fs.pread(100, 0, &mut buf, 10), Err(FsError::Stale));
    assert_eq!(fs.pread(100, 0, &mut buf, 0), Err(FsError::Stale), "len 0 still checks the inode");
    let dev = fs.create(R, b("/dev"), FileType::Device, 1, 1, true).unwrap().inum;
    assert_eq!(fs.pread(dev, 0, &mut buf, 10), Err(FsError::Invalid));
}

#[test]
fn unlink_keep_leaves_an_orphan_usable_by_number_until_release() {
    let mut fs = mount(fresh(2000, 200, Variant::Stock));
    let free0 = fs.info().unwrap();
    let data = pattern(41, 50_000);
    let f = mkfile(&mut fs, "/o", &data);
    // Not the last link: only the name goes.
    fs.link(R, b("/o"), b("/o2")).unwrap();
    fs.unlink_keep(R, b("/o2")).unwrap();
    assert_eq!(fs.stat(f).unwrap().nlink, 1);
    // The last link: an orphan.
    fs.unlink_keep(R, b("/o")).unwrap();
    assert_eq!(fs.lookup(R, b("/o")), Err(FsError::NotFound));
    let st = fs.stat(f).unwrap();
    assert_eq!((st.kind, st.nlink, st.size), (FileType::File, 0, 50_000));
    let held = fs.info().unwrap();
    assert_eq!(held.free_inodes, free0.free_inodes - 1);
    assert_eq!(held.free_blocks, free0.free_blocks - 49 - 1, "49 data blocks and the indirect block");
    let mut back = vec![0; 50_000];
    assert_eq!(fs.read(f, 0, &mut back), Ok(50_000));
    assert_eq!(back, data);
    // Written, grown, truncated, by number.
    let more = pattern(42, 20_000);
    assert_eq!(fs.write(f, 50_000, &more), Ok(20_000));
    assert_eq!(fs.pread(f, 49_990, &mut back, 30), Ok(30));
    assert_eq!(&back[..10], &data[49_990..]);
    assert_eq!(&back[10..30], &more[..20]);
    fs.truncate(f, 3000).unwrap();
    assert_eq!(fs.stat(f).unwrap().size, 3000);
    assert_eq!(fs.info().unwrap().free_blocks, free0.free_blocks - 3);
    // Orphans are not for what needs links, nor reused by create.
    assert_eq!(fs.readdir(f, 0).map(drop), Err(FsError::Stale));
    assert_eq!(fs.lookup(f, b(".")), Err(FsError::Stale));
    let g = mkfile(&mut fs, "/g", b"linked");
    assert_ne!(g, f);
    // fsck sees the orphan (as after a crash inside an unlink).
    let p = fsck_of(&mut fs);
    assert!(p.len() == 1 && p[0].contains(&format!("inode {f} ")) && p[0].contains("not reachable"), "{p:?}");
    // A linked inode and the root are left alone.
    assert_eq!(fs.release(g), Ok(()));
    assert_eq!(fs.release(R), Ok(()));
    assert_eq!(file(&mut fs, "/g"), b"linked");
    assert_eq!(fs.stat(g).unwrap().nlink, 1);
    // Releasing frees the orphan and its blocks: the counts return exactly.
    fs.release(f).unwrap();
    assert_eq!(fs.stat(f), Err(FsError::Stale));
    assert_eq!(fs.read(f, 0, &mut back), Err(FsError::Stale));
    fs.unlink(R, b("/g")).unwrap();
    let i = fs.info().unwrap();
    assert_eq!((i.free_blocks, i.free_inodes), (free0.free_blocks, free0.free_inodes));
    // Free and out-of-range inodes.
    assert_eq!(fs.release(f), Err(FsError::Stale));
    assert_eq!(fs.release(0), Err(FsError::Invalid));
    assert_eq!(fs.release(200), Err(FsError::Invalid));
    assert_eq!(fs.release(u32::MAX), Err(FsError::Invalid));
    assert_eq!(fsck_of(&mut fs), Vec::<String>::new());
}

#[test]
fn unlink_keep_frees_directories_and_keeps_devices() {
    let mut fs = mount(fresh(2000, 200, Variant::Stock));
    let free0 = fs.info().unwrap();
    let d = fs.create(R, b("/d"), FileType::Dir, 0, 0, true).unwrap().inum;
    mkfile(&mut fs, "/d/x", b"x");
    assert_eq!(fs.unlink_keep(R, b("/d")), Err(FsError::NotEmpty));
    assert_eq!(fs.unlink_keep(R, b("/")), Err(FsError::NotPermitted));
    assert_eq!(fs.unlink_keep(R, b(".")), Err(FsError::NotPermitted));
    assert_eq!(fs.unlink_keep(R, b("..")), Err(FsError::NotPermitted));
    assert_eq!(fs.unlink_keep(d, b(".")), Err(FsError::NotPermitted));
    assert_eq!(fs.unlink_keep(R, b("/d/..")), Err(FsError::NotPermitted));
    assert_eq!(fs.unlink_keep(R, b("/missing")), Err(FsError::NotFound));
    // An empty directory goes as with `unlink`: freed with its last link.
    fs.unlink(R, b("/d/x")).unwrap();
    assert_eq!(fs.stat(R).unwrap().nlink, 2);
    fs.unlink_keep(R, b("/d")).unwrap();
    assert_eq!(fs.stat(d), Err(FsError::Stale));
    assert_eq!(fs.stat(R).unwrap().nlink, 1);
    let i = fs.info().unwrap();
    assert_eq!((i.free_blocks, i.free_inodes), (free0.free_blocks, free0.free_inodes));
    // A device node is kept like a file.
    let c = fs.create(R, b("/c"), FileType::Device, 3, 4, true).unwrap().inum;
    fs.unlink_keep(R, b("/c")).unwrap();
    let st = fs.stat(c).unwrap();
    assert_eq!((st.kind, st.nlink, st.major, st.minor), (FileType::Device, 0, 3, 4));
    fs.release(c).unwrap();
    assert_eq!(fs.stat(c), Err(FsError::Stale));
    assert_eq!(fs.info().unwrap().free_inodes, free0.free_inodes);
    assert_eq!(fsck_of(&mut fs), Vec::<String>::new());
}

#[test]
fn keep_orphans_mount_keeps_them_and_a_plain_mount_frees_them() {
    let mut fs = mount(fresh(2000, 200, Variant::Stock));
    let free0 = fs.info().unwrap();
    let data = pattern(43, 30_000);
    let f = mkfile(&mut fs, "/o", &data);
    fs.unlink_keep(R, b("/o")).unwrap();
    fs.sync().unwrap();
    let held = fs.info().unwrap();
    // A restart of the domain: the orphan is still there, readable and writable.
    let mut fs = mount_keeping(fs.into_device());
    assert_eq!(fs.orphans_freed(), 0);
    assert_eq!(fs.stat(f).unwrap().nlink, 0);
    let mut back = vec![0; 30_000];
    assert_eq!(fs.read(f, 0, &mut back), Ok(30_000));
    assert_eq!(back, data);
    assert_eq!(fs.write(f, 0, b"again"), Ok(5));
    let i = fs.info().unwrap();
    assert_eq!((i.free_blocks, i.free_inodes), (held.free_blocks, held.free_inodes));
    // A commit, not a sync: the mount after it recovers from the log.
    fs.commit().unwrap();
    let mut fs = mount_keeping(fs.into_device());
    assert_eq!(fs.pread(f, 0, &mut back, 5), Ok(5));
    assert_eq!(&back[..5], b"again");
    // The first mount after boot frees it.
    let mut fs = mount(fs.into_device());
    assert_eq!(fs.orphans_freed(), 1);
    assert_eq!(fs.stat(f), Err(FsError::Stale));
    let i = fs.info().unwrap();
    assert_eq!((i.free_blocks, i.free_inodes), (free0.free_blocks, free0.free_inodes));
    assert_eq!(fsck_of(&mut fs), Vec::<String>::new());
}

#[test]
fn log_size_is_a_format_parameter_validated_at_mount() {
    // Formatting: a stock image has xv6's 30 blocks; the large variant 10 to 255.
    assert_eq!(Params::new(2000, 200, Variant::Stock).log, 30);
    assert_eq!(Params::new(2000, 200, Variant::Large).log, 31);
    assert_eq!(Params::new(65536, 200, Variant::Large).log, 255);
    for (variant, log, ok) in [
        (Variant::Stock, 30, true),
        (Variant::Stock, 31, false),
        (Variant::Stock, 12, false),
        (Variant::Large, 10, true),
        (Variant::Large, 9, false),
        (Variant::Large, 255, true),
        (Variant::Large, 256, false),
    ] {
        let r = layout(&Params { size: 4000, ninodes: 200, variant, log });
        assert_eq!(r.is_ok(), ok, "{variant:?} log {log}: {r:?}");
        if let Ok(sb) = r {
            assert_eq!((sb.nlog, sb.inodestart), (log + 1, 2 + log + 1));
        } else {
            assert!(r.unwrap_err().to_string().contains("log"));
        }
    }
    // Mounting: the capacity is the superblock's, at most 255 on the large variant.
    let mut d = MemDisk::new(4000);
    format(&mut d, &Params { size: 4000, ninodes: 200, variant: Variant::Large, log: 100 }).unwrap();
    let img = d.into_image();
    let mut fs = mount(MemDisk::from_image(img.clone()));
    assert_eq!((fs.geometry().logcap, fs.info().unwrap().log_blocks), (100, 100));
    drop(fs);
    let header = |img: &[u8], n: u32| {
        let mut img = img.to_vec();
        put_u32(&mut img, 2 * BSIZE, n);
        for i in 0..n as usize {
            put_u32(&mut img, 2 * BSIZE + 4 + 4 * i, 200 + (i as u32 % 7));
        }
        FileSystem::mount(MemDisk::from_image(img)).err().map(|(_, e)| e)
    };
    assert_eq!(header(&img, 100), None, "a full log replays");
    assert!(matches!(header(&img, 101), Some(MountError::BadLog(_))));
    // The same image relabelled stock: xv6 uses at most 30 log blocks whatever nlog says,
    // and so does the file system: headers never name more.
    let mut stock = img.clone();
    put_u32(&mut stock, BSIZE, FSMAGIC);
    assert!(matches!(header(&stock, 31), Some(MountError::BadLog(_))));
    assert_eq!(header(&stock, 30), None);
    let mut fs = mount(RecordingDisk::new(MemDisk::from_image(stock)));
    assert_eq!(fs.geometry().logcap, LOGBLOCKS as u32);
    for i in 0..30 {
        fs.create(R, format!("/d{i}").as_bytes(), FileType::Dir, 0, 0, true).unwrap();
        fs.commit().unwrap();
    }
    fs.sync().unwrap();
    let headers: Vec<u32> = fs.device().writes.iter().filter(|w| w.block == 2).map(|w| u32_at(&w.data, 0)).collect();
    assert!(headers.iter().all(|&n| n as usize <= LOGBLOCKS), "{headers:?}");
    assert!(headers.iter().filter(|&&n| n > 0).count() >= 30, "appended commits");
    assert!(fs.stats().checkpoints >= 2, "the 30-block log filled and was installed");
}

/// The write path in counts: file data goes home once, unlogged; the log carries the
/// metadata; every commit costs one flush. Compare `tests_perf` for 8 MiB.
#[test]
fn fresh_data_is_written_once_and_not_logged() {
    let mut fs = mount(RecordingDisk::new(fresh(2000, 200, Variant::Stock)));
    let f = fs.create(R, b("/f"), FileType::File, 0, 0, true).unwrap().inum;
    fs.sync().unwrap();
    let (w0, c0, f0) = (fs.device().writes.len(), fs.device().write_calls, fs.device().flush_calls);
    let data = pattern(12, 200 * 1024);
    for (i, c) in data.chunks(64 * 1024).enumerate() {
        fs.write(f, (i * 64 * 1024) as u64, c).unwrap();
        fs.commit().unwrap();
    }
    fs.sync().unwrap();
    let d = fs.device();
    let st = fs.stats();
    assert_eq!(st.data_blocks, 200, "every data block home once");
    let written = d.writes.len() - w0;
    assert!(written < 200 + 40, "{written} blocks written for 200 data blocks");
    // Four commits (one per call), one flush each; the sync installs: three more.
    assert_eq!(st.commits, 4 + 1);
    assert!(d.flush_calls - f0 <= 4 + 3, "{} flushes", d.flush_calls - f0);
    assert!(d.write_calls - c0 <= 4 * 3 + 2 + 2, "{} write calls", d.write_calls - c0);
    let mut fs = mount(fs.into_device().inner);
    assert_eq!(file(&mut fs, "/f"), data);
}
