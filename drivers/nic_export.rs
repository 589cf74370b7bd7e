//! The `Nic` export every NIC driver domain shares (`dom-virtio-net`, `dom-ixgbe`,
//! `dom-igb` include this file with `#[path]`; it stays out of the driver cores, which
//! are host-tested without the domain runtime).
//!
//! The driver sits behind one `frond_domrt::sync::Mutex`, never held while the domain
//! blocks (`wait` releases it around `irq_wait`/`sleep_ns`). Interrupts stay suppressed
//! except inside `wait`; in polling mode `wait` returns at once.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, Ordering};
use frond_domrt::sys;
use frond_interface::net::{Batch, Nic, NicInfo, NicStats};
use frond_interface::{Remote, RpcResult};

/// Longest a `wait` sleeps per call when the device has no MSI-X vector (polling).
const POLL_SLEEP_NS: u64 = 1_000_000;

/// What the export needs of a driver core.
pub trait NicDevice: Send + 'static {
    fn stats(&self) -> NicStats;
    fn tx(&mut self, b: Batch) -> Batch;
    fn rx(&mut self, b: Batch) -> Batch;
    fn set_interrupts(&mut self, on: bool);
    /// Allows interrupts for a wait on any work; true if work is already there (work that
    /// completed before interrupts were allowed raised none: interrupts then stay
    /// suppressed and the caller does not sleep).
    fn allow_interrupts(&mut self) -> bool {
        self.set_interrupts(true);
        if self.has_work() {
            self.set_interrupts(false);
            return true;
        }
        false
    }
    /// [`NicDevice::allow_interrupts`] for a wait on `rx_frames` received frames,
    /// coalesced where the device can count them.
    fn set_interrupts_rx(&mut self, rx_frames: u16) -> bool {
        let _ = rx_frames;
        self.allow_interrupts()
    }
    /// Work that completed while interrupts were suppressed.
    fn has_work(&self) -> bool;
    fn count_irq(&mut self);
    fn count_sleep(&mut self);
}

/// Exports `driver` for a device whose queues interrupt on `vector` (0: none).
pub fn export<D: NicDevice>(driver: D, info: NicInfo, vector: u8) -> Remote<dyn Nic> {
    Remote::local(Box::new(NicExport { drv: frond_domrt::sync::Mutex::new(driver), info, vector, polling: AtomicBool::new(false) }))
}

struct NicExport<D> {
    drv: frond_domrt::sync::Mutex<D>,
    info: NicInfo,
    vector: u8,
    polling: AtomicBool,
}

impl<D: NicDevice> Nic for NicExport<D> {
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
        self.wait_for(None, timeout_ns)
    }

    fn wait_rx(&self, frames: u16, timeout_ns: u64) -> RpcResult<()> {
        self.wait_for(Some(frames), timeout_ns)
    }

    fn set_polling(&self, on: bool) -> RpcResult<()> {
        self.polling.store(on, Ordering::Relaxed);
        Ok(())
    }
}

impl<D: NicDevice> NicExport<D> {
    /// `wait` (`rx_frames` None) and `wait_rx`.
    fn wait_for(&self, rx_frames: Option<u16>, timeout_ns: u64) -> RpcResult<()> {
        if self.polling.load(Ordering::Relaxed) {
            return Ok(());
        }
        {
            let mut d = self.drv.lock();
            let ready = match rx_frames {
                None => d.allow_interrupts(),
                Some(n) => d.set_interrupts_rx(n),
            };
            if ready {
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
}

/// A console line formatted without allocating.
pub struct Line {
    buf: [u8; 200],
    len: usize,
}

impl Line {
    pub fn new() -> Self {
        Self { buf: [0; 200], len: 0 }
    }
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("(unprintable)")
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

/// Forwards `NicDevice` to a driver type's inherent methods of the same names.
macro_rules! nic_device {
    ($t:ty) => {
        impl $crate::nic_export::NicDevice for $t {
            fn stats(&self) -> frond_interface::net::NicStats {
                <$t>::stats(self)
            }
            fn tx(&mut self, b: frond_interface::net::Batch) -> frond_interface::net::Batch {
                <$t>::tx(self, b)
            }
            fn rx(&mut self, b: frond_interface::net::Batch) -> frond_interface::net::Batch {
                <$t>::rx(self, b)
            }
            fn set_interrupts(&mut self, on: bool) {
                <$t>::set_interrupts(self, on)
            }
            fn has_work(&self) -> bool {
                <$t>::has_work(self)
            }
            fn count_irq(&mut self) {
                <$t>::count_irq(self)
            }
            fn count_sleep(&mut self) {
                <$t>::count_sleep(self)
            }
        }
    };
}
pub(crate) use nic_device;
