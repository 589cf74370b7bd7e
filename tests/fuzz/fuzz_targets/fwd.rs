//! Fuzz target `fwd`: the forwarding packet path (`frond-fwd`).
//!
//! The input is a configuration (prefix lengths, batch size, idle rounds, NIC ring sizes,
//! buffer pool, NIC failures to inject) followed by up to 64 frames, each `port (1 byte) |
//! length (2 bytes, little-endian) | bytes`. Two things are checked:
//!
//! 1. `packet::process` on every frame, in a full packet buffer, against its contract: a
//!    dropped frame is unchanged (every byte of the buffer); a forwarded one leaves on
//!    port 0 or 1 with the output port's MACs, TTL − 1, a header checksum that verifies,
//!    and every other byte as it was; an ARP reply keeps its length and padding and is
//!    addressed back to the requester.
//! 2. The `Forwarder` on two fake NICs (the host tests' model: rings of posted receive
//!    buffers and of frames in flight, failures on demand) receiving all the frames:
//!    after every round the counters add up (`rx = forwarded + arp_replies + dropped`,
//!    `dropped` = the sum of the per-reason drops, `tx = forwarded + arp_replies`) and no
//!    buffer is lost: pool + buffers the NICs hold + buffers lost in failed calls =
//!    the initial pool + replacements. Every frame a NIC is handed is at most FRAME_MAX.

#![no_main]

use std::collections::VecDeque;
use std::sync::Mutex;

use frond_fuzz::Input;
use frond_fwd::packet::{ARP_LEN, ETH_HLEN};
use frond_fwd::{process, Counters, Forwarder, PortState, Verdict};
use frond_interface::net::{Batch, FwdConfig, FwdPort, Nic, NicInfo, NicStats, FRAME_MAX, PKT_DATA};
use frond_interface::{RRef, RpcError, RpcResult};
use libfuzzer_sys::fuzz_target;

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x00];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];

fn config(inp: &mut Input) -> FwdConfig {
    let p0 = inp.u8() % 40;
    let p1 = inp.u8() % 40;
    FwdConfig {
        ports: [
            FwdPort { addr: [10, 0, 0, 1], prefix: p0, peer_ip: [10, 0, 0, 2], peer_mac: [0x02, 0, 0, 0, 0, 0x0A] },
            FwdPort { addr: [10, 0, 1, 1], prefix: p1, peer_ip: [10, 0, 1, 2], peer_mac: [0x02, 0, 0, 0, 0, 0x0B] },
        ],
        batch: inp.u16() % 40,
        idle_rounds: (inp.u8() % 4) as u16,
        coalesce: [0, 4, 32][(inp.u8() % 3) as usize],
    }
}

#[derive(Default)]
struct NicState {
    incoming: VecDeque<Vec<u8>>,
    rx_free: Vec<RRef<frond_interface::net::Pkt>>,
    tx_inflight: Vec<RRef<frond_interface::net::Pkt>>,
    rx_ring: usize,
    tx_ring: usize,
    fail_rx: u32,
    fail_tx: u32,
    lost: usize,
}

struct FakeNic {
    mac: [u8; 6],
    st: Mutex<NicState>,
}

