//! A sleeping mutex for domains.
//!
//! One CPU, strict priorities: a `spin::Mutex` held by a low-priority thread that a
//! higher-priority thread preempts and then waits for spins forever — the holder never
//! runs again. This mutex sleeps in the kernel instead ([`crate::Syscalls::futex_wait`]),
//! so the holder runs, unlocks, and its unlock wakes the waiter, which (being of higher
//! priority) runs at once.
//!
//! The word is 0 (free), 1 (held) or 2 (held, maybe waiters): uncontended lock and
//! unlock are one atomic instruction each and never enter the kernel.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering::{Acquire, Relaxed, Release}};

/// Longest single wait; the lock re-checks after it (a wake can be missed only if the
/// waker died, which kills the waiter's domain too).
const WAIT_NS: u64 = 100_000_000;

pub struct Mutex<T: ?Sized> {
    word: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: the word serialises access to `data`, as std's Mutex does.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves the `T`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

pub struct MutexGuard<'a, T: ?Sized> {
    m: &'a Mutex<T>,
}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Self { word: AtomicU32::new(0), data: UnsafeCell::new(value) }
    }

    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self.word.compare_exchange(0, 1, Acquire, Relaxed).is_err() {
            self.lock_contended();
        }
        MutexGuard { m: self }
    }

    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.word.compare_exchange(0, 1, Acquire, Relaxed).ok().map(|_| MutexGuard { m: self })
    }

    #[cold]
    fn lock_contended(&self) {
        // Mark "maybe waiters" and sleep until the word is 0 when we swap it to 2.
        while self.word.swap(2, Acquire) != 0 {
            crate::sys().futex_wait(&self.word, 2, WAIT_NS);
        }
    }

    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        if self.m.word.swap(0, Release) == 2 {
            crate::sys().futex_wake(&self.m.word, 1);
        }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.m.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, and `&mut self` makes this unique.
        unsafe { &mut *self.m.data.get() }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}
