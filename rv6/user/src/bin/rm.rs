//! `rm PATH...`: removes names (a directory only if empty).

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(args: Args) -> i32 {
    args.each_operand("PATH...", ulib::unlink)
}
