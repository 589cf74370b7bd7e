//! The seeded fault injector (`inject=SEED`; docs/reliability.md, "Fault injection").
//!
//! **Streams.** Each target domain has a stream of faults of its own, with its own
//! splitmix64 generator seeded from SEED and the stream's index ([`stream_seed`]; streams
//! are numbered in the order of the target list). For the k-th fault of a stream it
//! draws, in this order, the delay after the stream's previous fault, the kind (among the
//! kinds that apply to the domain) and a kind-specific parameter. A fault's scheduled
//! time is the injector's start plus the sum of its stream's delays up to it, so it too
//! depends only on SEED and the command line; faults are numbered n = 1, 2, … in the
//! order of their scheduled times over all streams (a tie goes to the lower stream
//! index). So the same seed and command line (and the same target domains) give fault n
//! the same stream, index k, kind, target and parameter in every run; only *whether and
//! when* it takes effect depends on the run (a kill needs a timer tick that preempts the
//! target, a panic a call into it). `inject.rate` is the rate over all streams (each
//! stream runs at rate / streams), `inject.count` the number of faults over all streams.
//!
//! Each stream works on at most one fault at a time, in its own domain: from its
//! scheduled time (or when the stream's previous fault is done, if later) it waits for
//! the target to be alive, arms the fault and waits for it to take effect; a fault that
//! cannot within its window (`inject.window=MS`, default [`WINDOW_MS`], counted from its
//! scheduled time, so a stream never falls more than a window behind) is logged
//! `skipped`. Faults of different streams overlap: one per target domain may be armed at
//! once. One thread (High priority) serves every stream: it sleeps until the earliest
//! scheduled time or deadline, or until a hook reports a fault that took effect.
//!
//! Where each kind takes effect (all state is here; the hooks elsewhere are one check):
//! * **kill**: the timer interrupt ([`tick`]) that preempts the target domain's code (the
//!   running context is the target's live generation); the injector thread, woken by it
//!   and of higher priority than any domain thread, kills the generation before the
//!   preempted thread runs another instruction — wherever it was.
//! * **hang**: such a tick inside a budgeted call of the target, in the target's own code
//!   (not kernel code running for it); when that thread leaves
//!   the interrupt ([`trap_exit`]) it spins, as the domain, until the call watchdog ends
//!   the call (the real watchdog path: time charged to the call, `Timeout`). Up to
//!   [`MAX_HANGS`] threads may be hung at once (one per stream at most); a hang armed
//!   while that many spin waits for a later tick.
//! * **panic**: the next protected call into the target, at its entry or its exit (the
//!   parameter's parity), behind one load and branch on [`ARMED`] in the call path (set
//!   while a panic is armed for any domain). At entry ([`proxy_entry`]) the callee dies
//!   as a panicking domain does (`domain::contain` with the panic report) before any of
//!   its code runs; the call returns
//!   `Err(Panicked)` and its arguments stay the caller's. At exit ([`proxy_exit`]) the
//!   callee ran the call to its end and dies before the caller sees the result, which is
//!   discarded; the call returns `Err(Panicked)`, as when a callee panics on its way out.
//!   Only calls whose result owns nothing (no RRef, no returned object) take a panic at
//!   exit: the armed panic waits for the next such call into the target.
//! * **netdev** / **blkdev**: the target driver asks ([`device_fault`], through
//!   `frond_domrt::device_fault` behind a one-load hint) where it reads a used-ring entry
//!   or a request's status; the kernel answers once with the corruption to apply.
//!
//! Every armed fault is keyed by its target's slot and generation, so faults in a parent
//! and its program domains (rv6) overlap soundly: a parent's death kills its programs'
//! generations, and a fault armed for one of those can then no longer take effect (its
//! stream waits for the target to be alive again, within the window).
//!
//! Every fault is one console line (`inject: n=… seed=… t_ms=… kind=… domain=… slot=…
//! gen=… ends=… stream=S:K at=…`), and the restart that brings its domain back another
//! ([`restarted`], matched by slot and generation).

use crate::arch::irq::IrqMutex;
use crate::domain::{self, rpc};
use crate::println;
use crate::sched;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use rref::rpc::RpcError;

