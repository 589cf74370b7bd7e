//! A virtio-net device model for host tests: a modern-PCI virtio 1.x device with split
//! virtqueues, implementing the driver crate's `Transport`. It follows the specification
//! register by register, independently of the driver's own constants:
//!
//! * common configuration: feature select windows, `queue_select`-indexed queue fields
//!   (queue fields of a queue that does not exist read 0 and ignore writes), MSI-X vector
//!   registers that keep only vectors the device has (else read back `0xffff`), status
//!   with reset-to-zero (optionally delayed), `FEATURES_OK` cleared when the driver's
//!   features are not a subset of the offer, lack `VERSION_1`, or the rejection knob is set;
//! * notify: processes the transmit queue (records each frame, checks descriptor flags
//!   and that the 12-byte header is zero), unless transmission is held;
//! * receive: the test injects frames into the posted buffers, in available-ring order;
//! * interrupts: after adding used entries the device raises a counted interrupt (and sets
//!   ISR bit 0) unless the driver set `VIRTQ_AVAIL_F_NO_INTERRUPT`.
//!
//! Anything the driver does against the specification is recorded in `violations`.
//!
//! Ring memory and buffers are reached by turning the addresses the driver wrote into
//! pointers: on the host a "physical address" is a pointer's address.

#![allow(dead_code)]

use frond_virtio_net::{Error, Region, Transport};
use std::sync::{Arc, Mutex, MutexGuard};
use std::vec::Vec;

pub const F_VERSION_1: u64 = 1 << 32;
pub const F_NET_MAC: u64 = 1 << 5;
pub const F_NET_CSUM: u64 = 1 << 0;
pub const F_NET_MRG_RXBUF: u64 = 1 << 15;
pub const F_NET_STATUS: u64 = 1 << 16;
pub const F_RING_EVENT_IDX: u64 = 1 << 29;

pub const S_ACK: u8 = 1;
pub const S_DRIVER: u8 = 2;
pub const S_DRIVER_OK: u8 = 4;
pub const S_FEATURES_OK: u8 = 8;
pub const S_FAILED: u8 = 128;

const NET_HDR: usize = 12;
const DESC_NEXT: u16 = 1;
const DESC_WRITE: u16 = 2;

/// Device behaviour a test can choose.
#[derive(Clone, Debug)]
pub struct Knobs {
    pub features: u64,
    pub max_queue_size: u16,
    pub num_queues: u16,
    /// MSI-X vectors the device has (0: no MSI-X; writes of any vector read back 0xffff).
    pub msix_vectors: u16,
    /// Clear FEATURES_OK whatever the driver accepts.
    pub reject_features: bool,
    pub mac: [u8; 6],
    /// Status reads that still return the old status after a reset is written
    /// (u32::MAX: the reset never completes).
    pub reset_delay: u32,
    /// Set VIRTQ_USED_F_NO_NOTIFY in both used rings.
    pub no_notify: bool,
    /// Do not process the transmit queue on notify (`complete_tx` does it).
    pub hold_tx: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            features: F_VERSION_1 | F_NET_MAC | F_NET_CSUM | F_NET_MRG_RXBUF | F_NET_STATUS | F_RING_EVENT_IDX,
            max_queue_size: 256,
            num_queues: 2,
            msix_vectors: 3,
            reject_features: false,
            mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56],
            reset_delay: 0,
            no_notify: false,
            hold_tx: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Vq {
    pub size: u16,
    pub msix: u16,
    pub enabled: bool,
    pub desc: u64,
    pub driver: u64,
    pub device: u64,
    /// Next available ring index the device reads.
    pub last_avail: u16,
    /// The used index the device publishes next.
    pub used_idx: u16,
}

#[derive(Debug, Default)]
pub struct Dev {
    pub knobs: Knobs,
    pub status: u8,
    pub device_feature_select: u32,
    pub driver_feature_select: u32,
    pub driver_features: u64,
    pub config_msix: u16,
    pub queue_select: u16,
    pub queues: Vec<Vq>,
    pub isr: u8,
    reset_pending: u32,
    pub status_reads: u64,
    /// Frames transmitted, in order.
    pub sent: Vec<Vec<u8>>,
    /// Interrupts raised.
    pub irqs: u64,
    /// Notifications per queue.
    pub notifies: [u64; 2],
    pub violations: Vec<String>,
}

/// A handle on the device, shared by the driver (as its transport) and the test.
#[derive(Clone)]
pub struct Model(Arc<Mutex<Dev>>);

