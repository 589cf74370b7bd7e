//! The 82599 driver against the datasheet-level device model (`model/`): the
//! initialisation order and its waits, refusals of out-of-order steps, batched zero-copy
//! receive and transmit, ring wrap-around, statistics, link loss, interrupts, and what
//! a misbehaving device can write.

mod model;

use frond_intel_nic::{Chip, DeviceStats, Dir, Error, IntelNic, Regs, RING_SIZE};
use frond_interface::net::{Batch, Pkt, PktQueue, BATCH_MAX, FRAME_MAX, PKT_DATA};
use frond_interface::RRef;
use model::{bit, reg, Knobs, Model, RxOutcome};
use rref::host::HostHeap;
use std::time::{Duration, Instant};

const BCAST: [u8; 6] = [0xff; 6];

fn domain() {
    let h = HostHeap::install();
    let d = h.fresh_domain();
    h.set_current(d);
}

/// A model, a driver initialised on it (MSI-X), and the link up.
fn up(knobs: Knobs) -> (Model, IntelNic<Model>) {
    domain();
    let m = Model::new(knobs);
    let drv = IntelNic::new(m.clone(), Chip::I82599, true).expect("driver init");
    for _ in 0..100 {
        if drv.link_up() {
            break;
        }
    }
    assert!(drv.link_up(), "link did not come up after AN restart");
    (m, drv)
}

fn data_addr(p: &RRef<Pkt>) -> u64 {
    let r: &Pkt = p;
    r.data.as_ptr() as u64
}

/// An empty buffer the model may DMA into.
fn buf(m: &Model) -> RRef<Pkt> {
    let p = RRef::new(Pkt::empty());
    m.allow(data_addr(&p), PKT_DATA as u64);
    p
}

fn bufs(m: &Model, n: usize) -> Vec<RRef<Pkt>> {
    (0..n).map(|_| buf(m)).collect()
}

/// A frame of `len` bytes to `dst` whose content identifies `tag`.
fn frame(dst: [u8; 6], tag: u32, len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| (tag as usize * 31 + i * 7) as u8).collect();
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

fn to_us(m: &Model, tag: u32, len: usize) -> Vec<u8> {
    frame(m.dev().knobs.mac, tag, len)
}

/// A transmit buffer holding `bytes`.
fn tx_pkt(m: &Model, bytes: &[u8]) -> RRef<Pkt> {
    let mut p = buf(m);
    p.set_frame(bytes);
    p
}

fn batch_of(pkts: impl IntoIterator<Item = RRef<Pkt>>) -> Batch {
    let mut b = Batch::new();
    for p in pkts {
        assert!(b.pkts.push_back(p).is_ok(), "batch overflow in test");
    }
    b
}

fn drain(q: &mut PktQueue) -> Vec<RRef<Pkt>> {
    std::iter::from_fn(|| q.pop_front()).collect()
}

/// Posts `pkts` (at most BATCH_MAX) for receive; returns what the driver did not take.
fn post(drv: &mut IntelNic<Model>, pkts: Vec<RRef<Pkt>>) -> Vec<RRef<Pkt>> {
    let mut b = drv.rx(batch_of(pkts));
    assert!(b.done.is_empty(), "nothing was received yet");
    drain(&mut b.pkts)
}

/// Received frames (one rx call, nothing posted).
fn harvest(drv: &mut IntelNic<Model>) -> Vec<RRef<Pkt>> {
    let mut b = drv.rx(Batch::new());
    drain(&mut b.done)
}

/// (RDT writes, TDT writes) so far.
fn tails(m: &Model) -> (u64, u64) {
    let d = m.dev();
    (d.rdt_writes, d.tdt_writes)
}

fn assert_clean(m: &Model) {
    let v = m.violations();
    assert!(v.is_empty(), "datasheet violations: {v:#?}");
}

fn pos(writes: &[(u32, u32)], what: &str, f: impl Fn(u32, u32) -> bool) -> usize {
    writes.iter().position(|&(o, v)| f(o, v)).unwrap_or_else(|| panic!("no write of {what} in {writes:x?}"))
}

