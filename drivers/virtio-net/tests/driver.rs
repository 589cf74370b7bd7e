//! The driver against the device model (`model/`): negotiation, queue setup, batched
//! transmit and receive, zero copy, robustness against bad device output, interrupt and
//! notification suppression, statistics, and buffer accounting.

mod model;

use frond_interface::net::{Batch, Pkt, BATCH_MAX, FRAME_MAX, HEADROOM};
use frond_interface::{DomainId, RRef};
use frond_virtio_net::{Error, VirtioNet};
use model::*;
use rref::host::HostHeap;

/// Installs the host heap and makes a fresh domain current on this thread.
fn domain() -> (&'static HostHeap, DomainId) {
    let h = HostHeap::install();
    let d = h.fresh_domain();
    h.set_current(d);
    (h, d)
}

fn up(knobs: Knobs) -> (Model, VirtioNet<Model>) {
    let m = Model::new(knobs);
    let drv = VirtioNet::new(m.clone(), true).expect("driver init");
    (m, drv)
}

/// A frame of `len` bytes whose content identifies `tag`.
fn frame(tag: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (tag as usize * 31 + i * 7) as u8).collect()
}

fn pkt(bytes: &[u8]) -> RRef<Pkt> {
    let mut p = RRef::new(Pkt::empty());
    p.set_frame(bytes);
    // Garbage in the header room: the driver must clear it before transmitting.
    p.head = [0xee; HEADROOM];
    p
}

fn addr(p: &RRef<Pkt>) -> usize {
    let r: &Pkt = p;
    r as *const Pkt as usize
}

fn drain(q: &mut frond_interface::net::PktQueue) -> Vec<RRef<Pkt>> {
    std::iter::from_fn(|| q.pop_front()).collect()
}

fn batch_of(pkts: impl IntoIterator<Item = RRef<Pkt>>) -> Batch {
    let mut b = Batch::new();
    for p in pkts {
        assert!(b.pkts.push_back(p).is_ok(), "batch overflow in test");
    }
    b
}

fn empties(n: usize) -> Vec<RRef<Pkt>> {
    (0..n).map(|_| RRef::new(Pkt::empty())).collect()
}

