//! # frond-virtio-blk — the virtio-blk driver core
//!
//! Drives a virtio-blk device as specified by virtio 1.x over the modern PCI transport
//! (`frond-virtio`: transport, split virtqueue, initialisation steps) with **one split
//! virtqueue** of up to 256 entries. Features: `VIRTIO_F_VERSION_1` is required;
//! `VIRTIO_BLK_F_RO`, `BLK_SIZE` (only to check that the device's logical block size
//! divides 1024 — 512 or 1024 in practice), `FLUSH`, `SEG_MAX` and `SIZE_MAX` are accepted
//! when offered; nothing else (no event index, no multiqueue, no indirect descriptors).
//!
//! [`VirtioBlk`] implements the `Block` interface's semantics (`frond_interface::blk`):
//!
//! * **Validation first**: `BlkReqs::validate` against the lent buffer and the device's
//!   size; a write to a read-only device is `ReadOnly` without touching the device.
//! * **One virtio request per `BlkReq`** (split only if the device's `SIZE_MAX` is
//!   smaller than the request): three descriptors — the 16-byte header `{type, reserved,
//!   sector}` (device-readable), the data (device-writable for reads, readable for
//!   writes), the status byte (device-writable). **sector = block × (1024 / 512)**.
//! * **Zero copy**: the data descriptor points into the caller's buffer at the request's
//!   offset; the device DMAs to and from the lent buffer itself. Headers and status bytes
//!   live in driver-owned DMA memory (the driver heap is identity-mapped).
//! * **Batching**: every request of a call is put in flight at once, as many as the queue
//!   holds (3 descriptors each); more are posted as earlier ones complete; one
//!   notification per batch posted; completions are reaped in any order.
//! * **Waiting**: a call polls the used ring without blocking ([`VirtioBlk::has_work`]);
//!   between polls it calls the caller's `wait` function, which blocks on the MSI-X
//!   vector or sleeps briefly (the driver domain's business) and returns [`Waited`]. A
//!   call returns only when the device holds none of its buffers. (The API is a callback
//!   rather than a "pending request" guard object on purpose: a guard can be leaked with
//!   `mem::forget`, and the device would then write into a buffer whose borrow ended.)
//! * **Errors**: status `IOERR` → `Io`, `UNSUPP` → `Unsupported` (the call's other
//!   requests still complete before it returns); `flush` sends `VIRTIO_BLK_T_FLUSH` when
//!   `FLUSH` was negotiated and is otherwise a no-op — a device without `FLUSH` is
//!   write-through, so every completed write is already durable.
//! * **Device misbehaviour** ([`Fault`]): a used index more entries ahead than requests
//!   in flight, a used id that heads no request in flight (out of range, never posted, or
//!   completed already), a used length longer than the device-writable buffers (or, for a
//!   successful read, shorter than data + status), a status byte other than 0/1/2, a
//!   device in `DEVICE_NEEDS_RESET` (or no longer `DRIVER_OK`, checked whenever a wait
//!   brings no completion), or a `wait` that gives up. None of these panics or
//!   releases a request twice: the call fails with `Device` (its unfinished requests count
//!   in `errors`), and the driver **resets the device** — which then holds none of the
//!   caller's buffers — **and initialises it again** with fresh rings, so the next call
//!   works. If the reset itself does not complete, the driver is [`VirtioBlk::wedged`]:
//!   it frees nothing the device might still write and fails every call; the domain
//!   panics so the kernel turns the device's bus mastering off.
//! * **Statistics** (`BlkStats`): `reads`/`writes` count `BlkReq`s completed successfully
//!   (`read_blocks`/`written_blocks` their blocks), `flushes` successful flushes, `errors`
//!   `BlkReq`s that failed on the device or were cut short by a fault, `kicks`
//!   notifications, `irqs` waits ended by an interrupt.
//!
//! May depend on: `frond-virtio`, `frond-interface` (block request, error and statistics
//! types), `alloc`. `#![forbid(unsafe_code)]`: MMIO and DMA memory are `frond-virtio`'s.
//!
//! ## Invariants
//! * A descriptor chain is released once, when its used entry is valid; a request slot
//!   (header + status byte) belongs to at most one chain in flight.
//! * When a call returns, the device holds none of the caller's buffer: every request
//!   completed, or the device was reset (or, wedged, the domain is about to die).
//! * The status byte is read only after the used entry naming its request, behind the
//!   acquire fence of the used index; before posting, it holds 0xff (not a status), so a
//!   completion that did not write it is a fault.
//!
//! ## Mutants
//! `mutants/run.sh` applies each patch in `mutants/` to a copy of the tree and runs this
//! crate's tests; every mutant must be caught (a test fails):
//!
//! | mutant | bug | caught by |
//! | --- | --- | --- |
//! | `01-sector-is-block` | sector = block, not block × 2 (the bug of a public RedLeaf driver) | `sector_is_block_times_two` |
//! | `02-read-data-not-writable` | read data descriptor without `VIRTQ_DESC_F_WRITE` | `read_round_trip_zero_copy` |
//! | `03-no-kick` | requests posted, device never notified | `write_then_read_back` |
//! | `04-status-before-used` | completion taken from the status byte, ahead of the used ring | `status_byte_is_not_a_completion` |
//! | `05-release-wrong-chain` | a completion frees the oldest request's chain instead of its own | `out_of_order_completion` |
//! | `06-avail-ring-wrap` | available ring slot computed modulo size + 1 | `ring_wraps_many_times` |
//! | `07-no-used-id-check` | a used id is trusted without checking it heads a request in flight | `duplicate_completion_is_a_fault` |
//! | `08-ioerr-ignored` | status `IOERR` treated as success | `ioerr_and_unsupp_map_to_errors` |
//! | `09-no-reset-after-fault` | the device is not reset after misbehaving | `bad_used_id_is_a_fault_and_the_next_call_works` |
//! | `10-write-ro-device` | writes to a read-only device are sent anyway | `read_only_device_refuses_writes_untouched` |

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod driver;

