//! `pwd`: the working directory.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(_args: Args) -> i32 {
    match ulib::getcwd() {
        Ok(p) => {
            println!("{p}");
            0
        }
        Err(e) => {
            eprintln!("pwd: {}", e.as_str());
            1
        }
    }
}
