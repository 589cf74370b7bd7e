//! Per-domain limits (quotas and the call watchdog's budget) and their usage counters.
//!
//! Every resource a domain can make the kernel spend is bounded here, so that exhausting
//! it is the domain's failure — its allocation fails, it panics, it is contained — and
//! never the kernel's or another domain's:
//!
//! | limit | default | what it bounds | on excess |
//! | --- | --- | --- | --- |
//! | `heap` | 32 MiB | bytes of private-heap chunks | the allocation returns null (→ alloc error → panic) |
//! | `shared` | 8 MiB | shared-heap bytes allocated while the domain owns that many | `RRef::try_new` fails, `RRef::new` panics |
//! | `threads` | 16 | live threads the domain created | `Syscalls::spawn` returns `Err(Refused)` |
//! | `frames` | 40 MiB | physical frames held for it: heap chunks + thread stacks | as for heap / threads |
//! | `budget` | 1 s | CPU time inside one call (excluding calls it makes) | the watchdog kills it; the caller gets `Timeout` |
//! | `wall` | 3 × `budget` | *runnable* time inside one call: running, or ready to run and waiting for the CPU (not blocked or sleeping; excluding calls it makes) | as for `budget` |
//!
//! Reasons: the guest has 256 MiB; the largest domain today (the network stack) uses
//! about 2 MiB of heap, so 32 MiB leaves tenfold room while four hostile domains together
//! cannot take the memory the others need. The shared heap is 32 MiB for everyone; one
//! domain may allocate a quarter of it (the NIC drivers hold ~1 MiB of buffers). Sixteen
//! threads is twice what any domain starts. The budget is 1 s because the longest
//! legitimate call today (a domain restart through a recovery proxy, or init) takes
//! under 100 ms under TCG, and a spinning callee is noticed while a human still waits.
//! The CPU budget alone is stretched by starvation: a call spinning on a Low-priority
//! thread that gets a tenth of the CPU uses its 1 s budget in 10 s of wall time, while
//! whoever waits for that thread waits too. `wall` bounds the time the call could have
//! run — running or ready — so starvation cannot stretch it beyond that, while a call
//! that sleeps or blocks (waiting for a device, a lock, a timer) is not charged for it.
//! Three times the budget leaves a call that spins at Normal priority among two other
//! busy threads of its level its whole CPU budget. `wall` applies only once the call has
//! used a tenth of its CPU budget: a spinning call uses the CPU whenever it gets it and
//! soon qualifies, while a call that merely waits behind higher-priority threads (a
//! driver call of a few µs on the low-priority forwarding thread) is not ended for the
//! scheduler's choice — the first version of this bound ended such calls under the
//! soak's load. A call that never gets the CPU at all is therefore not ended by `wall`;
//! it holds up only its own thread, which could not run anyway.
//!
//! Independently of the per-domain limits, domain heaps may never take the last
//! [`KERNEL_RESERVE_FRAMES`] free frames: those stay for the kernel (thread stacks,
//! page tables, its heap's growth) whatever the domains do.
//!
//! Limits are set per domain *name* on the kernel command line and apply to each
//! generation: `limit=<name>:heap=8M,shared=1M,threads=4,frames=4M,budget=200ms,wall=1s`
//! (any subset; `budget=0ms` turns the watchdog off, and with it the default `wall`;
//! `wall=0ms` leaves only the CPU bound; `limit=*:...` changes the defaults).
//! The kernel's wiring sets its own per-domain defaults with [`configure_default`] (the
//! forwarding domain, whose `run` is one call for ever, has no budget); a command-line
//! line for the same name wins. `domains` shows usage/limit.

use super::MAX;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Free frames domain heaps and domain threads never take (8 MiB).
pub const KERNEL_RESERVE_FRAMES: usize = 2048;

/// One domain's limits. Byte sizes; `budget_ns` 0 means no CPU bound, `wall_ns` 0 no
/// runnable-time bound (`None`: three times `budget_ns`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub heap: u64,
    pub shared: u64,
    pub threads: u64,
    pub frames: u64,
    pub budget_ns: u64,
    pub wall_ns: Option<u64>,
}

