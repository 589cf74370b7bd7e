//! The per-packet decision: [`process`] classifies one Ethernet frame received on a port
//! and, when it is to be sent on, rewrites it in place.
//!
//! Order of the checks (the first that fails names the drop reason):
//!
//! 1. frame longer than [`FRAME_MAX`] → [`DropReason::BadLength`];
//!    shorter than an Ethernet header → [`DropReason::Truncated`];
//! 2. EtherType ARP → [`arp`](self#arp); neither ARP nor IPv4 → [`DropReason::NotIp`];
//! 3. IPv4: shorter than Ethernet + 20 bytes → `Truncated`; version ≠ 4 or IHL < 5 →
//!    `BadHeader`; header (IHL × 4) beyond the frame → `Truncated`; header checksum does
//!    not verify → `BadChecksum`; total length below the header length or beyond the frame
//!    → `BadLength` (Ethernet padding after the datagram is allowed and kept);
//! 4. destination is one of our two addresses → `ForUs`; TTL ≤ 1 → `TtlExpired` (no ICMP
//!    time-exceeded message is generated: the forwarder originates no traffic); no port's
//!    subnet holds the destination → `NoRoute` (longest prefix wins, port 0 on a tie; the
//!    input port may be the output port); the destination is not that port's static peer
//!    → `NoNeighbour`;
//! 5. otherwise the frame is forwarded: TTL − 1, header checksum adjusted (RFC 1624,
//!    equation 3), destination MAC = the output port's peer, source MAC = the output NIC's.
//!
//! # ARP
//! A request (Ethernet/IPv4, opcode 1) for the input port's own address becomes the reply
//! in place: opcode 2, target = the requester, sender = us; the Ethernet header is
//! addressed to the requester from our MAC. The frame keeps its length (42 bytes or the
//! requester's padding). Every other ARP frame is dropped as [`DropReason::Arp`]:
//! neighbours are static, nothing is learnt.
//!
//! Frames are not filtered by destination MAC: each port is a point-to-point link to its
//! static peer.
//!
//! Invariant: the frame is only written after every check passed, so a dropped frame is
//! unchanged; no input makes [`process`] panic.

use frond_interface::net::{FwdPort, FRAME_MAX};

/// Ethernet header length (no VLAN tag).
pub const ETH_HLEN: usize = 14;
/// An ARP request or reply for IPv4 over Ethernet, without padding.
pub const ARP_LEN: usize = ETH_HLEN + 28;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// Ethernet + the fixed IPv4 header.
const IP_MIN: usize = ETH_HLEN + 20;
/// Offsets in the frame.
const IP_VIHL: usize = ETH_HLEN;
const IP_TOTLEN: usize = ETH_HLEN + 2;
const IP_TTL: usize = ETH_HLEN + 8;
const IP_PROTO: usize = ETH_HLEN + 9;
const IP_CSUM: usize = ETH_HLEN + 10;
const IP_DST: usize = ETH_HLEN + 16;
const ARP_OPER: usize = ETH_HLEN + 6;
const ARP_SHA: usize = ETH_HLEN + 8;
const ARP_SPA: usize = ETH_HLEN + 14;
const ARP_THA: usize = ETH_HLEN + 18;
const ARP_TPA: usize = ETH_HLEN + 24;
/// htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4, opcode 1 (request).
const ARP_REQUEST_HEAD: [u8; 8] = [0, 1, 8, 0, 6, 4, 0, 1];

/// Why a frame was not sent on. The discriminant indexes per-reason counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Neither IPv4 nor ARP.
    NotIp,
    /// Shorter than the headers it claims.
    Truncated,
    /// IPv4 version ≠ 4 or IHL < 5.
    BadHeader,
    /// The IPv4 header checksum does not verify.
    BadChecksum,
    /// IPv4 total length inconsistent with the header or the frame, or a frame longer
    /// than [`FRAME_MAX`].
    BadLength,
    /// TTL ≤ 1 (no ICMP time-exceeded is sent).
    TtlExpired,
    /// Addressed to one of the forwarder's own addresses (it runs no IP stack).
    ForUs,
    /// No port's subnet contains the destination.
    NoRoute,
    /// The destination is in a port's subnet but is not its static peer.
    NoNeighbour,
    /// An ARP frame other than a request for the input port's address.
    Arp,
    /// Forwarder level: the output NIC did not take the frame.
    NoRoom,
    /// Forwarder level: lost in a NIC call that failed.
    NicLost,
}

