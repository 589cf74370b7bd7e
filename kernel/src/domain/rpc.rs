//! Protected calls: the continuation mechanism behind every proxy.
//!
//! A proxied call records a resume point in a [`Cont`] on the caller's stack (what the
//! System V ABI makes callee-saved — rbx, rbp, r12–r15 — plus rsp; the resume address is
//! the return address of the call, just below that rsp: the inline assembly that makes the
//! call declares every other register clobbered), links it on the thread's
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
//! The running thread's domain context — current domain and its generation as one key
//! ([`rref::rpc::key`]), and the innermost continuation — lives in two per-CPU words saved
//! and restored by the scheduler on every switch ([`DomCtx`]). One CPU, so plain cells
//! suffice.
//!
//! When a domain dies, threads inside it are unwound at the next point they would run its
//! code again: at the end of an interrupt that preempted them ([`check_at_trap_exit`]),
//! after a kernel service they called returns ([`check_unwind`]), or when a call they
//! made from it returns (the caller-alive check in [`protected_call`]).

use super::ALIVE;
use core::cell::Cell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use rref::rpc::{RpcError, Target};
use rref::DomainId;

/// A resume point. Field offsets are used by the assembly below.
///
/// Where execution resumes is not stored: it is the return address of the call into
/// [`shim`], which that call pushed right below `rsp` (`[rsp - 8]`). That slot belongs to
/// the call for as long as the call lasts — everything the callee and the kernel below it
/// push goes below it — so it still holds the address when a resume abandons the frames
/// under it.
#[repr(C)]
pub struct Cont {
    rbx: u64,
    rbp: u64,
    rsp: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    /// Time charged to this call so far (time in the callee itself, not in calls it
    /// made), or [`EXEMPT`]: two halves in µs, each saturating at [`HALF_MAX`] — low
    /// 32 bits the CPU time the call ran, high 32 bits its *runnable* time (ran, or was
    /// ready to run and waited for the CPU). Starts as 0 (one store on the call path);
    /// written only with interrupts off while the Cont is linked, by the timer interrupt
    /// and the context switch for the running thread ([`charge`], [`charge_out`]) and
    /// by the context switch for the incoming one ([`charge_ready`]).
    cpu: u64,
    /// The domain and generation that made this call, as a key ([`rref::rpc::key`]):
    /// [`caller`].
    caller: u64,
}

/// `Cont::cpu` of calls the watchdog never ends: the base call of a domain's own thread.
const EXEMPT: u64 = u64::MAX;

/// Where each half of `Cont::cpu` saturates (µs, about 71 minutes): below `u32::MAX`, so
/// a charged value never reads as [`EXEMPT`].
pub const HALF_MAX: u64 = u32::MAX as u64 - 1;

/// Which bound of the call watchdog a call exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// CPU time (`limit=NAME:budget=`).
    Cpu,
    /// Runnable time: running or ready to run (`limit=NAME:wall=`).
    Runnable,
}

/// `v` (a charged `Cont::cpu`, not [`EXEMPT`]) plus `cpu_us` of CPU time and `ready_us` of
/// runnable time, each half saturating at [`HALF_MAX`].
#[inline(always)]
fn add_halves(v: u64, cpu_us: u64, ready_us: u64) -> u64 {
    let cpu = (v & 0xffff_ffff).saturating_add(cpu_us).min(HALF_MAX);
    let ready = (v >> 32).saturating_add(ready_us).min(HALF_MAX);
    ready << 32 | cpu
}

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
// The resume address is read before rsp moves back up to the Cont's rsp: an interrupt
// taken after that would push its frame over it.
    mov rax, [rdi + 16]
    mov rcx, [rax - 8]
    mov rbx, [rdi + 0]
    mov rbp, [rdi + 8]
    mov rsp, rax
    mov r12, [rdi + 24]
    mov r13, [rdi + 32]
    mov r14, [rdi + 40]
    mov r15, [rdi + 48]
    mov rax, rsi
    sti
    jmp rcx
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
    /// The current domain and its generation, as a key ([`rref::rpc::key`]).
    ctx: Cell<u64>,
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
    ctx: Cell::new(KERNEL_KEY),
    cont: Cell::new(core::ptr::null_mut()),
    stack_floor: Cell::new(0),
    charged_at: Cell::new(0),
    violation: Cell::new(false),
});

