//! In-kernel tests, selected with `test=NAME` on the command line and driven from the host
//! by `tests/` (which boots QEMU once per test and reads the serial port).
//!
//! A test passes by returning: the runner prints `ktest NAME: PASS` and exits with 33. It
//! fails by panicking or faulting: the fault reporter prints the report and exits with 35.
//! Figures a host test checks are printed as `ktest-metric key=value` lines.
//!
//! To add one: write `fn name()` here, add it to [`TESTS`], and add a host test in
//! `tests/tests/kernel.rs` (the host checks that every test listed here is driven).

use crate::arch::qemu::{exit, ExitCode};
use crate::mem::{frame, heap};
use crate::sched::{self, Priority};
use crate::time;
use crate::println;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct Test {
    pub name: &'static str,
    pub run: fn(),
}

pub const TESTS: &[Test] = &[
    Test { name: "boot", run: boot },
    Test { name: "page_fault", run: page_fault },
    Test { name: "stack_overflow", run: stack_overflow },
    Test { name: "panic", run: panic_report },
    Test { name: "sse_faults", run: sse_faults },
    Test { name: "preempt", run: preempt },
    Test { name: "sleep", run: sleep },
    Test { name: "mutex", run: mutex },
    Test { name: "channel", run: channel },
    Test { name: "heap", run: heap_stress },
    Test { name: "dom_calls", run: crate::ktest_domains::calls },
    Test { name: "dom_rref", run: crate::ktest_domains::rref_ownership },
    Test { name: "dom_nested_panic", run: crate::ktest_domains::nested_panic },
    Test { name: "dom_trait_object", run: crate::ktest_domains::trait_object },
    Test { name: "dom_reclaim", run: crate::ktest_domains::reclaim },
    Test { name: "dom_threads", run: crate::ktest_domains::threads },
    Test { name: "dom_restart", run: crate::ktest_domains::restart },
    Test { name: "dom_crash_loop", run: crate::ktest_domains::crash_loop },
    Test { name: "dom_nested_recovery", run: crate::ktest_domains::nested_recovery },
    Test { name: "dom_kill_under_calls", run: crate::ktest_domains::kill_under_calls },
    Test { name: "dom_loader", run: crate::ktest_domains::loader },
    Test { name: "hostile_recursion", run: crate::ktest_hostile::recursion },
    Test { name: "hostile_heap_exhaustion", run: crate::ktest_hostile::heap_exhaustion },
    Test { name: "hostile_shared_exhaustion", run: crate::ktest_hostile::shared_exhaustion },
    Test { name: "hostile_thread_exhaustion", run: crate::ktest_hostile::thread_exhaustion },
    Test { name: "hostile_spin_in_call", run: crate::ktest_hostile::spin_in_call },
    Test { name: "hostile_spin_starved", run: crate::ktest_hostile::spin_starved },
    Test { name: "hostile_spin_holding_lock", run: crate::ktest_hostile::spin_holding_lock },
    Test { name: "hostile_spinning_thread", run: crate::ktest_hostile::spinning_thread },
    Test { name: "hostile_steal_lent", run: crate::ktest_hostile::steal_lent },
    Test { name: "hostile_dead_remote", run: crate::ktest_hostile::dead_remote },
    Test { name: "hostile_return_lent", run: crate::ktest_hostile::return_lent },
    Test { name: "hostile_sys_abuse", run: crate::ktest_hostile::sys_abuse },
    Test { name: "hostile_pingpong", run: crate::ktest_hostile::pingpong },
    Test { name: "hostile_drop_bomb", run: crate::ktest_hostile::drop_bomb },
    Test { name: "hostile_lender_dies", run: crate::ktest_hostile::lender_dies },
    Test { name: "hostile_cpu_faults", run: crate::ktest_hostile::cpu_faults },
    Test { name: "hostile_lifecycle", run: crate::ktest_hostile::lifecycle },
    Test { name: "hostile_block_requests", run: crate::ktest_hostile::block_requests },
    Test { name: "hostile_fs_requests", run: crate::ktest_hostile::fs_requests },
];

