//! `frond-elfload`: the validating parser for Frond domain images.
//!
//! A domain is a separately compiled `#![no_std] #![no_main]` **static-pie** ELF executable
//! for `x86_64-unknown-none` (ET_DYN, linked by rust-lld, only `R_X86_64_RELATIVE`
//! relocations in `.rela.dyn`, found through `PT_DYNAMIC`'s `DT_RELA`/`DT_RELASZ`/
//! `DT_RELAENT`). The kernel loads it at an arbitrary base address. This crate is the part of
//! loading that can run (and be tested) on the host: [`plan`] parses and validates the whole
//! image and returns a [`Plan`]; the kernel only executes it:
//!
//! 1. reserve [`Plan::span`] bytes of address space at some page-aligned `base`;
//! 2. for each [`Segment`], copy `image[file_offset..][..file_size]` to `base + vaddr` and
//!    zero the rest of `mem_size`;
//! 3. for each [`Reloc`], write the little-endian `u64` `base + addend` to `base + offset`;
//! 4. map each segment's pages with its [`Perm`] and jump to `base + entry`.
//!
//! The crate is also the single definition of the **ABI record** ([`AbiRecord`]) that every
//! domain carries in its `.frond_abi` section, so the kernel can refuse a domain built by
//! another compiler, against another entry-point signature, or against a changed interface
//! crate (the entry hash includes the exported interface's structural fingerprint).
//!
//! # Dependencies
//!
//! `core`, `alloc` (the plan's vectors and strings) and the `elf` crate (no_std, zero-alloc,
//! no default features) for all ELF parsing. Nothing else: the kernel links this crate.
//!
//! # Invariants
//!
//! * Never panics, whatever bytes it is given: no `unsafe`, no indexing with untrusted
//!   offsets (`get` and checked arithmetic only). A bad image is an `Err(LoadError)`.
//! * Every offset and size in a returned [`Plan`] is validated: segment file ranges lie
//!   inside the image; segment memory ranges, the entry point, relocation targets and
//!   relocation addends lie inside `0..span`; `span <= Expect::max_span`; page-rounded
//!   segment ranges do not overlap; no segment is both writable and executable; every
//!   relocation target (8 bytes) lies inside one writable segment; the entry point lies
//!   inside an executable segment.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::mem::{offset_of, size_of};

use elf::abi;
use elf::dynamic::DynamicTable;
use elf::endian::LittleEndian;
use elf::file::{parse_ident, Class, FileHeader};
use elf::relocation::RelaIterator;
use elf::{ElfBytes, ParseError};

/// Page size the segment checks and the span use.
pub const PAGE_SIZE: u64 = 4096;
/// Name of the section holding the [`AbiRecord`].
pub const ABI_SECTION: &str = ".frond_abi";
/// [`AbiRecord::magic`] of every domain.
pub const ABI_MAGIC: [u8; 8] = *b"FRONDDOM";
/// Current [`AbiRecord::version`].
pub const ABI_VERSION: u32 = 1;
/// Size of [`AbiRecord`] in bytes (its `repr(C)` layout, no padding).
pub const ABI_RECORD_SIZE: usize = 152;

const RUSTC_CAP: usize = 96;
const NAME_CAP: usize = 32;
const EHDR_SIZE: u64 = 64;
const PHDR_SIZE: u16 = 56;
const SHDR_SIZE: u16 = 64;
const RELA_SIZE: u64 = 24;
const DT_RELRSZ: i64 = 35;
const DT_RELR: i64 = 36;
const DT_RELRENT: i64 = 37;

/// The record every domain places in its `.frond_abi` section (a `static`, built at compile
/// time with [`AbiRecord::new`]). Layout is `repr(C)` without padding, little-endian.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbiRecord {
    /// Always [`ABI_MAGIC`].
    pub magic: [u8; 8],
    /// Always [`ABI_VERSION`] for this loader.
    pub version: u32,
    /// Number of meaningful bytes in `rustc` (at most 96).
    pub rustc_len: u32,
    /// First line of `rustc -vV` (e.g. `rustc 1.95.0 (59807616e 2026-04-14)`), zero padded.
    pub rustc: [u8; RUSTC_CAP],
    /// The domain kind's entry hash (`frond_domrt::DomainKind::ENTRY_HASH`): the entry
    /// signature string, the exported interface's fingerprint and the layout of the init
    /// arguments.
    pub entry_sig: u64,
    /// The domain crate's name, zero padded.
    pub name: [u8; NAME_CAP],
}