#[test]
fn init_negotiates_version1_mac_and_event_idx_only() {
    domain();
    let (m, drv) = up(Knobs::default());
    let d = m.dev();
    assert_eq!(d.status, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    // Offered: CSUM, MRG_RXBUF, STATUS too; accepted: VERSION_1, MAC and EVENT_IDX only.
    assert_eq!(d.driver_features, F_VERSION_1 | F_NET_MAC | F_RING_EVENT_IDX);
    assert_eq!(drv.features(), F_VERSION_1 | F_NET_MAC | F_RING_EVENT_IDX);
    assert_eq!(drv.mac(), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    assert_eq!(drv.queue_size(), 256);
    for q in &d.queues {
        assert!(q.enabled);
        assert_eq!(q.size, 256);
        assert_eq!(q.msix, 0, "queues routed to MSI-X vector 0");
        assert_eq!(q.desc % 4096, 0);
        assert_eq!(q.driver % 4096, 0);
        assert_eq!(q.device % 4096, 0);
    }
    assert_eq!(d.config_msix, 0xffff, "no configuration-change vector");
    assert!(d.violations.is_empty(), "{:?}", d.violations);
}

#[test]
fn init_without_mac_feature_or_msix() {
    domain();
    let m = Model::new(Knobs { features: F_VERSION_1, msix_vectors: 0, ..Knobs::default() });
    let drv = VirtioNet::new(m.clone(), false).expect("init");
    assert_eq!(m.dev().driver_features, F_VERSION_1);
    assert_eq!(drv.mac(), [0; 6], "no MAC read when VIRTIO_NET_F_MAC is not negotiated");
    assert_eq!(m.queue(0).msix, 0xffff);
    assert_eq!(m.queue(1).msix, 0xffff);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}

#[test]
fn queue_size_is_min_of_device_max_and_256_as_power_of_two() {
    domain();
    for (max, want) in [(1024, 256), (256, 256), (64, 64), (100, 64), (1, 1)] {
        let (m, drv) = up(Knobs { max_queue_size: max, ..Knobs::default() });
        assert_eq!(drv.queue_size(), want, "device max {max}");
        assert_eq!(m.queue(0).size, want);
        assert_eq!(m.queue(1).size, want);
        assert!(m.violations().is_empty(), "{:?}", m.violations());
    }
}

#[test]
fn refuses_device_without_version_1() {
    domain();
    let m = Model::new(Knobs { features: F_NET_MAC | F_NET_CSUM, ..Knobs::default() });
    let e = VirtioNet::new(m.clone(), true).err().expect("must refuse");
    assert_eq!(e, Error::NoVersion1 { offered: F_NET_MAC | F_NET_CSUM });
    assert!(e.to_string().contains("VIRTIO_F_VERSION_1"), "{e}");
    assert_ne!(m.status() & S_FAILED, 0, "FAILED set");
    assert_eq!(m.status() & (S_FEATURES_OK | S_DRIVER_OK), 0);
}

#[test]
fn refuses_device_that_clears_features_ok() {
    domain();
    let m = Model::new(Knobs { reject_features: true, ..Knobs::default() });
    let e = VirtioNet::new(m.clone(), true).err().expect("must refuse");
    assert_eq!(e, Error::FeaturesRejected { accepted: F_VERSION_1 | F_NET_MAC | F_RING_EVENT_IDX });
    assert_ne!(m.status() & S_FAILED, 0, "FAILED set");
    assert_eq!(m.status() & S_DRIVER_OK, 0);
    assert!(m.queues_untouched(), "no queue set up after FEATURES_OK was refused");
}

#[test]
fn refuses_when_device_keeps_no_msix_vector() {
    domain();
    let m = Model::new(Knobs { msix_vectors: 0, ..Knobs::default() });
    let e = VirtioNet::new(m.clone(), true).err().expect("must refuse");
    assert_eq!(e, Error::MsixRefused { queue: Some(0), wrote: 0, read: 0xffff });
    assert!(e.to_string().contains("MSI-X"), "{e}");
    assert_ne!(m.status() & S_FAILED, 0);
    assert_eq!(m.status() & S_DRIVER_OK, 0);
}

#[test]
fn reset_is_awaited_and_times_out_cleanly() {
    domain();
    let (m, _drv) = up(Knobs { reset_delay: 5, ..Knobs::default() });
    assert!(m.dev().status_reads >= 6, "polled status until the reset completed");
    assert_eq!(m.status() & S_DRIVER_OK, S_DRIVER_OK);

    let m = Model::new(Knobs { reset_delay: u32::MAX, ..Knobs::default() });
    assert_eq!(VirtioNet::new(m.clone(), true).err(), Some(Error::ResetTimeout));
}

#[test]
fn tx_batch_of_32_one_notify_zeroed_headers() {
    let (h, d) = domain();
    let (m, mut drv) = up(Knobs::default());
    let frames: Vec<Vec<u8>> = (0..32).map(|i| frame(i, 60 + i as usize * 40)).collect();
    let b = drv.tx(batch_of(frames.iter().map(|f| pkt(f))));
    assert!(b.pkts.is_empty(), "all 32 taken");
    assert!(b.done.is_empty(), "nothing completed before the notify");
    assert_eq!(m.notifies(), [0, 1], "one notification for the whole batch");
    assert_eq!(m.sent(), frames, "device saw every frame, in order");
    assert_eq!(drv.outstanding(), (0, 32));

    let mut b = drv.tx(b);
    assert_eq!(b.done.len(), 32, "completions come back on the next call");
    let back = drain(&mut b.done);
    for (p, f) in back.iter().zip(&frames) {
        assert_eq!(p.frame(), &f[..], "completed buffers in order, frame intact");
    }
    assert_eq!(m.notifies(), [0, 1], "nothing posted: no notification");
    let s = drv.stats();
    assert_eq!(s.tx_packets, 32);
    assert_eq!(s.tx_bytes, frames.iter().map(|f| f.len() as u64).sum::<u64>());
    assert_eq!(s.dropped, 0);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
    drop((back, b));
    assert_eq!(h.counters().blocks(d), 0, "every buffer accounted for");
}

#[test]
fn tx_more_than_queue_size_leaves_rest_in_order() {
    domain();
    let (m, mut drv) = up(Knobs { max_queue_size: 16, hold_tx: true, ..Knobs::default() });
    let frames: Vec<Vec<u8>> = (0..32).map(|i| frame(i, 100)).collect();
    let b = drv.tx(batch_of(frames.iter().map(|f| pkt(f))));
    assert_eq!(b.pkts.len(), 16, "only the queue size was taken");
    for (p, f) in b.pkts.iter().zip(&frames[16..]) {
        assert_eq!(p.frame(), &f[..], "untaken frames stay in order");
    }
    // Queue full, device holding everything: nothing moves.
    let b = drv.tx(b);
    assert_eq!((b.pkts.len(), b.done.len()), (16, 0));
    assert_eq!(m.complete_tx(), 16);
    let mut b = drv.tx(b);
    assert_eq!(b.done.len(), 16, "first half completed");
    assert!(b.pkts.is_empty(), "second half posted into the freed descriptors");
    drain(&mut b.done);
    assert_eq!(m.complete_tx(), 16);
    let b = drv.tx(b);
    assert_eq!(b.done.len(), 16);
    assert_eq!(m.sent(), frames, "all 32 on the wire, in order");
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}

#[test]
fn tx_queue_256_over_several_batches() {
    domain();
    let (m, mut drv) = up(Knobs { hold_tx: true, ..Knobs::default() });
    let mut held = Vec::new();
    for round in 0..9u32 {
        let b = drv.tx(batch_of((0..32).map(|i| pkt(&frame(round * 32 + i, 64)))));
        held.push(b.pkts.len());
        // Keep any leftovers out of later rounds.
        drop(b);
    }
    // 8 batches fill the 256 descriptors exactly; the ninth finds no room.
    assert_eq!(held, [0, 0, 0, 0, 0, 0, 0, 0, 32]);
    assert_eq!(drv.outstanding().1, 256);
    assert_eq!(m.complete_tx(), 256);
    let mut total = 0;
    loop {
        let mut b = drv.tx(Batch::new());
        if b.done.is_empty() {
            break;
        }
        total += drain(&mut b.done).len();
    }
    assert_eq!(total, 256, "completions returned at most 32 per call until all came back");
    assert_eq!(m.sent().len(), 256);
}

#[test]
fn oversized_tx_frame_dropped_and_returned() {
    domain();
    let (m, mut drv) = up(Knobs::default());
    let ok1 = frame(1, 100);
    let max = frame(2, FRAME_MAX);
    let big = frame(3, FRAME_MAX + 1);
    let ok2 = frame(4, 200);
    let big_pkt = pkt(&big);
    let big_addr = addr(&big_pkt);
    let mut b = drv.tx(batch_of([pkt(&ok1), pkt(&max), big_pkt, pkt(&ok2)]));
    assert!(b.pkts.is_empty());
    assert_eq!(b.done.len(), 1, "the oversized frame comes back at once");
    let dropped = b.done.pop_front().unwrap();
    assert_eq!(addr(&dropped), big_addr);
    assert_eq!(dropped.len as usize, FRAME_MAX + 1, "returned untouched");
    assert_eq!(m.sent(), vec![ok1, max, ok2], "a FRAME_MAX frame is sent, the longer one is not");
    let b = drv.tx(b);
    assert_eq!(b.done.len(), 3);
    let s = drv.stats();
    assert_eq!((s.tx_packets, s.dropped), (3, 1));
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}

#[test]
fn oversized_frame_waits_when_done_is_full() {
    domain();
    let (_m, mut drv) = up(Knobs::default());
    let mut b = batch_of([pkt(&frame(0, FRAME_MAX + 10)), pkt(&frame(1, 60))]);
    for p in empties(BATCH_MAX) {
        assert!(b.done.push_back(p).is_ok());
    }
    let b = drv.tx(b);
    assert_eq!(b.pkts.len(), 2, "no room to return the oversized frame: nothing behind it moves");
    assert_eq!(b.pkts.iter().next().unwrap().len as usize, FRAME_MAX + 10);
    assert_eq!(drv.stats().dropped, 0);
}

#[test]
fn rx_in_arrival_order_with_right_lengths() {
    domain();
    let (m, mut drv) = up(Knobs::default());
    let b = drv.rx(batch_of(empties(32)));
    assert!(b.pkts.is_empty() && b.done.is_empty());
    assert_eq!(m.rx_posted(), 32);
    assert_eq!(m.notifies(), [1, 0], "one notification for the posted buffers");
    let frames: Vec<Vec<u8>> =
        [60, FRAME_MAX, 14, 1000, 333].iter().enumerate().map(|(i, &n)| frame(i as u32, n)).collect();
    for f in &frames {
        assert!(m.inject(f).is_some());
    }
    let mut b = drv.rx(b);
    let got = drain(&mut b.done);
    assert_eq!(got.len(), frames.len());
    for (p, f) in got.iter().zip(&frames) {
        assert_eq!(p.len as usize, f.len());
        assert_eq!(p.frame(), &f[..]);
    }
    let s = drv.stats();
    assert_eq!(s.rx_packets, 5);
    assert_eq!(s.rx_bytes, frames.iter().map(|f| f.len() as u64).sum::<u64>());
    assert_eq!(s.dropped, 0);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}

#[test]
fn rx_buffers_are_the_callers_memory() {
    domain();
    let (m, mut drv) = up(Knobs::default());
    let bufs = empties(8);
    let addrs: Vec<usize> = bufs.iter().map(addr).collect();
    let b = drv.rx(batch_of(bufs));
    let mut device_addrs = Vec::new();
    for i in 0..8 {
        let (_, a) = m.inject(&frame(i, 64)).unwrap();
        device_addrs.push(a as usize);
    }
    // The device wrote at the header room of the caller's buffers...
    let head = core::mem::offset_of!(Pkt, head);
    assert_eq!(device_addrs, addrs.iter().map(|a| a + head).collect::<Vec<_>>());
    // ...and the same buffers come back, in order, holding the frames.
    let mut b = drv.rx(b);
    let got = drain(&mut b.done);
    assert_eq!(got.iter().map(addr).collect::<Vec<_>>(), addrs, "zero copy: same memory back");
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.frame(), &frame(i as u32, 64)[..]);
        assert_eq!(p.head[10], 1, "the device's header is left in the header room");
    }
}

