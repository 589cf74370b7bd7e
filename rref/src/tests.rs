//! Host unit tests, on the shared [`HostHeap`]. Tests run in parallel on that one heap, so
//! they only assert on the counters of domains they got from `fresh_domain`.

use crate::host::HostHeap;
use crate::registry::{Counters, Reclaimed, Registry};
use crate::*;
use core::alloc::Layout;
use core::marker::PhantomData;
use core::mem;
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::collections::VecDeque;
use std::format;
use std::vec::Vec;

/// Tests stand in for the proxy runtime, which alone may move and lend blocks.
fn tok(from: DomainId) -> MoveToken {
    // SAFETY: test code playing the runtime.
    unsafe { MoveToken::new(from) }
}

/// Installs the host heap and makes a fresh domain current on this thread.
fn domain() -> (&'static HostHeap, DomainId) {
    let h = HostHeap::install();
    let d = h.fresh_domain();
    h.set_current(d);
    (h, d)
}

/// (blocks, bytes) owned by `d`.
fn counts(h: &HostHeap, d: DomainId) -> (u64, u64) {
    (h.counters().blocks(d), h.counters().bytes(d))
}

/// Size of a block holding one `T`, as the spec computes it.
fn block_size<T>() -> u64 {
    Layout::new::<Header>().extend(Layout::new::<T>()).unwrap().0.pad_to_align().size() as u64
}

fn header_size(hdr: core::ptr::NonNull<Header>) -> u64 {
    // SAFETY: only called on headers of handles the test still holds.
    unsafe { hdr.as_ref() }.size as u64
}

/// Declares a payload type `$name` whose drops are counted in its own static `$drops`.
macro_rules! counted {
    ($name:ident, $drops:ident) => {
        static $drops: AtomicUsize = AtomicUsize::new(0);
        #[allow(dead_code)]
        struct $name(usize);
        impl Drop for $name {
            fn drop(&mut self) {
                $drops.fetch_add(1, SeqCst);
            }
        }
        // SAFETY: plain data, no RRef inside.
        unsafe impl Exchangeable for $name {
            const HAS_RREFS: bool = false;
            const FINGERPRINT: u64 = 0;
            fn move_to(&self, _to: DomainId, _token: MoveToken) {}
        }
    };
}

/// A struct with RRefs inside, as `#[derive(Exchangeable)]` would handle it.
struct Packet {
    id: u32,
    body: RRef<[u8; 16]>,
    meta: Option<RRef<u64>>,
}

// SAFETY: every field is exchangeable and moved.
unsafe impl Exchangeable for Packet {
    const HAS_RREFS: bool = true;
    const FINGERPRINT: u64 = 1;
    fn move_to(&self, to: DomainId, token: MoveToken) {
        self.id.move_to(to, token);
        self.body.move_to(to, token);
        self.meta.move_to(to, token);
    }
}

#[repr(align(64))]
struct Aligned([u8; 64]);

// SAFETY: plain data.
unsafe impl Exchangeable for Aligned {
    const HAS_RREFS: bool = false;
    const FINGERPRINT: u64 = 2;
    fn move_to(&self, _to: DomainId, _token: MoveToken) {}
}

#[test]
fn rref_new_deref_drop_restores_counters() {
    let (h, d) = domain();
    assert_eq!(counts(h, d), (0, 0));
    let mut r = RRef::new(41u64);
    assert_eq!(*r, 41);
    *r += 1;
    assert_eq!(*r, 42);
    assert_eq!(r.owner(), d);
    assert_eq!(r.borrow_count(), 0);
    assert_eq!(mem::size_of::<Header>(), 40);
    assert_eq!(block_size::<u64>(), 48);
    assert_eq!(header_size(r.header()), 48);
    assert_eq!(counts(h, d), (1, 48));
    drop(r);
    assert_eq!(counts(h, d), (0, 0));
}

#[test]
fn rref_try_new_into_inner_and_debug() {
    let (h, d) = domain();
    let r = RRef::try_new((7u16, 'x')).expect("heap has room");
    assert_eq!(counts(h, d), (1, block_size::<(u16, char)>()));
    assert_eq!(format!("{r:?}"), "(7, 'x')");
    assert_eq!(r.into_inner(), (7, 'x'));
    assert_eq!(counts(h, d), (0, 0));

    counted!(Noisy, DROPS);
    let n = RRef::new(Noisy(3)).into_inner();
    assert_eq!(DROPS.load(SeqCst), 0, "into_inner must not drop the value");
    assert_eq!(n.0, 3);
    drop(n);
    assert_eq!(DROPS.load(SeqCst), 1);
    assert_eq!(counts(h, d), (0, 0));
}

#[test]
fn payload_follows_header_at_its_alignment() {
    let (h, d) = domain();
    let small = RRef::new(1u8);
    let big = RRef::new(Aligned([9; 64]));
    let offset = |hdr: core::ptr::NonNull<Header>, p: *const u8| p as usize - hdr.as_ptr() as usize;
    assert_eq!(offset(small.header(), &*small), mem::size_of::<Header>());
    assert_eq!(header_size(small.header()), 48);
    assert_eq!(offset(big.header(), big.0.as_ptr()), 64);
    assert_eq!((&*big as *const Aligned as usize) % 64, 0);
    assert_eq!(header_size(big.header()), 128);
    // SAFETY: `big` is alive.
    assert_eq!(unsafe { big.header().as_ref() }.align, 64);
    assert!(big.0.iter().all(|&b| b == 9));
    assert_eq!(counts(h, d), (2, 176));
    drop((small, big));
    assert_eq!(counts(h, d), (0, 0));
}

