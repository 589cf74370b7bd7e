//! `sync`: makes every completed file-system operation durable.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(_args: Args) -> i32 {
    match ulib::sync() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sync: {}", e.as_str());
            1
        }
    }
}
