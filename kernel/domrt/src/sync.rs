//! A sleeping mutex for domains.
//!
//! One CPU, strict priorities: a `spin::Mutex` held by a low-priority thread that a
//! higher-priority thread preempts and then waits for spins forever — the holder never
//! runs again. This mutex sleeps in the kernel instead ([`crate::Syscalls::futex_wait`]),
//! so the holder runs, unlocks, and its unlock wakes the waiter, which (being of higher
//! priority) runs at once.
//!
//! [`RawMutex`] is the lock word, 0 (free), 1 (held) or 2 (held, maybe waiters):
//! uncontended lock and unlock are one atomic instruction each and never enter the
//! kernel. [`Mutex`] and its guard are `lock_api`'s, over it.

use core::sync::atomic::{AtomicU32, Ordering::{Acquire, Relaxed, Release}};

/// Longest single wait; the lock re-checks after it (a wake can be missed only if the
/// waker died, which kills the waiter's domain too).
const WAIT_NS: u64 = 100_000_000;

/// The futex-backed lock word.
pub struct RawMutex {
    word: AtomicU32,
}

impl RawMutex {
    #[cold]
    fn lock_contended(&self) {
        // Mark "maybe waiters" and sleep until the word is 0 when we swap it to 2.
        while self.word.swap(2, Acquire) != 0 {
            crate::sys().futex_wait(&self.word, 2, WAIT_NS);
        }
    }
}

// SAFETY: `lock` returns only once this thread swapped the word from 0, so at most one
// guard exists at a time; `unlock` is called only by the holder (lock_api's contract).
unsafe impl lock_api::RawMutex for RawMutex {
    const INIT: RawMutex = RawMutex { word: AtomicU32::new(0) };
    // The kernel keys futex waiters by domain and address, not by thread.
    type GuardMarker = lock_api::GuardSend;

    fn lock(&self) {
        if self.word.compare_exchange(0, 1, Acquire, Relaxed).is_err() {
            self.lock_contended();
        }
    }

    fn try_lock(&self) -> bool {
        self.word.compare_exchange(0, 1, Acquire, Relaxed).is_ok()
    }

    unsafe fn unlock(&self) {
        if self.word.swap(0, Release) == 2 {
            crate::sys().futex_wake(&self.word, 1);
        }
    }
}

/// The mutex domains use.
pub type Mutex<T> = lock_api::Mutex<RawMutex, T>;
pub type MutexGuard<'a, T> = lock_api::MutexGuard<'a, RawMutex, T>;

/// A condition variable for [`Mutex`]: a sequence word on a kernel futex.
///
/// `wait` reads the sequence, unlocks, sleeps while the sequence is unchanged (at most
/// `timeout_ns`, capped by the kernel), and locks again; `notify_all` bumps the sequence
/// and wakes every waiter. Waiters re-check their condition after every return (wakeups
/// may be spurious or cut short by the kernel's cap).
pub struct Condvar {
    seq: AtomicU32,
}

impl Condvar {
    pub const fn new() -> Self {
        Self { seq: AtomicU32::new(0) }
    }

    /// Releases `guard`'s lock, waits for a notify (or `timeout_ns`), and locks again.
    /// True if woken by a notify.
    pub fn wait_timeout<T>(&self, guard: &mut MutexGuard<'_, T>, timeout_ns: u64) -> bool {
        let seen = self.seq.load(Acquire);
        MutexGuard::unlocked(guard, || {
            if self.seq.load(Acquire) != seen {
                return true;
            }
            crate::sys().futex_wait(&self.seq, seen, timeout_ns);
            self.seq.load(Acquire) != seen
        })
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.seq.fetch_add(1, Release);
        crate::sys().futex_wake(&self.seq, u32::MAX);
    }
}

impl Default for Condvar {
    fn default() -> Self {
        Self::new()
    }
}
