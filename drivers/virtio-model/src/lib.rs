//! # frond-virtio-model — a virtio 1.x device model for host tests
//!
//! A modern-PCI virtio 1.x device with split virtqueues that implements
//! `frond_virtio::Transport`, so a driver core runs against it unchanged. It follows the
//! specification register by register, independently of the driver's own constants:
//!
//! * common configuration: feature select windows, `queue_select`-indexed queue fields
//!   (queue fields of a queue that does not exist read 0 and ignore writes), MSI-X vector
//!   registers that keep only vectors the device has (else read back `0xffff`), status
//!   with reset-to-zero (optionally delayed), `FEATURES_OK` cleared when the driver's
//!   features are not a subset of the offer, lack `VERSION_1`, or the rejection knob is set;
//! * rings: the available ring read in order with its index checked, descriptor chains
//!   followed through `NEXT` (loops and out-of-table ids are violations), used entries
//!   written before the index that publishes them;
//! * interrupts: after adding used entries the device raises a counted interrupt (and sets
//!   ISR bit 0) unless the driver set `VIRTQ_AVAIL_F_NO_INTERRUPT`; with
//!   `VIRTIO_F_RING_EVENT_IDX` negotiated the flag is ignored and the device interrupts
//!   only when its used index passes the driver's `used_event` since it last looked (virtio
//!   1.x §2.7.10, QEMU's `virtio_should_notify`);
//! * notification suppression: `VIRTQ_USED_F_NO_NOTIFY`, or with `EVENT_IDX` the
//!   `avail_event` field: the device asks to be notified when the driver makes the entry
//!   at its next available index available (notifications wanted) or at an index just
//!   behind it, which 16-bit indices reach only after a full wrap (not wanted).
//!
//! What is specific to a device type — its configuration space and what a notification
//! does — is a [`Personality`] (the virtio-net and virtio-blk models in those crates'
//! tests). Anything the driver does against the specification is recorded in
//! [`Dev::violations`].
//!
//! Ring memory and buffers are reached by turning the addresses the driver wrote into
//! pointers: on the host a "physical address" is a pointer's address. The accessors are
//! `unsafe` for that reason: the caller (the model) relies on the driver under test to keep
//! what it posted alive while the queue is enabled, as a real device does.
//!
//! May depend on: `frond-virtio` (the `Transport` trait) and `std`. Host tests only.

#![deny(unsafe_op_in_unsafe_fn)]

use frond_virtio::{Error, Region, Transport};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};

pub const F_VERSION_1: u64 = 1 << 32;
pub const F_RING_EVENT_IDX: u64 = 1 << 29;

pub const S_ACK: u8 = 1;
pub const S_DRIVER: u8 = 2;
pub const S_DRIVER_OK: u8 = 4;
pub const S_FEATURES_OK: u8 = 8;
pub const S_NEEDS_RESET: u8 = 64;
pub const S_FAILED: u8 = 128;

pub const DESC_NEXT: u16 = 1;
pub const DESC_WRITE: u16 = 2;

/// Common device behaviour a test can choose.
#[derive(Clone, Debug)]
pub struct Knobs {
    pub features: u64,
    pub max_queue_size: u16,
    pub num_queues: u16,
    /// MSI-X vectors the device has (0: no MSI-X; writes of any vector read back 0xffff).
    pub msix_vectors: u16,
    /// Clear FEATURES_OK whatever the driver accepts.
    pub reject_features: bool,
    /// Status reads that still return the old status after a reset is written
    /// (u32::MAX: the reset never completes).
    pub reset_delay: u32,
    /// Set VIRTQ_USED_F_NO_NOTIFY in every used ring.
    pub no_notify: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            features: F_VERSION_1,
            max_queue_size: 256,
            num_queues: 1,
            msix_vectors: 3,
            reject_features: false,
            reset_delay: 0,
            no_notify: false,
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
    /// EVENT_IDX: the used index when the device last decided whether to interrupt.
    pub signalled_used: u16,
}

/// virtio 1.x §2.7.10 `vring_need_event`, written from the specification: true if
/// `event` lies in `[old, new)` in 16-bit index arithmetic.
pub fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// One descriptor as the driver wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    pub id: u16,
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
    pub next: u16,
}

