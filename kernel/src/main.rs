//! # frond-kernel — Frond's trusted core
//!
//! Boots through PVH (see `boot`), then sets up, in order: the serial console and logger,
//! physical memory from the PVH memory map, page tables with guard-paged stacks, the kernel
//! heap, GDT/TSS/IDT, the TSC (calibrated against the PIT), the local APIC timer, the I/O
//! APIC (from the ACPI MADT), and preemptive threads. It then runs either one in-kernel test
//! (`test=NAME` on the command line) or the serial console.
//!
//! May depend on: `core`/`alloc`, the kept crates listed in Cargo.toml, `frond-bootfmt`.
//! Nothing depends on the kernel binary.
//!
//! Invariants:
//! * One CPU. Kernel data shared with interrupt handlers is guarded by `IrqMutex`.
//! * Floating point / SIMD: the target is soft-float (`-mmx,-sse,+soft-float`). CR0.EM is set
//!   and CR4.OSFXSR cleared, so an x87 instruction raises #NM and an SSE instruction #UD, and
//!   the fault report names it; no FPU state exists to save on a context switch.
//! * A context switch saves rbx, rbp, r12–r15 and rsp (see `sched`).
//! * `unsafe` appears only where hardware or the boot protocol demands it, each block with a
//!   `SAFETY:` comment.

#![no_std]
#![no_main]

extern crate alloc;

mod assembly;
mod arch {
    pub mod apic;
    pub mod gdt;
    pub mod irq;
    pub mod qemu;
    pub mod trap;
}
mod boot;
mod cmdline;
mod console;
mod crashsched;
mod demo;
mod domain;
mod fault;
mod inject;
mod kbench;
mod ktest;
mod ktest_domains;
mod ktest_hostile;
mod net;
mod netbench;
mod pci;
mod mem {
    pub mod frame;
    pub mod heap;
    pub mod paging;
}
mod pvh;
mod rv6;
mod sched;
mod serial;
mod storage;
mod symbols;
mod time;

use arch::qemu::{exit, ExitCode};
use mem::{frame, heap, paging};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The compiler that built this kernel; domains built by another are refused (later issue).
pub const RUSTC_VERSION: &str = env!("FROND_RUSTC_VERSION");

/// Heap size: an eighth of RAM, clamped. Big enough for the scheduler and tests at 128 MiB
/// RAM, small enough to leave most frames for stacks, domains and DMA buffers.
const HEAP_MIN: u64 = 8 << 20;
const HEAP_MAX: u64 = 64 << 20;

#[unsafe(no_mangle)]
pub extern "C" fn kernel_main(start_info: u32) -> ! {
    time::record_boot_tsc();
    serial::init();
    serial::init_logger(log::LevelFilter::Info);

    // SAFETY: `start_info` is what the PVH loader passed in ebx; low memory is identity-mapped.
    let info = match unsafe { pvh::BootInfo::read(start_info as u64) } {
        Ok(i) => i,
        Err(e) => {
            println!("frond: unusable PVH start info: {e}");
            exit(ExitCode::Fail);
        }
    };
    let line = match info.cmdline() {
        Ok(l) => l,
        Err(_) => {
            println!("frond: kernel command line is not UTF-8");
            exit(ExitCode::Fail);
        }
    };
    let args = cmdline::parse(line);
    log::set_max_level(args.log);
    println!("Frond {VERSION} — single-address-space Rust OS, built by {RUSTC_VERSION}");

    disable_fpu();
    let tsc_hz = time::calibrate_tsc();
    init_memory(&info);
    args.apply_limits();

    let ist = [gdt_stack(), gdt_stack(), gdt_stack()];
    arch::gdt::init(ist);
    arch::trap::init_idt();
    sched::init();

    let syms = load_symbols(&info);
    domain::init(boot_module(&info));

    paging::map_mmio(arch::apic::lapic_phys(), 4096).expect("mapping the local APIC");
    arch::apic::init_lapic();
    let platform = arch::apic::discover(info.rsdp);
    arch::apic::start_timer(sched::TICK_HZ, on_tick);
    let com1_vector = arch::apic::route_isa_irq(serial::COM1_IRQ, serial::on_interrupt);
    serial::enable_rx_interrupt(com1_vector);
    pci::init();
    if let Err(e) = domain::start_watchdog() {
        println!("frond: {e}");
        exit(ExitCode::Fail);
    }

    let f = frame::stats();
    let h = heap::stats();
    let l = paging::layout();
    println!(
        "memory: {} MiB usable, {} MiB free; kernel image {} KiB at {:#x}; heap {} MiB; {} symbols",
        f.total * 4 / 1024,
        f.free * 4 / 1024,
        (l.end - l.text) / 1024,
        l.text,
        h.size >> 20,
        syms
    );
    log::info!(
        "TSC {} MHz; I/O APIC at {:#x} ({}); timer {} Hz",
        tsc_hz / 1_000_000,
        platform.ioapic_phys,
        if platform.from_acpi { "ACPI MADT" } else { "default" },
        sched::TICK_HZ
    );

    match (args.test, args.bench) {
        // The names must outlive boot (`info` is on the boot stack), hence the copies.
        (Some(name), _) => ktest::run_main(leak_str(name)),
        (None, Some(name)) => kbench::run_main(leak_str(name)),
        (None, None) => {
            rv6::set_wanted(args.storage.value("rv6") == Some("on"));
            sched::spawn("console", || console::run());
            // What starts and how it is wired is the system manifest's; in a thread of its
            // own: a domain thread it starts (the forwarding loop) must not keep the boot
            // context, which becomes the idle thread, from finishing.
            let (net, opts) = (args.net.to_static(), args.storage.to_static());
            sched::spawn("assembly", move || assembly::start(net, opts));
        }
    }
    x86_64::instructions::interrupts::enable();
    idle()
}