/// The kernel's key: slot 0, [`super::KERNEL_GEN`].
pub const KERNEL_KEY: u64 = rref::rpc::key(DomainId::KERNEL, super::KERNEL_GEN);

/// Calls into each domain slot.
pub static CALLS: [AtomicU64; super::KEY_SLOTS] = [const { AtomicU64::new(0) }; super::KEY_SLOTS];

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
    let ctx = CPU.0.ctx.get();
    DomCtx {
        domain: rref::rpc::key_domain(ctx).0,
        generation: rref::rpc::key_generation(ctx),
        cont: CPU.0.cont.get(),
        stack_floor: CPU.0.stack_floor.get(),
        violation: CPU.0.violation.get(),
    }
}

/// Scheduler hook: install the incoming thread's context. Its CPU time is charged from now.
pub fn restore(c: DomCtx) {
    CPU.0.ctx.set(rref::rpc::key(DomainId(c.domain), c.generation));
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
    let ctx = CPU.0.ctx.get();
    (rref::rpc::key_domain(ctx), rref::rpc::key_generation(ctx))
}

/// The domain that made the innermost protected call of the running thread (the kernel
/// if there is none): who is calling the running domain.
pub fn caller() -> (DomainId, u64) {
    let c = CPU.0.cont.get();
    if c.is_null() {
        return (DomainId::KERNEL, super::KERNEL_GEN);
    }
    // SAFETY: `c` is the running thread's innermost continuation, on its stack, linked
    // for the duration of the call; `caller` was written before linking.
    let k = unsafe { (*c).caller };
    (rref::rpc::key_domain(k), rref::rpc::key_generation(k))
}

/// Whether the domain instance `key` is alive: one load and compare (the alive table holds
/// the live instance's key). The slot comes from a `Target` (built only by the kernel, with
/// a valid slot) or from the running context, so masking instead of a bounds check is
/// exact. The kernel's key is always alive.
#[inline(always)]
fn alive(key: u64) -> bool {
    ALIVE[slot_of(key)].load(Relaxed) == key
}

