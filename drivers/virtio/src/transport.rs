//! The four regions of the virtio 1.x modern PCI transport, and their MMIO implementation.

use crate::error::{BarProblem, Error};
use core::mem::size_of;
use frond_interface::net::{PciDevice, VendorCap};

/// One of the regions a modern virtio PCI device exposes through vendor capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// `cfg_type` 1: the common configuration (features, status, queue setup).
    Common,
    /// `cfg_type` 2: where queue notifications are written.
    Notify,
    /// `cfg_type` 3: the ISR status byte (read to acknowledge).
    Isr,
    /// `cfg_type` 4: the device-specific configuration (virtio-net: the MAC address;
    /// virtio-blk: capacity, limits, block size).
    Device,
}

impl Region {
    /// The capability `cfg_type` that describes this region.
    pub const fn cfg_type(self) -> u8 {
        match self {
            Region::Common => 1,
            Region::Notify => 2,
            Region::Isr => 3,
            Region::Device => 4,
        }
    }
}

/// Register access to a virtio device. Offsets are bytes from the start of a region; every
/// access uses the field's natural width. Reads and writes outside a region are the
/// implementation's to ignore (no access happens).
///
/// 64-bit fields are accessed as two 32-bit halves, low first, as the modern PCI
/// transport requires of drivers that cannot (or need not) do single 64-bit accesses.
pub trait Transport {
    fn read8(&self, region: Region, offset: usize) -> u8;
    fn read16(&self, region: Region, offset: usize) -> u16;
    fn read32(&self, region: Region, offset: usize) -> u32;
    fn read64(&self, region: Region, offset: usize) -> u64 {
        let lo = self.read32(region, offset) as u64;
        let hi = self.read32(region, offset + 4) as u64;
        lo | hi << 32
    }
    fn write8(&mut self, region: Region, offset: usize, value: u8);
    fn write16(&mut self, region: Region, offset: usize, value: u16);
    fn write32(&mut self, region: Region, offset: usize, value: u32);
    fn write64(&mut self, region: Region, offset: usize, value: u64) {
        self.write32(region, offset, value as u32);
        self.write32(region, offset + 4, (value >> 32) as u32);
    }
    /// Records queue `queue`'s `queue_notify_off` (read from the common configuration
    /// while the queue was selected); fails if its notify address is unusable.
    fn set_notify_off(&mut self, queue: u16, notify_off: u16) -> Result<(), Error>;
    /// Tells the device that queue `queue` has new available buffers.
    fn notify(&mut self, queue: u16);
}

/// Queues [`PciTransport`] can notify: virtio-net's receive and transmit queues (no
/// multiqueue, no control queue), virtio-blk's one request queue.
pub const NOTIFY_QUEUES: usize = 2;

/// Registers a driver uses in each region: the whole common configuration (through
/// `queue_device`), one 16-bit notify write, the ISR byte. The device configuration's
/// minimum depends on the device type (see [`PciTransport::new`]).
const MIN_COMMON: u32 = 56;
const MIN_NOTIFY: u32 = 2;
const MIN_ISR: u32 = 1;

/// A region's place in the address space.
#[derive(Clone, Copy, Debug)]
struct Mmio {
    base: usize,
    len: usize,
}

impl Mmio {
    /// The address of a naturally aligned `T` at `offset`, if it lies inside the region.
    fn at<T>(&self, offset: usize) -> Option<*mut T> {
        let end = offset.checked_add(size_of::<T>())?;
        let addr = self.base.checked_add(offset)?;
        if end > self.len || !addr.is_multiple_of(size_of::<T>()) {
            return None;
        }
        Some(core::ptr::with_exposed_provenance_mut(addr))
    }

    fn read<T: Copy + Default>(&self, offset: usize) -> T {
        match self.at::<T>(offset) {
            // SAFETY: `at` checked the access lies inside the region and is aligned; the
            // region lies inside a BAR that `PciTransport::new`'s caller promised is mapped
            // for the transport's lifetime and used by nothing else. Volatile: device
            // registers may change between reads and reads may have side effects.
            Some(p) => unsafe { p.read_volatile() },
            None => T::default(),
        }
    }

    fn write<T: Copy>(&self, offset: usize, value: T) {
        if let Some(p) = self.at::<T>(offset) {
            // SAFETY: as in `read`.
            unsafe { p.write_volatile(value) }
        }
    }
}

/// [`Transport`] over a PCI device's BARs, with volatile MMIO accesses.
#[derive(Debug)]
pub struct PciTransport {
    common: Mmio,
    notify: Mmio,
    isr: Mmio,
    device: Mmio,
    notify_mult: u32,
    /// Byte offset in the notify region of each queue's notify register.
    queue_notify: [Option<usize>; NOTIFY_QUEUES],
}

