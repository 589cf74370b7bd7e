//! Why a driver refused (or could not set up) a device.

use crate::transport::Region;
use core::fmt;

/// What is wrong with the BAR a virtio capability points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarProblem {
    /// The BAR index is 6 or more.
    NoSuchBar,
    /// The BAR has no address or no length (not assigned).
    Unassigned,
    /// The BAR is an I/O-port BAR; modern virtio regions are memory.
    IoBar,
}

/// A reason a driver could not (or would not) drive the device. Each displays as one
/// sentence naming the numbers involved; drivers prefix it with the device type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The device has no virtio capability for this region.
    MissingRegion(Region),
    /// The region's capability names a BAR that cannot hold it.
    BadBar { region: Region, bar: u8, problem: BarProblem },
    /// The region extends past the end of its BAR.
    RegionOutsideBar { region: Region, bar: u8, offset: u32, length: u32, bar_len: u64 },
    /// The region is shorter than the registers the driver uses in it.
    RegionTooSmall { region: Region, length: u32, need: u32 },
    /// A queue's notification address lies outside the notify region (or is misaligned).
    NotifyOutsideRegion { queue: u16, offset: u64, length: u32 },
    /// The transport cannot notify a queue with this index.
    UnsupportedQueue(u16),
    /// After writing 0 to `device_status`, it never read back as 0.
    ResetTimeout,
    /// The device does not offer `VIRTIO_F_VERSION_1` (a legacy-only device).
    NoVersion1 { offered: u64 },
    /// The device cleared `FEATURES_OK`: it does not accept the driver's feature subset.
    FeaturesRejected { accepted: u64 },
    /// The device has fewer queues than the driver needs.
    TooFewQueues { have: u16, need: u16 },
    /// The device reports queue size 0 for a queue the driver needs.
    QueueUnavailable(u16),
    /// The device did not keep an MSI-X vector the driver wrote (`queue` None: config).
    MsixRefused { queue: Option<u16>, wrote: u16, read: u16 },
    /// Ring memory could not be allocated.
    OutOfMemory,
    /// The device set `DEVICE_NEEDS_RESET` or `FAILED` when the driver finished init.
    DeviceError { status: u8 },
    /// A device configuration field holds a value the driver cannot work with.
    Unsupported { field: &'static str, value: u64 },
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Region::Common => "common configuration",
            Region::Notify => "notify",
            Region::Isr => "ISR",
            Region::Device => "device configuration",
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::MissingRegion(r) => write!(f, "the device has no {r} capability"),
            Error::BadBar { region, bar, problem } => {
                let why = match problem {
                    BarProblem::NoSuchBar => "does not exist",
                    BarProblem::Unassigned => "is not assigned (zero address or length)",
                    BarProblem::IoBar => "is an I/O BAR, not memory",
                };
                write!(f, "the {region} region is in BAR {bar}, which {why}")
            }
            Error::RegionOutsideBar { region, bar, offset, length, bar_len } => write!(
                f,
                "the {region} region ({length:#x} bytes at offset {offset:#x}) extends past the end of BAR {bar} ({bar_len:#x} bytes)"
            ),
            Error::RegionTooSmall { region, length, need } => {
                write!(f, "the {region} region is {length} bytes, the driver needs {need}")
            }
            Error::NotifyOutsideRegion { queue, offset, length } => write!(
                f,
                "queue {queue}'s notify address (offset {offset:#x}) is outside the {length:#x}-byte notify region or misaligned"
            ),
            Error::UnsupportedQueue(q) => write!(f, "the transport cannot notify queue {q}"),
            Error::ResetTimeout => f.write_str("the device did not complete its reset"),
            Error::NoVersion1 { offered } => write!(
                f,
                "the device does not offer VIRTIO_F_VERSION_1 (features {offered:#x}); legacy devices are not supported"
            ),
            Error::FeaturesRejected { accepted } => {
                write!(f, "the device refused FEATURES_OK for features {accepted:#x}")
            }
            Error::TooFewQueues { have, need } => {
                write!(f, "the device has {have} queues, the driver needs {need}")
            }
            Error::QueueUnavailable(q) => write!(f, "queue {q} is unavailable (size 0)"),
            Error::MsixRefused { queue: Some(q), wrote, read } => write!(
                f,
                "the device refused MSI-X vector {wrote:#x} for queue {q} (reads back {read:#x})"
            ),
            Error::MsixRefused { queue: None, wrote, read } => write!(
                f,
                "the device refused MSI-X vector {wrote:#x} for configuration changes (reads back {read:#x})"
            ),
            Error::OutOfMemory => f.write_str("out of memory for the virtqueues"),
            Error::DeviceError { status } => {
                write!(f, "the device reports an error after init (status {status:#x})")
            }
            Error::Unsupported { field, value } => {
                write!(f, "the device's {field} ({value}) is not supported")
            }
        }
    }
}
