//! Host tests: the packet path against straightforward reference code, and the forwarder
//! against fake NICs on the host shared heap.

use crate::packet::{ARP_LEN, ETH_HLEN};
use crate::*;
use frond_interface::net::{
    Batch, FwdConfig, FwdPort, Nic, NicInfo, NicStats, Pkt, BATCH_MAX, FRAME_MAX, PKT_DATA,
};
use frond_interface::{RRef, RpcError, RpcResult};
use rref::host::HostHeap;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::vec;
use std::vec::Vec;

// ------------------------------------------------------------------------------------
// Fixtures.

/// xorshift64*: deterministic test randomness.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn fill(&mut self, b: &mut [u8]) {
        for x in b {
            *x = self.byte();
        }
    }
}

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x00];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
const PEER_A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x00, 0x0A];
const PEER_B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x00, 0x0B];
const ADDR_A: [u8; 4] = [10, 0, 0, 1];
const ADDR_B: [u8; 4] = [10, 0, 1, 1];
const PEER_A: [u8; 4] = [10, 0, 0, 2];
const PEER_B: [u8; 4] = [10, 0, 1, 2];

fn cfg(batch: u16) -> FwdConfig {
    FwdConfig {
        ports: [
            FwdPort { addr: ADDR_A, prefix: 24, peer_ip: PEER_A, peer_mac: PEER_A_MAC },
            FwdPort { addr: ADDR_B, prefix: 24, peer_ip: PEER_B, peer_mac: PEER_B_MAC },
        ],
        batch,
        idle_rounds: 0,
        coalesce: 0,
    }
}

fn ports() -> [PortState; 2] {
    let c = cfg(8);
    [PortState::new(c.ports[0], MAC_A), PortState::new(c.ports[1], MAC_B)]
}

/// Full recomputation of an IPv4 header checksum, the checksum field read as zero.
fn ref_csum(h: &[u8]) -> u16 {
    let mut s: u32 = 0;
    let mut i = 0;
    while i + 1 < h.len() {
        if i != 10 {
            s += u16::from_be_bytes([h[i], h[i + 1]]) as u32;
        }
        i += 2;
    }
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    !(s as u16)
}

/// A header verifies if all its words, checksum included, sum to 0xFFFF.
fn ref_verifies(h: &[u8]) -> bool {
    let mut s: u32 = 0;
    let mut i = 0;
    while i + 1 < h.len() {
        s += u16::from_be_bytes([h[i], h[i + 1]]) as u32;
        i += 2;
    }
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    s == 0xFFFF
}

fn set_csum(f: &mut [u8]) {
    let hlen = (f[ETH_HLEN] & 0x0F) as usize * 4;
    let c = ref_csum(&f[ETH_HLEN..ETH_HLEN + hlen]);
    f[ETH_HLEN + 10..ETH_HLEN + 12].copy_from_slice(&c.to_be_bytes());
}

/// An Ethernet + IPv4 + UDP frame with a correct header checksum (`options` bytes of IP
/// options, a multiple of 4).
fn udp_frame(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], ttl: u8, options: usize, payload: &[u8]) -> Vec<u8> {
    let hlen = 20 + options;
    let total = hlen + 8 + payload.len();
    let mut f = Vec::with_capacity(ETH_HLEN + total);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.push(0x40 | (hlen / 4) as u8);
    f.push(0);
    f.extend_from_slice(&(total as u16).to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, ttl, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    for i in 0..options {
        f.push(if i == 0 { 1 } else { 0 }); // NOPs then end-of-options
    }
    f.extend_from_slice(&4000u16.to_be_bytes());
    f.extend_from_slice(&5000u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    set_csum(&mut f);
    f
}

/// A frame from peer A to peer B.
fn a_to_b(ttl: u8, payload: &[u8]) -> Vec<u8> {
    udp_frame(PEER_A_MAC, MAC_A, PEER_A, PEER_B, ttl, 0, payload)
}

fn b_to_a(ttl: u8, payload: &[u8]) -> Vec<u8> {
    udp_frame(PEER_B_MAC, MAC_B, PEER_B, PEER_A, ttl, 0, payload)
}

fn arp_request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4], pad_to: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xFF; 6]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    while f.len() < pad_to {
        f.push(0xA5);
    }
    f
}

/// Runs `process` on a copy of `f` (in a full packet buffer, like the forwarder does).
fn run(f: &[u8], in_port: usize) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; PKT_DATA];
    buf[..f.len()].copy_from_slice(f);
    let v = process(&mut buf, f.len(), in_port, &ports());
    buf.truncate(f.len());
    (v, buf)
}

/// Checks `out` is `inp` forwarded on port `j`: MACs rewritten, TTL − 1, checksum equal
/// to a full recomputation, every other byte untouched.
fn assert_forwarded(inp: &[u8], out: &[u8], j: usize) {
    let (peer_mac, mac) = if j == 0 { (PEER_A_MAC, MAC_A) } else { (PEER_B_MAC, MAC_B) };
    assert_eq!(out.len(), inp.len());
    assert_eq!(out[..6], peer_mac, "destination MAC is the output port's peer");
    assert_eq!(out[6..12], mac, "source MAC is the output NIC's");
    assert_eq!(out[ETH_HLEN + 8], inp[ETH_HLEN + 8] - 1, "TTL decremented");
    let hlen = (out[ETH_HLEN] & 0x0F) as usize * 4;
    let h = &out[ETH_HLEN..ETH_HLEN + hlen];
    assert_eq!(u16::from_be_bytes([h[10], h[11]]), ref_csum(h), "incremental checksum = full recomputation");
    assert!(ref_verifies(h));
    for i in 12..inp.len() {
        if i != ETH_HLEN + 8 && i != ETH_HLEN + 10 && i != ETH_HLEN + 11 {
            assert_eq!(out[i], inp[i], "byte {i} must not change");
        }
    }
}

// ------------------------------------------------------------------------------------
// The packet path.

