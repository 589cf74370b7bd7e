//! Kernel page tables, built once at boot with the `x86_64` crate.
//!
//! Layout (one address space for everything):
//! * `[4 KiB, 2 MiB-aligned end of the kernel)`: 4 KiB pages. Page 0 is unmapped (null
//!   dereferences fault); kernel text is read+execute, rodata read-only, data/bss read-write
//!   no-execute; the page under the boot stack is the boot stack's guard and stays unmapped.
//! * RAM above that, and firmware regions (ACPI, reserved) lying below the top of RAM:
//!   identity-mapped with 2 MiB pages, read-write, no-execute. A buffer's virtual address is
//!   its physical address, which DMA relies on.
//! * Device MMIO: 4 KiB uncached identity pages, mapped on request ([`map_mmio`]).
//! * Stacks: a separate region at [`STACK_REGION`]; each stack owns a 1 MiB slot whose lowest
//!   page is never mapped, so running off the end of any stack faults on a guard page.

use super::frame::{self, PageTableFrames};
use crate::arch::irq::IrqMutex;
use crate::pvh::{BootInfo, MemType};
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::mapper::{CleanUp, MapToError, Translate};
use x86_64::structures::paging::page::PageRangeInclusive;
use x86_64::structures::paging::{
    Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as F, PhysFrame, Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

pub const STACK_REGION: u64 = 0xffff_c000_0000_0000;
/// Domain images: one [`DOMAIN_WINDOW`] per domain slot.
pub const DOMAIN_REGION: u64 = 0xffff_d000_0000_0000;
/// Address space per domain slot: the largest image the loader accepts (64 MiB).
pub const DOMAIN_WINDOW: u64 = 64 << 20;
const STACK_SLOT: u64 = 1 << 20;
const STACK_SLOTS: usize = 4096;
const PAGE: u64 = 4096;
const HUGE: u64 = 2 << 20;

static MAPPER: IrqMutex<Option<OffsetPageTable<'static>>> = IrqMutex::new(None);
static SLOTS: IrqMutex<[u64; STACK_SLOTS / 64]> = IrqMutex::new([0; STACK_SLOTS / 64]);

unsafe extern "C" {
    static __text_start: u8;
    static __rodata_start: u8;
    static __data_start: u8;
    static __kernel_end: u8;
    static boot_stack_guard: u8;
    static boot_stack_bottom: u8;
    static boot_stack_top: u8;
}

fn sym(s: &u8) -> u64 {
    s as *const u8 as u64
}

pub struct KernelLayout {
    pub text: u64,
    pub rodata: u64,
    pub data: u64,
    pub end: u64,
    pub boot_guard: u64,
    pub boot_stack: (u64, u64),
}

pub fn layout() -> KernelLayout {
    // SAFETY: linker-script symbols; only their addresses are used.
    unsafe {
        KernelLayout {
            text: sym(&__text_start),
            rodata: sym(&__rodata_start),
            data: sym(&__data_start),
            end: sym(&__kernel_end),
            boot_guard: sym(&boot_stack_guard),
            boot_stack: (sym(&boot_stack_bottom), sym(&boot_stack_top)),
        }
    }
}

fn map4k(m: &mut OffsetPageTable, addr: u64, phys: u64, flags: F) -> Result<(), MapToError<Size4KiB>> {
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(addr));
    let frame = PhysFrame::containing_address(PhysAddr::new(phys));
    // SAFETY: the new tables are not active yet (boot) or `addr` is a fresh stack/MMIO page;
    // no existing reference aliases the mapping being created.
    unsafe { m.map_to(page, frame, flags, &mut PageTableFrames)?.ignore() };
    Ok(())
}

