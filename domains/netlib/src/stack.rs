//! The stack: a smoltcp interface over a [`Nic`], and the socket table.
//!
//! ## Buffers
//! Every frame lives in an `RRef<Pkt>`. Free buffers wait in a pool (allocated on demand,
//! at most [`POOL_MAX`] kept). Each poll posts free buffers to the NIC with `rx` and queues
//! the frames it hands back; smoltcp consumes them through [`Port`]'s receive tokens, and
//! each consumed buffer returns to the pool. Transmit tokens fill free buffers, which are
//! handed to `tx` in batches of up to [`BATCH_MAX`]; sent buffers come back from the NIC in
//! `done` and return to the pool. Frames the NIC has no room for stay queued, in order.
//!
//! A failed NIC call (the driver crashed) loses the buffers handed in: the stack counts it
//! in `nic_errors`, forgets them, and goes on with new ones.
//!
//! ## Sockets
//! The table maps [`SockId`]s to smoltcp sockets: UDP sockets, listeners (a port and 1..=8
//! smoltcp sockets listening on it; an accepted one is replaced by a fresh listening
//! socket) and connections. Closing a connection forgets its id at once and closes it
//! gracefully; the smoltcp socket is freed when it reaches CLOSED or TIME-WAIT, or aborted
//! after [`CLOSE_LINGER_NS`]. A listening socket whose handshake the peer has not completed
//! within [`HALF_OPEN_NS`] listens again (a SYN flood cannot hold a backlog for smoltcp's
//! whole idle timeout). Ids start at a value derived from the random seed, so ids
//! of an earlier generation of the stack are (almost certainly) unknown to a new one.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use frond_interface::net::{
    Batch, Ipv4Config, NetError, Nic, Pkt, SockBuf, SockId, StackStats, BATCH_MAX, FRAME_MAX, PKT_DATA,
};
use frond_interface::{RRef, RpcError};
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Address};

use crate::arp::{Arp, ArpGuard};
use crate::rst::{Key, Seen};

/// Receive and send buffer of every TCP socket, each way.
pub const TCP_BUF: usize = 64 * 1024;
/// Most smoltcp sockets the stack holds (listening, connected and closing together).
pub const MAX_SOCKETS: usize = 32;
/// Largest backlog of a listener.
pub const MAX_BACKLOG: u8 = 8;
/// Datagrams and payload bytes a UDP socket buffers each way.
pub const UDP_PACKETS: usize = 32;
pub const UDP_BUF: usize = 16 * 1024;
/// Free buffers kept; more are freed.
pub const POOL_MAX: usize = 128;
/// Frames waiting for the NIC to take them; beyond this smoltcp is told to hold back.
pub const PENDING_MAX: usize = 4 * BATCH_MAX;
/// A closed connection whose peer does not finish the close is aborted after this.
pub const CLOSE_LINGER_NS: u64 = 30_000_000_000;
/// A handshake a listening socket answered (SYN-RECEIVED) that the peer has not
/// completed after this is given up: the socket listens again. smoltcp itself gives a
/// half-open connection the whole idle timeout (120 s), so a burst of SYNs from addresses
/// that never answer (a SYN flood) would hold every listening socket of a backlog for two
/// minutes and the service would refuse everyone meanwhile. 3 s leaves a real peer on a
/// lossy path two SYN retransmissions to complete its handshake.
pub const HALF_OPEN_NS: u64 = 3_000_000_000;
/// Keep-alive interval and idle timeout of TCP connections: a peer that vanished is
/// noticed and its connection reset, so its socket can be freed.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(120);
/// `rx` calls per poll at most (each moves up to a batch).
const RX_ROUNDS: usize = 4;
/// `tx` calls per flush at most.
const TX_ROUNDS: usize = 8;
/// Received frames queued for smoltcp before `rx` calls pause.
const RX_READY_MAX: usize = 4 * BATCH_MAX;

/// Why a stack could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackError {
    /// `Nic::info` failed.
    Nic(RpcError),
    /// The NIC's MAC is not a unicast address.
    BadMac([u8; 6]),
    /// The IPv4 configuration is unusable.
    BadConfig(&'static str),
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::Nic(e) => write!(f, "the NIC did not answer: {e}"),
            StackError::BadMac(m) => write!(f, "the NIC's MAC {} is not unicast", Mac(*m)),
            StackError::BadConfig(why) => write!(f, "bad IPv4 configuration: {why}"),
        }
    }
}