impl Model {
    pub fn new(knobs: Knobs) -> Self {
        let mut d = Dev { knobs, ..Dev::default() };
        d.reset();
        Model(Arc::new(Mutex::new(d)))
    }

    pub fn dev(&self) -> MutexGuard<'_, Dev> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self) -> u8 {
        self.dev().status
    }
    pub fn sent(&self) -> Vec<Vec<u8>> {
        self.dev().sent.clone()
    }
    pub fn irqs(&self) -> u64 {
        self.dev().irqs
    }
    pub fn notifies(&self) -> [u64; 2] {
        self.dev().notifies
    }
    pub fn violations(&self) -> Vec<String> {
        self.dev().violations.clone()
    }
    pub fn queue(&self, i: usize) -> Vq {
        self.dev().queues[i].clone()
    }

    /// Delivers `frame` into the next posted receive buffer: returns the descriptor id
    /// and the buffer's address, or None if no buffer is posted.
    pub fn inject(&self, frame: &[u8]) -> Option<(u16, u64)> {
        self.dev().receive(frame, None)
    }

    /// Consumes the next posted receive buffer but reports `len` as the written length.
    pub fn inject_bad_len(&self, len: u32) -> Option<(u16, u64)> {
        self.dev().receive(&[0xab; 60], Some(len))
    }

    /// Writes a used entry (`id`, `len`) to queue `q` without consuming a buffer, as a
    /// buggy device would.
    pub fn inject_used(&self, q: usize, id: u32, len: u32) {
        let mut d = self.dev();
        d.push_used(q, id, len);
        d.interrupt(q);
    }

    /// Processes the transmit queue now; returns the frames sent.
    pub fn complete_tx(&self) -> usize {
        self.dev().process_tx()
    }

    /// True if no queue was given ring addresses or enabled.
    pub fn queues_untouched(&self) -> bool {
        self.dev().queues.iter().all(|q| !q.enabled && q.desc == 0 && q.driver == 0 && q.device == 0)
    }

    /// Receive buffers posted and not yet used.
    pub fn rx_posted(&self) -> u16 {
        let d = self.dev();
        let q = &d.queues[0];
        if !q.enabled {
            return 0;
        }
        // SAFETY: the queue is enabled: the driver keeps its rings allocated.
        unsafe { rd16(q.driver + 2) }.wrapping_sub(q.last_avail)
    }

    /// Changes the NO_NOTIFY hint in both used rings.
    pub fn set_no_notify(&self, on: bool) {
        let mut d = self.dev();
        d.knobs.no_notify = on;
        d.write_used_flags();
    }
}

// Guest memory accessors. Callers guarantee the address lies in memory the driver
// handed to the device and keeps alive while the queue is enabled.
unsafe fn rd16(a: u64) -> u16 {
    // SAFETY: caller's promise; ring fields are naturally aligned.
    unsafe { (a as usize as *const u16).read_volatile() }
}
unsafe fn rd32(a: u64) -> u32 {
    // SAFETY: as above.
    unsafe { (a as usize as *const u32).read_volatile() }
}
unsafe fn rd64(a: u64) -> u64 {
    // SAFETY: as above.
    unsafe { (a as usize as *const u64).read_volatile() }
}
unsafe fn wr16(a: u64, v: u16) {
    // SAFETY: as above.
    unsafe { (a as usize as *mut u16).write_volatile(v) }
}
unsafe fn wr32(a: u64, v: u32) {
    // SAFETY: as above.
    unsafe { (a as usize as *mut u32).write_volatile(v) }
}

struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
}

impl Dev {
    fn reset(&mut self) {
        self.status = 0;
        self.device_feature_select = 0;
        self.driver_feature_select = 0;
        self.driver_features = 0;
        self.config_msix = 0xffff;
        self.queue_select = 0;
        self.isr = 0;
        let max = self.knobs.max_queue_size;
        self.queues = (0..self.knobs.num_queues).map(|_| Vq { size: max, msix: 0xffff, ..Vq::default() }).collect();
    }

    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    fn live(&self) -> bool {
        self.status & S_DRIVER_OK != 0
    }

    fn msix_ok(&self, v: u16) -> u16 {
        if v != 0xffff && v < self.knobs.msix_vectors {
            v
        } else {
            0xffff
        }
    }

    fn sel(&mut self) -> Option<&mut Vq> {
        let i = self.queue_select as usize;
        self.queues.get_mut(i)
    }