#[test]
fn forwards_valid_udp_both_ways() {
    let payload: Vec<u8> = (0..200u32).map(|i| (i * 7) as u8).collect();

    let inp = a_to_b(64, &payload);
    let (v, out) = run(&inp, 0);
    assert_eq!(v, Verdict::Forward(1));
    assert_eq!(out[ETH_HLEN + 8], 63);
    assert_forwarded(&inp, &out, 1);
    assert_eq!(out[ETH_HLEN + 28..], payload[..], "UDP payload untouched");

    let inp = b_to_a(64, &payload);
    let (v, out) = run(&inp, 1);
    assert_eq!(v, Verdict::Forward(0));
    assert_eq!(out[ETH_HLEN + 8], 63);
    assert_forwarded(&inp, &out, 0);

    // IP options (IHL 6 and 15) are covered by the checksum and kept.
    for opts in [4, 40] {
        let inp = udp_frame(PEER_A_MAC, MAC_A, PEER_A, PEER_B, 2, opts, &payload);
        let (v, out) = run(&inp, 0);
        assert_eq!(v, Verdict::Forward(1), "options {opts}");
        assert_eq!(out[ETH_HLEN + 8], 1);
        assert_forwarded(&inp, &out, 1);
    }

    // Ethernet padding after a short datagram is allowed and untouched.
    let mut inp = a_to_b(64, &[1, 2, 3]);
    inp.resize(60, 0xEE);
    let (v, out) = run(&inp, 0);
    assert_eq!(v, Verdict::Forward(1));
    assert_forwarded(&inp, &out, 1);

    // The input port does not matter for IPv4; the route does (hairpin included).
    let inp = udp_frame(PEER_B_MAC, MAC_B, [10, 0, 1, 9], PEER_B, 9, 0, &payload);
    let (v, out) = run(&inp, 1);
    assert_eq!(v, Verdict::Forward(1));
    assert_forwarded(&inp, &out, 1);
}

#[test]
fn each_drop_reason() {
    use DropReason::*;
    let good = a_to_b(64, &[0x55; 32]);
    let with = |edit: &dyn Fn(&mut Vec<u8>), fix_csum: bool| {
        let mut f = good.clone();
        edit(&mut f);
        if fix_csum {
            set_csum(&mut f);
        }
        f
    };
    let cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
        ("IPv6 ethertype", with(&|f| f[12..14].copy_from_slice(&[0x86, 0xDD]), false), NotIp),
        ("VLAN tag", with(&|f| f[12..14].copy_from_slice(&[0x81, 0x00]), false), NotIp),
        ("empty", Vec::new(), Truncated),
        ("13 bytes", good[..13].to_vec(), Truncated),
        ("IPv4 header cut", good[..33].to_vec(), Truncated),
        ("options beyond the frame", with(&|f| { f[14] = 0x4F; f.truncate(14 + 40); }, false), Truncated),
        ("ARP cut", arp_request(PEER_A_MAC, PEER_A, ADDR_A, 0)[..41].to_vec(), Truncated),
        ("version 6", with(&|f| f[14] = 0x65, true), BadHeader),
        ("IHL 4", with(&|f| f[14] = 0x44, true), BadHeader),
        ("IHL 0", with(&|f| f[14] = 0x40, true), BadHeader),
        ("checksum off by one", with(&|f| f[25] ^= 1, false), BadChecksum),
        ("source changed, checksum not", with(&|f| f[26] ^= 0x80, false), BadChecksum),
        ("total length beyond frame", with(&|f| f[16..18].copy_from_slice(&200u16.to_be_bytes()), true), BadLength),
        ("total length below header", with(&|f| f[16..18].copy_from_slice(&19u16.to_be_bytes()), true), BadLength),
        ("frame longer than FRAME_MAX", with(&|f| f.resize(FRAME_MAX + 1, 0), false), BadLength),
        ("TTL 1", with(&|f| f[22] = 1, true), TtlExpired),
        ("TTL 0", with(&|f| f[22] = 0, true), TtlExpired),
        ("to our port A address", with(&|f| f[30..34].copy_from_slice(&ADDR_A), true), ForUs),
        ("to our port B address", with(&|f| f[30..34].copy_from_slice(&ADDR_B), true), ForUs),
        ("to us with TTL 1", with(&|f| { f[30..34].copy_from_slice(&ADDR_B); f[22] = 1 }, true), ForUs),
        ("no subnet", with(&|f| f[30..34].copy_from_slice(&[192, 168, 1, 1]), true), NoRoute),
        ("broadcast", with(&|f| f[30..34].copy_from_slice(&[255; 4]), true), NoRoute),
        ("not the peer", with(&|f| f[30..34].copy_from_slice(&[10, 0, 1, 77]), true), NoNeighbour),
        ("subnet broadcast", with(&|f| f[30..34].copy_from_slice(&[10, 0, 1, 255]), true), NoNeighbour),
        ("ARP for someone else", arp_request(PEER_A_MAC, PEER_A, [10, 0, 0, 9], 0), Arp),
        ("ARP for the other port's address", arp_request(PEER_A_MAC, PEER_A, ADDR_B, 0), Arp),
        ("ARP reply", { let mut f = arp_request(PEER_A_MAC, PEER_A, ADDR_A, 0); f[21] = 2; f }, Arp),
        ("ARP htype 6", { let mut f = arp_request(PEER_A_MAC, PEER_A, ADDR_A, 0); f[15] = 6; f }, Arp),
    ];
    for (what, f, reason) in cases {
        let (v, out) = run(&f, 0);
        assert_eq!(v, Verdict::Drop(reason), "{what}");
        assert_eq!(out, f, "{what}: a dropped frame is unchanged");
    }
    // The good frame itself passes (so each case above fails for its one change).
    assert_eq!(run(&good, 0).0, Verdict::Forward(1));
    // A length beyond the slice is clamped to it, never trusted: the exact frame passes,
    // a full packet buffer (longer than FRAME_MAX) does not.
    let mut buf = good.clone();
    assert_eq!(process(&mut buf, 100_000, 0, &ports()), Verdict::Forward(1));
    let mut buf = vec![0u8; PKT_DATA];
    buf[..good.len()].copy_from_slice(&good);
    let before = buf.clone();
    assert_eq!(process(&mut buf, 100_000, 0, &ports()), Verdict::Drop(BadLength));
    assert_eq!(buf, before);
}

