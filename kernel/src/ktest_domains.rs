//! In-kernel tests of the isolation core: domains, proxies, RRefs, containment,
//! reclamation and restart. Driven from `tests/tests/domains.rs`, one QEMU per test.
//!
//! Every test uses the real test domains from the boot module (`domains/dom-echo`,
//! `domains/dom-relay`) and asserts on what the kernel and the domains observe.

use crate::domain::{self, shared::SHARED};
use crate::mem::{frame, heap};
use crate::sched;
use crate::time;
use alloc::format;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use frond_interface::test::{Echo, EchoKind, Nested, Packet, Relay, RelayKind};
use rref::rpc::RpcError;
use rref::{DomainId, RRef};

/// What an interface crate with a changed `Echo` would declare: the same names
/// (`EchoKind: () => dyn Echo`), but `add` takes a `u32`.
#[allow(dead_code)]
mod changed {
    use frond_interface::{domain_kind, interface, RpcResult};

    #[interface]
    pub trait Echo: Send + Sync {
        fn ping(&self) -> RpcResult<()>;
        fn add(&self, a: u64, b: u32) -> RpcResult<u64>;
    }

    domain_kind!(pub EchoKind: () => dyn Echo);
}

use crate::ktest::{metric, rpc_code, thread_ends_within};

fn new_echo(name: &str) -> DomainId {
    domain::create::<EchoKind>(name, "domains/dom-echo", || ()).unwrap_or_else(|e| panic!("creating {name}: {e}"))
}

/// Calls reach the callee, which sees its own domain id; the kernel sees its own after.
pub fn calls() {
    let a = new_echo("echo-a");
    let b = new_echo("echo-b");
    let ea = domain::grant::<dyn Echo>(a).expect("grant");
    let eb = domain::grant::<dyn Echo>(b).expect("grant");
    assert_eq!(ea.ping(), Ok(()));
    assert_eq!(ea.add(2, 3), Ok(5));
    let (seen, generation) = ea.whoami().expect("whoami");
    metric("echo_a_id", a.0);
    metric("seen_by_callee", seen.0);
    assert_eq!(seen, a, "the callee must run as its own domain");
    assert_eq!(generation, 1);
    assert_eq!(domain::rpc::current(), (DomainId::KERNEL, domain::KERNEL_GEN), "the kernel is current again after the call");
    // Statics are private to each instance.
    assert_eq!(ea.bump(), Ok(1));
    assert_eq!(ea.bump(), Ok(2));
    assert_eq!(eb.bump(), Ok(1), "two instances of one image must not share a static");
    assert_eq!(eb.whoami().map(|w| w.0), Ok(b));
}

/// RRef arguments belong to the callee during the call and returned RRefs to the caller
/// after it; a lent RRef stays the caller's.
pub fn rref_ownership() {
    let e = new_echo("echo");
    let echo = domain::grant::<dyn Echo>(e).expect("grant");
    let c = SHARED.counters();
    let p = RRef::new(Packet::filled(7));
    assert_eq!(p.owner(), DomainId::KERNEL);
    let p = echo.take(p).expect("take");
    metric("owner_seen_in_call", p.seen_owner);
    metric("owner_after_call", p.owner().0);
    assert_eq!(p.seen_owner, e.0, "inside the call the callee owns the argument");
    assert_eq!(p.seen_borrows, 0);
    assert_eq!(p.owner(), DomainId::KERNEL, "a returned RRef belongs to the caller");
    assert_eq!(c.blocks(e), 0, "the callee owns nothing after returning the packet");

    let info = echo.peek(&p).expect("peek");
    metric("lent_owner_seen", info.owner.0);
    metric("lent_borrows_seen", info.borrows);
    assert_eq!(info.owner, DomainId::KERNEL, "a lent RRef stays the caller's");
    assert_eq!(info.borrows, 1, "the callee sees the lend in the borrow count");
    assert_eq!(info.sum, 7 * 64);
    assert_eq!(p.borrow_count(), 0, "the lend ends with the call");

    let v = echo.bounce(RRef::new(41u64)).expect("bounce");
    assert_eq!((*v, v.owner()), (41, DomainId::KERNEL));
}

