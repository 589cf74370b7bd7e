//! A register-level model of the Intel 82599 10 GbE controller for host tests, written
//! from the 82599 datasheet independently of the driver's own constants. It implements
//! the driver crate's `Regs` (BAR 0) and does descriptor DMA into host memory, where a
//! "physical address" is a pointer's address.
//!
//! What it implements (datasheet sections):
//! * §4.6.3 general initialisation and reset: CTRL.RST/LRST self-clear after a number of
//!   CTRL reads (`Knobs::reset_reads`, `u32::MAX`: stuck); CTRL.GIO Master Disable clears
//!   STATUS.GIO Master Enable after `master_disable_reads` STATUS reads; after a reset
//!   EEC.ARD sets after `eeprom_reads` EEC reads and RDRXCTL.DMAIDONE after
//!   `dma_init_reads` RDRXCTL reads, and RAL0/RAH0 hold the EEPROM's MAC address (AV set).
//! * §4.6.4 link: AUTOC.AN_RESTART (self-clearing) takes the link down and LINKS.Link Up
//!   sets after `link_reads` LINKS reads; `set_link` pulls the cable.
//! * §4.6.7 receive: RXCTRL.RXEN, HLREG0.RXCRCSTRP with RDRXCTL.CRCSTRIP (the CRC is
//!   stripped only if both are set; they must agree), FCTRL.BAM/UPE/MPE with the RAL0/RAH0
//!   unicast filter, SRRCTL.BSIZEPACKET (1 KiB units) / DESCTYPE / DROP_EN, the ring
//!   registers, RXDCTL.ENABLE that reads back set only after `enable_reads` RXDCTL reads.
//! * §4.6.8 transmit: DMATXCTL.TE, the ring registers, TXDCTL.ENABLE (as RXDCTL),
//!   HLREG0.TXCRCEN/TXPADEN.
//! * §7.1.6 / §7.2.3 advanced descriptors: receive buffers filled from RDH, frames longer
//!   than a buffer spread over several descriptors (EOP on the last only), write-back of
//!   DD/EOP/length; transmit data descriptors from TDH to TDT (DEXT, DTYP, EOP, IFCS,
//!   RS, PAYLEN checked), DD written back when RS is set.
//! * §7.3 interrupts: EICR (read-to-clear and write-1-to-clear), EICS, EIMS/EIMC, EIAC
//!   auto-clear in MSI-X mode (GPIE), IVAR0 routing of queue 0's causes; an interrupt is
//!   counted when an unmasked cause is raised.
//! * §8.2.3.23 statistics, clear-on-read: GPRC, GPTC, GORC/GOTC (64-bit; reading the high
//!   half clears), MPC0, QPRDC0, ROC. A frame that finds no free descriptor is dropped and
//!   counted in QPRDC0 if SRRCTL.DROP_EN is set, else in MPC0 (the model has no packet
//!   buffer to hold it).
//!
//! It refuses, and records in `violations`, what the datasheet forbids: any write during
//! a reset or before EEC.ARD and RDRXCTL.DMAIDONE are set after one; a reset while
//! STATUS.GIO Master Enable is still set; RXDCTL/TXDCTL.ENABLE before the ring registers
//! (and SRRCTL) are programmed, or TXDCTL.ENABLE before DMATXCTL.TE; a tail write before
//! ENABLE read back set; RXCTRL.RXEN before a receive queue is enabled, or with
//! disagreeing CRC-strip bits; receive configuration changed while RXEN is set; ring
//! registers changed while their queue is enabled; writes to read-only or unmodelled
//! registers; DMA outside the buffers the test declared (`allow`) — that DMA is not done.

#![allow(dead_code)]

use frond_intel_nic::Regs;
use std::sync::{Arc, Mutex, MutexGuard};

pub mod reg {
    pub const CTRL: u32 = 0x00000;
    pub const STATUS: u32 = 0x00008;
    pub const EICR: u32 = 0x00800;
    pub const EICS: u32 = 0x00808;
    pub const EIAC: u32 = 0x00810;
    pub const EITR0: u32 = 0x00820;
    pub const EIMS: u32 = 0x00880;
    pub const EIMC: u32 = 0x00888;
    pub const GPIE: u32 = 0x00898;
    pub const IVAR0: u32 = 0x00900;
    pub const RDBAL: u32 = 0x01000;
    pub const RDBAH: u32 = 0x01004;
    pub const RDLEN: u32 = 0x01008;
    pub const RDH: u32 = 0x01010;
    pub const SRRCTL: u32 = 0x01014;
    pub const RDT: u32 = 0x01018;
    pub const RXDCTL: u32 = 0x01028;
    pub const QPRDC: u32 = 0x01430;
    /// SRRCTL[0]'s 82598-compatible alias.
    pub const SRRCTL_ALIAS: u32 = 0x02100;
    pub const RDRXCTL: u32 = 0x02F00;
    pub const RXCTRL: u32 = 0x03000;
    pub const MPC: u32 = 0x03FA0;
    pub const GPRC: u32 = 0x04074;
    pub const GPTC: u32 = 0x04080;
    pub const GORCL: u32 = 0x04088;
    pub const GORCH: u32 = 0x0408C;
    pub const GOTCL: u32 = 0x04090;
    pub const GOTCH: u32 = 0x04094;
    pub const ROC: u32 = 0x040AC;
    pub const HLREG0: u32 = 0x04240;
    pub const AUTOC: u32 = 0x042A0;
    pub const LINKS: u32 = 0x042A4;
    pub const DMATXCTL: u32 = 0x04A80;
    pub const FCTRL: u32 = 0x05080;
    pub const TDBAL: u32 = 0x06000;
    pub const TDBAH: u32 = 0x06004;
    pub const TDLEN: u32 = 0x06008;
    pub const TDH: u32 = 0x06010;
    pub const TDT: u32 = 0x06018;
    pub const TXDCTL: u32 = 0x06028;
    pub const RAL0: u32 = 0x0A200;
    pub const RAH0: u32 = 0x0A204;
    pub const EEC: u32 = 0x10010;

