//! PCI: enumeration, BAR assignment, MSI-X, and device hand-over to driver domains.
//!
//! * **Enumeration** uses configuration mechanism #1 (ports 0xCF8/0xCFC) on bus 0 and on
//!   the secondary buses of bridges the firmware configured.
//! * **BARs**: every BAR is sized (all-ones probe with decoding off). A BAR the firmware
//!   left at 0 gets an address: memory BARs from [`MEM_WINDOW`] (above RAM, below the
//!   I/O APIC), I/O BARs from [`IO_WINDOW`], each aligned to its size and clear of every
//!   BAR already placed. qboot assigns none, so on our machines the kernel places them all.
//!   Decoding stays off until a driver is given the device.
//! * **Interrupts**: a device given to a driver gets one MSI-X vector: table entry 0 is
//!   programmed to deliver vector `MSI_BASE + n` to this CPU, every other entry stays
//!   masked, INTx is disabled. The handler marks the vector pending and wakes the thread
//!   waiting in [`irq_wait`] (a driver domain's, through `Syscalls::irq_wait`).
//! * **Ownership and containment**: [`bind`] records which domain drives a device. When
//!   that domain dies, [`quiesce`] clears the device's Bus Master Enable *before* the
//!   domain's memory is reclaimed, so the device can no longer DMA into memory that is
//!   about to be reused; the next driver instance resets the device and [`enable`] turns
//!   bus mastering back on.
//!
//! Registers are mapped uncached at their physical addresses (`paging::map_mmio`), so a
//! driver uses a BAR's address directly. Invariant: BAR ranges never overlap each other,
//! RAM, or the APIC pages.

use crate::arch::irq::IrqMutex;
use crate::mem::paging;
use crate::sched;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use frond_interface::net::{PciDevice, VendorCap};
use x86_64::instructions::port::Port;

/// Where unassigned memory BARs go: above the q35 MMCONFIG window, below the I/O APIC.
pub const MEM_WINDOW: (u64, u64) = (0xc000_0000, 0xfec0_0000);
/// Where unassigned I/O BARs go.
pub const IO_WINDOW: (u64, u64) = (0xc000, 0x1_0000);
/// First MSI vector; [`MSI_COUNT`] vectors follow.
pub const MSI_BASE: u8 = 0x50;
pub const MSI_COUNT: usize = 8;

const CMD_IO: u16 = 1 << 0;
const CMD_MEM: u16 = 1 << 1;
const CMD_BUS_MASTER: u16 = 1 << 2;
const CMD_INTX_DISABLE: u16 = 1 << 10;
const CAP_MSIX: u8 = 0x11;
const CAP_VENDOR: u8 = 0x09;
/// Bit 63 of a BAR address in [`PciDevice::bars`] marks an I/O BAR.
pub const IO_FLAG: u64 = 1 << 63;

#[derive(Clone, Debug)]
pub struct Function {
    pub bdf: u16,
    pub vendor: u16,
    pub device: u16,
    pub class: u32,
    /// (address, size); I/O BARs have [`IO_FLAG`] set; the upper half of a 64-bit BAR
    /// has size 0.
    pub bars: [(u64, u64); 6],
    /// Whether the kernel (not the firmware) placed each BAR.
    pub assigned: [bool; 6],
    pub caps: Vec<(u8, u8)>,
    /// Driver domain slot (0: none) and MSI vector (0: none).
    pub owner: u32,
    pub vector: u8,
}

impl Function {
    pub fn bus(&self) -> u8 {
        (self.bdf >> 8) as u8
    }
    pub fn dev(&self) -> u8 {
        ((self.bdf >> 3) & 31) as u8
    }
    pub fn func(&self) -> u8 {
        (self.bdf & 7) as u8
    }
    pub fn slot_name(&self) -> String {
        format!("{:02x}:{:02x}.{}", self.bus(), self.dev(), self.func())
    }
}

