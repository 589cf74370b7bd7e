//! In-kernel micro-benchmarks, selected with `bench=NAME|all` on the command line and run
//! by `make bench` (never by `make test`: figures are not pass/fail).
//!
//! Each prints `kbench name=NAME iters=N tsc=T`: T TSC ticks for N operations. Under
//! `-icount shift=0` the TSC counts guest instructions, so T/N is instructions per
//! operation and repeatable; under plain TCG it is host time (see `kbench-info tsc_hz`).
//!
//! `bench=NAME,iters=N` overrides the iteration count; `bench=NAME,profile` is for the
//! guest profiler (`tools/profile`, `make profile BENCH=NAME`): around the measured
//! region ([`region_start`], [`region_end`]) the benchmark prints where every domain
//! image is loaded, then `kbench-profile: begin` and waits for a byte on the serial
//! port (the profiler switches QEMU's execution log on meanwhile), calls
//! [`frond_profile_begin`], runs, calls [`frond_profile_end`], prints
//! `kbench-profile: end` and waits again (the log goes off). The profiler counts the
//! instructions executed between the two marker functions.

use crate::arch::qemu::{exit, ExitCode};
use crate::println;
use crate::sched::{self, Priority};
use crate::time::rdtsc;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use frond_interface::test::{Counter, Echo, EchoKind, Nested, Packet, PeekInfo};
use rref::rpc::{Remote, RpcError, RpcResult};
use rref::RRef;

struct Bench {
    name: &'static str,
    iters: u64,
    run: fn(u64) -> u64,
}

const BENCHES: &[Bench] = &[
    Bench { name: "yield_switch", iters: 20_000, run: yield_switch },
    Bench { name: "channel_roundtrip", iters: 10_000, run: channel_roundtrip },
    Bench { name: "mutex_uncontended", iters: 100_000, run: mutex_uncontended },
    Bench { name: "heap_alloc_free_64", iters: 100_000, run: heap_alloc_free },
    Bench { name: "thread_spawn_join", iters: 500, run: spawn_join },
    Bench { name: "dyn_call", iters: 100_000, run: dyn_call },
    Bench { name: "proxy_null_call", iters: 100_000, run: proxy_null_call },
    Bench { name: "proxy_rref_bounce", iters: 50_000, run: proxy_rref_bounce },
    Bench { name: "proxy_dead_call", iters: 100_000, run: proxy_dead_call },
    Bench { name: "rref_alloc_free", iters: 100_000, run: rref_alloc_free },
    Bench { name: "domain_restart", iters: 100, run: domain_restart },
    Bench { name: "fwd_null_b1", iters: 20_000, run: |n| crate::netbench::fwd_null(n, 1, true) },
    Bench { name: "fwd_null_b8", iters: 64_000, run: |n| crate::netbench::fwd_null(n, 8, true) },
    Bench { name: "fwd_null_b32", iters: 128_000, run: |n| crate::netbench::fwd_null(n, 32, true) },
    Bench { name: "fwd_null_direct_b1", iters: 20_000, run: |n| crate::netbench::fwd_null(n, 1, false) },
    Bench { name: "fwd_null_direct_b8", iters: 64_000, run: |n| crate::netbench::fwd_null(n, 8, false) },
    Bench { name: "fwd_null_direct_b32", iters: 128_000, run: |n| crate::netbench::fwd_null(n, 32, false) },
];

/// `bench=...,profile`: the measured region is bracketed for the profiler.
static PROFILE: AtomicBool = AtomicBool::new(false);
/// `rdtsc` at the last [`region_start`], read by [`region_end`].
static REGION_T0: AtomicU64 = AtomicU64::new(0);

/// Marks the start of the profiled region (the profiler counts from its execution on).
#[inline(never)]
#[no_mangle]
pub extern "C" fn frond_profile_begin() {
    // SAFETY: an empty instruction; keeps the function from being merged or removed.
    unsafe { core::arch::asm!("nop", options(nomem, nostack, preserves_flags)) };
}

/// Marks the end of the profiled region.
#[inline(never)]
#[no_mangle]
pub extern "C" fn frond_profile_end() {
    // SAFETY: as above; two nops, so the linker cannot fold it into the begin marker.
    unsafe { core::arch::asm!("nop", "nop", options(nomem, nostack, preserves_flags)) };
}

/// Starts the measured region of a benchmark: returns the TSC. With `profile`, first
/// reports the domain images and waits for the profiler (see the module docs).
pub fn region_start() -> u64 {
    if PROFILE.load(Ordering::Relaxed) {
        for (slot, base, span, name) in crate::domain::images() {
            println!("kbench-profile domain slot={slot} base={base:#x} span={span:#x} crate={name}");
        }
        println!("kbench-profile: begin");
        let _ = crate::serial::read_byte();
    }
    let t = rdtsc();
    REGION_T0.store(t, Ordering::Relaxed);
    frond_profile_begin();
    t
}