    /// Every register the model implements, with its datasheet name.
    pub const ALL: &[(u32, &str)] = &[
        (CTRL, "CTRL"), (STATUS, "STATUS"), (EICR, "EICR"), (EICS, "EICS"), (EIAC, "EIAC"),
        (EITR0, "EITR0"), (EIMS, "EIMS"), (EIMC, "EIMC"), (GPIE, "GPIE"), (IVAR0, "IVAR0"),
        (RDBAL, "RDBAL0"), (RDBAH, "RDBAH0"), (RDLEN, "RDLEN0"), (RDH, "RDH0"), (SRRCTL, "SRRCTL0"),
        (RDT, "RDT0"), (RXDCTL, "RXDCTL0"), (QPRDC, "QPRDC0"), (SRRCTL_ALIAS, "SRRCTL0 (alias)"),
        (RDRXCTL, "RDRXCTL"), (RXCTRL, "RXCTRL"), (MPC, "MPC0"), (GPRC, "GPRC"), (GPTC, "GPTC"),
        (GORCL, "GORCL"), (GORCH, "GORCH"), (GOTCL, "GOTCL"), (GOTCH, "GOTCH"), (ROC, "ROC"),
        (HLREG0, "HLREG0"), (AUTOC, "AUTOC"), (LINKS, "LINKS"), (DMATXCTL, "DMATXCTL"),
        (FCTRL, "FCTRL"), (TDBAL, "TDBAL0"), (TDBAH, "TDBAH0"), (TDLEN, "TDLEN0"), (TDH, "TDH0"),
        (TDT, "TDT0"), (TXDCTL, "TXDCTL0"), (RAL0, "RAL0"), (RAH0, "RAH0"), (EEC, "EEC"),
    ];

    pub fn name(off: u32) -> String {
        ALL.iter().find(|r| r.0 == off).map_or_else(|| format!("{off:#07x}"), |r| r.1.to_string())
    }
}

pub mod bit {
    pub const CTRL_GIO_DIS: u32 = 1 << 2;
    pub const CTRL_LRST: u32 = 1 << 3;
    pub const CTRL_RST: u32 = 1 << 26;
    pub const STATUS_GIO: u32 = 1 << 19;
    pub const EEC_PRES: u32 = 1 << 8;
    pub const EEC_ARD: u32 = 1 << 9;
    pub const RDRXCTL_CRCSTRIP: u32 = 1 << 1;
    pub const RDRXCTL_DMAIDONE: u32 = 1 << 3;
    pub const RXEN: u32 = 1 << 0;
    pub const TXCRCEN: u32 = 1 << 0;
    pub const RXCRCSTRP: u32 = 1 << 1;
    pub const JUMBOEN: u32 = 1 << 2;
    pub const TXPADEN: u32 = 1 << 10;
    pub const AN_RESTART: u32 = 1 << 12;
    pub const LINKS_UP: u32 = 1 << 30;
    pub const LINKS_SPEED_10G: u32 = 3 << 28;
    pub const TE: u32 = 1 << 0;
    pub const MPE: u32 = 1 << 8;
    pub const UPE: u32 = 1 << 9;
    pub const BAM: u32 = 1 << 10;
    pub const RAH_AV: u32 = 1 << 31;
    pub const ENABLE: u32 = 1 << 25;
    pub const BSIZEPACKET: u32 = 0x1F;
    pub const DESCTYPE_MASK: u32 = 7 << 25;
    pub const DESCTYPE_ADV_ONEBUF: u32 = 1 << 25;
    pub const DROP_EN: u32 = 1 << 28;
    pub const GPIE_MSIX: u32 = 1 << 4;
    pub const IVAR_VALID: u32 = 0x80;
    pub const RX_DD: u32 = 1 << 0;
    pub const RX_EOP: u32 = 1 << 1;
    pub const TXD_EOP: u32 = 1 << 24;
    pub const TXD_IFCS: u32 = 1 << 25;
    pub const TXD_RS: u32 = 1 << 27;
    pub const TXD_DEXT: u32 = 1 << 29;
    pub const TX_DD: u32 = 1 << 0;
}

