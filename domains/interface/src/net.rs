//! The network path: NIC drivers (`Nic`), the network stack (`Sockets`), the forwarding
//! application (`Forward`), and the kernel's read-only view of itself (`System`) that the
//! HTTP status page shows.
//!
//! Packet buffers are `RRef<Pkt>` on the shared heap and cross boundaries in batches
//! (`PktQueue`, an `RRefDeque` of at most [`BATCH_MAX`]). The shared heap is
//! identity-mapped, so a buffer's address is its physical address and a device reads and
//! writes packet memory in place: zero copy from the wire to the application and back.

use crate::{domain_kind, interface, Exchangeable, RRef, RRefDeque, Remote, RpcResult};

/// Largest batch a NIC call moves.
pub const BATCH_MAX: usize = 32;
/// Room in front of the frame for a device's per-packet header (virtio-net's is 12 bytes
/// with VIRTIO_F_VERSION_1). `head` and `data` are contiguous, so a device can DMA header
/// and frame as one buffer.
pub const HEADROOM: usize = 12;
/// Frame bytes a buffer holds: an Ethernet frame without FCS is at most 1514 bytes.
pub const PKT_DATA: usize = 2036;
/// Largest frame a NIC sends or accepts (no jumbo frames, no VLAN tag).
pub const FRAME_MAX: usize = 1514;

/// One packet buffer. Invariant kept by every holder: `len as usize <= PKT_DATA`.
#[derive(Exchangeable)]
#[repr(C)]
pub struct Pkt {
    /// Frame length in `data`.
    pub len: u32,
    /// Device-specific header space (see [`HEADROOM`]).
    pub head: [u8; HEADROOM],
    /// The Ethernet frame, destination MAC first.
    pub data: [u8; PKT_DATA],
}

impl Pkt {
    /// An empty buffer.
    pub const fn empty() -> Self {
        Self { len: 0, head: [0; HEADROOM], data: [0; PKT_DATA] }
    }

    /// The frame (`data[..len]`, clamped to the buffer).
    pub fn frame(&self) -> &[u8] {
        &self.data[..(self.len as usize).min(PKT_DATA)]
    }

    pub fn frame_mut(&mut self) -> &mut [u8] {
        let n = (self.len as usize).min(PKT_DATA);
        &mut self.data[..n]
    }

    /// Replaces the frame with `bytes` (cut at [`PKT_DATA`]).
    pub fn set_frame(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(PKT_DATA);
        self.data[..n].copy_from_slice(&bytes[..n]);
        self.len = n as u32;
    }
}

/// A batch of packet buffers.
pub type PktQueue = RRefDeque<RRef<Pkt>, BATCH_MAX>;

/// Two queues crossing a NIC call together: see [`Nic::tx`] and [`Nic::rx`].
#[derive(Exchangeable)]
pub struct Batch {
    /// In: what the caller hands over. Out: what the NIC did not take.
    pub pkts: PktQueue,
    /// Out: what the NIC hands back (sent buffers for `tx`, received frames for `rx`).
    /// In: must have room for what the caller wants back (normally empty).
    pub done: PktQueue,
}

impl Batch {
    pub fn new() -> Self {
        Self { pkts: PktQueue::new(), done: PktQueue::new() }
    }

    /// Like [`Batch::new`], but `None` if the shared heap cannot allocate the queues.
    pub fn try_new() -> Option<Self> {
        Some(Self { pkts: PktQueue::try_new()?, done: PktQueue::try_new()? })
    }
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

/// Fixed facts about a NIC.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicInfo {
    pub mac: [u8; 6],
    /// Frames in flight per direction the device queue holds.
    pub queue_size: u16,
    /// PCI bus/device/function, `bus << 8 | dev << 3 | fn` (0xffff: not PCI).
    pub bdf: u16,
}

