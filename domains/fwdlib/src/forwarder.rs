//! [`Forwarder`]: drives two NICs in rounds, with a pool of packet buffers.
//!
//! A round: for each port, `rx` with up to `batch` free buffers (the NIC hands back
//! received frames; untaken buffers return to the pool). While the other port receives,
//! a port whose last `k` receive calls found nothing is skipped for the next
//! `min(k, RX_SKIP_MAX)` rounds ([`RX_SKIP_MAX`]): a flow in one direction does not pay a
//! receive call on the quiet port every round, and the quiet port's first frame waits at
//! most that many rounds. When neither port receives, both are polled every round, and
//! only such rounds count towards a halt. The received batch is classified
//! and rewritten in place by [`process`], frame by frame, where it lies in the rx queue;
//! then forwarded frames join the output port's out queue, ARP replies the input port's,
//! dropped buffers return to the pool. When every frame of the batch goes to one port
//! whose out queue is empty, the rx queue itself becomes that out queue (no frame moves).
//! An out queue that reaches `batch` frames is transmitted at once; at the end of the
//! round each port transmits what is left (and calls `tx` with nothing to send while the
//! NIC still holds sent buffers, to get them back).
//!
//! Frames a NIC does not take (its device queue is full) stay at the front of the out
//! queue, in order, for the next `tx` call — at the latest the next round's. Only a frame
//! that finds the out queue full (it holds [`BATCH_MAX`]) after one more offer to the NIC
//! in that round is dropped (`NoRoom`). Completed buffers come back in the `tx` call's
//! `done` queue; that queue is kept whole as the *spare* queue and handed to the next `rx`
//! as its buffers, so at steady state buffers cycle without being moved one by one.
//!
//! A NIC call that fails counts in `nic_errors`; the buffers (and frames) handed in are
//! lost (frames count as `NicLost` drops) and the pool is topped up with new buffers
//! (counted in `replaced`) whenever it holds fewer than an rx call needs.
//!
//! Invariants, between rounds:
//! * every buffer the forwarder allocated is in the pool or the spare queue, in an out
//!   queue (frames not taken yet, at most [`BATCH_MAX`] per port), held by a NIC, or lost
//!   in a failed call — rx batches are empty;
//! * `rx_frames == forwarded + arp_replies + dropped + queued()`: every received frame
//!   was taken by an output NIC, dropped for exactly one reason, or waits in an out queue.

use crate::packet::{ethertype, process, DropReason, PortState, Verdict, ETHERTYPE_ARP};
use alloc::vec::Vec;
use core::ops::Deref;
use frond_interface::net::{Batch, FwdConfig, FwdStats, Nic, NicInfo, Pkt, PktQueue, BATCH_MAX};
use frond_interface::{RRef, RpcError};

/// Most rounds in a row a quiet port's receive call is skipped (see the module docs).
pub const RX_SKIP_MAX: u8 = 8;

/// Initial pool size when the caller has no better idea.
pub const DEFAULT_POOL: usize = 512;

/// The forwarder's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames received from either NIC.
    pub rx_frames: u64,
    /// Frames an output NIC took (forwarded frames and ARP replies).
    pub tx_frames: u64,
    /// IPv4 frames an output NIC took.
    pub forwarded: u64,
    /// ARP replies the input NIC took.
    pub arp_replies: u64,
    /// Sum of `drops`.
    pub dropped: u64,
    /// Drops by reason, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::COUNT],
    /// NIC calls that returned `Err` (set_polling included).
    pub nic_errors: u64,
    /// Buffers allocated to top the pool up after the initial pool.
    pub replaced: u64,
    pub rounds: u64,
    /// Times the forwarder blocked in `Nic::wait` (see [`Forwarder::round`]).
    pub halts: u64,
}

impl Counters {
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }

    /// The interface's view.
    pub fn fwd_stats(&self) -> FwdStats {
        FwdStats {
            forwarded: self.forwarded,
            dropped: self.dropped,
            arp_replies: self.arp_replies,
            nic_errors: self.nic_errors,
            replaced: self.replaced,
            rounds: self.rounds,
            halts: self.halts,
        }
    }

    #[inline]
    fn drop_n(&mut self, r: DropReason, n: u64) {
        self.drops[r as usize] += n;
        self.dropped += n;
    }
}

