//! # frond-virtio — what every Frond virtio driver shares
//!
//! virtio 1.x (1.0 and later revisions) over the **modern PCI transport** (devices run
//! with `disable-legacy=on`; legacy and transitional interfaces are not supported) with
//! **split virtqueues**. The device-type drivers (`frond-virtio-net`, `frond-virtio-blk`)
//! build on three parts:
//!
//! * [`Transport`] abstracts the four modern regions (common configuration, notify, ISR,
//!   device configuration); [`PciTransport`] implements it with volatile MMIO on the BARs
//!   the kernel mapped, and host tests implement it with a device model
//!   (`frond-virtio-model`).
//! * [`Queue`]: one split virtqueue — rings in [`DmaMem`], descriptor chains of one or
//!   more [`Seg`]ments (device-readable or device-writable), publication with one
//!   notification per batch, the used ring read exactly as the device wrote it.
//! * [`init`]: the initialisation steps of virtio 1.x §3.1.1 as functions — reset,
//!   feature negotiation, queue setup, `DRIVER_OK` — and consistent reads of the device
//!   configuration.
//!
//! May depend on: `frond-interface` (the PCI device description) and `alloc` (ring memory
//! and bookkeeping). `unsafe` appears only for MMIO ([`PciTransport`]) and DMA memory
//! ([`DmaMem`]), each block with a `// SAFETY:` comment.
//!
//! ## Invariants
//! * Every descriptor of a queue is either free or part of exactly one chain the device
//!   holds; a chain is released at most once, by its head, using the driver's own copy of
//!   the links (never the descriptor table, which the device could rewrite).
//! * Nothing the device writes (used ids, lengths, indices) makes this crate panic or index
//!   out of bounds: ids are checked against the chains in flight before use.
//! * Ring memory is identity-mapped (a pointer's address is its physical address), which the
//!   kernel guarantees for domain heaps and the shared heap. Its owner resets the device
//!   before freeing it, so the device never writes to freed memory.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod error;
pub mod init;
mod queue;
mod transport;

pub use error::{BarProblem, Error};
pub use queue::{
    device_barrier, need_event, DmaMem, Queue, Scalar, Seg, AVAIL_F_NO_INTERRUPT, DESC_F_NEXT, DESC_F_WRITE, USED_F_NO_NOTIFY,
};
pub use transport::{PciTransport, Region, Transport, NOTIFY_QUEUES};

/// Feature bit: the device follows virtio 1.x (required).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Feature bit: `used_event` / `avail_event` suppress interrupts and notifications.
pub const VIRTIO_F_RING_EVENT_IDX: u64 = 1 << 29;

/// Device status bits (virtio 1.x §2.1).
pub mod status {
    pub const ACKNOWLEDGE: u8 = 1;
    pub const DRIVER: u8 = 2;
    pub const DRIVER_OK: u8 = 4;
    pub const FEATURES_OK: u8 = 8;
    pub const NEEDS_RESET: u8 = 64;
    pub const FAILED: u8 = 128;
}

/// Largest queue a Frond driver sets up (smaller if the device's maximum is).
pub const QUEUE_SIZE_MAX: u16 = 256;
/// `queue_msix_vector` / `config_msix_vector` value meaning "no vector".
pub const NO_VECTOR: u16 = 0xffff;
