//! Drives the generated `Proxy` / `Recover` with a mock `Runtime` on the host shared heap,
//! and checks what crosses the boundary: ownership of moved and returned RRefs, lends,
//! dead callees, restarts and retries, and `Remote` handles in both directions.
//!
//! The mock keeps its domain table per test thread (tests run in parallel), switches the
//! current domain (its own and `HostHeap`'s) around each call, and turns a callee's panic
//! into `RpcError::Panicked` with `catch_unwind` (tests always unwind, whatever the
//! profile's `panic` setting).

use frond_interface_gen::{interface, Exchangeable};
use rref::host::HostHeap;
use rref::rpc::{Proxy, Proxyable, Recover, Remote, RpcError, RpcResult, Runtime, Target};
use rref::{DomainId, RRef, RRefVec};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

#[derive(Exchangeable)]
pub struct Data {
    pub value: u64,
    pub extra: Option<RRef<u32>>,
}

#[interface(recover)]
pub trait Echo: Send + Sync {
    fn ping(&self) -> RpcResult<()>;
    #[idempotent]
    fn add(&self, a: u64, b: u64) -> RpcResult<u64>;
    fn take(&self, buf: RRef<[u8; 64]>) -> RpcResult<RRef<[u8; 64]>>;
    fn take_data(&self, data: RRef<Data>) -> RpcResult<u64>;
    #[idempotent]
    fn peek(&self, lent: &RRef<Data>, also: &mut RRefVec<u32>) -> RpcResult<u64>;
    fn make(&self, seed: u64) -> RpcResult<Remote<dyn Echo>>;
    fn give(&self, cb: Remote<dyn Echo>) -> RpcResult<u64>;
    /// Writes through a `&mut` lend; with `SWAP` set, swaps its own block in instead.
    fn scribble(&self, buf: &mut RRef<[u8; 8]>) -> RpcResult<u64>;
    /// Returns a block owned by domain `FOREIGN` (as if it had obtained someone else's).
    fn foreign(&self) -> RpcResult<RRef<u64>>;
}

/// Without `recover`: no recovery view.
#[interface]
pub trait Plain: Send + Sync {
    fn get(&self) -> RpcResult<u64>;
}

// ---------------------------------------------------------------------------------------
// The mock runtime.

/// Builds the object of a new generation (domain, generation): the domain's "pristine image".
type Image = Box<dyn Fn(DomainId, u64) -> Box<dyn Any>>;

struct Slot {
    generation: u64,
    alive: bool,
    /// The live object's `Target<T>`, for `recover`.
    live: Option<Box<dyn Any>>,
    restart: Option<Image>,
}

thread_local! {
    static CURRENT: Cell<(DomainId, u64)> = const { Cell::new((DomainId::KERNEL, 0)) };
    static SLOTS: RefCell<HashMap<DomainId, Slot>> = RefCell::new(HashMap::new());
    /// Callee-side fault injection: how many of the next `add`/`take` calls panic.
    static CRASH_ADD: Cell<u32> = const { Cell::new(0) };
    static CRASH_TAKE: Cell<u32> = const { Cell::new(0) };
    /// `scribble` swaps a block of its own into the lent alias.
    static SWAP: Cell<bool> = const { Cell::new(false) };
    /// The owner of the block `foreign` returns.
    static FOREIGN: Cell<DomainId> = const { Cell::new(DomainId::KERNEL) };
    /// Calls that reached `take`.
    static TAKEN: Cell<u32> = const { Cell::new(0) };
    /// Domains `Runtime::kill` was called on.
    static KILLED: RefCell<Vec<DomainId>> = const { RefCell::new(Vec::new()) };
    /// Destructors of `EchoImpl`s run, and in which domain.
    static DROPPED: RefCell<Vec<(u64, DomainId)>> = const { RefCell::new(Vec::new()) };
}

struct MockRt;

fn switch_to(d: (DomainId, u64)) -> (DomainId, u64) {
    HostHeap::install().set_current(d.0);
    CURRENT.with(|c| c.replace(d))
}

fn slot<O>(d: DomainId, f: impl FnOnce(&mut Slot) -> O) -> O {
    SLOTS.with(|s| f(s.borrow_mut().get_mut(&d).expect("mock: unknown domain")))
}

fn is_alive<T: ?Sized>(t: &Target<T>) -> bool {
    slot(t.domain(), |s| s.alive && s.generation == t.generation())
}

// SAFETY: `call` checks the generation before dereferencing and runs `f` in the target's
// domain; a panic marks the domain dead and no more of its code runs in that call.
unsafe impl Runtime for MockRt {
    fn current() -> (DomainId, u64) {
        CURRENT.with(Cell::get)
    }

