//! The driver against the virtio-blk device model (`model/`): negotiation, request
//! layout and sector math, zero copy, batching beyond the queue, out-of-order completion,
//! device errors, device misbehaviour (never a panic; the device is reset and the next
//! call works), and statistics.

mod model;

use frond_interface::blk::{BlkError, BlkReq, BlkReqs, BLK_BYTES_MAX, BLK_REQS_MAX, BLOCK_SIZE};
use frond_virtio_blk::{Error, Fault as DrvFault, VirtioBlk, Waited};
use model::*;

const B: usize = BLOCK_SIZE;

fn up(knobs: Knobs) -> (Model, VirtioBlk<Model>) {
    let m = Model::new(knobs);
    let drv = VirtioBlk::new(m.clone(), true).expect("driver init");
    (m, drv)
}

fn held(queue: u16) -> Knobs {
    Knobs { hold: true, max_queue_size: queue, ..Knobs::default() }
}

/// A wait function that runs `step(model, round)` (the device acting while the driver
/// sleeps), reports an interrupt when the model raised one, and gives up after 50 rounds
/// so no test can hang.
fn waiter<'a>(m: &'a Model, mut step: impl FnMut(&Model, u32) + 'a) -> impl FnMut() -> Waited + 'a {
    let mut round = 0;
    let mut irqs = m.irqs();
    move || {
        round += 1;
        if round > 50 {
            return Waited::GiveUp;
        }
        step(m, round);
        let now = m.irqs();
        if now != irqs {
            irqs = now;
            Waited::Interrupt
        } else {
            Waited::Nothing
        }
    }
}

/// The device completes requests as they arrive; the driver should never need to wait.
fn idle(m: &Model) -> impl FnMut() -> Waited + '_ {
    waiter(m, |_, _| {})
}

/// Completes everything held, in arrival order, at each wait.
fn completes(m: &Model) -> impl FnMut() -> Waited + '_ {
    waiter(m, |m, _| {
        m.complete_all();
    })
}

fn reqs(list: &[(u64, u32, u32)]) -> BlkReqs {
    let mut r = BlkReqs::new();
    for &(block, offset, count) in list {
        assert!(r.push(BlkReq { block, offset, count }));
    }
    r
}

/// Bytes of a block-sized pattern identifying `tag`.
fn pattern(tag: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (tag as usize * 131 + i * 17 + i / 1024) as u8).collect()
}

fn assert_clean(m: &Model) {
    let v = m.violations();
    assert!(v.is_empty(), "device saw violations: {v:?}");
}

