//! Protected calls: the continuation mechanism behind every proxy.
//!
//! A proxied call runs through [`frond_rpc_enter`], an assembly trampoline that records a
//! resume point (the callee-saved registers, rsp and the return address — exactly what the
//! System V ABI requires a function to preserve) in a [`Cont`] on the caller's stack, links it on the thread's continuation chain, and calls into the callee. If the
//! callee's domain dies during the call, [`unwind`] loads that resume point: execution
//! continues as if `frond_rpc_enter` had returned a non-zero error code, and the frames of
//! the dead domain are simply abandoned — no destructor or other code of the dead domain
//! runs. This is setjmp/longjmp without "returns twice": Rust sees an ordinary call.
//!
//! Protected calls are made with interrupts enabled (domain code may block), so resuming
//! a continuation re-enables them: an unwind out of an interrupt or exception handler
//! needs no saved flags.
//!
//! The running thread's domain context — current domain, its generation and the innermost
//! continuation — lives in three per-CPU words saved and restored by the scheduler on every
//! switch ([`DomCtx`]). One CPU, so plain relaxed atomics suffice.
//!
//! When a domain dies, threads inside it are unwound at the next point they would run its
//! code again: at the end of an interrupt that preempted them ([`check_at_trap_exit`]),
//! after a kernel service they called returns ([`check_unwind`]), or when a call they
//! made from it returns (the caller-alive check in [`protected_call`]).

use super::{ALIVE, MAX};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering::Relaxed};
use rref::rpc::{RpcError, Target};
use rref::DomainId;

/// A resume point. Field offsets are used by the assembly below.
#[repr(C)]
pub struct Cont {
    regs: [u64; 6], // rbx, rbp, r12, r13, r14, r15
    rsp: u64,
    rip: u64,
    prev: *mut Cont,
    /// The domain the call came from (restored on return) and its generation.
    caller: u32,
    callee: u32,
    caller_gen: u64,
}

core::arch::global_asm!(
    r#"
    .section .text
    .global frond_rpc_enter
// u64 frond_rpc_enter(Cont *c /*rdi*/, void (*f)(void *) /*rsi*/, void *data /*rdx*/)
frond_rpc_enter:
    mov [rdi + 0], rbx
    mov [rdi + 8], rbp
    mov [rdi + 16], r12
    mov [rdi + 24], r13
    mov [rdi + 32], r14
    mov [rdi + 40], r15
    lea rax, [rsp + 8]
    mov [rdi + 48], rax
    mov rax, [rsp]
    mov [rdi + 56], rax
    sub rsp, 8
    mov rdi, rdx
    call rsi
    add rsp, 8
    xor eax, eax
    ret

    .global frond_rpc_resume
// noreturn frond_rpc_resume(const Cont *c /*rdi*/, u64 code /*rsi*/)
frond_rpc_resume:
    mov rbx, [rdi + 0]
    mov rbp, [rdi + 8]
    mov r12, [rdi + 16]
    mov r13, [rdi + 24]
    mov r14, [rdi + 32]
    mov r15, [rdi + 40]
    mov rsp, [rdi + 48]
    mov rax, rsi
    sti
    jmp qword ptr [rdi + 56]
"#
);

unsafe extern "C" {
    fn frond_rpc_enter(c: *mut Cont, f: unsafe extern "C" fn(*mut u8), data: *mut u8) -> u64;
    fn frond_rpc_resume(c: *const Cont, code: u64) -> !;
}

/// The running thread's domain context (per CPU; saved per thread by the scheduler).
static CUR_DOMAIN: AtomicU32 = AtomicU32::new(0);
static CUR_GEN: AtomicU64 = AtomicU64::new(super::KERNEL_GEN);
static CONT_TOP: AtomicPtr<Cont> = AtomicPtr::new(core::ptr::null_mut());
/// Calls into each domain slot.
pub static CALLS: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];

/// A thread's saved domain context.
#[derive(Clone, Copy, Debug)]
pub struct DomCtx {
    pub domain: u32,
    pub generation: u64,
    cont: *mut Cont,
}

// SAFETY: the continuation pointer is only dereferenced by the thread that owns the stack
// it points into (when that thread runs again).
unsafe impl Send for DomCtx {}

impl DomCtx {
    pub const KERNEL: DomCtx = DomCtx { domain: 0, generation: super::KERNEL_GEN, cont: core::ptr::null_mut() };
}

/// Scheduler hook: the outgoing thread's context.
pub fn save() -> DomCtx {
    DomCtx { domain: CUR_DOMAIN.load(Relaxed), generation: CUR_GEN.load(Relaxed), cont: CONT_TOP.load(Relaxed) }
}

/// Scheduler hook: install the incoming thread's context.
pub fn restore(c: DomCtx) {
    CUR_DOMAIN.store(c.domain, Relaxed);
    CUR_GEN.store(c.generation, Relaxed);
    CONT_TOP.store(c.cont, Relaxed);
}

#[inline(always)]
pub fn current() -> (DomainId, u64) {
    (DomainId(CUR_DOMAIN.load(Relaxed)), CUR_GEN.load(Relaxed))
}

/// `slot` comes from a `Target` (built only by the kernel, with a valid slot) or from the
/// running context, so masking instead of a bounds check is exact.
#[inline(always)]
fn alive(slot: usize, generation: u64) -> bool {
    const _: () = assert!(MAX.is_power_of_two());
    ALIVE[slot & (MAX - 1)].load(Relaxed) == generation
}

fn code_of(e: RpcError) -> u64 {
    match e {
        RpcError::Panicked => 1,
        RpcError::Killed => 2,
        _ => 3,
    }
}