static FUNCTIONS: IrqMutex<Vec<Function>> = IrqMutex::new(Vec::new());
/// Keeps a 0xCF8/0xCFC pair atomic. Held with interrupts off: `quiesce` takes it from
/// [`crate::domain::die`], which High-priority threads run (the watchdog, the fault
/// injector, the crash schedule). A plain spin lock held by a preempted lower-priority
/// thread — a driver's kernel service reading its config space when the injector killed
/// it on that very tick — would let such a thread spin on it for ever on this one CPU.
static CONFIG: IrqMutex<()> = IrqMutex::new(());

fn address(bdf: u16, off: u8) -> u32 {
    0x8000_0000 | (bdf as u32) << 8 | (off as u32 & 0xfc)
}

pub fn read32(bdf: u16, off: u8) -> u32 {
    let _g = CONFIG.lock();
    // SAFETY: configuration mechanism #1: 0xCF8 selects a register, 0xCFC reads it; the
    // lock keeps the pair atomic. Reading config space has no side effects.
    unsafe {
        Port::<u32>::new(0xcf8).write(address(bdf, off));
        Port::<u32>::new(0xcfc).read()
    }
}

pub fn write32(bdf: u16, off: u8, value: u32) {
    let _g = CONFIG.lock();
    // SAFETY: as in `read32`; callers write only registers whose meaning they know.
    unsafe {
        Port::<u32>::new(0xcf8).write(address(bdf, off));
        Port::<u32>::new(0xcfc).write(value);
    }
}

pub fn read16(bdf: u16, off: u8) -> u16 {
    (read32(bdf, off) >> ((off & 2) * 8)) as u16
}

pub fn write16(bdf: u16, off: u8, value: u16) {
    let shift = (off & 2) * 8;
    let old = read32(bdf, off);
    write32(bdf, off, (old & !(0xffff << shift)) | (value as u32) << shift);
}

fn read8(bdf: u16, off: u8) -> u8 {
    (read32(bdf, off) >> ((off & 3) * 8)) as u8
}

/// Walks the bus hierarchy and places unassigned BARs. Call once at boot.
pub fn init() {
    let mut found = Vec::new();
    let mut buses = alloc::vec![0u8];
    let mut i = 0;
    while i < buses.len() {
        let bus = buses[i];
        i += 1;
        for dev in 0..32u16 {
            let functions = if read8((bus as u16) << 8 | dev << 3, 0x0e) & 0x80 != 0 { 8 } else { 1 };
            for f in 0..functions {
                let bdf = (bus as u16) << 8 | dev << 3 | f;
                let id = read32(bdf, 0);
                if id & 0xffff == 0xffff {
                    continue;
                }
                let header = read8(bdf, 0x0e) & 0x7f;
                if header == 1 {
                    let secondary = read8(bdf, 0x19);
                    if secondary != 0 && !buses.contains(&secondary) {
                        buses.push(secondary);
                    }
                }
                found.push(probe(bdf, id, header));
            }
        }
    }
    place_bars(&mut found);
    for f in &found {
        log::debug!("pci {} {:04x}:{:04x} class {:06x} bars {:x?}", f.slot_name(), f.vendor, f.device, f.class, f.bars);
    }
    *FUNCTIONS.lock() = found;
}

