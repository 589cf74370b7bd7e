//! `frond-hostile-net`: hostile traffic against the guest's stack, written as raw Ethernet
//! frames on one interface (an AF_PACKET socket on the test's tap), for the traffic tests
//! (`tests/tests/traffic.rs`). Run it inside the test's namespace; it sends only on the
//! interface it is given. Every frame is built here, with correct IPv4, TCP and ICMP
//! checksums unless an attack wants them wrong.
//!
//! ```text
//! frond-hostile-net ATTACK --iface TAP --guest-mac MAC --guest-ip A --host-mac MAC --host-ip B [options]
//! ```
//! Attacks (each prints one JSON report line on stdout, `"attack": ATTACK` first):
//! * `syn-flood --count N --ports P,Q`: N SYNs as fast as the socket takes them, to the
//!   ports in turn, from random source ports and random addresses (three in four from
//!   198.18.0.0/15, outside the guest's subnet; one in four inside it, which the guest
//!   has to resolve with ARP that nobody answers). Report: `sent`, `errors`, `seconds`, `pps`.
//! * `tcp-inject --port P`: waits (after `hostile-net: ready` on stderr) for an established
//!   connection between the host and the guest's port P to carry data both ways and go
//!   quiet, learns its sequence numbers from the frames, and then attacks it in phases,
//!   counting the guest's replies on the connection after each: RSTs outside the receive
//!   window (`rst_out_of_window`), RSTs inside it but not at its left edge
//!   (`rst_in_window`), data segments far outside the window (`data_out_of_window`), ACKs
//!   of data the guest never sent (`ack_unsent`) and SYNs on the synchronised connection
//!   (`syn_in_window`). The connection itself never sees an acceptable segment from the
//!   tool, so it must carry on byte-exact.
//! * `overlap --port P --bytes N [--seed S]`: its own connection (a raw handshake from
//!   `--fake-ip`/`--fake-mac`, ARP for that address answered by the tool), then N bytes in
//!   shuffled, overlapping segments whose overlaps carry conflicting bytes; reads the echo
//!   back (acknowledging it), closes, and compares the echo with what the receiver model
//!   ([`Model`]) predicts: bytes already delivered in order are never rewritten (the first
//!   copy wins), bytes waiting beyond a hole are overwritten by a later segment (the last
//!   copy wins). Exit status 1 if the echo differs.
//! * `arp --seconds S`: gratuitous ARP requests and replies claiming the guest's address
//!   for other MACs, ARP replies to the guest claiming its address, and a flood of ARP
//!   requests for the guest and for other addresses from random senders.
//! * `icmp --seconds S`: echo requests as fast as possible, interleaved with oversized
//!   echo requests as IPv4 fragments (including a reassembly past 65,535 bytes and
//!   overlapping fragments), single echo requests larger than 1500 bytes (up to the
//!   interface MTU), and ICMP errors (unreachable, time exceeded, parameter problem,
//!   redirect) quoting bogus packets: TCP and UDP to the guest's ports, truncated and
//!   garbage quotes.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use frond_tests::net::MacAddr;
use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender};
use serde_json::{json, Value};

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// Printed on stderr once the tool listens (`tcp-inject` waits for the connection then).
const READY: &str = "hostile-net: ready";

// ---------------------------------------------------------------------------------------
// Frames.

/// xorshift64: the tool's only randomness, seeded, so a run can be repeated.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Seeds that differ give different streams (`seed | 1` alone would not).
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn mac(&mut self) -> [u8; 6] {
        let b = self.next().to_be_bytes();
        // Unicast, locally administered.
        [(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]]
    }
}

/// The Internet checksum (RFC 1071) of `parts` laid end to end (each part even-length
/// except possibly the last).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in part.iter() {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 header (20 bytes, checksum filled in) for `payload_len` bytes of `proto`;
/// `frag` is the flags-and-offset word (offset in 8-byte units).
fn ipv4_header(src: [u8; 4], dst: [u8; 4], proto: u8, id: u16, frag: u16, payload_len: usize) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + payload_len).min(0xffff) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    let c = checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = ipv4_header(src, dst, proto, 0x4242, 0x4000, payload.len()).to_vec();
    p.extend_from_slice(payload);
    p
}

/// A TCP segment's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tcp {
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
}

/// A TCP segment (header, an MSS option on a SYN, `payload`) with its checksum.
fn tcp_segment(t: &Tcp, payload: &[u8]) -> Vec<u8> {
    let opts: &[u8] = if t.flags & SYN != 0 { &[2, 4, 0x05, 0xb4] } else { &[] };
    let hlen = 20 + opts.len();
    let mut s = vec![0u8; hlen];
    s[0..2].copy_from_slice(&t.sport.to_be_bytes());
    s[2..4].copy_from_slice(&t.dport.to_be_bytes());
    s[4..8].copy_from_slice(&t.seq.to_be_bytes());
    s[8..12].copy_from_slice(&t.ack.to_be_bytes());
    s[12] = ((hlen / 4) as u8) << 4;
    s[13] = t.flags;
    s[14..16].copy_from_slice(&t.window.to_be_bytes());
    s[20..].copy_from_slice(opts);
    s.extend_from_slice(payload);
    let len = (s.len() as u16).to_be_bytes();
    let c = checksum(&[&t.src, &t.dst, &[0, PROTO_TCP], &len, &s]);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

/// An ICMP message of `kind`/`code` with the 4 bytes after the checksum and `body`.
fn icmp(kind: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let c = checksum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An ARP packet (Ethernet/IPv4) of `op` (1 request, 2 reply).
fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 0x08, 0x00, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa);
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa);
    a
}

