//! Hostile traffic from the host: the stack keeps serving. Each test boots Frond on a tap
//! in its own namespace (as `net.rs` does), warms the network path up, takes a baseline
//! of the console's `domains` table, attacks the guest with `frond-hostile-net` (raw
//! frames on the tap), and checks during and after the attack:
//! * ping from the host is answered (during: the figure is printed and a floor asserted;
//!   after: every one of 20);
//! * `curl /` returns 200 with the status page (during, for the attacks that leave the
//!   HTTP listener alone);
//! * 64 KiB through the TCP echo service come back byte-exact;
//! * no domain crashed or restarted (crash counts and generations as before);
//! * memory is bounded: once the attack's connections are gone, the heaps of `netstack`
//!   and `services` and the shared heap are back within [`HEAP_SLACK`] /
//!   [`SHARED_SLACK`] of the baseline (see there for why those bounds).
//!
//! Needs root (namespaces, taps, AF_PACKET); without it each test prints
//! `SKIPPED: <test>: <reason>` and returns. The tests run one at a time (a lock), so
//! the figures during an attack are not shared with another guest. Each test's QEMU has a 240 s deadline that
//! kills its process group; the attack tool is killed with its group when its wait
//! times out; the namespace (and tap) goes when the test ends, also on failure.
//!
//! `cargo test -p frond-tests --test traffic -- --nocapture` prints the figures.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use frond_tests::net::{can_manage_netns, unique_name, Ipv4Net, MacAddr, Netns, NsChild, TapNic};
use frond_tests::{Boot, NicModel, Session};
use serde_json::Value;

const HOST: Ipv4Addr = Ipv4Addr::new(10, 33, 0, 1);
const GUEST: Ipv4Addr = Ipv4Addr::new(10, 33, 0, 2);
const GUEST_MAC: &str = "52:54:00:12:34:56";
const TAP_MAC: &str = "02:00:0a:21:00:01";
const UP: Duration = Duration::from_secs(60);
const ECHO_PORT: u16 = 7;
const HTTP_PORT: u16 = 80;

/// How far a domain's heap may stay above its baseline once an attack is over: the heap
/// holds nothing per attack frame or per closed connection, but the stack's collections
/// (socket table, closing list, smoltcp's socket set) keep the capacity they grew to, and
/// the allocator may place a replacement listening socket's buffers elsewhere than the
/// freed ones; 64 KiB covers that, and is half of one TCP socket's buffers (2 × 64 KiB):
/// a socket left behind per attack, or anything growing with the attack's frames,
/// exceeds it.
const HEAP_SLACK: u64 = 64 * 1024;
/// How far the shared heap may stay above its baseline: the stack keeps up to
/// `POOL_MAX` = 128 free packet buffers (≈2.1 KiB each) between polls, and how full that
/// pool is depends on the last burst of traffic; 128 buffers ≈ 270 KiB, so 320 KiB. A
/// leak of buffers per attack frame (tens of thousands of frames) exceeds it at once.
const SHARED_SLACK: u64 = 320 * 1024;
/// How long after an attack memory may take to come back (connections closing, half-open
/// ones expiring, the echo connections of the checks finishing).
const SETTLE: Duration = Duration::from_secs(45);

/// One Frond with a NIC on a tap in a fresh namespace, services listening.
struct Guest {
    // Field order: QEMU goes before the namespace.
    session: Session,
    ns: Netns,
    tap: String,
    synced: bool,
    /// Held for the test's whole run: the attacks and the figures measured during them
    /// need the machine to themselves, so these tests boot one QEMU at a time.
    _serial: std::sync::MutexGuard<'static, ()>,
}

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One row of the `domains` table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    name: String,
    generation: u64,
    heap_used: u64,
    rref_bytes: u64,
    crashes: u64,
    restarts: u64,
}

/// The `domains` table and the kernel's shared-heap line.
#[derive(Debug, Clone)]
struct Snapshot {
    rows: Vec<Row>,
    shared_used: u64,
}

impl Snapshot {
    fn row(&self, name: &str) -> &Row {
        self.rows.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no `{name}` row: {self:?}"))
    }

    /// (netstack heap, services heap, shared heap) in bytes.
    fn memory(&self) -> (u64, u64, u64) {
        (self.row("netstack").heap_used, self.row("services").heap_used, self.shared_used)
    }
}

