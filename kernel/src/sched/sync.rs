//! Blocking synchronisation: wait queues and a sleeping mutex.
//!
//! The lost-wake-up problem is solved by the uniprocessor rule: a waiter evaluates its
//! condition and enqueues itself with interrupts disabled, so no waker can run in between.
//!
//! The mutex hands ownership directly to its longest waiter on unlock (FIFO), so a thread
//! that unlocks and immediately re-locks cannot starve the others.

use super::{block_current, current_tid, preempt_point, wake, Tid};
use crate::arch::irq::{self, IrqMutex};
use alloc::collections::VecDeque;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU64, Ordering};

/// Threads waiting for a condition.
pub struct WaitQueue {
    waiters: IrqMutex<VecDeque<Tid>>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    pub const fn new() -> Self {
        Self { waiters: IrqMutex::new(VecDeque::new()) }
    }

    /// Blocks until `cond` returns true. `cond` runs with interrupts disabled and may be
    /// evaluated several times (after every wake-up of this queue).
    pub fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        loop {
            let _irq = irq::disable();
            if cond() {
                return;
            }
            self.waiters.lock().push_back(current_tid());
            block_current();
        }
    }

    /// Removes the longest waiter without waking it (the caller does, after recording why).
    fn pop(&self) -> Option<Tid> {
        self.waiters.lock().pop_front()
    }

    fn wake_n(&self, n: usize) -> usize {
        let mut woken = 0;
        let _irq = irq::disable();
        while woken < n {
            let Some(tid) = self.waiters.lock().pop_front() else { break };
            wake(tid);
            woken += 1;
        }
        woken
    }

    /// Wakes the longest waiter; returns whether there was one.
    pub fn wake_one(&self) -> bool {
        let woke = self.wake_n(1) == 1;
        preempt_point();
        woke
    }

    pub fn wake_all(&self) -> usize {
        let n = self.wake_n(usize::MAX);
        preempt_point();
        n
    }

    /// For the exit path, which switches away itself.
    pub(crate) fn wake_all_no_preempt(&self) {
        self.wake_n(usize::MAX);
    }

}

/// A mutex whose waiters sleep. Not for interrupt handlers (use `IrqMutex` there).
pub struct Mutex<T> {
    state: IrqMutex<LockState>,
    wq: WaitQueue,
    contended: AtomicU64,
    data: UnsafeCell<T>,
}

// SAFETY: `data` is only reachable through a guard, and `locked` admits one guard at a time.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves the `T` it owns.
unsafe impl<T: Send> Send for Mutex<T> {}

struct LockState {
    locked: bool,
    /// Set by unlock when it passes the (still locked) mutex to this waiting thread.
    handoff: Option<Tid>,
}

pub struct MutexGuard<'a, T> {
    m: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Self {
            state: IrqMutex::new(LockState { locked: false, handoff: None }),
            wq: WaitQueue::new(),
            contended: AtomicU64::new(0),
            data: UnsafeCell::new(value),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        assert!(!crate::arch::trap::in_interrupt(), "blocking Mutex used in an interrupt handler");
        let mut waited = false;
        self.wq.wait_until(|| {
            let me = current_tid();
            let mut s = self.state.lock();
            if !s.locked {
                s.locked = true;
                true
            } else if s.handoff == Some(me) {
                s.handoff = None;
                true
            } else {
                waited = true;
                false
            }
        });
        if waited {
            self.contended.fetch_add(1, Ordering::Relaxed);
        }
        MutexGuard { m: self }
    }

    /// Acquisitions that had to sleep at least once.
    pub fn contended(&self) -> u64 {
        self.contended.load(Ordering::Relaxed)
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves exclusive access.
        unsafe { &*self.m.data.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves exclusive access.
        unsafe { &mut *self.m.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        {
            let mut s = self.m.state.lock();
            match self.m.wq.pop() {
                Some(next) => {
                    s.handoff = Some(next);
                    wake(next);
                }
                None => s.locked = false,
            }
        }
        preempt_point();
    }
}