/// What the tool reads from a received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    /// An ARP packet: op, sender MAC and IP, target IP.
    Arp { op: u16, sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4] },
    /// A TCP segment with a valid checksum.
    Tcp { src_mac: [u8; 6], seg: Tcp, payload: Vec<u8> },
    Other,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses a frame; anything malformed is `Other`. Reads only inside `f`.
fn parse(f: &[u8]) -> Parsed {
    if f.len() < 14 {
        return Parsed::Other;
    }
    let src_mac: [u8; 6] = f[6..12].try_into().unwrap_or_default();
    let body = &f[14..];
    match be16(f, 12) {
        ETH_ARP if body.len() >= 28 && body[4] == 6 && body[5] == 4 => Parsed::Arp {
            op: be16(body, 6),
            sha: body[8..14].try_into().unwrap_or_default(),
            spa: body[14..18].try_into().unwrap_or_default(),
            tpa: body[24..28].try_into().unwrap_or_default(),
        },
        ETH_IPV4 if body.len() >= 20 && body[0] >> 4 == 4 => {
            let ihl = usize::from(body[0] & 0xf) * 4;
            let total = usize::from(be16(body, 2));
            if ihl < 20 || total < ihl || total > body.len() || body[9] != PROTO_TCP || be16(body, 6) & 0x3fff != 0 {
                return Parsed::Other;
            }
            let (src, dst): ([u8; 4], [u8; 4]) =
                (body[12..16].try_into().unwrap_or_default(), body[16..20].try_into().unwrap_or_default());
            let t = &body[ihl..total];
            if t.len() < 20 {
                return Parsed::Other;
            }
            let off = usize::from(t[12] >> 4) * 4;
            let len = (t.len() as u16).to_be_bytes();
            if off < 20 || off > t.len() || checksum(&[&src, &dst, &[0, PROTO_TCP], &len, t]) != 0 {
                return Parsed::Other;
            }
            let seg = Tcp {
                src,
                dst,
                sport: be16(t, 0),
                dport: be16(t, 2),
                seq: be32(t, 4),
                ack: be32(t, 8),
                flags: t[13],
                window: be16(t, 14),
            };
            Parsed::Tcp { src_mac, seg, payload: t[off..].to_vec() }
        }
        _ => Parsed::Other,
    }
}

// ---------------------------------------------------------------------------------------
// The receiver model of the overlap attack.

/// What the guest's TCP receiver does with overlapping segments (smoltcp 0.14,
/// `tcp::Socket::process`): a segment is first cut to the receive window, whose left
/// edge is the next byte expected in order (everything before it was delivered and is
/// never written again); its bytes are then written into the buffer at their offsets,
/// over whatever an earlier out-of-order segment left there; the in-order point then
/// advances over every byte received so far without a gap. So: the first copy of a byte
/// wins once that byte is in order, the last copy wins while it waits beyond a hole.
/// smoltcp tracks at most 4 runs of out-of-order data and drops a segment that would need
/// a fifth; the schedule never gets there (checked by [`Model::runs_after`]).
#[derive(Debug, Clone)]
struct Model {
    val: Vec<u8>,
    have: Vec<bool>,
    /// Bytes delivered in order.
    next: usize,
}

/// Most runs of out-of-order data the schedule leaves at any time (smoltcp drops a
/// segment that would need more than 4).
const MAX_RUNS: usize = 3;

impl Model {
    fn new(len: usize) -> Model {
        Model { val: vec![0; len], have: vec![false; len], next: 0 }
    }

    /// Receives `data` at stream offset `at`; returns (bytes overwritten beyond a hole
    /// with different content, bytes dropped because they were already delivered with
    /// different content).
    fn receive(&mut self, at: usize, data: &[u8]) -> (usize, usize) {
        let (mut last_wins, mut first_wins) = (0, 0);
        for (i, &b) in data.iter().enumerate() {
            let p = at + i;
            if p >= self.val.len() {
                break;
            }
            if p < self.next {
                first_wins += usize::from(self.val[p] != b);
                continue;
            }
            if self.have[p] && self.val[p] != b {
                last_wins += 1;
            }
            self.val[p] = b;
            self.have[p] = true;
        }
        while self.next < self.have.len() && self.have[self.next] {
            self.next += 1;
        }
        (last_wins, first_wins)
    }

    /// Runs of received bytes beyond the in-order point if `[at, at+len)` arrived now.
    fn runs_after(&self, at: usize, len: usize) -> usize {
        let mut have = self.have.clone();
        for h in have.iter_mut().skip(at).take(len) {
            *h = true;
        }
        let mut next = self.next;
        while next < have.len() && have[next] {
            next += 1;
        }
        let mut runs = 0;
        let mut prev = false;
        for &h in &have[next..] {
            if h && !prev {
                runs += 1;
            }
            prev = h;
        }
        runs
    }

    fn done(&self) -> bool {
        self.next == self.val.len()
    }
}

/// One segment of the overlap schedule: stream offset and bytes.
type Piece = (usize, Vec<u8>);

