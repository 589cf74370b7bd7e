//! Blind-reset and SYN protection (RFC 5961 §3.2, §4.2) in front of smoltcp.
//!
//! smoltcp 0.14 resets a synchronised connection on any RST whose sequence number falls
//! inside the receive window. Anyone who can guess a connection's addresses and ports then
//! needs at most 2^32 / window ≈ 65,536 RSTs to kill it. RFC 5961 §3.2 narrows that:
//! only an RST at exactly RCV.NXT resets; one elsewhere in the window is answered with a
//! "challenge ACK" (which a genuine peer answers with an RST at exactly the acknowledged
//! number), and one outside the window is dropped.
//!
//! smoltcp does not show its sequence numbers, so the stack takes them from its own
//! output: every segment it sends on a connection carries RCV.NXT in its acknowledgement
//! field and its send position in its sequence number ([`Seen::note_sent`]). Each received
//! RST on a connection the stack has sent on is screened ([`Seen::screen`]) before smoltcp
//! sees it:
//! * at exactly the last acknowledgement sent: passed on (a genuine reset);
//! * 1..=[`WINDOW_MAX`] bytes past it (inside any window the stack can advertise, but not
//!   at its edge): rewritten into an empty ACK far outside the window, which smoltcp
//!   answers with its own rate-limited challenge ACK (at most one per second per
//!   connection) and otherwise ignores;
//! * anywhere else: passed on, and smoltcp drops it (outside the window).
//!
//! A SYN (without ACK) on a synchronised connection gets the same rewrite (RFC 5961 §4.2:
//! a challenge ACK). smoltcp would otherwise hand it to a listening socket on the same
//! port, which answers with a SYN-ACK for the 4-tuple of the live connection; the peer's
//! answer to that then draws a reset from the new socket that lands inside the peer's
//! window and kills the connection on the peer's side. A connection counts as
//! synchronised once the stack has sent on it a segment other than its SYN-ACK, so a
//! peer retransmitting its SYN during the handshake is not affected.
//!
//! A peer that resets right after sending data the stack has not acknowledged yet
//! (both in one receive batch) has its RST treated as inexact; the challenge ACK then
//! carries the new RCV.NXT and the peer's answering RST is exact. The per-connection
//! record is forgotten when the connection is ([`Seen::retain`]).

use alloc::collections::BTreeMap;

/// Largest receive window the stack can advertise (its TCP receive buffer).
pub const WINDOW_MAX: u32 = crate::stack::TCP_BUF as u32;

const TCP: u8 = 6;
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// A connection as the stack sees it: remote address, remote port, local port.
pub type Key = ([u8; 4], u16, u16);

/// What [`Seen::screen`] did with a received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// Not an RST on a known connection, or a reset at exactly RCV.NXT, or one outside
    /// the window: smoltcp decides.
    Pass,
    /// An RST inside the window but not at its edge: rewritten to draw a challenge ACK.
    Challenged,
}

