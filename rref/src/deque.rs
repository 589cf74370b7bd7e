//! [`RRefDeque<T, N>`]: a fixed-capacity FIFO ring of `T` on the shared heap.
//!
//! A deque of *leaf handles* (`T::LEAF_BLOCK != 0`: `RRef<X>` with `X` holding no RRef,
//! like the network path's `RRefDeque<RRef<Pkt>, 32>`) owns its elements through itself:
//! * `push_back` takes a handle only if its block has the deque's owner and is not lent
//!   (otherwise the value comes back, as when the deque is full), and tags the block
//!   [`DomainId::IN_RING`];
//! * `pop_front` gives the block the deque's owner before the handle leaves the ring;
//! * moving the deque re-tags only the deque's own block and counts its elements with it
//!   (their blocks all have the size `T::LEAF_BLOCK`), so a batch crosses a boundary in
//!   O(1) whatever its length;
//! * reclamation tags the contents of a dead domain's rings with the dead domain before
//!   freeing anything (`registry::ring_elements`).
//!
//! The order of the steps makes every preemption point safe: a pushed block is in the
//! ring before it is tagged `IN_RING`, and a popped one has its owner again before it
//! leaves the ring, so a block tagged `IN_RING` is always in a ring (which reclamation of
//! the ring's owner finds), and a block in a ring is tagged either `IN_RING` or with the
//! ring's owner.

use crate::block::Block;
use crate::{DomainId, Exchangeable, Header, RRef, MoveToken};
use core::alloc::Layout;
use core::fmt;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{compiler_fence, Ordering::{Relaxed, SeqCst}};

/// The payload of a deque's block. Invariant: `head < N` (or `N == 0`), `len <= N`, and
/// the `len` slots from `head` (wrapping) are initialised.
#[repr(C)]
struct Ring<T, const N: usize> {
    head: usize,
    len: usize,
    slots: [MaybeUninit<T>; N],
}

impl<T, const N: usize> Ring<T, N> {
    fn push_back(&mut self, value: T) -> Result<(), T> {
        if self.len == N {
            return Err(value);
        }
        self.slots[(self.head + self.len) % N].write(value);
        self.len += 1;
        Ok(())
    }

    fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        // SAFETY: the front slot is initialised (invariant); moving `head` past it below
        // makes it uninitialised again, so it is read out only once.
        let value = unsafe { self.slots[self.head].assume_init_read() };
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(value)
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        // SAFETY: these are the `len` initialised slots (invariant).
        (0..self.len).map(move |i| unsafe { self.slots[(self.head + i) % N].assume_init_ref() })
    }
}

/// The header of the block a leaf handle points to.
///
/// # Safety
/// `T::LEAF_BLOCK != 0`: `T` is a `repr(transparent)` pointer to its block's header.
#[inline(always)]
unsafe fn leaf_header<T: Exchangeable>(value: &T) -> &Header {
    const { assert!(core::mem::size_of::<T>() == core::mem::size_of::<NonNull<Header>>() || T::LEAF_BLOCK == 0) };
    // SAFETY: the caller's contract: the value is a live handle, i.e. a pointer to a live
    // block's header.
    unsafe { (*(value as *const T).cast::<NonNull<Header>>()).as_ref() }
}

impl<T, const N: usize> Drop for Ring<T, N> {
    fn drop(&mut self) {
        while self.pop_front().is_some() {}
    }
}

// SAFETY: re-tags everything reachable from every element (the block is re-tagged by the
// RRef around the ring).
unsafe impl<T: Exchangeable, const N: usize> Exchangeable for Ring<T, N> {
    const HAS_RREFS: bool = T::HAS_RREFS;
    const FINGERPRINT: u64 =
        crate::fingerprint::mix(crate::fingerprint::mix(crate::fingerprint::str("Ring"), T::FINGERPRINT), N as u64);
    fn move_to(&self, to: DomainId, token: MoveToken) {
        for item in self.iter() {
            item.move_to(to, token);
        }
    }
}

/// A FIFO queue of at most `N` elements on the shared heap: one block, the [`Header`] then
/// `{ head, len, slots: [MaybeUninit<T>; N] }`. Built in place, so a large `N` never
/// passes through the stack.
pub struct RRefDeque<T: Exchangeable, const N: usize> {
    ring: RRef<Ring<T, N>>,
}

impl<T: Exchangeable, const N: usize> RRefDeque<T, N> {
    /// An empty deque owned by the current domain.
    ///
    /// # Panics
    /// "rref: shared heap exhausted" if the heap cannot allocate the block.
    pub fn new() -> Self {
        match Self::try_new() {
            Some(d) => d,
            None => panic!("rref: shared heap exhausted"),
        }
    }

    /// Like [`RRefDeque::new`], but `None` if the heap cannot allocate the block.
    pub fn try_new() -> Option<Self> {
        let block = Block::alloc(Layout::new::<Ring<T, N>>())?;
        if T::LEAF_BLOCK != 0 {
            // The layout `registry::ring_elements` reads: `{ head, len, slots }` right after
            // the header, pointer-sized slots.
            const {
                assert!(core::mem::offset_of!(Ring<T, N>, len) == core::mem::size_of::<usize>());
                assert!(core::mem::offset_of!(Ring<T, N>, slots) == 2 * core::mem::size_of::<usize>());
                assert!(core::mem::align_of::<Ring<T, N>>() <= core::mem::align_of::<Header>());
                assert!(N <= u32::MAX as usize);
            };
            debug_assert_eq!(block.payload::<Ring<T, N>>() as usize - block.ptr().as_ptr() as usize, crate::registry::RING_PAYLOAD);
            // Nothing else knows this block yet; once set, it never changes.
            block.header().ring.store(N as u32, Relaxed);
        }
        let ring = block.payload::<Ring<T, N>>();
        // SAFETY: the block was allocated with a `Ring<T, N>` payload, so `ring` is in
        // bounds and aligned; the fields are written through raw pointers, no references.
        unsafe {
            (&raw mut (*ring).head).write(0);
            (&raw mut (*ring).len).write(0);
        }
        // SAFETY: `head` and `len` are initialised and the slots are `MaybeUninit`, so the
        // payload is a valid (empty) `Ring`.
        Some(Self { ring: unsafe { RRef::from_block(block) } })
    }