#[test]
fn init_follows_the_datasheet_sequence() {
    let (m, drv) = up(Knobs::default());
    assert_clean(&m);
    let d = m.dev();
    assert_eq!(d.resets, 1, "exactly one software reset");
    assert_eq!(drv.mac(), d.knobs.mac, "MAC from RAL0/RAH0");
    assert_eq!(d.rxctrl & bit::RXEN, bit::RXEN);
    assert!(d.rx.enabled && d.tx.enabled);
    assert_eq!(d.srrctl, bit::DESCTYPE_ADV_ONEBUF | 2 | bit::DROP_EN, "SRRCTL: advanced one buffer, 2 KiB, DROP_EN");
    assert_eq!(d.hlreg0 & (bit::RXCRCSTRP | bit::TXCRCEN | bit::TXPADEN | bit::JUMBOEN), bit::RXCRCSTRP | bit::TXCRCEN | bit::TXPADEN);
    assert_eq!(d.rdrxctl & bit::RDRXCTL_CRCSTRIP, bit::RDRXCTL_CRCSTRIP);
    assert_eq!(d.fctrl & (bit::BAM | bit::UPE | bit::MPE), bit::BAM);
    assert_eq!(d.dmatxctl & bit::TE, bit::TE);
    assert_eq!((d.rx.len, d.tx.len), (RING_SIZE as u32 * 16, RING_SIZE as u32 * 16));
    assert_eq!(d.rx.base() % 128, 0);
    assert_eq!(d.gpie & bit::GPIE_MSIX, bit::GPIE_MSIX);
    assert_eq!(d.ivar0 & 0xFFFF, 0x8080, "rx and tx queue 0 to vector 0");
    assert_eq!(d.eims, 0, "interrupts stay masked after init");

    // The order of §4.6.3, §4.6.4, §4.6.7 and §4.6.8.
    let w = &d.writes;
    let mask1 = pos(w, "EIMC", |o, v| o == reg::EIMC && v == 0x7FFF_FFFF);
    let gio = pos(w, "CTRL.GIO master disable", |o, v| o == reg::CTRL && v & bit::CTRL_GIO_DIS != 0);
    let rst = pos(w, "CTRL.RST", |o, v| o == reg::CTRL && v & bit::CTRL_RST != 0);
    let mask2 = mask1 + 1 + pos(&w[mask1 + 1..], "EIMC again", |o, _| o == reg::EIMC);
    let autoc = pos(w, "AUTOC.AN_RESTART", |o, v| o == reg::AUTOC && v & bit::AN_RESTART != 0);
    let rxoff = pos(w, "RXCTRL off", |o, v| o == reg::RXCTRL && v & bit::RXEN == 0);
    let srr = pos(w, "SRRCTL", |o, _| o == reg::SRRCTL);
    let ring = pos(w, "RDLEN", |o, _| o == reg::RDLEN);
    let rxq = pos(w, "RXDCTL.ENABLE", |o, v| o == reg::RXDCTL && v & bit::ENABLE != 0);
    let rxen = pos(w, "RXCTRL.RXEN", |o, v| o == reg::RXCTRL && v & bit::RXEN != 0);
    let te = pos(w, "DMATXCTL.TE", |o, v| o == reg::DMATXCTL && v & bit::TE != 0);
    let txq = pos(w, "TXDCTL.ENABLE", |o, v| o == reg::TXDCTL && v & bit::ENABLE != 0);
    let order = [mask1, gio, rst, mask2, autoc, rxoff, srr, ring, rxq, rxen, te, txq];
    assert!(order.windows(2).all(|p| p[0] < p[1]), "init order {order:?}");
}

#[test]
fn init_waits_for_every_slow_step() {
    let k = Knobs {
        master_disable_reads: 40,
        reset_reads: 500,
        eeprom_reads: 300,
        dma_init_reads: 300,
        enable_reads: 200,
        link_reads: 20,
        ..Knobs::default()
    };
    let (m, _drv) = up(k);
    assert_clean(&m);
}

