//! `frond-bootfmt`: the single definition of the formats inside Frond's boot module.
//!
//! QEMU hands the kernel exactly one module (`-initrd`). That module is a **cpio "newc"
//! archive** (the format Linux uses for initramfs; see [`bundle`]), and the archive holds
//! named entries. This crate defines how the entries are found and what the ones with a
//! fixed meaning contain:
//!
//! * `kernel.sym` ([`SYMBOLS_ENTRY`]): the kernel's symbol table in the binary format
//!   described in [`symtab`], used for symbolised backtraces.
//! * further entries (domain ELF images, ...) are added by later issues.
//!
//! Two sides use it: the kernel (`no_std`, reads the module in place without allocating)
//! and the host tool `frond-mkboot` (writes it, with the `std` feature). Keeping reader
//! and writer in one crate means they cannot drift apart; the unit tests round-trip every
//! format through both.
//!
//! # Dependencies
//!
//! Only `core`, `alloc` (for the writers, behind the `std` feature) and `cpio_reader`
//! (reading cpio entries). Nothing else: the kernel links this crate.
//!
//! # Invariants
//!
//! * The parsers never panic, whatever bytes they are given: every read is bounds-checked
//!   (`get`, checked arithmetic, no indexing of untrusted offsets), and the crate has no
//!   `unsafe` code.
//! * Input is validated completely before anything is handed out: a truncated or corrupt
//!   module is reported as an error, never read as "fewer entries" or "fewer symbols".
//! * Errors are small `Copy` values whose `Display` says what is wrong and where
//!   (byte offset, field name, entry index).
//! * The writers only produce what the readers accept (checked by round-trip tests).
//!
//! # Features
//!
//! * `std`: the writers [`write_newc`], [`check_entry`] and [`encode_symbols`]. They need
//!   only `alloc`, so the crate builds for `x86_64-unknown-none` with or without it.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(any(test, feature = "std"))]
extern crate alloc;

pub mod bundle;
pub mod symtab;

#[cfg(any(test, feature = "std"))]
pub use bundle::{check_entry, write_newc};
pub use bundle::{entries, find, validate, BundleError, TRAILER};
#[cfg(any(test, feature = "std"))]
pub use symtab::encode_symbols;
pub use symtab::{SymError, Symbol, SymbolTable, SYM_MAGIC};

/// Name of the boot-module entry holding the kernel symbol table (format: [`symtab`]).
pub const SYMBOLS_ENTRY: &str = "kernel.sym";

#[cfg(test)]
mod tests;
