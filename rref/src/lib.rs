//! # rref — data that crosses domain boundaries
//!
//! Frond's exchange ABI, shared by the kernel, the interface crate and every domain:
//!
//! * [`DomainId`]: who owns something. `DomainId::KERNEL` is the kernel.
//! * [`Exchangeable`]: the types that may live in an RRef or cross an interface: primitives,
//!   arrays/tuples/`Option`/`Result` of exchangeable types, the RRef family, and structs/enums
//!   whose fields all are (`#[derive(Exchangeable)]` checks this at compile time). No
//!   references, raw pointers, `Box`, `Vec`, `String`, trait objects or interior mutability.
//! * [`RRef<T>`], [`RRefVec<T>`], [`RRefDeque<T, N>`]: owned objects on the **shared heap**.
//!   Each block starts with a [`Header`]: owner domain, borrow count, and the block's layout.
//! * [`SharedHeap`]: the heap behind them. The kernel provides it; host tests use
//!   [`host::HostHeap`]. [`registry::Registry`] is the bookkeeping both use: every live block,
//!   per-domain counters, and reclamation of a dead domain's blocks. Raw allocation
//!   ([`SharedHeap::alloc`]) is `unsafe`, and both heaps refuse a layout that cannot hold a
//!   [`Header`]: safe code only gets blocks through the RRef family.
//! * [`MoveToken`]: permission to move *and to lend* blocks, naming the domain a move is
//!   from. Only the proxy runtime can make one, so only proxies call [`lend`] / [`lend_mut`]
//!   and [`Exchangeable::move_to`].
//! * [`fingerprint`]: the structural hashes behind [`Exchangeable::FINGERPRINT`] and the
//!   interface fingerprints the loader checks.
//! * [`rpc`]: the contract between generated proxies and the kernel.
//!
//! ## Invariants
//! * A block's owner is the domain that may use and free it. Moving an RRef across a
//!   boundary ([`Exchangeable::move_to`]) re-tags the block **and every RRef nested in it**,
//!   so nested blocks always have their container's owner. A move is a compare-exchange
//!   from the token's `from` domain: a block owned by someone else, or lent, is not
//!   re-tagged (nor anything below it) and the thread's violation flag is set; the proxy
//!   then refuses the call ([`rpc::RpcError::Refused`]).
//! * A deque of leaf handles ([`RRefDeque`] of [`RRef`]s whose payload holds no RRef) owns
//!   its elements through itself: they are tagged [`DomainId::IN_RING`], belong to the
//!   deque's owner (checked when they enter: owner and no lend) and move with it without
//!   being touched, so a batch crosses a boundary in O(1). Reclamation tags a dead
//!   domain's ring contents with it first.
//! * A lent block (borrow count > 0) is never freed by its handle nor moved. A `&mut` lend
//!   gives the callee an alias of the handle, never the caller's handle ([`lend_mut`]), and
//!   only for payloads without nested RRefs ([`Exchangeable::HAS_RREFS`]).
//! * Reclaiming a dead domain frees every block it owns by layout alone — no destructor, no
//!   code of the dead domain runs (nested blocks are found by their owner tag, not by
//!   traversal). If some of its blocks are lent at that moment (borrow count > 0), all of
//!   them become that domain's orphan group ([`DomainId::orphan_of`]), freed as soon as
//!   none of the group's blocks is lent, independently of other groups.
//!
//! ## Dependencies and `unsafe`
//! `no_std` + `alloc` (for [`rpc::Remote`]'s local boxes) + `spin`. This is trusted code
//! linked into the kernel and every domain, and with the kernel and drivers it is the only
//! place `unsafe` appears: every block carries a `// SAFETY:` comment.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate self as rref;

extern crate alloc;
#[cfg(any(test, feature = "host"))]
extern crate std;

#[cfg(any(test, feature = "host"))]
pub mod host;
pub mod registry;
pub mod rpc;

mod block;
mod deque;
mod exchangeable;
mod global;
mod lend;
// Not `mod rref`: `extern crate self as rref` already takes that name.
#[path = "rref.rs"]
mod single;
#[cfg(test)]
mod tests;
mod vec;