    fn move_token(from: DomainId) -> rref::MoveToken {
        // SAFETY: the mock is this test's proxy runtime.
        unsafe { rref::MoveToken::new(from) }
    }

    fn take_violation() -> bool {
        rref::heap().take_violation()
    }

    fn kill<T: ?Sized>(target: &Target<T>) {
        KILLED.with(|k| k.borrow_mut().push(target.domain()));
        if is_alive(target) {
            slot(target.domain(), |s| s.alive = false);
            // SAFETY: the domain is dead: its handles are never used again (the proxy
            // forgets what it got from it).
            unsafe { HostHeap::install().reclaim(target.domain()) };
        }
    }

    fn call<T: ?Sized, O>(target: &Target<T>, f: impl FnOnce(&T) -> O) -> RpcResult<O> {
        if !is_alive(target) {
            return Err(RpcError::DomainDead);
        }
        let caller = switch_to((target.domain(), target.generation()));
        // SAFETY: the generation is alive, and it stays alive during the call (only a panic
        // of this call kills it, after which the reference is not used).
        let r = catch_unwind(AssertUnwindSafe(|| f(unsafe { target.get() })));
        switch_to(caller);
        r.map_err(|_| {
            slot(target.domain(), |s| s.alive = false);
            RpcError::Panicked
        })
    }

    fn recover<T: ?Sized + 'static>(target: &Target<T>) -> RpcResult<Target<T>> {
        let d = target.domain();
        let dead = slot(d, |s| !s.alive);
        if dead {
            let generation = slot(d, |s| s.generation + 1);
            let restart = slot(d, |s| s.restart.take()).ok_or(RpcError::RestartFailed)?;
            let live = restart(d, generation);
            slot(d, |s| {
                s.generation = generation;
                s.alive = true;
                s.live = Some(live);
                s.restart = Some(restart);
            });
        }
        slot(d, |s| {
            s.live
                .as_ref()
                .and_then(|l| l.downcast_ref::<Target<T>>().copied())
        })
        .ok_or(RpcError::RestartFailed)
    }

    fn release<T: ?Sized>(target: &Target<T>) {
        if is_alive(target) {
            let caller = switch_to((target.domain(), target.generation()));
            // SAFETY: `adopt` leaked this box for the target; it is released once.
            drop(unsafe { Box::from_raw(target.as_ptr().as_ptr()) });
            switch_to(caller);
        }
    }
}

/// A new domain (generation 1) with no object: the test's own "client" domain.
fn client() -> DomainId {
    let d = HostHeap::install().fresh_domain();
    SLOTS.with(|s| {
        s.borrow_mut().insert(
            d,
            Slot {
                generation: 1,
                alive: true,
                live: None,
                restart: None,
            },
        )
    });
    switch_to((d, 1));
    d
}

fn echo_target(d: DomainId, generation: u64) -> Target<dyn Echo> {
    let obj: Box<dyn Echo> = Box::new(EchoImpl {
        id: generation * 100,
    });
    // SAFETY: a leaked object of domain `d`, generation `generation`.
    unsafe { Target::new(d, generation, NonNull::from(Box::leak(obj))) }
}

/// A new domain running an `EchoImpl`, restartable.
fn spawn_echo() -> Target<dyn Echo> {
    let d = HostHeap::install().fresh_domain();
    let t = echo_target(d, 1);
    let restart = |d, g| Box::new(echo_target(d, g)) as Box<dyn Any>;
    SLOTS.with(|s| {
        let slot = Slot {
            generation: 1,
            alive: true,
            live: Some(Box::new(t)),
            restart: Some(Box::new(restart)),
        };
        s.borrow_mut().insert(d, slot)
    });
    t
}

fn generation(d: DomainId) -> u64 {
    slot(d, |s| s.generation)
}

fn me() -> DomainId {
    MockRt::current().0
}

// ---------------------------------------------------------------------------------------
// The callee.

struct EchoImpl {
    id: u64,
}

impl Drop for EchoImpl {
    fn drop(&mut self) {
        DROPPED.with(|d| d.borrow_mut().push((self.id, me())));
    }
}

fn crash_if(budget: &'static std::thread::LocalKey<Cell<u32>>) {
    let left = budget.with(Cell::get);
    if left > 0 {
        budget.with(|b| b.set(left - 1));
        panic!("injected crash");
    }
}

impl Echo for EchoImpl {
    fn ping(&self) -> RpcResult<()> {
        Ok(())
    }

