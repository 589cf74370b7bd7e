//! `uptime`: time since boot (`up S.mmm s`).

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(_args: Args) -> i32 {
    let ms = ulib::uptime_ms();
    println!("up {}.{:03} s", ms / 1000, ms % 1000);
    0
}