/// A NIC's counters since its driver instance started.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NicStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames dropped by the driver: longer than [`FRAME_MAX`] to send, or reported by
    /// the device with a bad length.
    pub dropped: u64,
    /// Interrupts taken.
    pub irqs: u64,
    /// Doorbell writes: virtio queue notifications, Intel tail-register writes (each an
    /// MMIO access the hypervisor has to handle).
    pub notifies: u64,
    /// `wait` calls that blocked (re-enabled interrupts and slept).
    pub sleeps: u64,
}

/// A network interface card, driven by a driver domain. Batched and zero-copy: buffers
/// move to the driver, the device reads or writes them in place, and they move back.
/// Every method returns promptly (none blocks except `wait`).
#[interface(recover)]
pub trait Nic: Send + Sync {
    #[idempotent]
    fn info(&self) -> RpcResult<NicInfo>;
    #[idempotent]
    fn stats(&self) -> RpcResult<NicStats>;
    /// Transmits: takes frames from the front of `b.pkts` while the device queue has room
    /// (frames longer than [`FRAME_MAX`] are dropped and come back in `done` like sent
    /// ones), and moves buffers whose transmission completed into `b.done` while it has
    /// room. Untaken frames stay in `b.pkts`, in order.
    fn tx(&self, b: Batch) -> RpcResult<Batch>;
    /// Receives: takes empty buffers from `b.pkts` to post to the device while it has room,
    /// and moves received frames into `b.done` while it has room, in arrival order.
    fn rx(&self, b: Batch) -> RpcResult<Batch>;
    /// Blocks until the device signals (a received frame or a completed transmission) or
    /// `timeout_ns` passes, re-enabling device interrupts first. In polling mode
    /// (`set_polling(true)`) it returns at once.
    #[idempotent]
    fn wait(&self, timeout_ns: u64) -> RpcResult<()>;
    /// Blocks until `frames` received frames wait to be taken (interrupt moderation: a
    /// device that can count asks for one interrupt for all of them; others wake at the
    /// first frame or completed transmission, as `wait`), or `timeout_ns` passes. At
    /// most as many frames count as the device holds receive buffers for. In polling
    /// mode it returns at once.
    #[idempotent]
    fn wait_rx(&self, frames: u16, timeout_ns: u64) -> RpcResult<()>;
    /// Polling mode: device interrupts stay suppressed, `wait` returns at once.
    #[idempotent]
    fn set_polling(&self, on: bool) -> RpcResult<()>;
}

/// What the kernel tells a NIC driver about its device. Device registers are mapped
/// uncached at their physical addresses; the kernel has enabled memory decoding, bus
/// mastering and (if `msix_vector != 0`) MSI-X entry 0 of the device, which delivers
/// `msix_vector` to the CPU.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciDevice {
    pub bdf: u16,
    pub vendor: u16,
    pub device: u16,
    /// Assigned BARs: (address, length), length 0 if unused. I/O BARs have bit 63 set.
    pub bars: [(u64, u64); 6],
    /// Vendor capabilities the driver needs (virtio's): (cap offset in config space,
    /// cfg_type, bar, offset, length, notify multiplier or 0).
    pub caps: [VendorCap; 8],
    pub ncaps: u8,
    pub msix_vector: u8,
}

/// One virtio vendor-specific PCI capability, decoded by the kernel.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VendorCap {
    pub cfg_type: u8,
    pub bar: u8,
    pub offset: u32,
    pub length: u32,
    /// `notify_off_multiplier` for the notify capability (cfg_type 2), else 0.
    pub notify_mult: u32,
}

/// Init arguments of a NIC driver domain.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicArgs {
    pub dev: PciDevice,
    /// Null mode (the null driver only): the frame `rx` fills each buffer with.
    pub null_frame: [u8; 64],
    pub null_len: u8,
}

domain_kind!(pub NicKind: (NicArgs,) => dyn Nic);

// ------------------------------------------------------------------------------------
// Kernel information for the status page.

/// Longest domain name shown.
pub const NAME_MAX: usize = 16;
/// Rows of a [`DomainTable`].
pub const TABLE_ROWS: usize = 32;

