//! `PciTransport`: capability validation, and register accesses landing at the right
//! addresses (a block of host memory stands in for the BAR).

use frond_interface::net::{PciDevice, VendorCap};
use frond_virtio::{BarProblem, Error, PciTransport, Region, Transport};

const BAR_LEN: usize = 0x4000;
const COMMON: u32 = 0;
const ISR: u32 = 0x1000;
const DEVICE: u32 = 0x2000;
const NOTIFY: u32 = 0x3000;

/// Host memory standing in for a BAR (8-byte aligned).
struct FakeBar(Vec<u64>);

impl FakeBar {
    fn new() -> Self {
        FakeBar(vec![0; BAR_LEN / 8])
    }
    fn addr(&mut self) -> u64 {
        self.0.as_mut_ptr().expose_provenance() as u64
    }
    fn byte(&self, off: u32) -> u8 {
        // SAFETY: in bounds of the buffer (callers pass offsets below BAR_LEN).
        unsafe { self.0.as_ptr().cast::<u8>().add(off as usize).read_volatile() }
    }
    fn set_byte(&mut self, off: u32, v: u8) {
        // SAFETY: as above.
        unsafe { self.0.as_mut_ptr().cast::<u8>().add(off as usize).write_volatile(v) }
    }
    fn u16_at(&self, off: u32) -> u16 {
        u16::from_le_bytes([self.byte(off), self.byte(off + 1)])
    }
}

fn cap(cfg_type: u8, bar: u8, offset: u32, length: u32, notify_mult: u32) -> VendorCap {
    VendorCap { cfg_type, bar, offset, length, notify_mult }
}

/// A device with its four regions in BAR 4 (plus a PCI-config-access capability, type 5,
/// which the transport ignores).
fn device(bar: &mut FakeBar) -> PciDevice {
    let mut caps = [VendorCap::default(); 8];
    caps[0] = cap(1, 4, COMMON, 0x38, 0);
    caps[1] = cap(5, 0, 0, 0, 0);
    caps[2] = cap(3, 4, ISR, 4, 0);
    caps[3] = cap(4, 4, DEVICE, 0x10, 0);
    caps[4] = cap(2, 4, NOTIFY, 0x100, 4);
    let mut bars = [(0u64, 0u64); 6];
    bars[4] = (bar.addr(), BAR_LEN as u64);
    PciDevice { bdf: 0x18, vendor: 0x1af4, device: 0x1041, bars, caps, ncaps: 5, msix_vector: 0 }
}

fn open(dev: &PciDevice) -> Result<PciTransport, Error> {
    // SAFETY: the BARs of every device built here are host buffers the test keeps alive
    // for the transport's lifetime (or, for refused devices, are never accessed).
    unsafe { PciTransport::new(dev, 6) }
}

#[test]
fn accesses_land_in_the_right_region_at_the_right_offset() {
    let mut bar = FakeBar::new();
    let dev = device(&mut bar);
    let mut t = open(&dev).expect("valid device");

    t.write16(Region::Common, 22, 0xbeef);
    assert_eq!(bar.u16_at(COMMON + 22), 0xbeef);
    t.write8(Region::Common, 20, 0x0b);
    assert_eq!(bar.byte(COMMON + 20), 0x0b);
    t.write64(Region::Common, 32, 0x1122_3344_5566_7788);
    assert_eq!((0..8).map(|i| bar.byte(COMMON + 32 + i)).collect::<Vec<_>>(), 0x1122_3344_5566_7788u64.to_le_bytes());
    assert_eq!(t.read64(Region::Common, 32), 0x1122_3344_5566_7788);
    t.write32(Region::Common, 4, 0xdead_beef);
    assert_eq!(t.read32(Region::Common, 4), 0xdead_beef);

    bar.set_byte(ISR, 3);
    assert_eq!(t.read8(Region::Isr, 0), 3);
    for (i, b) in [2u8, 4, 6, 8, 10, 12].into_iter().enumerate() {
        bar.set_byte(DEVICE + i as u32, b);
    }
    assert_eq!((0..6).map(|i| t.read8(Region::Device, i)).collect::<Vec<_>>(), [2, 4, 6, 8, 10, 12]);

    // Notify: queue_notify_off 3 × multiplier 4.
    t.set_notify_off(1, 3).unwrap();
    t.notify(1);
    assert_eq!(bar.u16_at(NOTIFY + 12), 1);
    t.set_notify_off(0, 0).unwrap();
    bar.set_byte(NOTIFY, 0xff);
    t.notify(0);
    assert_eq!(bar.u16_at(NOTIFY), 0);
}

