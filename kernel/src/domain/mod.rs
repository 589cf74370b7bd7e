//! Domains: separately compiled, separately loaded binaries with private heaps.
//!
//! A domain occupies a **slot** (its `DomainId`) and has a **generation**, a state, a
//! private heap ([`dheap`]), RRefs on the shared heap ([`shared`]), the image it was loaded
//! from and the closure that re-creates its init arguments. Life cycle:
//!
//! * [`create`] loads the image ([`loader`]), gives it a new generation and heap, and calls
//!   its typed entry as a protected call ([`rpc`]); the object it returns becomes the slot's
//!   **root export**, which the kernel grants to other domains as proxies ([`grant`],
//!   [`grant_recover`]).
//! * A domain **dies** when it panics, faults, or is killed: [`die`] marks the generation
//!   dead (calls into it now fail fast), wakes threads sleeping inside it so they unwind,
//!   frees its RRefs and heap by owner, and unmaps its image — without running any of its
//!   code. Heap counters return to where they were before the domain existed.
//! * [`restart`] reloads the pristine image from the boot module into the same slot with
//!   the next generation and re-runs init with freshly made arguments. Recovery proxies do
//!   this on their own ([`KernelRt::recover`]).
//!
//! Locking: `TABLE` (an interrupt-disabling spin lock) is never held while domain code
//! runs; the life-cycle lock ([`lifecycle`], a sleeping mutex its holder may take again)
//! serialises create/restart/kill. It is re-entrant because restarts nest: restarting the
//! network stack runs its init, which calls the NIC driver through a recovery proxy,
//! which may have to restart the driver first. A restart never recurses into a slot
//! this thread is already restarting (that call fails with `RestartFailed`). Code that
//! must not be abandoned half-way runs [`rpc::as_kernel`], so a dying caller is unwound
//! only after.
//!
//! A generation becomes visible ([`State::Alive`], its root export published) only after
//! its init returned; recovery proxies that find a slot restarting wait on the life-cycle
//! lock for the restart to finish instead of failing. Generations of a slot never repeat,
//! not even after [`remove`], so a stale target can never pass the alive check.

pub mod dheap;
pub mod limits;
pub mod loader;
pub mod rpc;
pub mod shared;
mod sys;

use crate::arch::irq::IrqMutex;
use crate::sched;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::{Relaxed, SeqCst}};
use frond_domrt::{DomainKind, EntryFn};
use rref::rpc::{Proxyable, Remote, RpcError, RpcResult, Runtime, Target};
use rref::DomainId;

pub use sys::KERNEL_SYS;

/// Domain slots, the kernel's slot 0 included.
pub const MAX: usize = rref::MAX_DOMAINS;
/// The kernel's (only) generation.
pub const KERNEL_GEN: u64 = 1;

/// The live instance of each slot as a key (`rref::rpc::key(slot, generation)`), 0 if none:
/// the proxies' alive check compares one word. The kernel's (slot 0) never changes.
/// Entries for every slot value a key can hold (`MAX..` are never alive), so a call
/// indexes it with the key's low byte and needs no bounds check.
pub static ALIVE: [AtomicU64; KEY_SLOTS] = {
    let mut a = [const { AtomicU64::new(0) }; KEY_SLOTS];
    a[0] = AtomicU64::new(rpc::KERNEL_KEY);
    a
};

/// Slot values a key can hold.
pub const KEY_SLOTS: usize = 1 << rref::rpc::SLOT_BITS;

/// The key of `slot`'s generation `generation`.
#[inline(always)]
pub fn key(slot: usize, generation: u64) -> u64 {
    rref::rpc::key(DomainId(slot as u32), generation)
}

/// The generation alive in `slot` (0: none), from the alive table.
#[inline]
fn alive_gen(slot: usize) -> u64 {
    rref::rpc::key_generation(ALIVE[slot].load(Relaxed))
}

/// Why each slot's last generation died (an `rpc` error code), for threads unwound later.
static DEATH: [core::sync::atomic::AtomicU8; MAX] = [const { core::sync::atomic::AtomicU8::new(0) }; MAX];
/// The last generation handed out per slot: generations never repeat for a slot.
static LAST_GEN: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];

/// The error a thread unwound out of slot `slot` reports to its caller.
pub fn death_reason(slot: usize) -> RpcError {
    match DEATH[slot % MAX].load(Relaxed) {
        1 => RpcError::Panicked,
        4 => RpcError::Timeout,
        _ => RpcError::Killed,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Alive,
    /// Crashed or killed; its resources are reclaimed.
    Dead,
    /// Being reloaded.
    Restarting,
}

type Starter = Arc<dyn Fn(usize) -> Result<(), String> + Send + Sync>;

struct Record {
    name: String,
    generation: u64,
    state: State,
    image: Option<loader::Image>,
    /// `Root<K::Export>`: the target of the slot's export in the latest generation.
    root: Option<Box<dyn Any + Send>>,
    start: Starter,
    crashes: u64,
    restarts: u64,
    /// TSC ticks the last restart took (unload excluded, reload + init included).
    last_restart_tsc: u64,
    /// A program domain's parent (slot, generation): see [`create_program`].
    owner: Option<(usize, u64)>,
    /// The panic message, fault or watchdog report of the last death.
    last_words: Option<String>,
}

struct Root<T: ?Sized>(Target<T>);

static TABLE: IrqMutex<[Option<Record>; MAX]> = IrqMutex::new([const { None }; MAX]);
static LIFECYCLE: sched::Mutex<()> = sched::Mutex::new(());
/// Thread id + 1 of the life-cycle lock's holder (0: free).
static LIFECYCLE_OWNER: AtomicU64 = AtomicU64::new(0);

/// The life-cycle lock, re-entrant for its holder (restarts nest; see the module docs).
struct Lifecycle(Option<sched::sync::MutexGuard<'static, ()>>);

fn lifecycle() -> Lifecycle {
    let me = sched::current_tid() + 1;
    if LIFECYCLE_OWNER.load(Relaxed) == me {
        return Lifecycle(None);
    }
    let g = LIFECYCLE.lock();
    LIFECYCLE_OWNER.store(me, Relaxed);
    Lifecycle(Some(g))
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        if let Some(g) = self.0.take() {
            LIFECYCLE_OWNER.store(0, Relaxed);
            drop(g);
        }
    }
}
static MODULE: spin::Once<&'static [u8]> = spin::Once::new();

/// Remembers the boot module, where domain images are found as `domains/<name>`.
pub fn init(module: Option<&'static [u8]>) {
    if let Some(m) = module {
        MODULE.call_once(|| m);
    }
}

/// A file of the boot module.
pub fn module_file(name: &str) -> Result<&'static [u8], String> {
    let m = MODULE.get().ok_or("no boot module")?;
    frond_bootfmt::find(m, name).map_err(|e| format!("boot module entry `{name}`: {e}"))
}

