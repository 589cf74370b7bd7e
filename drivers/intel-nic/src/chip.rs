//! The two register maps and their initialisation sequences up to the rings.
//!
//! * **82599** (ixgbe, 8086:10fb): the sequence of the 82599 datasheet §4.6.3 (general
//!   initialisation and reset), §4.6.4 (link set-up through AUTOC), §4.6.7 (receive
//!   initialisation) and §4.6.8 (transmit initialisation).
//! * **82576** (igb, 8086:10c9), as QEMU's `igb` device model implements it: the same
//!   shape with the 82576's registers (queue 0 at 0xC000/0xE000, RCTL/TCTL instead of
//!   RXCTRL/DMATXCTL, the extended interrupt registers at 0x1514..0x1700). QEMU does not
//!   model EECD auto-read or DMA-init-done, and after a software reset its link comes up
//!   only once PHY auto-negotiation is restarted (MDIC write of BMCR), 500 ms later.

/// Register offsets and bits, 82599 datasheet chapter 8.
pub mod i82599 {
    pub const CTRL: u32 = 0x0_0000;
    pub const STATUS: u32 = 0x0_0008;
    pub const EEC: u32 = 0x1_0010;
    pub const EICR: u32 = 0x0_0800;
    pub const EIAC: u32 = 0x0_0810;
    pub const EITR0: u32 = 0x0_0820;
    pub const EIMS: u32 = 0x0_0880;
    pub const EIMC: u32 = 0x0_0888;
    pub const GPIE: u32 = 0x0_0898;
    pub const IVAR0: u32 = 0x0_0900;
    pub const RDRXCTL: u32 = 0x0_2F00;
    pub const RXCTRL: u32 = 0x0_3000;
    pub const HLREG0: u32 = 0x0_4240;
    pub const AUTOC: u32 = 0x0_42A0;
    pub const LINKS: u32 = 0x0_42A4;
    pub const DMATXCTL: u32 = 0x0_4A80;
    pub const FCTRL: u32 = 0x0_5080;
    pub const RAL0: u32 = 0x0_A200;
    pub const RAH0: u32 = 0x0_A204;
    pub const RDBAL0: u32 = 0x0_1000;
    pub const RDBAH0: u32 = 0x0_1004;
    pub const RDLEN0: u32 = 0x0_1008;
    pub const RDH0: u32 = 0x0_1010;
    pub const SRRCTL0: u32 = 0x0_1014;
    pub const RDT0: u32 = 0x0_1018;
    pub const RXDCTL0: u32 = 0x0_1028;
    pub const QPRDC0: u32 = 0x0_1430;
    pub const TDBAL0: u32 = 0x0_6000;
    pub const TDBAH0: u32 = 0x0_6004;
    pub const TDLEN0: u32 = 0x0_6008;
    pub const TDH0: u32 = 0x0_6010;
    pub const TDT0: u32 = 0x0_6018;
    pub const TXDCTL0: u32 = 0x0_6028;
    pub const MPC0: u32 = 0x0_3FA0;
    pub const GPRC: u32 = 0x0_4074;
    pub const GPTC: u32 = 0x0_4080;

    pub const CTRL_GIO_DIS: u32 = 1 << 2;
    pub const CTRL_LRST: u32 = 1 << 3;
    pub const CTRL_RST: u32 = 1 << 26;
    pub const STATUS_GIO: u32 = 1 << 19;
    pub const EEC_ARD: u32 = 1 << 9;
    pub const RDRXCTL_CRCSTRIP: u32 = 1 << 1;
    pub const RDRXCTL_DMAIDONE: u32 = 1 << 3;
    pub const RXCTRL_RXEN: u32 = 1 << 0;
    pub const HLREG0_TXCRCEN: u32 = 1 << 0;
    pub const HLREG0_RXCRCSTRP: u32 = 1 << 1;
    pub const HLREG0_JUMBOEN: u32 = 1 << 2;
    pub const HLREG0_TXPADEN: u32 = 1 << 10;
    pub const AUTOC_LMS_MASK: u32 = 7 << 13;
    pub const AUTOC_LMS_10G_SERIAL: u32 = 3 << 13;
    pub const AUTOC_10G_PMA_PMD_MASK: u32 = 3 << 7;
    pub const AUTOC_AN_RESTART: u32 = 1 << 12;
    pub const LINKS_UP: u32 = 1 << 30;
    pub const DMATXCTL_TE: u32 = 1 << 0;
    pub const FCTRL_MPE: u32 = 1 << 8;
    pub const FCTRL_UPE: u32 = 1 << 9;
    pub const FCTRL_BAM: u32 = 1 << 10;
    pub const SRRCTL_BSIZEPACKET_MASK: u32 = 0x1F;
    pub const SRRCTL_DROP_EN: u32 = 1 << 28;
    pub const GPIE_MSIX_MODE: u32 = 1 << 4;
    pub const GPIE_EIAME: u32 = 1 << 30;
    pub const GPIE_PBA_SUPPORT: u32 = 1 << 31;
    /// EIMC: every cause but the reserved bit 31.
    pub const EIMC_ALL: u32 = 0x7FFF_FFFF;
}