/// The overlap schedule for `len` bytes: per block of 1 KiB, five to eight pieces with
/// random bounds that together cover the block, each with its own version of the bytes
/// (so overlaps conflict), a piece reaching into the next block and one fully inside the
/// part already delivered, in a random order that keeps at most [`MAX_RUNS`] runs
/// beyond the in-order point. Returns the pieces in sending order and the model after
/// all of them.
fn schedule(len: usize, rng: &mut Rng) -> (Vec<Piece>, Model) {
    const BLOCK: usize = 1024;
    let mut model = Model::new(len);
    let mut out = Vec::new();
    let mut version = 0u8;
    let bytes = |at: usize, n: usize, version: u8| -> Vec<u8> {
        (at..at + n).map(|p| (p as u8).wrapping_mul(31).wrapping_add(version.wrapping_mul(97)) ^ 0x5a).collect()
    };
    let mut b = 0;
    while b < len {
        let end = (b + BLOCK).min(len);
        // Pieces covering [b, end) with overlaps: cut points, each piece stretched by a
        // random amount on both sides.
        let mut cuts = vec![b];
        let k = 3 + rng.below(4) as usize;
        for _ in 0..k {
            cuts.push(b + rng.below((end - b) as u64) as usize);
        }
        cuts.push(end);
        cuts.sort_unstable();
        cuts.dedup();
        let mut pending: Vec<Piece> = Vec::new();
        for w in cuts.windows(2) {
            let s = w[0].saturating_sub(rng.below(200) as usize).max(b.saturating_sub(100));
            let e = (w[1] + rng.below(200) as usize).min(len);
            version = version.wrapping_add(1);
            pending.push((s, bytes(s, e - s, version)));
        }
        // A stale copy of bytes already delivered (dropped by the receiver).
        if b >= BLOCK {
            version = version.wrapping_add(1);
            let s = b - BLOCK + rng.below(BLOCK as u64 / 2) as usize;
            pending.push((s, bytes(s, 300, version)));
        }
        while !pending.is_empty() {
            let fits: Vec<usize> =
                (0..pending.len()).filter(|&i| model.runs_after(pending[i].0, pending[i].1.len()) <= MAX_RUNS).collect();
            // The piece holding the in-order point always fits (it cannot add a run).
            let i = if fits.is_empty() { 0 } else { fits[rng.below(fits.len() as u64) as usize] };
            let p = pending.swap_remove(i);
            model.receive(p.0, &p.1);
            out.push(p);
        }
        b = end;
    }
    (out, model)
}

// ---------------------------------------------------------------------------------------
// The link.

struct Link {
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    sent: u64,
    errors: u64,
}

impl Link {
    fn open(iface: &str) -> Result<Link, String> {
        let i = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == iface)
            .ok_or_else(|| format!("no interface {iface} here"))?;
        let cfg = pnet_datalink::Config {
            read_timeout: Some(Duration::from_millis(2)),
            write_buffer_size: 1 << 16,
            read_buffer_size: 1 << 16,
            ..Default::default()
        };
        match pnet_datalink::channel(&i, cfg) {
            Ok(Channel::Ethernet(tx, rx)) => Ok(Link { tx, rx, sent: 0, errors: 0 }),
            Ok(_) => Err("unexpected channel type".into()),
            Err(e) => Err(format!("AF_PACKET channel on {iface}: {e}")),
        }
    }

    fn send(&mut self, frame: &[u8]) {
        match self.tx.send_to(frame, None) {
            Some(Ok(())) => self.sent += 1,
            _ => self.errors += 1,
        }
    }

    /// The next frame seen on the interface (either direction), or `None` after the read
    /// timeout.
    fn recv(&mut self) -> Option<Vec<u8>> {
        self.rx.next().ok().map(<[u8]>::to_vec)
    }
}

/// Addresses of both ends.
#[derive(Clone, Copy)]
struct Ends {
    guest_mac: [u8; 6],
    guest_ip: [u8; 4],
    host_mac: [u8; 6],
    host_ip: [u8; 4],
    fake_mac: [u8; 6],
    fake_ip: [u8; 4],
}

impl Ends {
    /// A frame carrying TCP `t` from `src_mac` to the guest.
    fn tcp_frame(&self, src_mac: [u8; 6], t: &Tcp, payload: &[u8]) -> Vec<u8> {
        ethernet(self.guest_mac, src_mac, ETH_IPV4, &ipv4(t.src, t.dst, PROTO_TCP, &tcp_segment(t, payload)))
    }

    /// Answers an ARP request for the fake address.
    fn answer_arp(&self, link: &mut Link, p: &Parsed) -> bool {
        if let Parsed::Arp { op: 1, sha, spa, tpa } = p {
            if *tpa == self.fake_ip {
                let a = arp(2, self.fake_mac, self.fake_ip, *sha, *spa);
                link.send(&ethernet(*sha, self.fake_mac, ETH_ARP, &a));
                return true;
            }
        }
        false
    }
}

// ---------------------------------------------------------------------------------------
// Attacks.

fn syn_flood(link: &mut Link, e: &Ends, count: u64, ports: &[u16], seed: u64) -> Value {
    let mut rng = Rng::new(seed);
    eprintln!("hostile-net: flooding");
    let t0 = Instant::now();
    for n in 0..count {
        let r = rng.next();
        let src = if r % 4 == 0 {
            // Inside the guest's /24, never the host or the guest.
            let last = 3 + (r >> 8) as u8 % 250;
            [e.guest_ip[0], e.guest_ip[1], e.guest_ip[2], last]
        } else {
            let v = (r >> 16) as u32 & 0x1_ffff;
            [198, 18 + (v >> 16) as u8, (v >> 8) as u8, v as u8]
        };
        let t = Tcp {
            src,
            dst: e.guest_ip,
            sport: 1024 + (r >> 40) as u16 % 60000,
            dport: ports[n as usize % ports.len()],
            seq: (r >> 3) as u32,
            ack: 0,
            flags: SYN,
            window: 64240,
        };
        let f = e.tcp_frame(rng.mac(), &t, &[]);
        link.send(&f);
    }
    let secs = t0.elapsed().as_secs_f64();
    json!({"attack": "syn-flood", "sent": link.sent, "errors": link.errors, "seconds": secs,
           "pps": (link.sent as f64 / secs.max(1e-9)).round() as u64})
}