impl DropReason {
    pub const COUNT: usize = 12;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::NotIp,
        DropReason::Truncated,
        DropReason::BadHeader,
        DropReason::BadChecksum,
        DropReason::BadLength,
        DropReason::TtlExpired,
        DropReason::ForUs,
        DropReason::NoRoute,
        DropReason::NoNeighbour,
        DropReason::Arp,
        DropReason::NoRoom,
        DropReason::NicLost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::NotIp => "not-ip",
            DropReason::Truncated => "truncated",
            DropReason::BadHeader => "bad-header",
            DropReason::BadChecksum => "bad-checksum",
            DropReason::BadLength => "bad-length",
            DropReason::TtlExpired => "ttl-expired",
            DropReason::ForUs => "for-us",
            DropReason::NoRoute => "no-route",
            DropReason::NoNeighbour => "no-neighbour",
            DropReason::Arp => "arp-ignored",
            DropReason::NoRoom => "no-room",
            DropReason::NicLost => "nic-lost",
        }
    }
}

/// What to do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Rewritten in place: send it on port 0 or 1.
    Forward(usize),
    /// Rewritten in place into an ARP reply: send it back on the input port.
    ArpReply,
    /// Unchanged: recycle the buffer.
    Drop(DropReason),
}

/// One port as the packet path needs it: the configuration, the NIC's own MAC, and the
/// values derived from them once so the per-packet path only compares words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortState {
    pub cfg: FwdPort,
    /// The MAC of this port's NIC.
    pub mac: [u8; 6],
    addr: u32,
    mask: u32,
    net: u32,
    /// Prefix length clamped to 32.
    prefix: u8,
    peer: u32,
    /// The Ethernet addresses of a frame sent on this port: peer MAC, then ours.
    l2: [u8; 12],
}

impl PortState {
    /// A prefix above 32 counts as 32.
    pub fn new(cfg: FwdPort, mac: [u8; 6]) -> Self {
        let addr = u32::from_be_bytes(cfg.addr);
        let mask = prefix_mask(cfg.prefix);
        let mut l2 = [0; 12];
        l2[..6].copy_from_slice(&cfg.peer_mac);
        l2[6..].copy_from_slice(&mac);
        Self {
            cfg,
            mac,
            addr,
            mask,
            net: addr & mask,
            prefix: cfg.prefix.min(32),
            peer: u32::from_be_bytes(cfg.peer_ip),
            l2,
        }
    }

    /// True if `ip` (host order) is in this port's subnet.
    #[inline]
    pub fn contains(&self, ip: u32) -> bool {
        ip & self.mask == self.net
    }
}

/// The netmask of a prefix length (above 32 counts as 32).
pub fn prefix_mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - p),
    }
}

/// The one's-complement sum of `bytes` as big-endian 16-bit words (an odd last byte is
/// padded with zero), folded to 16 bits. A header whose checksum is right sums to 0xFFFF.
#[inline]
pub fn ones_sum(bytes: &[u8]) -> u16 {
    // 2^16 ≡ 1 (mod 0xFFFF), so 32-bit words can be summed whole and folded at the end.
    let mut acc: u64 = 0;
    let mut words = bytes.chunks_exact(4);
    for w in &mut words {
        acc += u32::from_be_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let rest = words.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u16::from_be_bytes([rest[i], rest[i + 1]]) as u64;
        i += 2;
    }
    if i < rest.len() {
        acc += (rest[i] as u64) << 8;
    }
    fold(acc)
}

#[inline]
fn fold(acc: u64) -> u16 {
    let mut s = (acc & 0xFFFF_FFFF) + (acc >> 32);
    s = (s & 0xFFFF_FFFF) + (s >> 32);
    s = (s & 0xFFFF) + (s >> 16);
    s = (s & 0xFFFF) + (s >> 16);
    s as u16
}

