//! Interrupt-disabling critical sections and the lock built on them.
//!
//! Frond runs on one CPU. A section with interrupts disabled is therefore atomic with respect
//! to everything else in the kernel, which is the basis of every scheduler and wait-queue
//! operation. [`IrqMutex`] adds a spin lock for data also touched from interrupt handlers;
//! with one CPU it never spins unless a handler re-enters a lock its own thread holds, which
//! is a kernel bug and panics instead of deadlocking.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::instructions::interrupts;

/// Interrupts stay disabled while this lives; the previous state comes back on drop.
pub struct IrqOff {
    was_enabled: bool,
}

/// Disables interrupts until the returned guard is dropped. Nests correctly.
pub fn disable() -> IrqOff {
    let was_enabled = interrupts::are_enabled();
    interrupts::disable();
    IrqOff { was_enabled }
}

impl Drop for IrqOff {
    fn drop(&mut self) {
        if self.was_enabled {
            interrupts::enable();
        }
    }
}

/// A lock whose holder runs with interrupts disabled.
pub struct IrqMutex<T> {
    locked: AtomicBool,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is serialised by `locked` (and by disabled interrupts on one CPU).
unsafe impl<T: Send> Sync for IrqMutex<T> {}
// SAFETY: moving the mutex moves the `T` it owns.
unsafe impl<T: Send> Send for IrqMutex<T> {}

pub struct IrqMutexGuard<'a, T> {
    lock: &'a IrqMutex<T>,
    _irq: IrqOff,
}

impl<T> IrqMutex<T> {
    pub const fn new(value: T) -> Self {
        Self { locked: AtomicBool::new(false), data: UnsafeCell::new(value) }
    }

    pub fn lock(&self) -> IrqMutexGuard<'_, T> {
        let irq = disable();
        if self.locked.swap(true, Ordering::Acquire) {
            // One CPU and interrupts off: nobody else can release it.
            panic!("IrqMutex re-entered (lock already held on this CPU)");
        }
        IrqMutexGuard { lock: self, _irq: irq }
    }

    pub fn try_lock(&self) -> Option<IrqMutexGuard<'_, T>> {
        let irq = disable();
        if self.locked.swap(true, Ordering::Acquire) {
            return None;
        }
        Some(IrqMutexGuard { lock: self, _irq: irq })
    }

    /// Releases a lock held by code that will never run again (fault reporting only).
    ///
    /// # Safety
    /// Only for the fatal-error path: the previous holder must never resume.
    pub unsafe fn force_unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

impl<T> Deref for IrqMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves exclusive access.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for IrqMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves exclusive access.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for IrqMutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
        // `_irq` drops after this and restores the interrupt flag.
    }
}
