//! [`RRef<T>`]: one value of type `T` on the shared heap, owned by one domain at a time.

use crate::block::Block;
use crate::{DomainId, Exchangeable, Header, MoveToken};
use core::alloc::Layout;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};

/// An owned `T` on the shared heap: one block, the [`Header`] then the value (at the
/// header's size rounded up to `align_of::<T>()`).
///
/// Dropping it drops the value and frees the block. Passing it across an interface moves
/// it without a copy; the proxy re-tags it (and every RRef inside it) to the receiver.
// `repr(transparent)`: an `RRef` is exactly the pointer to its block's header, which a
// ring of leaf handles relies on (`Exchangeable::LEAF_BLOCK`, `registry::ring_elements`).
#[repr(transparent)]
pub struct RRef<T: Exchangeable> {
    block: Block,
    _owns: PhantomData<T>,
}

impl<T: Exchangeable> RRef<T> {
    /// Moves `value` to the shared heap, owned by the current domain.
    ///
    /// # Panics
    /// "rref: shared heap exhausted" if the heap cannot allocate the block.
    pub fn new(value: T) -> Self {
        match Self::try_new(value) {
            Ok(r) => r,
            Err(_) => panic!("rref: shared heap exhausted"),
        }
    }

    /// Like [`RRef::new`], but gives `value` back if the heap cannot allocate the block.
    pub fn try_new(value: T) -> Result<Self, T> {
        let Some(block) = Block::alloc(Layout::new::<T>()) else {
            return Err(value);
        };
        // SAFETY: the block was allocated with a `T` payload: the payload pointer is in
        // bounds, aligned for `T` and not yet initialised.
        unsafe { block.payload::<T>().write(value) };
        // SAFETY: the payload now holds a `T`.
        Ok(unsafe { Self::from_block(block) })
    }

    /// # Safety
    /// `block` was allocated with a `T` payload, which is initialised.
    pub(crate) unsafe fn from_block(block: Block) -> Self {
        Self { block, _owns: PhantomData }
    }

    /// The domain that owns the block now.
    #[inline]
    pub fn owner(&self) -> DomainId {
        self.block.owner()
    }

    /// Number of lends of this block in progress.
    #[inline]
    pub fn borrow_count(&self) -> u32 {
        self.block.borrows()
    }

    /// The block's header (for the kernel and proxies).
    #[inline]
    pub fn header(&self) -> NonNull<Header> {
        self.block.ptr()
    }

    /// Re-tags this block only, counting `held` (blocks, bytes) held through it
    /// ([`crate::block::Block::retag`]).
    #[inline(always)]
    pub(crate) fn block_retag(&self, to: DomainId, token: MoveToken, held: (u64, u64)) -> bool {
        self.block.retag(to, token, held)
    }

    /// Moves the value out and frees the block.
    pub fn into_inner(self) -> T {
        let this = ManuallyDrop::new(self);
        // SAFETY: the payload holds a `T`; `this` is never dropped, so the value is not
        // dropped twice.
        let value = unsafe { this.block.payload::<T>().read() };
        // SAFETY: the value was moved out and `this` is not used again.
        unsafe { this.block.release() };
        value
    }
}

impl<T: Exchangeable> Deref for RRef<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the payload holds a `T` that lives as long as `self`.
        unsafe { &*self.block.payload::<T>() }
    }
}

impl<T: Exchangeable> DerefMut for RRef<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the access unique.
        unsafe { &mut *self.block.payload::<T>() }
    }
}

impl<T: Exchangeable> Drop for RRef<T> {
    fn drop(&mut self) {
        // SAFETY: the payload holds a `T`, dropped exactly once, here.
        unsafe { ptr::drop_in_place(self.block.payload::<T>()) };
        // SAFETY: the payload was dropped and `self` is not used again.
        unsafe { self.block.release() };
    }
}

impl<T: Exchangeable + fmt::Debug> fmt::Debug for RRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

// SAFETY: an RRef owns its value like a `Box` does; the header is only touched through
// atomics and the (`Sync`) heap.
unsafe impl<T: Exchangeable + Send> Send for RRef<T> {}
// SAFETY: `&RRef<T>` only gives `&T` and atomic header reads.
unsafe impl<T: Exchangeable + Sync> Sync for RRef<T> {}

// SAFETY: re-tags this block, then everything reachable from the value.
unsafe impl<T: Exchangeable> Exchangeable for RRef<T> {
    const HAS_RREFS: bool = true;
    const FINGERPRINT: u64 = crate::fingerprint::mix(crate::fingerprint::str("RRef"), T::FINGERPRINT);
    const LEAF_BLOCK: usize =
        if T::HAS_RREFS { 0 } else { crate::block::block_size(core::mem::size_of::<T>(), core::mem::align_of::<T>()) };
    #[inline]
    fn move_to(&self, to: DomainId, token: MoveToken) {
        if self.block.retag(to, token, (0, 0)) && T::HAS_RREFS {
            (**self).move_to(to, token);
        }
    }
}