use bit::*;
use reg::*;

/// HLREG0 at reset: TXCRCEN, RXCRCSTRP and TXPADEN set (the bits the model implements).
pub const HLREG0_RESET: u32 = TXCRCEN | RXCRCSTRP | TXPADEN;
/// SRRCTL at reset: 2 KiB packet buffers, 256-byte header buffers, legacy descriptors.
pub const SRRCTL_RESET: u32 = 0x0000_0402;
/// Largest frame without jumbo frames (MAXFRS default), CRC included.
pub const MAX_FRAME_WITH_CRC: usize = 1518;

/// Device behaviour a test can choose. Counts are register reads before the event;
/// `u32::MAX` means never.
#[derive(Clone, Debug)]
pub struct Knobs {
    pub mac: [u8; 6],
    pub master_disable_reads: u32,
    pub reset_reads: u32,
    pub eeprom_reads: u32,
    pub dma_init_reads: u32,
    pub enable_reads: u32,
    pub link_reads: u32,
    /// Transmit descriptors are not processed on a tail write (`complete_tx` does it).
    pub hold_tx: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            mac: [0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c],
            master_disable_reads: 2,
            reset_reads: 3,
            eeprom_reads: 2,
            dma_init_reads: 2,
            enable_reads: 2,
            link_reads: 3,
            hold_tx: false,
        }
    }
}

/// What became of a frame offered to the receive side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RxOutcome {
    /// Written to these descriptors (indices), in order.
    Delivered(Vec<usize>),
    LinkDown,
    RxDisabled,
    /// Not for us (address filters).
    Filtered,
    /// Longer than the largest frame (counted in ROC).
    Oversize,
    /// The queue is not enabled (counted in MPC0).
    QueueDisabled,
    /// Not enough free descriptors (counted in QPRDC0 or MPC0).
    NoDescriptor,
}

/// A countdown of register reads: `None` idle, `Some(n)`: the event happens on the read
/// that finds `n == 0`.
type Countdown = Option<u32>;

fn tick(c: &mut Countdown) -> bool {
    match c {
        Some(0) => {
            *c = None;
            true
        }
        Some(n) => {
            if *n != u32::MAX {
                *n -= 1;
            }
            false
        }
        None => false,
    }
}

#[derive(Clone, Debug, Default)]
pub struct Queue {
    pub bal: u32,
    pub bah: u32,
    pub len: u32,
    pub head: u32,
    pub tail: u32,
    /// RXDCTL/TXDCTL as written (ENABLE as requested).
    pub ctl: u32,
    /// The device runs the queue.
    pub enabled: bool,
    /// ENABLE has read back set since it was requested.
    pub observed: bool,
    enable_left: Countdown,
}

impl Queue {
    pub fn base(&self) -> u64 {
        (self.bah as u64) << 32 | self.bal as u64
    }
    pub fn size(&self) -> u32 {
        self.len / 16
    }
    /// Descriptors between head and tail (0 if either is outside the ring).
    pub fn avail(&self) -> u32 {
        let n = self.size();
        if n == 0 || self.head >= n || self.tail >= n {
            return 0;
        }
        (self.tail + n - self.head) % n
    }
}

#[derive(Debug, Default)]
pub struct Dev {
    pub knobs: Knobs,
    pub ctrl: u32,
    pub master_enabled: bool,
    gio_left: Countdown,
    reset_left: Countdown,
    pub ard: bool,
    ard_left: Countdown,
    pub dmaidone: bool,
    dma_left: Countdown,
    pub link: bool,
    pub cable: bool,
    link_left: Countdown,
    pub eicr: u32,
    pub eims: u32,
    pub eiac: u32,
    pub gpie: u32,
    pub ivar0: u32,
    pub eitr0: u32,
    pub rdrxctl: u32,
    pub rxctrl: u32,
    pub hlreg0: u32,
    pub autoc: u32,
    pub dmatxctl: u32,
    pub fctrl: u32,
    pub ral0: u32,
    pub rah0: u32,
    pub srrctl: u32,
    pub rx: Queue,
    pub tx: Queue,
    pub gprc: u64,
    pub gptc: u64,
    pub gorc: u64,
    pub gotc: u64,
    pub mpc: u64,
    pub qprdc: u64,
    pub roc: u64,
    tx_frame: Vec<u8>,
    tx_first: Option<(u32, bool)>,
    /// Frames put on the wire, in order (without CRC; padded if short).
    pub sent: Vec<Vec<u8>>,
    /// Frames sent without a CRC (IFCS or TXCRCEN clear): a receiver drops them.
    pub tx_no_fcs: u64,
    /// Frames shorter than 60 bytes with padding off.
    pub tx_runts: u64,
    pub irqs: u64,
    pub resets: u64,
    pub violations: Vec<String>,
    /// Every register write, in order.
    pub writes: Vec<(u32, u32)>,
    pub rdt_writes: u64,
    pub tdt_writes: u64,
    /// Memory the device may DMA packet data to or from: (address, length).
    pub windows: Vec<(u64, u64)>,
}

