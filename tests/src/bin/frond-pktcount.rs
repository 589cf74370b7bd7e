//! `frond-pktcount`: counts the Ethernet frames arriving in its network namespace that
//! match a filter (destination MAC, source MAC, ethertype IPv4, TTL, UDP destination
//! port), per time bucket (10 ms by default), for `--seconds` or until SIGTERM/SIGINT;
//! then prints one JSON line `{"bucket_ms","buckets":[...],"total","seconds"}`.
//!
//! Run it inside a namespace (`ip netns exec NS frond-pktcount ...`). It reads an
//! AF_PACKET raw socket (all protocols; only frames the interface *received*, on
//! `--iface` if given) and times each frame by its kernel receive timestamp
//! (SO_TIMESTAMPNS), so a counter that is scheduled late still puts frames in the right
//! bucket. Counting starts when it prints `pktcount: ready` on stderr; frames stamped
//! before that or at/after the end of the window are not counted, and frames already
//! queued at the end are drained and counted if their stamp is inside the window.
//!
//! It also binds a UDP socket to the destination port (on all addresses) and never
//! reads it, so the namespace's kernel does not answer the counted datagrams with ICMP
//! port unreachable; if the port is already taken (someone else holds it for the same
//! purpose) it goes on without.
//!
//! With `--verify on` it also judges every IPv4/UDP frame to the port while counting,
//! whatever its MACs and TTL (`frond_tests::pkt::Verifier`: MACs, TTL, IPv4 header
//! checksum, payload, duplicates), and adds a `"verify"` object to the report.
//!
//! Options and report: `frond_tests::pkt`. Exit status: 0 with a report, 2 for bad
//! options, 1 if the socket could not be set up.

#![forbid(unsafe_code)]

use std::io::IoSliceMut;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::socket::{
    recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, LinkAddr, MsgFlags,
    SockFlag, SockProtocol, SockType,
};
use nix::sys::time::{TimeSpec, TimeVal};
use nix::time::{clock_gettime, ClockId};

use frond_tests::pkt::{Buckets, CountOptions, CountReport, Verifier, COUNT_READY};

/// `sll_pkttype` of frames this host sent (linux/if_packet.h): never counted.
const PACKET_OUTGOING: u8 = 4;
/// Receive buffer asked for (SO_RCVBUFFORCE, as root): a few hundred thousand small
/// frames, so a counter that is briefly descheduled loses nothing.
const RCVBUF_BYTES: usize = 32 << 20;
/// How long one receive waits before the loop looks at the clock and the stop flag.
const RECV_TIMEOUT_US: i64 = 20_000;

/// Nanoseconds from `from` to `to` (negative if `to` is earlier).
fn nanos_between(from: TimeSpec, to: TimeSpec) -> i128 {
    let ns = |t: TimeSpec| i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec());
    ns(to) - ns(from)
}

fn realtime() -> Result<TimeSpec, String> {
    clock_gettime(ClockId::CLOCK_REALTIME).map_err(|e| format!("clock_gettime: {e}"))
}

struct Counter {
    fd: OwnedFd,
    opts: CountOptions,
    ifindex: Option<usize>,
    /// Counting started (before: frames are only drained).
    counting: bool,
    start: TimeSpec,
    buckets: Buckets,
    verifier: Option<Verifier>,
    buf: Vec<u8>,
    cmsg: Vec<u8>,
}

impl Counter {
    /// Receives one frame (`flags` may add MSG_DONTWAIT) and counts it if it matches.
    /// `Ok(false)`: nothing was there.
    fn receive(&mut self, flags: MsgFlags) -> Result<bool, Errno> {
        let mut iov = [IoSliceMut::new(&mut self.buf)];
        let msg =
            match recvmsg::<LinkAddr>(self.fd.as_raw_fd(), &mut iov, Some(&mut self.cmsg), flags) {
                Ok(m) => m,
                Err(Errno::EAGAIN | Errno::EINTR) => return Ok(false),
                Err(e) => return Err(e),
            };
        let len = msg.bytes;
        let from = msg.address;
        let stamp = msg.cmsgs().ok().and_then(|mut it| {
            it.find_map(|c| match c {
                ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
                _ => None,
            })
        });
        if let Some(addr) = from {
            if addr.pkttype() == PACKET_OUTGOING {
                return Ok(true);
            }
            if self.ifindex.is_some_and(|i| i != addr.ifindex()) {
                return Ok(true);
            }
        }
        let frame = &self.buf[..len.min(self.buf.len())];
        if self.counting {
            if let Some(v) = &mut self.verifier {
                v.check(frame);
            }
        }
        if !self.counting || !self.opts.filter.matches(frame) {
            return Ok(true);
        }
        let stamp = match stamp {
            Some(ts) => ts,
            None => realtime().map_err(|_| Errno::EINVAL)?,
        };
        let offset = nanos_between(self.start, stamp);
        // A stamp far after the present would be a clock step; never grow the buckets
        // for it.
        let limit =
            nanos_between(self.start, realtime().map_err(|_| Errno::EINVAL)?) + 1_000_000_000;
        if (0..limit).contains(&offset) {
            let offset = Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX));
            self.buckets.record(offset);
        }
        Ok(true)
    }
}