    /// Appends `value`; gives it back if the deque is full — or, for a deque of leaf
    /// handles, if `value`'s block is not the deque owner's to give (another domain's, or
    /// lent: a handle obtained by swapping a lent alias).
    #[inline]
    pub fn push_back(&mut self, value: T) -> Result<(), T> {
        if T::LEAF_BLOCK == 0 {
            return self.ring.push_back(value);
        }
        let owner = self.ring.owner().0;
        // SAFETY: `T::LEAF_BLOCK != 0`; `value` keeps its block alive until it is in the
        // ring, and the ring (which `&mut self` keeps alive) after.
        let e: *const Header = unsafe { leaf_header(&value) };
        let r: &mut Ring<T, N> = &mut self.ring;
        // SAFETY: as above.
        let ok = unsafe { (*e).owner.load(Relaxed) == owner && (*e).borrows.load(SeqCst) == 0 };
        if !ok || r.len == N {
            return Err(value);
        }
        r.slots[(r.head + r.len) % N].write(value);
        r.len += 1;
        // In the ring first, tagged after: see the module docs.
        compiler_fence(SeqCst);
        // SAFETY: as above.
        unsafe { (*e).owner.store(DomainId::IN_RING.0, Relaxed) };
        Ok(())
    }

    /// Removes the oldest element.
    #[inline]
    pub fn pop_front(&mut self) -> Option<T> {
        if T::LEAF_BLOCK == 0 {
            return self.ring.pop_front();
        }
        let owner = self.ring.owner().0;
        let r: &mut Ring<T, N> = &mut self.ring;
        if r.len == 0 {
            return None;
        }
        let i = r.head % N;
        // SAFETY: the front slot is initialised (ring invariant); the ring forgets it below
        // (head moves past it), so it is read out only once.
        let value = unsafe { r.slots[i].assume_init_read() };
        // Tagged first, out of the ring after: see the module docs.
        // SAFETY: `T::LEAF_BLOCK != 0`; the block is alive (held by `value`).
        unsafe { leaf_header(&value) }.owner.store(owner, Relaxed);
        compiler_fence(SeqCst);
        r.head = (i + 1) % N;
        r.len -= 1;
        Some(value)
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.ring.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ring.len == 0
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.ring.len == N
    }

    pub fn capacity(&self) -> usize {
        N
    }

    /// The elements, front (oldest) to back. In a deque of leaf handles, an element's own
    /// `owner()` is [`DomainId::IN_RING`]: it is owned through the deque.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.ring.iter()
    }

    /// Calls `f` with mutable access to what each element points to, front to back, the
    /// elements staying in the ring. Only the targets are reachable, never the handles
    /// themselves: a `&mut T` could swap a handle out of the ring without its tag.
    #[inline]
    pub fn for_each_target_mut<U: ?Sized>(&mut self, mut f: impl FnMut(&mut U))
    where
        T: core::ops::DerefMut<Target = U>,
    {
        let r: &mut Ring<T, N> = &mut self.ring;
        let (head, len) = (r.head, r.len);
        for k in 0..len {
            let i = (head + k) % N;
            // SAFETY: the `len` slots from `head` (wrapping) are initialised (ring
            // invariant); the element stays in its slot and `&mut self` makes the access
            // unique.
            let e: &mut T = unsafe { r.slots[i].assume_init_mut() };
            f(&mut **e);
        }
    }

    /// The domain that owns the block now.
    #[inline]
    pub fn owner(&self) -> DomainId {
        self.ring.owner()
    }

    /// Number of lends of this block in progress.
    pub fn borrow_count(&self) -> u32 {
        self.ring.borrow_count()
    }

    /// The block's header (for the kernel and proxies).
    #[inline]
    pub fn header(&self) -> NonNull<Header> {
        self.ring.header()
    }
}

impl<T: Exchangeable, const N: usize> Drop for RRefDeque<T, N> {
    fn drop(&mut self) {
        // Leaf handles get the deque's owner back as they leave (the ring's own drop
        // would free them still tagged `IN_RING`).
        if T::LEAF_BLOCK != 0 {
            while self.pop_front().is_some() {}
        }
    }
}

impl<T: Exchangeable, const N: usize> Default for RRefDeque<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Exchangeable + fmt::Debug, const N: usize> fmt::Debug for RRefDeque<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

// SAFETY: the RRef re-tags the block, then the ring moves every element.
unsafe impl<T: Exchangeable, const N: usize> Exchangeable for RRefDeque<T, N> {
    const HAS_RREFS: bool = true;
    const FINGERPRINT: u64 =
        crate::fingerprint::mix(crate::fingerprint::mix(crate::fingerprint::str("RRefDeque"), T::FINGERPRINT), N as u64);
    #[inline]
    fn move_to(&self, to: DomainId, token: MoveToken) {
        if T::LEAF_BLOCK != 0 {
            // O(1): the elements move with the ring's block, untouched (module docs).
            let n = self.ring.len as u64;
            self.ring.block_retag(to, token, (n, n * T::LEAF_BLOCK as u64));
        } else {
            self.ring.move_to(to, token);
        }
    }
}