impl FakeNic {
    fn new(mac: [u8; 6], rx_ring: usize, tx_ring: usize, fail_rx: u32, fail_tx: u32) -> Self {
        Self { mac, st: Mutex::new(NicState { rx_ring, tx_ring, fail_rx, fail_tx, ..Default::default() }) }
    }
    fn held(&self) -> usize {
        let s = self.st.lock().unwrap();
        s.rx_free.len() + s.tx_inflight.len()
    }
    fn lost(&self) -> usize {
        self.st.lock().unwrap().lost
    }
    fn pending(&self) -> usize {
        self.st.lock().unwrap().incoming.len()
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
        let mut s = self.st.lock().unwrap();
        if s.fail_tx > 0 {
            s.fail_tx -= 1;
            s.lost += b.pkts.len() + b.done.len();
            return Err(RpcError::Panicked);
        }
        while !b.done.is_full() {
            let Some(p) = s.tx_inflight.pop() else { break };
            b.done.push_back(p).ok().unwrap();
        }
        while s.tx_inflight.len() < s.tx_ring {
            let Some(p) = b.pkts.pop_front() else { break };
            assert!(p.frame().len() <= FRAME_MAX, "a frame longer than FRAME_MAX handed to tx");
            s.tx_inflight.push(p);
        }
        Ok(b)
    }
    fn rx(&self, mut b: Batch) -> RpcResult<Batch> {
        let mut s = self.st.lock().unwrap();
        if s.fail_rx > 0 {
            s.fail_rx -= 1;
            s.lost += b.pkts.len() + b.done.len();
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
        Ok(())
    }
    fn wait_rx(&self, _frames: u16, _timeout_ns: u64) -> RpcResult<()> {
        Ok(())
    }
    fn set_polling(&self, _on: bool) -> RpcResult<()> {
        Ok(())
    }
}

fn verifies(h: &[u8]) -> bool {
    let mut s: u32 = 0;
    for c in h.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    s == 0xFFFF
}

fn check_process(frame: &[u8], port: usize, ports: &[PortState; 2]) {
    let mut buf = vec![0u8; PKT_DATA];
    let n = frame.len().min(PKT_DATA);
    buf[..n].copy_from_slice(&frame[..n]);
    let before = buf.clone();
    match process(&mut buf, n, port, ports) {
        Verdict::Drop(r) => {
            assert!(buf == before, "dropped ({}) but changed", r.name());
        }
        Verdict::Forward(j) => {
            assert!(j < 2);
            assert!(n <= FRAME_MAX && n >= ETH_HLEN + 20);
            assert_eq!(buf[..6], ports[j].cfg.peer_mac, "destination MAC is the output port's peer");
            assert_eq!(buf[6..12], ports[j].mac, "source MAC is the output NIC's");
            let hlen = (buf[ETH_HLEN] & 0x0F) as usize * 4;
            assert!(hlen >= 20 && ETH_HLEN + hlen <= n);
            assert_eq!(buf[ETH_HLEN + 8], before[ETH_HLEN + 8] - 1, "TTL decremented");
            assert!(verifies(&buf[ETH_HLEN..ETH_HLEN + hlen]), "forwarded header checksum does not verify");
            // Everything but TTL and checksum as it was (slice comparisons: one memcmp each).
            assert!(buf[12..ETH_HLEN + 8] == before[12..ETH_HLEN + 8], "a header byte before the TTL changed");
            assert!(buf[ETH_HLEN + 9] == before[ETH_HLEN + 9], "the protocol changed");
            assert!(buf[ETH_HLEN + 12..] == before[ETH_HLEN + 12..], "a byte after the checksum changed");
        }
        Verdict::ArpReply => {
            assert!(n >= ARP_LEN && n <= FRAME_MAX);
            assert!(port < 2);
            assert_eq!(buf[..6], before[ETH_HLEN + 8..ETH_HLEN + 14], "reply goes to the requester");
            assert_eq!(buf[6..12], ports[port].mac);
            assert_eq!(buf[ETH_HLEN + 6..ETH_HLEN + 8], [0, 2], "opcode 2");
            assert_eq!(buf[ETH_HLEN + 14..ETH_HLEN + 18], ports[port].cfg.addr, "sender IP = the asked address");
            assert!(buf[ARP_LEN..] == before[ARP_LEN..], "padding untouched");
        }
    }
}

/// The forwarder's accounting: every received frame was forwarded, answered, dropped for
/// one reason, or waits in an out queue (`queued`: frames a NIC did not take yet).
fn adds_up(c: &Counters, queued: usize) {
    assert_eq!(c.rx_frames, c.forwarded + c.arp_replies + c.dropped + queued as u64, "{c:?}, {queued} queued");
    assert_eq!(c.dropped, c.drops.iter().sum::<u64>(), "{c:?}");
    assert_eq!(c.tx_frames, c.forwarded + c.arp_replies, "{c:?}");
}

fuzz_target!(
    init: {
        rref::host::HostHeap::install();
    },
    |data: &[u8]| {
        let mut inp = Input::new(data);
        let cfg = config(&mut inp);
        let rings = [inp.u8() as usize % 65, inp.u8() as usize % 65, inp.u8() as usize % 65, inp.u8() as usize % 65];
        let pool = inp.u8() as usize % 48;
        let fails = inp.u8();
        let ports = [PortState::new(cfg.ports[0], MAC_A), PortState::new(cfg.ports[1], MAC_B)];

        let a = FakeNic::new(MAC_A, rings[0], rings[1], (fails & 3) as u32, ((fails >> 2) & 3) as u32);
        let b = FakeNic::new(MAC_B, rings[2], rings[3], ((fails >> 4) & 3) as u32, ((fails >> 6) & 3) as u32);
        let mut frames = 0usize;
        while !inp.is_empty() && frames < 64 {
            let port = (inp.u8() & 1) as usize;
            let len = inp.u16() as usize % (PKT_DATA + 64);
            let frame = inp.bytes(len);
            check_process(frame, port, &ports);
            let nic = if port == 0 { &a } else { &b };
            nic.st.lock().unwrap().incoming.push_back(frame.to_vec());
            frames += 1;
        }

        let Ok(mut fwd) = Forwarder::new([&a, &b], &cfg, pool) else { return };
        let initial = fwd.pool_len();
        // Rounds until everything that can move has moved: the NICs have nothing left to
        // deliver, or five rounds in a row received nothing (a ring without buffers).
        let mut idle = 0;
        for _ in 0..(frames + 8) {
            let rx_before = fwd.counters().rx_frames;
            fwd.round();
            let c = fwd.counters();
            adds_up(c, fwd.queued());
            assert_eq!(
                fwd.pool_len() + fwd.queued() + a.held() + b.held() + a.lost() + b.lost(),
                initial + c.replaced as usize,
                "a buffer leaked: {c:?}"
            );
            idle = if c.rx_frames == rx_before { idle + 1 } else { 0 };
            if (a.pending() == 0 && b.pending() == 0 && c.rounds > 4) || idle > 4 {
                break;
            }
        }
        let c = fwd.counters();
        assert!(c.rx_frames as usize <= frames);
    }
);
