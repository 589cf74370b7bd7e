//! The hostile test domain's interface (`domains/hostile`): each method is one attack a
//! domain can mount in safe Rust against the rule that nothing a domain does may corrupt,
//! stop or starve the kernel or another domain. The kernel's hostile-domain tests
//! (`kernel/src/ktest_hostile.rs`) call them and check that only the attacker suffers.

use crate::test::{Echo, Packet};
use crate::{domain_kind, interface, RRef, Remote, RpcResult};

#[interface]
pub trait Hostile: Send + Sync {
    /// Recurses with a 512-byte local per frame until the stack overflows.
    fn recurse(&self, depth: u64) -> RpcResult<u64>;
    /// Allocates 1 MiB `Vec`s and keeps them, until its heap allocation fails.
    fn exhaust_heap(&self) -> RpcResult<u64>;
    /// Allocates 4 KiB RRefs and keeps them, until the shared heap refuses.
    fn exhaust_shared(&self) -> RpcResult<u64>;
    /// Spawns sleeping threads until `spawn` refuses; returns how many it got.
    fn exhaust_threads(&self) -> RpcResult<u64>;
    /// Spins forever inside the call.
    fn spin(&self) -> RpcResult<()>;
    /// Takes the domain's lock, then spins forever holding it.
    fn spin_locked(&self) -> RpcResult<()>;
    /// Takes the domain's lock (blocks while `spin_locked` holds it).
    fn take_lock(&self) -> RpcResult<u64>;
    /// Starts a domain thread that spins forever; returns its thread id.
    fn spawn_spinner(&self) -> RpcResult<u64>;
    /// Swaps the lent packet's handle for one of its own and keeps the caller's.
    fn steal_lent(&self, p: &mut RRef<Packet>) -> RpcResult<()>;
    /// Swaps the lent packet's handle and returns the caller's own block as its result.
    fn return_lent(&self, p: &mut RRef<Packet>) -> RpcResult<RRef<Packet>>;
    /// Calls kernel services with hostile arguments: `irq_wait` on a vector it does not
    /// own with an endless timeout, `spawn` with a 64 KiB name, then starts a thread that
    /// sleeps `u64::MAX` ns. Returns what `irq_wait` said (1 = fired) and the thread id.
    fn sys_abuse(&self) -> RpcResult<(u64, u64)>;
    /// Keeps a handle to an Echo (the test then kills that Echo).
    fn keep_echo(&self, e: Remote<dyn Echo>) -> RpcResult<()>;
    /// Calls the kept Echo.
    fn call_kept(&self) -> RpcResult<u64>;
    /// Keeps a handle to another Hostile (for the ping-pong recursion).
    fn set_peer(&self, peer: Remote<dyn Hostile>) -> RpcResult<()>;
    /// Calls the peer's `pingpong(depth + 1)`, which calls back: A→B→A→… without end.
    fn pingpong(&self, depth: u64) -> RpcResult<u64>;
    /// Sleeps `ms` while holding a lent packet; returns its first byte.
    fn hold_lent(&self, p: &RRef<Packet>, ms: u64) -> RpcResult<u64>;
    /// Lends a packet of its own to the peer's `hold_lent(ms)` (the test kills this
    /// domain meanwhile: its lend must still end and its orphaned block be freed).
    fn lend_to_peer(&self, ms: u64) -> RpcResult<u64>;
    /// Drops, inside the call, an RRef whose payload panics in `Drop`.
    fn drop_bomb(&self) -> RpcResult<()>;
    /// Keeps RRefs whose payload panics in `Drop` (reclamation must run no destructor).
    fn keep_bombs(&self, n: u32) -> RpcResult<u64>;
}

domain_kind!(pub HostileKind: () => dyn Hostile);

/// The fault fixture (`tests/fixtures/dom-faulty`): raises CPU exception `vector` in its
/// own code (0 #DE, 1 #DB, 3 #BP, 6 #UD, 7 #NM, 13 #GP, 14 #PF); other values return.
#[interface]
pub trait Faulty: Send + Sync {
    fn fault(&self, vector: u8) -> RpcResult<u8>;
}

domain_kind!(pub FaultyKind: () => dyn Faulty);
