//! Preemptive kernel threads on one CPU.
//!
//! * Strict priorities ([`Priority`]), round-robin within a level with a [`SLICE_NS`]
//!   time slice; a thread woken at a higher priority than the running one preempts it at
//!   once (at the end of the interrupt, or right after the waking call in thread context).
//! * Every scheduler structure is touched only with interrupts disabled; on one CPU that is
//!   the whole synchronisation story. Blocking primitives build on [`WaitQueue`].
//! * Context switch (`switch_context`) saves only the callee-saved registers (rbx, rbp,
//!   r12–r15) and rsp on the outgoing thread's stack: a switch is always a function call, so
//!   the ABI makes everything else the caller's business. A preempted thread's full register
//!   set is already in the interrupt's `TrapFrame` on its stack. There is no FPU/SSE state:
//!   kernel and domains are soft-float and CR0.EM makes any x87/SSE instruction fault.
//! * Each thread's stack comes from `mem::paging::alloc_stack` (guard page below). The
//!   boot stack becomes the idle thread's.

pub mod chan;
pub mod sync;

pub use chan::channel;
pub use sync::{Mutex, WaitQueue};

use crate::arch::irq::{self, IrqMutex};
use crate::domain::rpc::{self as domrpc, DomCtx};
use crate::mem::paging::{self, KStack};
use alloc::boxed::Box;
use alloc::collections::{BinaryHeap, VecDeque};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::sync::atomic::{AtomicBool, Ordering};
use hashbrown::HashMap;

pub type Tid = u64;

/// Timer interrupts per second: 1 ms sleep granularity at negligible cost under TCG.
pub const TICK_HZ: u64 = 1000;
/// How long a thread may run before others of its priority get the CPU (10 ms, Linux-like).
/// Measured on the TSC, not in ticks: under an overloaded host QEMU coalesces timer
/// interrupts, and a tick count would then stretch the slice.
pub const SLICE_NS: u64 = 10_000_000;
/// Default stack: deep enough for formatting-heavy code and the fault reporter.
pub const DEFAULT_STACK: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Low = 0,
    Normal = 1,
    High = 2,
}
const LEVELS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Ready,
    Running,
    Blocked,
    Sleeping,
    Exited,
}

struct Thread {
    id: Tid,
    name: String,
    prio: Priority,
    state: State,
    /// Saved stack pointer while not running.
    rsp: u64,
    /// `None` for the idle thread, which runs on the boot stack.
    stack: Option<KStack>,
    entry: Option<Box<dyn FnOnce() + Send>>,
    ticks: u64,
    switches: u64,
    done: Arc<Done>,
    /// Domain context (current domain, generation, innermost continuation) while switched out.
    dom: DomCtx,
    /// The domain that created the thread (0: the kernel); it stops when that domain dies.
    owner: u32,
    /// Identifies the current sleep: a wake-up for an earlier one is stale.
    sleep_seq: u64,
    /// TSC when the thread last became ready to run (woken, or preempted): its wait for
    /// the CPU counts as runnable time of the call it is in (`domrpc::charge_ready`).
    ready_at: u64,
}

struct Done {
    finished: AtomicBool,
    wq: WaitQueue,
}

struct Sched {
    threads: HashMap<Tid, Box<Thread>>,
    ready: [VecDeque<Tid>; LEVELS],
    sleepers: BinaryHeap<Reverse<(u64, Tid, u64)>>,
    /// Boxed so the `rsp` slot `schedule` saves into stays put while the Vec grows.
    #[allow(clippy::vec_box)]
    zombies: Vec<Box<Thread>>,
    current: Tid,
    idle: Tid,
    next_id: Tid,
    /// TSC value when the running thread got the CPU.
    slice_start: u64,
    need_resched: bool,
    ticks: u64,
    switches: u64,
}

static SCHED: IrqMutex<Option<Sched>> = IrqMutex::new(None);

core::arch::global_asm!(
    r#"
    .section .text
    .global switch_context
switch_context:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

    .global thread_trampoline
thread_trampoline:
    jmp thread_entry
"#
);

