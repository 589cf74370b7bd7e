//! Register access: the [`Regs`] trait (BAR 0, 32-bit registers at byte offsets) and its
//! volatile-MMIO implementation [`Mmio`]. Host tests implement `Regs` with a device model.

use crate::Error;

/// 32-bit register access to BAR 0. Offsets are bytes from the start of the BAR and
/// 4-byte aligned. Reads may have side effects (clear-on-read counters, EICR), hence
/// `&mut self` is not required for them but implementations may use interior mutability.
pub trait Regs {
    fn read32(&self, offset: u32) -> u32;
    fn write32(&mut self, offset: u32, value: u32);
}

/// [`Regs`] over a memory-mapped BAR with volatile accesses. Accesses outside the BAR
/// (or misaligned) do nothing and read as 0.
#[derive(Debug)]
pub struct Mmio {
    base: usize,
    len: usize,
}

impl Mmio {
    /// Checks that the BAR is a memory BAR of at least `need` bytes. Accesses no memory.
    ///
    /// # Safety
    /// For as long as the value lives, `[addr, addr + len)` is the device's BAR 0, mapped
    /// uncached at that address, and no other code accesses it.
    pub unsafe fn new(addr: u64, len: u64, need: u64) -> Result<Self, Error> {
        let bad = Error::BadBar { addr, len, need };
        // Bit 63 marks an I/O BAR in `PciDevice::bars`.
        if addr == 0 || addr & (1 << 63) != 0 || len < need {
            return Err(bad);
        }
        let base = usize::try_from(addr).map_err(|_| bad)?;
        let len = usize::try_from(len).map_err(|_| bad)?;
        base.checked_add(len).ok_or(bad)?;
        Ok(Self { base, len })
    }

    fn at(&self, offset: u32) -> Option<*mut u32> {
        let off = offset as usize;
        if !off.is_multiple_of(4) || off.checked_add(4)? > self.len {
            return None;
        }
        Some(core::ptr::with_exposed_provenance_mut(self.base + off))
    }
}

impl Regs for Mmio {
    fn read32(&self, offset: u32) -> u32 {
        match self.at(offset) {
            // SAFETY: `at` checked the access lies inside the BAR and is aligned; `new`'s
            // caller promised the BAR is mapped for the value's lifetime and used by
            // nothing else. Volatile: registers change behind the compiler's back and
            // reads can have side effects.
            Some(p) => unsafe { p.read_volatile() },
            None => 0,
        }
    }

    fn write32(&mut self, offset: u32, value: u32) {
        if let Some(p) = self.at(offset) {
            // SAFETY: as in `read32`.
            unsafe { p.write_volatile(value) }
        }
    }
}
