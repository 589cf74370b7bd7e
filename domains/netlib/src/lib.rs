//! # frond-net — the network stack and the services on top of it
//!
//! Library code of two domains, kept here so it can be tested on the host:
//!
//! * [`stack`]: [`stack::Stack`], a smoltcp `Interface` and `SocketSet` driven through a
//!   [`Nic`](frond_interface::net::Nic) (received and sent frames are `RRef<Pkt>` buffers
//!   moved to and from the driver in batches), with the socket table behind the
//!   [`Sockets`](frond_interface::net::Sockets) semantics.
//! * [`shared`]: [`shared::SharedStack`], one `Stack` shared by a poll thread and callers,
//!   implementing `Sockets` (used by `dom-netstack`).
//! * [`services`]: TCP/UDP echo and the HTTP status page as a non-blocking
//!   [`services::Services::step`] over `&dyn Sockets` and `&dyn System` (used by
//!   `dom-services`).
//! * [`http`]: request parsing and page rendering, pure functions.
//! * [`arp`]: the ARP screen in front of smoltcp: floods of ARP packets cannot churn its
//!   neighbour cache.
//! * [`rst`]: blind-reset protection (RFC 5961 §3.2) in front of smoltcp: received RSTs
//!   inside the window but not at its edge draw a challenge ACK instead of a reset.
//!
//! May depend on: `frond-interface`, `rref`, `spin`, `smoltcp` (no `std`, no `log`).
//!
//! Invariants:
//! * `#![forbid(unsafe_code)]`, `no_std` outside tests.
//! * Nothing here blocks or spins on a lock that may be held: the only waiting is through
//!   the [`shared::Env`] the embedding domain provides (yield, sleep) and `Nic::wait`.
//! * A failed NIC call never fails the stack: it is counted and the stack carries on with
//!   fresh buffers. A failed `Sockets` call never fails the services: they forget their
//!   sockets and open new ones.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod arp;
pub mod http;
pub mod rst;
pub mod services;
pub mod shared;
pub mod stack;

#[cfg(test)]
mod tests;