unsafe extern "C" {
    fn switch_context(save_rsp: *mut u64, new_rsp: u64);
    fn thread_trampoline();
}

impl Sched {
    fn cur(&mut self) -> &mut Thread {
        self.threads.get_mut(&self.current).expect("current thread exists")
    }

    fn highest_ready(&self) -> Option<Priority> {
        [Priority::High, Priority::Normal, Priority::Low]
            .into_iter()
            .find(|p| !self.ready[*p as usize].is_empty())
    }

    fn make_ready(&mut self, tid: Tid) {
        let cur_prio = if self.current == self.idle { None } else { Some(self.cur().prio) };
        let Some(t) = self.threads.get_mut(&tid) else { return };
        if !matches!(t.state, State::Blocked | State::Sleeping) {
            return;
        }
        t.state = State::Ready;
        t.ready_at = crate::time::rdtsc();
        let prio = t.prio;
        self.ready[prio as usize].push_back(tid);
        if cur_prio.is_none_or(|c| prio > c) {
            self.need_resched = true;
        }
    }
}

/// Turns the running boot context into the idle thread. Call once, after the heap exists.
pub fn init() {
    let mut s = Sched {
        threads: HashMap::new(),
        ready: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
        // Reserved up front: an entry stays queued until its deadline even when the sleep
        // ended early, so the count varies with timing; a heap that grew with it would
        // make the kernel's memory use depend on timing too.
        sleepers: BinaryHeap::with_capacity(256),
        zombies: Vec::new(),
        current: 0,
        idle: 0,
        next_id: 1,
        slice_start: 0,
        need_resched: false,
        ticks: 0,
        switches: 0,
    };
    s.threads.insert(
        0,
        Box::new(Thread {
            id: 0,
            name: String::from("idle"),
            prio: Priority::Low,
            state: State::Running,
            rsp: 0,
            stack: None,
            entry: None,
            ticks: 0,
            switches: 0,
            done: Arc::new(Done { finished: AtomicBool::new(false), wq: WaitQueue::new() }),
            dom: DomCtx::new_thread(paging::layout().boot_stack.0),
            owner: 0,
            sleep_seq: 0,
            ready_at: 0,
        }),
    );
    *SCHED.lock() = Some(s);
    domrpc::restore(DomCtx::new_thread(paging::layout().boot_stack.0));
}

fn with<R>(f: impl FnOnce(&mut Sched) -> R) -> R {
    let mut g = SCHED.lock();
    f(g.as_mut().expect("scheduler not initialised"))
}

/// Handle to wait for a thread's end.
pub struct JoinHandle {
    tid: Tid,
    done: Arc<Done>,
}

impl JoinHandle {
    pub fn tid(&self) -> Tid {
        self.tid
    }

    pub fn join(self) {
        let done = self.done;
        done.wq.wait_until(|| done.finished.load(Ordering::Acquire));
    }
}

/// Errors from [`Builder::spawn`].
#[derive(Debug)]
pub enum SpawnError {
    NoStack,
}

pub struct Builder {
    name: String,
    prio: Priority,
    stack: usize,
    owner: u32,
}