/// The connection `tcp-inject` attacks, as learned from its frames.
#[derive(Debug, Clone, Copy, Default)]
struct Conn {
    host_port: u16,
    /// Next sequence number the guest expects (host's next byte).
    guest_rcv_nxt: u32,
    /// Next sequence number the guest sends.
    guest_snd_nxt: u32,
    /// The guest's window as last advertised (unscaled value).
    guest_window: u16,
}

fn tcp_inject(link: &mut Link, e: &Ends, port: u16, seed: u64) -> Result<Value, String> {
    let mut rng = Rng::new(seed);
    eprintln!("{READY}");
    // Learn: the latest segment each way on the connection; done once both directions
    // carried data and the connection was then quiet for 300 ms.
    let mut conn = Conn::default();
    let (mut host_data, mut guest_data) = (false, false);
    let mut last = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if Instant::now() > deadline {
            return Err("no quiet established connection to learn within 30 s".into());
        }
        if host_data && guest_data && last.elapsed() > Duration::from_millis(300) {
            break;
        }
        let Some(f) = link.recv() else { continue };
        if let Parsed::Tcp { seg, payload, .. } = parse(&f) {
            if seg.src == e.host_ip && seg.dst == e.guest_ip && seg.dport == port {
                conn.host_port = seg.sport;
                conn.guest_rcv_nxt = seg.seq.wrapping_add(payload.len() as u32);
                host_data |= !payload.is_empty();
                last = Instant::now();
            } else if seg.src == e.guest_ip && seg.dst == e.host_ip && seg.sport == port && seg.dport == conn.host_port {
                conn.guest_snd_nxt = seg.seq.wrapping_add(payload.len() as u32);
                conn.guest_window = seg.window;
                guest_data |= !payload.is_empty();
                last = Instant::now();
            }
        }
    }
    let base = Tcp {
        src: e.host_ip,
        dst: e.guest_ip,
        sport: conn.host_port,
        dport: port,
        seq: 0,
        ack: conn.guest_snd_nxt,
        flags: ACK,
        window: 65535,
    };
    // Each phase: (name, frames); replies on the connection counted for 1.2 s after.
    let mut phases = Vec::new();
    let n = 200u32;
    let far = |r: u64| 0x4000_0000u32.wrapping_add(r as u32 % 0x3fff_0000);
    let make = |name: &str, rng: &mut Rng| -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let r = rng.next();
                let mut t = base;
                let mut payload: Vec<u8> = Vec::new();
                match name {
                    "rst_out_of_window" => {
                        // Far ahead of or behind the window (by 1–2 GiB of sequence space).
                        t.flags = RST | if i % 2 == 0 { ACK } else { 0 };
                        t.seq = if i % 2 == 0 {
                            conn.guest_rcv_nxt.wrapping_add(far(r))
                        } else {
                            conn.guest_rcv_nxt.wrapping_sub(far(r))
                        };
                    }
                    "rst_in_window" => {
                        // Inside the window (1..=1000 bytes past its left edge), never at it.
                        t.flags = RST;
                        t.seq = conn.guest_rcv_nxt.wrapping_add(1 + (r % 1000) as u32);
                    }
                    "data_out_of_window" => {
                        t.flags = ACK | PSH;
                        t.seq = conn.guest_rcv_nxt.wrapping_add(far(r));
                        payload = (0..1 + r % 512).map(|j| (j as u8) ^ 0xa5).collect();
                    }
                    "ack_unsent" => {
                        // Acknowledges 1 KiB–1 GiB the guest never sent; in-window sequence number.
                        t.seq = conn.guest_rcv_nxt;
                        t.ack = conn.guest_snd_nxt.wrapping_add(1024 + (r % 0x3fff_0000) as u32);
                    }
                    _ => {
                        // "syn_in_window": a SYN on the synchronised connection.
                        t.flags = SYN;
                        t.seq = conn.guest_rcv_nxt.wrapping_add((r % 1000) as u32);
                    }
                }
                e.tcp_frame(e.host_mac, &t, &payload)
            })
            .collect()
    };
    for name in ["rst_out_of_window", "rst_in_window", "data_out_of_window", "ack_unsent", "syn_in_window"] {
        let frames = make(name, &mut rng);
        let t0 = Instant::now();
        let sent0 = link.sent;
        let (mut replies, mut acks_at_edge, mut resets) = (0u64, 0u64, 0u64);
        let watch = |f: &[u8], replies: &mut u64, acks: &mut u64, resets: &mut u64| {
            if let Parsed::Tcp { seg, payload, .. } = parse(f) {
                if seg.src == e.guest_ip && seg.sport == port && seg.dport == conn.host_port {
                    *replies += 1;
                    if seg.flags & RST != 0 {
                        *resets += 1;
                    } else if seg.flags & ACK != 0 && payload.is_empty() && seg.ack == conn.guest_rcv_nxt {
                        *acks += 1;
                    }
                }
            }
        };
        for f in &frames {
            link.send(f);
            // 200 frames over ~2 s: the guest sees each one; drain what it said meanwhile.
            let until = Instant::now() + Duration::from_millis(10);
            while Instant::now() < until {
                if let Some(r) = link.recv() {
                    watch(&r, &mut replies, &mut acks_at_edge, &mut resets);
                }
            }
        }
        let send_secs = t0.elapsed().as_secs_f64();
        let until = Instant::now() + Duration::from_millis(1200);
        while Instant::now() < until {
            if let Some(r) = link.recv() {
                watch(&r, &mut replies, &mut acks_at_edge, &mut resets);
            }
        }
        phases.push(json!({"kind": name, "sent": link.sent - sent0, "seconds": send_secs,
                           "replies": replies, "acks": acks_at_edge, "resets": resets}));
    }
    Ok(json!({"attack": "tcp-inject", "host_port": conn.host_port, "guest_rcv_nxt": conn.guest_rcv_nxt,
              "guest_snd_nxt": conn.guest_snd_nxt, "guest_window": conn.guest_window,
              "phases": phases, "sent": link.sent, "errors": link.errors}))
}

