//! # frond-rref — objects on Frond's shared heap (placeholder)
//!
//! Will hold `RRef<T>`, `RRefVec<T>`, `RRefDeque<T, N>` and the `Exchangeable` trait: data
//! that moves between domains without copying, with an owner the kernel tracks (section 4 of
//! the architecture brief). Filled by the isolation-core issue; empty until then so that the
//! workspace's host/bare-metal split already covers it.
//!
//! May depend on: `core`/`alloc` only (it is `no_std`, built for the host for unit tests and
//! for `x86_64-unknown-none` for the kernel and domains).

#![no_std]
#![forbid(unsafe_code)]