    fn write_status(&mut self, v: u8) {
        if v == 0 {
            self.reset();
            self.reset_pending = self.knobs.reset_delay;
            return;
        }
        let old = self.status;
        if old & !v != 0 {
            self.violation(format!("status write {v:#x} clears bits of {old:#x}"));
        }
        let new = v & !old;
        if new & S_DRIVER != 0 && v & S_ACK == 0 {
            self.violation("DRIVER set before ACKNOWLEDGE".into());
        }
        let mut v = v;
        if new & S_FEATURES_OK != 0 {
            if v & (S_ACK | S_DRIVER) != S_ACK | S_DRIVER {
                self.violation("FEATURES_OK set before ACKNOWLEDGE|DRIVER".into());
            }
            let f = self.driver_features;
            if self.knobs.reject_features || f & !self.knobs.features != 0 || f & F_VERSION_1 == 0 {
                v &= !S_FEATURES_OK;
            }
        }
        if new & S_DRIVER_OK != 0 {
            if v & S_FEATURES_OK == 0 {
                self.violation("DRIVER_OK set without FEATURES_OK".into());
            }
            self.status = v;
            self.write_used_flags();
            return;
        }
        self.status = v;
    }

    fn write_used_flags(&mut self) {
        if !self.live() {
            return;
        }
        let flags = if self.knobs.no_notify { 1 } else { 0 };
        for q in self.queues.iter().filter(|q| q.enabled) {
            // SAFETY: enabled queue: the driver keeps the used ring allocated.
            unsafe { wr16(q.device, flags) };
        }
    }

    fn queue_write(&mut self, off: usize) -> bool {
        if self.status & S_FEATURES_OK == 0 || self.live() {
            self.violation(format!("queue field at offset {off} written with status {:#x}", self.status));
        }
        self.sel().is_some_and(|q| !q.enabled)
    }

    fn desc(&self, q: usize, id: u16) -> Desc {
        let vq = &self.queues[q];
        let a = vq.desc + 16 * id as u64;
        // SAFETY: id < size; the descriptor table has `size` entries.
        unsafe { Desc { addr: rd64(a), len: rd32(a + 8), flags: rd16(a + 12) } }
    }

    /// The next available descriptor id of queue `q`, if any.
    fn next_avail(&mut self, q: usize) -> Option<u16> {
        let vq = self.queues[q].clone();
        if !vq.enabled || !self.live() {
            return None;
        }
        // SAFETY: enabled queue: the available ring is allocated with `size` entries.
        let idx = unsafe { rd16(vq.driver + 2) };
        if idx == vq.last_avail {
            return None;
        }
        if idx.wrapping_sub(vq.last_avail) > vq.size {
            self.violation(format!("queue {q}: avail idx {idx} more than a ring ahead of {}", vq.last_avail));
        }
        let slot = (vq.last_avail % vq.size) as u64;
        // SAFETY: as above, slot < size.
        let id = unsafe { rd16(vq.driver + 4 + 2 * slot) };
        self.queues[q].last_avail = vq.last_avail.wrapping_add(1);
        if id >= self.queues[q].size {
            self.violation(format!("queue {q}: avail entry names descriptor {id}"));
            return None;
        }
        Some(id)
    }

    fn push_used(&mut self, q: usize, id: u32, len: u32) {
        let vq = &mut self.queues[q];
        let slot = (vq.used_idx % vq.size) as u64;
        let e = vq.device + 4 + 8 * slot;
        vq.used_idx = vq.used_idx.wrapping_add(1);
        // SAFETY: slot < size; the used ring has `size` entries; entries are written before
        // the index that publishes them.
        unsafe {
            wr32(e, id);
            wr32(e + 4, len);
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            wr16(vq.device + 2, vq.used_idx);
        }
    }

    fn interrupt(&mut self, q: usize) {
        let vq = &self.queues[q];
        // SAFETY: the available ring of an enabled queue is allocated.
        let flags = unsafe { rd16(vq.driver) };
        if flags & 1 == 0 {
            self.irqs += 1;
            self.isr |= 1;
        }
    }

    fn receive(&mut self, frame: &[u8], bad_len: Option<u32>) -> Option<(u16, u64)> {
        let id = self.next_avail(0)?;
        let d = self.desc(0, id);
        if d.flags & DESC_WRITE == 0 || d.flags & DESC_NEXT != 0 {
            self.violation(format!("rx descriptor {id} has flags {:#x}", d.flags));
        }
        if (d.len as usize) < NET_HDR + 1514 || d.addr == 0 {
            self.violation(format!("rx descriptor {id}: {} bytes at {:#x}", d.len, d.addr));
            return None;
        }
        let n = frame.len().min(d.len as usize - NET_HDR);
        // SAFETY: the descriptor grants the device `d.len` writable bytes at `d.addr`.
        let buf = unsafe { std::slice::from_raw_parts_mut(d.addr as usize as *mut u8, d.len as usize) };
        buf[..NET_HDR].fill(0);
        buf[10] = 1; // num_buffers
        buf[NET_HDR..NET_HDR + n].copy_from_slice(&frame[..n]);
        self.push_used(0, id as u32, bad_len.unwrap_or((NET_HDR + n) as u32));
        self.interrupt(0);
        Some((id, d.addr))
    }