/// Ends the measured region started by [`region_start`]: returns the TSC ticks since.
pub fn region_end() -> u64 {
    frond_profile_end();
    let t = rdtsc() - REGION_T0.load(Ordering::Relaxed);
    if PROFILE.load(Ordering::Relaxed) {
        println!("kbench-profile: end tsc={t}");
        let _ = crate::serial::read_byte();
    }
    t
}

/// The echo domain every domain benchmark calls (created on first use).
fn echo() -> rref::DomainId {
    static ECHO: spin::Once<rref::DomainId> = spin::Once::new();
    *ECHO.call_once(|| {
        crate::domain::create::<EchoKind>("echo", "domains/dom-echo", || ()).expect("creating the echo domain")
    })
}

/// A kernel object implementing `Echo`: the baseline of a direct `dyn` call.
struct LocalEcho;

impl Echo for LocalEcho {
    fn ping(&self) -> RpcResult<()> {
        Ok(())
    }
    fn add(&self, a: u64, b: u64) -> RpcResult<u64> {
        Ok(a + b)
    }
    fn whoami(&self) -> RpcResult<(rref::DomainId, u64)> {
        Ok(crate::domain::rpc::current())
    }
    fn bounce(&self, v: RRef<u64>) -> RpcResult<RRef<u64>> {
        Ok(v)
    }
    fn take(&self, p: RRef<Packet>) -> RpcResult<RRef<Packet>> {
        Ok(p)
    }
    fn peek(&self, _: &RRef<Packet>) -> RpcResult<PeekInfo> {
        Err(RpcError::Refused)
    }
    fn peek_then_panic(&self, _: &mut RRef<Packet>) -> RpcResult<()> {
        Err(RpcError::Refused)
    }
    fn keep(&self, _: RRef<Nested>) -> RpcResult<()> {
        Err(RpcError::Refused)
    }
    fn hoard(&self, _: u32) -> RpcResult<u64> {
        Err(RpcError::Refused)
    }
    fn panic_now(&self) -> RpcResult<()> {
        Err(RpcError::Refused)
    }
    fn arm_crash(&self) -> RpcResult<()> {
        Err(RpcError::Refused)
    }
    fn add_checked(&self, a: u64, b: u64) -> RpcResult<u64> {
        Ok(a + b)
    }
    fn bump(&self) -> RpcResult<u64> {
        Err(RpcError::Refused)
    }
    fn spin(&self) -> RpcResult<()> {
        Err(RpcError::Refused)
    }
    fn sleep_ms(&self, _: u64) -> RpcResult<()> {
        Err(RpcError::Refused)
    }
    fn spawn_worker(&self) -> RpcResult<u64> {
        Err(RpcError::Refused)
    }
    fn worker_ticks(&self) -> RpcResult<u64> {
        Err(RpcError::Refused)
    }
    fn make_counter(&self, _: u64) -> RpcResult<Remote<dyn Counter>> {
        Err(RpcError::Refused)
    }
    fn live_counters(&self) -> RpcResult<u64> {
        Err(RpcError::Refused)
    }
}

/// Baseline: a call through `&dyn Echo` to a kernel object (no proxy, no domain switch).
fn dyn_call(n: u64) -> u64 {
    let local = LocalEcho;
    let e: &dyn Echo = core::hint::black_box(&local);
    region_start();
    for _ in 0..n {
        let _ = core::hint::black_box(e.ping());
    }
    region_end()
}

/// A proxied call that does nothing: alive check, continuation, domain switch, dyn call.
fn proxy_null_call(n: u64) -> u64 {
    let echo = crate::domain::grant::<dyn Echo>(echo()).expect("grant");
    let e: &dyn Echo = core::hint::black_box(&*echo);
    region_start();
    for _ in 0..n {
        let _ = core::hint::black_box(e.ping());
    }
    let t = region_end();
    assert_eq!(e.ping(), Ok(()));
    t
}

/// A proxied call that moves one RRef to the callee and back to the caller.
fn proxy_rref_bounce(n: u64) -> u64 {
    let echo = crate::domain::grant::<dyn Echo>(echo()).expect("grant");
    let mut v = RRef::new(0u64);
    region_start();
    for _ in 0..n {
        v = echo.bounce(v).expect("bounce");
    }
    let t = region_end();
    assert_eq!(v.owner(), rref::DomainId::KERNEL);
    t
}

