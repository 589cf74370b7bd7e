//! Host tests of `frond-elfload`: a hand-assembled valid image, one mutation per rejection,
//! truncation at every length, random byte flips, and (when `FROND_DOMAIN_ELF` is set) a
//! real domain image.

mod support;

use frond_elfload::{
    plan, read_abi, AbiRecord, Expect, LoadError, Perm, Plan, Reloc, Segment,
    ABI_RECORD_SIZE,
};
use support::*;

const MAX_SPAN: u64 = 1 << 30;

fn expect() -> Expect<'static> {
    Expect {
        rustc: RUSTC,
        entry_sig: rref::fingerprint::str(ENTRY_SIG),
        max_span: MAX_SPAN,
    }
}

fn plan_img(img: &TestImage) -> Result<Plan, LoadError> {
    plan(&img.to_bytes(), &expect())
}

/// Builds the valid image, applies `f`, and returns the error `plan` reports.
fn reject(f: impl FnOnce(&mut TestImage)) -> LoadError {
    let mut img = TestImage::valid();
    f(&mut img);
    let err = plan_img(&img).expect_err("the mutated image was accepted");
    assert!(!err.to_string().is_empty());
    err
}

// ---- the valid image ----------------------------------------------------------------------

#[test]
fn valid_image_plans_correctly() {
    let p = plan_img(&TestImage::valid()).expect("valid image");
    assert_eq!(p.span, 0x3000);
    assert_eq!(p.entry, CODE_OFF);
    assert_eq!(p.name, NAME);
    assert_eq!(
        p.segments,
        [
            Segment {
                vaddr: 0,
                mem_size: 0x310,
                file_offset: 0,
                file_size: 0x310,
                perm: Perm::ReadExec
            },
            Segment {
                vaddr: 0x1000,
                mem_size: 0x1800,
                file_offset: 0x1000,
                file_size: 0xc0,
                perm: Perm::ReadWrite
            },
        ]
    );
    assert_eq!(
        p.relocs,
        [
            Reloc {
                offset: DATA_OFF,
                addend: CODE_OFF
            },
            Reloc {
                offset: DATA_OFF + 8,
                addend: DATA_OFF + 0x20
            },
            Reloc {
                offset: 0x2000,
                addend: 0x27f8
            },
        ]
    );
}

#[test]
fn read_abi_returns_the_record() {
    let img = TestImage::valid();
    assert_eq!(read_abi(&img.to_bytes()), Ok(img.abi));
}

#[test]
fn span_equal_to_max_is_accepted() {
    let bytes = TestImage::valid().to_bytes();
    assert!(plan(
        &bytes,
        &Expect {
            max_span: 0x3000,
            ..expect()
        }
    )
    .is_ok());
}

#[test]
fn read_only_segment_and_no_relocations_plan() {
    let mut img = TestImage::valid();
    img.phdrs.push(Phdr {
        p_type: PT_LOAD,
        flags: PF_R,
        offset: 0x3000,
        vaddr: 0x3000,
        filesz: 0,
        memsz: 0x10,
        align: 0x1000,
    });
    img.phdrs[3].offset = 0x1000; // file_size 0: any in-image offset, same page offset
    img.dynamic.retain(|d| d.0 != DT_RELA && d.0 != DT_RELASZ);
    let p = plan_img(&img).expect("valid image");
    assert_eq!(p.segments[2].perm, Perm::Read);
    assert_eq!(p.span, 0x4000);
    assert!(p.relocs.is_empty());
}

// ---- ABI record -------------------------------------------------------------------------------

#[test]
fn abi_record_layout_matches_repr_c() {
    use core::mem::{offset_of, size_of};
    assert_eq!(size_of::<AbiRecord>(), ABI_RECORD_SIZE);
    assert_eq!(offset_of!(AbiRecord, rustc_len), 12);
    assert_eq!(offset_of!(AbiRecord, entry_sig), 112);
    let rec = AbiRecord::new(RUSTC, 0x1122_3344_5566_7788, NAME);
    let b = rec.to_bytes();
    assert_eq!(&b[0..8], b"FRONDDOM");
    assert_eq!(&b[8..12], &1u32.to_le_bytes());
    assert_eq!(&b[12..16], &(RUSTC.len() as u32).to_le_bytes());
    assert_eq!(&b[16..16 + RUSTC.len()], RUSTC.as_bytes());
    assert_eq!(&b[112..120], &0x1122_3344_5566_7788u64.to_le_bytes());
    assert_eq!(&b[120..127], NAME.as_bytes());
    assert_eq!(AbiRecord::from_bytes(&b), Some(rec));
    assert_eq!(AbiRecord::from_bytes(&b[..ABI_RECORD_SIZE - 1]), None);
}

