//! Descriptor rings in the advanced formats (82599 datasheet §7.1.6 and §7.2.3; the
//! 82576 uses the same layouts), and the table of buffers each ring's device holds.
//!
//! * Receive, read format (driver → device): `[0]` packet buffer address (u64), `[8]`
//!   header buffer address (u64, 0: no header split). Write-back (device → driver): `[8]`
//!   extended status/error (u32; bit 0 DD, bit 1 EOP), `[12]` packet length (u16).
//! * Transmit data descriptor, read format: `[0]` buffer address (u64), `[8]`
//!   cmd_type_len (u32: DTALEN 15:0, DTYP 23:20 = 0011b, DCMD 31:24 = EOP, IFCS, RS,
//!   DEXT), `[12]` olinfo_status (u32: PAYLEN 31:14). Write-back: `[12]` STA (bit 0 DD).
//!
//! A ring of `n` descriptors holds at most `n - 1` buffers: head == tail means empty to
//! the device. The driver's window of outstanding descriptors starts at `clean` (the
//! oldest) and ends before `tail`; it never looks at a descriptor outside it, so what
//! the device writes elsewhere (a DD bit on a descriptor it was never given) is ignored.

use crate::Error;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::mem::offset_of;
use core::ptr::NonNull;
use frond_interface::net::Pkt;
use frond_interface::RRef;

pub(crate) const DESC_LEN: usize = 16;

pub(crate) const RX_DD: u32 = 1 << 0;
pub(crate) const RX_EOP: u32 = 1 << 1;
pub(crate) const TX_DD: u32 = 1 << 0;
pub(crate) const TXD_DTYP_DATA: u32 = 0x3 << 20;
pub(crate) const TXD_EOP: u32 = 1 << 24;
pub(crate) const TXD_IFCS: u32 = 1 << 25;
pub(crate) const TXD_RS: u32 = 1 << 27;
pub(crate) const TXD_DEXT: u32 = 1 << 29;
pub(crate) const TXD_PAYLEN_SHIFT: u32 = 14;

/// Zeroed, 4 KiB-aligned memory the driver owns and shares with the device; every access
/// is volatile.
pub(crate) struct DmaMem {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the memory is owned by this value alone (the device aside); moving the owner
// moves the only handle to it.
unsafe impl Send for DmaMem {}

impl DmaMem {
    pub fn new(size: usize) -> Result<Self, Error> {
        let layout = Layout::from_size_align(size.max(1), 4096).map_err(|_| Error::OutOfMemory)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        Ok(Self { ptr: NonNull::new(ptr).ok_or(Error::OutOfMemory)?, layout })
    }

    /// The device's address of the memory (identity-mapped: the pointer's address).
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr().expose_provenance() as u64
    }

    fn at<T>(&self, offset: usize) -> *mut T {
        // Offsets come from descriptor indices the driver computes, never from the device.
        assert!(
            offset + size_of::<T>() <= self.layout.size() && offset.is_multiple_of(size_of::<T>()),
            "intel-nic: ring access out of bounds"
        );
        // SAFETY: in bounds of the allocation (checked above).
        unsafe { self.ptr.as_ptr().add(offset) }.cast()
    }

    pub fn read<T: Copy>(&self, offset: usize) -> T {
        // SAFETY: `at` returns an aligned in-bounds pointer into memory this value owns;
        // the device may write it concurrently, hence volatile and no reference.
        unsafe { self.at::<T>(offset).read_volatile() }
    }

    pub fn write<T: Copy>(&self, offset: usize, value: T) {
        // SAFETY: as in `read`.
        unsafe { self.at::<T>(offset).write_volatile(value) }
    }
}

impl Drop for DmaMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { alloc::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// The device address of a packet's frame: its `data` field, where the device reads or
/// writes the frame in place.
pub(crate) fn data_addr(p: &mut RRef<Pkt>) -> u64 {
    let base: *mut Pkt = &mut **p;
    (base.expose_provenance() + offset_of!(Pkt, data)) as u64
}

/// One ring (receive or transmit) and the buffers posted to it.
pub(crate) struct Ring {
    /// Descriptors; a power of two, at most 4096.
    pub n: usize,
    pub mem: DmaMem,
    /// `slots[i]`: the buffer descriptor `i` points into, while it is outstanding.
    slots: Vec<Option<RRef<Pkt>>>,
    /// Oldest outstanding descriptor.
    pub clean: usize,
    /// Next descriptor to fill (the tail the device is told).
    pub tail: usize,
    /// Descriptors between `clean` and `tail`.
    pub outstanding: usize,
    /// Descriptors filled since the tail register was last written.
    pub unpublished: usize,
}

impl Ring {
    pub fn new(n: usize) -> Result<Self, Error> {
        let mem = DmaMem::new(n * DESC_LEN)?;
        let mut slots = Vec::new();
        slots.try_reserve_exact(n).map_err(|_| Error::OutOfMemory)?;
        slots.resize_with(n, || None);
        Ok(Self { n, mem, slots, clean: 0, tail: 0, outstanding: 0, unpublished: 0 })
    }

    /// Room for another buffer (one descriptor always stays empty).
    pub fn has_room(&self) -> bool {
        self.outstanding + 1 < self.n
    }

    /// Fills the tail descriptor with `words` (the 16-byte read format) for `pkt` and
    /// advances the tail. The caller checked [`Ring::has_room`].
    pub fn push(&mut self, pkt: RRef<Pkt>, words: [u64; 2]) {
        let i = self.tail;
        self.mem.write(i * DESC_LEN, words[0]);
        self.mem.write(i * DESC_LEN + 8, words[1]);
        self.slots[i] = Some(pkt);
        self.tail = (i + 1) % self.n;
        self.outstanding += 1;
        self.unpublished += 1;
    }

    /// The oldest outstanding descriptor's byte offset, if any.
    pub fn oldest(&self) -> Option<usize> {
        (self.outstanding > 0).then_some(self.clean * DESC_LEN)
    }

    /// Takes the oldest outstanding buffer back and frees its descriptor.
    pub fn pop(&mut self) -> Option<RRef<Pkt>> {
        if self.outstanding == 0 {
            return None;
        }
        let p = self.slots[self.clean].take();
        self.clean = (self.clean + 1) % self.n;
        self.outstanding -= 1;
        p
    }
}
