//! Host tests: the stack behind a fake NIC whose frames go to and come from an in-memory
//! wire; on the other end of the wire either hand-built frames or a smoltcp client
//! interface driven by the test. Time is a test clock advanced by the test.

use crate::http::{self, Parsed, Route, Status};
use crate::services::{Services, Step, ECHO_BACKLOG, HTTP_BACKLOG};
use crate::shared::{Env, SharedStack};
use crate::stack::{Stack, MAX_SOCKETS};
use frond_interface::net::*;
use frond_interface::{RRef, Remote, RpcError, RpcResult};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, HardwareAddress, Icmpv4Packet,
    Icmpv4Repr, IpAddress, IpCidr, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr,
};
use std::boxed::Box;
use std::collections::VecDeque;
use std::string::String;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::vec;
use std::vec::Vec;

const STACK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const STACK_IP: [u8; 4] = [10, 0, 0, 1];
const CLIENT_IP: [u8; 4] = [10, 0, 0, 2];
const MS: u64 = 1_000_000;

fn cfg() -> Ipv4Config {
    Ipv4Config { addr: STACK_IP, prefix: 24, gateway: [10, 0, 0, 254] }
}

fn heap() {
    rref::host::HostHeap::install();
}

// ------------------------------------------------------------------------------------
// The wire and the fake NIC.

#[derive(Default)]
struct Link {
    /// Frames on their way to the stack.
    to_stack: VecDeque<Vec<u8>>,
    /// Frames the stack sent.
    from_stack: VecDeque<Vec<u8>>,
    /// A copy of every frame the stack sent, for tests that read its sequence numbers.
    log: Vec<Vec<u8>>,
}

type Wire = Arc<Mutex<Link>>;

/// What the test sees and controls of a fake NIC.
#[derive(Default)]
struct NicCtl {
    /// Every call fails (as if the driver crashed) while set.
    fail: AtomicBool,
    /// Frames taken per `tx` call at most (0: no limit).
    tx_room: AtomicUsize,
    /// Posted receive buffers.
    posted: Mutex<VecDeque<RRef<Pkt>>>,
    /// Sent buffers not returned yet.
    completed: Mutex<VecDeque<RRef<Pkt>>>,
    tx_calls: AtomicU64,
    rx_calls: AtomicU64,
}

/// Receive buffers the device holds.
const NIC_QUEUE: usize = 64;

struct FakeNic {
    wire: Wire,
    ctl: Arc<NicCtl>,
}

impl Nic for FakeNic {
    fn info(&self) -> RpcResult<NicInfo> {
        Ok(NicInfo { mac: STACK_MAC, queue_size: NIC_QUEUE as u16, bdf: 0xffff })
    }
    fn stats(&self) -> RpcResult<NicStats> {
        Ok(NicStats::default())
    }
    fn tx(&self, mut b: Batch) -> RpcResult<Batch> {
        self.ctl.tx_calls.fetch_add(1, SeqCst);
        if self.ctl.fail.load(SeqCst) {
            return Err(RpcError::Panicked);
        }
        let room = match self.ctl.tx_room.load(SeqCst) {
            0 => usize::MAX,
            n => n,
        };
        let mut completed = self.ctl.completed.lock().unwrap();
        let mut taken = 0;
        while taken < room {
            let Some(p) = b.pkts.pop_front() else { break };
            assert!(p.len as usize <= PKT_DATA);
            if p.len as usize <= FRAME_MAX {
                let mut link = self.wire.lock().unwrap();
                link.from_stack.push_back(p.frame().to_vec());
                link.log.push(p.frame().to_vec());
            }
            completed.push_back(p);
            taken += 1;
        }
        while !b.done.is_full() {
            let Some(p) = completed.pop_front() else { break };
            let _ = b.done.push_back(p);
        }
        Ok(b)
    }
    fn rx(&self, mut b: Batch) -> RpcResult<Batch> {
        self.ctl.rx_calls.fetch_add(1, SeqCst);
        if self.ctl.fail.load(SeqCst) {
            return Err(RpcError::Panicked);
        }
        let mut posted = self.ctl.posted.lock().unwrap();
        while posted.len() < NIC_QUEUE {
            let Some(p) = b.pkts.pop_front() else { break };
            posted.push_back(p);
        }
        let mut link = self.wire.lock().unwrap();
        while !b.done.is_full() && !posted.is_empty() {
            let Some(frame) = link.to_stack.pop_front() else { break };
            let mut p = posted.pop_front().unwrap();
            p.set_frame(&frame);
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

fn fake_nic() -> (FakeNic, Wire, Arc<NicCtl>) {
    let wire = Wire::default();
    let ctl = Arc::new(NicCtl::default());
    (FakeNic { wire: wire.clone(), ctl: ctl.clone() }, wire, ctl)
}

struct TestEnv {
    clock: Arc<AtomicU64>,
}

impl Env for TestEnv {
    type Lock = spin::Mutex<()>;
    fn now_ns(&self) -> u64 {
        self.clock.load(SeqCst)
    }
    /// Advances the test clock, and lets a little real time pass for other threads.
    fn sleep_ns(&self, ns: u64) {
        self.clock.fetch_add(ns, SeqCst);
        std::thread::sleep(std::time::Duration::from_micros(20));
    }
}

// ------------------------------------------------------------------------------------
// Hand-built frames.

fn sum16(data: &[u8], mut acc: u32) -> u32 {
    for c in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

fn eth(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&CLIENT_IP);
    h.extend_from_slice(&STACK_IP);
    let c = fold(sum16(&h, 0));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn pseudo(proto: u8, len: usize) -> u32 {
    let mut p = Vec::new();
    p.extend_from_slice(&CLIENT_IP);
    p.extend_from_slice(&STACK_IP);
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    sum16(&p, 0)
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let c = fold(sum16(&u, pseudo(17, u.len())));
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

fn tcp_syn(sport: u16, dport: u16, seq: u32) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(&[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    let c = fold(sum16(&t, pseudo(6, t.len())));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

fn icmp_echo(ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let c = fold(sum16(&m, 0));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn arp_request() -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&CLIENT_MAC);
    a.extend_from_slice(&CLIENT_IP);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&STACK_IP);
    eth([0xff; 6], 0x0806, &a)
}

fn ping_frame(ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    eth(STACK_MAC, 0x0800, &ipv4(1, &icmp_echo(ident, seq, data)))
}

fn udp_frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    eth(STACK_MAC, 0x0800, &ipv4(17, &udp(sport, dport, payload)))
}

/// The echo reply to our ping among `frames`, checked end to end (checksums verified).
fn echo_reply(frames: &[Vec<u8>], ident: u16, seq: u16) -> Option<Vec<u8>> {
    let caps = ChecksumCapabilities::default();
    for f in frames {
        let Ok(eth) = EthernetFrame::new_checked(&f[..]) else { continue };
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            continue;
        }
        assert_eq!(eth.dst_addr(), EthernetAddress(CLIENT_MAC));
        assert_eq!(eth.src_addr(), EthernetAddress(STACK_MAC));
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let ip_repr = Ipv4Repr::parse(&ip, &caps).expect("valid IPv4 header and checksum");
        if ip_repr.next_header != IpProtocol::Icmp {
            continue;
        }
        assert_eq!(ip_repr.src_addr, Ipv4Address::from(STACK_IP));
        assert_eq!(ip_repr.dst_addr, Ipv4Address::from(CLIENT_IP));
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        if let Icmpv4Repr::EchoReply { ident: i, seq_no, data } =
            Icmpv4Repr::parse(&icmp, &caps).expect("valid ICMP checksum")
        {
            if i == ident && seq_no == seq {
                return Some(data.to_vec());
            }
        }
    }
    None
}

/// A stack on a fake NIC, polled by hand.
struct Bare {
    stack: Stack,
    nic: FakeNic,
    wire: Wire,
    ctl: Arc<NicCtl>,
    now: u64,
}

impl Bare {
    fn new() -> Self {
        heap();
        let (nic, wire, ctl) = fake_nic();
        let stack = Stack::new(&nic, cfg(), 12_345).unwrap();
        Bare { stack, nic, wire, ctl, now: 1_000 * MS }
    }

    fn inject(&self, frame: Vec<u8>) {
        self.wire.lock().unwrap().to_stack.push_back(frame);
    }

    fn poll(&mut self) -> bool {
        self.now += MS;
        self.stack.poll(&self.nic, self.now)
    }

    fn sent(&self) -> Vec<Vec<u8>> {
        self.wire.lock().unwrap().from_stack.drain(..).collect()
    }

    /// Pings and returns the reply's payload, if one came.
    fn ping(&mut self, seq: u16, data: &[u8]) -> Option<Vec<u8>> {
        self.inject(ping_frame(0x4242, seq, data));
        self.poll();
        echo_reply(&self.sent(), 0x4242, seq)
    }
}

// ------------------------------------------------------------------------------------
// A smoltcp client on the other end of the wire.

struct ClientRx(Vec<u8>);
struct ClientTx(Wire);

impl smoltcp::phy::RxToken for ClientRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl smoltcp::phy::TxToken for ClientTx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut v = vec![0; len];
        let r = f(&mut v);
        self.0.lock().unwrap().to_stack.push_back(v);
        r
    }
}

struct ClientDev(Wire);

impl Device for ClientDev {
    type RxToken<'a> = ClientRx;
    type TxToken<'a> = ClientTx;
    fn receive(&mut self, _ts: Instant) -> Option<(ClientRx, ClientTx)> {
        let f = self.0.lock().unwrap().from_stack.pop_front()?;
        Some((ClientRx(f), ClientTx(self.0.clone())))
    }
    fn transmit(&mut self, _ts: Instant) -> Option<ClientTx> {
        Some(ClientTx(self.0.clone()))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = FRAME_MAX;
        c
    }
}

struct Client {
    iface: Interface,
    sockets: SocketSet<'static>,
    dev: ClientDev,
}

impl Client {
    fn new(wire: Wire, now: u64) -> Self {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(CLIENT_MAC)));
        config.random_seed = 7;
        let mut dev = ClientDev(wire);
        let mut iface = Interface::new(config, &mut dev, Instant::from_micros((now / 1000) as i64));
        iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::Ipv4(CLIENT_IP.into()), 24)).unwrap());
        Client { iface, sockets: SocketSet::new(Vec::new()), dev }
    }

    fn poll(&mut self, now: u64) {
        self.iface.poll(Instant::from_micros((now / 1000) as i64), &mut self.dev, &mut self.sockets);
    }

    fn connect(&mut self, port: u16, local: u16) -> SocketHandle {
        let mut s =
            tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 256 * 1024]), tcp::SocketBuffer::new(vec![0; 64 * 1024]));
        s.connect(self.iface.context(), (IpAddress::Ipv4(STACK_IP.into()), port), local).unwrap();
        self.sockets.add(s)
    }

    fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }
}

