//! Why the driver refused (or failed to bring up) a device.

use core::fmt;

/// A receive or transmit queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Rx,
    Tx,
}

/// A reason the driver could not drive the device. Each displays as one sentence naming
/// the register or numbers involved. Every polled wait ends in one of these when its
/// budget runs out; none hangs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// BAR 0 is missing, an I/O BAR, or smaller than the registers the driver uses.
    BadBar { addr: u64, len: u64, need: u64 },
    /// STATUS.GIO Master Enable stayed set after CTRL.GIO Master Disable (the device
    /// still has DMA requests pending).
    MasterDisableTimeout,
    /// CTRL.RST (and LRST) never cleared after a software reset.
    ResetTimeout,
    /// EEC.ARD (EEPROM auto-read done) never set after the reset.
    EepromTimeout,
    /// RDRXCTL.DMAIDONE (DMA initialisation done) never set after the reset.
    DmaInitTimeout,
    /// A queue's RXDCTL/TXDCTL.ENABLE never read back set.
    QueueEnableTimeout(Dir),
    /// MDIC.READY never set for a PHY register write.
    PhyTimeout,
    /// The device set MDIC.ERROR for a PHY register write.
    PhyError,
    /// RAH0.AV is clear or the address is zero: the device has no MAC address.
    NoMacAddress,
    /// Ring memory could not be allocated.
    OutOfMemory,
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dir::Rx => "receive",
            Dir::Tx => "transmit",
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::BadBar { addr, len, need } => write!(
                f,
                "intel-nic: BAR 0 ({len:#x} bytes at {addr:#x}) is not a memory BAR of at least {need:#x} bytes"
            ),
            Error::MasterDisableTimeout => {
                f.write_str("intel-nic: STATUS.GIO Master Enable stayed set after master disable (DMA still pending)")
            }
            Error::ResetTimeout => f.write_str("intel-nic: CTRL.RST did not self-clear: the device reset is stuck"),
            Error::EepromTimeout => f.write_str("intel-nic: EEC.ARD (EEPROM auto-read done) never set after reset"),
            Error::DmaInitTimeout => f.write_str("intel-nic: RDRXCTL.DMAIDONE never set after reset"),
            Error::QueueEnableTimeout(d) => write!(f, "intel-nic: the {d} queue's ENABLE bit never read back set"),
            Error::PhyTimeout => f.write_str("intel-nic: MDIC.READY never set for a PHY write"),
            Error::PhyError => f.write_str("intel-nic: the PHY refused a register write (MDIC.ERROR)"),
            Error::NoMacAddress => f.write_str("intel-nic: receive address 0 is not valid (RAH0.AV clear or zero MAC)"),
            Error::OutOfMemory => f.write_str("intel-nic: out of memory for the descriptor rings"),
        }
    }
}