/// Formats a MAC as `52:54:00:12:34:56`.
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// Formats an IPv4 address as `10.0.2.15`.
pub struct Ip(pub [u8; 4]);

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        write!(f, "{}.{}.{}.{}", a[0], a[1], a[2], a[3])
    }
}

/// smoltcp time from nanoseconds since boot.
fn instant(now_ns: u64) -> Instant {
    Instant::from_micros((now_ns / 1000).min(i64::MAX as u64) as i64)
}

/// A 64-bit mixer (splitmix64's finaliser): spreads a time stamp over all bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ------------------------------------------------------------------------------------
// The device side.

/// Buffers and counters of the NIC side.
struct Dev {
    /// Free buffers.
    pool: Vec<RRef<Pkt>>,
    /// Received frames smoltcp has not consumed yet, in arrival order.
    rx_ready: VecDeque<RRef<Pkt>>,
    /// The batch of the last `rx` call: its `pkts` still hold the free buffers the NIC had
    /// no room for. `None` after a failed call (the batch went with it).
    rxb: Option<Batch>,
    /// The batch of the last `tx` call: its `pkts` hold frames the NIC did not take yet.
    txb: Option<Batch>,
    /// Frames smoltcp wrote that are not in `txb` yet.
    pending: VecDeque<RRef<Pkt>>,
    /// Frames the NIC took whose buffers did not come back yet.
    in_flight: u64,
    /// Where a frame goes when there is no buffer for it (it is then dropped).
    scratch: Vec<u8>,
    /// What the stack sent per connection, for screening received RSTs.
    seen: Seen,
    /// The ARP screen.
    arp: ArpGuard,
    /// Time of the poll in progress (for the ARP screen's budget).
    now_ns: u64,
    rx_frames: u64,
    tx_frames: u64,
    tx_dropped: u64,
    nic_errors: u64,
}

impl Dev {
    fn new(arp: ArpGuard) -> Self {
        Self {
            pool: Vec::new(),
            rx_ready: VecDeque::new(),
            rxb: None,
            txb: None,
            pending: VecDeque::new(),
            in_flight: 0,
            scratch: Vec::new(),
            seen: Seen::default(),
            arp,
            now_ns: 0,
            rx_frames: 0,
            tx_frames: 0,
            tx_dropped: 0,
            nic_errors: 0,
        }
    }

    /// A free buffer: from the pool, or newly allocated (`None` if the shared heap is full).
    fn take_free(&mut self) -> Option<RRef<Pkt>> {
        match self.pool.pop() {
            Some(p) => Some(p),
            None => RRef::try_new(Pkt::empty()).ok(),
        }
    }

    fn give_back(&mut self, mut p: RRef<Pkt>) {
        if self.pool.len() < POOL_MAX {
            p.len = 0;
            self.pool.push(p);
        }
    }

    /// A batch to call the NIC with: the last one, or a new one.
    fn batch(slot: &mut Option<Batch>) -> Batch {
        slot.take().unwrap_or_default()
    }

    /// Posts free buffers and collects received frames.
    fn rx_round(&mut self, nic: &dyn Nic) {
        for _ in 0..RX_ROUNDS {
            if self.rx_ready.len() >= RX_READY_MAX {
                return;
            }
            let mut b = Self::batch(&mut self.rxb);
            while let Some(p) = b.done.pop_front() {
                self.give_back(p);
            }
            while !b.pkts.is_full() {
                match self.take_free() {
                    Some(p) => {
                        if let Err(p) = b.pkts.push_back(p) {
                            self.give_back(p);
                            break;
                        }
                    }
                    None => break,
                }
            }
            match nic.rx(b) {
                Ok(mut b) => {
                    let mut got = 0;
                    while let Some(mut p) = b.done.pop_front() {
                        if p.len as usize > PKT_DATA {
                            p.len = PKT_DATA as u32;
                        }
                        self.rx_ready.push_back(p);
                        got += 1;
                    }
                    self.rx_frames += got as u64;
                    self.rxb = Some(b);
                    if got < BATCH_MAX {
                        return;
                    }
                }
                Err(_) => {
                    self.nic_errors += 1;
                    return;
                }
            }
        }
    }