/// A domain table with three domains.
struct FakeSystem;

fn row(id: u32, name: &str, generation: u64, state: u8, restarts: u64) -> DomainRow {
    let mut r = DomainRow {
        id,
        generation,
        state,
        restarts,
        heap_used: 64 * 1024 * id as u64,
        heap_reserved: 1 << 20,
        rrefs: 3 * id as u64,
        rref_bytes: 100,
        calls: 1000 + id as u64,
        crashes: restarts,
        ..Default::default()
    };
    r.name[..name.len()].copy_from_slice(name.as_bytes());
    r.name_len = name.len() as u8;
    r
}

impl System for FakeSystem {
    fn domains(&self, mut t: RRef<DomainTable>) -> RpcResult<RRef<DomainTable>> {
        t.rows[0] = row(1, "virtio-net", 2, 0, 1);
        t.rows[1] = row(2, "netstack", 1, 0, 0);
        t.rows[2] = row(3, "services", 1, 0, 0);
        t.rows[3] = row(4, "echo<&>", 3, 1, 2);
        t.len = 4;
        t.uptime_ms = 3_723_456;
        t.shared_heap_used = 3 << 20;
        t.shared_heap_size = 64 << 20;
        Ok(t)
    }
}

/// The full path: client ⇄ wire ⇄ fake NIC ⇄ stack ⇄ services.
struct Net {
    wire: Wire,
    clock: Arc<AtomicU64>,
    shared: SharedStack<TestEnv>,
    ctl: Arc<NicCtl>,
    client: Client,
    services: Services,
    last_step: Step,
}

impl Net {
    fn new() -> Self {
        heap();
        let clock = Arc::new(AtomicU64::new(5_000 * MS));
        let (nic, wire, ctl) = fake_nic();
        let stack = Stack::new(&nic, cfg(), clock.load(SeqCst)).unwrap();
        let shared = SharedStack::new(Remote::local(Box::new(nic)), stack, TestEnv { clock: clock.clone() });
        let client = Client::new(wire.clone(), clock.load(SeqCst));
        let mut net = Net { wire, clock, shared, ctl, client, services: Services::new(), last_step: Step::default() };
        net.tick();
        assert!(net.services.is_open(), "services did not open their sockets: {:?}", net.last_step);
        net
    }

    fn tick(&mut self) {
        let now = self.clock.fetch_add(MS, SeqCst) + MS;
        self.client.poll(now);
        self.shared.poll();
        self.last_step = self.services.step(&self.shared, &FakeSystem, now);
        self.client.poll(now);
    }

    /// Ticks until `done` holds; false if it did not within `max` ticks.
    fn run(&mut self, max: usize, mut done: impl FnMut(&mut Net) -> bool) -> bool {
        for _ in 0..max {
            if done(self) {
                return true;
            }
            self.tick();
        }
        done(self)
    }

    fn stack_stats(&self) -> StackStats {
        self.shared.stats().unwrap()
    }

    /// One HTTP exchange: sends `request`, returns everything received until the server
    /// closed.
    fn http(&mut self, local: u16, request: &[u8]) -> Vec<u8> {
        let h = self.client.connect(HTTP_PORT, local);
        let mut sent = 0;
        let mut got = Vec::new();
        let ok = self.run(20_000, |n| {
            let s = n.client.tcp(h);
            if s.may_send() && sent < request.len() {
                sent += s.send_slice(&request[sent..]).unwrap();
            }
            let mut buf = [0u8; 4096];
            while let Ok(k) = s.recv_slice(&mut buf) {
                if k == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..k]);
            }
            if s.state() == tcp::State::CloseWait {
                s.close();
            }
            matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait)
        });
        assert!(ok, "the HTTP exchange did not finish; got {} bytes", got.len());
        self.client.sockets.remove(h);
        got
    }
}

