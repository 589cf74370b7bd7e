//! # dom-echo — the test service domain
//!
//! Implements `Echo`: each method exercises one property of the isolation core (ownership
//! moves, lends, panics, statics, threads, returned objects). Its state lives in statics,
//! which a restart must bring back to their initial values.
//!
//! May depend on: `frond-interface`, `frond-domrt`, `rref`. `#![forbid(unsafe_code)]`.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use frond_domrt::{sys, Syscalls};
use frond_interface::test::{Counter, Echo, EchoKind, Nested, Packet, PeekInfo};
use frond_interface::{DomainId, RRef, Remote, RpcResult};

frond_domrt::entry!(EchoKind, init);

/// Mutable statics: fresh in every generation.
static BUMPS: AtomicU64 = AtomicU64::new(0);
static ARMED: AtomicBool = AtomicBool::new(false);
static WORKER_TICKS: AtomicU64 = AtomicU64::new(0);
static LIVE_COUNTERS: AtomicU64 = AtomicU64::new(0);
/// What `keep`/`hoard` hold on to: reclaimed when the domain dies.
static KEPT: frond_domrt::sync::Mutex<Vec<RRef<Nested>>> = frond_domrt::sync::Mutex::new(Vec::new());
static HOARD: frond_domrt::sync::Mutex<Vec<Vec<u8>>> = frond_domrt::sync::Mutex::new(Vec::new());

fn init(_sys: &'static dyn Syscalls, _args: ()) -> Remote<dyn Echo> {
    Remote::local(Box::new(EchoService))
}

struct EchoService;

impl Echo for EchoService {
    fn ping(&self) -> RpcResult<()> {
        Ok(())
    }

    fn add(&self, a: u64, b: u64) -> RpcResult<u64> {
        Ok(a.wrapping_add(b))
    }

    fn whoami(&self) -> RpcResult<(DomainId, u64)> {
        Ok(sys().current())
    }

    fn bounce(&self, v: RRef<u64>) -> RpcResult<RRef<u64>> {
        Ok(v)
    }

    fn take(&self, mut p: RRef<Packet>) -> RpcResult<RRef<Packet>> {
        p.seen_owner = p.owner().0;
        p.seen_borrows = p.borrow_count();
        Ok(p)
    }

    fn peek(&self, p: &RRef<Packet>) -> RpcResult<PeekInfo> {
        let sum = p.data.iter().map(|&b| b as u64).sum();
        Ok(PeekInfo { owner: p.owner(), borrows: p.borrow_count(), sum })
    }

    fn peek_then_panic(&self, p: &mut RRef<Packet>) -> RpcResult<()> {
        p.data[0] = 0xEE;
        panic!("echo: panicking while holding a lent packet (borrows={})", p.borrow_count());
    }

    fn keep(&self, n: RRef<Nested>) -> RpcResult<()> {
        KEPT.lock().push(n);
        Ok(())
    }

    fn hoard(&self, n: u32) -> RpcResult<u64> {
        let mut kept = KEPT.lock();
        let mut heap = HOARD.lock();
        for i in 0..n as u64 {
            let inner = RRef::new([i as u8; 32]);
            kept.push(RRef::new(Nested { a: RRef::new(i), b: Some(inner) }));
            heap.push(alloc::vec![i as u8; 1024]);
        }
        Ok(kept.len() as u64)
    }

    fn panic_now(&self) -> RpcResult<()> {
        panic!("echo: panic_now was called");
    }

    fn arm_crash(&self) -> RpcResult<()> {
        ARMED.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn add_checked(&self, a: u64, b: u64) -> RpcResult<u64> {
        if ARMED.load(Ordering::SeqCst) {
            panic!("echo: armed crash in add_checked");
        }
        Ok(a.wrapping_add(b))
    }

    fn bump(&self) -> RpcResult<u64> {
        Ok(BUMPS.fetch_add(1, Ordering::SeqCst) + 1)
    }

    fn spin(&self) -> RpcResult<()> {
        let mut x: u64 = 0;
        loop {
            x = core::hint::black_box(x.wrapping_add(1));
        }
    }

    fn sleep_ms(&self, ms: u64) -> RpcResult<()> {
        sys().sleep_ns(ms * 1_000_000);
        Ok(())
    }

    fn spawn_worker(&self) -> RpcResult<u64> {
        sys().spawn(
            "echo-worker",
            Box::new(|| loop {
                WORKER_TICKS.fetch_add(1, Ordering::SeqCst);
                sys().sleep_ns(1_000_000);
            }),
        )
    }

    fn worker_ticks(&self) -> RpcResult<u64> {
        Ok(WORKER_TICKS.load(Ordering::SeqCst))
    }

    fn make_counter(&self, start: u64) -> RpcResult<Remote<dyn Counter>> {
        LIVE_COUNTERS.fetch_add(1, Ordering::SeqCst);
        Ok(Remote::local(Box::new(CounterObj { next: AtomicU64::new(start) })))
    }

    fn live_counters(&self) -> RpcResult<u64> {
        Ok(LIVE_COUNTERS.load(Ordering::SeqCst))
    }
}

struct CounterObj {
    next: AtomicU64,
}

impl Counter for CounterObj {
    fn next(&self) -> RpcResult<u64> {
        Ok(self.next.fetch_add(1, Ordering::SeqCst))
    }
    fn whoami(&self) -> RpcResult<DomainId> {
        Ok(sys().current().0)
    }
}

impl Drop for CounterObj {
    fn drop(&mut self) {
        LIVE_COUNTERS.fetch_sub(1, Ordering::SeqCst);
    }
}
