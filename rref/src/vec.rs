//! [`RRefVec<T>`]: a fixed-length array of `T` on the shared heap.

use crate::block::Block;
use crate::{DomainId, Exchangeable, Header, MoveToken};
use core::alloc::Layout;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};
use core::slice;

/// An owned `[T]` on the shared heap: one block, the [`Header`] then `len` elements. The
/// length is fixed at creation; a zero length still allocates the header.
pub struct RRefVec<T: Exchangeable> {
    block: Block,
    /// Number of initialised elements: the final length once construction has finished.
    len: usize,
    _owns: PhantomData<T>,
}

impl<T: Exchangeable> RRefVec<T> {
    /// A vector of `len` elements, element `i` being `f(i)`, owned by the current domain.
    ///
    /// # Panics
    /// "rref: shared heap exhausted" if the block cannot be allocated (or its size
    /// overflows); if `f` panics, the elements made so far are dropped and the block freed.
    pub fn new_with(len: usize, f: impl FnMut(usize) -> T) -> Self {
        Self::try_new_with(len, f).unwrap_or_else(|| panic!("rref: shared heap exhausted"))
    }

    /// Like [`RRefVec::new_with`], but `None` if the block cannot be allocated (or its
    /// size overflows), without calling `f`.
    pub fn try_new_with(len: usize, mut f: impl FnMut(usize) -> T) -> Option<Self> {
        let block = Layout::array::<T>(len).ok().and_then(Block::alloc)?;
        // `len` counts the initialised prefix, so a panic in `f` drops exactly that.
        let mut v = Self { block, len: 0, _owns: PhantomData };
        while v.len < len {
            let value = f(v.len);
            // SAFETY: the block holds `len` slots of `T` from the payload start; slot
            // `v.len < len` is in bounds, aligned and not yet initialised.
            unsafe { v.block.payload::<T>().add(v.len).write(value) };
            v.len += 1;
        }
        Some(v)
    }

    /// A copy of `items` on the shared heap.
    pub fn from_slice(items: &[T]) -> Self
    where
        T: Copy,
    {
        Self::new_with(items.len(), |i| items[i])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The domain that owns the block now.
    pub fn owner(&self) -> DomainId {
        self.block.owner()
    }

    /// Number of lends of this block in progress.
    pub fn borrow_count(&self) -> u32 {
        self.block.borrows()
    }

    /// The block's header (for the kernel and proxies).
    pub fn header(&self) -> NonNull<Header> {
        self.block.ptr()
    }
}

impl<T: Exchangeable> Deref for RRefVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the first `len` slots of the payload are initialised `T`s that live as
        // long as `self`; the pointer is non-null and aligned even when `len` is 0.
        unsafe { slice::from_raw_parts(self.block.payload::<T>(), self.len) }
    }
}

impl<T: Exchangeable> DerefMut for RRefVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the access unique.
        unsafe { slice::from_raw_parts_mut(self.block.payload::<T>(), self.len) }
    }
}

impl<T: Exchangeable> Drop for RRefVec<T> {
    fn drop(&mut self) {
        // SAFETY: the first `len` elements are initialised and dropped exactly once, here.
        unsafe { ptr::drop_in_place(ptr::slice_from_raw_parts_mut(self.block.payload::<T>(), self.len)) };
        // SAFETY: the elements were dropped and `self` is not used again.
        unsafe { self.block.release() };
    }
}

impl<T: Exchangeable + fmt::Debug> fmt::Debug for RRefVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

// SAFETY: an RRefVec owns its elements like a `Box<[T]>` does; the header is only touched
// through atomics and the (`Sync`) heap.
unsafe impl<T: Exchangeable + Send> Send for RRefVec<T> {}
// SAFETY: `&RRefVec<T>` only gives `&[T]` and atomic header reads.
unsafe impl<T: Exchangeable + Sync> Sync for RRefVec<T> {}

// SAFETY: re-tags this block, then everything reachable from every element.
unsafe impl<T: Exchangeable> Exchangeable for RRefVec<T> {
    const HAS_RREFS: bool = true;
    const FINGERPRINT: u64 = crate::fingerprint::mix(crate::fingerprint::str("RRefVec"), T::FINGERPRINT);
    fn move_to(&self, to: DomainId, token: MoveToken) {
        if self.block.retag(to, token, (0, 0)) && T::HAS_RREFS {
            for item in self.iter() {
                item.move_to(to, token);
            }
        }
    }
}