const _: () = {
    assert!(size_of::<AbiRecord>() == ABI_RECORD_SIZE);
    assert!(offset_of!(AbiRecord, version) == 8);
    assert!(offset_of!(AbiRecord, rustc_len) == 12);
    assert!(offset_of!(AbiRecord, rustc) == 16);
    assert!(offset_of!(AbiRecord, entry_sig) == 112);
    assert!(offset_of!(AbiRecord, name) == 120);
};

/// Copies `s` into a zero-padded array, truncated to `N` bytes at a char boundary.
const fn pad<const N: usize>(s: &str) -> ([u8; N], usize) {
    let b = s.as_bytes();
    let mut len = if b.len() < N { b.len() } else { N };
    while len > 0 && len < b.len() && (b[len] & 0xC0) == 0x80 {
        len -= 1;
    }
    let mut out = [0u8; N];
    let mut i = 0;
    while i < len {
        out[i] = b[i];
        i += 1;
    }
    (out, len)
}

impl AbiRecord {
    /// Builds a record; over-long `rustc` (> 96 bytes) and `name` (> 32 bytes) are truncated
    /// at a char boundary.
    pub const fn new(rustc: &str, entry_sig: u64, name: &str) -> AbiRecord {
        let (rustc, rustc_len) = pad::<RUSTC_CAP>(rustc);
        let (name, _) = pad::<NAME_CAP>(name);
        AbiRecord {
            magic: ABI_MAGIC,
            version: ABI_VERSION,
            rustc_len: rustc_len as u32,
            rustc,
            entry_sig,
            name,
        }
    }

    /// The meaningful bytes of `rustc` (`rustc_len` of them, at most 96).
    pub fn rustc_bytes(&self) -> &[u8] {
        let len = (self.rustc_len as usize).min(RUSTC_CAP);
        self.rustc.get(..len).unwrap_or(&[])
    }

    /// The bytes of `name` up to the first NUL.
    pub fn name_bytes(&self) -> &[u8] {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_CAP);
        self.name.get(..len).unwrap_or(&[])
    }

    /// The record's in-memory (`repr(C)`, little-endian) bytes.
    pub fn to_bytes(&self) -> [u8; ABI_RECORD_SIZE] {
        let mut out = [0u8; ABI_RECORD_SIZE];
        let parts: [(usize, &[u8]); 6] = [
            (0, &self.magic),
            (8, &self.version.to_le_bytes()),
            (12, &self.rustc_len.to_le_bytes()),
            (16, &self.rustc),
            (112, &self.entry_sig.to_le_bytes()),
            (120, &self.name),
        ];
        for (off, bytes) in parts {
            if let Some(dst) = out.get_mut(off..off + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        }
        out
    }

    /// Reads a record from its first [`ABI_RECORD_SIZE`] bytes (no validation of contents).
    pub fn from_bytes(bytes: &[u8]) -> Option<AbiRecord> {
        fn arr<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
            b.get(off..off.checked_add(N)?)?.try_into().ok()
        }
        Some(AbiRecord {
            magic: arr(bytes, 0)?,
            version: u32::from_le_bytes(arr(bytes, 8)?),
            rustc_len: u32::from_le_bytes(arr(bytes, 12)?),
            rustc: arr(bytes, 16)?,
            entry_sig: u64::from_le_bytes(arr(bytes, 112)?),
            name: arr(bytes, 120)?,
        })
    }
}

/// What the caller (the kernel) requires of an image.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// First line of `rustc -vV` of the kernel's compiler; must equal the record's.
    pub rustc: &'a str,
    /// The entry hash (signature and interface fingerprint) of the kind the kernel will call.
    pub entry_sig: u64,
    /// Largest acceptable [`Plan::span`].
    pub max_span: u64,
}

/// Page permissions of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    /// Read-only.
    Read,
    /// Readable and writable, never executable.
    ReadWrite,
    /// Readable and executable, never writable.
    ReadExec,
}

