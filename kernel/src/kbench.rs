//! In-kernel micro-benchmarks, selected with `bench=NAME|all` on the command line and run
//! by `make bench` (never by `make test`: figures are not pass/fail).
//!
//! Each prints `kbench name=NAME iters=N tsc=T`: T TSC ticks for N operations. Under
//! `-icount shift=0` the TSC counts guest instructions, so T/N is instructions per
//! operation and repeatable; under plain TCG it is host time (see `kbench-info tsc_hz`).

use crate::arch::qemu::{exit, ExitCode};
use crate::println;
use crate::sched::{self, Priority};
use crate::time::rdtsc;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};

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
];

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
    let t0 = rdtsc();
    for _ in 0..n / 2 {
        sched::yield_now();
    }
    let t = rdtsc() - t0;
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
    let t0 = rdtsc();
    for i in 0..n {
        to_tx.send(i).expect("echo alive");
        assert_eq!(back_rx.recv(), Some(i));
    }
    let t = rdtsc() - t0;
    drop(to_tx);
    echo.join();
    t
}

fn mutex_uncontended(n: u64) -> u64 {
    let m = sched::Mutex::new(0u64);
    let t0 = rdtsc();
    for _ in 0..n {
        *m.lock() += 1;
    }
    let t = rdtsc() - t0;
    assert_eq!(*m.lock(), n);
    t
}

fn heap_alloc_free(n: u64) -> u64 {
    let t0 = rdtsc();
    for i in 0..n {
        let b = core::hint::black_box(Box::new([i as u8; 64]));
        drop(b);
    }
    rdtsc() - t0
}

fn spawn_join(n: u64) -> u64 {
    let hits = Arc::new(core::sync::atomic::AtomicU64::new(0));
    let t0 = rdtsc();
    for _ in 0..n {
        let h = hits.clone();
        sched::spawn("short", move || {
            h.fetch_add(1, Ordering::Relaxed);
        })
        .join();
    }
    let t = rdtsc() - t0;
    assert_eq!(hits.load(Ordering::Relaxed), n);
    t
}

pub fn run_main(which: &'static str) {
    sched::Builder::new("kbench")
        .priority(Priority::High)
        .spawn(move || run(which))
        .expect("spawn kbench thread");
}

fn run(which: &str) -> ! {
    println!("kbench-info tsc_hz={}", crate::time::tsc_hz());
    let mut ran = 0;
    for b in BENCHES.iter().filter(|b| which == "all" || which == b.name) {
        let t = (b.run)(b.iters);
        println!("kbench name={} iters={} tsc={}", b.name, b.iters, t);
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