/// `batch` clamped to `1..=BATCH_MAX`, and whether it had to be.
pub fn clamp_batch(batch: u16) -> (usize, bool) {
    let b = (batch as usize).clamp(1, BATCH_MAX);
    (b, b != batch as usize)
}

/// One NIC and what the forwarder keeps for it between calls.
struct Io<N> {
    nic: N,
    info: NicInfo,
    /// The rx batch, reused (both queues empty between calls). `None` after a failed call.
    rx: Option<Batch>,
    /// The out queue is `out.pkts`; `out.done` stays empty between calls.
    out: Option<Batch>,
    /// ARP replies in the out queue (the rest are forwarded frames).
    out_arp: usize,
    /// Buffers the NIC took for sending and has not handed back yet.
    in_flight: usize,
    /// `tx` was called in this round.
    tx_called: bool,
    /// The last `tx` in this round took none of the frames handed to it.
    stalled: bool,
    /// Receive calls in a row that found nothing (at most [`RX_SKIP_MAX`]).
    rx_empty: u8,
    /// Rounds left before the next receive call on this port.
    rx_skip: u8,
}

/// IPv4 forwarding between NIC 0 and NIC 1. `N` is how the NICs are held:
/// `Remote<dyn Nic>` in the domain, `&FakeNic` in tests.
pub struct Forwarder<N>
where
    N: Deref,
    N::Target: Nic,
{
    io: [Io<N>; 2],
    ports: [PortState; 2],
    batch: usize,
    pool: Vec<RRef<Pkt>>,
    /// More free buffers, kept as the queue a `tx` handed them back in, so the next `rx`
    /// can take them as its queue without moving each one (see [`Forwarder::receive`]).
    /// `None` only if the shared heap could not allocate the queue.
    spare: Option<PktQueue>,
    c: Counters,
    /// `FwdConfig::idle_rounds` (0: pure polling).
    idle_rounds: u32,
    /// `FwdConfig::coalesce`: most frames a halt waits for (0: the first, with `Nic::wait`).
    coalesce: u16,
    /// Frames the next halt waits for (1..=`coalesce`), adapted to the traffic: see
    /// [`Forwarder::halt`].
    want: u16,
    /// Frames received since the last halt.
    burst: u64,
    /// Rounds in a row that received nothing.
    idle: u32,
    /// The port that received last: the one to wait on when halting.
    last_rx: usize,
    /// Frames received in the current round.
    round_rx: u64,
}

/// With interrupt moderation: rounds in a row that were idle or thin before a thin round
/// halts (empty rounds alone need `idle_rounds`).
pub const THIN_ROUNDS: u32 = 2;

/// Longest a halt blocks on one NIC: frames arriving on the other one wait at most this.
pub const HALT_NS: u64 = 1_000_000;

fn new_buf() -> Option<RRef<Pkt>> {
    RRef::try_new(Pkt::empty()).ok()
}

