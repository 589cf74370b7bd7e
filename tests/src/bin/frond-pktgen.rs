//! `frond-pktgen`: sends UDP datagrams with an 18-byte payload (60-byte frames) from a
//! socket bound to `--src` to `--dst`, as fast as possible or paced at `--rate` packets
//! per second, for `--seconds`; then prints one JSON line
//! `{"sent","errors","seconds","rate_pps","payload_bytes","frame_bytes"}`.
//!
//! Run it inside a network namespace (`ip netns exec NS frond-pktgen ...`): the namespace
//! supplies the route and the permanent neighbour entry, so the frames leave with the
//! right MACs and no ARP is involved. Options and report: `frond_tests::pkt`.
//!
//! The payload carries a big-endian sequence number (first 8 bytes) so a capture can
//! tell datagrams apart. Failed sends (e.g. ECONNREFUSED after an ICMP port unreachable,
//! ENOBUFS) are counted in `errors` and the generator goes on.

#![forbid(unsafe_code)]

use std::net::UdpSocket;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use frond_tests::pkt::{due_packets, GenOptions, GenReport, PAYLOAD_LEN, PAYLOAD_MARKER};

/// How often (in packets) the saturating loop looks at the clock: often enough to stop
/// within microseconds of the deadline, rarely enough to cost nothing.
const CLOCK_EVERY: u64 = 64;
/// Longest sleep of the paced loop, so it stays responsive to the deadline.
const MAX_SLEEP: Duration = Duration::from_millis(1);

struct Sender {
    sock: UdpSocket,
    payload: [u8; PAYLOAD_LEN],
    seq: u64,
    sent: u64,
    errors: u64,
}

impl Sender {
    fn send(&mut self) {
        self.payload[..8].copy_from_slice(&self.seq.to_be_bytes());
        self.seq += 1;
        match self.sock.send(&self.payload) {
            Ok(_) => self.sent += 1,
            Err(_) => self.errors += 1,
        }
    }
}

fn run(opts: &GenOptions) -> Result<GenReport, String> {
    let sock = UdpSocket::bind(opts.src).map_err(|e| format!("bind {}: {e}", opts.src))?;
    // Connected: the route and neighbour are looked up once, not per datagram.
    sock.connect(opts.dst)
        .map_err(|e| format!("connect {}: {e}", opts.dst))?;
    let mut payload = [0u8; PAYLOAD_LEN];
    payload[8..].copy_from_slice(PAYLOAD_MARKER);
    let mut s = Sender {
        sock,
        payload,
        seq: 0,
        sent: 0,
        errors: 0,
    };
    let start = Instant::now();
    match opts.rate {
        None => 'outer: loop {
            for _ in 0..CLOCK_EVERY {
                s.send();
            }
            if start.elapsed() >= opts.duration {
                break 'outer;
            }
        },
        Some(rate) => {
            let total = due_packets(opts.duration, rate).saturating_sub(1).max(1);
            let period = Duration::from_nanos((1_000_000_000 / rate).max(1));
            loop {
                // Sends what is due before looking at the deadline, so a sleep that
                // overshoots the end still sends all `total` datagrams.
                let elapsed = start.elapsed();
                let due = due_packets(elapsed, rate).min(total);
                while s.seq < due {
                    s.send();
                }
                if s.seq >= total || elapsed >= opts.duration {
                    break;
                }
                thread::sleep(period.min(MAX_SLEEP));
            }
        }
    }
    Ok(GenReport {
        sent: s.sent,
        errors: s.errors,
        seconds: start.elapsed().as_secs_f64(),
        rate: opts.rate,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: frond-pktgen --src IP:PORT --dst IP:PORT --seconds S [--rate PPS]\n\
             Sends {PAYLOAD_LEN}-byte UDP datagrams (60-byte frames); prints a JSON report."
        );
        return ExitCode::SUCCESS;
    }
    let opts = match GenOptions::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("frond-pktgen: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(report) => {
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("frond-pktgen: {e}");
            ExitCode::FAILURE
        }
    }
}