    fn add(&self, a: u64, b: u64) -> RpcResult<u64> {
        crash_if(&CRASH_ADD);
        Ok(a + b + self.id)
    }

    fn take(&self, mut buf: RRef<[u8; 64]>) -> RpcResult<RRef<[u8; 64]>> {
        assert_eq!(
            buf.owner(),
            me(),
            "a moved RRef belongs to the callee inside the call"
        );
        crash_if(&CRASH_TAKE);
        TAKEN.with(|t| t.set(t.get() + 1));
        buf[0] += 1;
        Ok(buf)
    }

    fn take_data(&self, data: RRef<Data>) -> RpcResult<u64> {
        assert_eq!(data.owner(), me());
        let extra = data.extra.as_ref().expect("test passes an extra RRef");
        assert_eq!(
            extra.owner(),
            me(),
            "nested RRefs move with their container"
        );
        Ok(data.value + u64::from(**extra))
    }

    fn peek(&self, lent: &RRef<Data>, also: &mut RRefVec<u32>) -> RpcResult<u64> {
        assert_ne!(lent.owner(), me(), "a lent RRef stays with its owner");
        assert_eq!(lent.borrow_count(), 1, "lent for the call");
        assert_eq!(also.borrow_count(), 1, "lent for the call");
        also[0] = 7;
        Ok(lent.value + u64::from(also[1]))
    }

    fn make(&self, seed: u64) -> RpcResult<Remote<dyn Echo>> {
        Ok(Remote::local(Box::new(EchoImpl { id: seed })))
    }

    fn give(&self, cb: Remote<dyn Echo>) -> RpcResult<u64> {
        assert!(
            cb.is_proxied(),
            "a handle from another domain arrives proxied"
        );
        let home = cb.target().expect("proxied").domain();
        assert_ne!(home, me());
        // Calls back into the caller's domain through the proxy.
        let sum = cb.add(1, 2)?;
        Ok(sum * 1000 + u64::from(home.0))
    }

    fn scribble(&self, buf: &mut RRef<[u8; 8]>) -> RpcResult<u64> {
        assert_ne!(buf.owner(), me(), "the lent block stays the caller's");
        if SWAP.with(Cell::get) {
            let theirs = std::mem::replace(buf, RRef::new([0xee; 8]));
            // Dropping the caller's block cannot free it: it is lent.
            drop(theirs);
        } else {
            buf[0] = 1;
        }
        Ok(7)
    }

    fn foreign(&self) -> RpcResult<RRef<u64>> {
        let heap = HostHeap::install();
        heap.set_current(FOREIGN.with(Cell::get));
        let r = RRef::new(5);
        heap.set_current(me());
        Ok(r)
    }
}

struct PlainImpl;
impl Plain for PlainImpl {
    fn get(&self) -> RpcResult<u64> {
        Ok(5)
    }
}

fn proxy(t: &Target<dyn Echo>) -> &Proxy<dyn Echo, MockRt> {
    Proxy::from_target(t)
}

fn recovering(t: &Target<dyn Echo>) -> &Recover<dyn Echo, MockRt> {
    Recover::from_target(t)
}

fn blocks(d: DomainId) -> u64 {
    HostHeap::install().counters().blocks(d)
}

// ---------------------------------------------------------------------------------------

#[test]
fn plain_call_reaches_the_callee() {
    let _me = client();
    let t = spawn_echo();
    assert_eq!(proxy(&t).ping(), Ok(()));
    assert_eq!(proxy(&t).add(2, 3), Ok(105));
    assert_eq!(
        me(),
        _me,
        "the caller's domain is current again after the call"
    );
}

#[test]
fn moved_rref_belongs_to_callee_inside_and_result_to_caller_after() {
    let me = client();
    let t = spawn_echo();
    let buf = RRef::new([1u8; 64]);
    assert_eq!(buf.owner(), me);
    let back = proxy(&t).take(buf).unwrap();
    assert_eq!(back.owner(), me, "the returned RRef is the caller's");
    assert_eq!(back[0], 2);
    assert_eq!((blocks(me), blocks(t.domain())), (1, 0));
    drop(back);
    assert_eq!(blocks(me), 0);
}

#[test]
fn nested_rrefs_move_with_a_derived_struct() {
    let me = client();
    let t = spawn_echo();
    let data = RRef::new(Data {
        value: 40,
        extra: Some(RRef::new(2)),
    });
    assert_eq!(blocks(me), 2);
    assert_eq!(proxy(&t).take_data(data), Ok(42));
    // The callee dropped both blocks, in its domain.
    assert_eq!((blocks(me), blocks(t.domain())), (0, 0));
}