/// The slot bits of a key: an index into the alive table and [`CALLS`], which have an
/// entry for every value (those of slots `MAX..` are never alive), so no bounds check.
#[inline(always)]
fn slot_of(key: u64) -> usize {
    const _: () = assert!(rref::rpc::SLOT_BITS == 8 && super::KEY_SLOTS == 256);
    key as u8 as usize
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

/// What the shim needs, on the calling thread's stack. The callee's object pointer is
/// copied out of the `Target` before the switch: the target usually lives in the caller's
/// memory (the proxy object), and once the thread is inside the callee the caller may
/// die and be reclaimed — only the callee's memory is kept while the thread is inside it.
struct Frame<T: ?Sized, F, O> {
    obj: core::ptr::NonNull<T>,
    f: MaybeUninit<F>,
    out: MaybeUninit<O>,
}

/// Runs the call's closure on the callee's object. Returns 0, the code of a call that
/// returned (a resume returns the error's code at the same point).
unsafe extern "C" fn shim<T: ?Sized, F: FnOnce(&T) -> O, O>(data: *mut u8) -> u64 {
    // SAFETY: `data` is the `Frame` that `call` set up for exactly these type parameters;
    // `f` was initialised there and is read once, here.
    let fr = unsafe { &mut *(data as *mut Frame<T, F, O>) };
    let f = unsafe { fr.f.assume_init_read() };
    // SAFETY: `obj` is the target's object (copied from the `Target` by `call`), whose
    // generation `enter` found alive after switching into it; a death during the call
    // defers reclaiming it while this thread is inside, and unwinds past this frame.
    let obj = unsafe { fr.obj.as_ref() };
    fr.out.write(f(obj));
    0
}

#[cold]
#[inline(never)]
fn stack_exhausted<O>() -> Result<O, RpcError> {
    Err(RpcError::StackExhausted)
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
    let caller = CPU.0.ctx.get();
    if !alive(caller) {
        unwind(super::death_reason(slot_of(caller)));
    }
}

#[inline(always)]
fn call<T: ?Sized, O, F: FnOnce(&T) -> O, const BUDGET: bool, const DEFER: bool>(
    target: &Target<T>,
    f: F,
) -> Result<O, RpcError> {
    let caller = CPU.0.ctx.get();
    let mut cont = MaybeUninit::<Cont>::uninit();
    let c = cont.as_mut_ptr();
    // The Cont is on this stack: its address says how much room is left below.
    if (c as u64) < CPU.0.stack_floor.get() {
        return stack_exhausted();
    }
    // The next outer resume point of this thread, linked again when the call is over.
    let prev = CPU.0.cont.get();
    // SAFETY: writing plain fields of our own stack slot (the asm writes the others).
    unsafe {
        (*c).cpu = if BUDGET { 0 } else { EXEMPT };
        (*c).caller = caller;
    }
    let mut frame = Frame { obj: target.as_ptr(), f: MaybeUninit::new(f), out: MaybeUninit::uninit() };
    // The fault injector's armed panic: one load and a branch to an out-of-line copy of
    // the rest of the call, so nothing on this path has to survive a function call.
    if crate::inject::ARMED.load(Relaxed) {
        return enter_armed::<T, O, F, BUDGET, DEFER>(target.key(), &mut frame, c, prev, caller);
    }
    enter::<T, O, F, BUDGET, DEFER>(target.key(), &mut frame, c, prev, caller)
}

/// The rest of [`call`] while the fault injector has a panic armed: if this call is the
/// one, the callee dies before it is entered (`crate::inject::proxy_entry`; the caller
/// drops the arguments) or after it returned a result that owns nothing
/// (`crate::inject::proxy_exit`; the result is discarded), as a panicking domain does.
#[cold]
#[inline(never)]
fn enter_armed<T: ?Sized, O, F: FnOnce(&T) -> O, const BUDGET: bool, const DEFER: bool>(
    key: u64,
    frame: &mut Frame<T, F, O>,
    c: *mut Cont,
    prev: *mut Cont,
    caller: u64,
) -> Result<O, RpcError> {
    let (slot, generation) = (slot_of(key), rref::rpc::key_generation(key));
    if crate::inject::proxy_entry(slot, generation, core::any::type_name::<F>()) {
        // SAFETY: `f` was initialised by `call` and is read once, here; `shim` never ran.
        drop(unsafe { frame.f.assume_init_read() });
        return Err(RpcError::Panicked);
    }
    let r = enter::<T, O, F, BUDGET, DEFER>(key, frame, c, prev, caller);
    // At exit only calls whose result owns nothing: an RRef in a result already belongs to
    // the caller and a returned object to the callee's heap, and neither may be dropped or
    // leaked on the callee's behalf here. Their calls can only get the panic at entry.
    if !core::mem::needs_drop::<O>() && r.is_ok() && crate::inject::proxy_exit(slot, generation, core::any::type_name::<F>()) {
        return Err(RpcError::Panicked);
    }
    r
}

/// Enters the callee of `frame` through the Cont `c` (see [`call`]); `prev` is the
/// thread's outer continuation and `caller` its context before the call.
#[inline(always)]
fn enter<T: ?Sized, O, F: FnOnce(&T) -> O, const BUDGET: bool, const DEFER: bool>(
    key: u64,
    frame: &mut Frame<T, F, O>,
    c: *mut Cont,
    prev: *mut Cont,
    caller: u64,
) -> Result<O, RpcError> {
    debug_assert!(x86_64::instructions::interrupts::are_enabled(), "protected call with interrupts disabled");
    // The timer interrupt reads `cpu` once the Cont is linked: write it first.
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    CPU.0.cont.set(c);
    CPU.0.ctx.set(key);
    // From here the thread counts as inside the callee (a preempted thread's saved context
    // says so), so a death of the callee from now on defers reclaiming its memory until
    // the thread has left ([`super::die`]). The one alive check comes after the switch:
    // a death before it fails it (and may have reclaimed the memory, which is then never
    // touched); a death after it finds this thread inside. Until the check passes nothing
    // of the callee's is touched, and an interrupt in between sees kernel code (no unwind
    // at trap exit).
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    if !alive(key) {
        CPU.0.cont.set(prev);
        CPU.0.ctx.set(caller);
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        // A death between the switch and the check may have deferred its reclamation
        // because of this thread.
        super::left();
        // The call never happens: its arguments are dropped by the caller.
        // SAFETY: `f` was initialised above and is read once, here; `shim` never ran.
        drop(unsafe { frame.f.assume_init_read() });
        return Err(RpcError::DomainDead);
    }
    let counter = &CALLS[slot_of(key)];
    counter.store(counter.load(Relaxed) + 1, Relaxed);
    let code: u64;
    // The resume point is the end of this block: it saves the registers the ABI makes
    // callee-saved (rbx, rbp, r12–r15) and rsp in the Cont, and declares the others
    // clobbered, so a resume restores exactly what the compiler may keep across it; the
    // resume address is the return address the call pushes (see [`Cont`]). The call is
    // the only way into the callee, so from Rust's view this is one opaque operation that
    // "returns" once: with 0 from `shim`, or with a non-zero code from a resume.
    // SAFETY: `c` is a live Cont on this stack, linked as the innermost resume point until
    // we unlink it below; `shim` matches `frame`'s type parameters; the function is not a
    // leaf (it calls `unwind`), so rsp is 16-byte aligned here as the call requires.
    unsafe {
        core::arch::asm!(
            "mov [{c}], rbx",
            "mov [{c} + 8], rbp",
            "mov [{c} + 16], rsp",
            "mov [{c} + 24], r12",
            "mov [{c} + 32], r13",
            "mov [{c} + 40], r14",
            "mov [{c} + 48], r15",
            "call {f}",
            c = in(reg) c,
            f = sym shim::<T, F, O>,
            in("rdi") frame as *mut _ as *mut u8,
            out("rax") code,
            clobber_abi("C"),
        );
    }
    CPU.0.cont.set(prev);
    CPU.0.ctx.set(caller);
    // Left the callee: if it died with its reclamation waiting for threads inside it,
    // this may have been the last.
    super::left();
    // The kernel's key is always alive: no test for a kernel caller.
    if !alive(caller) {
        // We were called from a domain that died meanwhile: never return into its code.
        if code == 0 {
            // SAFETY: the call returned normally, so `out` was written.
            drop(unsafe { frame.out.assume_init_read() });
        }
        let reason = super::death_reason(slot_of(caller));
        if DEFER {
            return Err(reason);
        }
        unwind(reason);
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
    !alive(CPU.0.ctx.get())
}

/// After a kernel service returns to a domain: unwind if the domain died meanwhile.
pub fn check_unwind() {
    if must_unwind() {
        unwind(super::death_reason(slot_of(CPU.0.ctx.get())));
    }
}

/// At the end of an interrupt that is about to return to thread context at `rip`: a
/// thread interrupted in the code of a dead domain never executes another instruction of
/// it. (Kernel code running for a domain is left alone; it checks when it returns.)
pub fn check_at_trap_exit(rip: u64) {
    if must_unwind() && rip >= crate::mem::paging::DOMAIN_REGION {
        unwind(super::death_reason(slot_of(CPU.0.ctx.get())));
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

/// Timer interrupt hook: charges the time the running thread ran since the last charge
/// to its innermost protected call, as CPU time and as runnable time. Returns the domain
/// slot and generation whose call has now exceeded a bound, and which one, if any (the
/// watchdog then ends it).
pub fn charge(now: u64) -> Option<(usize, u64, Bound)> {
    let (d, spent) = charge_running(now)?;
    let ctx = CPU.0.ctx.get();
    let budget = super::limits::budget_us(d);
    if budget != 0 && spent & 0xffff_ffff > budget {
        return Some((d, rref::rpc::key_generation(ctx), Bound::Cpu));
    }
    runnable_over(d, spent >> 32, spent & 0xffff_ffff).then(|| (d, rref::rpc::key_generation(ctx), Bound::Runnable))
}

/// Whether a call into slot `d` that was runnable for `runnable` µs and ran `cpu` µs has
/// passed the runnable-time bound. The bound applies only once the call has used a tenth
/// of its CPU budget: a call that spins uses the CPU whenever it gets it and soon
/// qualifies, while a call that merely waited behind higher-priority threads (a few µs
/// of CPU, a driver call on the low-priority forwarding thread) is not ended for the
/// scheduler's choice. A call that never gets the CPU at all is never ended by it — and
/// holds nothing up but its own thread, which could not run anyway.
fn runnable_over(d: usize, runnable: u64, cpu: u64) -> bool {
    let wall = super::limits::wall_us(d);
    wall != 0 && runnable > wall && cpu >= super::limits::budget_us(d) / 10
}

/// Scheduler hook, interrupts off, before the running thread is switched out
/// ([`save`]): charges what it ran since the last charge, as [`charge`] does; the bounds
/// are checked at the next tick that finds it running, or by the watchdog's scan of
/// ready threads ([`ready_overdue`]).
pub fn charge_out(now: u64) {
    charge_running(now);
}

/// Charges the running thread's time since the last charge to its innermost call; the
/// call's domain slot and its charged `cpu` word, unless there is nothing to charge.
#[inline]
fn charge_running(now: u64) -> Option<(usize, u64)> {
    let since = now.saturating_sub(CPU.0.charged_at.replace(now));
    let c = CPU.0.cont.get();
    let d = slot_of(CPU.0.ctx.get());
    if c.is_null() || d == 0 {
        return None;
    }
    // SAFETY: `c` is the running thread's innermost continuation, on its stack, linked
    // while the call lasts; its `cpu` field was written before it was linked (the other
    // fields may still be being written by the proxy's asm, so only `cpu` is touched, by
    // raw pointer). Its writers run with interrupts off on this one CPU (the timer
    // interrupt, the context switch), so none interleaves with this one.
    let cpu = unsafe { &raw mut (*c).cpu };
    // SAFETY: as above.
    let spent = unsafe { cpu.read() };
    if spent == EXEMPT {
        return None;
    }
    let us = crate::time::tsc_to_us(since);
    let spent = add_halves(spent, us, us);
    // SAFETY: as above.
    unsafe { cpu.write(spent) };
    Some((d, spent))
}

/// Scheduler hook, interrupts off, when thread context `c` is about to be switched in
/// ([`restore`]) after `waited` TSC ticks ready to run: charges the wait to its innermost
/// call's runnable time (not to its CPU time).
pub fn charge_ready(c: &DomCtx, waited: u64) {
    let Some(cpu) = waiting_call(c) else { return };
    // SAFETY: see `waiting_call`.
    let spent = unsafe { cpu.read() };
    if spent == EXEMPT {
        return;
    }
    // SAFETY: as above.
    unsafe { cpu.write(add_halves(spent, 0, crate::time::tsc_to_us(waited))) };
}

/// For the watchdog's scan, interrupts off: whether the innermost call of thread context
/// `c`, of a thread ready to run for `waited` TSC ticks since it last ran, has exceeded
/// its domain's runnable-time bound counting that wait (the domain slot and generation if
/// so). A thread starved of the CPU entirely never reaches a tick that would check it.
pub fn ready_overdue(c: &DomCtx, waited: u64) -> Option<(usize, u64)> {
    let cpu = waiting_call(c)?;
    // SAFETY: see `waiting_call`.
    let spent = unsafe { cpu.read() };
    let runnable = (spent >> 32).saturating_add(crate::time::tsc_to_us(waited));
    (spent != EXEMPT && runnable_over(c.domain as usize, runnable, spent & 0xffff_ffff)).then_some((c.domain as usize, c.generation))
}

/// The `cpu` field of the innermost call of a thread that is switched out, with context
/// `c`, if it is in a call into a domain.
///
/// Its raw pointer may be read and written while interrupts stay off: `c.cont` was saved
/// ([`save`]) when the thread was switched out inside that call, so it points to the
/// innermost continuation on that thread's stack, linked, its `cpu` field written before
/// it was linked; the thread is not running (only it unlinks its continuations, and its
/// stack lives as long as it does), and every other writer of the field runs with
/// interrupts off on this one CPU.
fn waiting_call(c: &DomCtx) -> Option<*mut u64> {
    if c.cont.is_null() || c.domain == 0 || c.domain as usize >= super::MAX {
        return None;
    }
    // SAFETY: as above; only the address of the field is taken.
    Some(unsafe { &raw mut (*c.cont).cpu })
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
    let saved = CPU.0.ctx.replace(KERNEL_KEY);
    let r = f();
    CPU.0.ctx.set(saved);
    r
}