/// Names of boot-module entries under `prefix`.
pub fn module_entries(prefix: &str) -> Vec<String> {
    let Some(m) = MODULE.get() else { return Vec::new() };
    match frond_bootfmt::entries(m) {
        Ok(it) => it.filter(|(n, _)| n.starts_with(prefix)).map(|(n, _)| n.to_string()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Creates a domain of kind `K` from boot-module entry `image`, named `name`. `make_args`
/// runs (in the kernel) before every init, the first and each restart.
pub fn create<K: DomainKind>(
    name: &str,
    image: &str,
    make_args: impl Fn() -> K::Args + Send + Sync + 'static,
) -> Result<DomainId, String>
where
    K::Export: Sync,
{
    create_bound::<K>(name, image, move |_| make_args())
}

/// [`create`] whose `make_args` learns the domain's id before init runs (a driver's
/// device is bound to its domain before the driver touches it).
pub fn create_bound<K: DomainKind>(
    name: &str,
    image: &str,
    make_args: impl Fn(DomainId) -> K::Args + Send + Sync + 'static,
) -> Result<DomainId, String>
where
    K::Export: Sync,
{
    let bytes = module_file(image)?;
    create_from_bound::<K>(name, bytes, make_args)
}

/// [`create`] from image bytes (the loader tests feed damaged images this way).
pub fn create_from<K: DomainKind>(
    name: &str,
    bytes: &'static [u8],
    make_args: impl Fn() -> K::Args + Send + Sync + 'static,
) -> Result<DomainId, String>
where
    K::Export: Sync,
{
    create_from_bound::<K>(name, bytes, move |_| make_args())
}

fn create_from_bound<K: DomainKind>(
    name: &str,
    bytes: &'static [u8],
    make_args: impl Fn(DomainId) -> K::Args + Send + Sync + 'static,
) -> Result<DomainId, String>
where
    K::Export: Sync,
{
    let _g = lifecycle();
    let start: Starter = Arc::new(move |slot| start::<K>(slot, bytes, &make_args, None));
    let slot = {
        let mut t = TABLE.lock();
        // A slot whose previous tenant still awaits reclamation (threads inside it) is not
        // free yet: its image window and heap pages are still that tenant's.
        let slot = (1..MAX).find(|&i| t[i].is_none() && PENDING[i].load(SeqCst) == 0).ok_or("all domain slots are in use")?;
        t[slot] = Some(Record {
            name: name.to_string(),
            generation: 0,
            state: State::Restarting,
            image: None,
            root: None,
            start: start.clone(),
            crashes: 0,
            restarts: 0,
            last_restart_tsc: 0,
            owner: None,
            last_words: None,
        });
        slot
    };
    match rpc::as_kernel(|| start(slot)) {
        Ok(()) => Ok(DomainId(slot as u32)),
        Err(e) => {
            TABLE.lock()[slot] = None;
            Err(e)
        }
    }
}

/// Loads the image into `slot` with the next generation and runs its init. The slot stays
/// `Restarting` (recovery proxies wait) until init has returned its export.
fn start<K: DomainKind>(
    slot: usize,
    bytes: &[u8],
    make_args: &(dyn Fn(DomainId) -> K::Args + Send + Sync),
    limits: Option<limits::Limits>,
) -> Result<(), String>
where
    K::Export: Sync,
{
    let image = loader::load(slot, bytes, K::ENTRY_HASH).map_err(|e| format!("{BAD_IMAGE}{e}"))?;
    // SAFETY: the loader checked that the image's `_start` was built by this compiler for
    // exactly this entry hash (`K::SIG`, the export's interface fingerprint and the layout
    // of `K::Args`), so it has type `EntryFn<K>`.
    let entry: EntryFn<K> = unsafe { core::mem::transmute::<u64, EntryFn<K>>(image.entry) };
    let generation = LAST_GEN[slot].fetch_add(1, Relaxed) + 1;
    let name = {
        let mut t = TABLE.lock();
        let Some(r) = t[slot].as_mut() else {
            drop(t);
            loader::unload(&image);
            return Err("slot vanished".into());
        };
        r.generation = generation;
        r.image = Some(image);
        r.state = State::Restarting;
        r.name.clone()
    };
    limits::apply(slot, limits.unwrap_or_else(|| limits::for_name(&name)));
    DEATH[slot].store(0, Relaxed);
    dheap::create(slot);
    // Init itself is a call into this generation, so it must pass the alive check; no
    // handle to it exists yet (the root is published below), so nobody else can call it.
    ALIVE[slot].store(key(slot, generation), Relaxed);
    let args = make_args(DomainId(slot as u32));
    // SAFETY: a zero-sized target: only the domain and generation are used.
    let t = unsafe { Target::new(DomainId(slot as u32), generation, NonNull::<()>::dangling()) };
    match rpc::protected_call(&t, move |_| entry(&KERNEL_SYS, args)) {
        Ok(remote) => match remote.into_local() {
            Ok(object) => {
                let ptr = NonNull::from(Box::leak(object));
                // SAFETY: the object was allocated by this generation of the domain and
                // lives until the generation dies (its heap is then freed whole).
                let root = unsafe { Target::new(DomainId(slot as u32), generation, ptr) };
                let mut t = TABLE.lock();
                match t[slot].as_mut().filter(|r| r.generation == generation && alive_gen(slot) == generation) {
                    Some(r) => {
                        r.root = Some(Box::new(Root(root)));
                        r.state = State::Alive;
                        Ok(())
                    }
                    // Killed between init's return and here (the watchdog, `crash`).
                    None => Err("killed right after init".into()),
                }
            }
            Err(proxied) => {
                core::mem::forget(proxied);
                die(slot, generation, RpcError::Refused);
                Err("init returned a handle to another domain instead of its own object".into())
            }
        },
        // A panic in init already killed and reclaimed the domain.
        Err(e) => Err(format!("init failed: {e}")),
    }
}

/// Marks `slot` (generation `generation`) dead and reclaims everything it owned. Runs no
/// domain code. Idempotent: a second death of the same generation does nothing. `reason`
/// `Refused` (an orderly stop: explicit restart, refused init, removal) is not counted as
/// a crash.
///
/// Reclaiming waits while another thread is *inside* the domain — switched out in its
/// code, or in the kernel half of a call into or out of it (where the kernel is about to
/// read the callee's object, or the callee's result is not yet the caller's). Such a
/// thread leaves at once when it runs again (unwound, or its call completes), and the last
/// one to leave reclaims ([`left`]). Until then the dead generation's memory stays as it
/// was: nothing reads freed memory, and nothing of it is reused.
pub fn die(slot: usize, generation: u64, reason: RpcError) -> Option<Reclaim> {
    die_as(slot, generation, reason, false)
}

/// [`die`]; `cascade`: the domain dies because its owner's generation died (a program
/// domain with its parent), and its reclamation always waits for [`left`] (see there).
fn die_as(slot: usize, generation: u64, reason: RpcError, cascade: bool) -> Option<Reclaim> {
    rpc::as_kernel(|| {
        // The kernel (slot 0) never dies: its key stays alive (calls from it skip no check).
        if slot == 0 || ALIVE[slot].compare_exchange(key(slot, generation), 0, Relaxed, Relaxed).is_err() {
            return None;
        }
        // Until its reclamation is recorded (`PENDING`), the slot is dying: a restart that
        // saw it dead in between must not load the next generation over it.
        DYING[slot].store(true, SeqCst);
        let r = die_dead(slot, generation, reason, cascade);
        DYING[slot].store(false, SeqCst);
        r
    })
}

/// Slots in [`die`] between the generation's death and the record of its reclamation.
static DYING: [AtomicBool; MAX] = [const { AtomicBool::new(false) }; MAX];

/// The rest of [`die`], once the generation is marked dead.
fn die_dead(slot: usize, generation: u64, reason: RpcError, cascade: bool) -> Option<Reclaim> {
    {
        DEATH[slot].store(
            match reason {
                RpcError::Panicked => 1,
                RpcError::Timeout => 4,
                _ => 2,
            },
            Relaxed,
        );
        // The root target stays: recovery grants made while the domain is dead need its
        // slot and type; `start` replaces it with the next generation's.
        let (image, children) = {
            let mut t = TABLE.lock();
            let r = t[slot].as_mut()?;
            r.state = State::Dead;
            if reason != RpcError::Refused {
                r.crashes += 1;
            }
            let image = r.image.take();
            // Program domains die with their parent's generation.
            let children: Vec<(usize, u64)> = (1..MAX)
                .filter(|&c| t[c].as_ref().is_some_and(|r| r.owner == Some((slot, generation))))
                .map(|c| (c, alive_gen(c)))
                .filter(|&(_, g)| g != 0)
                .collect();
            (image, children)
        };
        for (c, g) in children {
            die_as(c, g, RpcError::Killed, true);
        }
        // Devices it drove stop DMA before its memory can be handed out again.
        let devices = crate::pci::quiesce(slot as u32);
        let woken = sched::wake_domain(slot as u32);
        let mut r = Reclaim { devices, woken, ..Reclaim::default() };
        PENDING_IMAGE.lock()[slot] = image;
        PENDING_ANY.fetch_add(1, SeqCst);
        PENDING[slot].store(generation, SeqCst);
        if cascade || sched::any_inside(slot as u32) {
            r.deferred = true;
            return Some(r);
        }
        if let Some(done) = reclaim_pending(slot) {
            r = Reclaim { devices, woken, ..done };
        }
        Some(r)
    }
}

/// Generation of each slot whose reclamation waits for threads inside it (0: none).
static PENDING: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];
/// The image of that generation, unmapped with the rest.
static PENDING_IMAGE: IrqMutex<[Option<loader::Image>; MAX]> = IrqMutex::new([const { None }; MAX]);
/// Reclamations that had to wait for threads to leave (for tests and the console).
pub static DEFERRED_RECLAIMS: AtomicU64 = AtomicU64::new(0);

/// Reclamations waiting for threads to leave (any slot): the one word a call's way out
/// reads.
static PENDING_ANY: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// A thread just left a call (its context switched back to the caller). If a dead
/// generation waits to be reclaimed and nobody is inside it any more, reclaim it now.
#[inline(always)]
pub fn left() {
    if PENDING_ANY.load(Relaxed) != 0 {
        left_pending();
    }
}

#[cold]
#[inline(never)]
fn left_pending() {
    // The running thread is inside the domain it just switched back to: if that domain
    // is dead, the call's way out still drops the result it moved to it and ends its lends
    // before unwinding (`rpc::leave`), so it is not reclaimed under the thread's feet
    // (`any_inside` does not count the running thread). Its reclamation waits for the
    // next `left` outside it — the unwind's own.
    //
    // A program domain that died with its parent waits for the parent's generation to be
    // reclaimed first: a thread of the program may be inside the parent (current there,
    // not in the program), which may still hand on memory the program lent it — kernel
    // code running for the dead parent (a proxy it called) reads that memory before the
    // thread gets to its next check. Once no thread is inside the parent, such a thread
    // is back in the program's own proxy (the program is then `here` or `any_inside`).
    let here = rpc::current().0 .0 as usize;
    rpc::as_kernel(|| {
        for slot in 1..MAX {
            if matches!(PENDING[slot].load(Relaxed), 0 | RECLAIMING)
                || slot == here
                || sched::any_inside(slot as u32)
                || parent_pending(slot)
            {
                continue;
            }
            if let Some(r) = reclaim_pending(slot) {
                DEFERRED_RECLAIMS.fetch_add(1, Relaxed);
                log::debug!(
                    "domain {slot} reclaimed after its last thread left: {} RRefs ({} bytes), {} orphaned, {} KiB of heap",
                    r.rref_blocks,
                    r.rref_bytes,
                    r.orphaned,
                    r.heap_bytes / 1024
                );
            }
        }
    });
}

/// Whether `slot` is a program domain whose owner's generation still waits to be
/// reclaimed (or is being reclaimed).
fn parent_pending(slot: usize) -> bool {
    let Some((p, pg)) = owner_of(slot) else { return false };
    let pending = PENDING[p].load(SeqCst);
    pending == pg || pending == RECLAIMING || DYING[p].load(SeqCst)
}

/// [`PENDING`] of a slot whose reclamation is under way: not free, not to be taken again.
const RECLAIMING: u64 = u64::MAX;

/// Frees the pending generation of `slot` (once: whoever takes the pending mark does it).
/// The slot counts as pending until everything is freed and its image unmapped: the
/// thread doing it may be preempted half-way, and a restart waiting for the slot must
/// not load the next generation into a window that is still mapped.
fn reclaim_pending(slot: usize) -> Option<Reclaim> {
    let generation = PENDING[slot].load(SeqCst);
    if generation == 0 || generation == RECLAIMING {
        return None;
    }
    if PENDING[slot].compare_exchange(generation, RECLAIMING, SeqCst, SeqCst).is_err() {
        return None;
    }
    let rrefs = shared::SHARED.reclaim(DomainId(slot as u32));
    let heap = dheap::destroy(slot);
    if let Some(i) = PENDING_IMAGE.lock()[slot].take() {
        loader::unload(&i);
    }
    PENDING[slot].store(0, SeqCst);
    PENDING_ANY.fetch_sub(1, SeqCst);
    Some(Reclaim {
        rref_blocks: rrefs.freed_blocks as u64,
        rref_bytes: rrefs.freed_bytes as u64,
        orphaned: rrefs.orphaned_blocks as u64,
        heap_bytes: heap,
        ..Reclaim::default()
    })
}

/// Waits (sleeping) until the dead generation of `slot` has been reclaimed: a slot's
/// memory and image window are reused only after. Threads still inside it leave as soon
/// as they run; `timeout_ms` bounds the wait for one that does not.
fn wait_reclaimed(slot: usize, timeout_ms: u64) -> Result<(), String> {
    for _ in 0..timeout_ms {
        left();
        if PENDING[slot].load(SeqCst) == 0 && !DYING[slot].load(SeqCst) {
            return Ok(());
        }
        sched::sleep_ms(1);
    }
    Err(format!("domain {slot}'s previous generation is still in use by a thread after {timeout_ms} ms"))
}

/// How long a restart or removal waits for the dead generation's threads to leave.
const RECLAIM_WAIT_MS: u64 = 5_000;

/// What [`die`] gave back. `deferred`: threads were inside, so the memory is reclaimed
/// when the last one leaves (the RRef and heap figures are then 0 here).
#[derive(Clone, Copy, Debug, Default)]
pub struct Reclaim {
    pub rref_blocks: u64,
    pub rref_bytes: u64,
    pub orphaned: u64,
    pub heap_bytes: usize,
    pub woken: usize,
    /// Devices it drove whose bus mastering was turned off.
    pub devices: usize,
    pub deferred: bool,
}

/// Finds a domain by name or id.
pub fn lookup(name_or_id: &str) -> Option<DomainId> {
    let t = TABLE.lock();
    if let Ok(i) = name_or_id.parse::<usize>() {
        return (i < MAX && t[i].is_some()).then_some(DomainId(i as u32));
    }
    (1..MAX).find(|&i| t[i].as_ref().is_some_and(|r| r.name == name_or_id)).map(|i| DomainId(i as u32))
}

/// Kills a domain as if it had crashed.
pub fn kill(id: DomainId) -> Result<Reclaim, String> {
    let _g = lifecycle();
    let slot = id.0 as usize;
    let generation = ALIVE.get(slot).map(|a| rref::rpc::key_generation(a.load(Relaxed))).unwrap_or(0);
    if slot == 0 || generation == 0 {
        return Err(format!("domain {} is not alive", id.0));
    }
    die(slot, generation, RpcError::Killed).ok_or_else(|| "it died meanwhile".into())
}

/// Reloads a domain from its pristine image (killing it first if it is alive).
pub fn restart(id: DomainId) -> Result<u64, String> {
    let _g = lifecycle();
    restart_locked(id.0 as usize)
}

fn restart_locked(slot: usize) -> Result<u64, String> {
    rpc::as_kernel(|| {
        let generation = ALIVE.get(slot).map(|a| rref::rpc::key_generation(a.load(Relaxed))).ok_or("no such domain")?;
        if slot == 0 {
            return Err("the kernel cannot be restarted".to_string());
        }
        if generation != 0 {
            // An explicit restart of a live domain: not a crash.
            die(slot, generation, RpcError::Refused);
        }
        // The new generation reuses the slot's image window and heap pages only once the
        // old one is fully reclaimed.
        wait_reclaimed(slot, RECLAIM_WAIT_MS)?;
        let start = {
            let mut t = TABLE.lock();
            let r = t[slot].as_mut().ok_or("no such domain")?;
            r.state = State::Restarting;
            r.start.clone()
        };
        let t0 = crate::time::rdtsc();
        let res = start(slot);
        let dt = crate::time::rdtsc() - t0;
        let mut t = TABLE.lock();
        let r = t[slot].as_mut().ok_or("domain vanished")?;
        match res {
            Ok(()) => {
                r.restarts += 1;
                r.last_restart_tsc = dt;
                let g = r.generation;
                drop(t);
                crate::inject::restarted(slot, g);
                Ok(g)
            }
            Err(e) => {
                r.state = State::Dead;
                Err(e)
            }
        }
    })
}

/// A plain proxy to `id`'s export in its live generation (fails fast once it dies).
pub fn grant<T: ?Sized + Proxyable + Sync>(id: DomainId) -> Result<Remote<T>, String> {
    let root = root_of::<T>(id.0 as usize, true)?;
    // SAFETY: the view is the kernel runtime's; a grant owns nothing, so no release.
    Ok(unsafe { Remote::proxied(root, T::proxy_view::<KernelRt>(), None) })
}

/// A recovery proxy to `id`'s export: follows restarts, restarts on crash.
pub fn grant_recover<T: ?Sized + Proxyable + Sync>(id: DomainId) -> Result<Remote<T>, String> {
    let root = root_of::<T>(id.0 as usize, false)?;
    let view = T::recover_view::<KernelRt>().ok_or("the interface is not declared #[interface(recover)]")?;
    // SAFETY: as in `grant`.
    Ok(unsafe { Remote::proxied(root, view, None) })
}

fn root_of<T: ?Sized + 'static>(slot: usize, alive: bool) -> Result<Target<T>, String> {
    let t = TABLE.lock();
    let r = t.get(slot).and_then(|r| r.as_ref()).ok_or("no such domain")?;
    if alive && r.state != State::Alive {
        return Err(format!("domain `{}` is not alive", r.name));
    }
    let root = r.root.as_ref().ok_or("domain never started")?;
    match root.downcast_ref::<Root<T>>() {
        Some(Root(t)) => Ok(*t),
        None => Err(format!("domain `{}` does not export this interface", r.name)),
    }
}

/// The kernel's side of every generated proxy.
pub struct KernelRt;

// SAFETY: `call` goes through `rpc::protected_call`, which checks the generation before
// dereferencing and turns a callee's death into Err without running more of its code.
unsafe impl Runtime for KernelRt {
    #[inline(always)]
    fn current() -> (DomainId, u64) {
        rpc::current()
    }

    #[inline(always)]
    fn move_token(from: DomainId) -> rref::MoveToken {
        // SAFETY: this is the proxy runtime; generated proxies move and lend only their own
        // arguments (from the caller) and results (from the callee). The counters are the
        // installed heap's (`shared::init`).
        unsafe { rref::MoveToken::with_counters(from, shared::SHARED.counters()) }
    }

    #[inline(always)]
    fn take_violation() -> bool {
        rpc::take_violation()
    }

    fn kill<T: ?Sized>(target: &Target<T>) {
        let slot = target.domain().0 as usize;
        if slot == 0 || slot >= MAX {
            return; // the kernel is trusted and never killed
        }
        let name = name_of(slot);
        log::warn!(
            "domain `{name}` (id {slot}, generation {}) broke the RRef ownership rules in a call; killed",
            target.generation()
        );
        die(slot, target.generation(), RpcError::Killed);
    }

    #[inline(always)]
    fn call<T: ?Sized, O>(target: &Target<T>, f: impl FnOnce(&T) -> O) -> RpcResult<O> {
        rpc::proxied_call(target, f)
    }

    #[inline(always)]
    fn leave() {
        rpc::leave()
    }

    #[inline]
    fn recover<T: ?Sized + 'static>(target: &Target<T>) -> RpcResult<Target<T>> {
        let slot = target.domain().0 as usize;
        // Fast path: the generation the handle was made for is still the live one, so its
        // target (a published root export of that generation, with its type checked when
        // the handle was granted) is the live target.
        if slot < MAX && ALIVE[slot].load(Relaxed) == target.key() {
            return Ok(*target);
        }
        recover_slow(target)
    }

    fn release<T: ?Sized>(target: &Target<T>) {
        let ptr = target.as_ptr();
        // Runs the object's destructor inside its domain; its memory goes back to that
        // domain's heap (the kernel's allocator routes frees by page owner).
        let _ = rpc::protected_call(target, move |_| {
            // SAFETY: the object was leaked from a Box by `rref::rpc::adopt` and is
            // released exactly once, when its only handle drops, while alive.
            drop(unsafe { Box::from_raw(ptr.as_ptr()) })
        });
    }
}