/// Builds the kernel's page tables and switches to them.
pub fn init(info: &BootInfo) {
    let l = layout();
    let l4_phys = frame::alloc_zeroed().expect("no frame for the PML4");
    // SAFETY: the PML4 frame is fresh, zeroed and identity-mapped; physical memory is
    // identity-mapped (offset 0) under both the boot tables and the tables being built.
    let mut m = unsafe {
        OffsetPageTable::new(&mut *(l4_phys.as_u64() as *mut PageTable), VirtAddr::new(0))
    };
    let rw = F::PRESENT | F::WRITABLE | F::NO_EXECUTE;
    let low_end = l.end.div_ceil(HUGE) * HUGE;
    let mut a = PAGE;
    while a < low_end {
        let flags = if a == l.boot_guard {
            None
        } else if a >= l.text && a < l.rodata {
            Some(F::PRESENT)
        } else if a >= l.rodata && a < l.data {
            Some(F::PRESENT | F::NO_EXECUTE)
        } else {
            Some(rw)
        };
        if let Some(flags) = flags {
            map4k(&mut m, a, a, flags).expect("mapping kernel image");
        }
        a += PAGE;
    }

    let ram_top = info
        .memmap()
        .iter()
        .filter(|r| r.kind == MemType::Ram)
        .map(|r| r.end.min(frame::MAX_PHYS))
        .max()
        .unwrap_or(low_end);
    for r in info.memmap() {
        let wanted = match r.kind {
            MemType::Ram => true,
            MemType::AcpiReclaimable | MemType::AcpiNvs | MemType::Reserved => r.start < ram_top,
            _ => false,
        };
        if !wanted {
            continue;
        }
        let mut c = (r.start / HUGE * HUGE).max(low_end);
        let end = r.end.min(frame::MAX_PHYS);
        while c < end {
            let page = Page::<Size2MiB>::containing_address(VirtAddr::new(c));
            let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(c));
            // SAFETY: identity mapping of RAM/firmware memory in tables not yet active.
            match unsafe { m.map_to(page, frame, rw | F::HUGE_PAGE, &mut PageTableFrames) } {
                Ok(f) => f.ignore(),
                Err(MapToError::PageAlreadyMapped(_)) => {}
                Err(e) => panic!("identity-mapping {c:#x}: {e:?}"),
            }
            c += HUGE;
        }
    }
    // SAFETY: the new tables map the running code (text), stack (boot stack in bss), the
    // data being used, and all RAM at the same addresses as before, so execution continues.
    unsafe { Cr3::write(PhysFrame::containing_address(l4_phys), Cr3Flags::empty()) };
    *MAPPER.lock() = Some(m);
}

/// Maps `[phys, phys+len)` uncached at the same virtual address (device registers).
/// Fails (leaving the pages mapped so far in place: MMIO mappings are never removed) if a
/// page table cannot be allocated or the range is not identity-mappable.
pub fn map_mmio(phys: u64, len: u64) -> Result<(), alloc::string::String> {
    let mut g = MAPPER.lock();
    let m = g.as_mut().expect("paging not initialised");
    let mut a = phys / PAGE * PAGE;
    let end = phys.checked_add(len).ok_or_else(|| alloc::format!("MMIO range {phys:#x}+{len:#x} overflows"))?;
    while a < end {
        let flags = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::NO_CACHE | F::WRITE_THROUGH;
        match map4k(m, a, a, flags) {
            Ok(()) | Err(MapToError::PageAlreadyMapped(_)) => {}
            Err(e) => return Err(alloc::format!("mapping MMIO page {a:#x}: {e:?}")),
        }
        x86_64::instructions::tlb::flush(VirtAddr::new(a));
        a += PAGE;
    }
    Ok(())
}

/// Page permissions for [`map_range`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    Read,
    ReadWrite,
    ReadExec,
}

/// Maps `pages` pages at `va` to the physical run starting at `phys` with `perm`
/// (W^X: writable pages are never executable).
pub fn map_range(va: u64, phys: u64, pages: u64, perm: Perm) -> Result<(), &'static str> {
    let flags = match perm {
        Perm::Read => F::PRESENT | F::NO_EXECUTE,
        Perm::ReadWrite => F::PRESENT | F::WRITABLE | F::NO_EXECUTE,
        Perm::ReadExec => F::PRESENT,
    };
    let mut g = MAPPER.lock();
    let m = g.as_mut().expect("paging not initialised");
    for i in 0..pages {
        map4k(m, va + i * PAGE, phys + i * PAGE, flags).map_err(|e| match e {
            MapToError::FrameAllocationFailed => "out of frames for page tables",
            MapToError::PageAlreadyMapped(_) => "page already mapped",
            MapToError::ParentEntryHugePage => "address inside a huge page",
        })?;
    }
    Ok(())
}

