//! `init`: the first process (xv6's init).
//!
//! Makes sure `/console` exists (a device of major `CONSOLE_MAJOR`) and that descriptors
//! 0, 1 and 2 are open (the core starts init with the console on them; any that is not
//! gets `/console`), then runs `/bin/sh` forever: starts it with the standard
//! descriptors, waits, prints how it ended and starts another. Children of other
//! processes that end up with init are reaped on the way (`wait(-1)`).

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;
use ulib::{ExitKind, CONSOLE_MAJOR, O_RDWR};

ulib::program!(main);

/// A shell that lived less than this is started again only after [`BACKOFF_MS`].
const QUICK_MS: u64 = 1000;
const BACKOFF_MS: u64 = 500;

fn main(_args: Args) -> i32 {
    match ulib::stat("/console") {
        Ok(_) => {}
        Err(Errno::NoEnt) => {
            if let Err(e) = ulib::mknod("/console", CONSOLE_MAJOR, 0) {
                // Nothing to print on if 1 and 2 are closed too; try anyway.
                eprintln!("init: mknod /console: {}", e.as_str());
            }
        }
        Err(e) => eprintln!("init: /console: {}", e.as_str()),
    }
    for fd in 0..3 {
        if ulib::fstat(fd) == Err(Errno::BadF) {
            // `open` takes the lowest free descriptor: this one.
            match ulib::open("/console", O_RDWR) {
                Ok(f) if f.raw() == fd => {
                    f.into_raw();
                }
                Ok(f) => eprintln!("init: /console opened as {} instead of {fd}", f.raw()),
                Err(e) => eprintln!("init: open /console: {}", e.as_str()),
            }
        }
    }

    loop {
        println!("init: starting sh");
        let started = ulib::uptime_ms();
        let pid = match ulib::spawn("/bin/sh", &["sh"], FdMap::stdio()) {
            Ok(pid) => pid,
            Err(e) => {
                eprintln!("init: spawn /bin/sh: {}", e.as_str());
                let _ = ulib::sleep_ms(BACKOFF_MS * 2);
                continue;
            }
        };
        loop {
            match ulib::wait(-1) {
                Ok(w) if w.pid == pid => {
                    let how = match w.status.kind {
                        ExitKind::Exited => format!("exited with status {}", w.status.code),
                        ExitKind::Killed => "was killed".to_string(),
                        ExitKind::Crashed => format!("crashed: {}", w.status.message()),
                    };
                    println!("init: sh (pid {pid}) {how}");
                    break;
                }
                // An orphan reaped.
                Ok(_) => {}
                Err(e) => {
                    // The shell is not our child any more (cannot happen): start another.
                    eprintln!("init: wait: {}", e.as_str());
                    break;
                }
            }
        }
        if ulib::uptime_ms().saturating_sub(started) < QUICK_MS {
            let _ = ulib::sleep_ms(BACKOFF_MS);
        }
    }
}
