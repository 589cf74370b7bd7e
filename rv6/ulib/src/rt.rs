//! The program's runtime state: the rv6 core's handle and the pid, both set once by the
//! init [`program!`](crate::program) expands to, and the [`Program`] object handed back
//! to the core.

use crate::args::Args;
use alloc::boxed::Box;
use frond_interface::rv6::{Argv, ProgArgs, Program, Rv6};
use frond_interface::{Remote, RpcResult};

static RV6: spin::Once<Remote<dyn Rv6>> = spin::Once::new();
static PID: spin::Once<i32> = spin::Once::new();

/// The rv6 core. Panics before the program's init ran (no call can be made then).
pub(crate) fn rv6() -> &'static dyn Rv6 {
    &**RV6.get().expect("ulib: a system call before the program's init (is `ulib::program!` missing?)")
}

/// The pid the core gave this program at init, if init ran.
pub(crate) fn init_pid() -> Option<i32> {
    PID.get().copied()
}

/// The program's init: keeps the handle and pid, returns the program object.
pub fn start(args: (Remote<dyn Rv6>, ProgArgs), main: fn(Args) -> i32) -> Remote<dyn Program> {
    let (rv6, pa) = args;
    RV6.call_once(|| rv6);
    PID.call_once(|| pa.pid);
    Remote::local(Box::new(Main { main }))
}

struct Main {
    main: fn(Args) -> i32,
}

impl Program for Main {
    fn main(&self, argv: Argv) -> RpcResult<i32> {
        Ok((self.main)(Args::new(argv)))
    }
}
