//! Bounded multi-producer, single-consumer channels between kernel threads.
//!
//! `send` blocks while the channel is full, `recv` while it is empty. Messages arrive in the
//! order they were sent. When every sender is gone `recv` drains what is left and then
//! returns `None`; when the receiver is gone `send` hands the message back.

use super::WaitQueue;
use crate::arch::irq::IrqMutex;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Chan<T> {
    queue: IrqMutex<VecDeque<T>>,
    cap: usize,
    not_empty: WaitQueue,
    not_full: WaitQueue,
    senders: AtomicUsize,
    receiver_alive: AtomicBool,
}

pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

/// A channel holding at most `cap` (≥ 1) messages in flight.
pub fn channel<T: Send>(cap: usize) -> (Sender<T>, Receiver<T>) {
    assert!(cap >= 1, "channel capacity must be at least 1");
    let chan = Arc::new(Chan {
        queue: IrqMutex::new(VecDeque::with_capacity(cap)),
        cap,
        not_empty: WaitQueue::new(),
        not_full: WaitQueue::new(),
        senders: AtomicUsize::new(1),
        receiver_alive: AtomicBool::new(true),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

impl<T: Send> Sender<T> {
    /// Blocks while full; `Err(msg)` if the receiver is gone.
    pub fn send(&self, msg: T) -> Result<(), T> {
        let c = &self.chan;
        let mut msg = Some(msg);
        c.not_full.wait_until(|| {
            if !c.receiver_alive.load(Ordering::Relaxed) {
                return true;
            }
            let mut q = c.queue.lock();
            if q.len() < c.cap {
                q.push_back(msg.take().expect("sent once"));
                true
            } else {
                false
            }
        });
        match msg {
            Some(m) => Err(m),
            None => {
                c.not_empty.wake_one();
                Ok(())
            }
        }
    }
}

impl<T: Send> Receiver<T> {
    /// Blocks while empty; `None` once empty with no senders left.
    pub fn recv(&self) -> Option<T> {
        let c = &self.chan;
        let mut out = None;
        c.not_empty.wait_until(|| {
            if let Some(m) = c.queue.lock().pop_front() {
                out = Some(m);
                return true;
            }
            c.senders.load(Ordering::Relaxed) == 0
        });
        if out.is_some() {
            c.not_full.wake_one();
        }
        out
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.senders.fetch_add(1, Ordering::Relaxed);
        Self { chan: self.chan.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.chan.senders.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.chan.not_empty.wake_all();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.chan.receiver_alive.store(false, Ordering::Relaxed);
        self.chan.not_full.wake_all();
    }
}