/// Deterministic test bytes.
fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Splits a response into (status code, headers, body).
fn split_response(resp: &[u8]) -> (u16, String, Vec<u8>) {
    let end = resp.windows(4).position(|w| w == b"\r\n\r\n").expect("response has a blank line") + 4;
    let head = String::from_utf8(resp[..end].to_vec()).unwrap();
    let code = head[9..12].parse().unwrap();
    (code, head, resp[end..].to_vec())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

// ------------------------------------------------------------------------------------
// Link layer and ICMP.

#[test]
fn arp_request_is_answered_and_ping_gets_an_exact_reply() {
    let mut b = Bare::new();
    b.inject(arp_request());
    assert!(b.poll(), "a poll that received a frame reports progress");
    let frames = b.sent();
    let reply = frames
        .iter()
        .find_map(|f| {
            let eth = EthernetFrame::new_checked(&f[..]).ok()?;
            (eth.ethertype() == EthernetProtocol::Arp)
                .then(|| ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap())
        })
        .expect("an ARP reply");
    assert_eq!(
        reply,
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(STACK_MAC),
            source_protocol_addr: STACK_IP.into(),
            target_hardware_addr: EthernetAddress(CLIENT_MAC),
            target_protocol_addr: CLIENT_IP.into(),
        }
    );

    let data = pattern(1000, 3);
    assert_eq!(b.ping(1, &data).as_deref(), Some(&data[..]), "the echo reply carries the request's data");
    let st = b.stack.stats();
    assert_eq!(st.rx_frames, 2);
    assert_eq!(st.tx_frames, 2);
    assert_eq!(st.nic_errors, 0);
    // Buffers came back: the sent ones from the NIC, the received ones from smoltcp.
    assert!(b.stack.pool_len() > 0);
}

#[test]
fn ping_to_another_address_is_ignored_and_idle_poll_reports_nothing() {
    let mut b = Bare::new();
    b.inject(arp_request());
    b.poll();
    b.sent();
    assert!(!b.poll(), "nothing to do");
    let mut other = ipv4(1, &icmp_echo(1, 1, b"x"));
    other[19] = 9; // destination 10.0.0.9
    let c = fold(sum16(
        &{
            let mut h = other[..20].to_vec();
            h[10] = 0;
            h[11] = 0;
            h
        },
        0,
    ));
    other[10..12].copy_from_slice(&c.to_be_bytes());
    b.inject(eth(STACK_MAC, 0x0800, &other));
    b.poll();
    assert_eq!(echo_reply(&b.sent(), 1, 1), None);
}

// ------------------------------------------------------------------------------------
// Robustness.

/// Every kind of broken frame: none may panic the stack, none with a bad checksum may be
/// delivered, and the stack answers as before afterwards.
#[test]
fn malformed_frames_never_panic_and_the_stack_still_answers() {
    let mut b = Bare::new();
    let sock = b.stack.udp_bind(9).unwrap();
    b.inject(arp_request());
    b.poll();
    b.sent();

    let good_udp = udp_frame(4000, 9, b"valid datagram");
    let good_ping = ping_frame(7, 7, b"abcdefgh");
    let good_syn = eth(STACK_MAC, 0x0800, &ipv4(6, &tcp_syn(4001, 80, 1234)));
    let mut bad: Vec<Vec<u8>> = Vec::new();

    // Random bytes of every length class, with and without a plausible Ethernet header.
    let mut seed = 0x1234_5678u32;
    for len in [0usize, 1, 13, 14, 15, 20, 33, 34, 42, 60, 64, 100, 576, 1514, 1515, 2036] {
        let mut f = pattern(len, seed);
        seed = seed.wrapping_mul(31).wrapping_add(7);
        bad.push(f.clone());
        if len >= 14 {
            f[..6].copy_from_slice(&STACK_MAC);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            bad.push(f.clone());
            f[12..14].copy_from_slice(&[0x08, 0x06]);
            bad.push(f);
        }
    }
    // Every truncation of valid frames.
    for good in [&good_udp, &good_ping, &good_syn, &arp_request()] {
        for cut in 0..good.len() {
            bad.push(good[..cut].to_vec());
        }
    }
    // Bad IPv4 header checksum.
    let mut f = good_ping.clone();
    f[14 + 10] ^= 0xff;
    bad.push(f);
    // Bad ICMP, UDP and TCP checksums.
    let mut f = ping_frame(7, 8, b"abcdefgh");
    f[14 + 20 + 2] ^= 0x55;
    bad.push(f);
    let mut bad_udp_sum = udp_frame(4000, 9, b"bad checksum");
    bad_udp_sum[14 + 20 + 6] ^= 0x55;
    bad.push(bad_udp_sum);
    let mut f = good_syn.clone();
    f[14 + 20 + 16] ^= 0x55;
    bad.push(f);
    // IPv4 total length beyond the frame, below the header, header length 0..4 and 15,
    // version 6 in an IPv4 ethertype, and UDP lengths too long and too short.
    for total in [0u16, 10, 19, 21, 500, 65535] {
        let mut f = good_udp.clone();
        f[14 + 2..14 + 4].copy_from_slice(&total.to_be_bytes());
        bad.push(f);
    }
    for ihl in [0u8, 1, 4, 15] {
        let mut f = good_udp.clone();
        f[14] = 0x40 | ihl;
        bad.push(f);
    }
    let mut f = good_udp.clone();
    f[14] = 0x65;
    bad.push(f);
    for ulen in [0u16, 7, 9, 200, 65535] {
        let mut f = good_udp.clone();
        f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&ulen.to_be_bytes());
        bad.push(f);
    }
    // A TCP header length shorter than the header and longer than the segment.
    for off in [0x00u8, 0x10, 0xf0] {
        let mut f = good_syn.clone();
        f[14 + 20 + 12] = off;
        bad.push(f);
    }
    // Oversized: a full buffer of a valid-looking frame.
    let mut big = udp_frame(4000, 9, &[0xab; 2000]);
    big.truncate(PKT_DATA);
    bad.push(big);
    // Single bit flips across a valid frame.
    for bit in (0..good_udp.len() * 8).step_by(5) {
        let mut f = good_udp.clone();
        f[bit / 8] ^= 1 << (bit % 8);
        bad.push(f);
    }
    let n = bad.len();
    for chunk in bad.chunks(40) {
        for f in chunk {
            b.inject(f.clone());
        }
        b.poll();
    }
    b.sent();
    assert!(b.stack.stats().rx_frames as usize > n, "every frame reached the stack");
    // Whatever the bit flips let through, the datagram with a bad checksum was not
    // delivered: drain and check none carries its payload.
    let mut buf = SockBuf::empty();
    while b.stack.recv(sock, &mut buf).unwrap() > 0 {
        assert_ne!(buf.bytes(), b"bad checksum");
    }

    // Still answering: ping, and a valid datagram is delivered with its source.
    let data = pattern(56, 9);
    assert_eq!(b.ping(99, &data).as_deref(), Some(&data[..]));
    b.inject(good_udp);
    b.poll();
    assert_eq!(b.stack.recv(sock, &mut buf), Ok(14));
    assert_eq!(buf.bytes(), b"valid datagram");
    assert_eq!((buf.addr, buf.port), (CLIENT_IP, 4000));
    assert_eq!(b.stack.stats().nic_errors, 0);
}