fn probe(bdf: u16, id: u32, header: u8) -> Function {
    let mut bars = [(0u64, 0u64); 6];
    let nbars = if header == 0 { 6 } else if header == 1 { 2 } else { 0 };
    let cmd = read16(bdf, 0x04);
    write16(bdf, 0x04, cmd & !(CMD_IO | CMD_MEM));
    let mut b = 0;
    while b < nbars {
        let off = 0x10 + 4 * b as u8;
        let orig = read32(bdf, off);
        write32(bdf, off, 0xffff_ffff);
        let probe = read32(bdf, off);
        write32(bdf, off, orig);
        if probe == 0 {
            b += 1;
            continue;
        }
        if orig & 1 == 1 {
            let size = (!(probe & !3) as u64 + 1) & 0xffff;
            bars[b] = ((orig & !3) as u64 | IO_FLAG, size);
            b += 1;
        } else if (orig >> 1) & 3 == 2 && b + 1 < nbars {
            let hi_off = off + 4;
            let orig_hi = read32(bdf, hi_off);
            write32(bdf, hi_off, 0xffff_ffff);
            let probe_hi = read32(bdf, hi_off);
            write32(bdf, hi_off, orig_hi);
            let mask = (probe_hi as u64) << 32 | (probe & !0xf) as u64;
            bars[b] = ((orig_hi as u64) << 32 | (orig & !0xf) as u64, (!mask).wrapping_add(1));
            b += 2;
        } else {
            bars[b] = ((orig & !0xf) as u64, (!(probe & !0xf)).wrapping_add(1) as u64);
            b += 1;
        }
    }
    write16(bdf, 0x04, cmd);
    let mut caps = Vec::new();
    if read16(bdf, 0x06) & (1 << 4) != 0 {
        let mut p = read8(bdf, 0x34) & 0xfc;
        let mut guard = 0;
        while p != 0 && guard < 48 {
            caps.push((read8(bdf, p), p));
            p = read8(bdf, p + 1) & 0xfc;
            guard += 1;
        }
    }
    Function {
        bdf,
        vendor: id as u16,
        device: (id >> 16) as u16,
        class: read32(bdf, 0x08) >> 8,
        bars,
        assigned: [false; 6],
        caps,
        owner: 0,
        vector: 0,
    }
}

/// Places every BAR still at address 0, largest first (fewest alignment holes).
fn place_bars(fs: &mut [Function]) {
    let mut used: Vec<(u64, u64)> = Vec::new();
    for f in fs.iter() {
        for &(a, s) in &f.bars {
            if s != 0 && a & !IO_FLAG != 0 {
                used.push((a, s));
            }
        }
    }
    let mut todo: Vec<(usize, usize)> = Vec::new();
    for (fi, f) in fs.iter().enumerate() {
        for (bi, &(a, s)) in f.bars.iter().enumerate() {
            if s != 0 && a & !IO_FLAG == 0 {
                todo.push((fi, bi));
            }
        }
    }
    todo.sort_by_key(|&(fi, bi)| core::cmp::Reverse(fs[fi].bars[bi].1));
    for (fi, bi) in todo {
        let (a, size) = fs[fi].bars[bi];
        let io = a & IO_FLAG != 0;
        let (lo, hi) = if io { IO_WINDOW } else { MEM_WINDOW };
        let Some(base) = fit(lo, hi, size, io, &used) else {
            log::warn!("pci {}: no room for BAR {bi} ({size:#x} bytes)", fs[fi].slot_name());
            continue;
        };
        used.push((base | if io { IO_FLAG } else { 0 }, size));
        let f = &mut fs[fi];
        f.bars[bi].0 = base | if io { IO_FLAG } else { 0 };
        f.assigned[bi] = true;
        let off = 0x10 + 4 * bi as u8;
        let low_flags = read32(f.bdf, off) & if io { 3 } else { 0xf };
        write32(f.bdf, off, base as u32 | low_flags);
        if !io && (low_flags >> 1) & 3 == 2 {
            write32(f.bdf, off + 4, (base >> 32) as u32);
        }
    }
}

/// The lowest `size`-aligned address in `[lo, hi)` overlapping nothing in `used` (of the
/// same kind: I/O or memory).
fn fit(lo: u64, hi: u64, size: u64, io: bool, used: &[(u64, u64)]) -> Option<u64> {
    let size = size.max(if io { 4 } else { 4096 });
    let mut base = lo.div_ceil(size) * size;
    'outer: while base + size <= hi {
        for &(a, s) in used {
            if (a & IO_FLAG != 0) != io {
                continue;
            }
            let a = a & !IO_FLAG;
            if base < a + s && a < base + size {
                base = (a + s).div_ceil(size) * size;
                continue 'outer;
            }
        }
        return Some(base);
    }
    None
}

/// All functions found.
pub fn functions() -> Vec<Function> {
    FUNCTIONS.lock().clone()
}

/// Functions with `vendor:device`, in bus order.
pub fn find(vendor: u16, device: u16) -> Vec<Function> {
    FUNCTIONS.lock().iter().filter(|f| f.vendor == vendor && f.device == device).cloned().collect()
}