#[test]
fn accesses_outside_a_region_do_nothing() {
    let mut bar = FakeBar::new();
    let dev = device(&mut bar);
    let mut t = open(&dev).unwrap();
    // Just past the common region (0x38 bytes) lies other BAR memory.
    bar.set_byte(COMMON + 0x38, 0x5a);
    assert_eq!(t.read8(Region::Common, 0x38), 0);
    t.write8(Region::Common, 0x38, 1);
    assert_eq!(bar.byte(COMMON + 0x38), 0x5a);
    // Misaligned accesses are refused too.
    t.write16(Region::Common, 23, 0xffff);
    assert_eq!(bar.u16_at(COMMON + 22), 0);
    bar.set_byte(ISR + 3, 0x77);
    bar.set_byte(ISR + 4, 0x66);
    assert_eq!(t.read8(Region::Isr, 3), 0x77, "inside the 4-byte ISR region");
    assert_eq!(t.read16(Region::Isr, 3), 0, "misaligned and crossing the region's end");
    assert_eq!(t.read8(Region::Isr, 4), 0, "past the region's end");
    // Notifying a queue without a recorded offset writes nothing.
    t.notify(1);
    assert!((0..0x100).all(|i| bar.byte(NOTIFY + i) == 0));
}

#[test]
fn notify_offsets_are_checked() {
    let mut bar = FakeBar::new();
    let dev = device(&mut bar);
    let mut t = open(&dev).unwrap();
    assert_eq!(t.set_notify_off(0, 63), Ok(()), "offset 252..254 fits in 0x100 bytes");
    assert_eq!(t.set_notify_off(0, 64), Err(Error::NotifyOutsideRegion { queue: 0, offset: 256, length: 0x100 }));
    assert_eq!(t.set_notify_off(7, 0), Err(Error::UnsupportedQueue(7)));
}

#[test]
fn capability_validation() {
    let mut bar = FakeBar::new();
    let good = device(&mut bar);
    let with = |i: usize, c: VendorCap| {
        let mut d = good;
        d.caps[i] = c;
        d
    };

    let none = PciDevice { ncaps: 0, ..good };
    assert_eq!(open(&none).err(), Some(Error::MissingRegion(Region::Common)));
    // Capabilities beyond `ncaps` do not count.
    let short = PciDevice { ncaps: 4, ..good };
    assert_eq!(open(&short).err(), Some(Error::MissingRegion(Region::Notify)));

    let d = with(2, cap(3, 7, ISR, 4, 0));
    assert_eq!(open(&d).err(), Some(Error::BadBar { region: Region::Isr, bar: 7, problem: BarProblem::NoSuchBar }));
    let d = with(2, cap(3, 1, ISR, 4, 0));
    assert_eq!(open(&d).err(), Some(Error::BadBar { region: Region::Isr, bar: 1, problem: BarProblem::Unassigned }));
    let mut d = good;
    d.bars[4].0 |= 1 << 63;
    assert_eq!(open(&d).err(), Some(Error::BadBar { region: Region::Common, bar: 4, problem: BarProblem::IoBar }));
    let mut d = good;
    d.bars[4].1 = 0;
    assert!(matches!(open(&d).err(), Some(Error::BadBar { problem: BarProblem::Unassigned, .. })));

    let d = with(3, cap(4, 4, 0x3f80, 0x100, 0));
    let e = open(&d).err().unwrap();
    assert_eq!(
        e,
        Error::RegionOutsideBar { region: Region::Device, bar: 4, offset: 0x3f80, length: 0x100, bar_len: 0x4000 }
    );
    assert!(e.to_string().contains("0x3f80") && e.to_string().contains("BAR 4"), "{e}");
    let d = with(0, cap(1, 4, COMMON, 0x20, 0));
    assert_eq!(open(&d).err(), Some(Error::RegionTooSmall { region: Region::Common, length: 0x20, need: 56 }));

    // The device configuration must hold what the driver reads (virtio-blk: 24 bytes).
    // SAFETY: as in `open`.
    let e = unsafe { PciTransport::new(&good, 24) }.err();
    assert_eq!(e, Some(Error::RegionTooSmall { region: Region::Device, length: 0x10, need: 24 }));

    // The first usable capability of a type wins over an unusable earlier one.
    let mut d = with(5, cap(1, 4, COMMON, 0x38, 0));
    d.caps[0] = cap(1, 4, 0x3ff0, 0x38, 0);
    d.ncaps = 6;
    assert!(open(&d).is_ok());
    // Offsets overflowing u32 arithmetic are caught as outside the BAR.
    let d = with(2, cap(3, 4, u32::MAX, u32::MAX, 0));
    assert!(matches!(open(&d).err(), Some(Error::RegionOutsideBar { .. })));
}