#[test]
fn abi_record_new_is_const_and_truncates_at_char_boundaries() {
    static REC: AbiRecord = AbiRecord::new("rustc x", rref::fingerprint::str("sig"), "dom");
    assert_eq!(REC.rustc_bytes(), b"rustc x");
    assert_eq!(REC.name_bytes(), b"dom");
    let long = "x".repeat(200);
    let rec = AbiRecord::new(&long, 0, &long);
    assert_eq!(
        (
            rec.rustc_len,
            rec.rustc_bytes().len(),
            rec.name_bytes().len()
        ),
        (96, 96, 32)
    );
    // "é" is 2 bytes: 31 ASCII bytes + "é" would end at byte 33, so it is dropped whole.
    let name = format!("{}é", "a".repeat(31));
    let rec = AbiRecord::new("r", 0, &name);
    assert_eq!(rec.name_bytes(), "a".repeat(31).as_bytes());
}

// ---- ELF header ------------------------------------------------------------------------------

#[test]
fn rejects_not_elf() {
    assert_eq!(
        reject(|i| i.ident[1] = b'X'),
        LoadError::NotElf {
            magic: [0x7f, b'X', b'L', b'F']
        }
    );
    assert!(matches!(
        plan(b"#!/bin/sh", &expect()),
        Err(LoadError::NotElf { .. })
    ));
}

#[test]
fn rejects_wrong_class() {
    assert_eq!(
        reject(|i| i.ident[4] = 1),
        LoadError::WrongClass { class: 1 }
    );
    assert_eq!(
        reject(|i| i.ident[4] = 3),
        LoadError::WrongClass { class: 3 }
    );
}

#[test]
fn rejects_wrong_endianness() {
    assert_eq!(
        reject(|i| i.ident[5] = 2),
        LoadError::WrongEndianness { data: 2 }
    );
}

#[test]
fn rejects_wrong_machine() {
    assert_eq!(
        reject(|i| i.e_machine = 3),
        LoadError::WrongMachine { machine: 3 }
    );
}

#[test]
fn rejects_wrong_type() {
    assert_eq!(reject(|i| i.e_type = 2), LoadError::WrongType { e_type: 2 });
}

#[test]
fn rejects_extended_section_numbering() {
    // e_shnum = 0 with e_shoff != 0 means "count in section 0": not supported.
    assert!(matches!(
        reject(|i| i.shdrs.clear()),
        LoadError::Malformed {
            what: "section headers",
            ..
        }
    ));
}

#[test]
fn rejects_wrong_header_entry_size() {
    assert!(matches!(
        reject(|i| i.phentsize = 32),
        LoadError::Malformed {
            what: "program headers",
            ..
        }
    ));
}

// ---- truncation ------------------------------------------------------------------------------

