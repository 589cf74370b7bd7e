//! The boot module container: a cpio "newc" archive.
//!
//! # Format (as written by `cpio -o -H newc` and by [`write_newc`])
//!
//! A sequence of records, each starting at a multiple of 4 bytes:
//!
//! ```text
//! header   110 bytes: "070701" then 13 fields of 8 ASCII hex digits:
//!          ino mode uid gid nlink mtime filesize devmajor devminor
//!          rdevmajor rdevminor namesize check
//! name     namesize bytes, the last one NUL; then NUL padding so that
//!          header + name ends on a multiple of 4
//! data     filesize bytes; then NUL padding to a multiple of 4
//! ```
//!
//! The archive ends with a record named `TRAILER!!!`; bytes after it (GNU cpio pads to
//! 512-byte blocks) are ignored.
//!
//! # Reading
//!
//! [`validate`] walks every header with full bounds checks and rejects anything
//! malformed, so truncation and corruption are errors rather than silently missing
//! entries. Only then are the bytes handed to `cpio_reader`, which on its own stops
//! quietly at the first bad record and also accepts other cpio dialects. On a validated
//! archive both walk exactly the same records (checked by a test).
//!
//! Accepted beyond the strict format: upper- or lower-case hex digits, any file type in
//! `mode`, any content in the padding bytes, duplicate names ([`find`] returns the first).

use core::fmt;

/// Name of the record that ends every archive.
pub const TRAILER: &str = "TRAILER!!!";

/// Magic of a newc header ("new ASCII" format, no checksum).
const MAGIC: &[u8; 6] = b"070701";
/// Length of a newc header: the magic and 13 eight-digit hex fields.
const HEADER_LEN: usize = 6 + 13 * 8;
/// Header fields after the magic, in order (names used in error messages).
const FIELDS: [&str; 13] = [
    "ino",
    "mode",
    "uid",
    "gid",
    "nlink",
    "mtime",
    "filesize",
    "devmajor",
    "devminor",
    "rdevmajor",
    "rdevminor",
    "namesize",
    "check",
];
const F_MODE: usize = 1;
const F_FILESIZE: usize = 6;
const F_NAMESIZE: usize = 11;
/// Bits a cpio mode may carry: file type (0o170000), suid/sgid/sticky and permissions.
const MODE_BITS: u32 = 0o177_777;

/// What is wrong with a boot module, or that the asked-for entry is not in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleError {
    /// The module has no bytes at all.
    Empty,
    /// The module does not start with the newc magic `070701`: it is not a cpio archive,
    /// or one in another cpio dialect (old binary, odc, crc).
    NotNewc,
    /// The header of the record at `offset` has a bad `field` (`"magic"`, or a field that
    /// is not 8 hex digits, or a mode with unknown bits).
    BadHeader {
        /// Byte offset of the record in the archive.
        offset: usize,
        /// Name of the bad header field.
        field: &'static str,
    },
    /// The name of the record at `offset` is malformed.
    BadName {
        /// Byte offset of the record in the archive.
        offset: usize,
        /// What is wrong with the name.
        reason: &'static str,
    },
    /// The record at `offset` (header, name, data or padding) runs past the end.
    Truncated {
        /// Byte offset of the record in the archive.
        offset: usize,
    },
    /// The archive ends at `offset`, on a record boundary, without a `TRAILER!!!` record.
    MissingTrailer {
        /// Length of the archive (where the trailer was expected).
        offset: usize,
    },
    /// The archive is valid but has no entry with the requested name.
    NotFound,
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "boot module is empty"),
            Self::NotNewc => write!(f, "not a cpio newc archive (bad magic at offset 0)"),
            Self::BadHeader { offset, field } => {
                write!(
                    f,
                    "cpio record at offset {offset}: bad header field `{field}`"
                )
            }
            Self::BadName { offset, reason } => {
                write!(f, "cpio record at offset {offset}: bad name ({reason})")
            }
            Self::Truncated { offset } => {
                write!(
                    f,
                    "cpio archive truncated: record at offset {offset} runs past the end"
                )
            }
            Self::MissingTrailer { offset } => {
                write!(
                    f,
                    "cpio archive truncated: no {TRAILER} record at offset {offset}"
                )
            }
            Self::NotFound => write!(f, "entry not found in the boot module"),
        }
    }
}