/// One domain as the kernel's `domains` command shows it.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DomainRow {
    pub id: u32,
    pub name: [u8; NAME_MAX],
    pub name_len: u8,
    pub generation: u64,
    /// 0 alive, 1 dead, 2 restarting.
    pub state: u8,
    pub heap_used: u64,
    pub heap_reserved: u64,
    pub rrefs: u64,
    pub rref_bytes: u64,
    pub calls: u64,
    pub crashes: u64,
    pub restarts: u64,
}

impl DomainRow {
    pub fn name(&self) -> &str {
        let n = (self.name_len as usize).min(NAME_MAX);
        core::str::from_utf8(&self.name[..n]).unwrap_or("?")
    }
}

#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainTable {
    pub rows: [DomainRow; TABLE_ROWS],
    pub len: u32,
    pub uptime_ms: u64,
    pub shared_heap_used: u64,
    pub shared_heap_size: u64,
}

/// The kernel's read-only view of itself, exported to domains that show it.
#[interface]
pub trait System: Send + Sync {
    /// Fills `t` with the live domain table.
    fn domains(&self, t: RRef<DomainTable>) -> RpcResult<RRef<DomainTable>>;
}

// ------------------------------------------------------------------------------------
// The network stack.

/// Static IPv4 configuration (from the kernel command line).
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Config {
    pub addr: [u8; 4],
    pub prefix: u8,
    /// Default gateway (0.0.0.0: none).
    pub gateway: [u8; 4],
}

/// Bytes a [`SockBuf`] holds.
pub const SOCK_BUF: usize = 2048;

/// Data to or from a socket. For UDP, `addr`/`port` are the peer (source on receive,
/// destination on send).
#[derive(Exchangeable, Clone, Copy)]
pub struct SockBuf {
    pub len: u32,
    pub addr: [u8; 4],
    pub port: u16,
    pub data: [u8; SOCK_BUF],
}

impl SockBuf {
    pub const fn empty() -> Self {
        Self { len: 0, addr: [0; 4], port: 0, data: [0; SOCK_BUF] }
    }
    pub fn bytes(&self) -> &[u8] {
        &self.data[..(self.len as usize).min(SOCK_BUF)]
    }
}

/// A socket of one generation of the stack.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SockId(pub u32);

#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// Not a socket of this stack (for instance one from before a restart).
    NoSuchSocket,
    /// The port is taken (reserved: binds and listens take ports over instead).
    AddrInUse,
    /// No socket or buffer space left.
    Exhausted,
    /// The connection is closed (or was reset) and holds no more data.
    Closed,
    /// The operation does not apply to this socket (e.g. `accept` on a UDP socket).
    InvalidArgument,
}

/// Counters of the stack.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StackStats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// NIC calls that failed (driver crashed; buffers handed in are lost).
    pub nic_errors: u64,
    pub sockets: u32,
    pub polls: u64,
}

/// A socket API over the stack. Non-blocking: `wait` blocks until something may have
/// changed.
#[interface(recover)]
pub trait Sockets: Send + Sync {
    /// A UDP socket on `port`. A port already bound is **taken over**: the previous socket
    /// is closed. Its holder may be a crashed domain that can never close it, and the
    /// restarted instance must be able to bind again. (`AddrInUse` is not returned.)
    fn udp_bind(&self, port: u16) -> RpcResult<Result<SockId, NetError>>;
    /// A listening TCP socket with `backlog` (1..=8) connections pending at most. A port
    /// already listened on is taken over as in `udp_bind`; established connections
    /// accepted from the old listener are not affected.
    fn tcp_listen(&self, port: u16, backlog: u8) -> RpcResult<Result<SockId, NetError>>;
    /// An established connection from `listener`'s backlog, if one is ready.
    fn tcp_accept(&self, listener: SockId) -> RpcResult<Result<Option<SockId>, NetError>>;
    /// Receives into `buf` (len 0: nothing ready). `Err(Closed)`: the peer closed and all
    /// its data has been read.
    fn recv(&self, s: SockId, buf: RRef<SockBuf>) -> RpcResult<(RRef<SockBuf>, Result<u32, NetError>)>;
    /// Sends `buf`; for TCP, returns how many bytes the send buffer took (maybe 0).
    fn send(&self, s: SockId, buf: RRef<SockBuf>) -> RpcResult<(RRef<SockBuf>, Result<u32, NetError>)>;
    /// Closes (TCP: after the send buffer drains) and forgets the socket.
    fn close(&self, s: SockId) -> RpcResult<Result<(), NetError>>;
    /// True when the TCP send buffer is empty (everything sent was acknowledged).
    fn send_drained(&self, s: SockId) -> RpcResult<Result<bool, NetError>>;
    /// Blocks until the stack processed traffic or `timeout_ns` passes.
    #[idempotent]
    fn wait(&self, timeout_ns: u64) -> RpcResult<()>;
    #[idempotent]
    fn stats(&self) -> RpcResult<StackStats>;
}

