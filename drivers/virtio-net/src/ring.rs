//! A virtqueue of packet buffers: each posted `RRef<Pkt>` is a one-descriptor chain
//! covering its header room and frame, kept in a slot until the device returns it.

use crate::Error;
use alloc::vec::Vec;
use core::mem::offset_of;
use frond_interface::net::{Pkt, HEADROOM};
use frond_interface::RRef;
use frond_virtio::{Queue, Seg};

// The descriptor covers the header room and the frame as one buffer.
const _: () = assert!(offset_of!(Pkt, data) == offset_of!(Pkt, head) + HEADROOM);

/// A [`Queue`] and the buffers posted to it.
///
/// Invariant: `slots[id]` holds a buffer exactly while the queue has a chain headed by
/// `id` in flight; that chain's one descriptor points into the buffer.
pub(crate) struct Ring {
    pub q: Queue,
    slots: Vec<Option<RRef<Pkt>>>,
}

impl Ring {
    pub fn new(q: Queue) -> Result<Self, Error> {
        let mut slots = Vec::new();
        slots.try_reserve_exact(q.size() as usize).map_err(|_| Error::OutOfMemory)?;
        slots.resize_with(q.size() as usize, || None);
        Ok(Self { q, slots })
    }

    /// Buffers the device holds.
    pub fn outstanding(&self) -> usize {
        self.q.in_flight()
    }

    /// Whether `id` (from the used ring) names a buffer the device holds.
    pub fn is_outstanding(&self, id: u32) -> bool {
        self.q.is_in_flight(id)
    }

    /// Posts `pkt` as one descriptor of `len` bytes starting at its header room; gives it
    /// back if no descriptor is free. Not visible to the device before `publish`.
    pub fn post(&mut self, mut pkt: RRef<Pkt>, len: u32, device_writes: bool) -> Result<(), RRef<Pkt>> {
        let base: *mut Pkt = &mut *pkt;
        let addr = (base.expose_provenance() + offset_of!(Pkt, head)) as u64;
        match self.q.add(&[Seg { addr, len, device_writes }]) {
            Some(id) => {
                self.slots[id as usize] = Some(pkt);
                Ok(())
            }
            None => Err(pkt),
        }
    }

    /// Takes back the buffer of outstanding descriptor `id`, freeing the descriptor.
    pub fn take(&mut self, id: u32) -> Option<RRef<Pkt>> {
        self.q.release(id)?;
        self.slots.get_mut(id as usize)?.take()
    }
}