/// One `PT_LOAD` segment to copy and map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Offset of the segment from the load base.
    pub vaddr: u64,
    /// Bytes of memory (`file_size` copied from the image, the rest zeroed).
    pub mem_size: u64,
    /// Where the segment's bytes start in the image.
    pub file_offset: u64,
    /// How many bytes to copy from the image.
    pub file_size: u64,
    /// Page permissions.
    pub perm: Perm,
}

/// One `R_X86_64_RELATIVE` relocation: `*(base + offset) = base + addend` (a `u64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reloc {
    /// Target, an offset from base; its 8 bytes lie inside a writable segment.
    pub offset: u64,
    /// Value to add to base; `0 <= addend <= span`.
    pub addend: u64,
}

/// The validated load plan for one domain image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Bytes of address space from vaddr 0 to the end of the highest segment, page rounded.
    pub span: u64,
    /// Entry point (`e_entry`), an offset from base, inside an executable segment.
    pub entry: u64,
    /// The `PT_LOAD` segments with non-zero memory size, in program-header order.
    pub segments: Vec<Segment>,
    /// Relocations to apply after copying, in table order.
    pub relocs: Vec<Reloc>,
    /// The domain's crate name from its ABI record.
    pub name: String,
}

/// Why an image was rejected. `Display` gives one sentence with the numbers involved.
/// Offsets, addresses and sizes are in bytes; `index` is a program-header or relocation index.
#[allow(missing_docs)] // the fields are named for what they hold; each variant is documented
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The image ends before the end of `what`.
    Truncated {
        what: &'static str,
        end: u64,
        len: u64,
    },
    /// The image does not start with the ELF magic.
    NotElf { magic: [u8; 4] },
    /// `EI_CLASS` is not ELFCLASS64 (2).
    WrongClass { class: u8 },
    /// `EI_DATA` is not little-endian (1).
    WrongEndianness { data: u8 },
    /// `e_machine` is not EM_X86_64 (62).
    WrongMachine { machine: u16 },
    /// `e_type` is not ET_DYN (3).
    WrongType { e_type: u16 },
    /// Some other ELF structure the parser could not accept.
    Malformed {
        what: &'static str,
        why: &'static str,
    },
    /// There is no `PT_LOAD` segment.
    NoLoadSegment,
    /// Program header `index` is a `PT_LOAD` with `file_size > mem_size`.
    FileLargerThanMemory {
        index: usize,
        file_size: u64,
        mem_size: u64,
    },
    /// `base + size` does not fit in 64 bits.
    AddressOverflow {
        what: &'static str,
        base: u64,
        size: u64,
    },
    /// Program header `index` starts beyond the end of the image.
    SegmentOutsideImage {
        index: usize,
        offset: u64,
        size: u64,
        len: u64,
    },
    /// Program headers `first` and `second` occupy the same page (`page`).
    SegmentsOverlap {
        first: usize,
        second: usize,
        page: u64,
    },
    /// Program header `index` is both writable and executable.
    WritableExecutable { index: usize, vaddr: u64 },
    /// Program header `index` has `vaddr % 4096 != offset % 4096` with `p_align >= 4096`.
    Misaligned {
        index: usize,
        vaddr: u64,
        offset: u64,
    },
    /// The image needs more address space than allowed.
    SpanTooLarge { span: u64, max: u64 },
    /// Program header `index` is `PT_TLS`.
    TlsUnsupported { index: usize },
    /// Program header `index` is `PT_INTERP`.
    InterpUnsupported { index: usize },
    /// The dynamic section has a relocation tag other than the DT_RELA family.
    UnsupportedRelocTable { tag: i64 },
    /// `DT_RELAENT` is not 24.
    BadRelaEnt { found: u64 },
    /// The `DT_RELA` table does not lie inside one segment's file bytes.
    RelocTableNotInFile { vaddr: u64, size: u64 },
    /// Relocation `index` has a type other than R_X86_64_RELATIVE (8).
    UnsupportedRelocType { index: usize, r_type: u32 },
    /// Relocation `index`'s 8 target bytes are not inside one writable segment.
    RelocTargetNotWritable { index: usize, offset: u64 },
    /// Relocation `index`'s addend lies outside `0..=span`.
    RelocAddendOutOfSpan {
        index: usize,
        addend: i64,
        span: u64,
    },
    /// The entry point is not inside an executable segment.
    EntryNotExecutable { entry: u64 },
    /// There is no `.frond_abi` section.
    MissingAbiSection,
    /// The `.frond_abi` section is smaller than an [`AbiRecord`].
    AbiSectionTooSmall { size: u64 },
    /// The ABI record's magic is not `FRONDDOM`.
    BadAbiMagic { magic: [u8; 8] },
    /// The ABI record's version is not [`ABI_VERSION`].
    BadAbiVersion { found: u32, expected: u32 },
    /// The ABI record's `rustc_len` exceeds its 96-byte field.
    AbiRustcLen { len: u32 },
    /// The domain was built by another compiler.
    RustcMismatch { found: String, expected: String },
    /// The domain's entry hash (entry signature and interface fingerprint) differs from the
    /// kernel's: another domain kind, or built against a different interface crate.
    EntrySigMismatch { found: u64, expected: u64 },
    /// The ABI record's name is not UTF-8.
    NameNotUtf8,
}