#[test]
fn lent_rrefs_are_borrowed_for_the_call_only() {
    let me = client();
    let t = spawn_echo();
    let data = RRef::new(Data {
        value: 10,
        extra: None,
    });
    let mut v = RRefVec::from_slice(&[0u32, 5]);
    assert_eq!(proxy(&t).peek(&data, &mut v), Ok(15));
    assert_eq!((data.borrow_count(), v.borrow_count()), (0, 0));
    assert_eq!((data.owner(), v.owner()), (me, me));
    assert_eq!(v[0], 7, "the callee wrote through &mut");
    // Through the recovery proxy too (arguments re-borrowed for a possible retry).
    assert_eq!(recovering(&t).peek(&data, &mut v), Ok(15));
    assert_eq!((data.borrow_count(), v.borrow_count()), (0, 0));
}

#[test]
fn dead_callee_fails_fast_and_the_argument_stays_with_the_caller() {
    let me = client();
    let t = spawn_echo();
    slot(t.domain(), |s| s.alive = false);
    assert_eq!(proxy(&t).ping(), Err(RpcError::DomainDead));
    assert_eq!(
        proxy(&t).take(RRef::new([0; 64])).unwrap_err(),
        RpcError::DomainDead
    );
    assert_eq!(blocks(me), 0, "the argument was dropped by the caller");
    assert_eq!(blocks(t.domain()), 0);
}

#[test]
fn crash_during_call_is_an_error_for_the_plain_proxy() {
    let _me = client();
    let t = spawn_echo();
    CRASH_ADD.with(|c| c.set(1));
    assert_eq!(proxy(&t).add(1, 1), Err(RpcError::Panicked));
    assert_eq!(
        proxy(&t).add(1, 1),
        Err(RpcError::DomainDead),
        "no restart without recover"
    );
}

#[test]
fn recovery_proxy_retries_idempotent_methods() {
    let _me = client();
    let t = spawn_echo();
    CRASH_ADD.with(|c| c.set(1));
    assert_eq!(
        recovering(&t).add(1, 2),
        Ok(203),
        "answered by generation 2"
    );
    assert_eq!(generation(t.domain()), 2);
    // Two crashes in a row are still covered (MAX_RETRIES = 2) ...
    CRASH_ADD.with(|c| c.set(2));
    assert_eq!(recovering(&t).add(1, 2), Ok(403));
    // ... three are not: the caller sees the crash.
    CRASH_ADD.with(|c| c.set(3));
    assert_eq!(recovering(&t).add(1, 2), Err(RpcError::Panicked));
}

#[test]
fn recovery_proxy_does_not_retry_other_methods_but_restarts() {
    let me = client();
    let t = spawn_echo();
    CRASH_TAKE.with(|c| c.set(1));
    assert_eq!(
        recovering(&t).take(RRef::new([0; 64])).unwrap_err(),
        RpcError::Panicked
    );
    assert_eq!(generation(t.domain()), 2, "restarted for the next caller");
    assert!(slot(t.domain(), |s| s.alive));
    let back = recovering(&t).take(RRef::new([0; 64])).unwrap();
    assert_eq!((back[0], back.owner()), (1, me));
}

#[test]
fn recovery_proxy_restarts_a_dead_domain_before_calling() {
    let _me = client();
    let t = spawn_echo();
    slot(t.domain(), |s| s.alive = false);
    assert_eq!(recovering(&t).ping(), Ok(()));
    assert_eq!(generation(t.domain()), 2);
}

#[test]
fn returned_remote_is_proxied_into_the_callee() {
    let _me = client();
    let t = spawn_echo();
    let r = proxy(&t).make(7).unwrap();
    assert!(r.is_proxied());
    let target = r.target().unwrap();
    assert_eq!((target.domain(), target.generation()), (t.domain(), 1));
    assert_eq!(
        r.add(1, 1),
        Ok(9),
        "calls go through the proxy into the callee"
    );
    drop(r);
    let dropped = DROPPED.with(|d| d.borrow().clone());
    assert_eq!(
        dropped,
        [(7, t.domain())],
        "released inside the callee's domain"
    );
}

#[test]
fn remote_argument_is_adopted_by_the_callee() {
    let me = client();
    let t = spawn_echo();
    let mine: Remote<dyn Echo> = Remote::local(Box::new(EchoImpl { id: 50 }));
    assert_eq!(proxy(&t).give(mine), Ok(53 * 1000 + u64::from(me.0)));
    let dropped = DROPPED.with(|d| d.borrow().clone());
    assert_eq!(
        dropped,
        [(50, me)],
        "the callee released it: the destructor ran in our domain"
    );
}