/// A handle on the device, shared by the driver (as its `Regs`) and the test.
#[derive(Clone)]
pub struct Model(Arc<Mutex<Dev>>);

impl Regs for Model {
    fn read32(&self, offset: u32) -> u32 {
        self.dev().read(offset)
    }
    fn write32(&mut self, offset: u32, value: u32) {
        self.dev().write(offset, value)
    }
}

impl Model {
    /// A device just powered on: EEPROM read, DMA initialised, link down, queues off.
    pub fn new(knobs: Knobs) -> Self {
        let mut d = Dev { knobs, cable: true, ..Dev::default() };
        d.reset();
        d.ard = true;
        d.ard_left = None;
        d.dmaidone = true;
        d.dma_left = None;
        d.resets = 0;
        Model(Arc::new(Mutex::new(d)))
    }

    pub fn dev(&self) -> MutexGuard<'_, Dev> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn violations(&self) -> Vec<String> {
        self.dev().violations.clone()
    }
    pub fn sent(&self) -> Vec<Vec<u8>> {
        self.dev().sent.clone()
    }
    pub fn irqs(&self) -> u64 {
        self.dev().irqs
    }

    /// Declares `[addr, addr + len)` memory the device may DMA packet data to and from.
    pub fn allow(&self, addr: u64, len: u64) {
        self.dev().windows.push((addr, len));
    }

    /// A frame arrives from the wire (without CRC; the model adds one).
    pub fn receive(&self, frame: &[u8]) -> RxOutcome {
        self.dev().receive(frame)
    }

    /// Plugs or pulls the cable. Plugging it back brings the link up at once (the
    /// partner is already negotiated) and sends what the transmit ring holds.
    pub fn set_link(&self, up: bool) {
        let mut d = self.dev();
        d.cable = up;
        d.link = up;
        if up {
            d.process_tx();
        }
    }

    /// Processes the transmit ring now (with `hold_tx`).
    pub fn complete_tx(&self) {
        let mut d = self.dev();
        let hold = std::mem::replace(&mut d.knobs.hold_tx, false);
        d.process_tx();
        d.knobs.hold_tx = hold;
    }

    /// A buggy device: consumes the descriptor at RDH writing back `len` and `status`
    /// without writing any data. Returns its index, or None if none is free.
    pub fn inject_writeback(&self, len: u16, status: u32) -> Option<usize> {
        let mut d = self.dev();
        if !d.rx.enabled || d.rx.avail() == 0 {
            return None;
        }
        let i = d.rx.head;
        d.rx_writeback(i, len, status);
        let n = d.rx.size();
        d.rx.head = (i + 1) % n;
        d.raise(0);
        Some(i as usize)
    }

    /// A buggy device: writes DD back into receive (`tx == false`) or transmit
    /// descriptor `i` wherever head and tail are.
    pub fn writeback_at(&self, tx: bool, i: u32, len: u16) {
        let mut d = self.dev();
        if tx {
            let q = d.tx.clone();
            if i < q.size() {
                // SAFETY: inside the ring the driver programmed and keeps while enabled.
                unsafe { wr32(q.base() + i as u64 * 16 + 12, TX_DD) };
            }
        } else if i < d.rx.size() {
            d.rx_writeback(i, len, RX_DD | RX_EOP);
        }
    }

    /// A buggy device: its head register now reads `v` (maybe past the ring).
    pub fn set_head(&self, tx: bool, v: u32) {
        let mut d = self.dev();
        if tx {
            d.tx.head = v;
        } else {
            d.rx.head = v;
        }
    }
}

// Host memory accessors. Callers guarantee the address lies in memory the driver handed
// to the device and keeps alive while the queue is enabled (ring memory), or in a window
// the test declared (packet buffers).
unsafe fn rd32(a: u64) -> u32 {
    // SAFETY: caller's promise; descriptor fields are naturally aligned.
    unsafe { (a as usize as *const u32).read_volatile() }
}
unsafe fn rd64(a: u64) -> u64 {
    // SAFETY: as above.
    unsafe { (a as usize as *const u64).read_volatile() }
}
unsafe fn wr16(a: u64, v: u16) {
    // SAFETY: as above.
    unsafe { (a as usize as *mut u16).write_volatile(v) }
}
unsafe fn wr32(a: u64, v: u32) {
    // SAFETY: as above.
    unsafe { (a as usize as *mut u32).write_volatile(v) }
}

/// IEEE 802.3 CRC-32 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

