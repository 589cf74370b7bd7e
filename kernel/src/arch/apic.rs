//! Local APIC (timer, EOI) and I/O APIC (device interrupts), with the legacy 8259 PIC
//! remapped out of the exception range and fully masked.
//!
//! The I/O APIC's address and the ISA-IRQ → GSI overrides come from the ACPI MADT (parsed
//! with the `acpi` crate); without a MADT the PC defaults (0xfec00000, identity ISA mapping,
//! edge/high) are used and a warning is logged.

use super::trap::{self, IRQ_BASE, TIMER_VECTOR};
use crate::arch::irq::IrqMutex;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

const IA32_APIC_BASE: u32 = 0x1b;
pub const DEFAULT_IOAPIC: u64 = 0xfec0_0000;

// Local APIC register offsets (Intel SDM vol. 3, table 11-1).
const REG_ID: usize = 0x20;
const REG_EOI: usize = 0xb0;
const REG_SVR: usize = 0xf0;
const REG_ESR: usize = 0x280;
const REG_LVT_TIMER: usize = 0x320;
const REG_LVT_ERROR: usize = 0x370;
const REG_TIMER_INIT: usize = 0x380;
const REG_TIMER_CUR: usize = 0x390;
const REG_TIMER_DIV: usize = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;

static LAPIC_BASE: AtomicU64 = AtomicU64::new(0);

fn lapic_read(reg: usize) -> u32 {
    let base = LAPIC_BASE.load(Ordering::Relaxed);
    // SAFETY: `base` is the local APIC MMIO page, mapped uncached by `mem::paging`.
    unsafe { core::ptr::read_volatile((base as usize + reg) as *const u32) }
}

fn lapic_write(reg: usize, value: u32) {
    let base = LAPIC_BASE.load(Ordering::Relaxed);
    // SAFETY: as in `lapic_read`.
    unsafe { core::ptr::write_volatile((base as usize + reg) as *mut u32, value) }
}

/// Physical address of the local APIC from IA32_APIC_BASE.
pub fn lapic_phys() -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU.
    unsafe { Msr::new(IA32_APIC_BASE).read() & 0xf_ffff_f000 }
}

/// Remaps the 8259 pair to vectors 0x20–0x2f and masks every line.
fn disable_pic() {
    // SAFETY: standard 8259 initialisation sequence on its fixed ports.
    unsafe {
        let mut cmd1: Port<u8> = Port::new(0x20);
        let mut data1: Port<u8> = Port::new(0x21);
        let mut cmd2: Port<u8> = Port::new(0xa0);
        let mut data2: Port<u8> = Port::new(0xa1);
        cmd1.write(0x11);
        cmd2.write(0x11);
        data1.write(0x20);
        data2.write(0x28);
        data1.write(4);
        data2.write(2);
        data1.write(1);
        data2.write(1);
        data1.write(0xff);
        data2.write(0xff);
    }
}

/// Enables the local APIC in xAPIC mode with the spurious vector set.
pub fn init_lapic() {
    disable_pic();
    let phys = lapic_phys();
    // SAFETY: enabling the APIC (bit 11) at its current base.
    unsafe { Msr::new(IA32_APIC_BASE).write(phys | (1 << 11)) };
    LAPIC_BASE.store(phys, Ordering::Relaxed);
    trap::set_handler(trap::APIC_ERROR_VECTOR, on_apic_error);
    lapic_write(REG_LVT_ERROR, trap::APIC_ERROR_VECTOR as u32);
    lapic_write(REG_SVR, 0x100 | trap::SPURIOUS_VECTOR as u32);
    lapic_write(REG_ESR, 0);
    eoi();
}

fn on_apic_error() {
    lapic_write(REG_ESR, 0);
    log::warn!("local APIC error, ESR={:#x}", lapic_read(REG_ESR));
}

pub fn lapic_id() -> u32 {
    lapic_read(REG_ID) >> 24
}

pub fn eoi() {
    lapic_write(REG_EOI, 0);
}

/// Starts the periodic timer at `hz`, calibrated against the (already calibrated) TSC.
pub fn start_timer(hz: u64, handler: fn()) {
    trap::set_handler(TIMER_VECTOR, handler);
    lapic_write(REG_TIMER_DIV, 0b0011); // divide by 16
    lapic_write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    lapic_write(REG_TIMER_INIT, u32::MAX);
    let t0 = crate::time::rdtsc();
    let window = crate::time::ns_to_tsc(2_000_000); // 2 ms
    while crate::time::rdtsc() - t0 < window {}
    let elapsed = u32::MAX - lapic_read(REG_TIMER_CUR);
    let per_sec = elapsed as u64 * 500;
    let count = (per_sec / hz).max(1);
    lapic_write(REG_LVT_TIMER, LVT_PERIODIC | TIMER_VECTOR as u32);
    lapic_write(REG_TIMER_INIT, count as u32);
    log::debug!("APIC timer: {per_sec} counts/s, {count} per tick at {hz} Hz");
}

/// An input of the I/O APIC as the platform wires it.
#[derive(Clone, Copy, Debug)]
struct IsaRoute {
    gsi: u32,
    active_low: bool,
    level: bool,
}

struct IoApic {
    base: u64,
    gsi_base: u32,
    isa: [IsaRoute; 16],
}