#[test]
fn rx_respects_room_in_done() {
    domain();
    let (m, mut drv) = up(Knobs::default());
    let mut b = drv.rx(batch_of(empties(10)));
    for i in 0..5 {
        m.inject(&frame(i, 80 + i as usize)).unwrap();
    }
    for p in empties(BATCH_MAX - 2) {
        assert!(b.done.push_back(p).is_ok());
    }
    let mut b = drv.rx(b);
    assert!(b.done.is_full());
    let got: Vec<_> = drain(&mut b.done).split_off(BATCH_MAX - 2);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].frame(), &frame(0, 80)[..]);
    assert_eq!(got[1].frame(), &frame(1, 81)[..]);
    let mut b = drv.rx(b);
    let rest = drain(&mut b.done);
    assert_eq!(rest.len(), 3, "the others wait in the used ring");
    for (k, p) in rest.iter().enumerate() {
        let i = k as u32 + 2;
        assert_eq!(p.frame(), &frame(i, 80 + i as usize)[..]);
    }
}

#[test]
fn rx_bad_used_length_dropped_and_buffer_reposted() {
    domain();
    let (m, mut drv) = up(Knobs { max_queue_size: 4, ..Knobs::default() });
    let b = drv.rx(batch_of(empties(4)));
    assert_eq!(m.rx_posted(), 4);
    m.inject_bad_len(5).unwrap(); // shorter than the header
    m.inject_bad_len((HEADROOM + FRAME_MAX + 1) as u32).unwrap(); // longer than a frame
    m.inject_bad_len(u32::MAX).unwrap();
    m.inject(&frame(7, 90)).unwrap();
    let mut b = drv.rx(b);
    let got = drain(&mut b.done);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].frame(), &frame(7, 90)[..]);
    assert_eq!(drv.stats().dropped, 3);
    assert_eq!(drv.stats().rx_packets, 1);
    // The three buffers went straight back to the device: it can fill them.
    assert_eq!(m.rx_posted(), 3);
    assert_eq!(drv.outstanding().0, 3);
    for i in 0..3 {
        m.inject(&frame(10 + i, 70)).unwrap();
    }
    let mut b = drv.rx(b);
    assert_eq!(drain(&mut b.done).len(), 3);
    assert_eq!(drv.outstanding().0, 0);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}