    fn process_tx(&mut self) -> usize {
        let mut n = 0;
        while let Some(id) = self.next_avail(1) {
            let d = self.desc(1, id);
            if d.flags != 0 {
                self.violation(format!("tx descriptor {id} has flags {:#x}", d.flags));
            }
            if (d.len as usize) < NET_HDR || d.len as usize > NET_HDR + 1514 {
                self.violation(format!("tx descriptor {id} is {} bytes", d.len));
            }
            // SAFETY: the descriptor grants the device `d.len` readable bytes at `d.addr`.
            let buf = unsafe { std::slice::from_raw_parts(d.addr as usize as *const u8, d.len as usize) };
            if buf[..NET_HDR.min(buf.len())].iter().any(|&b| b != 0) {
                self.violation(format!("tx descriptor {id}: header not zero: {:?}", &buf[..NET_HDR]));
            }
            self.sent.push(buf[NET_HDR.min(buf.len())..].to_vec());
            self.push_used(1, id as u32, 0);
            n += 1;
        }
        if n > 0 {
            self.interrupt(1);
        }
        n
    }

    fn read_common(&mut self, off: usize, width: usize) -> u64 {
        let expect = |w: usize| {
            if w != width {
                Some(format!("common cfg offset {off} read with width {width}, field is {w}"))
            } else {
                None
            }
        };
        let (w, v) = match off {
            0 => (4, self.device_feature_select as u64),
            4 => {
                let s = self.device_feature_select;
                (4, if s < 2 { (self.knobs.features >> (32 * s)) & 0xffff_ffff } else { 0 })
            }
            8 => (4, self.driver_feature_select as u64),
            12 => {
                let s = self.driver_feature_select;
                (4, if s < 2 { (self.driver_features >> (32 * s)) & 0xffff_ffff } else { 0 })
            }
            16 => (2, self.config_msix as u64),
            18 => (2, self.knobs.num_queues as u64),
            20 => {
                self.status_reads += 1;
                if self.reset_pending > 0 {
                    if self.reset_pending != u32::MAX {
                        self.reset_pending -= 1;
                    }
                    (1, 0x0f)
                } else {
                    (1, self.status as u64)
                }
            }
            21 => (1, 0),
            22 => (2, self.queue_select as u64),
            24 => (2, self.sel().map_or(0, |q| q.size) as u64),
            26 => (2, self.sel().map_or(0xffff, |q| q.msix) as u64),
            28 => (2, self.sel().map_or(0, |q| q.enabled as u16) as u64),
            30 => (2, self.queue_select as u64),
            32 | 36 => (4, self.sel().map_or(0, |q| q.desc >> (8 * (off - 32))) & 0xffff_ffff),
            40 | 44 => (4, self.sel().map_or(0, |q| q.driver >> (8 * (off - 40))) & 0xffff_ffff),
            48 | 52 => (4, self.sel().map_or(0, |q| q.device >> (8 * (off - 48))) & 0xffff_ffff),
            _ => {
                self.violation(format!("read of unknown common cfg offset {off}"));
                return 0;
            }
        };
        if let Some(v) = expect(w) {
            self.violation(v);
        }
        v
    }

