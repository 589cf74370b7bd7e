//! Tests for argument parsing, symbol extraction and the whole run.

use super::*;
use object::write::{self, StandardSection, SymbolSection};
use object::{Architecture, BinaryFormat, Endianness, SymbolFlags, SymbolScope};
use std::path::Path;

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

fn build(list: &[&str]) -> Options {
    match parse_args(args(list)) {
        Ok(Command::Build(options)) => options,
        other => panic!("{list:?}: {other:?}"),
    }
}

fn parse_error(list: &[&str]) -> String {
    parse_args(args(list)).expect_err(&format!("{list:?} accepted"))
}

#[test]
fn parses_kernel_out_and_adds() {
    let options = build(&[
        "--kernel",
        "k.elf",
        "--out=b.cpio",
        "--add",
        "a=x/a.elf",
        "--add=b=y",
    ]);
    assert_eq!(
        options,
        Options {
            kernel: "k.elf".into(),
            out: "b.cpio".into(),
            extra: vec![("a".into(), "x/a.elf".into()), ("b".into(), "y".into())],
        }
    );
    // Order of options does not matter; a path may itself contain '='.
    let options = build(&["--add", "dom/x=p=q", "--out", "o", "--kernel", "k"]);
    assert_eq!(options.extra, [("dom/x".to_string(), PathBuf::from("p=q"))]);
    assert_eq!(
        parse_args(args(&["--out", "o", "--help"])),
        Ok(Command::Help)
    );
    assert_eq!(parse_args(args(&["-h"])), Ok(Command::Help));
}

#[test]
fn rejects_bad_arguments() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "missing --kernel"),
        (&["--kernel", "k"], "missing --out"),
        (&["--out", "o"], "missing --kernel"),
        (&["--kernel"], "--kernel needs a value"),
        (&["--kernel="], "--kernel needs a value"),
        (&["--kernel", "k", "--out"], "--out needs a value"),
        (
            &["--kernel", "a", "--kernel", "b"],
            "--kernel given more than once",
        ),
        (&["--verbose"], "unknown option --verbose"),
        (&["-k"], "unknown option -k"),
        (&["kernel.elf"], "unexpected argument \"kernel.elf\""),
        (&["--add", "noequals"], "not NAME=PATH"),
        (&["--add", "=path"], "entry name is empty"),
        (&["--add", "name="], "empty path"),
        (&["--add", "kernel.sym=x"], "already in the archive"),
        (&["--add", "TRAILER!!!=x"], "reserved"),
        (&["--add", "a=x", "--add", "a=y"], "already in the archive"),
    ];
    for (list, expected) in cases {
        let error = parse_error(list);
        assert!(
            error.contains(expected),
            "{list:?}: {error:?} lacks {expected:?}"
        );
        assert!(!error.contains('\n'), "{list:?}: error is not one line");
    }
}

/// Legacy and v0 mangled Rust names and what they demangle to (hash dropped).
const LEGACY: &str = "_ZN12frond_kernel4main17h0123456789abcdefE";
const V0: &str = "_RNvCs1234_12frond_kernel4idle";

/// A relocatable x86_64 ELF (symbol values are section offsets, used as addresses):
///
/// * `.text` at 0..0x40, functions: `LEGACY` at 0x10 (size 8, global), `V0` at 0x20
///   (size 4, local), `at_zero` at 0 (skipped: address 0);
/// * `.text` labels (NOTYPE): `pvh_start` and `__text_start` at 8 (the first wins),
///   `main_label` at 0x10 (skipped: a function's address), `isr_common` at 0x30,
///   `.Lanon` at 0x38 (skipped: assembler-local), `__lone_marker` at 0x3c (kept: alone),
///   `__text_end` at 0x40 (skipped: section end);
/// * `.data`: `DATA_OBJECT` (OBJECT) and `data_label` (NOTYPE) at 8, both skipped;
/// * `memcpy` undefined, skipped.
fn test_elf() -> Vec<u8> {
    use SymbolKind::{Data, Label, Text};
    let mut obj = write::Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let text = obj.section_id(StandardSection::Text);
    obj.append_section_data(text, &[0xc3; 0x40], 16);
    let data = obj.section_id(StandardSection::Data);
    obj.append_section_data(data, &[0; 16], 8);
    let (in_text, in_data) = (SymbolSection::Section(text), SymbolSection::Section(data));
    let symbols = [
        // (name, value, size, kind, local, section)
        (LEGACY, 0x10, 8, Text, false, in_text),
        (V0, 0x20, 4, Text, true, in_text),
        ("at_zero", 0, 4, Text, false, in_text),
        ("__text_start", 8, 0, Label, false, in_text),
        ("pvh_start", 8, 0, Label, false, in_text),
        ("main_label", 0x10, 0, Label, true, in_text),
        ("isr_common", 0x30, 0, Label, true, in_text),
        (".Lanon", 0x38, 0, Label, true, in_text),
        ("__lone_marker", 0x3c, 0, Label, false, in_text),
        ("__text_end", 0x40, 0, Label, false, in_text),
        ("DATA_OBJECT", 8, 8, Data, false, in_data),
        ("data_label", 8, 0, Label, true, in_data),
        ("memcpy", 0, 0, Text, false, SymbolSection::Undefined),
    ];
    for (name, value, size, kind, local, section) in symbols {
        obj.add_symbol(write::Symbol {
            name: name.as_bytes().to_vec(),
            value,
            size,
            kind,
            scope: if local {
                SymbolScope::Compilation
            } else {
                SymbolScope::Linkage
            },
            weak: false,
            section,
            flags: SymbolFlags::None,
        });
    }
    obj.write().expect("writing the test ELF")
}