/// The device's common state.
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
    /// Resets the driver asked for (writes of 0 to the status).
    pub resets: u64,
    /// Interrupts raised.
    pub irqs: u64,
    /// Notifications per queue.
    pub notifies: Vec<u64>,
    pub violations: Vec<String>,
}

// Guest memory accessors. Callers guarantee the address lies in memory the driver
// handed to the device and keeps alive while the queue is enabled.
/// # Safety
/// `a` is a naturally aligned address of memory the driver handed to the device.
pub unsafe fn rd16(a: u64) -> u16 {
    // SAFETY: caller's promise; ring fields are naturally aligned.
    unsafe { (a as usize as *const u16).read_volatile() }
}
/// # Safety
/// As [`rd16`].
pub unsafe fn rd32(a: u64) -> u32 {
    // SAFETY: as above.
    unsafe { (a as usize as *const u32).read_volatile() }
}
/// # Safety
/// As [`rd16`].
pub unsafe fn rd64(a: u64) -> u64 {
    // SAFETY: as above.
    unsafe { (a as usize as *const u64).read_volatile() }
}
/// # Safety
/// As [`rd16`], and the device may write there.
pub unsafe fn wr16(a: u64, v: u16) {
    // SAFETY: as above.
    unsafe { (a as usize as *mut u16).write_volatile(v) }
}
/// # Safety
/// As [`wr16`].
pub unsafe fn wr32(a: u64, v: u32) {
    // SAFETY: as above.
    unsafe { (a as usize as *mut u32).write_volatile(v) }
}

impl Dev {
    pub fn new(knobs: Knobs) -> Self {
        let mut d = Dev { knobs, ..Dev::default() };
        d.notifies = vec![0; d.knobs.num_queues as usize];
        d.reset();
        d
    }

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

    pub fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// `DRIVER_OK` is set and the device does not need a reset.
    pub fn live(&self) -> bool {
        self.status & S_DRIVER_OK != 0 && self.status & S_NEEDS_RESET == 0
    }

    /// The device enters the `DEVICE_NEEDS_RESET` state: it stops processing queues until
    /// the driver resets it.
    pub fn set_needs_reset(&mut self) {
        self.status |= S_NEEDS_RESET;
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

    fn write_status(&mut self, v: u8) -> bool {
        if v == 0 {
            self.reset();
            self.resets += 1;
            self.reset_pending = self.knobs.reset_delay;
            return true;
        }
        let old = self.status;
        // The device's own NEEDS_RESET bit may be written back by the driver.
        if old & !v & !S_NEEDS_RESET != 0 {
            self.violation(format!("status write {v:#x} clears bits of {old:#x}"));
        }
        let new = v & !old;
        if new & S_DRIVER != 0 && v & S_ACK == 0 {
            self.violation("DRIVER set before ACKNOWLEDGE".into());
        }
        let mut v = v | (old & S_NEEDS_RESET);
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
            return false;
        }
        self.status = v;
        false
    }

    /// Whether the driver accepted `VIRTIO_F_RING_EVENT_IDX`.
    pub fn event_idx(&self) -> bool {
        self.driver_features & F_RING_EVENT_IDX != 0
    }

    pub fn write_used_flags(&mut self) {
        if !self.live() {
            return;
        }
        let flags = if self.knobs.no_notify { 1 } else { 0 };
        let event_idx = self.event_idx();
        for q in self.queues.iter().filter(|q| q.enabled) {
            // SAFETY: enabled queue: the driver keeps the used and available rings allocated.
            unsafe {
                wr16(q.device, flags);
                if event_idx {
                    let avail = rd16(q.driver + 2);
                    // Wanted: when the driver publishes entry `avail`; unwanted: an index
                    // it passed already (reached again only after 65536 entries).
                    let event = if self.knobs.no_notify { avail.wrapping_sub(1) } else { avail };
                    wr16(q.device + 4 + 8 * q.size as u64, event);
                }
            }
        }
    }