/// Register offsets and bits of the 82576 (82576 datasheet chapter 8; QEMU `igb_regs.h`,
/// `e1000x_regs.h`).
pub mod i82576 {
    pub const CTRL: u32 = 0x0000;
    pub const STATUS: u32 = 0x0008;
    pub const MDIC: u32 = 0x0020;
    pub const IMC: u32 = 0x00D8;
    pub const RCTL: u32 = 0x0100;
    pub const TCTL: u32 = 0x0400;
    pub const GPIE: u32 = 0x1514;
    pub const EIMS: u32 = 0x1524;
    pub const EIMC: u32 = 0x1528;
    pub const EIAC: u32 = 0x152C;
    pub const EICR: u32 = 0x1580;
    pub const EITR0: u32 = 0x1680;
    pub const IVAR0: u32 = 0x1700;
    pub const GPRC: u32 = 0x4074;
    pub const GPTC: u32 = 0x4080;
    pub const RAL0: u32 = 0x5400;
    pub const RAH0: u32 = 0x5404;
    pub const RDBAL0: u32 = 0xC000;
    pub const RDBAH0: u32 = 0xC004;
    pub const RDLEN0: u32 = 0xC008;
    pub const SRRCTL0: u32 = 0xC00C;
    pub const RDH0: u32 = 0xC010;
    pub const RDT0: u32 = 0xC018;
    pub const RXDCTL0: u32 = 0xC028;
    pub const RQDPC0: u32 = 0xC030;
    pub const TDBAL0: u32 = 0xE000;
    pub const TDBAH0: u32 = 0xE004;
    pub const TDLEN0: u32 = 0xE008;
    pub const TDH0: u32 = 0xE010;
    pub const TDT0: u32 = 0xE018;
    pub const TXDCTL0: u32 = 0xE028;

    pub const CTRL_GIO_DIS: u32 = 1 << 2;
    pub const CTRL_LRST: u32 = 1 << 3;
    pub const CTRL_SLU: u32 = 1 << 6;
    pub const CTRL_RST: u32 = 1 << 26;
    pub const STATUS_LU: u32 = 1 << 1;
    pub const STATUS_GIO: u32 = 1 << 19;
    pub const MDIC_REG_SHIFT: u32 = 16;
    pub const MDIC_PHY_SHIFT: u32 = 21;
    pub const MDIC_OP_WRITE: u32 = 1 << 26;
    pub const MDIC_READY: u32 = 1 << 28;
    pub const MDIC_ERROR: u32 = 1 << 30;
    /// PHY register 0 (BMCR): auto-negotiation enable and restart, full duplex, 1000 Mb/s.
    pub const PHY_BMCR_AN_RESTART: u32 = 0x1000 | 0x0200 | 0x0100 | 0x0040;
    pub const RCTL_EN: u32 = 1 << 1;
    pub const RCTL_BAM: u32 = 1 << 15;
    pub const RCTL_SECRC: u32 = 1 << 26;
    pub const TCTL_EN: u32 = 1 << 1;
    pub const TCTL_PSP: u32 = 1 << 3;
    pub const TCTL_CT: u32 = 0xF << 4;
    pub const TCTL_COLD: u32 = 0x40 << 12;
    pub const SRRCTL_BSIZEPACKET_MASK: u32 = 0x7F;
    pub const SRRCTL_DROP_EN: u32 = 1 << 31;
    pub const GPIE_NSICR: u32 = 1 << 0;
    pub const GPIE_MSIX_MODE: u32 = 1 << 4;
    pub const GPIE_EIAME: u32 = 1 << 30;
    pub const GPIE_PBA: u32 = 1 << 31;
    pub const IMC_ALL: u32 = 0xFFFF_FFFF;
    pub const EIMC_ALL: u32 = 0xFFFF_FFFF;
}

/// Bits both chips share.
pub mod common {
    /// RXDCTL/TXDCTL queue enable.
    pub const QUEUE_ENABLE: u32 = 1 << 25;
    /// SRRCTL.DESCTYPE = 001b: advanced descriptors, one buffer.
    pub const SRRCTL_DESCTYPE_ADV_ONEBUF: u32 = 1 << 25;
    /// IVAR entry valid.
    pub const IVAR_VALID: u32 = 0x80;
    /// The extended-interrupt bit (MSI-X vector 0) both queues are routed to.
    pub const EIMS_VECTOR0: u32 = 1 << 0;
}

/// Which Intel controller a device is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chip {
    /// 82599 10 GbE (ixgbe).
    I82599,
    /// 82576 1 GbE (igb), as QEMU models it.
    I82576,
}