pub use deque::RRefDeque;
pub use global::{heap, set_heap};
pub use lend::{lend, lend_mut, LendGuard, Lendable, MutLend};
pub use single::RRef;
pub use vec::RRefVec;

/// `#[derive(Exchangeable)]`.
pub use frond_interface_gen::Exchangeable;

use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};

/// Number of domain slots, the kernel's slot 0 included. Domain ids are slot indices; a
/// restarted domain keeps its slot and gets a new generation.
pub const MAX_DOMAINS: usize = 64;

/// Identifies a domain slot. The generation is tracked separately by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct DomainId(pub u32);

impl DomainId {
    pub const KERNEL: DomainId = DomainId(0);
    /// Tag bit of orphans: `ORPHAN_BASE | slot` owns the blocks of the dead domain `slot`
    /// that were lent out when it died ([`DomainId::orphan_of`]); each such group is freed
    /// when none of its blocks is lent any more.
    pub const ORPHAN_BASE: u32 = 0x8000_0000;
    /// Stands for every orphan group in [`registry::Counters`] (they share one counter).
    pub const ORPHAN: DomainId = DomainId(u32::MAX);
    /// The tag of a block held in a ring of leaf handles ([`RRefDeque`] of [`RRef`]s whose
    /// payload holds no RRef): it is owned *through* the ring, by the ring's owner, and
    /// moves with it without being touched. Never a real owner and never counted: the
    /// ring's owner counts it. Reclamation re-tags a dead domain's ring contents with the
    /// domain before freeing anything.
    pub const IN_RING: DomainId = DomainId(0x4000_0000);

    /// The orphan tag of dead domain `d`'s blocks.
    pub const fn orphan_of(d: DomainId) -> DomainId {
        DomainId(Self::ORPHAN_BASE | d.0)
    }

    /// Whether this is an orphan tag ([`DomainId::orphan_of`] or [`DomainId::ORPHAN`]).
    pub const fn is_orphan(self) -> bool {
        self.0 & Self::ORPHAN_BASE != 0
    }

    /// Index for per-domain tables: `0..MAX_DOMAINS`, and `MAX_DOMAINS` for every orphan tag.
    pub fn index(self) -> usize {
        if self.is_orphan() { MAX_DOMAINS } else { self.0 as usize }
    }
}

/// Types whose values may be placed in an RRef or cross an interface.
///
/// # Safety
/// Implementors contain no references, raw pointers, heap pointers other than the RRef
/// family, trait objects or interior mutability, and `move_to` re-tags every RRef reachable
/// from `self`. Use `#[derive(Exchangeable)]`; domains cannot write `unsafe impl`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cross a domain boundary: it is not Exchangeable",
    label = "not Exchangeable",
    note = "only primitives, arrays/tuples/Option/Result of exchangeable types, RRef/RRefVec/RRefDeque and #[derive(Exchangeable)] types may live in an RRef or cross an interface"
)]
pub unsafe trait Exchangeable {
    /// Whether a value may contain an RRef-family handle (an RRef nested in it). Only
    /// payloads without RRefs may be lent mutably (`&mut RRef<T>` arguments): a callee with
    /// `&mut` access to a nested RRef could take it, and then hold a block the caller owns.
    const HAS_RREFS: bool;
    /// A hash of the type's structure ([`fingerprint`]): names, field names and types,
    /// size and alignment. Part of the interface fingerprint the loader checks, so a domain
    /// built against a changed type is refused even if every name stayed the same.
    const FINGERPRINT: u64;
    /// Non-zero only for an RRef-family handle that is a `repr(transparent)` pointer to
    /// its block's [`Header`], whose payload holds no RRef and whose blocks all have this
    /// size (header included): [`RRef<T>`] with `T::HAS_RREFS == false`. A deque of such
    /// handles owns them through itself ([`DomainId::IN_RING`]), so moving the deque
    /// re-tags one block, whatever its length. Everything else keeps the default, 0.
    #[doc(hidden)]
    const LEAF_BLOCK: usize = 0;
    /// Makes `to` the owner of every RRef reachable from `self`, provided `token.from()`
    /// owns it and it is not lent (otherwise nothing is re-tagged below that block and a
    /// violation is reported: [`SharedHeap::take_violation`]). Only the kernel's proxy
    /// runtime can make the [`MoveToken`]: a domain cannot re-tag blocks behind its back.
    fn move_to(&self, to: DomainId, token: MoveToken);
}

