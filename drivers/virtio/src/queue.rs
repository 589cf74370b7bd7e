//! One split virtqueue (virtio 1.x §2.7): descriptor table, available ring, used ring, and
//! the driver's own record of which descriptor chains the device holds.
//!
//! Layout: the descriptor table is `size` × 16 bytes (`addr` u64, `len` u32, `flags` u16,
//! `next` u16); the available ring is `flags` u16, `idx` u16, `ring[size]` u16,
//! `used_event` u16; the used ring is `flags` u16, `idx` u16, `ring[size]` of (`id` u32,
//! `len` u32), `avail_event` u16. Each lives in its own zeroed, page-aligned allocation
//! (at most 4 KiB for 256 entries, so it never straddles a page).
//!
//! A buffer the device sees is a *chain* of one or more descriptors (virtio-net: one;
//! virtio-blk: header, data, status). The queue links the chain's descriptors, publishes its
//! head, and remembers the chain in driver-private memory (`link`, `chain`): releasing a
//! chain never follows links the device could have rewritten in the descriptor table.

use crate::Error;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::mem::size_of;
use core::ptr::NonNull;
use core::sync::atomic::{fence, Ordering};

/// Descriptor flag: the chain continues at `next`.
pub const DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the device writes the buffer (receive, block read data, status).
pub const DESC_F_WRITE: u16 = 2;
/// Available ring flag: the driver asks not to be interrupted.
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Used ring flag: the device asks not to be notified.
pub const USED_F_NO_NOTIFY: u16 = 1;

/// A full barrier between this CPU's memory accesses and the device's: every store before
/// it is visible to the device before any load after it reads. The notification and
/// interrupt suppression protocols (virtio 1.x §2.7.7, §2.7.10) rest on it: the driver
/// stores an index and then loads the device's event field, the device does the mirror
/// image, and without store→load order both can miss the other's store and wait for ever.
///
/// Written as `mfence`, not as `fence(SeqCst)`: LLVM emits a locked `or` on the stack for
/// that, a full barrier on hardware but not under QEMU's TCG with one vCPU, which
/// translates a locked instruction without a host barrier (there is no other vCPU to be
/// atomic against) while QEMU's I/O thread reads and writes the rings at the same time;
/// `mfence` becomes a host barrier. Seen as receive queues stalling at random under
/// load: the device, out of buffers, waited for a notification the driver had decided it
/// did not need (`docs/performance.md`).
#[inline(always)]
pub fn device_barrier() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `mfence` only orders memory accesses; it reads or writes no memory and no
    // register. Without `nomem` the compiler also keeps memory accesses on their side.
    unsafe {
        core::arch::asm!("mfence", options(nostack, preserves_flags))
    };
    #[cfg(not(target_arch = "x86_64"))]
    fence(Ordering::SeqCst);
}

/// virtio 1.x §2.7.10 `vring_need_event`: whether moving an index from `old` to `new`
/// passes `event` (`event` in `[old, new)`, in wrapping 16-bit arithmetic). With
/// `VIRTIO_F_RING_EVENT_IDX` the driver notifies iff its new available index passes the
/// device's `avail_event`, and the device interrupts iff its used index passes the
/// driver's `used_event`.
#[inline]
pub fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

mod sealed {
    pub trait Sealed {}
}

/// Types [`DmaMem`] reads and writes: plain integers, valid for every bit pattern the
/// device may leave behind.
pub trait Scalar: Copy + sealed::Sealed {}
macro_rules! scalar {
    ($($t:ty),*) => {$(impl sealed::Sealed for $t {} impl Scalar for $t {})*};
}
scalar!(u8, u16, u32, u64);

