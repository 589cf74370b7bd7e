//! Private domain heaps.
//!
//! Each domain's heap is a list of chunks of physically contiguous, identity-mapped frames,
//! each managed by its own `linked_list_allocator::Heap`. A page-owner table records, for
//! every frame, which domain slot's heap it belongs to, so a pointer freed anywhere (by
//! the domain, or by the kernel dropping something the domain allocated) goes back to the
//! heap it came from. Killing a domain returns its chunks to the frame allocator whole: no
//! code of the domain runs, and nothing it allocated survives.

use super::MAX;
use crate::arch::irq::IrqMutex;
use crate::mem::frame::{self, FRAME, MAX_PHYS};
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, Ordering::Relaxed};
use linked_list_allocator::Heap;
use x86_64::PhysAddr;

/// Smallest chunk: 64 KiB, enough for a small domain's whole heap, so most domains
/// need one chunk (one contiguous run from the frame allocator).
const MIN_CHUNK: usize = 64 * 1024;

/// Owner slot of every frame below `MAX_PHYS` (0 = no domain heap).
static PAGE_OWNER: [AtomicU8; (MAX_PHYS / FRAME) as usize] =
    [const { AtomicU8::new(0) }; (MAX_PHYS / FRAME) as usize];

struct Chunk {
    base: usize,
    size: usize,
    heap: Heap,
}

// SAFETY: a Chunk's Heap manages memory owned by the chunk; access is serialised by HEAPS.
unsafe impl Send for Chunk {}

#[derive(Default)]
struct DomainHeap {
    chunks: Vec<Chunk>,
    /// Bytes handed out and not yet freed (sum of layout sizes).
    used: usize,
    allocs: u64,
}

static HEAPS: IrqMutex<[Option<DomainHeap>; MAX]> = IrqMutex::new([const { None }; MAX]);

/// Per-domain heap figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapInfo {
    pub used: usize,
    pub reserved: usize,
    pub chunks: usize,
}

pub fn create(slot: usize) {
    HEAPS.lock()[slot] = Some(DomainHeap::default());
}

pub fn info(slot: usize) -> HeapInfo {
    let g = HEAPS.lock();
    match &g[slot] {
        Some(h) => HeapInfo { used: h.used, reserved: h.chunks.iter().map(|c| c.size).sum(), chunks: h.chunks.len() },
        None => HeapInfo::default(),
    }
}

/// Total bytes reserved by all domain heaps.
pub fn total_reserved() -> usize {
    HEAPS.lock().iter().flatten().flat_map(|h| h.chunks.iter()).map(|c| c.size).sum()
}

pub fn alloc(slot: usize, layout: Layout) -> *mut u8 {
    let mut g = HEAPS.lock();
    let Some(h) = g.get_mut(slot).and_then(|h| h.as_mut()) else { return core::ptr::null_mut() };
    for c in h.chunks.iter_mut() {
        if let Ok(p) = c.heap.allocate_first_fit(layout) {
            h.used += layout.size();
            h.allocs += 1;
            return p.as_ptr();
        }
    }
    // Room for the block, its alignment and the allocator's bookkeeping. Sizes a domain
    // asks for are arbitrary: overflow is exhaustion, not a kernel panic.
    let Some(need) = layout.size().checked_add(layout.align() + 64).and_then(|n| n.checked_next_multiple_of(FRAME as usize)) else {
        return core::ptr::null_mut();
    };
    let size = need.max(MIN_CHUNK);
    // The domain's heap quota, its frame quota, and the kernel's reserve of free frames.
    let reserved: usize = h.chunks.iter().map(|c| c.size).sum();
    if (reserved + size) as u64 > super::limits::heap_limit(slot) {
        return core::ptr::null_mut();
    }
    let frames = size / FRAME as usize;
    if !super::limits::take_frames(slot, frames as u64) {
        return core::ptr::null_mut();
    }
    let Some(base) = frame::alloc_contiguous_keeping(frames, super::limits::KERNEL_RESERVE_FRAMES) else {
        super::limits::give_frames(slot, frames as u64);
        return core::ptr::null_mut();
    };
    if h.chunks.try_reserve(1).is_err() {
        for f in 0..frames {
            frame::free(PhysAddr::new(base.as_u64() + (f * FRAME as usize) as u64));
        }
        super::limits::give_frames(slot, frames as u64);
        return core::ptr::null_mut();
    }
    let base = base.as_u64() as usize;
    for f in (base..base + size).step_by(FRAME as usize) {
        PAGE_OWNER[f / FRAME as usize].store(slot as u8, Relaxed);
    }
    let mut heap = Heap::empty();
    // SAFETY: the frames were just taken from the frame allocator; they are RAM,
    // identity-mapped and owned by this chunk until `destroy` returns them.
    unsafe { heap.init(base as *mut u8, size) };
    let p = heap.allocate_first_fit(layout);
    h.chunks.push(Chunk { base, size, heap });
    match p {
        Ok(p) => {
            h.used += layout.size();
            h.allocs += 1;
            p.as_ptr()
        }
        Err(()) => core::ptr::null_mut(),
    }
}

/// The domain slot whose heap `ptr` lies in, if any.
pub fn owner_of(ptr: usize) -> Option<usize> {
    if (ptr as u64) >= MAX_PHYS {
        return None;
    }
    match PAGE_OWNER[ptr / FRAME as usize].load(Relaxed) {
        0 => None,
        s => Some(s as usize),
    }
}

/// Frees `ptr` into the heap it came from. False if no domain heap owns it.
///
/// # Safety
/// `ptr` was allocated with `layout` from a domain heap and is not used afterwards.
pub unsafe fn dealloc(ptr: *mut u8, layout: Layout) -> bool {
    let Some(slot) = owner_of(ptr as usize) else { return false };
    let mut g = HEAPS.lock();
    let Some(h) = g[slot].as_mut() else { return false };
    let a = ptr as usize;
    let Some(c) = h.chunks.iter_mut().find(|c| a >= c.base && a < c.base + c.size) else { return false };
    // SAFETY: `ptr` lies in this chunk and came from its heap (caller's contract).
    unsafe { c.heap.deallocate(NonNull::new_unchecked(ptr), layout) };
    h.used -= layout.size();
    true
}

/// Frees the whole heap of `slot` without looking inside it. Returns the bytes returned.
pub fn destroy(slot: usize) -> usize {
    let Some(h) = HEAPS.lock()[slot].take() else { return 0 };
    let mut bytes = 0;
    for c in &h.chunks {
        for f in (c.base..c.base + c.size).step_by(FRAME as usize) {
            PAGE_OWNER[f / FRAME as usize].store(0, Relaxed);
            frame::free(PhysAddr::new(f as u64));
        }
        bytes += c.size;
    }
    super::limits::give_frames(slot, (bytes / FRAME as usize) as u64);
    bytes
}