/// Unmaps every mapped page in `[va, va+len)` (the frames are the caller's to free) and
/// frees page tables left empty, so mapping and unmapping leaves the frame count flat.
pub fn unmap_range(va: u64, len: u64) {
    let mut g = MAPPER.lock();
    let m = g.as_mut().expect("paging not initialised");
    let mut a = va;
    while a < va + len {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(a));
        if let Ok((_, flush)) = m.unmap(page) {
            flush.flush();
        }
        a += PAGE;
    }
    let range = PageRangeInclusive {
        start: Page::containing_address(VirtAddr::new(va)),
        end: Page::containing_address(VirtAddr::new(va + len - 1)),
    };
    // SAFETY: the range lies in the domain region, whose page tables are used by no other
    // mapping; tables left empty there are unreachable once removed.
    unsafe { m.clean_up_addr_range(range, &mut PageTableFrames) };
}

/// Whether `addr` is mapped; `None` if the page tables are busy (fault path: don't wait).
pub fn is_mapped(addr: u64) -> Option<bool> {
    let g = MAPPER.try_lock()?;
    let m = g.as_ref()?;
    Some(m.translate_addr(VirtAddr::new(addr)).is_some())
}

/// A kernel stack in its own slot of the stack region, with an unmapped guard page below.
pub struct KStack {
    slot: usize,
    pages: usize,
}

impl KStack {
    pub fn bottom(&self) -> u64 {
        slot_base(self.slot) + PAGE
    }
    pub fn top(&self) -> u64 {
        self.bottom() + self.pages as u64 * PAGE
    }
    pub fn size(&self) -> usize {
        self.pages * PAGE as usize
    }
}

fn slot_base(slot: usize) -> u64 {
    STACK_REGION + slot as u64 * STACK_SLOT
}

/// Allocates a stack of `size` bytes (rounded up to pages, at most 1 MiB - 4 KiB).
pub fn alloc_stack(size: usize) -> Option<KStack> {
    let pages = size.div_ceil(PAGE as usize);
    assert!(pages >= 1 && (pages as u64 + 1) * PAGE <= STACK_SLOT, "bad stack size {size}");
    let slot = {
        let mut s = SLOTS.lock();
        let (w, bits) = s.iter().enumerate().find(|(_, w)| **w != u64::MAX)?;
        let b = bits.trailing_ones() as usize;
        s[w] |= 1 << b;
        w * 64 + b
    };
    let stack = KStack { slot, pages };
    let mut g = MAPPER.lock();
    let m = g.as_mut().expect("paging not initialised");
    for i in 0..pages {
        let Some(frame) = frame::alloc_zeroed() else {
            drop(g);
            drop(KStack { slot, pages: i }); // unmaps what was mapped
            return None;
        };
        let va = stack.bottom() + i as u64 * PAGE;
        map4k(m, va, frame.as_u64(), F::PRESENT | F::WRITABLE | F::NO_EXECUTE).ok()?;
    }
    Some(stack)
}

impl Drop for KStack {
    fn drop(&mut self) {
        let mut g = MAPPER.lock();
        let m = g.as_mut().expect("paging not initialised");
        for i in 0..self.pages {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(self.bottom() + i as u64 * PAGE));
            if let Ok((frame, flush)) = m.unmap(page) {
                flush.flush();
                frame::free(frame.start_address());
            }
        }
        drop(g);
        SLOTS.lock()[self.slot / 64] &= !(1 << (self.slot % 64));
    }
}

/// What a faulting address means with respect to stacks.
pub enum StackHit {
    /// The guard page under the stack in slot `n`.
    Guard(usize),
    /// The boot stack's guard page.
    BootGuard,
}

pub fn classify(addr: u64) -> Option<StackHit> {
    let l = layout();
    if addr >= l.boot_guard && addr < l.boot_guard + PAGE {
        return Some(StackHit::BootGuard);
    }
    if addr >= STACK_REGION && addr < STACK_REGION + STACK_SLOTS as u64 * STACK_SLOT {
        let slot = ((addr - STACK_REGION) / STACK_SLOT) as usize;
        if addr - slot_base(slot) < PAGE {
            return Some(StackHit::Guard(slot));
        }
    }
    None
}

impl KStack {
    pub fn slot(&self) -> usize {
        self.slot
    }
}