// ---------------------------------------------------------------------------------------
// Handing a device to a driver.

/// What a driver domain receives: BARs (mapped), vendor capabilities, the MSI-X vector.
/// Maps the memory BARs and programs MSI-X on the first call for this function.
pub fn prepare(bdf: u16) -> Result<PciDevice, String> {
    let mut fs = FUNCTIONS.lock();
    let f = fs.iter_mut().find(|f| f.bdf == bdf).ok_or_else(|| format!("no PCI function {bdf:#06x}"))?;
    for &(a, s) in &f.bars {
        if s != 0 && a & IO_FLAG == 0 {
            if a == 0 {
                return Err(format!("pci {}: BAR at {a:#x} unusable", f.slot_name()));
            }
            paging::map_mmio(a, s).map_err(|e| format!("pci {}: {e}", f.slot_name()))?;
        }
    }
    let mut d = PciDevice {
        bdf,
        vendor: f.vendor,
        device: f.device,
        bars: f.bars,
        caps: [VendorCap::default(); 8],
        ncaps: 0,
        msix_vector: 0,
    };
    for &(id, off) in &f.caps {
        if id == CAP_VENDOR && (d.ncaps as usize) < d.caps.len() {
            let cfg_type = read8(bdf, off + 3);
            let notify_mult = if cfg_type == 2 { read32(bdf, off + 16) } else { 0 };
            d.caps[d.ncaps as usize] = VendorCap {
                cfg_type,
                bar: read8(bdf, off + 4),
                offset: read32(bdf, off + 8),
                length: read32(bdf, off + 12),
                notify_mult,
            };
            d.ncaps += 1;
        }
    }
    let bdf_io = f.bars.iter().any(|b| b.1 != 0 && b.0 & IO_FLAG != 0);
    // Decoding must be on before the MSI-X table (device memory) can be written.
    enable_command(bdf, bdf_io);
    if f.vector == 0 {
        if let Some(&(_, off)) = f.caps.iter().find(|c| c.0 == CAP_MSIX) {
            let v = alloc_vector().ok_or("out of MSI vectors")?;
            program_msix(f, off, v)?;
            f.vector = v;
        }
    }
    d.msix_vector = f.vector;
    Ok(d)
}

fn program_msix(f: &Function, cap: u8, vector: u8) -> Result<(), String> {
    let ctrl = read16(f.bdf, cap + 2);
    let entries = (ctrl & 0x7ff) as u64 + 1;
    let table = read32(f.bdf, cap + 4);
    let (bar, off) = ((table & 7) as usize, (table & !7) as u64);
    let (base, size) = *f.bars.get(bar).ok_or("MSI-X table in a BAR that does not exist")?;
    if size == 0 || base & IO_FLAG != 0 || off + entries * 16 > size {
        return Err(format!("pci {}: MSI-X table outside its BAR", f.slot_name()));
    }
    let t = base + off;
    paging::map_mmio(t, entries * 16)?;
    let apic = crate::arch::apic::lapic_id() as u64;
    for e in 0..entries {
        let p = (t + e * 16) as *mut u32;
        // SAFETY: the table lies inside BAR `bar` (checked above), mapped uncached; each
        // entry is 4 dwords: address low/high, data, vector control (bit 0 = masked).
        unsafe {
            if e == 0 {
                p.write_volatile(0xfee0_0000 | (apic << 12) as u32);
                p.add(1).write_volatile(0);
                p.add(2).write_volatile(vector as u32);
                p.add(3).write_volatile(0);
            } else {
                p.add(3).write_volatile(1);
            }
        }
    }
    crate::arch::trap::set_handler(vector, MSI_HANDLERS[(vector - MSI_BASE) as usize]);
    // Enable MSI-X, unmask the function.
    write16(f.bdf, cap + 2, (ctrl | 1 << 15) & !(1 << 14));
    Ok(())
}