/// Parses the console's `domains` output.
fn parse_domains(text: &str) -> Option<Snapshot> {
    let mut rows = Vec::new();
    let mut shared_used = None;
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        // id name gen state image heap-used heap RRefs RRef-B calls crashes restarts
        if f.len() == 12 && f[0].parse::<u32>().is_ok() {
            rows.push(Row {
                name: f[1].to_string(),
                generation: f[2].parse().ok()?,
                heap_used: f[5].parse().ok()?,
                rref_bytes: f[8].parse().ok()?,
                crashes: f[10].parse().ok()?,
                restarts: f[11].parse().ok()?,
            });
        }
        if let Some(rest) = l.split("shared heap ").nth(1) {
            shared_used = rest.split_whitespace().next()?.parse().ok();
        }
    }
    Some(Snapshot { rows, shared_used: shared_used? })
}

impl Guest {
    /// Boots Frond on a tap in a new namespace and waits for the services; `None` (after
    /// a loud skip line) without root.
    fn start(test: &str) -> Option<Guest> {
        if !can_manage_netns() {
            frond_tests::skipped(test, "needs root and /dev/net/tun (network namespaces, taps, AF_PACKET); nothing was tested");
            return None;
        }
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let ns = Netns::create_unique("fh").expect("create netns");
        ns.disable_ipv6().expect("disable ipv6");
        let tap = unique_name("fht");
        let mac: MacAddr = TAP_MAC.parse().unwrap();
        ns.add_tap(&tap, mac).expect("tap");
        ns.configure_link(&tap, mac, Some(Ipv4Net::new(HOST, 24))).expect("configure tap");
        let model = NicModel::VirtioNet;
        let nic = TapNic { id: "n0".into(), tap: tap.clone(), mac: GUEST_MAC.parse().unwrap(), pci_slot: model.pci_slot(0), model };
        let mut session = Boot::new()
            .name(test)
            .cmdline(format!("ip={GUEST}/24 gw={HOST}"))
            .netns(ns.name())
            .qemu_args(nic.qemu_args())
            .timeout(Duration::from_secs(240))
            .spawn();
        session.expect("services: echo tcp/udp 7, http 80", UP).expect("services came up");
        Some(Guest { session, ns, tap, synced: false, _serial: serial })
    }

    /// Sends a console command and returns what it printed up to the next prompt.
    fn console(&mut self, cmd: &str) -> String {
        self.session.send(format!("{cmd}\r").as_bytes()).expect("send");
        if !self.synced {
            self.session.expect(&format!("{cmd}\r\n"), Duration::from_secs(30)).expect("echo of the command");
            self.synced = true;
        }
        self.session.expect("frond> ", Duration::from_secs(30)).expect("prompt after command")
    }

    fn snapshot(&mut self) -> Snapshot {
        let text = self.console("domains");
        parse_domains(&text).unwrap_or_else(|| panic!("unparsable `domains` output:\n{text}"))
    }

    /// `count` pings at 20 per second; (transmitted, received).
    fn ping(&self, count: u32) -> (u32, u32) {
        // ping exits 1 when replies are missing; its summary is still wanted.
        let out = self
            .ns
            .command("ping")
            .expect("ping")
            .args(["-c", &count.to_string(), "-i", "0.05", "-W", "2", &GUEST.to_string()])
            .output()
            .expect("run ping");
        let out = String::from_utf8_lossy(&out.stdout).to_string();
        parse_ping(&out).unwrap_or((count, 0))
    }

    /// Pings in the background (20 per second for `count`), for "during the attack".
    fn ping_in_background(&self, count: u32) -> NsChild {
        self.ns
            .spawn("ping", ["-c", &count.to_string(), "-i", "0.05", "-W", "1", &GUEST.to_string()])
            .expect("start ping")
    }

