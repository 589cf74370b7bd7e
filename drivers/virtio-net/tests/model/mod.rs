//! A virtio-net device model for host tests: the common virtio device of
//! `frond-virtio-model` with the network device's personality:
//!
//! * device configuration: the 6-byte MAC (byte reads);
//! * notify: processes the transmit queue (records each frame, checks descriptor flags
//!   and that the 12-byte header is zero), unless transmission is held;
//! * receive: the test injects frames into the posted buffers, in available-ring order.

#![allow(dead_code)]

use frond_virtio_model::{delegate_transport, Dev, Personality};
use std::ops::Deref;

pub use frond_virtio_model::{F_RING_EVENT_IDX, F_VERSION_1, S_ACK, S_DRIVER, S_DRIVER_OK, S_FAILED, S_FEATURES_OK};

pub const F_NET_MAC: u64 = 1 << 5;
pub const F_NET_CSUM: u64 = 1 << 0;
pub const F_NET_MRG_RXBUF: u64 = 1 << 15;
pub const F_NET_STATUS: u64 = 1 << 16;

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

/// The network device's own state.
#[derive(Debug, Default)]
pub struct Net {
    pub mac: [u8; 6],
    pub hold_tx: bool,
    /// Frames transmitted, in order.
    pub sent: Vec<Vec<u8>>,
}

impl Personality for Net {
    fn config(&mut self, dev: &mut Dev, off: usize, width: usize) -> u64 {
        if width != 1 {
            dev.violation(format!("{}-bit read of the device configuration at {off}", width * 8));
            return 0;
        }
        self.mac.get(off).copied().unwrap_or(0) as u64
    }

    fn notify(&mut self, dev: &mut Dev, queue: u16) {
        if queue == 1 && !self.hold_tx {
            self.process_tx(dev);
        }
    }
}

impl Net {
    fn receive(&mut self, dev: &mut Dev, frame: &[u8], bad_len: Option<u32>) -> Option<(u16, u64)> {
        let id = dev.next_avail(0)?;
        let d = dev.desc(0, id);
        if d.flags & DESC_WRITE == 0 || d.flags & DESC_NEXT != 0 {
            dev.violation(format!("rx descriptor {id} has flags {:#x}", d.flags));
        }
        if (d.len as usize) < NET_HDR + 1514 || d.addr == 0 {
            dev.violation(format!("rx descriptor {id}: {} bytes at {:#x}", d.len, d.addr));
            return None;
        }
        let n = frame.len().min(d.len as usize - NET_HDR);
        // SAFETY: the descriptor grants the device `d.len` writable bytes at `d.addr`.
        let buf = unsafe { std::slice::from_raw_parts_mut(d.addr as usize as *mut u8, d.len as usize) };
        buf[..NET_HDR].fill(0);
        buf[10] = 1; // num_buffers
        buf[NET_HDR..NET_HDR + n].copy_from_slice(&frame[..n]);
        dev.push_used(0, id as u32, bad_len.unwrap_or((NET_HDR + n) as u32));
        dev.interrupt(0);
        Some((id, d.addr))
    }

    fn process_tx(&mut self, dev: &mut Dev) -> usize {
        let mut n = 0;
        while let Some(id) = dev.next_avail(1) {
            let d = dev.desc(1, id);
            if d.flags != 0 {
                dev.violation(format!("tx descriptor {id} has flags {:#x}", d.flags));
            }
            if (d.len as usize) < NET_HDR || d.len as usize > NET_HDR + 1514 {
                dev.violation(format!("tx descriptor {id} is {} bytes", d.len));
            }
            // SAFETY: the descriptor grants the device `d.len` readable bytes at `d.addr`.
            let buf = unsafe { std::slice::from_raw_parts(d.addr as usize as *const u8, d.len as usize) };
            if buf[..NET_HDR.min(buf.len())].iter().any(|&b| b != 0) {
                dev.violation(format!("tx descriptor {id}: header not zero: {:?}", &buf[..NET_HDR]));
            }
            self.sent.push(buf[NET_HDR.min(buf.len())..].to_vec());
            dev.push_used(1, id as u32, 0);
            n += 1;
        }
        if n > 0 {
            dev.interrupt(1);
        }
        n
    }
}

/// A handle on the device, shared by the driver (as its transport) and the test.
#[derive(Clone)]
pub struct Model(frond_virtio_model::Model<Net>);

delegate_transport!(Model);

impl Deref for Model {
    type Target = frond_virtio_model::Model<Net>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Model {
    pub fn new(k: Knobs) -> Self {
        let common = frond_virtio_model::Knobs {
            features: k.features,
            max_queue_size: k.max_queue_size,
            num_queues: k.num_queues,
            msix_vectors: k.msix_vectors,
            reject_features: k.reject_features,
            reset_delay: k.reset_delay,
            no_notify: k.no_notify,
        };
        Model(frond_virtio_model::Model::with(common, Net { mac: k.mac, hold_tx: k.hold_tx, sent: Vec::new() }))
    }

    pub fn sent(&self) -> Vec<Vec<u8>> {
        self.dev().p.sent.clone()
    }

    /// Delivers `frame` into the next posted receive buffer: returns the descriptor id
    /// and the buffer's address, or None if no buffer is posted.
    pub fn inject(&self, frame: &[u8]) -> Option<(u16, u64)> {
        let mut g = self.dev();
        let s = &mut *g;
        s.p.receive(&mut s.dev, frame, None)
    }

    /// Consumes the next posted receive buffer but reports `len` as the written length.
    pub fn inject_bad_len(&self, len: u32) -> Option<(u16, u64)> {
        let mut g = self.dev();
        let s = &mut *g;
        s.p.receive(&mut s.dev, &[0xab; 60], Some(len))
    }

    /// Processes the transmit queue now; returns the frames sent.
    pub fn complete_tx(&self) -> usize {
        let mut g = self.dev();
        let s = &mut *g;
        s.p.process_tx(&mut s.dev)
    }

    /// Receive buffers posted and not yet used.
    pub fn rx_posted(&self) -> u16 {
        self.dev().avail_posted(0)
    }
}
