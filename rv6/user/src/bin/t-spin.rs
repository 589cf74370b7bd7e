//! `t-spin`: spins forever without a system call (only `kill` or the watchdog ends it).

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(_args: Args) -> i32 {
    println!("t-spin: spinning");
    let mut x: u64 = 0;
    loop {
        x = core::hint::black_box(x.wrapping_add(1));
    }
}
