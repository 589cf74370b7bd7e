//! # dom-virtio-net — the virtio-net driver domain
//!
//! Exports `Nic` for one virtio-net device (virtio 1.x, modern PCI transport, split
//! virtqueues), driven by `frond-virtio-net`. The kernel passes the device in `NicArgs`
//! with its BARs mapped uncached at their addresses and, if `msix_vector != 0`, MSI-X
//! entry 0 enabled and delivering that vector.
//!
//! May depend on: `frond-interface`, `frond-domrt`, `frond-virtio-net`, `rref`.
//! `unsafe` only to build the MMIO transport (one block, with its `// SAFETY:` comment).
//!
//! The `Nic` export is `drivers/nic_export.rs`, shared with the Intel domains. Invariants:
//! the driver sits behind one `frond_domrt::sync::Mutex`, which is never held while the
//! domain blocks (`wait` releases it around `irq_wait`/`sleep_ns`). Interrupts stay
//! suppressed except inside `wait`. A failed init prints the error and panics with it;
//! the kernel contains the panic and reports it.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

// The `nic_device!` forwarding is written out below (this driver checks for device faults).
#[path = "../../nic_export.rs"]
#[allow(unused_macros, unused_imports)]
mod nic_export;

use frond_domrt::Syscalls;
use frond_interface::net::{Nic, NicArgs, NicInfo, NicKind};
use frond_interface::Remote;
use nic_export::{export, Line};
use frond_virtio_net::{PciTransport, VirtioNet, DEVICE_CFG_LEN};

frond_domrt::entry!(NicKind, init);

/// Forwards to the driver; a used entry naming a descriptor the device does not hold
/// leaves a buffer only a device reset returns, so the domain fails on it (and the
/// kernel restarts it, which resets the device).
impl nic_export::NicDevice for VirtioNet<PciTransport> {
    fn stats(&self) -> frond_interface::net::NicStats {
        VirtioNet::stats(self)
    }
    fn tx(&mut self, b: frond_interface::net::Batch) -> frond_interface::net::Batch {
        let b = VirtioNet::tx(self, b);
        self.check();
        b
    }
    fn rx(&mut self, b: frond_interface::net::Batch) -> frond_interface::net::Batch {
        let b = VirtioNet::rx(self, b);
        self.check();
        b
    }
    fn set_interrupts(&mut self, on: bool) {
        VirtioNet::set_interrupts(self, on)
    }
    fn has_work(&self) -> bool {
        VirtioNet::has_work(self)
    }
    fn set_interrupts_rx(&mut self, rx_frames: u16) -> bool {
        VirtioNet::set_interrupts_rx(self, rx_frames)
    }
    fn count_irq(&mut self) {
        VirtioNet::count_irq(self)
    }
    fn count_sleep(&mut self) {
        VirtioNet::count_sleep(self)
    }
}

trait Check {
    fn check(&mut self);
}

impl Check for VirtioNet<PciTransport> {
    fn check(&mut self) {
        if let Some(f) = self.take_device_fault() {
            panic!("virtio-net: device fault: a used entry of queue {} names descriptor {:#x}, which the device does not hold; refused, the device needs a reset", f.queue, f.id);
        }
    }
}

fn fault_hook() -> u32 {
    frond_domrt::device_fault(frond_domrt::fault::NETDEV)
}


fn init(sys: &'static dyn Syscalls, (args,): (NicArgs,)) -> Remote<dyn Nic> {
    let dev = args.dev;
    // SAFETY: the kernel maps every memory BAR of the device it hands a NIC driver
    // uncached at its physical address (identity) before starting the domain, and gives
    // the device to this domain alone (see `NicArgs`/`PciDevice`).
    let transport = unsafe { PciTransport::new(&dev, DEVICE_CFG_LEN) };
    let mut driver = match transport.and_then(|t| VirtioNet::new(t, dev.msix_vector != 0)) {
        Ok(d) => d,
        Err(e) => {
            let mut line = Line::new();
            let _ = core::fmt::write(&mut line, format_args!("virtio-net: {e}"));
            sys.print(line.as_str());
            panic!("virtio-net: {e}");
        }
    };
    driver.set_fault_hook(fault_hook);
    let info = NicInfo { mac: driver.mac(), queue_size: driver.queue_size(), bdf: dev.bdf };
    let mut line = Line::new();
    let m = info.mac;
    let _ = core::fmt::write(
        &mut line,
        format_args!(
            "virtio-net {:02x}:{:02x}.{} mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} queues {} irq {}",
            dev.bdf >> 8,
            (dev.bdf >> 3) & 0x1f,
            dev.bdf & 7,
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5],
            info.queue_size,
            if dev.msix_vector != 0 { "msix" } else { "none (polling)" },
        ),
    );
    sys.print(line.as_str());
    export(driver, info, dev.msix_vector)
}
