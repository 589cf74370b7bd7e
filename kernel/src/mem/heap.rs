//! The kernel heap: one contiguous run of frames managed by `linked_list_allocator`.
//!
//! The lock disables interrupts, so an interrupt handler that allocates (waking a thread
//! pushes onto a run queue) can never deadlock against the thread it interrupted.
//! `used()` is exact; the heap-stress test checks it returns to its starting level.

use crate::arch::irq::IrqMutex;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use linked_list_allocator::Heap;

pub struct KernelHeap {
    heap: IrqMutex<Heap>,
    start: AtomicUsize,
    end: AtomicUsize,
}

#[global_allocator]
static HEAP: KernelHeap =
    KernelHeap { heap: IrqMutex::new(Heap::empty()), start: AtomicUsize::new(0), end: AtomicUsize::new(0) };

/// Hands `[start, start+size)` to the allocator.
///
/// # Safety
/// The range must be unused, writable, identity-mapped RAM owned by the heap from now on.
pub unsafe fn init(start: u64, size: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe { HEAP.heap.lock().init(start as *mut u8, size) };
    HEAP.start.store(start as usize, Relaxed);
    HEAP.end.store(start as usize + size, Relaxed);
}

// SAFETY: `linked_list_allocator::Heap` returns blocks that satisfy the layout and never
// overlap; access is serialised by the IrqMutex.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.heap.lock().allocate_first_fit(layout).map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(p) = NonNull::new(ptr) else { return };
        let a = ptr as usize;
        if a >= self.start.load(Relaxed) && a < self.end.load(Relaxed) {
            // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc contract).
            unsafe { self.heap.lock().deallocate(p, layout) };
        } else {
            // Kernel code dropping something a domain allocated (a closure it passed, an
            // object it handed out): back to the heap it came from.
            // SAFETY: the pointer was allocated with `layout` by a domain heap.
            if !unsafe { crate::domain::dheap::dealloc(ptr, layout) } {
                log::error!("kernel freed {ptr:p}, which no heap owns; ignored");
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct HeapStats {
    pub size: usize,
    pub used: usize,
    pub free: usize,
}

pub fn stats() -> HeapStats {
    let h = HEAP.heap.lock();
    HeapStats { size: h.size(), used: h.used(), free: h.free() }
}
