//! `frond-pktfuzz`: sends malformed Ethernet frames out of one interface for a while, to
//! show that no domain on the other end crashes. Run inside a test's network namespace
//! (`ip netns exec NS frond-pktfuzz …`); it sends only on the interface it is given.
//!
//! ```text
//! frond-pktfuzz --iface TAP --dst-mac MAC --src-mac MAC --src-ip A --dst-ip B --seconds S [--seed N]
//! ```
//! Kinds, sent round robin: random bytes (14–1514 bytes), truncated valid frames, frames
//! longer than 1514 bytes (up to the interface MTU), IPv4 with a bad header checksum, bad
//! total length (too long, too short), bad IHL and bad version, UDP with a bad checksum
//! or a bad length, TCP with a bad checksum or a bad data offset, ICMP with a bad
//! checksum, and ARP with bad lengths. All are addressed to the guest's MAC and IP (ports
//! 7 and 80), so they reach the stack rather than being filtered by MAC. Prints one JSON
//! line: `{"sent": N, "errors": E, "kinds": K}`.

#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use frond_tests::net::MacAddr;
use pnet_datalink::Channel;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn csum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

struct Ctx {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
}

impl Ctx {
    /// A well-formed IPv4 frame carrying `proto` with `payload` (transport checksum filled
    /// in for UDP/TCP/ICMP).
    fn ipv4(&self, proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(34 + l4.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + l4.len()) as u16;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&self.src);
        ip[16..20].copy_from_slice(&self.dst);
        let c = csum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut l4 = l4.to_vec();
        let ck_at = match proto {
            17 => Some(6),
            6 => Some(16),
            1 => Some(2),
            _ => None,
        };
        if let Some(at) = ck_at {
            if l4.len() >= at + 2 {
                l4[at] = 0;
                l4[at + 1] = 0;
                let c = if proto == 1 {
                    csum(&l4)
                } else {
                    let mut pseudo = Vec::new();
                    pseudo.extend_from_slice(&self.src);
                    pseudo.extend_from_slice(&self.dst);
                    pseudo.extend_from_slice(&[0, proto]);
                    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                    pseudo.extend_from_slice(&l4);
                    csum(&pseudo)
                };
                l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
            }
        }
        f.extend_from_slice(&l4);
        f
    }

    fn udp(&self, port: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&40000u16.to_be_bytes());
        u.extend_from_slice(&port.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        self.ipv4(17, &u)
    }

    fn tcp(&self, port: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&40001u16.to_be_bytes());
        t[2..4].copy_from_slice(&port.to_be_bytes());
        t[4..8].copy_from_slice(&12345u32.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&8192u16.to_be_bytes());
        t.extend_from_slice(payload);
        self.ipv4(6, &t)
    }

    fn icmp_echo(&self) -> Vec<u8> {
        let mut i = vec![8u8, 0, 0, 0, 0, 1, 0, 1];
        i.extend_from_slice(b"frond-pktfuzz");
        self.ipv4(1, &i)
    }

    fn arp(&self) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&self.src_mac);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&self.src_mac);
        f.extend_from_slice(&self.src);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&self.dst);
        f
    }
}

const KINDS: usize = 15;

