//! The shared heap: where RRefs live.
//!
//! One contiguous, identity-mapped region (so a buffer's address is its physical address,
//! as DMA needs) managed by `linked_list_allocator`, plus `rref`'s registry of live blocks
//! and per-domain counters — the same bookkeeping code the host tests exercise. Reclaiming
//! a dead domain frees its blocks by their owner tag, running none of its code.

use super::rpc;
use crate::arch::irq::IrqMutex;
use core::alloc::Layout;
use core::ptr::NonNull;
use linked_list_allocator::Heap;
use rref::registry::{Counters, Reclaimed, Registry};
use rref::{DomainId, Header, SharedHeap};

struct Inner {
    heap: Heap,
    registry: Registry,
}

/// Shared-heap bytes only the kernel may allocate (1 MiB of the 32).
pub const KERNEL_RESERVE: usize = 1 << 20;

pub struct KernelSharedHeap {
    inner: IrqMutex<Inner>,
    counters: Counters,
}

pub static SHARED: KernelSharedHeap = KernelSharedHeap {
    inner: IrqMutex::new(Inner { heap: Heap::empty(), registry: Registry::new() }),
    counters: Counters::new(),
};

/// Hands `[start, start+size)` to the shared heap.
///
/// # Safety
/// The range is unused, identity-mapped RAM owned by the shared heap from now on.
pub unsafe fn init(start: u64, size: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe { SHARED.inner.lock().heap.init(start as *mut u8, size) };
    rref::set_heap(&SHARED);
}

impl KernelSharedHeap {
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Bytes of the region in use (headers and padding included).
    pub fn used(&self) -> usize {
        self.inner.lock().heap.used()
    }

    pub fn size(&self) -> usize {
        self.inner.lock().heap.size()
    }

    /// Frees (or orphans, if one is lent out) every block `dead` owns.
    pub fn reclaim(&self, dead: DomainId) -> Reclaimed {
        let mut g = self.inner.lock();
        let Inner { heap, registry } = &mut *g;
        // SAFETY: every registered block came from `heap` with its header's layout, and a
        // dead domain's blocks are no longer reachable by running code except through
        // lends, which the registry defers.
        unsafe {
            registry.reclaim(dead, &self.counters, |b, l| heap.deallocate(b.cast(), l))
        }
    }
}

// SAFETY: blocks come from one allocator and never overlap; every block is registered with
// an initialised header before it is returned, and counters follow every change of owner.
unsafe impl SharedHeap for KernelSharedHeap {
    unsafe fn alloc(&self, layout: Layout) -> Option<NonNull<Header>> {
        super::guard_stack();
        // Defensive: the contract says the layout holds a header; never write one past a block.
        if !Header::fits_in(layout) {
            return None;
        }
        let owner = self.current_domain();
        // The owner's shared-heap quota (the kernel has none).
        if self.counters.bytes(owner).saturating_add(layout.size() as u64) > super::limits::shared_limit(owner.0 as usize) {
            return None;
        }
        let mut g = self.inner.lock();
        // Domains never take the last KERNEL_RESERVE bytes: the kernel's own RRefs (the
        // NIC shadows' empty batches) must not fail because domains filled the heap.
        if owner.0 != 0 && g.heap.used() + layout.size() + KERNEL_RESERVE > g.heap.size() {
            return None;
        }
        let p = g.heap.allocate_first_fit(layout).ok()?.cast::<Header>();
        // SAFETY: fresh block of at least `layout` ≥ size_of::<Header>() bytes (checked
        // above), aligned at least like a header.
        unsafe {
            p.as_ptr().write(Header::new(owner, layout));
            g.registry.insert(p, &self.counters);
        }
        Some(p)
    }

    unsafe fn free(&self, block: NonNull<Header>) {
        super::guard_stack();
        let mut g = self.inner.lock();
        // SAFETY: `block` is live and registered (caller's contract); its header holds
        // the layout it was allocated with.
        unsafe {
            let layout = block.as_ref().layout();
            g.registry.remove(block, &self.counters);
            g.heap.deallocate(block.cast(), layout);
        }
    }

    #[inline(always)]
    fn counters(&self) -> &Counters {
        &self.counters
    }

    #[inline]
    fn current_domain(&self) -> DomainId {
        rpc::current().0
    }

    unsafe fn report_violation(&self) {
        rpc::set_violation();
    }

    #[inline(always)]
    fn take_violation(&self) -> bool {
        rpc::take_violation()
    }

    fn release_orphans(&self) {
        super::guard_stack();
        let mut g = self.inner.lock();
        let Inner { heap, registry } = &mut *g;
        // SAFETY: as in `reclaim`.
        unsafe {
            registry.release_orphans(&self.counters, |b, l| heap.deallocate(b.cast(), l));
        }
    }
}