/// A→B→C where C panics: B gets Err and carries on; later calls to C fail fast.
pub fn nested_panic() {
    let c = new_echo("echo-c");
    let b = domain::create::<RelayKind>("relay", "domains/dom-relay", move || {
        (domain::grant::<dyn Echo>(c).expect("grant c"),)
    })
    .expect("relay");
    let relay = domain::grant::<dyn Relay>(b).expect("grant b");
    let echo_c = domain::grant::<dyn Echo>(c).expect("grant c");
    assert_eq!(relay.relay_add(20, 22), Ok(42), "A→B→C works before the crash");
    // The cost of a live null call through the same proxy, to compare the dead call with.
    let live_tsc = min_tsc(|| assert_eq!(echo_c.ping(), Ok(())));
    let report = relay.relay_panic().expect("the relay itself must not fail");
    crate::println!("ktest-info inner_error={:?}", report.inner);
    assert_eq!(report.inner, Some(RpcError::Panicked), "B sees C's panic as an error");
    assert_eq!(report.after, 55, "B carried on after the failed call");
    assert_eq!(relay.whoami(), Ok(b), "B is alive");
    assert_eq!(relay.relay_add(1, 2), Err(RpcError::DomainDead), "B's later calls to C fail fast");
    let dead_tsc = min_tsc(|| assert_eq!(echo_c.ping(), Err(RpcError::DomainDead)));
    metric("live_call_tsc", live_tsc);
    metric("dead_call_tsc", dead_tsc);
    let row = domain::list().into_iter().find(|d| d.id == c.0).expect("row");
    assert_eq!(row.state, domain::State::Dead);
    assert_eq!(row.crashes, 1);
}

/// The fewest TSC ticks `f` took over 200 runs (the minimum filters out interrupts and
/// host noise under TCG).
fn min_tsc(mut f: impl FnMut()) -> u64 {
    (0..200)
        .map(|_| {
            let t0 = time::rdtsc();
            f();
            time::rdtsc() - t0
        })
        .min()
        .unwrap_or(u64::MAX)
}

/// An object returned across the boundary is proxied; dropping the handle releases it
/// inside its domain.
pub fn trait_object() {
    let e = new_echo("echo");
    let echo = domain::grant::<dyn Echo>(e).expect("grant");
    metric("creator_id", e.0);
    metric("live_before", echo.live_counters().map_or(-1, |v| v as i64));
    let counter = echo.make_counter(10).expect("make_counter");
    metric("proxied", counter.is_proxied() as u32);
    metric("object_domain", counter.target().map_or(0, |t| t.domain().0));
    metric("live_with_handle", echo.live_counters().map_or(-1, |v| v as i64));
    let first = counter.next();
    let second = counter.next();
    metric("next_first", first.map_or(-1, |v| v as i64));
    metric("next_second", second.map_or(-1, |v| v as i64));
    let who = counter.whoami();
    metric("object_whoami", who.map_or(0, |w| w.0));
    metric("kernel_current_after", domain::rpc::current().0 .0);
    assert!(counter.is_proxied(), "a returned trait object must be proxied");
    assert_eq!(counter.target().map(|t| t.domain()), Some(e));
    assert_eq!((first, second), (Ok(10), Ok(11)));
    assert_eq!(who, Ok(e), "the object's code runs in its domain");
    assert_eq!(echo.live_counters(), Ok(1));
    drop(counter);
    let live_after = echo.live_counters();
    metric("live_after_drop", live_after.map_or(-1, |v| v as i64));
    assert_eq!(live_after, Ok(0), "dropping the handle ran the destructor in the domain");
}

/// The counters that must return exactly after a domain is gone.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Snapshot {
    kernel_heap_used: usize,
    frames_free: usize,
    shared_used: usize,
    shared_blocks: u64,
    kernel_rrefs: u64,
    domain_heaps: usize,
}