/// Prints a figure for the host test (`ktest-metric key=value`).
pub fn metric(key: &str, value: impl core::fmt::Display) {
    println!("ktest-metric {key}={value}");
}

/// The code the host tests expect for a call's outcome (`tests/tests/hostile.rs` and
/// `domains.rs` name them).
pub fn rpc_code(r: Result<(), rref::rpc::RpcError>) -> u64 {
    use rref::rpc::RpcError;
    match r {
        Ok(()) => 0,
        Err(RpcError::Panicked) => 1,
        Err(RpcError::Killed) => 2,
        Err(RpcError::DomainDead) => 3,
        Err(RpcError::Timeout) => 4,
        Err(RpcError::Refused) => 5,
        Err(RpcError::StackExhausted) => 6,
        Err(RpcError::RestartFailed) => 7,
    }
}

/// Waits up to `ms` milliseconds for thread `tid` to end; true if it did.
pub fn thread_ends_within(tid: sched::Tid, ms: u64) -> bool {
    for _ in 0..ms {
        if !sched::threads().iter().any(|t| t.id == tid) {
            return true;
        }
        sched::sleep_ms(1);
    }
    !sched::threads().iter().any(|t| t.id == tid)
}

/// Runs test `name` on the calling thread and ends the machine.
pub fn run(name: &str) -> ! {
    if name == "list" {
        let names: Vec<&str> = TESTS.iter().map(|t| t.name).collect();
        println!("ktest-list: {}", names.join(" "));
        exit(ExitCode::Pass);
    }
    let Some(t) = TESTS.iter().find(|t| t.name == name) else {
        println!("ktest {name}: FAIL: unknown test (try test=list)");
        exit(ExitCode::Fail);
    };
    println!("ktest {name}: start");
    (t.run)();
    println!("ktest {name}: PASS");
    exit(ExitCode::Pass)
}

/// The machine came up: heap, frames, timer interrupts and a thread switch all work.
fn boot() {
    let f = frame::stats();
    assert!(f.total > 0 && f.free > 0 && f.free < f.total, "frame counters {f:?}");
    let v: Vec<u64> = (0..1000).collect();
    assert_eq!(v.iter().sum::<u64>(), 999 * 1000 / 2);
    // Timer interrupts arrive, and never faster than TICK_HZ (+20% for calibration error),
    // measured against the TSC over a 50 ms sleep. They may arrive slower: QEMU coalesces
    // ticks the guest could not take while the host was busy, which is why nothing in the
    // kernel counts ticks to tell time.
    let (t0, c0) = (sched::stats().ticks, time::rdtsc());
    sched::sleep_ms(50);
    let (t1, c1) = (sched::stats().ticks, time::rdtsc());
    let hz = (t1 - t0) * 1_000_000_000 / time::tsc_to_ns(c1 - c0).max(1);
    metric("tick_hz", hz);
    let want = sched::TICK_HZ;
    assert!(t1 - t0 >= 5, "only {} timer interrupts in 50 ms", t1 - t0);
    assert!(hz * 5 <= want * 6, "timer runs at {hz} Hz, faster than {want} Hz + 20%");
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    sched::spawn("boot-child", move || r.store(true, Ordering::SeqCst)).join();
    assert!(ran.load(Ordering::SeqCst), "child thread did not run");
    metric("ticks", t1);
    metric("tsc_mhz", time::tsc_hz() / 1_000_000);
}

/// A deliberate write to an unmapped address must produce a page-fault report (exit 35).
#[inline(never)]
pub fn page_fault() {
    let p = core::hint::black_box(0xdead_0000u64) as *mut u64;
    // SAFETY: deliberately unsound: this write must fault. The test checks the report.
    unsafe { core::ptr::write_volatile(p, 1) };
    panic!("write to an unmapped page did not fault");
}

