//! The demo `make run` starts: an `echo` service domain and a `client` domain whose thread
//! calls it every 100 ms through a recovery proxy. `crash echo` kills the service; the
//! client's next call restarts it, and `domains` shows the new generation while the
//! client's error count stays at zero.

use crate::domain;
use crate::println;
use frond_interface::test::{ClientKind, Echo, EchoKind};

pub fn start() {
    let echo = match domain::create::<EchoKind>("echo", "domains/dom-echo", || ()) {
        Ok(d) => d,
        Err(e) => {
            println!("demo: cannot start the echo domain: {e}");
            return;
        }
    };
    let client = domain::create::<ClientKind>("client", "domains/dom-client", move || {
        (domain::grant_recover::<dyn Echo>(echo).expect("echo exports Echo"),)
    });
    match client {
        Ok(_) => println!(
            "demo: domains `echo` and `client` are running (client calls echo every 100 ms).\n\
             demo: try `domains`, then `crash echo`, then `domains` again."
        ),
        Err(e) => println!("demo: cannot start the client domain: {e}"),
    }
}
