//! [`RRefDeque<T, N>`]: a fixed-capacity FIFO ring of `T` on the shared heap.

use crate::block::Block;
use crate::{DomainId, Exchangeable, Header, RRef, MoveToken};
use core::alloc::Layout;
use core::fmt;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

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

    /// Appends `value`; gives it back if the deque is full.
    pub fn push_back(&mut self, value: T) -> Result<(), T> {
        self.ring.push_back(value)
    }

    /// Removes the oldest element.
    pub fn pop_front(&mut self) -> Option<T> {
        self.ring.pop_front()
    }

    pub fn len(&self) -> usize {
        self.ring.len
    }

    pub fn is_empty(&self) -> bool {
        self.ring.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.ring.len == N
    }

    pub fn capacity(&self) -> usize {
        N
    }

    /// The elements, front (oldest) to back.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.ring.iter()
    }

    /// The domain that owns the block now.
    pub fn owner(&self) -> DomainId {
        self.ring.owner()
    }

    /// Number of lends of this block in progress.
    pub fn borrow_count(&self) -> u32 {
        self.ring.borrow_count()
    }

    /// The block's header (for the kernel and proxies).
    pub fn header(&self) -> NonNull<Header> {
        self.ring.header()
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
    fn move_to(&self, to: DomainId, token: MoveToken) {
        self.ring.move_to(to, token);
    }
}
