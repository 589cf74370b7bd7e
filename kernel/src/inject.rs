//! The seeded fault injector (`inject=SEED`; docs/reliability.md, "Fault injection").
//!
//! One thread (High priority) walks a sequence of faults drawn from a splitmix64 generator
//! seeded with SEED: for fault number n it draws, in this order, the delay before it, its
//! kind, its target domain and a kind-specific parameter. So the same seed and command
//! line give the same decisions; only *when* a fault can take effect depends on the run
//! (a kill needs a timer tick that preempts the target, a panic a call into it). A fault
//! that cannot take effect within its window (`inject.window=MS`, default [`WINDOW_MS`])
//! is logged `skipped`.
//!
//! Where each kind takes effect (all state is here; the hooks elsewhere are one check):
//! * **kill**: the timer interrupt ([`tick`]) that preempts the target domain's code (the
//!   running context is the target's live generation); the injector thread, woken by it
//!   and of higher priority than any domain thread, kills the generation before the
//!   preempted thread runs another instruction — wherever it was.
//! * **hang**: such a tick inside a budgeted call of the target, in the target's own code
//!   (not kernel code running for it); when that thread leaves
//!   the interrupt ([`trap_exit`]) it spins, as the domain, until the call watchdog ends
//!   the call (the real watchdog path: CPU time charged to the call, `Timeout`).
//! * **panic**: the next protected call into the target, at its entry or its exit (the
//!   parameter's parity), behind one load and branch on [`ARMED`] in the call path. At
//!   entry ([`proxy_entry`]) the callee dies as a panicking domain does (`domain::contain`
//!   with the panic report) before any of its code runs; the call returns
//!   `Err(Panicked)` and its arguments stay the caller's. At exit ([`proxy_exit`]) the
//!   callee ran the call to its end and dies before the caller sees the result, which is
//!   discarded; the call returns `Err(Panicked)`, as when a callee panics on its way out.
//!   Only calls whose result owns nothing (no RRef, no returned object) take a panic at
//!   exit: the armed panic waits for the next such call into the target.
//! * **netdev** / **blkdev**: the target driver asks ([`device_fault`], through
//!   `frond_domrt::device_fault` behind a one-load hint) where it reads a used-ring entry
//!   or a request's status; the kernel answers once with the corruption to apply.
//!
//! Every fault is one console line (`inject: n=… seed=… t_ms=… kind=… domain=… slot=…
//! gen=… at=…`), and the restart that brings its domain back another ([`restarted`]).

use crate::arch::irq::IrqMutex;
use crate::domain::{self, rpc};
use crate::println;
use crate::sched;
use alloc::format;
use alloc::string::{String, ToString};
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

/// One drawn fault: what the sequence decides, independent of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draw {
    pub delay_ms: u64,
    pub kind: Kind,
    pub domain: String,
    pub param: u64,
}