#[test]
fn bad_used_ids_dropped_without_double_return() {
    let (h, d) = domain();
    let (m, mut drv) = up(Knobs { max_queue_size: 8, ..Knobs::default() });
    let b = drv.rx(batch_of(empties(4)));
    let (id0, _) = m.inject(&frame(0, 60)).unwrap();
    let mut b = drv.rx(b);
    let first = drain(&mut b.done);
    assert_eq!(first.len(), 1);
    // A used entry for the descriptor just returned (not outstanding any more), one past
    // the ring, and a wild one.
    m.inject_used(0, id0 as u32, 60);
    m.inject_used(0, 8, 60);
    m.inject_used(0, u32::MAX, 60);
    m.inject(&frame(1, 61)).unwrap();
    let mut b = drv.rx(b);
    let got = drain(&mut b.done);
    assert_eq!(got.len(), 1, "only the real frame");
    assert_eq!(got[0].frame(), &frame(1, 61)[..]);
    assert_eq!(drv.stats().dropped, 3);
    assert_eq!(drv.outstanding().0, 2);
    // The first bad id is reported once: the domain fails on it (a reset is the only way
    // to get back a buffer a wrong id stands for).
    assert_eq!(drv.take_device_fault(), Some(frond_virtio_net::UsedFault { queue: 0, id: id0 as u32 }));
    assert_eq!(drv.take_device_fault(), None);

    // The same on the transmit queue.
    let b2 = drv.tx(batch_of([pkt(&frame(9, 60))]));
    m.inject_used(1, 5, 0);
    m.inject_used(1, 1000, 0);
    let mut b2 = drv.tx(b2);
    assert_eq!(drain(&mut b2.done).len(), 1, "the real completion only");
    assert_eq!(drv.stats().dropped, 5);
    assert_eq!(drv.take_device_fault(), Some(frond_virtio_net::UsedFault { queue: 1, id: 5 }));

    // Nothing was freed twice or lost: the domain owns exactly the buffers the test
    // holds plus the ones still posted, and all come back when the driver goes.
    drop(drv);
    drop((b, b2));
    assert_eq!(m.status(), 0, "dropping the driver resets the device");
    assert_eq!(h.counters().blocks(d), (first.len() + got.len()) as u64);
}

