//! `Queue`: descriptor chains as the device sees them, release by head only, the free
//! list staying exact, and device-written used entries read as written.

use frond_virtio::{Queue, Seg, DESC_F_NEXT, DESC_F_WRITE};

/// (addr, len, flags, next) of descriptor `id`, read from the table as a device would.
fn desc(q: &Queue, id: u16) -> (u64, u32, u16, u16) {
    let a = q.desc_addr() as usize + 16 * id as usize;
    // SAFETY: the table has `size` 16-byte entries and lives as long as `q`.
    unsafe {
        (
            (a as *const u64).read_volatile(),
            ((a + 8) as *const u32).read_volatile(),
            ((a + 12) as *const u16).read_volatile(),
            ((a + 14) as *const u16).read_volatile(),
        )
    }
}

fn avail(q: &Queue, i: usize) -> u16 {
    // SAFETY: `i` indexes the ring (callers keep it below the size), or 1 for `idx`.
    unsafe { ((q.avail_addr() as usize + 2 + 2 * i) as *const u16).read_volatile() }
}

/// Writes used entry `slot` and the used index, as the device does.
fn used(q: &Queue, slot: usize, id: u32, len: u32, idx: u16) {
    let a = q.used_addr() as usize;
    // SAFETY: slot < size; the used ring lives as long as `q`.
    unsafe {
        ((a + 4 + 8 * slot) as *mut u32).write_volatile(id);
        ((a + 8 + 8 * slot) as *mut u32).write_volatile(len);
        ((a + 2) as *mut u16).write_volatile(idx);
    }
}

fn seg(addr: u64, len: u32, device_writes: bool) -> Seg {
    Seg { addr, len, device_writes }
}

#[test]
fn a_three_descriptor_chain_is_linked_and_flagged() {
    let mut q = Queue::new(0, 8).unwrap();
    let segs = [seg(0x1000, 16, false), seg(0x2000, 4096, true), seg(0x3000, 1, true)];
    let head = q.add(&segs).unwrap();
    assert_eq!(q.free_descriptors(), 5);
    assert_eq!((q.in_flight(), q.outstanding()), (1, 3));
    let mut id = head;
    for (i, s) in segs.iter().enumerate() {
        let (addr, len, flags, next) = desc(&q, id);
        assert_eq!((addr, len), (s.addr, s.len));
        assert_eq!(flags & DESC_F_WRITE != 0, s.device_writes, "descriptor {i}");
        assert_eq!(flags & DESC_F_NEXT != 0, i < 2, "descriptor {i}");
        id = next;
    }
    assert!(!q.publish() || avail(&q, 0) == 1, "published index 1");
    assert_eq!(avail(&q, 1), head, "ring[0] is the head");
    assert!(q.is_in_flight(head as u32));
    for other in (0..8).filter(|&i| i != head as u32) {
        assert!(!q.is_in_flight(other), "only heads count as in flight ({other})");
    }
}

#[test]
fn release_frees_exactly_the_chain_once() {
    let mut q = Queue::new(0, 8).unwrap();
    let a = q.add(&[seg(1, 1, false), seg(2, 2, true)]).unwrap();
    let b = q.add(&[seg(3, 3, false), seg(4, 4, true), seg(5, 5, true)]).unwrap();
    assert_eq!(q.free_descriptors(), 3);
    assert!(q.add(&[seg(0, 1, false); 4]).is_none(), "four do not fit in three");
    assert_eq!(q.free_descriptors(), 3, "a refused chain takes nothing");
    assert!(q.add(&[]).is_none());
    assert_eq!(q.release(b as u32), Some(3));
    assert_eq!(q.release(b as u32), None, "a chain is released once");
    assert_eq!(q.free_descriptors(), 6);
    assert!(q.is_in_flight(a as u32));
    for bad in [8, 1000, u32::MAX] {
        assert_eq!(q.release(bad), None);
        assert!(!q.is_in_flight(bad));
    }
    assert_eq!(q.release(a as u32), Some(2));
    assert_eq!((q.free_descriptors(), q.in_flight()), (8, 0));
    // Everything is reusable: eight one-descriptor chains fit again.
    for i in 0..8 {
        assert!(q.add(&[seg(i, 1, false)]).is_some());
    }
    assert!(q.add(&[seg(9, 1, false)]).is_none());
}

#[test]
fn release_follows_the_drivers_links_not_the_table() {
    let mut q = Queue::new(0, 4).unwrap();
    let head = q.add(&[seg(1, 1, false), seg(2, 1, true)]).unwrap();
    // The device scribbles over the descriptor table's links.
    let a = q.desc_addr() as usize;
    for id in 0..4 {
        // SAFETY: inside the 4-entry table.
        unsafe { ((a + 16 * id + 14) as *mut u16).write_volatile(0xffff) };
    }
    assert_eq!(q.release(head as u32), Some(2));
    assert_eq!(q.free_descriptors(), 4);
}

#[test]
fn used_entries_are_read_as_written_across_the_wrap() {
    let mut q = Queue::new(0, 4).unwrap();
    let mut idx = 0u16;
    for round in 0..10u32 {
        let h = q.add(&[seg(round as u64, 1, true)]).unwrap();
        q.publish();
        assert!(!q.pending());
        used(&q, (idx % 4) as usize, h as u32, round, idx.wrapping_add(1));
        idx = idx.wrapping_add(1);
        assert!(q.pending());
        assert_eq!(q.used_end(), idx);
        assert_eq!(q.peek_used(), (h as u32, round));
        q.advance();
        assert_eq!(q.release(h as u32), Some(1));
    }
    assert_eq!(q.last_used(), 10);
}

#[test]
fn sizes_must_be_powers_of_two() {
    assert!(Queue::new(0, 3).is_err());
    assert!(Queue::new(0, 0).is_err());
    assert!(Queue::new(0, 1).is_ok());
}

#[test]
fn need_event_matches_the_specification_across_the_wrap() {
    use frond_virtio::need_event;
    // event in [old, new): the move passed it.
    assert!(need_event(5, 6, 5));
    assert!(!need_event(5, 5, 4));
    assert!(!need_event(6, 6, 5), "event not reached yet");
    assert!(need_event(0xffff, 0x0001, 0xfffe), "passed right at the wrap");
    assert!(need_event(0x0000, 0x0001, 0xffff));
    assert!(!need_event(0xfffd, 0x0001, 0xfffe), "behind old: already passed before");
    assert!(!need_event(0x0001, 0x0001, 0xffff), "new itself is not passed");
    // An event just behind the driver's index is reached only by a full wrap.
    for old in [0u16, 100, 0x7fff, 0xfff0, 0xffff] {
        assert!(!need_event(old.wrapping_sub(1), old.wrapping_add(256), old));
    }
}
