//! [`SharedStack`]: one [`Stack`] used by a poll thread and by `Sockets` callers.
//!
//! The stack sits behind the embedding domain's lock ([`Env::Lock`]: the domain runtime's
//! sleeping mutex in the netstack domain, a spin lock in host tests), so a caller that
//! finds it held sleeps until the holder — of whatever priority — releases it. NIC calls that move frames (`rx`, `tx`) happen under the lock;
//! `Nic::wait` happens outside it, so callers are not held up while the poll thread sleeps.
//!
//! A socket call that queued output (`send`, `close`, a `recv` that opened the receive
//! window) sends it at once ([`Stack::egress`]) instead of leaving it for the poll thread,
//! which may be asleep in `Nic::wait` for up to [`IDLE_WAIT_NS`].

use crate::stack::Stack;
use core::sync::atomic::{AtomicU64, Ordering};
use frond_interface::net::{NetError, Nic, SockBuf, SockId, Sockets, StackStats};
use frond_interface::{RRef, Remote, RpcResult};

/// Longest the poll thread waits for the NIC when smoltcp has nothing due.
pub const IDLE_WAIT_NS: u64 = 10_000_000;
/// Step of [`Sockets::wait`]'s sleep.
pub const WAIT_STEP_NS: u64 = 1_000_000;

/// What the embedding domain provides: time, sleeping, and the lock around the stack.
pub trait Env: Send + Sync {
    /// The lock around the stack.
    type Lock: lock_api::RawMutex + Send + Sync;
    /// Nanoseconds since boot (monotonic).
    fn now_ns(&self) -> u64;
    fn sleep_ns(&self, ns: u64);
}

/// A stack shared between a poll thread ([`SharedStack::poll_round`] in a loop) and
/// `Sockets` callers.
pub struct SharedStack<E: Env> {
    nic: Remote<dyn Nic>,
    stack: lock_api::Mutex<E::Lock, Stack>,
    /// Bumped by every poll that did something; what [`Sockets::wait`] watches.
    progress: AtomicU64,
    /// Failed `Nic::wait` calls (added to the stack's `nic_errors`).
    wait_errors: AtomicU64,
    env: E,
}

impl<E: Env> SharedStack<E> {
    pub fn new(nic: Remote<dyn Nic>, stack: Stack, env: E) -> Self {
        Self { nic, stack: lock_api::Mutex::new(stack), progress: AtomicU64::new(0), wait_errors: AtomicU64::new(0), env }
    }

    pub fn nic(&self) -> &dyn Nic {
        &*self.nic
    }

    pub fn env(&self) -> &E {
        &self.env
    }

    /// Runs `f` on the stack, waiting while another thread holds it.
    pub fn with<R>(&self, f: impl FnOnce(&mut Stack, &dyn Nic) -> R) -> R {
        f(&mut self.stack.lock(), &*self.nic)
    }

    /// How many polls did something so far.
    pub fn progress(&self) -> u64 {
        self.progress.load(Ordering::Acquire)
    }

    /// One poll now. Returns whether anything happened and smoltcp's next deadline
    /// (nanoseconds from now).
    pub fn poll(&self) -> (bool, Option<u64>) {
        let now = self.env.now_ns();
        let (did, delay) = self.with(|s, nic| {
            let did = s.poll(nic, now);
            (did, s.poll_delay(now))
        });
        if did {
            self.progress.fetch_add(1, Ordering::AcqRel);
        }
        (did, delay)
    }

    /// The poll thread's loop body: poll, and if nothing happened wait for the NIC until
    /// smoltcp's next deadline, [`IDLE_WAIT_NS`] at most. A failed wait (the driver died)
    /// is counted and followed by a 1 ms sleep, so a dead driver does not make this spin.
    pub fn poll_round(&self) -> bool {
        let (did, delay) = self.poll();
        if !did {
            let t = delay.map_or(IDLE_WAIT_NS, |d| d.min(IDLE_WAIT_NS));
            if self.nic.wait(t).is_err() {
                self.wait_errors.fetch_add(1, Ordering::Relaxed);
                self.env.sleep_ns(WAIT_STEP_NS);
            }
        }
        did
    }

    fn egress(&self, s: &mut Stack, nic: &dyn Nic) {
        s.egress(nic, self.env.now_ns());
    }
}

impl<E: Env> Sockets for SharedStack<E> {
    fn udp_bind(&self, port: u16) -> RpcResult<Result<SockId, NetError>> {
        Ok(self.with(|s, _| s.udp_bind(port)))
    }

    fn tcp_listen(&self, port: u16, backlog: u8) -> RpcResult<Result<SockId, NetError>> {
        Ok(self.with(|s, _| s.tcp_listen(port, backlog)))
    }

    fn tcp_accept(&self, listener: SockId) -> RpcResult<Result<Option<SockId>, NetError>> {
        Ok(self.with(|s, _| s.tcp_accept(listener)))
    }

    fn recv(&self, id: SockId, mut buf: RRef<SockBuf>) -> RpcResult<(RRef<SockBuf>, Result<u32, NetError>)> {
        let r = self.with(|s, nic| {
            let r = s.recv(id, &mut buf);
            if matches!(r, Ok(n) if n > 0) {
                self.egress(s, nic);
            }
            r
        });
        Ok((buf, r))
    }

    fn send(&self, id: SockId, buf: RRef<SockBuf>) -> RpcResult<(RRef<SockBuf>, Result<u32, NetError>)> {
        let r = self.with(|s, nic| {
            let r = s.send(id, &buf);
            if matches!(r, Ok(n) if n > 0) {
                self.egress(s, nic);
            }
            r
        });
        Ok((buf, r))
    }

    fn close(&self, id: SockId) -> RpcResult<Result<(), NetError>> {
        Ok(self.with(|s, nic| {
            let r = s.close(id);
            if r.is_ok() {
                self.egress(s, nic);
            }
            r
        }))
    }

    fn send_drained(&self, id: SockId) -> RpcResult<Result<bool, NetError>> {
        Ok(self.with(|s, _| s.send_drained(id)))
    }

    fn wait(&self, timeout_ns: u64) -> RpcResult<()> {
        let seen = self.progress();
        let start = self.env.now_ns();
        loop {
            if self.progress() != seen {
                return Ok(());
            }
            let waited = self.env.now_ns().saturating_sub(start);
            if waited >= timeout_ns {
                return Ok(());
            }
            self.env.sleep_ns((timeout_ns - waited).min(WAIT_STEP_NS));
        }
    }

    fn stats(&self) -> RpcResult<StackStats> {
        let mut st = self.with(|s, _| s.stats());
        st.nic_errors += self.wait_errors.load(Ordering::Relaxed);
        Ok(st)
    }
}
