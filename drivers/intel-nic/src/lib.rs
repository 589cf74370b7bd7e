//! # frond-intel-nic — the Intel NIC driver core
//!
//! One ring engine for the Intel **advanced descriptors** (16-byte receive read and
//! write-back formats, advanced transmit data descriptors) and two register maps:
//!
//! * the **82599** 10 GbE controller (ixgbe, 8086:10fb), initialised as its datasheet
//!   §4.6 describes; verified only against the device model in `tests/model`;
//! * the **82576** GbE controller (igb, 8086:10c9), initialised as QEMU's `igb` model
//!   implements it; verified in QEMU with real traffic.
//!
//! [`Regs`] abstracts the 32-bit registers of BAR 0: [`Mmio`] implements it with volatile
//! accesses in the driver domains, host tests with the model. [`IntelNic`] moves
//! `Batch`es of `RRef<Pkt>` with the `Nic` semantics of virtio-net, **without copying**:
//! a descriptor's buffer address is the address of the packet's `data` field, so the
//! device reads and writes the frame in place (the shared heap is identity-mapped). Each
//! `rx`/`tx` call writes its tail register at most once (batched).
//!
//! May depend on: `frond-interface`, `rref`, `alloc`. `unsafe` only for MMIO ([`Mmio`])
//! and ring memory (`ring`), each block with a `// SAFETY:` comment.
//!
//! ## Invariants
//! * A descriptor between a ring's `clean` and `tail` is *outstanding* and its slot holds
//!   the `RRef<Pkt>` it points into; every other slot is empty. A buffer leaves the
//!   driver only through its slot: returned at most once, never lost.
//! * The driver looks only at outstanding descriptors, so nothing the device writes
//!   (lengths past the buffer, missing EOP, DD bits on descriptors it was never given, a
//!   head register past the ring) makes it panic, index out of bounds or release a buffer
//!   twice: bad frames are dropped and counted, their buffers go back to the device.
//! * Every polled wait has a budget ([`POLL_BUDGET`] reads) and ends in an [`Error`].
//! * The device is reset before the rings and posted buffers are freed (`Drop`), and
//!   after a failed init.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod chip;
mod driver;
mod error;
mod regs;
mod ring;

pub use chip::{common, i82576, i82599, Chip};
pub use driver::{DeviceStats, IntelNic, POLL_BUDGET, RING_SIZE, RX_BUF_KB};
pub use error::{Dir, Error};
pub use regs::{Mmio, Regs};