/// Zeroed, page-aligned memory the driver owns and shares with the device (rings,
/// virtio-blk request headers and status bytes). All accesses are volatile: the device
/// reads and writes it behind the compiler's back. Its address is its physical address
/// (driver heaps are identity-mapped).
///
/// Whoever owns one must stop the device (reset) before dropping it.
pub struct DmaMem {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the memory is owned by this value alone (the device aside); moving the owner to
// another thread moves the only handle to it. Not `Sync`: accesses through `&self` from
// two threads would race.
unsafe impl Send for DmaMem {}

impl DmaMem {
    /// `size` zeroed bytes (at least 1), page-aligned.
    pub fn new(size: usize) -> Result<Self, Error> {
        let layout = Layout::from_size_align(size.max(1), 4096).map_err(|_| Error::OutOfMemory)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        Ok(Self { ptr: NonNull::new(ptr).ok_or(Error::OutOfMemory)?, layout })
    }

    /// The address the device uses: the pointer's address (identity-mapped memory).
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr().expose_provenance() as u64
    }

    /// A pointer to a `T` at `offset`. Panics (a driver bug, never device input) if the
    /// access leaves the allocation or is misaligned.
    fn at<T>(&self, offset: usize) -> *mut T {
        assert!(
            offset.checked_add(size_of::<T>()).is_some_and(|end| end <= self.layout.size())
                && offset.is_multiple_of(size_of::<T>()),
            "virtio: DMA memory access out of bounds"
        );
        // SAFETY: in bounds of the allocation (checked above).
        unsafe { self.ptr.as_ptr().add(offset) }.cast()
    }

    pub fn read<T: Scalar>(&self, offset: usize) -> T {
        // SAFETY: `at` returns an aligned in-bounds pointer into memory this value owns;
        // the device may write it concurrently, hence volatile and no reference; `T` is a
        // plain integer, valid for any bits.
        unsafe { self.at::<T>(offset).read_volatile() }
    }

    pub fn write<T: Scalar>(&self, offset: usize, value: T) {
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

/// One buffer of a descriptor chain: `len` bytes at `addr` (an identity-mapped address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seg {
    pub addr: u64,
    pub len: u32,
    /// The device writes this buffer (`VIRTQ_DESC_F_WRITE`); otherwise it reads it.
    pub device_writes: bool,
}

/// A split virtqueue and the chains posted to it.
///
/// Invariant: every descriptor is either free (on the free list) or part of exactly one
/// chain the device holds (`chain[head] > 0` for its head); a chain is released at most
/// once, by its head id.
pub struct Queue {
    index: u16,
    /// A power of two, so free-running 16-bit indices wrap consistently.
    size: u16,
    desc: DmaMem,
    avail: DmaMem,
    used: DmaMem,
    /// `link[id]`: the descriptor after `id` in its chain (the driver's copy).
    link: Vec<u16>,
    /// `chain[id]`: number of descriptors in the chain headed by `id` while the device
    /// holds it; 0 otherwise.
    chain: Vec<u16>,
    /// Chains the device holds.
    chains: usize,
    /// Free descriptor ids.
    free: Vec<u16>,
    /// Next available ring index to fill (published as `avail.idx`).
    next_avail: u16,
    /// Next used ring index to read.
    last_used: u16,
    /// Entries added to the available ring since the last publish.
    unpublished: u16,
    /// `VIRTIO_F_RING_EVENT_IDX` was negotiated: notifications follow `avail_event`,
    /// interrupts `used_event` (the ring flags are ignored by the device).
    event_idx: bool,
    /// The driver wants used-buffer interrupts (see [`Queue::set_interrupts`]).
    irq_on: bool,
    /// While `irq_on`: interrupt once this many more entries are used (≥ 1; EVENT_IDX
    /// only, see [`Queue::set_interrupts_after`]).
    irq_after: u16,
}

impl Queue {
    /// Queue `index` with `size` entries (a power of two, at most 32768).
    pub fn new(index: u16, size: u16) -> Result<Self, Error> {
        if !size.is_power_of_two() || size > 32768 {
            return Err(Error::QueueUnavailable(index));
        }
        let n = size as usize;
        let desc = DmaMem::new(16 * n)?;
        let avail = DmaMem::new(6 + 2 * n)?;
        let used = DmaMem::new(6 + 8 * n)?;
        let mut link = Vec::new();
        let mut chain = Vec::new();
        let mut free = Vec::new();
        if link.try_reserve_exact(n).is_err()
            || chain.try_reserve_exact(n).is_err()
            || free.try_reserve_exact(n).is_err()
        {
            return Err(Error::OutOfMemory);
        }
        link.resize(n, 0);
        chain.resize(n, 0);
        // Popped from the back: ids are handed out 0, 1, 2, ...
        free.extend((0..size).rev());
        Ok(Self {
            index,
            size,
            desc,
            avail,
            used,
            link,
            chain,
            chains: 0,
            free,
            next_avail: 0,
            last_used: 0,
            unpublished: 0,
            event_idx: false,
            irq_on: true,
            irq_after: 1,
        })
    }