#[test]
fn every_wait_is_bounded_and_fails_with_its_error() {
    domain();
    type Case = (fn(&mut Knobs), Error);
    let cases: [Case; 6] = [
        (|k| k.master_disable_reads = u32::MAX, Error::MasterDisableTimeout),
        (|k| k.reset_reads = u32::MAX, Error::ResetTimeout),
        (|k| k.eeprom_reads = u32::MAX, Error::EepromTimeout),
        (|k| k.dma_init_reads = u32::MAX, Error::DmaInitTimeout),
        (|k| k.enable_reads = u32::MAX, Error::QueueEnableTimeout(Dir::Rx)),
        (|k| k.mac = [0; 6], Error::NoMacAddress),
    ];
    for (set, want) in cases {
        let mut k = Knobs::default();
        set(&mut k);
        let m = Model::new(k);
        let t = Instant::now();
        let e = IntelNic::new(m.clone(), Chip::I82599, true).err().expect("init must fail");
        assert_eq!(e, want);
        assert!(t.elapsed() < Duration::from_secs(10), "{want:?} took {:?}", t.elapsed());
        assert!(!e.to_string().is_empty());
        // The device is left with receive off and no queue running.
        assert_eq!(m.dev().rxctrl & bit::RXEN, 0, "{want:?}: receive left on");
        assert!(!matches!(m.receive(&frame(BCAST, 1, 60)), RxOutcome::Delivered(_)), "{want:?}: a frame was received");
    }
}

/// Asserts the model recorded exactly one new violation since `seen`, containing `what`.
fn refused(m: &Model, seen: &mut usize, what: &str) {
    let v = m.violations();
    assert!(v.len() > *seen && v[*seen..].iter().any(|s| s.contains(what)), "expected a violation `{what}`, got {:#?}", &v[*seen..]);
    *seen = v.len();
}

#[test]
fn model_refuses_out_of_order_steps() {
    domain();
    let mut m = Model::new(Knobs::default());
    let mut seen = 0;
    // Ring enable before the ring registers: refused, the queue never runs.
    m.write32(reg::RXDCTL, bit::ENABLE);
    for _ in 0..10 {
        m.read32(reg::RXDCTL);
    }
    assert!(!m.dev().rx.enabled);
    refused(&m, &mut seen, "RXDCTL.ENABLE set before the queue was set up");
    // Receive enabled before any queue.
    m.write32(reg::RXCTRL, bit::RXEN);
    refused(&m, &mut seen, "RXEN set before a receive queue is enabled");
    m.write32(reg::RXCTRL, 0);
    // Transmit queue before DMATXCTL.TE.
    let ring = vec![0u64; 32].leak();
    let base = ring.as_ptr() as u64;
    m.write32(reg::TDBAL, base as u32);
    m.write32(reg::TDBAH, (base >> 32) as u32);
    m.write32(reg::TDLEN, 128);
    m.write32(reg::TXDCTL, bit::ENABLE);
    refused(&m, &mut seen, "DMATXCTL.TE not set");
    // Tail before ENABLE read back set.
    m.write32(reg::DMATXCTL, bit::TE);
    m.write32(reg::TXDCTL, bit::ENABLE);
    m.write32(reg::TDT, 1);
    refused(&m, &mut seen, "TDT0 written (1) before TXDCTL ENABLE read back set");
    // Ring registers changed while the queue runs.
    while m.read32(reg::TXDCTL) & bit::ENABLE == 0 {}
    m.write32(reg::TDLEN, 256);
    refused(&m, &mut seen, "TDLEN0 written (0x100) while its queue is enabled");
    assert_eq!(m.dev().tx.len, 128);
    // Reset without master disable, then a write during the reset, then one before
    // DMAIDONE.
    m.write32(reg::CTRL, bit::CTRL_RST);
    refused(&m, &mut seen, "GIO Master Enable is still set");
    m.write32(reg::FCTRL, bit::BAM);
    refused(&m, &mut seen, "during a reset");
    while m.read32(reg::CTRL) & bit::CTRL_RST != 0 {}
    while m.read32(reg::EEC) & bit::EEC_ARD == 0 {}
    m.write32(reg::FCTRL, bit::BAM);
    refused(&m, &mut seen, "before RDRXCTL.DMAIDONE");
    assert_eq!(m.dev().fctrl, 0, "refused writes have no effect");
    // Read-only and unmodelled registers.
    m.write32(reg::GPRC, 1);
    while m.read32(reg::RDRXCTL) & bit::RDRXCTL_DMAIDONE == 0 {}
    m.write32(reg::GPRC, 1);
    refused(&m, &mut seen, "read-only register GPRC");
    m.write32(0x5000, 1);
    refused(&m, &mut seen, "unmodelled register");
}