    fn curl(&self, path: &str) -> (u16, String) {
        let out = self
            .ns
            .command("curl")
            .expect("curl")
            .args(["-s", "-m", "10", "-w", "\n%{http_code}", &format!("http://{GUEST}{path}")])
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Starts the attack tool with the common addresses and `args`.
    fn attack(&self, attack: &str, args: &[&str]) -> NsChild {
        let tool = env!("CARGO_BIN_EXE_frond-hostile-net");
        let mut all = vec![
            attack.to_string(),
            "--iface".into(),
            self.tap.clone(),
            "--guest-mac".into(),
            GUEST_MAC.into(),
            "--guest-ip".into(),
            GUEST.to_string(),
            "--host-mac".into(),
            TAP_MAC.into(),
            "--host-ip".into(),
            HOST.to_string(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        self.ns.spawn(tool, all).expect("start frond-hostile-net")
    }
}

/// (transmitted, received) from ping's summary line.
fn parse_ping(out: &str) -> Option<(u32, u32)> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().ok());
    Some((nums.next()??, nums.next()??))
}

/// Waits for a background ping and returns (transmitted, received).
fn ping_result(p: NsChild) -> (u32, u32) {
    let out = p.wait(Duration::from_secs(60)).expect("background ping");
    parse_ping(&out.stdout).unwrap_or((0, 0))
}

/// Waits for the attack tool and returns its JSON report (a non-zero exit fails).
fn report(tool: NsChild, timeout: Duration) -> Value {
    let out = tool.wait(timeout).unwrap_or_else(|e| panic!("frond-hostile-net: {e}"));
    let line = out.stdout.lines().last().unwrap_or_default().to_string();
    let v: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("frond-hostile-net ({}) printed no report ({e}):\n{}\n{}", out.status, out.stdout, out.stderr));
    assert!(out.status.success(), "frond-hostile-net failed ({}): {v}\n{}", out.status, out.stderr);
    v
}

/// `n` bytes through the TCP echo service on `s` (or a new connection); true if they
/// came back byte-exact. Closes the sending side at the end.
fn echo_exact(s: TcpStream, n: usize, seed: u32) -> std::io::Result<()> {
    let data: Vec<u8> = (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8).collect();
    let sent = data.clone();
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = s.try_clone()?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        w.write_all(&sent)?;
        w.shutdown(Shutdown::Write)
    });
    let mut back = Vec::with_capacity(n);
    let mut r = s;
    r.read_to_end(&mut back)?;
    writer.join().map_err(|_| std::io::Error::other("writer panicked"))??;
    if back != data {
        let at = back.iter().zip(&data).position(|(a, b)| a != b).unwrap_or(back.len().min(n));
        return Err(std::io::Error::other(format!("echo differs: {} of {n} bytes back, first difference at {at}", back.len())));
    }
    Ok(())
}

fn connect(g: &Guest) -> TcpStream {
    g.ns.run_in(|| TcpStream::connect_timeout(&SocketAddr::from((GUEST, ECHO_PORT)), Duration::from_secs(10)))
        .expect("thread in namespace")
        .expect("connect to the echo service")
}

/// Warm-up before the baseline: the paths the checks use allocate what they keep
/// (buffer pool, socket replacements) once.
fn warm_up(g: &mut Guest) {
    assert_eq!(g.ping(10).1, 10, "ping before the attack");
    assert_eq!(g.curl("/").0, 200, "HTTP before the attack");
    echo_exact(connect(g), 64 * 1024, 1).expect("echo before the attack");
    std::thread::sleep(Duration::from_secs(1));
}

/// The checks after an attack: ping (20/20), HTTP 200 with the status page, 64 KiB
/// echoed byte-exact, no domain crashed or restarted, memory back within bounds. Prints
/// the figures under `label`.
fn after_attack(g: &mut Guest, label: &str, before: &Snapshot) {
    let (tx, rx) = g.ping(20);
    let (code, body) = g.curl("/");
    echo_exact(connect(g), 64 * 1024, 2).unwrap_or_else(|e| panic!("{label}: 64 KiB echo after the attack: {e}"));
    println!("{label}: after the attack: ping {rx}/{tx}, HTTP {code}, 64 KiB echoed exact");
    assert_eq!((tx, rx), (20, 20), "{label}: ping after the attack lost replies");
    assert_eq!(code, 200, "{label}: HTTP after the attack:\n{body}");
    assert!(
        body.contains("<title>Frond status</title>") && ["netstack", "services"].iter().all(|d| body.contains(d)),
        "{label}: the status page is not what it should be:\n{body}"
    );
    // Memory: wait for the attack's and the checks' connections to go, then compare.
    let (n0, s0, h0) = before.memory();
    let t0 = Instant::now();
    let mut now = g.snapshot();
    loop {
        let (n1, s1, h1) = now.memory();
        let within = n1 <= n0 + HEAP_SLACK && s1 <= s0 + HEAP_SLACK && h1 <= h0 + SHARED_SLACK;
        if within || t0.elapsed() > SETTLE {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
        now = g.snapshot();
    }
    let (n1, s1, h1) = now.memory();
    println!(
        "{label}: memory before → after ({} s to settle): netstack heap {n0} → {n1} B, services heap {s0} → {s1} B, shared heap {h0} → {h1} B; netstack RRef bytes {} → {}",
        t0.elapsed().as_secs(),
        before.row("netstack").rref_bytes,
        now.row("netstack").rref_bytes
    );
    for r in &before.rows {
        let a = now.row(&r.name);
        assert_eq!(
            (a.generation, a.crashes, a.restarts),
            (r.generation, r.crashes, r.restarts),
            "{label}: domain `{}` crashed or restarted during the attack",
            r.name
        );
    }
    let serial = g.session.serial();
    assert!(!serial.contains("panicked") && !serial.contains("faulted"), "{label}: a domain failed:\n{serial}");
    assert!(n1 <= n0 + HEAP_SLACK, "{label}: netstack heap {n0} → {n1} B (bound +{HEAP_SLACK})");
    assert!(s1 <= s0 + HEAP_SLACK, "{label}: services heap {s0} → {s1} B (bound +{HEAP_SLACK})");
    assert!(h1 <= h0 + SHARED_SLACK, "{label}: shared heap {h0} → {h1} B (bound +{SHARED_SLACK})");
    // What the shared heap kept is owned by live domains: their RRefs (the stack's buffer
    // pool, the NIC driver's receive buffers in flight, which vary with the traffic) grew
    // by as much, give or take a few buffers. A block no domain owns would be a leak.
    let total = |s: &Snapshot| s.rows.iter().map(|r| r.rref_bytes).sum::<u64>();
    let owned = total(&now).saturating_sub(total(&before));
    assert!(
        h1.saturating_sub(h0) <= owned + 16 * 1024,
        "{label}: the shared heap grew by {} B, the domains' RRefs by {owned} B: memory no domain owns",
        h1.saturating_sub(h0)
    );
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("report lacks {key}: {v}"))
}

