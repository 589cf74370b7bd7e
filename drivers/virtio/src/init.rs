//! Device initialisation (virtio 1.x §3.1.1) as steps a driver composes:
//!
//! 1. [`negotiate`]: reset, `ACKNOWLEDGE`, `DRIVER`, read the offered features, require
//!    `VERSION_1`, write the accepted subset, `FEATURES_OK` and check the device kept it;
//! 2. device-specific setup: [`num_queues`], [`no_config_vector`], [`setup_queue`] per
//!    queue, device configuration reads through [`read_config`];
//! 3. [`driver_ok`].
//!
//! If a step fails the driver calls [`fail`] (sets `FAILED`). [`reset`] also stops a
//! running device before its rings are freed.

use crate::status::*;
use crate::transport::{Region, Transport};
use crate::{Error, Queue, AVAIL_F_NO_INTERRUPT, NO_VECTOR, QUEUE_SIZE_MAX, VIRTIO_F_VERSION_1};

/// Common configuration register offsets (virtio 1.x §4.1.4.3).
pub mod common {
    pub const DEVICE_FEATURE_SELECT: usize = 0;
    pub const DEVICE_FEATURE: usize = 4;
    pub const DRIVER_FEATURE_SELECT: usize = 8;
    pub const DRIVER_FEATURE: usize = 12;
    pub const CONFIG_MSIX_VECTOR: usize = 16;
    pub const NUM_QUEUES: usize = 18;
    pub const DEVICE_STATUS: usize = 20;
    pub const CONFIG_GENERATION: usize = 21;
    pub const QUEUE_SELECT: usize = 22;
    pub const QUEUE_SIZE: usize = 24;
    pub const QUEUE_MSIX_VECTOR: usize = 26;
    pub const QUEUE_ENABLE: usize = 28;
    pub const QUEUE_NOTIFY_OFF: usize = 30;
    pub const QUEUE_DESC: usize = 32;
    pub const QUEUE_DRIVER: usize = 40;
    pub const QUEUE_DEVICE: usize = 48;
}

/// Status reads after a reset before the driver gives up waiting for 0.
pub const RESET_POLLS: u32 = 1_000_000;

/// Status after a successful [`negotiate`].
const NEGOTIATED: u8 = ACKNOWLEDGE | DRIVER | FEATURES_OK;

pub fn status<T: Transport>(t: &T) -> u8 {
    t.read8(Region::Common, common::DEVICE_STATUS)
}

pub fn set_status<T: Transport>(t: &mut T, s: u8) {
    t.write8(Region::Common, common::DEVICE_STATUS, s);
}

