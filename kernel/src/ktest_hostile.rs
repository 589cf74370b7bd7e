//! The hostile-domain suite: one in-kernel test per attack a domain can mount in safe
//! Rust (`domains/hostile`), driven from `tests/tests/hostile.rs`, one QEMU per test.
//!
//! Every test checks the same four things:
//! * the attacker is killed or gets an error (which one is the test's assertion);
//! * the kernel lives (the test returns, so QEMU exits with the pass code);
//! * a bystander — an `echo` domain called by a kernel thread every millisecond — keeps
//!   answering *during* the attack, and none of its calls fails;
//! * once the attacker is gone, the kernel heap, free frames, shared-heap bytes and
//!   blocks and the domain heaps are back exactly at their level before the attack
//!   (`before.*` = `after.*`).

use crate::domain::{self, limits, shared::SHARED};
use crate::ktest::{metric, rpc_code as code, thread_ends_within};
use crate::ktest_domains::{print_snapshot, snapshot};
use crate::mem::frame;
use crate::sched::{self, JoinHandle, Priority};
use crate::time;
use alloc::format;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use frond_interface::hostile::{Faulty, FaultyKind, Hostile, HostileKind};
use frond_interface::test::{Echo, EchoKind, Packet};
use rref::rpc::{Remote, RpcError};
use rref::{DomainId, RRef};

/// An `echo` domain and a kernel thread calling it every millisecond.
struct Bystander {
    id: DomainId,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: JoinHandle,
}

impl Bystander {
    fn start() -> Bystander {
        let id = domain::create::<EchoKind>("bystander", "domains/dom-echo", || ()).expect("bystander");
        let echo = domain::grant::<dyn Echo>(id).expect("grant");
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = sched::Builder::new("bystander")
            .spawn(move || {
                let mut i = 0u64;
                while !s.load(SeqCst) {
                    match echo.add(i, 1) {
                        Ok(v) if v == i + 1 => o.fetch_add(1, SeqCst),
                        _ => f.fetch_add(1, SeqCst),
                    };
                    i += 1;
                    sched::sleep_ms(1);
                }
            })
            .expect("bystander thread");
        Bystander { id, stop, ok, failed, thread }
    }

    fn calls(&self) -> u64 {
        self.ok.load(SeqCst)
    }

    /// Waits until the bystander has completed `n` more calls (bounded: 2 s).
    fn progresses(&self, n: u64) -> bool {
        let start = self.calls();
        for _ in 0..2000 {
            if self.calls() >= start + n {
                return true;
            }
            sched::sleep_ms(1);
        }
        false
    }

    fn finish(self) {
        assert!(self.progresses(1), "the bystander is not answering");
        self.stop.store(true, SeqCst);
        self.thread.join();
        let (ok, failed) = (self.ok.load(SeqCst), self.failed.load(SeqCst));
        metric("bystander.ok", ok);
        metric("bystander.failed", failed);
        assert!(ok > 0, "the bystander made no call");
        assert_eq!(failed, 0, "a bystander call failed during the attack");
        domain::remove(self.id).expect("remove bystander");
    }
}

fn new_hostile(name: &str) -> (DomainId, Remote<dyn Hostile>) {
    let id = domain::create::<HostileKind>(name, "domains/dom-hostile", || ()).unwrap_or_else(|e| panic!("creating {name}: {e}"));
    (id, domain::grant::<dyn Hostile>(id).expect("grant"))
}

/// Runs `attack` with a bystander and counter snapshots around it. `attack` must leave
/// the attacker dead or removed. It runs twice, and only the second round is measured:
/// the first grows, once and for all, the tables that never shrink (page tables of the
/// domain windows and of thread-stack slots, the scheduler's maps and queues).
fn with_bystander(attack: impl Fn(&Bystander)) {
    {
        let b = Bystander::start();
        attack(&b);
        b.finish();
    }
    let before = snapshot();
    print_snapshot("before", &before);
    let b = Bystander::start();
    attack(&b);
    assert!(b.progresses(20), "the bystander is not answering after the attack");
    b.finish();
    // A thread of a dead domain may still be on its way out (unwound, exited, its stack
    // freed by the next thread switch): give it up to 2 s to get there. A counter that
    // does not come back within that is a leak.
    let mut after = snapshot();
    for _ in 0..400 {
        if after == before {
            break;
        }
        sched::sleep_ms(5);
        after = snapshot();
    }
    print_snapshot("after", &after);
    assert_eq!(after, before, "counters must return exactly to their level before the attack");
}

fn is_dead(id: DomainId) -> bool {
    domain::ALIVE[id.0 as usize].load(SeqCst) == 0
}