impl<N> Forwarder<N>
where
    N: Deref,
    N::Target: Nic,
{
    /// Learns each NIC's MAC from `info()`, puts both in polling mode if
    /// `cfg.idle_rounds` is 0 and out of it otherwise (a failure there only counts in
    /// `nic_errors`), and allocates a pool of `pool` buffers (fewer if the shared heap runs
    /// out). `cfg.batch` is clamped to `1..=BATCH_MAX`.
    ///
    /// Fails if `info()` of either NIC fails.
    pub fn new(nics: [N; 2], cfg: &FwdConfig, pool: usize) -> Result<Self, RpcError> {
        let [a, b] = nics;
        let infos = [a.info()?, b.info()?];
        let mut c = Counters::default();
        for nic in [&a, &b] {
            if nic.set_polling(cfg.idle_rounds == 0).is_err() {
                c.nic_errors += 1;
            }
        }
        let ports = [PortState::new(cfg.ports[0], infos[0].mac), PortState::new(cfg.ports[1], infos[1].mac)];
        let io = |nic, info| Io {
            nic,
            info,
            rx: None,
            out: None,
            out_arp: 0,
            in_flight: 0,
            tx_called: false,
            stalled: false,
            rx_empty: 0,
            rx_skip: 0,
        };
        let mut f = Self {
            io: [io(a, infos[0]), io(b, infos[1])],
            ports,
            batch: clamp_batch(cfg.batch).0,
            pool: Vec::new(),
            spare: PktQueue::try_new(),
            c,
            idle_rounds: cfg.idle_rounds as u32,
            coalesce: cfg.coalesce.min(BATCH_MAX as u16),
            want: 1,
            burst: 0,
            idle: 0,
            last_rx: 0,
            round_rx: 0,
        };
        f.grow_pool(pool);
        Ok(f)
    }

    /// Adds up to `n` new buffers to the pool (not counted as `replaced`); returns how
    /// many the shared heap gave.
    pub fn grow_pool(&mut self, n: usize) -> usize {
        self.pool.reserve(n);
        for i in 0..n {
            match new_buf() {
                Some(p) => self.pool.push(p),
                None => return i,
            }
        }
        n
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn ports(&self) -> &[PortState; 2] {
        &self.ports
    }

    pub fn nic(&self, i: usize) -> &N {
        &self.io[i].nic
    }

    pub fn nic_info(&self, i: usize) -> NicInfo {
        self.io[i].info
    }

    /// Free buffers in the pool and the spare queue.
    pub fn pool_len(&self) -> usize {
        self.pool.len() + self.spare.as_ref().map_or(0, |q| q.len())
    }

    pub fn counters(&self) -> &Counters {
        &self.c
    }

    pub fn stats(&self) -> FwdStats {
        self.c.fwd_stats()
    }

    /// Runs `n` rounds.
    pub fn run(&mut self, n: u64) {
        for _ in 0..n {
            self.round();
        }
    }

    /// One round: receive and process on port 0 then port 1, then transmit on both.
    ///
    /// Poll-then-halt: after `idle_rounds` rounds in a row that received nothing (and
    /// with no transmission waiting), the round ends by blocking in `wait` on the NIC that
    /// received last, for at most [`HALT_NS`]: the CPU stops polling, so a hypervisor
    /// thread sharing it can deliver the next frames, whose interrupt ends the wait.
    pub fn round(&mut self) {
        self.round_rx = 0;
        let skipped = self.poll(0) | self.poll(1);
        for j in 0..2 {
            let io = &self.io[j];
            let queued = io.out.as_ref().is_some_and(|b| !b.pkts.is_empty());
            if queued || (!io.tx_called && io.in_flight > 0) {
                self.transmit(j);
            }
            self.io[j].tx_called = false;
            self.io[j].stalled = false;
        }
        self.c.rounds += 1;
        if self.idle_rounds == 0 {
            return;
        }
        self.burst += self.round_rx;
        // With interrupt moderation a thin round (at most half the frames a halt would
        // wait for, or half a batch) counts towards a halt as an empty one does: polling
        // on would find the frames a few at a time.
        let thin = if self.coalesce == 0 { 0 } else { (self.want as u64).min(self.batch as u64) / 2 };
        if self.round_rx > thin {
            self.idle = 0;
            return;
        }
        // An empty round that skipped a port is no evidence that both are idle.
        if skipped && self.round_rx == 0 {
            return;
        }
        self.idle += 1;
        // A thin round halts sooner: frames keep coming, just slower than they are taken.
        let limit = if self.round_rx > 0 { self.idle_rounds.min(THIN_ROUNDS) } else { self.idle_rounds };
        if self.idle >= limit {
            self.idle = 0;
            self.halt();
        }
    }

    /// Blocks on the NIC that received last for at most [`HALT_NS`]: until its first
    /// frame, or with interrupt moderation (`coalesce` > 0) until `want` frames wait.
    /// `want` follows the bursts (frames received between two halts): it doubles (up to
    /// `coalesce`) after a burst larger than it — frames come faster than they are
    /// taken — and otherwise becomes the burst (at least 1), so sparse traffic (a ping)
    /// is woken by its first frame, not by the timeout.
    fn halt(&mut self) {
        self.c.halts += 1;
        let nic = &self.io[self.last_rx].nic;
        let r = if self.coalesce == 0 {
            nic.wait(HALT_NS)
        } else {
            let burst = core::mem::take(&mut self.burst);
            self.want = if burst > self.want as u64 { (self.want * 2).min(self.coalesce) } else { burst.max(1) as u16 };
            nic.wait_rx(self.want, HALT_NS)
        };
        if r.is_err() {
            self.c.nic_errors += 1;
        }
    }

    /// Receives on port `i` unless it is skipped: it found nothing in its last calls and
    /// the other port received in its last one (see the module docs). True if skipped.
    #[inline(always)]
    fn poll(&mut self, i: usize) -> bool {
        let other_busy = self.io[1 - i].rx_empty == 0;
        let io = &mut self.io[i];
        if io.rx_skip > 0 && other_busy {
            io.rx_skip -= 1;
            return true;
        }
        let before = (self.c.rx_frames, self.c.nic_errors);
        self.receive(i);
        // A failed call is no sign of a quiet port: it is called again next round.
        let busy = (self.c.rx_frames, self.c.nic_errors) != before;
        let io = &mut self.io[i];
        if busy {
            io.rx_empty = 0;
        } else {
            io.rx_empty = (io.rx_empty + 1).min(RX_SKIP_MAX);
            io.rx_skip = io.rx_empty;
        }
        false
    }

    /// Allocates buffers until the pool holds `need`.
    fn top_up(&mut self, need: usize) {
        while self.pool.len() < need {
            match new_buf() {
                Some(p) => {
                    self.pool.push(p);
                    self.c.replaced += 1;
                }
                None => break,
            }
        }
    }

    fn receive(&mut self, i: usize) {
        let mut b = self.io[i].rx.take().unwrap_or_default();
        // Free buffers a `tx` handed back become this call's queue whole (at most `batch`
        // of them); the pool makes up the rest. A spare queue that does not fit goes to
        // the pool.
        if let Some(sp) = &mut self.spare {
            if !sp.is_empty() {
                if b.pkts.is_empty() && sp.len() <= self.batch {
                    core::mem::swap(sp, &mut b.pkts);
                } else {
                    while let Some(p) = sp.pop_front() {
                        self.pool.push(p);
                    }
                }
            }
        }
        let need = self.batch.saturating_sub(b.pkts.len());
        if self.pool.len() < need {
            self.top_up(need);
        }
        while b.pkts.len() < self.batch {
            let Some(p) = self.pool.pop() else { break };
            if let Err(p) = b.pkts.push_back(p) {
                self.pool.push(p);
                break;
            }
        }
        let mut b = match self.io[i].nic.rx(b) {
            Ok(b) => b,
            Err(_) => {
                self.c.nic_errors += 1;
                return;
            }
        };
        while let Some(p) = b.pkts.pop_front() {
            self.pool.push(p);
        }
        let n = b.done.len();
        if n == 0 {
            self.io[i].rx = Some(b);
            return;
        }
        self.last_rx = i;
        self.round_rx += n as u64;
        self.c.rx_frames += n as u64;

        // Every frame is classified and rewritten where it lies, in the rx batch.
        let mut verdicts = [0u8; BATCH_MAX];
        let mut k = 0;
        let mut mixed = false;
        let ports = &self.ports;
        b.done.for_each_target_mut(|p: &mut Pkt| {
            let len = p.len as usize;
            let v = code(process(&mut p.data, len, i, ports));
            if let Some(slot) = verdicts.get_mut(k) {
                *slot = v;
            }
            mixed |= v != verdicts[0];
            k += 1;
        });

        // The whole batch forwarded to one port with an empty out queue (the common
        // case): the rx queue itself becomes the out queue, no frame moves.
        let first = verdicts[0];
        if !mixed && (first as usize) < 2 && n <= self.batch && k == n {
            let j = first as usize;
            let io = &mut self.io[j];
            if io.out.as_ref().is_none_or(|o| o.pkts.is_empty()) {
                let mut out = io.out.take().unwrap_or_default();
                core::mem::swap(&mut out.pkts, &mut b.done);
                io.out = Some(out);
                io.out_arp = 0;
                self.io[i].rx = Some(b);
                if n >= self.batch {
                    self.transmit(j);
                }
                return;
            }
        }

        let mut k = 0;
        let mut dropped = [0u32; DropReason::COUNT];
        while let Some(p) = b.done.pop_front() {
            let v = verdicts.get(k).copied().unwrap_or(CODE_DROP + DropReason::NoRoom as u8);
            k += 1;
            match v {
                0 | 1 => self.enqueue(v as usize, p, false),
                CODE_ARP => self.enqueue(i, p, true),
                _ => {
                    dropped[(v - CODE_DROP) as usize % DropReason::COUNT] += 1;
                    self.pool.push(p);
                }
            }
        }
        for r in DropReason::ALL {
            let d = dropped[r as usize];
            if d != 0 {
                self.c.drop_n(r, d as u64);
            }
        }
        self.io[i].rx = Some(b);
    }

    /// Appends a frame to port `j`'s out queue; transmits when it holds `batch` frames.
    /// A full queue (frames the NIC did not take last time, plus new ones) is offered to
    /// the NIC first; a frame that still finds no room is dropped (`NoRoom`).
    #[inline(always)]
    fn enqueue(&mut self, j: usize, p: RRef<Pkt>, arp: bool) {
        let batch = self.batch;
        let out = self.io[j].out.get_or_insert_with(Batch::new);
        let p = match out.pkts.push_back(p) {
            Ok(()) => None,
            Err(p) => Some(p),
        };
        let p = match p {
            None => None,
            // Offered to the NIC once more, unless it took nothing in this round already.
            Some(p) if self.io[j].stalled => Some(p),
            Some(p) => {
                self.transmit(j);
                let out = self.io[j].out.get_or_insert_with(Batch::new);
                out.pkts.push_back(p).err()
            }
        };
        match p {
            None => {
                let io = &mut self.io[j];
                io.out_arp += arp as usize;
                if io.out.as_ref().is_some_and(|o| o.pkts.len() >= batch) {
                    self.transmit(j);
                }
            }
            Some(p) => {
                self.c.drop_n(DropReason::NoRoom, 1);
                self.pool.push(p);
            }
        }
    }

    /// Hands port `j`'s out queue to its NIC and takes back completed buffers. Frames the
    /// NIC did not take (its queue was full) stay in the out queue, in order, for the next
    /// call; they are not counted until a NIC takes them (or they are dropped).
    fn transmit(&mut self, j: usize) {
        let io = &mut self.io[j];
        let b = io.out.take().unwrap_or_default();
        let handed = b.pkts.len();
        let arp = io.out_arp;
        io.tx_called = true;
        let mut b = match io.nic.tx(b) {
            Ok(b) => b,
            Err(_) => {
                io.in_flight = 0;
                io.out_arp = 0;
                self.c.nic_errors += 1;
                self.c.drop_n(DropReason::NicLost, handed as u64);
                return;
            }
        };
        let untaken = b.pkts.len().min(handed);
        let taken = handed - untaken;
        let mut arp_untaken = 0usize;
        if arp != 0 && untaken != 0 {
            for p in b.pkts.iter() {
                arp_untaken += (ethertype(p.frame()) == ETHERTYPE_ARP) as usize;
            }
        }
        let arp_untaken = arp_untaken.min(arp);
        let arp_taken = (arp - arp_untaken).min(taken);
        self.c.tx_frames += taken as u64;
        self.c.arp_replies += arp_taken as u64;
        self.c.forwarded += (taken - arp_taken) as u64;
        let io = &mut self.io[j];
        io.out_arp = arp_untaken;
        io.stalled = taken == 0 && handed != 0;
        io.in_flight = (io.in_flight + taken).saturating_sub(b.done.len());
        // Completed buffers are kept as they came, for the next `rx`, if the spare queue
        // is free; otherwise they go to the pool one by one.
        if let Some(sp) = &mut self.spare {
            if sp.is_empty() {
                core::mem::swap(sp, &mut b.done);
            }
        }
        while let Some(p) = b.done.pop_front() {
            self.pool.push(p);
        }
        self.io[j].out = Some(b);
    }

    /// Frames in the out queues: forwarded or ARP replies a NIC has not taken yet.
    pub fn queued(&self) -> usize {
        self.io.iter().map(|io| io.out.as_ref().map_or(0, |o| o.pkts.len())).sum()
    }
}

/// A verdict as a byte: 0 and 1 forward to that port, [`CODE_ARP`] an ARP reply,
/// [`CODE_DROP`] + the reason a drop.
const CODE_ARP: u8 = 2;
const CODE_DROP: u8 = 3;

#[inline(always)]
fn code(v: Verdict) -> u8 {
    match v {
        Verdict::Forward(j) => (j & 1) as u8,
        Verdict::ArpReply => CODE_ARP,
        Verdict::Drop(r) => CODE_DROP + r as u8,
    }
}
