//! The 82576 (igb) register map and init sequence against a recording stand-in. The
//! 82576 path is verified in QEMU (`tests/tests/net.rs`, `igb_*`); this only pins the
//! registers and values QEMU's `igb` needs, so a typo shows up on the host first. The
//! stand-in answers as QEMU does after a software reset: reset and master disable done at
//! once, MDIC ready, ENABLE bits read back as written, the MAC in RAL0/RAH0 with AV.

use frond_intel_nic::{Chip, IntelNic, Regs};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

#[derive(Default)]
struct State {
    regs: HashMap<u32, u32>,
    writes: Vec<(u32, u32)>,
}

#[derive(Clone, Default)]
struct Recorder(Rc<RefCell<State>>);

impl Regs for Recorder {
    fn read32(&self, off: u32) -> u32 {
        let v = self.0.borrow().regs.get(&off).copied().unwrap_or(0);
        match off {
            0x0000 => v & !(1 << 26), // CTRL.RST self-clears
            0x0008 => 1 << 1,         // STATUS: link up, GIO master enable clear
            0x0020 => v | 1 << 28,    // MDIC ready
            0x5400 => 0x0012_5452,    // RAL0
            0x5404 => 0x8000_5634,    // RAH0 (AV)
            _ => v,
        }
    }
    fn write32(&mut self, off: u32, v: u32) {
        let mut s = self.0.borrow_mut();
        s.writes.push((off, v));
        s.regs.insert(off, v);
    }
}

fn last(w: &[(u32, u32)], off: u32) -> u32 {
    w.iter().rev().find(|x| x.0 == off).map(|x| x.1).unwrap_or_else(|| panic!("{off:#x} never written"))
}

fn at(w: &[(u32, u32)], off: u32, f: impl Fn(u32) -> bool) -> usize {
    w.iter().position(|&(o, v)| o == off && f(v)).unwrap_or_else(|| panic!("no matching write of {off:#x}"))
}

#[test]
fn igb_init_writes_the_82576_registers_qemu_uses() {
    let h = rref::host::HostHeap::install();
    let d = h.fresh_domain();
    h.set_current(d);
    let rec = Recorder::default();
    let mut drv = IntelNic::new(rec.clone(), Chip::I82576, true).expect("init");
    assert_eq!(drv.mac(), [0x52, 0x54, 0x12, 0x00, 0x34, 0x56]);
    assert!(drv.link_up(), "STATUS.LU");
    drv.set_interrupts(true);
    let w = rec.0.borrow().writes.clone();
    // Mask (IMC and EIMC), master disable, reset, mask again.
    let imc = at(&w, 0x00D8, |v| v == u32::MAX);
    let gio = at(&w, 0x0000, |v| v & 1 << 2 != 0);
    let rst = at(&w, 0x0000, |v| v & 1 << 26 != 0);
    assert!(imc < gio && gio < rst);
    assert!(w[rst + 1..].iter().any(|&(o, v)| o == 0x1528 && v == u32::MAX), "EIMC after the reset");
    // Link: SLU set, LRST clear, PHY BMCR auto-negotiation restart through MDIC.
    let ctrl = last(&w, 0x0000);
    assert_eq!(ctrl & (1 << 6 | 1 << 3), 1 << 6);
    assert_eq!(last(&w, 0x0020), 0x1340 | 1 << 21 | 1 << 26, "MDIC: PHY 1, register 0, write");
    // Receive: SRRCTL advanced one buffer, 2 KiB, DROP_EN (bit 31); ring; enable; RCTL.
    assert_eq!(last(&w, 0xC00C), 1 << 25 | 2 | 1 << 31);
    assert_eq!(last(&w, 0xC008), 256 * 16);
    let rxq = at(&w, 0xC028, |v| v & 1 << 25 != 0);
    let rctl = at(&w, 0x0100, |v| v & 1 << 1 != 0);
    assert!(rxq < rctl);
    assert_eq!(last(&w, 0x0100), 1 << 1 | 1 << 15 | 1 << 26, "RCTL: EN, BAM, SECRC");
    // Transmit: TCTL.EN before the queue.
    let tctl = at(&w, 0x0400, |v| v & 1 << 1 != 0);
    let txq = at(&w, 0xE028, |v| v & 1 << 25 != 0);
    assert!(tctl < txq);
    assert_eq!(last(&w, 0xE008), 256 * 16);
    // MSI-X: GPIE mode bits, both queues to vector 0, auto-clear, then unmask.
    assert_eq!(last(&w, 0x1514), 1 | 1 << 4 | 1 << 30 | 1 << 31);
    assert_eq!(last(&w, 0x1700), 0x8080);
    assert_eq!(last(&w, 0x152C), 1);
    assert_eq!(last(&w, 0x1524), 1, "EIMS vector 0 unmasked");
    // Every register the driver wrote lies in the 82576's BAR 0 (64 KiB used).
    assert!(w.iter().all(|&(o, _)| o < 0x1_0000 && o % 4 == 0));
}
