//! `frond-mkboot`: builds Frond's boot module, the one file QEMU passes with `-initrd`.
//!
//! ```text
//! frond-mkboot --kernel <kernel ELF> --out <boot.cpio> [--add NAME=PATH ...]
//! ```
//!
//! Inputs:
//! * `--kernel`: the linked kernel ELF. Its symbol table must not be stripped.
//! * `--add NAME=PATH` (repeatable): a file to store in the module under `NAME` (later
//!   issues add domain ELF images this way).
//!
//! Output (`--out`): a cpio newc archive (format owned by `frond-bootfmt`) holding
//! `kernel.sym` first, then the `--add` entries in command-line order. `kernel.sym` is
//! the kernel's code symbols in the `frond-bootfmt` symbol-table format: every defined
//! function (`STT_FUNC`) plus every untyped label (`STT_NOTYPE`, e.g. assembly stubs such
//! as `isr_common`) inside an executable section, with a nonzero address; Rust names
//! demangled without their hash (`frond_kernel::main`). Labels get the extent up to the
//! end of their section, and labels that would hide a better name at the same address
//! (linker-script markers such as `__kernel_start` next to `pvh_start`) are dropped; see
//! `extract_symbols`.
//!
//! The archive is checked with the kernel's own reader before it is written, and written
//! atomically (temporary file, then rename). The output depends only on the inputs.
//! User errors (bad arguments, unreadable files, not an ELF, no symbols) print one line to
//! stderr and exit with status 1.

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;

use frond_bootfmt::{self as bootfmt, SymbolTable, SYMBOLS_ENTRY};
use object::{elf, Object, ObjectSection, ObjectSymbol, SectionFlags, SymbolKind};

const USAGE: &str =
    "usage: frond-mkboot --kernel <kernel ELF> --out <boot.cpio> [--add NAME=PATH ...]";

/// What to build, from the command line.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    /// The kernel ELF to take symbols from.
    kernel: PathBuf,
    /// Where to write the archive.
    out: PathBuf,
    /// Extra entries `(name, file)`, in command-line order.
    extra: Vec<(String, PathBuf)>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    /// `-h`/`--help`: print the usage.
    Help,
    /// Build a boot module.
    Build(Options),
}

/// Parses the arguments after the program name. Options take their value as the next
/// argument or after `=` (`--out=boot.cpio`).
fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let (mut kernel, mut out) = (None, None);
    let mut extra: Vec<(String, PathBuf)> = Vec::new();
    while let Some(arg) = args.next() {
        let text = arg
            .to_str()
            .ok_or_else(|| format!("argument {arg:?} is not valid UTF-8"))?;
        let (flag, inline) = match text.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(OsString::from(value))),
            _ => (text, None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .filter(|value| !value.is_empty())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--kernel" | "--out" => {
                let slot = if flag == "--kernel" {
                    &mut kernel
                } else {
                    &mut out
                };
                if slot.replace(PathBuf::from(value()?)).is_some() {
                    return Err(format!("{flag} given more than once"));
                }
            }
            "--add" => {
                let value = value()?;
                let spec = value
                    .to_str()
                    .ok_or_else(|| format!("--add {value:?} is not valid UTF-8"))?;
                let (name, path) = spec
                    .split_once('=')
                    .ok_or_else(|| format!("--add {spec:?} is not NAME=PATH"))?;
                bootfmt::check_entry(name, 0).map_err(|e| format!("--add {spec:?}: {e}"))?;
                if path.is_empty() {
                    return Err(format!("--add {spec:?}: empty path"));
                }
                if name == SYMBOLS_ENTRY || extra.iter().any(|(other, _)| other == name) {
                    return Err(format!(
                        "--add {spec:?}: entry {name:?} is already in the archive"
                    ));
                }
                extra.push((name.to_string(), PathBuf::from(path)));
            }
            _ if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ => return Err(format!("unexpected argument {text:?}")),
        }
    }
    Ok(Command::Build(Options {
        kernel: kernel.ok_or("missing --kernel <kernel ELF>")?,
        out: out.ok_or("missing --out <boot.cpio>")?,
        extra,
    }))
}

/// The address range of the section holding `symbol`, if that section is executable.
fn code_section(file: &object::File<'_>, symbol: &object::Symbol<'_, '_>) -> Option<Range<u64>> {
    let section = file.section_by_index(symbol.section_index()?).ok()?;
    let executable = match section.flags() {
        SectionFlags::Elf { sh_flags, .. } => sh_flags.contains(elf::SHF_EXECINSTR),
        _ => false,
    };
    let start = section.address();
    executable.then(|| start..start.saturating_add(section.size()))
}