/// Unbounded recursion in a call: the stack overflow is contained like a panic.
pub fn recursion() {
    with_bystander(|_| {
        let (id, h) = new_hostile("hostile");
        let r = h.recurse(0);
        metric("result", code(r.map(drop)));
        assert_eq!(r, Err(RpcError::Panicked));
        assert!(is_dead(id));
        domain::remove(id).expect("remove");
    });
}

/// Allocating without end: the domain's heap quota stops it, not the machine's memory.
pub fn heap_exhaustion() {
    with_bystander(|b| {
        let (id, h) = new_hostile("hostile");
        let free_before = frame::stats().free;
        let r = h.exhaust_heap();
        metric("result", code(r.map(drop)));
        assert_eq!(r, Err(RpcError::Panicked), "the failed allocation is the domain's panic");
        assert!(is_dead(id));
        metric("heap_limit_kib", limits::DEFAULT.heap / 1024);
        metric("frames_free_kib_after", frame::stats().free * 4);
        assert!(frame::stats().free >= free_before - 16, "the dead domain's heap was returned");
        // The kernel can still allocate and start threads.
        sched::spawn("after-heap-attack", || ()).join();
        assert!(b.progresses(5));
        domain::remove(id).expect("remove");
    });
}

/// Allocating RRefs without end: the shared-heap quota stops it; others still allocate.
pub fn shared_exhaustion() {
    with_bystander(|_| {
        let (id, h) = new_hostile("hostile");
        let r = h.exhaust_shared();
        metric("result", code(r.map(drop)));
        assert_eq!(r, Err(RpcError::Panicked));
        assert!(is_dead(id));
        assert_eq!(SHARED.counters().blocks(id), 0, "its RRefs were reclaimed");
        let mine = RRef::new([7u8; 4096]);
        assert_eq!(mine[4095], 7, "the kernel still allocates RRefs");
        drop(mine);
        domain::remove(id).expect("remove");
    });
}

/// Spawning threads without end: the thread quota refuses the rest; killing the domain
/// stops every thread it made.
pub fn thread_exhaustion() {
    with_bystander(|_| {
        let (id, h) = new_hostile("hostile");
        let n = h.exhaust_threads().expect("exhaust_threads");
        metric("threads_spawned", n);
        assert_eq!(n, limits::DEFAULT.threads, "exactly the thread quota");
        assert_eq!(limits::usage(id.0 as usize).0, n);
        let r = domain::kill(id).expect("kill");
        metric("woken_by_kill", r.woken);
        for _ in 0..1000 {
            if limits::usage(id.0 as usize).0 == 0 {
                break;
            }
            sched::sleep_ms(1);
        }
        assert_eq!(limits::usage(id.0 as usize), (0, 0), "every thread and its stack are gone");
        assert!(!sched::threads().iter().any(|t| t.owner == id.0), "no thread of the dead domain is left");
        domain::remove(id).expect("remove");
    });
}

/// A call that never returns: the watchdog kills the callee after its budget and the
/// caller gets `Timeout`.
pub fn spin_in_call() {
    limits::configure("hostile:budget=200ms").expect("limit");
    with_bystander(|b| {
        let (id, h) = new_hostile("hostile");
        let h = Arc::new(h);
        let result = Arc::new(AtomicU64::new(u64::MAX));
        let (h2, r2) = (h.clone(), result.clone());
        let t0 = time::uptime_ns();
        let caller = sched::spawn("spin-caller", move || r2.store(code(h2.spin()), SeqCst));
        assert!(b.progresses(20), "the bystander answers while the attacker spins");
        caller.join();
        let ms = (time::uptime_ns() - t0) / 1_000_000;
        metric("result", result.load(SeqCst));
        metric("ended_after_ms", ms);
        metric("watchdog_kills", domain::WATCHDOG_KILLS.load(SeqCst));
        assert_eq!(result.load(SeqCst), 4, "Err(Timeout) expected");
        assert!(ms >= 200, "ended before its budget ({ms} ms)");
        assert!(is_dead(id));
        drop(h);
        domain::remove(id).expect("remove");
    });
}