/// RFC 1624 equation 3: the checksum `hc` of a header in which the 16-bit word `old`
/// became `new`: `HC' = ~(~HC + ~m + m')`. Equals a full recomputation for every header
/// with a non-zero word (every IPv4 header), the 0x0000/0xFFFF cases included.
#[inline]
pub fn csum_adjust(hc: u16, old: u16, new: u16) -> u16 {
    let sum = (!hc as u64) + (!old as u64) + new as u64;
    !fold(sum)
}

/// Classifies the first `len` bytes of `frame` (clamped to the slice), received on port
/// `in_port`, and rewrites them in place unless the verdict is a drop. See the module
/// documentation for the rules.
#[inline]
pub fn process(frame: &mut [u8], len: usize, in_port: usize, ports: &[PortState; 2]) -> Verdict {
    let len = len.min(frame.len());
    if len > FRAME_MAX {
        return Verdict::Drop(DropReason::BadLength);
    }
    let frame = &mut frame[..len];
    let Some(eth) = frame.first_chunk::<ETH_HLEN>() else {
        return Verdict::Drop(DropReason::Truncated);
    };
    match u16::from_be_bytes([eth[12], eth[13]]) {
        ETHERTYPE_IPV4 => ipv4(frame, ports),
        ETHERTYPE_ARP => arp(frame, in_port, ports),
        _ => Verdict::Drop(DropReason::NotIp),
    }
}

#[inline]
fn ipv4(frame: &mut [u8], ports: &[PortState; 2]) -> Verdict {
    let len = frame.len();
    let Some(h) = frame.first_chunk::<IP_MIN>() else {
        return Verdict::Drop(DropReason::Truncated);
    };
    let vihl = h[IP_VIHL];
    if vihl == 0x45 {
        // The common header: no options, so every field is at a fixed offset and the
        // header is the 20 bytes `h` already bounds.
        return ipv4_no_options(frame, ports);
    }
    let ihl = (vihl & 0x0F) as usize;
    if vihl >> 4 != 4 || ihl < 5 {
        return Verdict::Drop(DropReason::BadHeader);
    }
    let hlen = ihl * 4;
    let Some(header) = frame.get(ETH_HLEN..ETH_HLEN + hlen) else {
        return Verdict::Drop(DropReason::Truncated);
    };
    if ones_sum(header) != 0xFFFF {
        return Verdict::Drop(DropReason::BadChecksum);
    }
    let (out, ttl) = match route(h, len, hlen, ports) {
        Ok(r) => r,
        Err(r) => return Verdict::Drop(r),
    };
    let port = &ports[out];

    // Every check passed: rewrite.
    let Some(h) = frame.first_chunk_mut::<IP_MIN>() else {
        return Verdict::Drop(DropReason::Truncated);
    };
    let proto = h[IP_PROTO];
    h[IP_TTL] = ttl - 1;
    let hc = u16::from_be_bytes([h[IP_CSUM], h[IP_CSUM + 1]]);
    let hc = csum_adjust(hc, u16::from_be_bytes([ttl, proto]), u16::from_be_bytes([ttl - 1, proto]));
    h[IP_CSUM..IP_CSUM + 2].copy_from_slice(&hc.to_be_bytes());
    h[..12].copy_from_slice(&port.l2);
    Verdict::Forward(out)
}

