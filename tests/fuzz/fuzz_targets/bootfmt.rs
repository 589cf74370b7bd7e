//! Fuzz target `bootfmt`: the boot-module reader (`frond-bootfmt`).
//!
//! The same input goes to both readers. The cpio "newc" bundle: `validate`, `entries` and
//! `find` must never panic and must agree — `entries` yields exactly the count `validate`
//! returned, `find` returns the first entry of a name (checked for the first eight), and
//! a bundle that is rejected is rejected by all three. An accepted bundle whose entries
//! `check_entry` allows is written again with `write_newc` and must read back to the same
//! entries. The symbol table (`kernel.sym`): `SymbolTable::parse` must never panic; an
//! accepted table's symbols are in strictly increasing address order, `get` and `iter`
//! agree, and `lookup` of a symbol's address (the first and last 16 symbols) and of
//! addresses the input names returns a symbol at or below it. A `kernel.sym` entry
//! inside an accepted bundle is parsed too.

#![no_main]

use frond_bootfmt::{check_entry, entries, find, validate, write_newc, SymbolTable, SYMBOLS_ENTRY};
use libfuzzer_sys::fuzz_target;

fn symbols(bytes: &[u8]) {
    let Ok(t) = SymbolTable::parse(bytes) else { return };
    let all: Vec<_> = t.iter().collect();
    assert_eq!(all.len(), t.len());
    assert_eq!(t.is_empty(), all.is_empty());
    for (i, s) in all.iter().enumerate() {
        if i > 0 {
            assert!(all[i - 1].addr < s.addr, "symbols out of order");
        }
        // The per-symbol checks below for the first and last few (keeps each run linear).
        if i >= 16 && i + 16 < all.len() {
            continue;
        }
        assert_eq!(t.get(i).as_ref(), Some(s));
        let found = t.lookup(s.addr).expect("a symbol's own address finds it");
        assert_eq!((found.addr, found.offset), (s.addr, 0));
        if s.size > 0 {
            let end = s.addr.saturating_add(s.size - 1);
            if let Some(f) = t.lookup(end) {
                assert!(f.addr <= end && end - f.addr == f.offset);
            }
        }
    }
    assert!(t.get(all.len()).is_none());
    for chunk in bytes.chunks(8).take(16) {
        let mut a = [0u8; 8];
        a[..chunk.len()].copy_from_slice(chunk);
        let addr = u64::from_le_bytes(a);
        if let Some(f) = t.lookup(addr) {
            assert!(f.addr <= addr && addr - f.addr == f.offset);
            assert!(f.size == 0 || f.offset < f.size);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match validate(data) {
        Ok(n) => {
            let list: Vec<(&str, &[u8])> = entries(data).expect("validate accepted it").collect();
            assert_eq!(list.len(), n, "entries and validate disagree on the count");
            // `find` validates the whole archive each time: the first 8 entries only.
            for (name, _) in list.iter().take(8) {
                let first = list.iter().find(|(m, _)| m == name).unwrap().1;
                let found = find(data, name).expect("an entry's own name is found");
                assert_eq!(found, first);
                assert_eq!(found.as_ptr(), first.as_ptr(), "find returns the first entry of a name");
            }
            if list.iter().all(|(name, bytes)| check_entry(name, bytes.len()).is_ok()) {
                let again = write_newc(&list);
                let back: Vec<(&str, &[u8])> = entries(&again).expect("write_newc output reads back").collect();
                assert_eq!(back, list, "round trip changed the entries");
            }
            if let Ok(sym) = find(data, SYMBOLS_ENTRY) {
                symbols(sym);
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert!(entries(data).is_err());
            assert!(find(data, SYMBOLS_ENTRY).is_err());
        }
    }
    symbols(data);
});