/// A call spinning on a Low-priority thread that a Normal-priority thread keeps from the
/// CPU: its CPU time hardly grows, its runnable time (running or ready to run) does, and
/// the watchdog ends the call by the runnable-time bound long before the CPU bound could
/// have (once the call used a tenth of its CPU budget: it spins alone for 100 ms first).
/// A call that sleeps past the runnable bound is not ended: sleeping is not runnable time.
pub fn spin_starved() {
    limits::configure("hostile:budget=300ms,wall=400ms").expect("limit");
    with_bystander(|b| {
        let (id, h) = new_hostile("hostile");
        let h = Arc::new(h);
        let p = RRef::new(Packet::filled(5));
        let t = time::uptime_ns();
        let slept = h.hold_lent(&p, 800);
        metric("sleeper_ms", (time::uptime_ns() - t) / 1_000_000);
        metric("sleeper_result", code(slept.map(drop)));
        assert_eq!(slept, Ok(5), "a call sleeping past its runnable bound returns");
        drop(p);
        let result = Arc::new(AtomicU64::new(u64::MAX));
        let (h2, r2) = (h.clone(), result.clone());
        let t0 = time::uptime_ns();
        let spinner = sched::Builder::new("starved-spinner")
            .priority(Priority::Low)
            .spawn(move || r2.store(code(h2.spin()), SeqCst))
            .expect("spinner");
        // This thread and the bystander sleep: the spinner gets into its call and spins
        // alone for a while, past a tenth of its CPU budget (30 ms).
        sched::sleep_ms(100);
        // From now on a Normal-priority thread keeps the CPU from it until the domain is
        // dead (at most 10 s).
        let dead_ms = Arc::new(AtomicU64::new(0));
        let d = dead_ms.clone();
        let hog = sched::Builder::new("hog")
            .spawn(move || loop {
                let ms = (time::uptime_ns() - t0) / 1_000_000;
                if is_dead(id) || ms > 10_000 {
                    d.store(ms, SeqCst);
                    break;
                }
                core::hint::spin_loop();
            })
            .expect("hog");
        assert!(b.progresses(20), "the bystander answers while the spinner is starved");
        hog.join();
        spinner.join();
        let ms = dead_ms.load(SeqCst);
        metric("result", result.load(SeqCst));
        metric("ended_after_ms", ms);
        assert_eq!(result.load(SeqCst), 4, "Err(Timeout) expected");
        assert!(is_dead(id), "the watchdog ended the starved call ({ms} ms)");
        assert!((400..3000).contains(&ms), "ended after {ms} ms, expected its 400 ms runnable bound (+ the watchdog's scan)");
        drop(h);
        domain::remove(id).expect("remove");
    });
}

/// Spinning while holding the domain's lock that another call waits for: the waiter
/// sleeps (it does not spin), the watchdog ends the spinner, the waiter is woken and
/// unwound with the domain.
pub fn spin_holding_lock() {
    limits::configure("hostile:budget=300ms").expect("limit");
    with_bystander(|b| {
        let (id, h) = new_hostile("hostile");
        let h = Arc::new(h);
        let (spin_r, wait_r) = (Arc::new(AtomicU64::new(u64::MAX)), Arc::new(AtomicU64::new(u64::MAX)));
        let (h1, r1) = (h.clone(), spin_r.clone());
        let spinner = sched::spawn("lock-spinner", move || r1.store(code(h1.spin_locked()), SeqCst));
        sched::sleep_ms(20);
        let (h2, r2) = (h.clone(), wait_r.clone());
        let waiter = sched::spawn("lock-waiter", move || r2.store(code(h2.take_lock().map(drop)), SeqCst));
        assert!(b.progresses(20), "the bystander answers while the lock is held");
        spinner.join();
        waiter.join();
        metric("spinner_result", spin_r.load(SeqCst));
        metric("waiter_result", wait_r.load(SeqCst));
        assert_eq!(spin_r.load(SeqCst), 4, "the spinner: Err(Timeout)");
        assert_eq!(wait_r.load(SeqCst), 4, "the waiter was unwound with the domain: Err(Timeout)");
        assert!(is_dead(id));
        drop(h);
        domain::remove(id).expect("remove");
    });
}

/// A domain's own thread spinning forever keeps only its priority level busy: threads
/// of its level still get their turn (round robin), higher levels run at once.
pub fn spinning_thread() {
    with_bystander(|b| {
        let (id, h) = new_hostile("hostile");
        let tid = h.spawn_spinner().expect("spawn_spinner");
        metric("spinner_tid", tid);
        assert!(b.progresses(50), "a Normal-priority thread still gets its turn");
        // A High-priority thread waking every millisecond is never held up by it.
        let worst = Arc::new(AtomicU64::new(0));
        let w = worst.clone();
        sched::Builder::new("high-prober")
            .priority(Priority::High)
            .spawn(move || {
                for _ in 0..50 {
                    let t = time::uptime_ns();
                    sched::sleep_ms(1);
                    let late = (time::uptime_ns() - t).saturating_sub(1_000_000);
                    w.fetch_max(late, SeqCst);
                }
            })
            .expect("prober")
            .join();
        metric("high_worst_late_us", worst.load(SeqCst) / 1000);
        assert!(worst.load(SeqCst) < 20_000_000, "a High thread was held up by a spinning domain thread");
        assert!(sched::threads().iter().any(|t| t.id == tid), "the spinner still runs (it is not a call)");
        domain::remove(id).expect("remove");
        assert!(thread_ends_within(tid, 100), "removing the domain stopped its thread");
    });
}