/// [`ipv4`] for a header without options (version 4, IHL 5): the same checks in the same
/// order, on fixed offsets after one length check.
///
/// Byte order: the one's-complement sum commutes with swapping the bytes of every 16-bit
/// word (RFC 1071, 2.(B)), so the header is summed as little-endian 32-bit words without
/// byte swaps (a verifying header sums to 0xFFFF either way), and the checksum is adjusted
/// in the same byte order. The TTL/protocol word `m` becomes `m' = m − 0x0100`, so RFC
/// 1624's `~m + m'` is the constant 0xFEFF (0xFFFE byte-swapped) and
/// `HC' = ~(~HC + 0xFEFF)`, exactly equation 3.
#[inline(always)]
fn ipv4_no_options(frame: &mut [u8], ports: &[PortState; 2]) -> Verdict {
    let len = frame.len();
    let Some(h) = frame.first_chunk_mut::<IP_MIN>() else {
        return Verdict::Drop(DropReason::Truncated);
    };
    let w = |h: &[u8; IP_MIN], o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]) as u64;
    let acc = w(h, ETH_HLEN) + w(h, ETH_HLEN + 4) + w(h, ETH_HLEN + 8) + w(h, ETH_HLEN + 12) + w(h, ETH_HLEN + 16);
    if fold(acc) != 0xFFFF {
        return Verdict::Drop(DropReason::BadChecksum);
    }
    let (out, ttl) = match route(h, len, IP_MIN - ETH_HLEN, ports) {
        Ok(r) => r,
        Err(r) => return Verdict::Drop(r),
    };
    let port = &ports[out];
    h[IP_TTL] = ttl - 1;
    let hc = u16::from_le_bytes([h[IP_CSUM], h[IP_CSUM + 1]]);
    let hc = !fold((!hc) as u64 + 0xFFFE);
    h[IP_CSUM..IP_CSUM + 2].copy_from_slice(&hc.to_le_bytes());
    h[..12].copy_from_slice(&port.l2);
    Verdict::Forward(out)
}

/// The checks both IPv4 paths make after the header checksum, in this order: total
/// length (at least the header `hlen`, within the frame of `len` bytes), not for us, TTL,
/// route, neighbour. The output port and the TTL, or why the frame is dropped.
#[inline(always)]
fn route(h: &[u8; IP_MIN], len: usize, hlen: usize, ports: &[PortState; 2]) -> Result<(usize, u8), DropReason> {
    let total = u16::from_be_bytes([h[IP_TOTLEN], h[IP_TOTLEN + 1]]) as usize;
    if total < hlen || ETH_HLEN + total > len {
        return Err(DropReason::BadLength);
    }
    let dst = u32::from_be_bytes([h[IP_DST], h[IP_DST + 1], h[IP_DST + 2], h[IP_DST + 3]]);
    if dst == ports[0].addr || dst == ports[1].addr {
        return Err(DropReason::ForUs);
    }
    let ttl = h[IP_TTL];
    if ttl <= 1 {
        return Err(DropReason::TtlExpired);
    }
    let out = match (ports[0].contains(dst), ports[1].contains(dst)) {
        (true, true) => (ports[1].prefix > ports[0].prefix) as usize,
        (true, false) => 0,
        (false, true) => 1,
        (false, false) => return Err(DropReason::NoRoute),
    };
    if dst != ports[out].peer {
        return Err(DropReason::NoNeighbour);
    }
    Ok((out, ttl))
}

#[inline]
fn arp(frame: &mut [u8], in_port: usize, ports: &[PortState; 2]) -> Verdict {
    let Some(a) = frame.first_chunk_mut::<ARP_LEN>() else {
        return Verdict::Drop(DropReason::Truncated);
    };
    let Some(port) = ports.get(in_port) else {
        return Verdict::Drop(DropReason::Arp);
    };
    if a[ETH_HLEN..ETH_HLEN + 8] != ARP_REQUEST_HEAD || a[ARP_TPA..ARP_TPA + 4] != port.cfg.addr {
        return Verdict::Drop(DropReason::Arp);
    }
    let mut sha = [0u8; 6];
    sha.copy_from_slice(&a[ARP_SHA..ARP_SHA + 6]);
    let mut spa = [0u8; 4];
    spa.copy_from_slice(&a[ARP_SPA..ARP_SPA + 4]);
    a[..6].copy_from_slice(&sha);
    a[6..12].copy_from_slice(&port.mac);
    a[ARP_OPER + 1] = 2;
    a[ARP_SHA..ARP_SHA + 6].copy_from_slice(&port.mac);
    a[ARP_SPA..ARP_SPA + 4].copy_from_slice(&port.cfg.addr);
    a[ARP_THA..ARP_THA + 6].copy_from_slice(&sha);
    a[ARP_TPA..ARP_TPA + 4].copy_from_slice(&spa);
    Verdict::ArpReply
}

/// The EtherType of a frame (0 if it is shorter than an Ethernet header).
#[inline]
pub fn ethertype(frame: &[u8]) -> u16 {
    match frame.first_chunk::<ETH_HLEN>() {
        Some(eth) => u16::from_be_bytes([eth[12], eth[13]]),
        None => 0,
    }
}
