//! [`HostHeap`]: a std-backed [`SharedHeap`] for host tests of rref and of crates using it.
//! It keeps its books with the kernel's [`Registry`] and [`Counters`], so host tests
//! exercise the kernel's reclamation code.

use crate::registry::{Counters, Reclaimed, Registry};
use crate::{heap, set_heap, DomainId, Header, SharedHeap, MAX_DOMAINS};
use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The process-wide host heap. Every test thread shares it (tests run in parallel), so
/// tests should only look at the counters of domains they got from
/// [`HostHeap::fresh_domain`].
pub struct HostHeap {
    registry: Mutex<Registry>,
    counters: Counters,
    next_domain: AtomicU32,
}

/// The last id [`HostHeap::fresh_domain`] hands out. Ids run from 1 and are never reused,
/// so a test process can create at most 62 domains.
const LAST_FRESH_DOMAIN: u32 = MAX_DOMAINS as u32 - 2;

static HOST: HostHeap =
    HostHeap { registry: Mutex::new(Registry::new()), counters: Counters::new(), next_domain: AtomicU32::new(1) };

std::thread_local! {
    static CURRENT: Cell<DomainId> = const { Cell::new(DomainId::KERNEL) };
    static VIOLATION: Cell<bool> = const { Cell::new(false) };
}

impl HostHeap {
    /// The process-wide host heap, installed with [`set_heap`] on the first call.
    ///
    /// # Panics
    /// If another heap was installed first.
    pub fn install() -> &'static HostHeap {
        set_heap(&HOST);
        assert!(core::ptr::addr_eq(heap(), &HOST), "rref: another shared heap is installed");
        &HOST
    }

    /// Makes `d` this thread's current domain: the owner of the blocks it allocates.
    /// Threads start in [`DomainId::KERNEL`].
    pub fn set_current(&self, d: DomainId) {
        CURRENT.with(|c| c.set(d));
    }

    /// A domain id no other caller in this process gets (1, 2, ... 62).
    ///
    /// # Panics
    /// After 62 calls in one process.
    pub fn fresh_domain(&self) -> DomainId {
        let id = self.next_domain.fetch_add(1, SeqCst);
        assert!(id <= LAST_FRESH_DOMAIN, "rref: HostHeap::fresh_domain: a test process can create at most 62 domains");
        DomainId(id)
    }

    /// Reclaims the blocks of `dead` as the kernel does when a domain dies: see
    /// [`Registry::reclaim`].
    ///
    /// # Safety
    /// `dead`'s handles (RRefs it still holds) are never used or dropped again
    /// (`mem::forget` them), except through lends in progress.
    pub unsafe fn reclaim(&self, dead: DomainId) -> Reclaimed {
        // SAFETY: the caller's promise, and `dealloc_block` frees one unregistered block.
        unsafe { self.lock().reclaim(dead, &self.counters, dealloc_block) }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Live blocks of every domain (of every test running now).
    pub fn live_blocks(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Returns a block's memory to std.
fn dealloc_block(block: NonNull<Header>, layout: Layout) {
    // SAFETY: only called on blocks from `HostHeap::alloc` (allocated with this layout,
    // which their header records), once, after they were unregistered.
    unsafe { std::alloc::dealloc(block.as_ptr().cast(), layout) }
}

// SAFETY: blocks come from std's allocator (so they never overlap) with their header
// written and registered before `alloc` returns; `free` and `moved` keep the registry and
// counters exact.
unsafe impl SharedHeap for HostHeap {
    unsafe fn alloc(&self, layout: Layout) -> Option<NonNull<Header>> {
        if !Header::fits_in(layout) {
            return None;
        }
        // SAFETY: the layout's size is non-zero (it holds a header).
        let block = NonNull::new(unsafe { std::alloc::alloc(layout) })?.cast::<Header>();
        let header = Header::new(self.current_domain(), layout);
        // SAFETY: a fresh allocation, large and aligned enough for a header.
        unsafe { block.write(header) };
        // SAFETY: the header is initialised, the block is new, and it stays allocated until
        // `free`, `reclaim` or `release_orphans` unregisters it.
        unsafe { self.lock().insert(block, &self.counters) };
        Some(block)
    }

    unsafe fn free(&self, block: NonNull<Header>) {
        // SAFETY: the caller passes a live block of this heap.
        let layout = unsafe { block.as_ref() }.layout();
        // SAFETY: live blocks of this heap are registered.
        unsafe { self.lock().remove(block, &self.counters) };
        dealloc_block(block, layout);
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }

    fn current_domain(&self) -> DomainId {
        CURRENT.with(Cell::get)
    }

    unsafe fn report_violation(&self) {
        VIOLATION.with(|v| v.set(true));
    }

    fn take_violation(&self) -> bool {
        VIOLATION.with(|v| v.replace(false))
    }

    fn release_orphans(&self) {
        // SAFETY: orphans are only reachable through lends, which `Registry` checks, and
        // `dealloc_block` frees one unregistered block.
        unsafe { self.lock().release_orphans(&self.counters, dealloc_block) };
    }
}
