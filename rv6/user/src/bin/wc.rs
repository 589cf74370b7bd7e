//! `wc [FILE...]`: lines, words and bytes of each file (or standard input), as xv6's
//! `wc`: `LINES WORDS BYTES NAME`.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use ulib::prelude::*;
use ulib::O_RDONLY;

ulib::program!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let mut buf = vec![0u8; 16 * 1024];
    if argv.len() < 2 {
        return wc(0, "", &mut buf);
    }
    for name in &argv[1..] {
        let fd = match ulib::open(name, O_RDONLY) {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("wc: cannot open {name}: {}", e.as_str());
                return 1;
            }
        };
        if wc(fd.raw(), name, &mut buf) != 0 {
            return 1;
        }
    }
    0
}

fn wc(fd: i32, name: &str, buf: &mut [u8]) -> i32 {
    let (mut lines, mut words, mut bytes) = (0u64, 0u64, 0u64);
    let mut in_word = false;
    loop {
        let n = match ulib::read(fd, buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                eprintln!("wc: read error on {name}: {}", e.as_str());
                return 1;
            }
        };
        bytes += n as u64;
        for &c in &buf[..n] {
            if c == b'\n' {
                lines += 1;
            }
            if matches!(c, b' ' | b'\r' | b'\t' | b'\n' | 0x0b) {
                in_word = false;
            } else if !in_word {
                words += 1;
                in_word = true;
            }
        }
    }
    println!("{lines} {words} {bytes} {name}");
    0
}