impl Builder {
    pub fn new(name: &str) -> Self {
        Self { name: String::from(name), prio: Priority::Normal, stack: DEFAULT_STACK, owner: 0 }
    }
    pub fn priority(mut self, prio: Priority) -> Self {
        self.prio = prio;
        self
    }
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack = bytes;
        self
    }
    /// Records the domain that owns the thread (shown in `threads`).
    pub fn domain(mut self, owner: u32) -> Self {
        self.owner = owner;
        self
    }

    pub fn spawn(self, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle, SpawnError> {
        let stack = paging::alloc_stack(self.stack).ok_or(SpawnError::NoStack)?;
        // Initial frame popped by switch_context: r15..r12, rbx, rbp = 0, then `ret` to the
        // trampoline, which jumps (not calls) to `thread_entry` so that rsp ≡ 8 (mod 16) as
        // at any function entry, with a zero return address ending backtraces.
        let top = stack.top();
        let bottom = stack.bottom();
        let frame: [u64; 8] = [0, 0, 0, 0, 0, 0, thread_trampoline as *const () as u64, 0];
        let rsp = top - 8 * frame.len() as u64;
        // SAFETY: the 64 bytes below `top` are mapped, writable and owned by the new stack.
        unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), rsp as *mut u64, frame.len()) };
        let done = Arc::new(Done { finished: AtomicBool::new(false), wq: WaitQueue::new() });
        let tid = with(|s| {
            let tid = s.next_id;
            s.next_id += 1;
            s.threads.insert(
                tid,
                Box::new(Thread {
                    id: tid,
                    name: self.name,
                    prio: self.prio,
                    state: State::Blocked,
                    rsp,
                    stack: Some(stack),
                    entry: Some(Box::new(f)),
                    ticks: 0,
                    switches: 0,
                    done: done.clone(),
                    dom: DomCtx::new_thread(bottom),
                    owner: self.owner,
                    sleep_seq: 0,
                    ready_at: 0,
                }),
            );
            s.make_ready(tid);
            tid
        });
        preempt_point();
        Ok(JoinHandle { tid, done })
    }
}

pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle {
    Builder::new(name).spawn(f).expect("out of memory for a thread stack")
}

#[unsafe(no_mangle)]
extern "C" fn thread_entry() -> ! {
    reap_zombies();
    let entry = with(|s| s.cur().entry.take());
    x86_64::instructions::interrupts::enable();
    if let Some(f) = entry {
        f();
    }
    exit_current()
}

/// Ends the calling thread.
pub fn exit_current() -> ! {
    let _irq = irq::disable();
    let done = with(|s| {
        let t = s.cur();
        t.state = State::Exited;
        t.done.clone()
    });
    done.finished.store(true, Ordering::Release);
    done.wq.wake_all_no_preempt();
    // This frame never returns: a reference left in it would keep `Done` alive forever
    // (the Thread's own reference is dropped when the zombie is reaped).
    drop(done);
    schedule();
    unreachable!("an exited thread was scheduled");
}

/// Picks the next thread and switches to it. Interrupts must be disabled.
fn schedule() {
    debug_assert!(!x86_64::instructions::interrupts::are_enabled());
    let switch = with(|s| {
        s.need_resched = false;
        let now = crate::time::rdtsc();
        s.slice_start = now;
        let prev = s.current;
        let idle = s.idle;
        let t = s.cur();
        if t.state == State::Running {
            t.state = State::Ready;
            t.ready_at = now;
            if prev != idle {
                let p = t.prio as usize;
                s.ready[p].push_back(prev);
            }
        }
        let next = match s.highest_ready() {
            Some(p) => s.ready[p as usize].pop_front().expect("non-empty level"),
            None => idle,
        };
        let n = s.threads.get_mut(&next).expect("ready thread exists");
        n.state = State::Running;
        if next == prev {
            return None;
        }
        n.switches += 1;
        let next_rsp = n.rsp;
        let next_dom = n.dom;
        let waited = now.saturating_sub(n.ready_at);
        s.current = next;
        s.switches += 1;
        let prev_t = if s.threads.get(&prev).is_some_and(|t| t.state == State::Exited) {
            let t = s.threads.remove(&prev).expect("exists");
            s.zombies.push(t);
            s.zombies.last_mut().expect("just pushed")
        } else {
            s.threads.get_mut(&prev).expect("exists")
        };
        // The call watchdog's accounting: what the outgoing thread ran since the last
        // tick, and the incoming one's wait for the CPU, each to its innermost call.
        domrpc::charge_out(now);
        prev_t.dom = domrpc::save();
        domrpc::charge_ready(&next_dom, waited);
        domrpc::restore(next_dom);
        Some((&mut prev_t.rsp as *mut u64, next_rsp))
    });
    if let Some((save, next)) = switch {
        // SAFETY: `save` points into a boxed Thread that outlives the switch (zombies are
        // freed only by the next thread, after this call has stored rsp); `next` is a stack
        // pointer saved by switch_context or built by `spawn`.
        unsafe { switch_context(save, next) };
        reap_zombies();
    }
}