/// Frames the host handed to QEMU on the tap and frames the tap dropped (QEMU did not
/// keep up), since the last call.
fn tap_delta(g: &Guest, prev: &mut (u64, u64)) -> (u64, u64) {
    let s = g.ns.link_stats(&g.tap).expect("tap counters");
    let d = (s.tx_packets - prev.0, s.tx_dropped - prev.1);
    *prev = (s.tx_packets, s.tx_dropped);
    d
}

/// 1. SYN flood: 100,000 SYNs at full speed to HTTP and echo from random addresses and
///    ports. An echo connection opened before keeps echoing during the flood, ping keeps
///    being answered, and once the half-open connections expire HTTP accepts again.
#[test]
fn syn_flood_keeps_established_connections_and_recovers() {
    let Some(mut g) = Guest::start("traffic_syn_flood") else { return };
    warm_up(&mut g);
    let before = g.snapshot();
    let mut tap = (0, 0);
    tap_delta(&g, &mut tap);
    let established = connect(&g);
    let pinger = g.ping_in_background(60);
    let tool = g.attack("syn-flood", &["--count", "100000", "--ports", &format!("{HTTP_PORT},{ECHO_PORT}")]);
    // During: the established connection echoes 16 KiB exact while the flood runs.
    tool.wait_for_stderr("hostile-net: flooding", Duration::from_secs(20)).expect("flood started");
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let during = echo_exact(established, 16 * 1024, 3);
    let echo_took = t0.elapsed();
    let r = report(tool, Duration::from_secs(120));
    let (to_qemu, dropped) = tap_delta(&g, &mut tap);
    let (ptx, prx) = ping_result(pinger);
    println!(
        "syn flood: {} SYNs sent in {:.2} s ({} pps); tap: {to_qemu} frames to QEMU, {dropped} dropped; ping during {prx}/{ptx}; established echo during: {:?} in {:?}",
        num(&r, "sent"),
        r["seconds"].as_f64().unwrap_or(0.0),
        num(&r, "pps"),
        during.as_ref().map(|_| "16 KiB exact"),
        echo_took
    );
    during.unwrap_or_else(|e| panic!("the connection established before the flood failed during it: {e}"));
    assert!(num(&r, "sent") >= 100_000, "not every SYN went out: {r}");
    assert!(prx * 2 >= ptx, "ping during the SYN flood: {prx}/{ptx}");
    // HTTP comes back once the flood's half-open connections are given up.
    let t0 = Instant::now();
    let mut code = 0;
    while t0.elapsed() < Duration::from_secs(60) {
        code = g.curl("/").0;
        if code == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("syn flood: HTTP answered again {} ms after the flood", t0.elapsed().as_millis());
    assert_eq!(code, 200, "HTTP did not come back within 60 s of the SYN flood");
    assert!(t0.elapsed() < Duration::from_secs(15), "HTTP took {:?} to come back after the flood", t0.elapsed());
    after_attack(&mut g, "syn flood", &before);
}

/// 2. RSTs, out-of-window segments and ACKs of unsent data against an open echo
///    connection (sequence numbers learned from the tap): the connection ignores them as
///    RFC 5961 and RFC 9293 say and smoltcp implements — out-of-window RSTs silently,
///    in-window inexact RSTs, SYNs and ACKs of unsent data with at most one challenge
///    ACK per second, out-of-window data with an ACK each — and then echoes 64 KiB
///    byte-exact.
#[test]
fn injected_segments_do_not_disturb_a_connection() {
    let Some(mut g) = Guest::start("traffic_tcp_inject") else { return };
    warm_up(&mut g);
    let before = g.snapshot();
    let tool = g.attack("tcp-inject", &["--port", &ECHO_PORT.to_string()]);
    tool.wait_for_stderr("hostile-net: ready", Duration::from_secs(20)).expect("tool ready");
    let mut s = connect(&g);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"learn my sequence numbers\n").unwrap();
    let mut probe = [0u8; 26];
    s.read_exact(&mut probe).expect("probe echo");
    assert_eq!(&probe, b"learn my sequence numbers\n");
    let pinger = g.ping_in_background(100);
    let r = report(tool, Duration::from_secs(90));
    let (ptx, prx) = ping_result(pinger);
    println!("tcp inject: ping during {prx}/{ptx}; {r}");
    let phases = r["phases"].as_array().expect("phases");
    let phase = |k: &str| phases.iter().find(|p| p["kind"] == k).unwrap_or_else(|| panic!("no phase {k}: {r}"));
    for p in phases {
        assert_eq!(num(p, "sent"), 200, "phase not sent whole: {p}");
        assert_eq!(num(p, "resets"), 0, "the guest reset the connection: {p}");
    }
    // Out-of-window RSTs: dropped without a word.
    assert_eq!(num(phase("rst_out_of_window"), "replies"), 0, "{r}");
    // In-window inexact RSTs and ACKs of unsent data: challenge ACKs, at most one per
    // second (+1 for the window edges, +1 for a keep-alive probe that may fall in).
    // SYNs inside the window: smoltcp drops a SYN without ACK on a synchronised
    // connection silently; at most the same rate of challenge ACKs is allowed.
    for k in ["rst_in_window", "ack_unsent", "syn_in_window"] {
        let p = phase(k);
        let limit = p["seconds"].as_f64().unwrap_or(0.0).ceil() as u64 + 2;
        if k != "syn_in_window" {
            assert!(num(p, "acks") >= 1, "{k}: no challenge ACK: {p}");
        }
        assert!(num(p, "replies") <= limit, "{k}: more than one challenge ACK per second: {p}");
    }
    // Out-of-window data: an ACK for each (smoltcp exempts data from the rate limit).
    let d = phase("data_out_of_window");
    assert!(num(d, "acks") >= 190, "out-of-window data not acknowledged each time: {d}");
    assert!(prx * 10 >= ptx * 9, "ping during the injection: {prx}/{ptx}");
    // The connection carries on, byte-exact.
    echo_exact(s, 64 * 1024, 4).unwrap_or_else(|e| panic!("the attacked connection after the injection: {e}"));
    println!("tcp inject: the attacked connection then echoed 64 KiB exact");
    after_attack(&mut g, "tcp inject", &before);
}

