//! Device initialisation, the request engine and recovery.

use crate::{
    cfg, req, Fault, Waited, DRIVER_FEATURES, REQUEST_QUEUE, SECTORS_PER_BLOCK, VIRTIO_BLK_F_BLK_SIZE,
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_SIZE_MAX,
};
use alloc::vec::Vec;
use frond_interface::blk::{BlkError, BlkReq, BlkReqs, BlkStats, BLK_BYTES_MAX, BLK_REQS_MAX, BLOCK_SIZE};
use frond_virtio::status::{DRIVER_OK, NEEDS_RESET};
use frond_virtio::{init, DmaMem, Error, Queue, Region, Seg, Transport, NO_VECTOR};

/// `by_head` entry of a descriptor that heads no request.
const NONE: u16 = u16::MAX;
/// What the driver leaves in a status byte before posting the request: not a status the
/// device may write, so a request completed without its status byte is caught.
const STATUS_UNSET: u8 = 0xff;
/// Bytes of a request header: `type` u32, `reserved` u32, `sector` u64.
const HDR: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Flush,
}

/// What the device configuration says, checked.
#[derive(Clone, Copy, Debug)]
struct Config {
    features: u64,
    blocks: u64,
    read_only: bool,
    flush: bool,
    /// Largest data buffer of one virtio request, in blocks (`SIZE_MAX`).
    chunk_blocks: u32,
    blk_size: Option<u32>,
    seg_max: Option<u32>,
}

/// A request the device holds.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Index of the `BlkReq` (in the call) it belongs to.
    req: usize,
    data_len: u32,
    /// The device writes the data buffer (a read).
    data_in: bool,
}

/// The queue and the request bookkeeping of one device initialisation.
///
/// Invariant: `by_head[h] = s` exactly while the queue has a chain headed by `h` in flight,
/// and then slot `s` is not on `free_slots` and its header and status byte are that
/// chain's first and last buffers.
struct Active {
    q: Queue,
    /// Request headers (16 bytes per slot), then status bytes (one per slot).
    mem: DmaMem,
    slots: Vec<Slot>,
    free_slots: Vec<u16>,
    by_head: Vec<u16>,
}

impl Active {
    fn new(q: Queue) -> Result<Self, Error> {
        // Every chain has at least two descriptors.
        let nslots = q.size() as usize / 2;
        let mem = DmaMem::new((HDR + 1) * nslots)?;
        let mut slots = Vec::new();
        let mut free_slots = Vec::new();
        let mut by_head = Vec::new();
        if slots.try_reserve_exact(nslots).is_err()
            || free_slots.try_reserve_exact(nslots).is_err()
            || by_head.try_reserve_exact(q.size() as usize).is_err()
        {
            return Err(Error::OutOfMemory);
        }
        slots.resize(nslots, Slot::default());
        free_slots.extend((0..nslots as u16).rev());
        by_head.resize(q.size() as usize, NONE);
        Ok(Self { q, mem, slots, free_slots, by_head })
    }

    fn hdr_off(&self, slot: u16) -> usize {
        HDR * slot as usize
    }

    fn status_off(&self, slot: u16) -> usize {
        HDR * self.slots.len() + slot as usize
    }
}

/// Where a call's submission stands: request `req`, `done` blocks of it submitted.
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    req: usize,
    done: u32,
}

/// One virtio request to post.
#[derive(Clone, Copy, Debug)]
struct Chunk {
    req: usize,
    sector: u64,
    /// Byte offset in the caller's buffer.
    offset: u64,
    len: u32,
}

/// Per-`BlkReq` state within a call.
#[derive(Clone, Copy, Debug, Default)]
struct ReqState {
    /// Virtio requests of it not yet completed successfully.
    pending: u32,
    failed: bool,
}

/// A running virtio-blk device: the request queue set up, `DRIVER_OK` written.
///
/// Dropping it resets the device (so it stops using the rings) and then frees them.
pub struct VirtioBlk<T: Transport> {
    t: T,
    msix: bool,
    cfg: Config,
    /// None after a failed re-initialisation: the next call tries again.
    act: Option<Active>,
    queue_size: u16,
    stats: BlkStats,
    resets: u64,
    last_fault: Option<Fault>,
    /// A reset did not complete: the device may still access the rings and the last
    /// call's buffer. Nothing is freed and every call fails.
    wedged: bool,
    /// Asked where a request's status byte is read: non-zero makes it `IOERR` (fault
    /// injection).
    fault_hook: fn() -> u32,
}