impl Limits {
    /// The runnable-time bound in force (0: none).
    pub fn wall(&self) -> u64 {
        self.wall_ns.unwrap_or(self.budget_ns.saturating_mul(3))
    }
}

pub const DEFAULT: Limits = Limits {
    heap: 32 << 20,
    shared: 8 << 20,
    threads: 16,
    frames: (40 << 20) / 4096,
    budget_ns: 1_000_000_000,
    wall_ns: None,
};

struct Slot {
    heap: AtomicU64,
    shared: AtomicU64,
    threads: AtomicU64,
    frames: AtomicU64,
    /// The two bounds of the call watchdog in µs (0: none), as [`super::rpc::charge`]
    /// compares them, and as configured.
    budget_us: AtomicU64,
    wall_us: AtomicU64,
    budget_ns: AtomicU64,
    wall_ns: AtomicU64,
    /// Usage the kernel tracks here (heap and shared usage live with their heaps).
    live_threads: AtomicU64,
    held_frames: AtomicU64,
}

static SLOTS: [Slot; MAX] = [const {
    Slot {
        heap: AtomicU64::new(0),
        shared: AtomicU64::new(0),
        threads: AtomicU64::new(0),
        frames: AtomicU64::new(0),
        budget_us: AtomicU64::new(0),
        wall_us: AtomicU64::new(0),
        budget_ns: AtomicU64::new(0),
        wall_ns: AtomicU64::new(0),
        live_threads: AtomicU64::new(0),
        held_frames: AtomicU64::new(0),
    }
}; MAX];

/// Limits configured on the command line: `(name or "*", limits)`.
static CONFIGURED: spin::Mutex<Vec<(String, Limits)>> = spin::Mutex::new(Vec::new());

/// Parses one `limit=` value, `<name>:key=value,...`, on top of the limits in force for
/// that name. Sizes take K/M/G suffixes, budgets ms/us/s.
pub fn configure(spec: &str) -> Result<(), String> {
    let (name, rest) = spec.split_once(':').ok_or("expected <domain>:key=value,...")?;
    let mut l = for_name(name);
    for kv in rest.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').ok_or_else(|| alloc::format!("`{kv}`: expected key=value"))?;
        match k {
            "heap" => l.heap = size(v)?,
            "shared" => l.shared = size(v)?,
            "frames" => l.frames = size(v)?.div_ceil(4096),
            "threads" => l.threads = v.parse().map_err(|_| alloc::format!("threads=`{v}`: not a number"))?,
            "budget" => l.budget_ns = duration_ns(v)?,
            "wall" => l.wall_ns = Some(duration_ns(v)?),
            _ => return Err(alloc::format!("unknown limit `{k}` (heap, shared, threads, frames, budget, wall)")),
        }
    }
    let mut c = CONFIGURED.lock();
    c.retain(|(n, _)| n != name);
    c.push((String::from(name), l));
    Ok(())
}

/// [`configure`], unless the command line already set limits for that name: how the
/// kernel's wiring gives a domain its policy defaults (a forwarding loop is one call that
/// runs for ever, so `forward` has no watchdog budget) while the user keeps the last word.
pub fn configure_default(spec: &str) -> Result<(), String> {
    let name = spec.split_once(':').map_or(spec, |(n, _)| n);
    if CONFIGURED.lock().iter().any(|(n, _)| n == name) {
        return Ok(());
    }
    configure(spec)
}

fn size(v: &str) -> Result<u64, String> {
    let (num, mul) = match v.as_bytes().last() {
        Some(b'K' | b'k') => (&v[..v.len() - 1], 1 << 10),
        Some(b'M' | b'm') => (&v[..v.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    num.parse::<u64>().ok().and_then(|n| n.checked_mul(mul)).ok_or_else(|| alloc::format!("`{v}`: not a size"))
}

fn duration_ns(v: &str) -> Result<u64, String> {
    let (num, mul) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1_000_000)
    } else if let Some(n) = v.strip_suffix("us") {
        (n, 1_000)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1_000_000_000)
    } else {
        return Err(alloc::format!("`{v}`: give a unit (ms, us, s)"));
    };
    num.parse::<u64>().ok().and_then(|n| n.checked_mul(mul)).ok_or_else(|| alloc::format!("`{v}`: not a duration"))
}

