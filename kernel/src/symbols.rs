//! The kernel's own symbol table, for backtraces.
//!
//! The boot module carries `kernel.sym` (written by `tools/mkboot` from the kernel ELF, in
//! the `frond-bootfmt` format); it is validated once at boot. Without it backtraces show
//! bare addresses.

use frond_bootfmt::{Symbol, SymbolTable};
use spin::Once;

static TABLE: Once<SymbolTable<'static>> = Once::new();

/// Installs the table found in the boot module; returns how many symbols it holds.
pub fn init(bytes: &'static [u8]) -> Result<usize, frond_bootfmt::SymError> {
    let t = SymbolTable::parse(bytes)?;
    let n = t.len();
    TABLE.call_once(|| t);
    Ok(n)
}

pub fn lookup(addr: u64) -> Option<Symbol<'static>> {
    TABLE.get()?.lookup(addr)
}