/// Turns on decoding and bus mastering and turns off INTx (called before each driver
/// instance starts, so a restarted driver finds bus mastering on again).
pub fn enable(bdf: u16) {
    let io = FUNCTIONS.lock().iter().find(|f| f.bdf == bdf).is_some_and(|f| f.bars.iter().any(|b| b.1 != 0 && b.0 & IO_FLAG != 0));
    enable_command(bdf, io);
}

fn enable_command(bdf: u16, io: bool) {
    let cmd = read16(bdf, 0x04);
    write16(bdf, 0x04, cmd | CMD_MEM | CMD_BUS_MASTER | CMD_INTX_DISABLE | if io { CMD_IO } else { 0 });
}

/// Records that domain `slot` drives `bdf`.
pub fn bind(bdf: u16, slot: u32) {
    if let Some(f) = FUNCTIONS.lock().iter_mut().find(|f| f.bdf == bdf) {
        f.owner = slot;
    }
}

/// Domain `slot` died: stop DMA from every device it drove (before its memory is reused).
/// Returns how many devices were stopped.
pub fn quiesce(slot: u32) -> usize {
    let bdfs: Vec<u16> = FUNCTIONS.lock().iter().filter(|f| f.owner == slot && slot != 0).map(|f| f.bdf).collect();
    for &bdf in &bdfs {
        let cmd = read16(bdf, 0x04);
        write16(bdf, 0x04, cmd & !CMD_BUS_MASTER);
    }
    bdfs.len()
}

// ---------------------------------------------------------------------------------------
// MSI vectors.

static NEXT_VECTOR: AtomicU32 = AtomicU32::new(0);
static PENDING: [AtomicBool; MSI_COUNT] = [const { AtomicBool::new(false) }; MSI_COUNT];
static WAITER: [AtomicU64; MSI_COUNT] = [const { AtomicU64::new(0) }; MSI_COUNT];
static FIRED: [AtomicU64; MSI_COUNT] = [const { AtomicU64::new(0) }; MSI_COUNT];

fn alloc_vector() -> Option<u8> {
    let n = NEXT_VECTOR.fetch_add(1, Relaxed) as usize;
    (n < MSI_COUNT).then(|| MSI_BASE + n as u8)
}

fn on_msi(i: usize) {
    FIRED[i].fetch_add(1, Relaxed);
    PENDING[i].store(true, Relaxed);
    let tid = WAITER[i].load(Relaxed);
    if tid != 0 {
        sched::wake_sleeper(tid);
    }
}

macro_rules! msi_handlers {
    ($($i:literal),*) => { [$({ fn h() { on_msi($i) } h as fn() }),*] };
}
static MSI_HANDLERS: [fn(); MSI_COUNT] = msi_handlers!(0, 1, 2, 3, 4, 5, 6, 7);

/// Interrupts delivered on `vector` since boot.
pub fn fired(vector: u8) -> u64 {
    vector.checked_sub(MSI_BASE).and_then(|i| FIRED.get(i as usize)).map_or(0, |c| c.load(Relaxed))
}

/// Whether domain `caller` drives the device that interrupts on `vector`.
pub fn may_wait(caller: u32, vector: u8) -> bool {
    let msi = vector.checked_sub(MSI_BASE).is_some_and(|i| (i as usize) < MSI_COUNT);
    msi && caller != 0 && FUNCTIONS.lock().iter().any(|f| f.vector == vector && f.owner == caller)
}

/// Blocks the calling thread until `vector` fires or `timeout_ns` passes; true if it
/// fired. Only the domain bound to the vector's device may wait (others get false).
pub fn irq_wait(caller: u32, vector: u8, timeout_ns: u64) -> bool {
    let Some(i) = vector.checked_sub(MSI_BASE).map(usize::from).filter(|&i| i < MSI_COUNT) else {
        return false;
    };
    if !may_wait(caller, vector) {
        return false;
    }
    let tid = sched::current_tid();
    WAITER[i].store(tid, Relaxed);
    sched::sleep_unless(timeout_ns, || PENDING[i].load(Relaxed));
    WAITER[i].store(0, Relaxed);
    PENDING[i].swap(false, Relaxed)
}