fn overlap(link: &mut Link, e: &Ends, port: u16, len: usize, seed: u64) -> Result<(Value, bool), String> {
    let mut rng = Rng::new(seed);
    let (pieces, model) = schedule(len, &mut rng);
    if !model.done() {
        return Err("internal: the schedule does not cover the stream".into());
    }
    let sport = 20000 + rng.below(20000) as u16;
    let iss = rng.next() as u32;
    let mut t = Tcp { src: e.fake_ip, dst: e.guest_ip, sport, dport: port, seq: iss, ack: 0, flags: SYN, window: 65535 };
    // Handshake (the SYN is repeated until the SYN-ACK comes; ARP for the fake address is
    // answered meanwhile).
    let mut guest_seq = None;
    let t0 = Instant::now();
    let mut next_syn = Instant::now();
    let mut answers: Vec<(u8, u32)> = Vec::new();
    while guest_seq.is_none() {
        if t0.elapsed() > Duration::from_secs(20) {
            return Err(format!(
                "no SYN-ACK within 20 s (port {sport}, ISS {iss}; the guest answered with flags/ack {answers:x?})"
            ));
        }
        if Instant::now() >= next_syn {
            link.send(&e.tcp_frame(e.fake_mac, &t, &[]));
            next_syn = Instant::now() + Duration::from_millis(500);
        }
        let Some(f) = link.recv() else { continue };
        let p = parse(&f);
        if e.answer_arp(link, &p) {
            continue;
        }
        if let Parsed::Tcp { seg, .. } = p {
            if seg.src == e.guest_ip && seg.dport == sport {
                if seg.flags & (SYN | ACK) == SYN | ACK && seg.ack == iss.wrapping_add(1) {
                    guest_seq = Some(seg.seq.wrapping_add(1));
                } else if answers.len() < 8 {
                    answers.push((seg.flags, seg.ack));
                }
            }
        }
    }
    let mut rcv_nxt = guest_seq.unwrap_or_default();
    let base = iss.wrapping_add(1);
    t.seq = base;
    t.ack = rcv_nxt;
    t.flags = ACK;
    link.send(&e.tcp_frame(e.fake_mac, &t, &[]));
    let mut echoed: Vec<u8> = Vec::new();
    // Reads what the guest sends: echo data in order is kept and acknowledged at once,
    // from `our_seq` (where the guest's receive window starts).
    let pump = |link: &mut Link, rcv_nxt: &mut u32, echoed: &mut Vec<u8>, fin: &mut bool, our_seq: u32| {
        while let Some(f) = link.recv() {
            let p = parse(&f);
            if e.answer_arp(link, &p) {
                continue;
            }
            let Parsed::Tcp { seg, payload, .. } = p else { continue };
            if seg.src != e.guest_ip || seg.dport != sport {
                continue;
            }
            if seg.seq == *rcv_nxt && !payload.is_empty() {
                echoed.extend_from_slice(&payload);
                *rcv_nxt = rcv_nxt.wrapping_add(payload.len() as u32);
            }
            if seg.flags & FIN != 0 && seg.seq.wrapping_add(payload.len() as u32) == *rcv_nxt {
                *rcv_nxt = rcv_nxt.wrapping_add(1);
                *fin = true;
            }
            if !payload.is_empty() || seg.flags & FIN != 0 {
                let a = Tcp { seq: our_seq, ack: *rcv_nxt, flags: ACK, ..t };
                link.send(&e.tcp_frame(e.fake_mac, &a, &[]));
            }
        }
    };
    let mut fin = false;
    let (mut last_wins, mut first_wins, mut overlap_bytes) = (0usize, 0usize, 0usize);
    let mut check = Model::new(len);
    for (at, data) in &pieces {
        let (l, f) = check.receive(*at, data);
        last_wins += l;
        first_wins += f;
        overlap_bytes += data.len();
        let seg = Tcp { seq: base.wrapping_add(*at as u32), ack: rcv_nxt, flags: ACK | PSH, ..t };
        link.send(&e.tcp_frame(e.fake_mac, &seg, data));
        // Give the guest time to take each segment in order (a tap queue never reorders,
        // but a lost frame would make the model wrong).
        let until = Instant::now() + Duration::from_millis(3);
        let in_order = base.wrapping_add(check.next as u32);
        while Instant::now() < until {
            pump(link, &mut rcv_nxt, &mut echoed, &mut fin, in_order);
        }
    }
    overlap_bytes = overlap_bytes.saturating_sub(len);
    // Echo back, then close both ways.
    let until = Instant::now() + Duration::from_secs(20);
    let fin_seq = base.wrapping_add(len as u32);
    while echoed.len() < len && Instant::now() < until {
        pump(link, &mut rcv_nxt, &mut echoed, &mut fin, fin_seq);
    }
    let closed_until = Instant::now() + Duration::from_secs(10);
    let mut next_fin = Instant::now();
    while !fin && Instant::now() < closed_until {
        if Instant::now() >= next_fin {
            let f = Tcp { seq: fin_seq, ack: rcv_nxt, flags: FIN | ACK, ..t };
            link.send(&e.tcp_frame(e.fake_mac, &f, &[]));
            next_fin = Instant::now() + Duration::from_millis(300);
        }
        pump(link, &mut rcv_nxt, &mut echoed, &mut fin, fin_seq.wrapping_add(1));
    }
    // The last ACK (of the guest's FIN) may be lost; answer its retransmissions a while.
    let linger = Instant::now() + Duration::from_millis(500);
    while fin && Instant::now() < linger {
        pump(link, &mut rcv_nxt, &mut echoed, &mut fin, fin_seq.wrapping_add(1));
    }
    let same = echoed == model.val;
    let first_diff = echoed.iter().zip(&model.val).position(|(a, b)| a != b).or_else(|| {
        if echoed.len() != model.val.len() {
            Some(echoed.len().min(model.val.len()))
        } else {
            None
        }
    });
    Ok((
        json!({"attack": "overlap", "bytes": len, "segments": pieces.len(), "overlap_bytes": overlap_bytes,
               "last_wins_bytes": last_wins, "first_wins_bytes": first_wins, "echoed": echoed.len(),
               "closed": fin, "match": same, "first_difference": first_diff,
               "sent": link.sent, "errors": link.errors}),
        same,
    ))
}