/// The timer interrupt: the scheduler's accounting, then the call watchdog's.
fn on_tick() {
    sched::on_tick();
    domain::watchdog_tick();
    inject::tick();
}

fn leak_str(s: &str) -> &'static str {
    alloc::boxed::Box::leak(alloc::string::String::from(s).into_boxed_str())
}

/// The idle thread: the boot context, halted until an interrupt needs it.
fn idle() -> ! {
    loop {
        x86_64::instructions::interrupts::enable_and_hlt();
        sched::preempt_point();
    }
}

fn disable_fpu() {
    // SAFETY: setting EM/MP and clearing OSFXSR/OSXMMEXCPT only changes how x87/SSE
    // instructions trap; the kernel is compiled soft-float and uses neither.
    unsafe {
        Cr0::update(|f| f.insert(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::MONITOR_COPROCESSOR));
        Cr4::update(|f| f.remove(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
    }
}

fn init_memory(info: &pvh::BootInfo) {
    for r in info.memmap() {
        if r.kind == pvh::MemType::Ram {
            frame::add_ram(r.start, r.end);
        }
    }
    let l = paging::layout();
    // Low memory holds firmware data (and the start info); keep it out of the pool.
    frame::reserve(0, 1 << 20);
    frame::reserve(l.text, l.end);
    if let Some(m) = info.module {
        frame::reserve(m.start, m.start + m.size);
    }
    paging::init(info);

    let total = frame::stats().total as u64 * frame::FRAME;
    let heap_bytes = (total / 8).clamp(HEAP_MIN, HEAP_MAX);
    let start = match frame::alloc_contiguous((heap_bytes / frame::FRAME) as usize) {
        Some(a) => a.as_u64(),
        None => {
            println!("frond: no {} MiB of contiguous memory for the kernel heap", heap_bytes >> 20);
            exit(ExitCode::Fail);
        }
    };
    // SAFETY: the frames were just taken from the allocator, are RAM and identity-mapped.
    unsafe { heap::init(start, heap_bytes as usize) };

    // The shared heap (RRefs) gets the same share of RAM as the kernel heap.
    let start = match frame::alloc_contiguous((heap_bytes / frame::FRAME) as usize) {
        Some(a) => a.as_u64(),
        None => {
            println!("frond: no {} MiB of contiguous memory for the shared heap", heap_bytes >> 20);
            exit(ExitCode::Fail);
        }
    };
    // SAFETY: as above.
    unsafe { domain::shared::init(start, heap_bytes as usize) };
}

fn gdt_stack() -> x86_64::VirtAddr {
    let s = paging::alloc_stack(arch::gdt::IST_STACK_SIZE).expect("no memory for an IST stack");
    let top = x86_64::VirtAddr::new(s.top());
    core::mem::forget(s); // IST stacks live for the whole run
    top
}

/// The boot module (domain images, kernel symbols), if the loader passed one.
fn boot_module(info: &pvh::BootInfo) -> Option<&'static [u8]> {
    let m = info.module?;
    // SAFETY: the module is RAM reserved at boot and identity-mapped; it is never written
    // and never freed.
    Some(unsafe { core::slice::from_raw_parts(m.start as *const u8, m.size as usize) })
}

/// Finds `kernel.sym` in the boot module; a missing or damaged table costs only symbol
/// names in backtraces, so it is a warning, not an error.
fn load_symbols(info: &pvh::BootInfo) -> usize {
    let Some(bytes) = boot_module(info) else {
        log::warn!("no boot module: backtraces will show bare addresses");
        return 0;
    };
    match frond_bootfmt::find(bytes, "kernel.sym").map_err(|e| alloc::format!("{e}")).and_then(|s| {
        symbols::init(s).map_err(|e| alloc::format!("{e}"))
    }) {
        Ok(n) => n,
        Err(e) => {
            log::warn!("boot module has no usable kernel.sym ({e}): backtraces show bare addresses");
            0
        }
    }
}