#[inline(never)]
#[allow(unconditional_recursion)] // the point: it ends on the guard page
fn recurse(depth: u64) -> u64 {
    let pad = core::hint::black_box([depth; 32]);
    let below = recurse(depth + 1);
    core::hint::black_box(pad[(depth % 32) as usize] + below)
}

/// Unbounded recursion on a 16 KiB stack must hit the guard page and be reported (exit 35).
fn stack_overflow() {
    sched::Builder::new("deep-recursion")
        .stack_size(16 * 1024)
        .spawn(|| {
            core::hint::black_box(recurse(0));
        })
        .expect("spawn")
        .join();
    panic!("recursion returned without overflowing its stack");
}

/// A kernel panic prints its message, location and a backtrace, and fails the run (35).
#[inline(never)]
fn panic_report() {
    let answer = core::hint::black_box(41);
    panic!("deliberate panic, answer={}", answer + 1);
}

/// The soft-float policy: CR0.EM is set and CR4.OSFXSR clear, so an SSE instruction (which
/// no kernel code should ever contain) raises #UD with a report instead of silently using
/// registers no context switch saves.
#[inline(never)]
fn sse_faults() {
    // SAFETY: deliberately executes an SSE instruction; it must fault before touching state.
    unsafe { core::arch::asm!("xorps xmm0, xmm0", options(nomem, nostack)) };
    panic!("an SSE instruction executed although SSE is disabled");
}