/// [`KernelRt::recover`] after the generation its handle was made for has died: the
/// slot's live root, restarting the domain first if it is dead.
#[inline(never)]
fn recover_slow<T: ?Sized + 'static>(target: &Target<T>) -> RpcResult<Target<T>> {
    let slot = target.domain().0 as usize;
    for _ in 0..2 {
        let alive = {
            let t = TABLE.lock();
            let r = t.get(slot).and_then(|r| r.as_ref()).ok_or(RpcError::DomainDead)?;
            match (r.state, r.root.as_ref()) {
                (State::Alive, Some(root)) => {
                    Some(root.downcast_ref::<Root<T>>().map(|r| r.0).ok_or(RpcError::Refused)?)
                }
                _ => None,
            }
        };
        if let Some(t) = alive {
            return Ok(t);
        }
        // Waits here while another thread restarts the slot; re-enters if this thread
        // is inside a restart (nested recovery). A slot this thread is restarting has
        // its ALIVE set for init: it is not restarted again, and the loop ends in
        // RestartFailed instead of recursing. Waits as the kernel: a thread blocked
        // here is not inside the calling domain, whose reclamation (which a restart
        // holding the lock may be waiting for) must not wait for it.
        rpc::as_kernel(|| {
            let _g = lifecycle();
            if ALIVE[slot].load(Relaxed) == 0 {
                if let Err(e) = restart_locked(slot) {
                    log::warn!("recovery of domain {slot} failed: {e}");
                    return Err(RpcError::RestartFailed);
                }
            }
            Ok(())
        })?;
    }
    Err(RpcError::RestartFailed)
}