domain_kind!(pub StackKind: (Remote<dyn Nic>, Ipv4Config) => dyn Sockets);

/// The services domain: TCP/UDP echo and the HTTP status page. Exports only counters.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ServiceStats {
    pub tcp_conns: u64,
    pub tcp_bytes: u64,
    pub udp_datagrams: u64,
    pub http_requests: u64,
    /// Times the stack failed under the services and they re-opened their sockets.
    pub stack_restarts_seen: u64,
}

#[interface]
pub trait Services: Send + Sync {
    fn stats(&self) -> RpcResult<ServiceStats>;
}

/// Ports the services listen on.
pub const ECHO_PORT: u16 = 7;
pub const HTTP_PORT: u16 = 80;

domain_kind!(pub ServicesKind: (Remote<dyn Sockets>, Remote<dyn System>) => dyn Services);

// ------------------------------------------------------------------------------------
// IPv4 forwarding between two NICs.

/// One side of the forwarder: its address and its (static) neighbour.
#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct FwdPort {
    pub addr: [u8; 4],
    pub prefix: u8,
    /// The neighbour's IP and MAC (static: no ARP needed to forward to it).
    pub peer_ip: [u8; 4],
    pub peer_mac: [u8; 6],
}

#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq)]
pub struct FwdConfig {
    pub ports: [FwdPort; 2],
    /// Packets per NIC call (1..=BATCH_MAX).
    pub batch: u16,
    /// Poll-then-halt: after this many rounds in a row that received nothing, the
    /// forwarder blocks in `Nic::wait` (interrupts on) instead of polling on. 0: it never
    /// blocks, and the NICs stay in polling mode.
    pub idle_rounds: u16,
    /// Interrupt moderation (with `idle_rounds` > 0; 0: off). A round that received
    /// fewer than half this many frames counts towards a halt like an empty one, and a
    /// halt waits for this many frames (`Nic::wait_rx`) — at most the forwarder's halt timeout — instead
    /// of the first.
    pub coalesce: u16,
}

#[derive(Exchangeable, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FwdStats {
    pub forwarded: u64,
    /// Dropped: TTL expired, not IPv4, bad header, no route, or no room.
    pub dropped: u64,
    pub arp_replies: u64,
    /// NIC calls that failed; buffers handed in are lost and replaced.
    pub nic_errors: u64,
    /// Buffers allocated to replace lost ones.
    pub replaced: u64,
    pub rounds: u64,
    /// Times the forwarder found no work for a while and blocked in `Nic::wait`.
    pub halts: u64,
}

#[interface]
pub trait Forward: Send + Sync {
    /// Runs `rounds` rounds (rx on each NIC, forward, tx) on the calling thread; 0 runs
    /// until the domain is killed. Returns the counters.
    fn run(&self, rounds: u64) -> RpcResult<FwdStats>;
    fn stats(&self) -> RpcResult<FwdStats>;
}

domain_kind!(pub ForwardKind: (Remote<dyn Nic>, Remote<dyn Nic>, FwdConfig) => dyn Forward);
