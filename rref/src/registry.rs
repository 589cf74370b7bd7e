//! Shared-heap bookkeeping used by both the kernel's heap and [`crate::host::HostHeap`]:
//! per-domain [`Counters`], the [`Registry`] of live blocks, and reclamation of a dead
//! domain's blocks. The backend provides the memory and a lock around the `Registry`.

use crate::{DomainId, Header, MAX_DOMAINS};
use core::alloc::Layout;
use core::ptr::{self, NonNull};
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{Relaxed, SeqCst};

/// One slot per value of a domain id's low byte (domain indices are below
/// `MAX_DOMAINS`; the rest stay 0), plus one for all orphan groups. A domain id that is known
/// to fit a byte (the kernel's proxies read it from a byte) then needs no clamp.
const SLOTS: usize = ORPHANS + 1;
/// The orphans' slot.
const ORPHANS: usize = 256;
const _: () = assert!(MAX_DOMAINS <= ORPHANS);

/// Live blocks and their bytes (`Header.size`) per owner. Updated by [`Registry`] and, for
/// moves, directly by the moving handle ([`Counters::moved`], through the
/// [`crate::MoveToken`]).
///
/// One word per owner: the block count in the top [`BLOCK_BITS`] bits, the bytes below, so
/// a move is two atomic adds. A domain's figures never go negative (each is a sum of live
/// blocks), so the two fields never borrow from each other.
///
/// Blocks held in a ring of leaf handles ([`DomainId::IN_RING`]) count for the ring's
/// owner: moving the ring moves its elements' blocks and bytes with it.
pub struct Counters {
    packed: [AtomicU64; SLOTS],
}

/// Bits of the block count in a packed counter (at most 2^24 - 1 blocks per owner).
pub const BLOCK_BITS: u32 = 24;
const BYTE_BITS: u32 = 64 - BLOCK_BITS;
const BYTES: u64 = (1 << BYTE_BITS) - 1;

/// The packed amount of `blocks` blocks of `bytes` bytes in all.
#[inline(always)]
const fn pack(blocks: u64, bytes: u64) -> u64 {
    (blocks << BYTE_BITS) + bytes
}

/// The counter slot of `d`: its index, or the orphans' slot (branch-free; an id at or
/// above `MAX_DOMAINS` never reaches the counters except as an orphan tag).
#[inline(always)]
fn slot(d: DomainId) -> usize {
    debug_assert!(d != DomainId::IN_RING, "ring contents are counted by the ring's owner");
    debug_assert!(d.0 as usize >= ORPHANS || (d.0 as usize) < MAX_DOMAINS, "not a domain or orphan tag");
    if d.0 as usize >= ORPHANS { ORPHANS } else { d.0 as usize }
}

impl Counters {
    pub const fn new() -> Self {
        Self { packed: [const { AtomicU64::new(0) }; SLOTS] }
    }

    /// Live blocks owned by `d`.
    pub fn blocks(&self, d: DomainId) -> u64 {
        self.packed[slot(d)].load(SeqCst) >> BYTE_BITS
    }

    /// Bytes of the live blocks owned by `d`, headers included.
    pub fn bytes(&self, d: DomainId) -> u64 {
        self.packed[slot(d)].load(SeqCst) & BYTES
    }

    pub fn total_blocks(&self) -> u64 {
        self.packed.iter().map(|c| c.load(SeqCst) >> BYTE_BITS).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.packed.iter().map(|c| c.load(SeqCst) & BYTES).sum()
    }

    /// `blocks` blocks of `bytes` bytes in all changed owner from `from` to `to`.
    #[inline(always)]
    pub fn moved(&self, from: DomainId, to: DomainId, blocks: u64, bytes: u64) {
        self.moved_from(self.counter(from), to, blocks, bytes);
    }

    /// [`Counters::moved`] with the counter of `from` looked up already
    /// ([`Counters::counter`]): a [`crate::MoveToken`] carries its `from`'s.
    #[inline(always)]
    pub(crate) fn moved_from(&self, from: &AtomicU64, to: DomainId, blocks: u64, bytes: u64) {
        let p = pack(blocks, bytes);
        from.fetch_sub(p, SeqCst);
        self.packed[slot(to)].fetch_add(p, SeqCst);
    }

    /// The packed counter of `d`.
    #[inline(always)]
    pub(crate) fn counter(&self, d: DomainId) -> &AtomicU64 {
        &self.packed[slot(d)]
    }

    pub(crate) fn add(&self, d: DomainId, bytes: u64) {
        self.packed[slot(d)].fetch_add(pack(1, bytes), SeqCst);
    }

    pub(crate) fn sub(&self, d: DomainId, bytes: u64) {
        self.packed[slot(d)].fetch_sub(pack(1, bytes), SeqCst);
    }
}

impl Default for Counters {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`Registry::reclaim`] did with a dead domain's blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reclaimed {
    pub freed_blocks: usize,
    pub freed_bytes: usize,
    /// Blocks re-tagged [`DomainId::orphan_of`] the dead domain because one of them was lent.
    pub orphaned_blocks: usize,
}

