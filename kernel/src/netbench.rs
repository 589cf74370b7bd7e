//! The per-packet cost of the domain boundaries on the forwarding path, without a device:
//! two `null-net` driver domains (their `rx` fills each buffer with a fixed 60-byte
//! UDP/IPv4 frame, their `tx` completes at once) and the `forward` domain between them.
//! Each forwarding round moves one batch in through each NIC and out through the other,
//! crossing driver → forwarder → driver boundaries with `RRefDeque`s of `RRef<Pkt>`.
//!
//! `shadowed`: the NICs are reached through the kernel's NIC shadows (as `net=fwd` deploys
//! them: two proxy crossings per NIC call); otherwise through plain recovery proxies.
//! The figure per packet is T/N from `kbench` (instructions under `-icount shift=0`).

use crate::domain;
use frond_interface::net::*;
use frond_interface::Remote;

/// A 60-byte UDP/IPv4 frame `src` → `dst` addressed to `dst_mac` (TTL 64, 18-byte payload).
pub fn udp_frame(dst_mac: [u8; 6], src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes()); // 20 + 8 + 18
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let mut sum = 0u32;
    for i in (0..20).step_by(2) {
        sum += u16::from_be_bytes([ip[i], ip[i + 1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f[34..36].copy_from_slice(&1234u16.to_be_bytes());
    f[36..38].copy_from_slice(&9000u16.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes()); // UDP checksum 0: none (IPv4)
    f
}

const MAC_A: [u8; 6] = [0x52, 0x54, 0, 0x0a, 1, 2];
const MAC_B: [u8; 6] = [0x52, 0x54, 0, 0x0a, 2, 2];
const PEER_A: [u8; 6] = [2, 0, 0x0a, 0, 1, 1];
const PEER_B: [u8; 6] = [2, 0, 0x0a, 0, 2, 1];

fn null_nic(name: &str, frame: [u8; 60]) -> Result<rref::DomainId, alloc::string::String> {
    let mut null_frame = [0u8; 64];
    null_frame[..60].copy_from_slice(&frame);
    let dev = PciDevice { bdf: 0xffff, vendor: 0, device: 0, bars: [(0, 0); 6], caps: [VendorCap::default(); 8], ncaps: 0, msix_vector: 0 };
    domain::create::<NicKind>(name, "domains/dom-null-net", move || (NicArgs { dev, null_frame, null_len: 60 },))
}

/// Forwards `n` packets (n / (2 * batch) rounds) and returns the TSC ticks it took.
pub fn fwd_null(n: u64, batch: u16, shadowed: bool) -> u64 {
    let a = null_nic("null-net0", udp_frame(MAC_A, PEER_A, [10, 0, 1, 1], [10, 0, 2, 1])).expect("null-net0");
    let b = null_nic("null-net1", udp_frame(MAC_B, PEER_B, [10, 0, 2, 1], [10, 0, 1, 1])).expect("null-net1");
    let nic = move |d| -> Remote<dyn Nic> {
        if shadowed {
            crate::net::NicShadow::new("null", d).expect("shadow").remote()
        } else {
            domain::grant_recover::<dyn Nic>(d).expect("grant")
        }
    };
    let cfg = FwdConfig {
        ports: [
            FwdPort { addr: [10, 0, 1, 2], prefix: 24, peer_ip: [10, 0, 1, 1], peer_mac: PEER_A },
            FwdPort { addr: [10, 0, 2, 2], prefix: 24, peer_ip: [10, 0, 2, 1], peer_mac: PEER_B },
        ],
        batch,
        idle_rounds: 0,
        coalesce: 0,
    };
    // `Forward::run` is one call that forwards until stopped: no watchdog budget.
    domain::limits::configure_default("forward:budget=0ms").expect("limit");
    let f = domain::create::<ForwardKind>("forward", "domains/dom-forward", move || (nic(a), nic(b), cfg));
    let f = f.expect("forward domain");
    let fwd = domain::grant::<dyn Forward>(f).expect("grant forward");
    let per_round = 2 * batch as u64;
    assert_eq!(n % per_round, 0, "iterations must be a multiple of 2 × batch");
    let warm = fwd.run(16).expect("warm-up");
    crate::kbench::region_start();
    let s = fwd.run(n / per_round).expect("forwarding run");
    let t = crate::kbench::region_end();
    let forwarded = s.forwarded - warm.forwarded;
    assert_eq!(forwarded, n, "forwarded {forwarded} packets, expected {n} (dropped {})", s.dropped);
    drop(fwd);
    for d in [f, a, b] {
        domain::remove(d).expect("remove");
    }
    t
}