#[test]
fn rx_frames_arrive_in_order_in_the_posted_buffers() {
    let (m, mut drv) = up(Knobs::default());
    let posted = bufs(&m, 32);
    let addrs: Vec<u64> = posted.iter().map(data_addr).collect();
    assert!(post(&mut drv, posted).is_empty());
    // Zero copy: each descriptor points at its packet's `data`.
    {
        let d = m.dev();
        for (i, a) in addrs.iter().enumerate() {
            // SAFETY: the ring is alive (the driver holds it).
            let desc = unsafe { ((d.rx.base() + i as u64 * 16) as usize as *const u64).read_volatile() };
            assert_eq!(desc, *a, "descriptor {i} buffer address");
        }
    }
    let sent: Vec<Vec<u8>> = (0..20).map(|i| to_us(&m, i, 60 + (i as usize * 73) % (FRAME_MAX - 59))).collect();
    for f in &sent {
        assert!(matches!(m.receive(f), RxOutcome::Delivered(ref d) if d.len() == 1));
    }
    let got = harvest(&mut drv);
    assert_eq!(got.len(), 20);
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.frame(), &sent[i][..], "frame {i} (CRC stripped, exact length)");
        assert_eq!(data_addr(p), addrs[i], "frame {i} came back in the buffer posted {i}th");
    }
    let s = drv.stats();
    assert_eq!((s.rx_packets, s.rx_bytes, s.dropped), (20, sent.iter().map(|f| f.len() as u64).sum(), 0));
    assert_clean(&m);
}

#[test]
fn full_size_frames_fit_one_buffer() {
    let (m, mut drv) = up(Knobs::default());
    post(&mut drv, bufs(&m, 4));
    for i in 0..4 {
        assert_eq!(m.receive(&to_us(&m, i, FRAME_MAX)), RxOutcome::Delivered(vec![i as usize]));
    }
    let got = harvest(&mut drv);
    assert_eq!(got.len(), 4, "1514-byte frames are received whole");
    assert!(got.iter().all(|p| p.len as usize == FRAME_MAX));
    // One byte more is longer than the largest frame: the device drops it.
    assert_eq!(m.receive(&to_us(&m, 9, FRAME_MAX + 1)), RxOutcome::Oversize);
    assert_clean(&m);
}

#[test]
fn tx_frames_leave_in_order_and_their_buffers_come_back() {
    let (m, mut drv) = up(Knobs::default());
    let frames: Vec<Vec<u8>> = (0..32).map(|i| frame(BCAST, i, [42, 60, 61, 500, 1000, FRAME_MAX][i as usize % 6])).collect();
    let pkts: Vec<RRef<Pkt>> = frames.iter().map(|f| tx_pkt(&m, f)).collect();
    let addrs: Vec<u64> = pkts.iter().map(data_addr).collect();
    let mut b = drv.tx(batch_of(pkts));
    assert!(b.pkts.is_empty() && b.done.is_empty());
    let wire = m.sent();
    assert_eq!(wire.len(), 32);
    for (i, f) in frames.iter().enumerate() {
        let mut want = f.clone();
        want.resize(want.len().max(60), 0);
        assert_eq!(wire[i], want, "frame {i} on the wire (short frames padded to 60)");
    }
    b = drv.tx(Batch::new());
    let back = drain(&mut b.done);
    assert_eq!(back.iter().map(data_addr).collect::<Vec<_>>(), addrs, "buffers back in order");
    let s = drv.stats();
    assert_eq!(s.tx_packets, 32);
    assert_eq!(s.tx_bytes, frames.iter().map(|f| f.len() as u64).sum());
    assert_eq!(drv.device_stats(), DeviceStats { good_rx: 0, good_tx: 32, missed: 0 });
    assert_clean(&m);
}

#[test]
fn tx_drops_empty_and_oversized_frames() {
    let (m, mut drv) = up(Knobs::default());
    let mut big = buf(&m);
    big.len = FRAME_MAX as u32 + 1;
    let empty = buf(&m);
    let ok = tx_pkt(&m, &frame(BCAST, 1, 100));
    let mut b = drv.tx(batch_of([big, empty, ok]));
    assert_eq!(drain(&mut b.done).len(), 2, "both bad frames come back at once");
    assert_eq!(drv.stats().dropped, 2);
    assert_eq!(m.sent().len(), 1);
    assert_clean(&m);
}