#[test]
fn init_negotiates_and_reads_config() {
    let (m, drv) = up(Knobs::default());
    let d = m.dev();
    assert_eq!(d.status, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    // Offered also GEOMETRY, TOPOLOGY, MQ, DISCARD, EVENT_IDX: none accepted.
    let want = F_VERSION_1 | F_SIZE_MAX | F_SEG_MAX | F_BLK_SIZE | F_FLUSH;
    assert_eq!(d.driver_features, want);
    assert_eq!(drv.features(), want);
    assert_eq!(drv.blocks(), 1024, "2048 sectors are 1024 blocks");
    assert!(!drv.read_only());
    assert!(drv.has_flush());
    assert_eq!(drv.queue_size(), 256);
    assert_eq!(drv.queue_depth(), 85);
    assert_eq!(drv.limits(), (Some(512), Some(254)));
    assert_eq!(drv.max_request_bytes(), BLK_BYTES_MAX as u32);
    let q = &d.queues[0];
    assert!(q.enabled);
    assert_eq!(q.msix, 0, "request queue routed to MSI-X vector 0");
    assert_eq!(d.config_msix, 0xffff);
    drop(d);
    assert_clean(&m);
}

#[test]
fn init_without_msix_and_minimal_features() {
    let m = Model::new(Knobs { features: F_VERSION_1, msix_vectors: 0, sectors: 2049, ..Knobs::default() });
    let drv = VirtioBlk::new(m.clone(), false).expect("init");
    assert_eq!(m.dev().driver_features, F_VERSION_1);
    assert_eq!(m.queue(0).msix, 0xffff);
    assert_eq!(drv.blocks(), 1024, "an odd last sector is not a block");
    assert_eq!(drv.limits(), (None, None));
    assert!(!drv.has_flush());
    assert_clean(&m);
}

#[test]
fn refuses_unusable_devices() {
    let e = VirtioBlk::new(Model::new(Knobs { features: F_FLUSH, ..Knobs::default() }), true).err();
    assert_eq!(e, Some(Error::NoVersion1 { offered: F_FLUSH }));

    for (bs, ok) in [(512, true), (1024, true), (4096, false), (0, false), (768, false)] {
        let m = Model::new(Knobs { blk_size: bs, ..Knobs::default() });
        let r = VirtioBlk::new(m.clone(), true);
        assert_eq!(r.is_ok(), ok, "blk_size {bs}");
        if !ok {
            let e = r.err().unwrap();
            assert_eq!(e, Error::Unsupported { field: "logical block size", value: bs as u64 });
            assert!(e.to_string().contains("logical block size"), "{e}");
            assert_ne!(m.status() & S_FAILED, 0, "FAILED set");
        }
    }
    // A block size the driver does not negotiate is not checked.
    let m = Model::new(Knobs { blk_size: 4096, features: F_VERSION_1, ..Knobs::default() });
    assert!(VirtioBlk::new(m, true).is_ok());

    let m = Model::new(Knobs { size_max: 1000, ..Knobs::default() });
    assert_eq!(
        VirtioBlk::new(m, true).err(),
        Some(Error::Unsupported { field: "maximum segment size", value: 1000 })
    );
    let m = Model::new(Knobs { max_queue_size: 2, ..Knobs::default() });
    assert_eq!(VirtioBlk::new(m, true).err(), Some(Error::Unsupported { field: "queue size", value: 2 }));
    let m = Model::new(Knobs { reset_delay: u32::MAX, ..Knobs::default() });
    assert_eq!(VirtioBlk::new(m, true).err(), Some(Error::ResetTimeout));
}

#[test]
fn read_round_trip_zero_copy() {
    let (m, mut drv) = up(Knobs::default());
    let mut buf = vec![0u8; BLK_BYTES_MAX];
    let r = reqs(&[(0, 0, 1), (9, 4 * B as u32, 3), (1023, 2 * B as u32, 1), (100, 60 * B as u32, 4)]);
    assert_eq!(drv.read(&r, &mut buf, idle(&m)), Ok(()));
    for req in r.as_slice() {
        let at = req.offset as usize;
        let len = req.count as usize * B;
        assert_eq!(buf[at..at + len], m.disk(req.block as usize * B, len)[..], "block {}", req.block);
    }
    assert!(buf[B..2 * B].iter().all(|&b| b == 0), "bytes no request names are untouched");
    // Zero copy: the device wrote straight into the caller's buffer, at each offset.
    let base = buf.as_ptr() as u64;
    let dma = m.dma();
    assert_eq!(dma.len(), 4);
    for (d, req) in dma.iter().zip(r.as_slice()) {
        assert!(d.to_memory);
        assert_eq!(d.addr, base + req.offset as u64, "DMA into the buffer at the request's offset");
        assert_eq!(d.len as usize, req.count as usize * B);
        assert!(d.addr >= base && d.addr + d.len as u64 <= base + buf.len() as u64, "inside the buffer");
    }
    assert_eq!(m.notifies(), [1], "one notification for the batch");
    assert_clean(&m);
}

#[test]
fn write_then_read_back() {
    let (m, mut drv) = up(Knobs::default());
    let data = pattern(1, 8 * B);
    let r = reqs(&[(40, 0, 2), (7, 2 * B as u32, 1), (500, 3 * B as u32, 5)]);
    assert_eq!(drv.write(&r, &data, idle(&m)), Ok(()));
    assert_eq!(m.disk(40 * B, 2 * B), data[..2 * B]);
    assert_eq!(m.disk(7 * B, B), data[2 * B..3 * B]);
    assert_eq!(m.disk(500 * B, 5 * B), data[3 * B..8 * B]);
    let base = data.as_ptr() as u64;
    for d in m.dma() {
        assert!(!d.to_memory);
        assert!(d.addr >= base && d.addr + d.len as u64 <= base + data.len() as u64, "zero copy from the buffer");
    }
    let mut back = vec![0u8; 8 * B];
    assert_eq!(drv.read(&r, &mut back, idle(&m)), Ok(()));
    assert_eq!(back, data);
    assert_clean(&m);
}

#[test]
fn sector_is_block_times_two() {
    let (m, mut drv) = up(Knobs::default());
    let mut buf = vec![0u8; 4 * B];
    assert_eq!(drv.read(&BlkReqs::one(5, 1), &mut buf, idle(&m)), Ok(()));
    assert_eq!(m.seen(), [(T_IN, 10, 1024)], "block 5 is sector 10");
    assert_eq!(buf[..B], m.disk(5 * B, B)[..]);
    assert_eq!(drv.write(&BlkReqs::one(7, 2), &pattern(2, 2 * B), idle(&m)), Ok(()));
    assert_eq!(m.seen()[1], (T_OUT, 14, 2048));
    assert_eq!(m.disk(14 * 512, 2 * B), pattern(2, 2 * B));
    assert_eq!(drv.read(&BlkReqs::one(1023, 1), &mut buf, idle(&m)), Ok(()));
    assert_eq!(m.seen()[2], (T_IN, 2046, 1024), "the last block");
    assert_clean(&m);
}

#[test]
fn all_requests_in_flight_at_once_with_one_kick() {
    let (m, mut drv) = up(held(256));
    let mut buf = vec![0u8; 32 * B];
    let list: Vec<(u64, u32, u32)> = (0..32).map(|i| (i * 3, i as u32 * B as u32, 1)).collect();
    let mut in_flight = None;
    let wait = waiter(&m, |m, round| {
        if round == 1 {
            in_flight = Some((m.pending(), m.notifies()));
        }
        m.complete_all();
    });
    assert_eq!(drv.read(&reqs(&list), &mut buf, wait), Ok(()));
    assert_eq!(in_flight, Some((32, vec![1])), "all 32 requests in flight after one notification");
    for (i, &(block, ..)) in list.iter().enumerate() {
        assert_eq!(buf[i * B..(i + 1) * B], m.disk(block as usize * B, B)[..]);
    }
    assert_eq!(drv.stats().kicks, 1);
    assert_clean(&m);
}

#[test]
fn out_of_order_completion() {
    let (m, mut drv) = up(held(16));
    let mut buf = vec![0u8; 16 * B];
    // Five requests (15 descriptors) fill the 16-entry queue; they complete in a
    // scrambled order, one per wait.
    let list = [(3, 0, 1), (50, B as u32, 2), (9, 3 * B as u32, 1), (700, 4 * B as u32, 3), (1, 8 * B as u32, 1)];
    let order = [3usize, 0, 2, 1, 0];
    let wait = waiter(&m, |m, round| {
        if let Some(&i) = order.get(round as usize - 1) {
            assert!(m.complete(i));
        }
    });
    assert_eq!(drv.read(&reqs(&list), &mut buf, wait), Ok(()));
    for &(block, off, count) in &list {
        let (at, len) = (off as usize, count as usize * B);
        assert_eq!(buf[at..at + len], m.disk(block as usize * B, len)[..], "block {block}");
    }
    // Once more, writes this time, completing last-first.
    let data = pattern(3, 16 * B);
    let wait = waiter(&m, |m, _| {
        m.complete_reversed();
    });
    assert_eq!(drv.write(&reqs(&list), &data, wait), Ok(()));
    for &(block, off, count) in &list {
        let (at, len) = (off as usize, count as usize * B);
        assert_eq!(m.disk(block as usize * B, len), data[at..at + len], "block {block}");
    }
    assert_eq!(drv.stats().errors, 0);
    assert_clean(&m);
}

#[test]
fn batch_larger_than_the_queue() {
    // 8 entries: two requests in flight at a time, 32 requests in the call.
    let (m, mut drv) = up(held(8));
    let mut buf = vec![0u8; 32 * B];
    let list: Vec<(u64, u32, u32)> = (0..32u64).map(|i| (1000 - i * 31, i as u32 * B as u32, 1)).collect();
    let mut round = 0;
    let wait = waiter(&m, |m, _| {
        round += 1;
        // Alternate: the newer request first, then both in order.
        if round % 2 == 0 {
            m.complete_reversed();
        } else {
            m.complete_all();
        }
    });
    assert_eq!(drv.read(&reqs(&list), &mut buf, wait), Ok(()));
    assert_eq!(m.max_pending(), 2, "never more in flight than the queue holds");
    for (i, &(block, ..)) in list.iter().enumerate() {
        assert_eq!(buf[i * B..(i + 1) * B], m.disk(block as usize * B, B)[..], "request {i}");
    }
    let s = drv.stats();
    assert_eq!((s.reads, s.read_blocks, s.errors), (32, 32, 0));
    assert_eq!(s.kicks, m.notifies()[0]);
    assert!(s.kicks >= 16, "a kick per refill: {}", s.kicks);
    assert_clean(&m);
}

#[test]
fn ring_wraps_many_times() {
    // 8 entries: two requests in flight at a time, three per call, so the ring slots wrap
    // while different chains are in flight; then past 65536 requests, so the free-running
    // 16-bit ring indices wrap too.
    let (m, mut drv) = up(Knobs { max_queue_size: 8, ..Knobs::default() });
    let mut buf = vec![0u8; 4 * B];
    for round in 0..300u32 {
        let block = (round as u64 * 37) % 1000;
        let data = pattern(round, 3 * B);
        let w = reqs(&[(block, 0, 1), (block + 1, B as u32, 1), (block + 2, 2 * B as u32, 1)]);
        assert_eq!(drv.write(&w, &data, idle(&m)), Ok(()), "round {round}");
        let r = reqs(&[(block + 2, 0, 1), (block, B as u32, 2)]);
        assert_eq!(drv.read(&r, &mut buf, idle(&m)), Ok(()), "round {round}");
        assert_eq!(buf[..B], data[2 * B..], "round {round}");
        assert_eq!(buf[B..3 * B], data[..2 * B], "round {round}");
    }
    assert_eq!(m.seen().len(), 1500);
    for round in 0..16_500u32 {
        let block = (round as u64 * 13) % 1000;
        let r = reqs(&[(block, 0, 1), (block + 1, B as u32, 1), (block + 2, 2 * B as u32, 1), (block + 3, 3 * B as u32, 1)]);
        assert_eq!(drv.read(&r, &mut buf, idle(&m)), Ok(()), "round {round}");
        assert_eq!(buf, m.disk(block as usize * B, 4 * B), "round {round}");
    }
    assert!(m.seen().len() > 66_000);
    assert_eq!(drv.stats().errors, 0);
    assert_clean(&m);
}

#[test]
fn size_max_splits_requests() {
    let (m, mut drv) = up(Knobs { size_max: 2048 + 512, ..Knobs::default() });
    assert_eq!(drv.max_request_bytes(), 2048);
    let data = pattern(4, 5 * B);
    assert_eq!(drv.write(&BlkReqs::one(20, 5), &data, idle(&m)), Ok(()));
    assert_eq!(m.seen(), [(T_OUT, 40, 2048), (T_OUT, 44, 2048), (T_OUT, 48, 1024)]);
    assert_eq!(m.disk(20 * B, 5 * B), data);
    let mut buf = vec![0u8; 8 * B];
    assert_eq!(drv.read(&reqs(&[(20, 3 * B as u32, 5)]), &mut buf, idle(&m)), Ok(()));
    assert_eq!(buf[3 * B..], data[..]);
    let s = drv.stats();
    assert_eq!((s.writes, s.written_blocks, s.reads, s.read_blocks), (1, 5, 1, 5), "counted per BlkReq");
    assert_clean(&m);
}

#[test]
fn read_only_device_refuses_writes_untouched() {
    let (m, mut drv) = up(Knobs { features: Knobs::default().features | F_RO, ..Knobs::default() });
    assert!(drv.read_only());
    assert_ne!(m.dev().driver_features & F_RO, 0, "RO accepted");
    assert_eq!(drv.write(&BlkReqs::one(1, 1), &pattern(5, B), idle(&m)), Err(BlkError::ReadOnly));
    assert!(m.seen().is_empty(), "the device saw nothing");
    assert_eq!(m.notifies(), [0]);
    assert_eq!(drv.stats().errors, 0);
    let mut buf = vec![0u8; B];
    assert_eq!(drv.read(&BlkReqs::one(1, 1), &mut buf, idle(&m)), Ok(()));
    assert_eq!(buf, m.disk(B, B));
    assert_eq!(drv.flush(idle(&m)), Ok(()));
    assert_clean(&m);
}

#[test]
fn ioerr_and_unsupp_map_to_errors() {
    let (m, mut drv) = up(Knobs::default());
    m.bad_sector(21);
    let mut buf = vec![0u8; 4 * B];
    let r = reqs(&[(3, 0, 1), (10, B as u32, 1), (4, 2 * B as u32, 2)]);
    assert_eq!(drv.read(&r, &mut buf, idle(&m)), Err(BlkError::Io));
    assert_eq!(m.pending(), 0, "every request of the call completed before it returned");
    assert_eq!(buf[..B], m.disk(3 * B, B)[..], "the others were read");
    let s = drv.stats();
    assert_eq!((s.reads, s.read_blocks, s.errors), (2, 3, 1));

    m.unsupported(T_OUT);
    assert_eq!(drv.write(&BlkReqs::one(0, 1), &pattern(6, B), idle(&m)), Err(BlkError::Unsupported));
    m.unsupported(T_FLUSH);
    assert_eq!(drv.flush(idle(&m)), Err(BlkError::Unsupported));
    assert_eq!(drv.stats().errors, 3);
    // Device errors are answers, not misbehaviour: no reset, the next call works.
    assert_eq!(drv.resets(), 0);
    assert_eq!(m.resets(), 1, "only the reset of the initialisation");
    assert_eq!(drv.read(&BlkReqs::one(0, 1), &mut buf, idle(&m)), Ok(()));
    assert_clean(&m);
}

#[test]
fn flush_sends_flush_or_is_a_noop() {
    let (m, mut drv) = up(Knobs::default());
    assert_eq!(drv.flush(idle(&m)), Ok(()));
    assert_eq!(m.flushes(), 1);
    assert_eq!(m.seen(), [(T_FLUSH, 0, 0)]);
    assert_eq!(drv.stats().flushes, 1);

    let (m, mut drv) = up(Knobs { features: F_VERSION_1, ..Knobs::default() });
    assert_eq!(drv.flush(idle(&m)), Ok(()), "write-through device: nothing to do");
    assert_eq!(m.notifies(), [0]);
    assert!(m.seen().is_empty());
    assert_eq!(drv.stats().flushes, 1);
    assert_clean(&m);
}

#[test]
fn validation_errors_touch_nothing() {
    let (m, mut drv) = up(Knobs::default());
    let mut buf = vec![0u8; 4 * B];
    let cases = [
        (reqs(&[(0, 0, 0)]), BlkError::BadRequest),
        (reqs(&[(0, 100, 1)]), BlkError::BadRequest),
        (reqs(&[(0, 3 * B as u32, 2)]), BlkError::BadRequest),
        (reqs(&[(1023, 0, 2)]), BlkError::OutOfRange),
        (reqs(&[(u64::MAX, 0, 1)]), BlkError::OutOfRange),
        (reqs(&[(0, 0, 1), (5000, B as u32, 1)]), BlkError::OutOfRange),
    ];
    for (r, e) in &cases {
        assert_eq!(drv.read(r, &mut buf, idle(&m)), Err(*e), "{r:?}");
        assert_eq!(drv.write(r, &buf, idle(&m)), Err(*e), "{r:?}");
    }
    let mut bad_n = BlkReqs::one(0, 1);
    bad_n.n = BLK_REQS_MAX as u32 + 1;
    assert_eq!(drv.read(&bad_n, &mut buf, idle(&m)), Err(BlkError::BadRequest));
    assert!(m.seen().is_empty());
    assert_eq!(m.notifies(), [0]);
    assert_eq!(drv.stats(), Default::default());
    // No requests: nothing to do.
    assert_eq!(drv.read(&BlkReqs::new(), &mut buf, idle(&m)), Ok(()));
    assert_eq!(m.notifies(), [0]);
}

#[test]
fn stats_count_requests_blocks_kicks_irqs() {
    let (m, mut drv) = up(held(256));
    let mut buf = vec![0u8; 8 * B];
    assert_eq!(drv.read(&reqs(&[(0, 0, 2), (8, 2 * B as u32, 3)]), &mut buf, completes(&m)), Ok(()));
    assert_eq!(drv.write(&BlkReqs::one(30, 4), &buf, completes(&m)), Ok(()));
    assert_eq!(drv.flush(completes(&m)), Ok(()));
    let s = drv.stats();
    assert_eq!((s.reads, s.read_blocks, s.writes, s.written_blocks, s.flushes), (2, 5, 1, 4, 1));
    assert_eq!((s.kicks, s.errors), (3, 0));
    assert_eq!(s.irqs, 3, "each call woken once by the device's interrupt");
    assert!(m.irqs() >= 3);
}

/// Runs one read with `fault` applied to its first completion; the call must fail with
/// `Device`, the driver must reset the device, and the next calls must work.
fn fault_then_recover(fault: Fault, expect: fn(&DrvFault) -> bool) {
    let (m, mut drv) = up(held(16));
    let mut buf = vec![0u8; 4 * B];
    let r = reqs(&[(2, 0, 1), (3, B as u32, 1), (4, 2 * B as u32, 2)]);
    m.fault(fault);
    let wait = waiter(&m, |m, _| {
        m.complete(0);
    });
    assert_eq!(drv.read(&r, &mut buf, wait), Err(BlkError::Device), "{fault:?}");
    let f = drv.last_fault().expect("fault recorded");
    assert!(expect(&f), "{fault:?} gave {f:?}");
    assert!(!f.to_string().is_empty());
    assert_eq!(drv.resets(), 1, "{fault:?}: the driver reset the device");
    assert_eq!(m.resets(), 3, "{fault:?}: init's reset, the recovery's, the re-initialisation's");
    assert_eq!(m.pending(), 0, "{fault:?}: the device holds none of the call's buffers");
    assert!(drv.stats().errors >= 1);
    assert!(!drv.wedged());
    // The next calls work: a write and a read back, the device completing normally.
    m.set_hold(false);
    let data = pattern(7, 4 * B);
    assert_eq!(drv.write(&r, &data, idle(&m)), Ok(()), "{fault:?}: next call");
    let mut back = vec![0u8; 4 * B];
    assert_eq!(drv.read(&r, &mut back, idle(&m)), Ok(()), "{fault:?}: next call");
    assert_eq!(back, data);
    assert_eq!(m.status() & S_DRIVER_OK, S_DRIVER_OK);
    assert_clean(&m);
}

#[test]
fn bad_used_id_is_a_fault_and_the_next_call_works() {
    for id in [16, 200, u32::MAX, 15] {
        fault_then_recover(Fault::BadId(id), |f| matches!(f, DrvFault::UnknownId { .. }));
    }
}

#[test]
fn duplicate_completion_is_a_fault() {
    fault_then_recover(Fault::Duplicate, |f| matches!(f, DrvFault::UnknownId { .. }));
    // A stale completion: the used entry of the previous call's request arrives again
    // after a new request took the same head. The new request's status byte still holds
    // the driver's 0xff, so the entry cannot pass for its completion.
    let (m, mut drv) = up(held(16));
    let mut buf = vec![0u8; 2 * B];
    assert_eq!(drv.read(&BlkReqs::one(1, 1), &mut buf, completes(&m)), Ok(()));
    let wait = waiter(&m, |m, round| {
        if round == 1 {
            m.inject_used(0, 2, 1025);
        }
    });
    assert_eq!(drv.read(&BlkReqs::one(2, 1), &mut buf, wait), Err(BlkError::Device));
    assert_eq!(drv.last_fault(), Some(DrvFault::Status { id: 2, status: 0xff }));
    m.set_hold(false);
    assert_eq!(drv.read(&BlkReqs::one(2, 1), &mut buf, idle(&m)), Ok(()));
    assert_eq!(buf[..B], m.disk(2 * B, B)[..]);
}

#[test]
fn bad_used_length_is_a_fault() {
    // Shorter than data + status on a successful read, zero, longer than the buffers.
    for len in [0, 1, 1024, 2049, u32::MAX] {
        fault_then_recover(Fault::Len(len), |f| matches!(f, DrvFault::Length { .. }));
    }
}

#[test]
fn status_garbage_is_a_fault() {
    for s in [3u8, 0x80, 0xff] {
        fault_then_recover(Fault::Status(s), |f| matches!(f, DrvFault::Status { .. }));
    }
    // A completion that never wrote its status byte (length 0 for a write).
    let (m, mut drv) = up(Knobs::default());
    m.fault(Fault::NoStatus);
    assert_eq!(drv.write(&BlkReqs::one(1, 1), &pattern(8, B), idle(&m)), Err(BlkError::Device));
    assert!(matches!(drv.last_fault(), Some(DrvFault::Status { status: 0xff, .. })));
    assert_eq!(drv.write(&BlkReqs::one(1, 1), &pattern(8, B), idle(&m)), Ok(()));
}

#[test]
fn used_index_jump_is_a_fault() {
    // Three requests in flight: one bogus entry more is a zeroed slot naming no request;
    // more entries than requests in flight is caught by the index itself.
    fault_then_recover(Fault::IdxJump(1), |f| matches!(f, DrvFault::UsedIndex { .. } | DrvFault::UnknownId { .. }));
    for k in [5u16, 200, 0x8000] {
        fault_then_recover(Fault::IdxJump(k), |f| matches!(f, DrvFault::UsedIndex { .. }));
    }
}

#[test]
fn needs_reset_is_a_fault_and_the_next_call_works() {
    let (m, mut drv) = up(held(64));
    let mut buf = vec![0u8; 2 * B];
    let wait = waiter(&m, |m, round| {
        if round == 2 {
            m.set_needs_reset();
        }
    });
    assert_eq!(drv.read(&reqs(&[(1, 0, 1), (2, B as u32, 1)]), &mut buf, wait), Err(BlkError::Device));
    assert!(matches!(drv.last_fault(), Some(DrvFault::NeedsReset { .. })));
    assert_eq!(drv.stats().errors, 2);
    assert_eq!(m.status() & S_NEEDS_RESET, 0, "reset cleared it");
    m.set_hold(false);
    assert_eq!(drv.read(&BlkReqs::one(3, 2), &mut buf, idle(&m)), Ok(()));
    assert_eq!(buf, m.disk(3 * B, 2 * B));

    // A device that drops DRIVER_OK by itself (lost its state) is no better.
    m.set_hold(true);
    let wait = waiter(&m, |m, round| {
        if round == 1 {
            m.dev().status = 0;
        }
    });
    assert_eq!(drv.read(&BlkReqs::one(4, 1), &mut buf, wait), Err(BlkError::Device));
    assert_eq!(drv.last_fault(), Some(DrvFault::NeedsReset { status: 0 }));
    assert_eq!(drv.resets(), 2);
    m.set_hold(false);
    assert_eq!(drv.read(&BlkReqs::one(4, 1), &mut buf, idle(&m)), Ok(()));
    assert_eq!(buf[..B], m.disk(4 * B, B)[..]);
    assert_clean(&m);
}

#[test]
fn status_byte_is_not_a_completion() {
    // The device writes the status bytes first and the data and used entries a wait
    // later: only the used ring says a request is done.
    let (m, mut drv) = up(held(64));
    let mut buf = vec![0u8; 3 * B];
    let wait = waiter(&m, |m, round| match round {
        1 => m.stage_statuses(),
        _ => {
            m.complete_all();
        }
    });
    assert_eq!(drv.read(&reqs(&[(9, 0, 1), (8, B as u32, 2)]), &mut buf, wait), Ok(()));
    assert_eq!(buf[..B], m.disk(9 * B, B)[..]);
    assert_eq!(buf[B..], m.disk(8 * B, 2 * B)[..]);
    assert_clean(&m);
}

#[test]
fn a_hung_device_is_reset_when_the_wait_gives_up() {
    let (m, mut drv) = up(held(64));
    let mut buf = vec![0u8; B];
    assert_eq!(drv.read(&BlkReqs::one(1, 1), &mut buf, idle(&m)), Err(BlkError::Device));
    assert_eq!(drv.last_fault(), Some(DrvFault::Timeout));
    assert_eq!(m.pending(), 0, "the reset took the request back from the device");
    m.set_hold(false);
    assert_eq!(drv.read(&BlkReqs::one(1, 1), &mut buf, idle(&m)), Ok(()));
}

#[test]
fn a_failed_reinitialisation_is_retried_by_the_next_call() {
    let (m, mut drv) = up(Knobs::default());
    let mut buf = vec![0u8; B];
    m.fault(Fault::Status(9));
    m.dev().knobs.reject_features = true;
    assert_eq!(drv.read(&BlkReqs::one(1, 1), &mut buf, idle(&m)), Err(BlkError::Device));
    assert_ne!(m.status() & S_FAILED, 0, "re-initialisation failed");
    assert_eq!(drv.read(&BlkReqs::one(1, 1), &mut buf, idle(&m)), Err(BlkError::Device));
    m.dev().knobs.reject_features = false;
    assert_eq!(drv.read(&BlkReqs::one(1, 1), &mut buf, idle(&m)), Ok(()));
    assert_eq!(buf, m.disk(B, B));
    assert_eq!(drv.stats().errors, 2);
}

#[test]
fn a_reset_that_never_completes_wedges_the_driver() {
    let (m, mut drv) = up(Knobs::default());
    let mut buf = vec![0u8; B];
    m.fault(Fault::BadId(77));
    m.dev().knobs.reset_delay = u32::MAX;
    assert_eq!(drv.read(&BlkReqs::one(1, 1), &mut buf, idle(&m)), Err(BlkError::Device));
    assert!(drv.wedged());
    let seen = m.seen().len();
    assert_eq!(drv.read(&BlkReqs::one(1, 1), &mut buf, idle(&m)), Err(BlkError::Device));
    assert_eq!(drv.flush(idle(&m)), Err(BlkError::Device));
    assert_eq!(m.seen().len(), seen, "a wedged driver does not touch the device");
    drop(drv); // must not free what the device may still write, nor panic
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
fn soak_with_random_faults_never_panics_and_data_stays_right() {
    let (m, mut drv) = up(held(32));
    let mut rng = Lcg(11);
    let mut buf = vec![0u8; BLK_BYTES_MAX];
    let mut oks = 0;
    let mut faults = 0;
    for round in 0..1500u32 {
        // Up to 32 non-overlapping requests.
        let n = 1 + rng.next(12) as usize;
        let mut list = Vec::new();
        let mut off = 0u32;
        for i in 0..n as u64 {
            let count = 1 + rng.next(4) as u32;
            // Disjoint block ranges: writes of one call may land in any order.
            list.push((i * 84 + rng.next(80), off, count));
            off += count * B as u32;
        }
        let r = reqs(&list);
        if rng.next(8) == 0 {
            let f = match rng.next(6) {
                0 => Fault::BadId(rng.next(300) as u32),
                1 => Fault::Duplicate,
                2 => Fault::Len(rng.next(5000) as u32),
                3 => Fault::Status(3 + rng.next(250) as u8),
                4 => Fault::IdxJump(1 + rng.next(40) as u16),
                _ => Fault::NoStatus,
            };
            m.fault(f);
        }
        let seed = rng.next(1 << 30);
        let wait = waiter(&m, move |m, k| {
            // Complete a pseudo-random pending request each wait.
            let p = m.pending();
            if p > 0 {
                m.complete(((seed + k as u64 * 7) % p as u64) as usize);
            }
        });
        let res = if rng.next(2) == 0 {
            let data = pattern(round, off as usize);
            buf[..off as usize].copy_from_slice(&data);
            let res = drv.write(&r, &buf, wait);
            if res.is_ok() {
                for &(block, o, count) in &list {
                    let len = count as usize * B;
                    assert_eq!(m.disk(block as usize * B, len), data[o as usize..o as usize + len], "round {round}");
                }
            }
            res
        } else {
            let res = drv.read(&r, &mut buf, wait);
            if res.is_ok() {
                for &(block, o, count) in &list {
                    let len = count as usize * B;
                    assert_eq!(buf[o as usize..o as usize + len], m.disk(block as usize * B, len)[..], "round {round}");
                }
            }
            res
        };
        match res {
            Ok(()) => oks += 1,
            Err(BlkError::Device) => {
                faults += 1;
                assert_eq!(m.pending(), 0, "round {round}: reset took everything back");
            }
            Err(e) => panic!("round {round}: {e:?}"),
        }
        // Faults queued but not used by a failed call stay for later ones.
        assert!(!drv.wedged());
    }
    assert!(oks > 1000 && faults > 50, "{oks} ok, {faults} device faults");
    assert_eq!(drv.resets(), faults);
    assert_clean(&m);
}
