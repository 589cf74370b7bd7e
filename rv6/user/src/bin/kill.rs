//! `kill PID...`: kills processes.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(args: Args) -> i32 {
    args.each_operand("PID...", |a| a.parse::<i32>().map_err(|_| Errno::Inval).and_then(ulib::kill))
}