use core::fmt;
pub use driver::VirtioBlk;
pub use frond_virtio::{BarProblem, Error, PciTransport, Region, Transport, VIRTIO_F_VERSION_1};

/// Feature bit: `size_max` holds the largest data segment.
pub const VIRTIO_BLK_F_SIZE_MAX: u64 = 1 << 1;
/// Feature bit: `seg_max` holds the most data segments per request.
pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
/// Feature bit: the device is read-only.
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;
/// Feature bit: `blk_size` holds the logical block size.
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
/// Feature bit: the device has a write cache and takes `VIRTIO_BLK_T_FLUSH`.
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
/// Features the driver accepts when the device offers them.
pub const DRIVER_FEATURES: u64 = VIRTIO_F_VERSION_1
    | VIRTIO_BLK_F_SIZE_MAX
    | VIRTIO_BLK_F_SEG_MAX
    | VIRTIO_BLK_F_RO
    | VIRTIO_BLK_F_BLK_SIZE
    | VIRTIO_BLK_F_FLUSH;

/// The request queue.
pub const REQUEST_QUEUE: u16 = 0;
/// virtio-blk addresses 512-byte sectors whatever the device's block size.
pub const SECTOR_SIZE: u64 = 512;
/// Sectors per `Block` block.
pub const SECTORS_PER_BLOCK: u64 = frond_interface::blk::BLOCK_SIZE as u64 / SECTOR_SIZE;
/// Bytes of the device configuration the driver reads (`capacity` through `blk_size`).
pub const DEVICE_CFG_LEN: u32 = 24;

/// Device configuration offsets (virtio 1.x §5.2.4).
pub mod cfg {
    /// u64: capacity in 512-byte sectors.
    pub const CAPACITY: usize = 0;
    /// u32: largest data segment (with `SIZE_MAX`).
    pub const SIZE_MAX: usize = 8;
    /// u32: most data segments per request (with `SEG_MAX`).
    pub const SEG_MAX: usize = 12;
    /// u32: logical block size (with `BLK_SIZE`).
    pub const BLK_SIZE: usize = 20;
}

/// Request types and status values (virtio 1.x §5.2.6).
pub mod req {
    pub const T_IN: u32 = 0;
    pub const T_OUT: u32 = 1;
    pub const T_FLUSH: u32 = 4;
    pub const S_OK: u8 = 0;
    pub const S_IOERR: u8 = 1;
    pub const S_UNSUPP: u8 = 2;
}

/// What a call's `wait` function did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// Woken by the device's interrupt (counted in `irqs`).
    Interrupt,
    /// Slept or timed out without an interrupt; the driver polls again.
    Nothing,
    /// The call's deadline passed: the driver treats the device as hung.
    GiveUp,
}

/// Device misbehaviour that made the driver reset the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The used index is more entries ahead of the driver than requests in flight.
    UsedIndex { used: u16, last: u16, in_flight: u16 },
    /// A used entry names a descriptor that heads no request in flight.
    UnknownId { id: u32 },
    /// A used length the request cannot have (`max`: its device-writable bytes).
    Length { id: u32, len: u32, max: u32 },
    /// A status byte other than OK, IOERR or UNSUPP (0xff: not written).
    Status { id: u32, status: u8 },
    /// The device set `DEVICE_NEEDS_RESET` (or dropped `DRIVER_OK`: it stopped by itself).
    NeedsReset { status: u8 },
    /// The call's wait gave up with requests in flight.
    Timeout,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::UsedIndex { used, last, in_flight } => write!(
                f,
                "used index {used} is {} entries past {last} with {in_flight} requests in flight",
                used.wrapping_sub(last)
            ),
            Fault::UnknownId { id } => write!(f, "used entry names descriptor {id}, which heads no request in flight"),
            Fault::Length { id, len, max } => {
                write!(f, "used length {len} for descriptor {id} (request has {max} device-writable bytes)")
            }
            Fault::Status { id, status } => write!(f, "status byte {status:#x} for descriptor {id}"),
            Fault::NeedsReset { status } => write!(f, "device needs a reset (status {status:#x})"),
            Fault::Timeout => f.write_str("requests did not complete in time"),
        }
    }
}
