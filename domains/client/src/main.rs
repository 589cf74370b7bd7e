//! # dom-client — the demo's client domain
//!
//! At init it starts a thread that calls its `Echo` (a recovery proxy, granted by the
//! kernel) every 100 ms and counts results. Crash the echo domain from the console and the
//! counters show the calls going on without errors while the echo comes back.
//!
//! May depend on: `frond-interface`, `frond-domrt`, `rref`. `#![forbid(unsafe_code)]`.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use alloc::sync::Arc;
use frond_domrt::Syscalls;
use frond_interface::test::{Client, ClientKind, ClientStats, Echo};
use frond_interface::{Remote, RpcResult};

frond_domrt::entry!(ClientKind, init);

/// Interval between calls: slow enough to stay out of the way of an interactive console.
const PERIOD_NS: u64 = 100_000_000;

fn init(sys: &'static dyn Syscalls, (echo,): (Remote<dyn Echo>,)) -> Remote<dyn Client> {
    let stats = Arc::new(frond_domrt::sync::Mutex::new(ClientStats::default()));
    let s = stats.clone();
    let started = sys.spawn(
        "client-loop",
        Box::new(move || {
            let mut i = 0u64;
            loop {
                let r = echo.add(i, 1);
                {
                    let mut st = s.lock();
                    st.calls += 1;
                    match r {
                        Ok(v) => st.last = v,
                        Err(_) => st.errors += 1,
                    }
                }
                i += 1;
                sys.sleep_ns(PERIOD_NS);
            }
        }),
    );
    if let Err(e) = started {
        sys.print(&alloc::format!("could not start the client thread: {e}"));
    }
    Remote::local(Box::new(ClientService { stats }))
}

struct ClientService {
    stats: Arc<frond_domrt::sync::Mutex<ClientStats>>,
}

impl Client for ClientService {
    fn stats(&self) -> RpcResult<ClientStats> {
        Ok(*self.stats.lock())
    }
}