/// A row of the `domains` table.
pub struct DomainInfo {
    pub id: u32,
    pub name: String,
    pub generation: u64,
    pub state: State,
    pub heap_used: usize,
    pub heap_reserved: usize,
    pub rrefs: u64,
    pub rref_bytes: u64,
    pub calls: u64,
    pub crashes: u64,
    pub restarts: u64,
    pub last_restart_tsc: u64,
    pub image_kib: u64,
    pub limits: limits::Limits,
    pub threads: u64,
    pub frames: u64,
}

pub fn list() -> Vec<DomainInfo> {
    let c = shared::SHARED.counters();
    // Lock order: TABLE, then the domain heaps (which never take TABLE).
    let t = TABLE.lock();
    (1..MAX)
        .filter_map(|i| {
            let r = t[i].as_ref()?;
            let h = dheap::info(i);
            let d = DomainId(i as u32);
            Some(DomainInfo {
                id: i as u32,
                name: r.name.clone(),
                generation: r.generation,
                state: r.state,
                heap_used: h.used,
                heap_reserved: h.reserved,
                rrefs: c.blocks(d),
                rref_bytes: c.bytes(d),
                calls: rpc::CALLS[i].load(Relaxed),
                crashes: r.crashes,
                restarts: r.restarts,
                last_restart_tsc: r.last_restart_tsc,
                image_kib: r.image.as_ref().map_or(0, |im| im.span / 1024),
                limits: limits::get(i),
                threads: limits::usage(i).0,
                frames: limits::usage(i).1,
            })
        })
        .collect()
}

