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
//! Invariants: the driver sits behind one `frond_domrt::sync::Mutex`, which is never held while the
//! domain blocks (`wait` releases it around `irq_wait`/`sleep_ns`). Interrupts stay
//! suppressed except inside `wait`. A failed init prints the error and panics with it;
//! the kernel contains the panic and reports it.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, Ordering};
use frond_domrt::{sys, Syscalls};
use frond_interface::net::{Batch, Nic, NicArgs, NicInfo, NicKind, NicStats};
use frond_interface::{Remote, RpcResult};
use frond_virtio_net::{PciTransport, VirtioNet, DEVICE_CFG_LEN};

frond_domrt::entry!(NicKind, init);

/// Longest a `wait` sleeps per call when the device has no MSI-X vector (polling).
const POLL_SLEEP_NS: u64 = 1_000_000;

fn init(sys: &'static dyn Syscalls, (args,): (NicArgs,)) -> Remote<dyn Nic> {
    let dev = args.dev;
    // SAFETY: the kernel maps every memory BAR of the device it hands a NIC driver
    // uncached at its physical address (identity) before starting the domain, and gives
    // the device to this domain alone (see `NicArgs`/`PciDevice`).
    let transport = unsafe { PciTransport::new(&dev, DEVICE_CFG_LEN) };
    let driver = match transport.and_then(|t| VirtioNet::new(t, dev.msix_vector != 0)) {
        Ok(d) => d,
        Err(e) => {
            let mut line = Line::new();
            let _ = core::fmt::write(&mut line, format_args!("virtio-net: {e}"));
            sys.print(line.as_str());
            panic!("virtio-net: {e}");
        }
    };
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
    Remote::local(Box::new(VirtioNic {
        drv: frond_domrt::sync::Mutex::new(driver),
        info,
        vector: dev.msix_vector,
        polling: AtomicBool::new(false),
    }))
}

struct VirtioNic {
    drv: frond_domrt::sync::Mutex<VirtioNet<PciTransport>>,
    info: NicInfo,
    /// MSI-X vector of the device's queues (0: none).
    vector: u8,
    polling: AtomicBool,
}

impl Nic for VirtioNic {
    fn info(&self) -> RpcResult<NicInfo> {
        Ok(self.info)
    }

    fn stats(&self) -> RpcResult<NicStats> {
        Ok(self.drv.lock().stats())
    }

    fn tx(&self, b: Batch) -> RpcResult<Batch> {
        Ok(self.drv.lock().tx(b))
    }

    fn rx(&self, b: Batch) -> RpcResult<Batch> {
        Ok(self.drv.lock().rx(b))
    }

    fn wait(&self, timeout_ns: u64) -> RpcResult<()> {
        if self.polling.load(Ordering::Relaxed) {
            return Ok(());
        }
        {
            let mut d = self.drv.lock();
            d.set_interrupts(true);
            // Work that arrived before interrupts were allowed raised none: don't sleep on it.
            if d.has_work() {
                d.set_interrupts(false);
                return Ok(());
            }
            d.count_sleep();
        }
        let fired = if self.vector == 0 {
            sys().sleep_ns(timeout_ns.min(POLL_SLEEP_NS));
            false
        } else {
            sys().irq_wait(self.vector, timeout_ns)
        };
        let mut d = self.drv.lock();
        d.set_interrupts(false);
        if fired {
            d.count_irq();
        }
        Ok(())
    }

    fn set_polling(&self, on: bool) -> RpcResult<()> {
        self.polling.store(on, Ordering::Relaxed);
        Ok(())
    }
}

/// A console line formatted without allocating.
struct Line {
    buf: [u8; 200],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Self { buf: [0; 200], len: 0 }
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("virtio-net: (unprintable)")
    }
}

impl core::fmt::Write for Line {
    /// Appends what fits, cut at a character boundary.
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let mut n = s.len().min(self.buf.len() - self.len);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
