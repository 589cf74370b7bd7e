//! Protected calls: the continuation mechanism behind every proxy.
//!
//! A proxied call records a resume point in a [`Cont`] on the caller's stack (what the
//! System V ABI makes callee-saved — rbx, rbp, r12–r15 — plus rsp and the resume address:
//! the inline assembly that makes the call declares every other register clobbered), links it on the thread's
//! continuation chain, and calls into the callee. If the callee's domain dies during the
//! call, [`unwind`] loads that resume point: execution
//! continues after that assembly block with a non-zero error code, and the frames of the
//! dead domain are simply abandoned — no destructor or other code of the dead domain runs.
//! This is setjmp/longjmp without "returns twice": Rust sees one opaque operation.
//!
//! Protected calls are made with interrupts enabled (domain code may block), so resuming
//! a continuation re-enables them: an unwind out of an interrupt or exception handler
//! needs no saved flags.
//!
//! The running thread's domain context — current domain, its generation and the innermost
//! continuation — lives in three per-CPU words saved and restored by the scheduler on every
//! switch ([`DomCtx`]). One CPU, so plain cells suffice.
//!
//! When a domain dies, threads inside it are unwound at the next point they would run its
//! code again: at the end of an interrupt that preempted them ([`check_at_trap_exit`]),
//! after a kernel service they called returns ([`check_unwind`]), or when a call they
//! made from it returns (the caller-alive check in [`protected_call`]).

use super::{ALIVE, MAX};
use core::cell::Cell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use rref::rpc::{RpcError, Target};
use rref::DomainId;

/// A resume point. Field offsets are used by the assembly below.
#[repr(C)]
pub struct Cont {
    rbx: u64,
    rbp: u64,
    rsp: u64,
    /// Where execution resumes: the end of the `asm!` block in [`protected_call`].
    rip: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    /// The next outer resume point of this thread.
    prev: *mut Cont,
    /// TSC ticks of CPU time charged to this call so far (time in the callee itself, not
    /// in calls it made), or [`EXEMPT`]. Written by the timer interrupt ([`charge`]).
    cpu: u64,
    /// The domain (and generation) that made this call: [`caller`].
    caller: u32,
    caller_gen: u64,
}

/// `Cont::cpu` of calls the watchdog never ends: the base call of a domain's own thread.
const EXEMPT: u64 = u64::MAX;

/// Stack a protected call leaves for the kernel code that may run on it (proxies,
/// recovery with a domain restart, kernel services, the fault path). A call that would
/// start with less room fails with `StackExhausted` instead; kernel services a domain
/// calls with less room treat it as the domain's stack overflow.
pub const STACK_RESERVE: u64 = 16 * 1024;

core::arch::global_asm!(
    r#"
    .section .text
    .global frond_rpc_resume
// noreturn frond_rpc_resume(const Cont *c /*rdi*/, u64 code /*rsi*/)
frond_rpc_resume:
    mov rbx, [rdi + 0]
    mov rbp, [rdi + 8]
    mov rsp, [rdi + 16]
    mov r12, [rdi + 32]
    mov r13, [rdi + 40]
    mov r14, [rdi + 48]
    mov r15, [rdi + 56]
    mov rax, rsi
    sti
    jmp qword ptr [rdi + 24]
"#
);

unsafe extern "C" {
    fn frond_rpc_resume(c: *const Cont, code: u64) -> !;
}

/// The running thread's domain context (per CPU; saved per thread by the scheduler).
///
/// Plain cells, not atomics, so the compiler may drop reads a proxy does not use. Sound on
/// one CPU: only the running thread touches them, except the scheduler, which (with
/// interrupts disabled) saves them for the outgoing thread and restores the incoming
/// thread's — so whenever a thread runs, it sees exactly the values it left.
struct PerCpu {
    domain: Cell<u32>,
    generation: Cell<u64>,
    cont: Cell<*mut Cont>,
    /// Lowest stack address a protected call may start at: the running thread's stack
    /// bottom plus [`STACK_RESERVE`].
    stack_floor: Cell<u64>,
    /// TSC when the running thread's CPU time was last charged ([`charge`]).
    charged_at: Cell<u64>,
    /// A move on this thread was refused (`SharedHeap::report_violation`); proxies take it
    /// right after their moves. Per thread, so another thread cannot clear or set it.
    violation: Cell<bool>,
}

