//! Fuzz target `elf`: the domain-image loader (`frond-elfload`).
//!
//! The input is an ELF image. `read_abi` and `plan` must return (never panic), and a plan
//! `plan` accepts must satisfy every promise of the crate's documentation: segment file
//! ranges inside the image, memory ranges, entry and relocations inside the span, the
//! span page-rounded and within `max_span`, page ranges disjoint, no writable and
//! executable segment, the entry in an executable segment, each relocation's 8 target
//! bytes in one writable segment and its addend within the span. The plan is then
//! executed against a buffer of `span` bytes, as the kernel would, with plain indexing:
//! any range the checks let through that is out of bounds panics here.
//!
//! Seeds: the hand-assembled image of the crate's host tests (`tests/support`), written
//! by `init`, and a few variants of it.

#![no_main]

use frond_elfload::{plan, read_abi, Expect, Perm, Plan, PAGE_SIZE};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
#[path = "../../../kernel/elfload/tests/support/mod.rs"]
mod support;

/// The largest span the target executes a plan for (bigger accepted plans are checked
/// but not copied).
const EXEC_SPAN: u64 = 1 << 20;

fn expect() -> Expect<'static> {
    Expect { rustc: support::RUSTC, entry_sig: rref::fingerprint::str(support::ENTRY_SIG), max_span: 16 << 20 }
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use support::*;
    let mut out = vec![("valid", TestImage::valid().to_bytes())];
    let mut no_relocs = TestImage::valid();
    no_relocs.dynamic = vec![(DT_NULL, 0)];
    out.push(("no-relocs", no_relocs.to_bytes()));
    let mut three = TestImage::valid();
    three.phdrs.push(Phdr { p_type: PT_LOAD, flags: PF_R, offset: 0x1100, vaddr: 0x3000, filesz: 0x98, memsz: 0x98, align: 0x1000 });
    out.push(("three-segments", three.to_bytes()));
    out
}

fn check(p: &Plan, image: &[u8], e: &Expect) {
    let len = image.len() as u64;
    assert!(p.span <= e.max_span, "span beyond max_span");
    assert_eq!(p.span % PAGE_SIZE, 0, "span not page-rounded");
    assert!(!p.segments.is_empty());
    let mut pages: Vec<(u64, u64)> = Vec::new();
    for s in &p.segments {
        assert!(s.file_size <= s.mem_size);
        assert!(s.mem_size > 0);
        assert!(s.file_offset.checked_add(s.file_size).is_some_and(|end| end <= len), "segment file range outside the image");
        let end = s.vaddr.checked_add(s.mem_size).expect("segment end overflows");
        assert!(end <= p.span, "segment beyond span");
        let (lo, hi) = (s.vaddr & !(PAGE_SIZE - 1), end.div_ceil(PAGE_SIZE) * PAGE_SIZE);
        assert!(pages.iter().all(|&(a, b)| hi <= a || b <= lo), "segments share a page");
        pages.push((lo, hi));
    }
    let inside = |perm: Perm, at: u64, n: u64| {
        p.segments.iter().any(|s| s.perm == perm && at >= s.vaddr && at.checked_add(n).is_some_and(|e| e <= s.vaddr + s.mem_size))
    };
    assert!(inside(Perm::ReadExec, p.entry, 1), "entry outside an executable segment");
    for r in &p.relocs {
        assert!(inside(Perm::ReadWrite, r.offset, 8), "relocation target not writable");
        assert!(r.addend <= p.span, "addend outside the span");
    }
    // Execute the plan as the kernel does (copy, zero, relocate) with plain indexing.
    if p.span <= EXEC_SPAN {
        let mut mem = vec![0u8; p.span as usize];
        let base = 0x4000_0000u64;
        for s in &p.segments {
            let (v, fo, fs, ms) = (s.vaddr as usize, s.file_offset as usize, s.file_size as usize, s.mem_size as usize);
            mem[v..v + fs].copy_from_slice(&image[fo..fo + fs]);
            mem[v + fs..v + ms].fill(0);
        }
        for r in &p.relocs {
            let at = r.offset as usize;
            mem[at..at + 8].copy_from_slice(&(base + r.addend).to_le_bytes());
        }
    }
}

fuzz_target!(
    init: {
        frond_fuzz::write_seeds(&seeds());
    },
    |data: &[u8]| {
        let e = expect();
        match read_abi(data) {
            Ok(rec) => {
                let _ = rec.rustc_bytes();
                let _ = rec.name_bytes();
                assert_eq!(frond_elfload::AbiRecord::from_bytes(&rec.to_bytes()), Some(rec));
            }
            Err(err) => assert!(!err.to_string().is_empty()),
        }
        match plan(data, &e) {
            Ok(p) => {
                check(&p, data, &e);
                // The plan is a function of the image: a second call agrees.
                assert_eq!(plan(data, &e).as_ref(), Ok(&p));
            }
            Err(err) => assert!(!err.to_string().is_empty()),
        }
    }
);
