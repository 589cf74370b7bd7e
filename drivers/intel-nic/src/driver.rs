//! Device initialisation and the batched receive/transmit paths.

use crate::chip::{common::*, i82576, i82599, Chip, Map};
use crate::error::Dir;
use crate::regs::Regs;
use crate::ring::*;
use crate::Error;
use core::sync::atomic::{fence, Ordering};
use frond_interface::net::{Batch, NicStats, Pkt, PktQueue, FRAME_MAX, PKT_DATA};
use frond_interface::RRef;

/// Descriptors per ring (the device holds at most one fewer buffers).
pub const RING_SIZE: usize = 256;
/// Receive buffer size programmed in SRRCTL.BSIZEPACKET, in KiB (the field's unit).
///
/// 2 KiB is 12 bytes more than a `Pkt`'s `data` (2036 bytes), the buffer the device
/// writes. The device never writes that far: long-packet reception stays off (82599:
/// HLREG0.JUMBOEN clear, so MAXFRS's 1518 bytes with CRC; 82576: RCTL.LPE clear), and the
/// CRC is stripped, so no received frame is longer than 1514 bytes (1518 with a VLAN tag).
pub const RX_BUF_KB: u32 = 2;
const _: () = assert!(FRAME_MAX + 4 <= PKT_DATA);

/// Register reads a polled wait makes before it gives up.
pub const POLL_BUDGET: u32 = 200_000;

/// Counters the device keeps (clear-on-read registers, accumulated by the driver).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// GPRC: good frames received.
    pub good_rx: u64,
    /// GPTC: good frames transmitted.
    pub good_tx: u64,
    /// Frames the device dropped for want of a receive descriptor (82599: MPC + QPRDC;
    /// always 0 on QEMU's 82576, which counts none).
    pub missed: u64,
}

/// A running Intel NIC: reset, rings set up, receive and transmit enabled, interrupts
/// masked. Dropping it masks interrupts, stops both queues and resets the device before
/// the rings and the buffers still posted are freed.
pub struct IntelNic<R: Regs> {
    r: R,
    chip: Chip,
    m: &'static Map,
    mac: [u8; 6],
    rx: Ring,
    tx: Ring,
    /// Inside a frame the device split over several descriptors (no EOP yet): its
    /// descriptors are dropped up to and including the one with EOP.
    rx_discarding: bool,
    stats: NicStats,
    dev: DeviceStats,
}