#[test]
fn one_tail_write_per_batch() {
    let (m, mut drv) = up(Knobs::default());
    let (r0, t0) = tails(&m);
    post(&mut drv, bufs(&m, BATCH_MAX));
    assert_eq!(tails(&m).0 - r0, 1, "32 buffers posted with one RDT write");
    let pkts: Vec<_> = (0..BATCH_MAX as u32).map(|i| tx_pkt(&m, &frame(BCAST, i, 64))).collect();
    drv.tx(batch_of(pkts));
    assert_eq!(tails(&m).1 - t0, 1, "32 frames sent with one TDT write");
    harvest(&mut drv);
    drv.tx(Batch::new());
    assert_eq!(tails(&m), (r0 + 1, t0 + 1), "nothing posted, no tail write");
    assert_clean(&m);
}

#[test]
fn tail_exposes_exactly_the_posted_buffers() {
    let (m, mut drv) = up(Knobs::default());
    // One buffer: one frame fits, the next finds none.
    post(&mut drv, bufs(&m, 1));
    assert_eq!(m.dev().rx.tail, 1);
    assert_eq!(m.receive(&to_us(&m, 1, 80)), RxOutcome::Delivered(vec![0]));
    assert_eq!(m.receive(&to_us(&m, 2, 80)), RxOutcome::NoDescriptor);
    assert_eq!(harvest(&mut drv).len(), 1);
    // A full ring holds RING_SIZE - 1 buffers; the rest stay with the caller.
    let mut left = Vec::new();
    for _ in 0..(RING_SIZE / BATCH_MAX + 1) {
        left.extend(post(&mut drv, bufs(&m, BATCH_MAX)));
    }
    assert_eq!(drv.outstanding().0, RING_SIZE - 1);
    assert_eq!(left.len(), (RING_SIZE / BATCH_MAX + 1) * BATCH_MAX - (RING_SIZE - 1));
    for i in 0..RING_SIZE - 1 {
        assert!(matches!(m.receive(&to_us(&m, i as u32, 60)), RxOutcome::Delivered(_)), "frame {i}");
    }
    assert_eq!(m.receive(&to_us(&m, 0, 60)), RxOutcome::NoDescriptor);
    assert_clean(&m);
}

#[test]
fn rings_wrap_many_times() {
    let (m, mut drv) = up(Knobs::default());
    let mut spare = bufs(&m, BATCH_MAX);
    let mut txbufs: Vec<RRef<Pkt>> = bufs(&m, BATCH_MAX);
    let mut tag = 0u32;
    let mut sent_tx = 0;
    for round in 0..50 {
        post(&mut drv, std::mem::take(&mut spare));
        let want: Vec<Vec<u8>> = (0..BATCH_MAX).map(|i| to_us(&m, tag + i as u32, 60 + (round * 37 + i * 11) % 1400)).collect();
        for f in &want {
            assert!(matches!(m.receive(f), RxOutcome::Delivered(_)));
        }
        let got = harvest(&mut drv);
        assert_eq!(got.len(), BATCH_MAX, "round {round}");
        for (p, f) in got.iter().zip(&want) {
            assert_eq!(p.frame(), &f[..], "round {round}");
        }
        tag += BATCH_MAX as u32;
        // Forward them: transmit what came in, reclaim last round's.
        let frames: Vec<Vec<u8>> = got.iter().map(|p| p.frame().to_vec()).collect();
        spare = got;
        for (p, f) in txbufs.iter_mut().zip(&frames) {
            p.set_frame(f);
        }
        let mut b = drv.tx(batch_of(std::mem::take(&mut txbufs)));
        assert!(b.pkts.is_empty(), "round {round}: ring full");
        sent_tx += BATCH_MAX;
        let mut b2 = drv.tx(Batch::new());
        txbufs = drain(&mut b.done);
        txbufs.extend(drain(&mut b2.done));
        assert_eq!(txbufs.len(), BATCH_MAX, "round {round}: completions");
        assert_eq!(m.sent()[sent_tx - BATCH_MAX..].to_vec(), frames, "round {round}: wire");
    }
    const { assert!(50 * BATCH_MAX > 4 * RING_SIZE) };
    assert_clean(&m);
}