/// Where a chip keeps the registers the ring engine and the common steps use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Map {
    pub ctrl: u32,
    pub status: u32,
    pub ctrl_gio_dis: u32,
    pub ctrl_rst: u32,
    pub status_gio: u32,
    pub eicr: u32,
    pub eims: u32,
    pub eimc: u32,
    pub eimc_all: u32,
    pub eiac: u32,
    pub gpie: u32,
    pub gpie_msix: u32,
    pub ivar0: u32,
    pub eitr0: u32,
    pub ral0: u32,
    pub rah0: u32,
    pub rdbal: u32,
    pub rdbah: u32,
    pub rdlen: u32,
    pub srrctl: u32,
    pub srrctl_drop_en: u32,
    pub srrctl_bsize_mask: u32,
    pub rdh: u32,
    pub rdt: u32,
    pub rxdctl: u32,
    pub tdbal: u32,
    pub tdbah: u32,
    pub tdlen: u32,
    pub tdh: u32,
    pub tdt: u32,
    pub txdctl: u32,
    pub gprc: u32,
    pub gptc: u32,
    /// Clear-on-read counters of frames lost for want of a receive descriptor.
    pub missed: &'static [u32],
    /// Bytes of BAR 0 the driver touches.
    pub bar_len: u64,
}

impl Chip {
    /// The chip of a PCI vendor:device id, if the driver supports it.
    pub fn from_pci_id(vendor: u16, device: u16) -> Option<Chip> {
        match (vendor, device) {
            (0x8086, 0x10fb) => Some(Chip::I82599),
            (0x8086, 0x10c9) => Some(Chip::I82576),
            _ => None,
        }
    }

    /// `ixgbe` or `igb`.
    pub fn name(self) -> &'static str {
        match self {
            Chip::I82599 => "ixgbe",
            Chip::I82576 => "igb",
        }
    }

    /// Bytes of BAR 0 the driver needs mapped.
    pub fn bar_len(self) -> u64 {
        self.map().bar_len
    }

    pub(crate) fn map(self) -> &'static Map {
        match self {
            Chip::I82599 => &MAP_82599,
            Chip::I82576 => &MAP_82576,
        }
    }
}

static MAP_82599: Map = {
    use i82599::*;
    Map {
        ctrl: CTRL,
        status: STATUS,
        ctrl_gio_dis: CTRL_GIO_DIS,
        ctrl_rst: CTRL_RST | CTRL_LRST,
        status_gio: STATUS_GIO,
        eicr: EICR,
        eims: EIMS,
        eimc: EIMC,
        eimc_all: EIMC_ALL,
        eiac: EIAC,
        gpie: GPIE,
        gpie_msix: GPIE_MSIX_MODE | GPIE_EIAME | GPIE_PBA_SUPPORT,
        ivar0: IVAR0,
        eitr0: EITR0,
        ral0: RAL0,
        rah0: RAH0,
        rdbal: RDBAL0,
        rdbah: RDBAH0,
        rdlen: RDLEN0,
        srrctl: SRRCTL0,
        srrctl_drop_en: SRRCTL_DROP_EN,
        srrctl_bsize_mask: SRRCTL_BSIZEPACKET_MASK,
        rdh: RDH0,
        rdt: RDT0,
        rxdctl: RXDCTL0,
        tdbal: TDBAL0,
        tdbah: TDBAH0,
        tdlen: TDLEN0,
        tdh: TDH0,
        tdt: TDT0,
        txdctl: TXDCTL0,
        gprc: GPRC,
        gptc: GPTC,
        missed: &[MPC0, QPRDC0],
        bar_len: 0x2_0000,
    }
};

static MAP_82576: Map = {
    use i82576::*;
    Map {
        ctrl: CTRL,
        status: STATUS,
        ctrl_gio_dis: CTRL_GIO_DIS,
        ctrl_rst: CTRL_RST,
        status_gio: STATUS_GIO,
        eicr: EICR,
        eims: EIMS,
        eimc: EIMC,
        eimc_all: EIMC_ALL,
        eiac: EIAC,
        gpie: GPIE,
        gpie_msix: GPIE_MSIX_MODE | GPIE_EIAME | GPIE_PBA | GPIE_NSICR,
        ivar0: IVAR0,
        eitr0: EITR0,
        ral0: RAL0,
        rah0: RAH0,
        rdbal: RDBAL0,
        rdbah: RDBAH0,
        rdlen: RDLEN0,
        srrctl: SRRCTL0,
        srrctl_drop_en: SRRCTL_DROP_EN,
        srrctl_bsize_mask: SRRCTL_BSIZEPACKET_MASK,
        rdh: RDH0,
        rdt: RDT0,
        rxdctl: RXDCTL0,
        tdbal: TDBAL0,
        tdbah: TDBAH0,
        tdlen: TDLEN0,
        tdh: TDH0,
        tdt: TDT0,
        txdctl: TXDCTL0,
        gprc: GPRC,
        gptc: GPTC,
        // QEMU's igb counts no descriptor shortage in a clear-on-read register.
        missed: &[],
        bar_len: 0x1_0000,
    }
};
