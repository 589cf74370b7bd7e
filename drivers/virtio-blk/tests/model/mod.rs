//! A virtio-blk device model for host tests: the common virtio device of
//! `frond-virtio-model` with the block device's personality.
//!
//! * Device configuration: `capacity`, `size_max`, `seg_max`, geometry, `blk_size`
//!   (24 bytes, read at their natural widths).
//! * A notification takes every available chain and parses it as the specification
//!   says a request looks: a 16-byte device-readable header `{type, reserved, sector}`,
//!   data buffers (device-writable for `IN`, readable for `OUT`, none for `FLUSH`), a
//!   device-writable status byte last. A malformed chain is a violation and puts the
//!   device in `DEVICE_NEEDS_RESET` (as QEMU's `virtio_error` does).
//! * Completing a request moves the data between the disk (a `Vec<u8>` of 512-byte
//!   sectors) and the buffers at the descriptors' addresses, records each DMA, writes the
//!   status byte, then the used entry (length: bytes written), then interrupts. Requests
//!   complete at once in order, or, with `hold`, when and in the order the test says.
//! * Faults queued by the test are applied to the next completions: wrong used id, a
//!   duplicate used entry, wrong length, a status byte that is not a status (or none),
//!   a used index jumping ahead.

#![allow(dead_code)]

use frond_virtio_model::{delegate_transport, Desc, Dev, Personality, DESC_NEXT, DESC_WRITE};
use std::collections::VecDeque;
use std::ops::Deref;

pub use frond_virtio_model::{
    F_RING_EVENT_IDX, F_VERSION_1, S_ACK, S_DRIVER, S_DRIVER_OK, S_FAILED, S_FEATURES_OK, S_NEEDS_RESET,
};

pub const F_SIZE_MAX: u64 = 1 << 1;
pub const F_SEG_MAX: u64 = 1 << 2;
pub const F_GEOMETRY: u64 = 1 << 4;
pub const F_RO: u64 = 1 << 5;
pub const F_BLK_SIZE: u64 = 1 << 6;
pub const F_FLUSH: u64 = 1 << 9;
pub const F_TOPOLOGY: u64 = 1 << 10;
pub const F_MQ: u64 = 1 << 12;
pub const F_DISCARD: u64 = 1 << 13;

pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;

pub const SECTOR: usize = 512;

/// Device behaviour a test can choose.
#[derive(Clone, Debug)]
pub struct Knobs {
    pub features: u64,
    pub max_queue_size: u16,
    pub msix_vectors: u16,
    pub reset_delay: u32,
    /// Disk size in 512-byte sectors.
    pub sectors: u64,
    pub size_max: u32,
    pub seg_max: u32,
    pub blk_size: u32,
    /// Do not complete requests on notify (the test completes them).
    pub hold: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            features: F_VERSION_1
                | F_SIZE_MAX
                | F_SEG_MAX
                | F_GEOMETRY
                | F_BLK_SIZE
                | F_FLUSH
                | F_TOPOLOGY
                | F_MQ
                | F_DISCARD
                | F_RING_EVENT_IDX,
            max_queue_size: 256,
            msix_vectors: 2,
            reset_delay: 0,
            sectors: 2048,
            size_max: 1 << 20,
            seg_max: 254,
            blk_size: 512,
            hold: false,
        }
    }
}

/// A device misbehaviour applied to the next completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The used entry names this id instead of the request's head.
    BadId(u32),
    /// The request completes normally, then its used entry is written a second time.
    Duplicate,
    /// The used entry reports this length.
    Len(u32),
    /// The status byte gets this value.
    Status(u8),
    /// The status byte is not written at all (length 0).
    NoStatus,
    /// The request completes normally, then the used index moves this far further.
    IdxJump(u16),
}

/// A request as the device parsed it.
#[derive(Clone, Debug)]
pub struct Req {
    pub head: u16,
    pub ty: u32,
    pub sector: u64,
    pub data: Vec<Desc>,
    pub status: Desc,
}

/// One transfer between the disk and memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dma {
    pub addr: u64,
    pub len: u32,
    /// Disk to memory (a read).
    pub to_memory: bool,
}

