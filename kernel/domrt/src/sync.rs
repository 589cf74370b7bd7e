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
