//! Fuzz target `fs`: file-system images (`frond-fslib`): fsck, mount, walk, operations.
//!
//! The input is a disk image of up to [`BLOCKS`] 1 KiB blocks (shorter inputs are padded
//! with zero blocks, so a seed needs only its non-zero prefix). For each image:
//!
//! 1. `fsck::check_report` reads it (must return, whatever the bytes);
//! 2. it is mounted on a disk that refuses any write outside `[2, size)`. Mount either
//!    fails with a `MountError` whose message is not empty, or succeeds; then every file
//!    and directory reachable from the root is walked (`readdir`, `lookup`, `stat`,
//!    `read`; bounded: at most [`WALK_NODES`] entries and [`WALK_BYTES`] bytes read),
//!    and a few operations run (create, write, truncate, mkdir, link, unlink, sync),
//!    each allowed to fail with an `FsError` but not to panic. Then it is unmounted.
//!
//! Checked: nothing panics, loops or allocates without bound (the allocation guard of
//! `frond-fuzz`, libFuzzer's timeout); no write leaves `[2, size)`; and fsck and the
//! file system agree: an image fsck finds clean mounts, walks without `Corrupt`, and is
//! still clean after the operations and the unmount.
//!
//! Seeds, written by `init`: small images of both variants made by `mkfs::format` and
//! filled through the operations (directories, small files, a file with an indirect
//! block, a device), one with a committed transaction still in the log.

#![no_main]

use frond_fslib::dev::{MemDisk, RangeCheckDisk};
use frond_fslib::fsck;
use frond_fslib::layout::{SuperBlock, Variant, BSIZE, MAXOPBLOCKS, ROOTINO};
use frond_fslib::mkfs::{format, Params};
use frond_fslib::{FileSystem, MountOptions};
use frond_interface::fs::{FileType, FsError};
use libfuzzer_sys::fuzz_target;

/// Device size in blocks: room for a stock image (xv6's 30-block log) with a few data
/// blocks, and for the large variant with a 10-block log and 30 data blocks.
const BLOCKS: usize = 48;
/// Directory entries the walk visits at most.
const WALK_NODES: usize = 256;
/// File bytes the walk reads at most.
const WALK_BYTES: usize = 64 * 1024;

type Disk = RangeCheckDisk<MemDisk>;

fn mkimage(variant: Variant, log: u32, pending: bool) -> Vec<u8> {
    let mut d = MemDisk::new(BLOCKS as u64);
    format(&mut d, &Params { size: BLOCKS as u32, ninodes: 32, variant, log }).expect("format");
    let mut fs = FileSystem::mount(d).unwrap_or_else(|(_, e)| panic!("mount: {e}"));
    for dir in ["/d", "/d/e"] {
        fs.create(ROOTINO, dir.as_bytes(), FileType::Dir, 0, 0, true).unwrap();
    }
    let files: &[(&str, usize)] = if variant == Variant::Stock { &[("/a", 100), ("/d/b", 1500)] } else { &[("/a", 100), ("/d/b", 1500), ("/d/e/big", 13 * 1024)] };
    for &(name, len) in files {
        let st = fs.create(ROOTINO, name.as_bytes(), FileType::File, 0, 0, true).unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
        fs.write(st.inum, 0, &data).unwrap();
    }
    fs.create(ROOTINO, b"/dev", FileType::Device, 1, 2, true).unwrap();
    fs.link(ROOTINO, b"/a", b"/d/e/a2").unwrap();
    if pending {
        fs.sync().unwrap();
        let st = fs.create(ROOTINO, b"/late", FileType::File, 0, 0, true).unwrap();
        fs.write(st.inum, 0, b"committed, not installed").unwrap();
        fs.commit().unwrap();
        let mut img = fs.into_device().into_image();
        trim(&mut img);
        return img;
    }
    fs.sync().unwrap();
    let (d, r) = fs.unmount();
    r.unwrap();
    let mut img = d.into_image();
    trim(&mut img);
    img
}

/// Drops trailing zero bytes (the target pads them back).
fn trim(img: &mut Vec<u8>) {
    let end = img.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    img.truncate(end);
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("stock", mkimage(Variant::Stock, 30, false)),
        ("large", mkimage(Variant::Large, MAXOPBLOCKS as u32, false)),
        ("large-pending-log", mkimage(Variant::Large, MAXOPBLOCKS as u32, true)),
    ]
}

