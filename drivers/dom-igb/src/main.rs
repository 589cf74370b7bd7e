//! # dom-igb — the NIC driver domain for the Intel 82576 GbE controller (igb), as QEMU's `igb` device models it
//!
//! Exports `Nic` for one 8086:10c9 device, driven by `frond-intel-nic` (chip
//! `Chip::I82576`). The kernel passes the device in `NicArgs` with its BARs mapped uncached
//! at their addresses and, if `msix_vector != 0`, MSI-X entry 0 enabled and delivering
//! that vector. The `Nic` export itself is shared with the other Intel domain
//! (`drivers/intel-nic/domain/nic.rs`).
//!
//! May depend on: `frond-interface`, `frond-domrt`, `frond-intel-nic`, `rref`.
//! `unsafe` only to build the MMIO accessor (one block, with its `// SAFETY:` comment).

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

#[path = "../../nic_export.rs"]
mod nic_export;
#[path = "../../intel-nic/domain/nic.rs"]
mod nic;

use frond_domrt::Syscalls;
use frond_intel_nic::{Chip, Mmio};
use frond_interface::net::{Nic, NicArgs, NicKind};
use frond_interface::Remote;

frond_domrt::entry!(NicKind, init);

const CHIP: Chip = Chip::I82576;

fn init(sys: &'static dyn Syscalls, (args,): (NicArgs,)) -> Remote<dyn Nic> {
    let (addr, len) = args.dev.bars[0];
    // SAFETY: the kernel maps every memory BAR of the device it hands a NIC driver
    // uncached at its physical address (identity) before starting the domain and gives
    // the device to this domain alone (see `NicArgs`/`PciDevice`); BAR 0 holds the
    // device's registers, and `Mmio::new` checks it is a memory BAR long enough for them.
    let regs = unsafe { Mmio::new(addr, len, CHIP.bar_len()) };
    nic::start(sys, args, CHIP, regs)
}