static IOAPIC: IrqMutex<Option<IoApic>> = IrqMutex::new(None);

impl IoApic {
    fn read(&self, reg: u32) -> u32 {
        // SAFETY: IOREGSEL/IOWIN of the I/O APIC page mapped by `mem::paging`.
        unsafe {
            core::ptr::write_volatile(self.base as *mut u32, reg);
            core::ptr::read_volatile((self.base + 0x10) as *const u32)
        }
    }

    fn write(&self, reg: u32, value: u32) {
        // SAFETY: as in `read`.
        unsafe {
            core::ptr::write_volatile(self.base as *mut u32, reg);
            core::ptr::write_volatile((self.base + 0x10) as *mut u32, value);
        }
    }

    fn max_redirect(&self) -> u32 {
        (self.read(1) >> 16) & 0xff
    }

    fn route(&self, gsi: u32, vector: u8, active_low: bool, level: bool, dest: u32) {
        let idx = gsi - self.gsi_base;
        assert!(idx <= self.max_redirect(), "GSI {gsi} beyond this I/O APIC");
        let mut low = vector as u32;
        if active_low {
            low |= 1 << 13;
        }
        if level {
            low |= 1 << 15;
        }
        self.write(0x10 + 2 * idx, 1 << 16); // mask while changing
        self.write(0x11 + 2 * idx, dest << 24);
        self.write(0x10 + 2 * idx, low);
    }
}

/// Identity-mapped access to ACPI tables for the `acpi` crate.
#[derive(Clone, Copy)]
struct IdentityMap;

impl acpi::AcpiHandler for IdentityMap {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> acpi::PhysicalMapping<Self, T> {
        // SAFETY: ACPI tables live in RAM/ACPI/reserved regions, all identity-mapped by
        // `mem::paging`; the crate only reads them.
        unsafe {
            acpi::PhysicalMapping::new(phys, NonNull::new(phys as *mut T).expect("ACPI table at 0"), size, size, *self)
        }
    }
    fn unmap_physical_region<T>(_region: &acpi::PhysicalMapping<Self, T>) {}
}

/// What the MADT said (or the defaults), for the boot log and `mem`.
pub struct Platform {
    pub ioapic_phys: u64,
    pub from_acpi: bool,
}

/// Locates the I/O APIC and ISA overrides. Must run after paging maps ACPI memory.
pub fn discover(rsdp: Option<u64>) -> Platform {
    let mut isa = [IsaRoute { gsi: 0, active_low: false, level: false }; 16];
    for (i, r) in isa.iter_mut().enumerate() {
        r.gsi = i as u32;
    }
    let mut ioapic = (DEFAULT_IOAPIC, 0u32);
    let mut from_acpi = false;

    // SAFETY: the RSDP address comes from the loader, or the BIOS area is searched; both are
    // identity-mapped and only read.
    let tables = unsafe {
        match rsdp {
            Some(addr) => acpi::AcpiTables::from_rsdp(IdentityMap, addr as usize),
            None => acpi::AcpiTables::search_for_rsdp_bios(IdentityMap),
        }
    };
    match tables {
        Ok(tables) => match tables.find_table::<acpi::madt::Madt>() {
            Ok(madt) => {
                from_acpi = true;
                let madt = madt.get();
                for entry in madt.entries() {
                    match entry {
                        // The I/O APIC serving GSI 0 handles the ISA lines.
                        acpi::madt::MadtEntry::IoApic(e) if e.global_system_interrupt_base == 0 => {
                            ioapic = (e.io_apic_address as u64, 0);
                        }
                        acpi::madt::MadtEntry::InterruptSourceOverride(o) => {
                            let irq = o.irq as usize;
                            if irq < 16 {
                                let flags = o.flags;
                                // MPS INTI flags: polarity bits 0-1 (3 = active low),
                                // trigger bits 2-3 (3 = level).
                                isa[irq] = IsaRoute {
                                    gsi: o.global_system_interrupt,
                                    active_low: flags & 0b11 == 0b11,
                                    level: (flags >> 2) & 0b11 == 0b11,
                                };
                            }
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => log::warn!("no ACPI MADT ({e:?}); using PC defaults for the I/O APIC"),
        },
        Err(e) => log::warn!("no ACPI tables ({e:?}); using PC defaults for the I/O APIC"),
    }
    // Boot time, from firmware tables: failing here leaves no interrupts at all.
    crate::mem::paging::map_mmio(ioapic.0, 4096).expect("mapping the I/O APIC");
    let io = IoApic { base: ioapic.0, gsi_base: ioapic.1, isa };
    for i in 0..=io.max_redirect() {
        io.write(0x10 + 2 * i, 1 << 16); // everything masked until routed
    }
    *IOAPIC.lock() = Some(io);
    Platform { ioapic_phys: ioapic.0, from_acpi }
}

/// Routes ISA IRQ `irq` to this CPU, installs `handler` for it and returns its vector
/// (which depends on the MADT's overrides).
pub fn route_isa_irq(irq: u8, handler: fn()) -> u8 {
    let guard = IOAPIC.lock();
    let io = guard.as_ref().expect("I/O APIC not discovered");
    let r = io.isa[irq as usize];
    let vector = IRQ_BASE + r.gsi as u8;
    trap::set_handler(vector, handler);
    io.route(r.gsi, vector, r.active_low, r.level, lapic_id());
    vector
}