/// Frees exited threads' stacks; never the running one's.
fn reap_zombies() {
    let zombies = with(|s| core::mem::take(&mut s.zombies));
    drop(zombies);
}

/// Switches threads if a wake-up or the timer asked for it. Safe to call anywhere outside
/// interrupt handlers' bodies.
pub fn preempt_point() {
    if crate::arch::trap::in_interrupt() {
        return;
    }
    let _irq = irq::disable();
    let need = SCHED.lock().as_ref().is_some_and(|s| s.need_resched);
    if need {
        schedule();
    }
}

pub fn yield_now() {
    let _irq = irq::disable();
    schedule();
}

/// Marks the current thread blocked and switches away; returns once woken.
/// Interrupts must be disabled and the thread registered on some queue first.
pub(crate) fn block_current() {
    with(|s| s.cur().state = State::Blocked);
    schedule();
}

pub(crate) fn wake(tid: Tid) {
    with(|s| s.make_ready(tid));
}

pub fn current_tid() -> Tid {
    with(|s| s.current)
}

/// Sleeps at least `ns` nanoseconds.
pub fn sleep_ns(ns: u64) {
    sleep_unless(ns, || false);
}

/// Sleeps up to `ns` nanoseconds unless `ready()` (evaluated with interrupts off, so an
/// interrupt handler that sets the condition and calls [`wake_sleeper`] cannot be missed)
/// is already true. Ends early when [`wake_sleeper`] wakes the thread.
pub fn sleep_unless(ns: u64, ready: impl FnOnce() -> bool) {
    let deadline = crate::time::rdtsc().saturating_add(crate::time::ns_to_tsc(ns));
    let _irq = irq::disable();
    if ready() {
        return;
    }
    with(|s| {
        let tid = s.current;
        let t = s.cur();
        t.sleep_seq += 1;
        t.state = State::Sleeping;
        let seq = t.sleep_seq;
        s.sleepers.push(Reverse((deadline, tid, seq)));
    });
    schedule();
}

/// Ends the sleep of thread `tid` early (no effect unless it sleeps). Interrupt-safe.
pub fn wake_sleeper(tid: Tid) {
    let _irq = irq::disable();
    with(|s| {
        let sleeping = match s.threads.get_mut(&tid) {
            Some(t) if t.state == State::Sleeping => {
                t.sleep_seq += 1;
                true
            }
            _ => false,
        };
        if sleeping {
            s.make_ready(tid);
            s.need_resched = true;
        }
    });
}

pub fn sleep_ms(ms: u64) {
    sleep_ns(ms * 1_000_000);
}

/// Timer interrupt: accounting, sleepers, time slice.
pub fn on_tick() {
    let now = crate::time::rdtsc();
    with(|s| {
        s.ticks += 1;
        s.cur().ticks += 1;
        while let Some(Reverse((deadline, tid, seq))) = s.sleepers.peek().copied() {
            if deadline > now {
                break;
            }
            s.sleepers.pop();
            // A sleep cut short (its thread's domain died) leaves a stale entry behind.
            if s.threads.get(&tid).is_some_and(|t| t.sleep_seq == seq && t.state == State::Sleeping) {
                s.make_ready(tid);
            }
        }
        if s.current == s.idle {
            if s.highest_ready().is_some() {
                s.need_resched = true;
            }
        } else {
            if crate::time::tsc_to_ns(now - s.slice_start) >= SLICE_NS {
                let prio = s.cur().prio;
                if s.highest_ready().is_some_and(|p| p >= prio) {
                    s.need_resched = true;
                } else {
                    s.slice_start = now;
                }
            }
        }
    });
}