/// Walks the tree; `Err` on the first `FsError` (the walk's budget running out is `Ok`).
fn walk(fs: &mut FileSystem<Disk>) -> Result<(), FsError> {
    let mut stack = vec![ROOTINO];
    let mut seen = vec![ROOTINO];
    let (mut nodes, mut bytes) = (0usize, 0usize);
    let mut buf = vec![0u8; 4096];
    while let Some(dir) = stack.pop() {
        let mut from = 0;
        loop {
            let chunk = fs.readdir(dir, from)?;
            for e in chunk.entries.iter().take(chunk.n as usize) {
                nodes += 1;
                if nodes > WALK_NODES {
                    return Ok(());
                }
                let name = e.name();
                if name == b"." || name == b".." {
                    continue;
                }
                let st = fs.lookup(dir, name)?;
                let st2 = fs.stat(st.inum)?;
                assert_eq!(st.inum, st2.inum);
                match st.kind {
                    FileType::Dir => {
                        if !seen.contains(&st.inum) {
                            seen.push(st.inum);
                            stack.push(st.inum);
                        }
                    }
                    FileType::File => {
                        let mut off = 0u64;
                        while off < st.size && bytes < WALK_BYTES {
                            let n = fs.read(st.inum, off, &mut buf)? as usize;
                            if n == 0 {
                                break;
                            }
                            assert!(n <= buf.len());
                            off += n as u64;
                            bytes += n;
                        }
                    }
                    FileType::Device => {}
                }
            }
            match chunk.next {
                Some(n) if n > from => from = n,
                Some(_) => panic!("readdir's next does not advance"),
                None => break,
            }
        }
    }
    Ok(())
}

/// A few operations; failures are fine, panics are not.
fn operate(fs: &mut FileSystem<Disk>) -> Result<(), FsError> {
    let st = fs.create(ROOTINO, b"/fz", FileType::File, 0, 0, false)?;
    let data = [0x5au8; 3000];
    fs.write(st.inum, 0, &data)?;
    fs.write(st.inum, 5000, &data[..100])?;
    fs.truncate(st.inum, 1000)?;
    fs.create(ROOTINO, b"/fzd", FileType::Dir, 0, 0, false)?;
    fs.link(ROOTINO, b"/fz", b"/fzd/l")?;
    fs.unlink(ROOTINO, b"/fz")?;
    fs.commit()?;
    fs.sync()
}

fuzz_target!(
    init: {
        frond_fuzz::write_seeds(&seeds());
    },
    |data: &[u8]| {
        let mut img = vec![0u8; BLOCKS * BSIZE];
        let n = data.len().min(img.len());
        img[..n].copy_from_slice(&data[..n]);

        let report = fsck::check_report(&img);
        let clean = report.is_clean();
        let sb = SuperBlock::decode(&img[BSIZE..2 * BSIZE]);
        let hi = (sb.size as u64).min(BLOCKS as u64);
        let disk = RangeCheckDisk::new(MemDisk::from_image(img), 2, hi);
        let opts = MountOptions { cache_blocks: 128, keep_orphans: false };
        let mut fs = match FileSystem::mount_with(disk, opts) {
            Ok(fs) => fs,
            Err((disk, e)) => {
                assert!(!e.to_string().is_empty());
                assert!(disk.violations.is_empty(), "mount wrote outside [2, size): {:?}", disk.violations);
                assert!(!clean, "fsck finds the image clean but mount refuses it: {e}");
                return;
            }
        };
        let walked = walk(&mut fs);
        if clean {
            assert_ne!(walked, Err(FsError::Corrupt), "fsck finds the image clean but the walk finds it corrupt");
        }
        let op = operate(&mut fs);
        let (disk, unmounted) = fs.unmount();
        assert!(disk.violations.is_empty(), "a write outside [2, size): {:?}", disk.violations);
        if clean {
            // Ordinary refusals (no space, no inode, a name taken by the image) are fine;
            // `Corrupt` on an image fsck finds clean is a disagreement.
            assert_ne!(op, Err(FsError::Corrupt), "an operation on a clean image reports corruption");
            assert_eq!(unmounted, Ok(()));
            let after = fsck::check(disk.inner.image());
            assert!(after.is_empty(), "a clean image is not clean after operations: {after:?}");
        }
    }
);