fn tag_name(tag: i64) -> &'static str {
    match tag {
        abi::DT_REL => "DT_REL",
        abi::DT_RELSZ => "DT_RELSZ",
        abi::DT_RELENT => "DT_RELENT",
        DT_RELR => "DT_RELR",
        DT_RELRSZ => "DT_RELRSZ",
        DT_RELRENT => "DT_RELRENT",
        abi::DT_JMPREL => "DT_JMPREL",
        abi::DT_PLTRELSZ => "DT_PLTRELSZ",
        _ => "unknown tag",
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoadError::*;
        match self {
            Truncated { what, end, len } => write!(f, "image is truncated at {len} bytes: reading the {what} requires {end} bytes"),
            NotElf { magic } => write!(f, "not an ELF file: the first bytes are {magic:02x?} instead of 7f 45 4c 46"),
            WrongClass { class } => write!(f, "wrong ELF class {class}: domains must be 64-bit (ELFCLASS64 = 2)"),
            WrongEndianness { data } => write!(f, "wrong ELF data encoding {data}: domains must be little-endian (ELFDATA2LSB = 1)"),
            WrongMachine { machine } => write!(f, "wrong ELF machine {machine}: domains must be x86_64 (EM_X86_64 = 62)"),
            WrongType { e_type } => write!(f, "wrong ELF type {e_type}: domains must be static-pie (ET_DYN = 3)"),
            Malformed { what, why } => write!(f, "malformed {what}: {why}"),
            NoLoadSegment => write!(f, "the image has no PT_LOAD segment"),
            FileLargerThanMemory { index, file_size, mem_size } => write!(f, "segment {index} has file size {file_size:#x} larger than its memory size {mem_size:#x}"),
            AddressOverflow { what, base, size } => write!(f, "address arithmetic overflows: {what} at {base:#x} with size {size:#x} wraps past 2^64"),
            SegmentOutsideImage { index, offset, size, len } => write!(f, "segment {index}'s file range {offset:#x}+{size:#x} lies outside the {len}-byte image"),
            SegmentsOverlap { first, second, page } => write!(f, "segments {first} and {second} overlap in memory: both occupy the page at {page:#x}"),
            WritableExecutable { index, vaddr } => write!(f, "segment {index} at {vaddr:#x} is both writable and executable"),
            Misaligned { index, vaddr, offset } => write!(f, "segment {index} is misaligned: vaddr {vaddr:#x} and file offset {offset:#x} differ modulo 4096"),
            SpanTooLarge { span, max } => write!(f, "the image needs {span:#x} bytes of address space, more than the allowed {max:#x}"),
            TlsUnsupported { index } => write!(f, "segment {index} is PT_TLS: thread-local storage is not supported in domains"),
            InterpUnsupported { index } => write!(f, "segment {index} is PT_INTERP: domains must be static-pie without an interpreter"),
            UnsupportedRelocTable { tag } => write!(f, "the dynamic section has {} (tag {tag}): only DT_RELA relocations are supported", tag_name(*tag)),
            BadRelaEnt { found } => write!(f, "DT_RELAENT is {found}, but x86_64 RELA entries are 24 bytes"),
            RelocTableNotInFile { vaddr, size } => write!(f, "the relocation table at vaddr {vaddr:#x} ({size} bytes) is not inside the file bytes of one segment"),
            UnsupportedRelocType { index, r_type } => write!(f, "relocation {index} has type {r_type}; only R_X86_64_RELATIVE (8) is supported"),
            RelocTargetNotWritable { index, offset } => write!(f, "relocation {index} targets {offset:#x}, whose 8 bytes are not inside a writable segment"),
            RelocAddendOutOfSpan { index, addend, span } => write!(f, "relocation {index} has addend {addend:#x}, outside the image's span of {span:#x} bytes"),
            EntryNotExecutable { entry } => write!(f, "the entry point {entry:#x} is not inside an executable segment"),
            MissingAbiSection => write!(f, "the image has no {ABI_SECTION} section (is it a Frond domain?)"),
            AbiSectionTooSmall { size } => write!(f, "the {ABI_SECTION} section is {size} bytes, smaller than the {ABI_RECORD_SIZE}-byte ABI record"),
            BadAbiMagic { magic } => write!(f, "the ABI record's magic is {magic:02x?} instead of \"FRONDDOM\""),
            BadAbiVersion { found, expected } => write!(f, "the ABI record has version {found}, but this loader supports version {expected}"),
            AbiRustcLen { len } => write!(f, "the ABI record's rustc_len is {len}, more than its {RUSTC_CAP}-byte field"),
            RustcMismatch { found, expected } => write!(f, "the domain was built by \"{found}\" but the kernel by \"{expected}\""),
            EntrySigMismatch { found, expected } => write!(f, "the domain's entry signature and interface fingerprint is {found:#018x} but the kernel expects {expected:#018x}: it is another kind of domain, or was built against a different interface crate"),
            NameNotUtf8 => write!(f, "the ABI record's domain name is not valid UTF-8"),
        }
    }
}