/// Writes 0 to the status and waits until it reads back 0: the device has stopped using
/// every ring and buffer and forgotten its configuration.
pub fn reset<T: Transport>(t: &mut T) -> Result<(), Error> {
    set_status(t, 0);
    for _ in 0..RESET_POLLS {
        if status(t) == 0 {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(Error::ResetTimeout)
}

/// Marks the device `FAILED` (the driver gave up on it).
pub fn fail<T: Transport>(t: &mut T) {
    let s = status(t);
    set_status(t, s | FAILED);
}

/// Features offered by the device and accepted by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    pub offered: u64,
    pub accepted: u64,
}

/// Resets the device and negotiates: accepts `offered & wanted`. Fails if the device does
/// not offer `VIRTIO_F_VERSION_1` or clears `FEATURES_OK`.
pub fn negotiate<T: Transport>(t: &mut T, wanted: u64) -> Result<Features, Error> {
    reset(t)?;
    set_status(t, ACKNOWLEDGE);
    set_status(t, ACKNOWLEDGE | DRIVER);

    let mut offered = 0u64;
    for half in 0..2u32 {
        t.write32(Region::Common, common::DEVICE_FEATURE_SELECT, half);
        offered |= (t.read32(Region::Common, common::DEVICE_FEATURE) as u64) << (32 * half);
    }
    if offered & VIRTIO_F_VERSION_1 == 0 {
        return Err(Error::NoVersion1 { offered });
    }
    let accepted = offered & wanted;
    for half in 0..2u32 {
        t.write32(Region::Common, common::DRIVER_FEATURE_SELECT, half);
        t.write32(Region::Common, common::DRIVER_FEATURE, (accepted >> (32 * half)) as u32);
    }
    set_status(t, NEGOTIATED);
    if status(t) & FEATURES_OK == 0 {
        return Err(Error::FeaturesRejected { accepted });
    }
    Ok(Features { offered, accepted })
}

/// The number of queues the device has; fails below `need`.
pub fn num_queues<T: Transport>(t: &T, need: u16) -> Result<u16, Error> {
    let have = t.read16(Region::Common, common::NUM_QUEUES);
    if have < need {
        return Err(Error::TooFewQueues { have, need });
    }
    Ok(have)
}

/// Routes configuration-change notifications to no MSI-X vector.
pub fn no_config_vector<T: Transport>(t: &mut T) -> Result<(), Error> {
    t.write16(Region::Common, common::CONFIG_MSIX_VECTOR, NO_VECTOR);
    let read = t.read16(Region::Common, common::CONFIG_MSIX_VECTOR);
    if read != NO_VECTOR {
        return Err(Error::MsixRefused { queue: None, wrote: NO_VECTOR, read });
    }
    Ok(())
}

/// Sets up queue `index` with the largest power of two not above the device's maximum
/// and [`QUEUE_SIZE_MAX`], routed to MSI-X `vector` ([`NO_VECTOR`]: none), and enables
/// it. Used-buffer interrupts start suppressed (`VIRTQ_AVAIL_F_NO_INTERRUPT`) when
/// `quiet`; the driver clears the flag with [`Queue::set_avail_flags`].
pub fn setup_queue<T: Transport>(t: &mut T, index: u16, vector: u16, quiet: bool) -> Result<Queue, Error> {
    t.write16(Region::Common, common::QUEUE_SELECT, index);
    let max = t.read16(Region::Common, common::QUEUE_SIZE);
    if max == 0 {
        return Err(Error::QueueUnavailable(index));
    }
    // Largest power of two not above either limit.
    let want = max.min(QUEUE_SIZE_MAX);
    let size = 1u16 << (15 - want.leading_zeros());
    t.write16(Region::Common, common::QUEUE_SIZE, size);
    let mut q = Queue::new(index, size)?;
    if quiet {
        q.set_avail_flags(AVAIL_F_NO_INTERRUPT);
    }
    t.write64(Region::Common, common::QUEUE_DESC, q.desc_addr());
    t.write64(Region::Common, common::QUEUE_DRIVER, q.avail_addr());
    t.write64(Region::Common, common::QUEUE_DEVICE, q.used_addr());
    t.write16(Region::Common, common::QUEUE_MSIX_VECTOR, vector);
    let read = t.read16(Region::Common, common::QUEUE_MSIX_VECTOR);
    if read != vector {
        return Err(Error::MsixRefused { queue: Some(index), wrote: vector, read });
    }
    let off = t.read16(Region::Common, common::QUEUE_NOTIFY_OFF);
    t.set_notify_off(index, off)?;
    t.write16(Region::Common, common::QUEUE_ENABLE, 1);
    Ok(q)
}

/// Writes `DRIVER_OK`; fails if the device then reports `NEEDS_RESET` or `FAILED`.
pub fn driver_ok<T: Transport>(t: &mut T) -> Result<(), Error> {
    set_status(t, NEGOTIATED | DRIVER_OK);
    let now = status(t);
    if now & (NEEDS_RESET | FAILED) != 0 {
        return Err(Error::DeviceError { status: now });
    }
    Ok(())
}

/// Runs `read` until the device's `config_generation` is the same before and after it
/// (at most 16 tries), so multi-field and 64-bit values are consistent (§4.1.4.3.1).
pub fn read_config<T: Transport, R>(t: &T, mut read: impl FnMut(&T) -> R) -> R {
    let mut tries = 0;
    loop {
        let g = t.read8(Region::Common, common::CONFIG_GENERATION);
        let r = read(t);
        tries += 1;
        if tries >= 16 || t.read8(Region::Common, common::CONFIG_GENERATION) == g {
            return r;
        }
    }
}