fn no_fault() -> u32 {
    0
}

impl<T: Transport> VirtioBlk<T> {
    /// Resets and initialises the device behind `t` (virtio 1.x §3.1.1): negotiates
    /// `VERSION_1` (required) and, when offered, `RO`, `BLK_SIZE`, `FLUSH`, `SEG_MAX`,
    /// `SIZE_MAX`; checks the configuration (logical block size a divisor of 1024,
    /// maximum segment size at least one block, queue of at least 4 entries); sets up
    /// queue 0 with at most 256 entries routed to MSI-X vector 0 if `msix` (the kernel
    /// enabled entry 0) or to no vector, and writes `DRIVER_OK`.
    ///
    /// On failure the device is left with `FAILED` set.
    pub fn new(mut t: T, msix: bool) -> Result<Self, Error> {
        match setup(&mut t, msix) {
            Ok((cfg, act)) => Ok(Self {
                t,
                msix,
                cfg,
                queue_size: act.q.size(),
                act: Some(act),
                stats: BlkStats::default(),
                resets: 0,
                last_fault: None,
                wedged: false,
                fault_hook: no_fault,
            }),
            Err(e) => {
                init::fail(&mut t);
                Err(e)
            }
        }
    }

    /// Installs the fault-injection hook (asked once per completed request).
    pub fn set_fault_hook(&mut self, f: fn() -> u32) {
        self.fault_hook = f;
    }

    /// Blocks ([`BLOCK_SIZE`] bytes) on the device: its capacity in 512-byte sectors,
    /// halved (an odd last sector is not addressable).
    pub fn blocks(&self) -> u64 {
        self.cfg.blocks
    }

    /// The device offers `VIRTIO_BLK_F_RO`: writes fail with `ReadOnly`.
    pub fn read_only(&self) -> bool {
        self.cfg.read_only
    }

    /// `VIRTIO_BLK_F_FLUSH` was negotiated: `flush` sends `VIRTIO_BLK_T_FLUSH`. Without
    /// it the device is write-through and `flush` has nothing to do.
    pub fn has_flush(&self) -> bool {
        self.cfg.flush
    }

    /// Entries of the request queue.
    pub fn queue_size(&self) -> u16 {
        self.queue_size
    }

    /// Requests the device holds at most (three descriptors each).
    pub fn queue_depth(&self) -> u16 {
        self.queue_size / 3
    }

    /// The negotiated feature bits.
    pub fn features(&self) -> u64 {
        self.cfg.features
    }

    /// `blk_size` (if `BLK_SIZE` was negotiated) and `seg_max` (if `SEG_MAX` was).
    pub fn limits(&self) -> (Option<u32>, Option<u32>) {
        (self.cfg.blk_size, self.cfg.seg_max)
    }

    /// Largest data buffer of one virtio request, in bytes.
    pub fn max_request_bytes(&self) -> u32 {
        self.cfg.chunk_blocks * BLOCK_SIZE as u32
    }

    pub fn stats(&self) -> BlkStats {
        self.stats
    }

    /// Times the driver reset the device after it misbehaved.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// The last misbehaviour that made the driver reset the device.
    pub fn last_fault(&self) -> Option<Fault> {
        self.last_fault
    }

    /// A reset did not complete: the device may still be accessing memory. The owner
    /// must stop the device some other way (the driver domain panics, and the kernel
    /// clears the device's bus mastering before the caller's buffer is released).
    pub fn wedged(&self) -> bool {
        self.wedged
    }

    /// Reads (and so acknowledges) the ISR status: bit 0 queue interrupt, bit 1
    /// configuration change. Only meaningful without MSI-X.
    pub fn isr_status(&self) -> u8 {
        self.t.read8(Region::Isr, 0)
    }

    /// True if the used ring holds completions the driver has not processed. Non-blocking.
    pub fn has_work(&self) -> bool {
        self.act.as_ref().is_some_and(|a| a.q.pending())
    }