impl core::error::Error for LoadError {}

/// Maps an `elf` crate error while reading `what`.
fn parse_err(what: &'static str, len: usize, e: ParseError) -> LoadError {
    let why = match e {
        ParseError::SliceReadError((_, end)) => {
            return LoadError::Truncated {
                what,
                end: end as u64,
                len: len as u64,
            }
        }
        ParseError::BadMagic(_) => "bad magic",
        ParseError::UnsupportedElfClass(_) => "unsupported class",
        ParseError::UnsupportedElfEndianness(_) => "unsupported data encoding",
        ParseError::UnsupportedVersion(_) => "EI_VERSION is not 1",
        ParseError::BadOffset(_) => "an offset is out of range",
        ParseError::StringTableMissingNul(_) => "a string is not NUL-terminated",
        ParseError::BadEntsize(_) => "an entry size is wrong",
        ParseError::UnexpectedSectionType(_) => "a section has the wrong type",
        ParseError::UnexpectedSegmentType(_) => "a segment has the wrong type",
        ParseError::UnexpectedAlignment(_) => "an alignment is wrong",
        ParseError::IntegerOverflow => "an offset computation overflows",
        ParseError::Utf8Error(_) => "a string is not UTF-8",
        ParseError::TryFromSliceError(_) => "a structure is cut short",
        ParseError::TryFromIntError(_) => "a value does not fit in usize",
    };
    LoadError::Malformed { what, why }
}

/// `image[off..off + size]`, or the error saying why not.
fn slice<'a>(
    image: &'a [u8],
    what: &'static str,
    off: u64,
    size: u64,
) -> Result<&'a [u8], LoadError> {
    let end = off.checked_add(size).ok_or(LoadError::AddressOverflow {
        what,
        base: off,
        size,
    })?;
    let truncated = LoadError::Truncated {
        what,
        end,
        len: image.len() as u64,
    };
    let (Ok(start), Ok(stop)) = (usize::try_from(off), usize::try_from(end)) else {
        return Err(truncated);
    };
    image.get(start..stop).ok_or(truncated)
}

/// Checks a header table (`off`, `num` entries of `entsize`) before the `elf` crate reads it.
/// `extended` says the header uses extended numbering (the count stored in section 0).
fn check_table(
    image: &[u8],
    what: &'static str,
    off: u64,
    num: u16,
    entsize: u16,
    want: u16,
    extended: bool,
) -> Result<(), LoadError> {
    if off == 0 || (num == 0 && !extended) {
        return Ok(()); // no table, or an empty one
    }
    if extended {
        return Err(LoadError::Malformed {
            what,
            why: "extended numbering (count stored in section 0) is not supported",
        });
    }
    if entsize != want {
        return Err(LoadError::Malformed {
            what,
            why: "the entry size in the ELF header is wrong",
        });
    }
    slice(image, what, off, u64::from(num) * u64::from(entsize)).map(|_| ())
}

