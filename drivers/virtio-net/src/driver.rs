//! Device initialisation and the batched receive/transmit paths.

use crate::ring::Ring;
use crate::{Error, DRIVER_FEATURES, RX_QUEUE, TX_QUEUE, VIRTIO_F_RING_EVENT_IDX, VIRTIO_NET_F_MAC};
use frond_interface::net::{Batch, NicStats, PktQueue, FRAME_MAX, HEADROOM, PKT_DATA};
use frond_virtio::init;
use frond_virtio::{Region, Transport, NO_VECTOR};

/// Receive buffers held back before they are published together (see `VirtioNet::rx`).
pub const RX_REFILL_BATCH: usize = 16;

/// A running virtio-net device: both queues set up, `DRIVER_OK` written.
///
/// Dropping it resets the device (so it stops using the rings and buffers) and then frees
/// the rings and the buffers still posted.
pub struct VirtioNet<T: Transport> {
    t: T,
    features: u64,
    mac: [u8; 6],
    rx: Ring,
    tx: Ring,
    stats: NicStats,
    /// Asked where a used entry is read: 0, or a corruption to apply to it (fault
    /// injection: 1 = a length no buffer can have, 2 = an id the device does not hold).
    fault_hook: fn() -> u32,
    /// The device broke the ring protocol in a way the driver cannot undo alone (see
    /// [`VirtioNet::take_device_fault`]).
    device_fault: Option<UsedFault>,
}

/// A used entry that named a descriptor the device does not hold: the buffer the device
/// meant cannot be known, so only a reset gives it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsedFault {
    pub queue: u16,
    pub id: u32,
}

