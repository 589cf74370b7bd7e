//! `rm PATH...`: removes names (a directory only if empty).

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    if argv.len() < 2 {
        eprintln!("usage: rm PATH...");
        return 1;
    }
    let mut rc = 0;
    for p in &argv[1..] {
        if let Err(e) = ulib::unlink(p) {
            eprintln!("rm: {p}: {}", e.as_str());
            rc = 1;
        }
    }
    rc
}
