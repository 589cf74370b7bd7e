//! A block on the shared heap as its RRef-family handle sees it: the header, the payload
//! address, re-tagging, and returning the block to the heap.

use crate::{heap, DomainId, Header, MoveToken};
use core::alloc::Layout;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::Ordering::SeqCst;

/// A live shared-heap block, held by exactly one RRef-family handle.
///
/// Invariant: the pointer is a block from the installed heap's `alloc`, with an initialised
/// header, and stays allocated until its handle calls [`Block::release`].
pub(crate) struct Block(NonNull<Header>);

impl Block {
    /// Allocates a block whose payload (after the header) has layout `payload`.
    /// `None` if the heap is exhausted or the size overflows.
    pub(crate) fn alloc(payload: Layout) -> Option<Block> {
        let (layout, offset) = Layout::new::<Header>().extend(payload).ok()?;
        debug_assert_eq!(offset, Self::offset(payload.align()));
        // SAFETY: the layout starts with a `Header` (so it is at least as large and as
        // aligned), and every caller initialises the payload before exposing it.
        unsafe { heap().alloc(layout.pad_to_align()) }.map(Block)
    }

    /// Offset of a payload aligned to `align`: the header's size rounded up, as
    /// `Layout::extend` computes it.
    fn offset(align: usize) -> usize {
        size_of::<Header>().next_multiple_of(align)
    }

    /// Start of the payload, for a block allocated with a payload layout aligned like `T`
    /// (a `T`, a `[T]`, or a struct whose alignment is `T`'s).
    pub(crate) fn payload<T>(&self) -> *mut T {
        self.0.as_ptr().cast::<u8>().wrapping_add(Self::offset(align_of::<T>())).cast()
    }

    pub(crate) fn ptr(&self) -> NonNull<Header> {
        self.0
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: by the type invariant the block is allocated and its header initialised
        // while `self` exists; the header's mutable fields are atomics, so sharing is fine.
        unsafe { self.0.as_ref() }
    }

    pub(crate) fn owner(&self) -> DomainId {
        DomainId(self.header().owner.load(SeqCst))
    }

    pub(crate) fn borrows(&self) -> u32 {
        self.header().borrows.load(SeqCst)
    }

    /// Makes `to` the owner if `token.from()` owns the block and it is not lent, and tells
    /// the heap if the owner changed. Otherwise the block keeps its owner, the heap records
    /// a violation (the proxy then refuses the call) and `false` is returned: the caller
    /// must not re-tag the blocks nested in this one either.
    pub(crate) fn retag(&self, to: DomainId, token: MoveToken) -> bool {
        let h = self.header();
        let from = token.from();
        // A lent block cannot be moved: its lender gets it back after the call.
        let ok = h.borrows.load(SeqCst) == 0 && h.owner.compare_exchange(from.0, to.0, SeqCst, SeqCst).is_ok();
        if !ok {
            // SAFETY: this is rref's re-tagging reporting a refused move.
            unsafe { heap().report_violation() };
            return false;
        }
        if from != to {
            // SAFETY: `self.0` is this live block of the installed heap.
            unsafe { heap().moved(self.0, from, to) };
        }
        true
    }

    /// Returns the block to the heap. If it is lent right now (a `LendGuard` outlived the
    /// handle) it is left allocated and registered instead: the guard still touches it, and
    /// the block goes when its owner is reclaimed.
    ///
    /// # Safety
    /// The payload has been dropped or moved out, and `self` is not used afterwards.
    pub(crate) unsafe fn release(&self) {
        if self.borrows() == 0 {
            // SAFETY: the block came from the installed heap's `alloc` (type invariant), and
            // the caller guarantees nothing uses it any more. No lend can start now: that
            // needs a reference to the handle being destroyed.
            unsafe { heap().free(self.0) }
        }
    }
}