/// The block device's own state.
#[derive(Debug, Default)]
pub struct Blk {
    pub config: [u8; 24],
    pub disk: Vec<u8>,
    pub read_only: bool,
    pub hold: bool,
    /// Parsed, not yet completed, in arrival order.
    pub pending: Vec<Req>,
    /// Every request parsed: (type, sector, data bytes).
    pub seen: Vec<(u32, u64, u32)>,
    pub dma: Vec<Dma>,
    pub faults: VecDeque<Fault>,
    /// Sectors whose requests fail with IOERR.
    pub bad_sectors: Vec<u64>,
    /// Request types answered with UNSUPP.
    pub unsupported: Vec<u32>,
    pub flushes: u64,
    /// Largest number of requests held at once.
    pub max_pending: usize,
}

impl Personality for Blk {
    fn config(&mut self, dev: &mut Dev, off: usize, width: usize) -> u64 {
        if !off.is_multiple_of(width) || off + width > self.config.len() {
            dev.violation(format!("{}-bit read of the device configuration at {off}", width * 8));
            return 0;
        }
        let mut b = [0u8; 8];
        b[..width].copy_from_slice(&self.config[off..off + width]);
        u64::from_le_bytes(b)
    }

    fn notify(&mut self, dev: &mut Dev, queue: u16) {
        if queue != 0 {
            dev.violation(format!("notify of queue {queue}"));
            return;
        }
        while let Some(head) = dev.next_avail(0) {
            match self.parse(dev, head) {
                Some(r) => {
                    self.seen.push((r.ty, r.sector, r.data.iter().map(|d| d.len).sum()));
                    self.pending.push(r);
                }
                None => {
                    dev.set_needs_reset();
                    return;
                }
            }
        }
        self.max_pending = self.max_pending.max(self.pending.len());
        if !self.hold {
            while !self.pending.is_empty() {
                self.complete(dev, 0);
            }
        }
    }

    fn reset(&mut self, _dev: &mut Dev) {
        self.pending.clear();
    }
}

impl Blk {
    fn parse(&mut self, dev: &mut Dev, head: u16) -> Option<Req> {
        let chain = dev.chain(0, head).ok()?;
        let bad = |dev: &mut Dev, what: String| {
            dev.violation(format!("request at descriptor {head}: {what}"));
        };
        if chain.len() < 2 {
            bad(dev, format!("chain of {} descriptors", chain.len()));
            return None;
        }
        let h = chain[0];
        if h.len != 16 || h.flags & DESC_WRITE != 0 {
            bad(dev, format!("header descriptor {} bytes, flags {:#x}", h.len, h.flags));
            return None;
        }
        // SAFETY: the header descriptor grants the device 16 readable bytes at `h.addr`.
        let hdr = unsafe { std::slice::from_raw_parts(h.addr as usize as *const u8, 16) };
        let ty = u32::from_le_bytes(hdr[0..4].try_into().unwrap());
        let reserved = u32::from_le_bytes(hdr[4..8].try_into().unwrap());
        let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
        if reserved != 0 {
            bad(dev, format!("reserved header field {reserved:#x}"));
        }
        let status = *chain.last().unwrap();
        if status.len < 1 || status.flags & DESC_WRITE == 0 || status.flags & DESC_NEXT != 0 {
            bad(dev, format!("status descriptor {} bytes, flags {:#x}", status.len, status.flags));
            return None;
        }
        let data: Vec<Desc> = chain[1..chain.len() - 1].to_vec();
        let want_write = match ty {
            T_IN => Some(true),
            T_OUT => Some(false),
            _ => None,
        };
        match want_write {
            Some(w) => {
                if data.is_empty() {
                    bad(dev, format!("type {ty} without data"));
                    return None;
                }
                for d in &data {
                    if (d.flags & DESC_WRITE != 0) != w || d.len == 0 || !(d.len as usize).is_multiple_of(SECTOR) {
                        bad(dev, format!("type {ty}: data descriptor {} bytes, flags {:#x}", d.len, d.flags));
                        return None;
                    }
                }
                if data.len() as u32 > self.seg_max() {
                    bad(dev, format!("{} data segments, seg_max {}", data.len(), self.seg_max()));
                }
                if data.iter().any(|d| d.len > self.size_max()) {
                    bad(dev, format!("a data segment over size_max {}", self.size_max()));
                }
            }
            None if ty == T_FLUSH => {
                if !data.is_empty() {
                    bad(dev, "flush with data".into());
                }
                if dev.driver_features & F_FLUSH == 0 {
                    bad(dev, "flush without VIRTIO_BLK_F_FLUSH negotiated".into());
                }
            }
            None => {}
        }
        Some(Req { head, ty, sector, data, status })
    }