/// A call to a dead domain: how fast it fails.
fn proxy_dead_call(n: u64) -> u64 {
    let d = crate::domain::create::<EchoKind>("dead", "domains/dom-echo", || ()).expect("create");
    let echo = crate::domain::grant::<dyn Echo>(d).expect("grant");
    crate::domain::kill(d).expect("kill");
    region_start();
    for _ in 0..n {
        let _ = core::hint::black_box(echo.ping());
    }
    let t = region_end();
    assert_eq!(echo.ping(), Err(RpcError::DomainDead));
    drop(echo);
    crate::domain::remove(d).expect("remove");
    t
}

fn rref_alloc_free(n: u64) -> u64 {
    region_start();
    for i in 0..n {
        drop(core::hint::black_box(RRef::new(i)));
    }
    region_end()
}

/// Kill and reload the (small) echo domain: unload, reload from the image, re-run init.
fn domain_restart(n: u64) -> u64 {
    let d = echo();
    region_start();
    for _ in 0..n {
        crate::domain::restart(d).expect("restart");
    }
    region_end()
}

/// One context switch: two threads yielding to each other; T counts both directions, so
/// the figure is per switch.
fn yield_switch(n: u64) -> u64 {
    static GO: AtomicBool = AtomicBool::new(true);
    GO.store(true, Ordering::SeqCst);
    // Same priority as the bench thread, or a yield would just return to the bench thread.
    let partner = sched::Builder::new("yielder")
        .priority(Priority::High)
        .spawn(|| {
            while GO.load(Ordering::Relaxed) {
                sched::yield_now();
            }
        })
        .expect("spawn");
    sched::yield_now(); // let the partner start
    let s0 = sched::stats().switches;
    region_start();
    for _ in 0..n / 2 {
        sched::yield_now();
    }
    let t = region_end();
    let switches = sched::stats().switches - s0;
    assert!(switches >= n - 2, "only {switches} switches for {n} expected: the benchmark measures nothing");
    GO.store(false, Ordering::SeqCst);
    partner.join();
    t
}

/// Send a message to a thread and wait for its reply over two 1-slot channels.
fn channel_roundtrip(n: u64) -> u64 {
    let (to_tx, to_rx) = sched::channel::<u64>(1);
    let (back_tx, back_rx) = sched::channel::<u64>(1);
    let echo = sched::spawn("echo", move || {
        while let Some(v) = to_rx.recv() {
            if back_tx.send(v).is_err() {
                break;
            }
        }
    });
    region_start();
    for i in 0..n {
        to_tx.send(i).expect("echo alive");
        assert_eq!(back_rx.recv(), Some(i));
    }
    let t = region_end();
    drop(to_tx);
    echo.join();
    t
}

fn mutex_uncontended(n: u64) -> u64 {
    let m = sched::Mutex::new(0u64);
    region_start();
    for _ in 0..n {
        *m.lock() += 1;
    }
    let t = region_end();
    assert_eq!(*m.lock(), n);
    t
}

fn heap_alloc_free(n: u64) -> u64 {
    region_start();
    for i in 0..n {
        let b = core::hint::black_box(Box::new([i as u8; 64]));
        drop(b);
    }
    region_end()
}

fn spawn_join(n: u64) -> u64 {
    let hits = Arc::new(core::sync::atomic::AtomicU64::new(0));
    region_start();
    for _ in 0..n {
        let h = hits.clone();
        sched::spawn("short", move || {
            h.fetch_add(1, Ordering::Relaxed);
        })
        .join();
    }
    let t = region_end();
    assert_eq!(hits.load(Ordering::Relaxed), n);
    t
}

pub fn run_main(which: &'static str) {
    sched::Builder::new("kbench")
        .priority(Priority::High)
        .spawn(move || run(which))
        .expect("spawn kbench thread");
}

fn run(spec: &str) -> ! {
    println!("kbench-info tsc_hz={}", crate::time::tsc_hz());
    // `NAME[,iters=N][,profile]`
    let mut parts = spec.split(',');
    let which = parts.next().unwrap_or("");
    let mut iters = None;
    for p in parts {
        match p.split_once('=') {
            Some(("iters", n)) => match n.parse::<u64>() {
                Ok(n) if n > 0 => iters = Some(n),
                _ => println!("kbench: bad iters '{n}'; using the default"),
            },
            None if p == "profile" => PROFILE.store(true, Ordering::Relaxed),
            _ => println!("kbench: unknown option '{p}'"),
        }
    }
    let mut ran = 0;
    for b in BENCHES.iter().filter(|b| which == "all" || which == b.name) {
        let n = iters.unwrap_or(b.iters);
        let t = (b.run)(n);
        println!("kbench name={} iters={} tsc={}", b.name, n, t);
        ran += 1;
    }
    if ran == 0 {
        let names: alloc::vec::Vec<&str> = BENCHES.iter().map(|b| b.name).collect();
        println!("kbench: unknown benchmark '{which}' (have: all {})", names.join(" "));
        exit(ExitCode::Fail);
    }
    println!("kbench: done");
    exit(ExitCode::Pass)
}