fn arp_attack(link: &mut Link, e: &Ends, seconds: f64, seed: u64) -> Value {
    let mut rng = Rng::new(seed);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut kinds = [0u64; 5];
    let mut i = 0usize;
    while Instant::now() < end {
        let m = rng.mac();
        let k = i % 5;
        let f = match k {
            // Gratuitous ARP request claiming the guest's address.
            0 => ethernet([0xff; 6], m, ETH_ARP, &arp(1, m, e.guest_ip, [0; 6], e.guest_ip)),
            // Gratuitous ARP reply claiming it, broadcast.
            1 => ethernet([0xff; 6], m, ETH_ARP, &arp(2, m, e.guest_ip, [0xff; 6], e.guest_ip)),
            // A reply to the guest claiming its own address.
            2 => ethernet(e.guest_mac, m, ETH_ARP, &arp(2, m, e.guest_ip, e.guest_mac, e.guest_ip)),
            // Requests for the guest from random senders in its subnet (fills its cache).
            3 => {
                let spa = [e.guest_ip[0], e.guest_ip[1], e.guest_ip[2], 3 + rng.below(250) as u8];
                ethernet([0xff; 6], m, ETH_ARP, &arp(1, m, spa, [0; 6], e.guest_ip))
            }
            // Requests for other addresses.
            _ => {
                let tpa = [e.guest_ip[0], e.guest_ip[1], e.guest_ip[2], 3 + rng.below(250) as u8];
                ethernet([0xff; 6], m, ETH_ARP, &arp(1, m, [10, 99, rng.below(255) as u8, 1], [0; 6], tpa))
            }
        };
        link.send(&f);
        kinds[k] += 1;
        i += 1;
        if i % 64 == 0 {
            // Drain what came back, so the socket's queue does not fill.
            while link.recv().is_some() {}
        }
    }
    json!({"attack": "arp", "sent": link.sent, "errors": link.errors, "seconds": seconds,
           "gratuitous_requests": kinds[0], "gratuitous_replies": kinds[1], "replies_to_guest": kinds[2],
           "requests_for_guest": kinds[3], "requests_for_others": kinds[4]})
}