#[test]
fn arp_reply_in_place() {
    for pad in [0, 60] {
        let req = arp_request(PEER_A_MAC, PEER_A, ADDR_A, pad);
        let (v, out) = run(&req, 0);
        assert_eq!(v, Verdict::ArpReply);
        assert_eq!(out.len(), req.len(), "length unchanged");
        assert_eq!(out[..6], PEER_A_MAC, "to the requester");
        assert_eq!(out[6..12], MAC_A, "from us");
        assert_eq!(out[12..14], [0x08, 0x06]);
        assert_eq!(out[14..20], [0, 1, 0x08, 0, 6, 4]);
        assert_eq!(out[20..22], [0, 2], "opcode 2");
        assert_eq!(out[22..28], MAC_A, "sender MAC = ours");
        assert_eq!(out[28..32], ADDR_A, "sender IP = the asked address");
        assert_eq!(out[32..38], PEER_A_MAC, "target MAC = requester");
        assert_eq!(out[38..42], PEER_A, "target IP = requester");
        assert_eq!(out[ARP_LEN..], req[ARP_LEN..], "padding untouched");
    }
    // Port B answers for its own address only.
    let req = arp_request(PEER_B_MAC, PEER_B, ADDR_B, 0);
    let (v, out) = run(&req, 1);
    assert_eq!(v, Verdict::ArpReply);
    assert_eq!(out[6..12], MAC_B);
    assert_eq!(out[28..32], ADDR_B);
    assert_eq!(run(&req, 0).0, Verdict::Drop(DropReason::Arp));
    // An input port that does not exist answers nothing.
    assert_eq!(run(&req, 2).0, Verdict::Drop(DropReason::Arp));
}

#[test]
fn ones_sum_matches_reference() {
    let mut rng = Rng::new(1);
    for _ in 0..5000 {
        let n = rng.below(80) as usize;
        let mut b = vec![0u8; n];
        rng.fill(&mut b);
        let mut s: u64 = 0;
        for (i, x) in b.iter().enumerate() {
            s += if i % 2 == 0 { (*x as u64) << 8 } else { *x as u64 };
        }
        while s > 0xFFFF {
            s = (s & 0xFFFF) + (s >> 16);
        }
        assert_eq!(ones_sum(&b), s as u16, "{b:?}");
    }
}

/// RFC 1624: the incremental update equals a full recomputation, for arbitrary word
/// changes and for the TTL decrement of `process`, with the 0x0000/0xFFFF edges.
#[test]
fn incremental_checksum_equals_recomputation() {
    let mut rng = Rng::new(2);
    // Arbitrary one-word changes (never the version word, so the header is never all zero).
    for _ in 0..100_000 {
        let mut h = [0u8; 20];
        rng.fill(&mut h);
        h[0] = 0x45;
        let c = ref_csum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        let k = 1 + rng.below(9) as usize;
        let k = if k == 5 { 6 } else { k };
        let old = u16::from_be_bytes([h[2 * k], h[2 * k + 1]]);
        let new = match rng.below(4) {
            0 => 0,
            1 => 0xFFFF,
            _ => rng.next() as u16,
        };
        h[2 * k..2 * k + 2].copy_from_slice(&new.to_be_bytes());
        assert_eq!(csum_adjust(c, old, new), ref_csum(&h), "{h:?}");
    }

    // The TTL decrement through `process`, on random headers.
    let mut zero_before = 0;
    let mut zero_after = 0;
    let mut alt_zero = 0;
    for i in 0..100_000u32 {
        let mut f = a_to_b(2 + rng.below(254) as u8, &[9; 8]);
        f[15] = rng.byte(); // TOS
        rng.fill(&mut f[18..22]); // id, flags/fragment
        f[23] = rng.byte(); // protocol
        rng.fill(&mut f[26..30]); // source
        match i % 4 {
            // Choose the identification so the checksum before the decrement is 0x0000...
            1 => {
                f[18..20].copy_from_slice(&[0, 0]);
                f[24..26].copy_from_slice(&[0, 0]);
                let rest = !ref_csum(&f[14..34]);
                f[18..20].copy_from_slice(&(!rest).to_be_bytes());
            }
            // ... or after it.
            2 => {
                f[18..20].copy_from_slice(&[0, 0]);
                f[22] -= 1;
                let rest = !ref_csum(&f[14..34]);
                f[18..20].copy_from_slice(&(!rest).to_be_bytes());
                f[22] += 1;
            }
            _ => {}
        }
        set_csum(&mut f);
        let before = u16::from_be_bytes([f[24], f[25]]);
        // 0xFFFF is the other one's-complement zero: it verifies where 0x0000 is computed.
        if i % 4 == 3 && before == 0 {
            f[24..26].copy_from_slice(&[0xFF, 0xFF]);
            assert!(ref_verifies(&f[14..34]));
            alt_zero += 1;
        }
        if i % 4 == 1 {
            // Build the 0xFFFF case from the zero one as well.
            if rng.below(2) == 0 {
                f[24..26].copy_from_slice(&[0xFF, 0xFF]);
                alt_zero += 1;
            }
            zero_before += 1;
            assert_eq!(before, 0);
        }
        let (v, out) = run(&f, 0);
        assert_eq!(v, Verdict::Forward(1), "{f:?}");
        assert_forwarded(&f, &out, 1);
        if u16::from_be_bytes([out[24], out[25]]) == 0 {
            zero_after += 1;
        }
    }
    assert!(zero_before > 10_000 && zero_after >= 25_000 && alt_zero > 10_000, "{zero_before} {zero_after} {alt_zero}");
}

