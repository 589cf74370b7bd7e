//! Fuzz target `net`: frames into the network stack (`frond-net`'s `Stack`, smoltcp).
//!
//! A `Stack` (10.0.0.1/24, gateway 10.0.0.254) on a fake NIC — the host tests' model: a
//! wire of frames to and from the stack, posted receive buffers, sent buffers returned in
//! `done` — with a UDP socket on port 7 and a TCP listener on port 80. The input is a
//! sequence of operations, each starting with one byte:
//!
//! * a raw Ethernet frame (`length (2 bytes) | bytes`) onto the wire;
//! * a UDP datagram from 10.0.0.2 to a port and payload the input gives, checksums right;
//! * a TCP segment from 10.0.0.2:4000 to port 80 answering the last segment the stack
//!   sent (sequence and acknowledgement numbers derived from it, so the fuzzer reaches
//!   established connections), with flags and payload from the input, checksums right;
//! * time passing (up to 65 s) and a poll;
//! * the application's part: accept, receive and echo on every connection and on the
//!   UDP socket, close a connection, or a `send` of input bytes.
//!
//! Every frame operation is followed by a poll. Checked after each poll: the stack
//! received no more frames than were put on the wire; its free pool is within
//! `POOL_MAX`; at most `MAX_SOCKETS` sockets; every frame it sent is between 14 and
//! FRAME_MAX bytes, comes from its MAC, and (IPv4) has a header checksum that verifies.

#![no_main]

use std::collections::VecDeque;
use std::sync::Mutex;

use frond_fuzz::{inet_csum, Input};
use frond_interface::net::{Batch, Ipv4Config, Nic, NicInfo, NicStats, Pkt, SockBuf, SockId, FRAME_MAX, PKT_DATA};
use frond_interface::{RRef, RpcResult};
use frond_net::stack::{Stack, MAX_SOCKETS, POOL_MAX};
use libfuzzer_sys::fuzz_target;

const STACK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const STACK_IP: [u8; 4] = [10, 0, 0, 1];
const PEER_IP: [u8; 4] = [10, 0, 0, 2];
const MS: u64 = 1_000_000;

#[derive(Default)]
struct Wire {
    to_stack: VecDeque<Vec<u8>>,
    from_stack: Vec<Vec<u8>>,
    posted: VecDeque<RRef<Pkt>>,
    completed: VecDeque<RRef<Pkt>>,
    delivered: u64,
}

#[derive(Default)]
struct FakeNic {
    w: Mutex<Wire>,
}

impl Nic for FakeNic {
    fn info(&self) -> RpcResult<NicInfo> {
        Ok(NicInfo { mac: STACK_MAC, queue_size: 64, bdf: 0xffff })
    }
    fn stats(&self) -> RpcResult<NicStats> {
        Ok(NicStats::default())
    }
    fn tx(&self, mut b: Batch) -> RpcResult<Batch> {
        let mut w = self.w.lock().unwrap();
        while let Some(p) = b.pkts.pop_front() {
            assert!(p.len as usize <= PKT_DATA);
            let f = p.frame().to_vec();
            w.from_stack.push(f);
            w.completed.push_back(p);
        }
        while !b.done.is_full() {
            let Some(p) = w.completed.pop_front() else { break };
            let _ = b.done.push_back(p);
        }
        Ok(b)
    }
    fn rx(&self, mut b: Batch) -> RpcResult<Batch> {
        let mut w = self.w.lock().unwrap();
        while w.posted.len() < 64 {
            let Some(p) = b.pkts.pop_front() else { break };
            w.posted.push_back(p);
        }
        while !b.done.is_full() && !w.posted.is_empty() {
            let Some(frame) = w.to_stack.pop_front() else { break };
            let mut p = w.posted.pop_front().unwrap();
            p.set_frame(&frame);
            w.delivered += 1;
            let _ = b.done.push_back(p);
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

fn eth(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&STACK_MAC);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(payload);
    f
}

fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&PEER_IP);
    h.extend_from_slice(&STACK_IP);
    let c = inet_csum(&h, 0);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn pseudo(proto: u8, len: usize) -> u32 {
    let mut s = 0u32;
    for w in [&PEER_IP, &STACK_IP] {
        s += u32::from(u16::from_be_bytes([w[0], w[1]])) + u32::from(u16::from_be_bytes([w[2], w[3]]));
    }
    s + u32::from(proto) + len as u32
}

fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&5000u16.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let c = inet_csum(&u, pseudo(17, u.len()));
    u[6..8].copy_from_slice(&c.to_be_bytes());
    eth(&ipv4(17, &u))
}

fn tcp(seq: u32, ack: u32, flags: u8, window: u16, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&4000u16.to_be_bytes());
    t.extend_from_slice(&80u16.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags]);
    t.extend_from_slice(&window.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(payload);
    let c = inet_csum(&t, pseudo(6, t.len()));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    eth(&ipv4(6, &t))
}

/// (seq, ack, flags, payload length) of the last TCP segment the stack sent.
fn last_tcp(sent: &[Vec<u8>]) -> Option<(u32, u32, u8, usize)> {
    sent.iter().rev().find_map(|f| {
        if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
            return None;
        }
        let ihl = (f[14] & 0x0F) as usize * 4;
        let total = u16::from_be_bytes([f[16], f[17]]) as usize;
        let t = f.get(14 + ihl..14 + total.max(ihl))?;
        if t.len() < 20 {
            return None;
        }
        let off = (t[12] >> 4) as usize * 4;
        let seq = u32::from_be_bytes(t[4..8].try_into().unwrap());
        let ack = u32::from_be_bytes(t[8..12].try_into().unwrap());
        Some((seq, ack, t[13], t.len().saturating_sub(off)))
    })
}