fn icmp_attack(link: &mut Link, e: &Ends, seconds: f64, mtu: usize, seed: u64) -> Value {
    let mut rng = Rng::new(seed);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut i = 0u64;
    let to_guest = |ip: &[u8]| ethernet(e.guest_mac, e.host_mac, ETH_IPV4, ip);
    while Instant::now() < end {
        i += 1;
        let id = (i & 0xffff) as u16;
        let kind = if i % 16 != 0 { 0 } else { 1 + (i / 16) % 6 };
        let frames: Vec<Vec<u8>> = match kind {
            0 => {
                let m = icmp(8, 0, [0x77, 0x77, (i >> 8) as u8, i as u8], &[0x61; 56]);
                vec![to_guest(&ipv4(e.host_ip, e.guest_ip, PROTO_ICMP, &m))]
            }
            1 => {
                // A 4000-byte echo request in fragments of 1480 bytes.
                let m = icmp(8, 0, [0x77, 0x78, 0, 1], &vec![0x62; 4000 - 8]);
                m.chunks(1480)
                    .enumerate()
                    .map(|(k, c)| {
                        let more = if (k + 1) * 1480 < m.len() { 0x2000 } else { 0 };
                        let mut p = ipv4_header(e.host_ip, e.guest_ip, PROTO_ICMP, id, more | (k * 1480 / 8) as u16, c.len()).to_vec();
                        p.extend_from_slice(c);
                        to_guest(&p)
                    })
                    .collect()
            }
            2 => {
                // Fragments reassembling past 65,535 bytes, and overlapping ones.
                let m = icmp(8, 0, [0x77, 0x79, 0, 2], &[0x63; 1400]);
                let mut first = ipv4_header(e.host_ip, e.guest_ip, PROTO_ICMP, id, 0x2000, m.len()).to_vec();
                first.extend_from_slice(&m);
                let mut last = ipv4_header(e.host_ip, e.guest_ip, PROTO_ICMP, id, 8189, 1400).to_vec();
                last.extend_from_slice(&[0x64; 1400]);
                let mut over = ipv4_header(e.host_ip, e.guest_ip, PROTO_ICMP, id, 0x2000 | 10, 1000).to_vec();
                over.extend_from_slice(&[0x65; 1000]);
                vec![to_guest(&first), to_guest(&over), to_guest(&last)]
            }
            3 => {
                // One echo request bigger than 1500 bytes (up to the interface's MTU).
                let n = (1500 + rng.below(mtu.saturating_sub(1500).max(1) as u64) as usize).min(mtu) - 28;
                let m = icmp(8, 0, [0x77, 0x7a, 0, 3], &vec![0x66; n]);
                vec![to_guest(&ipv4(e.host_ip, e.guest_ip, PROTO_ICMP, &m))]
            }
            4 => {
                // Errors quoting a bogus TCP segment to the guest's ports, or UDP.
                let port: u16 = [7, 80, 7, 9999][rng.below(4) as usize];
                let quoted_tcp = Tcp {
                    src: e.guest_ip,
                    dst: e.host_ip,
                    sport: port,
                    dport: rng.below(65535) as u16,
                    seq: rng.next() as u32,
                    ack: rng.next() as u32,
                    flags: ACK,
                    window: 1000,
                };
                let mut q = ipv4(e.guest_ip, e.host_ip, if i % 32 == 0 { PROTO_TCP } else { PROTO_UDP }, &tcp_segment(&quoted_tcp, b"x"));
                q.truncate(28 + rng.below(20) as usize);
                let (t, c) = [(3u8, 0u8), (3, 1), (3, 3), (3, 4), (11, 0), (12, 0), (5, 1)][rng.below(7) as usize];
                let rest = if t == 3 && c == 4 { [0, 0, 0x01, 0x00] } else { [0; 4] };
                vec![to_guest(&ipv4(e.host_ip, e.guest_ip, PROTO_ICMP, &icmp(t, c, rest, &q)))]
            }
            5 => {
                // Errors quoting garbage (too short, wrong version, lengths lying).
                let n = rng.below(60) as usize;
                let q: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                vec![to_guest(&ipv4(e.host_ip, e.guest_ip, PROTO_ICMP, &icmp(3, rng.below(16) as u8, [0; 4], &q)))]
            }
            _ => {
                // An echo request with a bad checksum and one with a wrong type.
                let mut m = icmp(8, 0, [1, 2, 3, 4], b"bad");
                m[2] ^= 0xff;
                let odd = icmp(rng.below(256) as u8, rng.below(256) as u8, [0; 4], b"odd");
                vec![to_guest(&ipv4(e.host_ip, e.guest_ip, PROTO_ICMP, &m)), to_guest(&ipv4(e.host_ip, e.guest_ip, PROTO_ICMP, &odd))]
            }
        };
        let name = ["echo", "fragmented", "fragments_past_64k", "oversized", "errors_quoting_tcp_udp", "errors_quoting_garbage", "bad_echo"]
            [kind as usize];
        *counts.entry(name).or_default() += 1;
        for f in &frames {
            link.send(f);
        }
        if i % 256 == 0 {
            while link.recv().is_some() {}
        }
    }
    json!({"attack": "icmp", "sent": link.sent, "errors": link.errors, "seconds": seconds, "kinds": counts})
}

// ---------------------------------------------------------------------------------------
// Command line.

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn need<'a>(args: &'a [String], name: &str) -> Result<&'a str, String> {
    arg(args, name).ok_or_else(|| format!("missing {name}"))
}

fn num<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match arg(args, name) {
        Some(v) => v.parse().map_err(|e| format!("{name} {v:?}: {e}")),
        None => default.ok_or_else(|| format!("missing {name}")),
    }
}