/// Permission to re-tag RRefs and to lend them, naming the domain a move is *from*. Only
/// code that may move ownership between domains — the kernel's proxy runtime (through
/// [`rpc::Runtime::move_token`]) and tests standing in for it — can make one; a domain that
/// could would move a block it still uses to another domain, whose death would then free it
/// under the domain's feet, or pin a block forever with a lend it never ends.
///
/// It also carries the heap's [`registry::Counters`], so that a move updates them directly
/// (two atomic adds per moved root block, whatever it holds) instead of through the heap's
/// trait object.
#[derive(Clone, Copy)]
pub struct MoveToken {
    from: DomainId,
    counters: &'static registry::Counters,
    /// `from`'s counter in `counters`, looked up once per token.
    from_counter: &'static AtomicU64,
}

impl core::fmt::Debug for MoveToken {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MoveToken").field("from", &self.from).finish()
    }
}

impl MoveToken {
    /// A token counting moves in the installed heap's counters.
    ///
    /// # Safety
    /// Only proxy runtimes (and tests) may re-tag or lend blocks: every move and lend must
    /// be one the runtime performs for a call, and `from` the domain giving the values up.
    pub unsafe fn new(from: DomainId) -> Self {
        // SAFETY: forwarded from the caller; the installed heap's counters.
        unsafe { Self::with_counters(from, heap().counters()) }
    }

    /// Like [`MoveToken::new`], with the heap's counters given (the kernel's runtime knows
    /// its heap statically: no call through the heap's trait object).
    ///
    /// # Safety
    /// As for [`MoveToken::new`]; `counters` are the installed heap's.
    #[inline(always)]
    pub unsafe fn with_counters(from: DomainId, counters: &'static registry::Counters) -> Self {
        MoveToken { from, counters, from_counter: counters.counter(from) }
    }

    /// The domain that must own the blocks being moved.
    #[inline(always)]
    pub fn from(&self) -> DomainId {
        self.from
    }

    /// Counts `blocks` blocks of `bytes` bytes moving from the token's `from` to `to`.
    #[inline(always)]
    pub(crate) fn count_move(&self, to: DomainId, blocks: u64, bytes: u64) {
        self.counters.moved_from(self.from_counter, to, blocks, bytes);
    }
}

/// Compile-time structural hashes for [`Exchangeable::FINGERPRINT`] and interface
/// fingerprints (`rref::rpc::Proxyable::FINGERPRINT`): FNV-1a over names, mixed with
/// sizes, alignments and the fingerprints of component types.
pub mod fingerprint {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// FNV-1a, 64 bit, of `s`.
    pub const fn str(s: &str) -> u64 {
        let b = s.as_bytes();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut i = 0;
        while i < b.len() {
            h ^= b[i] as u64;
            h = h.wrapping_mul(PRIME);
            i += 1;
        }
        h
    }

    /// Mixes `v` into `h` (order matters: `mix(mix(h, a), b) != mix(mix(h, b), a)`).
    pub const fn mix(h: u64, v: u64) -> u64 {
        let mut x = h ^ v.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x = x.rotate_left(27).wrapping_mul(PRIME);
        x ^ (x >> 31)
    }

    /// The fingerprint of a type named `name` with `size` and `align`.
    pub const fn leaf(name: &str, size: usize, align: usize) -> u64 {
        mix(mix(str(name), size as u64), align as u64)
    }
}

/// The header at the start of every shared-heap block.
///
/// `#[repr(C)]` and identical in every binary (one compiler builds them all), so the kernel
/// can read headers of blocks allocated by any domain.
#[repr(C)]
pub struct Header {
    /// `DomainId` of the owner ([`DomainId::IN_RING`] while held in a ring of leaf handles).
    pub owner: AtomicU32,
    /// Number of lends in progress (a lent `&RRef` across a proxied call).
    pub borrows: AtomicU32,
    /// Layout of the whole block, header included: freeing needs nothing else.
    pub size: usize,
    pub align: u32,
    /// Non-zero if the payload is a ring of leaf handles (an [`RRefDeque`] of RRefs without
    /// nested RRefs) of this capacity: the blocks it holds are tagged
    /// [`DomainId::IN_RING`], and reclamation finds them through it
    /// ([`registry::ring_elements`]). Set once, right after allocation.
    pub ring: AtomicU32,
    /// Registry links, owned by the heap implementation (0 when not registered).
    pub prev: AtomicUsize,
    pub next: AtomicUsize,
}