fn poll<R: Regs>(r: &R, offset: u32, mask: u32, want_set: bool) -> bool {
    for _ in 0..POLL_BUDGET {
        let set = r.read32(offset) & mask == mask;
        if set == want_set {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

impl<R: Regs> IntelNic<R> {
    /// Resets and initialises the device behind `r`. `msix`: the kernel enabled MSI-X
    /// entry 0, so both queues are routed to vector 0 (interrupts stay masked; see
    /// [`IntelNic::set_interrupts`]).
    ///
    /// On failure the device is left masked, with its queues disabled and reset (as far as
    /// it completes).
    pub fn new(mut r: R, chip: Chip, msix: bool) -> Result<Self, Error> {
        let rx = Ring::new(RING_SIZE)?;
        let tx = Ring::new(RING_SIZE)?;
        match init(&mut r, chip, &rx, &tx, msix) {
            Ok(mac) => Ok(Self {
                r,
                chip,
                m: chip.map(),
                mac,
                rx,
                tx,
                rx_discarding: false,
                stats: NicStats::default(),
                dev: DeviceStats::default(),
            }),
            Err(e) => {
                quiesce(&mut r, chip);
                Err(e)
            }
        }
    }

    pub fn chip(&self) -> Chip {
        self.chip
    }

    /// The MAC address of receive address 0 (from the EEPROM).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Buffers a ring holds at most.
    pub fn queue_size(&self) -> u16 {
        (RING_SIZE - 1) as u16
    }

    pub fn stats(&self) -> NicStats {
        self.stats
    }

    /// Counts an interrupt taken on the device's behalf.
    pub fn count_irq(&mut self) {
        self.stats.irqs += 1;
    }

    /// Counts a `wait` that blocked.
    pub fn count_sleep(&mut self) {
        self.stats.sleeps += 1;
    }

    /// Buffers the device holds: (receive, transmit).
    pub fn outstanding(&self) -> (usize, usize) {
        (self.rx.outstanding, self.tx.outstanding)
    }

    /// Whether the link is up (82599: LINKS.Link Up; 82576: STATUS.LU).
    pub fn link_up(&self) -> bool {
        match self.chip {
            Chip::I82599 => self.r.read32(i82599::LINKS) & i82599::LINKS_UP != 0,
            Chip::I82576 => self.r.read32(i82576::STATUS) & i82576::STATUS_LU != 0,
        }
    }

    /// Reads the device's clear-on-read counters and returns the totals since init.
    pub fn device_stats(&mut self) -> DeviceStats {
        self.dev.good_rx += self.r.read32(self.m.gprc) as u64;
        self.dev.good_tx += self.r.read32(self.m.gptc) as u64;
        for &reg in self.m.missed {
            self.dev.missed += self.r.read32(reg) as u64;
        }
        self.dev
    }

    /// Unmasks (`true`) or masks (`false`) the queues' interrupt (extended cause bit 0,
    /// MSI-X vector 0). Unmasking first clears a cause left from while it was masked.
    pub fn set_interrupts(&mut self, on: bool) {
        if on {
            self.r.write32(self.m.eicr, EIMS_VECTOR0);
            self.r.write32(self.m.eims, EIMS_VECTOR0);
        } else {
            self.r.write32(self.m.eimc, EIMS_VECTOR0);
        }
    }

    /// True if a receive or transmit descriptor the device holds is done (DD). Called
    /// after unmasking, it closes the race with one completed just before.
    pub fn has_work(&self) -> bool {
        fence(Ordering::SeqCst);
        let rx = self.rx.oldest().is_some_and(|o| self.rx.mem.read::<u32>(o + 8) & RX_DD != 0);
        let tx = self.tx.oldest().is_some_and(|o| self.tx.mem.read::<u32>(o + 12) & TX_DD != 0);
        rx || tx
    }

    /// Transmits, with the semantics of `Nic::tx`: first moves completed buffers into
    /// `b.done` (while it has room), then posts frames from the front of `b.pkts` while
    /// descriptors are free, and writes the tail register once. A frame of length 0 or
    /// longer than [`FRAME_MAX`] is dropped and returned in `b.done` (if it has room; else
    /// it stays, and so does everything behind it).
    pub fn tx(&mut self, mut b: Batch) -> Batch {
        while let Some(o) = self.tx.oldest() {
            if self.tx.mem.read::<u32>(o + 12) & TX_DD == 0 || b.done.is_full() {
                break;
            }
            fence(Ordering::Acquire);
            if let Some(p) = self.tx.pop() {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += p.len as u64;
                give(&mut b.done, p);
            }
        }

        while let Some(len) = front_len(&b.pkts) {
            if len == 0 || len > FRAME_MAX {
                if b.done.is_full() {
                    break;
                }
                let Some(p) = b.pkts.pop_front() else { break };
                self.stats.dropped += 1;
                give(&mut b.done, p);
                continue;
            }
            if !self.tx.has_room() {
                break;
            }
            let Some(mut p) = b.pkts.pop_front() else { break };
            let addr = data_addr(&mut p);
            let cmd = TXD_DTYP_DATA | TXD_DEXT | TXD_IFCS | TXD_RS | TXD_EOP | len as u32;
            let olinfo = (len as u32) << TXD_PAYLEN_SHIFT;
            self.tx.push(p, [addr, cmd as u64 | (olinfo as u64) << 32]);
        }
        if self.tx.unpublished > 0 {
            self.tx.unpublished = 0;
            // Descriptors are visible before the tail that hands them over.
            fence(Ordering::SeqCst);
            self.r.write32(self.m.tdt, self.tx.tail as u32);
            self.stats.notifies += 1;
        }
        b
    }

    /// Receives, with the semantics of `Nic::rx`: first moves received frames into
    /// `b.done` (while it has room) in arrival order, then posts buffers from `b.pkts`
    /// while descriptors are free, and writes the tail register once. A frame the device
    /// reports with length 0 or over [`FRAME_MAX`], or spread over several descriptors
    /// (no EOP), is dropped and its buffers go straight back to the device.
    pub fn rx(&mut self, mut b: Batch) -> Batch {
        while let Some(o) = self.rx.oldest() {
            let status = self.rx.mem.read::<u32>(o + 8);
            if status & RX_DD == 0 {
                break;
            }
            fence(Ordering::Acquire);
            let len = self.rx.mem.read::<u16>(o + 12) as usize;
            let eop = status & RX_EOP != 0;
            let bad = self.rx_discarding || !eop || len == 0 || len > FRAME_MAX;
            if !bad && b.done.is_full() {
                break;
            }
            let Some(mut p) = self.rx.pop() else { break };
            if bad {
                if !self.rx_discarding {
                    self.stats.dropped += 1;
                }
                self.rx_discarding = !eop;
                // A descriptor was just freed, so there is room to give it straight back.
                self.post_rx(p);
                continue;
            }
            p.len = len as u32;
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
            give(&mut b.done, p);
        }

        while self.rx.has_room() {
            let Some(p) = b.pkts.pop_front() else { break };
            self.post_rx(p);
        }
        if self.rx.unpublished > 0 {
            self.rx.unpublished = 0;
            fence(Ordering::SeqCst);
            self.r.write32(self.m.rdt, self.rx.tail as u32);
            self.stats.notifies += 1;
        }
        b
    }

    fn post_rx(&mut self, mut p: RRef<Pkt>) {
        let addr = data_addr(&mut p);
        // Header buffer address 0: no header split, and DD (its bit 0) reads clear.
        self.rx.push(p, [addr, 0]);
    }
}

impl<R: Regs> Drop for IntelNic<R> {
    fn drop(&mut self) {
        // Stop the device before its rings and buffers are freed; if the reset does not
        // complete there is nothing better to do than to go on (the kernel turns bus
        // mastering off when a driver domain dies).
        quiesce(&mut self.r, self.chip);
    }
}

/// The frame length of the first buffer in `q`.
fn front_len(q: &PktQueue) -> Option<usize> {
    q.iter().next().map(|p| p.len as usize)
}

/// Appends to a queue the caller checked has room.
fn give(q: &mut PktQueue, p: RRef<Pkt>) {
    let pushed = q.push_back(p);
    debug_assert!(pushed.is_ok(), "intel-nic: done queue unexpectedly full");
}

fn mask_all<R: Regs>(r: &mut R, chip: Chip) {
    let m = chip.map();
    if chip == Chip::I82576 {
        r.write32(i82576::IMC, i82576::IMC_ALL);
    }
    r.write32(m.eimc, m.eimc_all);
}

/// Master disable (wait for STATUS.GIO Master Enable to clear), then a software reset
/// (wait for CTRL.RST to self-clear).
fn disable_and_reset<R: Regs>(r: &mut R, chip: Chip) -> Result<(), Error> {
    let m = chip.map();
    let ctrl = r.read32(m.ctrl);
    r.write32(m.ctrl, ctrl | m.ctrl_gio_dis);
    if !poll(r, m.status, m.status_gio, false) {
        return Err(Error::MasterDisableTimeout);
    }
    let ctrl = r.read32(m.ctrl);
    r.write32(m.ctrl, ctrl | m.ctrl_rst);
    if !poll(r, m.ctrl, m.ctrl_rst, false) {
        return Err(Error::ResetTimeout);
    }
    Ok(())
}

/// Leaves a device quiet: interrupts masked, receive and both queues off, reset.
fn quiesce<R: Regs>(r: &mut R, chip: Chip) {
    let m = chip.map();
    mask_all(r, chip);
    match chip {
        Chip::I82599 => {
            let v = r.read32(i82599::RXCTRL);
            r.write32(i82599::RXCTRL, v & !i82599::RXCTRL_RXEN);
        }
        Chip::I82576 => r.write32(i82576::RCTL, 0),
    }
    r.write32(m.rxdctl, 0);
    r.write32(m.txdctl, 0);
    if disable_and_reset(r, chip).is_err() {
        // Master disable timed out: reset anyway (the datasheet's recovery).
        let ctrl = r.read32(m.ctrl);
        r.write32(m.ctrl, ctrl | m.ctrl_rst);
        let _ = poll(r, m.ctrl, m.ctrl_rst, false);
    }
}

fn phy_write<R: Regs>(r: &mut R, reg: u32, value: u32) -> Result<(), Error> {
    use i82576::*;
    r.write32(MDIC, (value & 0xFFFF) | reg << MDIC_REG_SHIFT | 1 << MDIC_PHY_SHIFT | MDIC_OP_WRITE);
    if !poll(r, MDIC, MDIC_READY, true) {
        return Err(Error::PhyTimeout);
    }
    if r.read32(MDIC) & MDIC_ERROR != 0 {
        return Err(Error::PhyError);
    }
    Ok(())
}

/// The initialisation sequence; returns the MAC address.
fn init<R: Regs>(r: &mut R, chip: Chip, rx: &Ring, tx: &Ring, msix: bool) -> Result<[u8; 6], Error> {
    let m = chip.map();
    // General initialisation (82599 §4.6.3): mask, master disable, reset, mask again.
    mask_all(r, chip);
    disable_and_reset(r, chip)?;
    mask_all(r, chip);

    match chip {
        Chip::I82599 => {
            use i82599::*;
            if !poll(r, EEC, EEC_ARD, true) {
                return Err(Error::EepromTimeout);
            }
            if !poll(r, RDRXCTL, RDRXCTL_DMAIDONE, true) {
                return Err(Error::DmaInitTimeout);
            }
            // Link (§4.6.4): 10 Gb/s serial link mode, XAUI PMA/PMD, restart
            // auto-negotiation. The link comes up on its own time; init does not wait.
            let autoc = (r.read32(AUTOC) & !(AUTOC_LMS_MASK | AUTOC_10G_PMA_PMD_MASK)) | AUTOC_LMS_10G_SERIAL;
            r.write32(AUTOC, autoc);
            r.write32(AUTOC, autoc | AUTOC_AN_RESTART);
        }
        Chip::I82576 => {
            use i82576::*;
            // Set link up, out of link reset, and restart PHY auto-negotiation (after a
            // software reset QEMU's link comes up only then).
            let ctrl = r.read32(CTRL);
            r.write32(CTRL, (ctrl | CTRL_SLU) & !CTRL_LRST);
            phy_write(r, 0, PHY_BMCR_AN_RESTART)?;
        }
    }

    // The MAC address the EEPROM loaded into receive address 0; keep it valid.
    let lo = r.read32(m.ral0);
    let hi = r.read32(m.rah0);
    let mac = [lo as u8, (lo >> 8) as u8, (lo >> 16) as u8, (lo >> 24) as u8, hi as u8, (hi >> 8) as u8];
    if hi & (1 << 31) == 0 || mac == [0; 6] {
        return Err(Error::NoMacAddress);
    }
    // Statistics are clear-on-read: start from zero.
    let _ = r.read32(m.gprc);
    let _ = r.read32(m.gptc);
    for &reg in m.missed {
        let _ = r.read32(reg);
    }

    // Receive (82599 §4.6.7): receive off while configuring; CRC strip; broadcast accept.
    match chip {
        Chip::I82599 => {
            use i82599::*;
            let v = r.read32(RXCTRL);
            r.write32(RXCTRL, v & !RXCTRL_RXEN);
            let hl = r.read32(HLREG0);
            r.write32(HLREG0, (hl | HLREG0_RXCRCSTRP | HLREG0_TXCRCEN | HLREG0_TXPADEN) & !HLREG0_JUMBOEN);
            let v = r.read32(RDRXCTL);
            r.write32(RDRXCTL, v | RDRXCTL_CRCSTRIP);
            let v = r.read32(FCTRL);
            r.write32(FCTRL, (v | FCTRL_BAM) & !(FCTRL_UPE | FCTRL_MPE));
        }
        Chip::I82576 => r.write32(i82576::RCTL, 0),
    }
    r.write32(m.srrctl, SRRCTL_DESCTYPE_ADV_ONEBUF | (RX_BUF_KB & m.srrctl_bsize_mask) | m.srrctl_drop_en);
    enable_queue(r, m.rxdctl, [m.rdbal, m.rdbah, m.rdlen, m.rdh, m.rdt], rx, Dir::Rx)?;
    match chip {
        Chip::I82599 => {
            let v = r.read32(i82599::RXCTRL);
            r.write32(i82599::RXCTRL, v | i82599::RXCTRL_RXEN);
        }
        Chip::I82576 => {
            use i82576::*;
            r.write32(RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC);
        }
    }

    // Transmit (82599 §4.6.8): the transmit DMA first, then the queue.
    match chip {
        Chip::I82599 => {
            let v = r.read32(i82599::DMATXCTL);
            r.write32(i82599::DMATXCTL, v | i82599::DMATXCTL_TE);
        }
        Chip::I82576 => {
            use i82576::*;
            r.write32(TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);
        }
    }
    enable_queue(r, m.txdctl, [m.tdbal, m.tdbah, m.tdlen, m.tdh, m.tdt], tx, Dir::Tx)?;

    if msix {
        // MSI-X mode: receive and transmit queue 0 to vector 0, its cause cleared
        // automatically when the message is sent; throttling off.
        r.write32(m.gpie, m.gpie_msix);
        r.write32(m.ivar0, IVAR_VALID | IVAR_VALID << 8);
        r.write32(m.eiac, EIMS_VECTOR0);
        r.write32(m.eitr0, 0);
    }
    Ok(mac)
}

/// Queue set-up: disabled while its ring registers are written, then ENABLE, polled
/// until it reads back set (the tail must not move before).
fn enable_queue<R: Regs>(r: &mut R, ctl: u32, [bal, bah, len, head, tail]: [u32; 5], ring: &Ring, dir: Dir) -> Result<(), Error> {
    r.write32(ctl, 0);
    let base = ring.mem.addr();
    r.write32(bal, base as u32);
    r.write32(bah, (base >> 32) as u32);
    r.write32(len, (ring.n * DESC_LEN) as u32);
    r.write32(head, 0);
    r.write32(tail, 0);
    r.write32(ctl, QUEUE_ENABLE);
    if !poll(r, ctl, QUEUE_ENABLE, true) {
        return Err(Error::QueueEnableTimeout(dir));
    }
    Ok(())
}
