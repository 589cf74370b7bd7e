//! Unit tests for both formats (host only; the writers are always built for them).

extern crate std;

use crate::*;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};

/// Tiny deterministic PRNG (xorshift64*), so the fuzz tests need no extra crates.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Entries with name and data lengths 0..8 around the 4-byte alignment boundaries.
fn sample_entries() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for len in 0..8usize {
        let name = "n".repeat(len + 1);
        let data = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
        out.push((name, data));
    }
    out.push(("kernel.sym".to_string(), b"not really symbols".to_vec()));
    out.push(("domains/ßπ.elf".to_string(), vec![0xff; 1000]));
    out
}

fn sample_archive() -> Vec<u8> {
    let owned = sample_entries();
    let refs: Vec<(&str, &[u8])> = owned
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    write_newc(&refs)
}

fn sample_symbols() -> Vec<(u64, u64, String)> {
    vec![
        (0x3000, 0x10, "frond_kernel::main".to_string()),
        (0x1000, 0x100, "frond_kernel::boot::start".to_string()),
        (0x2000, 0, "isr_common".to_string()),
        (0x1200, 0x20, "core::panicking::panic".to_string()),
    ]
}

// ---------------------------------------------------------------- cpio newc archive

#[test]
fn archive_roundtrip() {
    let owned = sample_entries();
    let archive = sample_archive();
    assert_eq!(archive.len() % 4, 0);
    assert_eq!(validate(&archive), Ok(owned.len()));
    let read: Vec<(&str, &[u8])> = entries(&archive).unwrap().collect();
    assert_eq!(read.len(), owned.len());
    for ((name, data), (rname, rdata)) in owned.iter().zip(&read) {
        assert_eq!(name, rname);
        assert_eq!(data.as_slice(), *rdata);
        assert_eq!(find(&archive, name), Ok(data.as_slice()));
    }
    assert_eq!(find(&archive, "missing"), Err(BundleError::NotFound));
    assert_eq!(find(&archive, ""), Err(BundleError::NotFound));
}

#[test]
fn empty_archive_is_just_a_trailer() {
    let archive = write_newc(&[]);
    assert_eq!(archive.len(), 124); // 110 + "TRAILER!!!\0" = 121, padded to 124
    assert_eq!(validate(&archive), Ok(0));
    assert_eq!(entries(&archive).unwrap().count(), 0);
    assert_eq!(find(&archive, "x"), Err(BundleError::NotFound));
}

#[test]
fn writer_header_layout() {
    let archive = write_newc(&[("ab", b"xyz")]);
    let header = core::str::from_utf8(&archive[..110]).unwrap();
    assert_eq!(
        header,
        "070701\
         00000001000081A4000000000000000000000001000000000000000300000000\
         00000000000000000000000000000003\
         00000000"
    );
    assert_eq!(&archive[110..113], b"ab\0");
    assert_eq!(&archive[113..116], &[0, 0, 0]); // 113 -> 116
    assert_eq!(&archive[116..119], b"xyz");
    assert_eq!(archive[119], 0); // 119 -> 120
    assert_eq!(&archive[120..126], b"070701");
    assert_eq!(&archive[230..241], b"TRAILER!!!\0");
}

#[test]
fn reads_archive_written_by_gnu_cpio() {
    // `printf 'hello.txt\ndir\ndir/b.bin\nempty\n' | cpio -o -H newc --reproducible`:
    // a directory entry and 512-byte block padding after the trailer.
    let archive = include_bytes!("../testdata/gnu-newc.cpio");
    let read: Vec<(&str, &[u8])> = entries(archive).unwrap().collect();
    assert_eq!(
        read,
        [
            ("hello.txt", &b"hello\n"[..]),
            ("dir", &b""[..]),
            ("dir/b.bin", &[0, 1, 2, 3, 4][..]),
            ("empty", &b""[..]),
        ]
    );
    assert_eq!(find(archive, "dir/b.bin"), Ok(&[0u8, 1, 2, 3, 4][..]));
}

#[test]
fn validator_agrees_with_cpio_reader() {
    // `entries` reads through cpio_reader; `walk` is our own validating parser. On valid
    // archives they must see exactly the same records.
    for archive in [
        sample_archive(),
        include_bytes!("../testdata/gnu-newc.cpio").to_vec(),
    ] {
        let mut ours = Vec::new();
        crate::bundle::walk(&archive, |n, d| ours.push((n.to_string(), d.to_vec()))).unwrap();
        let theirs: Vec<(String, Vec<u8>)> = entries(&archive)
            .unwrap()
            .map(|(n, d)| (n.to_string(), d.to_vec()))
            .collect();
        assert_eq!(ours, theirs);
    }
}

