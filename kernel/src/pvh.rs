//! The PVH boot protocol's `hvm_start_info`, copied into owned Rust values.
//!
//! QEMU places the structures in low memory; they may be unaligned, so every field is read
//! with `read_unaligned`. Everything is copied out once at boot (before the heap exists,
//! hence fixed capacities) so no later code depends on the loader's memory.

use core::ptr::read_unaligned;

const MAGIC: u32 = 0x336e_c578;
/// Memory map entries kept; QEMU's q35 map has fewer than 10.
const MAX_MEMMAP: usize = 64;
/// Bytes of kernel command line kept (longer lines are refused, not truncated).
pub const MAX_CMDLINE: usize = 1024;

/// E820 memory types as the PVH memory map reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemType {
    Ram,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Unusable,
    Other(u32),
}

impl MemType {
    fn from_raw(t: u32) -> Self {
        match t {
            1 => Self::Ram,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            other => Self::Other(other),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct MemRegion {
    pub start: u64,
    pub end: u64,
    pub kind: MemType,
}

#[derive(Clone, Copy, Debug)]
pub struct Module {
    pub start: u64,
    pub size: u64,
}

pub struct BootInfo {
    memmap: [MemRegion; MAX_MEMMAP],
    memmap_len: usize,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    pub module: Option<Module>,
    pub rsdp: Option<u64>,
}

#[repr(C)]
struct RawStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
struct RawModule {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

#[repr(C)]
struct RawMemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// Why the start info could not be used; the kernel prints it and stops.
pub enum BootInfoError {
    BadMagic(u32),
    NoMemoryMap { version: u32 },
    CmdlineTooLong,
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Self::BadMagic(m) => write!(f, "bad magic {m:#x} (not started by a PVH loader?)"),
            Self::NoMemoryMap { version } => write!(f, "start info version {version} has no memory map"),
            Self::CmdlineTooLong => write!(f, "command line longer than {MAX_CMDLINE} bytes"),
        }
    }
}

impl BootInfo {
    /// Copies the start info at physical address `addr`.
    ///
    /// # Safety
    /// `addr` must be the `hvm_start_info` the loader passed in `ebx`, with the structures it
    /// points to identity-mapped (true under the boot page tables).
    pub unsafe fn read(addr: u64) -> Result<Self, BootInfoError> {
        // SAFETY: the caller guarantees `addr` is the loader's start info, identity-mapped.
        let raw = unsafe { read_unaligned(addr as *const RawStartInfo) };
        if raw.magic != MAGIC {
            return Err(BootInfoError::BadMagic(raw.magic));
        }
        if raw.version < 1 || raw.memmap_paddr == 0 || raw.memmap_entries == 0 {
            return Err(BootInfoError::NoMemoryMap { version: raw.version });
        }
        let mut info = BootInfo {
            memmap: [MemRegion { start: 0, end: 0, kind: MemType::Unusable }; MAX_MEMMAP],
            memmap_len: 0,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            module: None,
            rsdp: (raw.rsdp_paddr != 0).then_some(raw.rsdp_paddr),
        };
        for i in 0..(raw.memmap_entries as usize).min(MAX_MEMMAP) {
            let p = raw.memmap_paddr as usize + i * core::mem::size_of::<RawMemmapEntry>();
            // SAFETY: entry `i < memmap_entries` of the loader's map, identity-mapped.
            let e = unsafe { read_unaligned(p as *const RawMemmapEntry) };
            if e.size == 0 {
                continue;
            }
            info.memmap[info.memmap_len] = MemRegion {
                start: e.addr,
                end: e.addr.saturating_add(e.size),
                kind: MemType::from_raw(e.kind),
            };
            info.memmap_len += 1;
        }
        if raw.nr_modules >= 1 && raw.modlist_paddr != 0 {
            // SAFETY: the first module entry exists because nr_modules >= 1.
            let m = unsafe { read_unaligned(raw.modlist_paddr as *const RawModule) };
            if m.size > 0 {
                info.module = Some(Module { start: m.paddr, size: m.size });
            }
        }
        if raw.cmdline_paddr != 0 {
            let mut len = 0;
            loop {
                // SAFETY: the command line is a NUL-terminated string from the loader; we stop
                // at the NUL or at MAX_CMDLINE, whichever comes first.
                let b = unsafe { read_unaligned((raw.cmdline_paddr as usize + len) as *const u8) };
                if b == 0 {
                    break;
                }
                if len == MAX_CMDLINE {
                    return Err(BootInfoError::CmdlineTooLong);
                }
                info.cmdline[len] = b;
                len += 1;
            }
            info.cmdline_len = len;
        }
        Ok(info)
    }

    pub fn memmap(&self) -> &[MemRegion] {
        &self.memmap[..self.memmap_len]
    }

    /// The command line, or "" if it is not valid UTF-8 (reported by the caller).
    pub fn cmdline(&self) -> Result<&str, core::str::Utf8Error> {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len])
    }
}