struct CpuCell(PerCpu);

// SAFETY: one CPU; see `PerCpu`.
unsafe impl Sync for CpuCell {}

static CPU: CpuCell = CpuCell(PerCpu {
    domain: Cell::new(0),
    generation: Cell::new(super::KERNEL_GEN),
    cont: Cell::new(core::ptr::null_mut()),
    stack_floor: Cell::new(0),
    charged_at: Cell::new(0),
    violation: Cell::new(false),
});

/// Calls into each domain slot.
pub static CALLS: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];

/// A thread's saved domain context.
#[derive(Clone, Copy, Debug)]
pub struct DomCtx {
    pub domain: u32,
    pub generation: u64,
    cont: *mut Cont,
    stack_floor: u64,
    violation: bool,
}

// SAFETY: the continuation pointer is only dereferenced by the thread that owns the stack
// it points into (when that thread runs again).
unsafe impl Send for DomCtx {}

impl DomCtx {
    pub const KERNEL: DomCtx =
        DomCtx { domain: 0, generation: super::KERNEL_GEN, cont: core::ptr::null_mut(), stack_floor: 0, violation: false };

    /// The context a new thread starts with: the kernel, on a stack whose lowest usable
    /// address is `stack_bottom`.
    pub fn new_thread(stack_bottom: u64) -> DomCtx {
        DomCtx { stack_floor: stack_bottom + STACK_RESERVE, ..Self::KERNEL }
    }
}

/// Scheduler hook: the outgoing thread's context.
pub fn save() -> DomCtx {
    DomCtx {
        domain: CPU.0.domain.get(),
        generation: CPU.0.generation.get(),
        cont: CPU.0.cont.get(),
        stack_floor: CPU.0.stack_floor.get(),
        violation: CPU.0.violation.get(),
    }
}

/// Scheduler hook: install the incoming thread's context. Its CPU time is charged from now.
pub fn restore(c: DomCtx) {
    CPU.0.domain.set(c.domain);
    CPU.0.generation.set(c.generation);
    CPU.0.cont.set(c.cont);
    CPU.0.stack_floor.set(c.stack_floor);
    CPU.0.charged_at.set(crate::time::rdtsc());
    CPU.0.violation.set(c.violation);
}

/// Records a refused move on the running thread.
pub fn set_violation() {
    CPU.0.violation.set(true);
}

/// Whether a move on the running thread was refused since the last call; clears it. One
/// load and a branch when nothing happened.
#[inline(always)]
pub fn take_violation() -> bool {
    CPU.0.violation.get() && CPU.0.violation.replace(false)
}

#[inline(always)]
pub fn current() -> (DomainId, u64) {
    (DomainId(CPU.0.domain.get()), CPU.0.generation.get())
}

/// The domain that made the innermost protected call of the running thread (the kernel
/// if there is none): who is calling the running domain.
pub fn caller() -> (DomainId, u64) {
    let c = CPU.0.cont.get();
    if c.is_null() {
        return (DomainId::KERNEL, super::KERNEL_GEN);
    }
    // SAFETY: `c` is the running thread's innermost continuation, on its stack, linked
    // for the duration of the call; `caller`/`caller_gen` were written before linking.
    unsafe { (DomainId((*c).caller), (*c).caller_gen) }
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
        RpcError::Timeout => 4,
        _ => 3,
    }
}

