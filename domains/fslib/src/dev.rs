//! The device the file system runs on ([`BlockDev`]), a memory image ([`MemDisk`]) and
//! wrappers that test the file system against a misbehaving or crashing disk.
//!
//! A call names up to [`BLK_REQS_MAX`] requests inside the first [`BLK_BYTES_MAX`] bytes of
//! one buffer the device fills or drains directly (in the fs domain the buffer is an
//! `RRefVec<u8>` lent to the block driver, which DMAs into it), so the file system batches:
//! one call per run of file blocks, one per log write, one per install.
//!
//! The wrappers are ordinary no_std code so the fs domain's and fsck's tests can use them:
//! * [`RecordingDisk`]: keeps every block write in order and can stop applying writes after
//!   the k-th one (a power cut), for crash-consistency tests;
//! * [`FaultyDisk`]: fails reads, writes or flushes on demand (`BlkError::Io`);
//! * [`RangeCheckDisk`]: refuses and counts every write outside an allowed block range.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::DerefMut;

pub use frond_interface::blk::{BlkError, BlkReq, BlkReqs, BLK_BYTES_MAX, BLK_REQS_MAX, BLOCK_SIZE};

/// A block device: 1024-byte blocks, batched requests into or out of one buffer.
pub trait BlockDev {
    /// A buffer the device reads into and writes from.
    type Buf: DerefMut<Target = [u8]>;
    /// A zeroed buffer of `len` bytes (`None`: out of memory).
    fn alloc_buf(&mut self, len: usize) -> Option<Self::Buf>;
    /// Blocks on the device.
    fn blocks(&self) -> u64;
    fn read_only(&self) -> bool;
    /// Reads each request's blocks into `buf` at its offset.
    fn read(&mut self, reqs: &BlkReqs, buf: &mut Self::Buf) -> Result<(), BlkError>;
    /// Writes each request's blocks from `buf` at its offset. Requests of one call may
    /// land in any order; an order across calls needs a [`flush`](Self::flush).
    fn write(&mut self, reqs: &BlkReqs, buf: &Self::Buf) -> Result<(), BlkError>;
    /// Returns when every completed write is durable.
    fn flush(&mut self) -> Result<(), BlkError>;
}

impl<T: BlockDev + ?Sized> BlockDev for &mut T {
    type Buf = T::Buf;
    fn alloc_buf(&mut self, len: usize) -> Option<Self::Buf> {
        (**self).alloc_buf(len)
    }
    fn blocks(&self) -> u64 {
        (**self).blocks()
    }
    fn read_only(&self) -> bool {
        (**self).read_only()
    }
    fn read(&mut self, reqs: &BlkReqs, buf: &mut Self::Buf) -> Result<(), BlkError> {
        (**self).read(reqs, buf)
    }
    fn write(&mut self, reqs: &BlkReqs, buf: &Self::Buf) -> Result<(), BlkError> {
        (**self).write(reqs, buf)
    }
    fn flush(&mut self) -> Result<(), BlkError> {
        (**self).flush()
    }
}

/// Byte range of request `r` in the image and in the buffer (after `BlkReqs::validate`).
fn spans(r: &BlkReq) -> (usize, usize, usize) {
    let img = r.block as usize * BLOCK_SIZE;
    let len = r.count as usize * BLOCK_SIZE;
    (img, r.offset as usize, len)
}

/// A disk image in memory. A trailing partial block of the image is not addressable.
#[derive(Clone, Debug)]
pub struct MemDisk {
    data: Vec<u8>,
    read_only: bool,
}

impl MemDisk {
    /// A zeroed disk of `blocks` blocks.
    pub fn new(blocks: u64) -> Self {
        Self { data: vec![0; blocks as usize * BLOCK_SIZE], read_only: false }
    }
    /// A disk holding `image`.
    pub fn from_image(image: Vec<u8>) -> Self {
        Self { data: image, read_only: false }
    }
    pub fn set_read_only(&mut self, ro: bool) {
        self.read_only = ro;
    }
    pub fn image(&self) -> &[u8] {
        &self.data
    }
    pub fn image_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
    pub fn into_image(self) -> Vec<u8> {
        self.data
    }
    /// Block `b`'s bytes (empty past the end).
    pub fn block(&self, b: u64) -> &[u8] {
        let at = (b as usize).saturating_mul(BLOCK_SIZE);
        self.data.get(at..at.saturating_add(BLOCK_SIZE)).unwrap_or(&[])
    }
}

