//! `mkdir DIR...`: makes directories.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    if argv.len() < 2 {
        eprintln!("usage: mkdir DIR...");
        return 1;
    }
    let mut rc = 0;
    for d in &argv[1..] {
        if let Err(e) = ulib::mkdir(d) {
            eprintln!("mkdir: {d}: {}", e.as_str());
            rc = 1;
        }
    }
    rc
}