/// Out of line: the successful call only tests the code for zero.
#[cold]
#[inline(never)]
fn error_of(code: u64) -> RpcError {
    match code {
        1 => RpcError::Panicked,
        2 => RpcError::Killed,
        4 => RpcError::Timeout,
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

/// Runs `f` on `target`'s object as a protected call into its domain. The watchdog ends
/// the call if the callee spends more than its CPU budget in it.
#[inline(always)]
pub fn protected_call<T: ?Sized, O, F: FnOnce(&T) -> O>(target: &Target<T>, f: F) -> Result<O, RpcError> {
    call::<T, O, F, true, false>(target, f)
}

/// A protected call the watchdog never ends: the base call of a domain's own thread.
pub fn protected_call_unbudgeted<T: ?Sized, O, F: FnOnce(&T) -> O>(target: &Target<T>, f: F) -> Result<O, RpcError> {
    call::<T, O, F, false, false>(target, f)
}

/// The protected call generated proxies make ([`super::KernelRt::call`]): a caller that
/// died during the call is not unwound here but gets an error, so the proxy can end its
/// lends first; it then unwinds in [`leave`].
#[inline(always)]
pub fn proxied_call<T: ?Sized, O, F: FnOnce(&T) -> O>(target: &Target<T>, f: F) -> Result<O, RpcError> {
    call::<T, O, F, true, true>(target, f)
}

/// After a proxy ended its lends: unwind if the calling domain died during the call.
#[inline(always)]
pub fn leave() {
    let caller = CPU.0.domain.get() as usize;
    if caller != 0 && !alive(caller, CPU.0.generation.get()) {
        unwind(super::death_reason(caller));
    }
}

#[inline(always)]
fn call<T: ?Sized, O, F: FnOnce(&T) -> O, const BUDGET: bool, const DEFER: bool>(
    target: &Target<T>,
    f: F,
) -> Result<O, RpcError> {
    let slot = target.domain().0 as usize;
    let generation = target.generation();
    if !alive(slot, generation) {
        return Err(RpcError::DomainDead);
    }
    let caller = CPU.0.domain.get();
    let caller_gen = CPU.0.generation.get();
    let mut cont = MaybeUninit::<Cont>::uninit();
    let c = cont.as_mut_ptr();
    // The Cont is on this stack: its address says how much room is left below.
    if (c as u64) < CPU.0.stack_floor.get() {
        return Err(RpcError::StackExhausted);
    }
    // SAFETY: writing plain fields of our own stack slot (the asm writes the others).
    unsafe {
        (*c).prev = CPU.0.cont.get();
        (*c).cpu = if BUDGET { 0 } else { EXEMPT };
        (*c).caller = caller;
        (*c).caller_gen = caller_gen;
    }
    let mut frame = Frame { target, f: MaybeUninit::new(f), out: MaybeUninit::uninit() };
    // The fault injector's armed panic: one load and a branch to an out-of-line copy of
    // the rest of the call, so nothing on this path has to survive a function call.
    if crate::inject::ARMED.load(Relaxed) {
        return enter_armed::<T, O, F, BUDGET, DEFER>(&mut frame, c, caller, caller_gen);
    }
    enter::<T, O, F, BUDGET, DEFER>(&mut frame, c, caller, caller_gen)
}

/// The rest of [`call`] while the fault injector has a panic armed: if this call is the
/// one (`crate::inject::proxy_entry`), the callee dies before it is entered, as a
/// panicking domain does, and the caller drops the arguments.
#[cold]
#[inline(never)]
fn enter_armed<T: ?Sized, O, F: FnOnce(&T) -> O, const BUDGET: bool, const DEFER: bool>(
    frame: &mut Frame<'_, T, F, O>,
    c: *mut Cont,
    caller: u32,
    caller_gen: u64,
) -> Result<O, RpcError> {
    let (slot, generation) = (frame.target.domain().0 as usize, frame.target.generation());
    if crate::inject::proxy_entry(slot, generation, core::any::type_name::<F>()) {
        // SAFETY: `f` was initialised by `call` and is read once, here; `shim` never ran.
        drop(unsafe { frame.f.assume_init_read() });
        return Err(RpcError::Panicked);
    }
    enter::<T, O, F, BUDGET, DEFER>(frame, c, caller, caller_gen)
}

/// Enters the callee of `frame` through the linked Cont `c` (see [`call`]).
#[inline(always)]
fn enter<T: ?Sized, O, F: FnOnce(&T) -> O, const BUDGET: bool, const DEFER: bool>(
    frame: &mut Frame<'_, T, F, O>,
    c: *mut Cont,
    caller: u32,
    caller_gen: u64,
) -> Result<O, RpcError> {
    let slot = frame.target.domain().0 as usize;
    let generation = frame.target.generation();
    debug_assert!(x86_64::instructions::interrupts::are_enabled(), "protected call with interrupts disabled");
    let counter = &CALLS[slot & (MAX - 1)];
    counter.store(counter.load(Relaxed) + 1, Relaxed);
    // The timer interrupt reads `cpu` once the Cont is linked: write it first.
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    CPU.0.cont.set(c);
    CPU.0.domain.set(slot as u32);
    CPU.0.generation.set(generation);
    // From here the thread counts as inside the callee (a preempted thread's saved context
    // says so), and a death of the callee defers reclaiming its memory until the thread
    // has left ([`super::die`]). A death between the check above and the switch may
    // already have reclaimed it: check again before touching anything of the callee's.
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    if !alive(slot, generation) {
        // SAFETY: `prev` was written above and the Cont is still ours.
        CPU.0.cont.set(unsafe { (*c).prev });
        CPU.0.domain.set(caller);
        CPU.0.generation.set(caller_gen);
        // The call never happens: its arguments are dropped by the caller, as when the
        // first check fails.
        // SAFETY: `f` was initialised above and is read once, here; `shim` never ran.
        drop(unsafe { frame.f.assume_init_read() });
        return Err(RpcError::DomainDead);
    }
    let code: u64;
    // The resume point is the end of this block. It saves the registers the ABI makes
    // callee-saved (rbx, rbp, r12–r15) and rsp in the Cont, and declares the others
    // clobbered, so a resume restores exactly what the compiler may keep across it. The call is the only way
    // into the callee, so from Rust's view this is one opaque operation, and a resume
    // "returns" from it once, with a non-zero code in rax.
    // SAFETY: `c` is a live Cont on this stack, linked as the innermost resume point until
    // we unlink it below; `shim` matches `frame`'s type parameters; the function is not a
    // leaf (it calls `unwind`), so rsp is 16-byte aligned here as the call requires.
    unsafe {
        core::arch::asm!(
            "lea rax, [rip + 2f]",
            "mov [{c}], rbx",
            "mov [{c} + 8], rbp",
            "mov [{c} + 16], rsp",
            "mov [{c} + 24], rax",
            "mov [{c} + 32], r12",
            "mov [{c} + 40], r13",
            "mov [{c} + 48], r14",
            "mov [{c} + 56], r15",
            "call {f}",
            "xor eax, eax",
            "2:",
            c = in(reg) c,
            f = in(reg) shim::<T, F, O> as unsafe extern "C" fn(*mut u8),
            in("rdi") frame as *mut _ as *mut u8,
            out("rax") code,
            clobber_abi("C"),
        );
    }
    // SAFETY: `prev` was written above and the Cont is still ours.
    CPU.0.cont.set(unsafe { (*c).prev });
    CPU.0.domain.set(caller);
    CPU.0.generation.set(caller_gen);
    // Left the callee: if it died with its reclamation waiting for threads inside it,
    // this may have been the last.
    super::left();
    if caller as usize != 0 && !alive(caller as usize, caller_gen) {
        // We were called from a domain that died meanwhile: never return into its code.
        if code == 0 {
            // SAFETY: the call returned normally, so `out` was written.
            drop(unsafe { frame.out.assume_init_read() });
        }
        if DEFER {
            return Err(super::death_reason(caller as usize));
        }
        unwind(super::death_reason(caller as usize));
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
    let c = CPU.0.cont.get();
    assert!(!c.is_null(), "unwind with no continuation: kernel code cannot be unwound");
    // SAFETY: `c` is the innermost continuation of this thread, on this thread's stack,
    // below the frames being abandoned; its registers and rsp are a valid resume state.
    unsafe { frond_rpc_resume(c, code_of(reason)) }
}

/// True if the running thread is inside a dead domain and must be unwound.
#[inline]
pub fn must_unwind() -> bool {
    let d = CPU.0.domain.get() as usize;
    d != 0 && !alive(d, CPU.0.generation.get())
}

/// After a kernel service returns to a domain: unwind if the domain died meanwhile.
pub fn check_unwind() {
    if must_unwind() {
        unwind(super::death_reason(CPU.0.domain.get() as usize));
    }
}

/// At the end of an interrupt that is about to return to thread context at `rip`: a
/// thread interrupted in the code of a dead domain never executes another instruction of
/// it. (Kernel code running for a domain is left alone; it checks when it returns.)
pub fn check_at_trap_exit(rip: u64) {
    if must_unwind() && rip >= crate::mem::paging::DOMAIN_REGION {
        unwind(super::death_reason(CPU.0.domain.get() as usize));
    }
}

/// True if a kernel service called by the running domain has less than
/// [`STACK_RESERVE`] of stack left: it must not run (it may take locks a stack overflow
/// could not be recovered from); the domain has in effect overflowed its stack.
#[inline(always)]
pub fn stack_low() -> bool {
    let marker = 0u8;
    (core::ptr::addr_of!(marker) as u64) < CPU.0.stack_floor.get()
}

/// Timer interrupt hook: charges the CPU time the running thread used since the last
/// charge to its innermost protected call. Returns the domain slot and generation whose
/// call has now exceeded its budget, if any (the watchdog then ends it).
pub fn charge(now: u64) -> Option<(usize, u64)> {
    let since = now.saturating_sub(CPU.0.charged_at.replace(now));
    let c = CPU.0.cont.get();
    let d = CPU.0.domain.get() as usize;
    if c.is_null() || d == 0 {
        return None;
    }
    // SAFETY: `c` is the running thread's innermost continuation, on its stack, linked
    // while the call lasts; its `cpu` field was written before it was linked (the other
    // fields may still be being written by the proxy's asm, so only `cpu` is touched, by
    // raw pointer), and only this CPU's interrupt updates it.
    let cpu = unsafe { &raw mut (*c).cpu };
    // SAFETY: as above.
    let spent = unsafe { cpu.read() };
    if spent == EXEMPT {
        return None;
    }
    let spent = spent.saturating_add(since);
    // SAFETY: as above.
    unsafe { cpu.write(spent) };
    let budget = super::limits::budget_tsc(d);
    (budget != 0 && spent > budget).then(|| (d, CPU.0.generation.get()))
}

/// True if the running thread's innermost protected call is one the watchdog can end.
pub fn in_budgeted_call() -> bool {
    let c = CPU.0.cont.get();
    // SAFETY: as in `charge`: the running thread's innermost continuation, whose `cpu`
    // field was written before it was linked.
    !c.is_null() && unsafe { (&raw const (*c).cpu).read() } != EXEMPT
}

/// True if the running thread is inside at least one protected call.
pub fn has_continuation() -> bool {
    !CPU.0.cont.get().is_null()
}

/// Runs kernel code that must not be abandoned half-way (it takes locks, frees memory)
/// as the kernel: a trap or a returning call cannot unwind it even if the domain the
/// thread was running for dies meanwhile. The unwind happens after, at the next check.
pub fn as_kernel<R>(f: impl FnOnce() -> R) -> R {
    let saved_domain = CPU.0.domain.get();
    let saved_gen = CPU.0.generation.get();
    CPU.0.domain.set(0);
    CPU.0.generation.set(super::KERNEL_GEN);
    let r = f();
    CPU.0.domain.set(saved_domain);
    CPU.0.generation.set(saved_gen);
    r
}
