//! # dom-virtio-blk — the virtio-blk driver domain
//!
//! Exports `Block` for one virtio-blk device (virtio 1.x, modern PCI transport, one split
//! virtqueue), driven by `frond-virtio-blk`. The kernel passes the device in
//! `BlkArgs::dev` with its BARs mapped uncached at their addresses and, if
//! `msix_vector != 0`, MSI-X entry 0 enabled and delivering that vector.
//!
//! May depend on: `frond-interface`, `frond-domrt`, `frond-virtio-blk`, `rref`.
//! `unsafe` only to build the MMIO transport (one block, with its `// SAFETY:` comment).
//!
//! Invariants: the driver sits behind one `frond_domrt::sync::Mutex`, held for a whole
//! call — requests of concurrent callers are serialised, each call's buffer stays with
//! the device only while its call runs. Between polls a call blocks in `irq_wait` on the
//! device's vector (at most [`IRQ_SLICE_NS`] at a time, then the driver polls the ring
//! and the device status again) or, without MSI-X, yields a few times and then sleeps
//! [`POLL_SLEEP_NS`]; after [`CALL_DEADLINE_NS`] the call gives up and the driver resets
//! the device. If a reset does not complete, the domain panics: the kernel then clears the
//! device's bus mastering before the caller's lent buffer is released. A failed init prints
//! the error and panics with it.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use frond_domrt::sync::Mutex;
use frond_domrt::{sys, Syscalls};
use frond_interface::blk::{BlkArgs, BlkError, BlkInfo, BlkReqs, BlkStats, Block, BlockKind, BLOCK_SIZE};
use frond_interface::{RRefVec, Remote, RpcResult};
use frond_virtio_blk::{PciTransport, VirtioBlk, Waited, DEVICE_CFG_LEN};

frond_domrt::entry!(BlockKind, init);

/// Longest single `irq_wait`; the driver then polls the used ring and the status again.
const IRQ_SLICE_NS: u64 = 10_000_000;
/// Without MSI-X: waits that only yield before the driver starts sleeping.
const POLL_YIELDS: u32 = 32;
/// Without MSI-X: the sleep between polls after that.
const POLL_SLEEP_NS: u64 = 1_000_000;
/// A call whose requests have not all completed after this long gives up (the device is
/// reset). One call moves at most 64 KiB.
const CALL_DEADLINE_NS: u64 = 5_000_000_000;

fn init(sys: &'static dyn Syscalls, (args,): (BlkArgs,)) -> Remote<dyn Block> {
    let dev = args.dev;
    // SAFETY: the kernel maps every memory BAR of the device it hands a block driver
    // uncached at its physical address (identity) before starting the domain, and gives
    // the device to this domain alone (see `BlkArgs`/`PciDevice`).
    let transport = unsafe { PciTransport::new(&dev, DEVICE_CFG_LEN) };
    let mut driver = match transport.and_then(|t| VirtioBlk::new(t, dev.msix_vector != 0)) {
        Ok(d) => d,
        Err(e) => {
            sys.print(&format!("virtio-blk: {e}"));
            panic!("virtio-blk: {e}");
        }
    };
    driver.set_fault_hook(|| frond_domrt::device_fault(frond_domrt::fault::BLKDEV));
    let blocks = driver.blocks();
    sys.print(&format!(
        "virtio-blk {:02x}:{:02x}.{} capacity {} blocks ({} MiB) {} {} queue {} irq {}",
        dev.bdf >> 8,
        (dev.bdf >> 3) & 0x1f,
        dev.bdf & 7,
        blocks,
        blocks.saturating_mul(BLOCK_SIZE as u64) >> 20,
        if driver.read_only() { "ro" } else { "rw" },
        if driver.has_flush() { "flush" } else { "noflush" },
        driver.queue_size(),
        if dev.msix_vector != 0 { "msix" } else { "none" },
    ));
    Remote::local(Box::new(VirtioBlock { drv: Mutex::new(driver), vector: dev.msix_vector, bdf: dev.bdf }))
}

struct VirtioBlock {
    drv: Mutex<VirtioBlk<PciTransport>>,
    /// MSI-X vector of the device's queue (0: none, poll).
    vector: u8,
    bdf: u16,
}

impl VirtioBlock {
    /// The wait function of one call (see the crate docs); its deadline starts now.
    fn waiter(&self) -> impl FnMut() -> Waited {
        let vector = self.vector;
        let deadline = sys().now_ns().saturating_add(CALL_DEADLINE_NS);
        let mut polls = 0u32;
        move || {
            if sys().now_ns() >= deadline {
                return Waited::GiveUp;
            }
            if vector != 0 {
                return if sys().irq_wait(vector, IRQ_SLICE_NS) { Waited::Interrupt } else { Waited::Nothing };
            }
            polls += 1;
            if polls <= POLL_YIELDS {
                sys().yield_now();
            } else {
                sys().sleep_ns(POLL_SLEEP_NS);
            }
            Waited::Nothing
        }
    }

    /// Runs one call on the driver, with a wait function whose deadline starts once the
    /// lock is held, and reports a reset it made.
    fn call<R>(&self, f: impl FnOnce(&mut VirtioBlk<PciTransport>, &mut dyn FnMut() -> Waited) -> R) -> R {
        let mut d = self.drv.lock();
        let resets = d.resets();
        let mut wait = self.waiter();
        let r = f(&mut d, &mut wait);
        if d.wedged() {
            panic!("virtio-blk: the device did not complete a reset; stopping the driver so its DMA is turned off");
        }
        if d.resets() != resets {
            let why = d.last_fault().map(|f| format!("{f}")).unwrap_or_default();
            sys().print(&format!("virtio-blk: device misbehaved ({why}); reset and re-initialised"));
        }
        r
    }
}

impl Block for VirtioBlock {
    fn info(&self) -> RpcResult<BlkInfo> {
        let d = self.drv.lock();
        Ok(BlkInfo {
            block_size: BLOCK_SIZE as u32,
            blocks: d.blocks(),
            read_only: d.read_only(),
            queue_depth: d.queue_depth(),
            bdf: self.bdf,
        })
    }

    fn stats(&self) -> RpcResult<BlkStats> {
        Ok(self.drv.lock().stats())
    }

    fn read(&self, reqs: BlkReqs, buf: &mut RRefVec<u8>) -> RpcResult<Result<(), BlkError>> {
        Ok(self.call(|d, wait| d.read(&reqs, &mut buf[..], wait)))
    }

    fn write(&self, reqs: BlkReqs, buf: &RRefVec<u8>) -> RpcResult<Result<(), BlkError>> {
        Ok(self.call(|d, wait| d.write(&reqs, &buf[..], wait)))
    }

    fn flush(&self) -> RpcResult<Result<(), BlkError>> {
        Ok(self.call(|d, wait| d.flush(wait)))
    }
}
