//! `true`: exits 0 at once (the smallest program; the spawn benchmark runs it).

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

ulib::program!(main);

fn main(_: ulib::Args) -> i32 {
    0
}
