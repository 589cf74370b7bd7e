//! `mon CMD...`: runs a kernel monitor command (`mon domains`, `mon crash fs`); its
//! output goes to the console.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    if argv.len() < 2 {
        eprintln!("usage: mon CMD...");
        return 1;
    }
    let cmd = argv[1..].join(" ");
    match ulib::monitor(&cmd) {
        Ok(()) => 0,
        Err(Errno::Perm) => {
            eprintln!("mon: the monitor is not reachable from rv6");
            1
        }
        Err(e) => {
            eprintln!("mon: {cmd}: {}", e.as_str());
            1
        }
    }
}
