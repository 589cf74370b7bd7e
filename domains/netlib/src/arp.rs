//! ARP screen in front of smoltcp: floods cannot churn its neighbour cache.
//!
//! smoltcp fills its neighbour cache (8 entries) from every ARP packet aimed at the stack,
//! request or reply, solicited or not, from any sender in the subnet, evicting the oldest
//! entry when full. A flood of ARP requests for the stack's address from made-up senders
//! therefore keeps evicting the entries the stack needs (the gateway's, its peers'); each
//! eviction makes smoltcp drop the next packet to that neighbour while it resolves the
//! address again (an ICMP echo reply is simply lost), so under such a flood the guest
//! stopped answering ping altogether.
//!
//! The screen ([`ArpGuard::screen`]) lets smoltcp see only ARP packets from neighbours the
//! stack wants: the gateway, and the addresses smoltcp itself asked for recently
//! ([`ArpGuard::note_sent`], the last [`ASKED`] targets of its requests). Of the rest:
//! * a request for the stack's address goes to smoltcp (which learns the sender, as a
//!   peer that asks is about to talk) while a budget allows — [`BURST`] at once, one more
//!   every [`REFILL_NS`] — and is otherwise answered here, from the stack's MAC, without
//!   smoltcp learning the sender (it asks for the sender's address itself when it needs
//!   it); so a flood replaces at most one cache entry every 2 s;
//! * a packet claiming the stack's own address, and any unsolicited reply, is dropped;
//! * packets not aimed at the stack are passed on (smoltcp ignores them).

/// How many recent targets of the stack's own ARP requests are remembered.
pub const ASKED: usize = 8;
/// Requests from senders the stack did not ask for that smoltcp may see at once, and the
/// time that earns one more.
pub const BURST: u64 = 4;
pub const REFILL_NS: u64 = 2_000_000_000;

/// What to do with a received frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arp {
    /// Give it to smoltcp.
    Pass,
    /// Drop it.
    Drop,
    /// Drop it and send this reply (a 42-byte Ethernet/ARP frame).
    Answer([u8; 42]),
}

/// The screen's state.
#[derive(Clone, Debug)]
pub struct ArpGuard {
    mac: [u8; 6],
    ip: [u8; 4],
    gateway: [u8; 4],
    asked: [[u8; 4]; ASKED],
    next: usize,
    /// Budget of requests passed on from senders not asked for, in nanoseconds of
    /// refill ([`BURST`] × [`REFILL_NS`] when full), and when it was last topped up.
    budget_ns: u64,
    last_ns: u64,
    /// Requests answered here, and packets dropped, so far.
    pub answered: u64,
    pub dropped: u64,
}

/// An Ethernet/IPv4 ARP packet: (operation, sender MAC, sender IP, target IP).
fn parse(f: &[u8]) -> Option<(u16, [u8; 6], [u8; 4], [u8; 4])> {
    let a = f.get(14..42)?;
    if f[12..14] != [0x08, 0x06] || a[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return None;
    }
    let op = u16::from_be_bytes([a[6], a[7]]);
    Some((op, a[8..14].try_into().ok()?, a[14..18].try_into().ok()?, a[24..28].try_into().ok()?))
}

impl ArpGuard {
    pub fn new(mac: [u8; 6], ip: [u8; 4], gateway: [u8; 4]) -> Self {
        Self {
            mac,
            ip,
            gateway,
            asked: [[0; 4]; ASKED],
            next: 0,
            budget_ns: BURST * REFILL_NS,
            last_ns: 0,
            answered: 0,
            dropped: 0,
        }
    }

    /// Notes a frame the stack sends: the target of an ARP request becomes wanted.
    pub fn note_sent(&mut self, f: &[u8]) {
        if let Some((1, _, _, target)) = parse(f) {
            if !self.asked.contains(&target) {
                self.asked[self.next] = target;
                self.next = (self.next + 1) % ASKED;
            }
        }
    }

    fn wanted(&self, ip: [u8; 4]) -> bool {
        ip != [0; 4] && (ip == self.gateway || self.asked.contains(&ip))
    }

    /// Screens a frame received at `now_ns` (see the module documentation).
    pub fn screen(&mut self, f: &[u8], now_ns: u64) -> Arp {
        let Some((op, sha, spa, tpa)) = parse(f) else { return Arp::Pass };
        if tpa != self.ip {
            return Arp::Pass;
        }
        if spa == self.ip {
            self.dropped += 1;
            return Arp::Drop;
        }
        if self.wanted(spa) {
            return Arp::Pass;
        }
        if op != 1 || sha[0] & 1 != 0 || spa == [0; 4] {
            self.dropped += 1;
            return Arp::Drop;
        }
        let earned = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        self.budget_ns = self.budget_ns.saturating_add(earned).min(BURST * REFILL_NS);
        if self.budget_ns >= REFILL_NS {
            self.budget_ns -= REFILL_NS;
            return Arp::Pass;
        }
        let mut r = [0u8; 42];
        r[0..6].copy_from_slice(&sha);
        r[6..12].copy_from_slice(&self.mac);
        r[12..14].copy_from_slice(&[0x08, 0x06]);
        r[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 2]);
        r[22..28].copy_from_slice(&self.mac);
        r[28..32].copy_from_slice(&self.ip);
        r[32..38].copy_from_slice(&sha);
        r[38..42].copy_from_slice(&spa);
        self.answered += 1;
        Arp::Answer(r)
    }
}
