//! # dom-null-net — a NIC without a device
//!
//! Exports `Nic` with the same batch semantics as a real driver but no hardware: `rx`
//! fills every empty buffer it takes with a fixed frame (`NicArgs::null_frame`), `tx`
//! returns every frame as sent. What remains is the cost of crossing the domain boundaries
//! with batches of buffers, which is what it exists to measure.
//!
//! What it models: a device with an unlimited queue and instant DMA. `rx` writes the whole
//! frame (up to 64 bytes) into every buffer it hands back — the device's DMA, so each
//! received frame is complete and valid whatever the buffer held before — and hands the
//! queue of buffers it was given back as the queue of received frames (no per-buffer
//! moves when the caller's `done` queue is empty, as it is on the forwarding path).
//! `tx` reads each frame's length (the device reading the descriptor) and hands the queue
//! back as sent.
//!
//! May depend on: `frond-interface`, `frond-domrt`, `rref`. `#![forbid(unsafe_code)]`.
//!
//! Invariants: every buffer handed in comes back (in `done`, or left in `pkts` when `done`
//! has no room), in order; nothing is held between calls; counters only grow.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use frond_domrt::Syscalls;
use frond_interface::net::{Batch, Nic, NicArgs, NicInfo, NicKind, NicStats, Pkt, FRAME_MAX};
use frond_interface::{Remote, RpcResult};

frond_domrt::entry!(NicKind, init);

fn init(_sys: &'static dyn Syscalls, (args,): (NicArgs,)) -> Remote<dyn Nic> {
    let len = (args.null_len as usize).min(args.null_frame.len());
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&args.null_frame[..6]);
    Remote::local(Box::new(NullNic {
        frame: args.null_frame,
        len,
        info: NicInfo { mac, queue_size: 256, bdf: 0xffff },
        stats: Counters::default(),
    }))
}

/// The "device" part of a receive: the whole configured frame lands in the buffer, as a
/// DMA write would put it there. The frame is at most 64 bytes, so this is eight 8-byte
/// stores (bytes past `len` are beyond the frame and never read as part of it).
#[inline(always)]
fn write_frame(p: &mut Pkt, frame: &[u8; 64], len: u32) {
    if let Some(d) = p.data.first_chunk_mut::<64>() {
        *d = *frame;
    }
    p.len = len;
}

#[derive(Default)]
struct Counters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    dropped: AtomicU64,
}

struct NullNic {
    frame: [u8; 64],
    len: usize,
    info: NicInfo,
    stats: Counters,
}

impl Nic for NullNic {
    fn info(&self) -> RpcResult<NicInfo> {
        Ok(self.info)
    }

    fn stats(&self) -> RpcResult<NicStats> {
        let s = &self.stats;
        Ok(NicStats {
            rx_packets: s.rx_packets.load(Relaxed),
            rx_bytes: s.rx_bytes.load(Relaxed),
            tx_packets: s.tx_packets.load(Relaxed),
            tx_bytes: s.tx_bytes.load(Relaxed),
            dropped: s.dropped.load(Relaxed),
            irqs: 0,
            notifies: 0,
            sleeps: 0,
        })
    }

    fn tx(&self, mut b: Batch) -> RpcResult<Batch> {
        let (mut n, mut bytes, mut dropped) = (0u64, 0u64, 0u64);
        if b.done.is_empty() {
            // Everything is "sent" at once: the queue handed in is the queue handed back.
            for p in b.pkts.iter() {
                let len = p.len as u64;
                let ok = (len <= FRAME_MAX as u64) as u64;
                n += ok;
                bytes += len * ok;
                dropped += 1 - ok;
            }
            core::mem::swap(&mut b.pkts, &mut b.done);
        } else {
            while !b.done.is_full() {
                let Some(p) = b.pkts.pop_front() else { break };
                if p.len as usize > FRAME_MAX {
                    dropped += 1;
                } else {
                    n += 1;
                    bytes += p.len as u64;
                }
                // Room was checked above.
                let _ = b.done.push_back(p);
            }
        }
        self.stats.tx_packets.fetch_add(n, Relaxed);
        self.stats.tx_bytes.fetch_add(bytes, Relaxed);
        self.stats.dropped.fetch_add(dropped, Relaxed);
        Ok(b)
    }

    fn rx(&self, mut b: Batch) -> RpcResult<Batch> {
        let (frame, len) = (&self.frame, self.len as u32);
        let mut n = 0;
        if b.done.is_empty() {
            // Every buffer handed in receives a frame: the queue handed in becomes the
            // queue handed back (at most BATCH_MAX, its capacity), each buffer written in
            // place.
            core::mem::swap(&mut b.pkts, &mut b.done);
            n = b.done.len();
            b.done.for_each_target_mut(|p: &mut Pkt| write_frame(p, frame, len));
        } else {
            while !b.done.is_full() {
                let Some(mut p) = b.pkts.pop_front() else { break };
                write_frame(&mut p, frame, len);
                // Room was checked above.
                let _ = b.done.push_back(p);
                n += 1;
            }
        }
        self.stats.rx_packets.fetch_add(n as u64, Relaxed);
        self.stats.rx_bytes.fetch_add((n * self.len) as u64, Relaxed);
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