    /// Hands queued frames to the NIC and takes back sent buffers. With `reclaim`, calls
    /// the NIC once even with nothing to send if buffers are out, to get them back.
    fn flush_tx(&mut self, nic: &dyn Nic, mut reclaim: bool) {
        for _ in 0..TX_ROUNDS {
            let mut b = Self::batch(&mut self.txb);
            while let Some(p) = b.done.pop_front() {
                self.give_back(p);
            }
            while !b.pkts.is_full() {
                let Some(p) = self.pending.pop_front() else { break };
                if let Err(p) = b.pkts.push_back(p) {
                    self.pending.push_front(p);
                    break;
                }
            }
            let offered = b.pkts.len();
            if offered == 0 && !(reclaim && self.in_flight > 0) {
                self.txb = Some(b);
                return;
            }
            reclaim = false;
            match nic.tx(b) {
                Ok(mut b) => {
                    let sent = offered.saturating_sub(b.pkts.len());
                    self.tx_frames += sent as u64;
                    self.in_flight += sent as u64;
                    while let Some(p) = b.done.pop_front() {
                        self.in_flight = self.in_flight.saturating_sub(1);
                        self.give_back(p);
                    }
                    let stuck = !b.pkts.is_empty();
                    self.txb = Some(b);
                    if sent == 0 || stuck || self.pending.is_empty() {
                        return;
                    }
                }
                Err(_) => {
                    // The driver died with the batch: its buffers (and those it held)
                    // are gone.
                    self.nic_errors += 1;
                    self.in_flight = 0;
                    return;
                }
            }
        }
    }
}

/// smoltcp's view of the NIC for the duration of one poll.
struct Port<'a> {
    nic: &'a dyn Nic,
    dev: &'a RefCell<Dev>,
}

struct RxTok<'a> {
    pkt: Option<RRef<Pkt>>,
    dev: &'a RefCell<Dev>,
}

struct TxTok<'a> {
    nic: &'a dyn Nic,
    dev: &'a RefCell<Dev>,
}

impl Device for Port<'_> {
    type RxToken<'b>
        = RxTok<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = TxTok<'b>
    where
        Self: 'b;

    fn receive(&mut self, _ts: Instant) -> Option<(RxTok<'_>, TxTok<'_>)> {
        let mut dev = self.dev.borrow_mut();
        loop {
            let pkt = dev.rx_ready.pop_front()?;
            let now = dev.now_ns;
            match dev.arp.screen(pkt.frame(), now) {
                Arp::Pass => {
                    drop(dev);
                    return Some((RxTok { pkt: Some(pkt), dev: self.dev }, TxTok { nic: self.nic, dev: self.dev }));
                }
                Arp::Drop => dev.give_back(pkt),
                Arp::Answer(reply) => {
                    dev.give_back(pkt);
                    if dev.pending.len() < PENDING_MAX {
                        if let Some(mut p) = dev.take_free() {
                            p.set_frame(&reply);
                            dev.pending.push_back(p);
                        }
                    }
                }
            }
        }
    }

    fn transmit(&mut self, _ts: Instant) -> Option<TxTok<'_>> {
        let mut dev = self.dev.borrow_mut();
        if dev.pending.len() >= PENDING_MAX {
            dev.flush_tx(self.nic, false);
            if dev.pending.len() >= PENDING_MAX {
                return None;
            }
        }
        Some(TxTok { nic: self.nic, dev: self.dev })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME_MAX;
        caps.max_burst_size = None;
        caps
    }
}

impl smoltcp::phy::RxToken for RxTok<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(mut self, f: F) -> R {
        // No borrow of the device across `f`: smoltcp sends its reply from inside it.
        let mut pkt = self.pkt.take();
        if let Some(p) = pkt.as_mut() {
            self.dev.borrow_mut().seen.screen(p.frame_mut());
        }
        let r = match &pkt {
            Some(p) => f(p.frame()),
            None => f(&[]),
        };
        if let Some(p) = pkt {
            self.dev.borrow_mut().give_back(p);
        }
        r
    }
}