    /// Reads each request's blocks into `buf` at its offset, with the semantics of
    /// `Block::read`. The device writes into `buf` itself (zero copy). Between polls of
    /// the used ring the driver calls `wait`, which blocks until an interrupt or for a
    /// short while, or says to give up (the device is then reset: see the crate docs).
    pub fn read(
        &mut self,
        reqs: &BlkReqs,
        buf: &mut [u8],
        mut wait: impl FnMut() -> Waited,
    ) -> Result<(), BlkError> {
        reqs.validate(buf.len(), self.cfg.blocks)?;
        let base = buf.as_mut_ptr().expose_provenance() as u64;
        self.run(Kind::Read, reqs.as_slice(), base, &mut wait)
    }

    /// Writes each request's blocks from `buf` at its offset, with the semantics of
    /// `Block::write`; `ReadOnly` on a read-only device, which is then not touched.
    pub fn write(&mut self, reqs: &BlkReqs, buf: &[u8], mut wait: impl FnMut() -> Waited) -> Result<(), BlkError> {
        reqs.validate(buf.len(), self.cfg.blocks)?;
        if self.cfg.read_only && !reqs.as_slice().is_empty() {
            return Err(BlkError::ReadOnly);
        }
        let base = buf.as_ptr().expose_provenance() as u64;
        self.run(Kind::Write, reqs.as_slice(), base, &mut wait)
    }

    /// Makes every completed write durable: `VIRTIO_BLK_T_FLUSH` if negotiated, else
    /// nothing (a device without `FLUSH` is write-through).
    pub fn flush(&mut self, mut wait: impl FnMut() -> Waited) -> Result<(), BlkError> {
        if !self.cfg.flush {
            self.stats.flushes += 1;
            return Ok(());
        }
        let one = [BlkReq { block: 0, offset: 0, count: 1 }];
        self.run(Kind::Flush, &one, 0, &mut wait)
    }

    /// Puts the call's requests in flight (as many as the queue takes, more as earlier
    /// ones complete), reaps completions, waits between polls, and accounts for the call.
    /// Returns only when the device holds none of the call's buffers.
    fn run(
        &mut self,
        kind: Kind,
        list: &[BlkReq],
        base: u64,
        wait: &mut dyn FnMut() -> Waited,
    ) -> Result<(), BlkError> {
        let n = list.len().min(BLK_REQS_MAX);
        if n == 0 {
            return Ok(());
        }
        if self.wedged || (self.act.is_none() && !self.reinit()) {
            self.stats.errors += n as u64;
            return Err(BlkError::Device);
        }
        let chunk_blocks = if kind == Kind::Flush { 1 } else { self.cfg.chunk_blocks };
        let mut st = [ReqState::default(); BLK_REQS_MAX];
        for (s, r) in st.iter_mut().zip(list) {
            s.pending = r.count.div_ceil(chunk_blocks);
        }
        let mut cur = Cursor::default();
        let mut err: Option<BlkError> = None;

        let outcome = loop {
            if err.is_none() && cur.req < n {
                let idle = self.act.as_ref().is_some_and(|a| a.q.in_flight() == 0);
                if self.submit(kind, &list[..n], base, chunk_blocks, &mut cur) == 0 && idle {
                    // Cannot happen (an empty queue takes a request); never spin on it.
                    break Ok(());
                }
            }
            if let Err(f) = self.reap(&mut st, &mut err) {
                break Err(f);
            }
            let Some(act) = self.act.as_ref() else { break Ok(()) };
            if act.q.in_flight() == 0 {
                if err.is_some() || cur.req >= n {
                    break Ok(());
                }
                // More to post: the next round posts at least one.
                continue;
            }
            if act.q.pending() {
                continue;
            }
            match wait() {
                Waited::Interrupt => self.stats.irqs += 1,
                Waited::Nothing => {}
                Waited::GiveUp => break Err(Fault::Timeout),
            }
            if !self.has_work() {
                // Nothing came: is the device still running?
                let s = init::status(&self.t);
                if s & NEEDS_RESET != 0 || s & DRIVER_OK == 0 {
                    break Err(Fault::NeedsReset { status: s });
                }
            }
        };

        let (mut ok, mut blocks) = (0, 0);
        for (s, r) in st.iter().zip(list).take(n) {
            if s.pending == 0 && !s.failed {
                ok += 1;
                blocks += r.count as u64;
            }
        }
        match kind {
            Kind::Read => {
                self.stats.reads += ok as u64;
                self.stats.read_blocks += blocks;
            }
            Kind::Write => {
                self.stats.writes += ok as u64;
                self.stats.written_blocks += blocks;
            }
            Kind::Flush => self.stats.flushes += ok as u64,
        }
        self.stats.errors += (n - ok) as u64;
        match outcome {
            Err(f) => {
                self.last_fault = Some(f);
                self.recover();
                Err(BlkError::Device)
            }
            Ok(()) => match err {
                Some(e) => Err(e),
                None if ok < n => Err(BlkError::Device),
                None => Ok(()),
            },
        }
    }

