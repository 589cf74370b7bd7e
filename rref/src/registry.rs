//! Shared-heap bookkeeping used by both the kernel's heap and [`crate::host::HostHeap`]:
//! per-domain [`Counters`], the [`Registry`] of live blocks, and reclamation of a dead
//! domain's blocks. The backend provides the memory and a lock around the `Registry`.

use crate::{DomainId, Header, MAX_DOMAINS};
use core::alloc::Layout;
use core::ptr::{self, NonNull};
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{Relaxed, SeqCst};

/// One slot per domain index, plus one for all orphan groups (see [`DomainId::index`]).
const SLOTS: usize = MAX_DOMAINS + 1;

/// Live blocks and their bytes (`Header.size`) per owner. Updated by [`Registry`] and, for
/// moves, by the backend's [`crate::SharedHeap::moved`] through [`Counters::moved`].
pub struct Counters {
    blocks: [AtomicU64; SLOTS],
    bytes: [AtomicU64; SLOTS],
}

impl Counters {
    pub const fn new() -> Self {
        Self { blocks: [const { AtomicU64::new(0) }; SLOTS], bytes: [const { AtomicU64::new(0) }; SLOTS] }
    }

    /// Live blocks owned by `d`.
    pub fn blocks(&self, d: DomainId) -> u64 {
        self.blocks[d.index()].load(SeqCst)
    }

    /// Bytes of the live blocks owned by `d`, headers included.
    pub fn bytes(&self, d: DomainId) -> u64 {
        self.bytes[d.index()].load(SeqCst)
    }

    pub fn total_blocks(&self) -> u64 {
        self.blocks.iter().map(|c| c.load(SeqCst)).sum()
    }

    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().map(|c| c.load(SeqCst)).sum()
    }

    /// A block of `bytes` changed owner from `from` to `to`.
    pub fn moved(&self, from: DomainId, to: DomainId, bytes: u64) {
        self.sub(from, bytes);
        self.add(to, bytes);
    }

    pub(crate) fn add(&self, d: DomainId, bytes: u64) {
        self.blocks[d.index()].fetch_add(1, SeqCst);
        self.bytes[d.index()].fetch_add(bytes, SeqCst);
    }

    pub(crate) fn sub(&self, d: DomainId, bytes: u64) {
        self.blocks[d.index()].fetch_sub(1, SeqCst);
        self.bytes[d.index()].fetch_sub(bytes, SeqCst);
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
                c.moved(dead, group, h.size as u64);
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

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}