/// 3. Overlapping, out-of-order segments with conflicting bytes on the tool's own
///    connection (three schedules): the echo is exactly what smoltcp's receiver keeps —
///    a byte already delivered in order is never rewritten (first copy wins), a byte
///    waiting beyond a hole is overwritten by a later copy (last copy wins).
#[test]
fn overlapping_segments_echo_a_consistent_stream() {
    let Some(mut g) = Guest::start("traffic_overlap") else { return };
    warm_up(&mut g);
    let before = g.snapshot();
    for seed in [13, 11, 12] {
        let tool = g.attack("overlap", &["--port", &ECHO_PORT.to_string(), "--bytes", "16384", "--seed", &seed.to_string()]);
        let r = report(tool, Duration::from_secs(90));
        println!("overlap seed {seed}: {r}");
        assert_eq!(r["match"], Value::Bool(true), "the echo is not the stream the receiver model predicts: {r}");
        assert_eq!(num(&r, "echoed"), 16384, "{r}");
        assert!(num(&r, "last_wins_bytes") > 0 && num(&r, "first_wins_bytes") > 0, "the schedule did not exercise both rules: {r}");
        assert_eq!(r["closed"], Value::Bool(true), "the guest did not close its side: {r}");
        let (tx, rx) = g.ping(5);
        assert_eq!((tx, rx), (5, 5), "ping between overlap runs");
    }
    after_attack(&mut g, "overlap", &before);
}