impl Dev {
    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// Everything back to its reset value (the EEPROM's MAC address reloaded).
    fn reset(&mut self) {
        let k = &self.knobs;
        let mac = k.mac;
        self.ctrl = 0;
        self.master_enabled = true;
        self.gio_left = None;
        self.reset_left = None;
        self.ard = false;
        self.ard_left = Some(k.eeprom_reads);
        self.dmaidone = false;
        self.dma_left = Some(k.dma_init_reads);
        self.link = false;
        self.link_left = None;
        self.eicr = 0;
        self.eims = 0;
        self.eiac = 0;
        self.gpie = 0;
        self.ivar0 = 0;
        self.eitr0 = 0;
        self.rdrxctl = 0;
        self.rxctrl = 0;
        self.hlreg0 = HLREG0_RESET;
        self.autoc = 0;
        self.dmatxctl = 0;
        self.fctrl = 0;
        self.ral0 = u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]);
        self.rah0 = u16::from_le_bytes([mac[4], mac[5]]) as u32 | RAH_AV;
        self.srrctl = SRRCTL_RESET;
        self.rx = Queue::default();
        self.tx = Queue::default();
        self.gprc = 0;
        self.gptc = 0;
        self.gorc = 0;
        self.gotc = 0;
        self.mpc = 0;
        self.qprdc = 0;
        self.roc = 0;
        self.tx_frame.clear();
        self.tx_first = None;
        self.resets += 1;
    }

    fn dma_ok(&self, addr: u64, len: u64) -> bool {
        self.windows.iter().any(|&(a, l)| addr >= a && addr.checked_add(len).is_some_and(|e| e <= a + l))
    }

    fn read(&mut self, off: u32) -> u32 {
        match off {
            CTRL => {
                if self.reset_left.is_some() {
                    if tick(&mut self.reset_left) {
                        self.reset();
                    } else {
                        return self.ctrl;
                    }
                }
                self.ctrl
            }
            STATUS => {
                if tick(&mut self.gio_left) {
                    self.master_enabled = false;
                }
                if self.master_enabled { STATUS_GIO } else { 0 }
            }
            EEC => {
                if tick(&mut self.ard_left) {
                    self.ard = true;
                }
                EEC_PRES | if self.ard { EEC_ARD } else { 0 }
            }
            RDRXCTL => {
                if tick(&mut self.dma_left) {
                    self.dmaidone = true;
                }
                self.rdrxctl | if self.dmaidone { RDRXCTL_DMAIDONE } else { 0 }
            }
            LINKS => {
                if tick(&mut self.link_left) && self.cable {
                    self.link = true;
                    self.process_tx();
                }
                if self.link { LINKS_UP | LINKS_SPEED_10G } else { 0 }
            }
            RXDCTL | TXDCTL => {
                let q = if off == RXDCTL { &mut self.rx } else { &mut self.tx };
                if tick(&mut q.enable_left) {
                    q.enabled = true;
                }
                if q.enabled {
                    q.observed = true;
                }
                (q.ctl & !ENABLE) | if q.enabled { ENABLE } else { 0 }
            }
            EICR => std::mem::take(&mut self.eicr),
            EIMS => self.eims,
            EIAC => self.eiac,
            EITR0 => self.eitr0,
            GPIE => self.gpie,
            IVAR0 => self.ivar0,
            RXCTRL => self.rxctrl,
            HLREG0 => self.hlreg0,
            AUTOC => self.autoc,
            DMATXCTL => self.dmatxctl,
            FCTRL => self.fctrl,
            RAL0 => self.ral0,
            RAH0 => self.rah0,
            SRRCTL | SRRCTL_ALIAS => self.srrctl,
            RDBAL => self.rx.bal,
            RDBAH => self.rx.bah,
            RDLEN => self.rx.len,
            RDH => self.rx.head,
            RDT => self.rx.tail,
            TDBAL => self.tx.bal,
            TDBAH => self.tx.bah,
            TDLEN => self.tx.len,
            TDH => self.tx.head,
            TDT => self.tx.tail,
            GPRC => std::mem::take(&mut self.gprc) as u32,
            GPTC => std::mem::take(&mut self.gptc) as u32,
            MPC => std::mem::take(&mut self.mpc) as u32,
            QPRDC => std::mem::take(&mut self.qprdc) as u32,
            ROC => std::mem::take(&mut self.roc) as u32,
            GORCL => self.gorc as u32,
            GORCH => (std::mem::take(&mut self.gorc) >> 32) as u32,
            GOTCL => self.gotc as u32,
            GOTCH => (std::mem::take(&mut self.gotc) >> 32) as u32,
            _ => {
                self.violation(format!("read of unmodelled register {off:#07x}"));
                0
            }
        }
    }

    fn write(&mut self, off: u32, v: u32) {
        self.writes.push((off, v));
        let name = reg::name(off);
        if self.reset_left.is_some() {
            self.violation(format!("{name} written ({v:#x}) during a reset (CTRL.RST not yet clear)"));
            return;
        }
        // Until the EEPROM is read and DMA is initialised after a reset, only the
        // interrupt mask and CTRL may be touched.
        if !matches!(off, CTRL | EIMC | EICR) {
            if !self.ard {
                self.violation(format!("{name} written ({v:#x}) before EEC.ARD (EEPROM auto-read done) was set"));
                return;
            }
            if !self.dmaidone {
                self.violation(format!("{name} written ({v:#x}) before RDRXCTL.DMAIDONE was set"));
                return;
            }
        }
        let rxen = self.rxctrl & RXEN != 0;
        match off {
            CTRL => {
                if v & (CTRL_RST | CTRL_LRST) != 0 {
                    if self.master_enabled {
                        self.violation("software reset while STATUS.GIO Master Enable is still set (master disable not completed)".into());
                    }
                    self.ctrl = v;
                    self.reset_left = Some(self.knobs.reset_reads);
                    return;
                }
                if v & CTRL_GIO_DIS != 0 && self.ctrl & CTRL_GIO_DIS == 0 && self.master_enabled {
                    self.gio_left = Some(self.knobs.master_disable_reads);
                }
                if v & CTRL_GIO_DIS == 0 {
                    self.gio_left = None;
                    self.master_enabled = true;
                }
                self.ctrl = v;
            }
            EIMC => self.eims &= !v,
            EIMS => {
                let before = self.eims;
                self.eims |= v;
                let newly = self.eicr & self.eims & !before;
                if newly != 0 {
                    self.fire(newly);
                }
            }
            EICR => self.eicr &= !v,
            EICS => self.cause(v),
            EIAC => self.eiac = v,
            EITR0 => self.eitr0 = v,
            GPIE => self.gpie = v,
            IVAR0 => self.ivar0 = v,
            RDRXCTL => {
                if rxen {
                    self.violation(format!("RDRXCTL changed ({v:#x}) while RXCTRL.RXEN is set"));
                }
                self.rdrxctl = v & RDRXCTL_CRCSTRIP;
            }
            RXCTRL => {
                if v & RXEN != 0 && !rxen {
                    if !self.rx.enabled {
                        self.violation("RXCTRL.RXEN set before a receive queue is enabled".into());
                    }
                    let hl = self.hlreg0 & RXCRCSTRP != 0;
                    let rd = self.rdrxctl & RDRXCTL_CRCSTRIP != 0;
                    if hl != rd {
                        self.violation(format!("RXCTRL.RXEN set with HLREG0.RXCRCSTRP={} but RDRXCTL.CRCSTRIP={} (they must agree)", hl as u8, rd as u8));
                    }
                }
                self.rxctrl = v & RXEN;
            }
            HLREG0 => {
                if rxen && (v ^ self.hlreg0) & (RXCRCSTRP | JUMBOEN) != 0 {
                    self.violation(format!("HLREG0 receive bits changed ({v:#x}) while RXCTRL.RXEN is set"));
                }
                self.hlreg0 = v;
            }
            AUTOC => {
                self.autoc = v & !AN_RESTART;
                if v & AN_RESTART != 0 {
                    self.link = false;
                    self.link_left = Some(self.knobs.link_reads);
                }
            }
            DMATXCTL => self.dmatxctl = v,
            FCTRL => {
                if rxen {
                    self.violation(format!("FCTRL changed ({v:#x}) while RXCTRL.RXEN is set"));
                }
                self.fctrl = v;
            }
            RAL0 => self.ral0 = v,
            RAH0 => self.rah0 = v,
            SRRCTL | SRRCTL_ALIAS => {
                if rxen || self.rx.enabled {
                    self.violation(format!("SRRCTL changed ({v:#x}) while receive or its queue is enabled"));
                }
                self.srrctl = v;
            }
            RDBAL | RDBAH | RDLEN | RDH | TDBAL | TDBAH | TDLEN | TDH => {
                let tx = off >= TDBAL;
                let q = if tx { &mut self.tx } else { &mut self.rx };
                if q.enabled || q.enable_left.is_some() {
                    self.violation(format!("{name} written ({v:#x}) while its queue is enabled"));
                    return;
                }
                match off & 0xFF {
                    0x00 => q.bal = v & !0x7F,
                    0x04 => q.bah = v,
                    0x08 => q.len = v & 0x000F_FF80,
                    _ => q.head = v & 0xFFFF,
                }
            }
            RDT | TDT => {
                let tx = off == TDT;
                if tx {
                    self.tdt_writes += 1;
                } else {
                    self.rdt_writes += 1;
                }
                let q = if tx { &self.tx } else { &self.rx };
                let (observed, n) = (q.observed, q.size());
                if !observed && v != 0 {
                    self.violation(format!("{name} written ({v}) before {} ENABLE read back set", if tx { "TXDCTL" } else { "RXDCTL" }));
                }
                if n != 0 && v >= n {
                    self.violation(format!("{name} written ({v}) past the end of the {n}-descriptor ring"));
                }
                let q = if tx { &mut self.tx } else { &mut self.rx };
                q.tail = v & 0xFFFF;
                if tx {
                    self.process_tx();
                }
            }
            RXDCTL | TXDCTL => self.write_dctl(off == TXDCTL, v),
            STATUS | EEC | LINKS | GPRC | GPTC | MPC | QPRDC | ROC | GORCL | GORCH | GOTCL | GOTCH => {
                self.violation(format!("write to read-only register {name} ({v:#x})"))
            }
            _ => self.violation(format!("write to unmodelled register {off:#07x} ({v:#x})")),
        }
    }

    fn write_dctl(&mut self, tx: bool, v: u32) {
        let which = if tx { "TXDCTL" } else { "RXDCTL" };
        let q = if tx { &self.tx } else { &self.rx };
        if v & ENABLE == 0 {
            let q = if tx { &mut self.tx } else { &mut self.rx };
            *q = Queue { ctl: v, enabled: false, observed: false, enable_left: None, ..q.clone() };
            return;
        }
        if q.enabled || q.enable_left.is_some() {
            let q = if tx { &mut self.tx } else { &mut self.rx };
            q.ctl = v;
            return;
        }
        let mut missing = Vec::new();
        if q.base() == 0 {
            missing.push("base address (DBAL/DBAH) not set".to_string());
        }
        if q.len == 0 {
            missing.push("length (DLEN) not set".to_string());
        }
        if q.head >= q.size().max(1) || q.tail >= q.size().max(1) {
            missing.push(format!("head {} / tail {} outside the ring", q.head, q.tail));
        }
        if tx && self.dmatxctl & TE == 0 {
            missing.push("DMATXCTL.TE not set".to_string());
        }
        if !tx {
            if self.srrctl & DESCTYPE_MASK != DESCTYPE_ADV_ONEBUF {
                missing.push(format!("SRRCTL.DESCTYPE {} is not advanced one-buffer (001b)", (self.srrctl >> 25) & 7));
            }
            if self.srrctl & BSIZEPACKET == 0 {
                missing.push("SRRCTL.BSIZEPACKET is 0".to_string());
            }
        }
        if !missing.is_empty() {
            self.violation(format!("{which}.ENABLE set before the queue was set up: {}; refused", missing.join(", ")));
            let q = if tx { &mut self.tx } else { &mut self.rx };
            q.ctl = v & !ENABLE;
            return;
        }
        let reads = self.knobs.enable_reads;
        let q = if tx { &mut self.tx } else { &mut self.rx };
        q.ctl = v;
        q.enable_left = Some(reads);
    }

    /// Raises extended interrupt causes `bits`.
    fn cause(&mut self, bits: u32) {
        let before = self.eicr;
        self.eicr |= bits;
        let newly = bits & !before & self.eims;
        if newly != 0 {
            self.fire(newly);
        }
    }

    fn fire(&mut self, bits: u32) {
        self.irqs += 1;
        if self.gpie & GPIE_MSIX != 0 {
            self.eicr &= !(bits & self.eiac);
        }
    }

    /// Queue 0's receive (`entry` 0) or transmit (1) cause, routed through IVAR0.
    fn raise(&mut self, entry: u32) {
        let e = (self.ivar0 >> (8 * entry)) & 0xFF;
        if e & IVAR_VALID != 0 {
            self.cause(1 << (e & 0x1F));
        }
    }

    fn rx_writeback(&mut self, i: u32, len: u16, status: u32) {
        let d = self.rx.base() + i as u64 * 16;
        // SAFETY: `i` is inside the ring the driver programmed and keeps while enabled.
        unsafe {
            wr32(d, 0);
            wr32(d + 4, 0);
            wr32(d + 8, status);
            wr16(d + 12, len);
            wr16(d + 14, 0);
        }
    }

    fn receive(&mut self, frame: &[u8]) -> RxOutcome {
        if !self.link {
            return RxOutcome::LinkDown;
        }
        if self.rxctrl & RXEN == 0 {
            return RxOutcome::RxDisabled;
        }
        let dst = &frame[..6.min(frame.len())];
        let accept = if dst.iter().all(|&b| b == 0xFF) {
            self.fctrl & BAM != 0
        } else if dst.first().is_some_and(|b| b & 1 != 0) {
            self.fctrl & MPE != 0
        } else {
            let mut ours = self.ral0.to_le_bytes().to_vec();
            ours.extend_from_slice(&self.rah0.to_le_bytes()[..2]);
            self.fctrl & UPE != 0 || (self.rah0 & RAH_AV != 0 && dst == &ours[..])
        };
        if !accept {
            return RxOutcome::Filtered;
        }
        let wire = frame.len() + 4;
        if wire > MAX_FRAME_WITH_CRC && self.hlreg0 & JUMBOEN == 0 {
            self.roc += 1;
            return RxOutcome::Oversize;
        }
        if !self.rx.enabled {
            self.mpc += 1;
            return RxOutcome::QueueDisabled;
        }
        let strip = self.hlreg0 & RXCRCSTRP != 0 && self.rdrxctl & RDRXCTL_CRCSTRIP != 0;
        let mut data = frame.to_vec();
        if !strip {
            data.extend_from_slice(&crc32(frame).to_le_bytes());
        }
        let bufsize = ((self.srrctl & BSIZEPACKET) * 1024) as usize;
        let need = data.len().div_ceil(bufsize.max(1)) as u32;
        if bufsize == 0 || self.rx.avail() < need {
            if self.srrctl & DROP_EN != 0 {
                self.qprdc += 1;
            } else {
                self.mpc += 1;
            }
            return RxOutcome::NoDescriptor;
        }
        self.gprc += 1;
        self.gorc += wire as u64;
        let n = self.rx.size();
        let mut used = Vec::new();
        let chunks: Vec<&[u8]> = data.chunks(bufsize).collect();
        for (k, chunk) in chunks.iter().enumerate() {
            let i = self.rx.head;
            let d = self.rx.base() + i as u64 * 16;
            // SAFETY: `i` is inside the enabled ring.
            let addr = unsafe { rd64(d) };
            if self.dma_ok(addr, chunk.len() as u64) {
                // SAFETY: the test declared this memory a packet buffer it keeps alive.
                unsafe { std::ptr::copy_nonoverlapping(chunk.as_ptr(), addr as usize as *mut u8, chunk.len()) };
            } else {
                self.violation(format!(
                    "receive descriptor {i}: DMA write of {} bytes to {addr:#x}, outside the declared buffers (not done)",
                    chunk.len()
                ));
            }
            let last = k + 1 == chunks.len();
            self.rx_writeback(i, chunk.len() as u16, RX_DD | if last { RX_EOP } else { 0 });
            used.push(i as usize);
            self.rx.head = (i + 1) % n;
        }
        self.raise(0);
        RxOutcome::Delivered(used)
    }

    fn process_tx(&mut self) {
        if self.knobs.hold_tx || !self.link || self.dmatxctl & TE == 0 || !self.tx.enabled {
            return;
        }
        let n = self.tx.size();
        let mut reported = false;
        while self.tx.avail() > 0 {
            let i = self.tx.head;
            let d = self.tx.base() + i as u64 * 16;
            // SAFETY: `i` is inside the enabled ring.
            let (addr, cmd, olinfo) = unsafe { (rd64(d), rd32(d + 8), rd32(d + 12)) };
            if cmd & TXD_DEXT == 0 || (cmd >> 20) & 0xF != 0x3 {
                self.violation(format!("transmit descriptor {i}: not an advanced data descriptor (cmd_type_len {cmd:#010x})"));
            } else {
                let len = (cmd & 0xFFFF) as usize;
                if self.tx_first.is_none() {
                    self.tx_first = Some((olinfo >> 14, cmd & TXD_IFCS != 0));
                }
                if self.dma_ok(addr, len as u64) {
                    let mut buf = vec![0u8; len];
                    // SAFETY: the test declared this memory a packet buffer it keeps alive.
                    unsafe { std::ptr::copy_nonoverlapping(addr as usize as *const u8, buf.as_mut_ptr(), len) };
                    self.tx_frame.extend_from_slice(&buf);
                } else {
                    self.violation(format!("transmit descriptor {i}: DMA read of {len} bytes from {addr:#x}, outside the declared buffers"));
                    self.tx_frame.extend(std::iter::repeat_n(0, len));
                }
                if cmd & TXD_EOP != 0 {
                    self.finish_tx_frame();
                }
            }
            if cmd & TXD_RS != 0 {
                // SAFETY: as above.
                unsafe { wr32(d + 12, TX_DD) };
                reported = true;
            }
            self.tx.head = (i + 1) % n;
        }
        if reported {
            self.raise(1);
        }
    }

    fn finish_tx_frame(&mut self) {
        let mut frame = std::mem::take(&mut self.tx_frame);
        let (paylen, ifcs) = self.tx_first.take().unwrap_or((0, false));
        if paylen as usize != frame.len() {
            self.violation(format!("transmit PAYLEN {paylen} differs from the frame's {} bytes", frame.len()));
        }
        if frame.len() > MAX_FRAME_WITH_CRC - 4 && self.hlreg0 & JUMBOEN == 0 {
            self.violation(format!("transmit frame of {} bytes is longer than the largest frame", frame.len()));
            return;
        }
        if frame.len() < 60 {
            if self.hlreg0 & TXPADEN == 0 {
                self.tx_runts += 1;
                return;
            }
            frame.resize(60, 0);
        }
        if !ifcs || self.hlreg0 & TXCRCEN == 0 {
            self.tx_no_fcs += 1;
            return;
        }
        self.gptc += 1;
        self.gotc += frame.len() as u64 + 4;
        self.sent.push(frame);
    }
}