    /// The driver's `used_event` of queue `q` (EVENT_IDX).
    pub fn used_event(&self, q: usize) -> u16 {
        let vq = &self.queues[q];
        // SAFETY: the available ring of an enabled queue is allocated with `size` entries
        // and the trailing `used_event`.
        unsafe { rd16(vq.driver + 4 + 2 * vq.size as u64) }
    }

    fn queue_write(&mut self, off: usize) -> bool {
        if self.status & S_FEATURES_OK == 0 || self.status & S_DRIVER_OK != 0 {
            self.violation(format!("queue field at offset {off} written with status {:#x}", self.status));
        }
        self.sel().is_some_and(|q| !q.enabled)
    }

    /// Descriptor `id` of queue `q` (`id` < the queue's size).
    pub fn desc(&self, q: usize, id: u16) -> Desc {
        let vq = &self.queues[q];
        assert!(id < vq.size, "model: descriptor {id} outside the table");
        let a = vq.desc + 16 * id as u64;
        // SAFETY: id < size; the descriptor table has `size` entries.
        unsafe { Desc { id, addr: rd64(a), len: rd32(a + 8), flags: rd16(a + 12), next: rd16(a + 14) } }
    }

    /// The chain headed by `head`, following `NEXT`; an id outside the table or a loop is
    /// an error (and a violation).
    pub fn chain(&mut self, q: usize, head: u16) -> Result<Vec<Desc>, String> {
        let size = self.queues[q].size;
        let mut out = Vec::new();
        let mut id = head;
        loop {
            if id >= size || out.len() >= size as usize {
                let e = format!("queue {q}: chain from {head} reaches descriptor {id} (length {})", out.len());
                self.violation(e.clone());
                return Err(e);
            }
            let d = self.desc(q, id);
            out.push(d);
            if d.flags & DESC_NEXT == 0 {
                return Ok(out);
            }
            id = d.next;
        }
    }

    /// Entries the driver made available on queue `q` that the device has not taken.
    pub fn avail_posted(&self, q: usize) -> u16 {
        let vq = &self.queues[q];
        if !vq.enabled {
            return 0;
        }
        // SAFETY: the queue is enabled: the driver keeps its rings allocated.
        unsafe { rd16(vq.driver + 2) }.wrapping_sub(vq.last_avail)
    }