fn no_fault() -> u32 {
    0
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
            Ok((features, mac, rx, tx)) => {
                Ok(Self { t, features, mac, rx, tx, stats: NicStats::default(), fault_hook: no_fault, device_fault: None })
            }
            Err(e) => {
                init::fail(&mut t);
                Err(e)
            }
        }
    }

    fn init(t: &mut T, msix: bool) -> Result<(u64, [u8; 6], Ring, Ring), Error> {
        let accepted = init::negotiate(t, DRIVER_FEATURES)?.accepted;
        init::num_queues(t, 2)?;
        init::no_config_vector(t)?;
        let vector = if msix { 0 } else { NO_VECTOR };
        // Interrupts start suppressed; `set_interrupts` allows them.
        let mut rx = Ring::new(init::setup_queue(t, RX_QUEUE, vector, true)?)?;
        let mut tx = Ring::new(init::setup_queue(t, TX_QUEUE, vector, true)?)?;
        if accepted & VIRTIO_F_RING_EVENT_IDX != 0 {
            for r in [&mut rx, &mut tx] {
                r.q.set_event_idx(true);
                r.q.set_interrupts(false);
            }
        }

        let mut mac = [0u8; 6];
        if accepted & VIRTIO_NET_F_MAC != 0 {
            mac = init::read_config(t, |t| core::array::from_fn(|i| t.read8(Region::Device, i)));
        }
        init::driver_ok(t)?;
        Ok((accepted, mac, rx, tx))
    }

    /// The MAC address from the device configuration (zero if the device offers none).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Entries per queue (the smaller queue, should they differ).
    pub fn queue_size(&self) -> u16 {
        self.rx.q.size().min(self.tx.q.size())
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

    /// Counts a `wait` that blocked.
    pub fn count_sleep(&mut self) {
        self.stats.sleeps += 1;
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
    /// Suppression is a hint the device may ignore. Allowing them (before a wait) first
    /// publishes any receive buffers held back for a batched refill.
    pub fn set_interrupts(&mut self, on: bool) {
        if on {
            self.flush_rx();
        }
        self.rx.q.set_interrupts(on);
        self.tx.q.set_interrupts(on);
        // The flag is visible to the device before `has_work` reads the used rings.
        frond_virtio::device_barrier();
    }

    /// Allows interrupts for a wait on received frames, coalesced: the receive queue
    /// interrupts once `rx_frames` more frames arrived (at most as many as the device
    /// holds buffers for; EVENT_IDX, else at the next), transmit completions do not
    /// interrupt. True if that many frames are already there (then interrupts are
    /// suppressed again and the caller should not sleep).
    pub fn set_interrupts_rx(&mut self, rx_frames: u16) -> bool {
        self.flush_rx();
        let n = rx_frames.clamp(1, self.rx.outstanding().max(1).min(u16::MAX as usize) as u16);
        self.rx.q.set_interrupts_after(n);
        self.tx.q.set_interrupts(false);
        // The setting is visible to the device before the used index is read.
        if self.rx.q.pending_count() >= n {
            self.set_interrupts(false);
            return true;
        }
        false
    }

    /// Installs the fault-injection hook (asked once per used entry read).
    pub fn set_fault_hook(&mut self, f: fn() -> u32) {
        self.fault_hook = f;
    }

    /// The first used entry since the last call that named a descriptor the device does
    /// not hold (a wrong id, a duplicate): the entry was dropped, but the buffer the device
    /// meant stays posted in the driver's books and only a device reset returns it. The
    /// domain fails (and is restarted) on it.
    pub fn take_device_fault(&mut self) -> Option<UsedFault> {
        self.device_fault.take()
    }

    /// True if either queue has used entries the driver has not processed. Called after
    /// enabling interrupts, it closes the race with an entry that arrived just before.
    pub fn has_work(&self) -> bool {
        self.rx.q.pending() || self.tx.q.pending()
    }

    /// Transmits, with the semantics of `Nic::tx`: first moves completed buffers into
    /// `b.done` (while it has room), then posts frames from the front of `b.pkts` while
    /// descriptors are free. A frame longer than [`FRAME_MAX`] is dropped and returned in
    /// `b.done` (if it has room; else it stays, and so does everything behind it).
    pub fn tx(&mut self, mut b: Batch) -> Batch {
        let end = self.tx.q.used_end();
        while self.tx.q.last_used() != end {
            let (id, _) = self.tx.q.peek_used();
            if !self.tx.is_outstanding(id) {
                self.device_fault.get_or_insert(UsedFault { queue: TX_QUEUE, id });
                self.stats.dropped += 1;
                self.tx.q.advance();
                continue;
            }
            if b.done.is_full() {
                break;
            }
            self.tx.q.advance();
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
            if !self.tx.q.has_free() {
                break;
            }
            let Some(mut p) = b.pkts.pop_front() else { break };
            p.head = [0; HEADROOM];
            if let Err(p) = self.tx.post(p, (HEADROOM + len) as u32, false) {
                // Unreachable (a descriptor was free); hand the frame back rather than lose it.
                let _ = b.pkts.push_back(p);
                break;
            }
        }
        if self.tx.q.publish() {
            self.t.notify(self.tx.q.index());
            self.stats.notifies += 1;
        }
        b
    }

    /// Receives, with the semantics of `Nic::rx`: first moves received frames into
    /// `b.done` (while it has room) in arrival order, then posts buffers from `b.pkts`
    /// while descriptors are free. An entry with a length outside `12..=12 + FRAME_MAX` is
    /// dropped and its buffer goes straight back to the device; an entry naming a
    /// descriptor the device does not hold is dropped and skipped.
    pub fn rx(&mut self, mut b: Batch) -> Batch {
        let end = self.rx.q.used_end();
        while self.rx.q.last_used() != end {
            let (id, len) = self.rx.q.peek_used();
            let (id, len) = match (self.fault_hook)() {
                0 => (id, len),
                1 => (id, u32::MAX),
                _ => (id.wrapping_add(0x8000), len),
            };
            if !self.rx.is_outstanding(id) {
                self.device_fault.get_or_insert(UsedFault { queue: RX_QUEUE, id });
                self.stats.dropped += 1;
                self.rx.q.advance();
                continue;
            }
            let len = len as usize;
            if !(HEADROOM..=HEADROOM + FRAME_MAX).contains(&len) {
                self.stats.dropped += 1;
                self.rx.q.advance();
                self.rx.q.repost(id);
                continue;
            }
            if b.done.is_full() {
                break;
            }
            self.rx.q.advance();
            if let Some(mut p) = self.rx.take(id) {
                p.len = (len - HEADROOM) as u32;
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += p.len as u64;
                give(&mut b.done, p);
            }
        }

        while self.rx.q.has_free() {
            let Some(p) = b.pkts.pop_front() else { break };
            if let Err(p) = self.rx.post(p, (HEADROOM + PKT_DATA) as u32, true) {
                // Unreachable (a descriptor was free); hand the buffer back rather than lose it.
                let _ = b.pkts.push_back(p);
                break;
            }
        }
        // Batched refills: new buffers are published (one index write, at most one
        // notification) once RX_REFILL_BATCH of them wait, or at once while the device
        // holds few (below a quarter of the ring), so it never runs dry for want of one.
        let unpublished = self.rx.q.unpublished();
        let visible = self.rx.outstanding().saturating_sub(unpublished);
        if unpublished >= RX_REFILL_BATCH || visible < self.rx.q.size() as usize / 4 {
            self.flush_rx();
        }
        b
    }

    /// Publishes the receive buffers posted but not yet published, notifying the device
    /// if it asks for it.
    pub fn flush_rx(&mut self) {
        if self.rx.q.publish() {
            self.t.notify(self.rx.q.index());
            self.stats.notifies += 1;
        }
    }
}

impl<T: Transport> Drop for VirtioNet<T> {
    fn drop(&mut self) {
        // Stop the device before its rings and buffers are freed. If the reset does not
        // complete, there is nothing better to do than to go on.
        let _ = init::reset(&mut self.t);
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
