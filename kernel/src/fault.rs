//! Fatal-error reporting: CPU exceptions and kernel panics.
//!
//! Every report has the same shape — a headline, the thread, the registers (for exceptions),
//! and a frame-pointer backtrace symbolised with the `kernel.sym` table from the boot module
//! — and ends the run with the failure exit code, so a test never hangs or triple-faults
//! silently. The reporter takes no lock it would wait on: the serial port lock is broken
//! (its holder will never run again) and the page-table and scheduler locks are only tried.

use crate::arch::qemu::{exit, ExitCode};
use crate::arch::trap::TrapFrame;
use crate::mem::paging::{self, StackHit};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::registers::control::{Cr2, Cr3};

/// Frames printed at most (deep enough for any kernel path; bounds a corrupt chain).
const MAX_FRAMES: usize = 32;

static REPORTING: AtomicBool = AtomicBool::new(false);

const NAMES: [&str; 32] = [
    "Divide error (#DE)",
    "Debug (#DB)",
    "Non-maskable interrupt (NMI)",
    "Breakpoint (#BP)",
    "Overflow (#OF)",
    "Bound range exceeded (#BR)",
    "Invalid opcode (#UD)",
    "Device not available (#NM)",
    "Double fault (#DF)",
    "Coprocessor segment overrun",
    "Invalid TSS (#TS)",
    "Segment not present (#NP)",
    "Stack-segment fault (#SS)",
    "General protection fault (#GP)",
    "Page fault (#PF)",
    "Reserved",
    "x87 floating-point error (#MF)",
    "Alignment check (#AC)",
    "Machine check (#MC)",
    "SIMD floating-point exception (#XM)",
    "Virtualization exception (#VE)",
    "Control protection exception (#CP)",
    "Reserved",
    "Reserved",
    "Reserved",
    "Reserved",
    "Reserved",
    "Reserved",
    "Hypervisor injection exception (#HV)",
    "VMM communication exception (#VC)",
    "Security exception (#SX)",
    "Reserved",
];

pub fn exception_name(vector: u8) -> &'static str {
    NAMES[vector as usize % 32]
}

/// Entered from `trap_dispatch` for vectors 0–31. Never returns.
pub fn exception(f: &TrapFrame) -> ! {
    x86_64::instructions::interrupts::disable();
    let mut w = crate::serial::emergency_writer();
    if REPORTING.swap(true, Ordering::SeqCst) {
        let _ = writeln!(w, "\n!!! EXCEPTION vector {} while reporting a fault; stopping", f.vector);
        exit(ExitCode::Fail);
    }
    let v = f.vector as usize;
    let cr2 = Cr2::read_raw();
    let _ = writeln!(w, "\n!!! EXCEPTION: {} (vector {v}), error code {:#x}", NAMES[v], f.error_code);
    if v == 14 {
        let e = f.error_code;
        let _ = writeln!(
            w,
            "    {} of a {} page{}{}",
            if e & 0x10 != 0 { "instruction fetch" } else if e & 2 != 0 { "write" } else { "read" },
            if e & 1 != 0 { "present (protection violation)" } else { "non-present" },
            if e & 8 != 0 { ", reserved bit set" } else { "" },
            if cr2 < 4096 { " — null pointer dereference" } else { "" },
        );
    }
    if v == 14 || v == 8 {
        match paging::classify(cr2) {
            Some(StackHit::Guard(slot)) => {
                let who = crate::sched::thread_with_stack_slot(slot);
                let _ = match who {
                    Some((id, name)) => writeln!(w, "    STACK OVERFLOW: CR2 is the guard page of thread {id} '{name}'"),
                    None => writeln!(w, "    STACK OVERFLOW: CR2 is the guard page of stack slot {slot}"),
                };
            }
            Some(StackHit::BootGuard) => {
                let _ = writeln!(w, "    STACK OVERFLOW: CR2 is the guard page of the boot/idle stack");
            }
            None => {}
        }
    }
    thread_line(&mut w);
    let _ = writeln!(w, "    RIP={:#018x} CS={:#x} RFLAGS={:#x}", f.rip, f.cs, f.rflags);
    let _ = writeln!(w, "    RSP={:#018x} SS={:#x}", f.rsp, f.ss);
    let _ = writeln!(w, "    CR2={:#018x} CR3={:#018x}", cr2, Cr3::read().0.start_address().as_u64());
    let _ = writeln!(w, "    RAX={:#018x} RBX={:#018x} RCX={:#018x} RDX={:#018x}", f.rax, f.rbx, f.rcx, f.rdx);
    let _ = writeln!(w, "    RSI={:#018x} RDI={:#018x} RBP={:#018x}", f.rsi, f.rdi, f.rbp);
    let _ = writeln!(w, "    R8 ={:#018x} R9 ={:#018x} R10={:#018x} R11={:#018x}", f.r8, f.r9, f.r10, f.r11);
    let _ = writeln!(w, "    R12={:#018x} R13={:#018x} R14={:#018x} R15={:#018x}", f.r12, f.r13, f.r14, f.r15);
    backtrace(&mut w, f.rip, f.rbp);
    exit(ExitCode::Fail)
}

