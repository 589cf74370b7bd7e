//! The kernel services domains call directly ([`frond_domrt::Syscalls`]).
//!
//! Each runs with the calling domain still current. Services that can block end with
//! `rpc::check_unwind()`: a domain killed while one of its threads slept is unwound when
//! the thread wakes, before it executes another instruction of the dead domain. Services
//! that take kernel locks or allocate first check the caller left enough stack
//! ([`super::guard_stack`]). Nothing a domain passes can make them panic: sizes and
//! names are bounded, allocation failures are errors.

use super::{dheap, limits, rpc, shared};
use crate::arch::irq::{self, IrqMutex};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
use frond_domrt::Syscalls;
use rref::rpc::{RpcError, RpcResult, Target};
use rref::{DomainId, SharedHeap};

pub struct KernelSys;

pub static KERNEL_SYS: KernelSys = KernelSys;

impl Syscalls for KernelSys {
    fn print(&self, line: &str) {
        super::guard_stack();
        let (d, _) = rpc::current();
        let name = rpc::as_kernel(|| super::name_of(d.0 as usize));
        crate::println!("[{name}] {line}");
    }

    fn current(&self) -> (DomainId, u64) {
        rpc::current()
    }

    fn caller(&self) -> (DomainId, u64) {
        rpc::caller()
    }

    fn alloc(&self, layout: Layout) -> *mut u8 {
        super::guard_stack();
        let (d, _) = rpc::current();
        dheap::alloc(d.0 as usize, layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        super::guard_stack();
        // SAFETY: forwarded contract: `ptr` came from `alloc` with `layout`.
        if !unsafe { dheap::dealloc(ptr, layout) } {
            log::error!("domain {} freed {ptr:p}, which no domain heap owns; ignored", rpc::current().0 .0);
        }
    }

    fn shared_heap(&self) -> &'static dyn SharedHeap {
        &shared::SHARED
    }

    fn unwind(&self, message: &str) -> ! {
        let (d, generation) = rpc::current();
        if d.0 == 0 || !rpc::has_continuation() {
            // Only domain code has a panic handler that calls this; a kernel caller is a
            // kernel bug.
            panic!("Syscalls::unwind called by the kernel: {message}");
        }
        super::contain(d.0 as usize, generation, RpcError::Panicked, |name| {
            super::note_last_words(d.0 as usize, generation, message);
            crate::println!("domain `{name}` (id {}, generation {generation}) panicked: {message}", d.0);
        });
        // Nothing owned lives in this frame any more: `contain` dropped its allocations.
        rpc::unwind(RpcError::Panicked)
    }

    fn sleep_ns(&self, ns: u64) {
        super::guard_stack();
        // In steps of at most a second: a sleep cut short leaves its queue entry until its
        // deadline, so no entry a domain causes may outlive a second.
        let end = crate::time::uptime_ns().saturating_add(ns);
        loop {
            let left = end.saturating_sub(crate::time::uptime_ns());
            if left == 0 {
                break;
            }
            crate::sched::sleep_ns(left.min(MAX_SLEEP_STEP_NS));
            rpc::check_unwind();
        }
        rpc::check_unwind();
    }

    fn yield_now(&self) {
        super::guard_stack();
        crate::sched::yield_now();
        rpc::check_unwind();
    }

    fn now_ns(&self) -> u64 {
        crate::time::uptime_ns()
    }

    fn spawn(&self, name: &str, f: Box<dyn FnOnce() + Send>) -> RpcResult<u64> {
        super::guard_stack();
        let (d, generation) = rpc::current();
        let slot = d.0 as usize;
        // The closure is the domain's: if the domain dies before the thread runs it, it
        // must be neither called nor dropped (its code and heap are gone).
        let f = ManuallyDrop::new(f);
        let stack_frames = (crate::sched::DEFAULT_STACK / 4096) as u64;
        if !limits::take_thread(slot) {
            return Err(RpcError::Refused);
        }
        if !limits::take_frames(slot, stack_frames)
            || crate::mem::frame::stats().free < limits::KERNEL_RESERVE_FRAMES + stack_frames as usize
        {
            limits::give_thread(slot);
            return Err(RpcError::Refused);
        }
        // A name is for the `threads` table: bounded, so a domain cannot make the kernel
        // copy an arbitrary amount.
        let mut end = name.len().min(32);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let name = &name[..end];
        let spawned = rpc::as_kernel(|| {
            crate::sched::Builder::new(name).domain(d.0).spawn(move || {
                // SAFETY: a zero-sized target: only the domain and generation are used.
                let t = unsafe { Target::new(d, generation, NonNull::<()>::dangling()) };
                // The thread's whole life is one call the watchdog leaves alone: a domain's
                // own thread may run forever (at its priority).
                let _ = rpc::protected_call_unbudgeted(&t, move |_| ManuallyDrop::into_inner(f)());
                limits::give_frames(slot, stack_frames);
                limits::give_thread(slot);
            })
        });
        match spawned {
            Ok(h) => Ok(h.tid()),
            Err(_) => {
                limits::give_frames(slot, stack_frames);
                limits::give_thread(slot);
                Err(RpcError::Refused)
            }
        }
    }