#[test]
fn proxyable_views() {
    let _me = client();
    let t = spawn_echo();
    let view = <dyn Echo as Proxyable>::proxy_view::<MockRt>();
    assert_eq!(view(&t).add(0, 0), Ok(100));
    let recover = <dyn Echo as Proxyable>::recover_view::<MockRt>().expect("#[interface(recover)]");
    slot(t.domain(), |s| s.alive = false);
    assert_eq!(recover(&t).add(0, 0), Ok(200));
    assert!(<dyn Plain as Proxyable>::recover_view::<MockRt>().is_none());

    // A Remote built on the view, as the kernel grants handles.
    let d = HostHeap::install().fresh_domain();
    SLOTS.with(|s| {
        s.borrow_mut().insert(
            d,
            Slot {
                generation: 1,
                alive: true,
                live: None,
                restart: None,
            },
        )
    });
    let obj: Box<dyn Plain> = Box::new(PlainImpl);
    // SAFETY: a leaked object of domain `d`, generation 1.
    let pt = unsafe { Target::new(d, 1, NonNull::from(Box::leak(obj))) };
    // SAFETY: the view is the proxy view of `dyn Plain` for MockRt; no release.
    let handle =
        unsafe { Remote::proxied(pt, <dyn Plain as Proxyable>::proxy_view::<MockRt>(), None) };
    assert_eq!(handle.get(), Ok(5));
}

fn killed() -> Vec<DomainId> {
    KILLED.with(|k| k.borrow().clone())
}

#[test]
fn mut_lend_writes_reach_the_caller_through_an_alias() {
    let me = client();
    let t = spawn_echo();
    let mut buf = RRef::new([0u8; 8]);
    let hdr = buf.header();
    assert_eq!(proxy(&t).scribble(&mut buf), Ok(7));
    assert_eq!((buf[0], buf.header(), buf.owner(), buf.borrow_count()), (1, hdr, me, 0));
    assert!(killed().is_empty());
}

#[test]
fn swapping_a_mut_lent_handle_kills_the_callee_and_keeps_the_callers() {
    let me = client();
    let t = spawn_echo();
    let mut buf = RRef::new([3u8; 8]);
    let hdr = buf.header();
    SWAP.with(|s| s.set(true));
    assert_eq!(proxy(&t).scribble(&mut buf), Err(RpcError::Refused));
    SWAP.with(|s| s.set(false));
    assert_eq!(killed(), [t.domain()], "the callee was killed");
    assert_eq!(proxy(&t).ping(), Err(RpcError::DomainDead));
    assert_eq!(buf.header(), hdr, "the caller's handle still points at its block");
    assert_eq!((buf.owner(), buf.borrow_count()), (me, 0));
    assert_eq!(blocks(t.domain()), 0, "the callee's swapped-in block went with it");
    assert_eq!(blocks(me), 1);
    buf[1] = 4;
    drop(buf);
    assert_eq!(blocks(me), 0);
}

#[test]
fn an_argument_the_caller_does_not_own_is_refused_before_the_callee_runs() {
    let me = client();
    let t = spawn_echo();
    let other = HostHeap::install().fresh_domain();
    HostHeap::install().set_current(other);
    let stolen = RRef::new([9u8; 64]);
    HostHeap::install().set_current(me);
    let before = TAKEN.with(Cell::get);
    assert_eq!(proxy(&t).take(stolen).unwrap_err(), RpcError::Refused);
    assert_eq!(TAKEN.with(Cell::get), before, "the method did not run");
    assert_eq!(blocks(other), 1, "the block was neither moved nor freed");
    assert_eq!(blocks(t.domain()), 0);
    assert!(killed().is_empty(), "the callee did nothing wrong");
    assert_eq!(proxy(&t).ping(), Ok(()));
    // SAFETY: the forgotten argument was `other`'s only handle.
    unsafe { HostHeap::install().reclaim(other) };
}

#[test]
fn a_result_the_callee_does_not_own_kills_it() {
    let me = client();
    let t = spawn_echo();
    FOREIGN.with(|f| f.set(me));
    assert_eq!(proxy(&t).foreign().unwrap_err(), RpcError::Refused);
    assert_eq!(killed(), [t.domain()]);
    assert_eq!(blocks(me), 1, "the block was not handed over");
    // SAFETY: the forgotten result was the only handle of our block.
    unsafe { HostHeap::install().reclaim(me) };
    // The callee's own blocks are returned normally.
    let t = spawn_echo();
    FOREIGN.with(|f| f.set(t.domain()));
    let r = proxy(&t).foreign().unwrap();
    assert_eq!((*r, r.owner()), (5, me));
}
