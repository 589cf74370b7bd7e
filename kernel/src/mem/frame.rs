//! Physical frame allocator: one bit per 4 KiB frame of the first [`MAX_PHYS`] bytes.
//!
//! Frames start out "used"; boot marks the usable RAM of the PVH memory map free and then
//! re-reserves what is taken (low 1 MiB, kernel image, boot module, start info). Allocation is
//! next-fit; freeing a frame that is already free is a kernel bug and panics (it would mean
//! two owners). Counters are exact, which is what the heap and domain tests rely on.

use crate::arch::irq::IrqMutex;
use x86_64::structures::paging::{FrameAllocator, PhysFrame, Size4KiB};
use x86_64::PhysAddr;

pub const FRAME: u64 = 4096;
/// Physical memory tracked; the boot identity map covers 4 GiB, so RAM above is ignored.
pub const MAX_PHYS: u64 = 4 << 30;
const FRAMES: usize = (MAX_PHYS / FRAME) as usize;
const WORDS: usize = FRAMES / 64;

pub struct Frames {
    /// Bit set = free.
    free: [u64; WORDS],
    next: usize,
    free_count: usize,
    total: usize,
}

static FRAMES_ALLOC: IrqMutex<Frames> =
    IrqMutex::new(Frames { free: [0; WORDS], next: 0, free_count: 0, total: 0 });

impl Frames {
    fn set_free(&mut self, i: usize, free: bool) {
        let (w, b) = (i / 64, i % 64);
        let was = self.free[w] & (1 << b) != 0;
        if free && !was {
            self.free[w] |= 1 << b;
            self.free_count += 1;
        } else if !free && was {
            self.free[w] &= !(1 << b);
            self.free_count -= 1;
        }
    }

    fn is_free(&self, i: usize) -> bool {
        self.free[i / 64] & (1 << (i % 64)) != 0
    }

    fn alloc_one(&mut self) -> Option<usize> {
        for n in 0..WORDS {
            let w = (self.next / 64 + n) % WORDS;
            if self.free[w] != 0 {
                let i = w * 64 + self.free[w].trailing_zeros() as usize;
                self.set_free(i, false);
                self.next = i;
                return Some(i);
            }
        }
        None
    }

    /// The lowest run of `count` free frames (first fit). Whole words are skipped or
    /// taken 64 frames at a time; only words with both free and used frames are looked
    /// at bit by bit.
    fn alloc_run(&mut self, count: usize) -> Option<usize> {
        if count == 0 {
            return None;
        }
        let mut run = 0;
        let mut i = 0;
        while i < FRAMES {
            let word = self.free[i / 64];
            if i % 64 == 0 && word == 0 {
                run = 0;
                i += 64;
                continue;
            }
            if i % 64 == 0 && word == u64::MAX && run + 64 < count {
                run += 64;
                i += 64;
                continue;
            }
            if self.is_free(i) {
                run += 1;
                if run == count {
                    let start = i + 1 - count;
                    for j in start..=i {
                        self.set_free(j, false);
                    }
                    return Some(start);
                }
            } else {
                run = 0;
            }
            i += 1;
        }
        None
    }
}

fn index(addr: u64) -> usize {
    (addr / FRAME) as usize
}

/// Marks `[start, end)` (rounded inwards to whole frames) as usable RAM.
pub fn add_ram(start: u64, end: u64) {
    let start = start.div_ceil(FRAME) * FRAME;
    let end = end.min(MAX_PHYS) / FRAME * FRAME;
    let mut f = FRAMES_ALLOC.lock();
    let mut a = start;
    while a < end {
        if !f.is_free(index(a)) {
            f.total += 1;
        }
        f.set_free(index(a), true);
        a += FRAME;
    }
}

/// Takes `[start, end)` (rounded outwards) out of the free pool for good.
pub fn reserve(start: u64, end: u64) {
    let start = start / FRAME * FRAME;
    let end = end.min(MAX_PHYS).div_ceil(FRAME) * FRAME;
    let mut f = FRAMES_ALLOC.lock();
    let mut a = start;
    while a < end {
        if f.is_free(index(a)) {
            f.total -= 1;
        }
        f.set_free(index(a), false);
        a += FRAME;
    }
}

/// One frame, zeroed.
pub fn alloc_zeroed() -> Option<PhysAddr> {
    let i = FRAMES_ALLOC.lock().alloc_one()?;
    let addr = i as u64 * FRAME;
    // SAFETY: the frame is RAM, identity-mapped, and now exclusively ours.
    unsafe { core::ptr::write_bytes(addr as *mut u8, 0, FRAME as usize) };
    Some(PhysAddr::new(addr))
}

/// `count` physically contiguous frames (not zeroed).
pub fn alloc_contiguous(count: usize) -> Option<PhysAddr> {
    let i = FRAMES_ALLOC.lock().alloc_run(count)?;
    Some(PhysAddr::new(i as u64 * FRAME))
}

/// `count` physically contiguous frames, only if at least `keep` frames stay free after
/// (domain memory never takes the kernel's reserve).
pub fn alloc_contiguous_keeping(count: usize, keep: usize) -> Option<PhysAddr> {
    let mut f = FRAMES_ALLOC.lock();
    if f.free_count < count.checked_add(keep)? {
        return None;
    }
    let i = f.alloc_run(count)?;
    Some(PhysAddr::new(i as u64 * FRAME))
}

pub fn free(addr: PhysAddr) {
    let i = index(addr.as_u64());
    let mut f = FRAMES_ALLOC.lock();
    assert!(!f.is_free(i), "double free of frame {:#x}", addr.as_u64());
    f.set_free(i, true);
}

#[derive(Clone, Copy, Debug)]
pub struct FrameStats {
    pub total: usize,
    pub free: usize,
}

pub fn stats() -> FrameStats {
    let f = FRAMES_ALLOC.lock();
    FrameStats { total: f.total, free: f.free_count }
}

impl x86_64::structures::paging::FrameDeallocator<Size4KiB> for PageTableFrames {
    /// The mapper hands back page-table frames no table references any more.
    unsafe fn deallocate_frame(&mut self, frame: PhysFrame<Size4KiB>) {
        free(frame.start_address());
    }
}

/// Adapter for the `x86_64` crate's mapper (page-table frames come out zeroed).
pub struct PageTableFrames;

// SAFETY: every frame returned is unused RAM, zeroed, owned by the caller from now on.
unsafe impl FrameAllocator<Size4KiB> for PageTableFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        alloc_zeroed().map(PhysFrame::containing_address)
    }
}