    fn cfg32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.config[off..off + 4].try_into().unwrap())
    }
    fn seg_max(&self) -> u32 {
        self.cfg32(12)
    }
    fn size_max(&self) -> u32 {
        self.cfg32(8)
    }

    /// Writes the status byte of pending request `i` (OK) and nothing else: no data, no
    /// used entry.
    fn stage_status(&mut self, i: usize) {
        let r = &self.pending[i];
        // SAFETY: the status descriptor grants the device one writable byte.
        unsafe { (r.status.addr as usize as *mut u8).write_volatile(S_OK) };
    }

    /// Executes and completes pending request `i`.
    fn complete(&mut self, dev: &mut Dev, i: usize) {
        let r = self.pending.remove(i);
        let bytes: u64 = r.data.iter().map(|d| d.len as u64).sum();
        let sectors = self.disk.len() as u64 / SECTOR as u64;
        let in_range = r.sector.checked_add(bytes / SECTOR as u64).is_some_and(|end| end <= sectors);
        let bad = self.bad_sectors.iter().any(|&s| s >= r.sector && s < r.sector + bytes / SECTOR as u64);
        let mut written = 0u32;
        let status = if self.unsupported.contains(&r.ty) {
            S_UNSUPP
        } else {
            match r.ty {
                T_IN | T_OUT if !in_range => {
                    dev.violation(format!("request for sectors {}+{} past the disk's {sectors}", r.sector, bytes / 512));
                    S_IOERR
                }
                T_IN | T_OUT if bad => S_IOERR,
                T_OUT if self.read_only => {
                    dev.violation("write to a read-only device".into());
                    S_IOERR
                }
                T_IN => {
                    let mut at = r.sector as usize * SECTOR;
                    for d in &r.data {
                        // SAFETY: the descriptor grants the device `d.len` writable bytes.
                        let m = unsafe { std::slice::from_raw_parts_mut(d.addr as usize as *mut u8, d.len as usize) };
                        m.copy_from_slice(&self.disk[at..at + d.len as usize]);
                        self.dma.push(Dma { addr: d.addr, len: d.len, to_memory: true });
                        at += d.len as usize;
                        written += d.len;
                    }
                    S_OK
                }
                T_OUT => {
                    let mut at = r.sector as usize * SECTOR;
                    for d in &r.data {
                        // SAFETY: the descriptor grants the device `d.len` readable bytes.
                        let m = unsafe { std::slice::from_raw_parts(d.addr as usize as *const u8, d.len as usize) };
                        self.disk[at..at + d.len as usize].copy_from_slice(m);
                        self.dma.push(Dma { addr: d.addr, len: d.len, to_memory: false });
                        at += d.len as usize;
                    }
                    S_OK
                }
                T_FLUSH => {
                    self.flushes += 1;
                    S_OK
                }
                _ => S_UNSUPP,
            }
        };
        let fault = self.faults.pop_front();
        let mut len = written + 1;
        match fault {
            Some(Fault::Status(s)) => self.write_status(&r, s),
            Some(Fault::NoStatus) => len = 0,
            _ => self.write_status(&r, status),
        }
        if let Some(Fault::Len(l)) = fault {
            len = l;
        }
        let id = match fault {
            Some(Fault::BadId(id)) => id,
            _ => r.head as u32,
        };
        dev.push_used(0, id, len);
        match fault {
            Some(Fault::Duplicate) => dev.push_used(0, id, len),
            Some(Fault::IdxJump(k)) => dev.bump_used_idx(0, k),
            _ => {}
        }
        dev.interrupt(0);
    }

    fn write_status(&self, r: &Req, s: u8) {
        // SAFETY: the status descriptor grants the device one writable byte.
        unsafe { (r.status.addr as usize as *mut u8).write_volatile(s) };
    }
}