#[test]
fn interrupt_suppression_and_has_work() {
    domain();
    let (m, mut drv) = up(Knobs::default());
    let b = drv.rx(batch_of(empties(8)));
    // Interrupts start suppressed.
    m.inject(&frame(0, 60)).unwrap();
    assert_eq!(m.irqs(), 0, "suppressed at start");
    assert!(drv.has_work());
    let b = drv.rx(b);
    assert!(!drv.has_work());

    drv.set_interrupts(true);
    assert!(!drv.has_work());
    m.inject(&frame(1, 60)).unwrap();
    assert_eq!(m.irqs(), 1, "raised once allowed");
    assert!(drv.has_work());
    assert_eq!(drv.isr_status() & 1, 1, "ISR says queue interrupt");
    assert_eq!(drv.isr_status(), 0, "reading the ISR acknowledged it");
    let b = drv.rx(b);

    drv.set_interrupts(false);
    m.inject(&frame(2, 60)).unwrap();
    assert_eq!(m.irqs(), 1, "suppressed again");

    // Transmit completions are work too, and interrupt when allowed.
    let b = drv.rx(b);
    assert!(!drv.has_work());
    drv.set_interrupts(true);
    let t = drv.tx(batch_of([pkt(&frame(3, 60))]));
    assert_eq!(m.irqs(), 2);
    assert!(drv.has_work());
    let t = drv.tx(t);
    assert!(!drv.has_work());
    assert_eq!(t.done.len(), 1);
    drop(b);
}

#[test]
fn coalesced_receive_interrupts_come_after_the_asked_number_of_frames() {
    domain();
    let (m, mut drv) = up(Knobs::default());
    let mut b = drv.rx(batch_of(empties(32)));
    let mut tag = 0u32;
    for round in 0..3u64 {
        // Ask for 8 frames: used_event is 7 entries past the next one.
        assert!(!drv.set_interrupts_rx(8), "nothing waits yet");
        let ue = m.dev().used_event(0);
        let ui = m.queue(0).used_idx;
        assert_eq!(ue, ui.wrapping_add(7));
        for i in 0..7 {
            m.inject(&frame(tag, 60)).unwrap();
            tag += 1;
            assert_eq!(m.irqs(), round, "no interrupt after {} frames", i + 1);
        }
        // Transmit completions do not interrupt a receive wait.
        let t = drv.tx(batch_of([pkt(&frame(999, 60))]));
        assert_eq!(m.irqs(), round);
        m.inject(&frame(tag, 60)).unwrap();
        tag += 1;
        assert_eq!(m.irqs(), round + 1, "one interrupt for 8 frames");
        drv.set_interrupts(false);
        b = drv.rx(b);
        let got = drain(&mut b.done);
        assert_eq!(got.len(), 8);
        for p in got {
            assert!(b.pkts.push_back(p).is_ok());
        }
        b = drv.rx(b);
        drop(drv.tx(t));
    }
    // Frames already waiting: no sleep, interrupts stay suppressed.
    for _ in 0..3 {
        m.inject(&frame(tag, 60)).unwrap();
        tag += 1;
    }
    assert!(drv.set_interrupts_rx(2), "two of three already there");
    m.inject(&frame(tag, 60)).unwrap();
    assert_eq!(m.irqs(), 3, "suppressed again");
    // More than the device holds buffers for: the wait asks for what it can get.
    b = drv.rx(b);
    drop(drain(&mut b.done));
    let held = drv.outstanding().0 as u16;
    assert!(!drv.set_interrupts_rx(held + 100));
    let ue = m.dev().used_event(0);
    let ui = m.queue(0).used_idx;
    assert_eq!(ue, ui.wrapping_add(held - 1));
    drv.set_interrupts(false);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
    drop(b);
}

