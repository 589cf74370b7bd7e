//! Lending: what a proxy does for a `&RRef` / `&mut RRef` argument. The block's borrow
//! count stays raised for the duration of the call, so reclaiming the owner meanwhile
//! orphans the block instead of freeing it under the borrower, and a lent block cannot be
//! moved ([`crate::Exchangeable::move_to`] refuses it).
//!
//! Both kinds of lend need a [`MoveToken`]: only the proxy runtime can start one, so a
//! domain cannot pin a block forever with a lend it never ends (`mem::forget(guard)`).
//!
//! A mutable lend ([`lend_mut`]) never hands out the caller's own handle: the callee gets
//! `&mut` to an *alias* — a bitwise copy of the handle, pointing at the same block, kept in
//! a `ManuallyDrop` that is never dropped. Whatever the callee does with it (`mem::replace`,
//! `mem::swap`, dropping the value it swapped out), the caller's handle is untouched; the
//! proxy checks [`MutLend::intact`] after the call and kills a callee that swapped a handle
//! out (it may still hold the caller's block). Mutable lends are only generated for
//! payloads without nested RRefs (`Exchangeable::HAS_RREFS == false`), so `&mut` access to
//! the payload cannot take a nested block either.

use crate::{heap, Exchangeable, Header, MoveToken, RRef, RRefDeque, RRefVec};
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use core::sync::atomic::Ordering::SeqCst;

mod sealed {
    pub trait Sealed {}
}

/// The RRef family: handles whose block can be lent.
pub trait Lendable: sealed::Sealed {
    /// Whether the payload (the `T` of `RRef<T>`, `RRefVec<T>`, `RRefDeque<T, N>`) may
    /// contain RRefs: then the handle cannot be lent mutably.
    const PAYLOAD_HAS_RREFS: bool;
    /// Whether dropping the payload runs code: then the handle cannot be lent mutably
    /// either (a callee that swaps the alias out and drops it would run the destructor on
    /// the caller's value, which the caller drops again).
    const PAYLOAD_NEEDS_DROP: bool;
    /// The header of the block behind this handle.
    fn lend_header(&self) -> NonNull<Header>;
}

impl<T: Exchangeable> sealed::Sealed for RRef<T> {}
impl<T: Exchangeable> Lendable for RRef<T> {
    const PAYLOAD_HAS_RREFS: bool = T::HAS_RREFS;
    const PAYLOAD_NEEDS_DROP: bool = core::mem::needs_drop::<T>();
    fn lend_header(&self) -> NonNull<Header> {
        self.header()
    }
}

impl<T: Exchangeable> sealed::Sealed for RRefVec<T> {}
impl<T: Exchangeable> Lendable for RRefVec<T> {
    const PAYLOAD_HAS_RREFS: bool = T::HAS_RREFS;
    const PAYLOAD_NEEDS_DROP: bool = core::mem::needs_drop::<T>();
    fn lend_header(&self) -> NonNull<Header> {
        self.header()
    }
}

impl<T: Exchangeable, const N: usize> sealed::Sealed for RRefDeque<T, N> {}
impl<T: Exchangeable, const N: usize> Lendable for RRefDeque<T, N> {
    const PAYLOAD_HAS_RREFS: bool = T::HAS_RREFS;
    const PAYLOAD_NEEDS_DROP: bool = core::mem::needs_drop::<T>();
    fn lend_header(&self) -> NonNull<Header> {
        self.header()
    }
}

/// A lend in progress; dropping it ends the lend.
///
/// It does not borrow the lent value. That is sound because a lent block is never freed:
/// its handle leaves it allocated if dropped while lent, and reclamation orphans lent
/// blocks instead of freeing them.
#[must_use = "the lend ends when the guard is dropped"]
pub struct LendGuard {
    hdr: NonNull<Header>,
}

// SAFETY: a guard only touches the block's atomic borrow count and the (`Sync`) heap.
unsafe impl Send for LendGuard {}
// SAFETY: `&LendGuard` gives no access at all.
unsafe impl Sync for LendGuard {}

fn start(hdr: NonNull<Header>) -> LendGuard {
    // SAFETY: `hdr` is the block of a live handle, so it is allocated and its header
    // initialised.
    unsafe { hdr.as_ref() }.borrows.fetch_add(1, SeqCst);
    LendGuard { hdr }
}

/// Starts a lend of `x`'s block: raises its borrow count until the guard drops. Only the
/// proxy runtime can call it (it needs a [`MoveToken`]).
pub fn lend<X: Lendable + ?Sized>(x: &X, _token: MoveToken) -> LendGuard {
    start(x.lend_header())
}

impl Drop for LendGuard {
    /// Lowers the borrow count. When it reaches 0 the block may have been orphaned (its
    /// owner died during the lend), so the heap is asked to release orphans. The guard
    /// cannot check the owner itself: once the count is 0, another thread may free the
    /// block, and reading the owner first would race with reclamation. The heap's
    /// `release_orphans` returns at once when there are none.
    fn drop(&mut self) {
        // SAFETY: our lend keeps the block allocated until this decrement (see the type's
        // docs); the block is not touched afterwards.
        let before = unsafe { self.hdr.as_ref() }.borrows.fetch_sub(1, SeqCst);
        if before == 1 {
            heap().release_orphans();
        }
    }
}

/// A mutable lend in progress: derefs to an alias of the lent handle (see the module
/// docs). Dropping it ends the lend and forgets the alias, whatever it points to now.
#[must_use = "the lend ends when the MutLend is dropped"]
pub struct MutLend<'a, X: Lendable> {
    alias: ManuallyDrop<X>,
    /// Ends the lend; dropped after the alias is forgotten (field order is irrelevant:
    /// the alias is `ManuallyDrop` and never dropped).
    guard: LendGuard,
    /// The caller's handle is mutably borrowed while the alias exists, so the two are
    /// never used at the same time.
    _caller: PhantomData<&'a mut X>,
}

/// Starts a mutable lend of `x`'s block: raises its borrow count and makes the alias the
/// callee will get. Only the proxy runtime can call it (it needs a [`MoveToken`]).
pub fn lend_mut<X: Lendable>(x: &mut X, _token: MoveToken) -> MutLend<'_, X> {
    let guard = start(x.lend_header());
    // SAFETY: a bitwise copy of the handle. It is never dropped (`ManuallyDrop`, and
    // `MutLend` has no code that drops it), and while it exists `x` is mutably borrowed by
    // the `MutLend`, so the caller's handle and the alias are never used at once. Whatever
    // a user of the alias does — even dropping or moving out the value it swapped out —
    // cannot free the block: its borrow count stays raised until the guard drops, and a
    // lent block is neither freed by its handle nor moved.
    let alias = ManuallyDrop::new(unsafe { core::ptr::read(x) });
    MutLend { alias, guard, _caller: PhantomData }
}

impl<X: Lendable> MutLend<'_, X> {
    /// Whether the alias still points at the lent block. `false` means the callee swapped
    /// a different handle in (and may hold the caller's block): the runtime must stop it
    /// before the lend ends.
    pub fn intact(&self) -> bool {
        self.alias.lend_header() == self.guard.hdr
    }
}

impl<X: Lendable> Deref for MutLend<'_, X> {
    type Target = X;
    fn deref(&self) -> &X {
        &self.alias
    }
}

impl<X: Lendable> DerefMut for MutLend<'_, X> {
    fn deref_mut(&mut self) -> &mut X {
        &mut self.alias
    }
}