#[test]
fn every_truncation_of_an_archive_is_an_error() {
    let archive = sample_archive();
    for len in 0..archive.len() {
        let prefix = &archive[..len];
        let err = validate(prefix).expect_err(&format!("prefix of {len} bytes accepted"));
        assert!(
            matches!(
                err,
                BundleError::Empty
                    | BundleError::Truncated { .. }
                    | BundleError::MissingTrailer { .. }
            ),
            "prefix of {len} bytes: {err:?}"
        );
        assert_eq!(find(prefix, "kernel.sym"), Err(err));
        assert!(entries(prefix).is_err());
    }
    assert_eq!(validate(&[]), Err(BundleError::Empty));
    // Cut inside the padding after an entry's data: that record is truncated.
    let one = write_newc(&[("a", b"x")]); // record: 110 + "a\0" = 112, + 1 data, pad to 116
    assert_eq!(
        validate(&one[..114]),
        Err(BundleError::Truncated { offset: 0 })
    );
    assert_eq!(
        validate(&one[..116]),
        Err(BundleError::MissingTrailer { offset: 116 })
    );
    // Cut exactly before the trailer: a record boundary, so "missing trailer".
    let without_trailer = &archive[..archive.len() - 124];
    assert_eq!(
        validate(without_trailer),
        Err(BundleError::MissingTrailer {
            offset: archive.len() - 124
        })
    );
}

/// Overwrites the 8-digit header field `index` (0 = ino) of the record at `record`.
fn set_field(archive: &mut [u8], record: usize, index: usize, value: &[u8; 8]) {
    let at = record + 6 + 8 * index;
    archive[at..at + 8].copy_from_slice(value);
}

#[test]
fn corrupt_archives_are_rejected_with_the_right_error() {
    let good = write_newc(&[("first", b"1234"), ("second", b"5678")]);
    // "first": 110 + 6 = 116 (aligned), + 4 data = 120: second record at 120.
    let second = 120;
    assert_eq!(&good[second..second + 6], b"070701");

    let mut bad = good.clone();
    bad[0] = b'1';
    assert_eq!(validate(&bad), Err(BundleError::NotNewc));
    assert_eq!(find(&bad, "first"), Err(BundleError::NotNewc));
    assert_eq!(validate(b"garbage"), Err(BundleError::NotNewc));
    assert_eq!(validate(b"\x7fELF"), Err(BundleError::NotNewc));
    // Another cpio dialect: "070702" (newc with checksums).
    let mut crc = good.clone();
    crc[5] = b'2';
    assert_eq!(validate(&crc), Err(BundleError::NotNewc));

    let mut bad = good.clone();
    bad[second + 3] = b'x';
    assert_eq!(
        validate(&bad),
        Err(BundleError::BadHeader {
            offset: second,
            field: "magic"
        })
    );

    let mut bad = good.clone();
    set_field(&mut bad, 0, 6, b"0000000g");
    assert_eq!(
        validate(&bad),
        Err(BundleError::BadHeader {
            offset: 0,
            field: "filesize"
        })
    );

    let mut bad = good.clone();
    set_field(&mut bad, 0, 0, b"+0000001"); // from_str_radix would accept this
    assert_eq!(
        validate(&bad),
        Err(BundleError::BadHeader {
            offset: 0,
            field: "ino"
        })
    );

    let mut bad = good.clone();
    set_field(&mut bad, second, 1, b"000281A4");
    assert_eq!(
        validate(&bad),
        Err(BundleError::BadHeader {
            offset: second,
            field: "mode"
        })
    );

    let mut bad = good.clone();
    set_field(&mut bad, 0, 11, b"00000000");
    assert!(matches!(
        validate(&bad),
        Err(BundleError::BadName { offset: 0, .. })
    ));

    let mut bad = good.clone();
    set_field(&mut bad, 0, 11, b"00000005"); // name without its NUL
    assert_eq!(
        validate(&bad),
        Err(BundleError::BadName {
            offset: 0,
            reason: "not NUL-terminated"
        })
    );

    let mut bad = good.clone();
    bad[110] = 0xff;
    assert_eq!(
        validate(&bad),
        Err(BundleError::BadName {
            offset: 0,
            reason: "not UTF-8"
        })
    );

    let mut bad = good.clone();
    set_field(&mut bad, 0, 6, b"FFFFFFFF");
    assert_eq!(validate(&bad), Err(BundleError::Truncated { offset: 0 }));

    let mut bad = good.clone();
    set_field(&mut bad, 0, 11, b"FFFFFFFF");
    assert_eq!(validate(&bad), Err(BundleError::Truncated { offset: 0 }));

    // A data length off by 4 lands in the middle of the next record.
    let mut bad = good.clone();
    set_field(&mut bad, 0, 6, b"00000008");
    assert!(matches!(
        validate(&bad),
        Err(BundleError::BadHeader { offset: 124, .. })
    ));

    // Bytes after the trailer are ignored (GNU cpio pads to 512-byte blocks).
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 300]);
    assert_eq!(validate(&padded), Ok(2));
    assert_eq!(find(&padded, "second"), Ok(&b"5678"[..]));
}

