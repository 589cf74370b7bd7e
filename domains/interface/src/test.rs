//! Interfaces of the test and demo domains (`domains/echo`, `domains/relay`,
//! `domains/client`): each method exists to show one property of proxies, containment or
//! restart in an in-QEMU test or a benchmark.

use crate::{domain_kind, interface, DomainId, Exchangeable, RRef, Remote, RpcError, RpcResult};

/// A buffer that records what its holder saw while it had it.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub data: [u8; 64],
    /// Owner of this packet's RRef as seen by the callee.
    pub seen_owner: u32,
    /// Borrow count of this packet's RRef as seen by the callee.
    pub seen_borrows: u32,
}

impl Packet {
    pub fn filled(byte: u8) -> Self {
        Self { data: [byte; 64], seen_owner: u32::MAX, seen_borrows: u32::MAX }
    }
}

/// RRefs inside an RRef: moves and reclamation must reach the inner ones.
#[derive(Exchangeable)]
pub struct Nested {
    pub a: RRef<u64>,
    pub b: Option<RRef<[u8; 32]>>,
}

/// What the callee saw of a lent RRef.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeekInfo {
    pub owner: DomainId,
    pub borrows: u32,
    pub sum: u64,
}

/// The test service. Opt-in recovery: a `Recover` proxy restarts the domain after a crash
/// and retries the `#[idempotent]` methods.
#[interface(recover)]
pub trait Echo: Send + Sync {
    /// Does nothing: the proxied null call.
    fn ping(&self) -> RpcResult<()>;
    #[idempotent]
    fn add(&self, a: u64, b: u64) -> RpcResult<u64>;
    /// The domain id and generation the callee sees while it runs.
    fn whoami(&self) -> RpcResult<(DomainId, u64)>;
    /// Moves an RRef in and straight back.
    fn bounce(&self, v: RRef<u64>) -> RpcResult<RRef<u64>>;
    /// Records the owner it sees in the packet and returns it.
    fn take(&self, p: RRef<Packet>) -> RpcResult<RRef<Packet>>;
    /// Reads a lent packet.
    #[idempotent]
    fn peek(&self, p: &RRef<Packet>) -> RpcResult<PeekInfo>;
    /// Scribbles on a lent packet, then panics while still holding the lend.
    fn peek_then_panic(&self, p: &mut RRef<Packet>) -> RpcResult<()>;
    /// Keeps a nested RRef in the domain's state.
    fn keep(&self, n: RRef<Nested>) -> RpcResult<()>;
    /// Allocates `n` nested RRefs and `n` KiB of private heap, and keeps them.
    fn hoard(&self, n: u32) -> RpcResult<u64>;
    fn panic_now(&self) -> RpcResult<()>;
    /// The next `add_checked` panics (state kept in a static, so a restart disarms it).
    fn arm_crash(&self) -> RpcResult<()>;
    #[idempotent]
    fn add_checked(&self, a: u64, b: u64) -> RpcResult<u64>;
    /// Increments a mutable static and returns it.
    fn bump(&self) -> RpcResult<u64>;
    /// Busy-loops until the domain is killed.
    fn spin(&self) -> RpcResult<()>;
    fn sleep_ms(&self, ms: u64) -> RpcResult<()>;
    /// Starts a domain thread that increments a counter every millisecond.
    fn spawn_worker(&self) -> RpcResult<u64>;
    fn worker_ticks(&self) -> RpcResult<u64>;
    /// Hands out a new object: the caller receives it proxied.
    fn make_counter(&self, start: u64) -> RpcResult<Remote<dyn Counter>>;
    /// Objects handed out and not yet released.
    fn live_counters(&self) -> RpcResult<u64>;
}

/// An object created by a domain and returned across the boundary.
#[interface]
pub trait Counter: Send + Sync {
    fn next(&self) -> RpcResult<u64>;
    fn whoami(&self) -> RpcResult<DomainId>;
}

/// What a relay saw when its callee crashed.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayReport {
    pub inner: Option<RpcError>,
    /// Proof the relay carried on: a value it computed after the failed call.
    pub after: u64,
}

/// Middle domain of A→B→C: holds an Echo and relays to it. Its init calls the echo, so
/// restarting it through a recovery proxy may first restart the echo (nested recovery).
#[interface(recover)]
pub trait Relay: Send + Sync {
    /// Calls the echo's `panic_now`, and reports the error it got.
    fn relay_panic(&self) -> RpcResult<RelayReport>;
    #[idempotent]
    fn relay_add(&self, a: u64, b: u64) -> RpcResult<u64>;
    fn whoami(&self) -> RpcResult<DomainId>;
}

/// The demo client's counters.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ClientStats {
    pub calls: u64,
    pub errors: u64,
    pub last: u64,
}

/// The demo client: a thread calling an Echo every 100 ms through a recovery proxy.
#[interface]
pub trait Client: Send + Sync {
    fn stats(&self) -> RpcResult<ClientStats>;
}

domain_kind!(pub EchoKind: () => dyn Echo);
domain_kind!(pub RelayKind: (Remote<dyn Echo>,) => dyn Relay);
domain_kind!(pub ClientKind: (Remote<dyn Echo>,) => dyn Client);
