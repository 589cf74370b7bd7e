//! Crash consistency: run operations on a disk that records every block write, then for
//! every cut point k mount the image holding only the first k writes (as after a power
//! cut) and compare what recovery shows with the states at the transaction boundaries.

use frond_interface::fs::FileType;

use crate::dev::*;
use crate::layout::*;
use crate::testutil::*;
use crate::FileSystem;

const R: u32 = ROOTINO;

type Rec = RecordingDisk<MemDisk>;

#[derive(Clone, Debug)]
enum Op {
    Mkdir(&'static str),
    Create(&'static str),
    /// path, offset, length, pattern seed
    Write(&'static str, u64, usize, u64),
    Truncate(&'static str, u64),
    Link(&'static str, &'static str),
    Unlink(&'static str),
    Sync,
}

fn apply(fs: &mut FileSystem<Rec>, op: &Op) {
    let r = match *op {
        Op::Mkdir(p) => fs.create(R, p.as_bytes(), FileType::Dir, 0, 0, true).map(drop),
        Op::Create(p) => fs.create(R, p.as_bytes(), FileType::File, 0, 0, true).map(drop),
        Op::Write(p, off, len, seed) => {
            let inum = fs.lookup(R, p.as_bytes()).unwrap().inum;
            fs.write(inum, off, &pattern(seed, len)).map(|n| assert_eq!(n as usize, len))
        }
        Op::Truncate(p, size) => {
            let inum = fs.lookup(R, p.as_bytes()).unwrap().inum;
            fs.truncate(inum, size)
        }
        Op::Link(a, b) => fs.link(R, a.as_bytes(), b.as_bytes()),
        Op::Unlink(p) => fs.unlink(R, p.as_bytes()),
        Op::Sync => fs.sync(),
    };
    r.unwrap_or_else(|e| panic!("{op:?}: {e:?}"));
}

/// Index just past each commit record (a log-header write with n > 0) in `w`.
fn commit_points(w: &[BlockWrite], logstart: u64) -> Vec<usize> {
    w.iter().enumerate().filter(|(_, x)| x.block == logstart && u32_at(&x.data, 0) > 0).map(|(i, _)| i + 1).collect()
}

/// Mounts `img` (recovering), snapshots it, checks fsck and that recovery left a clean
/// log and a stable state.
fn recover(img: Vec<u8>) -> (Tree, Vec<u8>) {
    let mut fs = mount(MemDisk::from_image(img));
    let t = snapshot(&mut fs, usize::MAX).unwrap_or_else(|e| panic!("recovered tree: {e:?}"));
    let img = fs.into_device().into_image();
    assert_eq!(u32_at(&img, 2 * BSIZE), 0, "log cleared after recovery");
    let problems = crate::fsck::check(&img);
    assert!(problems.is_empty(), "fsck: {problems:?}");
    (t, img)
}

fn apply_write(img: &mut [u8], w: &BlockWrite) {
    let at = w.block as usize * BSIZE;
    img[at..at + BSIZE].copy_from_slice(&w.data);
}

/// Runs `ops` on a fresh image and checks every cut point. Each operation is meant to be
/// one transaction-sized step, so that commits fall on operation boundaries (asserted).
/// Returns the number of cut points tried.
fn every_cut(variant: Variant, size: u32, ops: &[Op], reverse: bool) -> usize {
    let base = fresh(size, 64, variant);
    let base_img = base.image().to_vec();
    let mut rec = RecordingDisk::new(base);
    rec.reverse_within_call = reverse;
    let mut fs = mount(rec);
    assert!(fs.device().writes.is_empty(), "mounting a clean image writes nothing");
    // states[j]: the tree after the j-th commit (states[0]: before any).
    let mut states = vec![snapshot(&mut fs, usize::MAX).unwrap()];
    // (writes done when a sync returned, commits by then)
    let mut syncs = Vec::new();
    for op in ops {
        let c0 = fs.info().unwrap().commits;
        apply(&mut fs, op);
        let c1 = fs.info().unwrap().commits;
        let now = snapshot(&mut fs, usize::MAX).unwrap();
        match c1 - c0 {
            0 => {}
            1 => {
                assert_eq!(fs.pending_blocks(), 0, "{op:?}: the commit must end the operation");
                states.push(now);
            }
            n => panic!("{op:?} committed {n} times: split it"),
        }
        if let Op::Sync = op {
            syncs.push((fs.device().writes.len(), c1 as usize));
        }
    }
    let writes = fs.into_device().writes;
    let commits = commit_points(&writes, 2);
    assert_eq!(commits.len() + 1, states.len(), "one commit record per commit");
    let mut img = base_img;
    let mut distinct = 0;
    let mut last: Option<Tree> = None;
    for k in 0..=writes.len() {
        if k > 0 {
            apply_write(&mut img, &writes[k - 1]);
        }
        let j = commits.iter().filter(|&&c| c <= k).count();
        let (t, _) = recover(img.clone());
        assert!(t == states[j], "cut {k}/{}: expected the state after commit {j}: {}", writes.len(), t.diff(&states[j]));
        for &(w, c) in &syncs {
            if k >= w {
                assert!(j >= c, "cut {k}: a completed sync's commit {c} is lost");
            }
        }
        if last.as_ref() != Some(&t) {
            distinct += 1;
        }
        last = Some(t);
    }
    assert_eq!(distinct, states.len(), "every transaction state was seen, in order");
    writes.len() + 1
}

fn sequence() -> Vec<Op> {
    use Op::*;
    vec![
        Mkdir("/d"),
        Create("/d/a"),
        Write("/d/a", 0, 4096, 1),
        Write("/d/a", 4096, 4096, 2),
        Write("/d/a", 8192, 4096, 3),
        // Into the singly indirect block.
        Write("/d/a", 12288, 4096, 4),
        Write("/d/a", 16384, 3000, 5),
        Create("/b"),
        Write("/b", 0, 3000, 6),
        Sync,
        Mkdir("/d/e"),
        Create("/d/e/c"),
        Write("/d/e/c", 0, 2000, 7),
        Link("/b", "/d/b2"),
        Unlink("/b"),
        // Shrink below the indirect block (frees it), then grow back into it.
        Truncate("/d/a", 5000),
        Write("/d/a", 9000, 4000, 8),
        Sync,
        Write("/d/e/c", 500, 100, 9),
        Unlink("/d/e/c"),
        Unlink("/d/e"),
        Create("/z"),
        Truncate("/d/b2", 0),
        Write("/d/a", 100, 50, 10),
        Mkdir("/y"),
        Sync,
    ]
}

#[test]
fn every_cut_point_recovers_a_transaction_boundary() {
    let mut total = 0;
    let synced: Vec<Op> = sequence().into_iter().flat_map(|op| [op, Op::Sync]).collect();
    for (variant, reverse, ops, what) in [
        (Variant::Stock, false, sequence(), "group commit"),
        (Variant::Stock, true, sequence(), "group commit, reverse order within calls"),
        (Variant::Large, false, sequence(), "group commit, large variant"),
        (Variant::Stock, false, synced.clone(), "sync after every operation"),
        (Variant::Large, true, synced, "sync after every operation, large, reverse order"),
    ] {
        let n = every_cut(variant, 400, &ops, reverse);
        println!("crash: {what}: all {n} cut points recovered to a transaction boundary");
        total += n;
    }
    assert!(total > 300, "{total} cut points");
}

/// A write of many blocks is several transactions: every cut shows a prefix of it.
#[test]
fn big_write_leaves_a_prefix() {
    let base = fresh(600, 64, Variant::Stock);
    let mut fs = mount(base);
    let old = pattern(20, 5 * 1024);
    let inum = mkfile(&mut fs, "/f", &old);
    fs.sync().unwrap();
    let free0 = fs.info().unwrap().free_blocks as u64 + 5;
    let base_img = fs.into_device().into_image();
    let mut fs = mount(RecordingDisk::new(MemDisk::from_image(base_img.clone())));
    let new = pattern(21, 60 * 1024);
    assert_eq!(fs.write(inum, 5 * 1024, &new).unwrap() as usize, new.len());
    fs.sync().unwrap();
    let writes = fs.into_device().writes;
    let mut img = base_img;
    let mut sizes = Vec::new();
    for k in 0..=writes.len() {
        if k > 0 {
            apply_write(&mut img, &writes[k - 1]);
        }
        let (_, rimg) = recover(img.clone());
        let mut fs = mount(MemDisk::from_image(rimg));
        let v = file(&mut fs, "/f");
        let s = v.len();
        assert!(s >= old.len() && s <= old.len() + new.len(), "cut {k}: size {s}");
        assert_eq!(&v[..old.len()], &old[..], "cut {k}: old data");
        assert_eq!(&v[old.len()..], &new[..s - old.len()], "cut {k}: a prefix of the new data");
        let blocks = (s as u64).div_ceil(BSIZE as u64);
        let used = blocks + if blocks > 12 { 1 } else { 0 };
        assert_eq!(fs.info().unwrap().free_blocks as u64, free0 - used, "cut {k}: blocks match the size");
        if sizes.last() != Some(&s) {
            assert!(sizes.last().is_none_or(|&l| l < s), "prefix only grows");
            sizes.push(s);
        }
    }
    assert_eq!(sizes.last(), Some(&(old.len() + new.len())));
    assert!(sizes.len() >= 3, "the write took several transactions: {sizes:?}");
    println!("crash: 60 KiB write, {} cut points, {} distinct prefixes", writes.len() + 1, sizes.len());
}

/// Unlinking a file whose freeing takes several transactions: a cut after the first
/// commit leaves an orphan, which mount frees.
#[test]
fn multi_transaction_unlink_recovers_without_leaks() {
    // Large variant, ~10 MiB file: freeing it changes 40 second-level blocks, more
    // than one transaction holds.
    let mut fs = mount(fresh(12_000, 64, Variant::Large));
    let before = snapshot(&mut fs, 0).unwrap();
    let data = pattern(30, (11 + 256 + 39 * 256 + 10) * BSIZE);
    mkfile(&mut fs, "/big", &data);
    fs.sync().unwrap();
    let with = snapshot(&mut fs, 0).unwrap();
    let base_img = fs.into_device().into_image();
    let mut fs = mount(RecordingDisk::new(MemDisk::from_image(base_img.clone())));
    fs.unlink(R, b"/big").unwrap();
    fs.sync().unwrap();
    let writes = fs.into_device().writes;
    let points = commit_points(&writes, 2);
    assert!(points.len() >= 2, "unlink took {} commits", points.len());
    let mut img = base_img;
    let mut orphans = 0;
    for k in 0..=writes.len() {
        if k > 0 {
            apply_write(&mut img, &writes[k - 1]);
        }
        let mut fs = mount(MemDisk::from_image(img.clone()));
        orphans += fs.orphans_freed();
        let t = snapshot(&mut fs, 0).unwrap();
        let want = if points.first().is_some_and(|&p| k >= p) { &before } else { &with };
        assert!(t == *want, "cut {k}: {}", t.diff(want));
    }
    assert!(orphans > 0, "some cut left an orphan");
    println!("crash: multi-transaction unlink, {} cut points, {orphans} orphans freed at mount", writes.len() + 1);
}

/// `stop_after(k)` leaves the disk as the first k recorded writes made it, and the file
/// system mounts from it as from the cut images above.
#[test]
fn power_cut_with_stop_after() {
    let base = fresh(400, 64, Variant::Stock);
    let base_img = base.image().to_vec();
    let mut fs = mount(RecordingDisk::new(base.clone()));
    for op in sequence() {
        apply(&mut fs, &op);
    }
    let all = fs.into_device().writes;
    let mut tried = 0;
    for k in (0..all.len()).step_by(9) {
        let mut rec = RecordingDisk::new(base.clone());
        rec.stop_after(k);
        let mut fs = mount(rec);
        for op in sequence() {
            apply(&mut fs, &op);
        }
        let rec = fs.into_device();
        assert!(rec.stopped());
        assert_eq!(rec.writes, all, "the same writes were attempted");
        let mut img = base_img.clone();
        for w in &all[..k] {
            apply_write(&mut img, w);
        }
        assert!(rec.inner.image() == &img[..], "cut {k}: only the first k writes landed");
        let (t, _) = recover(rec.inner.into_image());
        let (want, _) = recover(img);
        assert_eq!(t, want);
        tried += 1;
    }
    assert!(tried > 5);
}