#[test]
fn move_to_retags_and_moves_counters() {
    let (h, a) = domain();
    let b = h.fresh_domain();
    let r = RRef::new(5u32);
    let size = block_size::<u32>();
    r.move_to(b, tok(a));
    assert_eq!(r.owner(), b);
    assert_eq!(counts(h, a), (0, 0));
    assert_eq!(counts(h, b), (1, size));
    r.move_to(b, tok(b));
    assert_eq!(counts(h, b), (1, size), "moving to the owner changes nothing");
    r.move_to(a, tok(b));
    assert_eq!((counts(h, a), counts(h, b)), ((1, size), (0, 0)));
    r.move_to(b, tok(a));
    assert!(!h.take_violation(), "every move was from the owner");
    drop(r);
    assert_eq!((counts(h, a), counts(h, b)), ((0, 0), (0, 0)));
}

#[test]
fn nested_rref_move_retags_every_block() {
    let (h, a) = domain();
    let b = h.fresh_domain();
    let p = RRef::new(Packet { id: 1, body: RRef::new([3; 16]), meta: Some(RRef::new(9)) });
    let bytes = header_size(p.header()) + header_size(p.body.header()) + header_size(p.meta.as_ref().unwrap().header());
    assert_eq!(counts(h, a), (3, bytes));
    p.move_to(b, tok(a));
    assert_eq!(p.owner(), b);
    assert_eq!(p.body.owner(), b);
    assert_eq!(p.meta.as_ref().unwrap().owner(), b);
    assert_eq!((counts(h, a), counts(h, b)), ((0, 0), (3, bytes)));
    assert_eq!((p.id, p.body[5], **p.meta.as_ref().unwrap()), (1, 3, 9));
    drop(p);
    assert_eq!(counts(h, b), (0, 0));
}

#[test]
fn vec_of_rrefs_move_retags_every_block() {
    let (h, a) = domain();
    let b = h.fresh_domain();
    let v = RRefVec::new_with(5, |i| RRef::new(i as u32 * 10));
    assert_eq!(counts(h, a).0, 6);
    v.move_to(b, tok(a));
    assert_eq!(v.owner(), b);
    assert!(v.iter().all(|r| r.owner() == b));
    assert_eq!(counts(h, a), (0, 0));
    assert_eq!(counts(h, b), (6, header_size(v.header()) + 5 * block_size::<u32>()));
    assert_eq!(v.iter().map(|r| **r).collect::<Vec<_>>(), [0, 10, 20, 30, 40]);
    drop(v);
    assert_eq!(counts(h, b), (0, 0));
}

#[test]
fn deque_of_rrefs_moves_in_one_step_and_its_elements_follow() {
    let (h, a) = domain();
    let b = h.fresh_domain();
    let mut q: RRefDeque<RRef<u32>, 4> = RRefDeque::new();
    assert_eq!(<RRef<u32> as Exchangeable>::LEAF_BLOCK as u64, block_size::<u32>());
    for i in 0..3 {
        q.push_back(RRef::new(i)).unwrap();
    }
    assert_eq!(counts(h, a), (4, header_size(q.header()) + 3 * block_size::<u32>()));
    // Owned through the deque: one tag to change, whatever the length.
    assert!(q.iter().all(|r| r.owner() == DomainId::IN_RING));
    q.move_to(b, tok(a));
    assert_eq!(q.owner(), b);
    assert_eq!(counts(h, a), (0, 0));
    assert_eq!(counts(h, b), (4, header_size(q.header()) + 3 * block_size::<u32>()));
    let first = q.pop_front().unwrap();
    assert_eq!((*first, first.owner()), (0, b), "a popped handle has the deque's owner");
    assert_eq!(counts(h, b), (4, header_size(q.header()) + 3 * block_size::<u32>()));
    // Back in: still counted once, owned through the deque again.
    q.push_back(first).unwrap();
    q.move_to(a, tok(b));
    assert_eq!(counts(h, a).0, 4);
    assert_eq!(q.iter().map(|r| **r).collect::<Vec<_>>(), [1, 2, 0]);
    drop(q);
    assert_eq!(counts(h, a), (0, 0));
    assert_eq!(counts(h, b), (0, 0));
}

#[test]
fn deque_targets_are_changed_in_place_and_stay_in_the_ring() {
    let (h, a) = domain();
    let mut q: RRefDeque<RRef<u32>, 4> = RRefDeque::new();
    // Wrapped: head moves past the start of the slots.
    for i in 0..4 {
        q.push_back(RRef::new(i)).unwrap();
    }
    let x = q.pop_front().unwrap();
    let y = q.pop_front().unwrap();
    q.push_back(y).unwrap();
    q.push_back(x).unwrap();
    let mut seen = Vec::new();
    q.for_each_target_mut(|v: &mut u32| {
        seen.push(*v);
        *v += 100;
    });
    assert_eq!(seen, [2, 3, 1, 0]);
    assert!(q.iter().all(|r| r.owner() == DomainId::IN_RING));
    assert_eq!(q.iter().map(|r| **r).collect::<Vec<_>>(), [102, 103, 101, 100]);
    assert_eq!(counts(h, a).0, 5);
    drop(q);
    assert_eq!(counts(h, a), (0, 0));
}