impl core::error::Error for BundleError {}

/// One record of an archive, as found by the validating walk.
struct Record<'a> {
    name: &'a str,
    data: &'a [u8],
    /// Offset of the next record.
    next: usize,
}

/// Rounds `n` up to a multiple of 4, or `None` on overflow.
fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|n| n & !3)
}

/// Reads header field `index` (8 hex digits) of `header`.
fn hex_field(header: &[u8], offset: usize, index: usize) -> Result<u32, BundleError> {
    let bad = BundleError::BadHeader {
        offset,
        field: FIELDS[index % FIELDS.len()],
    };
    let start = MAGIC.len() + 8 * index;
    let digits = header.get(start..start + 8).ok_or(bad)?;
    digits.iter().try_fold(0u32, |acc, &d| {
        let digit = char::from(d).to_digit(16).ok_or(bad)?;
        // At most 8 digits: the value fits in a u32 and the shift never drops bits.
        Ok((acc << 4) | digit)
    })
}

/// Parses and bounds-checks the record at `offset` (a multiple of 4).
fn read_record(archive: &[u8], offset: usize) -> Result<Record<'_>, BundleError> {
    let rest = archive.get(offset..).unwrap_or_default();
    if rest.is_empty() {
        return Err(match offset {
            0 => BundleError::Empty,
            _ => BundleError::MissingTrailer { offset },
        });
    }
    // Check the magic on the bytes present first, so garbage is not reported as truncation.
    let present = rest.len().min(MAGIC.len());
    if rest.get(..present) != MAGIC.get(..present) {
        return Err(match offset {
            0 => BundleError::NotNewc,
            _ => BundleError::BadHeader {
                offset,
                field: "magic",
            },
        });
    }
    let truncated = BundleError::Truncated { offset };
    let header = rest.get(..HEADER_LEN).ok_or(truncated)?;
    for index in 0..FIELDS.len() {
        hex_field(header, offset, index)?;
    }
    let mode = hex_field(header, offset, F_MODE)?;
    if mode & !MODE_BITS != 0 {
        return Err(BundleError::BadHeader {
            offset,
            field: "mode",
        });
    }
    let filesize = hex_field(header, offset, F_FILESIZE)? as usize;
    let namesize = hex_field(header, offset, F_NAMESIZE)? as usize;

    let bad_name = |reason| BundleError::BadName { offset, reason };
    if namesize == 0 {
        return Err(bad_name("namesize is 0"));
    }
    let name_end = HEADER_LEN.checked_add(namesize).ok_or(truncated)?;
    let name = rest.get(HEADER_LEN..name_end).ok_or(truncated)?;
    let (nul, name) = name.split_last().ok_or(bad_name("namesize is 0"))?;
    if *nul != 0 {
        return Err(bad_name("not NUL-terminated"));
    }
    if name.is_empty() {
        return Err(bad_name("empty"));
    }
    if name.contains(&0) {
        return Err(bad_name("contains a NUL byte"));
    }
    let name = core::str::from_utf8(name).map_err(|_| bad_name("not UTF-8"))?;

    // `offset` is a multiple of 4, so aligning relative to the record start (what the
    // format specifies) equals aligning relative to the archive start.
    let data_start = align4(name_end).ok_or(truncated)?;
    let data_end = data_start.checked_add(filesize).ok_or(truncated)?;
    let record_len = align4(data_end).ok_or(truncated)?;
    if record_len > rest.len() {
        return Err(truncated);
    }
    let data = rest.get(data_start..data_end).ok_or(truncated)?;
    let next = offset.checked_add(record_len).ok_or(truncated)?;
    Ok(Record { name, data, next })
}

/// Walks the records before the trailer, calling `f` on each; errors on any defect.
pub(crate) fn walk<'a>(
    archive: &'a [u8],
    mut f: impl FnMut(&'a str, &'a [u8]),
) -> Result<(), BundleError> {
    let mut offset = 0;
    loop {
        let record = read_record(archive, offset)?;
        if record.name == TRAILER {
            return Ok(());
        }
        f(record.name, record.data);
        offset = record.next;
    }
}

