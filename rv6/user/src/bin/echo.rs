//! `echo [ARG...]`: prints its arguments separated by blanks, then a newline.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(args: Args) -> i32 {
    let v = args.to_vec();
    println!("{}", v.get(1..).unwrap_or(&[]).join(" "));
    0
}