#[test]
fn deque_of_rrefs_refuses_a_block_that_is_not_its_owners() {
    let (h, a) = domain();
    let b = h.fresh_domain();
    let mut q: RRefDeque<RRef<u32>, 4> = RRefDeque::new();
    // Another domain's block (as a handle obtained by swapping a lent alias would be).
    let theirs = RRef::new(7u32);
    theirs.move_to(b, tok(a));
    let theirs = q.push_back(theirs).expect_err("not the deque owner's");
    assert_eq!((theirs.owner(), q.len()), (b, 0));
    // A lent block of its own.
    let mine = RRef::new(8u32);
    let guard = lend(&mine, tok(a));
    let mine = q.push_back(mine).expect_err("lent");
    assert_eq!((mine.owner(), mine.borrow_count(), q.len()), (a, 1, 0));
    drop(guard);
    q.push_back(mine).unwrap();
    assert_eq!(q.len(), 1);
    theirs.move_to(a, tok(b));
    drop((q, theirs));
    assert_eq!(counts(h, a), (0, 0));
    assert_eq!(counts(h, b), (0, 0));
}

#[test]
fn reclaiming_a_deque_owner_frees_what_the_deque_holds() {
    let (h, a) = domain();
    let d = h.fresh_domain();
    let mut q: RRefDeque<RRef<u64>, 8> = RRefDeque::new();
    for i in 0..5 {
        q.push_back(RRef::new(i)).unwrap();
    }
    let kept = q.pop_front().unwrap();
    // The deque moves to `d` (its elements' tags untouched), which then dies.
    q.move_to(d, tok(a));
    assert_eq!(counts(h, a), (1, block_size::<u64>()));
    assert_eq!(counts(h, d).0, 5);
    // SAFETY: `d`'s only handle (the deque) is forgotten.
    let got = unsafe { h.reclaim(d) };
    mem::forget(q);
    assert_eq!((got.freed_blocks, got.orphaned_blocks), (5, 0));
    assert_eq!(counts(h, d), (0, 0));
    assert_eq!((*kept, kept.owner(), counts(h, a).0), (0, a, 1), "a popped block is not the deque's");
    drop(kept);
    assert_eq!(counts(h, a), (0, 0));
}

#[test]
fn a_lent_deque_element_orphans_the_deque_with_everything_it_holds() {
    let _serial = ORPHAN_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let (h, d) = domain();
    let mut q: RRefDeque<RRef<u64>, 4> = RRefDeque::new();
    for i in 0..3 {
        q.push_back(RRef::new(i)).unwrap();
    }
    let before = counts(h, d);
    let orphans_before = counts(h, DomainId::ORPHAN);
    // One element is lent to a callee when `d` dies.
    let guard = lend(q.iter().nth(1).unwrap(), tok(d));
    // SAFETY: the deque is forgotten below; until then only the lend uses it.
    let got = unsafe { h.reclaim(d) };
    assert_eq!(got.orphaned_blocks, 4);
    assert_eq!(counts(h, d), (0, 0));
    assert_eq!(counts(h, DomainId::ORPHAN).0, orphans_before.0 + before.0);
    assert_eq!(**q.iter().nth(1).unwrap(), 1, "the borrower still reads it");
    drop(guard);
    assert_eq!(counts(h, DomainId::ORPHAN), orphans_before, "the lend's end frees the group");
    mem::forget(q);
}

#[test]
fn tuples_arrays_options_results_move_nested_rrefs() {
    fn exchangeable<T: Exchangeable>() {}
    exchangeable::<(u8, u16, u32, u64, u128, usize, i8, i16)>();
    exchangeable::<(i32, i64, i128, isize, bool, char, f32, f64)>();
    exchangeable::<((), [u8; 0], PhantomData<*const u8>, DomainId, Result<(), rpc::RpcError>)>();

    let (h, a) = domain();
    let b = h.fresh_domain();
    type Mix = (RRef<u8>, [RRef<u16>; 2], Option<RRef<u32>>, Result<RRef<u64>, u8>, PhantomData<u8>, DomainId, bool);
    let mix: RRef<Mix> = RRef::new((
        RRef::new(1),
        [RRef::new(2), RRef::new(3)],
        Some(RRef::new(4)),
        Ok(RRef::new(5)),
        PhantomData,
        a,
        true,
    ));
    assert_eq!(counts(h, a).0, 6);
    mix.move_to(b, tok(a));
    assert_eq!(counts(h, a), (0, 0));
    assert_eq!(counts(h, b).0, 6);
    assert_eq!(mix.1[1].owner(), b);
    assert_eq!(mix.3.as_ref().unwrap().owner(), b);
    let err: Result<RRef<u8>, RRef<u8>> = Err(RRef::new(6));
    err.move_to(b, tok(a));
    assert_eq!(err.as_ref().unwrap_err().owner(), b);
    drop((mix, err));
    assert_eq!(counts(h, b), (0, 0));
}

#[test]
fn lend_guard_counts_borrows() {
    let (h, d) = domain();
    let r = RRef::new(1u8);
    let v = RRefVec::from_slice(&[1u8, 2]);
    let q: RRefDeque<u8, 2> = RRefDeque::new();
    let g1 = lend(&r, tok(d));
    let g2 = lend(&r, tok(d));
    assert_eq!(r.borrow_count(), 2);
    drop(g1);
    assert_eq!(r.borrow_count(), 1);
    drop(g2);
    assert_eq!(r.borrow_count(), 0);
    let (gv, gq) = (lend(&v, tok(d)), lend(&q, tok(d)));
    assert_eq!((v.borrow_count(), q.borrow_count()), (1, 1));
    drop((gv, gq));
    assert_eq!((v.borrow_count(), q.borrow_count()), (0, 0));
    assert_eq!(r.owner(), d);
    assert_eq!(counts(h, d).0, 3);
    drop((r, v, q));
    assert_eq!(counts(h, d), (0, 0));
}