fn run() -> Result<(Value, bool), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let attack = args.first().cloned().ok_or("usage: frond-hostile-net ATTACK --iface TAP ... (see the source)")?;
    let iface = need(&args, "--iface")?;
    let mac = |n: &str, d: Option<&str>| -> Result<[u8; 6], String> {
        let v = arg(&args, n).or(d).ok_or_else(|| format!("missing {n}"))?;
        v.parse::<MacAddr>().map(|m| m.0).map_err(|e| format!("{n}: {e}"))
    };
    let ip = |n: &str, d: Option<&str>| -> Result<[u8; 4], String> {
        let v = arg(&args, n).or(d).ok_or_else(|| format!("missing {n}"))?;
        v.parse::<Ipv4Addr>().map(|a| a.octets()).map_err(|e| format!("{n}: {e}"))
    };
    let guest_ip = ip("--guest-ip", None)?;
    let fake_default = Ipv4Addr::new(guest_ip[0], guest_ip[1], guest_ip[2], 77).to_string();
    let ends = Ends {
        guest_mac: mac("--guest-mac", None)?,
        guest_ip,
        host_mac: mac("--host-mac", None)?,
        host_ip: ip("--host-ip", None)?,
        fake_mac: mac("--fake-mac", Some("02:00:0a:21:00:4d"))?,
        fake_ip: ip("--fake-ip", Some(&fake_default))?,
    };
    let seed: u64 = num(&args, "--seed", Some(0x9e37_79b9_7f4a_7c15))?;
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1500usize);
    let mut link = Link::open(iface)?;
    match attack.as_str() {
        "syn-flood" => {
            let ports: Vec<u16> = need(&args, "--ports")?
                .split(',')
                .map(|p| p.parse().map_err(|e| format!("--ports {p:?}: {e}")))
                .collect::<Result<_, _>>()?;
            if ports.is_empty() {
                return Err("--ports is empty".into());
            }
            Ok((syn_flood(&mut link, &ends, num(&args, "--count", None)?, &ports, seed), true))
        }
        "tcp-inject" => Ok((tcp_inject(&mut link, &ends, num(&args, "--port", None)?, seed)?, true)),
        "overlap" => overlap(&mut link, &ends, num(&args, "--port", None)?, num(&args, "--bytes", Some(16384))?, seed),
        "arp" => Ok((arp_attack(&mut link, &ends, num(&args, "--seconds", None)?, seed), true)),
        "icmp" => Ok((icmp_attack(&mut link, &ends, num(&args, "--seconds", None)?, mtu, seed), true)),
        other => Err(format!("unknown attack {other:?} (syn-flood, tcp-inject, overlap, arp, icmp)")),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok((report, ok)) => {
            println!("{report}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("frond-hostile-net: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify() {
        // A header with its checksum filled in sums to zero.
        let h = ipv4_header([10, 33, 0, 1], [10, 33, 0, 2], PROTO_TCP, 1, 0x4000, 40);
        assert_eq!(checksum(&[&h]), 0);
        // RFC 1071's example words.
        assert_eq!(checksum(&[&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]]), !0xddf2u16);
        // Odd lengths pad with a zero byte, also across parts.
        assert_eq!(checksum(&[&[1, 2, 3]]), checksum(&[&[1, 2, 3, 0]]));
        assert_eq!(checksum(&[&[1], &[2, 3]]), checksum(&[&[1, 2, 3]]));
        let m = icmp(8, 0, [0, 1, 0, 1], b"odd-length!");
        assert_eq!(checksum(&[&m]), 0);
    }

    #[test]
    fn tcp_frames_parse_back() {
        let e = Ends {
            guest_mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            guest_ip: [10, 33, 0, 2],
            host_mac: [2, 0, 10, 33, 0, 1],
            host_ip: [10, 33, 0, 1],
            fake_mac: [2, 0, 10, 33, 0, 77],
            fake_ip: [10, 33, 0, 77],
        };
        for (flags, payload) in [(SYN, &b""[..]), (ACK | PSH, &b"hello"[..]), (RST, &b""[..])] {
            let t = Tcp { src: e.host_ip, dst: e.guest_ip, sport: 4000, dport: 7, seq: 0xfffffff0, ack: 9, flags, window: 512 };
            let f = e.tcp_frame(e.host_mac, &t, payload);
            match parse(&f) {
                Parsed::Tcp { src_mac, seg, payload: p } => {
                    assert_eq!((src_mac, seg, p.as_slice()), (e.host_mac, t, payload));
                }
                other => panic!("{other:?}"),
            }
            // A flipped bit anywhere in the segment fails its checksum.
            let mut bad = f.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x10;
            assert_eq!(parse(&bad), Parsed::Other);
        }
        let a = ethernet([0xff; 6], e.fake_mac, ETH_ARP, &arp(1, e.fake_mac, e.fake_ip, [0; 6], e.guest_ip));
        assert_eq!(parse(&a), Parsed::Arp { op: 1, sha: e.fake_mac, spa: e.fake_ip, tpa: e.guest_ip });
        for n in 0..a.len() {
            let _ = parse(&a[..n]);
        }
    }

    #[test]
    fn model_first_copy_wins_in_order_last_copy_wins_beyond_a_hole() {
        let mut m = Model::new(10);
        // Beyond the hole at 0..2: later copies overwrite.
        assert_eq!(m.receive(4, &[1, 1, 1]), (0, 0));
        assert_eq!(m.receive(5, &[2, 2]), (2, 0));
        assert_eq!(m.next, 0);
        // Filling the hole delivers 0..7; a later copy of 3..6 changes nothing.
        assert_eq!(m.receive(0, &[9, 9, 9, 9]), (0, 0));
        assert_eq!(m.next, 7);
        assert_eq!(m.receive(3, &[5, 5, 5]), (0, 3));
        assert_eq!(&m.val[..7], &[9, 9, 9, 9, 1, 2, 2]);
        assert_eq!(m.runs_after(8, 1), 1);
        assert_eq!(m.runs_after(7, 1), 0);
        assert!(!m.done());
        m.receive(7, &[7, 7, 7, 7]);
        assert!(m.done());
    }

    #[test]
    fn schedule_covers_overlaps_and_stays_under_the_assembler_limit() {
        for seed in 1..20 {
            let mut rng = Rng::new(seed);
            let (pieces, model) = schedule(16384, &mut rng);
            assert!(model.done());
            let mut replay = Model::new(16384);
            let (mut last, mut first) = (0, 0);
            for (at, d) in &pieces {
                assert!(replay.runs_after(*at, d.len()) <= MAX_RUNS, "seed {seed}");
                let (l, f) = replay.receive(*at, d);
                last += l;
                first += f;
            }
            assert_eq!(replay.val, model.val);
            assert!(last > 0 && first > 0, "seed {seed}: the schedule must exercise both rules ({last}, {first})");
        }
    }
}
