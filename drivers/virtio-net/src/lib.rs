//! # frond-virtio-net — the virtio-net driver core
//!
//! Drives a virtio-net device as specified by virtio 1.x (1.0 and later revisions) over
//! the **modern PCI transport** (devices run with `disable-legacy=on`; legacy and
//! transitional interfaces are not supported) with **split virtqueues**: queue 0 receives,
//! queue 1 transmits. The only features accepted are `VIRTIO_F_VERSION_1` (required) and
//! `VIRTIO_NET_F_MAC`, plus `VIRTIO_F_RING_EVENT_IDX` (notification and interrupt
//! suppression by ring index) when offered: no checksum offload, no segmentation offload,
//! no mergeable receive buffers, so every packet carries the 12-byte `virtio_net_hdr` and
//! fits one descriptor.
//!
//! * The transport ([`Transport`], [`PciTransport`]), the split virtqueue and the
//!   initialisation steps come from `frond-virtio` (re-exported here where the API needs
//!   them); host tests drive the driver through a device model built on
//!   `frond-virtio-model`.
//! * [`VirtioNet`] negotiates, sets up both queues, and moves `Batch`es of
//!   `RRef<Pkt>` to and from the device **without copying**: a descriptor points at the
//!   packet's `head` (the header room) and covers header and frame, which `Pkt` keeps
//!   contiguous; the device reads and writes the buffer in place.
//!
//! May depend on: `frond-virtio`, `frond-interface` (packet, batch, statistics and PCI
//! device types), `rref`, and `alloc` (slot tables). No `unsafe` here: MMIO and ring
//! memory are `frond-virtio`'s.
//!
//! ## Invariants
//! * Every descriptor of a queue is either *free* (its slot empty) or *outstanding* (a
//!   one-descriptor chain the device holds; its slot holds the `RRef<Pkt>` the descriptor
//!   points into). A buffer
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
#![forbid(unsafe_code)]

extern crate alloc;

mod driver;
mod ring;

pub use driver::{UsedFault, VirtioNet, RX_REFILL_BATCH};
pub use frond_virtio::{status, BarProblem, Error, PciTransport, Region, Transport, VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1};
pub use frond_virtio::{NO_VECTOR, QUEUE_SIZE_MAX};

/// Feature bit: the device configuration holds a valid MAC address.
pub const VIRTIO_NET_F_MAC: u64 = 1 << 5;
/// Features the driver accepts when the device offers them.
pub const DRIVER_FEATURES: u64 = VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC | VIRTIO_F_RING_EVENT_IDX;
/// Bytes of the device configuration the driver reads (the MAC address).
pub const DEVICE_CFG_LEN: u32 = 6;

/// Receive queue index.
pub const RX_QUEUE: u16 = 0;
/// Transmit queue index.
pub const TX_QUEUE: u16 = 1;
