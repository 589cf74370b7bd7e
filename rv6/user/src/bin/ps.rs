//! `ps`: every process: pid, parent, state, the domain running it, name.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;
use ulib::ProcState;

ulib::program!(main);

fn main(_args: Args) -> i32 {
    let rows = ulib::ps();
    println!("{:>5} {:>5} {:<8} {:>6} NAME", "PID", "PPID", "STATE", "DOMAIN");
    for r in rows {
        let state = match r.state {
            ProcState::Embryo => "embryo",
            ProcState::Running => "run",
            ProcState::Sleeping => "sleep",
            ProcState::Zombie => "zombie",
        };
        println!("{:>5} {:>5} {:<8} {:>6} {}", r.pid, r.ppid, state, r.domain, r.name.as_str());
    }
    0
}