/// A straightforward restatement of the rules, to check `process` against.
fn model(f: &[u8], len: usize, in_port: usize) -> (Verdict, Vec<u8>) {
    use DropReason::*;
    let c = cfg(8);
    let macs = [MAC_A, MAC_B];
    let len = len.min(f.len());
    let f = &f[..len];
    let drop = |r| (Verdict::Drop(r), f.to_vec());
    if len > FRAME_MAX {
        return drop(BadLength);
    }
    if len < 14 {
        return drop(Truncated);
    }
    let et = u16::from_be_bytes([f[12], f[13]]);
    if et == 0x0806 {
        if len < 42 {
            return drop(Truncated);
        }
        if in_port > 1 || f[14..22] != [0, 1, 8, 0, 6, 4, 0, 1] || f[38..42] != c.ports[in_port].addr {
            return drop(Arp);
        }
        let mut o = f.to_vec();
        o[..6].copy_from_slice(&f[22..28]);
        o[6..12].copy_from_slice(&macs[in_port]);
        o[21] = 2;
        o[22..28].copy_from_slice(&macs[in_port]);
        o[28..32].copy_from_slice(&c.ports[in_port].addr);
        o[32..38].copy_from_slice(&f[22..28]);
        o[38..42].copy_from_slice(&f[28..32]);
        return (Verdict::ArpReply, o);
    }
    if et != 0x0800 {
        return drop(NotIp);
    }
    if len < 34 {
        return drop(Truncated);
    }
    if f[14] >> 4 != 4 || f[14] & 15 < 5 {
        return drop(BadHeader);
    }
    let hlen = (f[14] & 15) as usize * 4;
    if len < 14 + hlen {
        return drop(Truncated);
    }
    if !ref_verifies(&f[14..14 + hlen]) {
        return drop(BadChecksum);
    }
    let total = u16::from_be_bytes([f[16], f[17]]) as usize;
    if total < hlen || 14 + total > len {
        return drop(BadLength);
    }
    let dst: [u8; 4] = f[30..34].try_into().unwrap();
    if dst == c.ports[0].addr || dst == c.ports[1].addr {
        return drop(ForUs);
    }
    if f[22] <= 1 {
        return drop(TtlExpired);
    }
    // Both test subnets are /24 and disjoint.
    let j = match c.ports.iter().position(|p| p.addr[..3] == dst[..3]) {
        Some(j) => j,
        None => return drop(NoRoute),
    };
    if dst != c.ports[j].peer_ip {
        return drop(NoNeighbour);
    }
    let mut o = f.to_vec();
    o[..6].copy_from_slice(&c.ports[j].peer_mac);
    o[6..12].copy_from_slice(&macs[j]);
    o[22] -= 1;
    o[24..26].copy_from_slice(&[0, 0]);
    let cs = ref_csum(&o[14..14 + hlen]);
    o[24..26].copy_from_slice(&cs.to_be_bytes());
    (Verdict::Forward(j), o)
}

/// A random frame: pure noise, or a valid frame (IPv4 or ARP) with random damage.
fn random_frame(rng: &mut Rng) -> (Vec<u8>, usize) {
    let mut f = match rng.below(6) {
        0 => {
            let mut f = vec![0u8; rng.below(PKT_DATA as u64 + 1) as usize];
            rng.fill(&mut f);
            f
        }
        1 => {
            let mut f = arp_request(PEER_A_MAC, PEER_A, if rng.below(2) == 0 { ADDR_A } else { ADDR_B }, 0);
            f.resize(42 + rng.below(30) as usize, 0);
            f
        }
        2 => {
            // IPv4 ethertype and version with random rest.
            let mut f = vec![0u8; rng.below(120) as usize];
            rng.fill(&mut f);
            if f.len() >= 15 {
                f[12..14].copy_from_slice(&[8, 0]);
                f[14] = 0x40 | (rng.byte() & 15);
            }
            f
        }
        _ => {
            let dst = match rng.below(6) {
                0 => PEER_A,
                5 => [rng.byte(), rng.byte(), 7, 1],
                1 => ADDR_B,
                2 => [10, 0, 1, rng.byte()],
                _ => PEER_B,
            };
            let n = rng.below(1500) as usize;
            let mut f = udp_frame(PEER_A_MAC, MAC_A, PEER_A, dst, rng.byte(), 4 * rng.below(3) as usize, &vec![7; n]);
            f.truncate(f.len().min(FRAME_MAX + 10));
            f
        }
    };
    // Damage: flip bytes, cut the frame, or lie about the length.
    let damage = rng.below(8);
    if damage < 3 && !f.is_empty() {
        for _ in 0..=damage {
            let i = rng.below(f.len().min(64) as u64) as usize;
            f[i] = rng.byte();
        }
    }
    if damage == 3 {
        let n = rng.below(f.len() as u64 + 1) as usize;
        f.truncate(n);
    }
    let len = if damage == 4 { rng.below(4000) as usize } else { f.len() };
    (f, len)
}

#[test]
fn garbage_never_panics_and_matches_the_model() {
    let mut rng = Rng::new(3);
    let ps = ports();
    let mut seen = std::collections::HashMap::new();
    for _ in 0..30_000 {
        let (f, len) = random_frame(&mut rng);
        let in_port = rng.below(3) as usize;
        let (want, want_out) = model(&f, len, in_port);
        let mut buf = f.clone();
        let v = process(&mut buf, len, in_port, &ps);
        assert_eq!(v, want, "{f:?} len {len} port {in_port}");
        let n = len.min(f.len());
        assert_eq!(buf[..n], want_out[..], "{f:?}");
        assert_eq!(buf[n..], f[n..], "bytes beyond the length untouched");
        if let Verdict::Forward(j) = v {
            assert_forwarded(&f[..n], &buf[..n], j);
        }
        *seen.entry(std::format!("{v:?}")).or_insert(0u32) += 1;
    }
    // The generator reaches every outcome `process` can give.
    for r in &DropReason::ALL[..10] {
        assert!(seen.contains_key(&std::format!("{:?}", Verdict::Drop(*r))), "{r:?} never seen: {seen:?}");
    }
    assert!(seen.get("Forward(1)").copied().unwrap_or(0) > 1000, "{seen:?}");
    assert!(seen.get("ArpReply").copied().unwrap_or(0) > 100, "{seen:?}");
}