    fn write_common(&mut self, off: usize, width: usize, v: u64) {
        let want = match off {
            0 | 8 | 12 | 32 | 36 | 40 | 44 | 48 | 52 => 4,
            16 | 22 | 24 | 26 | 28 => 2,
            20 => 1,
            _ => {
                self.violation(format!("write of read-only or unknown common cfg offset {off}"));
                return;
            }
        };
        if want != width {
            self.violation(format!("common cfg offset {off} written with width {width}, field is {want}"));
        }
        // Queue fields: only before DRIVER_OK, only for an existing queue not yet enabled.
        if matches!(off, 24 | 26 | 28 | 32..=52) && !self.queue_write(off) {
            return;
        }
        match off {
            0 => self.device_feature_select = v as u32,
            8 => self.driver_feature_select = v as u32,
            12 => {
                if self.status & S_DRIVER == 0 || self.status & S_FEATURES_OK != 0 {
                    self.violation(format!("driver_feature written with status {:#x}", self.status));
                }
                let s = self.driver_feature_select;
                if s < 2 {
                    let mask = 0xffff_ffffu64 << (32 * s);
                    self.driver_features = (self.driver_features & !mask) | ((v & 0xffff_ffff) << (32 * s));
                }
            }
            16 => self.config_msix = self.msix_ok(v as u16),
            20 => self.write_status(v as u8),
            22 => self.queue_select = v as u16,
            24 => {
                let max = self.knobs.max_queue_size;
                let size = v as u16;
                if size == 0 || size > max || !size.is_power_of_two() {
                    self.violation(format!("queue_size {size} (max {max})"));
                } else if let Some(q) = self.sel() {
                    q.size = size;
                }
            }
            26 => {
                let m = self.msix_ok(v as u16);
                if let Some(q) = self.sel() {
                    q.msix = m;
                }
            }
            28 => {
                if v != 1 {
                    self.violation(format!("queue_enable written {v}"));
                }
                let bad = self.sel().is_some_and(|q| q.desc == 0 || q.driver == 0 || q.device == 0);
                if bad {
                    self.violation("queue enabled without ring addresses".into());
                }
                if let Some(q) = self.sel() {
                    q.enabled = true;
                }
            }
            32..=52 => {
                let base = off & !7;
                let shift = 8 * (off - base);
                if let Some(q) = self.sel() {
                    let f = match base {
                        32 => &mut q.desc,
                        40 => &mut q.driver,
                        _ => &mut q.device,
                    };
                    *f = (*f & !(0xffff_ffffu64 << shift)) | ((v & 0xffff_ffff) << shift);
                }
            }
            _ => {}
        }
    }
}

impl Transport for Model {
    fn read8(&self, r: Region, off: usize) -> u8 {
        let mut d = self.dev();
        match r {
            Region::Common => d.read_common(off, 1) as u8,
            Region::Isr => {
                let v = d.isr;
                d.isr = 0;
                v
            }
            Region::Device => {
                if off < 6 {
                    d.knobs.mac[off]
                } else {
                    0
                }
            }
            Region::Notify => {
                d.violation("read of the notify region".into());
                0
            }
        }
    }
    fn read16(&self, r: Region, off: usize) -> u16 {
        let mut d = self.dev();
        if r != Region::Common {
            d.violation(format!("16-bit read of {r:?}+{off}"));
            return 0;
        }
        d.read_common(off, 2) as u16
    }
    fn read32(&self, r: Region, off: usize) -> u32 {
        let mut d = self.dev();
        if r != Region::Common {
            d.violation(format!("32-bit read of {r:?}+{off}"));
            return 0;
        }
        d.read_common(off, 4) as u32
    }
    fn write8(&mut self, r: Region, off: usize, v: u8) {
        let mut d = self.dev();
        if r != Region::Common {
            d.violation(format!("8-bit write to {r:?}+{off}"));
            return;
        }
        d.write_common(off, 1, v as u64)
    }
    fn write16(&mut self, r: Region, off: usize, v: u16) {
        let mut d = self.dev();
        if r != Region::Common {
            d.violation(format!("16-bit write to {r:?}+{off}"));
            return;
        }
        d.write_common(off, 2, v as u64)
    }
    fn write32(&mut self, r: Region, off: usize, v: u32) {
        let mut d = self.dev();
        if r != Region::Common {
            d.violation(format!("32-bit write to {r:?}+{off}"));
            return;
        }
        d.write_common(off, 4, v as u64)
    }
    fn set_notify_off(&mut self, queue: u16, notify_off: u16) -> Result<(), Error> {
        let mut d = self.dev();
        if notify_off != queue {
            d.violation(format!("queue {queue} given notify_off {notify_off}, the device said {queue}"));
        }
        Ok(())
    }
    fn notify(&mut self, queue: u16) {
        let mut d = self.dev();
        if !d.live() {
            d.violation(format!("notify of queue {queue} before DRIVER_OK"));
            return;
        }
        if d.knobs.no_notify {
            d.violation(format!("notify of queue {queue} although the device set NO_NOTIFY"));
        }
        match queue {
            0 => d.notifies[0] += 1,
            1 => {
                d.notifies[1] += 1;
                if !d.knobs.hold_tx {
                    d.process_tx();
                }
            }
            _ => d.violation(format!("notify of queue {queue}")),
        }
    }
}