/// Where each loaded domain image lives: `(slot, base, span, crate name)`, for the
/// profiler (`bench=NAME,profile`), which symbolizes domain code with the crate's ELF.
pub fn images() -> Vec<(usize, u64, u64, String)> {
    let t = TABLE.lock();
    (1..MAX)
        .filter_map(|i| {
            let im = t[i].as_ref()?.image.as_ref()?;
            Some((i, im.base, im.span, im.crate_name.clone()))
        })
        .collect()
}

/// Forgets a dead domain's slot entirely (tests that create many domains use this).
pub fn remove(id: DomainId) -> Result<(), String> {
    let _g = lifecycle();
    let slot = id.0 as usize;
    let generation = ALIVE.get(slot).map(|a| rref::rpc::key_generation(a.load(Relaxed))).ok_or("no such domain")?;
    if generation != 0 {
        die(slot, generation, RpcError::Refused);
    }
    rpc::as_kernel(|| wait_reclaimed(slot, RECLAIM_WAIT_MS))?;
    let r = TABLE.lock()[slot].take();
    drop(r);
    rpc::CALLS[slot].store(0, Relaxed);
    Ok(())
}

/// Prefix of [`create_program`]'s error for an image the loader refused.
pub const BAD_IMAGE: &str = "bad image: ";