/// Extracts the code symbols of an ELF image as `(address, size, demangled name)`.
///
/// Functions keep their ELF size. Labels (`STT_NOTYPE`) have none; each gets the extent
/// up to the end of its section, so that an address past the code is not attributed to
/// the last label. Labels that would only shadow better names are dropped: those outside
/// their section (`__text_end`), those at a function's address, and `__`-prefixed
/// (linker-script style, `__kernel_start`) labels at an address that also has another
/// label (`pvh_start`). Remaining ties are settled by `frond_bootfmt::encode_symbols`.
fn extract_symbols(image: &[u8]) -> Result<Vec<(u64, u64, String)>, String> {
    let file = object::File::parse(image).map_err(|e| format!("not an ELF file ({e})"))?;
    let (mut functions, mut labels) = (Vec::new(), Vec::new());
    for symbol in file.symbols() {
        let addr = symbol.address();
        if !symbol.is_definition() || addr == 0 {
            continue;
        }
        let (size, list) = match symbol.kind() {
            SymbolKind::Text => (symbol.size(), &mut functions),
            SymbolKind::Unknown => match code_section(&file, &symbol) {
                Some(range) if range.contains(&addr) => (range.end - addr, &mut labels),
                _ => continue,
            },
            _ => continue,
        };
        let name = symbol
            .name()
            .map_err(|e| format!("unreadable symbol name at index {} ({e})", symbol.index().0))?;
        // Skip nameless symbols and assembler-local labels.
        if name.is_empty() || name.starts_with(".L") {
            continue;
        }
        list.push((addr, size, format!("{:#}", rustc_demangle::demangle(name))));
    }

    let function_addrs: HashSet<u64> = functions.iter().map(|&(addr, ..)| addr).collect();
    let plain_label_addrs: HashSet<u64> = labels
        .iter()
        .filter(|(_, _, name)| !name.starts_with("__"))
        .map(|&(addr, ..)| addr)
        .collect();
    labels.retain(|(addr, _, name)| {
        let shadows_function = function_addrs.contains(addr);
        let shadows_label = name.starts_with("__") && plain_label_addrs.contains(addr);
        !shadows_function && !shadows_label
    });
    functions.append(&mut labels);
    if functions.is_empty() {
        return Err("no function symbols (is the ELF stripped?)".to_string());
    }
    Ok(functions)
}

/// Reads a file, naming it in the error.
fn read(what: &str, path: &std::path::Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

/// Builds the archive for `options` and writes it; returns a one-line summary.
fn run(options: &Options) -> Result<String, String> {
    let kernel = read("kernel", &options.kernel)?;
    let mut symbols =
        extract_symbols(&kernel).map_err(|e| format!("{}: {e}", options.kernel.display()))?;
    let mut entries = vec![(
        SYMBOLS_ENTRY.to_string(),
        bootfmt::encode_symbols(&mut symbols),
    )];
    for (name, path) in &options.extra {
        let data = read(name, path)?;
        bootfmt::check_entry(name, data.len()).map_err(|e| format!("{}: {e}", path.display()))?;
        entries.push((name.clone(), data));
    }
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let archive = bootfmt::write_newc(&refs);

    // Read it back the way the kernel will, so a writer/reader mismatch fails here.
    let table = bootfmt::find(&archive, SYMBOLS_ENTRY)
        .map_err(|e| e.to_string())
        .and_then(|image| SymbolTable::parse(image).map_err(|e| e.to_string()))
        .map_err(|e| format!("internal error: the archive does not read back: {e}"))?;

    let mut tmp = options.out.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, &archive)
        .and_then(|()| fs::rename(&tmp, &options.out))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            format!("cannot write {}: {e}", options.out.display())
        })?;
    Ok(format!(
        "wrote {} ({} bytes): {SYMBOLS_ENTRY} with {} symbols, {} more entries",
        options.out.display(),
        archive.len(),
        table.len(),
        options.extra.len()
    ))
}

fn main() -> ExitCode {
    let result = match parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Build(options)) => run(&options),
        Err(e) => Err(format!("{e} ({USAGE})")),
    };
    match result {
        Ok(summary) => {
            println!("frond-mkboot: {summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("frond-mkboot: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests;