/// Every live block, as an intrusive doubly-linked list through `Header.prev/next`
/// (addresses; 0 = none). Methods take `&mut self`: the backend wraps it in its lock.
///
/// Invariant: every listed block is allocated and has an initialised header (guaranteed
/// by [`Registry::insert`]'s contract).
pub struct Registry {
    head: usize,
    len: usize,
}

fn addr(block: NonNull<Header>) -> usize {
    block.as_ptr().expose_provenance()
}

fn at(addr: usize) -> Option<NonNull<Header>> {
    NonNull::new(ptr::with_exposed_provenance_mut(addr))
}

fn owner(h: &Header) -> DomainId {
    DomainId(h.owner.load(SeqCst))
}

impl Registry {
    pub const fn new() -> Self {
        Self { head: 0, len: 0 }
    }

    /// Number of live blocks.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Registers `block` and counts it for its header's owner.
    ///
    /// # Safety
    /// `block` has an initialised header, is in no registry, and stays allocated until it
    /// leaves this one (`remove`, `reclaim` or `release_orphans`).
    pub unsafe fn insert(&mut self, block: NonNull<Header>, c: &Counters) {
        // SAFETY: the caller guarantees an initialised header.
        let h = unsafe { block.as_ref() };
        h.prev.store(0, Relaxed);
        h.next.store(self.head, Relaxed);
        if let Some(first) = at(self.head) {
            // SAFETY: listed blocks are allocated (type invariant).
            unsafe { first.as_ref() }.prev.store(addr(block), Relaxed);
        }
        self.head = addr(block);
        self.len += 1;
        c.add(owner(h), h.size as u64);
    }

    /// Unregisters `block` and uncounts it from its header's owner.
    ///
    /// # Safety
    /// `block` is registered in this registry.
    pub unsafe fn remove(&mut self, block: NonNull<Header>, c: &Counters) {
        // SAFETY: listed blocks are allocated (type invariant), and so are its neighbours.
        let h = unsafe { block.as_ref() };
        let (prev, next) = (h.prev.load(Relaxed), h.next.load(Relaxed));
        match at(prev) {
            // SAFETY: as above.
            Some(p) => unsafe { p.as_ref() }.next.store(next, Relaxed),
            None => self.head = next,
        }
        if let Some(n) = at(next) {
            // SAFETY: as above.
            unsafe { n.as_ref() }.prev.store(prev, Relaxed);
        }
        h.prev.store(0, Relaxed);
        h.next.store(0, Relaxed);
        self.len -= 1;
        c.sub(owner(h), h.size as u64);
    }

    /// Frees every block of the dead domain `dead`, by layout alone: no destructor runs.
    /// Nested blocks are included, since they carry their container's owner tag.
    ///
    /// If any of them is lent right now (borrow count > 0), none is freed: all are
    /// re-tagged [`DomainId::orphan_of`]`(dead)` instead — one orphan group per dead
    /// domain — and [`Registry::release_orphans`] frees the group once none of *its*
    /// blocks is lent; other domains' groups do not hold it back. The group stays together
    /// because nesting is not recorded: a lent container's nested blocks are reachable
    /// through the lend, and freeing a nested orphan while its lent container is reachable
    /// would be a use-after-free. (A slot that dies again while its previous group is still
    /// pinned joins that group: conservative, never early.)
    ///
    /// # Safety
    /// No code uses `dead`'s blocks any more except through lends in progress, and
    /// `free_mem(block, layout)` returns one unregistered block's memory to the backend.
    pub unsafe fn reclaim(
        &mut self,
        dead: DomainId,
        c: &Counters,
        free_mem: impl FnMut(NonNull<Header>, Layout),
    ) -> Reclaimed {
        // Blocks held in the dead domain's rings are its own from now on: tag them so.
        // SAFETY: no code changes `dead`'s rings any more (the caller's contract).
        unsafe { self.materialize(dead) };
        if !self.any_lent(dead) {
            // SAFETY: forwarded from the caller.
            let (freed_blocks, freed_bytes) = unsafe { self.free_where(|o| o == dead, c, free_mem) };
            return Reclaimed { freed_blocks, freed_bytes, orphaned_blocks: 0 };
        }
        let group = DomainId::orphan_of(dead);
        let mut orphaned_blocks = 0;
        let mut cur = self.head;
        while let Some(b) = at(cur) {
            // SAFETY: listed blocks are allocated (type invariant).
            let h = unsafe { b.as_ref() };
            cur = h.next.load(Relaxed);
            if owner(h) == dead {
                h.owner.store(group.0, SeqCst);
                c.moved(dead, group, 1, h.size as u64);
                orphaned_blocks += 1;
            }
        }
        Reclaimed { freed_blocks: 0, freed_bytes: 0, orphaned_blocks }
    }