/// A NIC whose calls fail (its driver crashed) is counted and the stack carries on.
#[test]
fn failing_nic_calls_are_counted_and_the_stack_recovers() {
    let mut b = Bare::new();
    b.inject(arp_request());
    b.poll();
    b.sent();
    b.ctl.fail.store(true, SeqCst);
    for _ in 0..5 {
        b.inject(ping_frame(1, 1, b"lost"));
        b.poll();
    }
    // The driver "restarts": its posted buffers are gone with it.
    b.ctl.posted.lock().unwrap().clear();
    b.ctl.completed.lock().unwrap().clear();
    b.ctl.fail.store(false, SeqCst);
    let errors = b.stack.stats().nic_errors;
    assert!(errors >= 5, "every failed rx call is counted: {errors}");
    b.wire.lock().unwrap().to_stack.clear();
    assert_eq!(b.ping(2, b"back").as_deref(), Some(&b"back"[..]));
    assert_eq!(b.stack.stats().nic_errors, errors);
}

/// The TCP flags of the stack's answers to our port `sport` among `frames`.
fn tcp_answers(frames: &[Vec<u8>], sport: u16) -> Vec<u8> {
    frames
        .iter()
        .filter(|f| f.len() >= 54 && f[12..14] == [0x08, 0x00] && f[23] == 6)
        .filter(|f| u16::from_be_bytes([f[36], f[37]]) == sport)
        .map(|f| f[47])
        .collect()
}

/// A SYN flood from an address that never completes its handshakes fills a listener's
/// backlog with half-open connections; smoltcp alone would keep them for its 120 s idle
/// timeout and refuse every new connection meanwhile. The stack gives them up after
/// `HALF_OPEN_NS` and the listener accepts again.
#[test]
fn half_open_connections_of_a_syn_flood_expire_and_the_listener_accepts_again() {
    use crate::stack::HALF_OPEN_NS;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;
    let mut b = Bare::new();
    b.inject(arp_request());
    b.poll();
    b.sent();
    let l = b.stack.tcp_listen(80, 4).unwrap();
    // Four SYNs take the four listening sockets; none is ever completed.
    for i in 0..4u16 {
        b.inject(eth(STACK_MAC, 0x0800, &ipv4(6, &tcp_syn(5000 + i, 80, 1000 * u32::from(i)))));
        b.poll();
        assert_eq!(tcp_answers(&b.sent(), 5000 + i), [SYN | ACK], "SYN {i} not answered with a SYN-ACK");
    }
    let syn = |b: &mut Bare, port: u16| {
        b.inject(eth(STACK_MAC, 0x0800, &ipv4(6, &tcp_syn(port, 80, 77))));
        b.poll();
        let answers = tcp_answers(&b.sent(), port);
        answers.first().copied()
    };
    // The backlog is full: a fifth is refused.
    assert_eq!(syn(&mut b, 6000).map(|f| f & RST), Some(RST), "a full backlog answers RST");
    // Still refused before the half-open ones expire.
    b.now += HALF_OPEN_NS / 2;
    b.poll();
    b.sent();
    assert_eq!(syn(&mut b, 6001).map(|f| f & RST), Some(RST));
    assert_eq!(b.stack.half_open_expired(), 0);
    // Past the bound: all four given up, quietly (the peer never answered), and a new
    // SYN gets its SYN-ACK.
    b.now += HALF_OPEN_NS;
    b.poll();
    assert_eq!(b.stack.half_open_expired(), 4);
    assert!(b.sent().iter().all(|f| tcp_answers(&[f.clone()], 5000).iter().all(|&x| x & RST == 0)));
    assert_eq!(syn(&mut b, 6002), Some(SYN | ACK), "the listener did not accept again");
    // Nothing accepted, nothing leaked: the listener still has exactly its backlog.
    assert_eq!(b.stack.tcp_accept(l), Ok(None));
    assert_eq!(b.stack.stats().sockets, 4);
}

/// An ARP request for the stack's address from `ip`/`mac`.
fn arp_request_from(mac: [u8; 6], ip: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&mac);
    a.extend_from_slice(&ip);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&STACK_IP);
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&a);
    f
}

/// A flood of ARP requests for the stack's address from made-up senders in its subnet
/// used to churn smoltcp's 8-entry neighbour cache, evicting the entry of the peer being
/// served; its pings then went unanswered (smoltcp drops a reply while it resolves).
/// Now every request is still answered, but only a few reach smoltcp's cache, and the
/// peer keeps getting its replies. Gratuitous claims of the stack's own address are
/// dropped.
#[test]
fn an_arp_flood_does_not_evict_the_peers_the_stack_serves() {
    let mut b = Bare::new();
    b.inject(arp_request());
    b.poll();
    b.sent();
    let (mut answered, mut replies) = (0, 0);
    for round in 0..100u16 {
        for k in 0..50u16 {
            let n = round * 50 + k;
            let mac = [0x02, 0x99, 0, 0, (n >> 8) as u8, n as u8];
            b.inject(arp_request_from(mac, [10, 0, 0, 3 + (n % 250) as u8]));
        }
        // A claim of the stack's own address, for another MAC.
        b.inject(arp_request_from([0x02, 0x66, 0, 0, 0, 1], STACK_IP));
        b.inject(ping_frame(0x4242, round, b"still there?"));
        b.poll();
        let sent = b.sent();
        replies += usize::from(echo_reply(&sent, 0x4242, round).is_some());
        answered += sent.iter().filter(|f| f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2]).count();
    }
    assert_eq!(replies, 100, "pings answered during the ARP flood");
    assert_eq!(answered, 100 * 50, "every ARP request for the stack is answered");
    let (by_screen, dropped) = b.stack.arp_screened();
    assert!(by_screen >= 100 * 50 - 8, "the screen answered only {by_screen}");
    assert_eq!(dropped, 100, "claims of the stack's own address are dropped");
}

/// The screens read hostile frames: every truncation and thousands of random corruptions
/// of an RST, a SYN and an ARP request never make them panic or read past the frame.
#[test]
fn the_screens_survive_truncated_and_corrupted_frames() {
    use crate::arp::ArpGuard;
    use crate::rst::Seen;
    let mut seen = Seen::default();
    // A connection the stack has sent on (its ACK from STACK to CLIENT port 4000).
    let mut ours = tcp_seg(7, 4000, 5000, 100, 0x10);
    ours[6..12].copy_from_slice(&STACK_MAC);
    ours[26..30].copy_from_slice(&STACK_IP);
    ours[30..34].copy_from_slice(&CLIENT_IP);
    seen.note_sent(&ours);
    let mut guard = ArpGuard::new(STACK_MAC, STACK_IP, [10, 0, 0, 254]);
    let frames = [tcp_seg(4000, 7, 150, 5000, 0x04), tcp_seg(4000, 7, 150, 0, 0x02), arp_request()];
    let mut x: u64 = 0x1234_5678;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for f in &frames {
        for n in 0..=f.len() {
            let mut g = f[..n].to_vec();
            seen.screen(&mut g);
            seen.note_sent(&g);
            guard.screen(&g, 0);
            guard.note_sent(&g);
        }
        for _ in 0..5000 {
            let mut g = f.clone();
            for _ in 0..1 + rnd() % 4 {
                let i = (rnd() as usize) % g.len();
                g[i] ^= 1 << (rnd() % 8);
            }
            if rnd() % 4 == 0 {
                g.truncate((rnd() as usize) % g.len());
            }
            seen.screen(&mut g);
            seen.note_sent(&g);
            guard.screen(&g, rnd());
            guard.note_sent(&g);
        }
    }
}