#[test]
fn prefixes_and_longest_match() {
    assert_eq!(prefix_mask(0), 0);
    assert_eq!(prefix_mask(8), 0xFF00_0000);
    assert_eq!(prefix_mask(32), u32::MAX);
    assert_eq!(prefix_mask(200), u32::MAX);
    // Port 0 holds 10.0.0.0/8, port 1 the more specific 10.0.1.0/24.
    let mut c = cfg(8);
    c.ports[0].prefix = 8;
    let ps = [PortState::new(c.ports[0], MAC_A), PortState::new(c.ports[1], MAC_B)];
    let f = a_to_b(64, &[0; 4]);
    let mut buf = f.clone();
    assert_eq!(process(&mut buf, f.len(), 0, &ps), Verdict::Forward(1));
    // Prefix 0 routes everything to port 0, whose only neighbour is its peer.
    c.ports[0].prefix = 0;
    let ps = [PortState::new(c.ports[0], MAC_A), PortState::new(c.ports[1], MAC_B)];
    let f = udp_frame(PEER_B_MAC, MAC_B, PEER_B, [8, 8, 8, 8], 64, 0, &[0; 4]);
    let mut buf = f.clone();
    assert_eq!(process(&mut buf, f.len(), 1, &ps), Verdict::Drop(DropReason::NoNeighbour));
    let f = udp_frame(PEER_B_MAC, MAC_B, PEER_B, PEER_A, 64, 0, &[0; 4]);
    let mut buf = f.clone();
    assert_eq!(process(&mut buf, f.len(), 1, &ps), Verdict::Forward(0));
    assert_eq!(clamp_batch(0), (1, true));
    assert_eq!(clamp_batch(8), (8, false));
    assert_eq!(clamp_batch(33), (BATCH_MAX, true));
}

// ------------------------------------------------------------------------------------
// The forwarder, with fake NICs.

struct FakeState {
    /// Frames waiting to be received.
    incoming: VecDeque<Vec<u8>>,
    /// Posted receive buffers (at most `rx_ring`).
    rx_free: Vec<RRef<Pkt>>,
    rx_ring: usize,
    /// Buffers taken for sending; handed back in `done` on the next `tx` call.
    tx_inflight: Vec<RRef<Pkt>>,
    tx_ring: usize,
    sent: Vec<Vec<u8>>,
    /// Fail the next n calls.
    fail_rx: u32,
    fail_tx: u32,
    /// Buffers handed in to failed calls.
    lost: usize,
    max_posted: usize,
    max_handed: usize,
    rx_calls: u64,
    tx_calls: u64,
    polling: bool,
    waits: u64,
    /// The `frames` of each `wait_rx`.
    wait_frames: Vec<u16>,
}

struct FakeNic {
    mac: [u8; 6],
    st: Mutex<FakeState>,
}

impl FakeNic {
    fn new(mac: [u8; 6], rx_ring: usize, tx_ring: usize) -> Self {
        FakeNic {
            mac,
            st: Mutex::new(FakeState {
                incoming: VecDeque::new(),
                rx_free: Vec::new(),
                rx_ring,
                tx_inflight: Vec::new(),
                tx_ring,
                sent: Vec::new(),
                fail_rx: 0,
                fail_tx: 0,
                lost: 0,
                max_posted: 0,
                max_handed: 0,
                rx_calls: 0,
                tx_calls: 0,
                polling: false,
                waits: 0,
                wait_frames: Vec::new(),
            }),
        }
    }
    fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.st.lock().unwrap()
    }
    fn inject(&self, f: Vec<u8>) {
        self.st().incoming.push_back(f);
    }
    /// Buffers the NIC holds.
    fn held(&self) -> usize {
        let s = self.st();
        s.rx_free.len() + s.tx_inflight.len()
    }
    fn take_sent(&self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.st().sent)
    }
}

impl Nic for FakeNic {
    fn info(&self) -> RpcResult<NicInfo> {
        Ok(NicInfo { mac: self.mac, queue_size: 64, bdf: 0xFFFF })
    }
    fn stats(&self) -> RpcResult<NicStats> {
        Ok(NicStats::default())
    }
    fn tx(&self, mut b: Batch) -> RpcResult<Batch> {
        let mut s = self.st();
        s.tx_calls += 1;
        s.max_handed = s.max_handed.max(b.pkts.len());
        if s.fail_tx > 0 {
            s.fail_tx -= 1;
            s.lost += b.pkts.len();
            return Err(RpcError::Panicked);
        }
        while !b.done.is_full() {
            let Some(p) = s.tx_inflight.pop() else { break };
            b.done.push_back(p).ok().unwrap();
        }
        while s.tx_inflight.len() < s.tx_ring {
            let Some(p) = b.pkts.pop_front() else { break };
            if p.frame().len() <= FRAME_MAX {
                s.sent.push(p.frame().to_vec());
            }
            s.tx_inflight.push(p);
        }
        Ok(b)
    }
    fn rx(&self, mut b: Batch) -> RpcResult<Batch> {
        let mut s = self.st();
        s.rx_calls += 1;
        s.max_posted = s.max_posted.max(b.pkts.len());
        if s.fail_rx > 0 {
            s.fail_rx -= 1;
            s.lost += b.pkts.len();
            return Err(RpcError::Killed);
        }
        while s.rx_free.len() < s.rx_ring {
            let Some(p) = b.pkts.pop_front() else { break };
            s.rx_free.push(p);
        }
        while !b.done.is_full() && !s.incoming.is_empty() {
            let Some(mut p) = s.rx_free.pop() else { break };
            let f = s.incoming.pop_front().unwrap();
            p.set_frame(&f);
            b.done.push_back(p).ok().unwrap();
        }
        Ok(b)
    }
    fn wait(&self, _timeout_ns: u64) -> RpcResult<()> {
        self.st().waits += 1;
        Ok(())
    }
    fn wait_rx(&self, frames: u16, _timeout_ns: u64) -> RpcResult<()> {
        let mut st = self.st();
        st.waits += 1;
        st.wait_frames.push(frames);
        Ok(())
    }
    fn set_polling(&self, on: bool) -> RpcResult<()> {
        self.st().polling = on;
        Ok(())
    }
}

