//! # frond-fslib — the xv6-format file system, as a host-tested library
//!
//! Library code of the fs domain (`domains/fs`) and of the host tool `tools/mkfs`.
//!
//! May depend on: `frond-interface` (block request and fs types), `alloc`. No `std`
//! outside tests, `#![forbid(unsafe_code)]`.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod cache;
pub mod dev;
mod dir;
mod fs;
pub mod fsck;
mod inode;
pub mod layout;
pub mod mkfs;
mod ops;

pub use fs::{check_superblock, FileSystem, Geometry, MountError, MountOptions};

#[cfg(test)]
mod testutil;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_crash;
#[cfg(test)]
mod tests_corrupt;
