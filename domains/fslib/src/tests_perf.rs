//! The write path in device terms: sequential 64 KiB writes counted on a recording disk
//! (calls, blocks, flushes, commits), and the file system's CPU time on the host.
//!
//! Before ordered data, the appending log and the deferred record flush (every data block
//! logged and installed, a 30-block log, four flushes per commit), 8 MiB in 64 KiB calls
//! committed after each call cost 1536 write calls, 19,582 blocks (2.39 per data block),
//! 1537 flushes and 384 commits: 192 flushes and 192 write calls per MiB.

use frond_interface::fs::{FileType, IO_MAX};

use crate::dev::*;
use crate::layout::*;
use crate::mkfs::{format, Params};
use crate::testutil::*;
use crate::FsStats;

#[derive(Debug)]
struct Cost {
    write_calls: u64,
    blocks: u64,
    flushes: u64,
    commits: u64,
    stats: FsStats,
}

/// Writes `mib` MiB in 64 KiB calls to a fresh file on a large-variant image with the
/// default log, committing after every call if `commit_each` (as the fs domain does),
/// then syncs.
fn sequential(mib: usize, commit_each: bool) -> Cost {
    let size = mib as u32 * 1024 + 4096;
    let mut disk = MemDisk::new(size as u64);
    format(&mut disk, &Params::new(size, 200, Variant::Large)).unwrap();
    let mut fs = mount(RecordingDisk::new(disk));
    let f = fs.create(ROOTINO, b"/seq", FileType::File, 0, 0, true).unwrap().inum;
    fs.sync().unwrap();
    let (w0, c0) = (fs.device().writes.len(), fs.info().unwrap().commits);
    let (wc0, fc0) = (fs.device().write_calls, fs.device().flush_calls);
    let chunk = pattern(1, IO_MAX);
    for i in 0..mib * 16 {
        assert_eq!(fs.write(f, (i * IO_MAX) as u64, &chunk).unwrap() as usize, IO_MAX);
        if commit_each {
            fs.commit().unwrap();
        }
    }
    fs.sync().unwrap();
    let d = fs.device();
    Cost {
        write_calls: d.write_calls - wc0,
        blocks: (d.writes.len() - w0) as u64,
        flushes: d.flush_calls - fc0,
        commits: fs.info().unwrap().commits - c0,
        stats: fs.stats(),
    }
}

#[test]
fn sequential_write_cost() {
    let mib = 8;
    let data = (mib * 1024) as f64;
    for each in [true, false] {
        let c = sequential(mib, each);
        let per_block = c.blocks as f64 / data;
        let flushes = c.flushes as f64 / mib as f64;
        let calls = c.write_calls as f64 / mib as f64;
        println!(
            "perf: {mib} MiB in 64 KiB calls{}: {} write calls, {} blocks, {} flushes, {} commits, {} checkpoints; {per_block:.2} blocks written per data block, {flushes:.1} flushes/MiB, {calls:.1} write calls/MiB",
            if each { ", committed after each call" } else { "" },
            c.write_calls,
            c.blocks,
            c.flushes,
            c.commits,
            c.stats.checkpoints,
        );
        // Every data block goes home once, unlogged.
        assert_eq!(c.stats.data_blocks, data as u64);
        assert!(per_block < 1.12, "{per_block:.2} blocks per data block");
        if each {
            // Per call: the data (one call), the log, the record, and one flush.
            assert_eq!(c.commits, mib as u64 * 16);
            assert!(flushes < 20.0 && calls < 52.0, "{flushes:.1} flushes/MiB, {calls:.1} write calls/MiB");
        } else {
            assert!(flushes < 2.0 && calls < 18.0, "{flushes:.1} flushes/MiB, {calls:.1} write calls/MiB");
        }
    }
}

/// CPU time of the write and read paths on the host (a memory disk, so no device cost),
/// 32 MiB in 64 KiB calls committed after each. Not run by default (`--ignored`).
#[test]
#[ignore]
fn write_path_cpu_time() {
    let size = 40 * 1024;
    let mut disk = MemDisk::new(size as u64);
    format(&mut disk, &Params::new(size, 200, Variant::Large)).unwrap();
    let mut fs = mount(disk);
    let f = fs.create(ROOTINO, b"/seq", FileType::File, 0, 0, true).unwrap().inum;
    let chunk = pattern(1, IO_MAX);
    let t = std::time::Instant::now();
    for i in 0..512 {
        fs.write(f, (i * IO_MAX) as u64, &chunk).unwrap();
        fs.commit().unwrap();
    }
    fs.sync().unwrap();
    let w = t.elapsed();
    let mut buf = vec![0u8; IO_MAX];
    let t = std::time::Instant::now();
    for i in 0..512 {
        fs.read(f, (i * IO_MAX) as u64, &mut buf).unwrap();
    }
    println!("perf: 32 MiB on a memory disk: write {w:?}, read {:?}", t.elapsed());
}