/// A callee swaps the handle of a `&mut RRef` it was lent: the caller keeps its own block,
/// the callee dies.
pub fn steal_lent() {
    with_bystander(|_| {
        let (id, h) = new_hostile("hostile");
        let mut p = RRef::new(Packet::filled(3));
        let block = p.header().as_ptr() as u64;
        let r = h.steal_lent(&mut p);
        metric("result", code(r));
        metric("same_block", (p.header().as_ptr() as u64 == block) as u8);
        assert_eq!(p.header().as_ptr() as u64, block, "the caller's handle still points at its block");
        assert_eq!(p.owner(), DomainId::KERNEL);
        assert_eq!(p.borrow_count(), 0);
        assert!(p.data.iter().all(|&b| b == 3), "the caller's packet is intact");
        assert_eq!(r, Err(RpcError::Refused), "the thief's call is refused");
        assert!(is_dead(id), "the thief is killed");
        drop(p);
        domain::remove(id).expect("remove");
    });
}

/// A callee swaps the handle of a `&mut RRef` and returns the caller's own block as its
/// result: the returned block is not the callee's to give, so the result is refused and the
/// callee killed; the caller's handle is untouched.
pub fn return_lent() {
    with_bystander(|_| {
        let (id, h) = new_hostile("hostile");
        let mut p = RRef::new(Packet::filled(4));
        let block = p.header().as_ptr() as u64;
        let r = h.return_lent(&mut p);
        metric("result", code(r.as_ref().map(drop).map_err(|e| *e)));
        assert!(matches!(r, Err(RpcError::Refused)), "the double handle is refused: {r:?}");
        assert_eq!(p.header().as_ptr() as u64, block, "the caller's handle still points at its block");
        assert!(p.data.iter().all(|&b| b == 4));
        assert_eq!((p.owner(), p.borrow_count()), (DomainId::KERNEL, 0));
        assert!(is_dead(id));
        drop(p);
        domain::remove(id).expect("remove");
    });
}

/// Kernel services called with hostile arguments answer sensibly and bound what they do:
/// `irq_wait` on someone else's vector returns at once, a 64 KiB thread name is cut, a
/// sleep of `u64::MAX` ns is ended by the domain's death.
pub fn sys_abuse() {
    with_bystander(|_| {
        let (id, h) = new_hostile("hostile");
        let t0 = time::uptime_ns();
        let (fired, sleeper) = h.sys_abuse().expect("sys_abuse");
        let ms = (time::uptime_ns() - t0) / 1_000_000;
        metric("irq_fired", fired);
        metric("sys_abuse_ms", ms);
        assert_eq!(fired, 0, "irq_wait on a vector it does not own must not report an interrupt");
        assert!(ms < 1000, "irq_wait on a vector it does not own must return at once ({ms} ms)");
        let longest = sched::threads().iter().filter(|t| t.owner == id.0).map(|t| t.name.len()).max().unwrap_or(0);
        metric("longest_thread_name", longest);
        assert!(longest <= 32, "a domain made the kernel keep a {longest}-byte thread name");
        sched::sleep_ms(20);
        assert!(sched::threads().iter().any(|t| t.id == sleeper), "the endless sleeper sleeps");
        domain::remove(id).expect("remove");
        assert!(thread_ends_within(sleeper, 100), "the endless sleep ended with its domain");
    });
}

/// A domain keeps a handle to a domain that then dies and restarts: its calls fail fast
/// with an error; nothing else happens.
pub fn dead_remote() {
    with_bystander(|_| {
        let (id, h) = new_hostile("hostile");
        let e = domain::create::<EchoKind>("victim", "domains/dom-echo", || ()).expect("victim");
        h.keep_echo(domain::grant::<dyn Echo>(e).expect("grant")).expect("keep");
        assert_eq!(h.call_kept(), Ok(42));
        domain::kill(e).expect("kill");
        let r = h.call_kept();
        metric("after_kill", code(r.map(drop)));
        assert_eq!(r, Err(RpcError::DomainDead));
        domain::restart(e).expect("restart");
        assert_eq!(h.call_kept(), Err(RpcError::DomainDead), "a plain handle stays bound to its generation");
        assert!(!is_dead(id), "the caller of a dead domain just gets an error");
        domain::remove(e).expect("remove");
        domain::remove(id).expect("remove");
    });
}

