//! # dom-membdev — the RAM disk
//!
//! Exports `Block` over `BlkArgs::ram_blocks` blocks of memory in the domain's private
//! heap (RedLeaf's membdev): the same interface, request validation and statistics as the
//! virtio-blk driver, with no device. The storage is allocated at init in chunks of
//! [`CHUNK_BLOCKS`] blocks, zeroed; if the heap refuses one, init frees what it got, prints
//! why and panics (the kernel contains the panic and reports it). Its contents live as
//! long as the domain: a restart starts from zeroes.
//!
//! May depend on: `frond-interface`, `frond-domrt`, `rref`. `#![forbid(unsafe_code)]`.
//!
//! Invariants: block `b` lives in chunk `b / CHUNK_BLOCKS` at byte
//! `(b % CHUNK_BLOCKS) * BLOCK_SIZE`; every chunk but the last holds `CHUNK_BLOCKS`
//! blocks; requests are validated against the lent buffer and the disk's size before any
//! byte moves; `flush` has nothing to do (memory is as durable as it gets); one lock
//! covers storage and counters, so concurrent calls see each other's writes whole.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;
use frond_domrt::sync::Mutex;
use frond_domrt::Syscalls;
use frond_interface::blk::{
    BlkArgs, BlkError, BlkInfo, BlkReqs, BlkStats, Block, BlockKind, BLK_REQS_MAX, BLOCK_SIZE,
};
use frond_interface::{RRefVec, Remote, RpcResult};

frond_domrt::entry!(BlockKind, init);

/// Blocks per allocation (64 KiB).
const CHUNK_BLOCKS: u64 = 64;

fn init(sys: &'static dyn Syscalls, (args,): (BlkArgs,)) -> Remote<dyn Block> {
    let blocks = args.ram_blocks;
    let disk = match Disk::new(blocks) {
        Ok(d) => d,
        Err(got) => {
            // What was allocated is freed by now, so formatting has room.
            let msg = format!(
                "membdev: the heap refused {} blocks ({} MiB): allocation failed after {} blocks",
                blocks,
                mib(blocks),
                got
            );
            sys.print(&msg);
            panic!("{msg}");
        }
    };
    sys.print(&format!("membdev: {} blocks ({} MiB)", blocks, mib(blocks)));
    Remote::local(Box::new(MemBdev { state: Mutex::new((disk, BlkStats::default())) }))
}

fn mib(blocks: u64) -> u64 {
    blocks.saturating_mul(BLOCK_SIZE as u64) >> 20
}

struct Disk {
    chunks: Vec<Vec<u8>>,
    blocks: u64,
}

impl Disk {
    /// Zeroed storage for `blocks` blocks, or the number of blocks allocated when the
    /// heap refused the next chunk (everything is freed again).
    fn new(blocks: u64) -> Result<Self, u64> {
        let n = usize::try_from(blocks.div_ceil(CHUNK_BLOCKS)).map_err(|_| 0u64)?;
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        chunks.try_reserve_exact(n).map_err(|_| 0u64)?;
        for i in 0..n as u64 {
            let in_chunk = (blocks - i * CHUNK_BLOCKS).min(CHUNK_BLOCKS);
            let mut c = Vec::new();
            if c.try_reserve_exact(in_chunk as usize * BLOCK_SIZE).is_err() {
                return Err(i * CHUNK_BLOCKS);
            }
            c.resize(in_chunk as usize * BLOCK_SIZE, 0);
            chunks.push(c);
        }
        Ok(Self { chunks, blocks })
    }

    /// The bytes of block `b` (inside the disk: requests are validated first).
    fn block(&self, b: u64) -> &[u8] {
        let at = (b % CHUNK_BLOCKS) as usize * BLOCK_SIZE;
        &self.chunks[(b / CHUNK_BLOCKS) as usize][at..at + BLOCK_SIZE]
    }

    fn block_mut(&mut self, b: u64) -> &mut [u8] {
        let at = (b % CHUNK_BLOCKS) as usize * BLOCK_SIZE;
        &mut self.chunks[(b / CHUNK_BLOCKS) as usize][at..at + BLOCK_SIZE]
    }
}

struct MemBdev {
    state: Mutex<(Disk, BlkStats)>,
}

impl Block for MemBdev {
    fn info(&self) -> RpcResult<BlkInfo> {
        let s = self.state.lock();
        Ok(BlkInfo {
            block_size: BLOCK_SIZE as u32,
            blocks: s.0.blocks,
            read_only: false,
            queue_depth: BLK_REQS_MAX as u16,
            bdf: 0xffff,
        })
    }

    fn stats(&self) -> RpcResult<BlkStats> {
        Ok(self.state.lock().1)
    }

    fn read(&self, reqs: BlkReqs, buf: &mut RRefVec<u8>) -> RpcResult<Result<(), BlkError>> {
        let mut s = self.state.lock();
        let (disk, stats) = &mut *s;
        if let Err(e) = reqs.validate(buf.len(), disk.blocks) {
            return Ok(Err(e));
        }
        for r in reqs.as_slice() {
            for k in 0..r.count as u64 {
                let at = r.offset as usize + k as usize * BLOCK_SIZE;
                buf[at..at + BLOCK_SIZE].copy_from_slice(disk.block(r.block + k));
            }
            stats.reads += 1;
            stats.read_blocks += r.count as u64;
        }
        Ok(Ok(()))
    }

    fn write(&self, reqs: BlkReqs, buf: &RRefVec<u8>) -> RpcResult<Result<(), BlkError>> {
        let mut s = self.state.lock();
        let (disk, stats) = &mut *s;
        if let Err(e) = reqs.validate(buf.len(), disk.blocks) {
            return Ok(Err(e));
        }
        for r in reqs.as_slice() {
            for k in 0..r.count as u64 {
                let at = r.offset as usize + k as usize * BLOCK_SIZE;
                disk.block_mut(r.block + k).copy_from_slice(&buf[at..at + BLOCK_SIZE]);
            }
            stats.writes += 1;
            stats.written_blocks += r.count as u64;
        }
        Ok(Ok(()))
    }

    fn flush(&self) -> RpcResult<Result<(), BlkError>> {
        self.state.lock().1.flushes += 1;
        Ok(Ok(()))
    }
}