impl Drop for RxTok<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.pkt.take() {
            if let Ok(mut dev) = self.dev.try_borrow_mut() {
                dev.give_back(p);
            }
        }
    }
}

impl smoltcp::phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let buf = if len <= PKT_DATA { self.dev.borrow_mut().take_free() } else { None };
        match buf {
            Some(mut p) => {
                p.len = len as u32;
                let r = f(&mut p.data[..len]);
                let mut dev = self.dev.borrow_mut();
                dev.seen.note_sent(&p.data[..len]);
                dev.arp.note_sent(&p.data[..len]);
                dev.pending.push_back(p);
                if dev.pending.len() >= BATCH_MAX {
                    dev.flush_tx(self.nic, false);
                }
                r
            }
            None => {
                let mut scratch = core::mem::take(&mut self.dev.borrow_mut().scratch);
                scratch.clear();
                scratch.resize(len, 0);
                let r = f(&mut scratch);
                let mut dev = self.dev.borrow_mut();
                dev.tx_dropped += 1;
                dev.scratch = scratch;
                r
            }
        }
    }
}

// ------------------------------------------------------------------------------------
// The stack.

enum Entry {
    Udp(SocketHandle),
    Listener { port: u16, backlog: u8, socks: Vec<SocketHandle> },
    Conn(SocketHandle),
}

/// A smoltcp interface on one NIC with a static IPv4 address, and its socket table.
pub struct Stack {
    iface: Interface,
    sockets: SocketSet<'static>,
    dev: RefCell<Dev>,
    table: BTreeMap<u32, Entry>,
    /// Connections closed by their owner, not yet freed, with the time of the close.
    closing: Vec<(SocketHandle, u64)>,
    /// Listening sockets in SYN-RECEIVED: since when (first seen by `maintain`) and with
    /// which peer.
    half_open: Vec<(SocketHandle, u64, Option<IpEndpoint>)>,
    /// Half-open handshakes given up after [`HALF_OPEN_NS`].
    half_open_expired: u64,
    next_id: u32,
    /// Sockets closed because a new bind or listen took their port over.
    pub taken_over: u64,
    polls: u64,
    /// Latest time seen (nanoseconds since boot); smoltcp time never goes back.
    now_ns: u64,
    mac: [u8; 6],
    cfg: Ipv4Config,
}

