//! Places a validated domain image in memory.
//!
//! `frond-elfload` parses and validates the ELF (headers, bounds, overlaps, relocation
//! types, the rustc version and entry signature) into a plan; this module only executes it:
//! one physically contiguous run of frames holds the image (written through the identity
//! map, so relocations never straddle discontiguous frames), and the slot's window in the
//! domain region maps it with each segment's permissions — text read+execute, rodata
//! read-only, data read-write no-execute; gaps stay unmapped.

use crate::mem::frame::{self, FRAME};
use crate::mem::paging::{self, Perm, DOMAIN_REGION, DOMAIN_WINDOW};
use alloc::format;
use alloc::string::String;
use frond_elfload::{Expect, Plan};
use x86_64::PhysAddr;

/// A loaded image: where it lives and how to give its memory back.
pub struct Image {
    pub base: u64,
    pub span: u64,
    pub entry: u64,
    /// The crate name from the image's ABI record (for the profiler's symbol lookup).
    pub crate_name: String,
    phys: u64,
}

pub fn window(slot: usize) -> u64 {
    DOMAIN_REGION + slot as u64 * DOMAIN_WINDOW
}

pub fn load(slot: usize, bytes: &[u8], entry_sig: u64) -> Result<Image, String> {
    let expect = Expect { rustc: crate::RUSTC_VERSION, entry_sig, max_span: DOMAIN_WINDOW };
    let plan: Plan = frond_elfload::plan(bytes, &expect).map_err(|e| format!("{e}"))?;
    let pages = plan.span / FRAME;
    let phys = frame::alloc_contiguous(pages as usize)
        .ok_or_else(|| format!("no {} KiB of contiguous memory for the image", plan.span / 1024))?
        .as_u64();
    let base = window(slot);
    // SAFETY: the run was just taken from the frame allocator: identity-mapped RAM that
    // nothing else references.
    let mem = unsafe { core::slice::from_raw_parts_mut(phys as *mut u8, plan.span as usize) };
    mem.fill(0);
    for s in &plan.segments {
        let (v, o, n) = (s.vaddr as usize, s.file_offset as usize, s.file_size as usize);
        mem[v..v + n].copy_from_slice(&bytes[o..o + n]);
    }
    for r in &plan.relocs {
        let o = r.offset as usize;
        mem[o..o + 8].copy_from_slice(&(base + r.addend).to_le_bytes());
    }
    let image = Image { base, span: plan.span, entry: base + plan.entry, crate_name: plan.name.clone(), phys };
    log::debug!("domain image `{}` at {base:#x}: {} KiB, {} relocations", plan.name, plan.span / 1024, plan.relocs.len());
    for s in &plan.segments {
        let first = s.vaddr / FRAME * FRAME;
        let end = (s.vaddr + s.mem_size).div_ceil(FRAME) * FRAME;
        let perm = match s.perm {
            frond_elfload::Perm::Read => Perm::Read,
            frond_elfload::Perm::ReadWrite => Perm::ReadWrite,
            frond_elfload::Perm::ReadExec => Perm::ReadExec,
        };
        if let Err(e) = paging::map_range(base + first, phys + first, (end - first) / FRAME, perm) {
            unload(&image);
            return Err(format!("mapping the image: {e}"));
        }
    }
    Ok(image)
}

/// Unmaps the image and frees its frames.
pub fn unload(image: &Image) {
    paging::unmap_range(image.base, image.span);
    let mut a = image.phys;
    while a < image.phys + image.span {
        frame::free(PhysAddr::new(a));
        a += FRAME;
    }
}