#[test]
fn random_rounds_account_for_every_buffer() {
    let (m, mut drv) = up(Knobs { hold_tx: true, ..Knobs::default() });
    const TOTAL: usize = 600;
    let mut free = bufs(&m, TOTAL);
    let all: std::collections::BTreeSet<u64> = free.iter().map(data_addr).collect();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let (mut rx_in, mut rx_out, mut tx_in, mut tx_out) = (0u64, 0u64, 0u64, 0u64);
    for round in 0..2000 {
        match rnd(5) {
            0 => {
                let k = rnd(BATCH_MAX + 1).min(free.len());
                let mut b = drv.rx(batch_of(free.drain(..k)));
                rx_out += b.done.len() as u64;
                free.extend(drain(&mut b.done));
                free.extend(drain(&mut b.pkts));
            }
            1 => {
                for _ in 0..rnd(40) {
                    if matches!(m.receive(&to_us(&m, round, 60 + rnd(1400))), RxOutcome::Delivered(_)) {
                        rx_in += 1;
                    }
                }
            }
            2 => {
                let k = rnd(BATCH_MAX + 1).min(free.len());
                let mut pk: Vec<_> = free.drain(..k).collect();
                for p in &mut pk {
                    let f = frame(BCAST, round, 60 + rnd(1400));
                    p.set_frame(&f);
                }
                let mut b = drv.tx(batch_of(pk));
                tx_in += (k - b.pkts.len()) as u64;
                tx_out += b.done.len() as u64;
                free.extend(drain(&mut b.done));
                free.extend(drain(&mut b.pkts));
            }
            3 => m.complete_tx(),
            _ => {
                let mut b = drv.tx(Batch::new());
                tx_out += b.done.len() as u64;
                free.extend(drain(&mut b.done));
            }
        }
        let (orx, otx) = drv.outstanding();
        assert_eq!(free.len() + orx + otx, TOTAL, "round {round}: a buffer was lost or duplicated");
    }
    let set: std::collections::BTreeSet<u64> = free.iter().map(data_addr).collect();
    assert_eq!(set.len(), free.len(), "a buffer came back twice");
    assert!(set.is_subset(&all));
    assert!(rx_in > 1000 && rx_out > 0 && tx_in > 1000 && tx_out > 0, "{rx_in} {rx_out} {tx_in} {tx_out}");
    assert_clean(&m);
}

#[test]
fn frames_without_a_descriptor_are_counted_as_missed() {
    let (m, mut drv) = up(Knobs::default());
    for i in 0..5 {
        assert_eq!(m.receive(&to_us(&m, i, 100)), RxOutcome::NoDescriptor);
    }
    assert_eq!(m.dev().qprdc, 5, "DROP_EN: counted per queue");
    assert_eq!(drv.device_stats().missed, 5);
    assert_eq!(drv.device_stats().missed, 5, "clear-on-read: the total does not grow by itself");
    post(&mut drv, bufs(&m, 2));
    m.receive(&to_us(&m, 7, 100));
    assert_eq!(drv.device_stats(), DeviceStats { good_rx: 1, good_tx: 0, missed: 5 });
    assert_clean(&m);
}

#[test]
fn broadcast_is_accepted_and_foreign_unicast_filtered() {
    let (m, mut drv) = up(Knobs::default());
    post(&mut drv, bufs(&m, 4));
    assert!(matches!(m.receive(&frame(BCAST, 1, 60)), RxOutcome::Delivered(_)));
    assert_eq!(m.receive(&frame([0x02, 9, 9, 9, 9, 9], 2, 60)), RxOutcome::Filtered);
    assert_eq!(m.receive(&frame([0x01, 0, 0x5e, 0, 0, 1], 3, 60)), RxOutcome::Filtered, "multicast not accepted");
    assert!(matches!(m.receive(&to_us(&m, 4, 60)), RxOutcome::Delivered(_)));
    assert_eq!(harvest(&mut drv).len(), 2);
}

#[test]
fn link_loss_holds_traffic_until_the_link_returns() {
    let (m, mut drv) = up(Knobs::default());
    post(&mut drv, bufs(&m, 4));
    m.set_link(false);
    assert!(!drv.link_up());
    assert_eq!(m.receive(&to_us(&m, 1, 60)), RxOutcome::LinkDown);
    let pk: Vec<_> = (0..3).map(|i| tx_pkt(&m, &frame(BCAST, i, 70))).collect();
    drv.tx(batch_of(pk));
    let b = drv.tx(Batch::new());
    assert!(b.done.is_empty(), "nothing completes without a link");
    assert_eq!(drv.outstanding().1, 3);
    assert!(m.sent().is_empty());
    m.set_link(true);
    assert!(drv.link_up());
    let mut b = drv.tx(Batch::new());
    assert_eq!(drain(&mut b.done).len(), 3);
    assert_eq!(m.sent().len(), 3);
    assert!(matches!(m.receive(&to_us(&m, 2, 60)), RxOutcome::Delivered(_)));
    assert_eq!(harvest(&mut drv).len(), 1);
    assert_clean(&m);
}