#[test]
fn check_entry_rejects_unwritable_entries() {
    assert_eq!(check_entry("kernel.sym", 10), Ok(()));
    assert!(check_entry("", 0).is_err());
    assert!(check_entry("a\0b", 0).is_err());
    assert!(check_entry(TRAILER, 0).is_err());
    assert!(check_entry("big", u32::MAX as usize + 1).is_err());
    assert_eq!(check_entry("big", u32::MAX as usize), Ok(()));
}

#[test]
#[should_panic(expected = "reserved")]
fn write_newc_panics_on_reserved_name() {
    write_newc(&[(TRAILER, b"")]);
}

#[test]
fn random_archives_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let good = sample_archive();
    for round in 0..4000 {
        let input = match round % 3 {
            // Pure noise, sometimes behind a valid magic so the header parser is reached.
            0 => {
                let len = rng.below(400);
                rng.bytes(len)
            }
            1 => {
                let mut v = b"070701".to_vec();
                v.extend((0..rng.below(300)).map(|_| b"0123456789abcdefFX\0"[rng.below(19)]));
                v
            }
            // A valid archive with a few bytes changed and maybe cut short.
            _ => {
                let mut v = good.clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(v.len());
                    v[at] = match rng.below(3) {
                        0 => b"0123456789ABCDEF"[rng.below(16)],
                        1 => rng.next() as u8,
                        _ => 0,
                    };
                }
                v.truncate(rng.below(v.len() + 1));
                v
            }
        };
        let validated = validate(&input);
        let _ = find(&input, "kernel.sym");
        if let Ok(iter) = entries(&input) {
            // Whatever passes validation is read identically by cpio_reader.
            assert_eq!(Ok(iter.count()), validated);
        };
    }
}

// ---------------------------------------------------------------- symbol table

#[test]
fn symtab_roundtrip() {
    let mut syms = sample_symbols();
    let image = encode_symbols(&mut syms);
    // Sorted in place.
    let addrs: Vec<u64> = syms.iter().map(|s| s.0).collect();
    assert_eq!(addrs, [0x1000, 0x1200, 0x2000, 0x3000]);
    let table = SymbolTable::parse(&image).unwrap();
    assert_eq!(table.len(), 4);
    assert!(!table.is_empty());
    let listed: Vec<(u64, u64, String)> = table
        .iter()
        .map(|s| (s.addr, s.size, s.name.to_string()))
        .collect();
    assert_eq!(listed, syms);
    assert_eq!(
        image.len(),
        16 + 20 * 4 + syms.iter().map(|s| s.2.len()).sum::<usize>()
    );
    assert_eq!(&image[..8], b"FRSYM\0\x01\0");
}