// ------------------------------------------------------------------------------------
// The socket table.

#[test]
fn socket_errors_follow_the_interface() {
    let mut b = Bare::new();
    let mut buf = SockBuf::empty();
    assert_eq!(b.stack.recv(SockId(0xdead_beef), &mut buf), Err(NetError::NoSuchSocket));
    assert_eq!(b.stack.send(SockId(0xdead_beef), &buf), Err(NetError::NoSuchSocket));
    assert_eq!(b.stack.close(SockId(0xdead_beef)), Err(NetError::NoSuchSocket));
    assert_eq!(b.stack.tcp_accept(SockId(0xdead_beef)), Err(NetError::NoSuchSocket));
    assert_eq!(b.stack.send_drained(SockId(0xdead_beef)), Err(NetError::NoSuchSocket));

    // A second bind/listen takes the port over: the old socket is gone.
    let stale_u = b.stack.udp_bind(7).unwrap();
    let u = b.stack.udp_bind(7).unwrap();
    assert_ne!(u, stale_u);
    assert_eq!(b.stack.recv(stale_u, &mut buf), Err(NetError::NoSuchSocket));
    let stale_l = b.stack.tcp_listen(7, 1).unwrap();
    let l = b.stack.tcp_listen(7, 2).unwrap();
    assert_eq!(b.stack.tcp_accept(stale_l), Err(NetError::NoSuchSocket));
    assert_eq!(b.stack.taken_over, 2);
    assert_eq!(b.stack.tcp_listen(8, 0), Err(NetError::InvalidArgument));
    assert_eq!(b.stack.tcp_listen(8, 9), Err(NetError::InvalidArgument));
    assert_eq!(b.stack.tcp_listen(0, 1), Err(NetError::InvalidArgument));
    assert_eq!(b.stack.udp_bind(0), Err(NetError::InvalidArgument));
    assert_eq!(b.stack.tcp_accept(u), Err(NetError::InvalidArgument));
    assert_eq!(b.stack.recv(l, &mut buf), Err(NetError::InvalidArgument));
    assert_eq!(b.stack.tcp_accept(l), Ok(None));
    assert_eq!(b.stack.recv(u, &mut buf), Ok(0));
    assert_eq!(b.stack.stats().sockets, 3);

    // Closing frees, and the port can be taken again.
    b.stack.close(u).unwrap();
    assert_eq!(b.stack.close(u), Err(NetError::NoSuchSocket));
    b.stack.close(l).unwrap();
    assert_eq!(b.stack.stats().sockets, 0);
    let u2 = b.stack.udp_bind(7).unwrap();
    assert_ne!(u2, u, "ids are not reused");
    b.stack.tcp_listen(7, 8).unwrap();

    // Too many sockets.
    let mut port = 1000;
    let err = loop {
        match b.stack.tcp_listen(port, 8) {
            Ok(_) => port += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err, NetError::Exhausted);
    assert!(b.stack.stats().sockets as usize <= MAX_SOCKETS);
    let err = loop {
        match b.stack.udp_bind(port) {
            Ok(_) => port += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(err, NetError::Exhausted);
    assert_eq!(b.stack.stats().sockets as usize, MAX_SOCKETS);
    b.poll();
}

#[test]
fn ids_of_another_stack_generation_are_unknown() {
    heap();
    let (nic, _wire, _ctl) = fake_nic();
    let mut a = Stack::new(&nic, cfg(), 1_000).unwrap();
    let mut b = Stack::new(&nic, cfg(), 987_654_321).unwrap();
    let ia = a.udp_bind(7).unwrap();
    let ib = b.udp_bind(7).unwrap();
    assert_ne!(ia, ib);
    assert_eq!(b.close(ia), Err(NetError::NoSuchSocket));
}

#[test]
fn bad_configurations_are_refused() {
    heap();
    let (nic, _wire, _ctl) = fake_nic();
    assert!(matches!(
        Stack::new(&nic, Ipv4Config { prefix: 33, ..cfg() }, 0),
        Err(crate::stack::StackError::BadConfig(_))
    ));
    assert!(matches!(
        Stack::new(&nic, Ipv4Config { addr: [0; 4], ..cfg() }, 0),
        Err(crate::stack::StackError::BadConfig(_))
    ));
    assert!(matches!(
        Stack::new(&nic, Ipv4Config { gateway: [224, 0, 0, 1], ..cfg() }, 0),
        Err(crate::stack::StackError::BadConfig(_))
    ));
    let s = Stack::new(&nic, Ipv4Config { gateway: [0; 4], ..cfg() }, 0).unwrap();
    assert_eq!(s.mac(), STACK_MAC);
}

// ------------------------------------------------------------------------------------
// The services over the stack.

#[test]
fn udp_echo_through_the_services() {
    let mut net = Net::new();
    let mut s = udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 8192]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 8192]),
    );
    s.bind(5555).unwrap();
    let h = net.client.sockets.add(s);
    let msgs: Vec<Vec<u8>> = (0..5).map(|i| pattern(100 + 300 * i, i as u32)).collect();
    for m in &msgs {
        net.client
            .sockets
            .get_mut::<udp::Socket>(h)
            .send_slice(m, (IpAddress::Ipv4(STACK_IP.into()), ECHO_PORT))
            .unwrap();
    }
    let mut got = Vec::new();
    let ok = net.run(2000, |n| {
        let s = n.client.sockets.get_mut::<udp::Socket>(h);
        while let Ok((data, meta)) = s.recv() {
            assert_eq!(meta.endpoint.addr, IpAddress::Ipv4(STACK_IP.into()));
            assert_eq!(meta.endpoint.port, ECHO_PORT);
            got.push(data.to_vec());
        }
        got.len() == msgs.len()
    });
    assert!(ok, "got {} of {} echoes", got.len(), msgs.len());
    assert_eq!(got, msgs);
    assert_eq!(net.services.stats().udp_datagrams, 5);
}