/// Creates a **program domain** of kind `K` from `bytes` (read once: the image is not kept,
/// so a program is never restarted) with `limits`, as a child of the live generation
/// `owner` of another domain: the child dies with that generation. Errors start with
/// [`BAD_IMAGE`] when the loader refused the image.
///
/// At least [`SYSTEM_SLOTS`] slots stay free for system domains: a parent cannot take the
/// slots the system needs to restart or extend itself.
pub fn create_program<K: DomainKind>(
    owner: (usize, u64),
    name: &str,
    bytes: &[u8],
    limits: limits::Limits,
    make_args: impl Fn(DomainId) -> K::Args + Send + Sync + 'static,
) -> Result<DomainId, String>
where
    K::Export: Sync,
{
    let _g = lifecycle();
    let refuse: Starter = Arc::new(|_| Err("a program domain is not restarted".to_string()));
    let slot = {
        let mut t = TABLE.lock();
        if owner.0 == 0 || owner.0 >= MAX || alive_gen(owner.0) != owner.1 {
            return Err("the parent is not alive".into());
        }
        let free: Vec<usize> = (1..MAX).filter(|&i| t[i].is_none() && PENDING[i].load(SeqCst) == 0).collect();
        if free.len() <= SYSTEM_SLOTS {
            return Err(format!("all domain slots are in use ({SYSTEM_SLOTS} stay for system domains)"));
        }
        let slot = free[0];
        t[slot] = Some(Record {
            name: name.to_string(),
            generation: 0,
            state: State::Restarting,
            image: None,
            root: None,
            start: refuse,
            crashes: 0,
            restarts: 0,
            last_restart_tsc: 0,
            owner: Some(owner),
            last_words: None,
        });
        slot
    };
    match rpc::as_kernel(|| start::<K>(slot, bytes, &make_args, Some(limits))) {
        Ok(()) => Ok(DomainId(slot as u32)),
        Err(e) => {
            // Init may have died (and been reclaimed, or be waiting for threads to leave).
            let _ = rpc::as_kernel(|| wait_reclaimed(slot, RECLAIM_WAIT_MS));
            TABLE.lock()[slot] = None;
            rpc::CALLS[slot].store(0, Relaxed);
            Err(e)
        }
    }
}

/// Slots [`create_program`] leaves free.
pub const SYSTEM_SLOTS: usize = 8;

/// The parent of a program domain (`None` for other domains and free slots).
pub fn owner_of(slot: usize) -> Option<(usize, u64)> {
    TABLE.lock().get(slot).and_then(|r| r.as_ref()).and_then(|r| r.owner)
}

/// Program domains whose parent generation is dead: `(slot, generation)`.
pub fn orphans() -> Vec<(usize, u64)> {
    let t = TABLE.lock();
    (1..MAX)
        .filter_map(|i| {
            let r = t[i].as_ref()?;
            let (o, g) = r.owner?;
            (ALIVE.get(o).map_or(0, |a| rref::rpc::key_generation(a.load(Relaxed))) != g).then_some((i, r.generation))
        })
        .collect()
}

