//! `t-hog [KIB]`: allocates heap in blocks of `KIB` KiB (default 256), touching every
//! page, until the allocation fails — its heap quota stops it — and the program dies
//! (allocation failure panics). Prints the total after every MiB.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;

ulib::program!(main);

fn main(args: Args) -> i32 {
    let kib: usize = args.get(1).and_then(|s| s.parse().ok()).filter(|&k| k > 0).unwrap_or(256);
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    let mut total_kib = 0usize;
    loop {
        // `vec!` writes every byte: the pages are really used.
        hoard.push(vec![0x5a; kib * 1024]);
        let before = total_kib;
        total_kib += kib;
        if total_kib / 1024 != before / 1024 {
            println!("t-hog: {} MiB", total_kib / 1024);
        }
        core::hint::black_box(&hoard);
    }
}
