//! A block on the shared heap as its RRef-family handle sees it: the header, the payload
//! address, re-tagging, and returning the block to the heap.

use crate::{heap, DomainId, Header, MoveToken};
use core::alloc::Layout;
use core::mem::{align_of, size_of};
use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Relaxed, SeqCst};

/// A refused move: out of line, so the move itself stays short.
#[cold]
#[inline(never)]
fn refused() {
    // SAFETY: this is rref's re-tagging reporting a refused move.
    unsafe { heap().report_violation() };
}

/// The size of the block [`Block::alloc`] makes for a payload of `size` bytes aligned to
/// `align` (what `Layout::extend` and `pad_to_align` compute), as a constant.
pub(crate) const fn block_size(size: usize, align: usize) -> usize {
    let hdr_align = align_of::<Header>();
    let align = if align > hdr_align { align } else { hdr_align };
    (size_of::<Header>().next_multiple_of(align) + size).next_multiple_of(align)
}

/// A live shared-heap block, held by exactly one RRef-family handle.
///
/// Invariant: the pointer is a block from the installed heap's `alloc`, with an initialised
/// header, and stays allocated until its handle calls [`Block::release`].
#[repr(transparent)]
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
    #[inline(always)]
    fn offset(align: usize) -> usize {
        size_of::<Header>().next_multiple_of(align)
    }

    /// Start of the payload, for a block allocated with a payload layout aligned like `T`
    /// (a `T`, a `[T]`, or a struct whose alignment is `T`'s).
    #[inline(always)]
    pub(crate) fn payload<T>(&self) -> *mut T {
        self.0.as_ptr().cast::<u8>().wrapping_add(Self::offset(align_of::<T>())).cast()
    }

    #[inline(always)]
    pub(crate) fn ptr(&self) -> NonNull<Header> {
        self.0
    }

    #[inline(always)]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: by the type invariant the block is allocated and its header initialised
        // while `self` exists; the header's mutable fields are atomics, so sharing is fine.
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    pub(crate) fn owner(&self) -> DomainId {
        DomainId(self.header().owner.load(SeqCst))
    }

    #[inline(always)]
    pub(crate) fn borrows(&self) -> u32 {
        self.header().borrows.load(SeqCst)
    }

    /// Makes `to` the owner if `token.from()` owns the block and it is not lent, and counts
    /// the move: this block plus `held` (blocks, bytes) it holds through itself (the
    /// contents of a ring of leaf handles), which move with it untouched. Otherwise the
    /// block keeps its owner, the heap records a violation (the proxy then refuses the
    /// call) and `false` is returned: the caller must not re-tag the blocks nested in this
    /// one either.
    #[inline(always)]
    pub(crate) fn retag(&self, to: DomainId, token: MoveToken, held: (u64, u64)) -> bool {
        let h = self.header();
        let from = token.from();
        // A lent block cannot be moved: its lender gets it back after the call.
        if h.borrows.load(SeqCst) != 0 || h.owner.compare_exchange(from.0, to.0, SeqCst, Relaxed).is_err() {
            refused();
            return false;
        }
        if from != to {
            token.count_move(to, 1 + held.0, h.size as u64 + held.1);
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