/// Sends `data` on a fresh connection to the echo port and reads it back; the client
/// closes after sending everything. Returns what came back.
fn echo_roundtrip(net: &mut Net, datas: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let hs: Vec<SocketHandle> = (0..datas.len()).map(|i| net.client.connect(ECHO_PORT, 40000 + i as u16)).collect();
    let mut sent = vec![0usize; datas.len()];
    let mut got = vec![Vec::new(); datas.len()];
    let ok = net.run(50_000, |n| {
        let mut all = true;
        for (i, &h) in hs.iter().enumerate() {
            let s = n.client.tcp(h);
            if s.may_send() && sent[i] < datas[i].len() {
                sent[i] += s.send_slice(&datas[i][sent[i]..]).unwrap();
                if sent[i] == datas[i].len() {
                    s.close();
                }
            }
            let mut buf = [0u8; 8192];
            while let Ok(k) = s.recv_slice(&mut buf) {
                if k == 0 {
                    break;
                }
                got[i].extend_from_slice(&buf[..k]);
            }
            // Done when the server closed its side too (the echo closes once the peer
            // closed and everything was echoed).
            all &= matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait);
        }
        all
    });
    assert!(
        ok,
        "the echo did not finish: got {:?} of {:?} bytes",
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        datas.iter().map(Vec::len).collect::<Vec<_>>()
    );
    for h in hs {
        net.client.sockets.remove(h);
    }
    got
}

/// A TCP segment from the client to the stack with these fields (no options).
fn tcp_seg(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    let c = fold(sum16(&t, pseudo(6, t.len())));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    eth(STACK_MAC, 0x0800, &ipv4(6, &t))
}

/// (seq, ack, flags, payload length) of the stack's TCP frames to client port `port`,
/// from `from` on in the wire's log.
fn stack_segments(net: &Net, port: u16, from: usize) -> Vec<(u32, u32, u8, usize)> {
    let link = net.wire.lock().unwrap();
    link.log[from.min(link.log.len())..]
        .iter()
        .filter(|f| f.len() >= 54 && f[12..14] == [0x08, 0x00] && f[23] == 6)
        .filter(|f| u16::from_be_bytes([f[36], f[37]]) == port)
        .map(|f| {
            let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
            let off = usize::from(f[46] >> 4) * 4;
            let be = |i: usize| u32::from_be_bytes([f[i], f[i + 1], f[i + 2], f[i + 3]]);
            (be(38), be(42), f[47], total - 20 - off)
        })
        .collect()
}

/// Blind resets (RFC 5961 §3.2): RSTs inside the receive window but not at its left edge
/// used to reset a connection in smoltcp; now they draw at most one challenge ACK per
/// second and the connection carries on. RSTs outside the window change nothing; one at
/// exactly RCV.NXT still resets. SYNs on the connection (§4.2) are challenged too instead
/// of being answered by a listener on the same port.
#[test]
fn inexact_resets_draw_challenge_acks_and_the_connection_survives() {
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;
    const PORT: u16 = 41000;
    let mut net = Net::new();
    let h = net.client.connect(ECHO_PORT, PORT);
    let exchange = |net: &mut Net, msg: &[u8]| {
        let mut sent = false;
        let mut got = Vec::new();
        let ok = net.run(5_000, |n| {
            let s = n.client.tcp(h);
            if !sent && s.may_send() {
                sent = s.send_slice(msg).unwrap() == msg.len();
            }
            let mut buf = [0u8; 64];
            while let Ok(k) = s.recv_slice(&mut buf) {
                if k == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..k]);
            }
            got.len() == msg.len()
        });
        assert!(ok && got == msg, "echo of {msg:?}: got {got:?}");
    };
    exchange(&mut net, b"hello");
    // Let the delayed ACKs go out, then read RCV.NXT off the stack's last segment.
    net.run(50, |_| false);
    let segs = stack_segments(&net, PORT, 0);
    let &(seq, rcv_nxt, _, len) = segs.last().expect("the stack sent on the connection");
    let snd_nxt = seq.wrapping_add(len as u32);
    let mark = net.wire.lock().unwrap().log.len();
    {
        let mut link = net.wire.lock().unwrap();
        for i in 0..50u32 {
            // Inside the window, not at its edge.
            link.to_stack.push_back(tcp_seg(PORT, ECHO_PORT, rcv_nxt.wrapping_add(1 + i * 97), snd_nxt, RST | ACK));
            // Far outside it, both ways.
            link.to_stack.push_back(tcp_seg(PORT, ECHO_PORT, rcv_nxt.wrapping_add(0x4000_0000 + i), 0, RST));
            link.to_stack.push_back(tcp_seg(PORT, ECHO_PORT, rcv_nxt.wrapping_sub(100_000 + i), 0, RST));
        }
        for i in 0..20u32 {
            // SYNs on the synchronised connection (a listener on the port must not take them).
            link.to_stack.push_back(tcp_seg(PORT, ECHO_PORT, rcv_nxt.wrapping_add(i * 1000), 0, SYN));
        }
    }
    net.run(100, |_| false);
    // The connection still echoes, exactly (smoltcp alone would have reset its side on
    // the first of them, silently, and answer this with a reset).
    exchange(&mut net, b"still here");
    assert_eq!(net.shared.with(|s, _| s.rst_challenged()), 70);
    let answers = stack_segments(&net, PORT, mark);
    assert!(answers.iter().all(|a| a.2 & RST == 0), "the stack answered with a reset: {answers:?}");
    let challenges = answers.iter().filter(|a| a.2 & ACK != 0 && a.3 == 0 && a.1 == rcv_nxt).count();
    // 100 ticks of 1 ms: one challenge ACK (smoltcp allows one per second).
    assert_eq!(challenges, 1, "challenge ACKs: {answers:?}");
    // A reset at exactly RCV.NXT is a genuine one: the stack's side closes.
    net.run(50, |_| false);
    let &(_, rcv_nxt, _, _) = stack_segments(&net, PORT, 0).last().unwrap();
    net.wire.lock().unwrap().to_stack.push_back(tcp_seg(PORT, ECHO_PORT, rcv_nxt, 0, RST));
    net.run(20, |_| false);
    let s = net.client.tcp(h);
    s.send_slice(b"anyone?").unwrap();
    let reset = net.run(2_000, |n| n.client.tcp(h).state() == tcp::State::Closed);
    assert!(reset, "the exact reset did not close the stack's side");
    // The screen forgets connections that are gone.
    assert!(net.run(200, |n| n.shared.with(|s, _| s.rst_records()) == 0), "the RST screen kept a record of a closed connection");
}

/// The number of smoltcp sockets the services hold when idle: both listeners' backlogs
/// and the UDP socket.
const IDLE_SOCKETS: u32 = ECHO_BACKLOG as u32 + HTTP_BACKLOG as u32 + 1;

#[test]
fn tcp_echo_of_100_kib_is_byte_exact_and_frees_its_socket() {
    let mut net = Net::new();
    assert_eq!(net.stack_stats().sockets, IDLE_SOCKETS);
    let data = pattern(100 * 1024, 0xfeed);
    let got = echo_roundtrip(&mut net, std::slice::from_ref(&data));
    assert_eq!(got[0].len(), data.len());
    assert!(got[0] == data, "echoed bytes differ");
    let st = net.services.stats();
    assert_eq!(st.tcp_conns, 1);
    assert_eq!(st.tcp_bytes, data.len() as u64);
    // The closed connection's socket is freed, the listener's backlog is full again.
    assert!(net.run(100, |n| n.stack_stats().sockets == IDLE_SOCKETS), "sockets: {}", net.stack_stats().sockets);
    assert_eq!(net.services.connections(), (0, 0));
}