    /// Posts the next requests of the call while the queue has room; one notification for
    /// all of them. Returns how many it posted.
    fn submit(&mut self, kind: Kind, list: &[BlkReq], base: u64, chunk_blocks: u32, cur: &mut Cursor) -> usize {
        let Some(act) = self.act.as_mut() else { return 0 };
        let need = if kind == Kind::Flush { 2 } else { 3 };
        let mut added = 0;
        while act.q.free_descriptors() >= need {
            let Some(c) = next_chunk(list, chunk_blocks, cur) else { break };
            let Some(slot) = act.free_slots.pop() else { break };
            let (ty, sector) = match kind {
                Kind::Read => (req::T_IN, c.sector),
                Kind::Write => (req::T_OUT, c.sector),
                Kind::Flush => (req::T_FLUSH, 0),
            };
            let h = act.hdr_off(slot);
            act.mem.write::<u32>(h, ty);
            act.mem.write::<u32>(h + 4, 0);
            act.mem.write::<u64>(h + 8, sector);
            let s = act.status_off(slot);
            act.mem.write::<u8>(s, STATUS_UNSET);
            let hdr = Seg { addr: act.mem.addr() + h as u64, len: HDR as u32, device_writes: false };
            let status = Seg { addr: act.mem.addr() + s as u64, len: 1, device_writes: true };
            let data = Seg { addr: base + c.offset, len: c.len, device_writes: kind == Kind::Read };
            let head = if kind == Kind::Flush { act.q.add(&[hdr, status]) } else { act.q.add(&[hdr, data, status]) };
            let Some(head) = head else {
                // Unreachable (enough descriptors were free). The chunk stays unsent, so
                // its request is accounted as failed.
                act.free_slots.push(slot);
                break;
            };
            act.by_head[head as usize] = slot;
            act.slots[slot as usize] = Slot { req: c.req, data_len: c.len, data_in: kind == Kind::Read };
            added += 1;
        }
        if added > 0 && act.q.publish() {
            self.t.notify(REQUEST_QUEUE);
            self.stats.kicks += 1;
        }
        added
    }

    /// Processes every used entry the device published. Any entry that breaks the rules —
    /// an index more entries ahead than requests in flight, an id that heads no request in
    /// flight (unknown, or completed already), a length longer than the device-writable
    /// buffers (or, for a successful read, shorter than data and status), a status other
    /// than OK/IOERR/UNSUPP — is a [`Fault`].
    fn reap(&mut self, st: &mut [ReqState; BLK_REQS_MAX], err: &mut Option<BlkError>) -> Result<usize, Fault> {
        let Some(act) = self.act.as_mut() else { return Ok(0) };
        let end = act.q.used_end();
        let last = act.q.last_used();
        let new = end.wrapping_sub(last);
        if new as usize > act.q.in_flight() {
            return Err(Fault::UsedIndex { used: end, last, in_flight: act.q.in_flight() as u16 });
        }
        for _ in 0..new {
            let (id, len) = act.q.peek_used();
            act.q.advance();
            let slot = match act.by_head.get(id as usize) {
                Some(&s) if s != NONE => s,
                _ => return Err(Fault::UnknownId { id }),
            };
            if act.q.release(id).is_none() {
                return Err(Fault::UnknownId { id });
            }
            act.by_head[id as usize] = NONE;
            act.free_slots.push(slot);
            let r = act.slots[slot as usize];
            let writable = if r.data_in { r.data_len + 1 } else { 1 };
            if len > writable {
                return Err(Fault::Length { id, len, max: writable });
            }
            let mut status = act.mem.read::<u8>(act.status_off(slot));
            if status == req::S_OK && (self.fault_hook)() != 0 {
                status = req::S_IOERR;
            }
            let s = &mut st[r.req];
            match status {
                req::S_OK if r.data_in && len != writable => return Err(Fault::Length { id, len, max: writable }),
                req::S_OK => s.pending = s.pending.saturating_sub(1),
                req::S_IOERR => {
                    s.failed = true;
                    err.get_or_insert(BlkError::Io);
                }
                req::S_UNSUPP => {
                    s.failed = true;
                    err.get_or_insert(BlkError::Unsupported);
                }
                other => return Err(Fault::Status { id, status: other }),
            }
        }
        Ok(new as usize)
    }