/// A→B→A→… through proxies without end: a call runs out of stack room and fails with
/// `StackExhausted` before any stack overflows; both domains live on.
pub fn pingpong() {
    with_bystander(|_| {
        let (a, ha) = new_hostile("hostile-a");
        let (b, hb) = new_hostile("hostile-b");
        ha.set_peer(domain::grant::<dyn Hostile>(b).expect("grant")).expect("peer");
        hb.set_peer(domain::grant::<dyn Hostile>(a).expect("grant")).expect("peer");
        let r = ha.pingpong(0);
        metric("result", code(r.map(drop)));
        assert_eq!(r, Err(RpcError::StackExhausted));
        assert!(!is_dead(a) && !is_dead(b), "nobody died: the error came back through every level");
        drop(ha);
        drop(hb);
        domain::remove(a).expect("remove");
        domain::remove(b).expect("remove");
    });
}

/// The lender dies while its RRef is lent to another domain: the block is orphaned, not
/// freed under the borrower, and freed when the lend ends — the dead lender's proxy frame
/// still ends its lend before the thread is unwound.
pub fn lender_dies() {
    with_bystander(|_| {
        let (a, ha) = new_hostile("hostile-a");
        let (b, hb) = new_hostile("hostile-b");
        ha.set_peer(domain::grant::<dyn Hostile>(b).expect("grant")).expect("peer");
        let ha = Arc::new(ha);
        let result = Arc::new(AtomicU64::new(u64::MAX));
        let (h, r) = (ha.clone(), result.clone());
        let lender = sched::spawn("lender", move || r.store(code(h.lend_to_peer(100).map(drop)), SeqCst));
        sched::sleep_ms(30);
        let orphan_index = DomainId::ORPHAN;
        let killed = domain::kill(a).expect("kill");
        metric("orphaned_at_kill", killed.orphaned);
        assert_eq!(killed.orphaned, 1, "the lent block was orphaned, not freed under the borrower");
        metric("orphans_during_lend", SHARED.counters().blocks(orphan_index));
        lender.join();
        metric("result", result.load(SeqCst));
        metric("orphans_after_lend", SHARED.counters().blocks(orphan_index));
        assert_eq!(result.load(SeqCst), 2, "the dead lender's call ended with Err(Killed)");
        assert_eq!(SHARED.counters().blocks(orphan_index), 0, "the orphan was freed when the lend ended");
        assert!(!is_dead(b), "the borrower lives on");
        drop(ha);
        drop(hb);
        domain::remove(a).expect("remove");
        domain::remove(b).expect("remove");
    });
}

/// A payload whose `Drop` panics: dropped in a call, the panic is contained; owned by a
/// domain that dies, it is freed without running its destructor.
pub fn drop_bomb() {
    with_bystander(|_| {
        let (id, h) = new_hostile("hostile");
        let r = h.drop_bomb();
        metric("drop_result", code(r));
        assert_eq!(r, Err(RpcError::Panicked));
        domain::remove(id).expect("remove");
        let (id, h) = new_hostile("hostile");
        assert_eq!(h.keep_bombs(100), Ok(100));
        assert_eq!(SHARED.counters().blocks(id), 100);
        let r = domain::kill(id).expect("kill");
        metric("bombs_freed", r.rref_blocks);
        assert_eq!(r.rref_blocks, 100, "every bomb freed by layout, none dropped");
        domain::remove(id).expect("remove");
    });
}

/// Generations never repeat for a slot, even after `remove`: a stale handle cannot reach
/// the slot's next tenant. Concurrent callers of a restarting domain wait, not fail.
pub fn lifecycle() {
    let e = domain::create::<EchoKind>("echo", "domains/dom-echo", || ()).expect("echo");
    let stale = domain::grant::<dyn Echo>(e).expect("grant");
    let (_, g1) = stale.whoami().expect("whoami");
    domain::remove(e).expect("remove");
    let e2 = domain::create::<EchoKind>("echo", "domains/dom-echo", || ()).expect("echo");
    assert_eq!(e2, e, "the slot is reused");
    let fresh = domain::grant::<dyn Echo>(e2).expect("grant");
    let (_, g2) = fresh.whoami().expect("whoami");
    metric("gen_before_remove", g1);
    metric("gen_after_reuse", g2);
    assert!(g2 > g1, "generation {g2} after reuse must exceed {g1}");
    assert_eq!(stale.ping(), Err(RpcError::DomainDead), "the stale handle does not reach the new tenant");

    // Kill, then let 4 threads call through a recovery proxy at once: one restarts, the
    // others wait for it; every call succeeds and there is exactly one restart.
    let r = Arc::new(domain::grant_recover::<dyn Echo>(e2).expect("grant_recover"));
    domain::kill(e2).expect("kill");
    let failures = Arc::new(AtomicU64::new(0));
    let threads: alloc::vec::Vec<_> = (0..4)
        .map(|i| {
            let (r, f) = (r.clone(), failures.clone());
            sched::spawn("racer", move || {
                if r.add(i, 1) != Ok(i + 1) {
                    f.fetch_add(1, SeqCst);
                }
            })
        })
        .collect();
    for t in threads {
        t.join();
    }
    let row = domain::list().into_iter().find(|d| d.id == e2.0).expect("row");
    metric("racer_failures", failures.load(SeqCst));
    metric("restarts", row.restarts);
    assert_eq!(failures.load(SeqCst), 0, "a concurrent caller saw an error during the restart");
    assert_eq!(row.restarts, 1);
}


