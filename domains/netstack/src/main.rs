//! # dom-netstack — the network-stack domain
//!
//! Runs a smoltcp stack (`frond_net::stack::Stack`) on the NIC the kernel grants it, with
//! the static IPv4 configuration from the command line, and exports it as `Sockets`.
//!
//! At init it builds the stack, keeps it (with the NIC handle) in a static — so it belongs
//! to this domain instance and a restart starts from nothing — and starts the poll thread:
//! poll; if nothing happened, `Nic::wait` until smoltcp's next deadline (10 ms at most).
//! Callers and the poll thread share the stack through `frond_net::shared::SharedStack`,
//! locked with the domain runtime's sleeping mutex (never a spinning one, which strict
//! priorities on one CPU would turn into a hang).
//!
//! A failed NIC call (the driver crashed; its recovery proxy restarts it) is counted and
//! the stack goes on: it does not take the stack down.
//!
//! May depend on: `frond-interface`, `frond-domrt`, `frond-net`, `rref`, `spin`.
//! `#![forbid(unsafe_code)]`.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use frond_domrt::{sys, Syscalls};
use frond_interface::net::{Ipv4Config, NetError, Nic, SockBuf, SockId, Sockets, StackKind, StackStats};
use frond_interface::{RRef, Remote, RpcResult};
use frond_net::shared::{Env, SharedStack};
use frond_net::stack::{Ip, Mac, Stack};

frond_domrt::entry!(StackKind, init);

/// Time and waiting, from the kernel.
struct DomEnv;

impl Env for DomEnv {
    type Lock = frond_domrt::sync::RawMutex;
    fn now_ns(&self) -> u64 {
        sys().now_ns()
    }
    fn sleep_ns(&self, ns: u64) {
        sys().sleep_ns(ns)
    }
}

/// The stack of this domain instance.
static NET: spin::Once<SharedStack<DomEnv>> = spin::Once::new();

fn net() -> &'static SharedStack<DomEnv> {
    NET.get().expect("netstack: used before init")
}

fn init(sys: &'static dyn Syscalls, (nic, cfg): (Remote<dyn Nic>, Ipv4Config)) -> Remote<dyn Sockets> {
    let stack = match Stack::new(&*nic, cfg, sys.now_ns()) {
        Ok(s) => s,
        Err(e) => panic!("netstack: cannot start: {e}"),
    };
    sys.print(&format!("netstack: up {}/{} mac {}", Ip(cfg.addr), cfg.prefix, Mac(stack.mac())));
    let net = NET.call_once(|| SharedStack::new(nic, stack, DomEnv));
    let started = sys.spawn(
        "netstack-poll",
        Box::new(move || loop {
            net.poll_round();
            // Fair to the other threads even when the NIC is in polling mode (its `wait`
            // returns at once).
            sys.yield_now();
        }),
    );
    if let Err(e) = started {
        panic!("netstack: cannot start the poll thread: {e}");
    }
    Remote::local(Box::new(SocketsObj))
}

/// The exported `Sockets`: forwards to the domain's stack.
struct SocketsObj;

impl Sockets for SocketsObj {
    fn udp_bind(&self, port: u16) -> RpcResult<Result<SockId, NetError>> {
        net().udp_bind(port)
    }
    fn tcp_listen(&self, port: u16, backlog: u8) -> RpcResult<Result<SockId, NetError>> {
        net().tcp_listen(port, backlog)
    }
    fn tcp_accept(&self, listener: SockId) -> RpcResult<Result<Option<SockId>, NetError>> {
        net().tcp_accept(listener)
    }
    fn recv(&self, s: SockId, buf: RRef<SockBuf>) -> RpcResult<(RRef<SockBuf>, Result<u32, NetError>)> {
        net().recv(s, buf)
    }
    fn send(&self, s: SockId, buf: RRef<SockBuf>) -> RpcResult<(RRef<SockBuf>, Result<u32, NetError>)> {
        net().send(s, buf)
    }
    fn close(&self, s: SockId) -> RpcResult<Result<(), NetError>> {
        net().close(s)
    }
    fn send_drained(&self, s: SockId) -> RpcResult<Result<bool, NetError>> {
        net().send_drained(s)
    }
    fn wait(&self, timeout_ns: u64) -> RpcResult<()> {
        net().wait(timeout_ns)
    }
    fn stats(&self) -> RpcResult<StackStats> {
        net().stats()
    }
}