/// Checks that `archive` is a complete, well-formed cpio newc archive (every header,
/// name and data range in bounds, ending in a `TRAILER!!!` record) and returns the
/// number of entries before the trailer.
pub fn validate(archive: &[u8]) -> Result<usize, BundleError> {
    let mut count = 0;
    walk(archive, |_, _| count += 1)?;
    Ok(count)
}

/// Returns the data of the first entry called `name` (exact match, no `./` stripping).
///
/// The whole archive is validated first: a corrupt or truncated archive is an error even
/// when the entry itself lies before the damage.
pub fn find<'a>(archive: &'a [u8], name: &str) -> Result<&'a [u8], BundleError> {
    entries(archive)?
        .find(|&(entry, _)| entry == name)
        .map(|(_, data)| data)
        .ok_or(BundleError::NotFound)
}

/// Validates `archive` and returns an iterator over its entries, in archive order, as
/// `(name, data)`; the `TRAILER!!!` record is not included. All entries are returned,
/// whatever their file type (regular files, directories, ...).
pub fn entries(archive: &[u8]) -> Result<impl Iterator<Item = (&str, &[u8])> + '_, BundleError> {
    validate(archive)?;
    Ok(cpio_reader::iter_files(archive).map(|entry| (entry.name(), entry.file())))
}

/// Checks that an entry can be written by [`write_newc`] and read back: the name is
/// non-empty, has no NUL byte, is not `TRAILER!!!`, and name and data fit the 32-bit size
/// fields. Returns what is wrong otherwise.
#[cfg(any(test, feature = "std"))]
pub fn check_entry(name: &str, data_len: usize) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("entry name is empty")
    } else if name.contains('\0') {
        Err("entry name contains a NUL byte")
    } else if name == TRAILER {
        Err("entry name TRAILER!!! is reserved for the end of the archive")
    } else if u32::try_from(name.len() + 1).is_err() {
        Err("entry name is longer than 4 GiB")
    } else if u32::try_from(data_len).is_err() {
        Err("entry data is larger than 4 GiB")
    } else {
        Ok(())
    }
}

/// Builds a cpio newc archive holding `entries` as `(name, data)`, in the given order,
/// followed by the `TRAILER!!!` record.
///
/// Every entry is a regular file with mode `0o100644`, uid/gid 0, one link, mtime 0 and
/// inode number `index + 1`, so the output depends only on the input. No padding beyond
/// the 4-byte alignment the format requires is added. Duplicate names are written as
/// given ([`find`] returns the first).
///
/// # Panics
///
/// If an entry fails [`check_entry`]; callers holding user input check it first.
#[cfg(any(test, feature = "std"))]
pub fn write_newc(entries: &[(&str, &[u8])]) -> alloc::vec::Vec<u8> {
    use alloc::vec::Vec;

    fn push_record(out: &mut Vec<u8>, ino: u32, mode: u32, name: &str, data: &[u8]) {
        let filesize = u32::try_from(data.len()).expect("checked by check_entry");
        let namesize = u32::try_from(name.len() + 1).expect("checked by check_entry");
        out.extend_from_slice(MAGIC);
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor
        // namesize check
        for field in [ino, mode, 0, 0, 1, 0, filesize, 0, 0, 0, 0, namesize, 0] {
            for shift in (0..8).rev() {
                out.push(b"0123456789ABCDEF"[((field >> (shift * 4)) & 0xf) as usize]);
            }
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    }

    let mut out = Vec::new();
    for (index, &(name, data)) in entries.iter().enumerate() {
        if let Err(problem) = check_entry(name, data.len()) {
            panic!("write_newc: entry {index} ({name:?}): {problem}");
        }
        let ino = u32::try_from(index + 1).unwrap_or(u32::MAX);
        push_record(&mut out, ino, 0o100_644, name, data);
    }
    push_record(&mut out, 0, 0, TRAILER, &[]);
    out
}