/// `queued`: frames in the forwarder's out queues, not taken by a NIC yet.
fn assert_adds_up(c: &Counters, queued: usize) {
    assert_eq!(c.rx_frames, c.forwarded + c.arp_replies + c.dropped + queued as u64, "{c:?}");
    assert_eq!(c.dropped, c.drops.iter().sum::<u64>(), "{c:?}");
    assert_eq!(c.tx_frames, c.forwarded + c.arp_replies, "{c:?}");
}

#[test]
fn forwarder_moves_frames_both_ways() {
    HostHeap::install();
    let a = FakeNic::new(MAC_A, 64, 64);
    let b = FakeNic::new(MAC_B, 64, 64);
    let mut fwd = Forwarder::new([&a, &b], &cfg(8), 128).unwrap();
    assert!(a.st().polling && b.st().polling, "polling mode on");
    assert_eq!(fwd.ports()[0].mac, MAC_A, "MAC learnt from info()");
    assert_eq!(fwd.ports()[1].mac, MAC_B);
    assert_eq!(fwd.pool_len(), 128);

    let mut to_b = Vec::new();
    let mut to_a = Vec::new();
    for i in 0..20u8 {
        let f = a_to_b(64, &[i; 100]);
        to_b.push(f.clone());
        a.inject(f);
        let f = b_to_a(30, &[i; 60]);
        to_a.push(f.clone());
        b.inject(f);
    }
    a.inject(arp_request(PEER_A_MAC, PEER_A, ADDR_A, 60));
    b.inject(b_to_a(1, &[0; 10])); // TTL expired
    fwd.run(10);
    let c = *fwd.counters();
    assert_adds_up(&c, fwd.queued());
    assert_eq!(c.rx_frames, 42);
    assert_eq!(c.forwarded, 40);
    assert_eq!(c.arp_replies, 1);
    assert_eq!(c.dropped, 1);
    assert_eq!(c.drop_count(DropReason::TtlExpired), 1);
    assert_eq!((c.nic_errors, c.replaced, c.rounds), (0, 0, 10));
    assert_eq!(fwd.stats().forwarded, 40);

    let sent_b = b.take_sent();
    assert_eq!(sent_b.len(), 20);
    for (out, inp) in sent_b.iter().zip(&to_b) {
        assert_forwarded(inp, out, 1);
    }
    let sent_a = a.take_sent();
    assert_eq!(sent_a.len(), 21);
    let (arps, ips): (Vec<_>, Vec<_>) = sent_a.iter().partition(|f| f[12..14] == [8, 6]);
    assert_eq!(arps.len(), 1);
    assert_eq!(arps[0].len(), 60);
    assert_eq!(arps[0][20..22], [0, 2]);
    for (out, inp) in ips.iter().zip(&to_a) {
        assert_forwarded(inp, out, 0);
    }
    // Nothing leaked: every buffer is in the pool or a NIC.
    assert_eq!(fwd.pool_len() + fwd.queued() + a.held() + b.held(), 128);
}

#[test]
fn batch_sizes_move_the_right_counts() {
    HostHeap::install();
    for batch in [1usize, 8, 32] {
        // A ring of `batch` buffers: each rx call returns at most `batch` frames.
        let a = FakeNic::new(MAC_A, batch, 256);
        let b = FakeNic::new(MAC_B, batch, 256);
        let mut fwd = Forwarder::new([&a, &b], &cfg(batch as u16), 512).unwrap();
        assert_eq!(fwd.batch(), batch);
        for i in 0..100u8 {
            a.inject(a_to_b(64, &[i; 20]));
        }
        fwd.round();
        assert_eq!(fwd.counters().forwarded, batch as u64, "batch {batch}: one round moves one batch");
        assert_eq!(b.st().sent.len(), batch);
        let rounds = 100usize.div_ceil(batch);
        fwd.run(rounds as u64 + 2);
        let c = *fwd.counters();
        assert_adds_up(&c, fwd.queued());
        assert_eq!(c.forwarded, 100, "batch {batch}");
        assert_eq!(b.take_sent().len(), 100);
        assert!(a.st().max_posted <= batch && b.st().max_posted <= batch, "at most `batch` buffers per rx");
        assert!(b.st().max_handed <= batch, "at most `batch` frames per tx");
        assert_eq!(fwd.pool_len() + fwd.queued() + a.held() + b.held(), 512);
    }
    // Out-of-range batches are clamped.
    let a = FakeNic::new(MAC_A, 8, 8);
    let b = FakeNic::new(MAC_B, 8, 8);
    assert_eq!(Forwarder::new([&a, &b], &cfg(0), 4).unwrap().batch(), 1);
    assert_eq!(Forwarder::new([&a, &b], &cfg(1000), 4).unwrap().batch(), BATCH_MAX);
}