pub fn snapshot() -> Snapshot {
    Snapshot {
        kernel_heap_used: heap::stats().used,
        frames_free: frame::stats().free,
        shared_used: SHARED.used(),
        shared_blocks: SHARED.counters().total_blocks(),
        kernel_rrefs: SHARED.counters().blocks(DomainId::KERNEL),
        domain_heaps: domain::dheap::total_reserved(),
    }
}

pub fn print_snapshot(tag: &str, s: &Snapshot) {
    metric(&format!("{tag}.kernel_heap_used"), s.kernel_heap_used);
    metric(&format!("{tag}.frames_free"), s.frames_free);
    metric(&format!("{tag}.shared_used"), s.shared_used);
    metric(&format!("{tag}.shared_blocks"), s.shared_blocks);
    metric(&format!("{tag}.domain_heaps"), s.domain_heaps);
}

/// A dead domain's heap and every RRef it owned (nested ones too) are freed; counters
/// return exactly to their level before it existed; an RRef it only borrowed survives.
pub fn reclaim() {
    // Warm-up: the first domain ever loaded creates page tables and table entries that
    // stay (and are reused) afterwards.
    let w = new_echo("warmup");
    domain::remove(w).expect("remove");
    let before = snapshot();
    print_snapshot("before", &before);

    let e = new_echo("echo");
    let echo = domain::grant::<dyn Echo>(e).expect("grant");
    let nested = RRef::new(Nested { a: RRef::new(5u64), b: Some(RRef::new([1u8; 32])) });
    echo.keep(nested).expect("keep");
    let c = SHARED.counters();
    metric("blocks_owned_after_keep", c.blocks(e));
    assert_eq!(c.blocks(e), 3, "the nested RRefs moved with their container");
    assert_eq!(echo.hoard(50), Ok(51));
    let during = snapshot();
    print_snapshot("during", &during);
    metric("echo_blocks", c.blocks(e));
    metric("echo_heap_used", domain::dheap::info(e.0 as usize).used);
    assert!(c.blocks(e) >= 3 + 150, "hoard allocated nested RRefs");
    assert!(domain::dheap::info(e.0 as usize).used >= 50 * 1024, "hoard allocated private heap");

    let mut lent = RRef::new(Packet::filled(3));
    let lent_header_before = lent.header().as_ptr() as usize;
    metric("lent_header_before", lent_header_before);
    assert_eq!(echo.peek_then_panic(&mut lent), Err(RpcError::Panicked));
    // The handle still points at the same block, whose payload survived the crash (byte 0
    // is the one the domain wrote before panicking: a lend is a real borrow).
    metric("lent_header_after", lent.header().as_ptr() as usize);
    metric("lent_byte0_after", lent.data[0]);
    metric("lent_payload_sum_after", lent.data[1..].iter().map(|&b| b as u64).sum::<u64>());
    metric("lent_owner_after_crash", lent.owner().0);
    assert_eq!(lent.header().as_ptr() as usize, lent_header_before, "the lent handle moved");
    assert_eq!(lent.owner(), DomainId::KERNEL, "a borrowed RRef goes back to its owner");
    assert_eq!(lent.borrow_count(), 0);
    assert!(lent.data[1..].iter().all(|&b| b == 3), "the lent packet is intact");
    assert_eq!(c.blocks(e), 0, "every RRef the dead domain owned is freed");
    assert_eq!(domain::dheap::info(e.0 as usize).reserved, 0, "its heap is freed");
    assert_eq!(echo.ping(), Err(RpcError::DomainDead));
    drop(lent);
    drop(echo);
    domain::remove(e).expect("remove");
    let after = snapshot();
    print_snapshot("after", &after);
    assert_eq!(after, before, "counters must return exactly to their level before the domain existed");
}

static SPIN_RESULT: AtomicU64 = AtomicU64::new(0);
static SLEEP_RESULT: AtomicU64 = AtomicU64::new(0);