    pub fn index(&self) -> u16 {
        self.index
    }
    pub fn size(&self) -> u16 {
        self.size
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

    /// Free descriptors.
    pub fn free_descriptors(&self) -> usize {
        self.free.len()
    }

    pub fn has_free(&self) -> bool {
        !self.free.is_empty()
    }

    /// Chains added since the last [`Queue::publish`] (the device cannot see them yet).
    pub fn unpublished(&self) -> usize {
        self.unpublished as usize
    }

    /// Descriptors the device holds.
    pub fn outstanding(&self) -> usize {
        self.size as usize - self.free.len()
    }

    /// Chains the device holds.
    pub fn in_flight(&self) -> usize {
        self.chains
    }

    /// Whether `id` (from the used ring) is the head of a chain the device holds.
    pub fn is_in_flight(&self, id: u32) -> bool {
        self.chain.get(id as usize).is_some_and(|&n| n > 0)
    }

    /// Writes `segs` as one chain and adds its head to the available ring; returns the
    /// head id, or None (nothing changed) if `segs` is empty or too few descriptors are
    /// free. Not visible to the device before [`Queue::publish`].
    pub fn add(&mut self, segs: &[Seg]) -> Option<u16> {
        if segs.is_empty() || segs.len() > self.free.len() {
            return None;
        }
        // Built from the last segment back, so each descriptor's successor is known.
        let mut next: Option<u16> = None;
        for s in segs.iter().rev() {
            let Some(id) = self.free.pop() else { unreachable!("checked above") };
            let mut flags = if s.device_writes { DESC_F_WRITE } else { 0 };
            if next.is_some() {
                flags |= DESC_F_NEXT;
            }
            let d = id as usize * 16;
            self.desc.write(d, s.addr);
            self.desc.write(d + 8, s.len);
            self.desc.write(d + 12, flags);
            self.desc.write(d + 14, next.unwrap_or(0));
            self.link[id as usize] = next.unwrap_or(0);
            next = Some(id);
        }
        let Some(head) = next else { unreachable!("segs is not empty") };
        self.chain[head as usize] = segs.len() as u16;
        self.chains += 1;
        self.push_avail(head);
        Some(head)
    }

    /// Makes the chain headed by `head`, which the device holds, available again unchanged
    /// (its buffer came back unusable and goes straight back to the device).
    pub fn repost(&mut self, head: u32) {
        if self.is_in_flight(head) {
            self.push_avail(head as u16);
        }
    }

    fn push_avail(&mut self, id: u16) {
        let slot = (self.next_avail % self.size) as usize;
        self.avail.write(4 + 2 * slot, id);
        self.next_avail = self.next_avail.wrapping_add(1);
        self.unpublished += 1;
    }

    /// Uses `VIRTIO_F_RING_EVENT_IDX` (the driver negotiated it): from now on
    /// [`Queue::publish`] reads `avail_event` and [`Queue::set_interrupts`] writes
    /// `used_event`.
    pub fn set_event_idx(&mut self, on: bool) {
        self.event_idx = on;
        self.write_used_event();
    }

    pub fn event_idx(&self) -> bool {
        self.event_idx
    }

    /// Allows (`true`) or suppresses (`false`) used-buffer interrupts: the ring flag, and
    /// with EVENT_IDX `used_event` — the next entry to be used while allowed, an entry
    /// already consumed (reached again only after a full wrap) while suppressed. A hint the
    /// device may ignore; the caller checks for work after allowing them.
    pub fn set_interrupts(&mut self, on: bool) {
        self.irq_on = on;
        self.irq_after = 1;
        self.avail.write(0, if on { 0 } else { AVAIL_F_NO_INTERRUPT });
        self.write_used_event();
    }

    /// Allows used-buffer interrupts, coalesced: with EVENT_IDX the device interrupts
    /// once `n` (at least 1) more entries past `last_used` are used — `used_event` is
    /// `last_used + n - 1`; without it, at the next entry as [`Queue::set_interrupts`].
    /// Interrupt moderation by count: the caller asks for no more entries than the
    /// device holds buffers for, or it waits for its timeout.
    pub fn set_interrupts_after(&mut self, n: u16) {
        self.set_interrupts(true);
        if self.event_idx {
            self.irq_after = n.max(1);
            self.write_used_event();
        }
    }

    /// Used entries the driver has not read (after a barrier, as [`Queue::pending`]).
    pub fn pending_count(&self) -> u16 {
        device_barrier();
        self.used.read::<u16>(2).wrapping_sub(self.last_used)
    }

    /// `used_event` for the current setting, relative to `last_used` (EVENT_IDX only).
    #[inline]
    fn write_used_event(&self) {
        if self.event_idx {
            let e = if self.irq_on { self.last_used.wrapping_add(self.irq_after - 1) } else { self.last_used.wrapping_sub(1) };
            self.avail.write(4 + 2 * self.size as usize, e);
        }
    }

    /// Publishes the entries added since the last call. True if something was published
    /// and the device wants to be notified: its `avail_event` lies among the published
    /// entries (EVENT_IDX), or it has not set `VIRTQ_USED_F_NO_NOTIFY`.
    ///
    /// With EVENT_IDX and interrupts suppressed it also moves `used_event` behind
    /// `last_used` again, so the device's used index never wraps around to it.
    pub fn publish(&mut self) -> bool {
        if self.event_idx && !self.irq_on {
            self.write_used_event();
        }
        if self.unpublished == 0 {
            return false;
        }
        let old = self.next_avail.wrapping_sub(self.unpublished);
        self.unpublished = 0;
        // Descriptors and ring entries are visible before the index that exposes them.
        device_barrier();
        self.avail.write(2, self.next_avail);
        // The index is visible before the device's flags or event are read (store-load order).
        device_barrier();
        if self.event_idx {
            let avail_event = self.used.read::<u16>(4 + 8 * self.size as usize);
            need_event(avail_event, self.next_avail, old)
        } else {
            self.used.read::<u16>(0) & USED_F_NO_NOTIFY == 0
        }
    }

    /// The device's used index; entries before it are complete and readable, and so is
    /// everything the device wrote into their buffers.
    pub fn used_end(&self) -> u16 {
        let idx = self.used.read::<u16>(2);
        fence(Ordering::Acquire);
        idx
    }

    /// True if the used ring holds entries the driver has not read.
    pub fn pending(&self) -> bool {
        // After `set_interrupts(true)`: `used_event` is visible before the index is read.
        device_barrier();
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

    /// Releases the chain headed by `head` (its descriptors become free); returns its
    /// length, or None if the device holds no chain headed by `head`.
    pub fn release(&mut self, head: u32) -> Option<usize> {
        let n = *self.chain.get(head as usize)?;
        if n == 0 {
            return None;
        }
        self.chain[head as usize] = 0;
        self.chains -= 1;
        let mut id = head as u16;
        for _ in 0..n {
            self.free.push(id);
            id = self.link[id as usize];
        }
        Some(n as usize)
    }

    /// Writes the available ring's flags (`AVAIL_F_NO_INTERRUPT`): the interrupt setting
    /// without EVENT_IDX (see [`Queue::set_interrupts`], which also keeps `used_event`).
    pub fn set_avail_flags(&mut self, flags: u16) {
        self.irq_on = flags & AVAIL_F_NO_INTERRUPT == 0;
        self.irq_after = 1;
        self.avail.write(0, flags);
    }
}