/// Validates the ELF header and locates the header tables.
fn open(image: &[u8]) -> Result<ElfBytes<'_, LittleEndian>, LoadError> {
    let len = image.len();
    let prefix = image.get(..len.min(4)).unwrap_or(&[]);
    if !abi::ELFMAGIC.starts_with(prefix) {
        let mut magic = [0u8; 4];
        magic.iter_mut().zip(prefix).for_each(|(d, s)| *d = *s);
        return Err(LoadError::NotElf { magic });
    }
    let ident = slice(image, "ELF header", 0, abi::EI_NIDENT as u64)?;
    let ident = parse_ident::<LittleEndian>(ident).map_err(|e| match e {
        ParseError::BadMagic(magic) => LoadError::NotElf { magic },
        ParseError::UnsupportedElfClass(class) => LoadError::WrongClass { class },
        ParseError::UnsupportedElfEndianness(data) => LoadError::WrongEndianness { data },
        e => parse_err("ELF header", len, e),
    })?;
    if ident.1 != Class::ELF64 {
        return Err(LoadError::WrongClass {
            class: abi::ELFCLASS32,
        });
    }
    let tail = slice(
        image,
        "ELF header",
        abi::EI_NIDENT as u64,
        EHDR_SIZE - abi::EI_NIDENT as u64,
    )?;
    let ehdr = FileHeader::parse_tail(ident, tail).map_err(|e| parse_err("ELF header", len, e))?;
    if ehdr.e_machine != abi::EM_X86_64 {
        return Err(LoadError::WrongMachine {
            machine: ehdr.e_machine,
        });
    }
    if ehdr.e_type != abi::ET_DYN {
        return Err(LoadError::WrongType {
            e_type: ehdr.e_type,
        });
    }
    let (phnum, shnum) = (ehdr.e_phnum, ehdr.e_shnum);
    check_table(
        image,
        "program headers",
        ehdr.e_phoff,
        phnum,
        ehdr.e_phentsize,
        PHDR_SIZE,
        phnum == abi::PN_XNUM,
    )?;
    check_table(
        image,
        "section headers",
        ehdr.e_shoff,
        shnum,
        ehdr.e_shentsize,
        SHDR_SIZE,
        shnum == 0,
    )?;
    ElfBytes::minimal_parse(image).map_err(|e| parse_err("ELF headers", len, e))
}

/// Finds, bounds-checks and decodes the `.frond_abi` record (magic, version, `rustc_len`).
fn find_abi(file: &ElfBytes<'_, LittleEndian>, image: &[u8]) -> Result<AbiRecord, LoadError> {
    let shdr = file
        .section_header_by_name(ABI_SECTION)
        .map_err(|e| parse_err("section name table", image.len(), e))?
        .ok_or(LoadError::MissingAbiSection)?;
    let size = if shdr.sh_type == abi::SHT_NOBITS {
        0
    } else {
        shdr.sh_size
    };
    let bytes = slice(image, "ABI section", shdr.sh_offset, size)?;
    // `from_bytes` fails exactly when the section is smaller than a record.
    let rec = AbiRecord::from_bytes(bytes).ok_or(LoadError::AbiSectionTooSmall { size })?;
    if rec.magic != ABI_MAGIC {
        return Err(LoadError::BadAbiMagic { magic: rec.magic });
    }
    if rec.version != ABI_VERSION {
        return Err(LoadError::BadAbiVersion {
            found: rec.version,
            expected: ABI_VERSION,
        });
    }
    if rec.rustc_len as usize > RUSTC_CAP {
        return Err(LoadError::AbiRustcLen { len: rec.rustc_len });
    }
    Ok(rec)
}

/// Reads and checks (magic, version) the ABI record of `image` without planning the load;
/// the ELF header is validated first.
pub fn read_abi(image: &[u8]) -> Result<AbiRecord, LoadError> {
    find_abi(&open(image)?, image)
}

fn round_up(x: u64) -> Option<u64> {
    x.checked_add(PAGE_SIZE - 1).map(|v| v & !(PAGE_SIZE - 1))
}

