//! `ln OLD NEW`: a hard link `NEW` to the file `OLD`.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    if argv.len() != 3 {
        eprintln!("usage: ln OLD NEW");
        return 1;
    }
    match ulib::link(argv[1], argv[2]) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ln: {} -> {}: {}", argv[1], argv[2], e.as_str());
            1
        }
    }
}
