//! The block path: block-device drivers (`Block`: virtio-blk, the RAM disk).
//!
//! A request names a run of blocks and where its bytes sit in a buffer the caller
//! *lends* for the call (`&mut RRefVec<u8>` to read into, `&RRefVec<u8>` to write from):
//! ownership never moves, so a driver that dies mid-call loses nothing, and every method
//! is `#[idempotent]` — a recovery proxy restarts the driver and submits the same requests
//! again. The shared heap is identity-mapped, so a driver hands the buffer's own addresses
//! to the device: zero copy from the disk to the caller's buffer and back.
//!
//! Block numbers count [`BLOCK_SIZE`]-byte blocks (the file system's unit) whatever the
//! device's sector size: a virtio-blk driver addresses sector `block * (BLOCK_SIZE / 512)`.

use crate::{domain_kind, interface, Exchangeable, RRefVec, RpcResult};

/// Bytes per block.
pub const BLOCK_SIZE: usize = 1024;
/// Requests per call at most.
pub const BLK_REQS_MAX: usize = 32;
/// Bytes one call moves at most (64 KiB): the buffer a caller lends may be longer, but
/// requests address only its first `BLK_BYTES_MAX` bytes.
pub const BLK_BYTES_MAX: usize = 64 * 1024;

/// One request: `count` blocks from block `block`, at byte `offset` of the lent buffer.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BlkReq {
    pub block: u64,
    /// Byte offset in the buffer; a multiple of [`BLOCK_SIZE`].
    pub offset: u32,
    /// Blocks, at least 1.
    pub count: u32,
}

/// The requests of one call (`reqs[..n]`). Requests of one call may complete in any
/// order; a caller that needs an order across blocks makes separate calls (and `flush`).
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkReqs {
    pub n: u32,
    pub reqs: [BlkReq; BLK_REQS_MAX],
}

impl BlkReqs {
    pub const fn new() -> Self {
        Self { n: 0, reqs: [BlkReq { block: 0, offset: 0, count: 0 }; BLK_REQS_MAX] }
    }

    /// One request of `count` blocks from `block` at offset 0.
    pub fn one(block: u64, count: u32) -> Self {
        let mut r = Self::new();
        r.push(BlkReq { block, offset: 0, count });
        r
    }

    /// Appends a request; false when full.
    pub fn push(&mut self, r: BlkReq) -> bool {
        let n = self.n as usize;
        if n >= BLK_REQS_MAX {
            return false;
        }
        self.reqs[n] = r;
        self.n += 1;
        true
    }

    /// The requests (`n` clamped to the array).
    pub fn as_slice(&self) -> &[BlkReq] {
        &self.reqs[..(self.n as usize).min(BLK_REQS_MAX)]
    }

    /// Checks the requests against a buffer of `buf_len` bytes and a device of `blocks`
    /// blocks: every request non-empty, block-aligned, inside the buffer's first
    /// [`BLK_BYTES_MAX`] bytes and inside the device. Drivers call this before touching
    /// anything.
    pub fn validate(&self, buf_len: usize, blocks: u64) -> Result<(), BlkError> {
        if self.n as usize > BLK_REQS_MAX {
            return Err(BlkError::BadRequest);
        }
        let limit = buf_len.min(BLK_BYTES_MAX) as u64;
        for r in self.as_slice() {
            if r.count == 0 || r.offset as usize % BLOCK_SIZE != 0 {
                return Err(BlkError::BadRequest);
            }
            let bytes = r.count as u64 * BLOCK_SIZE as u64;
            if r.offset as u64 + bytes > limit {
                return Err(BlkError::BadRequest);
            }
            match r.block.checked_add(r.count as u64) {
                Some(end) if end <= blocks => {}
                _ => return Err(BlkError::OutOfRange),
            }
        }
        Ok(())
    }
}

impl Default for BlkReqs {
    fn default() -> Self {
        Self::new()
    }
}

/// Fixed facts about a block device.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkInfo {
    /// Always [`BLOCK_SIZE`] (the unit of block numbers).
    pub block_size: u32,
    /// Blocks on the device.
    pub blocks: u64,
    pub read_only: bool,
    /// Requests the device holds in flight at most.
    pub queue_depth: u16,
    /// PCI bus/device/function (0xffff: not PCI, e.g. the RAM disk).
    pub bdf: u16,
}

#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// A request is malformed: empty, unaligned, or outside the lent buffer.
    BadRequest,
    /// A request reaches past the end of the device.
    OutOfRange,
    /// A write to a read-only device.
    ReadOnly,
    /// The device reported an I/O error (`VIRTIO_BLK_S_IOERR`).
    Io,
    /// The device does not support the operation (`VIRTIO_BLK_S_UNSUPP`).
    Unsupported,
    /// The device misbehaved (bad used-ring entry, needs reset); the driver reset it.
    Device,
}

impl BlkError {
    pub fn as_str(&self) -> &'static str {
        match self {
            BlkError::BadRequest => "bad request",
            BlkError::OutOfRange => "block out of range",
            BlkError::ReadOnly => "read-only device",
            BlkError::Io => "I/O error",
            BlkError::Unsupported => "operation not supported by the device",
            BlkError::Device => "device error",
        }
    }
}

/// A block device's counters since its driver instance started.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BlkStats {
    pub reads: u64,
    pub read_blocks: u64,
    pub writes: u64,
    pub written_blocks: u64,
    pub flushes: u64,
    /// Requests that failed (device status or a bad used-ring entry).
    pub errors: u64,
    /// Doorbell writes (notifications to the device).
    pub kicks: u64,
    pub irqs: u64,
}

/// A block device, driven by a driver domain. Every method returns when its requests
/// completed; all are idempotent (see the module docs).
#[interface(recover)]
pub trait Block: Send + Sync {
    #[idempotent]
    fn info(&self) -> RpcResult<BlkInfo>;
    #[idempotent]
    fn stats(&self) -> RpcResult<BlkStats>;
    /// Reads each request's blocks into `buf` at its offset. On an error, which blocks
    /// were read is unspecified.
    #[idempotent]
    fn read(&self, reqs: BlkReqs, buf: &mut RRefVec<u8>) -> RpcResult<Result<(), BlkError>>;
    /// Writes each request's blocks from `buf` at its offset.
    #[idempotent]
    fn write(&self, reqs: BlkReqs, buf: &RRefVec<u8>) -> RpcResult<Result<(), BlkError>>;
    /// Returns when every write that completed before the call is durable.
    #[idempotent]
    fn flush(&self) -> RpcResult<Result<(), BlkError>>;
}

/// Init arguments of a block driver domain: the PCI device (virtio-blk), or for the RAM
/// disk its size in blocks (`ram_blocks`, with `dev` unused).
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkArgs {
    pub dev: crate::net::PciDevice,
    pub ram_blocks: u64,
}

domain_kind!(pub BlockKind: (BlkArgs,) => dyn Block);
