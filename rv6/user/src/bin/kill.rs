//! `kill PID...`: kills processes.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    if argv.len() < 2 {
        eprintln!("usage: kill PID...");
        return 1;
    }
    let mut rc = 0;
    for a in &argv[1..] {
        let r = match a.parse::<i32>() {
            Ok(pid) => ulib::kill(pid),
            Err(_) => Err(Errno::Inval),
        };
        if let Err(e) = r {
            eprintln!("kill: {a}: {}", e.as_str());
            rc = 1;
        }
    }
    rc
}