    /// Frees, by layout alone, every orphan group none of whose blocks is lent any more;
    /// returns how many blocks were freed. Cheap when there are no orphans (it checks the
    /// counters first); otherwise two walks of the registry.
    ///
    /// # Safety
    /// As for [`Registry::reclaim`]: nothing uses an orphan except through a lend, and
    /// `free_mem` returns one unregistered block's memory to the backend.
    pub unsafe fn release_orphans(&mut self, c: &Counters, free_mem: impl FnMut(NonNull<Header>, Layout)) -> usize {
        if c.blocks(DomainId::ORPHAN) == 0 {
            return 0;
        }
        // Orphan groups are `orphan_of(slot)` with `slot < MAX_DOMAINS`: one bit each.
        const _: () = assert!(MAX_DOMAINS <= 64);
        let bit = |d: DomainId| 1u64 << (d.0 & !DomainId::ORPHAN_BASE) as usize % MAX_DOMAINS;
        let mut lent = 0u64;
        let mut cur = self.head;
        while let Some(b) = at(cur) {
            // SAFETY: listed blocks are allocated (type invariant).
            let h = unsafe { b.as_ref() };
            let o = owner(h);
            if o.is_orphan() && h.borrows.load(SeqCst) > 0 {
                lent |= bit(o);
            }
            cur = h.next.load(Relaxed);
        }
        // SAFETY: forwarded from the caller; groups with a lent block are skipped.
        unsafe { self.free_where(|o| o.is_orphan() && lent & bit(o) == 0, c, free_mem) }.0
    }

    /// Tags every block held in a ring of leaf handles owned by `d` with `d`.
    ///
    /// # Safety
    /// No code changes `d`'s rings meanwhile.
    unsafe fn materialize(&self, d: DomainId) {
        let mut cur = self.head;
        while let Some(b) = at(cur) {
            // SAFETY: listed blocks are allocated (type invariant).
            let h = unsafe { b.as_ref() };
            cur = h.next.load(Relaxed);
            if owner(h) == d && h.ring.load(Relaxed) != 0 {
                // SAFETY: a live ring nobody changes now (the caller's contract); the
                // blocks it holds are live.
                unsafe { ring_elements(b, |e| e.as_ref().owner.store(d.0, SeqCst)) };
            }
        }
    }

    /// Whether a block owned by `d` is lent.
    fn any_lent(&self, d: DomainId) -> bool {
        let mut cur = self.head;
        while let Some(b) = at(cur) {
            // SAFETY: listed blocks are allocated (type invariant).
            let h = unsafe { b.as_ref() };
            if owner(h) == d && h.borrows.load(SeqCst) > 0 {
                return true;
            }
            cur = h.next.load(Relaxed);
        }
        false
    }

    /// Unregisters and frees every block whose owner satisfies `which`; returns (blocks,
    /// bytes).
    ///
    /// # Safety
    /// As for [`Registry::reclaim`].
    unsafe fn free_where(
        &mut self,
        which: impl Fn(DomainId) -> bool,
        c: &Counters,
        mut free_mem: impl FnMut(NonNull<Header>, Layout),
    ) -> (usize, usize) {
        let (mut blocks, mut bytes) = (0, 0);
        let mut cur = self.head;
        while let Some(b) = at(cur) {
            // SAFETY: listed blocks are allocated (type invariant).
            let h = unsafe { b.as_ref() };
            cur = h.next.load(Relaxed);
            if !which(owner(h)) {
                continue;
            }
            let layout = h.layout();
            // SAFETY: `b` is listed here.
            unsafe { self.remove(b, c) };
            free_mem(b, layout);
            blocks += 1;
            bytes += layout.size();
        }
        (blocks, bytes)
    }
}

/// Offset of a ring's payload in its block: a ring of leaf handles is pointer-aligned,
/// like the header, so it starts right after it.
pub(crate) const RING_PAYLOAD: usize = core::mem::size_of::<Header>();

/// Calls `each` with the block of every handle held in the ring of leaf handles `ring` (a
/// block whose header's `ring` is non-zero: the payload is `{ head, len, slots }` with
/// pointer-sized slots, see [`crate::RRefDeque`]).
///
/// # Safety
/// `ring` is a live block of a ring of leaf handles that nobody changes meanwhile.
pub unsafe fn ring_elements(ring: NonNull<Header>, mut each: impl FnMut(NonNull<Header>)) {
    // SAFETY: the caller's contract.
    let cap = unsafe { ring.as_ref() }.ring.load(Relaxed) as usize;
    if cap == 0 {
        return;
    }
    let payload = ring.as_ptr().cast::<u8>().wrapping_add(RING_PAYLOAD).cast::<usize>();
    // SAFETY: the payload starts with `head` and `len` (usize), then `cap` pointer slots,
    // all within the block; the `len` slots from `head` (wrapping) hold live handles.
    unsafe {
        let (head, len) = (payload.read(), payload.add(1).read());
        let slots = payload.add(2).cast::<*mut Header>();
        for i in 0..len.min(cap) {
            if let Some(e) = NonNull::new(slots.add((head + i) % cap).read()) {
                each(e);
            }
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}
