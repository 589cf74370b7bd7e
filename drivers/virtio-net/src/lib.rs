//! # frond-virtio-net — the virtio-net driver core
//!
//! Drives a virtio-net device as specified by virtio 1.x (1.0 and later revisions) over
//! the **modern PCI transport** (devices run with `disable-legacy=on`; legacy and
//! transitional interfaces are not supported) with **split virtqueues**: queue 0 receives,
//! queue 1 transmits. The only features accepted are `VIRTIO_F_VERSION_1` (required) and
//! `VIRTIO_NET_F_MAC`: no checksum offload, no segmentation offload, no mergeable receive
//! buffers, no event index, so every packet carries the 12-byte `virtio_net_hdr` and fits
//! one descriptor.
//!
//! * [`Transport`] abstracts the four modern regions (common configuration, notify, ISR,
//!   device configuration); [`PciTransport`] implements it with volatile MMIO on the BARs
//!   the kernel mapped, and host tests implement it with a device model.
//! * [`VirtioNet`] negotiates, sets up both queues, and moves `Batch`es of
//!   `RRef<Pkt>` to and from the device **without copying**: a descriptor points at the
//!   packet's `head` (the header room) and covers header and frame, which `Pkt` keeps
//!   contiguous; the device reads and writes the buffer in place.
//!
//! May depend on: `frond-interface` (packet, batch, statistics and PCI device types),
//! `rref`, and `alloc` (ring memory and slot tables). `unsafe` appears only for MMIO
//! ([`PciTransport`]) and ring memory (`queue`), each block with a `// SAFETY:` comment.
//!
//! ## Invariants
//! * Every descriptor of a queue is either *free* (on the free list, its slot empty) or
//!   *outstanding* (its slot holds the `RRef<Pkt>` the descriptor points into). A buffer
//!   leaves the driver only through its slot, so it is returned at most once and never lost.
//! * The driver does not touch an outstanding buffer: the device owns it until its id
//!   appears in the used ring.
//! * Nothing the device writes (used ids, lengths, indices) makes the driver panic, index
//!   out of bounds or release a buffer twice: bad entries are counted as dropped.
//! * The device is reset before the ring memory and outstanding buffers are freed
//!   (`Drop`), so it never writes to freed memory.
//! * Ring memory and buffers are identity-mapped (a pointer's address is its physical
//!   address), which the kernel guarantees for domain heaps and the shared heap.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod driver;
mod error;
mod queue;
mod transport;

pub use driver::VirtioNet;
pub use error::{BarProblem, Error};
pub use transport::{PciTransport, Region, Transport};

/// Feature bit: the device follows virtio 1.x (required).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Feature bit: the device configuration holds a valid MAC address.
pub const VIRTIO_NET_F_MAC: u64 = 1 << 5;
/// Features the driver accepts when the device offers them.
pub const DRIVER_FEATURES: u64 = VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC;

/// Device status bits (virtio 1.x §2.1).
pub mod status {
    pub const ACKNOWLEDGE: u8 = 1;
    pub const DRIVER: u8 = 2;
    pub const DRIVER_OK: u8 = 4;
    pub const FEATURES_OK: u8 = 8;
    pub const NEEDS_RESET: u8 = 64;
    pub const FAILED: u8 = 128;
}

/// Largest queue the driver sets up (smaller if the device's maximum is).
pub const QUEUE_SIZE_MAX: u16 = 256;
/// Receive queue index.
pub const RX_QUEUE: u16 = 0;
/// Transmit queue index.
pub const TX_QUEUE: u16 = 1;
/// `queue_msix_vector` / `config_msix_vector` value meaning "no vector".
pub const NO_VECTOR: u16 = 0xffff;