/// How long a drawn fault waits for its moment before it is logged `skipped`, unless
/// `inject.window=MS` says otherwise.
pub const WINDOW_MS: u64 = 3000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Kind {
    Kill = 0,
    Panic = 1,
    Hang = 2,
    Netdev = 3,
    Blkdev = 4,
}

const KINDS: [Kind; 5] = [Kind::Kill, Kind::Panic, Kind::Hang, Kind::Netdev, Kind::Blkdev];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Panic => "panic",
            Kind::Hang => "hang",
            Kind::Netdev => "netdev",
            Kind::Blkdev => "blkdev",
        }
    }
    fn parse(s: &str) -> Option<Kind> {
        KINDS.iter().copied().find(|k| k.name() == s)
    }
}

/// The parsed command line.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// Faults per second of guest time.
    pub rate: u64,
    pub kinds: Vec<Kind>,
    /// Target names; empty: every restartable system domain alive at the start.
    pub domains: Vec<String>,
    /// Stop after this many (0: never).
    pub count: u64,
    /// Milliseconds after boot of the first fault's earliest moment.
    pub start_ms: u64,
    /// How long each fault waits for its moment (milliseconds).
    pub window_ms: u64,
}

/// Parses `inject=SEED` and `inject.*` options (`None` if `inject` is absent).
pub fn parse(opts: &[(&str, &str)]) -> Result<Option<Config>, String> {
    let get = |k: &str| opts.iter().rev().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let Some(seed) = get("inject") else {
        if let Some((k, _)) = opts.first() {
            return Err(format!("{k}= without inject=SEED"));
        }
        return Ok(None);
    };
    let num = |k: &str, d: u64| -> Result<u64, String> {
        get(k).map_or(Ok(d), |v| v.parse().map_err(|_| format!("{k}={v}: expected a number")))
    };
    let seed = seed.parse().map_err(|_| format!("inject={seed}: expected a number (the seed)"))?;
    let rate = num("inject.rate", 1)?;
    if rate == 0 || rate > 1000 {
        return Err("inject.rate: 1 to 1000 faults per second".into());
    }
    let kinds = match get("inject.kinds") {
        None | Some("all") => KINDS.to_vec(),
        Some(v) => v.split(',').map(|k| Kind::parse(k).ok_or_else(|| format!("inject.kinds: unknown kind `{k}`"))).collect::<Result<_, _>>()?,
    };
    let domains = get("inject.domains").map_or_else(Vec::new, |v| v.split(',').filter(|s| !s.is_empty()).map(String::from).collect());
    for (k, _) in opts {
        if !matches!(*k, "inject" | "inject.rate" | "inject.kinds" | "inject.domains" | "inject.count" | "inject.start" | "inject.window") {
            return Err(format!("unknown option {k}="));
        }
    }
    let window_ms = num("inject.window", WINDOW_MS)?;
    if !(10..=60_000).contains(&window_ms) {
        return Err("inject.window: 10 to 60000 ms".into());
    }
    Ok(Some(Config { seed, rate, kinds, domains, count: num("inject.count", 0)?, start_ms: num("inject.start", 1000)?, window_ms }))
}