/// Every CPU exception a domain's code can raise kills that domain only: the fixture
/// `dom-faulty` executes one faulting instruction per vector.
pub fn cpu_faults() {
    with_bystander(|b| {
        for vector in [0u8, 1, 3, 6, 7, 13, 14] {
            let id = domain::create::<FaultyKind>("faulty", "domains/dom-faulty", || ()).expect("faulty");
            let f = domain::grant::<dyn Faulty>(id).expect("grant");
            let r = f.fault(vector);
            metric(&format!("vector{vector}"), code(r.map(drop)));
            assert_eq!(r, Err(RpcError::Panicked), "vector {vector}");
            assert!(is_dead(id), "vector {vector}: the faulting domain is dead");
            assert!(b.progresses(2));
            domain::remove(id).expect("remove");
        }
    });
}

// ---------------------------------------------------------------------------------------
// The storage interfaces: every malformed request a caller can make gets an error, and
// nothing else changes (the devices and the file system keep working, counters exact).

use frond_interface::blk::{BlkArgs, BlkError, BlkReq, BlkReqs, Block, BlockKind, BLK_BYTES_MAX, BLK_REQS_MAX, BLOCK_SIZE};
use frond_interface::fs::{FileType, Fs, FsArgs, FsError, FsKind, Path, IO_MAX, PATH_MAX, ROOT_INUM};
use frond_interface::net::PciDevice;
use rref::RRefVec;

/// A RAM disk of `blocks` blocks, named `name`.
fn ram_disk(name: &str, blocks: u64) -> DomainId {
    let dev = PciDevice { bdf: 0xffff, vendor: 0, device: 0, bars: [(0, 0); 6], caps: Default::default(), ncaps: 0, msix_vector: 0 };
    domain::create::<BlockKind>(name, "domains/dom-membdev", move || (BlkArgs { dev, ram_blocks: blocks },)).expect("membdev")
}

fn req(block: u64, offset: u32, count: u32) -> BlkReq {
    BlkReq { block, offset, count }
}

/// Malformed block requests: too many, empty, unaligned, outside the lent buffer,
/// past the device, overflowing; each is refused whole and the disk is untouched.
pub fn block_requests() {
    with_bystander(|_| {
        let id = ram_disk("membdev-h", 64);
        let blk = domain::grant::<dyn Block>(id).expect("grant");
        let mut buf = RRefVec::<u8>::new_with(BLK_BYTES_MAX, |i| i as u8);
        let good = BlkReqs::one(3, 2);
        assert_eq!(blk.write(good, &buf), Ok(Ok(())));
        let mut bad: alloc::vec::Vec<(&str, BlkReqs, BlkError)> = alloc::vec::Vec::new();
        let mut too_many = BlkReqs::one(0, 1);
        too_many.n = BLK_REQS_MAX as u32 + 1;
        bad.push(("n past the array", too_many, BlkError::BadRequest));
        bad.push(("empty request", BlkReqs::one(0, 0), BlkError::BadRequest));
        let mut r = BlkReqs::new();
        r.push(req(0, 100, 1));
        bad.push(("unaligned offset", r, BlkError::BadRequest));
        let mut r = BlkReqs::new();
        r.push(req(0, (BLK_BYTES_MAX - BLOCK_SIZE) as u32, 2));
        bad.push(("past the buffer", r, BlkError::BadRequest));
        bad.push(("past the device", BlkReqs::one(63, 2), BlkError::OutOfRange));
        bad.push(("overflowing block number", BlkReqs::one(u64::MAX, 2), BlkError::OutOfRange));
        let mut r = BlkReqs::one(5, 1);
        r.push(req(u64::MAX - 1, 1024, 1));
        bad.push(("one bad request among good ones", r, BlkError::OutOfRange));
        for (what, reqs, expect) in &bad {
            assert_eq!(blk.read(*reqs, &mut buf), Ok(Err(*expect)), "read: {what}");
            assert_eq!(blk.write(*reqs, &buf), Ok(Err(*expect)), "write: {what}");
        }
        // A buffer too short for even one block.
        let mut tiny = RRefVec::<u8>::new_with(10, |_| 0);
        assert_eq!(blk.read(BlkReqs::one(0, 1), &mut tiny), Ok(Err(BlkError::BadRequest)));
        // Nothing of the above wrote: blocks 3..5 hold what the good write put there, and
        // block 5 (written only by a refused batch) is still zero.
        let mut back = RRefVec::<u8>::new_with(3 * BLOCK_SIZE, |_| 0xee);
        assert_eq!(blk.read(BlkReqs::one(3, 3), &mut back), Ok(Ok(())));
        assert!(back[..2 * BLOCK_SIZE].iter().enumerate().all(|(i, &b)| b == i as u8), "the good write is intact");
        assert!(back[2 * BLOCK_SIZE..].iter().all(|&b| b == 0), "a refused batch wrote nothing");
        let st = blk.stats().expect("stats");
        metric("blk.writes", st.writes);
        metric("blk.reads", st.reads);
        assert_eq!((st.writes, st.written_blocks), (1, 2), "only the good write counted");
        metric("refused", bad.len() * 2 + 1);
        drop((buf, tiny, back));
        domain::remove(id).expect("remove");
    });
}