#[test]
fn tcp_echo_serves_concurrent_connections_through_a_stingy_nic() {
    let mut net = Net::new();
    // The NIC takes two frames per call: the rest wait in order.
    net.ctl.tx_room.store(2, SeqCst);
    let datas: Vec<Vec<u8>> = (0..6).map(|i| pattern(20_000 + 7_777 * i, 100 + i as u32)).collect();
    let got = echo_roundtrip(&mut net, &datas);
    for (g, d) in got.iter().zip(&datas) {
        assert!(g == d, "echo of {} bytes came back as {} bytes or differing", d.len(), g.len());
    }
    assert_eq!(net.services.stats().tcp_conns, 6);
    assert!(net.run(100, |n| n.stack_stats().sockets == IDLE_SOCKETS));
}

#[test]
fn http_get_status_page_shows_the_domain_table() {
    let mut net = Net::new();
    let resp = net.http(41000, b"GET / HTTP/1.1\r\nHost: frond\r\nUser-Agent: test\r\n\r\n");
    let (code, head, body) = split_response(&resp);
    assert_eq!(code, 200, "{head}");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(header(&head, "Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(header(&head, "Connection"), Some("close"));
    assert_eq!(header(&head, "Content-Length").unwrap().parse::<usize>().unwrap(), body.len());
    let page = String::from_utf8(body).unwrap();
    for name in ["virtio-net", "netstack", "services"] {
        assert!(page.contains(&format!("<td class=\"l\">{name}</td>")), "{name} missing from the page");
    }
    assert!(page.contains("echo&lt;&amp;&gt;"), "names are escaped");
    assert!(page.contains("1h 02m 03s"), "uptime shown");
    assert!(page.contains("dead") && page.contains("alive"));
    assert!(page.contains("3072.0 KiB used of 65536.0 KiB"), "shared heap shown");
    assert!(page.contains("<th class=\"l\">HTTP requests</th><td>1</td>"), "services counters shown");
    assert!(page.contains("<th class=\"l\">sockets</th><td>"), "stack counters shown");
    assert_eq!(net.services.stats().http_requests, 1);

    let resp = net.http(41001, b"GET /status.json HTTP/1.0\r\n\r\n");
    let (code, head, body) = split_response(&resp);
    assert_eq!(code, 200);
    assert_eq!(header(&head, "Content-Type"), Some("application/json"));
    assert_eq!(header(&head, "Content-Length").unwrap().parse::<usize>().unwrap(), body.len());
    let json = String::from_utf8(body).unwrap();
    assert!(json.starts_with('{') && json.ends_with('}'));
    assert!(json.contains("\"name\":\"netstack\",\"generation\":1,\"state\":\"alive\""));
    assert!(json.contains("\"name\":\"virtio-net\",\"generation\":2"));
    assert!(json.contains("\"uptime_ms\":3723456"));
    assert!(json.contains("\"http_requests\":2"));
    assert!(net.run(100, |n| n.stack_stats().sockets == IDLE_SOCKETS));
}

#[test]
fn http_errors_404_405_400_431() {
    let mut net = Net::new();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"GET /nope HTTP/1.1\r\n\r\n".to_vec(), 404),
        (b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec(), 405),
        (b"HEAD /status.json HTTP/1.1\r\n\r\n".to_vec(), 405),
        (b"HELLO\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(), 400),
        (b"GET / SPDY/3\r\n\r\n".to_vec(), 400),
        (
            {
                let mut r = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
                r.extend(std::iter::repeat_n(b'a', 5000));
                r.extend_from_slice(b"\r\n\r\n");
                r
            },
            431,
        ),
    ];
    for (i, (req, want)) in cases.iter().enumerate() {
        let resp = net.http(42000 + i as u16, req);
        let (code, head, body) = split_response(&resp);
        assert_eq!(code, *want, "request {i}: {head}");
        assert_eq!(header(&head, "Connection"), Some("close"));
        assert_eq!(header(&head, "Content-Length").unwrap().parse::<usize>().unwrap(), body.len());
        if *want == 405 {
            assert_eq!(header(&head, "Allow"), Some("GET"));
        }
    }
    assert_eq!(net.services.stats().http_requests, cases.len() as u64);
    assert!(net.run(100, |n| n.stack_stats().sockets == IDLE_SOCKETS));
}

// ------------------------------------------------------------------------------------
// The services when the stack fails.

/// `Sockets` in front of a replaceable stack; fails every call while `fail` is set.
struct Flaky {
    inner: Mutex<Arc<SharedStack<TestEnv>>>,
    fail: AtomicBool,
    calls: AtomicU64,
}

impl Flaky {
    fn s(&self) -> RpcResult<Arc<SharedStack<TestEnv>>> {
        self.calls.fetch_add(1, SeqCst);
        if self.fail.load(SeqCst) {
            Err(RpcError::Panicked)
        } else {
            Ok(self.inner.lock().unwrap().clone())
        }
    }
}

impl Sockets for Flaky {
    fn udp_bind(&self, port: u16) -> RpcResult<Result<SockId, NetError>> {
        self.s()?.udp_bind(port)
    }
    fn tcp_listen(&self, port: u16, backlog: u8) -> RpcResult<Result<SockId, NetError>> {
        self.s()?.tcp_listen(port, backlog)
    }
    fn tcp_accept(&self, l: SockId) -> RpcResult<Result<Option<SockId>, NetError>> {
        self.s()?.tcp_accept(l)
    }
    fn recv(&self, s: SockId, buf: RRef<SockBuf>) -> RpcResult<(RRef<SockBuf>, Result<u32, NetError>)> {
        self.s()?.recv(s, buf)
    }
    fn send(&self, s: SockId, buf: RRef<SockBuf>) -> RpcResult<(RRef<SockBuf>, Result<u32, NetError>)> {
        self.s()?.send(s, buf)
    }
    fn close(&self, s: SockId) -> RpcResult<Result<(), NetError>> {
        self.s()?.close(s)
    }
    fn send_drained(&self, s: SockId) -> RpcResult<Result<bool, NetError>> {
        self.s()?.send_drained(s)
    }
    fn wait(&self, t: u64) -> RpcResult<()> {
        self.s()?.wait(t)
    }
    fn stats(&self) -> RpcResult<StackStats> {
        self.s()?.stats()
    }
}

fn fresh_shared(clock: &Arc<AtomicU64>) -> (Arc<SharedStack<TestEnv>>, Wire) {
    let (nic, wire, _ctl) = fake_nic();
    let stack = Stack::new(&nic, cfg(), clock.fetch_add(777_777, SeqCst)).unwrap();
    (Arc::new(SharedStack::new(Remote::local(Box::new(nic)), stack, TestEnv { clock: clock.clone() })), wire)
}

#[test]
fn a_failing_stack_makes_the_services_reopen_their_sockets() {
    heap();
    let clock = Arc::new(AtomicU64::new(1_000 * MS));
    let (first, _) = fresh_shared(&clock);
    let flaky = Flaky { inner: Mutex::new(first.clone()), fail: AtomicBool::new(false), calls: AtomicU64::new(0) };
    let mut svc = Services::new();
    let st = svc.step(&flaky, &FakeSystem, 0);
    assert!(st.opened && svc.is_open());
    assert_eq!(first.stats().unwrap().sockets, IDLE_SOCKETS);

    // The stack crashes: the services notice, count it once, and hold no sockets.
    flaky.fail.store(true, SeqCst);
    let st = svc.step(&flaky, &FakeSystem, 1);
    assert_eq!(st.stack_lost, Some(RpcError::Panicked));
    assert!(!svc.is_open());
    assert_eq!(svc.stats().stack_restarts_seen, 1);
    svc.step(&flaky, &FakeSystem, 2);
    assert_eq!(svc.stats().stack_restarts_seen, 1, "one outage is counted once");

    // It comes back as a new generation: the services listen on it again.
    let (second, wire) = fresh_shared(&clock);
    *flaky.inner.lock().unwrap() = second.clone();
    flaky.fail.store(false, SeqCst);
    let st = svc.step(&flaky, &FakeSystem, 3);
    assert!(st.opened && svc.is_open());
    assert_eq!(second.stats().unwrap().sockets, IDLE_SOCKETS);

    // ... and they work there: a datagram to the echo port comes back.
    wire.lock().unwrap().to_stack.push_back(arp_request());
    wire.lock().unwrap().to_stack.push_back(udp_frame(6000, ECHO_PORT, b"again"));
    second.poll();
    svc.step(&flaky, &FakeSystem, 4);
    second.poll();
    assert_eq!(svc.stats().udp_datagrams, 1);
    let frames: Vec<Vec<u8>> = wire.lock().unwrap().from_stack.drain(..).collect();
    assert!(frames.iter().any(|f| f.ends_with(b"again") && f[12..14] == [0x08, 0x00]), "the echo went out");

    // Restarted behind the services' back (a recovery proxy restarted it between two
    // calls): their ids are unknown there, which they take as the same event.
    let (third, _) = fresh_shared(&clock);
    *flaky.inner.lock().unwrap() = third.clone();
    let st = svc.step(&flaky, &FakeSystem, 5);
    assert!(st.stack_lost.is_some());
    assert_eq!(svc.stats().stack_restarts_seen, 2);
    let st = svc.step(&flaky, &FakeSystem, 6);
    assert!(st.opened);
    assert_eq!(third.stats().unwrap().sockets, IDLE_SOCKETS);
}

/// `wait` returns once the poll thread made progress, or after its timeout.
#[test]
fn wait_returns_on_progress_or_timeout() {
    heap();
    let clock = Arc::new(AtomicU64::new(0));
    let (shared, wire) = fresh_shared(&clock);
    let t0 = clock.load(SeqCst);
    shared.wait(10 * MS).unwrap();
    assert!(clock.load(SeqCst) - t0 >= 10 * MS, "slept the whole timeout without progress");

    let shared2 = shared.clone();
    let before = shared.progress();
    let poller = std::thread::spawn(move || {
        while shared2.progress() == before {
            shared2.poll_round();
            std::thread::yield_now();
        }
    });
    wire.lock().unwrap().to_stack.push_back(arp_request());
    // The test clock only moves while `wait` sleeps; the poller answers well within the
    // (virtual) minute.
    shared.wait(60_000 * MS).unwrap();
    assert!(shared.progress() > before);
    poller.join().unwrap();
}

// ------------------------------------------------------------------------------------
// HTTP parsing.

#[test]
fn http_parser_cases() {
    let ok = |s: &[u8]| match http::parse_request(s) {
        Parsed::Request(r) => (r.method.to_string(), r.path.to_string()),
        other => panic!("{:?} for {:?}", other, String::from_utf8_lossy(s)),
    };
    assert_eq!(ok(b"GET / HTTP/1.1\r\n\r\n"), ("GET".into(), "/".into()));
    assert_eq!(ok(b"GET /status.json?x=1 HTTP/1.0\n\n"), ("GET".into(), "/status.json".into()));
    assert_eq!(ok(b"DELETE /x HTTP/1.1\r\nA: b\r\nC:d\r\n\r\nbody"), ("DELETE".into(), "/x".into()));
    assert_eq!(http::parse_request(b""), Parsed::Incomplete);
    assert_eq!(http::parse_request(b"GET / HT"), Parsed::Incomplete);
    assert_eq!(http::parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n"), Parsed::Incomplete);
    assert_eq!(
        http::parse_request(b"GET  / HTTP/1.1\r\n"),
        Parsed::Error(Status::BadRequest),
        "rejected once the line is complete"
    );
    assert_eq!(http::parse_request(b"GET noslash HTTP/1.1\r\n\r\n"), Parsed::Error(Status::BadRequest));
    assert_eq!(http::parse_request(b"GET / HTTP/1.1\r\n: empty\r\n\r\n"), Parsed::Error(Status::BadRequest));
    assert_eq!(http::parse_request(b"GET /\xff HTTP/1.1\r\n\r\n"), Parsed::Error(Status::BadRequest));
    assert_eq!(http::parse_request(b"G\xc3\xa9T / HTTP/1.1\r\n\r\n"), Parsed::Error(Status::BadRequest));

    // The 4 KiB limit: a head of exactly 4096 bytes passes, one more byte does not.
    let head = |len: usize| {
        let mut r = b"GET / HTTP/1.1\r\nX: ".to_vec();
        r.extend(std::iter::repeat_n(b'a', len - r.len() - 4));
        r.extend_from_slice(b"\r\n\r\n");
        assert_eq!(r.len(), len);
        r
    };
    assert!(matches!(http::parse_request(&head(4096)), Parsed::Request(_)));
    assert_eq!(http::parse_request(&head(4097)), Parsed::Error(Status::HeaderTooLarge));
    assert_eq!(http::parse_request(&head(4097)[..4096]), Parsed::Error(Status::HeaderTooLarge));
    assert_eq!(http::parse_request(&head(4097)[..4095]), Parsed::Incomplete);

    let get = |p: &str| http::route(&http::Request { method: "GET", path: p, version: "HTTP/1.1" });
    assert_eq!(get("/"), Route::StatusHtml);
    assert_eq!(get("/status.json"), Route::StatusJson);
    assert_eq!(get("/index.html"), Route::Error(Status::NotFound));
    assert_eq!(
        http::route(&http::Request { method: "PUT", path: "/", version: "HTTP/1.1" }),
        Route::Error(Status::MethodNotAllowed)
    );
}

#[test]
fn status_renders_without_the_table_or_stack() {
    let services =
        ServiceStats { tcp_conns: 1, tcp_bytes: 2, udp_datagrams: 3, http_requests: 4, stack_restarts_seen: 5 };
    let v = http::StatusView { table: None, stack: None, services: &services };
    let html = http::status_html(&v);
    assert!(html.contains("Domain table unavailable") && html.contains("Stack counters unavailable"));
    let json = http::status_json(&v);
    assert_eq!(
        json,
        "{\"uptime_ms\":null,\"shared_heap\":null,\"domains\":null,\"stack\":null,\"services\":{\"tcp_conns\":1,\
         \"tcp_bytes\":2,\"udp_datagrams\":3,\"http_requests\":4,\"stack_restarts_seen\":5}}"
    );
    let r = http::error_response(Status::HeaderTooLarge);
    assert!(r.starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"));
}
