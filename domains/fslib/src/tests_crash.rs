//! Crash consistency: run operations on a disk that records every block write, then for
//! every cut point k mount the image holding only the first k writes (as after a power
//! cut) and compare what recovery shows with the states at the transaction boundaries.
//!
//! Writes between two flushes may reach the disk in any order, so the runs are also
//! checked under reordering: for every stretch of writes between flushes, images holding
//! everything before it plus subsets of it (all subsets of a short stretch, sampled ones
//! of a long one) must recover to the state of the last commit record they hold.

use frond_interface::fs::FileType;

use crate::dev::*;
use crate::layout::*;
use crate::mkfs::{format, Params};
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
    /// Commit the open transaction (what the fs domain does after each call).
    Commit,
    /// The domain's timer.
    Tick,
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
        Op::Commit => fs.commit(),
        Op::Tick => fs.tick().map(drop),
    };
    r.unwrap_or_else(|e| panic!("{op:?}: {e:?}"));
}

fn is_header(w: &BlockWrite, logstart: u64) -> bool {
    w.block == logstart
}

/// Index just past each commit record (a log-header write with n > 0) in `w`.
fn commit_points(w: &[BlockWrite], logstart: u64) -> Vec<usize> {
    w.iter().enumerate().filter(|(_, x)| is_header(x, logstart) && u32_at(&x.data, 0) > 0).map(|(i, _)| i + 1).collect()
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

/// One recorded run: the image before it, every block write and flush, the tree after
/// each commit (`states[0]`: before any), and (writes done, commits done) when each sync
/// returned.
struct Run {
    base: Vec<u8>,
    writes: Vec<BlockWrite>,
    flushes: Vec<usize>,
    states: Vec<Tree>,
    syncs: Vec<(usize, usize)>,
    logcap: u32,
}

/// How to run a sequence.
#[derive(Clone, Copy)]
struct Cfg {
    variant: Variant,
    size: u32,
    /// Log blocks (without the header).
    log: u32,
    /// Requests of one call land in reverse order.
    reverse: bool,
}

impl Cfg {
    fn new(variant: Variant, log: u32) -> Self {
        Cfg { variant, size: 400, log, reverse: false }
    }
}

/// Runs `ops` on a fresh image, recording. Each operation is meant to commit at most
/// once, so that commits fall on operation boundaries (asserted).
fn record(cfg: Cfg, ops: &[Op]) -> Run {
    let mut disk = MemDisk::new(cfg.size as u64);
    format(&mut disk, &Params { size: cfg.size, ninodes: 64, variant: cfg.variant, log: cfg.log }).unwrap();
    let base = disk.image().to_vec();
    let mut rec = RecordingDisk::new(disk);
    rec.reverse_within_call = cfg.reverse;
    let mut fs = mount(rec);
    assert!(fs.device().writes.is_empty(), "mounting a clean image writes nothing");
    let logcap = fs.geometry().logcap;
    assert_eq!(logcap, cfg.log);
    let mut states = vec![snapshot(&mut fs, usize::MAX).unwrap()];
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
    let rec = fs.into_device();
    let logstart = 2;
    for w in rec.writes.iter().filter(|w| is_header(w, logstart)) {
        assert!(u32_at(&w.data, 0) <= logcap, "a header names more blocks than the log holds");
    }
    Run { base, writes: rec.writes, flushes: rec.flushes, states, syncs, logcap }
}

/// Every prefix of the writes (a power cut after the k-th write, writes landing in
/// order) recovers to the state of the last commit record in it. Returns the number of
/// cut points tried.
fn check_prefixes(run: &Run) -> usize {
    let commits = commit_points(&run.writes, 2);
    assert_eq!(commits.len() + 1, run.states.len(), "one commit record per commit");
    let mut img = run.base.clone();
    let mut distinct = 0;
    let mut last: Option<Tree> = None;
    for k in 0..=run.writes.len() {
        if k > 0 {
            apply_write(&mut img, &run.writes[k - 1]);
        }
        let j = commits.iter().filter(|&&c| c <= k).count();
        let (t, _) = recover(img.clone());
        assert!(t == run.states[j], "cut {k}/{}: expected the state after commit {j}: {}", run.writes.len(), t.diff(&run.states[j]));
        for &(w, c) in &run.syncs {
            if k >= w {
                assert!(j >= c, "cut {k}: a completed sync's commit {c} is lost");
            }
        }
        if last.as_ref() != Some(&t) {
            distinct += 1;
        }
        last = Some(t);
    }
    assert_eq!(distinct, run.states.len(), "every transaction state was seen, in order");
    run.writes.len() + 1
}

/// Writes between two flushes may land in any order, and a power cut keeps any subset
/// of them (a later write of the same block may be lost while an earlier one landed, so
/// "a subset, applied in order" covers every outcome). For each stretch between flushes,
/// images holding all writes before it and a subset of it — every subset of a stretch of
/// up to `EXHAUSTIVE` writes, else `SAMPLES` random ones plus each "all but one" — must
/// recover to the state named by the last header write they hold. Returns the number of
/// images tried.
fn check_reordered(run: &Run, seed: u64) -> usize {
    const EXHAUSTIVE: usize = 6;
    const SAMPLES: usize = 24;
    let logstart = 2;
    // The state each header write stands for: a record names the commit it ends; a
    // cleared header the last commit before it (the log was installed first).
    let mut state_of = vec![0usize; run.writes.len()];
    let mut c = 0;
    for (i, w) in run.writes.iter().enumerate() {
        if is_header(w, logstart) {
            if u32_at(&w.data, 0) > 0 {
                c += 1;
            }
            state_of[i] = c;
        }
    }
    let mut bounds: Vec<usize> = run.flushes.clone();
    bounds.push(run.writes.len());
    bounds.dedup();
    let mut rng = Rng::new(seed);
    let mut tried = 0;
    let mut img = run.base.clone();
    let mut start = 0;
    let mut durable_state = 0;
    for &end in &bounds {
        if end <= start {
            continue;
        }
        let w = end - start;
        let mut subsets: Vec<Vec<bool>> = Vec::new();
        if w <= EXHAUSTIVE {
            for m in 0..1u32 << w {
                subsets.push((0..w).map(|i| m & (1 << i) != 0).collect());
            }
        } else {
            for _ in 0..SAMPLES {
                subsets.push((0..w).map(|_| rng.below(2) == 0).collect());
            }
            for skip in 0..w {
                subsets.push((0..w).map(|i| i != skip).collect());
            }
        }
        for keep in subsets {
            let mut cut = img.clone();
            let mut j = durable_state;
            for (i, &k) in keep.iter().enumerate() {
                if k {
                    let wr = &run.writes[start + i];
                    apply_write(&mut cut, wr);
                    if is_header(wr, logstart) {
                        j = state_of[start + i];
                    }
                }
            }
            let (t, _) = recover(cut);
            assert!(
                t == run.states[j],
                "writes {start}..{end}, kept {:?}: expected the state after commit {j}: {}",
                keep.iter().map(|&k| k as u8).collect::<Vec<_>>(),
                t.diff(&run.states[j])
            );
            for &(sw, sc) in &run.syncs {
                if start >= sw {
                    assert!(j >= sc, "a completed sync's commit {sc} is lost");
                }
            }
            tried += 1;
        }
        for (wr, &st) in run.writes[start..end].iter().zip(&state_of[start..end]) {
            apply_write(&mut img, wr);
            if is_header(wr, logstart) {
                durable_state = st;
            }
        }
        start = end;
    }
    tried
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

/// Fresh blocks (written home before the commit record), overwrites of committed blocks
/// (logged), appends into a block allocated in the same transaction, truncate and
/// rewrite (the freed blocks must not be reused before the freeing commit is durable),
/// unlink and create, all committed after each call as the fs domain does, with the
/// timer's flush and idle checkpoint in between.
fn ordered_sequence() -> Vec<Op> {
    use Op::*;
    let seq = vec![
        Create("/f"),
        // 20 blocks, through the singly indirect block: all fresh.
        Write("/f", 0, 20 * 1024, 21),
        Commit,
        // Overwrite committed blocks (partly), append a fresh partial block, append
        // again into that block in the same transaction.
        Write("/f", 4096 + 300, 3000, 22),
        Write("/f", 20 * 1024, 1500, 23),
        Write("/f", 20 * 1024 + 1500, 700, 24),
        Commit,
        // Truncate frees committed blocks; the rewrite in the same transaction must take
        // other blocks.
        Truncate("/f", 2048 + 10),
        Write("/f", 2048 + 10, 14 * 1024, 25),
        Commit,
        // Free again, rewrite right after the commit (its record not flushed yet).
        Truncate("/f", 1024),
        Commit,
        Write("/f", 1024, 8 * 1024, 26),
        Commit,
        Create("/g"),
        Write("/g", 0, 10 * 1024, 27),
        Commit,
        Unlink("/g"),
        Create("/h"),
        Write("/h", 0, 10 * 1024, 28),
        Commit,
        Tick,
        Tick,
        // Overwrite a whole committed file region: logged.
        Write("/h", 0, 4 * 1024, 29),
        Commit,
        Mkdir("/d"),
        Create("/d/x"),
        Write("/d/x", 0, 5000, 30),
        Commit,
        Unlink("/f"),
        Commit,
        Write("/d/x", 5000, 6000, 31),
        Write("/h", 10 * 1024, 3 * 1024, 32),
        Sync,
        Truncate("/h", 0),
        Write("/d/x", 0, 2000, 33),
        Commit,
        Create("/k"),
        Write("/k", 0, 12 * 1024, 34),
        Commit,
        Tick,
    ];
    seq
}

#[test]
fn every_cut_point_recovers_a_transaction_boundary() {
    let mut total = 0;
    let synced: Vec<Op> = sequence().into_iter().flat_map(|op| [op, Op::Sync]).collect();
    let committed: Vec<Op> = sequence().into_iter().flat_map(|op| [op, Op::Commit]).collect();
    let stock = Cfg::new(Variant::Stock, LOGBLOCKS as u32);
    let large = Cfg::new(Variant::Large, LOGBLOCKS as u32);
    for (cfg, ops, what) in [
        (stock, sequence(), "group commit"),
        (Cfg { reverse: true, ..stock }, sequence(), "group commit, reverse order within calls"),
        (large, sequence(), "group commit, large variant"),
        (stock, synced.clone(), "sync after every operation"),
        (Cfg { reverse: true, ..large }, synced, "sync after every operation, large, reverse order"),
        (stock, committed.clone(), "commit after every operation"),
        (Cfg::new(Variant::Large, LOG_MAX as u32), committed, "commit after every operation, large, 255-block log"),
    ] {
        let run = record(cfg, &ops);
        let n = check_prefixes(&run);
        println!("crash: {what}: all {n} cut points recovered to a transaction boundary");
        total += n;
    }
    assert!(total > 300, "{total} cut points");
}

#[test]
fn ordered_data_every_cut_point() {
    let mut total = 0;
    let stock = Cfg::new(Variant::Stock, LOGBLOCKS as u32);
    for (cfg, what) in [
        (stock, "stock, 30-block log"),
        (Cfg { reverse: true, ..stock }, "stock, reverse order within calls"),
        (Cfg::new(Variant::Large, LOG_MAX as u32), "large, 255-block log"),
        (Cfg::new(Variant::Large, MAXOPBLOCKS as u32 + 2), "large, 12-block log (a checkpoint every few commits)"),
    ] {
        let run = record(cfg, &ordered_sequence());
        let n = check_prefixes(&run);
        let max_n = run.writes.iter().filter(|w| is_header(w, 2)).map(|w| u32_at(&w.data, 0)).max().unwrap_or(0);
        println!(
            "crash: ordered data, {what}: all {n} cut points recovered to a transaction boundary ({} commits, log header up to {max_n} of {} blocks)",
            run.states.len() - 1,
            run.logcap
        );
        total += n;
    }
    assert!(total > 500, "{total} cut points");
}

/// The same runs, with the writes between flushes landing in any order.
#[test]
fn reordered_writes_between_flushes_recover_a_commit() {
    let stock = Cfg::new(Variant::Stock, LOGBLOCKS as u32);
    let committed: Vec<Op> = sequence().into_iter().flat_map(|op| [op, Op::Commit]).collect();
    let mut total = 0;
    for (cfg, ops, what) in [
        (stock, ordered_sequence(), "ordered data, stock"),
        (Cfg::new(Variant::Large, LOG_MAX as u32), ordered_sequence(), "ordered data, large, 255-block log"),
        (Cfg::new(Variant::Large, MAXOPBLOCKS as u32 + 2), ordered_sequence(), "ordered data, large, 12-block log"),
        (stock, sequence(), "group commit, stock"),
        (stock, committed, "commit after every operation, stock"),
    ] {
        let run = record(cfg, &ops);
        let n = check_reordered(&run, 7);
        println!("crash: {what}: {n} reordered images over {} flush intervals recovered to a commit", run.flushes.len() + 1);
        total += n;
    }
    assert!(total > 1000, "{total} images");
}

/// A full disk: a file truncated and rewritten in one transaction can only get the
/// blocks the truncate freed; they are taken, but logged (their committed contents stay
/// at home until the commit is durable). Every cut, in order and reordered.
#[test]
fn full_disk_reuses_freed_blocks_through_the_log() {
    use Op::*;
    let cfg = Cfg { size: 200, ..Cfg::new(Variant::Stock, LOGBLOCKS as u32) };
    let mut disk = MemDisk::new(200);
    format(&mut disk, &Params { size: 200, ninodes: 64, variant: Variant::Stock, log: LOGBLOCKS as u32 }).unwrap();
    let free = mount(disk).info().unwrap().free_blocks as usize;
    // Fill all but the indirect block's worth with one file: 12 direct + indirect + rest.
    let blocks = free - 1;
    let mut ops = vec![Create("/f")];
    let mut off = 0;
    while off < blocks * 1024 {
        let n = (blocks * 1024 - off).min(20 * 1024);
        ops.push(Write("/f", off as u64, n, 40 + off as u64));
        ops.push(Commit);
        off += n;
    }
    ops.push(Sync);
    // Free the tail and write it again in the same transaction: no clean block is left.
    ops.push(Truncate("/f", 30 * 1024));
    ops.push(Write("/f", 30 * 1024, 6 * 1024, 99));
    ops.push(Commit);
    ops.push(Truncate("/f", 20 * 1024));
    ops.push(Write("/f", 20 * 1024, 5 * 1024, 98));
    ops.push(Sync);
    let run = record(cfg, &ops);
    let mut fs = mount(MemDisk::from_image(run.base.clone()));
    assert!(fs.info().unwrap().free_blocks as usize == free);
    let n = check_prefixes(&run);
    let m = check_reordered(&run, 3);
    println!("crash: full disk, freed blocks reused through the log: {n} cut points, {m} reordered images");
}

/// A write of many logged blocks (an overwrite of committed data) is several
/// transactions: every cut shows the old data with a prefix of the new written over it.
#[test]
fn big_overwrite_leaves_a_prefix() {
    let base = fresh(600, 64, Variant::Stock);
    let mut fs = mount(base);
    let old = pattern(20, 65 * 1024);
    let inum = mkfile(&mut fs, "/f", &old);
    fs.sync().unwrap();
    let free0 = fs.info().unwrap().free_blocks;
    let base_img = fs.into_device().into_image();
    let mut fs = mount(RecordingDisk::new(MemDisk::from_image(base_img.clone())));
    let new = pattern(21, 60 * 1024);
    assert_eq!(fs.write(inum, 5 * 1024, &new).unwrap() as usize, new.len());
    fs.sync().unwrap();
    let writes = fs.into_device().writes;
    let mut img = base_img;
    let mut done = Vec::new();
    for k in 0..=writes.len() {
        if k > 0 {
            apply_write(&mut img, &writes[k - 1]);
        }
        let (_, rimg) = recover(img.clone());
        let mut fs = mount(MemDisk::from_image(rimg));
        let v = file(&mut fs, "/f");
        assert_eq!(v.len(), old.len(), "cut {k}: size");
        // How much of the new data is there: a prefix, the rest old.
        let x = (0..new.len()).take_while(|&i| v[5 * 1024 + i] == new[i]).count();
        assert_eq!(&v[..5 * 1024], &old[..5 * 1024], "cut {k}: before the write");
        assert_eq!(&v[5 * 1024..5 * 1024 + x], &new[..x], "cut {k}: a prefix of the new data");
        assert_eq!(&v[5 * 1024 + x..], &old[5 * 1024 + x..], "cut {k}: the old data after it");
        assert_eq!(fs.info().unwrap().free_blocks, free0, "cut {k}: no block allocated or freed");
        if done.last() != Some(&x) {
            assert!(done.last().is_none_or(|&l| l < x), "prefix only grows");
            done.push(x);
        }
    }
    assert_eq!(done.last(), Some(&new.len()));
    assert!(done.len() >= 3, "the write took several transactions: {done:?}");
    println!("crash: 60 KiB overwrite, {} cut points, {} distinct prefixes", writes.len() + 1, done.len());
}

/// A big append goes home unlogged and commits with its inode: a cut shows the file
/// before the write or with all of it, never blocks of it without the size or the size
/// without the blocks.
#[test]
fn big_append_is_all_or_nothing() {
    let base = fresh(600, 64, Variant::Stock);
    let mut fs = mount(base);
    let old = pattern(20, 5 * 1024);
    let inum = mkfile(&mut fs, "/f", &old);
    fs.sync().unwrap();
    let free0 = fs.info().unwrap().free_blocks as u64;
    let base_img = fs.into_device().into_image();
    let mut fs = mount(RecordingDisk::new(MemDisk::from_image(base_img.clone())));
    let new = pattern(21, 60 * 1024);
    assert_eq!(fs.write(inum, 5 * 1024, &new).unwrap() as usize, new.len());
    fs.sync().unwrap();
    let rec = fs.into_device();
    let logged = rec.writes.iter().filter(|w| (3..33).contains(&w.block)).count();
    assert!(logged <= 4, "the data was not logged: {logged} log block writes");
    let mut img = base_img;
    let mut seen = Vec::new();
    for k in 0..=rec.writes.len() {
        if k > 0 {
            apply_write(&mut img, &rec.writes[k - 1]);
        }
        let (_, rimg) = recover(img.clone());
        let mut fs = mount(MemDisk::from_image(rimg));
        let v = file(&mut fs, "/f");
        let free = fs.info().unwrap().free_blocks as u64;
        if v.len() == old.len() {
            assert_eq!(v, old, "cut {k}");
            assert_eq!(free, free0, "cut {k}");
        } else {
            assert_eq!(&v[..old.len()], &old[..], "cut {k}");
            assert_eq!(&v[old.len()..], &new[..], "cut {k}");
            assert_eq!(free, free0 - 61, "cut {k}: 60 blocks and the indirect block");
        }
        if seen.last() != Some(&v.len()) {
            seen.push(v.len());
        }
    }
    assert_eq!(seen, vec![old.len(), old.len() + new.len()]);
    println!("crash: 60 KiB append, {} cut points, all or nothing", rec.writes.len() + 1);
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
        // Up to the cut the disk is the same, so are the writes; after it the file system
        // may read back blocks whose writes were dropped (data written home, then
        // partly overwritten) and write differently, which no longer matters.
        assert!(rec.writes.len() >= k && rec.writes[..k] == all[..k], "cut {k}: the same writes up to the cut");
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

/// A log of more than 64 entries (one read or install call's worth): many commits in the
/// 255-block log of the large variant, none installed. Cut right after the last record,
/// mount replays them all (in chunks), on a writable and on a read-only device.
#[test]
fn long_log_replays_in_chunks() {
    let mut ops = Vec::new();
    for i in 0..30 {
        let d: &'static str = Box::leak(format!("/d{i}").into_boxed_str());
        let f: &'static str = Box::leak(format!("/d{i}/f").into_boxed_str());
        ops.extend([Op::Mkdir(d), Op::Commit, Op::Create(f), Op::Write(f, 0, 1500 + i * 10, 50 + i as u64), Op::Commit]);
    }
    let run = record(Cfg { size: 1200, ..Cfg::new(Variant::Large, LOG_MAX as u32) }, &ops);
    let last = commit_points(&run.writes, 2).last().copied().unwrap();
    let n = u32_at(&run.writes[last - 1].data, 0);
    assert!(n > 64, "the log holds {n} entries");
    let mut img = run.base.clone();
    for w in &run.writes[..last] {
        apply_write(&mut img, w);
    }
    let want = run.states.last().unwrap();
    let mut ro = MemDisk::from_image(img.clone());
    ro.set_read_only(true);
    let mut fs = mount(ro);
    assert_eq!(fs.info().unwrap().replayed, n);
    assert!(snapshot(&mut fs, usize::MAX).unwrap() == *want, "read-only replay");
    let (t, _) = recover(img);
    assert!(t == *want, "replay");
    let cuts = check_prefixes(&run);
    println!("crash: {} commits in one log of up to {n} entries: replayed in chunks; {cuts} cut points", run.states.len() - 1);
}

/// Blocks named by the log must not take unlogged data until the log is installed:
/// replaying it would write their logged (stale) copies over the data. A file's
/// indirect block and overwritten data blocks are logged, the file is freed, and a new
/// file wraps around the disk onto its blocks while the log still names them.
#[test]
fn logged_blocks_are_not_reused_unlogged_before_a_checkpoint() {
    use Op::*;
    let ops = vec![
        Create("/a"),
        Write("/a", 0, 13 * 1024, 60),
        Commit,
        Write("/a", 0, 2 * 1024, 61),
        Commit,
        Create("/b"),
        Write("/b", 0, 280 * 1024, 62),
        Commit,
        Truncate("/a", 0),
        Commit,
        Create("/c"),
        Commit,
        Write("/c", 0, 40 * 1024, 63),
        Commit,
        Write("/c", 40 * 1024, 3 * 1024, 64),
        Commit,
    ];
    let run = record(Cfg { size: 600, ..Cfg::new(Variant::Large, LOG_MAX as u32) }, &ops);
    let n = check_prefixes(&run);
    let m = check_reordered(&run, 5);
    println!("crash: freed log homes not reused unlogged: {n} cut points, {m} reordered images");
}

/// A file unlinked with `unlink_keep`, overwritten while it is an orphan, then released
/// in several transactions. Every cut: a plain mount frees whatever is left of the
/// orphan (the tree, the free counts and fsck as before the file existed, or as with it
/// before the unlink committed); a mount keeping orphans shows it by number with its
/// old or new bytes, and releasing it then leaves the same clean state.
#[test]
fn cut_between_unlink_keep_and_release_recovers_without_leaks() {
    use crate::MountOptions;
    // Large variant, ~5 MiB: the release changes 20 second-level blocks, more than one
    // transaction holds.
    let mut fs = mount(fresh(8000, 64, Variant::Large));
    let before = snapshot(&mut fs, 0).unwrap();
    let old = pattern(31, (11 + 256 + 19 * 256 + 10) * BSIZE);
    let inum = mkfile(&mut fs, "/big", &old);
    fs.sync().unwrap();
    let with = snapshot(&mut fs, 0).unwrap();
    let base_img = fs.into_device().into_image();
    let new = pattern(32, 5000);
    let mut fs = mount(RecordingDisk::new(MemDisk::from_image(base_img.clone())));
    fs.unlink_keep(R, b"/big").unwrap();
    fs.commit().unwrap();
    assert_eq!(fs.write(inum, 0, &new), Ok(5000));
    fs.commit().unwrap();
    fs.release(inum).unwrap();
    fs.sync().unwrap();
    let writes = fs.into_device().writes;
    let points = commit_points(&writes, 2);
    assert!(points.len() >= 4, "unlink_keep, write and a release of {} commits", points.len() - 2);
    let mut img = base_img;
    let mut kept = 0;
    for k in 0..=writes.len() {
        if k > 0 {
            apply_write(&mut img, &writes[k - 1]);
        }
        let unlinked = points.first().is_some_and(|&p| k >= p);
        let want = if unlinked { &before } else { &with };
        let mut fs = mount(MemDisk::from_image(img.clone()));
        let t = snapshot(&mut fs, 0).unwrap();
        assert!(t == *want, "cut {k}: {}", t.diff(want));
        let problems = crate::fsck::check(&fs.into_device().into_image());
        assert!(problems.is_empty(), "cut {k}: fsck: {problems:?}");
        // A restart of the fs domain instead: the orphan is there until released.
        let opts = MountOptions { keep_orphans: true, ..MountOptions::default() };
        let mut fs = FileSystem::mount_with(MemDisk::from_image(img.clone()), opts).map_err(|(_, e)| e).unwrap();
        match fs.stat(inum) {
            Ok(st) if st.nlink == 0 => {
                assert!(unlinked, "cut {k}");
                if st.size >= 5000 {
                    let mut head = vec![0; 5000];
                    assert_eq!(fs.read(inum, 0, &mut head), Ok(5000));
                    assert!(head == old[..5000] || head == new, "cut {k}: the old bytes or the new");
                }
                fs.release(inum).unwrap();
                kept += 1;
            }
            Ok(st) => assert!(!unlinked && st.nlink == 1, "cut {k}: nlink {}", st.nlink),
            Err(e) => assert!(unlinked && e == frond_interface::fs::FsError::Stale, "cut {k}: {e:?}"),
        }
        fs.sync().unwrap();
        let problems = crate::fsck::check(fs.device().image());
        assert!(problems.is_empty(), "cut {k}, kept and released: fsck: {problems:?}");
        let t = snapshot(&mut fs, 0).unwrap();
        assert!(t == *want, "cut {k}, kept and released: {}", t.diff(want));
    }
    assert!(kept > 0, "some cut left the orphan");
    println!("crash: unlink_keep, write, release: {} cut points, {kept} kept orphans released", writes.len() + 1);
}
