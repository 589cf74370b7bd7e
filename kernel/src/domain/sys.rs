//! The kernel services domains call directly ([`frond_domrt::Syscalls`]).
//!
//! Each runs with the calling domain still current. Services that can block end with
//! `rpc::check_unwind()`: a domain killed while one of its threads slept is unwound when
//! the thread wakes, before it executes another instruction of the dead domain.

use super::{dheap, rpc, shared};
use alloc::boxed::Box;
use core::alloc::Layout;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;
use frond_domrt::Syscalls;
use rref::rpc::{RpcError, RpcResult, Target};
use rref::{DomainId, SharedHeap};

pub struct KernelSys;

pub static KERNEL_SYS: KernelSys = KernelSys;

impl Syscalls for KernelSys {
    fn print(&self, line: &str) {
        let (d, _) = rpc::current();
        let name = rpc::as_kernel(|| super::name_of(d.0 as usize));
        crate::println!("[{name}] {line}");
    }

    fn current(&self) -> (DomainId, u64) {
        rpc::current()
    }

    fn alloc(&self, layout: Layout) -> *mut u8 {
        let (d, _) = rpc::current();
        dheap::alloc(d.0 as usize, layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
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
        super::contain(d.0 as usize, generation, RpcError::Panicked, |name| {
            crate::println!("domain `{name}` (id {}, generation {generation}) panicked: {message}", d.0);
        });
        // Nothing owned lives in this frame any more: `contain` dropped its allocations.
        rpc::unwind(RpcError::Panicked)
    }

    fn sleep_ns(&self, ns: u64) {
        crate::sched::sleep_ns(ns);
        rpc::check_unwind();
    }

    fn yield_now(&self) {
        crate::sched::yield_now();
        rpc::check_unwind();
    }

    fn now_ns(&self) -> u64 {
        crate::time::uptime_ns()
    }

    fn spawn(&self, name: &str, f: Box<dyn FnOnce() + Send>) -> RpcResult<u64> {
        let (d, generation) = rpc::current();
        // The closure is the domain's: if the domain dies before the thread runs it, it
        // must be neither called nor dropped (its code and heap are gone).
        let f = ManuallyDrop::new(f);
        let spawned = rpc::as_kernel(|| {
            crate::sched::Builder::new(name).domain(d.0).spawn(move || {
                // SAFETY: a zero-sized target: only the domain and generation are used.
                let t = unsafe { Target::new(d, generation, NonNull::<()>::dangling()) };
                let _ = rpc::protected_call(&t, move |_| ManuallyDrop::into_inner(f)());
            })
        });
        match spawned {
            Ok(h) => Ok(h.tid()),
            Err(_) => Err(RpcError::Refused),
        }
    }

    fn irq_wait(&self, vector: u8, timeout_ns: u64) -> bool {
        let (d, _) = rpc::current();
        let fired = rpc::as_kernel(|| crate::pci::irq_wait(d.0, vector, timeout_ns));
        rpc::check_unwind();
        fired
    }
}
