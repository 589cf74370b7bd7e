//! `t-crash [MSG...]`: panics with `MSG` (the words joined by blanks; default
//! `t-crash: crashing on purpose`). Tests see the message in the exit status.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let msg = if argv.len() > 1 { argv[1..].join(" ") } else { "t-crash: crashing on purpose".to_string() };
    panic!("{msg}");
}