#[test]
fn nic_errors_lose_only_that_batch() {
    HostHeap::install();
    let batch = 8;
    // A pool of exactly one batch: every lost buffer must be replaced.
    let a = FakeNic::new(MAC_A, batch, 64);
    let b = FakeNic::new(MAC_B, batch, 64);
    let mut fwd = Forwarder::new([&a, &b], &cfg(batch as u16), batch).unwrap();
    for i in 0..200u8 {
        a.inject(a_to_b(64, &[i; 10]));
    }
    // Round 1: A's rx fails: the batch of empty buffers is lost, no frame is.
    a.st().fail_rx = 1;
    fwd.round();
    let c = *fwd.counters();
    assert_eq!(c.nic_errors, 1);
    assert_eq!(a.st().lost, batch);
    assert_eq!(c.rx_frames, 0);
    assert_eq!(a.st().incoming.len(), 200, "frames are not lost with the buffers");
    // The pool was topped up for B's rx, and again for A's next rx.
    fwd.round();
    let c = *fwd.counters();
    assert!(c.replaced >= batch as u64, "{c:?}");
    assert_eq!(c.forwarded, batch as u64, "forwarding resumed");

    // B's tx fails once: the frames of that call are lost, and only those.
    b.st().fail_tx = 1;
    fwd.round();
    let c = *fwd.counters();
    assert_eq!(c.nic_errors, 2);
    assert_eq!(c.drop_count(DropReason::NicLost), batch as u64);
    assert_eq!(b.st().lost, batch);

    fwd.run(40);
    let c = *fwd.counters();
    assert_adds_up(&c, fwd.queued());
    assert_eq!(c.rx_frames, 200);
    assert_eq!(c.forwarded, 200 - batch as u64);
    assert_eq!(b.take_sent().len(), 200 - batch);
    // Conservation with losses: allocated = pool + held + lost.
    let allocated = batch + c.replaced as usize;
    assert_eq!(fwd.pool_len() + fwd.queued() + a.held() + b.held() + a.st().lost + b.st().lost, allocated);
}

#[test]
fn tx_without_room_keeps_frames_for_the_next_call() {
    HostHeap::install();
    // B's device queue holds 3 frames; its buffers complete only on the next call.
    let a = FakeNic::new(MAC_A, 32, 64);
    let b = FakeNic::new(MAC_B, 32, 3);
    let mut fwd = Forwarder::new([&a, &b], &cfg(32), 256).unwrap();
    let mut to_b = Vec::new();
    for i in 0..10u8 {
        let f = a_to_b(64, &[i; 10]);
        to_b.push(f.clone());
        a.inject(f);
    }
    b.inject(arp_request(PEER_B_MAC, PEER_B, ADDR_B, 0));
    fwd.round();
    let c = *fwd.counters();
    assert_adds_up(&c, fwd.queued());
    // B's out queue held the 10 frames forwarded from A, then B's own ARP reply (B
    // receives after A): the NIC took 3 forwarded frames; 7 and the reply wait, counted
    // nowhere yet.
    assert_eq!(c.forwarded, 3);
    assert_eq!(c.arp_replies, 0);
    assert_eq!(c.dropped, 0);
    assert_eq!(fwd.queued(), 8);
    // Each round the NIC completes its 3 and takes 3 more, in order.
    fwd.run(3);
    let c = *fwd.counters();
    assert_adds_up(&c, fwd.queued());
    assert_eq!((c.forwarded, c.arp_replies, c.dropped, fwd.queued()), (10, 1, 0, 0));
    let sent = b.take_sent();
    assert_eq!(sent.len(), 11);
    for (out, inp) in sent.iter().zip(&to_b) {
        assert_forwarded(inp, out, 1);
    }
    assert_eq!(sent[10][12..14], [8, 6], "the ARP reply last, as queued");
    fwd.run(3);
    assert_eq!(fwd.pool_len() + a.held() + b.held(), 256);
    assert_eq!(b.st().tx_inflight.len(), 0, "completed buffers were collected without traffic");

    // A NIC that stays full: the out queue holds one batch at most, what comes on top of
    // it is dropped (`NoRoom`) after one more offer to the NIC in that round.
    let a = FakeNic::new(MAC_A, 64, 64);
    let b = FakeNic::new(MAC_B, 64, 0);
    let mut fwd = Forwarder::new([&a, &b], &cfg(8), 256).unwrap();
    for i in 0..60u8 {
        a.inject(a_to_b(64, &[i; 10]));
    }
    fwd.run(10);
    assert_eq!(fwd.counters().rx_frames, 60);
    let c = *fwd.counters();
    assert_adds_up(&c, fwd.queued());
    assert_eq!(fwd.queued(), BATCH_MAX);
    assert_eq!((c.forwarded, c.drop_count(DropReason::NoRoom)), (0, 60 - BATCH_MAX as u64));
    assert_eq!(fwd.pool_len() + fwd.queued() + a.held() + b.held(), 256);
}

#[test]
fn no_buffer_leaks_over_many_rounds() {
    let h = HostHeap::install();
    let d = h.fresh_domain();
    h.set_current(d);
    let mut rng = Rng::new(4);
    let a = FakeNic::new(MAC_A, 48, 5);
    let b = FakeNic::new(MAC_B, 24, 40);
    let pool = 300;
    let mut fwd = Forwarder::new([&a, &b], &cfg(16), pool).unwrap();
    let mut blocks_steady = None;
    let mut max_queued = 0;
    for round in 0..2000 {
        for _ in 0..rng.below(40) {
            let (mut f, _) = random_frame(&mut rng);
            f.truncate(PKT_DATA);
            if rng.below(2) == 0 { a.inject(f) } else { b.inject(f) }
            match rng.below(3) {
                0 => a.inject(a_to_b(64, &[1; 64])),
                1 => b.inject(b_to_a(64, &[2; 64])),
                _ => {}
            }
        }
        fwd.round();
        assert_eq!(fwd.pool_len() + fwd.queued() + a.held() + b.held(), pool, "round {round}");
        assert_adds_up(fwd.counters(), fwd.queued());
        max_queued = max_queued.max(fwd.queued());
        // Shared-heap blocks of this test's domain: the buffers plus the reused batches.
        let blocks = h.counters().blocks(d);
        if round >= 10 {
            assert_eq!(*blocks_steady.get_or_insert(blocks), blocks, "round {round}");
        }
    }
    let c = *fwd.counters();
    assert_eq!((c.replaced, c.nic_errors), (0, 0));
    assert!(c.forwarded > 10_000 && c.dropped > 1000 && max_queued > 0, "{c:?}");
    assert_eq!(c.forwarded + c.arp_replies, (a.take_sent().len() + b.take_sent().len()) as u64);
    drop(fwd);
    drop((a, b));
    assert_eq!(h.counters().blocks(d), 0, "everything freed at the end");
}

