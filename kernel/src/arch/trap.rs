//! Interrupt and exception entry.
//!
//! Stable Rust has no `x86-interrupt` ABI, so every vector gets a 16-byte assembly stub that
//! pushes a uniform [`TrapFrame`] (a dummy error code where the CPU pushes none, the vector
//! number, then all fifteen general-purpose registers) and calls [`trap_dispatch`]. The frame
//! is therefore a complete register snapshot for fault reports, and a context switch from an
//! interrupt needs no extra saving: the preempted thread's state is this frame on its own
//! stack (see `sched`).
//!
//! Vector map: 0–31 CPU exceptions (fatal, reported by `fault`); 0x20–0x2f the masked legacy
//! PIC (spurious only); [`IRQ_BASE`]+GSI for I/O APIC lines; 0xf0 local APIC timer;
//! 0xfe APIC error; 0xff APIC spurious.

use super::gdt;
use crate::arch::irq::IrqMutex;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::VirtAddr;

/// First vector used for I/O APIC inputs (GSI n → IRQ_BASE + n).
pub const IRQ_BASE: u8 = 0x30;
pub const TIMER_VECTOR: u8 = 0xf0;
pub const APIC_ERROR_VECTOR: u8 = 0xfe;
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// Register snapshot pushed by the entry stubs; field order mirrors the pushes in reverse.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

// One stub per vector, each exactly 16 bytes apart so stub(v) = isr_stubs + 16 * v.
// Vectors 8, 10-14, 17, 21, 29, 30 get an error code from the CPU; the others push 0.
core::arch::global_asm!(
    r#"
    .section .text
    .p2align 4
    .global isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
        .p2align 4
        .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
        .else
            push 0
        .endif
        push vec
        jmp isr_common
        .set vec, vec + 1
    .endr

    .global isr_common
isr_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call trap_dispatch
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq
"#
);

unsafe extern "C" {
    static isr_stubs: u8;
}

static IDT: spin::Once<InterruptDescriptorTable> = spin::Once::new();

type Handler = fn();
static HANDLERS: IrqMutex<[Option<Handler>; 256]> = IrqMutex::new([None; 256]);
static COUNTS: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];
/// Depth of interrupt nesting on this CPU (0 = thread context).
static DEPTH: AtomicUsize = AtomicUsize::new(0);

pub fn init_idt() {
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        // SAFETY: `isr_stubs` is the start of 256 16-byte stubs defined above.
        let base = unsafe { &isr_stubs as *const u8 as u64 };
        for v in 0..256u64 {
            let addr = VirtAddr::new(base + 16 * v);
            // SAFETY: each stub saves a TrapFrame and returns with iretq, as a handler must.
            let opts = unsafe {
                match v {
                    0 => idt.divide_error.set_handler_addr(addr),
                    1 => idt.debug.set_handler_addr(addr),
                    2 => idt.non_maskable_interrupt.set_handler_addr(addr),
                    3 => idt.breakpoint.set_handler_addr(addr),
                    4 => idt.overflow.set_handler_addr(addr),
                    5 => idt.bound_range_exceeded.set_handler_addr(addr),
                    6 => idt.invalid_opcode.set_handler_addr(addr),
                    7 => idt.device_not_available.set_handler_addr(addr),
                    8 => idt.double_fault.set_handler_addr(addr),
                    10 => idt.invalid_tss.set_handler_addr(addr),
                    11 => idt.segment_not_present.set_handler_addr(addr),
                    12 => idt.stack_segment_fault.set_handler_addr(addr),
                    13 => idt.general_protection_fault.set_handler_addr(addr),
                    14 => idt.page_fault.set_handler_addr(addr),
                    16 => idt.x87_floating_point.set_handler_addr(addr),
                    17 => idt.alignment_check.set_handler_addr(addr),
                    18 => idt.machine_check.set_handler_addr(addr),
                    19 => idt.simd_floating_point.set_handler_addr(addr),
                    20 => idt.virtualization.set_handler_addr(addr),
                    21 => idt.cp_protection_exception.set_handler_addr(addr),
                    28 => idt.hv_injection_exception.set_handler_addr(addr),
                    29 => idt.vmm_communication_exception.set_handler_addr(addr),
                    30 => idt.security_exception.set_handler_addr(addr),
                    9 | 15 | 22..=27 | 31 => continue, // reserved vectors
                    _ => idt[v as u8].set_handler_addr(addr),
                }
            };
            // SAFETY: the IST indices name stacks installed in the TSS by `gdt::init`.
            unsafe {
                match v {
                    8 => { opts.set_stack_index(gdt::IST_DOUBLE_FAULT); }
                    2 => { opts.set_stack_index(gdt::IST_NMI); }
                    18 => { opts.set_stack_index(gdt::IST_MACHINE_CHECK); }
                    _ => {}
                }
            }
        }
        idt
    });
    idt.load();
}

/// Installs `handler` for `vector` (an IRQ vector, not an exception).
pub fn set_handler(vector: u8, handler: Handler) {
    assert!(vector >= 32, "exceptions are handled by `fault`");
    HANDLERS.lock()[vector as usize] = Some(handler);
}

pub fn in_interrupt() -> bool {
    DEPTH.load(Ordering::Relaxed) > 0
}

/// Interrupts taken on `vector` since boot.
pub fn count(vector: u8) -> u64 {
    COUNTS[vector as usize].load(Ordering::Relaxed)
}

#[unsafe(no_mangle)]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    COUNTS[vector as usize].fetch_add(1, Ordering::Relaxed);
    if vector < 32 {
        // A fault in a domain's code kills that domain, not the kernel (never returns then).
        crate::domain::fault_in_domain(frame);
        crate::fault::exception(frame);
    }
    if (0x20..0x30).contains(&vector) {
        // Spurious interrupt from the masked 8259 PIC: no EOI to the APIC.
        return;
    }
    if vector == SPURIOUS_VECTOR {
        return;
    }
    DEPTH.fetch_add(1, Ordering::Relaxed);
    crate::inject::note_rip(frame.rip);
    let handler = HANDLERS.lock()[vector as usize];
    match handler {
        Some(h) => h(),
        None => log::warn!("unexpected interrupt vector {vector:#x}"),
    }
    super::apic::eoi();
    DEPTH.fetch_sub(1, Ordering::Relaxed);
    // Leaving the interrupt: switch threads if the handler made that necessary. The
    // preempted thread resumes here later and returns through the stub's iretq.
    crate::sched::preempt_point();
    // ...unless the domain it was running died meanwhile: then it is unwound instead.
    if !in_interrupt() {
        crate::inject::trap_exit();
        crate::domain::rpc::check_at_trap_exit(frame.rip);
    }
}