impl Header {
    /// The header of a fresh block of `layout` owned by `owner`: no lends, not a ring,
    /// not registered.
    pub fn new(owner: DomainId, layout: Layout) -> Header {
        Header {
            owner: AtomicU32::new(owner.0),
            borrows: AtomicU32::new(0),
            size: layout.size(),
            // Alignments are powers of two far below 2^32 in practice; a larger one is
            // refused by `fits`, which every heap checks first.
            align: layout.align() as u32,
            ring: AtomicU32::new(0),
            prev: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
        }
    }

    /// Whether a block of `layout` can hold a header at its start: what every
    /// [`SharedHeap::alloc`] checks before writing one.
    pub fn fits_in(layout: Layout) -> bool {
        layout.size() >= core::mem::size_of::<Header>()
            && layout.align() >= core::mem::align_of::<Header>()
            && layout.align() <= u32::MAX as usize
    }

    pub fn layout(&self) -> Layout {
        // A header is only ever written by `SharedHeap::alloc` from a valid Layout.
        Layout::from_size_align(self.size, self.align as usize).expect("header holds a valid layout")
    }
}

/// The shared heap: provided by the kernel (or a host test).
///
/// Domains reach it ([`heap`], `Syscalls::shared_heap`), so everything safe here must be
/// harmless whatever the arguments: allocation, freeing, re-tagging and reporting
/// violations are `unsafe` (only `rref`'s own handles call them); `current_domain`,
/// `release_orphans` (frees only orphan groups nothing can reach) and `take_violation`
/// (per thread) are not.
///
/// # Safety
/// `alloc` returns blocks of at least `layout` that do not overlap any live block, with a
/// header already initialised (owner = [`SharedHeap::current_domain`], borrows 0, layout,
/// registered), and `None` for a layout smaller or less aligned than a [`Header`]. `free`
/// keeps the registry and [`SharedHeap::counters`] exact. The violation flag is per thread.
pub unsafe trait SharedHeap: Sync {
    /// Allocates a block of `layout` (header included), owned by the current domain.
    /// `None` if the heap is exhausted or `layout` cannot hold a [`Header`].
    ///
    /// # Safety
    /// `layout` includes the header (size and alignment at least a `Header`'s), and the
    /// caller initialises the payload before an RRef-family handle exposes it.
    unsafe fn alloc(&self, layout: Layout) -> Option<NonNull<Header>>;
    /// Frees a block: unregisters it and returns its memory. Runs no destructor.
    ///
    /// # Safety
    /// `block` came from `alloc` of this heap and is not used afterwards.
    unsafe fn free(&self, block: NonNull<Header>);
    /// The per-domain counters of this heap. Moves update them directly (through the
    /// [`MoveToken`]); they must be the ones `alloc`, `free` and reclamation keep.
    fn counters(&self) -> &registry::Counters;
    /// The domain whose code runs now: owner of new blocks.
    fn current_domain(&self) -> DomainId;
    /// A move was refused: the block was not owned by the token's `from` domain, or was
    /// lent. Sets this thread's violation flag.
    ///
    /// # Safety
    /// Only `rref`'s re-tagging calls it: a flag set outside a proxied move would make the
    /// thread's next proxied call fail.
    unsafe fn report_violation(&self);
    /// Whether a move on this thread was refused since the last call; clears the flag.
    /// Proxies check it right after their moves ([`rpc::Runtime::take_violation`]).
    fn take_violation(&self) -> bool;
    /// The last lend of a block ended (it may have been orphaned meanwhile): free every
    /// orphan group none of whose blocks is lent any more. Called at the end of every lend,
    /// so it must be cheap when there are no orphans
    /// ([`registry::Registry::release_orphans`] is).
    fn release_orphans(&self);
}
