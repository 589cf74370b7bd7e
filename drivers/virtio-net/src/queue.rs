//! One split virtqueue (virtio 1.x §2.7): descriptor table, available ring, used ring, and
//! the table of buffers the device holds.
//!
//! Layout: the descriptor table is `size` × 16 bytes (`addr` u64, `len` u32, `flags` u16,
//! `next` u16); the available ring is `flags` u16, `idx` u16, `ring[size]` u16,
//! `used_event` u16; the used ring is `flags` u16, `idx` u16, `ring[size]` of (`id` u32,
//! `len` u32), `avail_event` u16. Each lives in its own zeroed, page-aligned allocation
//! (at most 4 KiB for 256 entries, so it never straddles a page).

use crate::Error;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::mem::{offset_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::{fence, Ordering};
use frond_interface::net::{Pkt, HEADROOM};
use frond_interface::RRef;

/// Descriptor flag: the device writes the buffer (receive).
pub(crate) const DESC_F_WRITE: u16 = 2;
/// Available ring flag: the driver asks not to be interrupted.
pub(crate) const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Used ring flag: the device asks not to be notified.
pub(crate) const USED_F_NO_NOTIFY: u16 = 1;

// The descriptor covers the header room and the frame as one buffer.
const _: () = assert!(offset_of!(Pkt, data) == offset_of!(Pkt, head) + HEADROOM);

/// Zeroed, page-aligned memory the driver owns and shares with the device. All accesses
/// are volatile: the device reads and writes it behind the compiler's back.
struct DmaMem {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the memory is owned by this value alone (the device aside); moving the owner to
// another thread moves the only handle to it.
unsafe impl Send for DmaMem {}

impl DmaMem {
    fn new(size: usize) -> Result<Self, Error> {
        let layout = Layout::from_size_align(size.max(1), 4096).map_err(|_| Error::OutOfMemory)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        Ok(Self { ptr: NonNull::new(ptr).ok_or(Error::OutOfMemory)?, layout })
    }

    /// The address the device uses: the pointer's address (identity-mapped memory).
    fn addr(&self) -> u64 {
        self.ptr.as_ptr().expose_provenance() as u64
    }

    /// A pointer to a `T` at `offset`. Panics (a driver bug, never device input) if the
    /// access leaves the allocation or is misaligned.
    fn at<T>(&self, offset: usize) -> *mut T {
        assert!(
            offset + size_of::<T>() <= self.layout.size() && offset.is_multiple_of(size_of::<T>()),
            "virtio-net: ring access out of bounds"
        );
        // SAFETY: in bounds of the allocation (checked above).
        unsafe { self.ptr.as_ptr().add(offset) }.cast()
    }

    fn read<T: Copy>(&self, offset: usize) -> T {
        // SAFETY: `at` returns an aligned in-bounds pointer into memory this value owns;
        // the device may write it concurrently, hence volatile and no reference.
        unsafe { self.at::<T>(offset).read_volatile() }
    }

    fn write<T: Copy>(&self, offset: usize, value: T) {
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

/// A split virtqueue and the buffers posted to it.
pub(crate) struct Queue {
    pub index: u16,
    /// A power of two, so free-running 16-bit indices wrap consistently.
    pub size: u16,
    desc: DmaMem,
    avail: DmaMem,
    used: DmaMem,
    /// `slots[id]`: the buffer descriptor `id` points into, while it is outstanding.
    slots: Vec<Option<RRef<Pkt>>>,
    /// Free descriptor ids.
    free: Vec<u16>,
    /// Next available ring index to fill (published as `avail.idx`).
    next_avail: u16,
    /// Next used ring index to read.
    last_used: u16,
    /// Entries added to the available ring since the last publish.
    unpublished: u16,
}

impl Queue {
    pub fn new(index: u16, size: u16) -> Result<Self, Error> {
        debug_assert!(size.is_power_of_two());
        let n = size as usize;
        let desc = DmaMem::new(16 * n)?;
        let avail = DmaMem::new(6 + 2 * n)?;
        let used = DmaMem::new(6 + 8 * n)?;
        let mut slots = Vec::new();
        let mut free = Vec::new();
        if slots.try_reserve_exact(n).is_err() || free.try_reserve_exact(n).is_err() {
            return Err(Error::OutOfMemory);
        }
        slots.resize_with(n, || None);
        // Popped from the back: ids are handed out 0, 1, 2, ...
        free.extend((0..size).rev());
        Ok(Self { index, size, desc, avail, used, slots, free, next_avail: 0, last_used: 0, unpublished: 0 })
    }

    pub fn desc_addr(&self) -> u64 {
        self.desc.addr()
    }
    pub fn avail_addr(&self) -> u64 {
        self.avail.addr()
    }
    pub fn used_addr(&self) -> u64 {
        self.used.addr()
    }

    pub fn has_free(&self) -> bool {
        !self.free.is_empty()
    }

    /// Buffers the device holds.
    pub fn outstanding(&self) -> usize {
        self.size as usize - self.free.len()
    }

    /// Whether `id` (from the used ring) names a buffer the device holds.
    pub fn is_outstanding(&self, id: u32) -> bool {
        matches!(self.slots.get(id as usize), Some(Some(_)))
    }

    /// Posts `pkt` as one descriptor of `len` bytes starting at its header room; gives it
    /// back if no descriptor is free. Not visible to the device before [`Queue::publish`].
    pub fn post(&mut self, mut pkt: RRef<Pkt>, len: u32, flags: u16) -> Result<(), RRef<Pkt>> {
        let Some(id) = self.free.pop() else { return Err(pkt) };
        let base: *mut Pkt = &mut *pkt;
        let addr = (base.expose_provenance() + offset_of!(Pkt, head)) as u64;
        let d = id as usize * 16;
        self.desc.write(d, addr);
        self.desc.write(d + 8, len);
        self.desc.write(d + 12, flags);
        self.desc.write(d + 14, 0u16);
        self.slots[id as usize] = Some(pkt);
        self.push_avail(id);
        Ok(())
    }

    /// Makes outstanding descriptor `id` available again, unchanged (its buffer came back
    /// unusable and goes straight back to the device).
    pub fn repost(&mut self, id: u32) {
        if self.is_outstanding(id) {
            self.push_avail(id as u16);
        }
    }

    fn push_avail(&mut self, id: u16) {
        let slot = (self.next_avail % self.size) as usize;
        self.avail.write(4 + 2 * slot, id);
        self.next_avail = self.next_avail.wrapping_add(1);
        self.unpublished += 1;
    }

    /// Publishes the entries added since the last call. True if something was published
    /// and the device wants to be notified.
    pub fn publish(&mut self) -> bool {
        if self.unpublished == 0 {
            return false;
        }
        self.unpublished = 0;
        // Descriptors and ring entries are visible before the index that exposes them.
        fence(Ordering::SeqCst);
        self.avail.write(2, self.next_avail);
        // The index is visible before the device's flags are read (store-load order).
        fence(Ordering::SeqCst);
        self.used.read::<u16>(0) & USED_F_NO_NOTIFY == 0
    }

    /// The device's used index; entries before it are complete and readable.
    pub fn used_end(&self) -> u16 {
        let idx = self.used.read::<u16>(2);
        fence(Ordering::Acquire);
        idx
    }

    /// True if the used ring holds entries the driver has not read.
    pub fn pending(&self) -> bool {
        fence(Ordering::SeqCst);
        self.used.read::<u16>(2) != self.last_used
    }

    pub fn last_used(&self) -> u16 {
        self.last_used
    }

    /// The used entry at `last_used`: (id, len) exactly as the device wrote them.
    pub fn peek_used(&self) -> (u32, u32) {
        let e = 4 + 8 * (self.last_used % self.size) as usize;
        (self.used.read::<u32>(e), self.used.read::<u32>(e + 4))
    }

    pub fn advance(&mut self) {
        self.last_used = self.last_used.wrapping_add(1);
    }

    /// Takes back the buffer of outstanding descriptor `id`, freeing the descriptor.
    pub fn take(&mut self, id: u32) -> Option<RRef<Pkt>> {
        let pkt = self.slots.get_mut(id as usize)?.take()?;
        self.free.push(id as u16);
        Some(pkt)
    }

    pub fn set_avail_flags(&mut self, flags: u16) {
        self.avail.write(0, flags);
    }
}
