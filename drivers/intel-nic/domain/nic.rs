//! The `Nic` export of the Intel driver domains, shared by `dom-ixgbe` and `dom-igb`
//! (each includes this file with `#[path]`; it is not part of the `frond-intel-nic`
//! library, which stays free of the domain runtime so it can be host-tested).
//!
//! The driver sits behind one `frond_domrt::sync::Mutex`, never held while the domain
//! blocks (`wait` releases it around `irq_wait`/`sleep_ns`). Interrupts stay masked except
//! inside `wait`. A failed init prints the error and panics with it; the kernel contains
//! the panic, reports it and turns the device's bus mastering off.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, Ordering};
use frond_domrt::{sys, Syscalls};
use frond_intel_nic::{Chip, Error, IntelNic, Mmio};
use frond_interface::net::{Batch, Nic, NicArgs, NicInfo, NicStats};
use frond_interface::{Remote, RpcResult};

/// Longest a `wait` sleeps per call when the device has no MSI-X vector (polling).
const POLL_SLEEP_NS: u64 = 1_000_000;

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
    Remote::local(Box::new(IntelNicDomain {
        drv: frond_domrt::sync::Mutex::new(driver),
        info,
        vector: dev.msix_vector,
        polling: AtomicBool::new(false),
    }))
}

struct IntelNicDomain {
    drv: frond_domrt::sync::Mutex<IntelNic<Mmio>>,
    info: NicInfo,
    /// MSI-X vector of the device's queues (0: none).
    vector: u8,
    polling: AtomicBool,
}

impl Nic for IntelNicDomain {
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
            // Work that completed before the unmask raised nothing: don't sleep on it.
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
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("intel-nic: (unprintable)")
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
