//! # frond-fwd — IPv4 forwarding between two NICs
//!
//! The logic of the `dom-forward` domain, kept in a library so it runs in host tests:
//!
//! * [`packet`]: the per-packet path. [`process`] validates one Ethernet frame (IPv4 header
//!   version/IHL, checksum, total length, TTL, route, static neighbour) and rewrites it in
//!   place — TTL − 1, checksum adjusted incrementally (RFC 1624), MACs of the output port —
//!   or turns an ARP request for the input port's address into the reply, or names why it
//!   is dropped ([`DropReason`]). No ICMP is ever generated (TTL expiry included).
//! * [`forwarder`]: [`Forwarder`] owns a pool of `RRef<Pkt>` buffers and drives two
//!   [`Nic`](frond_interface::net::Nic)s in rounds of batched `rx`/`tx` calls, counting
//!   everything ([`Counters`], the interface's `FwdStats`).
//!
//! May depend on: `frond-interface` (and through it `rref`), `alloc`. Host tests add
//! `rref`'s `host` feature for a shared heap. Safe Rust only (the crate attribute below
//! forbids anything else).
//!
//! Invariants:
//! * [`process`] never panics and never writes a frame it drops: every check runs before
//!   the first byte changes.
//! * No buffer leaks: between rounds every buffer is free (pool or spare queue), waits in
//!   an out queue, is held by a NIC, or was lost in a failed NIC call (and counted).
//! * Counters add up between rounds:
//!   `rx_frames == forwarded + arp_replies + dropped + queued()`.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod forwarder;
pub mod packet;

#[cfg(test)]
mod tests;

pub use forwarder::{clamp_batch, Counters, Forwarder, DEFAULT_POOL, RX_SKIP_MAX};
pub use packet::{csum_adjust, ones_sum, prefix_mask, process, DropReason, PortState, Verdict};