    /// The device misbehaved: reset it (it then holds no buffer of the call) and set it
    /// up again from scratch, so the next call starts clean.
    fn recover(&mut self) {
        self.resets += 1;
        if init::reset(&mut self.t).is_err() {
            self.wedged = true;
            return;
        }
        // The device stopped: the old rings can go.
        self.act = None;
        self.reinit();
    }

    fn reinit(&mut self) -> bool {
        match setup(&mut self.t, self.msix) {
            Ok((cfg, act)) => {
                self.cfg = cfg;
                self.queue_size = act.q.size();
                self.act = Some(act);
                true
            }
            Err(_) => {
                init::fail(&mut self.t);
                false
            }
        }
    }
}

impl<T: Transport> Drop for VirtioBlk<T> {
    fn drop(&mut self) {
        // Stop the device before its rings are freed; if it cannot be stopped, leak them
        // rather than let it write to memory that is reused.
        if self.wedged || init::reset(&mut self.t).is_err() {
            core::mem::forget(self.act.take());
        }
    }
}

/// The next virtio request of the call, advancing the cursor.
fn next_chunk(list: &[BlkReq], chunk_blocks: u32, cur: &mut Cursor) -> Option<Chunk> {
    let r = list.get(cur.req)?;
    let blocks = (r.count - cur.done).min(chunk_blocks);
    let c = Chunk {
        req: cur.req,
        sector: (r.block + cur.done as u64) * SECTORS_PER_BLOCK,
        offset: r.offset as u64 + cur.done as u64 * BLOCK_SIZE as u64,
        len: blocks * BLOCK_SIZE as u32,
    };
    cur.done += blocks;
    if cur.done >= r.count {
        *cur = Cursor { req: cur.req + 1, done: 0 };
    }
    Some(c)
}

/// Negotiates, reads and checks the configuration, sets up the queue, `DRIVER_OK`.
fn setup<T: Transport>(t: &mut T, msix: bool) -> Result<(Config, Active), Error> {
    let accepted = init::negotiate(t, DRIVER_FEATURES)?.accepted;
    init::num_queues(t, 1)?;
    init::no_config_vector(t)?;
    let (capacity, size_max, seg_max, blk_size) = init::read_config(t, |t| {
        (
            t.read64(Region::Device, cfg::CAPACITY),
            t.read32(Region::Device, cfg::SIZE_MAX),
            t.read32(Region::Device, cfg::SEG_MAX),
            t.read32(Region::Device, cfg::BLK_SIZE),
        )
    });
    let blk_size = (accepted & VIRTIO_BLK_F_BLK_SIZE != 0).then_some(blk_size);
    if let Some(b) = blk_size {
        if b == 0 || !(BLOCK_SIZE as u32).is_multiple_of(b) {
            return Err(Error::Unsupported { field: "logical block size", value: b as u64 });
        }
    }
    let max_blocks = (BLK_BYTES_MAX / BLOCK_SIZE) as u32;
    let chunk_blocks = if accepted & VIRTIO_BLK_F_SIZE_MAX != 0 {
        (size_max / BLOCK_SIZE as u32).min(max_blocks)
    } else {
        max_blocks
    };
    if chunk_blocks == 0 {
        return Err(Error::Unsupported { field: "maximum segment size", value: size_max as u64 });
    }
    let vector = if msix { 0 } else { NO_VECTOR };
    let q = init::setup_queue(t, REQUEST_QUEUE, vector, false)?;
    if q.size() < 4 {
        return Err(Error::Unsupported { field: "queue size", value: q.size() as u64 });
    }
    let act = Active::new(q)?;
    init::driver_ok(t)?;
    let cfg = Config {
        features: accepted,
        blocks: capacity / SECTORS_PER_BLOCK,
        read_only: accepted & VIRTIO_BLK_F_RO != 0,
        flush: accepted & VIRTIO_BLK_F_FLUSH != 0,
        chunk_blocks,
        blk_size,
        seg_max: (accepted & VIRTIO_BLK_F_SEG_MAX != 0).then_some(seg_max),
    };
    Ok((cfg, act))
}