/// Two CPU-bound threads at the same priority both make progress: only preemption can
/// achieve that, since neither ever yields.
fn preempt() {
    static STOP: AtomicBool = AtomicBool::new(false);
    static COUNTS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
    let spin = |i: usize| {
        move || {
            while !STOP.load(Ordering::Relaxed) {
                COUNTS[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    let before = sched::stats().switches;
    let a = sched::spawn("busy-a", spin(0));
    let b = sched::spawn("busy-b", spin(1));
    // This thread is High priority (see `run_main`), so it wakes on time despite the spinners.
    sched::sleep_ms(500);
    STOP.store(true, Ordering::Relaxed);
    a.join();
    b.join();
    let (ca, cb) = (COUNTS[0].load(Ordering::Relaxed), COUNTS[1].load(Ordering::Relaxed));
    let switches = sched::stats().switches - before;
    metric("a", ca);
    metric("b", cb);
    metric("switches", switches);
    assert!(ca > 0 && cb > 0, "a thread starved: a={ca} b={cb}");
    let ratio = ca.min(cb) as f64 / ca.max(cb) as f64;
    assert!(ratio >= 0.2, "unfair split a={ca} b={cb}");
    // 500 ms of 10 ms slices: dozens of switches between the two (fewer if the host
    // starves the guest, but never just one or two).
    assert!(switches >= 10, "only {switches} context switches in 500 ms");
}

/// Sleeps of 1–50 ms wake no earlier than asked and at most `BOUND_US` late, while a
/// lower-priority thread keeps the CPU busy. The figures are printed before the kernel's
/// own checks, so the host judges them too: `min_late_ns` is signed (negative = a sleeper
/// woke early).
fn sleep() {
    const BOUND_US: i64 = 20_000;
    static STOP: AtomicBool = AtomicBool::new(false);
    let hog = sched::Builder::new("hog")
        .priority(Priority::Low)
        .spawn(|| {
            while !STOP.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        })
        .expect("spawn");
    let mut min_late_ns = i64::MAX;
    let mut max_late_ns = i64::MIN;
    let mut early = None;
    for &ms in &[1u64, 2, 3, 5, 10, 20, 50, 1, 7, 13] {
        let t0 = time::rdtsc();
        sched::sleep_ms(ms);
        let slept_ns = time::tsc_to_ns(time::rdtsc() - t0) as i64;
        let late_ns = slept_ns - (ms * 1_000_000) as i64;
        if late_ns < 0 && early.is_none() {
            early = Some((ms, slept_ns));
        }
        min_late_ns = min_late_ns.min(late_ns);
        max_late_ns = max_late_ns.max(late_ns);
    }
    STOP.store(true, Ordering::Relaxed);
    hog.join();
    metric("min_late_ns", min_late_ns);
    metric("min_late_us", min_late_ns / 1000);
    metric("max_late_us", max_late_ns / 1000);
    if let Some((ms, slept_ns)) = early {
        panic!("sleep({ms} ms) woke early after {slept_ns} ns");
    }
    let max_late = max_late_ns / 1000;
    assert!(max_late <= BOUND_US, "a sleep woke {max_late} us late (bound {BOUND_US} us)");
}

/// Four threads increment a shared counter under the blocking mutex, yielding while they
/// hold it so the others must block: the count stays exact and contention really happened.
fn mutex() {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 1000;
    let m = Arc::new(sched::Mutex::new(0u64));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let m = m.clone();
            sched::spawn("mutex-worker", move || {
                for _ in 0..ROUNDS {
                    let mut g = m.lock();
                    let v = *g;
                    sched::yield_now();
                    *g = v + 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.join();
    }
    let counter = *m.lock();
    metric("counter", counter);
    metric("expected", THREADS * ROUNDS);
    metric("contended", m.contended());
    assert_eq!(counter, THREADS * ROUNDS, "lost updates under the mutex");
    assert!(m.contended() > 0, "the workers never contended; the test proves nothing");
}

/// 100,000 messages through a 16-slot channel arrive complete and in order.
fn channel() {
    const N: u64 = 100_000;
    let (tx, rx) = sched::channel::<u64>(16);
    let producer = sched::spawn("producer", move || {
        for i in 0..N {
            tx.send(i).expect("receiver alive");
        }
    });
    let mut expected = 0;
    while let Some(v) = rx.recv() {
        assert_eq!(v, expected, "message out of order");
        expected += 1;
    }
    producer.join();
    metric("received", expected);
    assert_eq!(expected, N, "channel lost messages");
}

/// Random-size, random-alignment allocations with content checks; the heap's used bytes
/// return exactly to where they started.
fn heap_stress() {
    const OPS: usize = 20_000;
    const LIVE: usize = 64;
    let mut live: Vec<Option<(alloc::boxed::Box<[u8]>, u8)>> = Vec::with_capacity(LIVE);
    live.resize_with(LIVE, || None);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let used_before = heap::stats().used;
    let mut peak = 0;
    for op in 0..OPS {
        let slot = (next() % LIVE as u64) as usize;
        if let Some((buf, tag)) = live[slot].take() {
            assert!(buf.iter().all(|&b| b == tag), "heap block corrupted (op {op})");
        } else {
            let size = match next() % 100 {
                0 => 256 * 1024 + (next() % 65536) as usize, // a few large blocks
                1..=9 => 4096 + (next() % 16384) as usize,
                _ => 1 + (next() % 512) as usize,
            };
            let tag = (next() & 0xff) as u8;
            let buf = alloc::vec![tag; size].into_boxed_slice();
            live[slot] = Some((buf, tag));
        }
        peak = peak.max(heap::stats().used);
    }
    for (buf, tag) in live.iter_mut().filter_map(Option::take) {
        assert!(buf.iter().all(|&b| b == tag), "heap block corrupted at the end");
    }
    let used_after = heap::stats().used;
    metric("used_before", used_before);
    metric("used_after", used_after);
    metric("peak", peak);
    assert!(peak > used_before + 256 * 1024, "the stress never held much memory");
    assert_eq!(used_before, used_after, "heap did not return to its starting level");
}

/// Entry of the first thread when a test is named on the command line.
pub fn run_main(name: &'static str) {
    sched::Builder::new("ktest")
        .priority(Priority::High)
        .spawn(move || run(name))
        .expect("spawn ktest thread");
}