/// 4. ARP: gratuitous requests and replies claiming the guest's address for other MACs,
///    replies to the guest claiming its own address, and a flood of requests from random
///    senders, for 6 s. Ping and HTTP are answered during and after.
#[test]
fn arp_spoofing_and_floods_leave_the_guest_reachable() {
    let Some(mut g) = Guest::start("traffic_arp") else { return };
    warm_up(&mut g);
    let before = g.snapshot();
    let mut tap = (0, 0);
    tap_delta(&g, &mut tap);
    let pinger = g.ping_in_background(80);
    let tool = g.attack("arp", &["--seconds", "6"]);
    std::thread::sleep(Duration::from_secs(2));
    let (code_during, _) = g.curl("/");
    let r = report(tool, Duration::from_secs(60));
    let (to_qemu, dropped) = tap_delta(&g, &mut tap);
    let (ptx, prx) = ping_result(pinger);
    println!("arp: {r}; tap: {to_qemu} frames to QEMU, {dropped} dropped; ping during {prx}/{ptx}; HTTP during {code_during}");
    assert!(num(&r, "sent") > 1000, "{r}");
    assert_eq!(code_during, 200, "HTTP during the ARP attack");
    assert!(prx * 4 >= ptx * 3, "ping during the ARP attack: {prx}/{ptx}");
    after_attack(&mut g, "arp", &before);
}

/// 5. ICMP: echo requests at full speed for 6 s, interleaved with fragmented and
///    oversized echo requests (a reassembly past 64 KiB, overlapping fragments, single
///    frames up to the tap's 4000-byte MTU) and ICMP errors quoting bogus TCP/UDP
///    packets and garbage. Ping and HTTP during and after.
#[test]
fn icmp_floods_and_bogus_errors_leave_the_guest_serving() {
    let Some(mut g) = Guest::start("traffic_icmp") else { return };
    g.ns.ip(["link", "set", "dev", &g.tap, "mtu", "4000"]).expect("mtu");
    warm_up(&mut g);
    let before = g.snapshot();
    let mut tap = (0, 0);
    tap_delta(&g, &mut tap);
    let pinger = g.ping_in_background(80);
    let tool = g.attack("icmp", &["--seconds", "6"]);
    std::thread::sleep(Duration::from_secs(2));
    let (code_during, _) = g.curl("/");
    let r = report(tool, Duration::from_secs(60));
    let (to_qemu, dropped) = tap_delta(&g, &mut tap);
    let (ptx, prx) = ping_result(pinger);
    println!("icmp: {r}; tap: {to_qemu} frames to QEMU, {dropped} dropped; ping during {prx}/{ptx}; HTTP during {code_during}");
    assert!(num(&r, "sent") > 1000, "{r}");
    assert!(prx * 2 >= ptx, "ping during the ICMP flood: {prx}/{ptx}");
    assert_eq!(code_during, 200, "HTTP during the ICMP flood");
    after_attack(&mut g, "icmp", &before);
}

#[test]
fn domains_table_parser() {
    let text = "domains\r\n   id  name        gen state       image heap used    heap   RRefs    RRef B     calls crashes restarts\n\
                \x20   3  netstack      1 Alive         96K    655360   1024K      40     83000     12345       0        0\n\
                \x20   4  services      2 Alive         64K      4096     64K       1      2000       999       1        1\n\
                \x20 quota   3 netstack   heap 640/32768K shared 81/8192K threads 1/16 frames 0/10240 budget 1000ms\n\
                \x20 kernel: 41 RRefs (85000 B); shared heap 607000 B used of 31042 KiB; domain heaps reserve 1888 KiB\n";
    let s = parse_domains(text).expect("parsed");
    assert_eq!(s.rows.len(), 2);
    assert_eq!(s.memory(), (655360, 4096, 607000));
    let sv = s.row("services");
    assert_eq!((sv.generation, sv.crashes, sv.restarts, sv.rref_bytes), (2, 1, 1, 2000));
    assert!(parse_domains("no table").is_none());
}