impl Stack {
    /// A stack on `nic` (asked for its MAC) with the static configuration `cfg`; `now_ns`
    /// seeds smoltcp's random numbers and the socket ids.
    pub fn new(nic: &dyn Nic, cfg: Ipv4Config, now_ns: u64) -> Result<Stack, StackError> {
        let info = nic.info().map_err(StackError::Nic)?;
        let mac = EthernetAddress(info.mac);
        if !mac.is_unicast() || info.mac == [0; 6] {
            return Err(StackError::BadMac(info.mac));
        }
        if cfg.prefix > 32 {
            return Err(StackError::BadConfig("prefix longer than 32"));
        }
        let addr = Ipv4Address::from(cfg.addr);
        if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() {
            return Err(StackError::BadConfig("the address is not a unicast address"));
        }
        let seed = mix(now_ns
            ^ u64::from_le_bytes([info.mac[0], info.mac[1], info.mac[2], info.mac[3], info.mac[4], info.mac[5], 0, 0]));
        let mut config = Config::new(HardwareAddress::Ethernet(mac));
        config.random_seed = seed;
        let dev = RefCell::new(Dev::new(ArpGuard::new(info.mac, cfg.addr, cfg.gateway)));
        let mut iface = Interface::new(config, &mut Port { nic, dev: &dev }, instant(now_ns));
        let mut fits = true;
        iface.update_ip_addrs(|addrs| fits = addrs.push(IpCidr::new(IpAddress::Ipv4(addr), cfg.prefix)).is_ok());
        if !fits {
            return Err(StackError::BadConfig("no room for the address"));
        }
        if cfg.gateway != [0; 4] {
            let gw = Ipv4Address::from(cfg.gateway);
            if gw.is_unspecified() || gw.is_broadcast() || gw.is_multicast() {
                return Err(StackError::BadConfig("the gateway is not a unicast address"));
            }
            iface.routes_mut().add_default_ipv4_route(gw).map_err(|_| StackError::BadConfig("route table full"))?;
        }
        Ok(Stack {
            iface,
            sockets: SocketSet::new(Vec::new()),
            dev,
            table: BTreeMap::new(),
            closing: Vec::new(),
            half_open: Vec::new(),
            half_open_expired: 0,
            next_id: ((mix(seed) >> 40) as u32) | 1,
            taken_over: 0,
            polls: 0,
            now_ns,
            mac: info.mac,
            cfg,
        })
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn config(&self) -> Ipv4Config {
        self.cfg
    }

    fn advance(&mut self, now_ns: u64) -> Instant {
        self.now_ns = self.now_ns.max(now_ns);
        instant(self.now_ns)
    }

    /// One round: receive from the NIC, let smoltcp process everything and send what it
    /// has, hand the output to the NIC, free finished sockets. True if anything happened
    /// (a frame moved or a socket's state may have changed).
    pub fn poll(&mut self, nic: &dyn Nic, now_ns: u64) -> bool {
        self.polls += 1;
        let ts = self.advance(now_ns);
        let (rx0, tx0) = {
            let dev = self.dev.get_mut();
            (dev.rx_frames, dev.tx_frames)
        };
        self.dev.get_mut().rx_round(nic);
        self.dev.get_mut().now_ns = self.now_ns;
        let r = self.iface.poll(ts, &mut Port { nic, dev: &self.dev }, &mut self.sockets);
        self.dev.get_mut().flush_tx(nic, true);
        self.maintain();
        let dev = self.dev.get_mut();
        r == PollResult::SocketStateChanged || dev.rx_frames != rx0 || dev.tx_frames != tx0
    }

    /// Sends what the sockets have to send now, without receiving: used after a socket
    /// call queued data so it leaves without waiting for the next poll.
    pub fn egress(&mut self, nic: &dyn Nic, now_ns: u64) {
        let ts = self.advance(now_ns);
        let port = &mut Port { nic, dev: &self.dev };
        for _ in 0..4 {
            if self.iface.poll_egress(ts, port, &mut self.sockets) == PollResult::None {
                break;
            }
        }
        self.dev.get_mut().flush_tx(nic, false);
    }

    /// Nanoseconds until smoltcp wants to be polled again (`None`: only when a frame comes).
    pub fn poll_delay(&mut self, now_ns: u64) -> Option<u64> {
        let ts = self.advance(now_ns);
        self.iface.poll_delay(ts, &self.sockets).map(|d| d.total_micros().saturating_mul(1000))
    }

    pub fn stats(&self) -> StackStats {
        let dev = self.dev.borrow();
        StackStats {
            rx_frames: dev.rx_frames,
            tx_frames: dev.tx_frames,
            nic_errors: dev.nic_errors,
            sockets: self.sockets.iter().count() as u32,
            polls: self.polls,
        }
    }

    /// Frames smoltcp produced that were dropped for want of a buffer.
    pub fn tx_dropped(&self) -> u64 {
        self.dev.borrow().tx_dropped
    }

    /// Received RSTs inside the window but not at its edge, and SYNs on synchronised
    /// connections, turned into challenge ACKs (see [`crate::rst`]).
    pub fn rst_challenged(&self) -> u64 {
        self.dev.borrow().seen.challenged
    }

    /// Connections the RST screen keeps a record of.
    pub fn rst_records(&self) -> usize {
        self.dev.borrow().seen.len()
    }

    /// ARP requests the ARP screen answered itself, and ARP packets it dropped (see
    /// [`crate::arp`]).
    pub fn arp_screened(&self) -> (u64, u64) {
        let dev = self.dev.borrow();
        (dev.arp.answered, dev.arp.dropped)
    }

    /// Half-open handshakes given up after [`HALF_OPEN_NS`] so far.
    pub fn half_open_expired(&self) -> u64 {
        self.half_open_expired
    }

    /// Buffers sitting in the free pool.
    pub fn pool_len(&self) -> usize {
        self.dev.borrow().pool.len()
    }

    fn socket_count(&self) -> usize {
        self.sockets.iter().count()
    }

    fn alloc_id(&mut self) -> SockId {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if id != 0 && !self.table.contains_key(&id) {
                return SockId(id);
            }
        }
    }