/// Parses and validates a domain image and returns its load plan.
pub fn plan(image: &[u8], expect: &Expect) -> Result<Plan, LoadError> {
    let file = open(image)?;
    let len = image.len() as u64;

    // The ABI record first: a domain from another compiler is the most useful diagnosis.
    let rec = find_abi(&file, image)?;
    // Compare with the expected string truncated exactly as `AbiRecord::new` truncates it.
    let (want_rustc, want_len) = pad::<RUSTC_CAP>(expect.rustc);
    let want_rustc = want_rustc.get(..want_len).unwrap_or(&[]);
    if rec.rustc_bytes() != want_rustc {
        return Err(LoadError::RustcMismatch {
            found: String::from_utf8_lossy(rec.rustc_bytes()).into_owned(),
            expected: String::from(expect.rustc),
        });
    }
    if rec.entry_sig != expect.entry_sig {
        return Err(LoadError::EntrySigMismatch {
            found: rec.entry_sig,
            expected: expect.entry_sig,
        });
    }
    let name = core::str::from_utf8(rec.name_bytes()).map_err(|_| LoadError::NameNotUtf8)?;

    // Program headers: collect PT_LOAD segments (with page ranges and indices), find PT_DYNAMIC.
    let mut segments: Vec<Segment> = Vec::new();
    let mut pages: Vec<(usize, u64, u64)> = Vec::new(); // (phdr index, first page, end page)
    let mut dynamic = None;
    for (index, ph) in file
        .segments()
        .into_iter()
        .flat_map(|t| t.iter())
        .enumerate()
    {
        match ph.p_type {
            abi::PT_LOAD => {}
            abi::PT_TLS => return Err(LoadError::TlsUnsupported { index }),
            abi::PT_INTERP => return Err(LoadError::InterpUnsupported { index }),
            abi::PT_DYNAMIC => {
                dynamic = dynamic.or(Some(ph));
                continue;
            }
            _ => continue,
        }
        let (vaddr, mem_size, offset, file_size) =
            (ph.p_vaddr, ph.p_memsz, ph.p_offset, ph.p_filesz);
        if file_size > mem_size {
            return Err(LoadError::FileLargerThanMemory {
                index,
                file_size,
                mem_size,
            });
        }
        let end = vaddr.checked_add(mem_size).and_then(round_up);
        let end = end.ok_or(LoadError::AddressOverflow {
            what: "segment memory range",
            base: vaddr,
            size: mem_size,
        })?;
        let file_end = offset.checked_add(file_size);
        let file_end = file_end.ok_or(LoadError::AddressOverflow {
            what: "segment file range",
            base: offset,
            size: file_size,
        })?;
        if offset > len {
            return Err(LoadError::SegmentOutsideImage {
                index,
                offset,
                size: file_size,
                len,
            });
        }
        if file_end > len {
            return Err(LoadError::Truncated {
                what: "segment file bytes",
                end: file_end,
                len,
            });
        }
        let (w, x) = (ph.p_flags & abi::PF_W != 0, ph.p_flags & abi::PF_X != 0);
        if w && x {
            return Err(LoadError::WritableExecutable { index, vaddr });
        }
        if ph.p_align >= PAGE_SIZE && vaddr % PAGE_SIZE != offset % PAGE_SIZE {
            return Err(LoadError::Misaligned {
                index,
                vaddr,
                offset,
            });
        }
        if mem_size == 0 {
            continue; // occupies nothing
        }
        let start = vaddr & !(PAGE_SIZE - 1);
        if let Some(&(first, s, _)) = pages.iter().find(|&&(_, s, e)| start < e && s < end) {
            return Err(LoadError::SegmentsOverlap {
                first,
                second: index,
                page: s.max(start),
            });
        }
        pages.push((index, start, end));
        let perm = if x {
            Perm::ReadExec
        } else if w {
            Perm::ReadWrite
        } else {
            Perm::Read
        };
        segments.push(Segment {
            vaddr,
            mem_size,
            file_offset: offset,
            file_size,
            perm,
        });
    }
    if segments.is_empty() {
        return Err(LoadError::NoLoadSegment);
    }
    let span = pages.iter().map(|&(_, _, e)| e).max().unwrap_or(0);
    if span > expect.max_span {
        return Err(LoadError::SpanTooLarge {
            span,
            max: expect.max_span,
        });
    }
    let entry = file.ehdr.e_entry;
    if !inside(&segments, Perm::ReadExec, entry, 1) {
        return Err(LoadError::EntryNotExecutable { entry });
    }
    let relocs = match dynamic {
        Some(ph) => relocations(
            image,
            &segments,
            span,
            slice(image, "dynamic section", ph.p_offset, ph.p_filesz)?,
        )?,
        None => Vec::new(),
    };
    Ok(Plan {
        span,
        entry,
        segments,
        relocs,
        name: String::from(name),
    })
}