/// [`remove`] if `slot` still holds generation `generation` (not a later tenant).
pub fn remove_if(slot: usize, generation: u64) -> Result<(), String> {
    let _g = lifecycle();
    let same = TABLE.lock().get(slot).and_then(|r| r.as_ref()).is_some_and(|r| r.generation == generation);
    if !same {
        return Err(format!("domain {slot} generation {generation} is gone"));
    }
    remove(DomainId(slot as u32))
}

/// The live root export of `id` as a target (to make proxies from later, [`proxy`]).
pub fn root_target<T: ?Sized + Proxyable + Sync>(id: DomainId) -> Result<Target<T>, String> {
    root_of::<T>(id.0 as usize, true)
}

/// A plain proxy to `target` (calls fail fast once its generation dies).
pub fn proxy<T: ?Sized + Proxyable + Sync>(target: Target<T>) -> Remote<T> {
    // SAFETY: the view is the kernel runtime's; a grant owns nothing, so no release.
    unsafe { Remote::proxied(target, T::proxy_view::<KernelRt>(), None) }
}

/// Hands a kernel object to domains: a proxy into the kernel (slot 0), so its code and
/// allocations stay the kernel's.
pub fn export<T: ?Sized + Proxyable + Sync>(object: &'static T) -> Remote<T> {
    // SAFETY: the object is 'static and the kernel's generation never ends, so the target
    // is valid for every call; a grant owns nothing, so no release.
    unsafe {
        let t = Target::new(DomainId(0), KERNEL_GEN, NonNull::from(object));
        Remote::proxied(t, T::proxy_view::<KernelRt>(), None)
    }
}

/// The state of `slot`'s record (`None`: no domain there).
pub fn state_of(slot: usize) -> Option<State> {
    TABLE.lock().get(slot).and_then(|r| r.as_ref()).map(|r| r.state)
}

/// The generation currently alive in `slot` (0: none).
pub fn alive_generation(slot: usize) -> u64 {
    ALIVE.get(slot).map_or(0, |a| rref::rpc::key_generation(a.load(Relaxed)))
}

/// Records why `slot`'s generation `generation` died (kept until the next death or removal).
pub fn note_last_words(slot: usize, generation: u64, words: &str) {
    let mut end = words.len().min(256);
    while !words.is_char_boundary(end) {
        end -= 1;
    }
    let s = words[..end].to_string();
    if let Some(r) = TABLE.lock().get_mut(slot).and_then(|r| r.as_mut()).filter(|r| r.generation == generation) {
        r.last_words = Some(s);
    }
}

/// The last death's report of `slot` (see [`note_last_words`]).
pub fn last_words(slot: usize) -> Option<String> {
    TABLE.lock().get(slot).and_then(|r| r.as_ref()).and_then(|r| r.last_words.clone())
}

/// A domain faulted (exception in its code): contain it like a panic. Returns only if the
/// fault is not a domain's.
///
/// Contained: the exceptions code can raise at its own instruction (#DE, #DB, #BP, #OF,
/// #BR, #UD, #NM, #SS, #GP, #PF, #MF, #AC, #XM) with the instruction in the running
/// domain's image window; and a double fault that is a stack overflow of a domain: CR2 in
/// the running thread's guard page, interrupts enabled at the fault (no kernel spin lock
/// held), the running context a domain's. (A #DF's saved rip is undefined, so it is not
/// checked; the overflowing code is the domain's or a proxy's, since kernel services a
/// domain calls refuse to start without [`rpc::STACK_RESERVE`] of stack.) The containment
/// then runs on the double-fault stack and resumes the innermost continuation, below
/// the overflowed frames. Everything else stays fatal.
pub fn fault_in_domain(frame: &crate::arch::trap::TrapFrame) {
    let (d, generation) = rpc::current();
    let slot = d.0 as usize;
    if slot == 0 || !rpc::has_continuation() {
        return;
    }
    if frame.vector == 8 {
        let cr2 = x86_64::registers::control::Cr2::read_raw();
        let interrupts_were_on = frame.rflags & (1 << 9) != 0;
        let own_guard = matches!(
            (crate::mem::paging::classify(cr2), crate::sched::current_stack_slot()),
            (Some(crate::mem::paging::StackHit::Guard(hit)), Some(mine)) if hit == mine
        );
        if !own_guard || !interrupts_were_on {
            return;
        }
        let reason = reason_for_fault(slot, generation);
        contain(slot, generation, RpcError::Panicked, |name| {
            note_last_words(slot, generation, "stack overflow");
            crate::println!(
                "domain `{name}` (id {slot}, generation {generation}) overflowed its stack (CR2 {cr2:#x} is the thread's guard page); contained"
            );
        });
        rpc::unwind(reason);
    }
    let in_window = frame.rip >= loader::window(slot) && frame.rip < loader::window(slot) + crate::mem::paging::DOMAIN_WINDOW;
    let containable = matches!(frame.vector, 0 | 1 | 3 | 4 | 5 | 6 | 7 | 12 | 13 | 14 | 16 | 17 | 19);
    if !in_window || !containable {
        return;
    }
    if alive_gen(slot) != generation {
        // Already dead: a thread that was in kernel code (a proxy, a service) when its
        // domain was killed went on into the unmapped image. Not a new fault: unwind.
        rpc::unwind(death_reason(slot));
    }
    let reason = reason_for_fault(slot, generation);
    contain(slot, generation, RpcError::Panicked, |name| {
        note_last_words(
            slot,
            generation,
            &format!("{} at offset {:#x}", crate::fault::exception_name(frame.vector as u8), frame.rip - loader::window(slot)),
        );
        crate::println!(
            "domain `{name}` (id {slot}, generation {generation}) faulted: {} at {:#x} (offset {:#x} in its image); contained",
            crate::fault::exception_name(frame.vector as u8),
            frame.rip,
            frame.rip - loader::window(slot)
        );
    });
    rpc::unwind(reason);
}