fn truncated_what(err: LoadError) -> &'static str {
    match err {
        LoadError::Truncated { what, .. } => what,
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn rejects_truncated_elf_header() {
    let bytes = TestImage::valid().to_bytes();
    let err = plan(&bytes[..40], &expect()).unwrap_err();
    assert_eq!(
        err,
        LoadError::Truncated {
            what: "ELF header",
            end: 64,
            len: 40
        }
    );
}

#[test]
fn rejects_truncated_program_headers() {
    let bytes = TestImage::valid().to_bytes();
    assert_eq!(
        truncated_what(plan(&bytes[..0x80], &expect()).unwrap_err()),
        "program headers"
    );
}

#[test]
fn rejects_truncated_section_headers() {
    let bytes = TestImage::valid().to_bytes();
    let err = plan(&bytes[..bytes.len() - 1], &expect()).unwrap_err();
    assert_eq!(
        err,
        LoadError::Truncated {
            what: "section headers",
            end: 0x1400,
            len: 0x13ff
        }
    );
}

#[test]
fn rejects_truncated_segment() {
    // The data segment claims 0x1800 file bytes from 0x1000: past the 0x1400-byte image.
    let err = reject(|i| i.phdrs[1].filesz = 0x1800);
    assert_eq!(
        err,
        LoadError::Truncated {
            what: "segment file bytes",
            end: 0x2800,
            len: 0x1400
        }
    );
}

#[test]
fn rejects_truncated_dynamic_section() {
    assert_eq!(
        truncated_what(reject(|i| i.phdrs[2].filesz = 0x1000)),
        "dynamic section"
    );
}

#[test]
fn rejects_truncated_abi_section() {
    assert_eq!(
        truncated_what(reject(|i| i.section(".frond_abi").offset = 0x1380)),
        "ABI section"
    );
}

#[test]
fn rejects_relocation_table_outside_file_bytes() {
    // Inside the data segment's memory but beyond its file bytes (the bss tail).
    let err = reject(|i| i.set_dyn(DT_RELA, 0x2000));
    assert_eq!(
        err,
        LoadError::RelocTableNotInFile {
            vaddr: 0x2000,
            size: 72
        }
    );
    let err = reject(|i| i.set_dyn(DT_RELA, 0x30_0000));
    assert_eq!(
        err,
        LoadError::RelocTableNotInFile {
            vaddr: 0x30_0000,
            size: 72
        }
    );
}

#[test]
fn truncation_at_every_length_errors_without_panicking() {
    let bytes = TestImage::valid().to_bytes();
    for len in 0..bytes.len() {
        assert!(
            plan(&bytes[..len], &expect()).is_err(),
            "accepted a {len}-byte prefix"
        );
        assert!(
            read_abi(&bytes[..len]).is_err(),
            "read_abi accepted a {len}-byte prefix"
        );
    }
    assert!(plan(&bytes, &expect()).is_ok());
}

// ---- segments --------------------------------------------------------------------------------

#[test]
fn rejects_no_load_segment() {
    assert_eq!(
        reject(|i| i
            .phdrs
            .iter_mut()
            .filter(|p| p.p_type == PT_LOAD)
            .for_each(|p| p.p_type = 0)),
        LoadError::NoLoadSegment
    );
    assert_eq!(reject(|i| i.phoff = 0), LoadError::NoLoadSegment);
}

#[test]
fn rejects_file_size_above_mem_size() {
    let err = reject(|i| i.phdrs[1].filesz = 0x1801);
    assert_eq!(
        err,
        LoadError::FileLargerThanMemory {
            index: 1,
            file_size: 0x1801,
            mem_size: 0x1800
        }
    );
}

#[test]
fn rejects_address_overflow() {
    let err = reject(|i| i.phdrs[1].memsz = u64::MAX - 0x100);
    assert!(matches!(
        err,
        LoadError::AddressOverflow {
            what: "segment memory range",
            base: 0x1000,
            ..
        }
    ));
    // Page rounding of the end overflows too.
    let err = reject(|i| i.phdrs[1].memsz = u64::MAX - 0x1000 - 0x10);
    assert!(matches!(
        err,
        LoadError::AddressOverflow {
            what: "segment memory range",
            ..
        }
    ));
    let err = reject(|i| {
        i.phdrs[1].offset = u64::MAX - 0x3f; // + 0xc0 file bytes wraps
        i.phdrs[1].vaddr = 0x1fc0; // same offset within the page
    });
    assert!(matches!(
        err,
        LoadError::AddressOverflow {
            what: "segment file range",
            ..
        }
    ));
}

#[test]
fn rejects_segment_outside_image() {
    let err = reject(|i| i.phdrs[1].offset = 0x10_0000);
    assert_eq!(
        err,
        LoadError::SegmentOutsideImage {
            index: 1,
            offset: 0x10_0000,
            size: 0xc0,
            len: 0x1400
        }
    );
}

#[test]
fn rejects_overlapping_segments() {
    // Byte ranges 0..0x310 and 0x800..0x2000 are disjoint but share the page at 0.
    let err = reject(|i| {
        i.phdrs[1].vaddr = 0x800;
        i.phdrs[1].offset = 0x800;
    });
    assert_eq!(
        err,
        LoadError::SegmentsOverlap {
            first: 0,
            second: 1,
            page: 0
        }
    );
    // Fully overlapping.
    let err = reject(|i| i.phdrs[0].memsz = 0x1001);
    assert_eq!(
        err,
        LoadError::SegmentsOverlap {
            first: 0,
            second: 1,
            page: 0x1000
        }
    );
}

#[test]
fn rejects_writable_executable_segment() {
    assert_eq!(
        reject(|i| i.phdrs[1].flags |= PF_X),
        LoadError::WritableExecutable {
            index: 1,
            vaddr: 0x1000
        }
    );
}

#[test]
fn rejects_misaligned_segment() {
    let err = reject(|i| i.phdrs[1].vaddr = 0x1008);
    assert_eq!(
        err,
        LoadError::Misaligned {
            index: 1,
            vaddr: 0x1008,
            offset: 0x1000
        }
    );
    // With p_align below a page the kernel copies anyway: no alignment requirement.
    let mut img = TestImage::valid();
    img.phdrs[1].vaddr = 0x1008;
    img.phdrs[1].align = 8;
    img.relas.truncate(2);
    img.set_dyn(DT_RELASZ, 48);
    img.relas[0].offset += 8;
    img.relas[1].offset += 8;
    assert!(plan_img(&img).is_ok());
}

#[test]
fn rejects_span_above_max() {
    let bytes = TestImage::valid().to_bytes();
    let err = plan(
        &bytes,
        &Expect {
            max_span: 0x2fff,
            ..expect()
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        LoadError::SpanTooLarge {
            span: 0x3000,
            max: 0x2fff
        }
    );
}

#[test]
fn rejects_tls_segment() {
    let tls = Phdr {
        p_type: PT_TLS,
        flags: PF_R,
        offset: DATA_OFF,
        vaddr: DATA_OFF,
        filesz: 8,
        memsz: 16,
        align: 8,
    };
    assert_eq!(
        reject(|i| i.phdrs.push(tls)),
        LoadError::TlsUnsupported { index: 3 }
    );
}

#[test]
fn rejects_interp_segment() {
    let interp = Phdr {
        p_type: PT_INTERP,
        flags: PF_R,
        offset: CODE_OFF,
        vaddr: CODE_OFF,
        filesz: 4,
        memsz: 4,
        align: 1,
    };
    assert_eq!(
        reject(|i| i.phdrs.insert(0, interp)),
        LoadError::InterpUnsupported { index: 0 }
    );
}

#[test]
fn rejects_entry_outside_executable_segment() {
    assert_eq!(
        reject(|i| i.entry = DATA_OFF),
        LoadError::EntryNotExecutable { entry: DATA_OFF }
    );
    assert_eq!(
        reject(|i| i.entry = 0x310),
        LoadError::EntryNotExecutable { entry: 0x310 }
    );
}

// ---- relocations -----------------------------------------------------------------------------

#[test]
fn rejects_rel_relr_jmprel_tables() {
    for tag in [DT_REL, DT_RELR, DT_JMPREL] {
        assert_eq!(
            reject(|i| i.dynamic.insert(0, (tag, 0x200))),
            LoadError::UnsupportedRelocTable { tag }
        );
    }
}

#[test]
fn rejects_bad_relaent() {
    assert_eq!(
        reject(|i| i.set_dyn(DT_RELAENT, 16)),
        LoadError::BadRelaEnt { found: 16 }
    );
}

#[test]
fn rejects_non_relative_relocation() {
    let err = reject(|i| i.relas[1].r_type = R_X86_64_64);
    assert_eq!(
        err,
        LoadError::UnsupportedRelocType {
            index: 1,
            r_type: R_X86_64_64
        }
    );
}

#[test]
fn rejects_relocation_outside_writable_segment() {
    let err = reject(|i| i.relas[2].offset = CODE_OFF);
    assert_eq!(
        err,
        LoadError::RelocTargetNotWritable {
            index: 2,
            offset: CODE_OFF
        }
    );
    // The last 4 bytes of the data segment: the 8-byte target sticks out.
    let err = reject(|i| i.relas[0].offset = 0x27fc);
    assert_eq!(
        err,
        LoadError::RelocTargetNotWritable {
            index: 0,
            offset: 0x27fc
        }
    );
    let err = reject(|i| i.relas[0].offset = u64::MAX - 3);
    assert_eq!(
        err,
        LoadError::RelocTargetNotWritable {
            index: 0,
            offset: u64::MAX - 3
        }
    );
}

#[test]
fn rejects_relocation_addend_outside_span() {
    let err = reject(|i| i.relas[1].addend = -8);
    assert_eq!(
        err,
        LoadError::RelocAddendOutOfSpan {
            index: 1,
            addend: -8,
            span: 0x3000
        }
    );
    let err = reject(|i| i.relas[1].addend = 0x3001);
    assert_eq!(
        err,
        LoadError::RelocAddendOutOfSpan {
            index: 1,
            addend: 0x3001,
            span: 0x3000
        }
    );
}

#[test]
fn rejects_malformed_dynamic_section() {
    let err = reject(|i| i.set_dyn(DT_RELASZ, 50));
    assert!(matches!(
        err,
        LoadError::Malformed {
            what: "dynamic section",
            ..
        }
    ));
    let err = reject(|i| i.dynamic.retain(|d| d.0 != DT_RELAENT));
    assert!(matches!(
        err,
        LoadError::Malformed {
            what: "dynamic section",
            ..
        }
    ));
    let err = reject(|i| i.dynamic.retain(|d| d.0 != DT_RELASZ));
    assert!(matches!(
        err,
        LoadError::Malformed {
            what: "dynamic section",
            ..
        }
    ));
    // All 8 slots used and none is DT_NULL.
    let err = reject(|i| {
        i.dynamic.retain(|d| d.0 != DT_NULL);
        i.dynamic.resize(DYN_CAP, (DT_RELACOUNT, 3));
    });
    assert!(matches!(
        err,
        LoadError::Malformed {
            what: "dynamic section",
            ..
        }
    ));
}

// ---- ABI record checks -----------------------------------------------------------------------

#[test]
fn rejects_missing_abi_section() {
    assert_eq!(
        reject(|i| i.section(".frond_abi").name = ".frond_abj"),
        LoadError::MissingAbiSection
    );
    assert_eq!(reject(|i| i.shoff = 0), LoadError::MissingAbiSection);
}

#[test]
fn rejects_small_abi_section() {
    assert_eq!(
        reject(|i| i.section(".frond_abi").size = 100),
        LoadError::AbiSectionTooSmall { size: 100 }
    );
}

#[test]
fn rejects_bad_abi_magic() {
    let err = reject(|i| i.abi.magic[7] = b'X');
    assert_eq!(
        err,
        LoadError::BadAbiMagic {
            magic: *b"FRONDDOX"
        }
    );
}

#[test]
fn rejects_bad_abi_version() {
    assert_eq!(
        reject(|i| i.abi.version = 2),
        LoadError::BadAbiVersion {
            found: 2,
            expected: 1
        }
    );
}

#[test]
fn rejects_bad_rustc_len() {
    assert_eq!(
        reject(|i| i.abi.rustc_len = 97),
        LoadError::AbiRustcLen { len: 97 }
    );
}

#[test]
fn rejects_rustc_mismatch() {
    let bytes = TestImage::valid().to_bytes();
    let other = "rustc 1.94.0 (4a4ef493e 2026-03-02)";
    let err = plan(
        &bytes,
        &Expect {
            rustc: other,
            ..expect()
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        LoadError::RustcMismatch {
            found: RUSTC.into(),
            expected: other.into()
        }
    );
    let msg = err.to_string();
    assert!(msg.contains(RUSTC) && msg.contains(other), "{msg}");
    // A prefix of the right string is still a mismatch.
    let err = plan(
        &bytes,
        &Expect {
            rustc: "rustc 1.95.0",
            ..expect()
        },
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::RustcMismatch { .. }));
}

#[test]
fn rejects_entry_signature_mismatch() {
    let bytes = TestImage::valid().to_bytes();
    let want = rref::fingerprint::str("fn()");
    let err = plan(
        &bytes,
        &Expect {
            entry_sig: want,
            ..expect()
        },
    )
    .unwrap_err();
    let found = rref::fingerprint::str(ENTRY_SIG);
    assert_eq!(
        err,
        LoadError::EntrySigMismatch {
            found,
            expected: want
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{found:#018x}"))
            && msg.contains(&format!("{want:#018x}"))
            && msg.contains("interface fingerprint"),
        "{msg}"
    );
}

#[test]
fn rejects_name_not_utf8() {
    assert_eq!(reject(|i| i.abi.name[1] = 0xff), LoadError::NameNotUtf8);
}

// ---- robustness ------------------------------------------------------------------------------

/// xorshift64 (Marsaglia), fixed seed: reproducible.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let valid = TestImage::valid().to_bytes();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut rejected, mut accepted) = (0, 0);
    for _ in 0..5000 {
        let mut bytes = valid.clone();
        for _ in 0..1 + rng.next() % 4 {
            // Half the flips hit the headers and tables, where they matter most.
            let pos = if rng.next() & 1 == 0 {
                rng.next() % 0x400
            } else {
                rng.next() % valid.len() as u64
            };
            bytes[pos as usize] ^= 1 << (rng.next() % 8);
        }
        match plan(&bytes, &expect()) {
            Ok(p) => {
                accepted += 1;
                // Whatever was accepted must satisfy the invariants.
                assert!(p.span <= MAX_SPAN);
                for s in &p.segments {
                    assert!(
                        s.file_offset + s.file_size <= bytes.len() as u64
                            && s.vaddr + s.mem_size <= p.span
                    );
                }
                assert!(p
                    .relocs
                    .iter()
                    .all(|r| r.offset + 8 <= p.span && r.addend <= p.span));
            }
            Err(e) => {
                rejected += 1;
                assert!(!e.to_string().is_empty());
            }
        }
        let _ = read_abi(&bytes);
    }
    assert!(
        rejected > 0 && accepted > 0,
        "rejected {rejected}, accepted {accepted}"
    );
}

// ---- a real domain image ---------------------------------------------------------------------

#[test]
fn real_domain_image() {
    let Some(path) = std::env::var_os("FROND_DOMAIN_ELF") else {
        println!(
            "note: FROND_DOMAIN_ELF is not set; skipping the real-image test (`make test` sets it)"
        );
        return;
    };
    let image = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path:?}: {e}"));
    let out = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("running rustc -vV");
    let stdout = String::from_utf8(out.stdout).expect("rustc -vV output is UTF-8");
    let rustc = stdout
        .lines()
        .next()
        .expect("rustc -vV printed nothing")
        .trim();
    let abi = read_abi(&image).expect("reading the ABI record");
    let expect = Expect {
        rustc,
        entry_sig: abi.entry_sig,
        max_span: MAX_SPAN,
    };
    let p = plan(&image, &expect).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    println!(
        "{path:?}: {} segments, {} relocations, span {:#x}, entry {:#x}, name {}",
        p.segments.len(),
        p.relocs.len(),
        p.span,
        p.entry,
        p.name
    );
    assert!(!p.segments.is_empty() && !p.name.is_empty());
    assert!(p.segments.iter().any(|s| s.perm == Perm::ReadExec));

    let mutated = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut m = image.clone();
        f(&mut m);
        plan(&m, &expect)
    };
    assert_eq!(
        mutated(&|m| m[4] = 1),
        Err(LoadError::WrongClass { class: 1 })
    );
    assert_eq!(
        mutated(&|m| m[18..20].copy_from_slice(&40u16.to_le_bytes())),
        Err(LoadError::WrongMachine { machine: 40 })
    );
    assert!(matches!(
        mutated(&|m| m.truncate(image.len() - 1)),
        Err(LoadError::Truncated { .. })
    ));
    for len in [0, 3, 16, 63, 64, 0x100, image.len() / 2] {
        assert!(
            plan(&image[..len.min(image.len())], &expect).is_err(),
            "accepted a {len}-byte prefix"
        );
    }
    let other = Expect {
        rustc: "rustc 0.0.0",
        ..expect
    };
    assert!(matches!(
        plan(&image, &other),
        Err(LoadError::RustcMismatch { .. })
    ));
}