/// splitmix64: the position in the sequence is the number of draws.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// splitmix64's output function: the stream seeds' mixer.
fn mix(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of stream `index`'s generator: SEED and the index mixed, so that no stream's
/// sequence is another's shifted by a few draws.
pub fn stream_seed(seed: u64, index: usize) -> u64 {
    mix(seed ^ mix((index as u64).wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// One drawn fault: what a stream's sequence decides, independent of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draw {
    /// After the stream's previous fault (µs).
    pub delay_us: u64,
    pub kind: Kind,
    pub param: u64,
}

/// Draws a stream's next fault: `mean_us` is the stream's mean interval, `kinds` (non-empty)
/// the kinds that apply to its domain, in a fixed order.
pub fn draw(rng: &mut Rng, mean_us: u64, kinds: &[Kind]) -> Draw {
    // Uniform in [0.5, 1.5] × the mean interval.
    let delay_us = mean_us / 2 + rng.below(mean_us + 1);
    let kind = kinds[rng.below(kinds.len() as u64) as usize];
    let param = rng.next();
    Draw { delay_us, kind, param }
}

/// Whether a fault of `kind` can happen in a domain loaded from crate `krate`: device
/// faults only in the drivers that ask for them.
fn applies(kind: Kind, krate: &str) -> bool {
    match kind {
        Kind::Netdev => krate == "dom-virtio-net",
        Kind::Blkdev => krate == "dom-virtio-blk",
        _ => true,
    }
}

// ---------------------------------------------------------------------------------------
// The armed faults, shared by the thread and the hooks.

/// True while a panic is armed for some domain: the one word a protected call reads (see
/// [`proxy_entry`]).
pub static ARMED: AtomicBool = AtomicBool::new(false);
/// True while a kill or hang waits for its tick somewhere: the one word the timer reads.
static TICK_ARMED: AtomicBool = AtomicBool::new(false);
/// Threads hung at once, at most.
pub const MAX_HANGS: usize = 8;
/// Threads that must spin at their interrupt's exit (hang), as tid + 1 (0: a free entry),
/// and how many there are (the one word the interrupt exit reads). Touched only with
/// interrupts off (the timer interrupt, the interrupt exit), so loads and stores suffice.
static HANGS: [AtomicU64; MAX_HANGS] = [const { AtomicU64::new(0) }; MAX_HANGS];
static HANGING: AtomicUsize = AtomicUsize::new(0);
/// The instruction the latest interrupt preempted (recorded by the trap entry).
static PREEMPTED_RIP: AtomicU64 = AtomicU64::new(0);
static THREAD: AtomicU64 = AtomicU64::new(0);
/// Set by a hook when a fault took effect; the thread clears it before looking.
static FIRED: AtomicBool = AtomicBool::new(false);

/// The device-fault hint domains read (bit `1 << kind` of `frond_domrt::fault`).
pub static HINT: frond_domrt::FaultHint = frond_domrt::FaultHint::new();

#[derive(Clone, Copy)]
struct Armed {
    /// The fault's number.
    n: u64,
    kind: Kind,
    generation: u64,
    param: u64,
    /// Set by the hook that took it: what it hit, and when.
    fired: bool,
    at: u64,
    at_name: &'static str,
    t_us: u64,
}

/// The armed fault of each domain slot (one stream per target, so at most one per slot).
static ARMS: IrqMutex<[Option<Armed>; domain::MAX]> = IrqMutex::new([None; domain::MAX]);

/// Sets the hooks' one-word checks from what is armed and not yet fired. With `ARMS`
/// locked (the hint's writes are serialised by it).
fn publish(arms: &[Option<Armed>; domain::MAX]) {
    let (mut tick, mut panic, mut hint) = (false, false, 0u32);
    for a in arms.iter().flatten().filter(|a| !a.fired) {
        match a.kind {
            Kind::Kill | Kind::Hang => tick = true,
            Kind::Panic => panic = true,
            Kind::Netdev => hint |= 1 << frond_domrt::fault::NETDEV,
            Kind::Blkdev => hint |= 1 << frond_domrt::fault::BLKDEV,
        }
    }
    TICK_ARMED.store(tick, Relaxed);
    ARMED.store(panic, Relaxed);
    // SAFETY: the injector is the hint's only writer, and its writes are serialised by
    // the `ARMS` lock the caller holds.
    unsafe { HINT.set(hint) };
}

/// Marks `a` as taken (with `ARMS` locked) and wakes the injector thread.
fn fire(a: &mut Armed, at: u64, at_name: &'static str) {
    a.fired = true;
    a.at = at;
    a.at_name = at_name;
    a.t_us = crate::time::uptime_us();
    FIRED.store(true, Relaxed);
    let tid = THREAD.load(Relaxed);
    if tid != 0 {
        sched::wake_sleeper(tid);
    }
}

/// Trap entry: remembers where the interrupted code was (for the kill's `at=`).
#[inline(always)]
pub fn note_rip(rip: u64) {
    PREEMPTED_RIP.store(rip, Relaxed);
}

/// Timer interrupt hook: a kill or hang waiting for a tick that preempts its target.
#[inline(always)]
pub fn tick() {
    if TICK_ARMED.load(Relaxed) {
        tick_armed();
    }
}

#[cold]
#[inline(never)]
fn tick_armed() {
    let (d, generation) = rpc::current();
    let slot = d.0 as usize;
    let mut arms = ARMS.lock();
    let Some(a) = arms.get_mut(slot).and_then(|a| a.as_mut()) else { return };
    if a.fired || !matches!(a.kind, Kind::Kill | Kind::Hang) || generation != a.generation {
        return;
    }
    if a.kind == Kind::Hang {
        // The watchdog must be able to end it: a budgeted call, a budget. And the domain's
        // own code must be what hangs: a thread preempted in kernel code running for the
        // domain (a service it called, a call's way in or out) is not unwound at interrupt
        // exit once the domain is dead — it goes on to the kernel's next check — so
        // spinning it there would resume kernel code after the domain's end.
        if !rpc::in_budgeted_call()
            || domain::limits::budget_us(slot) == 0
            || PREEMPTED_RIP.load(Relaxed) < crate::mem::paging::DOMAIN_REGION
        {
            return;
        }
        // A free entry, or a later tick (interrupts are off: nothing else touches them).
        let Some(e) = HANGS.iter().find(|e| e.load(Relaxed) == 0) else { return };
        e.store(sched::current_tid() + 1, Relaxed);
        HANGING.store(HANGING.load(Relaxed) + 1, Relaxed);
    }
    let rip = PREEMPTED_RIP.load(Relaxed);
    fire(a, rip, "");
    publish(&arms);
}

/// Interrupt exit (before the unwind check): a hung thread spins here, as its domain,
/// with interrupts on, until its generation is dead; the unwind check then abandons it.
#[inline(always)]
pub fn trap_exit() {
    if HANGING.load(Relaxed) != 0 {
        hang_here();
    }
}

#[cold]
#[inline(never)]
fn hang_here() {
    let me = sched::current_tid() + 1;
    // Interrupts are off here: the entries are the timer's and ours alone.
    let Some(e) = HANGS.iter().find(|e| e.load(Relaxed) == me) else { return };
    e.store(0, Relaxed);
    HANGING.store(HANGING.load(Relaxed) - 1, Relaxed);
    let (d, generation) = rpc::current();
    x86_64::instructions::interrupts::enable();
    while domain::alive_generation(d.0 as usize) == generation {
        core::hint::spin_loop();
    }
    x86_64::instructions::interrupts::disable();
}

/// Protected-call hook, behind `ARMED`: true if the callee (`slot`, `generation`) is the
/// target of an armed panic; it has then died as a panicking domain does, and the call
/// returns `Err(Panicked)` without entering it. `at` names the call (the proxy closure).
#[cold]
#[inline(never)]
pub fn proxy_entry(slot: usize, generation: u64, at: &'static str) -> bool {
    proxy_hook(slot, generation, at, AT_ENTRY)
}

/// Protected-call hook at the exit of a call that returned, behind `ARMED`: true if the
/// callee is the target of an armed panic (and the panic is at exit); it has then died as
/// a panicking domain does, and the caller drops the result and returns `Err(Panicked)`.
#[cold]
#[inline(never)]
pub fn proxy_exit(slot: usize, generation: u64, at: &'static str) -> bool {
    proxy_hook(slot, generation, at, AT_EXIT)
}

/// `Armed::at` of a panic: where in the call it fires (the parameter's parity).
const AT_ENTRY: u64 = 0;
const AT_EXIT: u64 = 1;

fn proxy_hook(slot: usize, generation: u64, at: &'static str, point: u64) -> bool {
    let n = {
        let mut arms = ARMS.lock();
        let Some(a) = arms.get_mut(slot).and_then(|a| a.as_mut()).filter(|a| {
            !a.fired && a.kind == Kind::Panic && a.generation == generation && a.param % 2 == point
        }) else {
            return false;
        };
        fire(a, point, at);
        let n = a.n;
        publish(&arms);
        n
    };
    domain::contain(slot, generation, RpcError::Panicked, |name| {
        domain::note_last_words(slot, generation, "injected panic");
        println!("domain `{name}` (id {slot}, generation {generation}) panicked: injected fault n={n}");
    });
    true
}

/// `Syscalls::device_fault`: the code of the device fault armed for the calling domain,
/// once (0: none).
pub fn device_fault(kind: u32) -> u32 {
    let (d, generation) = rpc::current();
    let want = match kind {
        frond_domrt::fault::NETDEV => Kind::Netdev,
        frond_domrt::fault::BLKDEV => Kind::Blkdev,
        _ => return 0,
    };
    let mut arms = ARMS.lock();
    let Some(a) = arms.get_mut(d.0 as usize).and_then(|a| a.as_mut()).filter(|a| !a.fired && a.kind == want && a.generation == generation)
    else {
        return 0;
    };
    let code = match want {
        Kind::Netdev => 1 + (a.param % 2) as u32,
        _ => 1,
    };
    fire(a, code as u64, if code == frond_domrt::fault::USED_BAD_ID { "used-ring id" } else if want == Kind::Netdev { "used-ring len" } else { "status" });
    publish(&arms);
    code
}

// ---------------------------------------------------------------------------------------
// Counters, recovery, the thread.

/// Faults numbered so far (the last n), and faults armed now.
static NUMBERED: AtomicU64 = AtomicU64::new(0);
static ARMED_NOW: AtomicU64 = AtomicU64::new(0);
static SEED: AtomicU64 = AtomicU64::new(0);
static RUNNING: AtomicUsize = AtomicUsize::new(0);

#[derive(Default, Clone)]
struct Totals {
    domain: String,
    injected: [u64; 5],
    skipped: [u64; 5],
    recovered: u64,
}

/// Faults waiting for their domain's restart: (n, slot, dead generation, t_us).
static WAITING: IrqMutex<Vec<(u64, usize, u64, u64)>> = IrqMutex::new(Vec::new());
static TOTALS: IrqMutex<Vec<Totals>> = IrqMutex::new(Vec::new());

fn count(domain: &str, f: impl FnOnce(&mut Totals)) {
    let mut t = TOTALS.lock();
    match t.iter_mut().find(|t| t.domain == domain) {
        Some(e) => f(e),
        None => {
            let mut e = Totals { domain: domain.to_string(), ..Totals::default() };
            f(&mut e);
            t.push(e);
        }
    }
}

/// A restart of `slot` finished (its new generation's init returned): the faults that
/// ended an older generation of that slot have recovered.
pub fn restarted(slot: usize, generation: u64) {
    if RUNNING.load(Relaxed) == 0 {
        return;
    }
    let now = crate::time::uptime_us();
    let done: Vec<(u64, u64)> = {
        let mut w = WAITING.lock();
        let mut done = Vec::new();
        w.retain(|&(n, s, g, t)| {
            if s == slot && g < generation {
                done.push((n, now.saturating_sub(t)));
                false
            } else {
                true
            }
        });
        done
    };
    if done.is_empty() {
        return;
    }
    let name = domain::name_of(slot);
    for (n, after) in done {
        count(&name, |t| t.recovered += 1);
        println!("inject: n={n} recovered domain={name} gen={generation} after_us={after}");
    }
}

/// Starts the injector (no-op without `inject=`).
pub fn start(c: Config) -> Result<(), String> {
    RUNNING.store(1, Relaxed);
    SEED.store(c.seed, Relaxed);
    let h = sched::Builder::new("inject")
        .priority(sched::Priority::High)
        .spawn(move || run(c))
        .map_err(|e| format!("spawning the fault injector: {e:?}"))?;
    THREAD.store(h.tid(), Relaxed);
    Ok(())
}

/// Restartable system domains alive now, by slot: the default targets.
fn default_targets() -> Vec<String> {
    let names = crate::assembly::restartable();
    domain::list()
        .into_iter()
        .filter(|d| d.state == domain::State::Alive && domain::owner_of(d.id as usize).is_none() && names.contains(&d.name))
        .map(|d| d.name)
        .collect()
}

/// A fault numbered and waiting for its stream.
struct Pending {
    n: u64,
    /// Its index in its stream (1, 2, …).
    k: u64,
    draw: Draw,
    /// Scheduled time (µs since boot); its window ends a window later.
    at_us: u64,
}

/// What a stream's current fault is doing.
enum Phase {
    /// Waiting for the target to be alive.
    Alive,
    /// Armed for this slot and generation.
    Armed(usize, u64),
}

struct Stream {
    index: usize,
    domain: String,
    kinds: Vec<Kind>,
    rng: Rng,
    /// Faults drawn; the next one's draw and scheduled time.
    drawn: u64,
    next: (Draw, u64),
    /// Numbered, not yet started (in order).
    queue: VecDeque<Pending>,
    cur: Option<(Pending, Phase)>,
}

impl Stream {
    fn new(index: usize, domain: String, kinds: Vec<Kind>, seed: u64, mean_us: u64, t0: u64) -> Stream {
        let mut rng = Rng::new(stream_seed(seed, index));
        let d = draw(&mut rng, mean_us, &kinds);
        let at = t0 + d.delay_us;
        Stream { index, domain, kinds, rng, drawn: 1, next: (d, at), queue: VecDeque::new(), cur: None }
    }

    /// Numbers the drawn fault `n` and draws the one after it.
    fn number(&mut self, n: u64, mean_us: u64) {
        let (d, at) = core::mem::replace(&mut self.next, (Draw { delay_us: 0, kind: Kind::Kill, param: 0 }, 0));
        self.queue.push_back(Pending { n, k: self.drawn, draw: d, at_us: at });
        let d = draw(&mut self.rng, mean_us, &self.kinds);
        let at = at + d.delay_us;
        self.drawn += 1;
        self.next = (d, at);
    }

    fn busy(&self) -> bool {
        self.cur.is_some() || !self.queue.is_empty()
    }
}

fn run(c: Config) {
    let now_ms = crate::time::uptime_us() / 1000;
    if c.start_ms > now_ms {
        sched::sleep_ms(c.start_ms - now_ms);
    }
    let mut targets = if c.domains.is_empty() { default_targets() } else { c.domains.clone() };
    // One stream per domain.
    let mut seen = Vec::new();
    targets.retain(|t| if seen.contains(t) { false } else { seen.push(t.clone()); true });
    // The kinds that apply to each target (by the crate each was loaded from).
    let images = domain::images();
    let krate = |name: &str| {
        let slot = domain::lookup(name).map_or(0, |d| d.0 as usize);
        images.iter().find(|i| i.0 == slot).map(|i| i.3.clone()).unwrap_or_default()
    };
    let plan: Vec<(String, Vec<Kind>)> = targets
        .iter()
        .map(|t| (t.clone(), c.kinds.iter().copied().filter(|&k| applies(k, &krate(t))).collect::<Vec<_>>()))
        .filter(|(_, k)| !k.is_empty())
        .collect();
    if plan.is_empty() {
        println!("inject: {}", if targets.is_empty() { "no target domains" } else { "none of the kinds applies to the target domains" });
        return;
    }
    let kinds: Vec<&str> = c.kinds.iter().filter(|k| plan.iter().any(|(_, ks)| ks.contains(k))).map(|k| k.name()).collect();
    println!(
        "inject: seed={} rate={} kinds={} domains={} streams={} window_ms={}",
        c.seed,
        c.rate,
        kinds.join(","),
        plan.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(","),
        plan.len(),
        c.window_ms
    );
    // Each stream at rate / streams.
    let mean_us = plan.len() as u64 * 1_000_000 / c.rate;
    let t0 = crate::time::uptime_us();
    let mut streams: Vec<Stream> =
        plan.into_iter().enumerate().map(|(i, (t, k))| Stream::new(i, t, k, c.seed, mean_us, t0)).collect();
    let window_us = c.window_ms * 1000;
    let mut n = 0u64;
    loop {
        FIRED.store(false, Relaxed);
        let now = crate::time::uptime_us();
        // Number the faults whose time has come, in the order of their scheduled times.
        while c.count == 0 || n < c.count {
            let Some(s) = streams.iter_mut().filter(|s| s.next.1 <= now).min_by_key(|s| (s.next.1, s.index)) else { break };
            n += 1;
            NUMBERED.store(n, Relaxed);
            s.number(n, mean_us);
        }
        // Kills that took effect first: their target must die before the preempted
        // thread runs again (this thread outranks it; nothing here may block first).
        for s in &streams {
            if let Some((p, Phase::Armed(slot, generation))) = &s.cur {
                if p.draw.kind == Kind::Kill && ARMS.lock()[*slot].is_some_and(|a| a.fired) {
                    kill(*slot, *generation);
                }
            }
        }
        for s in &mut streams {
            step(s, &c, now, window_us);
        }
        if c.count != 0 && n >= c.count && !streams.iter().any(Stream::busy) {
            break;
        }
        // Sleep until the next scheduled time or deadline (a poll while a target is not
        // alive yet or an armed one might have died), or until a hook fires.
        let mut wake = u64::MAX;
        for s in &streams {
            if c.count == 0 || n < c.count {
                wake = wake.min(s.next.1);
            }
            match &s.cur {
                Some((p, Phase::Alive)) => wake = wake.min(now + 5_000).min(p.at_us + window_us),
                Some((p, Phase::Armed(..))) => wake = wake.min(now + 50_000).min(p.at_us + window_us),
                None => {
                    if let Some(p) = s.queue.front() {
                        wake = wake.min(p.at_us);
                    }
                }
            }
        }
        let ns = wake.saturating_sub(crate::time::uptime_us()).saturating_mul(1000);
        sched::sleep_unless(ns.clamp(1, 10_000_000_000), || FIRED.load(Relaxed));
    }
    println!("inject: done: {n} faults");
}

/// A kill that took effect: its generation dies (no-op if it already did).
fn kill(slot: usize, generation: u64) {
    domain::note_last_words(slot, generation, "killed by the fault injector");
    domain::die(slot, generation, RpcError::Killed);
}

fn skipped(s: &Stream, p: &Pending, why: &str) {
    count(&s.domain, |t| t.skipped[p.draw.kind as usize] += 1);
    println!(
        "inject: n={} seed={} t_ms={} kind={} domain={} stream={}:{} skipped ({why})",
        p.n,
        SEED.load(Relaxed),
        crate::time::uptime_us() / 1000,
        p.draw.kind.name(),
        s.domain,
        s.index,
        p.k
    );
}

/// Moves stream `s` on: starts its next fault when its time has come, arms it once the
/// target is alive, and reports it when it took effect or its window ended.
fn step(s: &mut Stream, c: &Config, now: u64, window_us: u64) {
    if s.cur.is_none() {
        match s.queue.front() {
            Some(p) if p.at_us <= now => {
                let p = s.queue.pop_front().expect("a front");
                if now > p.at_us + window_us {
                    // The stream's previous fault took this one's whole window.
                    return skipped(s, &p, "stream busy");
                }
                s.cur = Some((p, Phase::Alive));
            }
            _ => return,
        }
    }
    let Some((p, phase)) = s.cur.take() else { return };
    let deadline = p.at_us + window_us;
    match phase {
        Phase::Alive => {
            // The target: alive now, or soon (it may be restarting after a fault).
            let target = domain::lookup(&s.domain).map(|id| id.0 as usize).and_then(|slot| {
                let g = domain::alive_generation(slot);
                (g != 0 && domain::state_of(slot) == Some(domain::State::Alive)).then_some((slot, g))
            });
            let Some((slot, generation)) = target else {
                if now > deadline {
                    return skipped(s, &p, "not alive");
                }
                s.cur = Some((p, Phase::Alive));
                return;
            };
            if p.draw.kind != Kind::Kill && domain::owner_of(slot).is_some() {
                return skipped(s, &p, "a program domain");
            }
            if now > deadline {
                return skipped(s, &p, "not alive");
            }
            let mut arms = ARMS.lock();
            if arms[slot].is_some() {
                // Another stream's fault in this slot (a program domain's slot reused).
                drop(arms);
                s.cur = Some((p, Phase::Alive));
                return;
            }
            arms[slot] = Some(Armed {
                n: p.n,
                kind: p.draw.kind,
                generation,
                param: p.draw.param,
                fired: false,
                at: 0,
                at_name: "",
                t_us: 0,
            });
            publish(&arms);
            drop(arms);
            ARMED_NOW.fetch_add(1, Relaxed);
            s.cur = Some((p, Phase::Armed(slot, generation)));
        }
        Phase::Armed(slot, generation) => {
            let a = {
                let mut arms = ARMS.lock();
                let fired = arms[slot].is_some_and(|a| a.fired);
                let dead = domain::alive_generation(slot) != generation;
                if !fired && !dead && now <= deadline {
                    drop(arms);
                    s.cur = Some((p, Phase::Armed(slot, generation)));
                    return;
                }
                let a = arms[slot].take();
                publish(&arms);
                a
            };
            ARMED_NOW.fetch_sub(1, Relaxed);
            match a.filter(|a| a.fired) {
                Some(a) => report(s, c, &p, slot, generation, &a),
                // Its generation died of something else: try the next one, in the window.
                None if now <= deadline => s.cur = Some((p, Phase::Alive)),
                None => skipped(s, &p, "no opportunity"),
            }
        }
    }
}

/// Logs a fault that took effect, counts it and, if it ends its generation, waits for the
/// restart.
fn report(s: &Stream, c: &Config, p: &Pending, slot: usize, generation: u64, a: &Armed) {
    if a.kind == Kind::Kill && domain::alive_generation(slot) == generation {
        // Done at the top of the injector's loop unless it fired after that.
        kill(slot, generation);
    }
    let at = match a.kind {
        Kind::Kill | Kind::Hang => format!("{:#x}", a.at),
        Kind::Panic if a.at == AT_EXIT => format!("exit:{}", short(a.at_name)),
        Kind::Panic => short(a.at_name).to_string(),
        Kind::Netdev | Kind::Blkdev => a.at_name.to_string(),
    };
    count(&s.domain, |t| t.injected[a.kind as usize] += 1);
    // A kill, panic or hang ends the generation; so does a used entry with a bad id (the
    // driver fails on it). A bad length or an I/O error the driver survives.
    let ends = match a.kind {
        Kind::Kill | Kind::Panic | Kind::Hang => true,
        Kind::Netdev => a.at as u32 == frond_domrt::fault::USED_BAD_ID,
        Kind::Blkdev => false,
    };
    println!(
        "inject: n={} seed={} t_ms={} kind={} domain={} slot={slot} gen={generation} ends={} stream={}:{} at={at}",
        p.n,
        c.seed,
        a.t_us / 1000,
        a.kind.name(),
        s.domain,
        ends as u8,
        s.index,
        p.k
    );
    if ends || domain::alive_generation(slot) != generation {
        WAITING.lock().push((p.n, slot, generation, a.t_us));
        // A restart may already have finished.
        let g = domain::alive_generation(slot);
        if g > generation && domain::state_of(slot) == Some(domain::State::Alive) {
            restarted(slot, g);
        }
    }
}

/// `frond_interface::fs::{impl#3}::read::{{closure}}` → `fs::read`.
fn short(name: &'static str) -> &'static str {
    let name = name.trim_end_matches("::{{closure}}");
    match name.rfind("::") {
        Some(i) => &name[i + 2..],
        None => name,
    }
}

/// The `inject` console command.
pub fn cmd(_: &str) {
    if RUNNING.load(Relaxed) == 0 {
        println!("no fault injector (boot with inject=SEED)");
        return;
    }
    println!("  seed {}, faults numbered {}, armed now {}", SEED.load(Relaxed), NUMBERED.load(Relaxed), ARMED_NOW.load(Relaxed));
    println!("  {:<12} {:>5} {:>6} {:>5} {:>7} {:>7} {:>8} {:>10}", "domain", "kill", "panic", "hang", "netdev", "blkdev", "skipped", "recovered");
    for t in TOTALS.lock().clone() {
        let i = t.injected;
        println!(
            "  {:<12} {:>5} {:>6} {:>5} {:>7} {:>7} {:>8} {:>10}",
            t.domain, i[0], i[1], i[2], i[3], i[4], t.skipped.iter().sum::<u64>(), t.recovered
        );
    }
    let w = WAITING.lock().len();
    if w > 0 {
        println!("  {w} faults wait for their domain's restart");
    }
}