fn error_of(code: u64) -> RpcError {
    match code {
        1 => RpcError::Panicked,
        2 => RpcError::Killed,
        _ => RpcError::DomainDead,
    }
}

struct Frame<'a, T: ?Sized, F, O> {
    target: &'a Target<T>,
    f: MaybeUninit<F>,
    out: MaybeUninit<O>,
}

unsafe extern "C" fn shim<T: ?Sized, F: FnOnce(&T) -> O, O>(data: *mut u8) {
    // SAFETY: `data` is the `Frame` that `protected_call` set up for exactly these type
    // parameters; `f` was initialised there and is read once, here.
    let fr = unsafe { &mut *(data as *mut Frame<'_, T, F, O>) };
    let f = unsafe { fr.f.assume_init_read() };
    // SAFETY: `protected_call` checked the target's generation is alive just before; a
    // death during the call unwinds past this frame before the memory is reused.
    let obj = unsafe { fr.target.get() };
    fr.out.write(f(obj));
}

/// Runs `f` on `target`'s object as a protected call into its domain.
#[inline(always)]
pub fn protected_call<T: ?Sized, O, F: FnOnce(&T) -> O>(target: &Target<T>, f: F) -> Result<O, RpcError> {
    let slot = target.domain().0 as usize;
    let generation = target.generation();
    if !alive(slot, generation) {
        return Err(RpcError::DomainDead);
    }
    let caller = CUR_DOMAIN.load(Relaxed);
    let caller_gen = CUR_GEN.load(Relaxed);
    let mut cont = MaybeUninit::<Cont>::uninit();
    let c = cont.as_mut_ptr();
    // SAFETY: writing plain fields of our own stack slot.
    unsafe {
        (*c).prev = CONT_TOP.load(Relaxed);
        (*c).caller = caller;
        (*c).callee = slot as u32;
        (*c).caller_gen = caller_gen;
    }
    let mut frame = Frame { target, f: MaybeUninit::new(f), out: MaybeUninit::uninit() };
    debug_assert!(x86_64::instructions::interrupts::are_enabled(), "protected call with interrupts disabled");
    let counter = &CALLS[slot & (MAX - 1)];
    counter.store(counter.load(Relaxed) + 1, Relaxed);
    CONT_TOP.store(c, Relaxed);
    CUR_DOMAIN.store(slot as u32, Relaxed);
    CUR_GEN.store(generation, Relaxed);
    // SAFETY: `c` is a live Cont on this stack, linked as the innermost resume point until
    // we unlink it below; `shim` matches `frame`'s type parameters.
    let code = unsafe { frond_rpc_enter(c, shim::<T, F, O>, &mut frame as *mut _ as *mut u8) };
    // SAFETY: `prev` was written above and the Cont is still ours.
    CONT_TOP.store(unsafe { (*c).prev }, Relaxed);
    CUR_DOMAIN.store(caller, Relaxed);
    CUR_GEN.store(caller_gen, Relaxed);
    if caller as usize != 0 && !alive(caller as usize, caller_gen) {
        // We were called from a domain that died meanwhile: never return into its code.
        if code == 0 {
            // SAFETY: the call returned normally, so `out` was written.
            drop(unsafe { frame.out.assume_init_read() });
        }
        unwind(RpcError::Killed);
    }
    if code != 0 {
        return Err(error_of(code));
    }
    // SAFETY: code 0 means `shim` ran to completion and wrote `out`.
    Ok(unsafe { frame.out.assume_init_read() })
}

/// Abandons the current domain's frames: resumes the innermost continuation, whose proxy
/// returns `Err(reason)`. The current domain must already be marked dead.
pub fn unwind(reason: RpcError) -> ! {
    let c = CONT_TOP.load(Relaxed);
    assert!(!c.is_null(), "unwind with no continuation: kernel code cannot be unwound");
    // SAFETY: `c` is the innermost continuation of this thread, on this thread's stack,
    // below the frames being abandoned; its registers and rsp are a valid resume state.
    unsafe { frond_rpc_resume(c, code_of(reason)) }
}

/// True if the running thread is inside a dead domain and must be unwound.
#[inline]
pub fn must_unwind() -> bool {
    let d = CUR_DOMAIN.load(Relaxed) as usize;
    d != 0 && !alive(d, CUR_GEN.load(Relaxed))
}

/// After a kernel service returns to a domain: unwind if the domain died meanwhile.
pub fn check_unwind() {
    if must_unwind() {
        unwind(RpcError::Killed);
    }
}

/// At the end of an interrupt that is about to return to thread context at `rip`: a
/// thread interrupted in the code of a dead domain never executes another instruction of
/// it. (Kernel code running for a domain is left alone; it checks when it returns.)
pub fn check_at_trap_exit(rip: u64) {
    if must_unwind() && rip >= crate::mem::paging::DOMAIN_REGION {
        unwind(RpcError::Killed);
    }
}

/// True if the running thread is inside at least one protected call.
pub fn has_continuation() -> bool {
    !CONT_TOP.load(Relaxed).is_null()
}

/// Runs kernel code that must not be abandoned half-way (it takes locks, frees memory)
/// as the kernel: a trap or a returning call cannot unwind it even if the domain the
/// thread was running for dies meanwhile. The unwind happens after, at the next check.
pub fn as_kernel<R>(f: impl FnOnce() -> R) -> R {
    let saved_domain = CUR_DOMAIN.load(Relaxed);
    let saved_gen = CUR_GEN.load(Relaxed);
    CUR_DOMAIN.store(0, Relaxed);
    CUR_GEN.store(super::KERNEL_GEN, Relaxed);
    let r = f();
    CUR_DOMAIN.store(saved_domain, Relaxed);
    CUR_GEN.store(saved_gen, Relaxed);
    r
}
