//! # frond-interface — what crosses domain boundaries
//!
//! Every `#[interface]` trait, every type exchanged through one, and every domain kind
//! (a domain's init arguments and export) lives here, so the kernel and all domains agree
//! on them. `#[interface]` generates each trait's proxies; the kernel instantiates them.
//!
//! May depend on: `rref`, `frond-interface-gen`, `frond-domrt` (for `domain_kind!`).
//! Invariant: declarations only, no state; `#![forbid(unsafe_code)]` like every domain crate.

#![no_std]
#![forbid(unsafe_code)]

pub mod blk;
pub mod fs;
pub mod hostile;
pub mod net;
pub mod rv6;
pub mod test;

pub use frond_domrt::{domain_kind, DomainKind};
pub use frond_interface_gen::interface;
pub use rref::rpc::{Remote, RpcError, RpcResult};
pub use rref::{DomainId, Exchangeable, RRef, RRefDeque, RRefVec};