/// The limits for a domain called `name`: its own line, else the `*` line, else [`DEFAULT`].
pub fn for_name(name: &str) -> Limits {
    let c = CONFIGURED.lock();
    c.iter()
        .find(|(n, _)| n == name)
        .or_else(|| c.iter().find(|(n, _)| n == "*"))
        .map_or(DEFAULT, |(_, l)| *l)
}

/// Installs `l` for `slot` (before each generation starts).
pub fn apply(slot: usize, l: Limits) {
    let s = &SLOTS[slot];
    s.heap.store(l.heap, Relaxed);
    s.shared.store(l.shared, Relaxed);
    s.threads.store(l.threads, Relaxed);
    s.frames.store(l.frames, Relaxed);
    s.budget_ns.store(l.budget_ns, Relaxed);
    s.wall_ns.store(l.wall(), Relaxed);
    s.budget_us.store(bound_us(l.budget_ns), Relaxed);
    s.wall_us.store(bound_us(l.wall()), Relaxed);
}

/// A watchdog bound in µs as `rpc::charge` compares it: 0 stays 0 (none), anything else
/// at least 1 µs and at most what a half of `Cont::cpu` can hold (a longer bound is
/// never reached: the charged time saturates below it).
fn bound_us(ns: u64) -> u64 {
    if ns == 0 { 0 } else { (ns / 1000).clamp(1, super::rpc::HALF_MAX) }
}

pub fn get(slot: usize) -> Limits {
    let s = &SLOTS[slot];
    Limits {
        heap: s.heap.load(Relaxed),
        shared: s.shared.load(Relaxed),
        threads: s.threads.load(Relaxed),
        frames: s.frames.load(Relaxed),
        budget_ns: s.budget_ns.load(Relaxed),
        wall_ns: Some(s.wall_ns.load(Relaxed)),
    }
}

/// The watchdog's CPU bound of `slot` in µs (0: none). Slot 0, the kernel, has none.
#[inline]
pub fn budget_us(slot: usize) -> u64 {
    SLOTS[slot % MAX].budget_us.load(Relaxed)
}

/// The watchdog's runnable-time bound of `slot` in µs (0: none).
#[inline]
pub fn wall_us(slot: usize) -> u64 {
    SLOTS[slot % MAX].wall_us.load(Relaxed)
}

#[inline]
pub fn heap_limit(slot: usize) -> u64 {
    SLOTS[slot % MAX].heap.load(Relaxed)
}

#[inline]
pub fn shared_limit(slot: usize) -> u64 {
    if slot == 0 {
        return u64::MAX;
    }
    SLOTS[slot % MAX].shared.load(Relaxed)
}

/// Takes `n` frames from `slot`'s frame quota; false (and nothing taken) if that would
/// exceed it. The kernel (slot 0) has no quota.
pub fn take_frames(slot: usize, n: u64) -> bool {
    if slot == 0 {
        return true;
    }
    let s = &SLOTS[slot % MAX];
    let limit = s.frames.load(Relaxed);
    s.held_frames.fetch_update(Relaxed, Relaxed, |h| (h + n <= limit).then_some(h + n)).is_ok()
}

pub fn give_frames(slot: usize, n: u64) {
    if slot != 0 {
        let _ = SLOTS[slot % MAX].held_frames.fetch_update(Relaxed, Relaxed, |h| Some(h.saturating_sub(n)));
    }
}

/// Counts a new thread of `slot`; false if it already has its limit.
pub fn take_thread(slot: usize) -> bool {
    let s = &SLOTS[slot % MAX];
    let limit = s.threads.load(Relaxed);
    s.live_threads.fetch_update(Relaxed, Relaxed, |n| (n < limit).then_some(n + 1)).is_ok()
}

pub fn give_thread(slot: usize) {
    let _ = SLOTS[slot % MAX].live_threads.fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
}

/// Live threads and held frames of `slot`.
pub fn usage(slot: usize) -> (u64, u64) {
    let s = &SLOTS[slot % MAX];
    (s.live_threads.load(Relaxed), s.held_frames.load(Relaxed))
}