/// Killing a domain stops the threads it created and unwinds threads of others that were
/// inside it, preempted or sleeping.
pub fn threads() {
    let e = new_echo("echo");
    let echo = Arc::new(domain::grant::<dyn Echo>(e).expect("grant"));
    let worker = echo.spawn_worker().expect("spawn_worker");
    sched::sleep_ms(30);
    let ticks = echo.worker_ticks().expect("ticks");
    metric("worker_ticks", ticks);
    assert!(ticks > 0, "the domain's own thread runs");
    assert!(sched::threads().iter().any(|t| t.id == worker && t.owner == e.0));

    let e1 = echo.clone();
    let spinner = sched::spawn("spinner", move || SPIN_RESULT.store(rpc_code(e1.spin()), Ordering::SeqCst));
    let e2 = echo.clone();
    let slept = Arc::new(AtomicU64::new(0));
    let s2 = slept.clone();
    let sleeper = sched::spawn("sleeper", move || {
        let t0 = time::uptime_ns();
        SLEEP_RESULT.store(rpc_code(e2.sleep_ms(10_000)), Ordering::SeqCst);
        s2.store(time::uptime_ns() - t0, Ordering::SeqCst);
    });
    sched::sleep_ms(50); // the spinner is preempted inside echo, the sleeper asleep in it
    let r = domain::kill(e).expect("kill");
    metric("woken_by_kill", r.woken);
    spinner.join();
    sleeper.join();
    metric("spinner_result", SPIN_RESULT.load(Ordering::SeqCst));
    metric("sleeper_result", SLEEP_RESULT.load(Ordering::SeqCst));
    metric("sleeper_ms", slept.load(Ordering::SeqCst) / 1_000_000);
    assert_eq!(SPIN_RESULT.load(Ordering::SeqCst), 2, "the preempted caller got Err(Killed)");
    assert_eq!(SLEEP_RESULT.load(Ordering::SeqCst), 2, "the sleeping caller got Err(Killed)");
    assert!(slept.load(Ordering::SeqCst) < 2_000_000_000, "the sleeper was unwound at once, not after 10 s");
    assert!(thread_ends_within(worker, 100), "the domain's thread was stopped");
    // The sleeper at least (the worker sleeps only 1 ms at a time, so it may be ready).
    assert!(r.woken >= 1, "the sleeping caller was woken to unwind");
}

/// A recovery proxy restarts a crashed domain from its pristine image, with fresh statics,
/// and retries idempotent calls so the caller sees no error.
pub fn restart() {
    let e = new_echo("echo");
    let plain = domain::grant::<dyn Echo>(e).expect("grant");
    let r = domain::grant_recover::<dyn Echo>(e).expect("grant_recover");
    assert_eq!(r.bump(), Ok(1));
    assert_eq!(r.bump(), Ok(2));
    assert_eq!(r.bump(), Ok(3));
    r.arm_crash().expect("arm");
    let v = r.add_checked(2, 3);
    metric("idempotent_after_crash", v.map_or(-1, |v| v as i64));
    assert_eq!(v, Ok(5), "the idempotent call was retried after the restart: no error");
    let (_, generation) = r.whoami().expect("whoami");
    metric("generation_after_restart", generation);
    assert_eq!(generation, 2);
    let b = r.bump();
    metric("static_after_restart", b.map_or(-1, |v| v as i64));
    assert_eq!(b, Ok(1), "statics start fresh after a restart");
    assert_eq!(plain.ping(), Err(RpcError::DomainDead), "a plain proxy stays bound to the dead generation");
    // Not idempotent: the caller sees the crash, and the domain is back for the next call.
    assert_eq!(r.panic_now(), Err(RpcError::Panicked));
    assert_eq!(r.whoami().map(|w| w.1), Ok(3));
    let row = domain::list().into_iter().find(|d| d.id == e.0).expect("row");
    assert_eq!((row.crashes, row.restarts), (2, 2));
}

