//! # dom-relay — the middle of a nested call chain
//!
//! Holds the `Echo` it was given at init (and checks it answers) and relays to it. `relay_panic` shows that a
//! crash two levels down returns an error to this domain, which carries on.
//!
//! May depend on: `frond-interface`, `frond-domrt`, `rref`. `#![forbid(unsafe_code)]`.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use frond_domrt::{sys, Syscalls};
use frond_interface::test::{Echo, Relay, RelayKind, RelayReport};
use frond_interface::{DomainId, Remote, RpcResult};

frond_domrt::entry!(RelayKind, init);

fn init(_sys: &'static dyn Syscalls, (echo,): (Remote<dyn Echo>,)) -> Remote<dyn Relay> {
    // A relay that cannot reach its echo is of no use: check at init, as a network stack
    // asks its NIC for its MAC address. (Through a recovery proxy this may restart the echo.)
    if let Err(e) = echo.add(0, 0) {
        panic!("relay: the echo does not answer at init: {e}");
    }
    Remote::local(Box::new(RelayService { echo }))
}

struct RelayService {
    echo: Remote<dyn Echo>,
}

impl Relay for RelayService {
    fn relay_panic(&self) -> RpcResult<RelayReport> {
        let inner = self.echo.panic_now().err();
        // Carry on after the callee's crash: compute something with our own state.
        let after = (1..=10u64).sum::<u64>();
        Ok(RelayReport { inner, after })
    }

    fn relay_add(&self, a: u64, b: u64) -> RpcResult<u64> {
        self.echo.add(a, b)
    }

    fn whoami(&self) -> RpcResult<DomainId> {
        Ok(sys().current().0)
    }
}
