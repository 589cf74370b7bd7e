//! The kernel symbol table (`kernel.sym`): maps code addresses to function names.
//!
//! # Format (version 1; all integers little-endian, no alignment requirements)
//!
//! ```text
//! offset  size        field
//! 0       8           magic  b"FRSYM\0\x01\0"  (name, NUL, format version 1, NUL)
//! 8       4           count        u32: number of symbols
//! 12      4           strings_len  u32: length of the string table
//! 16      20 * count  symbols, sorted by addr, strictly ascending:
//!                       addr      u64  start address
//!                       size      u32  length in bytes; 0 = unknown (assembly labels)
//!                       name_off  u32  offset of the name in the string table
//!                       name_len  u32  length of the name in bytes
//! 16+20*count  strings_len  string table: UTF-8 names, not NUL-terminated
//! ```
//!
//! The file is exactly `16 + 20 * count + strings_len` bytes. [`SymbolTable::parse`]
//! checks all of it up front (magic, exact length, every name in range and valid UTF-8,
//! strictly ascending addresses), so lookups afterwards cannot fail on bad data.
//!
//! # Lookup
//!
//! An address belongs to the symbol with the greatest `addr` not above it, unless that
//! symbol has a nonzero `size` and the address lies at or past `addr + size` (then it
//! belongs to no symbol). A symbol of size 0 covers everything up to the next symbol.

use core::fmt;

/// First 8 bytes of a `kernel.sym` entry: name, NUL, format version 1, NUL.
pub const SYM_MAGIC: [u8; 8] = *b"FRSYM\x00\x01\x00";
/// Length of the fixed header: magic, count, strings_len.
const HEADER_LEN: usize = 16;
/// Length of one symbol record.
const ENTRY_LEN: usize = 20;

/// What is wrong with a `kernel.sym` image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymError {
    /// The image does not start with [`SYM_MAGIC`] (wrong file, or another version).
    BadMagic,
    /// The image is shorter than its header says (or shorter than the header itself).
    Truncated {
        /// Length the header implies.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// The image is longer than its header says.
    TrailingBytes {
        /// Length the header implies.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// The name of symbol `index` lies outside the string table.
    NameOutOfRange {
        /// Index of the symbol record.
        index: usize,
    },
    /// The name of symbol `index` is not valid UTF-8.
    NameNotUtf8 {
        /// Index of the symbol record.
        index: usize,
    },
    /// Symbol `index` does not have a greater address than symbol `index - 1`.
    Unsorted {
        /// Index of the symbol record.
        index: usize,
    },
}

impl fmt::Display for SymError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic => write!(
                f,
                "kernel.sym: bad magic (not a version 1 Frond symbol table)"
            ),
            Self::Truncated { expected, actual } => {
                write!(
                    f,
                    "kernel.sym: truncated ({actual} bytes, header implies {expected})"
                )
            }
            Self::TrailingBytes { expected, actual } => {
                write!(
                    f,
                    "kernel.sym: {actual} bytes, but header implies {expected}"
                )
            }
            Self::NameOutOfRange { index } => {
                write!(
                    f,
                    "kernel.sym: name of symbol {index} is outside the string table"
                )
            }
            Self::NameNotUtf8 { index } => {
                write!(f, "kernel.sym: name of symbol {index} is not UTF-8")
            }
            Self::Unsorted { index } => {
                write!(
                    f,
                    "kernel.sym: symbol {index} is not above the previous address"
                )
            }
        }
    }
}

impl core::error::Error for SymError {}

/// A symbol found by [`SymbolTable::lookup`] (or listed by [`SymbolTable::iter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol<'a> {
    /// Demangled name, e.g. `frond_kernel::main`.
    pub name: &'a str,
    /// Start address of the symbol.
    pub addr: u64,
    /// Length in bytes; 0 when unknown.
    pub size: u64,
    /// Distance of the looked-up address from `addr` (0 from `iter`).
    pub offset: u64,
}

/// One symbol record, decoded.
struct Raw {
    addr: u64,
    size: u32,
    name_off: u32,
    name_len: u32,
}

/// A validated, borrowed `kernel.sym` image. Cheap to copy: it is two slices.
#[derive(Debug, Clone, Copy)]
pub struct SymbolTable<'a> {
    records: &'a [u8],
    strings: &'a [u8],
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let lo = u32_at(bytes, at)?;
    let hi = u32_at(bytes, at.checked_add(4)?)?;
    Some(u64::from(lo) | (u64::from(hi) << 32))
}

impl<'a> SymbolTable<'a> {
    /// Validates `bytes` as a `kernel.sym` image (see the [module docs](self)).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, SymError> {
        let actual = bytes.len() as u64;
        let present = bytes.len().min(SYM_MAGIC.len());
        if bytes.get(..present) != SYM_MAGIC.get(..present) {
            return Err(SymError::BadMagic);
        }
        let short = |expected| SymError::Truncated { expected, actual };
        let (Some(count), Some(strings_len)) = (u32_at(bytes, 8), u32_at(bytes, 12)) else {
            return Err(short(HEADER_LEN as u64));
        };
        // Cannot overflow: at most 16 + 20 * (2^32 - 1) + (2^32 - 1).
        let records_len = ENTRY_LEN as u64 * u64::from(count);
        let expected = HEADER_LEN as u64 + records_len + u64::from(strings_len);
        if actual < expected {
            return Err(short(expected));
        }
        if actual > expected {
            return Err(SymError::TrailingBytes { expected, actual });
        }
        // `expected` equals `bytes.len()` now, so these fit in a usize.
        let body = bytes.get(HEADER_LEN..).unwrap_or_default();
        let (records, strings) = body
            .split_at_checked(records_len as usize)
            .ok_or(short(expected))?;
        let table = SymbolTable { records, strings };

