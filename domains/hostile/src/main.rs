//! # dom-hostile — a domain that attacks the system in safe Rust
//!
//! Each `Hostile` method is one attack of the kind user programs mount by accident or on
//! purpose: unbounded recursion, allocation without end, spinning, holding a lock forever,
//! stealing a lent RRef, calling a dead domain, recursion across proxies, panicking in
//! `Drop`. All of it is safe Rust (the crate forbids anything else): the point is that it cannot hurt anyone but
//! the domain itself. The kernel's tests (`kernel/src/ktest_hostile.rs`) check that.
//!
//! May depend on: `frond-interface`, `frond-domrt`, `rref`, `spin`. `#![forbid(unsafe_code)]`.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};
use frond_domrt::sync::Mutex;
use frond_domrt::{sys, Syscalls};
use frond_interface::hostile::{Hostile, HostileKind};
use frond_interface::test::{Echo, Packet};
use frond_interface::{Exchangeable, RRef, Remote, RpcResult};

frond_domrt::entry!(HostileKind, init);

static HEAP: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
static SHARED: Mutex<Vec<RRef<[u8; 4096]>>> = Mutex::new(Vec::new());
static STOLEN: Mutex<Vec<RRef<Packet>>> = Mutex::new(Vec::new());
static BOMBS: Mutex<Vec<RRef<Bomb>>> = Mutex::new(Vec::new());
static LOCK: Mutex<u64> = Mutex::new(0);
static ECHO: Mutex<Option<Remote<dyn Echo>>> = Mutex::new(None);
/// Set once; calls through it hold no lock, so the peer can call back in.
static PEER: spin::Once<Remote<dyn Hostile>> = spin::Once::new();
static SPINS: AtomicU64 = AtomicU64::new(0);

/// A payload whose destructor panics.
#[derive(Exchangeable)]
struct Bomb {
    armed: bool,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.armed {
            panic!("hostile: Bomb dropped");
        }
    }
}

fn init(_sys: &'static dyn Syscalls, _args: ()) -> Remote<dyn Hostile> {
    Remote::local(Box::new(HostileService))
}

struct HostileService;

#[allow(unconditional_recursion)]
fn deep(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 512]);
    deep(depth + 1).wrapping_add(frame[(depth % 512) as usize] as u64)
}

fn spin_forever() -> ! {
    loop {
        SPINS.fetch_add(1, Ordering::Relaxed);
        core::hint::spin_loop();
    }
}

impl Hostile for HostileService {
    fn recurse(&self, depth: u64) -> RpcResult<u64> {
        Ok(deep(black_box(depth)))
    }

    fn exhaust_heap(&self) -> RpcResult<u64> {
        let mut n = 0;
        loop {
            let v = alloc::vec![0x5au8; 1 << 20];
            HEAP.lock().push(v);
            n += 1;
            if n == u64::MAX {
                return Ok(n);
            }
        }
    }

    fn exhaust_shared(&self) -> RpcResult<u64> {
        let mut n = 0u64;
        loop {
            let r = RRef::new([n as u8; 4096]);
            SHARED.lock().push(r);
            n += 1;
        }
    }

    fn exhaust_threads(&self) -> RpcResult<u64> {
        let mut n = 0;
        while sys().spawn("hoarder", Box::new(|| loop { sys().sleep_ns(1_000_000_000) })).is_ok() {
            n += 1;
        }
        Ok(n)
    }

    fn spin(&self) -> RpcResult<()> {
        spin_forever()
    }

    fn spin_locked(&self) -> RpcResult<()> {
        let _g = LOCK.lock();
        spin_forever()
    }

    fn take_lock(&self) -> RpcResult<u64> {
        let mut g = LOCK.lock();
        *g += 1;
        Ok(*g)
    }

    fn spawn_spinner(&self) -> RpcResult<u64> {
        sys().spawn("hostile-spin", Box::new(|| spin_forever()))
    }

    fn steal_lent(&self, p: &mut RRef<Packet>) -> RpcResult<()> {
        let mine = RRef::new(Packet::filled(0xee));
        let theirs = core::mem::replace(p, mine);
        STOLEN.lock().push(theirs);
        Ok(())
    }

    fn return_lent(&self, p: &mut RRef<Packet>) -> RpcResult<RRef<Packet>> {
        Ok(core::mem::replace(p, RRef::new(Packet::filled(0xdd))))
    }

    fn sys_abuse(&self) -> RpcResult<(u64, u64)> {
        let fired = sys().irq_wait(0x50, u64::MAX) as u64;
        let name = alloc::string::String::from_utf8(alloc::vec![b'x'; 64 * 1024]).unwrap_or_default();
        sys().spawn(&name, Box::new(|| ()))?;
        let sleeper = sys().spawn("sleeper", Box::new(|| sys().sleep_ns(u64::MAX)))?;
        Ok((fired, sleeper))
    }

    fn keep_echo(&self, e: Remote<dyn Echo>) -> RpcResult<()> {
        *ECHO.lock() = Some(e);
        Ok(())
    }

    fn call_kept(&self) -> RpcResult<u64> {
        let g = ECHO.lock();
        match g.as_ref() {
            Some(e) => e.add(40, 2),
            None => Ok(0),
        }
    }

    fn set_peer(&self, peer: Remote<dyn Hostile>) -> RpcResult<()> {
        PEER.call_once(|| peer);
        Ok(())
    }

    fn pingpong(&self, depth: u64) -> RpcResult<u64> {
        match PEER.get() {
            Some(p) => p.pingpong(depth + 1),
            None => Ok(depth),
        }
    }

    fn hold_lent(&self, p: &RRef<Packet>, ms: u64) -> RpcResult<u64> {
        sys().sleep_ns(ms * 1_000_000);
        Ok(p.data[0] as u64)
    }

    fn lend_to_peer(&self, ms: u64) -> RpcResult<u64> {
        let p = RRef::new(Packet::filled(9));
        match PEER.get() {
            Some(peer) => peer.hold_lent(&p, ms),
            None => Ok(0),
        }
    }

    fn drop_bomb(&self) -> RpcResult<()> {
        drop(RRef::new(Bomb { armed: true }));
        Ok(())
    }

    fn keep_bombs(&self, n: u32) -> RpcResult<u64> {
        let mut b = BOMBS.lock();
        for _ in 0..n {
            b.push(RRef::new(Bomb { armed: true }));
        }
        Ok(b.len() as u64)
    }
}