/// A fault in a generation that is already dead (its code was unmapped under a thread
/// still inside it) reports why it died; otherwise the fault is the crash.
fn reason_for_fault(slot: usize, generation: u64) -> RpcError {
    if alive_gen(slot) == generation { RpcError::Panicked } else { death_reason(slot) }
}

/// Reports a crash of the running domain and reclaims it. Everything allocated here is
/// freed before returning, because the caller then unwinds, abandoning its own frame.
pub fn contain(slot: usize, generation: u64, reason: RpcError, report: impl FnOnce(&str)) {
    rpc::as_kernel(|| {
        let name = name_of(slot);
        report(&name);
        if log::log_enabled!(log::Level::Debug) {
            let mut s = String::new();
            crate::fault::backtrace(&mut s, 0, crate::fault::current_rbp());
            crate::println!("{s}");
        }
        if let Some(r) = die(slot, generation, reason) {
            log::info!(
                "domain `{name}` reclaimed: {} RRefs ({} bytes), {} orphaned, {} KiB of heap, {} devices quiesced",
                r.rref_blocks,
                r.rref_bytes,
                r.orphaned,
                r.heap_bytes / 1024,
                r.devices
            );
        }
    });
}

/// Entry check of every kernel service a domain calls directly (`Syscalls`, the shared
/// heap): with less than [`rpc::STACK_RESERVE`] of stack left, the service would risk
/// overflowing inside the kernel, maybe holding a lock. The domain has in effect
/// overflowed its stack: it is contained as if it had, and the service never runs.
#[inline]
pub fn guard_stack() {
    if !rpc::stack_low() {
        return;
    }
    let (d, generation) = rpc::current();
    let slot = d.0 as usize;
    if slot == 0 || !rpc::has_continuation() {
        return;
    }
    contain(slot, generation, RpcError::Panicked, |name| {
        crate::println!(
            "domain `{name}` (id {slot}, generation {generation}) called the kernel with less than {} KiB of stack left: stack overflow; contained",
            rpc::STACK_RESERVE / 1024
        );
    });
    rpc::unwind(RpcError::Panicked);
}

// ---------------------------------------------------------------------------------------
// The call watchdog.
//
// Two bounds per call (`limits`): its CPU time (`budget`) and its runnable time (`wall`:
// running, or ready to run and waiting for the CPU). The timer tick charges the running
// thread's innermost call and checks both (`rpc::charge`); the context switch charges
// what a thread ran before it was switched out and, as runnable time, how long the
// incoming one waited (`sched::schedule`); the watchdog thread's scan finds ready threads
// whose wait has taken their call past its runnable bound (a thread starved entirely
// reaches no tick).

/// Per slot: the generation whose call overran a bound (0: none), set by the timer or the
/// scan; and which bound (`OVERDUE_RUNNABLE`: the runnable-time one).
static OVERDUE: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];
static OVERDUE_RUNNABLE: [AtomicBool; MAX] = [const { AtomicBool::new(false) }; MAX];
static WATCHDOG_TID: AtomicU64 = AtomicU64::new(0);
/// Calls ended by the watchdog since boot.
pub static WATCHDOG_KILLS: AtomicU64 = AtomicU64::new(0);
/// How often the watchdog scans ready threads for calls past their runnable bound.
const SCAN_MS: u64 = 100;

fn overdue(slot: usize, generation: u64, bound: rpc::Bound) -> bool {
    OVERDUE_RUNNABLE[slot].store(bound == rpc::Bound::Runnable, Relaxed);
    OVERDUE[slot].swap(generation, Relaxed) != generation
}

/// Timer-interrupt hook (after the scheduler's): charges the running call and, if it
/// overran, wakes the watchdog thread, which kills the callee in thread context.
pub fn watchdog_tick() {
    if let Some((slot, generation, bound)) = rpc::charge(crate::time::rdtsc()) {
        if overdue(slot, generation, bound) {
            let tid = WATCHDOG_TID.load(Relaxed);
            if tid != 0 {
                sched::wake_sleeper(tid);
            }
        }
    }
}

/// Starts the watchdog thread (High priority, so it preempts any domain thread).
pub fn start_watchdog() -> Result<(), String> {
    let h = sched::Builder::new("watchdog")
        .priority(sched::Priority::High)
        .spawn(|| loop {
            sched::sleep_unless(SCAN_MS * 1_000_000, || OVERDUE.iter().any(|o| o.load(Relaxed) != 0));
            for (slot, generation) in sched::ready_overdue() {
                overdue(slot, generation, rpc::Bound::Runnable);
            }
            for slot in 1..MAX {
                let generation = OVERDUE[slot].swap(0, Relaxed);
                if generation == 0 {
                    continue;
                }
                let l = limits::get(slot);
                let name = name_of(slot);
                let (words, bound) = if OVERDUE_RUNNABLE[slot].load(Relaxed) {
                    ("ran past its runnable-time bound", format!("its runnable-time bound: {} ms running or ready to run", l.wall() / 1_000_000))
                } else {
                    ("ran past its CPU budget", format!("its CPU bound: {} ms of CPU time", l.budget_ns / 1_000_000))
                };
                note_last_words(slot, generation, words);
                if let Some(r) = die(slot, generation, RpcError::Timeout) {
                    WATCHDOG_KILLS.fetch_add(1, Relaxed);
                    crate::println!(
                        "watchdog: domain `{name}` (id {slot}, generation {generation}) ran a call past {bound}; killed (reclaimed {} RRefs, {} KiB of heap)",
                        r.rref_blocks,
                        r.heap_bytes / 1024
                    );
                }
            }
        })
        .map_err(|e| format!("spawning the watchdog: {e:?}"))?;
    WATCHDOG_TID.store(h.tid(), Relaxed);
    Ok(())
}

pub fn name_of(slot: usize) -> String {
    TABLE.lock().get(slot).and_then(|r| r.as_ref()).map_or_else(|| format!("#{slot}"), |r| r.name.clone())
}