#[test]
fn reclaim_frees_nested_blocks_without_destructors() {
    counted!(Noisy, DROPS);
    let (h, d) = domain();
    let outer = RRef::new((RRef::new(Noisy(1)), RRefVec::new_with(3, |i| RRef::new(Noisy(i)))));
    let mut q: RRefDeque<Noisy, 4> = RRefDeque::new();
    q.push_back(Noisy(7)).ok().unwrap();
    q.push_back(Noisy(8)).ok().unwrap();
    let before = counts(h, d);
    assert_eq!(before.0, 7);
    // SAFETY: the handles are forgotten below, never used again.
    let got = unsafe { h.reclaim(d) };
    assert_eq!(got, Reclaimed { freed_blocks: 7, freed_bytes: before.1 as usize, orphaned_blocks: 0 });
    assert_eq!(counts(h, d), (0, 0));
    assert_eq!(DROPS.load(SeqCst), 0, "reclaim must run no destructor");
    mem::forget((outer, q));
}

#[test]
fn reclaim_leaves_other_domains_intact() {
    let (h, a) = domain();
    let mine = RRef::new(Packet { id: 7, body: RRef::new([1; 16]), meta: None });
    let mine_counts = counts(h, a);
    let b = h.fresh_domain();
    h.set_current(b);
    let theirs = RRefVec::new_with(4, |i| RRef::new(i as u64));
    assert_eq!(counts(h, b).0, 5);
    // SAFETY: `theirs` is forgotten below.
    let got = unsafe { h.reclaim(b) };
    mem::forget(theirs);
    assert_eq!((got.freed_blocks, got.orphaned_blocks), (5, 0));
    assert_eq!(counts(h, b), (0, 0));
    assert_eq!(counts(h, a), mine_counts);
    assert_eq!((mine.id, mine.body[15], mine.owner(), mine.body.owner()), (7, 1, a, a));
    drop(mine);
    assert_eq!(counts(h, a), (0, 0));
}

#[test]
fn reclaim_skips_block_lent_to_dead_domain() {
    let (h, a) = domain();
    let r = RRef::new(Packet { id: 3, body: RRef::new([2; 16]), meta: Some(RRef::new(8)) });
    let a_counts = counts(h, a);
    // Lent to `b`, which then dies.
    let b = h.fresh_domain();
    let guard = lend(&r, tok(a));
    h.set_current(b);
    let own = RRef::new(0u64);
    // SAFETY: `own` is forgotten below.
    let got = unsafe { h.reclaim(b) };
    mem::forget(own);
    assert_eq!(got, Reclaimed { freed_blocks: 1, freed_bytes: block_size::<u64>() as usize, orphaned_blocks: 0 });
    assert_eq!(counts(h, a), a_counts);
    assert_eq!((r.owner(), r.borrow_count()), (a, 1));
    assert_eq!((r.id, r.body[0], **r.meta.as_ref().unwrap()), (3, 2, 8));
    drop(guard);
    assert_eq!(r.borrow_count(), 0);
    drop(r);
    assert_eq!(counts(h, a), (0, 0));
}

/// Orphans are pooled process-wide: tests that create them must not overlap.
static ORPHAN_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn reclaim_while_lent_orphans_all_then_last_guard_frees() {
    let _serial = ORPHAN_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    counted!(Noisy, DROPS);
    let (h, d) = domain();
    let outer = RRef::new((RRef::new(Noisy(1)), 5u32));
    let other = RRefVec::new_with(2, |i| RRef::new(Noisy(i)));
    let idle = RRef::new(Noisy(9));
    let before = counts(h, d);
    assert_eq!(before.0, 6);
    // The kernel lent `outer` and `other` to callees; then `d` died.
    let g1 = lend(&outer, tok(d));
    let g2 = lend(&other, tok(d));
    // SAFETY: the handles are forgotten below; until then only the lends use them.
    let got = unsafe { h.reclaim(d) };
    assert_eq!(got, Reclaimed { freed_blocks: 0, freed_bytes: 0, orphaned_blocks: 6 });
    assert_eq!(counts(h, d), (0, 0));
    assert_eq!(counts(h, DomainId::ORPHAN), before);
    // The borrowers can still reach everything, nested blocks included.
    assert_eq!(outer.owner(), DomainId::orphan_of(d));
    assert_eq!(outer.0.owner(), DomainId::orphan_of(d));
    assert_eq!((outer.0 .0, outer.1, other[1].0), (1, 5, 1));
    drop(g1);
    assert_eq!(counts(h, DomainId::ORPHAN), before, "still lent: nothing may be freed");
    drop(g2);
    assert_eq!(counts(h, DomainId::ORPHAN), (0, 0), "the last lend frees every orphan");
    assert_eq!(DROPS.load(SeqCst), 0, "orphans are freed without destructors");
    mem::forget((outer, other, idle));
}

#[test]
fn drop_while_lent_keeps_block_until_reclaim() {
    counted!(Noisy, DROPS);
    let (h, d) = domain();
    let r = RRef::new(Noisy(0));
    let guard = lend(&r, tok(d));
    drop(r);
    assert_eq!(DROPS.load(SeqCst), 1, "the value is dropped");
    assert_eq!(counts(h, d), (1, block_size::<Noisy>()), "the lent block stays allocated");
    drop(guard);
    assert_eq!(counts(h, d).0, 1);
    // SAFETY: `d` holds no handles any more.
    let got = unsafe { h.reclaim(d) };
    assert_eq!(got.freed_blocks, 1);
    assert_eq!(counts(h, d), (0, 0));
}

