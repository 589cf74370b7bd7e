//! Lending: what a proxy does for a `&RRef` / `&mut RRef` argument. The block's borrow
//! count stays raised for the duration of the call, so reclaiming the owner meanwhile
//! orphans the block instead of freeing it under the borrower.

use crate::{heap, Exchangeable, Header, RRef, RRefDeque, RRefVec};
use core::ptr::NonNull;
use core::sync::atomic::Ordering::SeqCst;

mod sealed {
    pub trait Sealed {}
}

/// The RRef family: handles whose block can be lent.
pub trait Lendable: sealed::Sealed {
    /// The header of the block behind this handle.
    fn lend_header(&self) -> NonNull<Header>;
}

impl<T: Exchangeable> sealed::Sealed for RRef<T> {}
impl<T: Exchangeable> Lendable for RRef<T> {
    fn lend_header(&self) -> NonNull<Header> {
        self.header()
    }
}

impl<T: Exchangeable> sealed::Sealed for RRefVec<T> {}
impl<T: Exchangeable> Lendable for RRefVec<T> {
    fn lend_header(&self) -> NonNull<Header> {
        self.header()
    }
}

impl<T: Exchangeable, const N: usize> sealed::Sealed for RRefDeque<T, N> {}
impl<T: Exchangeable, const N: usize> Lendable for RRefDeque<T, N> {
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

/// Starts a lend of `x`'s block: raises its borrow count until the guard drops.
pub fn lend<X: Lendable + ?Sized>(x: &X) -> LendGuard {
    let hdr = x.lend_header();
    // SAFETY: `x` is a live handle, so its block is allocated and its header initialised.
    unsafe { hdr.as_ref() }.borrows.fetch_add(1, SeqCst);
    LendGuard { hdr }
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