/// The TCP header of an IPv4 frame: (IP header offset, IHL in bytes, TCP offset), if the
/// frame is an unfragmented IPv4/TCP frame long enough for a TCP header.
fn tcp_at(f: &[u8]) -> Option<(usize, usize, usize)> {
    if f.len() < 14 + 20 || f[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = 14;
    let ihl = usize::from(f[ip] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([f[ip + 2], f[ip + 3]]));
    if f[ip] >> 4 != 4 || ihl < 20 || f[ip + 9] != TCP || u16::from_be_bytes([f[ip + 6], f[ip + 7]]) & 0x3fff != 0 {
        return None;
    }
    if total < ihl + 20 || ip + total > f.len() {
        return None;
    }
    Some((ip, ihl, ip + ihl))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// `a` after `b` in sequence space.
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// The TCP checksum over the pseudo header and `seg`.
fn tcp_checksum(src: &[u8], dst: &[u8], seg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(src);
    add(dst);
    add(&[0, TCP]);
    add(&(seg.len() as u16).to_be_bytes());
    add(seg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The last acknowledgement and the furthest send position the stack put on the wire,
/// per connection.
#[derive(Default, Debug)]
pub struct Seen {
    conns: BTreeMap<Key, (u32, u32)>,
    /// RSTs and SYNs rewritten into challenges so far.
    pub challenged: u64,
}

impl Seen {
    /// Notes a frame the stack sends.
    pub fn note_sent(&mut self, f: &[u8]) {
        let Some((ip, ihl, t)) = tcp_at(f) else { return };
        let flags = f[t + 13];
        if flags & ACK == 0 || flags & (RST | SYN) != 0 {
            return;
        }
        let total = usize::from(u16::from_be_bytes([f[ip + 2], f[ip + 3]]));
        let off = usize::from(f[t + 12] >> 4) * 4;
        let len = (total - ihl).saturating_sub(off) as u32 + u32::from(flags & (SYN | FIN) != 0);
        let key: Key = (
            [f[ip + 16], f[ip + 17], f[ip + 18], f[ip + 19]],
            u16::from_be_bytes([f[t + 2], f[t + 3]]),
            u16::from_be_bytes([f[t], f[t + 1]]),
        );
        let (seq_end, ack) = (be32(&f[t + 4..]).wrapping_add(len), be32(&f[t + 8..]));
        let e = self.conns.entry(key).or_insert((ack, seq_end));
        if !after(e.0, ack) {
            e.0 = ack;
        }
        if after(seq_end, e.1) {
            e.1 = seq_end;
        }
    }

    /// Screens a received frame (see the module documentation); may rewrite it.
    pub fn screen(&mut self, f: &mut [u8]) -> Screen {
        let Some((ip, _, t)) = tcp_at(f) else { return Screen::Pass };
        let flags = f[t + 13];
        let syn = flags & (SYN | ACK | RST) == SYN;
        if flags & RST == 0 && !syn {
            return Screen::Pass;
        }
        let key: Key = (
            [f[ip + 12], f[ip + 13], f[ip + 14], f[ip + 15]],
            u16::from_be_bytes([f[t], f[t + 1]]),
            u16::from_be_bytes([f[t + 2], f[t + 3]]),
        );
        let Some(&(rcv_nxt, snd_pos)) = self.conns.get(&key) else { return Screen::Pass };
        // A damaged segment is smoltcp's to drop; the rewrite would make it whole again.
        let total = usize::from(u16::from_be_bytes([f[ip + 2], f[ip + 3]]));
        if tcp_checksum(&f[ip + 12..ip + 16], &f[ip + 16..ip + 20], &f[t..ip + total]) != 0 {
            return Screen::Pass;
        }
        let d = be32(&f[t + 4..]).wrapping_sub(rcv_nxt);
        if !syn && (d == 0 || d > WINDOW_MAX) {
            return Screen::Pass;
        }
        // An empty ACK half the sequence space away: outside any window, acknowledging
        // exactly what the stack sent, so smoltcp answers it with a challenge ACK.
        f[t + 4..t + 8].copy_from_slice(&rcv_nxt.wrapping_add(0x8000_0000).to_be_bytes());
        f[t + 8..t + 12].copy_from_slice(&snd_pos.to_be_bytes());
        f[t + 13] = ACK;
        f[t + 16] = 0;
        f[t + 17] = 0;
        let (src, dst) = ([f[ip + 12], f[ip + 13], f[ip + 14], f[ip + 15]], [f[ip + 16], f[ip + 17], f[ip + 18], f[ip + 19]]);
        let c = tcp_checksum(&src, &dst, &f[t..ip + total]);
        f[t + 16..t + 18].copy_from_slice(&c.to_be_bytes());
        self.challenged += 1;
        Screen::Challenged
    }

    /// Keeps the records of the connections `live` says exist.
    pub fn retain(&mut self, mut live: impl FnMut(&Key) -> bool) {
        self.conns.retain(|k, _| live(k));
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }
}