/// Draws the next fault. `plan`: each kind with the targets it applies to (non-empty),
/// in a fixed order.
pub fn draw(rng: &mut Rng, rate: u64, plan: &[(Kind, Vec<String>)]) -> Draw {
    // Uniform in [0.5, 1.5] × the mean interval.
    let mean = 1000 / rate;
    let delay_ms = mean / 2 + rng.below(mean + 1);
    let (kind, targets) = &plan[rng.below(plan.len() as u64) as usize];
    let domain = targets[rng.below(targets.len() as u64) as usize].clone();
    let param = rng.next();
    Draw { delay_ms, kind: *kind, domain, param }
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
// The armed fault, shared by the thread and the hooks.

/// Non-zero while a panic is armed: the one word a protected call reads (see [`proxy_entry`]).
pub static ARMED: AtomicBool = AtomicBool::new(false);
/// Non-zero while a kill or hang waits for its tick: the one word the timer reads.
static TICK_ARMED: AtomicBool = AtomicBool::new(false);
/// A thread that must spin at its interrupt's exit (hang), +1 (0: none).
static HANG_TID: AtomicU64 = AtomicU64::new(0);
/// The instruction the latest interrupt preempted (recorded by the trap entry).
static PREEMPTED_RIP: AtomicU64 = AtomicU64::new(0);
static THREAD: AtomicU64 = AtomicU64::new(0);

/// The device-fault hint domains read (bit `1 << kind` of `frond_domrt::fault`).
pub static HINT: frond_domrt::FaultHint = frond_domrt::FaultHint::new();

#[derive(Clone, Copy)]
struct Armed {
    kind: Kind,
    slot: usize,
    generation: u64,
    param: u64,
    /// Set by the hook that took it: what it hit, and when.
    fired: bool,
    at: u64,
    at_name: &'static str,
    t_us: u64,
}

static CUR: IrqMutex<Option<Armed>> = IrqMutex::new(None);

fn fire(a: &mut Armed, at: u64, at_name: &'static str) {
    a.fired = true;
    a.at = at;
    a.at_name = at_name;
    a.t_us = crate::time::uptime_us();
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
    let mut cur = CUR.lock();
    let Some(a) = cur.as_mut().filter(|a| !a.fired && matches!(a.kind, Kind::Kill | Kind::Hang)) else { return };
    if d.0 as usize != a.slot || generation != a.generation {
        return;
    }
    if a.kind == Kind::Hang {
        // The watchdog must be able to end it: a budgeted call, a budget. And the domain's
        // own code must be what hangs: a thread preempted in kernel code running for the
        // domain (a service it called, a call's way in or out) is not unwound at interrupt
        // exit once the domain is dead — it goes on to the kernel's next check — so
        // spinning it there would resume kernel code after the domain's end.
        if !rpc::in_budgeted_call()
            || domain::limits::budget_us(a.slot) == 0
            || PREEMPTED_RIP.load(Relaxed) < crate::mem::paging::DOMAIN_REGION
        {
            return;
        }
        HANG_TID.store(sched::current_tid() + 1, Relaxed);
    }
    TICK_ARMED.store(false, Relaxed);
    let rip = PREEMPTED_RIP.load(Relaxed);
    fire(a, rip, "");
}

/// Interrupt exit (before the unwind check): the hung thread spins here, as its domain,
/// with interrupts on, until its generation is dead; the unwind check then abandons it.
#[inline(always)]
pub fn trap_exit() {
    if HANG_TID.load(Relaxed) != 0 {
        hang_here();
    }
}

#[cold]
#[inline(never)]
fn hang_here() {
    if HANG_TID.load(Relaxed) != sched::current_tid() + 1 {
        return;
    }
    HANG_TID.store(0, Relaxed);
    let (d, generation) = rpc::current();
    x86_64::instructions::interrupts::enable();
    while domain::alive_generation(d.0 as usize) == generation {
        core::hint::spin_loop();
    }
    x86_64::instructions::interrupts::disable();
}

/// Protected-call hook, behind `ARMED`: true if the callee (`slot`, `generation`) is the
/// armed panic's target; it has then died as a panicking domain does, and the call
/// returns `Err(Panicked)` without entering it. `at` names the call (the proxy closure).
#[cold]
#[inline(never)]
pub fn proxy_entry(slot: usize, generation: u64, at: &'static str) -> bool {
    proxy_hook(slot, generation, at, AT_ENTRY)
}

/// Protected-call hook at the exit of a call that returned, behind `ARMED`: true if the
/// callee is the armed panic's target (and the panic is at exit); it has then died as a
/// panicking domain does, and the caller drops the result and returns `Err(Panicked)`.
#[cold]
#[inline(never)]
pub fn proxy_exit(slot: usize, generation: u64, at: &'static str) -> bool {
    proxy_hook(slot, generation, at, AT_EXIT)
}

/// `Armed::at` of a panic: where in the call it fires (the parameter's parity).
const AT_ENTRY: u64 = 0;
const AT_EXIT: u64 = 1;

fn proxy_hook(slot: usize, generation: u64, at: &'static str, point: u64) -> bool {
    {
        let mut cur = CUR.lock();
        let Some(a) = cur.as_mut().filter(|a| {
            !a.fired && a.kind == Kind::Panic && a.slot == slot && a.generation == generation && a.param % 2 == point
        }) else {
            return false;
        };
        ARMED.store(false, Relaxed);
        fire(a, point, at);
    }
    let n = N.load(Relaxed);
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
    let mut cur = CUR.lock();
    let Some(a) = cur.as_mut().filter(|a| !a.fired && a.kind == want && a.slot == d.0 as usize && a.generation == generation) else {
        return 0;
    };
    // SAFETY: the injector is the hint's only writer.
    unsafe { HINT.set(0) };
    let code = match want {
        Kind::Netdev => 1 + (a.param % 2) as u32,
        _ => 1,
    };
    fire(a, code as u64, if code == frond_domrt::fault::USED_BAD_ID { "used-ring id" } else if want == Kind::Netdev { "used-ring len" } else { "status" });
    code
}

// ---------------------------------------------------------------------------------------
// Counters, recovery, the thread.

/// The fault number being worked on (for reports from the hooks).
static N: AtomicU64 = AtomicU64::new(0);
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

/// A restart of `slot` finished (its new generation's init returned).
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

fn run(c: Config) {
    let now_ms = crate::time::uptime_us() / 1000;
    if c.start_ms > now_ms {
        sched::sleep_ms(c.start_ms - now_ms);
    }
    let targets = if c.domains.is_empty() { default_targets() } else { c.domains.clone() };
    if targets.is_empty() {
        println!("inject: no target domains");
        return;
    }
    // Each kind with the targets it applies to (by the crate each was loaded from).
    let images = domain::images();
    let krate = |name: &str| {
        let slot = domain::lookup(name).map_or(0, |d| d.0 as usize);
        images.iter().find(|i| i.0 == slot).map(|i| i.3.clone()).unwrap_or_default()
    };
    let plan: Vec<(Kind, Vec<String>)> = c
        .kinds
        .iter()
        .map(|&k| (k, targets.iter().filter(|t| applies(k, &krate(t))).cloned().collect::<Vec<_>>()))
        .filter(|(_, t)| !t.is_empty())
        .collect();
    if plan.is_empty() {
        println!("inject: none of the kinds applies to the target domains");
        return;
    }
    println!(
        "inject: seed={} rate={} kinds={} domains={}",
        c.seed,
        c.rate,
        plan.iter().map(|(k, _)| k.name()).collect::<Vec<_>>().join(","),
        targets.join(",")
    );
    let mut rng = Rng::new(c.seed);
    let mut n = 0u64;
    while c.count == 0 || n < c.count {
        n += 1;
        let d = draw(&mut rng, c.rate, &plan);
        sched::sleep_ms(d.delay_ms);
        N.store(n, Relaxed);
        one(n, &c, &d);
    }
    println!("inject: done: {n} faults");
}

fn skipped(n: u64, seed: u64, d: &Draw, why: &str) {
    count(&d.domain, |t| t.skipped[d.kind as usize] += 1);
    println!("inject: n={n} seed={seed} t_ms={} kind={} domain={} skipped ({why})", crate::time::uptime_us() / 1000, d.kind.name(), d.domain);
}

fn one(n: u64, c: &Config, d: &Draw) {
    let seed = c.seed;
    // The target: alive now, or soon (it may be restarting after the previous fault).
    let deadline = crate::time::uptime_us() + c.window_ms * 1000;
    let (slot, generation) = loop {
        if let Some(id) = domain::lookup(&d.domain) {
            let slot = id.0 as usize;
            let g = domain::alive_generation(slot);
            if g != 0 && domain::state_of(slot) == Some(domain::State::Alive) {
                break (slot, g);
            }
        }
        if crate::time::uptime_us() > deadline {
            return skipped(n, seed, d, "not alive");
        }
        sched::sleep_ms(5);
    };
    if d.kind != Kind::Kill && domain::owner_of(slot).is_some() {
        return skipped(n, seed, d, "a program domain");
    }
    *CUR.lock() = Some(Armed { kind: d.kind, slot, generation, param: d.param, fired: false, at: 0, at_name: "", t_us: 0 });
    match d.kind {
        Kind::Kill | Kind::Hang => TICK_ARMED.store(true, Relaxed),
        Kind::Panic => ARMED.store(true, Relaxed),
        // SAFETY: the injector is the hint's only writer.
        Kind::Netdev => unsafe { HINT.set(1 << frond_domrt::fault::NETDEV) },
        // SAFETY: as above.
        Kind::Blkdev => unsafe { HINT.set(1 << frond_domrt::fault::BLKDEV) },
    }
    let fired = || CUR.lock().is_some_and(|a| a.fired);
    while !fired() && crate::time::uptime_us() < deadline {
        sched::sleep_unless(10_000_000, fired);
    }
    // Disarm, whatever happened.
    TICK_ARMED.store(false, Relaxed);
    ARMED.store(false, Relaxed);
    // SAFETY: as above.
    unsafe { HINT.set(0) };
    let a = CUR.lock().take();
    let Some(a) = a.filter(|a| a.fired) else {
        HANG_TID.store(0, Relaxed);
        return skipped(n, seed, d, "no opportunity");
    };
    let at = match a.kind {
        Kind::Kill | Kind::Hang => format!("{:#x}", a.at),
        Kind::Panic if a.at == AT_EXIT => format!("exit:{}", short(a.at_name)),
        Kind::Panic => short(a.at_name).to_string(),
        Kind::Netdev | Kind::Blkdev => a.at_name.to_string(),
    };
    if a.kind == Kind::Kill {
        domain::note_last_words(slot, generation, "killed by the fault injector");
        domain::die(slot, generation, RpcError::Killed);
    }
    count(&d.domain, |t| t.injected[d.kind as usize] += 1);
    // A kill, panic or hang ends the generation; so does a used entry with a bad id (the
    // driver fails on it). A bad length or an I/O error the driver survives.
    let ends = match a.kind {
        Kind::Kill | Kind::Panic | Kind::Hang => true,
        Kind::Netdev => a.at as u32 == frond_domrt::fault::USED_BAD_ID,
        Kind::Blkdev => false,
    };
    println!(
        "inject: n={n} seed={seed} t_ms={} kind={} domain={} slot={slot} gen={generation} ends={} at={at}",
        a.t_us / 1000,
        d.kind.name(),
        d.domain,
        ends as u8
    );
    if ends || domain::alive_generation(slot) != generation {
        WAITING.lock().push((n, slot, generation, a.t_us));
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
    println!("  seed {}, fault n={}", SEED.load(Relaxed), N.load(Relaxed));
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