#[test]
fn extracts_and_demangles_code_symbols() {
    let mut symbols = extract_symbols(&test_elf()).unwrap();
    symbols.sort();
    assert_eq!(
        symbols,
        [
            (0x08, 0x38, "pvh_start".to_string()),
            (0x10, 8, "frond_kernel::main".to_string()),
            (0x20, 4, "frond_kernel::idle".to_string()),
            (0x30, 0x10, "isr_common".to_string()),
            (0x3c, 4, "__lone_marker".to_string()),
        ]
    );
}

#[test]
fn rejects_non_elf_and_symbolless_input() {
    let error = extract_symbols(b"#!/bin/sh\necho hi\n").unwrap_err();
    assert!(error.starts_with("not an ELF file"), "{error}");
    assert!(extract_symbols(&[])
        .unwrap_err()
        .starts_with("not an ELF file"));
    let truncated = test_elf();
    assert!(extract_symbols(&truncated[..100]).is_err());

    let empty = write::Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let error = extract_symbols(&empty.write().unwrap()).unwrap_err();
    assert!(error.contains("no function symbols"), "{error}");
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("frond-mkboot-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn run_writes_a_readable_boot_module() {
    let dir = scratch("run");
    let kernel = dir.join("kernel.elf");
    let domain = dir.join("domain.bin");
    let out = dir.join("boot.cpio");
    fs::write(&kernel, test_elf()).unwrap();
    fs::write(&domain, b"domain image").unwrap();
    let options = Options {
        kernel,
        out: out.clone(),
        extra: vec![("domains/a.elf".to_string(), domain)],
    };
    let summary = run(&options).unwrap();
    assert!(summary.contains("with 5 symbols"), "{summary}");

    let archive = fs::read(&out).unwrap();
    let names: Vec<&str> = bootfmt::entries(&archive)
        .unwrap()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["kernel.sym", "domains/a.elf"]);
    assert_eq!(
        bootfmt::find(&archive, "domains/a.elf"),
        Ok(&b"domain image"[..])
    );
    let table = SymbolTable::parse(bootfmt::find(&archive, SYMBOLS_ENTRY).unwrap()).unwrap();
    let main = table.lookup(0x13).unwrap();
    assert_eq!((main.name, main.offset), ("frond_kernel::main", 3));
    assert_eq!(table.lookup(0x18), None);
    assert_eq!(table.lookup(0x35).unwrap().name, "isr_common");
    assert_eq!(table.lookup(0x0c).unwrap().name, "pvh_start");
    assert_eq!(table.lookup(0x3f).unwrap().name, "__lone_marker");
    assert_eq!(table.lookup(0x40), None, "past the end of .text");
    assert!(!Path::new(&format!("{}.tmp", out.display())).exists());

    // Same inputs, same bytes.
    run(&options).unwrap();
    assert_eq!(fs::read(&out).unwrap(), archive);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_reports_user_errors() {
    let dir = scratch("errors");
    let options = |kernel: &Path| Options {
        kernel: kernel.to_path_buf(),
        out: dir.join("boot.cpio"),
        extra: Vec::new(),
    };
    let missing = dir.join("missing.elf");
    let error = run(&options(&missing)).unwrap_err();
    assert!(
        error.starts_with("cannot read kernel") && error.contains("missing.elf"),
        "{error}"
    );

    let text = dir.join("notes.txt");
    fs::write(&text, "not an elf").unwrap();
    let error = run(&options(&text)).unwrap_err();
    assert!(error.contains("notes.txt: not an ELF file"), "{error}");

    let kernel = dir.join("kernel.elf");
    fs::write(&kernel, test_elf()).unwrap();
    let mut with_missing_add = options(&kernel);
    with_missing_add
        .extra
        .push(("x".to_string(), dir.join("nope")));
    let error = run(&with_missing_add).unwrap_err();
    assert!(
        error.starts_with("cannot read x") && error.contains("nope"),
        "{error}"
    );

    let mut bad_out = options(&kernel);
    bad_out.out = dir.join("no/such/dir/boot.cpio");
    assert!(run(&bad_out).unwrap_err().starts_with("cannot write"));
    assert!(!dir.join("boot.cpio").exists(), "nothing written on error");
    fs::remove_dir_all(&dir).unwrap();
}