fn check_sent(frames: &[Vec<u8>]) {
    for f in frames {
        assert!(f.len() >= 14 && f.len() <= FRAME_MAX, "the stack sent a {}-byte frame", f.len());
        assert_eq!(f[6..12], STACK_MAC, "a frame from another MAC");
        if f[12..14] == [0x08, 0x00] && f.len() >= 34 {
            let ihl = (f[14] & 0x0F) as usize * 4;
            assert!(ihl >= 20 && 14 + ihl <= f.len());
            assert_eq!(inet_csum(&f[14..14 + ihl], 0), 0, "an IPv4 header checksum that does not verify");
        }
    }
}

struct App {
    listener: Option<SockId>,
    udp: Option<SockId>,
    conns: Vec<SockId>,
}

fuzz_target!(
    init: {
        rref::host::HostHeap::install();
    },
    |data: &[u8]| {
        let mut inp = Input::new(data);
        let nic = FakeNic::default();
        let cfg = Ipv4Config { addr: STACK_IP, prefix: 24, gateway: [10, 0, 0, 254] };
        let mut now = 1_000 * MS;
        let mut st = Stack::new(&nic, cfg, now).expect("a stack on the fake NIC");
        let mut app = App { listener: st.tcp_listen(80, 1 + inp.u8() % 2).ok(), udp: st.udp_bind(7).ok(), conns: Vec::new() };
        let mut put = 0u64;
        let mut buf = SockBuf::empty();
        let mut ops = 0;
        let mut checked = 0;
        while !inp.is_empty() && ops < 64 {
            ops += 1;
            let frame = match inp.u8() % 8 {
                0 => {
                    let n = inp.u16() as usize % (PKT_DATA + 16);
                    Some(inp.bytes(n).to_vec())
                }
                1 => {
                    let port = if inp.bool() { 7 } else { inp.u16() };
                    Some(udp(port, inp.lv(255)))
                }
                2 | 3 => {
                    let (seq, ack, flags, len) = last_tcp(&nic.w.lock().unwrap().from_stack).unwrap_or((0, 0, 0, 0));
                    let (my_seq, my_ack) = if flags & 0x02 != 0 || len > 0 || flags & 0x01 != 0 {
                        (ack, seq.wrapping_add(len as u32).wrapping_add(u32::from(flags & 0x03 != 0)))
                    } else {
                        (ack, seq)
                    };
                    let fl = match inp.u8() % 6 {
                        0 => 0x02,        // SYN
                        1 => 0x10,        // ACK
                        2 => 0x18,        // PSH ACK
                        3 => 0x11,        // FIN ACK
                        4 => 0x04,        // RST
                        _ => inp.u8(),
                    };
                    let skew = [0, 0, 0, 1, u32::MAX, 1000][inp.u8() as usize % 6];
                    let seq = if fl == 0x02 { inp.u32() } else { my_seq.wrapping_add(skew) };
                    let win = 0x100u16.wrapping_add(inp.u16());
                    Some(tcp(seq, my_ack, fl, win, inp.lv(255)))
                }
                4 => {
                    now += u64::from(inp.u16()) * MS;
                    None
                }
                5 => {
                    if let Some(l) = app.listener {
                        if let Ok(Some(c)) = st.tcp_accept(l) {
                            app.conns.push(c);
                        }
                    }
                    for &c in &app.conns {
                        if let Ok(n) = st.recv(c, &mut buf) {
                            if n > 0 {
                                let _ = st.send(c, &buf);
                            }
                        }
                    }
                    if let Some(u) = app.udp {
                        if let Ok(n) = st.recv(u, &mut buf) {
                            if n > 0 {
                                let _ = st.send(u, &buf);
                            }
                        }
                    }
                    st.egress(&nic, now);
                    None
                }
                6 => {
                    if !app.conns.is_empty() {
                        let i = inp.u8() as usize % app.conns.len();
                        let c = app.conns.swap_remove(i);
                        let _ = st.close(c);
                    }
                    None
                }
                _ => {
                    let payload = inp.lv(255);
                    buf.data[..payload.len()].copy_from_slice(payload);
                    buf.len = payload.len() as u32;
                    buf.addr = PEER_IP;
                    buf.port = 5000;
                    let target = match inp.u8() % 3 {
                        0 => app.udp,
                        1 => app.conns.first().copied(),
                        _ => Some(SockId(inp.u32())),
                    };
                    if let Some(s) = target {
                        let _ = st.send(s, &buf);
                        let _ = st.send_drained(s);
                    }
                    None
                }
            };
            if let Some(f) = frame {
                if frond_fuzz::debug() {
                    eprintln!("op {ops}: frame of {} bytes: {:02x?}", f.len(), &f[..f.len().min(60)]);
                }
                nic.w.lock().unwrap().to_stack.push_back(f);
                put += 1;
            }
            now += MS;
            st.poll(&nic, now);
            let _ = st.poll_delay(now);
            let stats = st.stats();
            let w = nic.w.lock().unwrap();
            assert_eq!(stats.rx_frames, w.delivered, "frames the NIC delivered vs the stack's count");
            assert!(w.delivered <= put);
            assert!(st.pool_len() <= POOL_MAX);
            assert!(stats.sockets as usize <= MAX_SOCKETS);
            check_sent(&w.from_stack[checked..]);
            if frond_fuzz::debug() {
                for f in &w.from_stack[checked..] {
                    eprintln!("  sent {} bytes: {:02x?}", f.len(), &f[..f.len().min(60)]);
                }
                eprintln!("  connections {:?}", app.conns);
            }
            checked = w.from_stack.len();
        }
    }
);
