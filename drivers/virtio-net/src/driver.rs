//! Device initialisation and the batched receive/transmit paths.

use crate::queue::{Queue, AVAIL_F_NO_INTERRUPT, DESC_F_WRITE};
use crate::status::*;
use crate::transport::{Region, Transport};
use crate::{
    Error, DRIVER_FEATURES, NO_VECTOR, QUEUE_SIZE_MAX, RX_QUEUE, TX_QUEUE, VIRTIO_F_VERSION_1, VIRTIO_NET_F_MAC,
};
use core::sync::atomic::{fence, Ordering};
use frond_interface::net::{Batch, NicStats, PktQueue, FRAME_MAX, HEADROOM, PKT_DATA};

/// Common configuration register offsets (virtio 1.x §4.1.4.3).
mod common {
    pub const DEVICE_FEATURE_SELECT: usize = 0;
    pub const DEVICE_FEATURE: usize = 4;
    pub const DRIVER_FEATURE_SELECT: usize = 8;
    pub const DRIVER_FEATURE: usize = 12;
    pub const CONFIG_MSIX_VECTOR: usize = 16;
    pub const NUM_QUEUES: usize = 18;
    pub const DEVICE_STATUS: usize = 20;
    pub const CONFIG_GENERATION: usize = 21;
    pub const QUEUE_SELECT: usize = 22;
    pub const QUEUE_SIZE: usize = 24;
    pub const QUEUE_MSIX_VECTOR: usize = 26;
    pub const QUEUE_ENABLE: usize = 28;
    pub const QUEUE_NOTIFY_OFF: usize = 30;
    pub const QUEUE_DESC: usize = 32;
    pub const QUEUE_DRIVER: usize = 40;
    pub const QUEUE_DEVICE: usize = 48;
}

/// Status reads after a reset before the driver gives up waiting for 0.
const RESET_POLLS: u32 = 1_000_000;

/// A running virtio-net device: both queues set up, `DRIVER_OK` written.
///
/// Dropping it resets the device (so it stops using the rings and buffers) and then frees
/// the rings and the buffers still posted.
pub struct VirtioNet<T: Transport> {
    t: T,
    features: u64,
    mac: [u8; 6],
    rx: Queue,
    tx: Queue,
    stats: NicStats,
}

impl<T: Transport> VirtioNet<T> {
    /// Resets and initialises the device behind `t` (virtio 1.x §3.1.1): negotiates
    /// `VERSION_1` (+ `MAC` if offered), sets up the receive and transmit queues with at
    /// most [`QUEUE_SIZE_MAX`] entries, routes both queues to MSI-X vector 0 if `msix`
    /// (the kernel enabled entry 0) or to no vector, and writes `DRIVER_OK`. Interrupts
    /// start suppressed (see [`VirtioNet::set_interrupts`]).
    ///
    /// On failure the device is left with `FAILED` set.
    pub fn new(mut t: T, msix: bool) -> Result<Self, Error> {
        match Self::init(&mut t, msix) {
            Ok((features, mac, rx, tx)) => Ok(Self { t, features, mac, rx, tx, stats: NicStats::default() }),
            Err(e) => {
                let s = t.read8(Region::Common, common::DEVICE_STATUS);
                t.write8(Region::Common, common::DEVICE_STATUS, s | FAILED);
                Err(e)
            }
        }
    }