/// Nested recovery: a relay whose init calls its echo through a recovery proxy. With
/// both dead, a call to the relay restarts it, and its init restarts the echo from inside
/// the first restart — in either order of death, without deadlock or error.
pub fn nested_recovery() {
    let e = new_echo("echo");
    let r = domain::create::<RelayKind>("relay", "domains/dom-relay", move || {
        (domain::grant_recover::<dyn Echo>(e).expect("grant_recover echo"),)
    })
    .expect("relay");
    let relay = domain::grant_recover::<dyn Relay>(r).expect("grant_recover relay");
    assert_eq!(relay.relay_add(1, 2), Ok(3));
    for (round, order) in [[r, e], [e, r]].into_iter().enumerate() {
        for d in order {
            domain::kill(d).expect("kill");
        }
        let t0 = time::rdtsc();
        let v = relay.relay_add(round as u64, 40);
        metric(&format!("round{round}.result"), v.map_or(-1, |v| v as i64));
        metric(&format!("round{round}.us"), time::tsc_to_ns(time::rdtsc() - t0) / 1000);
        assert_eq!(v, Ok(round as u64 + 40), "round {round}: the caller must see no error");
    }
    let rows = domain::list();
    let row = |d: DomainId| rows.iter().find(|x| x.id == d.0).map(|x| (x.generation, x.restarts)).expect("row");
    metric("echo_restarts", row(e).1);
    metric("relay_restarts", row(r).1);
    assert_eq!(row(e).1, 2, "the echo was restarted once per round, from inside the relay's init");
    assert_eq!(row(r).1, 2);
}

/// Killing a domain while other threads are anywhere in calls into it — in its code, or in
/// the kernel half of a proxy on the way in or out — never lets the kernel touch its
/// reclaimed memory: two Low-priority threads call it without pause (null calls and RRef
/// round trips) while a Normal-priority thread kills and restarts it 200 times. Every call
/// returns `Ok` or a crash error, and the counters end where they started.
pub fn kill_under_calls() {
    const KILLS: u64 = 200;
    let w = new_echo("warmup");
    domain::remove(w).expect("remove");
    let before = snapshot();
    print_snapshot("before", &before);
    let e = new_echo("echo");
    let r = Arc::new(domain::grant_recover::<dyn Echo>(e).expect("grant_recover"));
    assert_eq!(r.ping(), Ok(()));
    let stop = Arc::new(core::sync::atomic::AtomicBool::new(false));
    let (ok, failed, odd) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let callers: alloc::vec::Vec<_> = (0..2)
        .map(|i| {
            let (r, stop, ok, failed, odd) = (r.clone(), stop.clone(), ok.clone(), failed.clone(), odd.clone());
            sched::Builder::new("caller")
                .priority(sched::Priority::Low)
                .spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let res = if i == 0 {
                            r.ping()
                        } else {
                            r.bounce(RRef::new(n)).map(|v| {
                                if *v != n || v.owner() != DomainId::KERNEL {
                                    odd.fetch_add(1, Ordering::SeqCst);
                                }
                            })
                        };
                        match res {
                            Ok(()) => ok.fetch_add(1, Ordering::SeqCst),
                            Err(err) if err.is_crash() || err == RpcError::RestartFailed => failed.fetch_add(1, Ordering::SeqCst),
                            Err(_) => odd.fetch_add(1, Ordering::SeqCst),
                        };
                        n += 1;
                    }
                })
                .expect("caller")
        })
        .collect();
    for k in 0..KILLS {
        sched::sleep_ms(1 + k % 3);
        let _ = domain::kill(e);
        if k % 2 == 0 {
            let _ = domain::restart(e);
        }
    }
    stop.store(true, Ordering::SeqCst);
    for c in callers {
        c.join();
    }
    metric("kills", KILLS);
    metric("calls_ok", ok.load(Ordering::SeqCst));
    metric("calls_failed", failed.load(Ordering::SeqCst));
    metric("calls_odd", odd.load(Ordering::SeqCst));
    metric("deferred_reclaims", domain::DEFERRED_RECLAIMS.load(Ordering::SeqCst));
    assert_eq!(odd.load(Ordering::SeqCst), 0, "a call returned something other than its value or a crash error");
    assert!(ok.load(Ordering::SeqCst) > 0, "no call succeeded");
    assert_eq!(r.ping(), Ok(()), "the domain comes back after the storm");
    drop(r);
    domain::remove(e).expect("remove");
    let after = snapshot();
    print_snapshot("after", &after);
    assert_eq!(
        (after.shared_used, after.shared_blocks, after.domain_heaps),
        (before.shared_used, before.shared_blocks, before.domain_heaps),
        "the shared heap and the domain heaps must return exactly"
    );
}

