//! The `Nic` export of the Intel driver domains, shared by `dom-ixgbe` and `dom-igb`
//! (each includes this file with `#[path]`; it is not part of the `frond-intel-nic`
//! library, which stays free of the domain runtime so it can be host-tested).
//!
//! The export itself is `drivers/nic_export.rs`, common to every NIC driver domain. A
//! failed init prints the error and panics with it; the kernel contains the panic,
//! reports it and turns the device's bus mastering off.

use crate::nic_export::{export, nic_device, Line};
use frond_domrt::Syscalls;
use frond_intel_nic::{Chip, Error, IntelNic, Mmio};
use frond_interface::net::{Nic, NicArgs, NicInfo};
use frond_interface::Remote;

nic_device!(IntelNic<Mmio>);

/// Brings the device up on `regs` (BAR 0 of `args.dev`) and exports it, or prints why
/// not and panics.
pub fn start(sys: &'static dyn Syscalls, args: NicArgs, chip: Chip, regs: Result<Mmio, Error>) -> Remote<dyn Nic> {
    let dev = args.dev;
    let driver = match regs.and_then(|r| IntelNic::new(r, chip, dev.msix_vector != 0)) {
        Ok(d) => d,
        Err(e) => {
            let mut line = Line::new();
            let _ = core::fmt::write(&mut line, format_args!("{e}"));
            sys.print(line.as_str());
            panic!("{e}");
        }
    };
    let info = NicInfo { mac: driver.mac(), queue_size: driver.queue_size(), bdf: dev.bdf };
    let m = info.mac;
    let mut line = Line::new();
    let _ = core::fmt::write(
        &mut line,
        format_args!(
            "{} {:02x}:{:02x}.{} mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} queue {} irq {} link {}",
            chip.name(),
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
            if driver.link_up() { "up" } else { "down (negotiating)" },
        ),
    );
    sys.print(line.as_str());
    export(driver, info, dev.msix_vector)
}