    fn init(t: &mut T, msix: bool) -> Result<(u64, [u8; 6], Queue, Queue), Error> {
        reset(t)?;
        let mut st = ACKNOWLEDGE;
        set_status(t, st);
        st |= DRIVER;
        set_status(t, st);

        let mut offered = 0u64;
        for half in 0..2u32 {
            t.write32(Region::Common, common::DEVICE_FEATURE_SELECT, half);
            offered |= (t.read32(Region::Common, common::DEVICE_FEATURE) as u64) << (32 * half);
        }
        if offered & VIRTIO_F_VERSION_1 == 0 {
            return Err(Error::NoVersion1 { offered });
        }
        let accepted = offered & DRIVER_FEATURES;
        for half in 0..2u32 {
            t.write32(Region::Common, common::DRIVER_FEATURE_SELECT, half);
            t.write32(Region::Common, common::DRIVER_FEATURE, (accepted >> (32 * half)) as u32);
        }
        st |= FEATURES_OK;
        set_status(t, st);
        if t.read8(Region::Common, common::DEVICE_STATUS) & FEATURES_OK == 0 {
            return Err(Error::FeaturesRejected { accepted });
        }

        let nq = t.read16(Region::Common, common::NUM_QUEUES);
        if nq < 2 {
            return Err(Error::TooFewQueues(nq));
        }
        t.write16(Region::Common, common::CONFIG_MSIX_VECTOR, NO_VECTOR);
        let read = t.read16(Region::Common, common::CONFIG_MSIX_VECTOR);
        if read != NO_VECTOR {
            return Err(Error::MsixRefused { queue: None, wrote: NO_VECTOR, read });
        }
        let vector = if msix { 0 } else { NO_VECTOR };
        let rx = setup_queue(t, RX_QUEUE, vector)?;
        let tx = setup_queue(t, TX_QUEUE, vector)?;

        let mut mac = [0u8; 6];
        if accepted & VIRTIO_NET_F_MAC != 0 {
            // Re-read if the device changed its configuration meanwhile (§4.1.4.3.1).
            for _ in 0..16 {
                let g = t.read8(Region::Common, common::CONFIG_GENERATION);
                for (i, b) in mac.iter_mut().enumerate() {
                    *b = t.read8(Region::Device, i);
                }
                if t.read8(Region::Common, common::CONFIG_GENERATION) == g {
                    break;
                }
            }
        }

        st |= DRIVER_OK;
        set_status(t, st);
        let now = t.read8(Region::Common, common::DEVICE_STATUS);
        if now & (NEEDS_RESET | FAILED) != 0 {
            return Err(Error::DeviceError { status: now });
        }
        Ok((accepted, mac, rx, tx))
    }

    /// The MAC address from the device configuration (zero if the device offers none).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Entries per queue (the smaller queue, should they differ).
    pub fn queue_size(&self) -> u16 {
        self.rx.size.min(self.tx.size)
    }

    /// The negotiated feature bits.
    pub fn features(&self) -> u64 {
        self.features
    }

    pub fn stats(&self) -> NicStats {
        self.stats
    }

    /// Counts an interrupt taken on the device's behalf.
    pub fn count_irq(&mut self) {
        self.stats.irqs += 1;
    }

    /// Buffers the device holds: (receive, transmit).
    pub fn outstanding(&self) -> (usize, usize) {
        (self.rx.outstanding(), self.tx.outstanding())
    }

    /// Reads (and so acknowledges) the ISR status: bit 0 queue interrupt, bit 1
    /// configuration change. Only meaningful without MSI-X.
    pub fn isr_status(&self) -> u8 {
        self.t.read8(Region::Isr, 0)
    }

    /// Allows (`true`) or suppresses (`false`) used-buffer interrupts on both queues.
    /// Suppression is a hint the device may ignore.
    pub fn set_interrupts(&mut self, on: bool) {
        let flags = if on { 0 } else { AVAIL_F_NO_INTERRUPT };
        self.rx.set_avail_flags(flags);
        self.tx.set_avail_flags(flags);
        // The flag is visible to the device before `has_work` reads the used rings.
        fence(Ordering::SeqCst);
    }

    /// True if either queue has used entries the driver has not processed. Called after
    /// enabling interrupts, it closes the race with an entry that arrived just before.
    pub fn has_work(&self) -> bool {
        self.rx.pending() || self.tx.pending()
    }

    /// Transmits, with the semantics of `Nic::tx`: first moves completed buffers into
    /// `b.done` (while it has room), then posts frames from the front of `b.pkts` while
    /// descriptors are free. A frame longer than [`FRAME_MAX`] is dropped and returned in
    /// `b.done` (if it has room; else it stays, and so does everything behind it).
    pub fn tx(&mut self, mut b: Batch) -> Batch {
        let end = self.tx.used_end();
        while self.tx.last_used() != end {
            let (id, _) = self.tx.peek_used();
            if !self.tx.is_outstanding(id) {
                self.stats.dropped += 1;
                self.tx.advance();
                continue;
            }
            if b.done.is_full() {
                break;
            }
            self.tx.advance();
            if let Some(p) = self.tx.take(id) {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += p.len as u64;
                give(&mut b.done, p);
            }
        }

        while let Some(len) = front_len(&b.pkts) {
            if len > FRAME_MAX {
                if b.done.is_full() {
                    break;
                }
                let Some(p) = b.pkts.pop_front() else { break };
                self.stats.dropped += 1;
                give(&mut b.done, p);
                continue;
            }
            if !self.tx.has_free() {
                break;
            }
            let Some(mut p) = b.pkts.pop_front() else { break };
            p.head = [0; HEADROOM];
            if let Err(p) = self.tx.post(p, (HEADROOM + len) as u32, 0) {
                // Unreachable (a descriptor was free); hand the frame back rather than lose it.
                let _ = b.pkts.push_back(p);
                break;
            }
        }
        if self.tx.publish() {
            self.t.notify(self.tx.index);
        }
        b
    }

