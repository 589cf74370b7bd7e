//! `mkdir DIR...`: makes directories.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(args: Args) -> i32 {
    args.each_operand("DIR...", ulib::mkdir)
}