#[test]
fn forwarder_polls_while_there_is_work_then_halts_on_the_nic_that_received_last() {
    HostHeap::install();
    let a = FakeNic::new(MAC_A, 64, 64);
    let b = FakeNic::new(MAC_B, 64, 64);
    let mut fwd = Forwarder::new([&a, &b], &FwdConfig { idle_rounds: 3, ..cfg(8) }, 128).unwrap();
    assert!(!a.st().polling && !b.st().polling, "interrupts are used: no polling mode");
    // Idle: every third empty round halts, on NIC A (nothing received yet).
    fwd.run(7);
    assert_eq!(fwd.counters().halts, 2);
    assert_eq!((a.st().waits, b.st().waits), (2, 0));
    // Traffic from B: no halt while frames keep coming, then halts on B.
    for round in 0..10u8 {
        b.inject(b_to_a(30, &[round; 20]));
        fwd.round();
    }
    assert_eq!(fwd.counters().halts, 2, "no halt while there is work");
    assert_eq!(fwd.counters().forwarded, 10);
    // The first quiet round skips A (quiet while B received) and does not count.
    fwd.run(3);
    assert_eq!(fwd.counters().halts, 2, "a round that skipped a port is not idle");
    fwd.run(1);
    assert_eq!(fwd.counters().halts, 3);
    assert_eq!((a.st().waits, b.st().waits), (2, 1), "waits on the NIC that received last");
    assert_eq!(fwd.stats().halts, 3);
    // idle_rounds 0: pure polling, never a wait.
    let c = FakeNic::new(MAC_A, 64, 64);
    let d = FakeNic::new(MAC_B, 64, 64);
    let mut polled = Forwarder::new([&c, &d], &cfg(8), 64).unwrap();
    polled.run(100);
    assert!(c.st().polling && d.st().polling);
    assert_eq!((c.st().waits, d.st().waits, polled.counters().halts), (0, 0, 0));
}

#[test]
fn moderated_halts_wait_for_as_many_frames_as_the_traffic_brings() {
    HostHeap::install();
    let a = FakeNic::new(MAC_A, 64, 64);
    let b = FakeNic::new(MAC_B, 64, 64);
    let mut fwd = Forwarder::new([&a, &b], &FwdConfig { idle_rounds: 2, coalesce: 32, ..cfg(32) }, 256).unwrap();
    // Sparse traffic (one frame, then quiet): every halt waits for the first frame.
    for round in 0..5u8 {
        b.inject(b_to_a(30, &[round; 20]));
        fwd.run(4);
    }
    assert_eq!(fwd.counters().forwarded, 5);
    assert!(!b.st().wait_frames.is_empty());
    assert!(b.st().wait_frames.iter().chain(a.st().wait_frames.iter()).all(|&n| n == 1), "{:?}", b.st().wait_frames);
    // Heavy traffic: 40 frames between halts. The target doubles up to 32 and stays.
    for _ in 0..8 {
        for i in 0..40u8 {
            b.inject(b_to_a(30, &[i; 20]));
        }
        // Rounds until the next halt.
        let h = fwd.counters().halts;
        for _ in 0..10 {
            fwd.round();
            if fwd.counters().halts > h {
                break;
            }
        }
        assert_eq!(fwd.counters().halts, h + 1);
    }
    let w = core::mem::take(&mut b.st().wait_frames);
    assert_eq!(&w[w.len() - 3..], &[32, 32, 32], "{w:?}");
    assert!(w[4..].windows(2).all(|p| p[1] == (p[0] * 2).min(32)), "doubles: {w:?}");
    // A thin round (a few frames, fewer than half the target) counts towards a halt.
    let halts = fwd.counters().halts;
    // (The round after it skips the quiet port A and does not count; without moderation
    // the thin round would not count either and the halt would come a round later.)
    b.inject(b_to_a(30, &[1; 20]));
    fwd.run(3);
    assert_eq!(fwd.counters().halts, halts + 1, "a thin round counts towards a halt");
    // Back to sparse: the target falls to the burst at once.
    fwd.run(4);
    b.inject(b_to_a(30, &[2; 20]));
    fwd.run(4);
    assert_eq!(*b.st().wait_frames.last().unwrap(), 1, "{:?}", b.st().wait_frames);
    assert_eq!(fwd.counters().forwarded, 5 + 8 * 40 + 2);
}

#[test]
fn a_one_way_flow_polls_the_quiet_port_rarely_and_still_serves_it_within_bound() {
    HostHeap::install();
    let a = FakeNic::new(MAC_A, 64, 64);
    let b = FakeNic::new(MAC_B, 64, 64);
    let mut fwd = Forwarder::new([&a, &b], &cfg(8), 256).unwrap();
    // Steady traffic A → B, nothing from B.
    for round in 0..200u32 {
        a.inject(a_to_b(64, &[round as u8; 10]));
        fwd.round();
        b.take_sent();
    }
    let (a_calls, b_calls) = (a.st().rx_calls, b.st().rx_calls);
    assert_eq!(a_calls, 200, "the busy port is polled every round");
    assert!(b_calls <= 200 / RX_SKIP_MAX as u64 + RX_SKIP_MAX as u64, "the quiet port polled {b_calls} times");
    // A frame arriving on the quiet port is forwarded within RX_SKIP_MAX + 1 rounds.
    b.inject(b_to_a(30, &[9; 20]));
    let mut rounds = 0;
    while a.st().sent.is_empty() {
        a.inject(a_to_b(64, &[1; 10]));
        fwd.round();
        rounds += 1;
        assert!(rounds <= RX_SKIP_MAX as u32 + 1, "the quiet port's frame waited {rounds} rounds");
    }
    assert_eq!(a.take_sent().len(), 1, "B's frame went out on A");
    // Both quiet: both are polled every round again.
    let (a0, b0) = (a.st().rx_calls, b.st().rx_calls);
    fwd.run(20);
    assert_eq!((a.st().rx_calls - a0, b.st().rx_calls - b0), (20, 20));
}
