//! # dom-services — TCP/UDP echo and the HTTP status page
//!
//! Runs `frond_net::services::Services` over the `Sockets` (a recovery proxy of the
//! network stack) and the `System` the kernel grants it: a thread steps the services and,
//! when a step found nothing to do, waits on the stack (`Sockets::wait`, 10 ms at most).
//! Exports only the counters (`Services::stats`).
//!
//! When the stack crashes the services see an `RpcError`, forget their sockets and open
//! them again on the next step, on the restarted stack.
//!
//! May depend on: `frond-interface`, `frond-domrt`, `frond-net`, `rref`.
//! `#![forbid(unsafe_code)]`.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use frond_domrt::{sys, Syscalls};
use frond_interface::net::{
    ServiceStats, Services as ServicesApi, ServicesKind, Sockets, System, ECHO_PORT, HTTP_PORT,
};
use frond_interface::{Remote, RpcResult};
use frond_net::services::Services;

frond_domrt::entry!(ServicesKind, init);

/// Longest wait between steps.
const WAIT_NS: u64 = 10_000_000;

/// The counters, copied out after every step.
static STATS: frond_domrt::sync::Mutex<ServiceStats> = frond_domrt::sync::Mutex::new(ServiceStats {
    tcp_conns: 0,
    tcp_bytes: 0,
    udp_datagrams: 0,
    http_requests: 0,
    stack_restarts_seen: 0,
});

/// Runs `f` on the counters without spinning on a held lock (one preemptive CPU: the
/// holder only gets to release it if we yield).
fn with_stats<R>(f: impl FnOnce(&mut ServiceStats) -> R) -> R {
    loop {
        if let Some(mut s) = STATS.try_lock() {
            return f(&mut s);
        }
        sys().yield_now();
    }
}

fn init(
    sys: &'static dyn Syscalls,
    (sockets, system): (Remote<dyn Sockets>, Remote<dyn System>),
) -> Remote<dyn ServicesApi> {
    let started = sys.spawn("services", Box::new(move || run(sys, &*sockets, &*system)));
    if let Err(e) = started {
        panic!("services: cannot start the service thread: {e}");
    }
    Remote::local(Box::new(ServicesObj))
}

fn run(sys: &'static dyn Syscalls, sockets: &dyn Sockets, system: &dyn System) -> ! {
    let mut svc = Services::new();
    let mut announced = false;
    let mut last_error = None;
    let mut restarts_seen = 0;
    loop {
        let step = svc.step(sockets, system, sys.now_ns());
        let stats = svc.stats();
        with_stats(|s| *s = stats);
        if step.opened {
            if announced {
                sys.print(&format!(
                    "services: sockets re-opened on the restarted stack (restarts seen: {})",
                    stats.stack_restarts_seen
                ));
            } else {
                sys.print(&format!("services: echo tcp/udp {ECHO_PORT}, http {HTTP_PORT}"));
                announced = true;
            }
            last_error = None;
        }
        if let Some(e) = step.open_error {
            if last_error != Some(e) {
                sys.print(&format!("services: cannot open the service sockets: {e:?} (retrying)"));
                last_error = Some(e);
            }
        }
        if let Some(e) = step.stack_lost {
            // Once per outage, not once per failed step.
            if stats.stack_restarts_seen != restarts_seen {
                sys.print(&format!("services: the stack failed ({e}); re-opening the sockets"));
                restarts_seen = stats.stack_restarts_seen;
            }
        }
        if step.busy {
            sys.yield_now();
        } else if step.stack_lost.is_some() || step.open_error.is_some() || sockets.wait(WAIT_NS).is_err() {
            // Do not spin against a stack that is down.
            sys.sleep_ns(WAIT_NS);
        }
    }
}

/// The exported counters.
struct ServicesObj;

impl ServicesApi for ServicesObj {
    fn stats(&self) -> RpcResult<ServiceStats> {
        Ok(with_stats(|s| *s))
    }
}