/// A handle on the device, shared by the driver (as its transport) and the test.
#[derive(Clone)]
pub struct Model(frond_virtio_model::Model<Blk>);

delegate_transport!(Model);

impl Deref for Model {
    type Target = frond_virtio_model::Model<Blk>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Model {
    pub fn new(k: Knobs) -> Self {
        let common = frond_virtio_model::Knobs {
            features: k.features,
            max_queue_size: k.max_queue_size,
            num_queues: 1,
            msix_vectors: k.msix_vectors,
            reject_features: false,
            reset_delay: k.reset_delay,
            no_notify: false,
        };
        let mut config = [0u8; 24];
        config[0..8].copy_from_slice(&k.sectors.to_le_bytes());
        config[8..12].copy_from_slice(&k.size_max.to_le_bytes());
        config[12..16].copy_from_slice(&k.seg_max.to_le_bytes());
        config[16..18].copy_from_slice(&16u16.to_le_bytes());
        config[18] = 16;
        config[19] = 63;
        config[20..24].copy_from_slice(&k.blk_size.to_le_bytes());
        let disk = (0..k.sectors as usize * SECTOR).map(|i| (i / SECTOR * 7 + i % 251) as u8).collect();
        let blk = Blk { config, disk, read_only: k.features & F_RO != 0, hold: k.hold, ..Blk::default() };
        Model(frond_virtio_model::Model::with(common, blk))
    }

    /// A copy of `len` bytes of the disk from byte `at`.
    pub fn disk(&self, at: usize, len: usize) -> Vec<u8> {
        self.dev().p.disk[at..at + len].to_vec()
    }

    pub fn set_disk(&self, at: usize, bytes: &[u8]) {
        self.dev().p.disk[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// Requests parsed so far: (type, sector, data bytes).
    pub fn seen(&self) -> Vec<(u32, u64, u32)> {
        self.dev().p.seen.clone()
    }

    pub fn dma(&self) -> Vec<Dma> {
        self.dev().p.dma.clone()
    }

    pub fn pending(&self) -> usize {
        self.dev().p.pending.len()
    }

    pub fn max_pending(&self) -> usize {
        self.dev().p.max_pending
    }

    pub fn flushes(&self) -> u64 {
        self.dev().p.flushes
    }

    pub fn set_hold(&self, on: bool) {
        self.dev().p.hold = on;
    }

    pub fn fault(&self, f: Fault) {
        self.dev().p.faults.push_back(f);
    }

    pub fn bad_sector(&self, s: u64) {
        self.dev().p.bad_sectors.push(s);
    }

    pub fn unsupported(&self, ty: u32) {
        self.dev().p.unsupported.push(ty);
    }

    /// Completes pending request `i` (arrival order); false if there is none.
    pub fn complete(&self, i: usize) -> bool {
        let mut g = self.dev();
        let s = &mut *g;
        if i >= s.p.pending.len() || !s.dev.live() {
            return false;
        }
        s.p.complete(&mut s.dev, i);
        true
    }

    /// Completes every pending request, last arrived first; returns how many.
    pub fn complete_reversed(&self) -> usize {
        let mut n = 0;
        while self.complete(self.pending().wrapping_sub(1)) {
            n += 1;
        }
        n
    }

    /// Completes every pending request in arrival order; returns how many.
    pub fn complete_all(&self) -> usize {
        let mut n = 0;
        while self.complete(0) {
            n += 1;
        }
        n
    }

    /// Writes the status byte (OK) of every pending request, and nothing else.
    pub fn stage_statuses(&self) {
        let mut g = self.dev();
        for i in 0..g.p.pending.len() {
            g.p.stage_status(i);
        }
    }
}