#[test]
fn bad_lengths_and_missing_eop_are_dropped_and_the_buffers_reused() {
    let (m, mut drv) = up(Knobs::default());
    post(&mut drv, bufs(&m, 8));
    // A length past the buffer, a zero length.
    m.inject_writeback(3000, bit::RX_DD | bit::RX_EOP).unwrap();
    m.inject_writeback(PKT_DATA as u16 + 1, bit::RX_DD | bit::RX_EOP).unwrap();
    m.inject_writeback(0, bit::RX_DD | bit::RX_EOP).unwrap();
    // One frame over three descriptors, EOP on the last.
    m.inject_writeback(100, bit::RX_DD).unwrap();
    m.inject_writeback(100, bit::RX_DD).unwrap();
    assert!(harvest(&mut drv).is_empty());
    m.inject_writeback(100, bit::RX_DD | bit::RX_EOP).unwrap();
    let good = to_us(&m, 5, 200);
    assert!(matches!(m.receive(&good), RxOutcome::Delivered(_)));
    let got = harvest(&mut drv);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].frame(), &good[..]);
    assert_eq!(drv.stats().dropped, 4, "three bad lengths and one frame without EOP");
    assert_eq!(drv.outstanding().0, 7, "dropped frames' buffers went straight back");
    assert_clean(&m);
}

#[test]
fn device_writes_outside_the_outstanding_window_are_ignored() {
    let (m, mut drv) = up(Knobs::default());
    post(&mut drv, bufs(&m, 4));
    // DD on descriptors the device was never given, and heads past the ring.
    for i in [4, 100, RING_SIZE as u32 - 1] {
        m.writeback_at(false, i, 60);
        m.writeback_at(true, i, 0);
    }
    m.set_head(false, 9999);
    m.set_head(true, 5000);
    assert!(harvest(&mut drv).is_empty());
    let mut b = drv.tx(Batch::new());
    assert!(b.done.is_empty());
    assert_eq!(drain(&mut b.pkts).len(), 0);
    assert_eq!(m.receive(&to_us(&m, 1, 60)), RxOutcome::NoDescriptor, "a head past the ring moves nothing");
    // Back to sane heads: traffic flows again, every buffer accounted for.
    m.set_head(false, 0);
    m.set_head(true, 0);
    for i in 0..4 {
        assert!(matches!(m.receive(&to_us(&m, i, 60)), RxOutcome::Delivered(_)));
    }
    assert_eq!(harvest(&mut drv).len(), 4);
    assert_eq!(drv.outstanding(), (0, 0));
}

#[test]
fn interrupts_only_when_unmasked() {
    let (m, mut drv) = up(Knobs::default());
    post(&mut drv, bufs(&m, 8));
    m.receive(&to_us(&m, 1, 60));
    assert_eq!(m.irqs(), 0, "masked after init");
    assert!(drv.has_work());
    harvest(&mut drv);
    assert!(!drv.has_work());
    drv.set_interrupts(true);
    assert_eq!(m.irqs(), 0, "the stale cause was cleared before unmasking");
    m.receive(&to_us(&m, 2, 60));
    assert_eq!(m.irqs(), 1);
    assert!(drv.has_work());
    m.receive(&to_us(&m, 3, 60));
    assert_eq!(m.irqs(), 2, "EIAC cleared the cause, so the next frame interrupts again");
    drv.set_interrupts(false);
    m.receive(&to_us(&m, 4, 60));
    assert_eq!(m.irqs(), 2);
    assert_eq!(harvest(&mut drv).len(), 3);
    assert_clean(&m);
}

#[test]
fn dropping_the_driver_resets_the_device_first() {
    let (m, mut drv) = up(Knobs::default());
    post(&mut drv, bufs(&m, 8));
    let resets = m.dev().resets;
    drop(drv);
    assert_eq!(m.dev().resets, resets + 1);
    let (rx_on, tx_on) = { let d = m.dev(); (d.rx.enabled, d.tx.enabled) };
    assert!(!rx_on && !tx_on);
    assert!(matches!(m.receive(&frame(BCAST, 1, 60)), RxOutcome::LinkDown | RxOutcome::RxDisabled));
    assert_clean(&m);
}