#[test]
fn symtab_lookup() {
    let image = encode_symbols(&mut sample_symbols());
    let table = SymbolTable::parse(&image).unwrap();
    let hit = |addr| table.lookup(addr).map(|s| (s.name, s.addr, s.offset));
    let start = "frond_kernel::boot::start";
    assert_eq!(hit(0), None, "before the first symbol");
    assert_eq!(hit(0xfff), None, "just before the first symbol");
    assert_eq!(hit(0x1000), Some((start, 0x1000, 0)), "start");
    assert_eq!(hit(0x1080), Some((start, 0x1000, 0x80)), "middle");
    assert_eq!(hit(0x10ff), Some((start, 0x1000, 0xff)), "end - 1");
    assert_eq!(hit(0x1100), None, "end");
    assert_eq!(hit(0x11ff), None, "gap");
    assert_eq!(hit(0x1200).unwrap().0, "core::panicking::panic");
    assert_eq!(hit(0x1220), None, "end of second symbol");
    // Size 0: covers everything up to the next symbol.
    assert_eq!(hit(0x2000), Some(("isr_common", 0x2000, 0)));
    assert_eq!(hit(0x2fff), Some(("isr_common", 0x2000, 0xfff)));
    assert_eq!(hit(0x3000), Some(("frond_kernel::main", 0x3000, 0)));
    assert_eq!(hit(0x300f).map(|s| s.2), Some(0xf));
    assert_eq!(hit(0x3010), None, "past the last symbol");
    assert_eq!(hit(u64::MAX), None);
    let sym = table.lookup(0x1004).unwrap();
    assert_eq!(
        sym,
        Symbol {
            name: start,
            addr: 0x1000,
            size: 0x100,
            offset: 4
        }
    );
}

#[test]
fn symtab_lookup_edge_addresses() {
    let mut syms = vec![(0, 0, "zero".to_string()), (u64::MAX, 1, "top".to_string())];
    let image = encode_symbols(&mut syms);
    let table = SymbolTable::parse(&image).unwrap();
    assert_eq!(table.lookup(0).unwrap().name, "zero");
    assert_eq!(table.lookup(u64::MAX - 1).unwrap().offset, u64::MAX - 1);
    assert_eq!(table.lookup(u64::MAX).unwrap().name, "top");
}

#[test]
fn empty_symtab() {
    let image = encode_symbols(&mut Vec::new());
    assert_eq!(image.len(), 16);
    let table = SymbolTable::parse(&image).unwrap();
    assert_eq!(table.len(), 0);
    assert!(table.is_empty());
    assert_eq!(table.lookup(0x1000), None);
    assert_eq!(table.iter().count(), 0);
}

#[test]
fn encode_dedups_and_drops_empty_names_deterministically() {
    let mut syms = vec![
        (0x10, 0, "label".to_string()),
        (0x10, 8, "short".to_string()),
        (0x10, 8, "longer_name".to_string()),
        (0x10, 8, "longer_namf".to_string()),
        (0x20, 4, "bbb".to_string()),
        (0x20, 4, "aaa".to_string()),
        (0x30, 4, String::new()),
        (0x08, u64::MAX, "huge".to_string()),
    ];
    let mut reversed = syms.clone();
    reversed.reverse();
    let image = encode_symbols(&mut syms);
    assert_eq!(
        encode_symbols(&mut reversed),
        image,
        "input order must not matter"
    );
    let table = SymbolTable::parse(&image).unwrap();
    let listed: Vec<(u64, u64, &str)> = table.iter().map(|s| (s.addr, s.size, s.name)).collect();
    assert_eq!(
        listed,
        [
            (0x08, u32::MAX as u64, "huge"),
            (0x10, 8, "longer_name"),
            (0x20, 4, "aaa")
        ]
    );
}