#[test]
fn no_notify_when_device_says_so() {
    domain();
    let (m, mut drv) = up(Knobs::default());
    m.set_no_notify(true);
    let b = drv.tx(batch_of([pkt(&frame(0, 60)), pkt(&frame(1, 60))]));
    let r = drv.rx(batch_of(empties(4)));
    assert_eq!(m.notifies(), [0, 0], "device asked not to be notified");
    assert_eq!(m.complete_tx(), 2, "the device found the frames by itself");
    m.set_no_notify(false);
    let b = drv.tx(b);
    assert_eq!(b.done.len(), 2);
    assert_eq!(m.notifies(), [0, 0], "nothing posted: no notification");
    let _b = drv.tx(Batch::new());
    let _b = drv.tx(batch_of([pkt(&frame(2, 60))]));
    assert_eq!(m.notifies(), [0, 1]);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
    drop(r);
}

#[test]
fn stats_count_everything() {
    domain();
    let (m, mut drv) = up(Knobs::default());
    let r = drv.rx(batch_of(empties(4)));
    m.inject(&frame(0, 100)).unwrap();
    m.inject(&frame(1, 200)).unwrap();
    m.inject_bad_len(3).unwrap();
    let r = drv.rx(r);
    let t = drv.tx(batch_of([pkt(&frame(2, 300)), pkt(&frame(3, FRAME_MAX + 1))]));
    let t = drv.tx(t);
    drv.count_irq();
    drv.count_irq();
    let s = drv.stats();
    assert_eq!(s.rx_packets, 2);
    assert_eq!(s.rx_bytes, 300);
    assert_eq!(s.tx_packets, 1);
    assert_eq!(s.tx_bytes, 300);
    assert_eq!(s.dropped, 2);
    assert_eq!(s.irqs, 2);
    drop((r, t));
}

/// A small deterministic generator for the soak test.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn buffer_accounting_over_many_rounds() {
    let (h, d) = domain();
    let (m, mut drv) = up(Knobs { max_queue_size: 64, hold_tx: true, ..Knobs::default() });
    const N: usize = 96;
    let mut pool = empties(N);
    let all: std::collections::BTreeSet<usize> = pool.iter().map(addr).collect();
    let mut rng = Lcg(7);
    let mut injected = Vec::new();
    let mut received = Vec::new();
    let mut to_send = Vec::new();
    let mut sent_tags = 0u32;
    for _ in 0..2000 {
        match rng.next(4) {
            0 => {
                // Post some receive buffers.
                let k = rng.next(BATCH_MAX as u64 + 1) as usize;
                let mut b = Batch::new();
                for p in pool.drain(..k.min(pool.len())) {
                    assert!(b.pkts.push_back(p).is_ok());
                }
                let mut b = drv.rx(b);
                pool.extend(drain(&mut b.pkts));
                for p in drain(&mut b.done) {
                    received.push(p.frame().to_vec());
                    pool.push(p);
                }
            }
            1 => {
                // Frames arrive (some with bad lengths, some bad ids).
                for _ in 0..rng.next(8) {
                    match rng.next(10) {
                        0 => {
                            m.inject_bad_len(2);
                        }
                        1 => m.inject_used(0, 100 + rng.next(100) as u32, 64),
                        _ => {
                            let f = frame(injected.len() as u32, 14 + rng.next(FRAME_MAX as u64 - 13) as usize);
                            if m.inject(&f).is_some() {
                                injected.push(f);
                            }
                        }
                    }
                }
            }
            2 => {
                // Send some frames.
                let k = rng.next(BATCH_MAX as u64 + 1) as usize;
                let mut b = Batch::new();
                for mut p in pool.drain(..k.min(pool.len())) {
                    let f = frame(1_000_000 + sent_tags, 60 + rng.next(1455) as usize);
                    sent_tags += 1;
                    p.set_frame(&f);
                    to_send.push(f);
                    assert!(b.pkts.push_back(p).is_ok());
                }
                let mut b = drv.tx(b);
                let left = drain(&mut b.pkts);
                to_send.truncate(to_send.len() - left.len());
                sent_tags -= left.len() as u32;
                pool.extend(left);
                pool.extend(drain(&mut b.done));
            }
            _ => {
                m.complete_tx();
            }
        }
        let (rx_out, tx_out) = drv.outstanding();
        assert_eq!(pool.len() + rx_out + tx_out, N, "a buffer went missing or was duplicated");
    }
    // Drain: publish receive buffers held back for a batched refill, complete
    // transmissions, fill every posted receive buffer, collect all.
    drv.flush_rx();
    m.complete_tx();
    while m.rx_posted() > 0 {
        let f = frame(injected.len() as u32, 64);
        m.inject(&f).unwrap();
        injected.push(f);
    }
    for _ in 0..N {
        let mut b = drv.rx(Batch::new());
        for p in drain(&mut b.done) {
            received.push(p.frame().to_vec());
            pool.push(p);
        }
        let mut b = drv.tx(b);
        pool.extend(drain(&mut b.done));
    }
    assert_eq!(drv.outstanding(), (0, 0));
    assert!(
        received.len() > 300 && to_send.len() > 300,
        "the soak moved real traffic: {} in, {} out",
        received.len(),
        to_send.len()
    );
    assert!(drv.stats().dropped > 20, "and met bad entries: {}", drv.stats().dropped);
    assert_eq!(pool.len(), N);
    let back: std::collections::BTreeSet<usize> = pool.iter().map(addr).collect();
    assert_eq!(back, all, "the same buffers came back, each once");
    assert_eq!(received, injected, "every injected frame received once, in order");
    assert_eq!(m.sent(), to_send, "every frame taken was sent once, in order");
    assert!(m.violations().is_empty(), "{:?}", &m.violations()[..m.violations().len().min(5)]);
    drop(drv);
    assert_eq!(h.counters().blocks(d), N as u64, "only the pool's buffers remain on the shared heap");
}