    fn new_listener(&mut self, port: u16) -> Result<SocketHandle, NetError> {
        let mut s =
            tcp::Socket::new(tcp::SocketBuffer::new(vec![0u8; TCP_BUF]), tcp::SocketBuffer::new(vec![0u8; TCP_BUF]));
        s.set_nagle_enabled(false);
        s.set_keep_alive(Some(KEEP_ALIVE));
        s.set_timeout(Some(TIMEOUT));
        s.listen(port).map_err(|_| NetError::InvalidArgument)?;
        Ok(self.sockets.add(s))
    }

    /// A UDP socket bound to `port`.
    pub fn udp_bind(&mut self, port: u16) -> Result<SockId, NetError> {
        if port == 0 {
            return Err(NetError::InvalidArgument);
        }
        // Take the port over from its previous holder (see `Sockets::udp_bind`).
        let holders: Vec<u32> = self
            .table
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Udp(h) if self.sockets.get::<udp::Socket>(*h).endpoint().port == port))
            .map(|(&id, _)| id)
            .collect();
        for id in holders {
            let _ = self.close(SockId(id));
            self.taken_over += 1;
        }
        if self.socket_count() >= MAX_SOCKETS {
            return Err(NetError::Exhausted);
        }
        let mut s = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; UDP_PACKETS], vec![0u8; UDP_BUF]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; UDP_PACKETS], vec![0u8; UDP_BUF]),
        );
        s.bind(port).map_err(|_| NetError::InvalidArgument)?;
        let h = self.sockets.add(s);
        let id = self.alloc_id();
        self.table.insert(id.0, Entry::Udp(h));
        Ok(id)
    }

    /// A TCP listener on `port` with `backlog` (1..=8) listening sockets.
    pub fn tcp_listen(&mut self, port: u16, backlog: u8) -> Result<SockId, NetError> {
        if port == 0 || backlog == 0 || backlog > MAX_BACKLOG {
            return Err(NetError::InvalidArgument);
        }
        // Take the port over from its previous holder (see `Sockets::tcp_listen`).
        let holders: Vec<u32> = self
            .table
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Listener { port: p, .. } if *p == port))
            .map(|(&id, _)| id)
            .collect();
        for id in holders {
            let _ = self.close(SockId(id));
            self.taken_over += 1;
        }
        if self.socket_count() + backlog as usize > MAX_SOCKETS {
            return Err(NetError::Exhausted);
        }
        let mut socks = Vec::with_capacity(backlog as usize);
        for _ in 0..backlog {
            match self.new_listener(port) {
                Ok(h) => socks.push(h),
                Err(e) => {
                    for h in socks {
                        self.sockets.remove(h);
                    }
                    return Err(e);
                }
            }
        }
        let id = self.alloc_id();
        self.table.insert(id.0, Entry::Listener { port, backlog, socks });
        Ok(id)
    }

    /// An established connection from `listener`'s backlog, if one is ready.
    pub fn tcp_accept(&mut self, listener: SockId) -> Result<Option<SockId>, NetError> {
        let Some(Entry::Listener { port, socks, .. }) = self.table.get_mut(&listener.0) else {
            return match self.table.get(&listener.0) {
                Some(_) => Err(NetError::InvalidArgument),
                None => Err(NetError::NoSuchSocket),
            };
        };
        let port = *port;
        let ready = socks.iter().position(|h| {
            matches!(self.sockets.get::<tcp::Socket>(*h).state(), tcp::State::Established | tcp::State::CloseWait)
        });
        let Some(i) = ready else { return Ok(None) };
        let h = socks.remove(i);
        // Replace it with a fresh listening socket if there is room; otherwise `maintain`
        // tops the backlog up later.
        if self.socket_count() < MAX_SOCKETS {
            if let Ok(fresh) = self.new_listener(port) {
                if let Some(Entry::Listener { socks, .. }) = self.table.get_mut(&listener.0) {
                    socks.push(fresh);
                }
            }
        }
        let id = self.alloc_id();
        self.table.insert(id.0, Entry::Conn(h));
        Ok(Some(id))
    }

    /// Receives into `buf` (`len` 0: nothing ready). UDP: one datagram (cut at
    /// [`SOCK_BUF`](frond_interface::net::SOCK_BUF)) and its source; TCP: bytes.
    pub fn recv(&mut self, s: SockId, buf: &mut SockBuf) -> Result<u32, NetError> {
        buf.len = 0;
        match self.table.get(&s.0) {
            None => Err(NetError::NoSuchSocket),
            Some(Entry::Listener { .. }) => Err(NetError::InvalidArgument),
            Some(Entry::Udp(h)) => {
                let sock = self.sockets.get_mut::<udp::Socket>(*h);
                match sock.recv() {
                    Ok((data, meta)) => {
                        let n = data.len().min(buf.data.len());
                        buf.data[..n].copy_from_slice(&data[..n]);
                        buf.len = n as u32;
                        set_peer(buf, meta.endpoint);
                        Ok(n as u32)
                    }
                    Err(_) => Ok(0),
                }
            }
            Some(Entry::Conn(h)) => {
                let sock = self.sockets.get_mut::<tcp::Socket>(*h);
                if let Some(ep) = sock.remote_endpoint() {
                    set_peer(buf, ep);
                }
                match sock.recv_slice(&mut buf.data) {
                    Ok(n) => {
                        buf.len = n as u32;
                        Ok(n as u32)
                    }
                    Err(tcp::RecvError::Finished) => Err(NetError::Closed),
                    Err(tcp::RecvError::InvalidState) => match sock.state() {
                        tcp::State::Listen | tcp::State::SynReceived | tcp::State::SynSent => Ok(0),
                        _ => Err(NetError::Closed),
                    },
                }
            }
        }
    }

    /// Sends `buf`. UDP: one datagram to `buf.addr:buf.port` (all of it or
    /// `Err(Exhausted)`); TCP: as many bytes as the send buffer takes.
    pub fn send(&mut self, s: SockId, buf: &SockBuf) -> Result<u32, NetError> {
        match self.table.get(&s.0) {
            None => Err(NetError::NoSuchSocket),
            Some(Entry::Listener { .. }) => Err(NetError::InvalidArgument),
            Some(Entry::Udp(h)) => {
                let to = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::from(buf.addr)), buf.port);
                if buf.port == 0 || buf.addr == [0; 4] {
                    return Err(NetError::InvalidArgument);
                }
                let sock = self.sockets.get_mut::<udp::Socket>(*h);
                match sock.send_slice(buf.bytes(), to) {
                    Ok(()) => Ok(buf.bytes().len() as u32),
                    Err(udp::SendError::BufferFull) => Err(NetError::Exhausted),
                    Err(udp::SendError::Unaddressable) => Err(NetError::InvalidArgument),
                }
            }
            Some(Entry::Conn(h)) => {
                let sock = self.sockets.get_mut::<tcp::Socket>(*h);
                match sock.send_slice(buf.bytes()) {
                    Ok(n) => Ok(n as u32),
                    Err(tcp::SendError::InvalidState) => match sock.state() {
                        tcp::State::SynReceived | tcp::State::SynSent => Ok(0),
                        _ => Err(NetError::Closed),
                    },
                }
            }
        }
    }

    /// Forgets `s`. UDP sockets and listeners are freed at once (a listener's pending
    /// connections are reset); a connection is closed gracefully and freed once closed.
    pub fn close(&mut self, s: SockId) -> Result<(), NetError> {
        let entry = self.table.remove(&s.0).ok_or(NetError::NoSuchSocket)?;
        match entry {
            Entry::Udp(h) => {
                self.sockets.remove(h);
            }
            Entry::Listener { socks, .. } => {
                for h in socks {
                    let sock = self.sockets.get_mut::<tcp::Socket>(h);
                    if sock.is_active() {
                        // Reset the half-open or unaccepted connection; freed once the
                        // reset went out.
                        sock.abort();
                        self.closing.push((h, self.now_ns));
                    } else {
                        self.sockets.remove(h);
                    }
                }
            }
            Entry::Conn(h) => {
                let sock = self.sockets.get_mut::<tcp::Socket>(h);
                sock.close();
                if matches!(sock.state(), tcp::State::Closed | tcp::State::TimeWait) {
                    self.sockets.remove(h);
                } else {
                    self.closing.push((h, self.now_ns));
                }
            }
        }
        Ok(())
    }

    /// True when everything sent on `s` was acknowledged (UDP: sent).
    pub fn send_drained(&self, s: SockId) -> Result<bool, NetError> {
        match self.table.get(&s.0) {
            None => Err(NetError::NoSuchSocket),
            Some(Entry::Listener { .. }) => Err(NetError::InvalidArgument),
            Some(Entry::Udp(h)) => Ok(self.sockets.get::<udp::Socket>(*h).send_queue() == 0),
            Some(Entry::Conn(h)) => Ok(self.sockets.get::<tcp::Socket>(*h).send_queue() == 0),
        }
    }

    /// Frees closed connections, re-arms listening sockets a failed handshake closed, and
    /// tops backlogs up.
    fn maintain(&mut self) {
        let now = self.now_ns;
        let mut i = 0;
        while i < self.closing.len() {
            let (h, since) = self.closing[i];
            let sock = self.sockets.get_mut::<tcp::Socket>(h);
            // Nobody reads a closed connection: drop what arrives so the window stays open
            // and the peer can finish.
            while let Ok(n) = sock.recv(|b| (b.len(), b.len())) {
                if n == 0 {
                    break;
                }
            }
            if matches!(sock.state(), tcp::State::Closed | tcp::State::TimeWait) {
                self.sockets.remove(h);
                self.closing.swap_remove(i);
                continue;
            }
            if now.saturating_sub(since) > CLOSE_LINGER_NS {
                sock.abort();
            }
            i += 1;
        }

        let mut short: Vec<(u32, u16, usize)> = Vec::new();
        // Rebuilt every round from the sockets now in SYN-RECEIVED, so entries of
        // sockets that moved on (or were freed) go; no allocation while there are none.
        let mut half_open = Vec::new();
        for (id, e) in self.table.iter() {
            if let Entry::Listener { port, backlog, socks } = e {
                for h in socks {
                    let sock = self.sockets.get_mut::<tcp::Socket>(*h);
                    match sock.state() {
                        tcp::State::Closed | tcp::State::TimeWait => {
                            let _ = sock.listen(*port);
                        }
                        tcp::State::SynReceived => {
                            let peer = sock.remote_endpoint();
                            let since = match self.half_open.iter().find(|(x, _, p)| x == h && *p == peer) {
                                Some(&(_, since, _)) => since,
                                None => now,
                            };
                            if now.saturating_sub(since) > HALF_OPEN_NS {
                                // Nothing is sent: the peer never answered the SYN-ACK.
                                sock.abort();
                                let _ = sock.listen(*port);
                                self.half_open_expired += 1;
                            } else {
                                half_open.push((*h, since, peer));
                            }
                        }
                        _ => {}
                    }
                }
                if socks.len() < *backlog as usize {
                    short.push((*id, *port, *backlog as usize - socks.len()));
                }
            }
        }
        self.half_open = half_open;
        // The RST screen remembers only connections that still exist (checked after the
        // frees above, so a record never outlives its socket by more than a poll).
        let seen = &mut self.dev.get_mut().seen;
        if !seen.is_empty() {
            let mut live: Vec<Key> = Vec::new();
            for (_, sock) in self.sockets.iter() {
                if let smoltcp::socket::Socket::Tcp(t) = sock {
                    if let (Some(r), Some(l)) = (t.remote_endpoint(), t.local_endpoint()) {
                        let IpAddress::Ipv4(a) = r.addr;
                        live.push((a.octets(), r.port, l.port));
                    }
                }
            }
            seen.retain(|k| live.contains(k));
        }
        for (id, port, missing) in short {
            for _ in 0..missing {
                if self.socket_count() >= MAX_SOCKETS {
                    return;
                }
                let Ok(h) = self.new_listener(port) else { break };
                if let Some(Entry::Listener { socks, .. }) = self.table.get_mut(&id) {
                    socks.push(h);
                }
            }
        }
    }
}

fn set_peer(buf: &mut SockBuf, ep: IpEndpoint) {
    #[allow(unreachable_patterns)]
    match ep.addr {
        IpAddress::Ipv4(a) => buf.addr = a.octets(),
        _ => buf.addr = [0; 4],
    }
    buf.port = ep.port;
}