#[test]
fn every_truncation_of_a_symtab_is_an_error() {
    let image = encode_symbols(&mut sample_symbols());
    for len in 0..image.len() {
        match SymbolTable::parse(&image[..len]) {
            Err(SymError::Truncated { actual, .. }) => assert_eq!(actual, len as u64),
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
}

/// Offset of field `at` (0 addr, 8 size, 12 name_off, 16 name_len) of record `index`.
fn rec(index: usize, at: usize) -> usize {
    16 + 20 * index + at
}

#[test]
fn corrupt_symtabs_are_rejected_with_the_right_error() {
    let good = encode_symbols(&mut sample_symbols());
    let len = good.len() as u64;
    assert!(SymbolTable::parse(&good).is_ok());

    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(SymbolTable::parse(&bad).unwrap_err(), SymError::BadMagic);
    let mut bad = good.clone();
    bad[6] = 2; // another format version
    assert_eq!(SymbolTable::parse(&bad).unwrap_err(), SymError::BadMagic);
    assert_eq!(
        SymbolTable::parse(b"\x7fELF").unwrap_err(),
        SymError::BadMagic
    );

    // Count too large / too small.
    let mut bad = good.clone();
    bad[8] += 1;
    assert_eq!(
        SymbolTable::parse(&bad).unwrap_err(),
        SymError::Truncated {
            expected: len + 20,
            actual: len
        }
    );
    let mut bad = good.clone();
    bad[8] -= 1;
    assert_eq!(
        SymbolTable::parse(&bad).unwrap_err(),
        SymError::TrailingBytes {
            expected: len - 20,
            actual: len
        }
    );
    let mut bad = good.clone();
    bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        SymbolTable::parse(&bad),
        Err(SymError::Truncated { .. })
    ));
    // String table length wrong, or bytes appended.
    let mut bad = good.clone();
    bad[12] += 1;
    assert!(matches!(
        SymbolTable::parse(&bad),
        Err(SymError::Truncated { .. })
    ));
    let mut bad = good.clone();
    bad.push(0);
    assert_eq!(
        SymbolTable::parse(&bad).unwrap_err(),
        SymError::TrailingBytes {
            expected: len,
            actual: len + 1
        }
    );

    // Name outside the string table, including offset + length overflowing u32.
    let mut bad = good.clone();
    bad[rec(2, 12)..rec(2, 16)].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(
        SymbolTable::parse(&bad).unwrap_err(),
        SymError::NameOutOfRange { index: 2 }
    );
    let mut bad = good.clone();
    bad[rec(1, 16)..rec(1, 20)].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(
        SymbolTable::parse(&bad).unwrap_err(),
        SymError::NameOutOfRange { index: 1 }
    );
    let mut bad = good.clone();
    bad[rec(3, 12)..rec(3, 16)].copy_from_slice(&u32::MAX.to_le_bytes());
    bad[rec(3, 16)..rec(3, 20)].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(
        SymbolTable::parse(&bad).unwrap_err(),
        SymError::NameOutOfRange { index: 3 }
    );

    // A name that is not UTF-8 (first byte of the string table: name of symbol 0).
    let mut bad = good.clone();
    let strings = rec(4, 0);
    bad[strings] = 0xff;
    assert_eq!(
        SymbolTable::parse(&bad).unwrap_err(),
        SymError::NameNotUtf8 { index: 0 }
    );

    // Unsorted and duplicate addresses.
    let mut bad = good.clone();
    bad[rec(2, 0)..rec(2, 8)].copy_from_slice(&0x1100u64.to_le_bytes()); // below 0x1200
    assert_eq!(
        SymbolTable::parse(&bad).unwrap_err(),
        SymError::Unsorted { index: 2 }
    );
    let mut bad = good.clone();
    bad[rec(1, 0)..rec(1, 8)].copy_from_slice(&0x1000u64.to_le_bytes()); // equal
    assert_eq!(
        SymbolTable::parse(&bad).unwrap_err(),
        SymError::Unsorted { index: 1 }
    );
}

#[test]
fn random_symtabs_never_panic() {
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let good = encode_symbols(&mut sample_symbols());
    let mut accepted = 0;
    for round in 0..4000 {
        let input = match round % 3 {
            0 => {
                let len = rng.below(200);
                rng.bytes(len)
            }
            // Valid magic and a small consistent header, random records and strings.
            1 => {
                let count = rng.below(6) as u32;
                let strings = rng.below(40) as u32;
                let mut v = SYM_MAGIC.to_vec();
                v.extend_from_slice(&count.to_le_bytes());
                v.extend_from_slice(&strings.to_le_bytes());
                for _ in 0..count {
                    v.extend_from_slice(&(rng.next() % 0x10000).to_le_bytes());
                    for _ in 0..3 {
                        v.extend_from_slice(&(rng.next() as u32 % 48).to_le_bytes());
                    }
                }
                v.extend((0..strings).map(|_| rng.next() as u8 & 0xbf));
                v
            }
            _ => {
                let mut v = good.clone();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(v.len());
                    v[at] = rng.next() as u8;
                }
                v
            }
        };
        if let Ok(table) = SymbolTable::parse(&input) {
            accepted += 1;
            assert_eq!(table.iter().count(), table.len());
            for _ in 0..20 {
                let addr = rng.next() % 0x10000;
                if let Some(sym) = table.lookup(addr) {
                    assert!(sym.addr <= addr && sym.offset == addr - sym.addr);
                    assert!(sym.size == 0 || sym.offset < sym.size);
                }
            }
        }
    }
    assert!(
        accepted > 0,
        "the structured generator should produce some valid tables"
    );
}