impl BlockDev for MemDisk {
    type Buf = Vec<u8>;
    fn alloc_buf(&mut self, len: usize) -> Option<Vec<u8>> {
        Some(vec![0; len])
    }
    fn blocks(&self) -> u64 {
        (self.data.len() / BLOCK_SIZE) as u64
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read(&mut self, reqs: &BlkReqs, buf: &mut Vec<u8>) -> Result<(), BlkError> {
        reqs.validate(buf.len(), self.blocks())?;
        for r in reqs.as_slice() {
            let (img, off, len) = spans(r);
            buf[off..off + len].copy_from_slice(&self.data[img..img + len]);
        }
        Ok(())
    }
    fn write(&mut self, reqs: &BlkReqs, buf: &Vec<u8>) -> Result<(), BlkError> {
        if self.read_only {
            return Err(BlkError::ReadOnly);
        }
        reqs.validate(buf.len(), self.blocks())?;
        for r in reqs.as_slice() {
            let (img, off, len) = spans(r);
            self.data[img..img + len].copy_from_slice(&buf[off..off + len]);
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlkError> {
        Ok(())
    }
}

/// One block write as [`RecordingDisk`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockWrite {
    pub block: u64,
    pub data: Vec<u8>,
}

/// Records every block write (one entry per block, in request order, or in reverse
/// request order within a call when `reverse_within_call` is set: requests of a call may
/// land in any order). With [`stop_after`](Self::stop_after) the first `k` block writes
/// reach the inner disk and the rest are dropped while still reported as done: the disk
/// lost power after its k-th write.
pub struct RecordingDisk<D: BlockDev> {
    pub inner: D,
    /// Every block write, including the dropped ones.
    pub writes: Vec<BlockWrite>,
    /// `writes.len()` at each flush.
    pub flushes: Vec<usize>,
    pub reverse_within_call: bool,
    limit: Option<usize>,
    /// Calls made (reads, writes, flushes) and requests of the last write call.
    pub read_calls: u64,
    pub write_calls: u64,
    pub flush_calls: u64,
    pub last_write_reqs: usize,
    pub read_blocks: u64,
}

impl<D: BlockDev> RecordingDisk<D> {
    pub fn new(inner: D) -> Self {
        Self {
            inner,
            writes: Vec::new(),
            flushes: Vec::new(),
            reverse_within_call: false,
            limit: None,
            read_calls: 0,
            write_calls: 0,
            flush_calls: 0,
            last_write_reqs: 0,
            read_blocks: 0,
        }
    }
    /// Apply only the first `k` block writes (counted from the start of the recording).
    pub fn stop_after(&mut self, k: usize) {
        self.limit = Some(k);
    }
    /// Whether writes are being dropped now.
    pub fn stopped(&self) -> bool {
        matches!(self.limit, Some(k) if self.writes.len() >= k)
    }
}

impl<D: BlockDev> BlockDev for RecordingDisk<D> {
    type Buf = D::Buf;
    fn alloc_buf(&mut self, len: usize) -> Option<D::Buf> {
        self.inner.alloc_buf(len)
    }
    fn blocks(&self) -> u64 {
        self.inner.blocks()
    }
    fn read_only(&self) -> bool {
        self.inner.read_only()
    }
    fn read(&mut self, reqs: &BlkReqs, buf: &mut D::Buf) -> Result<(), BlkError> {
        self.read_calls += 1;
        self.read_blocks += reqs.as_slice().iter().map(|r| r.count as u64).sum::<u64>();
        self.inner.read(reqs, buf)
    }
    fn write(&mut self, reqs: &BlkReqs, buf: &D::Buf) -> Result<(), BlkError> {
        self.write_calls += 1;
        self.last_write_reqs = reqs.as_slice().len();
        if self.inner.read_only() {
            return Err(BlkError::ReadOnly);
        }
        reqs.validate(buf.len(), self.inner.blocks())?;
        let mut order: Vec<(u64, usize)> = Vec::new();
        for r in reqs.as_slice() {
            for i in 0..r.count as usize {
                order.push((r.block + i as u64, r.offset as usize + i * BLOCK_SIZE));
            }
        }
        if self.reverse_within_call {
            order.reverse();
        }
        for (block, off) in order {
            let data = buf[off..off + BLOCK_SIZE].to_vec();
            let apply = match self.limit {
                Some(k) => self.writes.len() < k,
                None => true,
            };
            if apply {
                // One block at a time through a one-block buffer, so the inner disk sees
                // exactly the recorded order.
                let mut one = self.inner.alloc_buf(BLOCK_SIZE).ok_or(BlkError::Device)?;
                one[..BLOCK_SIZE].copy_from_slice(&data);
                self.inner.write(&BlkReqs::one(block, 1), &one)?;
            }
            self.writes.push(BlockWrite { block, data });
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlkError> {
        self.flush_calls += 1;
        self.flushes.push(self.writes.len());
        if self.stopped() {
            return Ok(());
        }
        self.inner.flush()
    }
}

/// Fails requests on demand with `BlkError::Io`: after `n` more successful calls of a
/// kind (`Some(0)`: the next call fails), every call of that kind fails until reset.
pub struct FaultyDisk<D: BlockDev> {
    pub inner: D,
    pub fail_reads_after: Option<u64>,
    pub fail_writes_after: Option<u64>,
    pub fail_flushes: bool,
    /// Calls that failed.
    pub failed: u64,
}

impl<D: BlockDev> FaultyDisk<D> {
    pub fn new(inner: D) -> Self {
        Self { inner, fail_reads_after: None, fail_writes_after: None, fail_flushes: false, failed: 0 }
    }
    /// Stop failing.
    pub fn heal(&mut self) {
        self.fail_reads_after = None;
        self.fail_writes_after = None;
        self.fail_flushes = false;
    }
    fn should_fail(slot: &mut Option<u64>) -> bool {
        match slot {
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        }
    }
}

impl<D: BlockDev> BlockDev for FaultyDisk<D> {
    type Buf = D::Buf;
    fn alloc_buf(&mut self, len: usize) -> Option<D::Buf> {
        self.inner.alloc_buf(len)
    }
    fn blocks(&self) -> u64 {
        self.inner.blocks()
    }
    fn read_only(&self) -> bool {
        self.inner.read_only()
    }
    fn read(&mut self, reqs: &BlkReqs, buf: &mut D::Buf) -> Result<(), BlkError> {
        if Self::should_fail(&mut self.fail_reads_after) {
            self.failed += 1;
            return Err(BlkError::Io);
        }
        self.inner.read(reqs, buf)
    }
    fn write(&mut self, reqs: &BlkReqs, buf: &D::Buf) -> Result<(), BlkError> {
        if Self::should_fail(&mut self.fail_writes_after) {
            self.failed += 1;
            return Err(BlkError::Io);
        }
        self.inner.write(reqs, buf)
    }
    fn flush(&mut self) -> Result<(), BlkError> {
        if self.fail_flushes {
            self.failed += 1;
            return Err(BlkError::Io);
        }
        self.inner.flush()
    }
}

/// Refuses (with `BlkError::OutOfRange`, writing nothing) and records every write call
/// that touches a block outside `[lo, hi)`.
pub struct RangeCheckDisk<D: BlockDev> {
    pub inner: D,
    pub lo: u64,
    pub hi: u64,
    /// First offending block of each refused call.
    pub violations: Vec<u64>,
    pub writes: u64,
}

impl<D: BlockDev> RangeCheckDisk<D> {
    pub fn new(inner: D, lo: u64, hi: u64) -> Self {
        Self { inner, lo, hi, violations: Vec::new(), writes: 0 }
    }
}

impl<D: BlockDev> BlockDev for RangeCheckDisk<D> {
    type Buf = D::Buf;
    fn alloc_buf(&mut self, len: usize) -> Option<D::Buf> {
        self.inner.alloc_buf(len)
    }
    fn blocks(&self) -> u64 {
        self.inner.blocks()
    }
    fn read_only(&self) -> bool {
        self.inner.read_only()
    }
    fn read(&mut self, reqs: &BlkReqs, buf: &mut D::Buf) -> Result<(), BlkError> {
        self.inner.read(reqs, buf)
    }
    fn write(&mut self, reqs: &BlkReqs, buf: &D::Buf) -> Result<(), BlkError> {
        for r in reqs.as_slice() {
            let end = r.block.saturating_add(r.count as u64);
            if r.block < self.lo || end > self.hi || r.count == 0 {
                self.violations.push(r.block);
                return Err(BlkError::OutOfRange);
            }
        }
        self.writes += reqs.as_slice().iter().map(|r| r.count as u64).sum::<u64>();
        self.inner.write(reqs, buf)
    }
    fn flush(&mut self) -> Result<(), BlkError> {
        self.inner.flush()
    }
}