#[test]
fn deque_fifo_full_and_empty() {
    let (h, d) = domain();
    let mut q: RRefDeque<u32, 3> = RRefDeque::default();
    assert!(q.is_empty() && !q.is_full());
    assert_eq!((q.len(), q.capacity()), (0, 3));
    assert_eq!(q.pop_front(), None);
    for i in 1..=3 {
        q.push_back(i).unwrap();
    }
    assert!(q.is_full());
    assert_eq!(q.push_back(4), Err(4));
    assert_eq!(q.iter().copied().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(format!("{q:?}"), "[1, 2, 3]");
    assert_eq!((q.pop_front(), q.pop_front()), (Some(1), Some(2)));
    q.push_back(4).unwrap();
    q.push_back(5).unwrap();
    assert_eq!(q.iter().copied().collect::<Vec<_>>(), [3, 4, 5], "wrapped around");
    assert_eq!((q.pop_front(), q.pop_front(), q.pop_front(), q.pop_front()), (Some(3), Some(4), Some(5), None));
    assert!(q.is_empty());
    assert_eq!((q.owner(), counts(h, d)), (d, (1, block_size::<(usize, usize, [u32; 3])>())));
    drop(q);
    assert_eq!(counts(h, d), (0, 0));
}

#[test]
fn deque_wraps_around_like_vecdeque() {
    let (h, d) = domain();
    let mut q: RRefDeque<u64, 5> = RRefDeque::new();
    let mut model = VecDeque::new();
    let mut next = 0u64;
    for step in 0..500usize {
        // Pushes outnumber pops for a while, then the other way round, and so on.
        let push = (step / 37) % 2 == 0 || step % 3 == 0;
        if push {
            let got = q.push_back(next);
            if model.len() < 5 {
                model.push_back(next);
                assert_eq!(got, Ok(()));
            } else {
                assert_eq!(got, Err(next));
            }
            next += 1;
        } else {
            assert_eq!(q.pop_front(), model.pop_front());
        }
        assert_eq!(q.len(), model.len());
        assert_eq!(q.is_full(), model.len() == 5);
        assert!(q.iter().eq(model.iter()));
    }
    drop(q);
    assert_eq!(counts(h, d), (0, 0));
}

#[test]
fn deque_drop_drops_remaining_elements() {
    counted!(Noisy, DROPS);
    let (h, d) = domain();
    let mut q: RRefDeque<Noisy, 4> = RRefDeque::new();
    for i in 0..4 {
        q.push_back(Noisy(i)).ok().unwrap();
    }
    drop(q.pop_front());
    drop(q.pop_front());
    assert_eq!(DROPS.load(SeqCst), 2);
    q.push_back(Noisy(4)).ok().unwrap(); // wraps
    q.push_back(Noisy(5)).ok().unwrap();
    assert!(q.is_full());
    let rejected = q.push_back(Noisy(6)).unwrap_err(); // full: handed back
    assert_eq!(rejected.0, 6);
    drop(rejected);
    assert_eq!(DROPS.load(SeqCst), 3);
    assert_eq!(q.iter().map(|n| n.0).collect::<Vec<_>>(), [2, 3, 4, 5]);
    drop(q);
    assert_eq!(DROPS.load(SeqCst), 7, "the 4 remaining elements are dropped with the deque");
    assert_eq!(counts(h, d), (0, 0));
}

#[test]
fn deque_zero_capacity() {
    let (h, d) = domain();
    let mut q: RRefDeque<u8, 0> = RRefDeque::new();
    assert!(q.is_empty() && q.is_full());
    assert_eq!(q.push_back(1), Err(1));
    assert_eq!(q.pop_front(), None);
    assert_eq!(q.iter().count(), 0);
    drop(q);
    assert_eq!(counts(h, d), (0, 0));
}

#[test]
fn vec_len_zero() {
    let (h, a) = domain();
    let b = h.fresh_domain();
    let mut v: RRefVec<u64> = RRefVec::new_with(0, |_| unreachable!());
    assert!(v.is_empty());
    assert_eq!(v.len(), 0);
    assert_eq!(&*v, &[] as &[u64]);
    assert!(v.iter_mut().next().is_none());
    assert_eq!(counts(h, a), (1, mem::size_of::<Header>() as u64));
    v.move_to(b, tok(a));
    assert_eq!((v.owner(), counts(h, b).0), (b, 1));
    let aligned: RRefVec<Aligned> = RRefVec::new_with(0, |_| unreachable!());
    assert_eq!(aligned.len(), 0);
    assert_eq!(aligned.as_ptr() as usize % 64, 0);
    assert_eq!(format!("{:?}", RRefVec::<u8>::from_slice(&[])), "[]");
    drop((v, aligned));
    assert_eq!((counts(h, a), counts(h, b)), ((0, 0), (0, 0)));
}

#[test]
fn vec_many_elements() {
    let (h, d) = domain();
    let data: Vec<u32> = (0..10_000).collect();
    let mut v = RRefVec::from_slice(&data);
    assert_eq!(v.len(), 10_000);
    assert_eq!(&*v, &data[..]);
    assert_eq!(counts(h, d), (1, 40 + 40_000));
    for x in v.iter_mut() {
        *x *= 2;
    }
    assert_eq!(v.iter().map(|&x| x as u64).sum::<u64>(), 2 * (0..10_000u64).sum::<u64>());
    let w = RRefVec::new_with(1000, |i| (i as u8, i as u64));
    assert_eq!(w[999], (231, 999));
    drop((v, w));
    assert_eq!(counts(h, d), (0, 0));
}

#[test]
fn vec_drop_drops_every_element() {
    counted!(Noisy, DROPS);
    let (h, d) = domain();
    let v = RRefVec::new_with(7, Noisy);
    assert_eq!(v[6].0, 6);
    drop(v);
    assert_eq!(DROPS.load(SeqCst), 7);
    assert_eq!(counts(h, d), (0, 0));
}

#[test]
fn vec_new_with_panic_drops_made_elements_and_frees() {
    counted!(Noisy, DROPS);
    let (h, d) = domain();
    let result =
        std::panic::catch_unwind(|| RRefVec::new_with(5, |i| if i == 3 { panic!("element 3") } else { Noisy(i) }));
    assert!(result.is_err());
    assert_eq!(DROPS.load(SeqCst), 3);
    assert_eq!(counts(h, d), (0, 0));
}

#[test]
#[should_panic(expected = "rref: shared heap exhausted")]
fn vec_too_large_panics() {
    let _ = domain();
    let _ = RRefVec::new_with(usize::MAX / 4, |_| 0u64);
}

#[test]
fn counters_exact_after_many_alloc_free_cycles() {
    let (h, d) = domain();
    let (mut rrefs, mut vecs, mut deques) = (Vec::new(), Vec::new(), Vec::new());
    // Block sizes, computed independently of the headers.
    let vec_bytes = |n: usize| (40 + 2 * n as u64).next_multiple_of(8);
    assert_eq!((block_size::<[u64; 3]>(), block_size::<(usize, usize, [u8; 9])>()), (64, 72));
    for i in 0..2000usize {
        rrefs.push(RRef::new([i as u64; 3]));
        vecs.push(RRefVec::new_with(i % 17, |j| j as u16));
        deques.push(RRefDeque::<u8, 9>::new());
        if i % 3 == 0 {
            // Free from the middle and the start of the registry's list.
            rrefs.remove(rrefs.len() / 2);
            vecs.swap_remove(0);
        }
        if i % 100 == 99 {
            deques.clear();
        }
        let blocks = (rrefs.len() + vecs.len() + deques.len()) as u64;
        let bytes =
            64 * rrefs.len() as u64 + vecs.iter().map(|v| vec_bytes(v.len())).sum::<u64>() + 72 * deques.len() as u64;
        assert_eq!(counts(h, d), (blocks, bytes), "after cycle {i}");
    }
    drop((rrefs, vecs, deques));
    assert_eq!(counts(h, d), (0, 0));
}

struct NoHeap;

// SAFETY: never used to allocate: every method panics.
unsafe impl SharedHeap for NoHeap {
    unsafe fn alloc(&self, _: Layout) -> Option<core::ptr::NonNull<Header>> {
        unreachable!()
    }
    unsafe fn free(&self, _: core::ptr::NonNull<Header>) {
        unreachable!()
    }
    fn counters(&self) -> &Counters {
        unreachable!()
    }
    fn current_domain(&self) -> DomainId {
        unreachable!()
    }
    fn release_orphans(&self) {
        unreachable!()
    }
    unsafe fn report_violation(&self) {
        unreachable!()
    }
    fn take_violation(&self) -> bool {
        unreachable!()
    }
}

#[test]
fn set_heap_first_call_wins() {
    static OTHER: NoHeap = NoHeap;
    let host = HostHeap::install();
    assert!(!set_heap(&OTHER));
    assert!(core::ptr::addr_eq(heap(), host));
    assert!(core::ptr::addr_eq(HostHeap::install(), host));
}

/// A block made by hand, for testing the registry without a heap.
fn raw_block(owner: DomainId, size: usize) -> core::ptr::NonNull<Header> {
    let layout = Layout::from_size_align(size, 8).unwrap();
    // SAFETY: non-zero size.
    let p = core::ptr::NonNull::new(unsafe { std::alloc::alloc(layout) }).unwrap().cast::<Header>();
    let h = Header::new(owner, layout);
    // SAFETY: fresh allocation of at least a header.
    unsafe { p.write(h) };
    p
}

fn raw_free(block: core::ptr::NonNull<Header>, layout: Layout) {
    // SAFETY: blocks come from `raw_block` with this layout.
    unsafe { std::alloc::dealloc(block.as_ptr().cast(), layout) }
}

#[test]
fn registry_links_counters_reclaim_and_orphans() {
    let (c, mut reg) = (Counters::new(), Registry::new());
    let (d1, d2, d3) = (DomainId(1), DomainId(2), DomainId(3));
    let blocks = [(d1, 40), (d2, 48), (d1, 64), (d3, 32), (d2, 40), (d3, 56)].map(|(d, s)| raw_block(d, s));
    for &b in &blocks {
        // SAFETY: fresh headers, registered once, freed only through the registry.
        unsafe { reg.insert(b, &c) };
    }
    assert_eq!(reg.len(), 6);
    assert_eq!((c.blocks(d1), c.bytes(d1), c.blocks(d2), c.bytes(d2)), (2, 104, 2, 88));
    assert_eq!((c.total_blocks(), c.total_bytes()), (6, 280));

    // Remove from the middle of the list, then free by hand.
    // SAFETY: registered above; freed right after.
    unsafe { reg.remove(blocks[1], &c) };
    raw_free(blocks[1], Layout::from_size_align(48, 8).unwrap());
    assert_eq!((reg.len(), c.blocks(d2), c.bytes(d2)), (5, 1, 40));

    // SAFETY: nothing uses d1's blocks any more.
    let got = unsafe { reg.reclaim(d1, &c, raw_free) };
    assert_eq!(got, Reclaimed { freed_blocks: 2, freed_bytes: 104, orphaned_blocks: 0 });
    assert_eq!((reg.len(), c.blocks(d1), c.bytes(d1)), (3, 0, 0));

    // d3 dies while one of its blocks is lent: both are orphaned.
    // SAFETY: blocks[3] is still registered.
    let lent = unsafe { blocks[3].as_ref() };
    lent.borrows.store(1, SeqCst);
    // SAFETY: nothing uses d3's blocks any more except the lend.
    let got = unsafe { reg.reclaim(d3, &c, raw_free) };
    assert_eq!(got, Reclaimed { freed_blocks: 0, freed_bytes: 0, orphaned_blocks: 2 });
    assert_eq!((c.blocks(d3), c.blocks(DomainId::ORPHAN), c.bytes(DomainId::ORPHAN)), (0, 2, 88));
    assert_eq!(reg.len(), 3);
    // SAFETY: orphans are only used by the lend.
    assert_eq!(unsafe { reg.release_orphans(&c, raw_free) }, 0, "an orphan is still lent");
    lent.borrows.store(0, SeqCst);
    // SAFETY: as above, and the lend ended.
    assert_eq!(unsafe { reg.release_orphans(&c, raw_free) }, 2);
    assert_eq!((reg.len(), c.blocks(DomainId::ORPHAN), c.bytes(DomainId::ORPHAN)), (1, 0, 0));
    // SAFETY: no orphans left: nothing to free.
    assert_eq!(unsafe { reg.release_orphans(&c, raw_free) }, 0);

    // SAFETY: nothing uses d2's last block.
    let got = unsafe { reg.reclaim(d2, &c, raw_free) };
    assert_eq!((got.freed_blocks, got.freed_bytes), (1, 40));
    assert!(reg.is_empty());
    assert_eq!((c.total_blocks(), c.total_bytes()), (0, 0));
}

#[test]
fn heap_alloc_rejects_layouts_without_room_for_the_header() {
    let (h, d) = domain();
    for layout in [
        Layout::new::<u8>(),
        Layout::from_size_align(mem::size_of::<Header>() - 1, 8).unwrap(),
        Layout::from_size_align(64, 4).unwrap(),
    ] {
        // SAFETY: testing the heap's own check; a returned block would be freed at once.
        assert!(unsafe { heap().alloc(layout) }.is_none(), "{layout:?} cannot hold a header");
    }
    assert_eq!(counts(h, d), (0, 0));
    // SAFETY: a layout holding the header; the block is freed right away.
    let b = unsafe { heap().alloc(Layout::new::<Header>()) }.expect("room for a header");
    assert_eq!(counts(h, d), (1, mem::size_of::<Header>() as u64));
    // SAFETY: `b` came from this heap's alloc and is not used afterwards.
    unsafe { heap().free(b) };
    assert_eq!(counts(h, d), (0, 0));
}

#[test]
fn move_from_a_non_owner_or_of_a_lent_block_is_refused() {
    let (h, a) = domain();
    let (b, c) = (h.fresh_domain(), h.fresh_domain());
    assert!(!h.take_violation());
    let p = RRef::new(Packet { id: 1, body: RRef::new([0; 16]), meta: None });
    // `b` does not own it: nothing is re-tagged, nested blocks included.
    p.move_to(c, tok(b));
    assert!(h.take_violation(), "a move from a non-owner is reported");
    assert!(!h.take_violation(), "taking the flag clears it");
    assert_eq!((p.owner(), p.body.owner()), (a, a));
    assert_eq!((counts(h, b).0, counts(h, c).0), (0, 0));
    // A lent block does not move either, even from its owner.
    let guard = lend(&p, tok(a));
    p.move_to(c, tok(a));
    assert!(h.take_violation(), "moving a lent block is reported");
    assert_eq!((p.owner(), p.body.owner()), (a, a));
    drop(guard);
    p.move_to(c, tok(a));
    assert!(!h.take_violation());
    assert_eq!((p.owner(), p.body.owner(), counts(h, c).0), (c, c, 2));
    p.move_to(a, tok(c));
    drop(p);
    assert_eq!(counts(h, a), (0, 0));
}

#[test]
fn mut_lend_gives_an_alias_and_detects_a_swapped_handle() {
    counted!(Noisy, DROPS);
    let (h, a) = domain();
    let mut mine = RRef::new(Noisy(1));
    let hdr = mine.header();
    {
        let mut lent = lend_mut(&mut mine, tok(a));
        assert_eq!(lent.borrow_count(), 1);
        lent.0 = 5; // writes go to the caller's block
        assert!(lent.intact());
    }
    assert_eq!((mine.0, mine.borrow_count()), (5, 0));

    // A callee in domain `b` swaps its own block into the alias and drops what it took out.
    let b = h.fresh_domain();
    {
        let mut lent = lend_mut(&mut mine, tok(a));
        h.set_current(b);
        let taken = mem::replace(&mut *lent, RRef::new(Noisy(9)));
        assert_eq!(taken.header(), hdr, "the callee holds the caller's block...");
        taken.move_to(DomainId::KERNEL, tok(b));
        assert!(h.take_violation(), "... but cannot move it: not its own, and lent");
        drop(taken);
        assert_eq!(counts(h, a).0, 1, "...and cannot free it: it is lent");
        h.set_current(a);
        assert!(!lent.intact(), "the proxy sees the swap");
        // The runtime kills `b` before the lend ends: its block (in the alias) goes with it.
        // SAFETY: `b`'s only handle is the alias, which the MutLend forgets.
        let got = unsafe { h.reclaim(b) };
        assert_eq!(got.freed_blocks, 1);
    }
    assert_eq!(mine.header(), hdr, "the caller's handle is untouched");
    assert_eq!((mine.owner(), mine.borrow_count(), counts(h, a).0), (a, 0, 1));
    let drops = DROPS.load(SeqCst);
    drop(mine);
    assert_eq!(DROPS.load(SeqCst), drops + 1);
    assert_eq!(counts(h, a), (0, 0));
    assert_eq!(counts(h, b), (0, 0));
}

#[test]
fn orphan_groups_of_different_domains_are_freed_independently() {
    let _serial = ORPHAN_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let (h, d1) = domain();
    let pinned = RRef::new((RRef::new(1u8), 2u32));
    let g1 = lend(&pinned, tok(d1));
    let d2 = h.fresh_domain();
    h.set_current(d2);
    let other = RRefVec::new_with(2, |i| RRef::new(i as u64));
    let g2 = lend(&other, tok(d2));
    let orphans_before = counts(h, DomainId::ORPHAN).0;
    // SAFETY: both domains' handles are forgotten below; until then only the lends use them.
    let (r1, r2) = unsafe { (h.reclaim(d1), h.reclaim(d2)) };
    assert_eq!((r1.orphaned_blocks, r2.orphaned_blocks), (2, 3));
    assert_eq!(counts(h, DomainId::ORPHAN).0, orphans_before + 5);
    assert_eq!((pinned.owner(), pinned.0.owner()), (DomainId::orphan_of(d1), DomainId::orphan_of(d1)));
    assert_eq!((other.owner(), other[1].owner()), (DomainId::orphan_of(d2), DomainId::orphan_of(d2)));
    // d2's lend ends while d1's group is still pinned: d2's group goes, with its nested blocks.
    drop(g2);
    assert_eq!(counts(h, DomainId::ORPHAN).0, orphans_before + 2, "d2's group is freed");
    assert_eq!((*pinned.0, pinned.1), (1, 2), "d1's group is intact");
    drop(g1);
    assert_eq!(counts(h, DomainId::ORPHAN).0, orphans_before);
    mem::forget((pinned, other));
}

#[test]
fn registry_frees_an_orphan_group_while_another_stays_pinned() {
    let (c, mut reg) = (Counters::new(), Registry::new());
    let (d1, d2) = (DomainId(1), DomainId(2));
    let blocks = [(d1, 40), (d1, 48), (d2, 56), (d2, 64)].map(|(d, s)| raw_block(d, s));
    for &b in &blocks {
        // SAFETY: fresh headers, registered once, freed only through the registry.
        unsafe { reg.insert(b, &c) };
    }
    // SAFETY: registered blocks.
    let (lent1, lent2) = unsafe { (blocks[0].as_ref(), blocks[3].as_ref()) };
    lent1.borrows.store(1, SeqCst);
    lent2.borrows.store(1, SeqCst);
    // SAFETY: nothing uses the dead domains' blocks except the lends.
    unsafe {
        assert_eq!(reg.reclaim(d1, &c, raw_free).orphaned_blocks, 2);
        assert_eq!(reg.reclaim(d2, &c, raw_free).orphaned_blocks, 2);
    }
    // SAFETY: as above.
    assert_eq!(unsafe { reg.release_orphans(&c, raw_free) }, 0, "both groups are lent");
    lent2.borrows.store(0, SeqCst);
    // SAFETY: as above; d2's lend ended.
    assert_eq!(unsafe { reg.release_orphans(&c, raw_free) }, 2, "d2's group alone");
    assert_eq!((reg.len(), c.blocks(DomainId::ORPHAN), c.bytes(DomainId::ORPHAN)), (2, 2, 88));
    lent1.borrows.store(0, SeqCst);
    // SAFETY: as above.
    assert_eq!(unsafe { reg.release_orphans(&c, raw_free) }, 2);
    assert!(reg.is_empty());
}

#[test]
fn fingerprints_and_has_rrefs_of_builtin_types() {
    assert!(!<(u8, [u32; 4], Option<u64>)>::HAS_RREFS);
    assert!(<(u8, Option<RRef<u8>>)>::HAS_RREFS);
    assert!(<[RRefVec<u8>; 2]>::HAS_RREFS && <Result<u8, RRefDeque<u8, 2>>>::HAS_RREFS);
    assert_ne!(u32::FINGERPRINT, i32::FINGERPRINT);
    assert_ne!(<[u8; 4]>::FINGERPRINT, <[u8; 5]>::FINGERPRINT);
    assert_ne!(<RRef<u32>>::FINGERPRINT, <RRef<u64>>::FINGERPRINT);
    assert_ne!(<(u8, u16)>::FINGERPRINT, <(u16, u8)>::FINGERPRINT);
    assert_ne!(<RRefVec<u8>>::FINGERPRINT, <RRef<u8>>::FINGERPRINT);
}

#[test]
fn fingerprint_str_is_fnv1a64() {
    assert_eq!(crate::fingerprint::str(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(crate::fingerprint::str("a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(crate::fingerprint::str("foobar"), 0x8594_4171_f739_67e8);
}