fn thread_line(w: &mut impl Write) {
    match crate::sched::current_for_report() {
        Some((id, name, _)) => {
            let _ = writeln!(w, "    in thread {id} '{name}'");
        }
        None => {
            let _ = writeln!(w, "    in early boot (no scheduler)");
        }
    }
}

/// Prints `#0 pc` then walks the rbp chain. Each candidate frame pointer must be aligned
/// and mapped before it is read, so a corrupt chain ends the walk instead of faulting.
pub fn backtrace(w: &mut impl Write, pc: u64, mut rbp: u64) {
    let _ = writeln!(w, "backtrace:");
    frame_line(w, 0, pc, pc);
    let mut last = (pc, 0usize); // (return address, repeats) to fold deep recursion
    let mut i = 1;
    // Walk steps are bounded too: a 1 MiB stack holds at most 64 Ki minimal frames.
    for _ in 0..65_536 {
        if i >= MAX_FRAMES {
            break;
        }
        if rbp == 0 || !rbp.is_multiple_of(8) {
            break;
        }
        if paging::is_mapped(rbp) != Some(true) || paging::is_mapped(rbp + 8) != Some(true) {
            let _ = writeln!(w, "  (frame pointer {rbp:#x} not mapped; stopping)");
            break;
        }
        // SAFETY: both words were just checked to be mapped; they are read, not trusted.
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        if ret == last.0 {
            last.1 += 1;
        } else {
            if last.1 > 0 {
                let _ = writeln!(w, "      ... the same frame {} more times", last.1);
            }
            // Look up the call instruction, not the one after it (matters for noreturn calls).
            frame_line(w, i, ret, ret - 1);
            i += 1;
            last = (ret, 0);
        }
        if next <= rbp {
            break; // stacks grow down: callers' frames are at higher addresses
        }
        rbp = next;
    }
    if last.1 > 0 {
        let _ = writeln!(w, "      ... the same frame {} more times", last.1);
    }
}

fn frame_line(w: &mut impl Write, i: usize, addr: u64, lookup: u64) {
    match crate::symbols::lookup(lookup) {
        Some(s) => {
            let _ = writeln!(w, "  #{i:<2} {addr:#018x} {}+{:#x}", s.name, addr - s.addr);
        }
        None => {
            let _ = writeln!(w, "  #{i:<2} {addr:#018x} ?");
        }
    }
}

/// The current frame pointer (for panics, which have no trap frame).
#[inline(always)]
pub fn current_rbp() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) };
    rbp
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    let mut w = crate::serial::emergency_writer();
    if REPORTING.swap(true, Ordering::SeqCst) {
        let _ = writeln!(w, "\n!!! PANIC while reporting a fault: {}", info.message());
        exit(ExitCode::Fail);
    }
    let _ = write!(w, "\n!!! KERNEL PANIC: {}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(w, " at {}:{}", loc.file(), loc.line());
    }
    let _ = writeln!(w);
    thread_line(&mut w);
    let rbp = current_rbp();
    // SAFETY: rbp is this function's frame; its return address is at rbp+8 (frame pointers
    // are forced on for the kernel).
    let pc = unsafe { *((rbp + 8) as *const u64) };
    // SAFETY: as above; the saved caller frame pointer is at rbp.
    backtrace(&mut w, pc, unsafe { *(rbp as *const u64) });
    exit(ExitCode::Fail)
}