/// Whether a thread other than the running one is inside domain `slot`: it was switched
/// out while the domain was its current one (in the domain's code, or in the kernel half
/// of a call into it, or sleeping in a service the domain called).
pub fn any_inside(slot: u32) -> bool {
    let _irq = irq::disable();
    with(|s| s.threads.values().any(|t| t.id != s.current && t.state != State::Exited && t.dom.domain == slot))
}

/// For the call watchdog: the calls of threads ready to run (not running) that have
/// exceeded their domain's runnable-time bound counting their current wait, as (domain
/// slot, generation). A thread starved of the CPU entirely is found here, not at a tick.
pub fn ready_overdue() -> Vec<(usize, u64)> {
    let _irq = irq::disable();
    let now = crate::time::rdtsc();
    with(|s| {
        let mut v = Vec::new();
        for t in s.threads.values().filter(|t| t.state == State::Ready) {
            if let Some(o) = domrpc::ready_overdue(&t.dom, now.saturating_sub(t.ready_at)) {
                v.push(o);
            }
        }
        v
    })
}

/// Wakes every thread sleeping inside domain `slot` (it died), so each unwinds at once
/// instead of when its sleep would have ended. Returns how many were woken.
pub fn wake_domain(slot: u32) -> usize {
    let _irq = irq::disable();
    let n = with(|s| {
        let tids: Vec<Tid> = s
            .threads
            .values()
            .filter(|t| t.dom.domain == slot && t.state == State::Sleeping)
            .map(|t| t.id)
            .collect();
        for &tid in &tids {
            if let Some(t) = s.threads.get_mut(&tid) {
                t.sleep_seq += 1;
            }
            s.make_ready(tid);
        }
        tids.len()
    });
    n
}

/// A row of the `threads` table.
pub struct ThreadInfo {
    pub id: Tid,
    pub name: String,
    pub prio: Priority,
    pub state: State,
    pub cpu_ms: u64,
    pub switches: u64,
    pub stack_kib: usize,
    /// Domain that created the thread (0: kernel).
    pub owner: u32,
}

pub fn threads() -> Vec<ThreadInfo> {
    let mut v: Vec<ThreadInfo> = with(|s| {
        s.threads
            .values()
            .map(|t| ThreadInfo {
                id: t.id,
                name: t.name.clone(),
                prio: t.prio,
                state: t.state,
                cpu_ms: t.ticks * 1000 / TICK_HZ,
                switches: t.switches,
                stack_kib: t.stack.as_ref().map_or(crate::boot::BOOT_STACK_SIZE, |k| k.size()) / 1024,
                owner: t.owner,
            })
            .collect()
    });
    v.sort_by_key(|t| t.id);
    v
}

pub struct Stats {
    pub ticks: u64,
    pub switches: u64,
}

pub fn stats() -> Stats {
    with(|s| Stats { ticks: s.ticks, switches: s.switches })
}

/// For fault reports: the current thread's id, name and stack bounds, without waiting on a
/// lock the faulting code might hold.
pub fn current_for_report() -> Option<(Tid, String, (u64, u64))> {
    let g = SCHED.try_lock()?;
    let s = g.as_ref()?;
    let t = s.threads.get(&s.current)?;
    let bounds = match &t.stack {
        Some(k) => (k.bottom(), k.top()),
        None => paging::layout().boot_stack,
    };
    Some((t.id, t.name.clone(), bounds))
}

/// The stack slot of the running thread (`None` for the boot/idle stack), without
/// waiting on a lock the faulting code might hold.
pub fn current_stack_slot() -> Option<usize> {
    let g = SCHED.try_lock()?;
    let s = g.as_ref()?;
    s.threads.get(&s.current)?.stack.as_ref().map(|k| k.slot())
}

/// For fault reports: the thread whose stack occupies `slot`.
pub fn thread_with_stack_slot(slot: usize) -> Option<(Tid, String)> {
    let g = SCHED.try_lock()?;
    let s = g.as_ref()?;
    s.threads
        .values()
        .find(|t| t.stack.as_ref().is_some_and(|k| k.slot() == slot))
        .map(|t| (t.id, t.name.clone()))
}