/// 1000 crash→restart cycles through a recovery proxy leave every counter flat.
pub fn crash_loop() {
    const CYCLES: u64 = 1000;
    let e = new_echo("echo");
    let r = domain::grant_recover::<dyn Echo>(e).expect("grant_recover");
    // One cycle first, so the comparison starts from a restarted domain's steady state.
    r.arm_crash().expect("arm");
    assert_eq!(r.add_checked(1, 1), Ok(2));
    let before = snapshot();
    print_snapshot("before", &before);
    let mut restart_tsc = 0u64;
    let t0 = time::rdtsc();
    for i in 0..CYCLES {
        r.arm_crash().expect("arm");
        assert_eq!(r.add_checked(i, 1), Ok(i + 1), "cycle {i}: the caller must see no error");
        restart_tsc += domain::list().into_iter().find(|d| d.id == e.0).map_or(0, |d| d.last_restart_tsc);
    }
    let total = time::rdtsc() - t0;
    let after = snapshot();
    print_snapshot("after", &after);
    let row = domain::list().into_iter().find(|d| d.id == e.0).expect("row");
    metric("cycles", CYCLES);
    metric("generation", row.generation);
    metric("restart_us_mean", time::tsc_to_ns(restart_tsc / CYCLES) / 1000);
    metric("cycle_us_mean", time::tsc_to_ns(total / CYCLES) / 1000);
    assert_eq!(row.generation, CYCLES + 2);
    assert_eq!(row.crashes, CYCLES + 1);
    assert_eq!(after, before, "1000 crash/restart cycles must leave every counter flat");
}

/// Damaged images from the boot module (`bad/*`, put there by the host test) are refused
/// with a clear message and no fault; so is an image of the wrong kind.
pub fn loader() {
    let before = snapshot();
    let mut n = 0;
    for name in domain::module_entries("bad/") {
        let bytes = domain::module_file(&name).expect("entry");
        match domain::create_from::<EchoKind>(&name, bytes, || ()) {
            Ok(d) => panic!("{name} was accepted as domain {}", d.0),
            Err(e) => crate::println!("ktest-reject {name}: {e}"),
        }
        n += 1;
    }
    metric("rejected", n);
    assert!(n > 0, "the boot module has no bad/ images: the host test did not add them");
    match domain::create::<RelayKind>("wrong-kind", "domains/dom-echo", || {
        (domain::grant::<dyn Echo>(DomainId(1)).unwrap_or_else(|_| panic!("no echo to grant")),)
    }) {
        Ok(_) => panic!("an echo image was accepted as a relay"),
        Err(e) => crate::println!("ktest-reject wrong-kind: {e}"),
    }
    // Same names as the echo image's kind, changed interface: the names-only signature
    // matches, the interface fingerprint does not.
    assert_eq!(<changed::EchoKind as frond_domrt::DomainKind>::SIG, <EchoKind as frond_domrt::DomainKind>::SIG);
    match domain::create::<changed::EchoKind>("changed-interface", "domains/dom-echo", || ()) {
        Ok(_) => panic!("an echo image was accepted against a changed Echo interface"),
        Err(e) => crate::println!("ktest-reject changed-interface: {e}"),
    }
    let after = snapshot();
    assert_eq!(after, before, "a refused image leaves no trace");
    // The good image still loads.
    let e = new_echo("echo");
    assert_eq!(domain::grant::<dyn Echo>(e).expect("grant").add(1, 2), Ok(3));
}