/// Whether `at..at + size` lies inside one segment with permission `perm`.
fn inside(segments: &[Segment], perm: Perm, at: u64, size: u64) -> bool {
    segments.iter().any(|s| {
        // s.vaddr + s.mem_size cannot overflow: checked when the segment was accepted.
        s.perm == perm
            && at >= s.vaddr
            && at
                .checked_add(size)
                .is_some_and(|e| e <= s.vaddr + s.mem_size)
    })
}

/// Reads the dynamic section `dyn_bytes` and validates the DT_RELA table it points to.
fn relocations(
    image: &[u8],
    segments: &[Segment],
    span: u64,
    dyn_bytes: &[u8],
) -> Result<Vec<Reloc>, LoadError> {
    let (mut rela, mut relasz, mut relaent, mut terminated) = (None, None, None, false);
    for d in DynamicTable::<LittleEndian>::new(LittleEndian, Class::ELF64, dyn_bytes).iter() {
        match d.d_tag {
            abi::DT_NULL => {
                terminated = true;
                break;
            }
            abi::DT_RELA => rela = Some(d.d_ptr()),
            abi::DT_RELASZ => relasz = Some(d.d_val()),
            abi::DT_RELAENT => relaent = Some(d.d_val()),
            tag @ (abi::DT_REL
            | abi::DT_RELSZ
            | abi::DT_RELENT
            | abi::DT_JMPREL
            | abi::DT_PLTRELSZ
            | DT_RELR
            | DT_RELRSZ
            | DT_RELRENT) => return Err(LoadError::UnsupportedRelocTable { tag }),
            _ => {}
        }
    }
    let bad = |why| LoadError::Malformed {
        what: "dynamic section",
        why,
    };
    if !terminated {
        return Err(bad("it has no DT_NULL terminator"));
    }
    if let Some(found) = relaent.filter(|&e| e != RELA_SIZE) {
        return Err(LoadError::BadRelaEnt { found });
    }
    let Some(rela) = rela else {
        return Ok(Vec::new());
    };
    let size = relasz.ok_or(bad("DT_RELA is present without DT_RELASZ"))?;
    relaent.ok_or(bad("DT_RELA is present without DT_RELAENT"))?;
    if size % RELA_SIZE != 0 {
        return Err(bad("DT_RELASZ is not a multiple of 24"));
    }
    if size == 0 {
        return Ok(Vec::new());
    }
    // DT_RELA is a virtual address: find the segment whose file bytes hold the whole table.
    // (file_offset + file_size <= image length was checked, so the sum cannot overflow.)
    let table_off = segments
        .iter()
        .find(|s| {
            rela >= s.vaddr
                && rela
                    .checked_add(size)
                    .is_some_and(|e| e <= s.vaddr + s.file_size)
        })
        .map(|s| s.file_offset + (rela - s.vaddr))
        .ok_or(LoadError::RelocTableNotInFile { vaddr: rela, size })?;
    let table = slice(image, "relocation table", table_off, size)?;
    let mut relocs = Vec::new();
    for (index, r) in
        RelaIterator::<LittleEndian>::new(LittleEndian, Class::ELF64, table).enumerate()
    {
        if r.r_type != abi::R_X86_64_RELATIVE {
            return Err(LoadError::UnsupportedRelocType {
                index,
                r_type: r.r_type,
            });
        }
        if !inside(segments, Perm::ReadWrite, r.r_offset, 8) {
            return Err(LoadError::RelocTargetNotWritable {
                index,
                offset: r.r_offset,
            });
        }
        let addend = u64::try_from(r.r_addend).ok().filter(|&a| a <= span);
        let addend = addend.ok_or(LoadError::RelocAddendOutOfSpan {
            index,
            addend: r.r_addend,
            span,
        })?;
        relocs.push(Reloc {
            offset: r.r_offset,
            addend,
        });
    }
    Ok(relocs)
}