#[test]
fn rx_refills_are_published_in_batches_once_the_ring_is_well_stocked() {
    use frond_virtio_net::RX_REFILL_BATCH;
    domain();
    let (m, mut drv) = up(Knobs::default());
    // A nearly empty ring is refilled at once, buffer by buffer.
    let _ = drv.rx(batch_of(empties(1)));
    assert_eq!(m.rx_posted(), 1, "published at once while the device holds few");
    for _ in 0..5 {
        let _ = drv.rx(batch_of(empties(32)));
    }
    assert_eq!(m.rx_posted(), 161);
    // Well stocked: fewer than RX_REFILL_BATCH new buffers wait...
    let _ = drv.rx(batch_of(empties(RX_REFILL_BATCH - 1)));
    assert_eq!(m.rx_posted(), 161, "held back");
    // ...until the batch is complete...
    let _ = drv.rx(batch_of(empties(1)));
    assert_eq!(m.rx_posted() as usize, 161 + RX_REFILL_BATCH);
    let _ = drv.rx(batch_of(empties(3)));
    assert_eq!(m.rx_posted() as usize, 161 + RX_REFILL_BATCH);
    // ...or a wait allows interrupts.
    drv.set_interrupts(true);
    assert_eq!(m.rx_posted() as usize, 164 + RX_REFILL_BATCH, "allowing interrupts publishes what was held back");
    drv.set_interrupts(false);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}

/// Moves `n` frames through the receive queue in batches of 32, recycling the buffers;
/// returns the batch (its `pkts` hold the buffers for the next round).
fn rx_rounds(m: &Model, drv: &mut VirtioNet<Model>, mut b: Batch, n: usize, tag: &mut u32) -> Batch {
    let mut moved = 0;
    while moved < n {
        let k = (n - moved).min(32);
        for _ in 0..k {
            m.inject(&frame(*tag, 60)).expect("a posted buffer");
            *tag += 1;
        }
        b = drv.rx(b);
        let got = drain(&mut b.done);
        assert_eq!(got.len(), k);
        moved += k;
        for p in got {
            assert!(b.pkts.push_back(p).is_ok());
        }
        b = drv.rx(b);
    }
    b
}