    fn irq_wait(&self, vector: u8, timeout_ns: u64) -> bool {
        super::guard_stack();
        let (d, _) = rpc::current();
        if !crate::pci::may_wait(d.0, vector) {
            return false;
        }
        // Sleeps as the domain, so the domain's death wakes it at once (`wake_domain`);
        // in steps of at most a second, as `sleep_ns`.
        let end = crate::time::uptime_ns().saturating_add(timeout_ns);
        loop {
            let left = end.saturating_sub(crate::time::uptime_ns());
            let fired = crate::pci::irq_wait(d.0, vector, left.min(MAX_SLEEP_STEP_NS));
            rpc::check_unwind();
            if fired || left <= MAX_SLEEP_STEP_NS {
                return fired;
            }
        }
    }

    fn futex_wait(&self, word: &AtomicU32, expected: u32, timeout_ns: u64) -> bool {
        super::guard_stack();
        let woken = futex_wait(word, expected, timeout_ns);
        rpc::check_unwind();
        woken
    }

    fn fault_hint(&self) -> &'static frond_domrt::FaultHint {
        &crate::inject::HINT
    }

    fn device_fault(&self, kind: u32) -> u32 {
        super::guard_stack();
        crate::inject::device_fault(kind)
    }

    fn futex_wake(&self, word: &AtomicU32, n: u32) -> u32 {
        super::guard_stack();
        futex_wake(word, n)
    }
}

// ---------------------------------------------------------------------------------------
// Futexes: the kernel half of the domains' sleeping mutex (`frond_domrt::sync`).
//
// A waiter is keyed by its domain slot and the address of the word it waits on; the
// kernel reads the word only through the reference the domain passed for the call's
// duration, and never writes it. Waiters sleep (so a domain's death wakes them at once)
// for at most `MAX_SLEEP_STEP_NS` per call: callers re-check and wait again, and no
// sleep the kernel tracks outlives that bound.

/// Longest single sleep the kernel queues for a domain (sleep, irq_wait, futex): bounds how
/// long a stale sleeper entry stays queued after its sleep was cut short.
const MAX_SLEEP_STEP_NS: u64 = 1_000_000_000;

/// (slot, word address, thread) of every waiting thread. At most one entry per thread.
static WAITERS: IrqMutex<Vec<(u32, usize, crate::sched::Tid)>> = IrqMutex::new(Vec::new());

fn futex_wait(word: &AtomicU32, expected: u32, timeout_ns: u64) -> bool {
    let (d, _) = rpc::current();
    let key = (d.0, word as *const AtomicU32 as usize);
    let tid = crate::sched::current_tid();
    {
        let _irq = irq::disable();
        if word.load(Relaxed) != expected {
            return false;
        }
        let mut w = WAITERS.lock();
        if w.try_reserve(1).is_err() {
            return false;
        }
        w.push((key.0, key.1, tid));
    }
    // A wake between the registration and the sleep removes the entry first: the sleep
    // then returns at once (the condition runs with interrupts off).
    let registered = || WAITERS.lock().iter().any(|e| e.2 == tid);
    crate::sched::sleep_unless(timeout_ns.min(MAX_SLEEP_STEP_NS), || !registered());
    let mut w = WAITERS.lock();
    match w.iter().position(|e| e.2 == tid) {
        Some(i) => {
            w.swap_remove(i);
            false
        }
        None => true,
    }
}

fn futex_wake(word: &AtomicU32, n: u32) -> u32 {
    let (d, _) = rpc::current();
    let addr = word as *const AtomicU32 as usize;
    let mut woken = Vec::new();
    {
        let mut w = WAITERS.lock();
        let mut i = 0;
        while i < w.len() && (woken.len() as u32) < n {
            if w[i].0 == d.0 && w[i].1 == addr {
                if woken.try_reserve(1).is_err() {
                    break;
                }
                woken.push(w.swap_remove(i).2);
            } else {
                i += 1;
            }
        }
    }
    for &tid in &woken {
        crate::sched::wake_sleeper(tid);
    }
    crate::sched::preempt_point();
    woken.len() as u32
}
