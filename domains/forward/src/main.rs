//! # dom-forward — the IPv4 forwarding domain
//!
//! Forwards IPv4 between two NICs (`frond_fwd::Forwarder` does the work) and answers ARP
//! requests for its two addresses. Exports `Forward`: `run` drives rounds on the calling
//! thread, `stats` reads counters published after every round, so it answers while
//! another thread is inside `run` (the forwarder itself stays behind a lock that only
//! `run` takes).
//!
//! May depend on: `frond-interface`, `frond-domrt`, `frond-fwd`, `rref`.
//! Safe Rust only (the crate attribute below forbids anything else).
//!
//! Invariants: the published counters only grow and are at most one round behind the
//! forwarder's; the batch size is within `1..=BATCH_MAX` (an out-of-range configuration is
//! clamped, and said so on the console).

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use frond_domrt::{sys, Syscalls};
use frond_fwd::{clamp_batch, Forwarder, DEFAULT_POOL};
use frond_interface::net::{Forward, ForwardKind, FwdConfig, FwdPort, FwdStats, Nic, BATCH_MAX};
use frond_interface::{Remote, RpcResult};

frond_domrt::entry!(ForwardKind, init);

/// The most buffers the pool starts with, whatever the NICs' queue sizes.
const POOL_MAX: usize = 2048;

fn init(sys: &'static dyn Syscalls, (a, b, cfg): (Remote<dyn Nic>, Remote<dyn Nic>, FwdConfig)) -> Remote<dyn Forward> {
    let (batch, clamped) = clamp_batch(cfg.batch);
    if clamped {
        sys.print(&format!("forward: batch {} is outside 1..={BATCH_MAX}; using {batch}", cfg.batch));
    }
    let cfg = FwdConfig { batch: batch as u16, ..cfg };
    let mut fwd = match Forwarder::new([a, b], &cfg, 0) {
        Ok(f) => f,
        Err(e) => panic!("forward: cannot read a NIC's info: {e}"),
    };
    // Enough buffers to fill both NICs' receive and transmit queues, plus the batches in
    // transit; a NIC that loses buffers gets them replaced round by round.
    let rings = 2 * (fwd.nic_info(0).queue_size as usize + fwd.nic_info(1).queue_size as usize);
    let want = (rings + 4 * BATCH_MAX).clamp(DEFAULT_POOL, POOL_MAX);
    let got = fwd.grow_pool(want);
    if got < want {
        sys.print(&format!("forward: shared heap gave {got} of {want} packet buffers"));
    }
    sys.print(&format!(
        "forward: ready batch={} a={} b={}",
        fwd.batch(),
        Net(&cfg.ports[0]),
        Net(&cfg.ports[1])
    ));
    let published = Published::default();
    published.store(&fwd.stats());
    Remote::local(Box::new(ForwardService { fwd: frond_domrt::sync::Mutex::new(fwd), published }))
}

/// `addr/prefix` of a port.
struct Net<'a>(&'a FwdPort);

impl core::fmt::Display for Net<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d] = self.0.addr;
        write!(f, "{a}.{b}.{c}.{d}/{}", self.0.prefix)
    }
}

/// Counters copied out of the forwarder after every round, readable without its lock.
#[derive(Default)]
struct Published {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    arp_replies: AtomicU64,
    nic_errors: AtomicU64,
    replaced: AtomicU64,
    rounds: AtomicU64,
    halts: AtomicU64,
}

impl Published {
    fn store(&self, s: &FwdStats) {
        self.forwarded.store(s.forwarded, Relaxed);
        self.dropped.store(s.dropped, Relaxed);
        self.arp_replies.store(s.arp_replies, Relaxed);
        self.nic_errors.store(s.nic_errors, Relaxed);
        self.replaced.store(s.replaced, Relaxed);
        self.rounds.store(s.rounds, Relaxed);
        self.halts.store(s.halts, Relaxed);
    }

    fn load(&self) -> FwdStats {
        FwdStats {
            forwarded: self.forwarded.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            arp_replies: self.arp_replies.load(Relaxed),
            nic_errors: self.nic_errors.load(Relaxed),
            replaced: self.replaced.load(Relaxed),
            rounds: self.rounds.load(Relaxed),
            halts: self.halts.load(Relaxed),
        }
    }
}

struct ForwardService {
    fwd: frond_domrt::sync::Mutex<Forwarder<Remote<dyn Nic>>>,
    published: Published,
}

impl Forward for ForwardService {
    fn run(&self, rounds: u64) -> RpcResult<FwdStats> {
        // A second `run` waits for the first; yielding lets the holder (preempted on this
        // one CPU) get on.
        let mut fwd = loop {
            if let Some(g) = self.fwd.try_lock() {
                break g;
            }
            sys().yield_now();
        };
        let mut left = rounds;
        loop {
            fwd.round();
            self.published.store(&fwd.stats());
            if rounds != 0 {
                left -= 1;
                if left == 0 {
                    break;
                }
            }
        }
        Ok(fwd.stats())
    }

    fn stats(&self) -> RpcResult<FwdStats> {
        Ok(self.published.load())
    }
}