#[test]
fn event_idx_interrupts_follow_used_event_across_the_index_wrap() {
    domain();
    let (m, mut drv) = up(Knobs::default());
    assert_ne!(drv.features() & F_RING_EVENT_IDX, 0);
    // 224 buffers posted (published: batches of 32).
    let mut b = Batch::new();
    for _ in 0..7 {
        b = drv.rx(batch_of(empties(32)));
        assert!(b.pkts.is_empty());
    }
    assert_eq!(m.rx_posted(), 224);
    let mut tag = 0u32;
    // Suppressed: not one interrupt over more than 65536 used entries (the used index
    // and the driver's used_event both wrap).
    b = rx_rounds(&m, &mut drv, b, 70_000, &mut tag);
    assert_eq!(m.irqs(), 0, "suppressed across the wrap");
    assert!(m.queue(0).used_idx == (70_000u32 % 65536) as u16);
    // Bring the used index to just before the wrap, then allow interrupts around it.
    let to_edge = (65536 - 2 - m.queue(0).used_idx as u32) as usize;
    b = rx_rounds(&m, &mut drv, b, to_edge, &mut tag);
    assert_eq!(m.queue(0).used_idx, 65534);
    for step in 0..4u64 {
        drv.set_interrupts(true);
        let used_event = m.dev().used_event(0);
        assert_eq!(used_event, m.queue(0).used_idx, "interrupt at the next entry");
        m.inject(&frame(tag, 60)).unwrap();
        m.inject(&frame(tag + 1, 60)).unwrap();
        tag += 2;
        assert_eq!(m.irqs(), 1 + step, "one interrupt for two entries (used idx {})", m.queue(0).used_idx);
        drv.set_interrupts(false);
        b = drv.rx(b);
        let got = drain(&mut b.done);
        assert_eq!(got.len(), 2);
        for p in got {
            assert!(b.pkts.push_back(p).is_ok());
        }
        b = drv.rx(b);
        m.inject(&frame(tag, 60)).unwrap();
        tag += 1;
        assert_eq!(m.irqs(), 1 + step, "suppressed again");
        b = drv.rx(b);
        for p in drain(&mut b.done) {
            assert!(b.pkts.push_back(p).is_ok());
        }
        b = drv.rx(b);
    }
    assert!(m.queue(0).used_idx < 100, "the used index wrapped during the checks");
    assert_eq!(drv.stats().rx_packets as u32, tag);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}

#[test]
fn event_idx_notifications_follow_avail_event_across_the_index_wrap() {
    domain();
    let (m, mut drv) = up(Knobs { hold_tx: true, ..Knobs::default() });
    let mut pool: Vec<RRef<Pkt>> = (0..3).map(|i| pkt(&frame(i, 60))).collect();
    let mut sent = 0u64;
    let mut notifies = 0u64;
    let mut quiet_rounds = 0u64;
    // 23,000 rounds of 3 frames: the transmit queue's available index wraps.
    for round in 0..23_000u64 {
        let quiet = (21_840..21_850).contains(&round); // around avail idx 65536
        let no_notify = m.dev().knobs.no_notify;
        if quiet != no_notify {
            m.set_no_notify(quiet);
        }
        // Two frames in one call: one notification (avail_event is the first)...
        let t = drv.tx(batch_of(pool.drain(..2)));
        assert!(t.pkts.is_empty());
        // ...a third before the device looked: none (avail_event was passed already).
        let t = drv.tx(batch_of(pool.drain(..1)));
        assert!(t.pkts.is_empty());
        if quiet {
            quiet_rounds += 1;
        } else {
            notifies += 1;
        }
        assert_eq!(m.notifies()[1], notifies, "round {round}");
        sent += m.complete_tx() as u64;
        let mut t = drv.tx(Batch::new());
        pool.extend(drain(&mut t.done));
        assert_eq!(pool.len(), 3);
    }
    assert_eq!(sent, 3 * 23_000);
    assert_eq!(quiet_rounds, 10);
    assert_eq!(drv.stats().notifies, notifies);
    assert_eq!(m.queue(1).last_avail as u32, 3 * 23_000 % 65536, "the available index wrapped");
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}

/// The fault-injection hook corrupts the used entry as the driver reads it: a bad length
/// is refused (the buffer reposted), a bad id is refused and reported as a device fault —
/// the real entry's buffer stays posted (only a reset returns it), never handed on.
#[test]
fn fault_hook_corruptions_are_refused() {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    fn hook() -> u32 {
        NEXT.swap(0, Ordering::SeqCst)
    }
    domain();
    let (m, mut drv) = up(Knobs { max_queue_size: 8, ..Knobs::default() });
    drv.set_fault_hook(hook);
    let b = drv.rx(batch_of(empties(4)));
    NEXT.store(1, Ordering::SeqCst);
    m.inject(&frame(0, 60)).unwrap();
    let mut b = drv.rx(b);
    assert!(drain(&mut b.done).is_empty(), "a bad length is not handed on");
    assert_eq!(drv.stats().dropped, 1);
    assert_eq!(drv.outstanding().0, 4, "its buffer went back to the device");
    assert_eq!(drv.take_device_fault(), None);
    NEXT.store(2, Ordering::SeqCst);
    m.inject(&frame(1, 60)).unwrap();
    let mut b = drv.rx(b);
    assert!(drain(&mut b.done).is_empty(), "a bad id is not handed on");
    assert!(drv.take_device_fault().is_some(), "a bad id is a device fault");
    m.inject(&frame(2, 60)).unwrap();
    let mut b = drv.rx(b);
    let got = drain(&mut b.done);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].frame(), &frame(2, 60)[..]);
    assert!(m.violations().is_empty(), "{:?}", m.violations());
}