    /// Receives, with the semantics of `Nic::rx`: first moves received frames into
    /// `b.done` (while it has room) in arrival order, then posts buffers from `b.pkts`
    /// while descriptors are free. An entry with a length outside `12..=12 + FRAME_MAX` is
    /// dropped and its buffer goes straight back to the device; an entry naming a
    /// descriptor the device does not hold is dropped and skipped.
    pub fn rx(&mut self, mut b: Batch) -> Batch {
        let end = self.rx.used_end();
        while self.rx.last_used() != end {
            let (id, len) = self.rx.peek_used();
            if !self.rx.is_outstanding(id) {
                self.stats.dropped += 1;
                self.rx.advance();
                continue;
            }
            let len = len as usize;
            if !(HEADROOM..=HEADROOM + FRAME_MAX).contains(&len) {
                self.stats.dropped += 1;
                self.rx.advance();
                self.rx.repost(id);
                continue;
            }
            if b.done.is_full() {
                break;
            }
            self.rx.advance();
            if let Some(mut p) = self.rx.take(id) {
                p.len = (len - HEADROOM) as u32;
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += p.len as u64;
                give(&mut b.done, p);
            }
        }

        while self.rx.has_free() {
            let Some(p) = b.pkts.pop_front() else { break };
            if let Err(p) = self.rx.post(p, (HEADROOM + PKT_DATA) as u32, DESC_F_WRITE) {
                // Unreachable (a descriptor was free); hand the buffer back rather than lose it.
                let _ = b.pkts.push_back(p);
                break;
            }
        }
        if self.rx.publish() {
            self.t.notify(self.rx.index);
        }
        b
    }
}

impl<T: Transport> Drop for VirtioNet<T> {
    fn drop(&mut self) {
        // Stop the device before its rings and buffers are freed. If the reset does not
        // complete, there is nothing better to do than to go on.
        let _ = reset(&mut self.t);
    }
}

/// The frame length of the first buffer in `q`.
fn front_len(q: &PktQueue) -> Option<usize> {
    q.iter().next().map(|p| p.len as usize)
}

/// Appends to a queue the caller checked has room.
fn give(q: &mut PktQueue, p: frond_interface::RRef<frond_interface::net::Pkt>) {
    let pushed = q.push_back(p);
    debug_assert!(pushed.is_ok(), "virtio-net: done queue unexpectedly full");
}

fn set_status<T: Transport>(t: &mut T, s: u8) {
    t.write8(Region::Common, common::DEVICE_STATUS, s);
}

fn reset<T: Transport>(t: &mut T) -> Result<(), Error> {
    set_status(t, 0);
    for _ in 0..RESET_POLLS {
        if t.read8(Region::Common, common::DEVICE_STATUS) == 0 {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(Error::ResetTimeout)
}

fn setup_queue<T: Transport>(t: &mut T, index: u16, vector: u16) -> Result<Queue, Error> {
    t.write16(Region::Common, common::QUEUE_SELECT, index);
    let max = t.read16(Region::Common, common::QUEUE_SIZE);
    if max == 0 {
        return Err(Error::QueueUnavailable(index));
    }
    // Largest power of two not above either limit.
    let want = max.min(QUEUE_SIZE_MAX);
    let size = 1u16 << (15 - want.leading_zeros());
    t.write16(Region::Common, common::QUEUE_SIZE, size);
    let mut q = Queue::new(index, size)?;
    // Interrupts start suppressed; `set_interrupts` allows them.
    q.set_avail_flags(AVAIL_F_NO_INTERRUPT);
    t.write64(Region::Common, common::QUEUE_DESC, q.desc_addr());
    t.write64(Region::Common, common::QUEUE_DRIVER, q.avail_addr());
    t.write64(Region::Common, common::QUEUE_DEVICE, q.used_addr());
    t.write16(Region::Common, common::QUEUE_MSIX_VECTOR, vector);
    let read = t.read16(Region::Common, common::QUEUE_MSIX_VECTOR);
    if read != vector {
        return Err(Error::MsixRefused { queue: Some(index), wrote: vector, read });
    }
    let off = t.read16(Region::Common, common::QUEUE_NOTIFY_OFF);
    t.set_notify_off(index, off)?;
    t.write16(Region::Common, common::QUEUE_ENABLE, 1);
    Ok(q)
}