        let mut previous = None;
        for index in 0..table.len() {
            let raw = table.raw(index).ok_or(short(expected))?;
            let name = table
                .name_bytes(&raw)
                .ok_or(SymError::NameOutOfRange { index })?;
            core::str::from_utf8(name).map_err(|_| SymError::NameNotUtf8 { index })?;
            if previous.is_some_and(|previous| raw.addr <= previous) {
                return Err(SymError::Unsorted { index });
            }
            previous = Some(raw.addr);
        }
        Ok(table)
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.records.len() / ENTRY_LEN
    }

    /// Whether the table has no symbols.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The symbol containing `addr` (see the [module docs](self) for the rule), with
    /// `offset = addr - symbol.addr`. Binary search: O(log n).
    pub fn lookup(&self, addr: u64) -> Option<Symbol<'a>> {
        // Find the number of symbols starting at or below `addr`.
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.raw(mid)?.addr <= addr {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let symbol = self.get(lo.checked_sub(1)?)?;
        let offset = addr - symbol.addr;
        if symbol.size != 0 && offset >= symbol.size {
            return None;
        }
        Some(Symbol { offset, ..symbol })
    }

    /// Symbol number `index` in address order, with `offset` 0.
    pub fn get(&self, index: usize) -> Option<Symbol<'a>> {
        let raw = self.raw(index)?;
        let name = core::str::from_utf8(self.name_bytes(&raw)?).ok()?;
        Some(Symbol {
            name,
            addr: raw.addr,
            size: u64::from(raw.size),
            offset: 0,
        })
    }

    /// All symbols in address order, with `offset` 0.
    pub fn iter(&self) -> impl Iterator<Item = Symbol<'a>> {
        let table = *self;
        (0..table.len()).filter_map(move |index| table.get(index))
    }

    fn raw(&self, index: usize) -> Option<Raw> {
        let at = index.checked_mul(ENTRY_LEN)?;
        let record = self.records.get(at..at.checked_add(ENTRY_LEN)?)?;
        Some(Raw {
            addr: u64_at(record, 0)?,
            size: u32_at(record, 8)?,
            name_off: u32_at(record, 12)?,
            name_len: u32_at(record, 16)?,
        })
    }

    fn name_bytes(&self, raw: &Raw) -> Option<&'a [u8]> {
        let start = usize::try_from(raw.name_off).ok()?;
        let end = start.checked_add(usize::try_from(raw.name_len).ok()?)?;
        self.strings.get(start..end)
    }
}

/// Encodes `syms` as `(addr, size, name)` into a `kernel.sym` image.
///
/// Normalises `syms` in place first, and the image lists exactly what is left:
/// * symbols with an empty name are dropped;
/// * the rest are sorted by address;
/// * of several symbols at one address only one is kept, chosen deterministically: the
///   largest `size` (a known extent beats an unknown one), then the longest name (the
///   most specific, e.g. a full path over a short alias), then the lexicographically
///   smallest name.
///
/// Sizes above `u32::MAX` are stored as `u32::MAX`.
///
/// # Panics
///
/// If the symbol count or the total length of the names exceeds `u32::MAX`.
#[cfg(any(test, feature = "std"))]
pub fn encode_symbols(
    syms: &mut alloc::vec::Vec<(u64, u64, alloc::string::String)>,
) -> alloc::vec::Vec<u8> {
    syms.retain(|(_, _, name)| !name.is_empty());
    syms.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.1.cmp(&a.1))
            .then(b.2.len().cmp(&a.2.len()))
            .then(a.2.cmp(&b.2))
    });
    syms.dedup_by_key(|(addr, _, _)| *addr);

    let count = u32::try_from(syms.len()).expect("kernel.sym: more than u32::MAX symbols");
    let strings_len: usize = syms.iter().map(|(_, _, name)| name.len()).sum();
    let strings_len =
        u32::try_from(strings_len).expect("kernel.sym: names longer than u32::MAX in total");

    let mut out =
        alloc::vec::Vec::with_capacity(HEADER_LEN + ENTRY_LEN * syms.len() + strings_len as usize);
    out.extend_from_slice(&SYM_MAGIC);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&strings_len.to_le_bytes());
    let mut name_off = 0u32;
    for (addr, size, name) in syms.iter() {
        // Both fit: the sum of all name lengths fits in a u32.
        let name_len = name.len() as u32;
        out.extend_from_slice(&addr.to_le_bytes());
        out.extend_from_slice(&u32::try_from(*size).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&name_off.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        name_off += name_len;
    }
    for (_, _, name) in syms.iter() {
        out.extend_from_slice(name.as_bytes());
    }
    out
}