fn setup(opts: CountOptions) -> Result<(Counter, Option<UdpSocket>), String> {
    let ifindex = match &opts.iface {
        Some(name) => Some(
            nix::net::if_::if_nametoindex(name.as_str())
                .map_err(|e| format!("interface {name}: {e}"))? as usize,
        ),
        None => None,
    };
    let sink = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, opts.filter.udp_dst_port)) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
        Err(e) => return Err(format!("bind UDP port {}: {e}", opts.filter.udp_dst_port)),
    };
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::EthAll,
    )
    .map_err(|e| format!("AF_PACKET socket (needs CAP_NET_RAW): {e}"))?;
    if setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF_BYTES).is_err() {
        // Not privileged enough to exceed rmem_max: take what the limit allows.
        let _ = setsockopt(&fd, sockopt::RcvBuf, &RCVBUF_BYTES);
    }
    setsockopt(&fd, sockopt::ReceiveTimestampns, &true)
        .map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?;
    setsockopt(
        &fd,
        sockopt::ReceiveTimeout,
        &TimeVal::new(0, RECV_TIMEOUT_US as _),
    )
    .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
    let buckets = Buckets::new(opts.bucket, opts.duration);
    let verifier = opts.verify.then(|| Verifier::new(opts.filter));
    Ok((
        Counter {
            fd,
            opts,
            ifindex,
            counting: false,
            start: TimeSpec::new(0, 0),
            buckets,
            verifier,
            // Only the headers are inspected; longer frames arrive truncated, which is fine.
            buf: vec![0; 256],
            cmsg: nix::cmsg_space!(TimeSpec),
        },
        sink,
    ))
}

fn run(opts: CountOptions, stop: &AtomicBool) -> Result<CountReport, String> {
    let (mut c, _sink) = setup(opts)?;
    // Drop whatever arrived between socket creation and the start.
    while c
        .receive(MsgFlags::MSG_DONTWAIT)
        .map_err(|e| format!("recvmsg: {e}"))?
    {}
    c.start = realtime()?;
    c.counting = true;
    eprintln!("{COUNT_READY}");
    let window_ns = c.opts.duration.map(|d| d.as_nanos() as i128);
    let end = loop {
        let now = realtime()?;
        let elapsed = nanos_between(c.start, now);
        if stop.load(Ordering::Relaxed) {
            break elapsed;
        }
        if let Some(w) = window_ns {
            if elapsed >= w {
                break w;
            }
        }
        c.receive(MsgFlags::empty())
            .map_err(|e| format!("recvmsg: {e}"))?;
    };
    // Frames stamped inside the window but still queued.
    while c
        .receive(MsgFlags::MSG_DONTWAIT)
        .map_err(|e| format!("recvmsg: {e}"))?
    {}
    let end = Duration::from_nanos(u64::try_from(end.max(0)).unwrap_or(u64::MAX));
    c.buckets.finish(end);
    let mut report = CountReport::from_buckets(&c.buckets, end.as_secs_f64());
    report.verify = c.verifier.as_ref().map(|v| v.report().clone());
    Ok(report)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: frond-pktcount --dst-mac MAC --src-mac MAC --ttl N --port N \
             [--seconds S] [--bucket-ms N] [--iface NAME] [--verify on|off]\n\
             Counts matching IPv4/UDP frames per bucket; prints a JSON report."
        );
        return ExitCode::SUCCESS;
    }
    let opts = match CountOptions::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("frond-pktcount: {e}");
            return ExitCode::from(2);
        }
    };
    // SIGTERM/SIGINT end the count early but still produce a report: block them in
    // every thread and take them synchronously on one that only waits for them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    if let Err(e) = signals.thread_block() {
        eprintln!("frond-pktcount: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    thread::spawn(move || {
        if signals.wait().is_ok() {
            flag.store(true, Ordering::Relaxed);
        }
    });
    match run(opts, &stop) {
        Ok(report) => {
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("frond-pktcount: {e}");
            ExitCode::FAILURE
        }
    }
}