fn p(s: &str) -> Path {
    Path::new(s).expect("short path")
}

/// Malformed file-system requests: bad paths, inode numbers, offsets, lengths, names,
/// operations on the wrong kind of file. Each returns its error; afterwards the file
/// system works and holds exactly what the good operations made.
pub fn fs_requests() {
    with_bystander(|_| {
        let disk = ram_disk("membdev-h", 2048);
        let fs_id = domain::create::<FsKind>("fs-h", "domains/dom-fs", move || {
            (domain::grant_recover::<dyn Block>(disk).expect("Block"), FsArgs { format_if_empty: true, large: false, keep_orphans: false })
        })
        .expect("fs");
        let fs = domain::grant::<dyn Fs>(fs_id).expect("grant");
        let f = fs.create(ROOT_INUM, p("/f"), FileType::File, 0, 0, true).expect("call").expect("create /f");
        let d = fs.create(ROOT_INUM, p("/d"), FileType::Dir, 0, 0, true).expect("call").expect("mkdir /d");
        let data = RRefVec::<u8>::new_with(IO_MAX, |i| (i % 251) as u8);
        assert_eq!(fs.write(f.inum, 0, &data, 5000), Ok(Ok(5000)));
        let mut buf = RRefVec::<u8>::new_with(IO_MAX, |_| 0);
        let mut bad_len = p("/f");
        bad_len.len = (PATH_MAX + 50) as u16;
        let mut checks = 0u64;
        let mut check = |what: &str, got: Result<Result<(), FsError>, RpcError>, want: FsError| {
            assert_eq!(got, Ok(Err(want)), "{what}");
            checks += 1;
        };
        check("path length past the array", fs.lookup(ROOT_INUM, bad_len).map(|r| r.map(drop)), FsError::BadPath);
        check("empty path", fs.lookup(ROOT_INUM, p("")).map(|r| r.map(drop)), FsError::BadPath);
        check("cwd inode 0", fs.lookup(0, p("f")).map(|r| r.map(drop)), FsError::Invalid);
        check("cwd past the inodes", fs.lookup(1_000_000, p("f")).map(|r| r.map(drop)), FsError::Invalid);
        check("cwd a file", fs.lookup(f.inum, p("x")).map(|r| r.map(drop)), FsError::NotDir);
        check("stat a free inode", fs.stat(100).map(|r| r.map(drop)), FsError::Stale);
        check("read a free inode", fs.read(100, 0, &mut buf).map(|r| r.map(drop)), FsError::Stale);
        check("write a directory", fs.write(d.inum, 0, &data, 10).map(|r| r.map(drop)), FsError::IsDir);
        check("length past the lent buffer", fs.write(f.inum, 0, &RRefVec::new_with(8, |_| 1u8), 9).map(|r| r.map(drop)), FsError::Invalid);
        check("offset past the largest file", fs.write(f.inum, 1 << 40, &data, 10).map(|r| r.map(drop)), FsError::TooBig);
        check("offset u64::MAX", fs.write(f.inum, u64::MAX, &data, 10).map(|r| r.map(drop)), FsError::TooBig);
        check("truncate a directory", fs.truncate(d.inum, 0), FsError::IsDir);
        check("truncate past the largest file", fs.truncate(f.inum, u64::MAX), FsError::TooBig);
        check("readdir a file", fs.readdir(f.inum, 0).map(|r| r.map(drop)), FsError::NotDir);
        check("15-byte name", fs.create(ROOT_INUM, p("/abcdefghijklmno"), FileType::File, 0, 0, false).map(|r| r.map(drop)), FsError::NameTooLong);
        check("create under a file", fs.create(ROOT_INUM, p("/f/x"), FileType::File, 0, 0, false).map(|r| r.map(drop)), FsError::NotDir);
        check("create in a missing directory", fs.create(ROOT_INUM, p("/nope/x"), FileType::File, 0, 0, false).map(|r| r.map(drop)), FsError::NotFound);
        check("mkdir over a file", fs.create(ROOT_INUM, p("/f"), FileType::Dir, 0, 0, true).map(|r| r.map(drop)), FsError::Exists);
        check("link to a directory", fs.link(ROOT_INUM, p("/d"), p("/d2")), FsError::NotPermitted);
        check("link over an existing name", fs.link(ROOT_INUM, p("/f"), p("/d")), FsError::Exists);
        check("unlink the root", fs.unlink(ROOT_INUM, p("/")), FsError::NotPermitted);
        check("unlink .", fs.unlink(ROOT_INUM, p("/d/.")), FsError::NotPermitted);
        check("unlink ..", fs.unlink(ROOT_INUM, p("/d/..")), FsError::NotPermitted);
        check("unlink missing", fs.unlink(ROOT_INUM, p("/missing")), FsError::NotFound);
        check("pread inode 0", fs.pread(0, 0, &mut buf, 10).map(|r| r.map(drop)), FsError::Invalid);
        check("pread past the inodes", fs.pread(1_000_000, 0, &mut buf, 10).map(|r| r.map(drop)), FsError::Invalid);
        check("pread a free inode", fs.pread(100, 0, &mut buf, 10).map(|r| r.map(drop)), FsError::Stale);
        check("release inode 0", fs.release(0), FsError::Invalid);
        check("release past the inodes", fs.release(u32::MAX), FsError::Invalid);
        check("release a free inode", fs.release(100), FsError::Stale);
        check("unlink_keep the root", fs.unlink_keep(ROOT_INUM, p("/")), FsError::NotPermitted);
        check("unlink_keep .", fs.unlink_keep(ROOT_INUM, p(".")), FsError::NotPermitted);
        check("unlink_keep ..", fs.unlink_keep(ROOT_INUM, p("/d/..")), FsError::NotPermitted);
        check("unlink_keep missing", fs.unlink_keep(ROOT_INUM, p("/missing")), FsError::NotFound);
        // Lengths past the lent buffer or IO_MAX, and offsets past the end, are clamped.
        let mut small = RRefVec::<u8>::new_with(8, |_| 0);
        assert_eq!(fs.pread(f.inum, 0, &mut small, 9), Ok(Ok(8)), "pread: len past the lent buffer");
        assert_eq!(fs.pread(f.inum, 0, &mut buf, u32::MAX), Ok(Ok(5000)), "pread: huge len");
        assert_eq!(fs.pread(f.inum, u64::MAX, &mut buf, 10), Ok(Ok(0)), "pread: offset u64::MAX");
        assert_eq!(fs.pread(f.inum, 4990, &mut buf, 100), Ok(Ok(10)), "pread: across the end");
        // Releasing what is linked does nothing.
        assert_eq!(fs.release(ROOT_INUM), Ok(Ok(())), "release the root");
        assert_eq!(fs.release(f.inum), Ok(Ok(())), "release a linked file");
        assert_eq!(fs.release(d.inum), Ok(Ok(())), "release a linked directory");
        assert_eq!(fs.stat(f.inum).expect("call").expect("stat /f").nlink, 1, "/f stays linked");
        assert_eq!(fs.stat(d.inum).expect("call").expect("stat /d").nlink, 1, "/d stays linked");
        let deep = "/d".repeat(63);
        check("63 levels below a directory that has none", fs.lookup(ROOT_INUM, p(&deep)).map(|r| r.map(drop)), FsError::NotFound);
        metric("refused", checks);
        // Still whole: /f holds its 5000 bytes, /d is empty, nothing else exists.
        assert_eq!(fs.read(f.inum, 0, &mut buf), Ok(Ok(5000)));
        assert!((0..5000).all(|i| buf[i] == (i % 251) as u8), "the file's bytes");
        let root = fs.readdir(ROOT_INUM, 0).expect("call").expect("readdir /");
        let names: alloc::vec::Vec<&[u8]> = root.entries[..root.n as usize].iter().map(|e| e.name()).collect();
        assert_eq!(names, [&b"."[..], b"..", b"f", b"d"], "the root holds exactly ., .., f, d");
        let info = fs.info().expect("call").expect("info");
        metric("free_inodes", info.free_inodes);
        drop((data, buf, small));
        domain::remove(fs_id).expect("remove fs");
        domain::remove(disk).expect("remove disk");
    });
}