    /// The next available descriptor id of queue `q`, if any (none while the device is not
    /// live).
    pub fn next_avail(&mut self, q: usize) -> Option<u16> {
        let vq = self.queues[q].clone();
        if !vq.enabled || !self.live() {
            return None;
        }
        // SAFETY: enabled queue: the available ring is allocated with `size` entries.
        let idx = unsafe { rd16(vq.driver + 2) };
        if idx == vq.last_avail {
            // Drained: with EVENT_IDX and notifications wanted, ask for one when the next
            // entry is made available (as QEMU re-arms `avail_event` after a drain).
            if self.event_idx() && !self.knobs.no_notify {
                // SAFETY: enabled queue: the used ring has the trailing `avail_event`.
                unsafe { wr16(vq.device + 4 + 8 * vq.size as u64, idx) };
            }
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

    /// Writes used entry (`id`, `len`) to queue `q` and publishes it.
    pub fn push_used(&mut self, q: usize, id: u32, len: u32) {
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

    /// Moves queue `q`'s used index `by` entries ahead without writing entries, as a
    /// broken device would.
    pub fn bump_used_idx(&mut self, q: usize, by: u16) {
        let vq = &mut self.queues[q];
        vq.used_idx = vq.used_idx.wrapping_add(by);
        // SAFETY: the used ring of an enabled queue is allocated.
        unsafe { wr16(vq.device + 2, vq.used_idx) };
    }

    /// Raises the queue interrupt unless the driver suppressed it: with EVENT_IDX, if
    /// the used index passed `used_event` since the last decision; otherwise unless
    /// `VIRTQ_AVAIL_F_NO_INTERRUPT` is set.
    pub fn interrupt(&mut self, q: usize) {
        let fire = if self.event_idx() {
            let (old, new) = (self.queues[q].signalled_used, self.queues[q].used_idx);
            self.queues[q].signalled_used = new;
            need_event(self.used_event(q), new, old)
        } else {
            let vq = &self.queues[q];
            // SAFETY: the available ring of an enabled queue is allocated.
            let flags = unsafe { rd16(vq.driver) };
            flags & 1 == 0
        };
        if fire {
            self.irqs += 1;
            self.isr |= 1;
        }
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

    /// Returns true if the write reset the device.
    fn write_common(&mut self, off: usize, width: usize, v: u64) -> bool {
        let want = match off {
            0 | 8 | 12 | 32 | 36 | 40 | 44 | 48 | 52 => 4,
            16 | 22 | 24 | 26 | 28 => 2,
            20 => 1,
            _ => {
                self.violation(format!("write of read-only or unknown common cfg offset {off}"));
                return false;
            }
        };
        if want != width {
            self.violation(format!("common cfg offset {off} written with width {width}, field is {want}"));
        }
        // Queue fields: only before DRIVER_OK, only for an existing queue not yet enabled.
        if matches!(off, 24 | 26 | 28 | 32..=52) && !self.queue_write(off) {
            return false;
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
            20 => return self.write_status(v as u8),
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
        false
    }
}

/// What makes the model a particular device type.
pub trait Personality: Send + 'static {
    /// A `width`-byte read of the device configuration at `off`.
    fn config(&mut self, dev: &mut Dev, off: usize, width: usize) -> u64;
    /// The driver notified queue `queue` (the device is live and the queue exists).
    fn notify(&mut self, dev: &mut Dev, queue: u16);
    /// The driver reset the device.
    fn reset(&mut self, _dev: &mut Dev) {}
}

/// The common state and the device type's own.
pub struct State<P> {
    pub dev: Dev,
    pub p: P,
}

impl<P> Deref for State<P> {
    type Target = Dev;
    fn deref(&self) -> &Dev {
        &self.dev
    }
}
impl<P> DerefMut for State<P> {
    fn deref_mut(&mut self) -> &mut Dev {
        &mut self.dev
    }
}

/// A handle on the device, shared by the driver (as its transport) and the test.
pub struct Model<P>(Arc<Mutex<State<P>>>);

impl<P> Clone for Model<P> {
    fn clone(&self) -> Self {
        Model(self.0.clone())
    }
}

impl<P: Personality> Model<P> {
    pub fn with(knobs: Knobs, p: P) -> Self {
        Model(Arc::new(Mutex::new(State { dev: Dev::new(knobs), p })))
    }

    /// The device's state (common fields through `Deref`, the device type's in `.p`).
    pub fn dev(&self) -> MutexGuard<'_, State<P>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn status(&self) -> u8 {
        self.dev().status
    }
    pub fn irqs(&self) -> u64 {
        self.dev().irqs
    }
    pub fn resets(&self) -> u64 {
        self.dev().resets
    }
    pub fn notifies(&self) -> Vec<u64> {
        self.dev().notifies.clone()
    }
    pub fn violations(&self) -> Vec<String> {
        self.dev().violations.clone()
    }
    pub fn queue(&self, i: usize) -> Vq {
        self.dev().queues[i].clone()
    }

    /// True if no queue was given ring addresses or enabled.
    pub fn queues_untouched(&self) -> bool {
        self.dev().queues.iter().all(|q| !q.enabled && q.desc == 0 && q.driver == 0 && q.device == 0)
    }

    /// Writes a used entry (`id`, `len`) to queue `q` without consuming a buffer, as a
    /// buggy device would, and interrupts.
    pub fn inject_used(&self, q: usize, id: u32, len: u32) {
        let mut d = self.dev();
        d.push_used(q, id, len);
        d.interrupt(q);
    }

    /// Changes the NO_NOTIFY hint in every used ring.
    pub fn set_no_notify(&self, on: bool) {
        let mut d = self.dev();
        d.knobs.no_notify = on;
        d.write_used_flags();
    }

    /// Sets `DEVICE_NEEDS_RESET`.
    pub fn set_needs_reset(&self) {
        self.dev().set_needs_reset();
    }

    fn read(&self, r: Region, off: usize, width: usize) -> u64 {
        let mut g = self.dev();
        let s = &mut *g;
        match r {
            Region::Common => s.dev.read_common(off, width),
            Region::Isr if width == 1 => {
                let v = s.dev.isr;
                s.dev.isr = 0;
                v as u64
            }
            Region::Device => s.p.config(&mut s.dev, off, width),
            _ => {
                s.dev.violation(format!("{}-bit read of {r:?}+{off}", width * 8));
                0
            }
        }
    }

    fn write(&self, r: Region, off: usize, width: usize, v: u64) {
        let mut g = self.dev();
        let s = &mut *g;
        if r != Region::Common {
            s.dev.violation(format!("{}-bit write to {r:?}+{off}", width * 8));
            return;
        }
        if s.dev.write_common(off, width, v) {
            s.p.reset(&mut s.dev);
        }
    }
}

impl<P: Personality> Transport for Model<P> {
    fn read8(&self, r: Region, off: usize) -> u8 {
        self.read(r, off, 1) as u8
    }
    fn read16(&self, r: Region, off: usize) -> u16 {
        self.read(r, off, 2) as u16
    }
    fn read32(&self, r: Region, off: usize) -> u32 {
        self.read(r, off, 4) as u32
    }
    fn write8(&mut self, r: Region, off: usize, v: u8) {
        self.write(r, off, 1, v as u64)
    }
    fn write16(&mut self, r: Region, off: usize, v: u16) {
        self.write(r, off, 2, v as u64)
    }
    fn write32(&mut self, r: Region, off: usize, v: u32) {
        self.write(r, off, 4, v as u64)
    }
    fn set_notify_off(&mut self, queue: u16, notify_off: u16) -> Result<(), Error> {
        let mut d = self.dev();
        if notify_off != queue {
            d.violation(format!("queue {queue} given notify_off {notify_off}, the device said {queue}"));
        }
        Ok(())
    }
    fn notify(&mut self, queue: u16) {
        let mut g = self.dev();
        let s = &mut *g;
        if s.dev.status & S_DRIVER_OK == 0 {
            s.dev.violation(format!("notify of queue {queue} before DRIVER_OK"));
            return;
        }
        if s.dev.knobs.no_notify {
            s.dev.violation(format!("notify of queue {queue} although the device set NO_NOTIFY"));
        }
        match s.dev.notifies.get_mut(queue as usize) {
            Some(n) => *n += 1,
            None => {
                s.dev.violation(format!("notify of queue {queue}"));
                return;
            }
        }
        if s.dev.live() {
            s.p.notify(&mut s.dev, queue);
        }
    }
}

/// Implements `frond_virtio::Transport` for a newtype `$t(Model<P>)` by delegation, so a
/// device type's test model can add its own methods and still be the driver's transport.
#[macro_export]
macro_rules! delegate_transport {
    ($t:ty) => {
        impl ::frond_virtio::Transport for $t {
            fn read8(&self, r: ::frond_virtio::Region, off: usize) -> u8 {
                ::frond_virtio::Transport::read8(&self.0, r, off)
            }
            fn read16(&self, r: ::frond_virtio::Region, off: usize) -> u16 {
                ::frond_virtio::Transport::read16(&self.0, r, off)
            }
            fn read32(&self, r: ::frond_virtio::Region, off: usize) -> u32 {
                ::frond_virtio::Transport::read32(&self.0, r, off)
            }
            fn write8(&mut self, r: ::frond_virtio::Region, off: usize, v: u8) {
                ::frond_virtio::Transport::write8(&mut self.0, r, off, v)
            }
            fn write16(&mut self, r: ::frond_virtio::Region, off: usize, v: u16) {
                ::frond_virtio::Transport::write16(&mut self.0, r, off, v)
            }
            fn write32(&mut self, r: ::frond_virtio::Region, off: usize, v: u32) {
                ::frond_virtio::Transport::write32(&mut self.0, r, off, v)
            }
            fn set_notify_off(&mut self, queue: u16, off: u16) -> Result<(), ::frond_virtio::Error> {
                ::frond_virtio::Transport::set_notify_off(&mut self.0, queue, off)
            }
            fn notify(&mut self, queue: u16) {
                ::frond_virtio::Transport::notify(&mut self.0, queue)
            }
        }
    };
}