impl PciTransport {
    /// Finds and checks the four regions among `dev`'s virtio capabilities (the first
    /// usable capability of each type wins); the device configuration must hold at least
    /// `device_cfg_len` bytes (the fields the driver reads: 6 for virtio-net's MAC, 24 for
    /// virtio-blk's capacity through `blk_size`). Accesses no memory.
    ///
    /// # Safety
    /// For as long as the transport lives, each memory BAR of `dev` is mapped (uncached)
    /// at its address over its whole length, belongs to this virtio device, and no other
    /// code accesses the regions the capabilities point to.
    pub unsafe fn new(dev: &PciDevice, device_cfg_len: u32) -> Result<Self, Error> {
        let (common, _) = find(dev, Region::Common, MIN_COMMON)?;
        let (notify, cap) = find(dev, Region::Notify, MIN_NOTIFY)?;
        let (isr, _) = find(dev, Region::Isr, MIN_ISR)?;
        let (device, _) = find(dev, Region::Device, device_cfg_len)?;
        Ok(Self { common, notify, isr, device, notify_mult: cap.notify_mult, queue_notify: [None; NOTIFY_QUEUES] })
    }

    fn region(&self, r: Region) -> &Mmio {
        match r {
            Region::Common => &self.common,
            Region::Notify => &self.notify,
            Region::Isr => &self.isr,
            Region::Device => &self.device,
        }
    }
}

/// The first capability for `region` that passes [`check`], or the first one's error.
fn find(dev: &PciDevice, region: Region, min_len: u32) -> Result<(Mmio, VendorCap), Error> {
    let n = (dev.ncaps as usize).min(dev.caps.len());
    let mut first_err = None;
    for cap in dev.caps[..n].iter().filter(|c| c.cfg_type == region.cfg_type()) {
        match check(dev, cap, region, min_len) {
            Ok(m) => return Ok((m, *cap)),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or(Error::MissingRegion(region)))
}

fn check(dev: &PciDevice, cap: &VendorCap, region: Region, min_len: u32) -> Result<Mmio, Error> {
    let bad = |problem| Error::BadBar { region, bar: cap.bar, problem };
    let &(addr, bar_len) = dev.bars.get(cap.bar as usize).ok_or(bad(BarProblem::NoSuchBar))?;
    if addr & (1 << 63) != 0 {
        return Err(bad(BarProblem::IoBar));
    }
    if addr == 0 || bar_len == 0 {
        return Err(bad(BarProblem::Unassigned));
    }
    if cap.offset as u64 + cap.length as u64 > bar_len {
        return Err(Error::RegionOutsideBar { region, bar: cap.bar, offset: cap.offset, length: cap.length, bar_len });
    }
    if cap.length < min_len {
        return Err(Error::RegionTooSmall { region, length: cap.length, need: min_len });
    }
    let base = addr.checked_add(cap.offset as u64).and_then(|a| usize::try_from(a).ok());
    let base =
        base.ok_or(Error::RegionOutsideBar { region, bar: cap.bar, offset: cap.offset, length: cap.length, bar_len })?;
    Ok(Mmio { base, len: cap.length as usize })
}

impl Transport for PciTransport {
    fn read8(&self, r: Region, off: usize) -> u8 {
        self.region(r).read(off)
    }
    fn read16(&self, r: Region, off: usize) -> u16 {
        self.region(r).read(off)
    }
    fn read32(&self, r: Region, off: usize) -> u32 {
        self.region(r).read(off)
    }
    fn write8(&mut self, r: Region, off: usize, v: u8) {
        self.region(r).write(off, v)
    }
    fn write16(&mut self, r: Region, off: usize, v: u16) {
        self.region(r).write(off, v)
    }
    fn write32(&mut self, r: Region, off: usize, v: u32) {
        self.region(r).write(off, v)
    }

    fn set_notify_off(&mut self, queue: u16, notify_off: u16) -> Result<(), Error> {
        let slot = self.queue_notify.get_mut(queue as usize).ok_or(Error::UnsupportedQueue(queue))?;
        let offset = notify_off as u64 * self.notify_mult as u64;
        let err = Error::NotifyOutsideRegion { queue, offset, length: self.notify.len as u32 };
        let off = usize::try_from(offset).map_err(|_| err)?;
        self.notify.at::<u16>(off).ok_or(err)?;
        *slot = Some(off);
        Ok(())
    }

    fn notify(&mut self, queue: u16) {
        if let Some(Some(off)) = self.queue_notify.get(queue as usize) {
            self.notify.write(*off, queue);
        }
    }
}