fn make(kind: usize, c: &Ctx, r: &mut Rng, mtu: usize) -> Vec<u8> {
    let ip = 14;
    match kind {
        0 => {
            let n = 14 + r.below(1501);
            let mut f: Vec<u8> = (0..n).map(|_| r.next() as u8).collect();
            if r.below(2) == 0 {
                f[0..6].copy_from_slice(&c.dst_mac);
            }
            f
        }
        1 => {
            let f = match r.below(4) {
                0 => c.udp(7, b"truncated"),
                1 => c.tcp(80, 0x02, b""),
                2 => c.icmp_echo(),
                _ => c.arp(),
            };
            let n = 14 + r.below(f.len() - 14);
            f[..n].to_vec()
        }
        2 => {
            let n = 1515 + r.below(mtu.saturating_sub(1500).max(1));
            let mut f = c.udp(7, &vec![0x5a; n - 42]);
            f.truncate(n);
            f
        }
        3 => {
            let mut f = c.udp(7, b"bad ip checksum");
            f[ip + 10] ^= 0x5a;
            f
        }
        4 => {
            let mut f = c.udp(7, b"ip total length too long");
            f[ip + 2..ip + 4].copy_from_slice(&1400u16.to_be_bytes());
            fix_ip(&mut f);
            f
        }
        5 => {
            let mut f = c.udp(7, b"ip total length too short");
            f[ip + 2..ip + 4].copy_from_slice(&10u16.to_be_bytes());
            fix_ip(&mut f);
            f
        }
        6 => {
            let mut f = c.udp(7, b"ihl");
            f[ip] = 0x40 | r.below(5) as u8;
            fix_ip(&mut f);
            f
        }
        7 => {
            let mut f = c.udp(7, b"version");
            f[ip] = 0x65;
            fix_ip(&mut f);
            f
        }
        8 => {
            let mut f = c.udp(7, b"bad udp checksum");
            f[ip + 20 + 6] ^= 0xff;
            f
        }
        9 => {
            let mut f = c.udp(7, b"bad udp length");
            let bad = [0u16, 3, 7, 9000][r.below(4)];
            f[ip + 20 + 4..ip + 20 + 6].copy_from_slice(&bad.to_be_bytes());
            f
        }
        10 => {
            let mut f = c.tcp(80, 0x02, b"");
            f[ip + 20 + 16] ^= 0xff;
            f
        }
        11 => {
            let mut f = c.tcp(7, 0x18, b"bad data offset");
            f[ip + 20 + 12] = (r.below(16) as u8) << 4;
            f
        }
        12 => {
            let mut f = c.icmp_echo();
            f[ip + 20 + 2] ^= 0xff;
            f
        }
        13 => {
            let mut f = c.arp();
            f[18] = r.next() as u8; // hardware address length
            f[19] = r.next() as u8; // protocol address length
            f
        }
        _ => {
            // A valid frame with random bit flips anywhere.
            let mut f = c.tcp(80, 0x12, b"flipped");
            for _ in 0..1 + r.below(4) {
                let i = r.below(f.len());
                f[i] ^= 1 << r.below(8);
            }
            f
        }
    }
}

fn fix_ip(f: &mut [u8]) {
    let ihl = ((f[14] & 0xf) as usize * 4).clamp(20, 60).min(f.len() - 14);
    f[24] = 0;
    f[25] = 0;
    let c = csum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

fn arg<'a>(args: &'a [String], name: &str) -> Result<&'a str, String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .ok_or_else(|| format!("missing {name}"))
}

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let iface_name = arg(&args, "--iface")?;
    let mac = |n| arg(&args, n)?.parse::<MacAddr>().map(|m| m.0).map_err(|e| format!("{n}: {e}"));
    let ip = |n| arg(&args, n)?.parse::<Ipv4Addr>().map(|a| a.octets()).map_err(|e| format!("{n}: {e}"));
    let ctx = Ctx { dst_mac: mac("--dst-mac")?, src_mac: mac("--src-mac")?, src: ip("--src-ip")?, dst: ip("--dst-ip")? };
    let seconds: f64 = arg(&args, "--seconds")?.parse().map_err(|e| format!("--seconds: {e}"))?;
    let seed: u64 = arg(&args, "--seed").ok().map(str::parse).transpose().map_err(|e| format!("--seed: {e}"))?.unwrap_or(0x9e37_79b9_7f4a_7c15);
    let iface = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == iface_name)
        .ok_or_else(|| format!("no interface {iface_name} here"))?;
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{iface_name}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1500usize);
    let mut tx = match pnet_datalink::channel(&iface, pnet_datalink::Config::default()) {
        Ok(Channel::Ethernet(tx, _rx)) => tx,
        Ok(_) => return Err("unexpected channel type".into()),
        Err(e) => return Err(format!("AF_PACKET channel on {iface_name}: {e}")),
    };
    let mut r = Rng(seed | 1);
    let (mut sent, mut errors) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut kind = 0;
    while Instant::now() < end {
        let f = make(kind, &ctx, &mut r, mtu);
        kind = (kind + 1) % KINDS;
        match tx.send_to(&f, None) {
            Some(Ok(())) => sent += 1,
            _ => errors += 1,
        }
        // About 5000 frames per second: a steady stream, not a flood.
        if sent % 50 == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(format!("{{\"sent\": {sent}, \"errors\": {errors}, \"kinds\": {KINDS}}}"))
}

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("frond-pktfuzz: {e}");
            ExitCode::FAILURE
        }
    }
}
